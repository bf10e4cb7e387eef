//! A slow axum handler behind the HTTP response cache.
//!
//! `cargo run -p memokit-http --release --example http_cache`, then (see README.md):
//!
//! - `GET /report`: 100 ms of "work" per call, cached by the layer (30 s ttl, 30 s
//!   stale-while-revalidate, 5 min stale-if-error);
//! - `GET /uncached/report`: the same handler, on a route the layer bypasses;
//! - `GET /memo/report`: the same work in a `#[cached]` async function (handler-level
//!   memoization), on a bypassed route;
//! - `POST /invalidate/report`: drops what the layer stored under `/report`;
//! - `GET /metrics`: the registry's Prometheus text, then the layer's.
//!
//! The address is `127.0.0.1:3000`, or `$ADDR`; the handler's delay `$WORK_MS` (default 100).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use memokit_http::{HttpCacheLayer, Route};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// The handler's simulated work: `$WORK_MS` milliseconds.
fn work() -> Duration {
    static WORK: OnceLock<Duration> = OnceLock::new();
    *WORK.get_or_init(|| {
        let millis = std::env::var("WORK_MS").ok().and_then(|ms| ms.parse().ok());
        Duration::from_millis(millis.unwrap_or(100))
    })
}

/// The slow part: a report of about 1 KiB.
async fn build_report() -> String {
    tokio::time::sleep(work()).await;
    let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let mut report = format!("report #{call}\n");
    for line in 0..40 {
        report.push_str(&format!("line {line:02}: all systems nominal\n"));
    }
    report
}

async fn report() -> String {
    build_report().await
}

/// The same work memoized at the handler level instead.
#[memokit::cached(name = "example::memo_report", ttl = 30)]
async fn memo_report() -> String {
    build_report().await
}

async fn metrics() -> impl IntoResponse {
    let text = memokit::registry().prometheus() + &memokit_http::prometheus();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn invalidate(Extension(cache): Extension<HttpCacheLayer>) -> String {
    format!("{} invalidated\n", cache.invalidate_prefix("/report"))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let cache = HttpCacheLayer::builder("example::http")
        .max_entries(10_000)
        .max_body_bytes(1 << 20)
        .default_route(
            Route::ttl(Duration::from_secs(30))
                .stale_while_revalidate(Duration::from_secs(30))
                .stale_if_error(Duration::from_secs(300)),
        )
        .route("/uncached", Route::bypass())
        .route("/memo", Route::bypass())
        .route("/metrics", Route::bypass())
        .build();
    let app = Router::new()
        .route("/report", get(report))
        .route("/uncached/report", get(report))
        .route("/memo/report", get(memo_report))
        .route("/invalidate/report", post(invalidate))
        .route("/metrics", get(metrics))
        .layer(cache.clone())
        .layer(Extension(cache));
    let address = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_string());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on http://{address} (try: curl -i http://{address}/report)");
    axum::serve(listener, app).await
}

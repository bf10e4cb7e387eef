//! An axum service with a memoized async "database" lookup, Prometheus metrics of every
//! memoized function, and an admin route that clears a cache by name.
//!
//! Run it with `cargo run -p memokit-examples --example web_service` (optionally followed by
//! the address to listen on, `127.0.0.1:3000` by default), then:
//!
//! ```text
//! curl http://127.0.0.1:3000/users/42                          # 20 ms, then from the cache
//! curl http://127.0.0.1:3000/metrics                           # memokit_hits_total{function="users::find"} …
//! curl -X POST http://127.0.0.1:3000/admin/cache/users::find/clear
//! ```
//!
//! It serves until Ctrl-C. The router is `memokit_examples::web_service::app()`, which
//! `examples/tests/web_service.rs` drives over real HTTP.

use memokit_examples::web_service::{app, FIND_USER};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("listening on {url} (Ctrl-C to stop); try:");
    println!("  curl {url}/users/42");
    println!("  curl {url}/metrics");
    println!("  curl -X POST {url}/admin/cache/{FIND_USER}/clear");
    axum::serve(listener, app())
        .with_graceful_shutdown(async {
            // Without a signal handler, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
}

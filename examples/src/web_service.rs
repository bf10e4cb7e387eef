//! The service of `--example web_service`: an axum router with a memoized async "database"
//! lookup, the Prometheus text of every memoized function, and clearing a cache by name.
//!
//! - `GET /users/{id}`: the user (users 1 to 100 exist), from [`find_user`]; 404 otherwise.
//! - `GET /metrics`: [`memokit::Registry::prometheus`], as `text/plain; version=0.0.4`.
//! - `POST /admin/cache/{function}/clear`: clears that function's cache through
//!   [`memokit::Registry::clear`]; 404 naming the known functions if there is none by that name.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, memokit_examples::web_service::app()).await?;
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use memokit::{cached, registry};

/// The registry name of [`find_user`], as used in `/admin/cache/{function}/clear`.
pub const FIND_USER: &str = "users::find";

/// The content type of `GET /metrics`: the Prometheus text format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A row of the "database".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its key.
    pub id: u64,
    /// Its name.
    pub name: String,
}

static QUERIES: AtomicU64 = AtomicU64::new(0);

/// How many queries reached the "database" (computations of [`find_user`]).
///
/// ```
/// let before = memokit_examples::web_service::database_queries();
/// # let _ = before;
/// ```
pub fn database_queries() -> u64 {
    QUERIES.load(Ordering::Relaxed)
}

/// The memoized lookup: a 20 ms "query" on a miss; users 1 to 100 exist. Unknown users
/// (`None`) are cached too, so that probing them does not reach the database either.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use memokit_examples::web_service::find_user;
/// assert_eq!(find_user(7).await.map(|u| u.name), Some("user 7".to_string()));
/// assert_eq!(find_user(1000).await, None);
/// # });
/// ```
#[cached(size = 10_000, ttl = "5m", name = "users::find")]
pub async fn find_user(id: u64) -> Option<User> {
    QUERIES.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(20)).await;
    (1..=100).contains(&id).then(|| User {
        id,
        name: format!("user {id}"),
    })
}

/// The router: `GET /users/{id}`, `GET /metrics`, `POST /admin/cache/{function}/clear`.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// axum::serve(listener, memokit_examples::web_service::app()).await
/// # }
/// ```
pub fn app() -> Router {
    // Listed in the registry from now on, so /metrics shows it before its first request.
    find_user_cache();
    Router::new()
        .route("/users/{id}", get(get_user))
        .route("/metrics", get(metrics))
        .route("/admin/cache/{function}/clear", post(clear_cache))
}

async fn get_user(Path(id): Path<u64>) -> Response {
    match find_user(id).await {
        Some(user) => format!("{} {}\n", user.id, user.name).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no user {id}\n")).into_response(),
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        registry().prometheus(),
    )
        .into_response()
}

async fn clear_cache(Path(function): Path<String>) -> Response {
    if registry().clear(&function) {
        return format!("cleared {function}\n").into_response();
    }
    let mut known: Vec<&str> = registry().functions().iter().map(|f| f.name).collect();
    known.dedup();
    let message = format!(
        "no memoized function named {function:?}; known: {} (a function is listed from its \
         first call)\n",
        known.join(", ")
    );
    (StatusCode::NOT_FOUND, message).into_response()
}

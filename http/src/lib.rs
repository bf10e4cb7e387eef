//! # memokit-http
//!
//! The third layer of caching: HTTP responses, kept in front of the handler by a tower
//! [`Layer`](tower_layer::Layer) for axum, hyper and any `tower::Service`, by the rules of HTTP
//! (RFC 9111 through [`http-cache-semantics`](https://docs.rs/http-cache-semantics), and
//! RFC 5861's stale-while-revalidate and stale-if-error), in a [`memokit::Cache`].
//!
//! - `GET` responses are stored under method, host, URI and the request headers their `Vary`
//!   names (a `HEAD` is a `GET` to the handler, answered from the same entry); a per-route [`Route`] sets the ttl (for responses that state no
//!   freshness), the stale windows and whether errors are stored.
//! - Only what the response allows is stored (`no-store`, `private`, `max-age`, `s-maxage`,
//!   `Expires`, `Set-Cookie`, the status), and nothing malformed.
//! - Every stored response gets a strong `ETag` if it has none; `If-None-Match` and
//!   `If-Modified-Since` get `304`s. `Age` and [`X_CACHE`] (`HIT`, `MISS`, `STALE`,
//!   `REVALIDATED`) are added.
//! - Concurrent requests for one missing response make one handler call (memokit's
//!   coalescing). Bodies over the size limit pass through unstored.
//! - Each layer is listed in `memokit::registry()` (its cache) and in [`prometheus`] (its
//!   hits, misses, stale answers, revalidations, bypasses, …); [`HttpCacheLayer`] invalidates
//!   by path and by prefix.
//!
//! ```
//! # use std::time::Duration;
//! # use axum::{routing::get, Router};
//! # async fn report() -> &'static str { "slow to compute" }
//! // The README's example, as written there.
//! use memokit_http::{HttpCacheLayer, Route};
//!
//! let cache = HttpCacheLayer::builder("api")                 // its name in memokit::registry()
//!     .max_entries(10_000)                                   // or .max_bytes(64 << 20)
//!     .policy(memokit::Policy::WTinyLfu)
//!     .max_body_bytes(1 << 20)                               // larger bodies pass through
//!     .default_route(Route::ttl(Duration::from_secs(30))
//!         .stale_while_revalidate(Duration::from_secs(30))
//!         .stale_if_error(Duration::from_secs(300)))
//!     .route("/admin", Route::bypass())
//!     .route("/catalogue", Route::ttl(Duration::from_secs(600)).cache_errors(true))
//!     .build();
//! let app: Router = Router::new().route("/report", get(report)).layer(cache.clone());
//! cache.invalidate_prefix("/catalogue/");                     // after a write; or invalidate_path
//! # let _ = app;
//! ```

mod body;
mod config;
mod directives;
mod key;
mod service;
mod stats;
mod stored;
mod writes;

pub use body::{BoxError, HttpCacheBody};
pub use config::{HttpCacheBuilder, Route, DEFAULT_MAX_BODY_BYTES};
pub use service::{CacheableService, HttpCache, HttpCacheLayer};
pub use stats::{prometheus, HttpStats};
pub use stored::X_CACHE;

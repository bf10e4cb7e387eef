//! The settings: per-route rules ([`Route`]) and the layer's builder ([`HttpCacheBuilder`]).

use std::time::Duration;

use memokit::Policy;

/// How the responses of one route (a path prefix) are cached.
///
/// ```
/// use std::time::Duration;
/// use memokit_http::Route;
///
/// let products = Route::ttl(Duration::from_secs(60))
///     .stale_while_revalidate(Duration::from_secs(30))
///     .stale_if_error(Duration::from_secs(600))
///     .cache_errors(true);
/// assert_eq!(products.retention(), Duration::from_secs(60 + 600));
/// assert!(!Route::bypass().is_cached());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub(crate) cached: bool,
    pub(crate) ttl: Duration,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    pub(crate) cache_errors: bool,
    pub(crate) downstream_cache_control: bool,
}

impl Route {
    /// Responses that state no freshness of their own (no `max-age`, `s-maxage`, `no-cache`
    /// or `Expires`) are fresh for `ttl` (requests-cache's `expire_after`); those that do
    /// keep theirs.
    pub fn ttl(ttl: Duration) -> Self {
        Route {
            cached: true,
            ttl,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            cache_errors: false,
            downstream_cache_control: true,
        }
    }

    /// Nothing under this route is cached: every request goes to the handler (counted as a
    /// bypass).
    pub fn bypass() -> Self {
        Route {
            cached: false,
            ..Route::ttl(Duration::ZERO)
        }
    }

    /// For this long after a response turns stale, it is served at once (`X-Cache: STALE`)
    /// while one background request revalidates it (RFC 5861). A response's own
    /// `stale-while-revalidate` takes precedence.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = window;
        self
    }

    /// For this long after a response turns stale, it is served instead of a handler's error
    /// (an `Err` or a 5xx status) (RFC 5861). A response's own `stale-if-error` takes
    /// precedence.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Also store error responses that RFC 9111 lets a cache store (`404`, `405`, `410`,
    /// `414`, `501`); off by default, as in requests-cache.
    pub fn cache_errors(mut self, cache_errors: bool) -> Self {
        self.cache_errors = cache_errors;
        self
    }

    /// Whether a stored response that has no `Cache-Control` of its own gets
    /// `public, max-age=<ttl>, stale-while-revalidate=…, stale-if-error=…` for the caches
    /// and browsers downstream (on by default).
    pub fn downstream_cache_control(mut self, add: bool) -> Self {
        self.downstream_cache_control = add;
        self
    }

    /// Whether responses under this route are cached at all.
    pub fn is_cached(&self) -> bool {
        self.cached
    }

    /// How long an entry may be of use: `ttl` plus the longer stale window.
    pub fn retention(&self) -> Duration {
        self.ttl
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
    }
}

/// How the layer bounds what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    Entries(u64),
    Bytes(u64),
}

/// Settings of an [`HttpCacheLayer`](crate::HttpCacheLayer), from
/// [`HttpCacheLayer::builder`](crate::HttpCacheLayer::builder).
///
/// ```
/// use std::time::Duration;
/// use memokit_http::{HttpCacheLayer, Route};
///
/// let layer = HttpCacheLayer::builder("docs::api")
///     .max_bytes(64 << 20)
///     .max_body_bytes(1 << 20)
///     .policy(memokit::Policy::Lru)
///     .default_route(Route::ttl(Duration::from_secs(30)))
///     .route("/admin", Route::bypass())
///     .build();
/// assert_eq!(layer.name(), "docs::api");
/// ```
#[derive(Debug, Clone)]
pub struct HttpCacheBuilder {
    pub(crate) name: &'static str,
    pub(crate) bound: Bound,
    pub(crate) policy: Policy,
    pub(crate) max_body_bytes: usize,
    pub(crate) store_set_cookie: bool,
    pub(crate) share_cookie_requests: bool,
    pub(crate) default_route: Route,
    /// Path prefixes, longest first.
    pub(crate) routes: Vec<(String, Route)>,
}

/// The default size limit of a stored body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

impl HttpCacheBuilder {
    pub(crate) fn new(name: &'static str) -> Self {
        HttpCacheBuilder {
            name,
            bound: Bound::Entries(10_000),
            policy: Policy::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            store_set_cookie: false,
            share_cookie_requests: false,
            default_route: Route::ttl(Duration::from_secs(60)),
            routes: Vec::new(),
        }
    }

    /// At most this many stored responses (the default, 10,000). Replaces `max_bytes`.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.bound = Bound::Entries(entries);
        self
    }

    /// At most this many bytes of stored bodies and headers. Replaces `max_entries`.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.bound = Bound::Bytes(bytes);
        self
    }

    /// The eviction policy of the underlying [`memokit::Cache`].
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Bodies up to this size are buffered and may be stored; larger or longer ones pass
    /// through unstored (counted as `too_large`). Default [`DEFAULT_MAX_BODY_BYTES`].
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Store responses that carry `Set-Cookie` (and replay the cookie to every client). Off by
    /// default: such a response is passed through.
    pub fn store_set_cookie(mut self, store: bool) -> Self {
        self.store_set_cookie = store;
        self
    }

    /// Store responses to requests that carry a `Cookie` even when the response does not say
    /// it is shareable. Off by default: such a response may be one user's page, so it is
    /// stored only if it says `public` or `s-maxage` (as RFC 9111 rules for `Authorization`);
    /// turn it on when cookies never change what a handler answers (analytics cookies).
    ///
    /// ```
    /// let layer = memokit_http::HttpCacheLayer::builder("docs::cookies")
    ///     .share_cookie_requests(true)
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn share_cookie_requests(mut self, share: bool) -> Self {
        self.share_cookie_requests = share;
        self
    }

    /// The rule of paths that match no [`route`](Self::route) (by default a 60 s ttl).
    pub fn default_route(mut self, route: Route) -> Self {
        self.default_route = route;
        self
    }

    /// The rule of paths starting with `prefix` (the longest matching prefix wins; a prefix
    /// given again replaces its earlier rule, as a map's insert does).
    ///
    /// ```
    /// use std::time::Duration;
    /// use memokit_http::{HttpCacheLayer, Route};
    ///
    /// let layer = HttpCacheLayer::builder("docs::route")
    ///     .route("/admin", Route::bypass())
    ///     .route("/admin", Route::ttl(Duration::from_secs(5))) // replaces the bypass
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn route(mut self, prefix: impl Into<String>, route: Route) -> Self {
        let prefix = prefix.into();
        self.routes.retain(|(listed, _)| *listed != prefix);
        self.routes.push((prefix, route));
        self.routes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }

    /// The rule of `path`.
    pub(crate) fn route_of(&self, path: &str) -> Route {
        self.routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map_or(self.default_route, |(_, route)| *route)
    }

    /// How long the cache keeps an entry: the longest retention of any route (a response that
    /// states a longer freshness is still dropped then).
    pub(crate) fn retention(&self) -> Duration {
        self.routes
            .iter()
            .map(|(_, route)| route.retention())
            .fold(self.default_route.retention(), Duration::max)
            .max(Duration::from_secs(1))
    }
}

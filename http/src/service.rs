//! [`HttpCacheLayer`] and its [`HttpCache`] service: the path of one request.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
    PRAGMA, RANGE,
};
use http::{request, HeaderName, Method, Request, Response, StatusCode};
use http_body::Body;
use http_cache_semantics::{AfterResponse, BeforeRequest};
use memokit::Cache;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{buffer, BoxError, Buffered, HttpCacheBody};
use crate::config::{Bound, HttpCacheBuilder, Route};
use crate::directives::RequestDirectives;
use crate::key::{ResourceKey, ResponseKey};
use crate::stats::{bump, Counters, HttpStats};
use crate::stored::{
    answer_conditionally, drop_unusable_age, storable, Answer, Cookies, StoredResponse, X_CACHE,
};
use crate::writes::{Writes, Written};

/// How long a revalidation's result is kept for the callers that waited on it.
const REVALIDATION_HANDOVER: Duration = Duration::from_secs(1);

/// A tower [`Layer`] that caches the responses of the service it wraps by the rules of HTTP
/// (RFC 9111, RFC 5861), in a [`memokit::Cache`]. Cloning it shares the cache.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use memokit_http::{HttpCacheLayer, Route};
///
/// let cache = HttpCacheLayer::builder("docs::layer")
///     .default_route(Route::ttl(Duration::from_secs(30)))
///     .build();
/// let app: Router = Router::new()
///     .route("/hello", get(|| async { "hello" }))
///     .layer(cache.clone());
/// // Later, after a write: drop what is stored under a path.
/// assert_eq!(cache.invalidate_prefix("/hello"), 0);
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct HttpCacheLayer {
    shared: Arc<Shared>,
}

/// What every clone of a layer and of its services shares.
#[derive(Debug)]
struct Shared {
    config: HttpCacheBuilder,
    responses: Cache<ResponseKey, Arc<StoredResponse>>,
    /// The `Vary` names last seen for each resource, to key its next requests.
    vary: Cache<ResourceKey, Arc<[HeaderName]>>,
    /// Coalesces the revalidations of one stored response (its key and generation).
    revalidations: Cache<(ResponseKey, u64), Arc<StoredResponse>>,
    counters: Arc<Counters>,
    /// The generations of handler calls, and the writes that distrust older ones.
    writes: Writes,
}

impl HttpCacheBuilder {
    /// The layer, listed in `memokit::registry()` under its name.
    pub fn build(self) -> HttpCacheLayer {
        let retention = self.retention();
        let bound_entries = self.bound_entries();
        let responses = Cache::builder().policy(self.policy).time_to_live(retention);
        let responses = match self.bound {
            Bound::Entries(entries) => responses.max_capacity(entries),
            Bound::Bytes(bytes) => responses
                .max_capacity(bytes)
                .weigher(|_, stored: &Arc<StoredResponse>| stored.weight()),
        }
        .build();
        memokit::registry().register_cache(self.name, responses.clone());
        let counters = Arc::new(Counters::default());
        crate::stats::list(self.name, &counters);
        let vary = Cache::builder()
            .max_capacity(self.bound_entries())
            .time_to_live(retention)
            .build();
        let revalidations = Cache::builder()
            .max_capacity(1024)
            .time_to_live(REVALIDATION_HANDOVER)
            .build();
        HttpCacheLayer {
            shared: Arc::new(Shared {
                config: self,
                responses,
                vary,
                revalidations,
                counters,
                writes: Writes::new(bound_entries),
            }),
        }
    }

    /// An entry bound for the side tables.
    fn bound_entries(&self) -> u64 {
        match self.bound {
            Bound::Entries(entries) => entries,
            Bound::Bytes(bytes) => (bytes / 1024).max(1024),
        }
    }
}

impl HttpCacheLayer {
    /// A builder of a layer whose cache is listed in `memokit::registry()` as `name`.
    ///
    /// ```
    /// let layer = memokit_http::HttpCacheLayer::builder("docs::builder").max_entries(100).build();
    /// assert!(memokit::registry().stats("docs::builder").is_some());
    /// # let _ = layer;
    /// ```
    pub fn builder(name: &'static str) -> HttpCacheBuilder {
        HttpCacheBuilder::new(name)
    }

    /// Its registry name.
    ///
    /// ```
    /// assert_eq!(memokit_http::HttpCacheLayer::builder("docs::name").build().name(), "docs::name");
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.config.name
    }

    /// Its counters, with those of its cache.
    ///
    /// ```
    /// let layer = memokit_http::HttpCacheLayer::builder("docs::counters").build();
    /// assert_eq!(layer.stats().bypasses, 0);
    /// ```
    pub fn stats(&self) -> HttpStats {
        self.shared.counters.snapshot(self.shared.responses.stats())
    }

    /// Removes every stored response whose URI path is `path` (any query, method or variant);
    /// returns how many. A handler call of that path still running is covered too: its answer
    /// goes to its own caller and is stored, but never served to a later request.
    ///
    /// ```
    /// let layer = memokit_http::HttpCacheLayer::builder("docs::path").build();
    /// assert_eq!(layer.invalidate_path("/users/1"), 0);
    /// ```
    pub fn invalidate_path(&self, path: &str) -> u64 {
        // Noted too, for the handler calls of the path still running.
        self.shared.writes.note(Written::<()>::Path(path));
        self.shared
            .responses
            .invalidate_if(|key, _| key.path() == path)
    }

    /// Removes every stored response whose URI path starts with `prefix`; returns how many.
    /// Unlike [`invalidate_path`](Self::invalidate_path), it cannot tell which handler calls
    /// still running it covers: an answer they store afterwards stays.
    ///
    /// ```
    /// let layer = memokit_http::HttpCacheLayer::builder("docs::prefix").build();
    /// assert_eq!(layer.invalidate_prefix("/users/"), 0);
    /// ```
    pub fn invalidate_prefix(&self, prefix: &str) -> u64 {
        self.shared
            .responses
            .invalidate_if(|key, _| key.path().starts_with(prefix))
    }

    /// Removes every stored response.
    ///
    /// ```
    /// memokit_http::HttpCacheLayer::builder("docs::clear").build().clear();
    /// ```
    pub fn clear(&self) {
        self.shared.responses.clear();
    }
}

impl<S> Layer<S> for HttpCacheLayer {
    type Service = HttpCache<S>;

    fn layer(&self, inner: S) -> HttpCache<S> {
        HttpCache {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service an [`HttpCacheLayer`] wraps around another: it answers `GET` and `HEAD` from
/// its cache when HTTP allows, and calls the inner service otherwise.
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_layer::Layer;
///
/// let layer = memokit_http::HttpCacheLayer::builder("docs::service").build();
/// let router: Router = Router::new().route("/", get(|| async { "hi" }));
/// let service = layer.layer(router); // what `Router::layer` does for each route
/// # let _ = service;
/// ```
#[derive(Debug, Clone)]
pub struct HttpCache<S> {
    inner: S,
    shared: Arc<Shared>,
}

type Answered<E> = Result<Response<HttpCacheBody>, E>;

/// Every tower service the layer can wrap: one that answers `http::Request`s with
/// `http::Response`s whose body yields `Bytes` (axum's `Router`, hyper services, …), and can be
/// cloned and sent to another task (for background revalidations). Implemented for all of them:
/// a bound to name, not a trait to implement.
///
/// ```
/// fn wrappable<S: memokit_http::CacheableService<axum::body::Body>>(_: &S) {}
/// wrappable(&axum::Router::new());
/// ```
pub trait CacheableService<ReqBody>:
    Service<
        Request<ReqBody>,
        Response = Response<Self::ResponseBody>,
        Future: Send + 'static,
        Error: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The body of its responses.
    type ResponseBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
}

impl<S, ReqBody, ResBody> CacheableService<ReqBody> for S
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type ResponseBody = ResBody;
}

impl<S, ReqBody> Service<Request<ReqBody>> for HttpCache<S>
where
    S: CacheableService<ReqBody>,
    ReqBody: Default + Send + 'static,
{
    type Response = Response<HttpCacheBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Answered<S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready answers this request; the clone waits for the next.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(answer(self.shared.clone(), ready, request))
    }
}

/// What the caller that ran the handler for a key got, beside what the cache shares.
enum Led<E> {
    /// Stored under the key it was loaded for, and shared with the waiters.
    Stored,
    /// Not for the waiters: passed through unstored, or stored under another variant.
    Served(Response<HttpCacheBody>),
    /// A response whose body failed part way: passed through as far as it came.
    Broken(Response<HttpCacheBody>),
    Failed(E),
}

/// What the cache hands to callers that waited on a response that is not for sharing: each
/// then asks the handler itself.
#[derive(Debug, Clone, Copy)]
struct NotShared;

/// One handler call's outcome.
enum Fetched<E> {
    Stored(Arc<StoredResponse>),
    Passed(Response<HttpCacheBody>),
    /// Its body failed part way (not too large): a failure of the handler, which neither
    /// replaces nor removes a stored copy.
    Broken(Response<HttpCacheBody>),
    Failed(E),
}

/// The path of one request.
async fn answer<S, ReqBody>(
    shared: Arc<Shared>,
    mut inner: S,
    request: Request<ReqBody>,
) -> Answered<S::Error>
where
    S: CacheableService<ReqBody>,
    ReqBody: Default + Send + 'static,
{
    let route = shared.config.route_of(request.uri().path());
    let method = request.method().clone();
    // A range, or a precondition other than a validator of the whole response, is the
    // handler's to judge: the layer stores and serves whole responses only.
    let partial = [RANGE, IF_RANGE, IF_MATCH, IF_UNMODIFIED_SINCE]
        .iter()
        .any(|name| request.headers().contains_key(name));
    if !(method == Method::GET || method == Method::HEAD) || !route.cached || partial {
        bump(&shared.counters.bypasses);
        // RFC 9111, 4.4: an unsafe method that succeeds invalidates what is stored for its
        // target URI (a `POST` to `/users/7` changed what a `GET` of it returns).
        // Noted once it has succeeded, before its caller hears of it: a request sent after
        // that gets no response the handler gave before it (not even one stored since).
        let target = (route.cached && !method.is_safe())
            .then(|| ResourceKey::new(&method, request.uri(), request.headers()));
        let answered = call(&mut inner, request)
            .await
            .map(|response| response.map(HttpCacheBody::passing));
        if let (Some(target), Ok(response)) = (&target, &answered) {
            if !(response.status().is_client_error() || response.status().is_server_error()) {
                shared.writes.note(target.target());
            }
        }
        return answered;
    }
    let (parts, body) = request.into_parts();
    let asks = RequestDirectives::of(&parts.headers);
    let resource = ResourceKey::new(&parts.method, &parts.uri, &parts.headers);
    let vary = shared.vary.peek(&resource).unwrap_or_default();
    let key = ResponseKey::new(resource, &vary, &parts.headers);
    let request = Exchange {
        shared: &shared,
        route,
        parts: &parts,
        key: &key,
    };

    if asks.only_if_cached {
        let stored = shared.responses.get(&key);
        let now = SystemTime::now();
        return Ok(match stored {
            Some(stored) if request.trusts(&stored) && request.fresh_enough(&stored, now) => {
                request.serve(&stored, Answer::fresh_enough(&stored, now))
            }
            // Not a miss: no handler was asked.
            _ => gateway_timeout(),
        });
    }

    let (mut body, mut asked_again) = (Some(body), false);
    let (loaded, led) = loop {
        let mut led = None;
        let leading = request.lead(&mut inner, body.take().unwrap_or_default(), &mut led);
        let loaded = shared
            .responses
            .try_optionally_get_or_insert_with_async(key.clone(), leading)
            .await
            .ok()
            .flatten();
        match loaded {
            // Found, and asked for before a write of its target: gone, and asked again. A
            // response asked for after this request began is not older than what it may see,
            // so one more round is enough.
            Some(stored) if led.is_none() && !asked_again && !request.trusts(&stored) => {
                shared.responses.invalidate(&key);
                asked_again = true;
            }
            loaded => break (loaded, led),
        }
    };
    match (loaded, led) {
        (Some(stored), Some(Led::Stored)) => {
            bump(&shared.counters.misses);
            Ok(request.serve(&stored, Answer::Miss))
        }
        (Some(stored), _) => request.answer_from_store(inner, stored, asks).await,
        (None, Some(Led::Served(response) | Led::Broken(response))) => {
            bump(&shared.counters.misses);
            Ok(response)
        }
        (None, Some(Led::Failed(error))) => Err(error),
        (None, Some(Led::Stored) | None) => {
            bump(&shared.counters.misses);
            request.pass(&mut inner).await
        }
    }
}

/// One request being answered, and what it needs from the layer.
struct Exchange<'a> {
    shared: &'a Arc<Shared>,
    route: Route,
    /// As the client sent it (its validators decide its `304`).
    parts: &'a request::Parts,
    key: &'a ResponseKey,
}

impl Exchange<'_> {
    /// The request the handler gets: without the client's validators, so that it answers
    /// with a whole response the layer can store.
    fn for_handler(&self) -> request::Parts {
        let mut parts = self.parts.clone();
        // A `HEAD` asks for the `GET`, whose whole response is stored and answers both: a
        // service that answers `HEAD` itself with an empty body (a whole axum `Router`,
        // `ServeDir`) stored that empty body, with its length and `ETag`. The server sends no
        // body to the `HEAD`.
        if parts.method == Method::HEAD {
            parts.method = Method::GET;
        }
        for conditional in [
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            IF_MATCH,
            IF_UNMODIFIED_SINCE,
            IF_RANGE,
        ] {
            parts.headers.remove(conditional);
        }
        parts
    }

    /// Whether `stored` was asked for after the last write of its target and its path.
    fn trusts(&self, stored: &StoredResponse) -> bool {
        self.shared
            .writes
            .trusts(stored.generation, self.key.written())
    }

    /// Whether `stored` may answer this request without asking the handler (its freshness
    /// and the request's `no-cache`, `max-age`, `min-fresh`, `max-stale`), as
    /// `http-cache-semantics` decides.
    fn fresh_enough(&self, stored: &StoredResponse, now: SystemTime) -> bool {
        let headers = &self.parts.headers;
        if !headers.contains_key(CACHE_CONTROL) && !headers.contains_key(PRAGMA) {
            // No request directive: `before_request` comes down to `is_stale`, since the key
            // already matched its URI, `Host` and `Vary`; it would also copy every header and
            // format a date, which a hit need not pay for.
            return !stored.policy.is_stale(now);
        }
        // Stale, and its directives forbid a stale answer even to a `max-stale` request
        // (`s-maxage`, which `http-cache-semantics` does not take for `proxy-revalidate`).
        if stored.forbids_stale && stored.policy.is_stale(now) {
            return false;
        }
        matches!(
            stored.policy.before_request(self.parts, now),
            BeforeRequest::Fresh(_)
        )
    }

    fn serve(&self, stored: &StoredResponse, answer: Answer) -> Response<HttpCacheBody> {
        let counters = &self.shared.counters;
        match answer {
            Answer::Hit => bump(&counters.hits),
            Answer::Stale => bump(&counters.stale),
            Answer::Miss | Answer::Revalidated => {}
        }
        let response = stored.serve(
            &self.parts.method,
            &self.parts.headers,
            answer,
            SystemTime::now(),
        );
        if response.status() == StatusCode::NOT_MODIFIED {
            bump(&counters.not_modified);
        }
        response
    }

    /// The handler's answer to this request, passed through.
    async fn pass<S, ReqBody>(&self, inner: &mut S) -> Answered<S::Error>
    where
        S: CacheableService<ReqBody>,
        ReqBody: Default + Send + 'static,
    {
        let request = Request::from_parts(self.for_handler(), ReqBody::default());
        let response = call(inner, request).await?;
        let response = with_x_cache(response.map(HttpCacheBody::passing), Answer::Miss);
        Ok(answer_conditionally(&self.parts.headers, response))
    }

    /// The computation of a missing key: the handler's response, shared with the callers
    /// waiting on it when it was stored under this key.
    async fn lead<S, ReqBody>(
        &self,
        inner: &mut S,
        body: ReqBody,
        led: &mut Option<Led<S::Error>>,
    ) -> Result<Option<Arc<StoredResponse>>, NotShared>
    where
        S: CacheableService<ReqBody>,
        ReqBody: Default + Send + 'static,
    {
        let request = Request::from_parts(self.for_handler(), body);
        match self.fetch(inner, request, None).await {
            Fetched::Stored(stored) => {
                let key = self.learn_key(&stored);
                if key == *self.key {
                    *led = Some(Led::Stored);
                    return Ok(Some(stored));
                }
                // Its `Vary` names other headers than the key assumed: stored under its own.
                self.shared.responses.insert(key, stored.clone());
                *led = Some(Led::Served(self.serve(&stored, Answer::Miss)));
            }
            Fetched::Passed(response) | Fetched::Broken(response) => {
                *led = Some(Led::Served(response))
            }
            Fetched::Failed(error) => {
                *led = Some(Led::Failed(error));
                return Err(NotShared);
            }
        }
        // A response not stored here is a load of the cache, not a failed one.
        Ok(None)
    }

    /// The key `stored` belongs under (this request's headers named by its `Vary`), after
    /// noting its `Vary` for the resource's next requests.
    fn learn_key(&self, stored: &StoredResponse) -> ResponseKey {
        // Written with every response stored, so that it lives as long as the newest of them.
        let resource = self.key.resource();
        self.shared
            .vary
            .insert(resource.clone(), stored.vary.clone());
        ResponseKey::new(resource.clone(), &stored.vary, &self.parts.headers)
    }

    /// Calls the handler and judges its response: stored, passed through, or its error.
    async fn fetch<S, ReqBody>(
        &self,
        inner: &mut S,
        request: Request<ReqBody>,
        previous: Option<&StoredResponse>,
    ) -> Fetched<S::Error>
    where
        S: CacheableService<ReqBody>,
        ReqBody: Default + Send + 'static,
    {
        let judged = self.parts;
        // Taken before the handler runs: a write that ends while it runs distrusts its answer.
        let generation = self.shared.writes.next_generation();
        let response = match call(inner, request).await {
            Ok(response) => response,
            Err(error) => return Fetched::Failed(error),
        };
        let now = SystemTime::now();
        let (mut head, body) = response.into_parts();
        let shared = &self.shared;
        if let Some(previous) = previous.filter(|_| head.status == StatusCode::NOT_MODIFIED) {
            drop_unusable_age(&mut head.headers);
            if let AfterResponse::NotModified(policy, _) =
                previous.policy.after_response(judged, &head, now)
            {
                let revalidated = previous.revalidated(policy, &head.headers, now, generation);
                return Fetched::Stored(Arc::new(revalidated));
            }
            // A `304` that does not match what is stored (another validator, or none) answers
            // no request of a client that sent none: ask for the whole response.
            let request = Request::from_parts(self.for_handler(), ReqBody::default());
            return Box::pin(self.fetch(inner, request, None)).await;
        }
        let cookies = Cookies {
            store_set_cookie: shared.config.store_set_cookie,
            share_cookie_requests: shared.config.share_cookie_requests,
        };
        let storable = match storable(judged, &head, &self.route, cookies, now) {
            Ok(storable) => storable,
            Err(_) => {
                bump(&shared.counters.not_stored);
                let passed = Response::from_parts(head, HttpCacheBody::passing(body));
                let passed = with_x_cache(passed, Answer::Miss);
                return Fetched::Passed(answer_conditionally(&self.parts.headers, passed));
            }
        };
        match buffer(body, shared.config.max_body_bytes).await {
            Buffered::Complete(body) => {
                let stored = StoredResponse::new(head, body, storable, now, generation);
                Fetched::Stored(Arc::new(stored))
            }
            Buffered::TooLarge(body) => {
                bump(&shared.counters.too_large);
                let passed = with_x_cache(Response::from_parts(head, body), Answer::Miss);
                Fetched::Passed(answer_conditionally(&self.parts.headers, passed))
            }
            Buffered::Failed(body) => {
                bump(&shared.counters.too_large);
                Fetched::Broken(with_x_cache(Response::from_parts(head, body), Answer::Miss))
            }
        }
    }

    /// The answer from a response found stored: fresh, stale while it is revalidated in the
    /// background, or revalidated first (and stale if the handler fails, within
    /// stale-if-error).
    async fn answer_from_store<S, ReqBody>(
        &self,
        mut inner: S,
        stored: Arc<StoredResponse>,
        asks: RequestDirectives,
    ) -> Answered<S::Error>
    where
        S: CacheableService<ReqBody>,
        ReqBody: Default + Send + 'static,
    {
        let now = SystemTime::now();
        let stale_for = stored.stale_for(now);
        if self.fresh_enough(&stored, now) {
            return Ok(self.serve(&stored, Answer::fresh_enough(&stored, now)));
        }
        if !asks.forbids_stale && !stale_for.is_zero() && stale_for <= stored.stale_while_revalidate
        {
            self.revalidate_in_background(inner, stored.clone());
            return Ok(self.serve(&stored, Answer::Stale));
        }
        // Only a stale copy, within its window, and for a request that accepts one: a fresh
        // copy the request would not take (`no-cache`) is no answer to a failure.
        let stale_if_error =
            !asks.forbids_stale && !stale_for.is_zero() && stale_for <= stored.stale_if_error;
        let (revalidated, led) = self.revalidate(&mut inner, &stored).await;
        match (revalidated, led) {
            (Ok(Some(fresh)), _) => Ok(self.serve(&fresh, Answer::Revalidated)),
            (_, Some(Led::Served(response)))
                if stale_if_error && response.status().is_server_error() =>
            {
                Ok(self.serve(&stored, Answer::Stale))
            }
            (_, Some(Led::Served(response))) => Ok(response),
            (_, Some(Led::Failed(_) | Led::Broken(_))) | (Err(NotShared), None)
                if stale_if_error =>
            {
                Ok(self.serve(&stored, Answer::Stale))
            }
            (_, Some(Led::Broken(response))) => Ok(response),
            (_, Some(Led::Failed(error))) => Err(error),
            // Waited on another caller's revalidation that failed (no copy of its error), or
            // whose answer was not for sharing (not a failure): ask the handler.
            (Err(NotShared) | Ok(None), None | Some(Led::Stored)) => {
                bump(&self.shared.counters.misses);
                self.pass(&mut inner).await
            }
        }
    }

    /// Asks the handler again for `stored` (with its validators), one caller at a time per
    /// stored response: the new response (`Ok(Some)`), nothing to share (`Ok(None)`: an
    /// answer not stored) or a failure (`Err`), and what this caller got if it ran the
    /// handler itself (`None` if it waited on another caller's run).
    async fn revalidate<S, ReqBody>(
        &self,
        inner: &mut S,
        stored: &Arc<StoredResponse>,
    ) -> (
        Result<Option<Arc<StoredResponse>>, NotShared>,
        Option<Led<S::Error>>,
    )
    where
        S: CacheableService<ReqBody>,
        ReqBody: Default + Send + 'static,
    {
        let mut led = None;
        let revalidation = async {
            bump(&self.shared.counters.revalidations);
            let now = SystemTime::now();
            let mut parts = self.for_handler();
            // Its validators added; the rest of the request as it came (its extensions too:
            // axum's path parameters, a middleware's values).
            if let BeforeRequest::Stale { request, .. } = stored.policy.before_request(&parts, now)
            {
                parts.headers = request.headers;
            }
            let request = Request::from_parts(parts, ReqBody::default());
            match self.fetch(inner, request, Some(stored)).await {
                Fetched::Stored(fresh) => {
                    let key = self.learn_key(&fresh);
                    self.shared.responses.insert(key.clone(), fresh.clone());
                    if key != *self.key {
                        // Its `Vary` now names headers the stored one's key did not: it answers
                        // this request's variant, not the other requests that waited on it
                        // (one user's page for another's cookie), which ask for their own.
                        led = Some(Led::Served(self.serve(&fresh, Answer::Revalidated)));
                        return Ok(None);
                    }
                    Ok(Some(fresh))
                }
                Fetched::Passed(response) => {
                    // A 5xx is a failure: the stored copy stays, and the callers that waited
                    // on it get it within stale-if-error, as for an `Err`.
                    if response.status().is_server_error() {
                        led = Some(Led::Served(response));
                        return Err(NotShared);
                    }
                    // No longer storable: the stored one must not keep answering.
                    self.shared.responses.invalidate(self.key);
                    led = Some(Led::Served(response));
                    Ok(None)
                }
                Fetched::Broken(response) => {
                    // A failure of the handler: the stored copy stays, as for an error.
                    led = Some(Led::Broken(response));
                    Err(NotShared)
                }
                Fetched::Failed(error) => {
                    led = Some(Led::Failed(error));
                    Err(NotShared)
                }
            }
        };
        let generation_key = (self.key.clone(), stored.generation);
        let revalidated = self
            .shared
            .revalidations
            .try_optionally_get_or_insert_with_async(generation_key, revalidation)
            .await;
        (revalidated, led)
    }

    /// Revalidates `stored` on the current tokio runtime (callers that do so while one
    /// revalidation runs join it: one handler call). Without a runtime, nothing: the next
    /// request past the window revalidates.
    fn revalidate_in_background<S, ReqBody>(&self, inner: S, stored: Arc<StoredResponse>)
    where
        S: CacheableService<ReqBody>,
        ReqBody: Default + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // One task per stored response at a time, not one per stale request while it runs.
        if stored.revalidating.swap(true, Ordering::AcqRel) {
            return;
        }
        let (shared, parts, key) = (self.shared.clone(), self.parts.clone(), self.key.clone());
        let route = self.route;
        runtime.spawn(async move {
            let mut inner = inner;
            let exchange = Exchange {
                shared: &shared,
                route,
                parts: &parts,
                key: &key,
            };
            // Cleared however the revalidation ends, a panic of the handler included: the
            // next stale request starts another.
            let _running = Revalidating(&stored);
            // Its outcome is in the cache (or, on failure, the stale response stays).
            let _ = exchange.revalidate(&mut inner, &stored).await;
        });
    }
}

/// Clears a stored response's `revalidating` flag when its background revalidation ends.
struct Revalidating<'a>(&'a StoredResponse);

impl Drop for Revalidating<'_> {
    fn drop(&mut self) {
        self.0.revalidating.store(false, Ordering::Release);
    }
}

/// Calls `inner` once it is ready.
async fn call<S, ReqBody>(inner: &mut S, request: Request<ReqBody>) -> Result<S::Response, S::Error>
where
    S: Service<Request<ReqBody>>,
{
    poll_fn(|cx| inner.poll_ready(cx)).await?;
    inner.call(request).await
}

fn with_x_cache(mut response: Response<HttpCacheBody>, answer: Answer) -> Response<HttpCacheBody> {
    response.headers_mut().insert(X_CACHE, answer.header());
    response
}

/// The answer to `only-if-cached` with nothing usable stored (RFC 9111 §5.2.1.7).
fn gateway_timeout() -> Response<HttpCacheBody> {
    let mut response = with_x_cache(Response::new(HttpCacheBody::empty()), Answer::Miss);
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    response
}

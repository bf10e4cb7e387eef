//! A stored response: whether a handler's response may be stored (the RFC 9111 rules are
//! `http-cache-semantics`'s, plus the layer's own: errors, `Set-Cookie`, malformed fields),
//! and how a stored one is served (`Age`, `X-Cache`, `304`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use headers::{ETag, HeaderMapExt, IfModifiedSince, IfNoneMatch, LastModified};
use http::header::{
    AGE, CACHE_CONTROL, CONTENT_LENGTH, COOKIE, DATE, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE,
    VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_cache_semantics::{CacheOptions, CachePolicy};

use crate::body::HttpCacheBody;
use crate::config::Route;
use crate::directives;
use crate::key::{vary_names, BadVary};

/// The response header that tells how the layer answered: `HIT`, `MISS`, `STALE` or
/// `REVALIDATED`.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// How the layer answered a request, as sent in [`X_CACHE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Hit,
    Miss,
    Stale,
    Revalidated,
}

impl Answer {
    /// The answer of `stored`, found fresh enough for the request at `now`: a hit while it is
    /// fresh, else stale (within the request's `max-stale`), said and counted so.
    pub(crate) fn fresh_enough(stored: &StoredResponse, now: SystemTime) -> Answer {
        match stored.stale_for(now).is_zero() {
            true => Answer::Hit,
            false => Answer::Stale,
        }
    }

    pub(crate) fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Answer::Hit => "HIT",
            Answer::Miss => "MISS",
            Answer::Stale => "STALE",
            Answer::Revalidated => "REVALIDATED",
        })
    }
}

/// Why a response was passed through unstored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStored {
    /// The RFC 9111 rules say no (`no-store`, `private`, an uncacheable status, …), or it
    /// would be stale at once.
    Policy,
    /// An error status and the route does not cache errors.
    Error,
    /// `Set-Cookie`, and the layer does not store those.
    SetCookie,
    /// Asked for with a `Cookie` (perhaps one user's page), and not declared shareable
    /// (`public` or `s-maxage`).
    Cookie,
    /// A malformed or conflicting `Cache-Control`, `ETag`, date or `Vary`.
    Malformed,
}

/// A response the layer holds, with its RFC 9111 policy.
#[derive(Debug)]
pub(crate) struct StoredResponse {
    pub(crate) status: StatusCode,
    /// As served, with the `ETag` the layer made if the handler set none.
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) policy: CachePolicy,
    pub(crate) vary: Arc<[HeaderName]>,
    /// When it turns stale (`http-cache-semantics` counts its age from here).
    pub(crate) fresh_until: SystemTime,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    /// Its directives forbid serving it stale at all (`must-revalidate`, `s-maxage`, …), even
    /// to a request that accepts a stale answer (`max-stale`).
    pub(crate) forbids_stale: bool,
    /// Tells apart two responses stored under one key (for coalescing their revalidations).
    pub(crate) generation: u64,
    /// Whether a background revalidation of it runs (stale-while-revalidate starts one).
    pub(crate) revalidating: AtomicBool,
}

/// The layer's cookie rules (see `HttpCacheBuilder::store_set_cookie` and
/// `share_cookie_requests`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cookies {
    pub(crate) store_set_cookie: bool,
    pub(crate) share_cookie_requests: bool,
}

/// What the layer decided about a response head, before reading its body.
pub(crate) struct Storable {
    policy: CachePolicy,
    vary: Arc<[HeaderName]>,
    fresh_for: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
    forbids_stale: bool,
    downstream: Option<HeaderValue>,
}

/// Whether the response to `request` with head `response` may be stored under `route`.
pub(crate) fn storable(
    request: &http::request::Parts,
    response: &http::response::Parts,
    route: &Route,
    cookies: Cookies,
    now: SystemTime,
) -> Result<Storable, NotStored> {
    if (response.status.is_client_error() || response.status.is_server_error())
        && !route.cache_errors
    {
        return Err(NotStored::Error);
    }
    let headers = &response.headers;
    if headers.contains_key(SET_COOKIE) && !cookies.store_set_cookie {
        return Err(NotStored::SetCookie);
    }
    let directives = directives::cache_control(headers).ok_or(NotStored::Malformed)?;
    // As RFC 9111 §3.5 rules for `Authorization`: a response to a request with credentials is
    // one user's unless it says it is everyone's.
    if request.headers.contains_key(COOKIE)
        && !cookies.share_cookie_requests
        && !["public", "s-maxage"]
            .iter()
            .any(|name| directives::has(&directives, name))
    {
        return Err(NotStored::Cookie);
    }
    if !validators_and_dates_parse(headers) {
        return Err(NotStored::Malformed);
    }
    let vary = vary_names(headers).map_err(|bad| match bad {
        BadVary::Star => NotStored::Policy,
        BadVary::Malformed => NotStored::Malformed,
    })?;

    // What the policy judges: the head without a cookie the layer was told to store anyway,
    // and without an `Age` it cannot add to (a huge one overflows its arithmetic).
    let mut judged = response.headers.clone();
    judged.remove(SET_COOKIE);
    drop_unusable_age(&mut judged);
    let options = CacheOptions::default(); // a shared cache: `private` is not stored
    let judge = |headers: &HeaderMap| {
        let mut head = Response::new(());
        *head.status_mut() = response.status;
        *head.headers_mut() = headers.clone();
        CachePolicy::new_options(request, &head, now, options)
    };
    let mut policy = judge(&judged);
    if !policy.is_storable() {
        return Err(NotStored::Policy);
    }
    if !directives::states_freshness(headers, &directives) {
        // The route's ttl, as the `s-maxage` the handler did not send.
        // In whole seconds, rounded up: a route of 500 ms stores for a second, not never.
        let s_maxage = format!("s-maxage={}", whole_seconds(route.ttl));
        judged.append(
            CACHE_CONTROL,
            HeaderValue::from_str(&s_maxage).map_err(|_| NotStored::Policy)?,
        );
        policy = judge(&judged);
    }
    let fresh_for = policy.time_to_live(now).min(directives::LONGEST);
    if fresh_for.is_zero() {
        return Err(NotStored::Policy);
    }
    // `must-revalidate`, `proxy-revalidate` and `s-maxage` forbid serving it stale at all.
    let forbids_stale = directives::forbids_stale(&directives);
    let window = |name: &str, configured: Duration| match forbids_stale {
        true => Duration::ZERO,
        false => directives::seconds(&directives, name).unwrap_or(configured),
    };
    let stale_while_revalidate = window("stale-while-revalidate", route.stale_while_revalidate);
    let stale_if_error = window("stale-if-error", route.stale_if_error);
    // Only for a response that states no freshness of its own: a `max-age` sent beside its
    // `Expires` would override it downstream.
    let downstream = (route.downstream_cache_control
        && !headers.contains_key(CACHE_CONTROL)
        && !headers.contains_key(EXPIRES))
    .then(|| downstream_cache_control(route));
    Ok(Storable {
        policy,
        vary,
        fresh_for,
        stale_while_revalidate,
        stale_if_error,
        forbids_stale,
        downstream,
    })
}

/// Removes an `Age` that is not a small number: `http-cache-semantics` adds the time since
/// to it, which overflows (and panics) for one near `u64::MAX` seconds.
pub(crate) fn drop_unusable_age(headers: &mut HeaderMap) {
    let usable = |age: &HeaderValue| {
        age.to_str()
            .ok()
            .and_then(|a| a.parse::<u32>().ok())
            .is_some()
    };
    if headers.get_all(AGE).iter().any(|age| !usable(age)) {
        headers.remove(AGE);
    }
}

/// `duration` in whole seconds, rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// The `Cache-Control` a route announces to the caches and browsers downstream.
fn downstream_cache_control(route: &Route) -> HeaderValue {
    let text = format!(
        "public, max-age={}, stale-while-revalidate={}, stale-if-error={}",
        whole_seconds(route.ttl),
        route.stale_while_revalidate.as_secs(),
        route.stale_if_error.as_secs()
    );
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("public"))
}

/// Whether each validator and date the response carries parses (a malformed one is no
/// reason to panic, but is one not to store).
fn validators_and_dates_parse(headers: &HeaderMap) -> bool {
    entity_tags_are_safe(headers, &ETAG)
        && headers.typed_try_get::<ETag>().is_ok()
        && headers.typed_try_get::<LastModified>().is_ok()
        && headers.typed_try_get::<headers::Expires>().is_ok()
        && headers.typed_try_get::<headers::Date>().is_ok()
        && [ETAG, LAST_MODIFIED, EXPIRES, DATE]
            .iter()
            .all(|name| headers.get_all(name).iter().count() <= 1)
}

impl StoredResponse {
    /// The stored form of a response whose head was judged [`Storable`], with its whole body.
    pub(crate) fn new(
        mut head: http::response::Parts,
        body: Bytes,
        storable: Storable,
        now: SystemTime,
        generation: u64,
    ) -> Self {
        if !head.headers.contains_key(ETAG) {
            head.headers.insert(ETAG, strong_etag(&body));
        }
        if let Some(cache_control) = storable.downstream {
            head.headers.insert(CACHE_CONTROL, cache_control);
        }
        head.headers.remove(AGE);
        StoredResponse {
            status: head.status,
            headers: head.headers,
            body,
            policy: storable.policy,
            vary: storable.vary,
            fresh_until: now + storable.fresh_for,
            stale_while_revalidate: storable.stale_while_revalidate,
            stale_if_error: storable.stale_if_error,
            forbids_stale: storable.forbids_stale,
            generation,
            revalidating: AtomicBool::new(false),
        }
    }

    /// The same body with the policy of a `304` that revalidated it, and the header fields the
    /// `304` sent in place of the stored ones (RFC 9111 §4.3.4).
    pub(crate) fn revalidated(
        &self,
        policy: CachePolicy,
        updates: &HeaderMap,
        now: SystemTime,
        generation: u64,
    ) -> Self {
        let fresh_for = policy.time_to_live(now).min(directives::LONGEST);
        let mut headers = self.headers.clone();
        for name in updates.keys() {
            // Not those that describe the `304` itself.
            if [CONTENT_LENGTH, AGE, X_CACHE].contains(name) {
                continue;
            }
            headers.remove(name);
            for value in updates.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        StoredResponse {
            status: self.status,
            headers,
            body: self.body.clone(),
            policy,
            vary: self.vary.clone(),
            fresh_until: now + fresh_for,
            stale_while_revalidate: self.stale_while_revalidate,
            stale_if_error: self.stale_if_error,
            forbids_stale: self.forbids_stale,
            generation,
            revalidating: AtomicBool::new(false),
        }
    }

    /// How long it has been stale at `now` (zero while fresh).
    pub(crate) fn stale_for(&self, now: SystemTime) -> Duration {
        now.duration_since(self.fresh_until).unwrap_or_default()
    }

    /// Its weight for a byte bound: body and headers.
    pub(crate) fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        u32::try_from(self.body.len().saturating_add(headers)).unwrap_or(u32::MAX)
    }

    /// The answer to a request with `method` and `request` headers: the stored response,
    /// or a `304` when the request's validators match it.
    pub(crate) fn serve(
        &self,
        method: &Method,
        request: &HeaderMap,
        answer: Answer,
        now: SystemTime,
    ) -> Response<HttpCacheBody> {
        let mut headers = self.headers.clone();
        let age = self.policy.age(now).as_secs();
        headers.insert(AGE, HeaderValue::from(age));
        headers.insert(X_CACHE, answer.header());
        // Only a 2xx answers a precondition (RFC 9110 §13.2.1).
        if self.status.is_success() && not_modified(request, &headers) {
            return not_modified_response(headers);
        }
        let body = if method == Method::HEAD {
            // The length the `GET` would have, not that of the empty body (RFC 9110 §8.6).
            headers.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
            HttpCacheBody::empty()
        } else {
            HttpCacheBody::from(self.body.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

/// A strong `ETag` made from the body: 128 bits of xxh3 in hex.
fn strong_etag(body: &[u8]) -> HeaderValue {
    let digest = xxhash_rust::xxh3::xxh3_128(body);
    HeaderValue::from_str(&format!("\"{digest:032x}\""))
        .unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Whether the entity tags in the `name` fields have no space or tab inside their quotes.
/// `headers` 0.4 parses such a tag with a `debug_assert!` that fails (a panic in debug
/// builds); RFC 9110 does not allow them, so such a field counts as malformed.
fn entity_tags_are_safe(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers.get_all(name).iter().all(|field| {
        let mut quoted = false;
        field.as_bytes().iter().all(|&byte| {
            if byte == b'"' {
                quoted = !quoted;
            }
            !(quoted && (byte == b' ' || byte == b'\t'))
        })
    })
}

/// RFC 9110 §13.2.2: `If-None-Match` first (weak comparison); without it,
/// `If-Modified-Since` against `Last-Modified`. A validator that does not parse is ignored.
fn not_modified(request: &HeaderMap, response: &HeaderMap) -> bool {
    if request.contains_key(http::header::IF_NONE_MATCH) {
        if !entity_tags_are_safe(request, &http::header::IF_NONE_MATCH) {
            return false;
        }
        let Some(if_none_match) = request.typed_get::<IfNoneMatch>() else {
            return false;
        };
        return response
            .typed_get::<ETag>()
            .is_some_and(|etag| !if_none_match.precondition_passes(&etag));
    }
    match (
        request.typed_get::<IfModifiedSince>(),
        response.typed_get::<LastModified>(),
    ) {
        (Some(since), Some(modified)) => !since.is_modified(modified.into()),
        _ => false,
    }
}

/// A response the layer passes through unstored, as the answer to `request`: a `304` when the
/// request's validators match it. The layer took them off the request it made to the handler
/// (so that a response it may store is whole); without this, a response it then did not store
/// (`private`, too large) was sent whole to a client that held it already.
pub(crate) fn answer_conditionally(
    request: &HeaderMap,
    response: Response<HttpCacheBody>,
) -> Response<HttpCacheBody> {
    if response.status().is_success() && not_modified(request, response.headers()) {
        return not_modified_response(response.headers().clone());
    }
    response
}

/// A `304` with the fields RFC 9110 §15.4.5 asks for (and `Age`, `X-Cache`), and no body.
fn not_modified_response(headers: HeaderMap) -> Response<HttpCacheBody> {
    let mut kept = HeaderMap::new();
    for name in [
        CACHE_CONTROL,
        http::header::CONTENT_LOCATION,
        DATE,
        ETAG,
        EXPIRES,
        VARY,
        LAST_MODIFIED,
        AGE,
        X_CACHE,
    ] {
        for value in headers.get_all(&name) {
            kept.append(name.clone(), value.clone());
        }
    }
    let mut response = Response::new(HttpCacheBody::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    *response.headers_mut() = kept;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::directives::RequestDirectives;

    /// A number of seconds, often at the edges (`u32`, `i64` and `u64` limits).
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,6}",
            "[0-9]{18,25}",
            Just(u64::MAX.to_string()),
            Just((u64::MAX / 2).to_string()),
            Just(i64::MAX.to_string()),
            Just((u64::from(u32::MAX) + 1).to_string()),
        ]
    }

    /// A `Cache-Control` list with numbers at the edges, or any visible ASCII.
    fn cache_control() -> impl Strategy<Value = String> {
        let name = "max-age|s-maxage|stale-while-revalidate|stale-if-error|no-cache|no-store\
                    |must-revalidate|proxy-revalidate|public|private|immutable|min-fresh\
                    |max-stale|only-if-cached";
        let directive = (name, proptest::option::of(number()))
            .prop_map(|(name, value)| value.map_or(name.clone(), |v| format!("{name}={v}")));
        let list = proptest::collection::vec(directive, 1..4).prop_map(|d| d.join(", "));
        prop_oneof![4 => list, 1 => "[ -~]{0,40}"]
    }

    /// An HTTP date that may not exist, or any visible ASCII.
    fn date() -> impl Strategy<Value = String> {
        let date =
            "(Mon|Fri|Xyz), [0-9]{2} (Jan|Dec|Foo) [0-9]{1,5} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT";
        prop_oneof![3 => date, 1 => "[ -~]{0,40}"]
    }

    /// Each response field, by its name, or absent (most of the time: a response with several
    /// random fields is rarely storable, and the storable ones are the interesting ones).
    fn response_field(name: &HeaderName) -> BoxedStrategy<Option<String>> {
        let value = match name.as_str() {
            "cache-control" => cache_control().boxed(),
            "age" => prop_oneof![3 => number(), 1 => "[ -~]{0,20}"].boxed(),
            "etag" => "(W/)?\"[ -~]{0,12}\"?".boxed(),
            "vary" => {
                prop_oneof![3 => "(accept|x-a|\\*)(, (accept|cookie))?", 1 => "[ -~]{0,40}"].boxed()
            }
            _ => date().boxed(),
        };
        proptest::option::weighted(0.3, value).boxed()
    }

    /// The fields that are present and valid header values.
    fn headers(fields: &[(HeaderName, Option<String>)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            if let Some(Ok(value)) = value.as_deref().map(HeaderValue::from_str) {
                headers.append(name.clone(), value);
            }
        }
        headers
    }

    const RESPONSE_FIELDS: [HeaderName; 7] =
        [CACHE_CONTROL, EXPIRES, AGE, ETAG, VARY, LAST_MODIFIED, DATE];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn no_header_values_make_it_panic(
            response_fields in RESPONSE_FIELDS.iter().map(response_field).collect::<Vec<_>>(),
            request_cache_control in proptest::option::weighted(0.5, cache_control()),
            if_none_match in proptest::option::weighted(0.5, "(W/)?\"[ -~]{0,12}\"?(, \"[a-z]{0,3}\")?"),
            if_modified_since in proptest::option::weighted(0.5, date()),
            status in prop_oneof![3 => Just(200u16), 1 => Just(304), 1 => Just(404), 1 => Just(500)],
            years_later in 0u64..200,
        ) {
            let response_headers =
                headers(&RESPONSE_FIELDS.iter().cloned().zip(response_fields).collect::<Vec<_>>());
            let request_headers = headers(&[
                (CACHE_CONTROL, request_cache_control),
                (http::header::IF_NONE_MATCH, if_none_match),
                (http::header::IF_MODIFIED_SINCE, if_modified_since),
            ]);
            let (mut request, ()) = http::Request::new(()).into_parts();
            request.headers = request_headers;
            let (mut head, ()) = Response::new(()).into_parts();
            head.status = StatusCode::from_u16(status).unwrap_or_default();
            head.headers = response_headers;
            let route = Route::ttl(Duration::from_secs(60))
                .stale_while_revalidate(Duration::from_secs(30))
                .cache_errors(true);
            let now = SystemTime::now();
            let later = now + Duration::from_secs(years_later * 365 * 24 * 3600);
            let _ = RequestDirectives::of(&request.headers);
            let cookies = Cookies {
                store_set_cookie: true,
                share_cookie_requests: true,
            };
            if let Ok(storable) = storable(&request, &head, &route, cookies, now) {
                let stored = StoredResponse::new(head, Bytes::from_static(b"x"), storable, now, 0);
                let _ = stored.serve(&Method::GET, &request.headers, Answer::Hit, later);
                let _ = stored.policy.before_request(&request, later);
                let _ = stored.stale_for(later);
            }
        }
    }
}

//! Revalidation, preconditions and what a stored response carries, over real HTTP on loopback:
//! one test per rule, each found broken by a user's test and checked to fail with the rule
//! broken.

mod support;

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::routing::get as route_get;
use axum::Router;
use hyper::{Method, StatusCode};
use memokit_http::{HttpCacheLayer, Route};
use support::{get, response, send, serve, serve_behind, Calls, ChunkedBody};

fn layer(name: &'static str, route: Route) -> HttpCacheLayer {
    HttpCacheLayer::builder(name).default_route(route).build()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn a_revalidation_keeps_the_requests_extensions() {
    // Kept past its ttl (a stale-if-error window), so that it is revalidated, not loaded.
    let route = Route::ttl(secs(1)).stale_if_error(secs(60));
    let layer = layer("revalidation::extensions", route);
    let app = Router::new()
        .route(
            "/users/{id}",
            route_get(|Path(id): Path<u32>| async move { format!("user {id}") }),
        )
        .layer(layer.clone());
    let address = serve(app).await;
    assert_eq!(get(address, "/users/7", &[]).await.text(), "user 7");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = get(address, "/users/7", &[]).await;
    assert_eq!(
        (again.status, again.text(), again.x_cache()),
        (StatusCode::OK, "user 7", "REVALIDATED"),
        "axum's path parameters reach the handler when the layer revalidates"
    );
}

#[tokio::test]
async fn a_fresh_copy_the_request_refused_does_not_answer_a_failure() {
    let layer = layer("revalidation::no_window", Route::ttl(secs(60)));
    let (address, _) = serve_behind(&layer, |n, _| match n {
        1 => response(200, &[("cache-control", "max-age=60")], "v1"),
        _ => response(500, &[], "database down"),
    })
    .await;
    get(address, "/x", &[]).await;
    let refused = get(address, "/x", &[("cache-control", "no-cache")]).await;
    assert_eq!(
        (refused.status, refused.text()),
        (StatusCode::INTERNAL_SERVER_ERROR, "database down")
    );
}

#[tokio::test]
async fn a_304_that_does_not_match_is_replaced_by_the_whole_response() {
    let layer = layer("revalidation::bare_304", Route::ttl(secs(60)));
    let (address, calls) = serve_behind(&layer, |n, headers| {
        if n > 1 && headers.contains_key("if-none-match") {
            // No validator: it cannot be matched with what is stored.
            return response(304, &[], Body::empty());
        }
        response(
            200,
            &[("etag", "\"v1\""), ("cache-control", "max-age=1")],
            "the report",
        )
    })
    .await;
    get(address, "/report", &[]).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let plain = get(address, "/report", &[]).await;
    assert_eq!((plain.status, plain.text()), (StatusCode::OK, "the report"));
    assert_eq!(calls.get(), 3, "asked again without validators");
}

#[tokio::test]
async fn a_304_revalidation_updates_the_stored_headers() {
    let layer = layer("revalidation::updates", Route::ttl(secs(600)));
    let (address, _) = serve_behind(&layer, |n, headers| {
        if n > 1 && headers.get("if-none-match").is_some_and(|v| v == "\"v1\"") {
            return response(
                304,
                &[("etag", "\"v1\""), ("cache-control", "max-age=100")],
                Body::empty(),
            );
        }
        response(
            200,
            &[("etag", "\"v1\""), ("cache-control", "max-age=1")],
            "body",
        )
    })
    .await;
    get(address, "/r", &[]).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let revalidated = get(address, "/r", &[]).await;
    assert_eq!(revalidated.x_cache(), "REVALIDATED");
    assert_eq!(revalidated.header("cache-control"), Some("max-age=100"));
    assert_eq!(revalidated.text(), "body");
}

#[tokio::test]
async fn ranges_and_preconditions_go_to_the_handler() {
    let layer = layer("revalidation::ranges", Route::ttl(secs(60)));
    let (address, calls) = serve_behind(&layer, |_, headers| {
        let full = "NEW-0123456789";
        let current = headers.get("if-range").is_none_or(|tag| tag == "\"v2\"");
        match headers.get("range") {
            Some(range) if current && range == "bytes=4-" => response(
                206,
                &[("etag", "\"v2\""), ("content-range", "bytes 4-13/14")],
                &full[4..],
            ),
            _ => response(200, &[("etag", "\"v2\"")], full),
        }
    })
    .await;
    let ranged = get(
        address,
        "/file",
        &[("range", "bytes=4-"), ("if-range", "\"v1\"")],
    )
    .await;
    assert_eq!(
        (ranged.status, ranged.text()),
        (StatusCode::OK, "NEW-0123456789"),
        "a failed If-Range gets the whole representation"
    );
    let ranged = get(address, "/file", &[("range", "bytes=4-")]).await;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(calls.get(), 2);
    assert_eq!(layer.stats().bypasses, 2);
}

#[tokio::test]
async fn a_head_from_the_cache_has_the_length_of_the_get() {
    let layer = layer("revalidation::head", Route::ttl(secs(60)));
    let (address, _) = serve_behind(&layer, |_, _| response(200, &[], "alpha")).await;
    for answer in ["MISS", "HIT"] {
        let head = send(address, Method::HEAD, "/a", &[]).await;
        assert_eq!(head.x_cache(), answer);
        assert_eq!(head.header("content-length"), Some("5"), "{answer}");
        assert_eq!(head.text(), "");
    }
}

#[tokio::test]
async fn a_stored_error_ignores_the_requests_validators() {
    let layer = layer(
        "revalidation::stored_404",
        Route::ttl(secs(60)).cache_errors(true),
    );
    let (address, _) = serve_behind(&layer, |_, _| response(404, &[], "no such page")).await;
    let first = get(address, "/missing", &[]).await;
    let etag = first.header("etag").expect("an etag").to_string();
    let again = get(address, "/missing", &[("if-none-match", &etag)]).await;
    assert_eq!(
        (again.status, again.x_cache()),
        (StatusCode::NOT_FOUND, "HIT")
    );
}

#[tokio::test]
async fn a_response_with_expires_gets_no_downstream_max_age() {
    let layer = layer("revalidation::expires", Route::ttl(secs(300)));
    let expires = httpdate(SystemTime::now() + secs(2));
    let (address, _) = serve_behind(&layer, move |_, _| {
        response(200, &[("expires", &expires)], "price list")
    })
    .await;
    let reply = get(address, "/prices", &[]).await;
    assert_eq!(reply.header("cache-control"), None, "its Expires stands");
}

/// An HTTP date (IMF-fixdate).
fn httpdate(at: SystemTime) -> String {
    let headers = {
        let mut headers = HeaderMap::new();
        headers::HeaderMapExt::typed_insert(&mut headers, headers::Expires::from(at));
        headers
    };
    headers["expires"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_route_under_a_second_stores_for_a_second() {
    let layer = layer(
        "revalidation::subsecond",
        Route::ttl(Duration::from_millis(500)),
    );
    let (address, calls) = serve_behind(&layer, |_, _| response(200, &[], "x")).await;
    get(address, "/s", &[]).await;
    assert_eq!(get(address, "/s", &[]).await.x_cache(), "HIT");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn a_stale_copy_within_max_stale_is_labelled_stale() {
    // Kept past its ttl for a stale-if-error window.
    let route = Route::ttl(secs(1)).stale_if_error(secs(60));
    let layer = layer("revalidation::max_stale", route);
    let (address, _) = serve_behind(&layer, |_, _| response(200, &[], "x")).await;
    get(address, "/m", &[]).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let reply = get(address, "/m", &[("cache-control", "max-stale=60")]).await;
    assert_eq!(reply.x_cache(), "STALE");
    // And with `only-if-cached` too (it was labelled and counted a hit).
    let asked = [("cache-control", "only-if-cached, max-stale=60")];
    assert_eq!(get(address, "/m", &asked).await.x_cache(), "STALE");
    let stats = layer.stats();
    assert_eq!((stats.hits, stats.stale), (0, 2));
}

#[tokio::test]
async fn only_if_cached_without_a_copy_is_no_miss() {
    let layer = layer("revalidation::only_if_cached", Route::ttl(secs(60)));
    let (address, _) = serve_behind(&layer, |_, _| response(200, &[], "x")).await;
    let reply = get(address, "/o", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(layer.stats().misses, 0, "no handler was asked");
}

/// The side table of `Vary` names lives as long as the newest response stored under it: a
/// response stored again after the first one's lifetime is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vary_of_a_resource_lives_as_long_as_its_newest_response() {
    let route = Route::ttl(secs(2)).stale_while_revalidate(secs(1));
    let layer = layer("revalidation::vary_lifetime", route);
    let (address, calls) = serve_behind(&layer, |n, _| {
        response(200, &[("vary", "accept-language")], format!("call {n}"))
    })
    .await;
    let english = [("accept-language", "en")];
    get(address, "/v", &english).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // Stale: answered at once, stored again by one background request.
    assert_eq!(get(address, "/v", &english).await.x_cache(), "STALE");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Past the first response's retention (3 s), within the second one's.
    assert_eq!(get(address, "/v", &english).await.x_cache(), "HIT");
    assert_eq!(calls.get(), 2);
}

/// While a background revalidation runs, stale requests start no more of them: one task,
/// not one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_starts_one_background_request() {
    let route = Route::ttl(secs(1)).stale_while_revalidate(secs(60));
    let layer = layer("revalidation::one_task", route);
    let slow = |n: u64| async move {
        if n > 1 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        response(200, &[], format!("call {n}"))
    };
    let calls = Calls::default();
    let counted = calls.clone();
    let app = Router::new()
        .fallback(move || slow(counted.count()))
        .layer(layer.clone());
    let address = serve(app).await;
    get(address, "/w", &[]).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    for _ in 0..40 {
        assert_eq!(get(address, "/w", &[]).await.x_cache(), "STALE");
    }
    let during = metrics.num_alive_tasks();
    assert!(
        during < before + 10,
        "{before} tasks before, {during} after 40 stale requests"
    );
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn layers_of_one_name_are_one_series() {
    let first = layer("revalidation::one_series", Route::ttl(secs(60)));
    let second = layer("revalidation::one_series", Route::ttl(secs(60)));
    let (a, _) = serve_behind(&first, |_, _| response(200, &[], "x")).await;
    let (b, _) = serve_behind(&second, |_, _| response(200, &[], "x")).await;
    get(a, "/p", &[]).await;
    get(b, "/p", &[]).await;
    let text = memokit_http::prometheus();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.starts_with("memokit_http_misses_total{layer=\"revalidation::one_series\"}")
        })
        .collect();
    assert_eq!(
        lines,
        ["memokit_http_misses_total{layer=\"revalidation::one_series\"} 2"]
    );
}

/// A layer dropped with its services frees its cache: it leaves the registry and the
/// Prometheus text.
#[tokio::test]
async fn a_dropped_layer_is_forgotten() {
    use tower_layer::Layer as _;
    use tower_service::Service as _;

    let layer = layer("revalidation::dropped", Route::ttl(secs(60)));
    let router: Router = Router::new().fallback(|| async { "a large body" });
    let mut service = layer.layer(router);
    let request = axum::http::Request::get("/d")
        .header("host", "example.test")
        .body(Body::empty())
        .unwrap();
    std::future::poll_fn(|cx| {
        tower_service::Service::<axum::http::Request<Body>>::poll_ready(&mut service, cx)
    })
    .await
    .unwrap();
    service.call(request).await.unwrap();
    assert_eq!(
        memokit::registry()
            .stats("revalidation::dropped")
            .map(|s| s.len),
        Some(1)
    );
    drop((layer, service));
    assert_eq!(memokit::registry().stats("revalidation::dropped"), None);
    assert!(!memokit_http::prometheus().contains("revalidation::dropped"));
}

/// A revalidation whose body fails part way is a failure of the handler: the stored copy
/// stays, answers within its stale-if-error window, and is revalidated again next time (it was
/// removed, and the broken body passed on).
#[tokio::test]
async fn a_body_failing_during_a_revalidation_keeps_the_stored_copy() {
    let route = Route::ttl(secs(1)).stale_if_error(secs(60));
    let layer = layer("revalidation::broken_body", route);
    let (address, calls) = serve_behind(&layer, |n, _| match n {
        2 => response(
            200,
            &[],
            Body::new(ChunkedBody {
                chunks: 3,
                chunk: 10,
                fail: true,
            }),
        ),
        _ => response(200, &[], format!("v{n}")),
    })
    .await;
    assert_eq!(get(address, "/x", &[]).await.text(), "v1");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let during = get(address, "/x", &[]).await;
    assert_eq!(
        (during.status, during.text(), during.x_cache()),
        (StatusCode::OK, "v1", "STALE"),
        "the stored copy answers the failure"
    );
    let after = get(address, "/x", &[]).await;
    assert_eq!((after.text(), after.x_cache()), ("v3", "REVALIDATED"));
    assert_eq!(calls.get(), 3);
}

/// A revalidation whose answer now varies on a header (`Vary: Cookie`) answers only the
/// request that made it: another request that waited on it, with another cookie, gets its own
/// page (it got the first user's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revalidation_that_now_varies_is_not_handed_to_other_variants() {
    let route = Route::ttl(secs(1)).stale_if_error(secs(60));
    let layer = layer("revalidation::now_varies", route);
    let calls = Calls::default();
    let counted = calls.clone();
    let app = Router::new()
        .route(
            "/page",
            route_get(move |headers: HeaderMap| {
                let calls = counted.clone();
                async move {
                    if calls.count() == 1 {
                        return response(200, &[("cache-control", "max-age=1")], "generic page");
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let cookie = headers
                        .get("cookie")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("none")
                        .to_string();
                    response(
                        200,
                        &[("cache-control", "max-age=60"), ("vary", "cookie")],
                        format!("page of {cookie}"),
                    )
                }
            }),
        )
        .layer(layer.clone());
    let address = serve(app).await;
    assert_eq!(get(address, "/page", &[]).await.text(), "generic page");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let alice = tokio::spawn(async move { get(address, "/page", &[("cookie", "alice")]).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let bob = get(address, "/page", &[("cookie", "bob")]).await;
    assert_eq!(alice.await.unwrap().text(), "page of alice");
    assert_eq!(bob.text(), "page of bob", "not alice's page");
}

/// `s-maxage` carries `proxy-revalidate` for a shared cache (RFC 9111 §5.2.2.10): once stale,
/// the response is served stale neither within the route's windows nor to a `max-stale`
/// request.
#[tokio::test]
async fn an_s_maxage_response_is_never_served_stale() {
    let route = Route::ttl(secs(60))
        .stale_while_revalidate(secs(30))
        .stale_if_error(secs(30));
    let layer = layer("revalidation::s_maxage", route);
    let (address, _) = serve_behind(&layer, |n, _| match n {
        1 => response(200, &[("cache-control", "s-maxage=1")], "v1"),
        _ => response(503, &[], "down"),
    })
    .await;
    assert_eq!(get(address, "/x", &[]).await.text(), "v1");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for asked in [&[("cache-control", "max-stale")][..], &[]] {
        let reply = get(address, "/x", asked).await;
        assert_eq!(
            (reply.status, reply.x_cache()),
            (StatusCode::SERVICE_UNAVAILABLE, "MISS"),
            "{asked:?}"
        );
    }
}

/// A background revalidation whose handler panics leaves the stored response free for the
/// next one: a later stale request starts another (none ever did again).
#[tokio::test]
async fn a_panicking_background_revalidation_does_not_stop_the_next() {
    let route = Route::ttl(secs(1)).stale_while_revalidate(secs(30));
    let layer = layer("revalidation::background_panic", route);
    let (address, calls) = serve_behind(&layer, |n, _| match n {
        2 => panic!("the handler broke"),
        n => response(200, &[], format!("v{n}")),
    })
    .await;
    assert_eq!(get(address, "/x", &[]).await.text(), "v1");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(get(address, "/x", &[]).await.x_cache(), "STALE");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(address, "/x", &[]).await.x_cache(), "STALE");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calls.get(), 3, "a second background revalidation ran");
    assert_eq!(get(address, "/x", &[]).await.text(), "v3");
}

/// Requests that waited on a revalidation answered with a 5xx get the stored copy within
/// stale-if-error, as the request that ran it does (each called the handler again, and got
/// the error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_of_a_revalidation_that_failed_with_a_5xx_get_the_stale_copy() {
    let route = Route::ttl(secs(1)).stale_if_error(secs(60));
    let layer = layer("revalidation::waiters_5xx", route);
    let calls = Calls::default();
    let counted = calls.clone();
    let app = Router::new()
        .route(
            "/x",
            route_get(move || {
                let calls = counted.clone();
                async move {
                    if calls.count() == 1 {
                        return response(200, &[], "v1");
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    response(500, &[], "origin down")
                }
            }),
        )
        .layer(layer.clone());
    let address = serve(app).await;
    assert_eq!(get(address, "/x", &[]).await.text(), "v1");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let requests: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { get(address, "/x", &[]).await }))
        .collect();
    for request in requests {
        let reply = request.await.unwrap();
        assert_eq!((reply.status, reply.text()), (StatusCode::OK, "v1"));
    }
    assert_eq!(calls.get(), 2, "one revalidation for the four");
}

//! One test per rule of the layer, each over real HTTP on loopback (axum served, hyper's
//! client), each failing if its rule is broken.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::Router;
use hyper::{Method, StatusCode};
use memokit_http::{HttpCacheLayer, Route};
use support::{
    get, get_whole_body, response, send, serve, serve_behind, Calls, ChunkedBody, Reply,
};

fn layer(name: &'static str, route: Route) -> HttpCacheLayer {
    HttpCacheLayer::builder(name).default_route(route).build()
}

fn minute() -> Route {
    Route::ttl(Duration::from_secs(60))
}

/// Sends `path` `times` times and returns the replies.
async fn get_times(address: std::net::SocketAddr, path: &str, times: usize) -> Vec<Reply> {
    let mut replies = Vec::new();
    for _ in 0..times {
        replies.push(get(address, path, &[]).await);
    }
    replies
}

#[tokio::test]
async fn get_responses_are_stored_and_hit() {
    let layer = layer("rules::get", minute());
    let (address, calls) =
        serve_behind(&layer, |n, _| response(200, &[], format!("call {n}"))).await;
    let first = get(address, "/a", &[]).await;
    let second = get(address, "/a", &[]).await;
    assert_eq!((first.x_cache(), first.text()), ("MISS", "call 1"));
    assert_eq!((second.x_cache(), second.text()), ("HIT", "call 1"));
    assert_eq!(second.header("age"), Some("0"));
    assert_eq!(calls.get(), 1);
    // Another URI (a query is part of it) is another entry.
    assert_eq!(get(address, "/a?page=2", &[]).await.x_cache(), "MISS");
    let stats = layer.stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));
}

/// A `HEAD` is answered from the `GET`'s stored response (the layer asks the handler for the
/// `GET`), with no body and the `GET`'s length, even around a whole `Router`, which answers a
/// `HEAD` itself with an empty body (that empty body was stored, with `Content-Length: 0` and
/// one `ETag` for every resource).
#[tokio::test]
async fn head_is_answered_from_the_get_and_has_no_body() {
    let layer = layer("rules::head", minute());
    let calls = Calls::default();
    let counted = calls.clone();
    let routes = Router::new().route(
        "/h",
        axum::routing::get(move || {
            let calls = counted.clone();
            async move { format!("body {}", calls.count()) }
        }),
    );
    // The layer around the whole router, not on its routes.
    let app = Router::new().fallback_service(tower_layer::Layer::layer(&layer, routes));
    let address = serve(app).await;
    let first = send(address, Method::HEAD, "/h", &[]).await;
    let second = send(address, Method::HEAD, "/h", &[]).await;
    assert_eq!((first.x_cache(), second.x_cache()), ("MISS", "HIT"));
    assert_eq!((first.text(), second.text()), ("", ""));
    assert_eq!(second.header("content-length"), Some("6"));
    let get = get(address, "/h", &[]).await;
    assert_eq!((get.x_cache(), get.text()), ("HIT", "body 1"));
    assert_eq!(get.header("etag"), second.header("etag"));
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn other_methods_bypass_the_cache() {
    let layer = layer("rules::post", minute());
    let (address, calls) = serve_behind(&layer, |n, _| response(200, &[], format!("{n}"))).await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::POST] {
        let reply = send(address, method, "/p", &[]).await;
        assert_eq!(reply.x_cache(), "");
    }
    assert_eq!(calls.get(), 4);
    assert_eq!(layer.stats().bypasses, 4);
}

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_its_target() {
    let layer = layer("rules::unsafe_invalidates", minute());
    let (address, calls) = serve_behind(&layer, |n, headers| {
        let status = if headers.contains_key("x-fail") {
            500
        } else {
            200
        };
        response(status, &[], format!("{n}"))
    })
    .await;
    get(address, "/r?p=1", &[]).await;
    get(address, "/r?p=2", &[]).await;
    assert_eq!(get(address, "/r?p=1", &[]).await.x_cache(), "HIT");
    // A failed write changed nothing: the stored copy stays.
    send(address, Method::POST, "/r?p=1", &[("x-fail", "1")]).await;
    assert_eq!(get(address, "/r?p=1", &[]).await.x_cache(), "HIT");
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        send(address, method.clone(), "/r?p=1", &[]).await;
        let reply = get(address, "/r?p=1", &[]).await;
        assert_eq!(reply.x_cache(), "MISS", "after a {method}");
    }
    // Another URI is not touched.
    assert_eq!(get(address, "/r?p=2", &[]).await.x_cache(), "HIT");
    assert_eq!(calls.get(), 11);
}

/// A handler call that started before a write of its target (a successful `POST`, or
/// `invalidate_path` after a write elsewhere) and ends after it: its older answer goes to its
/// own caller, but no request sent after the write gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_handler_call_is_not_undone_by_its_answer() {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    use tokio::sync::Notify;

    for by_path in [false, true] {
        let layer = layer(
            if by_path {
                "rules::write_during_call_path"
            } else {
                "rules::write_during_call"
            },
            minute(),
        );
        let version = Arc::new(AtomicU64::new(1));
        let (started, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let handler = {
            let (version, started, gate) = (version.clone(), started.clone(), gate.clone());
            move |method: Method, headers: HeaderMap| {
                let (version, started, gate) = (version.clone(), started.clone(), gate.clone());
                async move {
                    if method == Method::POST {
                        version.fetch_add(1, SeqCst);
                        return response(200, &[], "written");
                    }
                    let seen = version.load(SeqCst);
                    if headers.contains_key("x-slow") {
                        started.notify_one();
                        gate.notified().await;
                    }
                    response(200, &[], format!("v{seen}"))
                }
            }
        };
        let app = Router::new().fallback(handler).layer(layer.clone());
        let address = serve(app).await;
        let slow = tokio::spawn(async move { get(address, "/w", &[("x-slow", "1")]).await });
        tokio::time::timeout(Duration::from_secs(10), started.notified())
            .await
            .expect("the slow call started");
        if by_path {
            version.fetch_add(1, SeqCst);
            layer.invalidate_path("/w");
        } else {
            assert_eq!(
                send(address, Method::POST, "/w", &[]).await.text(),
                "written"
            );
        }
        gate.notify_one();
        assert_eq!(slow.await.unwrap().text(), "v1", "its own caller gets it");
        let after = get(address, "/w", &[]).await;
        assert_eq!(
            (after.x_cache(), after.text()),
            ("MISS", "v2"),
            "by_path: {by_path}"
        );
        assert_eq!(get(address, "/w", &[]).await.x_cache(), "HIT");
    }
}

#[tokio::test]
async fn a_bypassed_route_is_never_stored() {
    let layer = HttpCacheLayer::builder("rules::bypass")
        .default_route(minute())
        .route("/admin", Route::bypass())
        .build();
    let (address, calls) = serve_behind(&layer, |_, _| response(200, &[], "x")).await;
    for reply in get_times(address, "/admin/users", 2).await {
        assert_eq!(reply.x_cache(), "");
    }
    assert_eq!(calls.get(), 2);
    assert_eq!(layer.stats().bypasses, 2);
    get_times(address, "/public", 2).await;
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn vary_keys_on_the_named_request_headers() {
    let layer = layer("rules::vary", minute());
    let (address, calls) = serve_behind(&layer, |_, headers| {
        let language = headers
            .get("accept-language")
            .map_or("none", |v| v.to_str().unwrap());
        response(200, &[("vary", "Accept-Language")], language.to_string())
    })
    .await;
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(get(address, "/v", &en).await.text(), "en");
    assert_eq!(get(address, "/v", &fr).await.text(), "fr");
    let en_again = get(address, "/v", &en).await;
    let fr_again = get(address, "/v", &fr).await;
    assert_eq!((en_again.x_cache(), en_again.text()), ("HIT", "en"));
    assert_eq!((fr_again.x_cache(), fr_again.text()), ("HIT", "fr"));
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn the_route_ttl_applies_when_the_response_states_no_freshness() {
    let layer = HttpCacheLayer::builder("rules::ttl")
        .default_route(minute())
        .route("/short", Route::ttl(Duration::from_secs(1)))
        .build();
    let (address, calls) = serve_behind(&layer, |n, _| response(200, &[], format!("{n}"))).await;
    let replies = get_times(address, "/short", 2).await;
    assert_eq!(replies[1].x_cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = get(address, "/short", &[]).await;
    assert_ne!(after.x_cache(), "HIT");
    assert_eq!(after.text(), "2");
    // The minute-long default route still hits.
    get_times(address, "/long", 2).await;
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn response_cache_control_decides_what_is_stored() {
    let layer = layer("rules::cache_control", minute());
    let (address, calls) = serve_behind(&layer, |n, headers| {
        let cache_control = headers
            .get("x-test-cc")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        response(200, &[("cache-control", &cache_control)], format!("{n}"))
    })
    .await;
    for (cache_control, stored) in [
        ("no-store", false),
        ("private, max-age=60", false),
        ("no-cache", false),
        ("max-age=0", false),
        ("public, max-age=60", true),
        ("s-maxage=60", true),
    ] {
        let path = format!("/cc/{}", cache_control.replace([' ', ',', '='], "_"));
        let headers = [("x-test-cc", cache_control)];
        let before = calls.get();
        get(address, &path, &headers).await;
        let second = get(address, &path, &headers).await;
        assert_eq!(second.x_cache() == "HIT", stored, "{cache_control}");
        assert_eq!(
            calls.get() - before,
            if stored { 1 } else { 2 },
            "{cache_control}"
        );
    }
}

#[tokio::test]
async fn max_age_s_maxage_and_expires_set_the_freshness() {
    let layer = layer("rules::freshness", minute());
    let (address, _calls) = serve_behind(&layer, |n, headers| {
        let mut fields = Vec::new();
        for name in ["cache-control", "expires"] {
            if let Some(value) = headers.get(format!("x-test-{name}")) {
                fields.push((name, value.to_str().unwrap().to_string()));
            }
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        response(200, &fields, format!("{n}"))
    })
    .await;
    let past = httpdate_in(-3600);
    let future = httpdate_in(3600);
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("/max-age", &[("x-test-cache-control", "max-age=1")]),
        // A shared cache takes s-maxage over max-age.
        (
            "/s-maxage",
            &[("x-test-cache-control", "max-age=600, s-maxage=1")],
        ),
        (
            "/must-revalidate",
            &[("x-test-cache-control", "max-age=1, must-revalidate")],
        ),
        ("/expires-past", &[("x-test-expires", past.as_str())]),
        ("/expires-future", &[("x-test-expires", future.as_str())]),
    ];
    for (path, headers) in cases {
        get(address, path, headers).await;
    }
    let hit = |reply: Reply| reply.x_cache() == "HIT";
    assert!(hit(get(address, "/max-age", cases[0].1).await));
    assert!(!hit(get(address, "/expires-past", cases[3].1).await));
    assert!(hit(get(address, "/expires-future", cases[4].1).await));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (path, headers) in &cases[..3] {
        assert!(!hit(get(address, path, headers).await), "{path}");
    }
    assert!(hit(get(address, "/expires-future", cases[4].1).await));
}

/// An HTTP date `seconds` from now.
fn httpdate_in(seconds: i64) -> String {
    let now = std::time::SystemTime::now();
    let at = if seconds >= 0 {
        now + Duration::from_secs(seconds.unsigned_abs())
    } else {
        now - Duration::from_secs(seconds.unsigned_abs())
    };
    headers_date(at)
}

fn headers_date(at: std::time::SystemTime) -> String {
    use headers::HeaderMapExt;
    let mut map = HeaderMap::new();
    map.typed_insert(headers::Date::from(at));
    map.get("date").unwrap().to_str().unwrap().to_string()
}

#[tokio::test]
async fn responses_to_authorized_requests_are_stored_only_when_public() {
    let layer = layer("rules::authorization", minute());
    let (address, calls) = serve_behind(&layer, |n, headers| match headers.get("x-public") {
        Some(_) => response(200, &[("cache-control", "public")], format!("{n}")),
        None => response(200, &[], format!("{n}")),
    })
    .await;
    let authorized = [("authorization", "Bearer secret")];
    for reply in [
        get(address, "/me", &authorized).await,
        get(address, "/me", &authorized).await,
    ] {
        assert_eq!(reply.x_cache(), "MISS");
    }
    assert_eq!(calls.get(), 2);
    let public = [("authorization", "Bearer secret"), ("x-public", "1")];
    get(address, "/shared", &public).await;
    assert_eq!(get(address, "/shared", &public).await.x_cache(), "HIT");
}

/// A response to a request with a `Cookie` may be one user's page: stored only when it says
/// it is everyone's (`public`, `s-maxage`), or when the layer is told cookies never matter
/// (it was stored, and served to every other user).
#[tokio::test]
async fn responses_to_requests_with_cookies_are_stored_only_when_shareable() {
    for (share, expected) in [(false, ["MISS", "MISS"]), (true, ["MISS", "HIT"])] {
        let layer = HttpCacheLayer::builder("rules::cookie")
            .default_route(minute())
            .share_cookie_requests(share)
            .build();
        let (address, _) = serve_behind(&layer, |_, headers| match headers.get("x-public") {
            Some(_) => response(200, &[("cache-control", "public")], "everyone's"),
            None => {
                let cookie = headers.get("cookie").and_then(|c| c.to_str().ok());
                response(200, &[], format!("page of {cookie:?}"))
            }
        })
        .await;
        let alice = get(address, "/me", &[("cookie", "session=alice")]).await;
        let bob = get(address, "/me", &[("cookie", "session=bob")]).await;
        assert_eq!(
            [alice.x_cache(), bob.x_cache()],
            expected,
            "share = {share}"
        );
        if !share {
            assert_eq!(bob.text(), "page of Some(\"session=bob\")");
        }
        let public = [("cookie", "session=alice"), ("x-public", "1")];
        get(address, "/shared", &public).await;
        assert_eq!(get(address, "/shared", &public).await.x_cache(), "HIT");
    }
}

#[tokio::test]
async fn set_cookie_is_stored_only_when_configured() {
    for (store, expected_calls) in [(false, 2), (true, 1)] {
        let layer = HttpCacheLayer::builder("rules::set_cookie")
            .default_route(minute())
            .store_set_cookie(store)
            .build();
        let (address, calls) = serve_behind(&layer, |_, _| {
            response(200, &[("set-cookie", "session=1")], "x")
        })
        .await;
        get_times(address, "/c", 2).await;
        assert_eq!(calls.get(), expected_calls, "store_set_cookie({store})");
    }
}

#[tokio::test]
async fn responses_not_stored_are_loads_not_failed_loads() {
    let layer = layer("rules::not_stored_stats", minute());
    let (address, calls) = serve_behind(&layer, |n, _| match n % 3 {
        0 => response(200, &[("cache-control", "no-store")], "private"),
        1 => response(200, &[("set-cookie", "session=1")], "cookie"),
        _ => response(500, &[], "error"),
    })
    .await;
    get_times(address, "/n", 6).await;
    let stats = layer.stats();
    assert_eq!(calls.get(), 6);
    assert_eq!(
        (
            stats.not_stored,
            stats.cache.loads,
            stats.cache.load_failures
        ),
        (6, 6, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn errors_are_stored_only_when_configured() {
    let layer = HttpCacheLayer::builder("rules::errors")
        .default_route(minute())
        .route("/cached-errors", minute().cache_errors(true))
        .build();
    let (address, calls) = serve_behind(&layer, |_, headers| {
        let status = headers
            .get("x-status")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        response(status, &[], "error")
    })
    .await;
    for (path, status, expected_calls) in [
        ("/errors/404", "404", 2),
        ("/cached-errors/404", "404", 1),
        ("/cached-errors/410", "410", 1),
        // Not heuristically cacheable: never stored.
        ("/cached-errors/500", "500", 2),
        // Heuristically cacheable non-errors are.
        ("/errors/301", "301", 1),
    ] {
        let before = calls.get();
        for _ in 0..2 {
            let reply = get(address, path, &[("x-status", status)]).await;
            assert_eq!(reply.status.as_str(), status);
        }
        assert_eq!(calls.get() - before, expected_calls, "{path}");
    }
}

#[tokio::test]
async fn a_strong_etag_is_made_and_if_none_match_gets_304() {
    let layer = layer("rules::etag", minute());
    let (address, calls) = serve_behind(&layer, |_, _| response(200, &[], "same body")).await;
    let first = get(address, "/e", &[]).await;
    let etag = first.header("etag").expect("an ETag").to_string();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    let revalidated = get(address, "/e", &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(revalidated.text(), "");
    assert_eq!(revalidated.header("etag"), Some(etag.as_str()));
    let other = get(address, "/e", &[("if-none-match", "\"other\"")]).await;
    assert_eq!((other.status, other.text()), (StatusCode::OK, "same body"));
    // Another path with the same body has the same ETag (made from the body).
    assert_eq!(
        get(address, "/e2", &[]).await.header("etag"),
        Some(etag.as_str())
    );
    assert_eq!(calls.get(), 2);
    assert_eq!(layer.stats().not_modified, 1);
}

#[tokio::test]
async fn the_handler_etag_is_kept() {
    let layer = layer("rules::own_etag", minute());
    let (address, _) =
        serve_behind(&layer, |_, _| response(200, &[("etag", "W/\"v1\"")], "x")).await;
    assert_eq!(
        get(address, "/o", &[]).await.header("etag"),
        Some("W/\"v1\"")
    );
    let weak_match = get(address, "/o", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(weak_match.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn if_modified_since_gets_304() {
    let modified = headers_date(std::time::SystemTime::now() - Duration::from_secs(3600));
    let earlier = headers_date(std::time::SystemTime::now() - Duration::from_secs(7200));
    let layer = layer("rules::last_modified", minute());
    let last_modified = modified.clone();
    let (address, _) = serve_behind(&layer, move |_, _| {
        response(200, &[("last-modified", &last_modified)], "x")
    })
    .await;
    get(address, "/m", &[]).await;
    let unchanged = get(address, "/m", &[("if-modified-since", &modified)]).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    let changed = get(address, "/m", &[("if-modified-since", &earlier)]).await;
    assert_eq!((changed.status, changed.text()), (StatusCode::OK, "x"));
}

#[tokio::test]
async fn age_counts_the_seconds_since_it_was_stored() {
    let layer = layer("rules::age", minute());
    let (address, _) = serve_behind(&layer, |_, _| response(200, &[], "x")).await;
    assert_eq!(get(address, "/age", &[]).await.header("age"), Some("0"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = get(address, "/age", &[]).await;
    assert_eq!((later.x_cache(), later.header("age")), ("HIT", Some("2")));
}

#[tokio::test]
async fn a_route_announces_its_cache_control_downstream() {
    let route = Route::ttl(Duration::from_secs(30))
        .stale_while_revalidate(Duration::from_secs(5))
        .stale_if_error(Duration::from_secs(600));
    let layer = layer("rules::downstream", route);
    let (address, _) = serve_behind(&layer, |_, headers| match headers.get("x-own") {
        Some(_) => response(200, &[("cache-control", "public, max-age=7")], "x"),
        None => response(200, &[], "x"),
    })
    .await;
    let expected = "public, max-age=30, stale-while-revalidate=5, stale-if-error=600";
    for reply in get_times(address, "/d", 2).await {
        assert_eq!(reply.header("cache-control"), Some(expected));
    }
    // The handler's own is kept.
    let own = get(address, "/own", &[("x-own", "1")]).await;
    assert_eq!(own.header("cache-control"), Some("public, max-age=7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_stale_and_revalidates_once() {
    let route = Route::ttl(Duration::from_secs(1)).stale_while_revalidate(Duration::from_secs(30));
    let layer = layer("rules::swr", route);
    let calls = Calls::default();
    let counted = calls.clone();
    let handler = move || {
        let calls = counted.clone();
        async move {
            let n = calls.count();
            // The revalidation is slow, so that every stale request below overlaps it.
            if n > 1 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            format!("version {n}")
        }
    };
    let address = serve(Router::new().fallback(handler).layer(layer.clone())).await;
    assert_eq!(get(address, "/s", &[]).await.text(), "version 1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = futures_join(address, "/s", 5).await;
    for reply in &stale {
        assert_eq!((reply.x_cache(), reply.text()), ("STALE", "version 1"));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(calls.get(), 2, "one background revalidation");
    let fresh = get(address, "/s", &[]).await;
    assert_eq!((fresh.x_cache(), fresh.text()), ("HIT", "version 2"));
    let stats = layer.stats();
    assert_eq!((stats.stale, stats.revalidations), (5, 1));
}

/// `count` concurrent `GET`s of `path`.
async fn futures_join(
    address: std::net::SocketAddr,
    path: &'static str,
    count: usize,
) -> Vec<Reply> {
    let tasks: Vec<_> = (0..count)
        .map(|_| tokio::spawn(async move { get(address, path, &[]).await }))
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("a reply"));
    }
    replies
}

#[tokio::test]
async fn stale_if_error_answers_stale_when_the_handler_fails() {
    let route = Route::ttl(Duration::from_secs(1));
    let layer = HttpCacheLayer::builder("rules::sie")
        .default_route(route)
        .route("/sie", route.stale_if_error(Duration::from_secs(60)))
        .build();
    let (address, _) = serve_behind(&layer, |n, _| match n {
        1 | 2 => response(200, &[], format!("version {n}")),
        _ => response(503, &[], "down"),
    })
    .await;
    get(address, "/sie", &[]).await;
    get(address, "/plain", &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = get(address, "/sie", &[]).await;
    assert_eq!(
        (stale.status, stale.x_cache(), stale.text()),
        (StatusCode::OK, "STALE", "version 1")
    );
    let plain = get(address, "/plain", &[]).await;
    assert_eq!(
        (plain.status, plain.text()),
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    );
}

#[tokio::test]
async fn request_no_cache_and_max_age_0_revalidate() {
    let layer = layer("rules::request_no_cache", minute());
    let (address, calls) = serve_behind(&layer, |n, _| response(200, &[], format!("{n}"))).await;
    get(address, "/r", &[]).await;
    for (directive, expected) in [("no-cache", "2"), ("max-age=0", "3")] {
        let reply = get(address, "/r", &[("cache-control", directive)]).await;
        assert_eq!(
            (reply.x_cache(), reply.text()),
            ("REVALIDATED", expected),
            "{directive}"
        );
    }
    let pragma = get(address, "/r", &[("pragma", "no-cache")]).await;
    assert_eq!(pragma.text(), "4");
    let hit = get(address, "/r", &[]).await;
    assert_eq!((hit.x_cache(), hit.text()), ("HIT", "4"));
    assert_eq!(calls.get(), 4);
}

#[tokio::test]
async fn request_no_cache_is_never_answered_stale() {
    let route = Route::ttl(Duration::from_secs(1)).stale_while_revalidate(Duration::from_secs(60));
    let layer = layer("rules::no_cache_not_stale", route);
    let (address, calls) = serve_behind(&layer, |n, _| response(200, &[], format!("{n}"))).await;
    get(address, "/n", &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = get(address, "/n", &[("cache-control", "no-cache")]).await;
    assert_eq!((reply.x_cache(), reply.text()), ("REVALIDATED", "2"));
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn request_min_fresh_is_never_answered_stale() {
    let route = Route::ttl(Duration::from_secs(1)).stale_while_revalidate(Duration::from_secs(60));
    let layer = layer("rules::min_fresh_not_stale", route);
    let (address, calls) = serve_behind(&layer, |n, _| response(200, &[], format!("{n}"))).await;
    get(address, "/m", &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Stale, within stale-while-revalidate: a client asking for 5 s of freshness left gets a
    // fresh answer, not the stale copy.
    let reply = get(address, "/m", &[("cache-control", "min-fresh=5")]).await;
    assert_eq!((reply.x_cache(), reply.text()), ("REVALIDATED", "2"));
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn only_if_cached_never_calls_the_handler() {
    let layer = layer("rules::only_if_cached", minute());
    let (address, calls) = serve_behind(&layer, |_, _| response(200, &[], "x")).await;
    let only = [("cache-control", "only-if-cached")];
    let before = get(address, "/oic", &only).await;
    assert_eq!(before.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(calls.get(), 0);
    get(address, "/oic", &[]).await;
    let after = get(address, "/oic", &only).await;
    assert_eq!((after.status, after.x_cache()), (StatusCode::OK, "HIT"));
    assert_eq!(calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_handler_call() {
    let layer = layer("rules::coalescing", minute());
    let calls = Calls::default();
    let counted = calls.clone();
    let slow = move || {
        let calls = counted.clone();
        async move {
            calls.count();
            tokio::time::sleep(Duration::from_millis(300)).await;
            "slow"
        }
    };
    let app = Router::new().fallback(slow).layer(layer.clone());
    let address = serve(app).await;
    let replies = futures_join(address, "/slow", 10).await;
    assert!(replies.iter().all(|r| r.text() == "slow"));
    assert_eq!(calls.get(), 1);
    assert_eq!(replies.iter().filter(|r| r.x_cache() == "MISS").count(), 1);
}

#[tokio::test]
async fn bodies_over_the_limit_pass_through_unstored() {
    let layer = HttpCacheLayer::builder("rules::too_large")
        .default_route(minute())
        .max_body_bytes(1000)
        .build();
    let (address, calls) = serve_behind(&layer, |_, headers| {
        if headers.contains_key("x-stream") {
            let body = ChunkedBody {
                chunks: 4,
                chunk: 400,
                fail: false,
            };
            return response(200, &[], Body::new(body));
        }
        response(200, &[], "y".repeat(2000))
    })
    .await;
    for reply in get_times(address, "/big", 2).await {
        assert_eq!(reply.text().len(), 2000);
    }
    for _ in 0..2 {
        let streamed = get(address, "/streamed", &[("x-stream", "1")]).await;
        assert_eq!(streamed.text(), "x".repeat(1600));
    }
    assert_eq!(calls.get(), 4);
    assert_eq!(layer.stats().too_large, 4);
    // Within the limit, a streamed body is stored.
}

#[tokio::test]
async fn a_body_that_fails_half_way_is_not_stored() {
    let layer = layer("rules::failing_body", minute());
    let (address, calls) = serve_behind(&layer, |_, headers| {
        if headers.contains_key("x-ok") {
            return response(200, &[], "ok");
        }
        let body = ChunkedBody {
            chunks: 3,
            chunk: 10,
            fail: true,
        };
        response(200, &[], Body::new(body))
    })
    .await;
    for _ in 0..2 {
        let body = get_whole_body(address, "/broken").await;
        assert_eq!(body, None, "the client sees the failure");
    }
    assert_eq!(calls.get(), 2);
    assert_eq!(layer.stats().too_large, 2);
    // The server still answers.
    assert_eq!(get(address, "/other", &[("x-ok", "1")]).await.text(), "ok");
}

#[tokio::test]
async fn the_layer_is_listed_in_the_registry_and_the_metrics() {
    let layer = layer("rules::listed", minute());
    let (address, _) = serve_behind(&layer, |_, _| response(200, &[], "x")).await;
    get_times(address, "/l", 3).await;
    send(address, Method::POST, "/elsewhere", &[]).await;
    let stats = memokit::registry().stats("rules::listed").expect("listed");
    assert_eq!((stats.hits, stats.misses, stats.len), (2, 1, 1));
    let cache_text = memokit::registry().prometheus();
    assert!(
        cache_text.contains("memokit_entries{function=\"rules::listed\"} 1\n"),
        "{cache_text}"
    );
    let text = memokit_http::prometheus();
    for line in [
        "memokit_http_hits_total{layer=\"rules::listed\"} 2\n",
        "memokit_http_misses_total{layer=\"rules::listed\"} 1\n",
        "memokit_http_bypasses_total{layer=\"rules::listed\"} 1\n",
        "memokit_http_stale_total{layer=\"rules::listed\"} 0\n",
        "memokit_http_revalidations_total{layer=\"rules::listed\"} 0\n",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(memokit::registry().clear("rules::listed"));
    assert_eq!(get(address, "/l", &[]).await.x_cache(), "MISS");
}

#[tokio::test]
async fn invalidation_by_path_and_by_prefix() {
    let layer = layer("rules::invalidation", minute());
    let (address, _) = serve_behind(&layer, |n, _| response(200, &[], format!("{n}"))).await;
    for path in ["/users/1", "/users/1?full=1", "/users/2", "/orders/1"] {
        get(address, path, &[]).await;
    }
    assert_eq!(layer.invalidate_path("/users/1"), 2);
    assert_eq!(get(address, "/users/1", &[]).await.x_cache(), "MISS");
    assert_eq!(get(address, "/users/2", &[]).await.x_cache(), "HIT");
    assert_eq!(layer.invalidate_prefix("/users/"), 2);
    assert_eq!(get(address, "/users/2", &[]).await.x_cache(), "MISS");
    assert_eq!(get(address, "/orders/1", &[]).await.x_cache(), "HIT");
}

#[tokio::test]
async fn malformed_responses_are_not_stored_and_never_panic() {
    let layer = layer("rules::malformed", minute());
    let (address, calls) = serve_behind(&layer, |_, headers| {
        let name = headers.get("x-name").unwrap().to_str().unwrap().to_string();
        let value = headers.get("x-value").unwrap().as_bytes().to_vec();
        let mut reply = response(200, &[], "x");
        reply.headers_mut().append(
            axum::http::HeaderName::try_from(name).unwrap(),
            axum::http::HeaderValue::from_bytes(&value).unwrap(),
        );
        reply
    })
    .await;
    let huge_vary = (0..40)
        .map(|i| format!("x-h{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let cases = [
        ("cache-control", "max-age=abc"),
        ("cache-control", "max-age=60, max-age=0"),
        ("cache-control", "public, private, max-age=60"),
        ("cache-control", "max-age=\"60"),
        ("cache-control", "s-maxage=-5"),
        ("vary", huge_vary.as_str()),
        ("vary", "*"),
        ("vary", "not a header"),
        ("etag", "unquoted"),
        ("etag", "\"unterminated"),
        ("etag", "\"a space\""),
        ("expires", "yesterday"),
        ("last-modified", "32 Foo 99999"),
        ("date", "0"),
    ];
    for (index, (name, value)) in cases.iter().enumerate() {
        let path = format!("/bad/{index}");
        let headers = [("x-name", *name), ("x-value", *value)];
        let before = calls.get();
        for _ in 0..2 {
            let reply = get(address, &path, &headers).await;
            assert_eq!(
                (reply.status, reply.text()),
                (StatusCode::OK, "x"),
                "{name}: {value}"
            );
        }
        assert_eq!(calls.get() - before, 2, "{name}: {value} was stored");
    }
    // Huge but well-formed numbers are no reason to panic either.
    for (name, value) in [
        ("age", "18446744073709551615"),
        ("cache-control", "max-age=18446744073709551615"),
        ("cache-control", "s-maxage=99999999999999999999999999"),
        (
            "cache-control",
            "max-age=1, stale-while-revalidate=18446744073709551615",
        ),
        ("expires", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
    ] {
        let headers = [("x-name", name), ("x-value", value)];
        for _ in 0..2 {
            let reply = get(address, &format!("/huge/{name}/{}", value.len()), &headers).await;
            assert_eq!(reply.status, StatusCode::OK, "{name}: {value}");
        }
    }
}

#[tokio::test]
async fn malformed_requests_are_answered() {
    let layer = layer("rules::malformed_requests", minute());
    let (address, _) = serve_behind(&layer, |_, _| response(200, &[], "x")).await;
    get(address, "/q", &[]).await;
    for (name, value) in [
        ("if-none-match", "garbage"),
        ("if-none-match", ""),
        ("if-none-match", "\"a space\""),
        ("if-modified-since", "not a date"),
        ("cache-control", "max-age=abc, max-age=1"),
        ("cache-control", "max-stale=99999999999999999999999"),
        ("cache-control", "min-fresh=99999999999999999999999"),
    ] {
        let reply = get(address, "/q", &[(name, value)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {value}");
    }
}

#[tokio::test]
async fn a_prefix_given_again_replaces_its_rule() {
    let layer = HttpCacheLayer::builder("rules::route_again")
        .route("/r", Route::bypass())
        .route("/r", minute())
        .build();
    let (address, calls) = serve_behind(&layer, |_, _| response(200, &[], "x")).await;
    let replies = get_times(address, "/r", 2).await;
    assert_eq!(replies[1].x_cache(), "HIT");
    assert_eq!(calls.get(), 1);
}

/// A response the layer does not store (`private`) still answers the client's validators: the
/// layer took them off the request it made, so it evaluates them itself (the client got the
/// whole body again).
#[tokio::test]
async fn an_unstored_response_answers_the_clients_validators() {
    let layer = layer("rules::unstored_validators", minute());
    let (address, _) = serve_behind(&layer, |_, _| {
        response(
            200,
            &[("cache-control", "private, max-age=60"), ("etag", "\"v1\"")],
            "a large private body",
        )
    })
    .await;
    let reply = get(address, "/private", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!((reply.status, reply.text()), (StatusCode::NOT_MODIFIED, ""));
    assert_eq!(reply.header("etag"), Some("\"v1\""));
    let other = get(address, "/private", &[("if-none-match", "\"v0\"")]).await;
    assert_eq!(
        (other.status, other.text()),
        (StatusCode::OK, "a large private body")
    );
}

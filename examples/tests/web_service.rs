//! The web service example end to end: the router on a loopback port, driven by real HTTP
//! requests (hyper's client). One scenario, since its steps share the process's registry.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use memokit_examples::web_service::{
    app, database_queries, find_user_cache, FIND_USER, PROMETHEUS_CONTENT_TYPE,
};
use tokio::net::{TcpListener, TcpStream};

struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
}

/// One request on a fresh connection, bounded by a generous timeout.
async fn send(address: std::net::SocketAddr, method: Method, path: &str) -> Reply {
    let exchange = async {
        let stream = TcpStream::connect(address).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", address.to_string())
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let response = sender.send_request(request).await.expect("a response");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().expect("ASCII").to_string())
            .unwrap_or_default();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        Reply {
            status,
            content_type,
            body: String::from_utf8(body.to_vec()).expect("UTF-8"),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("answered within 10 s")
}

/// The value of `family{function="users::find"}` in a Prometheus text.
fn sample(text: &str, family: &str) -> u64 {
    let prefix = format!("{family}{{function=\"{FIND_USER}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"))
        .parse()
        .expect("an integer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_metrics_and_clearing_over_http() {
    assert_eq!(find_user_cache().name(), FIND_USER);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app()).await });

    // Listed before any request.
    let metrics = send(address, Method::GET, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert_eq!(metrics.content_type, PROMETHEUS_CONTENT_TYPE);
    assert!(metrics
        .content_type
        .starts_with("text/plain; version=0.0.4"));
    let hits_before = sample(&metrics.body, "memokit_hits_total");
    let misses_before = sample(&metrics.body, "memokit_misses_total");

    // One query for three requests; the hits grow.
    let queries_before = database_queries();
    for _ in 0..3 {
        let user = send(address, Method::GET, "/users/42").await;
        assert_eq!(user.status, StatusCode::OK);
        assert_eq!(user.body, "42 user 42\n");
    }
    assert_eq!(database_queries(), queries_before + 1);
    let metrics = send(address, Method::GET, "/metrics").await.body;
    assert_eq!(sample(&metrics, "memokit_hits_total"), hits_before + 2);
    assert_eq!(sample(&metrics, "memokit_misses_total"), misses_before + 1);
    assert_eq!(sample(&metrics, "memokit_entries"), 1);

    // An unknown user is a 404 (and cached like any answer).
    let missing = send(address, Method::GET, "/users/1000").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body, "no user 1000\n");

    // Clearing empties the cache: the next request is a miss and queries again.
    let cleared = send(
        address,
        Method::POST,
        &format!("/admin/cache/{FIND_USER}/clear"),
    )
    .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert_eq!(cleared.body, format!("cleared {FIND_USER}\n"));
    let metrics = send(address, Method::GET, "/metrics").await.body;
    assert_eq!(sample(&metrics, "memokit_entries"), 0);
    let misses_after_clear = sample(&metrics, "memokit_misses_total");
    let queries_after_clear = database_queries();
    assert_eq!(
        send(address, Method::GET, "/users/42").await.status,
        StatusCode::OK
    );
    assert_eq!(database_queries(), queries_after_clear + 1);
    let metrics = send(address, Method::GET, "/metrics").await.body;
    assert_eq!(
        sample(&metrics, "memokit_misses_total"),
        misses_after_clear + 1
    );

    // An unknown function: 404 naming it and the known ones.
    let unknown = send(address, Method::POST, "/admin/cache/no::such/clear").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown
            .body
            .starts_with("no memoized function named \"no::such\"; known: "),
        "{}",
        unknown.body
    );
    assert!(unknown.body.contains(FIND_USER), "{}", unknown.body);

    // A bad id is the client's error, not the server's.
    let bad = send(address, Method::GET, "/users/abc").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    server.abort();
}

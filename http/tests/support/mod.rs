//! Serving a router on loopback and sending it real HTTP requests with hyper's client.

#![allow(dead_code)] // each test file uses part of it

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Frame};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Serves `app` on a free loopback port until the test ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// What a request got back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII"))
    }

    /// `X-Cache`, or `""` without one.
    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }

    pub fn text(&self) -> &str {
        &self.body
    }
}

/// A `GET` with `headers`.
pub async fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(address, Method::GET, path, headers).await
}

/// The body of a `GET` of `path`, or `None` if the response or its body failed part way.
pub async fn get_whole_body(address: SocketAddr, path: &str) -> Option<String> {
    let exchange = async {
        let stream = TcpStream::connect(address).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header("host", address.to_string())
            .body(Empty::<Bytes>::new())
            .ok()?;
        let body = sender.send_request(request).await.ok()?.into_body();
        let body = body.collect().await.ok()?.to_bytes();
        String::from_utf8(body.to_vec()).ok()
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("answered within 10 s")
}

/// One request on a fresh connection, bounded by a generous timeout.
pub async fn send(
    address: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let exchange = async {
        let stream = TcpStream::connect(address).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", address.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<Bytes>::new()).expect("a request");
        let response = sender.send_request(request).await.expect("a response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a whole body").to_bytes();
        let body = String::from_utf8(body.to_vec()).expect("UTF-8");
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("answered within 10 s")
}

/// Counts a handler's calls.
#[derive(Debug, Clone, Default)]
pub struct Calls(Arc<AtomicU64>);

impl Calls {
    /// Counts one call and returns how many there have been, this one included.
    pub fn count(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A body that sends `chunks` chunks of `chunk` bytes with no size announced, then fails if
/// `fail` (after the first chunk).
pub struct ChunkedBody {
    pub chunks: usize,
    pub chunk: usize,
    pub fail: bool,
}

impl hyper::body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.chunks == 0 {
            return Poll::Ready(None);
        }
        if self.fail && self.chunks == 1 {
            self.chunks = 0;
            return Poll::Ready(Some(Err(std::io::Error::other("the source broke"))));
        }
        self.chunks -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; self.chunk])))))
    }
}

/// A response with `status`, `headers` and `body`.
pub fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<axum::body::Body>,
) -> axum::response::Response {
    let mut builder = axum::response::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).expect("a response")
}

/// Every path and method answered by `respond(call number, request headers)`, behind `layer`.
pub async fn serve_behind<F>(
    layer: &memokit_http::HttpCacheLayer,
    respond: F,
) -> (SocketAddr, Calls)
where
    F: Fn(u64, &HeaderMap) -> axum::response::Response + Clone + Send + Sync + 'static,
{
    let calls = Calls::default();
    let counted = calls.clone();
    let handler = move |headers: HeaderMap| {
        let (respond, calls) = (respond.clone(), counted.clone());
        async move { respond(calls.count(), &headers) }
    };
    let app = Router::new().fallback(handler).layer(layer.clone());
    (serve(app).await, calls)
}

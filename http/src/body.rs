//! [`HttpCacheBody`]: what the layer answers with (a stored body, or the handler's body passed
//! through), and the buffering of a handler's body up to the size limit.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;

/// The error type of bodies passed through the layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response of an [`HttpCache`](crate::HttpCache) service: a buffered (and
/// possibly stored) body, or the handler's body passed through unstored, after the part that
/// was already read while measuring it.
///
/// ```
/// use http_body::Body;
/// let body = memokit_http::HttpCacheBody::from(bytes::Bytes::from_static(b"hello"));
/// assert_eq!(body.size_hint().exact(), Some(5));
/// ```
#[derive(Debug)]
pub struct HttpCacheBody {
    kind: Kind,
}

enum Kind {
    Complete(Option<Bytes>),
    Passing { read: Option<Bytes>, rest: Rest },
}

enum Rest {
    Body(UnsyncBoxBody<Bytes, BoxError>),
    /// The handler's body failed after `read`: the client gets the error (the connection is
    /// cut), never a truncated body that looks complete.
    Failed(Option<BoxError>),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Complete(bytes) => f.debug_tuple("Complete").field(bytes).finish(),
            Kind::Passing { .. } => f.write_str("Passing"),
        }
    }
}

impl From<Bytes> for HttpCacheBody {
    fn from(bytes: Bytes) -> Self {
        HttpCacheBody {
            kind: Kind::Complete(Some(bytes)),
        }
    }
}

impl HttpCacheBody {
    /// No body (a `304`, a `504` for `only-if-cached`, or a `HEAD`).
    pub(crate) fn empty() -> Self {
        Bytes::new().into()
    }

    /// A handler's body passed through untouched.
    pub(crate) fn passing<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        HttpCacheBody {
            kind: Kind::Passing {
                read: None,
                rest: Rest::Body(body.map_err(Into::into).boxed_unsync()),
            },
        }
    }
}

impl Body for HttpCacheBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Complete(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Kind::Passing { read, rest } => {
                if let Some(read) = read.take().filter(|b| !b.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(read))));
                }
                match rest {
                    Rest::Body(body) => Pin::new(body).poll_frame(cx),
                    Rest::Failed(error) => Poll::Ready(error.take().map(Err)),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Complete(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Passing { read, rest } => {
                read.as_ref().is_none_or(Bytes::is_empty)
                    && match rest {
                        Rest::Body(body) => body.is_end_stream(),
                        Rest::Failed(error) => error.is_none(),
                    }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Complete(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Passing { read, rest } => {
                let read = read.as_ref().map_or(0, |b| b.len() as u64);
                let mut hint = match rest {
                    Rest::Body(body) => body.size_hint(),
                    Rest::Failed(_) => SizeHint::new(),
                };
                hint.set_lower(hint.lower().saturating_add(read));
                if let Some(upper) = hint.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
        }
    }
}

/// A handler's body read to its end, or why not.
pub(crate) enum Buffered {
    /// The whole body, within the limit.
    Complete(Bytes),
    /// Longer than the limit (or announced so): what was read, then the rest, passed through.
    TooLarge(HttpCacheBody),
    /// It failed part way: what was read, then the error.
    Failed(HttpCacheBody),
}

/// Reads `body` into memory if it is at most `limit` bytes. Trailers are not kept.
pub(crate) async fn buffer<B>(body: B, limit: usize) -> Buffered
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let limit = limit as u64;
    if body.size_hint().lower() > limit {
        return Buffered::TooLarge(HttpCacheBody::passing(body));
    }
    let mut body = body.map_err(Into::into).boxed_unsync();
    let mut read = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Buffered::Complete(read.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
                if read.len() as u64 > limit {
                    return Buffered::TooLarge(HttpCacheBody {
                        kind: Kind::Passing {
                            read: Some(read.freeze()),
                            rest: Rest::Body(body),
                        },
                    });
                }
            }
            Some(Err(error)) => {
                return Buffered::Failed(HttpCacheBody {
                    kind: Kind::Passing {
                        read: Some(read.freeze()),
                        rest: Rest::Failed(Some(error)),
                    },
                })
            }
        }
    }
}

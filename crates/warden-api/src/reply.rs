//! The body of every response Warden's listeners send: a whole body, sent with its
//! `Content-Length`, or a stream (`InvokeWithResponseStream`, `RESPONSE_STREAM` URLs),
//! sent chunked as its parts arrive.
//!
//! A stream that breaks (its sender reports the break) ends the connection without the
//! final chunk, so the client sees an incomplete response rather than a short one that
//! looks whole.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Parts of a streamed body queued between its producer and the connection.
pub(crate) const STREAM_PARTS_BUFFERED: usize = 8;

/// The stream ended before it was complete.
#[derive(Debug, thiserror::Error)]
#[error("the response stream broke off")]
pub struct StreamBroken;

/// A response body: whole, or streamed.
#[derive(Debug)]
pub struct ReplyBody(Inner);

enum Inner {
    Whole(Option<Bytes>),
    Stream {
        parts: mpsc::Receiver<Result<Bytes, StreamBroken>>,
        /// Kept until the body is dropped: the connection's mark that a response is in
        /// progress, so that a stream paused between chunks is never taken for an idle
        /// connection and evicted.
        held: Option<Box<dyn Send + Sync>>,
    },
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inner::Whole(b) => f.debug_tuple("Whole").field(b).finish(),
            Inner::Stream { .. } => f.write_str("Stream"),
        }
    }
}

impl ReplyBody {
    /// An empty body.
    pub fn empty() -> Self {
        Self(Inner::Whole(None))
    }

    /// A streamed body and the sender that feeds it; the body ends when the sender is
    /// dropped, or breaks off at an `Err`.
    pub(crate) fn channel() -> (mpsc::Sender<Result<Bytes, StreamBroken>>, Self) {
        let (tx, rx) = mpsc::channel(STREAM_PARTS_BUFFERED);
        let inner = Inner::Stream {
            parts: rx,
            held: None,
        };
        (tx, Self(inner))
    }

    /// Keeps `guard` alive for as long as a streamed body is; a whole body drops it at
    /// once (the connection tracks what is left to write of it).
    pub(crate) fn hold(mut self, guard: impl Send + Sync + 'static) -> Self {
        if let Inner::Stream { held, .. } = &mut self.0 {
            *held = Some(Box::new(guard));
        }
        self
    }

    /// The whole body, when it is not a stream (for tests and callers that read it).
    pub fn whole(&self) -> Option<&[u8]> {
        match &self.0 {
            Inner::Whole(b) => Some(b.as_deref().unwrap_or_default()),
            Inner::Stream { .. } => None,
        }
    }
}

impl From<Bytes> for ReplyBody {
    fn from(bytes: Bytes) -> Self {
        Self(Inner::Whole((!bytes.is_empty()).then_some(bytes)))
    }
}

impl From<String> for ReplyBody {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<Vec<u8>> for ReplyBody {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = StreamBroken;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamBroken>>> {
        match &mut self.0 {
            Inner::Whole(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream { parts, .. } => loop {
                return match parts.poll_recv(cx) {
                    // An empty part would end a chunked body early: skipped.
                    Poll::Ready(Some(Ok(b))) if b.is_empty() => continue,
                    Poll::Ready(Some(r)) => Poll::Ready(Some(r.map(Frame::data))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                };
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Inner::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Stream { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_whole_body_has_its_exact_length() {
        let body = ReplyBody::from(Bytes::from_static(b"hello"));
        assert_eq!(body.size_hint().exact(), Some(5));
        let collected = body.collect().await.expect("whole").to_bytes();
        assert_eq!(&collected[..], b"hello");
        assert!(ReplyBody::empty().is_end_stream());
    }

    #[tokio::test]
    async fn a_stream_yields_parts_in_order_and_can_break_off() {
        let (tx, body) = ReplyBody::channel();
        assert_eq!(body.size_hint().exact(), None);
        tokio::spawn(async move {
            for part in [&b"a"[..], b"", b"bc"] {
                tx.send(Ok(Bytes::from_static(part))).await.expect("open");
            }
        });
        let collected = body.collect().await.expect("whole").to_bytes();
        assert_eq!(&collected[..], b"abc");

        let (tx, body) = ReplyBody::channel();
        tokio::spawn(async move {
            tx.send(Ok(Bytes::from_static(b"a"))).await.expect("open");
            tx.send(Err(StreamBroken)).await.expect("open");
        });
        assert!(body.collect().await.is_err());
    }

    #[test]
    fn a_stream_holds_its_guard_until_dropped_and_a_whole_body_does_not() {
        let guard = std::sync::Arc::new(());
        let (_tx, body) = ReplyBody::channel();
        let body = body.hold(std::sync::Arc::clone(&guard));
        assert_eq!(std::sync::Arc::strong_count(&guard), 2);
        drop(body);
        assert_eq!(std::sync::Arc::strong_count(&guard), 1);
        let whole = ReplyBody::from(Bytes::from_static(b"x")).hold(std::sync::Arc::clone(&guard));
        assert_eq!(std::sync::Arc::strong_count(&guard), 1);
        drop(whole);
    }
}

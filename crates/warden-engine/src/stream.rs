//! Streamed responses: relaying the chunks an instance writes in the Runtime API's
//! streaming response mode to the caller that asked for a stream, or collecting them into
//! one buffered response for a caller that did not.
//!
//! The function's timeout and its process's exit are raced at every step, including while
//! a slow caller holds a chunk back: a stream never outlives its invocation's deadline.

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::Instant;
use warden_executor::ExitStatus;
use warden_runtime_api::{Outcome, ResponseStream, StreamEnd};

use crate::instance::Instance;

/// What a caller that asked for a stream (`InvokeRequest::stream`) receives while the
/// invocation runs. Nothing is sent when the function answers without streaming: its
/// response is then the `InvokeResponse`'s payload, as for any invocation.
#[derive(Debug)]
pub enum StreamPart {
    /// The function began streaming its response.
    Started {
        /// The content type its runtime declared.
        content_type: String,
        /// The version that runs (`X-Amz-Executed-Version`).
        executed_version: String,
    },
    /// The next chunk, as the function wrote it.
    Chunk(Bytes),
}

/// How long an instance whose response connection broke mid-stream has to exit before
/// the invocation is failed without waiting for it.
const BROKEN_STREAM_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What waiting for the instance came to: its outcome, `Ok(None)` at the deadline, or its
/// exit. The same shape as a buffered invocation's wait, so both end in one place.
pub(crate) type Waited = Result<Option<Outcome>, ExitStatus>;

/// Relays (to `sink`) or collects (up to `buffered_limit` bytes) a streamed response until
/// it ends, the deadline passes or the instance exits. Returns the outcome as a buffered
/// response would have been, and whether anything went to `sink`.
pub(crate) async fn relay(
    stream: ResponseStream,
    sink: Option<&mpsc::Sender<StreamPart>>,
    executed_version: &str,
    instance: &Instance,
    deadline: Instant,
    buffered_limit: usize,
) -> (Waited, bool) {
    let ResponseStream {
        content_type,
        mut chunks,
        end,
    } = stream;
    let mut collected = BytesMut::new();
    let mut too_large = false;
    let streamed = sink.is_some();
    if let Some(sink) = sink {
        let started = StreamPart::Started {
            content_type,
            executed_version: executed_version.to_owned(),
        };
        // A caller that is gone does not stop the function.
        let _ = sink.send(started).await;
    }
    // Set once the process has exited: the chunks it wrote before may still be on their
    // way, and the stream's end says whether it finished first.
    let mut exited: Option<ExitStatus> = None;
    loop {
        let chunk = tokio::select! {
            biased;
            c = chunks.recv() => c,
            status = instance.exited(), if exited.is_none() => {
                exited = Some(status);
                continue;
            }
            _ = tokio::time::sleep_until(deadline) => return (Ok(None), streamed),
        };
        let Some(chunk) = chunk else { break };
        match sink {
            Some(sink) => {
                tokio::select! {
                    biased;
                    _ = sink.send(StreamPart::Chunk(chunk)) => {}
                    _ = tokio::time::sleep_until(deadline) => return (Ok(None), streamed),
                }
            }
            None if too_large => {}
            None if collected.len() + chunk.len() > buffered_limit => too_large = true,
            None => collected.extend_from_slice(&chunk),
        }
    }
    let ended = tokio::select! {
        e = end => e.unwrap_or(StreamEnd::Interrupted),
        _ = tokio::time::sleep_until(deadline) => return (Ok(None), streamed),
    };
    let outcome = match ended {
        StreamEnd::Complete if too_large => Ok(Some(Outcome::ResponseTooLarge)),
        StreamEnd::Complete => Ok(Some(Outcome::Response(collected.freeze()))),
        StreamEnd::Error { error_type, body } => {
            Ok(Some(Outcome::FunctionError { error_type, body }))
        }
        StreamEnd::TooLarge if streamed => {
            // As for a buffered response too large: the runtime was refused mid-upload and
            // is not trusted with the next event.
            instance.doom();
            Ok(Some(Outcome::FunctionError {
                error_type: Some("Function.ResponseSizeTooLarge".into()),
                body: crate::error_json(
                    "Function.ResponseSizeTooLarge",
                    &format!(
                        "Response payload size exceeded maximum allowed payload size ({} bytes).",
                        warden_runtime_api::MAX_STREAMED_BYTES
                    ),
                ),
            }))
        }
        StreamEnd::TooLarge => Ok(Some(Outcome::ResponseTooLarge)),
        StreamEnd::Interrupted => match exited {
            Some(status) => Err(status),
            None => {
                let grace = deadline.min(Instant::now() + BROKEN_STREAM_GRACE);
                tokio::select! {
                    status = instance.exited() => Err(status),
                    _ = tokio::time::sleep_until(grace) => {
                        instance.doom();
                        Ok(Some(Outcome::FunctionError {
                        error_type: Some("Runtime.ResponseStreamInterrupted".into()),
                        body: crate::error_json(
                            "Runtime.ResponseStreamInterrupted",
                            "the runtime's response stream ended before it was complete",
                        ),
                    }))
                    }
                }
            }
        },
    };
    (outcome, streamed)
}

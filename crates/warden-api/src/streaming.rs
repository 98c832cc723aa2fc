//! `InvokeWithResponseStream`: the function's response as an AWS event stream
//! (`application/vnd.amazon.eventstream`), a `PayloadChunk` event for each chunk as the
//! function writes it, then one `InvokeComplete` event saying how the invocation ended
//! (`ErrorCode` and `ErrorDetails` for a function error, `LogResult` for `Tail`).
//!
//! Who may call: a principal allowed `lambda:InvokeFunction` on the function (or its
//! qualifier), as for `Invoke`; an unsigned request only where the function's policy
//! grants that to `*`. What it changes: nothing stored; it runs the function once.
//!
//! Everything that can refuse the invocation (a contract violation, an unknown function,
//! a throttle, a closed KMS key) happens before the first byte of the answer, and is an
//! ordinary error response; once the stream has begun, failures can only be told in
//! `InvokeComplete`. A function that does not stream is answered the same way, its whole
//! response in one `PayloadChunk`.

use aws_smithy_types::event_stream::{Header, HeaderValue as EventHeader, Message};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use tokio::sync::mpsc;
use warden_engine::{InvokeRequest, InvokeResponse, StreamPart};

use crate::reply::{ReplyBody, StreamBroken};
use crate::{empty_response, invoke, ApiError, ApiRequest, ApiState, Reply};

/// The content type of an event stream.
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// `InvokeWithResponseStream`.
pub async fn invoke(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let function = state
        .function_ref(raw)?
        .with_qualifier(request.query("Qualifier").as_deref())?;
    invoke::refuse_unsupported_headers(request)?;
    let tail = invoke::log_type(request)?;
    match request.header("x-amz-invocation-type") {
        None | Some("RequestResponse") => {}
        Some("DryRun") => {
            state.engine.resolve(&function).await?;
            return Ok(empty_response(StatusCode::NO_CONTENT));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "X-Amz-Invocation-Type `{other}` must be RequestResponse or DryRun"
            )))
        }
    }
    crate::contracts::admit(state, &function, &request.body)?;
    let client_context = invoke::client_context(request)?;
    let (parts_tx, mut parts) = mpsc::channel(crate::reply::STREAM_PARTS_BUFFERED);
    let engine = state.engine.clone();
    let invocation = InvokeRequest {
        function,
        payload: request.body.clone(),
        tail,
        client_context,
        request_id: Some(request.request_id.clone()).filter(|id| !id.is_empty()),
        stream: Some(parts_tx),
    };
    let mut running = tokio::spawn(async move { engine.invoke(invocation).await });
    // The first part says the function began streaming; none (the engine dropped the
    // sender) means the invocation ended without, or could not start.
    let executed_version = match parts.recv().await {
        Some(StreamPart::Started {
            executed_version, ..
        }) => executed_version,
        Some(StreamPart::Chunk(_)) | None => {
            let response = (&mut running).await.map_err(ApiError::internal)??;
            return Ok(buffered(&response));
        }
    };
    let (body_tx, body) = ReplyBody::channel();
    tokio::spawn(async move {
        // A client that went away stops being written to; the invocation still runs to
        // its end, its chunks drained so that the function is never blocked by it.
        let mut client = Some(body_tx);
        while let Some(part) = parts.recv().await {
            let StreamPart::Chunk(chunk) = part else {
                continue;
            };
            if let Some(tx) = &client {
                if tx.send(Ok(payload_chunk(chunk))).await.is_err() {
                    client = None;
                }
            }
        }
        let complete = match running.await {
            Ok(Ok(response)) => Ok(invoke_complete(&response)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a streamed invocation failed after it began");
                Err(StreamBroken)
            }
            Err(e) => {
                tracing::error!(error = %e, "a streamed invocation's task failed");
                Err(StreamBroken)
            }
        };
        if let Some(tx) = client {
            let _ = tx.send(complete).await;
        }
    });
    Ok(stream_response(body, &executed_version))
}

fn stream_response(body: ReplyBody, executed_version: &str) -> Reply {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(EVENT_STREAM),
    );
    if let Ok(v) = HeaderValue::from_str(executed_version) {
        h.insert("x-amz-executed-version", v);
    }
    r
}

/// The answer of a function that did not stream: its response in one `PayloadChunk` (none
/// for an error), then `InvokeComplete`.
fn buffered(response: &InvokeResponse) -> Reply {
    let mut events = Vec::new();
    if response.function_error.is_none() && !response.payload.is_empty() {
        events.extend_from_slice(&payload_chunk(response.payload.clone()));
    }
    events.extend_from_slice(&invoke_complete(response));
    stream_response(
        ReplyBody::from(Bytes::from(events)),
        &response.executed_version,
    )
}

fn payload_chunk(chunk: Bytes) -> Bytes {
    event("PayloadChunk", "application/octet-stream", chunk)
}

/// `InvokeComplete`: the error's type and message when the function failed, the log's
/// tail when asked for.
fn invoke_complete(response: &InvokeResponse) -> Bytes {
    let mut fields = serde_json::Map::new();
    if response.function_error.is_some() {
        let (code, details) = error_parts(&response.payload);
        fields.insert("ErrorCode".into(), code.into());
        fields.insert("ErrorDetails".into(), details.into());
    }
    if let Some(tail) = &response.log_tail {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tail.as_bytes());
        fields.insert("LogResult".into(), encoded.into());
    }
    let payload = serde_json::Value::Object(fields).to_string();
    event("InvokeComplete", "application/json", Bytes::from(payload))
}

/// The `errorType` and `errorMessage` of a function's error JSON; the whole text as the
/// details when it is not such an object.
fn error_parts(payload: &[u8]) -> (String, String) {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let code = field("errorType").unwrap_or_else(|| "Unhandled".to_owned());
    let details =
        field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(payload).into_owned());
    (code, details)
}

/// One event-stream message of type `event`.
fn event(kind: &'static str, content_type: &'static str, payload: Bytes) -> Bytes {
    let message = Message::new(payload)
        .add_header(Header::new(":event-type", EventHeader::String(kind.into())))
        .add_header(Header::new(
            ":content-type",
            EventHeader::String(content_type.into()),
        ))
        .add_header(Header::new(
            ":message-type",
            EventHeader::String("event".into()),
        ));
    let mut out = Vec::new();
    // Writing fails only for a message past the format's 16 MB; chunks are far smaller.
    if let Err(e) = aws_smithy_eventstream::frame::write_message_to(&message, &mut out) {
        tracing::error!(error = %e, "an event-stream message could not be written");
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(mut bytes: &[u8]) -> Vec<(String, String, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let total = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            let message = aws_smithy_eventstream::frame::read_message_from(&bytes[..total])
                .expect("a valid message");
            let header = |name: &str| {
                message
                    .headers()
                    .iter()
                    .find(|h| h.name().as_str() == name)
                    .and_then(|h| h.value().as_string().ok())
                    .map(|s| s.as_str().to_owned())
                    .expect("header present")
            };
            assert_eq!(header(":message-type"), "event");
            out.push((
                header(":event-type"),
                header(":content-type"),
                message.payload().to_vec(),
            ));
            bytes = &bytes[total..];
        }
        out
    }

    fn response(payload: &str, error: bool, tail: Option<&str>) -> InvokeResponse {
        InvokeResponse {
            payload: Bytes::from(payload.to_owned()),
            function_error: error.then_some("Unhandled"),
            log_tail: tail.map(str::to_owned),
            executed_version: "$LATEST".into(),
            streamed: false,
        }
    }

    #[test]
    fn a_buffered_answer_is_one_chunk_then_complete() {
        let r = buffered(&response(r#"{"ok":1}"#, false, Some("END\n")));
        assert_eq!(r.headers()["content-type"], EVENT_STREAM);
        assert_eq!(r.headers()["x-amz-executed-version"], "$LATEST");
        let events = decode(r.body().whole().expect("whole"));
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].0, "PayloadChunk");
        assert_eq!(events[0].2, br#"{"ok":1}"#);
        assert_eq!(events[1].0, "InvokeComplete");
        let complete: serde_json::Value = serde_json::from_slice(&events[1].2).expect("json");
        assert_eq!(complete, serde_json::json!({ "LogResult": "RU5ECg==" }));
    }

    #[test]
    fn a_function_error_is_told_in_invoke_complete() {
        let r = buffered(&response(
            r#"{"errorType":"TypeError","errorMessage":"boom"}"#,
            true,
            None,
        ));
        let events = decode(r.body().whole().expect("whole"));
        assert_eq!(events.len(), 1);
        let complete: serde_json::Value = serde_json::from_slice(&events[0].2).expect("json");
        assert_eq!(
            complete,
            serde_json::json!({ "ErrorCode": "TypeError", "ErrorDetails": "boom" })
        );
        assert_eq!(
            error_parts(b"not json"),
            ("Unhandled".to_owned(), "not json".to_owned())
        );
    }
}

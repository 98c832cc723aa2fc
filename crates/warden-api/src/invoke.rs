//! `Invoke` and the legacy `InvokeAsync`: the data-plane entry, kept lean because it is
//! the hot path.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use warden_engine::InvokeRequest;
use warden_types::limits;

use crate::{empty_response, json_response, ApiError, ApiRequest, ApiState, Reply};

pub(crate) fn client_context(request: &ApiRequest) -> Result<Option<String>, ApiError> {
    let Some(raw) = request.header("x-amz-client-context") else {
        return Ok(None);
    };
    if raw.len() > limits::CLIENT_CONTEXT_BASE64_BYTES {
        return Err(ApiError::invalid(format!(
            "Client context must be at most {} bytes of base64",
            limits::CLIENT_CONTEXT_BASE64_BYTES
        )));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| ApiError::invalid("Client context must be valid base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| ApiError::invalid("Client context must be UTF-8 JSON"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|_| ApiError::invalid("Client context must be JSON"))?;
    Ok(Some(text))
}

/// Headers Lambda's `Invoke` defines that Warden does not implement: refused by name.
pub(crate) fn refuse_unsupported_headers(request: &ApiRequest) -> Result<(), ApiError> {
    for (header, why) in [
        (
            "x-amz-durable-execution-name",
            "durable executions do not exist",
        ),
        ("x-amz-tenant-id", "functions have no tenant isolation mode"),
    ] {
        if request.parts.headers.contains_key(header) {
            return Err(crate::shape::unsupported(header, why));
        }
    }
    Ok(())
}

/// `X-Amz-Log-Type`: whether the end of the log comes back (`Tail`).
pub(crate) fn log_type(request: &ApiRequest) -> Result<bool, ApiError> {
    match request.header("x-amz-log-type") {
        None | Some("None") => Ok(false),
        Some("Tail") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "X-Amz-Log-Type `{other}` must be None or Tail"
        ))),
    }
}

pub async fn invoke(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let function = state
        .function_ref(raw)?
        .with_qualifier(request.query("Qualifier").as_deref())?;
    refuse_unsupported_headers(request)?;
    let invocation_type = request
        .header("x-amz-invocation-type")
        .unwrap_or("RequestResponse");
    let tail = log_type(request)?;
    match invocation_type {
        "RequestResponse" => {}
        "Event" => {
            if request.body.len() > limits::ASYNC_PAYLOAD_BYTES {
                return Err(ApiError::too_large(
                    limits::ASYNC_PAYLOAD_BYTES,
                    "InvokeAsync",
                ));
            }
            crate::contracts::admit(state, &function, &request.body)?;
            let id = state
                .engine
                .enqueue(&function, request.body.clone())
                .await?;
            received(state, &function);
            let mut r = empty_response(StatusCode::ACCEPTED);
            if let Ok(v) = HeaderValue::from_str(&id) {
                r.headers_mut().insert("x-amzn-requestid", v);
            }
            return Ok(r);
        }
        "DryRun" => {
            state.engine.resolve(&function).await?;
            return Ok(empty_response(StatusCode::NO_CONTENT));
        }
        other => {
            return Err(ApiError::invalid(format!(
                "X-Amz-Invocation-Type `{other}` must be RequestResponse, Event or DryRun"
            )));
        }
    }
    crate::contracts::admit(state, &function, &request.body)?;
    let client_context = client_context(request)?;
    let response = state
        .engine
        .invoke(InvokeRequest {
            function,
            payload: request.body.clone(),
            tail,
            client_context,
            request_id: Some(request.request_id.clone()).filter(|id| !id.is_empty()),
            stream: None,
        })
        .await?;
    let mut r = http::Response::new(crate::ReplyBody::from(response.payload));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&response.executed_version) {
        h.insert("x-amz-executed-version", v);
    }
    if let Some(kind) = response.function_error {
        h.insert("x-amz-function-error", HeaderValue::from_static(kind));
    }
    if let Some(tail) = response.log_tail {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tail.as_bytes());
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            h.insert("x-amz-log-result", v);
        }
    }
    Ok(r)
}

pub async fn invoke_async(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let function = state.function_ref(raw)?;
    crate::contracts::admit(state, &function, &request.body)?;
    state
        .engine
        .enqueue(&function, Bytes::clone(&request.body))
        .await?;
    received(state, &function);
    Ok(json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "Status": 202 }),
    ))
}

/// Counts an asynchronous event queued for `function`.
fn received(state: &ApiState, function: &warden_types::FunctionRef) {
    state.metrics.count(
        warden_metrics::Counter::AsyncEventsReceived,
        Some(function.name.as_str()),
        None,
    );
}

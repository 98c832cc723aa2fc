//! Function URLs: Lambda's `*FunctionUrlConfig` operations, and the URL listener's
//! request handling.
//!
//! The operations (under `/2021-10-31/functions/NAME/url` and `/urls`) are Lambda
//! operations like any other: signed, authorized as `lambda:CreateFunctionUrlConfig` (and
//! so on) on the function's or alias's ARN, and they change only the URL configuration.
//!
//! The URL listener is a second listener with its own connection cap and body budget, so
//! that a flood of one URL cannot starve the API. A request there is served as:
//!
//! 1. routed by its host name (`<url-id>.lambda-url.<region>.<domain>`) or by the path
//!    form (`/_url/<url-id>/...`) to a URL configuration; anything else is 404;
//! 2. the URL's and the source address's rates and the URL's requests in flight are
//!    checked (`url_limits`: 429 with `Retry-After`); a CORS preflight is answered by the
//!    platform, for a URL with `Cors`;
//! 3. the function's input contract checks the request line and headers;
//! 4. `AWS_IAM`: the request must be SigV4-signed for `lambda`, and its principal allowed
//!    `lambda:InvokeFunctionUrl` on the function (`lambda:FunctionUrlAuthType` =
//!    `AWS_IAM`). `NONE`: the function's resource policy must allow
//!    `lambda:InvokeFunctionUrl` to `*` with `lambda:FunctionUrlAuthType` = `NONE`, as AWS
//!    requires; signatures are not read. Both refusals are 403 `{"Message":"Forbidden"}`,
//!    decided before the body is read;
//! 5. the body is read within the sync payload limit (or the contract's `MaxBodyBytes`);
//! 6. the payload format 2.0 event is built, checked against the contract, and invoked;
//! 7. the output becomes the response (`statusCode`, `headers`, `cookies`, `body`), CORS
//!    headers are applied, and a function error is 502. On a `RESPONSE_STREAM` URL, a
//!    function that streams is answered as it writes: the head comes from the prelude of
//!    an HTTP integration stream (`HttpResponseStream.from`), else it is 200 with the
//!    stream's content type, and the body follows chunk by chunk; an error after the head
//!    was sent breaks the response off (no final chunk), so the client cannot mistake a
//!    cut response for a whole one. A function that answers without streaming is mapped
//!    as on a `BUFFERED` URL.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use warden_metrics::Counter;
use warden_types::{FunctionName, FunctionRef, Qualifier};
use warden_urls::{AuthType, InvokeMode, UrlConfig, UrlError};

use crate::access::{self, Target};
use crate::{
    body, empty_response, json_response, ApiError, ApiRequest, ApiState, Reply, ReplyBody,
};

/// The function and alias (`None`: `$LATEST`) a configuration operation names.
fn subject(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<(FunctionName, Option<String>), ApiError> {
    let r = state.function_ref(raw)?;
    let qualifier = request
        .query("Qualifier")
        .or_else(|| r.qualifier.as_ref().map(|q| q.to_string()));
    match qualifier.as_deref() {
        None => Ok((r.name, None)),
        Some(q) => match Qualifier::parse(q) {
            Ok(Qualifier::Alias(a)) => Ok((r.name, Some(a.to_string()))),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{}' at 'qualifier' failed to satisfy constraint: a function URL belongs to the function's $LATEST or to an alias",
                    q.chars().take(64).collect::<String>()
                ),
            )),
        },
    }
}

fn url_error(e: UrlError) -> ApiError {
    if e.is_internal() {
        return ApiError::internal(e);
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, e.code(), e.to_string())
}

/// A public (`NONE`) URL of an alias could never be called: AWS opens one with a
/// permission on the alias's ARN, and Warden's function policies hold permissions on the
/// unqualified function only. Refused rather than made unusable.
fn refuse_public_alias(qualifier: Option<&str>, auth: Option<AuthType>) -> Result<(), ApiError> {
    if let (Some(q), Some(AuthType::None)) = (qualifier, auth) {
        return Err(crate::shape::unsupported(
            "AuthType",
            &format!(
                "a NONE URL of alias `{q}` would need a permission on the alias, and Warden's \
                 function policies are on the unqualified function only; use AWS_IAM, or a \
                 URL of the function itself"
            ),
        ));
    }
    Ok(())
}

/// `CreateFunctionUrlConfig`.
pub async fn create(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let (name, qualifier) = subject(state, request, raw)?;
    let input = warden_urls::parse_create_request(&request.body).map_err(url_error)?;
    refuse_public_alias(qualifier.as_deref(), Some(input.auth_type))?;
    state.must_exist(&name, qualifier.as_deref()).await?;
    let urls = state.urls.clone();
    let f = name.to_string();
    let config = tokio::task::spawn_blocking(move || {
        urls.create(
            &f,
            qualifier.as_deref(),
            input.auth_type,
            input.cors,
            input.invoke_mode,
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("creating the function URL: {e}")))?
    .map_err(url_error)?;
    tracing::info!(function = %name, url_id = %config.url_id, auth = config.auth_type.as_str(), "function URL created");
    Ok(json_response(
        StatusCode::CREATED,
        &config.to_create_json(&state.url_base, state.account.as_str()),
    ))
}

/// `GetFunctionUrlConfig`.
pub async fn get(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let (name, qualifier) = subject(state, request, raw)?;
    state.must_exist(&name, qualifier.as_deref()).await?;
    let config = state
        .urls
        .get(name.as_str(), qualifier.as_deref())
        .ok_or_else(|| no_url(&name, qualifier.as_deref()))?;
    Ok(json_response(
        StatusCode::OK,
        &config.to_json(&state.url_base, state.account.as_str()),
    ))
}

fn no_url(name: &FunctionName, qualifier: Option<&str>) -> ApiError {
    let arn = match qualifier {
        Some(q) => format!("{name}:{q}"),
        None => name.to_string(),
    };
    ApiError::not_found(format!(
        "The resource you requested does not exist. (function URL of {arn})"
    ))
}

/// `UpdateFunctionUrlConfig`.
pub async fn update(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let (name, qualifier) = subject(state, request, raw)?;
    let input = warden_urls::parse_update_request(&request.body).map_err(url_error)?;
    refuse_public_alias(qualifier.as_deref(), input.auth_type)?;
    state.must_exist(&name, qualifier.as_deref()).await?;
    let urls = state.urls.clone();
    let f = name.to_string();
    let config = tokio::task::spawn_blocking(move || {
        urls.update(
            &f,
            qualifier.as_deref(),
            input.auth_type,
            input.cors,
            input.invoke_mode,
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("updating the function URL: {e}")))?
    .map_err(url_error)?;
    tracing::info!(function = %name, url_id = %config.url_id, auth = config.auth_type.as_str(), "function URL updated");
    Ok(json_response(
        StatusCode::OK,
        &config.to_json(&state.url_base, state.account.as_str()),
    ))
}

/// `DeleteFunctionUrlConfig`.
pub async fn delete(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let (name, qualifier) = subject(state, request, raw)?;
    state.must_exist(&name, qualifier.as_deref()).await?;
    let urls = state.urls.clone();
    let (f, q) = (name.to_string(), qualifier.clone());
    let deleted = tokio::task::spawn_blocking(move || urls.delete(&f, q.as_deref()))
        .await
        .map_err(|e| ApiError::internal(format!("deleting the function URL: {e}")))?
        .map_err(url_error)?;
    if !deleted {
        return Err(no_url(&name, qualifier.as_deref()));
    }
    tracing::info!(function = %name, "function URL deleted");
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `ListFunctionUrlConfigs`.
pub async fn list(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let r = state.function_ref(raw)?;
    if r.qualifier.is_some() {
        return Err(ApiError::invalid(format!(
            "`{raw}` must not include a qualifier for this operation"
        )));
    }
    state.must_exist(&r.name, None).await?;
    let page = state
        .urls
        .list(
            r.name.as_str(),
            request.query("Marker").as_deref(),
            request.query("MaxItems").as_deref(),
        )
        .map_err(url_error)?;
    Ok(json_response(
        StatusCode::OK,
        &page.to_json(&state.url_base, state.account.as_str()),
    ))
}

/// A function URL's own answer: `{"Message": ...}` with `status`.
fn message(status: StatusCode, text: &str) -> Reply {
    let mut r = Response::new(crate::ReplyBody::from(Bytes::from(
        json!({ "Message": text }).to_string(),
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// 403 `{"Message":"Forbidden"}`, counted in the security metrics.
fn refused_caller(
    state: &ApiState,
    counter: Counter,
    function: &str,
    peer: std::net::IpAddr,
) -> Reply {
    state.count_url_refusal(counter, function, peer);
    message(StatusCode::FORBIDDEN, "Forbidden")
}

/// An API error as a function URL answers it: its status, and its message only for the
/// caller's own mistakes (4xx); a server fault says no more than its status.
fn url_reply(e: &ApiError) -> Reply {
    if e.status.is_client_error() {
        let mut r = message(e.status, &e.message);
        if let Ok(v) = HeaderValue::from_str(e.code) {
            r.headers_mut().insert("x-amzn-errortype", v);
        }
        r
    } else {
        message(e.status, "Internal Server Error")
    }
}

/// Serves one request on the URL listener.
pub(crate) async fn handle(
    shared: &crate::server::Shared,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Reply {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = serve(shared, peer, req, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

async fn serve(
    shared: &crate::server::Shared,
    peer: SocketAddr,
    req: http::Request<Incoming>,
    request_id: &str,
) -> Reply {
    let state = &shared.state;
    let (parts, incoming) = req.into_parts();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.host());
    let Some((url_id, path)) = warden_urls::route(host, parts.uri.path(), &state.url_base) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(config) = state.urls.by_url_id(&url_id) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    // Held until the response is made: the URL's in-flight count.
    let _in_flight = match state.url_limits.admit(&config.url_id, peer.ip()) {
        Ok(guard) => guard,
        Err(refusal) => {
            tracing::debug!(url_id = %config.url_id, limit = refusal.limit, "function URL request throttled");
            let mut r = message(StatusCode::TOO_MANY_REQUESTS, "Rate Exceeded.");
            let h = r.headers_mut();
            h.insert(
                "x-amzn-errortype",
                HeaderValue::from_static("TooManyRequestsException"),
            );
            h.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(refusal.retry_after),
            );
            return r;
        }
    };
    // The forwarding headers are the platform's, as Lambda sets them: a client's own are
    // replaced, so a function can trust `x-forwarded-for` as much as `sourceIp`.
    let mut headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .filter(|(k, _)| !k.as_str().starts_with("x-forwarded-"))
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    headers.push(("x-forwarded-for".into(), peer.ip().to_string().into_bytes()));
    headers.push((
        "x-forwarded-proto".into(),
        state.url_base.scheme.clone().into_bytes(),
    ));
    headers.push((
        "x-forwarded-port".into(),
        state.url_base.port.to_string().into_bytes(),
    ));
    let method = parts.method.as_str().to_owned();
    if let Some(cors) = &config.cors {
        if let Some(allow) = warden_urls::cors::preflight(cors, &method, &headers) {
            let mut r = empty_response(StatusCode::OK);
            for (k, v) in allow {
                if let (Ok(k), Ok(v)) = (
                    http::header::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    r.headers_mut().append(k, v);
                }
            }
            return r;
        }
    }
    let function = FunctionRef {
        name: match FunctionName::new(&config.function_name) {
            Ok(n) => n,
            Err(_) => return message(StatusCode::NOT_FOUND, "Not Found"),
        },
        qualifier: match &config.qualifier {
            None => None,
            Some(q) => match warden_types::AliasName::new(q) {
                Ok(a) => Some(Qualifier::Alias(a)),
                Err(_) => return message(StatusCode::NOT_FOUND, "Not Found"),
            },
        },
    };
    let alias = config.qualifier.as_deref();
    let contract = match state.contracts.applicable(function.name.as_str(), alias) {
        warden_contract::store::Applicable::None => None,
        warden_contract::store::Applicable::Contract(c) => Some(c),
        warden_contract::store::Applicable::Broken(_) => {
            state.count_contract_refusal(function.name.as_str());
            return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(c) = &contract {
        let header_refs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let parts_check = warden_contract::RequestParts {
            method: &method,
            path: &path,
            headers: &header_refs,
            body_len: usize::try_from(declared.unwrap_or(0)).unwrap_or(usize::MAX),
        };
        if let Err(violations) = c.check_request(&parts_check) {
            return refused(state, &function, &violations.to_string());
        }
    }
    let mut request = ApiRequest {
        operation: crate::Operation::InvokeFunctionUrl,
        parts,
        body: Bytes::new(),
        peer,
        principal: None,
        request_id: request_id.to_owned(),
    };
    let expects_continue = request
        .parts
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    // Who may call, decided before the body is read.
    let pending = match config.auth_type {
        AuthType::AwsIam => match access::authenticate_headers(state, &request, Some("lambda")) {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                body::discard(expects_continue, incoming);
                return refused_caller(
                    state,
                    Counter::AuthenticationFailures,
                    function.name.as_str(),
                    peer.ip(),
                );
            }
            Err(e) => {
                body::discard(expects_continue, incoming);
                state.count_refusal(&e, Some(function.name.as_str()), peer.ip());
                return url_reply(&e);
            }
        },
        AuthType::None => {
            let target = target(state, &config, &function, "NONE");
            if access::authorize(state, &request, None, vec![target])
                .await
                .is_err()
            {
                body::discard(expects_continue, incoming);
                return refused_caller(
                    state,
                    Counter::AccessDenied,
                    function.name.as_str(),
                    peer.ip(),
                );
            }
            None
        }
    };
    let limit = contract
        .as_ref()
        .and_then(|c| c.max_body_bytes())
        .unwrap_or(warden_types::limits::SYNC_PAYLOAD_BYTES)
        .min(warden_types::limits::SYNC_PAYLOAD_BYTES);
    let plan = body::Plan {
        limit,
        declared,
        signed: pending.is_some(),
    };
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("Request must be smaller than {limit} bytes for the function URL"),
        )
    };
    let received = match body::read(incoming, plan, &shared.budget, too_large).await {
        Ok(r) => r,
        Err(e) => return url_reply(&e),
    };
    request.body = received.bytes;
    let mut iam = None;
    if let Some(pending) = pending {
        use sha2::Digest as _;
        let sha256 = received
            .sha256
            .unwrap_or_else(|| sha2::Sha256::digest(&request.body).into());
        let proven =
            match access::finish_authentication(state, &request, pending, &sha256, "lambda") {
                Ok(p) => p,
                Err(e) => {
                    state.count_refusal(&e, Some(function.name.as_str()), peer.ip());
                    return url_reply(&e);
                }
            };
        let principal = proven.principal;
        let target = target(state, &config, &function, "AWS_IAM");
        if access::authorize(state, &request, Some(&principal), vec![target])
            .await
            .is_err()
        {
            return refused_caller(
                state,
                Counter::AccessDenied,
                function.name.as_str(),
                peer.ip(),
            );
        }
        iam = Some(warden_urls::IamCaller {
            access_key: proven.access_key_id,
            account_id: principal.account.clone(),
            caller_id: principal.id.clone(),
            user_arn: principal.arn.clone(),
            user_id: principal.id.clone(),
        });
        request.principal = Some(principal);
    }
    let time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let url_request = warden_urls::UrlRequest {
        method,
        raw_path: path,
        raw_query: request.parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body: &request.body,
        source_ip: peer.ip().to_string(),
        protocol: format!("{:?}", request.parts.version),
    };
    let context = warden_urls::EventContext {
        account_id: state.account.to_string(),
        url_id: config.url_id.clone(),
        domain_name: state.url_base.host(&config.url_id),
        request_id: request_id.to_owned(),
        time_ms,
        iam,
    };
    let event = warden_urls::build_event(&url_request, &context);
    if let Some(c) = &contract {
        if let Err(violations) = c.check_event(&event) {
            return refused(state, &function, &violations.to_string());
        }
    }
    let (parts_tx, parts) = if config.invoke_mode == InvokeMode::ResponseStream {
        let (tx, rx) = tokio::sync::mpsc::channel(crate::reply::STREAM_PARTS_BUFFERED);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let invocation = warden_engine::InvokeRequest {
        function: function.clone(),
        payload: Bytes::from(event),
        tail: false,
        client_context: None,
        request_id: Some(request_id.to_owned()),
        stream: parts_tx,
    };
    let invoked = match parts {
        None => state.engine.invoke(invocation).await,
        Some(parts) => {
            let engine = state.engine.clone();
            let running = tokio::spawn(async move { engine.invoke(invocation).await });
            let stream = UrlStream {
                function: function.name.clone(),
                cors: config.cors.clone(),
                request_headers: url_request.headers.clone(),
                in_flight: _in_flight,
            };
            match stream.serve(parts, running).await {
                Ok(streamed) => return streamed,
                Err(buffered) => buffered,
            }
        }
    };
    let output = match invoked {
        Ok(o) => o,
        Err(e) => return url_reply(&ApiError::from(e)),
    };
    let cors = config.cors.as_ref();
    buffered_reply(&function.name, cors, &url_request.headers, &output)
}

/// The response of a function URL to a function's whole (buffered) answer.
fn buffered_reply(
    function: &FunctionName,
    cors: Option<&warden_urls::Cors>,
    request_headers: &[(String, Vec<u8>)],
    output: &warden_engine::InvokeResponse,
) -> Reply {
    let mut mapped = if output.function_error.is_some() {
        warden_urls::response::function_error("the function returned an error")
    } else {
        warden_urls::map_response(&output.payload)
    };
    let body = Bytes::from(std::mem::take(&mut mapped.body));
    head(
        function,
        cors,
        request_headers,
        mapped,
        ReplyBody::from(body),
    )
}

/// The response with `mapped`'s status and headers (CORS applied) and `body`; what the
/// function's answer did wrong is logged.
fn head(
    function: &FunctionName,
    cors: Option<&warden_urls::Cors>,
    request_headers: &[(String, Vec<u8>)],
    mut mapped: warden_urls::MappedResponse,
    body: ReplyBody,
) -> Reply {
    if let Some(problem) = &mapped.problem {
        tracing::info!(function = %function, %problem, "function URL answered 502");
    }
    if !mapped.dropped_headers.is_empty() {
        tracing::info!(function = %function, dropped = ?mapped.dropped_headers, "function URL response headers dropped");
    }
    if let Some(cors) = cors {
        warden_urls::cors::apply(cors, request_headers, &mut mapped);
    }
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(mapped.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in mapped.header_lines() {
        if let (Ok(k), Ok(v)) = (
            http::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            r.headers_mut().append(k, v);
        }
    }
    r
}

type Running =
    tokio::task::JoinHandle<Result<warden_engine::InvokeResponse, warden_engine::InvokeError>>;

/// A `RESPONSE_STREAM` URL's invocation on its way to the client.
struct UrlStream {
    function: FunctionName,
    cors: Option<warden_urls::Cors>,
    request_headers: Vec<(String, Vec<u8>)>,
    /// The URL's in-flight count, held until the stream ends.
    in_flight: crate::url_limits::InFlight,
}

impl UrlStream {
    /// Answers once the function has begun streaming, with its head (from the prelude of
    /// an HTTP integration stream, else 200 with its content type) and a body fed as the
    /// chunks arrive; a failure after the head breaks the body off. A function that does
    /// not stream gives back its whole answer (`Err`) to be answered as buffered.
    async fn serve(
        self,
        mut parts: tokio::sync::mpsc::Receiver<warden_engine::StreamPart>,
        mut running: Running,
    ) -> Result<Reply, Result<warden_engine::InvokeResponse, warden_engine::InvokeError>> {
        use warden_engine::StreamPart;
        let content_type = match parts.recv().await {
            Some(StreamPart::Started { content_type, .. }) => content_type,
            Some(StreamPart::Chunk(_)) | None => {
                return Err(match (&mut running).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "a function URL invocation's task failed");
                        return Ok(message(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "Internal Server Error",
                        ));
                    }
                });
            }
        };
        // The head: from the prelude, which may take several chunks to arrive.
        let mut first = Bytes::new();
        let mapped = if content_type == warden_urls::HTTP_INTEGRATION_CONTENT_TYPE {
            let mut prelude = Vec::new();
            loop {
                match parts.recv().await {
                    Some(StreamPart::Chunk(chunk)) => prelude.extend_from_slice(&chunk),
                    Some(StreamPart::Started { .. }) => continue,
                    None => break,
                }
                if let Some((end, body_at)) = warden_urls::prelude_end(&prelude) {
                    first = Bytes::from(prelude.split_off(body_at));
                    prelude.truncate(end);
                    break;
                }
                if prelude.len() > warden_urls::MAX_PRELUDE_BYTES {
                    break;
                }
            }
            if prelude.len() > warden_urls::MAX_PRELUDE_BYTES {
                warden_urls::function_error(
                    "the response stream's prelude has no end within its first 64 KiB",
                )
            } else {
                // A stream that ended without the delimiter: all of it is the prelude (a
                // function that wrote only a head).
                warden_urls::map_stream_prelude(&prelude)
            }
        } else {
            warden_urls::stream_head(&content_type)
        };
        if mapped.problem.is_some() {
            // Nothing of the function's answer is sent; it runs to its end unread.
            tokio::spawn(drain(parts, running));
            let cors = self.cors.as_ref();
            let body = Bytes::from(mapped.body.clone());
            return Ok(head(
                &self.function,
                cors,
                &self.request_headers,
                mapped,
                ReplyBody::from(body),
            ));
        }
        let (body_tx, body) = ReplyBody::channel();
        let reply = head(
            &self.function,
            self.cors.as_ref(),
            &self.request_headers,
            mapped,
            body,
        );
        let function = self.function;
        let in_flight = self.in_flight;
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let mut client = Some(body_tx);
            let mut pending = Some(first);
            loop {
                let chunk = match pending.take() {
                    Some(c) => c,
                    None => match parts.recv().await {
                        Some(StreamPart::Chunk(c)) => c,
                        Some(StreamPart::Started { .. }) => continue,
                        None => break,
                    },
                };
                if let Some(tx) = &client {
                    if tx.send(Ok(chunk)).await.is_err() {
                        client = None;
                    }
                }
            }
            let failed = match running.await {
                Ok(Ok(r)) => r.function_error.is_some(),
                Ok(Err(_)) | Err(_) => true,
            };
            if failed {
                tracing::info!(function = %function, "a function URL's response stream ended in an error; the response was broken off");
                if let Some(tx) = client {
                    let _ = tx.send(Err(crate::StreamBroken)).await;
                }
            }
        });
        Ok(reply)
    }
}

/// Reads what is left of a stream nobody will see, so that the function is not blocked.
async fn drain(
    mut parts: tokio::sync::mpsc::Receiver<warden_engine::StreamPart>,
    running: Running,
) {
    while parts.recv().await.is_some() {}
    let _ = running.await;
}

/// The authorization target of an invocation through `config`'s URL.
fn target(state: &ApiState, config: &UrlConfig, function: &FunctionRef, auth: &str) -> Target {
    Target {
        action: "lambda:InvokeFunctionUrl".into(),
        resource: state.function_arn(&function.name, config.qualifier.as_deref()),
        function: Some(function.name.clone()),
        context: vec![(
            "lambda:functionurlauthtype".into(),
            warden_iam::ContextValue::from(auth),
        )],
        ..Target::default()
    }
}

/// A request the function's contract refuses: 400 with the violations, counted and logged
/// without the request.
fn refused(state: &ApiState, function: &FunctionRef, violations: &str) -> Reply {
    state.count_contract_refusal(function.name.as_str());
    tracing::info!(function = %function.name, "function URL request refused by the input contract");
    let mut r = message(
        StatusCode::BAD_REQUEST,
        &format!("The request does not meet the function's input contract: {violations}"),
    );
    r.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static("InvalidRequestContentException"),
    );
    r
}

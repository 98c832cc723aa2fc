//! Warden's control-plane HTTP API: Lambda's rest-json operations under their dated
//! paths, served on one listener, behind a request pipeline.
//!
//! Every request goes through the same steps: route, read the body within the
//! operation's limit, run the [`Pipeline`] guards (authentication and authorization plug
//! in here), then the handler. Errors become AWS-shaped responses in exactly one place,
//! [`error::ApiError::into_response`].
//!
//! Architecture Invariant: handlers never see hyper types other than the request parts
//! and body bytes; the engine never sees HTTP at all.
#![forbid(unsafe_code)]

pub mod access;
mod aliases;
pub mod error;
mod functions;
mod invoke;
mod policy;
pub mod routes;
mod shape;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use warden_engine::Engine;
use warden_store::blobs::BlobStore;
use warden_store::Store;
use warden_types::{AccountId, FunctionName, FunctionRef, Region};

pub use error::ApiError;
pub use routes::Operation;

/// A request as the pipeline and handlers see it.
pub struct ApiRequest {
    pub operation: Operation,
    pub parts: http::request::Parts,
    pub body: Bytes,
    pub peer: SocketAddr,
    /// Who signed the request; `None` only for an invocation a function policy opened to `*`.
    pub principal: Option<warden_types::identity::Principal>,
}

impl ApiRequest {
    /// The last value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        routes::query_params(self.parts.uri.query())
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A check that runs before every operation (authentication, authorization, rate
/// limits). Guards run in order; the first error ends the request.
pub trait Guard: Send + Sync + 'static {
    fn check(&self, request: &ApiRequest) -> Result<(), ApiError>;
}

/// The ordered guards in front of every operation.
#[derive(Default, Clone)]
pub struct Pipeline {
    guards: Vec<Arc<dyn Guard>>,
}

impl Pipeline {
    pub fn with(mut self, guard: Arc<dyn Guard>) -> Self {
        self.guards.push(guard);
        self
    }

    fn check(&self, request: &ApiRequest) -> Result<(), ApiError> {
        self.guards.iter().try_for_each(|g| g.check(request))
    }
}

/// Everything the handlers need.
pub struct ApiState {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<BlobStore>,
    pub account: AccountId,
    pub region: Region,
    pub pipeline: Pipeline,
    /// Authentication and authorization of every request.
    pub access: access::Access,
}

impl ApiState {
    /// Parses a function reference from a path or body, checking account and region.
    pub fn function_ref(&self, s: &str) -> Result<FunctionRef, ApiError> {
        FunctionRef::parse(s, &self.account, &self.region).map_err(ApiError::from)
    }

    pub fn function_arn(&self, name: &FunctionName, qualifier: Option<&str>) -> String {
        warden_types::names::function_arn(&self.region, &self.account, name, qualifier)
    }
}

type Reply = Response<Full<Bytes>>;

/// Serves the API on `listener` until `shutdown` resolves, then waits for in-flight
/// requests to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Latency of small request/response exchanges depends on it (DESIGN-NOTES §3).
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let service = service_fn(move |req| handle(Arc::clone(&state), peer, req));
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            let _ = conn.await;
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await;
}

async fn handle(
    state: Arc<ApiState>,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Result<Reply, Infallible> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = match process(&state, peer, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .entry("x-amzn-requestid")
            .or_insert(v);
    }
    Ok(response)
}

/// Largest body each operation accepts before its handler runs.
fn body_limit(op: &Operation) -> usize {
    match op {
        Operation::Invoke(_) => warden_types::limits::SYNC_PAYLOAD_BYTES,
        Operation::InvokeAsync(_) => warden_types::limits::ASYNC_PAYLOAD_BYTES,
        Operation::CreateFunction | Operation::UpdateFunctionCode(_) => {
            warden_types::limits::API_BODY_BYTES
        }
        _ => 1024 * 1024,
    }
}

async fn process(
    state: &ApiState,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Result<Reply, ApiError> {
    let operation = routes::route(req.method(), req.uri().path()).map_err(|e| match e {
        routes::RouteError::Unknown => ApiError::unknown_operation(),
        routes::RouteError::BadEncoding => {
            ApiError::invalid("the request path is not valid UTF-8 after percent-decoding")
        }
    })?;
    let limit = body_limit(&operation);
    let too_large = || ApiError::too_large(limit, operation.name());
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Far beyond any limit: answer at once rather than read it.
    if declared.is_some_and(|n| n > warden_types::limits::API_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let (parts, mut body) = req.into_parts();
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_content(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > limit {
                drain(body, collected.len() + data.len()).await;
                return Err(too_large());
            }
            collected.extend_from_slice(&data);
        }
    }
    let body = collected.freeze();
    let mut request = ApiRequest {
        operation,
        parts,
        body,
        peer,
        principal: None,
    };
    let authenticated = access::authenticate(state, &request)?;
    request.principal = authenticated.map(|a| a.principal);
    // Unsigned callers may only invoke (where a function policy allows `*` to); every
    // other operation needs a signature, whatever a policy says.
    if request.principal.is_none() && !anonymous_may_call(&request.operation) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    }
    access::authorize(state, &request, request.principal.as_ref()).await?;
    state.pipeline.check(&request)?;
    dispatch(state, request).await
}

/// The operations an unsigned request may reach: invoking, synchronously or not. They are
/// then allowed only by a function policy naming `*` for `lambda:InvokeFunction`.
fn anonymous_may_call(operation: &Operation) -> bool {
    matches!(operation, Operation::Invoke(_) | Operation::InvokeAsync(_))
}

/// Reads and discards the rest of an oversized body (within bounds), so that the client,
/// still sending, receives the 413 instead of a reset connection.
async fn drain(mut body: Incoming, mut seen: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen <= warden_types::limits::API_BODY_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map(|d| d.len()).unwrap_or(0),
            _ => return,
        }
    }
}

async fn dispatch(state: &ApiState, request: ApiRequest) -> Result<Reply, ApiError> {
    use Operation as O;
    match request.operation.clone() {
        O::Invoke(f) => invoke::invoke(state, &request, &f).await,
        O::InvokeAsync(f) => invoke::invoke_async(state, &request, &f).await,
        O::CreateFunction => functions::create(state, &request).await,
        O::ListFunctions => functions::list(state, &request).await,
        O::GetFunction(f) => functions::get(state, &request, &f, true).await,
        O::GetFunctionConfiguration(f) => functions::get(state, &request, &f, false).await,
        O::DeleteFunction(f) => functions::delete(state, &request, &f).await,
        O::UpdateFunctionCode(f) => functions::update_code(state, &request, &f).await,
        O::UpdateFunctionConfiguration(f) => {
            functions::update_configuration(state, &request, &f).await
        }
        O::PublishVersion(f) => functions::publish(state, &request, &f).await,
        O::ListVersionsByFunction(f) => functions::list_versions(state, &request, &f).await,
        O::PutFunctionConcurrency(f) => functions::put_concurrency(state, &request, &f).await,
        O::GetFunctionConcurrency(f) => functions::get_concurrency(state, &f).await,
        O::DeleteFunctionConcurrency(f) => functions::delete_concurrency(state, &f).await,
        O::GetAccountSettings => functions::account_settings(state).await,
        O::CreateAlias(f) => aliases::create(state, &request, &f).await,
        O::ListAliases(f) => aliases::list(state, &request, &f).await,
        O::GetAlias(f, a) => aliases::get(state, &f, &a).await,
        O::UpdateAlias(f, a) => aliases::update(state, &request, &f, &a).await,
        O::DeleteAlias(f, a) => aliases::delete(state, &f, &a).await,
        O::ReadLogs(f) => functions::read_logs(state, &request, &f).await,
        O::AddPermission(f) => policy::add_permission(state, &request, &f).await,
        O::RemovePermission(f, sid) => policy::remove_permission(state, &request, &f, &sid).await,
        O::GetPolicy(f) => policy::get_policy(state, &request, &f).await,
        O::Query => Ok(query(state, &request)),
    }
}

/// IAM and STS: the identity service answers in XML.
fn query(state: &ApiState, request: &ApiRequest) -> Reply {
    let params = access::query_params(request);
    let response = match &request.principal {
        Some(p) => state.access.identity.handle_query(&params, p),
        None => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )
            .into_xml_response("-")
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(response.body)));
    *r.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml"),
    );
    r
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An empty response.
pub(crate) fn empty_response(status: StatusCode) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Parses a JSON body into `T`, mapping failures to `InvalidRequestContentException`.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_content(format!("Could not parse request body into json: {e}")))
}

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

//! Warden's control-plane HTTP API: Lambda's rest-json operations under their dated
//! paths, served on one listener, behind a request pipeline.
//!
//! Every request goes through the same steps: route; authenticate what the headers can
//! prove (a request without a signature is authorized instead), before any of the body is
//! read; read the body within the operation's limit, a shared memory budget and deadlines
//! (`body`); check the signature over the body's hash; authorize; run the [`Pipeline`]
//! guards; then the handler. Errors become AWS-shaped responses in exactly one place,
//! [`error::ApiError::render`], in the protocol of the service the request is for
//! ([`routes::Service`], decided by `process` as soon as it is known). The listener
//! (`server`) bounds connections and gives every connection state a deadline.
//!
//! Architecture Invariant: handlers never see hyper types other than the request parts
//! and body bytes; the engine never sees HTTP at all.
#![forbid(unsafe_code)]

pub mod access;
mod aliases;
mod body;
mod caller;
pub mod error;
mod functions;
mod invoke;
mod policy;
pub mod routes;
mod server;
mod shape;
mod tags;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use sha2::Digest;
use warden_control::Control;
use warden_engine::Engine;
use warden_types::{AccountId, FunctionName, FunctionRef, Region};

pub use error::ApiError;
pub use routes::Operation;
pub use server::{
    serve, ServeOptions, DEFAULT_BODY_MEMORY_BYTES, DEFAULT_HEADER_TIMEOUT,
    MAX_DEFAULT_CONNECTIONS, MIN_BODY_MEMORY_BYTES,
};

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
    /// Invocations.
    pub engine: Engine,
    /// Every change to a function, and the reads the handlers render.
    pub control: Control,
    pub account: AccountId,
    pub region: Region,
    pub pipeline: Pipeline,
    /// Authentication and authorization of every request.
    pub access: Arc<access::Access>,
}

impl ApiState {
    /// The API over `engine` and `control`, with every cache derived from the store
    /// subscribed to the control plane's change events: the engine's registry and warm
    /// instances, its concurrency table, and the access cache of resource policies. No
    /// handler invalidates anything by hand. Called once, by the server at boot.
    pub fn new(
        engine: Engine,
        control: Control,
        pipeline: Pipeline,
        access: access::Access,
    ) -> Self {
        let access = Arc::new(access);
        control.subscribe(Arc::new(engine.clone()));
        control.subscribe(
            Arc::clone(engine.concurrency()) as Arc<dyn warden_types::change::ChangeObserver>
        );
        control.subscribe(Arc::clone(&access) as Arc<dyn warden_types::change::ChangeObserver>);
        Self {
            account: control.config().account.clone(),
            region: control.config().region.clone(),
            engine,
            control,
            pipeline,
            access,
        }
    }

    /// Parses a function reference from a path or body, checking account and region.
    pub fn function_ref(&self, s: &str) -> Result<FunctionRef, ApiError> {
        FunctionRef::parse(s, &self.account, &self.region).map_err(ApiError::from)
    }

    pub fn function_arn(&self, name: &FunctionName, qualifier: Option<&str>) -> String {
        warden_types::names::function_arn(&self.region, &self.account, name, qualifier)
    }
}

type Reply = Response<Full<Bytes>>;

async fn handle(
    shared: &server::Shared,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Result<Reply, Infallible> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut service = routes::Service::Lambda;
    let mut response = match process(&shared.state, &shared.budget, peer, req, &mut service).await {
        Ok(r) => r,
        Err(e) => e.render(service.protocol(), &request_id),
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

/// Serves one request. `service` is set to the service the request is for as soon as that
/// is known (from the credential scope before routing, from the `Action` of a query
/// request once its body is read), so that an error is answered in that service's protocol.
async fn process(
    state: &ApiState,
    budget: &body::BodyBudget,
    peer: SocketAddr,
    req: http::Request<Incoming>,
    service: &mut routes::Service,
) -> Result<Reply, ApiError> {
    // A request signed for a service Warden does not serve is answered at once, naming
    // the service, before its body is read or its signature checked.
    let claimed = warden_auth::claimed_service(req.headers(), req.uri().query());
    if let Some(name) = claimed.as_deref() {
        if !routes::SERVED.contains(&name) {
            *service = routes::Service::unserved(name, req.headers());
            return Err(ApiError::unknown_service(name));
        }
    }
    let operation = routes::route(req.method(), req.uri().path()).map_err(|e| match e {
        routes::RouteError::Unknown => ApiError::unknown_operation(),
        routes::RouteError::BadEncoding => {
            ApiError::invalid("the request path is not valid UTF-8 after percent-decoding")
        }
    })?;
    if operation == Operation::Query {
        // Until the body names the action, the scope says which of the two it is.
        *service = match claimed.as_deref() {
            Some("sts") => routes::Service::Sts,
            _ => routes::Service::Iam,
        };
    }
    let limit = body_limit(&operation);
    let name = operation.name();
    let too_large = || ApiError::too_large(limit, name);
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Far beyond any limit: answer at once rather than read it.
    if declared.is_some_and(|n| n > warden_types::limits::API_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let expects_continue = parts
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    // Nothing is read (or buffered) before the headers say who is asking: an unknown key, a
    // stale or malformed signature is refused now; a request without a signature must be
    // allowed anonymously (a public resource policy) before its body is read.
    let mut request = ApiRequest {
        operation,
        parts,
        body: Bytes::new(),
        peer,
        principal: None,
    };
    let pending = match access::authenticate_headers(state, &request) {
        Ok(p) => p,
        Err(e) => {
            body::discard(expects_continue, body);
            return Err(e);
        }
    };
    // An unsigned request may only invoke, through a function policy naming `*`: anything
    // else is refused before its body is read. (A query request's action, and so whether
    // IAM or STS answers, is in its body: it is read within the unsigned bounds first.)
    if pending.is_none() && request.operation != Operation::Query {
        let refused = if anonymous_may_call(&request.operation) {
            access::authorize(state, &request, None).await.err()
        } else {
            Some(ApiError::missing_authentication())
        };
        if let Some(e) = refused {
            body::discard(expects_continue, body);
            return Err(e);
        }
    }
    let plan = body::Plan {
        limit,
        declared,
        signed: pending.is_some(),
    };
    let received = body::read(body, plan, budget, too_large).await?;
    // Held until the request is answered: the body's bytes live that long.
    let _reservation = received.reservation;
    request.body = received.bytes;
    // The body names a query request's action, hence whether it is IAM's or STS's.
    *service = access::request_service(&request);
    let authenticated = match pending {
        Some(pending) => {
            // Signed bodies are hashed as they arrive (`Plan::signed`).
            let sha256 = received
                .sha256
                .unwrap_or_else(|| sha2::Sha256::digest(&request.body).into());
            Some(access::finish_authentication(
                state, &request, pending, &sha256,
            )?)
        }
        None => None,
    };
    request.principal = authenticated.map(|a| a.principal);
    // Unsigned callers may only invoke (where a function policy allows `*` to); every
    // other operation needs a signature, whatever a policy says.
    if request.principal.is_none() && !anonymous_may_call(&request.operation) {
        return Err(ApiError::missing_authentication());
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
        O::DeleteFunctionConcurrency(f) => functions::delete_concurrency(state, &request, &f).await,
        O::GetAccountSettings => functions::account_settings(state).await,
        O::CreateAlias(f) => aliases::create(state, &request, &f).await,
        O::ListAliases(f) => aliases::list(state, &request, &f).await,
        O::GetAlias(f, a) => aliases::get(state, &f, &a).await,
        O::UpdateAlias(f, a) => aliases::update(state, &request, &f, &a).await,
        O::DeleteAlias(f, a) => aliases::delete(state, &request, &f, &a).await,
        O::ReadLogs(f) => functions::read_logs(state, &request, &f).await,
        O::AddPermission(f) => policy::add_permission(state, &request, &f).await,
        O::RemovePermission(f, sid) => policy::remove_permission(state, &request, &f, &sid).await,
        O::GetPolicy(f) => policy::get_policy(state, &request, &f).await,
        O::TagResource(arn) => tags::tag(state, &request, &arn).await,
        O::UntagResource(arn) => tags::untag(state, &request, &arn).await,
        O::ListTags(arn) => tags::list(state, &arn).await,
        O::Query => query(state, &request),
    }
}

/// IAM and STS: the identity service answers in XML; its errors are rendered by `handle`
/// like every other error.
fn query(state: &ApiState, request: &ApiRequest) -> Result<Reply, ApiError> {
    let principal = request
        .principal
        .as_ref()
        .ok_or_else(ApiError::missing_authentication)?;
    let params = access::query_params(request);
    let body = state.access.identity.handle_query(&params, principal)?;
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(warden_identity::CONTENT_TYPE),
    );
    Ok(r)
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

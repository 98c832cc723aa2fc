//! The Lambda Runtime API (`/2018-06-01/runtime/...`) served to one function instance.
//!
//! Each instance gets its own listener, so the API never needs to know which instance is
//! calling: the connection says it. The engine hands invocations to [`InstanceApi::submit`];
//! the instance's long-poll on `/invocation/next` receives them; its `/response` or
//! `/error` post resolves the invocation's [`Outcome`].
//!
//! Wire details follow what the official runtime clients require: every
//! `/next` response carries `Content-Type`, `Lambda-Runtime-Aws-Request-Id`,
//! `Lambda-Runtime-Deadline-Ms` (epoch ms), `Lambda-Runtime-Invoked-Function-Arn` and
//! `Lambda-Runtime-Trace-Id`.
//!
//! Architecture Invariant: unauthenticated by design, as in Lambda; it must only ever be
//! reachable by its own instance.
#![forbid(unsafe_code)]

mod routes;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};

pub use routes::{parse_route, Route};

/// Largest response or error body an instance may post (Lambda's 6 MB).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Largest init error body accepted.
const MAX_ERROR_BYTES: usize = 1024 * 1024;

/// One invocation on its way to an instance.
#[derive(Debug)]
pub struct Invocation {
    /// The request id (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// The event.
    pub payload: Bytes,
    /// Epoch milliseconds of the real deadline.
    pub deadline_ms: i64,
    /// The ARN the caller invoked (`Lambda-Runtime-Invoked-Function-Arn`).
    pub function_arn: String,
    /// The X-Ray trace header (`Lambda-Runtime-Trace-Id`).
    pub trace_id: String,
    /// Client context as JSON (already decoded from the caller's base64).
    pub client_context: Option<String>,
    /// The Cognito identity, JSON, when there is one.
    pub cognito_identity: Option<String>,
    /// Where the instance's answer goes.
    pub reply: oneshot::Sender<Outcome>,
}

/// How an invocation ended, as reported by the instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `/invocation/{id}/response`: the function's result.
    Response(Bytes),
    /// `/invocation/{id}/error`: the body is the runtime's error JSON.
    FunctionError {
        /// The `Lambda-Runtime-Function-Error-Type` header, if sent.
        error_type: Option<String>,
        /// The error JSON the runtime posted.
        body: Bytes,
    },
    /// The response exceeded [`MAX_RESPONSE_BYTES`].
    ResponseTooLarge,
}

struct InFlight {
    request_id: String,
    reply: oneshot::Sender<Outcome>,
}

/// The state shared between the engine and one instance's Runtime API server.
pub struct InstanceApi {
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    current: Mutex<Option<InFlight>>,
    first_next: OnceLock<Instant>,
    init: tokio::sync::watch::Sender<InitState>,
}

/// Where an instance is in its init phase.
#[derive(Debug, Clone, PartialEq)]
pub enum InitState {
    /// Started, has not asked for work yet.
    Initializing,
    /// Asked for its first invocation: init succeeded.
    Ready,
    /// Posted `/runtime/init/error`.
    Failed {
        /// The `Lambda-Runtime-Function-Error-Type` header, if sent.
        error_type: Option<String>,
        /// The error JSON the runtime posted.
        body: Bytes,
    },
}

/// The engine's end: submit invocations, learn when init finished.
pub struct InstanceChannel {
    tx: mpsc::Sender<Invocation>,
    api: Arc<InstanceApi>,
    server: tokio::task::JoinHandle<()>,
}

impl InstanceChannel {
    /// Starts serving the Runtime API on `listener` (already bound and listening).
    pub fn serve(listener: std::net::TcpListener) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        // Capacity 1: the engine never queues more than one invocation per instance.
        let (tx, rx) = mpsc::channel(1);
        let api = Arc::new(InstanceApi {
            queue: tokio::sync::Mutex::new(rx),
            current: Mutex::new(None),
            first_next: OnceLock::new(),
            init: tokio::sync::watch::channel(InitState::Initializing).0,
        });
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&api)));
        Ok(Self { tx, api, server })
    }

    /// Hands an invocation to the instance. It is delivered on the instance's next (or
    /// already waiting) `/invocation/next`. Returns false, dropping the invocation (so its
    /// caller sees the reply channel close), if the instance already holds one or is gone.
    pub fn submit(&self, invocation: Invocation) -> bool {
        self.tx.try_send(invocation).is_ok()
    }

    /// When the instance first asked for work: the end of its init phase.
    pub fn initialized_at(&self) -> Option<Instant> {
        self.api.first_next.get().copied()
    }

    /// Resolves when init ends: `Ok` once the instance asks for work, `Err` with the
    /// runtime's error when it posts an init error. Pending forever otherwise: callers race
    /// it against the process exit and a deadline.
    pub async fn initialized(&self) -> Result<(), (Option<String>, Bytes)> {
        let mut rx = self.api.init.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                InitState::Ready => return Ok(()),
                InitState::Failed { error_type, body } => {
                    return Err((error_type.clone(), body.clone()))
                }
                InitState::Initializing => {}
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The init phase as it stands now, without waiting.
    pub fn init_state(&self) -> InitState {
        self.api.init.borrow().clone()
    }

    /// Takes back an invocation that was submitted but not yet delivered, with the
    /// in-flight one, so that the engine can fail them when the instance dies.
    pub fn abandon(&self) -> Vec<oneshot::Sender<Outcome>> {
        let mut out = Vec::new();
        if let Some(f) = lock(&self.api.current).take() {
            out.push(f.reply);
        }
        if let Ok(mut q) = self.api.queue.try_lock() {
            while let Ok(inv) = q.try_recv() {
                out.push(inv.reply);
            }
        }
        out
    }
}

impl Drop for InstanceChannel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_loop(listener: tokio::net::TcpListener, api: Arc<InstanceApi>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "runtime api accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let api = Arc::clone(&api);
        // Connections live in the JoinSet so that aborting this loop closes them too.
        connections.spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&api), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

type Reply = Response<Full<Bytes>>;

fn json(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Reply {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type }).to_string();
    json(status, body)
}

fn accepted() -> Reply {
    json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

async fn handle(api: Arc<InstanceApi>, req: http::Request<Incoming>) -> Result<Reply, Infallible> {
    let route = parse_route(req.method(), req.uri().path());
    Ok(match route {
        Route::Next => next(&api).await,
        Route::Response(id) => {
            let body = read_body(req, MAX_RESPONSE_BYTES).await;
            finish(&api, &id, |body| body.map(Outcome::Response), body)
        }
        Route::Error(id) => {
            let error_type = header_string(&req, "lambda-runtime-function-error-type");
            let body = read_body(req, MAX_RESPONSE_BYTES).await;
            finish(
                &api,
                &id,
                |body| body.map(|body| Outcome::FunctionError { error_type, body }),
                body,
            )
        }
        Route::InitError => {
            let error_type = header_string(&req, "lambda-runtime-function-error-type");
            let body = read_body(req, MAX_ERROR_BYTES).await.unwrap_or_default();
            init_error(&api, error_type, body)
        }
        Route::MethodNotAllowed => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "method not allowed",
        ),
        Route::NotFound => error(StatusCode::NOT_FOUND, "NotFound", "not found"),
    })
}

fn header_string(req: &http::Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads a body up to `limit`; `None` when it is larger.
async fn read_body(req: http::Request<Incoming>, limit: usize) -> Option<Bytes> {
    Limited::new(req.into_body(), limit)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

async fn next(api: &InstanceApi) -> Reply {
    if api.first_next.set(Instant::now()).is_ok() {
        api.init.send_if_modified(|s| {
            if *s == InitState::Initializing {
                *s = InitState::Ready;
                true
            } else {
                false
            }
        });
    }
    if let Some(stale) = lock(&api.current).take() {
        // The runtime asked for more work without answering: that invocation failed.
        let body = serde_json::json!({
            "errorMessage": "the runtime asked for the next invocation without responding to this one",
            "errorType": "Runtime.InvalidStateTransition",
        });
        let _ = stale.reply.send(Outcome::FunctionError {
            error_type: None,
            body: body.to_string().into(),
        });
    }
    let invocation = {
        let mut queue = api.queue.lock().await;
        queue.recv().await
    };
    let Some(inv) = invocation else {
        return error(
            StatusCode::GONE,
            "InstanceShuttingDown",
            "the instance is shutting down",
        );
    };
    let mut r = Response::new(Full::new(inv.payload));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", &inv.request_id);
    put("lambda-runtime-deadline-ms", &inv.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", &inv.function_arn);
    put("lambda-runtime-trace-id", &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        put("lambda-runtime-client-context", cc);
    }
    if let Some(ci) = &inv.cognito_identity {
        put("lambda-runtime-cognito-identity", ci);
    }
    *lock(&api.current) = Some(InFlight {
        request_id: inv.request_id,
        reply: inv.reply,
    });
    r
}

fn finish(
    api: &InstanceApi,
    id: &str,
    outcome: impl FnOnce(Option<Bytes>) -> Option<Outcome>,
    body: Option<Bytes>,
) -> Reply {
    let mut current = lock(&api.current);
    match current.as_ref() {
        Some(f) if f.request_id == id => {}
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                "request id does not match the current invocation",
            )
        }
        None => {
            return error(
                StatusCode::FORBIDDEN,
                "InvalidStateTransition",
                "no invocation is in progress",
            )
        }
    }
    let too_large = body.is_none();
    let Some(in_flight) = current.take() else {
        return error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "no invocation is in progress",
        );
    };
    drop(current);
    let _ = in_flight
        .reply
        .send(outcome(body).unwrap_or(Outcome::ResponseTooLarge));
    if too_large {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "response payload exceeds 6291456 bytes",
        )
    } else {
        accepted()
    }
}

fn init_error(api: &InstanceApi, error_type: Option<String>, body: Bytes) -> Reply {
    if api.first_next.get().is_some() {
        return error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "init error after initialization",
        );
    }
    api.init
        .send_replace(InitState::Failed { error_type, body });
    accepted()
}

/// Builds an X-Ray style trace id: `Root=1-<epoch hex>-<24 hex>;Parent=<16 hex>;Sampled=0`.
pub fn trace_id(epoch_secs: u64, random: u128) -> String {
    format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        epoch_secs as u32,
        random & ((1u128 << 96) - 1),
        (random >> 96) as u64 ^ (random as u64)
    )
}

/// Method check used by the route parser.
fn is(method: &Method, expected: &Method) -> bool {
    method == expected
}

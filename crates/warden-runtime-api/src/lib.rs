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
/// Largest streamed response (Lambda's 200 MB).
pub const MAX_STREAMED_BYTES: u64 = 200 * 1024 * 1024;
/// How much of a streamed response goes as fast as the function writes it; the rest is
/// read at [`STREAM_BYTES_PER_SECOND`], as Lambda caps it.
pub const STREAM_BURST_BYTES: u64 = 6 * 1024 * 1024;
/// The bandwidth of a streamed response past its first [`STREAM_BURST_BYTES`].
pub const STREAM_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;
/// Chunks of a streamed response held between the instance and the caller: beyond it the
/// instance's writes wait, so a slow caller slows the function instead of filling memory.
const STREAM_CHUNKS_BUFFERED: usize = 8;
/// The largest chunk handed on at once: a bigger frame is cut into pieces of this size.
const STREAM_CHUNK_BYTES: usize = 256 * 1024;
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
#[derive(Debug)]
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
    /// `/invocation/{id}/response` in the streaming response mode
    /// (`Lambda-Runtime-Function-Response-Mode: streaming`): the response arrives as the
    /// instance writes it.
    Streaming(ResponseStream),
}

/// A response the instance is streaming: its chunks as they arrive, then how it ended.
#[derive(Debug)]
pub struct ResponseStream {
    /// The `Content-Type` the runtime declared (`application/octet-stream` if none).
    pub content_type: String,
    /// The chunks, in order; closed once the instance's body ended.
    pub chunks: mpsc::Receiver<Bytes>,
    /// How the stream ended; sent once `chunks` is closed.
    pub end: oneshot::Receiver<StreamEnd>,
}

/// How a streamed response ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEnd {
    /// The body ended without an error trailer.
    Complete,
    /// The runtime reported an error mid-stream in the trailers
    /// `Lambda-Runtime-Function-Error-Type` and `Lambda-Runtime-Function-Error-Body`
    /// (base64 of the error JSON).
    Error {
        /// The error type trailer, if sent.
        error_type: Option<String>,
        /// The decoded error body; a synthesised error JSON if the trailer was missing or
        /// not base64.
        body: Bytes,
    },
    /// The body went past [`MAX_STREAMED_BYTES`]; the rest was refused.
    TooLarge,
    /// The instance's connection broke before the body ended.
    Interrupted,
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
        Route::Response(id) if is_streaming(&req) => stream(&api, &id, req).await,
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

/// Why a `/response` or `/error` post names no invocation in flight.
enum NotInFlight {
    /// Another invocation is in flight.
    OtherId,
    /// None is.
    Nothing,
}

impl NotInFlight {
    fn reply(self) -> Reply {
        match self {
            Self::OtherId => error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                "request id does not match the current invocation",
            ),
            Self::Nothing => error(
                StatusCode::FORBIDDEN,
                "InvalidStateTransition",
                "no invocation is in progress",
            ),
        }
    }
}

/// Takes the in-flight invocation `id` names.
fn take_current(api: &InstanceApi, id: &str) -> Result<InFlight, NotInFlight> {
    let mut current = lock(&api.current);
    match current.take() {
        Some(f) if f.request_id == id => Ok(f),
        Some(other) => {
            *current = Some(other);
            Err(NotInFlight::OtherId)
        }
        None => Err(NotInFlight::Nothing),
    }
}

fn finish(
    api: &InstanceApi,
    id: &str,
    outcome: impl FnOnce(Option<Bytes>) -> Option<Outcome>,
    body: Option<Bytes>,
) -> Reply {
    let in_flight = match take_current(api, id) {
        Ok(f) => f,
        Err(refusal) => return refusal.reply(),
    };
    let too_large = body.is_none();
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

/// Whether a `/response` post is in the streaming response mode.
fn is_streaming(req: &http::Request<Incoming>) -> bool {
    req.headers()
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"))
}

/// A `/response` in the streaming mode: the invocation's outcome is a [`ResponseStream`]
/// handed over at once; the body's frames follow as they arrive, within Lambda's size and
/// bandwidth limits, and the trailers say how it ended. The runtime is answered when the
/// body has ended.
async fn stream(api: &InstanceApi, id: &str, req: http::Request<Incoming>) -> Reply {
    let in_flight = match take_current(api, id) {
        Ok(f) => f,
        Err(refusal) => return refusal.reply(),
    };
    let content_type = header_string(&req, "content-type")
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let (chunks_tx, chunks) = mpsc::channel(STREAM_CHUNKS_BUFFERED);
    let (end_tx, end) = oneshot::channel();
    let _ = in_flight.reply.send(Outcome::Streaming(ResponseStream {
        content_type,
        chunks,
        end,
    }));
    let mut body = req.into_body();
    let mut sent: u64 = 0;
    let mut pace = Pace::new();
    let ended = loop {
        let Some(frame) = body.frame().await else {
            break StreamEnd::Complete;
        };
        let frame = match frame {
            Ok(f) => f,
            Err(_) => break StreamEnd::Interrupted,
        };
        let frame = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => break trailer_end(&trailers),
                Err(_) => continue,
            },
        };
        sent += frame.len() as u64;
        if sent > MAX_STREAMED_BYTES {
            break StreamEnd::TooLarge;
        }
        let mut rest = frame;
        while !rest.is_empty() {
            let piece = rest.split_to(rest.len().min(STREAM_CHUNK_BYTES));
            pace.wait(piece.len() as u64).await;
            // A caller that went away does not stop the function: its output is dropped.
            let _ = chunks_tx.send(piece).await;
        }
    };
    drop(chunks_tx);
    let reply = match &ended {
        StreamEnd::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "streamed response exceeds 209715200 bytes",
        ),
        _ => accepted(),
    };
    let _ = end_tx.send(ended);
    reply
}

/// How a stream's trailers end it: an error when `Lambda-Runtime-Function-Error-Type` or
/// `-Body` is there.
fn trailer_end(trailers: &http::HeaderMap) -> StreamEnd {
    let error_type = trailers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let raw_body = trailers.get("lambda-runtime-function-error-body");
    if error_type.is_none() && raw_body.is_none() {
        return StreamEnd::Complete;
    }
    use base64::Engine as _;
    let body = raw_body
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .ok()
        })
        .map(Bytes::from)
        .unwrap_or_else(|| {
            let kind = error_type.as_deref().unwrap_or("Runtime.StreamError");
            serde_json::json!({ "errorType": kind, "errorMessage": "the function failed while streaming its response" })
                .to_string()
                .into()
        });
    StreamEnd::Error { error_type, body }
}

/// Lambda's streaming bandwidth: the first [`STREAM_BURST_BYTES`] as fast as they come,
/// then [`STREAM_BYTES_PER_SECOND`].
struct Pace {
    started: Option<tokio::time::Instant>,
    counted: u64,
    total: u64,
}

impl Pace {
    fn new() -> Self {
        Self {
            started: None,
            counted: 0,
            total: 0,
        }
    }

    async fn wait(&mut self, bytes: u64) {
        self.total += bytes;
        if self.total <= STREAM_BURST_BYTES {
            return;
        }
        let started = *self.started.get_or_insert_with(tokio::time::Instant::now);
        self.counted += bytes.min(self.total - STREAM_BURST_BYTES);
        let due = started
            + std::time::Duration::from_secs_f64(
                self.counted as f64 / STREAM_BYTES_PER_SECOND as f64,
            );
        tokio::time::sleep_until(due).await;
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
///
/// One per invocation, so written digit by digit: `format!` with padded hex took 1,750
/// instructions, this 1,109.
pub fn trace_id(epoch_secs: u64, random: u128) -> String {
    /// Appends the low `digits` nibbles of `value` as lowercase hex, most significant first.
    fn push_hex(out: &mut String, value: u128, digits: u32) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for i in (0..digits).rev() {
            out.push(char::from(HEX[((value >> (4 * i)) & 0xf) as usize]));
        }
    }
    let mut out = String::with_capacity(72);
    out.push_str("Root=1-");
    push_hex(&mut out, u128::from(epoch_secs as u32), 8);
    out.push('-');
    push_hex(&mut out, random, 24);
    out.push_str(";Parent=");
    push_hex(
        &mut out,
        u128::from((random >> 96) as u64 ^ (random as u64)),
        16,
    );
    out.push_str(";Sampled=0");
    out
}

/// Method check used by the route parser.
fn is(method: &Method, expected: &Method) -> bool {
    method == expected
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    proptest::proptest! {
        #[test]
        fn the_trace_id_is_the_padded_hex_format(epoch: u64, random: u128) {
            let expected = format!(
                "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
                epoch as u32,
                random & ((1u128 << 96) - 1),
                (random >> 96) as u64 ^ (random as u64)
            );
            proptest::prop_assert_eq!(trace_id(epoch, random), expected);
        }
    }

    /// A runtime's end of the API: plain HTTP/1.1 over one socket, so the exact bytes of a
    /// chunked body and its trailers are what the test says.
    struct Runtime(std::net::TcpStream);

    impl Runtime {
        fn connect(addr: std::net::SocketAddr) -> Self {
            let s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .expect("timeout");
            Self(s)
        }

        fn send(&mut self, bytes: &[u8]) {
            self.0.write_all(bytes).expect("write");
        }

        /// Reads one response head and its `Content-Length` body; returns the status line
        /// and the body.
        fn response(&mut self) -> (String, String) {
            let mut buf = Vec::new();
            let mut byte = [0u8; 1];
            while !buf.ends_with(b"\r\n\r\n") {
                self.0.read_exact(&mut byte).expect("read head");
                buf.push(byte[0]);
            }
            let head = String::from_utf8(buf).expect("utf-8");
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            self.0.read_exact(&mut body).expect("read body");
            (
                head.lines().next().unwrap_or_default().to_owned(),
                String::from_utf8(body).expect("utf-8"),
            )
        }
    }

    /// Serves an instance's API, submits one invocation and lets a runtime take it.
    async fn invocation_taken() -> (InstanceChannel, Runtime, oneshot::Receiver<Outcome>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let channel = InstanceChannel::serve(listener).expect("serve");
        let (reply, outcome) = oneshot::channel();
        assert!(channel.submit(Invocation {
            request_id: "req-1".into(),
            payload: Bytes::from_static(b"{}"),
            deadline_ms: 0,
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            trace_id: "Root=1-0-0".into(),
            client_context: None,
            cognito_identity: None,
            reply,
        }));
        let runtime = tokio::task::spawn_blocking(move || {
            let mut r = Runtime::connect(addr);
            r.send(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n");
            let (status, body) = r.response();
            assert!(status.contains("200"), "{status}");
            assert_eq!(body, "{}");
            r
        })
        .await
        .expect("runtime");
        (channel, runtime, outcome)
    }

    const STREAM_HEAD: &[u8] = b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\n\
        host: x\r\ncontent-type: text/plain\r\n\
        lambda-runtime-function-response-mode: streaming\r\n\
        transfer-encoding: chunked\r\n\
        trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n";

    #[tokio::test]
    async fn a_streamed_response_arrives_chunk_by_chunk_and_ends_complete() {
        let (_channel, mut runtime, outcome) = invocation_taken().await;
        let mut runtime = tokio::task::spawn_blocking(move || {
            runtime.send(STREAM_HEAD);
            runtime.send(b"5\r\nfirst\r\n");
            runtime
        })
        .await
        .expect("runtime");
        let Ok(Outcome::Streaming(mut stream)) = outcome.await else {
            panic!("a streaming outcome");
        };
        assert_eq!(stream.content_type, "text/plain");
        // The first chunk is here before the body has ended.
        assert_eq!(stream.chunks.recv().await.as_deref(), Some(&b"first"[..]));
        let answer = tokio::task::spawn_blocking(move || {
            runtime.send(b"6\r\nsecond\r\n0\r\n\r\n");
            runtime.response()
        });
        assert_eq!(stream.chunks.recv().await.as_deref(), Some(&b"second"[..]));
        assert_eq!(stream.chunks.recv().await, None);
        assert_eq!(stream.end.await, Ok(StreamEnd::Complete));
        let (status, _) = answer.await.expect("answer");
        assert!(status.contains("202"), "{status}");
    }

    #[tokio::test]
    async fn an_error_trailer_ends_the_stream_with_the_function_error() {
        let (_channel, mut runtime, outcome) = invocation_taken().await;
        let answer = tokio::task::spawn_blocking(move || {
            runtime.send(STREAM_HEAD);
            // base64 of {"errorType":"Error","errorMessage":"boom"}
            runtime.send(
                b"7\r\npartial\r\n0\r\nLambda-Runtime-Function-Error-Type: Error\r\n\
                  Lambda-Runtime-Function-Error-Body: eyJlcnJvclR5cGUiOiJFcnJvciIsImVycm9yTWVzc2FnZSI6ImJvb20ifQ==\r\n\r\n",
            );
            runtime.response()
        });
        let Ok(Outcome::Streaming(mut stream)) = outcome.await else {
            panic!("a streaming outcome");
        };
        assert_eq!(stream.chunks.recv().await.as_deref(), Some(&b"partial"[..]));
        assert_eq!(stream.chunks.recv().await, None);
        assert_eq!(
            stream.end.await,
            Ok(StreamEnd::Error {
                error_type: Some("Error".into()),
                body: Bytes::from_static(br#"{"errorType":"Error","errorMessage":"boom"}"#),
            })
        );
        let (status, _) = answer.await.expect("answer");
        assert!(status.contains("202"), "{status}");
    }

    #[tokio::test]
    async fn a_stream_for_another_request_id_is_refused_and_changes_nothing() {
        let (channel, mut runtime, _outcome) = invocation_taken().await;
        let (status, body) = tokio::task::spawn_blocking(move || {
            runtime.send(
                b"POST /2018-06-01/runtime/invocation/other/response HTTP/1.1\r\nhost: x\r\n\
                  lambda-runtime-function-response-mode: streaming\r\ncontent-length: 0\r\n\r\n",
            );
            runtime.response()
        })
        .await
        .expect("answer");
        assert!(status.contains("400"), "{status}");
        assert!(body.contains("InvalidRequestID"), "{body}");
        // The invocation is still in flight, and still the runtime's to answer.
        assert_eq!(channel.abandon().len(), 1);
    }

    #[test]
    fn trailers_without_an_error_end_complete_and_a_bad_body_is_replaced() {
        assert_eq!(trailer_end(&http::HeaderMap::new()), StreamEnd::Complete);
        let mut t = http::HeaderMap::new();
        t.insert(
            "lambda-runtime-function-error-type",
            HeaderValue::from_static("Custom"),
        );
        t.insert(
            "lambda-runtime-function-error-body",
            HeaderValue::from_static("not base64!"),
        );
        let StreamEnd::Error { error_type, body } = trailer_end(&t) else {
            panic!("an error");
        };
        assert_eq!(error_type.as_deref(), Some("Custom"));
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["errorType"], "Custom");
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_burst_a_stream_is_paced_at_two_megabytes_a_second() {
        let mut pace = Pace::new();
        let start = tokio::time::Instant::now();
        pace.wait(STREAM_BURST_BYTES).await;
        assert_eq!(start.elapsed(), std::time::Duration::ZERO);
        pace.wait(STREAM_BYTES_PER_SECOND).await;
        pace.wait(STREAM_BYTES_PER_SECOND).await;
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.99..2.01).contains(&elapsed), "{elapsed}");
    }
}

//! The engine runs functions: it resolves which version an invocation runs, admits it
//! under Lambda's concurrency rules, finds a warm instance or starts one through the
//! executor, delivers the event over the Runtime API, enforces the init and function
//! deadlines, frames the logs, and retries asynchronous events from the durable queue.
//!
//! Architecture Invariants: HTTP types never reach the engine; a warm invoke never touches
//! the store; every wait on an instance races its process exit and a deadline, so nothing
//! waits forever on a process that died.
#![forbid(unsafe_code)]

mod concurrency;
mod instance;
pub mod logs;
mod queue;
mod registry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;
use warden_executor::{Executor, ExitStatus};
use warden_runtime_api::{Invocation, Outcome};
use warden_store::{BlobStore, LogSource, Store, StoreError};
use warden_types::{AccountId, FunctionName, FunctionRef, FunctionVersion, Qualifier, Region};

pub use concurrency::{Concurrency, ThrottleReason};
use instance::{instance_spec, Instance, RuntimeSettings};
pub use logs::LogLimits;
use logs::{LogCapture, LogSink};
use registry::Registry;

/// Settings of the engine; every field has a documented default in the binary.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub account: AccountId,
    pub region: Region,
    /// Interpreter for `python3.x` runtimes; must have `awslambdaric` installed.
    pub python: PathBuf,
    pub account_concurrency: u32,
    /// Idle instances older than this are stopped.
    pub idle_timeout: Duration,
    /// Delay before each async retry (Lambda: about 1 and 2 minutes).
    pub async_retry_delays: [Duration; 2],
    /// Longest init phase (Lambda: 10 s).
    pub init_timeout: Duration,
    /// Function log rate and retention.
    pub logs: LogLimits,
}

/// Issues the short-lived credentials of a function's execution role to each instance.
pub trait CredentialIssuer: Send + Sync + 'static {
    /// Credentials for `role_arn` (access key id, secret, session token), valid until revoked
    /// or expired; `Err` with a reason when the role cannot be assumed.
    fn issue(&self, role_arn: &str, session_name: &str)
        -> Result<(String, String, String), String>;
    /// Ends a session early: its instance is gone.
    fn revoke(&self, access_key_id: &str);
}

/// Instances older than this are retired when idle, so that their role credentials (valid
/// 12 hours) never expire while in use.
const MAX_INSTANCE_AGE: Duration = Duration::from_secs(11 * 3600);

/// Why an invocation could not even start; function failures are not errors, they are
/// [`InvokeResponse`]s with `function_error` set.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("Function not found: {0}")]
    NotFound(String),
    #[error("Rate Exceeded.")]
    Throttled(ThrottleReason),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// One synchronous invocation.
#[derive(Debug)]
pub struct InvokeRequest {
    pub function: FunctionRef,
    pub payload: Bytes,
    pub tail: bool,
    /// Client context JSON (decoded from the caller's base64).
    pub client_context: Option<String>,
    /// The request id to use (async events keep theirs across retries); new if `None`.
    pub request_id: Option<String>,
}

/// The result of an invocation that ran (or tried to).
#[derive(Debug)]
pub struct InvokeResponse {
    pub payload: Bytes,
    /// `Some("Unhandled")` when the function failed.
    pub function_error: Option<&'static str>,
    /// The last 4 KB of this invocation's log, when asked for.
    pub log_tail: Option<String>,
    pub executed_version: String,
}

type PoolKey = (FunctionName, String, String);

struct Pool {
    idle: Mutex<Vec<Arc<Instance>>>,
    retired: AtomicBool,
}

struct Inner {
    config: EngineConfig,
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    /// Where each version's code is; instances pin theirs while they live.
    blobs: Arc<BlobStore>,
    registry: Registry,
    concurrency: Arc<Concurrency>,
    logs: LogSink,
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    queue_wakeup: tokio::sync::Notify,
    /// Permits of the async worker; all free means no async invocation is running.
    async_in_flight: Arc<tokio::sync::Semaphore>,
    shutting_down: AtomicBool,
    credentials: std::sync::OnceLock<Arc<dyn CredentialIssuer>>,
    /// Where functions reach Warden's API (`AWS_ENDPOINT_URL`).
    api_endpoint: std::sync::OnceLock<String>,
    /// The API's socket address, derived from `api_endpoint`: where the relays of
    /// sandboxed instances connect.
    api_address: std::sync::OnceLock<std::net::SocketAddr>,
}

/// The handle the API holds; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Builds the engine and starts its background tasks (idle reaper, async queue
    /// worker, log writer and pruner). `blobs` holds each version's code by `CodeSha256`.
    pub fn start(
        config: EngineConfig,
        store: Arc<dyn Store>,
        executor: Arc<dyn Executor>,
        blobs: Arc<BlobStore>,
    ) -> Result<Self, StoreError> {
        let reservations = store.all_reserved_concurrency()?;
        let released = store.release_leases()?;
        if released > 0 {
            tracing::info!(
                events = released,
                "async events interrupted by the previous run are due again"
            );
        }
        let concurrency = Concurrency::new(config.account_concurrency, &reservations);
        let inner = Arc::new(Inner {
            registry: Registry::new(Arc::clone(&store)),
            logs: LogSink::start(Arc::clone(&store), config.logs),
            config,
            store,
            executor,
            blobs,
            concurrency,
            pools: Mutex::new(HashMap::new()),
            queue_wakeup: tokio::sync::Notify::new(),
            async_in_flight: Arc::new(tokio::sync::Semaphore::new(queue::MAX_IN_FLIGHT)),
            credentials: std::sync::OnceLock::new(),
            api_endpoint: std::sync::OnceLock::new(),
            api_address: std::sync::OnceLock::new(),
            shutting_down: AtomicBool::new(false),
        });
        let engine = Self { inner };
        tokio::spawn(engine.clone().reap_idle_loop());
        tokio::spawn(engine.clone().queue_loop());
        Ok(engine)
    }

    /// Gives every new instance credentials of its execution role (set once, at boot).
    pub fn use_credentials(&self, issuer: Arc<dyn CredentialIssuer>) {
        let _ = self.inner.credentials.set(issuer);
    }

    /// Tells instances where Warden's API is (`AWS_ENDPOINT_URL`; set once, at boot), as
    /// `http://IP:PORT`. Sandboxed instances cannot reach the host's loopback: they get an
    /// endpoint inside their own network namespace, relayed to this address.
    pub fn set_api_endpoint(&self, url: String) {
        match api_socket_address(&url) {
            Some(address) => {
                let _ = self.inner.api_address.set(address);
            }
            None => tracing::warn!(
                endpoint = %url,
                "the api endpoint is not `http://IP:PORT`; sandboxed functions cannot reach it"
            ),
        }
        let _ = self.inner.api_endpoint.set(url);
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn concurrency(&self) -> &Arc<Concurrency> {
        &self.inner.concurrency
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Notified whenever a batch of log lines is durable.
    pub fn logs_written(&self) -> Arc<tokio::sync::Notify> {
        self.inner.logs.written()
    }

    /// Drops cached configuration of `name` and retires its instances; called after every
    /// control-plane write to the function.
    pub fn invalidate(&self, name: &FunctionName) {
        self.inner.registry.invalidate(name);
        let retired: Vec<Arc<Pool>> = {
            let mut pools = lock(&self.inner.pools);
            let keys: Vec<PoolKey> = pools.keys().filter(|k| &k.0 == name).cloned().collect();
            keys.iter().filter_map(|k| pools.remove(k)).collect()
        };
        for pool in retired {
            pool.retired.store(true, Ordering::Release);
            for instance in lock(&pool.idle).drain(..) {
                self.inner.executor.kill(instance.id);
            }
        }
    }

    /// Resolves a reference to the version it runs, or `NotFound`.
    pub async fn resolve(
        &self,
        function: &FunctionRef,
    ) -> Result<Arc<FunctionVersion>, InvokeError> {
        match self
            .inner
            .registry
            .resolve(&function.name, function.qualifier.as_ref())
            .await?
        {
            Some(r) => Ok(r.config),
            None => Err(InvokeError::NotFound(self.arn(function))),
        }
    }

    /// The ARN of a reference as the caller named it.
    pub fn arn(&self, function: &FunctionRef) -> String {
        let q = function.qualifier.as_ref().map(Qualifier::to_string);
        warden_types::names::function_arn(
            &self.inner.config.region,
            &self.inner.config.account,
            &function.name,
            q.as_deref(),
        )
    }

    /// Runs one synchronous invocation.
    pub async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let config = self.resolve(&request.function).await?;
        let permit = self
            .inner
            .concurrency
            .acquire(&config.name)
            .map_err(InvokeError::Throttled)?;
        let response = self.run(&config, &request).await;
        drop(permit);
        Ok(response)
    }

    /// Stops taking async events, lets the ones running finish (up to `grace`), then stops
    /// every instance; used at shutdown after the API stopped accepting requests.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.queue_wakeup.notify_waiters();
        let all = queue::MAX_IN_FLIGHT as u32;
        if tokio::time::timeout(grace, self.inner.async_in_flight.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "async invocations still running at shutdown were stopped; they will run again"
            );
        }
        let pools: Vec<Arc<Pool>> = lock(&self.inner.pools).drain().map(|(_, p)| p).collect();
        for pool in pools {
            pool.retired.store(true, Ordering::Release);
            for instance in lock(&pool.idle).drain(..) {
                self.inner.executor.kill(instance.id);
            }
        }
    }

    /// Number of idle instances, for tests and diagnostics.
    pub fn idle_instances(&self) -> usize {
        lock(&self.inner.pools)
            .values()
            .map(|p| lock(&p.idle).len())
            .sum()
    }

    fn pool(&self, config: &FunctionVersion) -> Arc<Pool> {
        let key = (
            config.name.clone(),
            config.version.clone(),
            config.revision_id.clone(),
        );
        Arc::clone(lock(&self.inner.pools).entry(key).or_insert_with(|| {
            Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                retired: AtomicBool::new(false),
            })
        }))
    }

    async fn run(&self, config: &Arc<FunctionVersion>, request: &InvokeRequest) -> InvokeResponse {
        let request_id = request
            .request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let pool = self.pool(config);
        let warm = loop {
            let Some(instance) = lock(&pool.idle).pop() else {
                break None;
            };
            if instance.has_exited() {
                continue;
            }
            break Some(instance);
        };
        let instance = match warm {
            Some(i) => i,
            None => match self.cold_start(config, &request_id, request.tail).await {
                Ok(i) => i,
                Err(failure) => return failure,
            },
        };
        let init_ms = (!instance.used.swap(true, Ordering::AcqRel)).then(|| {
            instance
                .channel
                .initialized_at()
                .map(|t| t.duration_since(instance.spawned_at).as_secs_f64() * 1000.0)
                .unwrap_or(0.0)
        });
        let response = self
            .deliver(config, request, &request_id, &instance, init_ms)
            .await;
        if instance.has_exited()
            || pool.retired.load(Ordering::Acquire)
            || self.inner.shutting_down.load(Ordering::Acquire)
        {
            self.inner.executor.kill(instance.id);
        } else {
            *lock(&instance.last_used) = Instant::now();
            lock(&pool.idle).push(instance);
        }
        response
    }

    /// Starts an instance and waits for its init phase, or returns the function error the
    /// caller gets (already logged).
    async fn cold_start(
        &self,
        config: &Arc<FunctionVersion>,
        request_id: &str,
        tail: bool,
    ) -> Result<Arc<Instance>, InvokeResponse> {
        let inner = &self.inner;
        // Pinned before the instance exists and until its process is gone, so garbage
        // collection never removes code a live instance runs, even after its version is
        // deleted.
        let code_pin = inner.blobs.pin(&config.code_sha256);
        let code_dir = inner.blobs.code_dir(&config.code_sha256);
        let settings = RuntimeSettings {
            python: &inner.config.python,
            region: &inner.config.region,
        };
        let started = Instant::now();
        let failed = |error_type: &str, message: String, logs: Option<&LogCapture>| {
            self.failure(config, request_id, tail, started, logs, error_type, message)
        };
        let spec = match instance_spec(config, &code_dir, &settings) {
            Ok(s) => s,
            Err(message) => {
                return Err(failed(
                    "Runtime.InvalidEntrypoint",
                    format!("RequestId: {request_id} Error: {message}"),
                    None,
                ))
            }
        };
        let mut spec = spec;
        if let Some(url) = inner.api_endpoint.get() {
            spec.env.push(("AWS_ENDPOINT_URL".into(), url.clone()));
        }
        let session_key = match inner.credentials.get() {
            Some(issuer) => match issuer.issue(&config.role, config.name.as_str()) {
                Ok((key, secret, token)) => {
                    spec.env.push(("AWS_ACCESS_KEY_ID".into(), key.clone()));
                    spec.env.push(("AWS_SECRET_ACCESS_KEY".into(), secret));
                    spec.env.push(("AWS_SESSION_TOKEN".into(), token));
                    Some(key)
                }
                Err(reason) => {
                    tracing::warn!(function = %config.name, role = %config.role, %reason, "execution role cannot be assumed");
                    return Err(failed(
                        "Runtime.InvalidRole",
                        format!("RequestId: {request_id} Error: The role defined for the function cannot be assumed by Lambda."),
                        None,
                    ));
                }
            },
            None => None,
        };
        let revoke = |key: &Option<String>| {
            if let (Some(k), Some(issuer)) = (key, inner.credentials.get()) {
                issuer.revoke(k);
            }
        };
        let spawned = match inner.executor.spawn(spec).await {
            Ok(s) => s,
            Err(e) => {
                revoke(&session_key);
                tracing::warn!(function = %config.name, error = %e, "instance did not start");
                return Err(failed(
                    "Runtime.InvalidEntrypoint",
                    format!("RequestId: {request_id} Error: {e}"),
                    None,
                ));
            }
        };
        let warden_executor::SpawnedInstance {
            id,
            pid,
            stdout,
            stderr,
            runtime_api,
            api_listener,
            exited,
        } = spawned;
        // Without an API address the listener is dropped: connections to it are refused.
        let api = api_listener.zip(inner.api_address.get().copied());
        let started_instance =
            LogCapture::start(config.name.clone(), inner.logs.clone(), stdout, stderr)
                .and_then(|logs| Instance::new(id, pid, runtime_api, api, exited, logs, started));
        let instance = match started_instance {
            Ok(i) => Arc::new(i),
            Err(e) => {
                revoke(&session_key);
                inner.executor.kill(id);
                return Err(failed(
                    "Runtime.InvalidEntrypoint",
                    format!("RequestId: {request_id} Error: {e}"),
                    None,
                ));
            }
        };
        {
            let watched = Arc::clone(&instance);
            tokio::spawn(async move {
                watched.exited().await;
                drop(code_pin);
            });
        }
        if let (Some(key), Some(issuer)) = (session_key, inner.credentials.get()) {
            // The role's credentials die with the instance.
            let (watched, issuer) = (Arc::clone(&instance), Arc::clone(issuer));
            tokio::spawn(async move {
                watched.exited().await;
                issuer.revoke(&key);
            });
        }
        let init = tokio::select! {
            biased;
            r = instance.channel.initialized() => r.map_err(|(error_type, body)| InitFailure::Reported(error_type, body)),
            status = instance.exited() => match instance.channel.init_state() {
                // Runtimes post their init error and exit at once: report the error.
                warden_runtime_api::InitState::Failed { error_type, body } => Err(InitFailure::Reported(error_type, body)),
                warden_runtime_api::InitState::Ready => Ok(()),
                warden_runtime_api::InitState::Initializing => Err(InitFailure::Exited(status)),
            },
            _ = tokio::time::sleep(inner.config.init_timeout) => Err(InitFailure::TimedOut),
        };
        let init = match init {
            Ok(()) if instance.has_exited() => Err(InitFailure::Exited(instance.exited().await)),
            other => other,
        };
        match init {
            Ok(()) => Ok(instance),
            Err(failure) => {
                inner.executor.kill(instance.id);
                let logs = Some(&*instance.logs);
                Err(match failure {
                    InitFailure::Reported(error_type, body) => {
                        // The function chose the type and the text: its line, not Warden's.
                        let message = String::from_utf8_lossy(&body).into_owned();
                        self.failure_with_body(config, request_id, tail, started, logs, error_type.as_deref().unwrap_or("Runtime.InitError"), message, body, LogSource::Function)
                    }
                    InitFailure::Exited(status) => failed(instance::exit_error_type(status), format!("RequestId: {request_id} Error: Runtime exited with error: {status}"), logs),
                    InitFailure::TimedOut => failed(
                        "Runtime.InitError",
                        format!("RequestId: {request_id} Error: init phase timed out after {:.2} seconds", inner.config.init_timeout.as_secs_f64()),
                        logs,
                    ),
                })
            }
        }
    }

    /// Delivers the event to a ready instance and waits for its outcome, its exit or the
    /// deadline, whichever comes first; writes the invocation's log frame.
    async fn deliver(
        &self,
        config: &Arc<FunctionVersion>,
        request: &InvokeRequest,
        request_id: &str,
        instance: &Arc<Instance>,
        init_ms: Option<f64>,
    ) -> InvokeResponse {
        let timeout = Duration::from_secs(u64::from(config.timeout_seconds));
        let started = Instant::now();
        let deadline_ms = warden_types::now_millis() + timeout.as_millis() as i64;
        let (reply_tx, reply_rx) = oneshot::channel();
        instance
            .logs
            .begin(request_id, &config.version, request.tail);
        let invocation = Invocation {
            request_id: request_id.to_owned(),
            payload: request.payload.clone(),
            deadline_ms,
            function_arn: self.arn(&request.function),
            trace_id: warden_runtime_api::trace_id((deadline_ms / 1000) as u64, rand::random()),
            client_context: request.client_context.clone(),
            cognito_identity: None,
            reply: reply_tx,
        };
        let outcome = if !instance.channel.submit(invocation) {
            Err(ExitStatus::Lost)
        } else {
            let mut reply_rx = reply_rx;
            tokio::select! {
                biased;
                r = &mut reply_rx => r.map_err(|_| ExitStatus::Lost).map(Some),
                // A runtime may post its response and exit at once: the response wins.
                status = instance.exited() => reply_rx.try_recv().map(Some).map_err(|_| status),
                _ = tokio::time::sleep(timeout) => Ok(None),
            }
        };
        let (payload, function_error) = match outcome {
            Ok(Some(Outcome::Response(body))) => (body, None),
            Ok(Some(Outcome::FunctionError { body, .. })) => (body, Some("Unhandled")),
            Ok(Some(Outcome::ResponseTooLarge)) => (
                error_json(
                    "Function.ResponseSizeTooLarge",
                    &format!(
                        "Response payload size exceeded maximum allowed payload size ({} bytes).",
                        warden_types::limits::SYNC_PAYLOAD_BYTES
                    ),
                ),
                Some("Unhandled"),
            ),
            Ok(None) => {
                self.inner.executor.kill(instance.id);
                let seconds = timeout.as_secs_f64();
                instance.logs.platform(format!(
                    "{} {request_id} Task timed out after {seconds:.2} seconds",
                    warden_types::iso_timestamp(warden_types::now_millis())
                ));
                (
                    error_json("Sandbox.Timedout", &format!("RequestId: {request_id} Error: Task timed out after {seconds:.2} seconds")),
                    Some("Unhandled"),
                )
            }
            Err(status) => {
                self.inner.executor.kill(instance.id);
                let message =
                    format!("RequestId: {request_id} Error: Runtime exited with error: {status}");
                instance.logs.platform(message.clone());
                (
                    error_json(instance::exit_error_type(status), &message),
                    Some("Unhandled"),
                )
            }
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let report = logs::Report {
            request_id: request_id.to_owned(),
            duration_ms,
            memory_mb: config.memory_mb,
            pid: instance.pid,
            init_ms,
        };
        // A failed instance may be gone soon: read its memory while it is still there.
        let tail = instance
            .logs
            .end(request_id, report, function_error.is_some());
        InvokeResponse {
            payload,
            function_error,
            log_tail: tail.map(|t| t.last_4k().to_owned()),
            executed_version: config.version.clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn failure(
        &self,
        config: &FunctionVersion,
        request_id: &str,
        tail: bool,
        started: Instant,
        logs: Option<&LogCapture>,
        error_type: &str,
        message: String,
    ) -> InvokeResponse {
        let body = error_json(error_type, &message);
        self.failure_with_body(
            config,
            request_id,
            tail,
            started,
            logs,
            error_type,
            message,
            body,
            LogSource::Platform,
        )
    }

    /// Logs and returns a failed cold start: `START`, the error (stored as written by
    /// `source`), `END`, `REPORT`.
    #[allow(clippy::too_many_arguments)]
    fn failure_with_body(
        &self,
        config: &FunctionVersion,
        request_id: &str,
        tail: bool,
        started: Instant,
        logs: Option<&LogCapture>,
        error_type: &str,
        message: String,
        body: Bytes,
        source: LogSource,
    ) -> InvokeResponse {
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        // No instance ran (or it is gone): no memory figure, and init took the whole time.
        let report = logs::Report {
            request_id: request_id.to_owned(),
            duration_ms,
            memory_mb: config.memory_mb,
            pid: 0,
            init_ms: Some(duration_ms),
        };
        let line = format!("{error_type}: {message}");
        let tail_text = match logs {
            Some(capture) => {
                capture.begin(request_id, &config.version, tail);
                match source {
                    LogSource::Platform => capture.platform(line),
                    LogSource::Function => capture.reported(line),
                }
                capture
                    .end(request_id, report, true)
                    .map(|t| t.last_4k().to_owned())
            }
            None => {
                let sink = &self.inner.logs;
                let start = format!("START RequestId: {request_id} Version: {}", config.version);
                let end = format!("END RequestId: {request_id}");
                let report = report.line();
                let text = tail.then(|| format!("{start}\n{line}\n{end}\n{report}\n"));
                sink.emit(&config.name, Some(request_id), start);
                sink.emit_as(&config.name, Some(request_id), line, source);
                sink.emit(&config.name, Some(request_id), end);
                sink.emit(&config.name, Some(request_id), report);
                text
            }
        };
        InvokeResponse {
            payload: body,
            function_error: Some("Unhandled"),
            log_tail: tail_text,
            executed_version: config.version.clone(),
        }
    }

    async fn reap_idle_loop(self) {
        let period = (self.inner.config.idle_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            tokio::time::sleep(period).await;
            if self.inner.shutting_down.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            let pools: Vec<Arc<Pool>> = lock(&self.inner.pools).values().cloned().collect();
            for pool in pools {
                let expired: Vec<Arc<Instance>> = {
                    let mut idle = lock(&pool.idle);
                    let (old, keep): (Vec<_>, Vec<_>) = idle.drain(..).partition(|i| {
                        i.has_exited()
                            || now.duration_since(*lock(&i.last_used))
                                >= self.inner.config.idle_timeout
                            || now.duration_since(i.spawned_at) >= MAX_INSTANCE_AGE
                    });
                    *idle = keep;
                    old
                };
                for instance in expired {
                    tracing::debug!(instance = instance.id.0, "stopping idle instance");
                    self.inner.executor.kill(instance.id);
                }
            }
            // A pool still referenced elsewhere has an invocation in flight whose instance
            // will come back to it: keep it.
            lock(&self.inner.pools)
                .retain(|_, p| Arc::strong_count(p) > 1 || !lock(&p.idle).is_empty());
        }
    }
}

enum InitFailure {
    Reported(Option<String>, Bytes),
    Exited(ExitStatus),
    TimedOut,
}

/// The socket address of an `http://IP:PORT[/...]` endpoint.
fn api_socket_address(url: &str) -> Option<std::net::SocketAddr> {
    let rest = url.strip_prefix("http://")?;
    rest.split('/').next()?.parse().ok()
}

/// Lambda's error payload: `{"errorType": ..., "errorMessage": ...}`.
fn error_json(error_type: &str, message: &str) -> Bytes {
    serde_json::json!({ "errorType": error_type, "errorMessage": message })
        .to_string()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_address_comes_from_the_endpoint() {
        assert_eq!(
            api_socket_address("http://127.0.0.1:4010"),
            Some(([127, 0, 0, 1], 4010).into())
        );
        assert_eq!(
            api_socket_address("http://[::1]:4010/"),
            "[::1]:4010".parse().ok()
        );
        assert_eq!(api_socket_address("https://127.0.0.1:4010"), None);
        assert_eq!(api_socket_address("http://localhost:4010"), None);
    }
}

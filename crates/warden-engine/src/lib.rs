//! The engine runs functions: it resolves which version an invocation runs, admits it
//! under Lambda's concurrency rules, finds a warm instance or starts one through the
//! executor, delivers the event over the Runtime API, enforces the init and function
//! deadlines, frames the logs, and retries asynchronous events from the durable queue.
//!
//! Architecture Invariants: HTTP types never reach the engine; a warm invoke never touches
//! the store; every wait on an instance races its process exit and a deadline, so nothing
//! waits forever on a process that died.
#![forbid(unsafe_code)]

mod changes;
mod concurrency;
pub mod events;
mod instance;
pub mod logs;
mod memory;
mod pacing;
mod queue;
mod registry;
pub mod security;
mod stream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;
use warden_executor::{Egress, Executor, ExitStatus};

/// The signal a seccomp filter's kill action delivers (31 on every Linux architecture
/// Warden runs on).
const SIGSYS: i32 = 31;
use warden_runtime_api::{Invocation, Outcome};
use warden_store::{BlobStore, LogSource, Store, StoreError};
use warden_types::{AccountId, FunctionName, FunctionRef, FunctionVersion, Qualifier, Region};

pub use concurrency::{Concurrency, ThrottleReason, LEASE_TICK, RETURN_AFTER};
pub use events::{AsyncEvent, InvocationEvent, InvocationObserver};
pub use instance::{cpu_percent, instance_limits, CpuScaling, SERVED_SERVICES};
use instance::{instance_spec, Instance, Lifetime, RuntimeSettings};
pub use logs::LogLimits;
use logs::{LogCapture, LogSink};
use memory::MemoryGrant;
pub use memory::{host_memory_bytes, BudgetError, BudgetSetting, MemoryBudget};
use registry::Registry;
pub use stream::StreamPart;

/// Settings of the engine; every field has a documented default in the binary.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The account every function belongs to (in ARNs).
    pub account: AccountId,
    /// The region (in ARNs and `AWS_REGION`).
    pub region: Region,
    /// The interpreter behind each managed runtime (`python3.x`, `nodejs*.x`).
    pub runtimes: Arc<warden_runtimes::RuntimeTable>,
    /// The host directory holding Warden's runtime bootstraps
    /// (`warden_runtimes::bootstrap::install` wrote them there).
    pub runtime_dir: PathBuf,
    /// The account's concurrency limit (Lambda: 1,000).
    pub account_concurrency: u32,
    /// Idle instances older than this are stopped.
    pub idle_timeout: Duration,
    /// Delay before each async retry (Lambda: about 1 and 2 minutes).
    pub async_retry_delays: [Duration; 2],
    /// Longest init phase (Lambda: 10 s).
    pub init_timeout: Duration,
    /// Most memory, in MiB, that the limits of all running instances may add up to
    /// (`--memory-budget`); see [`MemoryBudget`].
    pub memory_budget_mb: u64,
    /// Function log rate and retention.
    pub logs: LogLimits,
    /// This server among the nodes sharing the store: the async events it leases are
    /// leased in its name, and at start it takes back the leases its previous run held.
    pub node_id: warden_types::NodeId,
    /// Where Warden's API listens: instances that can reach the host's loopback get
    /// `http://` this address in their endpoint variables, and the relays of sandboxed
    /// instances connect here.
    pub api_address: std::net::SocketAddr,
    /// How instances' CPU time is limited (`--cpu-scaling`).
    pub cpu_scaling: CpuScaling,
}

/// The short-lived credentials of an execution-role session, given to one instance.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleCredentials {
    /// `AWS_ACCESS_KEY_ID`; also what [`CredentialIssuer::revoke`] takes.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: String,
}

impl std::fmt::Debug for RoleCredentials {
    /// Names the key only: the secret and the token never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why an execution role's credentials could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The role does not exist, or its trust policy does not admit Lambda.
    #[error("the role `{role}` cannot be assumed: {reason}")]
    CannotAssume {
        /// The role's ARN.
        role: String,
        /// What the identity service said.
        reason: String,
    },
}

/// Issues the short-lived credentials of a function's execution role to each instance.
/// The engine is built with one ([`EngineParts::credentials`]): no instance starts without
/// its role's credentials.
pub trait CredentialIssuer: Send + Sync + 'static {
    /// Credentials for `role_arn`, valid until revoked or expired.
    fn issue(&self, role_arn: &str, session_name: &str)
        -> Result<RoleCredentials, CredentialError>;
    /// Ends a session early: its instance is gone.
    fn revoke(&self, access_key_id: &str);
}

/// What the engine is built from, besides its settings.
pub struct EngineParts {
    /// Configuration, queue and logs.
    pub store: Arc<dyn Store>,
    /// Starts and stops instance processes.
    pub executor: Arc<dyn Executor>,
    /// Each version's code, by `CodeSha256`.
    pub blobs: Arc<BlobStore>,
    /// The execution-role credentials of every instance.
    pub credentials: Arc<dyn CredentialIssuer>,
    /// Who watches invocations (metrics, audit), besides the log writer.
    pub observers: Vec<Arc<dyn InvocationObserver>>,
    /// Opens each function's sealed environment as an instance starts.
    pub keyring: Arc<dyn warden_kms::envelope::Keyring>,
    /// Decides where each instance may go on the network.
    pub egress: Arc<dyn EgressPolicies>,
    /// Answers the DNS queries of instances with a network link (`None`: they get no
    /// answer, so names do not resolve).
    pub dns: Option<Arc<warden_dns::Resolver>>,
    /// Where flow records of instances with a network link are kept, if they are.
    pub flow_log: Option<Arc<warden_egress::flows::FlowLog>>,
    /// When nodes share a store: where this node leases its share of the concurrency
    /// limits (`None`: the limits are this node's alone).
    pub slot_leases: Option<Arc<dyn warden_store::SlotLeases>>,
    /// Where accepted `Event` invocations wait (`None`: the store's own queue). A cluster
    /// on NATS gives its JetStream work queue.
    pub queue: Option<Arc<dyn warden_store::EventQueue>>,
}

/// An instance with a network link, as flow records name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedInstance {
    /// The function.
    pub function: String,
    /// The instance (`i-` and 16 hex digits).
    pub instance: String,
    /// The function's VPC and subnets, if it is attached to one.
    pub vpc: Option<warden_types::VpcConfig>,
}

/// Decides the network egress of a function's instances (the server's firewall, when it
/// has one).
pub trait EgressPolicies: Send + Sync {
    /// The egress of a new instance of `config`, or why it cannot start: Lambda's error
    /// type and a message.
    fn egress(&self, config: &FunctionVersion) -> Result<Egress, (String, String)>;

    /// Why network rules cannot be enforced here, if they cannot (then a `VpcConfig` is
    /// refused when it is set).
    fn unavailable(&self) -> Option<String> {
        None
    }
}

/// Loopback only, for every instance: a server without a firewall. A function with a
/// network configuration does not start (its rules could not be enforced).
pub struct LoopbackOnly;

impl EgressPolicies for LoopbackOnly {
    fn unavailable(&self) -> Option<String> {
        Some(
            "it has no firewall: it runs without root, without nftables, or without the sandbox"
                .to_owned(),
        )
    }

    fn egress(&self, config: &FunctionVersion) -> Result<Egress, (String, String)> {
        match &config.vpc_config {
            None => Ok(Egress::RelayOnly),
            Some(_) => Err((
                "EC2UnexpectedException".to_owned(),
                "this Warden server cannot enforce network rules, so a function with a \
                 VpcConfig cannot start here (see `warden doctor`)"
                    .to_owned(),
            )),
        }
    }
}

/// Instances older than this are retired when idle, so that their role credentials (valid
/// 12 hours) never expire while in use.
const MAX_INSTANCE_AGE: Duration = Duration::from_secs(11 * 3600);

/// How long a cold start waits for an idle instance it evicted to be gone (its memory is
/// counted until then) before it evicts another one.
const EVICTION_DEADLINE: Duration = Duration::from_secs(5);

/// How long a cold start waits in all for memory that instances being ended (evicted by
/// it, retired, timed out) will give back, before it is refused: on a loaded host an
/// instance's teardown can outlast [`EVICTION_DEADLINE`], and the memory it holds still
/// comes back.
const RECLAIM_PATIENCE: Duration = Duration::from_secs(30);

/// Why an invocation could not even start; function failures are not errors, they are
/// [`InvokeResponse`]s with `function_error` set.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No function, version or alias by that name (its ARN).
    #[error("Function not found: {0}")]
    NotFound(String),
    /// A concurrency or memory limit refused it.
    #[error("Rate Exceeded.")]
    Throttled(ThrottleReason),
    /// The store could not be read.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// The function's environment could not be opened: its KMS key is disabled, pending
    /// deletion or gone (Lambda's `KMS*Exception`).
    #[error("{0}")]
    Kms(warden_kms::envelope::KeyringError),
    /// The server stopped before the invocation ended.
    #[error("the invocation was stopped by the server's shutdown")]
    Aborted,
}

/// One synchronous invocation.
#[derive(Debug)]
pub struct InvokeRequest {
    /// The function, version or alias to run.
    pub function: FunctionRef,
    /// The event, JSON.
    pub payload: Bytes,
    /// Whether to return the end of the log (`X-Amz-Log-Type: Tail`).
    pub tail: bool,
    /// Client context JSON (decoded from the caller's base64).
    pub client_context: Option<String>,
    /// The request id to use (async events keep theirs across retries); new if `None`.
    pub request_id: Option<String>,
    /// Where a streamed response goes as the function writes it
    /// (`InvokeWithResponseStream`, `RESPONSE_STREAM` URLs). Without it, a function that
    /// streams is answered with its chunks collected into one response, within the
    /// buffered limit.
    pub stream: Option<tokio::sync::mpsc::Sender<StreamPart>>,
}

/// The result of an invocation that ran (or tried to).
#[derive(Debug)]
pub struct InvokeResponse {
    /// The function's response, or Lambda's error JSON.
    pub payload: Bytes,
    /// `Some("Unhandled")` when the function failed.
    pub function_error: Option<&'static str>,
    /// The last 4 KB of this invocation's log, when asked for.
    pub log_tail: Option<String>,
    /// The version that ran (`X-Amz-Executed-Version`).
    pub executed_version: String,
    /// Whether the response went to the request's `stream` (then `payload` holds only the
    /// error JSON of a function that failed mid-stream).
    pub streamed: bool,
}

type PoolKey = (FunctionName, String, String);

/// The idle instances of one version (at one revision of its configuration), least
/// recently used first. An instance comes back only through [`Pool::put`], which ends it
/// instead when it is doomed or exited, or when the pool is retired or the engine
/// stopping; [`Pool::take`] hands out only usable instances. So an instance the engine
/// decided to end is never given another invocation, however late its process dies.
struct Pool {
    idle: Mutex<Vec<Arc<Instance>>>,
    retired: AtomicBool,
}

// tidy:warm-path-begin (`cargo xtask tidy`: no store call in here)
impl Pool {
    fn new() -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
        }
    }

    /// The most recently used idle instance that can take an invocation; ends any it
    /// finds that cannot.
    fn take(&self) -> Option<Arc<Instance>> {
        let mut unusable = Vec::new();
        let taken = {
            let mut idle = lock(&self.idle);
            loop {
                match idle.pop() {
                    Some(instance) if instance.is_usable() => break Some(instance),
                    Some(instance) => unusable.push(instance),
                    None => break None,
                }
            }
        };
        for instance in unusable {
            instance.doom();
        }
        taken
    }

    /// Gives an instance back after an invocation, or ends it if it must not run again.
    fn put(&self, instance: Arc<Instance>, stopping: bool) {
        let mut idle = lock(&self.idle);
        // Checked under the lock that `retire` drains with, so nothing slips in after.
        if instance.is_usable() && !stopping && !self.retired.load(Ordering::Acquire) {
            *lock(&instance.last_used) = Instant::now();
            idle.push(instance);
        } else {
            drop(idle);
            instance.doom();
        }
    }

    /// No instance comes back to this pool any more; the idle ones end.
    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        let idle: Vec<Arc<Instance>> = lock(&self.idle).drain(..).collect();
        for instance in idle {
            instance.doom();
        }
    }
}

// tidy:warm-path-end

/// Looks at this node's concurrency leases every [`concurrency::LEASE_TICK`] (giving back
/// unused slots, renewing the others) until the engine is gone.
async fn lease_loop(concurrency: std::sync::Weak<Concurrency>) {
    let mut tick = tokio::time::interval(concurrency::LEASE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(c) = concurrency.upgrade() else {
            return;
        };
        if tokio::task::spawn_blocking(move || c.tick()).await.is_err() {
            return;
        }
    }
}

/// The alias an invocation named, if it named one.
fn alias_of(request: &InvokeRequest) -> Option<&str> {
    match &request.function.qualifier {
        Some(warden_types::Qualifier::Alias(a)) => Some(a.as_str()),
        _ => None,
    }
}

/// Instance start times, counted lock-free.
#[derive(Debug, Default)]
struct SpawnStats {
    count: std::sync::atomic::AtomicU64,
    total_us: std::sync::atomic::AtomicU64,
    max_us: std::sync::atomic::AtomicU64,
}

impl SpawnStats {
    fn record(&self, took: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Relaxed);
        self.total_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }
}

/// Events held by CPU pacing, counted lock-free.
#[derive(Debug, Default)]
struct PacingStats {
    held: std::sync::atomic::AtomicU64,
    waited_us: std::sync::atomic::AtomicU64,
}

/// Events held back by CPU pacing (see [`Engine::pacing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Events held before delivery since the engine started.
    pub held: u64,
    /// How long they were held, together.
    pub waited: std::time::Duration,
}

/// How the executor's instance starts went (see [`Engine::spawn_latency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnLatency {
    /// Instance starts since the engine started (failed ones included).
    pub spawns: u64,
    /// Their total time.
    pub total: std::time::Duration,
    /// The longest since the previous reading.
    pub longest: std::time::Duration,
}

struct Inner {
    /// How long the executor takes to start instances.
    spawns: SpawnStats,
    /// How often and how long events waited for their instance's CPU share.
    pacing: PacingStats,
    config: EngineConfig,
    store: Arc<dyn Store>,
    /// Where accepted async invocations wait: the store's queue, or the cluster's.
    queue: Arc<dyn warden_store::EventQueue>,
    executor: Arc<dyn Executor>,
    /// Where each version's code is; instances pin theirs while they live.
    blobs: Arc<BlobStore>,
    registry: Registry,
    concurrency: Arc<Concurrency>,
    memory: Arc<MemoryBudget>,
    logs: LogSink,
    /// Security-relevant events, as JSON lines in their own log group.
    security: security::SecurityLog,
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    queue_wakeup: tokio::sync::Notify,
    /// Permits of the async worker; all free means no async invocation is running.
    async_in_flight: Arc<tokio::sync::Semaphore>,
    shutting_down: AtomicBool,
    credentials: Arc<dyn CredentialIssuer>,
    observers: Vec<Arc<dyn InvocationObserver>>,
    keyring: Arc<dyn warden_kms::envelope::Keyring>,
    egress: Arc<dyn EgressPolicies>,
    dns: Option<Arc<warden_dns::Resolver>>,
    flow_log: Option<Arc<warden_egress::flows::FlowLog>>,
    /// The instances with a network link, by address. Addresses come from the server's
    /// block (at most 512), and a reused address replaces its entry, so the map is bounded
    /// without removals.
    linked: Mutex<HashMap<std::net::Ipv4Addr, LinkedInstance>>,
    /// `http://` the API's address: what instances that reach the host put in their
    /// endpoint variables.
    api_endpoint: String,
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
    /// The newest `limit` DNS queries of `function`'s instances, oldest first (none
    /// without a resolver).
    pub fn dns_queries(
        &self,
        function: &str,
        limit: usize,
    ) -> Result<Vec<warden_dns::QueryRecord>, warden_dns::DnsError> {
        match &self.inner.dns {
            Some(r) => r.log().recent(Some(function), limit),
            None => Ok(Vec::new()),
        }
    }

    /// The instance whose link has `address` (the latest, if the address was reused).
    pub fn linked_instance(&self, address: std::net::Ipv4Addr) -> Option<LinkedInstance> {
        lock(&self.inner.linked).get(&address).cloned()
    }

    /// The flow log, if flows are recorded.
    pub fn flow_log(&self) -> Option<&Arc<warden_egress::flows::FlowLog>> {
        self.inner.flow_log.as_ref()
    }

    /// Why network rules cannot be enforced by this engine's executor, if they cannot.
    pub fn egress_unavailable(&self) -> Option<String> {
        self.inner.egress.unavailable()
    }

    /// Builds the engine and starts its background tasks (idle reaper, async queue
    /// worker, log writer and pruner). `blobs` holds each version's code by `CodeSha256`.
    pub fn start(config: EngineConfig, parts: EngineParts) -> Result<Self, StoreError> {
        let EngineParts {
            store,
            executor,
            blobs,
            credentials,
            observers,
            keyring,
            egress,
            dns,
            flow_log,
            slot_leases,
            queue,
        } = parts;
        let queue =
            queue.unwrap_or_else(|| Arc::clone(&store) as Arc<dyn warden_store::EventQueue>);
        let reservations = store.all_reserved_concurrency()?;
        // No invocation of this node's previous run is still going (one live process per
        // node id), so its leases end now instead of when they expire; other nodes' leases
        // are theirs until they expire.
        let released = queue.reclaim_leases(&config.node_id)?;
        if released > 0 {
            tracing::info!(
                events = released,
                node = %config.node_id,
                "async events interrupted by the previous run are due again"
            );
        }
        let concurrency = match slot_leases {
            Some(leases) => {
                // Leases of this node's previous run are as over as its leases of events.
                leases.release_all()?;
                Concurrency::shared(config.account_concurrency, &reservations, leases)
            }
            None => Concurrency::new(config.account_concurrency, &reservations),
        };
        let api_endpoint = format!("http://{}", config.api_address);
        let inner = Arc::new(Inner {
            spawns: SpawnStats::default(),
            pacing: PacingStats::default(),
            registry: Registry::new(Arc::clone(&store)),
            logs: LogSink::start_observed(Arc::clone(&store), config.logs, observers.clone()),
            security: security::SecurityLog::start(
                Arc::clone(&store) as Arc<dyn warden_store::LogStore>
            ),
            memory: MemoryBudget::new(config.memory_budget_mb),
            config,
            store,
            queue,
            executor,
            blobs,
            concurrency,
            pools: Mutex::new(HashMap::new()),
            queue_wakeup: tokio::sync::Notify::new(),
            async_in_flight: Arc::new(tokio::sync::Semaphore::new(queue::MAX_IN_FLIGHT)),
            credentials,
            observers,
            keyring,
            egress,
            dns,
            flow_log,
            linked: Mutex::new(HashMap::new()),
            api_endpoint,
            shutting_down: AtomicBool::new(false),
        });
        let engine = Self { inner };
        tokio::spawn(engine.clone().reap_idle_loop());
        tokio::spawn(engine.clone().queue_loop());
        if engine.inner.concurrency.is_shared() {
            tokio::spawn(lease_loop(Arc::downgrade(&engine.inner.concurrency)));
        }
        Ok(engine)
    }

    /// The settings the engine was started with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The concurrency table (the control plane subscribes it to reservation changes).
    pub fn concurrency(&self) -> &Arc<Concurrency> {
        &self.inner.concurrency
    }

    /// The store the engine reads configuration from and queues events in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Notified whenever a batch of log lines is durable.
    pub fn logs_written(&self) -> Arc<tokio::sync::Notify> {
        self.inner.logs.written()
    }

    /// Drops cached configuration of `name` and retires its instances; called by the
    /// engine's subscription to control-plane changes (`changes`) for every change that
    /// can alter what an invocation runs.
    pub fn invalidate(&self, name: &FunctionName) {
        self.inner.registry.invalidate(name);
        let retired: Vec<Arc<Pool>> = {
            let mut pools = lock(&self.inner.pools);
            let keys: Vec<PoolKey> = pools.keys().filter(|k| &k.0 == name).cloned().collect();
            keys.iter().filter_map(|k| pools.remove(k)).collect()
        };
        for pool in retired {
            pool.retire();
        }
    }

    /// [`Engine::invalidate`] for every function: the node may have missed changes.
    pub fn invalidate_all(&self) {
        self.inner.registry.invalidate_all();
        let retired: Vec<Arc<Pool>> = lock(&self.inner.pools).drain().map(|(_, p)| p).collect();
        for pool in retired {
            pool.retire();
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

    // tidy:warm-path-begin (`cargo xtask tidy`: no store call in here)
    /// Runs one synchronous invocation.
    ///
    /// It runs in its own task, to its end, whether or not the caller still waits: as on
    /// Lambda, a client that goes away does not stop the function. Were it run in the
    /// caller's future instead, a dropped future (a client disconnecting mid-invocation)
    /// would leave the instance it took neither back in its pool nor ended: its process
    /// and its share of the host memory budget would be lost for good, one per
    /// disconnect, until cold starts were refused for lack of memory.
    pub async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let engine = self.clone();
        match tokio::spawn(async move { engine.invoke_to_the_end(request).await }).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(InvokeError::Aborted),
        }
    }

    async fn invoke_to_the_end(
        &self,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        let config = self.resolve(&request.function).await?;
        let permit = self
            .inner
            .concurrency
            .admit(&config.name)
            .await
            .map_err(|reason| self.throttled(&config.name, reason))?;
        let response = self.run(&config, &request).await;
        drop(permit);
        response
    }

    // tidy:warm-path-end
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
            pool.retire();
        }
        if self.inner.concurrency.is_shared() {
            let concurrency = Arc::clone(&self.inner.concurrency);
            let _ = tokio::task::spawn_blocking(move || concurrency.release_leases()).await;
        }
    }

    /// The host memory budget and how much of it running instances hold.
    pub fn memory(&self) -> &Arc<MemoryBudget> {
        &self.inner.memory
    }

    /// Number of idle instances, for tests and diagnostics.
    pub fn idle_instances(&self) -> usize {
        lock(&self.inner.pools)
            .values()
            .map(|p| lock(&p.idle).len())
            .sum()
    }

    /// The executor's instance starts: how many, their total time, and the longest since
    /// the previous call (which starts a new period), for `/metrics`.
    pub fn spawn_latency(&self) -> SpawnLatency {
        let s = &self.inner.spawns;
        SpawnLatency {
            spawns: s.count.load(std::sync::atomic::Ordering::Relaxed),
            total: std::time::Duration::from_micros(
                s.total_us.load(std::sync::atomic::Ordering::Relaxed),
            ),
            longest: std::time::Duration::from_micros(
                s.max_us.swap(0, std::sync::atomic::Ordering::Relaxed),
            ),
        }
    }

    /// Events held back by CPU pacing since the engine started, and for how long, for
    /// `/metrics`.
    pub fn pacing(&self) -> Pacing {
        use std::sync::atomic::Ordering::Relaxed;
        let p = &self.inner.pacing;
        Pacing {
            held: p.held.load(Relaxed),
            waited: std::time::Duration::from_micros(p.waited_us.load(Relaxed)),
        }
    }

    /// Invocations running now, every function together.
    pub fn running_invocations(&self) -> u64 {
        self.inner.concurrency.in_flight_total()
    }

    /// Concurrency slots this node leases from the shared store now, every pool together
    /// (0 on a node whose limits are its own).
    pub fn leased_concurrency_slots(&self) -> u64 {
        self.inner.concurrency.leased_slots()
    }

    /// Asynchronous events waiting in the durable queue (leased or not): one count of the
    /// queue, for `/metrics`.
    pub fn queued_events(&self) -> Result<u64, StoreError> {
        self.inner.queue.queued_event_count()
    }

    /// Bytes of log lines waiting for the log writer.
    pub fn log_queue_bytes(&self) -> usize {
        self.inner.logs.queued_bytes()
    }

    // tidy:warm-path-begin (`cargo xtask tidy`: no store call in here)
    fn pool(&self, config: &FunctionVersion) -> Arc<Pool> {
        let key = (
            config.name.clone(),
            config.version.clone(),
            config.revision_id.clone(),
        );
        Arc::clone(
            lock(&self.inner.pools)
                .entry(key)
                .or_insert_with(|| Arc::new(Pool::new())),
        )
    }

    /// Runs an admitted invocation on a warm instance, or on a new one if the host memory
    /// budget has room for it (evicting idle instances to make room); warm instances are
    /// never refused.
    async fn run(
        &self,
        config: &Arc<FunctionVersion>,
        request: &InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        let request_id = request
            .request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let pool = self.pool(config);
        let instance = match pool.take() {
            Some(i) => i,
            None => {
                // The variables are opened for each new instance, so a key disabled since
                // the function was configured stops its cold starts.
                let environment = self.environment(config)?;
                let memory = self
                    .reserve_memory(config)
                    .await
                    .map_err(|reason| self.throttled(&config.name, reason))?;
                self.observe(&InvocationEvent::Initializing {
                    function: &config.name,
                    version: &config.version,
                    alias: alias_of(request),
                    request_id: &request_id,
                });
                match self
                    .cold_start(
                        config,
                        &environment,
                        &request_id,
                        request.tail,
                        alias_of(request),
                        memory,
                    )
                    .await
                {
                    Ok(i) => i,
                    Err(failure) => return Ok(failure),
                }
            }
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
        pool.put(instance, self.inner.shutting_down.load(Ordering::Acquire));
        Ok(response)
    }

    // tidy:warm-path-end
    /// The variables of `config`'s environment, opened by the keyring (a record written
    /// before environments were sealed holds them in the clear).
    fn environment(
        &self,
        config: &FunctionVersion,
    ) -> Result<std::collections::BTreeMap<String, String>, InvokeError> {
        match &config.sealed_environment {
            Some(sealed) => self
                .inner
                .keyring
                .open(config.name.as_str(), sealed)
                .map_err(|e| {
                    tracing::warn!(function = %config.name, error = %e, "the environment did not open");
                    InvokeError::Kms(e)
                }),
            None => Ok(config.environment.clone()),
        }
    }

    /// Reserves the memory of a new instance of `config` in the host memory budget,
    /// evicting idle instances, least recently used first, until it fits; refuses with
    /// [`ThrottleReason::HostMemoryBudgetExceeded`] when nothing idle is left to evict.
    async fn reserve_memory(
        &self,
        config: &FunctionVersion,
    ) -> Result<MemoryGrant, ThrottleReason> {
        let budget = &self.inner.memory;
        let cost = memory::instance_cost_mb(config.memory_mb, config.ephemeral_storage_mb);
        let patience = tokio::time::Instant::now() + RECLAIM_PATIENCE;
        loop {
            let released = budget.released();
            if let Some(grant) = budget.try_reserve(cost) {
                return Ok(grant);
            }
            // A function that can never fit evicts nothing.
            let victim = (cost <= budget.limit_mb())
                .then(|| self.take_least_recently_used())
                .flatten();
            // Instances being ended (retired by a configuration change, timed out) still
            // hold their memory until reaped, which takes moments: when that is what stands
            // in the way, wait for it rather than refuse.
            if victim.is_none()
                && budget.fits_after_dying(cost)
                && tokio::time::timeout_at(patience, released).await.is_ok()
            {
                continue;
            }
            let Some(victim) = victim else {
                tracing::info!(
                    function = %config.name,
                    needs_mib = cost,
                    used_mib = budget.used_mb(),
                    budget_mib = budget.limit_mb(),
                    "cold start refused: the host memory budget is used up by busy instances"
                );
                return Err(ThrottleReason::HostMemoryBudgetExceeded);
            };
            tracing::debug!(
                instance = victim.id.0,
                function = %config.name,
                "evicting an idle instance to make room for a cold start"
            );
            victim.doom();
            // Its memory comes back once its processes are gone.
            if tokio::time::timeout(EVICTION_DEADLINE, victim.exited())
                .await
                .is_err()
            {
                tracing::warn!(
                    instance = victim.id.0,
                    "an evicted instance did not end in time; its memory still counts"
                );
            }
        }
    }

    /// Removes the least recently used idle instance of any function from its pool.
    fn take_least_recently_used(&self) -> Option<Arc<Instance>> {
        loop {
            let pools: Vec<Arc<Pool>> = lock(&self.inner.pools).values().cloned().collect();
            // Each pool's idle list is ordered by last use: its first is its oldest.
            let oldest = pools
                .iter()
                .filter_map(|p| {
                    let first = lock(&p.idle).first().cloned()?;
                    let used = *lock(&first.last_used);
                    Some((used, p, first))
                })
                .min_by_key(|(used, _, _)| *used);
            let (_, pool, instance) = oldest?;
            let mut idle = lock(&pool.idle);
            // Another invocation may have taken it meanwhile: look again.
            if idle.first().is_some_and(|i| Arc::ptr_eq(i, &instance)) {
                return Some(idle.remove(0));
            }
        }
    }

    /// Starts an instance and waits for its init phase, or returns the function error the
    /// caller gets (already logged).
    async fn cold_start(
        &self,
        config: &Arc<FunctionVersion>,
        environment: &std::collections::BTreeMap<String, String>,
        request_id: &str,
        tail: bool,
        alias: Option<&str>,
        memory: MemoryGrant,
    ) -> Result<Arc<Instance>, InvokeResponse> {
        let inner = &self.inner;
        // Pinned before the instance exists; its `Lifetime` holds the pin until the process
        // is gone.
        let code_pin = inner.blobs.pin(&config.code_sha256);
        let layers_pin = config.opt_sha256.as_ref().map(|k| inner.blobs.pin(k));
        let settings = RuntimeSettings {
            runtimes: &inner.config.runtimes,
            runtime_dir: &inner.config.runtime_dir,
            region: &inner.config.region,
            api_endpoint: &inner.api_endpoint,
            cpu: inner.config.cpu_scaling,
        };
        let started = Instant::now();
        let failed = |error_type: &str, message: String, logs: Option<&LogCapture>| {
            self.failure(
                config, request_id, tail, alias, started, logs, error_type, message,
            )
        };
        let invalid_entrypoint = |error: &dyn std::fmt::Display| {
            failed(
                "Runtime.InvalidEntrypoint",
                format!("RequestId: {request_id} Error: {error}"),
                None,
            )
        };
        // The extracted code lives in memory-backed storage: after a reboot it is extracted
        // again from the sealed zip (once; the next cold start finds it).
        let code_dir = match inner.blobs.restore_code_dir(&config.code_sha256) {
            Ok(dir) => dir,
            Err(e) => {
                tracing::warn!(function = %config.name, error = %e, "the function's code is not available");
                return Err(invalid_entrypoint(&e));
            }
        };
        // The merged layers are made when the function is configured; one lost since (a
        // reboot emptied the code root) is made again from the layers' own trees.
        let opt_dir = match &config.opt_sha256 {
            Some(key) if inner.blobs.has_code_dir(key) => Some(inner.blobs.code_dir(key)),
            Some(_) => {
                let shas: Vec<String> = config
                    .layers
                    .iter()
                    .map(|l| l.code_sha256.clone())
                    .collect();
                match inner.blobs.merge_layers(&shas) {
                    Ok((key, _)) => Some(inner.blobs.code_dir(&key)),
                    Err(e) => return Err(invalid_entrypoint(&e)),
                }
            }
            None => None,
        };
        // Where the executor will show the code and serve the Runtime API, so that the
        // environment is written once, complete.
        let prepared = match inner.executor.prepare(&code_dir) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(function = %config.name, error = %e, "instance did not start");
                return Err(invalid_entrypoint(&e));
            }
        };
        let credentials = match inner
            .credentials
            .issue(&config.role, &role_session_name(&config.name))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(function = %config.name, role = %config.role, error = %e, "execution role cannot be assumed");
                return Err(failed(
                    "Runtime.InvalidRole",
                    format!("RequestId: {request_id} Error: The role defined for the function cannot be assumed by Lambda."),
                    None,
                ));
            }
        };
        let session_key = credentials.access_key_id.clone();
        let revoke = || inner.credentials.revoke(&session_key);
        let log_stream = instance::log_stream_name(&config.version);
        let mut spec = match instance_spec(
            config,
            environment,
            &code_dir,
            opt_dir.as_deref(),
            prepared.placement(),
            &settings,
            &credentials,
            &log_stream,
        ) {
            Ok(s) => s,
            Err(e) => {
                revoke();
                return Err(invalid_entrypoint(&e));
            }
        };
        // The first instance of a set of security groups loads its rules (a short blocking
        // call to `nft`, so off the async threads); later ones, and functions without a
        // network configuration, find everything loaded.
        let egress = if config.vpc_config.is_none() {
            Ok(inner.egress.egress(config))
        } else {
            let policies = Arc::clone(&inner.egress);
            let version = config.clone();
            tokio::task::spawn_blocking(move || policies.egress(&version)).await
        };
        spec.limits.egress = match egress {
            Ok(Ok(e)) => e,
            Ok(Err((error_type, message))) => {
                revoke();
                tracing::warn!(function = %config.name, error = %message, "no network for the instance");
                return Err(failed(
                    &error_type,
                    format!("RequestId: {request_id} Error: {message}"),
                    None,
                ));
            }
            Err(e) => {
                revoke();
                return Err(invalid_entrypoint(&e));
            }
        };
        drop(credentials);
        // The share the instance's quota was written with, which its pacing follows.
        let cpu_percent = spec.limits.cpu_percent;
        let spawn_started = std::time::Instant::now();
        let spawned = inner.executor.spawn(prepared, spec).await;
        inner.spawns.record(spawn_started.elapsed());
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                revoke();
                tracing::warn!(function = %config.name, error = %e, "instance did not start");
                return Err(invalid_entrypoint(&e));
            }
        };
        let warden_executor::SpawnedInstance {
            id,
            pid,
            stdout,
            stderr,
            runtime_api,
            api_listener,
            extension_listener,
            dns_socket,
            link_address,
            memory_peak,
            cpu_usage,
            exited,
        } = spawned;
        let pacer = cpu_usage.and_then(|usage| pacing::CpuPacer::new(usage, cpu_percent));
        let instance_name = format!("i-{:016x}", id.0);
        if let Some(address) = link_address {
            lock(&inner.linked).insert(
                address,
                LinkedInstance {
                    function: config.name.to_string(),
                    instance: instance_name.clone(),
                    vpc: config.vpc_config.clone(),
                },
            );
        }
        let dns = match (dns_socket, &inner.dns) {
            (Some(socket), Some(resolver)) => Some(instance::DnsService {
                socket,
                resolver: Arc::clone(resolver),
                client: warden_dns::Client {
                    function: config.name.to_string(),
                    instance: instance_name,
                    vpc_id: config.vpc_config.as_ref().map(|v| v.vpc_id.clone()),
                },
            }),
            _ => None,
        };
        // Both listeners inside a sandboxed instance lead to Warden's API, which tells the
        // extension's requests from SDK calls by their shape.
        let relayed: Vec<_> = [api_listener, extension_listener]
            .into_iter()
            .flatten()
            .map(|listener| (listener, inner.config.api_address))
            .collect();
        let lifetime = Lifetime {
            id,
            executor: Arc::clone(&inner.executor),
            memory,
            code: code_pin,
            layers: layers_pin,
        };
        let started_instance = LogCapture::start(
            config.name.clone(),
            log_stream,
            logs::PlatformLines::of(&config.logging),
            warden_types::hygiene::Redactor::of(environment),
            inner.logs.clone(),
            stdout,
            stderr,
        )
        .and_then(|logs| {
            Instance::new(
                logs::PeakMemory::of_instance(pid, memory_peak),
                pacer,
                runtime_api,
                relayed,
                dns,
                exited,
                logs,
                started,
                lifetime,
            )
        });
        let instance = match started_instance {
            Ok(i) => Arc::new(i),
            Err(e) => {
                revoke();
                inner.executor.kill(id);
                return Err(failed(
                    "Runtime.InvalidEntrypoint",
                    format!("RequestId: {request_id} Error: {e}"),
                    None,
                ));
            }
        };
        // The role's credentials die with the instance.
        let (watched, issuer) = (Arc::clone(&instance), Arc::clone(&inner.credentials));
        tokio::spawn(async move {
            watched.exited().await;
            issuer.revoke(&session_key);
        });
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
                instance.doom();
                let logs = Some(&*instance.logs);
                Err(match failure {
                    InitFailure::Reported(error_type, body) => {
                        // The function chose the type and the text: its line, not Warden's.
                        let message = String::from_utf8_lossy(&body).into_owned();
                        self.failure_with_body(config, request_id, tail, alias, started, logs, error_type.as_deref().unwrap_or("Runtime.InitError"), message, body, LogSource::Function)
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

    // tidy:warm-path-begin (`cargo xtask tidy`: no store call in here)
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
        // An instance beyond its CPU share gets the event once its share has paid the debt
        // (a little at a time, rather than the kernel stopping it for a period); the wait
        // is the platform's, outside the invocation's duration and deadline.
        if let Some(pacer) = &instance.pacer {
            let wait = pacer.wait();
            if !wait.is_zero() {
                use std::sync::atomic::Ordering::Relaxed;
                let held = Instant::now();
                tokio::time::sleep(wait).await;
                let waited = u64::try_from(held.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.inner.pacing.held.fetch_add(1, Relaxed);
                self.inner.pacing.waited_us.fetch_add(waited, Relaxed);
            }
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let deadline_ms = warden_types::now_millis() + timeout.as_millis() as i64;
        let (reply_tx, reply_rx) = oneshot::channel();
        let function = &config.name;
        self.notify(
            &instance.logs,
            &InvocationEvent::Started {
                function,
                version: &config.version,
                alias: alias_of(request),
                request_id,
                keep_tail: request.tail,
            },
        );
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
                _ = tokio::time::sleep_until(deadline) => Ok(None),
            }
        };
        let (outcome, streamed) = match outcome {
            Ok(Some(Outcome::Streaming(s))) => {
                stream::relay(
                    s,
                    request.stream.as_ref(),
                    &config.version,
                    instance,
                    deadline,
                    warden_types::limits::SYNC_PAYLOAD_BYTES,
                )
                .await
            }
            other => (other, false),
        };
        let (payload, function_error) = match outcome {
            Ok(Some(Outcome::Response(body))) => (body, None),
            Ok(Some(Outcome::FunctionError { body, .. })) => (body, Some("Unhandled")),
            // `relay` resolves every stream into one of the other outcomes.
            Ok(Some(Outcome::Streaming(_))) => {
                instance.doom();
                (
                    error_json(
                        "Runtime.InvalidStateTransition",
                        "a streamed response did not end",
                    ),
                    Some("Unhandled"),
                )
            }
            Ok(Some(Outcome::ResponseTooLarge)) => {
                // The runtime's `/response` was refused, possibly mid-upload; runtimes
                // differ in whether they survive that (`lambda_runtime` exits, at once or a
                // moment later), so the instance is replaced rather than trusted with the
                // next event, which it would otherwise fail with `Runtime.ExitError`.
                instance.doom();
                (
                    error_json(
                        "Function.ResponseSizeTooLarge",
                        &format!(
                        "Response payload size exceeded maximum allowed payload size ({} bytes).",
                        warden_types::limits::SYNC_PAYLOAD_BYTES
                    ),
                    ),
                    Some("Unhandled"),
                )
            }
            Ok(None) => {
                instance.doom();
                let seconds = timeout.as_secs_f64();
                self.notify(
                    &instance.logs,
                    &InvocationEvent::TimedOut {
                        function,
                        request_id,
                        seconds,
                    },
                );
                (
                    error_json("Sandbox.Timedout", &format!("RequestId: {request_id} Error: Task timed out after {seconds:.2} seconds")),
                    Some("Unhandled"),
                )
            }
            Err(status) => {
                instance.doom();
                let message =
                    format!("RequestId: {request_id} Error: Runtime exited with error: {status}");
                self.notify(
                    &instance.logs,
                    &InvocationEvent::Exited {
                        function,
                        request_id,
                        status,
                    },
                );
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
            memory: Some(Arc::clone(&instance.peak_memory)),
            init_ms,
            json: config.logging.json,
        };
        // A failed instance may be gone soon: read its memory while it is still there.
        self.notify(
            &instance.logs,
            &InvocationEvent::Finished {
                function,
                version: &config.version,
                alias: alias_of(request),
                report: &report,
                function_error: function_error.is_some(),
                instance_ending: function_error.is_some(),
            },
        );
        let tail = instance.logs.take_tail();
        InvokeResponse {
            payload,
            function_error,
            log_tail: tail.map(|t| t.last_4k().to_owned()),
            executed_version: config.version.clone(),
            streamed,
        }
    }

    // tidy:warm-path-end
    /// Reports a refused invocation to the observers and makes its error.
    fn throttled(&self, function: &FunctionName, reason: ThrottleReason) -> InvokeError {
        self.observe(&InvocationEvent::Throttled { function, reason });
        InvokeError::Throttled(reason)
    }

    // tidy:warm-path-begin (`cargo xtask tidy`: no store call in here)
    /// Hands an event to the invocation's log, then to every observer.
    fn notify(&self, log: &LogCapture, event: &InvocationEvent<'_>) {
        log.observe(event);
        self.observe(event);
    }

    /// Hands an event to every observer, and a sandbox kill to the security log. (`SIGSYS`
    /// ends a process that made a system call its seccomp filter forbids.)
    fn observe(&self, event: &InvocationEvent<'_>) {
        let killed = match event {
            InvocationEvent::TimedOut {
                function,
                request_id,
                ..
            } => Some((function, request_id, "timeout")),
            InvocationEvent::Exited {
                function,
                request_id,
                status: ExitStatus::OutOfMemory,
            } => Some((function, request_id, "out-of-memory")),
            InvocationEvent::Exited {
                function,
                request_id,
                status: ExitStatus::Signal(SIGSYS),
            } => Some((function, request_id, "forbidden system call (seccomp)")),
            _ => None,
        };
        if let Some((function, request_id, reason)) = killed {
            self.inner.security.record(serde_json::json!({
                "event": "SandboxKill",
                "function": function.as_str(),
                "requestId": request_id,
                "reason": reason,
            }));
        }
        for observer in &self.inner.observers {
            observer.observe(event);
        }
    }

    /// The security log, which the API also writes to.
    pub fn security_log(&self) -> &security::SecurityLog {
        &self.inner.security
    }

    fn observe_async(&self, event: &events::AsyncEvent<'_>) {
        for observer in &self.inner.observers {
            observer.observe_async(event);
        }
    }

    // tidy:warm-path-end
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of a failed invocation's answer and log, each needed once"
    )]
    fn failure(
        &self,
        config: &FunctionVersion,
        request_id: &str,
        tail: bool,
        alias: Option<&str>,
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
            alias,
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
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of a failed invocation's answer and log, each needed once"
    )]
    fn failure_with_body(
        &self,
        config: &FunctionVersion,
        request_id: &str,
        tail: bool,
        alias: Option<&str>,
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
            memory: None,
            init_ms: Some(duration_ms),
            json: config.logging.json,
        };
        // Without an instance, the invocation's log is framed all the same.
        let detached;
        let log = match logs {
            Some(capture) => capture,
            None => {
                detached = LogCapture::detached(
                    config.name.clone(),
                    logs::PlatformLines::of(&config.logging),
                    self.inner.logs.clone(),
                );
                &detached
            }
        };
        let function = &config.name;
        self.notify(
            log,
            &InvocationEvent::Started {
                function,
                version: &config.version,
                alias,
                request_id,
                keep_tail: tail,
            },
        );
        self.notify(
            log,
            &InvocationEvent::InitFailed {
                function,
                request_id,
                error_type,
                message: &message,
                source,
            },
        );
        self.notify(
            log,
            &InvocationEvent::Finished {
                function,
                version: &config.version,
                alias,
                report: &report,
                function_error: true,
                instance_ending: true,
            },
        );
        let tail_text = log.take_tail().map(|t| t.last_4k().to_owned());
        InvokeResponse {
            payload: body,
            function_error: Some("Unhandled"),
            log_tail: tail_text,
            executed_version: config.version.clone(),
            streamed: false,
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
                        !i.is_usable()
                            || now.duration_since(*lock(&i.last_used))
                                >= self.inner.config.idle_timeout
                            || now.duration_since(i.spawned_at) >= MAX_INSTANCE_AGE
                    });
                    *idle = keep;
                    old
                };
                for instance in expired {
                    tracing::debug!(instance = instance.id.0, "stopping idle instance");
                    instance.doom();
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

/// The name of an instance's role session: the function's name, which STS accepts as a
/// session name except when it is one character long (STS wants at least two), then
/// followed by `_`.
fn role_session_name(function: &FunctionName) -> String {
    let name = function.as_str();
    if name.len() < 2 {
        format!("{name}_")
    } else {
        name.to_owned()
    }
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
    use std::pin::Pin;
    use warden_executor::{ExecutorError, InstanceId, InstanceSpec, Prepared, SpawnedInstance};

    /// Records kills; spawns nothing.
    #[derive(Default)]
    struct Kills(Mutex<Vec<InstanceId>>);

    impl Executor for Kills {
        fn prepare(&self, _code_dir: &std::path::Path) -> Result<Prepared, ExecutorError> {
            Err(ExecutorError::ZygoteGone)
        }
        fn spawn(
            &self,
            _prepared: Prepared,
            _spec: InstanceSpec,
        ) -> Pin<
            Box<
                dyn std::future::Future<Output = Result<SpawnedInstance, ExecutorError>>
                    + Send
                    + '_,
            >,
        > {
            Box::pin(async { Err(ExecutorError::ZygoteGone) })
        }
        fn kill(&self, id: InstanceId) {
            lock(&self.0).push(id);
        }
        fn describe(&self) -> String {
            "kill recorder".into()
        }
    }

    /// An instance whose "process" is alive until the returned sender reports its exit.
    fn instance(
        id: u64,
        executor: &Arc<Kills>,
        budget: &Arc<MemoryBudget>,
        dir: &std::path::Path,
    ) -> (Arc<Instance>, oneshot::Sender<ExitStatus>) {
        let store: Arc<dyn Store> = Arc::new(
            warden_store::sqlite::SqliteStore::open(&dir.join(format!("{id}.db"))).unwrap(),
        );
        let (out_r, _out_w) = std::io::pipe().unwrap();
        let (err_r, _err_w) = std::io::pipe().unwrap();
        let name = FunctionName::new("f").unwrap();
        let logs = LogCapture::start(
            name,
            "2026/12/04/[$LATEST]test".into(),
            logs::PlatformLines::Text,
            Default::default(),
            LogSink::start(store, LogLimits::default()),
            out_r.into(),
            err_r.into(),
        )
        .unwrap();
        let kms = warden_kms::Kms::open(
            &dir.join(format!("kms-{id}")),
            warden_kms::MasterKey::generate().unwrap(),
            "123456789012",
            "us-east-1",
        )
        .unwrap();
        let blobs_dir = dir.join(format!("blobs-{id}"));
        let blobs = warden_store::BlobStore::open(
            &blobs_dir,
            &blobs_dir,
            warden_kms::envelope::CodeSealer::new(kms),
        )
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (exit_tx, exit_rx) = oneshot::channel();
        let lifetime = Lifetime {
            id: warden_executor::InstanceId(id),
            executor: Arc::clone(executor) as Arc<dyn Executor>,
            memory: budget.try_reserve(640).unwrap(),
            code: blobs.pin("code"),
            layers: None,
        };
        let i = Instance::new(
            logs::PeakMemory::open(1),
            None,
            listener,
            Vec::new(),
            None,
            exit_rx,
            logs,
            Instant::now(),
            lifetime,
        )
        .unwrap();
        (Arc::new(i), exit_tx)
    }

    #[tokio::test]
    async fn a_doomed_instance_is_never_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let kills = Arc::new(Kills::default());
        let budget = MemoryBudget::new(2048);
        let (a, a_exit) = instance(1, &kills, &budget, dir.path());
        let pool = Pool::new();

        pool.put(Arc::clone(&a), false);
        let taken = pool.take().expect("a usable instance comes back");
        assert!(Arc::ptr_eq(&taken, &a));

        // The engine decides to end it; the process has not exited yet (the kill is
        // asynchronous), which is exactly when it used to be reused.
        a.doom();
        a.doom();
        assert_eq!(*lock(&kills.0), [InstanceId(1)], "killed once");
        assert!(!a.has_exited() && !a.is_usable());
        pool.put(Arc::clone(&a), false);
        assert!(
            pool.take().is_none(),
            "a doomed instance never goes back to a pool"
        );

        // Its memory counts until its process is gone, then comes back.
        assert_eq!(budget.used_mb(), 640);
        a_exit.send(ExitStatus::Signal(9)).unwrap();
        a.exited().await;
        assert_eq!(budget.used_mb(), 0);
    }

    #[tokio::test]
    async fn retired_pools_and_a_stopping_engine_end_what_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let kills = Arc::new(Kills::default());
        let budget = MemoryBudget::new(2048);
        let (a, _a_exit) = instance(1, &kills, &budget, dir.path());
        let (b, _b_exit) = instance(2, &kills, &budget, dir.path());
        let (c, _c_exit) = instance(3, &kills, &budget, dir.path());
        let pool = Pool::new();

        pool.put(Arc::clone(&a), true);
        assert!(
            pool.take().is_none(),
            "nothing is kept while the engine stops"
        );
        pool.put(Arc::clone(&b), false);
        pool.retire();
        pool.put(Arc::clone(&c), false);
        assert!(pool.take().is_none());
        assert_eq!(
            *lock(&kills.0),
            [InstanceId(1), InstanceId(2), InstanceId(3)],
            "every one of them was ended"
        );
    }
}

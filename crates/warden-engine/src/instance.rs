//! One running function instance: its process, Runtime API channel, log capture, exit
//! watch and, when sandboxed, the relay from its in-namespace API listener to Warden's API;
//! plus the environment Lambda gives a function.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use warden_executor::{
    Egress, Executor, ExitStatus, InstanceId, InstanceLimits, InstanceSpec, Mount, Placement,
};
use warden_runtime_api::InstanceChannel;
use warden_runtimes::RuntimeTable;
use warden_store::blobs::BlobPin;
use warden_types::{FunctionVersion, Region, Runtime};

use crate::logs::LogCapture;
use crate::memory::{DyingMark, MemoryGrant};
use crate::RoleCredentials;

pub struct Instance {
    pub id: InstanceId,
    pub channel: InstanceChannel,
    pub logs: Arc<LogCapture>,
    /// What its `REPORT` lines read their peak memory from.
    pub peak_memory: Arc<crate::logs::PeakMemory>,
    /// What holds its events while it is beyond its CPU share (instances limited to a
    /// fraction of a CPU).
    pub pacer: Option<crate::pacing::CpuPacer>,
    pub exit: watch::Receiver<Option<ExitStatus>>,
    /// When the engine asked for the process: the start of the init phase.
    pub spawned_at: Instant,
    pub last_used: Mutex<Instant>,
    /// Whether an invocation already ran here (only the first reports `Init Duration`).
    pub used: std::sync::atomic::AtomicBool,
    /// Set, once and for good, when the engine decides to end the instance (see
    /// [`Instance::doom`]).
    doomed: AtomicBool,
    /// Counts the instance's memory as about to come back once it is doomed.
    memory_dying: DyingMark,
    executor: Arc<dyn Executor>,
    /// The relays of the instance's API and extension listeners; they end with it.
    relays: Vec<JoinHandle<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // The relay already stops when the process exits; this covers an instance dropped
        // before that is observed, so no relay task or socket outlives it.
        for relay in &self.relays {
            relay.abort();
        }
    }
}

/// What the engine needs to end an instance, and what the instance holds until its
/// process is gone.
pub struct Lifetime {
    pub id: InstanceId,
    pub executor: Arc<dyn Executor>,
    /// Its share of the host memory budget, given back once the process has been reaped
    /// (before anyone waiting on [`Instance::exited`] hears of it).
    pub memory: MemoryGrant,
    /// Its code, pinned until the process is gone, so that garbage collection never
    /// removes code a live instance runs, even after its version is deleted.
    pub code: BlobPin,
    /// The merged tree of its layers (its `/opt`), pinned likewise.
    pub layers: Option<BlobPin>,
}

impl Instance {
    #[expect(
        clippy::too_many_arguments,
        reason = "each part of an instance comes from a different place"
    )]
    pub fn new(
        peak_memory: crate::logs::PeakMemory,
        pacer: Option<crate::pacing::CpuPacer>,
        runtime_api: std::net::TcpListener,
        relayed: Vec<(std::net::TcpListener, SocketAddr)>,
        dns: Option<DnsService>,
        exited: tokio::sync::oneshot::Receiver<ExitStatus>,
        logs: Arc<LogCapture>,
        spawned_at: Instant,
        lifetime: Lifetime,
    ) -> std::io::Result<Self> {
        let Lifetime {
            id,
            executor,
            memory,
            code,
            layers,
        } = lifetime;
        let memory_dying = memory.dying_mark();
        let channel = InstanceChannel::serve(runtime_api)?;
        let (tx, rx) = watch::channel(None);
        let mut relays = relayed
            .into_iter()
            .map(|(listener, upstream)| relay_api(listener, upstream, rx.clone()))
            .collect::<std::io::Result<Vec<_>>>()?;
        if let Some(dns) = dns {
            relays.push(serve_dns(dns, rx.clone())?);
        }
        tokio::spawn(async move {
            let status = exited.await.unwrap_or(ExitStatus::Lost);
            drop((memory, code, layers));
            let _ = tx.send(Some(status));
        });
        Ok(Self {
            id,
            channel,
            logs,
            peak_memory: Arc::new(peak_memory),
            pacer,
            exit: rx,
            spawned_at,
            last_used: Mutex::new(Instant::now()),
            used: std::sync::atomic::AtomicBool::new(false),
            doomed: AtomicBool::new(false),
            memory_dying,
            executor,
            relays,
        })
    }

    pub fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Ends the instance: marks it doomed, so that it never takes another invocation and
    /// is never returned to a pool, then asks the executor to kill it. The only way the
    /// engine kills an instance (timeouts, exits, init failures, retirement, idleness,
    /// eviction, shutdown): the kill is asynchronous, so the process may still look alive
    /// for a moment, and the mark is what keeps it from being reused meanwhile.
    /// Idempotent.
    pub fn doom(&self) {
        if !self.doomed.swap(true, Ordering::AcqRel) {
            self.memory_dying.mark();
            self.executor.kill(self.id);
        }
    }

    /// Whether the instance may take an invocation: not doomed and not exited.
    pub fn is_usable(&self) -> bool {
        !self.doomed.load(Ordering::Acquire) && !self.has_exited()
    }

    /// Resolves with the exit status once the process has ended.
    pub async fn exited(&self) -> ExitStatus {
        let mut rx = self.exit.clone();
        let status = match rx.wait_for(|s| s.is_some()).await {
            Ok(s) => s.unwrap_or(ExitStatus::Lost),
            Err(_) => ExitStatus::Lost,
        };
        status
    }
}

/// Most connections one instance may have relayed to the API at once. An SDK keeps a
/// handful (boto3's pool holds 10); beyond the cap the relay stops accepting, so further
/// connections wait in the listener's backlog inside the instance's namespace and cost the
/// server nothing, however many the function opens. Each relayed connection costs the
/// server three descriptors (both ends here and the API's).
pub const RELAY_CONNECTIONS_PER_INSTANCE: usize = 64;

/// Relays every connection accepted on a sandboxed instance's API listener (or its
/// Parameters and Secrets extension listener) to Warden's API at `upstream`, at most [`RELAY_CONNECTIONS_PER_INSTANCE`] at a time, until the instance
/// exits; then the listener and every relayed connection close (the [`JoinSet`] aborts its
/// tasks when dropped). The relay adds no trust: the API authenticates each request, signed
/// with the instance's role credentials.
fn relay_api(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    mut exit: watch::Receiver<Option<ExitStatus>>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                // The watch guard is not `Send`: drop it inside.
                () = async { drop(exit.wait_for(Option::is_some).await) } => break,
                accepted = listener.accept(), if connections.len() < RELAY_CONNECTIONS_PER_INSTANCE => {
                    match accepted {
                        Ok((inbound, _)) => {
                            connections.spawn(relay_connection(inbound, upstream));
                        }
                        Err(e) => {
                            // Out of descriptors or an aborted handshake: back off instead of
                            // spinning, the instance's client retries.
                            tracing::debug!(error = %e, "api relay accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }))
}

/// An instance's resolver socket and who answers it.
pub struct DnsService {
    /// The UDP socket at `127.0.0.1:53` inside the instance.
    pub socket: std::net::UdpSocket,
    /// The resolver.
    pub resolver: Arc<warden_dns::Resolver>,
    /// Who the instance is, for the query log and the DNS firewall.
    pub client: warden_dns::Client,
}

/// Queries one instance may have in flight at once; more are dropped (its stub resolver
/// retries), so that a query flood costs the server a bounded number of tasks.
pub const DNS_QUERIES_IN_FLIGHT: usize = 64;

/// Answers the instance's DNS queries until it exits.
fn serve_dns(
    dns: DnsService,
    mut exit: watch::Receiver<Option<ExitStatus>>,
) -> std::io::Result<JoinHandle<()>> {
    dns.socket.set_nonblocking(true)?;
    let socket = Arc::new(tokio::net::UdpSocket::from_std(dns.socket)?);
    let resolver = dns.resolver;
    let client = Arc::new(dns.client);
    Ok(tokio::spawn(async move {
        let mut in_flight = JoinSet::new();
        let mut buf = vec![0u8; warden_dns::MAX_MESSAGE];
        loop {
            tokio::select! {
                () = async { drop(exit.wait_for(Option::is_some).await) } => break,
                received = socket.recv_from(&mut buf) => {
                    let Ok((n, peer)) = received else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    if in_flight.len() >= DNS_QUERIES_IN_FLIGHT {
                        continue;
                    }
                    let query = buf[..n].to_vec();
                    let (socket, resolver, client) =
                        (Arc::clone(&socket), Arc::clone(&resolver), Arc::clone(&client));
                    in_flight.spawn(async move {
                        if let Some(reply) = resolver.answer(&client, &query).await {
                            let _ = socket.send_to(&reply, peer).await;
                        }
                    });
                }
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
    }))
}

/// Copies bytes both ways until the API ends the connection. The API closing its side ends
/// the relayed connection at once, whatever the instance does with its own: HTTP/1 has
/// nothing more to carry, and an instance holding its end open must not keep the server's
/// descriptors (the API closes idle connections; the relay follows).
async fn relay_connection(mut inbound: TcpStream, upstream: SocketAddr) {
    use tokio::io::AsyncWriteExt;
    // Requests are small and latency-bound (a SigV4-signed call and its answer).
    let _ = inbound.set_nodelay(true);
    let mut outbound = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%upstream, error = %e, "api relay cannot reach the api");
            return;
        }
    };
    let _ = outbound.set_nodelay(true);
    let (mut from_instance, mut to_instance) = inbound.split();
    let (mut from_api, mut to_api) = outbound.split();
    let requests = async {
        let _ = tokio::io::copy(&mut from_instance, &mut to_api).await;
        // The instance finished sending; its answer may still be on the way.
        let _ = to_api.shutdown().await;
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::io::copy(&mut from_api, &mut to_instance) => {}
        () = requests => {}
    }
}

/// Where the runtime of a function version comes from.
pub struct RuntimeSettings<'a> {
    /// The interpreter behind each managed runtime.
    pub runtimes: &'a RuntimeTable,
    /// The host directory holding Warden's runtime bootstraps (shown at
    /// [`RUNTIME_ROOT`]).
    pub runtime_dir: &'a Path,
    pub region: &'a Region,
    /// Warden's API as the host reaches it (`http://IP:PORT`); an instance whose
    /// [`Placement`] names another endpoint uses that one instead.
    pub api_endpoint: &'a str,
    /// How the instance's CPU time is limited.
    pub cpu: CpuScaling,
}

/// Why an instance cannot start for a reason of its configuration or code; the caller
/// gets it as `Runtime.InvalidEntrypoint`.
#[derive(Debug, thiserror::Error)]
pub enum EntrypointError {
    /// The stored runtime is not one this engine runs.
    #[error("unsupported runtime `{0}`")]
    UnsupportedRuntime(String),
    /// A `provided` function's code has no `bootstrap` file.
    #[error("Couldn't find valid bootstrap(s): [/var/task/bootstrap]")]
    MissingBootstrap,
    /// No interpreter serves the function's runtime on this host (any more).
    #[error("{0}")]
    RuntimeUnavailable(String),
    /// The function has layers, which need an instance with a filesystem of its own.
    #[error("functions with layers need the sandbox: their layers are shown at /opt, which a plain process (--insecure-no-sandbox) cannot be given")]
    LayersNeedSandbox,
}

/// Where a function's layers appear inside an instance.
pub const OPT_ROOT: &str = "/opt";

/// Where a managed runtime's interpreter installation appears inside an instance.
pub const LANG_ROOT: &str = "/var/lang";
/// Where Warden's runtime bootstraps appear inside an instance.
pub const RUNTIME_ROOT: &str = "/var/runtime";

/// Processes and threads one instance may have: enough for any runtime's thread pools,
/// few enough that a fork bomb stops in milliseconds.
pub const PIDS_PER_INSTANCE: u32 = 1024;
/// Memory that buys one full vCPU on Lambda.
pub const MB_PER_VCPU: u32 = 1769;
/// Floor of the CPU share, in percent of one CPU.
pub const MIN_CPU_PERCENT: u32 = 5;

/// CPU share of a function of `memory_mb`, in percent of one CPU: Lambda's proportional
/// rule (1,769 MB = one vCPU, 10,240 MB = about 5.8 vCPUs), rounded up, at least
/// [`MIN_CPU_PERCENT`].
pub fn cpu_percent(memory_mb: u32) -> u32 {
    (memory_mb.saturating_mul(100))
        .div_ceil(MB_PER_VCPU)
        .max(MIN_CPU_PERCENT)
}

/// How an instance's CPU time is limited (`warden serve --cpu-scaling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuScaling {
    /// Lambda's rule: CPU in proportion to memory ([`cpu_percent`]), enforced as a quota.
    #[default]
    Lambda,
    /// No CPU quota: every instance may use whole CPUs, for a developer who wants full
    /// speed locally. Memory, processes and `/tmp` stay limited.
    Off,
}

/// The limits an instance of `config` runs under: its memory and `/tmp` as configured,
/// CPU in proportion to memory (unless `cpu` is [`CpuScaling::Off`]),
/// [`PIDS_PER_INSTANCE`], and no network but the relay.
pub fn instance_limits(config: &FunctionVersion, cpu: CpuScaling) -> InstanceLimits {
    InstanceLimits {
        memory_mb: config.memory_mb,
        tmp_mb: config.ephemeral_storage_mb,
        pids_max: PIDS_PER_INSTANCE,
        cpu_percent: match cpu {
            CpuScaling::Lambda => cpu_percent(config.memory_mb),
            CpuScaling::Off => 0,
        },
        egress: Egress::RelayOnly,
    }
}

/// The services Warden serves, by the name the AWS SDKs give their service-specific
/// endpoint variable (`AWS_ENDPOINT_URL_<NAME>`: the service id, upper-cased, spaces as
/// underscores, so Secrets Manager is `SECRETS_MANAGER`). Each instance gets one such variable per
/// entry, pointing at Warden, and no global `AWS_ENDPOINT_URL`: an SDK call to any other
/// service (S3, DynamoDB...) then goes where it would go on Lambda instead of to Warden.
/// A service Warden starts serving adds its entry here, and nowhere else.
pub const SERVED_SERVICES: &[&str] = &[
    "LAMBDA",
    "IAM",
    "STS",
    "KMS",
    "SECRETS_MANAGER",
    "EC2",
    "ROUTE53RESOLVER",
];

/// Builds the process Lambda would start for `config`, complete: the program and its
/// arguments, and every environment variable (the function's own, Lambda's, the Runtime
/// API address, Warden's API endpoints and the role's credentials, and `log_stream`, the
/// instance's log stream from [`log_stream_name`]), written once from
/// where the executor said things will be (`placement`), with `code_dir` the host
/// directory of the code (checked for a `bootstrap`) and `opt_dir` that of the function's
/// merged layers, if it has any.
/// A new instance's log stream, named as Lambda names them: the day it started, the
/// version in brackets, and a random id (`2026/12/04/[$LATEST]0f3c...`).
pub fn log_stream_name(version: &str) -> String {
    format!(
        "{}/[{}]{}",
        &warden_types::iso_timestamp(warden_types::now_millis())[..10].replace('-', "/"),
        version,
        uuid::Uuid::new_v4().simple()
    )
}

#[allow(
    clippy::too_many_arguments,
    reason = "each is a distinct input of the one spec, all borrowed from the spawn that builds it"
)]
pub fn instance_spec(
    config: &FunctionVersion,
    environment: &std::collections::BTreeMap<String, String>,
    code_dir: &Path,
    opt_dir: Option<&Path>,
    placement: &Placement,
    rt: &RuntimeSettings<'_>,
    credentials: &RoleCredentials,
    log_stream: &str,
) -> Result<InstanceSpec, EntrypointError> {
    let runtime = config
        .runtime()
        .ok_or_else(|| EntrypointError::UnsupportedRuntime(config.runtime.clone()))?;
    let task_root = placement.code_root.to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> = environment
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let platform = [
        ("AWS_REGION", rt.region.to_string()),
        ("AWS_DEFAULT_REGION", rt.region.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", config.name.to_string()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", config.version.clone()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", config.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned()),
        (
            "AWS_EXECUTION_ENV",
            format!("AWS_Lambda_{}", runtime.as_str()),
        ),
        ("AWS_LAMBDA_RUNTIME_API", placement.runtime_api.clone()),
        ("_HANDLER", config.handler.clone()),
        ("LAMBDA_TASK_ROOT", task_root.clone()),
        ("LAMBDA_RUNTIME_DIR", RUNTIME_ROOT.into()),
        ("TZ", ":UTC".into()),
        ("HOME", "/tmp".into()),
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            credentials.secret_access_key.clone(),
        ),
        ("AWS_SESSION_TOKEN", credentials.session_token.clone()),
    ];
    env.extend(platform.into_iter().map(|(k, v)| (k.to_owned(), v)));
    set_default(&mut env, "LANG", "en_US.UTF-8".into());
    // `LogFormat` JSON: the runtime writes JSON records and filters by the level.
    if config.logging.json {
        replace_var(&mut env, "AWS_LAMBDA_LOG_FORMAT", "JSON".into());
        replace_var(
            &mut env,
            "AWS_LAMBDA_LOG_LEVEL",
            config.logging.application_level().to_owned(),
        );
    }
    let api_endpoint = placement.api_endpoint.as_deref().unwrap_or(rt.api_endpoint);
    point_sdks_at_warden(&mut env, api_endpoint);
    let mut mounts = Vec::new();
    if placement.private_filesystem {
        // `localhost` resolves inside, as on Lambda (the extension endpoint is reached as
        // `localhost:2773`).
        mounts.push(Mount {
            host: rt.runtime_dir.join(warden_runtimes::bootstrap::HOSTS),
            inside: "/etc/hosts".into(),
        });
        // Names resolve through the resolver Warden serves on the instance's loopback
        // (instances with a network link have it; the others get a refusal at once).
        mounts.push(Mount {
            host: rt.runtime_dir.join(warden_runtimes::bootstrap::RESOLV_CONF),
            inside: "/etc/resolv.conf".into(),
        });
    }
    if let Some(opt) = opt_dir {
        if !placement.private_filesystem {
            return Err(EntrypointError::LayersNeedSandbox);
        }
        mounts.push(Mount {
            host: opt.to_path_buf(),
            inside: OPT_ROOT.into(),
        });
    }
    let (program, args) = match &runtime {
        Runtime::Provided(_) => {
            if !code_dir.join("bootstrap").is_file() {
                return Err(EntrypointError::MissingBootstrap);
            }
            set_default(
                &mut env,
                "PATH",
                "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into(),
            );
            (placement.code_root.join("bootstrap"), Vec::new())
        }
        Runtime::Python(_) | Runtime::Node(_) => {
            let interpreter = rt.runtimes.interpreter(runtime.as_str()).ok_or_else(|| {
                EntrypointError::RuntimeUnavailable(
                    rt.runtimes
                        .check(&runtime)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                )
            })?;
            // Inside a sandbox the interpreter's installation and the bootstraps are shown
            // where Lambda has them, and nowhere else; a plain process uses host paths.
            let (lang, runtime_root) = if placement.private_filesystem {
                mounts.push(Mount {
                    host: interpreter.prefix.clone(),
                    inside: LANG_ROOT.into(),
                });
                mounts.push(Mount {
                    host: rt.runtime_dir.to_path_buf(),
                    inside: RUNTIME_ROOT.into(),
                });
                (PathBuf::from(LANG_ROOT), PathBuf::from(RUNTIME_ROOT))
            } else {
                (interpreter.prefix.clone(), rt.runtime_dir.to_path_buf())
            };
            let lang_s = lang.to_string_lossy();
            let runtime_s = runtime_root.to_string_lossy();
            replace_var(&mut env, "LAMBDA_RUNTIME_DIR", runtime_s.to_string());
            set_default(
                &mut env,
                "PATH",
                format!("{lang_s}/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
            );
            set_default(
                &mut env,
                "LD_LIBRARY_PATH",
                format!(
                    "{lang_s}/lib:/lib64:/usr/lib64:{runtime_s}:{runtime_s}/lib:{task_root}:{task_root}/lib:/opt/lib"
                ),
            );
            let executable = lang.join(interpreter.relative_executable());
            let mut args: Vec<String> = match &runtime {
                Runtime::Node(_) => {
                    let major = runtime.language_version().unwrap_or_default();
                    set_default(
                        &mut env,
                        "NODE_PATH",
                        format!(
                            "/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:{runtime_s}/node_modules:{runtime_s}/{}/node_modules:{runtime_s}:{task_root}",
                            warden_runtimes::sdk::NODE_DIR
                        ),
                    );
                    vec![runtime_root
                        .join(warden_runtimes::bootstrap::NODE)
                        .to_string_lossy()
                        .into_owned()]
                }
                _ => {
                    set_default(&mut env, "PYTHONPATH", runtime_s.to_string());
                    // Unbuffered output, as Lambda's runtime makes it; no `site`, so the
                    // installation's own site-packages never join `sys.path`.
                    vec![
                        "-u".into(),
                        "-S".into(),
                        runtime_root
                            .join(warden_runtimes::bootstrap::PYTHON)
                            .to_string_lossy()
                            .into_owned(),
                    ]
                }
            };
            // `AWS_LAMBDA_EXEC_WRAPPER`: Lambda runs the wrapper with the runtime's command
            // line as its arguments.
            let wrapper = config.environment.get("AWS_LAMBDA_EXEC_WRAPPER");
            match wrapper.filter(|w| !w.is_empty()) {
                Some(w) => {
                    let w = match w.strip_prefix(TASK_ROOT_PREFIX) {
                        Some(rest) => placement.code_root.join(rest),
                        None => PathBuf::from(w),
                    };
                    args.insert(0, executable.to_string_lossy().into_owned());
                    (w, args)
                }
                None => (executable, args),
            }
        }
    };
    Ok(InstanceSpec {
        program,
        args,
        env,
        cwd: placement.code_root.clone(),
        mounts,
        limits: instance_limits(config, rt.cpu),
    })
}

/// The code's path inside a sandbox, as a function's variables name it.
const TASK_ROOT_PREFIX: &str = "/var/task/";

/// Adds `key` unless the function's configuration sets it: that is the function's choice.
fn set_default(env: &mut Vec<(String, String)>, key: &str, value: String) {
    if !env.iter().any(|(k, _)| k == key) {
        env.push((key.to_owned(), value));
    }
}

/// Sets `key` to `value`, whatever it was.
fn replace_var(env: &mut Vec<(String, String)>, key: &str, value: String) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value));
}

/// Adds the endpoint variable of every [`SERVED_SERVICES`] entry, with Warden's API
/// endpoint `url` as its value. A variable the function's configuration sets itself is
/// left as it is: that is the function's choice.
fn point_sdks_at_warden(env: &mut Vec<(String, String)>, url: &str) {
    for service in SERVED_SERVICES {
        let name = format!("AWS_ENDPOINT_URL_{service}");
        if env.iter().any(|(key, _)| *key == name) {
            continue;
        }
        env.push((name, url.to_owned()));
    }
}

/// The `errorType` Lambda reports when a runtime process ends without answering:
/// `Runtime.OutOfMemory` when the memory limit killed it, `Runtime.ExitError` otherwise.
pub fn exit_error_type(status: ExitStatus) -> &'static str {
    match status {
        ExitStatus::OutOfMemory => "Runtime.OutOfMemory",
        _ => "Runtime.ExitError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `instance_spec` with the version's own (plain) variables.
    fn spec_of(
        config: &FunctionVersion,
        code_dir: &Path,
        opt_dir: Option<&Path>,
        placement: &Placement,
        rt: &RuntimeSettings<'_>,
        credentials: &RoleCredentials,
    ) -> Result<InstanceSpec, EntrypointError> {
        instance_spec(
            config,
            &config.environment,
            code_dir,
            opt_dir,
            placement,
            rt,
            credentials,
            "2026/12/04/[$LATEST]0123456789abcdef0123456789abcdef",
        )
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn api_relay_forwards_until_the_instance_exits() {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inside = listener.local_addr().unwrap();
        let (exit_tx, exit_rx) = watch::channel(None);
        let relay = relay_api(listener, upstream_addr, exit_rx).unwrap();

        let mut client = TcpStream::connect(inside).await.unwrap();
        let (mut server, _) = upstream.accept().await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut got = [0u8; 16];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n");
        server.write_all(b"HTTP/1.1 200 OK").await.unwrap();
        let mut answer = [0u8; 15];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200 OK");

        exit_tx.send(Some(ExitStatus::Code(0))).unwrap();
        relay.await.unwrap();
        // The relayed connection is closed on both sides, and nothing listens any more.
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
        assert!(TcpStream::connect(inside).await.is_err());
    }

    #[tokio::test]
    async fn the_relay_holds_at_most_its_cap_and_the_rest_wait_in_the_backlog() {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inside = listener.local_addr().unwrap();
        let (_exit_tx, exit_rx) = watch::channel(None);
        let _relay = relay_api(listener, upstream_addr, exit_rx).unwrap();

        // More connections than the cap: all complete their handshake (the backlog)...
        let mut clients = Vec::new();
        for _ in 0..RELAY_CONNECTIONS_PER_INSTANCE + 8 {
            clients.push(TcpStream::connect(inside).await.unwrap());
        }
        // ...but only the cap is relayed.
        let mut relayed = Vec::new();
        for _ in 0..RELAY_CONNECTIONS_PER_INSTANCE {
            relayed.push(upstream.accept().await.unwrap().0);
        }
        let extra = tokio::time::timeout(Duration::from_millis(300), upstream.accept()).await;
        assert!(extra.is_err(), "the relay went beyond its cap");

        // The API closing one connection frees a slot, though the instance keeps its end.
        drop(relayed.pop());
        let next = tokio::time::timeout(Duration::from_secs(30), upstream.accept()).await;
        assert!(next.is_ok(), "a freed slot was not reused");
    }

    #[tokio::test]
    async fn the_instance_sees_the_answer_and_the_end_when_the_api_closes() {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inside = listener.local_addr().unwrap();
        let (_exit_tx, exit_rx) = watch::channel(None);
        let _relay = relay_api(listener, upstream_addr, exit_rx).unwrap();

        let mut client = TcpStream::connect(inside).await.unwrap();
        let (mut server, _) = upstream.accept().await.unwrap();
        server.write_all(b"bye").await.unwrap();
        drop(server);
        // The instance never closes or writes: it still sees the answer, then the end.
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut got))
            .await
            .expect("the relay kept the instance side open");
        assert_eq!(read.unwrap(), 3);
        assert_eq!(got, b"bye");
    }

    #[tokio::test]
    async fn an_answer_still_arrives_after_the_instance_stops_sending() {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inside = listener.local_addr().unwrap();
        let (_exit_tx, exit_rx) = watch::channel(None);
        let _relay = relay_api(listener, upstream_addr, exit_rx).unwrap();

        let mut client = TcpStream::connect(inside).await.unwrap();
        let (mut server, _) = upstream.accept().await.unwrap();
        client.write_all(b"ask").await.unwrap();
        client.shutdown().await.unwrap();
        let mut asked = Vec::new();
        server.read_to_end(&mut asked).await.unwrap();
        assert_eq!(asked, b"ask");
        server.write_all(b"answer").await.unwrap();
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"answer");
    }

    #[test]
    fn cpu_follows_memory_like_lambda() {
        assert_eq!(cpu_percent(1769), 100);
        assert_eq!(cpu_percent(3538), 200);
        assert_eq!(cpu_percent(10240), 579);
        assert_eq!(cpu_percent(128), 8);
        assert_eq!(cpu_percent(64), MIN_CPU_PERCENT);
    }

    fn version(runtime: &str, environment: &[(&str, &str)]) -> FunctionVersion {
        let mut v: FunctionVersion = serde_json::from_value(serde_json::json!({
            "name": "f",
            "version": "$LATEST",
            "runtime": runtime,
            "handler": "app.handler",
            "role": "arn:aws:iam::123456789012:role/r",
            "memory_mb": 3538,
            "timeout_seconds": 3,
            "ephemeral_storage_mb": 1024,
            "environment": {},
            "code_sha256": "x",
            "code_size": 1,
            "revision_id": "r",
            "last_modified_ms": 0,
        }))
        .expect("a valid stored version");
        v.environment = environment
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v
    }

    fn credentials() -> RoleCredentials {
        RoleCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: "token".into(),
        }
    }

    fn value<'a>(spec: &'a InstanceSpec, key: &str) -> Option<&'a str> {
        let mut found = spec.env.iter().filter(|(k, _)| k == key);
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "{key} is set once");
        first
    }

    #[test]
    fn the_environment_is_written_once_from_the_placement() {
        let code = tempfile::tempdir().unwrap();
        std::fs::write(code.path().join("bootstrap"), "").unwrap();
        let region = Region::new("eu-west-1").unwrap();
        let table = runtimes();
        let rt = RuntimeSettings {
            runtimes: &table,
            runtime_dir: Path::new("/srv/warden/runtime"),
            region: &region,
            api_endpoint: "http://127.0.0.1:9700",
            cpu: CpuScaling::Lambda,
        };
        let config = version(
            "provided.al2023",
            // The function's own endpoint for a service is its choice.
            &[("AWS_ENDPOINT_URL_STS", "http://sts.example")],
        );
        let sandboxed = Placement {
            code_root: "/var/task".into(),
            runtime_api: "127.0.0.1:9001".into(),
            api_endpoint: Some("http://127.0.0.1:9002".into()),
            private_filesystem: true,
        };
        let spec = instance_spec(
            &config,
            &config.environment,
            code.path(),
            None,
            &sandboxed,
            &rt,
            &credentials(),
            "2026/12/04/[$LATEST]0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        let inside: Vec<&Path> = spec.mounts.iter().map(|m| m.inside.as_path()).collect();
        assert_eq!(
            inside,
            [Path::new("/etc/hosts"), Path::new("/etc/resolv.conf")],
            "provided runtimes bring everything else"
        );
        assert_eq!(spec.program, Path::new("/var/task/bootstrap"));
        assert_eq!(spec.cwd, Path::new("/var/task"));
        assert_eq!(value(&spec, "LAMBDA_TASK_ROOT"), Some("/var/task"));
        assert_eq!(
            value(&spec, "AWS_LAMBDA_RUNTIME_API"),
            Some("127.0.0.1:9001")
        );
        assert_eq!(
            value(&spec, "AWS_ENDPOINT_URL_LAMBDA"),
            Some("http://127.0.0.1:9002")
        );
        assert_eq!(
            value(&spec, "AWS_ENDPOINT_URL_IAM"),
            Some("http://127.0.0.1:9002")
        );
        assert_eq!(
            value(&spec, "AWS_ENDPOINT_URL_STS"),
            Some("http://sts.example")
        );
        assert_eq!(value(&spec, "AWS_ENDPOINT_URL"), None, "no global endpoint");
        assert_eq!(value(&spec, "AWS_ACCESS_KEY_ID"), Some("ASIAEXAMPLE"));
        assert_eq!(value(&spec, "AWS_SESSION_TOKEN"), Some("token"));
        assert_eq!(
            value(&spec, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            Some("3538")
        );
        assert_eq!(
            spec.limits,
            InstanceLimits {
                memory_mb: 3538,
                tmp_mb: 1024,
                pids_max: PIDS_PER_INSTANCE,
                cpu_percent: 200,
                egress: Egress::RelayOnly,
            }
        );

        // Plain processes see the code where it is and reach the API on the host.
        let plain = Placement {
            code_root: code.path().to_path_buf(),
            runtime_api: "127.0.0.1:41000".into(),
            api_endpoint: None,
            private_filesystem: false,
        };
        let spec = instance_spec(
            &config,
            &config.environment,
            code.path(),
            None,
            &plain,
            &rt,
            &credentials(),
            "2026/12/04/[$LATEST]0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        assert_eq!(spec.program, code.path().join("bootstrap"));
        assert_eq!(
            value(&spec, "AWS_LAMBDA_RUNTIME_API"),
            Some("127.0.0.1:41000")
        );
        assert_eq!(
            value(&spec, "AWS_ENDPOINT_URL_LAMBDA"),
            Some("http://127.0.0.1:9700")
        );
    }

    #[test]
    fn a_missing_bootstrap_or_runtime_is_an_entrypoint_error() {
        let code = tempfile::tempdir().unwrap();
        let region = Region::new("eu-west-1").unwrap();
        let table = runtimes();
        let rt = RuntimeSettings {
            runtimes: &table,
            runtime_dir: Path::new("/srv/warden/runtime"),
            region: &region,
            api_endpoint: "http://127.0.0.1:9700",
            cpu: CpuScaling::Lambda,
        };
        let placement = Placement {
            code_root: "/var/task".into(),
            runtime_api: "127.0.0.1:9001".into(),
            api_endpoint: None,
            private_filesystem: true,
        };
        let missing = spec_of(
            &version("provided.al2023", &[]),
            code.path(),
            None,
            &placement,
            &rt,
            &credentials(),
        );
        assert!(matches!(missing, Err(EntrypointError::MissingBootstrap)));
        let unknown = spec_of(
            &version("cobol85", &[]),
            code.path(),
            None,
            &placement,
            &rt,
            &credentials(),
        );
        assert!(matches!(unknown, Err(EntrypointError::UnsupportedRuntime(r)) if r == "cobol85"));
        let gone = spec_of(
            &version("python3.13", &[]),
            code.path(),
            None,
            &placement,
            &rt,
            &credentials(),
        );
        assert!(
            matches!(&gone, Err(EntrypointError::RuntimeUnavailable(why)) if why.contains("python3.13")),
            "{gone:?}"
        );
    }

    /// A table with Python 3.12 and Node.js 20 installed under `/opt`.
    fn runtimes() -> RuntimeTable {
        use warden_runtimes::{Availability, Interpreter, Language};
        let interpreter = |language, version: &str, prefix: &str, exe: &str| {
            Availability::Ready(Interpreter {
                language,
                version: version.into(),
                executable: format!("{prefix}/{exe}").into(),
                prefix: prefix.into(),
                found_by: "test".into(),
            })
        };
        RuntimeTable::from_entries([
            ("provided.al2023".to_owned(), Availability::Native),
            (
                "python3.12".to_owned(),
                interpreter(Language::Python, "3.12.1", "/opt/py", "bin/python3.12"),
            ),
            (
                "nodejs20.x".to_owned(),
                interpreter(Language::Node, "20.1.0", "/opt/node", "bin/node"),
            ),
            (
                "python3.13".to_owned(),
                Availability::Missing("none here".into()),
            ),
        ])
    }

    #[test]
    fn managed_runtimes_run_the_interpreter_where_lambda_has_it() {
        let code = tempfile::tempdir().unwrap();
        let region = Region::new("eu-west-1").unwrap();
        let table = runtimes();
        let rt = RuntimeSettings {
            runtimes: &table,
            runtime_dir: Path::new("/srv/warden/runtime"),
            region: &region,
            api_endpoint: "http://127.0.0.1:9700",
            cpu: CpuScaling::Lambda,
        };
        let sandboxed = Placement {
            code_root: "/var/task".into(),
            runtime_api: "127.0.0.1:9001".into(),
            api_endpoint: Some("http://127.0.0.1:9002".into()),
            private_filesystem: true,
        };
        let spec = spec_of(
            &version("python3.12", &[("PYTHONPATH", "/var/task/vendor")]),
            code.path(),
            None,
            &sandboxed,
            &rt,
            &credentials(),
        )
        .unwrap();
        assert_eq!(spec.program, Path::new("/var/lang/bin/python3.12"));
        assert_eq!(spec.args, ["-u", "-S", "/var/runtime/python/bootstrap.py"]);
        assert_eq!(
            spec.mounts,
            [
                Mount {
                    host: "/srv/warden/runtime/etc/hosts".into(),
                    inside: "/etc/hosts".into()
                },
                Mount {
                    host: "/srv/warden/runtime/etc/resolv.conf".into(),
                    inside: "/etc/resolv.conf".into()
                },
                Mount {
                    host: "/opt/py".into(),
                    inside: "/var/lang".into()
                },
                Mount {
                    host: "/srv/warden/runtime".into(),
                    inside: "/var/runtime".into()
                },
            ]
        );
        assert_eq!(
            value(&spec, "PYTHONPATH"),
            Some("/var/task/vendor"),
            "the function's own setting wins"
        );
        assert_eq!(value(&spec, "LAMBDA_RUNTIME_DIR"), Some("/var/runtime"));
        assert!(value(&spec, "PATH").unwrap().starts_with("/var/lang/bin:"));
        assert!(value(&spec, "LD_LIBRARY_PATH")
            .unwrap()
            .starts_with("/var/lang/lib:"));
        assert_eq!(
            value(&spec, "AWS_EXECUTION_ENV"),
            Some("AWS_Lambda_python3.12")
        );

        let spec = spec_of(
            &version(
                "nodejs20.x",
                &[("AWS_LAMBDA_EXEC_WRAPPER", "/var/task/wrap")],
            ),
            code.path(),
            Some(Path::new("/srv/warden/blobs/code/merged")),
            &sandboxed,
            &rt,
            &credentials(),
        )
        .unwrap();
        assert_eq!(spec.program, Path::new("/var/task/wrap"));
        assert_eq!(
            spec.args,
            ["/var/lang/bin/node", "/var/runtime/node/index.mjs"]
        );
        assert_eq!(
            spec.mounts[2],
            Mount {
                host: "/srv/warden/blobs/code/merged".into(),
                inside: "/opt".into()
            },
            "the merged layers are shown at /opt"
        );
        assert!(value(&spec, "NODE_PATH")
            .unwrap()
            .starts_with("/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:"));

        // A plain process gets host paths and no mounts.
        let plain = Placement {
            code_root: code.path().to_path_buf(),
            runtime_api: "127.0.0.1:41000".into(),
            api_endpoint: None,
            private_filesystem: false,
        };
        let spec = spec_of(
            &version("python3.12", &[]),
            code.path(),
            None,
            &plain,
            &rt,
            &credentials(),
        )
        .unwrap();
        assert_eq!(spec.program, Path::new("/opt/py/bin/python3.12"));
        assert_eq!(
            spec.args,
            ["-u", "-S", "/srv/warden/runtime/python/bootstrap.py"]
        );
        assert!(spec.mounts.is_empty());
        assert_eq!(value(&spec, "PYTHONPATH"), Some("/srv/warden/runtime"));
    }

    #[test]
    fn credentials_never_show_their_secret_in_debug_output() {
        let shown = format!("{:?}", credentials());
        assert!(shown.contains("ASIAEXAMPLE"));
        assert!(
            !shown.contains("secret") && !shown.contains("token"),
            "{shown}"
        );
    }

    #[test]
    fn out_of_memory_has_its_own_error_type() {
        assert_eq!(
            exit_error_type(ExitStatus::OutOfMemory),
            "Runtime.OutOfMemory"
        );
        assert_eq!(exit_error_type(ExitStatus::Signal(9)), "Runtime.ExitError");
        assert_eq!(exit_error_type(ExitStatus::Code(1)), "Runtime.ExitError");
    }
}

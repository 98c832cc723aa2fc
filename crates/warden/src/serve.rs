//! `warden serve`: opens the data directory, starts the zygote, the engine and the API,
//! and shuts all of it down cleanly on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use warden_store::blobs::BlobStore;
use warden_store::sqlite::SqliteStore;
use warden_store::Store;
use warden_types::{AccountId, NodeId, Region};

/// `--cpu-scaling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CpuScalingArg {
    /// CPU in proportion to memory, as on Lambda; events to an instance below one CPU
    /// paced by its CPU time.
    Lambda,
    /// No CPU quota and no pacing.
    Off,
}

/// Options of `warden serve`; every one has a secure default.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Loopback only unless `--allow-non-loopback` is given.
    #[arg(long, env = "WARDEN_LISTEN", default_value = "127.0.0.1:9700")]
    listen: SocketAddr,
    /// Address function URLs are served on (their own listener, with its own connection
    /// cap and body budget). Loopback only unless `--allow-non-loopback` is given.
    #[arg(long, env = "WARDEN_URL_LISTEN", default_value = "127.0.0.1:9701")]
    url_listen: SocketAddr,
    /// Address of the metrics listener (`GET /metrics`, the Prometheus text format;
    /// unauthenticated, as Prometheus scrapes). Loopback only unless `--allow-non-loopback`
    /// is given; `off` serves no metrics listener.
    #[arg(long, env = "WARDEN_METRICS_LISTEN", default_value = "127.0.0.1:9702")]
    metrics_listen: MetricsListen,
    /// The domain function URLs' host names end in:
    /// `<url-id>.lambda-url.<region>.<domain>`.
    #[arg(long, env = "WARDEN_URL_DOMAIN", default_value = "localhost")]
    url_domain: String,
    /// Requests per second one function URL serves, from all sources together; beyond it
    /// 429 with `Retry-After`.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    url_rate: u32,
    /// Requests per second one source address may send to function URLs, all together.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    url_source_rate: u32,
    /// Requests one function URL serves at once; beyond it 429.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    url_max_in_flight: u32,
    /// A network SNS may deliver `http` and `https` notifications to (repeatable). By
    /// default only loopback, so that whoever may subscribe cannot make the server reach
    /// other hosts; name the networks of your webhook receivers (`10.1.0.0/16`).
    #[arg(long = "sns-allow-network", value_name = "CIDR", default_values = ["127.0.0.0/8", "::1/128"])]
    sns_allow_network: Vec<ipnet::IpNet>,
    /// How instances' CPU time is limited: `lambda` (CPU in proportion to memory, as on
    /// Lambda: 1,769 MB is one full CPU, the default 128 MB about 7 %, with the events to
    /// an instance below one CPU paced by its CPU time, so that short invocations are not
    /// stopped for a whole quota period) or `off` (whole CPUs, for a developer who wants
    /// full speed locally; memory stays limited).
    #[arg(long = "cpu-scaling", value_enum, default_value_t = CpuScalingArg::Lambda)]
    cpu_scaling: CpuScalingArg,
    /// Threads that run the server's async work: the APIs, the Runtime API of every
    /// instance and the engine (tokio's workers; blocking work has threads of its own).
    /// Default: half the CPUs this process may use, at least one. An invoke's other half
    /// of the work runs in the function's own process, and on two CPUs one worker served
    /// as many invokes as two with half the context switches (BENCHMARKS.md).
    #[arg(long, env = "WARDEN_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
    /// A PEM file of certificate authorities SNS trusts for `https` endpoints, besides
    /// the host's certificate store (an internal CA; the only trust on an air-gapped host).
    #[arg(long = "sns-ca-file", value_name = "PEM")]
    sns_ca_file: Option<PathBuf>,
    /// What a known vulnerability in a deployed package (function code or layer) does:
    /// `warn` (logged; the deploy proceeds), `block:low|medium|high|critical` (a finding
    /// rated at or above it refuses the deploy), or `off` (no scanning). Packages are
    /// matched against the advisory database `warden scan db import` loads.
    #[arg(long, env = "WARDEN_DEPENDENCY_SCAN", default_value = "warn")]
    dependency_scan: String,
    /// Refuse every function without a code signing config (`CodeSigningConfigArn` on
    /// CreateFunction), and the removal of a function's config: an account-level guard
    /// Lambda does not have. Functions created before keep running.
    #[arg(long, env = "WARDEN_REQUIRE_CODE_SIGNING")]
    require_code_signing: bool,
    /// Permit listening on a non-loopback address.
    #[arg(long)]
    allow_non_loopback: bool,
    /// Where Warden keeps its state (SQLite metadata, code blobs, logs).
    /// Default: `$XDG_DATA_HOME/warden`, else `~/.local/share/warden`.
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// This server's id among the nodes sharing its store: 1-64 letters, digits, `.`, `-`
    /// or `_`. The async events it runs are leased in its name, and at start it takes back
    /// the leases its previous run held. Default: the id kept in the data directory
    /// (`node-id`), chosen at random on first start; a given id is kept there too.
    #[arg(long, env = "WARDEN_NODE_ID")]
    node_id: Option<NodeId>,
    /// Where functions, versions, aliases, layers, the async queue, logs, code, identity,
    /// KMS keys, secrets, the audit trail, metrics and the other shared state are kept:
    /// `sqlite` (files in the data directory), or
    /// `postgres://USER@HOST:PORT/DATABASE` to share them with other nodes (README,
    /// "Several nodes", lists what stays per node). A URL with a
    /// password is accepted only from `WARDEN_STORE`, never from the command line.
    #[arg(
        long,
        env = "WARDEN_STORE",
        default_value = "sqlite",
        hide_env_values = true
    )]
    store: String,
    /// How many connections this node keeps to a PostgreSQL `--store` (default 8); refused
    /// with the embedded store, which has no connections to size.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    store_connections: Option<u16>,
    /// The NATS server (with JetStream) through which nodes sharing a PostgreSQL `--store`
    /// tell each other of changes, so that each drops its caches within moments:
    /// `nats://HOST:PORT`. A URL with a password is accepted only from `WARDEN_BUS`.
    #[arg(long, env = "WARDEN_BUS", hide_env_values = true)]
    bus: Option<String>,
    #[command(flatten)]
    runtimes: crate::runtime::RuntimeArgs,
    #[command(flatten)]
    master: crate::admin::MasterKeyArgs,
    #[command(flatten)]
    audit: crate::audit::AuditArgs,
    /// Where extracted function code is kept (0700). Default: a directory of this data
    /// directory's own on the first memory-backed file system among `$XDG_RUNTIME_DIR`,
    /// `/run` and `/dev/shm`, so that code is never on disk in the clear (it is extracted
    /// again from its sealed zip after a reboot); without one, `DATA_DIR/blobs`, with a
    /// warning.
    #[arg(long, env = "WARDEN_CODE_DIR", value_name = "PATH")]
    code_dir: Option<PathBuf>,
    /// Region that appears in ARNs.
    #[arg(long, env = "WARDEN_REGION", default_value = "us-east-1")]
    region: String,
    /// Account id in ARNs; chosen at random on first start and kept in the data dir.
    #[arg(long, env = "WARDEN_ACCOUNT_ID")]
    account_id: Option<String>,
    /// Account-wide concurrent executions.
    #[arg(long, default_value_t = warden_types::limits::DEFAULT_ACCOUNT_CONCURRENCY)]
    account_concurrency: u32,
    /// Most memory the running instances may be given together: the sum of their memory
    /// limits (MemorySize plus `/tmp`, which the sandbox charges to the same cgroup) stays
    /// within it. A share of host memory (`80%`; of Warden's own memory cgroup limit when
    /// that is lower) or a size (`16GiB`, `1536MiB`, `16GB`).
    /// Idle instances are evicted to make room; beyond it cold starts get 429 with
    /// `Reason: HostMemoryBudgetExceeded`.
    #[arg(long, env = "WARDEN_MEMORY_BUDGET", default_value = "80%")]
    memory_budget: warden_engine::BudgetSetting,
    /// Seconds an idle instance is kept warm.
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// Milliseconds before the first and second async retry (Lambda: about 60000 and 120000).
    #[arg(long, value_delimiter = ',', default_values_t = [60_000u64, 120_000])]
    async_retry_delays_ms: Vec<u64>,
    /// KiB of output per second one function (all its instances together) may log; a
    /// function printing faster is slowed down (its output pipe is read no faster).
    #[arg(long, default_value_t = warden_types::limits::DEFAULT_LOG_RATE_KIB,
          value_parser = clap::value_parser!(u64).range(1..=1024 * 1024))]
    log_rate_kib: u64,
    /// Days function log lines are kept.
    #[arg(long, default_value_t = warden_types::limits::DEFAULT_LOG_RETENTION_DAYS,
          value_parser = clap::value_parser!(u64).range(1..=36_500))]
    log_retention_days: u64,
    /// MiB all function log lines may take on disk; beyond it the oldest lines go first.
    #[arg(long, default_value_t = warden_types::limits::DEFAULT_LOG_MAX_MIB,
          value_parser = clap::value_parser!(u64).range(1..=1024 * 1024))]
    log_max_mib: u64,
    /// Where functions without a VpcConfig may connect: `deny` (nowhere but Warden's own
    /// services) or `internet` (public addresses; never private ranges, link-local such as
    /// the cloud metadata address, or this host). Functions with a VpcConfig reach what
    /// their security groups allow. Needs root and nftables (see `warden doctor`).
    #[arg(
        long,
        env = "WARDEN_DEFAULT_EGRESS",
        value_enum,
        default_value = "deny"
    )]
    default_egress: crate::firewall::DefaultEgressArg,
    /// The resolver (`IP:PORT`, repeatable) to which queries of functions with network
    /// access are forwarded, after the DNS firewall's rules. Default: the nameservers of
    /// this host's `/etc/resolv.conf`.
    #[arg(long, env = "WARDEN_DNS_UPSTREAM", value_delimiter = ',')]
    dns_upstream: Vec<SocketAddr>,
    /// Seconds between flow log readings (VPC Flow Logs' aggregation interval): each
    /// flow's packets and bytes over the interval become one record.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    flow_log_interval: u64,
    /// On cgroup v1 hosts, hold a `favordynmods` cgroup hierarchy while serving (`true`),
    /// which tells the kernel to favour moving processes between cgroups over forks and
    /// exits, host-wide: without it each cold start after idle waits 7-15 ms to move the
    /// instance into its cgroup. `false` leaves the host's default. Recent kernels keep the
    /// setting until reboot once any process asked for it. No effect on cgroup v2.
    #[arg(long, env = "WARDEN_CGROUP_FAVORDYNMODS", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    cgroup_favordynmods: bool,
    /// Run functions as plain processes without the sandbox: no isolation at all between
    /// functions, or from the host. Meant only for platforms without namespaces (see
    /// `warden doctor`); logged at WARN on every start.
    #[arg(long)]
    insecure_no_sandbox: bool,
    /// Most API connections served at once; at the cap, the connection idle longest is
    /// closed to make room for a new one. Default: a quarter of the descriptor limit (after
    /// raising it to the hard limit), at most 4096.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// Seconds a connection may take to send a complete request head, counted from its
    /// accept or from its previous response (so this is also the keep-alive idle timeout).
    #[arg(long, default_value_t = warden_api::DEFAULT_HEADER_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// MiB of request bodies held in memory at once, across all connections (at least 128,
    /// so that one largest CreateFunction body fits); beyond it requests get 429.
    #[arg(long, default_value_t = (warden_api::DEFAULT_BODY_MEMORY_BYTES >> 20) as u64, value_parser = clap::value_parser!(u64).range((warden_api::MIN_BODY_MEMORY_BYTES >> 20) as u64..=1 << 20))]
    max_body_memory: u64,
    /// Seconds a web console session (`/console/`) lasts from sign-in.
    #[arg(long, default_value_t = warden_api::console::DEFAULT_SESSION_TTL.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    console_session_ttl: u64,
    /// Whether the API listener serves the web console at `/console/` (`on` or `off`).
    #[arg(long, default_value = "on", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    console: bool,
    /// Log filter (e.g. `info`, `warden=debug`).
    #[arg(long, env = "WARDEN_LOG", default_value = "info")]
    log: String,
}

/// `--metrics-listen`: an address, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsListen(Option<SocketAddr>);

impl std::str::FromStr for MetricsListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "off" {
            return Ok(Self(None));
        }
        s.parse()
            .map(|a| Self(Some(a)))
            .map_err(|_| format!("`{s}` is neither an address (IP:PORT) nor `off`"))
    }
}

pub(crate) fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("warden");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/warden"),
        None => PathBuf::from(".warden"),
    }
}

/// Creates the data directory (mode 0700), or checks that an existing one is a directory
/// owned by this user that no other user can read, write or enter: it holds the master
/// key, the admin's credentials, every function's configuration and code. Refusing to
/// start is safer than repairing: a directory others could enter may already have leaked.
fn private_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data directory `{}`", dir.display()))?;
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot read data directory `{}`", dir.display()))?;
    if !meta.is_dir() {
        bail!("data directory `{}` is not a directory", dir.display());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "refusing to start: data directory `{}` belongs to uid {}, not to this server's uid {me}",
            dir.display(),
            meta.uid()
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "refusing to start: data directory `{}` is open to other users (mode {mode:03o}); it holds keys and function code: run `chmod 700 {}` first",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

fn account_id(store: &dyn Store, configured: Option<String>) -> anyhow::Result<AccountId> {
    let stored = store.get_setting("account_id")?;
    match (configured, stored) {
        (Some(c), Some(s)) if c != s => {
            bail!("this data directory belongs to account `{s}`, not `{c}`")
        }
        (Some(c), None) => {
            let id = AccountId::new(&c)?;
            store.put_setting("account_id", id.as_str())?;
            Ok(id)
        }
        (_, Some(s)) => Ok(AccountId::new(&s)?),
        (None, None) => {
            let n: u64 = rand::random_range(100_000_000_000..1_000_000_000_000);
            let id = AccountId::new(&n.to_string())?;
            store.put_setting("account_id", id.as_str())?;
            // Read back: of nodes sharing a store that start together, the last write
            // wins, and a node that wrote first adopts it here (nodes of one deployment
            // should be given one --account-id, which the first match arm checks).
            match store.get_setting("account_id")? {
                Some(s) => Ok(AccountId::new(&s)?),
                None => Ok(id),
            }
        }
    }
}

/// Whether the server's log may use colours: stderr is a terminal and `NO_COLOR` is unset.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    // The store's and the bus's URLs may carry passwords, and every process this one starts
    // (the zygote, and the instances it forks) inherits its environment: they leave it now,
    // while this process has a single thread, their values kept in `args`.
    crate::backend::check_password_sources(&args.store, args.bus.as_deref())?;
    std::env::remove_var("WARDEN_STORE");
    std::env::remove_var("WARDEN_BUS");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log).context("invalid --log filter")?,
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: a log file or a pipe gets plain text.
        .with_ansi(colour_on_stderr())
        .init();
    let scan_policy = match args.dependency_scan.as_str() {
        "off" => None,
        other => Some(
            other
                .parse::<warden_control::scan::ScanPolicy>()
                .map_err(|e| anyhow::anyhow!("--dependency-scan: {e}, or off"))?,
        ),
    };
    // SNS's TLS client for https endpoints: a CA file that cannot be used stops the start,
    // rather than every https delivery failing later.
    let sns_tls = warden_sns::tls::TlsClient::new(&warden_sns::tls::TrustSettings {
        system_roots: true,
        ca_file: args.sns_ca_file.clone(),
    })
    .map_err(|e| anyhow::anyhow!("--sns-ca-file: {e}"))?;
    let listeners = [
        Some(args.listen),
        Some(args.url_listen),
        args.metrics_listen.0,
    ];
    for address in listeners.into_iter().flatten() {
        if !address.ip().is_loopback() && !args.allow_non_loopback {
            bail!(
                "refusing to listen on non-loopback address `{address}`: pass --allow-non-loopback to expose Warden beyond this machine"
            );
        }
    }
    let domain_ok = !args.url_domain.is_empty()
        && args.url_domain.len() <= 200
        && args.url_domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !domain_ok {
        bail!(
            "--url-domain `{}` is not a DNS domain name",
            args.url_domain
        );
    }
    if args.async_retry_delays_ms.len() != 2 {
        bail!("--async-retry-delays-ms takes exactly two values, e.g. `60000,120000`");
    }
    let region = Region::new(&args.region)?;
    let host_memory =
        warden_engine::host_memory_bytes().context("cannot read the host's memory size")?;
    let memory_budget_mb = args.memory_budget.resolve_mb(host_memory);
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    private_data_dir(&data_dir)?;
    // Held until the server exits: one live process per data directory and node id.
    let node = crate::node::claim(&data_dir, args.node_id.clone())?;
    // Read before the zygote starts, so that a passphrase variable is gone from the
    // environment every instance descends from.
    let master = args.master.load(&data_dir)?;

    // The zygote must start before any thread exists in this process's runtime, so that
    // it is a small single-threaded copy of nothing.
    let exe = std::env::current_exe().context("cannot find the warden executable")?;
    let mut isolation = crate::doctor::isolation(args.insecure_no_sandbox);
    // The firewall's address block goes to the zygote, which creates instance links.
    let firewall = crate::firewall::install(args.default_egress, !args.insecure_no_sandbox)?;
    if let warden_executor::Isolation::Sandbox(options) = &mut isolation {
        options.favor_dynmods = args.cgroup_favordynmods;
        options.egress_block = firewall.as_ref().map(|f| f.block());
    }
    let executor = Arc::new(crate::doctor::start_executor(&exe, isolation)?);
    // After the zygote has started, so that it and the functions keep the limit Warden was
    // started with (Lambda gives functions 1024); the server needs room for connections.
    let nofile = raise_descriptor_limit();
    let serve_options = warden_api::ServeOptions {
        max_connections: args.max_connections.map_or_else(
            || warden_api::ServeOptions::default_max_connections(nofile),
            |n| n as usize,
        ),
        header_timeout: Duration::from_secs(args.header_timeout),
        body_memory: usize::try_from(args.max_body_memory << 20).unwrap_or(usize::MAX),
        console_session_ttl: Duration::from_secs(args.console_session_ttl),
        console: args.console,
    };

    let store_choice = crate::backend::StoreChoice::parse(&args.store)?;
    let bus_url = args
        .bus
        .as_deref()
        .map(crate::backend::parse_bus)
        .transpose()?;
    if store_choice == crate::backend::StoreChoice::Embedded {
        if bus_url.is_some() {
            bail!("--bus connects nodes that share a PostgreSQL --store; the embedded store is one node's own");
        }
        if args.store_connections.is_some() {
            bail!("--store-connections sizes the pool of a PostgreSQL --store; the embedded store has none");
        }
    }
    let postgres = match &store_choice {
        crate::backend::StoreChoice::Embedded => None,
        crate::backend::StoreChoice::Postgres(url) => Some(
            warden_store::PostgresStore::open(
                url,
                args.store_connections
                    .map_or(warden_store::postgres::DEFAULT_CONNECTIONS, usize::from),
            )
            .context("cannot open the PostgreSQL store")?,
        ),
    };
    // With a shared store, one live process per node id across hosts too; held until the
    // server exits.
    let _node_heartbeat = match &postgres {
        Some(pg) => Some(crate::backend::NodeHeartbeat::start(
            pg.clone(),
            node.id.clone(),
            node.holder.clone(),
        )?),
        None => None,
    };
    let store: Arc<dyn Store> = match &postgres {
        None => Arc::new(SqliteStore::open(&data_dir.join("warden.db"))?),
        Some(pg) => {
            tracing::info!(target = %pg.target(), "keeping functions, queue, logs and code in PostgreSQL");
            Arc::new(pg.clone())
        }
    };
    let account = account_id(store.as_ref(), args.account_id.clone())?;
    // The key store first: it refuses a master key other than the one that sealed this
    // directory before anything is read.
    let kms = match &store_choice {
        crate::backend::StoreChoice::Embedded => {
            warden_kms::Kms::open(&data_dir, master.clone(), account.as_str(), region.as_str())?
        }
        crate::backend::StoreChoice::Postgres(url) => warden_kms::Kms::open_postgres(
            url,
            crate::backend::SIDE_STORE_CONNECTIONS,
            master.clone(),
            account.as_str(),
            region.as_str(),
        )
        .context("cannot open the KMS keys in PostgreSQL")?,
    };
    kms.ensure_aws_managed_keys()?;
    let keyring: Arc<dyn warden_kms::envelope::Keyring> =
        warden_kms::envelope::KmsKeyring::new(kms.clone());
    // Sealed zips in the data directory; extracted trees on memory-backed storage.
    let code_root = crate::codedir::choose(&data_dir, args.code_dir.clone())?;
    let mut blobs = BlobStore::open(
        &data_dir.join("blobs"),
        &code_root.path,
        warden_kms::envelope::CodeSealer::new(kms.clone()),
    )?;
    if let Some(pg) = &postgres {
        // The local blobs become a cache of the code every node can fetch.
        blobs = blobs.with_shared(Arc::new(pg.shared_code()));
    }
    let blobs = Arc::new(blobs);
    if let Err(e) = blobs.remove_stale_staging() {
        tracing::warn!(error = %e, "could not remove leftover staging directories");
    }
    // Code a crash orphaned (written by a deploy that never committed, or whose version
    // was deleted while an instance still ran it) goes before anything can pin it.
    match blobs.sweep(|| store.referenced_code()) {
        Ok(r) if r.removed > 0 => {
            tracing::info!(removed = r.removed, "collected unused code blobs")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not collect unused code blobs"),
    }
    blobs
        .start_collector(Arc::clone(&store), BLOB_SWEEP_PERIOD)
        .context("cannot start the code blob collector")?;
    // The audit trail: with a shared store, one log all nodes append to, on its own small
    // pool (the writer's group commits and the readers').
    let audit_pool = match &store_choice {
        crate::backend::StoreChoice::Embedded => None,
        crate::backend::StoreChoice::Postgres(url) => Some(
            warden_postgres::Pool::open(
                url,
                &warden_postgres::Options {
                    connections: crate::backend::AUDIT_STORE_CONNECTIONS,
                    application_name: "warden-audit".to_owned(),
                },
                &[warden_audit::POSTGRES_TRACK],
            )
            .context("cannot open the shared audit trail in PostgreSQL")?,
        ),
    };
    let audit_key = crate::audit::signing_key(&data_dir, audit_pool.as_ref(), &master)?;
    // SNS opens once the API's address (its URLs' base) is known; on a shared store it
    // seals its signing key under the master key.
    let sns_master = master.clone();
    // On a cluster, alarm notifications travel the bus sealed under the master key.
    let alarm_master = master.clone();
    let sns_pool = crate::sns::shared_pool(&store_choice)?;
    let audit_store = crate::audit::open_trail(&data_dir, audit_pool.as_ref());
    let identity = match &store_choice {
        crate::backend::StoreChoice::Embedded => {
            warden_identity::Identity::open_with_key(&data_dir, master, account.as_str())?
        }
        crate::backend::StoreChoice::Postgres(url) => warden_identity::Identity::open_postgres(
            url,
            crate::backend::SIDE_STORE_CONNECTIONS,
            master,
            account.as_str(),
        )
        .context("cannot open identity in PostgreSQL")?,
    };
    let secrets = match &store_choice {
        crate::backend::StoreChoice::Embedded => warden_secrets::Secrets::open(
            &data_dir,
            kms.clone(),
            account.as_str(),
            region.as_str(),
        )?,
        crate::backend::StoreChoice::Postgres(url) => warden_secrets::Secrets::open_postgres(
            url,
            crate::backend::SIDE_STORE_CONNECTIONS,
            kms.clone(),
            account.as_str(),
            region.as_str(),
        )
        .context("cannot open the secrets in PostgreSQL")?,
    };
    // Code signing, input contracts, function URLs and the network model (which keep their
    // state in memory), the configuration history and the findings: with a shared store,
    // one small pool for all of them.
    let records_pool = match &store_choice {
        crate::backend::StoreChoice::Embedded => None,
        crate::backend::StoreChoice::Postgres(url) => Some(
            warden_postgres::Pool::open(
                url,
                &warden_postgres::Options {
                    connections: crate::backend::SIDE_STORE_CONNECTIONS,
                    application_name: "warden-records".to_owned(),
                },
                &[
                    warden_postgres::records::TRACK,
                    warden_config::POSTGRES_TRACK,
                    warden_findings::POSTGRES_TRACK,
                    warden_egress::flows::POSTGRES_TRACK,
                    warden_dns::POSTGRES_TRACK,
                    warden_metrics::postgres::TRACK,
                ],
            )
            .context("cannot open the shared records in PostgreSQL")?,
        ),
    };
    let code_signing = crate::signing::open(
        &data_dir,
        records_pool.as_ref(),
        &kms,
        &account,
        &args.region,
        args.require_code_signing,
    )?;
    let config_history = crate::audit::open_history(&data_dir, records_pool.as_ref())?;
    let findings = crate::audit::open_findings(&data_dir, records_pool.as_ref())?;
    let network = match &records_pool {
        None => warden_network::Network::open(&data_dir, account.as_str(), region.as_str())?,
        Some(pool) => {
            warden_network::Network::open_shared(pool.clone(), account.as_str(), region.as_str())
                .context("cannot open the network model in PostgreSQL")?
        }
    };
    let flow_logs = match &records_pool {
        None => warden_network::FlowLogs::open(&data_dir)?,
        Some(pool) => warden_network::FlowLogs::open_shared(pool.clone())
            .context("cannot open the flow logs in PostgreSQL")?,
    };
    let contracts = match &records_pool {
        None => warden_contract::store::ContractStore::open(&data_dir)?,
        Some(pool) => warden_contract::store::ContractStore::open_shared(pool.clone())
            .context("cannot open the input contracts in PostgreSQL")?,
    };
    let urls = match &records_pool {
        None => warden_urls::store::UrlStore::open(&data_dir)?,
        Some(pool) => warden_urls::store::UrlStore::open_shared(pool.clone())
            .context("cannot open the function URLs in PostgreSQL")?,
    };
    for (function, qualifier, why) in contracts.broken() {
        tracing::error!(%function, %qualifier, reason = %why,
            "a stored input contract no longer compiles: the function's events are refused until it is replaced");
    }
    let dns_firewall = match &records_pool {
        None => warden_dnsfw::DnsFirewall::open(&data_dir, account.as_str(), region.as_str())?,
        Some(pool) => {
            warden_dnsfw::DnsFirewall::open_shared(pool.clone(), account.as_str(), region.as_str())
                .context("cannot open the DNS Firewall in PostgreSQL")?
        }
    };
    let advisories = match scan_policy {
        Some(policy) => Some(Arc::new(
            warden_control::scan::Advisories::open(&data_dir.join("advisories.db"), policy)
                .context("cannot open the advisory database")?,
        )),
        None => None,
    };
    bootstrap_admin(&identity, &data_dir)?;

    // Which interpreter serves each managed runtime, and Warden's bootstraps for them.
    let runtimes = Arc::new(args.runtimes.table()?);
    for (name, availability) in runtimes.rows() {
        match availability {
            warden_runtimes::Availability::Native => {}
            warden_runtimes::Availability::Ready(i) => tracing::info!(
                runtime = name,
                interpreter = %i.executable.display(),
                version = %i.version,
                "runtime ready"
            ),
            warden_runtimes::Availability::Missing(why) => {
                tracing::info!(runtime = name, "runtime unavailable: {why}")
            }
        }
    }
    let runtime_dir = data_dir.join("runtime");
    warden_runtimes::bootstrap::install(&runtime_dir).with_context(|| {
        format!(
            "cannot install the runtime bootstraps in {}",
            runtime_dir.display()
        )
    })?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(args.worker_threads))
        .enable_all()
        .build()?;
    let engine_executor = Arc::clone(&executor);
    let engine_firewall = firewall.clone();
    runtime.block_on(async move {
        let firewall = engine_firewall;
        let executor = engine_executor;
        // The API's address goes into every instance's environment: bind it first.
        let listener = listen(args.listen)
            .with_context(|| format!("cannot listen on `{}`", args.listen))?;
        let local = listener.local_addr()?;
        let url_listener = listen(args.url_listen)
            .with_context(|| format!("cannot listen on `{}` for function URLs", args.url_listen))?;
        let url_local = url_listener.local_addr()?;
        let url_base = warden_urls::model::UrlBase {
            domain: args.url_domain.clone(),
            loopback: url_local.ip().to_string(),
            ..warden_urls::model::UrlBase::new(region.as_str(), url_local.port())
        };
        let metrics_listener = match args.metrics_listen.0 {
            Some(address) => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on `{address}` for metrics"))?,
            ),
            None => None,
        };
        let metrics = Arc::new(warden_metrics::Metrics::new(
            warden_metrics::DEFAULT_MAX_SERIES,
        ));
        // With a shared store, every node's datapoints merge into the same rows; each
        // node's alarms stay in its own file.
        let metric_store = Arc::new(
            match &records_pool {
                None => warden_metrics::store::MetricStore::open(&data_dir.join("metrics.db")),
                Some(pool) => warden_metrics::store::MetricStore::open_with_shared(
                    &data_dir.join("metrics.db"),
                    pool.clone(),
                ),
            }
            .context("cannot open the metrics database")?,
        );
        let metrics_observer = crate::metrics::MetricsObserver::new(
            Arc::clone(&metrics),
            warden_metrics::emf::EmfSink::start(Arc::clone(&metric_store)),
        );
        let (stop_aggregator, aggregator_stopping) = std::sync::mpsc::channel::<()>();
        // Each closed minute is the alarms' cue.
        let (minute_closed, mut minutes) = tokio::sync::mpsc::unbounded_channel::<i64>();
        let aggregator = warden_metrics::aggregate::Aggregator::new(
            Arc::clone(&metrics),
            Arc::clone(&metric_store),
        )
                .spawn(aggregator_stopping, move |now| {
                    let _ = minute_closed.send(now);
                })?;
        let sweeper = {
            let observer = Arc::clone(&metrics_observer);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    observer.sweep();
                }
            })
        };
        let [first, second] = [args.async_retry_delays_ms[0], args.async_retry_delays_ms[1]];
        let config = warden_engine::EngineConfig {
            account: account.clone(),
            region: region.clone(),
            runtimes: Arc::clone(&runtimes),
            runtime_dir,
            account_concurrency: args.account_concurrency,
            idle_timeout: Duration::from_secs(args.idle_timeout),
            async_retry_delays: [Duration::from_millis(first), Duration::from_millis(second)],
            init_timeout: Duration::from_secs(u64::from(
                warden_types::limits::INIT_TIMEOUT_SECONDS,
            )),
            memory_budget_mb,
            logs: warden_engine::LogLimits {
                rate_bytes_per_second: args.log_rate_kib * 1024,
                retention: warden_store::LogRetention {
                    max_age_ms: i64::try_from(args.log_retention_days * 24 * 3600 * 1000)
                        .unwrap_or(i64::MAX),
                    max_bytes: args.log_max_mib * 1024 * 1024,
                },
            },
            node_id: node.id.clone(),
            api_address: local,
            cpu_scaling: match args.cpu_scaling {
                CpuScalingArg::Lambda => warden_engine::CpuScaling::Lambda,
                CpuScalingArg::Off => warden_engine::CpuScaling::Off,
            },
        };
        // A cluster's async queue is a JetStream work queue, open before the engine starts.
        let (bus, queue) = match &bus_url {
            Some(url) => {
                let (bus, queue) = crate::backend::connect_bus(url, node.id.clone()).await?;
                (Some(bus), Some(queue))
            }
            None => (None, None),
        };
        let engine = warden_engine::Engine::start(
            config,
            warden_engine::EngineParts {
                store: Arc::clone(&store),
                executor: executor.clone(),
                blobs: Arc::clone(&blobs),
                credentials: Arc::new(RoleSessions(identity.clone())),
                // Audit subscribes here once it exists.
                observers: vec![metrics_observer.clone() as Arc<dyn warden_engine::InvocationObserver>],
                keyring: Arc::clone(&keyring),
                egress: match &firewall {
                    Some(f) => Arc::new(crate::firewall::FirewallPolicies(Arc::clone(f))),
                    None => Arc::new(warden_engine::LoopbackOnly),
                },
                // Only instances with a network link have a resolver socket.
                dns: match &firewall {
                    Some(_) => Some(crate::firewall::resolver(
                        &data_dir,
                        records_pool.as_ref(),
                        &args.dns_upstream,
                        dns_firewall.clone(),
                    )?),
                    None => None,
                },
                flow_log: match &firewall {
                    Some(_) => Some(Arc::new(match &records_pool {
                        None => warden_egress::flows::FlowLog::open(&data_dir.join("flows.db"))?,
                        Some(pool) => warden_egress::flows::FlowLog::open_shared(pool.clone()),
                    })),
                    None => None,
                },
                // Nodes sharing a store share its concurrency limits too.
                slot_leases: postgres.as_ref().map(|pg| {
                    Arc::new(pg.slot_leases(node.id.clone())) as Arc<dyn warden_store::SlotLeases>
                }),
                queue: queue
                    .clone()
                    .map(|q| Arc::new(q) as Arc<dyn warden_store::EventQueue>),
            },
        )?;
        let control = warden_control::Control::new(
            warden_control::ControlConfig {
                account: account.clone(),
                region,
                account_concurrency: args.account_concurrency,
            },
            store,
            blobs,
            match &advisories {
                Some(a) => warden_control::Seams::new(Arc::new(identity.clone()), runtimes, keyring)
                    .with_dependency_scan(Arc::clone(a)),
                None => warden_control::Seams::new(Arc::new(identity.clone()), runtimes, keyring),
            }
            .with_code_signing(Arc::clone(&code_signing)),
        );
        // Environments an older Warden stored in plain text are sealed before anything is
        // served.
        match control.seal_plaintext_environments().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(versions = n, "sealed environments stored in plain text"),
            Err(e) => anyhow::bail!("cannot seal the environments stored in plain text: {e}"),
        }
        let sns = crate::sns::open(
            &data_dir,
            sns_pool,
            &format!("http://{local}/_warden/sns/"),
            &sns_master,
        )?;
        let shared_control = control.clone();
        let shared_kms = kms.clone();
        let shared_contracts = contracts.clone();
        let shared_urls = urls.clone();
        let shared_network = network.clone();
        let shared_dns_firewall = dns_firewall.clone();
        let state = Arc::new(warden_api::ApiState::new(
            engine.clone(),
            control,
            warden_api::Pipeline::default(),
            warden_api::access::Access::new(identity.clone()),
            kms,
            secrets,
            network,
            dns_firewall,
            flow_logs.clone(),
            contracts,
            urls,
            url_base,
            warden_api::url_limits::UrlLimitSettings {
                per_url: warden_api::url_limits::Rate::per_second(args.url_rate),
                per_source: warden_api::url_limits::Rate::per_second(args.url_source_rate),
                max_in_flight: args.url_max_in_flight as usize,
            },
            Arc::clone(&metrics),
            metric_store,
            sns.clone(),
            crate::audit::start(
                audit_store,
                config_history,
                findings,
                audit_key,
                &args.audit,
                matches!(args.default_egress, crate::firewall::DefaultEgressArg::Internet),
            )?,
        ));
        // After the API subscribed its caches to the control plane: remote changes reach
        // the same subscribers.
        if let (Some(bus), Some(queue)) = (&bus, &queue) {
            crate::backend::join_bus(bus, queue, &shared_control).await?;
        }
        // Alarms' changes are queued on the bus, and this node runs its share of them.
        let alarm_actions = match &bus {
            Some(bus) => Some(crate::alarms::join(bus, &state, alarm_master).await?),
            None => None,
        };
        // Events nodes of an earlier release queued in the shared store join the work queue.
        let store_queue_mover = queue.clone().map(|queue| {
            tokio::spawn(crate::backend::move_store_queue(
                Arc::clone(engine.store()),
                queue,
                node.id.clone(),
            ))
        });
        let sns_deliverer = warden_sns::Deliverer::start(
            &sns,
            Arc::new(crate::sns::EngineTarget(engine.clone(), Arc::clone(&state))),
            warden_sns::deliver::DeliveryConfig {
                endpoint_guard: Some(Arc::new(crate::sns::AllowedNetworks(
                    args.sns_allow_network.clone(),
                ))),
                tls: Some(sns_tls),
                ..Default::default()
            },
        );
        // Security groups now have a source; their changes reach the kernel at once.
        let network_follower = firewall.as_ref().map(|f| {
            f.set_source(Arc::new(crate::firewall::NetworkGroups(
                state.network.clone(),
            )));
            tokio::spawn(crate::firewall::follow_changes(
                Arc::clone(f),
                state.network.clone(),
            ))
        });
        let flow_collector = firewall.as_ref().map(|f| {
            tokio::spawn(crate::firewall::collect_flows(
                Arc::clone(f),
                engine.clone(),
                flow_logs.clone(),
                account.to_string(),
                Duration::from_secs(args.flow_log_interval),
                Arc::clone(&metrics),
            ))
        });
        let alarm_evaluator = {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                while let Some(now) = minutes.recv().await {
                    // Lambda's UnreservedConcurrentExecutions of the minute just closed,
                    // written before the alarms that may watch it are evaluated.
                    let peak = f64::from(state.engine.concurrency().take_unreserved_peak());
                    let start = now - now.rem_euclid(60) - 60;
                    let store = Arc::clone(&state.metric_store);
                    let written = tokio::task::spawn_blocking(move || {
                        store.add(&[(
                            warden_metrics::store::MetricId {
                                namespace: "AWS/Lambda".into(),
                                metric: "UnreservedConcurrentExecutions".into(),
                                dims: String::new(),
                            },
                            60,
                            warden_metrics::store::Datapoint {
                                ts: start,
                                count: 1.0,
                                sum: peak,
                                min: peak,
                                max: peak,
                                hist: None,
                            },
                        )])
                    })
                    .await;
                    if let Ok(Err(e)) = written {
                        tracing::warn!(error = %e, "could not store UnreservedConcurrentExecutions");
                    }
                    if state.metric_store.is_shared() {
                        // Every node writes its own minute when the minute closes: the
                        // node that evaluates waits for the others' to land.
                        tokio::time::sleep(SHARED_ALARM_SETTLE).await;
                    }
                    if let Err(e) = warden_api::alarms::evaluate_all(&state, now).await {
                        tracing::warn!(error = %e.message, "alarms could not be evaluated");
                    }
                }
            })
        };
        let rotations = tokio::spawn(warden_api::secrets::rotation_scheduler(
            Arc::clone(&state),
            ROTATION_CHECK_PERIOD,
        ));
        let posture = tokio::spawn(warden_api::posture::run(Arc::clone(&state)));
        tracing::info!(
            address = %local,
            data_dir = %data_dir.display(),
            code_dir = %code_root.path.display(),
            code_in_memory = code_root.in_memory,
            account = %account,
            node = %node.id,
            memory_budget_mib = memory_budget_mb,
            executor = %warden_executor::Executor::describe(executor.as_ref()),
            descriptor_limit = nofile,
            max_connections = serve_options.max_connections,
            "warden is listening"
        );
        // Machine-readable lines for scripts and tests that start Warden on port 0.
        // One write, so that a reader that stops after the first line never makes the
        // second fail.
        let metrics_line = match &metrics_listener {
            Some(l) => format!("warden metrics on http://{}/metrics\n", l.local_addr()?),
            None => String::new(),
        };
        let lines = format!(
            "warden listening on http://{local}\nwarden function URLs on http://{url_local}\n{metrics_line}"
        );
        {
            use std::io::Write as _;
            // One `write` of whole lines (stdout's line buffer passes a buffer ending in a
            // newline straight through), and its failure ignored: a reader that closed the
            // pipe after the first line must not bring the server down.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(lines.as_bytes());
            let _ = out.flush();
        }
        let key_usage = tokio::spawn(flush_key_usage_periodically(identity.clone()));
        let shared_refresh = (store_choice != crate::backend::StoreChoice::Embedded).then(|| {
            tokio::spawn(crate::backend::refresh_shared_periodically(
                crate::backend::SharedState {
                    kms: shared_kms.clone(),
                    identity: identity.clone(),
                    signer: code_signing.signer.clone(),
                    contracts: shared_contracts.clone(),
                    urls: shared_urls.clone(),
                    network: shared_network.clone(),
                    flow_logs: flow_logs.clone(),
                    dns_firewall: shared_dns_firewall.clone(),
                },
            ))
        });
        let (stop_urls, urls_stopping) = tokio::sync::oneshot::channel::<()>();
        // The URL listener's bounds come out of the API's: half as many connections (one
        // descriptor each, where a relayed API connection costs three) and a quarter of the
        // body memory (a URL body is at most 6 MB), so the two listeners together stay
        // within the descriptors and memory the flags grant.
        let url_options = warden_api::ServeOptions {
            max_connections: (serve_options.max_connections / 2).max(32),
            body_memory: serve_options.body_memory / 4,
            ..serve_options.clone()
        };
        let (stop_metrics, metrics_stopping) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = metrics_listener.map(|listener| {
            let options = warden_api::ServeOptions {
                max_connections: 16,
                body_memory: warden_api::MIN_BODY_MEMORY_BYTES,
                ..serve_options.clone()
            };
            tokio::spawn(warden_api::serve_metrics(
                listener,
                Arc::clone(&state),
                options,
                async move {
                    let _ = metrics_stopping.await;
                },
            ))
        });
        let url_server = tokio::spawn(warden_api::serve_urls(
            url_listener,
            Arc::clone(&state),
            url_options,
            async move {
                let _ = urls_stopping.await;
            },
        ));
        warden_api::serve(listener, state, serve_options, shutdown_signal()).await;
        tracing::info!("shutting down");
        let _ = stop_urls.send(());
        let _ = stop_metrics.send(());
        let _ = tokio::time::timeout(Duration::from_secs(11), url_server).await;
        if let Some(server) = metrics_server {
            let _ = tokio::time::timeout(Duration::from_secs(11), server).await;
        }
        sweeper.abort();
        alarm_evaluator.abort();
        drop(alarm_actions);
        sns_deliverer.stop().await;
        let _ = stop_aggregator.send(());
        let _ = aggregator.join();
        key_usage.abort();
        if let Some(task) = shared_refresh {
            task.abort();
        }
        if let Some(task) = store_queue_mover {
            task.abort();
        }
        rotations.abort();
        posture.abort();
        flush_key_usage(identity.clone()).await;
        engine.shutdown(ASYNC_SHUTDOWN_GRACE).await;
        // What is still held here goes back to the queue now, not after the wait.
        if let Some(queue) = &queue {
            queue.release_all().await;
        }
        if let Some(bus) = bus {
            bus.close().await;
        }
        for task in network_follower.iter().chain(&flow_collector) {
            task.abort();
        }
        anyhow::Ok(())
    })?;
    // Every step of the shutdown has a deadline: the API's drain (in `serve`), the async
    // invocations' grace, the zygote's teardown of the instances, and the runtime's own
    // tasks (a store call in a blocking thread, at worst).
    executor.shutdown(warden_executor::ZYGOTE_EXIT_DEADLINE);
    drop(executor);
    // The instances and their links are gone: the table goes too.
    if let Some(f) = &firewall {
        if let Err(e) = f.remove() {
            tracing::warn!(error = %e, "could not remove this server's nftables table");
        }
    }
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_DEADLINE);
    Ok(())
}

/// The async worker threads: as configured, else half the CPUs this process may use (its
/// affinity mask, or its cgroup's CPU quota, whichever is less), at least one.
fn worker_threads(configured: Option<u16>) -> usize {
    match configured {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
    }
}

/// Raises the soft limit on open descriptors to the hard limit and returns the limit in
/// force. Every connection, relayed connection and instance costs the server descriptors;
/// the soft limit many systems start processes with (1024) would cap the API far below what
/// the host allows.
fn raise_descriptor_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit still cannot exceed the kernel's per-process maximum.
    let hard = limit.maximum.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    });
    let soft = limit.current.unwrap_or(hard);
    if soft >= hard {
        return soft;
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => hard,
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
            soft
        }
    }
}

/// How often access-key use recorded in memory is written to the identity database.
const KEY_USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Writes recorded access-key use in batches, so that authenticating a request never waits
/// for the disk (`GetAccessKeyLastUsed` reads the in-memory value in between).
async fn flush_key_usage_periodically(identity: warden_identity::Identity) {
    let mut tick = tokio::time::interval(KEY_USAGE_FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        flush_key_usage(identity.clone()).await;
    }
}

async fn flush_key_usage(identity: warden_identity::Identity) {
    match tokio::task::spawn_blocking(move || identity.flush_key_usage()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not record access key use"),
        Err(e) => tracing::warn!(error = %e, "could not record access key use"),
    }
}

/// How long running async invocations may finish at shutdown; they run again otherwise.
const ASYNC_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long the runtime's remaining tasks may take once everything else has stopped.
const RUNTIME_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// On first start, creates the admin user and writes its key where the AWS CLI and the
/// `warden` CLI find it: `DATA_DIR/credentials`, shared-credentials format, mode 0600.
fn bootstrap_admin(
    identity: &warden_identity::Identity,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("credentials");
    // The default execution role: trusted by Lambda, allowed nothing (least privilege).
    match identity.create_role(
        DEFAULT_ROLE_NAME,
        None,
        LAMBDA_TRUST,
        Some("default execution role: no permissions"),
        None,
        Default::default(),
    ) {
        Ok(_) | Err(warden_identity::IdentityError::EntityAlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let Some((key_id, secret)) = identity.ensure_bootstrap_admin()? else {
        if !path.exists() {
            tracing::warn!(
                "the admin user exists but {} is missing; create a new key with `aws iam create-access-key --user-name admin` using another administrator",
                path.display()
            );
        }
        return Ok(());
    };
    let temp = data_dir.join(".credentials.tmp");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot write `{}`", temp.display()))?;
    writeln!(
        file,
        "[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}"
    )?;
    file.sync_all()?;
    std::fs::rename(&temp, &path)?;
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    eprintln!(
        "created the admin user; its access key is in {} (use AWS_SHARED_CREDENTIALS_FILE={} with the AWS CLI)",
        path.display(),
        path.display()
    );
    Ok(())
}

/// How often unused code blobs are collected even when nothing asked for it (deletes,
/// code updates and ended instances ask).
const BLOB_SWEEP_PERIOD: Duration = Duration::from_secs(600);

/// How long after a minute closes the alarms of nodes sharing a store are evaluated:
/// long enough for every node (clocks kept within a second or two of each other) to
/// have written its datapoints of that minute.
const SHARED_ALARM_SETTLE: Duration = Duration::from_secs(5);

/// How often scheduled secret rotations are looked for.
const ROTATION_CHECK_PERIOD: Duration = Duration::from_secs(60);

/// The execution role `warden function deploy` uses when given none.
const DEFAULT_ROLE_NAME: &str = "warden-default";
const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Execution-role sessions for instances, from the identity service.
struct RoleSessions(warden_identity::Identity);

/// Longest life of an instance's role credentials; instances are retired before.
const ROLE_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

impl warden_engine::CredentialIssuer for RoleSessions {
    fn issue(
        &self,
        role_arn: &str,
        session_name: &str,
    ) -> Result<warden_engine::RoleCredentials, warden_engine::CredentialError> {
        let c = self
            .0
            .issue_role_session(role_arn, session_name, ROLE_SESSION_TTL)
            .map_err(|e| warden_engine::CredentialError::CannotAssume {
                role: role_arn.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(warden_engine::RoleCredentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.session_token.unwrap_or_default(),
        })
    }

    fn revoke(&self, access_key_id: &str) {
        self.0.revoke_session(access_key_id);
    }
}

/// The listen backlog of the API and function URL listeners: the kernel's usual ceiling
/// (`net.core.somaxconn`, which caps it if lower). With the runtime's default (1,024), a
/// burst of a thousand callers connecting at once, as a fan-out of invocations does,
/// overflowed the accept queue while the server was busy, and the kernel reset the
/// connections whose SYN cookies then failed.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener at `address` with [`LISTEN_BACKLOG`].
fn listen(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod log_flag_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, String> {
        let mut argv = vec!["serve"];
        argv.extend_from_slice(args);
        Top::try_parse_from(argv)
            .map(|t| t.serve)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn log_limits_have_documented_defaults_and_refuse_zero() {
        let d = parse(&[]).unwrap();
        assert_eq!(
            (d.log_rate_kib, d.log_retention_days, d.log_max_mib),
            (1024, 7, 1024)
        );
        let set = parse(&[
            "--log-rate-kib",
            "64",
            "--log-retention-days",
            "1",
            "--log-max-mib",
            "2",
        ])
        .unwrap();
        assert_eq!(
            (set.log_rate_kib, set.log_retention_days, set.log_max_mib),
            (64, 1, 2)
        );
        for flag in ["--log-rate-kib", "--log-retention-days", "--log-max-mib"] {
            let err = parse(&[flag, "0"]).err().unwrap_or_default();
            assert!(err.contains(flag), "{flag} 0 must be refused: {err}");
        }
    }
}

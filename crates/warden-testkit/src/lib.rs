//! Test support for the engine and whatever sits on it.
//!
//! - [`RecordingExecutor`] runs each instance as a plain local process (no sandbox) and
//!   records what it was asked to run (program, environment, limits) and to kill.
//! - [`RecordingIssuer`] issues made-up role credentials and records issues and revocations.
//! - [`RecordingObserver`] records the engine's invocation events.
//! - [`TestEngine`] is an engine over a real SQLite store and blob store in a private
//!   temporary directory, wired to the three above, with helpers to deploy a function whose
//!   `bootstrap` is a small Python Runtime API client ([`SCRIPTED_RUNTIME`]) driven by its
//!   events.
//!
//! Everything here runs for real (processes, sockets, SQLite); only the identity service is
//! replaced, by an issuer that records.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use warden_engine::{
    CredentialError, CredentialIssuer, Engine, EngineConfig, EngineParts, InvocationEvent,
    InvocationObserver, LogLimits, RoleCredentials, ThrottleReason,
};
use warden_executor::{
    Executor, ExecutorError, ExitStatus, InstanceId, InstanceLimits, InstanceSpec, Prepared,
    SpawnedInstance,
};
use warden_store::sqlite::SqliteStore;
use warden_store::{BlobStore, Store};
use warden_types::{AccountId, FunctionVersion, NodeId, Region};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the engine asked a [`RecordingExecutor`] to start.
#[derive(Debug, Clone)]
pub struct SpawnRecord {
    /// The instance.
    pub id: InstanceId,
    /// The program.
    pub program: PathBuf,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// The limits.
    pub limits: InstanceLimits,
}

impl SpawnRecord {
    /// The value of one environment variable.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An executor that runs plain local processes (code at its host path, the Runtime API on
/// the host's loopback) and records every spawn and kill.
#[derive(Default)]
pub struct RecordingExecutor {
    next_id: AtomicU64,
    spawns: Mutex<Vec<SpawnRecord>>,
    kills: Mutex<Vec<InstanceId>>,
    killers: Mutex<HashMap<InstanceId, oneshot::Sender<()>>>,
}

impl RecordingExecutor {
    /// Every spawn so far, in order.
    pub fn spawns(&self) -> Vec<SpawnRecord> {
        lock(&self.spawns).clone()
    }

    /// Every kill so far, in order.
    pub fn kills(&self) -> Vec<InstanceId> {
        lock(&self.kills).clone()
    }

    async fn spawn_inner(
        &self,
        mut prepared: Prepared,
        spec: InstanceSpec,
    ) -> Result<SpawnedInstance, ExecutorError> {
        let id = prepared.id();
        let create = |what| move |source| ExecutorError::Create { what, source };
        let runtime_api = prepared
            .take_runtime_listener()
            .ok_or_else(|| ExecutorError::Spawn {
                program: spec.program.display().to_string(),
                message: "the slot was not prepared by this executor".into(),
            })?;
        let (stdout_r, stdout_w) = std::io::pipe().map_err(create("a stdout pipe"))?;
        let (stderr_r, stderr_w) = std::io::pipe().map_err(create("a stderr pipe"))?;
        lock(&self.spawns).push(SpawnRecord {
            id,
            program: spec.program.clone(),
            env: spec.env.clone(),
            limits: spec.limits.clone(),
        });
        let mut child = tokio::process::Command::new(&spec.program)
            .args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout_w))
            .stderr(Stdio::from(stderr_w))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ExecutorError::Spawn {
                program: spec.program.display().to_string(),
                message: e.to_string(),
            })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let (kill_tx, kill_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = oneshot::channel();
        lock(&self.killers).insert(id, kill_tx);
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let status = match status {
                Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(code), _) => ExitStatus::Code(code),
                    (None, Some(signal)) => ExitStatus::Signal(signal),
                    (None, None) => ExitStatus::Lost,
                },
                Err(_) => ExitStatus::Lost,
            };
            let _ = exit_tx.send(status);
        });
        Ok(SpawnedInstance {
            id,
            pid,
            stdout: stdout_r.into(),
            stderr: stderr_r.into(),
            runtime_api,
            api_listener: None,
            extension_listener: None,
            dns_socket: None,
            link_address: None,
            memory_peak: None,
            cpu_usage: None,
            exited: exit_rx,
        })
    }
}

impl Executor for RecordingExecutor {
    fn prepare(&self, code_dir: &Path) -> Result<Prepared, ExecutorError> {
        let id = InstanceId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        Prepared::plain(id, code_dir)
    }

    fn spawn(
        &self,
        prepared: Prepared,
        spec: InstanceSpec,
    ) -> Pin<Box<dyn Future<Output = Result<SpawnedInstance, ExecutorError>> + Send + '_>> {
        Box::pin(self.spawn_inner(prepared, spec))
    }

    fn kill(&self, id: InstanceId) {
        lock(&self.kills).push(id);
        if let Some(tx) = lock(&self.killers).remove(&id) {
            let _ = tx.send(());
        }
    }

    fn describe(&self) -> String {
        "recording executor (plain local processes)".into()
    }
}

/// Issues made-up credentials (`ASIATEST<n>`) for any role except those it was told to
/// refuse, and records issues and revocations.
#[derive(Default)]
pub struct RecordingIssuer {
    next: AtomicU64,
    issued: Mutex<Vec<(String, String)>>,
    sessions: Mutex<Vec<String>>,
    revoked: Mutex<Vec<String>>,
    refused: Mutex<Vec<String>>,
}

impl RecordingIssuer {
    /// Makes every later issue for `role_arn` fail, as for a role that cannot be assumed.
    pub fn refuse(&self, role_arn: &str) {
        lock(&self.refused).push(role_arn.to_owned());
    }

    /// Every `(role, access key id)` issued so far.
    pub fn issued(&self) -> Vec<(String, String)> {
        lock(&self.issued).clone()
    }

    /// The session name of every issue so far.
    pub fn sessions(&self) -> Vec<String> {
        lock(&self.sessions).clone()
    }

    /// Every access key id revoked so far.
    pub fn revoked(&self) -> Vec<String> {
        lock(&self.revoked).clone()
    }
}

impl CredentialIssuer for RecordingIssuer {
    fn issue(&self, role_arn: &str, session: &str) -> Result<RoleCredentials, CredentialError> {
        lock(&self.sessions).push(session.to_owned());
        if lock(&self.refused).iter().any(|r| r == role_arn) {
            return Err(CredentialError::CannotAssume {
                role: role_arn.to_owned(),
                reason: "refused by the test".into(),
            });
        }
        let key = format!("ASIATEST{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        lock(&self.issued).push((role_arn.to_owned(), key.clone()));
        Ok(RoleCredentials {
            access_key_id: key,
            secret_access_key: "test-secret".into(),
            session_token: "test-token".into(),
        })
    }

    fn revoke(&self, access_key_id: &str) {
        lock(&self.revoked).push(access_key_id.to_owned());
    }
}

/// One invocation event as recorded (owned, for comparisons).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// [`InvocationEvent::Initializing`].
    Initializing {
        /// Its request id.
        request_id: String,
    },
    /// [`InvocationEvent::Started`].
    Started {
        /// Its request id.
        request_id: String,
    },
    /// [`InvocationEvent::Throttled`].
    Throttled(ThrottleReason),
    /// [`InvocationEvent::InitFailed`].
    InitFailed {
        /// Lambda's error type.
        error_type: String,
    },
    /// [`InvocationEvent::TimedOut`].
    TimedOut,
    /// [`InvocationEvent::Exited`].
    Exited(ExitStatus),
    /// [`InvocationEvent::Finished`].
    Finished {
        /// Whether the caller got a function error.
        function_error: bool,
        /// Whether the `REPORT` had an init duration (a cold start).
        cold: bool,
    },
}

/// Records every invocation event it sees.
#[derive(Default)]
pub struct RecordingObserver {
    seen: Mutex<Vec<Seen>>,
}

impl RecordingObserver {
    /// Everything seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }
}

impl InvocationObserver for RecordingObserver {
    fn observe(&self, event: &InvocationEvent<'_>) {
        let seen = match event {
            InvocationEvent::Initializing { request_id, .. } => Seen::Initializing {
                request_id: (*request_id).to_owned(),
            },
            InvocationEvent::Started { request_id, .. } => Seen::Started {
                request_id: (*request_id).to_owned(),
            },
            InvocationEvent::Throttled { reason, .. } => Seen::Throttled(*reason),
            InvocationEvent::InitFailed { error_type, .. } => Seen::InitFailed {
                error_type: (*error_type).to_owned(),
            },
            InvocationEvent::TimedOut { .. } => Seen::TimedOut,
            InvocationEvent::Exited { status, .. } => Seen::Exited(*status),
            InvocationEvent::Finished {
                report,
                function_error,
                ..
            } => Seen::Finished {
                function_error: *function_error,
                cold: report.init_ms.is_some(),
            },
        };
        lock(&self.seen).push(seen);
    }
}

/// A Runtime API client in Python, the `bootstrap` of test functions. Each event may hold
/// `"action"`: `"fail"` (report a function error), `"sleep"` (for `"seconds"`), `"exit"`
/// (exit with status 7); anything else is answered with `{"echo": event, "env": {...}}`,
/// `env` holding the variables the event names in `"vars"`. The function variable
/// `MODE=init-error` makes it report an init error and exit; `MODE=exit-at-init` makes it
/// exit with status 3 before asking for an event.
pub const SCRIPTED_RUNTIME: &str = r#"#!/usr/bin/env python3
import json, os, sys, time, urllib.request
base = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
def post(path, body, headers=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST", headers=headers or {})
    urllib.request.urlopen(req).read()
mode = os.environ.get("MODE", "")
if mode == "init-error":
    post("/init/error", {"errorMessage": "bad init", "errorType": "InitBoom"}, {"Lambda-Runtime-Function-Error-Type": "InitBoom"})
    sys.exit(1)
if mode == "exit-at-init":
    sys.exit(3)
while True:
    with urllib.request.urlopen(base + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read() or b"null")
    print("handling " + rid, flush=True)
    action = event.get("action") if isinstance(event, dict) else None
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "exit":
        sys.exit(7)
    if action == "fail":
        post("/invocation/" + rid + "/error", {"errorMessage": "no", "errorType": "Boom"})
        continue
    names = event.get("vars", []) if isinstance(event, dict) else []
    post("/invocation/" + rid + "/response", {"echo": event, "env": {k: os.environ.get(k) for k in names}})
"#;

/// An engine over a real store in a private temporary directory, with recording parts.
pub struct TestEngine {
    /// The engine.
    pub engine: Engine,
    /// Its store.
    pub store: Arc<dyn Store>,
    /// Its code blobs.
    pub blobs: Arc<BlobStore>,
    /// What it asked to run and kill.
    pub executor: Arc<RecordingExecutor>,
    /// The credentials it asked for and revoked.
    pub issuer: Arc<RecordingIssuer>,
    /// The invocation events it emitted.
    pub observer: Arc<RecordingObserver>,
    /// The keyring that sealed the deployed environments (a real KMS in the directory).
    pub keyring: Arc<warden_kms::envelope::KmsKeyring>,
    dir: tempfile::TempDir,
}

/// What a [`TestEngine`] is started with.
#[derive(Debug, Clone)]
pub struct TestSettings {
    /// The account's concurrency limit.
    pub account_concurrency: u32,
    /// Delays before the two async retries.
    pub async_retry_delays: [Duration; 2],
}

impl Default for TestSettings {
    fn default() -> Self {
        TestSettings {
            account_concurrency: 10,
            async_retry_delays: [Duration::from_millis(20), Duration::from_millis(20)],
        }
    }
}

/// The account and role every test function uses.
pub const TEST_ROLE: &str = "arn:aws:iam::123456789012:role/test";

impl TestEngine {
    /// Starts an engine (inside a Tokio runtime) with default [`TestSettings`].
    pub fn start() -> TestEngine {
        Self::start_with(TestSettings::default())
    }

    /// Starts an engine (inside a Tokio runtime).
    ///
    /// # Panics
    /// When the temporary directory, the store or the engine cannot be made: a test
    /// cannot run without them.
    pub fn start_with(settings: TestSettings) -> TestEngine {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("warden.db")).expect("a store"));

        let executor = Arc::new(RecordingExecutor::default());
        let issuer = Arc::new(RecordingIssuer::default());
        let observer = Arc::new(RecordingObserver::default());
        // The real key service: deployed environments are sealed as the server seals them.
        let master = warden_kms::MasterKey::generate().expect("a master key");
        let kms = warden_kms::Kms::open(dir.path(), master, "123456789012", "us-east-1")
            .expect("a key service");
        kms.ensure_aws_managed_keys().expect("the AWS managed keys");
        let keyring = warden_kms::envelope::KmsKeyring::new(kms.clone());
        let blobs_dir = dir.path().join("blobs");
        let blobs = Arc::new(
            BlobStore::open(
                &blobs_dir,
                &blobs_dir,
                warden_kms::envelope::CodeSealer::new(kms),
            )
            .expect("a blob store"),
        );
        let config = EngineConfig {
            account: AccountId::new("123456789012").expect("an account id"),
            region: Region::new("us-east-1").expect("a region"),
            // The engine tests run `provided` functions only.
            runtimes: Arc::new(warden_runtimes::RuntimeTable::default()),
            runtime_dir: dir.path().join("runtime"),
            account_concurrency: settings.account_concurrency,
            idle_timeout: Duration::from_secs(600),
            async_retry_delays: settings.async_retry_delays,
            init_timeout: Duration::from_secs(10),
            memory_budget_mb: 64 * 1024,
            logs: LogLimits::default(),
            node_id: NodeId::new("test-node").expect("a node id"),
            // Nothing listens there: these tests never call the API from a function.
            api_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 9)),
            cpu_scaling: warden_engine::CpuScaling::Lambda,
        };
        let engine = Engine::start(
            config,
            EngineParts {
                store: Arc::clone(&store),
                executor: Arc::clone(&executor) as Arc<dyn Executor>,
                blobs: Arc::clone(&blobs),
                credentials: Arc::clone(&issuer) as Arc<dyn CredentialIssuer>,
                observers: vec![Arc::clone(&observer) as Arc<dyn InvocationObserver>],
                keyring: Arc::clone(&keyring) as Arc<dyn warden_kms::envelope::Keyring>,
                egress: Arc::new(warden_engine::LoopbackOnly),
                dns: None,
                flow_log: None,
                slot_leases: None,
                queue: None,
            },
        )
        .expect("an engine");
        TestEngine {
            engine,
            store,
            blobs,
            executor,
            issuer,
            observer,
            keyring,
            dir,
        }
    }

    /// Deploys `$LATEST` of a function named `name` whose `bootstrap` is
    /// [`SCRIPTED_RUNTIME`], with `timeout_seconds` and the environment `vars`.
    ///
    /// # Panics
    /// When the code or the record cannot be written.
    pub fn deploy(&self, name: &str, timeout_seconds: u32, vars: &[(&str, &str)]) {
        let sha = format!("test-code-{name}");
        let staging = self.dir.path().join(format!("staging-{name}"));
        std::fs::create_dir_all(&staging).expect("a staging directory");
        let bootstrap = staging.join("bootstrap");
        std::fs::write(&bootstrap, SCRIPTED_RUNTIME).expect("the bootstrap");
        std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755))
            .expect("an executable bootstrap");
        self.blobs
            .install_code_dir(&sha, &staging)
            .expect("installed code");
        let variables: std::collections::BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let sealed = (!variables.is_empty()).then(|| {
            use warden_kms::envelope::Keyring as _;
            self.keyring
                .seal(name, None, &variables)
                .expect("a sealed environment")
        });
        let version: FunctionVersion = serde_json::from_value(serde_json::json!({
            "name": name,
            "version": "$LATEST",
            "runtime": "provided.al2023",
            "handler": "bootstrap",
            "role": TEST_ROLE,
            "memory_mb": 128,
            "timeout_seconds": timeout_seconds,
            "ephemeral_storage_mb": 512,
            "sealed_environment": sealed,
            "code_sha256": sha,
            "code_size": SCRIPTED_RUNTIME.len(),
            "revision_id": "1",
            "last_modified_ms": 0,
        }))
        .expect("a valid function record");
        self.store
            .create_function(&version)
            .expect("the function record");
    }
}

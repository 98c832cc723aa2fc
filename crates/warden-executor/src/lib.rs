//! The executor seam: how the engine gets a process for a function instance.
//!
//! The engine asks an [`Executor`] for an instance described by an [`InstanceSpec`] and gets
//! back a [`SpawnedInstance`]: the pipes carrying the instance's stdout and stderr, the
//! listener on which the instance expects its Runtime API, and a future resolving when the
//! process ends. The engine never forks: [`ZygoteExecutor`] forwards every spawn to a small
//! single-threaded helper process (the zygote, `warden __zygote`) started once at boot,
//! because forking a large multi-threaded async server is slow and unsafe (see
//! DESIGN-NOTES §4, trap 3).
//!
//! By default ([`Isolation::Sandbox`]) the zygote owns a `warden_sandbox::Sandbox` and every
//! instance runs inside it: the code read-only at `/var/task`, the runtime paths of
//! [`SandboxOptions`] read-only at their host paths, a private network namespace whose
//! `127.0.0.1:9001` (Runtime API) and `127.0.0.1:9002` (Warden's API) listeners, bound there
//! by the sandbox, are passed back to the server, and the limits below. The host's
//! loopback is out of reach from inside, so the endpoint variables the engine names in
//! [`InstanceSpec::api_endpoint_vars`] are rewritten to [`SANDBOX_API_ENDPOINT`]; the engine
//! relays that listener to the API. [`Isolation::None`] (`warden serve --insecure-no-sandbox`) runs plain
//! processes and is meant only for hosts without namespaces.
//!
//! # Limits derived from the function
//! - memory: the function's `MemorySize` (the sandbox adds `/tmp`'s size to the cgroup
//!   limit, so filling `/tmp` gives `ENOSPC` and never costs the function its memory);
//! - `/tmp`: the function's `EphemeralStorage`;
//! - pids: [`DEFAULT_PIDS_MAX`] processes and threads per instance, enough for any
//!   runtime's thread pools, small enough that a fork bomb stops in milliseconds;
//! - CPU: proportional to memory as Lambda does, one full vCPU at 1,769 MB
//!   ([`cpu_quota_percent`]), never below [`MIN_CPU_PERCENT`].
//!
//! Architecture Invariant: this crate knows nothing of Lambda semantics (no payloads, no
//! request ids); it only starts, watches and kills processes.
#![forbid(unsafe_code)]

mod client;
mod protocol;
mod runtime_paths;
mod zygote;

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;

pub use client::{ZygoteExecutor, ZYGOTE_EXIT_DEADLINE};
pub use runtime_paths::{python_runtime_paths, system_runtime_paths};
pub use zygote::run_zygote;

/// Where the sandbox shows a function's code.
pub const TASK_ROOT: &str = "/var/task";
/// The Runtime API address inside every sandboxed instance.
pub const SANDBOX_RUNTIME_API: &str = "127.0.0.1:9001";
/// Where a sandboxed instance reaches Warden's API (the value of its
/// [`InstanceSpec::api_endpoint_vars`]): a listener in its own network namespace, handed
/// to the engine as [`SpawnedInstance::api_listener`].
pub const SANDBOX_API_ENDPOINT: &str = "http://127.0.0.1:9002";
/// Processes and threads one instance may have.
pub const DEFAULT_PIDS_MAX: u32 = 1024;
/// Memory that buys one full vCPU on Lambda.
pub const MB_PER_VCPU: u32 = 1769;
/// Floor of the CPU quota, in percent of one CPU.
pub const MIN_CPU_PERCENT: u32 = 5;

/// CPU quota for a function of `memory_mb`, in percent of one CPU: Lambda's proportional
/// rule (1,769 MB = one vCPU, 10,240 MB = about 5.8 vCPUs), rounded up, at least
/// [`MIN_CPU_PERCENT`].
pub fn cpu_quota_percent(memory_mb: u32) -> u32 {
    (memory_mb.saturating_mul(100))
        .div_ceil(MB_PER_VCPU)
        .max(MIN_CPU_PERCENT)
}

/// How instances are isolated.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// Every instance in its own sandbox (the default).
    Sandbox(SandboxOptions),
    /// Plain child processes in their own process groups: no isolation at all.
    None,
}

/// Host-wide settings of the sandbox.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SandboxOptions {
    /// Host paths every instance sees read-only at the same path (`/usr`, `/lib`, a
    /// Python installation); see [`system_runtime_paths`] and [`python_runtime_paths`].
    pub runtime_paths: Vec<PathBuf>,
    /// Processes and threads per instance.
    pub pids_max: u32,
    /// Network namespaces kept ready (root only).
    pub netns_pool_size: usize,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            runtime_paths: Vec::new(),
            pids_max: DEFAULT_PIDS_MAX,
            netns_pool_size: 4,
        }
    }
}

/// One protection of the sandbox and whether it is active on this host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Protection {
    pub name: String,
    pub active: bool,
    /// How it is enforced, or why it is not.
    pub detail: String,
}

/// Identifies one spawned instance for the lifetime of its executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct InstanceId(pub u64);

/// What to run.
///
/// `program`, `cwd` and the environment name host paths. An executor that shows the code
/// elsewhere (the sandbox, at [`TASK_ROOT`]) rewrites `code_dir` at the start of `program`,
/// of `cwd` and of every environment value to its own mount point (see
/// [`InstanceSpec::relocate_code`]); every other path must be visible inside as it is.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment (nothing is inherited), without `AWS_LAMBDA_RUNTIME_API`,
    /// which the executor adds because only it knows where the Runtime API listens.
    pub env: Vec<(String, String)>,
    /// Names of the variables of `env` whose value is Warden's API endpoint on the host
    /// (`AWS_ENDPOINT_URL_LAMBDA`...). A sandboxing executor replaces their values with
    /// [`SANDBOX_API_ENDPOINT`]; every other variable is left as the function set it.
    pub api_endpoint_vars: Vec<String>,
    pub cwd: PathBuf,
    /// The function's extracted code, for executors that mount it.
    pub code_dir: PathBuf,
    pub memory_mb: u32,
    pub tmp_mb: u32,
}

impl InstanceSpec {
    /// Rewrites host paths under `code_dir` to the same paths under `task_root`.
    pub fn relocate_code(&mut self, task_root: &Path) {
        let code_dir = self.code_dir.clone();
        let move_path = |p: &Path| match p.strip_prefix(&code_dir) {
            Ok(rest) if rest.as_os_str().is_empty() => Some(task_root.to_path_buf()),
            Ok(rest) => Some(task_root.join(rest)),
            Err(_) => None,
        };
        if let Some(p) = move_path(&self.program) {
            self.program = p;
        }
        if let Some(p) = move_path(&self.cwd) {
            self.cwd = p;
        }
        for (_, value) in &mut self.env {
            if let Some(p) = move_path(Path::new(value.as_str())) {
                *value = p.to_string_lossy().into_owned();
            }
        }
    }
}

/// How an instance's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// The memory limit was hit and the kernel killed a process of the instance (the
    /// instance was then ended); Lambda reports this as `Runtime.OutOfMemory`.
    OutOfMemory,
    /// The executor lost track of it (the zygote died); the process is gone.
    Lost,
}

impl std::fmt::Display for ExitStatus {
    /// Worded as Lambda words it after `Runtime exited with error: `.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit status {c}"),
            Self::Signal(9) | Self::OutOfMemory => f.write_str("signal: killed"),
            Self::Signal(s) => write!(f, "signal: {s}"),
            Self::Lost => f.write_str("lost"),
        }
    }
}

/// A running instance as the engine sees it.
#[derive(Debug)]
pub struct SpawnedInstance {
    pub id: InstanceId,
    pub pid: i32,
    /// Read ends of the instance's stdout and stderr.
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Where the instance's Runtime API must be served; already listening.
    pub runtime_api: std::net::TcpListener,
    /// Sandboxed instances only: the listener behind their endpoint variables
    /// ([`SANDBOX_API_ENDPOINT`]), already listening, whose connections the engine relays
    /// to Warden's API. `None` when the instance can reach the API's host address itself.
    pub api_listener: Option<std::net::TcpListener>,
    /// Resolves once when the process has ended and been reaped.
    pub exited: tokio::sync::oneshot::Receiver<ExitStatus>,
}

/// Why a spawn or kill failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("failed to start the zygote process `{path}`: {source}")]
    StartZygote {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the zygote process is gone")]
    ZygoteGone,
    #[error("failed to create {what}: {source}")]
    Create {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to talk to the zygote: {0}")]
    Channel(#[source] std::io::Error),
    #[error("could not start `{program}`: {message}")]
    Spawn { program: String, message: String },
    /// The sandbox cannot work on this host; the server must not start without it unless
    /// the operator asked for `--insecure-no-sandbox`.
    #[error("the sandbox is unavailable: {0}")]
    SandboxUnavailable(String),
    /// The zygote did not answer its first message as the protocol says.
    #[error("the zygote did not start properly: {0}")]
    Handshake(String),
    /// Asking an interpreter which paths it needs failed.
    #[error("cannot inspect the interpreter `{path}`: {message}")]
    ProbeInterpreter { path: PathBuf, message: String },
}

/// Starts and stops instance processes. Implementations: [`ZygoteExecutor`] (plain child
/// processes, or sandboxed ones once the sandbox plugs into the zygote).
pub trait Executor: Send + Sync + 'static {
    /// Starts an instance; resolves once the process exists.
    fn spawn(
        &self,
        spec: InstanceSpec,
    ) -> Pin<Box<dyn Future<Output = Result<SpawnedInstance, ExecutorError>> + Send + '_>>;
    /// Kills an instance and everything it started; its `exited` then resolves.
    fn kill(&self, id: InstanceId);
    /// One line describing the isolation this executor gives, for logs and `warden doctor`.
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_follows_memory_like_lambda() {
        assert_eq!(cpu_quota_percent(1769), 100);
        assert_eq!(cpu_quota_percent(3538), 200);
        assert_eq!(cpu_quota_percent(10240), 579);
        assert_eq!(cpu_quota_percent(128), 8);
        assert_eq!(cpu_quota_percent(64), MIN_CPU_PERCENT);
    }

    #[test]
    fn code_paths_move_to_the_task_root() {
        let mut spec = InstanceSpec {
            program: "/data/code/abc/bootstrap".into(),
            args: vec!["/data/code/abc".into()],
            env: vec![
                ("LAMBDA_TASK_ROOT".into(), "/data/code/abc".into()),
                ("PYTHONPATH".into(), "/data/code/abc".into()),
                ("OTHER".into(), "/data/code/abcdef".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            api_endpoint_vars: Vec::new(),
            cwd: "/data/code/abc".into(),
            code_dir: "/data/code/abc".into(),
            memory_mb: 128,
            tmp_mb: 512,
        };
        spec.relocate_code(Path::new(TASK_ROOT));
        assert_eq!(spec.program, Path::new("/var/task/bootstrap"));
        assert_eq!(spec.cwd, Path::new("/var/task"));
        assert_eq!(spec.args, ["/data/code/abc"], "arguments are left alone");
        let env: Vec<&str> = spec.env.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            env,
            [
                "/var/task",
                "/var/task",
                "/data/code/abcdef",
                "/usr/bin:/bin"
            ]
        );
    }

    #[test]
    fn exit_statuses_read_like_lambda() {
        assert_eq!(ExitStatus::OutOfMemory.to_string(), "signal: killed");
        assert_eq!(ExitStatus::Signal(9).to_string(), "signal: killed");
        assert_eq!(ExitStatus::Signal(11).to_string(), "signal: 11");
        assert_eq!(ExitStatus::Code(3).to_string(), "exit status 3");
    }
}

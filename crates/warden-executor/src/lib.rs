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
//! Architecture Invariant: this crate knows nothing of Lambda semantics (no payloads, no
//! request ids); it only starts, watches and kills processes.
#![forbid(unsafe_code)]

mod client;
mod protocol;
mod zygote;

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;

pub use client::ZygoteExecutor;
pub use zygote::run_zygote;

/// Identifies one spawned instance for the lifetime of its executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct InstanceId(pub u64);

/// What to run. Paths are host paths for the unsandboxed executor.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment (nothing is inherited), without `AWS_LAMBDA_RUNTIME_API`,
    /// which the executor adds because only it knows where the Runtime API listens.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The function's extracted code, for executors that mount it.
    pub code_dir: PathBuf,
    pub memory_mb: u32,
    pub tmp_mb: u32,
}

/// How an instance's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// The executor lost track of it (the zygote died); the process is gone.
    Lost,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit status {c}"),
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

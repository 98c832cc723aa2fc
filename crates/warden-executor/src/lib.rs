//! The executor seam: how the engine gets a process for a function instance.
//!
//! The engine asks an [`Executor`] for an instance described by an [`InstanceSpec`] and gets
//! back a [`SpawnedInstance`]: the pipes carrying the instance's stdout and stderr, the
//! listener on which the instance expects its Runtime API, and a future resolving when the
//! process ends. The engine never forks: [`ZygoteExecutor`] forwards every spawn to a small
//! single-threaded helper process (the zygote, `warden __zygote`) started once at boot,
//! because forking a large multi-threaded async server is slow (its page tables are copied)
//! and unsafe (a lock another thread held at the fork stays locked in the child forever).
//!
//! The contract has two steps, so that the engine can write an instance's whole
//! environment once: [`Executor::prepare`] says where things will be inside the instance (a
//! [`Placement`]: where the code appears, the Runtime API address, where Warden's API is
//! reached), then [`Executor::spawn`] starts the [`InstanceSpec`] the engine built from it,
//! under the [`InstanceLimits`] the engine computed. The executor applies both as given: it
//! rewrites no variable and derives no limit.
//!
//! By default ([`Isolation::Sandbox`]) the zygote owns a `warden_sandbox::Sandbox` and every
//! instance runs inside it: the code read-only at [`TASK_ROOT`], the system paths of
//! [`SandboxOptions`] read-only at their host paths, the spec's [`Mount`]s read-only where
//! it says, a private network namespace whose
//! [`SANDBOX_RUNTIME_API`] and [`SANDBOX_API_ENDPOINT`] listeners, bound there by the
//! sandbox, are passed back to the server, and the limits of the spec (memory, `/tmp`,
//! processes, CPU). [`Isolation::None`] (`warden serve --insecure-no-sandbox`) runs plain
//! processes at the code's host path, with a Runtime API listener on the host's loopback,
//! and enforces no limit; it is meant only for hosts without namespaces.
//!
//! The seam is the [`Executor`] trait; [`ZygoteExecutor`] is its implementation, and the
//! sandbox is not an executor of its own but the isolation the zygote applies to each
//! instance: the only place the two modes differ on the server's side is
//! [`Executor::prepare`].
//!
//! Architecture Invariant: this crate knows nothing of Lambda (no payloads, request ids,
//! memory-to-CPU rules or environment variables); it only starts, watches and kills
//! processes as described.
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
pub use runtime_paths::system_runtime_paths;
pub use zygote::run_zygote;

/// Where the sandbox shows a function's code.
pub const TASK_ROOT: &str = "/var/task";
/// The Runtime API address inside every sandboxed instance.
pub const SANDBOX_RUNTIME_API: &str = "127.0.0.1:9001";
/// Where a sandboxed instance reaches Warden's API (the value of its
/// [`InstanceSpec::api_endpoint_vars`]): a listener in its own network namespace, handed
/// to the engine as [`SpawnedInstance::api_listener`].
pub const SANDBOX_API_ENDPOINT: &str = "http://127.0.0.1:9002";
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
    /// Host paths every instance sees read-only at the same path (`/usr`, `/lib`); see
    /// [`system_runtime_paths`].
    pub runtime_paths: Vec<PathBuf>,
    /// Network namespaces kept ready (root only).
    pub netns_pool_size: usize,
    /// The address block of the server's firewall, when instances may have a network
    /// link ([`Egress::Linked`]); `None`: loopback only.
    pub egress_block: Option<warden_egress::addressing::BlockId>,
    /// On cgroup v1: hold a `favordynmods` hierarchy so that cold starts do not wait for
    /// an RCU grace period when moving the instance into its cgroup (see
    /// `warden_sandbox::SandboxConfig::favor_dynmods`).
    pub favor_dynmods: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            runtime_paths: Vec::new(),
            netns_pool_size: 4,
            egress_block: None,
            favor_dynmods: true,
        }
    }
}

/// One protection of the sandbox and whether it is active on this host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Protection {
    /// What it protects against (a short name, as `warden doctor` lists it).
    pub name: String,
    /// Whether it is in force on this host.
    pub active: bool,
    /// How it is enforced, or why it is not.
    pub detail: String,
}

/// Identifies one spawned instance for the lifetime of its executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct InstanceId(pub u64);

/// The limits an instance runs under, computed by the engine and applied as given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceLimits {
    /// Memory of the instance's processes, in MiB (the sandbox adds `/tmp`'s size to the
    /// cgroup limit, so filling `/tmp` gives `ENOSPC` and never costs the function its
    /// memory).
    pub memory_mb: u32,
    /// Size of the instance's private `/tmp`, in MiB.
    pub tmp_mb: u32,
    /// Processes and threads the instance may have at once.
    pub pids_max: u32,
    /// CPU time, in percent of one CPU (100 = one full CPU).
    pub cpu_percent: u32,
    /// What the instance may reach on the network.
    pub egress: Egress,
}

/// What an instance may reach on the network, beyond its own Runtime API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Egress {
    /// Nothing but Warden's API through the relay at [`Placement::api_endpoint`]: the
    /// instance's network namespace has only a loopback interface.
    RelayOnly,
    /// Also a veth link to the host, bound to a policy of the server's firewall
    /// (`warden_egress`), whose chains the server has loaded: the kernel lets through
    /// what the policy allows. Sandboxed instances only, with
    /// [`SandboxOptions::egress_block`] set.
    Linked {
        /// The policy's chain key (`warden_egress::nft::ChainKey`).
        policy: String,
        /// The security groups whose address sets the instance joins.
        groups: Vec<String>,
    },
}

/// Where things are inside an instance, known before it starts; the engine writes the
/// environment from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Where the instance sees its code (the host directory given to
    /// [`Executor::prepare`], shown there).
    pub code_root: PathBuf,
    /// The `host:port` the instance's runtime client connects to for the Runtime API.
    pub runtime_api: String,
    /// Where the instance reaches Warden's API, when that is not the API's own address
    /// (a sandboxed instance cannot reach the host's loopback: it gets a listener in its
    /// own namespace, [`SpawnedInstance::api_listener`], which the engine relays).
    pub api_endpoint: Option<String>,
    /// Whether the instance has a filesystem of its own, in which the spec's
    /// [`InstanceSpec::mounts`] appear where they say. Without one (a plain process), the
    /// spec must name host paths and carry no mount.
    pub private_filesystem: bool,
}

/// An instance slot [`Executor::prepare`] reserved: its id, its [`Placement`], and what
/// the executor holds for it until [`Executor::spawn`] (a listener, for instance).
#[derive(Debug)]
pub struct Prepared {
    id: InstanceId,
    placement: Placement,
    code_dir: PathBuf,
    runtime_listener: Option<std::net::TcpListener>,
}

impl Prepared {
    /// A slot for the instance `id` whose code, the host directory `code_dir`, is seen at
    /// `placement.code_root`; `runtime_listener` is the Runtime API listener when the
    /// executor binds it itself before the spawn.
    pub fn new(
        id: InstanceId,
        placement: Placement,
        code_dir: PathBuf,
        runtime_listener: Option<std::net::TcpListener>,
    ) -> Self {
        Prepared {
            id,
            placement,
            code_dir,
            runtime_listener,
        }
    }

    /// A slot for a plain process: its code where it is on the host, its Runtime API on a
    /// listener bound now on the host's loopback, Warden's API at its own address.
    pub fn plain(id: InstanceId, code_dir: &Path) -> Result<Self, ExecutorError> {
        let create = |source| ExecutorError::Create {
            what: "the Runtime API listener",
            source,
        };
        let listener =
            std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).map_err(create)?;
        let port = listener.local_addr().map_err(create)?.port();
        let placement = Placement {
            code_root: code_dir.to_path_buf(),
            runtime_api: format!("127.0.0.1:{port}"),
            api_endpoint: None,
            private_filesystem: false,
        };
        Ok(Prepared::new(
            id,
            placement,
            code_dir.to_path_buf(),
            Some(listener),
        ))
    }

    /// The id the instance will have.
    pub fn id(&self) -> InstanceId {
        self.id
    }

    /// Where things will be inside the instance.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The host directory of the instance's code.
    pub fn code_dir(&self) -> &Path {
        &self.code_dir
    }

    /// The Runtime API listener bound at preparation, if the executor bound one.
    pub fn take_runtime_listener(&mut self) -> Option<std::net::TcpListener> {
        self.runtime_listener.take()
    }
}

/// What to run, as the instance sees it: `program`, `cwd` and every environment value are
/// paths and addresses inside the instance (written from the [`Placement`]).
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// The program to execute.
    pub program: PathBuf,
    /// Its arguments (without the program name).
    pub args: Vec<String>,
    /// The complete environment: nothing is inherited, nothing is added.
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub cwd: PathBuf,
    /// Host directories to show read-only inside the instance (only where the placement
    /// has a [`Placement::private_filesystem`]).
    pub mounts: Vec<Mount>,
    /// The limits to apply.
    pub limits: InstanceLimits,
}

/// A host directory shown read-only inside an instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the instance sees it (absolute).
    pub inside: PathBuf,
}

/// How an instance's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitStatus {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
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
    /// The instance, for [`Executor::kill`].
    pub id: InstanceId,
    /// The host pid of its first process.
    pub pid: i32,
    /// Read ends of the instance's stdout and stderr.
    pub stdout: OwnedFd,
    /// Read end of the instance's stderr.
    pub stderr: OwnedFd,
    /// Where the instance's Runtime API must be served; already listening.
    pub runtime_api: std::net::TcpListener,
    /// Sandboxed instances only: the listener behind their endpoint variables
    /// ([`SANDBOX_API_ENDPOINT`]), already listening, whose connections the engine relays
    /// to Warden's API. `None` when the instance can reach the API's host address itself.
    pub api_listener: Option<std::net::TcpListener>,
    /// Sandboxed instances only: the listener at `127.0.0.1:2773` inside the instance, where
    /// code written for Lambda's Parameters and Secrets extension asks for secrets; the
    /// engine relays its connections to Warden's API like those of `api_listener`.
    pub extension_listener: Option<std::net::TcpListener>,
    /// Instances with a network link ([`Egress::Linked`]) only: the UDP socket at
    /// `127.0.0.1:53` inside the instance, where its DNS queries arrive for the engine to
    /// answer.
    pub dns_socket: Option<std::net::UdpSocket>,
    /// Instances with a network link only: the instance's address on it.
    pub link_address: Option<std::net::Ipv4Addr>,
    /// Sandboxed instances with a memory cgroup only: its peak memory file (bytes, read
    /// again from offset 0), counting from the spawn.
    pub memory_peak: Option<OwnedFd>,
    /// Sandboxed instances limited to less than one CPU only: the CPU time file of their
    /// cgroup, read again from offset 0 (`usage_usec N` first on cgroup v2, nanoseconds
    /// alone on v1), counting the CPU time of every process the cgroup has held.
    pub cpu_usage: Option<OwnedFd>,
    /// Resolves once when the process has ended and been reaped.
    pub exited: tokio::sync::oneshot::Receiver<ExitStatus>,
}

/// Why a spawn or kill failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The zygote process could not be started.
    #[error("failed to start the zygote process `{path}`: {source}")]
    StartZygote {
        /// The program that was run.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The zygote exited; nothing can be started any more.
    #[error("the zygote process is gone")]
    ZygoteGone,
    /// A socket, pipe, listener or thread could not be made.
    #[error("failed to create {what}: {source}")]
    Create {
        /// What could not be made.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The control socket to the zygote failed.
    #[error("failed to talk to the zygote: {0}")]
    Channel(#[source] std::io::Error),
    /// The process could not be started (`program`, and why in `message`).
    #[error("could not start `{program}`: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// Why it could not start.
        message: String,
    },
    /// The sandbox cannot work on this host; the server must not start without it unless
    /// the operator asked for `--insecure-no-sandbox`.
    #[error("the sandbox is unavailable: {0}")]
    SandboxUnavailable(String),
    /// The zygote did not answer its first message as the protocol says.
    #[error("the zygote did not start properly: {0}")]
    Handshake(String),
    /// The spec asks for something this executor cannot do (mounts without a sandbox).
    #[error("invalid instance spec: {0}")]
    InvalidSpec(String),
}

/// Starts and stops instance processes. Implementation: [`ZygoteExecutor`] (sandboxed
/// instances, or plain child processes with [`Isolation::None`]).
pub trait Executor: Send + Sync + 'static {
    /// Reserves a slot for an instance whose code is the host directory `code_dir`, and
    /// says where things will be inside it.
    fn prepare(&self, code_dir: &Path) -> Result<Prepared, ExecutorError>;
    /// Starts the instance of a prepared slot; resolves once the process exists.
    fn spawn(
        &self,
        prepared: Prepared,
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
    fn exit_statuses_read_like_lambda() {
        assert_eq!(ExitStatus::OutOfMemory.to_string(), "signal: killed");
        assert_eq!(ExitStatus::Signal(9).to_string(), "signal: killed");
        assert_eq!(ExitStatus::Signal(11).to_string(), "signal: 11");
        assert_eq!(ExitStatus::Code(3).to_string(), "exit status 3");
    }
}

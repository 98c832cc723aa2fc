//! Isolates one function instance: namespaces, pivot_root, seccomp, Landlock, cgroups; the
//! only crate with `unsafe`.
//!
//! # How an instance is started
//! [`Sandbox::spawn`] runs in a small single-threaded helper (the zygote), never in the
//! async server (forking a big heap is slow). It `clone3`s a child into new mount,
//! pid, ipc, uts and cgroup namespaces, plus a network namespace (a pooled one joined with
//! `setns` when running as root, or a fresh one), and, without root, a user namespace.
//! The child (see `child.rs`, async-signal-safe code only) then:
//! 1. makes `/` private, mounts a small tmpfs on the staging directory and
//!    bind-mounts the code at `/var/task` and the runtime paths, then makes all of that
//!    read-only, nosuid and nodev recursively with one `mount_setattr`;
//! 2. mounts `/dev` (a read-only tmpfs holding bind-mounted `null`, `zero`, `full`,
//!    `random`, `urandom`, and `fd`/`stdin`/`stdout`/`stderr` links; no tty: functions
//!    have no terminal), a `/proc` of its own pid namespace and a `/tmp` tmpfs capped at
//!    `tmp_mb`, then `pivot_root`s and detaches the old root;
//! 3. drops the bounding and ambient capability sets, switches to the unprivileged
//!    uid/gid, clears every capability set, sets `no_new_privs`, applies Landlock, waits
//!    until the parent has put it in its cgroup slot, installs seccomp, and forks a tiny
//!    init (pid 1 reaps orphans and exits with the function's status, which kills the rest
//!    of the pid namespace) before `execve`.
//!
//! The Runtime API listener (127.0.0.1:9001 inside the instance's network namespace) and
//! the listener through which the instance reaches Warden's own API (127.0.0.1:9002; the
//! host's loopback is out of reach) are created by the platform, not the function: the
//! pooled namespaces come with them, and otherwise the child creates them before dropping
//! privileges and passes them back with `SCM_RIGHTS`. Every wait on the child has a deadline.
//!
//! # The seccomp filter
//! Built once in [`Sandbox::new`] as a binary search over syscall numbers (about 120
//! instructions; a path visits at most about 12), because install time grows with filter
//! length. It:
//! - kills the process for any architecture but x86_64 and for x32 numbers
//!   (`nr >= 0x40000000`);
//! - returns `EPERM` for `mount`, `umount2`, `pivot_root`, `chroot`, the new mount API
//!   (`open_tree`, `move_mount`, `fsopen`, `fsconfig`, `fsmount`, `fspick`,
//!   `mount_setattr`, `open_tree_attr`), `ptrace`, `process_vm_readv`/`writev`,
//!   `pidfd_getfd`, `kexec_load`, `kexec_file_load`, `bpf`, `perf_event_open`, `keyctl`,
//!   `add_key`, `request_key`, `userfaultfd`, `io_uring_setup`/`enter`/`register`,
//!   `unshare`, `setns`, module loading, `swapon`/`swapoff`, `reboot`, `acct`,
//!   `quotactl`, `iopl`/`ioperm`, `uselib`, `_sysctl`, `lookup_dcookie`,
//!   `fanotify_init` and `name_to_handle_at`/`open_by_handle_at`;
//! - returns `EPERM` for `clone` with any namespace flag, and `ENOSYS` for `clone3`
//!   (its flags live in memory the filter cannot read), so libc falls back to `clone`;
//! - allows `socket` only for `AF_UNIX`, `AF_INET` and `AF_INET6` and never with
//!   `SOCK_RAW` or `SOCK_PACKET`: netlink (including `NETLINK_ROUTE`, a large kernel
//!   surface; glibc copes without it), packet and vsock sockets get `EPERM`;
//! - returns `EPERM` for the `TIOCSTI` and `TIOCLINUX` ioctls;
//! - allows everything else. Capabilities are gone, so most other dangerous calls already
//!   fail; the filter is about kernel attack surface reachable without privileges.
//!
//! # `/tmp` and memory
//! `/tmp` is a tmpfs, and tmpfs pages are charged to the instance's memory cgroup.
//! So the cgroup memory limit is `memory_mb + tmp_mb`, and `/tmp` itself is capped at
//! `tmp_mb`: filling `/tmp` gives `ENOSPC`, never an OOM kill, and the function can always
//! use its full `memory_mb`. The price is that a function which leaves `/tmp` empty can use
//! up to `memory_mb + tmp_mb` of RAM; hosts must budget RAM for both.
//!
//! # Degraded modes
//! Without a usable cgroup controller the limits fall back to rlimits (`RLIMIT_DATA` for
//! memory, which unlike `RLIMIT_AS` does not break Go, V8 or the JVM but bounds only
//! private writable mappings; `RLIMIT_NPROC` for pids, which counts all processes of the
//! uid; nothing for CPU). [`Sandbox::report`] says which protections are active and why
//! not, for `warden doctor` and the startup log.
//!
//! # Caller obligations
//! - Code directories and runtime paths must be readable by the sandbox uid (0755 dirs).
//! - `PR_SET_PDEATHSIG` ties each instance to the thread that spawned it: spawn from a
//!   thread that lives as long as the instances (the zygote's main thread).
//! - Every [`Sandboxed`] must end in [`Sandbox::wait`] or [`Sandbox::teardown`], which
//!   reap the process and return its cgroup slot; dropping one only kills it.
//! - Instances are children of the spawning process: it must not reap with `waitpid(-1)`
//!   (use the pidfd), or [`Sandbox::wait`] fails.
//! - [`Sandbox::new`] fails with [`SandboxError::Unsupported`] on a host that refuses the
//!   namespaces; only then may the platform run without the sandbox, and only when the
//!   operator asked for it explicitly.

mod cgroup;
mod child;
mod landlock;
mod netns;
pub use netns::NetworkLink;

/// A linked namespace made by [`Sandbox::begin_linked`], to be made ready for spawns by
/// [`Sandbox::finish_linked`]. Dropping it removes the namespace, and the link with it.
#[derive(Debug)]
pub struct PendingLink {
    key: String,
    index: u32,
    /// Taken only by `finish_linked`.
    prepared: Option<netns::Prepared>,
}

impl PendingLink {
    /// The key it will be ready under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its link's index ([`NetworkLink::index`]).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Whether [`Sandbox::finish_linked`] can take it without waiting: always, since the
    /// link is made in the call that made the namespace.
    pub fn is_done(&mut self) -> bool {
        true
    }
}

mod seccomp;

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};

use crate::child::ChildPlan;

/// Everything that can go wrong while preparing, starting or ending an instance.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec cannot be turned into a sandbox (bad path, NUL byte, reserved target).
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// A host path to bind into the sandbox is missing or unreadable.
    #[error("cannot use bind source `{path}`")]
    BindSource {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The staging directory (the mount point of every instance's root) cannot be made.
    #[error("cannot prepare staging directory `{path}`")]
    Staging {
        /// The staging directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The seccomp program did not assemble (a jump beyond 255 instructions).
    #[error("seccomp filter does not assemble")]
    SeccompAssemble,
    /// A cgroup directory cannot be created.
    #[error("cannot create cgroup `{path}`")]
    CgroupCreate {
        /// The cgroup directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A cgroup control file cannot be written.
    #[error("cannot write `{value}` to cgroup file `{path}`")]
    CgroupWrite {
        /// The control file.
        path: PathBuf,
        /// The value that was written.
        value: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Making a pooled network namespace failed at `step`.
    #[error("cannot prepare network namespace: {step}")]
    Netns {
        /// The step that failed.
        step: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The spawning thread could not return to its own network namespace; it must not be
    /// used any more.
    #[error("cannot return to the original network namespace")]
    NetnsRestore(io::Error),
    /// The parent/child control socket cannot be created or used.
    #[error("control socket failed: {step}")]
    Control {
        /// The step that failed.
        step: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// `clone3` failed (namespaces not permitted here, or resource limits).
    #[error("cannot clone the sandbox process")]
    Clone(io::Error),
    /// Writing the user namespace id maps failed.
    #[error("cannot write user namespace file `{file}`")]
    UserNsMap {
        /// The map file (`uid_map`, `gid_map`, `setgroups`).
        file: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// This kernel or host refuses the namespaces the sandbox needs (user namespaces
    /// disabled, or running in a container without the privilege to make namespaces).
    #[error("namespaces are not available here")]
    Unsupported(io::Error),
    /// The child reported a failed setup step.
    #[error("sandbox setup failed at step `{step}`")]
    ChildStep {
        /// The step that failed.
        step: &'static str,
        /// The error the child reported.
        source: io::Error,
    },
    /// The child ended before `execve` without reporting why.
    #[error("sandbox process died during setup with {0}")]
    ChildDied(ExitStatus),
    /// The child did not reach `execve` before the deadline; it was killed.
    #[error(
        "sandbox setup did not finish within {timeout:?} (last message from the child: {last})"
    )]
    Timeout {
        /// How long setup may take.
        timeout: Duration,
        /// The last step the child reported.
        last: &'static str,
    },
    /// Signalling an instance failed.
    #[error("cannot signal instance {pid}")]
    Kill {
        /// The instance's host pid.
        pid: i32,
        /// The underlying error.
        source: io::Error,
    },
    /// Waiting for an instance failed.
    #[error("cannot wait for instance {pid}")]
    Wait {
        /// The instance's host pid.
        pid: i32,
        /// The underlying error.
        source: io::Error,
    },
}

/// How an instance's pid 1 ended. With the built-in init, a function killed by signal `n`
/// shows as `code == Some(128 + n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Terminating signal, if it was killed.
    pub signal: Option<i32>,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => write!(f, "unknown status"),
        }
    }
}

/// Host-wide settings, fixed when the [`Sandbox`] is created.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// An empty host directory used only as the mount point of each instance's root
    /// (in the instance's own mount namespace). Created if missing, removed on drop.
    pub staging_dir: PathBuf,
    /// The uid/gid functions run as (inside the user namespace when not root).
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Network namespaces (with their listeners) kept ready when running as root.
    pub netns_pool_size: usize,
    /// Deadline for the child to reach `execve`, and then again for the kernel to finish
    /// it: a child that is starved of CPU on a loaded host gets the whole window for its
    /// `execve` even when its setup used most of the first.
    pub spawn_timeout: Duration,
    /// Port of the Runtime API listener on the instance's 127.0.0.1.
    pub runtime_api_port: u16,
    /// Port of the listener on the instance's 127.0.0.1 through which the platform serves
    /// its own API (the SDKs' endpoint variables) to the function.
    pub api_port: u16,
    /// Port of the listener on the instance's 127.0.0.1 where the platform serves the
    /// endpoint of Lambda's Parameters and Secrets extension.
    pub extension_port: u16,
    /// Whether to use cgroups at all (when false, limits are rlimits only).
    pub use_cgroups: bool,
    /// On cgroup v1, as root: hold a `favordynmods` hierarchy so that moving an instance
    /// into its slot does not wait for an RCU grace period (about 10 ms after idle). It
    /// makes forks and exits of every process on the host slightly slower.
    pub favor_dynmods: bool,
    /// Hostname inside the instance.
    pub hostname: String,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            staging_dir: std::env::temp_dir().join(format!(
                "warden-sandbox-root-{}-{}",
                std::process::id(),
                NEXT_ID.fetch_add(1, Ordering::Relaxed)
            )),
            uid: 993,
            gid: 990,
            netns_pool_size: 4,
            spawn_timeout: Duration::from_secs(5),
            runtime_api_port: 9001,
            api_port: 9002,
            extension_port: 2773,
            use_cgroups: true,
            favor_dynmods: true,
            hostname: "localhost".to_owned(),
        }
    }
}

/// One function instance to start.
#[derive(Debug)]
pub struct SandboxSpec {
    /// Path inside the sandbox, e.g. `/var/task/bootstrap`.
    pub program: PathBuf,
    /// Arguments after `argv[0]` (which is `program`).
    pub args: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Working directory inside, usually `/var/task`.
    pub cwd: PathBuf,
    /// Host directory bind-mounted read-only at `/var/task`.
    pub code_dir: PathBuf,
    /// `(host, inside)` read-only binds for runtime files (`/usr`, `/lib64`, a Python
    /// prefix). Host symlinks are resolved; targets under `/tmp`, `/dev`, `/proc` and
    /// `/var/task` are refused.
    pub readonly_binds: Vec<(PathBuf, PathBuf)>,
    /// The function's memory size. See the crate docs for how `/tmp` adds to it.
    pub memory_mb: u32,
    /// Size of the `/tmp` tmpfs.
    pub tmp_mb: u32,
    /// Maximum number of processes and threads.
    pub pids_max: u32,
    /// CPU quota in percent of one CPU; 0 for none.
    pub cpu_quota_percent: u32,
    /// Becomes the function's stdout.
    pub stdout: OwnedFd,
    /// Becomes the function's stderr.
    pub stderr: OwnedFd,
    /// Run in a namespace with a link to the host, prepared with
    /// [`Sandbox::prepare_linked`] under this key; `None`: loopback only.
    pub linked: Option<String>,
}

/// A running instance. End it with [`Sandbox::wait`] or [`Sandbox::teardown`].
#[derive(Debug)]
pub struct Sandboxed {
    /// Host pid of the instance's pid 1.
    pub pid: i32,
    /// A pidfd for pid 1: readable when it exits, usable in an event loop.
    pub pidfd: OwnedFd,
    /// TCP listener bound to 127.0.0.1:9001 inside the instance's network namespace.
    pub runtime_api_listener: OwnedFd,
    /// TCP listener bound to 127.0.0.1:9002 inside the instance's network namespace, where
    /// the platform serves its API to the function.
    pub api_listener: OwnedFd,
    /// TCP listener bound to 127.0.0.1:2773 inside the instance's network namespace, where
    /// the platform serves the Parameters and Secrets extension's endpoint.
    pub extension_listener: OwnedFd,
    /// The instance's link to the host, if its namespace has one (it goes with the
    /// namespace, when the instance ends).
    pub link: Option<NetworkLink>,
    /// With a link: the UDP socket at 127.0.0.1:53 inside the instance, where its DNS
    /// queries arrive.
    pub dns_socket: Option<OwnedFd>,
    /// The instance's cgroup peak memory file (bytes, read again from offset 0), reset at
    /// the spawn; `None` without a memory cgroup or where the kernel cannot reset it.
    pub memory_peak: Option<OwnedFd>,
    /// The instance's cgroup CPU time file, read again from offset 0: `usage_usec N` first
    /// (v2's `cpu.stat`) or nanoseconds alone (v1's `cpuacct.usage`). Only for an instance
    /// limited to less than one CPU; `None` otherwise, or where there is no such file.
    pub cpu_usage: Option<OwnedFd>,
    slot: Option<usize>,
    oom_baseline: u64,
    reaped: bool,
}

impl Drop for Sandboxed {
    fn drop(&mut self) {
        if !self.reaped {
            // Never leave a running instance behind, even if the caller forgot to reap it.
            let _ = rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL);
        }
    }
}

/// How an instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Status of pid 1.
    pub status: ExitStatus,
    /// Whether the memory cgroup OOM-killed a process of the instance (report it as
    /// `Runtime.OutOfMemory`).
    pub oom_killed: bool,
}

/// One protection and whether it is active here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    /// Short name, e.g. `seccomp`.
    pub name: &'static str,
    /// Whether it is enforced for every instance.
    pub active: bool,
    /// How, or why not.
    pub detail: String,
}

/// Which protections are active on this host, for `warden doctor` and the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionReport {
    /// One entry per protection.
    pub protections: Vec<Protection>,
}

impl ProtectionReport {
    /// Entries that are not active; each should be logged loudly.
    pub fn degraded(&self) -> impl Iterator<Item = &Protection> {
        self.protections.iter().filter(|p| !p.active)
    }
}

/// Prepared, reusable state for starting instances: the seccomp program, the Landlock
/// ABI, cgroup slots and the network namespace pool.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    userns: bool,
    /// Root mode only: whether each instance can get a user namespace of its own (see
    /// `child::ChildPlan::own_userns`), probed once.
    own_userns: bool,
    euid: u32,
    egid: u32,
    seccomp: Vec<seccomp::SockFilter>,
    landlock_abi: Option<u32>,
    last_cap: u32,
    cgroups: Option<cgroup::Cgroups>,
    cgroup_note: String,
    /// Held while the sandbox lives; see [`cgroup::FavorDynmods`].
    _favor_dynmods: Option<cgroup::FavorDynmods>,
    pool: Vec<netns::Prepared>,
    /// Namespaces with a link to the host, by the key the caller gave
    /// [`Sandbox::prepare_linked`].
    linked: std::collections::HashMap<String, Vec<netns::Prepared>>,
}

/// Makes cgroup and staging names unique when one process holds several sandboxes.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];
const DEV_LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
];
/// Paths inside an instance that the sandbox itself provides; nothing of the host can be
/// bound at or below them.
pub const RESERVED: &[&str] = &["/tmp", "/dev", "/proc", "/var/task"];

fn cstring(s: impl AsRef<[u8]>, what: &str) -> Result<CString, SandboxError> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| SandboxError::InvalidSpec(format!("{what} contains a NUL byte")))
}

/// An absolute path without `.`/`..` components.
fn clean_inside(p: &Path) -> Result<PathBuf, SandboxError> {
    if !p.is_absolute()
        || p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(SandboxError::InvalidSpec(format!(
            "`{}` must be an absolute path without `..`",
            p.display()
        )));
    }
    Ok(p.components().collect())
}

impl Sandbox {
    /// Prepares the sandbox: compiles seccomp, probes Landlock, creates cgroup slots'
    /// parent directories and fills the network namespace pool.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let euid = rustix::process::geteuid().as_raw();
        let egid = rustix::process::getegid().as_raw();
        let userns = euid != 0;
        let seccomp = seccomp::build().map_err(|_| SandboxError::SeccompAssemble)?;
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        std::fs::create_dir_all(&config.staging_dir).map_err(|source| SandboxError::Staging {
            path: config.staging_dir.clone(),
            source,
        })?;
        let (cgroups, mut cgroup_note) = if !config.use_cgroups {
            (None, "disabled by configuration".to_owned())
        } else {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            match cgroup::detect(&mountinfo, &own) {
                None => (None, "no cgroup hierarchy found".to_owned()),
                Some(layout) => match cgroup::Cgroups::create(
                    &layout,
                    &format!(
                        "warden-sandbox-{}-{}",
                        std::process::id(),
                        NEXT_ID.fetch_add(1, Ordering::Relaxed)
                    ),
                ) {
                    Ok(cg)
                        if cg.has(cgroup::Controller::Memory)
                            || cg.has(cgroup::Controller::Pids) =>
                    {
                        let note = if cg.is_v2() {
                            "cgroup v2, instances born in their slot".to_owned()
                        } else {
                            "cgroup v1".to_owned()
                        };
                        (Some(cg), note)
                    }
                    Ok(_) => (None, "cgroup directories are not writable".to_owned()),
                    Err(e) => (None, format!("cgroup v2 delegation failed: {e}")),
                },
            }
        };
        let mut favor_dynmods = None;
        if cgroups.as_ref().is_some_and(|cg| !cg.is_v2()) {
            if !config.favor_dynmods {
                cgroup_note.push_str(
                    "; favordynmods off by configuration: a move into a slot may wait ~10 ms",
                );
            } else if userns {
                cgroup_note
                    .push_str("; not root, no favordynmods: a move into a slot may wait ~10 ms");
            } else {
                match cgroup::FavorDynmods::hold() {
                    Ok(held) => {
                        favor_dynmods = Some(held);
                        cgroup_note.push_str("; favordynmods held: moves into slots do not wait");
                    }
                    Err(e) => cgroup_note.push_str(&format!(
                        "; favordynmods unavailable ({e}): a move into a slot may wait ~10 ms"
                    )),
                }
            }
        }
        let own_userns = !userns && probe_own_userns(config.uid, config.gid, last_cap);
        let mut sandbox = Sandbox {
            config,
            userns,
            own_userns,
            euid,
            egid,
            seccomp,
            landlock_abi: landlock::abi_version(),
            last_cap,
            cgroups,
            cgroup_note,
            _favor_dynmods: favor_dynmods,
            pool: Vec::new(),
            linked: std::collections::HashMap::new(),
        };
        probe_namespaces(userns)?;
        sandbox.refill_pool()?;
        Ok(sandbox)
    }

    /// Tops the network namespace pool up to its configured size. Cheap to call when idle;
    /// `spawn` creates a namespace inline when the pool is empty.
    pub fn refill_pool(&mut self) -> Result<(), SandboxError> {
        if self.userns {
            return Ok(());
        }
        while self.pool.len() < self.config.netns_pool_size {
            self.pool.push(netns::Prepared::create(
                self.config.runtime_api_port,
                self.config.api_port,
                self.config.extension_port,
                None,
            )?);
        }
        Ok(())
    }

    /// Prepares a network namespace with `link` to the host (root only) and keeps it for
    /// a later [`SandboxSpec::linked`] spawn naming `key`: [`Sandbox::begin_linked`] and
    /// [`Sandbox::finish_linked`] in one call.
    pub fn prepare_linked(&mut self, key: &str, link: NetworkLink) -> Result<(), SandboxError> {
        let pending = self.begin_linked(key, link)?;
        self.finish_linked(pending)
    }

    /// Makes a linked namespace for `key`: the namespace, its listeners and its link (an
    /// rtnetlink request and a few `ioctl`s, no process; about a millisecond). Until
    /// [`Sandbox::finish_linked`] takes it, the namespace is not ready for spawns, so that
    /// a caller can first finish what else the link needs (its firewall binding).
    pub fn begin_linked(
        &mut self,
        key: &str,
        link: NetworkLink,
    ) -> Result<PendingLink, SandboxError> {
        if self.userns {
            return Err(SandboxError::InvalidSpec(
                "a network link needs root: not root, instances have loopback only".to_owned(),
            ));
        }
        let prepared = netns::Prepared::create(
            self.config.runtime_api_port,
            self.config.api_port,
            self.config.extension_port,
            Some(&link),
        )?;
        prepared.make_link()?;
        Ok(PendingLink {
            key: key.to_owned(),
            index: link.index,
            prepared: Some(prepared),
        })
    }

    /// Makes a pending linked namespace ready for `key`.
    pub fn finish_linked(&mut self, mut pending: PendingLink) -> Result<(), SandboxError> {
        let Some(prepared) = pending.prepared.take() else {
            return Err(SandboxError::InvalidSpec(
                "this pending link was finished already".to_owned(),
            ));
        };
        self.linked
            .entry(std::mem::take(&mut pending.key))
            .or_default()
            .push(prepared);
        Ok(())
    }

    /// How many linked namespaces are ready for `key`.
    pub fn linked_ready(&self, key: &str) -> usize {
        self.linked.get(key).map_or(0, Vec::len)
    }

    /// The indexes of the links of every ready linked namespace.
    pub fn linked_indexes(&self) -> Vec<u32> {
        self.linked
            .values()
            .flatten()
            .filter_map(|p| p.link.as_ref().map(|l| l.index))
            .collect()
    }

    /// Every key with linked namespaces ready, and how many.
    pub fn linked_keys(&self) -> Vec<(String, usize)> {
        self.linked
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect()
    }

    /// Gives up the ready linked namespaces of `key` (their links go with them), returning
    /// their links.
    pub fn drop_linked(&mut self, key: &str) -> Vec<NetworkLink> {
        self.linked
            .remove(key)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.link)
            .collect()
    }

    /// The cgroup directories this sandbox created (its base directories and slots); all
    /// are removed when the sandbox is dropped.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cgroups
            .as_ref()
            .map(cgroup::Cgroups::all_dirs)
            .unwrap_or_default()
    }

    /// Whether instances run in a user namespace (the process is not root).
    pub fn uses_user_namespace(&self) -> bool {
        self.userns
    }

    /// Which protections are active here and why not.
    pub fn report(&self) -> ProtectionReport {
        let mut p = Vec::new();
        let mut add = |name, active, detail: String| {
            p.push(Protection {
                name,
                active,
                detail,
            })
        };
        add(
            "namespaces",
            true,
            "mount, pid, net, ipc, uts and cgroup namespaces per instance".to_owned(),
        );
        add(
            "unprivileged user",
            true,
            if self.userns {
                format!(
                    "not root: user namespace mapping uid {} to host uid {}",
                    self.config.uid, self.euid
                )
            } else {
                format!(
                    "root: instances run as uid {} gid {}",
                    self.config.uid, self.config.gid
                )
            },
        );
        add(
            "capabilities",
            true,
            "all sets and the bounding set empty, no_new_privs".to_owned(),
        );
        add(
            "seccomp",
            true,
            format!("{} instruction filter", self.seccomp.len()),
        );
        match self.landlock_abi {
            Some(abi) => add("landlock", true, format!("abi {abi}")),
            None => add(
                "landlock",
                false,
                "not supported or disabled by this kernel".to_owned(),
            ),
        }
        let has = |c| self.cgroups.as_ref().is_some_and(|cg| cg.has(c));
        let note = &self.cgroup_note;
        if has(cgroup::Controller::Memory) {
            add("memory limit", true, note.clone());
        } else {
            add(
                "memory limit",
                false,
                format!("{note}: falling back to RLIMIT_DATA, OOM is not detected"),
            );
        }
        if self.userns {
            add(
                "process limit per instance",
                true,
                "RLIMIT_NPROC in the instance's own user namespace".to_owned(),
            );
        } else if self.own_userns {
            add(
                "process limit per instance",
                true,
                "RLIMIT_NPROC in a user namespace per instance: a fork past the limit is refused before it copies anything".to_owned(),
            );
        } else {
            add(
                "process limit per instance",
                false,
                "the host refuses unprivileged user namespaces: only the pids limit holds a fork bomb, whose refused forks still copy their address space and slow process starts host-wide".to_owned(),
            );
        }
        if has(cgroup::Controller::Pids) {
            add("pids limit", true, note.clone());
        } else {
            add(
                "pids limit",
                false,
                format!("{note}: falling back to RLIMIT_NPROC, shared by all instances of the uid"),
            );
        }
        if has(cgroup::Controller::Cpu) {
            let v2 = self.cgroups.as_ref().is_some_and(|cg| cg.is_v2());
            let paced = if v2 || has(cgroup::Controller::CpuAcct) {
                "events to an instance below one CPU are paced by its CPU time"
            } else {
                "no cpuacct hierarchy: events are not paced, and a short invocation may wait out a whole period"
            };
            add("cpu limit", true, format!("{note}; {paced}"));
        } else {
            add("cpu limit", false, format!("{note}: no cpu quota"));
        }
        add(
            "network isolation",
            true,
            "private network namespace with loopback only".to_owned(),
        );
        if self.userns {
            add(
                "network namespace pool",
                false,
                "not root: namespaces are created at spawn".to_owned(),
            );
        } else if self.config.netns_pool_size == 0 {
            add(
                "network namespace pool",
                false,
                "pool size 0: namespaces are created at spawn".to_owned(),
            );
        } else {
            add(
                "network namespace pool",
                true,
                format!("{} kept ready", self.config.netns_pool_size),
            );
        }
        ProtectionReport { protections: p }
    }

    /// Starts one instance and returns once it has reached `execve` (or failed).
    pub fn spawn(&mut self, spec: SandboxSpec) -> Result<Sandboxed, SandboxError> {
        let memory_bytes = (u64::from(spec.memory_mb) + u64::from(spec.tmp_mb)) << 20;
        let limits = cgroup::Limits {
            memory_bytes,
            pids_max: spec.pids_max,
            cpu_percent: spec.cpu_quota_percent,
        };
        let slot = match &mut self.cgroups {
            Some(cg) => Some(cg.acquire(limits)?),
            None => None,
        };
        let result = self.spawn_in(&spec, slot, memory_bytes);
        if result.is_err() {
            if let (Some(cg), Some(s)) = (&mut self.cgroups, slot) {
                cg.release(s);
            }
        }
        result
    }

    fn spawn_in(
        &mut self,
        spec: &SandboxSpec,
        slot: Option<usize>,
        memory_bytes: u64,
    ) -> Result<Sandboxed, SandboxError> {
        let mut pooled = if let Some(key) = &spec.linked {
            let ready = self.linked.get_mut(key).and_then(Vec::pop);
            Some(ready.ok_or_else(|| {
                SandboxError::InvalidSpec(format!(
                    "no linked network namespace is prepared for `{key}`"
                ))
            })?)
        } else if self.userns {
            None
        } else {
            Some(match self.pool.pop() {
                Some(p) => p,
                None => netns::Prepared::create(
                    self.config.runtime_api_port,
                    self.config.api_port,
                    self.config.extension_port,
                    None,
                )?,
            })
        };
        let link = pooled.as_ref().and_then(|p| p.link.clone());
        let dns_socket = pooled.as_mut().and_then(|p| p.dns.take());
        let netns_fd = pooled.as_ref().map_or(-1, |p| p.netns.as_raw_fd());
        let plan = self.plan(spec, netns_fd, memory_bytes)?;

        let (parent_sock, child_sock) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| SandboxError::Control {
            step: "socketpair",
            source: e.into(),
        })?;
        let cgroup_dir = match (slot, &self.cgroups) {
            (Some(s), Some(cg)) => cg.v2_dir(s),
            _ => None,
        };
        let cgroup_fd = match cgroup_dir {
            Some(dir) => Some(
                rustix::fs::open(
                    &dir,
                    rustix::fs::OFlags::PATH
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| SandboxError::CgroupCreate {
                    path: dir.clone(),
                    source: e.into(),
                })?,
            ),
            None => None,
        };
        let oom_baseline = match (slot, &self.cgroups) {
            (Some(s), Some(cg)) => cg.oom_kills(s),
            _ => 0,
        };
        let memory_peak = match (slot, &self.cgroups) {
            (Some(s), Some(cg)) => cg.memory_peak(s),
            _ => None,
        };
        // Only a fraction of a CPU is paced by its time (a descriptor more per instance).
        let cpu_usage = match (slot, &self.cgroups) {
            (Some(s), Some(cg)) if (1..100).contains(&spec.cpu_quota_percent) => cg.cpu_usage(s),
            _ => None,
        };

        let mut flags = (libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP
            | libc::CLONE_PIDFD) as u64;
        if pooled.is_none() {
            flags |= libc::CLONE_NEWNET as u64;
        }
        if self.userns {
            flags |= libc::CLONE_NEWUSER as u64;
        }
        if cgroup_fd.is_some() {
            flags |= CLONE_INTO_CGROUP;
        }
        let mut pidfd: RawFd = -1;
        let args = CloneArgs {
            flags,
            pidfd: &mut pidfd as *mut RawFd as u64,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cgroup_fd.as_ref().map_or(0, |f| f.as_raw_fd() as u64),
            ..CloneArgs::default()
        };
        let parent_raw = parent_sock.as_raw_fd();
        let child_raw = child_sock.as_raw_fd();
        // SAFETY: clone3 without a stack behaves like fork: the child gets a copy of this
        // address space and runs `child::run`, which never returns and only makes
        // async-signal-safe syscalls on data prepared above. `args` and `pidfd`
        // are live for the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if ret == 0 {
            // SAFETY: the child's copy of the parent end must go, so that a dead parent
            // reads as EOF to the child.
            unsafe { libc::close(parent_raw) };
            child::run(&plan, &self.seccomp, child_raw);
        }
        if ret < 0 {
            return Err(SandboxError::Clone(io::Error::last_os_error()));
        }
        let pid = ret as i32;
        // SAFETY: the kernel stored a new pidfd that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        drop(child_sock);
        drop(cgroup_fd);
        let received = match self.handshake(pid, &pidfd, &parent_sock, slot) {
            Ok(l) => l,
            Err(e) => {
                let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
                let _ = wait_pidfd(&pidfd, pid);
                return Err(e);
            }
        };
        // The child has joined the pooled namespace by now; only the listeners are still needed.
        let (runtime_api_listener, api_listener, extension_listener) = match (pooled, received) {
            (Some(p), _) => (p.runtime_api, p.api, p.extension),
            (None, Some(l)) => l,
            (None, None) => {
                let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
                let _ = wait_pidfd(&pidfd, pid);
                return Err(SandboxError::Control {
                    step: "receive listeners",
                    source: io::ErrorKind::NotFound.into(),
                });
            }
        };
        Ok(Sandboxed {
            pid,
            pidfd,
            runtime_api_listener,
            api_listener,
            extension_listener,
            link,
            dns_socket,
            memory_peak,
            cpu_usage,
            slot,
            oom_baseline,
            reaped: false,
        })
    }

    /// Parent side of the setup: id maps, cgroup attach, then wait for exec or an error.
    fn handshake(
        &self,
        pid: i32,
        pidfd: &OwnedFd,
        sock: &OwnedFd,
        slot: Option<usize>,
    ) -> Result<Option<(OwnedFd, OwnedFd, OwnedFd)>, SandboxError> {
        let mut deadline = Instant::now() + self.config.spawn_timeout;
        if self.userns {
            self.write_id_maps(pid)?;
            send_byte(sock, child::MSG_MAPS_DONE)?;
        }
        if let (Some(cg), Some(s)) = (&self.cgroups, slot) {
            cg.attach(s, pid)?;
        }
        send_byte(sock, child::MSG_GO)?;
        let mut listeners: Vec<OwnedFd> = Vec::new();
        let mut exec_started = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let last = if exec_started {
                    "about to execve"
                } else {
                    "none"
                };
                return Err(SandboxError::Timeout {
                    timeout: self.config.spawn_timeout,
                    last,
                });
            }
            let ts = rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(sock, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(SandboxError::Control {
                        step: "poll",
                        source: e.into(),
                    })
                }
            }
            let mut buf = [0u8; 16];
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(3))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let msg = rustix::net::recvmsg(
                sock,
                &mut [io::IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )
            .map_err(|e| SandboxError::Control {
                step: "receive",
                source: e.into(),
            })?;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = m {
                    listeners.extend(fds);
                }
            }
            match (msg.bytes, buf[0]) {
                (0, _) if exec_started => {
                    // In the child's order: the Runtime API, Warden's API, the extension.
                    let mut it = listeners.into_iter();
                    return Ok(match (it.next(), it.next(), it.next(), it.next()) {
                        (Some(runtime), Some(api), Some(extension), None) => {
                            Some((runtime, api, extension))
                        }
                        (None, None, None, None) => None,
                        _ => {
                            return Err(SandboxError::Control {
                                step: "receive listeners",
                                source: io::ErrorKind::InvalidData.into(),
                            })
                        }
                    });
                }
                (0, _) => {
                    let status = wait_pidfd(pidfd, pid)?;
                    return Err(SandboxError::ChildDied(status));
                }
                (_, child::MSG_EXEC) => {
                    exec_started = true;
                    deadline = Instant::now() + self.config.spawn_timeout;
                }
                (_, child::MSG_LISTENER) => {}
                (9, child::MSG_ERROR) => {
                    let step = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                    let errno = i32::from_le_bytes([buf[5], buf[6], buf[7], buf[8]]);
                    let step = child::STEP_NAMES.get(step).copied().unwrap_or("unknown");
                    return Err(SandboxError::ChildStep {
                        step,
                        source: io::Error::from_raw_os_error(errno),
                    });
                }
                _ => {
                    return Err(SandboxError::Control {
                        step: "unexpected message",
                        source: io::ErrorKind::InvalidData.into(),
                    })
                }
            }
        }
    }

    fn write_id_maps(&self, pid: i32) -> Result<(), SandboxError> {
        let base = PathBuf::from(format!("/proc/{pid}"));
        let files: [(&'static str, String); 3] = [
            ("setgroups", "deny".to_owned()),
            ("uid_map", format!("{} {} 1", self.config.uid, self.euid)),
            ("gid_map", format!("{} {} 1", self.config.gid, self.egid)),
        ];
        for (file, content) in files {
            std::fs::write(base.join(file), content)
                .map_err(|source| SandboxError::UserNsMap { file, source })?;
        }
        Ok(())
    }

    /// Ends the instance: SIGKILL to its pid 1, which ends its whole pid namespace, and to
    /// every process of its cgroup where the kernel can do that at once; then lifts its
    /// CPU quota, so that the dying processes are not throttled while they exit (a
    /// fork-bombed instance of a small function otherwise takes minutes to die). Returns
    /// at once; the instance's pidfd becomes readable when it is gone.
    pub fn kill(&self, instance: &Sandboxed) -> Result<(), SandboxError> {
        let signalled = match rustix::process::pidfd_send_signal(
            &instance.pidfd,
            rustix::process::Signal::KILL,
        ) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(SandboxError::Kill {
                pid: instance.pid,
                source: e.into(),
            }),
        };
        // Only an instance that is dying may run unthrottled.
        if let (Ok(()), Some(cg), Some(s)) = (&signalled, &self.cgroups, instance.slot) {
            cg.finish(s);
        }
        signalled
    }

    /// Whether the instance's memory cgroup has OOM-killed one of its processes so far.
    pub fn was_oom_killed(&self, instance: &Sandboxed) -> bool {
        match (&self.cgroups, instance.slot) {
            (Some(cg), Some(s)) => cg.oom_kills(s) > instance.oom_baseline,
            _ => false,
        }
    }

    /// Waits for the instance to end on its own, then releases its cgroup slot.
    pub fn wait(&mut self, mut instance: Sandboxed) -> Result<Exit, SandboxError> {
        let status = wait_pidfd(&instance.pidfd, instance.pid)?;
        instance.reaped = true;
        let oom_killed = self.was_oom_killed(&instance);
        if let (Some(cg), Some(s)) = (&mut self.cgroups, instance.slot) {
            cg.release(s);
        }
        Ok(Exit { status, oom_killed })
    }

    /// Kills the instance (the whole process tree) and reaps it.
    pub fn teardown(&mut self, instance: Sandboxed) -> Result<Exit, SandboxError> {
        self.kill(&instance)?;
        self.wait(instance)
    }

    fn plan(
        &self,
        spec: &SandboxSpec,
        netns_fd: RawFd,
        memory_bytes: u64,
    ) -> Result<ChildPlan, SandboxError> {
        let staging = &self.config.staging_dir;
        let under = |inside: &Path| staging.join(inside.strip_prefix("/").unwrap_or(inside));
        let cs = |p: &Path, what: &str| cstring(p.as_os_str().as_bytes(), what);

        let mut binds: Vec<(PathBuf, PathBuf, bool)> = Vec::new();
        let code =
            std::fs::canonicalize(&spec.code_dir).map_err(|source| SandboxError::BindSource {
                path: spec.code_dir.clone(),
                source,
            })?;
        binds.push((code, PathBuf::from("/var/task"), true));
        for (host, inside) in &spec.readonly_binds {
            let inside = clean_inside(inside)?;
            if inside == Path::new("/") || RESERVED.iter().any(|r| inside.starts_with(r)) {
                return Err(SandboxError::InvalidSpec(format!(
                    "bind target `{}` is reserved",
                    inside.display()
                )));
            }
            let host_c =
                std::fs::canonicalize(host).map_err(|source| SandboxError::BindSource {
                    path: host.clone(),
                    source,
                })?;
            let is_dir = std::fs::metadata(&host_c)
                .map_err(|source| SandboxError::BindSource {
                    path: host.clone(),
                    source,
                })?
                .is_dir();
            binds.push((host_c, inside, is_dir));
        }
        // Parents before children, so a nested bind lands on top of its parent.
        binds.sort_by_key(|(_, inside, _)| inside.components().count());

        let mut dirs: BTreeSet<PathBuf> = ["/tmp", "/dev", "/proc", "/var"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let mut files = Vec::new();
        for (i, (_, inside, is_dir)) in binds.iter().enumerate() {
            // A target inside an earlier bind must already exist in that bind's source:
            // we cannot create it there (read-only, and it would touch the host).
            if let Some((ph, pi, _)) = binds[..i]
                .iter()
                .find(|(_, pi, _)| inside.starts_with(pi) && pi != inside)
            {
                let rel = inside.strip_prefix(pi).unwrap_or(inside);
                if !ph.join(rel).exists() {
                    return Err(SandboxError::InvalidSpec(format!(
                        "bind target `{}` does not exist in `{}`",
                        inside.display(),
                        ph.display()
                    )));
                }
                continue;
            }
            for a in inside.ancestors().skip(1) {
                if a != Path::new("/") {
                    dirs.insert(a.to_owned());
                }
            }
            if *is_dir {
                dirs.insert(inside.clone());
            } else {
                files.push(cs(&under(inside), "bind target")?);
            }
        }

        let mut argv_c = vec![cs(&spec.program, "program")?];
        for a in &spec.args {
            argv_c.push(cstring(a, "argument")?);
        }
        let mut env_c = Vec::new();
        for (k, v) in &spec.env {
            if k.is_empty() || k.contains('=') {
                return Err(SandboxError::InvalidSpec(format!(
                    "environment variable name `{k}` is invalid"
                )));
            }
            env_c.push(cstring(format!("{k}={v}"), "environment variable")?);
        }
        let ptrs = |v: &Vec<CString>| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };

        let has = |c| self.cgroups.as_ref().is_some_and(|cg| cg.has(c));
        let mut rlimits = vec![(libc::RLIMIT_CORE, 0)];
        if !has(cgroup::Controller::Memory) {
            rlimits.push((libc::RLIMIT_DATA, memory_bytes));
        }
        let own_userns = if self.own_userns {
            Some(own_userns_plan(
                self.config.uid,
                self.config.gid,
                u64::from(spec.pids_max),
            )?)
        } else {
            // Not root, the instance has a user namespace of its own from `clone3`, so the
            // limit counts its processes alone; in root mode without one it counts every
            // instance's, and stands in only for a missing pids controller.
            if self.userns || !has(cgroup::Controller::Pids) {
                rlimits.push((libc::RLIMIT_NPROC, u64::from(spec.pids_max)));
            }
            None
        };

        let dev = staging.join("dev");
        let devices = DEVICES
            .iter()
            .filter(|d| Path::new("/dev").join(d).exists())
            .map(|d| {
                Ok((
                    cs(&Path::new("/dev").join(d), "device")?,
                    cs(&dev.join(d), "device")?,
                ))
            })
            .collect::<Result<Vec<_>, SandboxError>>()?;
        let dev_links = DEV_LINKS
            .iter()
            .map(|(t, l)| Ok((cstring(t, "link")?, cs(&dev.join(l), "link")?)))
            .collect::<Result<Vec<_>, SandboxError>>()?;

        Ok(ChildPlan {
            userns: self.userns,
            own_userns,
            netns_fd,
            make_listener: netns_fd < 0,
            listener_ports: [
                self.config.runtime_api_port,
                self.config.api_port,
                self.config.extension_port,
            ],
            hostname: cstring(&self.config.hostname, "hostname")?,
            staging: cs(staging, "staging directory")?,
            root_opts: cstring("size=1m,mode=0755", "options")?,
            dirs: dirs
                .iter()
                .map(|d| cs(&under(d), "directory"))
                .collect::<Result<_, _>>()?,
            files,
            binds: binds
                .iter()
                .map(|(h, i, _)| Ok((cs(h, "bind source")?, cs(&under(i), "bind target")?)))
                .collect::<Result<_, SandboxError>>()?,
            dev_dir: cs(&dev, "dev")?,
            dev_opts: cstring("size=64k,mode=0755", "options")?,
            devices,
            dev_links,
            proc_dir: cs(&staging.join("proc"), "proc")?,
            tmp_dir: cs(&staging.join("tmp"), "tmp")?,
            tmp_opts: cstring(format!("size={}m,mode=1777", spec.tmp_mb.max(1)), "options")?,
            dot: cstring(".", "path")?,
            slash: cstring("/", "path")?,
            dev_null: cstring("/dev/null", "path")?,
            tmpfs: cstring("tmpfs", "fs")?,
            proc_fs: cstring("proc", "fs")?,
            rlimits,
            stdout: spec.stdout.as_fd().as_raw_fd(),
            stderr: spec.stderr.as_fd().as_raw_fd(),
            last_cap: self.last_cap,
            uid: self.config.uid,
            gid: self.config.gid,
            landlock: self.landlock_abi.map(landlock::plan),
            use_init: true,
            cwd: cs(&clean_inside(&spec.cwd)?, "cwd")?,
            program: cs(&clean_inside(&spec.program)?, "program")?,
            argv: ptrs(&argv_c),
            envp: ptrs(&env_c),
            _argv: argv_c,
            _envp: env_c,
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.config.staging_dir);
    }
}

/// What an instance's child needs to enter a user namespace of its own as `uid`/`gid`,
/// with `nproc` processes at most.
fn own_userns_plan(uid: u32, gid: u32, nproc: u64) -> Result<child::OwnUserns, SandboxError> {
    Ok(child::OwnUserns {
        setgroups_path: cstring("/proc/self/setgroups", "path")?,
        uid_map_path: cstring("/proc/self/uid_map", "path")?,
        gid_map_path: cstring("/proc/self/gid_map", "path")?,
        uid_map: cstring(format!("{uid} {uid} 1"), "map")?,
        gid_map: cstring(format!("{gid} {gid} 1"), "map")?,
        nproc,
    })
}

/// Whether a process that switched from root to `uid`/`gid` can enter a user namespace of
/// its own as each instance does in root mode: the child runs the instance's own steps.
/// Hosts that forbid unprivileged user namespaces (a sysctl, an LSM policy) say no;
/// instances then rely on the pids controller alone.
fn probe_own_userns(uid: u32, gid: u32, last_cap: u32) -> bool {
    let Ok(own) = own_userns_plan(uid, gid, 64) else {
        return false;
    };
    probe_child(libc::CLONE_PIDFD as u64, || {
        child::switch_user(uid, gid, true).is_ok()
            && child::enter_own_userns(&own, last_cap).is_ok()
    })
    .unwrap_or(false)
}

/// Checks once that this host lets us create every namespace an instance needs, so an
/// unusable host fails at startup rather than at the first invoke.
fn probe_namespaces(userns: bool) -> Result<(), SandboxError> {
    let mut flags = (libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_PIDFD) as u64;
    if userns {
        flags |= libc::CLONE_NEWUSER as u64;
    }
    probe_child(flags, || true).map_err(|e| match e {
        ProbeError::Clone(e) => SandboxError::Unsupported(e),
        ProbeError::Wait(e) => e,
    })?;
    Ok(())
}

/// Why a probe child could not say: it could not be started, or not waited for.
enum ProbeError {
    Clone(io::Error),
    Wait(SandboxError),
}

/// Runs `child` in a fork-like `clone3` with `flags` (which must hold `CLONE_PIDFD`) and
/// returns whether it said yes. `child` runs in a copy of a possibly multi-threaded
/// process: it may only make async-signal-safe calls on data prepared before (no
/// allocation, no locks).
fn probe_child(flags: u64, child: impl FnOnce() -> bool) -> Result<bool, ProbeError> {
    let mut pidfd: RawFd = -1;
    let args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: fork-like clone3; the child runs `child`, which makes only async-signal-safe
    // calls, then `_exit`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        let yes = child();
        // SAFETY: ends the probe child immediately.
        unsafe { libc::_exit(if yes { 0 } else { 1 }) };
    }
    if ret < 0 {
        return Err(ProbeError::Clone(io::Error::last_os_error()));
    }
    // SAFETY: the kernel stored a new pidfd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let status = wait_pidfd(&pidfd, ret as i32).map_err(ProbeError::Wait)?;
    Ok(status.code == Some(0))
}

fn send_byte(sock: &OwnedFd, byte: u8) -> Result<(), SandboxError> {
    rustix::net::send(sock, &[byte], SendFlags::NOSIGNAL).map_err(|e| SandboxError::Control {
        step: "send",
        source: e.into(),
    })?;
    Ok(())
}

fn wait_pidfd(pidfd: &OwnedFd, pid: i32) -> Result<ExitStatus, SandboxError> {
    loop {
        match rustix::process::waitid(
            rustix::process::WaitId::PidFd(pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        ) {
            Ok(Some(st)) => {
                return Ok(ExitStatus {
                    code: st.exit_status(),
                    signal: st.terminating_signal(),
                })
            }
            Ok(None) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(SandboxError::Wait {
                    pid,
                    source: e.into(),
                })
            }
        }
    }
}

/// `struct clone_args` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (libc's constant has the wrong width).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_paths_must_be_clean_and_absolute() {
        assert!(clean_inside(Path::new("/usr/lib")).is_ok());
        assert_eq!(
            clean_inside(Path::new("relative")).unwrap_err().to_string(),
            "invalid sandbox spec: `relative` must be an absolute path without `..`"
        );
        assert!(clean_inside(Path::new("/usr/../etc")).is_err());
    }

    #[test]
    fn error_messages_name_the_step() {
        let e = SandboxError::ChildStep {
            step: "pivot_root",
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert_eq!(e.to_string(), "sandbox setup failed at step `pivot_root`");
    }
}

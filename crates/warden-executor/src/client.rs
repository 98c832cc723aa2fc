//! The server's side of the zygote: an [`Executor`] that forwards spawns and kills to the
//! zygote process and turns its reports into futures.
//!
//! Without a sandbox the Runtime API listener is bound here on the host's loopback, when
//! the slot is prepared; with one, the sandbox binds it at `127.0.0.1:9001` inside the instance's network namespace,
//! next to the `127.0.0.1:9002` listener for Warden's API, and the zygote passes both back
//! with the spawn confirmation.

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use tokio::sync::oneshot;

use crate::protocol::{self, Event, Request, MAX_MESSAGE};
use crate::{
    Egress, Executor, ExecutorError, ExitStatus, InstanceId, InstanceSpec, Isolation, Placement,
    Prepared, Protection, SpawnedInstance, SANDBOX_API_ENDPOINT, SANDBOX_RUNTIME_API, TASK_ROOT,
};

/// How long the zygote may take to confirm a spawn before the spawn is abandoned.
const SPAWN_DEADLINE: Duration = Duration::from_secs(10);

/// Where the reader thread sends the zygote's answer to one spawn.
type SpawnWaiter = oneshot::Sender<Result<SpawnReply, String>>;

#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<InstanceId, SpawnWaiter>>,
    exits: Mutex<HashMap<InstanceId, oneshot::Sender<ExitStatus>>>,
    gone: AtomicBool,
    /// Set when we close the zygote ourselves, so its end is not reported as a failure.
    closing: AtomicBool,
}

/// Spawns instances from the zygote: in a sandbox each, or as plain child processes in
/// their own process groups with [`Isolation::None`].
pub struct ZygoteExecutor {
    control: OwnedFd,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    zygote: Mutex<std::process::Child>,
    sandboxed: bool,
    protections: Vec<Protection>,
}

impl ZygoteExecutor {
    /// Starts the zygote by running `exe` with `args` (normally this binary with
    /// `__zygote`), its control socket as standard input, and waits until it is ready.
    /// With [`Isolation::Sandbox`] it fails with [`ExecutorError::SandboxUnavailable`] if
    /// the sandbox cannot work here.
    pub fn start(exe: &Path, args: &[&str], isolation: Isolation) -> Result<Self, ExecutorError> {
        let (ours, theirs) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| ExecutorError::Create {
            what: "the zygote socket",
            source: e.into(),
        })?;
        let zygote = Command::new(exe)
            .args(args)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| ExecutorError::StartZygote {
                path: exe.to_path_buf(),
                source,
            })?;
        let mut zygote = zygote;
        let sandbox = match isolation {
            Isolation::Sandbox(opts) => Some(opts),
            Isolation::None => None,
        };
        let sandboxed = sandbox.is_some();
        let protections = match handshake(&ours, sandbox) {
            Ok(p) => p,
            Err(e) => {
                let _ = zygote.kill();
                let _ = zygote.wait();
                return Err(e);
            }
        };
        let shared = Arc::new(Shared::default());
        let reader_fd = ours.try_clone().map_err(|source| ExecutorError::Create {
            what: "the zygote socket",
            source,
        })?;
        let reader_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("zygote-events".into())
            .spawn(move || read_events(reader_fd, reader_shared))
            .map_err(|source| ExecutorError::Create {
                what: "the zygote reader thread",
                source,
            })?;
        Ok(Self {
            control: ours,
            shared,
            next_id: AtomicU64::new(1),
            zygote: Mutex::new(zygote),
            sandboxed,
            protections,
        })
    }

    /// The sandbox's protections and whether each is active here; empty without a sandbox.
    pub fn protections(&self) -> &[Protection] {
        &self.protections
    }

    /// Whether instances run in the sandbox.
    pub fn is_sandboxed(&self) -> bool {
        self.sandboxed
    }

    /// The zygote's pid, for diagnostics and tests.
    pub fn zygote_pid(&self) -> u32 {
        self.zygote.lock().map(|z| z.id()).unwrap_or(0)
    }

    /// The one place where the two isolation modes differ on the server's side: where an
    /// instance will see its code, its Runtime API and Warden's API.
    fn prepare_inner(&self, code_dir: &Path) -> Result<Prepared, ExecutorError> {
        if self.shared.gone.load(Ordering::Acquire) {
            return Err(ExecutorError::ZygoteGone);
        }
        let id = InstanceId(self.next_id.fetch_add(1, Ordering::Relaxed));
        if self.sandboxed {
            let placement = Placement {
                code_root: TASK_ROOT.into(),
                runtime_api: SANDBOX_RUNTIME_API.to_owned(),
                api_endpoint: Some(SANDBOX_API_ENDPOINT.to_owned()),
                private_filesystem: true,
            };
            return Ok(Prepared::new(id, placement, code_dir.to_path_buf(), None));
        }
        Prepared::plain(id, code_dir)
    }

    async fn spawn_inner(
        &self,
        mut prepared: Prepared,
        spec: InstanceSpec,
    ) -> Result<SpawnedInstance, ExecutorError> {
        if self.shared.gone.load(Ordering::Acquire) {
            return Err(ExecutorError::ZygoteGone);
        }
        let id = prepared.id();
        if !prepared.placement().private_filesystem && !spec.mounts.is_empty() {
            return Err(ExecutorError::InvalidSpec(
                "mounts need an instance with a filesystem of its own (a sandbox)".into(),
            ));
        }
        if !prepared.placement().private_filesystem && spec.limits.egress != Egress::RelayOnly {
            return Err(ExecutorError::InvalidSpec(
                "a network link needs a sandboxed instance".into(),
            ));
        }
        let listener = prepared.take_runtime_listener();

        let (stdout_r, stdout_w) = std::io::pipe().map_err(|source| ExecutorError::Create {
            what: "a stdout pipe",
            source,
        })?;
        let (stderr_r, stderr_w) = std::io::pipe().map_err(|source| ExecutorError::Create {
            what: "a stderr pipe",
            source,
        })?;

        let (reply_tx, reply_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = oneshot::channel();
        lock(&self.shared.pending).insert(id, reply_tx);
        lock(&self.shared.exits).insert(id, exit_tx);

        let request = Request::Spawn {
            id,
            program: spec.program.to_string_lossy().into_owned(),
            args: spec.args,
            env: spec.env,
            cwd: spec.cwd.to_string_lossy().into_owned(),
            code_dir: prepared.code_dir().to_string_lossy().into_owned(),
            mounts: spec.mounts,
            limits: spec.limits,
        };
        let sent = protocol::send(
            self.control.as_fd(),
            &request,
            &[stdout_w.as_fd(), stderr_w.as_fd()],
        );
        // Our copies of the write ends must close now, or the pipes never report end of file.
        drop(stdout_w);
        drop(stderr_w);
        if let Err(e) = sent {
            lock(&self.shared.pending).remove(&id);
            lock(&self.shared.exits).remove(&id);
            return Err(ExecutorError::Channel(e));
        }
        let reply = match tokio::time::timeout(SPAWN_DEADLINE, reply_rx).await {
            Ok(Ok(Ok(reply))) => reply,
            Ok(Ok(Err(message))) => {
                lock(&self.shared.exits).remove(&id);
                return Err(ExecutorError::Spawn {
                    program: request_program(&spec.program),
                    message,
                });
            }
            Ok(Err(_)) => return Err(ExecutorError::ZygoteGone),
            Err(_) => {
                lock(&self.shared.pending).remove(&id);
                self.kill(id);
                return Err(ExecutorError::Spawn {
                    program: request_program(&spec.program),
                    message: "the zygote did not confirm the spawn in time".into(),
                });
            }
        };
        let SpawnReply {
            pid,
            fds: mut passed,
            link_address,
            memory_peak,
            cpu_usage,
        } = reply;
        // The CPU time file, when there is one, comes last, and the peak memory file
        // before it; a linked instance's resolver socket fourth.
        let cpu_usage = if cpu_usage { passed.pop() } else { None };
        let memory_peak = if memory_peak { passed.pop() } else { None };
        let dns_socket = (passed.len() == 4)
            .then(|| passed.pop())
            .flatten()
            .map(std::net::UdpSocket::from);
        let (runtime_api, api_listener, extension_listener) =
            match (listener, <[OwnedFd; 3]>::try_from(passed)) {
                (Some(l), _) => (l, None, None),
                (None, Ok([runtime, api, extension])) => (
                    TcpListener::from(runtime),
                    Some(TcpListener::from(api)),
                    Some(TcpListener::from(extension)),
                ),
                (None, Err(_)) => {
                    self.kill(id);
                    return Err(ExecutorError::Spawn {
                        program: request_program(&spec.program),
                        message: "the zygote did not send the three listeners of the instance"
                            .into(),
                    });
                }
            };
        Ok(SpawnedInstance {
            id,
            pid,
            stdout: stdout_r.into(),
            stderr: stderr_r.into(),
            runtime_api,
            api_listener,
            extension_listener,
            dns_socket,
            link_address,
            memory_peak,
            cpu_usage,
            exited: exit_rx,
        })
    }
}

/// The zygote's answer to a spawn: the pid, the descriptors passed back, the address of
/// the instance's link (if it has one), and whether its peak memory and CPU time files
/// are among the descriptors.
struct SpawnReply {
    pid: i32,
    fds: Vec<OwnedFd>,
    link_address: Option<std::net::Ipv4Addr>,
    memory_peak: bool,
    cpu_usage: bool,
}

fn request_program(p: &Path) -> String {
    p.display().to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these maps cannot leave them inconsistent (single inserts and
    // removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends the zygote its `Init` message and waits for its answer.
fn handshake(
    control: &OwnedFd,
    sandbox: Option<crate::SandboxOptions>,
) -> Result<Vec<Protection>, ExecutorError> {
    protocol::send(control.as_fd(), &Request::Init { sandbox }, &[])
        .map_err(ExecutorError::Channel)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    match protocol::recv::<Event>(control.as_fd(), &mut buf).map_err(ExecutorError::Channel)? {
        Some((Event::Ready { protections }, _)) => Ok(protections),
        Some((Event::InitFailed { message }, _)) => Err(ExecutorError::SandboxUnavailable(message)),
        Some((other, _)) => Err(ExecutorError::Handshake(format!(
            "unexpected first message {other:?}"
        ))),
        None => Err(ExecutorError::Handshake(
            "it exited before answering".into(),
        )),
    }
}

fn read_events(socket: OwnedFd, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    while let Ok(Some((event, fds))) = protocol::recv::<Event>(socket.as_fd(), &mut buf) {
        match event {
            Event::Spawned {
                id,
                pid,
                link_address,
                memory_peak,
                cpu_usage,
            } => {
                if let Some(tx) = lock(&shared.pending).remove(&id) {
                    let _ = tx.send(Ok(SpawnReply {
                        pid,
                        fds,
                        link_address,
                        memory_peak,
                        cpu_usage,
                    }));
                }
            }
            Event::Ready { .. } | Event::InitFailed { .. } => {}
            Event::SpawnFailed { id, message } => {
                if let Some(tx) = lock(&shared.pending).remove(&id) {
                    let _ = tx.send(Err(message));
                }
            }
            Event::Exited { id, status } => {
                if let Some(tx) = lock(&shared.exits).remove(&id) {
                    let _ = tx.send(status);
                }
            }
        }
    }
    if !shared.closing.load(Ordering::Acquire) {
        tracing::error!("the zygote process is gone; no new instances can start");
    }
    shared.gone.store(true, Ordering::Release);
    lock(&shared.pending).clear();
    for (_, tx) in lock(&shared.exits).drain() {
        let _ = tx.send(ExitStatus::Lost);
    }
}

impl Executor for ZygoteExecutor {
    fn prepare(&self, code_dir: &Path) -> Result<Prepared, ExecutorError> {
        self.prepare_inner(code_dir)
    }

    fn spawn(
        &self,
        prepared: Prepared,
        spec: InstanceSpec,
    ) -> Pin<Box<dyn Future<Output = Result<SpawnedInstance, ExecutorError>> + Send + '_>> {
        Box::pin(self.spawn_inner(prepared, spec))
    }

    fn kill(&self, id: InstanceId) {
        if let Err(e) = protocol::send(self.control.as_fd(), &Request::Kill { id }, &[]) {
            tracing::warn!(instance = id.0, error = %e, "could not ask the zygote to kill an instance");
        }
    }

    fn describe(&self) -> String {
        if !self.sandboxed {
            return "plain child processes in their own process groups (no sandbox)".into();
        }
        let degraded: Vec<&str> = self
            .protections
            .iter()
            .filter(|p| !p.active)
            .map(|p| p.name.as_str())
            .collect();
        if degraded.is_empty() {
            "sandboxed instances, every protection active".into()
        } else {
            format!("sandboxed instances, degraded: {}", degraded.join(", "))
        }
    }
}

impl ZygoteExecutor {
    /// Stops every instance and the zygote, within `deadline`: closing our end of the
    /// control socket makes the zygote kill every instance, reap them (for at most
    /// its own, shorter deadline) and exit. A zygote still running at `deadline` is killed,
    /// and the kernel then kills its instances (their parent-death signal). Idempotent;
    /// the executor spawns nothing afterwards. Called by the server at shutdown, and on
    /// drop.
    pub fn shutdown(&self, deadline: Duration) {
        self.shared.closing.store(true, Ordering::Release);
        let _ = rustix::net::shutdown(&self.control, rustix::net::Shutdown::Both);
        let Ok(mut zygote) = self.zygote.lock() else {
            return;
        };
        let until = std::time::Instant::now() + deadline;
        loop {
            match zygote.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if std::time::Instant::now() >= until => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        tracing::warn!(
            ?deadline,
            "the zygote did not stop its instances in time; killing it"
        );
        let _ = zygote.kill();
        let _ = zygote.wait();
    }
}

/// How long [`ZygoteExecutor::shutdown`] should wait for the zygote (and dropping the
/// executor does wait) before killing it: longer than the zygote's own deadline for
/// reaping its instances.
pub const ZYGOTE_EXIT_DEADLINE: Duration =
    crate::zygote::KILL_ALL_DEADLINE.saturating_add(Duration::from_secs(5));

impl Drop for ZygoteExecutor {
    fn drop(&mut self) {
        self.shutdown(ZYGOTE_EXIT_DEADLINE);
    }
}

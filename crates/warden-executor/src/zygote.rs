//! The zygote: a small single-threaded process that starts, watches and kills instance
//! processes on the server's behalf.
//!
//! It is started once at boot with its control socket as standard input. It multiplexes
//! the control socket and one pidfd per child with `poll`, so it needs no threads and no
//! signal handlers. When the server goes away (the control socket reaches end of stream),
//! it kills every instance it started and exits, so a crashed server leaves no orphans.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{kill_process_group, pidfd_open, Pid, PidfdFlags, Signal};

use crate::protocol::{self, Event, Request, MAX_MESSAGE};
use crate::{ExitStatus, InstanceId};

struct Running {
    child: Child,
    pidfd: OwnedFd,
}

/// Runs the zygote loop on `control` until the server closes it. Never returns normally.
pub fn run_zygote(control: OwnedFd) -> std::io::Result<()> {
    let mut running: HashMap<InstanceId, Running> = HashMap::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let ids: Vec<InstanceId> = running.keys().copied().collect();
        let mut fds = Vec::with_capacity(ids.len() + 1);
        fds.push(PollFd::new(&control, PollFlags::IN));
        for id in &ids {
            fds.push(PollFd::new(&running[id].pidfd, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let control_ready = !fds[0].revents().is_empty();
        let exited: Vec<InstanceId> = ids
            .iter()
            .zip(&fds[1..])
            .filter(|(_, fd)| !fd.revents().is_empty())
            .map(|(id, _)| *id)
            .collect();
        drop(fds);

        for id in exited {
            if let Some(mut r) = running.remove(&id) {
                let status = reap(&mut r);
                let _ = protocol::send(control.as_fd(), &Event::Exited { id, status }, &[]);
            }
        }

        if control_ready {
            match protocol::recv::<Request>(control.as_fd(), &mut buf) {
                Ok(Some((request, fds))) => handle(&control, &mut running, request, fds),
                Ok(None) | Err(_) => {
                    // The server is gone: leave nothing behind.
                    for (_, mut r) in running.drain() {
                        let _ = kill_process_group(child_pid(&r.child), Signal::KILL);
                        let _ = r.child.kill();
                        let _ = r.child.wait();
                    }
                    return Ok(());
                }
            }
        }
    }
}

fn child_pid(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32).unwrap_or(Pid::INIT)
}

/// Collects the exit status and kills whatever the instance left in its process group.
fn reap(r: &mut Running) -> ExitStatus {
    let status = match r.child.wait() {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => ExitStatus::Code(c),
            (None, Some(sig)) => ExitStatus::Signal(sig),
            (None, None) => ExitStatus::Lost,
        },
        Err(_) => ExitStatus::Lost,
    };
    // INVARIANT: the group id equals the leader's pid; the leader is reaped, but the group
    // lives on while any member does, so this reaches background processes it left.
    let _ = kill_process_group(child_pid(&r.child), Signal::KILL);
    status
}

fn handle(
    control: &OwnedFd,
    running: &mut HashMap<InstanceId, Running>,
    request: Request,
    mut fds: Vec<OwnedFd>,
) {
    match request {
        Request::Spawn {
            id,
            program,
            args,
            env,
            cwd,
        } => {
            let event = if fds.len() != 2 {
                Event::SpawnFailed {
                    id,
                    message: format!("expected 2 descriptors, got {}", fds.len()),
                }
            } else {
                let stderr = fds.pop().expect("two descriptors");
                let stdout = fds.pop().expect("two descriptors");
                let mut command = Command::new(&program);
                command
                    .args(&args)
                    .env_clear()
                    .envs(env)
                    .current_dir(&cwd)
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(stdout))
                    .stderr(Stdio::from(stderr))
                    .process_group(0);
                match command.spawn() {
                    Ok(child) => {
                        let pid = child.id() as i32;
                        match Pid::from_raw(pid).map(|p| pidfd_open(p, PidfdFlags::empty())) {
                            Some(Ok(pidfd)) => {
                                running.insert(id, Running { child, pidfd });
                                Event::Spawned { id, pid }
                            }
                            _ => {
                                let mut child = child;
                                let _ = child.kill();
                                let _ = child.wait();
                                Event::SpawnFailed {
                                    id,
                                    message: "could not watch the new process".into(),
                                }
                            }
                        }
                    }
                    Err(e) => Event::SpawnFailed {
                        id,
                        message: e.to_string(),
                    },
                }
            };
            let _ = protocol::send(control.as_fd(), &event, &[]);
        }
        Request::Kill { id } => {
            if let Some(r) = running.get_mut(&id) {
                let _ = kill_process_group(child_pid(&r.child), Signal::KILL);
                let _ = r.child.kill();
                // The pidfd becomes readable and the main loop reaps and reports it.
            }
        }
    }
}

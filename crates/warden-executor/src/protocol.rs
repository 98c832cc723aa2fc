//! Messages between the server and the zygote: one JSON document per `SOCK_SEQPACKET`
//! datagram, file descriptors attached with `SCM_RIGHTS`.
//!
//! JSON is used rather than a binary framing because messages are rare (one per spawn)
//! and small, and both ends are this same binary.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

use crate::{ExitStatus, InstanceId, Protection, SandboxOptions};

/// Largest message; a spawn carries at most a 4 KB environment plus paths and arguments.
pub const MAX_MESSAGE: usize = 256 * 1024;
/// Most descriptors one message carries: a spawn's answer passes three listeners, a
/// linked instance's resolver socket, and its peak memory and CPU time files.
pub const MAX_FDS: usize = 6;

/// Server → zygote.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The first message: how instances are isolated (`None`: plain processes). The
    /// zygote answers [`Event::Ready`] or [`Event::InitFailed`].
    Init {
        sandbox: Option<SandboxOptions>,
    },
    /// Attached fds: stdout write end, stderr write end. Paths are as the instance sees
    /// them; `code_dir` is the host directory the sandbox shows at `/var/task`.
    Spawn {
        id: InstanceId,
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: String,
        code_dir: String,
        mounts: Vec<crate::Mount>,
        limits: crate::InstanceLimits,
    },
    Kill {
        id: InstanceId,
    },
}

/// Zygote → server.
#[derive(Debug, Serialize, Deserialize)]
pub enum Event {
    /// Answer to [`Request::Init`]: the protections in force (empty without a sandbox).
    Ready {
        protections: Vec<Protection>,
    },
    /// Answer to [`Request::Init`]: the sandbox cannot work on this host.
    InitFailed {
        message: String,
    },
    /// Attached fds when sandboxed: the Runtime API listener inside the instance, then the
    /// listener for Warden's API inside the instance.
    Spawned {
        id: InstanceId,
        pid: i32,
        /// The instance's address on its link to the host, if it has one.
        #[serde(default)]
        link_address: Option<std::net::Ipv4Addr>,
        /// Whether a descriptor after the listeners (and the resolver socket) is the
        /// instance's cgroup peak memory file.
        #[serde(default)]
        memory_peak: bool,
        /// Whether the last descriptor passed is the instance's cgroup CPU time file.
        #[serde(default)]
        cpu_usage: bool,
    },
    SpawnFailed {
        id: InstanceId,
        message: String,
    },
    Exited {
        id: InstanceId,
        status: ExitStatus,
    },
}

/// Sends one message with descriptors.
pub fn send<T: Serialize>(
    socket: BorrowedFd<'_>,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other(
            "too many descriptors for one message",
        ));
    }
    let sent = sendmsg(
        socket,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != bytes.len() {
        return Err(std::io::Error::other("short write on a seqpacket socket"));
    }
    Ok(())
}

/// Receives one message and its descriptors; `Ok(None)` at end of stream.
pub fn recv<T: for<'de> Deserialize<'de>>(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match recvmsg(
            socket.as_fd(),
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if msg.bytes == 0 {
        return Ok(None);
    }
    if msg.flags.contains(rustix::net::ReturnFlags::TRUNC) {
        return Err(std::io::Error::other(
            "message larger than the protocol allows",
        ));
    }
    // The kernel closes descriptors that do not fit, and the receiver would take the
    // remaining ones for others.
    if msg.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(std::io::Error::other(
            "more descriptors than the protocol allows",
        ));
    }
    let value = serde_json::from_slice(&buf[..msg.bytes]).map_err(std::io::Error::other)?;
    Ok(Some((value, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (OwnedFd, OwnedFd) {
        rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    }

    #[test]
    fn a_spawn_answer_carries_every_descriptor_an_instance_can_have() {
        let (a, b) = pair();
        let files: Vec<std::fs::File> = (0..MAX_FDS)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
        let event = Event::SpawnFailed {
            id: InstanceId(7),
            message: "x".into(),
        };
        send(a.as_fd(), &event, &fds).unwrap();
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (received, passed) = recv::<Event>(b.as_fd(), &mut buf).unwrap().unwrap();
        assert!(matches!(
            received,
            Event::SpawnFailed {
                id: InstanceId(7),
                ..
            }
        ));
        assert_eq!(passed.len(), MAX_FDS);
    }

    #[test]
    fn more_descriptors_than_the_protocol_allows_are_refused_not_dropped() {
        let (a, b) = pair();
        let files: Vec<std::fs::File> = (0..MAX_FDS + 8)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
        // The sender's buffer has room for the protocol's descriptors only.
        assert!(send(a.as_fd(), &Request::Init { sandbox: None }, &fds).is_err());
        // A peer that sends more anyway (with its own buffer) is refused by the receiver.
        let bytes = serde_json::to_vec(&Request::Init { sandbox: None }).unwrap();
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS + 8))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        sendmsg(
            a.as_fd(),
            &[IoSlice::new(&bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .unwrap();
        let mut buf = vec![0u8; MAX_MESSAGE];
        let err = recv::<Request>(b.as_fd(), &mut buf).unwrap_err();
        assert!(err.to_string().contains("descriptors"), "{err}");
    }
}

//! Pre-made network namespaces, each with `lo` up and the platform's listeners (the
//! Runtime API and Warden's API) already bound, so creating them (about 0.8 ms) stays off the spawn path.
//!
//! The namespace is made by the calling thread itself (`unshare` affects only the calling
//! thread), which then returns to its original namespace; no process is forked.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::{child, SandboxError};

/// A network namespace and the listeners bound on its 127.0.0.1.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub netns: OwnedFd,
    /// The Runtime API listener.
    pub runtime_api: OwnedFd,
    /// The listener through which the instance reaches Warden's API.
    pub api: OwnedFd,
    /// The listener of the Parameters and Secrets extension's endpoint.
    pub extension: OwnedFd,
}

fn thread_netns() -> Result<OwnedFd, SandboxError> {
    rustix::fs::open(
        "/proc/thread-self/ns/net",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SandboxError::Netns {
        step: "open namespace file",
        source: e.into(),
    })
}

impl Prepared {
    /// Creates a namespace with listeners on 127.0.0.1:`runtime_api_port`,
    /// 127.0.0.1:`api_port` and 127.0.0.1:`extension_port`. Needs `CAP_SYS_ADMIN`.
    pub(crate) fn create(
        runtime_api_port: u16,
        api_port: u16,
        extension_port: u16,
    ) -> Result<Prepared, SandboxError> {
        let original = thread_netns()?;
        // SAFETY: CLONE_NEWNET only changes this thread's network namespace, which is
        // restored below before returning; it does not unshare memory, files or fs state.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }.map_err(|e| {
            SandboxError::Netns {
                step: "unshare",
                source: e.into(),
            }
        })?;
        let inside = (|| {
            child::bring_loopback_up().map_err(|e| SandboxError::Netns {
                step: "bring loopback up",
                source: std::io::Error::from_raw_os_error(e),
            })?;
            let listen = |port| {
                let fd = child::listen_loopback(port).map_err(|e| SandboxError::Netns {
                    step: "listen",
                    source: std::io::Error::from_raw_os_error(e),
                })?;
                // SAFETY: `listen_loopback` returned a fresh fd that nothing else owns.
                Ok::<_, SandboxError>(unsafe { OwnedFd::from_raw_fd(fd) })
            };
            Ok(Prepared {
                runtime_api: listen(runtime_api_port)?,
                api: listen(api_port)?,
                extension: listen(extension_port)?,
                netns: thread_netns()?,
            })
        })();
        rustix::thread::move_into_link_name_space(
            original.as_fd(),
            Some(LinkNameSpaceType::Network),
        )
        .map_err(|e| SandboxError::NetnsRestore(e.into()))?;
        inside
    }
}

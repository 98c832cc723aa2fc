//! Pre-made network namespaces, each with `lo` up and the platform's listeners (the
//! Runtime API and Warden's API) already bound, so creating them (about 0.8 ms) stays off the spawn path.
//!
//! The namespace is made by the calling thread itself (`unshare` affects only the calling
//! thread), which then returns to its original namespace; no process is forked.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
    /// The namespace's link to the host, if it has one.
    pub link: Option<NetworkLink>,
    /// With a link: a UDP socket bound to 127.0.0.1:53, where the instance's resolver
    /// (its `/etc/resolv.conf` names it) is served by the platform.
    pub dns: Option<OwnedFd>,
}

/// A veth link between an instance's namespace (`eth0`, IPv4 only) and the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkLink {
    /// A number the caller uses to recognise the link (its allocator's index).
    pub index: u32,
    /// The host-side interface's name.
    pub host_ifname: String,
    /// The host's address on the link: the instance's default gateway.
    pub host_addr: Ipv4Addr,
    /// The instance's address.
    pub instance_addr: Ipv4Addr,
    /// The link's prefix length.
    pub prefix_len: u8,
    /// The `ip` program (iproute2) that configures it.
    pub ip_program: PathBuf,
}

/// Starts `ip -batch -` with `commands`, in the calling thread's network namespace (a
/// child process inherits the namespace of the thread that starts it); [`ip_finished`]
/// collects it.
fn ip_batch_start(ip: &Path, commands: &str) -> Result<Child, SandboxError> {
    let mut child = Command::new(ip)
        .args(["-batch", "-"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(link_failed)?;
    // A few hundred bytes: the pipe takes them without waiting for `ip` to read.
    let written = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(commands.as_bytes()),
        None => Ok(()),
    };
    if let Err(e) = written {
        let _ = child.kill();
        let _ = child.wait();
        return Err(link_failed(e));
    }
    Ok(child)
}

/// Waits for an `ip` run (at once if it has ended) and turns its failure into an error.
fn ip_finished(child: Child) -> Result<(), SandboxError> {
    let out = child.wait_with_output().map_err(link_failed)?;
    if !out.status.success() {
        return Err(link_failed(std::io::Error::other(format!(
            "ip: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))));
    }
    Ok(())
}

fn link_failed(source: std::io::Error) -> SandboxError {
    SandboxError::Netns {
        step: "configure the link",
        source,
    }
}

/// Writes a sysctl of the calling thread's network namespace.
fn net_sysctl(path: &str, value: &str) -> Result<(), SandboxError> {
    std::fs::write(path, value).map_err(|source| SandboxError::Netns {
        step: "set a network sysctl",
        source,
    })
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
    /// Runs `f` with this thread in `netns`, then returns the thread to its own namespace.
    fn inside<T>(
        netns: &OwnedFd,
        f: impl FnOnce() -> Result<T, SandboxError>,
    ) -> Result<T, SandboxError> {
        let original = thread_netns()?;
        rustix::thread::move_into_link_name_space(netns.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| SandboxError::Netns {
                step: "enter the namespace",
                source: e.into(),
            })?;
        let result = f();
        rustix::thread::move_into_link_name_space(
            original.as_fd(),
            Some(LinkNameSpaceType::Network),
        )
        .map_err(|e| SandboxError::NetnsRestore(e.into()))?;
        result
    }

    /// Creates a namespace with listeners on 127.0.0.1:`runtime_api_port`,
    /// 127.0.0.1:`api_port` and 127.0.0.1:`extension_port`. Needs `CAP_SYS_ADMIN`.
    ///
    /// With `link`, the namespace also gets IPv6 disabled and a resolver socket; its veth
    /// pair (`eth0` inside with the instance's address and a default route through the
    /// host's end, which stays in the caller's namespace) is made by
    /// [`Prepared::start_link`] and [`Prepared::finish_link`].
    pub(crate) fn create(
        runtime_api_port: u16,
        api_port: u16,
        extension_port: u16,
        link: Option<&NetworkLink>,
    ) -> Result<Prepared, SandboxError> {
        if let Some(l) = link {
            let name_ok = !l.host_ifname.is_empty()
                && l.host_ifname.len() <= 15
                && l.host_ifname.bytes().all(|b| b.is_ascii_alphanumeric());
            if !name_ok || l.prefix_len > 30 {
                return Err(SandboxError::InvalidSpec(format!(
                    "`{}` is not a usable interface name or /{} a usable link",
                    l.host_ifname, l.prefix_len
                )));
            }
        }
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
            let mut dns = None;
            if link.is_some() {
                dns = Some(OwnedFd::from(
                    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 53)).map_err(|source| {
                        SandboxError::Netns {
                            step: "bind the resolver socket",
                            source,
                        }
                    })?,
                ));
                // Before the link exists, so that it never gets an IPv6 address.
                net_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1")?;
                net_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")?;
            }
            Ok(Prepared {
                runtime_api: listen(runtime_api_port)?,
                api: listen(api_port)?,
                extension: listen(extension_port)?,
                netns: thread_netns()?,
                link: link.cloned(),
                dns,
            })
        })();
        rustix::thread::move_into_link_name_space(
            original.as_fd(),
            Some(LinkNameSpaceType::Network),
        )
        .map_err(|e| SandboxError::NetnsRestore(e.into()))?;
        inside
    }

    /// Starts making this namespace's link (see [`Prepared::create`]): one `ip` run in the
    /// caller's namespace makes the pair, moves its inside end into this namespace as
    /// `eth0`, and addresses and raises the host's end. It runs in the background;
    /// [`Prepared::finish_link`] waits for it and configures the inside end.
    pub(crate) fn start_link(&self) -> Result<Child, SandboxError> {
        let Some(l) = &self.link else {
            return Err(SandboxError::InvalidSpec(
                "this namespace has no link to make".to_owned(),
            ));
        };
        ip_batch_start(
            &l.ip_program,
            &format!(
                "link add {host} type veth peer name eth0 netns /proc/{pid}/fd/{fd}\n\
                 addr add {host_addr}/{len} dev {host}\n\
                 link set {host} up\n",
                host = l.host_ifname,
                pid = std::process::id(),
                fd = self.netns.as_raw_fd(),
                host_addr = l.host_addr,
                len = l.prefix_len,
            ),
        )
    }

    /// Waits for the `ip` run [`Prepared::start_link`] started, then configures the
    /// inside end from a thread in the namespace, without a process. On failure the
    /// caller drops the namespace, and the pair goes with it.
    pub(crate) fn finish_link(&self, ip: Child) -> Result<(), SandboxError> {
        ip_finished(ip)?;
        let Some(l) = &self.link else {
            return Ok(());
        };
        Self::inside(&self.netns, || {
            child::configure_link("eth0", l.instance_addr, l.prefix_len, l.host_addr).map_err(|e| {
                SandboxError::Netns {
                    step: "configure the instance's end of the link",
                    source: std::io::Error::from_raw_os_error(e),
                }
            })
        })
    }
}

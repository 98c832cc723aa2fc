//! Pre-made network namespaces, each with `lo` up and the platform's listeners (the
//! Runtime API and Warden's API) already bound, so creating them (about 0.8 ms) stays off the spawn path.
//!
//! The namespace is made by the calling thread itself (`unshare` affects only the calling
//! thread), which then returns to its original namespace; no process is forked.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

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
}

/// Creates the veth pair `host` (in the calling thread's network namespace) and `peer`,
/// made in the namespace `netns` at once, with one rtnetlink request: no `ip` process (a
/// fork and exec, and iproute2's start, were most of a link's cost).
fn create_veth(host: &str, peer: &str, netns: RawFd) -> Result<(), SandboxError> {
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
        NLM_F_REQUEST,
    };
    use netlink_packet_route::link::{
        InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
    };
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

    let mut inside = LinkMessage::default();
    inside.attributes = vec![
        LinkAttribute::IfName(peer.to_owned()),
        LinkAttribute::NetNsFd(netns),
    ];
    let mut outside = LinkMessage::default();
    outside.attributes = vec![
        LinkAttribute::IfName(host.to_owned()),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(inside))),
        ]),
    ];
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    header.sequence_number = 1;
    let mut request = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::NewLink(outside)),
    );
    request.finalize();
    let mut bytes = vec![0; request.buffer_len()];
    request.serialize(&mut bytes);

    let mut socket = Socket::new(NETLINK_ROUTE).map_err(link_failed)?;
    socket.bind_auto().map_err(link_failed)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(link_failed)?;
    socket.send(&bytes, 0).map_err(link_failed)?;
    // The answer is one acknowledgement (an error message whose code is 0) or an error;
    // the kernel sends nothing else on this socket.
    let mut answer = vec![0u8; 8192];
    let n = socket.recv(&mut &mut answer[..], 0).map_err(link_failed)?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&answer[..n.min(answer.len())])
        .map_err(|e| link_failed(std::io::Error::other(format!("rtnetlink answer: {e}"))))?;
    match reply.payload {
        NetlinkPayload::Error(e) => match e.code {
            None => Ok(()),
            Some(code) => Err(link_failed(std::io::Error::from_raw_os_error(-code.get()))),
        },
        other => Err(link_failed(std::io::Error::other(format!(
            "rtnetlink answered {:?} to a link creation",
            other.message_type()
        )))),
    }
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
    /// [`Prepared::make_link`].
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

    /// Makes this namespace's link (see [`Prepared::create`]): one rtnetlink request in
    /// the caller's namespace makes the pair with its inside end in this namespace as
    /// `eth0`; `ioctl`s address and raise the host's end, then, from a thread in the
    /// namespace, the inside end. No process is started. On failure the caller drops the
    /// namespace, and the pair goes with it.
    pub(crate) fn make_link(&self) -> Result<(), SandboxError> {
        let Some(l) = &self.link else {
            return Err(SandboxError::InvalidSpec(
                "this namespace has no link to make".to_owned(),
            ));
        };
        create_veth(&l.host_ifname, "eth0", self.netns.as_raw_fd())?;
        child::configure_link(&l.host_ifname, l.host_addr, l.prefix_len, None).map_err(|e| {
            SandboxError::Netns {
                step: "configure the host's end of the link",
                source: std::io::Error::from_raw_os_error(e),
            }
        })?;
        Self::inside(&self.netns, || {
            child::configure_link("eth0", l.instance_addr, l.prefix_len, Some(l.host_addr)).map_err(
                |e| SandboxError::Netns {
                    step: "configure the instance's end of the link",
                    source: std::io::Error::from_raw_os_error(e),
                },
            )
        })
    }
}

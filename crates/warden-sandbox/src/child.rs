//! The code that runs in the cloned child, between `clone3` and `execve`.
//!
//! INVARIANT: the parent may be multi-threaded (tests, or a future zygote), so everything
//! here must be async-signal-safe: no allocation, no locks, no panics on any
//! reachable path, only raw syscalls on data prepared by the parent in [`ChildPlan`].
//! Failures are reported to the parent as `(step, errno)` over the control socket.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::RawFd;

use crate::landlock;
use crate::seccomp::SockFilter;

/// Names of the child's steps, indexed by the step code sent to the parent on failure.
pub(crate) const STEP_NAMES: &[&str] = &[
    "wait for user namespace maps",
    "join network namespace",
    "make mounts private",
    "mount root tmpfs",
    "create mount point",
    "bind mount read-only path",
    "make root read-only",
    "mount /dev",
    "bind device node",
    "mount /proc",
    "mount /tmp",
    "pivot_root",
    "bring loopback up",
    "create platform listeners",
    "send platform listeners",
    "set resource limit",
    "set up standard streams",
    "close inherited file descriptors",
    "drop capability bounding set",
    "switch user",
    "drop capabilities",
    "set no_new_privs",
    "apply landlock",
    "wait for cgroup attach",
    "install seccomp filter",
    "change directory",
    "start init",
    "execve",
    "set hostname",
    "create the instance's user namespace",
];

#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Step {
    WaitMaps,
    Setns,
    MakePrivate,
    MountRoot,
    Mkdir,
    Bind,
    RootReadOnly,
    MountDev,
    BindDevice,
    MountProc,
    MountTmp,
    PivotRoot,
    LoopbackUp,
    Listener,
    SendListener,
    Rlimit,
    Stdio,
    CloseFds,
    CapBounding,
    SwitchUser,
    DropCaps,
    NoNewPrivs,
    Landlock,
    WaitGo,
    Seccomp,
    Chdir,
    Init,
    Execve,
    Hostname,
    OwnUserns,
}

/// Control messages on the parent/child socket.
pub(crate) const MSG_MAPS_DONE: u8 = b'M';
pub(crate) const MSG_GO: u8 = b'G';
pub(crate) const MSG_LISTENER: u8 = b'L';
pub(crate) const MSG_EXEC: u8 = b'X';
pub(crate) const MSG_ERROR: u8 = b'E';

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A user namespace of the instance's own, made by the child once it runs as the
/// function's uid (root mode only; see [`ChildPlan::own_userns`]).
pub(crate) struct OwnUserns {
    /// `/proc/self/setgroups`, `/proc/self/uid_map`, `/proc/self/gid_map`.
    pub setgroups_path: CString,
    pub uid_map_path: CString,
    pub gid_map_path: CString,
    /// `"<uid> <uid> 1"` and `"<gid> <gid> 1"`: the ids map to themselves.
    pub uid_map: CString,
    pub gid_map: CString,
    /// `RLIMIT_NPROC`, counted in the new namespace: for this instance alone.
    pub nproc: u64,
}

/// Everything the child does, prepared by the parent before `clone3`.
pub(crate) struct ChildPlan {
    pub userns: bool,
    /// With a value (root mode), the child moves into a user namespace of its own after it
    /// switched to the function's uid and limits the processes counted there. The kernel
    /// checks that limit at the start of `fork`, before it copies the address space; the
    /// pids controller checks its own only after, so a fork bomb held at the pids limit
    /// alone keeps copying (and taking the file locks every process's mappings share).
    pub own_userns: Option<OwnUserns>,
    /// A pooled network namespace to join, or -1 when the child got a fresh one from clone.
    pub netns_fd: RawFd,
    /// Whether the child creates the platform's listeners (Runtime API, Warden's API, the
    /// Parameters and Secrets extension) and sends them to the parent.
    pub make_listener: bool,
    /// Ports of those listeners on 127.0.0.1, in the order they are sent.
    pub listener_ports: [u16; 3],
    pub hostname: CString,
    pub staging: CString,
    pub root_opts: CString,
    /// Directories to create under `staging`, parents first.
    pub dirs: Vec<CString>,
    /// Empty files to create as mount points for file binds.
    pub files: Vec<CString>,
    /// `(host source, target under staging)`, parents first.
    pub binds: Vec<(CString, CString)>,
    pub dev_dir: CString,
    pub dev_opts: CString,
    pub devices: Vec<(CString, CString)>,
    /// `(link target, link path under staging)`.
    pub dev_links: Vec<(CString, CString)>,
    pub proc_dir: CString,
    pub tmp_dir: CString,
    pub tmp_opts: CString,
    pub dot: CString,
    pub slash: CString,
    pub dev_null: CString,
    pub tmpfs: CString,
    pub proc_fs: CString,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    pub stdout: RawFd,
    pub stderr: RawFd,
    pub last_cap: u32,
    pub uid: u32,
    pub gid: u32,
    pub landlock: Option<landlock::Plan>,
    pub use_init: bool,
    pub cwd: CString,
    pub program: CString,
    /// Null-terminated pointer arrays into `_argv` / `_envp`.
    pub argv: Vec<*const libc::c_char>,
    pub envp: Vec<*const libc::c_char>,
    pub _argv: Vec<CString>,
    pub _envp: Vec<CString>,
}

pub(crate) type Failure = (Step, i32);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Turns a libc-style return value into a step failure.
fn check(step: Step, ret: libc::c_long) -> Result<libc::c_long, Failure> {
    if ret < 0 {
        Err((step, errno()))
    } else {
        Ok(ret)
    }
}

fn send_byte(sync: RawFd, byte: u8) -> libc::c_long {
    // SAFETY: sends one byte from a live stack variable on a socket fd we own.
    unsafe { libc::send(sync, (&byte as *const u8).cast(), 1, libc::MSG_NOSIGNAL) as libc::c_long }
}

/// Blocks until the parent sends `expected`; EOF or anything else means the parent gave up.
fn wait_for(sync: RawFd, expected: u8, step: Step) -> Result<(), Failure> {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into a live stack variable.
        let n = unsafe { libc::recv(sync, (&mut byte as *mut u8).cast(), 1, 0) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n == 1 && byte == expected {
            return Ok(());
        }
        return Err((step, if n < 0 { errno() } else { libc::ECONNRESET }));
    }
}

/// Entry point of the cloned child. Never returns.
pub(crate) fn run(plan: &ChildPlan, seccomp: &[SockFilter], sync: RawFd) -> ! {
    let (step, err) = match setup(plan, seccomp, sync) {
        Err(failure) => failure,
        Ok(never) => match never {},
    };
    let mut msg = [0u8; 9];
    msg[0] = MSG_ERROR;
    msg[1..5].copy_from_slice(&(step as u32).to_le_bytes());
    msg[5..9].copy_from_slice(&err.to_le_bytes());
    // SAFETY: sends a stack buffer; a failure here cannot be reported anywhere else.
    unsafe { libc::send(sync, msg.as_ptr().cast(), msg.len(), libc::MSG_NOSIGNAL) };
    // SAFETY: _exit ends the child without running the parent's atexit handlers.
    unsafe { libc::_exit(127) }
}

fn mount(
    step: Step,
    src: &CString,
    dst: &CString,
    fstype: Option<&CString>,
    flags: libc::c_ulong,
    data: Option<&CString>,
) -> Result<(), Failure> {
    let fstype = fstype.map_or(std::ptr::null(), |f| f.as_ptr());
    let data = data.map_or(std::ptr::null(), |d| d.as_ptr().cast());
    // SAFETY: all pointers are null or NUL-terminated strings owned by the plan.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fstype, flags, data) };
    check(step, rc as libc::c_long)?;
    Ok(())
}

fn mount_setattr(step: Step, path: &CString, set: u64, flags: libc::c_uint) -> Result<(), Failure> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a live `struct mount_attr` of the size passed; `path` is NUL-terminated.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(step, r)?;
    Ok(())
}

fn create_file(step: Step, path: &CString) -> Result<(), Failure> {
    // SAFETY: creates (or opens) a file at a NUL-terminated path; the fd is closed below.
    let fd = check(step, unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    } as libc::c_long)?;
    // SAFETY: closes the fd opened just above.
    unsafe { libc::close(fd as RawFd) };
    Ok(())
}

/// Brings `lo` up in the current network namespace (a new namespace has it down).
pub(crate) fn bring_loopback_up() -> Result<(), i32> {
    #[repr(C)]
    struct IfreqFlags {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    // SAFETY: creates a socket used only for the interface ioctls below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(errno());
    }
    let mut req = IfreqFlags {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: SIOCGIFFLAGS fills the flags of a live, correctly sized `struct ifreq`.
    let mut r = unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req as *mut IfreqFlags) };
    if r == 0 {
        req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads the same live `struct ifreq`.
        r = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &req as *const IfreqFlags) };
    }
    let e = errno();
    // SAFETY: closes the socket created above.
    unsafe { libc::close(sock) };
    if r < 0 {
        Err(e)
    } else {
        Ok(())
    }
}

/// Gives the interface `name` of the calling thread's network namespace the address
/// `addr/prefix_len`, brings it up, and, with a `gateway`, routes everything else through
/// it: either end of an instance's link, configured with `ioctl`s so that no process is
/// started.
pub(crate) fn configure_link(
    name: &str,
    addr: std::net::Ipv4Addr,
    prefix_len: u8,
    gateway: Option<std::net::Ipv4Addr>,
) -> Result<(), i32> {
    #[repr(C)]
    struct IfreqAddr {
        name: [u8; 16],
        addr: libc::sockaddr_in,
        _pad: [u8; 8],
    }
    #[repr(C)]
    struct IfreqFlags {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 15 {
        return Err(libc::EINVAL);
    }
    let mut ifname = [0u8; 16];
    ifname[..bytes.len()].copy_from_slice(bytes);
    let inet = |a: std::net::Ipv4Addr| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mask = std::net::Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(prefix_len))
            .unwrap_or(0),
    );
    // SAFETY: creates a socket used only for the interface ioctls below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(errno());
    }
    let result = (|| {
        for (request, value) in [(libc::SIOCSIFADDR, addr), (libc::SIOCSIFNETMASK, mask)] {
            let req = IfreqAddr {
                name: ifname,
                addr: inet(value),
                _pad: [0; 8],
            };
            // SAFETY: SIOCSIFADDR and SIOCSIFNETMASK read a live, correctly sized
            // `struct ifreq` holding a `sockaddr_in`.
            if unsafe { libc::ioctl(sock, request, &req as *const IfreqAddr) } < 0 {
                return Err(errno());
            }
        }
        let mut flags = IfreqFlags {
            name: ifname,
            flags: 0,
            _pad: [0; 22],
        };
        // SAFETY: SIOCGIFFLAGS fills the flags of a live, correctly sized `struct ifreq`.
        if unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut flags as *mut IfreqFlags) } < 0 {
            return Err(errno());
        }
        flags.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads the same live `struct ifreq`.
        if unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &flags as *const IfreqFlags) } < 0 {
            return Err(errno());
        }
        let Some(gateway) = gateway else {
            return Ok(());
        };
        let as_sockaddr = |a: std::net::Ipv4Addr| {
            // SAFETY: `sockaddr_in` and `sockaddr` have the same size, and the kernel reads
            // the family first; this is how the route ioctl takes IPv4 addresses.
            unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(inet(a)) }
        };
        let mut dev = ifname;
        // SAFETY: zeroes are a valid `rtentry` (null device pointer, zero numbers).
        let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
        route.rt_dst = as_sockaddr(std::net::Ipv4Addr::UNSPECIFIED);
        route.rt_genmask = as_sockaddr(std::net::Ipv4Addr::UNSPECIFIED);
        route.rt_gateway = as_sockaddr(gateway);
        route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        route.rt_dev = dev.as_mut_ptr().cast();
        // SAFETY: SIOCADDRT reads a live `rtentry` whose device name points at `dev`,
        // a NUL-terminated buffer that outlives the call.
        if unsafe { libc::ioctl(sock, libc::SIOCADDRT, &route as *const libc::rtentry) } < 0 {
            return Err(errno());
        }
        Ok(())
    })();
    // SAFETY: closes the socket created above.
    unsafe { libc::close(sock) };
    result
}

/// Creates a TCP listener on 127.0.0.1:`port` in the current network namespace.
pub(crate) fn listen_loopback(port: u16) -> Result<RawFd, i32> {
    // SAFETY: creates a TCP socket; ownership is returned to the caller or closed on error.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno());
    }
    let one: libc::c_int = 1;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: SO_REUSEADDR takes a live c_int of the size passed.
    let mut r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            4,
        )
    };
    if r == 0 {
        // SAFETY: `addr` is a live sockaddr_in of the size passed.
        r = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
    }
    if r == 0 {
        // SAFETY: listen on the socket we own.
        r = unsafe { libc::listen(fd, 128) };
    }
    if r < 0 {
        let e = errno();
        // SAFETY: closes the socket created above.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

/// Sends the listeners in one message, in the order of `fds`.
fn send_fds(sync: RawFd, fds: [RawFd; 3]) -> libc::c_long {
    // On x86_64 and aarch64: CMSG_LEN(12) == 28 (the header's 16 bytes and three fds) and
    // CMSG_SPACE(12) == 32, which is this struct's size (padded to the header's alignment).
    #[repr(C)]
    struct Cmsg {
        hdr: libc::cmsghdr,
        fds: [RawFd; 3],
    }
    let mut byte = MSG_LISTENER;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: cmsghdr is plain data; all-zero is a valid value before the fields are set.
    let mut cmsg: Cmsg = unsafe { std::mem::zeroed() };
    cmsg.hdr.cmsg_len = std::mem::size_of::<libc::cmsghdr>() + std::mem::size_of::<[RawFd; 3]>();
    cmsg.hdr.cmsg_level = libc::SOL_SOCKET;
    cmsg.hdr.cmsg_type = libc::SCM_RIGHTS;
    cmsg.fds = fds;
    // SAFETY: msghdr is plain data; all-zero is a valid value before the fields are set.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut cmsg as *mut Cmsg).cast();
    msg.msg_controllen = std::mem::size_of::<Cmsg>();
    // SAFETY: every pointer in `msg` refers to a live stack value for the duration of the call.
    unsafe { libc::sendmsg(sync, &msg, libc::MSG_NOSIGNAL) as libc::c_long }
}

fn setup(plan: &ChildPlan, seccomp: &[SockFilter], sync: RawFd) -> Result<Infallible, Failure> {
    // SAFETY: asks the kernel to SIGKILL us if the spawning thread dies; no memory involved.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    check(Step::WaitMaps, rc as libc::c_long)?;
    if plan.userns {
        // The parent writes uid_map/gid_map; until then we have no valid ids.
        wait_for(sync, MSG_MAPS_DONE, Step::WaitMaps)?;
    }
    if plan.netns_fd >= 0 {
        // SAFETY: joins the pooled namespace through an fd the parent keeps open.
        let rc = unsafe { libc::setns(plan.netns_fd, libc::CLONE_NEWNET) };
        check(Step::Setns, rc as libc::c_long)?;
    }
    // SAFETY: sethostname reads a NUL-terminated string of the given length.
    check(Step::Hostname, unsafe {
        libc::sethostname(plan.hostname.as_ptr(), plan.hostname.as_bytes().len())
    } as libc::c_long)?;

    // On systemd hosts `/` is shared; without this, mounts leak to the host.
    let none = &plan.slash;
    mount(
        Step::MakePrivate,
        none,
        &plan.slash,
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    mount(
        Step::MountRoot,
        &plan.tmpfs,
        &plan.staging,
        Some(&plan.tmpfs),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&plan.root_opts),
    )?;
    for dir in &plan.dirs {
        // SAFETY: mkdir on a NUL-terminated path inside our fresh tmpfs.
        check(Step::Mkdir, unsafe { libc::mkdir(dir.as_ptr(), 0o755) }
            as libc::c_long)?;
    }
    for file in &plan.files {
        create_file(Step::Mkdir, file)?;
    }
    for (src, dst) in &plan.binds {
        mount(
            Step::Bind,
            src,
            dst,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
    }
    // One recursive call makes the root tmpfs and every bind (with its submounts)
    // read-only, nosuid and nodev, without touching locked atime flags in a user namespace.
    mount_setattr(
        Step::RootReadOnly,
        &plan.staging,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        AT_RECURSIVE,
    )?;

    mount(
        Step::MountDev,
        &plan.tmpfs,
        &plan.dev_dir,
        Some(&plan.tmpfs),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&plan.dev_opts),
    )?;
    for (src, dst) in &plan.devices {
        create_file(Step::BindDevice, dst)?;
        mount(Step::BindDevice, src, dst, None, libc::MS_BIND, None)?;
    }
    for (target, link) in &plan.dev_links {
        // SAFETY: symlink with two NUL-terminated paths.
        let rc = unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) };
        check(Step::MountDev, rc as libc::c_long)?;
    }
    mount_setattr(Step::MountDev, &plan.dev_dir, MOUNT_ATTR_RDONLY, 0)?;
    // We are pid 1 of the new pid namespace, so this /proc shows only the instance.
    mount(
        Step::MountProc,
        &plan.proc_fs,
        &plan.proc_dir,
        Some(&plan.proc_fs),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    mount(
        Step::MountTmp,
        &plan.tmpfs,
        &plan.tmp_dir,
        Some(&plan.tmpfs),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&plan.tmp_opts),
    )?;

    // SAFETY: chdir to a NUL-terminated path.
    let rc = unsafe { libc::chdir(plan.staging.as_ptr()) };
    check(Step::PivotRoot, rc as libc::c_long)?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
    // only the new root, with no directory for the old root needed.
    // SAFETY: pivot_root with two NUL-terminated paths.
    check(Step::PivotRoot, unsafe {
        libc::syscall(libc::SYS_pivot_root, plan.dot.as_ptr(), plan.dot.as_ptr())
    })?;
    // SAFETY: detaches the old root stacked on ".".
    let rc = unsafe { libc::umount2(plan.dot.as_ptr(), libc::MNT_DETACH) };
    check(Step::PivotRoot, rc as libc::c_long)?;
    // SAFETY: chdir to "/".
    check(Step::PivotRoot, unsafe { libc::chdir(plan.slash.as_ptr()) }
        as libc::c_long)?;

    if plan.make_listener {
        bring_loopback_up().map_err(|e| (Step::LoopbackUp, e))?;
        let [runtime_port, api_port, extension_port] = plan.listener_ports;
        let runtime = listen_loopback(runtime_port).map_err(|e| (Step::Listener, e))?;
        let api = listen_loopback(api_port).map_err(|e| (Step::Listener, e))?;
        let extension = listen_loopback(extension_port).map_err(|e| (Step::Listener, e))?;
        check(
            Step::SendListener,
            send_fds(sync, [runtime, api, extension]),
        )?;
        // SAFETY: our copies are no longer needed; the parent received its own.
        unsafe { libc::close(runtime) };
        // SAFETY: as above.
        unsafe { libc::close(api) };
        // SAFETY: as above.
        unsafe { libc::close(extension) };
    }

    for (resource, value) in &plan.rlimits {
        let lim = libc::rlimit {
            rlim_cur: *value,
            rlim_max: *value,
        };
        // SAFETY: setrlimit reads a live rlimit struct.
        check(Step::Rlimit, unsafe { libc::setrlimit(*resource, &lim) }
            as libc::c_long)?;
    }

    // Move the log pipes out of the way first, so dup2 below cannot clobber one with the other.
    // SAFETY: duplicates an fd the parent passed us to a number >= 3.
    let out = check(
        Step::Stdio,
        unsafe { libc::fcntl(plan.stdout, libc::F_DUPFD_CLOEXEC, 3) } as libc::c_long,
    )? as RawFd;
    // SAFETY: as above, for stderr.
    let err = check(
        Step::Stdio,
        unsafe { libc::fcntl(plan.stderr, libc::F_DUPFD_CLOEXEC, 3) } as libc::c_long,
    )? as RawFd;
    // SAFETY: opens the sandbox's /dev/null for stdin.
    let null = check(Step::Stdio, unsafe {
        libc::open(plan.dev_null.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
    } as libc::c_long)? as RawFd;
    for (from, to) in [(null, 0), (out, 1), (err, 2)] {
        // SAFETY: dup2 between fds we own; the targets lose CLOEXEC as intended.
        check(Step::Stdio, unsafe { libc::dup2(from, to) } as libc::c_long)?;
    }
    // Everything else the parent had open (it may not use CLOEXEC everywhere) closes at exec.
    // SAFETY: close_range only changes fd flags.
    check(Step::CloseFds, unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    })?;

    drop_bounding_set(Step::CapBounding, plan.last_cap)?;
    switch_user(plan.uid, plan.gid, !plan.userns)?;
    // In a user namespace the caps survive setresuid (they came from the namespace), and the
    // inheritable set survives it everywhere: clear all three explicitly.
    clear_capabilities(Step::DropCaps)?;
    if let Some(own) = &plan.own_userns {
        enter_own_userns(own, plan.last_cap)?;
    }
    // SAFETY: sets no_new_privs; no memory involved.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(Step::NoNewPrivs, rc as libc::c_long)?;

    if let Some(ll) = &plan.landlock {
        apply_landlock(ll)?;
    }

    // SAFETY: chdir to a NUL-terminated path inside the sandbox.
    check(Step::Chdir, unsafe { libc::chdir(plan.cwd.as_ptr()) }
        as libc::c_long)?;
    // The parent attaches us to the cgroup slot meanwhile; user code must not start before.
    wait_for(sync, MSG_GO, Step::WaitGo)?;

    let prog = SockFprog {
        len: seccomp.len() as u16,
        filter: seccomp.as_ptr(),
    };
    // SAFETY: the kernel copies the filter from `prog`, which points at a live slice of
    // the length given.
    check(Step::Seccomp, unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const SockFprog,
            0,
            0,
        )
    } as libc::c_long)?;

    if plan.use_init {
        // A raw fork (no atfork handlers, no locks): plain SIGCHLD, which the filter allows.
        // SAFETY: fork-like clone without a new stack; the child continues below.
        let pid = check(Step::Init, unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        })?;
        if pid > 0 {
            init_loop(pid as libc::pid_t, sync);
        }
    }
    check(Step::Execve, send_byte(sync, MSG_EXEC))?;
    // SAFETY: argv and envp are null-terminated arrays of pointers into CStrings owned by
    // the plan, which lives until execve replaces this image.
    unsafe {
        libc::execve(
            plan.program.as_ptr(),
            plan.argv.as_ptr(),
            plan.envp.as_ptr(),
        )
    };
    Err((Step::Execve, errno()))
}

/// Empties the capability bounding set (capabilities `0..=last_cap`) and the ambient set.
fn drop_bounding_set(step: Step, last_cap: u32) -> Result<(), Failure> {
    for cap in 0..=last_cap {
        // SAFETY: removes one capability from the bounding set; no memory involved.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        check(step, rc as libc::c_long)?;
    }
    // SAFETY: clears the ambient set; no memory involved.
    check(step, unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    } as libc::c_long)?;
    Ok(())
}

/// Empties the permitted, effective and inheritable capability sets.
fn clear_capabilities(step: Step) -> Result<(), Failure> {
    let header = libc_cap_header();
    let data = [CapData::default(); 2];
    // SAFETY: capset reads a version-3 header and two data structs, all live on the stack.
    check(step, unsafe {
        libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr())
    })?;
    Ok(())
}

/// Becomes `uid`/`gid` (all three ids of each), first dropping the supplementary groups
/// when `clear_groups`.
///
/// Raw syscalls, not the libc wrappers: glibc's set*id broadcast the change to every
/// thread it knows of, and the threads of a multi-threaded parent do not exist here, so
/// the wrapper waits for them forever.
pub(crate) fn switch_user(uid: u32, gid: u32, clear_groups: bool) -> Result<(), Failure> {
    if clear_groups {
        // SAFETY: drops supplementary groups; a null list with size 0 reads nothing.
        check(Step::SwitchUser, unsafe {
            libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>())
        })?;
    }
    // SAFETY: sets all three gids; no memory involved.
    check(Step::SwitchUser, unsafe {
        libc::syscall(libc::SYS_setresgid, gid, gid, gid)
    })?;
    // SAFETY: sets all three uids; leaving uid 0 also clears the permitted and effective sets.
    check(Step::SwitchUser, unsafe {
        libc::syscall(libc::SYS_setresuid, uid, uid, uid)
    })?;
    Ok(())
}

/// Moves into a new user namespace where the ids map to themselves, limits the processes
/// counted there, and drops the capabilities the new namespace gave. Also run, as it is,
/// by the sandbox's start-up probe of the host's support.
pub(crate) fn enter_own_userns(own: &OwnUserns, last_cap: u32) -> Result<(), Failure> {
    // Leaving uid 0 made the process non-dumpable, which makes its `/proc/self` files
    // root's and the map files unwritable to it. It becomes dumpable again at `execve`
    // (its ids no longer differ), so nothing is given away by doing it now.
    // SAFETY: prctl with integer arguments.
    check(Step::OwnUserns, unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 1 as libc::c_ulong, 0, 0, 0)
    } as libc::c_long)?;
    // SAFETY: unshare takes flags only.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    check(Step::OwnUserns, rc as libc::c_long)?;
    // The namespace's creator may map its own uid, and its own gid once setgroups is
    // denied, each to itself.
    write_all(&own.setgroups_path, b"deny")?;
    write_all(&own.uid_map_path, own.uid_map.as_bytes())?;
    write_all(&own.gid_map_path, own.gid_map.as_bytes())?;
    let lim = libc::rlimit {
        rlim_cur: own.nproc,
        rlim_max: own.nproc,
    };
    // SAFETY: setrlimit reads a live rlimit struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) };
    check(Step::OwnUserns, rc as libc::c_long)?;
    // A new user namespace gives its creator every capability in it and a full bounding
    // set: drop them all again.
    drop_bounding_set(Step::OwnUserns, last_cap)?;
    clear_capabilities(Step::OwnUserns)
}

/// Writes `bytes` to the file at `path` in one `write`, as `/proc`'s map files want.
fn write_all(path: &CString, bytes: &[u8]) -> Result<(), Failure> {
    // SAFETY: opens a NUL-terminated path.
    let fd = check(Step::OwnUserns, unsafe {
        libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC)
    } as libc::c_long)? as RawFd;
    // SAFETY: writes from a live slice of the length given.
    let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
    if written < 0 {
        return Err((Step::OwnUserns, errno()));
    }
    if written as usize != bytes.len() {
        return Err((Step::OwnUserns, libc::EIO));
    }
    Ok(())
}

/// pid 1 of the instance: reaps every orphan and leaves with the function's
/// status, which ends the pid namespace and kills whatever the function left behind.
fn init_loop(function: libc::pid_t, sync: RawFd) -> ! {
    // SAFETY: init keeps no copy of the control socket, so the parent sees EOF at exec.
    unsafe { libc::close(sync) };
    // SAFETY: as above for the standard streams, so log readers see EOF when the function ends.
    unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
    loop {
        let mut status = 0;
        // SAFETY: waits for any child; `status` is a live c_int.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == function || (r < 0 && errno() == libc::ECHILD) {
            let code = if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            };
            // SAFETY: leaves init; the kernel kills the rest of the pid namespace.
            unsafe { libc::_exit(code) };
        }
    }
}

fn apply_landlock(plan: &landlock::Plan) -> Result<(), Failure> {
    let size = std::mem::size_of::<landlock::RulesetAttr>();
    // SAFETY: the kernel reads `size` bytes from a live RulesetAttr.
    let ruleset = check(Step::Landlock, unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &plan.attr as *const landlock::RulesetAttr,
            size,
            0u32,
        )
    })? as RawFd;
    for (path, access) in &plan.rules {
        // SAFETY: O_PATH open of a NUL-terminated path, closed below.
        let fd = check(Step::Landlock, unsafe {
            libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC)
        } as libc::c_long)? as RawFd;
        let attr = landlock::PathBeneathAttr {
            allowed_access: *access,
            parent_fd: fd,
        };
        // SAFETY: the kernel reads a live, packed path_beneath_attr.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset,
                landlock::RULE_PATH_BENEATH,
                &attr as *const landlock::PathBeneathAttr,
                0u32,
            )
        };
        // SAFETY: closes the O_PATH fd opened above.
        unsafe { libc::close(fd) };
        check(Step::Landlock, r)?;
    }
    // SAFETY: restricts this thread with the ruleset fd we own.
    check(Step::Landlock, unsafe {
        libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32)
    })?;
    // SAFETY: closes the ruleset fd.
    unsafe { libc::close(ruleset) };
    Ok(())
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn libc_cap_header() -> CapHeader {
    CapHeader {
        version: 0x2008_0522,
        pid: 0,
    } // _LINUX_CAPABILITY_VERSION_3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_has_a_name() {
        assert_eq!(STEP_NAMES.len(), Step::OwnUserns as usize + 1);
        assert_eq!(STEP_NAMES[Step::PivotRoot as usize], "pivot_root");
        assert_eq!(STEP_NAMES[Step::Execve as usize], "execve");
    }
}

//! Escape-attempt suite: runs the hostile probe fixture inside real sandboxes and asserts
//! the exact failure of each attempt. Needs root (as CI has); the unprivileged mode is
//! covered by re-running one test of this binary as `nobody`.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use warden_sandbox::{Exit, Sandbox, SandboxConfig, SandboxError, SandboxSpec, Sandboxed};

/// A sandbox plus a code directory. The probe is bind-mounted at `/var/runtime/bootstrap`
/// rather than copied: a copy written while another test thread clones would still be open
/// for writing in that child, and exec would fail with `ETXTBSY`.
struct Fixture {
    sandbox: Sandbox,
    code: tempfile::TempDir,
    _staging: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let staging = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        staging_dir: staging.path().join("root"),
        netns_pool_size: 1,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config).unwrap();
    let code = tempfile::tempdir().unwrap();
    std::fs::set_permissions(code.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(code.path().join("handler.txt"), "code").unwrap();
    Fixture {
        sandbox,
        code,
        _staging: staging,
    }
}

/// The host paths a dynamically linked probe needs, bound read-only at the same place.
fn runtime_binds() -> Vec<(PathBuf, PathBuf)> {
    let mut binds: Vec<_> = ["/usr", "/lib", "/lib64"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| (PathBuf::from(p), PathBuf::from(p)))
        .collect();
    binds.push((probe_bin(), PathBuf::from(PROBE)));
    binds
}

/// Variable naming a copy of the probe that the unprivileged re-run of this binary uses.
const PROBE_ENV: &str = "WARDEN_SANDBOX_TEST_PROBE";

/// The probe on the host: the built one, or the copy named by [`PROBE_ENV`].
fn probe_bin() -> PathBuf {
    std::env::var_os(PROBE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_warden-sandbox-probe")))
}

const PROBE: &str = "/var/runtime/bootstrap";

struct Limits {
    memory_mb: u32,
    tmp_mb: u32,
    pids_max: u32,
}

const DEFAULT: Limits = Limits {
    memory_mb: 128,
    tmp_mb: 16,
    pids_max: 32,
};

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}

impl Fixture {
    fn spawn(
        &mut self,
        args: &[&str],
        limits: &Limits,
    ) -> Result<(Sandboxed, OwnedFd), SandboxError> {
        self.spawn_linked(args, limits, None)
    }

    fn spawn_linked(
        &mut self,
        args: &[&str],
        limits: &Limits,
        linked: Option<&str>,
    ) -> Result<(Sandboxed, OwnedFd), SandboxError> {
        self.spawn_at(args, limits, linked, 100)
    }

    fn spawn_at(
        &mut self,
        args: &[&str],
        limits: &Limits,
        linked: Option<&str>,
        cpu_quota_percent: u32,
    ) -> Result<(Sandboxed, OwnedFd), SandboxError> {
        let (out_r, out_w) = pipe();
        let spec = SandboxSpec {
            program: PathBuf::from(PROBE),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".into(), "/usr/bin".into())],
            cwd: PathBuf::from("/var/task"),
            code_dir: self.code.path().to_owned(),
            readonly_binds: runtime_binds(),
            memory_mb: limits.memory_mb,
            tmp_mb: limits.tmp_mb,
            pids_max: limits.pids_max,
            cpu_quota_percent,
            stderr: out_w.try_clone().unwrap(),
            stdout: out_w,
            linked: linked.map(str::to_owned),
        };
        self.sandbox.spawn(spec).map(|i| (i, out_r))
    }

    /// Runs the probe to completion and returns its output and exit.
    fn run_with(&mut self, args: &[&str], limits: &Limits) -> (String, Exit) {
        let (instance, out) = self.spawn(args, limits).unwrap();
        let mut text = String::new();
        std::fs::File::from(out).read_to_string(&mut text).unwrap();
        let exit = self.sandbox.wait(instance).unwrap();
        (text, exit)
    }

    fn run(&mut self, args: &[&str]) -> String {
        let (text, exit) = self.run_with(args, &DEFAULT);
        assert_eq!(exit.status.code, Some(0), "probe {args:?} failed: {text}");
        text.trim().to_owned()
    }
}

/// Reads the first line of a pipe, failing after a generous deadline instead of hanging.
fn first_line(fd: &OwnedFd) -> String {
    let mut line = Vec::new();
    loop {
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let ts = rustix::event::Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        assert_eq!(
            rustix::event::poll(&mut fds, Some(&ts)).unwrap(),
            1,
            "no output within 10 s"
        );
        let mut b = [0u8; 1];
        assert_eq!(
            rustix::io::read(fd, &mut b).unwrap(),
            1,
            "eof before a full line"
        );
        if b[0] == b'\n' {
            return String::from_utf8(line).unwrap();
        }
        line.push(b[0]);
    }
}

fn assert_no_privileges(fx: &mut Fixture) {
    let status = fx.run(&["status"]);
    let expected = "uid 993\ngid 990\npid 2\nCapInh: 0000000000000000\nCapPrm: 0000000000000000\nCapEff: 0000000000000000\nCapBnd: 0000000000000000\nCapAmb: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2";
    assert_eq!(status, expected);
}

#[test]
fn function_has_no_privileges() {
    assert_no_privileges(&mut fixture());
}

#[test]
fn only_the_sandbox_view_of_the_filesystem_is_visible() {
    let mut fx = fixture();
    let mut root = fx.run(&["ls", "/"]);
    root = root.replace("lib64 ", "").replace(" lib64", "");
    assert_eq!(root, "dev lib proc tmp usr var");
    assert_eq!(
        fx.run(&["ls", "/dev"]),
        "fd full null random stderr stdin stdout urandom zero"
    );
    assert_eq!(fx.run(&["ls", "/var/task"]), "handler.txt");
    assert_eq!(fx.run(&["ls", "/var/runtime"]), "bootstrap");
    assert_eq!(fx.run(&["read", "/var/task/handler.txt"]), "ok");
    assert_eq!(
        fx.run(&["read", "/etc/shadow"]),
        format!("err {}", libc::ENOENT)
    );
    // The host's copy of another function's code, by its host path.
    let host_code = fx.code.path().join("handler.txt");
    assert_eq!(
        fx.run(&["read", host_code.to_str().unwrap()]),
        format!("err {}", libc::ENOENT)
    );
    // Only the instance's own processes: init (1) and the probe (2).
    assert_eq!(
        fx.run(&["ls", "/proc"])
            .split(' ')
            .filter(|e| e.parse::<u32>().is_ok())
            .collect::<Vec<_>>(),
        vec!["1", "2"]
    );
}

#[test]
fn writes_succeed_only_in_tmp() {
    let mut fx = fixture();
    assert_eq!(fx.run(&["write", "/tmp/x"]), "ok");
    for path in ["/var/task/x", "/var/runtime/x", "/usr/x", "/x", "/dev/x"] {
        assert_eq!(
            fx.run(&["write", path]),
            format!("err {}", libc::EROFS),
            "{path}"
        );
    }
    assert_eq!(fx.run(&["write", "/dev/null"]), "ok");
}

#[test]
fn forbidden_syscalls_fail_with_eperm() {
    let mut fx = fixture();
    for probe in [
        "mount", "ptrace", "bpf", "keyctl", "rawsock", "packet", "netlink", "unshare", "io_uring",
    ] {
        assert_eq!(fx.run(&[probe]), format!("err {}", libc::EPERM), "{probe}");
    }
    // clone3 looks absent, so libc falls back to clone, and threads still work.
    assert_eq!(fx.run(&["clone3"]), format!("err {}", libc::ENOSYS));
    assert_eq!(fx.run(&["thread"]), "ok");
}

#[test]
fn host_loopback_services_are_unreachable() {
    let mut fx = fixture();
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port().to_string();
    assert_eq!(
        fx.run(&["connect", &port]),
        format!("err {}", libc::ECONNREFUSED)
    );
}

#[test]
fn runtime_api_listener_receives_the_function_connection() {
    let mut fx = fixture();
    let (instance, out) = fx.spawn(&["serve"], &DEFAULT).unwrap();
    let listener = TcpListener::from(
        instance
            .runtime_api_listener
            .as_fd()
            .try_clone_to_owned()
            .unwrap(),
    );
    assert_eq!(listener.local_addr().unwrap().to_string(), "127.0.0.1:9001");
    let (mut conn, _) = listener.accept().unwrap();
    let mut line = [0u8; 18];
    conn.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"hello from inside\n");
    conn.write_all(b"pong").unwrap();
    drop(conn);
    assert_eq!(first_line(&out), "reply pong");
    assert_eq!(fx.sandbox.wait(instance).unwrap().status.code, Some(0));
}

#[test]
fn api_listener_receives_the_function_connection() {
    let mut fx = fixture();
    let (instance, out) = fx.spawn(&["serve", "9002"], &DEFAULT).unwrap();
    let listener = TcpListener::from(instance.api_listener.as_fd().try_clone_to_owned().unwrap());
    assert_eq!(listener.local_addr().unwrap().to_string(), "127.0.0.1:9002");
    let (mut conn, _) = listener.accept().unwrap();
    let mut line = [0u8; 18];
    conn.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"hello from inside\n");
    conn.write_all(b"pong").unwrap();
    drop(conn);
    assert_eq!(first_line(&out), "reply pong");
    assert_eq!(fx.sandbox.wait(instance).unwrap().status.code, Some(0));
}

#[test]
fn fork_bomb_is_contained() {
    let mut fx = fixture();
    let (text, exit) = fx.run_with(
        &["forkbomb"],
        &Limits {
            pids_max: 16,
            ..DEFAULT
        },
    );
    assert!(
        text.starts_with(&format!("contained {} after ", libc::EAGAIN)),
        "{text}"
    );
    // init and the probe count too, so fewer than 16 children were made.
    let made: u32 = text.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(made <= 14, "{made}");
    assert_eq!(exit.status.code, Some(0));
    assert_no_privileges(&mut fx);
}

#[test]
fn memory_bomb_is_oom_killed_and_detected() {
    let mut fx = fixture();
    let (text, exit) = fx.run_with(
        &["membomb"],
        &Limits {
            memory_mb: 32,
            tmp_mb: 8,
            ..DEFAULT
        },
    );
    assert_eq!(exit.status.code, Some(128 + libc::SIGKILL), "{text}");
    assert!(exit.oom_killed);
    // The platform keeps serving the next instance normally.
    let (_, exit) = fx.run_with(
        &["status"],
        &Limits {
            memory_mb: 32,
            tmp_mb: 8,
            ..DEFAULT
        },
    );
    assert_eq!(
        exit,
        Exit {
            status: warden_sandbox::ExitStatus {
                code: Some(0),
                signal: None
            },
            oom_killed: false
        }
    );
}

#[test]
fn full_tmp_gives_enospc_not_oom() {
    let mut fx = fixture();
    let (text, exit) = fx.run_with(
        &["filltmp"],
        &Limits {
            memory_mb: 64,
            tmp_mb: 8,
            ..DEFAULT
        },
    );
    assert_eq!(text.trim(), format!("err {} after 8 MiB", libc::ENOSPC));
    assert!(!exit.oom_killed);
}

/// Host pids of a process and all its descendants.
fn tree(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        for task in std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            all.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
        i += 1;
    }
    all
}

#[test]
fn teardown_leaves_no_process_behind() {
    let mut fx = fixture();
    let (instance, out) = fx.spawn(&["background"], &DEFAULT).unwrap();
    assert_eq!(first_line(&out), "child 3");
    let pids = tree(instance.pid);
    assert_eq!(
        pids.len(),
        3,
        "init, probe and its background child: {pids:?}"
    );
    let exit = fx.sandbox.teardown(instance).unwrap();
    assert_eq!(exit.status.signal, Some(libc::SIGKILL));
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived"
        );
    }
}

#[test]
fn missed_setup_deadline_kills_the_child_instead_of_hanging() {
    let staging = tempfile::tempdir().unwrap();
    // A deadline that has always passed by the time the parent starts waiting.
    let config = SandboxConfig {
        staging_dir: staging.path().join("root"),
        netns_pool_size: 1,
        spawn_timeout: Duration::from_nanos(1),
        ..SandboxConfig::default()
    };
    let mut fx = Fixture {
        sandbox: Sandbox::new(config).unwrap(),
        code: tempfile::tempdir().unwrap(),
        _staging: staging,
    };
    std::fs::set_permissions(fx.code.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    match fx.spawn(&["sleep"], &DEFAULT) {
        Err(SandboxError::Timeout { timeout, .. }) => assert_eq!(timeout, Duration::from_nanos(1)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The killed child was reaped and its slot returned: cgroups hold no process.
    for dir in fx.sandbox.cgroup_dirs() {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert_eq!(procs, "", "{}", dir.display());
    }
}

#[test]
fn each_instance_counts_its_own_processes_and_refuses_a_fork_before_copying_it() {
    let mut fx = fixture();
    let report = fx.sandbox.report();
    let limit = report
        .protections
        .iter()
        .find(|p| p.name == "process limit per instance")
        .expect("reported");
    assert!(limit.active, "{}", limit.detail);
    let limits = Limits {
        pids_max: 16,
        ..DEFAULT
    };
    // One instance of the uid holds every process it could make...
    let (held, held_out) = fx.spawn(&["forkbomb-hold"], &limits).unwrap();
    let line = first_line(&held_out);
    assert!(
        line.starts_with(&format!("contained {} after ", libc::EAGAIN)),
        "{line}"
    );
    // ...and another of the same uid still makes as many: the count is per instance.
    let (text, exit) = fx.run_with(&["forkbomb"], &limits);
    assert_eq!(exit.status.code, Some(0), "{text}");
    assert_eq!(text.trim(), line, "both instances stop at the same count");
    // The refusals came from the process limit, checked at the start of fork: the pids
    // controller, which a fork reaches only after copying the address space, refused none.
    let events: Vec<String> = fx
        .sandbox
        .cgroup_dirs()
        .into_iter()
        .filter(|d| d.ends_with("slot-0") || d.ends_with("slot-1"))
        .filter_map(|d| std::fs::read_to_string(d.join("pids.events")).ok())
        .collect();
    assert_eq!(events.len(), 2, "two slots' pids.events: {events:?}");
    for e in &events {
        // "max N": the forks this slot's pids limit refused (v2 may add other lines).
        let refused = e.lines().find_map(|l| l.strip_prefix("max "));
        assert_eq!(refused, Some("0"), "{events:?}");
    }
    fx.sandbox.teardown(held).unwrap();
}

#[test]
fn instance_runs_inside_its_limited_cgroup_slot() {
    let mut fx = fixture();
    let (instance, _out) = fx
        .spawn(
            &["sleep"],
            &Limits {
                memory_mb: 100,
                tmp_mb: 28,
                pids_max: 24,
            },
        )
        .unwrap();
    let slots: Vec<PathBuf> = fx
        .sandbox
        .cgroup_dirs()
        .into_iter()
        .filter(|d| d.ends_with("slot-0"))
        .collect();
    assert_eq!(
        slots.len(),
        4,
        "memory, pids, cpu and cpuacct slots: {slots:?}"
    );
    for slot in &slots {
        let procs = std::fs::read_to_string(slot.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|p| p == instance.pid.to_string()),
            "{} lacks the instance: {procs}",
            slot.display()
        );
    }
    let read = |file: &str| {
        slots
            .iter()
            .find_map(|s| std::fs::read_to_string(s.join(file)).ok())
            .unwrap()
    };
    // memory_mb + tmp_mb, because /tmp pages are charged to the instance.
    assert_eq!(
        read("memory.limit_in_bytes").trim(),
        (128u64 << 20).to_string()
    );
    assert_eq!(read("pids.max").trim(), "24");
    // One full CPU, enforced over 10 ms periods.
    assert_eq!(read("cpu.cfs_quota_us").trim(), "10000");
    assert_eq!(read("cpu.cfs_period_us").trim(), "10000");
    fx.sandbox.teardown(instance).unwrap();
}

/// Reads a cgroup CPU time file from its start, as nanoseconds (v1) or `usage_usec` (v2).
fn cpu_time(file: &OwnedFd) -> u64 {
    let mut buf = [0u8; 256];
    let n = rustix::io::pread(file, &mut buf, 0).unwrap();
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    let first = text.lines().next().unwrap();
    match first.strip_prefix("usage_usec ") {
        Some(usec) => usec.parse::<u64>().unwrap() * 1000,
        None => first.trim().parse().unwrap(),
    }
}

#[test]
fn a_fraction_of_a_cpu_comes_with_the_cpu_time_of_its_cgroup() {
    let mut fx = fixture();
    // A whole CPU is not paced, so it has no CPU time file.
    let (whole, _out) = fx.spawn(&["sleep"], &DEFAULT).unwrap();
    assert!(whole.cpu_usage.is_none());
    fx.sandbox.teardown(whole).unwrap();

    let (mut instance, out) = fx.spawn_at(&["spin", "5"], &DEFAULT, None, 8).unwrap();
    let usage = instance.cpu_usage.take().expect("a CPU time file at 8 %");
    let before = cpu_time(&usage);
    assert!(first_line(&out).starts_with("spun "));
    let exit = fx.sandbox.wait(instance).unwrap();
    assert_eq!(exit.status.code, Some(0));
    // The file counts what the instance's processes ran, the spin included.
    let after = cpu_time(&usage);
    assert!(after > before, "{before} then {after}");
}

#[test]
fn no_cgroup_is_left_after_the_sandbox_is_dropped() {
    let mut fx = fixture();
    fx.run(&["status"]);
    let dirs = fx.sandbox.cgroup_dirs();
    // This host (and CI) runs as root with cgroups: a slot per controller plus the bases.
    assert!(!dirs.is_empty());
    assert!(dirs.iter().all(|d| d.exists()));
    drop(fx);
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn early_failure_is_reported_and_does_not_hang() {
    let mut fx = fixture();
    let (out_r, out_w) = pipe();
    drop(out_r);
    let spec = SandboxSpec {
        program: PathBuf::from("/var/task/missing"),
        args: vec![],
        env: vec![],
        cwd: PathBuf::from("/var/task"),
        code_dir: fx.code.path().to_owned(),
        readonly_binds: runtime_binds(),
        memory_mb: 64,
        tmp_mb: 8,
        pids_max: 8,
        cpu_quota_percent: 0,
        stderr: out_w.try_clone().unwrap(),
        stdout: out_w,
        linked: None,
    };
    match fx.sandbox.spawn(spec) {
        Err(SandboxError::ChildStep { step, source }) => {
            assert_eq!(step, "execve");
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("expected an execve failure, got {other:?}"),
    }
    let bad = SandboxSpec {
        program: PathBuf::from(PROBE),
        args: vec![],
        env: vec![],
        cwd: PathBuf::from("/var/task"),
        code_dir: fx.code.path().to_owned(),
        readonly_binds: vec![(PathBuf::from("/usr"), PathBuf::from("/tmp/usr"))],
        memory_mb: 64,
        tmp_mb: 8,
        pids_max: 8,
        cpu_quota_percent: 0,
        stderr: pipe().1,
        stdout: pipe().1,
        linked: None,
    };
    assert_eq!(
        fx.sandbox.spawn(bad).unwrap_err().to_string(),
        "invalid sandbox spec: bind target `/tmp/usr` is reserved"
    );
    assert_no_privileges(&mut fx);
}

#[test]
fn report_lists_every_protection() {
    let fx = fixture();
    let report = fx.sandbox.report();
    let names: Vec<&str> = report.protections.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "namespaces",
            "unprivileged user",
            "capabilities",
            "seccomp",
            "landlock",
            "memory limit",
            "process limit per instance",
            "pids limit",
            "cpu limit",
            "network isolation",
            "network namespace pool"
        ]
    );
    assert!(
        report
            .protections
            .iter()
            .find(|p| p.name == "seccomp")
            .unwrap()
            .active
    );
    // This host (and CI) has a cpuacct hierarchy or cgroup v2: small instances are paced.
    let cpu = report
        .protections
        .iter()
        .find(|p| p.name == "cpu limit")
        .unwrap();
    assert!(cpu.active);
    assert!(
        cpu.detail.contains("paced by its CPU time"),
        "{}",
        cpu.detail
    );
}

/// Runs the core checks under whatever privileges this process has. As root it covers the
/// root mode; `unprivileged_user_namespace_mode` re-runs it as `nobody`.
#[test]
fn core_checks_under_current_privileges() {
    let mut fx = fixture();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert_eq!(fx.sandbox.uses_user_namespace(), !root);
    assert_no_privileges(&mut fx);
    assert_eq!(
        fx.run(&["read", "/etc/shadow"]),
        format!("err {}", libc::ENOENT)
    );
    assert_eq!(
        fx.run(&["write", "/var/task/x"]),
        format!("err {}", libc::EROFS)
    );
    assert_eq!(fx.run(&["mount"]), format!("err {}", libc::EPERM));
    let (instance, _out) = fx.spawn(&["serve"], &DEFAULT).unwrap();
    let listener = TcpListener::from(
        instance
            .runtime_api_listener
            .as_fd()
            .try_clone_to_owned()
            .unwrap(),
    );
    let (mut conn, _) = listener.accept().unwrap();
    let mut line = [0u8; 18];
    conn.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"hello from inside\n");
    drop(conn);
    fx.sandbox.teardown(instance).unwrap();
    // The second platform listener takes the same path (pooled namespace as root, sent by
    // the child in a user namespace).
    let (instance, _out) = fx.spawn(&["serve", "9002"], &DEFAULT).unwrap();
    let listener = TcpListener::from(instance.api_listener.as_fd().try_clone_to_owned().unwrap());
    assert_eq!(listener.local_addr().unwrap().to_string(), "127.0.0.1:9002");
    let (mut conn, _) = listener.accept().unwrap();
    conn.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"hello from inside\n");
    drop(conn);
    fx.sandbox.teardown(instance).unwrap();
}

#[test]
fn unprivileged_user_namespace_mode() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "this suite runs as root, as CI does");
    // The checkout may live under a directory `nobody` cannot traverse (a 0700 home
    // directory): run copies of this binary and the probe from a directory it can.
    let reachable = tempfile::Builder::new()
        .prefix("warden-sandbox-test-")
        .tempdir_in("/tmp")
        .unwrap();
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(reachable.path(), open.clone()).unwrap();
    // Copied by `cp`, not by this process: a file this (multi-threaded) process opened for
    // writing could leak, for a moment, into a sandbox another test thread is cloning, and
    // executing the copy would then fail with `ETXTBSY`.
    let copy = |from: PathBuf, name: &str| {
        let to = reachable.path().join(name);
        let copied = std::process::Command::new("cp")
            .arg(&from)
            .arg(&to)
            .status()
            .unwrap();
        assert!(copied.success(), "cp {} {}", from.display(), to.display());
        std::fs::set_permissions(&to, open.clone()).unwrap();
        to
    };
    let exe = copy(std::env::current_exe().unwrap(), "it");
    let probe = copy(probe_bin(), "probe");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "core_checks_under_current_privileges",
            "--test-threads=1",
        ])
        .env("TMPDIR", "/tmp")
        .env(PROBE_ENV, probe)
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
fn instances_do_not_outlive_a_long_timeout_free_spin() {
    let mut fx = fixture();
    let (instance, _out) = fx.spawn(&["sleep"], &DEFAULT).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(fx.sandbox.teardown(instance).unwrap().status.signal == Some(libc::SIGKILL));
}

/// A linked namespace reaches the host through its veth link (no firewall here: that is
/// `warden_egress`'s), has no IPv6 at all, and its link is gone with the instance.
#[test]
fn a_linked_namespace_has_one_ipv4_link_to_the_host() {
    if !nix_root() {
        return;
    }
    let mut fx = fixture();
    let ifname = format!("wst{}", std::process::id() % 100_000);
    let link = warden_sandbox::NetworkLink {
        index: 7,
        host_ifname: ifname.clone(),
        host_addr: std::net::Ipv4Addr::new(198, 19, 254, 1),
        instance_addr: std::net::Ipv4Addr::new(198, 19, 254, 2),
        prefix_len: 30,
    };
    // Names that are not plain interface names are refused.
    let mut bad = link.clone();
    bad.host_ifname = "x\nlink del lo".into();
    assert!(matches!(
        fx.sandbox.prepare_linked("k", bad),
        Err(SandboxError::InvalidSpec(_))
    ));
    fx.sandbox.prepare_linked("k", link).unwrap();
    assert_eq!(fx.sandbox.linked_ready("k"), 1);
    let listener = std::net::TcpListener::bind(("198.19.254.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (instance, out) = fx
        .spawn_linked(&["connect-to", "198.19.254.1", &port], &DEFAULT, Some("k"))
        .unwrap();
    assert_eq!(instance.link.as_ref().map(|l| l.index), Some(7));
    let mut text = String::new();
    std::fs::File::from(out).read_to_string(&mut text).unwrap();
    fx.sandbox.wait(instance).unwrap();
    assert_eq!(
        text.trim(),
        "ok",
        "the instance reached the host over its link"
    );
    assert_eq!(fx.sandbox.linked_ready("k"), 0);
    // No IPv6 address inside (the file lists none).
    fx.sandbox
        .prepare_linked(
            "k",
            warden_sandbox::NetworkLink {
                index: 8,
                host_ifname: format!("{ifname}b"),
                host_addr: std::net::Ipv4Addr::new(198, 19, 254, 5),
                instance_addr: std::net::Ipv4Addr::new(198, 19, 254, 6),
                prefix_len: 30,
            },
        )
        .unwrap();
    let (instance, out) = fx
        .spawn_linked(&["cat", "/proc/net/if_inet6"], &DEFAULT, Some("k"))
        .unwrap();
    let mut text = String::new();
    std::fs::File::from(out).read_to_string(&mut text).unwrap();
    fx.sandbox.wait(instance).unwrap();
    assert!(
        text.trim().is_empty() || text.starts_with("err"),
        "IPv6 addresses: {text}"
    );
    // Spawning linked with nothing prepared is refused, not silently unlinked.
    assert!(matches!(
        fx.spawn_linked(&["status"], &DEFAULT, Some("k")),
        Err(SandboxError::InvalidSpec(_))
    ));
}

fn nix_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// On cgroup v1 the sandbox holds a `favordynmods` hierarchy, so that moving an instance
/// into its slot does not first wait for an RCU grace period. A descriptor holds it, not a
/// path: it appears in every process's cgroup list but in no mount table.
#[test]
fn a_favordynmods_hierarchy_is_held_but_mounted_nowhere() {
    let fx = fixture();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(
        own.lines().any(|l| l.ends_with(":name=warden-dynmods:/")),
        "{own}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("warden-dynmods"), "{mounts}");
    let detail = |sandbox: &Sandbox| {
        sandbox
            .report()
            .protections
            .into_iter()
            .find(|p| p.name == "memory limit")
            .unwrap()
            .detail
    };
    let held = detail(&fx.sandbox);
    assert!(held.contains("cgroup v1; favordynmods held"), "{held}");

    let staging = tempfile::tempdir().unwrap();
    let off = Sandbox::new(SandboxConfig {
        staging_dir: staging.path().join("root"),
        netns_pool_size: 0,
        favor_dynmods: false,
        ..SandboxConfig::default()
    })
    .unwrap();
    let refused = detail(&off);
    assert!(
        refused.contains("favordynmods off by configuration"),
        "{refused}"
    );
}

/// A linked namespace made in the background is not ready until finished; one given up
/// before that leaves no interface on the host.
#[test]
fn a_pending_link_is_ready_only_when_finished_and_leaves_nothing_when_dropped() {
    if !nix_root() {
        return;
    }
    let mut fx = fixture();
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("iproute2's `ip`");
    let link = |n: u8, name: &str| warden_sandbox::NetworkLink {
        index: u32::from(n),
        host_ifname: name.to_owned(),
        host_addr: std::net::Ipv4Addr::new(198, 19, 253, 4 * n + 1),
        instance_addr: std::net::Ipv4Addr::new(198, 19, 253, 4 * n + 2),
        prefix_len: 30,
    };
    let exists = |name: &str| {
        std::process::Command::new(&ip)
            .args(["link", "show", name])
            .output()
            .unwrap()
            .status
            .success()
    };
    // The kernel tears a namespace down in the background once its last holder is gone.
    let vanishes = |name: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while exists(name) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    };
    let id = std::process::id() % 10_000;
    let (kept, dropped) = (format!("wpk{id}"), format!("wpd{id}"));
    let mut pending = fx.sandbox.begin_linked("p", link(1, &kept)).unwrap();
    assert_eq!(pending.key(), "p");
    assert_eq!(pending.index(), 1);
    assert_eq!(
        fx.sandbox.linked_ready("p"),
        0,
        "not ready before it is finished"
    );
    while !pending.is_done() {
        std::thread::sleep(Duration::from_millis(1));
    }
    fx.sandbox.finish_linked(pending).unwrap();
    assert_eq!(fx.sandbox.linked_ready("p"), 1);
    assert!(exists(&kept));

    let gone = fx.sandbox.begin_linked("p", link(2, &dropped)).unwrap();
    drop(gone);
    // The namespace holds the pair's other end: with it gone, so is the host's end (or,
    // if `ip` was killed midway, it was never made).
    assert!(vanishes(&dropped), "{dropped} outlived its pending link");
    assert_eq!(fx.sandbox.linked_ready("p"), 1);
    assert_eq!(fx.sandbox.drop_linked("p").len(), 1);
    assert!(vanishes(&kept), "{kept} outlived its namespace");
}

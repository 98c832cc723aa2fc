//! Spawn latency: `Sandbox::spawn` until `execve` succeeded, and until the function's first
//! connection to the Runtime API listener is accepted, as p50/p99 over many spawns, for
//! the full sandbox, without cgroups, without the netns pool, and unsandboxed.
//!
//! Run as root: `cargo bench -p warden-sandbox --bench spawn` (env `SPAWNS`, default 200;
//! `ONLY=<substring>` runs only the matching cases).
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::net::TcpListener;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use warden_sandbox::{Sandbox, SandboxConfig, SandboxSpec};

const PROBE: &str = env!("CARGO_BIN_EXE_warden-sandbox-probe");

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx]
}

fn print(name: &str, exec: &mut [Duration], connect: &mut [Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} spawn-to-exec p50 {:6.3} ms p99 {:6.3} ms | spawn-to-first-connect p50 {:6.3} ms p99 {:6.3} ms",
        ms(percentile(exec, 0.5)),
        ms(percentile(exec, 0.99)),
        ms(percentile(connect, 0.5)),
        ms(percentile(connect, 0.99)),
    );
}

fn selected(name: &str) -> bool {
    std::env::var("ONLY").map_or(true, |only| name.contains(&only))
}

fn sandboxed(name: &str, n: usize, config: SandboxConfig, code: &Path, cpu_quota_percent: u32) {
    if !selected(name) {
        return;
    }
    let mut sandbox = Sandbox::new(config).expect("sandbox (run as root)");
    let binds: Vec<(PathBuf, PathBuf)> = ["/usr", "/lib", "/lib64"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| (PathBuf::from(p), PathBuf::from(p)))
        .chain(std::iter::once((
            PathBuf::from(PROBE),
            PathBuf::from("/var/runtime/bootstrap"),
        )))
        .collect();
    let (mut exec, mut connect) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n + 5 {
        let (null_r, null_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        drop(null_r);
        let spec = SandboxSpec {
            program: PathBuf::from("/var/runtime/bootstrap"),
            args: vec!["serve".into()],
            env: vec![],
            cwd: PathBuf::from("/var/task"),
            code_dir: code.to_owned(),
            readonly_binds: binds.clone(),
            memory_mb: 128,
            tmp_mb: 64,
            pids_max: 32,
            cpu_quota_percent,
            stderr: null_w.try_clone().unwrap(),
            stdout: null_w,
            linked: None,
        };
        let start = Instant::now();
        let instance = sandbox.spawn(spec).unwrap();
        let t_exec = start.elapsed();
        let listener = TcpListener::from(
            instance
                .runtime_api_listener
                .as_fd()
                .try_clone_to_owned()
                .unwrap(),
        );
        let conn = listener.accept().unwrap();
        let t_connect = start.elapsed();
        drop(conn);
        sandbox.teardown(instance).unwrap();
        exec.push(t_exec);
        connect.push(t_connect);
        // Off the critical path, as the zygote would do when idle.
        sandbox.refill_pool().unwrap();
    }
    // The first spawns warm caches; leave them out.
    print(name, &mut exec[5..], &mut connect[5..]);
}

fn unsandboxed(n: usize) {
    if !selected("unsandboxed") {
        return;
    }
    let (mut exec, mut connect) = (Vec::new(), Vec::new());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    for _ in 0..n + 5 {
        let start = Instant::now();
        let mut child = std::process::Command::new(PROBE)
            .args(["serve", &port])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t_exec = start.elapsed();
        let conn = listener.accept().unwrap();
        let t_connect = start.elapsed();
        drop(conn);
        child.wait().unwrap();
        exec.push(t_exec);
        connect.push(t_connect);
    }
    print("unsandboxed (Command)", &mut exec[5..], &mut connect[5..]);
}

fn main() {
    let n: usize = std::env::var("SPAWNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let code = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        code.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let staging = tempfile::tempdir().unwrap();
    let cfg = |name: &str, cgroups: bool, pool: usize| SandboxConfig {
        staging_dir: staging.path().join(name),
        use_cgroups: cgroups,
        netns_pool_size: pool,
        ..SandboxConfig::default()
    };
    println!("{n} spawns each, probe = dynamically linked Rust binary");
    let full = Sandbox::new(cfg("report", true, 0)).unwrap();
    for p in full.report().protections {
        println!(
            "  {:<24} {:<6} {}",
            p.name,
            if p.active { "on" } else { "OFF" },
            p.detail
        );
    }
    drop(full);
    sandboxed(
        "full sandbox, netns pool",
        n,
        cfg("a", true, 4),
        code.path(),
        100,
    );
    sandboxed(
        "full, no cpu quota, pool",
        n,
        cfg("d", true, 4),
        code.path(),
        0,
    );
    sandboxed(
        "no cgroups, netns pool",
        n,
        cfg("b", false, 4),
        code.path(),
        100,
    );
    sandboxed(
        "full sandbox, inline netns",
        n,
        cfg("c", true, 0),
        code.path(),
        100,
    );
    unsandboxed(n);
}

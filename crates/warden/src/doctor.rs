//! `warden doctor`, and the startup of the executor that `warden serve` shares with it:
//! which isolation instances get on this host, said plainly, with anything degraded
//! called out loudly.
//!
//! The sandbox is on by default. `warden serve` refuses to start when it cannot work,
//! naming `--insecure-no-sandbox`, which is meant only for platforms without namespaces
//! (some container runtimes, old kernels); there every function runs as a plain process
//! with the server's privileges.

use std::path::Path;

use anyhow::bail;
use warden_executor::{Isolation, SandboxOptions, ZygoteExecutor};

/// Options of `warden doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    #[command(flatten)]
    runtimes: crate::runtime::RuntimeArgs,
}

/// The isolation `warden serve` asked for; with the sandbox, the system paths every
/// instance sees (a runtime's interpreter is mounted per instance by the engine).
pub fn isolation(insecure_no_sandbox: bool) -> Isolation {
    if insecure_no_sandbox {
        tracing::warn!(
            "--insecure-no-sandbox: functions run as plain processes with this server's privileges and see the whole host; use it only on platforms without namespaces"
        );
        return Isolation::None;
    }
    Isolation::Sandbox(SandboxOptions {
        runtime_paths: warden_executor::system_runtime_paths(),
        ..SandboxOptions::default()
    })
}

/// Starts the zygote with `isolation`; a sandbox that cannot work here is a one-line
/// error naming the way out.
pub fn start_executor(exe: &Path, isolation: Isolation) -> anyhow::Result<ZygoteExecutor> {
    match ZygoteExecutor::start(exe, &["__zygote"], isolation) {
        Ok(executor) => {
            for p in executor.protections().iter().filter(|p| !p.active) {
                tracing::warn!(protection = %p.name, "sandbox protection degraded: {}", p.detail);
            }
            Ok(executor)
        }
        Err(warden_executor::ExecutorError::SandboxUnavailable(why)) => bail!(
            "refusing to start: the function sandbox cannot work on this host ({why}); run `warden doctor` for details, or pass --insecure-no-sandbox to run functions without isolation (only for platforms without namespaces)"
        ),
        Err(e) => Err(e.into()),
    }
}

/// Prints which protections instances get here. Exits successfully even when the sandbox
/// is unavailable: reporting that is its job.
pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let isolation = Isolation::Sandbox(SandboxOptions::default());
    println!("warden doctor: isolation of function instances on this host");
    match ZygoteExecutor::start(&exe, &["__zygote"], isolation) {
        Ok(executor) => {
            let mut degraded = 0;
            for p in executor.protections() {
                let mark = if p.active {
                    "ok      "
                } else {
                    degraded += 1;
                    "DEGRADED"
                };
                println!("  {mark} {:<24} {}", p.name, p.detail);
            }
            if degraded == 0 {
                println!("sandbox: every protection is active");
            } else {
                println!(
                    "sandbox: WARNING: {degraded} protection(s) DEGRADED on this host (see above)"
                );
            }
        }
        Err(e) => {
            println!("  UNAVAILABLE sandbox: {e}");
            println!(
                "sandbox: WARNING: functions cannot be isolated here; `warden serve` refuses to start unless given --insecure-no-sandbox, which runs every function unisolated"
            );
        }
    }
    match warden_egress::probe() {
        warden_egress::Capability::Enforced => println!(
            "  ok       {:<24} veth links and nftables: security groups and --default-egress are enforced by the kernel",
            "network egress"
        ),
        warden_egress::Capability::Unavailable(why) => println!(
            "  DEGRADED {:<24} {why}; instances have loopback only, a VpcConfig is refused and --default-egress internet cannot start",
            "network egress"
        ),
    }
    println!("runtimes (each interpreter is shown to its functions read-only at /var/lang):");
    for line in crate::runtime::render(&args.runtimes.table()?).lines() {
        println!("  {line}");
    }
    Ok(())
}

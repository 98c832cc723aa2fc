//! `warden`: the server (`warden serve`) and the command-line client.
//!
//! `anyhow` lives only here, at the binary's edge; every error reaching the user is one
//! line without a backtrace.
#![forbid(unsafe_code)]

mod admin;
mod alarms;
mod audit;
mod backend;
mod cli;
mod codedir;
mod config_cmd;
mod doctor;
mod firewall;
mod iam;
mod iam_advice;
mod metrics;
mod node;
mod runtime;
mod serve;
mod signing;
mod sns;

use clap::{Parser, Subcommand};

/// mimalloc in place of the C library's allocator: a warm invoke allocates and frees a few
/// hundred times on the server's threads, and glibc's malloc spent about a sixth of the
/// server's CPU on it (BENCHMARKS.md, "The floor").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Warden: a secure-by-default, AWS-Lambda-compatible serverless platform.
#[derive(Parser)]
#[command(name = "warden", version, about, propagate_version = true)]
struct Cli {
    /// Where the Warden server listens (client commands).
    #[arg(
        long,
        global = true,
        env = "WARDEN_ENDPOINT",
        default_value = "http://127.0.0.1:9700"
    )]
    endpoint_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Warden server.
    Serve(Box<serve::ServeArgs>),
    /// Report which sandbox protections are active on this host.
    Doctor(doctor::DoctorArgs),
    /// IAM: users, access keys, roles and policies; `simulate` evaluates policies offline.
    #[command(subcommand)]
    Iam(iam::IamCommand),
    /// Managed runtimes: which interpreter serves `python3.x` and `nodejs*.x` here.
    #[command(subcommand)]
    Runtime(runtime::RuntimeCommand),
    /// The audit trail: verify it, look calls up, sign and export digests.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Configuration history: how a resource's configuration changed, and by which calls.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Administration of a data directory (with the server stopped).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    #[command(flatten)]
    Client(cli::ClientCommand),
    /// Internal: the process that spawns function instances for the server.
    #[command(name = "__zygote", hide = true)]
    Zygote,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Zygote => zygote(),
        Command::Doctor(args) => doctor::run(args),
        Command::Iam(c) => iam::run(c, &cli.endpoint_url),
        Command::Runtime(c) => runtime::run(c),
        Command::Admin(c) => admin::run(c),
        Command::Audit(c) => audit::run(c, &cli.endpoint_url),
        Command::Config(c) => config_cmd::run(c, &cli.endpoint_url),
        Command::Client(c) => cli::run(c, &cli.endpoint_url),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The zygote's control socket is its standard input (see `warden-executor`).
fn zygote() -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    let control = std::io::stdin().as_fd().try_clone_to_owned()?;
    warden_executor::run_zygote(control)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_whole_command_line_is_consistent() {
        // Catches what only shows when a subcommand runs, such as a flag clashing with the
        // propagated `--version`.
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

//! Project automation, so that CI and people run exactly the same steps.
//!
//! - `cargo xtask ci`: install the test-only tools (a Python venv with the AWS CLI, boto3
//!   and awslambdaric, under `~/.cache/warden-test-tools`; the npm IAM oracle and
//!   cargo-deny in `.test-tools/`), check formatting, tidy, dependencies and lints, run
//!   every test.
//! - `cargo xtask tools`: only install the test-only tools.
//! - `cargo xtask test [ARGS]`: run the tests with the tools' environment (extra args go to
//!   `cargo test`).
//! - `cargo xtask bench`: the end-to-end benchmark recorded in BENCHMARKS.md.
//! - `cargo xtask tidy`: the architecture's invariants that types cannot enforce (also a
//!   test of this crate, so the test suite runs it).
//! - `cargo xtask deny`: licenses, bans, sources and advisories of the dependencies, checked
//!   offline against the vendored RustSec advisories (installs cargo-deny once).

mod bench;
mod deny;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Python packages the tests drive Warden with, pinned for repeatable runs.
const PYTHON_PACKAGES: &[&str] = &[
    "awscli==1.46.3",
    "boto3==1.44.8",
    "awslambdaric==4.2.2",
    "aws-encryption-sdk==4.0.7",
    "requests==2.32.3",
    "packaging==24.2",
    "cyclonedx-python-lib[json-validation]==8.5.0",
    // WebDriver client for the console's browser tests (Debian's Chromium and its
    // matching chromedriver are installed with apt-get).
    "selenium==4.51.0",
];
/// checkov, which the template scanner is compared with (in a venv of its own: its
/// dependencies pin versions the AWS CLI's would conflict with).
const CHECKOV: &str = "checkov==3.3.30";
/// The SDK functions import unpackaged, as wheels for `warden runtime sdk install --from`
/// (the tests install it offline, as an air-gapped host would).
const SDK_WHEELS: &str = "boto3==1.44.8";
/// The reference Node.js runtime client the Node.js runtime is compared with; it builds a
/// native module, for which the Debian packages below are installed when missing.
const NODE_RIC: &str = "aws-lambda-ric@3.3.0";
const NODE_RIC_BUILD_PACKAGES: &[&str] = &["cmake", "autoconf", "automake", "libtool"];
/// The independent IAM policy evaluator (AGPL: installed for tests only, never vendored).
const NODE_PACKAGES: &[&str] = &["@cloud-copilot/iam-simulate@0.1.173"];

fn main() {
    if let Err(e) = real_main() {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root()?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("tools") => tools(&root).map(|_| ()),
        Some("test") => {
            let env = tools(&root)?;
            test(&root, &env, &args[1..])
        }
        Some("bench") => bench::run(&root, &args[1..]),
        Some("tidy") => tidy::run(&root),
        Some("deny") => deny::run(&root),
        _ => {
            eprintln!("usage: cargo xtask <ci|tools|test [cargo test args]|bench|tidy|deny>");
            std::process::exit(2);
        }
    }
}

fn repo_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Environment the test suite reads to find its tools.
struct ToolEnv {
    vars: Vec<(String, String)>,
}

impl ToolEnv {
    /// The value of one of the variables.
    fn var(&self, name: &str) -> Result<String> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .with_context(|| format!("the test tools set no {name}"))
    }
}

/// Where the Python venv lives: outside the checkout, because function sandboxes replace
/// `/tmp` and a checkout (hence a venv inside it) may live there.
pub(crate) fn python_tools_dir(root: &Path) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match cache {
        Some(dir) if !dir.starts_with("/tmp") => dir.join("warden-test-tools"),
        _ => root.join(".venv-tools"),
    }
}

fn tools(root: &Path) -> Result<ToolEnv> {
    let venv = python_tools_dir(root).join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let have = Command::new(&python)
        .args([
            "-c",
            "import awscli, boto3, awslambdaric, aws_encryption_sdk, requests, packaging, cyclonedx, selenium",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PYTHON_PACKAGES))?;
    }
    let wheels = python_tools_dir(root).join("wheels");
    if !wheels.join("done").exists() {
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--dest",
            ])
            .arg(&wheels)
            .arg(SDK_WHEELS))?;
        std::fs::write(wheels.join("done"), SDK_WHEELS)?;
    }
    let checkov_venv = python_tools_dir(root).join("checkov-venv");
    let checkov = checkov_venv.join("bin/checkov");
    let have_checkov = Command::new(&checkov)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_checkov {
        run(Command::new("python3")
            .args(["-m", "venv"])
            .arg(&checkov_venv))?;
        run(Command::new(checkov_venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            CHECKOV,
        ]))?;
    }
    let node_prefix = root.join(".test-tools/node");
    let modules = node_prefix.join("node_modules");
    if !modules.join("@cloud-copilot/iam-simulate").exists() {
        std::fs::create_dir_all(&node_prefix)?;
        run(Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&node_prefix)
            .args(NODE_PACKAGES))?;
    }
    // The network tests enforce security groups with nftables, which Warden drives through
    // the `nft` program (Debian: `nftables`); `ip` (iproute2) is part of every base system.
    let has = |tool: &str| {
        Command::new("sh")
            .args([
                "-c",
                &format!("PATH=\"$PATH:/usr/sbin:/sbin\" command -v {tool}"),
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !has("nft") {
        let install = || {
            run(Command::new("apt-get").args([
                "install",
                "-y",
                "--no-install-recommends",
                "-q",
                "nftables",
            ]))
        };
        install()
            .or_else(|_| {
                run(Command::new("apt-get").args(["update", "-q"]))?;
                install()
            })
            .context("the network tests need nftables (`nft`): install it")?;
    }
    // The metrics test scrapes Warden with a real Prometheus server (Debian: `prometheus`).
    if !has("prometheus") {
        let install = || {
            run(Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args([
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "-q",
                    "prometheus",
                ]))
        };
        install()
            .or_else(|_| {
                run(Command::new("apt-get").args(["update", "-q"]))?;
                install()
            })
            .context("the metrics tests need a Prometheus server (`prometheus`): install it")?;
    }
    // The shared-backend tests start real PostgreSQL and NATS (JetStream) servers of their
    // own on loopback (Debian: `postgresql`, whose server programs live under
    // /usr/lib/postgresql/VERSION/bin, and `nats-server`).
    let has_postgres = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("bin/initdb").is_file())
        || has("initdb");
    let mut shared_backends = Vec::new();
    if !has_postgres {
        shared_backends.push("postgresql");
    }
    if !has("nats-server") {
        shared_backends.push("nats-server");
    }
    if !shared_backends.is_empty() {
        let install = || {
            run(Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "--no-install-recommends", "-q"])
                .args(&shared_backends))
        };
        install()
            .or_else(|_| {
                run(Command::new("apt-get").args(["update", "-q"]))?;
                install()
            })
            .with_context(|| {
                format!(
                    "the shared-backend tests need {}: install them",
                    shared_backends.join(" and ")
                )
            })?;
    }
    // The console's browser tests drive Debian's Chromium through its chromedriver.
    if !has("chromium") || !has("chromedriver") {
        let install = || {
            run(Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args([
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "-q",
                    "chromium",
                    "chromium-driver",
                ]))
        };
        install()
            .or_else(|_| {
                run(Command::new("apt-get").args(["update", "-q"]))?;
                install()
            })
            .context("the console tests need `chromium` and `chromium-driver`: install them")?;
    }
    let ric_prefix = root.join(".test-tools/node-ric");
    let ric = ric_prefix.join("node_modules/aws-lambda-ric");
    if !ric.join("dist/rapid-client.node").exists() {
        let missing: Vec<&str> = NODE_RIC_BUILD_PACKAGES
            .iter()
            .copied()
            .filter(|p| {
                let tool = if *p == "libtool" { "libtoolize" } else { p };
                !Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            })
            .collect();
        if !missing.is_empty() {
            let install = || {
                run(Command::new("apt-get")
                    .args(["install", "-y", "--no-install-recommends", "-q"])
                    .args(&missing))
            };
            // A fresh machine may have no package lists yet.
            install()
                .or_else(|_| {
                    run(Command::new("apt-get").args(["update", "-q"]))?;
                    install()
                })
                .with_context(|| {
                    format!(
                        "{NODE_RIC} builds a native module and needs {}: install them",
                        missing.join(", ")
                    )
                })?;
        }
        std::fs::create_dir_all(&ric_prefix)?;
        run(Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&ric_prefix)
            .arg(NODE_RIC))?;
    }
    let s = |p: &Path| p.to_string_lossy().into_owned();
    Ok(ToolEnv {
        vars: vec![
            ("WARDEN_TEST_PYTHON".into(), s(&python)),
            ("WARDEN_TEST_AWS".into(), s(&venv.join("bin/aws"))),
            ("WARDEN_TEST_NODE_MODULES".into(), s(&modules)),
            ("WARDEN_TEST_WHEELS".into(), s(&wheels)),
            ("WARDEN_TEST_NODE_RIC".into(), s(&ric)),
            ("WARDEN_TEST_CHECKOV".into(), s(&checkov)),
        ],
    })
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

fn test(root: &Path, env: &ToolEnv, extra: &[String]) -> Result<()> {
    // The integration tests run the fixture functions' binaries: build them first.
    run(cargo(root).args(["build", "--workspace", "--bins"]))?;
    let mut cmd = cargo(root);
    // Every test binary runs even after one fails, so one run reports every failure.
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(extra);
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn ci(root: &Path) -> Result<()> {
    // A CI build starts from nothing and is never rebuilt: incremental caches would only
    // take disk (about ten GiB for this workspace) and time. Every cargo below inherits it.
    std::env::set_var("CARGO_INCREMENTAL", "0");
    let env = tools(root)?;
    run(cargo(root).args(["fmt", "--all", "--", "--check"]))?;
    tidy::run(root)?;
    deny::run(root)?;
    run(cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    test(root, &env, &[])
}

//! `cargo xtask deny`: `cargo deny check` (licenses, bans, sources, advisories) with the
//! repository's `deny.toml`, entirely offline but for installing cargo-deny itself.
//!
//! Advisories come from `supply-chain/advisory-db`, the RustSec advisories of the crates
//! in Cargo.lock, vendored in RustSec's own layout. cargo-deny reads an advisory database
//! as a git checkout under its `db-path`, in a directory named after the database's URL,
//! so this command builds that checkout from the vendored copy in `target/deny/` and points
//! a generated configuration at it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The cargo-deny release this command is written for (the name of the database's
/// directory below is that release's).
const CARGO_DENY_VERSION: &str = "0.20.2";
/// The directory cargo-deny 0.20 expects, under `db-path`, for its default database URL
/// (the RustSec advisory database).
const DB_DIR: &str = "advisory-db-3157b0e258782691";

/// Runs every check; fails if any does.
pub fn run(root: &Path) -> Result<()> {
    let deny = cargo_deny(root)?;
    let work = root.join("target/deny");
    let dbs = work.join("dbs");
    let db = dbs.join(DB_DIR);
    if db.exists() {
        std::fs::remove_dir_all(&db).with_context(|| format!("removing {}", db.display()))?;
    }
    std::fs::create_dir_all(&dbs)?;
    copy_tree(&root.join("supply-chain/advisory-db"), &db)?;
    git(&db, &["init", "--quiet"])?;
    git(&db, &["add", "--all"])?;
    git(
        &db,
        &[
            "-c",
            "user.name=xtask",
            "-c",
            "user.email=xtask@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--quiet",
            "--message",
            "vendored advisories",
        ],
    )?;

    let config_path = root.join("deny.toml");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let mut config: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", config_path.display()))?;
    let advisories = config
        .entry("advisories")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .context("`[advisories]` in deny.toml is not a table")?;
    advisories.insert(
        "db-path".into(),
        toml::Value::String(dbs.to_string_lossy().into_owned()),
    );
    let generated = work.join("deny.toml");
    std::fs::write(&generated, toml::to_string(&config)?)?;

    // `--frozen` keeps cargo-deny off the network, so the crates it reads (their licenses,
    // their sources) must already be downloaded: on a fresh machine they are not yet.
    crate::run(crate::cargo(root).args(["fetch", "--locked"]))?;
    crate::run(
        Command::new(&deny)
            .current_dir(root)
            .args(["deny", "--frozen", "--config"])
            .arg(&generated)
            .arg("check"),
    )
}

/// cargo-deny at its pinned version: on `PATH`, or installed once under `.test-tools/`.
fn cargo_deny(root: &Path) -> Result<PathBuf> {
    let wanted = format!("cargo-deny {CARGO_DENY_VERSION}");
    let version = |program: &Path| {
        Command::new(program)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if version(Path::new("cargo-deny")).as_deref() == Some(wanted.as_str()) {
        return Ok(PathBuf::from("cargo-deny"));
    }
    let prefix = root.join(".test-tools/cargo-deny");
    let installed = prefix.join("bin/cargo-deny");
    if version(&installed).as_deref() != Some(wanted.as_str()) {
        crate::run(
            crate::cargo(root)
                .args(["install", "cargo-deny", "--locked", "--version"])
                .arg(CARGO_DENY_VERSION)
                .arg("--root")
                .arg(&prefix),
        )?;
    }
    Ok(installed)
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("git")
        .current_dir(dir)
        .args(args)
        .status()
        .context("running git (needed to hand the advisories to cargo-deny)")?;
    if !status.success() {
        bail!("git {args:?} failed with {status}");
    }
    Ok(())
}

/// Copies a file, or a directory tree, to `to`.
pub(crate) fn copy_tree_or_file(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        copy_tree(from, to)
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
        Ok(())
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

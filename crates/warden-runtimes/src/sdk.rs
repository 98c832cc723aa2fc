//! The AWS SDKs Lambda's managed runtimes include: boto3 for Python, the AWS SDK for
//! JavaScript v3 for Node.js. Functions import them without packaging them.
//!
//! Warden keeps them in its runtime directory (shown to instances at `/var/runtime`), under
//! `sdk/python` (on the Python bootstrap's `sys.path`) and `sdk/node/node_modules` (on
//! `NODE_PATH`), installed by `warden runtime sdk install` with the host's `pip` and `npm`,
//! from the package registries or from a directory of wheels and tarballs for hosts
//! without network. Never from the host's own site-packages: what a function sees is what
//! was installed here, whichever interpreter runs it.
//!
//! An install is staged beside its target and swapped in with a rename, so an instance
//! starting meanwhile sees either the old SDK or the new one, never half of one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::RuntimeError;

/// The Python packages installed by default: boto3 brings botocore and the rest.
pub const PYTHON_PACKAGES: &[&str] = &["boto3"];
/// The Node.js packages installed by default: the clients of the services Warden serves
/// (any other `@aws-sdk/*` package can be added by name).
pub const NODE_PACKAGES: &[&str] = &[
    "@aws-sdk/client-lambda",
    "@aws-sdk/client-iam",
    "@aws-sdk/client-sts",
];

/// The Python SDK's directory below the runtime directory.
pub const PYTHON_DIR: &str = "sdk/python";
/// The Node.js SDK's directory below the runtime directory (it holds `node_modules`).
pub const NODE_DIR: &str = "sdk/node";

/// Where packages come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The package registry the host's `pip` or `npm` is configured for.
    Registry,
    /// A directory of wheels (Python) or `.tgz` tarballs (Node.js), for hosts without
    /// network.
    Directory(PathBuf),
}

/// The version of boto3 installed in `runtime_dir`, if any.
pub fn python_sdk_version(runtime_dir: &Path) -> Option<String> {
    let dir = runtime_dir.join(PYTHON_DIR);
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let rest = name.strip_prefix("boto3-")?;
        rest.strip_suffix(".dist-info").map(str::to_owned)
    })
}

/// The version of `@aws-sdk/client-lambda` installed in `runtime_dir`, if any.
pub fn node_sdk_version(runtime_dir: &Path) -> Option<String> {
    let manifest = runtime_dir
        .join(NODE_DIR)
        .join("node_modules/@aws-sdk/client-lambda/package.json");
    let text = std::fs::read_to_string(manifest).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("version")?.as_str().map(str::to_owned)
}

/// Installs `packages` (default [`PYTHON_PACKAGES`]) with `python -m pip` into the
/// runtime directory, replacing the Python SDK there.
pub fn install_python(
    runtime_dir: &Path,
    python: &Path,
    source: &Source,
    packages: &[String],
) -> Result<(), RuntimeError> {
    let target = runtime_dir.join(PYTHON_DIR);
    let staging = staging_dir(&target)?;
    let mut command = Command::new(python);
    command
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-compile", "--target"])
        .arg(&staging);
    if let Source::Directory(dir) = source {
        command.args(["--no-index", "--find-links"]).arg(dir);
    }
    command.args(packages_or(packages, PYTHON_PACKAGES));
    // pip must not take the host's configuration for a target install's layout.
    command.env_remove("PIP_TARGET").env_remove("PIP_PREFIX");
    run(&mut command, "pip").inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&staging);
    })?;
    swap_in(&staging, &target)
}

/// Installs `packages` (default [`NODE_PACKAGES`]) with `npm` into the runtime directory,
/// replacing the Node.js SDK there. From a directory, every `.tgz` in it is installed.
pub fn install_node(
    runtime_dir: &Path,
    npm: &Path,
    source: &Source,
    packages: &[String],
) -> Result<(), RuntimeError> {
    let target = runtime_dir.join(NODE_DIR);
    let staging = staging_dir(&target)?;
    let mut command = Command::new(npm);
    command
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--loglevel=error",
        ])
        .arg("--prefix")
        .arg(&staging);
    match source {
        Source::Registry => {
            command.args(packages_or(packages, NODE_PACKAGES));
        }
        Source::Directory(dir) => {
            let tarballs = tarballs(dir)?;
            command.arg("--offline").args(tarballs);
        }
    }
    run(&mut command, "npm").inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&staging);
    })?;
    swap_in(&staging, &target)
}

fn packages_or(given: &[String], default: &[&str]) -> Vec<String> {
    if given.is_empty() {
        default.iter().map(|s| (*s).to_owned()).collect()
    } else {
        given.to_vec()
    }
}

fn tarballs(dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| RuntimeError::Sdk(format!("cannot read `{}`: {e}", dir.display())))?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tgz"))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(RuntimeError::Sdk(format!(
            "`{}` holds no .tgz package (make them with `npm pack`)",
            dir.display()
        )));
    }
    Ok(found)
}

/// A fresh directory beside `target`.
fn staging_dir(target: &Path) -> Result<PathBuf, RuntimeError> {
    let parent = target
        .parent()
        .ok_or_else(|| RuntimeError::Sdk("the SDK directory has no parent".into()))?;
    let fail =
        |e: std::io::Error| RuntimeError::Sdk(format!("cannot prepare {}: {e}", parent.display()));
    std::fs::create_dir_all(parent).map_err(fail)?;
    let name = format!(
        ".{}-staging-{}",
        target
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    );
    let staging = parent.join(name);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(fail)?;
    }
    std::fs::create_dir(&staging).map_err(fail)?;
    Ok(staging)
}

/// Replaces `target` by `staging`: the old tree is renamed away first, then removed.
fn swap_in(staging: &Path, target: &Path) -> Result<(), RuntimeError> {
    let fail = |e: std::io::Error| {
        RuntimeError::Sdk(format!("cannot install into {}: {e}", target.display()))
    };
    readable_by_all(staging).map_err(fail)?;
    let old = staging.with_extension("old");
    if target.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(fail)?;
        }
        std::fs::rename(target, &old).map_err(fail)?;
    }
    std::fs::rename(staging, target).map_err(fail)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(fail)?;
    }
    Ok(())
}

/// Files `a+r`, directories `a+rx`: instances may run as any user.
fn readable_by_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    let wanted = if meta.is_dir() {
        mode | 0o555
    } else {
        mode | 0o444
    };
    if wanted != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(wanted))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            readable_by_all(&entry?.path())?;
        }
    }
    Ok(())
}

fn run(command: &mut Command, what: &str) -> Result<(), RuntimeError> {
    let output = command
        .output()
        .map_err(|e| RuntimeError::Sdk(format!("cannot run {what}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(RuntimeError::Sdk(format!(
        "{what} failed ({}): {}",
        output.status,
        tail.join(" / ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(python_sdk_version(dir.path()), None);
        assert_eq!(node_sdk_version(dir.path()), None);
        std::fs::create_dir_all(dir.path().join("sdk/python/boto3-1.44.8.dist-info")).unwrap();
        assert_eq!(python_sdk_version(dir.path()).as_deref(), Some("1.44.8"));
        let manifest = dir
            .path()
            .join("sdk/node/node_modules/@aws-sdk/client-lambda/package.json");
        std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
        std::fs::write(
            &manifest,
            r#"{"name":"@aws-sdk/client-lambda","version":"3.700.0"}"#,
        )
        .unwrap();
        assert_eq!(node_sdk_version(dir.path()).as_deref(), Some("3.700.0"));
    }

    #[test]
    fn a_failed_install_leaves_the_previous_sdk_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let previous = dir.path().join("sdk/python/boto3-1.0.0.dist-info");
        std::fs::create_dir_all(&previous).unwrap();
        let empty = tempfile::tempdir().unwrap();
        let e = install_python(
            dir.path(),
            Path::new("python3"),
            &Source::Directory(empty.path().to_path_buf()),
            &["surely-not-a-package-name".to_owned()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("pip failed"), "{e}");
        assert!(previous.is_dir());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sdk"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, ["python"]);
    }

    #[test]
    fn an_install_replaces_the_whole_tree_readable_by_all() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sdk/python");
        std::fs::create_dir_all(target.join("stale")).unwrap();
        let staging = staging_dir(&target).unwrap();
        std::fs::write(staging.join("new.py"), "x").unwrap();
        std::fs::set_permissions(
            staging.join("new.py"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        swap_in(&staging, &target).unwrap();
        assert!(!target.join("stale").exists());
        let mode = std::fs::metadata(target.join("new.py"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert!(!staging.exists());
    }
}

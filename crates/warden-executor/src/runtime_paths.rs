//! Which host paths a sandboxed instance must see so that its runtime works unmodified:
//! the system's shared libraries and binaries, and an interpreter's installation, found by
//! asking the interpreter itself rather than guessing from its location.
//!
//! Everything returned is bound read-only at the same path inside the instance. Nothing of
//! `/etc` but `/etc/ssl` (certificates) is included: the rest holds host secrets and
//! configuration that a function has no business reading.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ExecutorError;

/// The host directories every instance gets: `/usr`, `/lib`, `/lib64`, `/bin`, `/sbin`
/// and `/etc/ssl`, those that exist.
pub fn system_runtime_paths() -> Vec<PathBuf> {
    ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/ssl"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}

/// Asks `python` for the directories it runs from (its prefixes, the real location of its
/// executable, and its `sys.path`) and checks that `awslambdaric` imports. Paths already
/// covered by [`system_runtime_paths`] or by another returned path are left out.
pub fn python_runtime_paths(python: &Path) -> Result<Vec<PathBuf>, ExecutorError> {
    const SCRIPT: &str = "import os, sys, awslambdaric\n\
        paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,\n\
                 os.path.dirname(os.path.realpath(sys.executable)),\n\
                 os.path.dirname(os.path.dirname(os.path.realpath(awslambdaric.__file__)))]\n\
        paths += [p for p in sys.path if p]\n\
        print('\\0'.join(os.path.realpath(p) for p in paths if os.path.isdir(p)), end='')";
    let fail = |message: String| ExecutorError::ProbeInterpreter {
        path: python.to_path_buf(),
        message,
    };
    let out = Command::new(python)
        .args(["-I", "-c", SCRIPT])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").trim().to_owned();
        return Err(fail(format!("{} ({last})", out.status)));
    }
    let stdout = String::from_utf8(out.stdout).map_err(|e| fail(e.to_string()))?;
    let mut paths: Vec<PathBuf> = stdout.split('\0').map(PathBuf::from).collect();
    // The interpreter is run by the path given, which may be a venv's symlink: its
    // directory (and the venv's `pyvenv.cfg`) must be visible too.
    if let Some(venv) = python.parent().and_then(Path::parent) {
        if venv.join("pyvenv.cfg").is_file() {
            paths.push(venv.to_path_buf());
        }
    }
    // The sandbox provides its own `/tmp` (and `/dev`, `/proc`, `/var/task`): an
    // interpreter installed below one of them cannot be shown to instances at its path.
    if let Some(p) = first_reserved(&paths) {
        return Err(fail(format!(
            "it lives under `{}`, which sandboxed instances get a private copy of; install it elsewhere",
            p.display()
        )));
    }
    Ok(minimal_cover(paths, &system_runtime_paths()))
}

/// The first path at or below a directory the sandbox provides itself.
fn first_reserved(paths: &[PathBuf]) -> Option<&Path> {
    paths
        .iter()
        .find(|p| warden_sandbox::RESERVED.iter().any(|r| p.starts_with(r)))
        .map(PathBuf::as_path)
}

/// Drops empty, relative and duplicate paths and those inside another path or inside one
/// of `covered`; the result is sorted.
fn minimal_cover(mut paths: Vec<PathBuf>, covered: &[PathBuf]) -> Vec<PathBuf> {
    paths.retain(|p| p.is_absolute() && p != Path::new("/"));
    paths.sort();
    paths.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let inside = |q: &PathBuf| p.starts_with(q);
        if !out.iter().any(inside) && !covered.iter().any(inside) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_the_sandbox_provides_itself_are_found() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            first_reserved(&[p("/usr/lib/python3"), p("/tmp/ci/.venv")]),
            Some(p("/tmp/ci/.venv").as_path())
        );
        assert_eq!(
            first_reserved(&[p("/usr"), p("/opt/venv"), p("/tmpfoo")]),
            None
        );
    }

    #[test]
    fn nested_and_covered_paths_are_dropped() {
        let got = minimal_cover(
            [
                "/opt/py/lib/site",
                "/opt/py",
                "/usr/lib/python3",
                "/venv",
                "/venv",
                "rel",
                "/",
            ]
            .map(PathBuf::from)
            .to_vec(),
            &[PathBuf::from("/usr")],
        );
        assert_eq!(got, [PathBuf::from("/opt/py"), PathBuf::from("/venv")]);
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        let e = python_runtime_paths(Path::new("/nonexistent/python")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot inspect the interpreter `/nonexistent/python`: "),
            "{e}"
        );
    }

    #[test]
    fn an_interpreter_without_awslambdaric_is_refused() {
        // `sh -I -c ...` fails: any program that is not a Python with awslambdaric is.
        let e = python_runtime_paths(Path::new("/bin/sh")).unwrap_err();
        assert!(e.to_string().contains("exit status"), "{e}");
    }
}

//! Warden's runtime clients for Python and Node.js, compiled into the binary.
//!
//! They are written for Warden against the Lambda Runtime API and use nothing but their
//! language's standard library. The server writes them into its runtime directory at
//! start ([`install`]), which every instance sees read-only at `/var/runtime`.

use std::io::Write;
use std::path::Path;

/// The Python bootstrap's path below the runtime directory.
pub const PYTHON: &str = "python/bootstrap.py";
/// The Node.js bootstrap's path below the runtime directory.
pub const NODE: &str = "node/index.mjs";
/// The `/etc/hosts` every sandboxed instance sees, below the runtime directory: only the
/// loopback names (as on Lambda, `localhost` resolves; nothing of the host's file shows).
pub const HOSTS: &str = "etc/hosts";
/// The `/etc/resolv.conf` every sandboxed instance sees, below the runtime directory:
/// the resolver Warden serves on the instance's own loopback, one attempt of two seconds
/// (a query Warden cannot answer fails fast rather than after the C library's retries).
pub const RESOLV_CONF: &str = "etc/resolv.conf";

const FILES: &[(&str, &str)] = &[
    (PYTHON, include_str!("../bootstrap/python/bootstrap.py")),
    (NODE, include_str!("../bootstrap/node/index.mjs")),
    (
        HOSTS,
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    ),
    (
        RESOLV_CONF,
        "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n",
    ),
];

/// Writes the bootstraps into `dir` (created if needed), each file replaced atomically so
/// that an instance starting meanwhile reads either the old file or the new one. Files are
/// world-readable and directories world-searchable: instances may run as an unprivileged
/// user, and nothing here is secret.
pub fn install(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mkdir = |d: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(d)?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
    };
    mkdir(dir)?;
    for (rel, text) in FILES {
        let target = dir.join(rel);
        let parent = target.parent().unwrap_or(dir);
        mkdir(parent)?;
        if std::fs::read(&target).ok().as_deref() == Some(text.as_bytes()) {
            continue;
        }
        let mut temp = tempfile_in(parent)?;
        temp.1.write_all(text.as_bytes())?;
        temp.1.sync_all()?;
        std::fs::set_permissions(&temp.0, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&temp.0, &target)?;
    }
    Ok(())
}

/// A new file beside the target, named so that no two installs collide.
fn tempfile_in(dir: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let name = format!(
        ".install-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn install_writes_readable_files_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("runtime");
        install(&runtime).unwrap();
        for rel in [PYTHON, NODE] {
            let meta = std::fs::metadata(runtime.join(rel)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o644, "{rel}");
        }
        let before = std::fs::metadata(runtime.join(PYTHON))
            .unwrap()
            .modified()
            .unwrap();
        install(&runtime).unwrap();
        let after = std::fs::metadata(runtime.join(PYTHON))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after, "an unchanged file is not rewritten");
        std::fs::write(runtime.join(PYTHON), "tampered").unwrap();
        install(&runtime).unwrap();
        let text = std::fs::read_to_string(runtime.join(PYTHON)).unwrap();
        assert!(text.contains("def main()"), "a changed file is replaced");
        let leftovers: Vec<_> = std::fs::read_dir(runtime.join("python"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".install"))
            .collect();
        assert!(leftovers.is_empty());
    }
}

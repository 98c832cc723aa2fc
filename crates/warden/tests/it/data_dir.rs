//! The data directory holds the master key, the admin's credentials, every function's
//! configuration (environment variables included) and code: the server creates all of it
//! private to its owner and refuses to start on a directory other users can enter.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{warden_bin, Server, ACCOUNT};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file and directory the server wrote in the data directory (extracted code trees
/// live elsewhere, in the code directory).
fn written(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.clone());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

#[test]
fn everything_in_the_data_dir_is_private_to_its_owner() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("state");
    let s = Server::start_in(&data, &[]);
    s.create_fixture(
        "private",
        &["--environment", "Variables={TOKEN=not-for-others}"],
    );
    // Logs too: one invocation writes the logs database.
    s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "private",
        "--payload",
        "{}",
        temp.path().join("out.json").to_str().unwrap(),
    ]);
    s.wait_logs("private", std::time::Duration::from_secs(10), |l| {
        l.iter().any(|l| l.starts_with("REPORT"))
    });
    assert_eq!(mode(&data), 0o700);
    let files = written(&data);
    for name in [
        "warden.db",
        "warden.logs.db",
        "identity.db",
        "master.key",
        "kms.db",
        "credentials",
        "blobs",
        "audit.db",
        "config.db",
        "findings.db",
        "audit-signing-key",
        "audit-public-key.json",
    ] {
        assert!(
            files.contains(&data.join(name)),
            "{name} was written: {files:?}"
        );
    }
    for path in files {
        let m = mode(&path);
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        // Warden's runtime bootstraps: public text every instance reads, whatever user it
        // runs as; the directory above them (0700) keeps other users of the host out.
        if path.starts_with(data.join("runtime")) {
            let expected = if path.is_dir() { 0o755 } else { 0o644 };
            assert_eq!(m, expected, "{} has mode {m:03o}", path.display());
            continue;
        }
        assert_eq!(m, expected, "{} has mode {m:03o}", path.display());
    }
}

#[test]
fn a_data_dir_others_can_enter_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("state");
    std::fs::create_dir(&data).unwrap();
    for open in [0o755, 0o750, 0o701, 0o707] {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(open)).unwrap();
        let out = Command::new(warden_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--account-id", ACCOUNT])
            .arg("--data-dir")
            .arg(&data)
            .env("WARDEN_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "mode {open:03o} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "refusing to start: data directory `{}` is open to other users (mode {open:03o})",
                data.display()
            )) && stderr.contains("chmod 700"),
            "{stderr}"
        );
        // Refused before anything was written into it.
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    }
}

#[test]
fn files_an_older_version_left_open_are_made_private() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("state");
    let mut s = Server::start_in(&data, &[]);
    s.create_fixture("old", &[]);
    s.stop();
    // What an older Warden left behind: world-readable databases and blob directories.
    for name in ["warden.db", "warden.logs.db", "identity.db"] {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    for name in ["blobs", "blobs/zips", "blobs/staging"] {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // And a tree it extracted into the data directory, in the clear.
    std::fs::create_dir_all(data.join("blobs/code/0a0b")).unwrap();
    std::fs::write(data.join("blobs/code/0a0b/bootstrap"), b"old code").unwrap();
    s.restart();
    assert!(
        !data.join("blobs/code").exists(),
        "code extracted in the clear is removed from the data directory"
    );
    for name in ["warden.db", "warden.logs.db", "identity.db"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    for name in ["blobs", "blobs/zips", "blobs/staging"] {
        assert_eq!(mode(&data.join(name)), 0o700, "{name}");
    }
    // And the function is still there.
    let f = s.aws(&["lambda", "get-function", "--function-name", "old"]);
    assert_eq!(f["Configuration"]["FunctionName"], "old");
}

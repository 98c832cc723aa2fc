//! Where extracted function code lives. Zips are sealed in the data directory; the trees
//! extracted from them must be readable by instances, so they cannot be encrypted: they
//! are kept on a memory-backed file system instead, which a copy of the disk does not
//! hold and a reboot empties (the engine then extracts them again from the sealed zips).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// The chosen code root.
#[derive(Debug, Clone)]
pub struct CodeRoot {
    /// The directory.
    pub path: PathBuf,
    /// Whether it is on a memory-backed file system.
    pub in_memory: bool,
}

const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Whether `path` is on tmpfs or ramfs.
pub fn memory_backed(path: &Path) -> bool {
    rustix::fs::statfs(path)
        .map(|s| {
            #[allow(
                clippy::unnecessary_cast,
                reason = "f_type's width differs by platform"
            )]
            let t = s.f_type as i64;
            t == TMPFS_MAGIC || t == RAMFS_MAGIC
        })
        .unwrap_or(false)
}

/// `--code-dir` as given, or the default (see `warden serve --help`).
pub fn choose(data_dir: &Path, configured: Option<PathBuf>) -> anyhow::Result<CodeRoot> {
    if let Some(path) = configured {
        private_dir(&path)?;
        let in_memory = memory_backed(&path);
        if !in_memory {
            tracing::warn!(path = %path.display(), "--code-dir is not on a memory-backed file system: extracted code is on disk in the clear there");
        }
        return Ok(CodeRoot { path, in_memory });
    }
    let canonical = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve `{}`", data_dir.display()))?;
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    let name = hex::encode(&digest[..8]);
    let uid = rustix::process::getuid().as_raw();
    let candidates = [
        std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        Some(PathBuf::from("/run")),
        Some(PathBuf::from("/dev/shm")),
    ];
    for base in candidates.into_iter().flatten() {
        if !memory_backed(&base) {
            continue;
        }
        let own = base.join(format!("warden-{uid}"));
        match private_dir(&own) {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(path = %own.display(), error = %e, "not using this directory for extracted code");
                continue;
            }
        }
        let path = own.join(&name);
        private_dir(&path)?;
        return Ok(CodeRoot {
            path,
            in_memory: true,
        });
    }
    tracing::warn!("no memory-backed file system found for extracted code: it is kept in the data directory, on disk in the clear (pass --code-dir on a tmpfs)");
    Ok(CodeRoot {
        path: data_dir.join("blobs"),
        in_memory: false,
    })
}

/// Creates `path` (0700) if absent, and refuses it unless it is a real directory (not a
/// symbolic link) owned by this user that nobody else may enter: in a shared directory
/// such as `/dev/shm` another user could have made it first.
fn private_dir(path: &Path) -> anyhow::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create `{}`", path.display())),
    }
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot inspect `{}`", path.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("`{}` is not a directory", path.display());
    }
    if meta.uid() != rustix::process::getuid().as_raw() {
        anyhow::bail!("`{}` belongs to another user", path.display());
    }
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "`{}` lets other users in (mode {:o}); expected 700",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_memory_backed_and_private_or_the_data_dir() {
        let data = tempfile::tempdir().unwrap();
        let root = choose(data.path(), None).unwrap();
        if root.in_memory {
            assert!(memory_backed(&root.path));
            let mode = std::fs::metadata(&root.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
            // Each data directory has its own.
            let other = tempfile::tempdir().unwrap();
            assert_ne!(choose(other.path(), None).unwrap().path, root.path);
            std::fs::remove_dir(&root.path).unwrap();
        } else {
            assert_eq!(root.path, data.path().join("blobs"));
        }
    }

    #[test]
    fn a_directory_others_may_enter_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = choose(dir.path(), Some(open)).unwrap_err().to_string();
        assert!(e.contains("lets other users in"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(choose(dir.path(), Some(link)).is_err());
    }
}

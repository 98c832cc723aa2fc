//! Content-addressed storage of function code: each uploaded zip and the tree extracted
//! from it, keyed by the zip's SHA-256 (Lambda's `CodeSha256`, base64).
//!
//! Layout under the root directory:
//!
//! ```text
//! zips/<hex sha256>.zip     the uploaded archive
//! code/<hex sha256>/        its extracted tree, installed by one atomic rename
//! staging/<unique>          extractions in progress and trees being removed
//! ```
//!
//! File names use hex because base64 contains `/`. Nothing is ever visible under `zips/`
//! or `code/` before it is complete and fsynced, so a crash leaves either the whole blob
//! or nothing (plus litter in `staging/`, cleared by [`BlobStore::remove_stale_staging`]).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// Base64 (standard alphabet, padded) SHA-256 of `bytes`: Lambda's `CodeSha256`.
pub fn sha256_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// A file name for `sha` that is safe on any file system and cannot escape its directory:
/// the hex of the decoded digest, or for a string that is not a base64 SHA-256 at all,
/// `x` followed by the hex of its bytes (never 64 hex digits, so the two cannot collide).
fn file_name_for(sha: &str) -> String {
    match base64::engine::general_purpose::STANDARD.decode(sha) {
        Ok(digest) if digest.len() == 32 => hex::encode(digest),
        _ => format!("x{}", hex::encode(sha.as_bytes())),
    }
}

/// Inverse of [`file_name_for`], for listing what is stored.
fn sha_for_file_name(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix('x') {
        return String::from_utf8(hex::decode(rest).ok()?).ok();
    }
    let digest = hex::decode(name).ok().filter(|d| d.len() == 32)?;
    Some(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// A name no other live writer uses: process id, clock and a process-wide counter.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}-{nanos}-{n}", std::process::id())
}

fn io_err(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::BlobIo {
        context,
        path,
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing a directory", dir))
}

/// Fsyncs every regular file and directory of a tree, children before parents, so that a
/// rename of the tree's root publishes only data already on disk. Symlinks are not
/// followed (their target may be outside the tree).
fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(io_err("listing an extracted tree", dir))? {
        let entry = entry.map_err(io_err("listing an extracted tree", dir))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(io_err("inspecting an extracted file", &path))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            match fs::File::open(&path) {
                Ok(f) => f
                    .sync_all()
                    .map_err(io_err("syncing an extracted file", &path))?,
                // A file the extractor made unreadable to us cannot be fsynced through a
                // descriptor; the final directory sync still orders its metadata.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    tracing::warn!(path = %path.display(), "cannot open extracted file to sync it");
                }
                Err(e) => return Err(io_err("syncing an extracted file", &path)(e)),
            }
        }
    }
    sync_dir(dir)
}

/// Removes a tree even if the extractor left read-only directories in it.
fn remove_tree(path: &Path) -> io::Result<()> {
    fn make_writable(dir: &Path) -> io::Result<()> {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                make_writable(&entry.path())?;
            }
        }
        Ok(())
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(meta) if !meta.is_dir() => return fs::remove_file(path),
        Ok(_) => {}
    }
    if let Err(first) = fs::remove_dir_all(path) {
        if first.kind() != io::ErrorKind::PermissionDenied {
            return Err(first);
        }
        make_writable(path)?;
        fs::remove_dir_all(path)?;
    }
    Ok(())
}

/// Code zips and extracted trees, addressed by their base64 SHA-256.
#[derive(Debug, Clone)]
pub struct BlobStore {
    zips: PathBuf,
    code: PathBuf,
    staging: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) a blob store rooted at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let store = Self {
            zips: root.join("zips"),
            code: root.join("code"),
            staging: root.join("staging"),
        };
        // Only the owner may list or read the code of every function: 0700, also for
        // directories an older version created with wider permissions. Instances see their
        // own code through a bind mount, which does not traverse these directories.
        for dir in [root, &store.zips, &store.code, &store.staging] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err("creating the blob directories", dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err("making a blob directory private", dir))?;
        }
        sync_dir(root)?;
        Ok(store)
    }

    /// Stores a zip under its SHA-256 and returns that sha (base64). Idempotent: storing
    /// the same bytes again only recomputes the hash. Durable when it returns.
    pub fn put_zip(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha = sha256_base64(bytes);
        let target = self.zip_path(&sha);
        if target.is_file() {
            return Ok(sha);
        }
        let tmp = self.zips.join(unique_name(".tmp-"));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_err("creating a temporary zip", &tmp))?;
            f.write_all(bytes).map_err(io_err("writing a zip", &tmp))?;
            f.sync_all().map_err(io_err("syncing a zip", &tmp))?;
            fs::rename(&tmp, &target).map_err(io_err("installing a zip", &target))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        sync_dir(&self.zips)?;
        Ok(sha)
    }

    /// Where the zip with this sha is (or would be) stored.
    pub fn zip_path(&self, sha: &str) -> PathBuf {
        self.zips.join(format!("{}.zip", file_name_for(sha)))
    }

    /// Whether the zip with this sha is stored.
    pub fn has_zip(&self, sha: &str) -> bool {
        self.zip_path(sha).is_file()
    }

    /// Where the extracted tree of the zip with this sha is (or would be) installed.
    pub fn code_dir(&self, sha: &str) -> PathBuf {
        self.code.join(file_name_for(sha))
    }

    /// Whether the extracted tree of this sha is installed (and therefore complete).
    pub fn has_code_dir(&self, sha: &str) -> bool {
        self.code_dir(sha).is_dir()
    }

    /// A fresh path for an extraction in progress, on the same file system as
    /// [`BlobStore::code_dir`] so that [`BlobStore::install_code_dir`] is one rename. The
    /// path does not exist yet; the extractor creates it (`create_dir`, which fails rather
    /// than reuse a directory).
    pub fn staging_dir(&self) -> PathBuf {
        self.staging.join(unique_name("extract-"))
    }

    /// Moves a fully extracted `staging` tree into place as the code of `sha` and returns
    /// the installed path. Every file is fsynced first, so after a crash the code
    /// directory is either complete or absent. If the tree is already installed (another
    /// extraction won the race), `staging` is removed and the existing tree kept.
    pub fn install_code_dir(&self, sha: &str, staging: &Path) -> Result<PathBuf, StoreError> {
        let target = self.code_dir(sha);
        if target.is_dir() {
            remove_tree(staging).map_err(io_err("removing a redundant extraction", staging))?;
            return Ok(target);
        }
        sync_tree(staging)?;
        if let Err(e) = fs::rename(staging, &target) {
            if !target.is_dir() {
                return Err(io_err("installing an extracted tree", &target)(e));
            }
            remove_tree(staging).map_err(io_err("removing a redundant extraction", staging))?;
            return Ok(target);
        }
        sync_dir(&self.code)?;
        Ok(target)
    }

    /// Deletes the zip and extracted tree of `sha` (garbage collection). Missing pieces
    /// are not an error. The tree is first renamed out of `code/`, so no reader ever sees
    /// a half-deleted tree under its code path.
    pub fn remove(&self, sha: &str) -> Result<(), StoreError> {
        let zip = self.zip_path(sha);
        match fs::remove_file(&zip) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("removing a zip", &zip)(e));
            }
            _ => {}
        }
        let dir = self.code_dir(sha);
        let trash = self.staging.join(unique_name("trash-"));
        match fs::rename(&dir, &trash) {
            Ok(()) => {
                sync_dir(&self.code)?;
                remove_tree(&trash).map_err(io_err("removing an extracted tree", &trash))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing an extracted tree", &dir)(e)),
        }
        sync_dir(&self.zips)
    }

    /// Every sha with a stored zip or extracted tree, sorted; with
    /// [`crate::Store::referenced_code`] this tells garbage collection what to remove.
    pub fn stored_shas(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for (dir, suffix) in [(&self.zips, ".zip"), (&self.code, "")] {
            for entry in fs::read_dir(dir).map_err(io_err("listing blobs", dir))? {
                let entry = entry.map_err(io_err("listing blobs", dir))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') {
                    continue;
                }
                let Some(stem) = name.strip_suffix(suffix) else {
                    continue;
                };
                if let Some(sha) = sha_for_file_name(stem) {
                    out.push(sha);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Clears leftovers of extractions and removals interrupted by a crash, and
    /// half-written zips. Call once at startup, before any extraction begins.
    pub fn remove_stale_staging(&self) -> Result<(), StoreError> {
        for entry in
            fs::read_dir(&self.staging).map_err(io_err("listing staging", &self.staging))?
        {
            let path = entry
                .map_err(io_err("listing staging", &self.staging))?
                .path();
            remove_tree(&path).map_err(io_err("removing stale staging", &path))?;
        }
        for entry in fs::read_dir(&self.zips).map_err(io_err("listing blobs", &self.zips))? {
            let entry = entry.map_err(io_err("listing blobs", &self.zips))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let path = entry.path();
                fs::remove_file(&path).map_err(io_err("removing a half-written zip", &path))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn sha256_base64_is_lambdas_code_sha256() {
        // `printf 'hello' | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            sha256_base64(b"hello"),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
    }

    #[test]
    fn put_zip_stores_by_hash_and_is_idempotent() {
        let (_d, store) = open();
        let sha = store.put_zip(b"zip bytes").unwrap();
        assert_eq!(sha, sha256_base64(b"zip bytes"));
        let path = store.zip_path(&sha);
        assert_eq!(fs::read(&path).unwrap(), b"zip bytes");
        assert!(store.has_zip(&sha));
        assert_eq!(store.put_zip(b"zip bytes").unwrap(), sha);
        let names: Vec<_> = fs::read_dir(&store.zips)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names.len(),
            1,
            "no temporary file is left behind: {names:?}"
        );
        assert_eq!(store.stored_shas().unwrap(), [sha]);
    }

    #[test]
    fn paths_are_hex_and_cannot_escape_the_root() {
        let (d, store) = open();
        let sha = sha256_base64(b"x");
        let name = store
            .code_dir(&sha)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(name.len(), 64);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        for hostile in ["../../etc", "/abs", "a/b", "..", ""] {
            let p = store.code_dir(hostile);
            assert_eq!(p.parent().unwrap(), d.path().join("code"), "{hostile}");
            assert!(p.file_name().unwrap().to_str().unwrap().starts_with('x'));
            let z = store.zip_path(hostile);
            assert_eq!(z.parent().unwrap(), d.path().join("zips"), "{hostile}");
        }
        assert_eq!(
            sha_for_file_name(&file_name_for("../x")).as_deref(),
            Some("../x")
        );
        assert_eq!(sha_for_file_name(&file_name_for(&sha)), Some(sha));
    }

    #[test]
    fn install_code_dir_renames_staging_into_place() {
        let (_d, store) = open();
        let sha = store.put_zip(b"code").unwrap();
        assert!(!store.has_code_dir(&sha));
        let staging = store.staging_dir();
        assert!(!staging.exists());
        assert_ne!(staging, store.staging_dir(), "each call gives a fresh path");
        fs::create_dir_all(staging.join("lib")).unwrap();
        fs::write(staging.join("bootstrap"), b"#!/bin/sh").unwrap();
        fs::write(staging.join("lib/x.py"), b"x = 1").unwrap();
        std::os::unix::fs::symlink("/nonexistent", staging.join("dangling")).unwrap();

        let installed = store.install_code_dir(&sha, &staging).unwrap();
        assert_eq!(installed, store.code_dir(&sha));
        assert!(store.has_code_dir(&sha));
        assert!(!staging.exists());
        assert_eq!(fs::read(installed.join("lib/x.py")).unwrap(), b"x = 1");

        // A second extraction of the same code loses the race and is dropped.
        let second = store.staging_dir();
        fs::create_dir(&second).unwrap();
        fs::write(second.join("bootstrap"), b"other").unwrap();
        store.install_code_dir(&sha, &second).unwrap();
        assert!(!second.exists());
        assert_eq!(fs::read(installed.join("bootstrap")).unwrap(), b"#!/bin/sh");
    }

    #[test]
    fn remove_deletes_zip_and_tree_even_when_read_only() {
        let (_d, store) = open();
        let sha = store.put_zip(b"code").unwrap();
        let staging = store.staging_dir();
        fs::create_dir_all(staging.join("ro")).unwrap();
        fs::write(staging.join("ro/f"), b"f").unwrap();
        fs::set_permissions(staging.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        store.install_code_dir(&sha, &staging).unwrap();

        store.remove(&sha).unwrap();
        assert!(!store.has_zip(&sha));
        assert!(!store.has_code_dir(&sha));
        assert!(store.stored_shas().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(&store.staging).unwrap().count(),
            0,
            "trash is emptied"
        );
        store.remove(&sha).unwrap();
    }

    #[test]
    fn stale_staging_is_cleared() {
        let (_d, store) = open();
        let staging = store.staging_dir();
        fs::create_dir_all(staging.join("half")).unwrap();
        fs::write(store.zips.join(".tmp-crashed"), b"partial").unwrap();
        let sha = store.put_zip(b"kept").unwrap();
        store.remove_stale_staging().unwrap();
        assert!(!staging.exists());
        assert!(!store.zips.join(".tmp-crashed").exists());
        assert!(store.has_zip(&sha));
    }
}

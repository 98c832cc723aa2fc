//! Content-addressed storage of function code: each uploaded zip and the tree extracted
//! from it, keyed by the zip's SHA-256 (Lambda's `CodeSha256`, base64).
//!
//! Zips are kept sealed (encrypted by the [`BlobSealer`] the store was opened with) in the
//! data directory; extracted trees live in a separate code root, which the server puts on
//! memory-backed storage, so that no function's code is on disk in the clear. A tree that
//! is missing (after a reboot emptied the code root) is extracted again from its sealed
//! zip when next needed ([`BlobStore::restore_code_dir`]).
//!
//! Layout:
//!
//! ```text
//! ROOT/zips/<hex sha256>.sealed   the uploaded archive, sealed
//! ROOT/staging/<unique>           zips being removed
//! CODE/code/<hex sha256>/         its extracted tree, installed by one atomic rename
//! CODE/staging/<unique>           extractions in progress and trees being removed
//! ```
//!
//! # Shared code (several nodes)
//!
//! With a [`SharedCode`] backend ([`BlobStore::with_shared`]), the local directories become
//! a cache: every zip stored here is also stored there, sealed as it is on disk, before the
//! deploy that references it commits; a node asked for code it lacks fetches the sealed
//! zip, checks that it opens and hashes to its name, and keeps it. Nothing in the shared
//! backend is in the clear, and a blob there that was tampered with is refused like a
//! local one. Each store of a blob touches it, and the shared backend deletes only blobs
//! that no version references and nobody touched for [`SHARED_CODE_GRACE`], longer than any
//! deploy takes between storing its zip and committing the version.
//!
//! File names use hex because base64 contains `/`. Nothing is ever visible under `zips/`
//! or `code/` before it is complete and fsynced, so a crash leaves either the whole blob
//! or nothing (plus litter in `staging/`, cleared by [`BlobStore::remove_stale_staging`]).
//!
//! # Garbage collection
//!
//! [`BlobStore::sweep`] removes every blob that no stored version references and nothing
//! pins. A [`BlobPin`] covers what the store cannot know about: a deploy between writing
//! its blob and committing the version that references it, and the code directory of a
//! live instance. The sweep reads the references and removes blobs while holding the pin
//! table's lock, and a version can only come to reference a blob that is not referenced
//! already through a deploy holding a pin on it, so a blob is never removed while
//! something still needs it. Removal renames the zip and the tree into `staging/` first,
//! so a crash at any point leaves each blob either whole or gone from `zips/` and
//! `code/`; the litter is cleared at the next start, and whatever a crash orphaned (a
//! blob written by a deploy that never committed) goes at the next sweep, which runs at
//! start, after every delete or code change, when a pin that held back a removal is
//! dropped, and periodically ([`BlobStore::start_collector`]).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use warden_types::seal::BlobSealer;

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
/// Adds the tree `from` to `to`: directories made, files hard-linked, symbolic links
/// copied; an entry already at a path is replaced.
fn link_tree(from: &Path, to: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(from).map_err(io_err("listing a layer", from))? {
        let entry = entry.map_err(io_err("listing a layer", from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(io_err("reading a layer", &source))?;
        let existing = fs::symlink_metadata(&target).ok();
        let replace = |existing: &Option<fs::Metadata>| -> Result<(), StoreError> {
            match existing {
                Some(m) if m.is_dir() => {
                    remove_tree(&target).map_err(io_err("merging layers", &target))
                }
                Some(_) => fs::remove_file(&target).map_err(io_err("merging layers", &target)),
                None => Ok(()),
            }
        };
        if kind.is_dir() {
            if !existing.as_ref().is_some_and(fs::Metadata::is_dir) {
                replace(&existing)?;
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&target)
                    .map_err(io_err("merging layers", &target))?;
            }
            link_tree(&source, &target)?;
        } else if kind.is_symlink() {
            replace(&existing)?;
            let link = fs::read_link(&source).map_err(io_err("reading a layer", &source))?;
            std::os::unix::fs::symlink(link, &target).map_err(io_err("merging layers", &target))?;
        } else {
            replace(&existing)?;
            fs::hard_link(&source, &target).map_err(io_err("merging layers", &target))?;
        }
    }
    Ok(())
}

/// The bytes of the regular files below `dir`.
fn tree_size(dir: &Path) -> Result<u64, StoreError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(io_err("measuring a tree", dir))? {
        let entry = entry.map_err(io_err("measuring a tree", dir))?;
        let kind = entry.file_type().map_err(io_err("measuring a tree", dir))?;
        if kind.is_dir() {
            total += tree_size(&entry.path())?;
        } else if kind.is_file() {
            total += entry
                .metadata()
                .map_err(io_err("measuring a tree", dir))?
                .len();
        }
    }
    Ok(total)
}

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Blobs in use that the store may not reference: see the module documentation.
#[derive(Debug, Default)]
struct Pins {
    counts: HashMap<String, usize>,
    /// Unreferenced shas a sweep kept only because they were pinned: when the last pin
    /// of one goes, another sweep is due.
    deferred: HashSet<String>,
}

/// The pin table and the collector thread's wake-up, shared by every clone and pin.
#[derive(Debug, Default)]
struct Collector {
    pins: Mutex<Pins>,
    wanted: Mutex<bool>,
    wake: Condvar,
}

impl Collector {
    fn request(&self) {
        *lock(&self.wanted) = true;
        self.wake.notify_all();
    }
}

/// Keeps the blob of one sha from being garbage collected while it lives (see
/// [`BlobStore::pin`]).
#[derive(Debug)]
pub struct BlobPin {
    collector: Arc<Collector>,
    sha: String,
}

impl BlobPin {
    /// The pinned sha.
    pub fn sha(&self) -> &str {
        &self.sha
    }
}

impl Drop for BlobPin {
    fn drop(&mut self) {
        let mut pins = lock(&self.collector.pins);
        let last = match pins.counts.get_mut(&self.sha) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                pins.counts.remove(&self.sha);
                true
            }
        };
        if last && pins.deferred.remove(&self.sha) {
            drop(pins);
            self.collector.request();
        }
    }
}

/// A directory under `staging/` for one extraction, removed when dropped unless it was
/// installed (renamed away) first; a crash leaves it for
/// [`BlobStore::remove_stale_staging`].
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
}

impl Staging {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a staging directory");
        }
    }
}

/// How long a blob in the shared backend is kept after its last store even if no version
/// references it: longer than any deploy takes between storing its zip and committing the
/// version that references it.
pub const SHARED_CODE_GRACE: Duration = Duration::from_secs(3600);

/// Sealed code zips kept where every node can fetch them (see the module docs). Keys are
/// `CodeSha256` values; values are the sealed bytes exactly as a node stores them on disk.
pub trait SharedCode: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `sealed` under `sha` unless a blob of that sha is stored already, and in
    /// either case marks it as stored now (restarting its grace period). Durable when it
    /// returns.
    fn put(&self, sha: &str, sealed: &[u8]) -> Result<(), StoreError>;
    /// Marks the blob of `sha` as stored now; whether it exists. A node that has the zip
    /// locally calls this instead of [`SharedCode::put`], to avoid sending it again.
    fn touch(&self, sha: &str) -> Result<bool, StoreError>;
    /// The sealed bytes of `sha`, if stored.
    fn get(&self, sha: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes every blob `referenced` does not list and nobody stored or touched within
    /// `grace`; returns how many went.
    fn collect(&self, referenced: &HashSet<String>, grace: Duration) -> Result<u64, StoreError>;
}

/// What one [`BlobStore::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Unreferenced, unpinned blobs removed.
    pub removed: usize,
    /// Unreferenced blobs kept because something pins them (swept again when unpinned).
    pub deferred: usize,
}

/// Code zips (sealed) and extracted trees, addressed by their base64 SHA-256.
#[derive(Debug, Clone)]
pub struct BlobStore {
    zips: PathBuf,
    zip_staging: PathBuf,
    code: PathBuf,
    staging: PathBuf,
    sealer: Arc<dyn BlobSealer>,
    collector: Arc<Collector>,
    shared: Option<Arc<dyn SharedCode>>,
}

impl BlobStore {
    /// Opens (creating if needed) a blob store keeping sealed zips under `root` and
    /// extracted trees under `code_root` (which may be `root`). Zips an older Warden
    /// stored in the clear are sealed now, and extracted trees it left under `root` are
    /// removed when the code root is elsewhere.
    pub fn open(
        root: &Path,
        code_root: &Path,
        sealer: Arc<dyn BlobSealer>,
    ) -> Result<Self, StoreError> {
        let store = Self {
            zips: root.join("zips"),
            zip_staging: root.join("staging"),
            code: code_root.join("code"),
            staging: code_root.join("staging"),
            sealer,
            collector: Arc::default(),
            shared: None,
        };
        // Only the owner may list or read the code of every function: 0700, also for
        // directories an older version created with wider permissions. Instances see their
        // own code through a bind mount, which does not traverse these directories.
        for dir in [
            root,
            &store.zips,
            &store.zip_staging,
            code_root,
            &store.code,
            &store.staging,
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err("creating the blob directories", dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err("making a blob directory private", dir))?;
        }
        sync_dir(root)?;
        store.seal_plain_zips()?;
        let old_trees = root.join("code");
        if old_trees != store.code && old_trees.is_dir() {
            remove_tree(&old_trees)
                .map_err(io_err("removing trees extracted in the clear", &old_trees))?;
            sync_dir(root)?;
        }
        Ok(store)
    }

    /// This store as a cache of `shared`: zips stored here go there too, and zips missing
    /// here are fetched from there.
    pub fn with_shared(mut self, shared: Arc<dyn SharedCode>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The shared backend, if this store is a cache of one.
    pub fn shared(&self) -> Option<&Arc<dyn SharedCode>> {
        self.shared.as_ref()
    }

    /// Seals every zip an older Warden stored in the clear (`<hex>.zip`), then removes it.
    fn seal_plain_zips(&self) -> Result<(), StoreError> {
        for entry in fs::read_dir(&self.zips).map_err(io_err("listing blobs", &self.zips))? {
            let path = entry.map_err(io_err("listing blobs", &self.zips))?.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".zip"))
            else {
                continue;
            };
            let bytes = fs::read(&path).map_err(io_err("reading a stored zip", &path))?;
            // Only a zip whose name is its digest is kept; anything else is litter.
            if sha_for_file_name(stem).is_some_and(|sha| sha == sha256_base64(&bytes)) {
                self.put_zip(&bytes)?;
            }
            fs::remove_file(&path).map_err(io_err("removing a zip stored in the clear", &path))?;
            tracing::info!(path = %path.display(), "sealed a zip stored in the clear");
        }
        sync_dir(&self.zips)
    }

    /// Stores a zip (sealed) under its SHA-256 and returns that sha (base64). Idempotent:
    /// storing the same bytes again only recomputes the hash. Durable when it returns.
    pub fn put_zip(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha = sha256_base64(bytes);
        let target = self.zip_path(&sha);
        if target.is_file() {
            self.share(&sha)?;
            return Ok(sha);
        }
        let sealed = self
            .sealer
            .seal(&sha, bytes)
            .map_err(|e| StoreError::Backend {
                context: "sealing a zip",
                source: Box::new(e),
            })?;
        // Shared first: once the version referencing it commits, any node may need it.
        if let Some(shared) = &self.shared {
            shared.put(&sha, &sealed)?;
        }
        self.install_sealed(&sha, &sealed)?;
        Ok(sha)
    }

    /// Makes sure the shared backend (if any) holds the zip of `sha`, which is stored here:
    /// touches it there, or sends it if it is missing. A deploy of code this node already
    /// has calls it before committing the version that references the code.
    pub fn share(&self, sha: &str) -> Result<(), StoreError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        if shared.touch(sha)? {
            return Ok(());
        }
        let path = self.zip_path(sha);
        let sealed = fs::read(&path).map_err(io_err("reading a stored zip", &path))?;
        shared.put(sha, &sealed)
    }

    /// Writes sealed zip bytes under `sha`, durably and atomically.
    fn install_sealed(&self, sha: &str, sealed: &[u8]) -> Result<(), StoreError> {
        let target = self.zip_path(sha);
        let bytes = sealed;
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
        sync_dir(&self.zips)
    }

    /// Where the sealed zip with this sha is (or would be) stored.
    pub fn zip_path(&self, sha: &str) -> PathBuf {
        self.zips.join(format!("{}.sealed", file_name_for(sha)))
    }

    /// The zip of `sha`, opened; refused unless its bytes hash to `sha`.
    /// With a shared backend, a zip missing here is fetched from it first (and kept only if
    /// it opens and hashes to `sha`).
    pub fn read_zip(&self, sha: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.zip_path(sha);
        let sealed = match fs::read(&path) {
            Ok(sealed) => sealed,
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.shared.is_some() => {
                return self.fetch_shared(sha, e);
            }
            Err(e) => return Err(io_err("reading a stored zip", &path)(e)),
        };
        self.open_sealed(sha, &sealed)
    }

    /// Fetches the zip of `sha` from the shared backend, checks it and keeps it here;
    /// `missing` is the local error reported if the shared backend lacks it too.
    fn fetch_shared(&self, sha: &str, missing: io::Error) -> Result<Vec<u8>, StoreError> {
        let path = self.zip_path(sha);
        let Some(shared) = &self.shared else {
            return Err(io_err("reading a stored zip", &path)(missing));
        };
        let Some(sealed) = shared.get(sha)? else {
            return Err(io_err(
                "reading a stored zip (not in the shared store either)",
                &path,
            )(missing));
        };
        let plain = self.open_sealed(sha, &sealed)?;
        self.install_sealed(sha, &sealed)?;
        tracing::info!(sha, "fetched a function's code from the shared store");
        Ok(plain)
    }

    /// Opens sealed zip bytes; refused unless they hash to `sha`.
    fn open_sealed(&self, sha: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let plain = self
            .sealer
            .open(sha, sealed)
            .map_err(|e| StoreError::Backend {
                context: "opening a stored zip",
                source: Box::new(e),
            })?;
        if sha256_base64(&plain) != sha {
            return Err(StoreError::InvalidRecord(format!(
                "the stored zip of {sha} does not hash to its name"
            )));
        }
        Ok(plain)
    }

    /// Makes sure the extracted tree of `sha` exists: if the code root lost it (a reboot
    /// emptied it), the sealed zip is opened and unpacked again, within the package
    /// limits every deploy was held to. The caller holds a pin on `sha`.
    pub fn restore_code_dir(&self, sha: &str) -> Result<PathBuf, StoreError> {
        let target = self.code_dir(sha);
        if target.is_dir() {
            return Ok(target);
        }
        let zip = self.read_zip(sha)?;
        let staging = self.create_staging()?;
        warden_package::extract(&zip, staging.path(), &warden_package::Limits::default()).map_err(
            |e| {
                StoreError::InvalidRecord(format!("the stored zip of {sha} no longer unpacks: {e}"))
            },
        )?;
        tracing::info!(sha, "extracted a function's code again from its sealed zip");
        self.install_code_dir(sha, staging.path())
    }

    /// Whether the zip with this sha is stored here (not asking the shared backend).
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

    /// Creates a fresh directory under `staging/` for an extraction (or a validation that
    /// must leave nothing behind); it is removed when the returned guard drops, unless
    /// [`BlobStore::install_code_dir`] moved it into place.
    pub fn create_staging(&self) -> Result<Staging, StoreError> {
        let path = self.staging_dir();
        fs::create_dir(&path).map_err(io_err("creating a staging directory", &path))?;
        Ok(Staging { path })
    }

    /// Keeps the blob of `sha` (present or about to be written) from being garbage
    /// collected until the pin drops. Take it before checking whether the blob exists
    /// and hold it until the version referencing the blob is committed, or, for an
    /// instance, until its process is gone.
    pub fn pin(&self, sha: &str) -> BlobPin {
        *lock(&self.collector.pins)
            .counts
            .entry(sha.to_owned())
            .or_insert(0) += 1;
        BlobPin {
            collector: Arc::clone(&self.collector),
            sha: sha.to_owned(),
        }
    }

    /// Asks the collector thread (if started) for a sweep soon; cheap, and repeated
    /// requests before the sweep runs coalesce into one.
    pub fn request_sweep(&self) {
        self.collector.request();
    }

    /// Removes every blob whose sha `referenced` does not list and nothing pins.
    /// `referenced` (every sha a stored version uses, [`crate::FunctionStore::referenced_code`])
    /// is read while the pin table is locked, so no deploy can commit a new reference to
    /// an unpinned blob in between. If it fails, nothing is removed.
    pub fn sweep(
        &self,
        referenced: impl FnOnce() -> Result<Vec<String>, StoreError>,
    ) -> Result<SweepReport, StoreError> {
        let stored = self.stored_shas()?;
        let mut report = SweepReport::default();
        let mut trash = Vec::new();
        {
            let mut pins = lock(&self.collector.pins);
            let referenced: HashSet<String> = referenced()?.into_iter().collect();
            for sha in stored.iter().filter(|s| !referenced.contains(*s)) {
                if pins.counts.contains_key(sha) {
                    pins.deferred.insert(sha.clone());
                    report.deferred += 1;
                    continue;
                }
                self.move_to_trash(sha, &mut trash)?;
                report.removed += 1;
            }
        }
        if !trash.is_empty() {
            sync_dir(&self.zips)?;
            sync_dir(&self.code)?;
        }
        for path in trash {
            remove_tree(&path).map_err(io_err("removing a collected blob", &path))?;
        }
        Ok(report)
    }

    /// Renames the tree and zip of `sha` (those that exist) into `staging/`, recording
    /// where they went. The tree goes first: a deploy takes an installed tree as a whole
    /// blob, so a crash in between must not leave a tree without its zip.
    fn move_to_trash(&self, sha: &str, trash: &mut Vec<PathBuf>) -> Result<(), StoreError> {
        for (path, staging) in [
            (self.code_dir(sha), &self.staging),
            (self.zip_path(sha), &self.zip_staging),
        ] {
            // Each into the staging directory of its own file system (a rename cannot
            // cross file systems).
            let to = staging.join(unique_name("trash-"));
            match fs::rename(&path, &to) {
                Ok(()) => trash.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("collecting a blob", &path)(e)),
            }
        }
        Ok(())
    }

    /// Starts the thread that sweeps when asked ([`BlobStore::request_sweep`], or a pin
    /// holding back a removal dropped) and every `period` in any case. It stops once the
    /// last handle on this blob store is gone.
    pub fn start_collector(
        self: &Arc<Self>,
        store: Arc<dyn crate::Store>,
        period: Duration,
    ) -> io::Result<()> {
        let blobs: Weak<Self> = Arc::downgrade(self);
        let collector = Arc::clone(&self.collector);
        std::thread::Builder::new()
            .name("blob-gc".into())
            .spawn(move || loop {
                {
                    let mut wanted = lock(&collector.wanted);
                    if !*wanted {
                        wanted = collector
                            .wake
                            .wait_timeout(wanted, period)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    *wanted = false;
                }
                let Some(blobs) = blobs.upgrade() else { return };
                match blobs.sweep(|| store.referenced_code()) {
                    Ok(r) if r.removed > 0 => {
                        tracing::info!(
                            removed = r.removed,
                            deferred = r.deferred,
                            "collected unused code blobs"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not collect unused code blobs"),
                }
                if let Some(shared) = &blobs.shared {
                    let collected = store.referenced_code().and_then(|referenced| {
                        shared.collect(&referenced.into_iter().collect(), SHARED_CODE_GRACE)
                    });
                    match collected {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "collected unused shared code"),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not collect unused shared code")
                        }
                    }
                }
            })
            .map(|_| ())
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

    /// The key under which the merged tree of layers `shas` (in order) is kept: a code
    /// directory of its own, addressed by this digest of the list.
    pub fn layers_key(shas: &[String]) -> String {
        sha256_base64(format!("warden-layers\n{}", shas.join("\n")).as_bytes())
    }

    /// Makes (once) the tree a function with layers `shas` sees at `/opt`: each layer's
    /// extracted tree in order, a later layer's file replacing an earlier one's at the same
    /// path, as Lambda merges them. Files are hard links to the layers' own trees, so a
    /// merge costs no copy of their contents. Returns the tree's key
    /// ([`BlobStore::layers_key`]) and the bytes of its files. The caller holds pins on
    /// the layers' shas and on the key.
    pub fn merge_layers(&self, shas: &[String]) -> Result<(String, u64), StoreError> {
        let key = Self::layers_key(shas);
        let target = self.code_dir(&key);
        if !target.is_dir() {
            let staging = self.create_staging()?;
            for sha in shas {
                let layer = self.restore_code_dir(sha)?;
                link_tree(&layer, staging.path())?;
            }
            // The staging guard then finds its directory gone (moved into place).
            self.install_code_dir(&key, staging.path())?;
        }
        let size = tree_size(&target)?;
        Ok((key, size))
    }

    /// The bytes of the files of the extracted tree of `sha`.
    pub fn code_dir_size(&self, sha: &str) -> Result<u64, StoreError> {
        tree_size(&self.restore_code_dir(sha)?)
    }

    /// Every sha with a stored zip or extracted tree, sorted; with
    /// [`crate::FunctionStore::referenced_code`] this tells garbage collection what to remove.
    pub fn stored_shas(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for (dir, suffix) in [(&self.zips, ".sealed"), (&self.code, "")] {
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
        for staging in [&self.staging, &self.zip_staging] {
            for entry in fs::read_dir(staging).map_err(io_err("listing staging", staging))? {
                let path = entry.map_err(io_err("listing staging", staging))?.path();
                remove_tree(&path).map_err(io_err("removing stale staging", &path))?;
            }
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

    /// The real sealer: KMS envelope encryption, with its key store in `dir/kms`.
    fn sealer(dir: &Path) -> Arc<dyn BlobSealer> {
        let kms = warden_kms::Kms::open(
            &dir.join("kms"),
            warden_kms::MasterKey::generate().unwrap(),
            "123456789012",
            "us-east-1",
        )
        .unwrap();
        kms.ensure_aws_managed_keys().unwrap();
        warden_kms::envelope::CodeSealer::new(kms)
    }

    /// Sealed zips under `dir/data`, trees under `dir/mem`.
    fn open_in(dir: &Path) -> BlobStore {
        BlobStore::open(&dir.join("data"), &dir.join("mem"), sealer(dir)).unwrap()
    }

    fn open() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
        (dir, store)
    }

    #[test]
    fn zips_are_sealed_at_rest_and_trees_come_back_from_them() {
        let (d, store) = open();
        let zip = warden_package::zip_directory(
            &{
                let src = d.path().join("src");
                fs::create_dir_all(&src).unwrap();
                fs::write(src.join("app.py"), b"MARKER-a91c = 1").unwrap();
                src
            },
            &mut |_, _| {},
        )
        .unwrap();
        let sha = store.put_zip(&zip).unwrap();
        let sealed = fs::read(store.zip_path(&sha)).unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"MARKER-a91c"));
        assert_eq!(store.read_zip(&sha).unwrap(), zip);
        // The code root emptied (a reboot): the tree is extracted again.
        let tree = store.restore_code_dir(&sha).unwrap();
        assert_eq!(fs::read(tree.join("app.py")).unwrap(), b"MARKER-a91c = 1");
        remove_tree(&tree).unwrap();
        assert!(!store.has_code_dir(&sha));
        store.restore_code_dir(&sha).unwrap();
        assert!(store.has_code_dir(&sha));
        // A changed byte of the sealed zip: refused, never unpacked.
        let mut bad = sealed.clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        fs::write(store.zip_path(&sha), &bad).unwrap();
        assert!(store.read_zip(&sha).is_err());
    }

    /// A zip of one file `app.py` holding `text`, built under `dir`.
    fn zip_of(dir: &Path, text: &[u8]) -> Vec<u8> {
        let src = dir.join(format!("src-{}", unique_name("")));
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("app.py"), text).unwrap();
        warden_package::zip_directory(&src, &mut |_, _| {}).unwrap()
    }

    /// Two nodes' blob stores (own directories, one key store, as nodes sharing KMS keys
    /// have) in front of one PostgreSQL database, and a client on it.
    fn two_nodes() -> (tempfile::TempDir, BlobStore, BlobStore, postgres::Client) {
        let dir = tempfile::tempdir().unwrap();
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        let sealer = sealer(dir.path());
        let node = |name: &str| {
            let shared = crate::PostgresStore::open(&url, 2).unwrap().shared_code();
            BlobStore::open(
                &dir.path().join(name).join("data"),
                &dir.path().join(name).join("mem"),
                Arc::clone(&sealer),
            )
            .unwrap()
            .with_shared(Arc::new(shared))
        };
        let (a, b) = (node("a"), node("b"));
        let client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        (dir, a, b, client)
    }

    #[test]
    fn a_node_runs_code_another_node_stored_fetching_it_once() {
        let (dir, a, b, mut db) = two_nodes();
        // Larger than one chunk even compressed (xorshift bytes do not compress), so
        // that chunking is exercised.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let big: Vec<u8> = (0..3 * crate::postgres::code::CHUNK_BYTES / 2)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let zip = zip_of(dir.path(), &big);
        let sha = a.put_zip(&zip).unwrap();
        assert!(!b.has_zip(&sha));
        let tree = b.restore_code_dir(&sha).unwrap();
        assert_eq!(fs::read(tree.join("app.py")).unwrap(), big);
        assert!(
            b.has_zip(&sha),
            "the fetched zip is kept, sealed, as a cache"
        );
        let chunks: i64 = db
            .query_one("SELECT count(*) FROM code_chunks", &[])
            .unwrap()
            .get(0);
        assert!(chunks >= 2, "{chunks}");
        // Nothing in the shared store is in the clear.
        let rows = db.query("SELECT bytes FROM code_chunks", &[]).unwrap();
        let marker = &big[..64];
        for r in rows {
            let bytes: Vec<u8> = r.get(0);
            assert!(!bytes.windows(marker.len()).any(|w| w == marker));
        }
    }

    #[test]
    fn tampered_shared_code_is_refused_and_not_kept() {
        let (dir, a, b, mut db) = two_nodes();
        let sha = a.put_zip(&zip_of(dir.path(), b"x = 1")).unwrap();
        db.execute(
            "UPDATE code_chunks SET bytes = overlay(bytes placing '\\x00' from 40 for 1)",
            &[],
        )
        .unwrap();
        assert!(b.read_zip(&sha).is_err());
        assert!(!b.has_zip(&sha));
        // Code no node stored: a clear error, not a panic.
        let missing = sha256_base64(b"never stored");
        let e = b.read_zip(&missing).unwrap_err();
        assert!(e.to_string().contains("shared store"), "{e}");
    }

    #[test]
    fn a_forged_shared_code_row_is_refused_before_it_is_believed() {
        let (dir, a, b, mut db) = two_nodes();
        let sha = a.put_zip(&zip_of(dir.path(), b"z = 3")).unwrap();
        let shared = Arc::clone(b.shared().unwrap());
        // A size no zip seals to: refused without allocating it.
        db.execute("UPDATE code_blobs SET size = 9000000000000000000", &[])
            .unwrap();
        assert!(matches!(
            shared.get(&sha),
            Err(StoreError::InvalidRecord(_))
        ));
        // A chunk count that does not match the size.
        db.execute("UPDATE code_blobs SET size = 10, chunks = 5", &[])
            .unwrap();
        assert!(matches!(
            shared.get(&sha),
            Err(StoreError::InvalidRecord(_))
        ));
        // A chunk larger than any chunk is written.
        let big = (crate::postgres::code::CHUNK_BYTES + 1) as i64;
        db.execute("UPDATE code_blobs SET size = $1, chunks = 2", &[&big])
            .unwrap();
        db.execute(
            "UPDATE code_chunks SET bytes = decode(repeat('00', $1::INT), 'hex')",
            &[&(big as i32)],
        )
        .unwrap();
        assert!(matches!(
            shared.get(&sha),
            Err(StoreError::InvalidRecord(_))
        ));
        assert!(b.read_zip(&sha).is_err());
        assert!(!b.has_zip(&sha));
    }

    #[test]
    fn storing_code_a_node_already_has_puts_it_back_in_the_shared_store() {
        let (dir, a, b, mut db) = two_nodes();
        let zip = zip_of(dir.path(), b"y = 2");
        let sha = a.put_zip(&zip).unwrap();
        db.execute("DELETE FROM code_blobs", &[]).unwrap();
        // The node deploys the same code again: it has the zip, the shared store does not.
        assert_eq!(a.put_zip(&zip).unwrap(), sha);
        assert_eq!(b.read_zip(&sha).unwrap(), zip);
        db.execute("DELETE FROM code_blobs", &[]).unwrap();
        a.share(&sha).unwrap();
        let n: i64 = db
            .query_one("SELECT count(*) FROM code_blobs", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    }

    #[test]
    fn shared_code_goes_only_when_unreferenced_and_untouched_for_the_grace() {
        let (dir, a, _b, mut db) = two_nodes();
        let kept = a.put_zip(&zip_of(dir.path(), b"kept")).unwrap();
        let dropped = a.put_zip(&zip_of(dir.path(), b"dropped")).unwrap();
        let shared = Arc::clone(a.shared().unwrap());
        let referenced: HashSet<String> = [kept.clone()].into_iter().collect();
        // Within the grace period nothing goes, referenced or not.
        assert_eq!(shared.collect(&referenced, SHARED_CODE_GRACE).unwrap(), 0);
        db.execute(
            "UPDATE code_blobs SET touched_at = now() - interval '2 hours'",
            &[],
        )
        .unwrap();
        assert_eq!(shared.collect(&referenced, SHARED_CODE_GRACE).unwrap(), 1);
        assert!(shared.get(&kept).unwrap().is_some());
        assert!(shared.get(&dropped).unwrap().is_none());
        let chunks: i64 = db
            .query_one(
                "SELECT count(*) FROM code_chunks WHERE sha = $1",
                &[&dropped],
            )
            .unwrap()
            .get(0);
        assert_eq!(chunks, 0, "its chunks went with it");
        // A touch restarts the grace period.
        db.execute(
            "UPDATE code_blobs SET touched_at = now() - interval '2 hours'",
            &[],
        )
        .unwrap();
        assert!(shared.touch(&kept).unwrap());
        assert_eq!(
            shared.collect(&HashSet::new(), SHARED_CODE_GRACE).unwrap(),
            0
        );
    }

    #[test]
    fn zips_stored_in_the_clear_by_an_older_warden_are_sealed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let zips = dir.path().join("data/zips");
        fs::create_dir_all(&zips).unwrap();
        fs::create_dir_all(dir.path().join("data/code/abc")).unwrap();
        let sha = sha256_base64(b"old zip");
        fs::write(
            zips.join(format!("{}.zip", file_name_for(&sha))),
            b"old zip",
        )
        .unwrap();
        let store = open_in(dir.path());
        assert_eq!(store.read_zip(&sha).unwrap(), b"old zip");
        let names: Vec<String> = fs::read_dir(&zips)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [format!("{}.sealed", file_name_for(&sha))]);
        assert!(
            !dir.path().join("data/code").exists(),
            "old trees in the clear are gone"
        );
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
        assert_ne!(fs::read(&path).unwrap(), b"zip bytes");
        assert_eq!(store.read_zip(&sha).unwrap(), b"zip bytes");
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
            assert_eq!(p.parent().unwrap(), d.path().join("mem/code"), "{hostile}");
            assert!(p.file_name().unwrap().to_str().unwrap().starts_with('x'));
            let z = store.zip_path(hostile);
            assert_eq!(z.parent().unwrap(), d.path().join("data/zips"), "{hostile}");
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

    /// Stores `bytes` as a zip and a tree holding one read-only directory, as a deploy does.
    fn deploy(store: &BlobStore, bytes: &[u8]) -> String {
        let sha = store.put_zip(bytes).unwrap();
        let staging = store.create_staging().unwrap();
        fs::create_dir_all(staging.path().join("ro")).unwrap();
        fs::write(staging.path().join("ro/f"), bytes).unwrap();
        fs::set_permissions(staging.path().join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        store.install_code_dir(&sha, staging.path()).unwrap();
        sha
    }

    fn refs(shas: &[&str]) -> impl FnOnce() -> Result<Vec<String>, StoreError> {
        let shas: Vec<String> = shas.iter().map(|s| s.to_string()).collect();
        move || Ok(shas)
    }

    fn staging_entries(store: &BlobStore) -> usize {
        fs::read_dir(&store.staging).unwrap().count()
    }

    #[test]
    fn sweep_removes_only_unreferenced_blobs_even_read_only_ones() {
        let (_d, store) = open();
        let kept = deploy(&store, b"kept");
        let gone = deploy(&store, b"gone");
        // A zip whose extraction never finished (a crash in between) is collected too.
        let half = store.put_zip(b"half").unwrap();

        let report = store.sweep(refs(&[&kept])).unwrap();
        assert_eq!(
            report,
            SweepReport {
                removed: 2,
                deferred: 0
            }
        );
        assert_eq!(store.stored_shas().unwrap(), std::slice::from_ref(&kept));
        assert!(store.has_zip(&kept) && store.has_code_dir(&kept));
        assert!(!store.has_zip(&gone) && !store.has_code_dir(&gone));
        assert!(!store.has_zip(&half));
        assert_eq!(staging_entries(&store), 0, "trash is emptied");

        // Nothing left to do; a sweep is idempotent.
        assert_eq!(store.sweep(refs(&[&kept])).unwrap(), SweepReport::default());
        assert_eq!(store.stored_shas().unwrap(), [kept]);
    }

    #[test]
    fn a_failed_reference_read_removes_nothing() {
        let (_d, store) = open();
        let sha = deploy(&store, b"code");
        let err = store
            .sweep(|| Err(StoreError::InvalidRecord("the store is unreachable".into())))
            .unwrap_err();
        assert!(err.to_string().contains("unreachable"), "{err}");
        assert_eq!(store.stored_shas().unwrap(), [sha]);
    }

    #[test]
    fn a_pinned_blob_survives_until_unpinned_and_then_a_sweep_is_requested() {
        let (_d, store) = open();
        let sha = deploy(&store, b"running");
        let first = store.pin(&sha);
        let second = store.pin(&sha);
        assert_eq!(first.sha(), sha);
        assert_eq!(
            store.sweep(refs(&[])).unwrap(),
            SweepReport {
                removed: 0,
                deferred: 1
            }
        );
        assert!(store.has_code_dir(&sha));
        *lock(&store.collector.wanted) = false;
        drop(first);
        assert!(!*lock(&store.collector.wanted), "one pin still holds it");
        assert_eq!(store.sweep(refs(&[])).unwrap().removed, 0);
        drop(second);
        assert!(
            *lock(&store.collector.wanted),
            "the last pin asks for a sweep"
        );
        assert_eq!(store.sweep(refs(&[])).unwrap().removed, 1);
        assert!(store.stored_shas().unwrap().is_empty());
        assert!(lock(&store.collector.pins).counts.is_empty());
    }

    #[test]
    fn a_pin_taken_before_the_blob_exists_protects_a_deploy_in_flight() {
        let (_d, store) = open();
        let sha = sha256_base64(b"new code");
        let pin = store.pin(&sha);
        let written = deploy(&store, b"new code");
        assert_eq!(written, sha);
        // The version referencing it is not committed yet: the pin alone keeps it.
        assert_eq!(store.sweep(refs(&[])).unwrap().removed, 0);
        // Committed, then unpinned: the reference keeps it.
        drop(pin);
        assert_eq!(store.sweep(refs(&[&sha])).unwrap().removed, 0);
        assert_eq!(store.stored_shas().unwrap(), [sha]);
    }

    #[test]
    fn the_collector_thread_sweeps_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let meta = crate::SqliteStore::open(&dir.path().join("warden.db")).unwrap();
        let store = Arc::new(open_in(&dir.path().join("blobs")));
        let orphan = deploy(&store, b"orphan");
        store
            .start_collector(Arc::new(meta), Duration::from_secs(3600))
            .unwrap();
        store.request_sweep();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while store.has_code_dir(&orphan) {
            assert!(std::time::Instant::now() < deadline, "never swept");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(store.stored_shas().unwrap().is_empty());
    }

    #[test]
    fn a_staging_guard_removes_its_directory_unless_installed() {
        let (_d, store) = open();
        let staging = store.create_staging().unwrap();
        fs::create_dir_all(staging.path().join("ro")).unwrap();
        fs::set_permissions(staging.path().join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        let path = staging.path().to_owned();
        drop(staging);
        assert!(!path.exists());
        assert_eq!(staging_entries(&store), 0);
    }

    #[test]
    fn a_crash_during_a_sweep_leaves_whole_blobs_and_trash_cleared_at_start() {
        let (_d, store) = open();
        let kept = deploy(&store, b"kept");
        let gone = deploy(&store, b"gone");
        // The sweep moved the blob's tree to the trash and crashed before removing it.
        let mut trash = Vec::new();
        store.move_to_trash(&gone, &mut trash).unwrap();
        assert_eq!(trash.len(), 2);
        assert_eq!(store.stored_shas().unwrap(), std::slice::from_ref(&kept));
        store.remove_stale_staging().unwrap();
        assert_eq!(staging_entries(&store), 0);
        assert!(store.has_code_dir(&kept) && store.has_zip(&kept));
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

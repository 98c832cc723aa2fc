//! Which node this server is, and the lock that keeps it the only live process of its data
//! directory.
//!
//! The node id names the server among the nodes sharing a store: the async events it leases
//! are leased in its name. `--node-id` sets it; without the flag the id kept in
//! `DATA_DIR/node-id` is used, and a random one (`node-` and 16 hex digits) is created there
//! on the first start. An id given by flag is kept in the file too, so a later start without
//! the flag is the same node.
//!
//! While it runs, `warden serve` holds an exclusive lock on `DATA_DIR/node.lock`, and a
//! second server on the same data directory is refused. That lock is what allows a starting
//! node to take back its own leases at once: the process that held them is gone (the kernel
//! releases the lock when a process dies, even by `kill -9`). It also keeps two servers from
//! sharing one identity database and blob directory, which neither is built for.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context};
use warden_types::NodeId;

/// The file holding the node id.
const ID_FILE: &str = "node-id";
/// The file holding the data directory's holder token: what a shared store's node
/// registry knows this directory's processes by.
const HOLDER_FILE: &str = "node-holder";
/// The file locked while a server runs.
const LOCK_FILE: &str = "node.lock";

/// This server's node id, and the data directory's lock, held until this value is dropped.
#[derive(Debug)]
pub struct NodeClaim {
    /// The node id.
    pub id: NodeId,
    /// The data directory's holder token (random, made on the first start): on a shared
    /// store, the registry lets a process of this directory claim the id at once, and
    /// refuses another directory's while this one's holder is live.
    pub holder: Vec<u8>,
    /// Locked with `flock`; closing it (or the process dying) releases the lock.
    _lock: File,
}

/// Locks `data_dir` for this process and settles the node id: `configured` if given, else
/// the stored one, else a new random one; stores it if it changed.
pub fn claim(data_dir: &Path, configured: Option<NodeId>) -> anyhow::Result<NodeClaim> {
    let lock_path = data_dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("cannot open `{}`", lock_path.display()))?;
    match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => bail!(
            "refusing to start: another `warden serve` is running on data directory `{}` (it holds `{LOCK_FILE}`); one data directory serves one node",
            data_dir.display()
        ),
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("cannot lock `{}`", lock_path.display()))
        }
    }

    let id_path = data_dir.join(ID_FILE);
    let stored = match fs::read_to_string(&id_path) {
        Ok(text) => match (NodeId::new(text.trim()), &configured) {
            (Ok(id), _) => Some(id),
            // The flag replaces a damaged file.
            (Err(_), Some(_)) => None,
            (Err(e), None) => {
                return Err(e).with_context(|| {
                    format!(
                        "`{}` holds no valid node id; fix it or pass --node-id",
                        id_path.display()
                    )
                })
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", id_path.display())),
    };
    let id = match (configured, &stored) {
        (Some(c), _) => c,
        (None, Some(s)) => s.clone(),
        (None, None) => NodeId::new(&format!("node-{:016x}", rand::random::<u64>()))?,
    };
    if stored.as_ref() != Some(&id) {
        if let Some(old) = &stored {
            tracing::warn!(
                previous = %old,
                node = %id,
                "this data directory served as another node before; that node's async event leases are left to expire"
            );
        }
        write_file(data_dir, ID_FILE, &id.to_string())?;
    }
    let holder = holder(data_dir)?;
    Ok(NodeClaim {
        id,
        holder,
        _lock: lock,
    })
}

/// The data directory's holder token, made on first use: 16 random bytes, kept as hex.
fn holder(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(HOLDER_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            if let Some(token) = hex::decode(text.trim()).ok().filter(|t| t.len() == 16) {
                return Ok(token);
            }
            tracing::warn!(file = %path.display(), "the holder token is damaged; making a new one");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    }
    let token: [u8; 16] = rand::random();
    write_file(data_dir, HOLDER_FILE, &hex::encode(token))?;
    Ok(token.to_vec())
}

/// Replaces `DATA_DIR/NAME` with a line of `text`, durably: a private temporary file,
/// fsynced, renamed into place, then the directory fsynced.
fn write_file(data_dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let temp = data_dir.join(format!(".{name}.tmp"));
    let path = data_dir.join(name);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot write `{}`", temp.display()))?;
    writeln!(file, "{text}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write `{}`", temp.display()))?;
    fs::rename(&temp, &path).with_context(|| format!("cannot write `{}`", path.display()))?;
    File::open(data_dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync `{}`", data_dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_random_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path(), None).unwrap();
        assert!(first.id.as_str().starts_with("node-"), "{}", first.id);
        assert_eq!(first.id.as_str().len(), "node-".len() + 16);
        assert_eq!(mode(&dir.path().join(ID_FILE)), 0o600);
        assert_eq!(mode(&dir.path().join(LOCK_FILE)), 0o600);
        let id = first.id.clone();
        drop(first);
        assert_eq!(
            claim(dir.path(), None).unwrap().id,
            id,
            "the same node again"
        );
    }

    #[test]
    fn a_configured_id_wins_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        drop(claim(dir.path(), None).unwrap());
        let named = NodeId::new("edge-1").unwrap();
        assert_eq!(claim(dir.path(), Some(named.clone())).unwrap().id, named);
        assert_eq!(claim(dir.path(), None).unwrap().id, named);
        assert_eq!(
            fs::read_to_string(dir.path().join(ID_FILE)).unwrap(),
            "edge-1\n"
        );
    }

    #[test]
    fn a_second_claim_on_a_locked_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = claim(dir.path(), None).unwrap();
        let err = claim(dir.path(), None).unwrap_err().to_string();
        assert!(
            err.contains("another `warden serve` is running on data directory"),
            "{err}"
        );
        drop(held);
        claim(dir.path(), None).unwrap();
    }

    #[test]
    fn a_damaged_id_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ID_FILE), "not an id\n").unwrap();
        let err = format!("{:#}", claim(dir.path(), None).unwrap_err());
        assert!(err.contains("holds no valid node id"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join(ID_FILE)).unwrap(),
            "not an id\n"
        );
        let named = NodeId::new("n2").unwrap();
        assert_eq!(claim(dir.path(), Some(named.clone())).unwrap().id, named);
        assert_eq!(claim(dir.path(), None).unwrap().id, named);
    }

    #[test]
    fn the_holder_token_is_made_once_kept_private_and_replaced_if_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path(), None).unwrap();
        assert_eq!(first.holder.len(), 16);
        assert_eq!(mode(&dir.path().join(HOLDER_FILE)), 0o600);
        let token = first.holder.clone();
        drop(first);
        assert_eq!(claim(dir.path(), None).unwrap().holder, token);
        fs::write(dir.path().join(HOLDER_FILE), "not hex").unwrap();
        let again = claim(dir.path(), None).unwrap();
        assert_eq!(again.holder.len(), 16);
        assert_ne!(again.holder, token);
        // Another directory is another holder.
        let other = tempfile::tempdir().unwrap();
        assert_ne!(claim(other.path(), None).unwrap().holder, again.holder);
    }
}

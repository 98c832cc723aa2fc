//! The append-only log on SQLite: events with their leaf and chain hashes, the interior
//! nodes of the Merkle tree, and the signed digests, all in one file.
//!
//! **Layout.** `event` holds one row per event: its sequence number (its position, from 0),
//! the exact bytes recorded, `leaf = SHA-256(0x00 || bytes)`,
//! `chain = SHA-256(chain of the previous event || leaf)` (32 zero bytes before the first),
//! and the values LookupEvents filters on. `node` holds the hash of every complete subtree
//! of two or more leaves, keyed by the sequence number just past its end and its level,
//! written in the same transaction as the leaves that complete it (about one node per
//! leaf). With them a tree head of any size, an inclusion proof or a consistency proof
//! costs O(log² n) lookups and never needs every leaf in memory. They are an index, not
//! evidence: verification recomputes every root from the stored bytes, and a proof built
//! from a damaged node fails against the signed root it is checked with.
//!
//! **Durability.** The file runs in WAL with `synchronous=FULL` (through `warden-sqlite`),
//! so [`AuditLog::append_batch`] returns only after its commit is on disk.
//!
//! **One writer.** [`AuditLog`] keeps the tree's right edge and the last chain hash in
//! memory; a second writer on the same file would fork the log, so only the recorder's
//! thread holds one. [`AuditReader`]s read beside it.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, Signer};
use crate::error::{store, Error};
use crate::event::EncodedEvent;
use crate::merkle::{self, Frontier, Hash, SubtreeSource};

/// The chain hash before the first event.
pub const GENESIS_CHAIN: Hash = [0; 32];

/// The schema; append only (see `warden_sqlite::Options::migrations`).
const MIGRATIONS: &[&str] = &["
CREATE TABLE event (
    seq INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    event_source TEXT NOT NULL,
    username TEXT,
    principal_arn TEXT,
    access_key_id TEXT,
    read_only INTEGER NOT NULL,
    body BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    chain_hash BLOB NOT NULL
);
CREATE INDEX event_by_time ON event (time_ms);
CREATE INDEX event_by_id ON event (event_id);
CREATE INDEX event_by_name ON event (event_name);
CREATE INDEX event_by_source ON event (event_source);
CREATE INDEX event_by_username ON event (username);
CREATE INDEX event_by_principal ON event (principal_arn);
CREATE INDEX event_by_access_key ON event (access_key_id);
CREATE TABLE event_resource (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (name, seq)
) WITHOUT ROWID;
CREATE TABLE node (
    end_seq INTEGER NOT NULL,
    level INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (end_seq, level)
) WITHOUT ROWID;
CREATE TABLE digest (
    tree_size INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
"];

/// The next chain hash.
pub fn chain_hash(previous: &Hash, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(leaf);
    h.finalize().into()
}

fn open_db(path: &Path) -> Result<warden_sqlite::Connections, Error> {
    warden_sqlite::open(
        path,
        &warden_sqlite::Options {
            synchronous: warden_sqlite::Synchronous::Full,
            migrations: MIGRATIONS,
            incremental_vacuum: false,
        },
    )
    .map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })
}

/// Sequence numbers are `u64` in the API and `i64` in SQLite; a log never nears 2^63.
pub(crate) fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_hash(bytes: &[u8], what: impl FnOnce() -> String) -> Result<Hash, Error> {
    Hash::try_from(bytes).map_err(|_| Error::Damaged { what: what() })
}

/// The number of positions in the log: one past the highest sequence number.
pub(crate) fn nominal_size(conn: &Connection) -> Result<u64, Error> {
    let max: Option<i64> = conn
        .query_row("SELECT MAX(seq) FROM event", [], |r| r.get(0))
        .map_err(store("reading the log's size"))?;
    Ok(max.map_or(0, |m| u64::try_from(m).map_or(0, |m| m + 1)))
}

/// Complete subtrees from the `event` (leaves) and `node` tables.
pub(crate) struct Nodes<'a>(pub(crate) &'a Connection);

impl SubtreeSource for Nodes<'_> {
    type Error = Error;

    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Error> {
        let found: Option<Vec<u8>> = if level == 0 {
            self.0
                .prepare_cached("SELECT leaf_hash FROM event WHERE seq = ?1")
                .and_then(|mut s| s.query_row([to_sql(index)], |r| r.get(0)).optional())
        } else {
            let end = (index + 1) << level;
            self.0
                .prepare_cached("SELECT hash FROM node WHERE end_seq = ?1 AND level = ?2")
                .and_then(|mut s| {
                    s.query_row(params![to_sql(end), level], |r| r.get(0))
                        .optional()
                })
        }
        .map_err(store("reading a tree node"))?;
        let what = || format!("the tree node at level {level}, index {index}");
        match found {
            Some(bytes) => to_hash(&bytes, what),
            None => Err(Error::Damaged {
                what: format!("{} is missing", what()),
            }),
        }
    }
}

pub(crate) fn latest_digest(conn: &Connection) -> Result<Option<Digest>, Error> {
    let body: Option<Vec<u8>> = conn
        .query_row(
            "SELECT body FROM digest ORDER BY tree_size DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(store("reading the latest digest"))?;
    body.map(|b| Digest::from_json(&b, "in the database"))
        .transpose()
}

/// The log's writer. Keep one per file (see the module's documentation).
#[derive(Debug)]
pub struct AuditLog {
    conn: Connection,
    path: PathBuf,
    frontier: Frontier,
    last_chain: Hash,
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path` and reads where it ends.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let conn = open_db(path)?.writer;
        let size = nominal_size(&conn)?;
        let frontier = Frontier::load(&Nodes(&conn), size)?;
        let last_chain = if size == 0 {
            GENESIS_CHAIN
        } else {
            let bytes: Vec<u8> = conn
                .query_row(
                    "SELECT chain_hash FROM event WHERE seq = ?1",
                    [to_sql(size - 1)],
                    |r| r.get(0),
                )
                .map_err(store("reading the last chain hash"))?;
            to_hash(&bytes, || format!("the chain hash of event {}", size - 1))?
        };
        Ok(AuditLog {
            conn,
            path: path.to_owned(),
            frontier,
            last_chain,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many events the log holds.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The tree head of every event.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The chain hash of the last event.
    pub fn chain_hash(&self) -> Hash {
        self.last_chain
    }

    /// Appends `events` in one transaction and returns their sequence numbers; when it
    /// returns, they are on disk. On error nothing was appended.
    pub fn append_batch(&mut self, events: &[EncodedEvent]) -> Result<Vec<u64>, Error> {
        // Work on copies, so that a failed commit leaves the in-memory edge as the file is.
        let mut frontier = self.frontier.clone();
        let mut chain = self.last_chain;
        let mut seqs = Vec::with_capacity(events.len());
        let tx = warden_sqlite::immediate(&mut self.conn).map_err(store("appending events"))?;
        {
            let mut insert_event = tx
                .prepare_cached(
                    "INSERT INTO event (seq, time_ms, event_id, event_name, event_source,
                        username, principal_arn, access_key_id, read_only, body, leaf_hash,
                        chain_hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(store("appending events"))?;
            let mut insert_resource = tx
                .prepare_cached("INSERT OR IGNORE INTO event_resource (name, seq) VALUES (?1, ?2)")
                .map_err(store("appending events"))?;
            let mut insert_node = tx
                .prepare_cached("INSERT INTO node (end_seq, level, hash) VALUES (?1, ?2, ?3)")
                .map_err(store("appending events"))?;
            for event in events {
                let seq = frontier.size();
                let leaf = merkle::leaf_hash(event.bytes());
                chain = chain_hash(&chain, &leaf);
                let ix = event.index();
                insert_event
                    .execute(params![
                        to_sql(seq),
                        ix.time_ms,
                        ix.event_id,
                        ix.event_name,
                        ix.event_source,
                        ix.username,
                        ix.principal_arn,
                        ix.access_key_id,
                        ix.read_only,
                        event.bytes(),
                        &leaf[..],
                        &chain[..],
                    ])
                    .map_err(store("appending an event"))?;
                for name in &ix.resources {
                    insert_resource
                        .execute(params![name, to_sql(seq)])
                        .map_err(store("indexing an event's resources"))?;
                }
                let mut node_result = Ok(());
                frontier.push(leaf, |level, index, hash| {
                    if node_result.is_ok() {
                        let end = (index + 1) << level;
                        node_result = insert_node
                            .execute(params![to_sql(end), level, &hash[..]])
                            .map(drop);
                    }
                });
                node_result.map_err(store("storing a tree node"))?;
                seqs.push(seq);
            }
        }
        tx.commit().map_err(store("committing events"))?;
        self.frontier = frontier;
        self.last_chain = chain;
        Ok(seqs)
    }

    /// Signs and stores a digest of the whole log, naming the latest digest before it. When
    /// nothing was appended since the latest digest, that one is returned instead: it is
    /// still the log's signed head.
    pub fn publish_digest(&mut self, signer: &dyn Signer, time_ms: i64) -> Result<Digest, Error> {
        let previous = latest_digest(&self.conn)?;
        let size = self.size();
        if let Some(p) = &previous {
            if p.tree_size == size {
                return Ok(p.clone());
            }
            if p.tree_size > size {
                return Err(Error::Damaged {
                    what: format!(
                        "the log holds {size} events but its latest digest covers {}",
                        p.tree_size
                    ),
                });
            }
        }
        let digest = Digest::sign(
            signer,
            size,
            self.root(),
            self.last_chain,
            time_ms,
            previous.as_ref().map(Digest::hash),
        )?;
        self.conn
            .execute(
                "INSERT INTO digest (tree_size, body) VALUES (?1, ?2)",
                params![to_sql(size), digest.to_json()],
            )
            .map_err(store("storing a digest"))?;
        Ok(digest)
    }
}

/// A read-only connection to the log: proofs, digests, lookups and verification.
#[derive(Debug)]
pub struct AuditReader {
    pub(crate) conn: Connection,
}

impl AuditReader {
    /// Opens (creating if needed) the log at `path` for reading.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Ok(AuditReader {
            conn: open_db(path)?.reader,
        })
    }

    /// One past the highest sequence number stored.
    pub fn size(&self) -> Result<u64, Error> {
        nominal_size(&self.conn)
    }

    /// The stored bytes of event `seq`.
    pub fn event_bytes(&self, seq: u64) -> Result<Option<Vec<u8>>, Error> {
        self.conn
            .query_row(
                "SELECT body FROM event WHERE seq = ?1",
                [to_sql(seq)],
                |r| r.get(0),
            )
            .optional()
            .map_err(store("reading an event"))
    }

    /// The leaf hash of event `seq`, as stored.
    pub fn leaf_hash(&self, seq: u64) -> Result<Hash, Error> {
        Nodes(&self.conn).perfect(0, seq)
    }

    /// The tree head of the first `size` events, from the stored nodes.
    pub fn root_at(&self, size: u64) -> Result<Hash, Error> {
        merkle::root(&Nodes(&self.conn), size)
    }

    /// The audit path of event `seq` in the tree of `size` events; `None` unless
    /// `seq < size`.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Option<Vec<Hash>>, Error> {
        merkle::inclusion_proof(&Nodes(&self.conn), seq, size)
    }

    /// The consistency proof from the tree of `old` events to that of `new`; `None` unless
    /// `0 < old ≤ new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Option<Vec<Hash>>, Error> {
        merkle::consistency_proof(&Nodes(&self.conn), old, new)
    }

    /// Every stored digest, smallest tree first.
    pub fn digests(&self) -> Result<Vec<Digest>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT tree_size, body FROM digest ORDER BY tree_size")
            .map_err(store("reading the digests"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(store("reading the digests"))?;
        let mut out = Vec::new();
        for row in rows {
            let (size, body) = row.map_err(store("reading the digests"))?;
            out.push(Digest::from_json(
                &body,
                &format!("of tree size {size} in the database"),
            )?);
        }
        Ok(out)
    }

    /// The digest covering the most events.
    pub fn latest_digest(&self) -> Result<Option<Digest>, Error> {
        latest_digest(&self.conn)
    }
}

#[cfg(test)]
mod tests;

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
//!
//! **Where.** [`Store`] names a log: this file, or the same rows in PostgreSQL shared by
//! the nodes of a cluster ([`crate::postgres`]), where each append reads the right edge
//! from the locked head row instead of memory, so any number of writers take turns.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, Signer};
use crate::error::{store, Error};
use crate::event::EncodedEvent;
use crate::merkle::{self, Frontier, Hash, SubtreeSource};
use crate::source::Source;

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

/// Complete subtrees from a store's leaves and interior nodes.
pub(crate) struct Nodes<'a>(pub(crate) &'a dyn Source);

impl SubtreeSource for Nodes<'_> {
    type Error = Error;

    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Error> {
        let what = || format!("the tree node at level {level}, index {index}");
        match self.0.subtree(level, index)? {
            Some(bytes) => to_hash(&bytes, what),
            None => Err(Error::Damaged {
                what: format!("{} is missing", what()),
            }),
        }
    }
}

pub(crate) fn latest_digest_body(conn: &Connection) -> Result<Option<Vec<u8>>, Error> {
    conn.query_row(
        "SELECT body FROM digest ORDER BY tree_size DESC LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()
    .map_err(store("reading the latest digest"))
}

fn latest_digest(source: &dyn Source) -> Result<Option<Digest>, Error> {
    source
        .latest_digest_row()?
        .map(|b| Digest::from_json(&b, "in the database"))
        .transpose()
}

/// Where an audit trail is kept: a SQLite file of one node, or a PostgreSQL database the
/// nodes of a cluster share (one log for all of them). Cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    /// The SQLite database file.
    Sqlite(PathBuf),
    /// A pool on a database whose schema includes [`crate::POSTGRES_TRACK`].
    Postgres(warden_postgres::Pool),
}

impl Store {
    /// Opens the log's writer.
    pub fn writer(&self) -> Result<AuditLog, Error> {
        match self {
            Store::Sqlite(path) => AuditLog::open(path),
            Store::Postgres(pool) => AuditLog::open_postgres(pool.clone()),
        }
    }

    /// Opens a reader.
    pub fn reader(&self) -> Result<AuditReader, Error> {
        match self {
            Store::Sqlite(path) => AuditReader::open(path),
            Store::Postgres(pool) => Ok(AuditReader {
                source: Box::new(crate::postgres::PgSource(pool.clone())),
            }),
        }
    }

    /// About how many bytes the trail takes where it is stored: the database file and its
    /// write-ahead log, or the PostgreSQL tables with their indexes.
    pub fn bytes(&self) -> Result<u64, Error> {
        match self {
            Store::Sqlite(path) => {
                let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
                Ok(len(path) + len(&path.with_extension("db-wal")))
            }
            Store::Postgres(pool) => crate::postgres::bytes(pool),
        }
    }

    /// Where the store is, for messages (no password).
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(path) => format!("`{}`", path.display()),
            Store::Postgres(pool) => format!("PostgreSQL at {}", pool.target()),
        }
    }
}

/// The log's writer. On SQLite keep one per file (see the module's documentation); on
/// PostgreSQL any number, one per node, take turns.
#[derive(Debug)]
pub struct AuditLog {
    writer: Writer,
    frontier: Frontier,
    last_chain: Hash,
}

#[derive(Debug)]
enum Writer {
    Sqlite { conn: Connection, path: PathBuf },
    Postgres(warden_postgres::Pool),
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
            let bytes = conn.chain_at(size - 1)?.ok_or_else(|| Error::Damaged {
                what: format!("the chain hash of event {} is missing", size - 1),
            })?;
            to_hash(&bytes, || format!("the chain hash of event {}", size - 1))?
        };
        Ok(AuditLog {
            writer: Writer::Sqlite {
                conn,
                path: path.to_owned(),
            },
            frontier,
            last_chain,
        })
    }

    /// The writer of the log a cluster shares in PostgreSQL, as it ends now.
    fn open_postgres(pool: warden_postgres::Pool) -> Result<Self, Error> {
        let head = crate::postgres::head(&pool)?;
        Ok(AuditLog {
            writer: Writer::Postgres(pool),
            frontier: head.frontier,
            last_chain: head.chain,
        })
    }

    /// Where the log is, for messages.
    pub fn describe(&self) -> String {
        match &self.writer {
            Writer::Sqlite { path, .. } => format!("`{}`", path.display()),
            Writer::Postgres(pool) => format!("PostgreSQL at {}", pool.target()),
        }
    }

    /// How many events the log holds (on PostgreSQL: as of this writer's latest append).
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The tree head of every event (on PostgreSQL: as of this writer's latest append).
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The chain hash of the last event (on PostgreSQL: as of this writer's latest
    /// append).
    pub fn chain_hash(&self) -> Hash {
        self.last_chain
    }

    /// Appends `events` in one transaction and returns their sequence numbers; when it
    /// returns, they are durable. On error nothing was appended.
    pub fn append_batch(&mut self, events: &[EncodedEvent]) -> Result<Vec<u64>, Error> {
        match &mut self.writer {
            Writer::Sqlite { conn, .. } => {
                let mut frontier = self.frontier.clone();
                let mut chain = self.last_chain;
                let seqs = append_sqlite(conn, &mut frontier, &mut chain, events)?;
                self.frontier = frontier;
                self.last_chain = chain;
                Ok(seqs)
            }
            Writer::Postgres(pool) => {
                let (seqs, head) = crate::postgres::append(pool, events)?;
                self.frontier = head.frontier;
                self.last_chain = head.chain;
                Ok(seqs)
            }
        }
    }

    /// Signs and stores a digest of the whole log, naming the latest digest before it. When
    /// nothing was appended since the latest digest, that one is returned instead: it is
    /// still the log's signed head.
    pub fn publish_digest(&mut self, signer: &dyn Signer, time_ms: i64) -> Result<Digest, Error> {
        match &mut self.writer {
            Writer::Sqlite { conn, .. } => {
                let previous = latest_digest(&*conn)?;
                let next = next_digest(
                    previous,
                    self.frontier.size(),
                    self.frontier.root(),
                    self.last_chain,
                    signer,
                    time_ms,
                )?;
                let Next::Sign(digest) = next else {
                    return Ok(next.into_digest());
                };
                conn.execute(
                    "INSERT INTO digest (tree_size, body) VALUES (?1, ?2)",
                    params![to_sql(digest.tree_size), digest.to_json()],
                )
                .map_err(store("storing a digest"))?;
                Ok(digest)
            }
            Writer::Postgres(pool) => crate::postgres::publish_digest(pool, signer, time_ms),
        }
    }
}

/// What publishing a digest does: store a new one, or return the latest again.
pub(crate) enum Next {
    Sign(Digest),
    Same(Digest),
}

impl Next {
    pub(crate) fn into_digest(self) -> Digest {
        match self {
            Next::Sign(d) | Next::Same(d) => d,
        }
    }
}

/// The digest to publish over a log of `size` events with tree head `root` and last
/// chain hash `chain`, after `previous`.
pub(crate) fn next_digest(
    previous: Option<Digest>,
    size: u64,
    root: Hash,
    chain: Hash,
    signer: &dyn Signer,
    time_ms: i64,
) -> Result<Next, Error> {
    if let Some(p) = previous.as_ref() {
        if p.tree_size == size {
            return Ok(Next::Same(p.clone()));
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
    Ok(Next::Sign(Digest::sign(
        signer,
        size,
        root,
        chain,
        time_ms,
        previous.as_ref().map(Digest::hash),
    )?))
}

/// Appends `events` to the SQLite log in one transaction, moving `frontier` and `chain`
/// on; on error the caller drops them.
fn append_sqlite(
    conn: &mut Connection,
    frontier: &mut Frontier,
    chain: &mut Hash,
    events: &[EncodedEvent],
) -> Result<Vec<u64>, Error> {
    let mut seqs = Vec::with_capacity(events.len());
    let tx = warden_sqlite::immediate(conn).map_err(store("appending events"))?;
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
            *chain = chain_hash(chain, &leaf);
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
    Ok(seqs)
}

/// A read-only view of the log: proofs, digests, lookups and verification.
pub struct AuditReader {
    pub(crate) source: Box<dyn Source>,
}

impl std::fmt::Debug for AuditReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditReader").finish_non_exhaustive()
    }
}

impl AuditReader {
    /// Opens (creating if needed) the SQLite log at `path` for reading.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Ok(AuditReader {
            source: Box::new(open_db(path)?.reader),
        })
    }

    /// One past the highest sequence number stored.
    pub fn size(&self) -> Result<u64, Error> {
        self.source.size()
    }

    /// The stored bytes of event `seq`.
    pub fn event_bytes(&self, seq: u64) -> Result<Option<Vec<u8>>, Error> {
        self.source.body_at(seq)
    }

    /// The leaf hash of event `seq`, as stored.
    pub fn leaf_hash(&self, seq: u64) -> Result<Hash, Error> {
        Nodes(&*self.source).perfect(0, seq)
    }

    /// The tree head of the first `size` events, from the stored nodes.
    pub fn root_at(&self, size: u64) -> Result<Hash, Error> {
        merkle::root(&Nodes(&*self.source), size)
    }

    /// The audit path of event `seq` in the tree of `size` events; `None` unless
    /// `seq < size`.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Option<Vec<Hash>>, Error> {
        merkle::inclusion_proof(&Nodes(&*self.source), seq, size)
    }

    /// The consistency proof from the tree of `old` events to that of `new`; `None` unless
    /// `0 < old ≤ new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Option<Vec<Hash>>, Error> {
        merkle::consistency_proof(&Nodes(&*self.source), old, new)
    }

    /// Every stored digest, smallest tree first.
    pub fn digests(&self) -> Result<Vec<Digest>, Error> {
        self.source
            .digest_rows()?
            .into_iter()
            .map(|(size, body)| {
                Digest::from_json(&body, &format!("of tree size {size} in the database"))
            })
            .collect()
    }

    /// The digest covering the most events.
    pub fn latest_digest(&self) -> Result<Option<Digest>, Error> {
        latest_digest(&*self.source)
    }
}

#[cfg(test)]
mod tests;

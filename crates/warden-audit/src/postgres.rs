//! The audit trail in PostgreSQL: one log the nodes of a cluster share (the `audit` schema
//! track), with the same rows, hashes and digests as the SQLite file.
//!
//! - **One log, writers take turns.** `audit_head` holds where the log ends: its size, the
//!   last chain hash and the tree's right edge ([`Frontier::to_bytes`]). A node's batch
//!   locks that row (`FOR UPDATE`), numbers its events from it, inserts events, resources
//!   and the interior nodes they complete (one statement each, over arrays), and moves
//!   the head on, all in one transaction. A node's group commit is thus one lock, a few
//!   round trips and one commit, and batches of different nodes queue on the row, so the
//!   positions have no gaps and the chain no fork, whichever node wrote each event.
//! - **Digests** are published in a transaction that locks the head too, so a digest
//!   covers exactly the events committed before it, and names the latest digest before it
//!   whichever node published that one.
//! - **The head is an index**, like the interior nodes: verification recomputes every
//!   root from the stored events. A damaged head makes the next batch fail (its positions
//!   are taken) or its digests disagree with the events, which verification reports.
//! - **The signing key** of the digests is the cluster's: `audit_signing_key` holds its
//!   seed sealed under the master key. The first node to start offers one; every node
//!   uses the one stored.

use warden_postgres::{Conn, Migration, Pool, Track};

use crate::digest::{Digest, Signer};
use crate::error::Error;
use crate::event::{EncodedEvent, EventIndex};
use crate::log::{chain_hash, next_digest, to_sql, Next, GENESIS_CHAIN};
use crate::merkle::{self, Frontier, Hash};
use crate::source::{Arg, EventRow, Filter, Source};

const MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    event_source TEXT NOT NULL,
    username TEXT,
    principal_arn TEXT,
    access_key_id TEXT,
    read_only BOOLEAN NOT NULL,
    body BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL,
    chain_hash BYTEA NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (time_ms);
CREATE INDEX audit_events_by_id ON audit_events (event_id);
CREATE INDEX audit_events_by_name ON audit_events (event_name);
CREATE INDEX audit_events_by_source ON audit_events (event_source);
CREATE INDEX audit_events_by_username ON audit_events (username);
CREATE INDEX audit_events_by_principal ON audit_events (principal_arn);
CREATE INDEX audit_events_by_access_key ON audit_events (access_key_id);
CREATE TABLE audit_event_resources (
    name TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (name, seq)
);
CREATE INDEX audit_event_resources_by_seq ON audit_event_resources (seq, name);
CREATE TABLE audit_nodes (
    end_seq BIGINT NOT NULL,
    level INTEGER NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (end_seq, level)
);
CREATE TABLE audit_digests (
    tree_size BIGINT PRIMARY KEY,
    body BYTEA NOT NULL
);
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    chain_hash BYTEA NOT NULL,
    frontier BYTEA NOT NULL
);
INSERT INTO audit_head (id, size, chain_hash, frontier)
    VALUES (1, 0, decode(repeat('00', 32), 'hex'), ''::BYTEA);
CREATE TABLE audit_signing_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed BYTEA NOT NULL
);
"#,
)];

/// The `audit` schema track.
pub const TRACK: Track = Track {
    name: "audit",
    migrations: MIGRATIONS,
};

const HEAD: &str = "SELECT size, chain_hash, frontier FROM audit_head WHERE id = 1";
const LOCK_HEAD: &str = "SELECT size, chain_hash, frontier FROM audit_head WHERE id = 1 FOR UPDATE";
const INSERT_EVENTS: &str = "INSERT INTO audit_events (seq, time_ms, event_id, event_name, \
     event_source, username, principal_arn, access_key_id, read_only, body, leaf_hash, \
     chain_hash) SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], \
     $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::BOOLEAN[], $10::BYTEA[], \
     $11::BYTEA[], $12::BYTEA[])";
const INSERT_RESOURCES: &str = "INSERT INTO audit_event_resources (name, seq) \
     SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[]) ON CONFLICT DO NOTHING";
const INSERT_NODES: &str = "INSERT INTO audit_nodes (end_seq, level, hash) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::INTEGER[], $3::BYTEA[])";
const UPDATE_HEAD: &str =
    "UPDATE audit_head SET size = $1, chain_hash = $2, frontier = $3 WHERE id = 1";
const LATEST_DIGEST: &str = "SELECT body FROM audit_digests ORDER BY tree_size DESC LIMIT 1";
const INSERT_DIGEST: &str = "INSERT INTO audit_digests (tree_size, body) VALUES ($1, $2)";
const SIZE: &str = "SELECT max(seq) FROM audit_events";
const LEAF: &str = "SELECT leaf_hash FROM audit_events WHERE seq = $1";
const NODE: &str = "SELECT hash FROM audit_nodes WHERE end_seq = $1 AND level = $2";
const CHAIN: &str = "SELECT chain_hash FROM audit_events WHERE seq = $1";
const BODY: &str = "SELECT body FROM audit_events WHERE seq = $1";
const DIGESTS: &str = "SELECT tree_size, body FROM audit_digests ORDER BY tree_size";
const EVENTS_FROM: &str = "SELECT seq, time_ms, event_id, event_name, event_source, username, \
     principal_arn, access_key_id, read_only, body, leaf_hash, chain_hash FROM audit_events \
     WHERE seq >= $1 ORDER BY seq LIMIT $2";
const RESOURCES_BETWEEN: &str = "SELECT seq, name FROM audit_event_resources \
     WHERE seq >= $1 AND seq <= $2 ORDER BY seq, name";
const BODIES_IN_TIME: &str = "SELECT seq, body FROM audit_events \
     WHERE time_ms >= $1 AND time_ms <= $2 AND seq > $3 ORDER BY seq LIMIT $4";
const BYTES: &str = "SELECT (pg_total_relation_size('audit_events') \
     + pg_total_relation_size('audit_event_resources') + pg_total_relation_size('audit_nodes') \
     + pg_total_relation_size('audit_digests'))::BIGINT";
const SIGNING_KEY: &str = "SELECT sealed FROM audit_signing_key WHERE id = 1";
const OFFER_SIGNING_KEY: &str =
    "INSERT INTO audit_signing_key (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";
const REPLACE_SIGNING_KEY: &str =
    "UPDATE audit_signing_key SET sealed = $2 WHERE id = 1 AND sealed = $1";

impl warden_postgres::AsPostgres for Error {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        match self {
            Error::Shared { source, .. } => source.as_postgres(),
            _ => None,
        }
    }
}

impl From<warden_postgres::Error> for Error {
    fn from(source: warden_postgres::Error) -> Self {
        Error::Shared {
            context: "talking to PostgreSQL",
            source,
        }
    }
}

/// Opens a pool of `connections` on the database at `url`, bringing the `audit` track up
/// to date, and returns the store on it.
pub fn open(url: &str, connections: usize) -> Result<crate::Store, Error> {
    Pool::open(
        url,
        &warden_postgres::Options {
            connections,
            application_name: "warden-audit".to_owned(),
        },
        &[TRACK],
    )
    .map(crate::Store::Postgres)
    .map_err(|source| Error::Shared {
        context: "opening the audit trail",
        source,
    })
}

/// Runs `f` on a pooled connection.
fn read<T: Send + 'static>(
    pool: &Pool,
    context: &'static str,
    f: impl FnOnce(&mut Conn) -> Result<T, postgres::Error> + Send + 'static,
) -> Result<T, Error> {
    pool.run(move |conn| f(conn).map_err(warden_postgres::Error::at(context)))
        .map_err(|source| Error::Shared { context, source })
}

/// Where the log ends.
pub(crate) struct Head {
    pub(crate) frontier: Frontier,
    pub(crate) chain: Hash,
}

fn head_of(size: i64, chain: &[u8], frontier: &[u8]) -> Result<Head, Error> {
    let damaged = || Error::Damaged {
        what: format!("the log's head (size {size}) does not describe a tree of that size"),
    };
    let size = u64::try_from(size).map_err(|_| damaged())?;
    let frontier = Frontier::from_bytes(size, frontier).ok_or_else(damaged)?;
    let chain = Hash::try_from(chain).map_err(|_| damaged())?;
    if size == 0 && chain != GENESIS_CHAIN {
        return Err(damaged());
    }
    Ok(Head { frontier, chain })
}

/// Reads where the log ends now.
pub(crate) fn head(pool: &Pool) -> Result<Head, Error> {
    let (size, chain, frontier) = read(pool, "reading the log's head", |conn| {
        let st = conn.prepare(HEAD)?;
        let row = conn.client().query_one(&st, &[])?;
        Ok((
            row.try_get::<_, i64>(0)?,
            row.try_get::<_, Vec<u8>>(1)?,
            row.try_get::<_, Vec<u8>>(2)?,
        ))
    })?;
    head_of(size, &chain, &frontier)
}

/// The columns of a batch, one array each, as `INSERT_EVENTS` takes them.
#[derive(Default)]
struct Columns {
    seq: Vec<i64>,
    time_ms: Vec<i64>,
    event_id: Vec<String>,
    event_name: Vec<String>,
    event_source: Vec<String>,
    username: Vec<Option<String>>,
    principal_arn: Vec<Option<String>>,
    access_key_id: Vec<Option<String>>,
    read_only: Vec<bool>,
    body: Vec<Vec<u8>>,
    leaf: Vec<Vec<u8>>,
    chain: Vec<Vec<u8>>,
    resource_name: Vec<String>,
    resource_seq: Vec<i64>,
    node_end: Vec<i64>,
    node_level: Vec<i32>,
    node_hash: Vec<Vec<u8>>,
}

/// Appends `events` after whatever any node appended last, in one transaction; returns
/// their positions and the head after them.
pub(crate) fn append(pool: &Pool, events: &[EncodedEvent]) -> Result<(Vec<u64>, Head), Error> {
    pool.transact(
        &[
            LOCK_HEAD,
            INSERT_EVENTS,
            INSERT_RESOURCES,
            INSERT_NODES,
            UPDATE_HEAD,
        ],
        |remote| {
            let (size, chain, frontier) = remote.run("locking the log's head", |tx, st| {
                let row = tx.query_one(&st[0], &[])?;
                Ok((
                    row.try_get::<_, i64>(0)?,
                    row.try_get::<_, Vec<u8>>(1)?,
                    row.try_get::<_, Vec<u8>>(2)?,
                ))
            })?;
            let Head {
                mut frontier,
                mut chain,
            } = head_of(size, &chain, &frontier)?;
            let mut c = Columns::default();
            let mut seqs = Vec::with_capacity(events.len());
            for event in events {
                let seq = frontier.size();
                let leaf = merkle::leaf_hash(event.bytes());
                chain = chain_hash(&chain, &leaf);
                let ix = event.index();
                c.seq.push(to_sql(seq));
                c.time_ms.push(ix.time_ms);
                c.event_id.push(ix.event_id.clone());
                c.event_name.push(ix.event_name.clone());
                c.event_source.push(ix.event_source.clone());
                c.username.push(ix.username.clone());
                c.principal_arn.push(ix.principal_arn.clone());
                c.access_key_id.push(ix.access_key_id.clone());
                c.read_only.push(ix.read_only);
                c.body.push(event.bytes().to_vec());
                c.leaf.push(leaf.to_vec());
                c.chain.push(chain.to_vec());
                for name in &ix.resources {
                    c.resource_name.push(name.clone());
                    c.resource_seq.push(to_sql(seq));
                }
                frontier.push(leaf, |level, index, hash| {
                    c.node_end.push(to_sql((index + 1) << level));
                    c.node_level.push(i32::try_from(level).unwrap_or(i32::MAX));
                    c.node_hash.push(hash.to_vec());
                });
                seqs.push(seq);
            }
            let head = (to_sql(frontier.size()), chain.to_vec(), frontier.to_bytes());
            remote.run("appending events", move |tx, st| {
                tx.execute(
                    &st[1],
                    &[
                        &c.seq,
                        &c.time_ms,
                        &c.event_id,
                        &c.event_name,
                        &c.event_source,
                        &c.username,
                        &c.principal_arn,
                        &c.access_key_id,
                        &c.read_only,
                        &c.body,
                        &c.leaf,
                        &c.chain,
                    ],
                )?;
                if !c.resource_name.is_empty() {
                    tx.execute(&st[2], &[&c.resource_name, &c.resource_seq])?;
                }
                if !c.node_end.is_empty() {
                    tx.execute(&st[3], &[&c.node_end, &c.node_level, &c.node_hash])?;
                }
                tx.execute(&st[4], &[&head.0, &head.1, &head.2])?;
                Ok(())
            })?;
            Ok((seqs, Head { frontier, chain }))
        },
    )
}

/// Signs and stores a digest of the whole shared log (see [`crate::AuditLog::publish_digest`]).
pub(crate) fn publish_digest(
    pool: &Pool,
    signer: &dyn Signer,
    time_ms: i64,
) -> Result<Digest, Error> {
    pool.transact(&[LOCK_HEAD, LATEST_DIGEST, INSERT_DIGEST], |remote| {
        let (size, chain, frontier, latest) = remote.run("locking the log's head", |tx, st| {
            let row = tx.query_one(&st[0], &[])?;
            let latest: Option<Vec<u8>> = tx.query_opt(&st[1], &[])?.map(|r| r.get(0));
            Ok((
                row.try_get::<_, i64>(0)?,
                row.try_get::<_, Vec<u8>>(1)?,
                row.try_get::<_, Vec<u8>>(2)?,
                latest,
            ))
        })?;
        let head = head_of(size, &chain, &frontier)?;
        let previous = latest
            .map(|b| Digest::from_json(&b, "in the database"))
            .transpose()?;
        let next = next_digest(
            previous,
            head.frontier.size(),
            head.frontier.root(),
            head.chain,
            signer,
            time_ms,
        )?;
        let Next::Sign(digest) = next else {
            return Ok(next.into_digest());
        };
        let (size, body) = (to_sql(digest.tree_size), digest.to_json());
        remote.run("storing a digest", move |tx, st| {
            tx.execute(&st[2], &[&size, &body]).map(drop)
        })?;
        Ok(digest)
    })
}

/// How many bytes the trail's tables take, with their indexes.
pub(crate) fn bytes(pool: &Pool) -> Result<u64, Error> {
    let n = read(pool, "measuring the audit trail", |conn| {
        let st = conn.prepare(BYTES)?;
        conn.client().query_one(&st, &[])?.try_get::<_, i64>(0)
    })?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The cluster's digest signing key, sealed, if a node stored one.
pub fn signing_key(pool: &Pool) -> Result<Option<Vec<u8>>, Error> {
    read(pool, "reading the digest signing key", |conn| {
        let st = conn.prepare(SIGNING_KEY)?;
        Ok(conn.client().query_opt(&st, &[])?.map(|r| r.get(0)))
    })
}

/// Stores `sealed` as the cluster's digest signing key unless a node stored one first;
/// returns the one stored.
pub fn offer_signing_key(pool: &Pool, sealed: Vec<u8>) -> Result<Vec<u8>, Error> {
    read(pool, "storing the digest signing key", move |conn| {
        let offer = conn.prepare(OFFER_SIGNING_KEY)?;
        let get = conn.prepare(SIGNING_KEY)?;
        conn.client().execute(&offer, &[&sealed])?;
        conn.client().query_one(&get, &[])?.try_get(0)
    })
}

/// Replaces the sealed signing key `old` with `new` (the same key sealed under a new
/// master key); `false` if the stored one is not `old`.
pub fn replace_signing_key(pool: &Pool, old: Vec<u8>, new: Vec<u8>) -> Result<bool, Error> {
    read(pool, "resealing the digest signing key", move |conn| {
        let st = conn.prepare(REPLACE_SIGNING_KEY)?;
        Ok(conn.client().execute(&st, &[&old, &new])? == 1)
    })
}

/// The reads of the shared log.
pub(crate) struct PgSource(pub(crate) Pool);

fn rows_to_pairs<T: for<'a> postgres::types::FromSql<'a>>(
    rows: Vec<postgres::Row>,
) -> Result<Vec<(i64, T)>, postgres::Error> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

fn limit_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Source for PgSource {
    fn size(&self) -> Result<u64, Error> {
        let max = read(&self.0, "reading the log's size", |conn| {
            let st = conn.prepare(SIZE)?;
            conn.client()
                .query_one(&st, &[])?
                .try_get::<_, Option<i64>>(0)
        })?;
        Ok(max.map_or(0, |m| u64::try_from(m).map_or(0, |m| m + 1)))
    }

    fn subtree(&self, level: u32, index: u64) -> Result<Option<Vec<u8>>, Error> {
        read(&self.0, "reading a tree node", move |conn| {
            let row = if level == 0 {
                let st = conn.prepare(LEAF)?;
                conn.client().query_opt(&st, &[&to_sql(index)])?
            } else {
                let st = conn.prepare(NODE)?;
                let end = to_sql((index + 1) << level);
                let level = i32::try_from(level).unwrap_or(i32::MAX);
                conn.client().query_opt(&st, &[&end, &level])?
            };
            row.map(|r| r.try_get(0)).transpose()
        })
    }

    fn chain_at(&self, seq: u64) -> Result<Option<Vec<u8>>, Error> {
        read(&self.0, "reading a chain hash", move |conn| {
            let st = conn.prepare(CHAIN)?;
            let row = conn.client().query_opt(&st, &[&to_sql(seq)])?;
            row.map(|r| r.try_get(0)).transpose()
        })
    }

    fn body_at(&self, seq: u64) -> Result<Option<Vec<u8>>, Error> {
        read(&self.0, "reading an event", move |conn| {
            let st = conn.prepare(BODY)?;
            let row = conn.client().query_opt(&st, &[&to_sql(seq)])?;
            row.map(|r| r.try_get(0)).transpose()
        })
    }

    fn digest_rows(&self) -> Result<Vec<(i64, Vec<u8>)>, Error> {
        read(&self.0, "reading the digests", |conn| {
            let st = conn.prepare(DIGESTS)?;
            rows_to_pairs(conn.client().query(&st, &[])?)
        })
    }

    fn latest_digest_row(&self) -> Result<Option<Vec<u8>>, Error> {
        read(&self.0, "reading the latest digest", |conn| {
            let st = conn.prepare(LATEST_DIGEST)?;
            let row = conn.client().query_opt(&st, &[])?;
            row.map(|r| r.try_get(0)).transpose()
        })
    }

    fn events_from(&self, from: u64, limit: usize) -> Result<Vec<EventRow>, Error> {
        read(&self.0, "reading events", move |conn| {
            let st = conn.prepare(EVENTS_FROM)?;
            let rows = conn
                .client()
                .query(&st, &[&to_sql(from), &limit_sql(limit)])?;
            rows.iter()
                .map(|row| {
                    Ok(EventRow {
                        seq: row.try_get(0)?,
                        index: EventIndex {
                            time_ms: row.try_get(1)?,
                            event_id: row.try_get(2)?,
                            event_name: row.try_get(3)?,
                            event_source: row.try_get(4)?,
                            username: row.try_get(5)?,
                            principal_arn: row.try_get(6)?,
                            access_key_id: row.try_get(7)?,
                            read_only: row.try_get(8)?,
                            resources: Vec::new(),
                        },
                        body: row.try_get(9)?,
                        leaf: row.try_get(10)?,
                        chain: row.try_get(11)?,
                    })
                })
                .collect()
        })
    }

    fn resources_between(&self, from: u64, to: Option<u64>) -> Result<Vec<(i64, String)>, Error> {
        read(&self.0, "reading event resources", move |conn| {
            let st = conn.prepare(RESOURCES_BETWEEN)?;
            let to = to.map_or(i64::MAX, to_sql);
            rows_to_pairs(conn.client().query(&st, &[&to_sql(from), &to])?)
        })
    }

    fn bodies_in_time(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>, Error> {
        read(&self.0, "reading events", move |conn| {
            let st = conn.prepare(BODIES_IN_TIME)?;
            let limit = limit_sql(limit);
            rows_to_pairs(
                conn.client()
                    .query(&st, &[&from_ms, &to_ms, &after, &limit])?,
            )
        })
    }

    fn lookup(&self, filter: &Filter, limit: usize) -> Result<Vec<(i64, Vec<u8>)>, Error> {
        let (conditions, args) = filter.conditions(|n| format!("${n}"), "audit_event_resources");
        let sql = format!(
            "SELECT seq, body FROM audit_events WHERE {conditions} ORDER BY seq DESC LIMIT ${}",
            args.len() + 1
        );
        read(&self.0, "looking up events", move |conn| {
            let limit = limit_sql(limit);
            let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = args
                .iter()
                .map(|a| -> &(dyn postgres::types::ToSql + Sync) {
                    match a {
                        Arg::Text(s) => s,
                        Arg::Int(i) => i,
                        Arg::Bool(b) => b,
                    }
                })
                .collect();
            params.push(&limit);
            rows_to_pairs(conn.client().query(sql.as_str(), &params)?)
        })
    }
}

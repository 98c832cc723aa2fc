//! The KMS store in PostgreSQL, shared by every node of a deployment, and its `kms` schema
//! track.
//!
//! # Schema
//!
//! The tables mirror the SQLite store's, prefixed `kms_`:
//!
//! - `kms_meta(name, value)`: settings; `master_fingerprint` is the fingerprint of the
//!   master key that seals the materials. The first node to start records it; every node
//!   checks it before reading any material and refuses to start under another key.
//! - `kms_keys(id, record)`: each key's record as JSON (no secret in it).
//! - `kms_materials(key_id, version, sealed, created_ms, rotation)`: each material, sealed
//!   under the master key with `key_id/version` as associated data. Without the master key
//!   (which the operator gives every node and which is never stored) nothing here opens.
//! - `kms_aliases(name, key_id, created_ms, updated_ms)`.
//! - `kms_generation(id = 1, generation)`: the write generation.
//!
//! # Writes and freshness
//!
//! Every write is one transaction that first bumps `kms_generation` (with an expected
//! generation, only if it still holds: the `UPDATE` locks the row, so writers of all nodes
//! queue on it, and one whose expectation no longer holds writes nothing and is told so).
//! A node therefore never writes from a stale copy of the keys: it reloads and decides
//! again. Loads read the generation and every table in one `REPEATABLE READ` snapshot.

use std::collections::HashMap;

use ::postgres::types::ToSql;
use uuid::Uuid;
use warden_postgres::{Conn, Migration, Options, Pool, Track};

use crate::error::{shared, KmsError};
use crate::store::{rotation_name, Dump, KeyRecord, Op, SealedMaterial};

/// The `kms` track. Append only.
const MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
CREATE TABLE kms_meta (
    name TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE kms_generation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO kms_generation (id, generation) VALUES (1, 0);

CREATE TABLE kms_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    record TEXT NOT NULL
);

CREATE TABLE kms_materials (
    key_id TEXT COLLATE "C" NOT NULL REFERENCES kms_keys(id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    -- AES-256-GCM under the master key; `key_id/version` as associated data.
    sealed BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    rotation TEXT NOT NULL CHECK (rotation IN ('ORIGINAL', 'AUTOMATIC', 'ON_DEMAND')),
    PRIMARY KEY (key_id, version)
);

CREATE TABLE kms_aliases (
    name TEXT COLLATE "C" PRIMARY KEY,
    key_id TEXT COLLATE "C" NOT NULL REFERENCES kms_keys(id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX kms_aliases_by_key ON kms_aliases (key_id);
"#,
)];

/// The `kms` schema track.
pub const TRACK: Track = Track {
    name: "kms",
    migrations: MIGRATIONS,
};

const BUMP: &str = "UPDATE kms_generation SET generation = generation + 1 \
     WHERE id = 1 AND ($1::BIGINT IS NULL OR generation = $1) RETURNING generation";
const PUT_META: &str = "INSERT INTO kms_meta (name, value) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value";
const PUT_KEY: &str = "INSERT INTO kms_keys (id, record) VALUES ($1, $2) \
     ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record";
const ADD_MATERIAL: &str =
    "INSERT INTO kms_materials (key_id, version, sealed, created_ms, rotation) \
     VALUES ($1, $2, $3, $4, $5)";
const RESEAL: &str = "UPDATE kms_materials SET sealed = $3 WHERE key_id = $1 AND version = $2";
const DELETE_KEY: &str = "DELETE FROM kms_keys WHERE id = $1";
const PUT_ALIAS: &str = "INSERT INTO kms_aliases (name, key_id, created_ms, updated_ms) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET key_id = EXCLUDED.key_id, \
     updated_ms = EXCLUDED.updated_ms";
const DELETE_ALIAS: &str = "DELETE FROM kms_aliases WHERE name = $1";
const GENERATION: &str = "SELECT generation FROM kms_generation WHERE id = 1";
const META: &str = "SELECT value FROM kms_meta WHERE name = $1";
const CLAIM_META: &str =
    "INSERT INTO kms_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

/// An operation with its values in PostgreSQL's types, ready to run in a transaction
/// that may be retried.
enum Row {
    Meta(String, String),
    Key(String, String),
    Material(String, i64, Vec<u8>, i64, &'static str),
    Reseal(String, i64, Vec<u8>),
    DeleteKey(String),
    Alias(String, String, i64, i64),
    DeleteAlias(String),
}

fn row(op: &Op) -> Result<Row, KmsError> {
    Ok(match op {
        Op::PutMeta { name, value } => Row::Meta(name.clone(), value.clone()),
        Op::PutKey(record) => Row::Key(
            record.id.to_string(),
            serde_json::to_string(record)
                .map_err(|_| KmsError::Crypto("serializing a key record"))?,
        ),
        Op::AddMaterial { key, material } => Row::Material(
            key.to_string(),
            i64::from(material.version),
            material.sealed.clone(),
            material.created_ms,
            material.rotation,
        ),
        Op::ResealMaterial {
            key,
            version,
            sealed,
        } => Row::Reseal(key.to_string(), i64::from(*version), sealed.clone()),
        Op::DeleteKey(key) => Row::DeleteKey(key.to_string()),
        Op::PutAlias {
            name,
            key,
            created_ms,
            updated_ms,
        } => Row::Alias(name.clone(), key.to_string(), *created_ms, *updated_ms),
        Op::DeleteAlias(name) => Row::DeleteAlias(name.clone()),
    })
}

/// The statements a write uses, prepared on the connection.
struct Statements {
    bump: ::postgres::Statement,
    meta: ::postgres::Statement,
    key: ::postgres::Statement,
    material: ::postgres::Statement,
    reseal: ::postgres::Statement,
    delete_key: ::postgres::Statement,
    alias: ::postgres::Statement,
    delete_alias: ::postgres::Statement,
}

impl Statements {
    fn prepare(conn: &mut Conn) -> Result<Statements, ::postgres::Error> {
        Ok(Statements {
            bump: conn.prepare(BUMP)?,
            meta: conn.prepare(PUT_META)?,
            key: conn.prepare(PUT_KEY)?,
            material: conn.prepare(ADD_MATERIAL)?,
            reseal: conn.prepare(RESEAL)?,
            delete_key: conn.prepare(DELETE_KEY)?,
            alias: conn.prepare(PUT_ALIAS)?,
            delete_alias: conn.prepare(DELETE_ALIAS)?,
        })
    }

    fn run(
        &self,
        tx: &mut ::postgres::Transaction<'_>,
        row: &Row,
    ) -> Result<u64, ::postgres::Error> {
        let (statement, params): (&::postgres::Statement, Vec<&(dyn ToSql + Sync)>) = match row {
            Row::Meta(n, v) => (&self.meta, vec![n, v]),
            Row::Key(id, text) => (&self.key, vec![id, text]),
            Row::Material(k, v, s, c, r) => (&self.material, vec![k, v, s, c, r]),
            Row::Reseal(k, v, s) => (&self.reseal, vec![k, v, s]),
            Row::DeleteKey(k) => (&self.delete_key, vec![k]),
            Row::Alias(n, k, c, u) => (&self.alias, vec![n, k, c, u]),
            Row::DeleteAlias(n) => (&self.delete_alias, vec![n]),
        };
        tx.execute(statement, &params)
    }
}

/// What a load reads, before parsing.
type RawDump = (
    i64,
    Vec<String>,
    Vec<(String, i64, Vec<u8>, i64, String)>,
    Vec<(String, String, i64, i64)>,
);

/// The KMS store in a PostgreSQL database.
pub struct PgKmsStore {
    pool: Pool,
}

impl std::fmt::Debug for PgKmsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgKmsStore")
            .field("target", &self.pool.target())
            .finish()
    }
}

impl PgKmsStore {
    /// Connects to `url` with `connections` connections (at least one) and brings the
    /// `kms` track up to date.
    pub fn open(url: &str, connections: usize) -> Result<PgKmsStore, KmsError> {
        let pool = Pool::open(
            url,
            &Options {
                connections: connections.max(1),
                application_name: "warden-kms".to_owned(),
            },
            &[TRACK],
        )
        .map_err(shared("opening the shared key store"))?;
        Ok(PgKmsStore { pool })
    }

    /// A store over a pool of the caller's; the caller has brought [`TRACK`] up to date.
    pub fn with_pool(pool: Pool) -> PgKmsStore {
        PgKmsStore { pool }
    }

    /// Applies `ops` in one transaction that bumps the write generation (see
    /// [`crate::store::Backend::apply`]).
    pub fn apply(
        &self,
        context: &'static str,
        ops: &[Op],
        expected: Option<i64>,
    ) -> Result<Option<i64>, KmsError> {
        let rows = ops.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        self.pool
            .run(move |conn| -> Result<Option<i64>, warden_postgres::Error> {
                let statements = Statements::prepare(conn).map_err(warden_postgres::Error::at(
                    "preparing the key store's statements",
                ))?;
                conn.transaction(|tx| -> Result<Option<i64>, warden_postgres::Error> {
                    let Some(bumped) = tx
                        .query_opt(&statements.bump, &[&expected])
                        .map_err(warden_postgres::Error::at("bumping the key generation"))?
                    else {
                        return Ok(None);
                    };
                    for r in &rows {
                        statements
                            .run(tx, r)
                            .map_err(warden_postgres::Error::at("writing the key store"))?;
                    }
                    Ok(Some(bumped.get(0)))
                })
            })
            .map_err(shared(context))
    }

    /// The stored write generation.
    pub fn generation(&self) -> Result<i64, KmsError> {
        self.pool
            .run(|conn| -> Result<i64, warden_postgres::Error> {
                let s = conn
                    .prepare(GENERATION)
                    .map_err(warden_postgres::Error::at("reading the key generation"))?;
                let row = conn
                    .client()
                    .query_one(&s, &[])
                    .map_err(warden_postgres::Error::at("reading the key generation"))?;
                Ok(row.get(0))
            })
            .map_err(shared("reading the key store's generation"))
    }

    /// Reads a `meta` value.
    pub fn meta(&self, name: &str) -> Result<Option<String>, KmsError> {
        let name = name.to_owned();
        self.pool
            .run(
                move |conn| -> Result<Option<String>, warden_postgres::Error> {
                    let s = conn
                        .prepare(META)
                        .map_err(warden_postgres::Error::at("reading a setting"))?;
                    let row = conn
                        .client()
                        .query_opt(&s, &[&name])
                        .map_err(warden_postgres::Error::at("reading a setting"))?;
                    Ok(row.map(|r| r.get(0)))
                },
            )
            .map_err(shared("reading the key store's settings"))
    }

    /// The `meta` value `name`, set to `value` first if it has none. Of several nodes
    /// asking at once, one sets it and all read the value it set: the insert waits for a
    /// concurrent insert of the same name to commit, and the read that follows (a new
    /// statement, so a new snapshot under `READ COMMITTED`) sees it.
    pub fn claim_meta(&self, name: &str, value: &str) -> Result<String, KmsError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.pool
            .run(move |conn| -> Result<String, warden_postgres::Error> {
                let claim = conn
                    .prepare(CLAIM_META)
                    .map_err(warden_postgres::Error::at("recording a setting"))?;
                let read = conn
                    .prepare(META)
                    .map_err(warden_postgres::Error::at("reading a setting"))?;
                conn.transaction(|tx| -> Result<String, warden_postgres::Error> {
                    tx.execute(&claim, &[&name, &value])
                        .map_err(warden_postgres::Error::at("recording a setting"))?;
                    let row = tx
                        .query_one(&read, &[&name])
                        .map_err(warden_postgres::Error::at("reading a setting"))?;
                    Ok(row.get(0))
                })
            })
            .map_err(shared("recording the key store's settings"))
    }

    /// Loads everything in one snapshot, with the generation it was read at.
    pub fn load(&self) -> Result<Dump, KmsError> {
        let (generation, records, materials, aliases) = self
            .pool
            .run(|conn| -> Result<RawDump, warden_postgres::Error> {
                let at = warden_postgres::Error::at;
                let mut tx = conn
                    .client()
                    .build_transaction()
                    .isolation_level(::postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .map_err(at("starting to load the key store"))?;
                let generation: i64 = tx
                    .query_one(GENERATION, &[])
                    .map_err(at("reading the key generation"))?
                    .get(0);
                let records = tx
                    .query("SELECT record FROM kms_keys ORDER BY id", &[])
                    .map_err(at("loading keys"))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let materials = tx
                    .query(
                        "SELECT key_id, version, sealed, created_ms, rotation FROM kms_materials \
                         ORDER BY key_id, version",
                        &[],
                    )
                    .map_err(at("loading key materials"))?
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                    .collect();
                let aliases = tx
                    .query(
                        "SELECT name, key_id, created_ms, updated_ms FROM kms_aliases ORDER BY name",
                        &[],
                    )
                    .map_err(at("loading aliases"))?
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                    .collect();
                tx.commit().map_err(at("finishing the load"))?;
                Ok((generation, records, materials, aliases))
            })
            .map_err(shared("loading the key store"))?;
        let mut by_key: HashMap<String, Vec<SealedMaterial>> = HashMap::new();
        for (key, version, sealed, created_ms, rotation) in materials {
            let version = u32::try_from(version).map_err(|_| {
                KmsError::Validation(format!("a stored material of {key} has version {version}"))
            })?;
            by_key.entry(key).or_default().push(SealedMaterial {
                version,
                sealed,
                created_ms,
                rotation: rotation_name(&rotation),
            });
        }
        let mut dump = Dump {
            generation,
            ..Dump::default()
        };
        for text in records {
            let record: KeyRecord = serde_json::from_str(&text)
                .map_err(|e| KmsError::Validation(format!("a stored key does not parse: {e}")))?;
            let m = by_key.remove(&record.id.to_string()).unwrap_or_default();
            dump.keys.push((record, m));
        }
        for (name, key, created, updated) in aliases {
            let key = Uuid::parse_str(&key)
                .map_err(|_| KmsError::Validation(format!("alias {name} names no key")))?;
            dump.aliases.push((name, key, created, updated));
        }
        Ok(dump)
    }
}

//! The durable form of KMS: `DATA_DIR/kms.db`, one SQLite file (WAL, `synchronous=FULL`,
//! private to its owner). Keys are JSON records; their materials are sealed under the master
//! key with the key id and material version as associated data, so a material row copied
//! onto another key does not open; the data directory records the fingerprint of the
//! master key that sealed it.
//!
//! The same store can live in PostgreSQL instead ([`crate::postgres`]), shared by several
//! nodes. [`Backend`] is what the key service uses: either store, driven by the same
//! backend-neutral write operations ([`Op`]), each list applied in one transaction that
//! also bumps the store's write generation, so that a node can tell whether its
//! in-memory copy is current and a write made from an outdated copy is refused
//! (optimistic concurrency) rather than overwriting another node's change.
//!
//! In SQLite the generation is the `meta` row `generation` (absent, in files written
//! before it existed, means 0), so existing `kms.db` files open unchanged.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{plumbing, store, KmsError};

/// Schema; entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE keys (
    id TEXT PRIMARY KEY NOT NULL,
    record TEXT NOT NULL
) STRICT;

CREATE TABLE materials (
    key_id TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    -- AES-256-GCM under the master key; `key_id/version` as associated data.
    sealed BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    rotation TEXT NOT NULL CHECK (rotation IN ('ORIGINAL', 'AUTOMATIC', 'ON_DEMAND')),
    PRIMARY KEY (key_id, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE aliases (
    name TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX aliases_by_key ON aliases(key_id);
"#];

/// A key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Refuses cryptographic operations until enabled.
    Disabled,
    /// Refuses everything but reads and `CancelKeyDeletion` until it is deleted.
    PendingDeletion,
}

impl KeyState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

/// Who manages a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyManager {
    /// Made by a caller with `CreateKey`.
    Customer,
    /// Made by the platform for a service (`aws/lambda`).
    Aws,
}

/// Automatic rotation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Days between rotations (90-2560).
    pub period_days: u32,
    /// When the next automatic rotation is due.
    pub next_ms: i64,
}

/// Everything about a key but its material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key id.
    pub id: Uuid,
    /// Its description.
    pub description: String,
    /// When it was made.
    pub created_ms: i64,
    /// Its state.
    pub state: KeyState,
    /// When a key pending deletion is deleted.
    pub deletion_ms: Option<i64>,
    /// The waiting period a pending deletion was scheduled with.
    pub pending_window_days: Option<u32>,
    /// Customer or AWS managed.
    pub manager: KeyManager,
    /// Automatic rotation, when enabled.
    pub rotation: Option<Rotation>,
    /// The key policy document, as given.
    pub policy: String,
    /// Tags, in the order given.
    pub tags: Vec<(String, String)>,
}

/// One material of a key, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedMaterial {
    /// 1 for the original, then one more per rotation.
    pub version: u32,
    /// Sealed under the master key.
    pub sealed: Vec<u8>,
    /// When it was made.
    pub created_ms: i64,
    /// `ORIGINAL`, `AUTOMATIC` or `ON_DEMAND`.
    pub rotation: &'static str,
}

/// Everything stored, as loaded at start: one consistent snapshot.
#[derive(Debug, Default)]
pub struct Dump {
    /// The write generation the snapshot was read at.
    pub generation: i64,
    /// Every key with its materials, oldest material first.
    pub keys: Vec<(KeyRecord, Vec<SealedMaterial>)>,
    /// Every alias: name (with `alias/`), key id, created, updated.
    pub aliases: Vec<(String, Uuid, i64, i64)>,
}

/// The associated data sealing one material.
pub fn material_aad(key: &Uuid, version: u32) -> Vec<u8> {
    format!("kms-material/{key}/{version}").into_bytes()
}

/// The `meta` row holding SQLite's write generation.
const GENERATION: &str = "generation";

/// One write to the store; a list of them is applied in one transaction by either backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets a `meta` value.
    PutMeta {
        /// Its name.
        name: String,
        /// Its value.
        value: String,
    },
    /// Writes a key's record (insert or replace).
    PutKey(KeyRecord),
    /// Adds a sealed material to a key.
    AddMaterial {
        /// The key.
        key: Uuid,
        /// The material.
        material: SealedMaterial,
    },
    /// Replaces a material's sealed bytes (master key rotation).
    ResealMaterial {
        /// The key.
        key: Uuid,
        /// The material's version.
        version: u32,
        /// The bytes sealed under the new master key.
        sealed: Vec<u8>,
    },
    /// Deletes a key, its materials and its aliases.
    DeleteKey(Uuid),
    /// Creates or repoints an alias.
    PutAlias {
        /// `alias/NAME`.
        name: String,
        /// The key it names.
        key: Uuid,
        /// When it was made (kept when repointing).
        created_ms: i64,
        /// When it was last changed.
        updated_ms: i64,
    },
    /// Deletes an alias.
    DeleteAlias(String),
}

/// Where KMS keeps its keys: a node's own SQLite file, or a PostgreSQL database shared by
/// several nodes.
pub enum Backend {
    /// `DATA_DIR/kms.db`.
    Sqlite(KmsStore),
    /// A shared PostgreSQL database.
    Postgres(crate::postgres::PgKmsStore),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sqlite(_) => f.write_str("Backend::Sqlite"),
            Backend::Postgres(p) => write!(f, "Backend::Postgres({p:?})"),
        }
    }
}

impl Backend {
    /// Whether other nodes may write the store too.
    pub fn is_shared(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    /// Applies `ops` in one transaction that bumps the write generation, and returns the
    /// new generation. With `expected`, writes only if the stored generation is still
    /// `expected` and returns `None` (writing nothing) if it moved.
    pub fn apply(
        &self,
        context: &'static str,
        ops: &[Op],
        expected: Option<i64>,
    ) -> Result<Option<i64>, KmsError> {
        match self {
            Backend::Sqlite(s) => s.apply(context, ops, expected),
            Backend::Postgres(p) => p.apply(context, ops, expected),
        }
    }

    /// The stored write generation.
    pub fn generation(&self) -> Result<i64, KmsError> {
        match self {
            Backend::Sqlite(s) => s.generation(),
            Backend::Postgres(p) => p.generation(),
        }
    }

    /// Reads a `meta` value.
    pub fn meta(&self, name: &str) -> Result<Option<String>, KmsError> {
        match self {
            Backend::Sqlite(s) => s.meta(name),
            Backend::Postgres(p) => p.meta(name),
        }
    }

    /// The `meta` value `name`, set to `value` first if it has none (once, whichever of
    /// several nodes asks first).
    pub fn claim_meta(&self, name: &str, value: &str) -> Result<String, KmsError> {
        match self {
            Backend::Sqlite(s) => s.claim_meta(name, value),
            Backend::Postgres(p) => p.claim_meta(name, value),
        }
    }

    /// Loads everything, with the generation it was read at.
    pub fn load(&self) -> Result<Dump, KmsError> {
        match self {
            Backend::Sqlite(s) => s.load(),
            Backend::Postgres(p) => p.load(),
        }
    }
}

/// Applies one operation in a SQLite transaction.
pub fn apply_op(tx: &Transaction<'_>, op: &Op) -> Result<(), KmsError> {
    match op {
        Op::PutMeta { name, value } => put_meta(tx, name, value),
        Op::PutKey(record) => put_key(tx, record),
        Op::AddMaterial { key, material } => add_material(tx, key, material),
        Op::ResealMaterial {
            key,
            version,
            sealed,
        } => reseal_material(tx, key, *version, sealed),
        Op::DeleteKey(key) => delete_key(tx, key),
        Op::PutAlias {
            name,
            key,
            created_ms,
            updated_ms,
        } => put_alias(tx, name, key, *created_ms, *updated_ms),
        Op::DeleteAlias(name) => delete_alias(tx, name),
    }
}

fn read_generation(conn: &Connection) -> Result<i64, KmsError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE name = ?1",
            [GENERATION],
            |r| r.get(0),
        )
        .optional()
        .map_err(store("reading the key store's generation"))?;
    match text {
        None => Ok(0),
        Some(t) => t.parse().map_err(|_| {
            KmsError::Validation(format!("the key store's generation {t:?} is not a number"))
        }),
    }
}

/// The SQLite store of KMS.
pub struct KmsStore {
    writer: Mutex<Connection>,
}

/// The static name of a material's rotation kind (`ORIGINAL` for anything unknown).
pub(crate) fn rotation_name(s: &str) -> &'static str {
    match s {
        "AUTOMATIC" => "AUTOMATIC",
        "ON_DEMAND" => "ON_DEMAND",
        _ => "ORIGINAL",
    }
}

impl KmsStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<KmsStore, KmsError> {
        let db = warden_sqlite::open(
            path,
            &warden_sqlite::Options {
                synchronous: warden_sqlite::Synchronous::Full,
                migrations: MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(plumbing("opening the key store"))?;
        drop(db.reader);
        Ok(KmsStore {
            writer: Mutex::new(db.writer),
        })
    }

    /// Runs `f` in one immediate transaction.
    pub fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let mut conn = warden_sqlite::lock(&self.writer);
        warden_sqlite::rollback_abandoned(&conn).map_err(store(context))?;
        let tx = warden_sqlite::immediate(&mut conn).map_err(store(context))?;
        let out = f(&tx)?;
        tx.commit().map_err(store(context))?;
        Ok(out)
    }

    /// Applies `ops` in one immediate transaction that bumps the write generation (see
    /// [`Backend::apply`]).
    pub fn apply(
        &self,
        context: &'static str,
        ops: &[Op],
        expected: Option<i64>,
    ) -> Result<Option<i64>, KmsError> {
        self.write(context, |tx| {
            let current = read_generation(tx)?;
            if expected.is_some_and(|e| e != current) {
                return Ok(None);
            }
            for op in ops {
                apply_op(tx, op)?;
            }
            let next = current + 1;
            put_meta(tx, GENERATION, &next.to_string())?;
            Ok(Some(next))
        })
    }

    /// The stored write generation (0 in a file no write has bumped).
    pub fn generation(&self) -> Result<i64, KmsError> {
        let conn = warden_sqlite::lock(&self.writer);
        read_generation(&conn)
    }

    /// The `meta` value `name`, set to `value` first if it has none.
    pub fn claim_meta(&self, name: &str, value: &str) -> Result<String, KmsError> {
        self.write("recording the key store's settings", |tx| {
            let stored: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(store("reading the key store's settings"))?;
            match stored {
                Some(v) => Ok(v),
                None => {
                    put_meta(tx, name, value)?;
                    Ok(value.to_owned())
                }
            }
        })
    }

    /// Reads a `meta` value.
    pub fn meta(&self, name: &str) -> Result<Option<String>, KmsError> {
        let conn = warden_sqlite::lock(&self.writer);
        conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
        .map_err(store("reading the key store's settings"))
    }

    /// Loads everything, in one read transaction (a consistent snapshot even if another
    /// process writes the file meanwhile).
    pub fn load(&self) -> Result<Dump, KmsError> {
        let ctx = "loading the key store";
        let mut guard = warden_sqlite::lock(&self.writer);
        warden_sqlite::rollback_abandoned(&guard).map_err(store(ctx))?;
        let conn = guard.transaction().map_err(store(ctx))?;
        let mut dump = Dump {
            generation: read_generation(&conn)?,
            ..Dump::default()
        };
        let mut keys = conn
            .prepare("SELECT record FROM keys ORDER BY id")
            .map_err(store(ctx))?;
        let records = keys
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(store(ctx))?;
        let mut materials = conn
            .prepare(
                "SELECT version, sealed, created_ms, rotation FROM materials \
                 WHERE key_id = ?1 ORDER BY version",
            )
            .map_err(store(ctx))?;
        for record in records {
            let text = record.map_err(store(ctx))?;
            let record: KeyRecord = serde_json::from_str(&text)
                .map_err(|e| KmsError::Validation(format!("a stored key does not parse: {e}")))?;
            let m = materials
                .query_map([record.id.to_string()], |r| {
                    Ok(SealedMaterial {
                        version: r.get(0)?,
                        sealed: r.get(1)?,
                        created_ms: r.get(2)?,
                        rotation: rotation_name(&r.get::<_, String>(3)?),
                    })
                })
                .map_err(store(ctx))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(store(ctx))?;
            dump.keys.push((record, m));
        }
        let mut aliases = conn
            .prepare("SELECT name, key_id, created_ms, updated_ms FROM aliases ORDER BY name")
            .map_err(store(ctx))?;
        for row in aliases
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(store(ctx))?
        {
            let (name, key, created, updated) = row.map_err(store(ctx))?;
            let key = Uuid::parse_str(&key)
                .map_err(|_| KmsError::Validation(format!("alias {name} names no key")))?;
            dump.aliases.push((name, key, created, updated));
        }
        Ok(dump)
    }
}

/// Sets a `meta` value.
pub fn put_meta(tx: &Transaction<'_>, name: &str, value: &str) -> Result<(), KmsError> {
    tx.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) \
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )
    .map_err(store("writing the key store's settings"))?;
    Ok(())
}

/// Writes a key's record (insert or replace).
pub fn put_key(tx: &Transaction<'_>, record: &KeyRecord) -> Result<(), KmsError> {
    let text =
        serde_json::to_string(record).map_err(|_| KmsError::Crypto("serializing a key record"))?;
    tx.execute(
        "INSERT INTO keys (id, record) VALUES (?1, ?2) \
         ON CONFLICT(id) DO UPDATE SET record = excluded.record",
        params![record.id.to_string(), text],
    )
    .map_err(store("writing a key"))?;
    Ok(())
}

/// Adds a sealed material to a key.
pub fn add_material(tx: &Transaction<'_>, key: &Uuid, m: &SealedMaterial) -> Result<(), KmsError> {
    tx.execute(
        "INSERT INTO materials (key_id, version, sealed, created_ms, rotation) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            key.to_string(),
            m.version,
            m.sealed,
            m.created_ms,
            m.rotation
        ],
    )
    .map_err(store("writing key material"))?;
    Ok(())
}

/// Replaces a material's sealed bytes (master key rotation).
pub fn reseal_material(
    tx: &Transaction<'_>,
    key: &Uuid,
    version: u32,
    sealed: &[u8],
) -> Result<(), KmsError> {
    tx.execute(
        "UPDATE materials SET sealed = ?3 WHERE key_id = ?1 AND version = ?2",
        params![key.to_string(), version, sealed],
    )
    .map_err(store("resealing key material"))?;
    Ok(())
}

/// Deletes a key, its materials and its aliases.
pub fn delete_key(tx: &Transaction<'_>, key: &Uuid) -> Result<(), KmsError> {
    tx.execute("DELETE FROM keys WHERE id = ?1", [key.to_string()])
        .map_err(store("deleting a key"))?;
    Ok(())
}

/// Creates or repoints an alias.
pub fn put_alias(
    tx: &Transaction<'_>,
    name: &str,
    key: &Uuid,
    created_ms: i64,
    updated_ms: i64,
) -> Result<(), KmsError> {
    tx.execute(
        "INSERT INTO aliases (name, key_id, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(name) DO UPDATE SET key_id = excluded.key_id, updated_ms = excluded.updated_ms",
        params![name, key.to_string(), created_ms, updated_ms],
    )
    .map_err(store("writing an alias"))?;
    Ok(())
}

/// Deletes an alias.
pub fn delete_alias(tx: &Transaction<'_>, name: &str) -> Result<(), KmsError> {
    tx.execute("DELETE FROM aliases WHERE name = ?1", [name])
        .map_err(store("deleting an alias"))?;
    Ok(())
}

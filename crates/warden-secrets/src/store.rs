//! Where secrets are kept: one record per secret (its metadata as JSON) and one row per
//! version (its sealed value and stages), on one of two backends.
//!
//! - **SQLite** (`DATA_DIR/secrets.db`), one node's own. Every operation is one immediate
//!   transaction, so writers queue behind each other.
//! - **PostgreSQL**, shared by every node of a deployment (the `secrets` schema track).
//!   Every operation is one transaction that first takes a transaction-scoped advisory
//!   lock ([`SECRETS_LOCK`]), so the operations of all nodes queue behind each other just
//!   as SQLite's writers do: the checks an operation makes (a name is free, the store has
//!   room, which version holds a stage) still hold when it writes. Values are sealed under
//!   KMS keys, which every node shares, so any node opens what another sealed.
//!
//! Both backends implement [`Tx`], and the service's logic runs once over either.

use std::path::Path;
use std::sync::Mutex;

use postgres::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use warden_postgres::{Migration, Pool, Remote, Track};

use crate::error::{shared, store, SecretsError};
use crate::service::{Secret, Version};

/// Schema; entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE secrets (
    arn TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    record TEXT NOT NULL
) STRICT;

CREATE TABLE versions (
    arn TEXT NOT NULL REFERENCES secrets(arn) ON DELETE CASCADE,
    version_id TEXT NOT NULL,
    -- The value, sealed by envelope encryption under the secret's KMS key.
    sealed BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    last_accessed_ms INTEGER,
    stages TEXT NOT NULL,
    PRIMARY KEY (arn, version_id)
) STRICT, WITHOUT ROWID;
"#];

/// The `secrets` track in PostgreSQL. Append only.
const PG_MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
CREATE TABLE secrets (
    arn TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    record TEXT NOT NULL
);

CREATE TABLE secret_versions (
    arn TEXT COLLATE "C" NOT NULL REFERENCES secrets(arn) ON DELETE CASCADE,
    version_id TEXT COLLATE "C" NOT NULL,
    -- The value, sealed by envelope encryption under the secret's KMS key.
    sealed BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    last_accessed_ms BIGINT,
    stages TEXT NOT NULL,
    PRIMARY KEY (arn, version_id)
);
"#,
)];

/// The `secrets` schema track.
pub const TRACK: Track = Track {
    name: "secrets",
    migrations: PG_MIGRATIONS,
};

/// The advisory lock every secrets transaction in PostgreSQL holds ("secrets" in ASCII).
pub const SECRETS_LOCK: i64 = 0x73_6563_7265_7473;

/// What one transaction of the secrets store can read and write.
pub(crate) trait Tx {
    /// The secret with this exact name or ARN.
    fn find(&mut self, name_or_arn: &str) -> Result<Option<Secret>, SecretsError>;
    /// Every secret, oldest first.
    fn all(&mut self) -> Result<Vec<Secret>, SecretsError>;
    /// The bytes of every stored (sealed) value.
    fn stored_bytes(&mut self) -> Result<u64, SecretsError>;
    /// The secrets whose recovery window ended by `now` (found in the query, so that the
    /// check every operation makes does not parse every secret).
    fn due_for_deletion(&mut self, now: i64) -> Result<Vec<String>, SecretsError>;
    /// How many secrets there are.
    fn count(&mut self) -> Result<usize, SecretsError>;
    /// Writes a secret's record.
    fn put_secret(&mut self, s: &Secret) -> Result<(), SecretsError>;
    /// Deletes a secret and its versions.
    fn delete_secret(&mut self, arn: &str) -> Result<(), SecretsError>;
    /// Every version of a secret (without its sealed value), newest first.
    fn versions(&mut self, arn: &str) -> Result<Vec<Version>, SecretsError>;
    /// One version's sealed value.
    fn sealed_value(&mut self, arn: &str, version: &str) -> Result<Option<Vec<u8>>, SecretsError>;
    /// Adds a version.
    fn insert_version(
        &mut self,
        arn: &str,
        version: &Version,
        sealed: &[u8],
    ) -> Result<(), SecretsError>;
    /// Replaces a version's stages.
    fn set_stages(
        &mut self,
        arn: &str,
        version: &str,
        stages: &[String],
    ) -> Result<(), SecretsError>;
    /// Records the day a version was last read.
    fn touch_version(&mut self, arn: &str, version: &str, day_ms: i64) -> Result<(), SecretsError>;
    /// Deletes a version.
    fn delete_version(&mut self, arn: &str, version: &str) -> Result<(), SecretsError>;
}

pub(crate) enum SecretsStore {
    Sqlite(Mutex<Connection>),
    Postgres(Pool),
}

fn parse(text: &str) -> Result<Secret, SecretsError> {
    serde_json::from_str(text)
        .map_err(|e| SecretsError::InvalidRequest(format!("a stored secret does not parse: {e}")))
}

fn record(s: &Secret) -> Result<String, SecretsError> {
    serde_json::to_string(s).map_err(|e| SecretsError::InvalidRequest(e.to_string()))
}

fn stages_text(stages: &[String]) -> String {
    serde_json::to_string(stages).unwrap_or_else(|_| "[]".into())
}

impl SecretsStore {
    pub(crate) fn open(path: &Path) -> Result<Self, SecretsError> {
        let db = warden_sqlite::open(
            path,
            &warden_sqlite::Options {
                synchronous: warden_sqlite::Synchronous::Full,
                migrations: MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(|source| SecretsError::Store {
            context: "opening the secrets store",
            source,
        })?;
        drop(db.reader);
        Ok(SecretsStore::Sqlite(Mutex::new(db.writer)))
    }

    /// The store in the PostgreSQL database at `url`, with a pool of `connections`.
    pub(crate) fn open_postgres(url: &str, connections: usize) -> Result<Self, SecretsError> {
        let pool = Pool::open(
            url,
            &warden_postgres::Options {
                connections,
                application_name: "warden-secrets".to_owned(),
            },
            &[TRACK],
        )
        .map_err(shared("opening the secrets store"))?;
        Ok(SecretsStore::Postgres(pool))
    }

    /// Runs `f` in one transaction that no other writer of the store interleaves with.
    /// On PostgreSQL `f` may run more than once (when the database asks for a retry), so
    /// it may only change the store.
    pub(crate) fn write<T>(
        &self,
        context: &'static str,
        mut f: impl FnMut(&mut dyn Tx) -> Result<T, SecretsError>,
    ) -> Result<T, SecretsError> {
        match self {
            SecretsStore::Sqlite(conn) => {
                let mut conn = warden_sqlite::lock(conn);
                warden_sqlite::rollback_abandoned(&conn).map_err(store(context))?;
                let tx = warden_sqlite::immediate(&mut conn).map_err(store(context))?;
                let out = f(&mut SqliteTx(&tx))?;
                tx.commit().map_err(store(context))?;
                Ok(out)
            }
            SecretsStore::Postgres(pool) => pool.transact(PG_STATEMENTS, |remote| {
                remote
                    .run("locking the secrets store", |tx, s| {
                        tx.execute(&s[PgStatement::Lock as usize], &[&SECRETS_LOCK])
                    })
                    .map_err(shared(context))?;
                f(&mut PgTx(remote))
            }),
        }
    }
}

/// A transaction on SQLite.
struct SqliteTx<'a, 'c>(&'a Transaction<'c>);

impl Tx for SqliteTx<'_, '_> {
    fn find(&mut self, name_or_arn: &str) -> Result<Option<Secret>, SecretsError> {
        let text: Option<String> = self
            .0
            .query_row(
                "SELECT record FROM secrets WHERE arn = ?1 OR name = ?1",
                [name_or_arn],
                |r| r.get(0),
            )
            .optional()
            .map_err(store("reading a secret"))?;
        text.as_deref().map(parse).transpose()
    }

    fn all(&mut self) -> Result<Vec<Secret>, SecretsError> {
        let ctx = "listing secrets";
        let mut st = self
            .0
            .prepare("SELECT record FROM secrets ORDER BY created_ms, name")
            .map_err(store(ctx))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(store(ctx))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(parse(&row.map_err(store(ctx))?)?);
        }
        Ok(out)
    }

    fn stored_bytes(&mut self) -> Result<u64, SecretsError> {
        self.0
            .query_row(
                "SELECT coalesce(sum(length(sealed)), 0) FROM versions",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(store("measuring the stored values"))
    }

    fn due_for_deletion(&mut self, now: i64) -> Result<Vec<String>, SecretsError> {
        let ctx = "finding secrets due for deletion";
        let mut st = self
            .0
            .prepare_cached(
                "SELECT arn FROM secrets WHERE json_extract(record, '$.deleted_ms') <= ?1",
            )
            .map_err(store(ctx))?;
        let rows = st.query_map([now], |r| r.get(0)).map_err(store(ctx))?;
        rows.collect::<Result<_, _>>().map_err(store(ctx))
    }

    fn count(&mut self) -> Result<usize, SecretsError> {
        self.0
            .query_row("SELECT count(*) FROM secrets", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(store("counting secrets"))
    }

    fn put_secret(&mut self, s: &Secret) -> Result<(), SecretsError> {
        self.0
            .execute(
                "INSERT INTO secrets (arn, name, created_ms, record) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(arn) DO UPDATE SET record = excluded.record",
                params![s.arn, s.name, s.created_ms, record(s)?],
            )
            .map_err(store("writing a secret"))?;
        Ok(())
    }

    fn delete_secret(&mut self, arn: &str) -> Result<(), SecretsError> {
        self.0
            .execute("DELETE FROM secrets WHERE arn = ?1", [arn])
            .map_err(store("deleting a secret"))?;
        Ok(())
    }

    fn versions(&mut self, arn: &str) -> Result<Vec<Version>, SecretsError> {
        let ctx = "reading versions";
        let mut st = self
            .0
            .prepare(
                "SELECT version_id, created_ms, last_accessed_ms, stages FROM versions \
                 WHERE arn = ?1 ORDER BY created_ms DESC, version_id",
            )
            .map_err(store(ctx))?;
        let rows = st
            .query_map([arn], |r| {
                Ok(Version {
                    id: r.get(0)?,
                    created_ms: r.get(1)?,
                    last_accessed_ms: r.get(2)?,
                    stages: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                })
            })
            .map_err(store(ctx))?;
        rows.collect::<Result<_, _>>().map_err(store(ctx))
    }

    fn sealed_value(&mut self, arn: &str, version: &str) -> Result<Option<Vec<u8>>, SecretsError> {
        self.0
            .query_row(
                "SELECT sealed FROM versions WHERE arn = ?1 AND version_id = ?2",
                params![arn, version],
                |r| r.get(0),
            )
            .optional()
            .map_err(store("reading a secret value"))
    }

    fn insert_version(
        &mut self,
        arn: &str,
        version: &Version,
        sealed: &[u8],
    ) -> Result<(), SecretsError> {
        self.0
            .execute(
                "INSERT INTO versions (arn, version_id, sealed, created_ms, stages) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    arn,
                    version.id,
                    sealed,
                    version.created_ms,
                    stages_text(&version.stages)
                ],
            )
            .map_err(store("writing a version"))?;
        Ok(())
    }

    fn set_stages(
        &mut self,
        arn: &str,
        version: &str,
        stages: &[String],
    ) -> Result<(), SecretsError> {
        self.0
            .execute(
                "UPDATE versions SET stages = ?3 WHERE arn = ?1 AND version_id = ?2",
                params![arn, version, stages_text(stages)],
            )
            .map_err(store("moving a version stage"))?;
        Ok(())
    }

    fn touch_version(&mut self, arn: &str, version: &str, day_ms: i64) -> Result<(), SecretsError> {
        self.0
            .execute(
                "UPDATE versions SET last_accessed_ms = ?3 WHERE arn = ?1 AND version_id = ?2 \
                 AND (last_accessed_ms IS NULL OR last_accessed_ms <> ?3)",
                params![arn, version, day_ms],
            )
            .map_err(store("recording access"))?;
        Ok(())
    }

    fn delete_version(&mut self, arn: &str, version: &str) -> Result<(), SecretsError> {
        self.0
            .execute(
                "DELETE FROM versions WHERE arn = ?1 AND version_id = ?2",
                params![arn, version],
            )
            .map_err(store("pruning a version"))?;
        Ok(())
    }
}

/// The statements of a PostgreSQL transaction, prepared once per connection, in the
/// order of [`PgStatement`].
const PG_STATEMENTS: &[&str] = &[
    "SELECT pg_advisory_xact_lock($1)",
    "SELECT record FROM secrets WHERE arn = $1 OR name = $1",
    "SELECT record FROM secrets ORDER BY created_ms, name",
    "SELECT coalesce(sum(octet_length(sealed)), 0)::BIGINT FROM secret_versions",
    "SELECT arn FROM secrets WHERE (record::jsonb ->> 'deleted_ms')::BIGINT <= $1",
    "SELECT count(*) FROM secrets",
    "INSERT INTO secrets (arn, name, created_ms, record) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (arn) DO UPDATE SET record = EXCLUDED.record",
    "DELETE FROM secrets WHERE arn = $1",
    "SELECT version_id, created_ms, last_accessed_ms, stages FROM secret_versions \
     WHERE arn = $1 ORDER BY created_ms DESC, version_id",
    "SELECT sealed FROM secret_versions WHERE arn = $1 AND version_id = $2",
    "INSERT INTO secret_versions (arn, version_id, sealed, created_ms, stages) \
     VALUES ($1, $2, $3, $4, $5)",
    "UPDATE secret_versions SET stages = $3 WHERE arn = $1 AND version_id = $2",
    "UPDATE secret_versions SET last_accessed_ms = $3 WHERE arn = $1 AND version_id = $2 \
     AND (last_accessed_ms IS NULL OR last_accessed_ms <> $3)",
    "DELETE FROM secret_versions WHERE arn = $1 AND version_id = $2",
];

/// The index of each statement in [`PG_STATEMENTS`].
#[derive(Clone, Copy)]
enum PgStatement {
    Lock,
    Find,
    All,
    StoredBytes,
    DueForDeletion,
    Count,
    PutSecret,
    DeleteSecret,
    Versions,
    SealedValue,
    InsertVersion,
    SetStages,
    TouchVersion,
    DeleteVersion,
}

/// A transaction on PostgreSQL: each call is one step on the connection's thread, with
/// its arguments copied into it.
struct PgTx<'a>(&'a mut Remote);

impl PgTx<'_> {
    /// Runs statement `which` with `params`, returning the rows changed.
    fn execute(
        &mut self,
        context: &'static str,
        which: PgStatement,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
    ) -> Result<u64, SecretsError> {
        self.0
            .run(context, move |tx, s| {
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(&s[which as usize], &refs)
            })
            .map_err(shared(context))
    }

    /// Runs query `which` with `params`, mapping each row with `row`.
    fn query<R: Send + 'static>(
        &mut self,
        context: &'static str,
        which: PgStatement,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
        row: fn(&postgres::Row) -> Result<R, postgres::Error>,
    ) -> Result<Vec<R>, SecretsError> {
        self.0
            .run(context, move |tx, s| {
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.query(&s[which as usize], &refs)?
                    .iter()
                    .map(row)
                    .collect()
            })
            .map_err(shared(context))
    }
}

fn text(row: &postgres::Row) -> Result<String, postgres::Error> {
    row.try_get(0)
}

fn int(row: &postgres::Row) -> Result<i64, postgres::Error> {
    row.try_get(0)
}

impl Tx for PgTx<'_> {
    fn find(&mut self, name_or_arn: &str) -> Result<Option<Secret>, SecretsError> {
        let rows = self.query(
            "reading a secret",
            PgStatement::Find,
            vec![Box::new(name_or_arn.to_owned())],
            text,
        )?;
        rows.first().map(|t| parse(t)).transpose()
    }

    fn all(&mut self) -> Result<Vec<Secret>, SecretsError> {
        self.query("listing secrets", PgStatement::All, Vec::new(), text)?
            .iter()
            .map(|t| parse(t))
            .collect()
    }

    fn stored_bytes(&mut self) -> Result<u64, SecretsError> {
        let n = self.query(
            "measuring the stored values",
            PgStatement::StoredBytes,
            Vec::new(),
            int,
        )?;
        Ok(n.first().copied().unwrap_or(0).max(0) as u64)
    }

    fn due_for_deletion(&mut self, now: i64) -> Result<Vec<String>, SecretsError> {
        self.query(
            "finding secrets due for deletion",
            PgStatement::DueForDeletion,
            vec![Box::new(now)],
            text,
        )
    }

    fn count(&mut self) -> Result<usize, SecretsError> {
        let n = self.query("counting secrets", PgStatement::Count, Vec::new(), int)?;
        Ok(n.first().copied().unwrap_or(0).max(0) as usize)
    }

    fn put_secret(&mut self, s: &Secret) -> Result<(), SecretsError> {
        let text = record(s)?;
        self.execute(
            "writing a secret",
            PgStatement::PutSecret,
            vec![
                Box::new(s.arn.clone()),
                Box::new(s.name.clone()),
                Box::new(s.created_ms),
                Box::new(text),
            ],
        )?;
        Ok(())
    }

    fn delete_secret(&mut self, arn: &str) -> Result<(), SecretsError> {
        self.execute(
            "deleting a secret",
            PgStatement::DeleteSecret,
            vec![Box::new(arn.to_owned())],
        )?;
        Ok(())
    }

    fn versions(&mut self, arn: &str) -> Result<Vec<Version>, SecretsError> {
        self.query(
            "reading versions",
            PgStatement::Versions,
            vec![Box::new(arn.to_owned())],
            |r| {
                Ok(Version {
                    id: r.try_get(0)?,
                    created_ms: r.try_get(1)?,
                    last_accessed_ms: r.try_get(2)?,
                    stages: serde_json::from_str(r.try_get::<_, &str>(3)?).unwrap_or_default(),
                })
            },
        )
    }

    fn sealed_value(&mut self, arn: &str, version: &str) -> Result<Option<Vec<u8>>, SecretsError> {
        let rows = self.query(
            "reading a secret value",
            PgStatement::SealedValue,
            vec![Box::new(arn.to_owned()), Box::new(version.to_owned())],
            |r| r.try_get::<_, Vec<u8>>(0),
        )?;
        Ok(rows.into_iter().next())
    }

    fn insert_version(
        &mut self,
        arn: &str,
        version: &Version,
        sealed: &[u8],
    ) -> Result<(), SecretsError> {
        self.execute(
            "writing a version",
            PgStatement::InsertVersion,
            vec![
                Box::new(arn.to_owned()),
                Box::new(version.id.clone()),
                Box::new(sealed.to_vec()),
                Box::new(version.created_ms),
                Box::new(stages_text(&version.stages)),
            ],
        )?;
        Ok(())
    }

    fn set_stages(
        &mut self,
        arn: &str,
        version: &str,
        stages: &[String],
    ) -> Result<(), SecretsError> {
        self.execute(
            "moving a version stage",
            PgStatement::SetStages,
            vec![
                Box::new(arn.to_owned()),
                Box::new(version.to_owned()),
                Box::new(stages_text(stages)),
            ],
        )?;
        Ok(())
    }

    fn touch_version(&mut self, arn: &str, version: &str, day_ms: i64) -> Result<(), SecretsError> {
        self.execute(
            "recording access",
            PgStatement::TouchVersion,
            vec![
                Box::new(arn.to_owned()),
                Box::new(version.to_owned()),
                Box::new(day_ms),
            ],
        )?;
        Ok(())
    }

    fn delete_version(&mut self, arn: &str, version: &str) -> Result<(), SecretsError> {
        self.execute(
            "pruning a version",
            PgStatement::DeleteVersion,
            vec![Box::new(arn.to_owned()), Box::new(version.to_owned())],
        )?;
        Ok(())
    }
}

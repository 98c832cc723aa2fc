//! [`IdentityStore`] in PostgreSQL, shared by several Warden nodes.
//!
//! One table per kind of entity, with the embedded store's rules (see
//! [`crate::SqliteIdentityStore`]) kept the same way:
//!
//! - **Names unique without regard to case.** SQLite's `NOCASE` folds ASCII letters only;
//!   here each user, role, inline policy and customer-managed policy name is stored as
//!   given beside a key column holding it with ASCII letters lowercased, and uniqueness,
//!   look-ups and ordering use the key. Comparisons the embedded store makes exactly (an
//!   access key's user name, ARNs, version ids) are exact here too.
//! - **One writer at a time.** Every write is one transaction whose first statement
//!   increases the generation in a one-row table. That row lock serialises writes across
//!   every node as SQLite's single writer does, so each write's checks (existence, the
//!   refusals to delete what is still in use, the quotas) see every write committed before
//!   it; and a write that two nodes race on (the same user name) is decided by the unique
//!   key, once. A refused write rolls back, generation included.
//! - **Consistent, tagged snapshots.** [`IdentityStore::load`] reads everything in one
//!   read-only `REPEATABLE READ` transaction, starting with the generation, so a snapshot
//!   holds exactly the writes up to the generation it reports.
//!
//! Secrets reach the store sealed under the master key, as they do in SQLite.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Row, Statement};
use warden_postgres::{AsPostgres, Conn, Migration, Options, Pool, Track};

use crate::error::IdentityError;
use crate::shared_sessions::{SharedSessions, StoredSession};
use crate::store::{
    no_policy, no_role, no_user, no_version, tags_from_json, tags_to_json, Dump, Holder,
    IdentityStore, InlinePolicy, KeyStatus, KeyUsage, ManagedPolicy, PolicyVersion, Reseal, Role,
    StoredKey, Tags, User,
};

/// The schema of the `identity` track. Append only.
static MIGRATIONS: [Migration; 2] = [
    Migration::additive(
        r#"
CREATE TABLE identity_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO identity_generation (id, generation) VALUES (1, 0);

-- `*_key` columns hold a name with ASCII letters lowercased: names are unique ignoring case.
CREATE TABLE identity_users (
    name_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    arn TEXT NOT NULL,
    path TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE identity_access_keys (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    user_key TEXT NOT NULL REFERENCES identity_users (name_key),
    status TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    -- AES-256-GCM under the master key, the key id as associated data.
    sealed_secret BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    last_used_service TEXT,
    last_used_region TEXT
);
CREATE INDEX identity_access_keys_by_user ON identity_access_keys (user_name);
CREATE INDEX identity_access_keys_by_user_key ON identity_access_keys (user_key);

CREATE TABLE identity_roles (
    name_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    arn TEXT NOT NULL,
    path TEXT NOT NULL,
    trust_policy TEXT NOT NULL,
    description TEXT,
    max_session_duration_s BIGINT NOT NULL,
    tags TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE identity_inline_policies (
    holder_kind TEXT NOT NULL CHECK (holder_kind IN ('user', 'role')),
    holder_key TEXT NOT NULL,
    holder TEXT NOT NULL,
    name_key TEXT NOT NULL,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (holder_kind, holder_key, name_key)
);

CREATE TABLE identity_managed_policies (
    arn TEXT PRIMARY KEY,
    name_key TEXT NOT NULL,
    name TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    description TEXT,
    created_ms BIGINT NOT NULL,
    aws_managed BOOLEAN NOT NULL,
    default_version TEXT NOT NULL,
    -- The number of the next version to create: IAM never reuses a version id.
    next_version BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
-- AWS-managed policies live in AWS's namespace: their names may repeat a customer's.
CREATE UNIQUE INDEX identity_customer_policy_names ON identity_managed_policies (name_key)
    WHERE NOT aws_managed;

CREATE TABLE identity_policy_versions (
    policy_arn TEXT NOT NULL REFERENCES identity_managed_policies (arn),
    version_id TEXT NOT NULL,
    document TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (policy_arn, version_id)
);

CREATE TABLE identity_attachments (
    holder_kind TEXT NOT NULL CHECK (holder_kind IN ('user', 'role')),
    holder_key TEXT NOT NULL,
    holder TEXT NOT NULL,
    policy_arn TEXT NOT NULL REFERENCES identity_managed_policies (arn),
    PRIMARY KEY (holder_kind, holder_key, policy_arn)
);
CREATE INDEX identity_attachments_by_policy ON identity_attachments (policy_arn);
"#,
    ),
    // `AssumeRole` sessions, shared by the nodes (see `crate::shared_sessions`).
    Migration::additive(
        r#"
CREATE TABLE identity_sessions (
    seq BIGSERIAL PRIMARY KEY,
    access_key_id TEXT COLLATE "C" NOT NULL UNIQUE,
    role_arn TEXT COLLATE "C" NOT NULL,
    expires_ms BIGINT NOT NULL,
    -- The session's record, AES-256-GCM under the master key, the access key id as
    -- associated data.
    sealed BYTEA NOT NULL
);
CREATE INDEX identity_sessions_by_expiry ON identity_sessions (expires_ms);
CREATE INDEX identity_sessions_by_role ON identity_sessions (role_arn);
"#,
    ),
];

const TRACK: Track = Track {
    name: "identity",
    migrations: &MIGRATIONS,
};

/// How many times a master key rotation reads again when writes keep changing what it read.
const ATTEMPTS: u32 = 16;

// ---- statements -------------------------------------------------------------------------

const BUMP: &str =
    "UPDATE identity_generation SET generation = generation + 1 WHERE id = 1 RETURNING generation";
const LOCK_GENERATION: &str = "SELECT generation FROM identity_generation WHERE id = 1 FOR UPDATE";
const GENERATION: &str = "SELECT generation FROM identity_generation WHERE id = 1";

const LOAD_USERS: &str = r#"SELECT name, id, arn, path, tags, created_ms FROM identity_users
    ORDER BY name_key COLLATE "C""#;
const LOAD_KEYS: &str = r#"SELECT id, user_name, status, sealed_secret, created_ms, last_used_ms,
    last_used_service, last_used_region FROM identity_access_keys
    ORDER BY created_ms, id COLLATE "C""#;
const LOAD_ROLES: &str = r#"SELECT name, id, arn, path, trust_policy, description,
    max_session_duration_s, tags, created_ms FROM identity_roles ORDER BY name_key COLLATE "C""#;
const LOAD_INLINE: &str = r#"SELECT holder_kind, holder, name, document
    FROM identity_inline_policies
    ORDER BY holder_kind COLLATE "C", holder_key COLLATE "C", name_key COLLATE "C""#;
const LOAD_POLICIES: &str = r#"SELECT p.name, p.id, p.arn, p.path, v.document, p.description,
    p.created_ms, p.default_version, p.updated_ms
    FROM identity_managed_policies p JOIN identity_policy_versions v
    ON v.policy_arn = p.arn AND v.version_id = p.default_version
    ORDER BY p.name_key COLLATE "C", p.arn COLLATE "C""#;
const LOAD_VERSIONS: &str = r#"SELECT policy_arn, version_id, document, created_ms
    FROM identity_policy_versions
    ORDER BY policy_arn COLLATE "C", length(version_id), version_id COLLATE "C""#;
const LOAD_ATTACHMENTS: &str = r#"SELECT holder_kind, holder, policy_arn FROM identity_attachments
    ORDER BY holder_kind COLLATE "C", holder_key COLLATE "C", policy_arn COLLATE "C""#;

const USER_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM identity_users WHERE name_key = $1)";
const ROLE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM identity_roles WHERE name_key = $1)";
const INSERT_USER: &str = "INSERT INTO identity_users (name_key, name, id, arn, path, tags,
    created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const INSERT_INLINE: &str = "INSERT INTO identity_inline_policies (holder_kind, holder_key,
    holder, name_key, name, document) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (holder_kind, holder_key, name_key) DO UPDATE SET document = EXCLUDED.document";
const INSERT_KEY: &str = "INSERT INTO identity_access_keys (id, user_name, user_key, status,
    sealed_secret, created_ms, last_used_ms, last_used_service, last_used_region)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// What stops a user's deletion, in the order the embedded store checks it (the key check
/// compares the user name exactly, as the embedded store's does).
const USER_DEPENDENTS: &str = "SELECT
    EXISTS (SELECT 1 FROM identity_users WHERE name_key = $1),
    EXISTS (SELECT 1 FROM identity_access_keys WHERE user_name = $2),
    EXISTS (SELECT 1 FROM identity_inline_policies WHERE holder_kind = 'user' AND holder_key = $1),
    EXISTS (SELECT 1 FROM identity_attachments WHERE holder_kind = 'user' AND holder_key = $1)";
const ROLE_DEPENDENTS: &str = "SELECT
    EXISTS (SELECT 1 FROM identity_roles WHERE name_key = $1),
    FALSE,
    EXISTS (SELECT 1 FROM identity_inline_policies WHERE holder_kind = 'role' AND holder_key = $1),
    EXISTS (SELECT 1 FROM identity_attachments WHERE holder_kind = 'role' AND holder_key = $1)";
const DELETE_USER: &str = "DELETE FROM identity_users WHERE name_key = $1";
const SET_USER_TAGS: &str = "UPDATE identity_users SET tags = $2 WHERE name_key = $1";
const KEY_QUOTA: &str = "SELECT
    EXISTS (SELECT 1 FROM identity_users WHERE name_key = $1),
    (SELECT count(*) FROM identity_access_keys WHERE user_name = $2)";
const SET_KEY_STATUS: &str =
    "UPDATE identity_access_keys SET status = $3 WHERE id = $1 AND user_name = $2";
const DELETE_KEY: &str = "DELETE FROM identity_access_keys WHERE id = $1 AND user_name = $2";
const INSERT_ROLE: &str = "INSERT INTO identity_roles (name_key, name, id, arn, path,
    trust_policy, description, max_session_duration_s, tags, created_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const DELETE_ROLE: &str = "DELETE FROM identity_roles WHERE name_key = $1";
const SET_TRUST: &str = "UPDATE identity_roles SET trust_policy = $2 WHERE name_key = $1";
const SET_ROLE_TAGS: &str = "UPDATE identity_roles SET tags = $2 WHERE name_key = $1";
const UPDATE_ROLE: &str = "UPDATE identity_roles
    SET description = CASE WHEN $2 THEN $3 ELSE description END,
        max_session_duration_s = COALESCE($4, max_session_duration_s)
    WHERE name_key = $1";
const DELETE_INLINE: &str = "DELETE FROM identity_inline_policies
    WHERE holder_kind = $1 AND holder_key = $2 AND name_key = $3";
const INSERT_POLICY: &str = "INSERT INTO identity_managed_policies (arn, name_key, name, id, path,
    description, created_ms, aws_managed, default_version, next_version, updated_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8, 2, $9)";
const UPSERT_AWS_POLICY: &str = "INSERT INTO identity_managed_policies (arn, name_key, name, id,
    path, description, created_ms, aws_managed, default_version, next_version, updated_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, 1, $9)
    ON CONFLICT (arn) DO UPDATE SET description = EXCLUDED.description,
        default_version = EXCLUDED.default_version, updated_ms = EXCLUDED.updated_ms";
const INSERT_VERSION: &str = "INSERT INTO identity_policy_versions (policy_arn, version_id,
    document, created_ms) VALUES ($1, $2, $3, $4)";
const POLICY_DEPENDENTS: &str = "SELECT
    EXISTS (SELECT 1 FROM identity_managed_policies WHERE arn = $1),
    EXISTS (SELECT 1 FROM identity_attachments WHERE policy_arn = $1),
    (SELECT count(*) FROM identity_policy_versions WHERE policy_arn = $1)";
const DELETE_VERSIONS_OF: &str = "DELETE FROM identity_policy_versions WHERE policy_arn = $1";
const DELETE_POLICY: &str = "DELETE FROM identity_managed_policies WHERE arn = $1";
const NEXT_VERSION: &str = "SELECT next_version,
    (SELECT count(*) FROM identity_policy_versions WHERE policy_arn = $1)
    FROM identity_managed_policies WHERE arn = $1";
const ADVANCE_VERSION: &str = "UPDATE identity_managed_policies SET next_version = $2,
    updated_ms = $3, default_version = CASE WHEN $4 THEN $5 ELSE default_version END
    WHERE arn = $1";
const VERSION_EXISTS: &str = "SELECT
    EXISTS (SELECT 1 FROM identity_managed_policies WHERE arn = $1),
    EXISTS (SELECT 1 FROM identity_policy_versions WHERE policy_arn = $1 AND version_id = $2)";
const SET_DEFAULT: &str = "UPDATE identity_managed_policies SET default_version = $2,
    updated_ms = $3 WHERE arn = $1";
const DEFAULT_VERSION: &str =
    "SELECT default_version FROM identity_managed_policies WHERE arn = $1";
const DELETE_VERSION: &str =
    "DELETE FROM identity_policy_versions WHERE policy_arn = $1 AND version_id = $2";
const SEALED: &str =
    r#"SELECT id, sealed_secret FROM identity_access_keys ORDER BY id COLLATE "C""#;
const RESEAL: &str = "UPDATE identity_access_keys k SET sealed_secret = r.sealed
    FROM unnest($1::text[], $2::bytea[]) AS r(id, sealed) WHERE k.id = r.id";
const RECORD_USE: &str = "UPDATE identity_access_keys k SET last_used_ms = u.at_ms,
    last_used_service = u.service, last_used_region = u.region
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])
        AS u(id, at_ms, service, region)
    WHERE k.id = u.id";
const USER_ATTACH_CHECK: &str = "SELECT
    EXISTS (SELECT 1 FROM identity_users WHERE name_key = $1),
    EXISTS (SELECT 1 FROM identity_managed_policies WHERE arn = $2),
    (SELECT count(*) FROM identity_attachments
        WHERE holder_kind = 'user' AND holder_key = $1 AND policy_arn <> $2)";
const ROLE_ATTACH_CHECK: &str = "SELECT
    EXISTS (SELECT 1 FROM identity_roles WHERE name_key = $1),
    EXISTS (SELECT 1 FROM identity_managed_policies WHERE arn = $2),
    (SELECT count(*) FROM identity_attachments
        WHERE holder_kind = 'role' AND holder_key = $1 AND policy_arn <> $2)";
const ATTACH: &str = "INSERT INTO identity_attachments (holder_kind, holder_key, holder,
    policy_arn) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
const DETACH: &str = "DELETE FROM identity_attachments
    WHERE holder_kind = $1 AND holder_key = $2 AND policy_arn = $3";

/// Every statement, prepared once per connection.
const STATEMENTS: &[&str] = &[
    BUMP,
    LOCK_GENERATION,
    GENERATION,
    LOAD_USERS,
    LOAD_KEYS,
    LOAD_ROLES,
    LOAD_INLINE,
    LOAD_POLICIES,
    LOAD_VERSIONS,
    LOAD_ATTACHMENTS,
    USER_EXISTS,
    ROLE_EXISTS,
    INSERT_USER,
    INSERT_INLINE,
    INSERT_KEY,
    USER_DEPENDENTS,
    ROLE_DEPENDENTS,
    DELETE_USER,
    SET_USER_TAGS,
    KEY_QUOTA,
    SET_KEY_STATUS,
    DELETE_KEY,
    INSERT_ROLE,
    DELETE_ROLE,
    SET_TRUST,
    SET_ROLE_TAGS,
    UPDATE_ROLE,
    DELETE_INLINE,
    INSERT_POLICY,
    UPSERT_AWS_POLICY,
    INSERT_VERSION,
    POLICY_DEPENDENTS,
    DELETE_VERSIONS_OF,
    DELETE_POLICY,
    NEXT_VERSION,
    ADVANCE_VERSION,
    VERSION_EXISTS,
    SET_DEFAULT,
    DEFAULT_VERSION,
    DELETE_VERSION,
    SEALED,
    RESEAL,
    RECORD_USE,
    USER_ATTACH_CHECK,
    ROLE_ATTACH_CHECK,
    ATTACH,
    DETACH,
];

// ---- plumbing ---------------------------------------------------------------------------

/// Maps a PostgreSQL error to [`IdentityError::Database`], keeping it as an opaque source
/// (from which [`AsPostgres`] finds it again, so that retryable failures are retried).
fn db(context: &'static str) -> impl Fn(postgres::Error) -> IdentityError {
    move |e| IdentityError::Database {
        context,
        source: Box::new(e),
    }
}

impl From<warden_postgres::Error> for IdentityError {
    fn from(e: warden_postgres::Error) -> Self {
        IdentityError::Database {
            context: "talking to PostgreSQL",
            source: Box::new(e),
        }
    }
}

impl From<postgres::Error> for IdentityError {
    fn from(e: postgres::Error) -> Self {
        db("running an identity transaction")(e)
    }
}

impl AsPostgres for IdentityError {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        match self {
            IdentityError::Database { source, .. } => source.downcast_ref::<postgres::Error>(),
            _ => None,
        }
    }
}

/// A name as the unique keys compare it: ASCII letters lowercased, as SQLite's `NOCASE`.
fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A stored generation as the trait's number (it starts at 0 and only grows).
fn generation_of(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// Every statement of the store on `conn`, prepared there once.
fn prepared(conn: &mut Conn) -> Result<HashMap<&'static str, Statement>, IdentityError> {
    STATEMENTS
        .iter()
        .map(|sql| {
            Ok((
                *sql,
                conn.prepare(sql).map_err(db("preparing a statement"))?,
            ))
        })
        .collect()
}

/// A transaction with the store's prepared statements.
struct Tx<'a, 'c> {
    tx: &'a mut postgres::Transaction<'c>,
    statements: &'a HashMap<&'static str, Statement>,
}

/// Runs `$method` with the prepared form of `$sql` (or `$sql` itself, unprepared, should
/// a statement be missing from [`STATEMENTS`]).
macro_rules! run {
    ($self:ident, $method:ident, $sql:expr, $params:expr) => {
        match $self.statements.get($sql) {
            Some(statement) => $self.tx.$method(statement, $params),
            None => $self.tx.$method($sql, $params),
        }
    };
}

impl Tx<'_, '_> {
    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        run!(self, execute, sql, params)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        run!(self, query, sql, params)
    }

    fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        run!(self, query_one, sql, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        run!(self, query_opt, sql, params)
    }
}

fn already_exists_or(
    context: &'static str,
    message: impl FnOnce() -> String,
) -> impl FnOnce(postgres::Error) -> IdentityError {
    move |e| {
        if warden_postgres::is_unique_violation(&e) {
            IdentityError::EntityAlreadyExists(message())
        } else {
            db(context)(e)
        }
    }
}

fn no_key(key_id: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!(
        "The Access Key with id `{key_id}` cannot be found."
    ))
}

fn policy_not_found(arn: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("Policy `{arn}` was not found."))
}

fn insert_inline(tx: &mut Tx<'_, '_>, p: &InlinePolicy) -> Result<(), IdentityError> {
    tx.execute(
        INSERT_INLINE,
        &[
            &p.holder.kind(),
            &fold(p.holder.name()),
            &p.holder.name(),
            &fold(&p.name),
            &p.name,
            &p.document,
        ],
    )
    .map_err(db("writing an inline policy"))?;
    Ok(())
}

fn insert_key(tx: &mut Tx<'_, '_>, k: &StoredKey) -> Result<(), IdentityError> {
    tx.execute(
        INSERT_KEY,
        &[
            &k.id,
            &k.user_name,
            &fold(&k.user_name),
            &k.status.as_str(),
            &k.sealed_secret,
            &k.created_ms,
            &k.last_used_ms,
            &k.last_used_service,
            &k.last_used_region,
        ],
    )
    .map_err(db("writing an access key"))?;
    Ok(())
}

fn insert_version(
    tx: &mut Tx<'_, '_>,
    arn: &str,
    version_id: &str,
    document: &str,
    created_ms: i64,
) -> Result<(), IdentityError> {
    tx.execute(INSERT_VERSION, &[&arn, &version_id, &document, &created_ms])
        .map_err(db("writing a policy version"))?;
    Ok(())
}

fn require_holder(tx: &mut Tx<'_, '_>, holder: &Holder) -> Result<(), IdentityError> {
    let sql = match holder {
        Holder::User(_) => USER_EXISTS,
        Holder::Role(_) => ROLE_EXISTS,
    };
    let found: bool = tx
        .query_one(sql, &[&fold(holder.name())])
        .map_err(db("checking an entity"))?
        .get(0);
    match (found, holder) {
        (true, _) => Ok(()),
        (false, Holder::User(n)) => Err(no_user(n)),
        (false, Holder::Role(n)) => Err(no_role(n)),
    }
}

/// The embedded store's refusals to delete a user or role still in use, in its order.
fn refuse_if_in_use(tx: &mut Tx<'_, '_>, holder: &Holder) -> Result<(), IdentityError> {
    let row = match holder {
        Holder::User(n) => tx.query_one(USER_DEPENDENTS, &[&fold(n), n]),
        Holder::Role(n) => tx.query_one(ROLE_DEPENDENTS, &[&fold(n)]),
    }
    .map_err(db("checking an entity"))?;
    let (exists, keys, inline, attached): (bool, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if !exists {
        return Err(match holder {
            Holder::User(n) => no_user(n),
            Holder::Role(n) => no_role(n),
        });
    }
    if keys {
        return Err(IdentityError::DeleteConflict(
            "Cannot delete entity, must delete access keys first.".into(),
        ));
    }
    if inline {
        return Err(IdentityError::DeleteConflict(
            "Cannot delete entity, must delete policies first.".into(),
        ));
    }
    if attached {
        return Err(IdentityError::DeleteConflict(
            "Cannot delete entity, must detach all policies first.".into(),
        ));
    }
    Ok(())
}

fn max_as_i64(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

// ---- the store --------------------------------------------------------------------------

/// Identity in PostgreSQL (see the module docs). Cheap to share: the pool is.
pub struct PostgresIdentityStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresIdentityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresIdentityStore")
            .field("target", &self.pool.target())
            .finish_non_exhaustive()
    }
}

impl PostgresIdentityStore {
    /// Connects to the database at `url` with `connections` connections and brings the
    /// `identity` schema up to date.
    pub fn open(url: &str, connections: usize) -> Result<Self, IdentityError> {
        let pool = Pool::open(
            url,
            &Options {
                connections,
                ..Options::default()
            },
            &[TRACK],
        )?;
        Ok(PostgresIdentityStore { pool })
    }

    /// Runs `f` as one write: a transaction that first increases the generation (which
    /// also queues it behind every other write) and commits only if `f` succeeds.
    fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Tx<'_, '_>) -> Result<T, IdentityError> + Send + 'static,
    ) -> Result<T, IdentityError> {
        self.pool.run(move |conn| {
            let statements = prepared(conn)?;
            conn.transaction(|tx| {
                let mut tx = Tx {
                    tx,
                    statements: &statements,
                };
                tx.execute(BUMP, &[])
                    .map_err(db("increasing the identity generation"))?;
                f(&mut tx)
            })
        })
    }
}

impl IdentityStore for PostgresIdentityStore {
    fn load(&self) -> Result<Dump, IdentityError> {
        self.pool.run(|conn| {
            let statements = prepared(conn)?;
            let ctx = db("loading identities");
            let mut snapshot = conn
                .client()
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(&ctx)?;
            let mut tx = Tx {
                tx: &mut snapshot,
                statements: &statements,
            };
            // The first read fixes the snapshot every later read of this transaction sees.
            let generation: i64 = tx.query_one(GENERATION, &[]).map_err(&ctx)?.get(0);
            let mut dump = Dump {
                generation: generation_of(generation),
                ..Dump::default()
            };
            for r in tx.query(LOAD_USERS, &[]).map_err(&ctx)? {
                dump.users.push(User {
                    name: r.get(0),
                    id: r.get(1),
                    arn: r.get(2),
                    path: r.get(3),
                    tags: tags_from_json(r.get(4)),
                    created_ms: r.get(5),
                });
            }
            for r in tx.query(LOAD_KEYS, &[]).map_err(&ctx)? {
                dump.keys.push(StoredKey {
                    id: r.get(0),
                    user_name: r.get(1),
                    // The CHECK constraint admits only the two spellings.
                    status: KeyStatus::parse(r.get(2)).unwrap_or(KeyStatus::Inactive),
                    sealed_secret: r.get(3),
                    created_ms: r.get(4),
                    last_used_ms: r.get(5),
                    last_used_service: r.get(6),
                    last_used_region: r.get(7),
                });
            }
            for r in tx.query(LOAD_ROLES, &[]).map_err(&ctx)? {
                let max: i64 = r.get(6);
                dump.roles.push(Role {
                    name: r.get(0),
                    id: r.get(1),
                    arn: r.get(2),
                    path: r.get(3),
                    trust_policy: r.get(4),
                    description: r.get(5),
                    // Written from a u32.
                    max_session_duration_s: u32::try_from(max).unwrap_or(u32::MAX),
                    tags: tags_from_json(r.get(7)),
                    created_ms: r.get(8),
                });
            }
            for r in tx.query(LOAD_INLINE, &[]).map_err(&ctx)? {
                let kind: &str = r.get(0);
                if let Some(holder) = Holder::from_parts(kind, r.get(1)) {
                    dump.inline.push(InlinePolicy {
                        holder,
                        name: r.get(2),
                        document: r.get(3),
                    });
                }
            }
            for r in tx.query(LOAD_POLICIES, &[]).map_err(&ctx)? {
                dump.policies.push(ManagedPolicy {
                    name: r.get(0),
                    id: r.get(1),
                    arn: r.get(2),
                    path: r.get(3),
                    document: r.get(4),
                    description: r.get(5),
                    created_ms: r.get(6),
                    default_version: r.get(7),
                    updated_ms: r.get(8),
                });
            }
            for r in tx.query(LOAD_VERSIONS, &[]).map_err(&ctx)? {
                dump.versions.push(PolicyVersion {
                    policy_arn: r.get(0),
                    version_id: r.get(1),
                    document: r.get(2),
                    created_ms: r.get(3),
                });
            }
            for r in tx.query(LOAD_ATTACHMENTS, &[]).map_err(&ctx)? {
                let kind: &str = r.get(0);
                if let Some(holder) = Holder::from_parts(kind, r.get(1)) {
                    dump.attachments.push((holder, r.get(2)));
                }
            }
            snapshot.commit().map_err(&ctx)?;
            Ok(dump)
        })
    }

    fn generation(&self) -> Result<u64, IdentityError> {
        self.pool.run(|conn| {
            let ctx = db("reading the identity generation");
            let statement = conn.prepare(GENERATION).map_err(&ctx)?;
            let row = conn.client().query_one(&statement, &[]).map_err(&ctx)?;
            Ok(generation_of(row.get(0)))
        })
    }

    fn reseal_secrets(&self, reseal: Reseal<'_>) -> Result<usize, IdentityError> {
        // `reseal` cannot go to a connection's thread, so the secrets are resealed here
        // and written only if the keys are still those that were read: otherwise (a key
        // made or deleted meanwhile) everything is read and resealed again.
        let ctx = "resealing secrets";
        for _ in 0..ATTEMPTS {
            let current: Vec<(String, Vec<u8>)> = self.pool.run(move |conn| {
                let statement = conn.prepare(SEALED).map_err(db(ctx))?;
                Ok::<_, IdentityError>(
                    conn.client()
                        .query(&statement, &[])
                        .map_err(db(ctx))?
                        .into_iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect(),
                )
            })?;
            let mut resealed = Vec::with_capacity(current.len());
            for (id, sealed) in &current {
                resealed.push(reseal(id, sealed)?);
            }
            let written = self.pool.run(move |conn| {
                let statements = prepared(conn)?;
                conn.transaction(|tx| {
                    let mut tx = Tx {
                        tx,
                        statements: &statements,
                    };
                    // Queue behind other writes without counting as one yet.
                    tx.query_one(LOCK_GENERATION, &[]).map_err(db(ctx))?;
                    let now: Vec<(String, Vec<u8>)> = tx
                        .query(SEALED, &[])
                        .map_err(db(ctx))?
                        .into_iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect();
                    if now != current {
                        return Ok(None);
                    }
                    tx.execute(BUMP, &[])
                        .map_err(db("increasing the identity generation"))?;
                    let ids: Vec<&str> = current.iter().map(|(id, _)| id.as_str()).collect();
                    tx.execute(RESEAL, &[&ids, &resealed]).map_err(db(ctx))?;
                    Ok::<_, IdentityError>(Some(current.len()))
                })
            })?;
            if let Some(n) = written {
                return Ok(n);
            }
        }
        Err(IdentityError::Database {
            context: ctx,
            source: "access keys kept changing while they were being resealed".into(),
        })
    }

    fn create_user(
        &self,
        user: &User,
        inline: &[InlinePolicy],
        key: Option<&StoredKey>,
    ) -> Result<(), IdentityError> {
        let (user, inline, key) = (user.clone(), inline.to_vec(), key.cloned());
        self.write(move |tx| {
            tx.execute(
                INSERT_USER,
                &[
                    &fold(&user.name),
                    &user.name,
                    &user.id,
                    &user.arn,
                    &user.path,
                    &tags_to_json(&user.tags),
                    &user.created_ms,
                ],
            )
            .map_err(already_exists_or("creating a user", || {
                format!("User with name `{}` already exists.", user.name)
            }))?;
            for p in &inline {
                insert_inline(tx, p)?;
            }
            if let Some(k) = &key {
                insert_key(tx, k)?;
            }
            Ok(())
        })
    }

    fn delete_user(&self, name: &str) -> Result<(), IdentityError> {
        let name = name.to_owned();
        self.write(move |tx| {
            refuse_if_in_use(tx, &Holder::User(name.clone()))?;
            tx.execute(DELETE_USER, &[&fold(&name)])
                .map_err(db("deleting a user"))?;
            Ok(())
        })
    }

    fn set_user_tags(&self, name: &str, tags: &Tags) -> Result<(), IdentityError> {
        let (name, tags) = (name.to_owned(), tags_to_json(tags));
        self.write(move |tx| {
            let n = tx
                .execute(SET_USER_TAGS, &[&fold(&name), &tags])
                .map_err(db("tagging a user"))?;
            if n == 0 {
                return Err(no_user(&name));
            }
            Ok(())
        })
    }

    fn create_access_key(&self, key: &StoredKey, max_per_user: usize) -> Result<(), IdentityError> {
        let key = key.clone();
        self.write(move |tx| {
            let row = tx
                .query_one(KEY_QUOTA, &[&fold(&key.user_name), &key.user_name])
                .map_err(db("counting entities"))?;
            let (user_exists, n): (bool, i64) = (row.get(0), row.get(1));
            if !user_exists {
                return Err(no_user(&key.user_name));
            }
            if n >= max_as_i64(max_per_user) {
                return Err(IdentityError::LimitExceeded(format!(
                    "Cannot exceed quota for AccessKeysPerUser: {max_per_user}"
                )));
            }
            insert_key(tx, &key)
        })
    }

    fn set_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IdentityError> {
        let (user, key_id) = (user.to_owned(), key_id.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(SET_KEY_STATUS, &[&key_id, &user, &status.as_str()])
                .map_err(db("updating an access key"))?;
            if n == 0 {
                return Err(no_key(&key_id));
            }
            Ok(())
        })
    }

    fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IdentityError> {
        let (user, key_id) = (user.to_owned(), key_id.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(DELETE_KEY, &[&key_id, &user])
                .map_err(db("deleting an access key"))?;
            if n == 0 {
                return Err(no_key(&key_id));
            }
            Ok(())
        })
    }

    fn create_role(&self, role: &Role) -> Result<(), IdentityError> {
        let role = role.clone();
        self.write(move |tx| {
            tx.execute(
                INSERT_ROLE,
                &[
                    &fold(&role.name),
                    &role.name,
                    &role.id,
                    &role.arn,
                    &role.path,
                    &role.trust_policy,
                    &role.description,
                    &i64::from(role.max_session_duration_s),
                    &tags_to_json(&role.tags),
                    &role.created_ms,
                ],
            )
            .map_err(already_exists_or("creating a role", || {
                format!("Role with name `{}` already exists.", role.name)
            }))?;
            Ok(())
        })
    }

    fn delete_role(&self, name: &str) -> Result<(), IdentityError> {
        let name = name.to_owned();
        self.write(move |tx| {
            refuse_if_in_use(tx, &Holder::Role(name.clone()))?;
            tx.execute(DELETE_ROLE, &[&fold(&name)])
                .map_err(db("deleting a role"))?;
            Ok(())
        })
    }

    fn set_role_trust_policy(&self, name: &str, document: &str) -> Result<(), IdentityError> {
        let (name, document) = (name.to_owned(), document.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(SET_TRUST, &[&fold(&name), &document])
                .map_err(db("updating a trust policy"))?;
            if n == 0 {
                return Err(no_role(&name));
            }
            Ok(())
        })
    }

    fn set_role_tags(&self, name: &str, tags: &Tags) -> Result<(), IdentityError> {
        let (name, tags) = (name.to_owned(), tags_to_json(tags));
        self.write(move |tx| {
            let n = tx
                .execute(SET_ROLE_TAGS, &[&fold(&name), &tags])
                .map_err(db("tagging a role"))?;
            if n == 0 {
                return Err(no_role(&name));
            }
            Ok(())
        })
    }

    fn put_inline_policy(&self, policy: &InlinePolicy) -> Result<(), IdentityError> {
        let policy = policy.clone();
        self.write(move |tx| {
            require_holder(tx, &policy.holder)?;
            insert_inline(tx, &policy)
        })
    }

    fn delete_inline_policy(&self, holder: &Holder, name: &str) -> Result<(), IdentityError> {
        let (holder, name) = (holder.clone(), name.to_owned());
        self.write(move |tx| {
            require_holder(tx, &holder)?;
            let n = tx
                .execute(
                    DELETE_INLINE,
                    &[&holder.kind(), &fold(holder.name()), &fold(&name)],
                )
                .map_err(db("deleting an inline policy"))?;
            if n == 0 {
                return Err(IdentityError::NoSuchEntity(format!(
                    "The {} policy with name `{name}` cannot be found.",
                    holder.kind()
                )));
            }
            Ok(())
        })
    }

    fn update_role(
        &self,
        name: &str,
        description: Option<Option<&str>>,
        max_session_duration_s: Option<u32>,
    ) -> Result<(), IdentityError> {
        let name = name.to_owned();
        let set_description = description.is_some();
        let description = description.flatten().map(str::to_owned);
        let max = max_session_duration_s.map(i64::from);
        self.write(move |tx| {
            require_holder(tx, &Holder::Role(name.clone()))?;
            if set_description || max.is_some() {
                tx.execute(
                    UPDATE_ROLE,
                    &[&fold(&name), &set_description, &description, &max],
                )
                .map_err(db("updating a role"))?;
            }
            Ok(())
        })
    }

    fn create_managed_policy(&self, p: &ManagedPolicy) -> Result<(), IdentityError> {
        let p = p.clone();
        self.write(move |tx| {
            tx.execute(
                INSERT_POLICY,
                &[
                    &p.arn,
                    &fold(&p.name),
                    &p.name,
                    &p.id,
                    &p.path,
                    &p.description,
                    &p.created_ms,
                    &p.default_version,
                    &p.updated_ms,
                ],
            )
            .map_err(already_exists_or("creating a managed policy", || {
                format!(
                    "A policy called `{}` already exists. Duplicate names are not allowed.",
                    p.name
                )
            }))?;
            insert_version(tx, &p.arn, &p.default_version, &p.document, p.created_ms)
        })
    }

    fn delete_managed_policy(&self, arn: &str) -> Result<(), IdentityError> {
        let arn = arn.to_owned();
        self.write(move |tx| {
            let row = tx
                .query_one(POLICY_DEPENDENTS, &[&arn])
                .map_err(db("checking an entity"))?;
            let (exists, attached, versions): (bool, bool, i64) =
                (row.get(0), row.get(1), row.get(2));
            if !exists {
                return Err(policy_not_found(&arn));
            }
            if attached {
                return Err(IdentityError::DeleteConflict(
                    "Cannot delete a policy attached to entities.".into(),
                ));
            }
            if versions > 1 {
                return Err(IdentityError::DeleteConflict(
                    "This policy has more than one version. Before you delete a policy, you must \
                     delete the policy's versions. The default version is deleted with the policy."
                        .into(),
                ));
            }
            tx.execute(DELETE_VERSIONS_OF, &[&arn])
                .map_err(db("deleting a managed policy"))?;
            tx.execute(DELETE_POLICY, &[&arn])
                .map_err(db("deleting a managed policy"))?;
            Ok(())
        })
    }

    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        created_ms: i64,
        set_default: bool,
        max: usize,
    ) -> Result<String, IdentityError> {
        let (arn, document) = (arn.to_owned(), document.to_owned());
        self.write(move |tx| {
            let ctx = db("creating a policy version");
            let Some(row) = tx.query_opt(NEXT_VERSION, &[&arn]).map_err(&ctx)? else {
                return Err(no_policy(&arn));
            };
            let (next, n): (i64, i64) = (row.get(0), row.get(1));
            if n >= max_as_i64(max) {
                return Err(IdentityError::LimitExceeded(format!(
                    "A managed policy can have up to {max} versions. Before you create a new \
                     version, you must delete an existing version."
                )));
            }
            let version_id = format!("v{next}");
            insert_version(tx, &arn, &version_id, &document, created_ms)?;
            tx.execute(
                ADVANCE_VERSION,
                &[&arn, &(next + 1), &created_ms, &set_default, &version_id],
            )
            .map_err(&ctx)?;
            Ok(version_id)
        })
    }

    fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
        now_ms: i64,
    ) -> Result<(), IdentityError> {
        let (arn, version_id) = (arn.to_owned(), version_id.to_owned());
        self.write(move |tx| {
            let row = tx
                .query_one(VERSION_EXISTS, &[&arn, &version_id])
                .map_err(db("checking an entity"))?;
            let (policy, version): (bool, bool) = (row.get(0), row.get(1));
            if !policy {
                return Err(no_policy(&arn));
            }
            if !version {
                return Err(no_version(&arn, &version_id));
            }
            tx.execute(SET_DEFAULT, &[&arn, &version_id, &now_ms])
                .map_err(db("setting the default policy version"))?;
            Ok(())
        })
    }

    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), IdentityError> {
        let (arn, version_id) = (arn.to_owned(), version_id.to_owned());
        self.write(move |tx| {
            let ctx = db("deleting a policy version");
            let Some(row) = tx.query_opt(DEFAULT_VERSION, &[&arn]).map_err(&ctx)? else {
                return Err(no_policy(&arn));
            };
            let default: String = row.get(0);
            if default == version_id {
                return Err(IdentityError::DeleteConflict(
                    "Cannot delete the default version of a policy.".into(),
                ));
            }
            let n = tx
                .execute(DELETE_VERSION, &[&arn, &version_id])
                .map_err(&ctx)?;
            if n == 0 {
                return Err(no_version(&arn, &version_id));
            }
            Ok(())
        })
    }

    fn put_aws_managed_policy(&self, p: &ManagedPolicy) -> Result<(), IdentityError> {
        let p = p.clone();
        self.write(move |tx| {
            let ctx = db("installing an AWS managed policy");
            tx.execute(
                UPSERT_AWS_POLICY,
                &[
                    &p.arn,
                    &fold(&p.name),
                    &p.name,
                    &p.id,
                    &p.path,
                    &p.description,
                    &p.created_ms,
                    &p.default_version,
                    &p.updated_ms,
                ],
            )
            .map_err(&ctx)?;
            tx.execute(DELETE_VERSIONS_OF, &[&p.arn]).map_err(&ctx)?;
            insert_version(tx, &p.arn, &p.default_version, &p.document, p.updated_ms)
        })
    }

    fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<(), IdentityError> {
        if usage.is_empty() {
            return Ok(());
        }
        // One statement for the batch; of several uses of one key the last one counts, as
        // it does when the embedded store applies them in turn.
        let mut latest: Vec<&KeyUsage> = Vec::with_capacity(usage.len());
        let mut at: HashMap<&str, usize> = HashMap::with_capacity(usage.len());
        for u in usage {
            match at.get(u.key_id.as_str()) {
                Some(&i) => latest[i] = u,
                None => {
                    at.insert(&u.key_id, latest.len());
                    latest.push(u);
                }
            }
        }
        let ids: Vec<String> = latest.iter().map(|u| u.key_id.clone()).collect();
        let at_ms: Vec<i64> = latest.iter().map(|u| u.at_ms).collect();
        let services: Vec<String> = latest.iter().map(|u| u.service.clone()).collect();
        let regions: Vec<String> = latest.iter().map(|u| u.region.clone()).collect();
        self.write(move |tx| {
            tx.execute(RECORD_USE, &[&ids, &at_ms, &services, &regions])
                .map_err(db("recording access key use"))?;
            Ok(())
        })
    }

    fn attach_policy(&self, holder: &Holder, arn: &str, max: usize) -> Result<(), IdentityError> {
        let (holder, arn) = (holder.clone(), arn.to_owned());
        self.write(move |tx| {
            let check = match holder {
                Holder::User(_) => USER_ATTACH_CHECK,
                Holder::Role(_) => ROLE_ATTACH_CHECK,
            };
            let row = tx
                .query_one(check, &[&fold(holder.name()), &arn])
                .map_err(db("counting entities"))?;
            let (holder_exists, policy_exists, n): (bool, bool, i64) =
                (row.get(0), row.get(1), row.get(2));
            if !holder_exists {
                return Err(match &holder {
                    Holder::User(n) => no_user(n),
                    Holder::Role(n) => no_role(n),
                });
            }
            if !policy_exists {
                return Err(no_policy(&arn));
            }
            if n >= max_as_i64(max) {
                let which = match holder {
                    Holder::User(_) => "PoliciesPerUser",
                    Holder::Role(_) => "PoliciesPerRole",
                };
                return Err(IdentityError::LimitExceeded(format!(
                    "Cannot exceed quota for {which}: {max}"
                )));
            }
            tx.execute(
                ATTACH,
                &[&holder.kind(), &fold(holder.name()), &holder.name(), &arn],
            )
            .map_err(db("attaching a policy"))?;
            Ok(())
        })
    }

    fn detach_policy(&self, holder: &Holder, arn: &str) -> Result<(), IdentityError> {
        let (holder, arn) = (holder.clone(), arn.to_owned());
        self.write(move |tx| {
            require_holder(tx, &holder)?;
            let n = tx
                .execute(DETACH, &[&holder.kind(), &fold(holder.name()), &arn])
                .map_err(db("detaching a policy"))?;
            if n == 0 {
                return Err(policy_not_found(&arn));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;

// ---- shared sessions --------------------------------------------------------------------

/// The advisory lock session writers hold ("sessions" in ASCII), so that positions (taken
/// from the sequence after the lock) commit in order.
const SESSIONS_LOCK: i64 = 0x7365_7373_696f_6e73;

const SESSIONS_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";
const SESSIONS_PURGE: &str = "DELETE FROM identity_sessions WHERE expires_ms <= $1";
const SESSIONS_LIVE: &str = "SELECT count(*) FROM identity_sessions";
const SESSIONS_INSERT: &str = "INSERT INTO identity_sessions (access_key_id, role_arn,
    expires_ms, sealed) VALUES ($1, $2, $3, $4)";
const SESSIONS_SINCE: &str = "SELECT seq, access_key_id, role_arn, expires_ms, sealed
    FROM identity_sessions WHERE seq > $1 ORDER BY seq";
const SESSIONS_DELETE_ROLE: &str = "DELETE FROM identity_sessions WHERE role_arn = $1";
const SESSIONS_SEALED: &str = "SELECT access_key_id, sealed FROM identity_sessions ORDER BY seq";
const SESSIONS_RESEAL: &str = "UPDATE identity_sessions SET sealed = $2 WHERE access_key_id = $1";
/// The statements of a reseal, in the order its steps index them.
const SESSIONS_RESEAL_STEPS: &[&str] = &[SESSIONS_LOCK_SQL, SESSIONS_SEALED, SESSIONS_RESEAL];

impl PostgresIdentityStore {
    /// Replaces every shared session's sealed record with `reseal(access key id, sealed)`,
    /// in one transaction that holds the sessions' lock (a master key rotation); returns
    /// how many were resealed.
    pub fn reseal_sessions(&self, reseal: Reseal<'_>) -> Result<usize, IdentityError> {
        self.pool.transact(SESSIONS_RESEAL_STEPS, |remote| {
            remote.run("locking the sessions", |tx, s| {
                tx.execute(&s[0], &[&SESSIONS_LOCK]).map(drop)
            })?;
            let rows: Vec<(String, Vec<u8>)> = remote.run("reading the sessions", |tx, s| {
                Ok(tx
                    .query(&s[1], &[])?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect())
            })?;
            for (id, sealed) in &rows {
                let resealed = reseal(id, sealed)?;
                let id = id.clone();
                remote.run("resealing a session", move |tx, s| {
                    tx.execute(&s[2], &[&id, &resealed]).map(drop)
                })?;
            }
            Ok(rows.len())
        })
    }
}

impl SharedSessions for PostgresIdentityStore {
    fn put(
        &self,
        session: &StoredSession,
        max_live: usize,
        now_ms: i64,
    ) -> Result<(), IdentityError> {
        let session = session.clone();
        let max_live = max_as_i64(max_live);
        self.pool.run(move |conn| {
            let lock = conn.prepare(SESSIONS_LOCK_SQL).map_err(db("preparing"))?;
            let purge = conn.prepare(SESSIONS_PURGE).map_err(db("preparing"))?;
            let live = conn.prepare(SESSIONS_LIVE).map_err(db("preparing"))?;
            let insert = conn.prepare(SESSIONS_INSERT).map_err(db("preparing"))?;
            conn.transaction(|tx| {
                tx.execute(&lock, &[&SESSIONS_LOCK])
                    .map_err(db("locking the sessions"))?;
                tx.execute(&purge, &[&now_ms])
                    .map_err(db("deleting expired sessions"))?;
                let n: i64 = tx
                    .query_one(&live, &[])
                    .map_err(db("counting sessions"))?
                    .get(0);
                if n >= max_live {
                    return Err(IdentityError::LimitExceeded(format!(
                        "Warden holds at most {max_live} sessions created by AssumeRole; try again when some have expired."
                    )));
                }
                tx.execute(
                    &insert,
                    &[
                        &session.access_key_id,
                        &session.role_arn,
                        &session.expires_ms,
                        &session.sealed,
                    ],
                )
                .map_err(db("storing a session"))?;
                Ok(())
            })
        })
    }

    fn since(&self, after: i64) -> Result<Vec<StoredSession>, IdentityError> {
        self.pool.run(move |conn| {
            let since = conn.prepare(SESSIONS_SINCE).map_err(db("preparing"))?;
            let rows = conn
                .client()
                .query(&since, &[&after])
                .map_err(db("reading new sessions"))?;
            rows.iter()
                .map(|r| {
                    Ok(StoredSession {
                        seq: r.try_get(0).map_err(db("reading a session"))?,
                        access_key_id: r.try_get(1).map_err(db("reading a session"))?,
                        role_arn: r.try_get(2).map_err(db("reading a session"))?,
                        expires_ms: r.try_get(3).map_err(db("reading a session"))?,
                        sealed: r.try_get(4).map_err(db("reading a session"))?,
                    })
                })
                .collect()
        })
    }

    fn delete_role_sessions(&self, role_arn: &str) -> Result<(), IdentityError> {
        let role_arn = role_arn.to_owned();
        self.pool.run(move |conn| {
            let delete = conn
                .prepare(SESSIONS_DELETE_ROLE)
                .map_err(db("preparing"))?;
            conn.client()
                .execute(&delete, &[&role_arn])
                .map_err(db("deleting a role's sessions"))?;
            Ok(())
        })
    }
}

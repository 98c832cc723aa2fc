//! Durable identity state behind the [`IdentityStore`] trait, and its SQLite implementation.
//!
//! The trait is write-oriented: every read the service needs is answered from an in-memory
//! snapshot built from [`IdentityStore::load`], so a networked database can replace SQLite
//! by implementing one load and a handful of transactional writes. Each write checks its
//! own preconditions (existence, conflicts, quotas) inside its transaction, so concurrent
//! writers cannot break them. Secret access keys reach the store already sealed (see
//! [`crate::MasterKey`]); the store never sees a plaintext secret.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::error::IdentityError;

/// Maps a SQLite error to [`IdentityError::Database`], keeping it only as an opaque source.
fn db(context: &'static str) -> impl Fn(rusqlite::Error) -> IdentityError {
    move |source| IdentityError::Database {
        context,
        source: Box::new(source),
    }
}

/// The identity error for a failure of the shared plumbing (opening, migrating).
fn plumbing(e: warden_sqlite::Error) -> IdentityError {
    use warden_sqlite::Error as E;
    match e {
        E::Sqlite { context, source } => IdentityError::Database {
            context,
            source: Box::new(source),
        },
        E::Io {
            context,
            path,
            source,
        } => IdentityError::File {
            context,
            path,
            source,
        },
        E::SchemaTooNew { found, supported } => IdentityError::SchemaTooNew { found, supported },
        other @ (E::WalUnavailable { .. } | E::DanglingForeignKeys { .. }) => {
            IdentityError::Database {
                context: "opening the identity database",
                source: Box::new(other),
            }
        }
    }
}

/// A `Key=Value` tag on a user or role.
pub type Tags = Vec<(String, String)>;

/// An IAM user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// `UserName`, unique ignoring case.
    pub name: String,
    /// `AIDA` + 16 characters.
    pub id: String,
    /// `arn:aws:iam::ACCOUNT:user/PATH/NAME`.
    pub arn: String,
    /// `/` or `/a/b/`.
    pub path: String,
    /// Tags in insertion order.
    pub tags: Tags,
    /// Creation time, epoch ms.
    pub created_ms: i64,
}

/// Whether an access key may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Kept but refused by the verifier.
    Inactive,
}

impl KeyStatus {
    /// IAM's spelling: `Active` or `Inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
        }
    }

    /// Parses IAM's spelling.
    pub fn parse(s: &str) -> Option<KeyStatus> {
        match s {
            "Active" => Some(KeyStatus::Active),
            "Inactive" => Some(KeyStatus::Inactive),
            _ => None,
        }
    }
}

/// An access key as stored: metadata plus the sealed secret. `Debug` omits the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// `AKIA` + 16 characters.
    pub id: String,
    /// The owning user.
    pub user_name: String,
    /// Active or inactive.
    pub status: KeyStatus,
    /// The secret access key sealed by [`crate::MasterKey::seal`] with `id` as associated data.
    pub sealed_secret: Vec<u8>,
    /// Creation time, epoch ms.
    pub created_ms: i64,
    /// Last successful use, epoch ms, if recorded.
    pub last_used_ms: Option<i64>,
    /// The service the last use was for (`lambda`, `iam`, `sts`), if recorded.
    pub last_used_service: Option<String>,
    /// The region of the last use, if recorded.
    pub last_used_region: Option<String>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("user_name", &self.user_name)
            .field("status", &self.status)
            .field("sealed_secret", &"<redacted>")
            .field("created_ms", &self.created_ms)
            .field("last_used_ms", &self.last_used_ms)
            .field("last_used_service", &self.last_used_service)
            .field("last_used_region", &self.last_used_region)
            .finish()
    }
}

/// An IAM role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// `RoleName`, unique ignoring case.
    pub name: String,
    /// `AROA` + 16 characters.
    pub id: String,
    /// `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
    pub arn: String,
    /// `/` or `/a/b/`.
    pub path: String,
    /// The trust (assume-role) policy document, as JSON text.
    pub trust_policy: String,
    /// Free text.
    pub description: Option<String>,
    /// Longest session, seconds (3600 to 43200).
    pub max_session_duration_s: u32,
    /// Tags in insertion order.
    pub tags: Tags,
    /// Creation time, epoch ms.
    pub created_ms: i64,
}

/// Who holds an inline policy or a managed-policy attachment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    /// A user, by name.
    User(String),
    /// A role, by name.
    Role(String),
}

impl Holder {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Holder::User(_) => "user",
            Holder::Role(_) => "role",
        }
    }

    /// The user or role name.
    pub fn name(&self) -> &str {
        match self {
            Holder::User(n) | Holder::Role(n) => n,
        }
    }

    pub(crate) fn from_parts(kind: &str, name: String) -> Option<Holder> {
        match kind {
            "user" => Some(Holder::User(name)),
            "role" => Some(Holder::Role(name)),
            _ => None,
        }
    }
}

/// An inline policy embedded in a user or role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlinePolicy {
    /// The user or role it is embedded in.
    pub holder: Holder,
    /// `PolicyName`, unique per holder.
    pub name: String,
    /// The policy document, as JSON text.
    pub document: String,
}

/// A managed policy: customer-managed (`arn:aws:iam::ACCOUNT:policy/...`, up to five
/// versions) or AWS-managed (`arn:aws:iam::aws:policy/...`, read-only, seeded by the
/// service). Its versions are [`PolicyVersion`]s in [`Dump::versions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedPolicy {
    /// `PolicyName`, unique ignoring case.
    pub name: String,
    /// `ANPA` + 16 characters.
    pub id: String,
    /// `arn:aws:iam::ACCOUNT:policy/PATH/NAME`.
    pub arn: String,
    /// `/` or `/a/b/`.
    pub path: String,
    /// The default version's document, as JSON text.
    pub document: String,
    /// Free text.
    pub description: Option<String>,
    /// Creation time, epoch ms.
    pub created_ms: i64,
    /// `VersionId` of the default version, such as `v1`.
    pub default_version: String,
    /// When a version was last created or made the default, epoch ms.
    pub updated_ms: i64,
}

/// One version of a managed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    /// The policy's ARN.
    pub policy_arn: String,
    /// `v1`, `v2`, ...: never reused within a policy.
    pub version_id: String,
    /// The document, as JSON text.
    pub document: String,
    /// Creation time, epoch ms.
    pub created_ms: i64,
}

/// The last successful use of an access key, as recorded by [`IdentityStore::record_key_usage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUsage {
    /// The access key id.
    pub key_id: String,
    /// When, epoch ms.
    pub at_ms: i64,
    /// The service named in the request's credential scope.
    pub service: String,
    /// The region named in the request's credential scope.
    pub region: String,
}

/// Everything the store holds, as loaded by [`IdentityStore::load`].
#[derive(Clone, Debug, Default)]
pub struct Dump {
    /// Users by name.
    pub users: Vec<User>,
    /// Access keys of all users.
    pub keys: Vec<StoredKey>,
    /// Roles by name.
    pub roles: Vec<Role>,
    /// Inline policies of all users and roles.
    pub inline: Vec<InlinePolicy>,
    /// Managed policies by name.
    pub policies: Vec<ManagedPolicy>,
    /// Every version of every managed policy, by policy ARN and creation.
    pub versions: Vec<PolicyVersion>,
    /// `(holder, policy ARN)` attachments.
    pub attachments: Vec<(Holder, String)>,
    /// The store's generation ([`IdentityStore::generation`]) this snapshot was read at:
    /// it holds exactly the writes up to that generation.
    pub generation: u64,
}

/// Reseals one access key's secret (key id, sealed secret) under a new master key.
pub type Reseal<'a> = &'a dyn Fn(&str, &[u8]) -> Result<Vec<u8>, IdentityError>;

/// Durable identity state. Each write is one transaction that is durable when it returns.
pub trait IdentityStore: Send + Sync {
    /// Everything, read in one consistent snapshot, tagged with the generation it was
    /// read at ([`Dump::generation`]).
    fn load(&self) -> Result<Dump, IdentityError>;
    /// The current generation: a number every write increases by one in its own
    /// transaction (a refused write leaves it as it was). A node sharing the store with
    /// others polls it, cheaply, to know when its snapshot is behind.
    fn generation(&self) -> Result<u64, IdentityError>;
    /// Replaces every access key's sealed secret with `reseal(key id, sealed)`, in one
    /// transaction (a master key rotation); returns how many were resealed.
    fn reseal_secrets(&self, reseal: Reseal<'_>) -> Result<usize, IdentityError>;
    /// Creates a user together with its first inline policies and access key (atomic, so a
    /// crash never leaves a half-made bootstrap admin).
    fn create_user(
        &self,
        user: &User,
        inline: &[InlinePolicy],
        key: Option<&StoredKey>,
    ) -> Result<(), IdentityError>;
    /// Deletes a user that has no access keys, inline policies or attachments.
    fn delete_user(&self, name: &str) -> Result<(), IdentityError>;
    /// Replaces a user's tags.
    fn set_user_tags(&self, name: &str, tags: &Tags) -> Result<(), IdentityError>;
    /// Adds an access key unless its user already has `max_per_user` keys.
    fn create_access_key(&self, key: &StoredKey, max_per_user: usize) -> Result<(), IdentityError>;
    /// Activates or deactivates a key of `user`.
    fn set_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IdentityError>;
    /// Deletes a key of `user`.
    fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IdentityError>;
    /// Creates a role.
    fn create_role(&self, role: &Role) -> Result<(), IdentityError>;
    /// Deletes a role that has no inline policies or attachments.
    fn delete_role(&self, name: &str) -> Result<(), IdentityError>;
    /// Replaces a role's trust policy.
    fn set_role_trust_policy(&self, name: &str, document: &str) -> Result<(), IdentityError>;
    /// Replaces a role's tags.
    fn set_role_tags(&self, name: &str, tags: &Tags) -> Result<(), IdentityError>;
    /// Creates or replaces an inline policy of an existing user or role.
    fn put_inline_policy(&self, policy: &InlinePolicy) -> Result<(), IdentityError>;
    /// Deletes an inline policy.
    fn delete_inline_policy(&self, holder: &Holder, name: &str) -> Result<(), IdentityError>;
    /// Replaces a role's description (`Some(None)` clears it) and/or maximum session duration.
    fn update_role(
        &self,
        name: &str,
        description: Option<Option<&str>>,
        max_session_duration_s: Option<u32>,
    ) -> Result<(), IdentityError>;
    /// Creates a managed policy with its document as version `policy.default_version`.
    fn create_managed_policy(&self, policy: &ManagedPolicy) -> Result<(), IdentityError>;
    /// Deletes a managed policy that is attached to nothing and has only its default version.
    fn delete_managed_policy(&self, arn: &str) -> Result<(), IdentityError>;
    /// Adds the next version (`v<n>`) of a managed policy unless it already has `max`
    /// versions, making it the default if `set_default`; returns its `VersionId`.
    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        created_ms: i64,
        set_default: bool,
        max: usize,
    ) -> Result<String, IdentityError>;
    /// Makes an existing version the default.
    fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
        now_ms: i64,
    ) -> Result<(), IdentityError>;
    /// Deletes a version that is not the default.
    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), IdentityError>;
    /// Creates or refreshes an AWS-managed policy: the row, and `policy.document` as its only
    /// version `policy.default_version` (attachments are kept).
    fn put_aws_managed_policy(&self, policy: &ManagedPolicy) -> Result<(), IdentityError>;
    /// Records the last use of access keys in one transaction; unknown keys are skipped.
    fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<(), IdentityError>;
    /// Attaches a managed policy unless the holder already has `max` attached (idempotent).
    fn attach_policy(&self, holder: &Holder, arn: &str, max: usize) -> Result<(), IdentityError>;
    /// Detaches a managed policy.
    fn detach_policy(&self, holder: &Holder, arn: &str) -> Result<(), IdentityError>;
}

/// Schema; entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    name TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    id TEXT NOT NULL UNIQUE,
    arn TEXT NOT NULL,
    path TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE access_keys (
    id TEXT PRIMARY KEY NOT NULL,
    user_name TEXT NOT NULL REFERENCES users(name),
    status TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    -- AES-256-GCM under the master key, the key id as associated data.
    sealed_secret BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER
) STRICT;
CREATE INDEX access_keys_by_user ON access_keys(user_name);

CREATE TABLE roles (
    name TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    id TEXT NOT NULL UNIQUE,
    arn TEXT NOT NULL,
    path TEXT NOT NULL,
    trust_policy TEXT NOT NULL,
    description TEXT,
    max_session_duration_s INTEGER NOT NULL,
    tags TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE inline_policies (
    holder_kind TEXT NOT NULL CHECK (holder_kind IN ('user', 'role')),
    holder TEXT NOT NULL COLLATE NOCASE,
    name TEXT NOT NULL COLLATE NOCASE,
    document TEXT NOT NULL,
    PRIMARY KEY (holder_kind, holder, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE managed_policies (
    arn TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    document TEXT NOT NULL,
    description TEXT,
    created_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE attachments (
    holder_kind TEXT NOT NULL CHECK (holder_kind IN ('user', 'role')),
    holder TEXT NOT NULL COLLATE NOCASE,
    policy_arn TEXT NOT NULL REFERENCES managed_policies(arn),
    PRIMARY KEY (holder_kind, holder, policy_arn)
) STRICT, WITHOUT ROWID;
"#,
    r#"
-- Managed policy versions: the document moves from the policy row to its versions (the
-- existing document becomes v1), and AWS-managed policies (in AWS's namespace, so their
-- names may repeat a customer policy's) join the table. SQLite cannot drop a constraint, so
-- the table is rebuilt; the migration runner turns foreign keys off around this step and
-- checks them before committing.
CREATE TABLE managed_policies_v2 (
    arn TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL COLLATE NOCASE,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    description TEXT,
    created_ms INTEGER NOT NULL,
    aws_managed INTEGER NOT NULL CHECK (aws_managed IN (0, 1)),
    default_version TEXT NOT NULL,
    -- The number of the next version to create: IAM never reuses a version id.
    next_version INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
INSERT INTO managed_policies_v2 (arn, name, id, path, description, created_ms, aws_managed,
    default_version, next_version, updated_ms)
    SELECT arn, name, id, path, description, created_ms, 0, 'v1', 2, created_ms
    FROM managed_policies;
CREATE TABLE policy_versions (
    policy_arn TEXT NOT NULL REFERENCES managed_policies(arn),
    version_id TEXT NOT NULL,
    document TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (policy_arn, version_id)
) STRICT, WITHOUT ROWID;
INSERT INTO policy_versions (policy_arn, version_id, document, created_ms)
    SELECT arn, 'v1', document, created_ms FROM managed_policies;
DROP TABLE managed_policies;
ALTER TABLE managed_policies_v2 RENAME TO managed_policies;
CREATE UNIQUE INDEX customer_policy_names ON managed_policies(name) WHERE aws_managed = 0;

ALTER TABLE access_keys ADD COLUMN last_used_service TEXT;
ALTER TABLE access_keys ADD COLUMN last_used_region TEXT;
"#,
    r#"
-- The generation: every write increases it by one in its own transaction, so a snapshot
-- can say which writes it holds.
CREATE TABLE generation (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    generation INTEGER NOT NULL
) STRICT;
INSERT INTO generation (id, generation) VALUES (1, 0);
"#,
];

/// Increases the generation; the first statement of every write.
const BUMP_GENERATION: &str = "UPDATE generation SET generation = generation + 1 WHERE id = 1";

/// The current generation.
const READ_GENERATION: &str = "SELECT generation FROM generation WHERE id = 1";

/// A stored generation as the trait's number (it starts at 0 and only grows).
fn generation_of(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// [`IdentityStore`] on one SQLite file: WAL, `synchronous=FULL`, one write connection and
/// one read connection, each behind a mutex.
pub struct SqliteIdentityStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteIdentityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteIdentityStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock leaves SQLite consistent (an open transaction is
    // rolled back below), so a poisoned mutex is safe to reuse.
    warden_sqlite::lock(m)
}

pub(crate) fn tags_to_json(tags: &Tags) -> String {
    serde_json::Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect(),
    )
    .to_string()
}

pub(crate) fn tags_from_json(text: &str) -> Tags {
    let parsed: Result<Vec<(String, String)>, _> = serde_json::from_str(text);
    parsed.unwrap_or_else(|e| {
        tracing::error!(error = %e, "ignoring unreadable stored tags");
        Vec::new()
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn exists(
    tx: &Transaction<'_>,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<bool, IdentityError> {
    tx.query_row(sql, args, |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
        .map_err(db("checking an entity"))
}

/// Every row of a query, mapped.
fn all<T>(
    tx: &Transaction<'_>,
    sql: &str,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, IdentityError> {
    let mut st = tx.prepare(sql).map_err(db("loading identities"))?;
    let rows = st.query_map([], map).map_err(db("loading identities"))?;
    rows.collect::<rusqlite::Result<Vec<T>>>()
        .map_err(db("loading identities"))
}

/// IAM refuses to delete a user or role that still has inline or attached policies.
fn refuse_if_policies(tx: &Transaction<'_>, kind: &str, name: &str) -> Result<(), IdentityError> {
    let holds = |table: &str| {
        exists(
            tx,
            &format!("SELECT 1 FROM {table} WHERE holder_kind = ?2 AND holder = ?1"),
            &[&name, &kind],
        )
    };
    if holds("inline_policies")? {
        return Err(IdentityError::DeleteConflict(
            "Cannot delete entity, must delete policies first.".into(),
        ));
    }
    if holds("attachments")? {
        return Err(IdentityError::DeleteConflict(
            "Cannot delete entity, must detach all policies first.".into(),
        ));
    }
    Ok(())
}

fn count(
    tx: &Transaction<'_>,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<i64, IdentityError> {
    tx.query_row(sql, args, |r| r.get(0))
        .map_err(db("counting entities"))
}

pub(crate) fn no_user(name: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("The user with name `{name}` cannot be found."))
}

pub(crate) fn no_role(name: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("The role with name `{name}` cannot be found."))
}

pub(crate) fn no_policy(arn: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!(
        "Policy `{arn}` does not exist or is not attachable."
    ))
}

pub(crate) fn no_version(arn: &str, version_id: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!(
        "Policy `{arn}` version `{version_id}` does not exist or is not attachable."
    ))
}

fn insert_version(
    tx: &Transaction<'_>,
    arn: &str,
    version_id: &str,
    document: &str,
    created_ms: i64,
) -> Result<(), IdentityError> {
    tx.execute(
        "INSERT INTO policy_versions (policy_arn, version_id, document, created_ms)
         VALUES (?1, ?2, ?3, ?4)",
        params![arn, version_id, document, created_ms],
    )
    .map_err(db("writing a policy version"))?;
    Ok(())
}

fn require_holder(tx: &Transaction<'_>, holder: &Holder) -> Result<(), IdentityError> {
    let found = match holder {
        Holder::User(n) => exists(tx, "SELECT 1 FROM users WHERE name = ?1", &[n])?,
        Holder::Role(n) => exists(tx, "SELECT 1 FROM roles WHERE name = ?1", &[n])?,
    };
    match (found, holder) {
        (true, _) => Ok(()),
        (false, Holder::User(n)) => Err(no_user(n)),
        (false, Holder::Role(n)) => Err(no_role(n)),
    }
}

fn insert_inline(tx: &Transaction<'_>, p: &InlinePolicy) -> Result<(), IdentityError> {
    tx.execute(
        "INSERT INTO inline_policies (holder_kind, holder, name, document) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (holder_kind, holder, name) DO UPDATE SET document = excluded.document",
        params![p.holder.kind(), p.holder.name(), p.name, p.document],
    )
    .map_err(db("writing an inline policy"))?;
    Ok(())
}

fn insert_key(tx: &Transaction<'_>, k: &StoredKey) -> Result<(), IdentityError> {
    tx.execute(
        "INSERT INTO access_keys (id, user_name, status, sealed_secret, created_ms, last_used_ms,
         last_used_service, last_used_region) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            k.id,
            k.user_name,
            k.status.as_str(),
            k.sealed_secret,
            k.created_ms,
            k.last_used_ms,
            k.last_used_service,
            k.last_used_region
        ],
    )
    .map_err(db("writing an access key"))?;
    Ok(())
}

impl SqliteIdentityStore {
    /// Opens (creating if needed) the identity database at `path`, migrating it.
    pub fn open(path: &Path) -> Result<Self, IdentityError> {
        let db = warden_sqlite::open(
            path,
            &warden_sqlite::Options {
                synchronous: warden_sqlite::Synchronous::Full,
                migrations: MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(plumbing)?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(db.writer),
            reader: Mutex::new(db.reader),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, IdentityError>,
    ) -> Result<T, IdentityError> {
        let mut conn = lock(&self.writer);
        // A writer may have panicked mid-transaction.
        warden_sqlite::rollback_abandoned(&conn).map_err(db(context))?;
        let tx = warden_sqlite::immediate(&mut conn).map_err(db(context))?;
        tx.execute(BUMP_GENERATION, [])
            .map_err(db("increasing the identity generation"))?;
        let out = f(&tx)?;
        tx.commit().map_err(db(context))?;
        Ok(out)
    }
}

impl IdentityStore for SqliteIdentityStore {
    fn load(&self) -> Result<Dump, IdentityError> {
        let mut conn = lock(&self.reader);
        warden_sqlite::rollback_abandoned(&conn).map_err(db("loading identities"))?;
        let tx = conn.transaction().map_err(db("loading identities"))?;
        let ctx = db("loading identities");
        // The first read fixes the snapshot every later read of this transaction sees.
        let generation: i64 = tx
            .query_row(READ_GENERATION, [], |r| r.get(0))
            .map_err(&ctx)?;
        let users = all(
            &tx,
            "SELECT name, id, arn, path, tags, created_ms FROM users ORDER BY name",
            |r| {
                Ok(User {
                    name: r.get(0)?,
                    id: r.get(1)?,
                    arn: r.get(2)?,
                    path: r.get(3)?,
                    tags: tags_from_json(&r.get::<_, String>(4)?),
                    created_ms: r.get(5)?,
                })
            },
        )?;
        let keys = all(
            &tx,
            "SELECT id, user_name, status, sealed_secret, created_ms, last_used_ms,
             last_used_service, last_used_region FROM access_keys ORDER BY created_ms, id",
            |r| {
                let status: String = r.get(2)?;
                Ok(StoredKey {
                    id: r.get(0)?,
                    user_name: r.get(1)?,
                    // The CHECK constraint admits only the two spellings.
                    status: KeyStatus::parse(&status).unwrap_or(KeyStatus::Inactive),
                    sealed_secret: r.get(3)?,
                    created_ms: r.get(4)?,
                    last_used_ms: r.get(5)?,
                    last_used_service: r.get(6)?,
                    last_used_region: r.get(7)?,
                })
            },
        )?;
        let roles = all(
            &tx,
            "SELECT name, id, arn, path, trust_policy, description, max_session_duration_s,
             tags, created_ms FROM roles ORDER BY name",
            |r| {
                Ok(Role {
                    name: r.get(0)?,
                    id: r.get(1)?,
                    arn: r.get(2)?,
                    path: r.get(3)?,
                    trust_policy: r.get(4)?,
                    description: r.get(5)?,
                    max_session_duration_s: r.get(6)?,
                    tags: tags_from_json(&r.get::<_, String>(7)?),
                    created_ms: r.get(8)?,
                })
            },
        )?;
        let inline: Vec<(String, String, String, String)> = all(
            &tx,
            "SELECT holder_kind, holder, name, document FROM inline_policies
             ORDER BY holder_kind, holder, name",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let inline = inline
            .into_iter()
            .filter_map(|(kind, holder, name, document)| {
                Holder::from_parts(&kind, holder).map(|holder| InlinePolicy {
                    holder,
                    name,
                    document,
                })
            })
            .collect();
        let policies = all(
            &tx,
            "SELECT p.name, p.id, p.arn, p.path, v.document, p.description, p.created_ms,
             p.default_version, p.updated_ms
             FROM managed_policies p JOIN policy_versions v
             ON v.policy_arn = p.arn AND v.version_id = p.default_version
             ORDER BY p.name",
            |r| {
                Ok(ManagedPolicy {
                    name: r.get(0)?,
                    id: r.get(1)?,
                    arn: r.get(2)?,
                    path: r.get(3)?,
                    document: r.get(4)?,
                    description: r.get(5)?,
                    created_ms: r.get(6)?,
                    default_version: r.get(7)?,
                    updated_ms: r.get(8)?,
                })
            },
        )?;
        let versions = all(
            &tx,
            "SELECT policy_arn, version_id, document, created_ms FROM policy_versions
             ORDER BY policy_arn, length(version_id), version_id",
            |r| {
                Ok(PolicyVersion {
                    policy_arn: r.get(0)?,
                    version_id: r.get(1)?,
                    document: r.get(2)?,
                    created_ms: r.get(3)?,
                })
            },
        )?;
        let attachments: Vec<(String, String, String)> = all(
            &tx,
            "SELECT holder_kind, holder, policy_arn FROM attachments
             ORDER BY holder_kind, holder, policy_arn",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let attachments = attachments
            .into_iter()
            .filter_map(|(kind, holder, arn)| Holder::from_parts(&kind, holder).map(|h| (h, arn)))
            .collect();
        tx.finish().map_err(&ctx)?;
        Ok(Dump {
            users,
            keys,
            roles,
            inline,
            policies,
            versions,
            attachments,
            generation: generation_of(generation),
        })
    }

    fn generation(&self) -> Result<u64, IdentityError> {
        let conn = lock(&self.reader);
        warden_sqlite::rollback_abandoned(&conn).map_err(db("reading the identity generation"))?;
        conn.query_row(READ_GENERATION, [], |r| r.get(0))
            .map(generation_of)
            .map_err(db("reading the identity generation"))
    }

    fn create_user(
        &self,
        user: &User,
        inline: &[InlinePolicy],
        key: Option<&StoredKey>,
    ) -> Result<(), IdentityError> {
        self.write("creating a user", |tx| {
            let inserted = tx.execute(
                "INSERT INTO users (name, id, arn, path, tags, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![user.name, user.id, user.arn, user.path, tags_to_json(&user.tags), user.created_ms],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    return Err(IdentityError::EntityAlreadyExists(format!(
                        "User with name `{}` already exists.",
                        user.name
                    )))
                }
                other => other.map_err(db("creating a user"))?,
            };
            for p in inline {
                insert_inline(tx, p)?;
            }
            if let Some(k) = key {
                insert_key(tx, k)?;
            }
            Ok(())
        })
    }

    fn delete_user(&self, name: &str) -> Result<(), IdentityError> {
        self.write("deleting a user", |tx| {
            require_holder(tx, &Holder::User(name.to_owned()))?;
            if exists(
                tx,
                "SELECT 1 FROM access_keys WHERE user_name = ?1",
                &[&name],
            )? {
                return Err(IdentityError::DeleteConflict(
                    "Cannot delete entity, must delete access keys first.".into(),
                ));
            }
            refuse_if_policies(tx, "user", name)?;
            tx.execute("DELETE FROM users WHERE name = ?1", [name])
                .map_err(db("deleting a user"))?;
            Ok(())
        })
    }

    fn set_user_tags(&self, name: &str, tags: &Tags) -> Result<(), IdentityError> {
        self.write("tagging a user", |tx| {
            let n = tx
                .execute(
                    "UPDATE users SET tags = ?2 WHERE name = ?1",
                    params![name, tags_to_json(tags)],
                )
                .map_err(db("tagging a user"))?;
            if n == 0 {
                return Err(no_user(name));
            }
            Ok(())
        })
    }

    fn create_access_key(&self, key: &StoredKey, max_per_user: usize) -> Result<(), IdentityError> {
        self.write("creating an access key", |tx| {
            require_holder(tx, &Holder::User(key.user_name.clone()))?;
            let n = count(
                tx,
                "SELECT count(*) FROM access_keys WHERE user_name = ?1",
                &[&key.user_name],
            )?;
            if n >= max_per_user as i64 {
                return Err(IdentityError::LimitExceeded(format!(
                    "Cannot exceed quota for AccessKeysPerUser: {max_per_user}"
                )));
            }
            insert_key(tx, key)
        })
    }

    fn set_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IdentityError> {
        self.write("updating an access key", |tx| {
            let n = tx
                .execute(
                    "UPDATE access_keys SET status = ?3 WHERE id = ?1 AND user_name = ?2",
                    params![key_id, user, status.as_str()],
                )
                .map_err(db("updating an access key"))?;
            if n == 0 {
                return Err(IdentityError::NoSuchEntity(format!(
                    "The Access Key with id `{key_id}` cannot be found."
                )));
            }
            Ok(())
        })
    }

    fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IdentityError> {
        self.write("deleting an access key", |tx| {
            let n = tx
                .execute(
                    "DELETE FROM access_keys WHERE id = ?1 AND user_name = ?2",
                    params![key_id, user],
                )
                .map_err(db("deleting an access key"))?;
            if n == 0 {
                return Err(IdentityError::NoSuchEntity(format!(
                    "The Access Key with id `{key_id}` cannot be found."
                )));
            }
            Ok(())
        })
    }

    fn create_role(&self, role: &Role) -> Result<(), IdentityError> {
        self.write("creating a role", |tx| {
            let inserted = tx.execute(
                "INSERT INTO roles (name, id, arn, path, trust_policy, description,
                 max_session_duration_s, tags, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    role.name,
                    role.id,
                    role.arn,
                    role.path,
                    role.trust_policy,
                    role.description,
                    role.max_session_duration_s,
                    tags_to_json(&role.tags),
                    role.created_ms
                ],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => Err(IdentityError::EntityAlreadyExists(
                    format!("Role with name `{}` already exists.", role.name),
                )),
                other => other.map(|_| ()).map_err(db("creating a role")),
            }
        })
    }

    fn delete_role(&self, name: &str) -> Result<(), IdentityError> {
        self.write("deleting a role", |tx| {
            require_holder(tx, &Holder::Role(name.to_owned()))?;
            refuse_if_policies(tx, "role", name)?;
            tx.execute("DELETE FROM roles WHERE name = ?1", [name])
                .map_err(db("deleting a role"))?;
            Ok(())
        })
    }

    fn set_role_trust_policy(&self, name: &str, document: &str) -> Result<(), IdentityError> {
        self.write("updating a trust policy", |tx| {
            let n = tx
                .execute(
                    "UPDATE roles SET trust_policy = ?2 WHERE name = ?1",
                    params![name, document],
                )
                .map_err(db("updating a trust policy"))?;
            if n == 0 {
                return Err(no_role(name));
            }
            Ok(())
        })
    }

    fn set_role_tags(&self, name: &str, tags: &Tags) -> Result<(), IdentityError> {
        self.write("tagging a role", |tx| {
            let n = tx
                .execute(
                    "UPDATE roles SET tags = ?2 WHERE name = ?1",
                    params![name, tags_to_json(tags)],
                )
                .map_err(db("tagging a role"))?;
            if n == 0 {
                return Err(no_role(name));
            }
            Ok(())
        })
    }

    fn put_inline_policy(&self, policy: &InlinePolicy) -> Result<(), IdentityError> {
        self.write("writing an inline policy", |tx| {
            require_holder(tx, &policy.holder)?;
            insert_inline(tx, policy)
        })
    }

    fn delete_inline_policy(&self, holder: &Holder, name: &str) -> Result<(), IdentityError> {
        self.write("deleting an inline policy", |tx| {
            require_holder(tx, holder)?;
            let n = tx
                .execute(
                    "DELETE FROM inline_policies WHERE holder_kind = ?1 AND holder = ?2 AND name = ?3",
                    params![holder.kind(), holder.name(), name],
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
        self.write("updating a role", |tx| {
            require_holder(tx, &Holder::Role(name.to_owned()))?;
            if let Some(d) = description {
                tx.execute(
                    "UPDATE roles SET description = ?2 WHERE name = ?1",
                    params![name, d],
                )
                .map_err(db("updating a role"))?;
            }
            if let Some(m) = max_session_duration_s {
                tx.execute(
                    "UPDATE roles SET max_session_duration_s = ?2 WHERE name = ?1",
                    params![name, m],
                )
                .map_err(db("updating a role"))?;
            }
            Ok(())
        })
    }

    fn create_managed_policy(&self, p: &ManagedPolicy) -> Result<(), IdentityError> {
        self.write("creating a managed policy", |tx| {
            let inserted = tx.execute(
                "INSERT INTO managed_policies (arn, name, id, path, description, created_ms,
                 aws_managed, default_version, next_version, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, 2, ?8)",
                params![
                    p.arn,
                    p.name,
                    p.id,
                    p.path,
                    p.description,
                    p.created_ms,
                    p.default_version,
                    p.updated_ms
                ],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    return Err(IdentityError::EntityAlreadyExists(format!(
                        "A policy called `{}` already exists. Duplicate names are not allowed.",
                        p.name
                    )))
                }
                other => other.map_err(db("creating a managed policy"))?,
            };
            insert_version(tx, &p.arn, &p.default_version, &p.document, p.created_ms)
        })
    }

    fn delete_managed_policy(&self, arn: &str) -> Result<(), IdentityError> {
        self.write("deleting a managed policy", |tx| {
            if !exists(tx, "SELECT 1 FROM managed_policies WHERE arn = ?1", &[&arn])? {
                return Err(IdentityError::NoSuchEntity(format!(
                    "Policy `{arn}` was not found."
                )));
            }
            if exists(
                tx,
                "SELECT 1 FROM attachments WHERE policy_arn = ?1",
                &[&arn],
            )? {
                return Err(IdentityError::DeleteConflict(
                    "Cannot delete a policy attached to entities.".into(),
                ));
            }
            let versions = count(
                tx,
                "SELECT count(*) FROM policy_versions WHERE policy_arn = ?1",
                &[&arn],
            )?;
            if versions > 1 {
                return Err(IdentityError::DeleteConflict(
                    "This policy has more than one version. Before you delete a policy, you must \
                     delete the policy's versions. The default version is deleted with the policy."
                        .into(),
                ));
            }
            tx.execute("DELETE FROM policy_versions WHERE policy_arn = ?1", [arn])
                .map_err(db("deleting a managed policy"))?;
            tx.execute("DELETE FROM managed_policies WHERE arn = ?1", [arn])
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
        self.write("creating a policy version", |tx| {
            let next: Option<i64> = tx
                .query_row(
                    "SELECT next_version FROM managed_policies WHERE arn = ?1",
                    [arn],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db("creating a policy version"))?;
            let Some(next) = next else {
                return Err(no_policy(arn));
            };
            let n = count(
                tx,
                "SELECT count(*) FROM policy_versions WHERE policy_arn = ?1",
                &[&arn],
            )?;
            if n >= max as i64 {
                return Err(IdentityError::LimitExceeded(format!(
                    "A managed policy can have up to {max} versions. Before you create a new \
                     version, you must delete an existing version."
                )));
            }
            let version_id = format!("v{next}");
            insert_version(tx, arn, &version_id, document, created_ms)?;
            tx.execute(
                "UPDATE managed_policies SET next_version = ?2, updated_ms = ?3 WHERE arn = ?1",
                params![arn, next + 1, created_ms],
            )
            .map_err(db("creating a policy version"))?;
            if set_default {
                tx.execute(
                    "UPDATE managed_policies SET default_version = ?2 WHERE arn = ?1",
                    params![arn, version_id],
                )
                .map_err(db("creating a policy version"))?;
            }
            Ok(version_id)
        })
    }

    fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
        now_ms: i64,
    ) -> Result<(), IdentityError> {
        self.write("setting the default policy version", |tx| {
            if !exists(tx, "SELECT 1 FROM managed_policies WHERE arn = ?1", &[&arn])? {
                return Err(no_policy(arn));
            }
            if !exists(
                tx,
                "SELECT 1 FROM policy_versions WHERE policy_arn = ?1 AND version_id = ?2",
                &[&arn, &version_id],
            )? {
                return Err(no_version(arn, version_id));
            }
            tx.execute(
                "UPDATE managed_policies SET default_version = ?2, updated_ms = ?3 WHERE arn = ?1",
                params![arn, version_id, now_ms],
            )
            .map_err(db("setting the default policy version"))?;
            Ok(())
        })
    }

    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), IdentityError> {
        self.write("deleting a policy version", |tx| {
            let default: Option<String> = tx
                .query_row(
                    "SELECT default_version FROM managed_policies WHERE arn = ?1",
                    [arn],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db("deleting a policy version"))?;
            let Some(default) = default else {
                return Err(no_policy(arn));
            };
            if default == version_id {
                return Err(IdentityError::DeleteConflict(
                    "Cannot delete the default version of a policy.".into(),
                ));
            }
            let n = tx
                .execute(
                    "DELETE FROM policy_versions WHERE policy_arn = ?1 AND version_id = ?2",
                    params![arn, version_id],
                )
                .map_err(db("deleting a policy version"))?;
            if n == 0 {
                return Err(no_version(arn, version_id));
            }
            Ok(())
        })
    }

    fn put_aws_managed_policy(&self, p: &ManagedPolicy) -> Result<(), IdentityError> {
        self.write("installing an AWS managed policy", |tx| {
            let ctx = db("installing an AWS managed policy");
            tx.execute(
                "INSERT INTO managed_policies (arn, name, id, path, description, created_ms,
                 aws_managed, default_version, next_version, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, 1, ?8)
                 ON CONFLICT (arn) DO UPDATE SET description = excluded.description,
                 default_version = excluded.default_version, updated_ms = excluded.updated_ms",
                params![
                    p.arn,
                    p.name,
                    p.id,
                    p.path,
                    p.description,
                    p.created_ms,
                    p.default_version,
                    p.updated_ms
                ],
            )
            .map_err(&ctx)?;
            tx.execute(
                "DELETE FROM policy_versions WHERE policy_arn = ?1",
                [&p.arn],
            )
            .map_err(&ctx)?;
            insert_version(tx, &p.arn, &p.default_version, &p.document, p.updated_ms)
        })
    }

    fn reseal_secrets(&self, reseal: Reseal<'_>) -> Result<usize, IdentityError> {
        let ctx = "resealing secrets";
        self.write(ctx, |tx| {
            let sealed: Vec<(String, Vec<u8>)> = tx
                .prepare("SELECT id, sealed_secret FROM access_keys")
                .and_then(|mut st| {
                    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()
                })
                .map_err(db(ctx))?;
            let mut update = tx
                .prepare_cached("UPDATE access_keys SET sealed_secret = ?2 WHERE id = ?1")
                .map_err(db(ctx))?;
            for (id, old) in &sealed {
                update
                    .execute(params![id, reseal(id, old)?])
                    .map_err(db(ctx))?;
            }
            Ok(sealed.len())
        })
    }

    fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<(), IdentityError> {
        if usage.is_empty() {
            return Ok(());
        }
        self.write("recording access key use", |tx| {
            let mut st = tx
                .prepare_cached(
                    "UPDATE access_keys SET last_used_ms = ?2, last_used_service = ?3,
                     last_used_region = ?4 WHERE id = ?1",
                )
                .map_err(db("recording access key use"))?;
            for u in usage {
                st.execute(params![u.key_id, u.at_ms, u.service, u.region])
                    .map_err(db("recording access key use"))?;
            }
            Ok(())
        })
    }

    fn attach_policy(&self, holder: &Holder, arn: &str, max: usize) -> Result<(), IdentityError> {
        self.write("attaching a policy", |tx| {
            require_holder(tx, holder)?;
            if !exists(tx, "SELECT 1 FROM managed_policies WHERE arn = ?1", &[&arn])? {
                return Err(no_policy(arn));
            }
            let n = count(
                tx,
                "SELECT count(*) FROM attachments WHERE holder_kind = ?1 AND holder = ?2 AND policy_arn <> ?3",
                &[&holder.kind(), &holder.name(), &arn],
            )?;
            if n >= max as i64 {
                let which = match holder {
                    Holder::User(_) => "PoliciesPerUser",
                    Holder::Role(_) => "PoliciesPerRole",
                };
                return Err(IdentityError::LimitExceeded(format!(
                    "Cannot exceed quota for {which}: {max}"
                )));
            }
            tx.execute(
                "INSERT OR IGNORE INTO attachments (holder_kind, holder, policy_arn) VALUES (?1, ?2, ?3)",
                params![holder.kind(), holder.name(), arn],
            )
            .map_err(db("attaching a policy"))?;
            Ok(())
        })
    }

    fn detach_policy(&self, holder: &Holder, arn: &str) -> Result<(), IdentityError> {
        self.write("detaching a policy", |tx| {
            require_holder(tx, holder)?;
            let n = tx
                .execute(
                    "DELETE FROM attachments WHERE holder_kind = ?1 AND holder = ?2 AND policy_arn = ?3",
                    params![holder.kind(), holder.name(), arn],
                )
                .map_err(db("detaching a policy"))?;
            if n == 0 {
                return Err(IdentityError::NoSuchEntity(format!(
                    "Policy `{arn}` was not found."
                )));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, SqliteIdentityStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteIdentityStore::open(&dir.path().join("identity.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn a_first_schema_database_migrates_its_policies_to_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO managed_policies VALUES ('arn:aws:iam::1:policy/p', 'p', 'ANPA1', '/', '{\"d\":1}', 'x', 7);
                 INSERT INTO roles VALUES ('r', 'AROA1', 'arn:aws:iam::1:role/r', '/', '{}', NULL, 3600, '[]', 1);
                 INSERT INTO attachments VALUES ('role', 'r', 'arn:aws:iam::1:policy/p');
                 INSERT INTO users VALUES ('u', 'AIDA1', 'arn:aws:iam::1:user/u', '/', '[]', 1);
                 INSERT INTO access_keys VALUES ('AKIA1', 'u', 'Active', x'01', 1, 5);",
            )
            .unwrap();
        }
        let s = SqliteIdentityStore::open(&path).unwrap();
        let d = s.load().unwrap();
        assert_eq!(d.policies.len(), 1);
        let p = &d.policies[0];
        assert_eq!(
            (p.default_version.as_str(), p.document.as_str()),
            ("v1", "{\"d\":1}")
        );
        assert_eq!((p.created_ms, p.updated_ms), (7, 7));
        assert_eq!(p.description.as_deref(), Some("x"));
        assert_eq!(d.versions.len(), 1);
        assert_eq!(d.attachments.len(), 1);
        assert_eq!(d.keys[0].last_used_ms, Some(5));
        assert_eq!(d.keys[0].last_used_service, None);
        // A database from before the generation starts it at zero.
        assert_eq!(d.generation, 0);
        // The next version continues the numbering.
        assert_eq!(
            s.create_policy_version(&p.arn, "{}", 8, false, 5).unwrap(),
            "v2"
        );
        assert_eq!(s.generation().unwrap(), 1);
        // Foreign keys still hold after the rebuild.
        assert!(s
            .attach_policy(&Holder::Role("r".into()), "arn:aws:iam::1:policy/none", 10)
            .is_err());
    }

    #[test]
    fn opening_goes_through_the_shared_plumbing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.db");
        drop(SqliteIdentityStore::open(&path).unwrap());
        let mode = fs_mode(&path);
        assert_eq!(mode, 0o600, "the identity database is private to its owner");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(SqliteIdentityStore::open(&path).unwrap());
        assert_eq!(fs_mode(&path), 0o600, "and made private again");
        // A schema from a newer build is refused with the identity error, not misread.
        let newer = MIGRATIONS.len() as i64 + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let err = SqliteIdentityStore::open(&path).unwrap_err();
        assert!(
            matches!(err, IdentityError::SchemaTooNew { found, supported }
                if found == newer && supported == MIGRATIONS.len() as i64),
            "{err}"
        );
        assert_eq!(err.code(), "ServiceFailure");
    }

    #[test]
    fn a_database_failure_keeps_its_cause_as_an_opaque_source() {
        let (_dir, s) = open();
        let err = s
            .write("testing", |tx| {
                tx.execute("INSERT INTO nowhere VALUES (1)", [])
                    .map_err(db("writing nowhere"))?;
                Ok(())
            })
            .unwrap_err();
        assert!(
            matches!(
                &err,
                IdentityError::Database {
                    context: "writing nowhere",
                    ..
                }
            ),
            "{err}"
        );
        let cause = std::error::Error::source(&err).expect("the cause is kept");
        assert!(cause.to_string().contains("no such table"), "{cause}");
        assert!(!err.is_client_error());
    }

    fn fs_mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
}

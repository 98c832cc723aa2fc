//! Warden's durable state, split by concern so that each can move to a networked backend
//! on its own, without touching the engine or the API:
//!
//! - [`FunctionStore`]: functions, versions, aliases, resource policies, reserved
//!   concurrency and settings;
//! - [`EventQueue`]: the durable async event queue, whose leases belong to a node and
//!   expire (see [`queue`]);
//! - [`LogStore`]: function logs;
//! - [`BlobStore`]: content-addressed code (zips and extracted trees) on the local disk;
//! - identity (users, keys, roles, policies) keeps its own store trait in
//!   `warden-identity`.
//!
//! [`Store`] is all of the first three at once, for callers that need more than one.
//! Errors ([`StoreError`]) name no backend: a backend failure carries its cause as an opaque
//! source. Stored records are versioned and tolerate fields this build does not know (see
//! [`record`]).
//!
//! Every method is synchronous and returns only after the write is durable: an
//! acknowledged write survives `kill -9` of the server. Callers on an async runtime run
//! these calls on a blocking thread.
//!
//! # The embedded implementation
//!
//! [`sqlite::SqliteStore`] keeps metadata in one SQLite file (for example `warden.db`) and
//! logs in a second file beside it (`warden.logs.db`), so that log batches never wait for
//! metadata writes; the shared plumbing (private files, WAL, migrations) is `warden-sqlite`.
//! Metadata schema (version 3, tracked in `PRAGMA user_version`):
//!
//! - `functions(name PK, next_version)`: one row per function; `next_version` is the
//!   per-function counter that makes version numbers never reused, even after deletion.
//! - `versions(function, version_num, code_sha256, revision_id, source_digest, record)`,
//!   primary key `(function, version_num)`, where `version_num` 0 is `$LATEST` and `record`
//!   is the JSON [`FunctionVersion`] (a [`record`]).
//! - `aliases(function, name, function_version, routing_version, revision_id, record)`.
//! - `reserved_concurrency(function PK, reserved)`.
//! - `function_policies(function PK, document)`.
//! - `events(seq PK autoincrement, id unique, function, qualifier, payload, attempts,
//!   not_before_ms, enqueued_ms, leased_until_ms, leased_by, lease_token)`: the durable async
//!   queue; `seq` is the enqueue order.
//! - `settings(key PK, value)`.
//! - `function_tags(function, key, value)`, primary key `(function, key)`: a function's
//!   tags (schema version 3).
//!
//! The logs file (schema version 2) holds `logs(seq PK autoincrement, function,
//! timestamp_ms, request_id, message, source)`, where `source` says whether Warden
//! (`platform`: `START`, `END`, `REPORT`, timeouts, truncation markers) or the function
//! (`function`: its stdout and stderr) wrote the line, so that a function cannot forge a
//! platform line. It uses `auto_vacuum=INCREMENTAL`, so that [`LogStore::prune_logs`] gives
//! the space of deleted lines back to the file system.
//!
//! **Durability invariant:** the metadata database runs in WAL mode with
//! `synchronous=FULL`, so every committed transaction has been fsynced to the WAL before
//! the method returns; a returned `Ok` survives `kill -9` and power loss. The logs
//! database uses `synchronous=NORMAL`: acknowledged log lines survive a process crash but
//! the newest ones may be lost on power loss. [`blobs::BlobStore`] makes a blob visible
//! only by renaming a fully written and fsynced file or tree into place.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use warden_types::layer::{LayerName, LayerVersion};
use warden_types::{FunctionName, FunctionVersion};

pub mod blobs;
#[cfg(test)]
mod contract;
pub mod logs;
pub mod postgres;
pub mod queue;
pub mod record;
mod rules;
pub mod slots;
pub mod sqlite;

pub use blobs::{sha256_base64, BlobStore};
pub use logs::{
    Cursor, EventRange, EventRef, LogGroup, LogGroupInfo, LogRecord, LogRetention, LogSource,
    LogStore, LogStreamInfo, PruneReport, Scan, StoredEvent, StreamQuery, FUNCTION_GROUP_PREFIX,
};
pub use postgres::PostgresStore;
pub use queue::{EventQueue, Lease, LeasedEvent, QueuedEvent, Settled};
pub use slots::SlotLeases;
pub use sqlite::SqliteStore;
pub use warden_types::NodeId;

/// What went wrong in the store. Conflicts and failed preconditions are ordinary outcomes
/// the API maps to 409 and 412; `Backend` is an internal failure. No variant names the
/// backend's own error type: its cause travels as an opaque source, so that callers match
/// on outcomes, never on SQLite's (or a future backend's) codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with that key is already stored.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// No record with that key is stored.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The caller's revision id is not the record's current one.
    #[error("the revision id `{expected}` does not match the current revision `{actual}`")]
    RevisionMismatch {
        /// The revision id the caller gave.
        expected: String,
        /// The current revision id.
        actual: String,
    },
    /// The change conflicts with the stored state (a version in use by an alias, for instance).
    #[error("{0}")]
    Conflict(String),
    #[error("database error while {context}: {source}")]
    /// The backend failed.
    Backend {
        /// What the store was doing.
        context: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("stored record for {what} is unreadable: {source}")]
    /// A stored record does not parse.
    Corrupt {
        /// The record concerned.
        what: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A stored record says that only a newer Warden may read it (see [`record`]): this
    /// build refuses it rather than misread it.
    #[error("stored record for {what} needs a Warden that reads record version {needs} (this one reads up to {supported})")]
    RecordTooNew {
        /// The record concerned.
        what: String,
        /// The record version it needs.
        needs: u32,
        /// The newest record version this build reads.
        supported: u32,
    },
    /// A record handed to the store breaks the store's own rules (for example a `$LATEST`
    /// update whose `version` is not `$LATEST`); a bug in the caller, not user input.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Another process holds this node id on the shared store and was seen within the
    /// liveness window: two live processes may not share one.
    #[error("node id `{id}` is held by another live node (seen {seen_secs_ago:.1} s ago); give each node its own --node-id, or wait until the other is stopped")]
    NodeIdHeld {
        /// The node id.
        id: String,
        /// Seconds since its holder was last seen.
        seen_secs_ago: f64,
    },
    /// The database was written by a newer Warden whose schema this build does not know.
    #[error("the database schema version {found} is newer than the newest this build supports ({supported})")]
    SchemaTooNew {
        /// The database's schema version.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },
    /// WAL mode is what makes readers never block the writer; a file system that cannot
    /// hold it (no shared memory) is refused rather than silently slower.
    #[error(
        "the database at `{path}` cannot use write-ahead logging (journal mode stayed `{mode}`)"
    )]
    WalUnavailable {
        /// The database file.
        path: std::path::PathBuf,
        /// The journal mode it stayed in.
        mode: String,
    },
    /// The write was queued for a group commit but the thread running that batch died
    /// before reporting; whether it was committed is unknown.
    #[error("the write was abandoned because the batch carrying it failed unexpectedly")]
    WriteAbandoned,
    #[error("database file I/O failed while {context} at `{path}`: {source}")]
    /// A database file or directory could not be read or written.
    DatabaseIo {
        /// What the store was doing.
        context: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    #[error("blob store I/O failed while {context} at `{path}`: {source}")]
    /// A code blob could not be read or written.
    BlobIo {
        /// What the store was doing.
        context: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// An alias: a named pointer to a published version (or `$LATEST`), optionally splitting
/// traffic with a second version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alias {
    /// The function it belongs to.
    pub function: FunctionName,
    /// Its name.
    pub name: String,
    /// The version it points to.
    pub function_version: String,
    /// Its description.
    pub description: String,
    /// Additional version and the share of traffic (0.0-1.0) it receives.
    pub routing: Option<(String, f64)>,
    /// Changes on every write; callers pass it back as a precondition.
    pub revision_id: String,
}

/// Seals one stored version's plain environment (see
/// [`FunctionStore::seal_plaintext_environments`]).
pub type SealPlaintext<'a> =
    &'a mut dyn FnMut(
        &warden_types::FunctionVersion,
    ) -> Result<warden_types::function::SealedEnvironment, StoreError>;

/// Functions and their configuration: versions, aliases, resource policies, reserved
/// concurrency, and server settings. All operations on one function are atomic.
///
/// Who may call it: the control plane (the API's handlers) writes; the engine's registry
/// reads on cold paths; the blob collector lists referenced code. Writes change function
/// configuration only, never the queue or logs (except that deleting a function drops its
/// queued events with it).
pub trait FunctionStore: Send + Sync + 'static {
    // ---- functions and versions ----

    /// Inserts `$LATEST` of a new function; `AlreadyExists` if the name is taken,
    /// `InvalidRecord` if `latest.version` is not `$LATEST`.
    fn create_function(&self, latest: &FunctionVersion) -> Result<(), StoreError>;
    /// One version (`$LATEST` or a number) of a function; `None` also for a `version`
    /// that is neither (such as an alias name).
    fn get_version(
        &self,
        name: &FunctionName,
        version: &str,
    ) -> Result<Option<FunctionVersion>, StoreError>;
    /// Replaces `$LATEST`; with `expected_revision`, fails with `RevisionMismatch` unless
    /// the stored revision equals it. `NotFound` if the function does not exist,
    /// `InvalidRecord` if `latest.version` is not `$LATEST`.
    fn update_latest(
        &self,
        latest: &FunctionVersion,
        expected_revision: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Copies `$LATEST` into the next version number (1, 2, ...) and returns it. If the latest
    /// published version already has the same code sha and configuration, returns that one
    /// instead (Lambda's behaviour). `expected_revision` guards `$LATEST`. The new version
    /// takes `description` if given, else `$LATEST`'s; `$LATEST` itself is unchanged.
    /// Numbers are never reused, even after the versions holding them are deleted.
    fn publish_version(
        &self,
        name: &FunctionName,
        description: Option<&str>,
        expected_revision: Option<&str>,
        new_revision_id: &str,
        now_ms: i64,
    ) -> Result<FunctionVersion, StoreError>;
    /// `$LATEST` of functions ordered by name, starting after `after` (exclusive).
    fn list_functions(
        &self,
        after: Option<&FunctionName>,
        limit: usize,
    ) -> Result<Vec<FunctionVersion>, StoreError>;
    /// Every version of one function: `$LATEST` first, then numbers ascending, starting
    /// after the version `after` (exclusive; a marker naming no version gives an empty
    /// page). `NotFound` if the function does not exist.
    fn list_versions(
        &self,
        name: &FunctionName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FunctionVersion>, StoreError>;
    /// Deletes a whole function (all versions, aliases, concurrency, queued events) or one
    /// published version. Returns false if nothing existed. Deleting a version an alias
    /// points at (as its version or its routing version) fails with `Conflict`, and so
    /// does deleting `$LATEST` alone. Log lines are kept.
    fn delete_function(
        &self,
        name: &FunctionName,
        version: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Every code sha still referenced by some version (for blob garbage collection).
    fn referenced_code(&self) -> Result<Vec<String>, StoreError>;

    // ---- aliases ----

    /// `AlreadyExists` if taken; `NotFound` if the function or target version is missing.
    fn create_alias(&self, alias: &Alias) -> Result<(), StoreError>;
    /// The alias `name` of `function`, if it exists.
    fn get_alias(&self, function: &FunctionName, name: &str) -> Result<Option<Alias>, StoreError>;
    /// Replaces an alias, guarded by `expected_revision`; `NotFound` if the alias or a
    /// target version is missing.
    fn update_alias(
        &self,
        alias: &Alias,
        expected_revision: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Deletes an alias; whether it existed.
    fn delete_alias(&self, function: &FunctionName, name: &str) -> Result<bool, StoreError>;
    /// Aliases of a function ordered by name after `after` (exclusive), optionally only
    /// those pointing at `version` (as their version or their routing version).
    /// `NotFound` if the function does not exist.
    fn list_aliases(
        &self,
        function: &FunctionName,
        version: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Alias>, StoreError>;

    // ---- concurrency ----

    /// Sets (Some) or removes (None) a function's reserved concurrency; `NotFound` if the
    /// function does not exist.
    fn put_reserved_concurrency(
        &self,
        function: &FunctionName,
        reserved: Option<u32>,
    ) -> Result<(), StoreError>;
    /// The reserved concurrency of `function`, if it has one.
    fn get_reserved_concurrency(&self, function: &FunctionName) -> Result<Option<u32>, StoreError>;
    /// Every function with a reservation, for the account totals.
    fn all_reserved_concurrency(&self) -> Result<Vec<(FunctionName, u32)>, StoreError>;

    // ---- resource policies ----

    /// A function's resource-based policy document, if it has one.
    fn get_function_policy(&self, function: &FunctionName) -> Result<Option<String>, StoreError>;
    /// Replaces (Some) or removes (None) a function's policy; `NotFound` if the function
    /// does not exist. Deleting the function deletes its policy in the same transaction.
    fn put_function_policy(
        &self,
        function: &FunctionName,
        document: Option<&str>,
    ) -> Result<(), StoreError>;

    // ---- settings ----

    /// A small key-value table for server identity (account id) and similar.
    fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Seals every environment an older Warden stored in plain text: each version whose
    /// `environment` is not empty and that has no `sealed_environment` gets
    /// `seal(version)` instead, one transaction per function. Publishing deduplication
    /// keeps working: the published versions copied from a `$LATEST` follow its new digest.
    /// Returns how many versions were sealed.
    fn seal_plaintext_environments(&self, seal: SealPlaintext<'_>) -> Result<usize, StoreError>;
    /// Stores a server-wide setting (the account id, for instance).
    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    // ---- tags ----
    //
    // A function's tags belong to the function (not to a version): creating a function
    // may set them in the same transaction, and deleting the function deletes them.
    // Callers check Lambda's tag rules (`warden_types::Tags`) first; the store keeps what
    // it is given.

    /// [`Store::create_function`] with the function's first tags, in one transaction.
    fn create_tagged_function(
        &self,
        latest: &FunctionVersion,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError>;
    /// Every tag of a function (empty if it has none); `None` if the function does not
    /// exist.
    fn get_tags(
        &self,
        function: &FunctionName,
    ) -> Result<Option<BTreeMap<String, String>>, StoreError>;
    /// Replaces every tag of a function; `NotFound` if the function does not exist.
    fn replace_tags(
        &self,
        function: &FunctionName,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError>;
}

/// Layer versions and their permissions. A version number is never reused: deleting a
/// version removes its record and policy, and the next publish still counts on.
pub trait LayerStore: Send + Sync + 'static {
    /// Stores `draft` as the next version of its layer (its `version` is ignored) and
    /// returns it with the number it got.
    fn publish_layer_version(&self, draft: &LayerVersion) -> Result<LayerVersion, StoreError>;
    /// One version, if it exists (and was not deleted).
    fn get_layer_version(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<Option<LayerVersion>, StoreError>;
    /// The versions of a layer, newest first, after `before` (a version number) if given.
    fn list_layer_versions(
        &self,
        name: &LayerName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>, StoreError>;
    /// The newest version of every layer that has one, by name, after `after`.
    fn list_layers(
        &self,
        after: Option<&LayerName>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>, StoreError>;
    /// Deletes one version; `false` if it did not exist.
    fn delete_layer_version(&self, name: &LayerName, version: u64) -> Result<bool, StoreError>;
    /// A version's permission policy (JSON), if it has one.
    fn get_layer_policy(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<Option<String>, StoreError>;
    /// Replaces (or with `None` removes) a version's policy; `NotFound` if the version
    /// does not exist.
    fn put_layer_policy(
        &self,
        name: &LayerName,
        version: u64,
        document: Option<&str>,
    ) -> Result<(), StoreError>;
}

/// Every concern of the metadata and log store at once: what callers hold while they still
/// need more than one (`Arc<dyn Store>`). Implemented for anything that implements them
/// all; new code should ask for the narrowest trait it uses.
pub trait Store: FunctionStore + EventQueue + LogStore + LayerStore {}

impl<T: FunctionStore + EventQueue + LogStore + LayerStore + ?Sized> Store for T {}

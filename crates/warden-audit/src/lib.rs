//! Warden's tamper-evident audit trail: every API call as a CloudTrail event, in an
//! append-only log that an attacker holding the data directory cannot rewrite unnoticed.
//!
//! - [`event`] — the CloudTrail record (eventVersion 1.11), redaction of secrets, and the
//!   encoding whose exact bytes are stored and hashed.
//! - [`log`] — the log on SQLite. Each event gets an RFC 6962 leaf hash and a chain hash
//!   (`SHA-256(previous chain || leaf)`); the Merkle tree's interior nodes are stored with
//!   them; signed digests live in the same file. [`Store`] says where a log is.
//! - [`postgres`] — the same log in PostgreSQL, shared by the nodes of a cluster, whose
//!   writers take turns on its head row.
//! - [`recorder`] — group commit. Callers wait until their event is on disk; concurrent
//!   callers share one fsync.
//! - [`merkle`] — tree heads, inclusion and consistency proofs and their checks.
//! - [`digest`] — signed tree heads chained to each other, the `Signer`/`Verifier` seam the
//!   KMS fills, export to a directory and to a witness command.
//! - [`verify`] — checks events, chain, tree and digests and names what was removed,
//!   altered, reordered, inserted or truncated.
//! - [`lookup`] — LookupEvents.
//!
//! Readers are written once over both stores (a private `source` seam of point reads and
//! paged scans). This crate's public API names no SQLite type: database errors arrive
//! wrapped in `warden_sqlite::Error` or `warden_postgres::Error`.
#![forbid(unsafe_code)]

pub mod digest;
mod error;
pub mod event;
pub mod log;
pub mod lookup;
pub mod merkle;
pub mod postgres;
pub mod recorder;
mod source;
pub mod verify;

#[cfg(test)]
mod test_support;

pub use digest::{Digest, Ed25519Signer, Ed25519Verifier, Signer, Verifier};
pub use error::Error;
pub use event::{CloudTrailEvent, EncodedEvent, UserIdentity};
pub use log::{AuditLog, AuditReader, Store};
pub use lookup::{LookupAttribute, LookupPage, LookupQuery};
pub use postgres::TRACK as POSTGRES_TRACK;
pub use recorder::{Pending, Recorder, RecorderConfig};
pub use verify::{Finding, Report, VerifyOptions};

//! IAM users, access keys, roles and policies for Warden: durable encrypted storage, the
//! in-memory credential cache the SigV4 verifier reads, execution-role sessions and the
//! AWS-compatible IAM/STS query API.
#![forbid(unsafe_code)]

mod aws_policies;
#[cfg(test)]
mod contract;
mod crypto;
mod error;
pub mod postgres;
mod query;
mod service;
mod shared_sessions;
mod store;

pub use crypto::{MasterKey, MASTER_KEY_LEN};
pub use error::IdentityError;
pub use postgres::PostgresIdentityStore;
pub use query::{
    is_sts_action, parse_form, percent_encode, QueryError, StsTarget, Trust, CONTENT_TYPE,
    IAM_NAMESPACE, IAM_VERSION, STS_ACTIONS, STS_NAMESPACE, STS_VERSION,
};
pub use service::{
    AssumeRoleRequest, AssumedRole, Identity, ADMIN_POLICY, ADMIN_USER, EXECUTION_SERVICE,
    MAX_ASSUMED_SESSIONS, MAX_ATTACHED_POLICIES, MAX_KEYS_PER_USER, MAX_POLICY_VERSIONS,
    MAX_SESSION_POLICY_ARNS, MAX_SESSION_POLICY_CHARS, MAX_SESSION_TTL, MIN_ASSUMED_SESSION_S,
    ROLE_CHAINING_MAX_S,
};
pub use shared_sessions::{SharedSessions, StoredSession};
pub use store::{
    Dump, Holder, IdentityStore, InlinePolicy, KeyStatus, KeyUsage, ManagedPolicy, PolicyVersion,
    Role, SqliteIdentityStore, StoredKey, Tags, User,
};

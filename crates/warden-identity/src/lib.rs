//! IAM users, access keys, roles and policies for Warden: durable encrypted storage, the
//! in-memory credential cache the SigV4 verifier reads, execution-role sessions and the
//! AWS-compatible IAM/STS query API.
#![forbid(unsafe_code)]

mod crypto;
mod error;
mod query;
mod service;
mod store;

pub use crypto::{MasterKey, MASTER_KEY_LEN};
pub use error::IdentityError;
pub use query::{
    parse_form, percent_encode, QueryError, QueryResponse, CONTENT_TYPE, IAM_NAMESPACE,
    STS_NAMESPACE,
};
pub use service::{
    Identity, ADMIN_POLICY, ADMIN_USER, EXECUTION_SERVICE, MAX_ATTACHED_POLICIES,
    MAX_KEYS_PER_USER, MAX_SESSION_TTL,
};
pub use store::{
    Dump, Holder, IdentityStore, InlinePolicy, KeyStatus, ManagedPolicy, Role, SqliteIdentityStore,
    StoredKey, Tags, User,
};

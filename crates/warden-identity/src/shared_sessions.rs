//! `AssumeRole` sessions shared by the nodes of a deployment.
//!
//! With the embedded store a role session lives only in the memory of the server that
//! issued it. Nodes sharing a PostgreSQL store also write each `AssumeRole` session there,
//! sealed under the master key, and every node reads the ones it has not seen on each
//! identity poll, so credentials one node issued are accepted by the others within the
//! poll period. Function instances' sessions stay with their own node: an instance calls
//! only the node that runs it.
//!
//! Who writes: [`crate::Identity::assume_role`] only, after the API authorized the call.
//! Who reads: every node's poll ([`crate::Identity::refresh`]) and its start.

use serde::{Deserialize, Serialize};

use crate::error::IdentityError;

/// One stored session: what the store needs in the clear to bound, order and delete
/// sessions, and the rest sealed.
#[derive(Clone)]
pub struct StoredSession {
    /// Its position: assigned by the store, growing in the order sessions commit.
    pub seq: i64,
    /// The temporary access key id (`ASIA...`), the session's name in every table.
    pub access_key_id: String,
    /// The role it is a session of.
    pub role_arn: String,
    /// When it expires (epoch ms).
    pub expires_ms: i64,
    /// A [`SessionRecord`] as JSON, sealed under the master key with the access key id as
    /// associated data, so a sealed record copied onto another row does not open.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("seq", &self.seq)
            .field("access_key_id", &self.access_key_id)
            .field("role_arn", &self.role_arn)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// What a node needs to accept a session another node issued. Secrets: only ever stored
/// sealed.
#[derive(Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) secret_access_key: String,
    pub(crate) session_token: String,
    pub(crate) role_name: String,
    pub(crate) role_id: String,
    pub(crate) session_name: String,
    pub(crate) tags: Vec<(String, String)>,
    /// The inline session policy, as given (parsed again by each node).
    pub(crate) policy: Option<String>,
    pub(crate) policy_arns: Vec<String>,
}

/// Where the nodes of a deployment keep their `AssumeRole` sessions.
pub trait SharedSessions: Send + Sync {
    /// Stores `session` (its `seq` is ignored and assigned), first deleting expired
    /// sessions; refuses with [`IdentityError::LimitExceeded`] when `max_live` sessions
    /// that expire after `now_ms` are stored already. Positions are assigned in the order
    /// sessions commit, so a reader that saw position `n` never later finds one below it.
    fn put(
        &self,
        session: &StoredSession,
        max_live: usize,
        now_ms: i64,
    ) -> Result<(), IdentityError>;
    /// The sessions stored at positions after `after`, in order (expired ones included:
    /// the reader skips them).
    fn since(&self, after: i64) -> Result<Vec<StoredSession>, IdentityError>;
    /// Deletes the sessions of a deleted role.
    fn delete_role_sessions(&self, role_arn: &str) -> Result<(), IdentityError>;
}

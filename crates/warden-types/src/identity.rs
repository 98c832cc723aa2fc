//! Who is calling: the authenticated principal and the credentials that prove it. Shared
//! by the SigV4 verifier (`warden-auth`), the identity service (`warden-identity`) and the
//! API's authorization step.

use std::collections::BTreeMap;

/// What kind of identity signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An IAM user with long-term access keys.
    User,
    /// A role session (execution-role credentials of a function instance, or assumed).
    AssumedRole {
        /// `arn:aws:iam::ACCOUNT:role/NAME`
        role_arn: String,
        /// The session's name.
        session_name: String,
    },
}

/// An authenticated identity and the attributes policies can refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `arn:aws:iam::ACCOUNT:user/NAME` or `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// The account the principal belongs to.
    pub account: String,
    /// User name for users (`aws:username`); role name for role sessions.
    pub name: String,
    /// Unique id (`aws:userid`): `AIDA...` for users, `AROA...:SESSION` for role sessions.
    pub id: String,
    /// A user or a role session.
    pub kind: PrincipalKind,
    /// `aws:PrincipalTag/KEY` values.
    pub tags: BTreeMap<String, String>,
    /// For a role session: the access key id of its temporary credentials, which names the
    /// session (its session policies are looked up by it). `None` for users.
    pub session: Option<String>,
}

/// One access key as the verifier needs it. The secret is only ever held in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// Required (and must match) for temporary credentials.
    pub session_token: Option<String>,
    /// Epoch ms after which the credential no longer works.
    pub expires_at_ms: Option<i64>,
    /// Who the key belongs to.
    pub principal: Principal,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even in debug output.
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at_ms", &self.expires_at_ms)
            .field("principal", &self.principal.arn)
            .finish()
    }
}

/// Finds the active credential for an access key id; `None` for unknown, inactive or
/// deleted keys.
pub trait CredentialSource: Send + Sync {
    /// The active credential of `access_key_id`, if any.
    fn lookup(&self, access_key_id: &str) -> Option<Credential>;
}

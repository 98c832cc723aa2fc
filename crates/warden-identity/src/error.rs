//! The crate's error type. Entity errors carry the IAM error code they are reported under
//! (see [`IdentityError::code`]); storage and key-file errors are internal and are logged by
//! the query front-end, never sent to clients.

use std::path::PathBuf;

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The named user, role, key, policy or attachment does not exist.
    #[error("{0}")]
    NoSuchEntity(String),
    /// An entity with that name already exists.
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// The entity still has dependents (keys, policies, attachments).
    #[error("{0}")]
    DeleteConflict(String),
    /// A per-entity quota (access keys per user, attached policies) would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// A parameter is missing or does not satisfy IAM's constraints.
    #[error("{0}")]
    Validation(String),
    /// A change to an AWS-managed policy, which only AWS may change (reported as IAM does
    /// for a resource outside the caller's account: `AccessDenied`).
    #[error("{0}")]
    AwsManaged(String),
    /// Session policies and tags passed to `AssumeRole` are too large together.
    #[error("{0}")]
    PackedPolicyTooLarge(String),
    /// A policy document was refused by the policy grammar.
    #[error("{0}")]
    MalformedPolicy(#[from] warden_iam::PolicyError),
    /// The role's trust policy does not let the principal assume it (reported as STS does:
    /// `AccessDenied`).
    #[error("{0}")]
    NotTrusted(String),
    /// The database failed. The cause is kept as an opaque source, so that no backend's
    /// error type is part of this crate's API and a networked store can replace SQLite.
    #[error("identity database: {context}: {source}")]
    Database {
        /// The step that failed.
        context: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Creating, reading or syncing a file in the data directory failed.
    #[error("{context} `{}`: {source}", path.display())]
    File {
        /// The step that failed.
        context: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The master key could not be loaded.
    #[error(transparent)]
    MasterKey(#[from] warden_kms::MasterKeyError),
    /// A stored secret could not be decrypted: wrong master key or tampered data.
    #[error(
        "cannot decrypt the secret of access key `{key_id}`: wrong master key or tampered data"
    )]
    Decrypt {
        /// The access key whose secret failed authentication.
        key_id: String,
    },
    /// The system random number generator or the cipher failed.
    #[error("cryptography failure while {0}")]
    Crypto(&'static str),
    /// The database holds a schema newer than this build understands.
    #[error(
        "identity database schema version {found} is newer than supported version {supported}"
    )]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
}

impl IdentityError {
    /// The IAM error code this error is reported under.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::NoSuchEntity(_) => "NoSuchEntity",
            IdentityError::EntityAlreadyExists(_) => "EntityAlreadyExists",
            IdentityError::DeleteConflict(_) => "DeleteConflict",
            IdentityError::LimitExceeded(_) => "LimitExceeded",
            IdentityError::Validation(_) => "ValidationError",
            IdentityError::AwsManaged(_) => "AccessDenied",
            IdentityError::PackedPolicyTooLarge(_) => "PackedPolicyTooLarge",
            IdentityError::MalformedPolicy(e) => e.code(),
            IdentityError::NotTrusted(_) => "AccessDenied",
            _ => "ServiceFailure",
        }
    }

    /// True for errors caused by the request rather than by the server.
    pub fn is_client_error(&self) -> bool {
        !matches!(self.code(), "ServiceFailure")
    }
}

//! What a control-plane command can fail with. Every variant says which of Lambda's errors
//! it is (the API's one error module maps each to its status and code) and carries the
//! message the caller sees; internal details (store and keyring failures) are for the log.

use warden_store::StoreError;
use warden_types::{ConfigError, NameError};

use crate::code::CodeRefusal;
use crate::keyring::KeyringError;

/// Why a command or read failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A function, version, alias, statement or policy that does not exist
    /// (Lambda's `ResourceNotFoundException`, 404).
    #[error("{0}")]
    NotFound(String),
    /// The resource exists already, or the change conflicts with another resource, such as
    /// deleting a version an alias points at (`ResourceConflictException`, 409).
    #[error("{0}")]
    Conflict(String),
    /// The caller's `RevisionId` is not the current one (`PreconditionFailedException`, 412).
    #[error("The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")]
    RevisionMismatch,
    /// PublishVersion's `CodeSha256` is not `$LATEST`'s (`PreconditionFailedException`, 412).
    #[error("CodeSHA256 ({given}) is different from current CodeSHA256 in $LATEST ({latest}). Please try again with the CodeSHA256 in $LATEST.")]
    CodeShaMismatch {
        /// The `CodeSha256` the caller gave.
        given: String,
        /// `$LATEST`'s `CodeSha256`.
        latest: String,
    },
    /// A value Lambda refuses that no newtype captures (`InvalidParameterValueException`, 400).
    #[error("{0}")]
    Invalid(String),
    /// A configuration value out of Lambda's bounds (`InvalidParameterValueException`, 400).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An invalid name, qualifier or ARN (`InvalidParameterValueException`, 400).
    #[error(transparent)]
    Name(#[from] NameError),
    /// An invalid layer name or layer version ARN (`InvalidParameterValueException`, 400).
    #[error(transparent)]
    Layer(#[from] warden_types::layer::LayerError),
    /// The zip is larger than Lambda's package limit (`RequestTooLargeException`, 413).
    #[error("Request must be smaller than {limit} bytes for the {operation} operation")]
    CodeTooLarge {
        /// The limit, in bytes.
        limit: u64,
        /// The API operation that carried the package.
        operation: &'static str,
    },
    /// The zip cannot be unpacked within the limits (`InvalidZipFileException`, 502).
    #[error(
        "Could not unzip uploaded file. Please check your file, then try to upload again. ({0})"
    )]
    InvalidZip(String),
    /// A code check refused the package (`InvalidParameterValueException`, 400).
    #[error("the package was refused by the `{check}` check: {message}")]
    CodeRefused {
        /// The name of the check.
        check: &'static str,
        /// Why it refused.
        message: String,
    },
    /// The caller may not pass the role to Lambda (`AccessDeniedException`, 403).
    #[error("User: {principal} is not authorized to perform: iam:PassRole on resource: {role}")]
    PassRoleDenied {
        /// The caller's ARN.
        principal: String,
        /// The role's ARN.
        role: String,
    },
    /// A role change from an unsigned caller (`MissingAuthenticationTokenException`, 403).
    #[error("Missing Authentication Token")]
    Unauthenticated,
    /// The role does not exist or its trust policy does not admit Lambda
    /// (`InvalidParameterValueException`, 400).
    #[error("The role defined for the function cannot be assumed by Lambda.")]
    RoleNotAssumable,
    /// The keyring could not seal or open an environment: the key is disabled, pending
    /// deletion or gone (Lambda's `KMS*Exception`, 502), or the keyring failed (500).
    #[error("{0}")]
    Keyring(#[from] KeyringError),
    /// The caller may not have Lambda use the function's KMS key
    /// (`KMSAccessDeniedException`, 502).
    #[error("Lambda was unable to configure access to your environment variables because the KMS key is invalid for CreateGrant. Please check your KMS key settings. KMS Exception: AccessDeniedException KMS Message: {0}")]
    KmsAccessDenied(String),
    /// The package's signature does not match it, whatever the config's policy
    /// (`InvalidCodeSignatureException`, 400).
    #[error("{0}")]
    InvalidCodeSignature(String),
    /// The package is unsigned, expired, signed by a profile the config does not allow, or
    /// revoked, under an `Enforce` policy (`CodeVerificationFailedException`, 400).
    #[error("{0}")]
    CodeVerificationFailed(String),
    /// The code signing config named does not exist (`CodeSigningConfigNotFoundException`,
    /// 404).
    #[error("{0}")]
    CodeSigningConfigNotFound(String),
    /// The store failed (internal, 500).
    #[error("the store failed: {0}")]
    Store(StoreError),
    /// Anything else that is Warden's fault (internal, 500).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ControlError {
    /// The store's ordinary outcomes become the caller's errors with the store's message;
    /// anything else is internal.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(what) => Self::Conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => Self::NotFound(format!("{what} does not exist")),
            StoreError::RevisionMismatch { .. } => Self::RevisionMismatch,
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Store(other),
        }
    }
}

impl From<CodeRefusal> for ControlError {
    fn from(e: CodeRefusal) -> Self {
        match e {
            CodeRefusal::TooLarge { limit, operation } => Self::CodeTooLarge { limit, operation },
            CodeRefusal::InvalidZip(m) => Self::InvalidZip(m),
            CodeRefusal::Refused { check, message } => Self::CodeRefused { check, message },
            CodeRefusal::Internal(m) => Self::Internal(m),
        }
    }
}

/// Refuses a command whose `RevisionId` (if the caller gave one) is not the record's
/// current revision.
pub(crate) fn check_revision(expected: Option<&str>, current: &str) -> Result<(), ControlError> {
    match expected {
        Some(e) if e != current => Err(ControlError::RevisionMismatch),
        _ => Ok(()),
    }
}

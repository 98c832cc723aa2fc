//! Secrets Manager's errors, each one of the service's documented exceptions. Messages
//! never carry a secret's value.

use warden_kms::KmsError;

/// Why a Secrets Manager operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// No such secret or version (`ResourceNotFoundException`).
    #[error("{0}")]
    NotFound(String),
    /// A secret of that name exists, or a version of that token with another value
    /// (`ResourceExistsException`).
    #[error("{0}")]
    Exists(String),
    /// A parameter outside its limits (`InvalidParameterException`).
    #[error("{0}")]
    InvalidParameter(String),
    /// The secret's state forbids the call, such as one scheduled for deletion
    /// (`InvalidRequestException`).
    #[error("{0}")]
    InvalidRequest(String),
    /// Too many secrets or versions (`LimitExceededException`).
    #[error("{0}")]
    LimitExceeded(String),
    /// A resource policy that does not parse (`MalformedPolicyDocumentException`).
    #[error("{0}")]
    MalformedPolicy(String),
    /// A resource policy that would open the secret to everyone
    /// (`PublicPolicyException`).
    #[error("{0}")]
    PublicPolicy(String),
    /// The KMS key refused: disabled, pending deletion, gone, or the ciphertext does not
    /// open (`DecryptionFailure` / `EncryptionFailure`, with KMS's reason).
    #[error("{message}")]
    Kms {
        /// `DecryptionFailure` or `EncryptionFailure`.
        code: &'static str,
        /// KMS's reason.
        message: String,
    },
    /// The store failed (`InternalServiceError`); details are logged, not sent.
    #[error("the secrets store failed while {context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: warden_sqlite::Error,
    },
    /// The shared store in PostgreSQL failed (`InternalServiceError`); details are
    /// logged, not sent.
    #[error("the secrets store failed while {context}: {source}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// The underlying error (never the connection's password).
        #[source]
        source: warden_postgres::Error,
    },
}

impl SecretsError {
    /// The service's error code (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            SecretsError::NotFound(_) => "ResourceNotFoundException",
            SecretsError::Exists(_) => "ResourceExistsException",
            SecretsError::InvalidParameter(_) => "InvalidParameterException",
            SecretsError::InvalidRequest(_) => "InvalidRequestException",
            SecretsError::LimitExceeded(_) => "LimitExceededException",
            SecretsError::MalformedPolicy(_) => "MalformedPolicyDocumentException",
            SecretsError::PublicPolicy(_) => "PublicPolicyException",
            SecretsError::Kms { code, .. } => code,
            SecretsError::Store { .. } | SecretsError::Shared { .. } => "InternalServiceError",
        }
    }

    /// Whether the failure is the server's (500), not the request's (400).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            SecretsError::Store { .. } | SecretsError::Shared { .. }
        )
    }

    pub(crate) fn kms(code: &'static str, e: KmsError) -> SecretsError {
        SecretsError::Kms {
            code,
            message: format!("KMS refused: {} ({})", e, e.code()),
        }
    }
}

pub(crate) fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> SecretsError {
    move |e| SecretsError::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}

pub(crate) fn shared(context: &'static str) -> impl FnOnce(warden_postgres::Error) -> SecretsError {
    move |source| SecretsError::Shared { context, source }
}

impl From<warden_postgres::Error> for SecretsError {
    fn from(source: warden_postgres::Error) -> Self {
        SecretsError::Shared {
            context: "talking to PostgreSQL",
            source,
        }
    }
}

impl warden_postgres::AsPostgres for SecretsError {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        match self {
            SecretsError::Shared { source, .. } => source.as_postgres(),
            _ => None,
        }
    }
}

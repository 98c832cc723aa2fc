//! KMS errors, each one of the service's documented exceptions. Messages never carry
//! plaintext, key material or a ciphertext's bytes.

use crate::master::MasterKeyError;

/// Why a KMS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// No such key or alias (`NotFoundException`).
    #[error("{0}")]
    NotFound(String),
    /// The key is disabled (`DisabledException`).
    #[error("{0} is disabled.")]
    Disabled(String),
    /// The key's state forbids the operation, such as pending deletion
    /// (`KMSInvalidStateException`).
    #[error("{0}")]
    InvalidState(String),
    /// The ciphertext does not authenticate: tampered with, another context, unknown
    /// format (`InvalidCiphertextException`).
    #[error("The ciphertext is invalid or does not match the encryption context.")]
    InvalidCiphertext,
    /// The ciphertext was not made by the key the caller named (`IncorrectKeyException`).
    #[error("The key ID in the request does not identify a CMK that can perform this operation.")]
    IncorrectKey,
    /// A request value outside its limits (`ValidationException`).
    #[error("{0}")]
    Validation(String),
    /// An alias or key already exists (`AlreadyExistsException`).
    #[error("{0}")]
    AlreadyExists(String),
    /// An alias name KMS does not accept (`InvalidAliasNameException`).
    #[error("{0}")]
    InvalidAliasName(String),
    /// A key used for what its usage does not allow (`InvalidKeyUsageException`).
    #[error("{0}")]
    InvalidKeyUsage(String),
    /// A key policy that does not parse or would lock the caller out
    /// (`MalformedPolicyDocumentException`).
    #[error("{0}")]
    MalformedPolicy(String),
    /// Too many keys, aliases, materials or tags (`LimitExceededException`).
    #[error("{0}")]
    LimitExceeded(String),
    /// A tag KMS does not accept (`TagException`).
    #[error("{0}")]
    Tag(String),
    /// A pagination marker this service did not hand out (`InvalidMarkerException`).
    #[error("The marker is invalid.")]
    InvalidMarker,
    /// A feature of KMS Warden does not implement, named (`UnsupportedOperationException`).
    #[error("{0}")]
    Unsupported(String),
    /// The store failed (`KMSInternalException`); the details are logged, not sent.
    #[error("the key store failed while {context}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: warden_sqlite::Error,
    },
    /// The shared (PostgreSQL) store failed (`KMSInternalException`); the details are
    /// logged, not sent.
    #[error("the shared key store failed while {context}")]
    SharedStore {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: warden_postgres::Error,
    },
    /// Other nodes kept changing the shared store while this one tried to write; nothing
    /// was written (`KMSInternalException`).
    #[error("the key store kept changing while {0}; try again")]
    Contended(&'static str),
    /// Stored key material does not open under the master key.
    #[error("the material of key {0} does not open under this master key")]
    Sealed(String),
    /// The master key failed, or is not the one this data directory was sealed with.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    /// The master key is not the one that sealed this data directory.
    #[error(
        "the master key (fingerprint {given}) is not the one that sealed this data directory \
         (fingerprint {expected}); nothing was read or changed. Start with the right key file \
         or passphrase"
    )]
    WrongMasterKey {
        /// The given key's fingerprint.
        given: String,
        /// The fingerprint the data directory records.
        expected: String,
    },
    /// The cipher or the random number generator failed.
    #[error("cryptography failure while {0}")]
    Crypto(&'static str),
}

impl KmsError {
    /// The service's error code (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext => "InvalidCiphertextException",
            KmsError::IncorrectKey => "IncorrectKeyException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::InvalidAliasName(_) => "InvalidAliasNameException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::MalformedPolicy(_) => "MalformedPolicyDocumentException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::Tag(_) => "TagException",
            KmsError::InvalidMarker => "InvalidMarkerException",
            KmsError::Unsupported(_) => "UnsupportedOperationException",
            KmsError::Store { .. }
            | KmsError::SharedStore { .. }
            | KmsError::Contended(_)
            | KmsError::Sealed(_)
            | KmsError::Master(_)
            | KmsError::WrongMasterKey { .. }
            | KmsError::Crypto(_) => "KMSInternalException",
        }
    }

    /// Whether the failure is the server's (500), not the request's (400).
    pub fn is_internal(&self) -> bool {
        self.code() == "KMSInternalException"
    }
}

pub(crate) fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> KmsError {
    move |e| KmsError::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}

pub(crate) fn plumbing(context: &'static str) -> impl FnOnce(warden_sqlite::Error) -> KmsError {
    move |source| KmsError::Store { context, source }
}

pub(crate) fn shared(context: &'static str) -> impl FnOnce(warden_postgres::Error) -> KmsError {
    move |source| KmsError::SharedStore { context, source }
}

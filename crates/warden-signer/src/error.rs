//! Code signing's errors. Each maps to one documented exception of Signer's or Lambda's
//! API (the API crate chooses which, by the operation's service).

/// Why a signing or code signing config operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// No such profile, profile version, job or code signing config.
    #[error("{0}")]
    NotFound(String),
    /// A parameter outside its limits, or a member Warden does not implement.
    #[error("{0}")]
    Validation(String),
    /// The request conflicts with the resource's state (a revision that moved on, a
    /// statement id in use, a config still used by functions).
    #[error("{0}")]
    Conflict(String),
    /// Too many profiles, permissions or configs.
    #[error("{0}")]
    LimitExceeded(String),
    /// The package to sign is already signed.
    #[error("the zip is already signed; sign the unsigned package")]
    AlreadySigned,
    /// The package to sign has no file.
    #[error("the zip is empty: it has no file to sign")]
    EmptyZip,
    /// The package is not a zip archive Warden can sign or read.
    #[error("the zip is malformed: {0}")]
    MalformedZip(String),
    /// The package's signature comment claims to be Warden's and does not parse.
    #[error("the package's signature is malformed: {0}")]
    BadSignature(String),
    /// Sealing or opening a profile key through KMS, or using it, failed. Never carries
    /// key bytes.
    #[error("the signing key: {0}")]
    Key(String),
    /// The store failed; details are logged, never sent.
    #[error("the signer store failed while {context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: warden_sqlite::Error,
    },
    /// The store shared with other nodes (PostgreSQL) failed; details are logged, never
    /// sent.
    #[error("the signer store failed while {context}: {source}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// The underlying error (never the connection's password).
        #[source]
        source: warden_postgres::Error,
    },
}

pub(crate) fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> SignerError {
    move |e| SignerError::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}

pub(crate) fn shared(context: &'static str) -> impl FnOnce(warden_postgres::Error) -> SignerError {
    move |source| SignerError::Shared { context, source }
}

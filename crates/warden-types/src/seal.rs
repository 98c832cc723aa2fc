//! The seam through which code at rest is encrypted: the blob store hands every zip it
//! keeps to a [`BlobSealer`] and stores only what comes back. Warden's sealer is KMS
//! envelope encryption (`warden_kms::envelope::CodeSealer`).

/// Seals and opens stored code packages, each bound to its `CodeSha256`.
pub trait BlobSealer: Send + Sync + std::fmt::Debug {
    /// The stored form of the package `plain`, whose `CodeSha256` is `sha`.
    fn seal(&self, sha: &str, plain: &[u8]) -> Result<Vec<u8>, SealError>;
    /// The package sealed as `sha`; fails if it was changed or sealed as another.
    fn open(&self, sha: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError>;
}

/// Why a package could not be sealed or opened. Never carries its bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SealError(pub String);

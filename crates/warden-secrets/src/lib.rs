//! Warden's Secrets Manager: secrets, each a series of versions whose values are sealed by
//! envelope encryption under a KMS key (`alias/aws/secretsmanager` or the secret's own
//! `KmsKeyId`), with the encryption context `{"SecretARN", "SecretVersionId"}`; version
//! stages (`AWSCURRENT`, `AWSPREVIOUS`, `AWSPENDING` and the caller's own), deletion with a
//! recovery window, resource policies, tags, and rotation settings.
//!
//! Everything lives in `DATA_DIR/secrets.db` (SQLite, WAL, `synchronous=FULL`), or, for a
//! deployment of several nodes, in their shared PostgreSQL database; no value is stored in
//! the clear. Who may call what is the API's decision (IAM, the secret's
//! resource policy, and the KMS key's policy for the key that seals it); running a
//! rotation (invoking the rotation function's four steps) is the API's too, over the
//! operations here.
#![forbid(unsafe_code)]

mod error;
mod service;
mod store;

pub use error::SecretsError;
pub use service::{
    check_name, NewSecret, Rotation, Secret, SecretValue, Secrets, Version, AWSCURRENT, AWSPENDING,
    AWSPREVIOUS, MAX_SECRET_BYTES,
};

#[cfg(test)]
mod tests;

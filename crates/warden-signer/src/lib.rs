//! Warden's code signing: Signer-style signing profiles (each version an ECDSA P-384 key
//! generated in the server and kept only sealed by Warden's KMS), profile permissions,
//! signing jobs and their revocation; the signature a signed Lambda zip carries in its
//! archive comment ([`format`]); Lambda's code signing configs and which function uses
//! which; and [`Signer::verify`], the verdict on a package at deploy.
//!
//! The wire protocols and who may call what live in `warden-api`; the deploy check that
//! applies a config's policy lives in `warden-control`.
#![forbid(unsafe_code)]

mod error;
pub mod format;
mod service;
mod store;

pub use error::SignerError;
pub use service::{
    check_config, check_profile_name, Clock, CodeSigningConfig, Job, Permission, Policy, Profile,
    ProfileStatus, ProfileVersion, Revocation, Signer, Untrusted, Validity, ValidityUnit, Verdict,
    DIGEST_PAYLOAD_FORMAT, LAMBDA_PLATFORM, LAMBDA_PLATFORM_NAME, MAX_VALIDITY_DAYS,
};

#[cfg(test)]
mod tests;

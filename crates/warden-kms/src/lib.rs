//! Warden's key management: the server master key (the root of trust), KMS keys whose
//! material is sealed under it, aliases, key policies, rotation, and the authenticated
//! ciphertext format of `Encrypt`, `Decrypt` and data keys.
//!
//! The wire protocol (KMS's JSON 1.1 API) and the authorization of each call live in
//! `warden-api`; this crate decides nothing about who may call what, except that a key
//! policy must parse as one. [`envelope`] is the in-process use other crates make of it:
//! sealing environment variables and code under data keys of a KMS key.
#![forbid(unsafe_code)]

pub mod ciphertext;
pub mod envelope;
mod error;
pub mod master;
pub mod postgres;
pub mod random;
mod service;
pub mod store;
pub mod wire;

pub use ciphertext::EncryptionContext;
pub use error::KmsError;
pub use master::{MasterKey, MasterKeyError, MASTER_KEY_LEN};
pub use service::{
    aws_managed_policy, check_alias_name, check_tags, default_policy, Alias, Clock, DataKey, Key,
    Kms, NewKey, AWS_MANAGED, MAX_CIPHERTEXT, MAX_KEYS, MAX_ON_DEMAND_ROTATIONS, MAX_PLAINTEXT,
    MAX_POLICY,
};

#[cfg(test)]
mod tests;

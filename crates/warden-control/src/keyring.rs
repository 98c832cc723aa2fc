//! The keyring seam: a function's environment variables are sealed by a [`Keyring`]
//! before they reach the store, and opened by it when the control plane shows them (the
//! engine opens them the same way to start an instance). The keyring Warden runs with is
//! `warden_kms::envelope::KmsKeyring`: envelope encryption under `alias/aws/lambda` or
//! the function's own KMS key; nothing stores variables in plain text.

pub use warden_kms::envelope::{Keyring, KeyringError};

//! The keyring seam: a function's environment variables (its secrets) are sealed by a
//! [`Keyring`] before they reach the store, and opened by it when the control plane shows
//! them. A KMS-backed keyring plugs in here.
//!
//! Today the only keyring is [`PlaintextKeyring`], which seals nothing: the variables are
//! stored as given, readable by whoever can read the data directory (its owner and root).
//! The engine reads a version's stored environment as it starts an instance; a keyring
//! whose sealed form differs from the plain one must be opened there too, which the work
//! that brings KMS does.

use std::collections::BTreeMap;

use warden_types::{Environment, FunctionName};

/// Why a keyring could not seal or open an environment. Never carries a variable's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// The key is not available (disabled, deleted, unreachable).
    #[error("the key for function `{function}` is not available: {reason}")]
    KeyUnavailable {
        /// The function.
        function: String,
        /// Why the key is not available.
        reason: String,
    },
    /// A stored environment does not open (tampered with, or sealed by another key).
    #[error("the stored environment of function `{0}` cannot be opened")]
    Unreadable(String),
}

/// Seals and opens a function's environment variables.
pub trait Keyring: Send + Sync {
    /// A short description for logs and `warden doctor`.
    fn describe(&self) -> &'static str;
    /// The form of `environment` to store.
    fn seal(
        &self,
        function: &FunctionName,
        environment: Environment,
    ) -> Result<BTreeMap<String, String>, KeyringError>;
    /// The variables of a stored (sealed) environment.
    fn open(
        &self,
        function: &FunctionName,
        stored: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, KeyringError>;
}

/// The keyring Warden has until KMS lands: it stores environment variables in plain text.
/// Named so that nobody mistakes it for encryption.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlaintextKeyring;

impl Keyring for PlaintextKeyring {
    fn describe(&self) -> &'static str {
        "plaintext (environment variables are stored unencrypted)"
    }

    fn seal(
        &self,
        _function: &FunctionName,
        environment: Environment,
    ) -> Result<BTreeMap<String, String>, KeyringError> {
        Ok(environment.into_variables())
    }

    fn open(
        &self,
        _function: &FunctionName,
        stored: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, KeyringError> {
        Ok(stored.clone())
    }
}

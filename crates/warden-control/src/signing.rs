//! The code signing check of deploys: a function with a code signing config (Lambda's
//! `CodeSigningConfigArn`) has every package it deploys (`CreateFunction`,
//! `UpdateFunctionCode`) and every layer version it uses verified by
//! [`warden_signer::Signer::verify`], in Lambda's order: integrity, expiry, mismatch,
//! revocation.
//!
//! A package whose signature does not match it is always refused
//! (`InvalidCodeSignatureException`); under the config's `Enforce` policy the other
//! failures are refused too (`CodeVerificationFailedException`), under `Warn` the deploy
//! proceeds, and the failure is logged (a `code_signing_warning` field the audit trail can
//! pick up) and counted. Code already deployed keeps running whatever happens to its
//! config, profile or signature later. With `require`, every function must have a config
//! (`warden serve --require-code-signing`), a guard Lambda does not offer.
//!
//! Runs after Lambda's own package checks (a zip that does not unpack is refused as one).

use std::sync::atomic::{AtomicU64, Ordering};

use warden_signer::{CodeSigningConfig, Policy, Signer, Verdict};

use crate::ControlError;

/// Code signing as the control plane applies it.
pub struct CodeSigning {
    /// The profiles, signatures, configs and associations.
    pub signer: Signer,
    /// Whether every function must have a config.
    pub require: bool,
    warnings: AtomicU64,
    checks: AtomicU64,
}

impl CodeSigning {
    /// Code signing over `signer`; with `require`, no function without a config.
    pub fn new(signer: Signer, require: bool) -> Self {
        Self {
            signer,
            require,
            warnings: AtomicU64::new(0),
            checks: AtomicU64::new(0),
        }
    }

    /// How many packages were verified, and how many were let through under `Warn`.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.checks.load(Ordering::Relaxed),
            self.warnings.load(Ordering::Relaxed),
        )
    }

    /// The config a deploy of `function` is checked against: `named` (CreateFunction's
    /// `CodeSigningConfigArn`) or the function's own; `None` if it has none (refused when
    /// configs are required).
    pub fn config_for(
        &self,
        function: &str,
        named: Option<&str>,
    ) -> Result<Option<CodeSigningConfig>, ControlError> {
        let config = match named {
            Some(arn) => Some(
                self.signer
                    .config(arn)
                    .map_err(|e| ControlError::CodeSigningConfigNotFound(e.to_string()))?,
            ),
            None => self.signer.config_of(function),
        };
        if config.is_none() && self.require {
            return Err(ControlError::CodeVerificationFailed(
                "this Warden requires a code signing config for every function (--require-code-signing); create the function with CodeSigningConfigArn".into(),
            ));
        }
        Ok(config)
    }

    /// Verifies one package (`what` names it in messages: the function's code or a layer
    /// version) under `config`, applying its policy.
    pub fn check(
        &self,
        operation: &'static str,
        function: &str,
        what: &str,
        zip: &[u8],
        config: &CodeSigningConfig,
    ) -> Result<(), ControlError> {
        // A zip that is not one is refused by the package checks, as Lambda does.
        if warden_signer::format::split(zip).is_err() {
            return Ok(());
        }
        self.checks.fetch_add(1, Ordering::Relaxed);
        match self.signer.verify(zip, &config.allowed) {
            Verdict::Trusted { .. } => Ok(()),
            Verdict::Integrity(why) => Err(ControlError::InvalidCodeSignature(format!(
                "Lambda cannot deploy the function. The signature of {what} is invalid: {why}."
            ))),
            Verdict::Untrusted(why) => match config.policy {
                Policy::Enforce => Err(ControlError::CodeVerificationFailed(format!(
                    "Lambda cannot deploy the function. The function or layer might be signed using a signature that the client is not configured to accept. Check the provided signature for {what}: {why}."
                ))),
                Policy::Warn => {
                    self.warnings.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        code_signing_warning = %why,
                        operation,
                        function,
                        package = what,
                        config = %config.arn,
                        "deploying untrusted code: the code signing config's policy is Warn"
                    );
                    Ok(())
                }
            },
        }
    }
}

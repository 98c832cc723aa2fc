//! Code signing in the server: opens `DATA_DIR/signer.db` over the server's KMS (profile
//! keys are sealed under `alias/aws/signer`) for the control plane's deploy check and the
//! Signer API.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

/// Code signing over the server's KMS; with `require`, every function needs a config.
pub fn open(
    data_dir: &Path,
    kms: &warden_kms::Kms,
    account: &warden_types::AccountId,
    region: &str,
    require: bool,
) -> anyhow::Result<Arc<warden_control::signing::CodeSigning>> {
    let signer =
        warden_signer::Signer::open(data_dir, Arc::new(kms.clone()), account.as_str(), region)
            .context("cannot open the code signing database")?;
    if require {
        tracing::info!("every function must have a code signing config (--require-code-signing)");
    }
    Ok(Arc::new(warden_control::signing::CodeSigning::new(
        signer, require,
    )))
}

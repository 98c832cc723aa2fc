//! Code signing in the server: opens `DATA_DIR/signer.db`, or the PostgreSQL store several
//! nodes share, over the server's KMS (profile keys are sealed under `alias/aws/signer`)
//! for the control plane's deploy check and the Signer API.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

/// Code signing over the server's KMS, in the data directory or, given the pool of the
/// shared records, in the PostgreSQL store shared with other nodes; with `require`, every
/// function needs a config.
pub fn open(
    data_dir: &Path,
    shared: Option<&warden_postgres::Pool>,
    kms: &warden_kms::Kms,
    account: &warden_types::AccountId,
    region: &str,
    require: bool,
) -> anyhow::Result<Arc<warden_control::signing::CodeSigning>> {
    let kms = Arc::new(kms.clone());
    let signer = match shared {
        None => warden_signer::Signer::open(data_dir, kms, account.as_str(), region)
            .context("cannot open the code signing database")?,
        Some(pool) => {
            warden_signer::Signer::open_shared(pool.clone(), kms, account.as_str(), region)
                .context("cannot open code signing in PostgreSQL")?
        }
    };
    if require {
        tracing::info!("every function must have a code signing config (--require-code-signing)");
    }
    Ok(Arc::new(warden_control::signing::CodeSigning::new(
        signer, require,
    )))
}

//! The server master key: where `warden serve` takes it from, and `warden admin
//! rotate-master-key`, which reseals everything under a new one.
//!
//! Rotation runs with the server stopped (it claims the data directory's lock). It is
//! made safe against a crash at any point by doing it in steps that can each be run again:
//! the new key is first written beside the old one (`master.key.new`, or the new salt
//! `master.salt.new` for a passphrase), then the key store and the identity store are each
//! resealed in one transaction (each records or proves which key sealed it), and only then
//! does the new key replace the old one with a rename. A server refuses to start while a
//! rotation is unfinished; running the command again finishes it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use warden_kms::{KmsError, MasterKey};

/// Where the master key comes from.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MasterKeyArgs {
    /// The master key file (32 random bytes, mode 0600), created on first start if absent.
    /// Default: `DATA_DIR/master.key`.
    #[arg(long, env = "WARDEN_MASTER_KEY_FILE", value_name = "PATH")]
    pub master_key_file: Option<PathBuf>,
    /// Derive the master key from the passphrase held in this environment variable instead
    /// of a key file (PBKDF2-HMAC-SHA256; the salt is kept in `DATA_DIR/master.salt`). The
    /// variable is removed from Warden's environment once read.
    #[arg(long, value_name = "VAR", conflicts_with = "master_key_file")]
    pub master_key_passphrase_env: Option<String>,
}

impl MasterKeyArgs {
    fn key_file(&self, data_dir: &Path) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("master.key"))
    }

    /// The files an unfinished rotation leaves.
    fn pending(&self, data_dir: &Path) -> PathBuf {
        match &self.master_key_passphrase_env {
            Some(_) => data_dir.join("master.salt.new"),
            None => pending_key_file(&self.key_file(data_dir)),
        }
    }

    /// Loads (or, for a key file, creates on first start) the master key. Refuses while a
    /// rotation is unfinished.
    pub fn load(&self, data_dir: &Path) -> anyhow::Result<MasterKey> {
        let pending = self.pending(data_dir);
        if pending.exists() {
            bail!(
                "a master key rotation was interrupted (`{}` exists); run `warden admin \
                 rotate-master-key` with the same options to finish it",
                pending.display()
            );
        }
        match &self.master_key_passphrase_env {
            Some(var) => {
                let passphrase = read_passphrase(var)?;
                Ok(MasterKey::from_passphrase(
                    &passphrase,
                    &data_dir.join("master.salt"),
                )?)
            }
            None => Ok(MasterKey::load_or_create(&self.key_file(data_dir))?),
        }
    }
}

fn pending_key_file(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// Reads a passphrase from `var` and removes the variable from this process's
/// environment, so no child process inherits it.
fn read_passphrase(var: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let value = std::env::var(var).with_context(|| {
        format!("the master key passphrase variable `{var}` is not set (or not UTF-8)")
    })?;
    std::env::remove_var(var);
    if value.is_empty() {
        bail!("the master key passphrase in `{var}` is empty");
    }
    Ok(zeroize::Zeroizing::new(value))
}

/// `warden admin ...`.
#[derive(clap::Subcommand, Debug)]
pub enum AdminCommand {
    /// Reseal every key and secret under a new master key (run with the server stopped).
    RotateMasterKey(RotateArgs),
}

/// Options of `warden admin rotate-master-key`.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// The data directory. Default: `$XDG_DATA_HOME/warden`, else `~/.local/share/warden`.
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    master: MasterKeyArgs,
    /// With `--master-key-passphrase-env`: the environment variable holding the new
    /// passphrase.
    #[arg(long, value_name = "VAR", requires = "master_key_passphrase_env")]
    new_passphrase_env: Option<String>,
    /// The store the node uses (as `warden serve --store`): with a PostgreSQL store shared
    /// by several nodes, its KMS keys, access keys and role sessions are resealed too
    /// (once; running the command for the other nodes' data directories, with the same
    /// new key as their pending key, leaves them as they are). A URL with a password is
    /// accepted only from `WARDEN_STORE`.
    #[arg(
        long,
        env = "WARDEN_STORE",
        default_value = "sqlite",
        hide_env_values = true
    )]
    store: String,
}

/// Runs an admin command.
pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::RotateMasterKey(args) => rotate(args),
    }
}

fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::serve::default_data_dir);
    crate::backend::check_password_sources(&args.store, None)?;
    std::env::remove_var("WARDEN_STORE");
    let store = crate::backend::StoreChoice::parse(&args.store)?;
    let holds_data = match &store {
        crate::backend::StoreChoice::Embedded => {
            data_dir.join("kms.db").exists() || data_dir.join("identity.db").exists()
        }
        // A node of a shared store keeps its id and its audit signing key here.
        crate::backend::StoreChoice::Postgres(_) => {
            data_dir.join("node-id").exists() || crate::audit::has_signing_key(&data_dir)
        }
    };
    if !holds_data {
        bail!(
            "`{}` holds no Warden data (no kms.db, identity.db or node id)",
            data_dir.display()
        );
    }
    // No server may run on this directory meanwhile, nor, with a shared store, on any
    // other: a node still running with the old key would seal new secrets under it.
    let claim = crate::node::claim(&data_dir, None)?;
    if let crate::backend::StoreChoice::Postgres(url) = &store {
        // This directory's own node is not running: its lock is held here.
        let live: Vec<_> = warden_store::PostgresStore::open(url, 1)?
            .live_nodes(warden_store::postgres::NODE_LIVENESS)?
            .into_iter()
            .filter(|n| n.id != claim.id.as_str())
            .collect();
        if !live.is_empty() {
            let names: Vec<String> = live
                .iter()
                .map(|n| format!("{} (seen {:.0} s ago)", n.id, n.seen_secs_ago))
                .collect();
            bail!(
                "refusing to rotate: nodes of the shared store are running: {}; stop every node first (a node killed without stopping counts as running for {} s)",
                names.join(", "),
                warden_store::postgres::NODE_LIVENESS.as_secs()
            );
        }
    }
    let pending = args.master.pending(&data_dir);
    let (old, new) = match &args.master.master_key_passphrase_env {
        Some(var) => {
            let Some(new_var) = &args.new_passphrase_env else {
                bail!("a passphrase-derived master key is rotated to a new passphrase: pass --new-passphrase-env VAR");
            };
            let old =
                MasterKey::from_passphrase(&read_passphrase(var)?, &data_dir.join("master.salt"))?;
            let new = MasterKey::from_passphrase(&read_passphrase(new_var)?, &pending)?;
            (old, new)
        }
        None => {
            let key_file = args.master.key_file(&data_dir);
            let old = MasterKey::load(&key_file)?;
            let new = if pending.exists() {
                MasterKey::load(&pending)?
            } else {
                MasterKey::generate_file(&pending)?
            };
            (old, new)
        }
    };
    // The key store records the fingerprint of the key that sealed it: opening it under
    // the old key fails with WrongMasterKey once it has been resealed. (Account and region
    // only shape ARNs, which resealing does not use.)
    let kms = match &store {
        crate::backend::StoreChoice::Embedded => {
            warden_kms::Kms::open(&data_dir, old.clone(), "000000000000", "us-east-1")
        }
        crate::backend::StoreChoice::Postgres(url) => {
            warden_kms::Kms::open_postgres(url, 1, old.clone(), "000000000000", "us-east-1")
        }
    };
    let resealed_keys = match kms {
        Ok(kms) => kms.rotate_master(&new)?,
        Err(KmsError::WrongMasterKey { expected, .. }) if expected == new.fingerprint() => 0,
        Err(e) => return Err(e.into()),
    };
    let (resealed_secrets, resealed_sessions) = match &store {
        crate::backend::StoreChoice::Embedded => (
            warden_identity::Identity::rotate_master(&data_dir, &old, &new)?,
            0,
        ),
        crate::backend::StoreChoice::Postgres(url) => {
            warden_identity::Identity::rotate_master_postgres(url, &old, &new)?
        }
    };
    crate::audit::reseal(&data_dir, &old, &new)?;
    if let crate::backend::StoreChoice::Postgres(url) = &store {
        crate::audit::reseal_shared(url, &old, &new)?;
        crate::sns::reseal_shared(url, &old, &new)?;
    }
    // Every store is sealed under the new key: install it.
    let (from, to) = match &args.master.master_key_passphrase_env {
        Some(_) => (pending.clone(), data_dir.join("master.salt")),
        None => (pending.clone(), args.master.key_file(&data_dir)),
    };
    std::fs::rename(&from, &to)
        .with_context(|| format!("cannot install `{}` as `{}`", from.display(), to.display()))?;
    if let Some(dir) = to.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync `{}`", dir.display()))?;
    }
    println!(
        "master key rotated (fingerprint {} -> {}): {resealed_keys} key materials, \
         {resealed_secrets} access key secrets and {resealed_sessions} role sessions resealed",
        old.fingerprint(),
        new.fingerprint()
    );
    Ok(())
}

//! The audit trail in the binary: its signing key, its recorder, and `warden audit ...`.
//!
//! **The signing key.** Digests are signed with an Ed25519 key generated on first start.
//! Its 32-byte seed is kept only sealed under the master key (the key Warden's KMS seals
//! every key material with), in `audit-signing-key` (0600); `warden admin
//! rotate-master-key` reseals it. The public key is written beside it
//! (`audit-public-key.json`) and into every digest export directory, which is where a
//! verifier should take it from: a copy inside the data directory is only as trustworthy
//! as the data directory.
//!
//! **Commands.**
//! - `warden audit verify` reads the audit database directly (the server may be running:
//!   it only reads) and checks every event, the chain, the tree and the digests, also
//!   against the digests exported to `--digests DIR`.
//! - `warden audit events` is LookupEvents through the API, with the caller's
//!   credentials.
//! - `warden audit digest` asks the server to sign a digest now, and with `--export DIR`
//!   writes every digest the log holds, with the public key, to `DIR`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use serde_json::{json, Value};
use warden_audit::{Ed25519Signer, Ed25519Verifier, Recorder, RecorderConfig};
use warden_kms::MasterKey;

/// The sealed seed of the signing key, in the data directory.
const KEY_FILE: &str = "audit-signing-key";
/// The public key, in the data directory and in export directories.
pub(crate) const PUBLIC_KEY_FILE: &str = "audit-public-key.json";
/// The audit database, in the data directory.
pub(crate) const DB_FILE: &str = "audit.db";
/// The configuration history, in the data directory.
pub(crate) const CONFIG_DB_FILE: &str = "config.db";
/// The posture findings, in the data directory.
pub(crate) const FINDINGS_DB_FILE: &str = "findings.db";
/// What the seed is sealed with, so that a sealed value of another kind never opens as it.
const SEAL_AAD: &[u8] = b"warden audit signing key v1";

/// The server's audit options.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Record invocations (Invoke, InvokeAsync, InvokeWithResponseStream), PutLogEvents,
    /// PutMetricData and SNS Publish in the audit trail too: CloudTrail's data events,
    /// off by default as on AWS.
    #[arg(long, env = "WARDEN_AUDIT_DATA_EVENTS")]
    pub audit_data_events: bool,
    /// How often a signed digest of the audit trail is published (`30s`, `15m`, `1h`), or
    /// `off` (digests only on demand: `warden audit digest`).
    #[arg(long, default_value = "1h", value_parser = parse_interval)]
    pub audit_digest_interval: Interval,
    /// A directory (outside the data directory, ideally on other storage) to which every
    /// periodic digest and the public key are exported.
    #[arg(long, env = "WARDEN_AUDIT_EXPORT_DIR", value_name = "DIR")]
    pub audit_export_dir: Option<PathBuf>,
    /// A program that receives each periodic digest as JSON on its standard input (an
    /// external witness); a non-zero exit is logged as an error.
    #[arg(long, value_name = "PROGRAM")]
    pub audit_witness: Option<PathBuf>,
    /// MiB the audit trail's database may take. Past it, reads and refused calls are no
    /// longer recorded (counted in `warden_audit_events_dropped_total`); a tenth past it,
    /// calls that would change something are refused (`ServiceUnavailableException`),
    /// since they could not be recorded.
    #[arg(long, default_value_t = 10 * 1024, value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub audit_max_mib: u64,
    /// How often posture controls are evaluated when nothing changes (`30s`, `10m`, `1h`);
    /// every change is evaluated within about a second anyway.
    #[arg(long, default_value = "10m", value_parser = parse_interval)]
    pub posture_interval: Interval,
    /// Days after which an access key counts as unrotated, and a role or an administrator
    /// as unused, in the posture controls.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub posture_inactive_days: u32,
}

/// A digest interval, or none.
#[derive(Debug, Clone, Copy)]
pub struct Interval(Option<Duration>);

fn parse_interval(text: &str) -> Result<Interval, String> {
    if text == "off" {
        return Ok(Interval(None));
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = text.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` is neither a duration (30s, 15m, 1h) nor `off`"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("`{text}`: the unit must be s, m or h")),
    };
    if !(10..=7 * 86_400).contains(&secs) {
        return Err(format!("`{text}`: between 10s and 168h"));
    }
    Ok(Interval(Some(Duration::from_secs(secs))))
}

/// The signing key's id: its public key's fingerprint, so that a verifier can tell keys
/// apart after a rotation.
fn key_id(public_key: &[u8]) -> String {
    use sha2::Digest as _;
    let fp = sha2::Sha256::digest(public_key);
    format!("warden-audit-key/{}", hex::encode(&fp[..8]))
}

/// Whether `data_dir` holds an audit signing key.
pub(crate) fn has_signing_key(data_dir: &Path) -> bool {
    data_dir.join(KEY_FILE).exists()
}

/// A new signing key's seed, and the seed sealed under `master`.
fn new_seed(master: &MasterKey) -> anyhow::Result<(zeroize::Zeroizing<Vec<u8>>, Vec<u8>)> {
    let mut seed = zeroize::Zeroizing::new(vec![0u8; 32]);
    warden_kms::random::fill_random(&mut seed)
        .map_err(|e| anyhow::anyhow!("cannot generate the audit signing key: {e}"))?;
    let sealed = master
        .seal(SEAL_AAD, &seed)
        .map_err(|e| anyhow::anyhow!("cannot seal the audit signing key: {e}"))?;
    Ok((seed, sealed))
}

/// Loads the digest signing key, creating it on first start: this node's, in `data_dir`,
/// or with a `shared` PostgreSQL store the cluster's, kept there (the first node to start
/// offers one, and every node signs with the one stored). Writes its public key to
/// `data_dir`.
pub(crate) fn signing_key(
    data_dir: &Path,
    shared: Option<&warden_postgres::Pool>,
    master: &MasterKey,
) -> anyhow::Result<Ed25519Signer> {
    let seed = match shared {
        None => {
            let path = data_dir.join(KEY_FILE);
            match std::fs::read(&path) {
                Ok(sealed) => master.open(SEAL_AAD, &sealed).with_context(|| {
                    format!(
                        "`{}` does not open under this master key: it was sealed by another key, or changed",
                        path.display()
                    )
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let (seed, sealed) = new_seed(master)?;
                    write_private(&path, &sealed)?;
                    seed
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read `{}`", path.display()))
                }
            }
        }
        Some(pool) => {
            let sealed = match warden_audit::postgres::signing_key(pool)? {
                Some(sealed) => sealed,
                None => {
                    let (_, sealed) = new_seed(master)?;
                    warden_audit::postgres::offer_signing_key(pool, sealed)?
                }
            };
            master.open(SEAL_AAD, &sealed).context(
                "the shared audit signing key does not open under this master key: every node needs the same master key",
            )?
        }
    };
    let probe = Ed25519Signer::from_seed("probe", &seed)
        .map_err(|e| anyhow::anyhow!("the audit signing key: {e}"))?;
    let public = probe.public_key();
    let signer = Ed25519Signer::from_seed(key_id(&public), &seed)
        .map_err(|e| anyhow::anyhow!("the audit signing key: {e}"))?;
    write_public_key(data_dir, &public)?;
    Ok(signer)
}

/// Reseals the cluster's signing key in the shared store at `url` from `old` to `new`, as
/// [`reseal`] does this node's file; the store's row is replaced only if it is still the
/// one read. Returns whether it resealed.
pub(crate) fn reseal_shared(url: &str, old: &MasterKey, new: &MasterKey) -> anyhow::Result<bool> {
    let warden_audit::Store::Postgres(pool) = warden_audit::postgres::open(url, 1)? else {
        bail!("the shared audit trail is not in PostgreSQL");
    };
    let Some(sealed) = warden_audit::postgres::signing_key(&pool)? else {
        return Ok(false);
    };
    if new.open(SEAL_AAD, &sealed).is_some() {
        return Ok(false);
    }
    let seed = old
        .open(SEAL_AAD, &sealed)
        .context("the shared audit signing key opens under neither master key")?;
    let resealed = new
        .seal(SEAL_AAD, &seed)
        .map_err(|e| anyhow::anyhow!("cannot reseal the audit signing key: {e}"))?;
    if !warden_audit::postgres::replace_signing_key(&pool, sealed, resealed)? {
        bail!("the shared audit signing key changed while it was resealed: run the rotation again");
    }
    Ok(true)
}

/// Opens the audit trail's store: the file in `data_dir`, or with a `shared` PostgreSQL
/// store the log all nodes share.
pub(crate) fn open_trail(
    data_dir: &Path,
    shared: Option<&warden_postgres::Pool>,
) -> warden_audit::Store {
    match shared {
        None => warden_audit::Store::Sqlite(data_dir.join(DB_FILE)),
        Some(pool) => warden_audit::Store::Postgres(pool.clone()),
    }
}

/// The trail a command reads: in the PostgreSQL store `store` names (as `warden serve
/// --store`), or else in `data_dir`, which must hold one.
pub(crate) fn trail_for_reading(
    data_dir: &Path,
    store: Option<&str>,
) -> anyhow::Result<warden_audit::Store> {
    if let Some(store) = store {
        crate::backend::check_password_sources(store, None)?;
        if let crate::backend::StoreChoice::Postgres(url) =
            crate::backend::StoreChoice::parse(store)?
        {
            return warden_audit::postgres::open(&url, 1)
                .context("cannot open the shared audit trail");
        }
    }
    let db = data_dir.join(DB_FILE);
    if !db.exists() {
        bail!(
            "`{}` holds no audit trail (no {DB_FILE}); the nodes of a shared store keep theirs in PostgreSQL: give --store (or WARDEN_STORE)",
            data_dir.display()
        );
    }
    Ok(warden_audit::Store::Sqlite(db))
}

/// Reseals the signing key's seed from `old` to `new` (`warden admin rotate-master-key`).
/// Idempotent: a seed already sealed under `new` is left as it is. Returns whether it
/// resealed.
pub(crate) fn reseal(data_dir: &Path, old: &MasterKey, new: &MasterKey) -> anyhow::Result<bool> {
    let path = data_dir.join(KEY_FILE);
    let sealed = match std::fs::read(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    };
    if new.open(SEAL_AAD, &sealed).is_some() {
        return Ok(false);
    }
    let seed = old
        .open(SEAL_AAD, &sealed)
        .with_context(|| format!("`{}` opens under neither master key", path.display()))?;
    let resealed = new
        .seal(SEAL_AAD, &seed)
        .map_err(|e| anyhow::anyhow!("cannot reseal the audit signing key: {e}"))?;
    write_private(&path, &resealed)?;
    Ok(true)
}

/// Writes `bytes` to `path` (0600) beside and renames it into place.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create `{}`", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot install `{}`", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync `{}`", dir.display()))?;
    }
    Ok(())
}

fn public_key_json(public: &[u8]) -> Vec<u8> {
    let value = json!({
        "keyId": key_id(public),
        "algorithm": "Ed25519",
        "publicKey": base64::engine::general_purpose::STANDARD.encode(public),
    });
    let mut bytes = serde_json::to_vec_pretty(&value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Writes the public key into `dir` as `audit-public-key.json` (the current key) and under
/// a name of its own (`audit-public-key-<fingerprint>.json`), which a later key never
/// replaces: digests signed before a rotation still verify from an export.
fn write_public_key(dir: &Path, public: &[u8]) -> anyhow::Result<()> {
    let bytes = public_key_json(public);
    for name in [
        PUBLIC_KEY_FILE.to_owned(),
        format!("audit-public-key-{}.json", hex::encode(sha_prefix(public))),
    ] {
        let path = dir.join(&name);
        if std::fs::read(&path).is_ok_and(|existing| existing == bytes) {
            continue;
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        write_private(&path, &bytes)?;
    }
    Ok(())
}

fn sha_prefix(public: &[u8]) -> [u8; 8] {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(public);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// Opens the configuration history: in the data directory, or on the `shared` pool of the
/// PostgreSQL store several nodes share.
pub(crate) fn open_history(
    data_dir: &Path,
    shared: Option<&warden_postgres::Pool>,
) -> anyhow::Result<warden_config::ConfigStore> {
    Ok(match shared {
        None => {
            let path = data_dir.join(CONFIG_DB_FILE);
            warden_config::ConfigStore::open(&path).with_context(|| {
                format!("cannot open the configuration history `{}`", path.display())
            })?
        }
        Some(pool) => warden_config::ConfigStore::open_shared(pool.clone()),
    })
}

/// Opens the posture findings: in the data directory, or on the `shared` pool of the
/// PostgreSQL store several nodes share.
pub(crate) fn open_findings(
    data_dir: &Path,
    shared: Option<&warden_postgres::Pool>,
) -> anyhow::Result<warden_findings::FindingStore> {
    Ok(match shared {
        None => {
            let path = data_dir.join(FINDINGS_DB_FILE);
            warden_findings::FindingStore::open(&path)
                .with_context(|| format!("cannot open the findings `{}`", path.display()))?
        }
        Some(pool) => warden_findings::FindingStore::open_shared(pool.clone()),
    })
}

/// Opens the audit log in `store` and starts its recorder, with the configuration
/// `history` and the posture checks over `findings` (`default_egress_open`:
/// `--default-egress internet`).
pub(crate) fn start(
    store: warden_audit::Store,
    history: warden_config::ConfigStore,
    findings: warden_findings::FindingStore,
    signer: Ed25519Signer,
    args: &AuditArgs,
    default_egress_open: bool,
) -> anyhow::Result<warden_api::audit::AuditTrail> {
    if let Some(dir) = &args.audit_export_dir {
        write_public_key(dir, &signer.public_key())?;
    }
    let log = store
        .writer()
        .with_context(|| format!("cannot open the audit trail {}", store.describe()))?;
    let config = RecorderConfig {
        digest_every: args.audit_digest_interval.0,
        export_dir: args.audit_export_dir.clone(),
        witness: args
            .audit_witness
            .as_ref()
            .map(|p| vec![p.display().to_string()]),
        ..RecorderConfig::default()
    };
    let public = signer.public_key();
    let verifier = Ed25519Verifier::new(key_id(&public), &public);
    let recorder = Recorder::start(log, Arc::new(signer), config)
        .context("cannot start the audit recorder")?;
    let posture = warden_api::posture::Posture::new(
        Arc::new(findings),
        warden_api::posture::PostureSettings {
            every: args
                .posture_interval
                .0
                .unwrap_or(Duration::from_secs(7 * 86_400)),
            inactive_days: args.posture_inactive_days,
            default_egress_open,
        },
    );
    Ok(
        warden_api::audit::AuditTrail::new(Arc::new(recorder), store, args.audit_data_events)
            .with_max_bytes(args.audit_max_mib << 20)
            .with_config_history(Arc::new(history))
            .with_posture(Arc::new(posture))
            .with_verifier(Arc::new(verifier)),
    )
}

// ---- `warden audit ...` ----

/// `warden audit ...`
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail: every event, the hash chain, the Merkle tree and the signed
    /// digests; report what was removed, altered, inserted, reordered or truncated (reads
    /// the data directory; exit status 1 if anything is wrong)
    Verify(VerifyArgs),
    /// Look recorded API calls up (CloudTrail's LookupEvents), newest first
    Events(EventsArgs),
    /// Sign a digest of the trail now; with --export, write every digest and the public key
    /// to a directory
    Digest(DigestArgs),
    /// Posture findings (Security Hub's GetFindings): failing controls, newest change first
    Findings(FindingsArgs),
    /// Check an AWS SAM or CloudFormation template offline with the posture controls (exit
    /// status 1 if a finding is at or above --fail-on)
    Template(TemplateArgs),
}

/// `warden audit template`
#[derive(Debug, clap::Args)]
pub struct TemplateArgs {
    /// The template (YAML or JSON)
    file: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    format: TemplateFormat,
    /// Exit with status 1 when a finding is at least this severe
    #[arg(long, value_enum, default_value = "high")]
    fail_on: FailOn,
}

/// How a template report is printed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TemplateFormat {
    /// For a person
    Text,
    /// The findings and what was read, as JSON
    Json,
    /// SARIF 2.1.0, for code scanning tools
    Sarif,
}

/// The severity that fails a template check.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FailOn {
    /// Critical findings
    Critical,
    /// High or critical
    High,
    /// Medium or above
    Medium,
    /// Low or above
    Low,
    /// Never fail
    Never,
}

/// `warden audit findings`
#[derive(Debug, clap::Args)]
pub struct FindingsArgs {
    /// Only this severity (`CRITICAL`, `HIGH`, `MEDIUM`, `LOW`, `INFORMATIONAL`)
    #[arg(long)]
    severity: Option<String>,
    /// Only this workflow status (`NEW`, `NOTIFIED`, `SUPPRESSED`, `RESOLVED`); default:
    /// every status but `RESOLVED`
    #[arg(long)]
    status: Option<String>,
    /// Only this control (`Lambda.1`)
    #[arg(long)]
    control: Option<String>,
    /// Print the findings as JSON lines
    #[arg(long)]
    json: bool,
}

/// `warden audit verify`
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The data directory. Default: as `warden serve`'s.
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The PostgreSQL store the nodes share (as `warden serve --store`), whose one audit
    /// trail to check instead of the data directory's. A URL with a password is accepted
    /// only from `WARDEN_STORE`.
    #[arg(long, env = "WARDEN_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Exported digests (and the public key) to check against: the evidence an attacker
    /// holding the data directory cannot rewrite.
    #[arg(long, value_name = "DIR")]
    digests: Option<PathBuf>,
    /// Report event findings only from this time (a duration back, `1h`, or RFC 3339)
    #[arg(long, value_name = "DURATION|TIME", value_parser = crate::cli::parse_since)]
    from: Option<i64>,
    /// Report event findings only up to this time (a duration back or RFC 3339)
    #[arg(long, value_name = "DURATION|TIME", value_parser = crate::cli::parse_since)]
    to: Option<i64>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// `warden audit events`
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only calls by this principal (its full ARN)
    #[arg(long, value_name = "ARN")]
    principal: Option<String>,
    /// Only this operation (`CreateFunction`, `AssumeRole`, ...)
    #[arg(long, value_name = "NAME")]
    event: Option<String>,
    /// Only calls naming this resource ARN
    #[arg(long, value_name = "ARN")]
    resource: Option<String>,
    /// Only calls in the last DURATION (`30s`, `15m`, `1h`, `2d`) or since a time
    #[arg(long, value_name = "DURATION|TIME", value_parser = crate::cli::parse_since)]
    since: Option<i64>,
    /// At most this many events
    #[arg(long, default_value_t = 50)]
    max: usize,
    /// Print each event's full CloudTrail record as one JSON line
    #[arg(long)]
    json: bool,
}

/// `warden audit digest`
#[derive(Debug, clap::Args)]
pub struct DigestArgs {
    /// Also write every digest the trail holds, and the public key, to DIR (reads the data
    /// directory)
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// The data directory, for --export. Default: as `warden serve`'s.
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// For --export: the PostgreSQL store the nodes share (as `warden serve --store`),
    /// whose digests to export. A URL with a password is accepted only from
    /// `WARDEN_STORE`.
    #[arg(long, env = "WARDEN_STORE", hide_env_values = true)]
    store: Option<String>,
}

/// Runs `warden audit ...`.
pub fn run(cmd: AuditCommand, endpoint: &str) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::Events(args) => events(&args, endpoint),
        AuditCommand::Digest(args) => digest(&args, endpoint),
        AuditCommand::Findings(args) => findings(&args, endpoint),
        AuditCommand::Template(args) => template(&args),
    }
}

/// The verifier from the public keys in `dir` (`audit-public-key*.json`).
fn read_public_keys(dir: &Path, verifier: &mut Ed25519Verifier) -> anyhow::Result<usize> {
    let mut found = 0;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.starts_with("audit-public-key") && name.ends_with(".json")) {
            continue;
        }
        let meta = std::fs::metadata(&path)?;
        if meta.len() > 4096 {
            bail!("`{}` is too large to be a public key", path.display());
        }
        let value: Value = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("`{}` is not JSON", path.display()))?;
        let (Some(id), Some(key)) = (value["keyId"].as_str(), value["publicKey"].as_str()) else {
            bail!("`{}` lacks keyId or publicKey", path.display());
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .with_context(|| format!("`{}`: publicKey is not base64", path.display()))?;
        if key_id(&key) != id {
            bail!("`{}`: keyId does not match the public key", path.display());
        }
        verifier.add(id, &key);
        found += 1;
    }
    Ok(found)
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::serve::default_data_dir);
    let trail = trail_for_reading(&data_dir, args.store.as_deref())?;
    let mut verifier = Ed25519Verifier::default();
    let mut exported = Vec::new();
    let trusted_keys = match &args.digests {
        Some(dir) => {
            exported = warden_audit::digest::read_exported(dir)?;
            read_public_keys(dir, &mut verifier)?
        }
        None => 0,
    };
    if trusted_keys == 0 {
        // Without an export, the key in the data directory is all there is.
        read_public_keys(&data_dir, &mut verifier)?;
        eprintln!(
            "note: trusting the public key in the data directory; pass --digests DIR (an export) for evidence the data directory cannot rewrite"
        );
    }
    let reader = trail.reader()?;
    let report = reader.verify(&warden_audit::VerifyOptions {
        verifier: &verifier,
        exported: &exported,
        from_ms: args.from,
        to_ms: args.to,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} events checked from position {}; {} attested by a signed digest; {} stored",
            report.events_checked, report.started_at, report.attested, report.size
        );
        for finding in &report.findings {
            println!("{}", describe(finding));
        }
        if report.is_clean() {
            println!("OK: nothing removed, altered, inserted, reordered or truncated");
        }
    }
    if !report.is_clean() {
        std::process::exit(1);
    }
    Ok(())
}

fn describe(finding: &warden_audit::Finding) -> String {
    use warden_audit::Finding as F;
    match finding {
        F::Altered { seq } => format!("ALTERED: event {seq} was changed after it was recorded"),
        F::Removed { first, last } if first == last => {
            format!("REMOVED: event {first} is missing")
        }
        F::Removed { first, last } => format!("REMOVED: events {first} to {last} are missing"),
        F::Inserted { seq } => format!("INSERTED: event {seq} was not recorded by Warden"),
        F::Reordered { seqs } => format!("REORDERED: events {seqs:?} were moved"),
        F::ChainBroken { seq } => format!("CHAIN BROKEN at event {seq}"),
        F::Truncated { had, now } => {
            format!("TRUNCATED: a signed digest covers {had} events; the trail holds {now}")
        }
        F::DigestForged { tree_size } => {
            format!("FORGED DIGEST: the digest of {tree_size} events is not signed by the key")
        }
        F::DigestMissing { tree_size } => format!(
            "DIGEST MISSING: the exported digest of {tree_size} events is gone from the trail"
        ),
        F::DigestChainBroken { tree_size } => {
            format!("DIGEST CHAIN BROKEN: the digest of {tree_size} events names no earlier digest")
        }
        F::DigestMismatch { tree_size } => format!(
            "REWRITTEN: the trail no longer matches the signed digest of {tree_size} events"
        ),
        F::DigestConflict { tree_size } => {
            format!("CONFLICT: two different signed digests of {tree_size} events exist")
        }
        F::ProofFailed { old, new } => {
            format!("PROOF FAILED: the trail between {old} and {new} events is not consistent")
        }
    }
}

fn events(args: &EventsArgs, endpoint: &str) -> anyhow::Result<()> {
    let client = crate::cli::Client::new(endpoint)?;
    let attribute = match (&args.principal, &args.event, &args.resource) {
        (Some(p), None, None) => Some(("PrincipalArn", p)),
        (None, Some(e), None) => Some(("EventName", e)),
        (None, None, Some(r)) => Some(("ResourceName", r)),
        (None, None, None) => None,
        _ => bail!("give at most one of --principal, --event and --resource (LookupEvents filters on one attribute)"),
    };
    let mut printed = 0;
    let mut token: Option<String> = None;
    while printed < args.max {
        let mut body = json!({ "MaxResults": (args.max - printed).min(50) });
        if let Some((key, value)) = attribute {
            body["LookupAttributes"] = json!([{ "AttributeKey": key, "AttributeValue": value }]);
        }
        if let Some(since) = args.since {
            body["StartTime"] = json!(since as f64 / 1000.0);
        }
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let page = call(&client, "LookupEvents", &body)?;
        let events = page["Events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            let record: Value = e["CloudTrailEvent"]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null);
            if args.json {
                println!("{record}");
            } else {
                let who = record["userIdentity"]["arn"]
                    .as_str()
                    .unwrap_or("(unauthenticated)");
                let outcome = record["errorCode"].as_str().unwrap_or("OK");
                println!(
                    "{}  {:<32} {:<28} {:<24} {}",
                    record["eventTime"].as_str().unwrap_or("-"),
                    record["eventName"].as_str().unwrap_or("-"),
                    record["eventSource"].as_str().unwrap_or("-"),
                    outcome,
                    who
                );
            }
            printed += 1;
        }
        token = page["NextToken"].as_str().map(str::to_owned);
        if token.is_none() || events.is_empty() {
            break;
        }
    }
    Ok(())
}

fn digest(args: &DigestArgs, endpoint: &str) -> anyhow::Result<()> {
    let client = crate::cli::Client::new(endpoint)?;
    let reply = call(&client, "PublishDigest", &json!({}))?;
    let d = &reply["Digest"];
    println!(
        "digest signed: {} events, root {}, key {}",
        d["treeSize"],
        d["rootHash"].as_str().unwrap_or("-"),
        d["keyId"].as_str().unwrap_or("-")
    );
    if let Some(dir) = &args.export {
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(crate::serve::default_data_dir);
        let reader = trail_for_reading(&data_dir, args.store.as_deref())?.reader()?;
        let digests = reader.digests()?;
        let written = warden_audit::digest::export_to_dir(&digests, dir)?;
        let public = std::fs::read(data_dir.join(PUBLIC_KEY_FILE))
            .with_context(|| format!("cannot read the public key in `{}`", data_dir.display()))?;
        write_private(&dir.join(PUBLIC_KEY_FILE), &public)?;
        println!(
            "{} digests in `{}` ({} new), with the public key",
            digests.len(),
            dir.display(),
            written.len()
        );
    }
    Ok(())
}

fn findings(args: &FindingsArgs, endpoint: &str) -> anyhow::Result<()> {
    let client = crate::cli::Client::new(endpoint)?;
    let mut filters = serde_json::Map::new();
    let eq = |v: &str| json!([{ "Value": v, "Comparison": "EQUALS" }]);
    if let Some(s) = &args.severity {
        filters.insert("SeverityLabel".into(), eq(&s.to_ascii_uppercase()));
    }
    match &args.status {
        Some(s) => filters.insert("WorkflowStatus".into(), eq(&s.to_ascii_uppercase())),
        None => filters.insert(
            "WorkflowStatus".into(),
            json!([{ "Value": "RESOLVED", "Comparison": "NOT_EQUALS" }]),
        ),
    };
    if let Some(c) = &args.control {
        filters.insert("GeneratorId".into(), eq(c));
    }
    let mut token: Option<String> = None;
    let mut shown = 0usize;
    loop {
        let mut body = json!({ "Filters": filters, "MaxResults": 100 });
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let reply = client.send_for(
            "securityhub",
            http::Method::POST,
            "/findings",
            &[("Content-Type", "application/json")],
            Some(serde_json::to_vec(&body)?),
        )?;
        if !(200..300).contains(&reply.status) {
            return Err(crate::cli::ApiError::from_reply(&reply)
                .about("findings")
                .into());
        }
        let page = reply.json()?;
        for f in page["Findings"].as_array().cloned().unwrap_or_default() {
            shown += 1;
            if args.json {
                println!("{f}");
            } else {
                println!(
                    "{:<13} {:<10} {:<34} {}\n              {}\n              fix: {}",
                    f["Severity"]["Label"].as_str().unwrap_or("-"),
                    f["Workflow"]["Status"].as_str().unwrap_or("-"),
                    f["GeneratorId"].as_str().unwrap_or("-"),
                    f["Resources"][0]["Id"].as_str().unwrap_or("-"),
                    f["Description"].as_str().unwrap_or("-"),
                    f["Remediation"]["Recommendation"]["Text"]
                        .as_str()
                        .unwrap_or("-"),
                );
            }
        }
        token = page["NextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    if shown == 0 && !args.json {
        println!("no findings");
    }
    Ok(())
}

fn template(args: &TemplateArgs) -> anyhow::Result<()> {
    use warden_controls::{report, template};
    let meta = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read `{}`", args.file.display()))?;
    if meta.len() > template::MAX_TEMPLATE_BYTES as u64 {
        bail!(
            "`{}` is {} bytes, more than the {} scanned",
            args.file.display(),
            meta.len(),
            template::MAX_TEMPLATE_BYTES
        );
    }
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read `{}` as text", args.file.display()))?;
    let name = args.file.display().to_string();
    let scanned = template::scan(&text, &name).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    match args.format {
        TemplateFormat::Text => print!("{}", report::to_text(&scanned)),
        TemplateFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report::to_json(&scanned))?
        ),
        TemplateFormat::Sarif => println!(
            "{}",
            serde_json::to_string_pretty(&report::to_sarif(&scanned))?
        ),
    }
    let threshold = match args.fail_on {
        FailOn::Critical => Some("CRITICAL"),
        FailOn::High => Some("HIGH"),
        FailOn::Medium => Some("MEDIUM"),
        FailOn::Low => Some("LOW"),
        FailOn::Never => None,
    };
    if threshold.is_some_and(|t| report::fails_at(&scanned, t)) {
        std::process::exit(1);
    }
    Ok(())
}

/// One CloudTrail call, signed for `cloudtrail`.
fn call(client: &crate::cli::Client, operation: &str, body: &Value) -> anyhow::Result<Value> {
    let target = format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{operation}");
    let reply = client.send_for(
        "cloudtrail",
        http::Method::POST,
        "/",
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", &target),
        ],
        Some(serde_json::to_vec(body)?),
    )?;
    if !(200..300).contains(&reply.status) {
        return Err(crate::cli::ApiError::from_reply(&reply)
            .about(operation)
            .into());
    }
    reply.json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse() {
        assert!(parse_interval("off").is_ok_and(|i| i.0.is_none()));
        assert_eq!(
            parse_interval("15m").ok().and_then(|i| i.0),
            Some(Duration::from_secs(900))
        );
        assert!(parse_interval("1s").is_err());
        assert!(parse_interval("10x").is_err());
    }

    #[test]
    fn the_key_survives_a_restart_and_a_master_key_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = MasterKey::generate().expect("key");
        let new = MasterKey::generate().expect("key");
        let first = signing_key(dir.path(), None, &old).expect("created");
        let again = signing_key(dir.path(), None, &old).expect("loaded");
        assert_eq!(first.public_key(), again.public_key());
        // The wrong master key does not open it.
        assert!(signing_key(dir.path(), None, &new).is_err());
        assert!(reseal(dir.path(), &old, &new).expect("resealed"));
        // Idempotent: a second run finds it done.
        assert!(!reseal(dir.path(), &old, &new).expect("already"));
        let rotated = signing_key(dir.path(), None, &new).expect("opens under the new key");
        assert_eq!(first.public_key(), rotated.public_key());
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .expect("mode");
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_public_key_file_whose_id_does_not_match_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = [7u8; 32];
        std::fs::write(
            dir.path().join(PUBLIC_KEY_FILE),
            json!({"keyId": "warden-audit-key/0000000000000000", "publicKey": base64::engine::general_purpose::STANDARD.encode(key)}).to_string(),
        )
        .expect("write");
        let mut v = Ed25519Verifier::default();
        assert!(read_public_keys(dir.path(), &mut v).is_err());
    }
}

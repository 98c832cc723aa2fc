//! [`Signer`]: signing profiles and their versions, profile permissions, signing jobs and
//! their revocation, code signing configs and which function uses which, all held in
//! memory and written through to `signer.db`; and [`Signer::verify`], the verdict on a
//! package under a config.
//!
//! Who may call what is decided by the API (IAM actions `signer:*` and `lambda:*`); this
//! crate only keeps the state consistent.
//!
//! Keys: each profile version has its own ECDSA P-384 key pair, generated in the server.
//! The private key (PKCS#8) is sealed at once under the AWS managed KMS key
//! `alias/aws/signer`, with the profile version's ARN as encryption context, and only the
//! sealed form is stored; it is opened in memory for one signature and never returned by
//! any call.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P384_SHA384_ASN1,
    ECDSA_P384_SHA384_ASN1_SIGNING,
};
use base64::Engine as _;
use rand::Rng as _;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use warden_kms::{EncryptionContext, Kms};
use warden_postgres::records::{RecordsWrite, SharedRecords};

use crate::error::{shared, SignerError};
use crate::format::{self, Manifest};
use crate::store;

/// The one platform Warden signs for.
pub const LAMBDA_PLATFORM: &str = "AWSLambda-SHA384-ECDSA";
/// Its display name.
pub const LAMBDA_PLATFORM_NAME: &str = "AWS Lambda";
/// The `payloadFormat` of `SignPayload` that signs a Lambda package's digest.
pub const DIGEST_PAYLOAD_FORMAT: &str = "application/vnd.warden.lambda-zip-digest";
/// The longest signature validity, as Signer's (135 months).
pub const MAX_VALIDITY_DAYS: i64 = 135 * 30;
/// At most this many profiles, configs, versions per profile and permissions per profile.
pub const MAX_PROFILES: usize = 1000;
/// At most this many code signing configs.
pub const MAX_CONFIGS: usize = 1000;
/// At most this many versions of one profile.
pub const MAX_VERSIONS: usize = 100;
/// At most this many permissions on one profile.
pub const MAX_PERMISSIONS: usize = 100;
/// At most this many signing jobs are remembered (revocation needs them).
pub const MAX_JOBS: usize = 1_000_000;

const SECONDS_PER_DAY: i64 = 86_400;

/// The clock, in seconds since the epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A profile's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProfileStatus {
    /// Signs.
    Active,
    /// Signs no more; its signatures stay valid.
    Canceled,
    /// Signs no more, and its signatures from the revocation's effective time on are
    /// revoked.
    Revoked,
}

impl ProfileStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileStatus::Active => "Active",
            ProfileStatus::Canceled => "Canceled",
            ProfileStatus::Revoked => "Revoked",
        }
    }
}

/// How long a signature stays valid, as Signer states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validity {
    /// How many units.
    pub value: i64,
    /// `DAYS`, `MONTHS` or `YEARS`.
    pub unit: ValidityUnit,
}

/// The unit of a [`Validity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValidityUnit {
    /// Days.
    Days,
    /// Months of 30 days.
    Months,
    /// Years of 365 days.
    Years,
}

impl ValidityUnit {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidityUnit::Days => "DAYS",
            ValidityUnit::Months => "MONTHS",
            ValidityUnit::Years => "YEARS",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DAYS" => Some(ValidityUnit::Days),
            "MONTHS" => Some(ValidityUnit::Months),
            "YEARS" => Some(ValidityUnit::Years),
            _ => None,
        }
    }
}

impl Validity {
    /// Signer's default: 135 months.
    pub const DEFAULT: Validity = Validity {
        value: 135,
        unit: ValidityUnit::Months,
    };

    /// A validity within Signer's bounds (1 day to 135 months).
    pub fn new(value: i64, unit: ValidityUnit) -> Result<Self, SignerError> {
        let v = Validity { value, unit };
        if value < 1 || v.seconds() > MAX_VALIDITY_DAYS * SECONDS_PER_DAY {
            return Err(SignerError::Validation(format!(
                "signatureValidityPeriod `{value} {}` must be between 1 day and 135 months",
                unit.as_str()
            )));
        }
        Ok(v)
    }

    /// Its length in seconds.
    pub fn seconds(self) -> i64 {
        let days = match self.unit {
            ValidityUnit::Days => 1,
            ValidityUnit::Months => 30,
            ValidityUnit::Years => 365,
        };
        self.value
            .saturating_mul(days)
            .saturating_mul(SECONDS_PER_DAY)
    }
}

/// One key of a profile.
#[derive(Clone, Serialize, Deserialize)]
pub struct ProfileVersion {
    /// Ten letters and digits.
    pub version: String,
    /// The public key (uncompressed point), base64.
    pub public_key: String,
    /// The private key, sealed by KMS, base64. Never leaves the server.
    sealed_key: String,
    /// When it was made.
    pub created_at: i64,
}

impl std::fmt::Debug for ProfileVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileVersion")
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A profile's revocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    /// The version named when revoking.
    pub profile_version: String,
    /// Signatures made at or after this time are revoked.
    pub effective_from: i64,
    /// When it was revoked.
    pub revoked_at: i64,
    /// Who revoked it (the caller's ARN).
    pub revoked_by: String,
    /// Why.
    pub reason: String,
}

/// One statement of a profile's resource policy (`AddProfilePermission`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Permission {
    /// The statement's id.
    pub statement_id: String,
    /// The `signer:` action granted.
    pub action: String,
    /// The principal (an account id or ARN).
    pub principal: String,
    /// The profile version it is limited to, if any.
    pub profile_version: Option<String>,
}

/// A signing profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Always [`LAMBDA_PLATFORM`].
    pub platform_id: String,
    /// How long its signatures stay valid.
    pub validity: Validity,
    /// Its lifecycle state.
    pub status: ProfileStatus,
    /// Its versions, oldest first; the last one signs.
    pub versions: Vec<ProfileVersion>,
    /// Its revocation, once revoked.
    pub revocation: Option<Revocation>,
    /// Its resource policy.
    pub permissions: Vec<Permission>,
    /// Changes with every permission change.
    pub revision_id: String,
}

impl Profile {
    /// The version that signs now.
    pub fn current(&self) -> Option<&ProfileVersion> {
        self.versions.last()
    }

    /// A version's ARN.
    pub fn version_arn(&self, version: &str) -> String {
        format!("{}/{version}", self.arn)
    }
}

/// A signing job: one signature made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub job_id: String,
    /// The profile that signed.
    pub profile_name: String,
    /// The version that signed.
    pub profile_version: String,
    /// When.
    pub signed_at: i64,
    /// Set by `RevokeSignature`: why, and when.
    pub revoked: Option<(String, i64)>,
}

/// What a code signing config does with a package that fails a check other than integrity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    /// The deploy proceeds; a warning is logged and counted.
    Warn,
    /// The deploy is refused.
    Enforce,
}

impl Policy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Warn => "Warn",
            Policy::Enforce => "Enforce",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Warn" => Some(Policy::Warn),
            "Enforce" => Some(Policy::Enforce),
            _ => None,
        }
    }
}

/// A Lambda code signing config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeSigningConfig {
    /// `csc-` and 17 letters and digits.
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// Its description.
    pub description: String,
    /// The profile version ARNs whose signatures it trusts (1 to 20).
    pub allowed: Vec<String>,
    /// What happens to an untrusted package.
    pub policy: Policy,
    /// When it last changed (ISO 8601).
    pub last_modified: String,
}

/// A function's association to a config.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Association {
    function: String,
    config_arn: String,
}

/// Why a package is not trusted, besides integrity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// It carries no signature.
    Unsigned,
    /// Its signature expired.
    Expired {
        /// When.
        at: i64,
    },
    /// Signed by a profile version the config does not allow.
    Mismatch {
        /// The profile version that signed.
        profile_version_arn: String,
    },
    /// Its signature, or the profile from its time on, was revoked.
    Revoked {
        /// What was revoked.
        what: String,
    },
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::Unsigned => write!(f, "the code is not signed"),
            Untrusted::Expired { at } => {
                write!(f, "the signature expired at {} (seconds since the epoch)", at)
            }
            Untrusted::Mismatch {
                profile_version_arn,
            } => write!(
                f,
                "the signing profile version `{profile_version_arn}` is not among the code signing config's allowed publishers"
            ),
            Untrusted::Revoked { what } => write!(f, "{what} was revoked"),
        }
    }
}

/// The verdict on a package under a config, checked in Lambda's order: integrity, expiry,
/// mismatch, revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by an allowed, valid profile version.
    Trusted {
        /// The profile version that signed.
        profile_version_arn: String,
        /// The signing job.
        job_id: String,
    },
    /// The signature does not match the package (or is malformed): always refused.
    Integrity(String),
    /// Untrusted for another reason; the config's policy decides.
    Untrusted(Untrusted),
}

#[derive(Default)]
struct State {
    profiles: BTreeMap<String, Profile>,
    jobs: BTreeMap<String, Job>,
    configs: BTreeMap<String, CodeSigningConfig>,
    functions: BTreeMap<String, String>,
    /// With a shared store, the generation of the records this state holds.
    generation: i64,
}

impl State {
    fn build(
        profiles: Vec<Profile>,
        jobs: Vec<Job>,
        configs: Vec<CodeSigningConfig>,
        functions: Vec<Association>,
        generation: i64,
    ) -> State {
        State {
            profiles: profiles.into_iter().map(|p| (p.name.clone(), p)).collect(),
            jobs: jobs.into_iter().map(|j| (j.job_id.clone(), j)).collect(),
            configs: configs.into_iter().map(|c| (c.arn.clone(), c)).collect(),
            functions: functions
                .into_iter()
                .map(|a| (a.function, a.config_arn))
                .collect(),
            generation,
        }
    }

    /// The state the shared records of one snapshot make up.
    fn from_shared(snapshot: &warden_postgres::records::Snapshot) -> Result<State, SignerError> {
        let (mut profiles, mut jobs, mut configs, mut functions) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in &snapshot.records {
            match r.kind.as_str() {
                store::PROFILE => profiles.push(store::parse(&r.kind, &r.text)?),
                store::JOB => jobs.push(store::parse(&r.kind, &r.text)?),
                store::CONFIG => configs.push(store::parse(&r.kind, &r.text)?),
                store::FUNCTION => functions.push(store::parse(&r.kind, &r.text)?),
                // A kind a newer build added: not this build's to read.
                _ => {}
            }
        }
        Ok(State::build(
            profiles,
            jobs,
            configs,
            functions,
            snapshot.generation,
        ))
    }
}

/// Where the records are kept.
enum Backend {
    /// `signer.db`, this node's own.
    Sqlite(Mutex<Connection>),
    /// Shared by the nodes of a deployment.
    Postgres(SharedRecords),
}

/// The state, held for one change: with a shared store, inside a write that holds every
/// node's lock and that brought the state up to date first, so the change is decided
/// from what all nodes committed. Each change writes one record ([`Change::put`] or
/// [`Change::remove`]), which commits it; dropped without one, it changes nothing.
struct Change<'a> {
    state: std::sync::MutexGuard<'a, State>,
    backend: &'a Backend,
    write: Option<RecordsWrite>,
}

impl std::ops::Deref for Change<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for Change<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Change<'_> {
    fn put<T: Serialize>(&mut self, kind: &str, id: &str, record: &T) -> Result<(), SignerError> {
        match (self.backend, self.write.take()) {
            (Backend::Sqlite(conn), _) => store::put(&warden_sqlite::lock(conn), kind, id, record),
            (Backend::Postgres(_), Some(mut w)) => {
                w.put(kind, id, store::text(record)?)
                    .map_err(shared("writing the signer store"))?;
                self.state.generation = w.commit().map_err(shared("writing the signer store"))?;
                Ok(())
            }
            (Backend::Postgres(_), None) => {
                Err(SignerError::Validation("a change writes one record".into()))
            }
        }
    }

    fn remove(&mut self, kind: &str, id: &str) -> Result<(), SignerError> {
        match (self.backend, self.write.take()) {
            (Backend::Sqlite(conn), _) => store::delete(&warden_sqlite::lock(conn), kind, id),
            (Backend::Postgres(_), Some(mut w)) => {
                w.delete(kind, id)
                    .map_err(shared("writing the signer store"))?;
                self.state.generation = w.commit().map_err(shared("writing the signer store"))?;
                Ok(())
            }
            (Backend::Postgres(_), None) => {
                Err(SignerError::Validation("a change writes one record".into()))
            }
        }
    }
}

/// Code signing's state. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

struct Inner {
    kms: Arc<Kms>,
    account: String,
    region: String,
    clock: Clock,
    backend: Backend,
    state: Mutex<State>,
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_word(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn lower_word(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Checks a profile name: 2 to 64 letters, digits and underscores (Signer's pattern).
pub fn check_profile_name(name: &str) -> Result<(), SignerError> {
    let ok = (2..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SignerError::Validation(format!(
            "profileName `{}` must be 2 to 64 letters, digits and underscores",
            name.escape_debug()
        )))
    }
}

fn iso8601(seconds: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000+0000");
    t.format(&f).unwrap_or_default()
}

impl Signer {
    /// Opens `DATA_DIR/signer.db` and loads everything.
    pub fn open(
        data_dir: &Path,
        kms: Arc<Kms>,
        account: &str,
        region: &str,
    ) -> Result<Self, SignerError> {
        Self::open_with_clock(data_dir, kms, account, region, Arc::new(now_seconds))
    }

    /// [`Signer::open`] with a clock of the caller's.
    pub fn open_with_clock(
        data_dir: &Path,
        kms: Arc<Kms>,
        account: &str,
        region: &str,
        clock: Clock,
    ) -> Result<Self, SignerError> {
        let conn = store::open(&data_dir.join("signer.db"))?;
        let state = State::build(
            store::load(&conn, store::PROFILE)?,
            store::load(&conn, store::JOB)?,
            store::load(&conn, store::CONFIG)?,
            store::load(&conn, store::FUNCTION)?,
            0,
        );
        Ok(Self::with_backend(
            Backend::Sqlite(Mutex::new(conn)),
            state,
            kms,
            account,
            region,
            clock,
        ))
    }

    /// Opens code signing on the PostgreSQL database at `url`, shared with the other
    /// nodes (which must share `kms`'s keys too, as profile keys are sealed under them),
    /// with a pool of `connections`.
    pub fn open_postgres(
        url: &str,
        connections: usize,
        kms: Arc<Kms>,
        account: &str,
        region: &str,
    ) -> Result<Self, SignerError> {
        let pool = warden_postgres::Pool::open(
            url,
            &warden_postgres::Options {
                connections,
                application_name: "warden-signer".to_owned(),
            },
            &[warden_postgres::records::TRACK],
        )
        .map_err(shared("opening the signer store"))?;
        Self::open_shared(pool, kms, account, region)
    }

    /// [`Signer::open_postgres`] on a pool opened with the shared records' track, which
    /// other services may share.
    pub fn open_shared(
        pool: warden_postgres::Pool,
        kms: Arc<Kms>,
        account: &str,
        region: &str,
    ) -> Result<Self, SignerError> {
        let records = SharedRecords::on(pool, store::NAMESPACE)
            .map_err(shared("opening the signer store"))?;
        let state =
            State::from_shared(&records.load().map_err(shared("reading the signer store"))?)?;
        Ok(Self::with_backend(
            Backend::Postgres(records),
            state,
            kms,
            account,
            region,
            Arc::new(now_seconds),
        ))
    }

    fn with_backend(
        backend: Backend,
        state: State,
        kms: Arc<Kms>,
        account: &str,
        region: &str,
        clock: Clock,
    ) -> Self {
        Signer {
            inner: Arc::new(Inner {
                kms,
                account: account.to_owned(),
                region: region.to_owned(),
                clock,
                backend,
                state: Mutex::new(state),
            }),
        }
    }

    /// With a shared store, reads the records again if another node changed them since
    /// this node last read or wrote them; returns whether it did. Called periodically by
    /// the server, this bounds how long another node's change (a config attached to a
    /// function, a revoked profile) goes unseen here.
    pub fn refresh(&self) -> Result<bool, SignerError> {
        let Backend::Postgres(records) = &self.inner.backend else {
            return Ok(false);
        };
        let generation = records
            .generation()
            .map_err(shared("reading the signer store"))?;
        if generation == warden_sqlite::lock(&self.inner.state).generation {
            return Ok(false);
        }
        let snapshot = records.load().map_err(shared("reading the signer store"))?;
        let fresh = State::from_shared(&snapshot)?;
        let mut state = warden_sqlite::lock(&self.inner.state);
        // A write of this node may have installed a newer state meanwhile.
        if fresh.generation > state.generation {
            *state = fresh;
            return Ok(true);
        }
        Ok(false)
    }

    /// The state for one change (see [`Change`]).
    fn change(&self) -> Result<Change<'_>, SignerError> {
        let mut state = warden_sqlite::lock(&self.inner.state);
        let write = match &self.inner.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(records) => {
                let mut w = records
                    .begin()
                    .map_err(shared("locking the signer store"))?;
                if w.generation() != state.generation {
                    *state =
                        State::from_shared(&w.load().map_err(shared("reading the signer store"))?)?;
                }
                Some(w)
            }
        };
        Ok(Change {
            state,
            backend: &self.inner.backend,
            write,
        })
    }

    fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    /// The account served.
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// A profile's ARN.
    pub fn profile_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:signer:{}:{}:/signing-profiles/{name}",
            self.inner.region, self.inner.account
        )
    }

    /// A signing job's ARN.
    pub fn job_arn(&self, job_id: &str) -> String {
        format!(
            "arn:aws:signer:{}:{}:/signing-jobs/{job_id}",
            self.inner.region, self.inner.account
        )
    }

    fn new_version(&self, profile_arn: &str) -> Result<ProfileVersion, SignerError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
            .map_err(|_| SignerError::Key("generating a P-384 key failed".into()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref())
            .map_err(|_| SignerError::Key("reading a new P-384 key failed".into()))?;
        let version = random_word(10);
        let context = key_context(&format!("{profile_arn}/{version}"));
        let key = self
            .inner
            .kms
            .aws_managed_key("signer")
            .map_err(|e| SignerError::Key(e.to_string()))?;
        let (sealed, _) = self
            .inner
            .kms
            .encrypt(&key.arn, pkcs8.as_ref(), &context)
            .map_err(|e| SignerError::Key(e.to_string()))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(ProfileVersion {
            version,
            public_key: b64.encode(pair.public_key().as_ref()),
            sealed_key: b64.encode(sealed),
            created_at: self.now(),
        })
    }

    // ---- profiles ----

    /// `PutSigningProfile`: creates the profile with its first version, or, for an active
    /// profile of that name, adds a new version (a new key) that signs from now on; older
    /// versions keep verifying. Returns the profile.
    pub fn put_profile(
        &self,
        name: &str,
        platform_id: &str,
        validity: Option<Validity>,
    ) -> Result<Profile, SignerError> {
        check_profile_name(name)?;
        if platform_id != LAMBDA_PLATFORM {
            return Err(SignerError::Validation(format!(
                "platformId `{}` is not supported: Warden signs only for `{LAMBDA_PLATFORM}`",
                platform_id.escape_debug()
            )));
        }
        let mut state = self.change()?;
        let arn = self.profile_arn(name);
        let profile = match state.profiles.get(name) {
            Some(p) if p.status != ProfileStatus::Active => {
                return Err(SignerError::Conflict(format!(
                    "the signing profile `{name}` is {} and cannot be put again",
                    p.status.as_str()
                )))
            }
            Some(p) => {
                if p.versions.len() >= MAX_VERSIONS {
                    return Err(SignerError::LimitExceeded(format!(
                        "the signing profile `{name}` has {MAX_VERSIONS} versions already"
                    )));
                }
                let mut p = p.clone();
                if let Some(v) = validity {
                    p.validity = v;
                }
                p.versions.push(self.new_version(&arn)?);
                p
            }
            None => {
                if state.profiles.len() >= MAX_PROFILES {
                    return Err(SignerError::LimitExceeded(format!(
                        "there are {MAX_PROFILES} signing profiles already"
                    )));
                }
                Profile {
                    name: name.to_owned(),
                    arn: arn.clone(),
                    platform_id: platform_id.to_owned(),
                    validity: validity.unwrap_or(Validity::DEFAULT),
                    status: ProfileStatus::Active,
                    versions: vec![self.new_version(&arn)?],
                    revocation: None,
                    permissions: Vec::new(),
                    revision_id: uuid_like(),
                }
            }
        };
        state.put(store::PROFILE, name, &profile)?;
        state.profiles.insert(name.to_owned(), profile.clone());
        Ok(profile)
    }

    /// `GetSigningProfile`.
    pub fn profile(&self, name: &str) -> Result<Profile, SignerError> {
        let state = warden_sqlite::lock(&self.inner.state);
        state
            .profiles
            .get(name)
            .cloned()
            .ok_or_else(|| profile_not_found(name))
    }

    /// `ListSigningProfiles`: every profile, by name, canceled ones only if asked.
    pub fn profiles(&self, include_canceled: bool) -> Vec<Profile> {
        let state = warden_sqlite::lock(&self.inner.state);
        state
            .profiles
            .values()
            .filter(|p| include_canceled || p.status != ProfileStatus::Canceled)
            .cloned()
            .collect()
    }

    /// `CancelSigningProfile`: the profile signs no more; its signatures stay valid.
    pub fn cancel_profile(&self, name: &str) -> Result<(), SignerError> {
        self.change_profile(name, |p| {
            if p.status == ProfileStatus::Active {
                p.status = ProfileStatus::Canceled;
            }
            Ok(())
        })
        .map(|_| ())
    }

    /// `RevokeSigningProfile`: signatures of this profile made at or after `effective_from`
    /// are revoked, whatever config trusts them.
    pub fn revoke_profile(
        &self,
        name: &str,
        version: &str,
        reason: &str,
        effective_from: i64,
        revoked_by: &str,
    ) -> Result<(), SignerError> {
        check_reason(reason)?;
        let now = self.now();
        if effective_from > now {
            return Err(SignerError::Validation(
                "effectiveTime must not be in the future".into(),
            ));
        }
        self.change_profile(name, |p| {
            if !p.versions.iter().any(|v| v.version == version) {
                return Err(SignerError::NotFound(format!(
                    "the signing profile `{name}` has no version `{}`",
                    version.escape_debug()
                )));
            }
            if p.status == ProfileStatus::Revoked {
                return Err(SignerError::Validation(format!(
                    "the signing profile `{name}` is revoked already"
                )));
            }
            p.status = ProfileStatus::Revoked;
            p.revocation = Some(Revocation {
                profile_version: version.to_owned(),
                effective_from,
                revoked_at: now,
                revoked_by: revoked_by.to_owned(),
                reason: reason.to_owned(),
            });
            Ok(())
        })
        .map(|_| ())
    }

    fn change_profile(
        &self,
        name: &str,
        f: impl FnOnce(&mut Profile) -> Result<(), SignerError>,
    ) -> Result<Profile, SignerError> {
        let mut state = self.change()?;
        let mut p = state
            .profiles
            .get(name)
            .cloned()
            .ok_or_else(|| profile_not_found(name))?;
        f(&mut p)?;
        state.put(store::PROFILE, name, &p)?;
        state.profiles.insert(name.to_owned(), p.clone());
        Ok(p)
    }

    /// `AddProfilePermission`: adds a statement; `revision_id`, when given, must be the
    /// current one. Returns the new revision id.
    pub fn add_permission(
        &self,
        name: &str,
        permission: Permission,
        revision_id: Option<&str>,
    ) -> Result<String, SignerError> {
        const ACTIONS: [&str; 4] = [
            "signer:StartSigningJob",
            "signer:SignPayload",
            "signer:GetSigningProfile",
            "signer:RevokeSignature",
        ];
        if !ACTIONS.contains(&permission.action.as_str()) {
            return Err(SignerError::Validation(format!(
                "action `{}` must be one of {}",
                permission.action.escape_debug(),
                ACTIONS.join(", ")
            )));
        }
        check_statement_id(&permission.statement_id)?;
        if permission.principal.is_empty() || permission.principal.len() > 256 {
            return Err(SignerError::Validation(
                "principal must be 1 to 256 characters".into(),
            ));
        }
        let p = self.change_profile(name, |p| {
            check_revision(p, revision_id)?;
            if let Some(v) = &permission.profile_version {
                if !p.versions.iter().any(|x| &x.version == v) {
                    return Err(SignerError::NotFound(format!(
                        "the signing profile `{name}` has no version `{}`",
                        v.escape_debug()
                    )));
                }
            }
            if p.permissions
                .iter()
                .any(|x| x.statement_id == permission.statement_id)
            {
                return Err(SignerError::Conflict(format!(
                    "the statement id `{}` is in use",
                    permission.statement_id
                )));
            }
            if p.permissions.len() >= MAX_PERMISSIONS {
                return Err(SignerError::LimitExceeded(format!(
                    "the signing profile `{name}` has {MAX_PERMISSIONS} permissions already"
                )));
            }
            p.permissions.push(permission);
            p.revision_id = uuid_like();
            Ok(())
        })?;
        Ok(p.revision_id)
    }

    /// `RemoveProfilePermission`: `revision_id` must be the current one. Returns the new
    /// revision id.
    pub fn remove_permission(
        &self,
        name: &str,
        statement_id: &str,
        revision_id: &str,
    ) -> Result<String, SignerError> {
        let p = self.change_profile(name, |p| {
            check_revision(p, Some(revision_id))?;
            let before = p.permissions.len();
            p.permissions.retain(|x| x.statement_id != statement_id);
            if p.permissions.len() == before {
                return Err(SignerError::NotFound(format!(
                    "the signing profile `{name}` has no statement `{}`",
                    statement_id.escape_debug()
                )));
            }
            p.revision_id = uuid_like();
            Ok(())
        })?;
        Ok(p.revision_id)
    }

    // ---- signatures ----

    /// `SignPayload` of a package digest (hex SHA-384, see [`format`]) with the profile's
    /// current version: returns the job and the signature comment to attach to the
    /// package. The private key is opened through KMS for this one signature.
    pub fn sign_digest(&self, name: &str, digest: &str) -> Result<(Job, Manifest), SignerError> {
        if digest.len() != 96 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SignerError::Validation(
                "payload must be the package's SHA-384 digest in hex (96 characters)".into(),
            ));
        }
        let digest = digest.to_ascii_lowercase();
        let profile = self.profile(name)?;
        if profile.status != ProfileStatus::Active {
            return Err(SignerError::Validation(format!(
                "the signing profile `{name}` is {} and signs no more",
                profile.status.as_str()
            )));
        }
        let version = profile
            .current()
            .ok_or_else(|| SignerError::Key("the profile has no version".into()))?;
        let version_arn = profile.version_arn(&version.version);
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&version.sealed_key)
            .map_err(|_| SignerError::Key("a stored sealed key is not base64".into()))?;
        let (pkcs8, _) = self
            .inner
            .kms
            .decrypt(&sealed, &key_context(&version_arn), None)
            .map_err(|e| SignerError::Key(e.to_string()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &pkcs8)
            .map_err(|_| SignerError::Key("a stored key does not parse".into()))?;
        let signed_at = self.now();
        let expires_at = signed_at.saturating_add(profile.validity.seconds());
        let job_id = format!(
            "{}-{}-{}-{}-{}",
            lower_word(8),
            lower_word(4),
            lower_word(4),
            lower_word(4),
            lower_word(12)
        );
        let statement = Manifest::statement(&version_arn, &job_id, signed_at, expires_at, &digest);
        let signature = pair
            .sign(&SystemRandom::new(), &statement)
            .map_err(|_| SignerError::Key("signing failed".into()))?;
        let job = Job {
            job_id: job_id.clone(),
            profile_name: name.to_owned(),
            profile_version: version.version.clone(),
            signed_at,
            revoked: None,
        };
        {
            let mut state = self.change()?;
            if state.jobs.len() >= MAX_JOBS {
                return Err(SignerError::LimitExceeded(format!(
                    "Warden remembers at most {MAX_JOBS} signing jobs"
                )));
            }
            state.put(store::JOB, &job_id, &job)?;
            state.jobs.insert(job_id.clone(), job.clone());
        }
        let manifest = Manifest {
            profile_version_arn: version_arn,
            job_id,
            signed_at,
            expires_at,
            digest,
            signature: base64::engine::general_purpose::STANDARD.encode(signature.as_ref()),
        };
        Ok((job, manifest))
    }

    /// The job of `job_id`.
    pub fn job(&self, job_id: &str) -> Result<Job, SignerError> {
        let state = warden_sqlite::lock(&self.inner.state);
        state.jobs.get(job_id).cloned().ok_or_else(|| {
            SignerError::NotFound(format!("no signing job `{}`", job_id.escape_debug()))
        })
    }

    /// `RevokeSignature`: the job's signature is no longer trusted by any config.
    pub fn revoke_signature(&self, job_id: &str, reason: &str) -> Result<(), SignerError> {
        check_reason(reason)?;
        let mut state = self.change()?;
        let mut job = state.jobs.get(job_id).cloned().ok_or_else(|| {
            SignerError::NotFound(format!("no signing job `{}`", job_id.escape_debug()))
        })?;
        job.revoked = Some((reason.to_owned(), self.now()));
        state.put(store::JOB, job_id, &job)?;
        state.jobs.insert(job_id.to_owned(), job);
        Ok(())
    }

    /// The verdict on `zip` for a config trusting `allowed` profile versions, in Lambda's
    /// order: integrity, expiry, mismatch, revocation.
    pub fn verify(&self, zip: &[u8], allowed: &[String]) -> Verdict {
        // An unsigned package needs no digest.
        if format::split(zip).is_ok_and(|s| !s.comment.starts_with(format::MAGIC)) {
            return Verdict::Untrusted(Untrusted::Unsigned);
        }
        let (manifest, digest) = match format::read_signature(zip) {
            Ok(read) => read,
            Err(e) => return Verdict::Integrity(e.to_string()),
        };
        let Some(m) = manifest else {
            return Verdict::Untrusted(Untrusted::Unsigned);
        };
        if m.digest != digest {
            return Verdict::Integrity(
                "the package does not match its signature: it was changed after signing".into(),
            );
        }
        let state = warden_sqlite::lock(&self.inner.state);
        let found = state.profiles.values().find_map(|p| {
            p.versions
                .iter()
                .find(|v| p.version_arn(&v.version) == m.profile_version_arn)
                .map(|v| (p, v))
        });
        let Some((profile, version)) = found else {
            return Verdict::Untrusted(Untrusted::Mismatch {
                profile_version_arn: m.profile_version_arn.clone(),
            });
        };
        let Ok(public) = base64::engine::general_purpose::STANDARD.decode(&version.public_key)
        else {
            return Verdict::Integrity("the profile version's public key is unreadable".into());
        };
        let Ok(signature) = m.signature_bytes() else {
            return Verdict::Integrity("the signature is not base64".into());
        };
        let statement = Manifest::statement(
            &m.profile_version_arn,
            &m.job_id,
            m.signed_at,
            m.expires_at,
            &m.digest,
        );
        if UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &public)
            .verify(&statement, &signature)
            .is_err()
        {
            return Verdict::Integrity(
                "the signature does not verify with the signing profile version's key".into(),
            );
        }
        if self.now() >= m.expires_at {
            return Verdict::Untrusted(Untrusted::Expired { at: m.expires_at });
        }
        if !allowed.contains(&m.profile_version_arn) {
            return Verdict::Untrusted(Untrusted::Mismatch {
                profile_version_arn: m.profile_version_arn,
            });
        }
        if let Some(r) = &profile.revocation {
            if m.signed_at >= r.effective_from {
                return Verdict::Untrusted(Untrusted::Revoked {
                    what: format!("the signing profile `{}`", profile.name),
                });
            }
        }
        if state
            .jobs
            .get(&m.job_id)
            .is_some_and(|j| j.revoked.is_some())
        {
            return Verdict::Untrusted(Untrusted::Revoked {
                what: format!("the signature of signing job `{}`", m.job_id),
            });
        }
        Verdict::Trusted {
            profile_version_arn: m.profile_version_arn,
            job_id: m.job_id,
        }
    }

    // ---- code signing configs ----

    fn config_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:code-signing-config:{id}",
            self.inner.region, self.inner.account
        )
    }

    /// `CreateCodeSigningConfig`.
    pub fn create_config(
        &self,
        description: String,
        allowed: Vec<String>,
        policy: Policy,
    ) -> Result<CodeSigningConfig, SignerError> {
        check_config(&description, &allowed)?;
        let mut state = self.change()?;
        if state.configs.len() >= MAX_CONFIGS {
            return Err(SignerError::LimitExceeded(format!(
                "there are {MAX_CONFIGS} code signing configs already"
            )));
        }
        let id = format!("csc-{}", lower_word(17));
        let config = CodeSigningConfig {
            arn: self.config_arn(&id),
            id,
            description,
            allowed,
            policy,
            last_modified: iso8601(self.now()),
        };
        state.put(store::CONFIG, &config.arn, &config)?;
        state.configs.insert(config.arn.clone(), config.clone());
        Ok(config)
    }

    /// `GetCodeSigningConfig`.
    pub fn config(&self, arn: &str) -> Result<CodeSigningConfig, SignerError> {
        let state = warden_sqlite::lock(&self.inner.state);
        state
            .configs
            .get(arn)
            .cloned()
            .ok_or_else(|| config_not_found(arn))
    }

    /// `ListCodeSigningConfigs`: by ARN.
    pub fn configs(&self) -> Vec<CodeSigningConfig> {
        let state = warden_sqlite::lock(&self.inner.state);
        state.configs.values().cloned().collect()
    }

    /// `UpdateCodeSigningConfig`: each given part replaces the config's.
    pub fn update_config(
        &self,
        arn: &str,
        description: Option<String>,
        allowed: Option<Vec<String>>,
        policy: Option<Policy>,
    ) -> Result<CodeSigningConfig, SignerError> {
        let mut state = self.change()?;
        let mut c = state
            .configs
            .get(arn)
            .cloned()
            .ok_or_else(|| config_not_found(arn))?;
        if let Some(d) = description {
            c.description = d;
        }
        if let Some(a) = allowed {
            c.allowed = a;
        }
        if let Some(p) = policy {
            c.policy = p;
        }
        check_config(&c.description, &c.allowed)?;
        c.last_modified = iso8601(self.now());
        state.put(store::CONFIG, arn, &c)?;
        state.configs.insert(arn.to_owned(), c.clone());
        Ok(c)
    }

    /// `DeleteCodeSigningConfig`: refused while a function uses it.
    pub fn delete_config(&self, arn: &str) -> Result<(), SignerError> {
        let mut state = self.change()?;
        if !state.configs.contains_key(arn) {
            return Err(config_not_found(arn));
        }
        if state.functions.values().any(|c| c == arn) {
            return Err(SignerError::Conflict(format!(
                "the code signing config `{arn}` is used by functions"
            )));
        }
        state.remove(store::CONFIG, arn)?;
        state.configs.remove(arn);
        Ok(())
    }

    /// The config a function uses, if any (`GetFunctionCodeSigningConfig`).
    pub fn config_of(&self, function: &str) -> Option<CodeSigningConfig> {
        let state = warden_sqlite::lock(&self.inner.state);
        state
            .functions
            .get(function)
            .and_then(|arn| state.configs.get(arn))
            .cloned()
    }

    /// `PutFunctionCodeSigningConfig`: the function's future deploys are checked by the
    /// config (its deployed code keeps running).
    pub fn set_function_config(&self, function: &str, arn: &str) -> Result<(), SignerError> {
        let mut state = self.change()?;
        if !state.configs.contains_key(arn) {
            return Err(config_not_found(arn));
        }
        let record = Association {
            function: function.to_owned(),
            config_arn: arn.to_owned(),
        };
        state.put(store::FUNCTION, function, &record)?;
        state.functions.insert(function.to_owned(), arn.to_owned());
        Ok(())
    }

    /// `DeleteFunctionCodeSigningConfig`, and a deleted function's association. Returns
    /// whether there was one.
    pub fn clear_function_config(&self, function: &str) -> Result<bool, SignerError> {
        let mut state = self.change()?;
        if !state.functions.contains_key(function) {
            return Ok(false);
        }
        state.remove(store::FUNCTION, function)?;
        state.functions.remove(function);
        Ok(true)
    }

    /// `ListFunctionsByCodeSigningConfig`: the names of the functions using `arn`.
    pub fn functions_of(&self, arn: &str) -> Result<Vec<String>, SignerError> {
        let state = warden_sqlite::lock(&self.inner.state);
        if !state.configs.contains_key(arn) {
            return Err(config_not_found(arn));
        }
        Ok(state
            .functions
            .iter()
            .filter(|(_, c)| *c == arn)
            .map(|(f, _)| f.clone())
            .collect())
    }
}

fn key_context(version_arn: &str) -> EncryptionContext {
    [(
        "signer:profileVersionArn".to_owned(),
        version_arn.to_owned(),
    )]
    .into()
}

fn uuid_like() -> String {
    format!(
        "{}-{}-{}-{}-{}",
        lower_word(8),
        lower_word(4),
        lower_word(4),
        lower_word(4),
        lower_word(12)
    )
}

fn profile_not_found(name: &str) -> SignerError {
    SignerError::NotFound(format!(
        "the signing profile `{}` does not exist",
        name.escape_debug()
    ))
}

fn config_not_found(arn: &str) -> SignerError {
    SignerError::NotFound(format!(
        "the code signing config `{}` does not exist",
        arn.escape_debug()
    ))
}

fn check_reason(reason: &str) -> Result<(), SignerError> {
    if (1..=500).contains(&reason.len()) {
        Ok(())
    } else {
        Err(SignerError::Validation(
            "reason must be 1 to 500 characters".into(),
        ))
    }
}

fn check_statement_id(id: &str) -> Result<(), SignerError> {
    let ok = (1..=100).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SignerError::Validation(format!(
            "statementId `{}` must be 1 to 100 letters, digits, hyphens and underscores",
            id.escape_debug()
        )))
    }
}

fn check_revision(p: &Profile, revision_id: Option<&str>) -> Result<(), SignerError> {
    match revision_id {
        Some(r) if r != p.revision_id => Err(SignerError::Conflict(format!(
            "revisionId `{}` is not the profile's current revision",
            r.escape_debug()
        ))),
        _ => Ok(()),
    }
}

/// Checks a config's description (at most 256 characters) and allowed publishers (1 to 20
/// signing profile version ARNs).
pub fn check_config(description: &str, allowed: &[String]) -> Result<(), SignerError> {
    if description.chars().count() > 256 {
        return Err(SignerError::Validation(
            "Description must be at most 256 characters".into(),
        ));
    }
    if allowed.is_empty() || allowed.len() > 20 {
        return Err(SignerError::Validation(format!(
            "AllowedPublishers.SigningProfileVersionArns must name 1 to 20 profile versions; it names {}",
            allowed.len()
        )));
    }
    for arn in allowed {
        let ok = arn.len() <= 1024
            && arn.starts_with("arn:aws:signer:")
            && arn.contains(":/signing-profiles/");
        if !ok {
            return Err(SignerError::Validation(format!(
                "`{}` in AllowedPublishers.SigningProfileVersionArns is not a signing profile version ARN",
                arn.escape_debug()
            )));
        }
    }
    Ok(())
}

//! The operations of Secrets Manager over the store, each one transaction.

use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};
use warden_kms::envelope;
use warden_kms::{EncryptionContext, Kms};

use crate::error::SecretsError;
use crate::store::{SecretsStore, Tx};

/// The stage of the version callers get by default.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The stage of the version `AWSCURRENT` left.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
/// The stage of a version being rotated in.
pub const AWSPENDING: &str = "AWSPENDING";
/// Largest value, in bytes (string or binary), as Secrets Manager allows.
pub const MAX_SECRET_BYTES: usize = 65_536;
/// Most secrets one server holds.
const MAX_SECRETS: usize = 10_000;
/// Most versions a secret keeps; the oldest without a stage go first.
const MAX_VERSIONS: usize = 100;
/// Most bytes all stored values may take together (sealed), so that the secrets store
/// cannot fill the disk: 10,000 secrets of 100 versions of 64 KB would be 64 GB.
pub const MAX_STORED_BYTES: u64 = 1 << 30;
/// Most stages on one version.
const MAX_STAGES: usize = 20;
/// Most tags on one secret.
const MAX_TAGS: usize = 50;
/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// A clock in epoch milliseconds (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Rotation settings of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The function that rotates it (its four steps).
    pub lambda_arn: String,
    /// `RotationRules.AutomaticallyAfterDays`.
    pub after_days: Option<u32>,
    /// `RotationRules.ScheduleExpression`, `rate(N days)` or `rate(N hours)` form.
    pub schedule: Option<String>,
    /// When the next scheduled rotation is due.
    pub next_ms: Option<i64>,
}

impl Rotation {
    /// The interval between rotations, in milliseconds.
    pub fn interval_ms(&self) -> Option<i64> {
        if let Some(days) = self.after_days {
            return Some(i64::from(days) * DAY_MS);
        }
        let inner = self
            .schedule
            .as_deref()?
            .strip_prefix("rate(")?
            .strip_suffix(')')?;
        let (n, unit) = inner.split_once(' ')?;
        let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
        match unit {
            "day" | "days" => Some(n * DAY_MS),
            "hour" | "hours" => Some(n * 3_600_000),
            _ => None,
        }
    }
}

/// A secret's metadata (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    /// `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX`.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// The customer managed KMS key sealing it, as given; `aws/secretsmanager` if `None`.
    pub kms_key_id: Option<String>,
    /// When it was made.
    pub created_ms: i64,
    /// When its value or settings last changed.
    pub last_changed_ms: i64,
    /// The day it was last read.
    pub last_accessed_ms: Option<i64>,
    /// When a secret scheduled for deletion is deleted.
    pub deleted_ms: Option<i64>,
    /// Rotation, when enabled.
    pub rotation: Option<Rotation>,
    /// When it was last rotated.
    pub last_rotated_ms: Option<i64>,
    /// Tags, in the order given.
    pub tags: Vec<(String, String)>,
    /// Its resource policy.
    pub policy: Option<String>,
}

impl Secret {
    /// The KMS key reference sealing its values.
    pub fn key_ref(&self) -> &str {
        self.kms_key_id
            .as_deref()
            .unwrap_or("alias/aws/secretsmanager")
    }
}

/// One version of a secret (its value stays sealed in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its id (the `ClientRequestToken` that made it).
    pub id: String,
    /// When it was made.
    pub created_ms: i64,
    /// The day it was last read.
    pub last_accessed_ms: Option<i64>,
    /// Its stages.
    pub stages: Vec<String>,
}

/// A secret's value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// `SecretString`.
    String(String),
    /// `SecretBinary`.
    Binary(Vec<u8>),
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl SecretValue {
    fn len(&self) -> usize {
        match self {
            SecretValue::String(s) => s.len(),
            SecretValue::Binary(b) => b.len(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let (tag, bytes) = match self {
            SecretValue::String(s) => (0u8, s.as_bytes()),
            SecretValue::Binary(b) => (1u8, b.as_slice()),
        };
        let mut out = Vec::with_capacity(1 + bytes.len());
        out.push(tag);
        out.extend_from_slice(bytes);
        out
    }

    fn decode(bytes: &[u8]) -> Option<SecretValue> {
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            0 => String::from_utf8(rest.to_vec())
                .ok()
                .map(SecretValue::String),
            1 => Some(SecretValue::Binary(rest.to_vec())),
            _ => None,
        }
    }
}

/// What a new secret is made with.
#[derive(Debug, Clone, Default)]
pub struct NewSecret {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its customer managed KMS key.
    pub kms_key_id: Option<String>,
    /// Its first value (then version `token` becomes `AWSCURRENT`).
    pub value: Option<SecretValue>,
    /// `ClientRequestToken`: the first version's id.
    pub token: Option<String>,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

/// Checks a secret name as Secrets Manager does.
pub fn check_name(name: &str) -> Result<(), SecretsError> {
    if name.is_empty()
        || name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
    {
        return Err(SecretsError::InvalidParameter(format!(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@! ({} characters given)",
            name.chars().count()
        )));
    }
    Ok(())
}

fn check_token(token: &str) -> Result<(), SecretsError> {
    if !(32..=64).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SecretsError::InvalidParameter(
            "ClientRequestToken must be 32 to 64 printable characters".into(),
        ));
    }
    Ok(())
}

fn check_value(value: &SecretValue) -> Result<(), SecretsError> {
    if value.len() > MAX_SECRET_BYTES {
        return Err(SecretsError::InvalidParameter(format!(
            "A secret value is at most {MAX_SECRET_BYTES} bytes; this one is {}",
            value.len()
        )));
    }
    Ok(())
}

fn check_stages(stages: &[String]) -> Result<(), SecretsError> {
    if stages.len() > MAX_STAGES
        || stages
            .iter()
            .any(|s| s.is_empty() || s.len() > 256 || !s.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(SecretsError::InvalidParameter(format!(
            "VersionStages must hold 1 to {MAX_STAGES} labels of 1 to 256 characters"
        )));
    }
    Ok(())
}

fn deleted(secret: &Secret) -> SecretsError {
    SecretsError::InvalidRequest(format!(
        "You can't perform this operation on the secret {} because it was marked for deletion.",
        secret.name
    ))
}

fn not_found() -> SecretsError {
    SecretsError::NotFound("Secrets Manager can't find the specified secret.".into())
}

struct Inner {
    store: SecretsStore,
    max_stored_bytes: std::sync::atomic::AtomicU64,
    kms: Kms,
    account: String,
    region: String,
    clock: Clock,
}

/// Warden's Secrets Manager.
#[derive(Clone)]
pub struct Secrets {
    inner: Arc<Inner>,
}

impl Secrets {
    /// Opens the service on `DATA_DIR/secrets.db`, sealing values with `kms`.
    pub fn open(
        data_dir: &Path,
        kms: Kms,
        account: &str,
        region: &str,
    ) -> Result<Self, SecretsError> {
        Self::open_with_clock(
            data_dir,
            kms,
            account,
            region,
            Arc::new(warden_types::now_millis),
        )
    }

    /// [`Secrets::open`] with a clock of the caller's.
    pub fn open_with_clock(
        data_dir: &Path,
        kms: Kms,
        account: &str,
        region: &str,
        clock: Clock,
    ) -> Result<Self, SecretsError> {
        let store = SecretsStore::open(&data_dir.join("secrets.db"))?;
        Ok(Self::with_store(store, kms, account, region, clock))
    }

    /// Opens the service on the PostgreSQL database at `url`, shared with the other
    /// nodes (which must share `kms`'s keys too), with a pool of `connections`.
    pub fn open_postgres(
        url: &str,
        connections: usize,
        kms: Kms,
        account: &str,
        region: &str,
    ) -> Result<Self, SecretsError> {
        Self::open_postgres_with_clock(
            url,
            connections,
            kms,
            account,
            region,
            Arc::new(warden_types::now_millis),
        )
    }

    /// [`Secrets::open_postgres`] with a clock of the caller's.
    pub fn open_postgres_with_clock(
        url: &str,
        connections: usize,
        kms: Kms,
        account: &str,
        region: &str,
        clock: Clock,
    ) -> Result<Self, SecretsError> {
        let store = SecretsStore::open_postgres(url, connections)?;
        Ok(Self::with_store(store, kms, account, region, clock))
    }

    fn with_store(
        store: SecretsStore,
        kms: Kms,
        account: &str,
        region: &str,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                max_stored_bytes: std::sync::atomic::AtomicU64::new(MAX_STORED_BYTES),
                kms,
                account: account.to_owned(),
                region: region.to_owned(),
                clock,
            }),
        }
    }

    fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    /// Sets another bound on the bytes of all stored values (the default is
    /// [`MAX_STORED_BYTES`]).
    pub fn set_max_stored_bytes(&self, max: u64) {
        self.inner
            .max_stored_bytes
            .store(max, std::sync::atomic::Ordering::Relaxed);
    }

    /// Refuses a value whose sealed form would take the stored values past the bound.
    fn check_room(&self, tx: &mut dyn Tx, adding: usize) -> Result<(), SecretsError> {
        let stored = tx.stored_bytes()?;
        let max = self
            .inner
            .max_stored_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        if stored.saturating_add(adding as u64) > max {
            return Err(SecretsError::LimitExceeded(format!(
                "The secrets store holds at most {max} bytes of values; delete secrets or versions first"
            )));
        }
        Ok(())
    }

    /// The ARN prefix of this account's secrets.
    pub fn arn_prefix(&self) -> String {
        format!(
            "arn:aws:secretsmanager:{}:{}:secret:",
            self.inner.region, self.inner.account
        )
    }

    /// The ARN authorization uses for a secret that does not exist (yet): the ARN given,
    /// or for a name `PREFIX NAME-*` (any secret of that name, whatever its suffix).
    pub fn arn_for_missing(&self, id: &str) -> String {
        if id.starts_with("arn:") {
            id.to_owned()
        } else {
            format!("{}{id}-*", self.arn_prefix())
        }
    }

    /// The secret a `SecretId` names: its name, its ARN, or its ARN without the random
    /// suffix. Deleted (pending) secrets too.
    pub fn resolve(&self, id: &str) -> Result<Secret, SecretsError> {
        self.inner.store.write("reading a secret", |tx| {
            self.purge(tx)?;
            lookup(tx, &self.arn_prefix(), id)
        })
    }

    /// Deletes the secrets whose recovery window ended.
    fn purge(&self, tx: &mut dyn Tx) -> Result<(), SecretsError> {
        for arn in tx.due_for_deletion(self.now())? {
            tx.delete_secret(&arn)?;
            tracing::info!(secret = %arn, "deleted a secret whose recovery window ended");
        }
        Ok(())
    }

    fn seal(
        &self,
        secret: &Secret,
        version: &str,
        value: &SecretValue,
    ) -> Result<Vec<u8>, SecretsError> {
        let context = value_context(&secret.arn, version);
        envelope::seal(&self.inner.kms, secret.key_ref(), &context, &value.encode())
            .map(|(blob, _)| blob)
            .map_err(|e| SecretsError::kms("EncryptionFailure", e))
    }

    fn open_value(
        &self,
        secret: &Secret,
        version: &str,
        sealed: &[u8],
    ) -> Result<SecretValue, SecretsError> {
        let context = value_context(&secret.arn, version);
        let plain = envelope::open(&self.inner.kms, &context, sealed)
            .map_err(|e| SecretsError::kms("DecryptionFailure", e))?;
        SecretValue::decode(&plain).ok_or_else(|| SecretsError::Kms {
            code: "DecryptionFailure",
            message: "the stored value does not decode".into(),
        })
    }

    /// `CreateSecret`.
    pub fn create(&self, new: NewSecret) -> Result<(Secret, Option<Version>), SecretsError> {
        check_name(&new.name)?;
        if let Some(t) = &new.token {
            check_token(t)?;
        }
        if let Some(v) = &new.value {
            check_value(v)?;
        }
        if new.tags.len() > MAX_TAGS {
            return Err(SecretsError::InvalidParameter(format!(
                "A secret has at most {MAX_TAGS} tags"
            )));
        }
        if let Some(key) = &new.kms_key_id {
            self.inner
                .kms
                .resolve(key)
                .map_err(|e| SecretsError::kms("EncryptionFailure", e))?;
        }
        let now = self.now();
        self.inner.store.write("creating a secret", |tx| {
            self.purge(tx)?;
            if let Some(existing) = tx.find(&new.name)? {
                if existing.deleted_ms.is_some() {
                    return Err(SecretsError::InvalidRequest(
                        "You can't create this secret because a secret with this name is already scheduled for deletion.".into(),
                    ));
                }
                return Err(SecretsError::Exists(format!(
                    "The operation failed because the secret {} already exists.",
                    new.name
                )));
            }
            if tx.count()? >= MAX_SECRETS {
                return Err(SecretsError::LimitExceeded(format!(
                    "This server holds at most {MAX_SECRETS} secrets"
                )));
            }
            let suffix: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(6)
                .map(char::from)
                .collect();
            let secret = Secret {
                arn: format!("{}{}-{suffix}", self.arn_prefix(), new.name),
                name: new.name.clone(),
                description: new.description.clone(),
                kms_key_id: new.kms_key_id.clone(),
                created_ms: now,
                last_changed_ms: now,
                last_accessed_ms: None,
                deleted_ms: None,
                rotation: None,
                last_rotated_ms: None,
                tags: new.tags.clone(),
                policy: None,
            };
            tx.put_secret(&secret)?;
            let version = match &new.value {
                Some(value) => {
                    let id = new.token.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    let version = Version {
                        id,
                        created_ms: now,
                        last_accessed_ms: None,
                        stages: vec![AWSCURRENT.to_owned()],
                    };
                    let sealed = self.seal(&secret, &version.id, value)?;
                    self.check_room(tx, sealed.len())?;
                    tx.insert_version(&secret.arn, &version, &sealed)?;
                    Some(version)
                }
                None => None,
            };
            Ok((secret, version))
        })
    }

    /// `DescribeSecret`: the secret and its versions (deleted secrets too).
    pub fn describe(&self, id: &str) -> Result<(Secret, Vec<Version>), SecretsError> {
        self.inner.store.write("describing a secret", |tx| {
            self.purge(tx)?;
            let s = lookup(tx, &self.arn_prefix(), id)?;
            let v = tx.versions(&s.arn)?;
            Ok((s, v))
        })
    }

    /// Every secret with its versions, oldest first (those scheduled for deletion only
    /// with `include_deleted`).
    pub fn list(&self, include_deleted: bool) -> Result<Vec<(Secret, Vec<Version>)>, SecretsError> {
        self.inner.store.write("listing secrets", |tx| {
            self.purge(tx)?;
            let mut out = Vec::new();
            for s in tx.all()? {
                if s.deleted_ms.is_some() && !include_deleted {
                    continue;
                }
                let v = tx.versions(&s.arn)?;
                out.push((s, v));
            }
            Ok(out)
        })
    }

    /// `GetSecretValue`: by version id, stage (default `AWSCURRENT`), or both (then they
    /// must agree).
    pub fn get_value(
        &self,
        id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<(Secret, Version, SecretValue), SecretsError> {
        let now = self.now();
        self.inner.store.write("reading a secret value", |tx| {
            self.purge(tx)?;
            let mut secret = lookup(tx, &self.arn_prefix(), id)?;
            if secret.deleted_ms.is_some() {
                return Err(deleted(&secret));
            }
            let versions = tx.versions(&secret.arn)?;
            let stage = match (version_id, stage) {
                (None, None) => Some(AWSCURRENT),
                (_, s) => s,
            };
            let version = versions
                .into_iter()
                .find(|v| {
                    version_id.is_none_or(|id| v.id == id)
                        && stage.is_none_or(|s| v.stages.iter().any(|x| x == s))
                })
                .ok_or_else(|| {
                    SecretsError::NotFound(format!(
                        "Secrets Manager can't find the specified secret value for {}.",
                        match (version_id, stage) {
                            (Some(v), _) => format!("VersionId: {v}"),
                            (None, Some(s)) => format!("staging label: {s}"),
                            (None, None) => "staging label: AWSCURRENT".into(),
                        }
                    ))
                })?;
            let sealed = tx
                .sealed_value(&secret.arn, &version.id)?
                .ok_or_else(not_found)?;
            let value = self.open_value(&secret, &version.id, &sealed)?;
            let day = now - now.rem_euclid(DAY_MS);
            if secret.last_accessed_ms != Some(day) {
                secret.last_accessed_ms = Some(day);
                tx.put_secret(&secret)?;
            }
            tx.touch_version(&secret.arn, &version.id, day)?;
            Ok((secret, version, value))
        })
    }

    /// `PutSecretValue` (and the value part of `UpdateSecret`): a new version with
    /// `stages` (default `AWSCURRENT`); stages move to it from the versions that had them,
    /// and the version `AWSCURRENT` leaves becomes `AWSPREVIOUS`. A token that names an
    /// existing version is accepted again only with the same value (idempotent retry).
    pub fn put_value(
        &self,
        id: &str,
        token: Option<&str>,
        value: &SecretValue,
        stages: Option<Vec<String>>,
    ) -> Result<(Secret, Version), SecretsError> {
        check_value(value)?;
        if let Some(t) = token {
            check_token(t)?;
        }
        let stages = stages.unwrap_or_else(|| vec![AWSCURRENT.to_owned()]);
        check_stages(&stages)?;
        let now = self.now();
        self.inner.store.write("storing a secret value", |tx| {
            self.purge(tx)?;
            let mut secret = lookup(tx, &self.arn_prefix(), id)?;
            if secret.deleted_ms.is_some() {
                return Err(deleted(&secret));
            }
            let versions = tx.versions(&secret.arn)?;
            let id = token.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
            if let Some(existing) = versions.iter().find(|v| v.id == id) {
                let sealed = tx.sealed_value(&secret.arn, &id)?.ok_or_else(not_found)?;
                if self.open_value(&secret, &id, &sealed)? == *value {
                    return Ok((secret, existing.clone()));
                }
                return Err(SecretsError::Exists(
                    "You can't modify an existing version, you can only create a new version."
                        .into(),
                ));
            }
            let version = Version {
                id: id.clone(),
                created_ms: now,
                last_accessed_ms: None,
                stages: Vec::new(),
            };
            let sealed = self.seal(&secret, &id, value)?;
            self.check_room(tx, sealed.len())?;
            tx.insert_version(&secret.arn, &version, &sealed)?;
            for stage in &stages {
                move_stage(tx, &secret.arn, stage, &id)?;
            }
            prune(tx, &secret.arn)?;
            secret.last_changed_ms = now;
            tx.put_secret(&secret)?;
            let version = tx
                .versions(&secret.arn)?
                .into_iter()
                .find(|v| v.id == id)
                .ok_or_else(not_found)?;
            Ok((secret, version))
        })
    }

    /// `UpdateSecret`'s settings part: description and KMS key.
    pub fn update_settings(
        &self,
        id: &str,
        description: Option<String>,
        kms_key_id: Option<String>,
    ) -> Result<Secret, SecretsError> {
        if let Some(key) = &kms_key_id {
            self.inner
                .kms
                .resolve(key)
                .map_err(|e| SecretsError::kms("EncryptionFailure", e))?;
        }
        self.change(id, "updating a secret", |s, now| {
            if description.is_some() {
                s.description.clone_from(&description);
            }
            if let Some(key) = &kms_key_id {
                // New versions are sealed under the new key; old ones keep theirs (each
                // sealed value names its key).
                s.kms_key_id = (!key.is_empty()).then(|| key.clone());
            }
            s.last_changed_ms = now;
            Ok(())
        })
    }

    fn change(
        &self,
        id: &str,
        context: &'static str,
        mut f: impl FnMut(&mut Secret, i64) -> Result<(), SecretsError>,
    ) -> Result<Secret, SecretsError> {
        let now = self.now();
        self.inner.store.write(context, |tx| {
            self.purge(tx)?;
            let mut secret = lookup(tx, &self.arn_prefix(), id)?;
            if secret.deleted_ms.is_some() {
                return Err(deleted(&secret));
            }
            f(&mut secret, now)?;
            tx.put_secret(&secret)?;
            Ok(secret)
        })
    }

    /// `DeleteSecret`: scheduled after `window_days` (7-30, default 30), or at once with
    /// `force`.
    pub fn delete(
        &self,
        id: &str,
        window_days: Option<i64>,
        force: bool,
    ) -> Result<Secret, SecretsError> {
        if force && window_days.is_some() {
            return Err(SecretsError::InvalidParameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.".into(),
            ));
        }
        let days = window_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(SecretsError::InvalidParameter(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).".into(),
            ));
        }
        let now = self.now();
        self.inner.store.write("deleting a secret", |tx| {
            self.purge(tx)?;
            let mut secret = lookup(tx, &self.arn_prefix(), id)?;
            if force {
                tx.delete_secret(&secret.arn)?;
                secret.deleted_ms = Some(now);
                return Ok(secret);
            }
            if secret.deleted_ms.is_some() {
                return Err(deleted(&secret));
            }
            secret.deleted_ms = Some(now + days * DAY_MS);
            tx.put_secret(&secret)?;
            Ok(secret)
        })
    }

    /// `RestoreSecret`.
    pub fn restore(&self, id: &str) -> Result<Secret, SecretsError> {
        self.inner.store.write("restoring a secret", |tx| {
            self.purge(tx)?;
            let mut secret = lookup(tx, &self.arn_prefix(), id)?;
            secret.deleted_ms = None;
            tx.put_secret(&secret)?;
            Ok(secret)
        })
    }

    /// `UpdateSecretVersionStage`.
    pub fn move_version_stage(
        &self,
        id: &str,
        stage: &str,
        remove_from: Option<&str>,
        move_to: Option<&str>,
    ) -> Result<Secret, SecretsError> {
        check_stages(&[stage.to_owned()])?;
        self.inner.store.write("moving a version stage", |tx| {
            self.purge(tx)?;
            let secret = lookup(tx, &self.arn_prefix(), id)?;
            if secret.deleted_ms.is_some() {
                return Err(deleted(&secret));
            }
            let versions = tx.versions(&secret.arn)?;
            let holder = versions.iter().find(|v| v.stages.iter().any(|s| s == stage));
            if let Some(h) = holder {
                if remove_from != Some(h.id.as_str()) && move_to != Some(h.id.as_str()) {
                    return Err(SecretsError::InvalidParameter(format!(
                        "The staging label {stage} is currently attached to version {}, which you didn't specify in RemoveFromVersionId.",
                        h.id
                    )));
                }
            }
            for v in [remove_from, move_to].into_iter().flatten() {
                if !versions.iter().any(|x| x.id == v) {
                    return Err(SecretsError::NotFound(format!(
                        "Secrets Manager can't find the specified secret value for VersionId: {v}"
                    )));
                }
            }
            match move_to {
                Some(to) => move_stage(tx, &secret.arn, stage, to)?,
                None => {
                    if let Some(from) = remove_from {
                        if stage == AWSCURRENT {
                            return Err(SecretsError::InvalidParameter(
                                "You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed.".into(),
                            ));
                        }
                        let v = versions.iter().find(|v| v.id == from).ok_or_else(not_found)?;
                        let stages: Vec<String> = v.stages.iter().filter(|s| *s != stage).cloned().collect();
                        tx.set_stages(&secret.arn, from, &stages)?;
                    }
                }
            }
            Ok(secret)
        })
    }

    /// `PutResourcePolicy` (the API has checked it parses and is not public).
    pub fn put_policy(&self, id: &str, policy: &str) -> Result<Secret, SecretsError> {
        self.change(id, "writing a resource policy", |s, _| {
            s.policy = Some(policy.to_owned());
            Ok(())
        })
    }

    /// `DeleteResourcePolicy`.
    pub fn delete_policy(&self, id: &str) -> Result<Secret, SecretsError> {
        self.change(id, "deleting a resource policy", |s, _| {
            s.policy = None;
            Ok(())
        })
    }

    /// `TagResource`.
    pub fn tag(&self, id: &str, tags: Vec<(String, String)>) -> Result<Secret, SecretsError> {
        self.change(id, "tagging a secret", |s, _| {
            for (k, v) in &tags {
                match s.tags.iter_mut().find(|(n, _)| n == k) {
                    Some(t) => t.1.clone_from(v),
                    None => s.tags.push((k.clone(), v.clone())),
                }
            }
            if s.tags.len() > MAX_TAGS {
                return Err(SecretsError::InvalidParameter(format!(
                    "A secret has at most {MAX_TAGS} tags"
                )));
            }
            Ok(())
        })
    }

    /// `UntagResource`.
    pub fn untag(&self, id: &str, keys: &[String]) -> Result<Secret, SecretsError> {
        self.change(id, "untagging a secret", |s, _| {
            s.tags.retain(|(k, _)| !keys.contains(k));
            Ok(())
        })
    }

    /// Turns rotation on (or changes it), the next one due one interval from now.
    pub fn set_rotation(&self, id: &str, mut rotation: Rotation) -> Result<Secret, SecretsError> {
        let Some(interval) = rotation.interval_ms() else {
            return Err(SecretsError::InvalidParameter(
                "RotationRules needs AutomaticallyAfterDays (1-1000) or a ScheduleExpression of the form rate(N days) or rate(N hours)".into(),
            ));
        };
        if rotation
            .after_days
            .is_some_and(|d| !(1..=1000).contains(&d))
        {
            return Err(SecretsError::InvalidParameter(
                "AutomaticallyAfterDays must be from 1 to 1000".into(),
            ));
        }
        self.change(id, "setting rotation", |s, now| {
            rotation.next_ms = Some(now + interval);
            s.rotation = Some(rotation.clone());
            Ok(())
        })
    }

    /// `CancelRotateSecret`: rotation off (a pending version keeps its label).
    pub fn cancel_rotation(&self, id: &str) -> Result<Secret, SecretsError> {
        self.change(id, "cancelling rotation", |s, _| {
            s.rotation = None;
            Ok(())
        })
    }

    /// Refuses to start a rotation while another one's `AWSPENDING` version is not yet
    /// current.
    pub fn check_no_pending(&self, id: &str) -> Result<Secret, SecretsError> {
        let (secret, versions) = self.describe(id)?;
        if secret.deleted_ms.is_some() {
            return Err(deleted(&secret));
        }
        if versions.iter().any(|v| {
            v.stages.iter().any(|s| s == AWSPENDING) && !v.stages.iter().any(|s| s == AWSCURRENT)
        }) {
            return Err(SecretsError::InvalidRequest(
                "A previous rotation isn't complete. That rotation will be reattempted.".into(),
            ));
        }
        Ok(secret)
    }

    /// Records how a rotation with `token` ended: success only if `AWSCURRENT` is now on
    /// that version. A failed rotation leaves `AWSCURRENT` where it was and takes
    /// `AWSPENDING` off the token's version, so the next rotation can start.
    pub fn finish_rotation(&self, id: &str, token: &str) -> Result<bool, SecretsError> {
        let now = self.now();
        self.inner.store.write("finishing a rotation", |tx| {
            let mut secret = lookup(tx, &self.arn_prefix(), id)?;
            let versions = tx.versions(&secret.arn)?;
            let done = versions
                .iter()
                .any(|v| v.id == token && v.stages.iter().any(|s| s == AWSCURRENT));
            for v in &versions {
                if v.stages.iter().any(|s| s == AWSPENDING) {
                    let stages: Vec<String> = v
                        .stages
                        .iter()
                        .filter(|s| *s != AWSPENDING)
                        .cloned()
                        .collect();
                    tx.set_stages(&secret.arn, &v.id, &stages)?;
                }
            }
            if done {
                secret.last_rotated_ms = Some(now);
                secret.last_changed_ms = now;
            }
            if let Some(r) = &mut secret.rotation {
                if let Some(interval) = r.interval_ms() {
                    r.next_ms = Some(now + interval);
                }
            }
            tx.put_secret(&secret)?;
            Ok(done)
        })
    }

    /// Claims the secrets whose scheduled rotation is due and that no rotation is
    /// running for (no `AWSPENDING` version that is not current): each claimed secret's
    /// next rotation moves one interval on in the same transaction, so when several
    /// nodes share the store, one rotation starts however many nodes look. The caller runs
    /// them; [`Secrets::finish_rotation`] then sets the next one from when it ends.
    pub fn claim_due_rotations(&self) -> Result<Vec<Secret>, SecretsError> {
        let now = self.now();
        self.inner.store.write("claiming due rotations", |tx| {
            self.purge(tx)?;
            let mut claimed = Vec::new();
            for mut secret in tx.all()? {
                if secret.deleted_ms.is_some() {
                    continue;
                }
                let Some(rotation) = &mut secret.rotation else {
                    continue;
                };
                if rotation.next_ms.is_none_or(|n| n > now) {
                    continue;
                }
                let Some(interval) = rotation.interval_ms() else {
                    continue;
                };
                let running = tx.versions(&secret.arn)?.iter().any(|v| {
                    v.stages.iter().any(|s| s == AWSPENDING)
                        && !v.stages.iter().any(|s| s == AWSCURRENT)
                });
                if running {
                    // Its end sets the next one.
                    continue;
                }
                rotation.next_ms = Some(now + interval);
                tx.put_secret(&secret)?;
                claimed.push(secret);
            }
            Ok(claimed)
        })
    }

    /// The KMS key ARN a secret's new values are sealed under.
    pub fn key_arn(&self, secret: &Secret) -> Result<String, SecretsError> {
        self.inner
            .kms
            .resolve(secret.key_ref())
            .map(|k| k.arn.clone())
            .map_err(|e| SecretsError::kms("EncryptionFailure", e))
    }
}

/// The encryption context of one version's value.
fn value_context(arn: &str, version: &str) -> EncryptionContext {
    [
        ("SecretARN".to_owned(), arn.to_owned()),
        ("SecretVersionId".to_owned(), version.to_owned()),
    ]
    .into()
}

fn lookup(tx: &mut dyn Tx, prefix: &str, id: &str) -> Result<Secret, SecretsError> {
    if let Some(s) = tx.find(id)? {
        return Ok(s);
    }
    // A partial ARN: the ARN without its random suffix names the secret by name.
    if let Some(name) = id.strip_prefix(prefix) {
        if let Some(s) = tx.find(name)? {
            return Ok(s);
        }
    }
    Err(not_found())
}

/// Moves `stage` to version `to` from whichever version had it; `AWSCURRENT` leaving a
/// version makes that version `AWSPREVIOUS`.
fn move_stage(tx: &mut dyn Tx, arn: &str, stage: &str, to: &str) -> Result<(), SecretsError> {
    let versions = tx.versions(arn)?;
    let from = versions
        .iter()
        .find(|v| v.id != to && v.stages.iter().any(|s| s == stage))
        .map(|v| v.id.clone());
    if let Some(from) = &from {
        if stage == AWSCURRENT {
            for v in &versions {
                if v.stages.iter().any(|s| s == AWSPREVIOUS) && v.id != *from {
                    let stages: Vec<String> = v
                        .stages
                        .iter()
                        .filter(|s| *s != AWSPREVIOUS)
                        .cloned()
                        .collect();
                    tx.set_stages(arn, &v.id, &stages)?;
                }
            }
        }
        let v = tx
            .versions(arn)?
            .into_iter()
            .find(|v| v.id == *from)
            .ok_or_else(not_found)?;
        let mut stages: Vec<String> = v.stages.into_iter().filter(|s| s != stage).collect();
        if stage == AWSCURRENT && !stages.iter().any(|s| s == AWSPREVIOUS) {
            stages.push(AWSPREVIOUS.to_owned());
        }
        tx.set_stages(arn, from, &stages)?;
    }
    let v = tx
        .versions(arn)?
        .into_iter()
        .find(|v| v.id == to)
        .ok_or_else(not_found)?;
    let mut stages: Vec<String> = v.stages.into_iter().filter(|s| s != stage).collect();
    if stage == AWSCURRENT {
        stages.retain(|s| s != AWSPREVIOUS);
    }
    stages.push(stage.to_owned());
    if stages.len() > MAX_STAGES {
        return Err(SecretsError::LimitExceeded(format!(
            "A version has at most {MAX_STAGES} staging labels"
        )));
    }
    tx.set_stages(arn, to, &stages)
}

/// Keeps at most [`MAX_VERSIONS`]: the oldest versions without a stage go first.
fn prune(tx: &mut dyn Tx, arn: &str) -> Result<(), SecretsError> {
    let versions = tx.versions(arn)?;
    let excess = versions.len().saturating_sub(MAX_VERSIONS);
    for v in versions
        .iter()
        .rev()
        .filter(|v| v.stages.is_empty())
        .take(excess)
    {
        tx.delete_version(arn, &v.id)?;
    }
    Ok(())
}

//! The key service: keys, their materials, aliases and policies, held in memory (loaded
//! once at start; every change is written to the store first, then published), and the
//! cryptographic operations over them.
//!
//! Reads and cryptographic operations take a read lock on the key table and touch the
//! store only to reload it (below); changes are serialized by one write lock. Time-driven transitions (a key
//! whose deletion date passed is deleted, a key whose rotation is due gets new material)
//! happen when the service is next used after they fall due.
//!
//! # Several nodes on one PostgreSQL store
//!
//! Opened with [`Kms::open_postgres`], several nodes share one key store (and must be
//! given the same master key: the store records its fingerprint and refuses another).
//! Each node still holds its own copy of the table. Every change is written with the
//! store's generation the node's copy was loaded at, and only if no other node wrote
//! since; otherwise the node reloads and decides again (so two nodes creating the AWS
//! managed keys at once make one of each, and no change is decided on stale data).
//! Reads and cryptographic operations use the local copy:
//!
//! - A key id, alias or ARN the copy does not know, a ciphertext naming a key or a
//!   material version it does not know, and a key the copy holds as disabled or pending
//!   deletion make the node reload once (if the store moved) before answering: a key
//!   created, rotated or enabled on another node works here at once.
//! - Other changes made on another node (a key disabled, scheduled for deletion, its
//!   policy replaced, an alias repointed) take effect here at the next [`Kms::refresh`],
//!   which the server calls on change notices and periodically: until then this node may
//!   go on using a key another node disabled, so the refresh period bounds that window.
//! - Writes are never decided on a stale copy: a write made from one is refused by the
//!   store, and a write the copy refuses is checked against the store's generation; in
//!   both cases the node reloads and decides again.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use uuid::Uuid;
use warden_iam::{Policy, PolicyKind};
use zeroize::Zeroizing;

use crate::ciphertext::{associated_data, EncryptionContext, Header, HEADER_LEN, NONCE_LEN};
use crate::error::KmsError;
use crate::master::MasterKey;
use crate::random::fill_random;
use crate::store::{
    self, Backend, Dump, KeyManager, KeyRecord, KeyState, KmsStore, Op, Rotation, SealedMaterial,
};

/// Largest plaintext `Encrypt` takes.
pub const MAX_PLAINTEXT: usize = 4096;
/// Largest ciphertext blob `Decrypt` takes.
pub const MAX_CIPHERTEXT: usize = 6144;
/// Largest key policy, in bytes.
pub const MAX_POLICY: usize = 32_768;
/// Largest description.
pub const MAX_DESCRIPTION: usize = 8192;
/// Most keys one server holds (AWS's default quota is 100,000 per region; Warden holds
/// every key in memory, so it keeps a lower bound).
pub const MAX_KEYS: usize = 10_000;
/// Most aliases.
pub const MAX_ALIASES: usize = 10_000;
/// Most on-demand rotations of one key, as AWS allows.
pub const MAX_ON_DEMAND_ROTATIONS: usize = 10;
/// Most tags on one key.
pub const MAX_TAGS: usize = 50;
/// Largest encoded encryption context, in bytes.
pub const MAX_CONTEXT: usize = 8192;
/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// A clock in epoch milliseconds (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// One material of a key, opened.
#[derive(Clone)]
struct Material {
    version: u32,
    cipher: Arc<LessSafeKey>,
    created_ms: i64,
    rotation: &'static str,
}

/// A key as the service holds it. Its `Debug` shows the record, never material.
#[derive(Clone)]
pub struct Key {
    /// Its record.
    pub record: KeyRecord,
    /// Its ARN.
    pub arn: String,
    /// Its policy, parsed.
    pub policy: Arc<Policy>,
    materials: Vec<Material>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("arn", &self.arn)
            .field("state", &self.record.state)
            .field("materials", &self.materials.len())
            .finish()
    }
}

impl Key {
    /// The key id.
    pub fn id(&self) -> Uuid {
        self.record.id
    }

    /// Whether an AWS service manages it.
    pub fn is_aws_managed(&self) -> bool {
        self.record.manager == KeyManager::Aws
    }

    fn current(&self) -> Result<&Material, KmsError> {
        self.materials
            .last()
            .ok_or_else(|| KmsError::Sealed(self.record.id.to_string()))
    }

    /// Refuses cryptographic use unless enabled.
    fn usable(&self) -> Result<(), KmsError> {
        match self.record.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KmsError::Disabled(self.arn.clone())),
            KeyState::PendingDeletion => Err(KmsError::InvalidState(format!(
                "{} is pending deletion.",
                self.arn
            ))),
        }
    }

    /// Refuses changes to a key pending deletion.
    fn changeable(&self) -> Result<(), KmsError> {
        if self.record.state == KeyState::PendingDeletion {
            return Err(KmsError::InvalidState(format!(
                "{} is pending deletion.",
                self.arn
            )));
        }
        Ok(())
    }

    /// Refuses changes no caller may make to a key an AWS service manages.
    fn customer_managed(&self, what: &str) -> Result<(), KmsError> {
        if self.is_aws_managed() {
            return Err(KmsError::Unsupported(format!(
                "{what} is not supported on an AWS managed key ({})",
                self.arn
            )));
        }
        Ok(())
    }

    /// The materials' versions, dates and how each came to be, oldest first.
    pub fn rotations(&self) -> impl Iterator<Item = (u32, i64, &'static str)> + '_ {
        self.materials
            .iter()
            .map(|m| (m.version, m.created_ms, m.rotation))
    }

    /// How many on-demand rotations the key had.
    pub fn on_demand_rotations(&self) -> usize {
        self.materials
            .iter()
            .filter(|m| m.rotation == "ON_DEMAND")
            .count()
    }
}

/// An alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// `alias/NAME`.
    pub name: String,
    /// The key it names.
    pub key: Uuid,
    /// When it was made.
    pub created_ms: i64,
    /// When it was last repointed.
    pub updated_ms: i64,
}

#[derive(Default)]
struct Table {
    keys: HashMap<Uuid, Arc<Key>>,
    aliases: BTreeMap<String, Alias>,
    /// The earliest time a deletion or rotation falls due.
    next_due_ms: i64,
    /// The store's write generation this table is the state of.
    generation: i64,
}

impl Table {
    fn recompute_due(&mut self) {
        self.next_due_ms = self
            .keys
            .values()
            .flat_map(|k| {
                [
                    k.record.deletion_ms,
                    k.record
                        .rotation
                        .filter(|_| k.record.state == KeyState::Enabled)
                        .map(|r| r.next_ms),
                ]
            })
            .flatten()
            .min()
            .unwrap_or(i64::MAX);
    }
}

/// What a new key is made with.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    /// Its description.
    pub description: String,
    /// Its policy; the default (delegating to IAM) when absent.
    pub policy: Option<String>,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

/// A data key: its plaintext (to use and forget) and its ciphertext (to store).
pub struct DataKey {
    /// The key's bytes.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key's bytes encrypted under the KMS key.
    pub ciphertext: Vec<u8>,
    /// The KMS key.
    pub key: Arc<Key>,
}

struct Inner {
    store: Backend,
    master: RwLock<MasterKey>,
    account: String,
    region: String,
    table: RwLock<Arc<Table>>,
    write: Mutex<()>,
    clock: Clock,
}

/// Warden's key management service.
#[derive(Clone)]
pub struct Kms {
    inner: Arc<Inner>,
}

/// How many times a write decided on a copy another node changed meanwhile is decided
/// again on a fresh copy before giving up.
const WRITE_ATTEMPTS: usize = 16;

/// What a write decided: the operations to store, the table they lead to (when there are
/// any), and the answer.
struct Plan<T> {
    ops: Vec<Op>,
    next: Option<Table>,
    out: T,
}

impl<T> Plan<T> {
    /// Nothing to write.
    fn nothing(out: T) -> Plan<T> {
        Plan {
            ops: Vec::new(),
            next: None,
            out,
        }
    }

    fn write(ops: Vec<Op>, next: Table, out: T) -> Plan<T> {
        Plan {
            ops,
            next: Some(next),
            out,
        }
    }
}

/// The services whose AWS managed keys exist (`alias/aws/NAME`).
pub const AWS_MANAGED: &[&str] = &["lambda", "secretsmanager"];

fn now_ms() -> i64 {
    warden_types::now_millis()
}

fn open_material(master: &MasterKey, key: &Uuid, m: &SealedMaterial) -> Result<Material, KmsError> {
    let bytes = master
        .open(&store::material_aad(key, m.version), &m.sealed)
        .ok_or_else(|| KmsError::Sealed(key.to_string()))?;
    Ok(Material {
        version: m.version,
        cipher: Arc::new(cipher(&bytes)?),
        created_ms: m.created_ms,
        rotation: m.rotation,
    })
}

fn cipher(bytes: &[u8]) -> Result<LessSafeKey, KmsError> {
    let unbound =
        UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KmsError::Crypto("building a key"))?;
    Ok(LessSafeKey::new(unbound))
}

fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let mut out = Zeroizing::new(vec![0u8; n]);
    fill_random(&mut out).map_err(|_| KmsError::Crypto("generating random bytes"))?;
    Ok(out)
}

/// A new material, sealed for the store and opened for use.
fn new_material(
    master: &MasterKey,
    key: &Uuid,
    version: u32,
    now: i64,
    rotation: &'static str,
) -> Result<(SealedMaterial, Material), KmsError> {
    let bytes = random_bytes(32)?;
    let sealed = SealedMaterial {
        version,
        sealed: master.seal(&store::material_aad(key, version), &bytes)?,
        created_ms: now,
        rotation,
    };
    let material = Material {
        version,
        cipher: Arc::new(cipher(&bytes)?),
        created_ms: now,
        rotation,
    };
    Ok((sealed, material))
}

fn parse_policy(text: &str) -> Result<Policy, KmsError> {
    if text.len() > MAX_POLICY {
        return Err(KmsError::LimitExceeded(format!(
            "The key policy is {} bytes; at most {MAX_POLICY} are allowed.",
            text.len()
        )));
    }
    Policy::parse_as(text, PolicyKind::Resource)
        .map_err(|e| KmsError::MalformedPolicy(format!("The key policy is malformed: {e}")))
}

/// Checks an alias name as KMS does.
pub fn check_alias_name(name: &str) -> Result<(), KmsError> {
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(KmsError::Validation(format!(
            "Alias must start with the prefix \"alias/\": {name}"
        )));
    };
    if rest.is_empty()
        || name.len() > 256
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    {
        return Err(KmsError::Validation(format!(
            "Alias name {name} must be 1 to 256 characters of letters, digits, /, _ and -"
        )));
    }
    Ok(())
}

fn check_context(context: &EncryptionContext) -> Result<(), KmsError> {
    let size: usize = context.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_CONTEXT {
        return Err(KmsError::Validation(format!(
            "The encryption context is {size} bytes; at most {MAX_CONTEXT} are allowed."
        )));
    }
    Ok(())
}

/// Checks tags as KMS does.
pub fn check_tags(tags: &[(String, String)]) -> Result<(), KmsError> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(KmsError::Tag(format!(
                "Tag key {k:?} must be 1 to 128 characters and its value at most 256"
            )));
        }
        if k.starts_with("aws:") {
            return Err(KmsError::Tag(format!(
                "Tag key {k:?} uses the reserved prefix aws:"
            )));
        }
    }
    Ok(())
}

impl Kms {
    /// Opens the service on `DATA_DIR/kms.db`, sealed under `master`. Refuses a master key
    /// other than the one that sealed the directory before reading any material.
    pub fn open(
        data_dir: &Path,
        master: MasterKey,
        account: &str,
        region: &str,
    ) -> Result<Kms, KmsError> {
        Self::open_with_clock(data_dir, master, account, region, Arc::new(now_ms))
    }

    /// [`Kms::open`] with a clock of the caller's.
    pub fn open_with_clock(
        data_dir: &Path,
        master: MasterKey,
        account: &str,
        region: &str,
        clock: Clock,
    ) -> Result<Kms, KmsError> {
        let store = KmsStore::open(&data_dir.join("kms.db"))?;
        Self::open_backend(Backend::Sqlite(store), master, account, region, clock)
    }

    /// Opens the service on a PostgreSQL database shared by several nodes (`connections`
    /// pooled connections), sealed under `master`, which every node must be given. The
    /// first node records the master key's fingerprint; a node given another key is
    /// refused before any material is read. See the module documentation for how fresh
    /// each node's keys are.
    pub fn open_postgres(
        url: &str,
        connections: usize,
        master: MasterKey,
        account: &str,
        region: &str,
    ) -> Result<Kms, KmsError> {
        Self::open_postgres_with_clock(url, connections, master, account, region, Arc::new(now_ms))
    }

    /// [`Kms::open_postgres`] with a clock of the caller's.
    pub fn open_postgres_with_clock(
        url: &str,
        connections: usize,
        master: MasterKey,
        account: &str,
        region: &str,
        clock: Clock,
    ) -> Result<Kms, KmsError> {
        let store = crate::postgres::PgKmsStore::open(url, connections)?;
        Self::open_backend(Backend::Postgres(store), master, account, region, clock)
    }

    /// Opens the service on `store`, sealed under `master`: refuses a master key other
    /// than the one the store records (recording it if none is) before reading any
    /// material.
    pub fn open_backend(
        store: Backend,
        master: MasterKey,
        account: &str,
        region: &str,
        clock: Clock,
    ) -> Result<Kms, KmsError> {
        let expected = store.claim_meta("master_fingerprint", master.fingerprint())?;
        if expected != master.fingerprint() {
            return Err(KmsError::WrongMasterKey {
                given: master.fingerprint().to_owned(),
                expected,
            });
        }
        let dump = store.load()?;
        let table = build_table(&master, account, region, dump)?;
        let kms = Kms {
            inner: Arc::new(Inner {
                store,
                master: RwLock::new(master),
                account: account.to_owned(),
                region: region.to_owned(),
                table: RwLock::new(Arc::new(table)),
                write: Mutex::new(()),
                clock,
            }),
        };
        Ok(kms)
    }

    /// Reloads the key table if the store's generation moved since this node's copy (other
    /// nodes wrote); returns whether it did. Never installs an older table than the one it
    /// has. A node sharing a PostgreSQL store calls this periodically: the period bounds
    /// how long a change made on another node (a key disabled) takes to apply here.
    pub fn refresh(&self) -> Result<bool, KmsError> {
        let stored = self.inner.store.generation()?;
        if stored <= self.snapshot().generation {
            return Ok(false);
        }
        let _w = warden_sqlite::lock(&self.inner.write);
        self.reload_locked()
    }

    /// [`Kms::refresh`] when another node may have written; used once when a reference is
    /// not found, before answering that it is not.
    fn refresh_on_miss(&self) -> Result<bool, KmsError> {
        if !self.inner.store.is_shared() {
            return Ok(false);
        }
        self.refresh()
    }

    /// The store's write generation this node's key table is the state of (it moves with
    /// every write of this node, and with each [`Kms::refresh`] that found another node's).
    pub fn generation(&self) -> i64 {
        self.snapshot().generation
    }

    /// The key `key_ref` names, if it is usable for cryptography. On a shared store, a key
    /// this node's copy shows disabled or pending deletion makes it reload once before
    /// refusing: another node may have enabled it.
    fn usable_key(&self, key_ref: &str) -> Result<Arc<Key>, KmsError> {
        let key = self.resolve(key_ref)?;
        match key.usable() {
            Ok(()) => Ok(key),
            Err(refused) => {
                if !self.refresh_on_miss()? {
                    return Err(refused);
                }
                let key = self.resolve(key_ref)?;
                key.usable()?;
                Ok(key)
            }
        }
    }

    /// Loads the store and installs it if it is newer than the table; the caller holds the
    /// write lock.
    fn reload_locked(&self) -> Result<bool, KmsError> {
        let dump = self.inner.store.load()?;
        if dump.generation <= self.snapshot().generation {
            return Ok(false);
        }
        let table = build_table(
            &self.master(),
            &self.inner.account,
            &self.inner.region,
            dump,
        )?;
        self.publish(table);
        Ok(true)
    }

    /// Decides a write on the current table with `plan` and stores it, only if the store
    /// is still at the table's generation; if another node wrote meanwhile, reloads and
    /// decides again. Publishes the table the plan leads to.
    fn commit<T>(
        &self,
        context: &'static str,
        mut plan: impl FnMut(&Table) -> Result<Plan<T>, KmsError>,
    ) -> Result<T, KmsError> {
        let _w = warden_sqlite::lock(&self.inner.write);
        for _ in 0..WRITE_ATTEMPTS {
            let table = self.snapshot();
            let Plan { ops, next, out } = match plan(&table) {
                Ok(p) => p,
                // A refusal decided on a copy another node has since changed (a key it
                // enabled, an alias it deleted) is decided again on a fresh copy.
                Err(refused) => {
                    if self.inner.store.is_shared()
                        && self.inner.store.generation()? > table.generation
                        && self.reload_locked()?
                    {
                        continue;
                    }
                    return Err(refused);
                }
            };
            let Some(mut next) = next else {
                return Ok(out);
            };
            if ops.is_empty() {
                self.publish(next);
                return Ok(out);
            }
            match self
                .inner
                .store
                .apply(context, &ops, Some(table.generation))?
            {
                Some(generation) => {
                    next.generation = generation;
                    self.publish(next);
                    return Ok(out);
                }
                None => {
                    self.reload_locked()?;
                }
            }
        }
        Err(KmsError::Contended(context))
    }

    /// Makes the AWS managed keys (`alias/aws/lambda`, ...) that do not exist yet.
    pub fn ensure_aws_managed_keys(&self) -> Result<(), KmsError> {
        for service in AWS_MANAGED {
            self.aws_managed_key(service)?;
        }
        Ok(())
    }

    /// The account keys belong to.
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// The region in key ARNs.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    fn key_arn(&self, id: &Uuid) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{id}",
            self.inner.region, self.inner.account
        )
    }

    /// An alias's ARN.
    pub fn alias_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kms:{}:{}:{name}",
            self.inner.region, self.inner.account
        )
    }

    /// The key table, after applying whatever fell due.
    fn table(&self) -> Result<Arc<Table>, KmsError> {
        let now = self.now();
        let table = self
            .inner
            .table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if now < table.next_due_ms {
            return Ok(table);
        }
        self.maintain(now)?;
        Ok(self
            .inner
            .table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    /// Applies every deletion and rotation due at `now`.
    fn maintain(&self, now: i64) -> Result<(), KmsError> {
        let master = self.master();
        self.commit("applying due deletions and rotations", |table| {
            if now < table.next_due_ms {
                return Ok(Plan::nothing(()));
            }
            let mut next = table.clone_shallow();
            let mut ops = Vec::new();
            let mut deleted = Vec::new();
            for key in table.keys.values() {
                if key.record.deletion_ms.is_some_and(|d| d <= now) {
                    deleted.push(key.id());
                    ops.push(Op::DeleteKey(key.id()));
                    continue;
                }
                if let Some(rotation) = key.record.rotation {
                    if key.record.state == KeyState::Enabled && rotation.next_ms <= now {
                        let version = key.current()?.version + 1;
                        let (s, m) = new_material(&master, &key.id(), version, now, "AUTOMATIC")?;
                        let mut k = (**key).clone();
                        k.materials.push(m);
                        k.record.rotation = Some(Rotation {
                            period_days: rotation.period_days,
                            next_ms: now + i64::from(rotation.period_days) * DAY_MS,
                        });
                        ops.push(Op::AddMaterial {
                            key: k.id(),
                            material: s,
                        });
                        ops.push(Op::PutKey(k.record.clone()));
                        next.keys.insert(k.id(), Arc::new(k));
                    }
                }
            }
            for id in &deleted {
                tracing::info!(key = %id, "deleted a key whose waiting period ended");
                next.keys.remove(id);
                next.aliases.retain(|_, a| a.key != *id);
            }
            // With nothing to write (due times that named nothing), publishing the copy
            // recomputes them.
            Ok(Plan::write(ops, next, ()))
        })
    }

    fn snapshot(&self) -> Arc<Table> {
        self.inner
            .table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn publish(&self, mut table: Table) {
        table.recompute_due();
        *self
            .inner
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
    }

    fn master(&self) -> MasterKey {
        self.inner
            .master
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Finds a key by id, key ARN, alias name or alias ARN, whatever its state. A
    /// reference this node does not know makes it reload once (if another node wrote)
    /// before answering that it is not found.
    pub fn resolve(&self, key_ref: &str) -> Result<Arc<Key>, KmsError> {
        let table = self.table()?;
        match self.resolve_in(&table, key_ref) {
            Err(KmsError::NotFound(_)) if self.refresh_on_miss()? => {
                let table = self.table()?;
                self.resolve_in(&table, key_ref)
            }
            other => other,
        }
    }

    fn resolve_in(&self, table: &Table, key_ref: &str) -> Result<Arc<Key>, KmsError> {
        let invalid = || KmsError::NotFound(format!("Invalid keyId '{key_ref}'"));
        let local = if let Some(rest) = key_ref.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            match parts.as_slice() {
                ["aws", "kms", region, account, resource] => {
                    if *region != self.inner.region || *account != self.inner.account {
                        return Err(KmsError::NotFound(format!(
                            "Key '{key_ref}' does not exist"
                        )));
                    }
                    *resource
                }
                _ => return Err(invalid()),
            }
        } else {
            key_ref
        };
        if local.starts_with("alias/") {
            let alias = table.aliases.get(local).ok_or_else(|| {
                KmsError::NotFound(format!("Alias {} is not found.", self.alias_arn(local)))
            })?;
            return table
                .keys
                .get(&alias.key)
                .cloned()
                .ok_or_else(|| KmsError::NotFound(format!("Alias {} is not found.", local)));
        }
        let id = local.strip_prefix("key/").unwrap_or(local);
        if key_ref.starts_with("arn:") && !local.starts_with("key/") {
            return Err(invalid());
        }
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        if id.hyphenated().to_string() != id_text(local) {
            return Err(invalid());
        }
        table.keys.get(&id).cloned().ok_or_else(|| {
            KmsError::NotFound(format!("Key '{}' does not exist", self.key_arn(&id)))
        })
    }

    /// The key a ciphertext names, if it is in Warden's format.
    pub fn key_of_ciphertext(&self, blob: &[u8]) -> Option<Uuid> {
        Header::parse(blob).map(|(h, _)| h.key_id)
    }

    /// The ARN of the key a ciphertext names (whether or not it exists).
    pub fn arn_of_ciphertext(&self, blob: &[u8]) -> Option<String> {
        self.key_of_ciphertext(blob).map(|id| self.key_arn(&id))
    }

    /// The key `alias/aws/SERVICE`, made on first use.
    pub fn aws_managed_key(&self, service: &str) -> Result<Arc<Key>, KmsError> {
        let alias = format!("alias/aws/{service}");
        if let Ok(k) = self.resolve(&alias) {
            return Ok(k);
        }
        let policy = aws_managed_policy(service, &self.inner.account, &self.inner.region);
        let key = self.insert_key(
            NewKey {
                description: format!(
                    "Default key that protects my {service} data when no other key is defined"
                ),
                policy: Some(policy),
                tags: Vec::new(),
            },
            KeyManager::Aws,
            Some(alias),
        )?;
        Ok(key)
    }

    /// Creates a customer managed key.
    pub fn create_key(&self, new: NewKey) -> Result<Arc<Key>, KmsError> {
        self.insert_key(new, KeyManager::Customer, None)
    }

    fn insert_key(
        &self,
        new: NewKey,
        manager: KeyManager,
        alias: Option<String>,
    ) -> Result<Arc<Key>, KmsError> {
        if new.description.len() > MAX_DESCRIPTION {
            return Err(KmsError::Validation(format!(
                "Description must be at most {MAX_DESCRIPTION} characters"
            )));
        }
        check_tags(&new.tags)?;
        if new.tags.len() > MAX_TAGS {
            return Err(KmsError::Tag(format!("A key has at most {MAX_TAGS} tags")));
        }
        let policy_text = new
            .policy
            .unwrap_or_else(|| default_policy(&self.inner.account));
        let policy = Arc::new(parse_policy(&policy_text)?);
        let now = self.now();
        let master = self.master();
        self.commit("creating a key", |table| {
            if let Some(existing) = alias
                .as_ref()
                .and_then(|a| table.aliases.get(a))
                .and_then(|a| table.keys.get(&a.key))
            {
                // Made meanwhile (by another node): that is the key.
                return Ok(Plan::nothing(existing.clone()));
            }
            if table.keys.len() >= MAX_KEYS {
                return Err(KmsError::LimitExceeded(format!(
                    "This server holds at most {MAX_KEYS} keys"
                )));
            }
            let id = Uuid::new_v4();
            let (sealed, material) = new_material(&master, &id, 1, now, "ORIGINAL")?;
            let record = KeyRecord {
                id,
                description: new.description.clone(),
                created_ms: now,
                state: KeyState::Enabled,
                deletion_ms: None,
                pending_window_days: None,
                manager,
                rotation: (manager == KeyManager::Aws).then_some(Rotation {
                    period_days: 365,
                    next_ms: now + 365 * DAY_MS,
                }),
                policy: policy_text.clone(),
                tags: new.tags.clone(),
            };
            let mut ops = vec![
                Op::PutKey(record.clone()),
                Op::AddMaterial {
                    key: id,
                    material: sealed,
                },
            ];
            let key = Arc::new(Key {
                arn: self.key_arn(&id),
                record,
                policy: policy.clone(),
                materials: vec![material],
            });
            let mut next = table.clone_shallow();
            next.keys.insert(id, key.clone());
            if let Some(a) = &alias {
                ops.push(Op::PutAlias {
                    name: a.clone(),
                    key: id,
                    created_ms: now,
                    updated_ms: now,
                });
                next.aliases.insert(
                    a.clone(),
                    Alias {
                        name: a.clone(),
                        key: id,
                        created_ms: now,
                        updated_ms: now,
                    },
                );
            }
            Ok(Plan::write(ops, next, key))
        })
    }

    /// Changes one key under the write lock: `f` edits a copy, which is stored, then
    /// published.
    fn update(
        &self,
        key_ref: &str,
        context: &'static str,
        mut f: impl FnMut(&mut Key, i64) -> Result<Option<SealedMaterial>, KmsError>,
    ) -> Result<Arc<Key>, KmsError> {
        let now = self.now();
        self.resolve(key_ref)?;
        self.commit(context, |table| {
            let current = self.resolve_in(table, key_ref)?;
            let mut key = (*current).clone();
            let material = f(&mut key, now)?;
            let mut ops = vec![Op::PutKey(key.record.clone())];
            if let Some(m) = material {
                ops.push(Op::AddMaterial {
                    key: key.record.id,
                    material: m,
                });
            }
            let key = Arc::new(key);
            let mut next = table.clone_shallow();
            next.keys.insert(key.id(), key.clone());
            Ok(Plan::write(ops, next, key))
        })
    }

    /// Every key id and ARN, ordered by id, a page at a time (`marker`: the last id of the
    /// previous page).
    pub fn list_keys(
        &self,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<(Vec<Arc<Key>>, Option<String>), KmsError> {
        let table = self.table()?;
        let mut keys: Vec<&Arc<Key>> = table.keys.values().collect();
        keys.sort_by_key(|k| k.id());
        let start = match marker {
            None => 0,
            Some(m) => {
                let after = Uuid::parse_str(m).map_err(|_| KmsError::InvalidMarker)?;
                keys.partition_point(|k| k.id() <= after)
            }
        };
        let page: Vec<Arc<Key>> = keys
            .iter()
            .skip(start)
            .take(limit)
            .map(|k| (*k).clone())
            .collect();
        let next = (start + page.len() < keys.len())
            .then(|| page.last().map(|k| k.id().to_string()))
            .flatten();
        Ok((page, next))
    }

    /// Enables or disables a key.
    pub fn set_enabled(&self, key_ref: &str, enabled: bool) -> Result<Arc<Key>, KmsError> {
        self.update(key_ref, "changing a key's state", |k, _| {
            k.customer_managed(if enabled { "EnableKey" } else { "DisableKey" })?;
            k.changeable()?;
            k.record.state = if enabled {
                KeyState::Enabled
            } else {
                KeyState::Disabled
            };
            Ok(None)
        })
    }

    /// Schedules a key's deletion after `days` (7-30) days.
    pub fn schedule_deletion(&self, key_ref: &str, days: u32) -> Result<Arc<Key>, KmsError> {
        if !(7..=30).contains(&days) {
            return Err(KmsError::Validation(format!(
                "PendingWindowInDays {days} must be from 7 to 30"
            )));
        }
        self.update(key_ref, "scheduling a key's deletion", |k, now| {
            k.customer_managed("ScheduleKeyDeletion")?;
            k.changeable()?;
            k.record.state = KeyState::PendingDeletion;
            k.record.deletion_ms = Some(now + i64::from(days) * DAY_MS);
            k.record.pending_window_days = Some(days);
            Ok(None)
        })
    }

    /// Cancels a pending deletion; the key comes back disabled, as in KMS.
    pub fn cancel_deletion(&self, key_ref: &str) -> Result<Arc<Key>, KmsError> {
        self.update(key_ref, "cancelling a key's deletion", |k, _| {
            if k.record.state != KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{} is not pending deletion.",
                    k.arn
                )));
            }
            k.record.state = KeyState::Disabled;
            k.record.deletion_ms = None;
            k.record.pending_window_days = None;
            Ok(None)
        })
    }

    /// Replaces a key's policy.
    pub fn put_policy(&self, key_ref: &str, text: &str) -> Result<Arc<Key>, KmsError> {
        let policy = Arc::new(parse_policy(text)?);
        self.update(key_ref, "replacing a key policy", |k, _| {
            k.customer_managed("PutKeyPolicy")?;
            k.changeable()?;
            k.record.policy = text.to_owned();
            k.policy = policy.clone();
            Ok(None)
        })
    }

    /// Adds or replaces tags.
    pub fn tag(&self, key_ref: &str, tags: Vec<(String, String)>) -> Result<Arc<Key>, KmsError> {
        check_tags(&tags)?;
        self.update(key_ref, "tagging a key", |k, _| {
            k.customer_managed("TagResource")?;
            k.changeable()?;
            for (name, value) in &tags {
                match k.record.tags.iter_mut().find(|(n, _)| n == name) {
                    Some(t) => t.1.clone_from(value),
                    None => k.record.tags.push((name.clone(), value.clone())),
                }
            }
            if k.record.tags.len() > MAX_TAGS {
                return Err(KmsError::Tag(format!("A key has at most {MAX_TAGS} tags")));
            }
            Ok(None)
        })
    }

    /// Removes tags by key.
    pub fn untag(&self, key_ref: &str, names: &[String]) -> Result<Arc<Key>, KmsError> {
        self.update(key_ref, "untagging a key", |k, _| {
            k.customer_managed("UntagResource")?;
            k.changeable()?;
            k.record.tags.retain(|(n, _)| !names.contains(n));
            Ok(None)
        })
    }

    /// Turns automatic rotation on (every `period_days`, 90-2560, default 365).
    pub fn enable_rotation(
        &self,
        key_ref: &str,
        period_days: Option<u32>,
    ) -> Result<Arc<Key>, KmsError> {
        let period_days = period_days.unwrap_or(365);
        if !(90..=2560).contains(&period_days) {
            return Err(KmsError::Validation(format!(
                "RotationPeriodInDays {period_days} must be from 90 to 2560"
            )));
        }
        self.update(key_ref, "enabling key rotation", |k, now| {
            k.customer_managed("EnableKeyRotation")?;
            k.usable()?;
            k.record.rotation = Some(Rotation {
                period_days,
                next_ms: now + i64::from(period_days) * DAY_MS,
            });
            Ok(None)
        })
    }

    /// Turns automatic rotation off.
    pub fn disable_rotation(&self, key_ref: &str) -> Result<Arc<Key>, KmsError> {
        self.update(key_ref, "disabling key rotation", |k, _| {
            k.customer_managed("DisableKeyRotation")?;
            k.usable()?;
            k.record.rotation = None;
            Ok(None)
        })
    }

    /// Gives a key new material now; the old materials stay, so old ciphertexts still
    /// decrypt.
    pub fn rotate_on_demand(&self, key_ref: &str) -> Result<Arc<Key>, KmsError> {
        let master = self.master();
        self.update(key_ref, "rotating a key", |k, now| {
            k.customer_managed("RotateKeyOnDemand")?;
            k.usable()?;
            if k.on_demand_rotations() >= MAX_ON_DEMAND_ROTATIONS {
                return Err(KmsError::LimitExceeded(format!(
                    "{} has had the most on-demand rotations allowed ({MAX_ON_DEMAND_ROTATIONS})",
                    k.arn
                )));
            }
            let version = k.current()?.version + 1;
            let (sealed, material) = new_material(&master, &k.id(), version, now, "ON_DEMAND")?;
            k.materials.push(material);
            Ok(Some(sealed))
        })
    }

    /// Every alias (of one key, when given), ordered by name, a page at a time.
    pub fn list_aliases(
        &self,
        key: Option<&str>,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<(Vec<Alias>, Option<String>), KmsError> {
        let table = self.table()?;
        let key = match key {
            Some(r) => Some(self.resolve(r)?.id()),
            None => None,
        };
        let matching: Vec<&Alias> = table
            .aliases
            .values()
            .filter(|a| key.is_none_or(|k| a.key == k))
            .collect();
        let start = match marker {
            None => 0,
            Some(m) => {
                if check_alias_name(m).is_err() {
                    return Err(KmsError::InvalidMarker);
                }
                matching.partition_point(|a| a.name.as_str() <= m)
            }
        };
        let page: Vec<Alias> = matching
            .iter()
            .skip(start)
            .take(limit)
            .map(|a| (*a).clone())
            .collect();
        let next = (start + page.len() < matching.len())
            .then(|| page.last().map(|a| a.name.clone()))
            .flatten();
        Ok((page, next))
    }

    /// The alias named `name`.
    pub fn alias(&self, name: &str) -> Result<Alias, KmsError> {
        check_alias_name(name)?;
        if let Some(a) = self.table()?.aliases.get(name) {
            return Ok(a.clone());
        }
        if self.refresh_on_miss()? {
            if let Some(a) = self.table()?.aliases.get(name) {
                return Ok(a.clone());
            }
        }
        Err(KmsError::NotFound(format!(
            "Alias {} is not found.",
            self.alias_arn(name)
        )))
    }

    /// Creates `name` for `target`.
    pub fn create_alias(&self, name: &str, target: &str) -> Result<(), KmsError> {
        self.set_alias(name, target, true)
    }

    /// Repoints `name` at `target`.
    pub fn update_alias(&self, name: &str, target: &str) -> Result<(), KmsError> {
        self.set_alias(name, target, false)
    }

    fn set_alias(&self, name: &str, target: &str, create: bool) -> Result<(), KmsError> {
        check_alias_name(name)?;
        if name.starts_with("alias/aws/") {
            return Err(KmsError::InvalidAliasName(format!(
                "{name} uses the reserved prefix alias/aws/"
            )));
        }
        if target.starts_with("alias/") || target.contains(":alias/") {
            return Err(KmsError::Validation(
                "TargetKeyId must name a key, not an alias".into(),
            ));
        }
        let now = self.now();
        self.resolve(target)?;
        if !create && !self.snapshot().aliases.contains_key(name) {
            self.refresh_on_miss()?;
        }
        self.commit("writing an alias", |table| {
            let key = self.resolve_in(table, target)?;
            key.changeable()?;
            if key.is_aws_managed() {
                return Err(KmsError::Unsupported(format!(
                    "An alias cannot name an AWS managed key ({})",
                    key.arn
                )));
            }
            let existing = table.aliases.get(name);
            let created_ms = match (create, existing) {
                (true, Some(_)) => {
                    return Err(KmsError::AlreadyExists(format!(
                        "An alias with the name {} already exists",
                        self.alias_arn(name)
                    )))
                }
                (false, None) => {
                    return Err(KmsError::NotFound(format!(
                        "Alias {} is not found.",
                        self.alias_arn(name)
                    )))
                }
                (false, Some(a)) => a.created_ms,
                (true, None) => {
                    if table.aliases.len() >= MAX_ALIASES {
                        return Err(KmsError::LimitExceeded(format!(
                            "This server holds at most {MAX_ALIASES} aliases"
                        )));
                    }
                    now
                }
            };
            let mut next = table.clone_shallow();
            next.aliases.insert(
                name.to_owned(),
                Alias {
                    name: name.to_owned(),
                    key: key.id(),
                    created_ms,
                    updated_ms: now,
                },
            );
            let ops = vec![Op::PutAlias {
                name: name.to_owned(),
                key: key.id(),
                created_ms,
                updated_ms: now,
            }];
            Ok(Plan::write(ops, next, ()))
        })
    }

    /// Deletes an alias (never the key).
    pub fn delete_alias(&self, name: &str) -> Result<(), KmsError> {
        check_alias_name(name)?;
        if name.starts_with("alias/aws/") {
            return Err(KmsError::InvalidAliasName(format!(
                "{name} uses the reserved prefix alias/aws/"
            )));
        }
        if !self.table()?.aliases.contains_key(name) {
            self.refresh_on_miss()?;
        }
        self.commit("deleting an alias", |table| {
            if !table.aliases.contains_key(name) {
                return Err(KmsError::NotFound(format!(
                    "Alias {} is not found.",
                    self.alias_arn(name)
                )));
            }
            let mut next = table.clone_shallow();
            next.aliases.remove(name);
            Ok(Plan::write(
                vec![Op::DeleteAlias(name.to_owned())],
                next,
                (),
            ))
        })
    }

    /// Encrypts up to 4096 bytes under a key's current material.
    pub fn encrypt(
        &self,
        key_ref: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, Arc<Key>), KmsError> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(KmsError::Validation(format!(
                "Plaintext must be 1 to {MAX_PLAINTEXT} bytes; it is {}",
                plaintext.len()
            )));
        }
        let key = self.usable_key(key_ref)?;
        let blob = seal_with(&key, plaintext, context)?;
        Ok((blob, key))
    }

    /// Decrypts a ciphertext blob. With `key_ref`, the blob must have been made by that
    /// key (`IncorrectKeyException` otherwise).
    pub fn decrypt(
        &self,
        blob: &[u8],
        context: &EncryptionContext,
        key_ref: Option<&str>,
    ) -> Result<(Zeroizing<Vec<u8>>, Arc<Key>), KmsError> {
        if blob.is_empty() || blob.len() > MAX_CIPHERTEXT {
            return Err(KmsError::Validation(format!(
                "CiphertextBlob must be 1 to {MAX_CIPHERTEXT} bytes; it is {}",
                blob.len()
            )));
        }
        check_context(context)?;
        let (header, sealed) = Header::parse(blob).ok_or(KmsError::InvalidCiphertext)?;
        if let Some(r) = key_ref {
            let named = self.resolve(r)?;
            if named.id() != header.key_id {
                return Err(KmsError::IncorrectKey);
            }
        }
        // A key or a material version this node does not know may have been made on
        // another node, and a key it holds as disabled or pending deletion may have been
        // enabled there: reload once before refusing.
        let ready = |table: &Table| {
            table.keys.get(&header.key_id).is_some_and(|k| {
                k.usable().is_ok() && k.materials.iter().any(|m| m.version == header.material)
            })
        };
        let mut table = self.table()?;
        if !ready(&table) && self.refresh_on_miss()? {
            table = self.table()?;
        }
        let key = table
            .keys
            .get(&header.key_id)
            .cloned()
            .ok_or(KmsError::InvalidCiphertext)?;
        key.usable()?;
        let material = key
            .materials
            .iter()
            .find(|m| m.version == header.material)
            .ok_or(KmsError::InvalidCiphertext)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = material
            .cipher
            .open_in_place(
                Nonce::assume_unique_for_key(header.nonce),
                Aad::from(associated_data(&header, context)),
                buf.as_mut_slice(),
            )
            .map_err(|_| KmsError::InvalidCiphertext)?
            .len();
        buf.truncate(len);
        Ok((buf, key))
    }

    /// A new data key of `len` bytes (1-1024), its plaintext and its ciphertext.
    pub fn generate_data_key(
        &self,
        key_ref: &str,
        len: usize,
        context: &EncryptionContext,
    ) -> Result<DataKey, KmsError> {
        if !(1..=1024).contains(&len) {
            return Err(KmsError::Validation(format!(
                "NumberOfBytes must be from 1 to 1024; it is {len}"
            )));
        }
        let key = self.usable_key(key_ref)?;
        let plaintext = random_bytes(len)?;
        let ciphertext = seal_with(&key, &plaintext, context)?;
        Ok(DataKey {
            plaintext,
            ciphertext,
            key,
        })
    }

    /// `n` random bytes (1-1024).
    pub fn random(&self, n: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if !(1..=1024).contains(&n) {
            return Err(KmsError::Validation(format!(
                "NumberOfBytes must be from 1 to 1024; it is {n}"
            )));
        }
        random_bytes(n)
    }

    /// Re-seals every key material under `new` in one transaction and records its
    /// fingerprint; afterwards only `new` opens this store.
    ///
    /// On a store shared by several nodes, the other nodes keep working with the copy
    /// they hold but can no longer reload it (their master key no longer opens the
    /// materials): restart each of them with `new`.
    pub fn rotate_master(&self, new: &MasterKey) -> Result<usize, KmsError> {
        let _w = warden_sqlite::lock(&self.inner.write);
        let old = self.master();
        for _ in 0..WRITE_ATTEMPTS {
            let dump = self.inner.store.load()?;
            let mut ops = Vec::new();
            for (record, materials) in &dump.keys {
                for m in materials {
                    let aad = store::material_aad(&record.id, m.version);
                    let plain = old
                        .open(&aad, &m.sealed)
                        .ok_or_else(|| KmsError::Sealed(record.id.to_string()))?;
                    ops.push(Op::ResealMaterial {
                        key: record.id,
                        version: m.version,
                        sealed: new.seal(&aad, &plain)?,
                    });
                }
            }
            let count = ops.len();
            ops.push(Op::PutMeta {
                name: "master_fingerprint".to_owned(),
                value: new.fingerprint().to_owned(),
            });
            let Some(generation) =
                self.inner
                    .store
                    .apply("re-sealing key material", &ops, Some(dump.generation))?
            else {
                continue;
            };
            *self
                .inner
                .master
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = new.clone();
            // The materials did not change, only how they are sealed: the table stays
            // right, and is now current if it was before.
            let table = self.snapshot();
            if table.generation == dump.generation {
                let mut next = table.clone_shallow();
                next.generation = generation;
                self.publish(next);
            }
            return Ok(count);
        }
        Err(KmsError::Contended("re-sealing key material"))
    }
}

impl Table {
    fn clone_shallow(&self) -> Table {
        Table {
            keys: self.keys.clone(),
            aliases: self.aliases.clone(),
            next_due_ms: self.next_due_ms,
            generation: self.generation,
        }
    }
}

/// The key table a store's dump describes, every material opened under `master`.
fn build_table(
    master: &MasterKey,
    account: &str,
    region: &str,
    dump: Dump,
) -> Result<Table, KmsError> {
    let mut table = Table {
        generation: dump.generation,
        ..Table::default()
    };
    for (record, materials) in dump.keys {
        let materials = materials
            .iter()
            .map(|m| open_material(master, &record.id, m))
            .collect::<Result<Vec<_>, _>>()?;
        let policy = Arc::new(parse_policy(&record.policy)?);
        let arn = format!("arn:aws:kms:{region}:{account}:key/{}", record.id);
        table.keys.insert(
            record.id,
            Arc::new(Key {
                record,
                arn,
                policy,
                materials,
            }),
        );
    }
    for (name, key, created_ms, updated_ms) in dump.aliases {
        table.aliases.insert(
            name.clone(),
            Alias {
                name,
                key,
                created_ms,
                updated_ms,
            },
        );
    }
    table.recompute_due();
    Ok(table)
}

/// The id part of a key reference: key ids are lower-case hyphenated UUIDs, and only
/// that form names a key.
fn id_text(local: &str) -> &str {
    local.strip_prefix("key/").unwrap_or(local)
}

/// Seals `plaintext` under `key`'s current material.
fn seal_with(
    key: &Key,
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<Vec<u8>, KmsError> {
    check_context(context)?;
    let material = key.current()?;
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce).map_err(|_| KmsError::Crypto("generating a nonce"))?;
    let header = Header {
        key_id: key.id(),
        material: material.version,
        nonce,
    };
    let mut body = plaintext.to_vec();
    material
        .cipher
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data(&header, context)),
            &mut body,
        )
        .map_err(|_| KmsError::Crypto("encrypting"))?;
    let mut blob = Vec::with_capacity(HEADER_LEN + body.len());
    blob.extend_from_slice(&header.encode());
    blob.extend_from_slice(&body);
    Ok(blob)
}

/// The default key policy: the account's IAM policies decide.
pub fn default_policy(account: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

/// The policy of the AWS managed key of `service`: any principal of the account may use it
/// through that service; the account may read its metadata directly.
pub fn aws_managed_policy(service: &str, account: &str, region: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": format!("auto-{service}-1"),
        "Statement": [{
            "Sid": format!("Allow access through {service} for all principals in the account that are authorized to use {service}"),
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {
                "kms:CallerAccount": account,
                "kms:ViaService": format!("{service}.{region}.amazonaws.com")
            }}
        }, {
            "Sid": "Allow direct access to key metadata to the account",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
            "Resource": "*"
        }]
    })
    .to_string()
}

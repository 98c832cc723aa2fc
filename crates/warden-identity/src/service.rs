//! The identity service: validated writes through an [`IdentityStore`], and an in-memory
//! snapshot (credentials with decrypted secrets, parsed policies) rebuilt after each write,
//! so the per-request paths ([`CredentialSource::lookup`], [`Identity::policies_for`]) take
//! one read lock and a hash lookup and never touch the disk.
//!
//! Role sessions (execution-role credentials of function instances, and sessions created
//! by `AssumeRole`) live only in memory: a restart ends every instance, and with it every
//! session; `AssumeRole` callers ask again.
//!
//! The last use of each access key is kept in memory on the request path
//! ([`Identity::record_key_use`]) and written in batches by [`Identity::flush_key_usage`],
//! which the server calls periodically and at shutdown, so authentication never waits for
//! a disk write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warden_iam::{evaluate, Policy, PolicyKind, Request};
use warden_types::identity::{Credential, CredentialSource, Principal, PrincipalKind};

use crate::aws_policies::{is_aws_managed, AWS_POLICIES};
use crate::crypto::{new_id, new_secret, open_secret, random_chars, seal_secret, MasterKey, ALNUM};
use crate::error::IdentityError;
use crate::shared_sessions::{SessionRecord, SharedSessions, StoredSession};
use crate::store::{
    Dump, Holder, IdentityStore, InlinePolicy, KeyStatus, KeyUsage, ManagedPolicy, PolicyVersion,
    Role, SqliteIdentityStore, StoredKey, Tags, User,
};

/// The bootstrap administrator's user name.
pub const ADMIN_USER: &str = "admin";
/// The bootstrap administrator's inline policy name.
pub const ADMIN_POLICY: &str = "AdministratorAccess";
const ADMIN_POLICY_DOCUMENT: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
/// IAM's quota of access keys per user.
pub const MAX_KEYS_PER_USER: usize = 2;
/// IAM's default quota of managed policies attached to one user or role.
pub const MAX_ATTACHED_POLICIES: usize = 10;
/// Longest role session [`Identity::issue_role_session`] grants (IAM's maximum, 12 hours).
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(43_200);
/// IAM's quota of versions per managed policy.
pub const MAX_POLICY_VERSIONS: usize = 5;
/// Most live sessions `AssumeRole` keeps at once (instance sessions are bounded by the
/// instances); beyond it `AssumeRole` answers `LimitExceeded` until some expire.
pub const MAX_ASSUMED_SESSIONS: usize = 10_000;
/// Shortest session `AssumeRole` grants (STS's minimum, 15 minutes), in seconds.
pub const MIN_ASSUMED_SESSION_S: u32 = 900;
/// Longest session a role session may obtain by assuming another role (role chaining).
pub const ROLE_CHAINING_MAX_S: u32 = 3600;
/// STS's quota for session policies and session tags together, in characters.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;
/// STS's quota of managed session policies (`PolicyArns`).
pub const MAX_SESSION_POLICY_ARNS: usize = 10;
/// The service principal [`Identity::issue_role_session`] issues sessions to: a role's
/// trust policy must let it assume the role.
pub const EXECUTION_SERVICE: &str = "lambda.amazonaws.com";

/// The identity service. Cheap to clone: clones share one store, cache and session table.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("account", &self.inner.account)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<dyn IdentityStore>,
    key: MasterKey,
    account: String,
    /// Serialises write + snapshot rebuild, so snapshots are installed in write order.
    write_lock: Mutex<()>,
    snapshot: RwLock<Arc<Snapshot>>,
    sessions: RwLock<HashMap<String, Session>>,
    /// Where `AssumeRole` sessions are shared with other nodes, and the position of the
    /// last one read from there.
    shared: Option<SharedState>,
    usage: Mutex<Usage>,
}

struct SharedState {
    sessions: Arc<dyn SharedSessions>,
    seen: Mutex<i64>,
}

/// A live role session.
struct Session {
    credential: Credential,
    /// The inline session policy (`AssumeRole`'s `Policy`), parsed.
    inline: Option<Arc<Policy>>,
    /// Managed session policies (`PolicyArns`), resolved against the current snapshot at
    /// each decision, as IAM uses a managed policy's current default version.
    policy_arns: Vec<String>,
    /// Whether it was created by `AssumeRole` (counted against [`MAX_ASSUMED_SESSIONS`]).
    assumed: bool,
}

impl Session {
    fn has_session_policies(&self) -> bool {
        self.inline.is_some() || !self.policy_arns.is_empty()
    }
}

/// Access key use not yet written to the store.
#[derive(Default)]
struct Usage {
    /// The latest use of each key seen since start.
    latest: HashMap<String, KeyUsage>,
    /// Keys whose latest use is not yet stored.
    dirty: HashSet<String>,
}

/// What [`Identity::assume_role`] is asked for (parameters of STS `AssumeRole`).
#[derive(Clone, Debug, Default)]
pub struct AssumeRoleRequest {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`: 2 to 64 characters of letters, digits and `+=,.@_-`.
    pub session_name: String,
    /// `DurationSeconds`: 900 to the role's maximum session duration (default 3600).
    pub duration_s: Option<u32>,
    /// `Policy`: an inline session policy.
    pub policy: Option<String>,
    /// `PolicyArns`: managed session policies.
    pub policy_arns: Vec<String>,
    /// `Tags`: session tags, visible as `aws:PrincipalTag/KEY`.
    pub tags: Tags,
}

/// The outcome of [`Identity::assume_role`].
#[derive(Clone, Debug)]
pub struct AssumedRole {
    /// The session's credentials and principal.
    pub credential: Credential,
    /// Percentage of STS's quota the session policies and tags use, when any were given.
    pub packed_policy_size: Option<u32>,
}

/// Everything the read paths need, derived from one [`Dump`].
pub(crate) struct Snapshot {
    pub(crate) dump: Dump,
    /// Active access keys of existing users, secrets decrypted.
    credentials: HashMap<String, Credential>,
    /// Identity policies by lower-cased user name.
    user_policies: HashMap<String, Arc<[Arc<Policy>]>>,
    /// Identity policies by lower-cased role name.
    role_policies: HashMap<String, Arc<[Arc<Policy>]>>,
    /// Parsed trust policies by lower-cased role name.
    trust: HashMap<String, Arc<Policy>>,
    /// Parsed default versions of managed policies by ARN.
    managed: HashMap<String, Arc<Policy>>,
    empty: Arc<[Arc<Policy>]>,
}

impl Snapshot {
    pub(crate) fn user(&self, name: &str) -> Option<&User> {
        self.dump
            .users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn role(&self, name: &str) -> Option<&Role> {
        self.dump
            .roles
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn managed(&self, arn: &str) -> Option<&ManagedPolicy> {
        self.dump.policies.iter().find(|p| p.arn == arn)
    }

    /// The versions of a managed policy, oldest first.
    pub(crate) fn versions_of<'a>(
        &'a self,
        arn: &'a str,
    ) -> impl Iterator<Item = &'a PolicyVersion> + 'a {
        self.dump
            .versions
            .iter()
            .filter(move |v| v.policy_arn == arn)
    }

    pub(crate) fn inline_of<'a>(
        &'a self,
        holder: &'a Holder,
    ) -> impl Iterator<Item = &'a InlinePolicy> + 'a {
        self.dump
            .inline
            .iter()
            .filter(move |p| same_holder(&p.holder, holder))
    }

    pub(crate) fn attached_to<'a>(
        &'a self,
        holder: &'a Holder,
    ) -> impl Iterator<Item = &'a ManagedPolicy> + 'a {
        self.dump
            .attachments
            .iter()
            .filter(move |(h, _)| same_holder(h, holder))
            .filter_map(|(_, arn)| self.managed(arn))
    }

    pub(crate) fn attachment_count(&self, arn: &str) -> usize {
        self.dump
            .attachments
            .iter()
            .filter(|(_, a)| a == arn)
            .count()
    }

    pub(crate) fn keys_of<'a>(&'a self, user: &'a str) -> impl Iterator<Item = &'a StoredKey> + 'a {
        self.dump
            .keys
            .iter()
            .filter(move |k| k.user_name.eq_ignore_ascii_case(user))
    }
}

fn same_holder(a: &Holder, b: &Holder) -> bool {
    match (a, b) {
        (Holder::User(x), Holder::User(y)) | (Holder::Role(x), Holder::Role(y)) => {
            x.eq_ignore_ascii_case(y)
        }
        _ => false,
    }
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn parse_stored(document: &str, kind: PolicyKind, what: &str) -> Option<Arc<Policy>> {
    match Policy::parse_as(document, kind) {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            // Documents are validated before they are stored; one that no longer parses
            // (a stricter grammar after an upgrade) grants nothing rather than failing
            // every request.
            tracing::error!(policy = what, error = %e, "ignoring a stored policy that does not parse");
            None
        }
    }
}

fn user_principal(account: &str, u: &User) -> Principal {
    Principal {
        arn: u.arn.clone(),
        account: account.to_owned(),
        name: u.name.clone(),
        id: u.id.clone(),
        kind: PrincipalKind::User,
        tags: u.tags.iter().cloned().collect::<BTreeMap<_, _>>(),
        session: None,
    }
}

fn build_snapshot(dump: Dump, key: &MasterKey, account: &str) -> Result<Snapshot, IdentityError> {
    let users: HashMap<String, &User> = dump.users.iter().map(|u| (lower(&u.name), u)).collect();
    let mut credentials = HashMap::new();
    for k in &dump.keys {
        if k.status != KeyStatus::Active {
            continue;
        }
        let Some(user) = users.get(&lower(&k.user_name)) else {
            continue;
        };
        let secret = open_secret(key, &k.id, &k.sealed_secret)?;
        credentials.insert(
            k.id.clone(),
            Credential {
                access_key_id: k.id.clone(),
                secret_access_key: secret,
                session_token: None,
                expires_at_ms: None,
                principal: user_principal(account, user),
            },
        );
    }
    let mut by_holder: HashMap<Holder, Vec<Arc<Policy>>> = HashMap::new();
    for p in &dump.inline {
        let holder = match &p.holder {
            Holder::User(n) => Holder::User(lower(n)),
            Holder::Role(n) => Holder::Role(lower(n)),
        };
        if let Some(parsed) = parse_stored(&p.document, PolicyKind::Identity, &p.name) {
            by_holder.entry(holder).or_default().push(parsed);
        }
    }
    let managed: HashMap<String, Arc<Policy>> = dump
        .policies
        .iter()
        .filter_map(|p| {
            parse_stored(&p.document, PolicyKind::Identity, &p.arn).map(|x| (p.arn.clone(), x))
        })
        .collect();
    for (h, arn) in &dump.attachments {
        let holder = match h {
            Holder::User(n) => Holder::User(lower(n)),
            Holder::Role(n) => Holder::Role(lower(n)),
        };
        if let Some(p) = managed.get(arn.as_str()) {
            by_holder.entry(holder).or_default().push(p.clone());
        }
    }
    let mut user_policies = HashMap::new();
    let mut role_policies = HashMap::new();
    for (holder, list) in by_holder {
        match holder {
            Holder::User(n) => user_policies.insert(n, Arc::from(list)),
            Holder::Role(n) => role_policies.insert(n, Arc::from(list)),
        };
    }
    let trust = dump
        .roles
        .iter()
        .filter_map(|r| {
            parse_stored(&r.trust_policy, PolicyKind::Trust, &r.arn).map(|p| (lower(&r.name), p))
        })
        .collect();
    Ok(Snapshot {
        dump,
        credentials,
        user_policies,
        role_policies,
        trust,
        managed,
        empty: Arc::from(Vec::new()),
    })
}

// ---- validation -----------------------------------------------------------------------

fn validate_name(what: &str, name: &str, max: usize) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Validation(format!(
            "{what} `{name}` must be 1 to {max} characters of letters, digits and +=,.@_-"
        )))
    }
}

fn validate_path(path: &str) -> Result<(), IdentityError> {
    let ok = path.len() <= 512
        && path.starts_with('/')
        && path.ends_with('/')
        && !path.contains("//")
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Validation(format!(
            "path `{path}` must begin and end with `/` and contain printable ascii characters only"
        )))
    }
}

fn validate_tags(tags: &Tags) -> Result<(), IdentityError> {
    if tags.len() > 50 {
        return Err(IdentityError::LimitExceeded(
            "Cannot exceed quota for TagsPerEntity: 50".into(),
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(IdentityError::Validation(format!(
                "tag `{k}` must have a key of 1 to 128 characters and a value of at most 256"
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(IdentityError::Validation(format!(
                "tag key `{k}` uses the reserved prefix `aws:`"
            )));
        }
    }
    Ok(())
}

/// Validates a policy document for `kind` and IAM's size quota (non-whitespace characters).
fn validate_policy(document: &str, kind: PolicyKind, quota: usize) -> Result<(), IdentityError> {
    let size = document.chars().filter(|c| !c.is_whitespace()).count();
    if size > quota {
        return Err(IdentityError::LimitExceeded(format!(
            "Cannot exceed quota for PolicySize: {quota}"
        )));
    }
    Policy::parse_as(document, kind)?;
    Ok(())
}

fn validate_max_session(max: u32) -> Result<(), IdentityError> {
    if (3600..=43_200).contains(&max) {
        Ok(())
    } else {
        Err(IdentityError::Validation(format!(
            "max session duration `{max}` must be between 3600 and 43200 seconds"
        )))
    }
}

fn validate_description(d: &str) -> Result<(), IdentityError> {
    if d.chars().count() > 1000 {
        return Err(IdentityError::Validation(
            "description must be at most 1000 characters".into(),
        ));
    }
    Ok(())
}

fn validate_tag_keys(keys: &[String]) -> Result<(), IdentityError> {
    if keys.is_empty() || keys.len() > 50 {
        return Err(IdentityError::Validation(
            "between 1 and 50 tag keys must be given".into(),
        ));
    }
    match keys
        .iter()
        .find(|k| k.is_empty() || k.chars().count() > 128)
    {
        Some(k) => Err(IdentityError::Validation(format!(
            "tag key `{k}` must have 1 to 128 characters"
        ))),
        None => Ok(()),
    }
}

/// `v` and a version number, as IAM writes policy version ids.
fn validate_version_id(id: &str) -> Result<(), IdentityError> {
    if version_number(id).is_some() {
        Ok(())
    } else {
        Err(IdentityError::Validation(format!(
            "version id `{id}` must be `v` followed by a version number, such as `v2`"
        )))
    }
}

fn version_number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix('v')?;
    if digits.starts_with('0') || digits.len() > 18 {
        return None;
    }
    digits.parse().ok()
}

fn refuse_aws_managed(arn: &str, what: &str) -> Result<(), IdentityError> {
    if is_aws_managed(arn) {
        return Err(IdentityError::AwsManaged(format!(
            "Policy `{arn}` is managed by AWS and cannot be {what}."
        )));
    }
    Ok(())
}

fn no_policy(arn: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("Policy `{arn}` was not found."))
}

fn no_version(arn: &str, version_id: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!(
        "Policy `{arn}` version `{version_id}` does not exist or is not attachable."
    ))
}

/// `/` + path segments + name, as in `user/PATH/NAME`.
fn arn_path(path: &str) -> &str {
    path.strip_suffix('/').unwrap_or(path)
}

/// The last `/`-segment of an IAM ARN's resource: the entity name.
fn name_from_arn(arn: &str) -> Option<&str> {
    arn.rsplit('/').next().filter(|n| !n.is_empty())
}

fn merge_tags(existing: &Tags, new: &Tags) -> Tags {
    let mut out = existing.clone();
    for (k, v) in new {
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

impl Identity {
    /// Opens the identity service on `DATA_DIR/identity.db`, with secrets sealed under
    /// `DATA_DIR/master.key` (created on first start, mode 0600).
    pub fn open(data_dir: &Path, account: &str) -> Result<Self, IdentityError> {
        let key = MasterKey::load_or_create(&data_dir.join("master.key"))?;
        Identity::open_with_key(data_dir, key, account)
    }

    /// Opens the identity service on `DATA_DIR/identity.db`, with secrets sealed under
    /// `key`.
    pub fn open_with_key(
        data_dir: &Path,
        key: MasterKey,
        account: &str,
    ) -> Result<Self, IdentityError> {
        let store = SqliteIdentityStore::open(&data_dir.join("identity.db"))?;
        Identity::with_store(Arc::new(store), key, account)
    }

    /// Reseals every stored secret access key under `new` in one transaction (a master key
    /// rotation; the server is not running). Keys that already open under `new` are kept
    /// as they are, so an interrupted rotation can be run again.
    pub fn rotate_master(
        data_dir: &Path,
        old: &MasterKey,
        new: &MasterKey,
    ) -> Result<usize, IdentityError> {
        let store = SqliteIdentityStore::open(&data_dir.join("identity.db"))?;
        store.reseal_secrets(&|id, sealed| {
            if new.open(id.as_bytes(), sealed).is_some() {
                return Ok(sealed.to_vec());
            }
            let secret = open_secret(old, id, sealed)?;
            seal_secret(new, id, &secret)
        })
    }

    /// [`Identity::rotate_master`] for identity in the PostgreSQL database at `url`: the
    /// access keys' secrets and the shared `AssumeRole` sessions. Returns how many of
    /// each were resealed; each is idempotent, as there.
    pub fn rotate_master_postgres(
        url: &str,
        old: &MasterKey,
        new: &MasterKey,
    ) -> Result<(usize, usize), IdentityError> {
        let store = crate::postgres::PostgresIdentityStore::open(url, 1)?;
        let reseal = |id: &str, sealed: &[u8]| {
            if new.open(id.as_bytes(), sealed).is_some() {
                return Ok(sealed.to_vec());
            }
            let secret = open_secret(old, id, sealed)?;
            seal_secret(new, id, &secret)
        };
        let keys = store.reseal_secrets(&reseal)?;
        let sessions = store.reseal_sessions(&reseal)?;
        Ok((keys, sessions))
    }

    /// Builds the service on an opened store (of any backend, possibly shared with other
    /// nodes), loading and decrypting everything once. Fails if a stored secret does not
    /// decrypt (a wrong or replaced master key).
    pub fn with_store(
        store: Arc<dyn IdentityStore>,
        key: MasterKey,
        account: &str,
    ) -> Result<Self, IdentityError> {
        Self::with_stores(store, None, key, account)
    }

    /// [`Identity::with_store`], sharing `AssumeRole` sessions through `shared` when given
    /// (and reading the live ones stored there before it returns).
    pub fn with_stores(
        store: Arc<dyn IdentityStore>,
        shared: Option<Arc<dyn SharedSessions>>,
        key: MasterKey,
        account: &str,
    ) -> Result<Self, IdentityError> {
        let snapshot = build_snapshot(store.load()?, &key, account)?;
        let identity = Identity {
            inner: Arc::new(Inner {
                store,
                key,
                account: account.to_owned(),
                write_lock: Mutex::new(()),
                snapshot: RwLock::new(Arc::new(snapshot)),
                sessions: RwLock::new(HashMap::new()),
                shared: shared.map(|sessions| SharedState {
                    sessions,
                    seen: Mutex::new(0),
                }),
                usage: Mutex::new(Usage::default()),
            }),
        };
        identity.install_aws_policies()?;
        identity.pull_sessions()?;
        Ok(identity)
    }

    /// Installs the AWS-managed policies, or refreshes those whose document, version or
    /// description changed since they were installed (a newer Warden); no write when all
    /// are current.
    fn install_aws_policies(&self) -> Result<(), IdentityError> {
        let current = |snap: &Snapshot, p: &crate::aws_policies::AwsPolicy| {
            snap.managed(&p.arn()).is_some_and(|m| {
                m.document == p.document
                    && m.default_version == p.version
                    && m.description.as_deref() == Some(p.description)
                    && m.path == p.path
            })
        };
        let snap = self.snapshot();
        if AWS_POLICIES.iter().all(|p| current(&snap, p)) {
            return Ok(());
        }
        self.write(|snap, store| {
            let now = now_ms();
            for p in AWS_POLICIES.iter().filter(|p| !current(snap, p)) {
                let arn = p.arn();
                let existing = snap.managed(&arn);
                store.put_aws_managed_policy(&ManagedPolicy {
                    name: p.name.to_owned(),
                    id: match existing {
                        Some(m) => m.id.clone(),
                        None => new_id("ANPA")?,
                    },
                    arn,
                    path: p.path.to_owned(),
                    document: p.document.to_owned(),
                    description: Some(p.description.to_owned()),
                    created_ms: existing.map_or(now, |m| m.created_ms),
                    default_version: p.version.to_owned(),
                    updated_ms: now,
                })?;
            }
            Ok(())
        })
    }

    /// The 12-digit account id in every ARN.
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.inner
            .snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs one store write and installs a fresh snapshot, holding the write lock across
    /// both. `f` sees the snapshot from before the write to check and canonicalise input.
    fn write<T>(
        &self,
        f: impl FnOnce(&Snapshot, &dyn IdentityStore) -> Result<T, IdentityError>,
    ) -> Result<T, IdentityError> {
        let _guard = self
            .inner
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = self.snapshot();
        let result = f(&before, self.inner.store.as_ref());
        // Rebuild even after a failed write: the store may have been changed by another
        // process sharing it, and a failed write changes nothing here.
        let rebuilt = build_snapshot(
            self.inner.store.load()?,
            &self.inner.key,
            &self.inner.account,
        )?;
        *self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(rebuilt);
        result
    }

    /// Reloads everything from the store (after another process changed it).
    pub fn reload(&self) -> Result<(), IdentityError> {
        self.write(|_, _| Ok(()))
    }

    /// Opens the identity service on a PostgreSQL database shared with other nodes, with
    /// `connections` connections and secrets sealed under `key` (which every node must
    /// share).
    pub fn open_postgres(
        url: &str,
        connections: usize,
        key: MasterKey,
        account: &str,
    ) -> Result<Self, IdentityError> {
        let store = Arc::new(crate::postgres::PostgresIdentityStore::open(
            url,
            connections,
        )?);
        let shared: Arc<dyn SharedSessions> = store.clone();
        Identity::with_stores(store, Some(shared), key, account)
    }

    /// Rebuilds the snapshot if the store's generation is no longer the one the snapshot
    /// was read at (a write of another node or process); returns whether it did. This
    /// node's own writes rebuild the snapshot as they commit, so with the embedded store,
    /// which only this process writes, it never needs to. Called periodically by a node
    /// that shares its store, this bounds how long a change made elsewhere (a deleted
    /// key, a detached policy) goes unseen here.
    /// A snapshot is only ever replaced by a newer one: should the store report a
    /// generation at or below the snapshot's, nothing changes.
    ///
    /// With shared sessions, a rebuild ends the sessions whose role is gone, and then the
    /// `AssumeRole` sessions other nodes issued since the last call are read.
    pub fn refresh(&self) -> Result<bool, IdentityError> {
        let rebuilt = self.rebuild_if_behind()?;
        self.pull_sessions()?;
        Ok(rebuilt)
    }

    /// The snapshot part of [`Identity::refresh`].
    fn rebuild_if_behind(&self) -> Result<bool, IdentityError> {
        if self.inner.store.generation()? <= self.snapshot().dump.generation {
            return Ok(false);
        }
        let _guard = self
            .inner
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another refresh or a write of this node may have installed it meanwhile.
        let current = self.snapshot().dump.generation;
        let dump = self.inner.store.load()?;
        if dump.generation <= current {
            return Ok(false);
        }
        let rebuilt = Arc::new(build_snapshot(dump, &self.inner.key, &self.inner.account)?);
        *self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::clone(&rebuilt);
        // A role deleted (or deleted and made again) on another node ends its sessions
        // here too, as deleting it here does.
        self.inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| match &s.credential.principal.kind {
                PrincipalKind::AssumedRole { role_arn, .. } => {
                    self.role_by_arn(&rebuilt, role_arn).is_some_and(|r| {
                        s.credential
                            .principal
                            .id
                            .strip_prefix(r.id.as_str())
                            .is_some_and(|rest| rest.starts_with(':'))
                    })
                }
                PrincipalKind::User => true,
            });
        Ok(true)
    }

    /// Reads the `AssumeRole` sessions other nodes stored since the last read (none
    /// without shared sessions). A record that does not open under this node's master key
    /// is skipped with a warning: the KMS store refuses a node with another master key
    /// before identity opens, so only a damaged row can do that.
    pub(crate) fn pull_sessions(&self) -> Result<(), IdentityError> {
        let Some(shared) = &self.inner.shared else {
            return Ok(());
        };
        let mut seen = shared.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = shared.sessions.since(*seen)?;
        let now = now_ms();
        self.inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| s.credential.expires_at_ms.is_some_and(|e| e > now));
        let mut snap = self.snapshot();
        // A session's role committed before the session did: one unknown here is newer
        // than this node's snapshot (read it again, once) or was deleted since.
        if fresh
            .iter()
            .any(|s| self.role_by_arn(&snap, &s.role_arn).is_none())
            && self.rebuild_if_behind()?
        {
            snap = self.snapshot();
        }
        for stored in fresh {
            *seen = (*seen).max(stored.seq);
            if stored.expires_ms <= now {
                continue;
            }
            if self
                .inner
                .sessions
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&stored.access_key_id)
            {
                continue;
            }
            match self.open_shared_session(&snap, &stored) {
                Ok(session) => {
                    self.inner
                        .sessions
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(stored.access_key_id.clone(), session);
                }
                Err(e) => tracing::warn!(
                    access_key_id = %stored.access_key_id,
                    error = %e,
                    "skipping a shared session that does not open"
                ),
            }
        }
        Ok(())
    }

    /// A stored session as this node holds it.
    fn open_shared_session(
        &self,
        snap: &Snapshot,
        stored: &StoredSession,
    ) -> Result<Session, IdentityError> {
        let plain = open_secret(&self.inner.key, &stored.access_key_id, &stored.sealed)?;
        let record: SessionRecord = serde_json::from_str(&plain)
            .map_err(|_| IdentityError::Crypto("a shared session's record does not parse"))?;
        let inline = match &record.policy {
            Some(doc) => Some(Arc::new(Policy::parse_as(doc, PolicyKind::Identity)?)),
            None => None,
        };
        // A session of a role that is gone (or was made again) is not accepted.
        let role = self
            .role_by_arn(snap, &stored.role_arn)
            .filter(|r| r.id == record.role_id)
            .ok_or_else(|| {
                IdentityError::NoSuchEntity(format!(
                    "the role `{}` of a shared session no longer exists",
                    stored.role_arn
                ))
            })?;
        let principal = self.session_principal(
            role,
            &record.session_name,
            record.tags.into_iter().collect(),
            &stored.access_key_id,
        );
        Ok(Session {
            credential: Credential {
                access_key_id: stored.access_key_id.clone(),
                secret_access_key: record.secret_access_key,
                session_token: Some(record.session_token),
                expires_at_ms: Some(stored.expires_ms),
                principal,
            },
            inline,
            policy_arns: record.policy_arns,
            assumed: true,
        })
    }

    fn user_arn(&self, path: &str, name: &str) -> String {
        format!(
            "arn:aws:iam::{}:user{}/{name}",
            self.inner.account,
            arn_path(path)
        )
    }

    // ---- bootstrap ----------------------------------------------------------------------

    /// On first start, creates the user `admin` with an inline policy allowing every
    /// action on every resource and one access key, atomically, and returns that key's id
    /// and secret; `None` if `admin` already exists.
    pub fn ensure_bootstrap_admin(&self) -> Result<Option<(String, String)>, IdentityError> {
        self.write(|snap, store| {
            if snap.user(ADMIN_USER).is_some() {
                return Ok(None);
            }
            let now = now_ms();
            let user = User {
                name: ADMIN_USER.into(),
                id: new_id("AIDA")?,
                arn: self.user_arn("/", ADMIN_USER),
                path: "/".into(),
                tags: Vec::new(),
                created_ms: now,
            };
            let inline = InlinePolicy {
                holder: Holder::User(ADMIN_USER.into()),
                name: ADMIN_POLICY.into(),
                document: ADMIN_POLICY_DOCUMENT.into(),
            };
            let key_id = new_id("AKIA")?;
            let secret = new_secret()?;
            let key = StoredKey {
                sealed_secret: seal_secret(&self.inner.key, &key_id, &secret)?,
                id: key_id.clone(),
                user_name: ADMIN_USER.into(),
                status: KeyStatus::Active,
                created_ms: now,
                last_used_ms: None,
                last_used_service: None,
                last_used_region: None,
            };
            match store.create_user(&user, &[inline], Some(&key)) {
                // Another node sharing the store made it first (its snapshot here was
                // older): that one is the administrator; the write rebuilds the snapshot.
                Err(IdentityError::EntityAlreadyExists(_)) => return Ok(None),
                other => other?,
            }
            tracing::info!(user = ADMIN_USER, access_key_id = %key_id, "created the bootstrap administrator");
            Ok(Some((key_id, secret)))
        })
    }

    // ---- users and keys -----------------------------------------------------------------

    /// Creates a user.
    pub fn create_user(
        &self,
        name: &str,
        path: Option<&str>,
        tags: Tags,
    ) -> Result<User, IdentityError> {
        validate_name("user name", name, 64)?;
        let path = path.unwrap_or("/");
        validate_path(path)?;
        validate_tags(&tags)?;
        let user = User {
            name: name.to_owned(),
            id: new_id("AIDA")?,
            arn: self.user_arn(path, name),
            path: path.to_owned(),
            tags,
            created_ms: now_ms(),
        };
        self.write(|_, store| store.create_user(&user, &[], None))?;
        Ok(user)
    }

    /// A user by name (ignoring case).
    pub fn user(&self, name: &str) -> Option<User> {
        self.snapshot().user(name).cloned()
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<User> {
        self.snapshot().dump.users.clone()
    }

    /// Deletes a user without keys or policies.
    pub fn delete_user(&self, name: &str) -> Result<(), IdentityError> {
        self.write(|snap, store| store.delete_user(&canonical_user(snap, name)?))
    }

    /// Adds or overwrites tags of a user.
    pub fn tag_user(&self, name: &str, tags: &Tags) -> Result<(), IdentityError> {
        self.write(|snap, store| {
            let user = snap.user(name).ok_or_else(|| no_user(name))?;
            let merged = merge_tags(&user.tags, tags);
            validate_tags(&merged)?;
            store.set_user_tags(&user.name, &merged)
        })
    }

    /// Removes tags (by exact key) from a user; keys it does not have are ignored, as IAM does.
    ///
    /// Callers: the IAM API, for a caller allowed `iam:UntagUser` on the user. The user's
    /// `aws:PrincipalTag` values change with it.
    pub fn untag_user(&self, name: &str, keys: &[String]) -> Result<(), IdentityError> {
        validate_tag_keys(keys)?;
        self.write(|snap, store| {
            let user = snap.user(name).ok_or_else(|| no_user(name))?;
            let kept: Tags = user
                .tags
                .iter()
                .filter(|(k, _)| !keys.contains(k))
                .cloned()
                .collect();
            store.set_user_tags(&user.name, &kept)
        })
    }

    /// Creates an access key for a user; returns its metadata and the secret (shown once).
    pub fn create_access_key(&self, user: &str) -> Result<(StoredKey, String), IdentityError> {
        self.write(|snap, store| {
            let user = canonical_user(snap, user)?;
            let id = new_id("AKIA")?;
            let secret = new_secret()?;
            let key = StoredKey {
                sealed_secret: seal_secret(&self.inner.key, &id, &secret)?,
                id,
                user_name: user,
                status: KeyStatus::Active,
                created_ms: now_ms(),
                last_used_ms: None,
                last_used_service: None,
                last_used_region: None,
            };
            store.create_access_key(&key, MAX_KEYS_PER_USER)?;
            Ok((key, secret))
        })
    }

    /// The access keys of a user (metadata; secrets stay sealed).
    pub fn access_keys(&self, user: &str) -> Result<Vec<StoredKey>, IdentityError> {
        let snap = self.snapshot();
        let name = canonical_user(&snap, user)?;
        Ok(snap.keys_of(&name).cloned().collect())
    }

    /// Activates or deactivates a key.
    pub fn set_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IdentityError> {
        self.write(|snap, store| {
            store.set_access_key_status(&canonical_user(snap, user)?, key_id, status)
        })
    }

    /// Deletes a key.
    pub fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IdentityError> {
        self.write(|snap, store| store.delete_access_key(&canonical_user(snap, user)?, key_id))
    }

    /// The user owning an access key, for key operations that omit `UserName`.
    pub fn key_owner(&self, key_id: &str) -> Option<String> {
        self.snapshot()
            .dump
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .map(|k| k.user_name.clone())
    }

    /// Notes that an access key (`AKIA...`) authenticated a request for `service` in
    /// `region`. In memory only, so the request path never waits for the disk;
    /// [`Identity::flush_key_usage`] writes it. Role-session keys are not tracked.
    pub fn record_key_use(&self, key_id: &str, service: &str, region: &str) {
        if !key_id.starts_with("AKIA") {
            return;
        }
        let mut usage = self
            .inner
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let at_ms = now_ms();
        match usage.latest.get_mut(key_id) {
            Some(u) => {
                u.at_ms = at_ms;
                if u.service != service {
                    u.service = service.to_owned();
                }
                if u.region != region {
                    u.region = region.to_owned();
                }
            }
            None => {
                usage.latest.insert(
                    key_id.to_owned(),
                    KeyUsage {
                        key_id: key_id.to_owned(),
                        at_ms,
                        service: service.to_owned(),
                        region: region.to_owned(),
                    },
                );
            }
        }
        if !usage.dirty.contains(key_id) {
            usage.dirty.insert(key_id.to_owned());
        }
    }

    /// Writes the key uses recorded since the last flush in one transaction; returns how
    /// many. On failure they stay pending for the next flush.
    pub fn flush_key_usage(&self) -> Result<usize, IdentityError> {
        let pending: Vec<KeyUsage> = {
            let mut usage = self
                .inner
                .usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let dirty = std::mem::take(&mut usage.dirty);
            // Forget keys that no longer exist, so the map stays bounded by the keys.
            let snap = self.snapshot();
            usage
                .latest
                .retain(|k, _| snap.dump.keys.iter().any(|s| s.id == *k));
            dirty
                .iter()
                .filter_map(|k| usage.latest.get(k).cloned())
                .collect()
        };
        if let Err(e) = self.inner.store.record_key_usage(&pending) {
            let mut usage = self
                .inner
                .usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            usage.dirty.extend(pending.into_iter().map(|u| u.key_id));
            return Err(e);
        }
        Ok(pending.len())
    }

    /// The owner of an access key and its last recorded use (`None`: never used), for
    /// `GetAccessKeyLastUsed`; `None` for an unknown key.
    pub fn key_last_used(&self, key_id: &str) -> Option<(String, Option<KeyUsage>)> {
        let snap = self.snapshot();
        let key = snap.dump.keys.iter().find(|k| k.id == key_id)?;
        let recent = self
            .inner
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .latest
            .get(key_id)
            .cloned();
        let stored = key.last_used_ms.map(|at_ms| KeyUsage {
            key_id: key.id.clone(),
            at_ms,
            service: key
                .last_used_service
                .clone()
                .unwrap_or_else(|| "N/A".into()),
            region: key.last_used_region.clone().unwrap_or_else(|| "N/A".into()),
        });
        Some((key.user_name.clone(), recent.or(stored)))
    }

    // ---- roles --------------------------------------------------------------------------

    /// Creates a role with a trust policy (validated as one).
    pub fn create_role(
        &self,
        name: &str,
        path: Option<&str>,
        trust_policy: &str,
        description: Option<&str>,
        max_session_duration_s: Option<u32>,
        tags: Tags,
    ) -> Result<Role, IdentityError> {
        validate_name("role name", name, 64)?;
        let path = path.unwrap_or("/");
        validate_path(path)?;
        validate_tags(&tags)?;
        validate_policy(trust_policy, PolicyKind::Trust, 2048)?;
        let max = max_session_duration_s.unwrap_or(3600);
        validate_max_session(max)?;
        if let Some(d) = description {
            validate_description(d)?;
        }
        let role = Role {
            name: name.to_owned(),
            id: new_id("AROA")?,
            arn: format!(
                "arn:aws:iam::{}:role{}/{name}",
                self.inner.account,
                arn_path(path)
            ),
            path: path.to_owned(),
            trust_policy: trust_policy.to_owned(),
            description: description.map(str::to_owned),
            max_session_duration_s: max,
            tags,
            created_ms: now_ms(),
        };
        self.write(|_, store| store.create_role(&role))?;
        Ok(role)
    }

    /// A role by name (ignoring case).
    pub fn role(&self, name: &str) -> Option<Role> {
        self.snapshot().role(name).cloned()
    }

    /// Every role, by name.
    pub fn roles(&self) -> Vec<Role> {
        self.snapshot().dump.roles.clone()
    }

    /// Deletes a role without policies; its live sessions end at once.
    pub fn delete_role(&self, name: &str) -> Result<(), IdentityError> {
        let role = self.write(|snap, store| {
            let role = snap.role(name).ok_or_else(|| no_role(name))?.clone();
            store.delete_role(&role.name)?;
            Ok(role)
        })?;
        if let Some(shared) = &self.inner.shared {
            shared.sessions.delete_role_sessions(&role.arn)?;
        }
        self.inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| !matches!(&s.credential.principal.kind, PrincipalKind::AssumedRole { role_arn, .. } if *role_arn == role.arn));
        Ok(())
    }

    /// Replaces a role's trust policy.
    pub fn update_trust_policy(&self, name: &str, document: &str) -> Result<(), IdentityError> {
        validate_policy(document, PolicyKind::Trust, 2048)?;
        self.write(|snap, store| {
            store.set_role_trust_policy(&canonical_role(snap, name)?, document)
        })
    }

    /// Adds or overwrites tags of a role.
    pub fn tag_role(&self, name: &str, tags: &Tags) -> Result<(), IdentityError> {
        self.write(|snap, store| {
            let role = snap.role(name).ok_or_else(|| no_role(name))?;
            let merged = merge_tags(&role.tags, tags);
            validate_tags(&merged)?;
            store.set_role_tags(&role.name, &merged)
        })
    }

    /// Changes a role's description (`Some(None)` clears it) and/or maximum session duration
    /// (3600 to 43200 seconds); returns the updated role.
    ///
    /// Callers: the IAM API, for a caller allowed `iam:UpdateRole` (or
    /// `iam:UpdateRoleDescription`) on the role. Live sessions keep their expiry.
    pub fn update_role(
        &self,
        name: &str,
        description: Option<Option<&str>>,
        max_session_duration_s: Option<u32>,
    ) -> Result<Role, IdentityError> {
        if let Some(m) = max_session_duration_s {
            validate_max_session(m)?;
        }
        if let Some(Some(d)) = description {
            validate_description(d)?;
        }
        self.write(|snap, store| {
            let name = canonical_role(snap, name)?;
            store.update_role(&name, description, max_session_duration_s)
        })?;
        self.role(name).ok_or_else(|| no_role(name))
    }

    /// Removes tags (by exact key) from a role; keys it does not have are ignored.
    ///
    /// Callers: the IAM API, for a caller allowed `iam:UntagRole` on the role. Sessions
    /// issued after the change carry the remaining tags.
    pub fn untag_role(&self, name: &str, keys: &[String]) -> Result<(), IdentityError> {
        validate_tag_keys(keys)?;
        self.write(|snap, store| {
            let role = snap.role(name).ok_or_else(|| no_role(name))?;
            let kept: Tags = role
                .tags
                .iter()
                .filter(|(k, _)| !keys.contains(k))
                .cloned()
                .collect();
            store.set_role_tags(&role.name, &kept)
        })
    }

    /// The canonical ARN and parsed trust policy of a role, found by ARN (exactly, or by
    /// name within this account); `None` if there is no such role or its stored trust
    /// policy does not parse (which then admits nobody).
    pub fn trust_policy(&self, role_arn: &str) -> Option<(String, Arc<Policy>)> {
        let snap = self.snapshot();
        let role = self.role_by_arn(&snap, role_arn)?;
        let trust = snap.trust.get(&lower(&role.name))?;
        Some((role.arn.clone(), Arc::clone(trust)))
    }

    /// Finds a role by ARN: exactly, or by name within this account.
    fn role_by_arn<'s>(&self, snap: &'s Snapshot, role_arn: &str) -> Option<&'s Role> {
        if let Some(r) = snap.dump.roles.iter().find(|r| r.arn == role_arn) {
            return Some(r);
        }
        let prefix = format!("arn:aws:iam::{}:role/", self.inner.account);
        if !role_arn.starts_with(&prefix) {
            return None;
        }
        snap.role(name_from_arn(role_arn)?)
            .filter(|r| r.arn.eq_ignore_ascii_case(role_arn))
    }

    /// True if a role with this ARN exists.
    pub fn role_exists(&self, role_arn: &str) -> bool {
        let snap = self.snapshot();
        self.role_by_arn(&snap, role_arn).is_some()
    }

    /// The parsed identity policies of the role an ARN names (as [`Identity::resolve_role`]
    /// finds it), or `None` without such a role: what a session of it would be allowed,
    /// before any session policy. No I/O.
    pub fn role_policies(&self, role_arn: &str) -> Option<Arc<[Arc<Policy>]>> {
        let snap = self.snapshot();
        let role = self.role_by_arn(&snap, role_arn)?;
        Some(
            snap.role_policies
                .get(&lower(&role.name))
                .cloned()
                .unwrap_or_else(|| snap.empty.clone()),
        )
    }

    /// The role an ARN names: exactly, or by name ignoring case within this account (IAM
    /// role names are unique ignoring case). Callers decide on the returned role's `arn`,
    /// the canonical spelling, never on the ARN as given, and store that.
    pub fn resolve_role(&self, role_arn: &str) -> Option<Role> {
        let snap = self.snapshot();
        self.role_by_arn(&snap, role_arn).cloned()
    }

    /// Whether the role's trust policy lets `service` (such as `lambda.amazonaws.com`)
    /// call `sts:AssumeRole` on it, evaluated with the trust policy as resource policy.
    pub fn role_trusts_service(
        &self,
        role_arn: &str,
        service: &str,
    ) -> Result<bool, IdentityError> {
        let snap = self.snapshot();
        let role = self.role_by_arn(&snap, role_arn).ok_or_else(|| {
            IdentityError::NoSuchEntity(format!("The role with ARN `{role_arn}` cannot be found."))
        })?;
        Ok(trusts_service(&snap, role, service))
    }

    // ---- inline and managed policies ----------------------------------------------------

    /// Creates or replaces an inline policy of a user or role.
    pub fn put_inline_policy(
        &self,
        holder: &Holder,
        name: &str,
        document: &str,
    ) -> Result<(), IdentityError> {
        validate_name("policy name", name, 128)?;
        let quota = match holder {
            Holder::User(_) => 2048,
            Holder::Role(_) => 10_240,
        };
        validate_policy(document, PolicyKind::Identity, quota)?;
        self.write(|snap, store| {
            store.put_inline_policy(&InlinePolicy {
                holder: canonical_holder(snap, holder)?,
                name: name.to_owned(),
                document: document.to_owned(),
            })
        })
    }

    /// The inline policies of a user or role.
    pub fn inline_policies(&self, holder: &Holder) -> Result<Vec<InlinePolicy>, IdentityError> {
        let snap = self.snapshot();
        let holder = canonical_holder(&snap, holder)?;
        Ok(snap.inline_of(&holder).cloned().collect())
    }

    /// Deletes an inline policy.
    pub fn delete_inline_policy(&self, holder: &Holder, name: &str) -> Result<(), IdentityError> {
        self.write(|snap, store| store.delete_inline_policy(&canonical_holder(snap, holder)?, name))
    }

    /// Creates a customer-managed policy (version `v1`).
    pub fn create_policy(
        &self,
        name: &str,
        path: Option<&str>,
        document: &str,
        description: Option<&str>,
    ) -> Result<ManagedPolicy, IdentityError> {
        validate_name("policy name", name, 128)?;
        let path = path.unwrap_or("/");
        validate_path(path)?;
        validate_policy(document, PolicyKind::Identity, 6144)?;
        let now = now_ms();
        let policy = ManagedPolicy {
            name: name.to_owned(),
            id: new_id("ANPA")?,
            arn: format!(
                "arn:aws:iam::{}:policy{}/{name}",
                self.inner.account,
                arn_path(path)
            ),
            path: path.to_owned(),
            document: document.to_owned(),
            description: description.map(str::to_owned),
            created_ms: now,
            default_version: "v1".into(),
            updated_ms: now,
        };
        self.write(|snap, store| {
            if snap
                .dump
                .policies
                .iter()
                .any(|p| !is_aws_managed(&p.arn) && p.name.eq_ignore_ascii_case(name))
            {
                return Err(IdentityError::EntityAlreadyExists(format!(
                    "A policy called `{name}` already exists. Duplicate names are not allowed."
                )));
            }
            store.create_managed_policy(&policy)
        })?;
        Ok(policy)
    }

    /// A managed policy by ARN.
    pub fn policy(&self, arn: &str) -> Option<ManagedPolicy> {
        self.snapshot().managed(arn).cloned()
    }

    /// Every managed policy, by name.
    pub fn managed_policies(&self) -> Vec<ManagedPolicy> {
        self.snapshot().dump.policies.clone()
    }

    /// How many users and roles a managed policy is attached to.
    pub fn attachment_count(&self, arn: &str) -> usize {
        self.snapshot().attachment_count(arn)
    }

    /// Deletes a managed policy attached to nothing.
    ///
    /// Callers: the IAM API, for a caller allowed `iam:DeletePolicy` on the ARN. Refuses
    /// AWS-managed policies, attached policies and policies with more than one version.
    pub fn delete_policy(&self, arn: &str) -> Result<(), IdentityError> {
        refuse_aws_managed(arn, "deleted")?;
        self.write(|_, store| store.delete_managed_policy(arn))
    }

    /// The versions of a managed policy, newest first (as `ListPolicyVersions` lists them).
    pub fn policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>, IdentityError> {
        let snap = self.snapshot();
        snap.managed(arn).ok_or_else(|| no_policy(arn))?;
        let mut versions: Vec<PolicyVersion> = snap.versions_of(arn).cloned().collect();
        versions.sort_by_key(|v| std::cmp::Reverse(version_number(&v.version_id)));
        Ok(versions)
    }

    /// One version of a managed policy, with the policy (to tell whether it is the default).
    pub fn policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<(ManagedPolicy, PolicyVersion), IdentityError> {
        let snap = self.snapshot();
        let policy = snap.managed(arn).ok_or_else(|| no_policy(arn))?;
        let version = snap
            .versions_of(arn)
            .find(|v| v.version_id == version_id)
            .ok_or_else(|| no_version(arn, version_id))?;
        Ok((policy.clone(), version.clone()))
    }

    /// Adds a version to a customer-managed policy (at most [`MAX_POLICY_VERSIONS`]), making
    /// it the default when `set_default`.
    ///
    /// Callers: the IAM API, for a caller allowed `iam:CreatePolicyVersion` on the ARN; with
    /// `set_default` this changes what every holder of the policy may do.
    pub fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_default: bool,
    ) -> Result<PolicyVersion, IdentityError> {
        refuse_aws_managed(arn, "changed")?;
        validate_policy(document, PolicyKind::Identity, 6144)?;
        let now = now_ms();
        let version_id = self.write(|_, store| {
            store.create_policy_version(arn, document, now, set_default, MAX_POLICY_VERSIONS)
        })?;
        Ok(PolicyVersion {
            policy_arn: arn.to_owned(),
            version_id,
            document: document.to_owned(),
            created_ms: now,
        })
    }

    /// Makes an existing version the default: the document every holder is then bound by.
    ///
    /// Callers: the IAM API, for a caller allowed `iam:SetDefaultPolicyVersion` on the ARN.
    pub fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<(), IdentityError> {
        refuse_aws_managed(arn, "changed")?;
        validate_version_id(version_id)?;
        self.write(|_, store| store.set_default_policy_version(arn, version_id, now_ms()))
    }

    /// Deletes a version other than the default.
    ///
    /// Callers: the IAM API, for a caller allowed `iam:DeletePolicyVersion` on the ARN.
    pub fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), IdentityError> {
        refuse_aws_managed(arn, "changed")?;
        validate_version_id(version_id)?;
        self.write(|_, store| store.delete_policy_version(arn, version_id))
    }

    /// Attaches a managed policy to a user or role.
    pub fn attach_policy(&self, holder: &Holder, arn: &str) -> Result<(), IdentityError> {
        self.write(|snap, store| {
            store.attach_policy(&canonical_holder(snap, holder)?, arn, MAX_ATTACHED_POLICIES)
        })
    }

    /// Detaches a managed policy from a user or role.
    pub fn detach_policy(&self, holder: &Holder, arn: &str) -> Result<(), IdentityError> {
        self.write(|snap, store| store.detach_policy(&canonical_holder(snap, holder)?, arn))
    }

    /// The managed policies attached to a user or role.
    pub fn attached_policies(&self, holder: &Holder) -> Result<Vec<ManagedPolicy>, IdentityError> {
        let snap = self.snapshot();
        let holder = canonical_holder(&snap, holder)?;
        Ok(snap.attached_to(&holder).cloned().collect())
    }

    // ---- the request path ---------------------------------------------------------------

    /// The parsed identity policies (inline, then attached managed) of a user, or of the
    /// role behind a role session. Empty for unknown principals. No I/O.
    pub fn policies_for(&self, principal: &Principal) -> Arc<[Arc<Policy>]> {
        let snap = self.snapshot();
        let map = match principal.kind {
            PrincipalKind::User => &snap.user_policies,
            PrincipalKind::AssumedRole { .. } => &snap.role_policies,
        };
        let name = &principal.name;
        let hit = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            map.get(&lower(name))
        } else {
            map.get(name.as_str())
        };
        hit.cloned().unwrap_or_else(|| snap.empty.clone())
    }

    // ---- role sessions ------------------------------------------------------------------

    /// Issues in-memory credentials for a session of `role_arn` (execution-role
    /// credentials of a function instance), valid for `ttl` (at most 12 hours), only if the
    /// role's trust policy lets [`EXECUTION_SERVICE`] assume it at this moment: as STS
    /// decides every `AssumeRole`, so a role that stopped trusting Lambda gives no new
    /// instance its credentials (sessions already issued live on until revoked or expired).
    /// Fails with [`IdentityError::NotTrusted`] then, `NoSuchEntity` without the role.
    ///
    /// Callers: the engine, for each instance it starts. Changes nothing durable.
    pub fn issue_role_session(
        &self,
        role_arn: &str,
        session_name: &str,
        ttl: Duration,
    ) -> Result<Credential, IdentityError> {
        validate_session_name(session_name)?;
        if ttl.is_zero() || ttl > MAX_SESSION_TTL {
            return Err(IdentityError::Validation(format!(
                "session duration of {} seconds must be between 1 and {}",
                ttl.as_secs(),
                MAX_SESSION_TTL.as_secs()
            )));
        }
        let snap = self.snapshot();
        let role = self.role_by_arn(&snap, role_arn).ok_or_else(|| {
            IdentityError::NoSuchEntity(format!("The role with ARN `{role_arn}` cannot be found."))
        })?;
        if !trusts_service(&snap, role, EXECUTION_SERVICE) {
            return Err(IdentityError::NotTrusted(format!(
                "The trust policy of role `{}` does not let {EXECUTION_SERVICE} assume it.",
                role.arn
            )));
        }
        let credential = self.session_credential(role, session_name, ttl, role.tags.clone())?;
        self.insert_session(Session {
            credential: credential.clone(),
            inline: None,
            policy_arns: Vec::new(),
            assumed: false,
        })?;
        Ok(credential)
    }

    /// STS `AssumeRole` for `caller`, after the API has authorized it (the role's trust
    /// policy admits the caller for `sts:AssumeRole`, and for `sts:TagSession` when tags
    /// are given). Validates the request as STS does and creates the session: the role's
    /// permissions, intersected with the session policies in every later decision, tagged
    /// with the role's tags overridden by the session tags.
    ///
    /// Callers: the STS API only. Changes nothing durable; the session lives in memory
    /// until it expires, its role is deleted, or the server stops.
    pub fn assume_role(
        &self,
        caller: &Principal,
        request: &AssumeRoleRequest,
    ) -> Result<AssumedRole, IdentityError> {
        validate_session_name(&request.session_name)?;
        let snap = self.snapshot();
        let role = self.role_by_arn(&snap, &request.role_arn).ok_or_else(|| {
            IdentityError::NoSuchEntity(format!(
                "The role with ARN `{}` cannot be found.",
                request.role_arn
            ))
        })?;
        let duration = request.duration_s.unwrap_or(3600);
        if duration < MIN_ASSUMED_SESSION_S {
            return Err(IdentityError::Validation(format!(
                "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to {MIN_ASSUMED_SESSION_S}"
            )));
        }
        if duration > role.max_session_duration_s {
            return Err(IdentityError::Validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .into(),
            ));
        }
        if matches!(caller.kind, PrincipalKind::AssumedRole { .. })
            && duration > ROLE_CHAINING_MAX_S
        {
            return Err(IdentityError::Validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
                    .into(),
            ));
        }
        let inline = match &request.policy {
            Some(doc) => {
                if doc.chars().count() > MAX_SESSION_POLICY_CHARS {
                    return Err(IdentityError::Validation(format!(
                        "1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to {MAX_SESSION_POLICY_CHARS}"
                    )));
                }
                Some(Arc::new(Policy::parse_as(doc, PolicyKind::Identity)?))
            }
            None => None,
        };
        if request.policy_arns.len() > MAX_SESSION_POLICY_ARNS {
            return Err(IdentityError::Validation(format!(
                "1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to {MAX_SESSION_POLICY_ARNS}"
            )));
        }
        if let Some(missing) = request
            .policy_arns
            .iter()
            .find(|arn| snap.managed(arn).is_none())
        {
            return Err(IdentityError::Validation(format!(
                "The policy `{missing}` named in PolicyArns does not exist."
            )));
        }
        validate_session_tags(&request.tags)?;
        let packed = request
            .policy
            .as_deref()
            .map_or(0, |d| d.chars().filter(|c| !c.is_whitespace()).count())
            + request.policy_arns.iter().map(String::len).sum::<usize>()
            + request
                .tags
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        let percent = packed
            .saturating_mul(100)
            .div_ceil(MAX_SESSION_POLICY_CHARS);
        if percent > 100 {
            return Err(IdentityError::PackedPolicyTooLarge(format!(
                "Packed policy consumes {percent}% of allotted space, please use smaller policy for session."
            )));
        }
        let given =
            request.policy.is_some() || !request.policy_arns.is_empty() || !request.tags.is_empty();
        let mut tags = role.tags.clone();
        tags.retain(|(k, _)| {
            !request
                .tags
                .iter()
                .any(|(sk, _)| sk.eq_ignore_ascii_case(k))
        });
        tags.extend(request.tags.iter().cloned());
        let credential = self.session_credential(
            role,
            &request.session_name,
            Duration::from_secs(u64::from(duration)),
            tags,
        )?;
        let session = Session {
            credential: credential.clone(),
            inline,
            policy_arns: request.policy_arns.clone(),
            assumed: true,
        };
        match &self.inner.shared {
            // Stored first: the store bounds the sessions of every node together.
            Some(shared) => {
                let record = SessionRecord {
                    secret_access_key: credential.secret_access_key.clone(),
                    session_token: credential.session_token.clone().unwrap_or_default(),
                    role_name: role.name.clone(),
                    role_id: role.id.clone(),
                    session_name: request.session_name.clone(),
                    tags: credential
                        .principal
                        .tags
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    policy: request.policy.clone(),
                    policy_arns: request.policy_arns.clone(),
                };
                let json = serde_json::to_string(&record)
                    .map_err(|_| IdentityError::Crypto("serializing a session"))?;
                shared.sessions.put(
                    &StoredSession {
                        seq: 0,
                        access_key_id: credential.access_key_id.clone(),
                        role_arn: role.arn.clone(),
                        expires_ms: credential.expires_at_ms.unwrap_or(0),
                        sealed: seal_secret(&self.inner.key, &credential.access_key_id, &json)?,
                    },
                    MAX_ASSUMED_SESSIONS,
                    now_ms(),
                )?;
                self.hold_session(session);
            }
            None => self.insert_session(session)?,
        }
        Ok(AssumedRole {
            credential,
            packed_policy_size: given.then(|| u32::try_from(percent).unwrap_or(100)),
        })
    }

    /// The principal of the live function-instance session whose session token is `token`
    /// (sessions made by `AssumeRole` are not looked at): how the Parameters and Secrets
    /// extension's endpoint knows its caller, which presents the token alone. Compared in
    /// constant time; a scan of the live sessions, which are bounded. No I/O.
    pub fn instance_session_by_token(&self, token: &str) -> Option<Principal> {
        if token.is_empty() {
            return None;
        }
        let now = now_ms();
        let sessions = self
            .inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        sessions
            .values()
            .filter(|s| !s.assumed && s.credential.expires_at_ms.is_some_and(|e| e > now))
            .find(|s| {
                s.credential.session_token.as_deref().is_some_and(|t| {
                    aws_lc_rs::constant_time::verify_slices_are_equal(
                        t.as_bytes(),
                        token.as_bytes(),
                    )
                    .is_ok()
                })
            })
            .map(|s| s.credential.principal.clone())
    }

    /// The session policies of a role session that has any (an `AssumeRole` session with
    /// `Policy` or `PolicyArns`); `None` for users and sessions without. Every decision for
    /// such a session must also be allowed by these: an empty list (its managed session
    /// policies deleted since) allows nothing. No I/O.
    pub fn session_policies(&self, principal: &Principal) -> Option<Vec<Arc<Policy>>> {
        let id = principal.session.as_deref()?;
        let sessions = self
            .inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let session = sessions.get(id)?;
        if !session.has_session_policies() {
            return None;
        }
        let snap = self.snapshot();
        let mut out: Vec<Arc<Policy>> = session.inline.iter().cloned().collect();
        out.extend(
            session
                .policy_arns
                .iter()
                .filter_map(|arn| snap.managed.get(arn).cloned()),
        );
        Some(out)
    }

    fn session_credential(
        &self,
        role: &Role,
        session_name: &str,
        ttl: Duration,
        tags: Tags,
    ) -> Result<Credential, IdentityError> {
        let now = now_ms();
        let access_key_id = new_id("ASIA")?;
        Ok(Credential {
            access_key_id: access_key_id.clone(),
            secret_access_key: new_secret()?,
            session_token: Some(random_chars(96, ALNUM)?),
            expires_at_ms: Some(
                now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
            ),
            principal: self.session_principal(
                role,
                session_name,
                tags.into_iter().collect(),
                &access_key_id,
            ),
        })
    }

    /// The principal of a session of `role` whose temporary key is `access_key_id`.
    fn session_principal(
        &self,
        role: &Role,
        session_name: &str,
        tags: BTreeMap<String, String>,
        access_key_id: &str,
    ) -> Principal {
        Principal {
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{session_name}",
                self.inner.account, role.name
            ),
            account: self.inner.account.clone(),
            name: role.name.clone(),
            id: format!("{}:{session_name}", role.id),
            kind: PrincipalKind::AssumedRole {
                role_arn: role.arn.clone(),
                session_name: session_name.to_owned(),
            },
            tags,
            session: Some(access_key_id.to_owned()),
        }
    }

    /// Stores a session after purging expired ones; refuses an `AssumeRole` session beyond
    /// [`MAX_ASSUMED_SESSIONS`].
    fn insert_session(&self, session: Session) -> Result<(), IdentityError> {
        let now = now_ms();
        let mut sessions = self
            .inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.credential.expires_at_ms.is_some_and(|e| e > now));
        if session.assumed
            && sessions.values().filter(|s| s.assumed).count() >= MAX_ASSUMED_SESSIONS
        {
            return Err(IdentityError::LimitExceeded(format!(
                "Warden holds at most {MAX_ASSUMED_SESSIONS} sessions created by AssumeRole; try again when some have expired."
            )));
        }
        sessions.insert(session.credential.access_key_id.clone(), session);
        Ok(())
    }

    /// Holds a session the shared store has already admitted (and so bounded), after
    /// purging expired ones.
    fn hold_session(&self, session: Session) {
        let now = now_ms();
        let mut sessions = self
            .inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.credential.expires_at_ms.is_some_and(|e| e > now));
        sessions.insert(session.credential.access_key_id.clone(), session);
    }

    /// Ends a role session at once; true if it existed.
    pub fn revoke_session(&self, access_key_id: &str) -> bool {
        self.inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(access_key_id)
            .is_some()
    }

    /// Number of role sessions held (expired ones are purged on the next issue).
    pub fn session_count(&self) -> usize {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn validate_session_name(session_name: &str) -> Result<(), IdentityError> {
    if session_name.len() < 2 {
        return Err(IdentityError::Validation(format!(
            "role session name `{session_name}` must be 2 to 64 characters of letters, digits and +=,.@_-"
        )));
    }
    validate_name("role session name", session_name, 64)
}

/// STS's rules for session tags: at most 50, keys unique ignoring case.
fn validate_session_tags(tags: &Tags) -> Result<(), IdentityError> {
    validate_tags(tags)?;
    let mut seen = HashSet::new();
    for (k, _) in tags {
        if !seen.insert(k.to_ascii_lowercase()) {
            return Err(IdentityError::Validation(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.".into(),
            ));
        }
    }
    Ok(())
}

impl CredentialSource for Identity {
    fn lookup(&self, access_key_id: &str) -> Option<Credential> {
        if access_key_id.starts_with("ASIA") {
            let sessions = self
                .inner
                .sessions
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let c = &sessions.get(access_key_id)?.credential;
            return match c.expires_at_ms {
                Some(e) if e > now_ms() => Some(c.clone()),
                _ => None,
            };
        }
        self.snapshot().credentials.get(access_key_id).cloned()
    }
}

/// Whether `role`'s trust policy lets the service principal `service` call
/// `sts:AssumeRole` on it (the trust policy evaluated as the role's resource policy). A
/// role whose stored trust policy no longer parses trusts no one.
fn trusts_service(snap: &Snapshot, role: &Role, service: &str) -> bool {
    let Some(trust) = snap.trust.get(&lower(&role.name)) else {
        return false;
    };
    let request = Request {
        principal: Some(service.to_owned()),
        action: "sts:AssumeRole".into(),
        resource: role.arn.clone(),
        context: HashMap::new(),
    };
    evaluate(&request, &[], Some(trust)).is_allowed()
}

fn no_user(name: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("The user with name `{name}` cannot be found."))
}

fn no_role(name: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("The role with name `{name}` cannot be found."))
}

/// The stored spelling of a user name (names are unique ignoring case).
fn canonical_user(snap: &Snapshot, name: &str) -> Result<String, IdentityError> {
    snap.user(name)
        .map(|u| u.name.clone())
        .ok_or_else(|| no_user(name))
}

fn canonical_role(snap: &Snapshot, name: &str) -> Result<String, IdentityError> {
    snap.role(name)
        .map(|r| r.name.clone())
        .ok_or_else(|| no_role(name))
}

fn canonical_holder(snap: &Snapshot, holder: &Holder) -> Result<Holder, IdentityError> {
    Ok(match holder {
        Holder::User(n) => Holder::User(canonical_user(snap, n)?),
        Holder::Role(n) => Holder::Role(canonical_role(snap, n)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "123456789012";
    const ALLOW_INVOKE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":"*"}]}"#;
    const TRUST_LAMBDA: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

    fn open() -> (tempfile::TempDir, Identity) {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::open(dir.path(), ACCOUNT).unwrap();
        (dir, id)
    }

    #[test]
    fn refresh_rebuilds_only_when_another_writer_moved_the_generation() {
        // Two services on one embedded file, as two processes would open it.
        let (dir, a) = open();
        let key = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
        let b = Identity::open_with_key(dir.path(), key, ACCOUNT).unwrap();
        assert!(!a.refresh().unwrap(), "a's own writes are in its snapshot");
        let (key_id, _) = a.ensure_bootstrap_admin().unwrap().unwrap();
        assert!(!a.refresh().unwrap());
        assert!(b.lookup(&key_id).is_none());
        assert!(b.refresh().unwrap());
        assert!(b.lookup(&key_id).is_some());
        assert!(!b.refresh().unwrap(), "nothing changed since");
        // A revocation through b reaches a at its next refresh.
        b.delete_access_key(ADMIN_USER, &key_id).unwrap();
        assert!(a.lookup(&key_id).is_some());
        assert!(a.refresh().unwrap());
        assert!(a.lookup(&key_id).is_none());
    }

    #[test]
    fn bootstrap_admin_is_created_once_and_survives_restart() {
        let (dir, id) = open();
        let (key_id, secret) = id.ensure_bootstrap_admin().unwrap().unwrap();
        assert!(key_id.starts_with("AKIA") && key_id.len() == 20);
        assert_eq!(id.ensure_bootstrap_admin().unwrap(), None);
        let c = id.lookup(&key_id).unwrap();
        assert_eq!(c.secret_access_key, secret);
        assert_eq!(c.principal.arn, "arn:aws:iam::123456789012:user/admin");
        assert!(c.principal.id.starts_with("AIDA"));
        drop(id);
        let id = Identity::open(dir.path(), ACCOUNT).unwrap();
        assert_eq!(id.ensure_bootstrap_admin().unwrap(), None);
        let c = id.lookup(&key_id).unwrap();
        assert_eq!(c.secret_access_key, secret);
        let policies = id.policies_for(&c.principal);
        assert_eq!(policies.len(), 1);
        let req = Request {
            principal: Some(c.principal.arn.clone()),
            action: "iam:CreateUser".into(),
            resource: "arn:aws:iam::123456789012:user/x".into(),
            context: HashMap::new(),
        };
        let refs: Vec<&Policy> = policies.iter().map(|p| &**p).collect();
        assert!(evaluate(&req, &refs, None).is_allowed());
        // The secret is sealed at rest: not in the database file.
        let db = std::fs::read(dir.path().join("identity.db")).unwrap();
        let wal = std::fs::read(dir.path().join("identity.db-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
    }

    #[test]
    fn a_replaced_master_key_refuses_to_open() {
        let (dir, id) = open();
        id.ensure_bootstrap_admin().unwrap();
        drop(id);
        std::fs::remove_file(dir.path().join("master.key")).unwrap();
        let e = Identity::open(dir.path(), ACCOUNT).unwrap_err();
        assert!(matches!(e, IdentityError::Decrypt { .. }), "{e}");
    }

    #[test]
    fn key_lifecycle_updates_the_cache() {
        let (_d, id) = open();
        id.create_user("bob", None, vec![]).unwrap();
        let (k1, s1) = id.create_access_key("BOB").unwrap();
        assert_eq!(k1.user_name, "bob");
        assert_eq!(id.lookup(&k1.id).unwrap().secret_access_key, s1);
        let (k2, _) = id.create_access_key("bob").unwrap();
        assert_eq!(
            id.create_access_key("bob").unwrap_err().code(),
            "LimitExceeded"
        );
        id.set_access_key_status("bob", &k1.id, KeyStatus::Inactive)
            .unwrap();
        assert!(id.lookup(&k1.id).is_none());
        id.set_access_key_status("bob", &k1.id, KeyStatus::Active)
            .unwrap();
        assert!(id.lookup(&k1.id).is_some());
        id.delete_access_key("bob", &k1.id).unwrap();
        assert!(id.lookup(&k1.id).is_none());
        assert_eq!(id.access_keys("bob").unwrap().len(), 1);
        assert_eq!(id.key_owner(&k2.id).as_deref(), Some("bob"));
        assert!(id.lookup("AKIANOSUCHKEY0000000").is_none());
    }

    #[test]
    fn policies_for_follows_inline_and_attached_changes() {
        let (_d, id) = open();
        let u = id
            .create_user("carol", Some("/eng/"), vec![("team".into(), "x".into())])
            .unwrap();
        assert_eq!(u.arn, "arn:aws:iam::123456789012:user/eng/carol");
        let (k, _) = id.create_access_key("carol").unwrap();
        let p = id.lookup(&k.id).unwrap().principal;
        assert_eq!(p.tags.get("team").map(String::as_str), Some("x"));
        assert_eq!(id.policies_for(&p).len(), 0);
        id.put_inline_policy(&Holder::User("Carol".into()), "inv", ALLOW_INVOKE)
            .unwrap();
        assert_eq!(id.policies_for(&p).len(), 1);
        let m = id.create_policy("m", None, ALLOW_INVOKE, None).unwrap();
        assert_eq!(m.arn, "arn:aws:iam::123456789012:policy/m");
        id.attach_policy(&Holder::User("carol".into()), &m.arn)
            .unwrap();
        assert_eq!(id.policies_for(&p).len(), 2);
        assert_eq!(id.attachment_count(&m.arn), 1);
        id.detach_policy(&Holder::User("carol".into()), &m.arn)
            .unwrap();
        id.delete_inline_policy(&Holder::User("carol".into()), "inv")
            .unwrap();
        assert_eq!(id.policies_for(&p).len(), 0);
        id.tag_user("carol", &vec![("team".into(), "y".into())])
            .unwrap();
        let p = id.lookup(&k.id).unwrap().principal;
        assert_eq!(p.tags.get("team").map(String::as_str), Some("y"));
    }

    #[test]
    fn malformed_policies_are_refused_with_the_grammar_message() {
        let (_d, id) = open();
        id.create_user("dave", None, vec![]).unwrap();
        let e = id
            .put_inline_policy(
                &Holder::User("dave".into()),
                "p",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*"}]}"#,
            )
            .unwrap_err();
        assert_eq!(e.code(), "MalformedPolicyDocument");
        let e = id
            .create_role("r", None, ALLOW_INVOKE, None, None, vec![])
            .unwrap_err();
        assert_eq!(e.code(), "MalformedPolicyDocument", "{e}");
        assert_eq!(
            id.create_user("bad name", None, vec![])
                .unwrap_err()
                .to_string(),
            "user name `bad name` must be 1 to 64 characters of letters, digits and +=,.@_-"
        );
    }

    #[test]
    fn role_sessions_carry_the_role_and_expire_or_are_revoked() {
        let (_d, id) = open();
        let role = id
            .create_role(
                "exec",
                None,
                TRUST_LAMBDA,
                Some("d"),
                None,
                vec![("k".into(), "v".into())],
            )
            .unwrap();
        id.put_inline_policy(&Holder::Role("exec".into()), "inv", ALLOW_INVOKE)
            .unwrap();
        assert!(id.role_exists(&role.arn));
        assert!(!id.role_exists("arn:aws:iam::123456789012:role/nope"));
        let c = id
            .issue_role_session(&role.arn, "fn-1", Duration::from_secs(60))
            .unwrap();
        assert!(c.access_key_id.starts_with("ASIA"));
        assert_eq!(
            c.principal.arn,
            "arn:aws:sts::123456789012:assumed-role/exec/fn-1"
        );
        assert_eq!(c.principal.id, format!("{}:fn-1", role.id));
        assert!(c.session_token.is_some());
        let looked = id.lookup(&c.access_key_id).unwrap();
        assert_eq!(looked, c);
        // The extension's endpoint finds an instance session by its token alone.
        let token = c.session_token.clone().unwrap();
        assert_eq!(
            id.instance_session_by_token(&token),
            Some(c.principal.clone())
        );
        assert!(id.instance_session_by_token(&token[1..]).is_none());
        assert!(id.instance_session_by_token("").is_none());
        assert_eq!(id.policies_for(&c.principal).len(), 1);
        assert!(id.revoke_session(&c.access_key_id));
        assert!(id.lookup(&c.access_key_id).is_none());
        assert!(id.instance_session_by_token(&token).is_none(), "revoked");
        assert!(!id.revoke_session(&c.access_key_id));

        // Expiry: a session whose deadline has passed is refused and purged.
        let c = id
            .issue_role_session(&role.arn, "fn-2", Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(id.lookup(&c.access_key_id).is_none());
        let c3 = id
            .issue_role_session(&role.arn, "fn-3", Duration::from_secs(60))
            .unwrap();
        assert_eq!(id.session_count(), 1);

        // Deleting the role ends its sessions.
        id.delete_inline_policy(&Holder::Role("exec".into()), "inv")
            .unwrap();
        id.delete_role("exec").unwrap();
        assert!(id.lookup(&c3.access_key_id).is_none());
        assert_eq!(
            id.issue_role_session(&role.arn, "fn", Duration::from_secs(1))
                .unwrap_err()
                .code(),
            "NoSuchEntity"
        );
    }

    #[test]
    fn session_parameters_are_validated() {
        let (_d, id) = open();
        let role = id
            .create_role("exec", None, TRUST_LAMBDA, None, None, vec![])
            .unwrap();
        for (name, ttl) in [("x", 60), ("bad name", 60), ("ok", 0), ("ok", 43_201)] {
            let e = id
                .issue_role_session(&role.arn, name, Duration::from_secs(ttl))
                .unwrap_err();
            assert_eq!(e.code(), "ValidationError", "{name} {ttl}");
        }
    }

    #[test]
    fn trust_policy_decides_which_service_may_assume_the_role() {
        let (_d, id) = open();
        let role = id
            .create_role("exec", Some("/svc/"), TRUST_LAMBDA, None, None, vec![])
            .unwrap();
        assert_eq!(role.arn, "arn:aws:iam::123456789012:role/svc/exec");
        assert!(id
            .role_trusts_service(&role.arn, "lambda.amazonaws.com")
            .unwrap());
        assert!(!id
            .role_trusts_service(&role.arn, "ec2.amazonaws.com")
            .unwrap());
        let deny = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"Service":["lambda.amazonaws.com","ec2.amazonaws.com"]},"Action":"sts:AssumeRole"},
            {"Effect":"Deny","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:*"}]}"#;
        id.update_trust_policy("exec", deny).unwrap();
        assert!(!id
            .role_trusts_service(&role.arn, "lambda.amazonaws.com")
            .unwrap());
        assert!(id
            .role_trusts_service(&role.arn, "ec2.amazonaws.com")
            .unwrap());
        let other_action = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:TagSession"}]}"#;
        id.update_trust_policy("exec", other_action).unwrap();
        assert!(!id
            .role_trusts_service(&role.arn, "lambda.amazonaws.com")
            .unwrap());
        assert_eq!(
            id.role_trusts_service(
                "arn:aws:iam::123456789012:role/none",
                "lambda.amazonaws.com"
            )
            .unwrap_err()
            .code(),
            "NoSuchEntity"
        );
    }

    #[test]
    fn sessions_are_issued_only_while_the_role_trusts_lambda() {
        let (_d, id) = open();
        let role = id
            .create_role("exec", None, TRUST_LAMBDA, None, None, vec![])
            .unwrap();
        let live = id
            .issue_role_session(&role.arn, "fn-1", Duration::from_secs(60))
            .unwrap();
        let ec2 = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        id.update_trust_policy("exec", ec2).unwrap();
        let e = id
            .issue_role_session(&role.arn, "fn-2", Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(e, IdentityError::NotTrusted(_)), "{e}");
        assert_eq!(e.code(), "AccessDenied");
        assert_eq!(id.session_count(), 1, "nothing was issued");
        // A session issued before the change lives on, as STS sessions do.
        assert!(id.lookup(&live.access_key_id).is_some());
        // Whatever the ARN's spelling, the trust policy decides.
        let shouted = "arn:aws:iam::123456789012:role/EXEC";
        assert!(id
            .issue_role_session(shouted, "fn-3", Duration::from_secs(60))
            .is_err());
        id.update_trust_policy("exec", TRUST_LAMBDA).unwrap();
        let c = id
            .issue_role_session(shouted, "fn-4", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            c.principal.kind,
            PrincipalKind::AssumedRole {
                role_arn: role.arn.clone(),
                session_name: "fn-4".into()
            }
        );
    }

    #[test]
    fn roles_resolve_to_their_canonical_arn() {
        let (_d, id) = open();
        let role = id
            .create_role(
                "App-Runner",
                Some("/svc/"),
                TRUST_LAMBDA,
                None,
                None,
                vec![],
            )
            .unwrap();
        for spelling in [
            "arn:aws:iam::123456789012:role/svc/App-Runner",
            "arn:aws:iam::123456789012:role/svc/app-runner",
            "arn:aws:iam::123456789012:role/SVC/APP-RUNNER",
        ] {
            assert_eq!(
                id.resolve_role(spelling).unwrap().arn,
                role.arn,
                "{spelling}"
            );
        }
        for other in [
            "arn:aws:iam::123456789012:role/App-Runner",
            "arn:aws:iam::123456789012:role/other/app-runner",
            "arn:aws:iam::210987654321:role/svc/App-Runner",
            "arn:aws-cn:iam::123456789012:role/svc/App-Runner",
        ] {
            assert!(id.resolve_role(other).is_none(), "{other}");
        }
    }

    #[test]
    fn clones_share_one_cache() {
        let (_d, id) = open();
        let other = id.clone();
        id.create_user("erin", None, vec![]).unwrap();
        let (k, _) = id.create_access_key("erin").unwrap();
        assert!(other.lookup(&k.id).is_some());
        let source: Arc<dyn CredentialSource> = Arc::new(other);
        assert!(source.lookup(&k.id).is_some());
    }

    fn decide(id: &Identity, p: &Principal, action: &str) -> bool {
        let policies = id.policies_for(p);
        let refs: Vec<&Policy> = policies.iter().map(|p| &**p).collect();
        let req = Request {
            principal: Some(p.arn.clone()),
            action: action.into(),
            resource: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            context: HashMap::new(),
        };
        let base = evaluate(&req, &refs, None).is_allowed();
        match id.session_policies(p) {
            Some(session) => {
                let refs: Vec<&Policy> = session.iter().map(|p| &**p).collect();
                base && evaluate(&req, &refs, None).is_allowed()
            }
            None => base,
        }
    }

    const BASIC: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";

    #[test]
    fn aws_managed_policies_are_installed_once_and_cannot_be_changed() {
        let (dir, id) = open();
        let basic = id.policy(BASIC).unwrap();
        assert_eq!(basic.path, "/service-role/");
        assert_eq!(basic.default_version, "v1");
        assert!(basic.document.contains("logs:PutLogEvents"));
        assert_eq!(id.policy_versions(BASIC).unwrap().len(), 1);
        drop(id);
        std::thread::sleep(Duration::from_millis(5));
        let id = Identity::open(dir.path(), ACCOUNT).unwrap();
        // Unchanged, so not rewritten at the second start.
        assert_eq!(id.policy(BASIC).unwrap(), basic);
        for e in [
            id.delete_policy(BASIC).unwrap_err(),
            id.create_policy_version(BASIC, ALLOW_INVOKE, true)
                .unwrap_err(),
            id.set_default_policy_version(BASIC, "v1").unwrap_err(),
            id.delete_policy_version(BASIC, "v1").unwrap_err(),
        ] {
            assert_eq!(e.code(), "AccessDenied", "{e}");
        }
        // Attachable, and a customer policy may reuse one of their names.
        id.create_role("exec", None, TRUST_LAMBDA, None, None, vec![])
            .unwrap();
        id.attach_policy(&Holder::Role("exec".into()), BASIC)
            .unwrap();
        assert_eq!(id.attachment_count(BASIC), 1);
        let mine = id
            .create_policy("AWSLambdaBasicExecutionRole", None, ALLOW_INVOKE, None)
            .unwrap();
        assert_eq!(
            id.create_policy(
                "awslambdabasicexecutionrole",
                Some("/x/"),
                ALLOW_INVOKE,
                None
            )
            .unwrap_err()
            .code(),
            "EntityAlreadyExists"
        );
        assert_ne!(mine.arn, BASIC);
    }

    #[test]
    fn decisions_follow_the_default_policy_version() {
        let (_d, id) = open();
        id.create_user("u", None, vec![]).unwrap();
        let (k, _) = id.create_access_key("u").unwrap();
        let u = id.lookup(&k.id).unwrap().principal;
        let p = id.create_policy("p", None, ALLOW_INVOKE, None).unwrap();
        id.attach_policy(&Holder::User("u".into()), &p.arn).unwrap();
        assert!(decide(&id, &u, "lambda:InvokeFunction"));
        let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
        let v2 = id.create_policy_version(&p.arn, deny, false).unwrap();
        assert_eq!(v2.version_id, "v2");
        assert!(
            decide(&id, &u, "lambda:InvokeFunction"),
            "v1 is still the default"
        );
        id.set_default_policy_version(&p.arn, "v2").unwrap();
        assert!(!decide(&id, &u, "lambda:InvokeFunction"));
        assert_eq!(
            id.delete_policy_version(&p.arn, "v2").unwrap_err().code(),
            "DeleteConflict"
        );
        assert_eq!(
            id.set_default_policy_version(&p.arn, "2")
                .unwrap_err()
                .code(),
            "ValidationError"
        );
        let listed: Vec<String> = id
            .policy_versions(&p.arn)
            .unwrap()
            .into_iter()
            .map(|v| v.version_id)
            .collect();
        assert_eq!(listed, ["v2", "v1"]);
        for _ in 0..3 {
            id.create_policy_version(&p.arn, ALLOW_INVOKE, false)
                .unwrap();
        }
        assert_eq!(
            id.create_policy_version(&p.arn, ALLOW_INVOKE, false)
                .unwrap_err()
                .code(),
            "LimitExceeded"
        );
        assert_eq!(
            id.create_policy_version(&p.arn, "{}", false)
                .unwrap_err()
                .code(),
            "MalformedPolicyDocument"
        );
    }

    fn assume(role_arn: &str, name: &str) -> AssumeRoleRequest {
        AssumeRoleRequest {
            role_arn: role_arn.into(),
            session_name: name.into(),
            ..AssumeRoleRequest::default()
        }
    }

    #[test]
    fn assume_role_validates_like_sts_and_carries_session_policies_and_tags() {
        let (_d, id) = open();
        let role = id
            .create_role(
                "r",
                None,
                TRUST_LAMBDA,
                None,
                None,
                vec![("team".into(), "a".into()), ("env".into(), "dev".into())],
            )
            .unwrap();
        let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:*","Resource":"*"}]}"#;
        id.put_inline_policy(&Holder::Role("r".into()), "all", all)
            .unwrap();
        id.create_user("u", None, vec![]).unwrap();
        let (k, _) = id.create_access_key("u").unwrap();
        let user = id.lookup(&k.id).unwrap().principal;
        let code = |r: AssumeRoleRequest, caller: &Principal| {
            id.assume_role(caller, &r).unwrap_err().code()
        };
        let with = |f: &dyn Fn(&mut AssumeRoleRequest)| {
            let mut r = assume(&role.arn, "s1");
            f(&mut r);
            r
        };
        assert_eq!(
            code(with(&|r| r.duration_s = Some(899)), &user),
            "ValidationError"
        );
        assert_eq!(
            code(with(&|r| r.duration_s = Some(3601)), &user),
            "ValidationError"
        );
        assert_eq!(
            code(with(&|r| r.session_name = "a".into()), &user),
            "ValidationError"
        );
        assert_eq!(
            code(with(&|r| r.policy = Some("{}".into())), &user),
            "MalformedPolicyDocument"
        );
        assert_eq!(
            code(
                with(&|r| r.policy_arns = vec!["arn:aws:iam::123456789012:policy/none".into()]),
                &user
            ),
            "ValidationError"
        );
        assert_eq!(
            code(with(&|r| r.policy_arns = vec![BASIC.into(); 11]), &user),
            "ValidationError"
        );
        assert_eq!(
            code(
                with(&|r| r.tags = vec![("K".into(), "1".into()), ("k".into(), "2".into())]),
                &user
            ),
            "ValidationError"
        );
        assert_eq!(
            code(
                with(&|r| {
                    r.tags = (0..20)
                        .map(|i| (format!("{i:0>100}"), "v".repeat(200)))
                        .collect()
                }),
                &user
            ),
            "PackedPolicyTooLarge"
        );
        assert_eq!(
            code(assume("arn:aws:iam::123456789012:role/none", "s1"), &user),
            "NoSuchEntity"
        );

        // A plain session: the role's permissions and tags, no session policies.
        let plain = id.assume_role(&user, &assume(&role.arn, "plain")).unwrap();
        assert_eq!(plain.packed_policy_size, None);
        // Its session token names no instance session: the extension's endpoint refuses it.
        let token = plain.credential.session_token.clone().unwrap();
        assert!(id.instance_session_by_token(&token).is_none());
        let p = &plain.credential.principal;
        assert_eq!(
            p.session.as_deref(),
            Some(plain.credential.access_key_id.as_str())
        );
        assert!(id.session_policies(p).is_none());
        assert!(decide(&id, p, "lambda:ListFunctions"));
        assert!(id.session_policies(&user).is_none());
        let expires = plain.credential.expires_at_ms.unwrap() - now_ms();
        assert!((3_590_000..=3_600_000).contains(&expires), "{expires}");

        // Session policies intersect; session tags override the role's.
        let list = id
            .create_policy(
                "list",
                None,
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["lambda:ListFunctions","iam:ListUsers"],"Resource":"*"}]}"#,
                None,
            )
            .unwrap();
        let narrowed = id
            .assume_role(
                &user,
                &with(&|r| {
                    r.policy = Some(
                        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:List*","Resource":"*"}]}"#
                            .into(),
                    );
                    r.policy_arns = vec![list.arn.clone()];
                    r.tags = vec![("TEAM".into(), "b".into())];
                }),
            )
            .unwrap();
        assert!(narrowed
            .packed_policy_size
            .is_some_and(|p| p > 0 && p <= 100));
        let np = &narrowed.credential.principal;
        assert_eq!(id.session_policies(np).unwrap().len(), 2);
        assert!(decide(&id, np, "lambda:ListFunctions"));
        assert!(!decide(&id, np, "lambda:InvokeFunction"));
        assert!(
            !decide(&id, np, "iam:ListUsers"),
            "the role does not allow it"
        );
        let tags: Vec<(&str, &str)> = np
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(tags, [("TEAM", "b"), ("env", "dev")]);
        // A deleted managed session policy grants nothing any more; the inline one remains.
        id.delete_policy(&list.arn).unwrap();
        assert_eq!(id.session_policies(np).unwrap().len(), 1);

        // Role chaining: at most an hour.
        id.update_role("r", None, Some(7200)).unwrap();
        assert!(id
            .assume_role(&user, &with(&|r| r.duration_s = Some(7200)))
            .is_ok());
        assert_eq!(
            code(with(&|r| r.duration_s = Some(3601)), np),
            "ValidationError"
        );
        assert!(id
            .assume_role(np, &with(&|r| r.duration_s = Some(3600)))
            .is_ok());
        // Deleting the role ends its sessions.
        id.delete_inline_policy(&Holder::Role("r".into()), "all")
            .unwrap();
        id.delete_role("r").unwrap();
        assert!(id.lookup(&narrowed.credential.access_key_id).is_none());
        assert!(id.session_policies(np).is_none());
    }

    #[test]
    fn assume_role_sessions_are_bounded() {
        let (_d, id) = open();
        let role = id
            .create_role("r", None, TRUST_LAMBDA, None, None, vec![])
            .unwrap();
        id.create_user("u", None, vec![]).unwrap();
        let (k, _) = id.create_access_key("u").unwrap();
        let user = id.lookup(&k.id).unwrap().principal;
        for _ in 0..MAX_ASSUMED_SESSIONS {
            id.assume_role(&user, &assume(&role.arn, "s1")).unwrap();
        }
        let e = id.assume_role(&user, &assume(&role.arn, "s1")).unwrap_err();
        assert_eq!(e.code(), "LimitExceeded", "{e}");
        // Instance sessions are not counted against it.
        id.issue_role_session(&role.arn, "fn", Duration::from_secs(60))
            .unwrap();
    }

    #[test]
    fn key_use_is_kept_in_memory_until_flushed() {
        let (dir, id) = open();
        id.create_user("u", None, vec![]).unwrap();
        let (k, _) = id.create_access_key("u").unwrap();
        assert_eq!(id.key_last_used(&k.id), Some(("u".into(), None)));
        id.record_key_use(&k.id, "lambda", "us-east-1");
        id.record_key_use(&k.id, "iam", "us-east-1");
        id.record_key_use("ASIANOTTRACKED000000", "iam", "us-east-1");
        let (_, used) = id.key_last_used(&k.id).unwrap();
        assert_eq!(used.as_ref().map(|u| u.service.as_str()), Some("iam"));
        // Nothing written yet.
        assert_eq!(id.inner.store.load().unwrap().keys[0].last_used_ms, None);
        assert_eq!(id.flush_key_usage().unwrap(), 1);
        assert_eq!(id.flush_key_usage().unwrap(), 0, "nothing new to write");
        let stored = &id.inner.store.load().unwrap().keys[0];
        assert_eq!(stored.last_used_service.as_deref(), Some("iam"));
        let at = stored.last_used_ms;
        drop(id);
        let id = Identity::open(dir.path(), ACCOUNT).unwrap();
        let (_, used) = id.key_last_used(&k.id).unwrap();
        assert_eq!(
            used.map(|u| (u.at_ms, u.service)),
            at.map(|a| (a, "iam".into()))
        );
        assert_eq!(id.key_last_used("AKIANOSUCHKEY0000000"), None);
    }

    #[test]
    fn roles_and_users_are_updated_and_untagged() {
        let (_d, id) = open();
        id.create_role(
            "r",
            None,
            TRUST_LAMBDA,
            Some("d"),
            None,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())],
        )
        .unwrap();
        let r = id.update_role("R", Some(None), Some(43_200)).unwrap();
        assert_eq!((r.description, r.max_session_duration_s), (None, 43_200));
        let r = id.update_role("r", Some(Some("new")), None).unwrap();
        assert_eq!(
            (r.description.as_deref(), r.max_session_duration_s),
            (Some("new"), 43_200)
        );
        assert_eq!(
            id.update_role("r", None, Some(43_201)).unwrap_err().code(),
            "ValidationError"
        );
        assert_eq!(
            id.update_role("none", None, Some(3600)).unwrap_err().code(),
            "NoSuchEntity"
        );
        id.untag_role("r", &["a".into(), "zzz".into()]).unwrap();
        assert_eq!(id.role("r").unwrap().tags, vec![("b".into(), "2".into())]);
        assert_eq!(
            id.untag_role("r", &[]).unwrap_err().code(),
            "ValidationError"
        );
        id.create_user("u", None, vec![("x".into(), "1".into())])
            .unwrap();
        id.untag_user("u", &["x".into()]).unwrap();
        assert!(id.user("u").unwrap().tags.is_empty());
    }
}

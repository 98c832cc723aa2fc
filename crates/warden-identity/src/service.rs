//! The identity service: validated writes through an [`IdentityStore`], and an in-memory
//! snapshot (credentials with decrypted secrets, parsed policies) rebuilt after each write,
//! so the per-request paths ([`CredentialSource::lookup`], [`Identity::policies_for`]) take
//! one read lock and a hash lookup and never touch the disk.
//!
//! Role sessions (execution-role credentials of function instances) live only in memory:
//! a restart ends every instance, and with it every session.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warden_iam::{evaluate, Policy, PolicyKind, Request};
use warden_types::identity::{Credential, CredentialSource, Principal, PrincipalKind};

use crate::crypto::{new_id, new_secret, random_chars, MasterKey, ALNUM};
use crate::error::IdentityError;
use crate::store::{
    Dump, Holder, IdentityStore, InlinePolicy, KeyStatus, ManagedPolicy, Role, SqliteIdentityStore,
    StoredKey, Tags, User,
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
    store: Box<dyn IdentityStore>,
    key: MasterKey,
    account: String,
    /// Serialises write + snapshot rebuild, so snapshots are installed in write order.
    write_lock: Mutex<()>,
    snapshot: RwLock<Arc<Snapshot>>,
    sessions: RwLock<HashMap<String, Credential>>,
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
        let secret = key.open(&k.id, &k.sealed_secret)?;
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
    let managed: HashMap<&str, Arc<Policy>> = dump
        .policies
        .iter()
        .filter_map(|p| {
            parse_stored(&p.document, PolicyKind::Identity, &p.arn).map(|x| (p.arn.as_str(), x))
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
        let store = SqliteIdentityStore::open(&data_dir.join("identity.db"))?;
        Identity::with_store(Box::new(store), key, account)
    }

    /// Builds the service on any store, loading and decrypting everything once. Fails if a
    /// stored secret does not decrypt (a wrong or replaced master key).
    pub fn with_store(
        store: Box<dyn IdentityStore>,
        key: MasterKey,
        account: &str,
    ) -> Result<Self, IdentityError> {
        let snapshot = build_snapshot(store.load()?, &key, account)?;
        Ok(Identity {
            inner: Arc::new(Inner {
                store,
                key,
                account: account.to_owned(),
                write_lock: Mutex::new(()),
                snapshot: RwLock::new(Arc::new(snapshot)),
                sessions: RwLock::new(HashMap::new()),
            }),
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
                sealed_secret: self.inner.key.seal(&key_id, &secret)?,
                id: key_id.clone(),
                user_name: ADMIN_USER.into(),
                status: KeyStatus::Active,
                created_ms: now,
                last_used_ms: None,
            };
            store.create_user(&user, &[inline], Some(&key))?;
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

    /// Creates an access key for a user; returns its metadata and the secret (shown once).
    pub fn create_access_key(&self, user: &str) -> Result<(StoredKey, String), IdentityError> {
        self.write(|snap, store| {
            let user = canonical_user(snap, user)?;
            let id = new_id("AKIA")?;
            let secret = new_secret()?;
            let key = StoredKey {
                sealed_secret: self.inner.key.seal(&id, &secret)?,
                id,
                user_name: user,
                status: KeyStatus::Active,
                created_ms: now_ms(),
                last_used_ms: None,
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
        if !(3600..=43_200).contains(&max) {
            return Err(IdentityError::Validation(format!(
                "max session duration `{max}` must be between 3600 and 43200 seconds"
            )));
        }
        if let Some(d) = description {
            if d.chars().count() > 1000 {
                return Err(IdentityError::Validation(
                    "description must be at most 1000 characters".into(),
                ));
            }
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
        self.inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, c| !matches!(&c.principal.kind, PrincipalKind::AssumedRole { role_arn, .. } if *role_arn == role.arn));
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
            created_ms: now_ms(),
        };
        self.write(|snap, store| {
            if snap
                .dump
                .policies
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(name))
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
    pub fn delete_policy(&self, arn: &str) -> Result<(), IdentityError> {
        self.write(|_, store| store.delete_managed_policy(arn))
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
        if session_name.len() < 2 {
            return Err(IdentityError::Validation(format!(
                "role session name `{session_name}` must be 2 to 64 characters of letters, digits and +=,.@_-"
            )));
        }
        validate_name("role session name", session_name, 64)?;
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
        let now = now_ms();
        let credential = Credential {
            access_key_id: new_id("ASIA")?,
            secret_access_key: new_secret()?,
            session_token: Some(random_chars(96, ALNUM)?),
            expires_at_ms: Some(
                now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
            ),
            principal: Principal {
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
                tags: role.tags.iter().cloned().collect(),
            },
        };
        let mut sessions = self
            .inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, c| c.expires_at_ms.is_some_and(|e| e > now));
        sessions.insert(credential.access_key_id.clone(), credential.clone());
        Ok(credential)
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

impl CredentialSource for Identity {
    fn lookup(&self, access_key_id: &str) -> Option<Credential> {
        if access_key_id.starts_with("ASIA") {
            let sessions = self
                .inner
                .sessions
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let c = sessions.get(access_key_id)?;
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
        assert_eq!(id.policies_for(&c.principal).len(), 1);
        assert!(id.revoke_session(&c.access_key_id));
        assert!(id.lookup(&c.access_key_id).is_none());
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
}

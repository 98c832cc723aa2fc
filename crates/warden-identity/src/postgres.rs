//! [`IdentityStore`] in PostgreSQL, shared by several Warden nodes.
//!
//! Identity is small (users, keys, roles, policies: kilobytes to a few megabytes), read as
//! a whole into every node's snapshot and written rarely. This store keeps it in
//! PostgreSQL as one versioned image of the embedded identity database: one row holding a
//! generation number and the image. Every operation runs the embedded store's own code
//! ([`SqliteIdentityStore`]) on a private local copy of the image at a known generation,
//! so both backends have exactly one implementation of IAM's rules (names unique without
//! regard to case, the refusals to delete what is still in use, the quotas). A write is
//! optimistic: it runs on the copy of generation `g`, then replaces the image only if the
//! stored generation is still `g` (a compare-and-set); if another node wrote first, the
//! write is decided again on the newer image, so no write is lost and none is applied to
//! a stale state. Secrets stay sealed under the master key inside the image.
//!
//! The cost of this shape, accepted for a store this size and this rarely written: every
//! write sends the whole image, and writes from all nodes are serialised. The generation
//! is what nodes poll to know when to rebuild their snapshots
//! ([`IdentityStore::generation`]).

use std::path::PathBuf;
use std::sync::Mutex;

use warden_postgres::{Migration, Options, Pool, Track};

use crate::error::IdentityError;
use crate::store::{
    Dump, Holder, IdentityStore, InlinePolicy, KeyStatus, KeyUsage, ManagedPolicy, Reseal, Role,
    SqliteIdentityStore, StoredKey, Tags, User,
};

/// How many times a write is decided again when other nodes keep writing first.
const WRITE_ATTEMPTS: u32 = 16;

const TRACK: Track = Track {
    name: "identity",
    migrations: &[Migration::additive(
        "CREATE TABLE identity_image (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            generation BIGINT NOT NULL,
            image BYTEA NOT NULL
        )",
    )],
};

/// Identity in PostgreSQL (see the module docs).
pub struct PostgresIdentityStore {
    pool: Pool,
    /// A private directory (0700) holding the local copy of the image.
    dir: tempfile::TempDir,
    /// The generation the local copy holds, if it is known to be intact.
    local: Mutex<Option<i64>>,
}

impl std::fmt::Debug for PostgresIdentityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresIdentityStore")
            .field("target", &self.pool.target())
            .finish_non_exhaustive()
    }
}

fn backend(context: &'static str) -> impl FnOnce(postgres::Error) -> IdentityError {
    move |e| IdentityError::Database {
        context,
        source: Box::new(e),
    }
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> IdentityError {
    move |e| IdentityError::Database {
        context,
        source: Box::new(e),
    }
}

impl From<warden_postgres::Error> for IdentityError {
    fn from(e: warden_postgres::Error) -> Self {
        IdentityError::Database {
            context: "talking to PostgreSQL",
            source: Box::new(e),
        }
    }
}

impl PostgresIdentityStore {
    /// Connects to the database at `url` with `connections` connections and creates the
    /// image of an empty identity store if there is none.
    pub fn open(url: &str, connections: usize) -> Result<Self, IdentityError> {
        let pool = Pool::open(
            url,
            &Options {
                connections,
                ..Options::default()
            },
            &[TRACK],
        )?;
        let dir = tempfile::Builder::new()
            .prefix("warden-identity-")
            .tempdir()
            .map_err(io("creating the identity scratch directory"))?;
        let store = PostgresIdentityStore {
            pool,
            dir,
            local: Mutex::new(None),
        };
        // An empty image: made by the embedded store itself, so it has its schema.
        let empty = store.dir.path().join("empty.db");
        drop(SqliteIdentityStore::open(&empty)?);
        let image = std::fs::read(&empty).map_err(io("reading the empty identity image"))?;
        std::fs::remove_file(&empty).map_err(io("removing the empty identity image"))?;
        store.pool.run(move |conn| {
            conn.client()
                .execute(
                    "INSERT INTO identity_image (id, generation, image) VALUES (1, 0, $1)
                     ON CONFLICT (id) DO NOTHING",
                    &[&image],
                )
                .map_err(backend("creating the identity image"))
        })?;
        Ok(store)
    }

    fn image_path(&self) -> PathBuf {
        self.dir.path().join("identity.db")
    }

    fn stored_generation(&self) -> Result<i64, IdentityError> {
        self.pool.run(|conn| {
            Ok(conn
                .client()
                .query_one("SELECT generation FROM identity_image WHERE id = 1", &[])
                .map_err(backend("reading the identity generation"))?
                .get(0))
        })
    }

    /// Brings the local copy up to the stored image (if it is not already at the stored
    /// generation) and returns its generation.
    fn sync(&self, local: &mut Option<i64>) -> Result<i64, IdentityError> {
        let stored = self.stored_generation()?;
        if *local == Some(stored) && self.image_path().is_file() {
            return Ok(stored);
        }
        let (generation, image): (i64, Vec<u8>) = self.pool.run(|conn| {
            let row = conn
                .client()
                .query_one(
                    "SELECT generation, image FROM identity_image WHERE id = 1",
                    &[],
                )
                .map_err(backend("reading the identity image"))?;
            Ok::<_, IdentityError>((row.get(0), row.get(1)))
        })?;
        *local = None;
        let path = self.image_path();
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            match std::fs::remove_file(&companion) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("clearing the identity copy")(e))
                }
                _ => {}
            }
        }
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(io("writing the identity copy"))?;
            f.write_all(&image)
                .map_err(io("writing the identity copy"))?;
        }
        *local = Some(generation);
        Ok(generation)
    }

    /// Runs `f` on the local copy at the stored generation.
    fn read<T>(
        &self,
        f: impl FnOnce(&SqliteIdentityStore) -> Result<T, IdentityError>,
    ) -> Result<T, IdentityError> {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        self.sync(&mut local)?;
        let store = SqliteIdentityStore::open(&self.image_path())?;
        f(&store)
    }

    /// Runs the write `f` on the local copy and stores the result if nobody wrote since;
    /// otherwise decides it again on the newer image.
    fn write<T>(
        &self,
        f: impl Fn(&SqliteIdentityStore) -> Result<T, IdentityError>,
    ) -> Result<T, IdentityError> {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..WRITE_ATTEMPTS {
            let generation = self.sync(&mut local)?;
            let store = SqliteIdentityStore::open(&self.image_path())?;
            let out = f(&store);
            // Closing the last connection folds the write-ahead log into the file.
            drop(store);
            let value = match out {
                Ok(v) => v,
                Err(e) => {
                    // A refused write changed nothing, but the copy is re-read anyway.
                    *local = None;
                    return Err(e);
                }
            };
            let image =
                std::fs::read(self.image_path()).map_err(io("reading the identity copy"))?;
            let written = self.pool.run(move |conn| {
                conn.client()
                    .execute(
                        "UPDATE identity_image SET image = $2, generation = generation + 1
                         WHERE id = 1 AND generation = $1",
                        &[&generation, &image],
                    )
                    .map_err(backend("writing the identity image"))
            });
            match written {
                Ok(1) => {
                    *local = Some(generation + 1);
                    return Ok(value);
                }
                Ok(_) => {
                    // Another node wrote first: decide again on its image.
                    *local = None;
                }
                Err(e) => {
                    *local = None;
                    return Err(e);
                }
            }
        }
        Err(IdentityError::Database {
            context: "writing identity",
            source: "other nodes kept changing identity; the write was not applied".into(),
        })
    }
}

impl IdentityStore for PostgresIdentityStore {
    fn generation(&self) -> Result<Option<u64>, IdentityError> {
        Ok(Some(u64::try_from(self.stored_generation()?).unwrap_or(0)))
    }

    fn load(&self) -> Result<Dump, IdentityError> {
        self.read(|s| s.load())
    }

    fn reseal_secrets(&self, reseal: Reseal<'_>) -> Result<usize, IdentityError> {
        self.write(|s| s.reseal_secrets(reseal))
    }

    fn create_user(
        &self,
        user: &User,
        inline: &[InlinePolicy],
        key: Option<&StoredKey>,
    ) -> Result<(), IdentityError> {
        self.write(|s| s.create_user(user, inline, key))
    }

    fn delete_user(&self, name: &str) -> Result<(), IdentityError> {
        self.write(|s| s.delete_user(name))
    }

    fn set_user_tags(&self, name: &str, tags: &Tags) -> Result<(), IdentityError> {
        self.write(|s| s.set_user_tags(name, tags))
    }

    fn create_access_key(&self, key: &StoredKey, max_per_user: usize) -> Result<(), IdentityError> {
        self.write(|s| s.create_access_key(key, max_per_user))
    }

    fn set_access_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IdentityError> {
        self.write(|s| s.set_access_key_status(user, key_id, status))
    }

    fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IdentityError> {
        self.write(|s| s.delete_access_key(user, key_id))
    }

    fn create_role(&self, role: &Role) -> Result<(), IdentityError> {
        self.write(|s| s.create_role(role))
    }

    fn delete_role(&self, name: &str) -> Result<(), IdentityError> {
        self.write(|s| s.delete_role(name))
    }

    fn set_role_trust_policy(&self, name: &str, document: &str) -> Result<(), IdentityError> {
        self.write(|s| s.set_role_trust_policy(name, document))
    }

    fn set_role_tags(&self, name: &str, tags: &Tags) -> Result<(), IdentityError> {
        self.write(|s| s.set_role_tags(name, tags))
    }

    fn put_inline_policy(&self, policy: &InlinePolicy) -> Result<(), IdentityError> {
        self.write(|s| s.put_inline_policy(policy))
    }

    fn delete_inline_policy(&self, holder: &Holder, name: &str) -> Result<(), IdentityError> {
        self.write(|s| s.delete_inline_policy(holder, name))
    }

    fn update_role(
        &self,
        name: &str,
        description: Option<Option<&str>>,
        max_session_duration_s: Option<u32>,
    ) -> Result<(), IdentityError> {
        self.write(|s| s.update_role(name, description, max_session_duration_s))
    }

    fn create_managed_policy(&self, policy: &ManagedPolicy) -> Result<(), IdentityError> {
        self.write(|s| s.create_managed_policy(policy))
    }

    fn delete_managed_policy(&self, arn: &str) -> Result<(), IdentityError> {
        self.write(|s| s.delete_managed_policy(arn))
    }

    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        created_ms: i64,
        set_default: bool,
        max: usize,
    ) -> Result<String, IdentityError> {
        self.write(|s| s.create_policy_version(arn, document, created_ms, set_default, max))
    }

    fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
        now_ms: i64,
    ) -> Result<(), IdentityError> {
        self.write(|s| s.set_default_policy_version(arn, version_id, now_ms))
    }

    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), IdentityError> {
        self.write(|s| s.delete_policy_version(arn, version_id))
    }

    fn put_aws_managed_policy(&self, policy: &ManagedPolicy) -> Result<(), IdentityError> {
        self.write(|s| s.put_aws_managed_policy(policy))
    }

    fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<(), IdentityError> {
        self.write(|s| s.record_key_usage(usage))
    }

    fn attach_policy(&self, holder: &Holder, arn: &str, max: usize) -> Result<(), IdentityError> {
        self.write(|s| s.attach_policy(holder, arn, max))
    }

    fn detach_policy(&self, holder: &Holder, arn: &str) -> Result<(), IdentityError> {
        self.write(|s| s.detach_policy(holder, arn))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn url() -> String {
        warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap()
    }

    fn user(name: &str) -> User {
        User {
            name: name.to_owned(),
            id: format!("AIDA{}", name.to_uppercase()),
            arn: format!("arn:aws:iam::123456789012:user/{name}"),
            path: "/".to_owned(),
            tags: Vec::new(),
            created_ms: 1,
        }
    }

    #[test]
    fn a_user_written_through_one_node_is_read_by_another_and_generations_grow() {
        let url = url();
        let a = PostgresIdentityStore::open(&url, 1).unwrap();
        let b = PostgresIdentityStore::open(&url, 1).unwrap();
        let g0 = b.generation().unwrap().unwrap();
        a.create_user(&user("alice"), &[], None).unwrap();
        let g1 = b.generation().unwrap().unwrap();
        assert!(g1 > g0);
        let names: Vec<String> = b
            .load()
            .unwrap()
            .users
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["alice"]);
        // The embedded store's rules hold: names are unique without regard to case.
        let e = b.create_user(&user("ALICE"), &[], None).unwrap_err();
        assert!(matches!(e, IdentityError::EntityAlreadyExists(_)), "{e}");
        assert_eq!(
            b.generation().unwrap().unwrap(),
            g1,
            "a refused write changes nothing"
        );
        b.delete_user("alice").unwrap();
        assert!(a.load().unwrap().users.is_empty());
    }

    #[test]
    fn nodes_racing_on_one_name_make_it_once_and_lose_no_other_write() {
        let url = url();
        let stores: Vec<Arc<PostgresIdentityStore>> = (0..3)
            .map(|_| Arc::new(PostgresIdentityStore::open(&url, 1).unwrap()))
            .collect();
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let s = Arc::clone(s);
                std::thread::spawn(move || {
                    let shared = s.create_user(&user("same"), &[], None);
                    // A write of its own, which must survive the others' writes.
                    s.create_user(&user(&format!("own{i}")), &[], None).unwrap();
                    shared.is_ok()
                })
            })
            .collect();
        let won = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count();
        assert_eq!(won, 1);
        let mut names: Vec<String> = stores[0]
            .load()
            .unwrap()
            .users
            .into_iter()
            .map(|u| u.name)
            .collect();
        names.sort();
        assert_eq!(names, ["own0", "own1", "own2", "same"]);
    }

    #[test]
    fn a_revocation_on_one_node_reaches_the_other_after_refresh() {
        let url = url();
        let key = crate::MasterKey::generate().unwrap();
        let a = crate::Identity::open_postgres(&url, 1, key.clone(), "123456789012").unwrap();
        let b = crate::Identity::open_postgres(&url, 1, key, "123456789012").unwrap();
        let (id, _secret) = a.ensure_bootstrap_admin().unwrap().unwrap();
        // The second node finds the admin made: no second one.
        assert!(b.ensure_bootstrap_admin().unwrap().is_none());
        b.refresh().unwrap();
        assert!(warden_types::identity::CredentialSource::lookup(&b, &id).is_some());
        a.delete_access_key(crate::ADMIN_USER, &id).unwrap();
        assert!(b.refresh().unwrap());
        assert!(warden_types::identity::CredentialSource::lookup(&b, &id).is_none());
        assert!(!b.refresh().unwrap(), "nothing changed since");
    }
}

//! The function URL configurations, in `DATA_DIR/urls.db` (SQLite, WAL,
//! `synchronous=FULL`: every acknowledged change is on disk) or, for nodes sharing a
//! PostgreSQL store, in its `urls` namespace of shared records; and in memory for
//! [`UrlStore::by_url_id`], which every request to a function URL asks.
//!
//! One writer at a time: a write holds the backend's mutex (with a shared store, also the
//! namespace's lock, after reading what other nodes changed), checks against memory,
//! commits, and only then changes memory, taking the memory lock just for that. Readers
//! never wait for a disk write. [`UrlStore::refresh`], which the server calls every second
//! with a shared store, reads another node's change.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use warden_postgres::records::{Replica, Snapshot};

use crate::error::{shared, store, UrlError};
use crate::model::{
    check_function_name, check_qualifier, decode_marker, encode_marker, is_url_id, new_url_id,
    AuthType, Cors, InvokeMode, UrlConfig, UrlPage,
};

/// The most function URL configurations one Warden keeps.
pub const MAX_URL_CONFIGS: usize = 10_000;

/// The most items of one `ListFunctionUrlConfigs` page, and the default.
pub const MAX_LIST_ITEMS: usize = 50;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE url_configs (
    url_id TEXT PRIMARY KEY NOT NULL,
    function_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    auth_type TEXT NOT NULL,
    cors TEXT,
    invoke_mode TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    modified_us INTEGER NOT NULL,
    UNIQUE (function_name, qualifier)
) STRICT;
"#];

/// A configuration and its place in insertion order (its SQLite rowid).
#[derive(Clone)]
struct Entry {
    seq: i64,
    config: UrlConfig,
}

/// The configurations in memory: by id, by function and qualifier, and in order.
#[derive(Default)]
struct State {
    by_id: HashMap<String, Entry>,
    /// `(function, qualifier or "")` to id.
    by_key: HashMap<(String, String), String>,
    /// Insertion order: sequence to id.
    order: BTreeMap<i64, String>,
}

impl State {
    fn insert(&mut self, entry: Entry) {
        let c = &entry.config;
        self.by_key.insert(
            key(&c.function_name, c.qualifier.as_deref()),
            c.url_id.clone(),
        );
        self.order.insert(entry.seq, c.url_id.clone());
        self.by_id.insert(c.url_id.clone(), entry);
    }

    fn remove(&mut self, url_id: &str) -> Option<Entry> {
        let entry = self.by_id.remove(url_id)?;
        let c = &entry.config;
        self.by_key
            .remove(&key(&c.function_name, c.qualifier.as_deref()));
        self.order.remove(&entry.seq);
        Some(entry)
    }

    fn find(&self, function: &str, qualifier: Option<&str>) -> Option<&Entry> {
        self.by_key
            .get(&key(function, qualifier))
            .and_then(|id| self.by_id.get(id))
    }
}

fn key(function: &str, qualifier: Option<&str>) -> (String, String) {
    (
        function.to_owned(),
        qualifier.unwrap_or_default().to_owned(),
    )
}

/// Where the configurations are kept.
enum Backend {
    /// `urls.db`, this node's own.
    Sqlite(Connection),
    /// Shared by the nodes of a deployment.
    Postgres(Replica),
}

/// The namespace and the kind of URL configurations in a shared store.
const NAMESPACE: &str = "urls";
const KIND: &str = "url";

/// One configuration as a shared record: the columns of the SQLite table.
#[derive(Serialize, Deserialize)]
struct Record {
    seq: i64,
    url_id: String,
    function_name: String,
    qualifier: String,
    auth_type: String,
    cors: Option<String>,
    invoke_mode: String,
    created_us: i64,
    modified_us: i64,
}

/// A configuration's row, in the order of the SQLite table's columns.
type Row = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
);

impl Record {
    fn of(entry: &Entry) -> Record {
        let c = &entry.config;
        Record {
            seq: entry.seq,
            url_id: c.url_id.clone(),
            function_name: c.function_name.clone(),
            qualifier: c.qualifier.clone().unwrap_or_default(),
            auth_type: c.auth_type.as_str().to_owned(),
            cors: c.cors.as_ref().map(|c| c.to_json().to_string()),
            invoke_mode: c.invoke_mode.as_str().to_owned(),
            created_us: c.creation_time_us,
            modified_us: c.last_modified_time_us,
        }
    }

    fn row(self) -> Row {
        (
            self.seq,
            self.url_id,
            self.function_name,
            self.qualifier,
            self.auth_type,
            self.cors,
            self.invoke_mode,
            self.created_us,
            self.modified_us,
        )
    }
}

/// One write of a change.
enum Write {
    /// A configuration made or changed.
    Put(Entry),
    /// A configuration deleted, by id.
    Delete(String),
}

struct Inner {
    /// The writer; holding it is what makes a write exclusive on this node.
    backend: Mutex<Backend>,
    state: RwLock<State>,
    limit: usize,
}

/// The function URL configurations; cheap to clone.
#[derive(Clone)]
pub struct UrlStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for UrlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlStore")
            .field("configs", &self.len())
            .field("limit", &self.inner.limit)
            .finish()
    }
}

/// Microseconds since the Unix epoch.
fn now_us() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000).unwrap_or(i64::MAX)
}

/// The message Lambda sends for a function URL that does not exist.
fn not_found(function: &str, qualifier: Option<&str>) -> UrlError {
    let target = match qualifier {
        Some(q) => format!("{function}:{q}"),
        None => function.to_owned(),
    };
    UrlError::NotFound(format!(
        "The resource you requested does not exist. (function URL of {target})"
    ))
}

impl UrlStore {
    /// Opens (creating) `DATA_DIR/urls.db` and reads every configuration, with the bound
    /// [`MAX_URL_CONFIGS`].
    pub fn open(data_dir: &Path) -> Result<UrlStore, UrlError> {
        UrlStore::open_with_limit(data_dir, MAX_URL_CONFIGS)
    }

    /// [`UrlStore::open`] with another bound on the number of configurations.
    pub fn open_with_limit(data_dir: &Path, limit: usize) -> Result<UrlStore, UrlError> {
        let db = warden_sqlite::open(
            &data_dir.join("urls.db"),
            &warden_sqlite::Options {
                synchronous: warden_sqlite::Synchronous::Full,
                migrations: MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(|source| UrlError::Store {
            context: "opening the function URL store",
            source,
        })?;
        drop(db.reader);
        let conn = db.writer;
        let state = load(&conn)?;
        Ok(UrlStore::with_backend(Backend::Sqlite(conn), state, limit))
    }

    /// Opens the configurations of the PostgreSQL database at `url`, shared with the
    /// other nodes, with a pool of `connections` and the bound [`MAX_URL_CONFIGS`].
    pub fn open_postgres(url: &str, connections: usize) -> Result<UrlStore, UrlError> {
        let pool = warden_postgres::Pool::open(
            url,
            &warden_postgres::Options {
                connections,
                application_name: "warden-urls".to_owned(),
            },
            &[warden_postgres::records::TRACK],
        )
        .map_err(shared("opening the function URL store"))?;
        UrlStore::open_shared(pool)
    }

    /// [`UrlStore::open_postgres`] on a pool opened with the shared records' track, which
    /// other services may share.
    pub fn open_shared(pool: warden_postgres::Pool) -> Result<UrlStore, UrlError> {
        let (replica, snapshot) =
            Replica::open(pool, NAMESPACE).map_err(shared("opening the function URL store"))?;
        let state = state_of(&snapshot)?;
        Ok(UrlStore::with_backend(
            Backend::Postgres(replica),
            state,
            MAX_URL_CONFIGS,
        ))
    }

    fn with_backend(backend: Backend, state: State, limit: usize) -> UrlStore {
        UrlStore {
            inner: Arc::new(Inner {
                backend: Mutex::new(backend),
                state: RwLock::new(state),
                limit,
            }),
        }
    }

    /// Installs the configurations of a shared store's `snapshot`.
    fn install(&self, snapshot: &Snapshot) -> Result<(), UrlError> {
        let state = state_of(snapshot)?;
        self.write_memory(|s| *s = state);
        Ok(())
    }

    /// With a shared store, reads the configurations again if another node changed them
    /// since this node last read or wrote them; returns whether it did.
    pub fn refresh(&self) -> Result<bool, UrlError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let Backend::Postgres(replica) = &mut *backend else {
            return Ok(false);
        };
        replica.refresh(
            |e| shared("reading function URLs")(e),
            |snapshot| self.install(&snapshot),
        )
    }

    /// Runs one change: `decide`, from memory up to date with what every node committed
    /// and with the sequence the next configuration takes, returns the writes and its
    /// answer. The writes commit before memory changes.
    fn change<T>(
        &self,
        context: &'static str,
        decide: impl FnOnce(&State, i64) -> Result<(Vec<Write>, T), UrlError>,
    ) -> Result<T, UrlError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let next_seq = |state: &State| state.order.keys().next_back().map_or(1, |s| s + 1);
        let writes = match &mut *backend {
            Backend::Sqlite(conn) => {
                let (writes, answer) = {
                    let state = self.read();
                    decide(&state, next_seq(&state))?
                };
                let tx = conn.transaction().map_err(store(context))?;
                for w in &writes {
                    match w {
                        Write::Put(entry) => {
                            // A change of an existing configuration, else a new one in its
                            // place in the order.
                            let r = Record::of(entry);
                            tx.execute(
                                "UPDATE url_configs SET auth_type = ?2, cors = ?3, invoke_mode = ?4, \
                                 modified_us = ?5 WHERE url_id = ?1",
                                params![r.url_id, r.auth_type, r.cors, r.invoke_mode, r.modified_us],
                            )
                            .and_then(|changed| match changed {
                                0 => tx.execute(
                                    "INSERT INTO url_configs (rowid, url_id, function_name, qualifier, \
                                     auth_type, cors, invoke_mode, created_us, modified_us) \
                                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                                    params![
                                        r.seq,
                                        r.url_id,
                                        r.function_name,
                                        r.qualifier,
                                        r.auth_type,
                                        r.cors,
                                        r.invoke_mode,
                                        r.created_us,
                                        r.modified_us
                                    ],
                                ),
                                n => Ok(n),
                            })
                        }
                        Write::Delete(url_id) => {
                            tx.execute("DELETE FROM url_configs WHERE url_id = ?1", params![url_id])
                        }
                    }
                    .map_err(store(context))?;
                }
                tx.commit().map_err(store(context))?;
                (writes, answer)
            }
            Backend::Postgres(replica) => {
                let mut w =
                    replica.begin(|e| shared(context)(e), |snapshot| self.install(&snapshot))?;
                let (writes, answer) = {
                    let state = self.read();
                    decide(&state, next_seq(&state))?
                };
                for write in &writes {
                    match write {
                        Write::Put(entry) => {
                            let text = serde_json::to_string(&Record::of(entry)).map_err(|e| {
                                UrlError::Corrupt(format!("a function URL does not serialize: {e}"))
                            })?;
                            w.put(KIND, &entry.config.url_id, text)
                        }
                        Write::Delete(url_id) => w.delete(KIND, url_id),
                    }
                    .map_err(shared(context))?;
                }
                replica.commit(w).map_err(shared(context))?;
                (writes, answer)
            }
        };
        let (writes, answer) = writes;
        self.write_memory(|s| {
            for w in writes {
                match w {
                    Write::Put(entry) => {
                        s.remove(&entry.config.url_id);
                        s.insert(entry);
                    }
                    Write::Delete(url_id) => {
                        s.remove(&url_id);
                    }
                }
            }
        });
        drop(backend);
        Ok(answer)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_memory(&self, f: impl FnOnce(&mut State)) {
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut state);
    }

    /// How many configurations there are.
    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configuration with `url_id`, if any: a hash lookup under a read lock, for the
    /// request path.
    pub fn by_url_id(&self, url_id: &str) -> Option<UrlConfig> {
        if !is_url_id(url_id) {
            return None;
        }
        self.read().by_id.get(url_id).map(|e| e.config.clone())
    }

    /// The configuration of `function` (with `qualifier`, an alias, or `$LATEST` when
    /// `None`), if any.
    pub fn get(&self, function: &str, qualifier: Option<&str>) -> Option<UrlConfig> {
        self.read()
            .find(function, qualifier)
            .map(|e| e.config.clone())
    }

    /// Creates the function URL of `function` (and `qualifier`), with a new random id.
    /// Whether the function and alias exist is the caller's check.
    ///
    /// # Errors
    /// `ValidationException` for a bad name or qualifier, a `Cors` that fails
    /// [`Cors::validate`], `ResourceConflictException` when that function and qualifier
    /// have a URL already, `ServiceQuotaExceededException` at the store's bound, or a
    /// store failure.
    pub fn create(
        &self,
        function: &str,
        qualifier: Option<&str>,
        auth_type: AuthType,
        cors: Option<Cors>,
        invoke_mode: InvokeMode,
    ) -> Result<UrlConfig, UrlError> {
        check_function_name(function)?;
        if let Some(q) = qualifier {
            check_qualifier(q)?;
        }
        let cors = cors.and_then(Cors::normalized);
        if let Some(c) = &cors {
            c.validate()?;
        }
        self.change("creating a function URL", |state, seq| {
            if state.find(function, qualifier).is_some() {
                let target = match qualifier {
                    Some(q) => format!("{function}:{q}"),
                    None => function.to_owned(),
                };
                return Err(UrlError::Conflict(format!(
                    "Function {target} has a function URL already: update it, or delete it first"
                )));
            }
            if state.by_id.len() >= self.inner.limit {
                return Err(UrlError::QuotaExceeded(format!(
                    "This Warden holds at most {} function URL configurations; delete one before creating another",
                    self.inner.limit
                )));
            }
            // 155 random bits: a collision is not expected, but never overwrite.
            let mut url_id = new_url_id();
            while state.by_id.contains_key(&url_id) {
                url_id = new_url_id();
            }
            let now = now_us();
            let config = UrlConfig {
                url_id,
                function_name: function.to_owned(),
                qualifier: qualifier.map(str::to_owned),
                auth_type,
                cors,
                invoke_mode,
                creation_time_us: now,
                last_modified_time_us: now,
            };
            Ok((
                vec![Write::Put(Entry {
                    seq,
                    config: config.clone(),
                })],
                config,
            ))
        })
    }

    /// Changes the members given (`cors: Some(None)` removes the CORS settings) and sets
    /// the last-modified time; the id and creation time stay.
    ///
    /// # Errors
    /// `ResourceNotFoundException` when there is no such URL, `ValidationException` for a
    /// bad name, qualifier or `Cors`, or a store failure.
    pub fn update(
        &self,
        function: &str,
        qualifier: Option<&str>,
        auth_type: Option<AuthType>,
        cors: Option<Option<Cors>>,
        invoke_mode: Option<InvokeMode>,
    ) -> Result<UrlConfig, UrlError> {
        check_function_name(function)?;
        if let Some(q) = qualifier {
            check_qualifier(q)?;
        }
        let cors = cors.map(|c| c.and_then(Cors::normalized));
        if let Some(Some(c)) = &cors {
            c.validate()?;
        }
        self.change("updating a function URL", |state, _| {
            let Some(mut entry) = state.find(function, qualifier).cloned() else {
                return Err(not_found(function, qualifier));
            };
            let c = &mut entry.config;
            if let Some(a) = auth_type {
                c.auth_type = a;
            }
            if let Some(new) = cors {
                c.cors = new;
            }
            if let Some(m) = invoke_mode {
                c.invoke_mode = m;
            }
            c.last_modified_time_us = now_us().max(c.last_modified_time_us);
            let config = entry.config.clone();
            Ok((vec![Write::Put(entry)], config))
        })
    }

    /// Deletes the function URL of `function` (and `qualifier`); `false` if there is none.
    /// A new URL for the same function gets a new id: a deleted URL never comes back.
    pub fn delete(&self, function: &str, qualifier: Option<&str>) -> Result<bool, UrlError> {
        self.change("deleting a function URL", |state, _| {
            Ok(match state.find(function, qualifier) {
                Some(e) => (vec![Write::Delete(e.config.url_id.clone())], true),
                None => (Vec::new(), false),
            })
        })
    }

    /// Deletes every function URL of `function` (its own and its aliases'), as deleting
    /// the function does; returns how many there were.
    pub fn delete_function(&self, function: &str) -> Result<usize, UrlError> {
        self.change("deleting a function's URLs", |state, _| {
            let writes: Vec<Write> = state
                .by_id
                .values()
                .filter(|e| e.config.function_name == function)
                .map(|e| Write::Delete(e.config.url_id.clone()))
                .collect();
            let n = writes.len();
            Ok((writes, n))
        })
    }

    /// One page of `function`'s URLs, oldest first. `marker` is a previous page's
    /// `next_marker` (an empty one counts as absent); `max_items` is `MaxItems` as
    /// received, 1 to [`MAX_LIST_ITEMS`], that many by default.
    ///
    /// # Errors
    /// `ValidationException` for a `MaxItems` outside 1 to 50,
    /// `InvalidParameterValueException` for a marker this store did not hand out.
    pub fn list(
        &self,
        function: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<UrlPage, UrlError> {
        let max_items = match max_items {
            None => MAX_LIST_ITEMS,
            Some(raw) => raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIST_ITEMS).contains(n))
                .ok_or_else(|| {
                    UrlError::constraint(
                        &crate::error::shown(raw),
                        "maxItems",
                        &format!("Member must have value between 1 and {MAX_LIST_ITEMS}"),
                    )
                })?,
        };
        let start = match marker.filter(|m| !m.is_empty()) {
            None => i64::MIN,
            Some(m) => decode_marker(m).ok_or_else(|| {
                UrlError::InvalidParameter(format!(
                    "Marker {} is not one this function's URL list handed out",
                    crate::error::shown(m)
                ))
            })?,
        };
        let state = self.read();
        let mut configs = Vec::new();
        let mut next_marker = None;
        for (seq, id) in state.order.range(start..) {
            let Some(e) = state.by_id.get(id) else {
                continue;
            };
            if e.config.function_name != function {
                continue;
            }
            if configs.len() == max_items {
                next_marker = Some(encode_marker(*seq));
                break;
            }
            configs.push(e.config.clone());
        }
        Ok(UrlPage {
            configs,
            next_marker,
        })
    }
}

/// Reads every row, oldest first; a row this build cannot read fails the open.
fn load(conn: &Connection) -> Result<State, UrlError> {
    const CONTEXT: &str = "reading function URLs";
    let mut stmt = conn
        .prepare(
            "SELECT rowid, url_id, function_name, qualifier, auth_type, cors, invoke_mode, \
             created_us, modified_us FROM url_configs ORDER BY rowid",
        )
        .map_err(store(CONTEXT))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, i64>(7)?,
                row.get::<_, i64>(8)?,
            ))
        })
        .map_err(store(CONTEXT))?;
    let mut list = Vec::new();
    for row in rows {
        list.push(row.map_err(store(CONTEXT))?);
    }
    state_from_rows(list)
}

/// The state of the records of one snapshot of a shared store.
fn state_of(snapshot: &Snapshot) -> Result<State, UrlError> {
    let mut rows = Vec::new();
    for r in snapshot.records.iter().filter(|r| r.kind == KIND) {
        let record: Record = serde_json::from_str(&r.text)
            .map_err(|_| UrlError::Corrupt(format!("the record of function URL {}", r.id)))?;
        rows.push(record.row());
    }
    rows.sort_by_key(|r| r.0);
    state_from_rows(rows)
}

/// The state of stored rows, oldest first; a row this build cannot read fails.
fn state_from_rows(rows: Vec<Row>) -> Result<State, UrlError> {
    let mut state = State::default();
    for (seq, url_id, function_name, qualifier, auth, cors, mode, created, modified) in rows {
        let corrupt = |what: &str| UrlError::Corrupt(format!("{what} of function URL {url_id}"));
        if !is_url_id(&url_id) {
            return Err(corrupt("the id"));
        }
        let auth_type = AuthType::parse(&auth).map_err(|_| corrupt("the AuthType"))?;
        let invoke_mode = InvokeMode::parse(&mode).map_err(|_| corrupt("the InvokeMode"))?;
        let cors = match cors {
            None => None,
            Some(text) => {
                let value: serde_json::Value =
                    serde_json::from_str(&text).map_err(|_| corrupt("the Cors"))?;
                Some(Cors::from_json(&value).map_err(|_| corrupt("the Cors"))?)
            }
        };
        state.insert(Entry {
            seq,
            config: UrlConfig {
                url_id,
                function_name,
                qualifier: (!qualifier.is_empty()).then_some(qualifier),
                auth_type,
                cors,
                invoke_mode,
                creation_time_us: created,
                last_modified_time_us: modified,
            },
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> Cors {
        Cors {
            allow_origins: vec!["https://example.com".into()],
            allow_methods: vec!["GET".into()],
            max_age: Some(60),
            ..Cors::default()
        }
    }

    #[test]
    fn configurations_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = UrlStore::open(dir.path()).unwrap();
        assert!(store.is_empty());
        let latest = store
            .create("f", None, AuthType::AwsIam, None, InvokeMode::Buffered)
            .unwrap();
        let prod = store
            .create(
                "f",
                Some("prod"),
                AuthType::None,
                Some(cors()),
                InvokeMode::ResponseStream,
            )
            .unwrap();
        let other = store
            .create(
                "g",
                None,
                AuthType::None,
                Some(Cors::default()),
                InvokeMode::Buffered,
            )
            .unwrap();
        assert_eq!(other.cors, None, "an empty Cors is no CORS");
        assert_ne!(latest.url_id, prod.url_id);
        assert_eq!(store.by_url_id(&prod.url_id).unwrap(), prod);
        assert_eq!(store.get("f", Some("prod")).unwrap(), prod);
        assert_eq!(store.get("f", None).unwrap(), latest);
        assert_eq!(store.get("f", Some("dev")), None);
        assert_eq!(store.by_url_id("nope"), None);
        drop(store);

        let store = UrlStore::open(dir.path()).unwrap();
        assert_eq!(store.len(), 3);
        assert_eq!(store.by_url_id(&prod.url_id).unwrap(), prod);
        assert_eq!(store.get("f", None).unwrap(), latest);
        let page = store.list("f", None, None).unwrap();
        assert_eq!(page.configs, vec![latest.clone(), prod.clone()]);
        assert_eq!(page.next_marker, None);

        // Updates change only what they name, and persist.
        let updated = store
            .update("f", Some("prod"), Some(AuthType::AwsIam), None, None)
            .unwrap();
        assert_eq!(updated.auth_type, AuthType::AwsIam);
        assert_eq!(updated.cors, prod.cors);
        assert_eq!(updated.invoke_mode, InvokeMode::ResponseStream);
        assert_eq!(updated.url_id, prod.url_id);
        assert_eq!(updated.creation_time_us, prod.creation_time_us);
        assert!(updated.last_modified_time_us >= prod.last_modified_time_us);
        let cleared = store
            .update(
                "f",
                Some("prod"),
                None,
                Some(None),
                Some(InvokeMode::Buffered),
            )
            .unwrap();
        assert_eq!(cleared.cors, None);
        assert_eq!(cleared.invoke_mode, InvokeMode::Buffered);
        drop(store);

        let store = UrlStore::open(dir.path()).unwrap();
        assert_eq!(store.get("f", Some("prod")).unwrap(), cleared);
        assert_eq!(store.by_url_id(&prod.url_id).unwrap(), cleared);
        // Deleting one, then a whole function.
        assert!(store.delete("g", None).unwrap());
        assert!(!store.delete("g", None).unwrap());
        assert_eq!(store.by_url_id(&other.url_id), None);
        assert_eq!(store.delete_function("f").unwrap(), 2);
        assert_eq!(store.delete_function("f").unwrap(), 0);
        assert!(store.is_empty());
        drop(store);
        assert!(UrlStore::open(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        let store = UrlStore::open(dir.path()).unwrap();
        store
            .create("f", None, AuthType::None, None, InvokeMode::Buffered)
            .unwrap();
        let e = store
            .create("f", None, AuthType::AwsIam, None, InvokeMode::Buffered)
            .unwrap_err();
        assert_eq!(e.code(), "ResourceConflictException");
        assert_eq!(e.status(), 409);
        for q in ["$LATEST", "1"] {
            let e = store
                .create("f", Some(q), AuthType::None, None, InvokeMode::Buffered)
                .unwrap_err();
            assert_eq!(e.code(), "ValidationException", "{q}");
        }
        let e = store
            .create("bad name", None, AuthType::None, None, InvokeMode::Buffered)
            .unwrap_err();
        assert_eq!(e.code(), "ValidationException");
        let bad = Cors {
            allow_methods: vec!["TRACE".into()],
            ..Cors::default()
        };
        let e = store
            .create(
                "g",
                None,
                AuthType::None,
                Some(bad.clone()),
                InvokeMode::Buffered,
            )
            .unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValueException");
        let e = store
            .update("f", None, None, Some(Some(bad)), None)
            .unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValueException");
        let e = store
            .update("f", Some("prod"), Some(AuthType::None), None, None)
            .unwrap_err();
        assert_eq!(e.code(), "ResourceNotFoundException");
        assert_eq!(e.status(), 404);
        // Nothing refused was kept.
        assert_eq!(store.len(), 1);
        for bad in ["0", "51", "-1", "x", ""] {
            let e = store.list("f", None, Some(bad)).unwrap_err();
            assert_eq!(e.code(), "ValidationException", "{bad}");
        }
        let e = store.list("f", Some("not-a-marker"), None).unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValueException");
    }

    #[test]
    fn the_bound_is_kept_and_frees_on_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = UrlStore::open_with_limit(dir.path(), 2).unwrap();
        store
            .create("a", None, AuthType::None, None, InvokeMode::Buffered)
            .unwrap();
        store
            .create("b", None, AuthType::None, None, InvokeMode::Buffered)
            .unwrap();
        let e = store
            .create("c", None, AuthType::None, None, InvokeMode::Buffered)
            .unwrap_err();
        assert_eq!(e.code(), "ServiceQuotaExceededException");
        assert_eq!(e.status(), 402);
        assert!(store.delete("a", None).unwrap());
        store
            .create("c", None, AuthType::None, None, InvokeMode::Buffered)
            .unwrap();
        drop(store);
        // The bound holds for what was read back too.
        let store = UrlStore::open_with_limit(dir.path(), 2).unwrap();
        assert_eq!(
            store
                .create("d", None, AuthType::None, None, InvokeMode::Buffered)
                .unwrap_err()
                .code(),
            "ServiceQuotaExceededException"
        );
    }

    #[test]
    fn lists_page_in_insertion_order_with_opaque_markers() {
        let dir = tempfile::tempdir().unwrap();
        let store = UrlStore::open(dir.path()).unwrap();
        let mut made = Vec::new();
        made.push(
            store
                .create("f", None, AuthType::None, None, InvokeMode::Buffered)
                .unwrap(),
        );
        for i in 0..5 {
            store
                .create(
                    &format!("other{i}"),
                    None,
                    AuthType::None,
                    None,
                    InvokeMode::Buffered,
                )
                .unwrap();
            made.push(
                store
                    .create(
                        "f",
                        Some(&format!("a{i}")),
                        AuthType::None,
                        None,
                        InvokeMode::Buffered,
                    )
                    .unwrap(),
            );
        }
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = store.list("f", marker.as_deref(), Some("2")).unwrap();
            assert!(page.configs.len() <= 2);
            seen.extend(page.configs);
            match page.next_marker {
                Some(m) => {
                    assert!(decode_marker(&m).is_some(), "{m}");
                    marker = Some(m);
                }
                None => break,
            }
        }
        assert_eq!(seen, made);
        // A page whose first item was deleted still starts where it should.
        let first = store.list("f", None, Some("2")).unwrap();
        let next = first.next_marker.unwrap();
        assert!(store.delete("f", Some("a1")).unwrap());
        let page = store.list("f", Some(&next), Some("2")).unwrap();
        assert_eq!(page.configs[0], made[3]);
        assert!(store.list("nobody", None, None).unwrap().configs.is_empty());
    }

    #[test]
    fn unreadable_rows_fail_the_open_rather_than_being_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let store = UrlStore::open(dir.path()).unwrap();
        let c = store
            .create("f", None, AuthType::AwsIam, None, InvokeMode::Buffered)
            .unwrap();
        drop(store);
        let conn = Connection::open(dir.path().join("urls.db")).unwrap();
        conn.execute(
            "UPDATE url_configs SET auth_type = 'OPEN' WHERE url_id = ?1",
            params![c.url_id],
        )
        .unwrap();
        drop(conn);
        let e = UrlStore::open(dir.path()).unwrap_err();
        assert_eq!(e.code(), "ServiceException");
        assert!(e.is_internal());
    }

    #[test]
    fn concurrent_readers_see_whole_configurations() {
        let dir = tempfile::tempdir().unwrap();
        let store = UrlStore::open(dir.path()).unwrap();
        let c = store
            .create("f", None, AuthType::None, None, InvokeMode::Buffered)
            .unwrap();
        let reader = {
            let store = store.clone();
            let id = c.url_id.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let got = store.by_url_id(&id).unwrap();
                    assert_eq!(got.url_id, id);
                }
            })
        };
        for i in 0..20 {
            let mode = if i % 2 == 0 {
                InvokeMode::ResponseStream
            } else {
                InvokeMode::Buffered
            };
            store.update("f", None, None, None, Some(mode)).unwrap();
        }
        reader.join().unwrap();
    }

    #[test]
    fn nodes_sharing_a_store_serve_each_others_urls() {
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        let a = UrlStore::open_postgres(&url, 1).unwrap();
        let b = UrlStore::open_postgres(&url, 1).unwrap();
        let made = a
            .create(
                "f",
                None,
                AuthType::None,
                Some(cors()),
                InvokeMode::Buffered,
            )
            .unwrap();
        assert_eq!(b.by_url_id(&made.url_id), None);
        assert!(b.refresh().unwrap());
        assert!(!b.refresh().unwrap(), "nothing newer");
        assert_eq!(b.by_url_id(&made.url_id).unwrap(), made);
        // A change decides from what every node committed, even before its poll.
        let prod = a
            .create(
                "f",
                Some("prod"),
                AuthType::AwsIam,
                None,
                InvokeMode::Buffered,
            )
            .unwrap();
        let e = b
            .create(
                "f",
                Some("prod"),
                AuthType::None,
                None,
                InvokeMode::Buffered,
            )
            .unwrap_err();
        assert!(matches!(e, UrlError::Conflict(_)), "{e}");
        let changed = b
            .update("f", Some("prod"), Some(AuthType::None), None, None)
            .unwrap();
        assert_eq!(changed.url_id, prod.url_id);
        assert!(a.refresh().unwrap());
        assert_eq!(a.by_url_id(&prod.url_id).unwrap().auth_type, AuthType::None);
        // Listed in the order they were made, on every node.
        let page = b.list("f", None, None).unwrap();
        let ids: Vec<&str> = page.configs.iter().map(|c| c.url_id.as_str()).collect();
        assert_eq!(ids, [made.url_id.as_str(), prod.url_id.as_str()]);
        // Deleted on B: gone from A after its poll, and a node opened later never has it.
        assert_eq!(b.delete_function("f").unwrap(), 2);
        assert!(a.refresh().unwrap());
        assert_eq!(a.by_url_id(&made.url_id), None);
        assert!(UrlStore::open_postgres(&url, 1).unwrap().is_empty());
    }
}

//! Input contracts kept per function and per alias in `DATA_DIR/contracts.db` (or, for
//! nodes sharing a PostgreSQL store, in its `contracts` namespace of shared records), each
//! compiled once, when it is stored or loaded, and shared from memory on every invoke.
//!
//! With a shared store, each write holds the namespace's lock and first reads what other
//! nodes changed, and [`ContractStore::refresh`], which the server calls every second,
//! reads another node's change: a contract put through one node applies to the events of
//! every node within that period.
//!
//! A stored document that no longer compiles (a newer build refusing what an older one
//! took) is kept and reported, and the function's events are refused until it is replaced:
//! validation fails closed, never silently off.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use warden_postgres::records::{Replica, Snapshot};

use crate::{Compiled, ContractError, InputContract};

/// The most contracts one server keeps (functions and aliases together).
pub const MAX_CONTRACTS: usize = 10_000;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE contracts (
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    document TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (function, qualifier)
) STRICT;
"#];

/// What can go wrong keeping contracts.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The document is not a valid contract.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// Opening or writing the database failed.
    #[error("{context}: {message}")]
    Store {
        /// The step that failed.
        context: &'static str,
        /// The database's error.
        message: String,
    },
    /// [`MAX_CONTRACTS`] are kept already.
    #[error("at most {MAX_CONTRACTS} input contracts can be kept; delete one first")]
    LimitExceeded,
}

fn store<E: std::fmt::Display>(context: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Store {
        context,
        message: e.to_string(),
    }
}

/// One stored contract.
#[derive(Clone)]
pub struct Stored {
    /// The document as stored (canonical JSON).
    pub document: String,
    /// When it was last put, in epoch milliseconds.
    pub updated_ms: i64,
    /// The compiled contract, or why the stored document no longer compiles.
    pub compiled: Result<Arc<Compiled>, String>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("updated_ms", &self.updated_ms)
            .field("compiles", &self.compiled.is_ok())
            .finish()
    }
}

/// The contract that applies to an event, as [`ContractStore::applicable`] finds it.
#[derive(Clone, Debug)]
pub enum Applicable {
    /// No contract: the event is only checked to be JSON, as Lambda checks it.
    None,
    /// This contract.
    Contract(Arc<Compiled>),
    /// The stored contract no longer compiles; events are refused until it is replaced.
    Broken(String),
}

/// Function → qualifier (empty for the function's own contract) → contract: looked up
/// with borrowed names, so the check on every invoke allocates nothing.
type Map = HashMap<String, HashMap<String, Stored>>;

/// Where contracts are kept.
enum Backend {
    /// `contracts.db`, this node's own.
    Sqlite(Connection),
    /// Shared by the nodes of a deployment.
    Postgres(Replica),
}

/// The namespace and the kind of contracts in a shared store.
const NAMESPACE: &str = "contracts";
const KIND: &str = "contract";

/// One contract as a shared record.
#[derive(Serialize, Deserialize)]
struct Record {
    function: String,
    qualifier: String,
    document: String,
    updated_ms: i64,
}

/// A shared record's id: names and qualifiers never hold `:`.
fn record_id(function: &str, qualifier: &str) -> String {
    format!("{function}:{qualifier}")
}

fn map_of(snapshot: &Snapshot) -> Map {
    let mut map = Map::new();
    for r in snapshot.records.iter().filter(|r| r.kind == KIND) {
        // A record that does not parse is a damaged row: it names no function to refuse,
        // so it is reported and skipped.
        let Ok(record) = serde_json::from_str::<Record>(&r.text) else {
            tracing::error!(id = %r.id, "a shared input contract record does not parse");
            continue;
        };
        let compiled = compile(&record.document);
        map.entry(record.function).or_default().insert(
            record.qualifier,
            Stored {
                document: record.document,
                updated_ms: record.updated_ms,
                compiled,
            },
        );
    }
    map
}

struct Inner {
    /// Serializes writers: each writes the store first, then takes `map`'s write lock only
    /// to change memory, so readers never wait for a commit.
    backend: Mutex<Backend>,
    map: RwLock<Map>,
    /// Events refused per function since the server started.
    refusals: Mutex<HashMap<String, u64>>,
}

/// Every function's and alias's input contract.
#[derive(Clone)]
pub struct ContractStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ContractStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContractStore").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn compile(document: &str) -> Result<Arc<Compiled>, String> {
    let contract = InputContract::parse(document.as_bytes()).map_err(|e| e.to_string())?;
    Compiled::compile(&contract)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

impl ContractStore {
    /// Opens (creating) `DATA_DIR/contracts.db` and compiles every contract in it.
    pub fn open(data_dir: &Path) -> Result<ContractStore, StoreError> {
        let db = warden_sqlite::open(
            &data_dir.join("contracts.db"),
            &warden_sqlite::Options {
                synchronous: warden_sqlite::Synchronous::Full,
                migrations: MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(store("opening the input contract store"))?;
        drop(db.reader);
        let conn = db.writer;
        let mut map = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT function, qualifier, document, updated_ms FROM contracts")
                .map_err(store("reading input contracts"))?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })
                .map_err(store("reading input contracts"))?;
            for row in rows {
                let (function, qualifier, document, updated_ms) =
                    row.map_err(store("reading input contracts"))?;
                let compiled = compile(&document);
                map.entry(function).or_insert_with(HashMap::new).insert(
                    qualifier,
                    Stored {
                        document,
                        updated_ms,
                        compiled,
                    },
                );
            }
        }
        Ok(Self::with_backend(Backend::Sqlite(conn), map))
    }

    /// Opens the contracts of the PostgreSQL database at `url`, shared with the other
    /// nodes, with a pool of `connections`, and compiles every one.
    pub fn open_postgres(url: &str, connections: usize) -> Result<ContractStore, StoreError> {
        let pool = warden_postgres::Pool::open(
            url,
            &warden_postgres::Options {
                connections,
                application_name: "warden-contracts".to_owned(),
            },
            &[warden_postgres::records::TRACK],
        )
        .map_err(store("opening the input contract store"))?;
        ContractStore::open_shared(pool)
    }

    /// [`ContractStore::open_postgres`] on a pool opened with the shared records' track,
    /// which other services may share.
    pub fn open_shared(pool: warden_postgres::Pool) -> Result<ContractStore, StoreError> {
        let (replica, snapshot) =
            Replica::open(pool, NAMESPACE).map_err(store("opening the input contract store"))?;
        Ok(Self::with_backend(
            Backend::Postgres(replica),
            map_of(&snapshot),
        ))
    }

    fn with_backend(backend: Backend, map: Map) -> ContractStore {
        ContractStore {
            inner: Arc::new(Inner {
                backend: Mutex::new(backend),
                map: RwLock::new(map),
                refusals: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// With a shared store, reads the contracts again if another node changed them since
    /// this node last read or wrote them; returns whether it did.
    pub fn refresh(&self) -> Result<bool, StoreError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let Backend::Postgres(replica) = &mut *backend else {
            return Ok(false);
        };
        replica.refresh(
            |e| store("reading input contracts")(e),
            |snapshot| {
                *self.write() = map_of(&snapshot);
                Ok(())
            },
        )
    }

    /// Runs one change: `decide` (from the memory of every contract, up to date with what
    /// all nodes committed) returns what to write (`Some` document to put, `None` to
    /// delete) for each `(function, qualifier)`, and its answer. The writes are committed
    /// before memory changes.
    fn change<T>(
        &self,
        context: &'static str,
        decide: impl FnOnce(&Map) -> Result<(Vec<((String, String), Option<Stored>)>, T), StoreError>,
    ) -> Result<T, StoreError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let (writes, answer) = match &mut *backend {
            Backend::Sqlite(conn) => {
                let (writes, answer) = decide(&self.read())?;
                let tx = conn.transaction().map_err(store(context))?;
                for ((function, qualifier), stored) in &writes {
                    match stored {
                        Some(s) => tx.execute(
                            "INSERT INTO contracts (function, qualifier, document, updated_ms) \
                             VALUES (?1, ?2, ?3, ?4) \
                             ON CONFLICT (function, qualifier) DO UPDATE SET \
                             document = excluded.document, updated_ms = excluded.updated_ms",
                            params![function, qualifier, s.document, s.updated_ms],
                        ),
                        None => tx.execute(
                            "DELETE FROM contracts WHERE function = ?1 AND qualifier = ?2",
                            params![function, qualifier],
                        ),
                    }
                    .map_err(store(context))?;
                }
                tx.commit().map_err(store(context))?;
                (writes, answer)
            }
            Backend::Postgres(replica) => {
                let mut w = replica.begin(
                    |e| store(context)(e),
                    |snapshot| {
                        *self.write() = map_of(&snapshot);
                        Ok(())
                    },
                )?;
                let (writes, answer) = decide(&self.read())?;
                for ((function, qualifier), stored) in &writes {
                    let id = record_id(function, qualifier);
                    match stored {
                        Some(s) => {
                            let text = serde_json::to_string(&Record {
                                function: function.clone(),
                                qualifier: qualifier.clone(),
                                document: s.document.clone(),
                                updated_ms: s.updated_ms,
                            })
                            .map_err(store(context))?;
                            w.put(KIND, &id, text)
                        }
                        None => w.delete(KIND, &id),
                    }
                    .map_err(store(context))?;
                }
                replica.commit(w).map_err(store(context))?;
                (writes, answer)
            }
        };
        let mut map = self.write();
        for ((function, qualifier), stored) in writes {
            match stored {
                Some(s) => {
                    map.entry(function).or_default().insert(qualifier, s);
                }
                None => {
                    if let Some(by_qualifier) = map.get_mut(&function) {
                        by_qualifier.remove(&qualifier);
                        if by_qualifier.is_empty() {
                            map.remove(&function);
                        }
                    }
                }
            }
        }
        drop(map);
        drop(backend);
        Ok(answer)
    }

    /// Every stored contract that no longer compiles, and why: `(function, qualifier,
    /// reason)`, for the server to report at start.
    pub fn broken(&self) -> Vec<(String, String, String)> {
        self.read()
            .iter()
            .flat_map(|(f, by_qualifier)| {
                by_qualifier.iter().filter_map(move |(q, s)| {
                    s.compiled
                        .as_ref()
                        .err()
                        .map(|e| (f.clone(), q.clone(), e.clone()))
                })
            })
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.inner
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.inner
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Parses and compiles `document`, then stores it as the contract of `function`
    /// (`qualifier` empty) or of its alias `qualifier`, replacing any. Nothing is stored
    /// unless it compiles. Returns what was stored.
    pub fn put(
        &self,
        function: &str,
        qualifier: &str,
        document: &[u8],
    ) -> Result<Stored, StoreError> {
        let contract = InputContract::parse(document)?;
        let compiled = Arc::new(Compiled::compile(&contract)?);
        let stored = Stored {
            document: contract.to_json(),
            updated_ms: now_ms(),
            compiled: Ok(compiled),
        };
        self.change("storing an input contract", |map| {
            // Writers are serialized: the count cannot change before the write.
            let exists = map.get(function).is_some_and(|q| q.contains_key(qualifier));
            let count: usize = map.values().map(HashMap::len).sum();
            if !exists && count >= MAX_CONTRACTS {
                return Err(StoreError::LimitExceeded);
            }
            Ok((
                vec![(
                    (function.to_owned(), qualifier.to_owned()),
                    Some(stored.clone()),
                )],
                stored.clone(),
            ))
        })
    }

    /// The contract of `function` (`qualifier` empty) or of its alias `qualifier`.
    pub fn get(&self, function: &str, qualifier: &str) -> Option<Stored> {
        self.read()
            .get(function)
            .and_then(|q| q.get(qualifier))
            .cloned()
    }

    /// Deletes one contract; whether there was one.
    pub fn delete(&self, function: &str, qualifier: &str) -> Result<bool, StoreError> {
        self.change("deleting an input contract", |map| {
            let existed = map.get(function).is_some_and(|q| q.contains_key(qualifier));
            let writes = if existed {
                vec![((function.to_owned(), qualifier.to_owned()), None)]
            } else {
                Vec::new()
            };
            Ok((writes, existed))
        })
    }

    /// Deletes every contract of `function` (its own and its aliases'), when the function
    /// is deleted.
    pub fn delete_function(&self, function: &str) -> Result<(), StoreError> {
        self.change("deleting a function's input contracts", |map| {
            let writes = map
                .get(function)
                .into_iter()
                .flat_map(HashMap::keys)
                .map(|q| ((function.to_owned(), q.clone()), None))
                .collect();
            Ok((writes, ()))
        })?;
        self.inner
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(function);
        Ok(())
    }

    /// Counts one event of `function` refused by its contract.
    pub fn record_refusal(&self, function: &str) {
        let mut counts = self
            .inner
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Bounded like the contracts: a function without one is never counted.
        if counts.len() < MAX_CONTRACTS || counts.contains_key(function) {
            *counts.entry(function.to_owned()).or_default() += 1;
        }
    }

    /// Events of `function` its contract refused since the server started.
    pub fn refusals(&self, function: &str) -> u64 {
        self.inner
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(function)
            .copied()
            .unwrap_or(0)
    }

    /// The contract an event for `function` invoked through `alias` (if any) must meet:
    /// the alias's own, else the function's.
    pub fn applicable(&self, function: &str, alias: Option<&str>) -> Applicable {
        let map = self.read();
        let Some(by_qualifier) = map.get(function) else {
            return Applicable::None;
        };
        let stored = alias
            .and_then(|a| by_qualifier.get(a))
            .or_else(|| by_qualifier.get(""));
        match stored {
            None => Applicable::None,
            Some(Stored {
                compiled: Ok(c), ..
            }) => Applicable::Contract(Arc::clone(c)),
            Some(Stored {
                compiled: Err(e), ..
            }) => Applicable::Broken(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails loudly on what it did not expect"
    )]
    use super::*;

    const SCHEMA: &str = r#"{"EventSchema": {"type": "object", "required": ["id"]}}"#;

    #[test]
    fn contracts_persist_apply_by_alias_and_go_with_their_function() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContractStore::open(dir.path()).unwrap();
        assert!(matches!(store.applicable("f", None), Applicable::None));
        store.put("f", "", SCHEMA.as_bytes()).unwrap();
        store
            .put("f", "live", br#"{"EventSchema": {"type": "array"}}"#)
            .unwrap();
        let check = |alias: Option<&str>, event: &[u8]| match store.applicable("f", alias) {
            Applicable::Contract(c) => c.check_event(event).is_ok(),
            other => panic!("{other:?}"),
        };
        assert!(check(None, br#"{"id": 1}"#));
        assert!(!check(None, b"[]"));
        assert!(check(Some("live"), b"[]"));
        assert!(!check(Some("live"), br#"{"id": 1}"#));
        // An alias without its own contract gets the function's.
        assert!(check(Some("other"), br#"{"id": 1}"#));
        // A document that does not compile is refused and changes nothing.
        assert!(store
            .put(
                "f",
                "",
                br#"{"EventSchema": {"$ref": "https://example.com/s"}}"#
            )
            .is_err());
        assert!(check(None, br#"{"id": 1}"#));

        drop(store);
        let store = ContractStore::open(dir.path()).unwrap();
        assert!(store.get("f", "live").is_some());
        assert!(store.broken().is_empty());
        assert!(store.delete("f", "live").unwrap());
        assert!(!store.delete("f", "live").unwrap());
        store.put("g", "", SCHEMA.as_bytes()).unwrap();
        store.delete_function("f").unwrap();
        assert!(matches!(store.applicable("f", None), Applicable::None));
        assert!(matches!(
            store.applicable("g", None),
            Applicable::Contract(_)
        ));
        drop(store);
        let store = ContractStore::open(dir.path()).unwrap();
        assert!(store.get("f", "").is_none());
        assert!(store.get("g", "").is_some());
    }

    #[test]
    fn a_stored_contract_that_no_longer_compiles_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        drop(ContractStore::open(dir.path()).unwrap());
        // What an older build might have stored and this one refuses.
        let conn = rusqlite::Connection::open(dir.path().join("contracts.db")).unwrap();
        conn.execute(
            "INSERT INTO contracts VALUES ('f', '', '{\"Bogus\": 1}', 0)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = ContractStore::open(dir.path()).unwrap();
        assert_eq!(store.broken().len(), 1);
        assert!(matches!(store.applicable("f", None), Applicable::Broken(_)));
    }

    #[test]
    fn nodes_sharing_a_store_enforce_each_others_contracts() {
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        let a = ContractStore::open_postgres(&url, 1).unwrap();
        let b = ContractStore::open_postgres(&url, 1).unwrap();
        a.put("f", "", SCHEMA.as_bytes()).unwrap();
        assert!(matches!(b.applicable("f", None), Applicable::None));
        assert!(b.refresh().unwrap());
        assert!(!b.refresh().unwrap(), "nothing newer");
        match b.applicable("f", None) {
            Applicable::Contract(c) => assert!(c.check_event(b"[]").is_err()),
            other => panic!("{other:?}"),
        }
        // A change decides from what every node committed, even before its poll: B, which
        // has not seen A's alias contract, deletes the function's contracts, both of them.
        a.put("f", "live", br#"{"EventSchema": {"type": "array"}}"#)
            .unwrap();
        b.delete_function("f").unwrap();
        assert!(a.refresh().unwrap());
        assert!(matches!(a.applicable("f", Some("live")), Applicable::None));
        assert!(a.get("f", "live").is_none());
        // Deleting what B never saw reports it existed.
        a.put("g", "", SCHEMA.as_bytes()).unwrap();
        assert!(b.delete("g", "").unwrap());
        // A node opened later holds what is stored.
        a.put("h", "v1", SCHEMA.as_bytes()).unwrap();
        let c = ContractStore::open_postgres(&url, 1).unwrap();
        assert!(c.get("h", "v1").is_some());
        assert!(c.get("g", "").is_none());
    }
}

//! The store's contract, tested once for every backend: each test here is a function of a
//! [`Fixture`], and [`contract_tests!`] turns a list of them into one `#[test]` per backend
//! (`contract::<area>::sqlite::<name>` and `contract::<area>::postgres::<name>`).
//!
//! The PostgreSQL backend runs against a real server the tests start
//! (`warden_testservers::Postgres::shared`), each test in a database of its own.

use std::sync::Arc;

use crate::{PostgresStore, SqliteStore, Store};

/// The backends every contract test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// One empty store of one backend, and what keeps it alive.
pub(crate) struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Which backend it is.
    pub backend: Backend,
    /// How to open the same data again (a restart): the SQLite file or the PostgreSQL
    /// URL.
    reopen: Reopen,
    _dir: Option<tempfile::TempDir>,
}

enum Reopen {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Fixture {
    /// A new, empty store.
    pub fn new(backend: Backend) -> Fixture {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("warden.db");
                let store = Arc::new(SqliteStore::open(&path).unwrap());
                Fixture {
                    store,
                    backend,
                    reopen: Reopen::Sqlite(path),
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let url = warden_testservers::Postgres::shared()
                    .fresh_database()
                    .unwrap();
                let store = Arc::new(PostgresStore::open(&url, 4).unwrap());
                Fixture {
                    store,
                    backend,
                    reopen: Reopen::Postgres(url),
                    _dir: None,
                }
            }
        }
    }

    /// A second store on the same data, as another process or node would open it.
    pub fn reopen(&self) -> Arc<dyn Store> {
        match &self.reopen {
            Reopen::Sqlite(path) => Arc::new(SqliteStore::open(path).unwrap()),
            Reopen::Postgres(url) => Arc::new(PostgresStore::open(url, 4).unwrap()),
        }
    }
}

/// `contract_tests!(a, b, c)` defines, for each name, a `#[test]` in module `sqlite` and
/// one in module `postgres` that call `a(&Fixture::new(backend))`.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&$crate::contract::Fixture::new($crate::contract::Backend::Sqlite));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(&$crate::contract::Fixture::new($crate::contract::Backend::Postgres));
                }
            )*
        }
    };
}

// The areas of the contract; each file ends with its `contract_tests!` list.
mod functions;
mod logs;

//! [`crate::Store`] on PostgreSQL: the shared backend several Warden nodes use at once
//! (`warden serve --store postgres://...`). It implements [`crate::FunctionStore`] and
//! [`crate::LayerStore`] (in `functions` and `layers`), [`crate::EventQueue`] (in `queue`)
//! and [`crate::LogStore`] (in `logs`), with the same contract as [`crate::SqliteStore`]:
//! the contract tests in `crate::contract` run against both.
//!
//! Connections, prepared statements, retried serialization failures and the versioned
//! schema are `warden-postgres`'s. Four schema tracks: `functions` (functions, versions,
//! aliases, layers, concurrency, policies, tags, settings, the async queue) and `logs`,
//! like SQLite's two files, `code` (the shared code, [`PostgresCode`]) and `concurrency`
//! (the nodes' leases of concurrency slots, [`PostgresSlotLeases`]). Every method blocks its caller until PostgreSQL answered; it may be
//! called from any thread, async workers included.

use warden_postgres::{Options, Pool, Track};

use crate::StoreError;

pub use code::PostgresCode;

pub mod code;
mod functions;
mod layers;
mod logs;
mod nodes;
mod queue;
mod slots;

pub use nodes::{LiveNode, NODE_HEARTBEAT, NODE_LIVENESS};
pub use slots::{PostgresSlotLeases, LEASE_TTL};

/// The connections a store opens unless told otherwise.
pub const DEFAULT_CONNECTIONS: usize = 8;

/// The shared [`crate::Store`]. Cheap to share behind an `Arc`; every method blocks.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Pool,
}

const FUNCTIONS: Track = Track {
    name: "functions",
    migrations: functions::MIGRATIONS,
};

const CODE: Track = Track {
    name: "code",
    migrations: code::MIGRATIONS,
};

const LOGS: Track = Track {
    name: "logs",
    migrations: logs::MIGRATIONS,
};

const CONCURRENCY: Track = Track {
    name: "concurrency",
    migrations: slots::MIGRATIONS,
};

const NODES: Track = Track {
    name: "nodes",
    migrations: nodes::MIGRATIONS,
};

impl PostgresStore {
    /// Connects to the database at `url` with `connections` connections and brings its
    /// schema up to date.
    pub fn open(url: &str, connections: usize) -> Result<Self, StoreError> {
        let pool = Pool::open(
            url,
            &Options {
                connections,
                ..Options::default()
            },
            &[FUNCTIONS, LOGS, CODE, CONCURRENCY, NODES],
        )?;
        Ok(PostgresStore { pool })
    }

    /// The shared code store on the same database, for [`crate::BlobStore::with_shared`].
    pub fn shared_code(&self) -> code::PostgresCode {
        code::PostgresCode::new(self.pool.clone())
    }

    /// Host, port and database (never the password), for messages.
    pub fn target(&self) -> &str {
        self.pool.target()
    }
}

impl From<warden_postgres::Error> for StoreError {
    fn from(e: warden_postgres::Error) -> Self {
        match e {
            warden_postgres::Error::SchemaTooNew {
                found, supported, ..
            } => StoreError::SchemaTooNew { found, supported },
            other => StoreError::Backend {
                context: "talking to PostgreSQL",
                source: Box::new(other),
            },
        }
    }
}

/// A backend failure, its PostgreSQL cause kept only as an opaque source.
fn pg(context: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |source| StoreError::Backend {
        context,
        source: Box::new(source),
    }
}

impl From<postgres::Error> for StoreError {
    fn from(source: postgres::Error) -> Self {
        StoreError::Backend {
            context: "running a transaction",
            source: Box::new(source),
        }
    }
}

impl warden_postgres::AsPostgres for StoreError {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        match self {
            StoreError::Backend { source, .. } => source.downcast_ref::<postgres::Error>(),
            _ => None,
        }
    }
}

//! Records shared by the nodes of a deployment for a service that keeps all of its state
//! in memory: JSON text keyed by kind and id, under one namespace per service, with a
//! generation that every write moves.
//!
//! The service decides from memory, so a write must decide from the latest state of all
//! nodes: [`SharedRecords::begin`] opens a transaction that locks the namespace's
//! generation row (writers of every node queue on it) and tells the caller the generation
//! it holds; a caller whose memory is older reads the records again inside the same
//! transaction ([`RecordsWrite::load`]) before it decides. [`RecordsWrite::commit`] moves
//! the generation on and commits. Readers of other nodes poll [`SharedRecords::generation`]
//! and reload when it moved ([`SharedRecords::load`], one consistent snapshot).

use crate::{Error, Migration, Options, Pool, Remote, Track};

const MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
CREATE TABLE shared_records (
    namespace TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (namespace, kind, id)
);

CREATE TABLE shared_generations (
    namespace TEXT COLLATE "C" PRIMARY KEY,
    generation BIGINT NOT NULL
);
"#,
)];

/// The `records` schema track.
pub const TRACK: Track = Track {
    name: "records",
    migrations: MIGRATIONS,
};

const ENSURE: &str = "INSERT INTO shared_generations (namespace, generation) VALUES ($1, 0) \
     ON CONFLICT (namespace) DO NOTHING";
const GENERATION: &str = "SELECT generation FROM shared_generations WHERE namespace = $1";
const LOCK: &str = "SELECT generation FROM shared_generations WHERE namespace = $1 FOR UPDATE";
const LOAD: &str =
    "SELECT kind, id, record FROM shared_records WHERE namespace = $1 ORDER BY kind, id";
const PUT: &str =
    "INSERT INTO shared_records (namespace, kind, id, record) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (namespace, kind, id) DO UPDATE SET record = EXCLUDED.record";
const DELETE: &str = "DELETE FROM shared_records WHERE namespace = $1 AND kind = $2 AND id = $3";
const BUMP: &str = "UPDATE shared_generations SET generation = generation + 1 \
     WHERE namespace = $1 RETURNING generation";

/// The statements of a write, in the order the steps index them.
const WRITE: &[&str] = &[LOCK, LOAD, PUT, DELETE, BUMP];
const W_LOCK: usize = 0;
const W_LOAD: usize = 1;
const W_PUT: usize = 2;
const W_DELETE: usize = 3;
const W_BUMP: usize = 4;

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its kind (the service's table).
    pub kind: String,
    /// Its id within the kind.
    pub id: String,
    /// The record, as the service serialized it.
    pub text: String,
}

/// Every record of a namespace at one generation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The generation the records were read at.
    pub generation: i64,
    /// The records, by kind and id.
    pub records: Vec<Record>,
}

/// One namespace of shared records (see the module docs). Cheap to clone.
#[derive(Clone, Debug)]
pub struct SharedRecords {
    pool: Pool,
    namespace: &'static str,
}

impl SharedRecords {
    /// Connects to `url` with a pool of `connections`, brings the `records` track up to
    /// date and makes `namespace`'s generation row if it is the first node to use it.
    pub fn open(
        url: &str,
        connections: usize,
        namespace: &'static str,
    ) -> Result<SharedRecords, Error> {
        let pool = Pool::open(
            url,
            &Options {
                connections,
                application_name: format!("warden-{namespace}"),
            },
            &[TRACK],
        )?;
        SharedRecords::on(pool, namespace)
    }

    /// [`SharedRecords::open`] on a pool that several namespaces share; the pool must
    /// have been opened with [`TRACK`].
    pub fn on(pool: Pool, namespace: &'static str) -> Result<SharedRecords, Error> {
        pool.run(move |conn| -> Result<(), Error> {
            let ensure = conn.prepare(ENSURE).map_err(Error::at("preparing"))?;
            conn.client()
                .execute(&ensure, &[&namespace])
                .map_err(Error::at("making a records namespace"))?;
            Ok(())
        })?;
        Ok(SharedRecords { pool, namespace })
    }

    /// The namespace's generation now.
    pub fn generation(&self) -> Result<i64, Error> {
        let namespace = self.namespace;
        self.pool.run(move |conn| {
            let s = conn.prepare(GENERATION).map_err(Error::at("preparing"))?;
            Ok(conn
                .client()
                .query_one(&s, &[&namespace])
                .map_err(Error::at("reading a records generation"))?
                .get(0))
        })
    }

    /// Every record with the generation they make up, read in one consistent snapshot.
    pub fn load(&self) -> Result<Snapshot, Error> {
        let namespace = self.namespace;
        self.pool.run(move |conn| {
            let generation = conn.prepare(GENERATION).map_err(Error::at("preparing"))?;
            let load = conn.prepare(LOAD).map_err(Error::at("preparing"))?;
            let mut tx = conn
                .client()
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(Error::at("opening a snapshot"))?;
            let generation: i64 = tx
                .query_one(&generation, &[&namespace])
                .map_err(Error::at("reading a records generation"))?
                .get(0);
            let records = rows(
                &tx.query(&load, &[&namespace])
                    .map_err(Error::at("reading records"))?,
            );
            tx.commit().map_err(Error::at("closing a snapshot"))?;
            Ok(Snapshot {
                generation,
                records,
            })
        })
    }

    /// Opens a write: a transaction holding the namespace's lock, which every other
    /// writer waits for until this one commits or is dropped (rolled back).
    pub fn begin(&self) -> Result<RecordsWrite, Error> {
        let mut remote = self.pool.begin(WRITE)?;
        let namespace = self.namespace;
        let generation = remote.run("locking a records namespace", move |tx, s| {
            Ok(tx.query_one(&s[W_LOCK], &[&namespace])?.get::<_, i64>(0))
        })?;
        Ok(RecordsWrite {
            remote,
            namespace,
            generation,
        })
    }
}

/// One node's copy of a namespace for a service that holds it in memory: the records and
/// the generation its memory holds. It keeps the rule every such service follows: a
/// write decides from memory at least as new as the generation it locked, and a poll
/// installs another node's change only when the generation moved. Its owner serialises
/// the calls (a service holds it under its writer's lock), so memory and generation move
/// together.
#[derive(Debug)]
pub struct Replica {
    records: SharedRecords,
    generation: i64,
}

impl Replica {
    /// Opens `namespace` on `pool` (opened with [`TRACK`]) and reads it: the replica, and
    /// the records memory starts from.
    pub fn open(pool: Pool, namespace: &'static str) -> Result<(Replica, Snapshot), Error> {
        let records = SharedRecords::on(pool, namespace)?;
        let snapshot = records.load()?;
        let replica = Replica {
            records,
            generation: snapshot.generation,
        };
        Ok((replica, snapshot))
    }

    /// When another node changed the records since this replica last read or wrote them,
    /// gives them to `install` and returns true. `map` turns the store's errors into the
    /// caller's.
    pub fn refresh<E>(
        &mut self,
        map: impl Fn(Error) -> E,
        install: impl FnOnce(Snapshot) -> Result<(), E>,
    ) -> Result<bool, E> {
        if self.records.generation().map_err(&map)? == self.generation {
            return Ok(false);
        }
        let snapshot = self.records.load().map_err(&map)?;
        let generation = snapshot.generation;
        install(snapshot)?;
        self.generation = generation;
        Ok(true)
    }

    /// Opens a write ([`SharedRecords::begin`]); when memory is older than the generation
    /// it locked, first gives `install` the records as the write sees them, so the caller
    /// decides from them.
    pub fn begin<E>(
        &mut self,
        map: impl Fn(Error) -> E,
        install: impl FnOnce(Snapshot) -> Result<(), E>,
    ) -> Result<RecordsWrite, E> {
        let mut w = self.records.begin().map_err(&map)?;
        if w.generation() != self.generation {
            let snapshot = w.load().map_err(&map)?;
            install(snapshot)?;
            self.generation = w.generation();
        }
        Ok(w)
    }

    /// Commits `write`; memory, which the caller changes next, is then at its generation.
    pub fn commit(&mut self, write: RecordsWrite) -> Result<(), Error> {
        self.generation = write.commit()?;
        Ok(())
    }
}

fn rows(rows: &[postgres::Row]) -> Vec<Record> {
    rows.iter()
        .map(|r| Record {
            kind: r.get(0),
            id: r.get(1),
            text: r.get(2),
        })
        .collect()
}

/// A write in progress (see [`SharedRecords::begin`]).
#[derive(Debug)]
pub struct RecordsWrite {
    remote: Remote,
    namespace: &'static str,
    generation: i64,
}

impl RecordsWrite {
    /// The generation this write starts from: every write committed before it.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Every record as this write sees it (for a caller whose memory is older than
    /// [`RecordsWrite::generation`]).
    pub fn load(&mut self) -> Result<Snapshot, Error> {
        let namespace = self.namespace;
        let records = self.remote.run("reading records", move |tx, s| {
            Ok(rows(&tx.query(&s[W_LOAD], &[&namespace])?))
        })?;
        Ok(Snapshot {
            generation: self.generation,
            records,
        })
    }

    /// Writes (or replaces) one record.
    pub fn put(&mut self, kind: &str, id: &str, text: String) -> Result<(), Error> {
        let (namespace, kind, id) = (self.namespace, kind.to_owned(), id.to_owned());
        self.remote.run("writing a record", move |tx, s| {
            tx.execute(&s[W_PUT], &[&namespace, &kind, &id, &text])
                .map(drop)
        })
    }

    /// Deletes one record (nothing if there is none).
    pub fn delete(&mut self, kind: &str, id: &str) -> Result<(), Error> {
        let (namespace, kind, id) = (self.namespace, kind.to_owned(), id.to_owned());
        self.remote.run("deleting a record", move |tx, s| {
            tx.execute(&s[W_DELETE], &[&namespace, &kind, &id])
                .map(drop)
        })
    }

    /// Moves the generation on and commits; returns the new generation.
    pub fn commit(mut self) -> Result<i64, Error> {
        let namespace = self.namespace;
        let generation = self
            .remote
            .run("moving a records generation", move |tx, s| {
                Ok(tx.query_one(&s[W_BUMP], &[&namespace])?.get::<_, i64>(0))
            })?;
        self.remote.commit()?;
        Ok(generation)
    }
}

//! The configuration history in PostgreSQL, shared by the nodes of a deployment (the
//! `config` schema track). The same tables and rules as the SQLite store's; what differs:
//!
//! - **One writer per resource.** An item's status and state id depend on the resource's
//!   latest item, so a recording transaction first takes an advisory lock on the
//!   resource's type and id: two nodes recording the same resource queue, and each reads
//!   the other's item. Items take their ids from a sequence inside that lock, so one
//!   resource's items are numbered in the order they commit.
//! - **Ids across resources** are unique and grow, but two resources' items may commit
//!   out of id order; pages are per resource, which is all the API pages over.

use serde_json::Value;
use warden_postgres::{Migration, Pool, Track};

use crate::store::{
    Error, HistoryQuery, Item, NewItem, Order, Resource, Status, MAX_ITEMS, MAX_ITEMS_PER_RESOURCE,
};

const MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
CREATE TABLE config_items (
    id BIGSERIAL PRIMARY KEY,
    resource_type TEXT COLLATE "C" NOT NULL,
    resource_id TEXT COLLATE "C" NOT NULL,
    resource_name TEXT NOT NULL,
    arn TEXT NOT NULL,
    capture_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    state_id BIGINT NOT NULL,
    hash TEXT NOT NULL,
    configuration TEXT,
    supplementary TEXT NOT NULL,
    tags TEXT NOT NULL,
    related_events TEXT NOT NULL
);
CREATE INDEX config_items_by_resource ON config_items (resource_type, resource_id, id);

CREATE TABLE config_resources (
    resource_type TEXT COLLATE "C" NOT NULL,
    resource_id TEXT COLLATE "C" NOT NULL,
    resource_name TEXT NOT NULL,
    deleted_ms BIGINT,
    PRIMARY KEY (resource_type, resource_id)
);
"#,
)];

/// The `config` schema track.
pub const TRACK: Track = Track {
    name: "config",
    migrations: MIGRATIONS,
};

/// The class of the advisory locks on one resource's history ("cfg" in ASCII).
const LOCK_CLASS: i32 = 0x0063_6667;

const LOCK: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2 || chr(1) || $3))";
const LATEST: &str = "SELECT state_id, status, hash FROM config_items \
     WHERE resource_type = $1 AND resource_id = $2 ORDER BY id DESC LIMIT 1";
const INSERT: &str = "INSERT INTO config_items (resource_type, resource_id, resource_name, arn, \
     capture_ms, status, state_id, hash, configuration, supplementary, tags, related_events) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";
const BOUND_RESOURCE: &str = "DELETE FROM config_items WHERE resource_type = $1 \
     AND resource_id = $2 AND id < (SELECT min(id) FROM (SELECT id FROM config_items \
     WHERE resource_type = $1 AND resource_id = $2 ORDER BY id DESC LIMIT $3) newest)";
const COUNT: &str = "SELECT count(*) FROM config_items";
const BOUND_ALL: &str = "DELETE FROM config_items WHERE id IN \
     (SELECT id FROM config_items ORDER BY id LIMIT $1)";
const PUT_RESOURCE: &str = "INSERT INTO config_resources (resource_type, resource_id, \
     resource_name, deleted_ms) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (resource_type, resource_id) DO UPDATE SET \
     resource_name = EXCLUDED.resource_name, deleted_ms = EXCLUDED.deleted_ms";
const KNOWN: &str = "SELECT EXISTS (SELECT 1 FROM config_resources \
     WHERE resource_type = $1 AND resource_id = $2)";
const HISTORY_REVERSE: &str = "SELECT id, resource_type, resource_id, resource_name, capture_ms, \
     status, state_id, configuration, supplementary, tags, related_events, arn FROM config_items \
     WHERE resource_type = $1 AND resource_id = $2 AND capture_ms >= $3 AND capture_ms <= $4 \
     AND ($5::BIGINT IS NULL OR id < $5) ORDER BY id DESC LIMIT $6";
const HISTORY_FORWARD: &str = "SELECT id, resource_type, resource_id, resource_name, capture_ms, \
     status, state_id, configuration, supplementary, tags, related_events, arn FROM config_items \
     WHERE resource_type = $1 AND resource_id = $2 AND capture_ms >= $3 AND capture_ms <= $4 \
     AND ($5::BIGINT IS NULL OR id > $5) ORDER BY id ASC LIMIT $6";
const DISCOVERED: &str = "SELECT n, resource_type, resource_id, resource_name, deleted_ms FROM \
     (SELECT ROW_NUMBER() OVER (ORDER BY resource_id) AS n, * FROM config_resources \
     WHERE resource_type = $1) numbered \
     WHERE n > $2 AND ($3 OR deleted_ms IS NULL) AND ($4::TEXT IS NULL OR resource_name = $4) \
     ORDER BY n";

fn shared(context: &'static str) -> impl FnOnce(warden_postgres::Error) -> Error {
    move |source| Error::Shared { context, source }
}

fn db(context: &'static str) -> impl Fn(postgres::Error) -> Error {
    move |e| Error::Shared {
        context,
        source: warden_postgres::Error::at(context)(e),
    }
}

impl warden_postgres::AsPostgres for Error {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        match self {
            Error::Shared { source, .. } => source.as_postgres(),
            _ => None,
        }
    }
}

impl From<warden_postgres::Error> for Error {
    fn from(source: warden_postgres::Error) -> Self {
        Error::Shared {
            context: "talking to PostgreSQL",
            source,
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        db("talking to PostgreSQL")(e)
    }
}

/// Opens the history in the database at `url` with a pool of `connections`.
pub(crate) fn open(url: &str, connections: usize) -> Result<Pool, Error> {
    Pool::open(
        url,
        &warden_postgres::Options {
            connections,
            application_name: "warden-config".to_owned(),
        },
        &[TRACK],
    )
    .map_err(shared("opening the configuration history"))
}

fn item(row: &postgres::Row) -> Result<Item, postgres::Error> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let state: i64 = row.try_get(6)?;
    let status: String = row.try_get(5)?;
    let events: String = row.try_get(10)?;
    Ok(Item {
        id: row.try_get(0)?,
        resource_type: row.try_get(1)?,
        resource_id: row.try_get(2)?,
        resource_name: row.try_get(3)?,
        arn: row.try_get(11)?,
        capture_ms: row.try_get(4)?,
        status: Status::parse(&status),
        state_id: u64::try_from(state).unwrap_or(0),
        configuration: json(row.try_get(7)?),
        supplementary: json(Some(row.try_get(8)?)).unwrap_or(Value::Null),
        tags: json(Some(row.try_get(9)?)).unwrap_or(Value::Null),
        related_events: serde_json::from_str(&events).unwrap_or_default(),
    })
}

/// [`crate::ConfigStore::record`] on PostgreSQL; `digest` is the new item's hash.
pub(crate) fn record(pool: &Pool, new: NewItem, digest: String) -> Result<Option<Item>, Error> {
    pool.run(move |conn| {
        let lock = conn.prepare(LOCK).map_err(db("preparing"))?;
        let latest = conn.prepare(LATEST).map_err(db("preparing"))?;
        let insert = conn.prepare(INSERT).map_err(db("preparing"))?;
        let bound_resource = conn.prepare(BOUND_RESOURCE).map_err(db("preparing"))?;
        let count = conn.prepare(COUNT).map_err(db("preparing"))?;
        let bound_all = conn.prepare(BOUND_ALL).map_err(db("preparing"))?;
        let put_resource = conn.prepare(PUT_RESOURCE).map_err(db("preparing"))?;
        conn.transaction(|tx| -> Result<Option<Item>, Error> {
            tx.execute(&lock, &[&LOCK_CLASS, &new.resource_type, &new.resource_id])
                .map_err(db("locking a resource's history"))?;
            let last: Option<(i64, String, String)> = tx
                .query_opt(&latest, &[&new.resource_type, &new.resource_id])
                .map_err(db("reading the latest item"))?
                .map(|r| (r.get(0), r.get(1), r.get(2)));
            let was_deleted = last
                .as_ref()
                .is_none_or(|(_, status, _)| status == Status::ResourceDeleted.as_str());
            let status = match (&new.configuration, &last) {
                (None, _) if was_deleted => return Ok(None),
                (None, _) => Status::ResourceDeleted,
                (Some(_), Some((_, _, h))) if !was_deleted && *h == digest => return Ok(None),
                (Some(_), _) if was_deleted => Status::ResourceDiscovered,
                (Some(_), _) => Status::Ok,
            };
            let state_id = last.as_ref().map_or(1, |(s, _, _)| s + 1);
            let events = serde_json::to_string(&new.related_events).unwrap_or_else(|_| "[]".into());
            let configuration = new.configuration.as_ref().map(Value::to_string);
            let id: i64 = tx
                .query_one(
                    &insert,
                    &[
                        &new.resource_type,
                        &new.resource_id,
                        &new.resource_name,
                        &new.arn,
                        &new.capture_ms,
                        &status.as_str(),
                        &state_id,
                        &digest,
                        &configuration,
                        &new.supplementary.to_string(),
                        &new.tags.to_string(),
                        &events,
                    ],
                )
                .map_err(db("storing an item"))?
                .get(0);
            tx.execute(
                &bound_resource,
                &[
                    &new.resource_type,
                    &new.resource_id,
                    &MAX_ITEMS_PER_RESOURCE,
                ],
            )
            .map_err(db("bounding a resource's history"))?;
            if id % 1024 == 0 {
                let n: i64 = tx
                    .query_one(&count, &[])
                    .map_err(db("counting items"))?
                    .get(0);
                if n > MAX_ITEMS {
                    tx.execute(&bound_all, &[&(n - MAX_ITEMS + MAX_ITEMS / 100)])
                        .map_err(db("bounding the history"))?;
                }
            }
            let deleted = (status == Status::ResourceDeleted).then_some(new.capture_ms);
            tx.execute(
                &put_resource,
                &[
                    &new.resource_type,
                    &new.resource_id,
                    &new.resource_name,
                    &deleted,
                ],
            )
            .map_err(db("storing the resource"))?;
            Ok(Some(Item {
                id,
                resource_type: new.resource_type.clone(),
                resource_id: new.resource_id.clone(),
                resource_name: new.resource_name.clone(),
                arn: new.arn.clone(),
                capture_ms: new.capture_ms,
                status,
                state_id: u64::try_from(state_id).unwrap_or(0),
                configuration: new.configuration.clone(),
                supplementary: new.supplementary.clone(),
                tags: new.tags.clone(),
                related_events: new.related_events.clone(),
            }))
        })
    })
}

/// [`crate::ConfigStore::history`] on PostgreSQL: `limit + 1` items after `after`.
pub(crate) fn history(
    pool: &Pool,
    query: &HistoryQuery,
    after: Option<i64>,
    fetch: i64,
) -> Result<Vec<Item>, Error> {
    let query = query.clone();
    pool.run(move |conn| {
        let known = conn.prepare(KNOWN).map_err(db("preparing"))?;
        let page = conn
            .prepare(match query.order {
                Order::Reverse => HISTORY_REVERSE,
                Order::Forward => HISTORY_FORWARD,
            })
            .map_err(db("preparing"))?;
        let client = conn.client();
        let exists: bool = client
            .query_one(&known, &[&query.resource_type, &query.resource_id])
            .map_err(db("reading a resource"))?
            .get(0);
        if !exists {
            return Err(Error::NotDiscovered {
                resource_type: query.resource_type.clone(),
                resource_id: query.resource_id.clone(),
            });
        }
        let rows = client
            .query(
                &page,
                &[
                    &query.resource_type,
                    &query.resource_id,
                    &query.earlier_ms.unwrap_or(i64::MIN),
                    &query.later_ms.unwrap_or(i64::MAX),
                    &after,
                    &fetch,
                ],
            )
            .map_err(db("reading history"))?;
        rows.iter()
            .map(|r| item(r).map_err(db("reading history")))
            .collect()
    })
}

/// [`crate::ConfigStore::discovered`] on PostgreSQL: each resource with its position.
pub(crate) fn discovered(
    pool: &Pool,
    resource_type: &str,
    after: i64,
    include_deleted: bool,
    name: Option<&str>,
) -> Result<Vec<(i64, Resource)>, Error> {
    let (resource_type, name) = (resource_type.to_owned(), name.map(str::to_owned));
    pool.run(move |conn| {
        let list = conn.prepare(DISCOVERED).map_err(db("preparing"))?;
        let rows = conn
            .client()
            .query(&list, &[&resource_type, &after, &include_deleted, &name])
            .map_err(db("listing resources"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    Resource {
                        resource_type: r.try_get(1)?,
                        resource_id: r.try_get(2)?,
                        resource_name: r.try_get(3)?,
                        deleted_ms: r.try_get(4)?,
                    },
                ))
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(db("listing resources"))
    })
}

//! The configuration items' store: SQLite (`DATA_DIR/config.db`), or PostgreSQL shared by
//! the nodes of a deployment (`crate::postgres`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The largest configuration (with its supplementary configuration and tags) an item keeps.
pub const MAX_CONFIGURATION_BYTES: usize = 1024 * 1024;
/// The most items (or resource identifiers) one page holds.
pub const MAX_LIMIT: u32 = 100;
/// The most items kept of one resource; older ones go first.
pub const MAX_ITEMS_PER_RESOURCE: i64 = 1_000;
/// The most items kept in all; past it the oldest go first, a hundredth at a time.
pub const MAX_ITEMS: i64 = 1_000_000;

const MIGRATIONS: &[&str] = &["
CREATE TABLE item (
    id INTEGER PRIMARY KEY,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    arn TEXT NOT NULL,
    capture_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    state_id INTEGER NOT NULL,
    hash TEXT NOT NULL,
    configuration TEXT,
    supplementary TEXT NOT NULL,
    tags TEXT NOT NULL,
    related_events TEXT NOT NULL
);
CREATE INDEX item_by_resource ON item (resource_type, resource_id, id);
CREATE TABLE resource (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    deleted_ms INTEGER,
    PRIMARY KEY (resource_type, resource_id)
) WITHOUT ROWID;
"];

/// Why a configuration store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or migrating the database failed.
    #[error("opening the configuration history at `{}`: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: warden_sqlite::Error,
    },
    /// A read or write of the shared store (PostgreSQL) failed.
    #[error("the configuration history failed while {context}: {source}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// What went wrong (never the connection's password).
        #[source]
        source: warden_postgres::Error,
    },
    /// A read or write failed.
    #[error("the configuration history failed while {context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// What went wrong.
        #[source]
        source: warden_sqlite::Error,
    },
    /// A configuration larger than [`MAX_CONFIGURATION_BYTES`].
    #[error("a configuration of {0} bytes is larger than {MAX_CONFIGURATION_BYTES}")]
    TooLarge(usize),
    /// A page token this store did not hand out for this query.
    #[error("the next token is invalid")]
    InvalidNextToken,
    /// A limit outside `1..=MAX_LIMIT`.
    #[error("the limit must be between 1 and {MAX_LIMIT}, not {0}")]
    InvalidLimit(u32),
    /// Nothing was ever recorded of this resource.
    #[error("no configuration of {resource_type} `{resource_id}` was recorded")]
    NotDiscovered {
        /// Its type.
        resource_type: String,
        /// Its id.
        resource_id: String,
    },
}

fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| Error::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}

/// An item's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The first item of a resource (or the first after it was deleted).
    ResourceDiscovered,
    /// A later item.
    Ok,
    /// The resource is gone.
    ResourceDeleted,
}

impl Status {
    /// AWS Config's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::ResourceDiscovered => "ResourceDiscovered",
            Status::Ok => "OK",
            Status::ResourceDeleted => "ResourceDeleted",
        }
    }

    pub(crate) fn parse(s: &str) -> Status {
        match s {
            "ResourceDiscovered" => Status::ResourceDiscovered,
            "ResourceDeleted" => Status::ResourceDeleted,
            _ => Status::Ok,
        }
    }
}

/// What a capture saw of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    /// `AWS::Lambda::Function`.
    pub resource_type: String,
    /// Its id (for Warden's resources, the name).
    pub resource_id: String,
    /// Its name.
    pub resource_name: String,
    /// Its ARN.
    pub arn: String,
    /// When it was captured (epoch ms).
    pub capture_ms: i64,
    /// Its configuration; `None` when it no longer exists.
    pub configuration: Option<Value>,
    /// What AWS Config keeps beside the configuration (a function's policy).
    pub supplementary: Value,
    /// Its tags.
    pub tags: Value,
    /// The audit events that caused the change.
    pub related_events: Vec<String>,
}

/// A stored configuration item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The resource's type.
    pub resource_type: String,
    /// Its id.
    pub resource_id: String,
    /// Its name.
    pub resource_name: String,
    /// Its ARN.
    pub arn: String,
    /// When it was captured (epoch ms).
    pub capture_ms: i64,
    /// The item's status.
    pub status: Status,
    /// One more than the resource's previous item's.
    pub state_id: u64,
    /// The configuration (`None` for a deleted resource).
    pub configuration: Option<Value>,
    /// The supplementary configuration.
    pub supplementary: Value,
    /// The tags.
    pub tags: Value,
    /// The audit events that caused it.
    pub related_events: Vec<String>,
    /// Its position in the store, for paging.
    pub(crate) id: i64,
}

/// A discovered resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its type.
    pub resource_type: String,
    /// Its id.
    pub resource_id: String,
    /// Its name.
    pub resource_name: String,
    /// When it was deleted, if it was.
    pub deleted_ms: Option<i64>,
}

/// Which way a history runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first (AWS Config's default).
    #[default]
    Reverse,
    /// Oldest first.
    Forward,
}

/// A `GetResourceConfigHistory` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The type.
    pub resource_type: String,
    /// The id.
    pub resource_id: String,
    /// Only items captured at or after this time.
    pub earlier_ms: Option<i64>,
    /// Only items captured at or before this time.
    pub later_ms: Option<i64>,
    /// Newest or oldest first.
    pub order: Order,
    /// The page size; 10 when absent, as AWS Config.
    pub limit: Option<u32>,
    /// The previous page's token.
    pub next_token: Option<String>,
}

/// The configuration history.
#[derive(Debug)]
pub struct ConfigStore {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite {
        writer: Box<Mutex<Connection>>,
        reader: Box<Mutex<Connection>>,
    },
    Postgres(warden_postgres::Pool),
}

fn hash(configuration: Option<&Value>, supplementary: &Value, tags: &Value) -> String {
    let mut h = Sha256::new();
    h.update(configuration.map(Value::to_string).unwrap_or_default());
    h.update(b"\n");
    h.update(supplementary.to_string());
    h.update(b"\n");
    h.update(tags.to_string());
    hex::encode(h.finalize())
}

fn token(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("cfg1:{id}"))
}

fn cursor(token: Option<&str>) -> Result<Option<i64>, Error> {
    let Some(t) = token else { return Ok(None) };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|_| Error::InvalidNextToken)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::InvalidNextToken)?;
    text.strip_prefix("cfg1:")
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or(Error::InvalidNextToken)
}

fn limit(asked: Option<u32>, default: u32) -> Result<u32, Error> {
    match asked {
        None | Some(0) => Ok(default),
        Some(n) if n <= MAX_LIMIT => Ok(n),
        Some(n) => Err(Error::InvalidLimit(n)),
    }
}

fn item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let state: i64 = row.get(6)?;
    let status: String = row.get(5)?;
    let events: String = row.get(10)?;
    Ok(Item {
        id: row.get(0)?,
        resource_type: row.get(1)?,
        resource_id: row.get(2)?,
        resource_name: row.get(3)?,
        arn: row.get(11)?,
        capture_ms: row.get(4)?,
        status: Status::parse(&status),
        state_id: u64::try_from(state).unwrap_or(0),
        configuration: json(row.get(7)?),
        supplementary: json(Some(row.get(8)?)).unwrap_or(Value::Null),
        tags: json(Some(row.get(9)?)).unwrap_or(Value::Null),
        related_events: serde_json::from_str(&events).unwrap_or_default(),
    })
}

const ITEM_COLUMNS: &str = "id, resource_type, resource_id, resource_name, capture_ms, status, state_id, configuration, supplementary, tags, related_events, arn";

impl ConfigStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let options = warden_sqlite::Options {
            synchronous: warden_sqlite::Synchronous::Full,
            migrations: MIGRATIONS,
            incremental_vacuum: false,
        };
        let conns = warden_sqlite::open(path, &options).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(ConfigStore {
            backend: Backend::Sqlite {
                writer: Box::new(Mutex::new(conns.writer)),
                reader: Box::new(Mutex::new(conns.reader)),
            },
        })
    }

    /// Opens the history in the PostgreSQL database at `url`, shared with the other
    /// nodes, with a pool of `connections`.
    pub fn open_postgres(url: &str, connections: usize) -> Result<Self, Error> {
        Ok(ConfigStore {
            backend: Backend::Postgres(crate::postgres::open(url, connections)?),
        })
    }

    /// [`ConfigStore::open_postgres`] on a pool other stores share, opened with
    /// [`crate::POSTGRES_TRACK`] among its tracks.
    pub fn open_shared(pool: warden_postgres::Pool) -> Self {
        ConfigStore {
            backend: Backend::Postgres(pool),
        }
    }

    /// Stores `new` as the resource's next item if it differs from its latest one; returns
    /// the stored item, or `None` when nothing changed.
    pub fn record(&self, new: NewItem) -> Result<Option<Item>, Error> {
        let size = new
            .configuration
            .as_ref()
            .map_or(0, |c| c.to_string().len())
            + new.supplementary.to_string().len()
            + new.tags.to_string().len();
        if size > MAX_CONFIGURATION_BYTES {
            return Err(Error::TooLarge(size));
        }
        let digest = hash(new.configuration.as_ref(), &new.supplementary, &new.tags);
        let writer = match &self.backend {
            Backend::Sqlite { writer, .. } => writer,
            Backend::Postgres(pool) => return crate::postgres::record(pool, new, digest),
        };
        let mut conn = warden_sqlite::lock(writer);
        let tx = warden_sqlite::immediate(&mut conn).map_err(store("recording an item"))?;
        let latest: Option<(i64, String, String)> = tx
            .query_row(
                "SELECT state_id, status, hash FROM item WHERE resource_type = ?1 AND resource_id = ?2 ORDER BY id DESC LIMIT 1",
                params![new.resource_type, new.resource_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(store("reading the latest item"))?;
        let was_deleted = latest
            .as_ref()
            .is_none_or(|(_, status, _)| status == Status::ResourceDeleted.as_str());
        let status = match (&new.configuration, &latest) {
            // Gone, and never seen or already recorded as gone: nothing to say.
            (None, _) if was_deleted => return Ok(None),
            (None, _) => Status::ResourceDeleted,
            (Some(_), Some((_, _, h))) if !was_deleted && *h == digest => return Ok(None),
            (Some(_), _) if was_deleted => Status::ResourceDiscovered,
            (Some(_), _) => Status::Ok,
        };
        let state_id = latest.as_ref().map_or(1, |(s, _, _)| s + 1);
        let events = serde_json::to_string(&new.related_events).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO item (resource_type, resource_id, resource_name, arn, capture_ms, status, state_id, hash, configuration, supplementary, tags, related_events) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                new.resource_type,
                new.resource_id,
                new.resource_name,
                new.arn,
                new.capture_ms,
                status.as_str(),
                state_id,
                digest,
                new.configuration.as_ref().map(Value::to_string),
                new.supplementary.to_string(),
                new.tags.to_string(),
                events,
            ],
        )
        .map_err(store("storing an item"))?;
        let id = tx.last_insert_rowid();
        // Bounded: a resource changed again and again keeps its newest items, and the
        // store as a whole its newest (a caller churning names cannot grow it forever).
        tx.execute(
            "DELETE FROM item WHERE resource_type = ?1 AND resource_id = ?2 AND id <= ?3 - ?4
             AND id NOT IN (SELECT id FROM item WHERE resource_type = ?1 AND resource_id = ?2 ORDER BY id DESC LIMIT ?4)",
            params![new.resource_type, new.resource_id, id, MAX_ITEMS_PER_RESOURCE],
        )
        .map_err(store("bounding a resource's history"))?;
        if id % 1024 == 0 {
            let count: i64 = tx
                .query_row("SELECT COUNT(*) FROM item", [], |r| r.get(0))
                .map_err(store("counting items"))?;
            if count > MAX_ITEMS {
                tx.execute(
                    "DELETE FROM item WHERE id IN (SELECT id FROM item ORDER BY id LIMIT ?1)",
                    [count - MAX_ITEMS + MAX_ITEMS / 100],
                )
                .map_err(store("bounding the history"))?;
            }
        }
        let deleted = (status == Status::ResourceDeleted).then_some(new.capture_ms);
        tx.execute(
            "INSERT INTO resource (resource_type, resource_id, resource_name, deleted_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (resource_type, resource_id) DO UPDATE SET resource_name = excluded.resource_name, deleted_ms = excluded.deleted_ms",
            params![new.resource_type, new.resource_id, new.resource_name, deleted],
        )
        .map_err(store("storing the resource"))?;
        tx.commit().map_err(store("committing an item"))?;
        Ok(Some(Item {
            id,
            resource_type: new.resource_type,
            resource_id: new.resource_id,
            resource_name: new.resource_name,
            arn: new.arn,
            capture_ms: new.capture_ms,
            status,
            state_id: u64::try_from(state_id).unwrap_or(0),
            configuration: new.configuration,
            supplementary: new.supplementary,
            tags: new.tags,
            related_events: new.related_events,
        }))
    }

    /// One page of a resource's items.
    pub fn history(&self, query: &HistoryQuery) -> Result<(Vec<Item>, Option<String>), Error> {
        let limit = limit(query.limit, 10)?;
        let after = cursor(query.next_token.as_deref())?;
        let reader = match &self.backend {
            Backend::Sqlite { reader, .. } => reader,
            Backend::Postgres(pool) => {
                let mut items = crate::postgres::history(pool, query, after, i64::from(limit) + 1)?;
                return Ok(page(&mut items, limit));
            }
        };
        let conn = warden_sqlite::lock(reader);
        let known: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM resource WHERE resource_type = ?1 AND resource_id = ?2)",
                params![query.resource_type, query.resource_id],
                |r| r.get(0),
            )
            .map_err(store("reading a resource"))?;
        if !known {
            return Err(Error::NotDiscovered {
                resource_type: query.resource_type.clone(),
                resource_id: query.resource_id.clone(),
            });
        }
        let (cmp, order) = match query.order {
            Order::Reverse => ("<", "DESC"),
            Order::Forward => (">", "ASC"),
        };
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM item WHERE resource_type = ?1 AND resource_id = ?2
             AND capture_ms >= ?3 AND capture_ms <= ?4 AND (?5 IS NULL OR id {cmp} ?5)
             ORDER BY id {order} LIMIT ?6"
        );
        let mut stmt = conn.prepare(&sql).map_err(store("reading history"))?;
        let rows = stmt
            .query_map(
                params![
                    query.resource_type,
                    query.resource_id,
                    query.earlier_ms.unwrap_or(i64::MIN),
                    query.later_ms.unwrap_or(i64::MAX),
                    after,
                    i64::from(limit) + 1,
                ],
                item_from_row,
            )
            .map_err(store("reading history"))?;
        let mut items = Vec::new();
        for row in rows {
            items.push(row.map_err(store("reading history"))?);
        }
        Ok(page(&mut items, limit))
    }

    /// One page of the resources of `resource_type` ever recorded (by id, or by name),
    /// deleted ones only if `include_deleted`.
    pub fn discovered(
        &self,
        resource_type: &str,
        ids: &[String],
        name: Option<&str>,
        include_deleted: bool,
        asked_limit: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<(Vec<Resource>, Option<String>), Error> {
        let limit = limit(asked_limit, MAX_LIMIT)?;
        let after = cursor(next_token)?.unwrap_or(-1);
        let reader = match &self.backend {
            Backend::Sqlite { reader, .. } => reader,
            Backend::Postgres(pool) => {
                let rows =
                    crate::postgres::discovered(pool, resource_type, after, include_deleted, name)?;
                return Ok(resources_page(rows, ids, limit));
            }
        };
        let conn = warden_sqlite::lock(reader);
        let mut stmt = conn
            .prepare(
                "SELECT rowid, resource_type, resource_id, resource_name, deleted_ms FROM
                 (SELECT ROW_NUMBER() OVER (ORDER BY resource_id) AS rowid, * FROM resource WHERE resource_type = ?1)
                 WHERE rowid > ?2 AND (?3 OR deleted_ms IS NULL) AND (?4 IS NULL OR resource_name = ?4)
                 ORDER BY rowid",
            )
            .map_err(store("listing resources"))?;
        let rows = stmt
            .query_map(params![resource_type, after, include_deleted, name], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Resource {
                        resource_type: r.get(1)?,
                        resource_id: r.get(2)?,
                        resource_name: r.get(3)?,
                        deleted_ms: r.get(4)?,
                    },
                ))
            })
            .map_err(store("listing resources"))?;
        let mut all = Vec::new();
        for row in rows {
            all.push(row.map_err(store("listing resources"))?);
        }
        Ok(resources_page(all, ids, limit))
    }
}

/// The first `limit` of `items` (read one past it) and the token of the next page.
fn page(items: &mut Vec<Item>, limit: u32) -> (Vec<Item>, Option<String>) {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|i| token(i.id))
    } else {
        None
    };
    (std::mem::take(items), next)
}

/// The first `limit` of `rows` (each with its position) that `ids` admits, and the token
/// of the next page.
fn resources_page(
    rows: Vec<(i64, Resource)>,
    ids: &[String],
    limit: u32,
) -> (Vec<Resource>, Option<String>) {
    let mut out = Vec::new();
    let mut next = None;
    for (n, resource) in rows {
        if !ids.is_empty() && !ids.contains(&resource.resource_id) {
            continue;
        }
        if out.len() == limit as usize {
            next = Some(token(n - 1));
            break;
        }
        out.push(resource);
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A store of each backend: a temporary SQLite file, or a database of its own in a
    /// real PostgreSQL server the tests start.
    #[derive(Clone, Copy)]
    enum Backend {
        Sqlite,
        Postgres,
    }

    struct Opened {
        store: ConfigStore,
        url: Option<String>,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for Opened {
        type Target = ConfigStore;
        fn deref(&self) -> &ConfigStore {
            &self.store
        }
    }

    fn open(backend: Backend) -> Opened {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Opened {
                store: ConfigStore::open(&dir.path().join("config.db")).unwrap(),
                url: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let url = warden_testservers::Postgres::shared()
                    .fresh_database()
                    .unwrap();
                Opened {
                    store: ConfigStore::open_postgres(&url, 2).unwrap(),
                    url: Some(url),
                    _dir: dir,
                }
            }
        }
    }

    macro_rules! on_both_backends {
        ($($name:ident),* $(,)?) => {
            mod sqlite {
                $(
                    #[test]
                    fn $name() {
                        super::$name(super::open(super::Backend::Sqlite));
                    }
                )*
            }
            mod postgres {
                $(
                    #[test]
                    fn $name() {
                        super::$name(super::open(super::Backend::Postgres));
                    }
                )*
            }
        };
    }

    on_both_backends!(
        items_are_kept_only_for_changes_and_number_their_states,
        discovered_resources_page_and_leave_deleted_ones_out_unless_asked,
        a_resource_keeps_only_its_newest_items,
        an_oversized_configuration_is_refused,
    );

    #[test]
    fn nodes_recording_one_resource_at_once_number_its_states_once_each() {
        let first = open(Backend::Postgres);
        let url = first.url.clone().unwrap();
        let nodes: Vec<ConfigStore> = (0..4)
            .map(|_| ConfigStore::open_postgres(&url, 1).unwrap())
            .collect();
        std::thread::scope(|scope| {
            for (n, node) in nodes.iter().enumerate() {
                scope.spawn(move || {
                    for i in 0..10 {
                        node.record(capture(Some(json!({ "node": n, "i": i })), "e"))
                            .unwrap()
                            .unwrap();
                    }
                });
            }
        });
        let (items, _) = first
            .history(&HistoryQuery {
                resource_type: "AWS::Lambda::Function".into(),
                resource_id: "f".into(),
                limit: Some(100),
                order: Order::Forward,
                ..HistoryQuery::default()
            })
            .unwrap();
        let states: Vec<u64> = items.iter().map(|i| i.state_id).collect();
        assert_eq!(states, (1..=40).collect::<Vec<u64>>());
        assert_eq!(items[0].status, Status::ResourceDiscovered);
        assert!(items[1..].iter().all(|i| i.status == Status::Ok));
    }

    fn capture(config: Option<Value>, event: &str) -> NewItem {
        NewItem {
            resource_type: "AWS::Lambda::Function".into(),
            resource_id: "f".into(),
            resource_name: "f".into(),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            capture_ms: 1_000,
            configuration: config,
            supplementary: json!({}),
            tags: json!({}),
            related_events: vec![event.into()],
        }
    }

    fn items_are_kept_only_for_changes_and_number_their_states(s: Opened) {
        // A deletion of something never seen says nothing.
        assert!(s.record(capture(None, "e0")).unwrap().is_none());
        let first = s
            .record(capture(Some(json!({"MemorySize": 128})), "e1"))
            .unwrap()
            .unwrap();
        assert_eq!(first.status, Status::ResourceDiscovered);
        assert_eq!(first.state_id, 1);
        // The same configuration again: no item.
        assert!(s
            .record(capture(Some(json!({"MemorySize": 128})), "e2"))
            .unwrap()
            .is_none());
        let second = s
            .record(capture(Some(json!({"MemorySize": 256})), "e3"))
            .unwrap()
            .unwrap();
        assert_eq!((second.status, second.state_id), (Status::Ok, 2));
        let gone = s.record(capture(None, "e4")).unwrap().unwrap();
        assert_eq!((gone.status, gone.state_id), (Status::ResourceDeleted, 3));
        assert!(s.record(capture(None, "e5")).unwrap().is_none());
        let back = s
            .record(capture(Some(json!({"MemorySize": 128})), "e6"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (back.status, back.state_id),
            (Status::ResourceDiscovered, 4)
        );

        let q = HistoryQuery {
            resource_type: "AWS::Lambda::Function".into(),
            resource_id: "f".into(),
            limit: Some(3),
            ..HistoryQuery::default()
        };
        let (page, token) = s.history(&q).unwrap();
        assert_eq!(
            page.iter().map(|i| i.state_id).collect::<Vec<_>>(),
            [4, 3, 2]
        );
        assert_eq!(page[2].related_events, ["e3"]);
        let (rest, end) = s
            .history(&HistoryQuery {
                next_token: token,
                ..q.clone()
            })
            .unwrap();
        assert_eq!(rest.iter().map(|i| i.state_id).collect::<Vec<_>>(), [1]);
        assert!(end.is_none());
        assert!(matches!(
            s.history(&HistoryQuery {
                next_token: Some("garbage".into()),
                ..q.clone()
            }),
            Err(Error::InvalidNextToken)
        ));
        assert!(matches!(
            s.history(&HistoryQuery {
                limit: Some(101),
                ..q.clone()
            }),
            Err(Error::InvalidLimit(101))
        ));
        assert!(matches!(
            s.history(&HistoryQuery {
                resource_id: "g".into(),
                ..q
            }),
            Err(Error::NotDiscovered { .. })
        ));
    }

    fn discovered_resources_page_and_leave_deleted_ones_out_unless_asked(s: Opened) {
        for name in ["a", "b", "c"] {
            let mut item = capture(Some(json!({})), "e");
            item.resource_id = name.into();
            item.resource_name = name.into();
            s.record(item).unwrap();
        }
        let mut gone = capture(None, "e");
        gone.resource_id = "b".into();
        gone.resource_name = "b".into();
        s.record(gone).unwrap();
        let ids = |r: Vec<Resource>| r.into_iter().map(|r| r.resource_id).collect::<Vec<_>>();
        let (live, _) = s
            .discovered("AWS::Lambda::Function", &[], None, false, None, None)
            .unwrap();
        assert_eq!(ids(live), ["a", "c"]);
        let (page, token) = s
            .discovered("AWS::Lambda::Function", &[], None, true, Some(2), None)
            .unwrap();
        assert_eq!(ids(page), ["a", "b"]);
        let (rest, end) = s
            .discovered(
                "AWS::Lambda::Function",
                &[],
                None,
                true,
                Some(2),
                token.as_deref(),
            )
            .unwrap();
        assert_eq!(ids(rest), ["c"]);
        assert!(end.is_none());
    }

    fn a_resource_keeps_only_its_newest_items(s: Opened) {
        for i in 0..(MAX_ITEMS_PER_RESOURCE + 5) {
            s.record(capture(Some(json!({ "n": i })), "e"))
                .unwrap()
                .unwrap();
        }
        let q = HistoryQuery {
            resource_type: "AWS::Lambda::Function".into(),
            resource_id: "f".into(),
            limit: Some(100),
            order: Order::Forward,
            ..HistoryQuery::default()
        };
        let (first, _) = s.history(&q).unwrap();
        // The five oldest are gone; state ids keep counting.
        assert_eq!(first[0].state_id, 6);
        assert_eq!(first[0].configuration, Some(json!({ "n": 5 })));
    }

    fn an_oversized_configuration_is_refused(s: Opened) {
        let big = "x".repeat(MAX_CONFIGURATION_BYTES);
        assert!(matches!(
            s.record(capture(Some(json!({ "d": big })), "e")),
            Err(Error::TooLarge(_))
        ));
    }
}

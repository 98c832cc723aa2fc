//! Which VPCs and subnets have a flow log (`CreateFlowLogs`), in `DATA_DIR/flowlogs.db` or,
//! for nodes sharing a PostgreSQL store, in its `flowlogs` namespace of shared records;
//! held in memory for [`FlowLogs::traffic_for`], which the flow collector asks for every
//! flow. With a shared store, a change holds the namespace's lock and first reads what
//! other nodes changed, and [`FlowLogs::refresh`] reads another node's change.
//!
//! A flow log names a resource (a VPC or a subnet), the traffic it records (`ACCEPT`,
//! `REJECT` or `ALL`) and the log group its records are filed under. The records
//! themselves are kept by the enforcement's flow log store, readable per function.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use warden_postgres::records::{RecordsWrite, Replica, Snapshot};

use crate::error::{shared, store, NetworkError};

/// Most flow logs.
pub const MAX_FLOW_LOGS: usize = 1_000;

/// What a flow log records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficType {
    /// Accepted flows.
    Accept,
    /// Rejected flows.
    Reject,
    /// Both.
    All,
}

impl TrafficType {
    /// Parses EC2's spelling.
    pub fn parse(s: &str) -> Result<TrafficType, NetworkError> {
        match s {
            "ACCEPT" => Ok(TrafficType::Accept),
            "REJECT" => Ok(TrafficType::Reject),
            "ALL" => Ok(TrafficType::All),
            other => Err(NetworkError::invalid_value(format!(
                "TrafficType '{other}' is not one of ACCEPT, REJECT, ALL"
            ))),
        }
    }

    /// EC2's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficType::Accept => "ACCEPT",
            TrafficType::Reject => "REJECT",
            TrafficType::All => "ALL",
        }
    }

    /// Whether a flow with `rejected` is recorded.
    pub fn records(self, rejected: bool) -> bool {
        match self {
            TrafficType::All => true,
            TrafficType::Accept => !rejected,
            TrafficType::Reject => rejected,
        }
    }
}

/// One flow log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLog {
    /// `fl-` and 17 hex digits.
    pub id: String,
    /// The VPC or subnet it records.
    pub resource_id: String,
    /// What it records.
    pub traffic_type: TrafficType,
    /// The log group its records are filed under.
    pub log_group_name: String,
    /// When it was made, in milliseconds since the epoch.
    pub created_ms: i64,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE flow_logs (
    id TEXT PRIMARY KEY NOT NULL,
    resource_id TEXT NOT NULL,
    traffic_type TEXT NOT NULL,
    log_group_name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    tags TEXT NOT NULL
) STRICT;
"#];

/// Where the flow logs are kept.
enum Backend {
    /// `flowlogs.db`, this node's own.
    Sqlite(Connection),
    /// Shared by the nodes of a deployment.
    Postgres(Replica),
}

/// A change under way: the connection, or the shared store's replica with the write it
/// opened (which holds the namespace's lock).
enum Open<'a> {
    Sqlite(&'a Connection),
    Postgres(&'a mut Replica, RecordsWrite),
}

/// The namespace and kind of flow logs in a shared store.
const NAMESPACE: &str = "flowlogs";
const KIND: &str = "flowlog";

/// One flow log as a shared record, with its place in creation order.
#[derive(Serialize, Deserialize)]
struct Record {
    seq: i64,
    id: String,
    resource_id: String,
    traffic_type: String,
    log_group_name: String,
    created_ms: i64,
    tags: Vec<(String, String)>,
}

/// The flow logs the records of one snapshot hold, oldest first, with the next sequence.
fn logs_of(snapshot: &Snapshot) -> Result<(Vec<FlowLog>, i64), NetworkError> {
    let mut records = Vec::new();
    for r in snapshot.records.iter().filter(|r| r.kind == KIND) {
        let record: Record = serde_json::from_str(&r.text).map_err(|_| NetworkError::Shared {
            context: "reading the shared flow logs",
            message: format!("the record of flow log `{}` does not parse", r.id),
        })?;
        records.push(record);
    }
    records.sort_by_key(|r| r.seq);
    let next = records.last().map_or(1, |r| r.seq + 1);
    let logs = records
        .into_iter()
        .map(|r| FlowLog {
            traffic_type: TrafficType::parse(&r.traffic_type).unwrap_or(TrafficType::All),
            id: r.id,
            resource_id: r.resource_id,
            log_group_name: r.log_group_name,
            created_ms: r.created_ms,
            tags: r.tags,
        })
        .collect();
    Ok((logs, next))
}

struct Inner {
    /// The writer; holding it is what makes a change exclusive on this node.
    backend: Mutex<Backend>,
    logs: RwLock<Vec<FlowLog>>,
    /// With a shared store, the sequence the next flow log takes.
    next_seq: Mutex<i64>,
}

/// The flow logs; cheap to clone.
#[derive(Clone)]
pub struct FlowLogs {
    inner: Arc<Inner>,
}

fn tags_text(tags: &[(String, String)]) -> String {
    let pairs: Vec<[&str; 2]> = tags.iter().map(|(k, v)| [k.as_str(), v.as_str()]).collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

fn tags_of(text: &str) -> Vec<(String, String)> {
    serde_json::from_str::<Vec<[String; 2]>>(text)
        .unwrap_or_default()
        .into_iter()
        .map(|[k, v]| (k, v))
        .collect()
}

impl FlowLogs {
    /// Opens (creating) `DATA_DIR/flowlogs.db` and reads every flow log.
    pub fn open(data_dir: &Path) -> Result<FlowLogs, NetworkError> {
        let db = warden_sqlite::open(
            &data_dir.join("flowlogs.db"),
            &warden_sqlite::Options {
                synchronous: warden_sqlite::Synchronous::Full,
                migrations: MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(|source| NetworkError::Store {
            context: "opening the flow log store",
            source,
        })?;
        drop(db.reader);
        let conn = db.writer;
        let logs = {
            let mut stmt = conn
                .prepare(
                    "SELECT id, resource_id, traffic_type, log_group_name, created_ms, tags \
                     FROM flow_logs ORDER BY rowid",
                )
                .map_err(store("reading flow logs"))?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                })
                .map_err(store("reading flow logs"))?;
            let mut logs = Vec::new();
            for row in rows {
                let (id, resource_id, traffic, group, created_ms, tags) =
                    row.map_err(store("reading flow logs"))?;
                logs.push(FlowLog {
                    id,
                    resource_id,
                    traffic_type: TrafficType::parse(&traffic).unwrap_or(TrafficType::All),
                    log_group_name: group,
                    created_ms,
                    tags: tags_of(&tags),
                });
            }
            logs
        };
        Ok(FlowLogs::with_backend(Backend::Sqlite(conn), logs, 0))
    }

    /// Opens the flow logs on the shared records of `pool` (opened with their track),
    /// which every node of a deployment shares.
    pub fn open_shared(pool: warden_postgres::Pool) -> Result<FlowLogs, NetworkError> {
        let (replica, snapshot) =
            Replica::open(pool, NAMESPACE).map_err(shared("opening the flow log store"))?;
        let (logs, next) = logs_of(&snapshot)?;
        Ok(FlowLogs::with_backend(
            Backend::Postgres(replica),
            logs,
            next,
        ))
    }

    fn with_backend(backend: Backend, logs: Vec<FlowLog>, next_seq: i64) -> FlowLogs {
        FlowLogs {
            inner: Arc::new(Inner {
                backend: Mutex::new(backend),
                logs: RwLock::new(logs),
                next_seq: Mutex::new(next_seq),
            }),
        }
    }

    /// Installs what `snapshot` holds.
    fn install(&self, snapshot: &Snapshot) -> Result<(), NetworkError> {
        let (logs, next) = logs_of(snapshot)?;
        *self
            .inner
            .logs
            .write()
            .unwrap_or_else(PoisonError::into_inner) = logs;
        *warden_sqlite::lock(&self.inner.next_seq) = next;
        Ok(())
    }

    /// With a shared store, reads the flow logs again if another node changed them since
    /// this node last read or wrote them; returns whether it did.
    pub fn refresh(&self) -> Result<bool, NetworkError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let Backend::Postgres(replica) = &mut *backend else {
            return Ok(false);
        };
        replica.refresh(|e| shared("reading flow logs")(e), |s| self.install(&s))
    }

    /// Starts a change: with a shared store, opens its write, memory brought up to date
    /// first.
    fn start<'a>(
        &self,
        backend: &'a mut Backend,
        context: &'static str,
    ) -> Result<Open<'a>, NetworkError> {
        Ok(match backend {
            Backend::Sqlite(conn) => Open::Sqlite(conn),
            Backend::Postgres(replica) => {
                let w = replica.begin(|e| shared(context)(e), |s| self.install(&s))?;
                Open::Postgres(replica, w)
            }
        })
    }

    /// Every flow log, oldest first.
    pub fn list(&self) -> Vec<FlowLog> {
        self.inner
            .logs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Creates a flow log of `resource_id` (whose existence the caller checked).
    pub fn create(
        &self,
        resource_id: &str,
        traffic_type: TrafficType,
        log_group_name: &str,
        tags: Vec<(String, String)>,
    ) -> Result<FlowLog, NetworkError> {
        if log_group_name.is_empty()
            || log_group_name.len() > 512
            || !log_group_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-/.#".contains(&b))
        {
            return Err(NetworkError::invalid_value(
                "LogGroupName must be 1-512 of letters, digits and _-/.#",
            ));
        }
        crate::model::check_tags(&tags)?;
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let open = self.start(&mut backend, "creating a flow log")?;
        let mut logs = self
            .inner
            .logs
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if logs.len() >= MAX_FLOW_LOGS {
            return Err(NetworkError::LimitExceeded {
                code: "FlowLogsLimitExceeded",
                message: format!("at most {MAX_FLOW_LOGS} flow logs"),
            });
        }
        if logs
            .iter()
            .any(|l| l.resource_id == resource_id && l.log_group_name == log_group_name)
        {
            return Err(NetworkError::Duplicate {
                code: "FlowLogAlreadyExists",
                message: format!(
                    "a flow log of {resource_id} to log group {log_group_name} exists already"
                ),
            });
        }
        let log = FlowLog {
            id: crate::model::new_id("fl"),
            resource_id: resource_id.to_owned(),
            traffic_type,
            log_group_name: log_group_name.to_owned(),
            created_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
            tags,
        };
        match open {
            Open::Sqlite(conn) => {
                conn.execute(
                    "INSERT INTO flow_logs (id, resource_id, traffic_type, log_group_name, created_ms, tags) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        log.id,
                        log.resource_id,
                        log.traffic_type.as_str(),
                        log.log_group_name,
                        log.created_ms,
                        tags_text(&log.tags)
                    ],
                )
                .map_err(store("creating a flow log"))?;
            }
            Open::Postgres(replica, mut w) => {
                let mut next = warden_sqlite::lock(&self.inner.next_seq);
                let text = serde_json::to_string(&Record {
                    seq: *next,
                    id: log.id.clone(),
                    resource_id: log.resource_id.clone(),
                    traffic_type: log.traffic_type.as_str().to_owned(),
                    log_group_name: log.log_group_name.clone(),
                    created_ms: log.created_ms,
                    tags: log.tags.clone(),
                })
                .map_err(|e| NetworkError::Shared {
                    context: "creating a flow log",
                    message: e.to_string(),
                })?;
                w.put(KIND, &log.id, text)
                    .map_err(shared("creating a flow log"))?;
                replica.commit(w).map_err(shared("creating a flow log"))?;
                *next += 1;
            }
        }
        logs.push(log.clone());
        Ok(log)
    }

    /// Deletes a flow log; `false` if there is none by that id.
    pub fn delete(&self, id: &str) -> Result<bool, NetworkError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let open = self.start(&mut backend, "deleting a flow log")?;
        let mut logs = self
            .inner
            .logs
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(pos) = logs.iter().position(|l| l.id == id) else {
            return Ok(false);
        };
        match open {
            Open::Sqlite(conn) => {
                conn.execute("DELETE FROM flow_logs WHERE id = ?1", params![id])
                    .map_err(store("deleting a flow log"))?;
            }
            Open::Postgres(replica, mut w) => {
                w.delete(KIND, id).map_err(shared("deleting a flow log"))?;
                replica.commit(w).map_err(shared("deleting a flow log"))?;
            }
        }
        logs.remove(pos);
        Ok(true)
    }

    /// What is recorded of the flows of an instance in `vpc_id` and `subnet_ids`: the
    /// union of the flow logs of the VPC and of each subnet, `None` if none.
    pub fn traffic_for(&self, vpc_id: &str, subnet_ids: &[String]) -> Option<TrafficType> {
        let logs = self
            .inner
            .logs
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut accept = false;
        let mut reject = false;
        for l in logs
            .iter()
            .filter(|l| l.resource_id == vpc_id || subnet_ids.contains(&l.resource_id))
        {
            accept |= l.traffic_type.records(false);
            reject |= l.traffic_type.records(true);
        }
        match (accept, reject) {
            (true, true) => Some(TrafficType::All),
            (true, false) => Some(TrafficType::Accept),
            (false, true) => Some(TrafficType::Reject),
            (false, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_logs_persist_and_decide_what_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let logs = FlowLogs::open(dir.path()).unwrap();
        let vpc = logs
            .create("vpc-1", TrafficType::Reject, "g", vec![])
            .unwrap();
        assert!(vpc.id.starts_with("fl-"));
        assert_eq!(logs.traffic_for("vpc-1", &[]), Some(TrafficType::Reject));
        assert_eq!(logs.traffic_for("vpc-2", &[]), None);
        logs.create(
            "subnet-1",
            TrafficType::Accept,
            "g",
            vec![("k".into(), "v".into())],
        )
        .unwrap();
        assert_eq!(
            logs.traffic_for("vpc-1", &["subnet-1".to_owned()]),
            Some(TrafficType::All)
        );
        // Duplicates, bad names and traffic types are refused.
        assert_eq!(
            logs.create("vpc-1", TrafficType::All, "g", vec![])
                .unwrap_err()
                .code(),
            "FlowLogAlreadyExists"
        );
        assert!(logs
            .create("vpc-1", TrafficType::All, "bad name", vec![])
            .is_err());
        assert!(TrafficType::parse("SOME").is_err());
        drop(logs);
        let again = FlowLogs::open(dir.path()).unwrap();
        assert_eq!(again.list().len(), 2);
        assert_eq!(again.list()[1].tags, [("k".to_owned(), "v".to_owned())]);
        assert!(again.delete(&vpc.id).unwrap());
        assert!(!again.delete(&vpc.id).unwrap());
        assert_eq!(again.traffic_for("vpc-1", &[]), None);
    }

    #[test]
    fn nodes_sharing_a_store_record_by_each_others_flow_logs() {
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        let node = || {
            let pool = warden_postgres::Pool::open(
                &url,
                &warden_postgres::Options {
                    connections: 1,
                    ..warden_postgres::Options::default()
                },
                &[warden_postgres::records::TRACK],
            )
            .unwrap();
            FlowLogs::open_shared(pool).unwrap()
        };
        let (a, b) = (node(), node());
        let vpc = a.create("vpc-1", TrafficType::Reject, "g", vec![]).unwrap();
        assert_eq!(b.traffic_for("vpc-1", &[]), None);
        assert!(b.refresh().unwrap());
        assert!(!b.refresh().unwrap(), "nothing newer");
        assert_eq!(b.traffic_for("vpc-1", &[]), Some(TrafficType::Reject));
        // A change decides from what every node committed, even before its poll.
        a.create("subnet-1", TrafficType::Accept, "g", vec![])
            .unwrap();
        assert_eq!(
            b.create("subnet-1", TrafficType::All, "g", vec![])
                .unwrap_err()
                .code(),
            "FlowLogAlreadyExists"
        );
        assert!(b.delete(&vpc.id).unwrap());
        assert!(a.refresh().unwrap());
        assert_eq!(a.traffic_for("vpc-1", &[]), None);
        // Oldest first on every node, one opened later too.
        let c = node();
        let ids = |l: &FlowLogs| {
            l.list()
                .into_iter()
                .map(|f| f.resource_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&c), ["subnet-1"]);
        assert_eq!(ids(&a), ids(&c));
    }
}

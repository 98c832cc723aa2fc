//! Flow logs: what each instance's connections carried, accepted or rejected, read from the
//! table's flow sets and kept in `DATA_DIR/flows.db` (or, for nodes sharing a PostgreSQL
//! store, in its `flow_records`) in the fields of VPC Flow Logs' default format (version 2).
//!
//! Every packet through an instance link updates one element of the table's `flows` or
//! `rejects` set, keyed by its 5-tuple, with a packet and byte counter
//! ([`crate::nft::base_table`]). Every aggregation interval the collector reads both sets
//! (`nft -j list set`) and [`Tracker::advance`] turns what the counters grew by since the
//! previous reading into one record per flow and action, attributed to the instance whose
//! address is an end of it. A flow whose element expired and came back starts again from
//! zero, which the tracker sees as counters that went down.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use crate::EgressError;

/// A flow's 5-tuple.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IANA protocol number.
    pub protocol: u8,
    /// Source port (for ICMP, the type and code).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// `ACCEPT` or `REJECT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Let through.
    Accept,
    /// Refused.
    Reject,
}

impl Action {
    /// As flow logs write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
        }
    }
}

/// One element of a flow set: its key and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    /// The flow.
    pub key: FlowKey,
    /// Packets so far.
    pub packets: u64,
    /// Bytes so far.
    pub bytes: u64,
}

/// The elements of a set as `nft -j list set` prints it; elements that do not read as a
/// flow are skipped (the JSON comes from `nft`, but is parsed defensively all the same).
pub fn parse_set(json: &str) -> Vec<Counted> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let Some(items) = v.get("nftables").and_then(|n| n.as_array()) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| i.get("set")?.get("elem")?.as_array())
        .flatten()
        .filter_map(|e| {
            let e = e.get("elem")?;
            let parts = e.get("val")?.get("concat")?.as_array()?;
            let [src, dst, proto, sport, dport] = parts.as_slice() else {
                return None;
            };
            let counter = e.get("counter")?;
            Some(Counted {
                key: FlowKey {
                    src: src.as_str()?.parse().ok()?,
                    dst: dst.as_str()?.parse().ok()?,
                    protocol: protocol_number(proto)?,
                    src_port: u16::try_from(sport.as_u64()?).ok()?,
                    dst_port: u16::try_from(dport.as_u64()?).ok()?,
                },
                packets: counter.get("packets")?.as_u64()?,
                bytes: counter.get("bytes")?.as_u64()?,
            })
        })
        .collect()
}

/// A protocol as `nft` prints it: a name it knows or a number.
fn protocol_number(v: &serde_json::Value) -> Option<u8> {
    if let Some(n) = v.as_u64() {
        return u8::try_from(n).ok();
    }
    Some(match v.as_str()? {
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "sctp" => 132,
        "udplite" => 136,
        "dccp" => 33,
        other => other.parse().ok()?,
    })
}

/// One flow's growth over an aggregation interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// The flow.
    pub key: FlowKey,
    /// Accepted or rejected.
    pub action: Action,
    /// Packets in the interval.
    pub packets: u64,
    /// Bytes in the interval.
    pub bytes: u64,
}

/// The counters of the previous reading, to take differences from.
#[derive(Debug, Default)]
pub struct Tracker {
    previous: HashMap<(FlowKey, Action), (u64, u64)>,
}

impl Tracker {
    /// The growth of every flow since the previous reading; flows gone from the sets are
    /// forgotten.
    pub fn advance(&mut self, accepted: &[Counted], rejected: &[Counted]) -> Vec<Delta> {
        let mut next = HashMap::new();
        let mut out = Vec::new();
        for (set, action) in [(accepted, Action::Accept), (rejected, Action::Reject)] {
            for c in set {
                let id = (c.key.clone(), action);
                let (packets, bytes) = match self.previous.get(&id) {
                    Some(&(p, b)) if c.packets >= p && c.bytes >= b => (c.packets - p, c.bytes - b),
                    // Expired and counted again from zero.
                    _ => (c.packets, c.bytes),
                };
                if packets > 0 {
                    out.push(Delta {
                        key: c.key.clone(),
                        action,
                        packets,
                        bytes,
                    });
                }
                next.insert(id, (c.packets, c.bytes));
            }
        }
        self.previous = next;
        out
    }
}

/// One flow log record: VPC Flow Logs' version 2 fields, and the function and instance.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FlowRecord {
    /// Always 2.
    pub version: u8,
    /// The account.
    pub account_id: String,
    /// The instance's interface (`eni-` and the instance's number).
    pub interface_id: String,
    /// Source address.
    pub srcaddr: String,
    /// Destination address.
    pub dstaddr: String,
    /// Source port.
    pub srcport: u16,
    /// Destination port.
    pub dstport: u16,
    /// IANA protocol number.
    pub protocol: u8,
    /// Packets in the interval.
    pub packets: u64,
    /// Bytes in the interval.
    pub bytes: u64,
    /// Start of the interval, seconds since the epoch.
    pub start: i64,
    /// End of the interval.
    pub end: i64,
    /// `ACCEPT` or `REJECT`.
    pub action: String,
    /// `OK`.
    pub log_status: String,
    /// The function.
    pub function: String,
    /// The instance.
    pub instance: String,
    /// The function's VPC (empty if none).
    pub vpc_id: String,
}

impl FlowRecord {
    /// The record as a line of the default format.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {} {} {} {} {} {} {}",
            self.version,
            self.account_id,
            self.interface_id,
            self.srcaddr,
            self.dstaddr,
            self.srcport,
            self.dstport,
            self.protocol,
            self.packets,
            self.bytes,
            self.start,
            self.end,
            self.action,
            self.log_status
        )
    }
}

/// Records kept; older ones are deleted as newer ones arrive.
pub const MAX_RECORDS: i64 = 200_000;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    function TEXT NOT NULL,
    record TEXT NOT NULL,
    rejected INTEGER NOT NULL
) STRICT;
CREATE INDEX flows_by_function ON flows (function, id);
"#];

/// The flow log store: this node's file, or a PostgreSQL database the nodes of a cluster
/// share (the `flows` track), where every node's records are one log.
pub struct FlowLog {
    backend: Backend,
}

enum Backend {
    Sqlite(Mutex<Connection>),
    Postgres(warden_postgres::Pool),
}

/// The flow records' schema track in PostgreSQL.
pub const POSTGRES_TRACK: warden_postgres::Track = warden_postgres::Track {
    name: "flows",
    migrations: &[warden_postgres::Migration::additive(
        "CREATE TABLE flow_records (
            id BIGSERIAL PRIMARY KEY,
            function TEXT NOT NULL,
            record TEXT NOT NULL,
            rejected BOOLEAN NOT NULL
        );
        CREATE INDEX flow_records_by_function ON flow_records (function, id);",
    )],
};

const PG_INSERT: &str = "INSERT INTO flow_records (function, record, rejected) \
     SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BOOLEAN[])";
const PG_TRIM: &str =
    "DELETE FROM flow_records WHERE id <= (SELECT max(id) FROM flow_records) - $1";
const PG_RECENT: &str =
    "SELECT record FROM flow_records WHERE function = $1 ORDER BY id DESC LIMIT $2";
const PG_REJECTED: &str = "SELECT count(*) FROM flow_records WHERE function = $1 AND rejected";

fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> EgressError {
    move |e| EgressError::Unavailable(format!("{context}: {e}"))
}

fn shared(context: &'static str) -> impl FnOnce(warden_postgres::Error) -> EgressError {
    move |e| EgressError::Unavailable(format!("{context}: {e}"))
}

/// Runs `f` on a connection of `pool`, its PostgreSQL errors in `context`.
fn on_pool<T: Send + 'static>(
    pool: &warden_postgres::Pool,
    context: &'static str,
    f: impl FnOnce(&mut warden_postgres::Conn) -> Result<T, postgres::Error> + Send + 'static,
) -> Result<T, EgressError> {
    pool.run(move |conn| f(conn).map_err(warden_postgres::Error::at(context)))
        .map_err(shared(context))
}

impl FlowLog {
    /// Opens (creating) `path`.
    pub fn open(path: &Path) -> Result<FlowLog, EgressError> {
        let db = warden_sqlite::open(
            path,
            &warden_sqlite::Options {
                synchronous: warden_sqlite::Synchronous::Normal,
                migrations: MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(|e| EgressError::Unavailable(format!("opening the flow log: {e}")))?;
        drop(db.reader);
        Ok(FlowLog {
            backend: Backend::Sqlite(Mutex::new(db.writer)),
        })
    }

    /// The flow log the nodes share, on `pool`, whose schema includes [`POSTGRES_TRACK`].
    pub fn open_shared(pool: warden_postgres::Pool) -> FlowLog {
        FlowLog {
            backend: Backend::Postgres(pool),
        }
    }

    /// Appends records (one transaction), dropping the oldest beyond [`MAX_RECORDS`] (on
    /// a shared store: of every node's records together).
    pub fn append(&self, records: &[FlowRecord]) -> Result<(), EgressError> {
        if records.is_empty() {
            return Ok(());
        }
        let texts = records
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EgressError::Unavailable(format!("encoding a flow record: {e}")))?;
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut conn = warden_sqlite::lock(conn);
                let tx =
                    warden_sqlite::immediate(&mut conn).map_err(store("writing flow records"))?;
                for (r, text) in records.iter().zip(&texts) {
                    tx.execute(
                        "INSERT INTO flows (function, record, rejected) VALUES (?1, ?2, ?3)",
                        params![r.function, text, i64::from(r.action == "REJECT")],
                    )
                    .map_err(store("writing flow records"))?;
                }
                tx.execute(
                    "DELETE FROM flows WHERE id <= (SELECT MAX(id) FROM flows) - ?1",
                    params![MAX_RECORDS],
                )
                .map_err(store("trimming flow records"))?;
                tx.commit().map_err(store("writing flow records"))
            }
            Backend::Postgres(pool) => {
                let functions: Vec<String> = records.iter().map(|r| r.function.clone()).collect();
                let rejected: Vec<bool> = records.iter().map(|r| r.action == "REJECT").collect();
                on_pool(pool, "writing flow records", move |conn| {
                    let insert = conn.prepare(PG_INSERT)?;
                    let trim = conn.prepare(PG_TRIM)?;
                    conn.transaction(|tx| {
                        tx.execute(&insert, &[&functions, &texts, &rejected])?;
                        tx.execute(&trim, &[&MAX_RECORDS]).map(drop)
                    })
                })
            }
        }
    }

    /// The newest `limit` records of `function`, oldest first.
    pub fn recent(&self, function: &str, limit: usize) -> Result<Vec<FlowRecord>, EgressError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let texts: Vec<String> = match &self.backend {
            Backend::Sqlite(conn) => {
                let conn = warden_sqlite::lock(conn);
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT record FROM flows WHERE function = ?1 ORDER BY id DESC LIMIT ?2",
                    )
                    .map_err(store("reading flow records"))?;
                let mut texts = Vec::new();
                for text in stmt
                    .query_map(params![function, limit], |row| row.get::<_, String>(0))
                    .map_err(store("reading flow records"))?
                {
                    texts.push(text.map_err(store("reading flow records"))?);
                }
                texts
            }
            Backend::Postgres(pool) => {
                let function = function.to_owned();
                on_pool(pool, "reading flow records", move |conn| {
                    let st = conn.prepare(PG_RECENT)?;
                    conn.client()
                        .query(&st, &[&function, &limit])?
                        .iter()
                        .map(|r| r.try_get(0))
                        .collect()
                })?
            }
        };
        let mut out: Vec<FlowRecord> = texts
            .iter()
            .filter_map(|t| serde_json::from_str::<FlowRecord>(t).ok())
            .collect();
        out.reverse();
        Ok(out)
    }

    /// How many rejected-flow records `function` has (of those kept): the metric alarms
    /// watch.
    pub fn rejected(&self, function: &str) -> Result<u64, EgressError> {
        let n = match &self.backend {
            Backend::Sqlite(conn) => {
                let conn = warden_sqlite::lock(conn);
                conn.query_row(
                    "SELECT COUNT(*) FROM flows WHERE function = ?1 AND rejected = 1",
                    params![function],
                    |row| row.get::<_, i64>(0),
                )
                .map_err(store("counting rejected flows"))?
            }
            Backend::Postgres(pool) => {
                let function = function.to_owned();
                on_pool(pool, "counting rejected flows", move |conn| {
                    let st = conn.prepare(PG_REJECTED)?;
                    conn.client().query_one(&st, &[&function])?.try_get(0)
                })?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "flows", "table": "t", "elem": [
        {"elem": {"val": {"concat": ["198.18.0.2", "10.77.1.2", "tcp", 40000, 7001]}, "expires": 599, "counter": {"packets": 5, "bytes": 400}}},
        {"elem": {"val": {"concat": ["198.18.0.2", "10.77.1.2", 47, 0, 0]}, "expires": 599, "counter": {"packets": 1, "bytes": 60}}},
        {"elem": {"val": {"concat": ["not an address", "10.77.1.2", "tcp", 1, 2]}, "counter": {"packets": 1, "bytes": 1}}}
    ]}}]}"#;

    #[test]
    fn sets_parse_into_counted_flows() {
        let flows = parse_set(LISTED);
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].key.protocol, 6);
        assert_eq!(flows[0].key.dst_port, 7001);
        assert_eq!((flows[0].packets, flows[0].bytes), (5, 400));
        assert_eq!(flows[1].key.protocol, 47);
        assert!(parse_set("").is_empty());
        assert!(parse_set("{\"nftables\": 3}").is_empty());
    }

    #[test]
    fn the_tracker_reports_growth_and_restarts() {
        let key = FlowKey {
            src: Ipv4Addr::new(198, 18, 0, 2),
            dst: Ipv4Addr::new(10, 0, 0, 1),
            protocol: 6,
            src_port: 1,
            dst_port: 2,
        };
        let c = |packets, bytes| Counted {
            key: key.clone(),
            packets,
            bytes,
        };
        let mut t = Tracker::default();
        assert_eq!(t.advance(&[c(3, 300)], &[])[0].packets, 3);
        // No growth, no record.
        assert!(t.advance(&[c(3, 300)], &[]).is_empty());
        let d = t.advance(&[c(5, 420)], &[c(1, 60)]);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].packets, d[0].bytes), (2, 120));
        assert_eq!(d[1].action, Action::Reject);
        // Expired and back: counted from zero.
        assert_eq!(
            t.advance(&[c(1, 40)], &[]).first().map(|d| d.packets),
            Some(1)
        );
    }

    #[test]
    fn records_are_kept_per_function_and_rejections_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = FlowLog::open(&dir.path().join("flows.db")).unwrap();
        kept_per_function_and_counted(&log, &log);
    }

    /// On a shared store, what one node appends another reads: one log for the cluster.
    #[test]
    fn nodes_sharing_a_store_read_each_others_records() {
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        let pool = || {
            warden_postgres::Pool::open(
                &url,
                &warden_postgres::Options::default(),
                &[POSTGRES_TRACK],
            )
            .unwrap()
        };
        let (a, b) = (FlowLog::open_shared(pool()), FlowLog::open_shared(pool()));
        kept_per_function_and_counted(&a, &b);
        // Records of both nodes, in the order they were stored.
        let mut more = b.recent("f", 10).unwrap();
        more[0].srcport = 1;
        b.append(&more[..1]).unwrap();
        let f = a.recent("f", 10).unwrap();
        assert_eq!(
            f.iter().map(|r| r.srcport).collect::<Vec<_>>(),
            vec![40000, 40000, 1]
        );
        assert_eq!(a.recent("f", 1).unwrap()[0].srcport, 1);
    }

    fn kept_per_function_and_counted(log: &FlowLog, reader: &FlowLog) {
        let record = |function: &str, action: &str| FlowRecord {
            version: 2,
            account_id: "123456789012".into(),
            interface_id: "eni-0000000000000001".into(),
            srcaddr: "198.18.0.2".into(),
            dstaddr: "10.0.0.1".into(),
            srcport: 40000,
            dstport: 5432,
            protocol: 6,
            packets: 3,
            bytes: 180,
            start: 1,
            end: 61,
            action: action.into(),
            log_status: "OK".into(),
            function: function.into(),
            instance: "i-0000000000000001".into(),
            vpc_id: "vpc-1".into(),
        };
        log.append(&[
            record("f", "ACCEPT"),
            record("f", "REJECT"),
            record("g", "REJECT"),
        ])
        .unwrap();
        let f = reader.recent("f", 10).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0].line(),
            "2 123456789012 eni-0000000000000001 198.18.0.2 10.0.0.1 40000 5432 6 3 180 1 61 ACCEPT OK"
        );
        assert_eq!(reader.rejected("f").unwrap(), 1);
        assert_eq!(reader.rejected("nobody").unwrap(), 0);
    }

    proptest! {
        /// Whatever `nft` printed, parsing never panics.
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,400}") {
            let _ = parse_set(&s);
        }
    }
}

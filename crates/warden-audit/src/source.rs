//! What readers need of a store, so that proofs, verification and lookups are written once
//! for SQLite and PostgreSQL: a handful of point reads and ordered, paged scans.
//!
//! Scans are paged by position (`seq > last ORDER BY seq LIMIT n`), so a trail of any size
//! is read in bounded memory on either backend.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{store, Error};
use crate::event::EventIndex;
use crate::log::to_sql;
use crate::lookup::LookupAttribute;

/// How many rows one page of a scan holds.
pub(crate) const PAGE: usize = 256;

/// One stored event row, as verification reads it.
#[derive(Debug)]
pub(crate) struct EventRow {
    pub(crate) seq: i64,
    /// The index columns; `resources` is left empty (they are read separately).
    pub(crate) index: EventIndex,
    pub(crate) body: Vec<u8>,
    pub(crate) leaf: Vec<u8>,
    pub(crate) chain: Vec<u8>,
}

/// A LookupEvents filter, as the stores turn it into SQL.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) attribute: Option<LookupAttribute>,
    pub(crate) start_ms: Option<i64>,
    pub(crate) end_ms: Option<i64>,
    /// Only positions below this one (the page token's cursor).
    pub(crate) before: Option<i64>,
}

/// A value bound to a filter's placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl Filter {
    /// The `WHERE` conditions (joined with `AND`, starting with one) over the event table,
    /// with placeholders numbered from 1 by `placeholder`; `resources` names the table of
    /// event resources.
    pub(crate) fn conditions(
        &self,
        placeholder: impl Fn(usize) -> String,
        resources: &str,
    ) -> (String, Vec<Arg>) {
        let mut sql = String::from("1 = 1");
        let mut args = Vec::new();
        let mut push = |sql: &mut String, condition: &str, arg: Arg| {
            args.push(arg);
            sql.push_str(" AND ");
            sql.push_str(&condition.replace('?', &placeholder(args.len())));
        };
        let text = |v: &String| Arg::Text(v.clone());
        match &self.attribute {
            None => {}
            Some(LookupAttribute::EventId(v)) => push(&mut sql, "event_id = ?", text(v)),
            Some(LookupAttribute::EventName(v)) => push(&mut sql, "event_name = ?", text(v)),
            Some(LookupAttribute::EventSource(v)) => push(&mut sql, "event_source = ?", text(v)),
            Some(LookupAttribute::Username(v)) => push(&mut sql, "username = ?", text(v)),
            Some(LookupAttribute::PrincipalArn(v)) => push(&mut sql, "principal_arn = ?", text(v)),
            Some(LookupAttribute::AccessKeyId(v)) => push(&mut sql, "access_key_id = ?", text(v)),
            Some(LookupAttribute::ResourceName(v)) => push(
                &mut sql,
                &format!("seq IN (SELECT seq FROM {resources} WHERE name = ?)"),
                text(v),
            ),
            Some(LookupAttribute::ReadOnly(v)) => push(&mut sql, "read_only = ?", Arg::Bool(*v)),
        }
        if let Some(s) = self.start_ms {
            push(&mut sql, "time_ms >= ?", Arg::Int(s));
        }
        if let Some(e) = self.end_ms {
            push(&mut sql, "time_ms <= ?", Arg::Int(e));
        }
        if let Some(c) = self.before {
            push(&mut sql, "seq < ?", Arg::Int(c));
        }
        (sql, args)
    }
}

/// The reads of a stored log.
pub(crate) trait Source: Send {
    /// One past the highest position stored.
    fn size(&self) -> Result<u64, Error>;
    /// The stored hash of the complete subtree at `level`, `index`: the leaf hash of
    /// event `index` at level 0, an interior node above.
    fn subtree(&self, level: u32, index: u64) -> Result<Option<Vec<u8>>, Error>;
    /// The stored chain hash of event `seq`.
    fn chain_at(&self, seq: u64) -> Result<Option<Vec<u8>>, Error>;
    /// The stored bytes of event `seq`.
    fn body_at(&self, seq: u64) -> Result<Option<Vec<u8>>, Error>;
    /// Every stored digest as `(tree size column, body)`, smallest first.
    fn digest_rows(&self) -> Result<Vec<(i64, Vec<u8>)>, Error>;
    /// The body of the digest of the largest tree.
    fn latest_digest_row(&self) -> Result<Option<Vec<u8>>, Error>;
    /// Up to `limit` events at positions `from` and above, in order.
    fn events_from(&self, from: u64, limit: usize) -> Result<Vec<EventRow>, Error>;
    /// The `(position, name)` resource rows at positions in `from..=to` (no upper bound
    /// when `to` is `None`), by position then name.
    fn resources_between(&self, from: u64, to: Option<u64>) -> Result<Vec<(i64, String)>, Error>;
    /// Up to `limit` `(position, body)` of events past position `after` recorded in
    /// `[from_ms, to_ms]`, in order.
    fn bodies_in_time(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>, Error>;
    /// Up to `limit` `(position, body)` matching `filter`, newest first.
    fn lookup(&self, filter: &Filter, limit: usize) -> Result<Vec<(i64, Vec<u8>)>, Error>;
}

fn limit_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

const EVENT_COLUMNS: &str = "seq, time_ms, event_id, event_name, event_source, username, \
     principal_arn, access_key_id, read_only, body, leaf_hash, chain_hash";

impl Source for Connection {
    fn size(&self) -> Result<u64, Error> {
        crate::log::nominal_size(self)
    }

    fn subtree(&self, level: u32, index: u64) -> Result<Option<Vec<u8>>, Error> {
        if level == 0 {
            self.prepare_cached("SELECT leaf_hash FROM event WHERE seq = ?1")
                .and_then(|mut s| s.query_row([to_sql(index)], |r| r.get(0)).optional())
        } else {
            let end = (index + 1) << level;
            self.prepare_cached("SELECT hash FROM node WHERE end_seq = ?1 AND level = ?2")
                .and_then(|mut s| {
                    s.query_row(params![to_sql(end), level], |r| r.get(0))
                        .optional()
                })
        }
        .map_err(store("reading a tree node"))
    }

    fn chain_at(&self, seq: u64) -> Result<Option<Vec<u8>>, Error> {
        self.query_row(
            "SELECT chain_hash FROM event WHERE seq = ?1",
            [to_sql(seq)],
            |r| r.get(0),
        )
        .optional()
        .map_err(store("reading a chain hash"))
    }

    fn body_at(&self, seq: u64) -> Result<Option<Vec<u8>>, Error> {
        self.query_row(
            "SELECT body FROM event WHERE seq = ?1",
            [to_sql(seq)],
            |r| r.get(0),
        )
        .optional()
        .map_err(store("reading an event"))
    }

    fn digest_rows(&self) -> Result<Vec<(i64, Vec<u8>)>, Error> {
        let mut stmt = self
            .prepare("SELECT tree_size, body FROM digest ORDER BY tree_size")
            .map_err(store("reading the digests"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(store("reading the digests"))?;
        rows.collect::<Result<_, _>>()
            .map_err(store("reading the digests"))
    }

    fn latest_digest_row(&self) -> Result<Option<Vec<u8>>, Error> {
        crate::log::latest_digest_body(self)
    }

    fn events_from(&self, from: u64, limit: usize) -> Result<Vec<EventRow>, Error> {
        let mut stmt = self
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM event WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
            ))
            .map_err(store("reading events"))?;
        let rows = stmt
            .query_map(params![to_sql(from), limit_sql(limit)], |row| {
                Ok(EventRow {
                    seq: row.get(0)?,
                    index: EventIndex {
                        time_ms: row.get(1)?,
                        event_id: row.get(2)?,
                        event_name: row.get(3)?,
                        event_source: row.get(4)?,
                        username: row.get(5)?,
                        principal_arn: row.get(6)?,
                        access_key_id: row.get(7)?,
                        read_only: row.get(8)?,
                        resources: Vec::new(),
                    },
                    body: row.get(9)?,
                    leaf: row.get(10)?,
                    chain: row.get(11)?,
                })
            })
            .map_err(store("reading events"))?;
        rows.collect::<Result<_, _>>()
            .map_err(store("reading events"))
    }

    fn resources_between(&self, from: u64, to: Option<u64>) -> Result<Vec<(i64, String)>, Error> {
        let mut stmt = self
            .prepare_cached(
                "SELECT seq, name FROM event_resource WHERE seq >= ?1 AND seq <= ?2 \
                 ORDER BY seq, name",
            )
            .map_err(store("reading event resources"))?;
        let rows = stmt
            .query_map(params![to_sql(from), to.map_or(i64::MAX, to_sql)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(store("reading event resources"))?;
        rows.collect::<Result<_, _>>()
            .map_err(store("reading event resources"))
    }

    fn bodies_in_time(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>, Error> {
        let mut stmt = self
            .prepare_cached(
                "SELECT seq, body FROM event WHERE time_ms >= ?1 AND time_ms <= ?2 AND seq > ?3 \
                 ORDER BY seq LIMIT ?4",
            )
            .map_err(store("reading events"))?;
        let rows = stmt
            .query_map(params![from_ms, to_ms, after, limit_sql(limit)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(store("reading events"))?;
        rows.collect::<Result<_, _>>()
            .map_err(store("reading events"))
    }

    fn lookup(&self, filter: &Filter, limit: usize) -> Result<Vec<(i64, Vec<u8>)>, Error> {
        use rusqlite::types::Value;
        let (conditions, args) = filter.conditions(|n| format!("?{n}"), "event_resource");
        let mut args: Vec<Value> = args
            .into_iter()
            .map(|a| match a {
                Arg::Text(s) => Value::Text(s),
                Arg::Int(i) => Value::Integer(i),
                Arg::Bool(b) => Value::Integer(i64::from(b)),
            })
            .collect();
        args.push(Value::Integer(limit_sql(limit)));
        let sql = format!(
            "SELECT seq, body FROM event WHERE {conditions} ORDER BY seq DESC LIMIT ?{}",
            args.len()
        );
        let mut stmt = self.prepare(&sql).map_err(store("looking up events"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(store("looking up events"))?;
        rows.collect::<Result<_, _>>()
            .map_err(store("looking up events"))
    }
}

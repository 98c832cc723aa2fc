//! [`EventQueue`] on the metadata database: the `events` table, written through the group
//! commit so that concurrent enqueues and settlements share one fsync.
//!
//! A lease is the triple (`leased_by`, `leased_until_ms`, `lease_token`) of an event's row;
//! settling an event matches the row on its id, holder and token in the same statement
//! that changes it, so a lease replaced in between can never be acted on.

use rusqlite::{params, Connection, Row};
use warden_types::NodeId;

use super::{db, lock, require_function, stored_name, to_i64, SqliteStore};
use crate::{EventQueue, Lease, LeasedEvent, QueuedEvent, Settled, StoreError};

/// The columns [`event_from_row`] reads, in order.
const EVENT_COLUMNS: &str =
    "id, function, qualifier, payload, attempts, not_before_ms, enqueued_ms";

fn event_from_row(row: &Row<'_>) -> Result<QueuedEvent, StoreError> {
    let ctx = db("reading a queued event");
    let read = || -> rusqlite::Result<_> {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Vec<u8>>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, i64>(6)?,
        ))
    };
    let (id, function, qualifier, payload, attempts, not_before_ms, enqueued_ms) =
        read().map_err(ctx)?;
    Ok(QueuedEvent {
        id,
        function: stored_name(function)?,
        qualifier,
        payload,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        not_before_ms,
        enqueued_ms,
    })
}

/// What a settlement that changed no row means: the event is gone, or another lease (or
/// none, after a reclaim) is now its current one.
fn unsettled(conn: &Connection, id: &str, context: &'static str) -> Result<Settled, StoreError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM events WHERE id = ?1")
        .and_then(|mut s| s.exists(params![id]))
        .map_err(db(context))?;
    Ok(if exists {
        Settled::LeaseLost
    } else {
        Settled::Gone
    })
}

impl SqliteStore {
    /// Runs `sql` (which must match `id = ?1 AND leased_by = ?2 AND lease_token = ?3` and may
    /// use `?4`) for `lease`, as part of a group commit, and says what became of it.
    fn settle(
        &self,
        context: &'static str,
        sql: &'static str,
        lease: &Lease,
        arg: Option<i64>,
    ) -> Result<Settled, StoreError> {
        let lease = lease.clone();
        self.write_grouped(context, move |conn| {
            let changed = conn
                .prepare_cached(sql)
                .and_then(|mut s| {
                    let holder = lease.leased_by.as_str();
                    match arg {
                        Some(a) => s.execute(params![lease.event_id, holder, lease.token, a]),
                        None => s.execute(params![lease.event_id, holder, lease.token]),
                    }
                })
                .map_err(db(context))?;
            if changed > 0 {
                Ok(Settled::Applied)
            } else {
                unsettled(conn, &lease.event_id, context)
            }
        })
    }
}

impl EventQueue for SqliteStore {
    fn enqueue_event(&self, event: &QueuedEvent) -> Result<(), StoreError> {
        // Owned copy: the write may run on whichever thread leads the group commit.
        let event = event.clone();
        self.write_grouped("queueing an event", move |conn| {
            require_function(conn, &event.function)?;
            let n = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO events
                       (id, function, qualifier, payload, attempts, not_before_ms, enqueued_ms, leased_until_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        event.id,
                        event.function.as_str(),
                        event.qualifier,
                        event.payload,
                        event.attempts,
                        event.not_before_ms,
                        event.enqueued_ms
                    ])
                })
                .map_err(db("queueing an event"))?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(format!("event `{}`", event.id)));
            }
            Ok(())
        })
    }

    fn lease_events(
        &self,
        node: &NodeId,
        now_ms: i64,
        lease_ms: i64,
        max: usize,
    ) -> Result<Vec<LeasedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let node = node.clone();
        self.write_grouped("leasing events", move |tx| {
            let mut select = tx
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS}, seq FROM events
                     WHERE not_before_ms <= ?1 AND (leased_until_ms IS NULL OR leased_until_ms <= ?1)
                     ORDER BY not_before_ms, seq LIMIT ?2"
                ))
                .map_err(db("leasing events"))?;
            let mut rows = select
                .query(params![now_ms, to_i64(max)])
                .map_err(db("leasing events"))?;
            let mut due = Vec::new();
            while let Some(row) = rows.next().map_err(db("leasing events"))? {
                let seq = row.get::<_, i64>(7).map_err(db("leasing events"))?;
                due.push((event_from_row(row)?, seq));
            }
            let mut update = tx
                .prepare_cached(
                    "UPDATE events SET leased_by = ?2, leased_until_ms = ?3, lease_token = lease_token + 1
                     WHERE seq = ?1 RETURNING lease_token",
                )
                .map_err(db("leasing events"))?;
            let until = now_ms.saturating_add(lease_ms);
            let mut leased = Vec::with_capacity(due.len());
            for (event, seq) in due {
                let token: i64 = update
                    .query_row(params![seq, node.as_str(), until], |r| r.get(0))
                    .map_err(db("leasing events"))?;
                let lease = Lease {
                    event_id: event.id.clone(),
                    leased_by: node.clone(),
                    leased_until_ms: until,
                    token,
                };
                leased.push(LeasedEvent { event, lease });
            }
            Ok(leased)
        })
    }

    fn complete_event(&self, lease: &Lease) -> Result<Settled, StoreError> {
        self.settle(
            "completing an event",
            "DELETE FROM events WHERE id = ?1 AND leased_by = ?2 AND lease_token = ?3",
            lease,
            None,
        )
    }

    fn retry_event(&self, lease: &Lease, not_before_ms: i64) -> Result<Settled, StoreError> {
        self.settle(
            "rescheduling an event",
            "UPDATE events SET attempts = attempts + 1, leased_by = NULL, leased_until_ms = NULL,
               not_before_ms = ?4
             WHERE id = ?1 AND leased_by = ?2 AND lease_token = ?3",
            lease,
            Some(not_before_ms),
        )
    }

    fn postpone_event(&self, lease: &Lease, not_before_ms: i64) -> Result<Settled, StoreError> {
        self.settle(
            "postponing an event",
            "UPDATE events SET leased_by = NULL, leased_until_ms = NULL, not_before_ms = ?4
             WHERE id = ?1 AND leased_by = ?2 AND lease_token = ?3",
            lease,
            Some(not_before_ms),
        )
    }

    fn reclaim_leases(&self, node: &NodeId) -> Result<u64, StoreError> {
        let node = node.clone();
        self.write_grouped("reclaiming leases", move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE events SET leased_by = NULL, leased_until_ms = NULL WHERE leased_by = ?1",
                )
                .and_then(|mut s| s.execute(params![node.as_str()]))
                .map_err(db("reclaiming leases"))?;
            Ok(n as u64)
        })
    }

    fn queued_event_count(&self) -> Result<u64, StoreError> {
        let conn = lock(&self.reader);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .map_err(db("counting queued events"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

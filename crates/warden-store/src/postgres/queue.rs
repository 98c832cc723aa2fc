//! [`crate::EventQueue`] on PostgreSQL (its table is in the `functions` track).
//!
//! Leasing is one statement: it picks the due events that are not leased (or whose lease
//! expired) with `FOR UPDATE SKIP LOCKED` and marks them leased by the calling node in
//! the same `UPDATE ... RETURNING`, so two nodes leasing at once never get the same
//! event: the second skips the rows the first holds. Settling is a compare-and-set on
//! (event, node, token), as on SQLite: one statement when it applies, and a second that
//! tells a lost lease from a gone event when it does not. Queueing is one statement too: it locks the function's row
//! (`FOR KEY SHARE`) so that the function cannot be deleted under it. Lease times come from the `now_ms` the caller
//! passes, the node's clock: nodes must keep their clocks in step (NTP), or a node whose
//! clock runs ahead may take an event another node still runs (the lease of 20 minutes
//! leaves a wide margin).

use postgres::Row;
use warden_types::NodeId;

use super::functions::to_i64;
use super::{pg, PostgresStore};
use crate::rules::{function_label, stored_name};
use crate::{EventQueue, Lease, LeasedEvent, QueuedEvent, Settled, StoreError};

fn event_from_row(row: &Row) -> Result<QueuedEvent, StoreError> {
    Ok(QueuedEvent {
        id: row.get(0),
        function: stored_name(row.get(1))?,
        qualifier: row.get(2),
        payload: row.get(3),
        attempts: u32::try_from(row.get::<_, i64>(4)).unwrap_or(u32::MAX),
        not_before_ms: row.get(5),
        enqueued_ms: row.get(6),
    })
}

impl PostgresStore {
    /// Runs `sql` (which must match `id = $1 AND leased_by = $2 AND lease_token = $3` and
    /// may use `$4`, `arg`) for `lease`, and says what became of it.
    fn settle(
        &self,
        context: &'static str,
        sql: &'static str,
        lease: &Lease,
        arg: Option<i64>,
    ) -> Result<Settled, StoreError> {
        let lease = lease.clone();
        self.pool.run(move |conn| {
            let statement = conn.prepare(sql).map_err(pg(context))?;
            let holder = lease.leased_by.as_str();
            let changed = match arg {
                Some(a) => conn
                    .client()
                    .execute(&statement, &[&lease.event_id, &holder, &lease.token, &a]),
                None => conn
                    .client()
                    .execute(&statement, &[&lease.event_id, &holder, &lease.token]),
            }
            .map_err(pg(context))?;
            if changed > 0 {
                return Ok(Settled::Applied);
            }
            // A statement of its own, so a fresh snapshot: a settlement that waited for
            // another node's and lost to it sees what that one left (the event gone, or
            // leased anew), not the state from before it.
            let exists = conn
                .client()
                .query_opt("SELECT 1 FROM events WHERE id = $1", &[&lease.event_id])
                .map_err(pg(context))?
                .is_some();
            Ok(if exists {
                Settled::LeaseLost
            } else {
                Settled::Gone
            })
        })
    }
}

impl EventQueue for PostgresStore {
    fn enqueue_event(&self, event: &QueuedEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.pool.run(move |conn| {
            let statement = conn
                .prepare(
                    "WITH f AS (SELECT name FROM functions WHERE name = $2 FOR KEY SHARE),
                     queued AS (
                         INSERT INTO events
                           (id, function, qualifier, payload, attempts, not_before_ms, enqueued_ms)
                         SELECT $1::TEXT, f.name, $3::TEXT, $4::BYTEA, $5::BIGINT, $6::BIGINT,
                                $7::BIGINT
                         FROM f
                         ON CONFLICT (id) DO NOTHING
                         RETURNING 1
                     )
                     SELECT EXISTS (SELECT 1 FROM f), EXISTS (SELECT 1 FROM queued)",
                )
                .map_err(pg("queueing an event"))?;
            let row = conn
                .client()
                .query_one(
                    &statement,
                    &[
                        &event.id,
                        &event.function.as_str(),
                        &event.qualifier,
                        &event.payload,
                        &i64::from(event.attempts),
                        &event.not_before_ms,
                        &event.enqueued_ms,
                    ],
                )
                .map_err(pg("queueing an event"))?;
            let (function_exists, queued): (bool, bool) = (row.get(0), row.get(1));
            if !function_exists {
                return Err(StoreError::NotFound(function_label(&event.function)));
            }
            if !queued {
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
        let max = to_i64(max);
        let until = now_ms.saturating_add(lease_ms);
        self.pool.run(move |conn| {
            let statement = conn
                .prepare(
                    "WITH due AS (
                         SELECT seq FROM events
                         WHERE not_before_ms <= $1
                           AND (leased_until_ms IS NULL OR leased_until_ms <= $1)
                         ORDER BY not_before_ms, seq LIMIT $2
                         FOR UPDATE SKIP LOCKED
                     )
                     UPDATE events SET leased_by = $3, leased_until_ms = $4,
                         lease_token = lease_token + 1
                     FROM due WHERE events.seq = due.seq
                     RETURNING events.id, events.function, events.qualifier, events.payload,
                         events.attempts, events.not_before_ms, events.enqueued_ms,
                         events.lease_token, events.seq",
                )
                .map_err(pg("leasing events"))?;
            let mut rows = conn
                .client()
                .query(&statement, &[&now_ms, &max, &node.as_str(), &until])
                .map_err(pg("leasing events"))?;
            // RETURNING does not keep the CTE's order: due time, then enqueue order.
            rows.sort_by_key(|r| (r.get::<_, i64>(5), r.get::<_, i64>(8)));
            rows.iter()
                .map(|r| {
                    let event = event_from_row(r)?;
                    let lease = Lease {
                        event_id: event.id.clone(),
                        leased_by: node.clone(),
                        leased_until_ms: until,
                        token: r.get(7),
                    };
                    Ok(LeasedEvent { event, lease })
                })
                .collect()
        })
    }

    fn complete_event(&self, lease: &Lease) -> Result<Settled, StoreError> {
        self.settle(
            "completing an event",
            "DELETE FROM events WHERE id = $1 AND leased_by = $2 AND lease_token = $3",
            lease,
            None,
        )
    }

    fn retry_event(&self, lease: &Lease, not_before_ms: i64) -> Result<Settled, StoreError> {
        self.settle(
            "rescheduling an event",
            "UPDATE events SET attempts = attempts + 1, leased_by = NULL, leased_until_ms = NULL,
               not_before_ms = $4
             WHERE id = $1 AND leased_by = $2 AND lease_token = $3",
            lease,
            Some(not_before_ms),
        )
    }

    fn postpone_event(&self, lease: &Lease, not_before_ms: i64) -> Result<Settled, StoreError> {
        self.settle(
            "postponing an event",
            "UPDATE events SET leased_by = NULL, leased_until_ms = NULL, not_before_ms = $4
             WHERE id = $1 AND leased_by = $2 AND lease_token = $3",
            lease,
            Some(not_before_ms),
        )
    }

    fn reclaim_leases(&self, node: &NodeId) -> Result<u64, StoreError> {
        let node = node.as_str().to_owned();
        self.pool.run(move |conn| {
            conn.client()
                .execute(
                    "UPDATE events SET leased_by = NULL, leased_until_ms = NULL WHERE leased_by = $1",
                    &[&node],
                )
                .map_err(pg("reclaiming leases"))
        })
    }

    fn queued_event_count(&self) -> Result<u64, StoreError> {
        self.pool.run(move |conn| {
            let n: i64 = conn
                .client()
                .query_one("SELECT count(*) FROM events", &[])
                .map_err(pg("counting queued events"))?
                .get(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

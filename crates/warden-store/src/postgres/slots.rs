//! [`crate::SlotLeases`] on PostgreSQL (the `concurrency` track).
//!
//! A grant takes a transaction-scoped advisory lock on the pool's name, so grants of one
//! pool from any number of nodes run one after another; it then drops the pool's expired
//! leases, sums the other nodes' and writes this node's. A lock on the name rather than
//! on a row of pools leaves nothing behind when a pool is no longer used: the table holds
//! only live leases (and a dead node's until the next grant of their pool). Expiry is judged on the database's clock alone
//! (`now()`, the transaction's start), never a node's, so nodes need not keep their
//! clocks in step for this. `now()` is no later than the moment the grant was asked for
//! reached PostgreSQL, which is what lets a node count a lease valid from the moment it
//! asked.

use std::time::Duration;

use warden_postgres::Migration;
use warden_types::NodeId;

use super::{pg, PostgresStore};
use crate::slots::SlotLeases;
use crate::StoreError;

/// The `concurrency` track.
pub(super) const MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
-- One row per node and pool: the slots the node holds until `expires_at`.
CREATE TABLE concurrency_leases (
    pool TEXT COLLATE "C" NOT NULL,
    node TEXT COLLATE "C" NOT NULL,
    slots BIGINT NOT NULL CHECK (slots > 0),
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pool, node)
);
CREATE INDEX concurrency_leases_by_node ON concurrency_leases (node);
"#,
)];

/// How long a lease lasts unless held again: the bound on how long a dead node's slots
/// stay out of the others' reach.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// The longest pool name (a function's pool is `function:` and its name).
const MAX_POOL_LEN: usize = 128;

/// The first key of the advisory locks of grants (`pg_advisory_xact_lock(int, int)`,
/// whose key space is apart from the one-key locks of schema migrations); the second is
/// the hash of the pool's name. Two pools whose names hash alike only wait for each other.
const GRANT_LOCK_CLASS: i32 = 0x7764_736c;

/// One node's leases of concurrency slots in a shared database.
#[derive(Debug, Clone)]
pub struct PostgresSlotLeases {
    store: PostgresStore,
    node: NodeId,
    ttl: Duration,
}

impl PostgresStore {
    /// The concurrency slot leases of `node` on this database.
    pub fn slot_leases(&self, node: NodeId) -> PostgresSlotLeases {
        PostgresSlotLeases {
            store: self.clone(),
            node,
            ttl: LEASE_TTL,
        }
    }
}

impl PostgresSlotLeases {
    /// The same leases with another time to live (tests of expiry).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
}

impl SlotLeases for PostgresSlotLeases {
    fn hold(&self, pool: &str, target: u32, limit: u32) -> Result<u32, StoreError> {
        if pool.is_empty() || pool.len() > MAX_POOL_LEN {
            return Err(StoreError::InvalidRecord(format!(
                "a concurrency pool name must have 1 to {MAX_POOL_LEN} bytes"
            )));
        }
        let pool = pool.to_owned();
        let node = self.node.as_str().to_owned();
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        self.store.pool.run(move |conn| {
            conn.transaction(|tx| {
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                    &[&GRANT_LOCK_CLASS, &pool],
                )
                .map_err(pg("locking a concurrency pool"))?;
                tx.execute(
                    "DELETE FROM concurrency_leases WHERE pool = $1 AND expires_at <= now()",
                    &[&pool],
                )
                .map_err(pg("dropping expired leases"))?;
                let others: i64 = tx
                    .query_one(
                        "SELECT coalesce(sum(slots), 0)::BIGINT FROM concurrency_leases \
                         WHERE pool = $1 AND node <> $2 AND expires_at > now()",
                        &[&pool, &node],
                    )
                    .map_err(pg("counting leased slots"))?
                    .get(0);
                let free = i64::from(limit).saturating_sub(others).max(0);
                let granted = i64::from(target).min(free);
                if granted == 0 {
                    tx.execute(
                        "DELETE FROM concurrency_leases WHERE pool = $1 AND node = $2",
                        &[&pool, &node],
                    )
                    .map_err(pg("ending a lease"))?;
                } else {
                    tx.execute(
                        "INSERT INTO concurrency_leases (pool, node, slots, expires_at) \
                         VALUES ($1, $2, $3, now() + $4::BIGINT * interval '1 millisecond') \
                         ON CONFLICT (pool, node) DO UPDATE \
                         SET slots = EXCLUDED.slots, expires_at = EXCLUDED.expires_at",
                        &[&pool, &node, &granted, &ttl_ms],
                    )
                    .map_err(pg("writing a lease"))?;
                }
                Ok::<_, StoreError>(u32::try_from(granted).unwrap_or(0))
            })
        })
    }

    fn release_all(&self) -> Result<(), StoreError> {
        let node = self.node.as_str().to_owned();
        self.store.pool.run(move |conn| {
            conn.client()
                .execute("DELETE FROM concurrency_leases WHERE node = $1", &[&node])
                .map_err(pg("ending a node's leases"))?;
            Ok(())
        })
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    fn store() -> PostgresStore {
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        PostgresStore::open(&url, 4).unwrap()
    }

    fn node(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn grants_never_add_up_past_the_limit_and_returned_slots_are_granted_again() {
        let store = store();
        let a = store.slot_leases(node("node-a"));
        let b = store.slot_leases(node("node-b"));
        assert_eq!(a.hold("function:f", 6, 10).unwrap(), 6);
        assert_eq!(b.hold("function:f", 6, 10).unwrap(), 4, "what a left");
        assert_eq!(b.hold("function:f", 5, 10).unwrap(), 4, "still only 4");
        // Other pools are apart.
        assert_eq!(b.hold("account", 7, 10).unwrap(), 7);
        // a gives two back; b may have them.
        assert_eq!(a.hold("function:f", 4, 10).unwrap(), 4);
        assert_eq!(b.hold("function:f", 6, 10).unwrap(), 6);
        // Ending a lease frees all of it.
        assert_eq!(a.hold("function:f", 0, 10).unwrap(), 0);
        assert_eq!(b.hold("function:f", 10, 10).unwrap(), 10);
        // A lower limit grants nothing while others hold more than it.
        assert_eq!(a.hold("function:f", 1, 5).unwrap(), 0);
        b.release_all().unwrap();
        assert_eq!(a.hold("function:f", 1, 5).unwrap(), 1);
        assert_eq!(
            a.hold("account", 10, 10).unwrap(),
            10,
            "b's account lease ended"
        );
    }

    #[test]
    fn an_expired_lease_no_longer_counts() {
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        let store = PostgresStore::open(&url, 4).unwrap();
        let dead = store
            .slot_leases(node("dead"))
            .with_ttl(Duration::from_millis(200));
        let live = store.slot_leases(node("live"));
        assert_eq!(dead.hold("account", 10, 10).unwrap(), 10);
        assert_eq!(live.hold("account", 1, 10).unwrap(), 0);
        // The dead node never renews: its lease runs out on the database's clock.
        let granted = (0..100)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                live.hold("account", 10, 10).unwrap()
            })
            .find(|g| *g > 0);
        assert_eq!(granted, Some(10));
        // The grant dropped the dead node's expired row: only live leases are kept.
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let rows: i64 = db
            .query_one("SELECT count(*) FROM concurrency_leases", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 1);
    }

    #[test]
    fn racing_nodes_never_hold_more_than_the_limit_together() {
        let store = store();
        let nodes = 4;
        let barrier = Arc::new(Barrier::new(nodes));
        let handles: Vec<_> = (0..nodes)
            .map(|i| {
                let leases = store.slot_leases(node(&format!("racer-{i}")));
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut held = 0;
                    for _ in 0..10 {
                        held = leases.hold("function:race", held + 1, 10).unwrap();
                    }
                    held
                })
            })
            .collect();
        let total: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 10, "every slot granted once, none twice");
    }

    #[test]
    fn pool_names_are_bounded() {
        let store = store();
        let leases = store.slot_leases(node("n"));
        assert!(matches!(
            leases.hold("", 1, 1),
            Err(StoreError::InvalidRecord(_))
        ));
        let long = "p".repeat(MAX_POOL_LEN + 1);
        assert!(matches!(
            leases.hold(&long, 1, 1),
            Err(StoreError::InvalidRecord(_))
        ));
    }
}

//! The nodes of a shared database (the `nodes` track): which process holds each node id,
//! and when it was last seen.
//!
//! A node id names whose async events and concurrency slots are whose, and a starting node
//! takes back its id's leases at once. That is safe only if one live process holds an
//! id. On one host the data directory's lock guarantees it; across hosts this registry
//! does: a node claims its id with its data directory's holder token, and the claim is
//! refused while another holder was seen within the liveness window. The process that
//! holds an id marks itself seen every second ([`PostgresStore::node_seen`]); a stopping
//! node lets go of its id ([`PostgresStore::release_node`]).
//!
//! A node killed without stopping still counts as live until the window passes; its own
//! data directory (the same holder token) may claim the id again at once, since the
//! directory's lock shows the process is gone.
//!
//! Time is the database's (`now()`), never a node's, as for the concurrency leases. A
//! claim forgets ids not seen for a day, so the table stays about as large as the fleet.

use std::time::Duration;

use warden_postgres::Migration;
use warden_types::NodeId;

use super::{pg, PostgresStore};
use crate::StoreError;

/// The `nodes` track.
pub(super) const MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
CREATE TABLE warden_nodes (
    id TEXT COLLATE "C" PRIMARY KEY,
    holder BYTEA NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);
"#,
)];

/// How long a node not seen still counts as live: ten of its heartbeats.
pub const NODE_LIVENESS: Duration = Duration::from_secs(10);

/// How often a live node marks itself seen.
pub const NODE_HEARTBEAT: Duration = Duration::from_secs(1);

/// A node the registry saw within the liveness window.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveNode {
    /// Its id.
    pub id: String,
    /// Seconds since it was last seen, on the database's clock.
    pub seen_secs_ago: f64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Claims `id` for the process holding the data directory whose token is `holder`.
    /// Refused ([`StoreError::NodeIdHeld`]) while another holder of `id` was seen within
    /// `liveness`.
    pub fn claim_node(
        &self,
        id: &NodeId,
        holder: &[u8],
        liveness: Duration,
    ) -> Result<(), StoreError> {
        let (id, holder) = (id.as_str().to_owned(), holder.to_vec());
        let window = millis(liveness);
        self.pool.run(move |conn| {
            // Ids not seen for a day are forgotten, so the registry holds about as many
            // rows as there are nodes, whatever ids were ever used.
            conn.client()
                .execute(
                    "DELETE FROM warden_nodes WHERE seen_at < now() - interval '1 day'",
                    &[],
                )
                .map_err(pg("forgetting old node ids"))?;
            let claimed = conn
                .client()
                .query_opt(
                    "INSERT INTO warden_nodes (id, holder, started_at, seen_at) \
                     VALUES ($1, $2, now(), now()) \
                     ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, \
                     started_at = now(), seen_at = now() \
                     WHERE warden_nodes.holder = EXCLUDED.holder \
                     OR warden_nodes.seen_at < now() - $3::BIGINT * interval '1 millisecond' \
                     RETURNING id",
                    &[&id, &holder, &window],
                )
                .map_err(pg("claiming a node id"))?;
            if claimed.is_some() {
                return Ok(());
            }
            let seen: f64 = conn
                .client()
                .query_opt(
                    "SELECT extract(epoch FROM now() - seen_at)::FLOAT8 FROM warden_nodes \
                     WHERE id = $1",
                    &[&id],
                )
                .map_err(pg("reading a node's claim"))?
                .map_or(0.0, |r| r.get(0));
            Err(StoreError::NodeIdHeld {
                id,
                seen_secs_ago: seen,
            })
        })
    }

    /// Marks `id` seen now; `false` if its holder is no longer `holder` (another process
    /// claimed the id after this one was not seen for the liveness window).
    pub fn node_seen(&self, id: &NodeId, holder: &[u8]) -> Result<bool, StoreError> {
        let (id, holder) = (id.as_str().to_owned(), holder.to_vec());
        self.pool.run(move |conn| {
            let n = conn
                .client()
                .execute(
                    "UPDATE warden_nodes SET seen_at = now() WHERE id = $1 AND holder = $2",
                    &[&id, &holder],
                )
                .map_err(pg("marking a node seen"))?;
            Ok(n == 1)
        })
    }

    /// Lets go of `id` if `holder` still holds it, so that it is not live any more.
    pub fn release_node(&self, id: &NodeId, holder: &[u8]) -> Result<(), StoreError> {
        let (id, holder) = (id.as_str().to_owned(), holder.to_vec());
        self.pool.run(move |conn| {
            conn.client()
                .execute(
                    "DELETE FROM warden_nodes WHERE id = $1 AND holder = $2",
                    &[&id, &holder],
                )
                .map_err(pg("releasing a node id"))?;
            Ok(())
        })
    }

    /// The nodes seen within `liveness`, by id.
    pub fn live_nodes(&self, liveness: Duration) -> Result<Vec<LiveNode>, StoreError> {
        let window = millis(liveness);
        self.pool.run(move |conn| {
            let rows = conn
                .client()
                .query(
                    "SELECT id, extract(epoch FROM now() - seen_at)::FLOAT8 FROM warden_nodes \
                     WHERE seen_at >= now() - $1::BIGINT * interval '1 millisecond' ORDER BY id",
                    &[&window],
                )
                .map_err(pg("listing live nodes"))?;
            Ok(rows
                .iter()
                .map(|r| LiveNode {
                    id: r.get(0),
                    seen_secs_ago: r.get(1),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> PostgresStore {
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        PostgresStore::open(&url, 2).unwrap()
    }

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn a_live_holder_keeps_its_id_from_another_until_it_is_not_seen() {
        let s = store();
        let window = Duration::from_millis(800);
        s.claim_node(&id("a"), b"host-1", window).unwrap();
        // The same data directory again (a restart after kill -9): at once.
        s.claim_node(&id("a"), b"host-1", window).unwrap();
        // Another holder while the first is live: refused, naming the id.
        let err = s.claim_node(&id("a"), b"host-2", window).unwrap_err();
        assert!(
            matches!(&err, StoreError::NodeIdHeld { id, .. } if id == "a"),
            "{err}"
        );
        // Another id is free.
        s.claim_node(&id("b"), b"host-2", window).unwrap();
        let live: Vec<String> = s
            .live_nodes(window)
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(live, vec!["a", "b"]);
        // Seen: still held. Not seen for the window: another holder takes it, and the
        // first learns so at its next heartbeat.
        assert!(s.node_seen(&id("a"), b"host-1").unwrap());
        std::thread::sleep(window + Duration::from_millis(300));
        assert!(s.live_nodes(window).unwrap().is_empty());
        s.claim_node(&id("a"), b"host-2", window).unwrap();
        assert!(!s.node_seen(&id("a"), b"host-1").unwrap());
        assert!(s.node_seen(&id("a"), b"host-2").unwrap());
        // A release by a holder that lost the id changes nothing; its holder's does.
        s.release_node(&id("a"), b"host-1").unwrap();
        assert_eq!(s.live_nodes(window).unwrap().len(), 1);
        s.release_node(&id("a"), b"host-2").unwrap();
        assert!(s.live_nodes(window).unwrap().is_empty());
        s.claim_node(&id("a"), b"host-3", window).unwrap();
        // An id unseen for a day is forgotten at the next claim of any id.
        s.pool
            .run(|conn| {
                conn.client()
                    .execute(
                        "UPDATE warden_nodes SET seen_at = now() - interval '2 days' WHERE id = 'b'",
                        &[],
                    )
                    .map_err(pg("ageing a node"))
            })
            .unwrap();
        s.claim_node(&id("c"), b"host-4", window).unwrap();
        let rows: i64 = s
            .pool
            .run(|conn| {
                conn.client()
                    .query_one("SELECT count(*) FROM warden_nodes WHERE id = 'b'", &[])
                    .map(|r| r.get(0))
                    .map_err(pg("counting"))
            })
            .unwrap();
        assert_eq!(rows, 0);
    }
}

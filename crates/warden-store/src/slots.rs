//! Concurrency slots shared by the nodes of a cluster.
//!
//! One node counts its own in-flight invocations; a limit that holds across nodes (a
//! function's reserved concurrency, the account's unreserved pool) needs a shared count.
//! Asking the database on every invocation would put it on the warm path, so each node
//! instead holds a *lease* of some slots of each pool it uses: it admits invocations
//! locally while it runs fewer than it holds, asks for one more slot when it runs short,
//! and gives back slots it has not used for a while. A lease ends on its own at its
//! expiry, so the slots of a node that died return to the others.
//!
//! The rule every grant keeps: the slots of the live leases of one pool never add up to
//! more than the limit the granting node was given. A grant is one transaction that locks
//! the pool's name, sums the other nodes' unexpired leases and grants what is left.

use std::time::Duration;

/// Where a node takes its share of cluster-wide concurrency limits.
pub trait SlotLeases: Send + Sync + 'static {
    /// Sets this node's lease of `pool` to `target` slots, or to fewer if the other
    /// nodes' live leases leave less than that under `limit`, and starts its time
    /// ([`SlotLeases::ttl`]) again. Returns the slots now held; 0 ends the lease.
    ///
    /// The lease's time starts no earlier than the call: a caller that takes a clock
    /// reading before calling may count the lease valid until that reading plus the TTL.
    fn hold(&self, pool: &str, target: u32, limit: u32) -> Result<u32, crate::StoreError>;

    /// Ends every lease of this node (at start, when none of its invocations runs, and at
    /// shutdown).
    fn release_all(&self) -> Result<(), crate::StoreError>;

    /// How long a lease lasts unless it is held again.
    fn ttl(&self) -> Duration;
}

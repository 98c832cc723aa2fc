//! The durable async event queue, the store's third concern, shared by every node serving
//! one store.
//!
//! # Leases
//!
//! A node takes due events with [`EventQueue::lease_events`]; each comes back with a
//! [`Lease`] naming the node (`leased_by`), the time it lasts until (`leased_until_ms`) and a
//! token that tells successive leases of the same event apart. While the lease lasts no
//! other lease of the event is granted. Once it has expired any node (the same one too) may
//! lease the event again: that is how the events of a node that died run elsewhere, so no
//! accepted event is lost. A lease is longer than any invocation can run, so a live node
//! never loses a lease it is still using.
//!
//! Completing, retrying or postponing an event presents the lease, and takes effect only
//! if that lease is still the event's current one ([`Settled::Applied`]). An expired lease
//! that nobody replaced is still current: its outcome is recorded, and nothing runs twice
//! for it. If another lease replaced it, the outcome is refused ([`Settled::LeaseLost`]):
//! the node that now holds the event decides its fate, so a node that overran its lease can
//! neither delete an event another node is running nor reschedule it under that node.
//! If the event is gone (it completed under a newer lease, or its function was deleted),
//! the answer is [`Settled::Gone`]. Neither refusal is an error: both are outcomes of
//! at-least-once delivery that the caller logs and forgets.
//!
//! A node restarting under the same id knows that no invocation of its previous run is
//! still going (the binary guarantees one live process per node id and data directory), so
//! it takes its own leases back at once with [`EventQueue::reclaim_leases`] instead of
//! waiting for them to expire. Other nodes' leases are left to expire.
//!
//! Leases compare times from the caller's clock: nodes sharing a store must keep their
//! clocks within a small fraction of the lease duration of each other.

use warden_types::{FunctionName, NodeId};

use crate::StoreError;

/// One accepted asynchronous invocation waiting in the durable queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedEvent {
    /// The request id returned to the caller; unique.
    pub id: String,
    /// The function to invoke.
    pub function: FunctionName,
    /// Qualifier as the caller gave it (`$LATEST`, a version, an alias), resolved at run time.
    pub qualifier: String,
    /// The event.
    pub payload: Vec<u8>,
    /// Attempts already made (0 when first queued).
    pub attempts: u32,
    /// Epoch ms before which the event must not run (back-off).
    pub not_before_ms: i64,
    /// Epoch ms when it was accepted.
    pub enqueued_ms: i64,
}

/// A node's claim on one queued event, handed out by [`EventQueue::lease_events`] and
/// presented back to settle the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The event leased.
    pub event_id: String,
    /// The node holding the lease.
    pub leased_by: NodeId,
    /// Epoch ms at which the lease expires and another node may take the event.
    pub leased_until_ms: i64,
    /// Grows with every lease of this event, so that two leases of it by the same node
    /// (one expired while its invocation hung, one fresh) are told apart.
    pub token: i64,
}

/// A queued event together with the lease just taken on it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeasedEvent {
    /// The event as queued (attempts and due time as of the lease).
    pub event: QueuedEvent,
    /// The lease to present when settling it.
    pub lease: Lease,
}

/// What became of an attempt to settle (complete, retry or postpone) a leased event.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The lease was still the event's current one; the outcome is recorded.
    Applied,
    /// The event no longer exists: it completed under a newer lease, or its function was
    /// deleted. Nothing was changed.
    Gone,
    /// The event was leased again (by another node, or by this one after the lease
    /// expired) or its lease was reclaimed; the current holder decides its fate. Nothing
    /// was changed.
    LeaseLost,
}

/// The queue. Every write is durable when it returns; writes from concurrent callers may
/// share one commit (and one fsync).
///
/// Who may call it: the engine enqueues accepted `Event` invocations and runs the worker
/// that leases and settles them; `warden doctor` and tests count. It changes queued events
/// only, never function configuration.
pub trait EventQueue: Send + Sync + 'static {
    /// Durably accepts an event; returns only after it is on disk. `NotFound` if the
    /// function does not exist, `AlreadyExists` if the id is taken.
    fn enqueue_event(&self, event: &QueuedEvent) -> Result<(), StoreError>;
    /// Leases up to `max` events due at `now_ms` that are not leased or whose lease expired
    /// (at or before `now_ms`), to `node` until `now_ms + lease_ms`. Ordered by
    /// `not_before_ms`, then enqueue order. An expired lease does not count as an attempt.
    fn lease_events(
        &self,
        node: &NodeId,
        now_ms: i64,
        lease_ms: i64,
        max: usize,
    ) -> Result<Vec<LeasedEvent>, StoreError>;
    /// Removes a finished event (success, or retries exhausted), if `lease` is still its
    /// current lease (see [`Settled`]).
    fn complete_event(&self, lease: &Lease) -> Result<Settled, StoreError>;
    /// Records a failed attempt, if `lease` is still current: bumps `attempts`, ends the
    /// lease, sets `not_before_ms`.
    fn retry_event(&self, lease: &Lease, not_before_ms: i64) -> Result<Settled, StoreError>;
    /// Puts an event back without counting an attempt (it was throttled, never ran), if
    /// `lease` is still current.
    fn postpone_event(&self, lease: &Lease, not_before_ms: i64) -> Result<Settled, StoreError>;
    /// Ends every lease `node` holds, expired or not, so that their events are due at once;
    /// returns how many. Only for a node starting up: no invocation of its previous run
    /// may still be going.
    fn reclaim_leases(&self, node: &NodeId) -> Result<u64, StoreError>;
    /// Events waiting (leased or not), for tests and `warden doctor`.
    fn queued_event_count(&self) -> Result<u64, StoreError>;
}

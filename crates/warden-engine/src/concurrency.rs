//! Concurrency accounting as Lambda does it: in-flight invocations, not instances, are
//! counted. A function with reserved concurrency draws only from its reservation; every
//! other function shares the account limit minus all reservations.
//!
//! On one node the counts are this process's. When nodes share a store, each limit is
//! one *pool* of slots shared by the cluster (`function:NAME` for a reservation, `account`
//! for the unreserved rest): a node admits an invocation only while it runs fewer than
//! the slots it leases from the store ([`SlotLeases`]), leases one more when it runs
//! short, and gives back what it has not used for a tick. What that costs and bounds:
//!
//! - **Never above the limit.** Grants of one pool never add up past its limit, and a
//!   node stops admitting on a lease as soon as its own clock says the lease may have
//!   expired. The one exception: invocations a node admitted before it lost touch with
//!   the store run to their end (at most the function's timeout) though its lease lapsed.
//! - **Throttled below the limit only by slots another node used in the last
//!   [`RETURN_AFTER`]** (two ticks), or by a dead node's slots until its lease expires
//!   (the store's TTL, 10 s on PostgreSQL).
//! - **The store is asked only when a node runs short**: once per slot a node grows
//!   into, once per tick for slots it gives back, and once per half TTL to renew a lease
//!   it keeps using. Steady traffic that a node's leases cover never reaches the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use warden_store::SlotLeases;
use warden_types::FunctionName;

/// How often a node looks at its leases: gives back slots unused since the last look and
/// renews the others when half their time is gone.
pub const LEASE_TICK: Duration = Duration::from_millis(500);

/// A slot unused this long is given back (at the latest).
pub const RETURN_AFTER: Duration = Duration::from_millis(2 * 500);

/// Taken off a lease's time on this node's clock, for clocks that run at slightly
/// different rates.
const CLOCK_MARGIN: Duration = Duration::from_secs(1);

/// The pool of the account's unreserved concurrency.
const ACCOUNT_POOL: &str = "account";

/// Why an invocation was throttled; the API sends it as `Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// The function's reserved concurrency is used up (or is 0).
    ReservedFunctionConcurrentInvocationLimitExceeded,
    /// The account's unreserved concurrency is used up.
    ConcurrentInvocationLimitExceeded,
    /// A cold start would take the memory limits of the running instances beyond the
    /// host's memory budget (`--memory-budget`), and no idle instance was left to evict.
    /// Warden's own reason: Lambda has no host to run out of.
    HostMemoryBudgetExceeded,
}

impl ThrottleReason {
    /// The name Lambda gives the reason (the `Reason` of a 429).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReservedFunctionConcurrentInvocationLimitExceeded => {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            }
            Self::ConcurrentInvocationLimitExceeded => "ConcurrentInvocationLimitExceeded",
            Self::HostMemoryBudgetExceeded => "HostMemoryBudgetExceeded",
        }
    }
}

#[derive(Default)]
struct FunctionCounter {
    in_flight: AtomicU32,
    reserved: RwLock<Option<u32>>,
}

/// Tracks in-flight invocations per function and for the account.
pub struct Concurrency {
    account_limit: u32,
    unreserved_in_flight: AtomicU32,
    /// The most unreserved invocations in flight at once since the last
    /// [`Concurrency::take_unreserved_peak`].
    unreserved_peak: AtomicU32,
    reserved_total: AtomicU32,
    functions: RwLock<HashMap<FunctionName, Arc<FunctionCounter>>>,
    /// This node's leases when nodes share the limits.
    cluster: Option<Cluster>,
}

/// This node's share of the cluster's pools.
struct Cluster {
    leases: Arc<dyn SlotLeases>,
    /// The origin of the `*_ms` readings below.
    base: Instant,
    /// The account's unreserved pool.
    account: Arc<Held>,
    /// The pools of reservations this node used, by function (looked up without an
    /// allocation on the invoke path).
    functions: RwLock<HashMap<FunctionName, Arc<Held>>>,
}

impl Cluster {
    /// Every pool this node knows, the account's first.
    fn all(&self) -> Vec<Arc<Held>> {
        let mut all = vec![Arc::clone(&self.account)];
        all.extend(read(&self.functions).values().cloned());
        all
    }
}

/// Where a pool's in-flight count is kept.
enum Counted {
    Function(FunctionName, Arc<FunctionCounter>),
    Account,
}

/// The slots this node leases of one pool.
struct Held {
    pool: String,
    counted: Counted,
    slots: AtomicU32,
    /// Until when (ms after [`Cluster::base`]) the slots may be used.
    valid_until_ms: AtomicU64,
    /// The most in flight at once since the last tick.
    peak: AtomicU32,
    /// Invocations waiting for this node to lease more.
    waiting: AtomicU32,
    /// Held while the lease is being changed, so that changes go out one at a time.
    update: Mutex<()>,
}

impl Held {
    fn new(pool: String, counted: Counted) -> Arc<Held> {
        Arc::new(Held {
            pool,
            counted,
            slots: AtomicU32::new(0),
            valid_until_ms: AtomicU64::new(0),
            peak: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            update: Mutex::new(()),
        })
    }

    fn usable(&self, now_ms: u64) -> u32 {
        if now_ms < self.valid_until_ms.load(Ordering::Acquire) {
            // SeqCst, with the admission's increment and the tick's lowering: see
            // `Concurrency::admitted_within`.
            self.slots.load(Ordering::SeqCst)
        } else {
            0
        }
    }
}

/// Why [`Concurrency::try_acquire`] did not admit.
enum Refusal {
    /// The limit is reached.
    Throttled(ThrottleReason),
    /// This node's lease of the pool is used up (or expired) but the limit is not
    /// reached here: a bigger lease may admit it.
    Short(Arc<Held>, u32, ThrottleReason),
}

/// Held for the duration of one invocation; releases its slot when dropped.
pub struct Permit {
    counter: Arc<FunctionCounter>,
    unreserved: Option<Arc<Concurrency>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counter.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(c) = &self.unreserved {
            c.unreserved_in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Concurrency {
    /// A table for an account limit of `account_limit` with the stored `reservations`.
    pub fn new(account_limit: u32, reservations: &[(FunctionName, u32)]) -> Arc<Self> {
        Self::build(account_limit, reservations, None)
    }

    /// A table whose limits hold across the nodes that share `leases`' store.
    pub fn shared(
        account_limit: u32,
        reservations: &[(FunctionName, u32)],
        leases: Arc<dyn SlotLeases>,
    ) -> Arc<Self> {
        Self::build(
            account_limit,
            reservations,
            Some(Cluster {
                leases,
                base: Instant::now(),
                account: Held::new(ACCOUNT_POOL.to_owned(), Counted::Account),
                functions: RwLock::new(HashMap::new()),
            }),
        )
    }

    fn build(
        account_limit: u32,
        reservations: &[(FunctionName, u32)],
        cluster: Option<Cluster>,
    ) -> Arc<Self> {
        let c = Arc::new(Self {
            account_limit,
            unreserved_in_flight: AtomicU32::new(0),
            unreserved_peak: AtomicU32::new(0),
            reserved_total: AtomicU32::new(0),
            functions: RwLock::new(HashMap::new()),
            cluster,
        });
        for (name, r) in reservations {
            c.set_reserved(name, Some(*r));
        }
        c
    }

    /// The account's concurrency limit.
    pub fn account_limit(&self) -> u32 {
        self.account_limit
    }

    /// The most invocations of functions without reserved concurrency that ran at once
    /// since the last call (Lambda's `UnreservedConcurrentExecutions`); the next period
    /// starts from those in flight now.
    pub fn take_unreserved_peak(&self) -> u32 {
        let now = self.unreserved_in_flight.load(Ordering::Acquire);
        self.unreserved_peak.swap(now, Ordering::AcqRel).max(now)
    }

    /// Invocations in flight now, every function together.
    pub fn in_flight_total(&self) -> u64 {
        read(&self.functions)
            .values()
            .map(|c| u64::from(c.in_flight.load(Ordering::Acquire)))
            .sum()
    }

    /// Account concurrency not reserved by any function.
    pub fn unreserved(&self) -> u32 {
        self.account_limit
            .saturating_sub(self.reserved_total.load(Ordering::Acquire))
    }

    fn counter(&self, name: &FunctionName) -> Arc<FunctionCounter> {
        if let Some(c) = read(&self.functions).get(name) {
            return Arc::clone(c);
        }
        Arc::clone(write(&self.functions).entry(name.clone()).or_default())
    }

    /// Records a reservation change (the store is the source of truth; this mirrors it).
    pub fn set_reserved(&self, name: &FunctionName, reserved: Option<u32>) {
        let counter = self.counter(name);
        let mut slot = write(&counter.reserved);
        let old = slot.unwrap_or(0);
        self.reserved_total.fetch_sub(old, Ordering::AcqRel);
        self.reserved_total
            .fetch_add(reserved.unwrap_or(0), Ordering::AcqRel);
        *slot = reserved;
    }

    /// Removes every reservation (in-flight counts stay), before the stored ones are set
    /// again.
    pub fn clear_reservations(&self) {
        let names: Vec<FunctionName> = read(&self.functions).keys().cloned().collect();
        for name in names {
            self.set_reserved(&name, None);
        }
    }

    /// The reserved concurrency of `name`, if it has one.
    pub fn reserved(&self, name: &FunctionName) -> Option<u32> {
        *read(&self.counter(name).reserved)
    }

    /// Takes a slot for one invocation or says why not, without asking the store: when
    /// nodes share the limits, only within the slots this node leases already.
    pub fn acquire(self: &Arc<Self>, name: &FunctionName) -> Result<Permit, ThrottleReason> {
        self.try_acquire(name).map_err(|r| match r {
            Refusal::Throttled(reason) | Refusal::Short(_, _, reason) => reason,
        })
    }

    /// Takes a slot for one invocation or says why not; when nodes share the limits and
    /// this node's leases are used up, it leases more from the store first (on a blocking
    /// thread). A store that cannot be reached throttles: limits are never guessed.
    pub async fn admit(self: &Arc<Self>, name: &FunctionName) -> Result<Permit, ThrottleReason> {
        // Each round either admits, or leases more slots, which invocations racing this
        // one may take first. A round that leases nothing more throttles; one that does
        // brings the pool nearer its limit, so the rounds end.
        loop {
            let (held, limit, reason) = match self.try_acquire(name) {
                Ok(permit) => return Ok(permit),
                Err(Refusal::Throttled(reason)) => return Err(reason),
                Err(Refusal::Short(held, limit, reason)) => (held, limit, reason),
            };
            let this = Arc::clone(self);
            held.waiting.fetch_add(1, Ordering::AcqRel);
            let waiting = Arc::clone(&held);
            let grew = tokio::task::spawn_blocking(move || this.grow(&held, limit)).await;
            waiting.waiting.fetch_sub(1, Ordering::AcqRel);
            if !matches!(grew, Ok(true)) {
                return Err(reason);
            }
        }
    }

    fn try_acquire(self: &Arc<Self>, name: &FunctionName) -> Result<Permit, Refusal> {
        let counter = self.counter(name);
        let reserved = *read(&counter.reserved);
        let now_ms = self.now_ms();
        match reserved {
            Some(limit) => {
                let reason = ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded;
                let held = self.function_held(name, &counter);
                let cap = held.as_ref().map_or(limit, |h| h.usable(now_ms).min(limit));
                if !try_increment(&counter.in_flight, cap) {
                    return Err(refusal(held, &counter.in_flight, limit, reason));
                }
                if let Some(h) = &held {
                    if !self.admitted_within(h, &counter.in_flight) {
                        counter.in_flight.fetch_sub(1, Ordering::AcqRel);
                        return Err(Refusal::Short(Arc::clone(h), limit, reason));
                    }
                }
                if let Some(h) = held {
                    h.peak
                        .fetch_max(counter.in_flight.load(Ordering::Acquire), Ordering::AcqRel);
                }
                Ok(Permit {
                    counter,
                    unreserved: None,
                })
            }
            None => {
                let reason = ThrottleReason::ConcurrentInvocationLimitExceeded;
                let limit = self.unreserved();
                let held = self.cluster.as_ref().map(|c| Arc::clone(&c.account));
                let cap = held.as_ref().map_or(limit, |h| h.usable(now_ms).min(limit));
                if !try_increment(&self.unreserved_in_flight, cap) {
                    return Err(refusal(held, &self.unreserved_in_flight, limit, reason));
                }
                if let Some(h) = &held {
                    if !self.admitted_within(h, &self.unreserved_in_flight) {
                        self.unreserved_in_flight.fetch_sub(1, Ordering::AcqRel);
                        return Err(Refusal::Short(Arc::clone(h), limit, reason));
                    }
                }
                let now = self.unreserved_in_flight.load(Ordering::Acquire);
                self.unreserved_peak.fetch_max(now, Ordering::AcqRel);
                if let Some(h) = held {
                    h.peak.fetch_max(now, Ordering::AcqRel);
                }
                counter.in_flight.fetch_add(1, Ordering::AcqRel);
                Ok(Permit {
                    counter,
                    unreserved: Some(Arc::clone(self)),
                })
            }
        }
    }

    /// Whether an admission that has just counted itself in `in_flight` is still within
    /// `held`'s lease. A tick may lower the lease between the admission's look at it and
    /// its increment; the tick lowers the lease before it reads the count, and the
    /// admission increments before it reads the lease, all four `SeqCst`, so at least one
    /// of them sees the other: either the tick keeps the slot or the admission undoes
    /// itself.
    fn admitted_within(&self, held: &Held, in_flight: &AtomicU32) -> bool {
        in_flight.load(Ordering::SeqCst) <= held.usable(self.now_ms())
    }

    fn now_ms(&self) -> u64 {
        self.cluster.as_ref().map_or(0, |c| {
            u64::try_from(c.base.elapsed().as_millis()).unwrap_or(u64::MAX)
        })
    }

    /// This node's lease of `name`'s reservation (made on first use), when nodes share
    /// the limits.
    fn function_held(
        &self,
        name: &FunctionName,
        counter: &Arc<FunctionCounter>,
    ) -> Option<Arc<Held>> {
        let cluster = self.cluster.as_ref()?;
        if let Some(h) = read(&cluster.functions).get(name) {
            return Some(Arc::clone(h));
        }
        let mut functions = write(&cluster.functions);
        let h = functions.entry(name.clone()).or_insert_with(|| {
            Held::new(
                format!("function:{name}"),
                Counted::Function(name.clone(), Arc::clone(counter)),
            )
        });
        Some(Arc::clone(h))
    }

    fn in_flight_of(&self, held: &Held) -> u32 {
        match &held.counted {
            Counted::Function(_, c) => c.in_flight.load(Ordering::Acquire),
            Counted::Account => self.unreserved_in_flight.load(Ordering::Acquire),
        }
    }

    /// The pool's limit as this node knows it now.
    fn limit_of(&self, held: &Held) -> u32 {
        match &held.counted {
            Counted::Function(_, c) => read(&c.reserved).unwrap_or(0),
            Counted::Account => self.unreserved(),
        }
    }

    /// Leases enough slots of `held`'s pool for what this node runs and the invocations
    /// waiting for one; whether it now holds more than it runs. Blocks on the store.
    fn grow(&self, held: &Held, limit: u32) -> bool {
        let Some(cluster) = &self.cluster else {
            return false;
        };
        let _one_at_a_time = held.update.lock().unwrap_or_else(|p| p.into_inner());
        let in_flight = self.in_flight_of(held);
        let asked_ms = self.now_ms();
        if held.usable(asked_ms) > in_flight {
            // A racing invocation leased more while this one waited for the lock.
            return true;
        }
        let waiting = held.waiting.load(Ordering::Acquire).max(1);
        let target = in_flight.saturating_add(waiting).min(limit);
        match cluster.leases.hold(&held.pool, target, limit) {
            Ok(granted) => {
                self.record_lease(held, granted, asked_ms);
                granted > in_flight
            }
            Err(e) => {
                tracing::warn!(pool = %held.pool, error = %e, "could not lease a concurrency slot; the invocation is throttled");
                false
            }
        }
    }

    fn record_lease(&self, held: &Held, granted: u32, asked_ms: u64) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let lasts = cluster.leases.ttl().saturating_sub(CLOCK_MARGIN);
        let until = asked_ms.saturating_add(u64::try_from(lasts.as_millis()).unwrap_or(0));
        held.slots.store(granted, Ordering::SeqCst);
        held.valid_until_ms.store(until, Ordering::Release);
    }

    /// One look at this node's leases ([`LEASE_TICK`]): gives back slots unused since the
    /// last look, renews leases past half their time, forgets pools it holds nothing of.
    /// Blocks on the store; a failure is logged and the lease left to expire.
    pub fn tick(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let renew_before =
            u64::try_from((cluster.leases.ttl() / 2).as_millis()).unwrap_or(u64::MAX);
        for h in cluster.all() {
            let _one_at_a_time = h.update.lock().unwrap_or_else(|p| p.into_inner());
            let in_flight = self.in_flight_of(&h);
            let used = h.peak.swap(in_flight, Ordering::AcqRel).max(in_flight);
            let slots = h.slots.load(Ordering::Acquire);
            let limit = self.limit_of(&h);
            let now_ms = self.now_ms();
            if slots == 0 {
                if let (0, Counted::Function(name, _)) = (in_flight, &h.counted) {
                    let mut functions = write(&cluster.functions);
                    if functions.get(name).is_some_and(|p| Arc::ptr_eq(p, &h)) {
                        functions.remove(name);
                    }
                }
                continue;
            }
            // Slots just leased for invocations still on their way to take them stay.
            let waiting = h.waiting.load(Ordering::Acquire);
            let mut target = used.saturating_add(waiting).min(slots).min(limit);
            let left = h
                .valid_until_ms
                .load(Ordering::Acquire)
                .saturating_sub(now_ms);
            if target == slots && left > renew_before {
                continue;
            }
            if target < slots {
                // Lower the cap first, then look at the count again: an invocation
                // admitted meanwhile keeps its slot (see `admitted_within`), so slots
                // given back to the store are never in use here.
                h.slots.store(target, Ordering::SeqCst);
                let now_in_flight = match &h.counted {
                    Counted::Function(_, c) => c.in_flight.load(Ordering::SeqCst),
                    Counted::Account => self.unreserved_in_flight.load(Ordering::SeqCst),
                };
                if now_in_flight > target {
                    target = now_in_flight.min(slots);
                    h.slots.store(target, Ordering::SeqCst);
                }
            }
            match cluster.leases.hold(&h.pool, target, limit) {
                Ok(granted) => self.record_lease(&h, granted, now_ms),
                Err(e) => {
                    tracing::warn!(pool = %h.pool, error = %e, "could not renew a concurrency lease; it will expire");
                }
            }
        }
    }

    /// Ends this node's leases in the store (at shutdown). Blocks on the store.
    pub fn release_leases(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        if let Err(e) = cluster.leases.release_all() {
            tracing::warn!(error = %e, "could not end this node's concurrency leases; they will expire");
        }
        for h in cluster.all() {
            h.slots.store(0, Ordering::Release);
        }
    }

    /// Whether the limits are shared with other nodes.
    pub fn is_shared(&self) -> bool {
        self.cluster.is_some()
    }

    /// Slots this node leases now, every pool together (for `/metrics`).
    pub fn leased_slots(&self) -> u64 {
        self.cluster.as_ref().map_or(0, |c| {
            c.all()
                .iter()
                .map(|h| u64::from(h.slots.load(Ordering::Acquire)))
                .sum()
        })
    }
}

/// Why an invocation that found `in_flight` at its cap was refused: a lease that may grow
/// (`held`, while `in_flight` is under `limit`), or the limit itself.
fn refusal(
    held: Option<Arc<Held>>,
    in_flight: &AtomicU32,
    limit: u32,
    reason: ThrottleReason,
) -> Refusal {
    match held {
        Some(h) if in_flight.load(Ordering::Acquire) < limit => Refusal::Short(h, limit, reason),
        _ => Refusal::Throttled(reason),
    }
}

fn try_increment(counter: &AtomicU32, limit: u32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
            (v < limit).then_some(v + 1)
        })
        .is_ok()
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> FunctionName {
        FunctionName::new(s).unwrap()
    }

    #[test]
    fn reserved_functions_use_only_their_reservation() {
        let c = Concurrency::new(10, &[(name("r"), 2)]);
        let a = c.acquire(&name("r")).unwrap();
        let _b = c.acquire(&name("r")).unwrap();
        assert_eq!(
            c.acquire(&name("r")).err(),
            Some(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
        );
        drop(a);
        assert!(c.acquire(&name("r")).is_ok());
    }

    #[test]
    fn unreserved_pool_excludes_reservations() {
        let c = Concurrency::new(3, &[(name("r"), 2)]);
        let _a = c.acquire(&name("x")).unwrap();
        assert_eq!(
            c.acquire(&name("y")).err(),
            Some(ThrottleReason::ConcurrentInvocationLimitExceeded)
        );
        c.set_reserved(&name("r"), None);
        assert!(c.acquire(&name("y")).is_ok());
    }

    #[test]
    fn the_unreserved_peak_counts_unreserved_invocations_only_and_restarts() {
        let c = Concurrency::new(10, &[(name("r"), 2)]);
        let a = c.acquire(&name("x")).unwrap();
        let b = c.acquire(&name("y")).unwrap();
        let _r = c.acquire(&name("r")).unwrap();
        assert_eq!(c.in_flight_total(), 3);
        drop(a);
        assert_eq!(c.take_unreserved_peak(), 2);
        // The next period starts from what is still in flight.
        assert_eq!(c.take_unreserved_peak(), 1);
        drop(b);
        assert_eq!(c.take_unreserved_peak(), 1);
        assert_eq!(c.take_unreserved_peak(), 0);
    }

    #[test]
    fn zero_reservation_throttles_everything() {
        let c = Concurrency::new(10, &[(name("off"), 0)]);
        assert!(c.acquire(&name("off")).is_err());
    }
    /// Two nodes' tables on one PostgreSQL database.
    fn two_nodes(
        reservations: &[(FunctionName, u32)],
        account: u32,
    ) -> (Arc<Concurrency>, Arc<Concurrency>, String) {
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        let store = warden_store::PostgresStore::open(&url, 2).unwrap();
        let node = |n: &str| {
            let leases = store.slot_leases(warden_types::NodeId::new(n).unwrap());
            Concurrency::shared(account, reservations, Arc::new(leases))
        };
        (node("node-a"), node("node-b"), url)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_reservation_holds_across_nodes_and_unused_slots_go_back() {
        let rt = runtime();
        let r = name("r");
        let (a, b, _) = two_nodes(&[(r.clone(), 3)], 100);
        rt.block_on(async {
            let a1 = a.admit(&r).await.unwrap();
            let _a2 = a.admit(&r).await.unwrap();
            let _b1 = b.admit(&r).await.unwrap();
            assert_eq!(
                b.admit(&r).await.err(),
                Some(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded),
                "three run on the two nodes together"
            );
            assert_eq!((a.leased_slots(), b.leased_slots()), (2, 1));
            // a's slot is free on a at once, and a reuses it without the store.
            drop(a1);
            let a3 = a.acquire(&r).unwrap();
            drop(a3);
            // b cannot have it while a may still use it...
            assert!(b.admit(&r).await.is_err());
            // ...but a gives it back once a whole tick went by without it.
            a.tick();
            a.tick();
            assert_eq!(a.leased_slots(), 1);
            let _b2 = b.admit(&r).await.unwrap();
            assert_eq!(b.leased_slots(), 2);
        });
    }

    #[test]
    fn ticks_racing_admissions_never_let_the_nodes_run_more_than_the_limit() {
        use std::sync::atomic::AtomicBool;
        const LIMIT: u32 = 4;
        let r = name("r");
        let (a, b, _) = two_nodes(&[(r.clone(), LIMIT)], 100);
        let running = AtomicU32::new(0);
        let most = AtomicU32::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for node in [&a, &b] {
                // Ticks as fast as the store answers, each one giving back what looks
                // unused while invocations come and go.
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        node.tick();
                    }
                });
                for _ in 0..3 {
                    scope.spawn(|| {
                        let rt = runtime();
                        while !stop.load(Ordering::Relaxed) {
                            let Ok(permit) = rt.block_on(node.admit(&r)) else {
                                std::thread::yield_now();
                                continue;
                            };
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_micros(300));
                            running.fetch_sub(1, Ordering::SeqCst);
                            drop(permit);
                        }
                    });
                }
            }
            std::thread::sleep(Duration::from_secs(3));
            stop.store(true, Ordering::Relaxed);
        });
        assert!(
            most.load(Ordering::SeqCst) <= LIMIT,
            "{} ran at once with a reservation of {LIMIT}",
            most.load(Ordering::SeqCst)
        );
    }

    #[test]
    fn the_unreserved_pool_is_shared_and_a_node_that_stops_gives_its_slots_back() {
        let rt = runtime();
        let (a, b, _) = two_nodes(&[(name("r"), 8)], 10);
        rt.block_on(async {
            // 10 minus the reservation of 8: two unreserved invocations in the cluster.
            let _x = a.admit(&name("x")).await.unwrap();
            let _y = b.admit(&name("y")).await.unwrap();
            assert_eq!(
                b.admit(&name("z")).await.err(),
                Some(ThrottleReason::ConcurrentInvocationLimitExceeded)
            );
            a.release_leases();
            let _z = b.admit(&name("z")).await.unwrap();
            // The synchronous path never asks the store for more.
            assert_eq!(
                b.acquire(&name("w")).err(),
                Some(ThrottleReason::ConcurrentInvocationLimitExceeded)
            );
        });
    }

    #[test]
    fn an_unreachable_store_throttles_rather_than_guesses() {
        let rt = runtime();
        let r = name("r");
        let (a, _b, url) = two_nodes(&[(r.clone(), 3)], 100);
        // The database goes away under the node.
        let server = warden_testservers::Postgres::shared();
        let db = url.rsplit_once('/').unwrap().1.to_owned();
        let mut client =
            postgres::Client::connect(&server.url("postgres"), postgres::NoTls).unwrap();
        client
            .execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"), &[])
            .unwrap();
        rt.block_on(async {
            assert_eq!(
                a.admit(&r).await.err(),
                Some(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
            );
        });
    }

    #[test]
    fn a_local_table_has_no_leases() {
        let c = Concurrency::new(10, &[]);
        assert!(!c.is_shared());
        c.tick();
        let _p = c.acquire(&name("x")).unwrap();
        assert_eq!(c.leased_slots(), 0);
        assert!(RETURN_AFTER >= LEASE_TICK * 2);
    }
}

//! Concurrency accounting as Lambda does it: in-flight invocations, not instances, are
//! counted. A function with reserved concurrency draws only from its reservation; every
//! other function shares the account limit minus all reservations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use warden_types::FunctionName;

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
        let c = Arc::new(Self {
            account_limit,
            unreserved_in_flight: AtomicU32::new(0),
            unreserved_peak: AtomicU32::new(0),
            reserved_total: AtomicU32::new(0),
            functions: RwLock::new(HashMap::new()),
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

    /// Takes a slot for one invocation or says why not.
    pub fn acquire(self: &Arc<Self>, name: &FunctionName) -> Result<Permit, ThrottleReason> {
        let counter = self.counter(name);
        let reserved = *read(&counter.reserved);
        match reserved {
            Some(limit) => {
                if !try_increment(&counter.in_flight, limit) {
                    return Err(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded);
                }
                Ok(Permit {
                    counter,
                    unreserved: None,
                })
            }
            None => {
                if !try_increment(&self.unreserved_in_flight, self.unreserved()) {
                    return Err(ThrottleReason::ConcurrentInvocationLimitExceeded);
                }
                self.unreserved_peak.fetch_max(
                    self.unreserved_in_flight.load(Ordering::Acquire),
                    Ordering::AcqRel,
                );
                counter.in_flight.fetch_add(1, Ordering::AcqRel);
                Ok(Permit {
                    counter,
                    unreserved: Some(Arc::clone(self)),
                })
            }
        }
    }
}

fn try_increment(counter: &AtomicU32, limit: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
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
}

//! A read-through cache whose entries are dropped by change events.
//!
//! Warden keeps per-node copies of stored configuration (the engine's resolution of
//! functions, the API's parsed resource policies) so that a warm request touches no store.
//! Each copy is filled on a miss and emptied by the control plane's change events. The
//! race every such cache must close: a reader misses, reads the store, and before it
//! inserts what it read, a change commits and its event drops the entry; the reader's
//! insert would then keep the old value until the next change. [`ChangeCache`] closes it
//! with a generation: [`ChangeCache::ticket`] is taken before the store is read, every
//! [`ChangeCache::forget`] advances the generation, and an insert with a ticket older than
//! the last forget is discarded (the next reader misses and reads the new value).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A map from a key (a function's name) to what was read about it, filled by readers and
/// emptied by change events.
pub struct ChangeCache<K, V> {
    state: RwLock<State<K, V>>,
}

struct State<K, V> {
    entries: HashMap<K, V>,
    /// Advanced by every forget: a fill that began before it is stale.
    generation: u64,
}

/// Proof of when a reader began reading the store; taken before the read, given back with
/// what was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a ticket is given back to `insert` or `update` with what was read"]
pub struct Ticket(u64);

impl<K: Eq + Hash, V> Default for ChangeCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash, V> ChangeCache<K, V> {
    /// An empty cache.
    pub fn new() -> Self {
        ChangeCache {
            state: RwLock::new(State {
                entries: HashMap::new(),
                generation: 0,
            }),
        }
    }

    /// Applies `f` to the cached entry of `key`, if there is one.
    pub fn with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read().entries.get(key).map(f)
    }

    /// The cached entry of `key`, cloned.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.with(key, V::clone)
    }

    /// Marks the start of a read of the store whose result will be cached.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.read().generation)
    }

    /// Caches `value` for `key` unless an entry was forgotten since `ticket` was taken;
    /// returns whether it was cached.
    pub fn insert(&self, ticket: Ticket, key: K, value: V) -> bool {
        let mut state = self.write();
        if state.generation != ticket.0 {
            return false;
        }
        state.entries.insert(key, value);
        true
    }

    /// Changes the entry of `key` (created empty if absent) with `f`, unless an entry was
    /// forgotten since `ticket` was taken; returns whether it was changed.
    pub fn update(&self, ticket: Ticket, key: K, f: impl FnOnce(&mut V)) -> bool
    where
        V: Default,
    {
        let mut state = self.write();
        if state.generation != ticket.0 {
            return false;
        }
        f(state.entries.entry(key).or_default());
        true
    }

    /// Drops the entry of `key`, and makes every fill that began before now stale.
    pub fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut state = self.write();
        state.generation = state.generation.wrapping_add(1);
        state.entries.remove(key);
    }

    /// Drops every entry, and makes every fill that began before now stale.
    pub fn forget_all(&self) {
        let mut state = self.write();
        state.generation = state.generation.wrapping_add(1);
        state.entries.clear();
    }

    /// How many keys have an entry.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether no key has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while the lock is held leaves the map consistent (every change is one map
    // operation), so a poisoned lock is used as it is.
    fn read(&self) -> RwLockReadGuard<'_, State<K, V>> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<K, V>> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_is_cached_and_read_back() {
        let cache = ChangeCache::<String, u32>::new();
        assert_eq!(cache.get("f"), None);
        let t = cache.ticket();
        assert!(cache.insert(t, "f".into(), 7));
        assert_eq!(cache.get("f"), Some(7));
        assert_eq!(cache.with("f", |v| v + 1), Some(8));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_fill_that_began_before_a_forget_is_discarded() {
        let cache = ChangeCache::<String, u32>::new();
        let stale = cache.ticket();
        // The change commits and its event arrives while the reader is at the store.
        cache.forget("f");
        assert!(!cache.insert(stale, "f".into(), 1));
        assert!(!cache.update(stale, "f".into(), |v| *v = 1));
        assert!(cache.is_empty());
        // The next reader reads the new value and may cache it.
        let fresh = cache.ticket();
        assert!(cache.insert(fresh, "f".into(), 2));
        assert_eq!(cache.get("f"), Some(2));
    }

    #[test]
    fn forget_drops_only_its_key() {
        let cache = ChangeCache::<String, u32>::new();
        let t = cache.ticket();
        assert!(cache.insert(t, "f".into(), 1));
        assert!(cache.insert(t, "g".into(), 2));
        cache.forget("f");
        assert_eq!(cache.get("f"), None);
        assert_eq!(cache.get("g"), Some(2));
    }

    #[test]
    fn update_builds_an_entry_in_place() {
        let cache = ChangeCache::<String, Vec<u32>>::new();
        let t = cache.ticket();
        assert!(cache.update(t, "f".into(), |v| v.push(1)));
        assert!(cache.update(t, "f".into(), |v| v.push(2)));
        assert_eq!(cache.get("f"), Some(vec![1, 2]));
    }

    #[test]
    fn concurrent_fills_and_forgets_never_leave_a_value_older_than_the_last_forget() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        // The "store" holds a version number; a writer bumps it and then forgets (commit,
        // then event), readers read it and cache it. Once everyone is done, the cache
        // holds either nothing or the final version.
        let cache = Arc::new(ChangeCache::<&'static str, u32>::new());
        let store = Arc::new(AtomicU32::new(0));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (cache, store) = (Arc::clone(&cache), Arc::clone(&store));
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        if cache.get("f").is_none() {
                            let t = cache.ticket();
                            let v = store.load(Ordering::SeqCst);
                            let _ = cache.insert(t, "f", v);
                        }
                    }
                })
            })
            .collect();
        for _ in 0..500 {
            store.fetch_add(1, Ordering::SeqCst);
            cache.forget("f");
            std::thread::yield_now();
        }
        for r in readers {
            r.join().unwrap();
        }
        let last = store.load(Ordering::SeqCst);
        let cached = cache.get("f");
        assert!(
            cached.is_none() || cached == Some(last),
            "{cached:?} after {last}"
        );
    }
}

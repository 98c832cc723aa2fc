//! The engine's subscription to control-plane changes: the registry of resolved versions
//! and the pools of warm instances follow every change that can alter what an invocation
//! runs, and the concurrency table follows every reservation change. Nothing outside calls
//! the invalidation by hand; the control plane delivers each change here before the command
//! that made it returns.

use warden_types::change::{Change, ChangeEvent, ChangeObserver};

use crate::{Concurrency, Engine};

impl ChangeObserver for Engine {
    /// Drops the function's cached versions and aliases and retires its warm instances
    /// (running invocations finish; no instance of the old configuration is reused).
    fn on_change(&self, event: &ChangeEvent) {
        if event.change.affects_invocation() {
            self.invalidate(&event.function);
        }
    }

    /// Drops every cached version and alias and retires every warm instance.
    fn on_resync(&self) {
        self.invalidate_all();
    }
}

impl ChangeObserver for Concurrency {
    /// Mirrors the stored reservation: set, removed, or gone with its function.
    fn on_change(&self, event: &ChangeEvent) {
        match &event.change {
            Change::ConcurrencyChanged { reserved } => {
                self.set_reserved(&event.function, *reserved)
            }
            Change::FunctionDeleted => self.set_reserved(&event.function, None),
            _ => {}
        }
    }

    /// Forgets every reservation; the control plane then replays the stored ones
    /// ([`warden_types::change::Change::ConcurrencyChanged`] for each).
    fn on_resync(&self) {
        self.clear_reservations();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_types::FunctionName;

    fn event(change: Change) -> ChangeEvent {
        ChangeEvent {
            function: FunctionName::new("f").unwrap(),
            change,
            actor: None,
            at_ms: 0,
        }
    }

    #[test]
    fn the_concurrency_table_follows_reservation_changes_and_deletions() {
        let c = Concurrency::new(1000, &[]);
        let f = FunctionName::new("f").unwrap();
        c.on_change(&event(Change::ConcurrencyChanged { reserved: Some(7) }));
        assert_eq!(c.reserved(&f), Some(7));
        assert_eq!(c.unreserved(), 993);
        c.on_change(&event(Change::ConfigurationUpdated));
        assert_eq!(c.reserved(&f), Some(7));
        c.on_change(&event(Change::FunctionDeleted));
        assert_eq!(c.reserved(&f), None);
        assert_eq!(c.unreserved(), 1000);
    }
}

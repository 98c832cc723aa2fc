//! The vocabulary of control-plane changes: what happened to a function, as the control
//! plane tells everyone who keeps state derived from it (the engine's caches and warm
//! instances, the concurrency table, the API's resource-policy cache, and later audit and
//! configuration history).
//!
//! It lives here, in the crate every other one depends on, so that a subscriber needs
//! nothing of the control plane itself. Events are plain data and describe a change that
//! is already durable: a subscriber that missed one would only hold a stale cache, so the
//! control plane delivers each event to every subscriber before the command returns.

use crate::names::FunctionName;

/// What changed. One command that succeeds produces exactly one of these (a command that
/// changes nothing, such as a dry run, produces none).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A new function (`$LATEST`), and the version published with it, if any.
    FunctionCreated {
        /// The version the command published too, if it asked to.
        published: Option<String>,
    },
    /// `$LATEST`'s code was replaced, and the version published with it, if any.
    CodeUpdated {
        /// The version the command published too, if it asked to.
        published: Option<String>,
    },
    /// `$LATEST`'s configuration changed (role, memory, environment...).
    ConfigurationUpdated,
    /// A version was published (or an identical newest version was returned).
    VersionPublished {
        /// The new version number.
        version: String,
    },
    /// One published version was deleted.
    VersionDeleted {
        /// The deleted version number.
        version: String,
    },
    /// The whole function is gone: versions, aliases, policy, concurrency, tags.
    FunctionDeleted,
    /// An alias was created.
    AliasCreated {
        /// The alias name.
        alias: String,
    },
    /// An alias now points elsewhere or routes differently.
    AliasUpdated {
        /// The alias name.
        alias: String,
    },
    /// An alias was deleted (or did not exist, which Lambda also answers with success).
    AliasDeleted {
        /// The alias name.
        alias: String,
    },
    /// The function's resource-based policy changed.
    PolicyChanged,
    /// The function's reserved concurrency was set (`Some`) or removed (`None`).
    ConcurrencyChanged {
        /// The reservation, or `None` once removed.
        reserved: Option<u32>,
    },
    /// The function's tags changed.
    TagsChanged,
}

impl Change {
    /// Whether the change can alter what an invocation of the function resolves to or
    /// runs: its versions, aliases, code or configuration. Caches of resolved versions and
    /// warm instances must be dropped for these.
    pub fn affects_invocation(&self) -> bool {
        !matches!(
            self,
            Change::PolicyChanged | Change::ConcurrencyChanged { .. } | Change::TagsChanged
        )
    }

    /// A short name for logs and audit records.
    pub fn name(&self) -> &'static str {
        match self {
            Change::FunctionCreated { .. } => "FunctionCreated",
            Change::CodeUpdated { .. } => "CodeUpdated",
            Change::ConfigurationUpdated => "ConfigurationUpdated",
            Change::VersionPublished { .. } => "VersionPublished",
            Change::VersionDeleted { .. } => "VersionDeleted",
            Change::FunctionDeleted => "FunctionDeleted",
            Change::AliasCreated { .. } => "AliasCreated",
            Change::AliasUpdated { .. } => "AliasUpdated",
            Change::AliasDeleted { .. } => "AliasDeleted",
            Change::PolicyChanged => "PolicyChanged",
            Change::ConcurrencyChanged { .. } => "ConcurrencyChanged",
            Change::TagsChanged => "TagsChanged",
        }
    }
}

/// One durable change to one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The function that changed.
    pub function: FunctionName,
    /// What changed.
    pub change: Change,
    /// Who asked for it: the signed principal's ARN.
    pub actor: Option<String>,
    /// When the control plane committed it, in epoch milliseconds.
    pub at_ms: i64,
}

/// Something that keeps state derived from functions and must hear of every change.
///
/// Called synchronously, once per event, after the change is durable and before the
/// command that made it returns; so an observer must be quick and must not block (drop a
/// cache entry, update a counter, queue a record). It cannot refuse a change.
pub trait ChangeObserver: Send + Sync {
    /// Sees one committed change, before the command that made it returns.
    fn on_change(&self, event: &ChangeEvent);

    /// The node may have missed changes made by other nodes (its notices had a gap): drop
    /// everything derived from the store, so that it is read again. Nothing to do for an
    /// observer whose state is not derived from the shared store.
    fn on_resync(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_versions_aliases_code_and_configuration_affect_invocations() {
        assert!(Change::ConfigurationUpdated.affects_invocation());
        assert!(Change::FunctionDeleted.affects_invocation());
        assert!(Change::AliasDeleted { alias: "a".into() }.affects_invocation());
        assert!(!Change::PolicyChanged.affects_invocation());
        assert!(!Change::TagsChanged.affects_invocation());
        assert!(!Change::ConcurrencyChanged { reserved: Some(1) }.affects_invocation());
    }
}

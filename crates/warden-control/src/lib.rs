//! Warden's control-plane core: everything that changes a function goes through here.
//!
//! A command arrives typed (`commands`), its values already validated by the newtypes of
//! `warden_types`. Running it follows one path:
//!
//! 1. the steps that depend on who asks: the execution role's checks
//!    (`roles`: resolve the role, `iam:PassRole` decided by the [`Caller`], trust in
//!    Lambda) for every command that sets a role;
//! 2. code intake for every command that brings a package: for a function with a code
//!    signing config, the signature check (`signing`, also run on the layer versions it
//!    uses), then the ordered [`CodeCheck`] chain (`code`), then installation in the blob
//!    store under a pin;
//! 3. the environment sealed by the [`Keyring`];
//! 4. one store write (atomic per function);
//! 5. exactly one [`ChangeEvent`] delivered to every subscribed [`ChangeObserver`] before
//!    the command returns, so that caches derived from the store (the engine's registry and
//!    warm instances, the concurrency table, the API's policy cache) never serve a stale
//!    function after its change was acknowledged.
//!
//! Reads the API needs (functions, versions, aliases, policy, concurrency, tags, account
//! settings, logs) go through here too, so the API never touches the store.
//!
//! Who may call: the API, after authenticating and authorizing the request for the
//! operation's IAM action; the core adds only the checks that need more than that action
//! (passing a role).
#![forbid(unsafe_code)]

mod aliases;
pub mod code;
pub mod commands;
mod error;
mod functions;
pub mod keyring;
pub mod layers;
pub mod policy;
mod reads;
pub mod roles;
pub mod scan;
mod settings;
pub mod signing;

use std::sync::{Arc, RwLock};

use warden_runtimes::RuntimeTable;
use warden_store::blobs::BlobStore;
use warden_store::Store;
use warden_types::change::{Change, ChangeEvent, ChangeObserver};
use warden_types::{AccountId, FunctionName, FunctionRef, Qualifier, Region};

pub use code::{CodeCheck, CodeRefusal, Intake};
pub use error::ControlError;
pub use functions::signer_error;
pub use keyring::{Keyring, KeyringError};
pub use reads::{AccountSettings, FunctionView, Page, PolicyView};
pub use roles::{Caller, PassRole, RoleDirectory};
/// Stored records the API renders; re-exported so that the API needs no store of its own.
pub use warden_store::{Alias, LogRecord, LogSource, StoreError};
/// The log store's model, for the CloudWatch Logs API.
pub use warden_store::{
    Cursor, EventRange, EventRef, LogGroup, LogGroupInfo, LogStore, LogStreamInfo, Scan,
    StoredEvent, StreamQuery,
};

/// What the core needs to know about the account it serves.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// The account every function belongs to.
    pub account: AccountId,
    /// The region every function lives in.
    pub region: Region,
    /// Account-wide concurrent executions (`--account-concurrency`): reservations must
    /// leave part of it unreserved.
    pub account_concurrency: u32,
}

/// The seams the core runs through.
pub struct Seams {
    /// Resolves roles and reads their trust (the identity service).
    pub roles: Arc<dyn RoleDirectory>,
    /// Seals environments before they are stored.
    pub keyring: Arc<dyn Keyring>,
    /// The intake chain, in order.
    pub code_checks: Vec<Arc<dyn CodeCheck>>,
    /// The runtimes this host can serve: a function is created or configured only with
    /// one of them.
    pub runtimes: Arc<RuntimeTable>,
    /// The advisory database and deploy policy of dependency scanning; with it,
    /// [`Seams::with_dependency_scan`] adds the scan to the intake chain.
    pub advisories: Option<Arc<scan::Advisories>>,
    /// Code signing: the configs deploys are checked against (see [`signing`]).
    pub code_signing: Option<Arc<signing::CodeSigning>>,
}

impl Seams {
    /// The given role directory, runtimes and keyring, and the
    /// [`code::standard_checks`].
    pub fn new(
        roles: Arc<dyn RoleDirectory>,
        runtimes: Arc<RuntimeTable>,
        keyring: Arc<dyn Keyring>,
    ) -> Self {
        Self {
            roles,
            runtimes,
            keyring,
            code_checks: code::standard_checks(),
            advisories: None,
            code_signing: None,
        }
    }

    /// Checks every deploy of a function with a code signing config (and, with
    /// `code_signing.require`, refuses functions without one).
    pub fn with_code_signing(mut self, code_signing: Arc<signing::CodeSigning>) -> Self {
        self.code_signing = Some(code_signing);
        self
    }

    /// Scans every package at intake against `advisories`, after Lambda's own checks.
    pub fn with_dependency_scan(mut self, advisories: Arc<scan::Advisories>) -> Self {
        self.code_checks
            .push(Arc::new(scan::DependencyScan(Arc::clone(&advisories))));
        self.advisories = Some(advisories);
        self
    }
}

/// The control-plane core. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    config: ControlConfig,
    store: Arc<dyn Store>,
    blobs: Arc<BlobStore>,
    seams: Seams,
    observers: RwLock<Vec<Arc<dyn ChangeObserver>>>,
    /// Hears this node's own changes only, after the observers: what tells other nodes.
    announcer: RwLock<Option<Arc<dyn ChangeObserver>>>,
    /// Serialises reservation changes: the check that enough concurrency stays
    /// unreserved reads every reservation, then writes one.
    concurrency: tokio::sync::Mutex<()>,
    /// Serialises tag changes, which read the function's tags, merge, check the limit and
    /// write them back.
    tags: tokio::sync::Mutex<()>,
}

impl Control {
    /// The core over `store` and `blobs`. Called once, by the server at boot; nothing
    /// subscribes yet (see [`Control::subscribe`]).
    pub fn new(
        config: ControlConfig,
        store: Arc<dyn Store>,
        blobs: Arc<BlobStore>,
        seams: Seams,
    ) -> Self {
        tracing::debug!(
            keyring = seams.keyring.describe(),
            checks = seams.code_checks.len(),
            "control plane ready"
        );
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                blobs,
                seams,
                observers: RwLock::new(Vec::new()),
                announcer: RwLock::new(None),
                concurrency: tokio::sync::Mutex::new(()),
                tags: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Adds a subscriber: from now on it hears of every change, in order. Called at boot
    /// for every cache derived from the store (the API's `ApiState::new` subscribes the
    /// engine, the concurrency table and the access cache); a subscriber is never removed.
    pub fn subscribe(&self, observer: Arc<dyn ChangeObserver>) {
        self.inner
            .observers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(observer);
    }

    /// Sets what tells other nodes of this node's changes (the bus's publisher): it hears
    /// every change a command of this node makes, after the subscribers, and never a
    /// change delivered by [`Control::apply_remote`], so notices do not echo.
    pub fn announce_to(&self, announcer: Arc<dyn ChangeObserver>) {
        *self
            .inner
            .announcer
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(announcer);
    }

    /// Delivers a change another node made (and committed) to every subscriber, as if a
    /// command of this node had made it.
    pub fn apply_remote(&self, event: &ChangeEvent) {
        tracing::debug!(function = %event.function, change = event.change.name(), "change made by another node");
        for observer in self.observers() {
            observer.on_change(event);
        }
    }

    /// The node may have missed changes of other nodes: every subscriber drops what it
    /// derived from the store, then hears the stored reservations again (the concurrency
    /// table cannot read them itself). Blocks on the store.
    pub fn resync(&self) -> Result<(), ControlError> {
        let reservations = self
            .inner
            .store
            .all_reserved_concurrency()
            .map_err(|e| ControlError::Internal(e.to_string()))?;
        let observers = self.observers();
        for observer in &observers {
            observer.on_resync();
        }
        for (function, reserved) in reservations {
            let event = ChangeEvent {
                function,
                change: Change::ConcurrencyChanged {
                    reserved: Some(reserved),
                },
                actor: None,
                at_ms: warden_types::now_millis(),
            };
            for observer in &observers {
                observer.on_change(&event);
            }
        }
        tracing::info!("dropped every cache: this node may have missed other nodes' changes");
        Ok(())
    }

    fn observers(&self) -> Vec<Arc<dyn ChangeObserver>> {
        self.inner
            .observers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The settings the control plane was built with.
    pub fn config(&self) -> &ControlConfig {
        &self.inner.config
    }

    /// The log store, which CloudWatch Logs' operations read and write directly: log
    /// groups, streams and events hold no function configuration, so no command or change
    /// event stands between them and their callers (who authorize each call first).
    pub fn log_store(&self) -> Arc<dyn warden_store::LogStore> {
        Arc::clone(&self.inner.store) as Arc<dyn warden_store::LogStore>
    }

    /// The ARN of a function, optionally qualified.
    pub fn function_arn(&self, name: &FunctionName, qualifier: Option<&str>) -> String {
        warden_types::names::function_arn(
            &self.inner.config.region,
            &self.inner.config.account,
            name,
            qualifier,
        )
    }

    /// Parses a function reference (name, partial or full ARN), checking account and region.
    pub fn function_ref(&self, s: &str) -> Result<FunctionRef, ControlError> {
        Ok(FunctionRef::parse(
            s,
            &self.inner.config.account,
            &self.inner.config.region,
        )?)
    }

    /// Lambda's "not found" for a reference as the caller named it.
    pub(crate) fn not_found(&self, r: &FunctionRef) -> ControlError {
        let q = r.qualifier.as_ref().map(Qualifier::to_string);
        ControlError::NotFound(format!(
            "Function not found: {}",
            self.function_arn(&r.name, q.as_deref())
        ))
    }

    pub(crate) fn function_not_found(&self, name: &FunctionName) -> ControlError {
        ControlError::NotFound(format!(
            "Function not found: {}",
            self.function_arn(name, None)
        ))
    }

    /// Delivers one change to every subscriber. Called once per command, after the store
    /// acknowledged the change.
    pub(crate) fn emit(&self, function: &FunctionName, change: Change, caller: &dyn Caller) {
        let event = ChangeEvent {
            function: function.clone(),
            change,
            actor: caller.principal().map(str::to_owned),
            at_ms: warden_types::now_millis(),
        };
        tracing::debug!(function = %event.function, change = event.change.name(), "control-plane change");
        for observer in self.observers() {
            observer.on_change(&event);
        }
        let announcer = self
            .inner
            .announcer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(announcer) = announcer {
            announcer.on_change(&event);
        }
    }

    /// Runs a store (or blob) call on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| ControlError::Internal(format!("a control-plane task failed: {e}")))?
    }
}

fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests;

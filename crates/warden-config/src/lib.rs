//! AWS Config's configuration history for Warden's own resources.
//!
//! A **configuration item** is what a resource looked like after a change: its type
//! (`AWS::Lambda::Function`), id and name, ARN, the configuration as the service's own read
//! shows it (secrets left out by the caller that captured it), the time, a status
//! (`ResourceDiscovered` for the first item, `OK` after, `ResourceDeleted` once it is
//! gone), a `configurationStateId` that grows by one per item of that resource, and the
//! ids of the audit events that caused it (`relatedEvents`).
//!
//! [`ConfigStore::record`] keeps an item only when something changed: a capture whose
//! configuration hashes as the resource's latest one adds its events to nothing and is
//! dropped. [`ConfigStore::history`] and [`ConfigStore::discovered`] serve AWS Config's
//! `GetResourceConfigHistory` and `ListDiscoveredResources`; [`diff`] says what changed
//! between two items.
//!
//! Bounds: an item's configuration is refused above [`MAX_CONFIGURATION_BYTES`]; a resource
//! keeps its newest [`MAX_ITEMS_PER_RESOURCE`] items and the store its newest [`MAX_ITEMS`];
//! pages hold at most [`MAX_LIMIT`] items (100 resource identifiers), as AWS Config's do.
#![forbid(unsafe_code)]

mod diff;
mod postgres;
mod store;

pub use diff::{diff, Change};
pub use postgres::TRACK as POSTGRES_TRACK;
pub use store::{
    ConfigStore, Error, HistoryQuery, Item, NewItem, Order, Resource, Status,
    MAX_CONFIGURATION_BYTES, MAX_LIMIT,
};

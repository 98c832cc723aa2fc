//! The findings of posture checks, as Security Hub keeps them.
//!
//! A finding is one control failing on one resource; its id is made of both, so the same
//! failure seen again is the same finding. [`FindingStore::reconcile`] takes what one
//! evaluation observed, for the controls it evaluated:
//! - a failure not seen before becomes a finding: workflow `NEW`, compliance `FAILED`,
//!   record `ACTIVE`;
//! - a failure seen again refreshes `LastObservedAt` (and its text); one that had been
//!   resolved is opened again as `NEW`; a suppressed one stays suppressed;
//! - a finding of an evaluated control not observed this time is resolved: workflow
//!   `RESOLVED`, compliance `PASSED`, record `ARCHIVED`.
//!
//! [`FindingStore::set_workflow`] is BatchUpdateFindings' workflow change; suppressing
//! needs a note saying why. [`FindingStore::query`] is GetFindings over a subset of its
//! filters ([`Filter`]).
#![forbid(unsafe_code)]

mod postgres;
mod store;

pub use postgres::TRACK as POSTGRES_TRACK;
pub use store::{
    Comparison, Error, Field, Filter, Finding, FindingStore, Observed, Reconciled, Workflow,
    MAX_FINDINGS, MAX_RESULTS,
};

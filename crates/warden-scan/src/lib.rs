//! Dependency scanning of function and layer packages, offline: find the third-party
//! packages a package ships ([`inventory`], [`inventory_zip`]), match them against
//! vulnerability advisories in the OSV schema ([`AdvisoryDb`], [`scan`]), and describe
//! them as a CycloneDX SBOM ([`sbom::cyclonedx`]).
//!
//! Everything read comes from the package's uploader or from an advisory export, so all
//! of it is treated as hostile: reads are bounded, paths that climb out of the package
//! are refused, and a malformed manifest or advisory is reported and skipped, never a
//! panic.
//!
//! ```text
//! zip / files ──inventory──▶ Inventory ──scan(&db)──▶ ScanReport { findings, unparsable }
//!                                 └──sbom::cyclonedx──▶ CycloneDX 1.5 JSON
//! OSV dir / zip ──import──▶ AdvisoryDb ◀──load / replace──▶ AdvisoryStore (SQLite)
//! ```
//!
//! Choices worth knowing:
//! - A package found by several manifests is listed once per (ecosystem, normalised
//!   name, version), with every path that named it, in the order read.
//! - Local packages (workspace members, path and editable dependencies) are listed and
//!   go into the SBOM, but are not matched: a local crate called `time` is not RustSec's.
//! - A version that does not parse in its ecosystem's ordering still matches an
//!   advisory's explicit `versions` by string; against ranges nothing is guessed, and the
//!   pair is reported in [`ScanReport::unparsable`].
//! - The crate does no network I/O, and writes no file except the store's database.
#![forbid(unsafe_code)]

pub mod accept;
mod advisory;
mod ecosystem;
mod error;
mod inventory;
mod matching;
pub mod sbom;
mod store;
mod version;

pub use accept::{AcceptError, Acceptance};
pub use advisory::{Advisory, AdvisoryDb, ImportLimits, ImportReport, Rating, Severity};
pub use ecosystem::Ecosystem;
pub use error::Error;
pub use inventory::{inventory, inventory_zip, is_manifest, Inventory, Limits, Package, Problem};
pub use matching::{scan, Finding, ScanReport, Unparsable};
pub use store::AdvisoryStore;

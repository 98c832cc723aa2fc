//! Dependency scanning of function and layer packages, offline: find the third-party
//! packages a package ships ([`inventory`], [`inventory_zip`]), match them against
//! vulnerability advisories in the OSV schema ([`AdvisoryDb`], [`scan`]), and describe
//! them as a CycloneDX SBOM ([`sbom::cyclonedx`]).
//!
//! Everything read comes from the package's uploader or from an advisory export, so all
//! of it is treated as hostile: reads are bounded, paths that climb out of the package
//! are refused, and a malformed manifest or advisory is reported and skipped, never a
//! panic.
#![forbid(unsafe_code)]

mod advisory;
mod ecosystem;
mod error;
mod inventory;
mod matching;
pub mod sbom;
mod store;
mod version;

pub use advisory::{Advisory, AdvisoryDb, ImportLimits, ImportReport, Rating, Severity};
pub use ecosystem::Ecosystem;
pub use error::Error;
pub use inventory::{inventory, inventory_zip, is_manifest, Inventory, Limits, Package, Problem};
pub use matching::{scan, Finding, ScanReport, Unparsable};
pub use store::AdvisoryStore;

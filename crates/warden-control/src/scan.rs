//! Dependency scanning at intake: every package a deploy brings (function code and layers)
//! is inventoried and matched against the advisory database before it is installed, and
//! the account's policy decides what a finding does: `warn` (the default) logs it and lets
//! the deploy proceed; `block` at a severity refuses packages with a finding at or above it
//! (the error lists them).
//!
//! The database is imported from OSV exports (`warden scan db import`), kept in
//! `DATA_DIR/advisories.db`, and swapped in memory at once: the next deploy and the next
//! query see it, with no restart. Findings of a deployed function are computed when asked
//! for, against the database as it is then, so an advisory published after a deploy shows
//! on the next query.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use warden_scan::{AdvisoryDb, AdvisoryStore, ImportLimits, ImportReport, Inventory, Rating};

use crate::code::{CodeCheck, CodeRefusal, Intake};

/// What a finding does to a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanPolicy {
    /// Logged; the deploy proceeds.
    Warn,
    /// A finding rated at or above this refuses the package (one without a rating counts
    /// as below any).
    Block(Rating),
}

impl std::str::FromStr for ScanPolicy {
    type Err = String;

    /// `warn`, or `block:low|medium|high|critical`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rating = match s {
            "warn" => return Ok(ScanPolicy::Warn),
            "block:low" => Rating::Low,
            "block:medium" => Rating::Medium,
            "block:high" => Rating::High,
            "block:critical" => Rating::Critical,
            other => {
                return Err(format!(
                    "`{other}` is not a scan policy: use warn, or block:low, block:medium, block:high or block:critical"
                ))
            }
        };
        Ok(ScanPolicy::Block(rating))
    }
}

/// What went wrong keeping or using the advisory database.
#[derive(Debug, thiserror::Error)]
pub enum AdvisoryError {
    /// The export could not be read (not a zip, too large, unsafe paths).
    #[error("the advisory export cannot be imported: {0}")]
    Import(warden_scan::Error),
    /// The database could not be opened or written.
    #[error("the advisory database failed: {0}")]
    Store(warden_scan::Error),
    /// The package could not be read.
    #[error("the package cannot be inventoried: {0}")]
    Package(warden_scan::Error),
}

/// The advisory database in use, and the policy deploys are held to.
pub struct Advisories {
    db: RwLock<Arc<AdvisoryDb>>,
    store: AdvisoryStore,
    policy: ScanPolicy,
    /// The advisories found in each function's `$LATEST` by the last re-scan since the
    /// server started: what a re-scan reports as new is what is not here.
    known: std::sync::Mutex<std::collections::HashMap<String, std::collections::BTreeSet<String>>>,
}

impl Advisories {
    /// Opens the database at `path` (empty on first start) under `policy`.
    pub fn open(path: &Path, policy: ScanPolicy) -> Result<Self, AdvisoryError> {
        let store = AdvisoryStore::open(path).map_err(AdvisoryError::Store)?;
        let (db, report) = store
            .load(&ImportLimits::default())
            .map_err(AdvisoryError::Store)?;
        if !report.malformed.is_empty() {
            tracing::warn!(
                malformed = report.malformed.len(),
                "stored advisories that no longer parse were left out"
            );
        }
        Ok(Self {
            db: RwLock::new(Arc::new(db)),
            store,
            policy,
            known: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The database as it is now.
    pub fn current(&self) -> Arc<AdvisoryDb> {
        Arc::clone(&self.db.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The deploy policy.
    pub fn policy(&self) -> ScanPolicy {
        self.policy
    }

    /// Replaces the database with the advisories of a zip export of OSV JSON files,
    /// durably, then in memory.
    pub fn import_zip(&self, zip: &[u8]) -> Result<ImportReport, AdvisoryError> {
        let (db, report) =
            AdvisoryDb::import_zip(zip, &ImportLimits::default()).map_err(AdvisoryError::Import)?;
        self.store.replace(&db).map_err(AdvisoryError::Store)?;
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(db);
        Ok(report)
    }

    /// The packages `zip` ships, and what the current database says of them.
    pub fn scan_zip(
        &self,
        zip: &[u8],
    ) -> Result<(Inventory, warden_scan::ScanReport), AdvisoryError> {
        let inventory = warden_scan::inventory_zip(zip, &warden_scan::Limits::default())
            .map_err(AdvisoryError::Package)?;
        let report = warden_scan::scan(&inventory, &self.current());
        Ok((inventory, report))
    }
}

/// The intake check: scans the package, applies the policy.
pub struct DependencyScan(pub Arc<Advisories>);

/// The most findings a refusal lists.
const LISTED: usize = 10;

impl CodeCheck for DependencyScan {
    fn name(&self) -> &'static str {
        "dependency-scan"
    }

    fn check(&self, intake: &mut Intake<'_>) -> Result<(), CodeRefusal> {
        let (_, report) = match self.0.scan_zip(intake.zip()) {
            Ok(r) => r,
            // The extraction check before this one accepted the zip: what the scanner
            // cannot read is the scanner's limit, not a reason to refuse the deploy.
            Err(e) => {
                tracing::warn!(operation = intake.operation(), error = %e, "a package could not be scanned");
                return Ok(());
            }
        };
        if report.findings.is_empty() {
            return Ok(());
        }
        let blocking: Vec<&warden_scan::Finding> = match self.0.policy {
            ScanPolicy::Warn => Vec::new(),
            ScanPolicy::Block(at) => report
                .findings
                .iter()
                .filter(|f| f.severity.as_ref().is_some_and(|s| s.rating >= at))
                .collect(),
        };
        if blocking.is_empty() {
            tracing::warn!(
                operation = intake.operation(),
                code_sha256 = intake.sha256(),
                findings = report.findings.len(),
                advisories = %report
                    .findings
                    .iter()
                    .map(|f| f.advisory_id.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                "deployed a package with known vulnerabilities"
            );
            return Ok(());
        }
        let mut listed: Vec<String> = blocking
            .iter()
            .take(LISTED)
            .map(|f| {
                let rating = f
                    .severity
                    .as_ref()
                    .map(|s| format!("{:?}", s.rating))
                    .unwrap_or_default();
                format!("{} {}@{} ({rating})", f.advisory_id, f.name, f.version)
            })
            .collect();
        if blocking.len() > LISTED {
            listed.push(format!("and {} more", blocking.len() - LISTED));
        }
        Err(CodeRefusal::Refused {
            check: "dependency-scan",
            message: format!(
                "the package has {} known vulnerabilities at or above the account's blocking severity: {}",
                blocking.len(),
                listed.join(", ")
            ),
        })
    }
}

/// One package of a function (its code, or a layer) and what the database says of it.
#[derive(Debug)]
pub struct PackageScan {
    /// `code`, or the layer version's ARN.
    pub source: String,
    /// Base64 SHA-256 of the package's zip.
    pub code_sha256: String,
    /// The third-party packages it ships.
    pub inventory: Inventory,
    /// Their known vulnerabilities.
    pub report: warden_scan::ScanReport,
}

impl crate::Control {
    /// The advisory database and policy, when dependency scanning is on.
    pub fn advisories(&self) -> Option<&Arc<Advisories>> {
        self.inner.seams.advisories.as_ref()
    }

    /// Scans the code and layers of the version `r` names against the database as it is
    /// now.
    pub async fn scan_function(
        &self,
        r: &warden_types::FunctionRef,
    ) -> Result<Vec<PackageScan>, crate::ControlError> {
        let Some(advisories) = self.advisories().cloned() else {
            return Err(crate::ControlError::Internal(
                "dependency scanning is not configured".into(),
            ));
        };
        let config = self.get_configuration(r).await?;
        self.blocking(move |inner| {
            let mut packages = vec![("code".to_owned(), config.code_sha256.clone())];
            packages.extend(
                config
                    .layers
                    .iter()
                    .map(|l| (l.arn.clone(), l.code_sha256.clone())),
            );
            let mut out = Vec::new();
            for (source, sha) in packages {
                let zip = inner
                    .blobs
                    .read_zip(&sha)
                    .map_err(|e| crate::ControlError::Internal(e.to_string()))?;
                let (inventory, report) = advisories
                    .scan_zip(&zip)
                    .map_err(|e| crate::ControlError::Internal(e.to_string()))?;
                out.push(PackageScan {
                    source,
                    code_sha256: sha,
                    inventory,
                    report,
                });
            }
            Ok(out)
        })
        .await
    }
}

/// What a re-scan of every function found.
#[derive(Debug, Default)]
pub struct Rescan {
    /// Functions scanned.
    pub functions: usize,
    /// Functions with at least one finding.
    pub with_findings: usize,
    /// Per function, the advisories found that the previous re-scan did not find.
    pub new: Vec<(String, Vec<String>)>,
}

impl crate::Control {
    /// Scans every function's `$LATEST` (its code and layers) against the database as it
    /// is now, as after an import, and reports what is new since the previous re-scan.
    pub async fn rescan_functions(&self) -> Result<Rescan, crate::ControlError> {
        let Some(advisories) = self.advisories().cloned() else {
            return Ok(Rescan::default());
        };
        let mut summary = Rescan::default();
        let mut after = None;
        loop {
            let page = self
                .list_functions(after.clone(), warden_types::limits::MAX_LIST_ITEMS, false)
                .await?;
            for f in &page.items {
                let r = warden_types::FunctionRef {
                    name: f.name.clone(),
                    qualifier: None,
                };
                let scans = match self.scan_function(&r).await {
                    Ok(s) => s,
                    // Deleted meanwhile, or its code is unreadable: not this scan's business.
                    Err(e) => {
                        tracing::warn!(function = %f.name, error = %e, "a function could not be re-scanned");
                        continue;
                    }
                };
                summary.functions += 1;
                let found: std::collections::BTreeSet<String> = scans
                    .iter()
                    .flat_map(|s| s.report.findings.iter().map(|f| f.advisory_id.clone()))
                    .collect();
                if !found.is_empty() {
                    summary.with_findings += 1;
                }
                let mut known = advisories
                    .known
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let before = known.get(f.name.as_str());
                let new: Vec<String> = found
                    .iter()
                    .filter(|id| before.is_none_or(|b| !b.contains(*id)))
                    .cloned()
                    .collect();
                if !new.is_empty() {
                    summary.new.push((f.name.to_string(), new));
                }
                known.insert(f.name.to_string(), found);
            }
            match page
                .next_marker
                .and_then(|m| warden_types::FunctionName::new(&m).ok())
            {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(summary)
    }
}

//! Dependency scanning at intake: every package a deploy brings (function code and layers)
//! is inventoried and matched against the advisory database before it is installed, and
//! the policy decides what a finding does: `warn` (the default) logs it and lets the
//! deploy proceed; `block` at a severity refuses packages with a finding at or above it
//! (the error lists them).
//!
//! **Whose policy.** The account's (`warden serve --dependency-scan`), made stricter for
//! one function by its tag `warden:scan-policy` (`warn`, or `block:low|medium|high|critical`;
//! [`POLICY_TAG`]). A tag can only tighten: the policy a deploy is held to is the stricter
//! of the two ([`ScanPolicy::stricter`]), because anyone allowed `lambda:TagResource`
//! could otherwise switch blocking off. A tag value that is not a policy is refused at
//! CreateFunction and TagResource. It applies when the function's code is deployed
//! (CreateFunction with the request's tags, UpdateFunctionCode with the stored ones), to
//! the code and to the layers the function uses, and when UpdateFunctionConfiguration
//! changes its layers. A layer is held to the account's policy when it is published (it
//! has no tags), and to a stricter tag of each function that deploys with it
//! ([`crate::Control::check_layers_against_tag`]). Tagging checks nothing by itself: the
//! next deploy does. With `--dependency-scan off` there is no database and the tag does
//! nothing.
//!
//! **Accepted advisories.** An operator allowed `warden:AcceptAdvisory` can accept an
//! advisory, for every function or one, until a day at most a year ahead, with a reason
//! ([`warden_scan::accept`]). Until that day has passed, the finding does not block a
//! deploy and is shown as accepted; afterwards it counts again, with nothing to undo.
//! Acceptances are kept in the advisory database's file, apart from the advisories, so an
//! import keeps them.
//!
//! The database is imported from OSV exports (`warden scan db import`), kept in
//! `DATA_DIR/advisories.db`, and swapped in memory at once: the next deploy and the next
//! query see it, with no restart. Findings of a deployed function are computed when asked
//! for, against the database as it is then, so an advisory published after a deploy shows
//! on the next query. An import re-scans every function's `$LATEST` and published
//! versions ([`crate::Control::rescan_functions`]; each distinct package once) and reports
//! what is new.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use time::Date;
use warden_scan::{
    Acceptance, AdvisoryDb, AdvisoryStore, ImportLimits, ImportReport, Inventory, Rating,
};

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

impl ScanPolicy {
    /// The stricter of two policies: blocking beats warning, and a lower blocking
    /// severity beats a higher one.
    pub fn stricter(self, other: ScanPolicy) -> ScanPolicy {
        match (self, other) {
            (ScanPolicy::Warn, p) | (p, ScanPolicy::Warn) => p,
            (ScanPolicy::Block(a), ScanPolicy::Block(b)) => ScanPolicy::Block(a.min(b)),
        }
    }

    /// As written on the command line and in the tag: `warn`, `block:high`...
    pub fn as_text(self) -> String {
        match self {
            ScanPolicy::Warn => "warn".into(),
            ScanPolicy::Block(r) => format!("block:{}", format!("{r:?}").to_ascii_lowercase()),
        }
    }

    /// Whether a finding with this severity refuses a package.
    fn blocks(self, finding: &warden_scan::Finding) -> bool {
        match self {
            ScanPolicy::Warn => false,
            ScanPolicy::Block(at) => finding.severity.as_ref().is_some_and(|s| s.rating >= at),
        }
    }
}

/// The function tag that makes dependency scanning stricter for one function.
pub const POLICY_TAG: &str = "warden:scan-policy";

/// Refuses tags whose [`POLICY_TAG`] is not a policy (`InvalidParameterValueException`,
/// naming the tag). Called by CreateFunction and TagResource whether scanning is on or
/// not, so a stored tag is always a policy.
pub fn check_policy_tag(tags: &BTreeMap<String, String>) -> Result<(), crate::ControlError> {
    match tags.get(POLICY_TAG) {
        None => Ok(()),
        Some(v) => v.parse::<ScanPolicy>().map(|_| ()).map_err(|_| {
            let shown: String = v.chars().take(64).collect();
            crate::ControlError::Invalid(format!(
                "the value `{shown}` of tag `{POLICY_TAG}` is not a scan policy: use warn, or block:low, block:medium, block:high or block:critical"
            ))
        }),
    }
}

/// The policy a function's deploy is held to: the account's, made stricter (never
/// looser) by the function's [`POLICY_TAG`]. A tag that is not a policy (which
/// [`check_policy_tag`] keeps from being stored) is ignored.
pub fn effective_policy(account: ScanPolicy, tags: &BTreeMap<String, String>) -> ScanPolicy {
    match tags.get(POLICY_TAG).map(|v| v.parse::<ScanPolicy>()) {
        Some(Ok(tag)) => account.stricter(tag),
        _ => account,
    }
}

/// Today, in UTC: the day acceptances are compared with.
pub fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
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
    /// An acceptance was refused (the field at fault, and why).
    #[error(transparent)]
    Accept(#[from] warden_scan::AcceptError),
    /// As many advisories are accepted as may be.
    #[error("{0}")]
    Limit(warden_scan::Error),
}

fn store_error(e: warden_scan::Error) -> AdvisoryError {
    match e {
        warden_scan::Error::TooManyAcceptances { .. } => AdvisoryError::Limit(e),
        other => AdvisoryError::Store(other),
    }
}

/// The advisory database in use, and the policy deploys are held to.
pub struct Advisories {
    db: RwLock<Arc<AdvisoryDb>>,
    store: AdvisoryStore,
    policy: ScanPolicy,
    /// The advisories found in each function version (`NAME:VERSION`) by the last re-scan
    /// since the server started: what a re-scan reports as new is what is not here.
    known: std::sync::Mutex<HashMap<String, BTreeSet<String>>>,
    /// The accepted advisories, as stored (expired ones too: they count for nothing).
    accepted: RwLock<Vec<Acceptance>>,
    /// Today's date (UTC): [`today`] but where a test sets another day.
    clock: fn() -> Date,
    /// Reports of stored packages by SHA-256, against the database they were made with:
    /// reading a package again (Inspector's `ListFindings` reads every package on each
    /// call, a read-only permission) must not cost a decompression and a scan each time.
    /// Emptied when the database changes; at most [`REPORTS_CACHED`] entries.
    reports: std::sync::Mutex<ReportCache>,
}

/// The database the cached reports were made with, and the reports.
type ReportCache = (
    Option<Arc<AdvisoryDb>>,
    HashMap<String, Arc<warden_scan::ScanReport>>,
);

/// The most stored-package reports kept (each a few findings, usually none).
const REPORTS_CACHED: usize = 4096;

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
        let (accepted, unreadable) = store.acceptances().map_err(AdvisoryError::Store)?;
        if !unreadable.is_empty() {
            tracing::warn!(
                advisories = %unreadable.join(","),
                "stored acceptances whose day no longer reads were left out"
            );
        }
        Ok(Self {
            db: RwLock::new(Arc::new(db)),
            store,
            policy,
            known: std::sync::Mutex::new(HashMap::new()),
            accepted: RwLock::new(accepted),
            clock: today,
            reports: std::sync::Mutex::new((None, HashMap::new())),
        })
    }

    /// The same, with `clock` telling today's date instead of the system's (to see how
    /// acceptances behave on and after their day).
    pub fn with_clock(mut self, clock: fn() -> Date) -> Self {
        self.clock = clock;
        self
    }

    /// Today (UTC), by this database's clock: the day acceptances are compared with.
    pub fn today(&self) -> Date {
        (self.clock)()
    }

    /// Records an acceptance (replacing one for the same advisory and function), durably,
    /// then in memory. Callers: the API, once the caller was allowed
    /// `warden:AcceptAdvisory`; it loosens what a blocking policy refuses until the
    /// acceptance's day. Refused with [`AdvisoryError::Limit`] beyond
    /// [`warden_scan::accept::MAX_ACCEPTANCES`].
    pub fn accept(&self, acceptance: Acceptance) -> Result<(), AdvisoryError> {
        let mut accepted = self
            .accepted
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.store.accept(&acceptance).map_err(store_error)?;
        accepted.retain(|a| {
            !(a.advisory_id == acceptance.advisory_id && a.function == acceptance.function)
        });
        accepted.push(acceptance);
        accepted.sort_by(|a, b| (&a.advisory_id, &a.function).cmp(&(&b.advisory_id, &b.function)));
        Ok(())
    }

    /// Removes the acceptance of `advisory_id` for `function` (`None`: the one for every
    /// function); whether there was one. Callers: the API, once the caller was allowed
    /// `warden:RevokeAcceptedAdvisory`.
    pub fn revoke(&self, advisory_id: &str, function: Option<&str>) -> Result<bool, AdvisoryError> {
        let mut accepted = self
            .accepted
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let removed = self
            .store
            .revoke(advisory_id, function)
            .map_err(AdvisoryError::Store)?;
        accepted.retain(|a| !(a.advisory_id == advisory_id && a.function.as_deref() == function));
        Ok(removed)
    }

    /// Every acceptance, expired ones included, by advisory then function.
    pub fn acceptances(&self) -> Vec<Acceptance> {
        self.accepted
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The acceptance in force on `today` that covers `advisory_id` in `function` (`""`
    /// for a layer: only acceptances for every function cover it).
    pub fn accepted(&self, advisory_id: &str, function: &str, today: Date) -> Option<Acceptance> {
        let accepted = self.accepted.read().unwrap_or_else(PoisonError::into_inner);
        warden_scan::accept::accepted(&accepted, advisory_id, function, today).cloned()
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

    /// The report of the stored package `sha` against the current database, if one was
    /// made since the database last changed.
    fn cached_report(&self, sha: &str) -> Option<Arc<warden_scan::ScanReport>> {
        let current = self.current();
        let cache = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        match &cache.0 {
            Some(db) if Arc::ptr_eq(db, &current) => cache.1.get(sha).cloned(),
            _ => None,
        }
    }

    /// Scans the stored package `sha` (its bytes `zip`) and keeps the report, unless the
    /// database changed meanwhile or the cache is full of this database's reports.
    fn scan_stored_zip(
        &self,
        sha: &str,
        zip: &[u8],
    ) -> Result<Arc<warden_scan::ScanReport>, AdvisoryError> {
        let inventory = warden_scan::inventory_zip(zip, &warden_scan::Limits::default())
            .map_err(AdvisoryError::Package)?;
        let db = self.current();
        let report = Arc::new(warden_scan::scan(&inventory, &db));
        // Made against a database replaced meanwhile: answered, never kept (nor allowed
        // to empty the reports of the new one).
        if !Arc::ptr_eq(&db, &self.current()) {
            return Ok(report);
        }
        let mut cache = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        if !cache.0.as_ref().is_some_and(|held| Arc::ptr_eq(held, &db)) {
            *cache = (Some(Arc::clone(&db)), HashMap::new());
        }
        if cache.1.len() < REPORTS_CACHED {
            cache.1.insert(sha.to_owned(), Arc::clone(&report));
        }
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
        let (function, policy) = match intake.function() {
            Some(f) => (f.name.as_str(), effective_policy(self.0.policy, &f.tags)),
            None => ("", self.0.policy),
        };
        let today = self.0.today();
        let blocking: Vec<&warden_scan::Finding> = report
            .findings
            .iter()
            .filter(|f| policy.blocks(f))
            .filter(|f| {
                let accepted = self.0.accepted(&f.advisory_id, function, today);
                if let Some(a) = &accepted {
                    tracing::warn!(
                        operation = intake.operation(),
                        function,
                        advisory = %f.advisory_id,
                        until = %warden_scan::accept::format_day(a.until),
                        reason = %a.reason,
                        "a finding that would block the deploy is accepted"
                    );
                }
                accepted.is_none()
            })
            .collect();
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
                "the package has {} known vulnerabilities at or above the blocking severity ({}): {}",
                blocking.len(),
                policy.as_text(),
                listed.join(", ")
            ),
        })
    }
}

impl crate::Control {
    /// Holds the layers a function deploys with to the function's own policy when its
    /// `warden:scan-policy` tag is stricter than the account's (a layer was checked
    /// against the account's policy when it was published; without this, a layer would
    /// carry past the tag what the function's code could not). A refusal names the layer.
    /// Callers: CreateFunction, UpdateFunctionCode and UpdateFunctionConfiguration, once
    /// their caller was authorized; it changes nothing.
    pub(crate) async fn check_layers_against_tag(
        &self,
        operation: &'static str,
        subject: &crate::code::Subject,
        layers: &[warden_types::layer::FunctionLayer],
    ) -> Result<(), crate::ControlError> {
        let Some(advisories) = self.advisories().cloned() else {
            return Ok(());
        };
        if layers.is_empty()
            || effective_policy(advisories.policy, &subject.tags) == advisories.policy
        {
            return Ok(());
        }
        for layer in layers {
            let (advisories, subject) = (Arc::clone(&advisories), subject.clone());
            let (sha, arn) = (layer.code_sha256.clone(), layer.arn.clone());
            self.blocking(move |inner| {
                let zip = inner
                    .blobs
                    .read_zip(&sha)
                    .map_err(|e| crate::ControlError::Internal(e.to_string()))?;
                let tree = inner.blobs.code_dir(&sha);
                let mut intake = crate::code::Intake::installed(operation, &zip, &sha, &tree)
                    .for_function(Some(&subject));
                DependencyScan(advisories)
                    .check(&mut intake)
                    .map_err(|refusal| match refusal {
                        CodeRefusal::Refused { check, message } => CodeRefusal::Refused {
                            check,
                            message: format!("layer version {arn}: {message}"),
                        },
                        other => other,
                    })
                    .map_err(crate::ControlError::from)
            })
            .await?;
        }
        Ok(())
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

/// Advisories newly found in one function version by a re-scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFindings {
    /// The function.
    pub function: String,
    /// `$LATEST` or a published version's number.
    pub version: String,
    /// The advisories not found in this version by the previous re-scan.
    pub advisories: Vec<String>,
}

/// Advisories a re-scan found in a layer version that the previous one did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayerFindings {
    /// The layer version's ARN.
    pub layer_version_arn: String,
    /// The advisories not found in it by the previous re-scan.
    pub advisories: Vec<String>,
}

/// What a re-scan of every function and layer found.
#[derive(Debug, Default)]
pub struct Rescan {
    /// Functions scanned.
    pub functions: usize,
    /// Layer versions scanned (every published one, used by a function or not).
    pub layer_versions: usize,
    /// Per layer version, the advisories found that the previous re-scan did not find.
    pub new_layers: Vec<NewLayerFindings>,
    /// Function versions scanned (`$LATEST` and published ones).
    pub versions: usize,
    /// Distinct packages (code and layers, by SHA-256) read and scanned.
    pub packages: usize,
    /// Functions with at least one finding in some version.
    pub with_findings: usize,
    /// Per function version, the advisories found that the previous re-scan did not find.
    pub new: Vec<NewFindings>,
}

/// Layers, and versions of one layer, per page of a re-scan.
const LAYER_PAGE: usize = 50;

impl crate::Control {
    /// What the database says, now, of the package (code or layer) stored under `sha`.
    /// Callers: the API's finding reads, once their caller was authorized; changes
    /// nothing.
    pub async fn scan_stored_package(
        &self,
        sha: &str,
    ) -> Result<warden_scan::ScanReport, crate::ControlError> {
        let Some(advisories) = self.advisories().cloned() else {
            return Err(crate::ControlError::Internal(
                "dependency scanning is not configured".into(),
            ));
        };
        if let Some(report) = advisories.cached_report(sha) {
            return Ok((*report).clone());
        }
        let sha = sha.to_owned();
        self.blocking(move |inner| {
            let zip = inner
                .blobs
                .read_zip(&sha)
                .map_err(|e| crate::ControlError::Internal(e.to_string()))?;
            let report = advisories
                .scan_stored_zip(&sha, &zip)
                .map_err(|e| crate::ControlError::Internal(e.to_string()))?;
            Ok((*report).clone())
        })
        .await
    }

    /// The advisories the database names for the package stored under `sha`.
    async fn scan_stored(&self, sha: &str) -> Result<BTreeSet<String>, crate::ControlError> {
        Ok(self
            .scan_stored_package(sha)
            .await?
            .findings
            .into_iter()
            .map(|f| f.advisory_id)
            .collect())
    }

    /// Scans every function's `$LATEST` and published versions (their code and layers)
    /// against the database as it is now, as after an import, and reports what is new
    /// in each version since the previous re-scan. Each distinct package (by SHA-256) is
    /// read and scanned once, however many versions and functions share it. Callers: the
    /// API's advisory import, once the caller was allowed `warden:ImportAdvisories`;
    /// it changes nothing but what the next re-scan calls new.
    pub async fn rescan_functions(&self) -> Result<Rescan, crate::ControlError> {
        let Some(advisories) = self.advisories().cloned() else {
            return Ok(Rescan::default());
        };
        let mut summary = Rescan::default();
        let mut cache: HashMap<String, Option<BTreeSet<String>>> = HashMap::new();
        let mut now_known: HashMap<String, BTreeSet<String>> = HashMap::new();
        let before = advisories
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut after = None;
        loop {
            let page = self
                .list_functions(after.clone(), warden_types::limits::MAX_LIST_ITEMS, true)
                .await?;
            let mut function_with_findings: Option<String> = None;
            for v in &page.items {
                if v.version == warden_types::LATEST {
                    summary.functions += 1;
                }
                summary.versions += 1;
                let mut found = BTreeSet::new();
                let shas =
                    std::iter::once(&v.code_sha256).chain(v.layers.iter().map(|l| &l.code_sha256));
                for sha in shas {
                    if !cache.contains_key(sha) {
                        let scanned = match self.scan_stored(sha).await {
                            Ok(ids) => Some(ids),
                            // Collected meanwhile (the version was deleted), or unreadable:
                            // not this scan's business.
                            Err(e) => {
                                tracing::warn!(function = %v.name, version = %v.version, error = %e, "a package could not be re-scanned");
                                None
                            }
                        };
                        summary.packages += usize::from(scanned.is_some());
                        cache.insert(sha.clone(), scanned);
                    }
                    if let Some(Some(ids)) = cache.get(sha) {
                        found.extend(ids.iter().cloned());
                    }
                }
                let key = format!("{}:{}", v.name, v.version);
                if !found.is_empty() && function_with_findings.as_deref() != Some(v.name.as_str()) {
                    summary.with_findings += 1;
                    function_with_findings = Some(v.name.to_string());
                }
                let previous = before.get(&key);
                let new: Vec<String> = found
                    .iter()
                    .filter(|id| previous.is_none_or(|b| !b.contains(*id)))
                    .cloned()
                    .collect();
                if !new.is_empty() {
                    summary.new.push(NewFindings {
                        function: v.name.to_string(),
                        version: v.version.clone(),
                        advisories: new,
                    });
                }
                now_known.insert(key, found);
            }
            match page
                .next_marker
                .and_then(|m| warden_types::FunctionName::new(&m).ok())
            {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        // Every layer version too, used by a function or not: a published layer is
        // deployed code that functions may take up at any time.
        let mut layers_after = None;
        loop {
            let (layers, next_layer) = self
                .list_layers(None, None, layers_after.clone(), LAYER_PAGE)
                .await?;
            for layer in &layers {
                let mut versions_after = None;
                loop {
                    let (versions, next_version) = self
                        .list_layer_versions(&layer.name, None, None, versions_after, LAYER_PAGE)
                        .await?;
                    for lv in &versions {
                        summary.layer_versions += 1;
                        if !cache.contains_key(&lv.code_sha256) {
                            let scanned = match self.scan_stored(&lv.code_sha256).await {
                                Ok(ids) => Some(ids),
                                Err(e) => {
                                    tracing::warn!(layer = %lv.name, version = lv.version, error = %e, "a layer could not be re-scanned");
                                    None
                                }
                            };
                            summary.packages += usize::from(scanned.is_some());
                            cache.insert(lv.code_sha256.clone(), scanned);
                        }
                        let found = match cache.get(&lv.code_sha256) {
                            Some(Some(ids)) => ids.clone(),
                            _ => BTreeSet::new(),
                        };
                        let arn = self.layer_version_arn(&lv.name, lv.version);
                        let previous = before.get(&arn);
                        let new: Vec<String> = found
                            .iter()
                            .filter(|id| previous.is_none_or(|b| !b.contains(*id)))
                            .cloned()
                            .collect();
                        if !new.is_empty() {
                            summary.new_layers.push(NewLayerFindings {
                                layer_version_arn: arn.clone(),
                                advisories: new,
                            });
                        }
                        now_known.insert(arn, found);
                    }
                    match next_version {
                        Some(v) => versions_after = Some(v),
                        None => break,
                    }
                }
            }
            match next_layer {
                Some(n) => layers_after = Some(n),
                None => break,
            }
        }
        // Versions deleted since are forgotten, so the map holds what exists.
        *advisories
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = now_known;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_can_only_tighten_the_account_policy() {
        let tags = |v: &str| BTreeMap::from([(POLICY_TAG.to_owned(), v.to_owned())]);
        let high = ScanPolicy::Block(Rating::High);
        // Looser tags change nothing.
        assert_eq!(effective_policy(high, &tags("warn")), high);
        assert_eq!(effective_policy(high, &tags("block:critical")), high);
        // Stricter ones win.
        assert_eq!(
            effective_policy(high, &tags("block:low")),
            ScanPolicy::Block(Rating::Low)
        );
        assert_eq!(
            effective_policy(ScanPolicy::Warn, &tags("block:critical")),
            ScanPolicy::Block(Rating::Critical)
        );
        assert_eq!(
            effective_policy(ScanPolicy::Warn, &tags("warn")),
            ScanPolicy::Warn
        );
        assert_eq!(effective_policy(high, &BTreeMap::new()), high);
        // A value that is not a policy is ignored here and refused when tagging.
        assert_eq!(effective_policy(high, &tags("off")), high);
        let err = check_policy_tag(&tags("off")).expect_err("refused");
        assert!(err.to_string().contains(POLICY_TAG), "{err}");
        assert!(check_policy_tag(&tags("block:medium")).is_ok());
        assert!(check_policy_tag(&BTreeMap::from([("team".into(), "x".into())])).is_ok());
    }

    use crate::code::{CodeCheck, CodeRefusal, Intake, Subject};
    use time::macros::date;

    /// An advisory rated High (CVSS 7.5) for `idna` before 3.7.
    const ADVISORY: &str = r#"{"id": "T-1", "modified": "2026-01-01T00:00:00Z",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "idna"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.7"}]}]}]}"#;

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        warden_package::zip_directory(dir.path(), &mut |_, _| {}).expect("zip")
    }

    fn on_the_day() -> Date {
        date!(2026 - 12 - 04)
    }

    fn the_day_after() -> Date {
        date!(2026 - 12 - 05)
    }

    /// Runs the intake check over a package pinning `idna==3.6` deployed to `function`.
    fn deploy(
        advisories: &Arc<Advisories>,
        function: &str,
        tags: &[(&str, &str)],
    ) -> Result<(), CodeRefusal> {
        let zip = zip_of(&[("requirements.txt", "idna==3.6\n")]);
        let staging = tempfile::tempdir().expect("tempdir");
        let subject = Subject {
            name: function.into(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let mut intake =
            Intake::new("CreateFunction", &zip, "sha", staging.path()).for_function(Some(&subject));
        DependencyScan(Arc::clone(advisories)).check(&mut intake)
    }

    #[test]
    fn a_tag_tightens_and_an_acceptance_unblocks_until_its_day() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("advisories.db");
        let warn = Arc::new(
            Advisories::open(&path, ScanPolicy::Warn)
                .expect("open")
                .with_clock(on_the_day),
        );
        warn.import_zip(&zip_of(&[("T-1.json", ADVISORY)]))
            .expect("import");
        assert!(deploy(&warn, "f", &[]).is_ok(), "the account warns");
        let refused = deploy(&warn, "f", &[(POLICY_TAG, "block:high")]).expect_err("tightened");
        assert!(format!("{refused:?}").contains("T-1"), "{refused:?}");
        assert!(deploy(&warn, "f", &[(POLICY_TAG, "block:critical")]).is_ok());

        let accepted = Acceptance::new(
            "T-1",
            Some("f".into()),
            "2026-12-04",
            "no fix yet",
            on_the_day(),
        )
        .expect("valid");
        warn.accept(accepted).expect("accept");
        assert!(deploy(&warn, "f", &[(POLICY_TAG, "block:high")]).is_ok());
        assert!(
            deploy(&warn, "g", &[(POLICY_TAG, "block:high")]).is_err(),
            "accepted for f only"
        );

        // Opened again (the acceptance was stored), the day after: it counts no more.
        let later = Arc::new(
            Advisories::open(&path, ScanPolicy::Block(Rating::High))
                .expect("open")
                .with_clock(the_day_after),
        );
        assert_eq!(later.acceptances().len(), 1);
        assert!(deploy(&later, "f", &[]).is_err(), "expired");
        assert!(
            deploy(&later, "f", &[(POLICY_TAG, "warn")]).is_err(),
            "a tag cannot loosen"
        );
        let on_the_day_again = Arc::new(
            Advisories::open(&path, ScanPolicy::Block(Rating::High))
                .expect("open")
                .with_clock(on_the_day),
        );
        assert!(
            deploy(&on_the_day_again, "f", &[]).is_ok(),
            "accepted under block too"
        );
        assert!(on_the_day_again.revoke("T-1", Some("f")).expect("revoke"));
        assert!(deploy(&on_the_day_again, "f", &[]).is_err(), "revoked");
    }

    #[test]
    fn a_stored_package_is_scanned_once_per_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let advisories =
            Advisories::open(&dir.path().join("advisories.db"), ScanPolicy::Warn).expect("open");
        let zip = zip_of(&[("requirements.txt", "idna==3.6\n")]);
        assert!(advisories.cached_report("sha-a").is_none());
        let clean = advisories.scan_stored_zip("sha-a", &zip).expect("scan");
        assert!(clean.findings.is_empty(), "no advisory imported yet");
        let cached = advisories.cached_report("sha-a").expect("kept");
        assert!(Arc::ptr_eq(&cached, &clean));
        assert!(advisories.cached_report("sha-b").is_none());

        // A new database makes every kept report stale: the package is scanned again and
        // the advisory found.
        advisories
            .import_zip(&zip_of(&[("T-1.json", ADVISORY)]))
            .expect("import");
        assert!(advisories.cached_report("sha-a").is_none(), "stale");
        let found = advisories.scan_stored_zip("sha-a", &zip).expect("scan");
        assert_eq!(found.findings.len(), 1, "{found:?}");
        assert_eq!(
            advisories
                .cached_report("sha-a")
                .expect("kept")
                .findings
                .len(),
            1
        );
    }

    #[test]
    fn policies_print_as_they_parse() {
        for text in [
            "warn",
            "block:low",
            "block:medium",
            "block:high",
            "block:critical",
        ] {
            let p: ScanPolicy = text.parse().expect("policy");
            assert_eq!(p.as_text(), text);
        }
    }
}

//! The scan proper: each registry package of an inventory against the advisories that
//! name it, with the ecosystem's version ordering, giving one [`Finding`] per (package,
//! advisory).
//!
//! A version is affected when it is listed in an `affected[].versions` (compared as
//! strings, so even a version that does not parse can match) or falls inside one of the
//! `ECOSYSTEM` / `SEMVER` ranges. A version that cannot be compared with a range is not
//! guessed at: the pair is reported in [`ScanReport::unparsable`].

use serde::Serialize;

use crate::advisory::{Advisory, Event, Range};
use crate::version::{Scheme, Version};
use crate::{AdvisoryDb, Ecosystem, Inventory, Package, Severity};

/// One vulnerable package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The package's ecosystem.
    pub ecosystem: Ecosystem,
    /// The package's normalised name.
    pub name: String,
    /// The installed version.
    pub version: String,
    /// The files in the function package that name it.
    pub paths: Vec<String>,
    /// The advisory's id.
    pub advisory_id: String,
    /// The advisory's aliases (CVE, GHSA).
    pub aliases: Vec<String>,
    /// The advisory's summary.
    pub summary: Option<String>,
    /// The advisory's severity.
    pub severity: Option<Severity>,
    /// The smallest fixed version above the installed one that the advisory does not
    /// affect: the upgrade to make. `None` when the advisory names no such fix, or when
    /// the installed version does not parse (it matched an explicit `versions` entry).
    pub fixed: Option<String>,
}

/// A (package, advisory) pair that could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unparsable {
    /// The package's ecosystem.
    pub ecosystem: Ecosystem,
    /// The package's normalised name.
    pub name: String,
    /// The installed version.
    pub version: String,
    /// The advisory whose range could not be evaluated.
    pub advisory_id: String,
    /// Which version did not parse, and why.
    pub reason: String,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScanReport {
    /// The vulnerable packages, sorted by package then advisory id.
    pub findings: Vec<Finding>,
    /// The pairs whose versions could not be compared (no range match was assumed).
    pub unparsable: Vec<Unparsable>,
}

/// The installed version, parsed once per scheme on demand.
struct Installed<'a> {
    text: &'a str,
    pep440: Option<Result<Version, String>>,
    semver: Option<Result<Version, String>>,
}

impl Installed<'_> {
    fn get(&mut self, scheme: Scheme) -> &Result<Version, String> {
        let text = self.text;
        let slot = match scheme {
            Scheme::Pep440 => &mut self.pep440,
            Scheme::Semver => &mut self.semver,
        };
        slot.get_or_insert_with(|| {
            Version::parse(scheme, text).map_err(|e| format!("installed version `{text}`: {e}"))
        })
    }
}

/// Scans every non-local package of `inventory` against `db`.
pub fn scan(inventory: &Inventory, db: &AdvisoryDb) -> ScanReport {
    let mut report = ScanReport::default();
    for package in inventory.packages.iter().filter(|p| !p.local) {
        for advisory in db.for_package(package.ecosystem, &package.name) {
            check(package, advisory, &mut report);
        }
    }
    report.findings.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.advisory_id).cmp(&(
            b.ecosystem,
            &b.name,
            &b.version,
            &b.advisory_id,
        ))
    });
    report
}

fn check(package: &Package, advisory: &Advisory, report: &mut ScanReport) {
    let mut installed = Installed {
        text: &package.version,
        pep440: None,
        semver: None,
    };
    let entries: Vec<_> = advisory
        .affected
        .iter()
        .filter(|a| a.ecosystem == package.ecosystem && a.name == package.name)
        .collect();
    let mut affected = false;
    let mut unparsable = None;
    // Fixed versions above the installed one, in each range's scheme.
    let mut fixes: Vec<(&Range, &Version, &str)> = Vec::new();
    for entry in &entries {
        affected |= entry.versions.iter().any(|v| v == &package.version);
        for range in &entry.ranges {
            let events = match &range.events {
                Ok(events) => events,
                Err(reason) => {
                    unparsable.get_or_insert_with(|| format!("advisory version {reason}"));
                    continue;
                }
            };
            let v = match installed.get(range.scheme) {
                Ok(v) => v,
                Err(reason) => {
                    unparsable.get_or_insert_with(|| reason.clone());
                    continue;
                }
            };
            affected |= range.contains(v);
            for event in events {
                if let Event::Fixed(at, text) = event {
                    if at > v {
                        fixes.push((range, at, text));
                    }
                }
            }
        }
    }
    if !affected {
        if let Some(reason) = unparsable {
            report.unparsable.push(Unparsable {
                ecosystem: package.ecosystem,
                name: package.name.clone(),
                version: package.version.clone(),
                advisory_id: advisory.id.clone(),
                reason,
            });
        }
        return;
    }
    // The smallest fix that is itself outside every range and list of the advisory.
    fixes.sort_by(|a, b| a.1.cmp(b.1));
    let fixed = fixes
        .iter()
        .find(|(scheme_of, at, text)| {
            entries.iter().all(|entry| {
                !entry.versions.iter().any(|v| v == text)
                    && entry
                        .ranges
                        .iter()
                        .filter(|r| r.scheme == scheme_of.scheme)
                        .all(|r| !r.contains(at))
            })
        })
        .map(|(_, _, text)| (*text).to_owned());
    report.findings.push(Finding {
        ecosystem: package.ecosystem,
        name: package.name.clone(),
        version: package.version.clone(),
        paths: package.paths.clone(),
        advisory_id: advisory.id.clone(),
        aliases: advisory.aliases.clone(),
        summary: advisory.summary.clone(),
        severity: advisory.severity.clone(),
        fixed,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImportLimits;

    fn db(records: &[&str]) -> AdvisoryDb {
        let docs = records
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("{i}.json"), *r));
        AdvisoryDb::import_documents(docs, &ImportLimits::default())
            .expect("import")
            .0
    }

    fn package(ecosystem: Ecosystem, name: &str, version: &str) -> Package {
        Package {
            ecosystem,
            name: name.into(),
            version: version.into(),
            local: false,
            paths: vec!["lock".into()],
        }
    }

    fn run(db: &AdvisoryDb, packages: Vec<Package>) -> ScanReport {
        scan(
            &Inventory {
                packages,
                problems: vec![],
            },
            db,
        )
    }

    fn hits(report: &ScanReport) -> Vec<(String, String, Option<String>)> {
        report
            .findings
            .iter()
            .map(|f| (f.version.clone(), f.advisory_id.clone(), f.fixed.clone()))
            .collect()
    }

    const PY: &str = r#"{"id": "PY-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "Foo_Bar"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.2"},
                                                    {"introduced": "2.0rc1"}, {"last_affected": "2.1"}]},
                   {"type": "GIT", "repo": "x", "events": [{"introduced": "abc"}]}],
        "versions": ["0.9-weird", "1.0"]}]}"#;

    #[test]
    fn pep440_ranges_lists_and_last_affected() {
        let db = db(&[PY]);
        let cases = [
            ("0.8", false),
            ("0.9-weird", true),
            ("1.0", true),
            ("1.1.post1", true),
            ("1.2", false),
            ("1.2.0", false),
            ("2.0b9", false),
            ("2.0rc1", true),
            ("2.1", true),
            ("2.1.0.post1", false),
            ("3", false),
        ];
        for (version, affected) in cases {
            let r = run(&db, vec![package(Ecosystem::PyPi, "foo-bar", version)]);
            assert_eq!(r.findings.len(), usize::from(affected), "{version}");
        }
        let r = run(&db, vec![package(Ecosystem::PyPi, "foo-bar", "1.1")]);
        assert_eq!(
            hits(&r),
            [("1.1".into(), "PY-1".into(), Some("1.2".into()))]
        );
        // After `introduced: 2.0rc1` only `last_affected` follows: no fix to offer.
        let r = run(&db, vec![package(Ecosystem::PyPi, "foo-bar", "2.0")]);
        assert_eq!(hits(&r), [("2.0".into(), "PY-1".into(), None)]);
    }

    #[test]
    fn unparsable_versions_are_reported_not_guessed() {
        let db = db(&[PY]);
        let r = run(
            &db,
            vec![
                package(Ecosystem::PyPi, "foo-bar", "0.9-weird"),
                package(Ecosystem::PyPi, "foo-bar", "not.a/version"),
            ],
        );
        // Listed, so affected; but with no order to compare fixes by, no upgrade is named.
        assert_eq!(hits(&r), [("0.9-weird".into(), "PY-1".into(), None)]);
        assert_eq!(r.unparsable.len(), 1);
        assert_eq!(r.unparsable[0].version, "not.a/version");
        assert!(r.unparsable[0]
            .reason
            .starts_with("installed version `not.a/version`: "));
    }

    const NPM: &str = r#"{"id": "GHSA-test-npm", "summary": "Prototype pollution",
        "database_specific": {"severity": "HIGH"},
        "affected": [{"package": {"ecosystem": "npm", "name": "@scope/pkg"},
        "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.3"},
                                                 {"introduced": "2.0.0-0"}, {"fixed": "2.0.1"}]}]}]}"#;

    #[test]
    fn semver_prereleases_follow_osv() {
        let db = db(&[NPM]);
        let cases = [
            ("0.0.1", Some("1.2.3")),
            ("1.2.3-beta.1", Some("1.2.3")),
            ("1.2.3", None),
            ("1.9.9", None),
            ("2.0.0-alpha", Some("2.0.1")),
            ("2.0.0", Some("2.0.1")),
            ("v2.0.0+build", Some("2.0.1")),
            ("2.0.1", None),
        ];
        for (version, fixed) in cases {
            let r = run(&db, vec![package(Ecosystem::Npm, "@scope/pkg", version)]);
            let got = r.findings.first().map(|f| f.fixed.clone());
            assert_eq!(got, fixed.map(|f| Some(f.to_owned())), "{version}");
        }
        // npm names are case-sensitive.
        let r = run(&db, vec![package(Ecosystem::Npm, "@Scope/pkg", "0.0.1")]);
        assert!(r.findings.is_empty());
    }

    #[test]
    fn local_packages_are_not_matched() {
        let db = db(&[NPM]);
        let mut p = package(Ecosystem::Npm, "@scope/pkg", "0.0.1");
        p.local = true;
        assert!(run(&db, vec![p]).findings.is_empty());
    }

    #[test]
    fn fixed_skips_versions_still_affected() {
        // 1.5 fixes the first range but the second reopens at 1.5: 2.0 is the upgrade.
        let rec = r#"{"id": "C-1", "affected": [{"package": {"ecosystem": "crates.io", "name": "c"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.5.0"}]},
                       {"type": "SEMVER", "events": [{"introduced": "1.5.0"}, {"fixed": "2.0.0"}]}]}]}"#;
        let r = run(
            &db(&[rec]),
            vec![package(Ecosystem::CratesIo, "c", "1.1.0")],
        );
        assert_eq!(
            hits(&r),
            [("1.1.0".into(), "C-1".into(), Some("2.0.0".into()))]
        );
    }

    #[test]
    fn broken_advisory_ranges_are_reported() {
        let rec = r#"{"id": "C-2", "affected": [{"package": {"ecosystem": "crates.io", "name": "c"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0"}, {"fixed": "1.5.0"}]}]}]}"#;
        let r = run(
            &db(&[rec]),
            vec![package(Ecosystem::CratesIo, "c", "1.1.0")],
        );
        assert!(r.findings.is_empty());
        assert_eq!(r.unparsable[0].advisory_id, "C-2");
        assert!(r.unparsable[0]
            .reason
            .starts_with("advisory version `1.0`: "));
    }

    #[test]
    fn limit_bounds_a_range() {
        let rec = r#"{"id": "G-1", "affected": [{"package": {"ecosystem": "Go", "name": "example.com/m"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"limit": "1.4.0"}]}]}]}"#;
        let db = db(&[rec]);
        let r = run(&db, vec![package(Ecosystem::Go, "example.com/m", "v1.3.9")]);
        assert_eq!(hits(&r), [("v1.3.9".into(), "G-1".into(), None)]);
        let r = run(&db, vec![package(Ecosystem::Go, "example.com/m", "v1.4.0")]);
        assert!(r.findings.is_empty());
    }
}

//! Vulnerability advisories in the OSV schema (<https://ossf.github.io/osv-schema/>),
//! imported from a directory of `*.json` records or a zip export of them, and indexed by
//! (ecosystem, normalised package name) for the scan.
//!
//! Records are read leniently (unknown fields ignored, as the schema grows) but bounded:
//! each file is read up to [`ImportLimits::max_advisory_bytes`], at most
//! [`ImportLimits::max_advisories`] files per import. A record that does not parse is
//! reported in [`ImportReport::malformed`] and skipped; withdrawn records and records for
//! ecosystems the scanner does not know are counted and left out.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use zip::ZipArchive;

use crate::version::{Scheme, Version};
use crate::{Ecosystem, Error, Problem};

/// Bounds on what importing advisories may cost.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// Most advisory files one import reads; past it the import is refused.
    pub max_advisories: usize,
    /// Largest advisory file read; a bigger one is reported as malformed.
    pub max_advisory_bytes: u64,
}

impl Default for ImportLimits {
    /// 1,000,000 files (all of OSV is about half that), 4 MiB each (the largest real
    /// record is under 1 MiB).
    fn default() -> ImportLimits {
        ImportLimits {
            max_advisories: 1_000_000,
            max_advisory_bytes: 4 << 20,
        }
    }
}

/// What an import did besides loading advisories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Advisories loaded.
    pub loaded: usize,
    /// Withdrawn advisories, left out.
    pub withdrawn: usize,
    /// Advisories about no ecosystem the scanner knows, left out.
    pub other_ecosystems: usize,
    /// Records whose id was already loaded; the one `modified` last is kept.
    pub duplicates: usize,
    /// Files that could not be read as OSV records, and why.
    pub malformed: Vec<Problem>,
}

/// A qualitative severity rating, as CVSS defines them (v3 and v4 share the scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Rating {
    /// CVSS 0.0.
    None,
    /// CVSS 0.1 to 3.9.
    Low,
    /// CVSS 4.0 to 6.9 (GitHub's "moderate").
    Medium,
    /// CVSS 7.0 to 8.9.
    High,
    /// CVSS 9.0 to 10.0.
    Critical,
}

impl Rating {
    fn from_cvss(severity: cvss::Severity) -> Rating {
        match severity {
            cvss::Severity::None => Rating::None,
            cvss::Severity::Low => Rating::Low,
            cvss::Severity::Medium => Rating::Medium,
            cvss::Severity::High => Rating::High,
            cvss::Severity::Critical => Rating::Critical,
        }
    }

    /// A rating written as a word, as in GitHub's `database_specific.severity`.
    fn from_word(word: &str) -> Option<Rating> {
        Some(match word.trim().to_ascii_uppercase().as_str() {
            "NONE" => Rating::None,
            "LOW" => Rating::Low,
            "MODERATE" | "MEDIUM" => Rating::Medium,
            "HIGH" => Rating::High,
            "CRITICAL" => Rating::Critical,
            _ => return None,
        })
    }
}

/// How severe an advisory is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Severity {
    /// The rating.
    pub rating: Rating,
    /// The CVSS base score, when the record has a vector.
    pub score: Option<f64>,
    /// The CVSS vector the score was computed from.
    pub vector: Option<String>,
}

/// One bound of an OSV range, with its version parsed (`None` is `introduced: "0"`).
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Introduced(Option<Version>),
    Fixed(Version, String),
    LastAffected(Version),
    Limit(Version),
}

impl Event {
    /// Whether the event opens a range (`introduced`); ends sort before starts.
    fn starts_range(&self) -> bool {
        matches!(self, Event::Introduced(_))
    }

    fn version(&self) -> Option<&Version> {
        match self {
            Event::Introduced(v) => v.as_ref(),
            Event::Fixed(v, _) | Event::LastAffected(v) | Event::Limit(v) => Some(v),
        }
    }
}

/// An OSV range of type `ECOSYSTEM` or `SEMVER`, events sorted by version.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub(crate) scheme: Scheme,
    /// The events, or why one of their versions does not parse (the range is then not
    /// evaluated: guessing its bounds could hide or invent a vulnerability).
    pub(crate) events: Result<Vec<Event>, String>,
}

impl Range {
    /// Whether `v` is inside the range, by OSV's evaluation: walk the events in version
    /// order; an `introduced` at or below `v` opens, a `fixed` at or below `v` or a
    /// `last_affected` below `v` closes; a `limit` at or below `v` excludes it outright.
    pub(crate) fn contains(&self, v: &Version) -> bool {
        let Ok(events) = &self.events else {
            return false;
        };
        let mut affected = false;
        for event in events {
            match event {
                Event::Introduced(None) => affected = true,
                Event::Introduced(Some(at)) if v >= at => affected = true,
                Event::Fixed(at, _) if v >= at => affected = false,
                Event::LastAffected(at) if v > at => affected = false,
                _ => {}
            }
        }
        affected
            && !events
                .iter()
                .any(|e| matches!(e, Event::Limit(at) if v >= at))
    }
}

/// One `affected[]` entry of a record, for a package of a known ecosystem.
#[derive(Debug, Clone)]
pub(crate) struct Affected {
    pub(crate) ecosystem: Ecosystem,
    pub(crate) name: String,
    pub(crate) ranges: Vec<Range>,
    pub(crate) versions: Vec<String>,
}

/// One advisory.
#[derive(Debug, Clone)]
pub struct Advisory {
    /// Its id (`PYSEC-2023-74`, `RUSTSEC-2021-0003`, `GHSA-...`).
    pub id: String,
    /// Other ids of the same vulnerability (CVE, GHSA).
    pub aliases: Vec<String>,
    /// Its one-line summary, or the first line of its details when it has none (cut to
    /// 200 characters).
    pub summary: Option<String>,
    /// When it was last modified (RFC 3339, as written).
    pub modified: Option<String>,
    /// Its severity, if the record gives one.
    pub severity: Option<Severity>,
    pub(crate) affected: Vec<Affected>,
    /// The record as imported, kept so that the store saves what the source said.
    pub(crate) raw: String,
}

// The OSV schema, only the fields the scan uses. Lists may be `null` in the wild.
#[derive(Deserialize)]
struct OsvRecord {
    id: String,
    modified: Option<String>,
    withdrawn: Option<String>,
    aliases: Option<Vec<String>>,
    summary: Option<String>,
    details: Option<String>,
    severity: Option<Vec<OsvSeverity>>,
    affected: Option<Vec<OsvAffected>>,
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct OsvSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct OsvAffected {
    package: Option<OsvPackage>,
    ranges: Option<Vec<OsvRange>>,
    versions: Option<Vec<String>>,
    severity: Option<Vec<OsvSeverity>>,
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct OsvPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct OsvRange {
    #[serde(rename = "type")]
    kind: String,
    events: Option<Vec<OsvEvent>>,
}

#[derive(Deserialize)]
struct OsvEvent {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
    limit: Option<String>,
}

/// What became of one record.
enum Parsed {
    Advisory(Box<Advisory>),
    Withdrawn,
    OtherEcosystem,
}

fn parse_range(range: &OsvRange, ecosystem: Ecosystem) -> Option<Range> {
    let scheme = match range.kind.as_str() {
        "SEMVER" => Scheme::Semver,
        "ECOSYSTEM" => Scheme::of(ecosystem),
        // `GIT` ranges name commits, which an installed package does not carry.
        _ => return None,
    };
    let parse = |s: &str| Version::parse(scheme, s).map_err(|e| format!("`{s}`: {e}"));
    let events = range
        .events
        .iter()
        .flatten()
        .filter_map(|e| {
            let event = if let Some(at) = &e.introduced {
                if at == "0" {
                    Ok(Event::Introduced(None))
                } else {
                    parse(at).map(|v| Event::Introduced(Some(v)))
                }
            } else if let Some(at) = &e.fixed {
                parse(at).map(|v| Event::Fixed(v, at.clone()))
            } else if let Some(at) = &e.last_affected {
                parse(at).map(Event::LastAffected)
            } else if let Some(at) = &e.limit {
                // `limit: "*"` means no limit.
                if at == "*" {
                    return None;
                }
                parse(at).map(Event::Limit)
            } else {
                return None;
            };
            Some(event)
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|mut events| {
            // By version, `introduced: "0"` first. At equal versions a range's end comes
            // before another's start, whatever order the record wrote them in: `fixed: X`
            // and `introduced: X` are two ranges that meet at X, so X and what follows are
            // affected (PYSEC-2023-72 writes its three pyspark ranges in an order where a
            // record-order tie would close them at 3.2.0 and miss 3.2.0 and 3.2.1).
            events.sort_by(|a, b| {
                a.version()
                    .cmp(&b.version())
                    .then_with(|| a.starts_range().cmp(&b.starts_range()))
            });
            events
        });
    Some(Range { scheme, events })
}

/// The severity a record states: the highest CVSS v3 base score among its vectors, else
/// a CVSS v4 score, else a `database_specific.severity` word.
fn severity_of(record: &OsvRecord) -> Option<Severity> {
    let affected = record.affected.iter().flatten();
    let vectors: Vec<&OsvSeverity> = record
        .severity
        .iter()
        .flatten()
        .chain(affected.clone().flat_map(|a| a.severity.iter().flatten()))
        .collect();
    let from_vector = |kind: &str| {
        vectors
            .iter()
            .filter(|s| s.kind == kind)
            .filter_map(|s| {
                let (score, severity) = if kind == "CVSS_V3" {
                    let score = cvss::v3::Vector::from_str(&s.score).ok()?.score();
                    (score.value(), score.severity())
                } else {
                    let vector = cvss::v4::Vector::from_str(&s.score).ok()?;
                    (vector.score().value(), vector.score().severity())
                };
                Some(Severity {
                    rating: Rating::from_cvss(severity),
                    score: Some(score),
                    vector: Some(s.score.clone()),
                })
            })
            .max_by(|a, b| {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    };
    from_vector("CVSS_V3")
        .or_else(|| from_vector("CVSS_V4"))
        .or_else(|| {
            let word = |v: &Option<serde_json::Value>| {
                v.as_ref()?
                    .get("severity")?
                    .as_str()
                    .and_then(Rating::from_word)
            };
            let rating = word(&record.database_specific)
                .or_else(|| affected.filter_map(|a| word(&a.database_specific)).max())?;
            Some(Severity {
                rating,
                score: None,
                vector: None,
            })
        })
}

/// The first line of `details`, cut to 200 characters.
fn summary_from_details(details: &str) -> Option<String> {
    let line = details.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    })
}

fn parse_record(bytes: &[u8]) -> Result<Parsed, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let record: OsvRecord = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if record.id.trim().is_empty() {
        return Err("empty `id`".into());
    }
    if record.withdrawn.is_some() {
        return Ok(Parsed::Withdrawn);
    }
    let mut affected = Vec::new();
    for a in record.affected.iter().flatten() {
        let Some(package) = &a.package else { continue };
        let Some(ecosystem) = Ecosystem::from_osv(&package.ecosystem) else {
            continue;
        };
        affected.push(Affected {
            ecosystem,
            name: ecosystem.normalize_name(&package.name),
            ranges: a
                .ranges
                .iter()
                .flatten()
                .filter_map(|r| parse_range(r, ecosystem))
                .collect(),
            versions: a.versions.clone().unwrap_or_default(),
        });
    }
    if affected.is_empty() {
        return Ok(Parsed::OtherEcosystem);
    }
    let summary = record
        .summary
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| record.details.as_deref().and_then(summary_from_details));
    Ok(Parsed::Advisory(Box::new(Advisory {
        severity: severity_of(&record),
        id: record.id,
        aliases: record.aliases.unwrap_or_default(),
        summary,
        modified: record.modified,
        affected,
        raw: text.to_owned(),
    })))
}

/// Every advisory loaded, indexed by the packages they affect.
#[derive(Debug, Clone, Default)]
pub struct AdvisoryDb {
    advisories: Vec<Advisory>,
    by_id: HashMap<String, usize>,
    by_package: HashMap<(Ecosystem, String), Vec<usize>>,
}

/// Collects records one at a time, so that an import never holds more than one file's
/// bytes besides what it keeps.
pub(crate) struct DbBuilder {
    limits: ImportLimits,
    files: usize,
    db: AdvisoryDb,
    report: ImportReport,
}

impl DbBuilder {
    pub(crate) fn new(limits: &ImportLimits) -> DbBuilder {
        DbBuilder {
            limits: *limits,
            files: 0,
            db: AdvisoryDb::default(),
            report: ImportReport::default(),
        }
    }

    /// Counts one file against [`ImportLimits::max_advisories`].
    fn count(&mut self) -> Result<(), Error> {
        self.files += 1;
        if self.files > self.limits.max_advisories {
            return Err(Error::TooManyAdvisories {
                limit: self.limits.max_advisories,
            });
        }
        Ok(())
    }

    fn malformed(&mut self, path: &str, reason: String) {
        self.report.malformed.push(Problem {
            path: path.to_owned(),
            reason,
        });
    }

    /// Adds one record's bytes (read up to the size limit plus one).
    pub(crate) fn add(&mut self, path: &str, bytes: &[u8]) -> Result<(), Error> {
        self.count()?;
        if bytes.len() as u64 > self.limits.max_advisory_bytes {
            let limit = self.limits.max_advisory_bytes;
            self.malformed(path, format!("larger than the {limit} bytes read"));
            return Ok(());
        }
        match parse_record(bytes) {
            Ok(Parsed::Advisory(advisory)) => self.insert(*advisory),
            Ok(Parsed::Withdrawn) => self.report.withdrawn += 1,
            Ok(Parsed::OtherEcosystem) => self.report.other_ecosystems += 1,
            Err(reason) => self.malformed(path, reason),
        }
        Ok(())
    }

    fn insert(&mut self, advisory: Advisory) {
        let db = &mut self.db;
        if let Some(&i) = db.by_id.get(&advisory.id) {
            self.report.duplicates += 1;
            // RFC 3339 timestamps in UTC order as strings.
            if advisory.modified > db.advisories[i].modified {
                db.unindex(i);
                db.advisories[i] = advisory;
                db.index(i);
            }
            return;
        }
        let i = db.advisories.len();
        db.by_id.insert(advisory.id.clone(), i);
        db.advisories.push(advisory);
        db.index(i);
        self.report.loaded += 1;
    }

    pub(crate) fn finish(self) -> (AdvisoryDb, ImportReport) {
        (self.db, self.report)
    }
}

impl Advisory {
    /// The packages the advisory names, as (ecosystem, normalised name); a package may
    /// appear more than once.
    pub fn packages(&self) -> impl Iterator<Item = (Ecosystem, &str)> {
        self.affected.iter().map(|a| (a.ecosystem, a.name.as_str()))
    }
}

impl AdvisoryDb {
    fn index(&mut self, i: usize) {
        let mut keys: Vec<(Ecosystem, String)> = self.advisories[i]
            .affected
            .iter()
            .map(|a| (a.ecosystem, a.name.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            self.by_package.entry(key).or_default().push(i);
        }
    }

    fn unindex(&mut self, i: usize) {
        for list in self.by_package.values_mut() {
            list.retain(|&j| j != i);
        }
    }

    /// Imports records given as `(path, bytes)`; the path only names a record in the
    /// report.
    pub fn import_documents<P, B>(
        documents: impl IntoIterator<Item = (P, B)>,
        limits: &ImportLimits,
    ) -> Result<(AdvisoryDb, ImportReport), Error>
    where
        P: AsRef<str>,
        B: AsRef<[u8]>,
    {
        let mut builder = DbBuilder::new(limits);
        for (path, bytes) in documents {
            builder.add(path.as_ref(), bytes.as_ref())?;
        }
        Ok(builder.finish())
    }

    /// Imports every `*.json` file under `dir`, in path order, at any depth up to 16.
    /// Symbolic links are not followed, so an import reads only the tree it was given.
    pub fn import_dir(
        dir: &Path,
        limits: &ImportLimits,
    ) -> Result<(AdvisoryDb, ImportReport), Error> {
        let mut builder = DbBuilder::new(limits);
        walk(dir, dir, 0, &mut builder)?;
        Ok(builder.finish())
    }

    /// Imports every `*.json` entry of a zip export (as OSV publishes per ecosystem).
    pub fn import_zip(
        zip: &[u8],
        limits: &ImportLimits,
    ) -> Result<(AdvisoryDb, ImportReport), Error> {
        let mut archive = ZipArchive::new(Cursor::new(zip)).map_err(Error::ReadAdvisoryArchive)?;
        let mut builder = DbBuilder::new(limits);
        for index in 0..archive.len() {
            let name = {
                let entry = archive
                    .by_index_data(index)
                    .map_err(Error::ReadAdvisoryArchive)?;
                if entry.is_dir() || entry.is_symlink() {
                    continue;
                }
                entry
                    .name()
                    .map_err(Error::ReadAdvisoryArchive)?
                    .into_owned()
            };
            if !name.ends_with(".json") {
                continue;
            }
            let mut bytes = Vec::new();
            let read = archive
                .by_index(index)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    f.take(limits.max_advisory_bytes.saturating_add(1))
                        .read_to_end(&mut bytes)
                        .map_err(|e| e.to_string())
                });
            match read {
                Ok(_) => builder.add(&name, &bytes)?,
                Err(reason) => {
                    builder.count()?;
                    builder.malformed(&name, format!("cannot be read: {reason}"));
                }
            }
        }
        Ok(builder.finish())
    }

    /// How many advisories are loaded.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The advisory with this id.
    pub fn get(&self, id: &str) -> Option<&Advisory> {
        self.by_id.get(id).map(|&i| &self.advisories[i])
    }

    /// Every advisory, in import order.
    pub fn iter(&self) -> impl Iterator<Item = &Advisory> {
        self.advisories.iter()
    }

    /// The advisories that name a package (`name` normalised as the ecosystem does).
    pub fn for_package(&self, ecosystem: Ecosystem, name: &str) -> impl Iterator<Item = &Advisory> {
        self.by_package
            .get(&(ecosystem, name.to_owned()))
            .into_iter()
            .flatten()
            .map(|&i| &self.advisories[i])
    }
}

/// Depth-first, sorted walk of an advisory directory.
fn walk(root: &Path, dir: &Path, depth: usize, builder: &mut DbBuilder) -> Result<(), Error> {
    const MAX_DEPTH: usize = 16;
    let io = |path: &Path| {
        let path: PathBuf = path.to_owned();
        move |source| Error::ReadAdvisories { path, source }
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        let shown = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if kind.is_dir() {
            if depth < MAX_DEPTH {
                walk(root, &path, depth + 1, builder)?;
            }
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "json") {
            let file = std::fs::File::open(&path).map_err(io(&path))?;
            let mut bytes = Vec::new();
            file.take(builder.limits.max_advisory_bytes.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(io(&path))?;
            builder.add(&shown, &bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(extra: &str) -> String {
        format!(
            r#"{{"id": "TEST-1", "modified": "2024-01-01T00:00:00Z", {extra}
              "affected": [{{"package": {{"ecosystem": "npm", "name": "left-pad"}},
                "ranges": [{{"type": "SEMVER", "events": [{{"introduced": "0"}}, {{"fixed": "1.3.0"}}]}}]}}]}}"#
        )
    }

    fn import(docs: &[(&str, &str)]) -> (AdvisoryDb, ImportReport) {
        AdvisoryDb::import_documents(docs.iter().copied(), &ImportLimits::default())
            .expect("import")
    }

    #[test]
    fn severity_from_vectors_and_words() {
        let v31 = record(
            r#""severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#,
        );
        let (db, _) = import(&[("a.json", &v31)]);
        let s = db
            .get("TEST-1")
            .and_then(|a| a.severity.clone())
            .expect("severity");
        assert_eq!((s.rating, s.score), (Rating::Critical, Some(9.8)));

        let local = record(
            r#""severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],"#,
        );
        let (db, _) = import(&[("a.json", &local)]);
        let s = db
            .get("TEST-1")
            .and_then(|a| a.severity.clone())
            .expect("severity");
        assert_eq!((s.rating, s.score), (Rating::Medium, Some(6.2)));

        let word = record(r#""database_specific": {"severity": "MODERATE"},"#);
        let (db, _) = import(&[("a.json", &word)]);
        let s = db
            .get("TEST-1")
            .and_then(|a| a.severity.clone())
            .expect("severity");
        assert_eq!((s.rating, s.score), (Rating::Medium, None));

        let bad = record(r#""severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/garbage"}],"#);
        let (db, _) = import(&[("a.json", &bad)]);
        assert_eq!(db.get("TEST-1").map(|a| a.severity.clone()), Some(None));
    }

    #[test]
    fn withdrawn_other_and_malformed_records() {
        let withdrawn = record(r#""withdrawn": "2024-02-02T00:00:00Z","#);
        let other =
            r#"{"id": "X", "affected": [{"package": {"ecosystem": "Maven", "name": "a:b"}}]}"#;
        let (db, report) = import(&[
            ("w.json", &withdrawn),
            ("o.json", other),
            ("m.json", "{\"id\": 3}"),
            ("e.json", "{\"id\": \" \", \"affected\": []}"),
        ]);
        assert!(db.is_empty());
        assert_eq!(
            report,
            ImportReport {
                loaded: 0,
                withdrawn: 1,
                other_ecosystems: 1,
                duplicates: 0,
                malformed: vec![
                    Problem {
                        path: "m.json".into(),
                        reason: "invalid type: integer `3`, expected a string at line 1 column 8"
                            .into()
                    },
                    Problem {
                        path: "e.json".into(),
                        reason: "empty `id`".into()
                    },
                ],
            }
        );
    }

    #[test]
    fn duplicates_keep_the_newest() {
        let old = record(r#""summary": "old","#);
        let new = record(r#""summary": "new","#).replace("2024-01-01", "2024-05-01");
        let (db, report) = import(&[("a.json", &new), ("b.json", &old)]);
        assert_eq!((db.len(), report.duplicates), (1, 1));
        assert_eq!(
            db.get("TEST-1").and_then(|a| a.summary.as_deref()),
            Some("new")
        );
        assert_eq!(db.for_package(Ecosystem::Npm, "left-pad").count(), 1);
    }

    #[test]
    fn limits_bound_the_import() {
        let limits = ImportLimits {
            max_advisories: 2,
            max_advisory_bytes: 100,
        };
        let big = record(&" ".repeat(200));
        let docs = [("big.json", big.as_str())];
        let (_, report) = AdvisoryDb::import_documents(docs, &limits).expect("import");
        assert_eq!(report.malformed[0].reason, "larger than the 100 bytes read");
        let docs = [("a", "{}"), ("b", "{}"), ("c", "{}")];
        let err = AdvisoryDb::import_documents(docs, &limits).expect_err("too many");
        assert_eq!(err.to_string(), "the advisory import has more than 2 files");
    }

    #[test]
    fn summary_falls_back_to_details() {
        assert_eq!(
            summary_from_details("\n  First line.\nSecond."),
            Some("First line.".into())
        );
        let long = "é".repeat(300);
        let cut = summary_from_details(&long).expect("summary");
        assert_eq!(cut.chars().count(), 201);
    }

    proptest! {
        #[test]
        fn record_parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_record(&bytes);
        }

        #[test]
        fn record_parsing_never_panics_on_odd_events(
            events in prop::collection::vec(("(introduced|fixed|last_affected|limit)", "[0-9a-z.*+-]{0,8}"), 0..6),
            kind in "(SEMVER|ECOSYSTEM|GIT)",
            eco in "(PyPI|npm|crates\\.io|Go)",
        ) {
            let events: Vec<String> = events.iter().map(|(k, v)| format!(r#"{{"{k}": "{v}"}}"#)).collect();
            let doc = format!(
                r#"{{"id": "P", "affected": [{{"package": {{"ecosystem": "{eco}", "name": "x"}},
                    "ranges": [{{"type": "{kind}", "events": [{}]}}]}}]}}"#,
                events.join(",")
            );
            prop_assert!(parse_record(doc.as_bytes()).is_ok());
        }
    }
}

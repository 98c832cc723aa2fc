//! Real advisories (PyPA's and RustSec's, in OSV form) against packages with known
//! vulnerable versions. By default the in-repo subset in `tests/data/advisories`; with
//! `WARDEN_TEST_ADVISORIES` set to a folder holding `osv/` (such as the shared snapshot),
//! the very same assertions run against the full database: the subset holds every
//! advisory of the snapshot for each package asserted on exactly.

use std::path::PathBuf;
use std::sync::OnceLock;

use warden_scan::{
    inventory_zip, scan, AdvisoryDb, AdvisoryStore, Ecosystem, ImportLimits, ImportReport,
    Inventory, Limits, Rating,
};

use crate::{fixture, zip_of};

/// `osv/` of the advisories under test; a set but missing variable fails, never skips.
fn osv_dir() -> PathBuf {
    let root = match std::env::var_os("WARDEN_TEST_ADVISORIES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/advisories"),
    };
    let osv = root.join("osv");
    assert!(
        osv.join("PyPI").is_dir() && osv.join("crates.io").is_dir(),
        "no advisories at {}: WARDEN_TEST_ADVISORIES must name a folder holding osv/PyPI and osv/crates.io",
        osv.display()
    );
    osv
}

/// The database, imported once for all tests of this binary.
fn db() -> &'static (AdvisoryDb, ImportReport) {
    static DB: OnceLock<(AdvisoryDb, ImportReport)> = OnceLock::new();
    DB.get_or_init(|| AdvisoryDb::import_dir(&osv_dir(), &ImportLimits::default()).unwrap())
}

/// A Lambda package with a Python layer and a Rust function, known vulnerable versions in
/// each.
fn vulnerable_package() -> Inventory {
    let requirements = fixture("requirements.txt");
    let cargo_lock = fixture("Cargo.lock");
    let zip = zip_of(&[
        ("requirements.txt", &requirements),
        ("Cargo.lock", &cargo_lock),
        (
            "python/py-1.11.0.dist-info/METADATA",
            b"Metadata-Version: 2.1\nName: py\nVersion: 1.11.0\n",
        ),
        ("bootstrap", b"\x7fELF"),
    ]);
    inventory_zip(&zip, &Limits::default()).unwrap()
}

#[test]
fn real_advisories_import_cleanly() {
    let (db, report) = db();
    assert!(report.malformed.is_empty(), "{:?}", report.malformed);
    // PYSEC-2019-144 is withdrawn: counted, not loaded.
    assert!(report.withdrawn >= 1);
    assert!(db.get("PYSEC-2019-144").is_none());
    assert_eq!(report.loaded, db.len());
    assert!(db.get("RUSTSEC-2021-0003").is_some());
}

#[test]
fn known_vulnerable_versions_are_found_with_their_fixes() {
    let (db, _) = db();
    let report = scan(&vulnerable_package(), db);
    let got: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.ecosystem,
                f.name.as_str(),
                f.version.as_str(),
                f.advisory_id.as_str(),
                f.fixed.as_deref(),
            )
        })
        .collect();
    use Ecosystem::{CratesIo, PyPi};
    assert_eq!(
        got,
        [
            (PyPi, "idna", "2.8", "PYSEC-2024-60", Some("3.7")),
            (PyPi, "jinja2", "2.10", "PYSEC-2019-217", Some("2.10.1")),
            (PyPi, "jinja2", "2.10", "PYSEC-2021-66", Some("2.11.3")),
            (PyPi, "py", "1.11.0", "PYSEC-2022-42969", None),
            (PyPi, "requests", "2.19.1", "PYSEC-2018-28", Some("2.20.0")),
            (PyPi, "requests", "2.19.1", "PYSEC-2023-74", Some("2.31.0")),
            (
                CratesIo,
                "smallvec",
                "0.6.9",
                "RUSTSEC-2018-0018",
                Some("0.6.13")
            ),
            (
                CratesIo,
                "smallvec",
                "0.6.9",
                "RUSTSEC-2019-0009",
                Some("0.6.10")
            ),
            (
                CratesIo,
                "smallvec",
                "0.6.9",
                "RUSTSEC-2019-0012",
                Some("0.6.10")
            ),
            (
                CratesIo,
                "smallvec",
                "0.6.9",
                "RUSTSEC-2021-0003",
                Some("0.6.14")
            ),
            (
                CratesIo,
                "time",
                "0.1.45",
                "RUSTSEC-2020-0071",
                Some("0.2.0")
            ),
        ]
    );
    assert!(report.unparsable.is_empty(), "{:?}", report.unparsable);

    let idna = &report.findings[0];
    assert_eq!(idna.paths, ["requirements.txt"]);
    assert_eq!(idna.aliases, ["CVE-2024-3651"]);
    let severity = idna.severity.as_ref().unwrap();
    assert_eq!((severity.rating, severity.score), (Rating::High, Some(7.5)));
    // PyPA records have no summary: the first line of the details stands in.
    assert!(idna
        .summary
        .as_deref()
        .unwrap()
        .starts_with("A vulnerability was identified"));

    let smallvec = report
        .findings
        .iter()
        .find(|f| f.advisory_id == "RUSTSEC-2021-0003")
        .unwrap();
    assert_eq!(
        smallvec.summary.as_deref(),
        Some("Buffer overflow in SmallVec::insert_many")
    );
    assert_eq!(smallvec.aliases, ["CVE-2021-25900", "GHSA-43w2-9j62-hq99"]);
    let severity = smallvec.severity.as_ref().unwrap();
    assert_eq!(
        (severity.rating, severity.score),
        (Rating::Critical, Some(9.8))
    );
    assert_eq!(smallvec.paths, ["Cargo.lock"]);
}

#[test]
fn fixed_versions_and_unordered_events() {
    let (db, _) = db();
    let pkg = |name: &str, version: &str| -> Inventory {
        let metadata = format!("Name: {name}\nVersion: {version}\n");
        let path = format!("python/{name}-{version}.dist-info/METADATA");
        inventory_zip(&zip_of(&[(&path, metadata.as_bytes())]), &Limits::default()).unwrap()
    };
    let ids = |inv: &Inventory| -> Vec<(String, Option<String>)> {
        scan(inv, db)
            .findings
            .into_iter()
            .map(|f| (f.advisory_id, f.fixed))
            .collect()
    };
    assert!(ids(&pkg("requests", "2.31.0")).is_empty());
    assert!(ids(&pkg("Jinja2", "2.11.3")).is_empty());
    // PYSEC-2023-192 lists `introduced: 2.0.0, fixed: 2.0.6, introduced: 0, fixed: 1.26.17`.
    let urllib3 = |v| {
        ids(&pkg("urllib3", v))
            .into_iter()
            .filter(|(id, _)| id == "PYSEC-2023-192")
            .collect::<Vec<_>>()
    };
    assert_eq!(
        urllib3("1.26.5"),
        [("PYSEC-2023-192".into(), Some("1.26.17".into()))]
    );
    assert_eq!(
        urllib3("2.0.4"),
        [("PYSEC-2023-192".into(), Some("2.0.6".into()))]
    );
    assert!(urllib3("1.26.17").is_empty());
    assert!(urllib3("2.0.6").is_empty());
    // `time` 0.2.1-0 .. 0.2.1 is one of RustSec's many one-version ranges.
    let cargo = |v: &str| {
        let lock = format!(
            "[[package]]\nname = \"time\"\nversion = \"{v}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n"
        );
        let inv = inventory_zip(
            &zip_of(&[("Cargo.lock", lock.as_bytes())]),
            &Limits::default(),
        )
        .unwrap();
        scan(&inv, db)
            .findings
            .into_iter()
            .map(|f| (f.advisory_id, f.fixed))
            .collect::<Vec<_>>()
    };
    assert!(cargo("0.2.0").is_empty());
    assert_eq!(
        cargo("0.2.7"),
        [("RUSTSEC-2020-0071".into(), Some("0.2.23".into()))]
    );
    assert_eq!(
        cargo("0.3.20"),
        [("RUSTSEC-2026-0009".into(), Some("0.3.47".into()))]
    );
    // The PyPI `idna` is not the crate `idna` of RUSTSEC-2024-0421.
    assert!(db
        .for_package(Ecosystem::PyPi, "idna")
        .all(|a| a.id.starts_with("PYSEC")));
}

#[test]
fn cvss_v4_only_records_are_rated() {
    let (db, _) = db();
    let s = db
        .get("RUSTSEC-2026-0009")
        .unwrap()
        .severity
        .clone()
        .unwrap();
    assert_eq!(s.rating, Rating::Medium);
    assert!(s.vector.unwrap().starts_with("CVSS:4.0/"));
}

#[test]
fn a_zip_export_imports_like_the_directory() {
    // Build the export from the files the directory import read.
    let osv = osv_dir();
    let mut files = Vec::new();
    for eco in ["PyPI", "crates.io"] {
        let mut names: Vec<_> = std::fs::read_dir(osv.join(eco))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            let name = format!("{eco}/{}", path.file_name().unwrap().to_string_lossy());
            files.push((name, std::fs::read(&path).unwrap()));
        }
    }
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    let (from_zip, report) =
        AdvisoryDb::import_zip(&zip_of(&borrowed), &ImportLimits::default()).unwrap();
    let (from_dir, dir_report) = db();
    assert_eq!(report, *dir_report);
    let ids = |db: &AdvisoryDb| db.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&from_zip), ids(from_dir));
}

#[test]
fn the_store_keeps_what_scans_need() {
    let (db, _) = db();
    let dir = tempfile::tempdir().unwrap();
    let store = AdvisoryStore::open(&dir.path().join("advisories.db")).unwrap();
    store.replace(db).unwrap();
    let (loaded, report) = store.load(&ImportLimits::default()).unwrap();
    assert!(report.malformed.is_empty());
    assert_eq!(loaded.len(), db.len());
    let package = vulnerable_package();
    assert_eq!(scan(&package, &loaded), scan(&package, db));
}

#[test]
fn npm_advisories_written_for_the_tests() {
    // There is no npm data in the snapshot: two records in OSV form, as GitHub publishes
    // them for npm (SEMVER ranges, a severity word, a CVSS vector).
    let lodash = r#"{
      "schema_version": "1.6.0",
      "id": "GHSA-test-lodash",
      "modified": "2024-01-01T00:00:00Z",
      "aliases": ["CVE-0000-0001"],
      "summary": "Prototype pollution in lodash (test record)",
      "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"}],
      "affected": [{
        "package": {"ecosystem": "npm", "name": "lodash"},
        "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.19"}]}]
      }],
      "database_specific": {"severity": "HIGH"}
    }"#;
    let scoped = r#"{
      "id": "GHSA-test-babel",
      "modified": "2024-01-01T00:00:00Z",
      "summary": "Test record for a scoped package",
      "affected": [{
        "package": {"ecosystem": "npm", "name": "@babel/code-frame"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "7.0.0"}, {"fixed": "7.12.14"},
                                                   {"introduced": "7.20.0-beta.1"}, {"last_affected": "7.22.0"}]}]
      }],
      "database_specific": {"severity": "MODERATE"}
    }"#;
    let (db, report) = AdvisoryDb::import_documents(
        [("lodash.json", lodash), ("babel.json", scoped)],
        &ImportLimits::default(),
    )
    .unwrap();
    assert_eq!(report.loaded, 2);
    let v3 = fixture("package-lock-v3.json");
    let yarn = fixture("yarn-v1.lock");
    let berry = fixture("yarn-berry.lock");
    let inv = inventory_zip(
        &zip_of(&[
            ("package-lock.json", &v3),
            ("old/yarn.lock", &yarn),
            ("new/yarn.lock", &berry),
        ]),
        &Limits::default(),
    )
    .unwrap();
    let found: Vec<_> = scan(&inv, &db)
        .findings
        .into_iter()
        .map(|f| {
            (
                f.name,
                f.version,
                f.advisory_id,
                f.fixed,
                f.severity.map(|s| s.rating),
                f.paths,
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "@babel/code-frame".into(),
                "7.12.13".into(),
                "GHSA-test-babel".into(),
                Some("7.12.14".into()),
                Some(Rating::Medium),
                vec!["old/yarn.lock".into()]
            ),
            (
                "lodash".into(),
                "4.17.15".into(),
                "GHSA-test-lodash".into(),
                Some("4.17.19".into()),
                Some(Rating::High),
                vec!["package-lock.json".into()]
            ),
        ]
    );
}

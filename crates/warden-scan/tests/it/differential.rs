//! The PyPI matcher against an independent one: a small OSV matcher written in Python on
//! the `packaging` library's PEP 440 versions (the reference implementation of PEP 440),
//! reading the same OSV files. For every PyPI advisory under test, candidate versions
//! around each of its range events and listed versions (the versions themselves, their
//! pre-, post- and dev-releases, and neighbours) are judged by both; the sets of
//! (advisory, package, version) found affected must be equal.
//!
//! The Python side needs the test tools' interpreter (`WARDEN_TEST_PYTHON`, set by
//! `cargo xtask ci`); without it the test fails, saying so.

use std::collections::BTreeSet;
use std::path::PathBuf;

use warden_scan::{inventory, scan, AdvisoryDb, Ecosystem, ImportLimits, Limits};

/// The independent matcher: prints one `advisory package version` line per affected
/// candidate. OSV semantics, written from the schema: a version is affected when it is in
/// `versions`, or when some `ECOSYSTEM` range has an `introduced` at or below it (`0` is
/// below everything) not followed (in version order) by a `fixed` at or below it, nor by
/// a `last_affected` below it, nor a `limit` at or below it. At equal versions a range's
/// end is taken before another's start: `fixed: 3.1.1` with `introduced: 3.1.1` re-opens
/// the range at 3.1.1, as the advisory's own `versions` list shows (PYSEC-2023-72, which
/// lists 3.1.1 to 3.1.3 as affected; the opposite order would leave them out).
const REFERENCE: &str = r#"
import json, os, sys
from packaging.version import Version, InvalidVersion
def v(s):
    try:
        return Version(s)
    except InvalidVersion:
        return None
def affected(version, aff):
    if version in aff.get("versions", []):
        return True
    ver = v(version)
    if ver is None:
        return False
    for r in aff.get("ranges", []):
        if r.get("type") != "ECOSYSTEM":
            continue
        events = []
        for e in r.get("events", []):
            (kind, val), = e.items()
            key = Version("0") if (kind == "introduced" and val == "0") else v(val)
            if key is None:
                events = None
                break
            events.append((key, {"introduced": 1, "fixed": 0, "last_affected": 0, "limit": 0}[kind], kind, val))
        if events is None:
            continue
        events.sort(key=lambda e: (e[0], e[1]))
        inside = False
        for key, _, kind, val in events:
            if kind == "introduced":
                if (val == "0") or key <= ver:
                    inside = True
            elif kind in ("fixed", "limit"):
                if key <= ver:
                    inside = False
            elif kind == "last_affected":
                if key < ver:
                    inside = False
        if inside:
            return True
    return False
def candidates(aff):
    seen = set(aff.get("versions", []))
    for r in aff.get("ranges", []):
        for e in r.get("events", []):
            (_, val), = e.items()
            if val != "0":
                seen.add(val)
    out = set()
    for s in seen:
        ver = v(s)
        if ver is None:
            continue
        rel = ".".join(str(p) for p in ver.release)
        out.update([s, rel + ".post1", rel + "rc1", rel + ".dev0", rel + ".1", rel + "a1"])
        parts = list(ver.release)
        if parts[-1] > 0:
            parts[-1] -= 1
            out.add(".".join(str(p) for p in parts))
        parts = list(ver.release)
        parts[-1] += 1
        out.add(".".join(str(p) for p in parts))
    out.update(["0.0.1", "999.0"])
    return sorted(out)
folder = sys.argv[1]
for name in sorted(os.listdir(folder)):
    if not name.endswith(".json"):
        continue
    doc = json.load(open(os.path.join(folder, name)))
    if doc.get("withdrawn"):
        continue
    for aff in doc.get("affected", []):
        pkg = aff.get("package", {})
        if pkg.get("ecosystem") != "PyPI":
            continue
        for c in candidates(aff):
            print(doc["id"], pkg["name"].lower().replace("_", "-").replace(".", "-"), c, "affected" if affected(c, aff) else "no")
"#;

fn pypi_dir() -> PathBuf {
    let root = match std::env::var_os("WARDEN_TEST_ADVISORIES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/advisories"),
    };
    root.join("osv/PyPI")
}

#[test]
fn pypi_matching_agrees_with_an_independent_matcher_on_packaging() {
    let python = std::env::var_os("WARDEN_TEST_PYTHON")
        .expect("WARDEN_TEST_PYTHON is not set: run the tests with `cargo xtask ci`");
    let dir = pypi_dir();
    let out = std::process::Command::new(python)
        .args(["-c", REFERENCE])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the reference matcher failed (is `packaging` installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut judged = Vec::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        let (Some(id), Some(name), Some(version), Some(verdict)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            panic!("unexpected line from the reference matcher: {line}");
        };
        judged.push((
            id.to_owned(),
            name.to_owned(),
            version.to_owned(),
            verdict == "affected",
        ));
    }
    assert!(judged.len() > 200, "too few candidates: {}", judged.len());

    let (db, _) = AdvisoryDb::import_dir(&dir, &ImportLimits::default()).unwrap();
    let mut reference = BTreeSet::new();
    let mut ours = BTreeSet::new();
    // One requirements file per version, so each candidate is scanned alone.
    let versions: BTreeSet<(String, String)> = judged
        .iter()
        .map(|(_, n, v, _)| (n.clone(), v.clone()))
        .collect();
    for (id, name, version, affected) in &judged {
        if *affected {
            reference.insert((id.clone(), name.clone(), version.clone()));
        }
    }
    let asked: std::collections::HashSet<(&str, &str, &str)> = judged
        .iter()
        .map(|(i, n, v, _)| (i.as_str(), n.as_str(), v.as_str()))
        .collect();
    for (name, version) in &versions {
        let requirements = format!("{name}=={version}\n");
        let inv = inventory(
            [("requirements.txt", requirements.as_bytes())],
            &Limits::default(),
        )
        .unwrap();
        let report = scan(&inv, &db);
        for f in report.findings {
            assert_eq!(f.ecosystem, Ecosystem::PyPi);
            // Only the advisories the reference judged for this package and version.
            if asked.contains(&(f.advisory_id.as_str(), f.name.as_str(), f.version.as_str())) {
                ours.insert((f.advisory_id, f.name, f.version));
            }
        }
    }
    let missed: Vec<_> = reference.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&reference).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "warden-scan and the packaging-based matcher disagree:\nonly the reference: {missed:?}\nonly warden-scan: {extra:?}"
    );
    assert!(
        reference.len() > 20,
        "too few affected verdicts: {}",
        reference.len()
    );
}

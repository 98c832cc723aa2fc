//! Time the scanner's three costs (`cargo bench -p warden-scan --bench scan`): importing
//! the advisory database (and writing and reading it back through SQLite), taking the
//! inventory of a ~50 MB deployment package with ~300 dependencies, and matching that
//! inventory against the database.
//!
//! The advisories are those of `WARDEN_TEST_ADVISORIES` (a folder holding `osv/`), else
//! the shared snapshot next to the repository if present, else the crate's small test
//! subset; which one is printed. Times are printed, never asserted.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use warden_scan::{
    inventory_zip, sbom, scan, AdvisoryDb, AdvisoryStore, Ecosystem, ImportLimits, Limits,
};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Runs `f` `rounds` times and prints the best time.
fn measure<T>(label: &str, rounds: u32, mut f: impl FnMut() -> T) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        black_box(f());
        best = best.min(start.elapsed());
    }
    println!("{label}: {:.1} ms", best.as_secs_f64() * 1e3);
    best
}

fn advisories() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("WARDEN_TEST_ADVISORIES").map(PathBuf::from),
        Some(manifest.join("../../../shared/advisories")),
        Some(manifest.join("tests/data/advisories")),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|root| root.join("osv"))
        .find(|osv| osv.is_dir())
        .unwrap()
}

/// Pseudo-random bytes (xorshift), so padding does not compress away.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A Node.js function with a Python layer: 200 npm packages in a lockfile v3 (20 of them
/// also installed under `node_modules/`), 100 PyPI pins (names that have advisories, so
/// the scan has work), 48 MiB of padding in 24 files.
fn synthetic_package(db: &AdvisoryDb) -> Vec<u8> {
    let mut packages = serde_json::Map::new();
    packages.insert(
        "".into(),
        serde_json::json!({"name": "bench", "version": "1.0.0"}),
    );
    for i in 0..200 {
        packages.insert(
            format!("node_modules/pkg-{i}"),
            serde_json::json!({"version": format!("1.{i}.0"), "resolved": "https://example.invalid/x.tgz"}),
        );
    }
    let lock = serde_json::json!({"name": "bench", "lockfileVersion": 3, "packages": packages});
    let mut python: Vec<&str> = db
        .iter()
        .flat_map(|a| a.packages())
        .filter(|(e, _)| *e == Ecosystem::PyPi)
        .map(|(_, n)| n)
        .collect();
    python.sort_unstable();
    python.dedup();
    let requirements: String = python
        .iter()
        .cycle()
        .take(100)
        .enumerate()
        .map(|(i, name)| format!("{name}==0.{i}.0\n"))
        .collect();

    let mut writer = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    writer.start_file("package-lock.json", deflated).unwrap();
    writer
        .write_all(&serde_json::to_vec_pretty(&lock).unwrap())
        .unwrap();
    writer
        .start_file("python/requirements.txt", deflated)
        .unwrap();
    writer.write_all(requirements.as_bytes()).unwrap();
    for i in 0..20 {
        writer
            .start_file(format!("node_modules/pkg-{i}/package.json"), deflated)
            .unwrap();
        write!(writer, r#"{{"name": "pkg-{i}", "version": "1.{i}.0"}}"#).unwrap();
        writer
            .start_file(format!("node_modules/pkg-{i}/index.js"), deflated)
            .unwrap();
        writer.write_all(b"module.exports = {};\n").unwrap();
    }
    for i in 0..24 {
        writer
            .start_file(format!("assets/blob-{i}.bin"), stored)
            .unwrap();
        writer.write_all(&noise(2 << 20, 0x9e37_79b9 + i)).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn main() {
    let osv = advisories();
    println!("advisories: {}", osv.display());
    let limits = ImportLimits::default();
    let (db, report) = AdvisoryDb::import_dir(&osv, &limits).unwrap();
    println!(
        "  {} loaded, {} withdrawn, {} malformed",
        report.loaded,
        report.withdrawn,
        report.malformed.len()
    );
    measure("import directory", 3, || {
        AdvisoryDb::import_dir(&osv, &limits).unwrap()
    });

    let dir = tempfile::tempdir().unwrap();
    let store = AdvisoryStore::open(&dir.path().join("advisories.db")).unwrap();
    measure("store replace (one transaction)", 3, || {
        store.replace(&db).unwrap()
    });
    measure("store load", 3, || store.load(&limits).unwrap());

    let package = synthetic_package(&db);
    println!("package: {:.1} MB", package.len() as f64 / 1e6);
    let inventory = inventory_zip(&package, &Limits::default()).unwrap();
    println!("  {} packages", inventory.packages.len());
    measure("inventory of the zip", 5, || {
        inventory_zip(&package, &Limits::default()).unwrap()
    });
    let report = scan(&inventory, &db);
    println!(
        "  {} findings, {} unparsable",
        report.findings.len(),
        report.unparsable.len()
    );
    for u in report.unparsable.iter().take(3) {
        println!(
            "  unparsable: {} {} {}: {}",
            u.name, u.version, u.advisory_id, u.reason
        );
    }
    measure("scan", 5, || scan(&inventory, &db));
    measure("CycloneDX SBOM", 5, || sbom::cyclonedx(&inventory, "bench"));
}

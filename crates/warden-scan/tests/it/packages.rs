//! Whole packages as zip archives: every manifest kind found at once, and hostile
//! archives refused or bounded.

use std::io::Write;

use warden_scan::{inventory_zip, Ecosystem, Limits};
use zip::write::SimpleFileOptions;
use zip::ZipWriter;

use crate::{fixture, zip_of};

#[test]
fn a_layer_with_every_manifest_kind() {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("requirements.txt", fixture("requirements.txt")),
        (
            "python/Jinja2-2.10.1.dist-info/METADATA",
            fixture("METADATA"),
        ),
        (
            "python/python_dateutil-2.8.2.egg-info/PKG-INFO",
            fixture("PKG-INFO"),
        ),
        ("svc/poetry.lock", fixture("poetry.lock")),
        ("svc/uv.lock", fixture("uv.lock")),
        ("svc/Pipfile.lock", fixture("Pipfile.lock")),
        ("a/package-lock.json", fixture("package-lock-v1.json")),
        ("b/package-lock.json", fixture("package-lock-v3.json")),
        (
            "nodejs/node_modules/minimist/package.json",
            fixture("node_modules-package.json"),
        ),
        ("c/yarn.lock", fixture("yarn-v1.lock")),
        ("d/yarn.lock", fixture("yarn-berry.lock")),
        ("e/pnpm-lock.yaml", fixture("pnpm-lock-v9.yaml")),
        ("Cargo.lock", fixture("Cargo.lock")),
        ("index.js", b"exports.handler = async () => 'ok';".to_vec()),
    ];
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    let inv = inventory_zip(&zip_of(&borrowed), &Limits::default()).unwrap();
    assert!(inv.problems.is_empty(), "{:?}", inv.problems);
    let count = |e| inv.packages.iter().filter(|p| p.ecosystem == e).count();
    assert_eq!(
        (
            count(Ecosystem::PyPi),
            count(Ecosystem::Npm),
            count(Ecosystem::CratesIo)
        ),
        (16, 18, 4)
    );
    let jinja: Vec<_> = inv
        .packages
        .iter()
        .filter(|p| p.name == "jinja2")
        .map(|p| (p.version.as_str(), p.paths.clone()))
        .collect();
    assert_eq!(
        jinja,
        [
            ("2.10", vec!["requirements.txt".to_owned()]),
            (
                "2.10.1",
                vec!["python/Jinja2-2.10.1.dist-info/METADATA".to_owned()]
            ),
        ]
    );
    // Found by two lockfiles, listed once with both paths.
    let minimist = inv
        .packages
        .iter()
        .find(|p| p.name == "minimist" && p.version == "1.2.5");
    assert_eq!(
        minimist.map(|p| p.paths.clone()),
        Some(vec!["nodejs/node_modules/minimist/package.json".to_owned()])
    );
    let babel: Vec<_> = inv
        .packages
        .iter()
        .filter(|p| p.name == "@babel/code-frame")
        .map(|p| (p.version.as_str(), p.paths.len()))
        .collect();
    assert_eq!(babel, [("7.12.13", 1), ("7.24.7", 1)]);
}

#[test]
fn a_zip_bomb_costs_only_the_manifest_limit() {
    // 256 MiB of one byte deflates to a few hundred KiB.
    let mut writer = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("package-lock.json", options).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..256 {
        writer.write_all(&chunk).unwrap();
    }
    let bomb = writer.finish().unwrap().into_inner();
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let limits = Limits {
        max_manifest_bytes: 1 << 20,
        ..Limits::default()
    };
    let inv = inventory_zip(&bomb, &limits).unwrap();
    assert_eq!(inv.problems.len(), 1);
    assert_eq!(inv.problems[0].reason, "larger than the 1048576 bytes read");
}

#[test]
fn many_manifests_past_the_total_are_refused() {
    let lock = vec![b' '; 1000];
    let names: Vec<String> = (0..20).map(|i| format!("f{i}/yarn.lock")).collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), lock.as_slice()))
        .collect();
    let limits = Limits {
        max_total_bytes: 10_000,
        ..Limits::default()
    };
    let err = inventory_zip(&zip_of(&files), &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the package's manifests add up to more than 10000 bytes"
    );
}

#[test]
fn hostile_archives_are_refused() {
    let err = inventory_zip(&zip_of(&[("../../Cargo.lock", b"")]), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the package path `../../Cargo.lock` leaves the package root"
    );
    // Even a file that is not a manifest: such a package is hostile as a whole.
    let err = inventory_zip(&zip_of(&[("lib/../../x.js", b"")]), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the package path `lib/../../x.js` leaves the package root"
    );
    let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let err = inventory_zip(&zip_of(&files), &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the package has 11 entries, more than the 10 that are scanned"
    );
    let err = inventory_zip(b"PK\x03\x04 not really a zip", &Limits::default()).unwrap_err();
    assert!(
        err.to_string().starts_with("reading the package archive: "),
        "{err}"
    );
}

#[test]
fn bad_utf8_and_garbage_manifests_are_problems_not_failures() {
    let files: [(&str, &[u8]); 4] = [
        ("Cargo.lock", b"\xff\xfe\x00garbage"),
        (
            "poetry.lock",
            b"[[package]]\nname = \"x\"\nversion = \xff\n",
        ),
        (
            "package-lock.json",
            b"{\"packages\": {\"node_modules/a\": {\"version\": \"\xff\"}}}",
        ),
        ("yarn.lock", b"a@^1:\n  version \"1.0.0\xff\"\n"),
    ];
    let inv = inventory_zip(&zip_of(&files), &Limits::default()).unwrap();
    let problems: Vec<_> = inv.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(problems, ["Cargo.lock", "poetry.lock", "package-lock.json"]);
    // yarn.lock is read leniently: the bad byte becomes U+FFFD in the version string.
    assert_eq!(inv.packages.len(), 1);
    assert_eq!(inv.packages[0].version, "1.0.0\u{fffd}");
}

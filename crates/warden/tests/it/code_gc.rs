//! Garbage collection of code blobs through a real server: deleted and replaced code goes,
//! code a version, an alias or a running instance needs stays, a dry run writes nothing,
//! and a `kill -9` in the middle of deploys leaves no orphan once the server is back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{aws_cli, fixture_bin, unb64, zip_dir, Server, EXEC_ROLE};

/// A zip of the fixture plus one file holding `extra`, so each `extra` is distinct code.
fn fixture_variant(extra: &[u8]) -> PathBuf {
    let dir = crate::harness::scratch_dir();
    std::fs::copy(fixture_bin("fixture"), dir.join("bootstrap")).unwrap();
    std::fs::write(dir.join("variant.txt"), extra).unwrap();
    zip_dir(&dir)
}

fn fileb(zip: &Path) -> String {
    format!("fileb://{}", zip.display())
}

fn create(s: &Server, name: &str, zip: &Path) -> Value {
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &fileb(zip),
    ])
}

fn update(s: &Server, name: &str, zip: &Path, extra: &[&str]) -> Value {
    let zip = fileb(zip);
    let mut args = vec![
        "lambda",
        "update-function-code",
        "--function-name",
        name,
        "--zip-file",
        &zip,
    ];
    args.extend_from_slice(extra);
    s.aws(&args)
}

fn hex_of(code_sha256: &str) -> String {
    unb64(code_sha256)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The blob names (hex) of every version of every function, from the API.
fn referenced(s: &Server) -> BTreeSet<String> {
    let listed = s.aws(&["lambda", "list-functions", "--function-version", "ALL"]);
    listed["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| hex_of(f["CodeSha256"].as_str().unwrap()))
        .collect()
}

/// What the sealed zips (`DATA_DIR/blobs/zips`) and the extracted trees (`CODE/code`)
/// are, as hex names.
fn stored(s: &Server) -> (BTreeSet<String>, BTreeSet<String>) {
    let names = |dir: PathBuf, suffix: &str| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .map(|n| n.strip_suffix(suffix).unwrap_or(&n).to_owned())
            .collect()
    };
    (
        names(s.data_dir.join("blobs/zips"), ".sealed"),
        names(s.code_dir.join("code"), ""),
    )
}

/// Waits until the blobs dir holds exactly what the versions reference.
fn wait_blobs_match_references(s: &Server) -> BTreeSet<String> {
    let want = referenced(s);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (zips, code) = stored(s);
        if zips == want && code == want {
            return want;
        }
        assert!(
            Instant::now() < deadline,
            "the blobs dir never came back to what is referenced:\nreferenced {want:?}\nzips {zips:?}\ncode {code:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every path under the blobs dir with its size, for before/after comparisons.
fn tree(dir: &Path) -> BTreeSet<(String, u64)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.insert((rel, if meta.is_dir() { 0 } else { meta.len() }));
        }
    }
    out
}

#[test]
fn deleting_and_replacing_code_returns_the_blobs_dir_to_what_is_referenced() {
    let s = Server::start();
    let (a, b, c, d) = (
        fixture_variant(b"a"),
        fixture_variant(b"b"),
        fixture_variant(b"c"),
        fixture_variant(b"d"),
    );
    create(&s, "gc-one", &a);
    create(&s, "gc-two", &b);
    // Two functions sharing one blob.
    create(&s, "gc-three", &a);
    assert_eq!(wait_blobs_match_references(&s).len(), 2);

    update(&s, "gc-one", &c, &[]);
    let after_update = wait_blobs_match_references(&s);
    assert_eq!(after_update.len(), 3, "a is still used by gc-three");

    s.aws(&["lambda", "delete-function", "--function-name", "gc-three"]);
    let left = wait_blobs_match_references(&s);
    assert_eq!(left.len(), 2, "a went with its last user: {left:?}");

    // A create that fails after its code was written leaves no blob behind.
    let err = s.aws_err(&[
        "lambda",
        "create-function",
        "--function-name",
        "gc-one",
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &fileb(&d),
    ]);
    assert!(err.contains("ResourceConflictException"), "{err}");
    assert_eq!(wait_blobs_match_references(&s), left);

    s.aws(&["lambda", "delete-function", "--function-name", "gc-two"]);
    s.aws(&["lambda", "delete-function", "--function-name", "gc-one"]);
    assert!(wait_blobs_match_references(&s).is_empty());
}

#[test]
fn a_dry_run_writes_no_blob() {
    let s = Server::start();
    let (a, b) = (fixture_variant(b"a"), fixture_variant(b"dry"));
    let created = create(&s, "gc-dry", &a);
    wait_blobs_match_references(&s);
    let both = |s: &Server| (tree(&s.data_dir.join("blobs")), tree(&s.code_dir));
    let before = both(&s);

    let dry = update(&s, "gc-dry", &b, &["--dry-run"]);
    let b_bytes = std::fs::read(&b).unwrap();
    assert_eq!(dry["CodeSize"], b_bytes.len() as u64);
    assert_ne!(dry["CodeSha256"], created["CodeSha256"]);
    assert_eq!(both(&s), before, "a dry run wrote to the blobs dir");

    // A zip Warden refuses (the AWS CLI itself checks it is a zip) is refused as by a
    // real update, and writes nothing either.
    let junk = tempfile::NamedTempFile::new().unwrap();
    let made = Command::new(crate::harness::python())
        .args([
            "-c",
            "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr('../../escape', 'x')\nz.close()",
        ])
        .arg(junk.path())
        .status()
        .unwrap();
    assert!(made.success());
    let err = s.aws_err(&[
        "lambda",
        "update-function-code",
        "--function-name",
        "gc-dry",
        "--dry-run",
        "--zip-file",
        &fileb(junk.path()),
    ]);
    assert!(err.contains("InvalidZipFileException"), "{err}");
    assert_eq!(both(&s), before);

    let got = s.aws(&["lambda", "get-function", "--function-name", "gc-dry"]);
    assert_eq!(got["Configuration"]["CodeSha256"], created["CodeSha256"]);
}

fn invoke_echo(s: &Server, qualified: &str) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let r = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        qualified,
        "--payload",
        r#"{"still":"here"}"#,
        out.path().to_str().unwrap(),
    ]);
    assert!(r.get("FunctionError").is_none(), "{qualified}: {r}");
    let body: Value = serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap();
    assert_eq!(body["still"], "here", "{qualified}");
}

#[test]
fn a_published_version_and_its_alias_keep_their_code_after_latest_changes() {
    let s = Server::start();
    let (a, b) = (fixture_variant(b"v1"), fixture_variant(b"v2"));
    create(&s, "gc-pub", &a);
    let v1 = s.aws(&["lambda", "publish-version", "--function-name", "gc-pub"]);
    assert_eq!(v1["Version"], "1");
    s.aws(&[
        "lambda",
        "create-alias",
        "--function-name",
        "gc-pub",
        "--name",
        "live",
        "--function-version",
        "1",
    ]);
    update(&s, "gc-pub", &b, &[]);
    let kept = wait_blobs_match_references(&s);
    assert_eq!(kept.len(), 2);
    assert!(kept.contains(&hex_of(v1["CodeSha256"].as_str().unwrap())));
    invoke_echo(&s, "gc-pub:1");
    invoke_echo(&s, "gc-pub:live");
    invoke_echo(&s, "gc-pub");

    s.aws(&[
        "lambda",
        "delete-alias",
        "--function-name",
        "gc-pub",
        "--name",
        "live",
    ]);
    s.aws(&[
        "lambda",
        "delete-function",
        "--function-name",
        "gc-pub",
        "--qualifier",
        "1",
    ]);
    let left = wait_blobs_match_references(&s);
    assert_eq!(left.len(), 1, "version 1's code went with it");
    invoke_echo(&s, "gc-pub");
}

#[test]
fn code_a_running_instance_uses_outlives_its_replacement_until_the_instance_ends() {
    let s = Server::start();
    let (a, b, probe) = (
        fixture_variant(b"old"),
        fixture_variant(b"new"),
        fixture_variant(b"probe"),
    );
    let created = create(&s, "gc-live", &a);
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "gc-live",
        "--timeout",
        "60",
    ]);
    let old = hex_of(created["CodeSha256"].as_str().unwrap());
    let code_dir = s.code_dir.join("code").join(&old);

    std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            let (status, _, body) = s.http(
                "POST",
                "/2015-03-31/functions/gc-live/invocations",
                &[],
                br#"{"action":"sleep","ms":12000}"#,
            );
            (status, String::from_utf8_lossy(&body).into_owned())
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.instance_processes().is_empty() {
            assert!(Instant::now() < deadline, "the instance never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        update(&s, "gc-live", &b, &[]);
        // Proof that a sweep ran after the update: a probe function's code, created and
        // deleted afterwards, is collected.
        create(&s, "gc-probe", &probe);
        s.aws(&["lambda", "delete-function", "--function-name", "gc-probe"]);
        let probe_dir = s
            .code_dir
            .join("code")
            .join(sha256_hex(&std::fs::read(&probe).unwrap()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe_dir.exists() {
            assert!(Instant::now() < deadline, "no sweep ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !running.is_finished(),
            "the invocation ended before the check; it sleeps 12 s"
        );
        assert!(
            code_dir.join("bootstrap").is_file(),
            "the code of a running instance was collected"
        );
        let (status, body) = running.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("slept_ms"), "{body}");
    });
    // The instance of the replaced code is stopped after its invocation; then it goes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while code_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "the replaced code stayed after its instance ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(wait_blobs_match_references(&s).len(), 1);
}

/// Hex SHA-256 of `bytes`, computed by the system's `sha256sum` to stay independent of
/// the server's code.
fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_kill_9_amid_deploys_leaves_no_orphan_after_the_restart_sweep() {
    let mut s = Server::start();
    let kept = fixture_variant(b"kept");
    create(&s, "gc-kept", &kept);
    wait_blobs_match_references(&s);

    // Deploys in flight when the server dies, large enough that writing their code takes
    // a while; wherever the kill lands, the state after restart must be consistent.
    let mut clients = Vec::new();
    for i in 0..3u8 {
        let dir = crate::harness::scratch_dir();
        std::fs::copy(fixture_bin("fixture"), dir.join("bootstrap")).unwrap();
        let noise: Vec<u8> = (0..12_000_000u32)
            .map(|n| (n.wrapping_mul(2_654_435_761).rotate_left(u32::from(i) + 7) >> 24) as u8)
            .collect();
        std::fs::write(dir.join("noise.bin"), noise).unwrap();
        let zip = zip_dir(&dir);
        let child = Command::new(aws_cli())
            .args(["--endpoint-url", &s.endpoint, "--output", "json"])
            .args([
                "lambda",
                "create-function",
                "--function-name",
                &format!("gc-crash-{i}"),
                "--runtime",
                "provided.al2023",
                "--handler",
                "bootstrap",
                "--role",
                EXEC_ROLE,
                "--zip-file",
                &fileb(&zip),
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(s.client_env())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        clients.push(child);
    }
    std::thread::sleep(Duration::from_millis(2500));
    s.kill9();
    for mut c in clients {
        let _ = c.wait();
    }

    // What a crash can leave, planted explicitly so the test does not depend on where
    // the kill landed: a blob written by a deploy that never committed, an extraction
    // in progress, a trash directory of a sweep, a half-written zip.
    let blobs = s.data_dir.join("blobs");
    let code = s.code_dir.clone();
    let orphan = "ab".repeat(32);
    std::fs::write(
        blobs.join("zips").join(format!("{orphan}.sealed")),
        b"orphan",
    )
    .unwrap();
    std::fs::create_dir_all(code.join("code").join(&orphan)).unwrap();
    std::fs::write(code.join("code").join(&orphan).join("bootstrap"), b"x").unwrap();
    std::fs::create_dir_all(code.join("staging/extract-crashed/lib")).unwrap();
    std::fs::create_dir_all(blobs.join("staging/trash-crashed")).unwrap();
    std::fs::write(blobs.join("zips/.tmp-crashed"), b"half").unwrap();

    s.restart();
    let left = wait_blobs_match_references(&s);
    assert!(left.contains(&hex_of(
        s.aws(&["lambda", "get-function", "--function-name", "gc-kept"])["Configuration"]
            ["CodeSha256"]
            .as_str()
            .unwrap()
    )));
    assert!(!left.contains(&orphan));
    for staging in [blobs.join("staging"), code.join("staging")] {
        assert_eq!(
            std::fs::read_dir(&staging).unwrap().count(),
            0,
            "staging litter is cleared at start"
        );
    }
    assert!(!blobs.join("zips/.tmp-crashed").exists());
    invoke_echo(&s, "gc-kept");
    // Every function the crash let through is whole: it runs.
    let listed = s.aws(&["lambda", "list-functions"]);
    for f in listed["Functions"].as_array().unwrap() {
        invoke_echo(&s, f["FunctionName"].as_str().unwrap());
    }
}

//! The node a server is: its id (kept in the data directory, or given by `--node-id`), the
//! lock that makes it the only live server of its data directory, and the async-event
//! leases it owns: at start it takes back its own at once and leaves other nodes' leases
//! alone until they expire.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{python, warden_bin, Server, ACCOUNT};

fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Executions recorded by the fixture: request id → count.
fn witnessed(path: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Some(id) = line.split_whitespace().next() {
            *seen.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

/// Runs a Python snippet against the metadata database (as an operator's `sqlite3` would)
/// and returns its stdout.
fn sql(data_dir: &Path, script: &str) -> String {
    let out = Command::new(python())
        .args(["-c", script])
        .arg(data_dir.join("warden.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let s = Server::start();
    let out = Command::new(warden_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--url-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--account-id",
            ACCOUNT,
        ])
        .arg("--data-dir")
        .arg(&s.data_dir)
        .env("WARDEN_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a second server started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "refusing to start: another `warden serve` is running on data directory `{}`",
            s.data_dir.display()
        )),
        "{stderr}"
    );
    // The first one is untouched.
    s.create_fixture("still-here", &[]);
    let got = s.aws(&["lambda", "get-function", "--function-name", "still-here"]);
    assert_eq!(got["Configuration"]["FunctionName"], "still-here");
}

#[test]
fn the_node_id_is_kept_in_the_data_dir_and_a_bad_one_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("state");
    let mut s = Server::start_in(&data, &[]);
    s.stop();
    let generated = std::fs::read_to_string(data.join("node-id")).unwrap();
    assert!(generated.starts_with("node-"), "{generated:?}");
    // The same node on the next start.
    let mut s = Server::start_in(&data, &[]);
    s.stop();
    assert_eq!(
        std::fs::read_to_string(data.join("node-id")).unwrap(),
        generated
    );
    // A named node keeps its name.
    let mut s = Server::start_in(&data, &["--node-id", "edge-1"]);
    s.stop();
    assert_eq!(
        std::fs::read_to_string(data.join("node-id")).unwrap(),
        "edge-1\n"
    );
    let out = Command::new(warden_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--url-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--node-id",
            "a/b",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("WARDEN_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("node id `a/b` must be 1-64 characters"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("node-id")).unwrap(),
        "edge-1\n"
    );
}

#[test]
fn a_starting_node_reclaims_its_own_leases_and_leaves_live_leases_of_others() {
    let witness = tempfile::NamedTempFile::new().unwrap();
    // Host witness file: the queue, not isolation, is under test.
    let mut s = Server::start_with(&["--insecure-no-sandbox", "--node-id", "me"]);
    let env = format!("Variables={{FIXTURE_WITNESS={}}}", witness.path().display());
    s.create_fixture("leased", &["--environment", &env]);
    s.stop();
    // What the queue holds when this node comes back: an event its own previous run had
    // leased (a crash interrupted it), one another live node is running, and one another
    // node leased and then died (its lease is over).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    sql(
        &s.data_dir,
        &format!(
            r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = [("own", "me", 9_000_000_000_000), ("other-live", "other", 9_000_000_000_000),
        ("other-expired", "other", 1)]
for (id, node, until) in rows:
    db.execute(
        "INSERT INTO events (id, function, qualifier, payload, attempts, not_before_ms,"
        " enqueued_ms, leased_until_ms, leased_by, lease_token) VALUES (?, 'leased', '$LATEST',"
        " ?, 0, 0, {now}, ?, ?, 1)",
        (id, b'{{"action":"append"}}', until, node))
db.commit()
"#
        ),
    );
    s.restart();
    wait_for(
        Duration::from_secs(30),
        || {
            let seen = witnessed(witness.path());
            seen.contains_key("own") && seen.contains_key("other-expired")
        },
        "this node's own event and the one whose lease expired to run",
    );
    // Long enough for the worker's next scans (every 250 ms, and at once after a run).
    std::thread::sleep(Duration::from_millis(1500));
    let seen = witnessed(witness.path());
    assert_eq!(
        seen.get("other-live"),
        None,
        "another node's live lease was taken: {seen:?}"
    );
    let left = sql(
        &s.data_dir,
        r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for row in db.execute("SELECT id, leased_by FROM events ORDER BY id"):
    print(*row)
"#,
    );
    assert_eq!(left, "other-live other\n", "the rest completed");
}

//! Proves the durability invariant against a real crash: a child process (this test
//! binary re-executed to run only [`writer`]) enqueues events from several threads and
//! prints each id once `enqueue_event` has returned; the parent `kill -9`s it at a random moment, reopens the
//! store and checks that every acknowledged event (and its log line) is there.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use warden_store::{
    EventQueue, FunctionStore, LogRecord, LogStore, QueuedEvent, SqliteStore, StoreError,
};
use warden_types::{FunctionName, FunctionVersion, NodeId, LATEST};

/// Set in the child: the directory of the store to write to.
const DIR_VAR: &str = "WARDEN_STORE_CRASH_DIR";
/// Set in the child: a prefix that keeps ids of successive children distinct.
const ROUND_VAR: &str = "WARDEN_STORE_CRASH_ROUND";

fn function() -> FunctionName {
    FunctionName::new("crash").unwrap()
}

fn latest() -> FunctionVersion {
    FunctionVersion {
        name: function(),
        version: LATEST.to_owned(),
        runtime: "provided.al2023".to_owned(),
        handler: "bootstrap".to_owned(),
        role: "arn:aws:iam::000000000000:role/r".to_owned(),
        description: String::new(),
        timeout_seconds: 3,
        memory_mb: 128,
        ephemeral_storage_mb: 512,
        environment: Default::default(),
        sealed_environment: None,
        kms_key_arn: None,
        environment_error: None,
        code_sha256: "sha".to_owned(),
        code_size: 1,
        revision_id: "r".to_owned(),
        last_modified_ms: 0,
        architectures: vec![],
        layers: Vec::new(),
        opt_sha256: None,
        logging: Default::default(),
        vpc_config: None,
    }
}

/// Writer threads per child, so that crashes also hit group commits of several writes.
const THREADS: usize = 4;

/// Enqueues events (each with one log line) from [`THREADS`] threads and prints
/// `ack <id>` after each returns. Each thread stops after `limit` events, or never (until
/// killed) when `limit` is `None`. Returns how many events were written.
fn write_events(dir: &Path, round: &str, limit: Option<usize>) -> usize {
    let store = Arc::new(SqliteStore::open(&dir.join("warden.db")).unwrap());
    match store.create_function(&latest()) {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let round = round.to_owned();
            std::thread::spawn(move || {
                let mut i = 0;
                while limit.is_none_or(|l| i < l) {
                    let id = format!("{round}-{t}-{i}");
                    store
                        .enqueue_event(&QueuedEvent {
                            id: id.clone(),
                            function: function(),
                            qualifier: LATEST.to_owned(),
                            payload: vec![b'x'; 100],
                            attempts: 0,
                            not_before_ms: 0,
                            enqueued_ms: 0,
                        })
                        .unwrap();
                    store
                        .append_logs(&[LogRecord {
                            seq: 0,
                            function: function(),
                            timestamp_ms: 0,
                            request_id: Some(id.clone()),
                            stream: None,
                            message: format!("line {id}"),
                            source: warden_store::LogSource::Function,
                        }])
                        .unwrap();
                    // `println!` writes whole lines through a line-buffered stdout: the
                    // line is in the pipe when this returns.
                    println!("ack {id}");
                    i += 1;
                }
                i
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}

/// The child's entry point. Run directly (no environment variable) it writes a few
/// events into a fresh store and checks they are all there, so it is a test too.
#[test]
fn writer() {
    if let Ok(dir) = std::env::var(DIR_VAR) {
        let round = std::env::var(ROUND_VAR).unwrap_or_default();
        write_events(Path::new(&dir), &round, None);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(write_events(dir.path(), "solo", Some(5)), 5 * THREADS);
    let store = SqliteStore::open(&dir.path().join("warden.db")).unwrap();
    assert_eq!(store.queued_event_count().unwrap(), 5 * THREADS as u64);
}

/// Pseudo-random numbers without a dependency: the clock's nanoseconds are random enough
/// to place a kill.
fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos.wrapping_mul(2_654_435_761)) % n
}

#[test]
fn acknowledged_events_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked = BTreeSet::new();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "crash::writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .env(ROUND_VAR, format!("r{round}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill_after = 10 + random_below(150);
        let mut seen = 0;
        for line in lines.by_ref() {
            if let Some(id) = line.unwrap().strip_prefix("ack ") {
                acked.insert(id.to_owned());
                seen += 1;
                if seen == kill_after {
                    break;
                }
            }
        }
        assert_eq!(seen, kill_after, "the writer stopped before it was killed");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements printed between our last read and the kill are still in the pipe.
        for line in lines {
            if let Some(id) = line.unwrap().strip_prefix("ack ") {
                acked.insert(id.to_owned());
            }
        }

        let store = SqliteStore::open(&dir.path().join("warden.db")).unwrap();
        let stored: BTreeSet<String> = store
            .lease_events(&NodeId::new("checker").unwrap(), 0, 0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| e.event.id)
            .collect();
        let missing: Vec<_> = acked.difference(&stored).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged events lost: {missing:?}"
        );
        let logged: BTreeSet<String> = store
            .read_logs(&function(), 0, usize::MAX)
            .unwrap()
            .into_iter()
            .filter_map(|r| r.request_id)
            .collect();
        let missing: Vec<_> = acked.difference(&logged).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged log lines lost: {missing:?}"
        );
    }
}

//! What only [`SqliteStore`] has: its files, WAL, the migrations of databases older builds
//! wrote, the group commit, and the logs file's page-based space reclaiming. The behaviour
//! every backend shares is tested once for all in `crate::contract`.

use std::collections::BTreeMap;
use std::fs;

use warden_types::NodeId;

use super::*;
use crate::{EventQueue, LeasedEvent, Settled};

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// The node most tests lease as.
fn n1() -> NodeId {
    node("n1")
}

fn name(s: &str) -> FunctionName {
    FunctionName::new(s).unwrap()
}

fn latest(function: &str, sha: &str, rev: &str) -> FunctionVersion {
    FunctionVersion {
        name: name(function),
        version: LATEST.to_owned(),
        runtime: "python3.12".to_owned(),
        handler: "app.handler".to_owned(),
        role: "arn:aws:iam::000000000000:role/r".to_owned(),
        description: String::new(),
        timeout_seconds: 3,
        memory_mb: 128,
        ephemeral_storage_mb: 512,
        environment: BTreeMap::new(),
        sealed_environment: None,
        kms_key_arn: None,
        environment_error: None,
        code_sha256: sha.to_owned(),
        code_size: 10,
        revision_id: rev.to_owned(),
        last_modified_ms: 1,
        architectures: vec!["x86_64".to_owned()],
        layers: Vec::new(),
        opt_sha256: None,
        logging: Default::default(),
        vpc_config: None,
    }
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("warden.db")).unwrap();
    (dir, store)
}

fn publish(store: &SqliteStore, function: &str, rev: &str) -> FunctionVersion {
    store
        .publish_version(&name(function), None, None, rev, 100)
        .unwrap()
}

fn ids(events: &[LeasedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.id.as_str()).collect()
}

#[test]
fn open_creates_both_files_and_records_the_schema_version() {
    let (dir, store) = open();
    assert!(dir.path().join("warden.db").is_file());
    assert!(dir.path().join("warden.logs.db").is_file());
    let conn = lock(&store.reader);
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = lock(&store.writer)
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "metadata must be synchronous=FULL");
}

#[test]
fn reopening_keeps_data_and_does_not_remigrate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create_function(&latest("f", "sha", "r1")).unwrap();
        store.put_setting("account", "123456789012").unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store
            .get_version(&name("f"), LATEST)
            .unwrap()
            .unwrap()
            .revision_id,
        "r1"
    );
    assert_eq!(
        store.get_setting("account").unwrap().as_deref(),
        Some("123456789012")
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    drop(SqliteStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the database schema version {} is newer than the newest this build supports ({SCHEMA_VERSION})",
            SCHEMA_VERSION + 1
        )
    );
}

#[test]
fn logs_path_sits_beside_the_metadata() {
    assert_eq!(
        SqliteStore::logs_path(Path::new("/var/lib/warden/warden.db")),
        PathBuf::from("/var/lib/warden/warden.logs.db")
    );
}

#[test]
fn a_queue_from_before_nodes_is_migrated_and_its_leases_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    {
        // The metadata file as schema version 2 left it, with an event leased far into the
        // future by the process that is now being upgraded.
        let db = warden_sqlite::open(
            &path,
            &warden_sqlite::Options {
                synchronous: Synchronous::Full,
                migrations: &META_MIGRATIONS[..2],
                incremental_vacuum: false,
            },
        )
        .unwrap();
        db.writer
            .execute_batch(
                "INSERT INTO functions (name, next_version) VALUES ('f', 1);
                 INSERT INTO events (id, function, qualifier, payload, attempts, not_before_ms,
                                     enqueued_ms, leased_until_ms)
                 VALUES ('old', 'f', '$LATEST', x'7b7d', 1, 5, 5, 9000000000000),
                        ('idle', 'f', '$LATEST', x'7b7d', 0, 6, 6, NULL);",
            )
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let v: i64 = lock(&store.reader)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let got = store.lease_events(&n1(), 10, 50, 10).unwrap();
    assert_eq!(ids(&got), ["old", "idle"], "due at once, in their order");
    assert_eq!(got[0].event.attempts, 1);
    assert_eq!(got[0].event.payload, b"{}");
    assert_eq!(got[0].lease.token, 1);
    assert_eq!(
        store.complete_event(&got[0].lease).unwrap(),
        Settled::Applied
    );
}

#[test]
fn a_backend_failure_keeps_its_cause_without_naming_its_type() {
    let (_d, store) = open();
    // A read-only connection refusing a write stands for any failure of the database.
    let err = lock(&store.reader)
        .execute("INSERT INTO settings (key, value) VALUES ('k', 'v')", [])
        .map_err(db("writing a setting"))
        .unwrap_err();
    let StoreError::Backend { context, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*context, "writing a setting");
    let cause = std::error::Error::source(&err).expect("the cause is kept");
    assert_eq!(cause.to_string(), source.to_string());
    assert!(cause.to_string().contains("readonly"), "{cause}");
    // The error crosses threads as callers on an async runtime need.
    fn send_sync_static<T: Send + Sync + 'static>(_: &T) {}
    send_sync_static(&err);
}

fn log_line(f: &str, ts: i64, msg: &str, source: LogSource) -> LogRecord {
    LogRecord {
        seq: -7,
        function: name(f),
        timestamp_ms: ts,
        request_id: Some("req".into()),
        stream: None,
        message: msg.to_owned(),
        source,
    }
}

fn retention(max_age_ms: i64, max_bytes: u64) -> LogRetention {
    LogRetention {
        max_age_ms,
        max_bytes,
    }
}

/// Bytes the logs database takes on disk, write-ahead log included.
fn logs_on_disk(dir: &std::path::Path) -> u64 {
    ["warden.logs.db", "warden.logs.db-wal"]
        .iter()
        .map(|f| fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Appends `lines` lines of about 1 KB to `f`, in batches like the log writer's.
fn fill_logs(store: &SqliteStore, f: &str, first: usize, lines: usize) {
    let body = "x".repeat(1000);
    for chunk in (first..first + lines).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| log_line(f, *i as i64, &format!("{i} {body}"), LogSource::Function))
            .collect();
        store.append_logs(&batch).unwrap();
    }
}

#[test]
fn prune_logs_keeps_the_newest_lines_under_the_size_cap_and_shrinks_the_file() {
    let (dir, store) = open();
    fill_logs(&store, "f", 0, 8000);
    assert!(store.log_bytes().unwrap() > 8_000_000);
    let cap = 1024 * 1024;
    let report = store.prune_logs(&retention(i64::MAX, cap), 0).unwrap();
    assert_eq!(report.expired, 0);
    assert!(report.evicted > 6000, "{report:?}");
    assert!(report.bytes_before > 8_000_000, "{report:?}");
    assert!(report.bytes_after <= cap, "{report:?}");
    assert_eq!(report.bytes_after, store.log_bytes().unwrap());
    let left = store.read_logs(&name("f"), 0, 100_000).unwrap();
    assert!(!left.is_empty());
    assert!(
        left.last().unwrap().message.starts_with("7999 "),
        "the newest line stays"
    );
    assert!(
        left.first()
            .unwrap()
            .message
            .split(' ')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 6000,
        "the oldest lines went first"
    );
    // The space went back to the file system: the file shrank, not only its free list.
    let on_disk = logs_on_disk(dir.path());
    assert!(
        on_disk <= cap + 256 * 1024,
        "the logs database takes {on_disk} bytes on disk after pruning to {cap}"
    );
    // Under the cap, nothing more goes.
    let again = store.prune_logs(&retention(i64::MAX, cap), 0).unwrap();
    assert_eq!((again.expired, again.evicted), (0, 0));
}

#[test]
fn an_old_logs_database_gains_the_source_column_and_incremental_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("warden.db");
    let logs = SqliteStore::logs_path(&meta);
    {
        // A logs file as the first schema made it: no auto_vacuum, no source column.
        let conn = Connection::open(&logs).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(LOG_MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO logs (function, timestamp_ms, request_id, message)
             VALUES ('f', 1, 'r', 'REPORT RequestId: r')",
            [],
        )
        .unwrap();
        let mode: i64 = conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 0);
    }
    let store = SqliteStore::open(&meta).unwrap();
    let old = store.read_logs(&name("f"), 0, 10).unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(
        old[0].source,
        LogSource::Function,
        "a line of unknown origin is never trusted as Warden's"
    );
    fill_logs(&store, "f", 0, 4000);
    let cap = 512 * 1024;
    store.prune_logs(&retention(i64::MAX, cap), 0).unwrap();
    let mode: i64 = lock(&store.log_writer)
        .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .unwrap();
    assert_eq!(
        mode, 2,
        "the first prune converts the file to incremental vacuuming"
    );
    let on_disk = logs_on_disk(dir.path());
    assert!(on_disk <= cap + 256 * 1024, "{on_disk} bytes on disk");
    // And later prunes shrink it without another full vacuum.
    fill_logs(&store, "f", 4000, 4000);
    store.prune_logs(&retention(i64::MAX, cap), 0).unwrap();
    let on_disk = logs_on_disk(dir.path());
    assert!(on_disk <= cap + 256 * 1024, "{on_disk} bytes on disk");
}

#[test]
fn a_new_logs_database_uses_incremental_vacuum() {
    let (_d, store) = open();
    let mode: i64 = lock(&store.log_writer)
        .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2);
}

#[test]
fn a_failing_write_in_a_group_commit_undoes_only_itself() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    let insert = |id: &'static str, then_fail: bool| {
        let (done, outcome) = mpsc::sync_channel(1);
        let job: Box<dyn GroupedWrite> = Box::new(Grouped {
            context: "test",
            write: Some(move |conn: &Connection| {
                conn.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, 'v')",
                    params![id],
                )
                .map_err(db("test"))?;
                if then_fail {
                    return Err(StoreError::Conflict(format!("{id} fails after writing")));
                }
                Ok(id)
            }),
            out: None,
            done,
        });
        (job, outcome)
    };
    let (a, a_out) = insert("a", false);
    let (b, b_out) = insert("b", true);
    let (c, c_out) = insert("c", false);
    commit_batch(&mut lock(&store.writer), vec![a, b, c]);
    assert_eq!(a_out.recv().unwrap().unwrap(), "a");
    assert_eq!(
        b_out.recv().unwrap().unwrap_err().to_string(),
        "b fails after writing"
    );
    assert_eq!(c_out.recv().unwrap().unwrap(), "c");
    assert_eq!(store.get_setting("a").unwrap().as_deref(), Some("v"));
    assert_eq!(
        store.get_setting("b").unwrap(),
        None,
        "the failed write is rolled back"
    );
    assert_eq!(store.get_setting("c").unwrap().as_deref(), Some("v"));
}

#[test]
fn a_failed_batch_reports_its_error_to_every_write() {
    let (_d, store) = open();
    let job = |id: &'static str| {
        let (done, outcome) = mpsc::sync_channel(1);
        let job: Box<dyn GroupedWrite> = Box::new(Grouped {
            context: "writing in a doomed batch",
            write: Some(move |conn: &Connection| {
                conn.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, 'v')",
                    params![id],
                )
                .map_err(db("test"))?;
                Ok(())
            }),
            out: None,
            done,
        });
        (job, outcome)
    };
    let (a, a_out) = job("a");
    let (b, b_out) = job("b");
    let mut conn = lock(&store.writer);
    // A transaction already open makes the batch's BEGIN fail.
    conn.execute_batch("BEGIN").unwrap();
    commit_batch(&mut conn, vec![a, b]);
    for out in [a_out, b_out] {
        let err = out.recv().unwrap().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("database error while writing in a doomed batch: "),
            "{err}"
        );
    }
    assert!(
        conn.is_autocommit(),
        "the failed batch left no transaction open"
    );
    drop(conn);
    assert_eq!(store.get_setting("a").unwrap(), None);
}

/// Sealing (whose behaviour `crate::contract` tests on every backend) leaves no byte of a
/// plain value in the database file or its WAL.
#[test]
fn sealing_leaves_no_plain_byte_in_the_files() {
    let (dir, store) = open();
    let mut f = latest("old", "sha-old", "r1");
    f.environment
        .insert("TOKEN".into(), "plain-marker-93c1".into());
    store.create_function(&f).unwrap();
    let v1 = publish(&store, "old", "r2");
    assert_eq!(v1.version, "1");
    let mut calls = 0;
    let sealed = store
        .seal_plaintext_environments(&mut |v| {
            calls += 1;
            assert_eq!(v.environment["TOKEN"], "plain-marker-93c1");
            Ok(warden_types::function::SealedEnvironment {
                key_arn: "arn:aws:kms:us-east-1:000000000000:key/k".into(),
                customer_key: false,
                ciphertext: "c2VhbGVk".into(),
            })
        })
        .unwrap();
    assert_eq!((sealed, calls), (2, 2), "$LATEST and version 1");
    for version in [LATEST, "1"] {
        let v = store.get_version(&name("old"), version).unwrap().unwrap();
        assert!(
            v.environment.is_empty() && v.sealed_environment.is_some(),
            "{version}"
        );
    }
    // Nothing changed since version 1: publishing returns it, as before the sealing.
    assert_eq!(publish(&store, "old", "r3").version, "1");
    // A second run finds nothing to seal.
    assert_eq!(
        store
            .seal_plaintext_environments(&mut |_| unreachable!("nothing is left in the clear"))
            .unwrap(),
        0
    );
    // No byte of the plain value is left in the database or its WAL.
    drop(store);
    for file in ["warden.db", "warden.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(17).any(|w| w == b"plain-marker-93c1"),
            "{file} still holds the plain value"
        );
    }
}

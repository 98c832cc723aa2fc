//! Unit tests of the plumbing: file modes, pragmas, WAL refusal, and migrations (order,
//! idempotence, rollback of a failed step, refusal of a newer schema, dangling foreign keys,
//! and two openers racing).

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use super::*;

const SCHEMA: &[&str] = &[
    "CREATE TABLE parent (id INTEGER PRIMARY KEY) STRICT;",
    "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES parent(id)) STRICT;",
];

fn options(migrations: &'static [&'static str]) -> Options<'static> {
    Options {
        synchronous: Synchronous::Full,
        migrations,
        incremental_vacuum: false,
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn user_version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn files_are_private_to_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let db = open(&path, &options(SCHEMA)).unwrap();
    db.writer
        .execute("INSERT INTO parent (id) VALUES (1)", [])
        .unwrap();
    for name in ["a.db", "a.db-wal", "a.db-shm"] {
        assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
    }
    drop(db);
    // What a careless older build or a wide umask left behind is tightened on the next open.
    for name in ["a.db", "a.db-wal", "a.db-shm"] {
        let p = dir.path().join(name);
        if p.exists() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let _db = open(&path, &options(SCHEMA)).unwrap();
    for name in ["a.db", "a.db-wal", "a.db-shm"] {
        let p = dir.path().join(name);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
}

#[test]
fn connections_get_the_pragmas_of_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let full = open(&dir.path().join("full.db"), &options(SCHEMA)).unwrap();
    let normal = open(
        &dir.path().join("normal.db"),
        &Options {
            synchronous: Synchronous::Normal,
            incremental_vacuum: true,
            ..options(SCHEMA)
        },
    )
    .unwrap();
    let get =
        |c: &Connection, p: &str| -> i64 { c.pragma_query_value(None, p, |r| r.get(0)).unwrap() };
    assert_eq!(get(&full.writer, "synchronous"), 2, "FULL");
    assert_eq!(get(&normal.writer, "synchronous"), 1, "NORMAL");
    assert_eq!(get(&full.writer, "foreign_keys"), 1);
    assert_eq!(get(&full.reader, "foreign_keys"), 1);
    assert_eq!(get(&full.writer, "busy_timeout"), 10_000);
    assert_eq!(get(&full.reader, "query_only"), 1);
    assert_eq!(get(&full.writer, "query_only"), 0);
    assert_eq!(get(&full.writer, "auto_vacuum"), 0);
    assert_eq!(get(&normal.writer, "auto_vacuum"), 2, "INCREMENTAL");
    let journal: String = full
        .reader
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    assert!(full
        .reader
        .execute("INSERT INTO parent (id) VALUES (1)", [])
        .is_err());
}

#[test]
fn a_file_without_wal_is_refused() {
    // An in-memory database cannot use WAL: it stands for a file system without shared memory.
    let mut conn = Connection::open_in_memory().unwrap();
    let err = prepare(&mut conn, Path::new("memory"), &options(SCHEMA)).unwrap_err();
    assert!(
        matches!(&err, Error::WalUnavailable { mode, .. } if mode == "memory"),
        "{err}"
    );
    assert_eq!(user_version(&conn), 0, "nothing was migrated");
}

#[test]
fn migrations_run_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    {
        let db = open(&path, &options(&SCHEMA[..1])).unwrap();
        assert_eq!(user_version(&db.writer), 1);
        db.writer
            .execute("INSERT INTO parent (id) VALUES (7)", [])
            .unwrap();
    }
    // A newer build adds a step; the old one is not run again (it would fail: the table exists).
    let db = open(&path, &options(SCHEMA)).unwrap();
    assert_eq!(user_version(&db.writer), 2);
    db.writer
        .execute("INSERT INTO child (id, parent) VALUES (1, 7)", [])
        .unwrap();
    // Foreign keys are back on after migrating.
    assert!(db
        .writer
        .execute("INSERT INTO child (id, parent) VALUES (2, 99)", [])
        .is_err());
    drop(db);
    let db = open(&path, &options(SCHEMA)).unwrap();
    assert_eq!(user_version(&db.writer), 2);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    drop(open(&path, &options(SCHEMA)).unwrap());
    let err = open(&path, &options(&SCHEMA[..1])).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaTooNew {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the database schema version 2 is newer than the newest this build supports (1)"
    );
}

#[test]
fn a_failing_step_is_rolled_back_whole() {
    const BROKEN: &[&str] = &[
        "CREATE TABLE parent (id INTEGER PRIMARY KEY) STRICT;",
        "CREATE TABLE half (id INTEGER) STRICT; INSERT INTO nowhere VALUES (1);",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let err = open(&path, &options(BROKEN)).unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err}");
    let conn = Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), 1, "the first step committed");
    let half: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE name = 'half'",
            [],
            |r| r.get(0),
        )
        .optional()
        .unwrap();
    assert_eq!(half, None, "the failed step left nothing behind");
}

#[test]
fn a_step_leaving_dangling_foreign_keys_is_rolled_back() {
    const DANGLING: &[&str] = &[
        SCHEMA[0],
        SCHEMA[1],
        "INSERT INTO child (id, parent) VALUES (1, 42);",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let err = open(&path, &options(DANGLING)).unwrap_err();
    assert!(
        matches!(err, Error::DanglingForeignKeys { step: 2 }),
        "{err}"
    );
    let conn = Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), 2);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM child", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn openers_racing_apply_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("race.db"));
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (path, start) = (Arc::clone(&path), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                // CREATE TABLE fails if a step ran twice.
                open(&path, &options(SCHEMA)).map(|_| ())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let conn = Connection::open(&*path).unwrap();
    assert_eq!(user_version(&conn), 2);
}

#[test]
fn a_poisoned_lock_is_still_usable_and_abandoned_transactions_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("p.db"), &options(SCHEMA)).unwrap();
    let writer = Arc::new(Mutex::new(db.writer));
    let w = Arc::clone(&writer);
    let _ = std::thread::spawn(move || {
        let conn = w.lock().unwrap();
        conn.execute_batch("BEGIN; INSERT INTO parent (id) VALUES (1);")
            .unwrap();
        panic!("a writer dies mid-transaction");
    })
    .join();
    assert!(writer.is_poisoned());
    let conn = lock(&writer);
    assert!(!conn.is_autocommit(), "the panic left the transaction open");
    rollback_abandoned(&conn).unwrap();
    assert!(conn.is_autocommit());
    let n: i64 = conn
        .query_row("SELECT count(*) FROM parent", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "the abandoned write was undone");
    rollback_abandoned(&conn).unwrap();
}

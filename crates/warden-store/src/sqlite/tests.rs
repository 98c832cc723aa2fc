//! Unit tests of every [`Store`] method on [`SqliteStore`], plus a proptest that random
//! queue operations of several nodes agree with a simple in-memory model.

use std::collections::BTreeMap;
use std::fs;

use proptest::prelude::*;
use warden_types::NodeId;

use super::*;
use crate::{EventQueue, Lease, LeasedEvent, QueuedEvent, Settled, Store, StoredEvent};

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

fn alias(function: &str, alias_name: &str, version: &str, rev: &str) -> Alias {
    Alias {
        function: name(function),
        name: alias_name.to_owned(),
        function_version: version.to_owned(),
        description: String::new(),
        routing: None,
        revision_id: rev.to_owned(),
    }
}

fn event(id: &str, function: &str, not_before_ms: i64) -> QueuedEvent {
    QueuedEvent {
        id: id.to_owned(),
        function: name(function),
        qualifier: LATEST.to_owned(),
        payload: id.as_bytes().to_vec(),
        attempts: 0,
        not_before_ms,
        enqueued_ms: not_before_ms,
    }
}

fn publish(store: &SqliteStore, function: &str, rev: &str) -> FunctionVersion {
    store
        .publish_version(&name(function), None, None, rev, 100)
        .unwrap()
}

fn versions(store: &SqliteStore, function: &str) -> Vec<String> {
    store
        .list_versions(&name(function), None, 100)
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect()
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
fn create_and_get_function() {
    let (_d, store) = open();
    let f = latest("f", "sha", "r1");
    store.create_function(&f).unwrap();
    assert_eq!(
        store.get_version(&name("f"), LATEST).unwrap(),
        Some(f.clone())
    );
    assert_eq!(store.get_version(&name("f"), "1").unwrap(), None);
    assert_eq!(store.get_version(&name("f"), "alias").unwrap(), None);
    assert_eq!(store.get_version(&name("g"), LATEST).unwrap(), None);
    let err = store.create_function(&f).unwrap_err();
    assert_eq!(err.to_string(), "function `f` already exists");
}

#[test]
fn create_function_refuses_a_numbered_version() {
    let (_d, store) = open();
    let mut f = latest("f", "sha", "r1");
    f.version = "1".to_owned();
    let err = store.create_function(&f).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid record: a new function must be created as `$LATEST`, not version `1`"
    );
}

#[test]
fn update_latest_checks_the_revision() {
    let (_d, store) = open();
    store.create_function(&latest("f", "sha", "r1")).unwrap();
    let mut next = latest("f", "sha2", "r2");
    next.memory_mb = 256;

    let err = store.update_latest(&next, Some("stale")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the revision id `stale` does not match the current revision `r1`"
    );
    assert_eq!(
        store
            .get_version(&name("f"), LATEST)
            .unwrap()
            .unwrap()
            .revision_id,
        "r1"
    );

    store.update_latest(&next, Some("r1")).unwrap();
    assert_eq!(
        store.get_version(&name("f"), LATEST).unwrap(),
        Some(next.clone())
    );
    // Without a precondition the write is unconditional.
    store
        .update_latest(&latest("f", "sha3", "r3"), None)
        .unwrap();
    assert_eq!(
        store
            .get_version(&name("f"), LATEST)
            .unwrap()
            .unwrap()
            .code_sha256,
        "sha3"
    );

    let err = store
        .update_latest(&latest("g", "sha", "r1"), None)
        .unwrap_err();
    assert_eq!(err.to_string(), "function `g` does not exist");
}

#[test]
fn publish_numbers_versions_and_copies_latest() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    let v1 = store
        .publish_version(&name("f"), Some("first"), Some("r1"), "p1", 500)
        .unwrap();
    assert_eq!(v1.version, "1");
    assert_eq!(v1.revision_id, "p1");
    assert_eq!(v1.description, "first");
    assert_eq!(v1.last_modified_ms, 500);
    assert_eq!(v1.code_sha256, "a");
    assert_eq!(store.get_version(&name("f"), "1").unwrap(), Some(v1));
    // $LATEST itself is unchanged by publishing.
    assert_eq!(
        store
            .get_version(&name("f"), LATEST)
            .unwrap()
            .unwrap()
            .revision_id,
        "r1"
    );

    store.update_latest(&latest("f", "b", "r2"), None).unwrap();
    let v2 = publish(&store, "f", "p2");
    assert_eq!(v2.version, "2");
    assert_eq!(
        v2.description, "",
        "without a description the function's is kept"
    );
    assert_eq!(versions(&store, "f"), ["$LATEST", "1", "2"]);
}

#[test]
fn publish_checks_the_revision_and_existence() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    let err = store
        .publish_version(&name("f"), None, Some("r0"), "p1", 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::RevisionMismatch { .. }), "{err}");
    assert_eq!(versions(&store, "f"), ["$LATEST"]);
    let err = store
        .publish_version(&name("g"), None, None, "p1", 1)
        .unwrap_err();
    assert_eq!(err.to_string(), "function `g` does not exist");
}

#[test]
fn publish_without_changes_returns_the_newest_version() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    let v1 = publish(&store, "f", "p1");
    let again = publish(&store, "f", "p2");
    assert_eq!(again, v1, "same code and configuration: no new version");

    // A new revision id alone is not a change.
    store.update_latest(&latest("f", "a", "r2"), None).unwrap();
    assert_eq!(publish(&store, "f", "p3").version, "1");

    // A configuration change is.
    let mut changed = latest("f", "a", "r3");
    changed.environment.insert("K".into(), "V".into());
    store.update_latest(&changed, None).unwrap();
    assert_eq!(publish(&store, "f", "p4").version, "2");

    // So is new code, and going back to old code after that too.
    store.update_latest(&latest("f", "b", "r4"), None).unwrap();
    assert_eq!(publish(&store, "f", "p5").version, "3");
    store.update_latest(&latest("f", "a", "r5"), None).unwrap();
    assert_eq!(publish(&store, "f", "p6").version, "4");
}

#[test]
fn version_numbers_are_never_reused() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    publish(&store, "f", "p1");
    store.update_latest(&latest("f", "b", "r2"), None).unwrap();
    publish(&store, "f", "p2");
    assert!(store.delete_function(&name("f"), Some("2")).unwrap());
    assert!(!store.delete_function(&name("f"), Some("2")).unwrap());
    assert_eq!(versions(&store, "f"), ["$LATEST", "1"]);

    // $LATEST still differs from version 1, so this is a new version: 3, not 2 again.
    assert_eq!(publish(&store, "f", "p3").version, "3");
    assert!(store.delete_function(&name("f"), Some("3")).unwrap());
    assert!(store.delete_function(&name("f"), Some("1")).unwrap());
    assert_eq!(publish(&store, "f", "p4").version, "4");
}

#[test]
fn deleting_latest_alone_is_a_conflict() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    let err = store.delete_function(&name("f"), Some(LATEST)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "version `$LATEST` of function `f` cannot be deleted without deleting the function"
    );
    assert!(!store
        .delete_function(&name("f"), Some("not-a-version"))
        .unwrap());
    assert!(!store.delete_function(&name("nope"), Some("1")).unwrap());
}

#[test]
fn deleting_a_function_removes_everything_of_it() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    store.create_function(&latest("g", "b", "r1")).unwrap();
    publish(&store, "f", "p1");
    store.create_alias(&alias("f", "live", "1", "a1")).unwrap();
    store.put_reserved_concurrency(&name("f"), Some(5)).unwrap();
    store.put_reserved_concurrency(&name("g"), Some(7)).unwrap();
    store.enqueue_event(&event("e1", "f", 0)).unwrap();
    store.enqueue_event(&event("e2", "g", 0)).unwrap();
    store
        .append_logs(&[LogRecord {
            seq: 0,
            function: name("f"),
            timestamp_ms: 1,
            request_id: None,
            stream: None,
            message: "kept".into(),
            source: LogSource::Function,
        }])
        .unwrap();

    assert!(store.delete_function(&name("f"), None).unwrap());
    assert!(!store.delete_function(&name("f"), None).unwrap());
    assert_eq!(store.get_version(&name("f"), LATEST).unwrap(), None);
    assert_eq!(store.get_version(&name("f"), "1").unwrap(), None);
    assert_eq!(store.get_alias(&name("f"), "live").unwrap(), None);
    assert_eq!(store.get_reserved_concurrency(&name("f")).unwrap(), None);
    assert_eq!(store.all_reserved_concurrency().unwrap(), [(name("g"), 7)]);
    assert_eq!(ids(&store.lease_events(&n1(), 10, 10, 10).unwrap()), ["e2"]);
    assert_eq!(
        store.read_logs(&name("f"), 0, 10).unwrap().len(),
        1,
        "logs stay"
    );

    // A re-created function starts numbering afresh and has no leftovers.
    store.create_function(&latest("f", "c", "r9")).unwrap();
    assert_eq!(publish(&store, "f", "p1").version, "1");
    assert!(store
        .list_aliases(&name("f"), None, None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn list_functions_paginates_by_name() {
    let (_d, store) = open();
    for f in ["c", "a", "e", "b", "d"] {
        store.create_function(&latest(f, "s", "r")).unwrap();
    }
    publish(&store, "a", "p");
    let page = |after: Option<&str>, limit| -> Vec<String> {
        store
            .list_functions(after.map(name).as_ref(), limit)
            .unwrap()
            .into_iter()
            .map(|v| {
                assert!(v.is_latest());
                v.name.to_string()
            })
            .collect()
    };
    assert_eq!(page(None, 2), ["a", "b"]);
    assert_eq!(page(Some("b"), 2), ["c", "d"]);
    assert_eq!(page(Some("d"), 2), ["e"]);
    assert!(page(Some("e"), 2).is_empty());
    assert_eq!(page(None, 100).len(), 5);
    assert!(page(None, 0).is_empty());
}

#[test]
fn list_versions_paginates_latest_first_then_numbers() {
    let (_d, store) = open();
    store.create_function(&latest("f", "s0", "r")).unwrap();
    for i in 1..=11 {
        store
            .update_latest(&latest("f", &format!("s{i}"), "r"), None)
            .unwrap();
        publish(&store, "f", "p");
    }
    let page = |after: Option<&str>, limit| -> Vec<String> {
        store
            .list_versions(&name("f"), after, limit)
            .unwrap()
            .into_iter()
            .map(|v| v.version)
            .collect()
    };
    // Numeric order, not text order: 10 and 11 come after 9.
    assert_eq!(page(None, 3), ["$LATEST", "1", "2"]);
    assert_eq!(page(Some("$LATEST"), 2), ["1", "2"]);
    assert_eq!(page(Some("8"), 5), ["9", "10", "11"]);
    assert!(page(Some("11"), 5).is_empty());
    assert!(page(Some("bogus"), 5).is_empty());
    let err = store.list_versions(&name("g"), None, 5).unwrap_err();
    assert_eq!(err.to_string(), "function `g` does not exist");
}

#[test]
fn referenced_code_lists_every_version_sha_once() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    publish(&store, "f", "p");
    store.update_latest(&latest("f", "b", "r"), None).unwrap();
    store.create_function(&latest("g", "a", "r")).unwrap();
    assert_eq!(store.referenced_code().unwrap(), ["a", "b"]);
    store.delete_function(&name("f"), Some("1")).unwrap();
    store.delete_function(&name("g"), None).unwrap();
    assert_eq!(store.referenced_code().unwrap(), ["b"]);
}

#[test]
fn alias_lifecycle() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    publish(&store, "f", "p1");
    store.update_latest(&latest("f", "b", "r"), None).unwrap();
    publish(&store, "f", "p2");

    let live = alias("f", "live", "1", "a1");
    store.create_alias(&live).unwrap();
    assert_eq!(
        store.get_alias(&name("f"), "live").unwrap(),
        Some(live.clone())
    );
    assert_eq!(store.get_alias(&name("f"), "other").unwrap(), None);
    let err = store.create_alias(&live).unwrap_err();
    assert_eq!(
        err.to_string(),
        "alias `live` of function `f` already exists"
    );

    let mut moved = alias("f", "live", "2", "a2");
    moved.routing = Some(("1".to_owned(), 0.25));
    moved.description = "canary".to_owned();
    let err = store.update_alias(&moved, Some("a0")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the revision id `a0` does not match the current revision `a1`"
    );
    store.update_alias(&moved, Some("a1")).unwrap();
    assert_eq!(store.get_alias(&name("f"), "live").unwrap(), Some(moved));

    let err = store
        .update_alias(&alias("f", "ghost", "1", "x"), None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "alias `ghost` of function `f` does not exist"
    );

    assert!(store.delete_alias(&name("f"), "live").unwrap());
    assert!(!store.delete_alias(&name("f"), "live").unwrap());
    assert_eq!(store.get_alias(&name("f"), "live").unwrap(), None);
}

#[test]
fn aliases_need_an_existing_function_and_version() {
    let (_d, store) = open();
    let err = store
        .create_alias(&alias("f", "live", "1", "a"))
        .unwrap_err();
    assert_eq!(err.to_string(), "function `f` does not exist");
    store.create_function(&latest("f", "a", "r")).unwrap();
    let err = store
        .create_alias(&alias("f", "live", "1", "a"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "version `1` of function `f` does not exist"
    );
    let mut routed = alias("f", "live", LATEST, "a");
    routed.routing = Some(("7".to_owned(), 0.5));
    let err = store.create_alias(&routed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "version `7` of function `f` does not exist"
    );
    // $LATEST is a valid target.
    store.create_alias(&alias("f", "dev", LATEST, "a")).unwrap();
    publish(&store, "f", "p");
    store.create_alias(&alias("f", "live", "1", "a")).unwrap();
    let err = store
        .update_alias(&alias("f", "live", "9", "b"), Some("a"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "version `9` of function `f` does not exist"
    );
}

#[test]
fn deleting_a_version_an_alias_uses_is_a_conflict() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    publish(&store, "f", "p1");
    store.update_latest(&latest("f", "b", "r"), None).unwrap();
    publish(&store, "f", "p2");
    let mut canary = alias("f", "canary", "2", "c");
    canary.routing = Some(("1".to_owned(), 0.1));
    store.create_alias(&canary).unwrap();

    for v in ["1", "2"] {
        let err = store.delete_function(&name("f"), Some(v)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("version `{v}` of function `f` cannot be deleted because alias `canary` points to it")
        );
    }
    store.delete_alias(&name("f"), "canary").unwrap();
    assert!(store.delete_function(&name("f"), Some("1")).unwrap());
}

#[test]
fn list_aliases_filters_and_paginates() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    publish(&store, "f", "p1");
    store.update_latest(&latest("f", "b", "r"), None).unwrap();
    publish(&store, "f", "p2");
    store.create_alias(&alias("f", "c", "1", "r")).unwrap();
    store.create_alias(&alias("f", "a", "2", "r")).unwrap();
    let mut routed = alias("f", "b", "2", "r");
    routed.routing = Some(("1".to_owned(), 0.5));
    store.create_alias(&routed).unwrap();
    store.create_alias(&alias("f", "d", LATEST, "r")).unwrap();

    let names = |version: Option<&str>, after: Option<&str>, limit| -> Vec<String> {
        store
            .list_aliases(&name("f"), version, after, limit)
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect()
    };
    assert_eq!(names(None, None, 10), ["a", "b", "c", "d"]);
    assert_eq!(names(None, None, 2), ["a", "b"]);
    assert_eq!(names(None, Some("b"), 2), ["c", "d"]);
    assert_eq!(
        names(Some("1"), None, 10),
        ["b", "c"],
        "routing counts as pointing"
    );
    assert_eq!(names(Some("2"), None, 10), ["a", "b"]);
    assert_eq!(names(Some(LATEST), None, 10), ["d"]);
    assert_eq!(names(Some("1"), Some("b"), 10), ["c"]);
    let err = store.list_aliases(&name("g"), None, None, 10).unwrap_err();
    assert_eq!(err.to_string(), "function `g` does not exist");
}

#[test]
fn reserved_concurrency_round_trips() {
    let (_d, store) = open();
    store.create_function(&latest("b", "a", "r")).unwrap();
    store.create_function(&latest("a", "a", "r")).unwrap();
    assert_eq!(store.get_reserved_concurrency(&name("a")).unwrap(), None);
    store
        .put_reserved_concurrency(&name("b"), Some(10))
        .unwrap();
    store.put_reserved_concurrency(&name("a"), Some(0)).unwrap();
    store
        .put_reserved_concurrency(&name("b"), Some(20))
        .unwrap();
    assert_eq!(
        store.get_reserved_concurrency(&name("b")).unwrap(),
        Some(20)
    );
    assert_eq!(
        store.all_reserved_concurrency().unwrap(),
        [(name("a"), 0), (name("b"), 20)]
    );
    store.put_reserved_concurrency(&name("b"), None).unwrap();
    assert_eq!(store.get_reserved_concurrency(&name("b")).unwrap(), None);
    assert_eq!(store.all_reserved_concurrency().unwrap(), [(name("a"), 0)]);
    let err = store
        .put_reserved_concurrency(&name("z"), Some(1))
        .unwrap_err();
    assert_eq!(err.to_string(), "function `z` does not exist");
}

#[test]
fn enqueue_needs_the_function_and_a_unique_id() {
    let (_d, store) = open();
    let err = store.enqueue_event(&event("e1", "f", 0)).unwrap_err();
    assert_eq!(err.to_string(), "function `f` does not exist");
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("e1", "f", 0)).unwrap();
    let err = store.enqueue_event(&event("e1", "f", 5)).unwrap_err();
    assert_eq!(err.to_string(), "event `e1` already exists");
    assert_eq!(store.queued_event_count().unwrap(), 1);
}

#[test]
fn lease_orders_by_due_time_then_enqueue_order() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("late", "f", 50)).unwrap();
    store.enqueue_event(&event("first", "f", 10)).unwrap();
    store.enqueue_event(&event("second", "f", 10)).unwrap();
    store.enqueue_event(&event("future", "f", 1_000)).unwrap();

    let got = store.lease_events(&n1(), 100, 30, 2).unwrap();
    assert_eq!(ids(&got), ["first", "second"]);
    assert_eq!(
        got[0].event,
        event("first", "f", 10),
        "the event comes back as queued"
    );
    assert_eq!(
        ids(&store.lease_events(&n1(), 100, 30, 10).unwrap()),
        ["late"]
    );
    assert!(
        store.lease_events(&n1(), 100, 30, 10).unwrap().is_empty(),
        "all due ones are leased"
    );
    assert!(store.lease_events(&n1(), 100, 30, 0).unwrap().is_empty());
    assert_eq!(store.queued_event_count().unwrap(), 4);
}

#[test]
fn an_expired_lease_makes_the_event_due_again() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("e", "f", 0)).unwrap();
    assert_eq!(ids(&store.lease_events(&n1(), 100, 50, 10).unwrap()), ["e"]);
    assert!(store.lease_events(&n1(), 149, 50, 10).unwrap().is_empty());
    // A crashed worker never completes; at the lease end another one gets the event.
    let again = store.lease_events(&n1(), 150, 50, 10).unwrap();
    assert_eq!(ids(&again), ["e"]);
    assert_eq!(
        again[0].event.attempts, 0,
        "an expired lease is not a counted attempt"
    );
}

#[test]
fn retry_bumps_attempts_and_backs_off() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("e", "f", 0)).unwrap();
    store.enqueue_event(&event("other", "f", 150)).unwrap();
    let first = store.lease_events(&n1(), 100, 1_000, 10).unwrap();
    assert_eq!(ids(&first), ["e"]);
    assert_eq!(
        store.retry_event(&first[0].lease, 200).unwrap(),
        Settled::Applied
    );
    assert!(store
        .lease_events(&n1(), 149, 1_000, 10)
        .unwrap()
        .is_empty());
    let got = store.lease_events(&n1(), 300, 1_000, 10).unwrap();
    assert_eq!(ids(&got), ["other", "e"], "ordered by the new due time");
    assert_eq!(got[1].event.attempts, 1);
    assert_eq!(got[1].event.not_before_ms, 200);
    assert_eq!(
        store.retry_event(&got[1].lease, 300).unwrap(),
        Settled::Applied
    );
    assert_eq!(
        store.lease_events(&n1(), 300, 1_000, 10).unwrap()[0]
            .event
            .attempts,
        2
    );
    // Retrying or completing an event that is gone is a no-op.
    let ghost = Lease {
        event_id: "ghost".into(),
        ..got[1].lease.clone()
    };
    assert_eq!(store.retry_event(&ghost, 1).unwrap(), Settled::Gone);
    assert_eq!(store.complete_event(&ghost).unwrap(), Settled::Gone);
}

#[test]
fn complete_removes_the_event() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("a", "f", 0)).unwrap();
    store.enqueue_event(&event("b", "f", 0)).unwrap();
    let leased = store.lease_events(&n1(), 10, 5, 10).unwrap();
    assert_eq!(
        store.complete_event(&leased[0].lease).unwrap(),
        Settled::Applied
    );
    assert_eq!(store.queued_event_count().unwrap(), 1);
    let again = store.lease_events(&n1(), 20, 5, 10).unwrap();
    assert_eq!(ids(&again), ["b"]);
    assert_eq!(
        store.complete_event(&again[0].lease).unwrap(),
        Settled::Applied
    );
    assert_eq!(store.queued_event_count().unwrap(), 0);
}

#[test]
fn a_lease_names_its_node_and_another_node_takes_it_once_expired() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("e", "f", 0)).unwrap();
    let first = store.lease_events(&node("a"), 100, 50, 10).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].lease.leased_by, node("a"));
    assert_eq!(first[0].lease.leased_until_ms, 150);
    assert_eq!(first[0].lease.event_id, "e");
    // While the lease lasts, no node (not even its holder) gets the event.
    assert!(store
        .lease_events(&node("b"), 149, 50, 10)
        .unwrap()
        .is_empty());
    assert!(store
        .lease_events(&node("a"), 149, 50, 10)
        .unwrap()
        .is_empty());
    // Node `a` died: at the lease's end node `b` takes the event over.
    let taken = store.lease_events(&node("b"), 150, 50, 10).unwrap();
    assert_eq!(ids(&taken), ["e"]);
    assert_eq!(taken[0].lease.leased_by, node("b"));
    assert_eq!(taken[0].lease.leased_until_ms, 200);
    assert!(taken[0].lease.token > first[0].lease.token);
    assert_eq!(
        taken[0].event.attempts, 0,
        "a lost lease is not a counted attempt"
    );
    assert_eq!(
        store.complete_event(&taken[0].lease).unwrap(),
        Settled::Applied
    );
    assert_eq!(store.queued_event_count().unwrap(), 0);
}

#[test]
fn a_stale_lease_cannot_settle_an_event_another_node_now_runs() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("e", "f", 0)).unwrap();
    let stale = store.lease_events(&node("a"), 100, 50, 10).unwrap()[0]
        .lease
        .clone();
    let current = store.lease_events(&node("b"), 150, 50, 10).unwrap()[0]
        .lease
        .clone();
    // Node `a` overran its lease and now reports: every outcome is refused, nothing changes.
    assert_eq!(store.complete_event(&stale).unwrap(), Settled::LeaseLost);
    assert_eq!(store.retry_event(&stale, 999).unwrap(), Settled::LeaseLost);
    assert_eq!(
        store.postpone_event(&stale, 999).unwrap(),
        Settled::LeaseLost
    );
    assert_eq!(store.queued_event_count().unwrap(), 1);
    assert!(
        store
            .lease_events(&node("c"), 199, 50, 10)
            .unwrap()
            .is_empty(),
        "the event is still leased to `b`, not rescheduled by `a`"
    );
    // Node `b` decides: its retry counts, with its own back-off.
    assert_eq!(store.retry_event(&current, 300).unwrap(), Settled::Applied);
    let next = store.lease_events(&node("c"), 300, 50, 10).unwrap();
    assert_eq!(next[0].event.attempts, 1);
    assert_eq!(next[0].event.not_before_ms, 300);
    // A lease that ended by a settlement settles nothing more.
    assert_eq!(store.complete_event(&current).unwrap(), Settled::LeaseLost);
    assert_eq!(
        store.complete_event(&next[0].lease).unwrap(),
        Settled::Applied
    );
    assert_eq!(store.complete_event(&stale).unwrap(), Settled::Gone);
}

#[test]
fn the_same_node_leasing_again_after_expiry_gets_a_new_lease() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("e", "f", 0)).unwrap();
    let hung = store.lease_events(&n1(), 100, 50, 10).unwrap()[0]
        .lease
        .clone();
    let fresh = store.lease_events(&n1(), 150, 50, 10).unwrap()[0]
        .lease
        .clone();
    assert_eq!(hung.leased_by, fresh.leased_by);
    assert_ne!(hung.token, fresh.token);
    assert_eq!(
        store.complete_event(&hung).unwrap(),
        Settled::LeaseLost,
        "the hung invocation's outcome must not end the fresh one's event"
    );
    assert_eq!(store.complete_event(&fresh).unwrap(), Settled::Applied);
}

#[test]
fn an_expired_lease_nobody_replaced_still_settles() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("e", "f", 0)).unwrap();
    let lease = store.lease_events(&n1(), 100, 50, 10).unwrap()[0]
        .lease
        .clone();
    // Long past the lease, but no other node took the event: the result still counts, so
    // the event does not run again for nothing.
    assert_eq!(store.postpone_event(&lease, 500).unwrap(), Settled::Applied);
    let again = store.lease_events(&node("b"), 500, 50, 10).unwrap();
    assert_eq!(ids(&again), ["e"]);
    assert_eq!(again[0].event.attempts, 0, "a postponement is no attempt");
}

#[test]
fn reclaiming_ends_only_the_nodes_own_leases() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    for id in ["a1", "a2", "b1", "free"] {
        store.enqueue_event(&event(id, "f", 0)).unwrap();
    }
    let a = store.lease_events(&node("a"), 100, 1_000, 2).unwrap();
    let b = store.lease_events(&node("b"), 100, 1_000, 1).unwrap();
    assert_eq!(ids(&a), ["a1", "a2"]);
    assert_eq!(ids(&b), ["b1"]);
    // Node `a` restarts: its leases end at once; `b`'s last until they expire.
    assert_eq!(store.reclaim_leases(&node("a")).unwrap(), 2);
    assert_eq!(store.reclaim_leases(&node("a")).unwrap(), 0);
    let again = store.lease_events(&node("a"), 101, 1_000, 10).unwrap();
    assert_eq!(ids(&again), ["a1", "a2", "free"]);
    // The previous run's leases settle nothing.
    assert_eq!(
        store.complete_event(&a[0].lease).unwrap(),
        Settled::LeaseLost
    );
    assert_eq!(store.complete_event(&b[0].lease).unwrap(), Settled::Applied);
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

/// What a newer Warden node would do to a stored record: add a field this build does not
/// know (`SET record = json_set(record, '$.field', value)` on the row matching `filter`).
fn newer_node_adds(store: &SqliteStore, table: &str, filter: &str, field: &str, value: &str) {
    let n = lock(&store.writer)
        .execute(
            &format!("UPDATE {table} SET record = json_set(record, '$.{field}', json(?1)) WHERE {filter}"),
            params![value],
        )
        .unwrap();
    assert_eq!(n, 1);
}

fn stored_record(store: &SqliteStore, table: &str, filter: &str) -> serde_json::Value {
    let json: String = lock(&store.reader)
        .query_row(
            &format!("SELECT record FROM {table} WHERE {filter}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

#[test]
fn records_carry_their_version() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    store
        .create_alias(&alias("f", "live", LATEST, "a1"))
        .unwrap();
    let v = stored_record(&store, "versions", "version_num = 0");
    assert_eq!(v[record::VERSION_FIELD], record::RECORD_VERSION);
    let a = stored_record(&store, "aliases", "name = 'live'");
    assert_eq!(a[record::VERSION_FIELD], record::RECORD_VERSION);
}

#[test]
fn a_newer_nodes_field_survives_read_modify_write_and_publish() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    newer_node_adds(
        &store,
        "versions",
        "version_num = 0",
        "kms_key_arn",
        r#""arn:aws:kms:us-east-1:000000000000:key/k""#,
    );
    newer_node_adds(
        &store,
        "versions",
        "version_num = 0",
        "snap_start",
        r#"{"apply_on":"None"}"#,
    );

    // This build reads past the fields it does not know...
    let mut current = store.get_version(&name("f"), LATEST).unwrap().unwrap();
    assert_eq!(current.revision_id, "r1");
    // ...and an UpdateFunctionConfiguration here keeps them.
    current.environment.insert("K".into(), "v".into());
    current.revision_id = "r2".into();
    store.update_latest(&current, Some("r1")).unwrap();
    let stored = stored_record(&store, "versions", "version_num = 0");
    assert_eq!(
        stored["kms_key_arn"],
        "arn:aws:kms:us-east-1:000000000000:key/k"
    );
    assert_eq!(stored["snap_start"]["apply_on"], "None");
    assert_eq!(
        stored["environment"]["K"], "v",
        "the change itself is stored"
    );
    assert_eq!(stored["revision_id"], "r2");
    assert_eq!(
        store.get_version(&name("f"), LATEST).unwrap().unwrap(),
        current
    );

    // Publishing copies them into the version.
    let v1 = publish(&store, "f", "p1");
    assert_eq!(v1.version, "1");
    let stored = stored_record(&store, "versions", "version_num = 1");
    assert_eq!(
        stored["kms_key_arn"],
        "arn:aws:kms:us-east-1:000000000000:key/k"
    );
    assert_eq!(stored["snap_start"]["apply_on"], "None");
}

#[test]
fn a_change_only_a_newer_node_understands_is_not_deduplicated_away() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    assert_eq!(publish(&store, "f", "p1").version, "1");
    // A newer node changes only a field this build does not know...
    newer_node_adds(
        &store,
        "versions",
        "version_num = 0",
        "tracing",
        r#""Active""#,
    );
    // ...and this build rewrites `$LATEST` without changing anything it knows.
    let same = store.get_version(&name("f"), LATEST).unwrap().unwrap();
    store.update_latest(&same, None).unwrap();
    let v2 = publish(&store, "f", "p2");
    assert_eq!(
        v2.version, "2",
        "a version differing in a newer field is new"
    );
    assert_eq!(
        stored_record(&store, "versions", "version_num = 2")["tracing"],
        "Active"
    );
    // Publishing again without any change still returns the newest version.
    store.update_latest(&same, None).unwrap();
    assert_eq!(publish(&store, "f", "p3").version, "2");
}

#[test]
fn a_newer_nodes_alias_field_survives_an_alias_update() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    publish(&store, "f", "p1");
    store
        .create_alias(&alias("f", "live", LATEST, "a1"))
        .unwrap();
    newer_node_adds(&store, "aliases", "name = 'live'", "provisioned", "5");
    let mut live = store.get_alias(&name("f"), "live").unwrap().unwrap();
    live.function_version = "1".into();
    live.revision_id = "a2".into();
    store.update_alias(&live, Some("a1")).unwrap();
    let stored = stored_record(&store, "aliases", "name = 'live'");
    assert_eq!(stored["provisioned"], 5);
    assert_eq!(stored["function_version"], "1");
    assert_eq!(store.get_alias(&name("f"), "live").unwrap().unwrap(), live);
}

#[test]
fn a_record_only_a_newer_node_may_read_is_refused_and_left_alone() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r1")).unwrap();
    let floor = (record::RECORD_VERSION + 1).to_string();
    newer_node_adds(
        &store,
        "versions",
        "version_num = 0",
        record::MIN_READER_FIELD,
        &floor,
    );
    newer_node_adds(
        &store,
        "versions",
        "version_num = 0",
        "environment_sealed",
        "true",
    );
    let before = stored_record(&store, "versions", "version_num = 0");
    let refused = |e: StoreError| matches!(e, StoreError::RecordTooNew { .. });
    assert!(refused(store.get_version(&name("f"), LATEST).unwrap_err()));
    assert!(refused(store.list_functions(None, 10).unwrap_err()));
    assert!(refused(
        store
            .update_latest(&latest("f", "b", "r2"), None)
            .unwrap_err()
    ));
    assert!(refused(
        store
            .publish_version(&name("f"), None, None, "p1", 1)
            .unwrap_err()
    ));
    assert_eq!(stored_record(&store, "versions", "version_num = 0"), before);
    let err = store.get_version(&name("f"), LATEST).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "stored record for version `$LATEST` of function `f` needs a Warden that reads record version {floor} (this one reads up to {})",
            record::RECORD_VERSION
        )
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

#[test]
fn logs_are_ordered_per_function_and_resume_after_seq() {
    let (_d, store) = open();
    let line = |f: &str, msg: &str| log_line(f, 42, msg, LogSource::Function);
    store
        .append_logs(&[line("f", "one"), line("g", "other"), line("f", "two")])
        .unwrap();
    store.append_logs(&[]).unwrap();
    store.append_logs(&[line("f", "three")]).unwrap();

    let all = store.read_logs(&name("f"), 0, 100).unwrap();
    let messages: Vec<_> = all.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages, ["one", "two", "three"]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(all[0].seq > 0, "input seq is ignored");
    assert_eq!(all[0].request_id.as_deref(), Some("req"));
    assert_eq!(all[0].timestamp_ms, 42);

    let rest = store.read_logs(&name("f"), all[0].seq, 1).unwrap();
    assert_eq!(rest[0].message, "two");
    let rest = store.read_logs(&name("f"), all[2].seq, 10).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        store.read_logs(&name("g"), 0, 10).unwrap()[0].message,
        "other"
    );
}

#[test]
fn logs_keep_who_wrote_them() {
    let (_d, store) = open();
    store
        .append_logs(&[
            log_line("f", 1, "START RequestId: r", LogSource::Platform),
            log_line("f", 2, "REPORT RequestId: forged", LogSource::Function),
        ])
        .unwrap();
    let sources: Vec<_> = store
        .read_logs(&name("f"), 0, 10)
        .unwrap()
        .into_iter()
        .map(|r| (r.message, r.source))
        .collect();
    assert_eq!(
        sources,
        [
            ("START RequestId: r".to_owned(), LogSource::Platform),
            ("REPORT RequestId: forged".to_owned(), LogSource::Function)
        ]
    );
}

fn retention(max_age_ms: i64, max_bytes: u64) -> LogRetention {
    LogRetention {
        max_age_ms,
        max_bytes,
    }
}

#[test]
fn prune_logs_drops_expired_lines_only() {
    let (_d, store) = open();
    let line = |ts: i64| log_line("f", ts, &ts.to_string(), LogSource::Function);
    store.append_logs(&[line(1), line(5), line(9)]).unwrap();
    // At time 15 with a 10 ms retention, lines before 5 are expired.
    let report = store.prune_logs(&retention(10, u64::MAX), 15).unwrap();
    assert_eq!(report.expired, 1);
    assert_eq!(report.evicted, 0);
    let left: Vec<_> = store
        .read_logs(&name("f"), 0, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.timestamp_ms)
        .collect();
    assert_eq!(left, [5, 9]);
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
fn settings_round_trip() {
    let (_d, store) = open();
    assert_eq!(store.get_setting("k").unwrap(), None);
    store.put_setting("k", "v1").unwrap();
    store.put_setting("k", "v2").unwrap();
    assert_eq!(store.get_setting("k").unwrap().as_deref(), Some("v2"));
}

#[test]
fn concurrent_writers_and_readers_do_not_interfere() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    // As the engine holds it: a shared trait object.
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    store
                        .enqueue_event(&event(&format!("{t}-{i}"), "f", 0))
                        .unwrap();
                    assert!(store.get_version(&name("f"), LATEST).unwrap().is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.queued_event_count().unwrap(), 100);
}

/// One step of the queue proptest. Two nodes share the queue; settlements present any
/// lease ever granted, current or stale.
#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        delay: i64,
    },
    Lease {
        node: usize,
        lease_ms: i64,
        max: usize,
    },
    Retry {
        pick: usize,
        delay: i64,
    },
    Postpone {
        pick: usize,
        delay: i64,
    },
    Complete {
        pick: usize,
    },
    Reclaim {
        node: usize,
    },
    Tick {
        ms: i64,
    },
}

const NODES: [&str; 2] = ["n1", "n2"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0i64..30).prop_map(|delay| Op::Enqueue { delay }),
        (0usize..2, 1i64..40, 0usize..4).prop_map(|(node, lease_ms, max)| Op::Lease {
            node,
            lease_ms,
            max
        }),
        (any::<usize>(), 0i64..30).prop_map(|(pick, delay)| Op::Retry { pick, delay }),
        (any::<usize>(), 0i64..30).prop_map(|(pick, delay)| Op::Postpone { pick, delay }),
        any::<usize>().prop_map(|pick| Op::Complete { pick }),
        (0usize..2).prop_map(|node| Op::Reclaim { node }),
        (1i64..25).prop_map(|ms| Op::Tick { ms }),
    ]
}

/// The model's view of one queued event.
#[derive(Debug, Clone)]
struct ModelEvent {
    id: String,
    order: u64,
    attempts: u32,
    not_before_ms: i64,
    leased_until_ms: Option<i64>,
    /// The current lease's node and token.
    holder: Option<(String, i64)>,
    /// Leases granted so far.
    tokens: i64,
}

/// What settling `lease` does in the model: the expected outcome, and the current event.
fn model_settle<'m>(
    model: &'m mut [ModelEvent],
    lease: &Lease,
) -> (Settled, Option<&'m mut ModelEvent>) {
    match model.iter_mut().find(|e| e.id == lease.event_id) {
        None => (Settled::Gone, None),
        Some(e) if e.holder == Some((lease.leased_by.to_string(), lease.token)) => {
            (Settled::Applied, Some(e))
        }
        Some(_) => (Settled::LeaseLost, None),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn queue_matches_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let (_d, store) = open();
        store.create_function(&latest("f", "a", "r")).unwrap();
        let mut model: Vec<ModelEvent> = Vec::new();
        let mut granted: Vec<Lease> = Vec::new();
        let mut now = 1_000i64;
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Enqueue { delay } => {
                    let id = format!("e{next}");
                    store.enqueue_event(&event(&id, "f", now + delay)).unwrap();
                    model.push(ModelEvent {
                        id, order: next, attempts: 0, not_before_ms: now + delay,
                        leased_until_ms: None, holder: None, tokens: 0,
                    });
                    next += 1;
                }
                Op::Lease { node: n, lease_ms, max } => {
                    let mut due: Vec<&mut ModelEvent> = model
                        .iter_mut()
                        .filter(|e| e.not_before_ms <= now && e.leased_until_ms.is_none_or(|t| t <= now))
                        .collect();
                    due.sort_by_key(|e| (e.not_before_ms, e.order));
                    let expected: Vec<(String, u32, i64, String, i64, i64)> = due
                        .into_iter()
                        .take(max)
                        .map(|e| {
                            e.leased_until_ms = Some(now + lease_ms);
                            e.tokens += 1;
                            e.holder = Some((NODES[n].to_owned(), e.tokens));
                            (e.id.clone(), e.attempts, e.not_before_ms, NODES[n].to_owned(), now + lease_ms, e.tokens)
                        })
                        .collect();
                    let leased = store.lease_events(&node(NODES[n]), now, lease_ms, max).unwrap();
                    let got: Vec<(String, u32, i64, String, i64, i64)> = leased
                        .iter()
                        .map(|l| {
                            prop_assert_eq!(&l.lease.event_id, &l.event.id);
                            Ok((l.event.id.clone(), l.event.attempts, l.event.not_before_ms,
                                l.lease.leased_by.to_string(), l.lease.leased_until_ms, l.lease.token))
                        })
                        .collect::<Result<_, TestCaseError>>()?;
                    prop_assert_eq!(got, expected);
                    granted.extend(leased.into_iter().map(|l| l.lease));
                }
                Op::Retry { pick, delay } | Op::Postpone { pick, delay } => {
                    if granted.is_empty() {
                        continue;
                    }
                    let lease = granted[pick % granted.len()].clone();
                    let retry = matches!(op, Op::Retry { .. });
                    let got = if retry {
                        store.retry_event(&lease, now + delay).unwrap()
                    } else {
                        store.postpone_event(&lease, now + delay).unwrap()
                    };
                    let (expected, current) = model_settle(&mut model, &lease);
                    if let Some(e) = current {
                        e.attempts += u32::from(retry);
                        e.not_before_ms = now + delay;
                        e.leased_until_ms = None;
                        e.holder = None;
                    }
                    prop_assert_eq!(got, expected);
                }
                Op::Complete { pick } => {
                    if granted.is_empty() {
                        continue;
                    }
                    let lease = granted[pick % granted.len()].clone();
                    let got = store.complete_event(&lease).unwrap();
                    let (expected, _) = model_settle(&mut model, &lease);
                    if expected == Settled::Applied {
                        model.retain(|e| e.id != lease.event_id);
                    }
                    prop_assert_eq!(got, expected);
                }
                Op::Reclaim { node: n } => {
                    let mut expected = 0;
                    for e in model.iter_mut().filter(|e| e.holder.as_ref().is_some_and(|(h, _)| h == NODES[n])) {
                        e.holder = None;
                        e.leased_until_ms = None;
                        expected += 1;
                    }
                    prop_assert_eq!(store.reclaim_leases(&node(NODES[n])).unwrap(), expected);
                }
                Op::Tick { ms } => now += ms,
            }
            prop_assert_eq!(store.queued_event_count().unwrap(), model.len() as u64);
        }
        // Far in the future everything is due exactly once, in model order.
        let far = i64::MAX / 4;
        let mut rest: Vec<_> = model.iter().map(|e| (e.not_before_ms, e.order, e.id.clone())).collect();
        rest.sort();
        let got: Vec<String> = store.lease_events(&n1(), far, 1, 1_000).unwrap().into_iter().map(|e| e.event.id).collect();
        prop_assert_eq!(got, rest.into_iter().map(|(_, _, id)| id).collect::<Vec<_>>());
    }
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

#[test]
fn concurrent_queue_writes_keep_their_own_outcomes() {
    let (_d, store) = open();
    store.create_function(&latest("f", "a", "r")).unwrap();
    let store = std::sync::Arc::new(store);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut refused = 0;
                for i in 0..20 {
                    // Odd threads reuse the ids of the even ones: exactly one of each pair wins.
                    let id = format!("{}-{i}", t / 2);
                    let function = if i == 19 { "missing" } else { "f" };
                    match store.enqueue_event(&event(&id, function, 0)) {
                        Ok(()) => {}
                        Err(StoreError::AlreadyExists(_)) => refused += 1,
                        Err(StoreError::NotFound(what)) => assert_eq!(what, "function `missing`"),
                        Err(e) => panic!("{e}"),
                    }
                }
                refused
            })
        })
        .collect();
    let refused: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(refused, 4 * 19);
    assert_eq!(store.queued_event_count().unwrap(), 4 * 19);
}

#[test]
fn plain_environments_of_an_older_warden_are_sealed_and_publishing_still_deduplicates() {
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

fn scan(store: &SqliteStore, range: &EventRange<'_>) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    store
        .scan_events(range, &mut |e| {
            out.push(StoredEvent::from(e));
            Scan::Continue
        })
        .unwrap();
    out
}

fn streams(prefix: &str) -> StreamQuery<'_> {
    StreamQuery {
        prefix,
        limit: 10,
        ..StreamQuery::default()
    }
}

fn whole(group: &LogGroup) -> EventRange<'_> {
    EventRange {
        group,
        stream: None,
        start_ms: None,
        end_ms: None,
        cursor: Cursor::After(0),
    }
}

#[test]
fn a_functions_lines_make_its_log_group_and_streams() {
    let (_d, store) = open();
    let mut a = log_line("f", 10, "one", LogSource::Function);
    a.stream = Some("2026/12/04/[$LATEST]aaa".into());
    let mut b = log_line("f", 30, "two", LogSource::Platform);
    b.stream = Some("2026/12/04/[$LATEST]aaa".into());
    let mut c = log_line("f", 20, "three", LogSource::Function);
    c.stream = Some("2026/12/04/[$LATEST]bbb".into());
    store.append_logs(&[a, b, c]).unwrap();

    let group = LogGroup::from_name("/aws/lambda/f");
    assert_eq!(group, LogGroup::Function(name("f")));
    let info = store.log_group(&group).unwrap().unwrap();
    assert_eq!((info.created_ms, info.retention_days), (10, None));
    let streams = store.list_log_streams(&group, &streams("")).unwrap();
    let spans: Vec<_> = streams
        .iter()
        .map(|s| (s.name.as_str(), s.first_event_ms, s.last_event_ms))
        .collect();
    assert_eq!(
        spans,
        [
            ("2026/12/04/[$LATEST]aaa", Some(10), Some(30)),
            ("2026/12/04/[$LATEST]bbb", Some(20), Some(20))
        ]
    );
    let only_b = EventRange {
        stream: Some("2026/12/04/[$LATEST]bbb"),
        ..whole(&group)
    };
    let events = scan(&store, &only_b);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message, "three");
    assert_eq!(
        events[0].ingestion_ms, 20,
        "a function line is stored when made"
    );
    // The platform line keeps saying who wrote it.
    let all = scan(&store, &whole(&group));
    assert_eq!(all[1].source, LogSource::Platform);
    // Backwards from the end, newest first.
    let back = scan(
        &store,
        &EventRange {
            cursor: Cursor::Before(i64::MAX),
            ..whole(&group)
        },
    );
    let messages: Vec<_> = back.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["three", "two", "one"]);
    // A time window is half open.
    let window = scan(
        &store,
        &EventRange {
            start_ms: Some(20),
            end_ms: Some(30),
            ..whole(&group)
        },
    );
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].message, "three");
}

#[test]
fn custom_groups_hold_their_own_streams_and_events_apart_from_functions() {
    let (_d, store) = open();
    let app = LogGroup::from_name("app");
    // A custom group named like a function stays apart from that function's group.
    let f_named = LogGroup::from_name("f");
    assert_eq!(f_named, LogGroup::Custom("f".into()));
    assert!(store.create_log_group(&app, 5).unwrap());
    assert!(!store.create_log_group(&app, 6).unwrap(), "it exists");
    assert!(store.create_log_group(&f_named, 5).unwrap());
    // The function's own group, made by its lines below, is not counted.
    assert_eq!(store.custom_log_group_count().unwrap(), 2);
    assert!(store.create_log_stream(&app, "s1", 7).unwrap());
    assert!(!store.create_log_stream(&app, "s1", 8).unwrap());
    store
        .append_events(&app, "s1", &[(100, "a".into()), (90, "b".into())], 200)
        .unwrap();
    store
        .append_logs(&[log_line("f", 1, "function line", LogSource::Function)])
        .unwrap();

    let events = scan(&store, &whole(&app));
    let got: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.message.as_str(),
                e.timestamp_ms,
                e.ingestion_ms,
                e.stream.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("a", 100, 200, Some("s1")), ("b", 90, 200, Some("s1"))]
    );
    assert!(scan(&store, &whole(&f_named)).is_empty());
    let stream = &store.list_log_streams(&app, &streams("s")).unwrap()[0];
    assert_eq!(
        (
            stream.created_ms,
            stream.first_event_ms,
            stream.last_event_ms,
            stream.last_ingestion_ms
        ),
        (7, Some(90), Some(100), Some(200))
    );

    let names: Vec<_> = store
        .list_log_groups("", "", None, 10)
        .unwrap()
        .into_iter()
        .map(|g| g.group.name())
        .collect();
    assert_eq!(names, ["/aws/lambda/f", "app", "f"]);
    let page: Vec<_> = store
        .list_log_groups("", "", Some("/aws/lambda/f"), 1)
        .unwrap()
        .into_iter()
        .map(|g| g.group.name())
        .collect();
    assert_eq!(page, ["app"]);
    assert_eq!(
        store.list_log_groups("/aws/", "", None, 10).unwrap().len(),
        1
    );
    let matching: Vec<_> = store
        .list_log_groups("", "LAMB", None, 10)
        .unwrap()
        .into_iter()
        .map(|g| g.group.name())
        .collect();
    assert_eq!(matching, ["/aws/lambda/f"], "a pattern ignores case");

    store.create_log_stream(&app, "s0", 9).unwrap();
    let newest_first: Vec<_> = store
        .list_log_streams(
            &app,
            &StreamQuery {
                by_last_event: true,
                descending: true,
                ..streams("")
            },
        )
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(newest_first, ["s1", "s0"]);
    let second: Vec<_> = store
        .list_log_streams(
            &app,
            &StreamQuery {
                offset: 1,
                ..streams("")
            },
        )
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(second, ["s1"]);
    assert!(store.delete_log_stream(&app, "s1").unwrap());
    assert!(scan(&store, &whole(&app)).is_empty());
    assert!(store.delete_log_group(&app).unwrap());
    assert!(!store.delete_log_group(&app).unwrap());
    assert!(store.log_group(&app).unwrap().is_none());
    // The function's lines were not touched.
    assert_eq!(store.read_logs(&name("f"), 0, 10).unwrap().len(), 1);
}

#[test]
fn a_groups_retention_deletes_its_old_events_at_once_and_on_every_prune() {
    let (_d, store) = open();
    let app = LogGroup::Custom("app".into());
    let other = LogGroup::Custom("other".into());
    let day = 24 * 3600 * 1000;
    let now = 100 * day;
    for g in [&app, &other] {
        store.create_log_group(g, 0).unwrap();
        store.create_log_stream(g, "s", 0).unwrap();
        store
            .append_events(
                g,
                "s",
                &[(now - 3 * day, "old".into()), (now, "new".into())],
                now,
            )
            .unwrap();
    }
    assert!(store.set_log_retention(&app, Some(1), now).unwrap());
    let left: Vec<_> = scan(&store, &whole(&app))
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(left, ["new"]);
    assert_eq!(
        scan(&store, &whole(&other)).len(),
        2,
        "other groups keep theirs"
    );
    assert_eq!(
        store.log_group(&app).unwrap().unwrap().retention_days,
        Some(1)
    );
    assert!(!store
        .set_log_retention(&LogGroup::Custom("missing".into()), Some(1), now)
        .unwrap());

    // Later, the pruner applies it to what has aged since.
    let report = store
        .prune_logs(&retention(i64::MAX / 2, u64::MAX), now + 2 * day)
        .unwrap();
    assert_eq!(report.expired, 1);
    assert!(scan(&store, &whole(&app)).is_empty());
    assert!(
        store
            .list_log_streams(&app, &streams(""))
            .unwrap()
            .is_empty(),
        "a stream whose events all expired goes"
    );
    assert!(store.set_log_retention(&app, None, now).unwrap());
    assert_eq!(store.log_group(&app).unwrap().unwrap().retention_days, None);
}

#[test]
fn a_scan_stops_when_told() {
    let (_d, store) = open();
    let lines: Vec<_> = (0..10)
        .map(|i| log_line("f", i, &i.to_string(), LogSource::Function))
        .collect();
    store.append_logs(&lines).unwrap();
    let group = LogGroup::Function(name("f"));
    let mut seen = 0;
    store
        .scan_events(&whole(&group), &mut |_| {
            seen += 1;
            if seen == 3 {
                Scan::Stop
            } else {
                Scan::Continue
            }
        })
        .unwrap();
    assert_eq!(seen, 3);
}

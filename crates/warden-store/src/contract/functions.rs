//! The contract of [`crate::FunctionStore`], [`crate::LayerStore`] and [`crate::EventQueue`] on every backend: the
//! tests SQLite had, run on each backend.

use std::collections::BTreeMap;

use warden_types::{FunctionName, FunctionVersion, NodeId, LATEST};

use proptest::prelude::*;
use warden_types::layer::{LayerName, LayerVersion};

use super::{Backend, Fixture};
use crate::record;
use crate::{
    Alias, Lease, LeasedEvent, LogRecord, LogSource, QueuedEvent, Settled, Store, StoreError,
};
use raw::{raw_execute, raw_text};

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

fn publish(store: &dyn Store, function: &str, rev: &str) -> FunctionVersion {
    store
        .publish_version(&name(function), None, None, rev, 100)
        .unwrap()
}

fn versions(store: &dyn Store, function: &str) -> Vec<String> {
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

fn create_and_get_function(f: &Fixture) {
    let store = &*f.store;
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

fn create_function_refuses_a_numbered_version(f: &Fixture) {
    let store = &*f.store;
    let mut f = latest("f", "sha", "r1");
    f.version = "1".to_owned();
    let err = store.create_function(&f).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid record: a new function must be created as `$LATEST`, not version `1`"
    );
}

fn update_latest_checks_the_revision(f: &Fixture) {
    let store = &*f.store;
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

fn publish_numbers_versions_and_copies_latest(f: &Fixture) {
    let store = &*f.store;
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
    let v2 = publish(store, "f", "p2");
    assert_eq!(v2.version, "2");
    assert_eq!(
        v2.description, "",
        "without a description the function's is kept"
    );
    assert_eq!(versions(store, "f"), ["$LATEST", "1", "2"]);
}

fn publish_checks_the_revision_and_existence(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r1")).unwrap();
    let err = store
        .publish_version(&name("f"), None, Some("r0"), "p1", 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::RevisionMismatch { .. }), "{err}");
    assert_eq!(versions(store, "f"), ["$LATEST"]);
    let err = store
        .publish_version(&name("g"), None, None, "p1", 1)
        .unwrap_err();
    assert_eq!(err.to_string(), "function `g` does not exist");
}

fn publish_without_changes_returns_the_newest_version(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r1")).unwrap();
    let v1 = publish(store, "f", "p1");
    let again = publish(store, "f", "p2");
    assert_eq!(again, v1, "same code and configuration: no new version");

    // A new revision id alone is not a change.
    store.update_latest(&latest("f", "a", "r2"), None).unwrap();
    assert_eq!(publish(store, "f", "p3").version, "1");

    // A configuration change is.
    let mut changed = latest("f", "a", "r3");
    changed.environment.insert("K".into(), "V".into());
    store.update_latest(&changed, None).unwrap();
    assert_eq!(publish(store, "f", "p4").version, "2");

    // So is new code, and going back to old code after that too.
    store.update_latest(&latest("f", "b", "r4"), None).unwrap();
    assert_eq!(publish(store, "f", "p5").version, "3");
    store.update_latest(&latest("f", "a", "r5"), None).unwrap();
    assert_eq!(publish(store, "f", "p6").version, "4");
}

fn version_numbers_are_never_reused(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r1")).unwrap();
    publish(store, "f", "p1");
    store.update_latest(&latest("f", "b", "r2"), None).unwrap();
    publish(store, "f", "p2");
    assert!(store.delete_function(&name("f"), Some("2")).unwrap());
    assert!(!store.delete_function(&name("f"), Some("2")).unwrap());
    assert_eq!(versions(store, "f"), ["$LATEST", "1"]);

    // $LATEST still differs from version 1, so this is a new version: 3, not 2 again.
    assert_eq!(publish(store, "f", "p3").version, "3");
    assert!(store.delete_function(&name("f"), Some("3")).unwrap());
    assert!(store.delete_function(&name("f"), Some("1")).unwrap());
    assert_eq!(publish(store, "f", "p4").version, "4");
}

fn deleting_latest_alone_is_a_conflict(f: &Fixture) {
    let store = &*f.store;
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

fn deleting_a_function_removes_everything_of_it(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r1")).unwrap();
    store.create_function(&latest("g", "b", "r1")).unwrap();
    publish(store, "f", "p1");
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
    assert_eq!(publish(store, "f", "p1").version, "1");
    assert!(store
        .list_aliases(&name("f"), None, None, 10)
        .unwrap()
        .is_empty());
}

fn list_functions_paginates_by_name(f: &Fixture) {
    let store = &*f.store;
    for f in ["c", "a", "e", "b", "d"] {
        store.create_function(&latest(f, "s", "r")).unwrap();
    }
    publish(store, "a", "p");
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

fn list_versions_paginates_latest_first_then_numbers(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "s0", "r")).unwrap();
    for i in 1..=11 {
        store
            .update_latest(&latest("f", &format!("s{i}"), "r"), None)
            .unwrap();
        publish(store, "f", "p");
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

fn referenced_code_lists_every_version_sha_once(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r")).unwrap();
    publish(store, "f", "p");
    store.update_latest(&latest("f", "b", "r"), None).unwrap();
    store.create_function(&latest("g", "a", "r")).unwrap();
    assert_eq!(store.referenced_code().unwrap(), ["a", "b"]);
    store.delete_function(&name("f"), Some("1")).unwrap();
    store.delete_function(&name("g"), None).unwrap();
    assert_eq!(store.referenced_code().unwrap(), ["b"]);
}

fn alias_lifecycle(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r")).unwrap();
    publish(store, "f", "p1");
    store.update_latest(&latest("f", "b", "r"), None).unwrap();
    publish(store, "f", "p2");

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

fn aliases_need_an_existing_function_and_version(f: &Fixture) {
    let store = &*f.store;
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
    publish(store, "f", "p");
    store.create_alias(&alias("f", "live", "1", "a")).unwrap();
    let err = store
        .update_alias(&alias("f", "live", "9", "b"), Some("a"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "version `9` of function `f` does not exist"
    );
}

fn deleting_a_version_an_alias_uses_is_a_conflict(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r")).unwrap();
    publish(store, "f", "p1");
    store.update_latest(&latest("f", "b", "r"), None).unwrap();
    publish(store, "f", "p2");
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

fn list_aliases_filters_and_paginates(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r")).unwrap();
    publish(store, "f", "p1");
    store.update_latest(&latest("f", "b", "r"), None).unwrap();
    publish(store, "f", "p2");
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

fn reserved_concurrency_round_trips(f: &Fixture) {
    let store = &*f.store;
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

fn enqueue_needs_the_function_and_a_unique_id(f: &Fixture) {
    let store = &*f.store;
    let err = store.enqueue_event(&event("e1", "f", 0)).unwrap_err();
    assert_eq!(err.to_string(), "function `f` does not exist");
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.enqueue_event(&event("e1", "f", 0)).unwrap();
    let err = store.enqueue_event(&event("e1", "f", 5)).unwrap_err();
    assert_eq!(err.to_string(), "event `e1` already exists");
    assert_eq!(store.queued_event_count().unwrap(), 1);
}

fn lease_orders_by_due_time_then_enqueue_order(f: &Fixture) {
    let store = &*f.store;
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

fn an_expired_lease_makes_the_event_due_again(f: &Fixture) {
    let store = &*f.store;
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

fn retry_bumps_attempts_and_backs_off(f: &Fixture) {
    let store = &*f.store;
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

fn complete_removes_the_event(f: &Fixture) {
    let store = &*f.store;
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

fn a_lease_names_its_node_and_another_node_takes_it_once_expired(f: &Fixture) {
    let store = &*f.store;
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

fn a_stale_lease_cannot_settle_an_event_another_node_now_runs(f: &Fixture) {
    let store = &*f.store;
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

fn the_same_node_leasing_again_after_expiry_gets_a_new_lease(f: &Fixture) {
    let store = &*f.store;
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

fn an_expired_lease_nobody_replaced_still_settles(f: &Fixture) {
    let store = &*f.store;
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

fn reclaiming_ends_only_the_nodes_own_leases(f: &Fixture) {
    let store = &*f.store;
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

fn settings_round_trip(f: &Fixture) {
    let store = &*f.store;
    assert_eq!(store.get_setting("k").unwrap(), None);
    store.put_setting("k", "v1").unwrap();
    store.put_setting("k", "v2").unwrap();
    assert_eq!(store.get_setting("k").unwrap().as_deref(), Some("v2"));
}

fn concurrent_writers_and_readers_do_not_interfere(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r")).unwrap();
    // As the engine holds it: a shared trait object.
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::clone(&f.store);
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

fn concurrent_queue_writes_keep_their_own_outcomes(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r")).unwrap();
    let store = std::sync::Arc::clone(&f.store);
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

/// Two nodes (two stores on one database) create one name at once: exactly one wins.
fn two_nodes_creating_one_function_make_it_once(f: &Fixture) {
    let other = f.reopen();
    for round in 0..10 {
        let fname = format!("race-{round}");
        let (a, b) = (
            std::sync::Arc::clone(&f.store),
            std::sync::Arc::clone(&other),
        );
        let (na, nb) = (fname.clone(), fname.clone());
        let ta = std::thread::spawn(move || a.create_function(&latest(&na, "a", "r1")));
        let tb = std::thread::spawn(move || b.create_function(&latest(&nb, "b", "r2")));
        let results = [ta.join().unwrap(), tb.join().unwrap()];
        let won = results.iter().filter(|r| r.is_ok()).count();
        let lost = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::AlreadyExists(_))))
            .count();
        assert_eq!((won, lost), (1, 1), "{results:?}");
    }
}

/// Two nodes publishing one function at once get distinct numbers.
fn two_nodes_publishing_at_once_get_distinct_numbers(f: &Fixture) {
    let other = f.reopen();
    f.store.create_function(&latest("f", "a", "r")).unwrap();
    let mut handles = Vec::new();
    for (i, store) in [std::sync::Arc::clone(&f.store), other]
        .into_iter()
        .enumerate()
    {
        handles.push(std::thread::spawn(move || {
            let mut got = Vec::new();
            for j in 0..10 {
                // A change of $LATEST between publishes, so none is deduplicated.
                let mut l = store.get_version(&name("f"), LATEST).unwrap().unwrap();
                l.description = format!("{i}-{j}");
                l.revision_id = format!("r{i}-{j}");
                loop {
                    let current = store.get_version(&name("f"), LATEST).unwrap().unwrap();
                    if store.update_latest(&l, Some(&current.revision_id)).is_ok() {
                        break;
                    }
                }
                // Guarded by this thread's own revision: a publish that succeeds copies a
                // `$LATEST` only this thread wrote, so it is never deduplicated into the
                // other thread's version.
                if let Ok(v) = store.publish_version(
                    &name("f"),
                    None,
                    Some(&l.revision_id),
                    &format!("p{i}-{j}"),
                    1,
                ) {
                    got.push(v.version);
                }
            }
            got
        }));
    }
    let mut all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let n = all.len();
    assert!(n >= 2, "too few publishes succeeded to race: {all:?}");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "a number was handed out twice");
}

/// Two nodes leasing from one queue at once never get the same event.
fn two_nodes_leasing_at_once_never_share_an_event(f: &Fixture) {
    let other = f.reopen();
    f.store.create_function(&latest("f", "a", "r")).unwrap();
    for i in 0..60 {
        f.store
            .enqueue_event(&event(&format!("e{i}"), "f", 0))
            .unwrap();
    }
    let mut handles = Vec::new();
    for (i, store) in [std::sync::Arc::clone(&f.store), other]
        .into_iter()
        .enumerate()
    {
        handles.push(std::thread::spawn(move || {
            let me = node(&format!("n{i}"));
            let mut got = Vec::new();
            loop {
                let leased = store.lease_events(&me, 10, 60_000, 3).unwrap();
                if leased.is_empty() {
                    return got;
                }
                got.extend(leased.into_iter().map(|l| l.event.id));
            }
        }));
    }
    let mut all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(all.len(), 60, "every event leased once");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 60, "an event was leased twice");
}

// ---- records shared with other Warden builds ----

/// The stored JSON record of the one row of `table` matching `filter`.
fn stored_record(f: &Fixture, table: &str, filter: &str) -> serde_json::Value {
    serde_json::from_str(&raw_text(
        f,
        &format!("SELECT record FROM {table} WHERE {filter}"),
    ))
    .unwrap()
}

/// What a newer Warden node would do to a stored record: add a field this build does not
/// know (`value` is JSON) to the one row of `table` matching `filter`.
fn newer_node_adds(f: &Fixture, table: &str, filter: &str, field: &str, value: &str) {
    let mut record = stored_record(f, table, filter);
    record[field] = serde_json::from_str(value).unwrap();
    let n = raw_execute(
        f,
        &format!("UPDATE {table} SET record = $1 WHERE {filter}"),
        &record.to_string(),
    );
    assert_eq!(n, 1);
}

fn records_carry_their_version(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r1")).unwrap();
    store
        .create_alias(&alias("f", "live", LATEST, "a1"))
        .unwrap();
    let v = stored_record(f, "versions", "version_num = 0");
    assert_eq!(v[record::VERSION_FIELD], record::RECORD_VERSION);
    let a = stored_record(f, "aliases", "name = 'live'");
    assert_eq!(a[record::VERSION_FIELD], record::RECORD_VERSION);
}

fn a_newer_nodes_field_survives_read_modify_write_and_publish(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r1")).unwrap();
    newer_node_adds(
        f,
        "versions",
        "version_num = 0",
        "kms_key_arn",
        r#""arn:aws:kms:us-east-1:000000000000:key/k""#,
    );
    newer_node_adds(
        f,
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
    let stored = stored_record(f, "versions", "version_num = 0");
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
    let v1 = publish(store, "f", "p1");
    assert_eq!(v1.version, "1");
    let stored = stored_record(f, "versions", "version_num = 1");
    assert_eq!(
        stored["kms_key_arn"],
        "arn:aws:kms:us-east-1:000000000000:key/k"
    );
    assert_eq!(stored["snap_start"]["apply_on"], "None");
}

fn a_change_only_a_newer_node_understands_is_not_deduplicated_away(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r1")).unwrap();
    assert_eq!(publish(store, "f", "p1").version, "1");
    // A newer node changes only a field this build does not know...
    newer_node_adds(f, "versions", "version_num = 0", "tracing", r#""Active""#);
    // ...and this build rewrites `$LATEST` without changing anything it knows.
    let same = store.get_version(&name("f"), LATEST).unwrap().unwrap();
    store.update_latest(&same, None).unwrap();
    let v2 = publish(store, "f", "p2");
    assert_eq!(
        v2.version, "2",
        "a version differing in a newer field is new"
    );
    assert_eq!(
        stored_record(f, "versions", "version_num = 2")["tracing"],
        "Active"
    );
    // Publishing again without any change still returns the newest version.
    store.update_latest(&same, None).unwrap();
    assert_eq!(publish(store, "f", "p3").version, "2");
}

fn a_newer_nodes_alias_field_survives_an_alias_update(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r1")).unwrap();
    publish(store, "f", "p1");
    store
        .create_alias(&alias("f", "live", LATEST, "a1"))
        .unwrap();
    newer_node_adds(f, "aliases", "name = 'live'", "provisioned", "5");
    let mut live = store.get_alias(&name("f"), "live").unwrap().unwrap();
    live.function_version = "1".into();
    live.revision_id = "a2".into();
    store.update_alias(&live, Some("a1")).unwrap();
    let stored = stored_record(f, "aliases", "name = 'live'");
    assert_eq!(stored["provisioned"], 5);
    assert_eq!(stored["function_version"], "1");
    assert_eq!(store.get_alias(&name("f"), "live").unwrap().unwrap(), live);
}

fn a_record_only_a_newer_node_may_read_is_refused_and_left_alone(f: &Fixture) {
    let store = &*f.store;
    store.create_function(&latest("f", "a", "r1")).unwrap();
    let floor = (record::RECORD_VERSION + 1).to_string();
    newer_node_adds(
        f,
        "versions",
        "version_num = 0",
        record::MIN_READER_FIELD,
        &floor,
    );
    newer_node_adds(
        f,
        "versions",
        "version_num = 0",
        "environment_sealed",
        "true",
    );
    let before = stored_record(f, "versions", "version_num = 0");
    let refused = |e: StoreError| matches!(e, StoreError::RecordTooNew { .. });
    assert!(refused(store.get_version(&name("f"), LATEST).unwrap_err()));
    assert!(refused(store.list_functions(None, 10).unwrap_err()));
    assert!(refused(
        store.list_versions(&name("f"), None, 10).unwrap_err()
    ));
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
    assert_eq!(stored_record(f, "versions", "version_num = 0"), before);
    let err = store.get_version(&name("f"), LATEST).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "stored record for version `$LATEST` of function `f` needs a Warden that reads record version {floor} (this one reads up to {})",
            record::RECORD_VERSION
        )
    );
}

/// Seals one plain environment as the KMS would (the tests need no real key).
fn fake_seal(v: &FunctionVersion) -> Result<warden_types::function::SealedEnvironment, StoreError> {
    assert_eq!(v.environment["TOKEN"], "plain-marker-93c1");
    Ok(warden_types::function::SealedEnvironment {
        key_arn: "arn:aws:kms:us-east-1:000000000000:key/k".into(),
        customer_key: false,
        ciphertext: "c2VhbGVk".into(),
    })
}

fn plain_environments_of_an_older_warden_are_sealed_and_publishing_still_deduplicates(f: &Fixture) {
    let store = &*f.store;
    let mut old = latest("old", "sha-old", "r1");
    old.environment
        .insert("TOKEN".into(), "plain-marker-93c1".into());
    store.create_function(&old).unwrap();
    let v1 = publish(store, "old", "r2");
    assert_eq!(v1.version, "1");
    // A function without an environment is left alone.
    store
        .create_function(&latest("plain", "sha", "r1"))
        .unwrap();
    let mut calls = 0;
    let sealed = store
        .seal_plaintext_environments(&mut |v| {
            calls += 1;
            fake_seal(v)
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
    assert_eq!(publish(store, "old", "r3").version, "1");
    // A second run finds nothing to seal.
    assert_eq!(
        store
            .seal_plaintext_environments(&mut |_| unreachable!("nothing is left in the clear"))
            .unwrap(),
        0
    );
    // Another store on the data (a restart, another node) finds the records sealed.
    let other = f.reopen();
    let v = other.get_version(&name("old"), "1").unwrap().unwrap();
    assert!(v.environment.is_empty() && v.sealed_environment.is_some());
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn tags_are_created_with_the_function_replaced_and_deleted_with_it(f: &Fixture) {
    let store = &*f.store;
    assert_eq!(store.get_tags(&name("f")).unwrap(), None);
    store
        .create_tagged_function(
            &latest("f", "sha", "r1"),
            &tags(&[("team", "a"), ("env", "dev")]),
        )
        .unwrap();
    assert_eq!(
        store.get_tags(&name("f")).unwrap(),
        Some(tags(&[("env", "dev"), ("team", "a")]))
    );
    // The name is taken whether or not the first function had tags.
    assert!(matches!(
        store.create_tagged_function(&latest("f", "sha", "r1"), &BTreeMap::new()),
        Err(StoreError::AlreadyExists(_))
    ));
    store
        .create_function(&latest("plain", "sha", "r1"))
        .unwrap();
    assert_eq!(
        store.get_tags(&name("plain")).unwrap(),
        Some(BTreeMap::new())
    );

    store
        .replace_tags(&name("f"), &tags(&[("team", "b")]))
        .unwrap();
    assert_eq!(
        store.get_tags(&name("f")).unwrap(),
        Some(tags(&[("team", "b")]))
    );
    assert!(matches!(
        store.replace_tags(&name("nobody"), &tags(&[("k", "v")])),
        Err(StoreError::NotFound(_))
    ));
    // A new function refused for its numbered version writes no tags either.
    let mut numbered = latest("g", "sha", "r1");
    numbered.version = "1".into();
    assert!(matches!(
        store.create_tagged_function(&numbered, &tags(&[("k", "v")])),
        Err(StoreError::InvalidRecord(_))
    ));
    assert_eq!(store.get_tags(&name("g")).unwrap(), None);

    // Deleting the function deletes its tags; a function created later under the same
    // name does not inherit them.
    assert!(store.delete_function(&name("f"), None).unwrap());
    assert_eq!(store.get_tags(&name("f")).unwrap(), None);
    store.create_function(&latest("f", "sha", "r1")).unwrap();
    assert_eq!(store.get_tags(&name("f")).unwrap(), Some(BTreeMap::new()));
    assert_eq!(
        raw_text(f, "SELECT CAST(count(*) AS TEXT) FROM function_tags"),
        "0"
    );
}

// ---- layers ----

fn layer_draft(layer: &str, sha: &str) -> LayerVersion {
    LayerVersion {
        name: LayerName::new(layer).unwrap(),
        version: 0,
        description: "d".into(),
        compatible_runtimes: vec!["python3.12".into()],
        compatible_architectures: vec![],
        license_info: None,
        code_sha256: sha.into(),
        code_size: 10,
        created_ms: 1,
    }
}

fn layer_versions_count_on_after_a_delete_and_policies_go_with_them(f: &Fixture) {
    let store = &*f.store;
    let deps = LayerName::new("deps").unwrap();
    let publish_layer = |layer: &str, sha: &str| {
        store
            .publish_layer_version(&layer_draft(layer, sha))
            .unwrap()
    };
    let first = publish_layer("deps", "a");
    assert_eq!(first.version, 1);
    assert_eq!(store.get_layer_version(&deps, 1).unwrap(), Some(first));
    assert_eq!(store.get_layer_version(&deps, 9).unwrap(), None);
    assert_eq!(publish_layer("deps", "b").version, 2);
    assert_eq!(publish_layer("other", "c").version, 1);
    assert!(store.delete_layer_version(&deps, 2).unwrap());
    assert!(!store.delete_layer_version(&deps, 2).unwrap());
    assert_eq!(store.get_layer_version(&deps, 2).unwrap(), None);
    // Numbers are never reused, even after the newest is deleted.
    assert_eq!(publish_layer("deps", "d").version, 3);
    let numbers = |before: Option<u64>, limit: usize| -> Vec<u64> {
        store
            .list_layer_versions(&deps, before, limit)
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect()
    };
    assert_eq!(numbers(None, 10), [3, 1]);
    assert_eq!(numbers(None, 1), [3]);
    assert_eq!(numbers(Some(3), 10), [1]);
    assert!(numbers(Some(1), 10).is_empty());
    let layers = |after: Option<&LayerName>| -> Vec<(String, u64)> {
        store
            .list_layers(after, 10)
            .unwrap()
            .into_iter()
            .map(|v| (v.name.to_string(), v.version))
            .collect()
    };
    assert_eq!(layers(None), [("deps".into(), 3), ("other".into(), 1)]);
    assert_eq!(layers(Some(&deps)), [("other".into(), 1)]);
    assert_eq!(store.list_layers(None, 1).unwrap().len(), 1);

    assert_eq!(store.get_layer_policy(&deps, 1).unwrap(), None);
    store.put_layer_policy(&deps, 1, Some("{}")).unwrap();
    assert_eq!(
        store.get_layer_policy(&deps, 1).unwrap().as_deref(),
        Some("{}")
    );
    store.put_layer_policy(&deps, 1, None).unwrap();
    assert_eq!(store.get_layer_policy(&deps, 1).unwrap(), None);
    assert!(matches!(
        store.put_layer_policy(&deps, 2, Some("{}")),
        Err(StoreError::NotFound(_))
    ));
    // Layer code is referenced while a version holds it.
    let referenced = store.referenced_code().unwrap();
    assert!(referenced.contains(&"a".to_owned()) && !referenced.contains(&"b".to_owned()));
}

// ---- the queue against a model ----

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

/// One run of random queue operations of two nodes against the model; the queue is empty
/// before and after (the function holding its events is deleted).
fn run_queue_model(store: &dyn Store, ops: Vec<Op>) -> Result<(), TestCaseError> {
    // A failed case (while shrinking) may have left its function behind.
    let _ = store.delete_function(&name("f"), None);
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
                    id,
                    order: next,
                    attempts: 0,
                    not_before_ms: now + delay,
                    leased_until_ms: None,
                    holder: None,
                    tokens: 0,
                });
                next += 1;
            }
            Op::Lease {
                node: n,
                lease_ms,
                max,
            } => {
                let mut due: Vec<&mut ModelEvent> = model
                    .iter_mut()
                    .filter(|e| {
                        e.not_before_ms <= now && e.leased_until_ms.is_none_or(|t| t <= now)
                    })
                    .collect();
                due.sort_by_key(|e| (e.not_before_ms, e.order));
                let expected: Vec<(String, u32, i64, String, i64, i64)> = due
                    .into_iter()
                    .take(max)
                    .map(|e| {
                        e.leased_until_ms = Some(now + lease_ms);
                        e.tokens += 1;
                        e.holder = Some((NODES[n].to_owned(), e.tokens));
                        (
                            e.id.clone(),
                            e.attempts,
                            e.not_before_ms,
                            NODES[n].to_owned(),
                            now + lease_ms,
                            e.tokens,
                        )
                    })
                    .collect();
                let leased = store
                    .lease_events(&node(NODES[n]), now, lease_ms, max)
                    .unwrap();
                let got: Vec<(String, u32, i64, String, i64, i64)> = leased
                    .iter()
                    .map(|l| {
                        prop_assert_eq!(&l.lease.event_id, &l.event.id);
                        Ok((
                            l.event.id.clone(),
                            l.event.attempts,
                            l.event.not_before_ms,
                            l.lease.leased_by.to_string(),
                            l.lease.leased_until_ms,
                            l.lease.token,
                        ))
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
                for e in model
                    .iter_mut()
                    .filter(|e| e.holder.as_ref().is_some_and(|(h, _)| h == NODES[n]))
                {
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
    let mut rest: Vec<_> = model
        .iter()
        .map(|e| (e.not_before_ms, e.order, e.id.clone()))
        .collect();
    rest.sort();
    let got: Vec<String> = store
        .lease_events(&n1(), far, 1, 1_000)
        .unwrap()
        .into_iter()
        .map(|e| e.event.id)
        .collect();
    prop_assert_eq!(
        got,
        rest.into_iter().map(|(_, _, id)| id).collect::<Vec<_>>()
    );
    prop_assert!(store.delete_function(&name("f"), None).unwrap());
    prop_assert_eq!(store.queued_event_count().unwrap(), 0);
    Ok(())
}

fn queue_matches_a_model(f: &Fixture) {
    // Every case runs on the fixture's one store, so fewer on a server round trip away.
    let cases = match f.backend {
        Backend::Sqlite => 64,
        Backend::Postgres => 24,
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let store = &*f.store;
    if let Err(e) = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        run_queue_model(store, ops)
    }) {
        panic!("{e}");
    }
}

// ---- more races between two stores on one database ----

/// Two nodes update `$LATEST` from the same revision at once: exactly one wins, the other
/// gets `RevisionMismatch`, and the stored record is the winner's.
fn two_nodes_updating_one_revision_change_it_once(f: &Fixture) {
    let other = f.reopen();
    f.store.create_function(&latest("f", "a", "r0")).unwrap();
    for round in 0..10 {
        let current = f.store.get_version(&name("f"), LATEST).unwrap().unwrap();
        let handles: Vec<_> = [
            std::sync::Arc::clone(&f.store),
            std::sync::Arc::clone(&other),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            let mut next = current.clone();
            next.revision_id = format!("r{round}-{i}");
            next.memory_mb = 128 + 64 * u32::try_from(i).unwrap();
            let expected = current.revision_id.clone();
            std::thread::spawn(move || (next.clone(), store.update_latest(&next, Some(&expected))))
        })
        .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert!(results
            .iter()
            .any(|(_, r)| matches!(r, Err(StoreError::RevisionMismatch { .. }))));
        let stored = other.get_version(&name("f"), LATEST).unwrap().unwrap();
        assert_eq!(stored, winners[0].0);
    }
}

/// Two nodes settle one lease at once (one completes it, the other retries it): exactly
/// one outcome is applied, and the other is told why not.
fn two_nodes_settling_one_lease_apply_it_once(f: &Fixture) {
    let other = f.reopen();
    f.store.create_function(&latest("f", "a", "r")).unwrap();
    for round in 0..10 {
        let id = format!("e{round}");
        f.store.enqueue_event(&event(&id, "f", 0)).unwrap();
        let leased = f.store.lease_events(&n1(), 10, 60_000, 1).unwrap();
        assert_eq!(ids(&leased), [id.as_str()]);
        let lease = leased[0].lease.clone();
        let (a, b) = (
            std::sync::Arc::clone(&f.store),
            std::sync::Arc::clone(&other),
        );
        let la = lease.clone();
        let complete = std::thread::spawn(move || a.complete_event(&la).unwrap());
        let retry = std::thread::spawn(move || b.retry_event(&lease, 0).unwrap());
        let (completed, retried) = (complete.join().unwrap(), retry.join().unwrap());
        match (completed, retried) {
            (Settled::Applied, Settled::Gone) => {
                assert_eq!(f.store.queued_event_count().unwrap(), 0);
            }
            (Settled::LeaseLost, Settled::Applied) => {
                let again = other.lease_events(&node("n2"), 10, 60_000, 1).unwrap();
                assert_eq!(again[0].event.attempts, 1, "the retry counted");
                assert_eq!(
                    other.complete_event(&again[0].lease).unwrap(),
                    Settled::Applied
                );
            }
            outcome => panic!("{outcome:?}"),
        }
    }
}

fn function_policies_are_replaced_removed_and_go_with_the_function(f: &Fixture) {
    let store = &*f.store;
    assert_eq!(store.get_function_policy(&name("f")).unwrap(), None);
    let err = store
        .put_function_policy(&name("f"), Some("{}"))
        .unwrap_err();
    assert_eq!(err.to_string(), "function `f` does not exist");
    store.create_function(&latest("f", "a", "r")).unwrap();
    store.create_function(&latest("g", "a", "r")).unwrap();
    store
        .put_function_policy(&name("f"), Some(r#"{"Statement":[1]}"#))
        .unwrap();
    store
        .put_function_policy(&name("g"), Some(r#"{"Statement":["g"]}"#))
        .unwrap();
    store
        .put_function_policy(&name("f"), Some(r#"{"Statement":[2]}"#))
        .unwrap();
    assert_eq!(
        store.get_function_policy(&name("f")).unwrap().as_deref(),
        Some(r#"{"Statement":[2]}"#),
        "replaced"
    );
    store.put_function_policy(&name("f"), None).unwrap();
    assert_eq!(store.get_function_policy(&name("f")).unwrap(), None);
    // Removing a policy that is not there is no error.
    store.put_function_policy(&name("f"), None).unwrap();
    store
        .put_function_policy(&name("f"), Some(r#"{"Statement":[3]}"#))
        .unwrap();
    // Deleting the function deletes its policy, and only its own; a function created
    // later under its name does not inherit it.
    assert!(store.delete_function(&name("f"), None).unwrap());
    assert_eq!(store.get_function_policy(&name("f")).unwrap(), None);
    assert_eq!(
        store.get_function_policy(&name("g")).unwrap().as_deref(),
        Some(r#"{"Statement":["g"]}"#)
    );
    store.create_function(&latest("f", "a", "r")).unwrap();
    assert_eq!(store.get_function_policy(&name("f")).unwrap(), None);
}

/// The code a version holds through its layers and their merged tree counts, and so does
/// a layer version's own; a record holding a NUL character anywhere (which JSON escapes as
/// `\u0000`) is stored and read like any other and does not hide its references.
fn referenced_code_includes_layers_and_merged_trees(f: &Fixture) {
    let store = &*f.store;
    let mut v = latest("f", "code", "r");
    v.description = "nul \0 inside".to_owned();
    v.environment.insert("K".into(), "v\0".into());
    v.layers = vec![
        warden_types::layer::FunctionLayer {
            arn: "arn:aws:lambda:us-east-1:000000000000:layer:one:1".into(),
            code_sha256: "layer-one".into(),
            code_size: 1,
        },
        warden_types::layer::FunctionLayer {
            arn: "arn:aws:lambda:us-east-1:000000000000:layer:two:4".into(),
            code_sha256: "layer-two".into(),
            code_size: 2,
        },
    ];
    v.opt_sha256 = Some("merged".into());
    store.create_function(&v).unwrap();
    store.create_function(&latest("g", "code", "r")).unwrap();
    store
        .publish_layer_version(&layer_draft("deps", "held-by-a-layer"))
        .unwrap();
    assert_eq!(
        store.referenced_code().unwrap(),
        [
            "code",
            "held-by-a-layer",
            "layer-one",
            "layer-two",
            "merged"
        ]
    );
    assert_eq!(store.get_version(&name("f"), LATEST).unwrap(), Some(v));
    // The merged tree and the layers stop counting with the last version holding them.
    store
        .update_latest(&latest("f", "code", "r2"), None)
        .unwrap();
    assert_eq!(
        store.referenced_code().unwrap(),
        ["code", "held-by-a-layer"]
    );
}

/// One node points a new alias at a version while another deletes that version: exactly
/// one of them wins, and no alias ever points at a version that is gone.
fn an_alias_and_the_deletion_of_its_version_never_both_win(f: &Fixture) {
    let other = f.reopen();
    f.store.create_function(&latest("f", "a", "r")).unwrap();
    let mut outcomes = [0; 2];
    for round in 0..12 {
        f.store
            .update_latest(&latest("f", &format!("s{round}"), "r"), None)
            .unwrap();
        let version = publish(&*f.store, "f", "p").version;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (a, b) = (
            std::sync::Arc::clone(&f.store),
            std::sync::Arc::clone(&other),
        );
        let (ba, bb) = (barrier.clone(), barrier);
        let (va, vb) = (version.clone(), version.clone());
        let alias_name = format!("a{round}");
        let an = alias_name.clone();
        let create = std::thread::spawn(move || {
            ba.wait();
            a.create_alias(&alias("f", &an, &va, "x"))
        });
        let delete = std::thread::spawn(move || {
            bb.wait();
            b.delete_function(&name("f"), Some(&vb))
        });
        match (create.join().unwrap(), delete.join().unwrap()) {
            (Ok(()), Err(StoreError::Conflict(_))) => {
                outcomes[0] += 1;
                assert!(f.store.get_version(&name("f"), &version).unwrap().is_some());
            }
            (Err(StoreError::NotFound(what)), Ok(true)) => {
                outcomes[1] += 1;
                assert_eq!(what, format!("version `{version}` of function `f`"));
                assert_eq!(f.store.get_alias(&name("f"), &alias_name).unwrap(), None);
            }
            outcome => panic!("round {round}: {outcome:?}"),
        }
        for a in f.store.list_aliases(&name("f"), None, None, 100).unwrap() {
            assert!(
                f.store
                    .get_version(&name("f"), &a.function_version)
                    .unwrap()
                    .is_some(),
                "alias `{}` points at a deleted version",
                a.name
            );
        }
    }
    assert_eq!(outcomes.iter().sum::<i32>(), 12);
}

/// One node queues events for a function while another deletes it: every event is either
/// refused (`NotFound`) or accepted and deleted with the function; none outlives it.
fn queueing_while_the_function_is_deleted_leaves_no_orphan_event(f: &Fixture) {
    let other = f.reopen();
    for round in 0..8 {
        f.store.create_function(&latest("f", "a", "r")).unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (a, b) = (
            std::sync::Arc::clone(&f.store),
            std::sync::Arc::clone(&other),
        );
        let (ba, bb) = (barrier.clone(), barrier);
        let enqueue = std::thread::spawn(move || {
            ba.wait();
            (0..6)
                .map(|i| a.enqueue_event(&event(&format!("e{round}-{i}"), "f", 0)))
                .collect::<Vec<_>>()
        });
        let delete = std::thread::spawn(move || {
            bb.wait();
            b.delete_function(&name("f"), None)
        });
        let results = enqueue.join().unwrap();
        assert!(delete.join().unwrap().unwrap());
        let mut refused = false;
        for r in results {
            match r {
                Ok(()) => assert!(!refused, "an event accepted after the function was gone"),
                Err(StoreError::NotFound(what)) => {
                    assert_eq!(what, "function `f`");
                    refused = true;
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(f.store.queued_event_count().unwrap(), 0, "round {round}");
    }
}

/// Two nodes publish versions of one new layer at once: every version gets its own number,
/// 1 to the number of publishes, none lost.
fn two_nodes_publishing_one_layer_get_distinct_numbers(f: &Fixture) {
    let other = f.reopen();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = [std::sync::Arc::clone(&f.store), other]
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..10)
                    .map(|j| {
                        store
                            .publish_layer_version(&layer_draft("deps", &format!("s{i}-{j}")))
                            .unwrap()
                            .version
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut numbers: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=20).collect::<Vec<u64>>());
    let stored = f
        .store
        .list_layer_versions(&LayerName::new("deps").unwrap(), None, 100)
        .unwrap();
    assert_eq!(stored.len(), 20);
}

contract_tests!(
    two_nodes_creating_one_function_make_it_once,
    two_nodes_publishing_at_once_get_distinct_numbers,
    two_nodes_leasing_at_once_never_share_an_event,
    create_and_get_function,
    create_function_refuses_a_numbered_version,
    update_latest_checks_the_revision,
    publish_numbers_versions_and_copies_latest,
    publish_checks_the_revision_and_existence,
    publish_without_changes_returns_the_newest_version,
    version_numbers_are_never_reused,
    deleting_latest_alone_is_a_conflict,
    deleting_a_function_removes_everything_of_it,
    list_functions_paginates_by_name,
    list_versions_paginates_latest_first_then_numbers,
    referenced_code_lists_every_version_sha_once,
    alias_lifecycle,
    aliases_need_an_existing_function_and_version,
    deleting_a_version_an_alias_uses_is_a_conflict,
    list_aliases_filters_and_paginates,
    reserved_concurrency_round_trips,
    enqueue_needs_the_function_and_a_unique_id,
    lease_orders_by_due_time_then_enqueue_order,
    an_expired_lease_makes_the_event_due_again,
    retry_bumps_attempts_and_backs_off,
    complete_removes_the_event,
    a_lease_names_its_node_and_another_node_takes_it_once_expired,
    a_stale_lease_cannot_settle_an_event_another_node_now_runs,
    the_same_node_leasing_again_after_expiry_gets_a_new_lease,
    an_expired_lease_nobody_replaced_still_settles,
    reclaiming_ends_only_the_nodes_own_leases,
    settings_round_trip,
    concurrent_writers_and_readers_do_not_interfere,
    concurrent_queue_writes_keep_their_own_outcomes,
    records_carry_their_version,
    a_newer_nodes_field_survives_read_modify_write_and_publish,
    a_change_only_a_newer_node_understands_is_not_deduplicated_away,
    a_newer_nodes_alias_field_survives_an_alias_update,
    a_record_only_a_newer_node_may_read_is_refused_and_left_alone,
    plain_environments_of_an_older_warden_are_sealed_and_publishing_still_deduplicates,
    tags_are_created_with_the_function_replaced_and_deleted_with_it,
    layer_versions_count_on_after_a_delete_and_policies_go_with_them,
    queue_matches_a_model,
    two_nodes_updating_one_revision_change_it_once,
    two_nodes_settling_one_lease_apply_it_once,
    function_policies_are_replaced_removed_and_go_with_the_function,
    referenced_code_includes_layers_and_merged_trees,
    an_alias_and_the_deletion_of_its_version_never_both_win,
    queueing_while_the_function_is_deleted_leaves_no_orphan_event,
    two_nodes_publishing_one_layer_get_distinct_numbers,
);

/// Raw access to a fixture's database, beside its store. Test code like the whole of
/// `contract`; the attribute also tells the source scan of `tests/it/surface.rs` (which
/// checks that no non-test code names SQLite's crate) where the test code starts.
#[cfg(test)]
mod raw {
    use crate::contract::{Fixture, Reopen};

    /// Runs `sql`, with `arg` as its one parameter `$1`, on the fixture's database beside the
    /// store, as another Warden build sharing it would; returns how many rows it changed.
    pub(super) fn raw_execute(f: &Fixture, sql: &str, arg: &str) -> u64 {
        match &f.reopen {
            Reopen::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .unwrap();
                conn.execute(&sql.replace("$1", "?1"), [arg]).unwrap() as u64
            }
            Reopen::Postgres(url) => {
                let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
                client.execute(sql, &[&arg]).unwrap()
            }
        }
    }

    /// The text in the one row and column `sql` selects from the fixture's database.
    pub(super) fn raw_text(f: &Fixture, sql: &str) -> String {
        match &f.reopen {
            Reopen::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            Reopen::Postgres(url) => {
                let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
                client.query_one(sql, &[]).unwrap().get(0)
            }
        }
    }
}

/// What only PostgreSQL could get wrong, tested there alone.
#[cfg(test)]
mod postgres_only {
    use super::{alias, latest, layer_draft, name};
    use crate::{FunctionStore, LayerStore, PostgresStore};

    /// PostgreSQL compares text by the database's collation unless told otherwise; the
    /// store's lists sort names bytewise, as SQLite does, even in a database whose
    /// collation is a language's (ICU `en`), so that pages and markers mean the same on
    /// both backends.
    #[test]
    fn names_sort_bytewise_whatever_the_database_collation() {
        let server = warden_testservers::Postgres::shared();
        let fresh = server.fresh_database().unwrap();
        let db = format!("{}_icu", fresh.rsplit('/').next().unwrap());
        let mut admin = ::postgres::Client::connect(&fresh, ::postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {db} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C'"
            ))
            .unwrap();
        let url = server.url(&db);
        // The premise: this database's own order is not bytewise.
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let own: String = client
            .query_one(
                "SELECT string_agg(x, ',' ORDER BY x) FROM (VALUES ('b'), ('B'), ('_z'), ('a')) AS v (x)",
                &[],
            )
            .unwrap()
            .get(0);
        assert_ne!(own, "B,_z,a,b");

        let store = PostgresStore::open(&url, 2).unwrap();
        let names = ["b", "B", "_z", "a", "A-1", "A_1", "A1"];
        let mut bytewise: Vec<&str> = names.to_vec();
        bytewise.sort_unstable();
        assert_eq!(bytewise, ["A-1", "A1", "A_1", "B", "_z", "a", "b"]);
        store
            .create_function(&latest("holder", "sha", "r"))
            .unwrap();
        for n in names {
            store.create_function(&latest(n, n, "r")).unwrap();
            store.put_reserved_concurrency(&name(n), Some(1)).unwrap();
            store.publish_layer_version(&layer_draft(n, n)).unwrap();
            store
                .create_alias(&alias("holder", n, warden_types::LATEST, "r"))
                .unwrap();
        }
        let functions: Vec<String> = store
            .list_functions(None, 100)
            .unwrap()
            .into_iter()
            .map(|v| v.name.to_string())
            .filter(|n| n != "holder")
            .collect();
        assert_eq!(functions, bytewise);
        let page: Vec<String> = store
            .list_functions(Some(&name("B")), 2)
            .unwrap()
            .into_iter()
            .map(|v| v.name.to_string())
            .collect();
        assert_eq!(page, ["_z", "a"], "a marker pages bytewise too");
        let reserved: Vec<String> = store
            .all_reserved_concurrency()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(reserved, bytewise);
        let layers: Vec<String> = store
            .list_layers(None, 100)
            .unwrap()
            .into_iter()
            .map(|l| l.name.to_string())
            .collect();
        assert_eq!(layers, bytewise);
        let aliases: Vec<String> = store
            .list_aliases(&name("holder"), None, None, 100)
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(aliases, bytewise);
        let page: Vec<String> = store
            .list_aliases(&name("holder"), None, Some("B"), 2)
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(page, ["_z", "a"]);
        let mut code = bytewise.clone();
        code.push("sha");
        code.sort_unstable();
        assert_eq!(store.referenced_code().unwrap(), code);
    }
}

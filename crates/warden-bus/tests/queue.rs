//! The async queue against a real nats-server with JetStream: several nodes, one server,
//! each test its own server.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::Publish;
use warden_bus::queue::{QUEUE_CONSUMER, QUEUE_STREAM};
use warden_bus::{AsyncQueue, Bus, QueueOptions};
use warden_store::{EventQueue, LeasedEvent, QueuedEvent, Settled, StoreError};
use warden_testservers::Nats;
use warden_types::change::{Change, ChangeEvent, ChangeObserver};
use warden_types::{FunctionName, NodeId};

/// How long a test waits for something that should happen (never a latency bound).
const PATIENCE: Duration = Duration::from_secs(20);

const LEASE_MS: i64 = 20 * 60 * 1000;

fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

fn event(id: &str, function: &str) -> QueuedEvent {
    let now = warden_types::now_millis();
    QueuedEvent {
        id: id.to_owned(),
        function: FunctionName::new(function).unwrap(),
        qualifier: "$LATEST".into(),
        payload: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        attempts: 0,
        not_before_ms: now,
        enqueued_ms: now,
    }
}

/// One node: its bus connection and its queue.
struct Node {
    id: NodeId,
    _bus: Bus,
    queue: AsyncQueue,
}

async fn join(nats: &Nats, id: &str, options: QueueOptions) -> Node {
    let bus = Bus::connect(&nats.url(), node(id)).await.unwrap();
    let queue = bus.async_queue(options).await.unwrap();
    Node {
        id: node(id),
        _bus: bus,
        queue,
    }
}

/// Runs a (blocking) queue call off the runtime's workers, as the engine does.
async fn call<T: Send + 'static>(
    queue: &AsyncQueue,
    f: impl FnOnce(&AsyncQueue) -> T + Send + 'static,
) -> T {
    let queue = queue.clone();
    tokio::task::spawn_blocking(move || f(&queue))
        .await
        .unwrap()
}

async fn lease(n: &Node, max: usize) -> Vec<LeasedEvent> {
    let id = n.id.clone();
    call(&n.queue, move |q| {
        q.lease_events(&id, warden_types::now_millis(), LEASE_MS, max)
    })
    .await
    .unwrap()
}

async fn enqueue(n: &Node, e: QueuedEvent) -> Result<(), StoreError> {
    call(&n.queue, move |q| q.enqueue_event(&e)).await
}

async fn count(n: &Node) -> u64 {
    call(&n.queue, |q| q.queued_event_count()).await.unwrap()
}

/// Leases from `n` until something comes or the patience runs out.
async fn lease_eventually(n: &Node) -> Vec<LeasedEvent> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = lease(n, 10).await;
        if !got.is_empty() {
            return got;
        }
        assert!(Instant::now() < deadline, "nothing came to lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_lease_every_event_once_and_completion_empties_the_queue() {
    let nats = Nats::start().unwrap();
    let a = join(&nats, "a", QueueOptions::default()).await;
    let b = join(&nats, "b", QueueOptions::default()).await;
    for i in 0..40 {
        let on = if i % 2 == 0 { &a } else { &b };
        enqueue(on, event(&format!("e{i}"), "worker"))
            .await
            .unwrap();
    }
    assert_eq!(count(&a).await, 40);
    // Both nodes lease at once, a few at a time.
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + PATIENCE;
    while seen_a.len() + seen_b.len() < 40 {
        assert!(Instant::now() < deadline, "not every event was leased");
        let (x, y) = tokio::join!(lease(&a, 3), lease(&b, 3));
        seen_a.extend(x);
        seen_b.extend(y);
    }
    let ids_a: HashSet<String> = seen_a.iter().map(|e| e.event.id.clone()).collect();
    let ids_b: HashSet<String> = seen_b.iter().map(|e| e.event.id.clone()).collect();
    assert_eq!(ids_a.len(), seen_a.len(), "a node leased an event twice");
    assert!(
        ids_a.is_disjoint(&ids_b),
        "both nodes leased {:?}",
        ids_a.intersection(&ids_b)
    );
    assert_eq!(ids_a.len() + ids_b.len(), 40);
    assert!(
        !seen_a.is_empty() && !seen_b.is_empty(),
        "one node leased everything"
    );
    // What was leased is what was queued.
    let e7 = seen_a
        .iter()
        .chain(&seen_b)
        .find(|e| e.event.id == "e7")
        .unwrap();
    assert_eq!(e7.event.payload, b"{\"id\":\"e7\"}");
    assert_eq!(e7.event.function.as_str(), "worker");
    assert_eq!(e7.event.attempts, 0);
    assert_eq!(a.queue.held() + b.queue.held(), 40);
    // While leased they still count; each is settled by its holder only.
    assert_eq!(count(&a).await, 40);
    let foreign = seen_b[0].lease.clone();
    let refused = call(&a.queue, move |q| q.complete_event(&foreign))
        .await
        .unwrap();
    assert_eq!(refused, Settled::LeaseLost);
    for (n, leased) in [(&a, seen_a), (&b, seen_b)] {
        for e in leased {
            let held = e.lease.clone();
            let done = call(&n.queue, move |q| q.complete_event(&held))
                .await
                .unwrap();
            assert_eq!(done, Settled::Applied);
            // Settling twice finds nothing to settle.
            let held = e.lease;
            let again = call(&n.queue, move |q| q.complete_event(&held))
                .await
                .unwrap();
            assert_eq!(again, Settled::LeaseLost);
        }
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(count(&a).await, 0);
    assert!(lease(&b, 10).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_returns_when_due_with_one_more_attempt_and_a_postponed_event_keeps_its_attempts() {
    let nats = Nats::start().unwrap();
    let a = join(&nats, "a", QueueOptions::default()).await;
    enqueue(&a, event("r", "worker")).await.unwrap();
    let first = lease_eventually(&a).await.remove(0);
    assert_eq!(first.event.attempts, 0);

    let due = warden_types::now_millis() + 1500;
    let held = first.lease.clone();
    let settled = call(&a.queue, move |q| q.retry_event(&held, due))
        .await
        .unwrap();
    assert_eq!(settled, Settled::Applied);
    // Not before it is due: the delivery is handed back, not leased.
    assert!(lease(&a, 10).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lease(&a, 10).await.is_empty());
    assert!(a.queue.stats().deferred >= 1);
    assert_eq!(
        count(&a).await,
        1,
        "the failed delivery and its retry are one event"
    );
    let second = lease_eventually(&a).await.remove(0);
    assert!(warden_types::now_millis() >= due);
    assert_eq!(second.event.id, "r");
    assert_eq!(second.event.attempts, 1);
    assert_eq!(second.event.enqueued_ms, first.event.enqueued_ms);

    // Throttled: put back without using an attempt.
    let later = warden_types::now_millis() + 1000;
    let held = second.lease.clone();
    let settled = call(&a.queue, move |q| q.postpone_event(&held, later))
        .await
        .unwrap();
    assert_eq!(settled, Settled::Applied);
    assert!(lease(&a, 10).await.is_empty());
    let third = lease_eventually(&a).await.remove(0);
    assert!(warden_types::now_millis() >= later - 50);
    assert_eq!(third.event.attempts, 1);
    let held = third.lease;
    let done = call(&a.queue, move |q| q.complete_event(&held))
        .await
        .unwrap();
    assert_eq!(done, Settled::Applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_keeps_its_events_and_a_dead_nodes_go_to_another_after_the_wait() {
    let nats = Nats::start().unwrap();
    let options = QueueOptions {
        ack_wait: Duration::from_secs(2),
        ..QueueOptions::default()
    };
    let a = join(&nats, "a", options.clone()).await;
    let b = join(&nats, "b", options.clone()).await;
    enqueue(&a, event("kept", "worker")).await.unwrap();
    let kept = lease_eventually(&a).await;
    assert_eq!(kept.len(), 1);
    // Three acknowledgement waits later the live holder still has it: B gets nothing.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert!(
            lease(&b, 10).await.is_empty(),
            "a live node's event went to another"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let held = kept[0].lease.clone();
    let done = call(&a.queue, move |q| q.complete_event(&held))
        .await
        .unwrap();
    assert_eq!(done, Settled::Applied);

    // C leases an event and dies without settling it: B gets it after the wait.
    let c = join(&nats, "c", options).await;
    enqueue(&c, event("orphan", "worker")).await.unwrap();
    let orphan = lease_eventually(&c).await;
    assert_eq!(orphan[0].event.id, "orphan");
    let died = Instant::now();
    drop(c);
    let again = lease_eventually(&b).await;
    assert_eq!(again[0].event.id, "orphan");
    assert_eq!(
        again[0].event.attempts, 0,
        "an interrupted attempt is not counted"
    );
    assert!(
        died.elapsed() >= Duration::from_millis(1500),
        "redelivered before the wait"
    );
    // Nothing to take back at a restart: redelivery does it.
    assert_eq!(
        call(&b.queue, |q| q.reclaim_leases(&node("c")))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_hands_its_events_back_at_once() {
    let nats = Nats::start().unwrap();
    let a = join(&nats, "a", QueueOptions::default()).await;
    let b = join(&nats, "b", QueueOptions::default()).await;
    enqueue(&a, event("e", "worker")).await.unwrap();
    assert_eq!(lease_eventually(&a).await.len(), 1);
    a.queue.release_all().await;
    assert_eq!(a.queue.held(), 0);
    // Long before the 30 s wait.
    let started = Instant::now();
    let got = lease_eventually(&b).await;
    assert_eq!(got[0].event.id, "e");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_functions_events_are_purged_and_others_stay() {
    let nats = Nats::start().unwrap();
    let a = join(&nats, "a", QueueOptions::default()).await;
    for i in 0..5 {
        enqueue(&a, event(&format!("f{i}"), "doomed"))
            .await
            .unwrap();
        enqueue(&a, event(&format!("g{i}"), "kept")).await.unwrap();
    }
    let deleted = ChangeEvent {
        function: FunctionName::new("doomed").unwrap(),
        change: Change::FunctionDeleted,
        actor: None,
        at_ms: 0,
    };
    // Other changes purge nothing.
    let updated = ChangeEvent {
        function: FunctionName::new("kept").unwrap(),
        change: Change::ConfigurationUpdated,
        actor: None,
        at_ms: 0,
    };
    call(&a.queue, move |q| {
        q.on_change(&updated);
        q.on_change(&deleted);
    })
    .await;
    assert_eq!(count(&a).await, 5);
    let mut left = HashSet::new();
    let deadline = Instant::now() + PATIENCE;
    while left.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "the kept function's events did not come"
        );
        left.extend(lease(&a, 20).await.into_iter().map(|e| e.event.id));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, (0..5).map(|i| format!("g{i}")).collect());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(lease(&a, 20).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_enqueue_is_stored_once_and_a_full_queue_refuses_new_events() {
    let nats = Nats::start().unwrap();
    let options = QueueOptions {
        max_bytes: 16 * 1024,
        ..QueueOptions::default()
    };
    let a = join(&nats, "a", options).await;
    enqueue(&a, event("once", "worker")).await.unwrap();
    let err = enqueue(&a, event("once", "worker")).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert_eq!(count(&a).await, 1);
    // Fill it with 1 KiB events until it refuses one.
    let mut accepted = 1;
    let refusal = loop {
        let mut e = event(&format!("fill{accepted}"), "worker");
        e.payload = vec![b'x'; 1024];
        match enqueue(&a, e).await {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "a 16 KiB queue took 100 KiB");
    };
    assert!(matches!(refusal, StoreError::Backend { .. }), "{refusal}");
    assert!(accepted > 5, "refused too early: {accepted}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Nothing accepted was dropped to make room.
    assert_eq!(count(&a).await, accepted);
    let mut ids = HashSet::new();
    let deadline = Instant::now() + PATIENCE;
    while ids.len() < accepted as usize {
        assert!(Instant::now() < deadline);
        for e in lease(&a, 50).await {
            ids.insert(e.event.id);
        }
    }
    assert!(ids.contains("once"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_are_not_events_are_terminated_not_redelivered() {
    let nats = Nats::start().unwrap();
    let a = join(&nats, "a", QueueOptions::default()).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for body in ["not an event", "{}"] {
        js.send_publish("warden.async.worker", Publish::build().payload(body.into()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    enqueue(&a, event("real", "worker")).await.unwrap();
    let got = lease_eventually(&a).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.id, "real");
    assert_eq!(a.queue.stats().skipped, 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(lease(&a, 10).await.is_empty());
    assert_eq!(a.queue.stats().skipped, 2, "a terminated message came back");
    // The shared consumer and the stream are Warden's.
    let mut stream = js.get_stream(QUEUE_STREAM).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.retention,
        async_nats::jetstream::stream::RetentionPolicy::WorkQueue
    );
    let consumer = stream.consumer_info(QUEUE_CONSUMER).await.unwrap();
    assert_eq!(
        consumer.config.ack_policy,
        async_nats::jetstream::consumer::AckPolicy::Explicit
    );
}

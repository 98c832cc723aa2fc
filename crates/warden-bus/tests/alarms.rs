//! The alarm notifications' work queue against a real nats-server with JetStream: several
//! nodes, one server, each test its own server.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::{Config as StreamConfig, RetentionPolicy, StorageType};
use warden_bus::alarms::{Consuming, Handler, Notice, Outcome, ALARM_STREAM};
use warden_bus::{AlarmNotices, AlarmOptions, Bus, BusError};
use warden_testservers::Nats;
use warden_types::NodeId;

/// How long a test waits for something that should happen (never a latency bound).
const PATIENCE: Duration = Duration::from_secs(20);

const ACCOUNT: &str = "123456789012";

struct Node {
    _bus: Bus,
    notices: AlarmNotices,
}

async fn join(nats: &Nats, id: &str, options: AlarmOptions) -> Node {
    let bus = Bus::connect(&nats.url(), NodeId::new(id).unwrap())
        .await
        .unwrap();
    let notices = bus.alarm_notices(options).await.unwrap();
    Node { _bus: bus, notices }
}

/// What the handlers saw: (node, payload) in the order they were called.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A handler that records each notice under `node` and answers `outcome` for it.
fn recorder(
    node: &str,
    seen: &Seen,
    outcome: impl Fn(&Notice) -> Outcome + Send + Sync + 'static,
) -> Handler {
    let (node, seen) = (node.to_owned(), Arc::clone(seen));
    let outcome = Arc::new(outcome);
    Arc::new(move |notice: Notice| {
        let (node, seen, outcome) = (node.clone(), Arc::clone(&seen), Arc::clone(&outcome));
        Box::pin(async move {
            let answer = outcome(&notice);
            seen.lock().unwrap().push((node, notice.payload));
            answer
        })
    })
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn messages_in_stream(nats: &Nats) -> u64 {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(ALARM_STREAM).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_notification_is_handled_once_by_one_node_and_then_leaves_the_stream() {
    let nats = Nats::start().unwrap();
    let a = join(&nats, "a", AlarmOptions::default()).await;
    let b = join(&nats, "b", AlarmOptions::default()).await;
    let seen: Seen = Arc::default();
    let _ca = a.notices.consume(recorder("a", &seen, |_| Outcome::Done));
    let _cb = b.notices.consume(recorder("b", &seen, |_| Outcome::Done));
    // Anyone allowed to subscribe sees each publication as it happens.
    let watcher = async_nats::connect(nats.url()).await.unwrap();
    let mut watching = watcher.subscribe("warden.alarms.>").await.unwrap();
    watcher.flush().await.unwrap();
    for i in 0..20 {
        let publisher = if i % 2 == 0 { &a } else { &b };
        publisher
            .notices
            .publish(
                ACCOUNT,
                "ALARM",
                &format!("change-{i}"),
                format!("n{i}").into_bytes(),
            )
            .await
            .unwrap();
    }
    wait_until("20 notifications handled", || {
        seen.lock().unwrap().len() >= 20
    })
    .await;
    // Time for a second delivery, had there been one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().unwrap().clone();
    let mut times: HashMap<Vec<u8>, usize> = HashMap::new();
    for (_, payload) in &seen {
        *times.entry(payload.clone()).or_default() += 1;
    }
    assert_eq!(times.len(), 20, "{seen:?}");
    assert!(times.values().all(|n| *n == 1), "{times:?}");
    assert_eq!(messages_in_stream(&nats).await, 0);
    let stats = (a.notices.stats(), b.notices.stats());
    assert_eq!(stats.0.published + stats.1.published, 20);
    assert_eq!(stats.0.handled + stats.1.handled, 20);
    let first = tokio::time::timeout(PATIENCE, futures_next(&mut watching))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.subject.as_str(), "warden.alarms.123456789012.ALARM");
    assert_eq!(&first.payload[..], b"n0");
}

async fn futures_next(s: &mut async_nats::Subscriber) -> Option<async_nats::Message> {
    use std::pin::Pin;
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut *s), cx)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_repeated_under_one_id_is_stored_once() {
    let nats = Nats::start().unwrap();
    let a = join(&nats, "a", AlarmOptions::default()).await;
    for _ in 0..3 {
        a.notices
            .publish(ACCOUNT, "OK", "same-change", b"once".to_vec())
            .await
            .unwrap();
    }
    assert_eq!(messages_in_stream(&nats).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_is_terminated_and_never_handed_out_again() {
    let nats = Nats::start().unwrap();
    let a = join(&nats, "a", AlarmOptions::default()).await;
    let seen: Seen = Arc::default();
    let _c = a
        .notices
        .consume(recorder("a", &seen, |notice| match &notice.payload[..] {
            b"forged" => Outcome::Refused("it does not open".into()),
            _ => Outcome::Done,
        }));
    a.notices
        .publish(ACCOUNT, "ALARM", "1", b"forged".to_vec())
        .await
        .unwrap();
    a.notices
        .publish(ACCOUNT, "ALARM", "2", b"genuine".to_vec())
        .await
        .unwrap();
    wait_until("both handled", || seen.lock().unwrap().len() >= 2).await;
    // Time for the refused one to come back, had it not been terminated.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let payloads: Vec<Vec<u8>> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(payloads, vec![b"forged".to_vec(), b"genuine".to_vec()]);
    let stats = a.notices.stats();
    assert_eq!((stats.refused, stats.handled), (1, 1));
    assert_eq!(messages_in_stream(&nats).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_keeps_its_notification_and_a_dead_nodes_goes_to_another() {
    let nats = Nats::start().unwrap();
    let options = AlarmOptions {
        ack_wait: Duration::from_secs(1),
        ..AlarmOptions::default()
    };
    let a = join(&nats, "a", options.clone()).await;
    let b = join(&nats, "b", options).await;
    let seen: Seen = Arc::default();
    // A's handler takes three acknowledgement waits: it says "in progress" meanwhile, so
    // the notification is not handed to B, which pulls all the while.
    let started = Arc::new(Mutex::new(false));
    let slow: Handler = {
        let (seen, started) = (Arc::clone(&seen), Arc::clone(&started));
        Arc::new(move |notice: Notice| {
            let (seen, started) = (Arc::clone(&seen), Arc::clone(&started));
            Box::pin(async move {
                *started.lock().unwrap() = true;
                tokio::time::sleep(Duration::from_secs(3)).await;
                seen.lock().unwrap().push(("a".into(), notice.payload));
                Outcome::Done
            })
        })
    };
    let consuming_a = a.notices.consume(slow);
    a.notices
        .publish(ACCOUNT, "ALARM", "slow", b"slow".to_vec())
        .await
        .unwrap();
    wait_until("A's handler to start", || *started.lock().unwrap()).await;
    let _cb = b.notices.consume(recorder("b", &seen, |_| Outcome::Done));
    wait_until("A's handler to finish", || !seen.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![("a".to_owned(), b"slow".to_vec())]
    );

    // A node that stops mid-action (its handler never ends) leaves the notification to
    // another after the wait.
    drop(consuming_a);
    let stuck: Handler = Arc::new(|_notice: Notice| Box::pin(std::future::pending()));
    let a2 = join(
        &nats,
        "a2",
        AlarmOptions {
            ack_wait: Duration::from_secs(1),
            ..AlarmOptions::default()
        },
    )
    .await;
    drop(_cb);
    let consuming_a2: Consuming = a2.notices.consume(stuck);
    a2.notices
        .publish(ACCOUNT, "ALARM", "orphan", b"orphan".to_vec())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(consuming_a2);
    let _cb = b.notices.consume(recorder("b", &seen, |_| Outcome::Done));
    wait_until("B to take the orphaned notification", || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    assert_eq!(
        seen.lock().unwrap()[1],
        ("b".to_owned(), b"orphan".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subjects_oversized_notifications_and_a_full_stream_are_refused() {
    let nats = Nats::start().unwrap();
    let a = join(
        &nats,
        "a",
        AlarmOptions {
            max_bytes: 8 * 1024,
            ..AlarmOptions::default()
        },
    )
    .await;
    for (account, state) in [
        ("1234.5678", "ALARM"),
        (ACCOUNT, "*"),
        (ACCOUNT, ""),
        ("", "OK"),
    ] {
        let e = a
            .notices
            .publish(account, state, "x", b"x".to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, BusError::Publish(m) if m.contains("subject")),
            "{e}"
        );
    }
    let big = vec![b'x'; warden_bus::alarms::MAX_ALARM_NOTICE_BYTES + 1];
    let e = a
        .notices
        .publish(ACCOUNT, "OK", "big", big)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BusError::Publish(m) if m.contains("larger")),
        "{e}"
    );
    // Nobody consumes: 1 KiB notifications fill the 8 KiB stream until it refuses one,
    // and none accepted is dropped to make room.
    let mut accepted = 0u64;
    let refusal = loop {
        match a
            .notices
            .publish(
                ACCOUNT,
                "ALARM",
                &format!("fill{accepted}"),
                vec![b'x'; 1024],
            )
            .await
        {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "an 8 KiB stream took 100 KiB");
    };
    assert!(matches!(refusal, BusError::Publish(_)), "{refusal}");
    assert!(accepted > 3, "refused too early: {accepted}");
    assert_eq!(messages_in_stream(&nats).await, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_that_name_that_is_not_a_work_queue_is_refused() {
    let nats = Nats::start().unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.create_stream(StreamConfig {
        name: ALARM_STREAM.into(),
        subjects: vec!["warden.alarms.>".into()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    let bus = Bus::connect(&nats.url(), NodeId::new("a").unwrap())
        .await
        .unwrap();
    let e = bus
        .alarm_notices(AlarmOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BusError::IncompatibleStream(m) if m.contains("work queue")),
        "{e}"
    );
}

//! The bus against a real nats-server with JetStream: two nodes, one server.
//!
//! Each test starts its own server, so that the stream and its notices are its own. To
//! take a node off the network without stopping the server, a node may connect through a
//! small TCP relay that the test can cut (refusing and closing connections) and restore,
//! or make deaf (dropping what the server says, while what the node says still arrives).

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use warden_bus::{Bus, BusError, BusOptions, Subscriptions, STREAM_NAME};
use warden_testservers::Nats;
use warden_types::change::{Change, ChangeEvent, ChangeObserver};
use warden_types::{FunctionName, NodeId};

/// How long a test waits for something that should happen (never a latency bound).
const PATIENCE: Duration = Duration::from_secs(10);

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

fn event(function: &str, change: Change) -> ChangeEvent {
    ChangeEvent {
        function: FunctionName::new(function).unwrap(),
        change,
        actor: Some("arn:aws:iam::123456789012:user/alice".into()),
        at_ms: 1_700_000_000_000,
    }
}

/// Everything one node's subscriptions heard.
#[derive(Default)]
struct Heard {
    changes: Mutex<Vec<ChangeEvent>>,
    identities: Mutex<Vec<u64>>,
    resyncs: AtomicUsize,
}

impl Heard {
    fn changes(&self) -> Vec<ChangeEvent> {
        self.changes.lock().unwrap().clone()
    }
    fn count(&self, function: &str) -> usize {
        self.changes()
            .iter()
            .filter(|e| e.function.as_str() == function)
            .count()
    }
    fn resyncs(&self) -> usize {
        self.resyncs.load(Ordering::SeqCst)
    }
}

struct Observer(Arc<Heard>);

impl ChangeObserver for Observer {
    fn on_change(&self, event: &ChangeEvent) {
        self.0.changes.lock().unwrap().push(event.clone());
    }
}

fn subscriptions(heard: &Arc<Heard>) -> Subscriptions {
    let identity = heard.clone();
    let resync = heard.clone();
    Subscriptions {
        changes: vec![Arc::new(Observer(heard.clone()))],
        identity: Arc::new(move |g| identity.identities.lock().unwrap().push(g)),
        resync: Arc::new(move || {
            resync.resyncs.fetch_add(1, Ordering::SeqCst);
        }),
    }
}

/// Connects `id` and subscribes it; returns the bus and what it hears.
async fn listening(url: &str, id: &str, options: BusOptions) -> (Bus, Arc<Heard>) {
    let bus = Bus::connect_with(url, node(id), options).await.unwrap();
    let heard = Arc::new(Heard::default());
    bus.subscribe(subscriptions(&heard)).await.unwrap();
    (bus, heard)
}

async fn start_nats() -> Nats {
    tokio::task::spawn_blocking(Nats::start)
        .await
        .unwrap()
        .unwrap()
}

async fn raw_client(nats: &Nats) -> async_nats::Client {
    async_nats::connect(nats.url()).await.unwrap()
}

/// A TCP relay in front of the NATS server.
struct Relay {
    port: u16,
    refusing: Arc<AtomicBool>,
    deaf: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Relay {
    async fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let refusing = Arc::new(AtomicBool::new(false));
        let deaf = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let refusing = refusing.clone();
            let deaf = deaf.clone();
            let connections = connections.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if refusing.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        continue;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = client_read.read(&mut buf).await {
                            if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                    let deaf = deaf.clone();
                    let down = tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = server_read.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if deaf.load(Ordering::SeqCst) {
                                continue;
                            }
                            if client_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                    let mut list = connections.lock().unwrap();
                    list.push(up.abort_handle());
                    list.push(down.abort_handle());
                }
            }
        })
        .abort_handle();
        Relay {
            port,
            refusing,
            deaf,
            connections,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Closes every connection and refuses new ones: the server seems down.
    fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Drops what the server sends on every connection; what clients send still arrives.
    fn deafen(&self) {
        self.deaf.store(true, Ordering::SeqCst);
    }

    /// Relays new connections normally again.
    fn restore(&self) {
        self.deaf.store(false, Ordering::SeqCst);
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_the_other_node_and_not_its_own() {
    let nats = start_nats().await;
    let (a, heard_a) = listening(&nats.url(), "node-a", BusOptions::default()).await;
    let (b, heard_b) = listening(&nats.url(), "node-b", BusOptions::default()).await;

    let sent = event(
        "orders",
        Change::AliasUpdated {
            alias: "live".into(),
        },
    );
    a.publisher().on_change(&sent);
    eventually("B hears A's change", || heard_b.count("orders") == 1).await;
    assert_eq!(heard_b.changes(), vec![sent]);

    // B answers; once A hears B's notice (stored after A's), A has read past its own.
    b.publisher()
        .on_change(&event("billing", Change::FunctionDeleted));
    eventually("A hears B's change", || heard_a.count("billing") == 1).await;
    assert_eq!(heard_a.count("orders"), 0, "A heard its own change");
    assert_eq!(heard_b.count("billing"), 0, "B heard its own change");

    eventually("A's publish is acknowledged", || a.stats().published == 1).await;
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.own_skipped, 1);
    assert_eq!(sa.received, 1);
    assert_eq!(sb.received, 1);
    assert_eq!((sa.dropped, sb.dropped), (0, 0));
    // Nothing was missed, so nothing is reloaded.
    assert_eq!((heard_a.resyncs(), heard_b.resyncs()), (0, 0));
    assert_eq!((sa.resyncs, sb.resyncs), (0, 0));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_changes_arrive_in_order() {
    let nats = start_nats().await;
    let (a, _) = listening(&nats.url(), "node-a", BusOptions::default()).await;
    let (b, heard_b) = listening(&nats.url(), "node-b", BusOptions::default()).await;
    let publisher = a.publisher();
    for n in 0..200u32 {
        publisher.on_change(&event(
            "f",
            Change::ConcurrencyChanged { reserved: Some(n) },
        ));
    }
    eventually("B hears all 200", || heard_b.count("f") == 200).await;
    let reserved: Vec<Option<u32>> = heard_b
        .changes()
        .into_iter()
        .map(|e| match e.change {
            Change::ConcurrencyChanged { reserved } => reserved,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(reserved, (0..200).map(Some).collect::<Vec<_>>());
    assert_eq!(heard_b.resyncs(), 0);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_generations_travel() {
    let nats = start_nats().await;
    let (a, heard_a) = listening(&nats.url(), "node-a", BusOptions::default()).await;
    let (b, heard_b) = listening(&nats.url(), "node-b", BusOptions::default()).await;
    a.publish_identity_generation(41);
    a.publisher().publish_identity_generation(42);
    eventually("B hears both generations", || {
        heard_b.identities.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(*heard_b.identities.lock().unwrap(), vec![41, 42]);
    b.publish_identity_generation(43);
    eventually("A hears B's generation", || {
        !heard_a.identities.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(*heard_a.identities.lock().unwrap(), vec![43]);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_skipped_and_the_next_good_one_arrives() {
    let nats = start_nats().await;
    let (a, _) = listening(&nats.url(), "node-a", BusOptions::default()).await;
    let (b, heard_b) = listening(&nats.url(), "node-b", BusOptions::default()).await;
    let js = async_nats::jetstream::new(raw_client(&nats).await);
    let bad: Vec<(&str, Vec<u8>)> =
        vec![
        ("warden.changes.x", b"{not json".to_vec()),
        ("warden.changes.x", b"\xff\xfe".to_vec()),
        (
            "warden.changes.x",
            br#"{"v":2,"origin":"evil","function":"x","kind":"tags_changed","at_ms":1}"#.to_vec(),
        ),
        (
            "warden.changes.x",
            br#"{"v":1,"origin":"evil","function":"not a name!","kind":"tags_changed","at_ms":1}"#
                .to_vec(),
        ),
        (
            "warden.changes.x",
            br#"{"v":1,"origin":"evil","function":"y","kind":"tags_changed","at_ms":1}"#.to_vec(),
        ),
        (
            "warden.changes.x",
            br#"{"v":1,"origin":"evil","function":"x","kind":"alias_created","at_ms":1}"#.to_vec(),
        ),
        ("warden.identity", br#"{"v":1,"origin":"evil","generation":-1,"at_ms":1}"#.to_vec()),
    ];
    let count = bad.len() as u64;
    for (subject, payload) in bad {
        js.publish(subject, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // The stream itself refuses what is larger than a notice may be.
    let huge = vec![b'x'; warden_bus::MAX_NOTICE_BYTES + 1];
    let refused = async { js.publish("warden.changes.x", huge.into()).await?.await }.await;
    assert!(refused.is_err(), "an oversized notice was stored");

    a.publisher().on_change(&event("x", Change::PolicyChanged));
    eventually("B hears the good change", || heard_b.count("x") == 1).await;
    assert_eq!(heard_b.changes(), vec![event("x", Change::PolicyChanged)]);
    assert_eq!(b.stats().skipped, count);
    assert!(heard_b.identities.lock().unwrap().is_empty());
    assert_eq!(heard_b.resyncs(), 0);

    // A well-formed notice of a kind this version does not know makes B reload
    // everything: it cannot tell what else to drop.
    js.publish(
        "warden.changes.x",
        br#"{"v":1,"origin":"node-c","function":"x","kind":"layers_changed","at_ms":1}"#
            .to_vec()
            .into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    eventually("B reloads everything", || heard_b.resyncs() == 1).await;
    a.publisher().on_change(&event("x", Change::TagsChanged));
    eventually("B still hears changes", || heard_b.count("x") == 2).await;
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnection_makes_the_node_reload_and_notices_flow_again() {
    let nats = start_nats().await;
    let relay = Relay::start(nats.port()).await;
    let (a, _) = listening(&nats.url(), "node-a", BusOptions::default()).await;
    let (b, heard_b) = listening(&relay.url(), "node-b", BusOptions::default()).await;
    a.publisher()
        .on_change(&event("before", Change::TagsChanged));
    eventually("B hears the first change", || heard_b.count("before") == 1).await;
    assert_eq!(heard_b.resyncs(), 0);

    relay.cut();
    // While B is away, A commits a change B will never be told of...
    a.publisher()
        .on_change(&event("while-away", Change::TagsChanged));
    eventually("A's change is stored", || a.stats().published == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.restore();
    // ... so once back, B reloads everything.
    eventually("B reloads everything", || heard_b.resyncs() >= 1).await;
    assert!(b.stats().resyncs >= 1);

    a.publisher()
        .on_change(&event("after", Change::TagsChanged));
    eventually("B hears changes after the reconnection", || {
        heard_b.count("after") == 1
    })
    .await;
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_consumer_is_noticed_by_its_silence_and_replaced() {
    let nats = start_nats().await;
    let (a, _) = listening(&nats.url(), "node-a", BusOptions::default()).await;
    let options = BusOptions {
        heartbeat: Duration::from_millis(300),
        ..BusOptions::default()
    };
    let (b, heard_b) = listening(&nats.url(), "node-b", options).await;
    a.publisher()
        .on_change(&event("before", Change::TagsChanged));
    eventually("B hears the first change", || heard_b.count("before") == 1).await;

    // Delete every consumer of the stream behind the nodes' backs (A's too).
    let js = async_nats::jetstream::new(raw_client(&nats).await);
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    let names: Vec<String> = {
        use futures_core::Stream;
        let mut names = stream.consumer_names();
        let mut out = Vec::new();
        while let Some(name) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut names).poll_next(cx)).await
        {
            out.push(name.unwrap());
        }
        out
    };
    assert_eq!(names.len(), 2, "{names:?}");
    for name in names {
        stream.delete_consumer(&name).await.unwrap();
    }
    eventually("B notices and reloads", || heard_b.resyncs() >= 1).await;
    a.publisher()
        .on_change(&event("after", Change::TagsChanged));
    eventually("B hears changes with its new consumer", || {
        heard_b.count("after") == 1
    })
    .await;
    a.close().await;
    b.close().await;
}

/// An observer that holds up the subscriber (which observers must never do) the first
/// time it is called: a node falling behind.
struct Slow {
    heard: Arc<Heard>,
    stalled: AtomicBool,
}

impl ChangeObserver for Slow {
    fn on_change(&self, event: &ChangeEvent) {
        if !self.stalled.swap(true, Ordering::SeqCst) {
            // Let the runtime's other tasks (the NATS connection's) go on meanwhile.
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(1500)));
        }
        self.heard.changes.lock().unwrap().push(event.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_lost_by_a_node_that_fell_behind_are_a_gap_that_makes_it_reload() {
    let nats = start_nats().await;
    let a = Bus::connect(&nats.url(), node("node-a")).await.unwrap();
    // B holds at most 4 deliveries it has not read; NATS drops what does not fit.
    let options = BusOptions {
        subscription_capacity: 4,
        ..BusOptions::default()
    };
    let b = Bus::connect_with(&nats.url(), node("node-b"), options)
        .await
        .unwrap();
    let heard_b = Arc::new(Heard::default());
    let mut subs = subscriptions(&heard_b);
    subs.changes = vec![Arc::new(Slow {
        heard: heard_b.clone(),
        stalled: AtomicBool::new(false),
    })];
    b.subscribe(subs).await.unwrap();

    let publisher = a.publisher();
    for n in 0..50u32 {
        publisher.on_change(&event(
            "f",
            Change::ConcurrencyChanged { reserved: Some(n) },
        ));
    }
    eventually("A publishes all 50", || a.stats().published == 50).await;
    eventually("B notices the gap and reloads", || heard_b.resyncs() == 1).await;
    assert!(
        heard_b.count("f") < 50,
        "nothing was lost: the test proves nothing"
    );
    // B's new consumer works.
    publisher.on_change(&event("after", Change::TagsChanged));
    eventually("B hears changes with its new consumer", || {
        heard_b.count("after") == 1
    })
    .await;
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_while_nats_is_unreachable_is_delivered_once_it_is_back() {
    let nats = start_nats().await;
    let relay = Relay::start(nats.port()).await;
    let options = BusOptions {
        publish_timeout: Duration::from_millis(500),
        ..BusOptions::default()
    };
    let a = Bus::connect_with(&relay.url(), node("node-a"), options)
        .await
        .unwrap();
    let (b, heard_b) = listening(&nats.url(), "node-b", BusOptions::default()).await;

    relay.cut();
    a.publisher()
        .on_change(&event("delayed", Change::TagsChanged));
    eventually("A retries", || a.stats().publish_retries >= 2).await;
    assert_eq!(heard_b.count("delayed"), 0);
    relay.restore();
    eventually("B hears the delayed change", || {
        heard_b.count("delayed") == 1
    })
    .await;

    // A later change arrives after it: by then any second copy would have too.
    a.publisher()
        .on_change(&event("later", Change::TagsChanged));
    eventually("B hears the later change", || heard_b.count("later") == 1).await;
    assert_eq!(heard_b.count("delayed"), 1);
    eventually("A's publishes are acknowledged", || {
        a.stats().published == 2
    })
    .await;
    assert_eq!(a.stats().dropped, 0);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_whose_acknowledgement_was_lost_is_stored_once() {
    let nats = start_nats().await;
    let relay = Relay::start(nats.port()).await;
    let options = BusOptions {
        publish_timeout: Duration::from_millis(300),
        ..BusOptions::default()
    };
    let a = Bus::connect_with(&relay.url(), node("node-a"), options)
        .await
        .unwrap();
    let (b, heard_b) = listening(&nats.url(), "node-b", BusOptions::default()).await;

    // A's notice reaches the stream, but the acknowledgement never reaches A.
    relay.deafen();
    a.publisher().on_change(&event("once", Change::TagsChanged));
    eventually("B hears the change", || heard_b.count("once") == 1).await;
    eventually("A publishes it again", || a.stats().publish_retries >= 3).await;
    relay.cut();
    relay.restore();
    eventually("A's retry is acknowledged", || a.stats().published == 1).await;

    a.publisher()
        .on_change(&event("later", Change::TagsChanged));
    eventually("B hears the later change", || heard_b.count("later") == 1).await;
    assert_eq!(
        heard_b.count("once"),
        1,
        "a retried notice was stored twice"
    );
    let js = async_nats::jetstream::new(raw_client(&nats).await);
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_counts_and_later_makes_every_node_reload() {
    let nats = start_nats().await;
    let relay = Relay::start(nats.port()).await;
    let options = BusOptions {
        queue_capacity: 2,
        publish_timeout: Duration::from_millis(300),
        ..BusOptions::default()
    };
    let a = Bus::connect_with(&relay.url(), node("node-a"), options)
        .await
        .unwrap();
    let (b, heard_b) = listening(&nats.url(), "node-b", BusOptions::default()).await;

    relay.cut();
    let publisher = a.publisher();
    for n in 0..10 {
        publisher.on_change(&event(&format!("f{n}"), Change::TagsChanged));
    }
    let dropped = a.stats().dropped;
    assert!(dropped >= 7, "dropped {dropped}");
    relay.restore();
    eventually("B reloads everything", || heard_b.resyncs() == 1).await;
    // What was queued arrives too.
    eventually("B hears the queued changes", || {
        heard_b.changes().len() as u64 == 10 - dropped
    })
    .await;
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_publishes_what_is_queued() {
    let nats = start_nats().await;
    let (b, heard_b) = listening(&nats.url(), "node-b", BusOptions::default()).await;
    let a = Bus::connect(&nats.url(), node("node-a")).await.unwrap();
    let publisher = a.publisher();
    for n in 0..50u32 {
        publisher.on_change(&event(
            "f",
            Change::ConcurrencyChanged { reserved: Some(n) },
        ));
    }
    a.close().await;
    eventually("B hears all 50", || heard_b.count("f") == 50).await;
    // After close, notices are dropped and counted, never blocked on.
    publisher.on_change(&event("g", Change::TagsChanged));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_gives_up_after_its_bound_when_nats_is_unreachable() {
    let nats = start_nats().await;
    let relay = Relay::start(nats.port()).await;
    let options = BusOptions {
        close_timeout: Duration::from_millis(500),
        publish_timeout: Duration::from_millis(200),
        ..BusOptions::default()
    };
    let a = Bus::connect_with(&relay.url(), node("node-a"), options)
        .await
        .unwrap();
    relay.cut();
    a.publisher().on_change(&event("f", Change::TagsChanged));
    let started = Instant::now();
    a.close().await;
    // Bounded by close_timeout (plus one second of grace), never by the outage.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_appears_in_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for url in [
        format!("nats://warden:hunter2-secret@127.0.0.1:{port}"),
        format!("nats://warden:hunter2%2Dsecret@127.0.0.1:{port}"),
        format!("nats://hunter2-secret@127.0.0.1:{port}"),
        "nats://warden:hunter2-secret@".to_owned(),
        "http://warden:hunter2-secret@127.0.0.1:1".to_owned(),
    ] {
        let e = Bus::connect(&url, node("node-a")).await.unwrap_err();
        let shown = format!("{e} / {e:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    let e = Bus::connect(
        &format!("nats://warden:hunter2-secret@127.0.0.1:{port}"),
        node("node-a"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, BusError::Connect { ref url, .. } if url == &format!("nats://warden:***@127.0.0.1:{port}")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_created_with_warden_settings() {
    let nats = start_nats().await;
    let a = Bus::connect(&nats.url(), node("node-a")).await.unwrap();
    let js = async_nats::jetstream::new(raw_client(&nats).await);
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    let mut subjects = config.subjects.clone();
    subjects.sort();
    assert_eq!(subjects, vec!["warden.changes.>", "warden.identity"]);
    assert_eq!(config.storage, StorageType::File);
    assert_eq!(
        config.retention,
        async_nats::jetstream::stream::RetentionPolicy::Limits
    );
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert_eq!(config.max_bytes, BusOptions::default().max_stream_bytes);
    assert_eq!(
        config.max_message_size as usize,
        warden_bus::MAX_NOTICE_BYTES
    );
    assert_eq!(config.duplicate_window, warden_bus::DUPLICATE_WINDOW);
    // A second node finds it as it is.
    let b = Bus::connect(&nats.url(), node("node-b")).await.unwrap();
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_is_brought_to_warden_settings() {
    let nats = start_nats().await;
    let js = async_nats::jetstream::new(raw_client(&nats).await);
    js.create_stream(StreamConfig {
        name: STREAM_NAME.into(),
        subjects: vec!["warden.changes.>".into()],
        storage: StorageType::File,
        max_age: Duration::from_secs(600),
        ..Default::default()
    })
    .await
    .unwrap();
    let a = Bus::connect(&nats.url(), node("node-a")).await.unwrap();
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert!(config.subjects.contains(&"warden.identity".to_owned()));
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_stream_is_refused_clearly() {
    let nats = start_nats().await;
    let js = async_nats::jetstream::new(raw_client(&nats).await);
    js.create_stream(StreamConfig {
        name: STREAM_NAME.into(),
        subjects: vec!["warden.changes.>".into()],
        storage: StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let e = Bus::connect(&nats.url(), node("node-a")).await.unwrap_err();
    assert!(
        matches!(&e, BusError::IncompatibleStream(m) if m.contains("memory")),
        "{e}"
    );

    // Another stream holding Warden's subjects.
    js.delete_stream(STREAM_NAME).await.unwrap();
    js.create_stream(StreamConfig {
        name: "SOMETHING_ELSE".into(),
        subjects: vec!["warden.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let e = Bus::connect(&nats.url(), node("node-a")).await.unwrap_err();
    assert!(
        matches!(&e, BusError::IncompatibleStream(m) if m.contains("another stream")),
        "{e}"
    );
}

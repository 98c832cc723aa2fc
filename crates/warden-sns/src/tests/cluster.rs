//! Several nodes on one PostgreSQL database: shared topics, subscriptions and tokens,
//! deliveries claimed by one node at a time (and by another once a lease expires), bounds
//! that hold for the cluster, and the cluster's sealed signing key.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::signature::verify_http_body;
use super::{
    call, create_topic, eventually, fast_config, fresh_database, node, pool, url_query, xml_value,
    xml_values, Endpoint, FakeLambda, TestSealer, ACCOUNT, REGION,
};
use crate::model::now_ms;
use crate::postgres::{replace_signing_key, reseal_signing_key, signing_key};
use crate::{
    Deliverer, KeySealer, Sns, SnsError, MAX_PENDING_DELIVERIES_PER_TOPIC,
    MAX_SUBSCRIPTIONS_PER_TOPIC, MAX_TAGS, MAX_TOPICS_PER_ACCOUNT,
};

const BASE_A: &str = "http://127.0.0.1:9700/_warden/sns/";
const BASE_B: &str = "http://127.0.0.2:9701/_warden/sns/";
const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

/// Runs raw SQL on the shared database.
fn execute(url: &str, sql: String) {
    pool(url, 1)
        .run(move |c| {
            c.client()
                .batch_execute(&sql)
                .map_err(warden_postgres::Error::at("raw SQL"))
        })
        .expect("raw SQL");
}

fn subscribe_lambda(sns: &Sns, topic: &str, function: &str) -> Result<String, SnsError> {
    call(
        sns,
        "Subscribe",
        &[
            ("TopicArn", topic),
            ("Protocol", "lambda"),
            ("Endpoint", function),
        ],
    )
}

/// Two nodes, each on its own pool: `(a, b)`.
fn two_nodes(url: &str) -> (Sns, Sns) {
    (node(url, BASE_A), node(url, BASE_B))
}

#[tokio::test]
async fn a_topic_made_on_one_node_is_subscribed_and_published_through_another() {
    let url = fresh_database();
    let (a, b) = two_nodes(&url);
    assert_eq!(
        a.signing_cert_pem(),
        b.signing_cert_pem(),
        "one signing key for the cluster"
    );
    assert!(
        b.signing_cert_url().starts_with(BASE_B),
        "each node its own URLs"
    );

    let topic = create_topic(&a, "shared");
    let listed = call(&b, "ListTopics", &[]).expect("list through b");
    assert_eq!(xml_values(&listed, "TopicArn"), vec![topic.clone()]);
    call(
        &b,
        "SetTopicAttributes",
        &[
            ("TopicArn", &topic),
            ("AttributeName", "DisplayName"),
            ("AttributeValue", "Set on b"),
        ],
    )
    .expect("set through b");
    let attrs = call(&a, "GetTopicAttributes", &[("TopicArn", &topic)]).expect("get");
    assert!(attrs.contains("Set on b"), "{attrs}");

    // Only a delivers, and nothing b does wakes it: it finds b's rows by polling.
    let mut endpoint = Endpoint::start(&[], 200).await;
    let deliverer = Deliverer::start(&a, FakeLambda::new(0).0, fast_config(3));
    call(
        &b,
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "http"),
            ("Endpoint", &endpoint.url),
        ],
    )
    .expect("subscribe through b");
    let confirmation = endpoint.next().await;
    let json = confirmation.json();
    verify_http_body(&a, &json);
    let subscribe_url = json["SubscribeURL"].as_str().expect("SubscribeURL");
    assert!(
        subscribe_url.starts_with(BASE_A),
        "built by the delivering node: {subscribe_url}"
    );
    // The token is in the shared database: it confirms through b as well.
    let answer = b
        .serve_public("", &url_query(subscribe_url), "r")
        .expect("confirm through b");
    let sub = xml_value(&answer.body, "SubscriptionArn").expect("SubscriptionArn");
    let attrs = call(
        &a,
        "GetSubscriptionAttributes",
        &[("SubscriptionArn", &sub)],
    )
    .expect("get");
    assert!(
        attrs.contains("<key>PendingConfirmation</key><value>false</value>"),
        "{attrs}"
    );

    let published = Instant::now();
    call(
        &b,
        "Publish",
        &[("TopicArn", &topic), ("Message", "from b")],
    )
    .expect("publish");
    let note = endpoint.next().await;
    assert!(
        published.elapsed() < Duration::from_secs(5),
        "another node's publish is found within the poll interval, not the purge interval"
    );
    assert_eq!(note.json()["Message"], "from b");
    assert_eq!(note.json()["SubscribeURL"], serde_json::Value::Null);
    verify_http_body(&a, &note.json());
    eventually(|| b.pending_deliveries(&topic).expect("pending") == 0).await;

    call(&a, "Unsubscribe", &[("SubscriptionArn", &sub)]).expect("unsubscribe through a");
    let subs = call(&b, "ListSubscriptionsByTopic", &[("TopicArn", &topic)]).expect("list");
    assert!(xml_values(&subs, "SubscriptionArn").is_empty());
    call(&b, "DeleteTopic", &[("TopicArn", &topic)]).expect("delete through b");
    assert!(a.topic_policy(&topic).expect("read").is_none());
    assert!(xml_values(&call(&a, "ListTopics", &[]).expect("list"), "TopicArn").is_empty());
    deliverer.stop().await;
}

#[test]
fn concurrent_claims_are_disjoint_and_together_take_every_delivery() {
    let url = fresh_database();
    let (a, b) = two_nodes(&url);
    let topic = create_topic(&a, "fan-out");
    for i in 0..10 {
        subscribe_lambda(&a, &topic, &format!("{LAMBDA}{i}")).expect("subscribe");
    }
    for i in 0..6 {
        let m = format!("m{i}");
        call(&b, "Publish", &[("TopicArn", &topic), ("Message", &m)]).expect("publish");
    }
    let total = 60;
    let barrier = Barrier::new(2);
    let claimed: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = [&a, &b]
            .into_iter()
            .map(|sns| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    loop {
                        let due = sns
                            .store
                            .due(now_ms(), 3, &HashSet::new(), Duration::from_secs(60))
                            .expect("claim");
                        assert!(due.damaged.is_empty());
                        if due.jobs.is_empty() {
                            return mine;
                        }
                        assert!(due.jobs.iter().all(|j| j.claim.lease.is_some()));
                        mine.extend(due.jobs.iter().map(|j| j.claim.id));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("claimer"))
            .collect()
    });
    let (first, second): (HashSet<i64>, HashSet<i64>) = (
        claimed[0].iter().copied().collect(),
        claimed[1].iter().copied().collect(),
    );
    assert_eq!(first.len(), claimed[0].len(), "no row twice to one node");
    assert_eq!(second.len(), claimed[1].len(), "no row twice to one node");
    assert!(first.is_disjoint(&second), "no row to both nodes");
    assert_eq!(
        first.len() + second.len(),
        total,
        "every row to one of them"
    );
    // Every lease is live: nothing is due for anyone, and nothing is next.
    for sns in [&a, &b] {
        let due = sns
            .store
            .due(now_ms(), 100, &HashSet::new(), Duration::from_secs(60))
            .expect("claim");
        assert!(due.jobs.is_empty());
        assert_eq!(sns.store.next_due(&HashSet::new()).expect("next"), None);
    }
}

#[test]
fn an_expired_lease_makes_a_delivery_due_again_and_a_live_one_does_not() {
    let url = fresh_database();
    let (a, b) = two_nodes(&url);
    let topic = create_topic(&a, "t");
    subscribe_lambda(&a, &topic, LAMBDA).expect("subscribe");
    call(&a, "Publish", &[("TopicArn", &topic), ("Message", "m")]).expect("publish");
    let none = HashSet::new();
    let long = Duration::from_secs(60);

    let first = a
        .store
        .due(now_ms(), 10, &none, Duration::from_millis(1500))
        .expect("claim")
        .jobs;
    assert_eq!(first.len(), 1);
    let first = first[0].claim.clone();
    assert!(
        b.store
            .due(now_ms(), 10, &none, long)
            .expect("claim")
            .jobs
            .is_empty(),
        "a live lease keeps the delivery from the other node"
    );
    std::thread::sleep(Duration::from_millis(2000));
    let second = b.store.due(now_ms(), 10, &none, long).expect("claim").jobs;
    assert_eq!(second.len(), 1, "due again once the lease expired");
    let second = second[0].claim.clone();
    assert_eq!(second.id, first.id);
    assert_ne!(second.lease, first.lease, "a new claim, a new token");

    // The first node's outcomes under its lost lease change nothing.
    a.store
        .retry_later(&first, now_ms() + 60_000, "late")
        .expect("retry");
    a.store.dead_letter(&first, "late", now_ms()).expect("dead");
    a.store.delivered(&first).expect("delivered");
    a.store
        .release(std::slice::from_ref(&first))
        .expect("release");
    assert_eq!(a.pending_deliveries(&topic).expect("pending"), 1);
    assert!(a.dead_letters(&topic).expect("dead").is_empty());
    assert!(
        a.store
            .due(now_ms(), 10, &none, long)
            .expect("claim")
            .jobs
            .is_empty(),
        "still held by the second node"
    );

    // A retry ends the claim: due again for anyone, one attempt made.
    b.store
        .retry_later(&second, now_ms(), "try again")
        .expect("retry");
    let third = a.store.due(now_ms(), 10, &none, long).expect("claim").jobs;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].attempts, 1);
    // A released claim is due again at once.
    a.store
        .release(std::slice::from_ref(&third[0].claim))
        .expect("release");
    let fourth = b.store.due(now_ms(), 10, &none, long).expect("claim").jobs;
    assert_eq!(fourth.len(), 1, "given back, not waiting for its lease");
    b.store.delivered(&fourth[0].claim).expect("delivered");
    assert_eq!(a.pending_deliveries(&topic).expect("pending"), 0);
    assert_eq!(
        a.store.next_due(&none).expect("next"),
        None,
        "the message went with its last delivery"
    );
}

/// Runs `attempts(node_index)` on each node from its own thread, all released at once,
/// and returns every result.
fn race<T: Send>(nodes: &[Sns], attempts: impl Fn(usize, &Sns) -> Vec<T> + Sync) -> Vec<T> {
    let barrier = Barrier::new(nodes.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(n, sns)| {
                let (barrier, attempts) = (&barrier, &attempts);
                scope.spawn(move || {
                    barrier.wait();
                    attempts(n, sns)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("racer"))
            .collect()
    })
}

#[test]
fn limits_hold_for_the_cluster_when_nodes_race() {
    let url = fresh_database();
    let nodes = vec![
        node(&url, BASE_A),
        node(&url, BASE_B),
        node(&url, "http://127.0.0.3:9702/_warden/sns/"),
    ];
    let topic = create_topic(&nodes[0], "crowded");

    // Subscriptions per topic.
    let results = race(&nodes, |n, sns| {
        (0..45)
            .map(|i| subscribe_lambda(sns, &topic, &format!("{LAMBDA}-{n}-{i}")))
            .collect()
    });
    let made = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        made, MAX_SUBSCRIPTIONS_PER_TOPIC,
        "exactly the limit, not more"
    );
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), "SubscriptionLimitExceeded", "{r}");
    }
    let (confirmed, pending) = nodes[1].store.subscription_counts(&topic).expect("counts");
    assert_eq!(
        (confirmed, pending),
        (MAX_SUBSCRIPTIONS_PER_TOPIC as u64, 0)
    );

    // Tags per topic.
    let results = race(&nodes, |n, sns| {
        (0..20)
            .map(|i| {
                call(
                    sns,
                    "TagResource",
                    &[
                        ("ResourceArn", &topic),
                        ("Tags.member.1.Key", &format!("k{n}-{i}")),
                        ("Tags.member.1.Value", "v"),
                    ],
                )
            })
            .collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), MAX_TAGS);
    let tags = call(&nodes[0], "ListTagsForResource", &[("ResourceArn", &topic)]).expect("tags");
    assert_eq!(xml_values(&tags, "Key").len(), MAX_TAGS);

    // Queued deliveries per topic: room for 10 more, 30 publishes to one subscriber.
    let quiet = create_topic(&nodes[0], "quiet");
    subscribe_lambda(&nodes[0], &quiet, LAMBDA).expect("subscribe");
    call(
        &nodes[0],
        "Publish",
        &[("TopicArn", &quiet), ("Message", "first")],
    )
    .expect("publish");
    let fill = MAX_PENDING_DELIVERIES_PER_TOPIC - 1 - 10;
    execute(
        &url,
        format!(
            "INSERT INTO sns_deliveries (message_id, topic_arn, subscription_arn, protocol, \
             endpoint, due_at) SELECT (SELECT id FROM sns_messages WHERE topic_arn = '{quiet}' \
             LIMIT 1), '{quiet}', 'x', 'lambda', 'x', 9000000000000 \
             FROM generate_series(1, {fill})"
        ),
    );
    let results = race(&nodes, |_, sns| {
        (0..10)
            .map(|_| call(sns, "Publish", &[("TopicArn", &quiet), ("Message", "m")]))
            .collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
    assert_eq!(
        nodes[1].pending_deliveries(&quiet).expect("pending"),
        MAX_PENDING_DELIVERIES_PER_TOPIC as u64
    );

    // Topics per account: 10 places left, 30 attempts.
    let left = 10;
    let filled = MAX_TOPICS_PER_ACCOUNT - 2 - left; // beside `crowded` and `quiet`
    execute(
        &url,
        format!(
            "INSERT INTO sns_topics (arn, account, region, name, created_at) \
             SELECT 'arn:aws:sns:{REGION}:{ACCOUNT}:bulk' || i, '{ACCOUNT}', '{REGION}', \
             'bulk' || i, 0 FROM generate_series(1, {filled}) AS i"
        ),
    );
    let results = race(&nodes, |n, sns| {
        (0..10)
            .map(|i| call(sns, "CreateTopic", &[("Name", &format!("race-{n}-{i}"))]))
            .collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), left);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), "TopicLimitExceeded", "{r}");
    }
    let mut seen = 0;
    let mut token: Option<String> = None;
    loop {
        let mut params = Vec::new();
        if let Some(t) = &token {
            params.push(("NextToken", t.as_str()));
        }
        let page = call(&nodes[2], "ListTopics", &params).expect("page");
        seen += xml_values(&page, "TopicArn").len();
        token = xml_value(&page, "NextToken");
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, MAX_TOPICS_PER_ACCOUNT);
}

#[test]
fn the_signing_key_is_offered_once_stored_sealed_and_resealed() {
    let url = fresh_database();
    // Two nodes starting at once each offer a key; both use the one stored.
    let barrier = Barrier::new(2);
    let (a, b) = std::thread::scope(|scope| {
        let start = |base: &'static str| {
            let (barrier, url) = (&barrier, &url);
            scope.spawn(move || {
                let pool = pool(url, 1);
                barrier.wait();
                Sns::open_shared(pool, base, Arc::new(TestSealer(7))).expect("open")
            })
        };
        let (a, b) = (start(BASE_A), start(BASE_B));
        (a.join().expect("a"), b.join().expect("b"))
    });
    assert_eq!(a.signer.public_key(), b.signer.public_key());
    assert_eq!(a.signing_cert_pem(), b.signing_cert_pem());

    let admin = pool(&url, 1);
    let sealed = signing_key(&admin).expect("read").expect("stored");
    let pkcs8 = TestSealer(7)
        .unseal(&sealed)
        .expect("opens with the master key");
    assert!(pkcs8.len() > 1000, "an RSA-2048 key in PKCS#8");
    // No run of 16 bytes of the PKCS#8 key is in the sealed column, and the key is
    // nowhere in the table (the certificate holds its public half only).
    let probes: Vec<Vec<u8>> = pkcs8
        .chunks(16)
        .filter(|c| c.len() == 16)
        .map(<[u8]>::to_vec)
        .collect();
    let whole = pkcs8.clone();
    let found: i64 = admin
        .run(move |c| {
            let row = c
                .client()
                .query_one(
                    "SELECT (SELECT count(*) FROM sns_signing_key k, \
                     UNNEST($1::BYTEA[]) AS p(probe) WHERE position(p.probe IN k.sealed) > 0) \
                     + (SELECT count(*) FROM sns_signing_key \
                     WHERE position($2::BYTEA IN sealed) > 0 OR position($2::BYTEA IN cert_der) > 0)",
                    &[&probes, &whole],
                )
                .map_err(warden_postgres::Error::at("probing"))?;
            row.try_get(0)
                .map_err(warden_postgres::Error::at("probing"))
        })
        .expect("probe");
    assert_eq!(found, 0, "the private key is stored only sealed");

    // A node with another master key refuses the stored key rather than replacing it.
    let e = Sns::open_shared(pool(&url, 1), BASE_A, Arc::new(TestSealer(8)))
        .expect_err("another master key");
    assert!(matches!(e, SnsError::Signing(_)), "{e}");
    assert_eq!(signing_key(&admin).expect("read"), Some(sealed.clone()));

    // A rotation reseals it: compare-and-set, once.
    assert!(reseal_signing_key(&admin, &TestSealer(7), &TestSealer(8)).expect("reseal"));
    let resealed = signing_key(&admin).expect("read").expect("stored");
    assert_ne!(resealed, sealed);
    assert_eq!(TestSealer(8).unseal(&resealed).expect("opens"), pkcs8);
    assert!(
        !reseal_signing_key(&admin, &TestSealer(7), &TestSealer(8)).expect("again"),
        "already under the new key: nothing to do"
    );
    let c = Sns::open_shared(pool(&url, 1), BASE_A, Arc::new(TestSealer(8))).expect("new key");
    assert_eq!(c.signer.public_key(), a.signer.public_key(), "the same key");
    assert!(Sns::open_shared(pool(&url, 1), BASE_A, Arc::new(TestSealer(7))).is_err());

    // A reseal from a stale read is refused and changes nothing.
    assert!(!replace_signing_key(&admin, &sealed, b"stale").expect("cas"));
    assert_eq!(signing_key(&admin).expect("read"), Some(resealed.clone()));
    assert!(replace_signing_key(&admin, &resealed, &resealed).expect("cas"));
    // A key that opens with neither sealer is not resealed.
    let e = reseal_signing_key(&admin, &TestSealer(1), &TestSealer(2)).expect_err("neither");
    assert!(matches!(e, SnsError::Signing(_)), "{e}");
    assert_eq!(signing_key(&admin).expect("read"), Some(resealed));
}

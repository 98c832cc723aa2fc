//! Moving a node's own `sns.db` into the shared store: everything copied exactly once and
//! delivered from there under the cluster's key, nothing copied twice when an import runs
//! again after a crash before the file was renamed, a topic or endpoint already shared
//! kept as it is, and what the shared store's bounds leave no room for kept in the file
//! and moved at a later start.

use std::path::{Path, PathBuf};

use super::signature::{verify_http_body, verify_lambda_record};
use super::{
    call, create_topic, fast_config, fresh_database, next_invocation, node, open, pool, url_query,
    xml_value, xml_values, Endpoint, FakeLambda, ACCOUNT, BASE, REGION,
};
use crate::model::now_ms;
use crate::store::Claim;
use crate::{Deliverer, ImportReport, Leftover, Sns, SnsError, MAX_TOPICS_PER_ACCOUNT};

const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";
const OTHER_FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:g";
/// A time long after the tests run: a delivery due then is not made during them.
const FAR: i64 = 4_102_444_800_000;

fn file_path(dir: &Path) -> PathBuf {
    dir.join("sns.db")
}

fn imported_path(dir: &Path) -> PathBuf {
    dir.join("sns.db.imported")
}

/// One value of a raw query on a node's file.
fn file_value<T: rusqlite::types::FromSql>(dir: &Path, sql: &str) -> T {
    let db = rusqlite::Connection::open(file_path(dir)).expect("open the file");
    db.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// The token of the SubscriptionConfirmation queued in a node's file for `endpoint`.
fn file_token(dir: &Path, endpoint: &str) -> String {
    file_value(
        dir,
        &format!(
            "SELECT m.token FROM messages m JOIN deliveries d ON d.message_id = m.id \
             WHERE d.endpoint = '{endpoint}' AND m.kind = 'SubscriptionConfirmation'"
        ),
    )
}

/// One `i64` of a raw query on the shared database.
fn pg_i64(url: &str, sql: &str) -> i64 {
    let sql = sql.to_owned();
    pool(url, 1)
        .run(move |c| {
            let row = c
                .client()
                .query_one(sql.as_str(), &[])
                .map_err(warden_postgres::Error::at("raw SQL"))?;
            row.try_get::<_, i64>(0)
                .map_err(warden_postgres::Error::at("raw SQL"))
        })
        .expect("raw SQL")
}

/// One text of a raw query on the shared database.
fn pg_text(url: &str, sql: &str) -> String {
    let sql = sql.to_owned();
    pool(url, 1)
        .run(move |c| {
            let row = c
                .client()
                .query_one(sql.as_str(), &[])
                .map_err(warden_postgres::Error::at("raw SQL"))?;
            row.try_get::<_, String>(0)
                .map_err(warden_postgres::Error::at("raw SQL"))
        })
        .expect("raw SQL")
}

fn pg_execute(url: &str, sql: &str) {
    let sql = sql.to_owned();
    pool(url, 1)
        .run(move |c| {
            c.client()
                .batch_execute(&sql)
                .map_err(warden_postgres::Error::at("raw SQL"))
        })
        .expect("raw SQL");
}

/// The numbers of rows in the shared store: topics, tags, subscriptions, messages,
/// deliveries, dead letters.
fn pg_counts(url: &str) -> [i64; 6] {
    [
        "sns_topics",
        "sns_topic_tags",
        "sns_subscriptions",
        "sns_messages",
        "sns_deliveries",
        "sns_dead_letters",
    ]
    .map(|table| pg_i64(url, &format!("SELECT count(*) FROM {table}")))
}

fn subscribe(sns: &Sns, topic: &str, protocol: &str, endpoint: &str) -> String {
    let xml = call(
        sns,
        "Subscribe",
        &[
            ("TopicArn", topic),
            ("Protocol", protocol),
            ("Endpoint", endpoint),
        ],
    )
    .expect("Subscribe");
    xml_value(&xml, "SubscriptionArn").expect("SubscriptionArn")
}

fn publish(sns: &Sns, topic: &str, message: &str) -> String {
    let xml = call(sns, "Publish", &[("TopicArn", topic), ("Message", message)]).expect("Publish");
    xml_value(&xml, "MessageId").expect("MessageId")
}

/// What [`old_node_file`] put in the file.
struct OldNode {
    orders: String,
    audit: String,
    lambda: String,
    confirmed: String,
    pending: String,
    pending_token: String,
    dead_message: String,
}

/// The file a node of an earlier release left in `dir`, made through its own API:
/// `orders` (DisplayName, Policy, two tags) with a lambda subscription, an http one
/// confirmed (at `confirmed_url`) and an http one pending (at `pending_url`), two
/// messages published (four notifications queued, one of them retried twice already and
/// due far later) and the pending one's confirmation queued; `audit` with a lambda
/// subscription and one dead letter.
fn old_node_file(dir: &Path, confirmed_url: &str, pending_url: &str) -> OldNode {
    let sns = open(dir);
    let orders = xml_value(
        &call(
            &sns,
            "CreateTopic",
            &[
                ("Name", "orders"),
                ("Attributes.entry.1.key", "DisplayName"),
                ("Attributes.entry.1.value", "Orders"),
                ("Attributes.entry.2.key", "Policy"),
                ("Attributes.entry.2.value", r#"{"Version":"2012-10-17"}"#),
                ("Tags.member.1.Key", "env"),
                ("Tags.member.1.Value", "prod"),
                ("Tags.member.2.Key", "team"),
                ("Tags.member.2.Value", "core"),
            ],
        )
        .expect("CreateTopic"),
        "TopicArn",
    )
    .expect("TopicArn");
    let lambda = subscribe(&sns, &orders, "lambda", FUNCTION);
    subscribe(&sns, &orders, "http", confirmed_url);
    let token = file_token(dir, confirmed_url);
    let confirmed = xml_value(
        &sns.confirm_via_url(&orders, &token, "r").expect("confirm"),
        "SubscriptionArn",
    )
    .expect("SubscriptionArn");
    subscribe(&sns, &orders, "http", pending_url);
    let pending_token = file_token(dir, pending_url);
    let pending = file_value(
        dir,
        &format!("SELECT arn FROM subscriptions WHERE endpoint = '{pending_url}'"),
    );
    publish(&sns, &orders, "first");
    publish(&sns, &orders, "second");
    let retried: i64 = file_value(
        dir,
        &format!(
            "SELECT min(id) FROM deliveries WHERE endpoint = '{confirmed_url}' \
             AND message_id IN (SELECT id FROM messages WHERE kind = 'Notification')"
        ),
    );
    for _ in 0..2 {
        let claim = Claim {
            id: retried,
            lease: None,
        };
        sns.store
            .retry_later(&claim, FAR, "HTTP 500")
            .expect("retry later");
    }

    let audit = create_topic(&sns, "audit");
    subscribe(&sns, &audit, "lambda", OTHER_FUNCTION);
    let dead_message = publish(&sns, &audit, "undeliverable");
    let id: i64 = file_value(
        dir,
        &format!("SELECT id FROM deliveries WHERE topic_arn = '{audit}'"),
    );
    sns.store
        .dead_letter(&Claim { id, lease: None }, "gave up", now_ms())
        .expect("dead letter");
    OldNode {
        orders,
        audit,
        lambda,
        confirmed,
        pending,
        pending_token,
        dead_message,
    }
}

#[tokio::test]
async fn a_nodes_file_moves_into_the_shared_store_once_and_is_delivered_from_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut confirmed_endpoint = Endpoint::start(&[], 200).await;
    let mut pending_endpoint = Endpoint::start(&[], 200).await;
    let old = old_node_file(dir.path(), &confirmed_endpoint.url, &pending_endpoint.url);

    let url = fresh_database();
    let shared = node(&url, BASE);
    let report = shared.import_file(&file_path(dir.path())).expect("import");
    assert_eq!(
        report,
        ImportReport {
            found: true,
            topics: 2,
            subscriptions: 4,
            // Four notifications and the pending subscription's confirmation; the
            // confirmed one's confirmation, still queued, is not needed any more.
            deliveries: 5,
            skipped: 1,
            dead_letters: 1,
            moved_to: Some(imported_path(dir.path())),
            ..ImportReport::default()
        }
    );
    assert!(!file_path(dir.path()).exists(), "the file is moved aside");
    assert!(imported_path(dir.path()).exists());
    // Exactly once: two topics, their two tags, four subscriptions, three messages (two
    // notifications, one confirmation), five deliveries, one dead letter.
    assert_eq!(pg_counts(&url), [2, 2, 4, 3, 5, 1]);

    // The topic's attributes and tags.
    let attrs = call(&shared, "GetTopicAttributes", &[("TopicArn", &old.orders)]).expect("get");
    assert!(
        attrs.contains("<key>DisplayName</key><value>Orders</value>"),
        "{attrs}"
    );
    assert!(attrs.contains("2012-10-17"), "{attrs}");
    let tags = call(
        &shared,
        "ListTagsForResource",
        &[("ResourceArn", &old.orders)],
    )
    .expect("tags");
    assert_eq!(xml_values(&tags, "Value"), vec!["prod", "core"]);
    // The subscriptions, under their ARNs and in their state.
    let listed = call(
        &shared,
        "ListSubscriptionsByTopic",
        &[("TopicArn", &old.orders)],
    )
    .expect("list");
    let mut arns = xml_values(&listed, "SubscriptionArn");
    arns.sort();
    let mut expected = vec![
        old.lambda.clone(),
        old.confirmed.clone(),
        "PendingConfirmation".to_owned(),
    ];
    expected.sort();
    assert_eq!(arns, expected, "{listed}");
    assert_eq!(
        pg_i64(
            &url,
            &format!(
                "SELECT count(*) FROM sns_subscriptions WHERE arn = '{}' AND NOT confirmed",
                old.pending
            )
        ),
        1
    );
    // The retried delivery keeps its attempts, next attempt and last error, unclaimed.
    assert_eq!(
        pg_text(
            &url,
            &format!(
                "SELECT attempts || '/' || due_at || '/' || last_error FROM sns_deliveries \
                 WHERE endpoint = '{}' AND attempts > 0 AND lease_until IS NULL",
                confirmed_endpoint.url
            )
        ),
        format!("2/{FAR}/HTTP 500")
    );
    let dead = shared.dead_letters(&old.audit).expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id, old.dead_message);
    assert_eq!(dead[0].message, "undeliverable");
    assert_eq!(dead[0].last_error, "gave up");

    // Delivered from the shared store, signed with the cluster's key and pointing to the
    // delivering node's URLs: nothing of the file's key is used.
    let (lambda, mut invocations) = FakeLambda::new(0);
    let deliverer = Deliverer::start(&shared, lambda, fast_config(3));
    let mut messages = Vec::new();
    for _ in 0..2 {
        let invocation = next_invocation(&mut invocations).await;
        assert_eq!(invocation.subscription_arn, old.lambda);
        let event: serde_json::Value =
            serde_json::from_slice(&invocation.event).expect("event JSON");
        let record = &event["Records"][0]["Sns"];
        verify_lambda_record(&shared, record);
        messages.push(record["Message"].as_str().expect("Message").to_owned());
    }
    messages.sort();
    assert_eq!(messages, vec!["first", "second"]);
    let delivered = confirmed_endpoint.next().await.json();
    verify_http_body(&shared, &delivered);
    assert_eq!(delivered["Type"], "Notification");
    let confirmation = pending_endpoint.next().await.json();
    verify_http_body(&shared, &confirmation);
    assert_eq!(confirmation["Type"], "SubscriptionConfirmation");
    assert_eq!(confirmation["Token"], old.pending_token.as_str());
    // The token the old node made confirms through the cluster.
    let subscribe_url = confirmation["SubscribeURL"].as_str().expect("SubscribeURL");
    assert!(subscribe_url.starts_with(BASE), "{subscribe_url}");
    let answer = shared
        .serve_public("", &url_query(subscribe_url), "r")
        .expect("confirm");
    assert_eq!(
        xml_value(&answer.body, "SubscriptionArn").as_deref(),
        Some(old.pending.as_str())
    );
    deliverer.stop().await;
}

#[test]
fn an_import_run_again_after_a_crash_before_the_rename_copies_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = old_node_file(dir.path(), "http://127.0.0.1:9/c", "http://127.0.0.1:9/p");
    // What the file was before the import renamed it.
    let copy = dir.path().join("copy.db");
    // The old node is closed, so its writes are all in the database file itself.
    std::fs::copy(file_path(dir.path()), &copy).expect("copy");

    let url = fresh_database();
    let shared = node(&url, BASE);
    let first = shared.import_file(&file_path(dir.path())).expect("import");
    assert!(first.is_complete() && first.deliveries == 5, "{first:?}");
    let after_first = pg_counts(&url);
    assert_eq!(after_first, [2, 2, 4, 3, 5, 1]);
    // The cluster delivers the notifications meanwhile.
    pg_execute(
        &url,
        "DELETE FROM sns_deliveries WHERE message_id IN \
         (SELECT id FROM sns_messages WHERE kind = 'Notification'); \
         DELETE FROM sns_messages WHERE kind = 'Notification';",
    );

    // The process died after the commit, before the rename: the file is back.
    std::fs::rename(&copy, file_path(dir.path())).expect("put the file back");
    let again = node(&url, BASE)
        .import_file(&file_path(dir.path()))
        .expect("import again");
    assert_eq!(
        again,
        ImportReport {
            found: true,
            already_imported: true,
            moved_to: Some(imported_path(dir.path())),
            ..ImportReport::default()
        }
    );
    assert_eq!(
        pg_counts(&url),
        [2, 2, 4, 1, 1, 1],
        "nothing copied again, not even what was delivered since"
    );
    assert!(!file_path(dir.path()).exists());
    assert_eq!(shared.dead_letters(&old.audit).expect("dead").len(), 1);

    // With nothing there, an import finds nothing.
    let none = shared.import_file(&file_path(dir.path())).expect("no file");
    assert_eq!(none, ImportReport::default());
}

#[test]
fn a_topic_and_an_endpoint_already_shared_are_kept_as_they_are() {
    let url = fresh_database();
    let shared = node(&url, BASE);
    let topic = xml_value(
        &call(
            &shared,
            "CreateTopic",
            &[
                ("Name", "orders"),
                ("Attributes.entry.1.key", "DisplayName"),
                ("Attributes.entry.1.value", "Shared"),
            ],
        )
        .expect("CreateTopic"),
        "TopicArn",
    )
    .expect("TopicArn");
    let stored = subscribe(&shared, &topic, "lambda", FUNCTION);

    let dir = tempfile::tempdir().expect("tempdir");
    {
        let sns = open(dir.path());
        call(
            &sns,
            "CreateTopic",
            &[
                ("Name", "orders"),
                ("Attributes.entry.1.key", "DisplayName"),
                ("Attributes.entry.1.value", "From the file"),
                ("Tags.member.1.Key", "env"),
                ("Tags.member.1.Value", "prod"),
            ],
        )
        .expect("CreateTopic");
        let own = subscribe(&sns, &topic, "lambda", FUNCTION);
        assert_ne!(own, stored);
        subscribe(&sns, &topic, "lambda", OTHER_FUNCTION);
        publish(&sns, &topic, "m");
    }

    let report = shared.import_file(&file_path(dir.path())).expect("import");
    assert_eq!(
        report,
        ImportReport {
            found: true,
            topics_existing: 1,
            subscriptions: 1,
            subscriptions_existing: 1,
            deliveries: 2,
            moved_to: Some(imported_path(dir.path())),
            ..ImportReport::default()
        }
    );
    let attrs = call(&shared, "GetTopicAttributes", &[("TopicArn", &topic)]).expect("get");
    assert!(attrs.contains("<value>Shared</value>"), "{attrs}");
    assert_eq!(pg_counts(&url), [1, 0, 2, 1, 2, 0]);
    // The file's notification for the endpoint subscribed already goes to the stored
    // subscription.
    assert_eq!(
        pg_text(
            &url,
            &format!("SELECT subscription_arn FROM sns_deliveries WHERE endpoint = '{FUNCTION}'")
        ),
        stored
    );
}

#[test]
fn what_the_shared_bounds_leave_no_room_for_stays_in_the_file_and_moves_later() {
    let url = fresh_database();
    let shared = node(&url, BASE);
    // Another node's topics: one short of the account's limit.
    let others = MAX_TOPICS_PER_ACCOUNT - 1;
    pg_execute(
        &url,
        &format!(
            "INSERT INTO sns_topics (arn, account, region, name, created_at) \
             SELECT 'arn:aws:sns:{REGION}:{ACCOUNT}:other-' || i, '{ACCOUNT}', '{REGION}', \
             'other-' || i, 0 FROM generate_series(1, {others}) AS i"
        ),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let (first, later) = {
        let sns = open(dir.path());
        let first = create_topic(&sns, "a-first");
        subscribe(&sns, &first, "lambda", FUNCTION);
        publish(&sns, &first, "to a");
        let b = create_topic(&sns, "b-second");
        subscribe(&sns, &b, "lambda", FUNCTION);
        publish(&sns, &b, "to b");
        let c = create_topic(&sns, "c-third");
        (first, vec![b, c])
    };

    let report = shared.import_file(&file_path(dir.path())).expect("import");
    assert_eq!(
        report,
        ImportReport {
            found: true,
            topics: 1,
            subscriptions: 1,
            deliveries: 1,
            left: Leftover {
                topics: 2,
                subscriptions: 1,
                deliveries: 1,
                dead_letters: 0,
            },
            left_topics: later.clone(),
            moved_to: None,
            ..ImportReport::default()
        }
    );
    assert!(!report.is_complete());
    assert!(file_path(dir.path()).exists(), "the file is kept");
    assert!(!imported_path(dir.path()).exists());
    assert_eq!(
        pg_i64(
            &url,
            &format!("SELECT count(*) FROM sns_topics WHERE account = '{ACCOUNT}'")
        ),
        i64::try_from(MAX_TOPICS_PER_ACCOUNT).expect("fits"),
        "the bound holds"
    );
    assert_eq!(
        pg_i64(
            &url,
            &format!("SELECT count(*) FROM sns_deliveries WHERE topic_arn = '{first}'")
        ),
        1
    );

    // Run again with no room made: nothing changes, nothing is copied twice.
    let again = node(&url, BASE)
        .import_file(&file_path(dir.path()))
        .expect("import again");
    assert_eq!(again.topics + again.deliveries + again.subscriptions, 0);
    assert_eq!(again.left, report.left);
    // The first topic's delivery is made meanwhile, and two other topics are deleted.
    pg_execute(
        &url,
        &format!(
            "DELETE FROM sns_deliveries WHERE topic_arn = '{first}'; \
             DELETE FROM sns_messages WHERE topic_arn = '{first}'; \
             DELETE FROM sns_topics WHERE name IN ('other-1', 'other-2');"
        ),
    );
    let last = shared
        .import_file(&file_path(dir.path()))
        .expect("import at last");
    assert_eq!(
        last,
        ImportReport {
            found: true,
            topics: 2,
            subscriptions: 1,
            deliveries: 1,
            moved_to: Some(imported_path(dir.path())),
            ..ImportReport::default()
        }
    );
    assert_eq!(
        pg_i64(
            &url,
            &format!("SELECT count(*) FROM sns_deliveries WHERE topic_arn = '{first}'")
        ),
        0,
        "what was delivered after the first import is not copied again"
    );
    assert_eq!(
        pg_i64(&url, "SELECT count(*) FROM sns_subscriptions"),
        2,
        "one subscription per topic that has one, once"
    );
    assert!(!file_path(dir.path()).exists());
}

#[test]
fn a_file_is_imported_only_into_the_shared_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = open(dir.path());
    let other = tempfile::tempdir().expect("tempdir");
    open(other.path());
    let err = local
        .import_file(&file_path(other.path()))
        .expect_err("refused on a file store");
    assert!(matches!(err, SnsError::Config(_)), "{err}");
    assert!(file_path(other.path()).exists());
}

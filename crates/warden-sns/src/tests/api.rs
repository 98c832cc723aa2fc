//! The query surface over a real store: round trips, refusals, bounds, pagination.

use std::os::unix::fs::PermissionsExt;

use proptest::prelude::*;

use super::{call, create_topic, ctx, open, xml_value, xml_values, Fixture, ACCOUNT, REGION};
use crate::{
    MAX_MESSAGE_BYTES, MAX_PENDING_BYTES_PER_TOPIC, MAX_PENDING_DELIVERIES_PER_TOPIC,
    MAX_SUBSCRIPTIONS_PER_TOPIC, MAX_TOPICS_PER_ACCOUNT, NAMESPACE,
};

const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

on_both_stores!(
    topics_round_trip,
    create_topic_is_idempotent_and_refuses_conflicts,
    topic_refusals_name_what_they_refuse,
    tags_round_trip_and_bound,
    topic_limit_per_account,
    subscribe_refusals_name_what_they_refuse,
    subscriptions_round_trip,
    subscription_limit_per_topic,
    publish_validation,
    publish_fans_out_and_throttles_a_full_queue,
    actions_and_contexts_refused,
);

/// Adds `n` topics of [`ACCOUNT`] in [`REGION`] behind the service's back, named
/// `{prefix}0000` and up.
pub(super) fn bulk_topics(fix: &Fixture, prefix: &str, n: usize) {
    let arn = format!("arn:aws:sns:{REGION}:{ACCOUNT}:{prefix}");
    fix.execute(
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             INSERT INTO topics (arn, account, region, name, created_at) \
             SELECT '{arn}' || printf('%04d', i), '{ACCOUNT}', '{REGION}', \
             '{prefix}' || printf('%04d', i), 0 FROM n",
            last = n - 1
        ),
        &format!(
            "INSERT INTO sns_topics (arn, account, region, name, created_at) \
             SELECT '{arn}' || lpad(i::TEXT, 4, '0'), '{ACCOUNT}', '{REGION}', \
             '{prefix}' || lpad(i::TEXT, 4, '0'), 0 FROM generate_series(0, {last}) AS i",
            last = n - 1
        ),
    );
}

fn code(r: Result<String, crate::SnsError>) -> &'static str {
    r.expect_err("an error").code()
}

fn message(r: Result<String, crate::SnsError>) -> String {
    r.expect_err("an error").to_string()
}

fn topics_round_trip(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let arn = create_topic(&sns, "orders");
    assert_eq!(arn, "arn:aws:sns:us-east-1:123456789012:orders");
    call(
        &sns,
        "SetTopicAttributes",
        &[
            ("TopicArn", &arn),
            ("AttributeName", "DisplayName"),
            ("AttributeValue", "Orders & co"),
        ],
    )
    .expect("set DisplayName");
    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    call(
        &sns,
        "SetTopicAttributes",
        &[
            ("TopicArn", &arn),
            ("AttributeName", "Policy"),
            ("AttributeValue", policy),
        ],
    )
    .expect("set Policy");
    assert_eq!(
        sns.topic_policy(&arn).expect("policy").as_deref(),
        Some(policy)
    );
    let xml = call(&sns, "GetTopicAttributes", &[("TopicArn", &arn)]).expect("get");
    assert!(xml.starts_with(&format!(
        "<GetTopicAttributesResponse xmlns=\"{NAMESPACE}\">"
    )));
    let keys = xml_values(&xml, "key");
    let values = xml_values(&xml, "value");
    let get = |k: &str| keys.iter().position(|x| x == k).map(|i| values[i].clone());
    assert_eq!(get("DisplayName").as_deref(), Some("Orders & co"));
    assert_eq!(get("Owner").as_deref(), Some(ACCOUNT));
    assert_eq!(get("Policy").as_deref(), Some(policy));
    assert_eq!(get("SubscriptionsConfirmed").as_deref(), Some("0"));
    assert_eq!(get("SignatureVersion").as_deref(), Some("2"));
    assert!(get("EffectiveDeliveryPolicy").is_some());
    assert_eq!(xml_value(&xml, "RequestId").as_deref(), Some("req-1"));

    let list = call(&sns, "ListTopics", &[]).expect("list");
    assert_eq!(xml_values(&list, "TopicArn"), vec![arn.clone()]);
    assert!(xml_value(&list, "NextToken").is_none());

    call(&sns, "DeleteTopic", &[("TopicArn", &arn)]).expect("delete");
    call(&sns, "DeleteTopic", &[("TopicArn", &arn)]).expect("delete again is fine");
    assert_eq!(
        code(call(&sns, "GetTopicAttributes", &[("TopicArn", &arn)])),
        "NotFound"
    );
    assert!(sns.topic_policy(&arn).expect("policy").is_none());
}

fn create_topic_is_idempotent_and_refuses_conflicts(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let create = |extra: &[(&str, &str)]| {
        let mut p = vec![("Name", "t")];
        p.extend_from_slice(extra);
        call(&sns, "CreateTopic", &p)
    };
    create(&[
        ("Attributes.entry.1.key", "DisplayName"),
        ("Attributes.entry.1.value", "T"),
        ("Tags.member.1.Key", "env"),
        ("Tags.member.1.Value", "prod"),
    ])
    .expect("create");
    create(&[]).expect("same name again");
    create(&[
        ("Attributes.entry.1.key", "DisplayName"),
        ("Attributes.entry.1.value", "T"),
    ])
    .expect("same attributes again");
    assert!(message(create(&[
        ("Attributes.entry.1.key", "DisplayName"),
        ("Attributes.entry.1.value", "other"),
    ]))
    .contains("different attributes"));
    assert!(message(create(&[
        ("Tags.member.1.Key", "env"),
        ("Tags.member.1.Value", "dev"),
    ]))
    .contains("different tags"));
}

fn topic_refusals_name_what_they_refuse(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    for (params, named) in [
        (vec![("Name", "orders.fifo")], "FIFO"),
        (vec![("Name", "bad name")], "Name"),
        (vec![("Name", "")], "Name"),
        (vec![], "Name"),
        (
            vec![
                ("Name", "t"),
                ("Attributes.entry.1.key", "FifoTopic"),
                ("Attributes.entry.1.value", "true"),
            ],
            "FifoTopic",
        ),
        (
            vec![
                ("Name", "t"),
                ("Attributes.entry.1.key", "KmsMasterKeyId"),
                ("Attributes.entry.1.value", "alias/aws/sns"),
            ],
            "KmsMasterKeyId",
        ),
        (
            vec![
                ("Name", "t"),
                ("Attributes.entry.1.key", "SignatureVersion"),
                ("Attributes.entry.1.value", "1"),
            ],
            "SignatureVersion",
        ),
        (
            vec![
                ("Name", "t"),
                ("Attributes.entry.1.key", "Policy"),
                ("Attributes.entry.1.value", "not json"),
            ],
            "Policy",
        ),
        (
            vec![
                ("Name", "t"),
                ("Attributes.entry.1.key", "DeliveryPolicy"),
                (
                    "Attributes.entry.1.value",
                    r#"{"http":{"defaultThrottlePolicy":{"maxReceivesPerSecond":1}}}"#,
                ),
            ],
            "defaultThrottlePolicy",
        ),
        (
            vec![
                ("Name", "t"),
                ("Attributes.entry.1.key", "DisplayName"),
                ("Attributes.entry.1.value", &"d".repeat(101)),
            ],
            "DisplayName",
        ),
        (
            vec![("Name", "t"), ("DataProtectionPolicy", "{}")],
            "DataProtectionPolicy",
        ),
        (
            vec![
                ("Name", "t"),
                ("Tags.member.1.Key", "aws:x"),
                ("Tags.member.1.Value", "v"),
            ],
            "aws:",
        ),
        (vec![("Name", "t"), ("Surprise", "1")], "Surprise"),
    ] {
        let e = call(&sns, "CreateTopic", &params).expect_err(named);
        assert_eq!(e.code(), "InvalidParameter", "{named}: {e}");
        assert!(e.to_string().contains(named), "{named}: {e}");
    }
    let list = call(&sns, "ListTopics", &[]).expect("list");
    assert!(
        xml_values(&list, "TopicArn").is_empty(),
        "a refused call created nothing"
    );

    let arn = create_topic(&sns, "t");
    let e = call(
        &sns,
        "SetTopicAttributes",
        &[
            ("TopicArn", &arn),
            ("AttributeName", "TracingConfig"),
            ("AttributeValue", "Active"),
        ],
    )
    .expect_err("TracingConfig");
    assert!(e.to_string().contains("TracingConfig"), "{e}");
    let other_region = "arn:aws:sns:eu-west-1:123456789012:t";
    assert!(message(call(
        &sns,
        "GetTopicAttributes",
        &[("TopicArn", other_region)]
    ))
    .contains("region"));
    assert_eq!(
        code(call(
            &sns,
            "GetTopicAttributes",
            &[("TopicArn", "arn:aws:sns:us-east-1:123456789012:none")]
        )),
        "NotFound"
    );
}

fn tags_round_trip_and_bound(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let arn = create_topic(&sns, "t");
    call(
        &sns,
        "TagResource",
        &[
            ("ResourceArn", &arn),
            ("Tags.member.1.Key", "b"),
            ("Tags.member.1.Value", "2"),
            ("Tags.member.2.Key", "a"),
            ("Tags.member.2.Value", "1"),
        ],
    )
    .expect("tag");
    call(
        &sns,
        "TagResource",
        &[
            ("ResourceArn", &arn),
            ("Tags.member.1.Key", "a"),
            ("Tags.member.1.Value", "3"),
        ],
    )
    .expect("retag");
    let xml = call(&sns, "ListTagsForResource", &[("ResourceArn", &arn)]).expect("list");
    assert_eq!(xml_values(&xml, "Key"), vec!["a", "b"]);
    assert_eq!(xml_values(&xml, "Value"), vec!["3", "2"]);
    call(
        &sns,
        "UntagResource",
        &[
            ("ResourceArn", &arn),
            ("TagKeys.member.1", "a"),
            ("TagKeys.member.2", "zz"),
        ],
    )
    .expect("untag");
    let xml = call(&sns, "ListTagsForResource", &[("ResourceArn", &arn)]).expect("list");
    assert_eq!(xml_values(&xml, "Key"), vec!["b"]);

    let mut many: Vec<(String, String)> = Vec::new();
    for i in 1..=crate::MAX_TAGS {
        many.push((format!("Tags.member.{i}.Key"), format!("k{i}")));
        many.push((format!("Tags.member.{i}.Value"), String::new()));
    }
    many.push(("ResourceArn".into(), arn.clone()));
    let e = sns
        .handle(&ctx(), "TagResource", &many)
        .expect_err("51 tags in all");
    assert_eq!(e.code(), "TagLimitExceeded");
    assert_eq!(e.status(), 400);
    let xml = call(&sns, "ListTagsForResource", &[("ResourceArn", &arn)]).expect("list");
    assert_eq!(
        xml_values(&xml, "Key"),
        vec!["b"],
        "the refused tagging changed nothing"
    );
    assert_eq!(
        code(call(
            &sns,
            "ListTagsForResource",
            &[("ResourceArn", "arn:aws:sns:us-east-1:123456789012:gone")]
        )),
        "NotFound"
    );
}

fn topic_limit_per_account(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    bulk_topics(&fix, "bulk", MAX_TOPICS_PER_ACCOUNT);
    let e = call(&sns, "CreateTopic", &[("Name", "one-more")]).expect_err("over the limit");
    assert_eq!((e.code(), e.status()), ("TopicLimitExceeded", 403));
    call(&sns, "CreateTopic", &[("Name", "bulk0001")]).expect("an existing one is still returned");

    // Pagination: 100 a page, then the rest.
    let first = call(&sns, "ListTopics", &[]).expect("page 1");
    assert_eq!(xml_values(&first, "TopicArn").len(), crate::PAGE_SIZE);
    let mut seen = xml_values(&first, "TopicArn");
    let mut token = xml_value(&first, "NextToken");
    while let Some(t) = token {
        let page = call(&sns, "ListTopics", &[("NextToken", &t)]).expect("page");
        seen.extend(xml_values(&page, "TopicArn"));
        token = xml_value(&page, "NextToken");
    }
    assert_eq!(seen.len(), MAX_TOPICS_PER_ACCOUNT);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no topic twice");
    assert_eq!(
        code(call(&sns, "ListTopics", &[("NextToken", "%%%")])),
        "InvalidParameter"
    );

    let other = crate::CallContext {
        account: "210987654321".into(),
        ..ctx()
    };
    let theirs = sns
        .handle(&other, "ListTopics", &[])
        .expect("other account");
    assert!(
        xml_values(&theirs, "TopicArn").is_empty(),
        "accounts see their own topics"
    );
}

fn subscribe_refusals_name_what_they_refuse(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let arn = create_topic(&sns, "t");
    for (protocol, endpoint, extra, named) in [
        ("email", "a@example.com", None, "Protocol email"),
        ("email-json", "a@example.com", None, "Protocol email-json"),
        ("sms", "+15555550100", None, "Protocol sms"),
        (
            "sqs",
            "arn:aws:sqs:us-east-1:123456789012:q",
            None,
            "Protocol sqs",
        ),
        (
            "application",
            "arn:aws:sns:us-east-1:123456789012:endpoint/x",
            None,
            "Protocol application",
        ),
        (
            "firehose",
            "arn:aws:firehose:us-east-1:123456789012:deliverystream/x",
            None,
            "Protocol firehose",
        ),
        ("email-json", "ops@example.com", None, "Protocol email-json"),
        (
            "http",
            "https://example.com/",
            None,
            "must match the specified protocol",
        ),
        (
            "https",
            "http://example.com/",
            None,
            "must match the specified protocol",
        ),
        ("http", "http://user:pw@example.com/", None, "credentials"),
        ("http", "not a url", None, "Endpoint"),
        (
            "lambda",
            "arn:aws:lambda:us-east-1:123456789012:layer:x",
            None,
            "Lambda function ARN",
        ),
        (
            "http",
            "http://example.com/",
            Some(("FilterPolicy", "{}")),
            "FilterPolicy",
        ),
        (
            "http",
            "http://example.com/",
            Some(("RedrivePolicy", "{}")),
            "RedrivePolicy",
        ),
        (
            "http",
            "http://example.com/",
            Some(("RawMessageDelivery", "maybe")),
            "RawMessageDelivery",
        ),
        (
            "lambda",
            LAMBDA,
            Some(("RawMessageDelivery", "true")),
            "RawMessageDelivery",
        ),
        (
            "lambda",
            LAMBDA,
            Some(("DeliveryPolicy", "{}")),
            "DeliveryPolicy",
        ),
        (
            "http",
            "http://example.com/",
            Some((
                "DeliveryPolicy",
                r#"{"throttlePolicy":{"maxReceivesPerSecond":5}}"#,
            )),
            "throttlePolicy",
        ),
    ] {
        let mut params = vec![
            ("TopicArn", arn.as_str()),
            ("Protocol", protocol),
            ("Endpoint", endpoint),
        ];
        if let Some((k, v)) = extra {
            params.push(("Attributes.entry.1.key", k));
            params.push(("Attributes.entry.1.value", v));
        }
        let e = call(&sns, "Subscribe", &params).expect_err(named);
        assert_eq!(e.code(), "InvalidParameter", "{named}: {e}");
        assert!(e.to_string().contains(named), "{named}: {e}");
    }
    let subs = call(&sns, "ListSubscriptionsByTopic", &[("TopicArn", &arn)]).expect("list");
    assert!(
        xml_values(&subs, "SubscriptionArn").is_empty(),
        "nothing was subscribed"
    );
    assert_eq!(
        code(call(
            &sns,
            "Subscribe",
            &[
                ("TopicArn", "arn:aws:sns:us-east-1:123456789012:none"),
                ("Protocol", "lambda"),
                ("Endpoint", LAMBDA)
            ]
        )),
        "NotFound"
    );
}

fn subscriptions_round_trip(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let arn = create_topic(&sns, "t");
    let xml = call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "lambda"),
            ("Endpoint", LAMBDA),
        ],
    )
    .expect("lambda");
    let lambda_sub = xml_value(&xml, "SubscriptionArn").expect("arn");
    assert!(lambda_sub.starts_with(&format!("{arn}:")), "{lambda_sub}");
    let again = call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "lambda"),
            ("Endpoint", LAMBDA),
        ],
    )
    .expect("again");
    assert_eq!(
        xml_value(&again, "SubscriptionArn").as_deref(),
        Some(lambda_sub.as_str())
    );

    let xml = call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "http"),
            ("Endpoint", "http://127.0.0.1:9/hook"),
            ("Attributes.entry.1.key", "RawMessageDelivery"),
            ("Attributes.entry.1.value", "true"),
        ],
    )
    .expect("http");
    assert_eq!(
        xml_value(&xml, "SubscriptionArn").as_deref(),
        Some("pending confirmation")
    );
    let xml = call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "http"),
            ("Endpoint", "http://127.0.0.1:9/hook"),
            ("ReturnSubscriptionArn", "true"),
        ],
    )
    .expect("http again");
    let http_sub = xml_value(&xml, "SubscriptionArn").expect("arn");
    assert!(http_sub.starts_with(&format!("{arn}:")));
    assert!(message(call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "http"),
            ("Endpoint", "http://127.0.0.1:9/hook"),
            ("Attributes.entry.1.key", "RawMessageDelivery"),
            ("Attributes.entry.1.value", "false"),
        ],
    ))
    .contains("different attributes"));

    let list = call(&sns, "ListSubscriptionsByTopic", &[("TopicArn", &arn)]).expect("list");
    let mut shown = xml_values(&list, "SubscriptionArn");
    shown.sort();
    let mut expected = vec![lambda_sub.clone(), "PendingConfirmation".to_owned()];
    expected.sort();
    assert_eq!(shown, expected);
    let mine = call(&sns, "ListSubscriptions", &[]).expect("mine");
    assert_eq!(xml_values(&mine, "Owner"), vec![ACCOUNT, ACCOUNT]);

    let attrs = call(
        &sns,
        "GetSubscriptionAttributes",
        &[("SubscriptionArn", &http_sub)],
    )
    .expect("attrs");
    let keys = xml_values(&attrs, "key");
    let values = xml_values(&attrs, "value");
    let get = |k: &str| keys.iter().position(|x| x == k).map(|i| values[i].clone());
    assert_eq!(get("PendingConfirmation").as_deref(), Some("true"));
    assert_eq!(get("RawMessageDelivery").as_deref(), Some("true"));
    assert_eq!(get("Protocol").as_deref(), Some("http"));
    assert!(get("EffectiveDeliveryPolicy").is_some_and(|p| p.contains("healthyRetryPolicy")));

    let policy = r#"{"healthyRetryPolicy":{"numRetries":5,"minDelayTarget":1,"maxDelayTarget":4}}"#;
    call(
        &sns,
        "SetSubscriptionAttributes",
        &[
            ("SubscriptionArn", &http_sub),
            ("AttributeName", "DeliveryPolicy"),
            ("AttributeValue", policy),
        ],
    )
    .expect("set policy");
    let attrs = call(
        &sns,
        "GetSubscriptionAttributes",
        &[("SubscriptionArn", &http_sub)],
    )
    .expect("attrs");
    assert!(attrs.contains("numRetries&quot;:5"), "{attrs}");
    for (name, value) in [("FilterPolicy", "{}"), ("RawMessageDelivery", "yes")] {
        let e = call(
            &sns,
            "SetSubscriptionAttributes",
            &[
                ("SubscriptionArn", &http_sub),
                ("AttributeName", name),
                ("AttributeValue", value),
            ],
        )
        .expect_err(name);
        assert!(e.to_string().contains(name), "{e}");
    }
    assert!(call(
        &sns,
        "SetSubscriptionAttributes",
        &[
            ("SubscriptionArn", &lambda_sub),
            ("AttributeName", "RawMessageDelivery"),
            ("AttributeValue", "true")
        ],
    )
    .is_err());
    assert_eq!(
        sns.subscription_owner(&lambda_sub)
            .expect("owner")
            .as_deref(),
        Some(ACCOUNT)
    );

    call(&sns, "Unsubscribe", &[("SubscriptionArn", &lambda_sub)]).expect("unsubscribe");
    assert_eq!(
        code(call(
            &sns,
            "Unsubscribe",
            &[("SubscriptionArn", &lambda_sub)]
        )),
        "NotFound"
    );
    assert_eq!(
        code(call(
            &sns,
            "GetSubscriptionAttributes",
            &[("SubscriptionArn", &lambda_sub)]
        )),
        "NotFound"
    );
    assert_eq!(
        code(call(
            &sns,
            "Unsubscribe",
            &[("SubscriptionArn", "pending confirmation")]
        )),
        "InvalidParameter"
    );
}

fn subscription_limit_per_topic(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let arn = create_topic(&sns, "t");
    let last = MAX_SUBSCRIPTIONS_PER_TOPIC - 1;
    fix.execute(
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             INSERT INTO subscriptions (arn, topic_arn, owner, protocol, endpoint, confirmed, \
             created_at) SELECT '{arn}:' || lower(hex(randomblob(16))), '{arn}', '{ACCOUNT}', \
             'lambda', '{LAMBDA}' || i, 1, 0 FROM n"
        ),
        &format!(
            "INSERT INTO sns_subscriptions (arn, topic_arn, owner, protocol, endpoint, confirmed, \
             created_at) SELECT '{arn}:' || md5(i::TEXT), '{arn}', '{ACCOUNT}', 'lambda', \
             '{LAMBDA}' || i, TRUE, 0 FROM generate_series(0, {last}) AS i"
        ),
    );
    let e = call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "lambda"),
            ("Endpoint", LAMBDA),
        ],
    )
    .expect_err("over the limit");
    assert_eq!((e.code(), e.status()), ("SubscriptionLimitExceeded", 403));
    let page = call(&sns, "ListSubscriptionsByTopic", &[("TopicArn", &arn)]).expect("page");
    assert_eq!(xml_values(&page, "SubscriptionArn").len(), crate::PAGE_SIZE);
    assert!(xml_value(&page, "NextToken").is_none(), "exactly one page");
}

fn publish_validation(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let arn = create_topic(&sns, "t");
    let big = "m".repeat(MAX_MESSAGE_BYTES + 1);
    let exact = "m".repeat(MAX_MESSAGE_BYTES);
    for (params, named) in [
        (vec![("TopicArn", arn.as_str())], "Message"),
        (vec![("TopicArn", arn.as_str()), ("Message", "")], "empty"),
        (vec![("Message", "m")], "TopicArn"),
        (
            vec![("TopicArn", arn.as_str()), ("Message", big.as_str())],
            "too long",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "m"),
                ("Subject", ""),
            ],
            "Subject",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "m"),
                ("Subject", &"s".repeat(101)),
            ],
            "Subject",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "m"),
                ("Subject", "two\nlines"),
            ],
            "Subject",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "m"),
                ("PhoneNumber", "+15555550100"),
            ],
            "PhoneNumber",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "m"),
                ("MessageGroupId", "g"),
            ],
            "MessageGroupId",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "m"),
                ("MessageDeduplicationId", "d"),
            ],
            "MessageDeduplicationId",
        ),
        (
            vec![
                (
                    "TargetArn",
                    "arn:aws:sns:us-east-1:123456789012:endpoint/APNS/app/x",
                ),
                ("Message", "m"),
            ],
            "TargetArn",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("TargetArn", arn.as_str()),
                ("Message", "m"),
            ],
            "TargetArn",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "m"),
                ("MessageStructure", "xml"),
            ],
            "MessageStructure",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "{\"http\":\"x\"}"),
                ("MessageStructure", "json"),
            ],
            "default",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "m"),
                ("MessageAttributes.entry.1.Name", "n"),
                ("MessageAttributes.entry.1.Value.DataType", "Number"),
                ("MessageAttributes.entry.1.Value.StringValue", "x"),
            ],
            "Number",
        ),
        (
            vec![
                ("TopicArn", arn.as_str()),
                ("Message", "m"),
                ("MessageAttributes.entry.1.Name", "n"),
                ("MessageAttributes.entry.1.Value.DataType", "String"),
                (
                    "MessageAttributes.entry.1.Value.StringListValue.member.1",
                    "x",
                ),
            ],
            "StringListValue",
        ),
        (
            vec![("TopicArn", arn.as_str()), ("Message", "m"), ("Extra", "x")],
            "Extra",
        ),
    ] {
        let e = call(&sns, "Publish", &params).expect_err(named);
        assert_eq!(e.code(), "InvalidParameter", "{named}: {e}");
        assert!(e.to_string().contains(named), "{named}: {e}");
    }
    let xml =
        call(&sns, "Publish", &[("TopicArn", &arn), ("Message", &exact)]).expect("exactly 256 KiB");
    assert!(xml_value(&xml, "MessageId").is_some());
    let with_subject = call(
        &sns,
        "Publish",
        &[("TopicArn", &arn), ("Message", &exact), ("Subject", "s")],
    )
    .expect_err("the subject counts too");
    assert!(with_subject.to_string().contains("too long"));
    call(&sns, "Publish", &[("TargetArn", &arn), ("Message", "m")])
        .expect("TargetArn naming a topic");
    assert_eq!(
        code(call(
            &sns,
            "Publish",
            &[
                ("TopicArn", "arn:aws:sns:us-east-1:123456789012:gone"),
                ("Message", "m")
            ]
        )),
        "NotFound"
    );
    assert_eq!(
        sns.pending_deliveries(&arn).expect("pending"),
        0,
        "no subscriber, nothing stored"
    );
}

fn publish_fans_out_and_throttles_a_full_queue(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let arn = create_topic(&sns, "t");
    call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "lambda"),
            ("Endpoint", LAMBDA),
        ],
    )
    .expect("sub 1");
    let second = format!("{LAMBDA}2");
    call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "lambda"),
            ("Endpoint", &second),
        ],
    )
    .expect("sub 2");
    call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "http"),
            ("Endpoint", "http://127.0.0.1:9/"),
        ],
    )
    .expect("pending http");
    assert_eq!(
        sns.pending_deliveries(&arn).expect("pending"),
        1,
        "the confirmation"
    );
    call(&sns, "Publish", &[("TopicArn", &arn), ("Message", "m")]).expect("publish");
    assert_eq!(
        sns.pending_deliveries(&arn).expect("pending"),
        3,
        "one per confirmed subscription, none for the pending one"
    );

    let queued = i64::try_from(MAX_PENDING_DELIVERIES_PER_TOPIC).expect("fits") - 3;
    fix.execute(
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
             INSERT INTO deliveries (message_id, topic_arn, subscription_arn, protocol, endpoint, \
             due_at) SELECT (SELECT id FROM messages LIMIT 1), '{arn}', 'x', 'lambda', 'x', \
             9000000000000 FROM n",
            n = queued - 1
        ),
        &format!(
            "INSERT INTO sns_deliveries (message_id, topic_arn, subscription_arn, protocol, \
             endpoint, due_at) SELECT (SELECT id FROM sns_messages LIMIT 1), '{arn}', 'x', \
             'lambda', 'x', 9000000000000 FROM generate_series(1, {n})",
            n = queued - 1
        ),
    );
    let e = call(&sns, "Publish", &[("TopicArn", &arn), ("Message", "m")]).expect_err("full");
    assert_eq!((e.code(), e.status()), ("Throttled", 429));
    assert!(e.to_string().contains("retry"), "{e}");
    fix.execute(
        "DELETE FROM deliveries WHERE subscription_arn = 'x'",
        "DELETE FROM sns_deliveries WHERE subscription_arn = 'x'",
    );
    call(&sns, "Publish", &[("TopicArn", &arn), ("Message", "m")]).expect("room again");
    let big = MAX_PENDING_BYTES_PER_TOPIC;
    fix.execute(
        &format!("UPDATE messages SET size = {big} WHERE id = (SELECT id FROM messages LIMIT 1)"),
        &format!(
            "UPDATE sns_messages SET size = {big} WHERE id = (SELECT id FROM sns_messages LIMIT 1)"
        ),
    );
    let e = call(&sns, "Publish", &[("TopicArn", &arn), ("Message", "m")]).expect_err("bytes");
    assert_eq!(e.code(), "Throttled");
}

fn actions_and_contexts_refused(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let e = call(&sns, "PublishBatch", &[]).expect_err("unsupported");
    assert_eq!((e.code(), e.status()), ("InvalidAction", 400));
    assert!(e.to_string().contains("PublishBatch"));
    assert_eq!(
        call(&sns, "Frobnicate", &[]).expect_err("unknown").code(),
        "InvalidAction"
    );
    let bad = crate::CallContext {
        account: "me".into(),
        ..ctx()
    };
    assert!(sns.handle(&bad, "ListTopics", &[]).is_err());
    call(
        &sns,
        "ListTopics",
        &[("Action", "ListTopics"), ("Version", "2010-03-31")],
    )
    .expect("envelope parameters");
    call(&sns, "ListTopics", &[("X-Amz-Date", "20260101T000000Z")]).expect("presign parameters");
}

#[test]
fn errors_render_as_sns_xml() {
    let e = crate::SnsError::NotFound("Topic does not exist".into());
    assert_eq!(e.status(), 404);
    let xml = e.to_xml("rid");
    assert_eq!(
        xml,
        format!(
            "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Sender</Type><Code>NotFound</Code>\
             <Message>Topic does not exist</Message></Error><RequestId>rid</RequestId></ErrorResponse>"
        )
    );
    let inner = crate::SnsError::Damaged("secret detail".into());
    assert_eq!((inner.code(), inner.status()), ("InternalError", 500));
    let xml = inner.to_xml("rid");
    assert!(
        !xml.contains("secret detail"),
        "internal detail stays in the log"
    );
    assert!(xml.contains("<Type>Receiver</Type>"));
    for (e, code, status) in [
        (
            crate::SnsError::InvalidParameter(String::new()),
            "InvalidParameter",
            400,
        ),
        (
            crate::SnsError::InvalidParameterValue(String::new()),
            "ParameterValueInvalid",
            400,
        ),
        (
            crate::SnsError::AuthorizationError(String::new()),
            "AuthorizationError",
            403,
        ),
        (crate::SnsError::Throttled(String::new()), "Throttled", 429),
    ] {
        assert_eq!((e.code(), e.status()), (code, status));
    }
}

#[test]
fn files_are_private_and_the_key_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = open(dir.path());
    let pem = first.signing_cert_pem().to_owned();
    let url = first.signing_cert_url().to_owned();
    drop(first);
    let mode = std::fs::metadata(dir.path().join("sns.db"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = open(dir.path());
    assert_eq!(
        again.signing_cert_pem(),
        pem,
        "the same certificate after a restart"
    );
    assert_eq!(again.signing_cert_url(), url);
    assert!(
        url.starts_with(super::BASE) && url.ends_with(".pem"),
        "{url}"
    );
    assert_eq!(
        again.cert_path(),
        format!("/_warden/sns/{}", url.rsplit('/').next().expect("file"))
    );
    let served = again
        .serve_public(url.rsplit('/').next().expect("file"), &[], "r")
        .expect("cert");
    assert_eq!(served.body, pem);
    assert_eq!(
        again
            .serve_public("nope", &[], "r")
            .expect_err("404")
            .status(),
        404
    );
    assert!(crate::Sns::open(&dir.path().join("x.db"), "ftp://x/").is_err());
    assert!(crate::Sns::open(&dir.path().join("y.db"), "http://x/?a=b").is_err());
}

fn shared() -> &'static crate::Sns {
    static SNS: std::sync::OnceLock<(tempfile::TempDir, crate::Sns)> = std::sync::OnceLock::new();
    let (_, sns) = SNS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let sns = open(dir.path());
        create_topic(&sns, "fuzz");
        (dir, sns)
    });
    sns
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_requests_never_panic(
        action in prop::sample::select(crate::query::SUPPORTED_ACTIONS.to_vec()),
        pairs in proptest::collection::vec(
            (
                prop_oneof![
                    Just("TopicArn".to_owned()),
                    Just("Name".to_owned()),
                    Just("Message".to_owned()),
                    Just("Protocol".to_owned()),
                    Just("Endpoint".to_owned()),
                    Just("SubscriptionArn".to_owned()),
                    Just("AttributeName".to_owned()),
                    Just("NextToken".to_owned()),
                    "(Attributes|Tags|TagKeys|MessageAttributes)\\.(entry|member)\\.[0-9]\\.(key|value|Key|Value|Name|Value\\.DataType|Value\\.StringValue|Value\\.BinaryValue)",
                    "[A-Za-z.]{0,12}",
                ],
                prop_oneof![
                    Just("arn:aws:sns:us-east-1:123456789012:fuzz".to_owned()),
                    Just("http".to_owned()),
                    Just("lambda".to_owned()),
                    Just("http://127.0.0.1:9/".to_owned()),
                    ".{0,40}",
                ],
            ),
            0..8,
        )
    ) {
        let sns = shared();
        if let Err(e) = sns.handle(&ctx(), action, &pairs) {
            prop_assert!(!e.is_internal(), "{action}: {e}");
            let _ = e.to_xml("r");
        }
    }
}

//! Delivery against local HTTP endpoints and a fake Lambda target: confirmation, retries,
//! dead letters, crash safety, raw delivery, redirects, the endpoint guard.

use std::sync::Arc;

use super::signature::verify_http_body;
use super::{
    call, create_topic, eventually, fast_config, next_invocation, url_query, xml_value, Endpoint,
    FakeLambda, Fixture, Received, TlsIdentity,
};
use crate::{Deliverer, Sns};

on_both_stores_async!(
    confirmation_flow_then_notification,
    retries_until_the_endpoint_answers,
    failing_deliveries_end_in_the_dead_letters,
    a_published_message_survives_a_crash,
    a_delivery_in_flight_at_a_crash_is_made_again,
    lambda_deliveries_retry_then_succeed_or_die,
    raw_delivery_redirects_and_the_guard,
    https_deliveries_verify_the_endpoint_certificate,
    unsubscribe_confirmation_can_restore,
    deliveries_at_once_are_bounded,
    a_silent_endpoint_times_out,
    damaged_rows_and_panicking_targets_do_not_stall_the_queue,
    any_character_is_delivered_as_published,
);

/// Subscribes `url` to `topic` and returns the SubscriptionConfirmation it receives.
pub(super) async fn subscribe_http(
    sns: &Sns,
    topic: &str,
    endpoint: &mut Endpoint,
    attrs: &[(&str, &str)],
) -> Received {
    let protocol = if endpoint.url.starts_with("https:") {
        "https"
    } else {
        "http"
    };
    let mut params = vec![
        ("TopicArn", topic),
        ("Protocol", protocol),
        ("Endpoint", endpoint.url.as_str()),
    ];
    params.extend_from_slice(attrs);
    call(sns, "Subscribe", &params).expect("subscribe");
    endpoint.next().await
}

/// Confirms through the SubscribeURL of a confirmation, as an endpoint would.
pub(super) fn visit_subscribe_url(sns: &Sns, confirmation: &Received) -> String {
    let json = confirmation.json();
    let url = json["SubscribeURL"].as_str().expect("SubscribeURL");
    let rest = url
        .strip_prefix(super::BASE)
        .expect("SubscribeURL under the base URL");
    let (path, _) = rest.split_once('?').expect("a query");
    let answer = sns
        .serve_public(path, &url_query(url), "visit")
        .expect("confirm via the URL");
    assert_eq!(answer.status, 200);
    xml_value(&answer.body, "SubscriptionArn").expect("SubscriptionArn")
}

async fn confirmation_flow_then_notification(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "orders");
    let mut endpoint = Endpoint::start(&[], 200).await;
    let (lambda, _) = FakeLambda::new(0);
    let deliverer = Deliverer::start(&sns, lambda, fast_config(3));

    let confirmation = subscribe_http(&sns, &topic, &mut endpoint, &[]).await;
    assert_eq!(
        confirmation.header("x-amz-sns-message-type"),
        Some("SubscriptionConfirmation")
    );
    assert_eq!(
        confirmation.header("x-amz-sns-topic-arn"),
        Some(topic.as_str())
    );
    assert_eq!(
        confirmation.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    assert_eq!(
        confirmation.header("user-agent"),
        Some("Amazon Simple Notification Service Agent")
    );
    let json = confirmation.json();
    assert_eq!(json["Type"], "SubscriptionConfirmation");
    assert_eq!(json["TopicArn"], topic.as_str());
    assert_eq!(json["SignatureVersion"], "2");
    assert_eq!(
        confirmation.header("x-amz-sns-message-id"),
        json["MessageId"].as_str()
    );
    assert!(json["Message"]
        .as_str()
        .expect("Message")
        .starts_with(&format!(
            "You have chosen to subscribe to the topic {topic}."
        )));
    assert_eq!(json["SigningCertURL"], sns.signing_cert_url());
    verify_http_body(&sns, &json);

    // Nothing is delivered to a pending subscription.
    call(
        &sns,
        "Publish",
        &[("TopicArn", &topic), ("Message", "before")],
    )
    .expect("publish");
    let sub = visit_subscribe_url(&sns, &confirmation);
    assert!(sub.starts_with(&format!("{topic}:")));
    let again = visit_subscribe_url(&sns, &confirmation);
    assert_eq!(again, sub, "confirming twice is harmless");

    call(
        &sns,
        "Publish",
        &[
            ("TopicArn", &topic),
            ("Message", "hello\nworld"),
            ("Subject", "Greetings"),
            ("MessageAttributes.entry.1.Name", "colour"),
            ("MessageAttributes.entry.1.Value.DataType", "String"),
            ("MessageAttributes.entry.1.Value.StringValue", "blue"),
            ("MessageAttributes.entry.2.Name", "blob"),
            ("MessageAttributes.entry.2.Value.DataType", "Binary"),
            ("MessageAttributes.entry.2.Value.BinaryValue", "AAEC"),
        ],
    )
    .expect("publish");
    let note = endpoint.next().await;
    assert_eq!(note.header("x-amz-sns-message-type"), Some("Notification"));
    assert_eq!(
        note.header("x-amz-sns-subscription-arn"),
        Some(sub.as_str())
    );
    let json = note.json();
    assert_eq!(
        json["Message"], "hello\nworld",
        "the message published while pending is not sent"
    );
    assert_eq!(json["Subject"], "Greetings");
    assert_eq!(json["MessageAttributes"]["colour"]["Type"], "String");
    assert_eq!(json["MessageAttributes"]["colour"]["Value"], "blue");
    assert_eq!(json["MessageAttributes"]["blob"]["Type"], "Binary");
    assert_eq!(json["MessageAttributes"]["blob"]["Value"], "AAEC");
    let timestamp = json["Timestamp"].as_str().expect("Timestamp");
    assert_eq!(timestamp.len(), "2026-12-04T12:00:00.000Z".len());
    assert!(timestamp.ends_with('Z') && timestamp.as_bytes()[19] == b'.');
    assert!(json["UnsubscribeURL"]
        .as_str()
        .expect("UnsubscribeURL")
        .ends_with(&format!("?Action=Unsubscribe&SubscriptionArn={sub}")));
    verify_http_body(&sns, &json);
    deliverer.stop().await;
}

async fn retries_until_the_endpoint_answers(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    // The confirmation is accepted; the notification fails twice, then gets through.
    let mut endpoint = Endpoint::start(&[200, 500, 503], 200).await;
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, fast_config(3));
    let confirmation = subscribe_http(&sns, &topic, &mut endpoint, &[]).await;
    visit_subscribe_url(&sns, &confirmation);
    call(&sns, "Publish", &[("TopicArn", &topic), ("Message", "m")]).expect("publish");
    let attempts = [
        endpoint.next().await,
        endpoint.next().await,
        endpoint.next().await,
    ];
    for a in &attempts {
        assert_eq!(a.header("x-amz-sns-message-type"), Some("Notification"));
        assert_eq!(a.json()["Message"], "m");
        assert_eq!(
            a.json()["MessageId"],
            attempts[0].json()["MessageId"],
            "a retry resends the same message"
        );
        verify_http_body(&sns, &a.json());
    }
    eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
    assert!(sns.dead_letters(&topic).expect("dead").is_empty());
    assert!(endpoint.received.try_recv().is_err(), "no fourth attempt");
    deliverer.stop().await;
}

async fn failing_deliveries_end_in_the_dead_letters(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    // The confirmation is accepted; every later request fails.
    let mut endpoint = Endpoint::start(&[200], 500).await;
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, fast_config(2));
    let confirmation = subscribe_http(&sns, &topic, &mut endpoint, &[]).await;
    let sub = visit_subscribe_url(&sns, &confirmation);
    call(
        &sns,
        "Publish",
        &[
            ("TopicArn", &topic),
            ("Message", "doomed"),
            ("Subject", "S"),
        ],
    )
    .expect("publish");
    let attempts = [
        endpoint.next().await,
        endpoint.next().await,
        endpoint.next().await,
    ];
    let dead = || sns.dead_letters(&topic).expect("dead letters");
    eventually(|| !dead().is_empty()).await;
    let letters = dead();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.subscription_arn, sub);
    assert_eq!(letter.attempts, 3, "the first attempt and two retries");
    assert_eq!(letter.message, "doomed");
    assert_eq!(letter.subject.as_deref(), Some("S"));
    assert_eq!(letter.message_type, "Notification");
    assert_eq!(letter.endpoint, endpoint.url);
    assert!(
        letter.last_error.contains("HTTP 500"),
        "{}",
        letter.last_error
    );
    assert_eq!(
        letter.message_id,
        attempts[0].json()["MessageId"].as_str().expect("id")
    );
    assert_eq!(sns.pending_deliveries(&topic).expect("pending"), 0);
    deliverer.stop().await;
}

async fn a_published_message_survives_a_crash(shared: bool) {
    let fix = Fixture::new(shared);
    let mut endpoint = Endpoint::start(&[], 200).await;
    let (topic, message_id) = {
        let sns = fix.sns.clone();
        let topic = create_topic(&sns, "t");
        let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, fast_config(3));
        let confirmation = subscribe_http(&sns, &topic, &mut endpoint, &[]).await;
        visit_subscribe_url(&sns, &confirmation);
        eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
        deliverer.stop().await;
        call(
            &sns,
            "Subscribe",
            &[
                ("TopicArn", &topic),
                ("Protocol", "lambda"),
                (
                    "Endpoint",
                    "arn:aws:lambda:us-east-1:123456789012:function:f",
                ),
            ],
        )
        .expect("lambda");
        // Acknowledged, then the process "dies": nothing delivered, everything dropped.
        let xml = call(
            &sns,
            "Publish",
            &[("TopicArn", &topic), ("Message", "durable")],
        )
        .expect("publish");
        (topic, xml_value(&xml, "MessageId").expect("id"))
    };
    let sns = fix.reopen();
    assert_eq!(sns.pending_deliveries(&topic).expect("pending"), 2);
    let (lambda, mut invocations) = FakeLambda::new(0);
    let deliverer = Deliverer::start(&sns, lambda, fast_config(3));
    let note = endpoint.next().await;
    assert_eq!(note.json()["MessageId"], message_id.as_str());
    assert_eq!(note.json()["Message"], "durable");
    let invocation = next_invocation(&mut invocations).await;
    let event: serde_json::Value = serde_json::from_slice(&invocation.event).expect("event");
    assert_eq!(event["Records"][0]["Sns"]["MessageId"], message_id.as_str());
    eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
    deliverer.stop().await;
}

async fn a_delivery_in_flight_at_a_crash_is_made_again(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    let mut endpoint = Endpoint::start(&[200, 0], 200).await;
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, fast_config(3));
    let confirmation = subscribe_http(&sns, &topic, &mut endpoint, &[]).await;
    visit_subscribe_url(&sns, &confirmation);
    eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
    call(
        &sns,
        "Publish",
        &[("TopicArn", &topic), ("Message", "in flight")],
    )
    .expect("publish");
    let hanging = endpoint.next().await;
    assert_eq!(hanging.json()["Message"], "in flight");
    // The endpoint got the request but never answered: stop (abort) mid-delivery.
    deliverer.stop().await;
    drop(sns);
    let sns = fix.reopen();
    assert_eq!(
        sns.pending_deliveries(&topic).expect("pending"),
        1,
        "still queued"
    );
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, fast_config(3));
    let again = endpoint.next().await;
    assert_eq!(again.json()["MessageId"], hanging.json()["MessageId"]);
    eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
    deliverer.stop().await;
}

async fn lambda_deliveries_retry_then_succeed_or_die(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    let function = "arn:aws:lambda:us-east-1:123456789012:function:f";
    let xml = call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "lambda"),
            ("Endpoint", function),
        ],
    )
    .expect("sub");
    let sub = xml_value(&xml, "SubscriptionArn").expect("arn");
    let (lambda, mut invocations) = FakeLambda::new(2);
    let deliverer = Deliverer::start(&sns, lambda, fast_config(3));
    let xml = call(
        &sns,
        "Publish",
        &[
            ("TopicArn", &topic),
            ("Message", "to lambda"),
            ("MessageAttributes.entry.1.Name", "n"),
            ("MessageAttributes.entry.1.Value.DataType", "Number"),
            ("MessageAttributes.entry.1.Value.StringValue", "42"),
        ],
    )
    .expect("publish");
    let id = xml_value(&xml, "MessageId").expect("id");
    let mut last = None;
    for _ in 0..3 {
        last = Some(next_invocation(&mut invocations).await);
    }
    let invocation = last.expect("three invocations");
    assert_eq!(invocation.function_arn, function);
    assert_eq!(invocation.topic_arn, topic);
    assert_eq!(invocation.subscription_arn, sub);
    let event: serde_json::Value = serde_json::from_slice(&invocation.event).expect("event");
    let record = &event["Records"][0];
    assert_eq!(record["EventSource"], "aws:sns");
    assert_eq!(record["EventVersion"], "1.0");
    assert_eq!(record["EventSubscriptionArn"], sub.as_str());
    let s = &record["Sns"];
    assert_eq!(s["Type"], "Notification");
    assert_eq!(s["MessageId"], id.as_str());
    assert_eq!(s["Message"], "to lambda");
    assert!(s["Subject"].is_null());
    assert_eq!(s["MessageAttributes"]["n"]["Type"], "Number");
    assert_eq!(s["MessageAttributes"]["n"]["Value"], "42");
    assert_eq!(s["SigningCertUrl"], sns.signing_cert_url());
    assert!(s["UnsubscribeUrl"].as_str().expect("url").contains(&sub));
    super::signature::verify_lambda_record(&sns, s);
    eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
    assert!(sns.dead_letters(&topic).expect("dead").is_empty());
    deliverer.stop().await;

    let (always_failing, mut invocations) = FakeLambda::new(u32::MAX);
    let deliverer = Deliverer::start(&sns, always_failing, fast_config(1));
    call(
        &sns,
        "Publish",
        &[("TopicArn", &topic), ("Message", "never")],
    )
    .expect("publish");
    next_invocation(&mut invocations).await;
    next_invocation(&mut invocations).await;
    eventually(|| !sns.dead_letters(&topic).expect("dead").is_empty()).await;
    let letter = &sns.dead_letters(&topic).expect("dead")[0];
    assert_eq!(letter.attempts, 2);
    assert!(
        letter.last_error.contains("TooManyRequestsException"),
        "{}",
        letter.last_error
    );
    deliverer.stop().await;
}

async fn raw_delivery_redirects_and_the_guard(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    let mut endpoint = Endpoint::start(&[], 200).await;
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, fast_config(0));
    let confirmation = subscribe_http(
        &sns,
        &topic,
        &mut endpoint,
        &[
            ("Attributes.entry.1.key", "RawMessageDelivery"),
            ("Attributes.entry.1.value", "true"),
        ],
    )
    .await;
    assert!(
        confirmation.header("x-amz-sns-rawdelivery").is_none(),
        "confirmations stay JSON"
    );
    visit_subscribe_url(&sns, &confirmation);
    call(
        &sns,
        "Publish",
        &[
            ("TopicArn", &topic),
            ("Message", "{\"default\":\"plain\",\"http\":\"for http\"}"),
            ("MessageStructure", "json"),
        ],
    )
    .expect("publish");
    let raw = endpoint.next().await;
    assert_eq!(raw.header("x-amz-sns-rawdelivery"), Some("true"));
    assert_eq!(raw.header("x-amz-sns-message-type"), Some("Notification"));
    assert_eq!(raw.body, b"for http");
    deliverer.stop().await;

    // A redirect is a failure, not followed.
    let mut redirecting = Endpoint::start(&[], 302).await;
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, fast_config(0));
    call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "http"),
            ("Endpoint", &redirecting.url),
        ],
    )
    .expect("sub");
    let redirected = redirecting.next().await;
    let token = redirected.json()["Token"]
        .as_str()
        .expect("token")
        .to_owned();
    eventually(|| {
        sns.dead_letters(&topic).expect("dead").iter().any(|d| {
            d.last_error.contains("HTTP 302") && d.message_type == "SubscriptionConfirmation"
        })
    })
    .await;
    let letter = sns
        .dead_letters(&topic)
        .expect("dead")
        .into_iter()
        .find(|d| d.message_type == "SubscriptionConfirmation")
        .expect("letter");
    assert!(
        !format!("{letter:?}").contains(&token),
        "no token in a dead letter"
    );
    deliverer.stop().await;

    struct Nothing;
    impl crate::EndpointGuard for Nothing {
        fn allow(&self, _: &std::net::SocketAddr) -> bool {
            false
        }
    }
    let mut guarded = Endpoint::start(&[], 200).await;
    let config = crate::DeliveryConfig {
        endpoint_guard: Some(Arc::new(Nothing)),
        ..fast_config(0)
    };
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, config);
    call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "http"),
            ("Endpoint", &guarded.url),
        ],
    )
    .expect("sub");
    eventually(|| {
        sns.dead_letters(&topic)
            .expect("dead")
            .iter()
            .any(|d| d.last_error.contains("endpoint guard"))
    })
    .await;
    assert!(
        guarded.received.try_recv().is_err(),
        "nothing reached the guarded endpoint"
    );
    deliverer.stop().await;
}

async fn https_deliveries_verify_the_endpoint_certificate(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "secure");
    let identity = TlsIdentity::new();
    let mut endpoint = Endpoint::start_tls(&[], 200, &identity).await;
    let config = crate::DeliveryConfig {
        tls: Some(identity.client()),
        ..fast_config(0)
    };
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, config);
    let confirmation = subscribe_http(&sns, &topic, &mut endpoint, &[]).await;
    assert_eq!(
        confirmation.header("x-amz-sns-message-type"),
        Some("SubscriptionConfirmation")
    );
    visit_subscribe_url(&sns, &confirmation);
    call(
        &sns,
        "Publish",
        &[("TopicArn", &topic), ("Message", "over tls")],
    )
    .expect("publish");
    let notification = endpoint.next().await;
    let json = notification.json();
    assert_eq!(json["Message"], "over tls");
    verify_http_body(&sns, &json);
    deliverer.stop().await;

    // A client that does not trust the endpoint's authority sends it nothing: the
    // handshake fails, and the delivery ends in the dead letters saying why.
    let stranger = TlsIdentity::new();
    let mut untrusted = Endpoint::start_tls(&[], 200, &stranger).await;
    let config = crate::DeliveryConfig {
        tls: Some(identity.client()),
        ..fast_config(0)
    };
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, config);
    call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "https"),
            ("Endpoint", &untrusted.url),
        ],
    )
    .expect("subscribe");
    let refused = || {
        sns.dead_letters(&topic)
            .expect("dead")
            .into_iter()
            .find(|d| d.endpoint == untrusted.url)
    };
    eventually(|| refused().is_some()).await;
    let letter = refused().expect("a dead letter");
    assert!(
        letter.last_error.contains("TLS handshake") && letter.last_error.contains("certificate"),
        "{}",
        letter.last_error
    );
    assert!(
        untrusted.received.try_recv().is_err(),
        "nothing reached the untrusted endpoint"
    );

    // The scheme must match the protocol.
    for (protocol, url) in [
        ("http", endpoint.url.as_str()),
        ("https", "http://127.0.0.1:1/"),
    ] {
        let e = call(
            &sns,
            "Subscribe",
            &[
                ("TopicArn", &topic),
                ("Protocol", protocol),
                ("Endpoint", url),
            ],
        )
        .expect_err("mismatch");
        assert_eq!(e.code(), "InvalidParameter");
        assert!(
            e.to_string().contains("must match the specified protocol"),
            "{e}"
        );
    }
    deliverer.stop().await;
}

async fn unsubscribe_confirmation_can_restore(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    let mut endpoint = Endpoint::start(&[], 200).await;
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, fast_config(3));
    let confirmation = subscribe_http(&sns, &topic, &mut endpoint, &[]).await;
    let sub = visit_subscribe_url(&sns, &confirmation);

    let unsubscribe_url = format!("?Action=Unsubscribe&SubscriptionArn={sub}");
    let answer = sns
        .serve_public("", &url_query(&unsubscribe_url), "r")
        .expect("unsubscribe via the URL");
    assert!(answer.body.contains("<UnsubscribeResponse"));
    let goodbye = endpoint.next().await;
    assert_eq!(
        goodbye.header("x-amz-sns-message-type"),
        Some("UnsubscribeConfirmation")
    );
    assert_eq!(
        goodbye.header("x-amz-sns-subscription-arn"),
        Some(sub.as_str())
    );
    let json = goodbye.json();
    assert_eq!(json["Type"], "UnsubscribeConfirmation");
    assert!(json["Message"].as_str().expect("Message").contains(&sub));
    verify_http_body(&sns, &json);
    assert_eq!(
        call(
            &sns,
            "GetSubscriptionAttributes",
            &[("SubscriptionArn", &sub)]
        )
        .expect_err("gone")
        .code(),
        "NotFound"
    );
    let restored = visit_subscribe_url(&sns, &goodbye);
    assert_eq!(
        restored, sub,
        "the SubscribeURL restores the same subscription"
    );
    call(
        &sns,
        "Publish",
        &[("TopicArn", &topic), ("Message", "back")],
    )
    .expect("publish");
    assert_eq!(endpoint.next().await.json()["Message"], "back");

    // Confirmed with AuthenticateOnUnsubscribe: the URL no longer unsubscribes.
    let mut careful = Endpoint::start(&[], 200).await;
    let confirmation = subscribe_http(&sns, &topic, &mut careful, &[]).await;
    let token = confirmation.json()["Token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        call(
            &sns,
            "ConfirmSubscription",
            &[("TopicArn", &topic), ("Token", "0000")]
        )
        .expect_err("wrong token")
        .code(),
        "InvalidParameter"
    );
    let xml = call(
        &sns,
        "ConfirmSubscription",
        &[
            ("TopicArn", &topic),
            ("Token", &token),
            ("AuthenticateOnUnsubscribe", "true"),
        ],
    )
    .expect("confirm");
    let careful_sub = xml_value(&xml, "SubscriptionArn").expect("arn");
    let attrs = call(
        &sns,
        "GetSubscriptionAttributes",
        &[("SubscriptionArn", &careful_sub)],
    )
    .expect("attrs");
    assert!(attrs.contains("<key>ConfirmationWasAuthenticated</key><value>true</value>"));
    let e = sns
        .unsubscribe_via_url(&careful_sub, "r")
        .expect_err("needs authentication");
    assert_eq!((e.code(), e.status()), ("AuthorizationError", 403));
    let stranger = crate::CallContext {
        account: "210987654321".into(),
        ..super::ctx()
    };
    let by_stranger = vec![("SubscriptionArn".to_owned(), careful_sub.clone())];
    let e = sns
        .handle(&stranger, "Unsubscribe", &by_stranger)
        .expect_err("neither the owner nor the topic's owner");
    assert_eq!(e.code(), "AuthorizationError");
    eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
    call(&sns, "Unsubscribe", &[("SubscriptionArn", &careful_sub)]).expect("authenticated");
    assert_eq!(
        sns.pending_deliveries(&topic).expect("pending"),
        0,
        "no UnsubscribeConfirmation after an authenticated unsubscribe"
    );
    // The owner unsubscribing needs no goodbye; another account unsubscribing does.
    let sub = visit_subscribe_url(&sns, &subscribe_http(&sns, &topic, &mut careful, &[]).await);
    eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
    let by_stranger = vec![("SubscriptionArn".to_owned(), sub.clone())];
    sns.handle(&stranger, "Unsubscribe", &by_stranger)
        .expect("allowed by the API layer");
    let goodbye = careful.next().await;
    assert_eq!(
        goodbye.header("x-amz-sns-message-type"),
        Some("UnsubscribeConfirmation")
    );
    deliverer.stop().await;
}

/// Inserts a confirmed http subscription directly (its endpoint never confirms).
pub(super) fn confirmed_http(fix: &Fixture, topic: &str, url: &str) -> String {
    let arn = format!("{topic}:{}", uuid::Uuid::new_v4());
    let account = super::ACCOUNT;
    fix.execute(
        &format!(
            "INSERT INTO subscriptions (arn, topic_arn, owner, protocol, endpoint, confirmed, \
             created_at) VALUES ('{arn}', '{topic}', '{account}', 'http', '{url}', 1, 0)"
        ),
        &format!(
            "INSERT INTO sns_subscriptions (arn, topic_arn, owner, protocol, endpoint, confirmed, \
             created_at) VALUES ('{arn}', '{topic}', '{account}', 'http', '{url}', TRUE, 0)"
        ),
    );
    arn
}

async fn deliveries_at_once_are_bounded(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    let mut endpoint = Endpoint::start_slow(&[], 200, std::time::Duration::from_millis(20)).await;
    for i in 0..4 {
        confirmed_http(&fix, &topic, &format!("{}{i}", endpoint.url));
    }
    let config = crate::DeliveryConfig {
        max_concurrency: 1,
        ..fast_config(0)
    };
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, config);
    call(&sns, "Publish", &[("TopicArn", &topic), ("Message", "m")]).expect("publish");
    for _ in 0..4 {
        endpoint.next().await;
    }
    eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
    assert_eq!(
        endpoint.peak.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one delivery at a time"
    );
    deliverer.stop().await;
}

async fn a_silent_endpoint_times_out(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    let mut endpoint = Endpoint::start(&[], 0).await;
    confirmed_http(&fix, &topic, &endpoint.url);
    let config = crate::DeliveryConfig {
        timeout: std::time::Duration::from_millis(50),
        ..fast_config(0)
    };
    let deliverer = Deliverer::start(&sns, FakeLambda::new(0).0, config);
    call(&sns, "Publish", &[("TopicArn", &topic), ("Message", "m")]).expect("publish");
    endpoint.next().await;
    eventually(|| !sns.dead_letters(&topic).expect("dead").is_empty()).await;
    let letter = &sns.dead_letters(&topic).expect("dead")[0];
    assert!(
        letter.last_error.contains("no response within 50 ms"),
        "{}",
        letter.last_error
    );
    deliverer.stop().await;
}

async fn damaged_rows_and_panicking_targets_do_not_stall_the_queue(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    let mut endpoint = Endpoint::start(&[], 200).await;
    confirmed_http(&fix, &topic, &endpoint.url);
    call(
        &sns,
        "Publish",
        &[("TopicArn", &topic), ("Message", "damaged")],
    )
    .expect("publish");
    fix.execute(
        "UPDATE messages SET attributes = 'not json'",
        "UPDATE sns_messages SET attributes = 'not json'",
    );

    struct Panics;
    impl crate::LambdaTarget for Panics {
        fn invoke(&self, _: crate::LambdaInvocation) -> crate::InvokeFuture {
            Box::pin(async { panic!("the target is broken") })
        }
    }
    call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "lambda"),
            (
                "Endpoint",
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ),
        ],
    )
    .expect("lambda");
    call(
        &sns,
        "Publish",
        &[("TopicArn", &topic), ("Message", "fine")],
    )
    .expect("publish");
    let deliverer = Deliverer::start(&sns, Arc::new(Panics), fast_config(1));
    assert_eq!(endpoint.next().await.json()["Message"], "fine");
    eventually(|| sns.dead_letters(&topic).expect("dead").len() == 2).await;
    let letters = sns.dead_letters(&topic).expect("dead");
    assert!(
        letters
            .iter()
            .any(|l| l.message == "damaged" && l.last_error.contains("damaged")),
        "{letters:?}"
    );
    assert!(
        letters
            .iter()
            .any(|l| l.protocol == "lambda" && l.last_error.contains("panicked")),
        "{letters:?}"
    );
    deliverer.stop().await;
}

/// A message may hold any character, NUL included (stored as bytes on PostgreSQL), and
/// reaches the subscriber as published.
async fn any_character_is_delivered_as_published(shared: bool) {
    let fix = Fixture::new(shared);
    let sns = fix.sns.clone();
    let topic = create_topic(&sns, "t");
    call(
        &sns,
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "lambda"),
            (
                "Endpoint",
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ),
        ],
    )
    .expect("sub");
    let text = "nul \u{0} here, \u{1} there, snowman \u{2603}, emoji \u{1F600}";
    call(&sns, "Publish", &[("TopicArn", &topic), ("Message", text)]).expect("publish");
    let (lambda, mut invocations) = FakeLambda::new(0);
    let deliverer = Deliverer::start(&sns, lambda, fast_config(0));
    let invocation = next_invocation(&mut invocations).await;
    let event: serde_json::Value = serde_json::from_slice(&invocation.event).expect("event");
    assert_eq!(event["Records"][0]["Sns"]["Message"], text);
    eventually(|| sns.pending_deliveries(&topic).expect("pending") == 0).await;
    deliverer.stop().await;
}

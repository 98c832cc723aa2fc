//! What SNS sends: the JSON bodies and headers of http deliveries (Notification,
//! SubscriptionConfirmation, UnsubscribeConfirmation, or the raw message) and the Lambda
//! event (`{"Records":[{"EventSource":"aws:sns",...,"Sns":{...}}]}`), each signed.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::SnsError;
use crate::model::{format_timestamp, MessageAttribute};
use crate::signing::{Signed, Signer};
use crate::store::{Job, MessageKind};

/// The `User-Agent` of http deliveries.
pub const USER_AGENT: &str = "Amazon Simple Notification Service Agent";

/// The URLs a delivered message points back to, all under the base URL the binary serves.
#[derive(Clone, Debug)]
pub(crate) struct Urls {
    /// The base URL, ending in `/`.
    pub base: String,
    /// `SigningCertURL`.
    pub cert: String,
}

/// Percent-encodes a query value, keeping unreserved characters and `:`.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Urls {
    /// `SubscribeURL`: `{base}?Action=ConfirmSubscription&TopicArn=...&Token=...`.
    pub(crate) fn subscribe(&self, topic_arn: &str, token: &str) -> String {
        format!(
            "{}?Action=ConfirmSubscription&TopicArn={}&Token={}",
            self.base,
            encode(topic_arn),
            encode(token)
        )
    }

    /// `UnsubscribeURL`: `{base}?Action=Unsubscribe&SubscriptionArn=...`.
    pub(crate) fn unsubscribe(&self, subscription_arn: &str) -> String {
        format!(
            "{}?Action=Unsubscribe&SubscriptionArn={}",
            self.base,
            encode(subscription_arn)
        )
    }
}

/// The message a protocol receives: with `MessageStructure=json`, the protocol's own key
/// if it has a string there, else `default`.
pub(crate) fn message_for(body: &str, structure_json: bool, protocol: &str) -> String {
    if !structure_json {
        return body.to_owned();
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_owned();
    };
    map.get(protocol)
        .and_then(|v| v.as_str())
        .or_else(|| map.get("default").and_then(|v| v.as_str()))
        .unwrap_or(body)
        .to_owned()
}

#[derive(Serialize)]
struct AttributeValue<'a> {
    #[serde(rename = "Type")]
    data_type: &'a str,
    #[serde(rename = "Value")]
    value: &'a str,
}

fn attribute_map(attributes: &[MessageAttribute]) -> BTreeMap<&str, AttributeValue<'_>> {
    attributes
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                AttributeValue {
                    data_type: &a.data_type,
                    value: &a.value,
                },
            )
        })
        .collect()
}

/// An http delivery's JSON body, fields in SNS's order.
#[derive(Serialize)]
struct HttpBody<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(rename = "MessageId")]
    message_id: &'a str,
    #[serde(rename = "Token", skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(rename = "TopicArn")]
    topic_arn: &'a str,
    #[serde(rename = "Subject", skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(rename = "Message")]
    message: &'a str,
    #[serde(rename = "SubscribeURL", skip_serializing_if = "Option::is_none")]
    subscribe_url: Option<&'a str>,
    #[serde(rename = "Timestamp")]
    timestamp: &'a str,
    #[serde(rename = "SignatureVersion")]
    signature_version: &'a str,
    #[serde(rename = "Signature")]
    signature: &'a str,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: &'a str,
    #[serde(rename = "UnsubscribeURL", skip_serializing_if = "Option::is_none")]
    unsubscribe_url: Option<&'a str>,
    #[serde(rename = "MessageAttributes", skip_serializing_if = "Option::is_none")]
    attributes: Option<BTreeMap<&'a str, AttributeValue<'a>>>,
}

/// The SignatureVersion this crate signs with (SHA256withRSA).
pub const SIGNATURE_VERSION: &str = "2";

/// An http POST ready to send.
#[derive(Clone, Debug)]
pub(crate) struct HttpDelivery {
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

fn encode_json<T: Serialize>(value: &T) -> Result<Vec<u8>, SnsError> {
    serde_json::to_vec(value).map_err(|_| SnsError::Damaged("encoding a message".to_owned()))
}

/// The POST for an http delivery of `job`.
pub(crate) fn http_delivery(
    job: &Job,
    signer: &Signer,
    urls: &Urls,
    content_type: &str,
) -> Result<HttpDelivery, SnsError> {
    let mut headers = vec![
        ("x-amz-sns-message-type", job.kind.as_str().to_owned()),
        ("x-amz-sns-message-id", job.message_id.clone()),
        ("x-amz-sns-topic-arn", job.topic_arn.clone()),
    ];
    if job.kind != MessageKind::SubscriptionConfirmation {
        headers.push(("x-amz-sns-subscription-arn", job.subscription_arn.clone()));
    }
    headers.push(("content-type", content_type.to_owned()));
    headers.push(("user-agent", USER_AGENT.to_owned()));
    let message = message_for(&job.body, job.structure_json, "http");
    if job.kind == MessageKind::Notification && job.raw {
        headers.push(("x-amz-sns-rawdelivery", "true".to_owned()));
        return Ok(HttpDelivery {
            headers,
            body: message.into_bytes(),
        });
    }
    let timestamp = format_timestamp(job.timestamp_ms);
    let body = match job.kind {
        MessageKind::Notification => {
            let unsubscribe = urls.unsubscribe(&job.subscription_arn);
            let signature = signer.sign(&Signed::Notification {
                message: &message,
                message_id: &job.message_id,
                subject: job.subject.as_deref(),
                timestamp: &timestamp,
                topic_arn: &job.topic_arn,
            })?;
            encode_json(&HttpBody {
                kind: job.kind.as_str(),
                message_id: &job.message_id,
                token: None,
                topic_arn: &job.topic_arn,
                subject: job.subject.as_deref(),
                message: &message,
                subscribe_url: None,
                timestamp: &timestamp,
                signature_version: SIGNATURE_VERSION,
                signature: &signature,
                signing_cert_url: &urls.cert,
                unsubscribe_url: Some(&unsubscribe),
                attributes: (!job.attributes.is_empty()).then(|| attribute_map(&job.attributes)),
            })?
        }
        MessageKind::SubscriptionConfirmation | MessageKind::UnsubscribeConfirmation => {
            let token = job
                .token
                .as_ref()
                .ok_or_else(|| SnsError::Damaged("a confirmation without a token".to_owned()))?;
            let subscribe = urls.subscribe(&job.topic_arn, &token.0);
            let signature = signer.sign(&Signed::Confirmation {
                kind: job.kind.as_str(),
                message: &job.body,
                message_id: &job.message_id,
                subscribe_url: &subscribe,
                timestamp: &timestamp,
                token: &token.0,
                topic_arn: &job.topic_arn,
            })?;
            encode_json(&HttpBody {
                kind: job.kind.as_str(),
                message_id: &job.message_id,
                token: Some(&token.0),
                topic_arn: &job.topic_arn,
                subject: None,
                message: &job.body,
                subscribe_url: Some(&subscribe),
                timestamp: &timestamp,
                signature_version: SIGNATURE_VERSION,
                signature: &signature,
                signing_cert_url: &urls.cert,
                unsubscribe_url: None,
                attributes: None,
            })?
        }
    };
    Ok(HttpDelivery { headers, body })
}

#[derive(Serialize)]
struct LambdaEvent<'a> {
    #[serde(rename = "Records")]
    records: [LambdaRecord<'a>; 1],
}

#[derive(Serialize)]
struct LambdaRecord<'a> {
    #[serde(rename = "EventSource")]
    event_source: &'a str,
    #[serde(rename = "EventVersion")]
    event_version: &'a str,
    #[serde(rename = "EventSubscriptionArn")]
    subscription_arn: &'a str,
    #[serde(rename = "Sns")]
    sns: LambdaSns<'a>,
}

#[derive(Serialize)]
struct LambdaSns<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(rename = "MessageId")]
    message_id: &'a str,
    #[serde(rename = "TopicArn")]
    topic_arn: &'a str,
    #[serde(rename = "Subject")]
    subject: Option<&'a str>,
    #[serde(rename = "Message")]
    message: &'a str,
    #[serde(rename = "Timestamp")]
    timestamp: &'a str,
    #[serde(rename = "SignatureVersion")]
    signature_version: &'a str,
    #[serde(rename = "Signature")]
    signature: &'a str,
    #[serde(rename = "SigningCertUrl")]
    signing_cert_url: &'a str,
    #[serde(rename = "UnsubscribeUrl")]
    unsubscribe_url: &'a str,
    #[serde(rename = "MessageAttributes")]
    attributes: BTreeMap<&'a str, AttributeValue<'a>>,
}

/// The Lambda event for a Notification `job`.
pub(crate) fn lambda_event(job: &Job, signer: &Signer, urls: &Urls) -> Result<Vec<u8>, SnsError> {
    let message = message_for(&job.body, job.structure_json, "lambda");
    let timestamp = format_timestamp(job.timestamp_ms);
    let signature = signer.sign(&Signed::Notification {
        message: &message,
        message_id: &job.message_id,
        subject: job.subject.as_deref(),
        timestamp: &timestamp,
        topic_arn: &job.topic_arn,
    })?;
    let unsubscribe = urls.unsubscribe(&job.subscription_arn);
    encode_json(&LambdaEvent {
        records: [LambdaRecord {
            event_source: "aws:sns",
            event_version: "1.0",
            subscription_arn: &job.subscription_arn,
            sns: LambdaSns {
                kind: MessageKind::Notification.as_str(),
                message_id: &job.message_id,
                topic_arn: &job.topic_arn,
                subject: job.subject.as_deref(),
                message: &message,
                timestamp: &timestamp,
                signature_version: SIGNATURE_VERSION,
                signature: &signature,
                signing_cert_url: &urls.cert,
                unsubscribe_url: &unsubscribe,
                attributes: attribute_map(&job.attributes),
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_messages_pick_the_protocol() {
        let body = r#"{"default":"d","http":"h","lambda":7}"#;
        assert_eq!(message_for(body, true, "http"), "h");
        assert_eq!(message_for(body, true, "lambda"), "d");
        assert_eq!(message_for(body, false, "http"), body);
    }

    #[test]
    fn urls_are_encoded() {
        let urls = Urls {
            base: "http://127.0.0.1:9700/_warden/sns/".to_owned(),
            cert: String::new(),
        };
        assert_eq!(
            urls.subscribe("arn:aws:sns:us-east-1:123456789012:t", "ab cd"),
            "http://127.0.0.1:9700/_warden/sns/?Action=ConfirmSubscription&TopicArn=\
             arn:aws:sns:us-east-1:123456789012:t&Token=ab%20cd"
        );
        assert!(urls
            .unsubscribe("arn:aws:sns:us-east-1:123456789012:t:x")
            .ends_with(
                "?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:t:x"
            ));
    }
}

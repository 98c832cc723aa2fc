//! Names, ARNs and the validation of everything a caller hands in: topic names, protocols,
//! endpoints, subjects, message attributes, tags. Each refusal names what it refuses.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, SnsError};
use crate::{
    MAX_DISPLAY_NAME_CHARS, MAX_ENDPOINT_BYTES, MAX_MESSAGE_ATTRIBUTES, MAX_SUBJECT_CHARS, MAX_TAGS,
};

/// The only partition this SNS serves.
pub const PARTITION: &str = "aws";

/// A topic's ARN, `arn:aws:sns:REGION:ACCOUNT:NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TopicArn {
    /// The region the topic lives in.
    pub region: String,
    /// The owning account (12 digits).
    pub account: String,
    /// The topic's name.
    pub name: String,
}

impl TopicArn {
    /// Parses and checks a topic ARN; `what` names the parameter in the error.
    pub fn parse(arn: &str, what: &str) -> Result<TopicArn, SnsError> {
        let bad = || invalid(format!("{what}: `{}` is not a topic ARN", shown(arn)));
        let parts: Vec<&str> = arn.split(':').collect();
        let [prefix, partition, service, region, account, name] = parts.as_slice() else {
            return Err(bad());
        };
        if *prefix != "arn" || *partition != PARTITION || *service != "sns" {
            return Err(bad());
        }
        check_region(region).map_err(|_| bad())?;
        check_account(account).map_err(|_| bad())?;
        validate_topic_name(name).map_err(|e| match e {
            SnsError::InvalidParameter(m) => invalid(format!("{what}: {m}")),
            other => other,
        })?;
        Ok(TopicArn {
            region: (*region).to_owned(),
            account: (*account).to_owned(),
            name: (*name).to_owned(),
        })
    }
}

impl fmt::Display for TopicArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{PARTITION}:sns:{}:{}:{}",
            self.region, self.account, self.name
        )
    }
}

/// Splits a subscription ARN (`TOPICARN:UUID`) into its topic; `what` names the parameter.
pub fn subscription_topic(arn: &str, what: &str) -> Result<TopicArn, SnsError> {
    let bad = || {
        invalid(format!(
            "{what}: `{}` is not a subscription ARN",
            shown(arn)
        ))
    };
    let (topic, id) = arn.rsplit_once(':').ok_or_else(bad)?;
    let parsed = uuid::Uuid::try_parse(id).map_err(|_| bad())?;
    if parsed.hyphenated().to_string() != id {
        return Err(bad());
    }
    TopicArn::parse(topic, what).map_err(|_| bad())
}

/// A value shortened and stripped of control characters for an error message.
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 300;
    let mut out: String = value
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if value.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Checks a region name: 1-32 of `[a-z0-9-]`.
pub(crate) fn check_region(region: &str) -> Result<(), SnsError> {
    let ok = (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("`{}` is not a region", shown(region))))
    }
}

/// Checks an account id: 12 digits.
pub(crate) fn check_account(account: &str) -> Result<(), SnsError> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(invalid(format!(
            "`{}` is not an account id",
            shown(account)
        )))
    }
}

/// Checks a topic name as AWS does: 1-256 of `[A-Za-z0-9_-]`. A `.fifo` name is refused by
/// name: FIFO topics are not supported.
pub fn validate_topic_name(name: &str) -> Result<(), SnsError> {
    if name.ends_with(".fifo") {
        return Err(invalid(format!(
            "Name: `{}` names a FIFO topic; FIFO topics are not supported",
            shown(name)
        )));
    }
    let ok = (1..=256).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Name: `{}` is not a topic name (1-256 characters of A-Z, a-z, 0-9, - and _)",
            shown(name)
        )))
    }
}

/// A delivery protocol this SNS supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP POST of SNS's JSON (or the raw message) to an `http://` URL.
    Http,
    /// The same over TLS to an `https://` URL whose certificate verifies.
    Https,
    /// An asynchronous invocation of a Lambda function with the SNS event.
    Lambda,
}

impl Protocol {
    /// Parses the `Protocol` parameter. SNS's other protocols are refused by name.
    pub fn parse(protocol: &str) -> Result<Protocol, SnsError> {
        match protocol {
            "http" => Ok(Protocol::Http),
            "https" => Ok(Protocol::Https),
            "lambda" => Ok(Protocol::Lambda),
            "email" | "email-json" | "sms" | "sqs" | "application" | "firehose" => Err(invalid(
                format!("Protocol {protocol} is not supported (supported: http, https, lambda)"),
            )),
            other => Err(invalid(format!(
                "Protocol: `{}` is not a protocol (supported: http, https, lambda)",
                shown(other)
            ))),
        }
    }

    /// The protocol's name as SNS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Lambda => "lambda",
        }
    }

    /// True for the protocols that POST to a URL (`http` and `https`): they share the
    /// message format, confirmations, raw delivery and delivery policies.
    pub fn is_web(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Https)
    }

    /// True if the stored protocol name `name` is a web protocol.
    pub(crate) fn is_web_name(name: &str) -> bool {
        Protocol::parse(name).is_ok_and(Protocol::is_web)
    }
}

/// A checked `http://` or `https://` endpoint.
#[derive(Clone, Debug)]
pub(crate) struct HttpEndpoint {
    /// True for `https://`: the exchange runs over TLS.
    pub tls: bool,
    /// The host as written (an IPv6 literal keeps its brackets).
    pub host: String,
    /// The port (80, or 443 for `https`, when the URL has none).
    pub port: u16,
    /// The `Host` header: the URL's authority.
    pub authority: String,
    /// The request target.
    pub path_and_query: String,
}

/// Checks a web subscription's endpoint: an absolute `http://` or `https://` URL with a
/// host, no credentials and no fragment, at most [`MAX_ENDPOINT_BYTES`] long.
pub(crate) fn parse_http_endpoint(endpoint: &str) -> Result<HttpEndpoint, SnsError> {
    if endpoint.len() > MAX_ENDPOINT_BYTES {
        return Err(invalid(format!(
            "Endpoint: longer than {MAX_ENDPOINT_BYTES} bytes"
        )));
    }
    let bad = |why: &str| invalid(format!("Endpoint: `{}` {why}", shown(endpoint)));
    if endpoint.contains('#') {
        return Err(bad("has a fragment"));
    }
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| bad("is not a URL beginning with http:// or https://"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("is not a URL beginning with http:// or https://")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| bad("has no host"))?
        .as_str()
        .to_owned();
    if authority.contains('@') {
        return Err(bad(
            "carries credentials, which are not supported in endpoint URLs",
        ));
    }
    let host = uri.host().unwrap_or_default().to_owned();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    if port == 0 {
        return Err(bad("has port 0"));
    }
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    Ok(HttpEndpoint {
        tls,
        host,
        port,
        authority,
        path_and_query,
    })
}

/// Checks the endpoint of a subscription to `protocol`, a web protocol: its URL's scheme
/// must be the protocol's.
pub(crate) fn check_web_endpoint(protocol: Protocol, endpoint: &str) -> Result<(), SnsError> {
    let parsed = parse_http_endpoint(endpoint)?;
    if parsed.tls != (protocol == Protocol::Https) {
        return Err(invalid(format!(
            "Endpoint must match the specified protocol: a {} subscription needs a {}:// URL",
            protocol.as_str(),
            protocol.as_str()
        )));
    }
    Ok(())
}

/// Checks a `lambda` subscription's endpoint:
/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
pub(crate) fn check_lambda_endpoint(endpoint: &str) -> Result<(), SnsError> {
    let bad = || {
        invalid(format!(
            "Endpoint: `{}` is not a Lambda function ARN",
            shown(endpoint)
        ))
    };
    let parts: Vec<&str> = endpoint.split(':').collect();
    let (fixed, qualifier) = match parts.len() {
        7 => (&parts[..7], None),
        8 => (&parts[..7], parts.get(7).copied()),
        _ => return Err(bad()),
    };
    let [arn, partition, service, region, account, kind, name] = fixed else {
        return Err(bad());
    };
    if *arn != "arn" || *partition != PARTITION || *service != "lambda" || *kind != "function" {
        return Err(bad());
    }
    check_region(region).map_err(|_| bad())?;
    check_account(account).map_err(|_| bad())?;
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(bad());
    }
    if let Some(q) = qualifier {
        let q_ok = q == "$LATEST"
            || ((1..=128).contains(&q.len())
                && q.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        if !q_ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// Checks a `Subject`: 1-100 printable ASCII characters, not starting with a space.
pub fn validate_subject(subject: &str) -> Result<(), SnsError> {
    if subject.is_empty() {
        return Err(invalid("Subject: empty"));
    }
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(invalid(format!(
            "Subject: longer than {MAX_SUBJECT_CHARS} characters"
        )));
    }
    if !subject.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(invalid(
            "Subject: must be printable ASCII without line breaks or control characters",
        ));
    }
    if subject.starts_with(' ') {
        return Err(invalid(
            "Subject: must begin with a letter, number or punctuation mark",
        ));
    }
    Ok(())
}

/// Checks a topic's `DisplayName`: at most 100 characters.
pub(crate) fn validate_display_name(name: &str) -> Result<(), SnsError> {
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(invalid(format!(
            "DisplayName: longer than {MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

/// One message attribute as it is stored and delivered: `{"Type": ..., "Value": ...}` under
/// its name. A `Binary` value is kept base64-encoded, as SNS delivers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAttribute {
    /// The attribute's name.
    #[serde(rename = "Name")]
    pub name: String,
    /// `String`, `Number` or `Binary`, optionally with a custom `.label`.
    #[serde(rename = "Type")]
    pub data_type: String,
    /// The value (base64 for `Binary`).
    #[serde(rename = "Value")]
    pub value: String,
}

impl MessageAttribute {
    /// The bytes this attribute counts toward the message size limit.
    pub(crate) fn size(&self) -> usize {
        let value = if self.base_type() == "Binary" {
            base64::engine::general_purpose::STANDARD
                .decode(&self.value)
                .map(|v| v.len())
                .unwrap_or(self.value.len())
        } else {
            self.value.len()
        };
        self.name.len() + self.data_type.len() + value
    }

    fn base_type(&self) -> &str {
        self.data_type
            .split_once('.')
            .map_or(self.data_type.as_str(), |(b, _)| b)
    }
}

/// A message attribute as the query protocol hands it in.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawMessageAttribute {
    pub name: String,
    pub data_type: Option<String>,
    pub string_value: Option<String>,
    pub binary_value: Option<String>,
}

/// Checks a message attribute name: 1-256 of `[A-Za-z0-9_.-]`, no leading, trailing or
/// doubled period, and not in the reserved `AWS.` and `Amazon.` prefixes.
fn check_attribute_name(name: &str) -> Result<(), SnsError> {
    let bad = |why: &str| {
        invalid(format!(
            "MessageAttributes: the name `{}` {why}",
            shown(name)
        ))
    };
    if !(1..=256).contains(&name.len()) {
        return Err(bad("must be 1-256 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(bad("may hold only A-Z, a-z, 0-9, _, - and ."));
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err(bad(
            "may not start or end with a period, nor hold two in a row",
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("aws.") || lower.starts_with("amazon.") {
        return Err(bad("uses a reserved prefix (AWS. or Amazon.)"));
    }
    Ok(())
}

/// Checks a number attribute's value: a finite decimal number.
fn is_number(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && value.bytes().any(|b| b.is_ascii_digit())
        && value.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Checks and converts the attributes of a Publish.
pub(crate) fn validate_message_attributes(
    raw: Vec<RawMessageAttribute>,
) -> Result<Vec<MessageAttribute>, SnsError> {
    if raw.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(invalid(format!(
            "MessageAttributes: more than {MAX_MESSAGE_ATTRIBUTES} attributes"
        )));
    }
    let mut out: Vec<MessageAttribute> = Vec::with_capacity(raw.len());
    for a in raw {
        check_attribute_name(&a.name)?;
        if out.iter().any(|o| o.name == a.name) {
            return Err(invalid(format!(
                "MessageAttributes: the name `{}` appears twice",
                a.name
            )));
        }
        let what = |why: &str| invalid(format!("MessageAttributes: `{}` {why}", a.name));
        let data_type = a.data_type.ok_or_else(|| what("has no Value.DataType"))?;
        let (base, label) = match data_type.split_once('.') {
            Some((b, l)) => (b, Some(l)),
            None => (data_type.as_str(), None),
        };
        if data_type.len() > 256 {
            return Err(what("has a DataType longer than 256 characters"));
        }
        if let Some(l) = label {
            let ok = !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok {
                return Err(what("has a DataType with a malformed custom label"));
            }
        }
        let value = match base {
            "String" | "Number" => {
                if a.binary_value.is_some() {
                    return Err(what("is not Binary but has a Value.BinaryValue"));
                }
                let v = a
                    .string_value
                    .ok_or_else(|| what("has no Value.StringValue"))?;
                if v.is_empty() {
                    return Err(what("has an empty Value.StringValue"));
                }
                if base == "Number" && !is_number(&v) {
                    return Err(what("is a Number whose value is not a number"));
                }
                if data_type == "String.Array"
                    && !serde_json::from_str::<serde_json::Value>(&v).is_ok_and(|j| j.is_array())
                {
                    return Err(what("is a String.Array whose value is not a JSON array"));
                }
                v
            }
            "Binary" => {
                if a.string_value.is_some() {
                    return Err(what("is Binary but has a Value.StringValue"));
                }
                let v = a
                    .binary_value
                    .ok_or_else(|| what("has no Value.BinaryValue"))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.as_bytes())
                    .map_err(|_| what("has a Value.BinaryValue that is not base64"))?;
                if bytes.is_empty() {
                    return Err(what("has an empty Value.BinaryValue"));
                }
                base64::engine::general_purpose::STANDARD.encode(bytes)
            }
            _ => {
                return Err(what(
                    "has a DataType other than String, Number or Binary (with an optional \
                     custom label)",
                ))
            }
        };
        out.push(MessageAttribute {
            name: a.name,
            data_type,
            value,
        });
    }
    Ok(out)
}

/// Checks the tags of one request: keys 1-128 and values 0-256 characters of letters,
/// digits, spaces and `_ . : / = + - @`, no `aws:` keys, no key twice.
pub(crate) fn validate_tags(tags: &[(String, String)]) -> Result<(), SnsError> {
    if tags.len() > MAX_TAGS {
        return Err(SnsError::TagLimitExceeded(format!(
            "Could not complete request: tag quota of per resource exceeded (at most {MAX_TAGS} tags)"
        )));
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    for (i, (k, v)) in tags.iter().enumerate() {
        if !(1..=128).contains(&k.chars().count()) || !k.chars().all(allowed) {
            return Err(invalid(format!(
                "Tags: the key `{}` must be 1-128 letters, digits, spaces or _.:/=+-@",
                shown(k)
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(format!(
                "Tags: the key `{}` uses the reserved prefix aws:",
                shown(k)
            )));
        }
        if v.chars().count() > 256 || !v.chars().all(allowed) {
            return Err(invalid(format!(
                "Tags: the value of `{}` must be 0-256 letters, digits, spaces or _.:/=+-@",
                shown(k)
            )));
        }
        if tags[..i].iter().any(|(other, _)| other == k) {
            return Err(invalid(format!(
                "Tags: the key `{}` appears twice",
                shown(k)
            )));
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// SNS's timestamp form, `2026-12-04T12:00:00.000Z`, of milliseconds since the epoch.
pub fn format_timestamp(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arns_round_trip() {
        let arn = TopicArn::parse("arn:aws:sns:us-east-1:123456789012:orders", "TopicArn")
            .expect("valid");
        assert_eq!(arn.name, "orders");
        assert_eq!(arn.to_string(), "arn:aws:sns:us-east-1:123456789012:orders");
        for bad in [
            "",
            "arn:aws:sns:us-east-1:123456789012",
            "arn:aws:sqs:us-east-1:123456789012:q",
            "arn:aws-cn:sns:us-east-1:123456789012:t",
            "arn:aws:sns:us-east-1:12345:t",
            "arn:aws:sns:US:123456789012:t",
            "arn:aws:sns:us-east-1:123456789012:t:x",
            "arn:aws:sns:us-east-1:123456789012:bad name",
        ] {
            assert!(TopicArn::parse(bad, "TopicArn").is_err(), "{bad}");
        }
    }

    #[test]
    fn subscription_arns_name_their_topic() {
        let id = "0b4b5e2c-1f0e-4d3a-9c1e-2f4a6b8c0d1e";
        let topic = subscription_topic(
            &format!("arn:aws:sns:eu-west-1:123456789012:t:{id}"),
            "SubscriptionArn",
        )
        .expect("valid");
        assert_eq!(topic.to_string(), "arn:aws:sns:eu-west-1:123456789012:t");
        assert!(subscription_topic("arn:aws:sns:eu-west-1:123456789012:t", "S").is_err());
        assert!(subscription_topic("arn:aws:sns:eu-west-1:123456789012:t:nope", "S").is_err());
        assert!(subscription_topic("pending confirmation", "S").is_err());
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("a").is_ok());
        assert!(validate_topic_name(&"x".repeat(256)).is_ok());
        assert!(validate_topic_name(&"x".repeat(257)).is_err());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("a.b").is_err());
        assert!(validate_topic_name("a b").is_err());
        let fifo = validate_topic_name("orders.fifo").expect_err("fifo refused");
        assert!(fifo.to_string().contains("FIFO"), "{fifo}");
    }

    #[test]
    fn protocols_refused_by_name() {
        assert_eq!(Protocol::parse("http").ok(), Some(Protocol::Http));
        assert_eq!(Protocol::parse("https").ok(), Some(Protocol::Https));
        assert_eq!(Protocol::parse("lambda").ok(), Some(Protocol::Lambda));
        for p in [
            "email",
            "email-json",
            "sms",
            "sqs",
            "application",
            "firehose",
        ] {
            let e = Protocol::parse(p).expect_err(p);
            assert_eq!(e.code(), "InvalidParameter");
            assert!(e.to_string().contains(&format!("Protocol {p} ")), "{e}");
        }
        assert!(Protocol::parse("carrier-pigeon").is_err());
    }

    #[test]
    fn http_endpoints() {
        let e = parse_http_endpoint("http://127.0.0.1:9000/hook?x=1").expect("valid");
        assert_eq!(e.host, "127.0.0.1");
        assert_eq!(e.port, 9000);
        assert_eq!(e.path_and_query, "/hook?x=1");
        assert_eq!(e.authority, "127.0.0.1:9000");
        let e = parse_http_endpoint("http://example.com").expect("valid");
        assert_eq!((e.port, e.path_and_query.as_str()), (80, "/"));
        let e = parse_http_endpoint("http://[::1]:81/").expect("valid");
        assert_eq!((e.host.as_str(), e.port, e.tls), ("[::1]", 81, false));
        let e = parse_http_endpoint("https://example.com/hook").expect("valid");
        assert_eq!(
            (e.port, e.tls, e.path_and_query.as_str()),
            (443, true, "/hook")
        );
        assert!(check_web_endpoint(Protocol::Https, "https://example.com/").is_ok());
        assert!(check_web_endpoint(Protocol::Http, "http://example.com/").is_ok());
        for (protocol, url) in [
            (Protocol::Http, "https://example.com/"),
            (Protocol::Https, "http://example.com/"),
        ] {
            let e = check_web_endpoint(protocol, url).expect_err(url);
            assert!(
                e.to_string().contains("must match the specified protocol"),
                "{e}"
            );
        }
        for bad in [
            "https://user:pw@example.com/",
            "ftp://example.com/",
            "example.com",
            "/relative",
            "http://user:pw@example.com/",
            "http://example.com/#frag",
            "http://example.com:0/",
        ] {
            assert!(parse_http_endpoint(bad).is_err(), "{bad}");
        }
        let long = format!("http://example.com/{}", "a".repeat(MAX_ENDPOINT_BYTES));
        assert!(parse_http_endpoint(&long).is_err());
    }

    #[test]
    fn lambda_endpoints() {
        for ok in [
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
            "arn:aws:lambda:us-east-1:123456789012:function:f-1_x:prod",
        ] {
            assert!(check_lambda_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "f",
            "arn:aws:lambda:us-east-1:123456789012:layer:f",
            "arn:aws:lambda:us-east-1:123456789012:function:",
            "arn:aws:lambda:us-east-1:123456789012:function:f:q:r",
            "arn:aws:lambda:us-east-1:1234:function:f",
        ] {
            assert!(check_lambda_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subjects() {
        assert!(validate_subject("Hello, world!").is_ok());
        assert!(validate_subject(&"s".repeat(MAX_SUBJECT_CHARS)).is_ok());
        assert!(validate_subject(&"s".repeat(MAX_SUBJECT_CHARS + 1)).is_err());
        assert!(validate_subject("").is_err());
        assert!(validate_subject("line\nbreak").is_err());
        assert!(validate_subject("caf\u{e9}").is_err());
        assert!(validate_subject(" leading").is_err());
    }

    fn raw(name: &str, t: &str, s: Option<&str>, b: Option<&str>) -> RawMessageAttribute {
        RawMessageAttribute {
            name: name.into(),
            data_type: Some(t.into()),
            string_value: s.map(Into::into),
            binary_value: b.map(Into::into),
        }
    }

    #[test]
    fn message_attributes_honoured_or_refused() {
        let ok = validate_message_attributes(vec![
            raw("s", "String", Some("v"), None),
            raw("n", "Number.int", Some("-1.5e3"), None),
            raw("b", "Binary", None, Some("AAEC")),
            raw("a", "String.Array", Some("[1,\"x\"]"), None),
        ])
        .expect("valid");
        assert_eq!(ok.len(), 4);
        assert_eq!(ok[2].value, "AAEC");
        for bad in [
            raw("s", "String", None, None),
            raw("s", "String", Some(""), None),
            raw("s", "String", Some("v"), Some("AA==")),
            raw("n", "Number", Some("twelve"), None),
            raw("n", "Number", Some("inf"), None),
            raw("b", "Binary", None, Some("!!")),
            raw("b", "Binary", Some("v"), None),
            raw("d", "Date", Some("v"), None),
            raw("d", "String.", Some("v"), None),
            raw("a", "String.Array", Some("{}"), None),
            raw("AWS.x", "String", Some("v"), None),
            raw(".x", "String", Some("v"), None),
            raw("a..b", "String", Some("v"), None),
            raw("sp ace", "String", Some("v"), None),
        ] {
            let name = bad.name.clone();
            assert!(validate_message_attributes(vec![bad]).is_err(), "{name}");
        }
        let many = (0..=MAX_MESSAGE_ATTRIBUTES)
            .map(|i| raw(&format!("a{i}"), "String", Some("v"), None))
            .collect();
        assert!(validate_message_attributes(many).is_err());
        let twice = vec![
            raw("a", "String", Some("v"), None),
            raw("a", "String", Some("w"), None),
        ];
        assert!(validate_message_attributes(twice).is_err());
    }

    #[test]
    fn tags() {
        assert!(
            validate_tags(&[("env".into(), "prod".into()), ("a b".into(), String::new())]).is_ok()
        );
        assert!(validate_tags(&[("aws:x".into(), "v".into())]).is_err());
        assert!(validate_tags(&[(String::new(), "v".into())]).is_err());
        assert!(validate_tags(&[("k".repeat(129), "v".into())]).is_err());
        assert!(validate_tags(&[("k".into(), "v".repeat(257))]).is_err());
        assert!(validate_tags(&[("k".into(), "<".into())]).is_err());
        assert!(validate_tags(&[("k".into(), "1".into()), ("k".into(), "2".into())]).is_err());
        let many: Vec<_> = (0..=MAX_TAGS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert_eq!(
            validate_tags(&many).map_err(|e| e.code()),
            Err("TagLimitExceeded")
        );
    }

    #[test]
    fn timestamps_have_milliseconds() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(1_796_385_600_007),
            "2026-12-04T12:00:00.007Z"
        );
    }
}

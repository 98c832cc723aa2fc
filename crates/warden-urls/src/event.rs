//! The event a function receives for a request to its URL: Lambda's payload format
//! version 2.0, the request as the function sees it.
//!
//! - `rawPath` and `requestContext.http.path` are the path as received (after the path
//!   form's `/_url/<url-id>`, see [`crate::route`]); `rawQueryString` is the query as
//!   received, without `?`.
//! - `headers` has every header but `cookie` under its lowercase name, repeated headers
//!   joined with `,`; the `cookie` headers are split on `;` into `cookies`, left out when
//!   there are none.
//! - `queryStringParameters` holds the decoded parameters (`%XX` and `+` for a space, as
//!   HTML forms encode them), repeated keys joined with `,`; left out when there are none.
//! - `requestContext.authorizer.iam` describes the signed caller, for `AWS_IAM` URLs only.
//! - `body` is the body as UTF-8 text when its content type is text (`text/*`,
//!   `application/json`, `application/javascript`, `application/xml`, `+json` and `+xml`
//!   types) and it is valid UTF-8, and base64 otherwise (`isBase64Encoded`), including a
//!   body without a content type; left out when empty.
//!
//! The members Lambda sets to `null` or leaves out for function URLs (`pathParameters`,
//! `stageVariables`, `requestContext.authentication`) are left out.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;

/// A request to a function URL, as the listener received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlRequest<'a> {
    /// The method (`GET`).
    pub method: String,
    /// The path the function sees, as received (percent-encoding kept).
    pub raw_path: String,
    /// The query string as received, without `?`; empty when there is none.
    pub raw_query: String,
    /// The headers in the order received, names in any case.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: &'a [u8],
    /// The address of the peer of the TCP connection.
    pub source_ip: String,
    /// The protocol (`HTTP/1.1`).
    pub protocol: String,
}

/// The signed caller of an `AWS_IAM` function URL, as authentication found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamCaller {
    /// The access key id that signed the request.
    pub access_key: String,
    /// The caller's account.
    pub account_id: String,
    /// The caller's id (`AIDA...`, or `AROA...:session`).
    pub caller_id: String,
    /// The caller's ARN.
    pub user_arn: String,
    /// The caller's user id.
    pub user_id: String,
}

/// What the event says that the request does not: whose URL, which invocation, when, and
/// who called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventContext {
    /// The account that owns the function.
    pub account_id: String,
    /// The URL's id (`apiId` and `domainPrefix`).
    pub url_id: String,
    /// The URL's host name (`domainName`).
    pub domain_name: String,
    /// The invocation's request id.
    pub request_id: String,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// The signed caller, for an `AWS_IAM` URL.
    pub iam: Option<IamCaller>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    version: &'static str,
    route_key: &'static str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<String>,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    query_string_parameters: BTreeMap<String, String>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    account_id: &'a str,
    api_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizer: Option<Authorizer<'a>>,
    domain_name: &'a str,
    domain_prefix: &'a str,
    http: Http<'a>,
    request_id: &'a str,
    route_key: &'static str,
    stage: &'static str,
    time: String,
    time_epoch: i64,
}

#[derive(Serialize)]
struct Authorizer<'a> {
    iam: Iam<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Iam<'a> {
    access_key: &'a str,
    account_id: &'a str,
    caller_id: &'a str,
    cognito_identity: Option<()>,
    principal_org_id: Option<()>,
    user_arn: &'a str,
    user_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Http<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'a str,
    source_ip: &'a str,
    user_agent: String,
}

/// The placeholder Lambda puts where API Gateway has a route key or a stage.
const DEFAULT: &str = "$default";

/// Builds the payload format 2.0 event of `req` (see the module's rules).
pub fn build_event(req: &UrlRequest<'_>, ctx: &EventContext) -> Vec<u8> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &req.headers {
        let name = name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(value);
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        join(&mut headers, name, &value);
    }
    let raw_query = req.raw_query.strip_prefix('?').unwrap_or(&req.raw_query);
    let (body, is_base64_encoded) = body_field(&req.headers, req.body);
    let event = Event {
        version: "2.0",
        route_key: DEFAULT,
        raw_path: &req.raw_path,
        raw_query_string: raw_query,
        cookies,
        query_string_parameters: query_parameters(raw_query),
        request_context: RequestContext {
            account_id: &ctx.account_id,
            api_id: &ctx.url_id,
            authorizer: ctx.iam.as_ref().map(|c| Authorizer {
                iam: Iam {
                    access_key: &c.access_key,
                    account_id: &c.account_id,
                    caller_id: &c.caller_id,
                    cognito_identity: None,
                    principal_org_id: None,
                    user_arn: &c.user_arn,
                    user_id: &c.user_id,
                },
            }),
            domain_name: &ctx.domain_name,
            domain_prefix: &ctx.url_id,
            http: Http {
                method: &req.method,
                path: &req.raw_path,
                protocol: &req.protocol,
                source_ip: &req.source_ip,
                user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
            },
            request_id: &ctx.request_id,
            route_key: DEFAULT,
            stage: DEFAULT,
            time: request_time(ctx.time_ms),
            time_epoch: ctx.time_ms,
        },
        headers,
        body,
        is_base64_encoded,
    };
    // Serializing strings, numbers and maps of strings cannot fail; an empty object is
    // the answer should it ever.
    serde_json::to_vec(&event).unwrap_or_else(|_| b"{}".to_vec())
}

/// Adds `value` under `name`, after a `,` when the name is there already.
fn join(map: &mut BTreeMap<String, String>, name: String, value: &str) {
    map.entry(name)
        .and_modify(|v| {
            v.push(',');
            v.push_str(value);
        })
        .or_insert_with(|| value.to_owned());
}

/// `queryStringParameters`: each `key=value` of the query decoded, repeated keys joined
/// with `,`, empty pairs skipped, a key without `=` given an empty value.
pub fn query_parameters(raw_query: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        join(&mut out, decode_component(k), &decode_component(v));
    }
    out
}

/// Decodes one query component: `+` is a space, `%XX` a byte, and bytes that are not
/// UTF-8 become U+FFFD.
fn decode_component(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether a body of `content_type` is sent as text (when it is valid UTF-8).
pub fn is_text_content_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || matches!(
            media.as_str(),
            "application/json" | "application/javascript" | "application/xml"
        )
        || media.ends_with("+json")
        || media.ends_with("+xml")
}

/// `body` and `isBase64Encoded`.
fn body_field(headers: &[(String, Vec<u8>)], body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let text = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .is_some_and(is_text_content_type);
    if text {
        if let Ok(s) = std::str::from_utf8(body) {
            return (Some(s.to_owned()), false);
        }
    }
    (
        Some(base64::engine::general_purpose::STANDARD.encode(body)),
        true,
    )
}

/// `requestContext.time`: `04/Dec/2026:09:00:00 +0000`.
pub fn request_time(ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let month = MONTHS
        .get(usize::from(u8::from(t.month())).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn ctx(iam: Option<IamCaller>) -> EventContext {
        EventContext {
            account_id: "123456789012".into(),
            url_id: "abcdefghijklmnopqrstuvwxyz012345".into(),
            domain_name: "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.localhost".into(),
            request_id: "req-1".into(),
            time_ms: 1_796_374_800_123,
            iam,
        }
    }

    fn request(body: &[u8], headers: &[(&str, &str)]) -> UrlRequest<'static> {
        UrlRequest {
            method: "POST".into(),
            raw_path: "/my/path".into(),
            raw_query: "parameter1=value1&parameter1=value2&parameter2=a+b%21".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: Vec::leak(body.to_vec()),
            source_ip: "203.0.113.7".into(),
            protocol: "HTTP/1.1".into(),
        }
    }

    fn event(req: &UrlRequest<'_>, ctx: &EventContext) -> Value {
        serde_json::from_slice(&build_event(req, ctx)).unwrap()
    }

    #[test]
    fn the_event_is_lambdas_payload_2_0() {
        let req = request(
            b"Hello from client!",
            &[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("User-Agent", "agent"),
                ("X-Multi", "value1"),
                ("x-multi", "value2"),
                ("Cookie", "cookie1=a; cookie2=b"),
                ("cookie", "cookie3=c"),
            ],
        );
        let got = event(&req, &ctx(None));
        let want = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/my/path",
            "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=a+b%21",
            "cookies": ["cookie1=a", "cookie2=b", "cookie3=c"],
            "headers": {
                "content-type": "text/plain; charset=utf-8",
                "user-agent": "agent",
                "x-multi": "value1,value2"
            },
            "queryStringParameters": {
                "parameter1": "value1,value2",
                "parameter2": "a b!"
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abcdefghijklmnopqrstuvwxyz012345",
                "domainName": "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.localhost",
                "domainPrefix": "abcdefghijklmnopqrstuvwxyz012345",
                "http": {
                    "method": "POST",
                    "path": "/my/path",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.7",
                    "userAgent": "agent"
                },
                "requestId": "req-1",
                "routeKey": "$default",
                "stage": "$default",
                "time": "04/Dec/2026:09:00:00 +0000",
                "timeEpoch": 1_796_374_800_123_i64
            },
            "body": "Hello from client!",
            "isBase64Encoded": false
        });
        assert_eq!(got, want);
    }

    #[test]
    fn iam_callers_are_described_and_others_are_not() {
        let caller = IamCaller {
            access_key: "AKIAEXAMPLE".into(),
            account_id: "111122223333".into(),
            caller_id: "AIDAEXAMPLE".into(),
            user_arn: "arn:aws:iam::111122223333:user/alice".into(),
            user_id: "AIDAEXAMPLE".into(),
        };
        let req = request(b"", &[]);
        let got = event(&req, &ctx(Some(caller)));
        assert_eq!(
            got["requestContext"]["authorizer"],
            json!({"iam": {
                "accessKey": "AKIAEXAMPLE",
                "accountId": "111122223333",
                "callerId": "AIDAEXAMPLE",
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": "arn:aws:iam::111122223333:user/alice",
                "userId": "AIDAEXAMPLE"
            }})
        );
        let got = event(&req, &ctx(None));
        assert!(got["requestContext"].get("authorizer").is_none());
        // No body, cookies or query: those members are left out.
        let mut bare = request(b"", &[]);
        bare.raw_query = String::new();
        let got = event(&bare, &ctx(None));
        for absent in ["body", "cookies", "queryStringParameters"] {
            assert!(got.get(absent).is_none(), "{absent}");
        }
        assert_eq!(got["isBase64Encoded"], false);
        assert_eq!(got["rawQueryString"], "");
        assert_eq!(got["requestContext"]["http"]["userAgent"], "");
    }

    #[test]
    fn bodies_are_text_or_base64_by_content_type() {
        for ct in [
            "text/html",
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/javascript",
            "application/xml",
            "application/problem+json",
            "image/svg+xml",
        ] {
            let got = event(&request(b"{\"a\":1}", &[("content-type", ct)]), &ctx(None));
            assert_eq!(got["isBase64Encoded"], false, "{ct}");
            assert_eq!(got["body"], "{\"a\":1}");
        }
        for (ct, body) in [
            (Some("application/octet-stream"), &b"abc"[..]),
            (Some("application/x-www-form-urlencoded"), b"a=b"),
            (Some("image/png"), b"\x89PNG"),
            (Some("text/plain"), b"\xff\xfe"),
            (None, b"abc"),
        ] {
            let headers: Vec<(&str, &str)> = ct.iter().map(|c| ("content-type", *c)).collect();
            let got = event(&request(body, &headers), &ctx(None));
            assert_eq!(got["isBase64Encoded"], true, "{ct:?}");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(got["body"].as_str().unwrap())
                .unwrap();
            assert_eq!(decoded, body);
        }
    }

    #[test]
    fn query_strings_decode_as_forms_do() {
        let q = query_parameters("a=1&a=2&b&&c=%E2%9C%93&d=%ZZ&e+f=g+h&=x");
        assert_eq!(q["a"], "1,2");
        assert_eq!(q["b"], "");
        assert_eq!(q["c"], "\u{2713}");
        assert_eq!(q["d"], "%ZZ");
        assert_eq!(q["e f"], "g h");
        assert_eq!(q[""], "x");
        assert!(query_parameters("").is_empty());
        let mut req = request(b"", &[]);
        req.raw_query = "?x=1".into();
        assert_eq!(event(&req, &ctx(None))["rawQueryString"], "x=1");
    }

    #[test]
    fn times_are_written_as_lambda_writes_them() {
        assert_eq!(request_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(
            request_time(1_796_374_800_999),
            "04/Dec/2026:09:00:00 +0000"
        );
    }

    proptest! {
        #[test]
        fn any_request_makes_a_valid_event(
            method in "[A-Z]{1,7}",
            path in ".{0,40}",
            query in ".{0,60}",
            headers in proptest::collection::vec((".{0,12}", proptest::collection::vec(any::<u8>(), 0..24)), 0..8),
            content_type in proptest::option::of("(text/plain|application/json|image/png|.{0,20})"),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut headers = headers;
            if let Some(ct) = &content_type {
                headers.push(("Content-Type".into(), ct.as_bytes().to_vec()));
            }
            let req = UrlRequest {
                method,
                raw_path: path,
                raw_query: query,
                headers,
                body: &body,
                source_ip: "127.0.0.1".into(),
                protocol: "HTTP/1.1".into(),
            };
            let v: Value = serde_json::from_slice(&build_event(&req, &ctx(None))).unwrap();
            prop_assert_eq!(&v["version"], "2.0");
            prop_assert!(v["headers"].as_object().unwrap().keys().all(|k| k != "cookie" && *k == k.to_ascii_lowercase()));
            // The body always comes back whole.
            let sent = match (v.get("body"), v["isBase64Encoded"].as_bool().unwrap()) {
                (None, _) => Vec::new(),
                (Some(b), true) => base64::engine::general_purpose::STANDARD.decode(b.as_str().unwrap()).unwrap(),
                (Some(b), false) => b.as_str().unwrap().as_bytes().to_vec(),
            };
            prop_assert_eq!(sent, body);
        }
    }
}

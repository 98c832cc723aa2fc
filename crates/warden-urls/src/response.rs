//! The HTTP response of a function URL, made from what the function returned, by Lambda's
//! rules for payload format 2.0:
//!
//! - Output that is a JSON object with a `statusCode` member is a response description:
//!   `statusCode` (an integer from 100 to 599), `headers` (an object of header values),
//!   `cookies` (a list, each one its own `set-cookie` header), `body` (a string), and
//!   `isBase64Encoded` (whether `body` is base64, decoded before it is sent).
//! - Any other valid JSON (a string, a number, `null`, an object without `statusCode`)
//!   is the body itself, byte for byte, sent with status 200 and
//!   `content-type: application/json`: a function that returns `"Hello"` answers
//!   `"Hello"`, quotes included.
//! - Output that is not JSON, a description of the wrong shape (a `statusCode` that is
//!   not an integer from 100 to 599, `headers` that is not an object, `cookies` that is
//!   not a list, a `body` that is not a string, an `isBase64Encoded` that is not a
//!   boolean, a body marked base64 that does not decode), and a function error are
//!   answered `502 Bad Gateway` with `{"Message":"Internal Server Error"}`
//!   ([`function_error`]); [`MappedResponse::problem`] says why, for the log.
//!
//! A function never writes raw header lines: a header whose name is not an HTTP token, or
//! whose value holds anything but visible ASCII, spaces and tabs (a CR or LF, a NUL,
//! non-ASCII), is dropped and named in [`MappedResponse::dropped_headers`], and so is a
//! header that frames the message (`content-length`, `transfer-encoding`, `connection`,
//! `keep-alive`, `proxy-connection`, `upgrade`, `te`, `trailer`), which the listener
//! writes itself. The rest of the response is sent: one bad header does not cost the
//! caller the answer. Header names are sent in lowercase; when a name appears twice in
//! different cases the later one (in the JSON object's key order) is kept.

use base64::Engine as _;
use serde_json::Value;

use crate::model::is_token;

/// The response to send for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names in lowercase, values safe to write.
    pub headers: Vec<(String, String)>,
    /// The cookies to set: each is one `set-cookie` header.
    pub cookies: Vec<String>,
    /// The body.
    pub body: Vec<u8>,
    /// The names of the function's headers and cookies that were dropped (shown safely,
    /// cut to 64 characters), for the log.
    pub dropped_headers: Vec<String>,
    /// Why the platform answered instead of the function (a 502), for the log; never sent.
    pub problem: Option<String>,
}

/// Headers that frame the message on the wire; the listener writes its own.
const FRAMING_HEADERS: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
];

/// The body of the platform's 502.
const BAD_GATEWAY_BODY: &[u8] = br#"{"Message":"Internal Server Error"}"#;

impl MappedResponse {
    /// Every header line to write: the headers, then one `set-cookie` per cookie.
    pub fn header_lines(&self) -> Vec<(String, String)> {
        let mut lines = self.headers.clone();
        lines.extend(
            self.cookies
                .iter()
                .map(|c| ("set-cookie".to_owned(), c.clone())),
        );
        lines
    }

    /// The value of header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets header `name` to `value`, replacing any value it had; `false` (and nothing
    /// set) when either is not safe to write.
    pub fn set_header(&mut self, name: &str, value: &str) -> bool {
        let name = name.to_ascii_lowercase();
        if !is_token(&name) || !is_safe_value(value) {
            return false;
        }
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.trim().to_owned()));
        true
    }
}

/// The platform's answer when the function failed or answered something unusable: `502`
/// with `{"Message":"Internal Server Error"}`.
pub fn function_error(problem: impl Into<String>) -> MappedResponse {
    MappedResponse {
        status: 502,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        cookies: Vec::new(),
        body: BAD_GATEWAY_BODY.to_vec(),
        dropped_headers: Vec::new(),
        problem: Some(problem.into()),
    }
}

/// Whether `value` can be written as a header value: visible ASCII, spaces and tabs only.
fn is_safe_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// A dropped header's name as the log may show it.
fn shown_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

/// Maps what a function returned to the response (see the module's rules). Never fails:
/// anything unusable becomes the platform's 502.
pub fn map_response(output: &[u8]) -> MappedResponse {
    let value: Value = match serde_json::from_slice(output) {
        Ok(v) => v,
        Err(e) => return function_error(format!("the function's output is not JSON: {e}")),
    };
    let Value::Object(obj) = &value else {
        return plain_json(output);
    };
    if !obj.contains_key("statusCode") {
        return plain_json(output);
    }
    match described(obj) {
        Ok(r) => r,
        Err(problem) => function_error(problem),
    }
}

/// Valid JSON that is not a response description: sent as it is.
fn plain_json(output: &[u8]) -> MappedResponse {
    MappedResponse {
        status: 200,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        cookies: Vec::new(),
        body: output.to_vec(),
        dropped_headers: Vec::new(),
        problem: None,
    }
}

/// A response description, or why it is not one.
fn described(obj: &serde_json::Map<String, Value>) -> Result<MappedResponse, String> {
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or("statusCode is not an integer from 100 to 599")?;
    let mut response = MappedResponse {
        status,
        headers: Vec::new(),
        cookies: Vec::new(),
        body: Vec::new(),
        dropped_headers: Vec::new(),
        problem: None,
    };
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(headers)) => {
            for (name, value) in headers {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        response.dropped_headers.push(shown_name(name));
                        continue;
                    }
                };
                let lower = name.to_ascii_lowercase();
                if FRAMING_HEADERS.contains(&lower.as_str()) || !response.set_header(&lower, &text)
                {
                    response.dropped_headers.push(shown_name(name));
                }
            }
        }
        Some(_) => return Err("headers is not an object".to_owned()),
    }
    match obj.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                match cookie.as_str() {
                    Some(c) if is_safe_value(c) && !c.trim().is_empty() => {
                        response.cookies.push(c.trim().to_owned());
                    }
                    _ => response.dropped_headers.push("set-cookie".to_owned()),
                }
            }
        }
        Some(_) => return Err("cookies is not a list".to_owned()),
    }
    let base64 = match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("isBase64Encoded is not a boolean".to_owned()),
    };
    response.body = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if base64 => {
            decode_base64(s).ok_or("body is marked isBase64Encoded and is not base64")?
        }
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(_) => return Err("body is not a string".to_owned()),
    };
    Ok(response)
}

/// The content type a streaming function declares when its stream begins with an HTTP
/// response description (Node.js `awslambda.HttpResponseStream.from`): a JSON prelude,
/// then [`PRELUDE_DELIMITER`], then the body.
pub const HTTP_INTEGRATION_CONTENT_TYPE: &str =
    "application/vnd.awslambda.http-integration-response";
/// What ends the prelude of an HTTP integration stream: eight NUL bytes.
pub const PRELUDE_DELIMITER: [u8; 8] = [0; 8];
/// The largest prelude accepted; a stream without a delimiter within it is a 502.
pub const MAX_PRELUDE_BYTES: usize = 64 * 1024;

/// Where the prelude of an HTTP integration stream ends: the length of the prelude and of
/// the delimiter after it, if `buffer` holds the whole delimiter.
pub fn prelude_end(buffer: &[u8]) -> Option<(usize, usize)> {
    buffer
        .windows(PRELUDE_DELIMITER.len())
        .position(|w| w == PRELUDE_DELIMITER)
        .map(|at| (at, at + PRELUDE_DELIMITER.len()))
}

/// The head of a streamed response made from its prelude (a JSON object with
/// `statusCode`, 200 when absent, `headers` and `cookies`, by the same rules as a buffered
/// response description; a `body` in it is ignored, the stream is the body). Anything
/// unusable is the platform's 502.
pub fn map_stream_prelude(prelude: &[u8]) -> MappedResponse {
    let mut obj = match serde_json::from_slice::<Value>(prelude) {
        Ok(Value::Object(obj)) => obj,
        Ok(_) => return function_error("the response stream's prelude is not a JSON object"),
        Err(e) => return function_error(format!("the response stream's prelude is not JSON: {e}")),
    };
    obj.entry("statusCode").or_insert(Value::from(200));
    obj.remove("body");
    obj.remove("isBase64Encoded");
    match described(&obj) {
        Ok(r) => r,
        Err(problem) => function_error(problem),
    }
}

/// The head of a streamed response without a prelude: 200, with the content type the
/// function declared (`application/octet-stream` when it cannot be written as a header).
pub fn stream_head(content_type: &str) -> MappedResponse {
    let mut response = MappedResponse {
        status: 200,
        headers: Vec::new(),
        cookies: Vec::new(),
        body: Vec::new(),
        dropped_headers: Vec::new(),
        problem: None,
    };
    if !response.set_header("content-type", content_type) {
        response.set_header("content-type", "application/octet-stream");
    }
    response
}

/// Standard base64, padded or not, line breaks and spaces ignored.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(compact).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(output: &str) -> MappedResponse {
        map_response(output.as_bytes())
    }

    #[test]
    fn json_without_status_code_is_the_body() {
        let r = map(r#""Hello, world!""#);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, br#""Hello, world!""#);
        for out in [
            "{\n  \"message\": \"Hello, world!\"\n}",
            "42",
            "null",
            "[1,2]",
            "true",
        ] {
            let r = map(out);
            assert_eq!((r.status, r.body.as_slice()), (200, out.as_bytes()));
            assert_eq!(r.problem, None);
        }
    }

    #[test]
    fn response_descriptions_are_followed() {
        let r = map(
            r#"{"statusCode":201,"headers":{"Content-Type":"application/json","My-Custom-Header":"Custom Value","X-Count":3,"X-Flag":true},
               "body":"{ \"message\": \"Hello, world!\" }",
               "cookies":["Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT","Cookie_2=Value2; Max-Age=78000"],
               "isBase64Encoded":false}"#,
        );
        assert_eq!(r.status, 201);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("my-custom-header"), Some("Custom Value"));
        assert_eq!(r.header("x-count"), Some("3"));
        assert_eq!(r.header("x-flag"), Some("true"));
        assert!(r.headers.iter().all(|(n, _)| *n == n.to_ascii_lowercase()));
        assert_eq!(r.body, br#"{ "message": "Hello, world!" }"#);
        assert_eq!(r.cookies.len(), 2);
        let lines = r.header_lines();
        assert_eq!(
            lines.iter().filter(|(n, _)| n == "set-cookie").count(),
            2,
            "{lines:?}"
        );
        // Base64 bodies are decoded; a description may leave everything but the status out.
        let r = map(r#"{"statusCode":200,"body":"AAEC/w==","isBase64Encoded":true}"#);
        assert_eq!(r.body, [0, 1, 2, 255]);
        let r = map(r#"{"statusCode":200,"body":"AAEC/w","isBase64Encoded":true}"#);
        assert_eq!(r.body, [0, 1, 2, 255]);
        let r = map(r#"{"statusCode":204}"#);
        assert_eq!((r.status, r.body.len(), r.headers.len()), (204, 0, 0));
    }

    #[test]
    fn malformed_output_is_a_bad_gateway() {
        for out in [
            "not json",
            "",
            r#"{"statusCode":"200"}"#,
            r#"{"statusCode":99}"#,
            r#"{"statusCode":600}"#,
            r#"{"statusCode":200.5}"#,
            r#"{"statusCode":-1}"#,
            r#"{"statusCode":null}"#,
            r#"{"statusCode":200,"headers":[]}"#,
            r#"{"statusCode":200,"cookies":"a=b"}"#,
            r#"{"statusCode":200,"body":{"a":1}}"#,
            r#"{"statusCode":200,"isBase64Encoded":"true","body":""}"#,
            r#"{"statusCode":200,"isBase64Encoded":true,"body":"%%%"}"#,
        ] {
            let r = map(out);
            assert_eq!(r.status, 502, "{out}");
            assert_eq!(r.body, BAD_GATEWAY_BODY, "{out}");
            assert!(r.problem.is_some(), "{out}");
        }
        let e = function_error("Unhandled");
        assert_eq!((e.status, e.problem.as_deref()), (502, Some("Unhandled")));
    }

    #[test]
    fn headers_cannot_be_injected() {
        let r = map(r#"{"statusCode":200,"headers":{
                "X-Evil":"a\r\nSet-Cookie: stolen=1",
                "X-Lf":"a\nb",
                "X-Nul":"a\u0000b",
                "X-Del":"a\u007fb",
                "X-Utf8":"caf\u00e9",
                "Bad Name":"v",
                "":"v",
                "X-Obj":{"a":1},
                "Content-Length":"1",
                "Transfer-Encoding":"chunked",
                "Connection":"close",
                "X-Ok":"  fine\tvalue  "
            },"cookies":["a=b\r\nx: y", 5, "", "ok=1"],"body":"x"}"#);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers,
            vec![("x-ok".to_owned(), "fine\tvalue".to_owned())]
        );
        assert_eq!(r.cookies, vec!["ok=1".to_owned()]);
        assert_eq!(r.dropped_headers.len(), 14, "{:?}", r.dropped_headers);
        assert!(r
            .dropped_headers
            .iter()
            .all(|n| !n.contains(['\r', '\n', ' '])));
    }

    #[test]
    fn set_header_replaces_and_refuses_unsafe_values() {
        let mut r = map(r#"{"statusCode":200,"headers":{"Vary":"Accept"}}"#);
        assert!(r.set_header("VARY", "Accept, Origin"));
        assert_eq!(r.header("vary"), Some("Accept, Origin"));
        assert_eq!(r.headers.len(), 1);
        assert!(!r.set_header("x", "a\r\nb"));
        assert!(!r.set_header("a b", "x"));
        assert_eq!(r.headers.len(), 1);
    }

    fn safe(r: &MappedResponse) -> bool {
        (100..=599).contains(&r.status)
            && r.header_lines().iter().all(|(n, v)| {
                is_token(n)
                    && !v.contains(['\r', '\n', '\0'])
                    && v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            })
    }

    proptest! {
        #[test]
        fn any_bytes_map_safely(output in proptest::collection::vec(any::<u8>(), 0..256)) {
            prop_assert!(safe(&map_response(&output)));
        }

        #[test]
        fn any_description_maps_safely(
            status in any::<i64>(),
            headers in proptest::collection::vec((".{0,16}", ".{0,24}"), 0..8),
            cookies in proptest::collection::vec(".{0,24}", 0..4),
            body in ".{0,40}",
            b64 in any::<bool>(),
        ) {
            let headers: serde_json::Map<String, Value> =
                headers.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let out = serde_json::json!({
                "statusCode": status,
                "headers": headers,
                "cookies": cookies,
                "body": body,
                "isBase64Encoded": b64,
            });
            let r = map_response(out.to_string().as_bytes());
            prop_assert!(safe(&r));
            if r.status != 502 || r.problem.is_none() {
                prop_assert_eq!(i64::from(r.status), status);
            }
        }
    }

    #[test]
    fn a_stream_prelude_is_the_head_of_the_response() {
        let r = map_stream_prelude(
            br#"{"statusCode":201,"headers":{"Content-Type":"text/plain","X-A":"1"},"cookies":["a=1"],"body":"ignored"}"#,
        );
        assert_eq!(r.status, 201);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.header("x-a"), Some("1"));
        assert_eq!(r.cookies, vec!["a=1".to_owned()]);
        assert!(r.body.is_empty());
        assert_eq!(map_stream_prelude(b"{}").status, 200);
        for bad in [&b"[1]"[..], b"not json", br#"{"statusCode":"x"}"#] {
            assert_eq!(map_stream_prelude(bad).status, 502);
        }
        assert_eq!(
            stream_head("text/event-stream").header("content-type"),
            Some("text/event-stream")
        );
        assert_eq!(
            stream_head("bad\r\nx: y").header("content-type"),
            Some("application/octet-stream")
        );
    }

    #[test]
    fn the_prelude_ends_at_eight_nul_bytes() {
        let mut stream = br#"{"statusCode":200}"#.to_vec();
        assert_eq!(prelude_end(&stream), None);
        stream.extend_from_slice(&[0; 7]);
        assert_eq!(prelude_end(&stream), None);
        stream.extend_from_slice(&[0, b'h', b'i']);
        assert_eq!(prelude_end(&stream), Some((18, 26)));
    }

    proptest! {
        #[test]
        fn prelude_end_finds_the_first_delimiter(head in proptest::collection::vec(1u8.., 0..200), tail in proptest::collection::vec(any::<u8>(), 0..50)) {
            let mut stream = head.clone();
            stream.extend_from_slice(&PRELUDE_DELIMITER);
            stream.extend_from_slice(&tail);
            prop_assert_eq!(prelude_end(&stream), Some((head.len(), head.len() + 8)));
            let _ = map_stream_prelude(&head);
        }
    }
}

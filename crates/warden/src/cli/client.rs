//! The one place where the client talks HTTP to Warden.
//!
//! Every request goes through [`Client::send`], which signs it with SigV4 (credentials and
//! region from [`super::credentials`]). Server errors arrive AWS-shaped (`x-amzn-ErrorType`
//! header, JSON body `{"Type","Message"}`) and become an [`ApiError`] that prints as one line.

use std::{
    fmt,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, SystemTime},
};

use http::{Method, Request};
use warden_auth::SigningCredentials;

use super::credentials;

/// Responses bigger than this are refused: a sync invoke returns at most 6 MB.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// A function may run for 900 s; leave room for the platform around it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(960);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Response body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| anyhow::anyhow!("the server sent a response that is not JSON: {e}"))
    }
}

/// An error answered by the server in AWS's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The AWS error code, e.g. `ResourceNotFoundException`.
    pub code: String,
    /// The server's message.
    pub message: String,
    /// What the request was about (e.g. "function `foo`"), used to phrase "not found".
    pub subject: Option<String>,
}

/// The text of the first `<name>` element of a small XML document, entities decoded.
fn xml_element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

impl ApiError {
    /// Reads an error out of a non-2xx reply.
    pub fn from_reply(reply: &Reply) -> Self {
        let body: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
        // IAM and STS answer with the query protocol's `<ErrorResponse>` instead.
        let xml = std::str::from_utf8(&reply.body)
            .ok()
            .filter(|t| t.trim_start().starts_with('<'));
        let field = |names: &[&str]| {
            body.as_ref()
                .and_then(|b| {
                    names
                        .iter()
                        .find_map(|n| b.get(*n).and_then(|v| v.as_str()).map(str::to_owned))
                })
                .or_else(|| xml.and_then(|x| names.iter().find_map(|n| xml_element(x, n))))
        };
        // botocore reads the header first; `__type` may carry a `prefix#` before the code.
        let code = reply
            .header("x-amzn-ErrorType")
            .map(str::to_owned)
            .or_else(|| field(&["__type", "code", "Code"]))
            .map(|c| {
                let c = c.split(':').next().unwrap_or_default();
                c.rsplit('#').next().unwrap_or_default().to_owned()
            })
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| format!("HTTP {}", reply.status));
        let message = field(&["Message", "message", "errorMessage"]).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&reply.body);
            let text = text.trim();
            if text.is_empty() {
                format!("the server answered HTTP {}", reply.status)
            } else {
                text.chars().take(300).collect()
            }
        });
        Self {
            status: reply.status,
            code,
            message,
            subject: None,
        }
    }

    /// Names what the request was about, so "not found" reads naturally.
    pub fn about(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(subject), "ResourceNotFoundException") = (&self.subject, self.code.as_str()) {
            return write!(f, "{subject} not found ({})", self.code);
        }
        let message = self.message.trim().trim_end_matches('.');
        let mut chars = message.chars();
        match chars.next() {
            // Lowercase the first letter unless it starts an acronym or a name ("ARN", "X-Amz").
            Some(first) if !chars.next().is_some_and(|c| c.is_uppercase() || c == '-') => {
                write!(
                    f,
                    "{}{} ({})",
                    first.to_lowercase(),
                    chars_from(message, 1),
                    self.code
                )
            }
            _ => write!(f, "{message} ({})", self.code),
        }
    }
}

fn chars_from(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or("", |(i, _)| &s[i..])
}

impl std::error::Error for ApiError {}

/// Warden could not be reached at all.
#[derive(Debug)]
pub struct Unreachable {
    endpoint: String,
    detail: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reach Warden at {}: is `warden serve` running? ({})",
            self.endpoint, self.detail
        )
    }
}

impl std::error::Error for Unreachable {}

/// How requests are signed.
#[derive(Debug)]
struct Signer {
    credentials: SigningCredentials,
    region: String,
}

/// A connection to one Warden endpoint.
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    /// `None` when no credentials were found: requests go unsigned.
    signer: Option<Signer>,
    /// Printed once, on the first refused unsigned request.
    hint: Option<String>,
    hint_shown: AtomicBool,
}

impl Client {
    /// A client for `endpoint`, e.g. `http://127.0.0.1:9700`, signing with the credentials
    /// and region found in the process environment (see [`credentials::find`]).
    pub fn new(endpoint: &str) -> anyhow::Result<Self> {
        Self::with_env(endpoint, &credentials::process_env)
    }

    /// As [`Client::new`], reading the environment through `env`.
    pub fn with_env(endpoint: &str, env: credentials::Env<'_>) -> anyhow::Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !endpoint.starts_with("http://") {
            anyhow::bail!(
                "endpoint `{endpoint}` is not supported: this client speaks plain `http://` only"
            );
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("warden-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let found = credentials::find(env)?;
        let hint = found.is_none().then(|| credentials::hint(env));
        let signer = found.map(|f| Signer {
            credentials: f.credentials,
            region: credentials::region(env),
        });
        Ok(Self {
            agent,
            endpoint,
            signer,
            hint,
            hint_shown: AtomicBool::new(false),
        })
    }

    /// Sends one request and reads the whole reply; any HTTP status is returned as a reply,
    /// only transport failures are errors. The request is signed for the service its path
    /// belongs to (see [`service_for`]).
    ///
    /// `path_and_query` must already be percent-encoded (see [`encode`]).
    pub fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Reply> {
        self.send_for(
            service_for(path_and_query),
            method,
            path_and_query,
            headers,
            body,
        )
    }

    /// As [`Client::send`], signed for `service` (the name a SigV4 credential scope
    /// carries): for APIs that share a path with another, such as EC2's query API, which
    /// lives at `/` beside IAM's and is told apart only by its signature.
    pub fn send_for(
        &self,
        service: &str,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Reply> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.endpoint));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        // A body is JSON unless the caller says what it is.
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !typed {
            builder = builder.header("Content-Type", "application/json");
        }
        let mut request = builder
            .body(())
            .map_err(|e| anyhow::anyhow!("could not build the request: {e}"))?;
        if let Some(signer) = &self.signer {
            warden_auth::sign_request(
                &mut request,
                body.as_deref().unwrap_or_default(),
                &signer.credentials,
                &signer.region,
                service,
                SystemTime::now(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let (parts, ()) = request.into_parts();
        let result = match body {
            Some(body) => self.agent.run(Request::from_parts(parts, body)),
            None => self.agent.run(Request::from_parts(parts, ())),
        };
        let response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let (parts, mut body) = response.into_parts();
        let body = body
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport_error(e))?;
        if matches!(status, 401 | 403) {
            if let Some(hint) = &self.hint {
                if !self.hint_shown.swap(true, Ordering::Relaxed) {
                    eprintln!("{hint}");
                }
            }
        }
        if (200..300).contains(&status) {
            // The server's warnings (environment values that look like secrets) go to
            // stderr, so that scripts reading stdout are not disturbed.
            for warning in parts.headers.get_all(http::header::WARNING) {
                if let Ok(text) = warning.to_str() {
                    let text = text
                        .strip_prefix("199 warden ")
                        .map_or(text, |t| t.trim_matches('"'));
                    eprintln!("warning: {text}");
                }
            }
        }
        Ok(Reply {
            status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and turns a non-2xx reply into an [`ApiError`] about `subject`.
    pub fn call(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        subject: &str,
    ) -> anyhow::Result<Reply> {
        let reply = self.send(method, path_and_query, headers, body)?;
        if (200..300).contains(&reply.status) {
            Ok(reply)
        } else {
            Err(ApiError::from_reply(&reply).about(subject).into())
        }
    }

    fn transport_error(&self, e: ureq::Error) -> anyhow::Error {
        let unreachable = |detail: String| {
            anyhow::Error::new(Unreachable {
                endpoint: self.endpoint.clone(),
                detail,
            })
        };
        match e {
            ureq::Error::Io(io) if is_connect_error(&io) => unreachable(io.to_string()),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => unreachable(e.to_string()),
            ureq::Error::Timeout(t) => {
                anyhow::anyhow!("request to {} timed out ({t})", self.endpoint)
            }
            ureq::Error::BodyExceedsLimit(n) => {
                anyhow::anyhow!("the server's reply is larger than {n} bytes")
            }
            other => anyhow::anyhow!("request to {} failed: {other}", self.endpoint),
        }
    }
}

/// The SigV4 service name for a request: IAM's query API lives at `/`; Lambda's REST paths and
/// Warden's own `/_warden/...` paths are signed as `lambda`. EC2's query API shares `/` with
/// IAM: its requests name their service with [`Client::send_for`].
fn service_for(path_and_query: &str) -> &'static str {
    let path = path_and_query.split('?').next().unwrap_or_default();
    if path_and_query.contains("Action=GetCallerIdentity") {
        "sts"
    } else if path == "/" || path.is_empty() {
        "iam"
    } else {
        "lambda"
    }
}

fn is_connect_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | AddrNotAvailable
    )
}

/// Percent-encodes a path segment or query value (everything but RFC 3986 unreserved).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, code: Option<&str>, body: &str) -> Reply {
        let mut headers = http::HeaderMap::new();
        if let Some(code) = code {
            headers.insert("x-amzn-ErrorType", code.parse().unwrap());
        }
        Reply {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn not_found_names_the_subject() {
        let r = reply(
            404,
            Some("ResourceNotFoundException"),
            r#"{"Type":"User","Message":"Function not found: arn:aws:lambda:us-east-1:000000000000:function:foo"}"#,
        );
        let e = ApiError::from_reply(&r).about("function `foo`");
        assert_eq!(
            e.to_string(),
            "function `foo` not found (ResourceNotFoundException)"
        );
    }

    #[test]
    fn other_errors_show_the_message_and_code() {
        let r = reply(
            400,
            Some("InvalidParameterValueException"),
            r#"{"Type":"User","Message":"Memory size must be between 128 and 10240."}"#,
        );
        assert_eq!(
            ApiError::from_reply(&r).about("function `foo`").to_string(),
            "memory size must be between 128 and 10240 (InvalidParameterValueException)"
        );
        let r = reply(
            400,
            Some("InvalidParameterValueException"),
            r#"{"Message":"ARN is bad"}"#,
        );
        assert_eq!(
            ApiError::from_reply(&r).to_string(),
            "ARN is bad (InvalidParameterValueException)"
        );
    }

    #[test]
    fn query_protocol_errors_are_read_from_their_xml() {
        let r = reply(
            403,
            None,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token &amp; so on</Message></Error><RequestId>1</RequestId></ErrorResponse>",
        );
        let e = ApiError::from_reply(&r);
        assert_eq!(e.code, "InvalidClientTokenId");
        assert_eq!(e.message, "The security token & so on");
    }

    #[test]
    fn code_falls_back_to_the_body_then_the_status() {
        let r = reply(
            429,
            None,
            r#"{"__type":"com.amazon#TooManyRequestsException","message":"Rate exceeded"}"#,
        );
        assert_eq!(
            ApiError::from_reply(&r).to_string(),
            "rate exceeded (TooManyRequestsException)"
        );
        let r = reply(500, Some("ServiceException:http://internal"), "");
        assert_eq!(
            ApiError::from_reply(&r).to_string(),
            "the server answered HTTP 500 (ServiceException)"
        );
        let r = reply(502, None, "Bad Gateway");
        assert_eq!(
            ApiError::from_reply(&r).to_string(),
            "bad Gateway (HTTP 502)"
        );
    }

    #[test]
    fn unreachable_message() {
        let e = Unreachable {
            endpoint: "http://127.0.0.1:9700".into(),
            detail: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach Warden at http://127.0.0.1:9700: is `warden serve` running? (connection refused)"
        );
    }

    #[test]
    fn refuses_other_schemes() {
        let err = Client::new("https://example.invalid").err().unwrap();
        assert!(err.to_string().contains("plain `http://` only"), "{err}");
    }

    #[test]
    fn connection_refused_is_reported_as_unreachable() {
        // Bind then drop a listener: the port is free and nothing answers on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = Client::new(&endpoint).unwrap();
        let err = client.send(Method::GET, "/", &[], None).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "cannot reach Warden at {endpoint}: is `warden serve` running?"
            )),
            "{err}"
        );
    }

    /// Serves one request on a local port: returns the endpoint and a handle yielding the raw
    /// request (head and body) after answering it with `status`.
    fn one_shot_server(status: u16) -> (String, std::thread::JoinHandle<(String, Vec<u8>)>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            );
            reader.get_mut().write_all(reply.as_bytes()).unwrap();
            (head, body)
        });
        (endpoint, handle)
    }

    /// Rebuilds the server's view of a raw request head.
    fn parts_of(head: &str) -> http::request::Parts {
        let mut lines = head.lines();
        let mut start = lines.next().unwrap().split(' ');
        let (method, target) = (start.next().unwrap(), start.next().unwrap());
        let mut builder = Request::builder().method(method).uri(target);
        for line in lines {
            let (k, v) = line.split_once(':').unwrap();
            builder = builder.header(k.trim(), v.trim());
        }
        builder.body(()).unwrap().into_parts().0
    }

    struct OneKey(warden_types::identity::Credential);

    impl warden_types::identity::CredentialSource for OneKey {
        fn lookup(&self, id: &str) -> Option<warden_types::identity::Credential> {
            (id == self.0.access_key_id).then(|| self.0.clone())
        }
    }

    fn env_with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn requests_are_signed_so_that_the_server_verifies_them() {
        let env = env_with(&[
            ("AWS_ACCESS_KEY_ID", "AKIACLIENTTEST000001"),
            ("AWS_SECRET_ACCESS_KEY", "client/secret+key"),
            ("AWS_SESSION_TOKEN", "session/token+="),
            ("AWS_REGION", "eu-central-1"),
        ]);
        for (method, path, body) in [
            (
                Method::POST,
                "/2015-03-31/functions/f%3Ax/invocations?Qualifier=%24LATEST",
                Some(b"{\"a\": 1}".to_vec()),
            ),
            (Method::GET, "/_warden/functions/f/logs?since_seq=3", None),
        ] {
            let (endpoint, server) = one_shot_server(200);
            let client = Client::with_env(&endpoint, &env).unwrap();
            let reply = client
                .send(method, path, &[("X-Amz-Log-Type", "Tail")], body.clone())
                .unwrap();
            assert_eq!(reply.status, 200);
            let (head, received) = server.join().unwrap();
            assert_eq!(received, body.clone().unwrap_or_default());
            let parts = parts_of(&head);
            let keys = OneKey(warden_types::identity::Credential {
                access_key_id: "AKIACLIENTTEST000001".into(),
                secret_access_key: "client/secret+key".into(),
                session_token: Some("session/token+=".into()),
                expires_at_ms: None,
                principal: warden_types::identity::Principal {
                    arn: "arn:aws:iam::123456789012:user/cli".into(),
                    account: "123456789012".into(),
                    name: "cli".into(),
                    id: "AIDACLI".into(),
                    kind: warden_types::identity::PrincipalKind::User,
                    tags: Default::default(),
                    session: None,
                },
            });
            let a =
                warden_auth::verify(&parts, &received, SystemTime::now(), &keys, "eu-central-1")
                    .unwrap_or_else(|e| panic!("{path}: {e}\n{head}"));
            assert_eq!(
                (a.service.as_str(), a.region.as_str()),
                ("lambda", "eu-central-1")
            );
        }
    }

    #[test]
    fn query_requests_are_signed_for_the_service_named_with_one_content_type() {
        let env = env_with(&[
            ("AWS_ACCESS_KEY_ID", "AKIACLIENTTEST000002"),
            ("AWS_SECRET_ACCESS_KEY", "client/secret+key"),
            ("AWS_REGION", "us-east-1"),
        ]);
        let (endpoint, server) = one_shot_server(200);
        let client = Client::with_env(&endpoint, &env).unwrap();
        let body = b"Action=DescribeVpcs&Version=2016-11-15".to_vec();
        client
            .send_for(
                "ec2",
                Method::POST,
                "/",
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )],
                Some(body.clone()),
            )
            .unwrap();
        let (head, received) = server.join().unwrap();
        assert_eq!(received, body);
        let types = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("content-type:"))
            .count();
        assert_eq!(types, 1, "{head}");
        let keys = OneKey(warden_types::identity::Credential {
            access_key_id: "AKIACLIENTTEST000002".into(),
            secret_access_key: "client/secret+key".into(),
            session_token: None,
            expires_at_ms: None,
            principal: warden_types::identity::Principal {
                arn: "arn:aws:iam::123456789012:user/cli".into(),
                account: "123456789012".into(),
                name: "cli".into(),
                id: "AIDACLI".into(),
                kind: warden_types::identity::PrincipalKind::User,
                tags: Default::default(),
                session: None,
            },
        });
        let a = warden_auth::verify(
            &parts_of(&head),
            &received,
            SystemTime::now(),
            &keys,
            "us-east-1",
        )
        .unwrap_or_else(|e| panic!("{e}\n{head}"));
        assert_eq!(a.service, "ec2");
    }

    #[test]
    fn without_credentials_requests_go_unsigned_and_a_refusal_shows_the_hint() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        let env = move |k: &str| (k == "HOME").then(|| home.clone());
        let (endpoint, server) = one_shot_server(403);
        let client = Client::with_env(&endpoint, &env).unwrap();
        assert!(client.signer.is_none());
        assert!(client
            .hint
            .as_deref()
            .unwrap()
            .starts_with("hint: no credentials found"));
        let reply = client
            .send(Method::GET, "/2015-03-31/functions", &[], None)
            .unwrap();
        assert_eq!(reply.status, 403);
        assert!(client.hint_shown.load(Ordering::Relaxed));
        let (head, _) = server.join().unwrap();
        assert!(
            !head.to_ascii_lowercase().contains("authorization:"),
            "{head}"
        );
    }

    #[test]
    fn service_names() {
        assert_eq!(service_for("/2015-03-31/functions?x=1"), "lambda");
        assert_eq!(service_for("/_warden/functions/f/logs"), "lambda");
        assert_eq!(service_for("/"), "iam");
        assert_eq!(service_for("/?Action=ListUsers"), "iam");
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode("my-func_1.x"), "my-func_1.x");
        assert_eq!(
            encode("arn:aws:lambda:us-east-1:1:function:f"),
            "arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af"
        );
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
    }
}

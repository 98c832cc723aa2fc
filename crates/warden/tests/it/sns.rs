//! SNS through the AWS CLI and boto3: topics, an `http` subscription confirmed through its
//! SubscribeURL by a webhook receiver started here, notifications whose signatures verify
//! against the certificate at SigningCertURL (checked with Python's `cryptography`, as a
//! receiver would), a `lambda` subscription invoking a function, an Errors alarm that
//! notifies the webhook through a topic, an `https` subscription to a TLS receiver written
//! in Python (OpenSSL, a different TLS stack from Warden's) whose CA the server was told to
//! trust, while a receiver with an unknown CA gets no message, and the refusals (protocols
//! not served, unknown parameters, no permission).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// One request a webhook received: its headers (lower-cased names) and body.
type Received = (Vec<(String, String)>, String);

/// A webhook receiver: every POST's headers and body, answered 200.
pub(crate) struct Webhook {
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    /// While set, every request is recorded and answered 500.
    failing: Arc<AtomicBool>,
    /// Requests answered 500.
    refused: Arc<AtomicUsize>,
}

impl Webhook {
    pub(crate) fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let failing = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let (fail, refusals) = (Arc::clone(&failing), Arc::clone(&refused));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                let mut length = 0usize;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                        if k == "content-length" {
                            length = v.parse().unwrap_or(0);
                        }
                        headers.push((k, v));
                    }
                }
                let mut body = vec![0u8; length];
                let mut stream = stream;
                if fail.load(Ordering::SeqCst) {
                    let _ = reader.read_exact(&mut body);
                    refusals.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
                if reader.read_exact(&mut body).is_ok() {
                    sink.lock()
                        .unwrap()
                        .push((headers, String::from_utf8_lossy(&body).into_owned()));
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Webhook {
            url,
            seen,
            failing,
            refused,
        }
    }

    /// How many messages of `kind` arrived.
    pub(crate) fn count(&self, kind: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, _)| {
                h.iter()
                    .any(|(k, v)| k == "x-amz-sns-message-type" && v == kind)
            })
            .count()
    }

    /// Waits for a message of `kind` (`x-amz-sns-message-type`) and returns its body.
    pub(crate) fn wait_for(&self, kind: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, body)) = self.seen.lock().unwrap().iter().find(|(h, _)| {
                h.iter()
                    .any(|(k, v)| k == "x-amz-sns-message-type" && v == kind)
            }) {
                return serde_json::from_str(body).unwrap();
            }
            assert!(Instant::now() < deadline, "no {kind} arrived");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Verifies SNS messages as a receiver does: fetch the certificate at SigningCertURL and
/// check the SHA256withRSA signature over the documented string to sign.
const VERIFY: &str = r#"
import base64, json, sys, urllib.request
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
FIELDS = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
}
out = []
for m in json.loads(sys.stdin.read()):
    text = "".join(f"{k}\n{m[k]}\n" for k in FIELDS[m["Type"]] if k in m)
    pem = urllib.request.urlopen(m["SigningCertURL"]).read()
    key = x509.load_pem_x509_certificate(pem).public_key()
    key.verify(base64.b64decode(m["Signature"]), text.encode(), padding.PKCS1v15(), hashes.SHA256())
    # A changed byte must fail.
    try:
        key.verify(base64.b64decode(m["Signature"]), (text + "x").encode(), padding.PKCS1v15(), hashes.SHA256())
        out.append("forged accepted")
    except Exception:
        out.append("ok")
print(json.dumps(out))
"#;

pub(crate) fn verify(s: &Server, messages: &[Value]) {
    let mut child = std::process::Command::new(python())
        .args(["-c", VERIFY])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(s.client_env())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(messages).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said, json!(vec!["ok"; messages.len()]));
}

/// GETs a URL the server handed out (SubscribeURL) without signing, as a receiver does.
pub(crate) fn visit(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn python_function(s: &Server, name: &str, code: &str) -> String {
    let zip = format!("fileb://{}", python_zip(&[("app.py", code)]).display());
    let out = s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &zip,
    ]);
    out["FunctionArn"].as_str().unwrap().to_owned()
}

#[test]
fn an_errors_alarm_notifies_a_webhook_through_a_topic_with_a_valid_signature() {
    let s = Server::start();
    let hook = Webhook::start();
    let topic = s.aws(&["sns", "create-topic", "--name", "pager"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending = s.aws(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic,
        "--protocol",
        "http",
        "--notification-endpoint",
        &hook.url,
    ]);
    assert_eq!(pending["SubscriptionArn"], "pending confirmation");
    let confirmation = hook.wait_for("SubscriptionConfirmation", Duration::from_secs(30));
    let (status, body) = visit(confirmation["SubscribeURL"].as_str().unwrap());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<SubscriptionArn>"), "{body}");

    let boom = python_function(
        &s,
        "boom",
        "def handler(event, context):\n    raise Exception('boom')\n",
    );
    assert!(boom.ends_with(":function:boom"));
    s.aws(&[
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        "boom-errors",
        "--namespace",
        "AWS/Lambda",
        "--metric-name",
        "Errors",
        "--dimensions",
        "Name=FunctionName,Value=boom",
        "--statistic",
        "Sum",
        "--period",
        "60",
        "--evaluation-periods",
        "1",
        "--threshold",
        "0",
        "--comparison-operator",
        "GreaterThanThreshold",
        "--alarm-actions",
        &topic,
    ]);
    let out = tempfile::NamedTempFile::new().unwrap();
    s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "boom",
        "--payload",
        "{}",
        out.path().to_str().unwrap(),
    ]);
    // The minute closes at its end, and the alarm is evaluated then.
    let notification = hook.wait_for("Notification", Duration::from_secs(150));
    assert_eq!(notification["TopicArn"], topic);
    assert!(
        notification["Subject"]
            .as_str()
            .unwrap()
            .starts_with("ALARM: \"boom-errors\""),
        "{notification}"
    );
    let message: Value = serde_json::from_str(notification["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["NewStateValue"], "ALARM");
    assert_eq!(message["Trigger"]["MetricName"], "Errors");
    assert_eq!(
        message["Trigger"]["Dimensions"],
        json!([{"name": "FunctionName", "value": "boom"}])
    );
    verify(&s, &[confirmation, notification]);
    let history = s.aws(&[
        "cloudwatch",
        "describe-alarm-history",
        "--alarm-name",
        "boom-errors",
    ]);
    assert!(
        history["AlarmHistoryItems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["HistorySummary"] == format!("Successfully executed action {topic}")),
        "{history}"
    );
}

const SCRIPT: &str = r#"
import json, os, boto3, botocore
from botocore.config import Config
sns = boto3.client("sns", endpoint_url=os.environ["ENDPOINT"], config=Config(retries={"total_max_attempts": 1}))
topic = sns.create_topic(Name="orders", Attributes={"DisplayName": "Orders"})["TopicArn"]
again = sns.create_topic(Name="orders")["TopicArn"]
sub = sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=os.environ["FUNCTION"], ReturnSubscriptionArn=True)["SubscriptionArn"]
mid = sns.publish(TopicArn=topic, Subject="new order", Message="order 42",
                  MessageAttributes={"priority": {"DataType": "String", "StringValue": "high"}})["MessageId"]
listed = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
subs = [s["Protocol"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]]
attrs = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
errors = {}
def expect(name, fn, **kw):
    try:
        fn(**kw)
        errors[name] = None
    except botocore.exceptions.ClientError as e:
        errors[name] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
expect("mismatch", sns.subscribe, TopicArn=topic, Protocol="https", Endpoint="http://example.test/x")
expect("email", sns.subscribe, TopicArn=topic, Protocol="email", Endpoint="a@example.test")
expect("fifo", sns.create_topic, Name="jobs.fifo", Attributes={"FifoTopic": "true"})
expect("missing", sns.publish, TopicArn=topic.replace("orders", "ghost"), Message="x")
expect("big", sns.publish, TopicArn=topic, Message="x" * (256 * 1024 + 1))
expect("filter", sns.set_subscription_attributes, SubscriptionArn=sub, AttributeName="FilterPolicy", AttributeValue="{}")
print(json.dumps({"topic": topic, "again": again, "sub": sub, "mid": mid, "listed": listed, "subs": subs,
                  "display": attrs.get("DisplayName"), "errors": errors}))
"#;

#[test]
fn topics_deliver_to_functions_and_refuse_what_they_do_not_serve_with_boto3() {
    let s = Server::start();
    let function = python_function(
        &s,
        "listener",
        "import json\ndef handler(event, context):\n    print('SNS-EVENT ' + json.dumps(event))\n",
    );
    let out = Command::new(python())
        .args(["-c", SCRIPT])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(s.client_env())
        .env("ENDPOINT", &s.endpoint)
        .env("FUNCTION", &function)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();
    let topic = out["topic"].as_str().unwrap();
    assert_eq!(out["again"], out["topic"], "CreateTopic is idempotent");
    assert_eq!(out["listed"], json!([topic]));
    assert_eq!(out["subs"], json!(["lambda"]));
    assert_eq!(out["display"], "Orders");
    assert_eq!(
        out["errors"],
        json!({
            "mismatch": ["InvalidParameter", 400],
            "email": ["InvalidParameter", 400],
            "fifo": ["InvalidParameter", 400],
            "missing": ["NotFound", 404],
            "big": ["InvalidParameter", 400],
            "filter": ["InvalidParameter", 400],
        }),
        "{out}"
    );
    // The function got SNS's event for Lambda.
    let lines = s.wait_logs("listener", Duration::from_secs(60), |l| {
        l.iter().any(|x| x.contains("SNS-EVENT"))
    });
    let line = lines.iter().find(|x| x.contains("SNS-EVENT")).unwrap();
    let event: Value =
        serde_json::from_str(&line[line.find("SNS-EVENT ").unwrap() + 10..]).unwrap();
    let record = &event["Records"][0];
    assert_eq!(record["EventSource"], "aws:sns");
    assert_eq!(record["EventSubscriptionArn"], out["sub"]);
    assert_eq!(record["Sns"]["Message"], "order 42");
    assert_eq!(record["Sns"]["Subject"], "new order");
    assert_eq!(record["Sns"]["MessageId"], out["mid"]);
    assert_eq!(
        record["Sns"]["MessageAttributes"]["priority"],
        json!({"Type": "String", "Value": "high"})
    );

    // Who may publish is IAM's decision; subscribing a function needs the right to invoke
    // it.
    let publisher = user_with_policy(
        &s,
        "publisher",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sns:Subscribe", "sns:ListTopics"], "Resource": "*"}
        ]}),
    );
    let denied = |args: &[&str]| {
        let out = aws_as(&s, &publisher, args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("(AuthorizationError)"), "{args:?}: {err}");
    };
    denied(&["sns", "publish", "--topic-arn", topic, "--message", "x"]);
    denied(&[
        "sns",
        "subscribe",
        "--topic-arn",
        topic,
        "--protocol",
        "lambda",
        "--notification-endpoint",
        &function,
    ]);
    // Unsigned requests are refused before any handler.
    let (status, _, _) = s.http_unsigned(
        "POST",
        "/",
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("Action=Publish&TopicArn={topic}&Message=x").as_bytes(),
    );
    assert_eq!(status, 403);
}

#[test]
fn an_acknowledged_publish_is_delivered_after_a_kill_9() {
    let mut s = Server::start();
    let hook = Webhook::start();
    let topic = s.aws(&["sns", "create-topic", "--name", "durable"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    s.aws(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic,
        "--protocol",
        "http",
        "--notification-endpoint",
        &hook.url,
    ]);
    let confirmation = hook.wait_for("SubscriptionConfirmation", Duration::from_secs(30));
    let (status, body) = visit(confirmation["SubscribeURL"].as_str().unwrap());
    assert_eq!(status, 200, "{body}");
    let subscription = s.aws(&["sns", "list-subscriptions-by-topic", "--topic-arn", &topic])
        ["Subscriptions"][0]["SubscriptionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    // Retry every second, so that the test need not wait for SNS's default back-off.
    s.aws(&[
        "sns",
        "set-subscription-attributes",
        "--subscription-arn",
        &subscription,
        "--attribute-name",
        "DeliveryPolicy",
        "--attribute-value",
        r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":1,"numRetries":50,"numNoDelayRetries":0,"numMinDelayRetries":50,"numMaxDelayRetries":0,"backoffFunction":"linear"}}"#,
    ]);

    // The receiver is down; the publish is acknowledged; its delivery fails, then the
    // server is killed.
    hook.failing.store(true, Ordering::SeqCst);
    s.aws(&[
        "sns",
        "publish",
        "--topic-arn",
        &topic,
        "--message",
        "survives-kill-9",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.refused.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no delivery was attempted");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.kill9();
    hook.failing.store(false, Ordering::SeqCst);
    s.restart();
    let notification = hook.wait_for("Notification", Duration::from_secs(60));
    assert_eq!(notification["Message"], "survives-kill-9");
    verify(&s, &[notification]);
}

/// An HTTPS webhook receiver in Python: makes a certificate authority and a certificate
/// for `localhost` issued by it (with `cryptography`), writes the CA to `ca.pem` in the
/// directory it is given, serves TLS on a loopback port with Python's `ssl` (OpenSSL), and
/// prints one JSON line per event: `{"port": N}` first, then `{"type", "body"}` per POST,
/// or `{"handshake_error": ...}` when a client refuses the handshake.
const TLS_RECEIVER: &str = r#"
import datetime, json, os, socket, ssl, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

out_dir = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
ca_key = ec.generate_private_key(ec.SECP256R1())
ca_name = name(f"test ca {os.getpid()}")
ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                   data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                   crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
with open(os.path.join(out_dir, "ca.pem"), "wb") as f:
    f.write(ca.public_bytes(serialization.Encoding.PEM))
with open(os.path.join(out_dir, "server.pem"), "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
with open(os.path.join(out_dir, "server.key"), "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(out_dir, "server.pem"), os.path.join(out_dir, "server.key"))
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
def say(obj):
    print(json.dumps(obj), flush=True)
say({"port": listener.getsockname()[1]})
while True:
    conn, _ = listener.accept()
    conn.settimeout(30)
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:
        say({"handshake_error": str(e)})
        conn.close()
        continue
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        body += chunk
    say({"type": headers.get("x-amz-sns-message-type"), "body": body.decode()})
    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    tls.close()
"#;

/// A running [`TLS_RECEIVER`]: its port, the CA it trusts in `dir/ca.pem`, its events.
struct TlsReceiver {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
    events: std::sync::mpsc::Receiver<Value>,
}

impl TlsReceiver {
    fn start() -> TlsReceiver {
        let dir = private_tempdir();
        let mut child = Command::new(python())
            .arg("-c")
            .arg(TLS_RECEIVER)
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let first = events.recv_timeout(Duration::from_secs(60)).unwrap();
        let port = u16::try_from(first["port"].as_u64().unwrap()).unwrap();
        TlsReceiver {
            child,
            port,
            dir,
            events,
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/hook", self.port)
    }

    fn next(&self) -> Value {
        self.events.recv_timeout(Duration::from_secs(60)).unwrap()
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_subscriptions_deliver_only_to_endpoints_whose_certificate_verifies() {
    let trusted = TlsReceiver::start();
    let stranger = TlsReceiver::start();
    let ca = trusted.dir.path().join("ca.pem");
    let s = Server::start_with(&["--sns-ca-file", ca.to_str().unwrap()]);
    let topic = s.aws(&["sns", "create-topic", "--name", "secure"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let subscribe = |url: &str| {
        s.aws(&[
            "sns",
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "https",
            "--notification-endpoint",
            url,
        ])
    };
    subscribe(&trusted.url());
    let confirmation = trusted.next();
    assert_eq!(
        confirmation["type"], "SubscriptionConfirmation",
        "{confirmation}"
    );
    let confirmation: Value = serde_json::from_str(confirmation["body"].as_str().unwrap()).unwrap();
    let (status, body) = visit(confirmation["SubscribeURL"].as_str().unwrap());
    assert_eq!(status, 200, "{body}");
    let subs = s.aws(&["sns", "list-subscriptions-by-topic", "--topic-arn", &topic]);
    assert_eq!(subs["Subscriptions"][0]["Protocol"], "https");
    s.aws(&[
        "sns",
        "publish",
        "--topic-arn",
        &topic,
        "--message",
        "over TLS",
    ]);
    let notification = trusted.next();
    assert_eq!(notification["type"], "Notification", "{notification}");
    let notification: Value = serde_json::from_str(notification["body"].as_str().unwrap()).unwrap();
    assert_eq!(notification["Message"], "over TLS");
    verify(&s, &[confirmation, notification]);

    // A receiver whose CA the server does not trust: the server refuses its certificate
    // in the handshake, so the confirmation (and its token) never reaches it.
    subscribe(&stranger.url());
    let refused = stranger.next();
    let error = refused["handshake_error"].as_str().unwrap_or_default();
    assert!(
        error.to_ascii_lowercase().contains("unknown ca"),
        "{refused}"
    );

    // The scheme must match the protocol, and a CA file that cannot be used stops the
    // start instead of failing every delivery later.
    let err = s.aws_err(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic,
        "--protocol",
        "https",
        "--notification-endpoint",
        "http://localhost:1/hook",
    ]);
    assert!(
        err.contains("(InvalidParameter)") && err.contains("must match"),
        "{err}"
    );
    let bad = private_tempdir();
    std::fs::write(bad.path().join("ca.pem"), "not a certificate\n").unwrap();
    let mut child = Command::new(warden_bin())
        .args(["serve", "--data-dir"])
        .arg(bad.path().join("data"))
        .arg("--sns-ca-file")
        .arg(bad.path().join("ca.pem"))
        .args(["--listen", "127.0.0.1:0", "--url-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "the server started with an unusable CA file: {stderr}"
    );
    assert!(stderr.contains("--sns-ca-file"), "{stderr}");
}

//! Service-level tests: the query surface over a real `sns.db` and over a real PostgreSQL
//! database (most tests run once on each, through [`Fixture`]), delivery against local HTTP
//! servers and a fake Lambda target, crash safety, signatures checked independently, and
//! several nodes sharing one PostgreSQL database.

/// Runs each named test, `fn name(shared: bool)`, once on SQLite and once on PostgreSQL.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(false); })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(true); })*
        }
    };
}

/// Runs each named async test, `async fn name(shared: bool)`, once on SQLite and once on
/// PostgreSQL.
macro_rules! on_both_stores_async {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(false).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(true).await; })*
        }
    };
}

mod api;
mod cluster;
mod delivery;
mod import;
mod signature;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::{CallContext, Sns, SnsError};

pub(crate) const BASE: &str = "http://127.0.0.1:9700/_warden/sns/";
pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const REGION: &str = "us-east-1";

pub(crate) fn open(dir: &Path) -> Sns {
    Sns::open(&dir.join("sns.db"), BASE).expect("open sns.db")
}

/// A sealer for tests: a keyed, position-dependent XOR behind a header naming the key, so
/// that the sealed bytes hold no run of the plain ones and another key fails to open them.
#[derive(Debug)]
pub(crate) struct TestSealer(pub u8);

impl TestSealer {
    fn mask(&self, i: usize) -> u8 {
        self.0 ^ (i as u8).wrapping_mul(31).wrapping_add(0x5a)
    }
}

impl crate::KeySealer for TestSealer {
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, crate::SealError> {
        let mut out = b"sealed:".to_vec();
        out.push(self.0);
        out.extend(plain.iter().enumerate().map(|(i, b)| b ^ self.mask(i)));
        Ok(out)
    }

    fn unseal(&self, sealed: &[u8]) -> Result<Vec<u8>, crate::SealError> {
        match sealed.strip_prefix(b"sealed:") {
            Some([key, rest @ ..]) if *key == self.0 => Ok(rest
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ self.mask(i))
                .collect()),
            _ => Err(crate::SealError("sealed under another key".into())),
        }
    }
}

/// A fresh database on the test PostgreSQL server. Made on a thread of its own: the
/// synchronous client cannot connect from inside a test's runtime.
pub(crate) fn fresh_database() -> String {
    std::thread::spawn(|| warden_testservers::Postgres::shared().fresh_database())
        .join()
        .expect("the thread")
        .expect("a fresh database")
}

/// A pool on `url` with the `sns` schema track (opened on a thread of its own, as
/// [`fresh_database`]).
pub(crate) fn pool(url: &str, connections: usize) -> warden_postgres::Pool {
    let url = url.to_owned();
    std::thread::spawn(move || {
        warden_postgres::Pool::open(
            &url,
            &warden_postgres::Options {
                connections,
                application_name: "warden-sns-test".into(),
            },
            &[crate::postgres::TRACK],
        )
    })
    .join()
    .expect("the thread")
    .expect("a pool")
}

/// A node of a cluster on the shared database at `url`, serving under `base`.
pub(crate) fn node(url: &str, base: &str) -> Sns {
    Sns::open_shared(pool(url, 4), base, Arc::new(TestSealer(7))).expect("open the shared store")
}

/// A test's store: `sns.db` in a temporary directory, or (`shared`) a fresh PostgreSQL
/// database, with one `Sns` open on it.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub url: Option<String>,
    pub sns: Sns,
}

impl Fixture {
    pub(crate) fn new(shared: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        if !shared {
            let sns = open(dir.path());
            return Fixture {
                dir,
                url: None,
                sns,
            };
        }
        let url = fresh_database();
        let sns = node(&url, BASE);
        Fixture {
            dir,
            url: Some(url),
            sns,
        }
    }

    /// The store opened again, as after a restart (on PostgreSQL, by another node).
    pub(crate) fn reopen(&self) -> Sns {
        match &self.url {
            None => open(self.dir.path()),
            Some(url) => node(url, BASE),
        }
    }

    /// Runs raw SQL behind the service's back (bulk rows, damage): `sqlite` on `sns.db`,
    /// or `postgres` on the shared database.
    pub(crate) fn execute(&self, sqlite: &str, postgres: &str) {
        match &self.url {
            None => {
                let db = rusqlite::Connection::open(self.dir.path().join("sns.db")).expect("raw");
                db.busy_timeout(Duration::from_secs(10)).expect("busy");
                db.execute_batch(sqlite).expect("raw SQL");
            }
            Some(url) => {
                let sql = postgres.to_owned();
                pool(url, 1)
                    .run(move |c| {
                        c.client()
                            .batch_execute(&sql)
                            .map_err(warden_postgres::Error::at("raw SQL"))
                    })
                    .expect("raw SQL");
            }
        }
    }
}

pub(crate) fn ctx() -> CallContext {
    CallContext {
        account: ACCOUNT.into(),
        region: REGION.into(),
        request_id: "req-1".into(),
    }
}

pub(crate) fn call(sns: &Sns, action: &str, params: &[(&str, &str)]) -> Result<String, SnsError> {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    sns.handle(&ctx(), action, &params)
}

/// The text of the first `<tag>` element, unescaped.
pub(crate) fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&#xD;", "\r")
            .replace("&amp;", "&"),
    )
}

/// Every `<tag>` text, in order.
pub(crate) fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    let open = format!("<{tag}>");
    while let Some(i) = rest.find(&open) {
        let Some(v) = xml_value(&rest[i..], tag) else {
            break;
        };
        out.push(v);
        rest = &rest[i + open.len()..];
    }
    out
}

pub(crate) fn create_topic(sns: &Sns, name: &str) -> String {
    let xml = call(sns, "CreateTopic", &[("Name", name)]).expect("CreateTopic");
    xml_value(&xml, "TopicArn").expect("TopicArn")
}

/// A request an endpoint received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A local HTTP endpoint answering each request with the next scripted status (then
/// `default`); status 0 means "never answer".
pub(crate) struct Endpoint {
    pub url: String,
    pub received: mpsc::UnboundedReceiver<Received>,
    /// The most requests it has held open at once.
    pub peak: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What every connection of one endpoint shares.
struct Shared {
    statuses: Mutex<VecDeque<u16>>,
    default: u16,
    delay: Duration,
    tx: mpsc::UnboundedSender<Received>,
    open: AtomicUsize,
    peak: Arc<AtomicUsize>,
}

async fn answer(
    shared: Arc<Shared>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, hyper::Error> {
    let now = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
    shared.peak.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(shared.delay).await;
    shared.open.fetch_sub(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    let status = shared
        .statuses
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(shared.default);
    let _ = shared.tx.send(Received {
        headers: parts.headers,
        body,
    });
    if status == 0 {
        std::future::pending::<()>().await;
    }
    let mut response = http::Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
    if (300..400).contains(&status) {
        response.headers_mut().insert(
            http::header::LOCATION,
            http::HeaderValue::from_static("http://127.0.0.1:1/elsewhere"),
        );
    }
    Ok(response)
}

impl Endpoint {
    pub(crate) async fn start(script: &[u16], default: u16) -> Endpoint {
        Endpoint::start_slow(script, default, Duration::ZERO).await
    }

    /// Like [`Endpoint::start`], holding each request `delay` before answering.
    pub(crate) async fn start_slow(script: &[u16], default: u16, delay: Duration) -> Endpoint {
        Endpoint::serve(script, default, delay, None).await
    }

    /// Like [`Endpoint::start`], over TLS with `identity`'s certificate, at
    /// `https://localhost:PORT/hook`.
    pub(crate) async fn start_tls(
        script: &[u16],
        default: u16,
        identity: &TlsIdentity,
    ) -> Endpoint {
        Endpoint::serve(script, default, Duration::ZERO, Some(identity.acceptor())).await
    }

    async fn serve(
        script: &[u16],
        default: u16,
        delay: Duration,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}/hook"),
            None => format!("http://127.0.0.1:{port}/hook"),
        };
        let (tx, received) = mpsc::unbounded_channel();
        let peak = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            statuses: Mutex::new(script.iter().copied().collect()),
            default,
            delay,
            tx,
            open: AtomicUsize::new(0),
            peak: Arc::clone(&peak),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| answer(Arc::clone(&shared), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        // A client that refuses the certificate ends the handshake: no
                        // request arrives.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        Endpoint {
            url,
            received,
            peak,
            task,
        }
    }

    /// The next request, waiting at most 30 seconds (a safety net, not a measurement).
    pub(crate) async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(30), self.received.recv())
            .await
            .expect("the endpoint received nothing within 30 s")
            .expect("the endpoint stopped")
    }
}

/// A test certificate authority and a server certificate it issued for `localhost` and
/// `127.0.0.1`.
pub(crate) struct TlsIdentity {
    pub ca_pem: String,
    cert: rustls_pki_types::CertificateDer<'static>,
    key: Vec<u8>,
}

impl TlsIdentity {
    pub(crate) fn new() -> TlsIdentity {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("server key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        TlsIdentity {
            ca_pem: ca.pem(),
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(self.key.clone().into());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)
            .expect("server config");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// A TLS client trusting this authority only.
    pub(crate) fn client(&self) -> crate::tls::TlsClient {
        use rustls_pki_types::pem::PemObject;
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.expect("pem")).expect("root");
        }
        crate::tls::TlsClient::with_roots(roots).expect("client")
    }
}

/// A fast schedule for tests: `retries` retries, 5 ms apart.
pub(crate) fn fast(retries: u32) -> crate::RetryPolicy {
    crate::RetryPolicy {
        num_retries: retries,
        num_no_delay_retries: 0,
        num_min_delay_retries: 0,
        num_max_delay_retries: 0,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(5),
        backoff: crate::Backoff::Linear,
    }
}

pub(crate) fn fast_config(retries: u32) -> crate::DeliveryConfig {
    crate::DeliveryConfig {
        http_retry: fast(retries),
        lambda_retry: fast(retries),
        timeout: Duration::from_secs(5),
        ..crate::DeliveryConfig::default()
    }
}

/// A Lambda target that records invocations and fails the first `failures`.
pub(crate) struct FakeLambda {
    failures: Mutex<u32>,
    tx: mpsc::UnboundedSender<crate::LambdaInvocation>,
}

impl FakeLambda {
    pub(crate) fn new(
        failures: u32,
    ) -> (
        Arc<FakeLambda>,
        mpsc::UnboundedReceiver<crate::LambdaInvocation>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(FakeLambda {
                failures: Mutex::new(failures),
                tx,
            }),
            rx,
        )
    }
}

impl crate::LambdaTarget for FakeLambda {
    fn invoke(&self, invocation: crate::LambdaInvocation) -> crate::InvokeFuture {
        let fail = {
            let mut f = self.failures.lock().expect("lock");
            if *f > 0 {
                *f -= 1;
                true
            } else {
                false
            }
        };
        let _ = self.tx.send(invocation);
        Box::pin(async move {
            if fail {
                Err(crate::InvokeError("TooManyRequestsException".into()))
            } else {
                Ok(())
            }
        })
    }
}

pub(crate) async fn next_invocation(
    rx: &mut mpsc::UnboundedReceiver<crate::LambdaInvocation>,
) -> crate::LambdaInvocation {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no invocation within 30 s")
        .expect("the target stopped")
}

/// Polls `check` (every 10 ms, at most 30 s) until it holds.
pub(crate) async fn eventually(mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The query string of a URL, decoded.
pub(crate) fn url_query(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}

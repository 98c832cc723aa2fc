//! The delivery worker: a tokio task that takes due rows from the outbox, delivers them
//! (HTTP POST, over TLS for `https` (see [`crate::tls`]), or a Lambda invocation through
//! the binary's [`LambdaTarget`]), deletes a
//! row once delivered, reschedules a failure by its [`RetryPolicy`], and moves a row whose
//! last retry failed to the dead-letter table.
//!
//! At least once: a row is deleted only after its delivery succeeded, so a delivery in
//! flight when the process dies (or when [`Deliverer::stop`] aborts it) is made again by
//! the next deliverer. Run one deliverer per `sns.db`: two would each send every message.
//!
//! With a shared store in PostgreSQL ([`crate::Sns::open_shared`]) every node runs its
//! own deliverer, and the store keeps them apart: each due row is claimed by one node
//! under a lease of [`DeliveryConfig::lease`] (the time limit of one attempt plus
//! [`LEASE_MARGIN`], 60 s by default), during which no other node is given it; recording
//! the outcome ends the claim. The lease outlasts an attempt, so a live node never loses
//! a claim it is using; a node that dies leaves its claims to expire, and any node makes
//! them then (at least once, never twice at the same time while a lease is live). A
//! stopping deliverer gives back the claims of the deliveries it aborts, so that another
//! node makes them at once. Publishing wakes only the deliverer of the node that
//! published, so with a shared store the deliverer also looks for due rows every
//! [`SHARED_POLL_INTERVAL`]: a delivery queued through another node starts within that.
//!
//! Bounded: at most [`DeliveryConfig::max_concurrency`] deliveries at once; each HTTP
//! delivery (resolve, connect, send, response) is cut off after
//! [`DeliveryConfig::timeout`]; at most [`MAX_RESPONSE_BODY_BYTES`] of a response body is
//! read; redirects are not followed (a 3xx is a failure like any non-2xx).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::SnsError;
use crate::message::{http_delivery, lambda_event, HttpDelivery, Urls};
use crate::model::{now_ms, parse_http_endpoint, HttpEndpoint, Protocol};
use crate::policy::{effective_http, RetryPolicy};
use crate::signing::Signer;
use crate::store::{Claim, Job, MessageKind, Store};
use crate::tls::TlsClient;
use crate::Sns;

/// How long one delivery may take: resolving, connecting, sending and the response (or
/// the Lambda invocation call).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);
/// At most this many deliveries run at once.
pub const MAX_CONCURRENT_DELIVERIES: usize = 16;
/// At most this much of an endpoint's response body is read (the rest is dropped).
pub const MAX_RESPONSE_BODY_BYTES: usize = 64 * 1024;
/// How often expired pending subscriptions are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// With a shared store, how much longer than one attempt's time limit
/// ([`DeliveryConfig::timeout`]) a claim on a delivery lasts: room for recording the
/// outcome (a PostgreSQL transaction, possibly waiting for a pooled connection).
pub const LEASE_MARGIN: Duration = Duration::from_secs(45);
/// With a shared store, the longest the deliverer waits before it looks for due
/// deliveries again (other nodes' publishes do not wake it).
pub const SHARED_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// One Lambda invocation SNS asks for: invoke `function_arn` asynchronously with `event`.
#[derive(Clone, Debug)]
pub struct LambdaInvocation {
    /// The subscribed function's ARN (possibly with a qualifier).
    pub function_arn: String,
    /// The topic the message was published to (for the function's resource policy:
    /// `aws:SourceArn`).
    pub topic_arn: String,
    /// The subscription.
    pub subscription_arn: String,
    /// The SNS message id (the same on every retry).
    pub message_id: String,
    /// The event: `{"Records":[{"EventSource":"aws:sns",...}]}`.
    pub event: Vec<u8>,
}

/// Why a Lambda invocation failed (shown in logs and dead letters).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvokeError(pub String);

/// The future [`LambdaTarget::invoke`] returns.
pub type InvokeFuture = Pin<Box<dyn Future<Output = Result<(), InvokeError>> + Send>>;

/// How SNS invokes Lambda functions; the binary implements it with its engine. `Ok` means
/// the invocation was accepted (an asynchronous invoke); an error is retried like a failed
/// HTTP delivery.
pub trait LambdaTarget: Send + Sync + 'static {
    /// Invokes the function.
    fn invoke(&self, invocation: LambdaInvocation) -> InvokeFuture;
}

/// Decides which addresses HTTP deliveries may connect to (after name resolution), for
/// example to keep them off internal networks. Without one, every address is allowed.
pub trait EndpointGuard: Send + Sync + 'static {
    /// True if a delivery may connect to `addr`.
    fn allow(&self, addr: &SocketAddr) -> bool;
}

/// The deliverer's settings.
#[derive(Clone)]
pub struct DeliveryConfig {
    /// The schedule of http deliveries whose subscription and topic set no
    /// `DeliveryPolicy` (and of confirmations). Default: [`RetryPolicy::SNS_HTTP_DEFAULT`].
    pub http_retry: RetryPolicy,
    /// The schedule of Lambda deliveries. Default: [`RetryPolicy::LAMBDA_DEFAULT`].
    pub lambda_retry: RetryPolicy,
    /// Deliveries at once. Default: [`MAX_CONCURRENT_DELIVERIES`].
    pub max_concurrency: usize,
    /// The time limit of one delivery. Default: [`DELIVERY_TIMEOUT`].
    pub timeout: Duration,
    /// Which addresses HTTP deliveries may reach. Default: none (all allowed).
    pub endpoint_guard: Option<Arc<dyn EndpointGuard>>,
    /// The TLS client of `https` deliveries ([`TlsClient::new`] builds one on the host's
    /// certificate store). Default: none, so that building a config reads no files; without
    /// one, `https` deliveries fail (and are retried, then dead-lettered).
    pub tls: Option<TlsClient>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            http_retry: RetryPolicy::SNS_HTTP_DEFAULT,
            lambda_retry: RetryPolicy::LAMBDA_DEFAULT,
            max_concurrency: MAX_CONCURRENT_DELIVERIES,
            timeout: DELIVERY_TIMEOUT,
            endpoint_guard: None,
            tls: None,
        }
    }
}

impl DeliveryConfig {
    /// How long a claim on a delivery lasts with a shared store: [`DeliveryConfig::timeout`]
    /// plus [`LEASE_MARGIN`] (60 s by default), longer than any attempt.
    pub fn lease(&self) -> Duration {
        self.timeout.saturating_add(LEASE_MARGIN)
    }
}

impl std::fmt::Debug for DeliveryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("http_retry", &self.http_retry)
            .field("lambda_retry", &self.lambda_retry)
            .field("max_concurrency", &self.max_concurrency)
            .field("timeout", &self.timeout)
            .field("endpoint_guard", &self.endpoint_guard.is_some())
            .field("tls", &self.tls)
            .finish()
    }
}

/// The running delivery worker.
#[derive(Debug)]
pub struct Deliverer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Worker {
    store: Arc<Store>,
    signer: Arc<Signer>,
    urls: Urls,
    wake: Arc<Notify>,
    lambda: Arc<dyn LambdaTarget>,
    config: DeliveryConfig,
}

/// The outcome of one attempt.
enum Outcome {
    Delivered,
    /// Nothing to deliver any more (the subscription is gone): the row is removed.
    Dropped,
    /// Failed; retried per the policy.
    Failed(String),
    /// Failed in a way no retry can fix: dead-lettered at once.
    Permanent(String),
}

impl Deliverer {
    /// Starts the worker on the current tokio runtime. Deliveries queued before (by this
    /// process or one that died) are made first.
    pub fn start(sns: &Sns, lambda: Arc<dyn LambdaTarget>, config: DeliveryConfig) -> Deliverer {
        let worker = Arc::new(Worker {
            store: Arc::clone(&sns.store),
            signer: Arc::clone(&sns.signer),
            urls: sns.urls.clone(),
            wake: Arc::clone(&sns.wake),
            lambda,
            config,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(worker, stopped));
        Deliverer { stop, task }
    }

    /// Stops the worker, aborting deliveries in flight (they are made again by the next
    /// deliverer: at least once).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the SNS deliverer ended abnormally");
        }
    }
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SnsError> + Send + 'static,
) -> Result<T, SnsError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(SnsError::Task(e.to_string())))
}

async fn run(worker: Arc<Worker>, mut stopped: watch::Receiver<bool>) {
    // The deliveries in flight, by row, with their claims.
    let mut in_flight: HashMap<i64, Claim> = HashMap::new();
    let mut tasks: JoinSet<i64> = JoinSet::new();
    let mut ids: HashMap<tokio::task::Id, i64> = HashMap::new();
    let mut next_purge = tokio::time::Instant::now();
    let max = worker.config.max_concurrency.max(1);
    let lease = worker.config.lease();
    // Another node's publish does not wake this deliverer: with a shared store, look again
    // at least this often.
    let longest_wait = if worker.store.is_shared() {
        SHARED_POLL_INTERVAL
    } else {
        PURGE_INTERVAL
    };
    loop {
        if *stopped.borrow() {
            break;
        }
        if tokio::time::Instant::now() >= next_purge {
            let store = Arc::clone(&worker.store);
            match blocking(move || store.purge_expired(now_ms())).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "purged expired pending SNS subscriptions"),
                Err(e) => tracing::error!(error = %e, "purging expired SNS subscriptions failed"),
            }
            next_purge = tokio::time::Instant::now() + PURGE_INTERVAL;
        }
        let mut wait = longest_wait;
        let free = max.saturating_sub(in_flight.len());
        if free > 0 {
            let store = Arc::clone(&worker.store);
            let skip: std::collections::HashSet<i64> = in_flight.keys().copied().collect();
            let due = blocking(move || {
                let due = store.due(now_ms(), free, &skip, lease)?;
                for claim in &due.damaged {
                    store.dead_letter(claim, "the stored delivery is damaged", now_ms())?;
                }
                let mut skip = skip;
                skip.extend(due.jobs.iter().map(|j| j.claim.id));
                let next = store.next_due(&skip)?;
                Ok((due.jobs, next))
            })
            .await;
            match due {
                Ok((jobs, next)) => {
                    for job in jobs {
                        let id = job.claim.id;
                        in_flight.insert(id, job.claim.clone());
                        let handle = tasks.spawn(deliver(Arc::clone(&worker), job));
                        ids.insert(handle.id(), id);
                    }
                    if let Some(due) = next {
                        let ms = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
                        wait = wait.min(Duration::from_millis(ms));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading due SNS deliveries failed");
                    wait = wait.min(Duration::from_secs(1));
                }
            }
        }
        if wait.is_zero() && in_flight.len() < max {
            continue;
        }
        tokio::select! {
            _ = stopped.changed() => break,
            () = worker.wake.notified() => {}
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let task = match done {
                    Ok((task, _)) => task,
                    Err(e) => {
                        tracing::error!(error = %e, "an SNS delivery task failed");
                        e.id()
                    }
                };
                if let Some(id) = ids.remove(&task) {
                    in_flight.remove(&id);
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
    tasks.shutdown().await;
    // The aborted deliveries' claims go back at once rather than after their lease.
    if !in_flight.is_empty() {
        let claims: Vec<Claim> = in_flight.into_values().collect();
        let store = Arc::clone(&worker.store);
        if let Err(e) = blocking(move || store.release(&claims)).await {
            tracing::warn!(error = %e, "giving back claimed SNS deliveries failed; they wait for their lease");
        }
    }
}

/// Delivers one job and records the outcome; returns the job's id.
async fn deliver(worker: Arc<Worker>, job: Job) -> i64 {
    let id = job.claim.id;
    let claim = job.claim.clone();
    let (outcome, retry) = attempt(&worker, &job).await;
    let store = Arc::clone(&worker.store);
    let recorded = match outcome {
        Outcome::Delivered | Outcome::Dropped => blocking(move || store.delivered(&claim)).await,
        Outcome::Failed(error) => {
            let next = job.attempts.saturating_add(1);
            match retry.delay_before_retry(next) {
                Some(delay) => {
                    tracing::warn!(
                        subscription = %job.subscription_arn,
                        message_id = %job.message_id,
                        attempt = next,
                        error = %error,
                        "SNS delivery failed; retrying"
                    );
                    let due = now_ms()
                        .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                    blocking(move || store.retry_later(&claim, due, &error)).await
                }
                None => {
                    dead(&job, &error);
                    blocking(move || store.dead_letter(&claim, &error, now_ms())).await
                }
            }
        }
        Outcome::Permanent(error) => {
            dead(&job, &error);
            blocking(move || store.dead_letter(&claim, &error, now_ms())).await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(error = %e, delivery = id, "recording an SNS delivery failed");
    }
    id
}

fn dead(job: &Job, error: &str) {
    tracing::warn!(
        subscription = %job.subscription_arn,
        message_id = %job.message_id,
        attempts = job.attempts.saturating_add(1),
        error = %error,
        "SNS delivery given up; moved to the dead letters"
    );
}

/// Makes one attempt; returns its outcome and the schedule its retries follow.
async fn attempt(worker: &Worker, job: &Job) -> (Outcome, RetryPolicy) {
    let protocol = match Protocol::parse(&job.protocol) {
        Ok(p) => p,
        Err(_) => {
            return (
                Outcome::Permanent(format!("unsupported protocol {}", job.protocol)),
                worker.config.http_retry,
            )
        }
    };
    if job.kind == MessageKind::Notification && !job.subscribed {
        return (Outcome::Dropped, worker.config.http_retry);
    }
    match protocol {
        Protocol::Http | Protocol::Https => {
            let (retry, content_type) = effective_http(
                job.subscription_policy.as_deref(),
                job.topic_policy.as_deref(),
                worker.config.http_retry,
            );
            let endpoint = match parse_http_endpoint(&job.endpoint) {
                Ok(e) => e,
                Err(e) => return (Outcome::Permanent(e.to_string()), retry),
            };
            let delivery = match http_delivery(job, &worker.signer, &worker.urls, &content_type) {
                Ok(d) => d,
                Err(e) => return (Outcome::Failed(e.to_string()), retry),
            };
            let outcome = match tokio::time::timeout(
                worker.config.timeout,
                post(
                    &endpoint,
                    delivery,
                    worker.config.endpoint_guard.as_deref(),
                    worker.config.tls.as_ref(),
                ),
            )
            .await
            {
                Ok(Ok(())) => Outcome::Delivered,
                Ok(Err(e)) => Outcome::Failed(e),
                Err(_) => Outcome::Failed(format!(
                    "no response within {} ms",
                    worker.config.timeout.as_millis()
                )),
            };
            (outcome, retry)
        }
        Protocol::Lambda => {
            let retry = worker.config.lambda_retry;
            if job.kind != MessageKind::Notification {
                return (Outcome::Dropped, retry);
            }
            let event = match lambda_event(job, &worker.signer, &worker.urls) {
                Ok(e) => e,
                Err(e) => return (Outcome::Failed(e.to_string()), retry),
            };
            let invocation = LambdaInvocation {
                function_arn: job.endpoint.clone(),
                topic_arn: job.topic_arn.clone(),
                subscription_arn: job.subscription_arn.clone(),
                message_id: job.message_id.clone(),
                event,
            };
            // The target's future runs in its own task, so that a panic in it is a failed
            // attempt (retried, then dead-lettered) rather than a lost worker task.
            let mut call = AbortOnDrop(tokio::spawn(worker.lambda.invoke(invocation)));
            let outcome = match tokio::time::timeout(worker.config.timeout, call.wait()).await {
                Ok(Ok(Ok(()))) => Outcome::Delivered,
                Ok(Ok(Err(e))) => Outcome::Failed(format!("invoking the function: {e}")),
                Ok(Err(e)) => Outcome::Failed(format!("the Lambda target failed: {e}")),
                Err(_) => Outcome::Failed(format!(
                    "the invocation did not return within {} ms",
                    worker.config.timeout.as_millis()
                )),
            };
            (outcome, retry)
        }
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    /// Waits for the task's result.
    async fn wait(&mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// POSTs one delivery, over TLS to an `https` endpoint; `Ok` on a 2xx answer.
async fn post(
    endpoint: &HttpEndpoint,
    delivery: HttpDelivery,
    guard: Option<&dyn EndpointGuard>,
    tls: Option<&TlsClient>,
) -> Result<(), String> {
    let host = endpoint
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), endpoint.port))
        .await
        .map_err(|e| format!("resolving {}: {e}", endpoint.host))?
        .collect();
    let allowed: Vec<SocketAddr> = resolved
        .iter()
        .filter(|a| guard.is_none_or(|g| g.allow(a)))
        .copied()
        .collect();
    if allowed.is_empty() {
        return Err(if resolved.is_empty() {
            format!("{} resolves to no address", endpoint.host)
        } else {
            format!(
                "every address of {} is refused by the endpoint guard",
                endpoint.host
            )
        });
    }
    let mut stream = None;
    let mut last_error = String::new();
    for addr in &allowed {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = format!("connecting to {addr}: {e}"),
        }
    }
    let stream = stream.ok_or(last_error)?;
    if !endpoint.tls {
        return exchange(stream, endpoint, delivery).await;
    }
    let tls = tls.ok_or("this server has no TLS client for https deliveries")?;
    let stream = tls.connect(&host, stream).await?;
    exchange(stream, endpoint, delivery).await
}

/// Sends the delivery's request over `io` and reads the answer.
async fn exchange<IO>(io: IO, endpoint: &HttpEndpoint, delivery: HttpDelivery) -> Result<(), String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("starting HTTP: {e}"))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(endpoint.path_and_query.as_str())
        .header(http::header::HOST, endpoint.authority.as_str());
    for (name, value) in &delivery.headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(delivery.body)))
        .map_err(|e| format!("building the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let status = response.status();
    // Read (a bounded part of) the answer so that the exchange completes; its content does
    // not matter.
    let _ = Limited::new(response.into_body(), MAX_RESPONSE_BODY_BYTES)
        .collect()
        .await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the endpoint answered HTTP {}", status.as_u16()))
    }
}

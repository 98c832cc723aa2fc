//! The async invocation queue of a cluster, as a JetStream work queue.
//!
//! Every node of a cluster publishes the `Event` invocations it accepts to the stream
//! [`QUEUE_STREAM`] (file storage, work-queue retention: a message stays until a node
//! acknowledges it) and pulls due events from one durable consumer all nodes share
//! ([`QUEUE_CONSUMER`]). JetStream hands each message to one puller at a time.
//!
//! # How the queue's contract maps onto JetStream
//!
//! [`AsyncQueue`] implements the store's [`EventQueue`], so the engine's worker runs the
//! same code on either queue.
//!
//! - **Enqueue** publishes with a JetStream acknowledgement and returns only once the
//!   stream stored the message: an accepted event is durable before the caller hears
//!   `202`. Its `Nats-Msg-Id` is the event's id and attempt, so a publish repeated within
//!   the stream's duplicate window is stored once.
//! - **Lease** pulls what is available without waiting. A message whose event is not due
//!   yet (a retry's back-off, a throttled event's pause) is handed back at once with a
//!   delayed negative acknowledgement of exactly the time left, so it comes back when due.
//!   A message that is not a Warden event (wrong format version, missing or malformed
//!   headers, a function name that does not validate) is terminated with a warning and
//!   counted: it never reaches the engine and is not redelivered.
//! - **A lease lasts while its node lives.** The consumer's acknowledgement wait is short
//!   ([`QueueOptions::ack_wait`], 30 s by default) and a task of the holding node tells
//!   JetStream "in progress" every third of it, for as long as the engine's lease lasts. So
//!   the events a node held when it died are redelivered to the other nodes within the
//!   acknowledgement wait, with no restart needed; [`EventQueue::reclaim_leases`] has
//!   nothing to do.
//! - **Complete** acknowledges and waits for the server's confirmation.
//! - **Retry** publishes the event again with one more attempt and its back-off, then
//!   acknowledges the failed delivery. A node that dies between the two leaves the failed
//!   delivery to be redelivered: that event gets one attempt more than Lambda's policy
//!   allows (at least once, never lost).
//! - **Postpone** (throttled: the attempt does not count) is a delayed negative
//!   acknowledgement: the message, and so its attempt count, is unchanged.
//! - **Count** is the stream's message count (leased or not), refreshed from the server
//!   when asked and at most once a second.
//! - **A deleted function's events** (subject `warden.async.<function>`) are deleted from
//!   the stream one by one by the node that deleted it, before the deletion is answered
//!   ([`AsyncQueue::purge_function`], called as a change observer). An event already
//!   running when they are deleted finds no function if it runs again.
//!
//! # Bounds
//!
//! The stream refuses new events once it holds [`QueueOptions::max_bytes`] (1 GiB by
//! default) instead of discarding old ones: an enqueue then fails and the caller is told,
//! and no accepted event is ever dropped by the stream. A message may be as large as an
//! async payload ([`MAX_EVENT_BYTES`]); the NATS server's `max_payload` must allow it,
//! which [`AsyncQueue::open`] checks. At most [`QueueOptions::max_ack_pending`] events are
//! leased across the cluster at once.
//!
//! # Security
//!
//! Event payloads are the callers' data, stored in the NATS server's files as they are
//! stored in the database's queue table. Give only Warden nodes access to `warden.async.>`
//! and to the stream.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::context::Publish;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{AckKind, Context, Message};
use async_nats::HeaderMap;
use futures_core::Stream;
use tokio::runtime::{Handle, RuntimeFlavor};
use warden_store::{EventQueue, Lease, LeasedEvent, QueuedEvent, Settled, StoreError};
use warden_types::{FunctionName, NodeId};

use crate::BusError;

/// The stream async events are queued in.
pub const QUEUE_STREAM: &str = "WARDEN_ASYNC";
/// The durable consumer every node pulls events from.
pub const QUEUE_CONSUMER: &str = "warden-async";
/// Subjects of queued events: `warden.async.<function>`.
pub const QUEUE_SUBJECTS: &str = "warden.async.>";
const SUBJECT_PREFIX: &str = "warden.async.";
/// The format of a queued event this build writes and reads.
pub const QUEUE_FORMAT: &str = "1";
/// The largest message the stream takes: an async payload and room for the headers.
pub const MAX_EVENT_BYTES: usize = warden_types::limits::ASYNC_PAYLOAD_BYTES + 8 * 1024;

const H_FORMAT: &str = "Warden-Queue-Format";
const H_ID: &str = "Warden-Event-Id";
const H_FUNCTION: &str = "Warden-Function";
const H_QUALIFIER: &str = "Warden-Qualifier";
const H_ATTEMPTS: &str = "Warden-Attempts";
const H_NOT_BEFORE: &str = "Warden-Not-Before";
const H_ENQUEUED: &str = "Warden-Enqueued";
/// Longest qualifier a stored event may name (an alias name or a version number).
const MAX_QUALIFIER: usize = 128;

/// Settings of an [`AsyncQueue`]; the defaults suit production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// How long JetStream waits for news of a leased event before handing it to another
    /// node; the holder says "in progress" every third of it (default 30 s).
    pub ack_wait: Duration,
    /// Events leased across the cluster at once (default 10,000).
    pub max_ack_pending: i64,
    /// Bytes the stream holds before it refuses new events (default 1 GiB).
    pub max_bytes: i64,
    /// How long one request to the server may take (default 5 s).
    pub request_timeout: Duration,
    /// Replicas of the stream when this node creates it (default 1).
    pub replicas: usize,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 10_000,
            max_bytes: 1024 * 1024 * 1024,
            request_timeout: Duration::from_secs(5),
            replicas: 1,
        }
    }
}

/// What the queue has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Events this node published (first attempts and retries).
    pub published: u64,
    /// Deliveries handed back because their event was not due.
    pub deferred: u64,
    /// Messages terminated because they were not Warden events.
    pub skipped: u64,
}

/// A leased message, kept until its event is settled.
struct Held {
    message: Message,
    event: QueuedEvent,
    /// Until when this node keeps telling JetStream the event is in progress.
    until: Instant,
}

struct Inner {
    handle: Handle,
    js: Context,
    consumer: PullConsumer,
    options: QueueOptions,
    held: Mutex<HashMap<i64, Held>>,
    next_token: AtomicI64,
    count: Mutex<Option<(Instant, u64)>>,
    published: AtomicU64,
    deferred: AtomicU64,
    skipped: AtomicU64,
}

/// The cluster's async queue on JetStream; cheap to clone. See the module documentation.
#[derive(Clone)]
pub struct AsyncQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AsyncQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncQueue")
            .field("stream", &QUEUE_STREAM)
            .finish_non_exhaustive()
    }
}

fn backend(context: &'static str) -> impl Fn(String) -> StoreError {
    move |message| StoreError::Backend {
        context,
        source: message.into(),
    }
}

impl AsyncQueue {
    /// Creates (or checks) the stream and the shared consumer on `js`, and starts the task
    /// that keeps this node's leases alive. Must be called within a Tokio runtime, which
    /// the queue then uses; its [`EventQueue`] methods block, so call them from blocking
    /// threads.
    pub async fn open(
        client: &async_nats::Client,
        js: &Context,
        options: QueueOptions,
    ) -> Result<AsyncQueue, BusError> {
        let max_payload = client.server_info().max_payload;
        if max_payload < MAX_EVENT_BYTES {
            return Err(BusError::Stream(format!(
                "the NATS server takes messages of at most {max_payload} bytes (max_payload), and an async event needs {MAX_EVENT_BYTES}; set max_payload to at least 2MB in the server's configuration"
            )));
        }
        let stream = ensure_stream(js, &options).await?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                QUEUE_CONSUMER,
                pull::Config {
                    durable_name: Some(QUEUE_CONSUMER.to_owned()),
                    description: Some("Warden nodes pulling async invocations".to_owned()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: options.ack_wait,
                    max_deliver: -1,
                    max_ack_pending: options.max_ack_pending,
                    filter_subject: QUEUE_SUBJECTS.to_owned(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BusError::Stream(format!("the consumer {QUEUE_CONSUMER}: {e}")))?;
        let queue = AsyncQueue {
            inner: Arc::new(Inner {
                handle: Handle::current(),
                js: js.clone(),
                consumer,
                options,
                held: Mutex::new(HashMap::new()),
                next_token: AtomicI64::new(1),
                count: Mutex::new(None),
                published: AtomicU64::new(0),
                deferred: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
            }),
        };
        tokio::spawn(keep_alive(Arc::downgrade(&queue.inner)));
        Ok(queue)
    }

    /// What the queue has done so far.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            published: self.inner.published.load(Ordering::Relaxed),
            deferred: self.inner.deferred.load(Ordering::Relaxed),
            skipped: self.inner.skipped.load(Ordering::Relaxed),
        }
    }

    /// Events this node holds now.
    pub fn held(&self) -> usize {
        self.lock_held().len()
    }

    /// Removes every queued event of `function` (it was deleted), one message at a time,
    /// oldest first, and returns how many. Events a node already leased are removed too:
    /// their outcome is then recorded nowhere, and they find no function if they run.
    ///
    /// Not a purge of the subject: a subject-filtered purge moves the shared consumer past
    /// the other functions' events on the NATS servers of Debian 12 (2.9), so they would
    /// never be delivered. Deleting messages one by one is what an acknowledgement in a
    /// work queue does anyway.
    pub async fn purge_function(&self, function: &FunctionName) -> Result<u64, BusError> {
        let stream = self
            .inner
            .js
            .get_stream(QUEUE_STREAM)
            .await
            .map_err(|e| BusError::Stream(e.to_string()))?;
        let subject = format!("{SUBJECT_PREFIX}{}", function.as_str());
        let mut purged = 0;
        let mut previous = None;
        loop {
            let last = match stream.get_next_raw_message_by_subject(&subject).await {
                Ok(m) => m,
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => break,
                Err(e) => return Err(BusError::Stream(e.to_string())),
            };
            // A message that outlived its deletion: never loop on it.
            if previous == Some(last.sequence) {
                return Err(BusError::Stream(format!(
                    "message {} of {QUEUE_STREAM} could not be deleted",
                    last.sequence
                )));
            }
            previous = Some(last.sequence);
            if stream
                .delete_message(last.sequence)
                .await
                .map_err(|e| BusError::Stream(e.to_string()))?
            {
                purged += 1;
            }
        }
        *self
            .inner
            .count
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        Ok(purged)
    }

    /// Hands every event this node holds back to the stream at once, so that other nodes
    /// (or this one after a restart) need not wait for the acknowledgement wait. For a
    /// node stopping after its in-flight invocations ended or were abandoned.
    pub async fn release_all(&self) {
        let held: Vec<Held> = self.lock_held().drain().map(|(_, h)| h).collect();
        for h in held {
            let _ = h.message.ack_with(AckKind::Nak(None)).await;
        }
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Held>> {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `future` on the queue's runtime and waits for it, for at most twice the
    /// request timeout. On a worker thread of a multi-threaded runtime the wait moves the
    /// thread's other tasks away first (`block_in_place`), so waiting never starves the
    /// task it waits for.
    fn run<T: Send + 'static>(
        &self,
        context: &'static str,
        future: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let wait = self.inner.options.request_timeout.saturating_mul(2);
        let timed = async move {
            match tokio::time::timeout(wait, future).await {
                Ok(result) => result,
                Err(_) => Err(backend(context)(
                    "the NATS server did not answer in time".into(),
                )),
            }
        };
        match Handle::try_current() {
            Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.inner.handle.block_on(timed))
            }
            // A plain thread: the queue's runtime runs the future while this thread waits.
            // (Not a single-threaded runtime's own thread: its wait would hold up the task
            // until the timeout.)
            _ => {
                let (tx, rx) = mpsc::sync_channel(1);
                self.inner.handle.spawn(async move {
                    let _ = tx.send(timed.await);
                });
                rx.recv_timeout(wait + Duration::from_secs(1))
                    .unwrap_or_else(|_| {
                        Err(backend(context)(
                            "the NATS server did not answer in time".into(),
                        ))
                    })
            }
        }
    }

    async fn publish(js: &Context, event: &QueuedEvent) -> Result<bool, StoreError> {
        let publish = Publish::build()
            .headers(headers(event))
            .payload(event.payload.clone().into())
            .message_id(format!("{}/{}", event.id, event.attempts));
        let subject = format!("{SUBJECT_PREFIX}{}", event.function.as_str());
        let ack = js
            .send_publish(subject, publish)
            .await
            .map_err(|e| backend("queueing an async event")(e.to_string()))?
            .await
            .map_err(|e| backend("queueing an async event")(e.to_string()))?;
        Ok(ack.duplicate)
    }

    fn settle_with(
        &self,
        lease: &Lease,
        context: &'static str,
        settle: impl FnOnce(Context, Held) -> SettleFuture + Send + 'static,
    ) -> Result<Settled, StoreError> {
        let held = {
            let mut held = self.lock_held();
            match held.get(&lease.token) {
                Some(h) if h.event.id == lease.event_id => held.remove(&lease.token),
                _ => None,
            }
        };
        let Some(held) = held else {
            // Not leased here under that token: its lease ran out and it went elsewhere.
            return Ok(Settled::LeaseLost);
        };
        let js = self.inner.js.clone();
        self.run(context, async move { settle(js, held).await })
            .map(|()| Settled::Applied)
    }
}

type SettleFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;

fn headers(event: &QueuedEvent) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(H_FORMAT, QUEUE_FORMAT);
    h.insert(H_ID, event.id.as_str());
    h.insert(H_FUNCTION, event.function.as_str());
    h.insert(H_QUALIFIER, event.qualifier.as_str());
    h.insert(H_ATTEMPTS, event.attempts.to_string().as_str());
    h.insert(H_NOT_BEFORE, event.not_before_ms.to_string().as_str());
    h.insert(H_ENQUEUED, event.enqueued_ms.to_string().as_str());
    h
}

/// Reads a queued event back from its message; why it is not one otherwise.
fn event_from(message: &async_nats::Message) -> Result<QueuedEvent, String> {
    let headers = message.headers.as_ref().ok_or("no headers")?;
    let get = |name: &str| -> Result<&str, String> {
        headers
            .get(name)
            .map(|v| v.as_str())
            .ok_or_else(|| format!("no {name} header"))
    };
    let number = |name: &str| -> Result<i64, String> {
        i64::from_str(get(name)?).map_err(|_| format!("{name} is not a number"))
    };
    let format = get(H_FORMAT)?;
    if format != QUEUE_FORMAT {
        return Err(format!(
            "format {format:?}, this build reads {QUEUE_FORMAT}"
        ));
    }
    let id = get(H_ID)?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err("the event id is malformed".into());
    }
    let function = FunctionName::new(get(H_FUNCTION)?)
        .map_err(|_| "the function name is invalid".to_owned())?;
    if message.subject.as_str() != format!("{SUBJECT_PREFIX}{}", function.as_str()) {
        return Err("the subject does not name the event's function".into());
    }
    let qualifier = get(H_QUALIFIER)?;
    if qualifier.is_empty() || qualifier.len() > MAX_QUALIFIER {
        return Err("the qualifier is malformed".into());
    }
    let attempts = u32::try_from(number(H_ATTEMPTS)?).map_err(|_| "attempts out of range")?;
    Ok(QueuedEvent {
        id: id.to_owned(),
        function,
        qualifier: qualifier.to_owned(),
        payload: message.payload.to_vec(),
        attempts,
        not_before_ms: number(H_NOT_BEFORE)?,
        enqueued_ms: number(H_ENQUEUED)?,
    })
}

fn millis(d: i64) -> Duration {
    Duration::from_millis(u64::try_from(d).unwrap_or(0))
}

impl EventQueue for AsyncQueue {
    fn enqueue_event(&self, event: &QueuedEvent) -> Result<(), StoreError> {
        let js = self.inner.js.clone();
        let event = event.clone();
        let id = event.id.clone();
        let duplicate = self.run("queueing an async event", async move {
            AsyncQueue::publish(&js, &event).await
        })?;
        if duplicate {
            return Err(StoreError::AlreadyExists(format!("async event {id}")));
        }
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        *self
            .inner
            .count
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }

    fn lease_events(
        &self,
        node: &NodeId,
        now_ms: i64,
        lease_ms: i64,
        max: usize,
    ) -> Result<Vec<LeasedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let inner = Arc::clone(&self.inner);
        let pulled = self.run("leasing async events", async move {
            let mut batch = inner
                .consumer
                .fetch()
                .max_messages(max)
                .messages()
                .await
                .map_err(|e| backend("leasing async events")(e.to_string()))?;
            let mut due = Vec::new();
            while let Some(next) = next_message(&mut batch).await {
                let message = match next {
                    Ok(m) => m,
                    Err(e) => return Err(backend("leasing async events")(e.to_string())),
                };
                match event_from(&message) {
                    Err(why) => {
                        tracing::warn!(subject = %message.subject, reason = %why, "terminating a message of the async queue that is not a Warden event");
                        inner.skipped.fetch_add(1, Ordering::Relaxed);
                        let _ = message.ack_with(AckKind::Term).await;
                    }
                    Ok(event) if event.not_before_ms > now_ms => {
                        inner.deferred.fetch_add(1, Ordering::Relaxed);
                        let wait = millis(event.not_before_ms - now_ms);
                        let _ = message.ack_with(AckKind::Nak(Some(wait))).await;
                    }
                    Ok(event) => due.push((message, event)),
                }
            }
            Ok(due)
        })?;
        let until = Instant::now() + millis(lease_ms);
        let leased_until_ms = now_ms.saturating_add(lease_ms);
        let mut held = self.lock_held();
        Ok(pulled
            .into_iter()
            .map(|(message, event)| {
                let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
                held.insert(
                    token,
                    Held {
                        message,
                        event: event.clone(),
                        until,
                    },
                );
                LeasedEvent {
                    lease: Lease {
                        event_id: event.id.clone(),
                        leased_by: node.clone(),
                        leased_until_ms,
                        token,
                    },
                    event,
                }
            })
            .collect())
    }

    fn complete_event(&self, lease: &Lease) -> Result<Settled, StoreError> {
        self.settle_with(lease, "completing an async event", |_, held| {
            Box::pin(async move {
                held.message
                    .double_ack()
                    .await
                    .map_err(|e| backend("completing an async event")(e.to_string()))
            })
        })
    }

    fn retry_event(&self, lease: &Lease, not_before_ms: i64) -> Result<Settled, StoreError> {
        self.settle_with(lease, "retrying an async event", move |js, held| {
            Box::pin(async move {
                let mut next = held.event.clone();
                next.attempts = next.attempts.saturating_add(1);
                next.not_before_ms = not_before_ms;
                AsyncQueue::publish(&js, &next).await?;
                held.message
                    .double_ack()
                    .await
                    .map_err(|e| backend("retrying an async event")(e.to_string()))
            })
        })
    }

    fn postpone_event(&self, lease: &Lease, not_before_ms: i64) -> Result<Settled, StoreError> {
        self.settle_with(lease, "postponing an async event", move |_, held| {
            Box::pin(async move {
                let wait = millis(not_before_ms - warden_types::now_millis());
                held.message
                    .ack_with(AckKind::Nak(Some(wait)))
                    .await
                    .map_err(|e| backend("postponing an async event")(e.to_string()))
            })
        })
    }

    /// Nothing to do: a dead node's deliveries come back by themselves once the
    /// acknowledgement wait passes without news of them.
    fn reclaim_leases(&self, _node: &NodeId) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn queued_event_count(&self) -> Result<u64, StoreError> {
        {
            let count = self
                .inner
                .count
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((at, n)) = *count {
                if at.elapsed() < Duration::from_secs(1) {
                    return Ok(n);
                }
            }
        }
        let js = self.inner.js.clone();
        let n = self.run("counting the async queue", async move {
            let mut stream = js
                .get_stream(QUEUE_STREAM)
                .await
                .map_err(|e| backend("counting the async queue")(e.to_string()))?;
            let info = stream
                .info()
                .await
                .map_err(|e| backend("counting the async queue")(e.to_string()))?;
            Ok(info.state.messages)
        })?;
        *self
            .inner
            .count
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), n));
        Ok(n)
    }
}

/// Purges a deleted function's queued events, and waits for the purge (at most twice the
/// request timeout), so that the deletion is answered only once they are gone. Meant for
/// the changes this node makes: another node's deletion was purged by that node.
impl warden_types::change::ChangeObserver for AsyncQueue {
    fn on_change(&self, event: &warden_types::change::ChangeEvent) {
        if !matches!(event.change, warden_types::change::Change::FunctionDeleted) {
            return;
        }
        let queue = self.clone();
        let function = event.function.clone();
        let purged = self.run("purging a deleted function's async events", async move {
            queue
                .purge_function(&function)
                .await
                .map_err(|e| backend("purging a deleted function's async events")(e.to_string()))
        });
        match purged {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(function = %event.function, events = n, "purged the queued async events of a deleted function")
            }
            Err(e) => {
                tracing::warn!(function = %event.function, error = %e, "could not purge the queued async events of a deleted function; they are dropped when they run")
            }
        }
    }
}

pub(crate) async fn next_message<S, T>(stream: &mut S) -> Option<T>
where
    S: Stream<Item = T> + Unpin,
{
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

/// Tells JetStream every third of the acknowledgement wait that the events this node
/// holds are still being worked on, until their lease ends; stops with the queue.
async fn keep_alive(inner: std::sync::Weak<Inner>) {
    let period = match inner.upgrade() {
        Some(i) => (i.options.ack_wait / 3).max(Duration::from_millis(100)),
        None => return,
    };
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let now = Instant::now();
        let replies: Vec<Message> = {
            let mut held = inner.held.lock().unwrap_or_else(PoisonError::into_inner);
            // An event held past its lease is let go: JetStream redelivers it after the
            // wait, as the store's queue lets an expired lease be taken.
            held.retain(|_, h| h.until > now);
            held.values().map(|h| h.message.clone()).collect()
        };
        for message in replies {
            if let Err(e) = message.ack_with(AckKind::Progress).await {
                tracing::warn!(error = %e, "could not extend the lease of an async event");
            }
        }
    }
}

/// Creates the work-queue stream, or checks that an existing one of its name is one.
async fn ensure_stream(
    js: &Context,
    options: &QueueOptions,
) -> Result<async_nats::jetstream::stream::Stream, BusError> {
    crate::stream::ensure_work_queue(
        js,
        crate::stream::WorkQueue {
            name: QUEUE_STREAM,
            description: "Warden async invocations, one message per accepted event",
            subjects: QUEUE_SUBJECTS,
            max_bytes: options.max_bytes,
            max_message_size: MAX_EVENT_BYTES,
            replicas: options.replicas,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(subject: &str, headers: HeaderMap) -> async_nats::Message {
        async_nats::Message {
            subject: subject.into(),
            reply: None,
            payload: bytes::Bytes::from_static(b"{}"),
            headers: Some(headers),
            status: None,
            description: None,
            length: 0,
        }
    }

    fn event() -> QueuedEvent {
        QueuedEvent {
            id: "0b6f2f9e-1c1e-4c55-9d7e-3a0f7c1d2e3f".into(),
            function: FunctionName::new("worker").unwrap(),
            qualifier: "$LATEST".into(),
            payload: b"{}".to_vec(),
            attempts: 1,
            not_before_ms: 5,
            enqueued_ms: 3,
        }
    }

    #[test]
    fn an_event_reads_back_as_written() {
        let e = event();
        let back = event_from(&message("warden.async.worker", headers(&e))).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn messages_that_are_not_events_are_refused_with_a_reason() {
        let e = event();
        // (subject, header changed to a value, what the refusal names)
        let cases = [
            ("warden.async.worker", Some((H_FORMAT, "2")), "format"),
            ("warden.async.other", None, "subject"),
            ("warden.async.worker", Some((H_ATTEMPTS, "-1")), "attempts"),
            (
                "warden.async.worker",
                Some((H_NOT_BEFORE, "soon")),
                "number",
            ),
            ("warden.async.worker", Some((H_ID, "../x")), "id"),
            (
                "warden.async.bad name",
                Some((H_FUNCTION, "bad name")),
                "function",
            ),
            ("warden.async.worker", Some((H_QUALIFIER, "")), "qualifier"),
        ];
        for (subject, change, expected) in cases {
            let mut h = headers(&e);
            if let Some((name, value)) = change {
                h.insert(name, value);
            }
            let why = event_from(&message(subject, h)).unwrap_err();
            assert!(why.contains(expected), "{expected}: {why}");
        }
        let mut bare = message("warden.async.worker", HeaderMap::new());
        bare.headers = None;
        assert_eq!(event_from(&bare).unwrap_err(), "no headers");
    }

    proptest::proptest! {
        #[test]
        fn no_headers_panic_the_reader(
            values in proptest::collection::vec("\\PC{0,80}", 7),
            subject in "warden\\.async\\.[a-zA-Z0-9_-]{1,70}",
        ) {
            let names = [H_FORMAT, H_ID, H_FUNCTION, H_QUALIFIER, H_ATTEMPTS, H_NOT_BEFORE, H_ENQUEUED];
            let mut h = HeaderMap::new();
            for (name, value) in names.iter().zip(&values) {
                h.insert(*name, value.as_str());
            }
            let _ = event_from(&message(&subject, h));
        }
    }
}

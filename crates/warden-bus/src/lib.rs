//! What Warden nodes tell each other over NATS JetStream.
//!
//! Several Warden nodes share one PostgreSQL database, the truth, and each keeps caches
//! derived from it in memory (the function registry, the access cache, concurrency
//! reservations, the identity snapshot). When one node commits a change, every other node
//! must drop the cached entries the change names, within about a tenth of a second. This
//! crate carries those notices.
//!
//! # What travels
//!
//! - A **change notice** for every change the control plane commits, on
//!   `warden.changes.<function>`: the function, what changed (the change's kind and its
//!   fields: a version, an alias, a reservation), the actor's ARN and the time. It is the
//!   control plane's [`ChangeEvent`](warden_types::change::ChangeEvent), written in this
//!   crate's own versioned JSON (`"v": 1`) with the publishing node's id.
//! - An **identity generation** on `warden.identity`: a number that only grows, announced
//!   when the identity snapshot changes.
//! - A **resync notice** on `warden.changes.@all` (or on a function's subject for a
//!   change this version cannot describe): drop every cache and reload everything.
//! - **Async invocations** on `warden.async.<function>`, a work queue all nodes pull
//!   from (see [`queue`]).
//! - **Alarm notifications** on `warden.alarms.<account>.<STATE>`, a work queue whose
//!   messages make one node run an alarm's actions (see [`alarms`]).
//!
//! Notices are kept for an hour in the JetStream stream `WARDEN_CHANGES` (file storage,
//! limits retention, bounded size, a duplicate window), which [`Bus::connect`] creates or
//! brings to these settings.
//!
//! # Guarantees
//!
//! - **Notices follow commits.** The control plane calls its observers, the
//!   [`Publisher`] among them, once a change is durable; a notice never announces what the
//!   store does not hold.
//! - **At least once to live nodes.** A notice is published with a JetStream
//!   acknowledgement, retried with backoff until acknowledged, under a `Nats-Msg-Id`
//!   that makes the stream store a retried notice once. Each subscribing node reads the
//!   stream in order with its own consumer. A notice may still arrive twice (a node that
//!   reloads everything and then hears of a change it already loaded): dropping a cache
//!   entry twice is harmless.
//! - **Gaps cause a resync.** Whenever a node may have missed notices (its consumer is
//!   restarted after a disconnect or a missed heartbeat, or the sequence of what it
//!   received has a hole), it calls [`Subscriptions::resync`]: drop every cache and
//!   reload everything. A node that had to drop notices because its publish queue was full
//!   tells every other node to do the same as soon as it can publish again. Until then
//!   (and while a node cannot reach NATS at all) caches may be stale: other mechanisms (a
//!   periodic refresh of what is cached) are the backstop.
//! - **Unreadable messages are skipped.** A message that is not a notice (not JSON,
//!   another format version, a function name that does not validate, larger than
//!   [`MAX_NOTICE_BYTES`]) is skipped with a warning and counted; the subscription goes
//!   on. A well-formed notice of a change kind this version does not know (published by
//!   a newer node) makes the node reload everything, since it cannot tell what to drop.
//! - **The store stays the truth.** A notice only makes a node forget what it cached and
//!   read the store again; it carries no configuration. So anyone able to publish on the
//!   bus can at most make nodes reload (a load, never a change of what they run or
//!   allow), and losing the bus entirely only makes caches stale, never wrong in a way the
//!   store does not say.
//!
//! # Security
//!
//! The NATS URL carries the credentials (`nats://user:password@host:4222`, or a token:
//! `nats://token@host:4222`; several servers separated by commas). They are taken out of
//! the URL before the client sees it, and every error or log shows the URL with the secret
//! replaced by `***`. What the stream holds is not secret, but is not public either:
//! function names, alias and version names, reserved concurrency figures and the ARNs of
//! the principals who made the changes; never code, environment variables or keys. Give
//! only Warden nodes permission to publish on `warden.>` and to use the stream. (The
//! async queue's events are the callers' payloads; alarm notifications are sealed by the
//! binary under the cluster's master key, so a forged one is refused.)
//!
//! # Use
//!
//! ```no_run
//! # async fn example() -> Result<(), warden_bus::BusError> {
//! use std::sync::Arc;
//! use warden_bus::{Bus, Subscriptions};
//! use warden_types::NodeId;
//!
//! let node = NodeId::new("node-1").expect("a valid node id");
//! let bus = Bus::connect("nats://warden:secret@127.0.0.1:4222", node).await?;
//! // Register with the control plane so that this node's changes are announced:
//! let _observer: Arc<dyn warden_types::change::ChangeObserver> = Arc::new(bus.publisher());
//! // Hear the other nodes' changes:
//! bus.subscribe(Subscriptions {
//!     changes: vec![],
//!     identity: Arc::new(|generation| println!("identity generation {generation}")),
//!     resync: Arc::new(|| println!("drop every cache")),
//! })
//! .await?;
//! // ... and when the node stops:
//! bus.close().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod alarms;
mod publish;
pub mod queue;
mod stream;
mod subscribe;
mod url;
mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warden_types::NodeId;

pub use alarms::{AlarmNotices, AlarmOptions, AlarmStats};
pub use publish::Publisher;
pub use queue::{AsyncQueue, QueueOptions, QueueStats};
pub use stream::{DUPLICATE_WINDOW, STREAM_MAX_AGE, STREAM_NAME};
pub use subscribe::Subscriptions;
pub use wire::{
    CHANGES_PREFIX, IDENTITY_SUBJECT, MAX_NOTICE_BYTES, RESYNC_ALL_SUBJECT,
    VERSION as FORMAT_VERSION,
};

use publish::Counters;
use subscribe::SubscriberTask;

/// Why the bus could not be set up. Never contains the password or token of the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The URL does not parse.
    #[error("invalid NATS URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached, or refused the connection.
    #[error("connecting to NATS at {url}: {message}")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// The client's error.
        message: String,
    },
    /// A stream of Warden's name or subjects is in the way and cannot be made Warden's.
    #[error("incompatible JetStream stream: {0}")]
    IncompatibleStream(String),
    /// Creating, reading or updating the stream failed otherwise (JetStream disabled, a
    /// permission, a timeout).
    #[error("JetStream stream: {0}")]
    Stream(String),
    /// The subscriber's consumer could not be created.
    #[error("subscribing to the bus: {0}")]
    Subscribe(String),
    /// A message was refused, or not acknowledged by its stream.
    #[error("publishing on the bus: {0}")]
    Publish(String),
}

/// Settings of a [`Bus`]; [`BusOptions::default`] suits production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusOptions {
    /// Notices waiting to be published before new ones are dropped (default 4096).
    pub queue_capacity: usize,
    /// How long one publish attempt waits for the stream's acknowledgement (default 5 s).
    pub publish_timeout: Duration,
    /// How long [`Bus::close`] keeps publishing what is queued (default 5 s).
    pub close_timeout: Duration,
    /// How often an idle consumer sends a heartbeat; three missed heartbeats restart it
    /// (default 5 s).
    pub heartbeat: Duration,
    /// How long connecting and JetStream requests may take (default 5 s).
    pub request_timeout: Duration,
    /// Deliveries a subscription holds before its callbacks read them; beyond that NATS
    /// drops them, which the subscription notices as a gap (default 65 536).
    pub subscription_capacity: usize,
    /// The stream's size bound, in bytes; the oldest notices go first (default 64 MiB).
    pub max_stream_bytes: i64,
    /// Replicas of the stream when this node creates it (default 1; an existing stream
    /// keeps its own).
    pub replicas: usize,
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            queue_capacity: 4096,
            publish_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(5),
            heartbeat: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            subscription_capacity: 65_536,
            max_stream_bytes: 64 * 1024 * 1024,
            replicas: 1,
        }
    }
}

/// Counts since the bus was connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Notices the stream acknowledged.
    pub published: u64,
    /// Publish attempts that failed and were retried.
    pub publish_retries: u64,
    /// Notices dropped: the queue was full, or the bus closed before they were published.
    pub dropped: u64,
    /// Other nodes' notices handed to the subscriptions.
    pub received: u64,
    /// This node's own notices, skipped.
    pub own_skipped: u64,
    /// Messages skipped because they were malformed or unreadable.
    pub skipped: u64,
    /// Calls of [`Subscriptions::resync`].
    pub resyncs: u64,
}

/// A node's connection to the bus: publishes its notices and delivers the others'.
///
/// Dropping it stops the subscriptions and leaves the queued notices to be published in
/// the background for at most [`BusOptions::close_timeout`]; [`Bus::close`] does the same
/// and waits.
pub struct Bus {
    client: Client,
    js: async_nats::jetstream::Context,
    node: NodeId,
    options: BusOptions,
    publisher: Publisher,
    publisher_task: Option<JoinHandle<()>>,
    subscribers: Mutex<Vec<JoinHandle<()>>>,
    shutdown: watch::Sender<bool>,
    reconnects: watch::Receiver<u64>,
    counters: Arc<Counters>,
    redacted_url: String,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("url", &self.redacted_url)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Connects to NATS at `url` as `node` with [`BusOptions::default`], and creates or
    /// updates the stream.
    pub async fn connect(url: &str, node: NodeId) -> Result<Bus, BusError> {
        Bus::connect_with(url, node, BusOptions::default()).await
    }

    /// Connects to NATS at `url` as `node`, and creates or updates the stream.
    pub async fn connect_with(
        url: &str,
        node: NodeId,
        options: BusOptions,
    ) -> Result<Bus, BusError> {
        let parsed = url::parse(url)?;
        let secrets = parsed.secrets();
        let connect = match &parsed.credentials {
            url::Credentials::None => ConnectOptions::new(),
            url::Credentials::UserPassword { user, password } => {
                ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            url::Credentials::Token(token) => ConnectOptions::with_token(token.clone()),
        };
        let (reconnected, reconnects) = watch::channel(0u64);
        let was_down = Arc::new(AtomicBool::new(false));
        let shown = parsed.redacted.clone();
        let event_secrets = secrets.clone();
        let connect = connect
            .name(format!("warden-{}", node.as_str()))
            .connection_timeout(options.request_timeout)
            .request_timeout(Some(options.request_timeout))
            .subscription_capacity(options.subscription_capacity.max(1))
            .event_callback(move |event| {
                let reconnected = reconnected.clone();
                let was_down = was_down.clone();
                let shown = shown.clone();
                let secrets = event_secrets.clone();
                async move { on_event(event, &reconnected, &was_down, &shown, &secrets) }
            });
        let client =
            connect
                .connect(parsed.servers.clone())
                .await
                .map_err(|e| BusError::Connect {
                    url: parsed.redacted.clone(),
                    message: url::scrub(&e.to_string(), &secrets),
                })?;
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(options.request_timeout.max(options.publish_timeout));
        stream::ensure(&js, &options).await.map_err(|e| match e {
            BusError::Stream(m) => BusError::Stream(url::scrub(&m, &secrets)),
            BusError::IncompatibleStream(m) => {
                BusError::IncompatibleStream(url::scrub(&m, &secrets))
            }
            other => other,
        })?;
        let counters = Arc::new(Counters::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (publisher, publisher_task) = publish::spawn(
            js.clone(),
            node.clone(),
            &options,
            counters.clone(),
            shutdown_rx,
        );
        tracing::info!(url = %parsed.redacted, node = %node.as_str(), "connected to the bus");
        Ok(Bus {
            client,
            js,
            node,
            options,
            publisher,
            publisher_task: Some(publisher_task),
            subscribers: Mutex::new(Vec::new()),
            shutdown,
            reconnects,
            counters,
            redacted_url: parsed.redacted,
        })
    }

    /// Opens the cluster's async invocation queue on this connection: creates or checks
    /// its stream and shared consumer (see [`queue`]).
    pub async fn async_queue(&self, options: QueueOptions) -> Result<AsyncQueue, BusError> {
        AsyncQueue::open(&self.client, &self.js, options).await
    }

    /// Opens the cluster's alarm notifications on this connection: creates or checks
    /// their stream and shared consumer (see [`alarms`]).
    pub async fn alarm_notices(&self, options: AlarmOptions) -> Result<AlarmNotices, BusError> {
        AlarmNotices::open(&self.js, options).await
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The observer to register with the control plane: it publishes every change this
    /// node commits.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Announces a new identity generation; see [`Publisher::publish_identity_generation`].
    pub fn publish_identity_generation(&self, generation: u64) {
        self.publisher.publish_identity_generation(generation);
    }

    /// Starts delivering the other nodes' notices to `subscriptions`, from now on: when
    /// this returns, the consumer exists, and every notice published afterwards reaches
    /// `subscriptions` (or, if it may have been missed, `resync` is called). Each call
    /// makes its own consumer; all stop when the bus closes.
    pub async fn subscribe(&self, subscriptions: Subscriptions) -> Result<(), BusError> {
        let task = SubscriberTask {
            client: self.client.clone(),
            js: self.js.clone(),
            node: self.node.clone(),
            subscriptions,
            counters: self.counters.clone(),
            heartbeat: self.options.heartbeat,
            request_timeout: self.options.request_timeout,
            shutdown: self.shutdown.subscribe(),
            reconnects: self.reconnects.clone(),
        };
        let handle = task.start().await.map_err(BusError::Subscribe)?;
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
        Ok(())
    }

    /// What the bus has done so far.
    pub fn stats(&self) -> BusStats {
        let c = &self.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        BusStats {
            published: get(&c.published),
            publish_retries: get(&c.publish_retries),
            dropped: get(&c.dropped),
            received: get(&c.received),
            own_skipped: get(&c.own_skipped),
            skipped: get(&c.skipped),
            resyncs: get(&c.resyncs),
        }
    }

    /// Stops the subscriptions, publishes what is queued (for at most
    /// [`BusOptions::close_timeout`]; what is left is counted as dropped) and closes the
    /// connection. Notices given to a [`Publisher`] afterwards are dropped.
    pub async fn close(mut self) {
        let deadline = tokio::time::Instant::now() + self.options.close_timeout;
        self.shutdown.send_replace(true);
        if let Some(task) = self.publisher_task.take() {
            // The task gives up by itself at the deadline; the grace covers one attempt.
            let grace = Duration::from_secs(1);
            if tokio::time::timeout_at(deadline + grace, task)
                .await
                .is_err()
            {
                tracing::warn!("the bus's publisher did not stop in time");
            }
        }
        let subscribers =
            std::mem::take(&mut *self.subscribers.lock().unwrap_or_else(|e| e.into_inner()));
        for task in subscribers {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        // Acknowledged notices need no flush; this only sends what little is left (replies
        // to flow control), and never waits past the deadline for an unreachable server.
        let flush = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_secs(1));
        let _ = tokio::time::timeout(flush, self.client.flush()).await;
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Logs a connection event and counts reconnections.
fn on_event(
    event: Event,
    reconnected: &watch::Sender<u64>,
    was_down: &AtomicBool,
    url: &str,
    secrets: &[String],
) {
    match event {
        Event::Disconnected => {
            was_down.store(true, Ordering::SeqCst);
            tracing::warn!(url, "lost the connection to NATS; reconnecting");
        }
        Event::Connected => {
            if was_down.swap(false, Ordering::SeqCst) {
                tracing::info!(url, "reconnected to NATS");
                reconnected.send_modify(|n| *n += 1);
            }
        }
        Event::SlowConsumer(sid) => {
            tracing::warn!(url, subscription = sid, "NATS reports a slow consumer");
        }
        Event::LameDuckMode => {
            tracing::warn!(url, "the NATS server is shutting down (lame duck mode)");
        }
        other => {
            let text = url::scrub(&other.to_string(), secrets);
            tracing::warn!(url, event = %text, "NATS connection event");
        }
    }
}

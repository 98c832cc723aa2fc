//! Subscribing: an ordered, ephemeral push consumer of new notices, restarted (and every
//! cache reloaded) whenever it may have missed one.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::Context;
use async_nats::{Client, StatusCode};
use futures_core::Stream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warden_types::change::ChangeObserver;
use warden_types::NodeId;

use crate::publish::{bump, worth_warning, Counters};
use crate::stream::STREAM_NAME;
use crate::wire::{self, Notice};

/// The longest pause between two attempts to restart the consumer.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long the server keeps a consumer nobody listens to (after a disconnect). The
/// subscriber makes a new one on reconnection anyway; this only bounds the leftovers.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(60);

/// What a node does with the notices of the other nodes.
///
/// Every callback runs on the subscriber's task, one notice at a time in the stream's
/// order, and must be quick and must not block (drop cache entries, bump a counter, wake
/// a task); a callback that panics is logged and the subscription goes on.
#[derive(Clone)]
pub struct Subscriptions {
    /// Told of every change another node committed.
    pub changes: Vec<Arc<dyn ChangeObserver>>,
    /// Told of every identity generation another node announced. Generations only grow,
    /// but a notice may arrive more than once: ignore one not above what you hold.
    pub identity: Arc<dyn Fn(u64) + Send + Sync>,
    /// Told to drop every cache and reload everything, because this node may have missed
    /// notices (the consumer restarted after a disconnect, or saw a gap in the sequence),
    /// or another node asked for it (it dropped notices, or saw a change this version
    /// cannot describe). Not called when the subscription starts: fill caches after
    /// [`crate::Bus::subscribe`] returns, and nothing committed after that is missed.
    pub resync: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions")
            .field("changes", &self.changes.len())
            .finish_non_exhaustive()
    }
}

/// The consumer currently delivering to this node.
struct Live {
    messages: async_nats::Subscriber,
    /// The consumer's name, to delete it when it is replaced.
    name: String,
    /// The consumer sequence of the last message received.
    consumer_sequence: u64,
    /// The stream sequence of the last message received (or, before the first, the
    /// stream's last sequence when the consumer was made).
    stream_sequence: u64,
    /// When the consumer was last heard from (a message or a heartbeat).
    heard: Instant,
}

pub(crate) struct SubscriberTask {
    pub client: Client,
    pub js: Context,
    pub node: NodeId,
    pub subscriptions: Subscriptions,
    pub counters: Arc<Counters>,
    pub heartbeat: Duration,
    pub request_timeout: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// Counts reconnections to NATS.
    pub reconnects: watch::Receiver<u64>,
}

async fn next_message(subscriber: &mut async_nats::Subscriber) -> Option<async_nats::Message> {
    std::future::poll_fn(|cx| Pin::new(&mut *subscriber).poll_next(cx)).await
}

/// Runs `f`, logging instead of propagating a panic.
fn guarded(what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!(callback = what, "a bus subscriber callback panicked");
    }
}

/// Whether a delivery with sequences `(consumer, stream)` following `last` shows missed
/// notices. Every message of the stream goes to the consumer (it filters nothing), so both
/// sequences must advance by one; a stream sequence of 0 in `last` means "unknown yet".
fn delivery_gap(last: (u64, u64), delivered: (u64, u64)) -> Option<String> {
    let (last_consumer, last_stream) = last;
    let (consumer, stream) = delivered;
    if consumer != last_consumer.saturating_add(1) {
        Some(format!(
            "consumer sequence {consumer} follows {last_consumer}"
        ))
    } else if last_stream != 0 && stream != last_stream.saturating_add(1) {
        Some(format!(
            "stream sequence {stream} follows {last_stream}: notices left the stream before delivery"
        ))
    } else {
        None
    }
}

/// Whether a heartbeat saying the consumer delivered up to `reported` shows notices this
/// node did not receive (it received up to `received`).
fn heartbeat_gap(received: u64, reported: Option<u64>) -> Option<String> {
    match reported {
        Some(reported) if reported != received => Some(format!(
            "the consumer delivered up to {reported}, this node received up to {received}"
        )),
        _ => None,
    }
}

impl SubscriberTask {
    /// Makes a consumer delivering notices published from now on, and the task that reads
    /// it.
    pub(crate) async fn start(mut self) -> Result<JoinHandle<()>, String> {
        let live = self.start_consumer().await?;
        Ok(tokio::spawn(self.run_from(live)))
    }

    async fn start_consumer(&mut self) -> Result<Live, String> {
        // A reconnection before this consumer exists is covered by it.
        self.reconnects.borrow_and_update();
        let inbox = self.client.new_inbox();
        let messages = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| format!("subscribing to the delivery subject: {e}"))?;
        let config = consumer::Config {
            deliver_subject: Some(inbox),
            description: Some(format!(
                "warden-bus notices for node {}",
                self.node.as_str()
            )),
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::None,
            max_deliver: 1,
            replay_policy: ReplayPolicy::Instant,
            flow_control: true,
            idle_heartbeat: self.heartbeat,
            inactive_threshold: INACTIVE_THRESHOLD,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        };
        let created = tokio::time::timeout(
            self.request_timeout,
            self.js
                .create_consumer_on_stream::<consumer::Config, _>(config, STREAM_NAME),
        )
        .await
        .map_err(|_| "creating the consumer timed out".to_owned())?
        .map_err(|e| format!("creating the consumer: {e}"))?;
        let info = created.cached_info();
        Ok(Live {
            messages,
            name: info.name.clone(),
            consumer_sequence: info.delivered.consumer_sequence,
            stream_sequence: info.delivered.stream_sequence,
            heard: Instant::now(),
        })
    }

    /// Makes a new consumer, retrying with backoff; `None` once the bus closes.
    async fn restart(&mut self) -> Option<Live> {
        let mut backoff = Duration::from_millis(100);
        let mut attempt: u64 = 0;
        loop {
            if *self.shutdown.borrow() || self.shutdown.has_changed().is_err() {
                return None;
            }
            attempt += 1;
            match self.start_consumer().await {
                Ok(live) => return Some(live),
                Err(e) => {
                    if worth_warning(attempt) {
                        tracing::warn!(attempt, error = %e, "restarting the bus consumer failed; retrying");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.changed() => return None,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn delete_consumer(&self, name: String) {
        let js = self.js.clone();
        let timeout = self.request_timeout;
        tokio::spawn(async move {
            let deleted =
                tokio::time::timeout(timeout, js.delete_consumer_from_stream(&name, STREAM_NAME))
                    .await;
            if !matches!(deleted, Ok(Ok(_))) {
                tracing::debug!(consumer = %name, "could not delete a replaced consumer; the server drops it once idle");
            }
        });
    }

    async fn run_from(mut self, mut live: Live) {
        loop {
            let silent = live.heard + self.heartbeat.saturating_mul(3);
            let reason: String = tokio::select! {
                _ = self.shutdown.changed() => break,
                changed = self.reconnects.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    "the connection to NATS was re-established".into()
                }
                message = next_message(&mut live.messages) => match message {
                    None => "the subscription ended".into(),
                    Some(message) => {
                        live.heard = Instant::now();
                        match self.handle(&mut live, message).await {
                            Ok(()) => continue,
                            Err(gap) => gap,
                        }
                    }
                },
                _ = tokio::time::sleep_until(silent.into()) => {
                    "no heartbeat from the consumer".into()
                }
            };
            tracing::warn!(
                reason = %reason,
                "this node may have missed notices: restarting the bus consumer and reloading every cache"
            );
            self.delete_consumer(std::mem::take(&mut live.name));
            live = match self.restart().await {
                Some(new) => new,
                None => return,
            };
            bump(&self.counters.resyncs);
            guarded("resync", || (self.subscriptions.resync)());
        }
        self.delete_consumer(live.name);
    }

    /// Handles one message from the consumer; `Err` with the reason when it shows that
    /// messages were missed.
    async fn handle(&self, live: &mut Live, message: async_nats::Message) -> Result<(), String> {
        match message.status {
            None => {}
            Some(StatusCode::IDLE_HEARTBEAT) => {
                // Flow control (and a stalled consumer's heartbeat) asks for an empty reply.
                if let Some(reply) = message.reply.clone() {
                    if let Err(e) = self.client.publish(reply, Default::default()).await {
                        tracing::debug!(error = %e, "answering flow control failed");
                    }
                }
                let last = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_LAST_CONSUMER))
                    .and_then(|v| v.as_str().parse::<u64>().ok());
                return heartbeat_gap(live.consumer_sequence, last).map_or(Ok(()), Err);
            }
            Some(status) => {
                tracing::debug!(%status, "status message from the consumer");
                return Ok(());
            }
        }
        let (consumer_sequence, stream_sequence) = {
            let js_message = async_nats::jetstream::Message {
                message,
                context: self.js.clone(),
            };
            let info = match js_message.info() {
                Ok(info) => (info.consumer_sequence, info.stream_sequence),
                Err(e) => {
                    return Err(format!("a delivered message has no sequence: {e}"));
                }
            };
            self.apply(&js_message.message);
            info
        };
        let gap = delivery_gap(
            (live.consumer_sequence, live.stream_sequence),
            (consumer_sequence, stream_sequence),
        );
        live.consumer_sequence = consumer_sequence;
        live.stream_sequence = stream_sequence;
        gap.map_or(Ok(()), Err)
    }

    /// Decodes one notice and tells the subscriptions.
    fn apply(&self, message: &async_nats::Message) {
        let notice = match wire::decode(message.subject.as_str(), &message.payload) {
            Ok(notice) => notice,
            Err(e) => {
                let n = bump(&self.counters.skipped);
                if worth_warning(n) {
                    tracing::warn!(
                        subject = %message.subject.as_str().chars().take(200).collect::<String>(),
                        error = %e,
                        skipped = n,
                        "skipped a notice this node cannot read"
                    );
                }
                return;
            }
        };
        let origin = match &notice {
            Notice::Change { origin, .. }
            | Notice::Resync { origin, .. }
            | Notice::Identity { origin, .. } => origin,
        };
        if *origin == self.node {
            bump(&self.counters.own_skipped);
            return;
        }
        bump(&self.counters.received);
        match notice {
            Notice::Change { event, .. } => {
                for observer in &self.subscriptions.changes {
                    guarded("change", || observer.on_change(&event));
                }
            }
            Notice::Identity { generation, .. } => {
                guarded("identity", || (self.subscriptions.identity)(generation));
            }
            Notice::Resync { origin, reason } => {
                tracing::info!(from = %origin.as_str(), reason = %reason, "reloading every cache, as another node asked");
                bump(&self.counters.resyncs);
                guarded("resync", || (self.subscriptions.resync)());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_deliveries_show_no_gap() {
        assert_eq!(delivery_gap((0, 0), (1, 17)), None);
        assert_eq!(delivery_gap((0, 16), (1, 17)), None);
        assert_eq!(delivery_gap((1, 17), (2, 18)), None);
    }

    #[test]
    fn a_skipped_sequence_is_a_gap() {
        // The consumer sent a message this node never received.
        assert!(delivery_gap((1, 17), (3, 19)).is_some());
        // A restart of the server-side consumer starts its numbering again.
        assert!(delivery_gap((5, 17), (1, 18)).is_some());
        // The consumer went on, but the stream lost a notice before it was delivered.
        assert!(delivery_gap((1, 17), (2, 19)).is_some());
        assert!(delivery_gap((0, 16), (1, 18)).is_some());
    }

    #[test]
    fn a_heartbeat_reporting_more_than_received_is_a_gap() {
        assert_eq!(heartbeat_gap(4, Some(4)), None);
        assert_eq!(heartbeat_gap(4, None), None);
        assert!(heartbeat_gap(4, Some(6)).is_some());
        assert!(heartbeat_gap(4, Some(0)).is_some());
    }
}

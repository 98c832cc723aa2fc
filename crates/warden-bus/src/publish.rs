//! Publishing: a bounded queue filled by the control plane's synchronous observer calls and
//! emptied by one task that publishes each notice with a JetStream acknowledgement.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::context::Publish;
use async_nats::jetstream::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use warden_types::change::{ChangeEvent, ChangeObserver};
use warden_types::NodeId;

use crate::wire::{self, Encoded};
use crate::BusOptions;

/// The longest pause between two attempts to publish one notice.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The first pause after a failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// What the bus counts; read through [`crate::Bus::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub publish_retries: AtomicU64,
    pub dropped: AtomicU64,
    pub received: AtomicU64,
    pub own_skipped: AtomicU64,
    pub skipped: AtomicU64,
    pub resyncs: AtomicU64,
}

/// Adds one to `counter` and returns the new count.
pub(crate) fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed).saturating_add(1)
}

/// Whether the `n`th occurrence of something repeated deserves a warning: the first few,
/// then ever more rarely, so that a flood cannot flood the log.
pub(crate) fn worth_warning(n: u64) -> bool {
    n <= 8 || n.is_power_of_two()
}

/// One notice waiting to be published.
struct Outgoing {
    encoded: Encoded,
    /// `Nats-Msg-Id`: the same for every attempt, so the stream stores it once.
    msg_id: String,
}

/// The message id of the next notice this process publishes:
/// `<node>-<incarnation>-<sequence>`. The sequence counts the notices of this process; the
/// incarnation (the process's start, in microseconds since the epoch, in hex) keeps a node
/// restarted within the stream's duplicate window from reusing its previous life's ids,
/// which the stream would discard as duplicates.
fn next_msg_id(node: &NodeId) -> String {
    static INCARNATION: OnceLock<u128> = OnceLock::new();
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let incarnation = INCARNATION.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
    });
    let sequence = bump(&SEQUENCE);
    format!("{}-{incarnation:x}-{sequence}", node.as_str())
}

struct Shared {
    node: NodeId,
    queue: mpsc::Sender<Outgoing>,
    /// Set when a notice was lost (queue full): the task then publishes a notice asking
    /// every node to reload everything, which covers whatever was lost.
    lost: AtomicBool,
    counters: Arc<Counters>,
}

/// Publishes this node's committed changes and identity generations on the bus.
///
/// Register it with the control plane as a [`ChangeObserver`]. Every call only encodes
/// the notice and pushes it into a bounded queue, so it never blocks; a task publishes
/// the queue in order, each notice with a JetStream acknowledgement, retrying with
/// backoff for as long as the bus is open (a retried notice keeps its `Nats-Msg-Id`, so
/// the stream stores it once).
///
/// If the queue is full (NATS unreachable for long, or a burst larger than the queue),
/// the notice is dropped, counted in [`crate::BusStats::dropped`] and logged. A dropped
/// notice leaves the other nodes' caches stale, but only until the queue has room again:
/// the task then publishes a notice that makes every other node drop all its caches.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("node", &self.shared.node)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Announces a new identity generation (the identity snapshot changed; generations
    /// only grow). Never blocks; dropped and counted like a change if the queue is full.
    pub fn publish_identity_generation(&self, generation: u64) {
        match wire::encode_identity(&self.shared.node, generation, warden_types::now_millis()) {
            Ok(encoded) => self.enqueue(encoded),
            Err(e) => self.lose(&e.to_string()),
        }
    }

    fn enqueue(&self, encoded: Encoded) {
        let outgoing = Outgoing {
            msg_id: next_msg_id(&self.shared.node),
            encoded,
        };
        match self.shared.queue.try_send(outgoing) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lose("the publish queue is full");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                let n = bump(&self.shared.counters.dropped);
                if worth_warning(n) {
                    tracing::warn!(dropped = n, "dropped a notice: the bus is closed");
                }
            }
        }
    }

    fn lose(&self, why: &str) {
        self.shared.lost.store(true, Ordering::SeqCst);
        let n = bump(&self.shared.counters.dropped);
        if worth_warning(n) {
            tracing::warn!(
                dropped = n,
                reason = why,
                "dropped a change notice: other nodes keep stale caches until this node can tell them to reload everything"
            );
        }
    }
}

impl ChangeObserver for Publisher {
    fn on_change(&self, event: &ChangeEvent) {
        match wire::encode_change(&self.shared.node, event) {
            Ok(encoded) => self.enqueue(encoded),
            Err(e) => self.lose(&e.to_string()),
        }
    }
}

/// Starts the publishing task.
pub(crate) fn spawn(
    js: Context,
    node: NodeId,
    options: &BusOptions,
    counters: Arc<Counters>,
    shutdown: watch::Receiver<bool>,
) -> (Publisher, JoinHandle<()>) {
    let (queue, receiver) = mpsc::channel(options.queue_capacity.max(1));
    let shared = Arc::new(Shared {
        node,
        queue,
        lost: AtomicBool::new(false),
        counters,
    });
    let task = PublishTask {
        js,
        receiver,
        shared: shared.clone(),
        shutdown,
        closing: None,
        publish_timeout: options.publish_timeout,
        close_timeout: options.close_timeout,
    };
    (Publisher { shared }, tokio::spawn(task.run()))
}

struct PublishTask {
    js: Context,
    receiver: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    /// Once the bus is closing: when to give up on what is left.
    closing: Option<Instant>,
    publish_timeout: Duration,
    close_timeout: Duration,
}

impl PublishTask {
    async fn run(mut self) {
        loop {
            let next = if self.closing.is_some() {
                self.receiver.recv().await
            } else {
                tokio::select! {
                    next = self.receiver.recv() => next,
                    _ = self.shutdown.changed() => {
                        self.begin_closing();
                        continue;
                    }
                }
            };
            let Some(outgoing) = next else { break };
            if !self.publish(&outgoing).await {
                self.give_up(1);
                return;
            }
            if self.shared.lost.swap(false, Ordering::SeqCst) {
                let resync = wire::encode_resync_all(&self.shared.node, warden_types::now_millis());
                match resync {
                    Ok(encoded) => {
                        let outgoing = Outgoing {
                            msg_id: next_msg_id(&self.shared.node),
                            encoded,
                        };
                        tracing::info!(
                            "telling every node to reload everything, after dropped notices"
                        );
                        if !self.publish(&outgoing).await {
                            self.give_up(1);
                            return;
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not encode a resync notice"),
                }
            }
        }
    }

    /// The bus is closing: publish what is queued until `close_timeout`, accept nothing
    /// new.
    fn begin_closing(&mut self) {
        if self.closing.is_none() {
            self.closing = Some(Instant::now() + self.close_timeout);
            self.receiver.close();
        }
    }

    /// Counts `n` notices being given up and everything still queued as dropped.
    fn give_up(&mut self, n: u64) {
        let mut lost = n;
        while self.receiver.try_recv().is_ok() {
            lost += 1;
        }
        self.shared
            .counters
            .dropped
            .fetch_add(lost, Ordering::Relaxed);
        tracing::warn!(
            dropped = lost,
            "the bus closed before these notices could be published"
        );
    }

    /// Publishes one notice, retrying until it is acknowledged. `false` once the bus is
    /// closing and its deadline passed.
    async fn publish(&mut self, outgoing: &Outgoing) -> bool {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            let limit = match self.closing {
                Some(deadline) => deadline
                    .saturating_duration_since(Instant::now())
                    .min(self.publish_timeout),
                None => self.publish_timeout,
            };
            let js = &self.js;
            let send = async {
                let publish = Publish::build()
                    .payload(outgoing.encoded.payload.clone().into())
                    .message_id(&outgoing.msg_id);
                let ack = js
                    .send_publish(outgoing.encoded.subject.clone(), publish)
                    .await
                    .map_err(|e| e.to_string())?;
                ack.await.map_err(|e| e.to_string())
            };
            let failure = match tokio::time::timeout(limit, send).await {
                Ok(Ok(ack)) => {
                    bump(&self.shared.counters.published);
                    if ack.duplicate {
                        tracing::debug!(
                            msg_id = %outgoing.msg_id,
                            "the stream already held this notice (an earlier attempt reached it)"
                        );
                    }
                    return true;
                }
                Ok(Err(e)) => e,
                Err(_) => format!("no acknowledgement within {limit:?}"),
            };
            bump(&self.shared.counters.publish_retries);
            if worth_warning(attempt) {
                tracing::warn!(
                    subject = %outgoing.encoded.subject,
                    attempt,
                    error = %failure,
                    "publishing a notice failed; retrying"
                );
            }
            let pause = match self.closing {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    backoff.min(left)
                }
                None => backoff,
            };
            if self.closing.is_none() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = self.shutdown.changed() => self.begin_closing(),
                }
            } else {
                tokio::time::sleep(pause).await;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_unique_and_name_the_node() {
        let node = NodeId::new("node-1").unwrap();
        let a = next_msg_id(&node);
        let b = next_msg_id(&node);
        assert_ne!(a, b);
        assert!(a.starts_with("node-1-"), "{a}");
        // The same incarnation, the next sequence.
        let (a_prefix, a_seq) = a.rsplit_once('-').unwrap();
        let (b_prefix, b_seq) = b.rsplit_once('-').unwrap();
        assert_eq!(a_prefix, b_prefix);
        assert!(b_seq.parse::<u64>().unwrap() > a_seq.parse::<u64>().unwrap());
    }

    #[test]
    fn warnings_thin_out() {
        let warned = (1..=1000).filter(|n| worth_warning(*n)).count();
        assert!(warned < 20, "{warned}");
        assert!(worth_warning(1) && worth_warning(1024) && !worth_warning(1000));
    }
}

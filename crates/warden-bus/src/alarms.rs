//! A cluster's alarm notifications, as a JetStream work queue.
//!
//! When an alarm changes state, the node that noticed (the minute's evaluator, or the node
//! a `SetAlarmState` reached) publishes one notification to the stream [`ALARM_STREAM`]
//! on `warden.alarms.<account>.<STATE>` and records the new state only once the stream
//! acknowledged it. Every node pulls notifications from one durable consumer all nodes
//! share ([`ALARM_CONSUMER`]) and runs the alarm's actions (publishes to SNS topics,
//! queues function invocations); the message is acknowledged once they ran.
//!
//! The payload is opaque here: the caller seals it (so a message someone else published
//! on the subjects is refused by the handler, which says so with
//! [`Outcome::Refused`]), and this module only moves it.
//!
//! # Guarantees
//!
//! - **Acknowledged before recorded.** [`AlarmNotices::publish`] returns only once the
//!   stream stored the message (file storage). A node that dies before that leaves the
//!   state change unrecorded, so it is found again; one that dies after leaves a durable
//!   notification.
//! - **At least once.** A message stays in the stream until a node acknowledges it. A node
//!   that dies while running the actions leaves the message unacknowledged; JetStream hands
//!   it to another node after the acknowledgement wait (the holder says "in progress"
//!   every third of it while its handler runs). Actions may then run twice, as
//!   CloudWatch's notifications may arrive twice.
//! - **One node at a time.** Each node asks for one message at a time and takes the next
//!   only after the last is settled, so no message waits unhandled on a busy node while
//!   its acknowledgement wait runs out.
//! - **Never dropped by the stream.** The stream refuses new messages once it holds
//!   [`AlarmOptions::max_bytes`] instead of discarding old ones: the publish fails, the
//!   state change stays unrecorded and is tried again at the next evaluation.
//!
//! Anyone who may subscribe to `warden.alarms.>` sees each notification as it is
//! published (plain NATS subscribers receive every publish), sealed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::context::Publish;
use async_nats::jetstream::{AckKind, Context, Message};
use tokio::task::JoinHandle;

use crate::BusError;

/// The stream alarm notifications are queued in.
pub const ALARM_STREAM: &str = "WARDEN_ALARMS";
/// The durable consumer every node pulls notifications from.
pub const ALARM_CONSUMER: &str = "warden-alarm-actions";
/// Subjects of notifications: `warden.alarms.<account>.<STATE>`.
pub const ALARM_SUBJECTS: &str = "warden.alarms.>";
const SUBJECT_PREFIX: &str = "warden.alarms.";
/// The largest notification the stream takes.
pub const MAX_ALARM_NOTICE_BYTES: usize = 256 * 1024;
/// The longest token of a notification's subject.
const MAX_TOKEN: usize = 64;

/// Settings of [`AlarmNotices`]; the defaults suit production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmOptions {
    /// How long JetStream waits for news of a notification a node took before handing it
    /// to another node; the holder says "in progress" every third of it (default 30 s).
    pub ack_wait: Duration,
    /// Bytes the stream holds before it refuses new notifications (default 64 MiB).
    pub max_bytes: i64,
    /// Replicas of the stream when this node creates it (default 1).
    pub replicas: usize,
}

impl Default for AlarmOptions {
    fn default() -> Self {
        AlarmOptions {
            ack_wait: Duration::from_secs(30),
            max_bytes: 64 * 1024 * 1024,
            replicas: 1,
        }
    }
}

/// What a handler made of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its actions ran (or failed for good, which the handler recorded): acknowledge it.
    Done,
    /// It is not a notification of this cluster (it does not open, or names another
    /// account): terminate it, with why, so that it is never handed out again.
    Refused(String),
}

/// A notification as a node receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Its subject, `warden.alarms.<account>.<STATE>`.
    pub subject: String,
    /// What was published: sealed by the publisher.
    pub payload: Vec<u8>,
}

/// Runs the actions of one notification.
pub type Handler = Arc<
    dyn Fn(Notice) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>
        + Send
        + Sync,
>;

/// What the notices have done so far, on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmStats {
    /// Notifications this node published.
    pub published: u64,
    /// Notifications this node's handler settled as done.
    pub handled: u64,
    /// Messages terminated because the handler refused them.
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    handled: AtomicU64,
    refused: AtomicU64,
}

/// The cluster's alarm notifications on JetStream; cheap to clone. See the module
/// documentation.
#[derive(Clone)]
pub struct AlarmNotices {
    js: Context,
    consumer: PullConsumer,
    options: AlarmOptions,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for AlarmNotices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlarmNotices")
            .field("stream", &ALARM_STREAM)
            .finish_non_exhaustive()
    }
}

/// Stops a node's handling of notifications when dropped; a notification being handled
/// then is handed to another node after the acknowledgement wait.
#[derive(Debug)]
pub struct Consuming(JoinHandle<()>);

impl Drop for Consuming {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl AlarmNotices {
    /// Creates (or checks) the stream and the shared consumer on `js`.
    pub async fn open(js: &Context, options: AlarmOptions) -> Result<AlarmNotices, BusError> {
        let stream = ensure_stream(js, &options).await?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                ALARM_CONSUMER,
                pull::Config {
                    durable_name: Some(ALARM_CONSUMER.to_owned()),
                    description: Some("Warden nodes running alarm actions".to_owned()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: options.ack_wait,
                    max_deliver: -1,
                    filter_subject: ALARM_SUBJECTS.to_owned(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BusError::Stream(format!("the consumer {ALARM_CONSUMER}: {e}")))?;
        Ok(AlarmNotices {
            js: js.clone(),
            consumer,
            options,
            counters: Arc::new(Counters::default()),
        })
    }

    /// Publishes one notification of `account`'s alarm entering `state`, and returns once
    /// the stream stored it. `id` names the change: a publish repeated under the same id
    /// within the stream's duplicate window is stored once.
    pub async fn publish(
        &self,
        account: &str,
        state: &str,
        id: &str,
        payload: Vec<u8>,
    ) -> Result<(), BusError> {
        if !is_token(account) || !is_token(state) {
            return Err(BusError::Publish(format!(
                "an alarm notification's subject needs an account and a state of 1-{MAX_TOKEN} letters, digits, '_' or '-'"
            )));
        }
        if payload.len() > MAX_ALARM_NOTICE_BYTES {
            return Err(BusError::Publish(format!(
                "an alarm notification of {} bytes is larger than the {MAX_ALARM_NOTICE_BYTES} the stream takes",
                payload.len()
            )));
        }
        let publish = Publish::build().payload(payload.into()).message_id(id);
        let subject = format!("{SUBJECT_PREFIX}{account}.{state}");
        self.js
            .send_publish(subject, publish)
            .await
            .map_err(|e| BusError::Publish(format!("{ALARM_STREAM}: {e}")))?
            .await
            .map_err(|e| BusError::Publish(format!("{ALARM_STREAM}: {e}")))?;
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Starts handling the cluster's notifications on this node, one at a time, until the
    /// returned guard is dropped. Must be called within a Tokio runtime.
    pub fn consume(&self, handler: Handler) -> Consuming {
        Consuming(tokio::spawn(consume(self.clone(), handler)))
    }

    /// What the notices have done so far, on this node.
    pub fn stats(&self) -> AlarmStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AlarmStats {
            published: get(&self.counters.published),
            handled: get(&self.counters.handled),
            refused: get(&self.counters.refused),
        }
    }

    /// Handles one message and settles it.
    async fn handle(&self, handler: &Handler, message: Message) {
        let notice = Notice {
            subject: message.subject.to_string(),
            payload: message.payload.to_vec(),
        };
        let outcome = {
            let running = handler(notice);
            tokio::pin!(running);
            let mut progress =
                tokio::time::interval((self.options.ack_wait / 3).max(Duration::from_millis(100)));
            progress.tick().await;
            loop {
                tokio::select! {
                    outcome = &mut running => break outcome,
                    _ = progress.tick() => {
                        if let Err(e) = message.ack_with(AckKind::Progress).await {
                            tracing::warn!(error = %e, "could not extend the hold on an alarm notification");
                        }
                    }
                }
            }
        };
        let settled = match outcome {
            Outcome::Done => {
                self.counters.handled.fetch_add(1, Ordering::Relaxed);
                message.double_ack().await
            }
            Outcome::Refused(why) => {
                tracing::warn!(subject = %message.subject, reason = %why, "terminating a message on the alarm notification subjects that is not this cluster's notification");
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                message.ack_with(AckKind::Term).await
            }
        };
        if let Err(e) = settled {
            // Unsettled, it is handed out again after the acknowledgement wait.
            tracing::warn!(error = %e, "could not settle an alarm notification");
        }
    }
}

/// How long one pull for the next notification waits on the server.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

async fn consume(notices: AlarmNotices, handler: Handler) {
    loop {
        let batch = notices
            .consumer
            .batch()
            .max_messages(1)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "could not ask for alarm notifications; asking again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(next) = crate::queue::next_message(&mut batch).await {
            match next {
                Ok(message) => notices.handle(&handler, message).await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not receive an alarm notification; asking again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// Creates the work-queue stream, or checks that an existing one of its name is one.
async fn ensure_stream(
    js: &Context,
    options: &AlarmOptions,
) -> Result<async_nats::jetstream::stream::Stream, BusError> {
    crate::stream::ensure_work_queue(
        js,
        crate::stream::WorkQueue {
            name: ALARM_STREAM,
            description: "Warden alarm notifications, one message per change of state",
            subjects: ALARM_SUBJECTS,
            max_bytes: options.max_bytes,
            max_message_size: MAX_ALARM_NOTICE_BYTES,
            replicas: options.replicas,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens_are_plain_words() {
        assert!(is_token("123456789012"));
        assert!(is_token("INSUFFICIENT_DATA"));
        for bad in ["", "a.b", "a b", "*", ">", "a\r\nb", &"x".repeat(65)] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }
}

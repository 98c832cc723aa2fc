//! Warden's security log: the platform's security-relevant events (authentication
//! failures, access denials, input validation rejects, sandbox kills) written as JSON lines
//! to the log group [`SECURITY_LOG_GROUP`], one stream per day, where CloudWatch Logs'
//! operations, filter patterns and Insights read them like any other group.
//!
//! Events carry who and why (the principal, the error code and message the caller was
//! given, the function, the source address), never a secret or a payload: callers pass
//! only what was already shown to the client or is configuration.
//!
//! Recording never waits and never fails the request that caused it: events go through a
//! bounded queue ([`QUEUE_EVENTS`]) to a writer thread that stores them in batches; when a
//! flood fills the queue, further events are counted and the count is written as one line
//! once there is room again, so the log says how much it missed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use warden_store::{LogGroup, LogStore};

/// The log group security events go to.
pub const SECURITY_LOG_GROUP: &str = "/aws/warden/security";
/// Events waiting for the writer at most; beyond, they are counted and dropped.
pub const QUEUE_EVENTS: usize = 10_000;
/// How long the writer gathers a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// Events written per batch at most.
const BATCH_MAX: usize = 1_000;

/// The queue into the security log. Cheap to clone; every clone feeds one writer.
#[derive(Clone)]
pub struct SecurityLog {
    tx: SyncSender<(i64, String)>,
    dropped: Arc<AtomicU64>,
}

impl SecurityLog {
    /// Starts the writer thread over `store`.
    pub fn start(store: Arc<dyn LogStore>) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE_EVENTS);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        let spawned = std::thread::Builder::new()
            .name("security-log".into())
            .spawn(move || write_loop(rx, store, counted));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the security log writer; security events will not be logged");
        }
        Self { tx, dropped }
    }

    /// Queues one event (a JSON object: `event` names its kind), stamped now. Never
    /// waits.
    pub fn record(&self, event: serde_json::Value) {
        let line = event.to_string();
        match self.tx.try_send((warden_types::now_millis(), line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_loop(rx: Receiver<(i64, String)>, store: Arc<dyn LogStore>, dropped: Arc<AtomicU64>) {
    let group = LogGroup::Custom(SECURITY_LOG_GROUP.to_owned());
    let mut reported = 0u64;
    loop {
        let first = match rx.recv() {
            Ok(e) => e,
            Err(_) => return,
        };
        let mut batch = vec![first];
        let deadline = std::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < BATCH_MAX {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(e) => batch.push(e),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let total = dropped.load(Ordering::Relaxed);
        if total > reported {
            let now = warden_types::now_millis();
            batch.push((
                now,
                serde_json::json!({
                    "event": "SecurityLogDropped",
                    "reason": format!("{} events were dropped while the security log's queue was full", total - reported),
                })
                .to_string(),
            ));
            reported = total;
        }
        write(store.as_ref(), &group, batch);
    }
}

/// Stores a batch in the day's stream, making the group again if someone deleted it.
fn write(store: &dyn LogStore, group: &LogGroup, mut batch: Vec<(i64, String)>) {
    let now = warden_types::now_millis();
    batch.sort_by_key(|e| e.0);
    // One stream per day (`2026/12/04`); a batch spanning midnight goes to the day it ends.
    let stream = warden_types::iso_timestamp(now)[..10].replace('-', "/");
    let stored = store
        .create_log_group(group, now)
        .and_then(|_| store.append_events(group, &stream, &batch, now));
    if let Err(e) = stored {
        tracing::error!(error = %e, events = batch.len(), "could not write the security log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_store::{Cursor, EventRange, Scan};

    #[test]
    fn events_land_in_the_security_group_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn warden_store::Store> =
            Arc::new(warden_store::sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap());
        let log = SecurityLog::start(Arc::clone(&store) as Arc<dyn LogStore>);
        log.record(
            serde_json::json!({"event": "AccessDenied", "principal": "arn:aws:iam::1:user/u"}),
        );
        log.record(
            serde_json::json!({"event": "SandboxKill", "function": "f", "reason": "timeout"}),
        );
        let group = LogGroup::Custom(SECURITY_LOG_GROUP.into());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut seen = Vec::new();
            store
                .scan_events(
                    &EventRange {
                        group: &group,
                        stream: None,
                        start_ms: None,
                        end_ms: None,
                        cursor: Cursor::After(0),
                    },
                    &mut |e| {
                        seen.push(e.message.to_owned());
                        Scan::Continue
                    },
                )
                .unwrap();
            if seen.len() == 2 {
                let kinds: Vec<String> = seen
                    .iter()
                    .map(|m| {
                        serde_json::from_str::<serde_json::Value>(m).unwrap()["event"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    })
                    .collect();
                assert_eq!(kinds, ["AccessDenied", "SandboxKill"]);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{seen:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(store.log_group(&group).unwrap().is_some());
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn a_full_queue_counts_what_it_drops() {
        // A writer that never drains: the sender outlives a receiver held here.
        let (tx, _rx) = mpsc::sync_channel(2);
        let log = SecurityLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        for _ in 0..5 {
            log.record(serde_json::json!({"event": "AccessDenied"}));
        }
        assert_eq!(log.dropped(), 3);
    }
}

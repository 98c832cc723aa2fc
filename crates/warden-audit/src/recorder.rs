//! Group commit: how "acknowledged only once durable" and "batching off the request path"
//! hold together.
//!
//! One writer thread owns the [`AuditLog`]. A caller serialises its event on its own thread,
//! queues it, and waits on a one-shot channel. The writer takes whatever has queued up (up
//! to [`RecorderConfig::max_batch`]) and commits it in one transaction, one fsync, then
//! answers each caller with its sequence number. While one batch syncs the next one
//! gathers, so N concurrent callers share one fsync instead of paying N. The queue is
//! bounded ([`RecorderConfig::queue`]): when the disk falls behind, callers wait rather
//! than memory growing.
//!
//! A caller whose batch fails to commit gets an error, never a sequence number, so an API
//! call is acknowledged only if its event is on disk. A digest is published on demand
//! ([`Recorder::publish_digest`]) and every [`RecorderConfig::digest_every`] by a ticker
//! thread, which also exports it and hands it to the witness, so that neither a slow disk
//! directory nor a slow witness ever holds up the writer.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::digest::{export_to_dir, send_to_witness, Digest, Signer};
use crate::error::Error;
use crate::event::{CloudTrailEvent, EncodedEvent};
use crate::log::AuditLog;

/// How the recorder batches and publishes.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// The most events one transaction commits.
    pub max_batch: usize,
    /// How many requests may wait for the writer before callers block.
    pub queue: usize,
    /// How often a digest is published; `None` for on demand only.
    pub digest_every: Option<Duration>,
    /// Where periodic digests are exported, as [`export_to_dir`] does.
    pub export_dir: Option<PathBuf>,
    /// The witness command each periodic digest is handed to, as [`send_to_witness`].
    pub witness: Option<Vec<String>>,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            max_batch: 1024,
            queue: 8192,
            digest_every: Some(Duration::from_secs(3600)),
            export_dir: None,
            witness: None,
        }
    }
}

enum Command {
    Record(Box<EncodedEvent>, oneshot::Sender<Result<u64, Error>>),
    Publish(oneshot::Sender<Result<Digest, Error>>),
}

/// The group-committing front of an [`AuditLog`]; share it behind an `Arc`.
#[derive(Debug)]
pub struct Recorder {
    tx: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Record(..) => "Record",
            Command::Publish(_) => "Publish",
        })
    }
}

/// A queued event's acknowledgement: [`Pending::durable`] resolves with its sequence number
/// once its batch is committed.
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<u64, Error>>);

impl Pending {
    /// Waits until the event is on disk.
    pub async fn durable(self) -> Result<u64, Error> {
        self.0.await.map_err(|_| Error::RecorderStopped)?
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

impl Recorder {
    /// Starts the writer thread over `log` (and the digest ticker, if configured).
    pub fn start(
        log: AuditLog,
        signer: Arc<dyn Signer>,
        config: RecorderConfig,
    ) -> Result<Self, Error> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let max_batch = config.max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(log, signer.as_ref(), rx, max_batch))
            .map_err(Error::SpawnWriter)?;
        if let Some(every) = config.digest_every {
            // The ticker holds only a weak sender, so it never keeps the writer alive; it
            // notices the shutdown at its next tick.
            let weak = tx.downgrade();
            let export_dir = config.export_dir.clone();
            let witness = config.witness.clone();
            std::thread::Builder::new()
                .name("audit-digests".into())
                .spawn(move || loop {
                    std::thread::sleep(every);
                    let Some(tx) = weak.upgrade() else { break };
                    match publish_blocking(&tx) {
                        Ok(d) => publish_out(&d, export_dir.as_deref(), witness.as_deref()),
                        Err(Error::RecorderStopped) => break,
                        Err(e) => tracing::error!(error = %e, "periodic audit digest failed"),
                    }
                })
                .map_err(Error::SpawnWriter)?;
        }
        Ok(Recorder {
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    fn sender(&self) -> Result<&mpsc::Sender<Command>, Error> {
        self.tx.as_ref().ok_or(Error::RecorderStopped)
    }

    /// Records `event` and returns its sequence number once it is on disk. Blocks; must not
    /// be called from inside an async runtime (use [`Recorder::record_async`]).
    pub fn record(&self, event: &CloudTrailEvent) -> Result<u64, Error> {
        self.record_encoded(EncodedEvent::new(event)?)
    }

    /// [`Recorder::record`] for an already encoded event.
    pub fn record_encoded(&self, event: EncodedEvent) -> Result<u64, Error> {
        let (ack, done) = oneshot::channel();
        self.sender()?
            .blocking_send(Command::Record(Box::new(event), ack))
            .map_err(|_| Error::RecorderStopped)?;
        done.blocking_recv().map_err(|_| Error::RecorderStopped)?
    }

    /// Records `event`; the future resolves with its sequence number once it is on disk.
    /// The serialisation happens before the first await, on the caller's thread.
    pub async fn record_async(&self, event: &CloudTrailEvent) -> Result<u64, Error> {
        let encoded = EncodedEvent::new(event)?;
        self.record_encoded_async(encoded).await
    }

    /// [`Recorder::record_async`] for an already encoded event.
    pub async fn record_encoded_async(&self, event: EncodedEvent) -> Result<u64, Error> {
        self.submit(event).await?.durable().await
    }

    /// Queues `event` (waiting only while the queue is full) and returns what resolves once
    /// it is on disk. A caller that need not wait for the disk drops the [`Pending`]: the
    /// event is committed all the same.
    pub async fn submit(&self, event: EncodedEvent) -> Result<Pending, Error> {
        let (ack, done) = oneshot::channel();
        self.sender()?
            .send(Command::Record(Box::new(event), ack))
            .await
            .map_err(|_| Error::RecorderStopped)?;
        Ok(Pending(done))
    }

    /// Publishes a digest of everything recorded so far (after every event already
    /// acknowledged). Blocks, as [`Recorder::record`].
    pub fn publish_digest(&self) -> Result<Digest, Error> {
        publish_blocking(self.sender()?)
    }

    /// [`Recorder::publish_digest`] for async callers.
    pub async fn publish_digest_async(&self) -> Result<Digest, Error> {
        let (ack, done) = oneshot::channel();
        self.sender()?
            .send(Command::Publish(ack))
            .await
            .map_err(|_| Error::RecorderStopped)?;
        done.await.map_err(|_| Error::RecorderStopped)?
    }

    /// Stops taking events, lets the writer commit everything queued, and waits for it.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the audit writer thread panicked");
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

fn publish_blocking(tx: &mpsc::Sender<Command>) -> Result<Digest, Error> {
    let (ack, done) = oneshot::channel();
    tx.blocking_send(Command::Publish(ack))
        .map_err(|_| Error::RecorderStopped)?;
    done.blocking_recv().map_err(|_| Error::RecorderStopped)?
}

/// Exports a periodic digest and hands it to the witness; failures are logged, since the
/// digest itself is already stored and the next export retries every digest it lacks.
fn publish_out(digest: &Digest, dir: Option<&std::path::Path>, witness: Option<&[String]>) {
    if let Some(dir) = dir {
        if let Err(e) = export_to_dir(std::slice::from_ref(digest), dir) {
            tracing::error!(error = %e, "exporting an audit digest failed");
        }
    }
    if let Some(command) = witness {
        if let Err(e) = send_to_witness(command, digest) {
            tracing::error!(error = %e, "the audit witness did not take a digest");
        }
    }
}

fn write_loop(
    mut log: AuditLog,
    signer: &dyn Signer,
    mut rx: mpsc::Receiver<Command>,
    max_batch: usize,
) {
    let mut events = Vec::with_capacity(max_batch);
    let mut acks = Vec::with_capacity(max_batch);
    let mut publishes = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Record(event, ack) => {
                    events.push(*event);
                    acks.push(ack);
                }
                Command::Publish(ack) => publishes.push(ack),
            }
            if events.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        if !events.is_empty() {
            match log.append_batch(&events) {
                Ok(seqs) => {
                    for (ack, seq) in acks.drain(..).zip(seqs) {
                        // A caller that stopped waiting still has its event recorded.
                        let _ = ack.send(Ok(seq));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, events = events.len(), "audit batch not committed");
                    let reason = e.to_string();
                    for ack in acks.drain(..) {
                        let _ = ack.send(Err(Error::BatchFailed {
                            reason: reason.clone(),
                        }));
                    }
                }
            }
            events.clear();
        }
        // INVARIANT: a digest is published after the batch it arrived with, so it covers
        // every event acknowledged before it was asked for.
        for ack in publishes.drain(..) {
            let _ = ack.send(log.publish_digest(signer, now_ms()));
        }
    }
}

#[cfg(test)]
mod tests;

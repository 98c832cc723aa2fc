//! Per-invocation logs with Lambda's framing (`START`, the instance's output, `END`,
//! `REPORT`), written to the store in batches off the invoke path, and kept within bounds.
//!
//! An instance's stdout and stderr are pipes. A reader task turns them into lines tagged
//! with the request id the instance is working on. When an invocation completes, the
//! engine drains whatever the pipes still hold before writing `END`, so output printed
//! before the response was posted is always framed inside its invocation.
//!
//! # Bounds
//!
//! Function output is **back-pressured**, as on Lambda: a reader task reads its pipe only
//! while the function is within its log rate ([`LogLimits::rate_bytes_per_second`], all
//! instances of a function sharing one token bucket holding one second's worth) and while
//! fewer than [`QUEUE_BYTES`] wait for the writer thread. Otherwise it stops reading, the
//! pipe fills and the function blocks in `write()`. Nothing is lost that way, and a noisy
//! function costs the server neither memory nor CPU, only itself time.
//!
//! The one place that cannot wait is the end of an invocation, when the engine frames
//! `END` now: what the pipes still hold is logged if the function may go at most one
//! second's worth into debt for it (and the queue has room), and otherwise dropped,
//! counted, and replaced by one platform line, `[truncated] N lines (B bytes) of function
//! output were dropped: ...`, which also goes to the server's own log. Platform lines
//! (`START`, `END`, `REPORT`, markers) never wait: they have [`PLATFORM_RESERVE_BYTES`] of
//! room beyond the queue, and past that they are dropped and counted in the server log.
//!
//! Disk use is bounded by a pruner thread that applies [`LogLimits::retention`] through
//! [`warden_store::LogStore::prune_logs`] at start, every [`PRUNE_PERIOD`], and whenever a
//! sixteenth of the size cap was written since the last prune. Should the pruner fall
//! behind (starved of CPU under a flood), the writer prunes itself once two sixteenths were
//! written, so the store never holds more than the cap, two sixteenths of it and one batch.
//!
//! Every line records whether Warden or the function wrote it ([`LogSource`]), so readers
//! can show the two apart and a function cannot forge `END` or `REPORT` lines.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::net::unix::pipe;
use warden_store::{LogRecord, LogRetention, LogSource, Store};
use warden_types::FunctionName;

use crate::events::{InvocationEvent, InvocationObserver};

/// Longest line kept; longer output is split, as CloudWatch splits large events.
const MAX_LINE: usize = warden_types::limits::LOG_LINE_BYTES;
/// Bytes a reader task takes from a pipe at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Most bytes of function output waiting for the writer thread; beyond it, pipes are not
/// read (back-pressure).
pub const QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// Room for platform lines beyond [`QUEUE_BYTES`]; they never wait for it.
pub const PLATFORM_RESERVE_BYTES: usize = 2 * 1024 * 1024;
/// What a record costs in the queue besides its message.
const RECORD_OVERHEAD: usize = 128;
/// Most bytes read from one pipe when an invocation ends: more than a pipe holds (1 MiB
/// at most for an unprivileged process), so what is left was printed after the response.
const END_DRAIN_BYTES: usize = 1024 * 1024 + READ_CHUNK;
/// How long the writer gathers a batch after its first line. It sleeps through the window
/// rather than waiting on the channel, so that a line sent meanwhile wakes no thread.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
const BATCH_MAX: usize = 2048;
const BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Retention is applied at least this often, so that lines expire without new writes.
pub const PRUNE_PERIOD: Duration = Duration::from_secs(60);
/// How often the server's own log may report dropped platform lines.
const DROP_WARNING_PERIOD: Duration = Duration::from_secs(10);

/// How much function log Warden accepts and keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes per second one function (all its instances together) may log.
    pub rate_bytes_per_second: u64,
    /// Age and size the store keeps.
    pub retention: LogRetention,
}

impl Default for LogLimits {
    fn default() -> Self {
        use warden_types::limits as l;
        Self {
            rate_bytes_per_second: l::DEFAULT_LOG_RATE_KIB * 1024,
            retention: LogRetention {
                max_age_ms: (l::DEFAULT_LOG_RETENTION_DAYS * 24 * 3600 * 1000) as i64,
                max_bytes: l::DEFAULT_LOG_MAX_MIB * 1024 * 1024,
            },
        }
    }
}

/// What travels to the writer thread.
enum Item {
    Line(LogRecord),
    /// A `REPORT` whose memory figure the writer reads, keeping `/proc` reads off the
    /// invoke path.
    Report(LogRecord, Report),
}

/// An item and what it costs in the queue, given back once it is written.
struct Queued {
    item: Item,
    cost: usize,
}

/// The figures of one `REPORT` line.
#[derive(Debug, Clone)]
pub struct Report {
    /// The invocation's request id.
    pub request_id: String,
    /// How long the invocation ran, in milliseconds.
    pub duration_ms: f64,
    /// The function's memory size.
    pub memory_mb: u32,
    /// The instance's processes, whose peak memory the line reports (`None`: 0).
    pub memory: Option<Arc<PeakMemory>>,
    /// The init phase's duration, on the first invocation of an instance.
    pub init_ms: Option<f64>,
    /// Written as a `platform.report` JSON record (a function with `LogFormat` JSON).
    pub json: bool,
}

impl Report {
    /// Formats the line, reading the instance's peak memory now.
    pub fn line(&self) -> String {
        let max_memory = self.memory.as_ref().map_or(0, |m| m.mb());
        if self.json {
            let mut metrics = serde_json::json!({
                "durationMs": (self.duration_ms * 100.0).round() / 100.0,
                "billedDurationMs": billed_ms(self.duration_ms),
                "memorySizeMB": self.memory_mb,
                "maxMemoryUsedMB": max_memory,
            });
            if let Some(init) = self.init_ms {
                metrics["initDurationMs"] = serde_json::json!((init * 100.0).round() / 100.0);
            }
            return platform_record(
                "platform.report",
                serde_json::json!({ "requestId": self.request_id, "metrics": metrics }),
            );
        }
        report_line(
            &self.request_id,
            self.duration_ms,
            self.memory_mb,
            max_memory,
            self.init_ms,
        )
    }
}

/// A platform event as a JSON record (`LogFormat` JSON): its time, type and record.
fn platform_record(kind: &str, record: serde_json::Value) -> String {
    serde_json::json!({
        "time": warden_types::iso_timestamp(warden_types::now_millis()),
        "type": kind,
        "record": record,
    })
    .to_string()
}

/// How the platform writes its own lines of a function's invocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlatformLines {
    /// Lambda's `START`, `END` and `REPORT` lines.
    #[default]
    Text,
    /// `platform.start` and `platform.report` JSON records (`LogFormat` JSON).
    Json,
    /// None of them (`LogFormat` JSON with `SystemLogLevel` WARN).
    Quiet,
}

impl PlatformLines {
    /// The lines a function's logging settings ask for.
    pub fn of(settings: &warden_types::LoggingSettings) -> Self {
        match (settings.json, settings.system_level()) {
            (false, _) => Self::Text,
            (true, "WARN") => Self::Quiet,
            (true, _) => Self::Json,
        }
    }
}

/// A token bucket of log bytes per second, shared by every instance of one function. It
/// holds at most one second's worth; readers stop while it is in debt.
pub(crate) struct RateBucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateBucket {
    fn new(rate_bytes_per_second: u64) -> Self {
        let rate = rate_bytes_per_second.max(1) as f64;
        Self {
            rate,
            state: Mutex::new((rate, Instant::now())),
        }
    }

    /// Tokens now, after refilling for the time since the last look.
    fn refill(&self, state: &mut (f64, Instant)) -> f64 {
        let now = Instant::now();
        let earned = now.duration_since(state.1).as_secs_f64() * self.rate;
        state.0 = (state.0 + earned).min(self.rate);
        state.1 = now;
        state.0
    }

    /// How long until the bucket is out of debt; zero when it is not in debt.
    fn wait(&self) -> Duration {
        let mut state = lock(&self.state);
        let tokens = self.refill(&mut state);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.rate)
        }
    }

    /// Takes `bytes`, however deep in debt that goes (the bytes were already read).
    fn charge(&self, bytes: usize) {
        let mut state = lock(&self.state);
        self.refill(&mut state);
        state.0 -= bytes as f64;
    }

    /// Takes `bytes` if that leaves at most one second's worth of debt; else nothing.
    fn try_charge(&self, bytes: usize) -> bool {
        let mut state = lock(&self.state);
        let tokens = self.refill(&mut state);
        if tokens - bytes as f64 >= -self.rate {
            state.0 = tokens - bytes as f64;
            true
        } else {
            false
        }
    }
}

/// Shared between the sink's handles and its threads.
struct Shared {
    /// Bytes queued for the writer thread.
    queued: AtomicUsize,
    /// Notified when the writer gave queue room back.
    room: tokio::sync::Notify,
    /// Platform lines dropped because even the reserve was full, not yet reported.
    dropped_platform: AtomicU64,
    /// One bucket per function, shared by its instances while any of them lives.
    buckets: Mutex<HashMap<FunctionName, Weak<RateBucket>>>,
    limits: LogLimits,
    /// Bytes written since the last prune, and whether the sink is gone; the pruner waits
    /// on it.
    prune: Mutex<(u64, bool)>,
    prune_wake: Condvar,
    /// Held while a prune runs, by the pruner or by the writer when the pruner fell behind.
    pruning: Mutex<()>,
}

/// Sends log lines to a background writer thread that appends them to the store, and
/// runs the pruner that keeps them within [`LogLimits::retention`].
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
    written: Arc<tokio::sync::Notify>,
}

impl LogSink {
    /// Starts the writer and pruner threads that store lines in `store` within `limits`.
    pub fn start(store: Arc<dyn Store>, limits: LogLimits) -> Self {
        Self::start_observed(store, limits, Vec::new())
    }

    /// As [`LogSink::start`], handing each stored function line that starts as a JSON
    /// object to `observers` ([`InvocationObserver::observe_json_line`]).
    pub fn start_observed(
        store: Arc<dyn Store>,
        limits: LogLimits,
        observers: Vec<Arc<dyn InvocationObserver>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Queued>();
        let written = Arc::new(tokio::sync::Notify::new());
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            room: tokio::sync::Notify::new(),
            dropped_platform: AtomicU64::new(0),
            buckets: Mutex::new(HashMap::new()),
            limits,
            prune: Mutex::new((0, false)),
            prune_wake: Condvar::new(),
            pruning: Mutex::new(()),
        });
        let (notify, writer_shared, writer_store) = (
            Arc::clone(&written),
            Arc::clone(&shared),
            Arc::clone(&store),
        );
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_loop(rx, writer_store, notify, writer_shared, observers));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the log writer; function logs will be lost");
        }
        let pruner_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("log-pruner".into())
            .spawn(move || prune_loop(store, pruner_shared));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the log pruner; logs will not be pruned");
        }
        Self {
            tx,
            shared,
            written,
        }
    }

    /// Emits a platform line (Warden's own: `START`, `END`, `REPORT`, errors). Never waits.
    pub fn emit(
        &self,
        function: &FunctionName,
        stream: Option<&str>,
        request_id: Option<&str>,
        message: String,
    ) {
        self.emit_as(function, stream, request_id, message, LogSource::Platform);
    }

    /// Emits a line written by `source` without waiting, within the platform reserve.
    /// Use [`LogSource::Function`] for text the function chose, such as an init error it
    /// reported.
    pub fn emit_as(
        &self,
        function: &FunctionName,
        stream: Option<&str>,
        request_id: Option<&str>,
        message: String,
        source: LogSource,
    ) {
        let record = record(function, stream, request_id, message, source);
        self.push(Item::Line(record), QUEUE_BYTES + PLATFORM_RESERVE_BYTES);
    }

    /// Emits a `REPORT` line formatted by the writer thread.
    pub fn emit_report(&self, function: &FunctionName, stream: Option<&str>, report: Report) {
        let record = record(
            function,
            stream,
            Some(&report.request_id),
            String::new(),
            LogSource::Platform,
        );
        self.push(
            Item::Report(record, report),
            QUEUE_BYTES + PLATFORM_RESERVE_BYTES,
        );
    }

    /// Queues an item if the queue holds less than `limit` bytes; returns whether it did.
    /// A dropped platform line is counted for the server log.
    fn push(&self, item: Item, limit: usize) -> bool {
        let cost = cost(&item);
        if self.shared.queued.load(Ordering::Acquire) >= limit {
            if matches!(&item, Item::Report(..))
                || matches!(&item, Item::Line(r) if r.source == LogSource::Platform)
            {
                self.shared.dropped_platform.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        }
        self.shared.queued.fetch_add(cost, Ordering::AcqRel);
        if self.tx.send(Queued { item, cost }).is_err() {
            self.shared.queued.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Whether the queue has room for more function output.
    fn has_room(&self) -> bool {
        self.shared.queued.load(Ordering::Acquire) < QUEUE_BYTES
    }

    /// Waits until the queue has room for more function output.
    async fn wait_for_room(&self) {
        loop {
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }

    /// The rate bucket of `function`, shared with its other live instances.
    fn bucket(&self, function: &FunctionName) -> Arc<RateBucket> {
        let mut buckets = lock(&self.shared.buckets);
        if let Some(b) = buckets.get(function).and_then(Weak::upgrade) {
            return b;
        }
        buckets.retain(|_, b| b.strong_count() > 0);
        let bucket = Arc::new(RateBucket::new(self.shared.limits.rate_bytes_per_second));
        buckets.insert(function.clone(), Arc::downgrade(&bucket));
        bucket
    }

    /// Notified after every batch is durable, for `logs --follow`.
    pub fn written(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.written)
    }

    /// Bytes waiting for the writer thread, for tests and diagnostics.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }
}

fn cost(item: &Item) -> usize {
    match item {
        Item::Line(r) => r.message.len() + RECORD_OVERHEAD,
        // The line is formatted later; it is about two hundred bytes.
        Item::Report(..) => 256 + RECORD_OVERHEAD,
    }
}

fn record(
    function: &FunctionName,
    stream: Option<&str>,
    request_id: Option<&str>,
    message: String,
    source: LogSource,
) -> LogRecord {
    LogRecord {
        seq: 0,
        function: function.clone(),
        timestamp_ms: warden_types::now_millis(),
        request_id: request_id.map(str::to_owned),
        stream: stream.map(str::to_owned),
        message,
        source,
    }
}

impl Item {
    fn into_record(self) -> LogRecord {
        match self {
            Item::Line(r) => r,
            Item::Report(mut r, report) => {
                r.message = report.line();
                r
            }
        }
    }
}

fn write_loop(
    rx: mpsc::Receiver<Queued>,
    store: Arc<dyn Store>,
    notify: Arc<tokio::sync::Notify>,
    shared: Arc<Shared>,
    observers: Vec<Arc<dyn InvocationObserver>>,
) {
    let mut last_warning: Option<Instant> = None;
    let prune_every = (shared.limits.retention.max_bytes / 16).max(64 * 1024);
    while let Ok(first) = rx.recv() {
        let mut cost = first.cost;
        let mut batch = vec![first.item.into_record()];
        let deadline = Instant::now() + BATCH_WINDOW;
        // What is queued already; then, unless that filled the batch, what comes within the
        // window. Waiting on the channel instead would have every line sent meanwhile wake
        // this thread, a system call and a context switch per line on the invoke path.
        if !drain(&rx, &mut batch, &mut cost) {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            drain(&rx, &mut batch, &mut cost);
        }
        if let Err(e) = store.append_logs(&batch) {
            tracing::error!(error = %e, lines = batch.len(), "could not write function logs");
        }
        if !observers.is_empty() {
            for r in &batch {
                if r.source == LogSource::Function && r.message.trim_start().starts_with('{') {
                    for observer in &observers {
                        observer.observe_json_line(&r.function, &r.message);
                    }
                }
            }
        }
        shared.queued.fetch_sub(cost, Ordering::AcqRel);
        shared.room.notify_waiters();
        notify.notify_waiters();
        let behind = {
            let mut prune = lock(&shared.prune);
            prune.0 += cost as u64;
            if prune.0 >= prune_every {
                shared.prune_wake.notify_all();
            }
            prune.0 >= 2 * prune_every
        };
        if behind {
            // The pruner has not started a prune while twice its share was written (it is
            // starved of CPU, or still in a long prune): prune here, so that the store
            // stays within the cap plus two shares and a batch however fast lines come.
            let _one = lock(&shared.pruning);
            let still = {
                let mut prune = lock(&shared.prune);
                let still = prune.0 >= 2 * prune_every;
                if still {
                    prune.0 = 0;
                }
                still
            };
            if still {
                prune_once(&*store, &shared.limits.retention);
            }
        }
        if last_warning.is_none_or(|t| t.elapsed() >= DROP_WARNING_PERIOD) {
            let dropped = shared.dropped_platform.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                tracing::warn!(
                    lines = dropped,
                    "platform log lines were dropped because the log writer fell behind"
                );
                last_warning = Some(Instant::now());
            }
        }
    }
    let mut prune = lock(&shared.prune);
    prune.1 = true;
    shared.prune_wake.notify_all();
}

/// Applies the retention at start, every [`PRUNE_PERIOD`], and whenever the writer wrote
/// a sixteenth of the size cap; stops when the writer does.
fn prune_loop(store: Arc<dyn Store>, shared: Arc<Shared>) {
    let prune_every = (shared.limits.retention.max_bytes / 16).max(64 * 1024);
    loop {
        {
            let _one = lock(&shared.pruning);
            prune_once(&*store, &shared.limits.retention);
        }
        let mut prune = lock(&shared.prune);
        let deadline = Instant::now() + PRUNE_PERIOD;
        while prune.0 < prune_every && !prune.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            prune = shared
                .prune_wake
                .wait_timeout(prune, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if prune.1 {
            return;
        }
        prune.0 = 0;
    }
}

/// Moves what `rx` holds into `batch` until it is full; returns whether it is.
fn drain(rx: &mpsc::Receiver<Queued>, batch: &mut Vec<LogRecord>, cost: &mut usize) -> bool {
    while batch.len() < BATCH_MAX && *cost < BATCH_MAX_BYTES {
        match rx.try_recv() {
            Ok(q) => {
                *cost += q.cost;
                batch.push(q.item.into_record());
            }
            Err(_) => return false,
        }
    }
    true
}

/// Applies `retention` once, logging what it removed.
fn prune_once(store: &dyn Store, retention: &LogRetention) {
    match store.prune_logs(retention, warden_types::now_millis()) {
        Ok(r) if r.expired + r.evicted > 0 => tracing::info!(
            expired = r.expired,
            evicted = r.evicted,
            bytes_before = r.bytes_before,
            bytes_after = r.bytes_after,
            "pruned function logs"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not prune function logs"),
    }
}

/// Lines of one invocation kept for `X-Amz-Log-Type: Tail`.
#[derive(Default)]
pub struct Tail {
    text: String,
}

impl Tail {
    /// Adds a line, keeping only the last 4 KB.
    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        // Keep memory bounded for chatty functions; only the end is ever returned.
        if self.text.len() > 4 * warden_types::limits::LOG_TAIL_BYTES {
            let cut = self.text.len() - warden_types::limits::LOG_TAIL_BYTES;
            let cut = (cut..self.text.len())
                .find(|i| self.text.is_char_boundary(*i))
                .unwrap_or(0);
            self.text.drain(..cut);
        }
    }

    /// The last 4 KB, cut at a character boundary.
    pub fn last_4k(&self) -> &str {
        let max = warden_types::limits::LOG_TAIL_BYTES;
        if self.text.len() <= max {
            return &self.text;
        }
        let start = self.text.len() - max;
        let start = (start..self.text.len())
            .find(|i| self.text.is_char_boundary(*i))
            .unwrap_or(0);
        &self.text[start..]
    }
}

/// Function output dropped at the end of an invocation, reported in one marker line.
#[derive(Default)]
struct Dropped {
    lines: u64,
    bytes: u64,
    over_rate: bool,
    queue_full: bool,
}

#[derive(Default)]
struct Current {
    request_id: Option<String>,
    tail: Option<Tail>,
    dropped: Dropped,
    /// The tail of the invocation that just finished, until the engine takes it.
    finished_tail: Option<Tail>,
}

/// One instance's output, attributed to the invocation it belongs to.
pub struct LogCapture {
    function: FunctionName,
    /// The instance's log stream; none for the log of an invocation that got no instance.
    log_stream: Option<String>,
    lines: PlatformLines,
    /// Replaces the function's secret environment values in its own lines.
    redactor: warden_types::hygiene::Redactor,
    sink: LogSink,
    bucket: Arc<RateBucket>,
    current: Mutex<Current>,
    /// stdout and stderr; none for the log of an invocation that got no instance.
    streams: Option<[Stream; 2]>,
}

struct Stream {
    pipe: pipe::Receiver,
    partial: Mutex<Vec<u8>>,
}

/// How a read of a pipe treats the lines it finds.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The reader task: it read only because the function had budget; keep everything.
    Read,
    /// The end of an invocation: keep what the budget and the queue allow, drop the rest.
    End,
}

impl LogCapture {
    /// Wraps the instance's pipes and starts reading them.
    pub fn start(
        function: FunctionName,
        log_stream: String,
        lines: PlatformLines,
        redactor: warden_types::hygiene::Redactor,
        sink: LogSink,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> std::io::Result<Arc<Self>> {
        let capture = Arc::new(Self {
            bucket: sink.bucket(&function),
            function,
            log_stream: Some(log_stream),
            lines,
            redactor,
            sink,
            current: Mutex::new(Current::default()),
            streams: Some([
                Stream {
                    pipe: pipe::Receiver::from_owned_fd(stdout)?,
                    partial: Mutex::new(Vec::new()),
                },
                Stream {
                    pipe: pipe::Receiver::from_owned_fd(stderr)?,
                    partial: Mutex::new(Vec::new()),
                },
            ]),
        });
        for index in 0..2 {
            let c = Arc::clone(&capture);
            tokio::spawn(async move { c.read_loop(index).await });
        }
        Ok(capture)
    }

    /// The log of an invocation that got no instance (it failed before one started):
    /// framing only, no output to read.
    pub fn detached(function: FunctionName, lines: PlatformLines, sink: LogSink) -> Self {
        Self {
            bucket: sink.bucket(&function),
            function,
            log_stream: None,
            lines,
            redactor: Default::default(),
            sink,
            current: Mutex::new(Current::default()),
            streams: None,
        }
    }

    async fn read_loop(&self, index: usize) {
        let Some(streams) = &self.streams else {
            return;
        };
        loop {
            // Back-pressure: while the function is over its rate or the writer is behind,
            // its pipe is not read and the function blocks writing to it.
            loop {
                let wait = self.bucket.wait();
                if wait.is_zero() {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            self.sink.wait_for_room().await;
            if streams[index].pipe.readable().await.is_err() {
                return;
            }
            if self.drain_stream(index, Mode::Read, READ_CHUNK, false) {
                self.drain_stream(index, Mode::Read, 0, true);
                return;
            }
        }
    }

    /// Reads up to `max` bytes the pipe holds now (stopping early when it is empty) and
    /// emits the complete lines; returns true at end of file. With `flush`, a trailing
    /// partial line is emitted too.
    fn drain_stream(&self, index: usize, mode: Mode, max: usize, flush: bool) -> bool {
        let Some(streams) = &self.streams else {
            return true;
        };
        let stream = &streams[index];
        let mut partial = lock(&stream.partial);
        let mut eof = false;
        let mut read = 0;
        // At the end of an invocation the pipe is read directly rather than through the
        // runtime's readiness, which may not have seen output written just now.
        let direct = match mode {
            Mode::Read => None,
            Mode::End => Some(stream.pipe.as_fd()),
        };
        // Bytes are read straight into the vector's spare capacity (never zeroed first:
        // a zeroed chunk per read was a measurable share of a warm invoke).
        while read < max {
            let want = (max - read).min(READ_CHUNK);
            let got = match direct {
                Some(fd) => {
                    let mut chunk = Vec::with_capacity(want);
                    match rustix::io::read(fd, rustix::buffer::spare_capacity(&mut chunk)) {
                        Ok(n) => {
                            partial.extend_from_slice(&chunk);
                            Ok(n)
                        }
                        Err(e) => Err(std::io::Error::from(e)),
                    }
                }
                None => {
                    partial.reserve(want);
                    stream
                        .pipe
                        .try_read_buf(&mut bytes::BufMut::limit(&mut *partial, want))
                }
            };
            match got {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let mut start = 0;
        while let Some(pos) = partial[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            self.line(&partial[start..end], mode);
            start = end + 1;
        }
        partial.drain(..start);
        while partial.len() > MAX_LINE {
            let rest = partial.split_off(MAX_LINE);
            self.line(&partial, mode);
            *partial = rest;
        }
        if (flush || eof) && !partial.is_empty() {
            self.line(&partial, mode);
            partial.clear();
        }
        eof
    }

    fn line(&self, bytes: &[u8], mode: Mode) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        // Lambda's convention for one log event that spans several lines (a traceback):
        // the runtime writes its line breaks as carriage returns; they are line breaks
        // again in the stored event.
        let text = self
            .redactor
            .apply(String::from_utf8_lossy(bytes).replace('\r', "\n"));
        let size = text.len() + 1;
        let mut current = lock(&self.current);
        match mode {
            // The reader read only because the function had budget and the queue had
            // room; the queue may pass its bound by what one read brought.
            Mode::Read => self.bucket.charge(size),
            Mode::End => {
                let room = self.sink.has_room();
                if !(room && self.bucket.try_charge(size)) {
                    let d = &mut current.dropped;
                    d.lines += 1;
                    d.bytes += size as u64;
                    d.queue_full |= !room;
                    d.over_rate |= room;
                    return;
                }
            }
        }
        if let Some(tail) = current.tail.as_mut() {
            tail.push(&text);
        }
        let record = record(
            &self.function,
            self.log_stream.as_deref(),
            current.request_id.as_deref(),
            text,
            LogSource::Function,
        );
        self.sink.push(Item::Line(record), usize::MAX);
    }

    /// Takes the tail of the invocation that just finished, if the caller asked for it.
    pub fn take_tail(&self) -> Option<Tail> {
        lock(&self.current).finished_tail.take()
    }

    /// Starts attributing output to `request_id` and writes `START`.
    fn begin(&self, request_id: &str, version: &str, tail: bool) {
        let mut current = lock(&self.current);
        current.request_id = Some(request_id.to_owned());
        current.tail = tail.then(Tail::default);
        let start = match self.lines {
            PlatformLines::Text => format!("START RequestId: {request_id} Version: {version}"),
            PlatformLines::Json => platform_record(
                "platform.start",
                serde_json::json!({ "requestId": request_id, "version": version }),
            ),
            PlatformLines::Quiet => return,
        };
        if let Some(t) = current.tail.as_mut() {
            t.push(&start);
        }
        self.sink.emit(
            &self.function,
            self.log_stream.as_deref(),
            Some(request_id),
            start,
        );
    }

    /// Writes a platform line (timeouts, crashes) into the current invocation.
    fn platform(&self, message: String) {
        self.annotate(message, LogSource::Platform);
    }

    /// Before a line that ends the instance (an init failure, a timeout, an exit): what the
    /// function wrote before it is read first, so that its own output comes before the
    /// platform's verdict whichever thread was scheduled first.
    fn settle(&self) {
        self.drain_stream(0, Mode::End, END_DRAIN_BYTES, true);
        self.drain_stream(1, Mode::End, END_DRAIN_BYTES, true);
    }

    fn settle_then_platform(&self, message: String) {
        self.settle();
        self.platform(message);
    }

    /// Writes a line into the current invocation that Warden emits but the function
    /// wrote (an error it reported), so it is stored as the function's.
    fn reported(&self, message: String) {
        self.annotate(message, LogSource::Function);
    }

    fn annotate(&self, message: String, source: LogSource) {
        let mut current = lock(&self.current);
        if let Some(t) = current.tail.as_mut() {
            t.push(&message);
        }
        self.sink.emit_as(
            &self.function,
            self.log_stream.as_deref(),
            current.request_id.as_deref(),
            message,
            source,
        );
    }

    /// Drains pending output, writes `END` and `REPORT`, and returns the tail if kept.
    /// The `REPORT` line is formatted here when it is needed now (a kept tail, or
    /// `immediate` because the instance is about to go), else by the writer thread.
    fn end(&self, request_id: &str, report: &Report, immediate: bool) -> Option<Tail> {
        self.drain_stream(0, Mode::End, END_DRAIN_BYTES, true);
        self.drain_stream(1, Mode::End, END_DRAIN_BYTES, true);
        let end = format!("END RequestId: {request_id}");
        let mut current = lock(&self.current);
        let dropped = std::mem::take(&mut current.dropped);
        if dropped.lines > 0 {
            let marker = self.truncation_marker(&dropped);
            tracing::warn!(
                function = %self.function,
                request_id,
                lines = dropped.lines,
                bytes = dropped.bytes,
                "function output dropped at the end of an invocation"
            );
            if let Some(t) = current.tail.as_mut() {
                t.push(&marker);
            }
            self.sink.emit(
                &self.function,
                self.log_stream.as_deref(),
                Some(request_id),
                marker,
            );
        }
        let mut tail = current.tail.take();
        // JSON records have no `END`; at `SystemLogLevel` WARN there is no report either.
        if self.lines == PlatformLines::Text {
            self.sink.emit(
                &self.function,
                self.log_stream.as_deref(),
                Some(request_id),
                end.clone(),
            );
        }
        if self.lines == PlatformLines::Quiet {
            current.request_id = None;
            return tail;
        }
        if tail.is_some() || immediate {
            let line = report.line();
            if let Some(t) = tail.as_mut() {
                if self.lines == PlatformLines::Text {
                    t.push(&end);
                }
                t.push(&line);
            }
            self.sink.emit(
                &self.function,
                self.log_stream.as_deref(),
                Some(request_id),
                line,
            );
        } else {
            self.sink
                .emit_report(&self.function, self.log_stream.as_deref(), report.clone());
        }
        current.request_id = None;
        tail
    }

    fn truncation_marker(&self, dropped: &Dropped) -> String {
        let mut reasons = Vec::new();
        if dropped.over_rate {
            reasons.push(format!(
                "the function logged faster than its limit of {} bytes per second",
                self.sink.shared.limits.rate_bytes_per_second
            ));
        }
        if dropped.queue_full {
            reasons.push("the log writer fell behind".to_owned());
        }
        format!(
            "[truncated] {} lines ({} bytes) of function output were dropped: {}",
            dropped.lines,
            dropped.bytes,
            reasons.join(" and ")
        )
    }
}

/// The log writer's side of the engine's events: Lambda's framing of an invocation in the
/// function's log (`START`, the platform's error lines, `END`, `REPORT`).
impl InvocationObserver for LogCapture {
    fn observe(&self, event: &InvocationEvent<'_>) {
        match event {
            InvocationEvent::Started {
                version,
                request_id,
                keep_tail,
                ..
            } => self.begin(request_id, version, *keep_tail),
            InvocationEvent::Throttled { .. } | InvocationEvent::Initializing { .. } => {}
            InvocationEvent::InitFailed {
                error_type,
                message,
                source,
                ..
            } => {
                self.settle();
                let line = format!("{error_type}: {message}");
                match source {
                    LogSource::Platform => self.platform(line),
                    LogSource::Function => self.reported(line),
                }
            }
            InvocationEvent::TimedOut {
                request_id,
                seconds,
                ..
            } => self.settle_then_platform(format!(
                "{} {request_id} Task timed out after {seconds:.2} seconds",
                warden_types::iso_timestamp(warden_types::now_millis())
            )),
            InvocationEvent::Exited {
                request_id, status, ..
            } => self.settle_then_platform(format!(
                "RequestId: {request_id} Error: Runtime exited with error: {status}"
            )),
            InvocationEvent::Finished {
                report,
                instance_ending,
                ..
            } => {
                let tail = self.end(&report.request_id, report, *instance_ending);
                lock(&self.current).finished_tail = tail;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The billed duration of an invocation: whole milliseconds, rounded up, at least one.
fn billed_ms(duration_ms: f64) -> u64 {
    duration_ms.ceil().max(1.0) as u64
}

/// Lambda's `REPORT` line.
pub fn report_line(
    request_id: &str,
    duration_ms: f64,
    memory_mb: u32,
    max_memory_mb: u64,
    init_ms: Option<f64>,
) -> String {
    let billed = billed_ms(duration_ms);
    let mut line = format!(
        "REPORT RequestId: {request_id}\tDuration: {} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {max_memory_mb} MB",
        Hundredths(duration_ms)
    );
    if let Some(init) = init_ms {
        line.push_str(&format!("\tInit Duration: {} ms", Hundredths(init)));
    }
    line
}

/// A non-negative figure with two decimals, as `{:.2}` writes it but from whole
/// hundredths: `{:.2}` formats a float exactly, and its slow path (a bignum algorithm,
/// taken for many values) was 1 % of the server's CPU at 8 connections, for one line per
/// invoke.
struct Hundredths(f64);

impl std::fmt::Display for Hundredths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Saturating: durations are far below u64::MAX hundredths; NaN becomes 0.
        let h = (self.0.max(0.0) * 100.0).round() as u64;
        write!(f, "{}.{:02}", h / 100, h % 100)
    }
}

/// The peak memory of an instance, read for each `REPORT` line (`Max Memory Used`).
///
/// A sandboxed instance's peak is its cgroup's (`memory.peak` on cgroup v2,
/// `memory.max_usage_in_bytes` on v1): the memory its limit counts, reset at its spawn,
/// one number read again from offset 0 of a file held open. Without one (no sandbox, or a
/// kernel that cannot reset the figure), it is the peak resident memory (`VmHWM`) of the
/// instance's processes: in a sandbox the instance's process is a tiny init and the
/// function its child, so the largest of the process and its children.
///
/// Reading `/proc` for every invoke was a fifth of the server's CPU at 8 connections
/// (opening, reading and closing three files per invoke); held open and read again, a
/// `status` file still costs the kernel a rendering of the whole file (6 % of both cores
/// at 7,000 invokes/s), which the cgroup's one number does not. At most
/// [`STATUS_FILES_HELD`] are held per instance; more children are read by opening their
/// files each time.
#[derive(Debug)]
pub struct PeakMemory {
    pid: i32,
    cgroup: Option<std::fs::File>,
    children: Option<std::fs::File>,
    /// The `status` files of the processes seen last time, by pid.
    status: Mutex<Vec<(i32, std::fs::File)>>,
}

/// The most `/proc/PID/status` files one instance holds open.
const STATUS_FILES_HELD: usize = 4;

/// The most children of an instance's process whose memory is read.
const CHILDREN_READ: usize = 64;

impl PeakMemory {
    /// Reads `pid`'s peak memory from `/proc` (nothing for a pid of 0 or less).
    pub fn open(pid: i32) -> Self {
        let children = (pid > 0)
            .then(|| std::fs::File::open(format!("/proc/{pid}/task/{pid}/children")).ok())
            .flatten();
        Self {
            pid,
            cgroup: None,
            children,
            status: Mutex::new(Vec::new()),
        }
    }

    /// Reads the peak from `cgroup`, the instance's peak memory file, when there is one,
    /// else as [`PeakMemory::open`] does.
    pub fn of_instance(pid: i32, cgroup: Option<std::os::fd::OwnedFd>) -> Self {
        match cgroup {
            Some(fd) => Self {
                pid,
                cgroup: Some(fd.into()),
                children: None,
                status: Mutex::new(Vec::new()),
            },
            None => Self::open(pid),
        }
    }

    /// The peak, in MB (rounded up); 0 when the processes are gone or unreadable.
    pub fn mb(&self) -> u64 {
        use std::os::unix::fs::FileExt;
        if self.pid <= 0 {
            return 0;
        }
        if let Some(cgroup) = &self.cgroup {
            // One number: a small buffer, since zeroing a page per `REPORT` line cost more
            // than the read.
            let mut buf = [0u8; 64];
            let n = cgroup.read_at(&mut buf, 0).unwrap_or(0);
            return bytes_in(&buf[..n]).map_or(0, |b| b.div_ceil(1 << 20));
        }
        let mut buf = [0u8; 4096];
        let mut pids = vec![self.pid];
        if let Some(children) = &self.children {
            let n = children.read_at(&mut buf, 0).unwrap_or(0);
            pids.extend(
                String::from_utf8_lossy(&buf[..n])
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok())
                    .take(CHILDREN_READ),
            );
        }
        let mut held = lock(&self.status);
        held.retain(|(p, _)| pids.contains(p));
        let mut peak_kb = 0;
        for pid in pids {
            let kb = match held.iter().find(|(p, _)| *p == pid) {
                Some((_, file)) => vm_hwm_kb(file, &mut buf),
                None => match std::fs::File::open(format!("/proc/{pid}/status")) {
                    Ok(file) => {
                        let kb = vm_hwm_kb(&file, &mut buf);
                        if held.len() < STATUS_FILES_HELD {
                            held.push((pid, file));
                        }
                        kb
                    }
                    Err(_) => None,
                },
            };
            peak_kb = peak_kb.max(kb.unwrap_or(0));
        }
        peak_kb.div_ceil(1024)
    }
}

/// The byte count a cgroup peak file holds: one decimal number and a newline.
fn bytes_in(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// `VmHWM` from a `/proc/PID/status` file, read from its start; `None` once the process is
/// gone.
fn vm_hwm_kb(file: &std::fs::File, buf: &mut [u8]) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let n = file.read_at(buf, 0).ok()?;
    vm_hwm_in(&buf[..n])
}

/// `VmHWM`'s value (kB) in the text of a `status` file. Read as bytes: the process names
/// itself (`Name:`), in any bytes it likes.
fn vm_hwm_in(status: &[u8]) -> Option<u64> {
    let line = status
        .split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(b"VmHWM:"))?;
    std::str::from_utf8(line)
        .ok()?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
}

#[cfg(test)]
mod tests;

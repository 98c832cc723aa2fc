//! Per-invocation logs with Lambda's framing (`START`, the instance's output, `END`,
//! `REPORT`), written to the store in batches off the invoke path.
//!
//! An instance's stdout and stderr are pipes. A reader task turns them into lines tagged
//! with the request id the instance is working on. When an invocation completes, the
//! engine drains whatever the pipes still hold before writing `END`, so output printed
//! before the response was posted is always framed inside its invocation.

use std::os::fd::OwnedFd;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::net::unix::pipe;
use warden_store::{LogRecord, Store};
use warden_types::FunctionName;

/// Longest line kept; longer output is split, as CloudWatch splits large events.
const MAX_LINE: usize = 256 * 1024;
/// How long the writer waits to gather a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
const BATCH_MAX: usize = 2048;

/// What travels to the writer thread.
enum Item {
    Line(LogRecord),
    /// A `REPORT` whose memory figure the writer reads, keeping `/proc` reads off the
    /// invoke path.
    Report(LogRecord, Report),
}

/// The figures of one `REPORT` line.
#[derive(Debug, Clone)]
pub struct Report {
    pub request_id: String,
    pub duration_ms: f64,
    pub memory_mb: u32,
    /// The instance's process, whose peak memory the line reports.
    pub pid: i32,
    pub init_ms: Option<f64>,
}

impl Report {
    /// Formats the line, reading the instance's peak memory now.
    pub fn line(&self) -> String {
        report_line(
            &self.request_id,
            self.duration_ms,
            self.memory_mb,
            max_memory_mb(self.pid),
            self.init_ms,
        )
    }
}

/// Sends log lines to a background writer thread that appends them to the store.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Item>,
    written: Arc<tokio::sync::Notify>,
}

impl LogSink {
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel::<Item>();
        let written = Arc::new(tokio::sync::Notify::new());
        let notify = Arc::clone(&written);
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_loop(rx, store, notify));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the log writer; function logs will be lost");
        }
        Self { tx, written }
    }

    pub fn emit(&self, function: &FunctionName, request_id: Option<&str>, message: String) {
        let _ = self
            .tx
            .send(Item::Line(record(function, request_id, message)));
    }

    /// Emits a `REPORT` line formatted by the writer thread.
    pub fn emit_report(&self, function: &FunctionName, report: Report) {
        let record = record(function, Some(&report.request_id), String::new());
        let _ = self.tx.send(Item::Report(record, report));
    }

    /// Notified after every batch is durable, for `logs --follow`.
    pub fn written(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.written)
    }
}

fn record(function: &FunctionName, request_id: Option<&str>, message: String) -> LogRecord {
    LogRecord {
        seq: 0,
        function: function.clone(),
        timestamp_ms: warden_types::now_millis(),
        request_id: request_id.map(str::to_owned),
        message,
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

fn write_loop(rx: mpsc::Receiver<Item>, store: Arc<dyn Store>, notify: Arc<tokio::sync::Notify>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first.into_record()];
        let deadline = std::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < BATCH_MAX {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(item) => batch.push(item.into_record()),
                Err(_) => break,
            }
        }
        if let Err(e) = store.append_logs(&batch) {
            tracing::error!(error = %e, lines = batch.len(), "could not write function logs");
        }
        notify.notify_waiters();
    }
}

/// Lines of one invocation kept for `X-Amz-Log-Type: Tail`.
#[derive(Default)]
pub struct Tail {
    text: String,
}

impl Tail {
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

#[derive(Default)]
struct Current {
    request_id: Option<String>,
    tail: Option<Tail>,
}

/// One instance's output, attributed to the invocation it belongs to.
pub struct LogCapture {
    function: FunctionName,
    sink: LogSink,
    current: Mutex<Current>,
    streams: [Stream; 2],
}

struct Stream {
    pipe: pipe::Receiver,
    partial: Mutex<Vec<u8>>,
}

impl LogCapture {
    /// Wraps the instance's pipes and starts reading them.
    pub fn start(
        function: FunctionName,
        sink: LogSink,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> std::io::Result<Arc<Self>> {
        let capture = Arc::new(Self {
            function,
            sink,
            current: Mutex::new(Current::default()),
            streams: [
                Stream {
                    pipe: pipe::Receiver::from_owned_fd(stdout)?,
                    partial: Mutex::new(Vec::new()),
                },
                Stream {
                    pipe: pipe::Receiver::from_owned_fd(stderr)?,
                    partial: Mutex::new(Vec::new()),
                },
            ],
        });
        for index in 0..2 {
            let c = Arc::clone(&capture);
            tokio::spawn(async move { c.read_loop(index).await });
        }
        Ok(capture)
    }

    async fn read_loop(&self, index: usize) {
        loop {
            if self.streams[index].pipe.readable().await.is_err() {
                return;
            }
            if self.drain_stream(index, false) {
                self.drain_stream(index, true);
                return;
            }
        }
    }

    /// Reads what the pipe holds now; returns true at end of file. With `flush`, a
    /// trailing partial line is emitted too.
    fn drain_stream(&self, index: usize, flush: bool) -> bool {
        let stream = &self.streams[index];
        let mut partial = lock(&stream.partial);
        let mut buf = [0u8; 16 * 1024];
        let mut eof = false;
        loop {
            match stream.pipe.try_read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => partial.extend_from_slice(&buf[..n]),
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
            self.line(&partial[start..end]);
            start = end + 1;
        }
        partial.drain(..start);
        while partial.len() > MAX_LINE {
            let rest = partial.split_off(MAX_LINE);
            self.line(&partial);
            *partial = rest;
        }
        if (flush || eof) && !partial.is_empty() {
            self.line(&partial);
            partial.clear();
        }
        eof
    }

    fn line(&self, bytes: &[u8]) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let text = String::from_utf8_lossy(bytes).into_owned();
        let mut current = lock(&self.current);
        if let Some(tail) = current.tail.as_mut() {
            tail.push(&text);
        }
        self.sink
            .emit(&self.function, current.request_id.as_deref(), text);
    }

    /// Starts attributing output to `request_id` and writes `START`.
    pub fn begin(&self, request_id: &str, version: &str, tail: bool) {
        let start = format!("START RequestId: {request_id} Version: {version}");
        let mut current = lock(&self.current);
        current.request_id = Some(request_id.to_owned());
        current.tail = tail.then(Tail::default);
        if let Some(t) = current.tail.as_mut() {
            t.push(&start);
        }
        self.sink.emit(&self.function, Some(request_id), start);
    }

    /// Writes a platform line (timeouts, crashes) into the current invocation.
    pub fn platform(&self, message: String) {
        let mut current = lock(&self.current);
        if let Some(t) = current.tail.as_mut() {
            t.push(&message);
        }
        self.sink
            .emit(&self.function, current.request_id.as_deref(), message);
    }

    /// Drains pending output, writes `END` and `REPORT`, and returns the tail if kept.
    /// The `REPORT` line is formatted here when it is needed now (a kept tail, or
    /// `immediate` because the instance is about to go), else by the writer thread.
    pub fn end(&self, request_id: &str, report: Report, immediate: bool) -> Option<Tail> {
        self.drain_stream(0, true);
        self.drain_stream(1, true);
        let end = format!("END RequestId: {request_id}");
        let mut current = lock(&self.current);
        let mut tail = current.tail.take();
        self.sink
            .emit(&self.function, Some(request_id), end.clone());
        if tail.is_some() || immediate {
            let line = report.line();
            if let Some(t) = tail.as_mut() {
                t.push(&end);
                t.push(&line);
            }
            self.sink.emit(&self.function, Some(request_id), line);
        } else {
            self.sink.emit_report(&self.function, report);
        }
        current.request_id = None;
        tail
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lambda's `REPORT` line.
pub fn report_line(
    request_id: &str,
    duration_ms: f64,
    memory_mb: u32,
    max_memory_mb: u64,
    init_ms: Option<f64>,
) -> String {
    let billed = duration_ms.ceil().max(1.0) as u64;
    let mut line = format!(
        "REPORT RequestId: {request_id}\tDuration: {duration_ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {max_memory_mb} MB"
    );
    if let Some(init) = init_ms {
        line.push_str(&format!("\tInit Duration: {init:.2} ms"));
    }
    line
}

/// Peak resident memory of an instance in MB (`VmHWM`), 0 if unknown. In a sandbox `pid`
/// is a tiny init and the function is its child, so the largest of the process and its
/// children is reported.
pub fn max_memory_mb(pid: i32) -> u64 {
    if pid <= 0 {
        return 0;
    }
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let peak_kb = std::iter::once(pid)
        .chain(children.split_whitespace().filter_map(|c| c.parse().ok()))
        .map(vm_hwm_kb)
        .max()
        .unwrap_or(0);
    peak_kb.div_ceil(1024)
}

fn vm_hwm_kb(pid: i32) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_lambda_shape() {
        assert_eq!(
            report_line("abc", 0.87, 128, 36, Some(90.514)),
            "REPORT RequestId: abc\tDuration: 0.87 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 36 MB\tInit Duration: 90.51 ms"
        );
        assert!(!report_line("abc", 12.2, 128, 36, None).contains("Init"));
    }

    #[test]
    fn tail_keeps_last_4k_on_char_boundaries() {
        let mut t = Tail::default();
        for _ in 0..5000 {
            t.push("é");
        }
        let s = t.last_4k();
        assert!(s.len() <= 4096);
        assert!(s.ends_with("é\n"));
    }

    #[test]
    fn own_memory_is_readable() {
        assert!(max_memory_mb(std::process::id() as i32) > 0);
    }
}

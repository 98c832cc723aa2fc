//! The API's listener: accepts connections within a cap, serves each with hyper's HTTP/1,
//! and gives every connection state a deadline, so that neither a local process holding
//! thousands of sockets nor a function flooding its relay can take descriptors or memory
//! from the callers the API serves.
//!
//! - **Cap.** At most [`ServeOptions::max_connections`] connections are served at once.
//!   When a new connection arrives at the cap, the connection that has been idle longest
//!   (no request being handled, no response being written) is closed to make room: an
//!   attacker's idle sockets are always older than a real caller's fresh connection, so the
//!   caller gets through however many sockets are held. Only when every connection is busy
//!   does the listener stop accepting until one finishes; new connections then wait in the
//!   kernel's backlog, which costs the server no descriptor.
//! - **Deadlines.** A connection must send a complete request head within
//!   [`ServeOptions::header_timeout`] of being accepted or of its previous response (hyper's
//!   header-read timer runs from the moment the connection goes idle, so it is also the
//!   keep-alive idle timeout); bodies have their own deadlines (`body`); a response whose
//!   writing makes no progress for [`WRITE_STALL_TIMEOUT`] ends the connection.
//! - **Accept failures** are logged at most once per [`ACCEPT_LOG_INTERVAL`] with a count.
//!   When the process is out of descriptors the listener closes its longest-idle connection
//!   and backs off (up to a second) instead of spinning.
//! - **Graceful shutdown.** On shutdown the listener closes, every connection finishes the
//!   request it is handling and closes, and the server waits up to 10 s for them.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::body::BodyBudget;
use crate::ApiState;

/// How long a connection may take to send a request head, by default.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Request-body memory the server holds at once, by default (see `body`).
pub const DEFAULT_BODY_MEMORY_BYTES: usize = 256 * 1024 * 1024;
/// The smallest body-memory budget: the large-body share must hold one CreateFunction body.
pub const MIN_BODY_MEMORY_BYTES: usize = 128 * 1024 * 1024;
/// The default connection cap never exceeds this, however high the descriptor limit: each
/// idle connection also costs memory (hyper's buffers, a task, kernel socket buffers).
pub const MAX_DEFAULT_CONNECTIONS: usize = 4096;
/// A response that cannot be written for this long (the peer does not read) ends its
/// connection.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers). SigV4 headers, a session token and a
/// client context fit many times over.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most evicted connections still closing before the listener waits for them.
const MAX_LEAVING: usize = 8;
/// At most one accept-failure log line per this interval.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Longest back-off after a failed accept.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// hyper's per-connection buffer bound (its default is about 400 KB): what a slow or
/// stalled connection can make the server hold before the body budget is involved.
const MAX_CONNECTION_BUFFER: usize = 64 * 1024;

/// Limits of the API listener; `warden serve` sets them from its flags.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most connections served at once (see the module comment for what happens beyond).
    pub max_connections: usize,
    /// Time a connection has to send a complete request head, from its accept or from the
    /// end of its previous response.
    pub header_timeout: Duration,
    /// Bytes of request bodies held at once, across all connections.
    pub body_memory: usize,
    /// How long a web console session lasts from sign-in.
    pub console_session_ttl: Duration,
    /// Whether the listener serves the web console at `/console/`.
    pub console: bool,
}

impl ServeOptions {
    /// The connection cap for a process allowed `nofile` descriptors: a quarter of them, at
    /// most [`MAX_DEFAULT_CONNECTIONS`] and at least 64. A quarter, because a connection
    /// relayed from inside a function costs the server three descriptors (the relay's two
    /// ends and the API's), and the rest is left to function instances (listeners, pipes,
    /// pidfds), the databases and the code blobs.
    pub fn default_max_connections(nofile: u64) -> usize {
        let quarter = usize::try_from(nofile / 4).unwrap_or(usize::MAX);
        quarter.clamp(64, MAX_DEFAULT_CONNECTIONS)
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: Self::default_max_connections(1024),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_memory: DEFAULT_BODY_MEMORY_BYTES,
            console_session_ttl: crate::console::DEFAULT_SESSION_TTL,
            console: true,
        }
    }
}

/// What the request handlers share besides [`ApiState`].
pub(crate) struct Shared {
    pub state: Arc<ApiState>,
    pub budget: BodyBudget,
    /// Which requests this listener serves.
    pub listener: Listener,
    /// The web console's sessions (served on the API listener only).
    pub console: crate::console::Console,
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// The API: every service's operations.
    Api,
    /// Function URLs only.
    Urls,
    /// `GET /metrics` only: the Prometheus text format.
    Metrics,
}

/// Serves the API on `listener` until `shutdown` resolves, then waits (up to 10 s) for
/// in-flight requests to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    serve_as(Listener::Api, listener, state, options, shutdown).await;
}

/// Serves function URLs on `listener`, with its own connection cap and body budget (so a
/// flooded URL leaves the API's untouched), until `shutdown` resolves.
pub async fn serve_urls(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    serve_as(Listener::Urls, listener, state, options, shutdown).await;
}

/// Serves the live metrics in the Prometheus text format (`GET /metrics`) on `listener`,
/// until `shutdown` resolves. Unauthenticated, as Prometheus scrapes: it names functions
/// and counts their invocations, and shows nothing else; loopback unless configured.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    serve_as(Listener::Metrics, listener, state, options, shutdown).await;
}

async fn serve_as(
    kind: Listener,
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Arc::new(Shared {
        state,
        budget: BodyBudget::new(options.body_memory),
        listener: kind,
        console: crate::console::Console::new(options.console_session_ttl, options.console),
    });
    let tracker = Arc::new(Tracker::new(options.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_CONNECTION_BUFFER);
    let builder = Arc::new(builder);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut accept_log = RateLimitedLog::new(ACCEPT_LOG_INTERVAL);
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        // At the cap with nothing idle to close, or with enough evicted connections still
        // closing (so that descriptors stay within the cap plus a few): leave new
        // connections in the backlog until a request finishes or a connection ends.
        if (tracker.full() && !tracker.has_idle()) || tracker.leaving() >= MAX_LEAVING {
            tokio::select! {
                () = tracker.changed.notified() => {}
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
            continue;
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff = Duration::ZERO;
                    a
                }
                Err(e) => {
                    let out_of_descriptors =
                        matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    if out_of_descriptors {
                        // Free a descriptor for the caller waiting in the backlog.
                        tracker.evict_idle();
                    }
                    if let Some(suppressed) = accept_log.allow() {
                        tracing::warn!(error = %e, suppressed, "accept failed");
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut shutdown => break,
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        if tracker.full() && !tracker.evict_idle() {
            // Every connection became busy since the check above: refuse this one rather
            // than exceed the cap.
            drop(stream);
            continue;
        }
        // Latency of small request/response exchanges depends on it.
        let _ = stream.set_nodelay(true);
        let registration = tracker.register();
        connections.spawn(connection(
            stream,
            peer,
            Arc::clone(&shared),
            Arc::clone(&builder),
            registration,
            stopping.clone(),
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// Serves one connection until it ends, is evicted (only while idle) or the server stops
/// (after the request in progress).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    builder: Arc<hyper::server::conn::http1::Builder>,
    registration: Registration,
    mut stopping: watch::Receiver<bool>,
) {
    let conn = Arc::clone(&registration.conn);
    let io = TokioIo::new(Tracked::new(
        stream,
        Arc::clone(&conn),
        Arc::clone(&registration.tracker),
        WRITE_STALL_TIMEOUT,
    ));
    let service_conn = Arc::clone(&conn);
    let changed = Arc::clone(&registration.tracker);
    let service = service_fn(move |req| {
        // Runs when hyper has a complete request head, in the same poll as the
        // connection: an eviction check can never see a parsed request as idle.
        let busy = Busy::begin(Arc::clone(&service_conn), Arc::clone(&changed));
        let shared = Arc::clone(&shared);
        async move {
            let response = match shared.listener {
                Listener::Api => crate::handle(&shared, peer, req).await,
                Listener::Urls => Ok(crate::urls::handle(&shared, peer, req).await),
                Listener::Metrics => Ok(crate::scrape::handle(&shared.state, &req)),
            };
            // A streamed body keeps the connection busy until it ends.
            response.map(|r| r.map(|body| body.hold(busy)))
        }
    });
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = served.as_mut() => break,
            () = conn.evict.notified(), if !closing => {
                if conn.idle() {
                    // Nothing in progress: dropping the connection loses no response.
                    break;
                }
                served.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = stopping.changed(), if !closing => {
                served.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
    drop(registration);
}

/// Marks a connection busy for as long as one request is being handled.
struct Busy {
    conn: Arc<ConnState>,
    tracker: Arc<Tracker>,
}

impl Busy {
    fn begin(conn: Arc<ConnState>, tracker: Arc<Tracker>) -> Self {
        conn.requests.fetch_add(1, Ordering::AcqRel);
        conn.touch(&tracker);
        Self { conn, tracker }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn.touch(&self.tracker);
        self.conn.requests.fetch_sub(1, Ordering::AcqRel);
        // The accept loop may be waiting for an idle connection to make room.
        self.tracker.changed.notify_one();
    }
}

/// One connection as the tracker sees it.
struct ConnState {
    /// Requests being handled (0 or 1: HTTP/1 without pipelining handles one at a time).
    requests: AtomicU32,
    /// Set by a write, cleared once hyper has flushed everything: a response still on its
    /// way out.
    unflushed: AtomicBool,
    /// Milliseconds since the tracker's epoch of the last accept, request start or end.
    last_active_ms: AtomicU64,
    /// Chosen for eviction; not chosen again.
    evicting: AtomicBool,
    evict: Notify,
}

impl ConnState {
    fn idle(&self) -> bool {
        self.requests.load(Ordering::Acquire) == 0 && !self.unflushed.load(Ordering::Acquire)
    }

    fn touch(&self, tracker: &Tracker) {
        self.last_active_ms
            .store(tracker.now_ms(), Ordering::Relaxed);
    }
}

/// Every live connection, for the cap and for choosing whom to evict.
struct Tracker {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    live: Mutex<Live>,
    /// Notified when a connection ends or a request finishes.
    changed: Notify,
}

impl Tracker {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            live: Mutex::new(Live::default()),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the cap is reached, not counting connections already told to go.
    fn full(&self) -> bool {
        let live = self.lock();
        live.conns.len() - live.leaving >= self.max
    }

    /// Connections told to close that have not yet.
    fn leaving(&self) -> usize {
        self.lock().leaving
    }

    fn has_idle(&self) -> bool {
        self.lock()
            .conns
            .values()
            .any(|c| c.idle() && !c.evicting.load(Ordering::Relaxed))
    }

    /// Tells the connection idle the longest to close. False when none is idle.
    fn evict_idle(&self) -> bool {
        let mut live = self.lock();
        let victim = live
            .conns
            .values()
            .filter(|c| c.idle() && !c.evicting.load(Ordering::Relaxed))
            .min_by_key(|c| c.last_active_ms.load(Ordering::Relaxed))
            .cloned();
        match victim {
            Some(c) => {
                c.evicting.store(true, Ordering::Relaxed);
                c.evict.notify_one();
                live.leaving += 1;
                true
            }
            None => false,
        }
    }

    fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(ConnState {
            requests: AtomicU32::new(0),
            unflushed: AtomicBool::new(false),
            last_active_ms: AtomicU64::new(self.now_ms()),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
        });
        self.lock().conns.insert(id, Arc::clone(&conn));
        Registration {
            id,
            conn,
            tracker: Arc::clone(self),
        }
    }
}

/// A connection's place in the tracker, given back when the connection ends.
struct Registration {
    id: u64,
    conn: Arc<ConnState>,
    tracker: Arc<Tracker>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut live = self.tracker.lock();
        live.conns.remove(&self.id);
        if self.conn.evicting.load(Ordering::Relaxed) {
            live.leaving -= 1;
        }
        drop(live);
        self.tracker.changed.notify_one();
    }
}

/// The tracker's table: live connections, and how many of them are being evicted.
#[derive(Default)]
struct Live {
    conns: HashMap<u64, Arc<ConnState>>,
    leaving: usize,
}

/// The connection's socket, noting whether a response is still being written and ending the
/// connection when writing makes no progress for [`WRITE_STALL_TIMEOUT`].
struct Tracked {
    inner: TcpStream,
    conn: Arc<ConnState>,
    tracker: Arc<Tracker>,
    /// How long a write may stay blocked.
    stall_timeout: Duration,
    /// Armed while a write is blocked.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Tracked {
    fn new(
        inner: TcpStream,
        conn: Arc<ConnState>,
        tracker: Arc<Tracker>,
        stall_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            conn,
            tracker,
            stall_timeout,
            stall: None,
        }
    }

    /// After a write attempt: arms the stall timer when it blocked, disarms it on progress.
    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if r.is_ready() {
            self.stall = None;
            return r;
        }
        let timer = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(self.stall_timeout)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer did not read the response",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.conn.unflushed.store(true, Ordering::Release);
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.conn.unflushed.store(true, Ordering::Release);
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        // hyper flushes the socket only once its own buffer is empty.
        if matches!(r, Poll::Ready(Ok(()))) && this.conn.unflushed.swap(false, Ordering::AcqRel) {
            // The accept loop may be waiting for an idle connection to make room.
            this.tracker.changed.notify_one();
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Lets a repeated warning through at most once per interval, counting the rest.
struct RateLimitedLog {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this occurrence may be logged, `n` being how many were not since.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_follows_the_descriptor_limit() {
        assert_eq!(ServeOptions::default_max_connections(1024), 256);
        assert_eq!(ServeOptions::default_max_connections(20_000), 4096);
        assert_eq!(ServeOptions::default_max_connections(1 << 20), 4096);
        assert_eq!(ServeOptions::default_max_connections(100), 64);
        for nofile in [256u64, 1024, 4096, 8192, 20_000, 65_536, 1 << 20] {
            let cap = ServeOptions::default_max_connections(nofile) as u64;
            // Three descriptors per relayed connection still leave a quarter of the limit.
            assert!(3 * cap <= nofile * 3 / 4 || cap == 64, "{nofile}: {cap}");
        }
    }

    #[test]
    fn accept_failures_are_logged_at_a_bounded_rate() {
        let mut log = RateLimitedLog::new(Duration::from_secs(3600));
        assert_eq!(log.allow(), Some(0));
        for _ in 0..1000 {
            assert_eq!(log.allow(), None);
        }
        log.last = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(log.allow(), Some(1000));
    }

    #[tokio::test]
    async fn a_response_the_peer_never_reads_ends_its_connection() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let tracker = Arc::new(Tracker::new(1));
        let registration = tracker.register();
        let mut io = Tracked::new(
            stream,
            Arc::clone(&registration.conn),
            Arc::clone(&tracker),
            Duration::from_millis(200),
        );
        // Far more than the socket buffers hold, to a peer that never reads.
        let big = vec![0u8; 64 * 1024 * 1024];
        let written = tokio::time::timeout(Duration::from_secs(60), io.write_all(&big))
            .await
            .expect("the stalled write never gave up");
        assert_eq!(written.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(!registration.conn.idle(), "unflushed data is not idle");
        drop(peer);
    }

    #[test]
    fn eviction_picks_the_longest_idle_connection_and_never_a_busy_one() {
        let tracker = Arc::new(Tracker::new(3));
        let oldest = tracker.register();
        let busy = tracker.register();
        let newest = tracker.register();
        oldest.conn.last_active_ms.store(1, Ordering::Relaxed);
        busy.conn.last_active_ms.store(0, Ordering::Relaxed);
        newest.conn.last_active_ms.store(5, Ordering::Relaxed);
        busy.conn.requests.store(1, Ordering::Relaxed);
        assert!(tracker.full());
        assert!(tracker.evict_idle());
        assert!(oldest.conn.evicting.load(Ordering::Relaxed));
        // A connection on its way out does not count against the cap.
        assert!(!tracker.full());
        assert!(tracker.evict_idle());
        assert!(newest.conn.evicting.load(Ordering::Relaxed));
        assert!(!busy.conn.evicting.load(Ordering::Relaxed));
        // Only the busy one is left: nothing to evict.
        assert!(!tracker.evict_idle());
        assert!(!tracker.has_idle());
        // A response still being written is not idle either.
        busy.conn.requests.store(0, Ordering::Relaxed);
        busy.conn.unflushed.store(true, Ordering::Relaxed);
        assert!(!tracker.has_idle());
        drop((oldest, newest));
        assert_eq!(tracker.lock().conns.len(), 1);
        assert_eq!(tracker.lock().leaving, 0);
    }
}

//! The engine's invocation events, counted in the live metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use warden_engine::{AsyncEvent, InvocationEvent, InvocationObserver};
use warden_executor::ExitStatus;
use warden_metrics::{Counter, Metrics, Timer};

/// How long an invocation may be seen running before it is taken for one whose caller
/// went away without its end being seen (the longest timeout, and a margin).
const LONGEST_INVOCATION: Duration =
    Duration::from_secs(*warden_types::limits::TIMEOUT_SECONDS.end() as u64 + 60);

/// An invocation seen starting and not yet seen ending.
#[derive(Debug, Clone)]
struct Running {
    function: String,
    version: String,
    alias: Option<String>,
    since: Instant,
}

/// Counts the engine's invocation events.
pub struct MetricsObserver {
    metrics: Arc<Metrics>,
    /// Where Embedded Metric Format lines of function logs become custom metrics.
    emf: Arc<warden_metrics::emf::EmfSink>,
    /// Invocations started and not yet finished, by request id: an invocation whose
    /// caller disconnected may never report its end, and is swept after
    /// [`LONGEST_INVOCATION`] so that the concurrency it held is given back.
    running: Mutex<HashMap<String, Running>>,
}

impl MetricsObserver {
    pub fn new(metrics: Arc<Metrics>, emf: Arc<warden_metrics::emf::EmfSink>) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            emf,
            running: Mutex::new(HashMap::new()),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the invocations seen running for longer than any may.
    pub fn sweep(&self) {
        let stale: Vec<Running> = {
            let mut running = self.running();
            let now = Instant::now();
            let mut out = Vec::new();
            running.retain(|_, r| {
                let keep = now.duration_since(r.since) < LONGEST_INVOCATION;
                if !keep {
                    out.push(r.clone());
                }
                keep
            });
            out
        };
        for r in stale {
            self.metrics
                .abandoned(&r.function, &r.version, r.alias.as_deref());
        }
    }
}

impl InvocationObserver for MetricsObserver {
    fn observe(&self, event: &InvocationEvent<'_>) {
        match event {
            // A cold start counts from the moment its instance starts initializing, as
            // Lambda counts; its `Started` then finds it counted already.
            InvocationEvent::Initializing {
                function,
                version,
                alias,
                request_id,
            }
            | InvocationEvent::Started {
                function,
                version,
                alias,
                request_id,
                ..
            } => {
                // One lock for the check and the insert, on every invocation's path.
                match self.running().entry((*request_id).to_owned()) {
                    std::collections::hash_map::Entry::Occupied(_) => return,
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(Running {
                            function: function.to_string(),
                            version: (*version).to_owned(),
                            alias: alias.map(str::to_owned),
                            since: Instant::now(),
                        });
                    }
                }
                self.metrics.started(function.as_str(), version, *alias);
            }
            InvocationEvent::Finished {
                function,
                version,
                alias,
                report,
                function_error,
                ..
            } => {
                // An invocation swept as abandoned has already given its concurrency back.
                if self.running().remove(&report.request_id).is_none() {
                    return;
                }
                let micros = (report.duration_ms * 1000.0).max(0.0) as u64;
                self.metrics
                    .finished(function.as_str(), version, *alias, micros, *function_error);
            }
            InvocationEvent::Throttled { function, .. } => {
                self.metrics
                    .count(Counter::Throttles, Some(function.as_str()), None);
            }
            InvocationEvent::TimedOut { function, .. }
            | InvocationEvent::Exited {
                function,
                status: ExitStatus::OutOfMemory,
                ..
            } => {
                self.metrics
                    .count(Counter::SandboxKills, Some(function.as_str()), None);
            }
            InvocationEvent::InitFailed { .. } | InvocationEvent::Exited { .. } => {}
        }
    }

    fn observe_json_line(&self, function: &warden_types::FunctionName, line: &str) {
        if let Err(e) = self.emf.ingest(line, warden_metrics::aggregate::now_s()) {
            tracing::debug!(function = %function, error = %e, "a log line's embedded metrics were not taken");
        }
    }

    fn observe_async(&self, event: &AsyncEvent<'_>) {
        match event {
            AsyncEvent::FirstAttempt { function, age_ms } => {
                self.metrics
                    .time(Timer::AsyncEventAge, function.as_str(), None, age_ms * 1000);
            }
            AsyncEvent::Dropped { function } => {
                self.metrics
                    .count(Counter::AsyncEventsDropped, Some(function.as_str()), None);
            }
        }
    }
}

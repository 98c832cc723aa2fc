//! The metrics listener's one resource: `GET /metrics`, the live series and the engine's
//! internals in the Prometheus text format. Anything else is 404 (405 for another method
//! on `/metrics`); a request body is never read.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use warden_metrics::prometheus::{self, Gauge};

use crate::{ApiState, Reply, ReplyBody};

pub(crate) fn handle<B>(state: &ApiState, req: &http::Request<B>) -> Reply {
    if req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    let metrics = &state.metrics;
    let mut gauges = engine_gauges(&state.engine);
    gauges.push(Gauge {
        name: "warden_audit_events_dropped_total",
        help: "Reads and refused calls not recorded because the audit trail was over --audit-max-mib.",
        labels: Vec::new(),
        value: state.audit.dropped() as f64,
    });
    if let Some(posture) = state.audit.posture() {
        let (took, failing) = posture.last_evaluation();
        gauges.push(Gauge {
            name: "warden_posture_evaluation_seconds",
            help: "How long the last evaluation of the posture controls took.",
            labels: Vec::new(),
            value: took.as_secs_f64(),
        });
        gauges.push(Gauge {
            name: "warden_posture_failures",
            help: "Control failures the last posture evaluation saw (suppressed ones included).",
            labels: Vec::new(),
            value: failing as f64,
        });
    }
    gauges.extend(code_signing_gauges(state));
    let text = prometheus::render(&metrics.snapshot(false), metrics.refused_series(), &gauges);
    let mut r = Response::new(ReplyBody::from(Bytes::from(text)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus::CONTENT_TYPE),
    );
    r
}

fn plain(status: StatusCode, text: &'static str) -> Reply {
    let mut r = Response::new(ReplyBody::from(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r
}

/// The engine's internals. The async queue's depth is one count of the store's queue
/// (its index): the listener's own connection cap bounds how often it is asked.
fn engine_gauges(engine: &warden_engine::Engine) -> Vec<Gauge> {
    let memory = engine.memory();
    let mib = |n: u64| (n as f64) * 1024.0 * 1024.0;
    let mut gauges = match engine.queued_events() {
        Ok(n) => vec![Gauge {
            name: "warden_async_queue_events",
            help: "Asynchronous events waiting in the durable queue.",
            labels: Vec::new(),
            value: n as f64,
        }],
        Err(e) => {
            tracing::warn!(error = %e, "could not count the async queue for /metrics");
            Vec::new()
        }
    };
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        gauges.push(Gauge {
            name: "warden_async_workers",
            help: "Threads running the server's async work (--worker-threads).",
            labels: Vec::new(),
            value: runtime.metrics().num_workers() as f64,
        });
    }
    let spawns = engine.spawn_latency();
    let pacing = engine.pacing();
    gauges.extend([
        Gauge {
            name: "warden_zygote_spawns_total",
            help: "Instances the zygote was asked to start (failed starts included).",
            labels: Vec::new(),
            value: spawns.spawns as f64,
        },
        Gauge {
            name: "warden_zygote_spawn_seconds_total",
            help: "Time spent starting instances, from the request to the zygote to the process running in its sandbox.",
            labels: Vec::new(),
            value: spawns.total.as_secs_f64(),
        },
        Gauge {
            name: "warden_zygote_spawn_max_seconds",
            help: "The longest instance start since the previous scrape.",
            labels: Vec::new(),
            value: spawns.longest.as_secs_f64(),
        },
        Gauge {
            name: "warden_paced_events_total",
            help: "Events held before delivery until their instance's CPU share had paid for what it used (instances below one CPU).",
            labels: Vec::new(),
            value: pacing.held as f64,
        },
        Gauge {
            name: "warden_pacing_wait_seconds_total",
            help: "Time events were held by CPU pacing, together.",
            labels: Vec::new(),
            value: pacing.waited.as_secs_f64(),
        },
        Gauge {
            name: "warden_idle_instances",
            help: "Warm instances waiting for an invocation.",
            labels: Vec::new(),
            value: engine.idle_instances() as f64,
        },
        Gauge {
            name: "warden_running_invocations",
            help: "Invocations running now.",
            labels: Vec::new(),
            value: engine.running_invocations() as f64,
        },
        Gauge {
            name: "warden_concurrency_leased_slots",
            help: "Concurrency slots this node leases from the store it shares with other nodes (0 when its limits are its own).",
            labels: Vec::new(),
            value: engine.leased_concurrency_slots() as f64,
        },
        Gauge {
            name: "warden_log_queue_bytes",
            help: "Bytes of function log lines waiting for the log writer.",
            labels: Vec::new(),
            value: engine.log_queue_bytes() as f64,
        },
        Gauge {
            name: "warden_memory_budget_used_bytes",
            help: "Memory granted to running instances, of the host memory budget.",
            labels: Vec::new(),
            value: mib(memory.used_mb()),
        },
        Gauge {
            name: "warden_memory_budget_bytes",
            help: "The host memory budget of running instances.",
            labels: Vec::new(),
            value: mib(memory.limit_mb()),
        },
    ]);
    gauges
}

/// Code signing's counts since the server started: packages verified at deploy, and
/// deploys a `Warn` policy let through untrusted.
fn code_signing_gauges(state: &ApiState) -> Vec<Gauge> {
    let Ok(cs) = state.control.code_signing() else {
        return Vec::new();
    };
    let (checks, warnings) = cs.counts();
    vec![
        Gauge {
            name: "warden_code_signing_verified_packages",
            help: "Packages (function code and layers) verified against a code signing config since start.",
            labels: Vec::new(),
            value: checks as f64,
        },
        Gauge {
            name: "warden_code_signing_warned_deploys",
            help: "Untrusted packages deployed under a Warn code signing policy since start.",
            labels: Vec::new(),
            value: warnings as f64,
        },
    ]
}

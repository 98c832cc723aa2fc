//! Metrics: what Lambda's CloudWatch metrics say about functions, and what Warden adds about
//! security, kept three ways.
//!
//! - **Live series** ([`Metrics`]): lock-free running totals per account, per function and
//!   per function version. Recording is a read-locked map lookup and a few relaxed atomic
//!   adds: nothing on an invocation's path waits for a lock another recorder holds, or for
//!   I/O. The number of series is capped ([`DEFAULT_MAX_SERIES`]); past it a new function is
//!   still counted in the account's totals, and the refusal is itself counted.
//! - **Datapoints** ([`store::MetricStore`]): once a minute, off the request path, the
//!   aggregator ([`aggregate::Aggregator`]) turns the difference between two snapshots of
//!   the live series into one-minute datapoints (sample count, sum, minimum, maximum, and
//!   the histogram percentiles are read from), kept 15 days, then rolled into five-minute
//!   datapoints kept 63 days, as CloudWatch keeps them.
//! - **The Prometheus text format** ([`prometheus::render`]), read from the live series.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod alarms;
pub mod emf;
pub mod histogram;
pub mod math;
pub mod postgres;
pub mod prometheus;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use histogram::{Histogram, HistogramSnapshot};

/// The most live series (functions and function versions) kept by default.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// A counted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// An invocation that ran, successfully or not (Lambda's `Invocations`).
    Invocations,
    /// An invocation that ended in a function error (`Errors`).
    Errors,
    /// An invocation refused by a concurrency or memory limit (`Throttles`).
    Throttles,
    /// An asynchronous event queued (`AsyncEventsReceived`).
    AsyncEventsReceived,
    /// An asynchronous event dropped after its last attempt (`AsyncEventsDropped`).
    AsyncEventsDropped,
    /// A request whose signature or credentials did not authenticate.
    AuthenticationFailures,
    /// A request its caller was not allowed to make.
    AccessDenied,
    /// An event or URL request refused by the function's input contract.
    InputValidationRejects,
    /// A connection a function's egress rules refused.
    EgressRejects,
    /// An instance the platform killed: out of memory, timed out, or out of processes.
    SandboxKills,
    /// A known vulnerability newly found in a deployed function (an advisory imported
    /// after its deploy).
    NewFindings,
}

impl Counter {
    /// Every counter, in a fixed order (the index of each in a series).
    pub const ALL: [Counter; 11] = [
        Counter::Invocations,
        Counter::Errors,
        Counter::Throttles,
        Counter::AsyncEventsReceived,
        Counter::AsyncEventsDropped,
        Counter::AuthenticationFailures,
        Counter::AccessDenied,
        Counter::InputValidationRejects,
        Counter::EgressRejects,
        Counter::SandboxKills,
        Counter::NewFindings,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The metric's name, as CloudWatch shows it.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Invocations => "Invocations",
            Counter::Errors => "Errors",
            Counter::Throttles => "Throttles",
            Counter::AsyncEventsReceived => "AsyncEventsReceived",
            Counter::AsyncEventsDropped => "AsyncEventsDropped",
            Counter::AuthenticationFailures => "AuthenticationFailures",
            Counter::AccessDenied => "AccessDenied",
            Counter::InputValidationRejects => "InputValidationRejects",
            Counter::EgressRejects => "EgressRejects",
            Counter::SandboxKills => "SandboxKills",
            Counter::NewFindings => "NewFindings",
        }
    }

    /// The namespace it is published in: Lambda's own metrics in `AWS/Lambda`, Warden's
    /// security metrics in `Warden/Security`.
    pub fn namespace(self) -> &'static str {
        match self {
            Counter::AuthenticationFailures
            | Counter::AccessDenied
            | Counter::InputValidationRejects
            | Counter::EgressRejects
            | Counter::SandboxKills
            | Counter::NewFindings => SECURITY_NAMESPACE,
            _ => LAMBDA_NAMESPACE,
        }
    }
}

/// Lambda's namespace.
pub const LAMBDA_NAMESPACE: &str = "AWS/Lambda";
/// Warden's security metrics' namespace.
pub const SECURITY_NAMESPACE: &str = "Warden/Security";

/// A timed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// An invocation's duration (`Duration`).
    Duration,
    /// How long an asynchronous event waited before its first attempt (`AsyncEventAge`).
    AsyncEventAge,
}

impl Timer {
    /// Every timer, in a fixed order.
    pub const ALL: [Timer; 2] = [Timer::Duration, Timer::AsyncEventAge];

    fn index(self) -> usize {
        self as usize
    }

    /// The metric's name, as CloudWatch shows it (in milliseconds).
    pub fn name(self) -> &'static str {
        match self {
            Timer::Duration => "Duration",
            Timer::AsyncEventAge => "AsyncEventAge",
        }
    }
}

/// The running totals of one series.
struct Series {
    counters: [AtomicU64; Counter::ALL.len()],
    timers: [Histogram; Timer::ALL.len()],
    /// The smallest and largest value (µs) of each timer since the last minute's snapshot.
    minute_min: [AtomicU64; Timer::ALL.len()],
    minute_max: [AtomicU64; Timer::ALL.len()],
    /// Invocations running now, and the most at once since the last minute's snapshot.
    concurrent: AtomicI64,
    concurrent_peak: AtomicU64,
}

impl Default for Series {
    fn default() -> Self {
        Self {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            timers: std::array::from_fn(|_| Histogram::default()),
            minute_min: std::array::from_fn(|_| AtomicU64::new(u64::MAX)),
            minute_max: std::array::from_fn(|_| AtomicU64::new(0)),
            concurrent: AtomicI64::new(0),
            concurrent_peak: AtomicU64::new(0),
        }
    }
}

impl Series {
    fn count(&self, counter: Counter) {
        self.add(counter, 1);
    }

    fn add(&self, counter: Counter, n: u64) {
        self.counters[counter.index()].fetch_add(n, Ordering::Relaxed);
    }

    fn time(&self, timer: Timer, micros: u64) {
        let i = timer.index();
        self.timers[i].record(micros);
        self.minute_min[i].fetch_min(micros, Ordering::Relaxed);
        self.minute_max[i].fetch_max(micros, Ordering::Relaxed);
    }

    fn enter(&self) {
        let now = self.concurrent.fetch_add(1, Ordering::Relaxed) + 1;
        self.concurrent_peak
            .fetch_max(u64::try_from(now).unwrap_or(0), Ordering::Relaxed);
    }

    fn leave(&self) {
        self.concurrent.fetch_sub(1, Ordering::Relaxed);
    }

    fn snapshot(&self, dims: Dimensions, new_minute: bool) -> SeriesSnapshot {
        let take = |a: &AtomicU64, fresh: u64| {
            if new_minute {
                a.swap(fresh, Ordering::Relaxed)
            } else {
                a.load(Ordering::Relaxed)
            }
        };
        let concurrent = self.concurrent.load(Ordering::Relaxed).max(0) as u64;
        SeriesSnapshot {
            dims,
            counters: std::array::from_fn(|i| self.counters[i].load(Ordering::Relaxed)),
            timers: std::array::from_fn(|i| TimerSnapshot {
                totals: self.timers[i].snapshot(),
                minute_min: Some(take(&self.minute_min[i], u64::MAX)).filter(|m| *m != u64::MAX),
                minute_max: Some(take(&self.minute_max[i], 0)).filter(|m| *m != 0),
            }),
            concurrent,
            // A new minute starts from the invocations still running.
            concurrent_peak: take(&self.concurrent_peak, concurrent).max(concurrent),
        }
    }
}

/// Which series: the account's, a function's, a function version's, or an alias's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dimensions {
    /// The function (`FunctionName`), or none for the account's totals.
    pub function: Option<String>,
    /// The version that ran (`ExecutedVersion`), with a function.
    pub version: Option<String>,
    /// The alias invoked (`Resource`, `FUNCTION:ALIAS`), with a function.
    pub resource: Option<String>,
}

impl Dimensions {
    /// The account's totals.
    pub fn account() -> Self {
        Self {
            function: None,
            version: None,
            resource: None,
        }
    }

    /// CloudWatch's dimensions, as `(name, value)` pairs in their canonical order.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(f) = &self.function {
            out.push(("FunctionName", f.as_str()));
        }
        if let Some(v) = &self.version {
            out.push(("ExecutedVersion", v.as_str()));
        }
        if let Some(r) = &self.resource {
            out.push(("Resource", r.as_str()));
        }
        out
    }

    /// The canonical text of the dimensions (`ExecutedVersion=1,FunctionName=f`), as stored.
    pub fn key(&self) -> String {
        dimensions_key(&self.pairs())
    }
}

/// The canonical text of a set of dimensions, as the store keys datapoints: `Name=Value`
/// pairs sorted by name, joined by commas (CloudWatch treats dimensions as a set).
pub fn dimensions_key(pairs: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = pairs.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A timer's totals and this minute's extremes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSnapshot {
    /// Running totals.
    pub totals: HistogramSnapshot,
    /// The smallest value (µs) since the previous minute's snapshot.
    pub minute_min: Option<u64>,
    /// The largest value (µs) since the previous minute's snapshot.
    pub minute_max: Option<u64>,
}

/// One series' totals at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesSnapshot {
    /// Which series.
    pub dims: Dimensions,
    /// Running totals, indexed as [`Counter::ALL`].
    pub counters: [u64; Counter::ALL.len()],
    /// Indexed as [`Timer::ALL`].
    pub timers: [TimerSnapshot; Timer::ALL.len()],
    /// Invocations running now.
    pub concurrent: u64,
    /// The most running at once since the previous minute's snapshot.
    pub concurrent_peak: u64,
}

impl SeriesSnapshot {
    /// A counter's running total.
    pub fn counter(&self, c: Counter) -> u64 {
        self.counters[c.index()]
    }

    /// A timer's snapshot.
    pub fn timer(&self, t: Timer) -> &TimerSnapshot {
        &self.timers[t.index()]
    }
}

struct FunctionSeries {
    all: Arc<Series>,
    versions: RwLock<HashMap<String, Arc<Series>>>,
    /// By alias name: Lambda's `Resource` dimension (`FUNCTION:ALIAS`).
    aliases: RwLock<HashMap<String, Arc<Series>>>,
}

/// The live series of one server.
pub struct Metrics {
    account: Series,
    functions: RwLock<HashMap<String, Arc<FunctionSeries>>>,
    series: AtomicUsize,
    max_series: usize,
    refused_series: AtomicU64,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Live series, at most `max_series` of functions and versions.
    pub fn new(max_series: usize) -> Self {
        Self {
            account: Series::default(),
            functions: RwLock::new(HashMap::new()),
            series: AtomicUsize::new(0),
            max_series,
            refused_series: AtomicU64::new(0),
        }
    }

    /// Takes a slot for a new series, or counts the refusal.
    fn admit_series(&self) -> bool {
        let admitted = self
            .series
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_series).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.refused_series.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    fn function(&self, name: &str) -> Option<Arc<FunctionSeries>> {
        if let Some(f) = read(&self.functions).get(name) {
            return Some(Arc::clone(f));
        }
        let mut all = write(&self.functions);
        if let Some(f) = all.get(name) {
            return Some(Arc::clone(f));
        }
        if !self.admit_series() {
            return None;
        }
        let f = Arc::new(FunctionSeries {
            all: Arc::new(Series::default()),
            versions: RwLock::new(HashMap::new()),
            aliases: RwLock::new(HashMap::new()),
        });
        all.insert(name.to_owned(), Arc::clone(&f));
        Some(f)
    }

    fn version(&self, f: &FunctionSeries, version: &str) -> Option<Arc<Series>> {
        self.sub_series(&f.versions, version)
    }

    /// The series of `key` in `map` (a version's, an alias's), made if the cap allows.
    fn sub_series(
        &self,
        map: &RwLock<HashMap<String, Arc<Series>>>,
        key: &str,
    ) -> Option<Arc<Series>> {
        if let Some(s) = read(map).get(key) {
            return Some(Arc::clone(s));
        }
        let mut all = write(map);
        if let Some(s) = all.get(key) {
            return Some(Arc::clone(s));
        }
        if !self.admit_series() {
            return None;
        }
        let s = Arc::new(Series::default());
        all.insert(key.to_owned(), Arc::clone(&s));
        Some(s)
    }

    /// Applies `apply` to the account's series, the function's and the version's.
    fn each(&self, function: Option<&str>, version: Option<&str>, apply: impl Fn(&Series)) {
        self.each_with_alias(function, version, None, apply);
    }

    /// [`Metrics::each`], and the alias's series when the invocation named one.
    fn each_with_alias(
        &self,
        function: Option<&str>,
        version: Option<&str>,
        alias: Option<&str>,
        apply: impl Fn(&Series),
    ) {
        apply(&self.account);
        let Some(f) = function.and_then(|name| self.function(name)) else {
            return;
        };
        apply(&f.all);
        if let Some(v) = version.and_then(|v| self.version(&f, v)) {
            apply(&v);
        }
        if let Some(a) = alias.and_then(|a| self.sub_series(&f.aliases, a)) {
            apply(&a);
        }
    }

    /// Counts one event.
    pub fn count(&self, counter: Counter, function: Option<&str>, version: Option<&str>) {
        self.each(function, version, |s| s.count(counter));
    }

    /// Counts `n` events at once (the packets of a rejected flow), as [`Metrics::count`].
    pub fn count_n(&self, counter: Counter, function: Option<&str>, version: Option<&str>, n: u64) {
        self.each(function, version, |s| s.add(counter, n));
    }

    /// Records one timed value, in microseconds.
    pub fn time(&self, timer: Timer, function: &str, version: Option<&str>, micros: u64) {
        self.each(Some(function), version, |s| s.time(timer, micros));
    }

    /// An invocation began running (through `alias`, when the caller named one).
    pub fn started(&self, function: &str, version: &str, alias: Option<&str>) {
        self.each_with_alias(Some(function), Some(version), alias, Series::enter);
    }

    /// An invocation that began ([`Metrics::started`]) ended.
    pub fn finished(
        &self,
        function: &str,
        version: &str,
        alias: Option<&str>,
        duration_micros: u64,
        error: bool,
    ) {
        self.each_with_alias(Some(function), Some(version), alias, |s| {
            s.leave();
            s.count(Counter::Invocations);
            if error {
                s.count(Counter::Errors);
            }
            s.time(Timer::Duration, duration_micros);
        });
    }

    /// An invocation that began and whose end will never be seen (its caller went away):
    /// its concurrency is given back, nothing is counted.
    pub fn abandoned(&self, function: &str, version: &str, alias: Option<&str>) {
        self.each_with_alias(Some(function), Some(version), alias, Series::leave);
    }

    /// How many times a series was not made because the cap was reached (each record that
    /// wanted one counts).
    pub fn refused_series(&self) -> u64 {
        self.refused_series.load(Ordering::Relaxed)
    }

    /// Every series' totals, the account's first, then functions and versions by name.
    /// With `new_minute`, this minute's extremes start over (the aggregator's snapshot);
    /// without, nothing changes (a reader's).
    pub fn snapshot(&self, new_minute: bool) -> Vec<SeriesSnapshot> {
        let mut out = vec![self.account.snapshot(Dimensions::account(), new_minute)];
        let functions: Vec<(String, Arc<FunctionSeries>)> = read(&self.functions)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let mut rest = Vec::new();
        for (name, f) in functions {
            let dims = Dimensions {
                function: Some(name.clone()),
                version: None,
                resource: None,
            };
            rest.push(f.all.snapshot(dims, new_minute));
            let aliases: Vec<(String, Arc<Series>)> = read(&f.aliases)
                .iter()
                .map(|(k, v)| (k.clone(), Arc::clone(v)))
                .collect();
            for (alias, s) in aliases {
                let dims = Dimensions {
                    function: Some(name.clone()),
                    version: None,
                    resource: Some(format!("{name}:{alias}")),
                };
                rest.push(s.snapshot(dims, new_minute));
            }
            let versions: Vec<(String, Arc<Series>)> = read(&f.versions)
                .iter()
                .map(|(k, v)| (k.clone(), Arc::clone(v)))
                .collect();
            for (version, s) in versions {
                let dims = Dimensions {
                    function: Some(name.clone()),
                    version: Some(version),
                    resource: None,
                };
                rest.push(s.snapshot(dims, new_minute));
            }
        }
        rest.sort_by(|a, b| a.dims.cmp(&b.dims));
        out.extend(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invocation_counts_in_the_account_the_function_and_the_version() {
        let m = Metrics::new(10);
        m.started("f", "1", None);
        m.started("f", "1", None);
        m.finished("f", "1", None, 2_000, false);
        m.finished("f", "1", None, 4_000, true);
        m.count(Counter::Throttles, Some("f"), None);
        m.count(Counter::AccessDenied, None, None);
        let all = m.snapshot(true);
        let dims: Vec<String> = all.iter().map(|s| s.dims.key()).collect();
        assert_eq!(
            dims,
            ["", "FunctionName=f", "ExecutedVersion=1,FunctionName=f"]
        );
        for s in &all {
            assert_eq!(s.counter(Counter::Invocations), 2, "{:?}", s.dims);
            assert_eq!(s.counter(Counter::Errors), 1);
            assert_eq!(s.concurrent, 0);
            assert_eq!(s.concurrent_peak, 2);
            let d = s.timer(Timer::Duration);
            assert_eq!((d.totals.count, d.totals.sum), (2, 6_000));
            assert_eq!((d.minute_min, d.minute_max), (Some(2_000), Some(4_000)));
        }
        assert_eq!(all[0].counter(Counter::AccessDenied), 1);
        assert_eq!(all[1].counter(Counter::Throttles), 1);
        assert_eq!(all[2].counter(Counter::Throttles), 0);
        // The next minute starts over for the extremes, not for the totals.
        let next = m.snapshot(true);
        assert_eq!(next[1].timer(Timer::Duration).minute_max, None);
        assert_eq!(next[1].concurrent_peak, 0);
        assert_eq!(next[1].counter(Counter::Invocations), 2);
    }

    #[test]
    fn an_invocation_through_an_alias_also_counts_in_the_alias_series() {
        let m = Metrics::new(10);
        m.started("f", "2", Some("live"));
        m.finished("f", "2", Some("live"), 1_000, true);
        m.started("f", "2", None);
        m.finished("f", "2", None, 1_000, false);
        let all = m.snapshot(true);
        let by_key = |key: &str| {
            all.iter()
                .find(|s| s.dims.key() == key)
                .unwrap_or_else(|| panic!("no {key}"))
        };
        let alias = by_key("FunctionName=f,Resource=f:live");
        assert_eq!(alias.counter(Counter::Invocations), 1);
        assert_eq!(alias.counter(Counter::Errors), 1);
        assert_eq!(by_key("FunctionName=f").counter(Counter::Invocations), 2);
        assert_eq!(
            by_key("ExecutedVersion=2,FunctionName=f").counter(Counter::Invocations),
            2
        );
        // Prometheus counts each invocation once per function, aliases aside.
        let text = prometheus::render(&all, 0, &[]);
        assert!(
            text.contains("warden_invocations_total{function=\"f\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn past_the_cap_a_function_counts_only_in_the_account() {
        let m = Metrics::new(1);
        m.started("a", "1", None);
        m.finished("a", "1", None, 1, false);
        assert!(m.refused_series() >= 1, "the version's series was refused");
        m.started("b", "1", None);
        m.finished("b", "1", None, 1, false);
        let all = m.snapshot(false);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].counter(Counter::Invocations), 2);
        assert_eq!(all[1].dims.key(), "FunctionName=a");
        assert!(m.refused_series() >= 2);
    }
}

//! Checking a parsed query's shape, and running it.

use std::cmp::Ordering;
use std::collections::hash_map::{DefaultHasher, Entry as MapEntry};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use super::ast::{AggFunc, Expr, GroupKey, SortKey, Stats, Step};
use super::eval::{eval, natural_cmp, truthy, Fields, SortVal, Val};
use super::lexer::line_column;
use super::parser::{Command, Located};
use super::record::Record;
use super::{
    Event, ExecError, Query, QueryError, QueryOutput, QueryStatistics, DEFAULT_LIMIT, MAX_GROUPS,
    MAX_LIMIT, MAX_RESULT_BYTES,
};

/// Checks the order of commands and builds the query.
pub(super) fn plan(src: &str, commands: Vec<Located>) -> Result<Query, QueryError> {
    let mut pre = Vec::new();
    let mut post = Vec::new();
    let mut stats: Option<Stats> = None;
    let mut sort: Option<Vec<SortKey>> = None;
    let mut limit = None;
    let mut display = None;
    let mut pre_names: Vec<String> = Vec::new();
    let mut post_names: Vec<String> = Vec::new();
    // Set once `sort` or `limit` is seen: only `sort`, `limit` and `display` may follow.
    let mut closed_by: Option<&'static str> = None;
    for Located { command, start } in commands {
        let misplaced = |what: String| {
            let (line, column) = line_column(src, start);
            QueryError::Misplaced { what, line, column }
        };
        let step_name = match &command {
            Command::Fields(_) => Some("fields"),
            Command::Filter(_) => Some("filter"),
            Command::Stats(_) => Some("stats"),
            _ => None,
        };
        if let (Some(name), Some(closer)) = (step_name, closed_by) {
            return Err(misplaced(format!(
                "A {name} command after {closer} is not supported: put it before the {closer}"
            )));
        }
        match command {
            Command::Filter(e) => {
                let steps = if stats.is_some() { &mut post } else { &mut pre };
                steps.push(Step::Filter(e));
            }
            Command::Fields(projections) => {
                let names = if stats.is_some() {
                    &mut post_names
                } else {
                    &mut pre_names
                };
                for p in &projections {
                    push_unique(names, &p.name);
                }
                let steps = if stats.is_some() { &mut post } else { &mut pre };
                steps.push(Step::Fields(projections));
            }
            Command::Stats(s) => stats = Some(s),
            Command::Sort(keys) => {
                if sort.is_some() {
                    return Err(misplaced("Only one sort command is supported".to_owned()));
                }
                sort = Some(keys);
                closed_by = Some("sort");
            }
            Command::Limit(n) => {
                if limit.is_some() {
                    return Err(misplaced("Only one limit command is supported".to_owned()));
                }
                limit = Some(n);
                closed_by = Some("limit");
            }
            Command::Display(fields) => display = Some(fields),
        }
    }
    let output = match (display, &stats) {
        (Some(fields), _) => fields,
        (None, Some(s)) => {
            let mut names = Vec::new();
            for g in &s.groups {
                push_unique(&mut names, &g.name);
            }
            for a in &s.aggregates {
                push_unique(&mut names, &a.name);
            }
            for n in &post_names {
                push_unique(&mut names, n);
            }
            names
        }
        (None, None) if !pre_names.is_empty() => pre_names,
        (None, None) => vec!["@timestamp".to_owned(), "@message".to_owned()],
    };
    let sort = match (sort, &stats) {
        (Some(keys), _) => keys,
        (None, Some(_)) => Vec::new(),
        (None, None) => vec![SortKey {
            expr: Expr::Field("@timestamp".to_owned()),
            descending: true,
        }],
    };
    Ok(Query {
        pre,
        stats,
        post,
        sort,
        limit,
        output,
    })
}

fn push_unique(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
}

/// Applies steps to a record or row; false if a filter dropped it.
fn apply<F: Fields + SetField>(steps: &[Step], target: &mut F) -> bool {
    for step in steps {
        match step {
            Step::Filter(e) => {
                if !truthy(eval(e, &*target).as_ref()) {
                    return false;
                }
            }
            Step::Fields(projections) => {
                for p in projections.iter().filter(|p| !p.is_plain()) {
                    let value = eval(&p.expr, &*target).map(Val::into_owned);
                    target.set_field(&p.name, value);
                }
            }
        }
    }
    true
}

/// Somewhere `fields ... as` can put what it computes.
trait SetField {
    fn set_field(&mut self, name: &str, value: Option<Val<'static>>);
}

impl SetField for Record<'_> {
    fn set_field(&mut self, name: &str, value: Option<Val<'static>>) {
        self.set(name, value);
    }
}

/// A `stats` result row.
struct Row {
    cells: Vec<(String, Option<Val<'static>>)>,
}

impl Fields for Row {
    fn get(&self, name: &str) -> Option<Val<'_>> {
        self.cells
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_ref().map(Val::borrowed))
    }
}

impl SetField for Row {
    fn set_field(&mut self, name: &str, value: Option<Val<'static>>) {
        self.cells.push((name.to_owned(), value));
    }
}

/// One part of a sort key: missing values come last in either direction.
#[derive(Debug)]
struct KeyPart {
    value: Option<SortVal>,
    descending: bool,
}

fn cmp_parts(a: &[KeyPart], b: &[KeyPart]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (&x.value, &y.value) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(p), Some(q)) => {
                let o = natural_cmp(p, q);
                if x.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if o.is_ne() {
            return o;
        }
    }
    Ordering::Equal
}

fn sort_key<F: Fields>(keys: &[SortKey], fields: &F) -> Vec<KeyPart> {
    keys.iter()
        .map(|k| KeyPart {
            value: eval(&k.expr, fields).map(|v| SortVal::of(&v)),
            descending: k.descending,
        })
        .collect()
}

/// A kept row: ordered by key, then by arrival; the greatest is the worst.
struct Ranked {
    key: Vec<KeyPart>,
    seq: u64,
    row: Vec<(String, String)>,
}

impl Ranked {
    fn rank(&self, key: &[KeyPart], seq: u64) -> Ordering {
        cmp_parts(&self.key, key).then(self.seq.cmp(&seq))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank(&other.key, other.seq)
    }
}

fn output_row<F: Fields>(names: &[String], fields: &F) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|n| fields.get(n).map(|v| (n.clone(), v.display().into_owned())))
        .collect()
}

impl Query {
    /// Runs the query over `events`. `limit_cap` is the caller's own cap on rows (the
    /// `limit` parameter of StartQuery): the rows returned are at most the smaller of it
    /// and the query's `limit`, [`DEFAULT_LIMIT`] when neither is given, and never more
    /// than [`MAX_LIMIT`].
    pub fn run<'e, I>(&self, events: I, limit_cap: Option<usize>) -> Result<QueryOutput, ExecError>
    where
        I: IntoIterator<Item = Event<'e>>,
    {
        let mut run = self.start(limit_cap);
        for event in events {
            run.push(event)?;
        }
        Ok(run.finish())
    }

    /// Starts a run that is fed one event at a time ([`Run::push`]), for callers whose
    /// events come from a callback rather than an iterator. `limit_cap` as in
    /// [`Query::run`].
    pub fn start(&self, limit_cap: Option<usize>) -> Run<'_> {
        let limit = match (self.limit, limit_cap) {
            (Some(a), Some(b)) => a.min(b),
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => DEFAULT_LIMIT,
        }
        .clamp(1, MAX_LIMIT);
        let state = match &self.stats {
            None => RunState::Events {
                kept: BinaryHeap::with_capacity(limit.min(1024)),
                seq: 0,
            },
            Some(stats) => {
                let mut index = HashMap::new();
                let mut groups = Vec::new();
                if stats.groups.is_empty() {
                    index.insert(Vec::new(), 0);
                    groups.push((Vec::new(), fresh_states(stats)));
                }
                RunState::Stats { index, groups }
            }
        };
        Run {
            query: self,
            limit,
            statistics: QueryStatistics {
                records_matched: 0.0,
                records_scanned: 0.0,
                bytes_scanned: 0.0,
            },
            state,
            kept_bytes: 0,
        }
    }
}

/// The aggregates' initial states for a new group.
fn fresh_states(stats: &Stats) -> Vec<AggState> {
    stats
        .aggregates
        .iter()
        .map(|a| AggState::new(a.func))
        .collect()
}

/// A query being run, one event at a time; what it keeps is bounded by its `limit`
/// (non-stats queries) or by [`MAX_GROUPS`] (stats queries).
pub struct Run<'q> {
    query: &'q Query,
    limit: usize,
    statistics: QueryStatistics,
    state: RunState,
    /// Bytes of the kept rows' cells (or of the stats groups' keys).
    kept_bytes: usize,
}

/// What one kept row costs: its cells' names and values, and its sort key's text.
fn row_bytes(row: &[(String, String)], key: &[KeyPart]) -> usize {
    let cells: usize = row.iter().map(|(k, v)| k.len() + v.len()).sum();
    let sort: usize = key
        .iter()
        .map(|k| match &k.value {
            Some(SortVal::Text(t)) => t.len(),
            _ => 8,
        })
        .sum();
    cells + sort
}

enum RunState {
    /// The best `limit` rows so far, worst on top, and the next event's arrival number.
    Events { kept: BinaryHeap<Ranked>, seq: u64 },
    /// Each group's key and aggregate states, and where each key sits.
    Stats {
        index: HashMap<Vec<GroupVal>, usize>,
        groups: Vec<(Vec<GroupVal>, Vec<AggState>)>,
    },
}

impl Run<'_> {
    /// Feeds one event; fails only when a stats query would exceed [`MAX_GROUPS`].
    pub fn push(&mut self, event: Event<'_>) -> Result<(), ExecError> {
        let query = self.query;
        self.statistics.records_scanned += 1.0;
        self.statistics.bytes_scanned += event.message.len() as f64;
        let timestamp_ms = event.timestamp_ms;
        let mut record = Record::new(event);
        if !apply(&query.pre, &mut record) {
            if let RunState::Events { seq, .. } = &mut self.state {
                *seq += 1;
            }
            return Ok(());
        }
        self.statistics.records_matched += 1.0;
        match &mut self.state {
            RunState::Events { kept, seq } => {
                let at = *seq;
                *seq += 1;
                let key = sort_key(&query.sort, &record);
                let better = kept.len() < self.limit
                    || kept
                        .peek()
                        .is_some_and(|worst| worst.rank(&key, at).is_gt());
                if better {
                    if kept.len() >= self.limit {
                        if let Some(worst) = kept.pop() {
                            self.kept_bytes -= row_bytes(&worst.row, &worst.key);
                        }
                    }
                    let row = output_row(&query.output, &record);
                    self.kept_bytes += row_bytes(&row, &key);
                    if self.kept_bytes > MAX_RESULT_BYTES {
                        return Err(ExecError::ResultsTooLarge {
                            max: MAX_RESULT_BYTES,
                        });
                    }
                    kept.push(Ranked { key, seq: at, row });
                }
            }
            RunState::Stats { index, groups } => {
                let Some(stats) = &query.stats else {
                    return Ok(());
                };
                let key: Vec<GroupVal> = stats
                    .groups
                    .iter()
                    .map(|g| match &g.key {
                        GroupKey::Bin(period) => {
                            GroupVal::Bin(timestamp_ms.div_euclid(*period).saturating_mul(*period))
                        }
                        GroupKey::Expr(e) => eval(e, &record).map_or(GroupVal::Missing, |v| {
                            GroupVal::Text(v.display().into_owned())
                        }),
                    })
                    .collect();
                let at = match index.entry(key) {
                    MapEntry::Occupied(o) => *o.get(),
                    MapEntry::Vacant(v) => {
                        if groups.len() >= MAX_GROUPS {
                            return Err(ExecError::TooManyGroups { max: MAX_GROUPS });
                        }
                        self.kept_bytes += v
                            .key()
                            .iter()
                            .map(|g| match g {
                                GroupVal::Text(t) => t.len(),
                                _ => 8,
                            })
                            .sum::<usize>();
                        if self.kept_bytes > MAX_RESULT_BYTES {
                            return Err(ExecError::ResultsTooLarge {
                                max: MAX_RESULT_BYTES,
                            });
                        }
                        groups.push((v.key().clone(), fresh_states(stats)));
                        *v.insert(groups.len() - 1)
                    }
                };
                if let Some((_, states)) = groups.get_mut(at) {
                    for (state, aggregate) in states.iter_mut().zip(&stats.aggregates) {
                        match &aggregate.arg {
                            None => state.add_row(),
                            Some(arg) => state.add(eval(arg, &record).as_ref()),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The rows and statistics of everything pushed.
    pub fn finish(self) -> QueryOutput {
        let query = self.query;
        let rows = match self.state {
            RunState::Events { kept, .. } => {
                kept.into_sorted_vec().into_iter().map(|r| r.row).collect()
            }
            RunState::Stats { groups, .. } => match &query.stats {
                Some(stats) => stats_rows(query, stats, groups, self.limit),
                None => Vec::new(),
            },
        };
        QueryOutput {
            rows,
            statistics: self.statistics,
        }
    }
}

/// A stats query's output: one row per group, its post-stats commands applied, sorted and
/// cut to `limit`.
fn stats_rows(
    query: &Query,
    stats: &Stats,
    groups: Vec<(Vec<GroupVal>, Vec<AggState>)>,
    limit: usize,
) -> Vec<Vec<(String, String)>> {
    let mut rows: Vec<Row> = Vec::with_capacity(groups.len());
    for (key, states) in groups {
        let mut cells: Vec<(String, Option<Val<'static>>)> = Vec::new();
        for (g, v) in stats.groups.iter().zip(key) {
            let value = match v {
                GroupVal::Missing => None,
                GroupVal::Text(s) => Some(Val::Str(s.into())),
                GroupVal::Bin(t) => Some(Val::Time(t)),
            };
            cells.push((g.name.clone(), value));
        }
        for (a, state) in stats.aggregates.iter().zip(states) {
            cells.push((a.name.clone(), state.finish(a.percentile)));
        }
        let mut row = Row { cells };
        if apply(&query.post, &mut row) {
            rows.push(row);
        }
    }
    if !query.sort.is_empty() {
        let mut keyed: Vec<(Vec<KeyPart>, Row)> = rows
            .into_iter()
            .map(|r| (sort_key(&query.sort, &r), r))
            .collect();
        keyed.sort_by(|a, b| cmp_parts(&a.0, &b.0));
        rows = keyed.into_iter().map(|(_, r)| r).collect();
    }
    rows.truncate(limit);
    rows.iter().map(|r| output_row(&query.output, r)).collect()
}

/// One part of a group's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum GroupVal {
    Missing,
    Text(String),
    Bin(i64),
}

/// Most values `pct` keeps per group.
const PCT_SAMPLES: usize = 1_000;
/// Most distinct values `count_distinct` counts exactly per group.
const DISTINCT_EXACT: usize = 256;
/// HyperLogLog registers (2^10) once it estimates.
const HLL_BITS: u32 = 10;

/// The running state of one aggregate in one group.
enum AggState {
    Count(u64),
    Distinct(Distinct),
    Sum(Option<f64>),
    Avg { total: f64, n: u64 },
    Min(Option<Extreme>),
    Max(Option<Extreme>),
    Pct(Reservoir),
}

/// A `min` or `max` so far: numbers (and timestamps) win over text.
#[derive(Debug, Clone)]
enum Extreme {
    Num(f64),
    Time(i64),
    Text(String),
}

impl Extreme {
    fn of(v: &Val<'_>) -> Extreme {
        match v {
            Val::Time(t) => Extreme::Time(*t),
            other => match other.as_number() {
                Some(n) => Extreme::Num(n),
                None => Extreme::Text(other.display().into_owned()),
            },
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Extreme::Num(n) => Some(*n),
            Extreme::Time(t) => Some(*t as f64),
            Extreme::Text(_) => None,
        }
    }

    /// Whether `self` should replace `current` for `min` (`less`) or `max`.
    fn beats(&self, current: &Extreme, less: bool) -> bool {
        match (self.number(), current.number()) {
            (Some(a), Some(b)) => {
                if less {
                    a < b
                } else {
                    a > b
                }
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => match (self, current) {
                (Extreme::Text(a), Extreme::Text(b)) => {
                    if less {
                        a < b
                    } else {
                        a > b
                    }
                }
                _ => false,
            },
        }
    }

    fn into_val(self) -> Val<'static> {
        match self {
            Extreme::Num(n) => Val::Num(n),
            Extreme::Time(t) => Val::Time(t),
            Extreme::Text(s) => Val::Str(s.into()),
        }
    }
}

/// A uniform sample of a group's values (exact while there are few).
struct Reservoir {
    seen: u64,
    samples: Vec<f64>,
    state: u64,
}

impl Reservoir {
    fn add(&mut self, x: f64) {
        self.seen += 1;
        if self.samples.len() < PCT_SAMPLES {
            self.samples.push(x);
            return;
        }
        // xorshift64*, seeded identically for every group: the same input gives the same
        // sample on every run.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let slot = r % self.seen;
        if let Some(s) = usize::try_from(slot)
            .ok()
            .and_then(|i| self.samples.get_mut(i))
        {
            *s = x;
        }
    }

    /// Nearest-rank percentile.
    fn percentile(&mut self, p: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        self.samples.sort_by(f64::total_cmp);
        let n = self.samples.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.samples.get(rank.clamp(1, n) - 1).copied()
    }
}

/// Distinct values: exact hashes while few, then a HyperLogLog sketch.
enum Distinct {
    Exact(HashSet<u64>),
    Sketch(Vec<u8>),
}

impl Distinct {
    fn insert(&mut self, hash: u64) {
        match self {
            Distinct::Exact(set) => {
                set.insert(hash);
                if set.len() > DISTINCT_EXACT {
                    let mut registers = vec![0u8; 1 << HLL_BITS];
                    for h in set.iter() {
                        hll_add(&mut registers, *h);
                    }
                    *self = Distinct::Sketch(registers);
                }
            }
            Distinct::Sketch(registers) => hll_add(registers, hash),
        }
    }

    fn count(&self) -> f64 {
        match self {
            Distinct::Exact(set) => set.len() as f64,
            Distinct::Sketch(registers) => {
                let m = registers.len() as f64;
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let sum: f64 = registers.iter().map(|r| (-f64::from(*r)).exp2()).sum();
                let estimate = alpha * m * m / sum;
                let zeros = registers.iter().filter(|r| **r == 0).count();
                let estimate = if estimate <= 2.5 * m && zeros > 0 {
                    m * (m / zeros as f64).ln()
                } else {
                    estimate
                };
                estimate.round()
            }
        }
    }
}

fn hll_add(registers: &mut [u8], hash: u64) {
    let index = (hash >> (64 - HLL_BITS)) as usize;
    let rest = (hash << HLL_BITS) | (1 << (HLL_BITS - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    if let Some(r) = registers.get_mut(index) {
        *r = (*r).max(rank);
    }
}

fn keep_extreme(current: &mut Option<Extreme>, candidate: Extreme, less: bool) {
    if current.as_ref().is_none_or(|c| candidate.beats(c, less)) {
        *current = Some(candidate);
    }
}

fn hash_of(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl AggState {
    fn new(func: AggFunc) -> AggState {
        match func {
            AggFunc::Count => AggState::Count(0),
            AggFunc::CountDistinct => AggState::Distinct(Distinct::Exact(HashSet::new())),
            AggFunc::Sum => AggState::Sum(None),
            AggFunc::Avg => AggState::Avg { total: 0.0, n: 0 },
            AggFunc::Min => AggState::Min(None),
            AggFunc::Max => AggState::Max(None),
            AggFunc::Pct => AggState::Pct(Reservoir {
                seen: 0,
                samples: Vec::new(),
                state: 0x9e37_79b9_7f4a_7c15,
            }),
        }
    }

    /// `count(*)`: one more row.
    fn add_row(&mut self) {
        if let AggState::Count(n) = self {
            *n += 1;
        }
    }

    fn add(&mut self, value: Option<&Val<'_>>) {
        let Some(v) = value else {
            return;
        };
        match self {
            AggState::Count(n) => *n += 1,
            AggState::Distinct(d) => d.insert(hash_of(&v.display())),
            AggState::Sum(total) => {
                if let Some(x) = v.as_number() {
                    *total = Some(total.unwrap_or(0.0) + x);
                }
            }
            AggState::Avg { total, n } => {
                if let Some(x) = v.as_number() {
                    *total += x;
                    *n += 1;
                }
            }
            AggState::Min(current) => keep_extreme(current, Extreme::of(v), true),
            AggState::Max(current) => keep_extreme(current, Extreme::of(v), false),
            AggState::Pct(r) => {
                if let Some(x) = v.as_number() {
                    r.add(x);
                }
            }
        }
    }

    fn finish(self, percentile: f64) -> Option<Val<'static>> {
        match self {
            AggState::Count(n) => Some(Val::Num(n as f64)),
            AggState::Distinct(d) => Some(Val::Num(d.count())),
            AggState::Sum(total) => total.map(Val::Num),
            AggState::Avg { total, n } => (n > 0).then(|| Val::Num(total / n as f64)),
            AggState::Min(e) | AggState::Max(e) => e.map(Extreme::into_val),
            AggState::Pct(mut r) => r.percentile(percentile).map(Val::Num),
        }
    }
}

//! A lock-free histogram of durations (in microseconds), log-linear: eight buckets per
//! power of two, so a percentile read from it (the upper bound of its bucket) is at most
//! 12.5% above the true value, in 2 KiB per series, with one atomic add per recorded value.
//!
//! Values are kept cumulatively (never reset): the aggregator takes the difference of two
//! snapshots for a minute's datapoint, and Prometheus reads the running totals.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two.
const SUB: u32 = 8;
/// Powers of two covered: 1 µs to 2^31 µs (about 36 minutes, past Lambda's 15-minute
/// timeout).
const OCTAVES: u32 = 31;
/// Buckets: one below 1 µs, then `SUB` per octave, and one overflow.
pub const BUCKETS: usize = (OCTAVES * SUB) as usize + 2;

/// The bucket a value (µs) falls in.
pub fn bucket_of(micros: u64) -> usize {
    if micros == 0 {
        return 0;
    }
    let octave = 63 - micros.leading_zeros(); // floor(log2)
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    // The next three bits below the leading one choose the sub-bucket.
    let sub = if octave >= 3 {
        (micros >> (octave - 3)) & 0b111
    } else {
        (micros << (3 - octave)) & 0b111
    };
    1 + (octave * SUB) as usize + sub as usize
}

/// The upper bound (µs, exclusive) of bucket `i`; `u64::MAX` for the overflow bucket.
pub fn upper_bound(i: usize) -> u64 {
    if i == 0 {
        return 1;
    }
    if i >= BUCKETS - 1 {
        return u64::MAX;
    }
    let octave = ((i - 1) / SUB as usize) as u32;
    let sub = ((i - 1) % SUB as usize) as u64;
    let base = 1u64 << octave;
    // base * (1 + (sub + 1) / 8), rounded up for the small octaves.
    (base * (SUB as u64 + sub + 1)).div_ceil(SUB as u64)
}

/// The running totals of one series' values.
pub struct Histogram {
    count: AtomicU64,
    sum: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Histogram {
    /// Records one value.
    pub fn record(&self, micros: u64) {
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum.load(Ordering::Relaxed),
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A histogram's totals at one moment, or the difference of two such moments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    /// Values recorded.
    pub count: u64,
    /// Their sum, µs.
    pub sum: u64,
    /// Per bucket (all [`BUCKETS`] of them, or none for an empty difference).
    pub buckets: Vec<u64>,
}

impl HistogramSnapshot {
    /// What was recorded between `earlier` and `self`.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.saturating_sub(earlier.sum),
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| b.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// Adds `other`'s values to these (for rolling minutes into longer periods).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        self.count += other.count;
        self.sum += other.sum;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    /// The `p`-th percentile (0 < p ≤ 100), µs: the upper bound of the bucket holding it,
    /// capped by `max` when known. `None` without values.
    pub fn percentile(&self, p: f64, max: Option<u64>) -> Option<u64> {
        if self.count == 0 || !(p > 0.0 && p <= 100.0) {
            return None;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = upper_bound(i);
                return Some(match max {
                    Some(m) => bound.min(m),
                    None => bound,
                });
            }
        }
        max
    }

    /// The buckets as `(index, count)` pairs of the non-empty ones, for storage.
    pub fn sparse(&self) -> Vec<(u16, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i as u16, *n))
            .collect()
    }

    /// Rebuilds a snapshot from [`HistogramSnapshot::sparse`]'s pairs (indexes beyond
    /// the bucket count are ignored).
    pub fn from_sparse(count: u64, sum: u64, pairs: &[(u16, u64)]) -> Self {
        let mut buckets = vec![0; BUCKETS];
        for (i, n) in pairs {
            if let Some(b) = buckets.get_mut(usize::from(*i)) {
                *b += n;
            }
        }
        Self {
            count,
            sum,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_cover_the_range_in_order() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        let mut last = 0;
        for v in [1u64, 2, 3, 7, 8, 9, 100, 1_000, 1_000_000, 900_000_000] {
            let b = bucket_of(v);
            assert!(b >= last, "{v}");
            assert!(v < upper_bound(b), "{v} < {}", upper_bound(b));
            last = b;
        }
    }

    #[test]
    fn percentiles_come_from_the_buckets() {
        let h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(ms * 1000);
        }
        let s = h.snapshot();
        let p50 = s.percentile(50.0, Some(100_000)).expect("values");
        assert!((50_000..=56_000).contains(&p50), "{p50}");
        assert_eq!(s.percentile(100.0, Some(100_000)), Some(100_000));
        assert_eq!(HistogramSnapshot::default().percentile(50.0, None), None);
        let sparse = s.sparse();
        assert_eq!(HistogramSnapshot::from_sparse(s.count, s.sum, &sparse), s);
    }

    proptest! {
        #[test]
        fn a_value_lies_below_its_bucket_bound_and_within_nine_percent(v in 1u64..(1 << 40)) {
            let b = bucket_of(v);
            let upper = upper_bound(b);
            prop_assert!(v < upper);
            if b > 0 && b < BUCKETS - 1 && v >= 8 {
                let lower = upper_bound(b - 1);
                prop_assert!(v >= lower);
                prop_assert!((upper - lower) as f64 <= 0.13 * lower as f64 + 1.0);
            }
        }

        #[test]
        fn the_difference_of_snapshots_is_what_was_recorded_between(
            before in proptest::collection::vec(0u64..10_000_000, 0..50),
            after in proptest::collection::vec(0u64..10_000_000, 0..50),
        ) {
            let h = Histogram::default();
            before.iter().for_each(|v| h.record(*v));
            let first = h.snapshot();
            after.iter().for_each(|v| h.record(*v));
            let diff = h.snapshot().since(&first);
            let only = Histogram::default();
            after.iter().for_each(|v| only.record(*v));
            prop_assert_eq!(diff, only.snapshot());
        }
    }
}

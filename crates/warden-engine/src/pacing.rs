//! Pacing of the events sent to an instance limited to a fraction of a CPU, by the CPU
//! time its cgroup has used.
//!
//! The kernel gives such an instance its share as a quota per period, and its smallest
//! quota (1 ms) makes the period long at small shares: 12.5 ms at 8 % (128 MB). A closed
//! loop of short invocations runs through the quota in a burst, then the instance waits
//! for the next period, so that at 128 MB one echo in twenty waited up to 12 ms. The
//! pacer spreads that wait over the events instead: before each event it reads the
//! instance's CPU time and, if the instance used more than its paced share (nine tenths
//! of the quota's, [`PACED_PART_OF_QUOTA`]) beyond a small credit, holds the event until
//! that share of the time passing has paid the debt. The instance then stays below the
//! quota the kernel enforces, and every event waits a little rather than one in twenty
//! waiting a period. The pacer only ever holds an event before it starts: the kernel's
//! quota stays what bounds the CPU used inside one invocation, so a long invocation gets
//! the whole quota.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most CPU time an idle instance builds up as credit: half the kernel's smallest
/// quota, so that what the pacer lets through at once fits in any period's quota.
const CREDIT_NS: f64 = 500_000.0;

/// The part of its quota an instance is paced to. The kernel keeps its own account of
/// the instance, refilled with one quota a period: paced to the whole quota, that account
/// wandered down to empty as often as up, and the kernel stopped a closed loop of 200 µs
/// invocations in 107 of 111 periods. Paced to nine tenths, the account gains a tenth
/// of a quota a period, up to its burst allowance, so that what the pacer lets through
/// at once finds room: the same loop was stopped in 2-3 of 125 periods. At 128 MB this
/// is 7.2 % of a CPU, Lambda's own share (128 / 1,769), where the quota is rounded up to
/// 8 %.
const PACED_PART_OF_QUOTA: f64 = 0.9;

/// The longest an event is held. A run of short events leaves a debt of about one
/// event's CPU time; an invocation long enough for the kernel's quota to hold it leaves
/// one that grows with its length (it ran at the whole quota, the pacer counts nine
/// tenths), and the kernel's own account of the instance is empty after it. The next
/// event then waits this long at most, and what this wait does not pay is forgiven: two
/// to five periods, about what the kernel takes to refill its account.
const MOST_WAIT: Duration = Duration::from_millis(50);

/// What paces one instance: its CPU time file and its credit.
#[derive(Debug)]
pub struct CpuPacer {
    usage: File,
    /// CPU time per unit of time it is paced to: 0.072 for a quota of 8 % of a CPU.
    share: f64,
    /// `None` until the first event: the init phase, which the kernel's quota alone
    /// holds, is not charged to it.
    credit: Mutex<Option<Credit>>,
}

/// A token bucket of CPU time, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Credit {
    /// When the instance's CPU time was last read.
    at: Instant,
    /// Its CPU time then.
    used_ns: u64,
    /// CPU time it may still use at once; negative while it is in debt.
    credit_ns: f64,
}

impl Credit {
    /// Credits the share of the time since the last reading, debits the CPU time used
    /// meanwhile, and returns how long the next event must wait for the credit to be
    /// back to zero, at most [`MOST_WAIT`]. A counter that went backwards (it never
    /// should) debits nothing.
    fn advance(&mut self, now: Instant, used_ns: u64, share: f64) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_nanos() as f64;
        let spent = used_ns.saturating_sub(self.used_ns) as f64;
        // A debt larger than MOST_WAIT pays is forgiven: it can only come from an
        // invocation the kernel's quota already held (see MOST_WAIT).
        let most_debt = MOST_WAIT.as_nanos() as f64 * share;
        self.credit_ns = (self.credit_ns + elapsed * share - spent).clamp(-most_debt, CREDIT_NS);
        self.at = self.at.max(now);
        self.used_ns = self.used_ns.max(used_ns);
        if self.credit_ns >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-self.credit_ns / share / 1e9).min(MOST_WAIT)
    }
}

impl CpuPacer {
    /// Paces by `usage`, an instance's cgroup CPU time file, at `cpu_percent` of one CPU.
    /// `None` for a share that is not a fraction of a CPU, or a file that does not read as
    /// CPU time.
    pub fn new(usage: OwnedFd, cpu_percent: u32) -> Option<CpuPacer> {
        if !(1..100).contains(&cpu_percent) {
            return None;
        }
        let usage = File::from(usage);
        read_ns(&usage)?;
        Some(CpuPacer {
            usage,
            share: f64::from(cpu_percent) / 100.0 * PACED_PART_OF_QUOTA,
            credit: Mutex::new(None),
        })
    }

    /// How long the next event must wait; zero for the first event, and while the
    /// instance has credit. An unreadable file (the instance is ending) holds nothing.
    pub fn wait(&self) -> Duration {
        let Some(used_ns) = read_ns(&self.usage) else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let mut credit = self.credit.lock().unwrap_or_else(|p| p.into_inner());
        match credit.as_mut() {
            Some(c) => c.advance(now, used_ns, self.share),
            None => {
                // A cold start's init may have used the whole quota for a while; the
                // account starts with the first event, in credit.
                *credit = Some(Credit {
                    at: now,
                    used_ns,
                    credit_ns: CREDIT_NS,
                });
                Duration::ZERO
            }
        }
    }
}

/// Reads the CPU time file from its start.
fn read_ns(file: &File) -> Option<u64> {
    // Only the first line is wanted (v2's `cpu.stat` has more after it); 256 bytes
    // hold it.
    let mut buf = [0u8; 256];
    let n = file.read_at(&mut buf, 0).ok()?;
    usage_ns(&buf[..n])
}

/// CPU time in nanoseconds from the text of a cgroup's CPU time file: `usage_usec N` on
/// its first line (v2's `cpu.stat`, microseconds) or one number alone (v1's
/// `cpuacct.usage`, nanoseconds).
fn usage_ns(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let first = text.lines().next()?;
    match first.strip_prefix("usage_usec ") {
        Some(usec) => usec.trim().parse::<u64>().ok()?.checked_mul(1000),
        None => first.trim().parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn fresh(at: Instant) -> Credit {
        Credit {
            at,
            used_ns: 0,
            credit_ns: CREDIT_NS,
        }
    }

    #[test]
    fn both_cgroup_formats_read_as_nanoseconds() {
        assert_eq!(usage_ns(b"123456789\n"), Some(123_456_789));
        assert_eq!(
            usage_ns(b"usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"),
            Some(1_500_000)
        );
        assert_eq!(usage_ns(b""), None);
        assert_eq!(usage_ns(b"nr_periods 3\n"), None);
        assert_eq!(usage_ns(b"usage_usec 99999999999999999999\n"), None);
        assert_eq!(usage_ns(&[0xff, b'1']), None);
    }

    #[test]
    fn the_first_event_pays_nothing_for_the_init_and_the_next_pays_for_the_first() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let open = || OwnedFd::from(File::open(file.path()).unwrap());
        // The init used a second of CPU before the first event.
        std::fs::write(file.path(), "1000000000\n").unwrap();
        assert!(
            CpuPacer::new(open(), 100).is_none(),
            "a whole CPU is not paced"
        );
        let pacer = CpuPacer::new(open(), 8).unwrap();
        assert_eq!(pacer.wait(), Duration::ZERO);
        // The first event used 10 ms at once: far beyond the credit.
        std::fs::write(file.path(), "1010000000\n").unwrap();
        let wait = pacer.wait();
        assert!(wait > Duration::ZERO && wait <= MOST_WAIT, "{wait:?}");
        // A file that does not read as CPU time paces nothing.
        std::fs::write(file.path(), "nr_periods 1\n").unwrap();
        assert!(CpuPacer::new(open(), 8).is_none());
        assert_eq!(pacer.wait(), Duration::ZERO);
    }

    #[test]
    fn an_instance_within_its_share_is_never_held() {
        let t0 = Instant::now();
        let mut credit = fresh(t0);
        // 8 % of a CPU: 80 µs of CPU per millisecond. 50 µs per event, one event a
        // millisecond, for a second.
        for i in 1..=1000u64 {
            let now = t0 + Duration::from_millis(i);
            assert_eq!(credit.advance(now, i * 50_000, 0.08), Duration::ZERO);
        }
        // The credit it built up is capped: a long pause does not buy a long burst.
        credit.advance(t0 + Duration::from_secs(100), 1000 * 50_000, 0.08);
        assert_eq!(credit.credit_ns, CREDIT_NS);
    }

    #[test]
    fn a_debt_is_paid_by_waiting_for_the_share() {
        let t0 = Instant::now();
        let mut credit = fresh(t0);
        // 0.9 ms of CPU in 1 ms of time at 8 %: 0.5 ms credit + 0.08 ms earned - 0.9 ms
        // spent leaves a debt of 0.32 ms, paid in 4 ms.
        let wait = credit.advance(t0 + Duration::from_millis(1), 900_000, 0.08);
        assert!(
            wait.abs_diff(Duration::from_millis(4)) < Duration::from_micros(1),
            "{wait:?}"
        );
        // Waiting that long (and using nothing meanwhile) clears the debt.
        let later = t0 + Duration::from_millis(5);
        assert_eq!(credit.advance(later, 900_000, 0.08), Duration::ZERO);
        assert!(credit.credit_ns.abs() < 1_000.0, "{}", credit.credit_ns);
    }

    #[test]
    fn a_long_invocation_holds_the_next_event_for_a_bounded_time() {
        let paced = 0.08 * PACED_PART_OF_QUOTA;
        // One second of spinning at the paced share owes nothing.
        let t0 = Instant::now();
        let mut credit = fresh(t0);
        let wait = credit.advance(t0 + Duration::from_secs(1), 72 * MS, paced);
        assert_eq!(wait, Duration::ZERO);
        // At the kernel's whole quota of 8 %, 80 ms of CPU: 8 ms more than the paced
        // share, which would take 111 ms to pay; the next event waits MOST_WAIT.
        let mut credit = fresh(t0);
        let wait = credit.advance(t0 + Duration::from_secs(1), 80 * MS, paced);
        assert_eq!(wait, MOST_WAIT);
        // The rest of the debt is forgiven: the one after it, sent once that wait has
        // passed, is not held.
        let later = t0 + Duration::from_secs(1) + MOST_WAIT;
        assert_eq!(credit.advance(later, 80 * MS, paced), Duration::ZERO);
    }

    #[test]
    fn the_wait_is_bounded_and_a_counter_going_back_debits_nothing() {
        let t0 = Instant::now();
        let mut credit = fresh(t0);
        assert_eq!(
            credit.advance(t0 + Duration::from_millis(1), 10_000 * MS, 0.08),
            MOST_WAIT
        );
        let mut credit = fresh(t0);
        credit.used_ns = 5 * MS;
        assert_eq!(
            credit.advance(t0 + Duration::from_millis(1), MS, 0.08),
            Duration::ZERO
        );
        assert_eq!(credit.used_ns, 5 * MS);
    }

    proptest! {
        /// Between any two events, each sent once its wait has passed, the instance used
        /// at most its share of the time between them plus the credit an idle instance
        /// keeps: the pacer never lets it beyond its share, over any stretch of time.
        #[test]
        fn paced_events_stay_within_the_share(
            costs in proptest::collection::vec(0u64..3_000_000, 1..200),
            gaps in proptest::collection::vec(0u64..20_000_000, 200),
            percent in 1u32..100,
        ) {
            let share = f64::from(percent) / 100.0;
            // Waits cut short at MOST_WAIT are the one way past the share.
            prop_assume!(costs.iter().all(|c| *c as f64 / share < MOST_WAIT.as_nanos() as f64));
            let t0 = Instant::now();
            let mut credit = fresh(t0);
            let mut now = t0;
            let mut used = 0u64;
            // When each event was sent, and the CPU time used before it.
            let mut sent = Vec::new();
            for (cost, gap) in costs.iter().zip(&gaps) {
                let wait = credit.advance(now, used, share);
                now += wait;
                sent.push((now, used));
                // The event runs; it may use more CPU than its time allows in between
                // (the kernel's quota, not modelled here, is what bounds that).
                used += cost;
                now += Duration::from_nanos(*gap);
            }
            for (i, (ti, ui)) in sent.iter().enumerate() {
                for (tj, uj) in &sent[i + 1..] {
                    let window = tj.duration_since(*ti).as_nanos() as f64;
                    let bound = window * share + CREDIT_NS + 1_000.0;
                    prop_assert!((uj - ui) as f64 <= bound, "{} > {}", uj - ui, bound);
                }
            }
        }
    }
}

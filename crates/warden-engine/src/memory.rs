//! Admission by host memory: the sum of the memory limits of every running instance stays
//! within a budget, so that a burst of cold starts cannot promise the host more RAM than it
//! has (a thousand 10 GB instances on a 24 GB host).
//!
//! An instance costs what its sandbox may really use: `MemorySize` plus its `/tmp` size,
//! because `/tmp` is a tmpfs whose pages the sandbox charges to the instance's memory
//! cgroup (its limit is the sum). The cost is reserved before the instance is spawned and
//! given back only when its process has ended and been reaped, not when the engine decides
//! to stop it: a dying instance still holds its memory. Idle warm instances count too; the
//! engine evicts them (least recently used first) before it refuses a cold start. Warm
//! invokes reuse an instance whose memory is already counted, so the budget never refuses
//! them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Memory the running instances may be given, in MiB (Lambda's "MB" are MiB).
pub struct MemoryBudget {
    limit_mb: u64,
    used_mb: AtomicU64,
    /// The part of `used_mb` held by instances the engine has decided to end, whose
    /// processes are not reaped yet: memory that is about to come back.
    dying_mb: AtomicU64,
    /// Woken whenever a grant is given back.
    released: Notify,
}

/// The memory of one instance, held from before its spawn until its process is gone;
/// dropping it gives the memory back.
pub struct MemoryGrant {
    budget: Arc<MemoryBudget>,
    mb: u64,
    /// Set once the grant counts as dying, or once it is given back (whichever is first),
    /// so that it is counted as dying at most once and never after it is gone.
    settled: Arc<AtomicBool>,
}

impl Drop for MemoryGrant {
    fn drop(&mut self) {
        let was_dying = self.settled.swap(true, Ordering::AcqRel);
        if was_dying {
            self.budget.dying_mb.fetch_sub(self.mb, Ordering::AcqRel);
        }
        self.budget.used_mb.fetch_sub(self.mb, Ordering::AcqRel);
        self.budget.released.notify_waiters();
    }
}

/// Marks a grant as belonging to an instance that is being ended, without holding the
/// grant itself (which stays with whoever waits for the process to be reaped).
pub struct DyingMark {
    budget: Arc<MemoryBudget>,
    mb: u64,
    settled: Arc<AtomicBool>,
}

impl DyingMark {
    /// Counts the grant as dying: its memory is about to come back. Idempotent, and a
    /// no-op once the grant has been given back.
    pub fn mark(&self) {
        if self
            .settled
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.budget.dying_mb.fetch_add(self.mb, Ordering::AcqRel);
        }
    }
}

impl MemoryGrant {
    /// A handle that marks this grant as dying once its instance is being ended.
    pub fn dying_mark(&self) -> DyingMark {
        DyingMark {
            budget: Arc::clone(&self.budget),
            mb: self.mb,
            settled: Arc::clone(&self.settled),
        }
    }
}

impl std::fmt::Debug for MemoryGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryGrant({} MiB)", self.mb)
    }
}

impl MemoryBudget {
    /// A budget of `limit_mb` MiB, none of it used.
    pub fn new(limit_mb: u64) -> Arc<Self> {
        Arc::new(Self {
            limit_mb,
            used_mb: AtomicU64::new(0),
            dying_mb: AtomicU64::new(0),
            released: Notify::new(),
        })
    }

    /// Whether `mb` would fit once every dying instance has been reaped.
    pub fn fits_after_dying(&self, mb: u64) -> bool {
        let dying = self.dying_mb.load(Ordering::Acquire);
        let used = self.used_mb.load(Ordering::Acquire);
        dying > 0 && used.saturating_sub(dying).saturating_add(mb) <= self.limit_mb
    }

    /// Resolves after the next grant is given back. Create it before checking the budget
    /// again, so that a release in between is not missed.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// The budget, in MiB.
    pub fn limit_mb(&self) -> u64 {
        self.limit_mb
    }

    /// Memory granted to instances that have not ended yet, in MiB.
    pub fn used_mb(&self) -> u64 {
        self.used_mb.load(Ordering::Acquire)
    }

    /// Reserves `mb` if the total stays within the budget; atomically, so concurrent cold
    /// starts never overshoot it together.
    pub fn try_reserve(self: &Arc<Self>, mb: u64) -> Option<MemoryGrant> {
        self.used_mb
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(mb).filter(|total| *total <= self.limit_mb)
            })
            .ok()
            .map(|_| MemoryGrant {
                budget: Arc::clone(self),
                mb,
                settled: Arc::new(AtomicBool::new(false)),
            })
    }
}

/// What an instance of a function costs against the budget, in MiB: its memory size plus
/// its `/tmp`, which the sandbox charges to the same memory cgroup.
pub fn instance_cost_mb(memory_mb: u32, ephemeral_storage_mb: u32) -> u64 {
    u64::from(memory_mb) + u64::from(ephemeral_storage_mb)
}

/// `--memory-budget` as the operator wrote it: a share of host memory (`80%`) or a size
/// (`16GiB`, `1536MiB`, `16GB`; a bare number is bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetSetting {
    /// Percent of the host's memory, more than 0 and at most 100.
    Share(f64),
    /// An absolute size in bytes.
    Bytes(u64),
}

/// Why a `--memory-budget` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// Neither a share nor a size.
    #[error("`{0}` is not a memory budget: write a share of host memory like `80%` or a size like `16GiB`")]
    Syntax(String),
    /// A share outside (0%, 100%].
    #[error("`{0}`: a share of host memory must be more than 0% and at most 100%")]
    Share(String),
    /// A size with an unknown unit.
    #[error("`{0}`: unknown unit; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB")]
    Unit(String),
    /// Less than 1 MiB.
    #[error("`{0}`: the budget must be at least 1 MiB")]
    TooSmall(String),
    /// More than can be counted.
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl std::str::FromStr for BudgetSetting {
    type Err = BudgetError;

    fn from_str(text: &str) -> Result<Self, BudgetError> {
        let s = text.trim();
        let number_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(number_end);
        let unit = unit.trim();
        let value: f64 = match number.parse() {
            Ok(v) if number.chars().next().is_some_and(|c| c.is_ascii_digit()) => v,
            _ => return Err(BudgetError::Syntax(text.to_owned())),
        };
        if unit == "%" {
            if !(value > 0.0 && value <= 100.0) {
                return Err(BudgetError::Share(text.to_owned()));
            }
            return Ok(Self::Share(value));
        }
        let multiplier: u64 = match unit {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            _ => return Err(BudgetError::Unit(text.to_owned())),
        };
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(BudgetError::TooLarge(text.to_owned()));
        }
        let bytes = bytes as u64;
        if bytes < 1 << 20 {
            return Err(BudgetError::TooSmall(text.to_owned()));
        }
        Ok(Self::Bytes(bytes))
    }
}

impl BudgetSetting {
    /// The budget in MiB on a host with `host_bytes` of memory (rounded down).
    pub fn resolve_mb(self, host_bytes: u64) -> u64 {
        let bytes = match self {
            Self::Share(percent) => (host_bytes as f64 * percent / 100.0) as u64,
            Self::Bytes(b) => b,
        };
        bytes >> 20
    }
}

/// The memory Warden and its instances can have, in bytes: the host's (`MemTotal` of
/// `/proc/meminfo`), or less when Warden's own memory cgroup has a lower limit (in a
/// container, say), since the sandbox creates the instances' cgroups beneath it.
pub fn host_memory_bytes() -> std::io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    let total = parse_mem_total(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no MemTotal line in /proc/meminfo",
        )
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let limit = cgroup_memory_limit(&own, std::path::Path::new("/sys/fs/cgroup"));
    Ok(limit.map_or(total, |l| l.min(total)))
}

/// The lowest memory limit on the way from our cgroup (`/proc/self/cgroup`'s text) up to
/// the root of the hierarchy mounted at `root`: v2 (`memory.max` of each ancestor) or v1
/// (`hierarchical_memory_limit`, which already accounts for the ancestors). `None` when
/// there is no limit or it cannot be read.
fn cgroup_memory_limit(proc_cgroup: &str, root: &std::path::Path) -> Option<u64> {
    let number = |text: &str| text.trim().parse::<u64>().ok();
    let mut lowest: Option<u64> = None;
    let mut consider = |limit: Option<u64>| {
        if let Some(l) = limit {
            lowest = Some(lowest.map_or(l, |low| low.min(l)));
        }
    };
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if relative.split('/').any(|c| c == "..") {
            continue;
        }
        if controllers.is_empty() {
            let mut dir = root.join(relative);
            while dir.starts_with(root) {
                let max = std::fs::read_to_string(dir.join("memory.max")).ok();
                consider(max.as_deref().and_then(number));
                if !dir.pop() {
                    break;
                }
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            let stat =
                std::fs::read_to_string(root.join("memory").join(relative).join("memory.stat"))
                    .unwrap_or_default();
            consider(
                stat.lines()
                    .find_map(|l| l.strip_prefix("hierarchical_memory_limit "))
                    .and_then(number),
            );
        }
    }
    lowest
}

/// The `MemTotal: N kB` line of `/proc/meminfo`, in bytes.
fn parse_mem_total(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kb: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dying_grants_are_counted_until_given_back_and_only_once() {
        let budget = MemoryBudget::new(1024);
        let a = budget.try_reserve(768).unwrap();
        assert!(!budget.fits_after_dying(512), "nothing is dying yet");
        let mark = a.dying_mark();
        mark.mark();
        mark.mark();
        assert!(
            budget.try_reserve(512).is_none(),
            "a dying grant still counts"
        );
        assert!(budget.fits_after_dying(512));
        assert!(!budget.fits_after_dying(1025));
        drop(a);
        assert_eq!(budget.used_mb(), 0);
        assert!(
            !budget.fits_after_dying(512),
            "no dying memory is left over"
        );
        // Marking after the grant is gone changes nothing.
        mark.mark();
        assert!(!budget.fits_after_dying(1));
        assert!(budget.try_reserve(1024).is_some());
    }

    #[test]
    fn grants_stay_within_the_budget_and_come_back_when_dropped() {
        let budget = MemoryBudget::new(1536);
        let first = budget.try_reserve(instance_cost_mb(1024, 512)).unwrap();
        assert_eq!(budget.used_mb(), 1536);
        assert!(budget.try_reserve(1).is_none(), "the budget is full");
        drop(first);
        assert_eq!(budget.used_mb(), 0);
        let a = budget.try_reserve(1000).unwrap();
        let b = budget.try_reserve(536).unwrap();
        assert!(budget.try_reserve(1).is_none());
        drop(a);
        assert!(
            budget.try_reserve(1001).is_none(),
            "1000 MiB came back, not more"
        );
        let _c = budget.try_reserve(1000).unwrap();
        drop(b);
        assert_eq!(budget.used_mb(), 1000);
    }

    #[test]
    fn a_function_larger_than_the_budget_never_fits() {
        let budget = MemoryBudget::new(1024);
        assert!(budget.try_reserve(instance_cost_mb(1024, 512)).is_none());
        assert_eq!(budget.used_mb(), 0, "a refused reservation takes nothing");
        assert!(budget.try_reserve(u64::MAX).is_none());
    }

    #[test]
    fn concurrent_reservations_never_overshoot() {
        let budget = MemoryBudget::new(100 * 640);
        let granted: Vec<MemoryGrant> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..50)
                            .filter_map(|_| budget.try_reserve(640))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(granted.len(), 100);
        assert_eq!(budget.used_mb(), 100 * 640);
        drop(granted);
        assert_eq!(budget.used_mb(), 0);
    }

    #[test]
    fn settings_parse_shares_and_sizes() {
        let parse = |s: &str| s.parse::<BudgetSetting>();
        assert_eq!(parse("80%"), Ok(BudgetSetting::Share(80.0)));
        assert_eq!(parse("12.5%"), Ok(BudgetSetting::Share(12.5)));
        assert_eq!(parse("16GiB"), Ok(BudgetSetting::Bytes(16 << 30)));
        assert_eq!(parse("1.5GiB"), Ok(BudgetSetting::Bytes(1536 << 20)));
        assert_eq!(parse("1536MiB"), Ok(BudgetSetting::Bytes(1536 << 20)));
        assert_eq!(parse("16GB"), Ok(BudgetSetting::Bytes(16_000_000_000)));
        assert_eq!(parse(" 2 TiB "), Ok(BudgetSetting::Bytes(2 << 40)));
        assert_eq!(parse("1048576"), Ok(BudgetSetting::Bytes(1 << 20)));
        for bad in [
            "",
            "%",
            "GiB",
            "-5GiB",
            "80",
            "0%",
            "101%",
            "1.2.3GiB",
            "5 gallons",
            "1KiB",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} is refused");
        }
        assert_eq!(
            parse("5XB").unwrap_err().to_string(),
            "`5XB`: unknown unit; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
        );
        assert!(matches!(parse("1e300"), Err(BudgetError::Unit(_))));
        assert!(matches!(
            parse("99999999999TiB"),
            Err(BudgetError::TooLarge(_))
        ));
    }

    #[test]
    fn shares_resolve_against_host_memory() {
        let host = 24u64 << 30;
        assert_eq!(BudgetSetting::Share(80.0).resolve_mb(host), 19_660);
        assert_eq!(BudgetSetting::Share(100.0).resolve_mb(host), 24 << 10);
        assert_eq!(BudgetSetting::Bytes(16 << 30).resolve_mb(host), 16 << 10);
    }

    #[test]
    fn mem_total_comes_from_meminfo() {
        let text = "MemTotal:       24683568 kB\nMemFree:        13611244 kB\n";
        assert_eq!(parse_mem_total(text), Some(24_683_568 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots\n"), None);
    }

    #[test]
    fn a_lower_cgroup_limit_caps_host_memory() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        // v2: the lowest `memory.max` on the way up counts; `max` means no limit.
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/memory.max"), "8589934592\n").unwrap();
        std::fs::write(r.join("a/b/memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_memory_limit("0::/a/b\n", r), Some(8 << 30));
        std::fs::write(r.join("a/memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_memory_limit("0::/a/b\n", r), None);
        // v1: the memory controller's hierarchical limit.
        std::fs::create_dir_all(r.join("memory/c")).unwrap();
        std::fs::write(
            r.join("memory/c/memory.stat"),
            "cache 0\nhierarchical_memory_limit 4294967296\n",
        )
        .unwrap();
        let v1 = "9:pids:/c\n4:memory:/c\n0::/\n";
        assert_eq!(cgroup_memory_limit(v1, r), Some(4 << 30));
        // Nothing readable, or a path trying to leave the hierarchy: no limit known.
        assert_eq!(cgroup_memory_limit("4:memory:/missing\n", r), None);
        assert_eq!(cgroup_memory_limit("0::/../../etc\n", r), None);
        assert_eq!(cgroup_memory_limit("garbage", r), None);
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_sizes_are_at_least_a_mib(s in ".{0,40}") {
            if let Ok(BudgetSetting::Bytes(b)) = s.parse::<BudgetSetting>() {
                proptest::prop_assert!(b >= 1 << 20);
            }
            if let Ok(BudgetSetting::Share(p)) = s.parse::<BudgetSetting>() {
                proptest::prop_assert!(p > 0.0 && p <= 100.0);
            }
        }

        #[test]
        fn sizes_in_mib_round_trip(mb in 1u64..(1 << 30)) {
            let parsed = format!("{mb}MiB").parse::<BudgetSetting>();
            proptest::prop_assert_eq!(parsed, Ok(BudgetSetting::Bytes(mb << 20)));
        }
    }
}

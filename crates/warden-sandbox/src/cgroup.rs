//! Resource limits through cgroups: detection of v1 (per-controller hierarchies, as on
//! hybrid hosts) or v2, pre-made reusable slots, limit files and OOM-kill counters.
//!
//! Slots are reused rather than created per instance because creating and removing
//! cgroups, and moving a process into one, are slow after idle. All paths derive
//! from roots passed in, so tests run against a temporary directory.
//!
//! On v1 a move is a write of the pid to `cgroup.procs`. By default the kernel guards
//! such writes with one host-wide reader-writer semaphore kept in a mode that favours
//! forks and exits, and a writer first waits for an RCU grace period (7-15 ms on an idle
//! host) to switch it over. [`FavorDynmods`] holds a controller-less v1 hierarchy mounted
//! with `favordynmods`, which tells the kernel to favour moves instead: the write then
//! costs well under a millisecond. On v2 instances are born in their slot
//! (`CLONE_INTO_CGROUP`) and no move happens.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::SandboxError;

/// One line of `/proc/self/mountinfo`, reduced to what detection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub super_options: String,
}

/// Parses `/proc/self/mountinfo`; malformed lines are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let _source = r.next()?;
            let super_options = r.next().unwrap_or("");
            Some(MountEntry {
                mount_point: PathBuf::from(unescape_octal(mount_point)),
                fstype: fstype.to_owned(),
                super_options: super_options.to_owned(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/cgroup` into `(controllers, path)`; the v2 entry has no controllers.
pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let list = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some((list, path.to_owned()))
        })
        .collect()
}

/// A controller this module manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Controller {
    Memory,
    Pids,
    Cpu,
    /// CPU time accounting, a controller of its own on v1 (v2 counts every cgroup's CPU
    /// time in its `cpu.stat`, with or without controllers).
    CpuAcct,
}

impl Controller {
    const ALL: [Controller; 4] = [
        Controller::Memory,
        Controller::Pids,
        Controller::Cpu,
        Controller::CpuAcct,
    ];

    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
            Controller::CpuAcct => "cpuacct",
        }
    }
}

/// Where our own cgroups live, per controller, before we create anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Per-controller v1 directories (our own cgroup in each hierarchy).
    V1(Vec<(Controller, PathBuf)>),
    /// Our own v2 cgroup and the controllers available in it.
    V2(PathBuf, Vec<Controller>),
}

/// Finds our cgroups from the text of mountinfo and `/proc/self/cgroup`. A v2 hierarchy is
/// preferred when it has the memory and pids controllers; otherwise every v1 hierarchy
/// that carries one of our controllers is used.
pub(crate) fn detect(mountinfo: &str, proc_cgroup: &str) -> Option<Layout> {
    let mounts = parse_mountinfo(mountinfo);
    let own = parse_proc_cgroup(proc_cgroup);
    let join = |mount: &Path, path: &str| mount.join(path.trim_start_matches('/'));
    if let (Some(m2), Some((_, p2))) = (
        mounts.iter().find(|m| m.fstype == "cgroup2"),
        own.iter().find(|(c, _)| c.is_empty()),
    ) {
        let dir = join(&m2.mount_point, p2);
        let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let ctrls: Vec<Controller> = Controller::ALL
            .into_iter()
            .filter(|c| available.split_whitespace().any(|a| a == c.name()))
            .collect();
        if ctrls.contains(&Controller::Memory) && ctrls.contains(&Controller::Pids) {
            return Some(Layout::V2(dir, ctrls));
        }
    }
    let mut v1 = Vec::new();
    for ctrl in Controller::ALL {
        let mount = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == ctrl.name()));
        let path = own.iter().find(|(c, _)| c.iter().any(|n| n == ctrl.name()));
        if let (Some(m), Some((_, p))) = (mount, path) {
            v1.push((ctrl, join(&m.mount_point, p)));
        }
    }
    if v1.is_empty() {
        None
    } else {
        Some(Layout::V1(v1))
    }
}

/// Per-instance limits written into a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub memory_bytes: u64,
    pub pids_max: u32,
    /// Percent of one CPU; 0 means unlimited.
    pub cpu_percent: u32,
}

/// The CPU period of an unlimited slot (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// The shortest enforcement period a quota is spread over.
const MIN_CPU_PERIOD_US: u64 = 10_000;
/// The smallest quota the kernel accepts per period.
const MIN_CPU_QUOTA_US: u64 = 1_000;

/// The period and quota (µs) that give `percent` of one CPU.
///
/// A function that uses its whole share waits, once per period, for the next period to
/// begin: at the kernel's default period (100 ms) a 128 MB function (8 %) ran 8 ms, then
/// stalled 92 ms, and a request arriving meanwhile waited up to that long. Measured at
/// 128 MB with a closed loop of echo invocations, the longest wait follows the period
/// (100 ms: 60 ms; 50 ms: 33 ms; 20 ms: 18 ms; 12.5 ms: 12 ms) while the share, and so a
/// spin loop's CPU over a second, stays the same. So the period is as short as the
/// kernel allows for the share: [`MIN_CPU_PERIOD_US`], lengthened so that the quota is at
/// least [`MIN_CPU_QUOTA_US`] (the kernel refuses less), which for 8 % is 12.5 ms.
fn cpu_period_and_quota(percent: u32) -> (u64, u64) {
    let percent = u64::from(percent.max(1));
    let period = MIN_CPU_PERIOD_US.max((MIN_CPU_QUOTA_US * 100).div_ceil(percent));
    (period, (percent * period / 100).max(MIN_CPU_QUOTA_US))
}

/// The cgroups this sandbox created: one directory per controller (v1) or one (v2), and
/// reusable slots beneath.
#[derive(Debug)]
pub(crate) struct Cgroups {
    v2: bool,
    /// `(controller, our base directory)`; on v2 all share one directory.
    bases: Vec<(Controller, PathBuf)>,
    slots: usize,
    free: Vec<usize>,
}

/// The name of the hierarchy [`FavorDynmods`] mounts; every Warden on a host shares it.
const DYNMODS_HIERARCHY: &str = "warden-dynmods";

/// A v1 hierarchy without controllers, mounted with `favordynmods` and held only by this
/// descriptor: it is never attached to a path, so it is not in any mount table, and it
/// goes away when the last holder closes it (a killed server included). Holding it keeps
/// the kernel favouring cgroup moves over forks and exits, host-wide; recent kernels
/// (6.18 here) keep moves on their per-process lock even after, until reboot. The price is a slightly slower fork and
/// exit for every process of the host, the trade the kernel documents for hosts that move
/// processes between cgroups often, as a serverless host does.
#[derive(Debug)]
pub(crate) struct FavorDynmods {
    _mount: OwnedFd,
}

impl FavorDynmods {
    /// Mounts (or joins) the hierarchy. Fails without `CAP_SYS_ADMIN` in the initial user
    /// namespace, and with `EINVAL` on kernels before 6.0 that lack the option.
    pub(crate) fn hold() -> io::Result<FavorDynmods> {
        use rustix::mount::{
            fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, FsMountFlags,
            FsOpenFlags, MountAttrFlags,
        };
        let fs = fsopen("cgroup", FsOpenFlags::FSOPEN_CLOEXEC)?;
        fsconfig_set_flag(&fs, "none")?;
        fsconfig_set_string(&fs, "name", DYNMODS_HIERARCHY)?;
        fsconfig_set_flag(&fs, "favordynmods")?;
        fsconfig_create(&fs)?;
        let mount = fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_RDONLY
                | MountAttrFlags::MOUNT_ATTR_NOSUID
                | MountAttrFlags::MOUNT_ATTR_NODEV
                | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        )?;
        Ok(FavorDynmods { _mount: mount })
    }
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    fs::write(path, value).map_err(|source| SandboxError::CgroupWrite {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

impl Cgroups {
    /// Creates our base directories (named `name`) under the detected layout. Controllers
    /// whose directory cannot be created are left out.
    pub(crate) fn create(layout: &Layout, name: &str) -> Result<Cgroups, SandboxError> {
        let mut bases = Vec::new();
        let v2 = matches!(layout, Layout::V2(..));
        match layout {
            Layout::V1(dirs) => {
                for (ctrl, dir) in dirs {
                    let base = dir.join(name);
                    match fs::create_dir(&base) {
                        Ok(()) => bases.push((*ctrl, base)),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            bases.push((*ctrl, base))
                        }
                        Err(_) => {}
                    }
                }
            }
            Layout::V2(dir, ctrls) => {
                let base = dir.join(name);
                fs::create_dir(&base)
                    .or_else(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|source| SandboxError::CgroupCreate {
                        path: base.clone(),
                        source,
                    })?;
                let enable: Vec<String> = ctrls.iter().map(|c| format!("+{}", c.name())).collect();
                write(&base.join("cgroup.subtree_control"), &enable.join(" "))?;
                bases.extend(ctrls.iter().map(|c| (*c, base.clone())));
            }
        }
        Ok(Cgroups {
            v2,
            bases,
            slots: 0,
            free: Vec::new(),
        })
    }

    pub(crate) fn is_v2(&self) -> bool {
        self.v2
    }

    pub(crate) fn has(&self, ctrl: Controller) -> bool {
        self.bases.iter().any(|(c, _)| *c == ctrl)
    }

    fn slot_dir(&self, ctrl: Controller, slot: usize) -> Option<PathBuf> {
        self.bases
            .iter()
            .find(|(c, _)| *c == ctrl)
            .map(|(_, b)| b.join(format!("slot-{slot}")))
    }

    fn dirs(&self, slot: usize) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Controller::ALL
            .iter()
            .filter_map(|c| self.slot_dir(*c, slot))
            .collect();
        dirs.dedup();
        dirs
    }

    /// Every directory created so far: slots first, then the base directories.
    pub(crate) fn all_dirs(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = (0..self.slots).flat_map(|s| self.dirs(s)).collect();
        for (_, base) in &self.bases {
            if !all.contains(base) {
                all.push(base.clone());
            }
        }
        all
    }

    /// The slot's directory on v2, for `clone3(CLONE_INTO_CGROUP)`.
    pub(crate) fn v2_dir(&self, slot: usize) -> Option<PathBuf> {
        if self.v2 {
            self.slot_dir(Controller::Memory, slot)
        } else {
            None
        }
    }

    /// Takes a free slot (or makes one) and writes the limits into it.
    pub(crate) fn acquire(&mut self, limits: Limits) -> Result<usize, SandboxError> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = self.slots;
                for dir in self.dirs(s) {
                    fs::create_dir(&dir)
                        .or_else(|e| {
                            if e.kind() == io::ErrorKind::AlreadyExists {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })
                        .map_err(|source| SandboxError::CgroupCreate {
                            path: dir.clone(),
                            source,
                        })?;
                }
                self.slots += 1;
                s
            }
        };
        if let Err(e) = self.set_limits(slot, limits) {
            self.free.push(slot);
            return Err(e);
        }
        Ok(slot)
    }

    fn set_limits(&self, slot: usize, limits: Limits) -> Result<(), SandboxError> {
        let v2 = self.v2;
        if let Some(dir) = self.slot_dir(Controller::Memory, slot) {
            let bytes = limits.memory_bytes.to_string();
            if v2 {
                write(&dir.join("memory.max"), &bytes)?;
                // Swap would let an instance exceed its memory size silently.
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
            } else {
                write(&dir.join("memory.limit_in_bytes"), &bytes)?;
            }
        }
        if let Some(dir) = self.slot_dir(Controller::Pids, slot) {
            write(&dir.join("pids.max"), &limits.pids_max.to_string())?;
        }
        if let Some(dir) = self.slot_dir(Controller::Cpu, slot) {
            let limit = (limits.cpu_percent != 0).then(|| cpu_period_and_quota(limits.cpu_percent));
            // A burst allowance of one quota, where the kernel has it (5.14 and later):
            // a function idle for a period may then run two quotas' worth at once, so a
            // short invocation after a pause is not cut in the middle, while its share
            // over time stays the same. Written before the quota shrinks below it and
            // after it grows, as the kernel wants the burst no larger than the quota.
            let (burst_file, burst) = if v2 {
                ("cpu.max.burst", limit.map_or(0, |(_, q)| q))
            } else {
                ("cpu.cfs_burst_us", limit.map_or(0, |(_, q)| q))
            };
            let burst_path = dir.join(burst_file);
            let has_burst = burst_path.exists();
            if has_burst {
                write(&burst_path, "0")?;
            }
            if v2 {
                let value = limit.map_or_else(
                    || format!("max {CPU_PERIOD_US}"),
                    |(p, q)| format!("{q} {p}"),
                );
                write(&dir.join("cpu.max"), &value)?;
            } else {
                // The quota first: a period shorter than the quota in place is refused
                // with some kernels, and `-1` is always accepted.
                write(&dir.join("cpu.cfs_quota_us"), "-1")?;
                let (period, quota) = limit.map_or((CPU_PERIOD_US, None), |(p, q)| (p, Some(q)));
                write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                write(
                    &dir.join("cpu.cfs_quota_us"),
                    &quota.map_or_else(|| "-1".to_owned(), |q| q.to_string()),
                )?;
            }
            if has_burst && burst > 0 {
                write(&burst_path, &burst.to_string())?;
            }
        }
        Ok(())
    }

    /// Moves `pid` into the slot (v1; on v2 the child is born there via `clone3`).
    pub(crate) fn attach(&self, slot: usize, pid: i32) -> Result<(), SandboxError> {
        if self.v2 {
            return Ok(());
        }
        for dir in self.dirs(slot) {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Ends everything in the slot quickly: kills every process in it where the kernel
    /// offers that atomically (`cgroup.kill`, v2), then lifts the slot's CPU quota.
    ///
    /// Why the quota: a process with SIGKILL pending still needs CPU time to exit, and so
    /// does the pid namespace's init while it kills the rest. Under the quota of a small
    /// function, hundreds of fork-bomb processes share a few percent of one CPU, and the
    /// whole instance took minutes to die (holding up shutdown). Lifting it lets the
    /// processes die at once; they cannot run user code again, since every one of them is
    /// being killed. The next `acquire` of the slot writes a quota again.
    pub(crate) fn finish(&self, slot: usize) {
        if self.v2 {
            if let Some(dir) = self.slot_dir(Controller::Memory, slot) {
                let kill = dir.join("cgroup.kill");
                // Kernels before 5.14 have no `cgroup.kill`; the pid namespace's end
                // (SIGKILL to its init) kills the rest there.
                if kill.exists() {
                    let _ = fs::write(kill, "1");
                }
            }
        }
        if let Some(dir) = self.slot_dir(Controller::Cpu, slot) {
            let _ = if self.v2 {
                fs::write(dir.join("cpu.max"), format!("max {CPU_PERIOD_US}"))
            } else {
                fs::write(dir.join("cpu.cfs_quota_us"), "-1")
            };
        }
    }

    /// The slot's cumulative count of OOM kills.
    pub(crate) fn oom_kills(&self, slot: usize) -> u64 {
        let Some(dir) = self.slot_dir(Controller::Memory, slot) else {
            return 0;
        };
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        fs::read_to_string(dir.join(file))
            .map(|text| parse_oom_kill(&text))
            .unwrap_or(0)
    }

    /// The slot's peak memory file, reset so that it counts from now: `memory.peak` on v2
    /// (reset through this descriptor alone, kernels 6.12 and later) or
    /// `memory.max_usage_in_bytes` on v1 (reset for the cgroup). Read again from offset 0,
    /// it gives the instance's peak in bytes for a few hundred instructions of the kernel's,
    /// where the `VmHWM` of `/proc/PID/status` renders the whole file. `None` where the
    /// file cannot be reset (a slot reused from an earlier instance would report that
    /// instance's peak) or does not exist.
    pub(crate) fn memory_peak(&self, slot: usize) -> Option<std::os::fd::OwnedFd> {
        use std::io::Write;
        let dir = self.slot_dir(Controller::Memory, slot)?;
        let (file, reset) = if self.v2 {
            ("memory.peak", "reset\n")
        } else {
            ("memory.max_usage_in_bytes", "0\n")
        };
        let mut peak = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(file))
            .ok()?;
        peak.write_all(reset.as_bytes()).ok()?;
        Some(peak.into())
    }

    /// The slot's CPU time file, opened for reading: `cpu.stat` on v2 (its first line is
    /// `usage_usec N`) or `cpuacct.usage` on v1 (nanoseconds). Read again from offset 0, it
    /// gives the CPU time of every process the slot has held, this instance's and those of
    /// earlier instances in a reused slot, so only differences between two reads mean
    /// anything. `None` without the file (no `cpuacct` hierarchy on v1).
    pub(crate) fn cpu_usage(&self, slot: usize) -> Option<std::os::fd::OwnedFd> {
        let path = if self.v2 {
            self.v2_dir(slot)?.join("cpu.stat")
        } else {
            self.slot_dir(Controller::CpuAcct, slot)?
                .join("cpuacct.usage")
        };
        fs::File::open(path).ok().map(Into::into)
    }

    /// Returns a slot whose processes are all gone to the free list.
    pub(crate) fn release(&mut self, slot: usize) {
        let empty = self.dirs(slot).iter().all(|d| {
            fs::read_to_string(d.join("cgroup.procs"))
                .map(|s| s.trim().is_empty())
                .unwrap_or(true)
        });
        if empty {
            self.free.push(slot);
        }
        // A slot with leftover processes is never reused; Drop will try again to remove it.
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        // Children before parents; a directory that still holds a process stays (rmdir
        // fails with EBUSY) rather than being forced.
        for dir in self.all_dirs() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Reads the `oom_kill N` line of `memory.events` (v2) or `memory.oom_control` (v1).
pub(crate) fn parse_oom_kill(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
27 25 0:24 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
28 25 0:25 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
31 25 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
29 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
30 1 0:27 / /with\\040space rw - ext4 /dev/sda rw
";
    const PROC_CGROUP: &str = "8:pids:/\n4:memory:/a/b\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid_host_uses_v1_controllers() {
        let layout = detect(MOUNTINFO, PROC_CGROUP).unwrap();
        assert_eq!(
            layout,
            Layout::V1(vec![
                (
                    Controller::Memory,
                    PathBuf::from("/sys/fs/cgroup/memory/a/b")
                ),
                (Controller::Pids, PathBuf::from("/sys/fs/cgroup/pids")),
                (Controller::Cpu, PathBuf::from("/sys/fs/cgroup/cpu")),
                (Controller::CpuAcct, PathBuf::from("/sys/fs/cgroup/cpuacct")),
            ])
        );
        assert_eq!(
            parse_mountinfo(MOUNTINFO)[6].mount_point,
            PathBuf::from("/with space")
        );
    }

    #[test]
    fn a_comounted_cpu_and_cpuacct_hierarchy_is_one_slot_directory() {
        // The usual v1 layout (systemd's): `cpu` and `cpuacct` in one hierarchy.
        let mountinfo =
            "26 25 0:23 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let layout = detect(mountinfo, "3:cpu,cpuacct:/x\n").unwrap();
        let dir = PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/x");
        assert_eq!(
            layout,
            Layout::V1(vec![
                (Controller::Cpu, dir.clone()),
                (Controller::CpuAcct, dir)
            ])
        );

        let tmp = tempfile::tempdir().unwrap();
        let both = tmp.path().join("cpu,cpuacct");
        fs::create_dir(&both).unwrap();
        let layout = Layout::V1(vec![
            (Controller::Cpu, both.clone()),
            (Controller::CpuAcct, both.clone()),
        ]);
        let mut cg = Cgroups::create(&layout, "w").unwrap();
        let slot = cg
            .acquire(Limits {
                memory_bytes: 1 << 20,
                pids_max: 8,
                cpu_percent: 8,
            })
            .unwrap();
        // One directory per slot, written once on attach, and the CPU time read from it.
        assert_eq!(cg.dirs(slot), vec![both.join("w/slot-0")]);
        cg.attach(slot, 42).unwrap();
        assert_eq!(
            fs::read_to_string(both.join("w/slot-0/cgroup.procs")).unwrap(),
            "42"
        );
        fs::write(both.join("w/slot-0/cpuacct.usage"), "5\n").unwrap();
        assert!(cg.cpu_usage(slot).is_some());
        assert_eq!(cg.all_dirs(), vec![both.join("w/slot-0"), both.join("w")]);
    }

    #[test]
    fn no_cgroup_mounts_means_no_layout() {
        assert_eq!(detect("", PROC_CGROUP), None);
    }

    #[test]
    fn v1_slots_get_limits_and_are_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::V1(vec![
            (Controller::Memory, tmp.path().join("memory")),
            (Controller::Pids, tmp.path().join("pids")),
            (Controller::Cpu, tmp.path().join("cpu")),
            (Controller::CpuAcct, tmp.path().join("cpuacct")),
        ]);
        for c in ["memory", "pids", "cpu", "cpuacct"] {
            fs::create_dir(tmp.path().join(c)).unwrap();
        }
        let mut cg = Cgroups::create(&layout, "w").unwrap();
        let limits = Limits {
            memory_bytes: 64 << 20,
            pids_max: 32,
            cpu_percent: 50,
        };
        let slot = cg.acquire(limits).unwrap();
        let read = |p: &str| fs::read_to_string(tmp.path().join(p)).unwrap();
        assert_eq!(read("memory/w/slot-0/memory.limit_in_bytes"), "67108864");
        assert_eq!(read("pids/w/slot-0/pids.max"), "32");
        assert_eq!(read("cpu/w/slot-0/cpu.cfs_quota_us"), "5000");
        assert_eq!(read("cpu/w/slot-0/cpu.cfs_period_us"), "10000");
        cg.attach(slot, 42).unwrap();
        assert_eq!(read("pids/w/slot-0/cgroup.procs"), "42");
        assert_eq!(read("cpuacct/w/slot-0/cgroup.procs"), "42");
        // The slot's CPU time is read from its accounting hierarchy.
        assert!(cg.cpu_usage(slot).is_none());
        fs::write(tmp.path().join("cpuacct/w/slot-0/cpuacct.usage"), "1234\n").unwrap();
        let mut usage = String::new();
        std::io::Read::read_to_string(&mut fs::File::from(cg.cpu_usage(slot).unwrap()), &mut usage)
            .unwrap();
        assert_eq!(usage, "1234\n");
        // Ending an instance lifts its CPU quota so that its processes can die at once.
        cg.finish(slot);
        assert_eq!(read("cpu/w/slot-0/cpu.cfs_quota_us"), "-1");
        fs::write(
            tmp.path().join("memory/w/slot-0/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(slot), 3);
        // A slot whose cgroup.procs still lists a process is not reused.
        cg.release(slot);
        assert_eq!(cg.acquire(limits).unwrap(), 1);
    }

    #[test]
    fn v2_writes_unified_files() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::V2(
            tmp.path().to_owned(),
            vec![Controller::Memory, Controller::Pids, Controller::Cpu],
        );
        let mut cg = Cgroups::create(&layout, "w").unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("w/cgroup.subtree_control")).unwrap(),
            "+memory +pids +cpu"
        );
        let slot = cg
            .acquire(Limits {
                memory_bytes: 1 << 20,
                pids_max: 8,
                cpu_percent: 0,
            })
            .unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("w/slot-0/cpu.max")).unwrap(),
            "max 100000"
        );
        assert_eq!(cg.v2_dir(slot), Some(tmp.path().join("w/slot-0")));
        // Every v2 cgroup counts its CPU time in `cpu.stat`.
        fs::write(tmp.path().join("w/slot-0/cpu.stat"), "usage_usec 7\n").unwrap();
        assert!(cg.cpu_usage(slot).is_some());
        fs::write(
            tmp.path().join("w/slot-0/memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(slot), 1);

        // Ending an instance kills the whole cgroup and lifts its CPU quota; the next
        // instance in the slot gets its own quota again.
        let slot = cg
            .acquire(Limits {
                memory_bytes: 1 << 20,
                pids_max: 8,
                cpu_percent: 8,
            })
            .unwrap();
        let read = |f: &str| fs::read_to_string(tmp.path().join("w/slot-1").join(f)).unwrap();
        assert_eq!(read("cpu.max"), "1000 12500");
        fs::write(tmp.path().join("w/slot-1/cgroup.kill"), "").unwrap();
        cg.finish(slot);
        assert_eq!(read("cgroup.kill"), "1");
        assert_eq!(read("cpu.max"), "max 100000");
    }

    #[test]
    fn cpu_periods_are_short_and_quotas_within_the_kernel_bounds() {
        // 128 MB of Lambda memory is 8 % of a CPU: the kernel's smallest quota, 1 ms, over
        // 12.5 ms.
        assert_eq!(cpu_period_and_quota(8), (12_500, 1_000));
        assert_eq!(cpu_period_and_quota(5), (20_000, 1_000));
        assert_eq!(cpu_period_and_quota(10), (10_000, 1_000));
        assert_eq!(cpu_period_and_quota(50), (10_000, 5_000));
        assert_eq!(cpu_period_and_quota(100), (10_000, 10_000));
        assert_eq!(cpu_period_and_quota(579), (10_000, 57_900));
        for percent in 1..=1_000u32 {
            let (period, quota) = cpu_period_and_quota(percent);
            assert!(
                period >= MIN_CPU_PERIOD_US && quota >= MIN_CPU_QUOTA_US,
                "{percent}"
            );
            // The share is what was asked for, rounded up by at most a rounding step.
            let share = quota as f64 * 100.0 / period as f64;
            assert!(share + 0.01 >= f64::from(percent), "{percent}: {share}");
            assert!(share <= f64::from(percent) + 0.5, "{percent}: {share}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = parse_mountinfo(&s);
            let _ = parse_proc_cgroup(&s);
            let _ = parse_oom_kill(&s);
            let _ = detect(&s, &s);
        }
    }
}

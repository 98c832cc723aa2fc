//! The zygote: a small single-threaded process that starts, watches and kills instance
//! processes on the server's behalf.
//!
//! It is started once at boot with its control socket as standard input. Its first message
//! says whether instances are sandboxed; if so it creates the `warden_sandbox::Sandbox`
//! here, in this process, because spawning from the sandbox is only sound from a
//! single-threaded process whose spawning thread outlives the instances (the sandbox's
//! caller obligations). It multiplexes the control socket and one pidfd per instance with
//! `poll`, so it needs no threads and no signal handlers, and it reaps each instance through
//! its pidfd (never `waitpid(-1)`), so every instance ends in `Sandbox::wait`, which returns
//! its cgroup slot. When idle it tops up the sandbox's network namespace pool, keeping that
//! work off the spawn path. When the server goes away (the control socket reaches end of
//! stream), it kills every instance it started and exits, so a crashed server leaves no
//! orphans.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{kill_process_group, pidfd_open, Pid, PidfdFlags, Signal};
use warden_egress::addressing::{Allocator, BlockId, LinkAddresses};
use warden_egress::nfnl;
use warden_egress::nft::{self, ChainKey};
use warden_egress::GroupId;
use warden_sandbox::{NetworkLink, PendingLink, Sandbox, SandboxConfig, SandboxSpec, Sandboxed};

use crate::protocol::{self, Event, Request, MAX_MESSAGE};
use crate::{Egress, ExitStatus, InstanceId, Protection, SandboxOptions};

/// How long the zygote, once the server has gone, waits for its killed instances to end
/// before it exits anyway. The server waits longer than this for the zygote.
pub(crate) const KILL_ALL_DEADLINE: Duration = Duration::from_secs(5);

enum Running {
    Plain { child: Child, pidfd: OwnedFd },
    Sandboxed(Sandboxed),
}

impl Running {
    fn pidfd(&self) -> BorrowedFd<'_> {
        match self {
            Running::Plain { pidfd, .. } => pidfd.as_fd(),
            Running::Sandboxed(s) => s.pidfd.as_fd(),
        }
    }
}

struct Zygote {
    control: OwnedFd,
    sandbox: Option<(Sandbox, SandboxOptions)>,
    running: HashMap<InstanceId, Running>,
    /// Whether the network namespace pool may be below its size, or released links wait
    /// to be unbound.
    pool_low: bool,
    /// Background work (refilling the pools, unbinding links) waits until then: a little
    /// after the last spawn, so that it does not take CPU from an instance's init.
    quiet_from: Instant,
    /// Instance links, when the server has a firewall.
    links: Option<Links>,
}

/// The most policies whose linked namespaces are kept ready (the most recently used).
const LINKED_POLICIES_KEPT: usize = 8;

/// How long after a spawn background work waits (see `Zygote::quiet_from`).
const QUIET_AFTER_SPAWN: Duration = Duration::from_millis(25);

/// Linked namespaces kept ready (or being made) per policy. Making one takes about a
/// millisecond in the zygote (the namespace, its listeners, its link and its binding, no
/// process); with several, a cold start that follows another of the same policy closely
/// still finds one ready.
const LINKED_READY_PER_POLICY: usize = 4;

/// A policy's linked namespaces are made again once at most this many are left, all the
/// missing ones at once, bound by one netlink batch (or, should the kernel refuse it, one
/// `nft` run, a process that loads the ruleset, about 4 ms of CPU).
const LINKED_REFILL_AT: usize = 1;

/// Instance links: their addresses, what each is bound to, and which policies keep a
/// linked namespace ready.
struct Links {
    block: BlockId,
    allocator: Allocator,
    /// Links of running instances, and of namespaces ready in the sandbox's pool.
    bound: HashMap<u32, BoundLink>,
    /// Policies used lately, most recent last, with their groups.
    wanted: Vec<(ChainKey, Vec<GroupId>)>,
    /// Links whose namespaces are gone, still bound, waiting for the next background
    /// unbinding. Their numbers (hence addresses) go back to the allocator only once
    /// unbound, so an address never joins a new instance while a group's set holds it.
    unbound: Vec<BoundLink>,
    /// The background `nft` run unbinding a batch, and the batch.
    unbinding: Option<(std::process::Child, Vec<BoundLink>)>,
    /// Linked namespaces being made in the background, while the zygote serves spawns.
    preparing: Vec<Preparing>,
}

/// A linked namespace made, waiting for its binding to the policy's chains (done at once by
/// netlink, or by a background `nft` run shared by its batch). Its link is in
/// [`Links::bound`] from the start, so that giving it up unbinds it.
struct Preparing {
    pending: PendingLink,
    bind: Rc<RefCell<BindRun>>,
}

/// The binding of a batch of links, shared by the batch's namespaces: done already (by
/// netlink), or a background `nft` run (the fallback).
struct BindRun {
    child: Option<Child>,
    /// Its outcome, once it has ended.
    ended: Option<Result<(), String>>,
}

impl BindRun {
    /// Whether the run has ended (reaping it if so).
    fn is_done(&mut self) -> bool {
        if self.ended.is_some() {
            return true;
        }
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        match child.try_wait() {
            Ok(None) => false,
            Ok(Some(status)) => {
                self.ended = Some(bind_outcome(status));
                true
            }
            Err(e) => {
                self.ended = Some(Err(format!("binding the link to its rules failed: {e}")));
                true
            }
        }
    }

    /// Waits for the run to end; its outcome.
    fn wait(&mut self) -> Result<(), String> {
        if self.ended.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.ended = Some(match child.wait() {
                    Ok(status) => bind_outcome(status),
                    Err(e) => Err(format!("binding the link to its rules failed: {e}")),
                });
            }
        }
        self.ended.clone().unwrap_or(Ok(()))
    }
}

fn bind_outcome(status: std::process::ExitStatus) -> Result<(), String> {
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "binding the link to its rules failed: nft {status}"
        ))
    }
}

/// A link and the groups whose sets hold its address.
type BoundLink = (LinkAddresses, Vec<GroupId>);

impl Links {
    /// Makes a linked namespace ready for `key` now: a link, its namespace, and its
    /// binding to the policy's chains. The spawn path's fallback when none is ready; one
    /// being made in the background for `key` is waited for rather than another made.
    fn prepare(
        &mut self,
        sandbox: &mut Sandbox,
        key: &ChainKey,
        groups: &[GroupId],
    ) -> Result<(), String> {
        if !self.is_preparing(key) {
            self.start(sandbox, key, groups, 1)?;
        }
        let failure = self.advance(sandbox, Some(key));
        if sandbox.linked_ready(key.as_str()) == 0 {
            return Err(failure
                .unwrap_or_else(|| "the instance's network link could not be made".to_owned()));
        }
        Ok(())
    }

    /// Whether a linked namespace for `key` is being made.
    fn is_preparing(&self, key: &ChainKey) -> bool {
        self.preparing_for(key) > 0
    }

    /// How many linked namespaces for `key` are being made.
    fn preparing_for(&self, key: &ChainKey) -> usize {
        self.preparing
            .iter()
            .filter(|p| p.pending.key() == key.as_str())
            .count()
    }

    /// Makes `count` linked namespaces for `key`, their links bound by one netlink batch
    /// (or one `nft` run in the background); [`Links::advance`] makes them ready once bound.
    /// Makes as many as it can (at least one, or fails).
    fn start(
        &mut self,
        sandbox: &mut Sandbox,
        key: &ChainKey,
        groups: &[GroupId],
        count: usize,
    ) -> Result<(), String> {
        let mut batch = Vec::new();
        let mut failure = None;
        for _ in 0..count.max(1) {
            let Some(addresses) = self.allocator.allocate() else {
                failure = Some("every network link of this server is in use".to_owned());
                break;
            };
            let link = NetworkLink {
                index: addresses.index,
                host_ifname: addresses.host_ifname.clone(),
                host_addr: addresses.host_addr,
                instance_addr: addresses.instance_addr,
                prefix_len: addresses.prefix_len,
            };
            match sandbox.begin_linked(key.as_str(), link) {
                Ok(pending) => batch.push((addresses, pending)),
                Err(e) => {
                    self.allocator.release(addresses.index);
                    failure = Some(error_chain(&e));
                    break;
                }
            }
        }
        if batch.is_empty() {
            return Err(failure.unwrap_or_else(|| "no network link was made".to_owned()));
        }
        // Bound at once by one netlink batch (a fraction of a millisecond); should the
        // kernel refuse it, by the equivalent `nft` script in the background, which says
        // why if it fails too.
        let links: Vec<&LinkAddresses> = batch.iter().map(|(addresses, _)| addresses).collect();
        let bound = match nfnl::bind_links(self.block, &links, key, groups) {
            Ok(()) => Ok(BindRun {
                child: None,
                ended: Some(Ok(())),
            }),
            Err(_) => {
                let script: String = batch
                    .iter()
                    .map(|(addresses, _)| nft::bind_link(self.block, addresses, key, groups))
                    .collect();
                nft::apply_in_background(&script).map(|child| BindRun {
                    child: Some(child),
                    ended: None,
                })
            }
        };
        let bind = match bound {
            Ok(run) => Rc::new(RefCell::new(run)),
            Err(e) => {
                for (addresses, pending) in batch {
                    drop(pending);
                    self.allocator.release(addresses.index);
                }
                return Err(error_chain(&e));
            }
        };
        for (addresses, pending) in batch {
            self.bound
                .insert(addresses.index, (addresses, groups.to_vec()));
            self.preparing.push(Preparing {
                pending,
                bind: Rc::clone(&bind),
            });
        }
        Ok(())
    }

    /// Makes ready every linked namespace whose binding has ended, and, first
    /// waiting for them, those of `wait_for`, returning why one of those failed. One that
    /// failed is given up (its namespace dropped, its link unbound); one made for a policy
    /// no longer wanted too, unless it was waited for.
    fn advance(&mut self, sandbox: &mut Sandbox, wait_for: Option<&ChainKey>) -> Option<String> {
        let mut failure = None;
        let mut still = Vec::new();
        for mut p in std::mem::take(&mut self.preparing) {
            let waited = wait_for.is_some_and(|k| p.pending.key() == k.as_str());
            let bind_done = p.bind.borrow_mut().is_done();
            let finished = bind_done && p.pending.is_done();
            if !waited && !finished {
                still.push(p);
                continue;
            }
            let index = p.pending.index();
            let key = p.pending.key().to_owned();
            let bound = p.bind.borrow_mut().wait();
            let made = bound.and_then(|()| {
                sandbox
                    .finish_linked(p.pending)
                    .map_err(|e| error_chain(&e))
            });
            match made {
                // Without its binding the link passes nothing (the table rejects unbound
                // links), but it must not be used: its namespace is gone or goes now.
                Err(why) => {
                    self.release(index);
                    if waited {
                        failure = Some(why);
                    }
                }
                Ok(()) if !waited && !self.wanted.iter().any(|(k, _)| k.as_str() == key) => {
                    for l in sandbox.drop_linked(&key) {
                        self.release(l.index);
                    }
                }
                Ok(()) => {}
            }
        }
        self.preparing.extend(still);
        failure
    }

    /// A link's namespace is gone: it is unbound in the background by the next refill
    /// (deleting elements makes the kernel wait for a grace period, which must not hold up
    /// spawns), and its number goes back only once that is done.
    fn release(&mut self, index: u32) {
        match self.bound.remove(&index) {
            // Unbound by the next refill, once the zygote is quiet.
            Some(bound) => self.unbound.push(bound),
            None => self.allocator.release(index),
        }
    }

    /// Starts unbinding the released links if no unbinding runs; reaps a finished one and
    /// gives its links' numbers back (retrying one by one, synchronously, if it failed).
    fn unbind_in_background(&mut self) {
        if let Some((child, batch)) = &mut self.unbinding {
            match child.try_wait() {
                Ok(None) => return,
                Ok(Some(status)) => {
                    let batch = std::mem::take(batch);
                    if !status.success() {
                        for (a, g) in &batch {
                            let _ = nft::apply(&nft::unbind_link(self.block, a, g));
                        }
                    }
                    for (a, _) in batch {
                        self.allocator.release(a.index);
                    }
                    self.unbinding = None;
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let batch = std::mem::take(batch);
                    self.unbinding = None;
                    self.unbound.extend(batch);
                }
            }
        }
        if self.unbound.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.unbound);
        let script: String = batch
            .iter()
            .map(|(a, g)| nft::unbind_link(self.block, a, g))
            .collect();
        match nft::apply_in_background(&script) {
            Ok(child) => self.unbinding = Some((child, batch)),
            // Not even started: keep them for the next try.
            Err(_) => self.unbound = batch,
        }
    }

    /// Notes that `key` was used; forgets (and frees the ready namespaces of) the least
    /// recently used policy beyond [`LINKED_POLICIES_KEPT`].
    fn used(&mut self, sandbox: &mut Sandbox, key: &ChainKey, groups: &[GroupId]) {
        self.wanted.retain(|(k, _)| k != key);
        self.wanted.push((key.clone(), groups.to_vec()));
        while self.wanted.len() > LINKED_POLICIES_KEPT {
            let (old, _) = self.wanted.remove(0);
            for l in sandbox.drop_linked(old.as_str()) {
                self.release(l.index);
            }
        }
    }
}

/// Runs the zygote loop on `control` until the server closes it.
pub fn run_zygote(control: OwnedFd) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let sandbox = match protocol::recv::<Request>(control.as_fd(), &mut buf)? {
        Some((Request::Init { sandbox: None }, _)) => None,
        Some((
            Request::Init {
                sandbox: Some(opts),
            },
            _,
        )) => {
            let config = SandboxConfig {
                netns_pool_size: opts.netns_pool_size,
                favor_dynmods: opts.favor_dynmods,
                ..SandboxConfig::default()
            };
            match Sandbox::new(config) {
                Ok(sandbox) => Some((sandbox, opts)),
                Err(e) => {
                    let event = Event::InitFailed {
                        message: error_chain(&e),
                    };
                    protocol::send(control.as_fd(), &event, &[])?;
                    return Ok(());
                }
            }
        }
        Some(_) => return Err(std::io::Error::other("the first message must be `Init`")),
        None => return Ok(()),
    };
    let protections = sandbox
        .as_ref()
        .map(|(s, _)| {
            s.report()
                .protections
                .into_iter()
                .map(|p| Protection {
                    name: p.name.to_owned(),
                    active: p.active,
                    detail: p.detail,
                })
                .collect()
        })
        .unwrap_or_default();
    protocol::send(control.as_fd(), &Event::Ready { protections }, &[])?;
    let links = match &sandbox {
        Some((_, opts)) => opts.egress_block.map(|block| Links {
            block,
            allocator: Allocator::new(block),
            bound: HashMap::new(),
            wanted: Vec::new(),
            unbound: Vec::new(),
            unbinding: None,
            preparing: Vec::new(),
        }),
        None => None,
    };
    let mut zygote = Zygote {
        control,
        sandbox,
        running: HashMap::new(),
        pool_low: false,
        quiet_from: Instant::now(),
        links,
    };
    zygote.run(&mut buf)
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

impl Zygote {
    fn run(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        loop {
            let ids: Vec<InstanceId> = self.running.keys().copied().collect();
            let mut fds = Vec::with_capacity(ids.len() + 1);
            fds.push(PollFd::new(&self.control, PollFlags::IN));
            let pidfds: Vec<BorrowedFd<'_>> =
                ids.iter().map(|id| self.running[id].pidfd()).collect();
            for fd in &pidfds {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            // With the pool low, look for work; if there is none once the quiet period after
            // the last spawn has passed, refill it. While linked namespaces are being made,
            // look every millisecond for the end of a fallback `nft` run binding them.
            let preparing = self.links.as_ref().is_some_and(|l| !l.preparing.is_empty());
            // A policy left without a ready namespace cannot wait for quiet: the next cold
            // start of a burst would make one inline.
            if self.policy_without_namespace() {
                self.quiet_from = Instant::now();
            }
            let until_quiet = self.quiet_from.saturating_duration_since(Instant::now());
            let wait = match (self.pool_low, preparing) {
                (true, true) => Some(until_quiet.min(Duration::from_millis(1))),
                (true, false) => Some(until_quiet),
                (false, true) => Some(Duration::from_millis(1)),
                (false, false) => None,
            };
            let timeout = wait.map(|w| Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(w.subsec_nanos()),
            });
            let ready = match poll(&mut fds, timeout.as_ref()) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let control_ready = !fds[0].revents().is_empty();
            let exited: Vec<InstanceId> = ids
                .iter()
                .zip(&fds[1..])
                .filter(|(_, fd)| !fd.revents().is_empty())
                .map(|(id, _)| *id)
                .collect();
            drop(fds);

            if ready == 0 {
                if self.pool_low && Instant::now() >= self.quiet_from {
                    self.refill();
                } else if let (Some((sandbox, _)), Some(links)) =
                    (&mut self.sandbox, &mut self.links)
                {
                    let _ = links.advance(sandbox, None);
                }
                continue;
            }
            for id in exited {
                if let Some(r) = self.running.remove(&id) {
                    let status = self.reap(r);
                    let _ =
                        protocol::send(self.control.as_fd(), &Event::Exited { id, status }, &[]);
                }
            }
            if control_ready {
                match protocol::recv::<Request>(self.control.as_fd(), buf) {
                    Ok(Some((request, fds))) => self.handle(request, fds),
                    Ok(None) | Err(_) => {
                        self.kill_all();
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Whether a recently used policy has no linked namespace ready or being made.
    fn policy_without_namespace(&self) -> bool {
        let (Some((sandbox, _)), Some(links)) = (&self.sandbox, &self.links) else {
            return false;
        };
        links
            .wanted
            .iter()
            .any(|(key, _)| sandbox.linked_ready(key.as_str()) == 0 && !links.is_preparing(key))
    }

    fn refill(&mut self) {
        self.pool_low = false;
        if let Some((sandbox, _)) = &mut self.sandbox {
            // A failure here is not fatal: `spawn` creates a namespace inline when the pool
            // is empty, and reports the error itself if that fails too.
            let _ = sandbox.refill_pool();
            // Linked namespaces ready (or being made) for each recently used policy.
            if let Some(links) = &mut self.links {
                links.unbind_in_background();
                let _ = links.advance(sandbox, None);
                let wanted = links.wanted.clone();
                for (key, groups) in wanted {
                    let have = sandbox.linked_ready(key.as_str()) + links.preparing_for(&key);
                    if have <= LINKED_REFILL_AT {
                        let _ = links.start(sandbox, &key, &groups, LINKED_READY_PER_POLICY - have);
                    }
                }
                // Bound by netlink, they are ready now.
                let _ = links.advance(sandbox, None);
            }
        }
    }

    /// An instance with link `index` has ended (its namespace with it).
    fn release_link(&mut self, index: Option<u32>) {
        if let (Some(i), Some(links)) = (index, &mut self.links) {
            links.release(i);
            // Its unbinding starts with the next refill.
            self.pool_low = true;
        }
    }

    /// After a failed linked spawn (whose namespace is gone): releases every bound link
    /// that is neither ready in the pool nor held by a running instance.
    fn reconcile_links(&mut self) {
        let (Some((sandbox, _)), Some(links)) = (&self.sandbox, &mut self.links) else {
            return;
        };
        let mut live = sandbox.linked_indexes();
        live.extend(links.preparing.iter().map(|p| p.pending.index()));
        live.extend(self.running.values().filter_map(|r| match r {
            Running::Sandboxed(s) => s.link.as_ref().map(|l| l.index),
            Running::Plain { .. } => None,
        }));
        let orphans: Vec<u32> = links
            .bound
            .keys()
            .copied()
            .filter(|i| !live.contains(i))
            .collect();
        for i in orphans {
            links.release(i);
        }
    }

    /// The linked namespace key for an instance's egress, made ready if none is: `None`
    /// for loopback only.
    fn linked_key(&mut self, egress: &Egress) -> Result<Option<String>, String> {
        let Egress::Linked { policy, groups } = egress else {
            return Ok(None);
        };
        let (Some((sandbox, _)), Some(links)) = (&mut self.sandbox, &mut self.links) else {
            return Err(
                "this server has no firewall, so instances cannot have a network link".into(),
            );
        };
        let key = ChainKey::parse(policy).ok_or("malformed network policy key")?;
        let groups = groups
            .iter()
            .map(|g| GroupId::parse(g))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        if sandbox.linked_ready(key.as_str()) == 0 {
            links.prepare(sandbox, &key, &groups)?;
        }
        links.used(sandbox, &key, &groups);
        Ok(Some(key.as_str().to_owned()))
    }

    /// The server is gone: leave nothing behind. Every instance is killed first, so that
    /// they all die at once, then reaped as each ends, for at most [`KILL_ALL_DEADLINE`]:
    /// the zygote exits then even if a process cannot die (stuck in the kernel), and the
    /// server, which waits for the zygote, is not held up by it.
    fn kill_all(&mut self) {
        let ids: Vec<InstanceId> = self.running.keys().copied().collect();
        for id in &ids {
            self.kill(*id);
        }
        let deadline = Instant::now() + KILL_ALL_DEADLINE;
        while !self.running.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!(
                    "warden zygote: {} instance(s) did not end within {KILL_ALL_DEADLINE:?} of the shutdown; leaving them to the kernel",
                    self.running.len()
                );
                return;
            }
            let ids: Vec<InstanceId> = self.running.keys().copied().collect();
            let ended: Vec<InstanceId> = {
                let mut fds: Vec<PollFd<'_>> = ids
                    .iter()
                    .map(|id| PollFd::from_borrowed_fd(self.running[id].pidfd(), PollFlags::IN))
                    .collect();
                let timeout = Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                };
                match poll(&mut fds, Some(&timeout)) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return,
                }
                ids.iter()
                    .zip(&fds)
                    .filter(|(_, fd)| !fd.revents().is_empty())
                    .map(|(id, _)| *id)
                    .collect()
            };
            for id in ended {
                if let Some(r) = self.running.remove(&id) {
                    self.reap(r);
                }
            }
        }
    }

    /// Kills an instance and everything it started; returns at once. Its pidfd becomes
    /// readable when it is gone, and it is reaped then.
    fn kill(&mut self, id: InstanceId) {
        match self.running.get_mut(&id) {
            Some(Running::Plain { child, .. }) => {
                let _ = kill_process_group(child_pid(child), Signal::KILL);
                let _ = child.kill();
            }
            Some(Running::Sandboxed(s)) => {
                if let Some((sandbox, _)) = &self.sandbox {
                    // SIGKILL to pid 1 ends the whole pid namespace, including processes
                    // that ignore SIGTERM; the sandbox also lifts the CPU quota so that
                    // the dying processes are not throttled.
                    let _ = sandbox.kill(s);
                }
            }
            None => {}
        }
    }

    /// Collects the exit status of an instance whose pidfd is readable and frees what it
    /// held (its process group, or its sandbox and cgroup slot).
    fn reap(&mut self, r: Running) -> ExitStatus {
        match r {
            Running::Plain { mut child, .. } => {
                let status = match child.wait() {
                    Ok(s) => match (s.code(), s.signal()) {
                        (Some(c), _) => ExitStatus::Code(c),
                        (None, Some(sig)) => ExitStatus::Signal(sig),
                        (None, None) => ExitStatus::Lost,
                    },
                    Err(_) => ExitStatus::Lost,
                };
                // INVARIANT: the group id equals the leader's pid; the leader is reaped, but
                // the group lives on while any member does, so this reaches background
                // processes it left.
                let _ = kill_process_group(child_pid(&child), Signal::KILL);
                status
            }
            Running::Sandboxed(s) => {
                let link = s.link.as_ref().map(|l| l.index);
                let status = match &mut self.sandbox {
                    // pid 1 of the instance has exited, which ended its whole pid namespace.
                    Some((sandbox, _)) => match sandbox.wait(s) {
                        Ok(exit) => sandbox_status(exit),
                        Err(_) => ExitStatus::Lost,
                    },
                    None => ExitStatus::Lost,
                };
                self.release_link(link);
                status
            }
        }
    }

    fn handle(&mut self, request: Request, fds: Vec<OwnedFd>) {
        match request {
            Request::Init { .. } => {}
            Request::Spawn {
                id,
                program,
                args,
                env,
                cwd,
                code_dir,
                mounts,
                limits,
            } => {
                let Ok::<[OwnedFd; 2], _>([stdout, stderr]) = fds.try_into() else {
                    let event = Event::SpawnFailed {
                        id,
                        message: "expected 2 descriptors".into(),
                    };
                    let _ = protocol::send(self.control.as_fd(), &event, &[]);
                    return;
                };
                let limits_egress = limits.egress.clone();
                let linked = match self.linked_key(&limits.egress) {
                    Ok(k) => k,
                    Err(message) => {
                        let event = Event::SpawnFailed { id, message };
                        let _ = protocol::send(self.control.as_fd(), &event, &[]);
                        return;
                    }
                };
                let spawned = match &mut self.sandbox {
                    Some((sandbox, opts)) => {
                        let spec = SandboxSpec {
                            program: program.into(),
                            args,
                            env,
                            cwd: cwd.into(),
                            code_dir: code_dir.into(),
                            readonly_binds: opts
                                .runtime_paths
                                .iter()
                                .map(|p| (p.clone(), p.clone()))
                                .chain(mounts.into_iter().map(|m| (m.host, m.inside)))
                                .collect(),
                            memory_mb: limits.memory_mb,
                            tmp_mb: limits.tmp_mb,
                            pids_max: limits.pids_max,
                            cpu_quota_percent: limits.cpu_percent,
                            stdout,
                            stderr,
                            linked,
                        };
                        self.pool_low = true;
                        self.quiet_from = Instant::now() + QUIET_AFTER_SPAWN;
                        sandbox
                            .spawn(spec)
                            .map(|s| (s.pid, Running::Sandboxed(s)))
                            .map_err(|e| error_chain(&e))
                    }
                    // The server refuses mounts without a sandbox before it asks.
                    None if !mounts.is_empty() => Err("mounts need a sandbox".to_owned()),
                    None => spawn_plain(program, args, env, cwd.into(), stdout, stderr)
                        .map_err(|e| e.to_string()),
                };
                match spawned {
                    Ok((pid, running)) => {
                        let fds: Vec<BorrowedFd<'_>> = match &running {
                            Running::Sandboxed(s) => {
                                let mut fds = vec![
                                    s.runtime_api_listener.as_fd(),
                                    s.api_listener.as_fd(),
                                    s.extension_listener.as_fd(),
                                ];
                                fds.extend(s.dns_socket.as_ref().map(|d| d.as_fd()));
                                fds.extend(s.memory_peak.as_ref().map(|d| d.as_fd()));
                                fds.extend(s.cpu_usage.as_ref().map(|d| d.as_fd()));
                                fds
                            }
                            Running::Plain { .. } => Vec::new(),
                        };
                        let link_address = match &running {
                            Running::Sandboxed(s) => s.link.as_ref().map(|l| l.instance_addr),
                            Running::Plain { .. } => None,
                        };
                        let (memory_peak, cpu_usage) = match &running {
                            Running::Sandboxed(s) => {
                                (s.memory_peak.is_some(), s.cpu_usage.is_some())
                            }
                            Running::Plain { .. } => (false, false),
                        };
                        let event = Event::Spawned {
                            id,
                            pid,
                            link_address,
                            memory_peak,
                            cpu_usage,
                        };
                        if protocol::send(self.control.as_fd(), &event, &fds).is_err() {
                            // The server will never serve it: end it now.
                            let _ = self.reap_now(running);
                            return;
                        }
                        // The server holds the peak memory and CPU time files now; the
                        // zygote's copies would only be more descriptors per instance.
                        let mut running = running;
                        if let Running::Sandboxed(s) = &mut running {
                            s.memory_peak = None;
                            s.cpu_usage = None;
                        }
                        self.running.insert(id, running);
                    }
                    Err(message) => {
                        if !matches!(limits_egress, Egress::RelayOnly) {
                            self.reconcile_links();
                        }
                        let event = Event::SpawnFailed { id, message };
                        let _ = protocol::send(self.control.as_fd(), &event, &[]);
                    }
                }
            }
            // The pidfd becomes readable and the main loop reaps and reports it.
            Request::Kill { id } => self.kill(id),
        }
    }

    fn reap_now(&mut self, r: Running) -> ExitStatus {
        match r {
            Running::Plain { mut child, pidfd } => {
                let _ = kill_process_group(child_pid(&child), Signal::KILL);
                let _ = child.kill();
                self.reap(Running::Plain { child, pidfd })
            }
            Running::Sandboxed(s) => {
                let link = s.link.as_ref().map(|l| l.index);
                let status = match &mut self.sandbox {
                    Some((sandbox, _)) => sandbox
                        .teardown(s)
                        .map(sandbox_status)
                        .unwrap_or(ExitStatus::Lost),
                    None => ExitStatus::Lost,
                };
                self.release_link(link);
                status
            }
        }
    }
}

/// Maps the sandbox's view of an ended instance to ours. The sandbox's init reports a
/// function killed by signal `n` as exit code `128 + n`, as a shell does; that is shown
/// as the signal, which is also how Lambda words it.
fn sandbox_status(exit: warden_sandbox::Exit) -> ExitStatus {
    if exit.oom_killed {
        return ExitStatus::OutOfMemory;
    }
    match (exit.status.code, exit.status.signal) {
        (Some(c), _) if (129..=128 + 64).contains(&c) => ExitStatus::Signal(c - 128),
        (Some(c), _) => ExitStatus::Code(c),
        (None, Some(s)) => ExitStatus::Signal(s),
        (None, None) => ExitStatus::Lost,
    }
}

fn spawn_plain(
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> std::io::Result<(i32, Running)> {
    let mut command = Command::new(&program);
    command
        .args(&args)
        .env_clear()
        .envs(env)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .process_group(0);
    let mut child = command.spawn()?;
    let pid = child.id() as i32;
    match Pid::from_raw(pid).map(|p| pidfd_open(p, PidfdFlags::empty())) {
        Some(Ok(pidfd)) => Ok((pid, Running::Plain { child, pidfd })),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::other("could not watch the new process"))
        }
    }
}

fn child_pid(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32).unwrap_or(Pid::INIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_sandbox::Exit;

    fn exit(code: Option<i32>, signal: Option<i32>, oom_killed: bool) -> Exit {
        Exit {
            status: warden_sandbox::ExitStatus { code, signal },
            oom_killed,
        }
    }

    #[test]
    fn sandbox_exits_map_to_lambda_statuses() {
        assert_eq!(
            sandbox_status(exit(Some(137), None, true)),
            ExitStatus::OutOfMemory
        );
        assert_eq!(
            sandbox_status(exit(Some(137), None, false)),
            ExitStatus::Signal(9)
        );
        assert_eq!(
            sandbox_status(exit(Some(3), None, false)),
            ExitStatus::Code(3)
        );
        assert_eq!(
            sandbox_status(exit(Some(0), None, false)),
            ExitStatus::Code(0)
        );
        assert_eq!(
            sandbox_status(exit(None, Some(9), false)),
            ExitStatus::Signal(9)
        );
        assert_eq!(sandbox_status(exit(None, None, false)), ExitStatus::Lost);
    }
}

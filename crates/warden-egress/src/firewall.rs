//! The server's side of enforcement: its table, and the chains of every policy its
//! functions use, kept equal to their security groups.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::addressing::{Block, BlockId};
use crate::nft::{self, ChainKey};
use crate::rules::{self, GroupId, GroupRules, Peer, Protocol, Rule};
use crate::{Capability, EgressError};

/// Where instances of functions without a network configuration may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultEgress {
    /// Nowhere: loopback only (the default).
    Deny,
    /// Public addresses (never private ranges, link-local or the host).
    Internet,
}

/// Where security groups come from (the network service).
pub trait GroupSource: Send + Sync {
    /// The group's rules, or `None` if it does not exist.
    fn group(&self, id: &GroupId) -> Option<GroupRules>;
}

/// What an instance's link is bound to: its policy's chains and the groups whose sets
/// hold its address. Sent to the executor with the spawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The policy's chains.
    pub key: ChainKey,
    /// The instance's security groups.
    pub groups: Vec<GroupId>,
}

/// One server's table and its policies' chains.
pub struct Firewall {
    block: Block,
    lock_dir: std::path::PathBuf,
    /// Set once the network service is open (after the zygote has started, which needs
    /// the block first).
    source: OnceLock<Arc<dyn GroupSource>>,
    default_egress: DefaultEgress,
    /// Every policy compiled so far, by key, with its groups: what [`Firewall::refresh`]
    /// recompiles.
    known: Mutex<BTreeMap<ChainKey, Vec<GroupId>>>,
}

impl std::fmt::Debug for Firewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firewall")
            .field("block", &self.block.id)
            .field("default_egress", &self.default_egress)
            .finish_non_exhaustive()
    }
}

/// The most distinct policies (sets of groups) one server keeps chains for.
pub const MAX_POLICIES: usize = 10_000;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// The file, in the lock directory, that keeps the host's forwarding setting from before
/// the first Warden server on it started.
const FORWARDING_BEFORE: &str = "ip_forward.before";

impl Firewall {
    /// Takes an address block (lock files in `lock_dir`), installs its table, and turns
    /// on the host's IPv4 forwarding (guarding, in the table, what the host forwarded
    /// before if it did not). Groups are read from the source given to
    /// [`Firewall::set_source`]; until then only the default policy works.
    pub fn install(
        lock_dir: &Path,
        default_egress: DefaultEgress,
    ) -> Result<Firewall, EgressError> {
        if let Capability::Unavailable(why) = crate::probe() {
            return Err(EgressError::Unavailable(why));
        }
        let block = Block::acquire(lock_dir)?;
        // What the host did before any Warden server turned forwarding on: the first
        // server to start notes it; every server guards it; the last to stop restores it.
        let before_file = lock_dir.join(FORWARDING_BEFORE);
        let before = match std::fs::read_to_string(&before_file) {
            Ok(v) => v,
            Err(_) => {
                let now = std::fs::read_to_string(IP_FORWARD).map_err(|e| {
                    EgressError::Unavailable(format!("cannot read {IP_FORWARD}: {e}"))
                })?;
                std::fs::write(&before_file, now.trim()).map_err(|e| {
                    EgressError::Unavailable(format!("cannot write {}: {e}", before_file.display()))
                })?;
                now
            }
        };
        nft::apply(&nft::base_table(block.id, before.trim() == "0"))?;
        std::fs::write(IP_FORWARD, "1")
            .map_err(|e| EgressError::Unavailable(format!("cannot enable forwarding: {e}")))?;
        let firewall = Firewall {
            block,
            lock_dir: lock_dir.to_path_buf(),
            source: OnceLock::new(),
            default_egress,
            known: Mutex::new(BTreeMap::new()),
        };
        if default_egress == DefaultEgress::Internet {
            let key = ChainKey::default_policy();
            nft::apply(&firewall.compile(&key, &[]))?;
            firewall.known().insert(key, Vec::new());
        }
        Ok(firewall)
    }

    /// Where groups come from; set once (a second call changes nothing).
    pub fn set_source(&self, source: Arc<dyn GroupSource>) {
        let _ = self.source.set(source);
    }

    fn group(&self, id: &GroupId) -> Option<GroupRules> {
        self.source.get().and_then(|s| s.group(id))
    }

    /// This server's address block.
    pub fn block(&self) -> BlockId {
        self.block.id
    }

    /// The default egress of functions without a network configuration.
    pub fn default_egress(&self) -> DefaultEgress {
        self.default_egress
    }

    fn known(&self) -> std::sync::MutexGuard<'_, BTreeMap<ChainKey, Vec<GroupId>>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The policy of instances in `groups`, its chains loaded if they were not.
    pub fn policy_for(&self, groups: &[String]) -> Result<Policy, EgressError> {
        let mut ids = groups
            .iter()
            .map(|g| GroupId::parse(g))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        ids.dedup();
        for id in &ids {
            if self.group(id).is_none() {
                return Err(EgressError::NoSuchGroup(id.as_str().to_owned()));
            }
        }
        let key = ChainKey::of_groups(&ids);
        // Held while the chains load, so that a refresh (after a group changed) either
        // sees this policy or runs after it: a chain is never left compiled from groups
        // older than the last change.
        let mut known = self.known();
        if !known.contains_key(&key) {
            if known.len() >= MAX_POLICIES {
                return Err(EgressError::Unavailable(format!(
                    "more than {MAX_POLICIES} distinct sets of security groups are in use"
                )));
            }
            nft::apply(&self.compile(&key, &ids))?;
            known.insert(key.clone(), ids.clone());
        }
        Ok(Policy { key, groups: ids })
    }

    /// The policy of functions without a network configuration, if they have a link at
    /// all (`--default-egress internet`).
    pub fn default_policy(&self) -> Option<Policy> {
        (self.default_egress == DefaultEgress::Internet).then(|| Policy {
            key: ChainKey::default_policy(),
            groups: Vec::new(),
        })
    }

    /// Recompiles every known policy from the groups as they are now, in one
    /// transaction: called after any change to a group.
    pub fn refresh(&self) -> Result<(), EgressError> {
        let known = self.known();
        let script: String = known
            .iter()
            .map(|(key, groups)| self.compile(key, groups))
            .collect();
        if script.is_empty() {
            return Ok(());
        }
        nft::apply(&script)
    }

    /// The counters of every flow the table tracks now: accepted, then rejected.
    pub fn read_flows(
        &self,
    ) -> Result<(Vec<crate::flows::Counted>, Vec<crate::flows::Counted>), EgressError> {
        let table = self.block.id.table();
        let read = |set: &str| {
            nft::run("nft", &["-j", "list", "set", "inet", &table, set], "")
                .map(|json| crate::flows::parse_set(&json))
        };
        Ok((read(nft::FLOWS_SET)?, read(nft::REJECTS_SET)?))
    }

    /// Deletes the table (at shutdown; the links are gone with their instances), and,
    /// if no other Warden server runs here, turns forwarding back off when it was off
    /// before the first of them started.
    pub fn remove(&self) -> Result<(), EgressError> {
        nft::apply(&nft::delete_table(self.block.id))?;
        if !self.block.others_held(&self.lock_dir) {
            let before_file = self.lock_dir.join(FORWARDING_BEFORE);
            if let Ok(before) = std::fs::read_to_string(&before_file) {
                if before.trim() == "0" {
                    std::fs::write(IP_FORWARD, "0").map_err(|e| {
                        EgressError::Unavailable(format!("cannot restore {IP_FORWARD}: {e}"))
                    })?;
                }
                let _ = std::fs::remove_file(&before_file);
            }
        }
        Ok(())
    }

    /// The script replacing both chains of `key` with the rules of `groups` (a group that
    /// no longer exists contributes nothing).
    fn compile(&self, key: &ChainKey, groups: &[GroupId]) -> String {
        let (egress, ingress): (Vec<Rule>, Vec<Rule>) = if *key == ChainKey::default_policy() {
            (
                vec![Rule {
                    protocol: Protocol::All,
                    from_port: -1,
                    to_port: -1,
                    peer: Peer::Cidr(ipnet::Ipv4Net::default()),
                }],
                Vec::new(),
            )
        } else {
            let found: Vec<GroupRules> = groups.iter().filter_map(|g| self.group(g)).collect();
            (
                found
                    .iter()
                    .flat_map(|g| g.egress.iter().cloned())
                    .collect(),
                found
                    .iter()
                    .flat_map(|g| g.ingress.iter().cloned())
                    .collect(),
            )
        };
        let e: Vec<&Rule> = egress.iter().collect();
        let i: Vec<&Rule> = ingress.iter().collect();
        let mut sets = rules::referenced_groups(egress.iter().chain(&ingress));
        sets.extend(groups.iter().cloned());
        sets.sort();
        sets.dedup();
        let mut script = nft::replace_chain(
            self.block.id,
            &key.egress(),
            &rules::egress_chain(&e),
            &sets,
        );
        script.push_str(&nft::replace_chain(
            self.block.id,
            &key.ingress(),
            &rules::ingress_chain(&i),
            &[],
        ));
        script
    }
}

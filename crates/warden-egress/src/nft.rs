//! The host's nftables table for one Warden server, the scripts that change it, and the
//! `nft` program that applies them.
//!
//! Each change is one `nft -f -` script, which the kernel applies as one transaction: a
//! policy's chains are replaced whole, never seen half-written.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::addressing::{BlockId, LinkAddresses, HOST_IFNAME_PREFIX};
use crate::rules::{GroupId, ACCEPT, PROTECTED, REFUSE, REJECT};
use crate::EgressError;

/// Where programs (`nft`) are looked for besides `PATH` (root's programs are often only in
/// `sbin`).
const SBIN: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The full path of `program`, from `PATH` or the system's `sbin` directories.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Runs `program` with `args`, `stdin` as its input; its standard output, or the refusal
/// with what it printed.
pub fn run(program: &str, args: &[&str], stdin: &str) -> Result<String, EgressError> {
    let path = find_program(program).ok_or_else(|| EgressError::Spawn {
        program: program.to_owned(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let spawn = |source| EgressError::Spawn {
        program: program.to_owned(),
        source,
    };
    let mut child = Command::new(path)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if !out.status.success() {
        return Err(EgressError::Refused {
            program: program.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts applying an nftables script as one transaction without waiting for it: for
/// changes that delete, whose commit waits for the kernel's RCU grace period (about 10
/// ms, no CPU) and must not hold the caller up. The caller reaps the child.
pub fn apply_in_background(script: &str) -> Result<std::process::Child, EgressError> {
    let path = find_program("nft").ok_or_else(|| EgressError::Spawn {
        program: "nft".to_owned(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let spawn = |source| EgressError::Spawn {
        program: "nft".to_owned(),
        source,
    };
    let mut child = Command::new(path)
        .args(["-f", "-"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut input) = child.stdin.take() {
        if let Err(e) = input.write_all(script.as_bytes()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn(e));
        }
    }
    Ok(child)
}

/// Applies an nftables script as one transaction.
pub fn apply(script: &str) -> Result<(), EgressError> {
    run("nft", &["-f", "-"], script).map(|_| ())
}

/// The set counting accepted flows.
pub const FLOWS_SET: &str = "flows";
/// The set counting rejected flows.
pub const REJECTS_SET: &str = "rejects";
/// Most flows each set tracks at once.
pub const FLOW_SET_SIZE: u32 = 65_536;

/// The chain names of a policy: `e_<key>` (egress) and `i_<key>` (ingress).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ChainKey(String);

impl ChainKey {
    /// The key of the policy of `groups` (sorted, deduplicated ids): a hash, so any set
    /// of groups gives a short name made of hex digits only.
    pub fn of_groups(groups: &[GroupId]) -> ChainKey {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for g in groups {
            h.update(g.as_str().as_bytes());
            h.update(b",");
        }
        ChainKey(hex::encode(&h.finalize()[..8]))
    }

    /// The key of the default policy of functions without a network configuration.
    pub fn default_policy() -> ChainKey {
        ChainKey("default".to_owned())
    }

    /// The egress chain's name.
    pub fn egress(&self) -> String {
        format!("e_{}", self.0)
    }

    /// The ingress chain's name.
    pub fn ingress(&self) -> String {
        format!("i_{}", self.0)
    }

    /// Checks a key received from elsewhere (the zygote receives them from the server):
    /// `default` or 16 hex digits.
    pub fn parse(s: &str) -> Option<ChainKey> {
        (s == "default" || (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())))
            .then(|| ChainKey(s.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The script that (re)creates `block`'s table from nothing: deletes any table a
/// previous holder of the block left, then the sets, maps and hooks every policy uses.
/// With `guard_forwarding` (the host did not forward packets before Warden turned
/// forwarding on), forwarded packets that neither come from nor go to an instance link
/// are dropped, so the host routes nothing else than before.
pub fn base_table(block: BlockId, guard_forwarding: bool) -> String {
    let table = block.table();
    let mine = format!("{}*", block.ifname_prefix());
    let any = format!("{HOST_IFNAME_PREFIX}*");
    let protected: Vec<String> = PROTECTED.iter().map(|(a, p)| format!("{a}/{p}")).collect();
    let mut s = String::new();
    let _ = writeln!(s, "table inet {table}\ndelete table inet {table}");
    let _ = writeln!(s, "table inet {table} {{");
    let _ = writeln!(
        s,
        "  set protected {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {} }} }}",
        protected.join(", ")
    );
    // Flows, counted per 5-tuple while they last (ten minutes after their last packet):
    // what the flow log reads. A full set stops counting, never traffic.
    for set in [FLOWS_SET, REJECTS_SET] {
        let _ = writeln!(
            s,
            "  set {set} {{ type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service; \
             flags dynamic,timeout; timeout 10m; size {FLOW_SET_SIZE}; counter; }}"
        );
    }
    let key = "ip saddr . ip daddr . meta l4proto . th sport . th dport";
    let _ = writeln!(
        s,
        "  chain accepted {{ meta nfproto ipv4 update @{FLOWS_SET} {{ {key} }}; accept; }}"
    );
    let _ = writeln!(
        s,
        "  chain rejected {{ meta nfproto ipv4 update @{REJECTS_SET} {{ {key} }}; {REJECT}; }}"
    );
    let _ = writeln!(s, "  map egress_of {{ type ifname : verdict; }}");
    let _ = writeln!(s, "  map ingress_of {{ type ifname : verdict; }}");
    let _ = writeln!(
        s,
        "  chain from_instance {{ ct state established,related {ACCEPT}; ct state invalid drop; \
         meta nfproto ipv6 {REJECT}; iifname vmap @egress_of; {REFUSE}; }}"
    );
    let _ = writeln!(
        s,
        "  chain to_instance {{ ct state established,related {ACCEPT}; ct state invalid drop; \
         oifname vmap @ingress_of; {REFUSE}; }}"
    );
    let guard = if guard_forwarding {
        format!("iifname != \"{any}\" oifname != \"{any}\" drop;")
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "  chain forward {{ type filter hook forward priority filter - 10; policy accept; \
         iifname \"{mine}\" jump from_instance; oifname \"{mine}\" jump to_instance; {guard} }}"
    );
    let _ = writeln!(
        s,
        "  chain input {{ type filter hook input priority filter - 10; policy accept; \
         iifname \"{mine}\" jump from_instance; }}"
    );
    let _ = writeln!(
        s,
        "  chain output {{ type filter hook output priority filter - 10; policy accept; \
         oifname \"{mine}\" jump to_instance; }}"
    );
    let _ = writeln!(
        s,
        "  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; \
         iifname \"{mine}\" oifname != \"{any}\" masquerade; }}"
    );
    let _ = writeln!(s, "}}");
    s
}

/// Deletes `block`'s table (at shutdown).
pub fn delete_table(block: BlockId) -> String {
    let table = block.table();
    format!("table inet {table}\ndelete table inet {table}\n")
}

/// Replaces a chain's rules with `body` (creating the chain and the group sets the body
/// names first).
pub fn replace_chain(block: BlockId, chain: &str, body: &[String], sets: &[GroupId]) -> String {
    let table = block.table();
    let mut s = String::new();
    for g in sets {
        let _ = writeln!(
            s,
            "add set inet {table} {} {{ type ipv4_addr; }}",
            g.set_name()
        );
    }
    let _ = writeln!(s, "add chain inet {table} {chain}");
    let _ = writeln!(s, "flush chain inet {table} {chain}");
    for statement in body {
        let _ = writeln!(s, "add rule inet {table} {chain} {statement}");
    }
    s
}

/// Binds a new instance link to its policy: its interface to the policy's chains, its
/// address into the sets of its groups.
pub fn bind_link(
    block: BlockId,
    link: &LinkAddresses,
    key: &ChainKey,
    groups: &[GroupId],
) -> String {
    let table = block.table();
    let ifname = &link.host_ifname;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "add element inet {table} egress_of {{ \"{ifname}\" : jump {} }}",
        key.egress()
    );
    let _ = writeln!(
        s,
        "add element inet {table} ingress_of {{ \"{ifname}\" : jump {} }}",
        key.ingress()
    );
    for g in groups {
        let _ = writeln!(
            s,
            "add set inet {table} {} {{ type ipv4_addr; }}",
            g.set_name()
        );
        let _ = writeln!(
            s,
            "add element inet {table} {} {{ {} }}",
            g.set_name(),
            link.instance_addr
        );
    }
    s
}

/// Undoes [`bind_link`] once the link is gone.
pub fn unbind_link(block: BlockId, link: &LinkAddresses, groups: &[GroupId]) -> String {
    let table = block.table();
    let ifname = &link.host_ifname;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "delete element inet {table} egress_of {{ \"{ifname}\" }}"
    );
    let _ = writeln!(
        s,
        "delete element inet {table} ingress_of {{ \"{ifname}\" }}"
    );
    for g in groups {
        let _ = writeln!(
            s,
            "delete element inet {table} {} {{ {} }}",
            g.set_name(),
            link.instance_addr
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_keys_are_hex_and_stable() {
        let a = GroupId::parse("sg-01").unwrap();
        let b = GroupId::parse("sg-02").unwrap();
        let k = ChainKey::of_groups(&[a.clone(), b.clone()]);
        assert_eq!(k, ChainKey::of_groups(&[a.clone(), b]));
        assert_ne!(k, ChainKey::of_groups(&[a]));
        assert_eq!(k.as_str().len(), 16);
        assert_eq!(ChainKey::parse(k.as_str()), Some(k.clone()));
        assert_eq!(k.egress(), format!("e_{}", k.as_str()));
        for bad in ["", "x", "0123456789abcdeg", "default;", "e_default"] {
            assert!(ChainKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_base_table_guards_forwarding_only_when_asked() {
        let t = base_table(BlockId(2), true);
        assert!(t.starts_with("table inet warden_b2\ndelete table inet warden_b2\n"));
        assert!(t.contains("iifname \"wd2n*\" jump from_instance"));
        assert!(t.contains("iifname != \"wd*\" oifname != \"wd*\" drop"));
        assert!(t.contains("169.254.0.0/16"));
        assert!(!base_table(BlockId(2), false).contains("oifname != \"wd*\" drop"));
    }

    #[test]
    fn links_bind_to_their_policy_and_groups() {
        let link = LinkAddresses::of(BlockId(1), 3).unwrap();
        let g = GroupId::parse("sg-0a").unwrap();
        let key = ChainKey::default_policy();
        let bind = bind_link(BlockId(1), &link, &key, std::slice::from_ref(&g));
        assert!(
            bind.contains("add element inet warden_b1 egress_of { \"wd1n3\" : jump e_default }")
        );
        assert!(bind.contains("add element inet warden_b1 g_0a { 198.18.8.14 }"));
        let unbind = unbind_link(BlockId(1), &link, &[g]);
        assert!(unbind.contains("delete element inet warden_b1 g_0a { 198.18.8.14 }"));
    }
}

#[cfg(test)]
mod kernel_tests {
    //! The scripts, checked by the kernel itself (`nft --check`, which changes nothing),
    //! where this test runs as root with `nft` installed.
    use super::*;
    use crate::rules::{egress_chain, ingress_chain, Peer, Protocol, Rule};

    #[test]
    fn the_kernel_accepts_every_script() {
        if crate::probe() != crate::Capability::Enforced {
            // Only `warden doctor` and the end-to-end suite, which need root, cover hosts
            // without nftables; this test checks syntax where it can be checked.
            eprintln!("nft unavailable here: {:?}", crate::probe());
            return;
        }
        let block = BlockId(63);
        let g = GroupId::parse("sg-0abc").unwrap();
        let key = ChainKey::of_groups(std::slice::from_ref(&g));
        let rules = [
            Rule {
                protocol: Protocol::Tcp,
                from_port: 5432,
                to_port: 5432,
                peer: Peer::Cidr("10.0.0.0/8".parse().unwrap()),
            },
            Rule {
                protocol: Protocol::Udp,
                from_port: 53,
                to_port: 60,
                peer: Peer::Cidr("0.0.0.0/0".parse().unwrap()),
            },
            Rule {
                protocol: Protocol::Icmp,
                from_port: 8,
                to_port: 0,
                peer: Peer::Group(g.clone()),
            },
            Rule {
                protocol: Protocol::All,
                from_port: -1,
                to_port: -1,
                peer: Peer::Cidr("203.0.113.0/24".parse().unwrap()),
            },
        ];
        let r: Vec<&Rule> = rules.iter().collect();
        let link = LinkAddresses::of(block, 5).unwrap();
        let script = format!(
            "{}{}{}{}",
            base_table(block, true),
            replace_chain(
                block,
                &key.egress(),
                &egress_chain(&r),
                std::slice::from_ref(&g)
            ),
            replace_chain(block, &key.ingress(), &ingress_chain(&r), &[]),
            bind_link(block, &link, &key, std::slice::from_ref(&g)),
        );
        run("nft", &["--check", "-f", "-"], &script).unwrap();
    }
}

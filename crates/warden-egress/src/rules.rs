//! Security-group rules and their translation to nftables chains.
//!
//! Every value that reaches an nftables script is typed here ([`GroupId`] is checked to be
//! `sg-` and hex, addresses are [`Ipv4Net`], ports are integers): no name a user chose is
//! ever written into a script, so no rule can smuggle in another.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::EgressError;

/// A security group's id, checked to be `sg-` followed by 1 to 32 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(String);

impl GroupId {
    /// Checks `id`.
    pub fn parse(id: &str) -> Result<GroupId, EgressError> {
        let hex = id
            .strip_prefix("sg-")
            .ok_or_else(|| EgressError::BadGroupId(id.to_owned()))?;
        if hex.is_empty()
            || hex.len() > 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(EgressError::BadGroupId(id.to_owned()));
        }
        Ok(GroupId(id.to_owned()))
    }

    /// The id (`sg-...`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nftables set of the addresses of instances in this group.
    pub fn set_name(&self) -> String {
        format!("g_{}", &self.0[3..])
    }
}

/// A rule's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Every protocol (`-1`).
    All,
    /// TCP, with a port range.
    Tcp,
    /// UDP, with a port range.
    Udp,
    /// ICMP, with a type and code (`-1`: any).
    Icmp,
}

/// Where a rule lets traffic go (egress) or come from (ingress).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// An IPv4 range.
    Cidr(Ipv4Net),
    /// The instances of a security group.
    Group(GroupId),
    /// An IPv6 range: instances have no IPv6, so such a rule allows nothing.
    Ipv6,
}

/// One security-group rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The protocol.
    pub protocol: Protocol,
    /// First port (TCP, UDP) or ICMP type; `-1` for any.
    pub from_port: i32,
    /// Last port (TCP, UDP) or ICMP code; `-1` for any.
    pub to_port: i32,
    /// The peer.
    pub peer: Peer,
}

/// A security group as enforcement sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRules {
    /// The group.
    pub id: GroupId,
    /// What its instances may reach.
    pub egress: Vec<Rule>,
    /// What may reach its instances.
    pub ingress: Vec<Rule>,
}

/// Ranges reachable only through a rule that names them (lies entirely inside one):
/// "this network", private, shared (carrier-grade NAT), loopback, link-local (cloud
/// metadata), IETF protocol assignments, Warden's instance links, multicast and reserved.
pub const PROTECTED: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(224, 0, 0, 0), 3),
];

fn protected() -> impl Iterator<Item = Ipv4Net> {
    PROTECTED
        .iter()
        .filter_map(|(a, p)| Ipv4Net::new(*a, *p).ok())
}

/// Whether `net` lies entirely inside one protected range (so a rule for it names that
/// range), or is public space only.
fn names_only_protected_or_public(net: &Ipv4Net) -> bool {
    protected().any(|p| p.contains(net)) || !protected().any(|p| overlaps(&p, net))
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(b) || b.contains(a)
}

/// Which way a chain faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the instance.
    Egress,
    /// To the instance.
    Ingress,
}

/// The nftables statements matching a rule (without the verdict), or `None` for a rule
/// that can match nothing here (IPv6).
fn matcher(rule: &Rule, direction: Direction) -> Option<String> {
    let field = match direction {
        Direction::Egress => "daddr",
        Direction::Ingress => "saddr",
    };
    let mut m = String::new();
    match &rule.peer {
        Peer::Cidr(net) if net.prefix_len() == 0 => {}
        Peer::Cidr(net) => {
            let _ = write!(m, "ip {field} {} ", net.trunc());
        }
        Peer::Group(g) => {
            let _ = write!(m, "ip {field} @{} ", g.set_name());
        }
        Peer::Ipv6 => return None,
    }
    let ports = |m: &mut String, proto: &str| {
        let (from, to) = (rule.from_port, rule.to_port);
        if (0..=65535).contains(&from) && (0..=65535).contains(&to) && from <= to {
            if from == 0 && to == 65535 {
                let _ = write!(m, "meta l4proto {proto} ");
            } else if from == to {
                let _ = write!(m, "{proto} dport {from} ");
            } else {
                let _ = write!(m, "{proto} dport {from}-{to} ");
            }
        } else {
            let _ = write!(m, "meta l4proto {proto} ");
        }
    };
    match rule.protocol {
        Protocol::All => {}
        Protocol::Tcp => ports(&mut m, "tcp"),
        Protocol::Udp => ports(&mut m, "udp"),
        Protocol::Icmp => {
            let _ = write!(m, "meta l4proto icmp ");
            if (0..=255).contains(&rule.from_port) {
                let _ = write!(m, "icmp type {} ", rule.from_port);
                if (0..=255).contains(&rule.to_port) {
                    let _ = write!(m, "icmp code {} ", rule.to_port);
                }
            }
        }
    }
    Some(m)
}

/// The statement that refuses a packet: an ICMP "administratively prohibited" (a TCP
/// connect fails at once with `EHOSTUNREACH`) rather than a silent drop.
pub const REJECT: &str = "reject with icmpx type admin-prohibited";

/// The verdict of a rule that lets a packet through: to the table's `accepted` chain,
/// which counts it in the flow log's set, then accepts it.
pub const ACCEPT: &str = "goto accepted";

/// The verdict of a rule that refuses a packet: to the table's `rejected` chain, which
/// counts it in the rejected flows' set, then rejects it ([`REJECT`]).
pub const REFUSE: &str = "goto rejected";

/// The body of a policy's egress chain: rules naming protected ranges (or public space
/// only) first, then protected ranges and the host's own addresses refused, then the
/// rules spanning both, which therefore reach only public space.
pub fn egress_chain(rules: &[&Rule]) -> Vec<String> {
    let mut naming = Vec::new();
    let mut wide = Vec::new();
    for rule in rules {
        let Some(m) = matcher(rule, Direction::Egress) else {
            continue;
        };
        let statement = format!("{m}{ACCEPT}");
        match &rule.peer {
            Peer::Cidr(net) if !names_only_protected_or_public(net) => wide.push(statement),
            _ => naming.push(statement),
        }
    }
    let mut body = naming;
    body.push(format!("ip daddr @protected {REFUSE}"));
    body.push(format!("fib daddr type local {REFUSE}"));
    body.extend(wide);
    dedup(body)
}

/// The body of a policy's ingress chain: each rule's match, accepted.
pub fn ingress_chain(rules: &[&Rule]) -> Vec<String> {
    dedup(
        rules
            .iter()
            .filter_map(|r| matcher(r, Direction::Ingress))
            .map(|m| format!("{m}{ACCEPT}"))
            .collect(),
    )
}

fn dedup(statements: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    statements
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// The groups a rule set refers to as peers.
pub fn referenced_groups<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Vec<GroupId> {
    let mut groups: Vec<GroupId> = rules
        .into_iter()
        .filter_map(|r| match &r.peer {
            Peer::Group(g) => Some(g.clone()),
            _ => None,
        })
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidr(s: &str) -> Peer {
        Peer::Cidr(s.parse().unwrap())
    }

    fn tcp(from: i32, to: i32, peer: Peer) -> Rule {
        Rule {
            protocol: Protocol::Tcp,
            from_port: from,
            to_port: to,
            peer,
        }
    }

    #[test]
    fn group_ids_are_checked_before_they_reach_a_script() {
        assert_eq!(
            GroupId::parse("sg-0123abcd").unwrap().set_name(),
            "g_0123abcd"
        );
        for bad in [
            "",
            "sg-",
            "sg-XYZ",
            "sg-12 }",
            "vpc-1234",
            "sg-0123;flush ruleset",
            &format!("sg-{}", "a".repeat(33)),
        ] {
            assert!(GroupId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn naming_rules_come_before_the_protected_refusal_and_wide_ones_after() {
        let private = tcp(5432, 5432, cidr("10.203.0.0/24"));
        let metadata = tcp(80, 80, cidr("169.254.169.254/32"));
        let public = tcp(443, 443, cidr("0.0.0.0/0"));
        let web = tcp(8000, 8080, cidr("203.0.113.0/24"));
        let body = egress_chain(&[&public, &private, &metadata, &web]);
        assert_eq!(
            body,
            vec![
                "ip daddr 10.203.0.0/24 tcp dport 5432 goto accepted".to_owned(),
                "ip daddr 169.254.169.254/32 tcp dport 80 goto accepted".to_owned(),
                "ip daddr 203.0.113.0/24 tcp dport 8000-8080 goto accepted".to_owned(),
                format!("ip daddr @protected {REFUSE}"),
                format!("fib daddr type local {REFUSE}"),
                "tcp dport 443 goto accepted".to_owned(),
            ]
        );
    }

    #[test]
    fn a_range_spanning_private_and_public_space_reaches_only_public_space() {
        // 8.0.0.0/4 holds 10.0.0.0/8: wide, so it comes after the refusal.
        let rule = Rule {
            protocol: Protocol::All,
            from_port: -1,
            to_port: -1,
            peer: cidr("0.0.0.0/4"),
        };
        let body = egress_chain(&[&rule]);
        assert_eq!(body.last().unwrap(), "ip daddr 0.0.0.0/4 goto accepted");
    }

    #[test]
    fn protocols_and_ports_translate() {
        let all = Rule {
            protocol: Protocol::All,
            from_port: -1,
            to_port: -1,
            peer: cidr("10.0.0.0/8"),
        };
        let udp_any = Rule {
            protocol: Protocol::Udp,
            from_port: 0,
            to_port: 65535,
            peer: cidr("10.1.0.0/16"),
        };
        let ping = Rule {
            protocol: Protocol::Icmp,
            from_port: 8,
            to_port: -1,
            peer: cidr("10.2.0.0/16"),
        };
        let group = tcp(6379, 6379, Peer::Group(GroupId::parse("sg-00ff").unwrap()));
        let v6 = tcp(1, 2, Peer::Ipv6);
        assert_eq!(
            egress_chain(&[&all, &udp_any, &ping, &group, &v6])[..4],
            [
                "ip daddr 10.0.0.0/8 goto accepted",
                "ip daddr 10.1.0.0/16 meta l4proto udp goto accepted",
                "ip daddr 10.2.0.0/16 meta l4proto icmp icmp type 8 goto accepted",
                "ip daddr @g_00ff tcp dport 6379 goto accepted",
            ]
        );
        assert_eq!(
            ingress_chain(&[&group, &v6]),
            ["ip saddr @g_00ff tcp dport 6379 goto accepted"]
        );
        assert_eq!(
            referenced_groups([&group, &all, &group]),
            vec![GroupId::parse("sg-00ff").unwrap()]
        );
    }

    #[test]
    fn an_empty_policy_refuses_everything() {
        assert_eq!(egress_chain(&[]).len(), 2);
        assert!(ingress_chain(&[]).is_empty());
    }

    proptest! {
        /// Whatever the rule, its statement holds only the vocabulary written here:
        /// nothing from outside can end a statement or start another.
        #[test]
        fn statements_never_carry_script_syntax(
            from in any::<i32>(), to in any::<i32>(), addr in any::<u32>(), len in 0u8..=32,
            proto in 0usize..4,
        ) {
            let protocol = [Protocol::All, Protocol::Tcp, Protocol::Udp, Protocol::Icmp][proto];
            let net = Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap();
            let rule = Rule { protocol, from_port: from, to_port: to, peer: Peer::Cidr(net) };
            for s in egress_chain(&[&rule]).iter().chain(&ingress_chain(&[&rule])) {
                prop_assert!(!s.contains([';', '{', '}', '\n', '"']), "{s}");
            }
        }
    }
}

//! The network model (VPCs, subnets, security groups and their rules) and the parsers and
//! checks of every value that reaches it from outside: CIDR blocks, protocols, ports,
//! resource ids, names, descriptions and tags. A parser never panics, whatever it is
//! given; it answers with the error EC2 answers with.

use std::fmt;

use ipnet::{Ipv4Net, Ipv6Net};
use rand::Rng;

use crate::error::NetworkError;

/// Most VPCs one server holds.
pub const MAX_VPCS: usize = 100;
/// Most subnets one server holds.
pub const MAX_SUBNETS: usize = 1_000;
/// Most security groups one server holds (each VPC's default group included).
pub const MAX_SECURITY_GROUPS: usize = 2_500;
/// Most rules in one direction (ingress or egress) of one security group.
pub const MAX_RULES_PER_DIRECTION: usize = 120;
/// Most tags on one resource.
pub const MAX_TAGS: usize = 50;
/// The shortest prefix of a VPC's or subnet's CIDR block (`/16`).
pub const MIN_PREFIX: u8 = 16;
/// The longest prefix of a VPC's or subnet's CIDR block (`/28`).
pub const MAX_PREFIX: u8 = 28;
/// The name of the group every VPC is made with.
pub const DEFAULT_GROUP_NAME: &str = "default";
/// The description of the group every VPC is made with.
pub const DEFAULT_GROUP_DESCRIPTION: &str = "default VPC security group";

/// A VPC: an IPv4 address range of the account's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    /// `vpc-` and 17 hexadecimal digits.
    pub id: String,
    /// Its IPv4 CIDR block (`/16` to `/28`).
    pub cidr: Ipv4Net,
    /// Whether it is the region's default VPC (never, in Warden).
    pub is_default: bool,
    /// Its tags, in the order they were first set.
    pub tags: Vec<(String, String)>,
}

/// A subnet: a part of a VPC's range, in one availability zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// `subnet-` and 17 hexadecimal digits.
    pub id: String,
    /// The VPC it is part of.
    pub vpc_id: String,
    /// Its IPv4 CIDR block, inside the VPC's and overlapping no other subnet of it.
    pub cidr: Ipv4Net,
    /// Its availability zone (`us-east-1a`).
    pub availability_zone: String,
    /// Its tags, in the order they were first set.
    pub tags: Vec<(String, String)>,
}

/// A security group: the traffic its members may send (egress) and receive (ingress).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    /// `sg-` and 17 hexadecimal digits.
    pub id: String,
    /// The VPC it belongs to.
    pub vpc_id: String,
    /// Its name, unique in its VPC.
    pub name: String,
    /// Its description.
    pub description: String,
    /// What its members may send, in the order the rules were added.
    pub egress: Vec<SgRule>,
    /// What its members may receive, in the order the rules were added.
    pub ingress: Vec<SgRule>,
    /// Its tags, in the order they were first set.
    pub tags: Vec<(String, String)>,
}

impl SecurityGroup {
    /// Whether this is its VPC's `default` group.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_GROUP_NAME
    }

    /// The rules of one direction.
    pub fn rules(&self, direction: Direction) -> &[SgRule] {
        match direction {
            Direction::Egress => &self.egress,
            Direction::Ingress => &self.ingress,
        }
    }

    pub(crate) fn rules_mut(&mut self, direction: Direction) -> &mut Vec<SgRule> {
        match direction {
            Direction::Egress => &mut self.egress,
            Direction::Ingress => &mut self.ingress,
        }
    }
}

/// One rule of a security group: traffic of a protocol and port range, to or from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRule {
    /// `sgr-` and 17 hexadecimal digits.
    pub id: String,
    /// The protocol.
    pub protocol: IpProtocol,
    /// First port (TCP, UDP), or the ICMP type; `-1` for all protocols or all types.
    pub from_port: i32,
    /// Last port (TCP, UDP), or the ICMP code; `-1` for all protocols or all codes.
    pub to_port: i32,
    /// The addresses or group on the other side.
    pub peer: Peer,
    /// Its description.
    pub description: Option<String>,
}

impl SgRule {
    /// Whether this rule allows exactly what `spec` asks for (the description aside, as
    /// EC2 compares rules).
    pub fn matches(&self, spec: &RuleSpec) -> bool {
        self.protocol == spec.protocol
            && self.from_port == spec.from_port
            && self.to_port == spec.to_port
            && self.peer == spec.peer
    }
}

/// The protocol of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpProtocol {
    /// Every protocol (`-1`).
    All,
    /// TCP (`tcp` or `6`).
    Tcp,
    /// UDP (`udp` or `17`).
    Udp,
    /// ICMP (`icmp` or `1`).
    Icmp,
    /// ICMPv6 (`icmpv6` or `58`).
    Icmpv6,
}

impl IpProtocol {
    /// Parses EC2's `IpProtocol`: a name (any case) or an IANA number, `-1` for all.
    /// Protocols Warden cannot enforce (any other number) are refused naming the ones it
    /// can.
    pub fn parse(s: &str) -> Result<IpProtocol, NetworkError> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "-1" | "all" => Ok(IpProtocol::All),
            "tcp" | "6" => Ok(IpProtocol::Tcp),
            "udp" | "17" => Ok(IpProtocol::Udp),
            "icmp" | "1" => Ok(IpProtocol::Icmp),
            "icmpv6" | "58" => Ok(IpProtocol::Icmpv6),
            _ => Err(NetworkError::invalid_value(format!(
                "Invalid value '{}' for IP protocol. Warden supports tcp (6), udp (17), icmp (1), icmpv6 (58) and -1 (all protocols)",
                shown(s)
            ))),
        }
    }

    /// The name EC2 describes the protocol by (`-1`, `tcp`, `udp`, `icmp`, `icmpv6`).
    pub fn as_str(self) -> &'static str {
        match self {
            IpProtocol::All => "-1",
            IpProtocol::Tcp => "tcp",
            IpProtocol::Udp => "udp",
            IpProtocol::Icmp => "icmp",
            IpProtocol::Icmpv6 => "icmpv6",
        }
    }

    /// The IANA protocol number (`None` for all protocols).
    pub fn number(self) -> Option<u8> {
        match self {
            IpProtocol::All => None,
            IpProtocol::Tcp => Some(6),
            IpProtocol::Udp => Some(17),
            IpProtocol::Icmp => Some(1),
            IpProtocol::Icmpv6 => Some(58),
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The other side of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// An IPv4 range.
    V4(Ipv4Net),
    /// An IPv6 range.
    V6(Ipv6Net),
    /// The members of a security group (by id), in the same VPC.
    Group(String),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::V4(n) => write!(f, "{n}"),
            Peer::V6(n) => write!(f, "{n}"),
            Peer::Group(g) => f.write_str(g),
        }
    }
}

/// The direction of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Traffic the group's members receive.
    Ingress,
    /// Traffic the group's members send.
    Egress,
}

impl Direction {
    /// Whether this is egress (`isEgress`).
    pub fn is_egress(self) -> bool {
        self == Direction::Egress
    }
}

/// A rule as asked for, checked and normalised, before it has an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    /// The protocol.
    pub protocol: IpProtocol,
    /// First port or ICMP type (`-1` where it does not apply).
    pub from_port: i32,
    /// Last port or ICMP code (`-1` where it does not apply).
    pub to_port: i32,
    /// The other side.
    pub peer: Peer,
    /// Its description.
    pub description: Option<String>,
}

impl RuleSpec {
    /// Checks and normalises a rule as EC2 does: for all protocols the ports are ignored
    /// (`-1`); for TCP and UDP, `from..=to` within `0..=65535` (neither given, or both
    /// `-1`, is every port); for ICMP, the type (`-1` or `0..=255`) in `from` and the code
    /// in `to` (`-1` for all; with every type, every code).
    pub fn new(
        protocol: IpProtocol,
        from_port: Option<i64>,
        to_port: Option<i64>,
        peer: Peer,
        description: Option<String>,
    ) -> Result<RuleSpec, NetworkError> {
        if let Some(d) = &description {
            check_text("description", d, 255)?;
        }
        let (from_port, to_port) = match protocol {
            IpProtocol::All => (-1, -1),
            IpProtocol::Tcp | IpProtocol::Udp => match (from_port, to_port) {
                (None, None) | (Some(-1), Some(-1)) => (0, 65_535),
                (Some(from), Some(to)) => {
                    let in_range = |p: i64| (0..=65_535).contains(&p);
                    if !in_range(from) || !in_range(to) {
                        return Err(NetworkError::invalid_value(format!(
                            "Invalid {protocol} port range {from}-{to}: ports are 0 to 65535"
                        )));
                    }
                    if from > to {
                        return Err(NetworkError::invalid_value(format!(
                            "Invalid {protocol} port range {from}-{to}: FromPort must not be greater than ToPort"
                        )));
                    }
                    (from as i32, to as i32)
                }
                _ => {
                    return Err(NetworkError::invalid(
                        "MissingParameter",
                        format!("A {protocol} rule needs both FromPort and ToPort, or neither for every port"),
                    ))
                }
            },
            IpProtocol::Icmp | IpProtocol::Icmpv6 => {
                let kind = |p: Option<i64>, what: &str| -> Result<i32, NetworkError> {
                    match p {
                        None => Ok(-1),
                        Some(v) if (-1..=255).contains(&v) => Ok(v as i32),
                        Some(v) => Err(NetworkError::invalid_value(format!(
                            "Invalid {what} {v} for {protocol}: -1 (all) or 0 to 255"
                        ))),
                    }
                };
                let icmp_type = kind(from_port, "ICMP type")?;
                let icmp_code = kind(to_port, "ICMP code")?;
                if icmp_type == -1 && icmp_code != -1 {
                    return Err(NetworkError::invalid_value(format!(
                        "Invalid ICMP code {icmp_code}: with every ICMP type (-1), the code must be -1 too"
                    )));
                }
                (icmp_type, icmp_code)
            }
        };
        Ok(RuleSpec {
            protocol,
            from_port,
            to_port,
            peer,
            description,
        })
    }

    /// The rule as EC2's messages show it: `peer: 0.0.0.0/0, TCP, from port: 22, to port:
    /// 22, ALLOW`.
    pub fn describe(&self) -> String {
        let protocol = match self.protocol {
            IpProtocol::All => "ALL".to_owned(),
            p => p.as_str().to_ascii_uppercase(),
        };
        if self.protocol == IpProtocol::All {
            format!("peer: {}, {protocol}, ALLOW", self.peer)
        } else {
            format!(
                "peer: {}, {protocol}, from port: {}, to port: {}, ALLOW",
                self.peer, self.from_port, self.to_port
            )
        }
    }
}

/// The kinds of resource the network service tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// `vpc-…`.
    Vpc,
    /// `subnet-…`.
    Subnet,
    /// `sg-…`.
    SecurityGroup,
}

impl ResourceKind {
    /// The kind of resource an id names, by its prefix.
    pub fn of(id: &str) -> Option<ResourceKind> {
        if id.starts_with("vpc-") {
            Some(ResourceKind::Vpc)
        } else if id.starts_with("subnet-") {
            Some(ResourceKind::Subnet)
        } else if id.starts_with("sg-") {
            Some(ResourceKind::SecurityGroup)
        } else {
            None
        }
    }

    /// EC2's `ResourceType` (`vpc`, `subnet`, `security-group`), as tags and ARNs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::SecurityGroup => "security-group",
        }
    }

    /// Parses a `ResourceType`.
    pub fn parse(s: &str) -> Option<ResourceKind> {
        [
            ResourceKind::Vpc,
            ResourceKind::Subnet,
            ResourceKind::SecurityGroup,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The prefix of this kind's ids.
    pub fn prefix(self) -> &'static str {
        match self {
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::SecurityGroup => "sg",
        }
    }
}

/// One tag of one resource, as `DescribeTags` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagDescription {
    /// The resource's id.
    pub resource_id: String,
    /// The resource's kind.
    pub resource_kind: ResourceKind,
    /// The tag's key.
    pub key: String,
    /// The tag's value.
    pub value: String,
}

// ---- parsers ----

/// At most this many characters of an outside value go into a message.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Splits `ADDRESS/LENGTH`, the length decimal digits without a sign or leading zero, at
/// most `max`.
fn split_cidr(s: &str, max: u8) -> Option<(&str, u8)> {
    let (address, length) = s.split_once('/')?;
    let canonical = !length.is_empty()
        && length.len() <= 3
        && length.bytes().all(|b| b.is_ascii_digit())
        && (length == "0" || !length.starts_with('0'));
    let length: u8 = length.parse().ok().filter(|_| canonical)?;
    (length <= max).then_some((address, length))
}

/// Parses an IPv4 CIDR block as EC2 accepts one: a dotted quad (no leading zeros), a
/// prefix length, and no host bits set (`10.0.0.1/16` is refused). `None` for anything
/// else.
pub fn parse_ipv4_cidr(s: &str) -> Option<Ipv4Net> {
    if s.len() > 18 {
        return None;
    }
    let (address, length) = split_cidr(s, 32)?;
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    let net = Ipv4Net::new(address, length).ok()?;
    (net.trunc() == net).then_some(net)
}

/// Parses an IPv6 CIDR block: an address, a prefix length, and no host bits set. `None`
/// for anything else.
pub fn parse_ipv6_cidr(s: &str) -> Option<Ipv6Net> {
    if s.len() > 64 {
        return None;
    }
    let (address, length) = split_cidr(s, 128)?;
    let address: std::net::Ipv6Addr = address.parse().ok()?;
    let net = Ipv6Net::new(address, length).ok()?;
    (net.trunc() == net).then_some(net)
}

/// A security-group rule's IPv4 range (`CidrIp`), or EC2's `InvalidParameterValue`.
pub fn rule_ipv4(s: &str) -> Result<Ipv4Net, NetworkError> {
    parse_ipv4_cidr(s.trim()).ok_or_else(|| {
        NetworkError::invalid_value(format!(
            "CIDR block {} is malformed (an IPv4 network such as 10.0.0.0/16, without host bits)",
            shown(s)
        ))
    })
}

/// A security-group rule's IPv6 range (`CidrIpv6`), or EC2's `InvalidParameterValue`.
pub fn rule_ipv6(s: &str) -> Result<Ipv6Net, NetworkError> {
    parse_ipv6_cidr(s.trim()).ok_or_else(|| {
        NetworkError::invalid_value(format!(
            "CIDR block {} is malformed (an IPv6 network such as ::/0, without host bits)",
            shown(s)
        ))
    })
}

/// A VPC's or subnet's CIDR block: IPv4, no host bits, `/16` to `/28`. `range_code` is the
/// error for a size outside that (`InvalidVpc.Range`, `InvalidSubnet.Range`).
pub fn block_cidr(s: &str, range_code: &'static str) -> Result<Ipv4Net, NetworkError> {
    let net = parse_ipv4_cidr(s).ok_or_else(|| {
        NetworkError::invalid_value(format!(
            "Value ({}) for parameter cidrBlock is invalid. This is not a valid CIDR block.",
            shown(s)
        ))
    })?;
    if !(MIN_PREFIX..=MAX_PREFIX).contains(&net.prefix_len()) {
        return Err(NetworkError::invalid(
            range_code,
            format!("The CIDR '{net}' is invalid: the block size must be between /{MIN_PREFIX} and /{MAX_PREFIX}."),
        ));
    }
    Ok(net)
}

// ---- ids ----

/// A new id: `prefix-` and 17 random lowercase hexadecimal digits.
pub(crate) fn new_id(prefix: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::rng();
    let digits: String = (0..17)
        .map(|_| char::from(HEX[rng.random_range(0..16)]))
        .collect();
    format!("{prefix}-{digits}")
}

/// Whether `id` is `prefix-` and 8 or 17 lowercase hexadecimal digits, as EC2's ids are.
pub fn is_well_formed(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Checks a VPC id's form (`InvalidVpcID.Malformed`).
pub fn check_vpc_id(id: &str) -> Result<(), NetworkError> {
    check_id(id, "vpc", "InvalidVpcID.Malformed")
}

/// Checks a subnet id's form (`InvalidSubnetID.Malformed`).
pub fn check_subnet_id(id: &str) -> Result<(), NetworkError> {
    check_id(id, "subnet", "InvalidSubnetID.Malformed")
}

/// Checks a security group id's form (`InvalidGroupId.Malformed`).
pub fn check_group_id(id: &str) -> Result<(), NetworkError> {
    check_id(id, "sg", "InvalidGroupId.Malformed")
}

/// Checks a security group rule id's form (`InvalidSecurityGroupRuleId.Malformed`).
pub fn check_rule_id(id: &str) -> Result<(), NetworkError> {
    check_id(id, "sgr", "InvalidSecurityGroupRuleId.Malformed")
}

fn check_id(id: &str, prefix: &str, code: &'static str) -> Result<(), NetworkError> {
    if is_well_formed(prefix, id) {
        Ok(())
    } else {
        Err(NetworkError::Malformed {
            code,
            message: format!("Invalid id: \"{}\" (expecting \"{prefix}-...\")", shown(id)),
        })
    }
}

// ---- names, descriptions, tags, zones ----

/// The characters EC2 allows in a VPC security group's name and description, and in a
/// rule's description.
fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c)
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), NetworkError> {
    let count = text.chars().count();
    if count > max {
        return Err(NetworkError::invalid_value(format!(
            "The {what} is {count} characters long; at most {max} are allowed"
        )));
    }
    if let Some(bad) = text.chars().find(|c| !allowed_char(*c)) {
        return Err(NetworkError::invalid_value(format!(
            "Invalid {what}: the character {bad:?} is not allowed (letters, digits, spaces and ._-:/()#,@[]+=&;{{}}!$* are)"
        )));
    }
    Ok(())
}

/// Checks a security group's name: 1 to 255 allowed characters, not `sg-…`.
pub fn check_group_name(name: &str) -> Result<(), NetworkError> {
    if name.is_empty() {
        return Err(NetworkError::invalid(
            "MissingParameter",
            "The request must contain the parameter GroupName",
        ));
    }
    check_text("group name", name, 255)?;
    if name.to_ascii_lowercase().starts_with("sg-") {
        return Err(NetworkError::invalid_value(
            "Group names may not be in the format sg-*",
        ));
    }
    Ok(())
}

/// Checks a security group's description: 1 to 255 allowed characters.
pub fn check_group_description(description: &str) -> Result<(), NetworkError> {
    if description.is_empty() {
        return Err(NetworkError::invalid(
            "MissingParameter",
            "The request must contain the parameter GroupDescription",
        ));
    }
    check_text("group description", description, 255)
}

/// Checks one tag: a key of 1 to 127 characters not starting with `aws:`, a value of at
/// most 255, neither holding control characters (which XML cannot carry).
pub fn check_tag(key: &str, value: &str) -> Result<(), NetworkError> {
    let key_len = key.chars().count();
    if key_len == 0 || key_len > 127 {
        return Err(NetworkError::invalid_value(format!(
            "Tag keys are 1 to 127 characters long; '{}' is {key_len}",
            shown(key)
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(NetworkError::invalid_value(
            "Tag keys starting with 'aws:' are reserved for internal use",
        ));
    }
    if key.chars().chain(value.chars()).any(char::is_control) {
        return Err(NetworkError::invalid_value(format!(
            "Tag '{}' holds a control character; tags are printable text",
            shown(key).escape_debug()
        )));
    }
    if value.chars().count() > 255 {
        return Err(NetworkError::invalid_value(format!(
            "The value of tag '{}' is longer than 255 characters",
            shown(key)
        )));
    }
    Ok(())
}

/// Checks a list of tags given together: each one, no key twice, at most [`MAX_TAGS`].
pub fn check_tags(tags: &[(String, String)]) -> Result<(), NetworkError> {
    for (i, (k, v)) in tags.iter().enumerate() {
        check_tag(k, v)?;
        if tags[..i].iter().any(|(other, _)| other == k) {
            return Err(NetworkError::invalid_value(format!(
                "Duplicate tag key '{}' specified",
                shown(k)
            )));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(tag_limit());
    }
    Ok(())
}

pub(crate) fn tag_limit() -> NetworkError {
    NetworkError::LimitExceeded {
        code: "TagLimitExceeded",
        message: format!("A resource has at most {MAX_TAGS} tags"),
    }
}

/// The availability zone of a new subnet: `REGION` and one letter `a` to `f`; `REGION`a
/// when none is given.
pub fn availability_zone(region: &str, given: Option<&str>) -> Result<String, NetworkError> {
    let Some(zone) = given else {
        return Ok(format!("{region}a"));
    };
    let ok = zone
        .strip_prefix(region)
        .is_some_and(|letter| letter.len() == 1 && ("a"..="f").contains(&letter));
    if ok {
        Ok(zone.to_owned())
    } else {
        Err(NetworkError::invalid_value(format!(
            "Value ({}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}",
            shown(zone),
            ["a", "b", "c", "d", "e", "f"]
                .iter()
                .map(|l| format!("{region}{l}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

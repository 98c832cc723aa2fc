//! DNS Firewall's resources, their limits, and the checks every value passes before it is
//! stored: domain names, names, request ids, priorities, VPC ids and tags.

use std::borrow::Cow;
use std::collections::HashSet;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, DnsFirewallError};

/// Most domain lists one server holds.
pub const MAX_DOMAIN_LISTS: usize = 1_000;
/// Most domains all domain lists hold together.
pub const MAX_DOMAINS: usize = 100_000;
/// Most domains one `UpdateFirewallDomains` request names.
pub const MAX_DOMAINS_PER_UPDATE: usize = 1_000;
/// Most rule groups one server holds.
pub const MAX_RULE_GROUPS: usize = 1_000;
/// Most rules in one rule group.
pub const MAX_RULES_PER_GROUP: usize = 100;
/// Most rule groups associated with one VPC.
pub const MAX_ASSOCIATIONS_PER_VPC: usize = 5;
/// Most associations one server holds.
pub const MAX_ASSOCIATIONS: usize = 5_000;
/// Most tags on one resource.
pub const MAX_TAGS: usize = 200;
/// Lowest priority of a rule group association (lower ones are kept for the service).
pub const MIN_ASSOCIATION_PRIORITY: i64 = 101;
/// Highest priority of a rule group association.
pub const MAX_ASSOCIATION_PRIORITY: i64 = 9_900;

/// How a blocked query is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockResponse {
    /// `NXDOMAIN`: the name does not exist.
    #[serde(rename = "NXDOMAIN")]
    NxDomain,
    /// `NODATA`: the name exists but has no record of the type asked.
    #[serde(rename = "NODATA")]
    NoData,
}

impl BlockResponse {
    /// The wire name (`NXDOMAIN`, `NODATA`).
    pub fn as_str(self) -> &'static str {
        match self {
            BlockResponse::NxDomain => "NXDOMAIN",
            BlockResponse::NoData => "NODATA",
        }
    }

    /// Parses a `BlockResponse` member; `OVERRIDE` is refused by name (Warden does not
    /// answer blocked queries with a record of its own).
    pub fn parse(s: &str) -> Result<BlockResponse, DnsFirewallError> {
        match s {
            "NXDOMAIN" => Ok(BlockResponse::NxDomain),
            "NODATA" => Ok(BlockResponse::NoData),
            "OVERRIDE" => Err(invalid(
                "BlockResponse OVERRIDE is not supported by Warden's DNS Firewall; use NXDOMAIN or NODATA",
            )),
            other => Err(enum_error("BlockResponse", other, "NODATA, NXDOMAIN, OVERRIDE")),
        }
    }
}

/// What a rule does with a query whose name its domain list matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// `ALLOW`: stop evaluating and let the query through.
    #[serde(rename = "ALLOW")]
    Allow,
    /// `BLOCK`: stop evaluating and answer as the response says.
    #[serde(rename = "BLOCK")]
    Block(BlockResponse),
    /// `ALERT`: record the match and go on evaluating.
    #[serde(rename = "ALERT")]
    Alert,
}

impl Action {
    /// The wire name (`ALLOW`, `BLOCK`, `ALERT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Block(_) => "BLOCK",
            Action::Alert => "ALERT",
        }
    }

    /// The block response, for a `BLOCK` rule.
    pub fn block_response(self) -> Option<BlockResponse> {
        match self {
            Action::Block(r) => Some(r),
            _ => None,
        }
    }

    /// The action an `Action` member and a `BlockResponse` member describe together:
    /// `BLOCK` needs a response, and the others take none.
    pub fn parse(action: &str, response: Option<&str>) -> Result<Action, DnsFirewallError> {
        let response = response.map(BlockResponse::parse).transpose()?;
        match (action, response) {
            ("BLOCK", Some(r)) => Ok(Action::Block(r)),
            ("BLOCK", None) => Err(invalid(
                "BlockResponse is required when the rule's Action is BLOCK",
            )),
            ("ALLOW" | "ALERT", Some(_)) => Err(invalid(format!(
                "BlockResponse is only used with the Action BLOCK, not {action}"
            ))),
            ("ALLOW", None) => Ok(Action::Allow),
            ("ALERT", None) => Ok(Action::Alert),
            (other, _) => Err(enum_error("Action", other, "ALLOW, BLOCK, ALERT")),
        }
    }
}

/// How a rule treats the names a CNAME or DNAME chain leads to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Redirection {
    /// `INSPECT_REDIRECTION_DOMAIN` (the default): every name of the chain is inspected.
    #[default]
    #[serde(rename = "INSPECT_REDIRECTION_DOMAIN")]
    Inspect,
    /// `TRUST_REDIRECTION_DOMAIN`: only the name asked is inspected.
    #[serde(rename = "TRUST_REDIRECTION_DOMAIN")]
    Trust,
}

impl Redirection {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Redirection::Inspect => "INSPECT_REDIRECTION_DOMAIN",
            Redirection::Trust => "TRUST_REDIRECTION_DOMAIN",
        }
    }

    /// Parses a `FirewallDomainRedirectionAction` member.
    pub fn parse(s: &str) -> Result<Redirection, DnsFirewallError> {
        match s {
            "INSPECT_REDIRECTION_DOMAIN" => Ok(Redirection::Inspect),
            "TRUST_REDIRECTION_DOMAIN" => Ok(Redirection::Trust),
            other => Err(enum_error(
                "FirewallDomainRedirectionAction",
                other,
                "INSPECT_REDIRECTION_DOMAIN, TRUST_REDIRECTION_DOMAIN",
            )),
        }
    }
}

/// What `UpdateFirewallDomains` does with the domains it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainUpdate {
    /// `ADD`: add them to the list.
    Add,
    /// `REMOVE`: take them out of the list (those it does not hold are ignored).
    Remove,
    /// `REPLACE`: make the list exactly these.
    Replace,
}

impl DomainUpdate {
    /// Parses an `Operation` member; `DENY` (for the service's own allow lists only) is
    /// refused by name.
    pub fn parse(s: &str) -> Result<DomainUpdate, DnsFirewallError> {
        match s {
            "ADD" => Ok(DomainUpdate::Add),
            "REMOVE" => Ok(DomainUpdate::Remove),
            "REPLACE" => Ok(DomainUpdate::Replace),
            "DENY" => Err(invalid(
                "Operation DENY applies only to an AutoAllowlist rule's managed domain list, which Warden's DNS Firewall does not have",
            )),
            other => Err(enum_error("Operation", other, "ADD, REMOVE, REPLACE")),
        }
    }
}

fn enum_error(member: &str, value: &str, allowed: &str) -> DnsFirewallError {
    invalid(format!(
        "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [{allowed}]",
        shown(value),
        lower_first(member)
    ))
}

/// `s` cut to 64 characters, for a message.
pub(crate) fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// A firewall domain list (its domains are read with `DnsFirewall::domains`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainList {
    /// `rslvr-fdl-` and 17 hexadecimal digits.
    pub id: String,
    /// Its ARN.
    #[serde(skip)]
    pub arn: String,
    /// Its name.
    pub name: String,
    /// The `CreatorRequestId` that made it.
    pub creator_request_id: String,
    /// How many domains it holds.
    #[serde(skip)]
    pub domain_count: usize,
    /// When it was made (epoch milliseconds).
    pub created_ms: i64,
    /// When it or its domains last changed.
    pub modified_ms: i64,
    /// Its tags, in the order given.
    pub tags: Vec<(String, String)>,
    /// Creation order.
    #[serde(default)]
    pub(crate) seq: u64,
}

/// A firewall rule group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleGroup {
    /// `rslvr-frg-` and 17 hexadecimal digits.
    pub id: String,
    /// Its ARN.
    #[serde(skip)]
    pub arn: String,
    /// Its name.
    pub name: String,
    /// The `CreatorRequestId` that made it.
    pub creator_request_id: String,
    /// How many rules it holds.
    #[serde(skip)]
    pub rule_count: usize,
    /// When it was made (epoch milliseconds).
    pub created_ms: i64,
    /// When it or its rules last changed.
    pub modified_ms: i64,
    /// Its tags, in the order given.
    pub tags: Vec<(String, String)>,
    /// Creation order.
    #[serde(default)]
    pub(crate) seq: u64,
}

/// A rule of a rule group, named by its group and its domain list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The rule group that holds it.
    pub group_id: String,
    /// The domain list it matches queries against.
    pub domain_list_id: String,
    /// Its name.
    pub name: String,
    /// Its place among the group's rules (lowest first); unique in the group.
    pub priority: i64,
    /// What it does with a query it matches.
    pub action: Action,
    /// How it treats the names a CNAME or DNAME chain leads to.
    pub redirection: Redirection,
    /// The `CreatorRequestId` that made it.
    pub creator_request_id: String,
    /// When it was made (epoch milliseconds).
    pub created_ms: i64,
    /// When it last changed.
    pub modified_ms: i64,
}

/// A rule group's association with a VPC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    /// `rslvr-frgassoc-` and 17 hexadecimal digits.
    pub id: String,
    /// Its ARN.
    #[serde(skip)]
    pub arn: String,
    /// The rule group associated.
    pub group_id: String,
    /// The VPC whose queries the group filters.
    pub vpc_id: String,
    /// Its name.
    pub name: String,
    /// Its place among the VPC's associations (lowest first); unique in the VPC.
    pub priority: i64,
    /// `MutationProtection` `ENABLED`: it may not be changed (but for turning the
    /// protection off) or removed.
    pub mutation_protection: bool,
    /// The `CreatorRequestId` that made it.
    pub creator_request_id: String,
    /// When it was made (epoch milliseconds).
    pub created_ms: i64,
    /// When it last changed.
    pub modified_ms: i64,
    /// Its tags, in the order given.
    pub tags: Vec<(String, String)>,
    /// Creation order.
    #[serde(default)]
    pub(crate) seq: u64,
}

/// A new id: `prefix-` and 17 lowercase hexadecimal digits.
pub(crate) fn new_id(prefix: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::rng();
    let digits: String = (0..17)
        .map(|_| char::from(HEX[rng.random_range(0..16)]))
        .collect();
    format!("{prefix}-{digits}")
}

// ---- checks ----

/// Checks one domain of a domain list and returns its stored form: lowercase, without a
/// trailing dot. A domain is a name of labels of 1 to 63 letters, digits and hyphens
/// (at most 253 characters without the trailing dot), optionally preceded by `*.` (any
/// name below it, not the name itself); `*` alone matches every name.
pub fn check_domain(domain: &str) -> Result<String, DnsFirewallError> {
    let refuse = |why: &str| {
        invalid(format!(
            "Invalid domain `{}`: {why}",
            shown(domain).escape_default()
        ))
    };
    if domain.is_empty() || domain.len() > 255 {
        return Err(refuse("a domain is 1 to 255 characters long"));
    }
    if !domain.is_ascii() {
        return Err(refuse(
            "only letters, digits, hyphens and dots are allowed (write internationalized names in their xn-- form)",
        ));
    }
    let lower = domain.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('.').unwrap_or(&lower);
    if trimmed == "*" {
        return Ok("*".to_owned());
    }
    let name = match trimmed.strip_prefix("*.") {
        Some(rest) => rest,
        None => trimmed,
    };
    if name.contains('*') {
        return Err(refuse(
            "`*` may only stand first, as `*.` before a name or alone",
        ));
    }
    check_host_name(name).map_err(refuse)?;
    Ok(trimmed.to_owned())
}

/// Checks a name of dot-separated labels (lowercase, without the trailing dot).
fn check_host_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > 253 {
        return Err("a name is at most 253 characters long");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("a name has no empty labels");
        }
        if label.len() > 63 {
            return Err("a label is at most 63 characters long");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("only letters, digits, hyphens and dots are allowed");
        }
    }
    Ok(())
}

/// Checks a `Name` member: 1 to 64 letters, digits, hyphens, underscores, apostrophes and
/// spaces, not only digits.
pub fn check_name(name: &str) -> Result<(), DnsFirewallError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_' ".contains(&b))
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "1 validation error detected: Value '{}' at 'name' failed to satisfy constraint: Member must be 1 to 64 letters, digits, hyphens, underscores, apostrophes or spaces, and not only digits",
            shown(name)
        )))
    }
}

/// Checks a `CreatorRequestId` member: 1 to 255 characters.
pub fn check_creator_request_id(id: &str) -> Result<(), DnsFirewallError> {
    if id.is_empty() || id.chars().count() > 255 {
        return Err(invalid(
            "1 validation error detected: Value at 'creatorRequestId' failed to satisfy constraint: Member must have length between 1 and 255",
        ));
    }
    Ok(())
}

/// Checks a VPC id's form: `vpc-` and 8 or 17 lowercase hexadecimal digits.
pub fn check_vpc_id(id: &str) -> Result<(), DnsFirewallError> {
    let ok = id.strip_prefix("vpc-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid VpcId `{}`: a VPC id is `vpc-` and 8 or 17 lowercase hexadecimal digits",
            shown(id).escape_default()
        )))
    }
}

/// Checks a rule's priority: 0 or more.
pub fn check_rule_priority(priority: i64) -> Result<(), DnsFirewallError> {
    if (0..=i64::from(i32::MAX)).contains(&priority) {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid Priority {priority}: a rule's priority is between 0 and {}",
            i32::MAX
        )))
    }
}

/// Checks an association's priority: [`MIN_ASSOCIATION_PRIORITY`] to
/// [`MAX_ASSOCIATION_PRIORITY`].
pub fn check_association_priority(priority: i64) -> Result<(), DnsFirewallError> {
    if (MIN_ASSOCIATION_PRIORITY..=MAX_ASSOCIATION_PRIORITY).contains(&priority) {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid Priority {priority}: the priority of a rule group association is between {MIN_ASSOCIATION_PRIORITY} and {MAX_ASSOCIATION_PRIORITY}"
        )))
    }
}

/// Checks a resource's tags: at most [`MAX_TAGS`], keys of 1 to 128 characters not
/// starting with `aws:` and each given once, values of at most 256.
pub fn check_tags(tags: &[(String, String)]) -> Result<(), DnsFirewallError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(format!("A resource has at most {MAX_TAGS} tags")));
    }
    let mut seen = HashSet::new();
    for (key, value) in tags {
        let key_len = key.chars().count();
        if key_len == 0 || key_len > 128 || key.starts_with("aws:") {
            return Err(invalid(format!(
                "Invalid tag key `{}`: a key is 1 to 128 characters and does not start with aws:",
                shown(key)
            )));
        }
        if value.chars().count() > 256 {
            return Err(invalid(format!(
                "Invalid value of the tag `{}`: a value is at most 256 characters",
                shown(key)
            )));
        }
        if !seen.insert(key.as_str()) {
            return Err(invalid(format!(
                "The tag key `{}` is given more than once",
                shown(key)
            )));
        }
    }
    Ok(())
}

// ---- matching ----

/// The domains of one list, kept for matching: exact names, the names whose subdomains
/// match (`*.NAME` kept as `NAME`), and whether `*` is in the list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DomainSet {
    exact: HashSet<Box<str>>,
    wild: HashSet<Box<str>>,
    any: bool,
}

impl DomainSet {
    /// Adds a domain in its stored form; whether it was new.
    pub(crate) fn insert(&mut self, domain: &str) -> bool {
        if domain == "*" {
            return !std::mem::replace(&mut self.any, true);
        }
        match domain.strip_prefix("*.") {
            Some(name) => self.wild.insert(name.into()),
            None => self.exact.insert(domain.into()),
        }
    }

    /// Removes a domain in its stored form; whether it was there.
    pub(crate) fn remove(&mut self, domain: &str) -> bool {
        if domain == "*" {
            return std::mem::replace(&mut self.any, false);
        }
        match domain.strip_prefix("*.") {
            Some(name) => self.wild.remove(name),
            None => self.exact.remove(domain),
        }
    }

    /// How many domains it holds.
    pub(crate) fn len(&self) -> usize {
        self.exact.len() + self.wild.len() + usize::from(self.any)
    }

    /// Every domain in its stored form, sorted.
    pub(crate) fn sorted(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.len());
        if self.any {
            out.push("*".to_owned());
        }
        out.extend(self.exact.iter().map(|d| d.to_string()));
        out.extend(self.wild.iter().map(|d| format!("*.{d}")));
        out.sort_unstable();
        out
    }

    /// Whether `name` (lowercase, without the trailing dot) is in the list: named
    /// exactly, below a `*.` entry, or by `*`.
    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.any || self.exact.contains(name) {
            return true;
        }
        if self.wild.is_empty() {
            return false;
        }
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if self.wild.contains(parent) {
                return true;
            }
            rest = parent;
        }
        false
    }
}

/// A query name as matching compares it: without one trailing dot, in lowercase (borrowed
/// when it already is).
pub(crate) fn query_name(qname: &str) -> Cow<'_, str> {
    let name = qname.strip_suffix('.').unwrap_or(qname);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

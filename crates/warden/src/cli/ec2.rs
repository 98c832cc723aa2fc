//! `warden network vpc|subnet|sg ...`: VPCs, subnets and security groups through Warden's
//! EC2 query API (the API `aws ec2` uses), in fewer words, with short tables.
//!
//! Requests are EC2's query dialect: `POST /`, form-encoded `Action=...&Version=2016-11-15`,
//! signed for the `ec2` service. Answers are XML, read with `quick-xml` into a small tree
//! ([`Element`]); `--json` prints that tree as JSON (lists as arrays, values as EC2 wrote
//! them, as text). Errors are EC2's `<Response><Errors><Error>` document and print as one
//! line ending with EC2's error code.
//!
//! Text the server returns (names, descriptions, tags) is shown with control and
//! bidirectional-override characters escaped, so it cannot act on the operator's terminal.

use std::fmt::Write as _;

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use http::Method;
use quick_xml::events::Event;
use serde_json::{Map, Value};

use super::client::{ApiError, Client};
use super::netlog::escape;

/// The EC2 API version the requests carry.
const VERSION: &str = "2016-11-15";
/// Deepest XML nesting accepted in an answer (EC2's go about six levels deep).
const MAX_DEPTH: usize = 64;
/// Most pages of one listing followed (each page's token must be new).
const MAX_PAGES: usize = 1_000;

// ---- commands ----

/// How a command prints its result.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Format {
    /// Print the API's answer as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `warden network vpc ...`
#[derive(Debug, Subcommand)]
pub enum VpcCommand {
    /// Create a VPC and print its id
    Create(VpcCreateArgs),
    /// List VPCs: id, CIDR, whether default, tags
    List(Format),
    /// Delete a VPC (its subnets and groups other than `default` must be deleted first)
    Delete(IdArgs),
}

/// `warden network vpc create`.
#[derive(Debug, Args)]
pub struct VpcCreateArgs {
    /// The VPC's IPv4 range, e.g. 10.0.0.0/16
    #[arg(long, value_name = "CIDR")]
    pub cidr: String,
    /// A tag (repeatable)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Output format
    #[command(flatten)]
    pub format: Format,
}

/// `warden network subnet ...`
#[derive(Debug, Subcommand)]
pub enum SubnetCommand {
    /// Create a subnet in a VPC and print its id
    Create(SubnetCreateArgs),
    /// List subnets: id, VPC, CIDR, availability zone, tags
    List(ListArgs),
    /// Delete a subnet
    Delete(IdArgs),
}

/// `warden network subnet create`.
#[derive(Debug, Args)]
pub struct SubnetCreateArgs {
    /// The VPC the subnet belongs to
    #[arg(long, value_name = "VPC_ID")]
    pub vpc: String,
    /// The subnet's IPv4 range, inside the VPC's, e.g. 10.0.1.0/24
    #[arg(long, value_name = "CIDR")]
    pub cidr: String,
    /// Its availability zone, e.g. us-east-1a (the server chooses when not given)
    #[arg(long, value_name = "ZONE")]
    pub az: Option<String>,
    /// A tag (repeatable)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Output format
    #[command(flatten)]
    pub format: Format,
}

/// `warden network sg ...`
#[derive(Debug, Subcommand)]
pub enum SgCommand {
    /// Create a security group in a VPC and print its id
    Create(SgCreateArgs),
    /// List security groups: id, VPC, name, rule counts, description
    List(ListArgs),
    /// Show a group's rules, one per line: direction, protocol, ports, peer, rule id
    Show(IdArgs),
    /// Delete a security group
    Delete(IdArgs),
    /// Add a rule to a group and print its id
    Allow(AllowArgs),
    /// Remove one rule of a group, by its id
    Revoke(RevokeArgs),
}

/// `warden network sg create`.
#[derive(Debug, Args)]
pub struct SgCreateArgs {
    /// The VPC the group belongs to
    #[arg(long, value_name = "VPC_ID")]
    pub vpc: String,
    /// The group's name, unique in its VPC
    #[arg(long)]
    pub name: String,
    /// Its description (the name when not given)
    #[arg(long)]
    pub description: Option<String>,
    /// Revoke the allow-all egress rule a new group starts with, so it allows nothing
    #[arg(long)]
    pub deny_all_egress: bool,
    /// A tag (repeatable)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Output format
    #[command(flatten)]
    pub format: Format,
}

/// A listing, optionally of one VPC's resources.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only those of this VPC
    #[arg(long, value_name = "VPC_ID")]
    pub vpc: Option<String>,
    /// Output format
    #[command(flatten)]
    pub format: Format,
}

/// One resource, by id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The resource's id
    pub id: String,
    /// Output format
    #[command(flatten)]
    pub format: Format,
}

/// A rule's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// TCP, some or all ports
    Tcp,
    /// UDP, some or all ports
    Udp,
    /// ICMP, every type
    Icmp,
    /// Every protocol and port
    All,
}

impl Protocol {
    /// EC2's `IpProtocol` value.
    fn wire(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::All => "-1",
        }
    }
}

/// `warden network sg allow`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("direction").required(true).args(["egress", "ingress"])))]
#[command(group(ArgGroup::new("peer").required(true).args(["cidr", "group"])))]
pub struct AllowArgs {
    /// The group the rule is added to
    #[arg(value_name = "SG_ID")]
    pub id: String,
    /// A rule for traffic the group's members send
    #[arg(long)]
    pub egress: bool,
    /// A rule for traffic the group's members receive
    #[arg(long)]
    pub ingress: bool,
    /// The protocol the rule allows
    #[arg(long, value_enum)]
    pub protocol: Protocol,
    /// One port (tcp and udp; without --port or --ports, every port)
    #[arg(long, conflicts_with = "ports")]
    pub port: Option<u16>,
    /// A range of ports, FROM-TO (tcp and udp)
    #[arg(long, value_name = "FROM-TO", value_parser = parse_ports)]
    pub ports: Option<(u16, u16)>,
    /// The other side: an address range, e.g. 10.0.0.0/24
    #[arg(long, value_name = "CIDR")]
    pub cidr: Option<String>,
    /// The other side: the members of a group of the same VPC
    #[arg(long, value_name = "SG_ID")]
    pub group: Option<String>,
    /// The rule's description
    #[arg(long)]
    pub description: Option<String>,
    /// Output format
    #[command(flatten)]
    pub format: Format,
}

/// `warden network sg revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The group the rule belongs to
    #[arg(value_name = "SG_ID")]
    pub id: String,
    /// The rule's id (`sg show` lists them)
    #[arg(long, value_name = "SGR_ID")]
    pub rule: String,
    /// Output format
    #[command(flatten)]
    pub format: Format,
}

/// Parses `KEY=VALUE` for `--tag` (the value may be empty and hold `=`; EC2 checks the rest).
fn parse_tag(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{s}` has an empty key before `=`"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Parses `FROM-TO` for `--ports`.
fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (from, to) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}` is not FROM-TO (e.g. 8000-8080)"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port (0 to 65535)"))
    };
    let (from, to) = (port(from)?, port(to)?);
    if from > to {
        return Err(format!("`{s}`: the first port is greater than the last"));
    }
    Ok((from, to))
}

// ---- running them ----

/// A form parameter.
type Param = (String, String);

fn param(key: impl Into<String>, value: impl Into<String>) -> Param {
    (key.into(), value.into())
}

/// What a command prints: the answer (for `--json`) and the lines of its table.
struct Shown {
    answer: Element,
    lines: Vec<String>,
    /// Said on stderr when there is nothing to list.
    empty: Option<&'static str>,
}

impl Shown {
    fn print(self, format: Format) {
        if format.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.answer.to_json())
                    .unwrap_or_else(|_| "null".to_owned())
            );
            return;
        }
        if self.lines.is_empty() {
            if let Some(note) = self.empty {
                eprintln!("{note}");
            }
        }
        for line in self.lines {
            println!("{line}");
        }
    }
}

/// Runs one `warden network vpc` command.
pub fn run_vpc(client: &Client, cmd: &VpcCommand) -> anyhow::Result<()> {
    let (shown, format) = match cmd {
        VpcCommand::Create(a) => {
            let mut params = vec![param("CidrBlock", &a.cidr)];
            params.extend(tag_specification("vpc", &a.tags));
            let answer = call(client, "CreateVpc", &params)?;
            let lines = vec![escape(named(&answer, &["vpc", "vpcId"])?)];
            (one(answer, lines), a.format)
        }
        VpcCommand::List(format) => {
            let answer = describe(client, "DescribeVpcs", Vec::new(), "vpcSet")?;
            let lines = vpc_table(&answer);
            (
                Shown {
                    answer,
                    lines,
                    empty: Some("no VPCs"),
                },
                *format,
            )
        }
        VpcCommand::Delete(a) => {
            let answer = call(client, "DeleteVpc", &[param("VpcId", &a.id)])?;
            (
                one(answer, vec![format!("deleted {}", escape(&a.id))]),
                a.format,
            )
        }
    };
    shown.print(format);
    Ok(())
}

/// Runs one `warden network subnet` command.
pub fn run_subnet(client: &Client, cmd: &SubnetCommand) -> anyhow::Result<()> {
    let (shown, format) = match cmd {
        SubnetCommand::Create(a) => {
            let mut params = vec![param("VpcId", &a.vpc), param("CidrBlock", &a.cidr)];
            if let Some(az) = &a.az {
                params.push(param("AvailabilityZone", az));
            }
            params.extend(tag_specification("subnet", &a.tags));
            let answer = call(client, "CreateSubnet", &params)?;
            let lines = vec![escape(named(&answer, &["subnet", "subnetId"])?)];
            (one(answer, lines), a.format)
        }
        SubnetCommand::List(a) => {
            let answer = describe(client, "DescribeSubnets", vpc_filter(&a.vpc), "subnetSet")?;
            let lines = subnet_table(&answer);
            (
                Shown {
                    answer,
                    lines,
                    empty: Some("no subnets"),
                },
                a.format,
            )
        }
        SubnetCommand::Delete(a) => {
            let answer = call(client, "DeleteSubnet", &[param("SubnetId", &a.id)])?;
            (
                one(answer, vec![format!("deleted {}", escape(&a.id))]),
                a.format,
            )
        }
    };
    shown.print(format);
    Ok(())
}

/// Runs one `warden network sg` command.
pub fn run_sg(client: &Client, cmd: &SgCommand) -> anyhow::Result<()> {
    let (shown, format) = match cmd {
        SgCommand::Create(a) => (create_group(client, a)?, a.format),
        SgCommand::List(a) => {
            let answer = describe(
                client,
                "DescribeSecurityGroups",
                vpc_filter(&a.vpc),
                "securityGroupInfo",
            )?;
            let lines = group_table(&answer);
            (
                Shown {
                    answer,
                    lines,
                    empty: Some("no security groups"),
                },
                a.format,
            )
        }
        SgCommand::Show(a) => {
            // Names the group first, so that an unknown one is an error rather than an
            // empty list of rules.
            call(
                client,
                "DescribeSecurityGroups",
                &[param("GroupId.1", &a.id)],
            )?;
            let answer = describe(
                client,
                "DescribeSecurityGroupRules",
                vec![
                    param("Filter.1.Name", "group-id"),
                    param("Filter.1.Value.1", &a.id),
                ],
                "securityGroupRuleSet",
            )?;
            let lines = rule_table(&answer);
            (
                Shown {
                    answer,
                    lines,
                    empty: Some("no rules: the group allows no traffic either way"),
                },
                a.format,
            )
        }
        SgCommand::Delete(a) => {
            let answer = call(client, "DeleteSecurityGroup", &[param("GroupId", &a.id)])?;
            (
                one(answer, vec![format!("deleted {}", escape(&a.id))]),
                a.format,
            )
        }
        SgCommand::Allow(a) => {
            let (action, params) = allow_request(a)?;
            let answer = call(client, action, &params)?;
            let lines = answer
                .items("securityGroupRuleSet")
                .filter_map(|r| r.get("securityGroupRuleId"))
                .map(escape)
                .collect();
            (one(answer, lines), a.format)
        }
        SgCommand::Revoke(a) => (revoke_rule(client, a)?, a.format),
    };
    shown.print(format);
    Ok(())
}

/// The text at `path` in an answer, which must be there and not empty.
fn named<'a>(answer: &'a Element, path: &[&str]) -> anyhow::Result<&'a str> {
    answer
        .get_path(path)
        .filter(|t| !t.is_empty())
        .with_context(|| {
            format!(
                "the server's {} has no {}",
                escape(&answer.name),
                path.join("/")
            )
        })
}

fn one(answer: Element, lines: Vec<String>) -> Shown {
    Shown {
        answer,
        lines,
        empty: None,
    }
}

/// `TagSpecification.1` for a new resource of `kind`, when there are tags.
fn tag_specification(kind: &str, tags: &[(String, String)]) -> Vec<Param> {
    if tags.is_empty() {
        return Vec::new();
    }
    let mut params = vec![param("TagSpecification.1.ResourceType", kind)];
    for (i, (key, value)) in tags.iter().enumerate() {
        params.push(param(format!("TagSpecification.1.Tag.{}.Key", i + 1), key));
        params.push(param(
            format!("TagSpecification.1.Tag.{}.Value", i + 1),
            value,
        ));
    }
    params
}

fn vpc_filter(vpc: &Option<String>) -> Vec<Param> {
    match vpc {
        Some(id) => vec![
            param("Filter.1.Name", "vpc-id"),
            param("Filter.1.Value.1", id),
        ],
        None => Vec::new(),
    }
}

/// `sg create`, and with `--deny-all-egress`, the revocation of the egress rule every new
/// group starts with; should that fail, the group is deleted again rather than left open.
fn create_group(client: &Client, a: &SgCreateArgs) -> anyhow::Result<Shown> {
    let mut params = vec![
        param("VpcId", &a.vpc),
        param("GroupName", &a.name),
        param(
            "GroupDescription",
            a.description.as_deref().unwrap_or(&a.name),
        ),
    ];
    params.extend(tag_specification("security-group", &a.tags));
    let answer = call(client, "CreateSecurityGroup", &params)?;
    let id = named(&answer, &["groupId"])?.to_owned();
    if a.deny_all_egress {
        let revoked = call(
            client,
            "RevokeSecurityGroupEgress",
            &[
                param("GroupId", &id),
                param("IpPermissions.1.IpProtocol", "-1"),
                param("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
            ],
        );
        if let Err(e) = revoked {
            let shown = escape(&id);
            return Err(
                match call(client, "DeleteSecurityGroup", &[param("GroupId", &id)]) {
                    Ok(_) => e.context(format!(
                        "could not revoke the allow-all egress rule of the new group {shown}, so it was deleted again"
                    )),
                    Err(d) => e.context(format!(
                        "could not revoke the allow-all egress rule of the new group {shown}, and deleting it failed too ({d:#}): it still allows all egress"
                    )),
                },
            );
        }
    }
    Ok(one(answer, vec![escape(&id)]))
}

/// The action and form of `sg allow`; refuses combinations EC2 would read otherwise than
/// meant.
fn allow_request(a: &AllowArgs) -> anyhow::Result<(&'static str, Vec<Param>)> {
    let ports = match (a.port, a.ports) {
        (Some(p), _) => Some((p, p)),
        (None, range) => range,
    };
    if ports.is_some() {
        match a.protocol {
            Protocol::All => anyhow::bail!(
                "--port and --ports do not go with --protocol all, which allows every port; use tcp or udp"
            ),
            Protocol::Icmp => {
                anyhow::bail!("--port and --ports do not go with --protocol icmp, which has no ports")
            }
            Protocol::Tcp | Protocol::Udp => {}
        }
    }
    let action = if a.egress {
        "AuthorizeSecurityGroupEgress"
    } else {
        "AuthorizeSecurityGroupIngress"
    };
    let mut params = vec![
        param("GroupId", &a.id),
        param("IpPermissions.1.IpProtocol", a.protocol.wire()),
    ];
    if let Some((from, to)) = ports {
        params.push(param("IpPermissions.1.FromPort", from.to_string()));
        params.push(param("IpPermissions.1.ToPort", to.to_string()));
    }
    let prefix = match (&a.cidr, &a.group) {
        (Some(cidr), None) if cidr.contains(':') => {
            params.push(param("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", cidr));
            "IpPermissions.1.Ipv6Ranges.1"
        }
        (Some(cidr), None) => {
            params.push(param("IpPermissions.1.IpRanges.1.CidrIp", cidr));
            "IpPermissions.1.IpRanges.1"
        }
        (None, Some(group)) => {
            params.push(param("IpPermissions.1.Groups.1.GroupId", group));
            "IpPermissions.1.Groups.1"
        }
        _ => anyhow::bail!("give exactly one of --cidr and --group"),
    };
    if let Some(d) = &a.description {
        params.push(param(format!("{prefix}.Description"), d));
    }
    Ok((action, params))
}

/// `sg revoke`: the rule's direction is looked up, and its group checked, first.
fn revoke_rule(client: &Client, a: &RevokeArgs) -> anyhow::Result<Shown> {
    let found = call(
        client,
        "DescribeSecurityGroupRules",
        &[param("SecurityGroupRuleId.1", &a.rule)],
    )?;
    let rule = found
        .items("securityGroupRuleSet")
        .next()
        .map(Rule::from_item)
        .with_context(|| format!("the server did not describe rule {}", escape(&a.rule)))?;
    if rule.group != a.id {
        anyhow::bail!(
            "rule {} belongs to {}, not {}",
            escape(&a.rule),
            escape(&rule.group),
            escape(&a.id)
        );
    }
    let action = if rule.egress {
        "RevokeSecurityGroupEgress"
    } else {
        "RevokeSecurityGroupIngress"
    };
    let answer = call(
        client,
        action,
        &[
            param("GroupId", &a.id),
            param("SecurityGroupRuleId.1", &a.rule),
        ],
    )?;
    let line = format!("revoked {}", rule.cells().join(" "));
    Ok(one(answer, vec![line]))
}

/// Sends one EC2 request and returns its answer's root element (`{Action}Response`), or
/// the error EC2's document names.
fn call(client: &Client, action: &str, params: &[Param]) -> anyhow::Result<Element> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", action);
    form.append_pair("Version", VERSION);
    for (k, v) in params {
        form.append_pair(k, v);
    }
    let reply = client.send_for(
        "ec2",
        Method::POST,
        "/",
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        Some(form.finish().into_bytes()),
    )?;
    if !(200..300).contains(&reply.status) {
        return Err(error_of(reply.status, &reply.body)
            .unwrap_or_else(|| ApiError::from_reply(&reply))
            .into());
    }
    parse(&reply.body)
        .map_err(|e| anyhow::anyhow!("the server's answer to {action} is not XML: {e}"))
}

/// The error in EC2's error document (`<Response><Errors><Error><Code>...`).
fn error_of(status: u16, body: &[u8]) -> Option<ApiError> {
    let doc = parse(body).ok()?;
    let error = doc.get_elem_path(&["Errors", "Error"])?;
    Some(ApiError {
        status,
        code: escape(error.get("Code").filter(|c| !c.is_empty())?),
        message: escape(error.get("Message").unwrap_or_default()),
        subject: None,
    })
}

/// A `Describe*` call, following `nextToken`: the first page's answer with the items of
/// every page in its `list`.
fn describe(
    client: &Client,
    action: &str,
    params: Vec<Param>,
    list: &str,
) -> anyhow::Result<Element> {
    let mut first = call(client, action, &params)?;
    let mut seen = Vec::new();
    while let Some(token) = first.take_child("nextToken").map(|t| t.text) {
        if token.is_empty() || seen.contains(&token) || seen.len() >= MAX_PAGES {
            break;
        }
        let mut next = params.clone();
        next.push(param("NextToken", &token));
        seen.push(token);
        let mut page = call(client, action, &next)?;
        let items = page
            .take_child(list)
            .map(|l| l.children)
            .unwrap_or_default();
        if let Some(l) = first.child_mut(list) {
            l.children.extend(items);
        }
        if let Some(t) = page.take_child("nextToken") {
            first.children.push(t);
        }
    }
    Ok(first)
}

// ---- the XML tree ----

/// One element of an answer: its local name, its text (for a leaf) and its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// The element's name without a namespace prefix.
    pub name: String,
    /// Its text, entities decoded.
    pub text: String,
    /// Its child elements, in order.
    pub children: Vec<Element>,
}

/// Elements that are lists (of `item`s) even when empty, besides those named `...Set`.
const LISTS: &[&str] = &[
    "securityGroupInfo",
    "ipPermissions",
    "ipPermissionsEgress",
    "groups",
    "ipRanges",
    "ipv6Ranges",
    "prefixListIds",
    "unsuccessful",
    "Errors",
];

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    fn take_child(&mut self, name: &str) -> Option<Element> {
        let i = self.children.iter().position(|c| c.name == name)?;
        Some(self.children.remove(i))
    }

    /// The text of the first child named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The element at `path` below this one.
    fn get_elem_path(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }

    /// The text of the element at `path` below this one.
    pub fn get_path(&self, path: &[&str]) -> Option<&str> {
        self.get_elem_path(path).map(|e| e.text.as_str())
    }

    /// The `item`s of the child list `name` (none when it is absent).
    pub fn items<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Element> + 'a {
        self.child(name)
            .into_iter()
            .flat_map(|l| l.children.iter())
            .filter(|c| c.name == "item")
    }

    /// The element as JSON: a list of `item`s is an array, other elements with children
    /// objects (a name given twice becomes an array), leaves their text.
    pub fn to_json(&self) -> Value {
        let is_list = LISTS.contains(&self.name.as_str()) || self.name.ends_with("Set");
        if self.children.is_empty() {
            return if is_list && self.text.trim().is_empty() {
                Value::Array(Vec::new())
            } else {
                Value::String(self.text.clone())
            };
        }
        if self.children.iter().all(|c| c.name == "item") {
            return Value::Array(self.children.iter().map(Element::to_json).collect());
        }
        let mut map = Map::new();
        for c in &self.children {
            let value = c.to_json();
            match map.get_mut(&c.name) {
                Some(Value::Array(a)) if !LISTS.contains(&c.name.as_str()) => a.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
                None => {
                    map.insert(c.name.clone(), value);
                }
            }
        }
        Value::Object(map)
    }
}

/// Reads an XML document into its root [`Element`]. Namespace prefixes are dropped,
/// comments, processing instructions and the declaration skipped; the text of an
/// element with children (the whitespace between them) is dropped too.
pub fn parse(xml: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(xml).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("{e} (at byte {})", reader.error_position()))?;
        match event {
            Event::Start(start) => open(&mut stack, root.is_some(), start.local_name().as_ref())?,
            Event::Empty(start) => {
                open(&mut stack, root.is_some(), start.local_name().as_ref())?;
                close(&mut stack, &mut root)?;
            }
            Event::End(_) => close(&mut stack, &mut root)?,
            Event::Text(t) => {
                let t = t.xml10_content().map_err(|e| e.to_string())?;
                add_text(&mut stack, &t)?;
            }
            Event::CData(c) => add_text(&mut stack, &c.decode().map_err(|e| e.to_string())?)?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown entity &{name};"))?
                            .to_owned()
                    }
                };
                add_text(&mut stack, &resolved)?;
            }
            Event::Eof => break,
            // The declaration, comments, processing instructions, a doctype.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".to_owned());
    }
    root.ok_or_else(|| "no root element".to_owned())
}

fn open(stack: &mut Vec<Element>, after_root: bool, name: &[u8]) -> Result<(), String> {
    if after_root {
        return Err("more than one root element".to_owned());
    }
    if stack.len() >= MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} elements"));
    }
    stack.push(Element {
        name: String::from_utf8_lossy(name).into_owned(),
        ..Element::default()
    });
    Ok(())
}

fn close(stack: &mut Vec<Element>, root: &mut Option<Element>) -> Result<(), String> {
    let mut done = stack
        .pop()
        .ok_or_else(|| "an end tag without its start".to_owned())?;
    if !done.children.is_empty() {
        done.text.clear();
    }
    match stack.last_mut() {
        Some(parent) => parent.children.push(done),
        None => *root = Some(done),
    }
    Ok(())
}

fn add_text(stack: &mut [Element], text: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(top) => {
            top.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".to_owned()),
    }
}

// ---- tables ----

/// Lines of a table: a header, then the rows, columns padded to their widest cell (the
/// last one not), every cell escaped. No lines when there are no rows.
fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    if rows.is_empty() {
        return Vec::new();
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let rows: Vec<Vec<String>> = std::iter::once(header)
        .chain(rows.iter().map(|r| r.iter().map(|c| escape(c)).collect()))
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let width = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<width$}");
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// A resource's `tagSet` as `K=V,K=V`, or `-`.
fn tags_cell(e: &Element) -> String {
    let tags: Vec<String> = e
        .items("tagSet")
        .map(|t| {
            format!(
                "{}={}",
                t.get("key").unwrap_or_default(),
                t.get("value").unwrap_or_default()
            )
        })
        .collect();
    if tags.is_empty() {
        "-".to_owned()
    } else {
        tags.join(",")
    }
}

fn cell(e: &Element, name: &str) -> String {
    match e.get(name) {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => "-".to_owned(),
    }
}

/// `vpc list`: id, CIDR, whether it is the default VPC, tags.
fn vpc_table(answer: &Element) -> Vec<String> {
    let rows: Vec<Vec<String>> = answer
        .items("vpcSet")
        .map(|v| {
            vec![
                cell(v, "vpcId"),
                cell(v, "cidrBlock"),
                if v.get("isDefault") == Some("true") {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
                tags_cell(v),
            ]
        })
        .collect();
    table(&["VPC", "CIDR", "DEFAULT", "TAGS"], &rows)
}

/// `subnet list`: id, VPC, CIDR, zone, tags.
fn subnet_table(answer: &Element) -> Vec<String> {
    let rows: Vec<Vec<String>> = answer
        .items("subnetSet")
        .map(|s| {
            vec![
                cell(s, "subnetId"),
                cell(s, "vpcId"),
                cell(s, "cidrBlock"),
                cell(s, "availabilityZone"),
                tags_cell(s),
            ]
        })
        .collect();
    table(&["SUBNET", "VPC", "CIDR", "ZONE", "TAGS"], &rows)
}

/// How many rules an `ipPermissions` list holds: one per range and group of each item.
fn rule_count(group: &Element, list: &str) -> usize {
    group
        .items(list)
        .map(|p| {
            ["groups", "ipRanges", "ipv6Ranges", "prefixListIds"]
                .iter()
                .map(|l| p.items(l).count())
                .sum::<usize>()
        })
        .sum()
}

/// `sg list`: id, VPC, name, ingress and egress rule counts, description.
fn group_table(answer: &Element) -> Vec<String> {
    let rows: Vec<Vec<String>> = answer
        .items("securityGroupInfo")
        .map(|g| {
            vec![
                cell(g, "groupId"),
                cell(g, "vpcId"),
                cell(g, "groupName"),
                rule_count(g, "ipPermissions").to_string(),
                rule_count(g, "ipPermissionsEgress").to_string(),
                cell(g, "groupDescription"),
            ]
        })
        .collect();
    table(
        &["GROUP", "VPC", "NAME", "INGRESS", "EGRESS", "DESCRIPTION"],
        &rows,
    )
}

/// One security group rule, as `DescribeSecurityGroupRules` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    id: String,
    group: String,
    egress: bool,
    protocol: String,
    from: String,
    to: String,
    /// A CIDR or a group id.
    peer: String,
    description: Option<String>,
}

impl Rule {
    fn from_item(item: &Element) -> Rule {
        let text = |name: &str| item.get(name).unwrap_or_default().to_owned();
        let peer = item
            .get("cidrIpv4")
            .or_else(|| item.get("cidrIpv6"))
            .or_else(|| item.get_path(&["referencedGroupInfo", "groupId"]))
            .or_else(|| item.get("prefixListId"))
            .unwrap_or("-")
            .to_owned();
        Rule {
            id: text("securityGroupRuleId"),
            group: text("groupId"),
            egress: item.get("isEgress") == Some("true"),
            protocol: text("ipProtocol"),
            from: text("fromPort"),
            to: text("toPort"),
            peer,
            description: item
                .get("description")
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        }
    }

    fn direction(&self) -> &'static str {
        if self.egress {
            "egress"
        } else {
            "ingress"
        }
    }

    fn protocol(&self) -> String {
        match self.protocol.as_str() {
            "-1" | "" => "all".to_owned(),
            "6" => "tcp".to_owned(),
            "17" => "udp".to_owned(),
            "1" => "icmp".to_owned(),
            "58" => "icmpv6".to_owned(),
            p => p.to_owned(),
        }
    }

    /// The ports (TCP, UDP) or ICMP type and code the rule covers.
    fn ports(&self) -> String {
        let (from, to) = (self.from.as_str(), self.to.as_str());
        match self.protocol().as_str() {
            "all" => "all".to_owned(),
            "icmp" | "icmpv6" => match (from, to) {
                ("-1", _) | ("", _) => "all".to_owned(),
                (t, "-1") | (t, "") => format!("type {t}"),
                (t, c) => format!("type {t} code {c}"),
            },
            _ => match (from, to) {
                ("0", "65535") | ("-1", "-1") | ("", "") => "all".to_owned(),
                (f, t) if f == t => f.to_owned(),
                (f, t) => format!("{f}-{t}"),
            },
        }
    }

    /// Direction, protocol, ports, peer, id and the description if any.
    fn cells(&self) -> Vec<String> {
        let mut cells = vec![
            self.direction().to_owned(),
            self.protocol(),
            self.ports(),
            self.peer.clone(),
            self.id.clone(),
        ];
        if let Some(d) = &self.description {
            cells.push(d.clone());
        }
        cells.iter().map(|c| escape(c)).collect()
    }
}

/// `sg show`: the rules, egress first, each in the order the server lists them.
fn rule_table(answer: &Element) -> Vec<String> {
    let mut rules: Vec<Rule> = answer
        .items("securityGroupRuleSet")
        .map(Rule::from_item)
        .collect();
    rules.sort_by_key(|r| !r.egress);
    let described = rules.iter().any(|r| r.description.is_some());
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            let mut row = vec![
                r.direction().to_owned(),
                r.protocol(),
                r.ports(),
                r.peer.clone(),
                r.id.clone(),
            ];
            if described {
                row.push(r.description.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    let header = [
        "DIRECTION",
        "PROTOCOL",
        "PORTS",
        "PEER",
        "RULE",
        "DESCRIPTION",
    ];
    table(&header[..if described { 6 } else { 5 }], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    use crate::cli::netlog::NetworkCommand;

    /// Stands in for `warden network`.
    #[derive(Debug, Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: NetworkCommand,
    }

    fn parse_args(args: &[&str]) -> Result<NetworkCommand, String> {
        let mut argv = vec!["network"];
        argv.extend_from_slice(args);
        Top::try_parse_from(argv)
            .map(|t| t.cmd)
            .map_err(|e| e.to_string())
    }

    fn allow(args: &[&str]) -> Result<AllowArgs, String> {
        let mut argv = vec!["sg", "allow"];
        argv.extend_from_slice(args);
        match parse_args(&argv)? {
            NetworkCommand::Sg(SgCommand::Allow(a)) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    fn xml(text: &str) -> Element {
        parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_command_definition_is_consistent() {
        use clap::CommandFactory;
        Top::command().debug_assert();
    }

    #[test]
    fn parses_vpc_subnet_and_group_commands() {
        let NetworkCommand::Vpc(VpcCommand::Create(v)) = parse_args(&[
            "vpc",
            "create",
            "--cidr",
            "10.0.0.0/16",
            "--tag",
            "Name=web",
            "--tag",
            "team=a=b",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(v.cidr, "10.0.0.0/16");
        assert_eq!(
            v.tags,
            [
                ("Name".to_owned(), "web".to_owned()),
                ("team".to_owned(), "a=b".to_owned())
            ]
        );
        assert!(!v.format.json);
        let err = parse_args(&["vpc", "create", "--cidr", "10.0.0.0/16", "--tag", "x"]);
        assert!(err.unwrap_err().contains("`x` is not KEY=VALUE"));
        assert!(matches!(
            parse_args(&["vpc", "list", "--json"]).unwrap(),
            NetworkCommand::Vpc(VpcCommand::List(Format { json: true }))
        ));
        let NetworkCommand::Vpc(VpcCommand::Delete(d)) =
            parse_args(&["vpc", "delete", "vpc-0123"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(d.id, "vpc-0123");

        let NetworkCommand::Subnet(SubnetCommand::Create(s)) = parse_args(&[
            "subnet",
            "create",
            "--vpc",
            "vpc-1",
            "--cidr",
            "10.0.1.0/24",
            "--az",
            "us-east-1a",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.vpc.as_str(), s.cidr.as_str(), s.az.as_deref()),
            ("vpc-1", "10.0.1.0/24", Some("us-east-1a"))
        );
        assert!(parse_args(&["subnet", "create", "--cidr", "10.0.1.0/24"]).is_err());
        let NetworkCommand::Subnet(SubnetCommand::List(l)) =
            parse_args(&["subnet", "list", "--vpc", "vpc-1"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(l.vpc.as_deref(), Some("vpc-1"));

        let NetworkCommand::Sg(SgCommand::Create(g)) = parse_args(&[
            "sg",
            "create",
            "--vpc",
            "vpc-1",
            "--name",
            "db",
            "--deny-all-egress",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(g.deny_all_egress);
        assert_eq!((g.name.as_str(), g.description.as_deref()), ("db", None));
        assert!(matches!(
            parse_args(&["sg", "show", "sg-1"]).unwrap(),
            NetworkCommand::Sg(SgCommand::Show(IdArgs { .. }))
        ));
        let NetworkCommand::Sg(SgCommand::Revoke(r)) =
            parse_args(&["sg", "revoke", "sg-1", "--rule", "sgr-2"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((r.id.as_str(), r.rule.as_str()), ("sg-1", "sgr-2"));
        assert!(parse_args(&["sg", "revoke", "sg-1"]).is_err());
    }

    #[test]
    fn allow_builds_ec2s_form() {
        let a = allow(&[
            "sg-1",
            "--egress",
            "--protocol",
            "tcp",
            "--port",
            "5432",
            "--cidr",
            "10.0.0.0/24",
            "--description",
            "db",
        ])
        .unwrap();
        let (action, params) = allow_request(&a).unwrap();
        assert_eq!(action, "AuthorizeSecurityGroupEgress");
        assert_eq!(
            params,
            [
                param("GroupId", "sg-1"),
                param("IpPermissions.1.IpProtocol", "tcp"),
                param("IpPermissions.1.FromPort", "5432"),
                param("IpPermissions.1.ToPort", "5432"),
                param("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/24"),
                param("IpPermissions.1.IpRanges.1.Description", "db"),
            ]
        );
        let a = allow(&[
            "sg-1",
            "--ingress",
            "--protocol",
            "udp",
            "--ports",
            "8000-8080",
            "--group",
            "sg-2",
        ])
        .unwrap();
        let (action, params) = allow_request(&a).unwrap();
        assert_eq!(action, "AuthorizeSecurityGroupIngress");
        assert_eq!(
            params,
            [
                param("GroupId", "sg-1"),
                param("IpPermissions.1.IpProtocol", "udp"),
                param("IpPermissions.1.FromPort", "8000"),
                param("IpPermissions.1.ToPort", "8080"),
                param("IpPermissions.1.Groups.1.GroupId", "sg-2"),
            ]
        );
        // Every protocol: `-1`, no ports; every TCP port: no ports either.
        for (protocol, wire) in [("all", "-1"), ("tcp", "tcp"), ("icmp", "icmp")] {
            let a = allow(&[
                "sg-1",
                "--egress",
                "--protocol",
                protocol,
                "--cidr",
                "0.0.0.0/0",
            ])
            .unwrap();
            let (_, params) = allow_request(&a).unwrap();
            assert_eq!(
                params,
                [
                    param("GroupId", "sg-1"),
                    param("IpPermissions.1.IpProtocol", wire),
                    param("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
                ]
            );
        }
    }

    #[test]
    fn allow_refuses_bad_combinations_saying_why() {
        for (protocol, says) in [("all", "allows every port"), ("icmp", "has no ports")] {
            for ports in [["--port", "22"], ["--ports", "1-2"]] {
                let a = allow(&[
                    "sg-1",
                    "--egress",
                    "--protocol",
                    protocol,
                    ports[0],
                    ports[1],
                    "--cidr",
                    "10.0.0.0/8",
                ])
                .unwrap();
                let e = allow_request(&a).unwrap_err().to_string();
                assert!(e.contains(says), "{e}");
            }
        }
        let base = ["sg-1", "--protocol", "tcp"];
        let refused = |extra: &[&str], says: &str| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            let e = allow(&args).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        };
        refused(&["--cidr", "10.0.0.0/8"], "--egress");
        refused(
            &["--egress", "--ingress", "--cidr", "10.0.0.0/8"],
            "cannot be used with",
        );
        refused(&["--egress"], "--cidr");
        refused(
            &["--egress", "--cidr", "10.0.0.0/8", "--group", "sg-2"],
            "cannot be used with",
        );
        refused(
            &[
                "--egress",
                "--cidr",
                "10.0.0.0/8",
                "--port",
                "1",
                "--ports",
                "1-2",
            ],
            "cannot be used with",
        );
        refused(
            &["--egress", "--cidr", "10.0.0.0/8", "--port", "70000"],
            "70000",
        );
        refused(
            &["--egress", "--cidr", "10.0.0.0/8", "--ports", "90-80"],
            "greater than the last",
        );
        refused(
            &["--egress", "--cidr", "10.0.0.0/8", "--ports", "80"],
            "FROM-TO",
        );
        let e = allow(&[
            "sg-1",
            "--egress",
            "--protocol",
            "gre",
            "--cidr",
            "10.0.0.0/8",
        ])
        .unwrap_err();
        assert!(e.contains("gre"), "{e}");
    }

    #[test]
    fn tags_become_one_tag_specification() {
        assert!(tag_specification("vpc", &[]).is_empty());
        assert_eq!(
            tag_specification(
                "subnet",
                &[("a".into(), "1".into()), ("b".into(), String::new())]
            ),
            [
                param("TagSpecification.1.ResourceType", "subnet"),
                param("TagSpecification.1.Tag.1.Key", "a"),
                param("TagSpecification.1.Tag.1.Value", "1"),
                param("TagSpecification.1.Tag.2.Key", "b"),
                param("TagSpecification.1.Tag.2.Value", ""),
            ]
        );
    }

    const VPCS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>r-1</requestId>
    <vpcSet>
        <item>
            <vpcId>vpc-0a1b2c3d4e5f60718</vpcId>
            <ownerId>123456789012</ownerId>
            <state>available</state>
            <cidrBlock>10.0.0.0/16</cidrBlock>
            <cidrBlockAssociationSet><item><associationId>vpc-cidr-assoc-1</associationId><cidrBlock>10.0.0.0/16</cidrBlock><cidrBlockState><state>associated</state></cidrBlockState></item></cidrBlockAssociationSet>
            <isDefault>false</isDefault>
            <tagSet><item><key>Name</key><value>a &amp; b</value></item><item><key>env</key><value>prod</value></item></tagSet>
        </item>
        <item>
            <vpcId>vpc-1</vpcId>
            <cidrBlock>172.16.0.0/12</cidrBlock>
            <isDefault>true</isDefault>
        </item>
    </vpcSet>
</DescribeVpcsResponse>"#;

    #[test]
    fn vpcs_are_read_and_tabled() {
        let doc = xml(VPCS);
        assert_eq!(doc.name, "DescribeVpcsResponse");
        assert_eq!(
            vpc_table(&doc),
            [
                "VPC                    CIDR           DEFAULT  TAGS",
                "vpc-0a1b2c3d4e5f60718  10.0.0.0/16    no       Name=a & b,env=prod",
                "vpc-1                  172.16.0.0/12  yes      -",
            ]
        );
        let v = doc.to_json();
        assert_eq!(v["requestId"], "r-1");
        assert_eq!(v["vpcSet"][0]["vpcId"], "vpc-0a1b2c3d4e5f60718");
        assert_eq!(
            v["vpcSet"][0]["tagSet"][0],
            json!({"key": "Name", "value": "a & b"})
        );
        assert_eq!(
            v["vpcSet"][0]["cidrBlockAssociationSet"][0]["cidrBlockState"]["state"],
            "associated"
        );
        assert_eq!(v["vpcSet"][1]["isDefault"], "true");
        // Nothing listed: an empty array, and no table.
        let empty =
            xml("<DescribeVpcsResponse><requestId>r</requestId><vpcSet/></DescribeVpcsResponse>");
        assert_eq!(empty.to_json(), json!({"requestId": "r", "vpcSet": []}));
        assert!(vpc_table(&empty).is_empty());
    }

    #[test]
    fn subnets_are_tabled() {
        let doc = xml(
            "<DescribeSubnetsResponse><subnetSet><item><subnetId>subnet-1</subnetId><vpcId>vpc-1</vpcId>\
             <cidrBlock>10.0.1.0/24</cidrBlock><availabilityZone>us-east-1a</availabilityZone></item>\
             </subnetSet></DescribeSubnetsResponse>",
        );
        assert_eq!(
            subnet_table(&doc),
            [
                "SUBNET    VPC    CIDR         ZONE        TAGS",
                "subnet-1  vpc-1  10.0.1.0/24  us-east-1a  -",
            ]
        );
    }

    const GROUPS: &str = r#"<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
<requestId>r-2</requestId>
<securityGroupInfo>
  <item>
    <ownerId>123456789012</ownerId><groupId>sg-1</groupId><groupName>db</groupName>
    <groupDescription>the db</groupDescription><vpcId>vpc-1</vpcId>
    <ipPermissions>
      <item><ipProtocol>tcp</ipProtocol><fromPort>5432</fromPort><toPort>5432</toPort>
        <groups><item><userId>123456789012</userId><groupId>sg-2</groupId></item></groups>
        <ipRanges><item><cidrIp>10.0.0.0/24</cidrIp></item><item><cidrIp>10.0.1.0/24</cidrIp></item></ipRanges>
        <ipv6Ranges></ipv6Ranges><prefixListIds></prefixListIds></item>
    </ipPermissions>
    <ipPermissionsEgress></ipPermissionsEgress>
  </item>
  <item>
    <groupId>sg-2</groupId><groupName>web</groupName><groupDescription>evil&#x1b;[2J</groupDescription><vpcId>vpc-1</vpcId>
    <ipPermissions/>
    <ipPermissionsEgress><item><ipProtocol>-1</ipProtocol><groups/><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges><ipv6Ranges/><prefixListIds/></item></ipPermissionsEgress>
  </item>
</securityGroupInfo>
</DescribeSecurityGroupsResponse>"#;

    #[test]
    fn groups_are_tabled_with_rule_counts_and_escaped_text() {
        let doc = xml(GROUPS);
        let lines = group_table(&doc);
        assert_eq!(
            lines,
            [
                "GROUP  VPC    NAME  INGRESS  EGRESS  DESCRIPTION",
                "sg-1   vpc-1  db    3        0       the db",
                "sg-2   vpc-1  web   0        1       evil\\u{1b}[2J",
            ]
        );
        let v = doc.to_json();
        assert_eq!(v["securityGroupInfo"][0]["ipPermissionsEgress"], json!([]));
        assert_eq!(
            v["securityGroupInfo"][0]["ipPermissions"][0]["ipRanges"][1]["cidrIp"],
            "10.0.1.0/24"
        );
        assert_eq!(v["securityGroupInfo"][1]["ipPermissions"], json!([]));
        assert_eq!(
            v["securityGroupInfo"][1]["groupDescription"],
            "evil\u{1b}[2J"
        );
    }

    const RULES: &str = r#"<DescribeSecurityGroupRulesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
<requestId>r-3</requestId>
<securityGroupRuleSet>
  <item><securityGroupRuleId>sgr-in</securityGroupRuleId><groupId>sg-1</groupId><isEgress>false</isEgress>
    <ipProtocol>tcp</ipProtocol><fromPort>8000</fromPort><toPort>8080</toPort>
    <referencedGroupInfo><groupId>sg-2</groupId><userId>123456789012</userId></referencedGroupInfo></item>
  <item><securityGroupRuleId>sgr-all</securityGroupRuleId><groupId>sg-1</groupId><isEgress>true</isEgress>
    <ipProtocol>-1</ipProtocol><fromPort>-1</fromPort><toPort>-1</toPort><cidrIpv4>0.0.0.0/0</cidrIpv4></item>
  <item><securityGroupRuleId>sgr-db</securityGroupRuleId><groupId>sg-1</groupId><isEgress>true</isEgress>
    <ipProtocol>tcp</ipProtocol><fromPort>5432</fromPort><toPort>5432</toPort><cidrIpv4>10.0.1.0/24</cidrIpv4>
    <description>postgres</description></item>
  <item><securityGroupRuleId>sgr-ping</securityGroupRuleId><groupId>sg-1</groupId><isEgress>false</isEgress>
    <ipProtocol>icmp</ipProtocol><fromPort>-1</fromPort><toPort>-1</toPort><cidrIpv4>10.0.0.0/16</cidrIpv4></item>
  <item><securityGroupRuleId>sgr-udp</securityGroupRuleId><groupId>sg-1</groupId><isEgress>true</isEgress>
    <ipProtocol>udp</ipProtocol><fromPort>0</fromPort><toPort>65535</toPort><cidrIpv6>::/0</cidrIpv6></item>
  <item><securityGroupRuleId>sgr-echo</securityGroupRuleId><groupId>sg-1</groupId><isEgress>true</isEgress>
    <ipProtocol>icmp</ipProtocol><fromPort>8</fromPort><toPort>0</toPort><cidrIpv4>10.0.0.0/16</cidrIpv4></item>
</securityGroupRuleSet>
</DescribeSecurityGroupRulesResponse>"#;

    #[test]
    fn rules_show_egress_first_one_per_line() {
        let doc = xml(RULES);
        assert_eq!(
            rule_table(&doc),
            [
                "DIRECTION  PROTOCOL  PORTS          PEER         RULE      DESCRIPTION",
                "egress     all       all            0.0.0.0/0    sgr-all",
                "egress     tcp       5432           10.0.1.0/24  sgr-db    postgres",
                "egress     udp       all            ::/0         sgr-udp",
                "egress     icmp      type 8 code 0  10.0.0.0/16  sgr-echo",
                "ingress    tcp       8000-8080      sg-2         sgr-in",
                "ingress    icmp      all            10.0.0.0/16  sgr-ping",
            ]
        );
        let rule = Rule::from_item(doc.items("securityGroupRuleSet").next().unwrap());
        assert_eq!(
            rule,
            Rule {
                id: "sgr-in".into(),
                group: "sg-1".into(),
                egress: false,
                protocol: "tcp".into(),
                from: "8000".into(),
                to: "8080".into(),
                peer: "sg-2".into(),
                description: None,
            }
        );
        assert_eq!(rule.cells().join(" "), "ingress tcp 8000-8080 sg-2 sgr-in");
    }

    #[test]
    fn ec2_errors_are_read_from_their_document() {
        let e = error_of(
            400,
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code>\
              <Message>The vpc ID &apos;vpc-9&apos; does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>",
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            "the vpc ID 'vpc-9' does not exist (InvalidVpcID.NotFound)"
        );
        assert_eq!(e.status, 400);
        // Not EC2's document: the generic reading of the reply takes over.
        assert!(error_of(500, b"Internal Server Error").is_none());
        assert!(error_of(
            400,
            b"<Response><Errors><Error><Message>m</Message></Error></Errors></Response>"
        )
        .is_none());
    }

    #[test]
    fn malformed_or_hostile_documents_are_refused() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text<a/>",
            "<a>&bogus;</a>",
            "<a>&#0;</a>",
            "</a>",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse(b"<a>\xff</a>").is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).unwrap_err().contains("deeper"));
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn text_is_decoded_and_prefixes_dropped() {
        let e = xml("<!-- c --><ns:a xmlns:ns=\"u\"><ns:b>x &lt;&#65;&#x42;<![CDATA[<c>]]></ns:b><d/></ns:a>");
        assert_eq!(e.name, "a");
        assert_eq!(e.get("b"), Some("x <AB<c>"));
        assert_eq!(e.get("d"), Some(""));
        assert_eq!(e.to_json(), json!({"b": "x <AB<c>", "d": ""}));
        // A name given twice keeps both values.
        assert_eq!(
            xml("<a><b>1</b><b>2</b><b>3</b></a>").to_json(),
            json!({"b": ["1", "2", "3"]})
        );
    }
}

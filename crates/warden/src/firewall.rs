//! Glue between the network service (security groups, as the EC2 API manages them), the
//! firewall that enforces them (`warden_egress`) and the engine, which asks for each new
//! instance's egress.

use std::path::Path;
use std::sync::Arc;

use warden_egress::{
    DefaultEgress, EgressError, Firewall, GroupId, GroupRules, Peer, Protocol, Rule,
};
use warden_engine::EgressPolicies;
use warden_executor::Egress;
use warden_types::FunctionVersion;

/// `--default-egress`: where functions without a network configuration may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DefaultEgressArg {
    /// Nowhere but Warden's own services (loopback only).
    Deny,
    /// Public addresses; never private ranges, link-local (cloud metadata) or the host.
    Internet,
}

/// Where the firewalls of every Warden server on this host take their address blocks.
const LOCK_DIR: &str = "/run/warden-egress";

/// Installs this server's firewall if the host can enforce one. Without one, functions
/// have loopback only and a function with a `VpcConfig` does not start; that is refused
/// at start only when `--default-egress internet` asked for more.
pub fn install(
    default: DefaultEgressArg,
    sandboxed: bool,
) -> anyhow::Result<Option<Arc<Firewall>>> {
    let default = match default {
        DefaultEgressArg::Deny => DefaultEgress::Deny,
        DefaultEgressArg::Internet => DefaultEgress::Internet,
    };
    let why = if !sandboxed {
        "functions run without the sandbox (--insecure-no-sandbox)".to_owned()
    } else {
        match Firewall::install(Path::new(LOCK_DIR), default) {
            Ok(f) => {
                tracing::info!(
                    block = f.block().0,
                    default_egress = ?default,
                    "network egress is enforced by nftables"
                );
                return Ok(Some(Arc::new(f)));
            }
            Err(e) => e.to_string(),
        }
    };
    if default == DefaultEgress::Internet {
        anyhow::bail!("--default-egress internet cannot be enforced here: {why}");
    }
    tracing::info!(
        "functions have loopback only, and functions with a VpcConfig cannot start: {why}"
    );
    Ok(None)
}

/// Security groups of the network service, as the firewall reads them.
pub struct NetworkGroups(pub warden_network::Network);

impl warden_egress::GroupSource for NetworkGroups {
    fn group(&self, id: &GroupId) -> Option<GroupRules> {
        let g = self.0.security_group(id.as_str())?;
        let convert = |rules: &[warden_network::SgRule]| -> Vec<Rule> {
            rules
                .iter()
                .filter_map(|r| {
                    let protocol = match r.protocol {
                        warden_network::IpProtocol::All => Protocol::All,
                        warden_network::IpProtocol::Tcp => Protocol::Tcp,
                        warden_network::IpProtocol::Udp => Protocol::Udp,
                        warden_network::IpProtocol::Icmp => Protocol::Icmp,
                        // Instances have no IPv6: an ICMPv6 rule allows nothing.
                        warden_network::IpProtocol::Icmpv6 => return None,
                    };
                    let peer = match &r.peer {
                        warden_network::Peer::V4(net) => Peer::Cidr(*net),
                        warden_network::Peer::V6(_) => Peer::Ipv6,
                        warden_network::Peer::Group(g) => Peer::Group(GroupId::parse(g).ok()?),
                    };
                    Some(Rule {
                        protocol,
                        from_port: r.from_port,
                        to_port: r.to_port,
                        peer,
                    })
                })
                .collect()
        };
        Some(GroupRules {
            id: id.clone(),
            egress: convert(&g.egress),
            ingress: convert(&g.ingress),
        })
    }
}

/// The engine's egress decisions, from the firewall.
pub struct FirewallPolicies(pub Arc<Firewall>);

impl EgressPolicies for FirewallPolicies {
    fn egress(&self, config: &FunctionVersion) -> Result<Egress, (String, String)> {
        let policy = match &config.vpc_config {
            None => match self.0.default_policy() {
                None => return Ok(Egress::RelayOnly),
                Some(p) => p,
            },
            Some(vpc) => self
                .0
                .policy_for(&vpc.security_group_ids)
                .map_err(|e| match e {
                    EgressError::NoSuchGroup(_) | EgressError::BadGroupId(_) => {
                        ("InvalidSecurityGroupIDException".to_owned(), e.to_string())
                    }
                    other => ("EC2UnexpectedException".to_owned(), other.to_string()),
                })?,
        };
        Ok(Egress::Linked {
            policy: policy.key.as_str().to_owned(),
            groups: policy
                .groups
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
        })
    }
}

/// Keeps the firewall's chains equal to the security groups: every committed change to
/// the network service recompiles them (one nftables transaction), so running instances
/// see a rule change at once.
pub async fn follow_changes(firewall: Arc<Firewall>, network: warden_network::Network) {
    let mut changes = network.subscribe();
    while changes.changed().await.is_ok() {
        let f = Arc::clone(&firewall);
        match tokio::task::spawn_blocking(move || f.refresh()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not apply a security group change"),
            Err(e) => tracing::error!(error = %e, "could not apply a security group change"),
        }
    }
}

/// The DNS firewall (Route 53 Resolver DNS Firewall's rules) as the resolver asks it.
pub struct DnsFirewallPolicy(pub warden_dnsfw::DnsFirewall);

impl warden_dns::Policy for DnsFirewallPolicy {
    fn decide(&self, vpc_id: &str, qname: &str) -> warden_dns::Decision {
        match self.0.verdict(vpc_id, qname) {
            warden_dnsfw::Verdict::Allow { alerted_by } => {
                warden_dns::Decision::Allow { alerted_by }
            }
            warden_dnsfw::Verdict::Block { rule, response } => warden_dns::Decision::Block {
                rule,
                nxdomain: response == warden_dnsfw::BlockResponse::NxDomain,
            },
        }
    }
}

/// The resolver for instances with a network link: upstreams from `--dns-upstream`, else
/// the host's `/etc/resolv.conf`; its query log in `DATA_DIR/dns.db`, or with a `shared`
/// PostgreSQL store the log all nodes share.
pub fn resolver(
    data_dir: &Path,
    shared: Option<&warden_postgres::Pool>,
    upstreams: &[std::net::SocketAddr],
    dns_firewall: warden_dnsfw::DnsFirewall,
) -> anyhow::Result<Arc<warden_dns::Resolver>> {
    let upstreams = if upstreams.is_empty() {
        warden_dns::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    } else {
        upstreams.to_vec()
    };
    if upstreams.is_empty() {
        tracing::warn!("no upstream DNS resolver (none in /etc/resolv.conf, no --dns-upstream): functions' names will not resolve");
    }
    let log = match shared {
        None => warden_dns::QueryLog::open(&data_dir.join("dns.db"))?,
        Some(pool) => warden_dns::QueryLog::open_shared(pool.clone())
            .map_err(|e| anyhow::anyhow!("cannot start the DNS query log's writer: {e}"))?,
    };
    Ok(Arc::new(warden_dns::Resolver::new(
        upstreams,
        Some(Arc::new(DnsFirewallPolicy(dns_firewall))),
        log,
    )))
}

/// Every `interval`, turns what the table's flow counters grew by into flow records of
/// the instances they belong to, for those whose VPC has a flow log
/// (`ec2 create-flow-logs`), and stores them. Every rejected egress flow of an instance,
/// flow log or not, counts in its function's `EgressRejects` (its packets) and is written
/// to the security log once per interval.
pub async fn collect_flows(
    firewall: Arc<Firewall>,
    engine: warden_engine::Engine,
    flow_logs: warden_network::FlowLogs,
    account: String,
    interval: std::time::Duration,
    metrics: Arc<warden_metrics::Metrics>,
) {
    let Some(log) = engine.flow_log().cloned() else {
        return;
    };
    let mut tracker = warden_egress::flows::Tracker::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut start = unix_seconds();
    loop {
        ticks.tick().await;
        let f = Arc::clone(&firewall);
        let counted = match tokio::task::spawn_blocking(move || f.read_flows()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not read the flow counters");
                continue;
            }
            Err(_) => continue,
        };
        let end = unix_seconds();
        let deltas = tracker.advance(&counted.0, &counted.1);
        for d in &deltas {
            if d.action != warden_egress::flows::Action::Reject {
                continue;
            }
            let Some(instance) = engine.linked_instance(d.key.src) else {
                continue;
            };
            metrics.count_n(
                warden_metrics::Counter::EgressRejects,
                Some(&instance.function),
                None,
                d.packets,
            );
            engine.security_log().record(serde_json::json!({
                "event": "EgressReject",
                "function": instance.function,
                "instance": instance.instance,
                "destination": d.key.dst.to_string(),
                "port": d.key.dst_port,
                "protocol": d.key.protocol,
                "packets": d.packets,
            }));
        }
        let records: Vec<warden_egress::flows::FlowRecord> = deltas
            .into_iter()
            .filter_map(|d| {
                let instance = engine
                    .linked_instance(d.key.src)
                    .or_else(|| engine.linked_instance(d.key.dst))?;
                let vpc = instance.vpc.as_ref()?;
                let rejected = d.action == warden_egress::flows::Action::Reject;
                if !flow_logs
                    .traffic_for(&vpc.vpc_id, &vpc.subnet_ids)
                    .is_some_and(|t| t.records(rejected))
                {
                    return None;
                }
                Some(warden_egress::flows::FlowRecord {
                    version: 2,
                    account_id: account.clone(),
                    interface_id: format!("eni-{}", instance.instance.trim_start_matches("i-")),
                    srcaddr: d.key.src.to_string(),
                    dstaddr: d.key.dst.to_string(),
                    srcport: d.key.src_port,
                    dstport: d.key.dst_port,
                    protocol: d.key.protocol,
                    packets: d.packets,
                    bytes: d.bytes,
                    start,
                    end,
                    action: d.action.as_str().to_owned(),
                    log_status: "OK".to_owned(),
                    function: instance.function.clone(),
                    instance: instance.instance.clone(),
                    vpc_id: vpc.vpc_id.clone(),
                })
            })
            .collect();
        start = end;
        let log = Arc::clone(&log);
        match tokio::task::spawn_blocking(move || log.append(&records)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not store flow records"),
            Err(_) => {}
        }
    }
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

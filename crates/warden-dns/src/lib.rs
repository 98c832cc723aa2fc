//! The resolver Warden runs for instances with a network link.
//!
//! Each such instance's `/etc/resolv.conf` names `127.0.0.1`, where a UDP socket of its
//! own namespace (bound by the sandbox, passed to the engine) receives its queries. The
//! engine hands each one to [`Resolver::answer`], which, in the server's namespace:
//!
//! 1. parses it (`hickory-proto`); a query that does not parse gets `FORMERR`, one without
//!    even a header nothing;
//! 2. asks the DNS firewall ([`Policy`]) for the instance's VPC: a blocked name is
//!    answered `NXDOMAIN` (or `NOERROR` with no answer, `NODATA`) and never leaves the host;
//! 3. forwards the others, byte for byte, to the upstream resolvers (the host's, or
//!    `--dns-upstream`) and relays the answer;
//! 4. records every query ([`QueryLog`]): function, instance, VPC, name, type, the action,
//!    the response code and the answer's addresses.
//!
//! Queries leave from the server's namespace, so resolving a name never needs the
//! instance to be allowed port 53 anywhere; reaching the addresses a name resolves to is
//! still decided by the instance's security groups.

mod log;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::RData;

pub use log::{QueryLog, QueryRecord, POSTGRES_TRACK};

/// Why the resolver could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The query log's database.
    #[error("{context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// The database error.
        #[source]
        source: warden_sqlite::Error,
    },
    /// The query log in the PostgreSQL store the nodes share.
    #[error("{context}: {source}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// The database error.
        #[source]
        source: warden_postgres::Error,
    },
}

/// Who asked: the instance a query came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The function's name.
    pub function: String,
    /// The instance (an id unique on this server).
    pub instance: String,
    /// The VPC the function is attached to, if any.
    pub vpc_id: Option<String>,
}

/// A DNS firewall's decision on a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Resolve it; with the name of an alerting rule that matched, if one did.
    Allow {
        /// The alerting rule.
        alerted_by: Option<String>,
    },
    /// Answer without resolving: `NXDOMAIN` (`nxdomain`) or an empty `NOERROR`.
    Block {
        /// The rule that blocked it.
        rule: String,
        /// `NXDOMAIN` rather than `NODATA`.
        nxdomain: bool,
    },
}

/// The DNS firewall the resolver asks (Route 53 Resolver DNS Firewall's rules, by VPC).
pub trait Policy: Send + Sync {
    /// The decision for `qname` asked from an instance attached to `vpc_id`.
    fn decide(&self, vpc_id: &str, qname: &str) -> Decision;
}

/// How long one upstream resolver is given to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest query or answer relayed (EDNS's common maximum).
pub const MAX_MESSAGE: usize = 4096;

/// Answers instances' queries.
pub struct Resolver {
    upstreams: Vec<SocketAddr>,
    policy: Option<Arc<dyn Policy>>,
    log: QueryLog,
}

impl Resolver {
    /// A resolver forwarding to `upstreams` (in order, each tried once), deciding with
    /// `policy` and recording into `log`.
    pub fn new(upstreams: Vec<SocketAddr>, policy: Option<Arc<dyn Policy>>, log: QueryLog) -> Self {
        Resolver {
            upstreams,
            policy,
            log,
        }
    }

    /// The query log.
    pub fn log(&self) -> &QueryLog {
        &self.log
    }

    /// The answer to `query` from `client`, or `None` when there is nothing to answer
    /// (not even a header to echo).
    pub async fn answer(&self, client: &Client, query: &[u8]) -> Option<Vec<u8>> {
        let id = match query {
            [a, b, ..] if query.len() >= 12 => u16::from_be_bytes([*a, *b]),
            _ => return None,
        };
        let parsed = match Message::from_vec(query) {
            // A response sent to the resolver is not answered (no reflection loops).
            Ok(m) if m.message_type() == MessageType::Response => return None,
            Ok(m) if m.op_code() != OpCode::Query => {
                return error(id, m.op_code(), ResponseCode::NotImp)
            }
            Ok(m) if m.queries().len() == 1 => m,
            Ok(_) | Err(_) => return error(id, OpCode::Query, ResponseCode::FormErr),
        };
        let question = &parsed.queries()[0];
        let qname = question.name().to_ascii();
        let qtype = question.query_type().to_string();
        let mut record = QueryRecord {
            time_ms: now_ms(),
            function: client.function.clone(),
            instance: client.instance.clone(),
            vpc_id: client.vpc_id.clone().unwrap_or_default(),
            name: qname.clone(),
            query_type: qtype,
            action: "ALLOW".to_owned(),
            rule: String::new(),
            response_code: String::new(),
            answers: Vec::new(),
        };
        let decision = match (&self.policy, &client.vpc_id) {
            (Some(p), Some(vpc)) => p.decide(vpc, &qname),
            _ => Decision::Allow { alerted_by: None },
        };
        let reply = match decision {
            Decision::Block { rule, nxdomain } => {
                record.action = "BLOCK".to_owned();
                record.rule = rule;
                blocked(&parsed, id, nxdomain)
            }
            Decision::Allow { alerted_by } => {
                if let Some(rule) = alerted_by {
                    record.action = "ALERT".to_owned();
                    record.rule = rule;
                }
                match self.forward(id, query).await {
                    // Every name the answer redirects to is inspected as the name asked
                    // was (Route 53 Resolver DNS Firewall's INSPECT_REDIRECTION_DOMAIN).
                    Some(r) => match self.blocked_redirection(client, &r) {
                        Some((rule, nxdomain)) => {
                            record.action = "BLOCK".to_owned();
                            record.rule = rule;
                            blocked(&parsed, id, nxdomain)
                        }
                        None => Some(r),
                    },
                    None => error(id, parsed.op_code(), ResponseCode::ServFail),
                }
            }
        };
        if let Some(bytes) = &reply {
            if let Ok(m) = Message::from_vec(bytes) {
                record.response_code = m.response_code().to_string();
                record.answers = m
                    .answers()
                    .iter()
                    .filter_map(|a| match a.data() {
                        RData::A(ip) => Some(ip.to_string()),
                        RData::AAAA(ip) => Some(ip.to_string()),
                        RData::CNAME(name) => Some(name.to_ascii()),
                        _ => None,
                    })
                    .collect();
            }
        }
        self.log.record(record);
        reply
    }

    /// The rule blocking a name an answer's CNAME records redirect to, if one does.
    fn blocked_redirection(&self, client: &Client, answer: &[u8]) -> Option<(String, bool)> {
        let (Some(policy), Some(vpc)) = (&self.policy, &client.vpc_id) else {
            return None;
        };
        let m = Message::from_vec(answer).ok()?;
        m.answers().iter().find_map(|a| match a.data() {
            RData::CNAME(target) => match policy.decide(vpc, &target.to_ascii()) {
                Decision::Block { rule, nxdomain } => Some((rule, nxdomain)),
                Decision::Allow { .. } => None,
            },
            _ => None,
        })
    }

    /// The first upstream answer to `query` whose id matches, or `None`.
    async fn forward(&self, id: u16, query: &[u8]) -> Option<Vec<u8>> {
        for upstream in &self.upstreams {
            let bind: SocketAddr = if upstream.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else {
                continue;
            };
            // A connected socket takes datagrams from the upstream only.
            if socket.connect(upstream).await.is_err() || socket.send(query).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; MAX_MESSAGE];
            let answered = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
                loop {
                    let n = socket.recv(&mut buf).await.ok()?;
                    if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                        return Some(buf[..n].to_vec());
                    }
                }
            })
            .await;
            if let Ok(Some(reply)) = answered {
                return Some(reply);
            }
        }
        None
    }
}

/// The answer to a blocked query: `NXDOMAIN`, or `NOERROR` without records (`NODATA`).
fn blocked(query: &Message, id: u16, nxdomain: bool) -> Option<Vec<u8>> {
    let code = if nxdomain {
        ResponseCode::NXDomain
    } else {
        ResponseCode::NoError
    };
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code)
        .add_queries(query.queries().to_vec());
    m.to_vec().ok()
}

/// An answer carrying only `code` (and the id of the query).
fn error(id: u16, op: OpCode, code: ResponseCode) -> Option<Vec<u8>> {
    Message::error_msg(id, op, code).to_vec().ok()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The nameservers of a `resolv.conf` text, on port 53.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests;

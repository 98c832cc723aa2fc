//! The network model as records shared by the nodes of a deployment (the `network`
//! namespace of `warden_postgres::records`): one record per VPC, per subnet and per
//! security group (with its rules and tags), each with the creation sequence number the
//! `Describe*` calls list in. The text forms (CIDR blocks, protocol names) are EC2's, and
//! a record that does not parse back is refused rather than guessed at.

use serde::{Deserialize, Serialize};
use warden_postgres::records::Snapshot;

use crate::error::NetworkError;
use crate::model::{IpProtocol, Peer, SecurityGroup, SgRule, Subnet, Vpc};
use crate::store::Model;

/// The namespace of the network's records.
pub(crate) const NAMESPACE: &str = "network";
pub(crate) const VPC: &str = "vpc";
pub(crate) const SUBNET: &str = "subnet";
pub(crate) const GROUP: &str = "group";

#[derive(Serialize, Deserialize)]
struct VpcRecord {
    seq: i64,
    id: String,
    cidr: String,
    is_default: bool,
    tags: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct SubnetRecord {
    seq: i64,
    id: String,
    vpc_id: String,
    cidr: String,
    availability_zone: String,
    tags: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct RuleRecord {
    id: String,
    protocol: String,
    from_port: i32,
    to_port: i32,
    /// `v4:CIDR`, `v6:CIDR` or `sg:ID`.
    peer: String,
    description: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct GroupRecord {
    seq: i64,
    id: String,
    vpc_id: String,
    name: String,
    description: String,
    egress: Vec<RuleRecord>,
    ingress: Vec<RuleRecord>,
    tags: Vec<(String, String)>,
}

fn corrupt(what: &str, id: &str) -> NetworkError {
    NetworkError::Shared {
        context: "reading the shared network model",
        message: format!("the {what} of `{id}` does not parse"),
    }
}

fn rule_record(r: &SgRule) -> RuleRecord {
    RuleRecord {
        id: r.id.clone(),
        protocol: r.protocol.as_str().to_owned(),
        from_port: r.from_port,
        to_port: r.to_port,
        peer: match &r.peer {
            Peer::V4(n) => format!("v4:{n}"),
            Peer::V6(n) => format!("v6:{n}"),
            Peer::Group(g) => format!("sg:{g}"),
        },
        description: r.description.clone(),
    }
}

fn rule(r: RuleRecord) -> Result<SgRule, NetworkError> {
    let peer = match r.peer.split_once(':') {
        Some(("v4", n)) => Peer::V4(n.parse().map_err(|_| corrupt("peer", &r.id))?),
        Some(("v6", n)) => Peer::V6(n.parse().map_err(|_| corrupt("peer", &r.id))?),
        Some(("sg", g)) => Peer::Group(g.to_owned()),
        _ => return Err(corrupt("peer", &r.id)),
    };
    Ok(SgRule {
        protocol: IpProtocol::parse(&r.protocol).map_err(|_| corrupt("protocol", &r.id))?,
        id: r.id,
        from_port: r.from_port,
        to_port: r.to_port,
        peer,
        description: r.description,
    })
}

fn text<T: Serialize>(record: &T) -> Result<String, NetworkError> {
    serde_json::to_string(record).map_err(|e| NetworkError::Shared {
        context: "writing the shared network model",
        message: e.to_string(),
    })
}

/// A VPC's record.
pub(crate) fn vpc_text(seq: i64, v: &Vpc) -> Result<String, NetworkError> {
    text(&VpcRecord {
        seq,
        id: v.id.clone(),
        cidr: v.cidr.to_string(),
        is_default: v.is_default,
        tags: v.tags.clone(),
    })
}

/// A subnet's record.
pub(crate) fn subnet_text(seq: i64, s: &Subnet) -> Result<String, NetworkError> {
    text(&SubnetRecord {
        seq,
        id: s.id.clone(),
        vpc_id: s.vpc_id.clone(),
        cidr: s.cidr.to_string(),
        availability_zone: s.availability_zone.clone(),
        tags: s.tags.clone(),
    })
}

/// A security group's record, its rules and tags in it.
pub(crate) fn group_text(seq: i64, g: &SecurityGroup) -> Result<String, NetworkError> {
    text(&GroupRecord {
        seq,
        id: g.id.clone(),
        vpc_id: g.vpc_id.clone(),
        name: g.name.clone(),
        description: g.description.clone(),
        egress: g.egress.iter().map(rule_record).collect(),
        ingress: g.ingress.iter().map(rule_record).collect(),
        tags: g.tags.clone(),
    })
}

/// The model the records of one snapshot make up.
pub(crate) fn model(snapshot: &Snapshot) -> Result<Model, NetworkError> {
    let mut model = Model::default();
    let mut max_seq = 0;
    for r in &snapshot.records {
        let parse_err = || corrupt("record", &r.id);
        match r.kind.as_str() {
            VPC => {
                let v: VpcRecord = serde_json::from_str(&r.text).map_err(|_| parse_err())?;
                max_seq = max_seq.max(v.seq);
                let vpc = Vpc {
                    cidr: v.cidr.parse().map_err(|_| corrupt("CIDR block", &v.id))?,
                    id: v.id,
                    is_default: v.is_default,
                    tags: v.tags,
                };
                model.vpcs.insert(vpc.id.clone(), (v.seq, vpc));
            }
            SUBNET => {
                let s: SubnetRecord = serde_json::from_str(&r.text).map_err(|_| parse_err())?;
                max_seq = max_seq.max(s.seq);
                let subnet = Subnet {
                    cidr: s.cidr.parse().map_err(|_| corrupt("CIDR block", &s.id))?,
                    id: s.id,
                    vpc_id: s.vpc_id,
                    availability_zone: s.availability_zone,
                    tags: s.tags,
                };
                model.subnets.insert(subnet.id.clone(), (s.seq, subnet));
            }
            GROUP => {
                let g: GroupRecord = serde_json::from_str(&r.text).map_err(|_| parse_err())?;
                max_seq = max_seq.max(g.seq);
                let group = SecurityGroup {
                    id: g.id,
                    vpc_id: g.vpc_id,
                    name: g.name,
                    description: g.description,
                    egress: g.egress.into_iter().map(rule).collect::<Result<_, _>>()?,
                    ingress: g.ingress.into_iter().map(rule).collect::<Result<_, _>>()?,
                    tags: g.tags,
                };
                model.groups.insert(group.id.clone(), (g.seq, group));
            }
            // A kind a newer build added: not this build's to read.
            _ => {}
        }
    }
    model.next_seq = max_seq + 1;
    Ok(model)
}

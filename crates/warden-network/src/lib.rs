//! Warden's EC2 network model: VPCs, their subnets, and security groups with their
//! ingress and egress rules and tags, checked as EC2 checks them (CIDR blocks `/16` to
//! `/28`, subnets inside their VPC and apart from each other, a `default` group in every
//! VPC, duplicate and missing rules, dependencies on delete) and bounded
//! ([`MAX_VPCS`], [`MAX_SUBNETS`], [`MAX_SECURITY_GROUPS`], [`MAX_RULES_PER_DIRECTION`],
//! [`MAX_TAGS`]).
//!
//! Everything lives in `DATA_DIR/network.db` (SQLite, WAL, `synchronous=FULL`: every
//! acknowledged change is on disk), or for nodes sharing a PostgreSQL store in its
//! `network` namespace of shared records, read into memory at open; reads are served from
//! memory, and [`Network::subscribe`] tells of every committed change, this node's or
//! (after [`Network::refresh`]) another's. Who may call what
//! is the API's decision; which traffic an instance may send is the enforcement's, from
//! the groups read here.
#![forbid(unsafe_code)]

mod error;
mod flowlogs;
mod model;
mod service;
mod shared;
mod store;

pub use error::NetworkError;
pub use flowlogs::{FlowLog, FlowLogs, TrafficType, MAX_FLOW_LOGS};
pub use model::{
    availability_zone, block_cidr, check_group_description, check_group_id, check_group_name,
    check_rule_id, check_subnet_id, check_tag, check_tags, check_vpc_id, is_well_formed,
    parse_ipv4_cidr, parse_ipv6_cidr, rule_ipv4, rule_ipv6, Direction, IpProtocol, Peer,
    ResourceKind, RuleSpec, SecurityGroup, SgRule, Subnet, TagDescription, Vpc,
    DEFAULT_GROUP_DESCRIPTION, DEFAULT_GROUP_NAME, MAX_PREFIX, MAX_RULES_PER_DIRECTION,
    MAX_SECURITY_GROUPS, MAX_SUBNETS, MAX_TAGS, MAX_VPCS, MIN_PREFIX,
};
pub use service::Network;

#[cfg(test)]
mod tests;

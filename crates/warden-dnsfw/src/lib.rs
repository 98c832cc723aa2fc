//! Warden's Route 53 Resolver DNS Firewall: domain lists, rule groups of rules that
//! `ALLOW`, `BLOCK` or `ALERT` on the names of a list, and the associations of rule groups
//! with VPCs, validated as the service validates them and bounded ([`MAX_DOMAIN_LISTS`],
//! [`MAX_DOMAINS`], [`MAX_RULE_GROUPS`], [`MAX_RULES_PER_GROUP`],
//! [`MAX_ASSOCIATIONS_PER_VPC`], [`MAX_ASSOCIATIONS`]).
//!
//! Everything lives in `DATA_DIR/dnsfw.db` (SQLite, WAL, `synchronous=FULL`: every
//! acknowledged change is on disk), read into memory once at open. [`DnsFirewall::verdict`]
//! decides one DNS query of an instance attached to a VPC from an in-memory index rebuilt
//! after every change, without touching the store. Who may call what is the API's
//! decision; answering a blocked query is the resolver's.
//!
//! Domains match as the service matches them, ignoring case and a trailing dot:
//! `example.com` matches that name only, `*.example.com` any name below it (not
//! `example.com` itself), and `*` every name.
#![forbid(unsafe_code)]

mod error;
mod model;
mod service;
mod store;

pub use error::DnsFirewallError;
pub use model::{
    check_association_priority, check_creator_request_id, check_domain, check_name,
    check_rule_priority, check_tags, check_vpc_id, Action, Association, BlockResponse, DomainList,
    DomainUpdate, Redirection, Rule, RuleGroup, MAX_ASSOCIATIONS, MAX_ASSOCIATIONS_PER_VPC,
    MAX_ASSOCIATION_PRIORITY, MAX_DOMAINS, MAX_DOMAINS_PER_UPDATE, MAX_DOMAIN_LISTS,
    MAX_RULES_PER_GROUP, MAX_RULE_GROUPS, MAX_TAGS, MIN_ASSOCIATION_PRIORITY,
};
pub use service::{
    AssociationChange, DnsFirewall, NewAssociation, NewDomainList, NewRule, NewRuleGroup,
    RuleChange, Verdict,
};

#[cfg(test)]
mod tests;

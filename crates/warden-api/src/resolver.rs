//! Route 53 Resolver's JSON 1.1 API (`X-Amz-Target: Route53Resolver.*`), the DNS Firewall
//! subset, over `warden_dnsfw::DnsFirewall`: domain lists and their domains, rule groups,
//! their rules, their associations with VPCs, and the tags of all three.
//!
//! Who may call what: every operation is authorized with its IAM action
//! (`route53resolver:CreateFirewallRule`) by the caller's identity policies, on the ARN of
//! the resource it names (`...:firewall-domain-list/ID`, `...:firewall-rule-group/ID`,
//! `...:firewall-rule-group-association/ID`; a rule's operations on its group's ARN and
//! on its domain list's), whether or not that resource exists, so that a caller without
//! permission learns nothing of it; the tag operations on the ARN they name; operations
//! that create a domain list or a rule group, or list without naming a resource, on `*`.
//!
//! What each can change: DNS Firewall's resources, and so which names the functions
//! attached to a VPC may resolve; nothing else. Every member an operation's model defines
//! is read or refused by name (`ValidationException`): Warden has no DNS Firewall Advanced
//! rules (`DnsThreatProtection`, `FirewallRuleType`, ...), no per-query-type rules
//! (`Qtype`), and does not answer blocked queries with records of its own
//! (`BlockResponse` `OVERRIDE`); unknown members are refused too.

use http::StatusCode;
use serde_json::{json, Value};
use warden_dnsfw::{
    Action, Association, AssociationChange, DnsFirewallError, DomainList, DomainUpdate,
    NewAssociation, NewDomainList, NewRule, NewRuleGroup, Redirection, Rule, RuleChange, RuleGroup,
};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{json_op_sync, JsonOperation, JsonService};
use crate::error::JsonVersion;
use crate::kms::{reply, Input};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// Route 53 Resolver (`route53resolver`), its DNS Firewall operations.
pub static ROUTE53_RESOLVER: JsonService = JsonService {
    signing_name: "route53resolver",
    target_prefix: "Route53Resolver",
    version: JsonVersion::V1_1,
    operations: OPERATIONS,
    max_body: crate::doors::DEFAULT_BODY_LIMIT,
};

const OPERATIONS: &[JsonOperation] = &[
    json_op_sync!(
        "CreateFirewallDomainList",
        any_target,
        create_firewall_domain_list
    ),
    json_op_sync!(
        "UpdateFirewallDomains",
        list_target,
        update_firewall_domains
    ),
    json_op_sync!("ListFirewallDomains", list_target, list_firewall_domains),
    json_op_sync!(
        "GetFirewallDomainList",
        list_target,
        get_firewall_domain_list
    ),
    json_op_sync!(
        "ListFirewallDomainLists",
        any_target,
        list_firewall_domain_lists
    ),
    json_op_sync!(
        "DeleteFirewallDomainList",
        list_target,
        delete_firewall_domain_list
    ),
    json_op_sync!(
        "CreateFirewallRuleGroup",
        any_target,
        create_firewall_rule_group
    ),
    json_op_sync!(
        "GetFirewallRuleGroup",
        group_target,
        get_firewall_rule_group
    ),
    json_op_sync!(
        "ListFirewallRuleGroups",
        any_target,
        list_firewall_rule_groups
    ),
    json_op_sync!(
        "DeleteFirewallRuleGroup",
        group_target,
        delete_firewall_rule_group
    ),
    json_op_sync!("CreateFirewallRule", rule_targets, create_firewall_rule),
    json_op_sync!("UpdateFirewallRule", rule_targets, update_firewall_rule),
    json_op_sync!("DeleteFirewallRule", rule_targets, delete_firewall_rule),
    json_op_sync!("ListFirewallRules", group_target, list_firewall_rules),
    json_op_sync!(
        "AssociateFirewallRuleGroup",
        group_target,
        associate_firewall_rule_group
    ),
    json_op_sync!(
        "UpdateFirewallRuleGroupAssociation",
        association_target,
        update_firewall_rule_group_association
    ),
    json_op_sync!(
        "DisassociateFirewallRuleGroup",
        association_target,
        disassociate_firewall_rule_group
    ),
    json_op_sync!(
        "ListFirewallRuleGroupAssociations",
        any_target,
        list_firewall_rule_group_associations
    ),
    json_op_sync!(
        "GetFirewallRuleGroupAssociation",
        association_target,
        get_firewall_rule_group_association
    ),
    json_op_sync!("TagResource", arn_target, tag_resource),
    json_op_sync!("UntagResource", arn_target, untag_resource),
    json_op_sync!("ListTagsForResource", arn_target, list_tags_for_resource),
];

// ---- errors ----

/// A DNS Firewall error as the caller sees it (internal failures logged, reported without
/// detail).
fn error(e: DnsFirewallError) -> ApiError {
    if e.is_internal() {
        let mut err = ApiError::internal(&e);
        err.code = "InternalServiceErrorException";
        return err;
    }
    ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
}

/// Refuses, by name, each member Warden's DNS Firewall defines no behaviour for.
fn unsupported(input: &Input<'_>, members: &[&str], why: &str) -> Result<(), ApiError> {
    match members.iter().find(|m| input.get(m).is_some()) {
        Some(m) => Err(validation(format!(
            "{m} is not supported by Warden's DNS Firewall: {why}"
        ))),
        None => Ok(()),
    }
}

/// The members of DNS Firewall Advanced and of per-query-type rules.
const ADVANCED: &[&str] = &[
    "FirewallThreatProtectionId",
    "DnsThreatProtection",
    "ConfidenceThreshold",
    "FirewallRuleType",
];
const ADVANCED_WHY: &str =
    "Warden has no DNS Firewall Advanced rules; a rule matches the names of a domain list";
const QTYPE_WHY: &str = "a rule applies to queries of every type";
const OVERRIDE: &[&str] = &[
    "BlockOverrideDomain",
    "BlockOverrideDnsType",
    "BlockOverrideTtl",
];
const OVERRIDE_WHY: &str =
    "blocked queries are answered NXDOMAIN or NODATA, never with a record of Warden's";

// ---- input ----

/// A `ResourceId` member: 1 to 64 characters.
fn resource_id<'a>(input: &Input<'a>, name: &str) -> Result<&'a str, ApiError> {
    let id = input.required(name)?;
    check_resource_id(name, id)?;
    Ok(id)
}

fn check_resource_id(name: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > 64 {
        return Err(validation(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length between 1 and 64",
            lower_first(name)
        )));
    }
    Ok(())
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// A required integer member.
fn required_integer(input: &Input<'_>, name: &str) -> Result<i64, ApiError> {
    input.integer(name)?.ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(name)
        ))
    })
}

/// `Tags`: a list of `{"Key", "Value"}`.
fn tags(input: &Input<'_>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(v) = input.get("Tags") else {
        return Ok(Vec::new());
    };
    let items = v
        .as_array()
        .ok_or_else(|| ApiError::serialization("Tags must be a list"))?;
    items
        .iter()
        .map(|t| {
            let obj = t
                .as_object()
                .ok_or_else(|| ApiError::serialization("each tag must be an object"))?;
            if let Some(other) = obj.keys().find(|k| *k != "Key" && *k != "Value") {
                return Err(validation(format!(
                    "`{}` is not a member of Tag",
                    other.chars().take(64).collect::<String>()
                )));
            }
            match (
                obj.get("Key").and_then(Value::as_str),
                obj.get("Value").and_then(Value::as_str),
            ) {
                (Some(k), Some(v)) => Ok((k.to_owned(), v.to_owned())),
                _ => Err(validation("each tag needs a Key and a Value")),
            }
        })
        .collect()
}

/// `MaxResults` (1 to `most`, default 100) and `NextToken` (the index of the page's
/// first item, as text).
fn page(input: &Input<'_>, most: i64) -> Result<(usize, usize), ApiError> {
    let max = match input.integer("MaxResults")? {
        None => 100,
        Some(n) if (1..=most).contains(&n) => n as usize,
        Some(n) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and {most}"
            )))
        }
    };
    let start = match input.string("NextToken")? {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| validation("The NextToken value is invalid."))?,
    };
    Ok((start, max))
}

/// One page of `items` and the token of the next, if any.
fn paginate<T>(items: Vec<T>, start: usize, max: usize) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let next = start.saturating_add(max);
    let token = (next < total).then(|| next.to_string());
    (page, token)
}

fn with_token(mut out: Value, token: Option<String>) -> Value {
    if let Some(t) = token {
        out["NextToken"] = json!(t);
    }
    out
}

// ---- targets ----

fn target(operation: &str, resource: String) -> Target {
    Target {
        action: format!("route53resolver:{operation}"),
        resource,
        ..Target::default()
    }
}

/// A member naming a resource, for authorization (checked as the handler will).
fn named<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    let id = body.get(name).and_then(Value::as_str).ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(name)
        ))
    })?;
    check_resource_id(name, id)?;
    Ok(id)
}

fn any_target(
    _state: &ApiState,
    operation: &str,
    _body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(vec![target(operation, "*".into())])
}

fn list_target(
    state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let id = named(body, "FirewallDomainListId")?;
    Ok(vec![target(
        operation,
        state.dns_firewall.domain_list_arn(id),
    )])
}

fn group_target(
    state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let id = named(body, "FirewallRuleGroupId")?;
    Ok(vec![target(
        operation,
        state.dns_firewall.rule_group_arn(id),
    )])
}

/// A rule's operations: on its group, and on its domain list when the request names one.
fn rule_targets(
    state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let group = named(body, "FirewallRuleGroupId")?;
    let mut targets = vec![target(operation, state.dns_firewall.rule_group_arn(group))];
    if body
        .get("FirewallDomainListId")
        .is_some_and(|v| !v.is_null())
    {
        let list = named(body, "FirewallDomainListId")?;
        targets.push(target(operation, state.dns_firewall.domain_list_arn(list)));
    }
    Ok(targets)
}

fn association_target(
    state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let id = named(body, "FirewallRuleGroupAssociationId")?;
    Ok(vec![target(
        operation,
        state.dns_firewall.association_arn(id),
    )])
}

/// The tag operations: on the ARN the request names.
fn arn_target(
    _state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let arn = body
        .get("ResourceArn")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            validation(
                "1 validation error detected: Value null at 'resourceArn' failed to satisfy constraint: Member must not be null",
            )
        })?;
    check_arn(arn)?;
    Ok(vec![target(operation, arn.to_owned())])
}

/// An `Arn` member: 1 to 255 characters.
fn check_arn(arn: &str) -> Result<(), ApiError> {
    if arn.is_empty() || arn.chars().count() > 255 {
        return Err(validation(
            "1 validation error detected: Value at 'resourceArn' failed to satisfy constraint: Member must have length between 1 and 255",
        ));
    }
    Ok(())
}

// ---- output ----

fn time(ms: i64) -> Value {
    json!(warden_types::iso_timestamp(ms))
}

fn domain_list_json(l: &DomainList, status: &str, message: &str) -> Value {
    json!({
        "Id": l.id,
        "Arn": l.arn,
        "Name": l.name,
        "DomainCount": l.domain_count,
        "Status": status,
        "StatusMessage": message,
        "CreatorRequestId": l.creator_request_id,
        "CreationTime": time(l.created_ms),
        "ModificationTime": time(l.modified_ms),
    })
}

fn domain_list_status(l: &DomainList) -> &'static str {
    if l.modified_ms == l.created_ms {
        "Created Firewall Domain List"
    } else {
        "Finished domain list update"
    }
}

fn rule_group_json(state: &ApiState, g: &RuleGroup, status: &str, message: &str) -> Value {
    json!({
        "Id": g.id,
        "Arn": g.arn,
        "Name": g.name,
        "RuleCount": g.rule_count,
        "Status": status,
        "StatusMessage": message,
        "OwnerId": state.dns_firewall.account(),
        "CreatorRequestId": g.creator_request_id,
        "ShareStatus": "NOT_SHARED",
        "CreationTime": time(g.created_ms),
        "ModificationTime": time(g.modified_ms),
    })
}

fn rule_json(r: &Rule) -> Value {
    let mut out = json!({
        "FirewallRuleGroupId": r.group_id,
        "FirewallDomainListId": r.domain_list_id,
        "Name": r.name,
        "Priority": r.priority,
        "Action": r.action.as_str(),
        "CreatorRequestId": r.creator_request_id,
        "CreationTime": time(r.created_ms),
        "ModificationTime": time(r.modified_ms),
        "FirewallDomainRedirectionAction": r.redirection.as_str(),
    });
    if let Some(response) = r.action.block_response() {
        out["BlockResponse"] = json!(response.as_str());
    }
    out
}

fn association_json(a: &Association, status: &str, message: &str) -> Value {
    json!({
        "Id": a.id,
        "Arn": a.arn,
        "FirewallRuleGroupId": a.group_id,
        "VpcId": a.vpc_id,
        "Name": a.name,
        "Priority": a.priority,
        "MutationProtection": if a.mutation_protection { "ENABLED" } else { "DISABLED" },
        "Status": status,
        "StatusMessage": message,
        "CreatorRequestId": a.creator_request_id,
        "CreationTime": time(a.created_ms),
        "ModificationTime": time(a.modified_ms),
    })
}

const COMPLETE: &str = "COMPLETE";
const DELETING: &str = "DELETING";

/// `MutationProtection`: `ENABLED` or `DISABLED`.
fn mutation_protection(input: &Input<'_>) -> Result<Option<bool>, ApiError> {
    match input.string("MutationProtection")? {
        None => Ok(None),
        Some("ENABLED") => Ok(Some(true)),
        Some("DISABLED") => Ok(Some(false)),
        Some(other) => Err(validation(format!(
            "1 validation error detected: Value '{}' at 'mutationProtection' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

// ---- domain lists ----

fn create_firewall_domain_list(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "CreateFirewallDomainList",
        &body,
        &["CreatorRequestId", "Name", "Tags"],
    )?;
    let list = state
        .dns_firewall
        .create_domain_list(NewDomainList {
            creator_request_id: input.required("CreatorRequestId")?.to_owned(),
            name: input.required("Name")?.to_owned(),
            tags: tags(&input)?,
        })
        .map_err(error)?;
    reply(&json!({
        "FirewallDomainList": domain_list_json(&list, COMPLETE, domain_list_status(&list)),
    }))
}

fn update_firewall_domains(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "UpdateFirewallDomains",
        &body,
        &["FirewallDomainListId", "Operation", "Domains"],
    )?;
    let id = resource_id(&input, "FirewallDomainListId")?;
    let operation = DomainUpdate::parse(input.required("Operation")?).map_err(error)?;
    if input.get("Domains").is_none() {
        return Err(validation(
            "1 validation error detected: Value null at 'domains' failed to satisfy constraint: Member must not be null",
        ));
    }
    let domains = input.strings("Domains")?;
    let list = state
        .dns_firewall
        .update_domains(id, operation, &domains)
        .map_err(error)?;
    reply(&json!({
        "Id": list.id,
        "Name": list.name,
        "Status": COMPLETE,
        "StatusMessage": "Finished domain list update",
    }))
}

fn list_firewall_domains(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListFirewallDomains",
        &body,
        &["FirewallDomainListId", "MaxResults", "NextToken"],
    )?;
    let id = resource_id(&input, "FirewallDomainListId")?;
    let (start, max) = page(&input, 5000)?;
    let domains = state.dns_firewall.domains(id).map_err(error)?;
    let (domains, token) = paginate(domains, start, max);
    reply(&with_token(json!({ "Domains": domains }), token))
}

fn get_firewall_domain_list(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("GetFirewallDomainList", &body, &["FirewallDomainListId"])?;
    let list = state
        .dns_firewall
        .domain_list(resource_id(&input, "FirewallDomainListId")?)
        .map_err(error)?;
    reply(&json!({
        "FirewallDomainList": domain_list_json(&list, COMPLETE, domain_list_status(&list)),
    }))
}

fn list_firewall_domain_lists(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListFirewallDomainLists",
        &body,
        &["MaxResults", "NextToken"],
    )?;
    let (start, max) = page(&input, 100)?;
    let (lists, token) = paginate(state.dns_firewall.domain_lists(), start, max);
    let lists: Vec<Value> = lists
        .iter()
        .map(|l| {
            json!({
                "Id": l.id,
                "Arn": l.arn,
                "Name": l.name,
                "CreatorRequestId": l.creator_request_id,
                "Status": COMPLETE,
            })
        })
        .collect();
    reply(&with_token(json!({ "FirewallDomainLists": lists }), token))
}

fn delete_firewall_domain_list(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("DeleteFirewallDomainList", &body, &["FirewallDomainListId"])?;
    let list = state
        .dns_firewall
        .delete_domain_list(resource_id(&input, "FirewallDomainListId")?)
        .map_err(error)?;
    reply(&json!({
        "FirewallDomainList": domain_list_json(&list, DELETING, "Deleting the Firewall Domain List"),
    }))
}

// ---- rule groups ----

fn create_firewall_rule_group(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "CreateFirewallRuleGroup",
        &body,
        &["CreatorRequestId", "Name", "Tags"],
    )?;
    let group = state
        .dns_firewall
        .create_rule_group(NewRuleGroup {
            creator_request_id: input.required("CreatorRequestId")?.to_owned(),
            name: input.required("Name")?.to_owned(),
            tags: tags(&input)?,
        })
        .map_err(error)?;
    reply(&json!({
        "FirewallRuleGroup": rule_group_json(state, &group, COMPLETE, "Created Firewall Rule Group"),
    }))
}

fn get_firewall_rule_group(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("GetFirewallRuleGroup", &body, &["FirewallRuleGroupId"])?;
    let group = state
        .dns_firewall
        .rule_group(resource_id(&input, "FirewallRuleGroupId")?)
        .map_err(error)?;
    let message = if group.modified_ms == group.created_ms {
        "Created Firewall Rule Group"
    } else {
        "Finished rule group update"
    };
    reply(&json!({
        "FirewallRuleGroup": rule_group_json(state, &group, COMPLETE, message),
    }))
}

fn list_firewall_rule_groups(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListFirewallRuleGroups",
        &body,
        &["MaxResults", "NextToken"],
    )?;
    let (start, max) = page(&input, 100)?;
    let (groups, token) = paginate(state.dns_firewall.rule_groups(), start, max);
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| {
            json!({
                "Id": g.id,
                "Arn": g.arn,
                "Name": g.name,
                "OwnerId": state.dns_firewall.account(),
                "CreatorRequestId": g.creator_request_id,
                "ShareStatus": "NOT_SHARED",
            })
        })
        .collect();
    reply(&with_token(json!({ "FirewallRuleGroups": groups }), token))
}

fn delete_firewall_rule_group(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("DeleteFirewallRuleGroup", &body, &["FirewallRuleGroupId"])?;
    let group = state
        .dns_firewall
        .delete_rule_group(resource_id(&input, "FirewallRuleGroupId")?)
        .map_err(error)?;
    reply(&json!({
        "FirewallRuleGroup": rule_group_json(state, &group, DELETING, "Deleting the Firewall Rule Group"),
    }))
}

// ---- rules ----

/// `FirewallDomainRedirectionAction`: Warden's resolver inspects every name of a CNAME
/// chain, so only `INSPECT_REDIRECTION_DOMAIN` (the default) is honoured; trusting the
/// redirection targets is refused by name rather than ignored.
fn redirection(input: &Input<'_>) -> Result<Option<Redirection>, ApiError> {
    let parsed = input
        .string("FirewallDomainRedirectionAction")?
        .map(Redirection::parse)
        .transpose()
        .map_err(error)?;
    if parsed == Some(Redirection::Trust) {
        return Err(validation(
            "FirewallDomainRedirectionAction TRUST_REDIRECTION_DOMAIN is not supported by Warden: its resolver inspects every name of a CNAME chain (INSPECT_REDIRECTION_DOMAIN)",
        ));
    }
    Ok(parsed)
}

fn create_firewall_rule(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "CreateFirewallRule",
        &body,
        &[
            "CreatorRequestId",
            "FirewallRuleGroupId",
            "FirewallDomainListId",
            "Priority",
            "Action",
            "BlockResponse",
            "BlockOverrideDomain",
            "BlockOverrideDnsType",
            "BlockOverrideTtl",
            "Name",
            "FirewallDomainRedirectionAction",
            "Qtype",
            "DnsThreatProtection",
            "ConfidenceThreshold",
            "FirewallRuleType",
        ],
    )?;
    unsupported(&input, ADVANCED, ADVANCED_WHY)?;
    unsupported(&input, &["Qtype"], QTYPE_WHY)?;
    let action =
        Action::parse(input.required("Action")?, input.string("BlockResponse")?).map_err(error)?;
    unsupported(&input, OVERRIDE, OVERRIDE_WHY)?;
    let rule = state
        .dns_firewall
        .create_rule(NewRule {
            creator_request_id: input.required("CreatorRequestId")?.to_owned(),
            group_id: resource_id(&input, "FirewallRuleGroupId")?.to_owned(),
            domain_list_id: resource_id(&input, "FirewallDomainListId")?.to_owned(),
            priority: required_integer(&input, "Priority")?,
            action,
            redirection: redirection(&input)?.unwrap_or_default(),
            name: input.required("Name")?.to_owned(),
        })
        .map_err(error)?;
    reply(&json!({ "FirewallRule": rule_json(&rule) }))
}

fn update_firewall_rule(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "UpdateFirewallRule",
        &body,
        &[
            "FirewallRuleGroupId",
            "FirewallDomainListId",
            "FirewallThreatProtectionId",
            "Priority",
            "Action",
            "BlockResponse",
            "BlockOverrideDomain",
            "BlockOverrideDnsType",
            "BlockOverrideTtl",
            "Name",
            "FirewallDomainRedirectionAction",
            "Qtype",
            "DnsThreatProtection",
            "ConfidenceThreshold",
            "FirewallRuleType",
        ],
    )?;
    unsupported(&input, ADVANCED, ADVANCED_WHY)?;
    unsupported(&input, &["Qtype"], QTYPE_WHY)?;
    if input.string("BlockResponse")? == Some("OVERRIDE") {
        return Err(error(DnsFirewallError::Validation(
            "BlockResponse OVERRIDE is not supported by Warden's DNS Firewall; use NXDOMAIN or NODATA".into(),
        )));
    }
    unsupported(&input, OVERRIDE, OVERRIDE_WHY)?;
    let rule = state
        .dns_firewall
        .update_rule(
            resource_id(&input, "FirewallRuleGroupId")?,
            resource_id(&input, "FirewallDomainListId")?,
            RuleChange {
                priority: input.integer("Priority")?,
                action: input.string("Action")?.map(str::to_owned),
                block_response: input.string("BlockResponse")?.map(str::to_owned),
                name: input.string("Name")?.map(str::to_owned),
                redirection: redirection(&input)?,
            },
        )
        .map_err(error)?;
    reply(&json!({ "FirewallRule": rule_json(&rule) }))
}

fn delete_firewall_rule(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "DeleteFirewallRule",
        &body,
        &[
            "FirewallRuleGroupId",
            "FirewallDomainListId",
            "FirewallThreatProtectionId",
            "Qtype",
        ],
    )?;
    unsupported(&input, &["FirewallThreatProtectionId"], ADVANCED_WHY)?;
    unsupported(&input, &["Qtype"], QTYPE_WHY)?;
    let rule = state
        .dns_firewall
        .delete_rule(
            resource_id(&input, "FirewallRuleGroupId")?,
            resource_id(&input, "FirewallDomainListId")?,
        )
        .map_err(error)?;
    reply(&json!({ "FirewallRule": rule_json(&rule) }))
}

fn list_firewall_rules(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListFirewallRules",
        &body,
        &[
            "FirewallRuleGroupId",
            "Priority",
            "Action",
            "MaxResults",
            "NextToken",
        ],
    )?;
    let group = resource_id(&input, "FirewallRuleGroupId")?;
    let priority = input.integer("Priority")?;
    let action = input.string("Action")?;
    if let Some(a) = action {
        if !matches!(a, "ALLOW" | "BLOCK" | "ALERT") {
            return Err(validation(format!(
                "1 validation error detected: Value '{}' at 'action' failed to satisfy constraint: Member must satisfy enum value set: [ALLOW, BLOCK, ALERT]",
                a.chars().take(64).collect::<String>()
            )));
        }
    }
    let (start, max) = page(&input, 100)?;
    let rules: Vec<Rule> = state
        .dns_firewall
        .rules(group)
        .map_err(error)?
        .into_iter()
        .filter(|r| priority.is_none_or(|p| r.priority == p))
        .filter(|r| action.is_none_or(|a| r.action.as_str() == a))
        .collect();
    let (rules, token) = paginate(rules, start, max);
    let rules: Vec<Value> = rules.iter().map(rule_json).collect();
    reply(&with_token(json!({ "FirewallRules": rules }), token))
}

// ---- associations ----

fn associate_firewall_rule_group(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "AssociateFirewallRuleGroup",
        &body,
        &[
            "CreatorRequestId",
            "FirewallRuleGroupId",
            "VpcId",
            "Priority",
            "Name",
            "MutationProtection",
            "Tags",
        ],
    )?;
    let association = state
        .dns_firewall
        .associate(NewAssociation {
            creator_request_id: input.required("CreatorRequestId")?.to_owned(),
            group_id: resource_id(&input, "FirewallRuleGroupId")?.to_owned(),
            vpc_id: resource_id(&input, "VpcId")?.to_owned(),
            priority: required_integer(&input, "Priority")?,
            name: input.required("Name")?.to_owned(),
            mutation_protection: mutation_protection(&input)?.unwrap_or(false),
            tags: tags(&input)?,
        })
        .map_err(error)?;
    reply(&json!({
        "FirewallRuleGroupAssociation": association_json(
            &association,
            COMPLETE,
            "Finished rule group association update",
        ),
    }))
}

fn update_firewall_rule_group_association(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "UpdateFirewallRuleGroupAssociation",
        &body,
        &[
            "FirewallRuleGroupAssociationId",
            "Priority",
            "MutationProtection",
            "Name",
        ],
    )?;
    let association = state
        .dns_firewall
        .update_association(
            resource_id(&input, "FirewallRuleGroupAssociationId")?,
            AssociationChange {
                priority: input.integer("Priority")?,
                name: input.string("Name")?.map(str::to_owned),
                mutation_protection: mutation_protection(&input)?,
            },
        )
        .map_err(error)?;
    reply(&json!({
        "FirewallRuleGroupAssociation": association_json(
            &association,
            COMPLETE,
            "Finished rule group association update",
        ),
    }))
}

fn disassociate_firewall_rule_group(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "DisassociateFirewallRuleGroup",
        &body,
        &["FirewallRuleGroupAssociationId"],
    )?;
    let association = state
        .dns_firewall
        .disassociate(resource_id(&input, "FirewallRuleGroupAssociationId")?)
        .map_err(error)?;
    reply(&json!({
        "FirewallRuleGroupAssociation": association_json(
            &association,
            DELETING,
            "Deleting the Firewall Rule Group Association",
        ),
    }))
}

fn list_firewall_rule_group_associations(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListFirewallRuleGroupAssociations",
        &body,
        &[
            "FirewallRuleGroupId",
            "VpcId",
            "Priority",
            "Status",
            "MaxResults",
            "NextToken",
        ],
    )?;
    let group = input.string("FirewallRuleGroupId")?;
    let vpc = input.string("VpcId")?;
    let priority = input.integer("Priority")?;
    // Every association Warden holds is complete: a change is whole when it is answered.
    let complete = match input.string("Status")? {
        None | Some("COMPLETE") => true,
        Some("DELETING" | "UPDATING") => false,
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [COMPLETE, DELETING, UPDATING]",
                other.chars().take(64).collect::<String>()
            )))
        }
    };
    let (start, max) = page(&input, 100)?;
    let associations: Vec<Association> = state
        .dns_firewall
        .associations()
        .into_iter()
        .filter(|_| complete)
        .filter(|a| group.is_none_or(|g| a.group_id == g))
        .filter(|a| vpc.is_none_or(|v| a.vpc_id == v))
        .filter(|a| priority.is_none_or(|p| a.priority == p))
        .collect();
    let (associations, token) = paginate(associations, start, max);
    let associations: Vec<Value> = associations
        .iter()
        .map(|a| association_json(a, COMPLETE, "Finished rule group association update"))
        .collect();
    reply(&with_token(
        json!({ "FirewallRuleGroupAssociations": associations }),
        token,
    ))
}

fn get_firewall_rule_group_association(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "GetFirewallRuleGroupAssociation",
        &body,
        &["FirewallRuleGroupAssociationId"],
    )?;
    let association = state
        .dns_firewall
        .association(resource_id(&input, "FirewallRuleGroupAssociationId")?)
        .map_err(error)?;
    reply(&json!({
        "FirewallRuleGroupAssociation": association_json(
            &association,
            COMPLETE,
            "Finished rule group association update",
        ),
    }))
}

// ---- tags ----

/// A tag operation's error: a tag outside its limits is `InvalidTagException` to
/// `TagResource` and `InvalidParameterException` to the others, as the model names them.
fn tag_error(code: &'static str) -> impl Fn(DnsFirewallError) -> ApiError {
    move |e| match e {
        DnsFirewallError::Validation(message) => {
            ApiError::new(StatusCode::BAD_REQUEST, code, message)
        }
        other => error(other),
    }
}

fn tag_resource(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("TagResource", &body, &["ResourceArn", "Tags"])?;
    let arn = input.required("ResourceArn")?;
    check_arn(arn)?;
    if input.get("Tags").is_none() {
        return Err(validation(
            "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null",
        ));
    }
    state
        .dns_firewall
        .tag_resource(arn, &tags(&input)?)
        .map_err(tag_error("InvalidTagException"))?;
    reply(&json!({}))
}

fn untag_resource(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("UntagResource", &body, &["ResourceArn", "TagKeys"])?;
    let arn = input.required("ResourceArn")?;
    check_arn(arn)?;
    if input.get("TagKeys").is_none() {
        return Err(validation(
            "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null",
        ));
    }
    state
        .dns_firewall
        .untag_resource(arn, &input.strings("TagKeys")?)
        .map_err(tag_error("InvalidParameterException"))?;
    reply(&json!({}))
}

fn list_tags_for_resource(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListTagsForResource",
        &body,
        &["ResourceArn", "MaxResults", "NextToken"],
    )?;
    let arn = input.required("ResourceArn")?;
    check_arn(arn)?;
    let (start, max) = page(&input, 100)?;
    let tags = state
        .dns_firewall
        .tags(arn)
        .map_err(tag_error("InvalidParameterException"))?;
    let (tags, token) = paginate(tags, start, max);
    let tags: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    reply(&with_token(json!({ "Tags": tags }), token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_served_once() {
        let mut names: Vec<&str> = OPERATIONS.iter().map(|o| o.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(ROUTE53_RESOLVER.signing_name, "route53resolver");
        assert_eq!(ROUTE53_RESOLVER.target_prefix, "Route53Resolver");
    }

    #[test]
    fn pages_carry_the_index_of_the_next_item() {
        let (page, token) = paginate((0..5).collect::<Vec<_>>(), 0, 2);
        assert_eq!((page, token.as_deref()), (vec![0, 1], Some("2")));
        let (page, token) = paginate((0..5).collect::<Vec<_>>(), 4, 2);
        assert_eq!((page, token), (vec![4], None));
        let (page, token) = paginate((0..5).collect::<Vec<_>>(), 99, 2);
        assert_eq!((page, token), (Vec::<i32>::new(), None));
        let body = json!({"NextToken": "x"});
        let input = Input::new("ListFirewallRuleGroups", &body, &["NextToken"]).unwrap();
        assert_eq!(page_err(&input), "ValidationException");
        let body = json!({"MaxResults": 101});
        let input = Input::new("ListFirewallRuleGroups", &body, &["MaxResults"]).unwrap();
        assert_eq!(page_err(&input), "ValidationException");
    }

    fn page_err(input: &Input<'_>) -> &'static str {
        page(input, 100).unwrap_err().code
    }

    #[test]
    fn tags_are_key_value_objects() {
        let body = json!({"Tags": [{"Key": "a", "Value": "b"}]});
        let input = Input::new("X", &body, &["Tags"]).unwrap();
        assert_eq!(tags(&input).unwrap(), [("a".to_owned(), "b".to_owned())]);
        for bad in [
            json!({"Tags": [{"Key": "a"}]}),
            json!({"Tags": [{"Key": "a", "Value": "b", "Other": 1}]}),
            json!({"Tags": "a"}),
            json!({"Tags": ["a"]}),
        ] {
            let input = Input::new("X", &bad, &["Tags"]).unwrap();
            assert!(tags(&input).is_err(), "{bad}");
        }
    }
}

//! The IAM policy grammar: parsing and validating a JSON document into a compiled [`Policy`].
//!
//! Validation follows IAM's `MalformedPolicyDocument` rules. Where AWS is lenient we say so
//! below; where we are stricter than AWS it is because silently ignoring a typo in a `Deny`
//! would fail open:
//! - A missing `Version` means `2008-10-17`, as in AWS (policy variables are then literal).
//! - Condition values for numeric, date, IP, `Bool` and `Null` operators must parse; AWS
//!   accepts some malformed values and then never matches them.
//! - A wildcard in a principal other than a bare `*` is refused (AWS refuses it in most
//!   services; partial wildcards never match in any).
//! - Resource strings must be `*` or start with `arn:`; an ARN with fewer than six
//!   colon-separated parts is padded with `*` parts, as IAM does for identity policies.
//! - Duplicate keys inside one JSON object keep the last value (the JSON parser's behaviour).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::condition::{Condition, Operator};
use crate::error::PolicyError;
use crate::pattern::{Pattern, Syntax};

/// The policy language version named by the `Version` element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `2008-10-17`: no policy variables.
    V2008_10_17,
    /// `2012-10-17`: policy variables are substituted.
    V2012_10_17,
}

/// Statement effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

/// Where a policy is attached, which decides which elements it must or must not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Any well-formed document: no element is required or refused beyond the grammar.
    Any,
    /// Attached to a user or role: `Resource`/`NotResource` required, no principal.
    Identity,
    /// Attached to a resource (a function policy): principal and resource required.
    Resource,
    /// A role's trust policy: principal required, no `Resource`/`NotResource`.
    Trust,
}

/// A parsed, validated and compiled IAM policy document.
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) version: Version,
    pub(crate) statements: Vec<Statement>,
}

/// One compiled statement.
#[derive(Clone, Debug)]
pub struct Statement {
    pub(crate) sid: Option<Arc<str>>,
    pub(crate) effect: Effect,
    pub(crate) actions: Matcher<Pattern>,
    /// `None` when the statement has neither `Resource` nor `NotResource` (trust policies).
    pub(crate) resources: Option<Matcher<ResourcePattern>>,
    /// `None` when the statement has neither `Principal` nor `NotPrincipal`.
    pub(crate) principals: Option<Matcher<PrincipalEntry>>,
    pub(crate) conditions: Box<[Condition]>,
}

/// A list element and whether it was written as its `Not...` form.
#[derive(Clone, Debug)]
pub(crate) struct Matcher<T> {
    pub negated: bool,
    pub items: Box<[T]>,
}

/// A compiled `Resource` entry.
#[derive(Clone, Debug)]
pub(crate) enum ResourcePattern {
    Any,
    Arn(ArnPattern),
}

/// An ARN pattern matched part by part: a wildcard never crosses a `:` except in the final
/// resource part, which may itself contain colons (`function:name:alias`).
#[derive(Clone, Debug)]
pub(crate) struct ArnPattern {
    /// partition, service, region, account, resource.
    pub parts: [Pattern; 5],
    /// Written with fewer than six parts and without any `*`: resource policies ignore it.
    pub short_without_wildcard: bool,
}

/// One principal named in `Principal`/`NotPrincipal`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`: everyone, including anonymous callers.
    Any,
    /// A 12-digit account id or `arn:...:iam::ACCOUNT:root`: every principal of the account.
    Account(Box<str>),
    /// A user, role, or session ARN.
    Arn(Box<str>),
    Service(Box<str>),
    Federated(Box<str>),
    CanonicalUser(Box<str>),
}

impl Policy {
    /// Parses and validates a policy document of any kind (see [`PolicyKind::Any`]).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse_as(text, PolicyKind::Any)
    }

    /// Parses and validates a policy document that must suit `kind`.
    pub fn parse_as(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PolicyError::Json {
            reason: e.to_string(),
        })?;
        Policy::from_json(&value, kind)
    }

    /// Validates an already-decoded JSON document.
    pub fn from_json(value: &Value, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("policy", "the document must be a JSON object"))?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(invalid("policy", format!("unknown element `{key}`")));
            }
        }
        let version = match obj.get("Version") {
            None => Version::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => Version::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => Version::V2008_10_17,
            Some(other) => {
                return Err(invalid(
                    "policy",
                    format!(
                        "unsupported Version `{}`: use `2012-10-17` or `2008-10-17`",
                        display(other)
                    ),
                ))
            }
        };
        if let Some(id) = obj.get("Id") {
            if !id.is_string() {
                return Err(invalid("policy", "Id must be a string"));
            }
        }
        let raw: Vec<&Value> = match obj.get("Statement") {
            None => return Err(invalid("policy", "missing Statement")),
            Some(Value::Array(a)) if a.is_empty() => {
                return Err(invalid("policy", "Statement must not be empty"))
            }
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v @ Value::Object(_)) => vec![v],
            Some(_) => {
                return Err(invalid(
                    "policy",
                    "Statement must be an object or an array of objects",
                ))
            }
        };
        let mut statements = Vec::with_capacity(raw.len());
        let mut sids = HashSet::new();
        for (i, s) in raw.into_iter().enumerate() {
            let st = parse_statement(s, i, version, kind)?;
            if let Some(sid) = &st.sid {
                if !sid.is_empty() && !sids.insert(sid.clone()) {
                    return Err(invalid(
                        &where_(i, Some(sid)),
                        format!("duplicate Sid `{sid}`"),
                    ));
                }
            }
            statements.push(st);
        }
        Ok(Policy {
            version,
            statements,
        })
    }

    /// The document's `Version`.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// Whether evaluating this policy can read the request's context: some statement has
    /// a condition, or a policy variable in a resource. A caller may leave the context
    /// empty for a request that only policies reading none decide, since their decision
    /// cannot depend on it. (Actions hold no variables, `ACTION_SYNTAX` has none, and
    /// principals are matched against the caller alone.)
    pub fn reads_context(&self) -> bool {
        self.statements.iter().any(Statement::reads_context)
    }
}

impl Statement {
    fn reads_context(&self) -> bool {
        !self.conditions.is_empty()
            || self.resources.as_ref().is_some_and(|r| {
                r.items.iter().any(|p| match p {
                    ResourcePattern::Any => false,
                    ResourcePattern::Arn(a) => a.parts.iter().any(Pattern::has_variables),
                })
            })
    }

    /// The statement's `Sid`, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// The statement's effect.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// True when the statement names a `Principal` or `NotPrincipal`.
    pub fn has_principal(&self) -> bool {
        self.principals.is_some()
    }
}

fn invalid(location: &str, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        location: location.to_string(),
        problem: problem.into(),
    }
}

/// Human location of statement `i` (counted from 1, as people read a document).
fn where_(i: usize, sid: Option<&str>) -> String {
    match sid {
        Some(s) if !s.is_empty() => format!("statement {} (Sid `{s}`)", i + 1),
        _ => format!("statement {}", i + 1),
    }
}

/// Renders a JSON value for an error message without quoting strings twice.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_statement(
    value: &Value,
    index: usize,
    version: Version,
    kind: PolicyKind,
) -> Result<Statement, PolicyError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(&where_(index, None), "a statement must be a JSON object"))?;
    let sid: Option<Arc<str>> = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(Arc::from(s.as_str())),
        Some(_) => return Err(invalid(&where_(index, None), "Sid must be a string")),
    };
    let at = where_(index, sid.as_deref());
    let err = |problem: String| invalid(&at, problem);
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Principal"
                | "NotPrincipal"
                | "Condition"
        ) {
            return Err(err(format!("unknown element `{key}`")));
        }
    }
    let effect = match obj.get("Effect") {
        None => return Err(err("missing Effect".into())),
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(err(format!(
                "Effect must be `Allow` or `Deny`, not `{}`",
                display(other)
            )))
        }
    };
    let actions = match exactly_one(obj, "Action", "NotAction", &at)? {
        None => return Err(err("missing Action or NotAction".into())),
        Some((name, negated, v)) => {
            let items = string_list(v, name, &at)?
                .into_iter()
                .map(|a| parse_action(a).map_err(|p| err(format!("{name}: {p}"))))
                .collect::<Result<Vec<_>, _>>()?;
            Matcher {
                negated,
                items: items.into(),
            }
        }
    };
    let resources = match exactly_one(obj, "Resource", "NotResource", &at)? {
        None => None,
        Some((name, negated, v)) => {
            let items = string_list(v, name, &at)?
                .into_iter()
                .map(|r| parse_resource(r, version).map_err(|p| err(format!("{name}: {p}"))))
                .collect::<Result<Vec<_>, _>>()?;
            Some(Matcher {
                negated,
                items: items.into(),
            })
        }
    };
    let principals = match exactly_one(obj, "Principal", "NotPrincipal", &at)? {
        None => None,
        Some((name, negated, v)) => Some(Matcher {
            negated,
            items: parse_principal(v)
                .map_err(|p| err(format!("{name}: {p}")))?
                .into(),
        }),
    };
    match kind {
        PolicyKind::Any => {}
        PolicyKind::Identity => {
            if principals.is_some() {
                return Err(err(
                    "an identity policy must not name a Principal or NotPrincipal".into(),
                ));
            }
            if resources.is_none() {
                return Err(err("missing Resource or NotResource".into()));
            }
        }
        PolicyKind::Resource => {
            if principals.is_none() {
                return Err(err("missing Principal or NotPrincipal".into()));
            }
            if resources.is_none() {
                return Err(err("missing Resource or NotResource".into()));
            }
        }
        PolicyKind::Trust => {
            if principals.is_none() {
                return Err(err("missing Principal or NotPrincipal".into()));
            }
            if resources.is_some() {
                return Err(err(
                    "a trust policy must not name a Resource or NotResource".into(),
                ));
            }
        }
    }
    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(v) => parse_conditions(v, version).map_err(err)?,
    };
    Ok(Statement {
        sid,
        effect,
        actions,
        resources,
        principals,
        conditions: conditions.into(),
    })
}

/// Returns the one present element of a `X`/`NotX` pair, refusing both.
fn exactly_one<'v>(
    obj: &'v Map<String, Value>,
    pos: &'static str,
    neg: &'static str,
    at: &str,
) -> Result<Option<(&'static str, bool, &'v Value)>, PolicyError> {
    match (obj.get(pos), obj.get(neg)) {
        (Some(_), Some(_)) => Err(invalid(at, format!("has both {pos} and {neg}"))),
        (Some(v), None) => Ok(Some((pos, false, v))),
        (None, Some(v)) => Ok(Some((neg, true, v))),
        (None, None) => Ok(None),
    }
}

/// A string or a non-empty array of strings.
fn string_list<'v>(v: &'v Value, name: &str, at: &str) -> Result<Vec<&'v str>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(a) if a.is_empty() => Err(invalid(at, format!("{name} must not be empty"))),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str().ok_or_else(|| {
                    invalid(at, format!("{name} entries must be strings, found `{x}`"))
                })
            })
            .collect(),
        other => Err(invalid(
            at,
            format!("{name} must be a string or an array of strings, found `{other}`"),
        )),
    }
}

const ACTION_SYNTAX: Syntax = Syntax {
    wildcards: true,
    variables: false,
    case_insensitive: true,
};

/// `*` or `service:Action`: the service prefix is letters, digits and `-` (no wildcards, as
/// IAM requires); the action name may use `*` and `?`.
pub(crate) fn parse_action(a: &str) -> Result<Pattern, String> {
    if a == "*" {
        return Ok(Pattern::compile(a, ACTION_SYNTAX));
    }
    let Some((service, name)) = a.split_once(':') else {
        return Err(format!(
            "action `{a}` must be `*` or `service:Action` (the service prefix is missing)"
        ));
    };
    if service.is_empty()
        || !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!(
            "action `{a}` has an invalid service prefix `{service}` (letters, digits and `-` only, no wildcards)"
        ));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | '-' | '_'))
    {
        return Err(format!(
            "action `{a}` has an invalid action name (letters, digits, `*` and `?` only)"
        ));
    }
    Ok(Pattern::compile(a, ACTION_SYNTAX))
}

fn resource_syntax(version: Version) -> Syntax {
    Syntax {
        wildcards: true,
        variables: version == Version::V2012_10_17,
        case_insensitive: false,
    }
}

fn parse_resource(r: &str, version: Version) -> Result<ResourcePattern, String> {
    if r == "*" {
        return Ok(ResourcePattern::Any);
    }
    if !r.starts_with("arn:") {
        return Err(format!("resource `{r}` must be `*` or an ARN"));
    }
    parse_arn_pattern(r, version, true)
        .map(ResourcePattern::Arn)
        .ok_or_else(|| format!("resource `{r}` is not a valid ARN"))
}

/// Splits `arn:partition:service:region:account:resource`. With `pad`, missing trailing parts
/// become `*`; without it, fewer than six parts is an error (`None`).
pub(crate) fn parse_arn_pattern(r: &str, version: Version, pad: bool) -> Option<ArnPattern> {
    let syntax = resource_syntax(version);
    let mut it = r.splitn(6, ':');
    if it.next() != Some("arn") {
        return None;
    }
    let given: Vec<&str> = it.collect();
    if given.len() < 5 && !pad {
        return None;
    }
    let short = given.len() < 5;
    let part = |i: usize| Pattern::compile(given.get(i).copied().unwrap_or("*"), syntax);
    Some(ArnPattern {
        parts: [part(0), part(1), part(2), part(3), part(4)],
        short_without_wildcard: short && !r.contains('*'),
    })
}

/// Splits a request ARN into its five parts after `arn:`.
pub(crate) fn split_arn(s: &str) -> Option<[&str; 5]> {
    let mut it = s.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    Some([it.next()?, it.next()?, it.next()?, it.next()?, it.next()?])
}

fn parse_principal(v: &Value) -> Result<Vec<PrincipalEntry>, String> {
    let obj = match v {
        Value::String(s) if s == "*" => return Ok(vec![PrincipalEntry::Any]),
        Value::Object(o) if !o.is_empty() => o,
        Value::Object(_) => return Err("must not be empty".into()),
        other => {
            return Err(format!(
                "must be `*` or an object such as {{\"AWS\": ...}}, found `{other}`"
            ))
        }
    };
    let mut out = Vec::new();
    for (ty, vals) in obj {
        let vals = string_list(vals, ty, "principal").map_err(|e| match e {
            PolicyError::Invalid { problem, .. } => problem,
            other => other.to_string(),
        })?;
        for s in vals {
            let entry = match ty.as_str() {
                "AWS" => parse_aws_principal(s)?,
                "Service" | "Federated" | "CanonicalUser" if s.is_empty() => {
                    return Err(format!("{ty} principal must not be empty"))
                }
                "Service" => PrincipalEntry::Service(s.into()),
                "Federated" => PrincipalEntry::Federated(s.into()),
                "CanonicalUser" => PrincipalEntry::CanonicalUser(s.into()),
                other => {
                    return Err(format!(
                        "unknown principal type `{other}` (use AWS, Service, Federated or CanonicalUser)"
                    ))
                }
            };
            out.push(entry);
        }
    }
    Ok(out)
}

fn parse_aws_principal(s: &str) -> Result<PrincipalEntry, String> {
    if s == "*" {
        return Ok(PrincipalEntry::Any);
    }
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(PrincipalEntry::Account(s.into()));
    }
    if s.contains(['*', '?']) {
        return Err(format!(
            "principal `{s}` uses a wildcard; only a bare `*` is allowed (use a condition on aws:PrincipalArn)"
        ));
    }
    match split_arn(s) {
        Some([_, "iam", "", account, "root"]) => Ok(PrincipalEntry::Account(account.into())),
        Some([_, service, _, account, rest])
            if !service.is_empty() && !account.is_empty() && !rest.is_empty() =>
        {
            Ok(PrincipalEntry::Arn(s.into()))
        }
        _ => Err(format!(
            "principal `{s}` must be `*`, a 12-digit account id or an ARN"
        )),
    }
}

fn parse_conditions(v: &Value, version: Version) -> Result<Vec<Condition>, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("Condition must be an object, found `{v}`"))?;
    let mut out = Vec::new();
    for (op_name, block) in obj {
        let op = Operator::parse(op_name)
            .ok_or_else(|| format!("unknown condition operator `{op_name}`"))?;
        let block = match block {
            Value::Object(b) if !b.is_empty() => b,
            _ => {
                return Err(format!(
                    "condition `{op_name}` must map condition keys to values"
                ))
            }
        };
        for (key, vals) in block {
            if key.is_empty() || key.chars().any(char::is_whitespace) {
                return Err(format!("condition `{op_name}` has an invalid key `{key}`"));
            }
            let raw: Vec<String> = match vals {
                Value::Array(a) if a.is_empty() => {
                    return Err(format!(
                        "condition `{op_name}` key `{key}` has an empty value list"
                    ))
                }
                Value::Array(a) => a
                    .iter()
                    .map(|x| scalar(x, op_name, key))
                    .collect::<Result<_, _>>()?,
                x => vec![scalar(x, op_name, key)?],
            };
            out.push(Condition::compile(op, key, &raw, version).map_err(|bad| {
                format!("condition `{op_name}` key `{key}`: invalid value `{bad}`")
            })?);
        }
    }
    Ok(out)
}

/// Condition values may be strings, numbers or booleans (IAM reads them as strings).
fn scalar(x: &Value, op: &str, key: &str) -> Result<String, String> {
    match x {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "condition `{op}` key `{key}`: values must be strings, numbers or booleans, found `{other}`"
        )),
    }
}

//! Policy evaluation within one account: explicit deny beats allow beats implicit deny.
//!
//! Identity policies and a resource policy combine as AWS documents for same-account
//! requests: an `Allow` in either suffices, except that a resource-policy `Allow` naming only
//! the account (`123456789012` or `arn:aws:iam::123456789012:root`) delegates to identity
//! policies and grants nothing by itself; a matching `Deny` anywhere wins. Evaluation never
//! fails: a statement that cannot be evaluated (an unresolvable policy variable, a
//! non-numeric value for a numeric operator) simply does not match, as in cedar.

use std::collections::HashMap;
use std::sync::Arc;

use crate::pattern::Variable;
use crate::policy::{
    split_arn, Effect, Matcher, Policy, PrincipalEntry, ResourcePattern, Statement,
};

/// A request-context value: condition keys are single- or multi-valued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextValue {
    /// A single value, such as `aws:SourceIp`.
    String(String),
    /// A multi-valued key, such as `aws:TagKeys`; needs `ForAllValues:`/`ForAnyValue:`.
    List(Vec<String>),
}

impl From<&str> for ContextValue {
    fn from(s: &str) -> Self {
        ContextValue::String(s.to_string())
    }
}

impl From<String> for ContextValue {
    fn from(s: String) -> Self {
        ContextValue::String(s)
    }
}

impl From<Vec<String>> for ContextValue {
    fn from(v: Vec<String>) -> Self {
        ContextValue::List(v)
    }
}

/// What is being authorized.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The caller: a user/role/session ARN, a service principal such as
    /// `lambda.amazonaws.com`, or `None` for an anonymous caller (matched only by `*`).
    pub principal: Option<String>,
    /// `service:Action`, such as `lambda:InvokeFunction` (matched case-insensitively).
    pub action: String,
    /// The resource ARN (matched case-sensitively).
    pub resource: String,
    /// Condition keys (looked up case-insensitively; lowercase keys are fastest).
    pub context: HashMap<String, ContextValue>,
}

/// The outcome of an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionEffect {
    /// Some statement allowed the request and none denied it.
    Allowed,
    /// A matching `Deny` statement refused the request.
    ExplicitDeny,
    /// No statement allowed the request.
    ImplicitDeny,
}

/// Which policy a matched statement came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// `identity[policy_index]`.
    Identity,
    /// The resource policy (`policy_index` is then 0).
    Resource,
}

/// A statement that decided the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedStatement {
    /// Identity or resource policy.
    pub source: PolicySource,
    /// Index into the identity policies (0 for the resource policy).
    pub policy_index: usize,
    /// Index of the statement within its policy, from 0.
    pub statement_index: usize,
    /// The statement's `Sid`.
    pub sid: Option<Arc<str>>,
}

/// The decision and the statements that made it: the matching `Deny` statements for an
/// explicit deny, the matching `Allow` statements for an allow, none for an implicit deny.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed, explicitly or implicitly denied.
    pub effect: DecisionEffect,
    /// The deciding statements, in evaluation order (identity policies, then resource).
    pub matched: Vec<MatchedStatement>,
}

impl Decision {
    /// True only for [`DecisionEffect::Allowed`].
    pub fn is_allowed(&self) -> bool {
        self.effect == DecisionEffect::Allowed
    }
}

/// Case-insensitive view of the request context.
pub(crate) struct Context<'a> {
    map: &'a HashMap<String, ContextValue>,
    /// All keys are already lowercase, so a miss on the exact lookup is final.
    folded: bool,
}

impl<'a> Context<'a> {
    pub(crate) fn new(map: &'a HashMap<String, ContextValue>) -> Context<'a> {
        let folded = map
            .keys()
            .all(|k| !k.bytes().any(|b| b.is_ascii_uppercase()));
        Context { map, folded }
    }

    /// Looks up a lowercased key.
    pub(crate) fn get(&self, lower_key: &str) -> Option<&'a ContextValue> {
        // A request carries a handful of keys: comparing them is cheaper than hashing.
        if self.map.len() <= 16 {
            return self
                .map
                .iter()
                .find(|(k, _)| {
                    k.len() == lower_key.len()
                        && if self.folded {
                            k.as_str() == lower_key
                        } else {
                            k.eq_ignore_ascii_case(lower_key)
                        }
                })
                .map(|(_, v)| v);
        }
        if let Some(v) = self.map.get(lower_key) {
            return Some(v);
        }
        if self.folded {
            return None;
        }
        self.map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(lower_key))
            .map(|(_, v)| v)
    }

    /// The text substituted for a policy variable: a single-valued key, else the default.
    pub(crate) fn variable<'s>(&'s self, v: &'s Variable) -> Option<&'s str> {
        match self.get(&v.key) {
            Some(ContextValue::String(s)) => Some(s),
            _ => v.default.as_deref(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PrincipalMatch {
    No,
    /// Named only through its account: delegates to identity policies.
    Account,
    Direct,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Identity,
    Resource,
}

/// Evaluates `request` against the caller's identity policies and the resource's policy.
pub fn evaluate(request: &Request, identity: &[&Policy], resource: Option<&Policy>) -> Decision {
    let ctx = Context::new(&request.context);
    let arn = split_arn(&request.resource);
    let mut denied = false;
    let mut matched: Vec<MatchedStatement> = Vec::new();
    let mut record = |effect: Effect, m: MatchedStatement| match effect {
        Effect::Deny => {
            if !denied {
                denied = true;
                matched.clear();
            }
            matched.push(m);
        }
        Effect::Allow if !denied => matched.push(m),
        Effect::Allow => {}
    };
    for (pi, policy) in identity.iter().enumerate() {
        for (si, st) in policy.statements.iter().enumerate() {
            if statement_matches(st, request, arn.as_ref(), &ctx, Role::Identity)
                != PrincipalMatch::No
            {
                record(
                    st.effect,
                    MatchedStatement {
                        source: PolicySource::Identity,
                        policy_index: pi,
                        statement_index: si,
                        sid: st.sid.clone(),
                    },
                );
            }
        }
    }
    if let Some(policy) = resource {
        for (si, st) in policy.statements.iter().enumerate() {
            let how = statement_matches(st, request, arn.as_ref(), &ctx, Role::Resource);
            // An account-level Allow only says "the account's IAM policies decide".
            let counts = match (st.effect, how) {
                (_, PrincipalMatch::No) => false,
                (Effect::Deny, _) => true,
                (Effect::Allow, m) => m == PrincipalMatch::Direct,
            };
            if counts {
                record(
                    st.effect,
                    MatchedStatement {
                        source: PolicySource::Resource,
                        policy_index: 0,
                        statement_index: si,
                        sid: st.sid.clone(),
                    },
                );
            }
        }
    }
    let effect = if denied {
        DecisionEffect::ExplicitDeny
    } else if matched.is_empty() {
        DecisionEffect::ImplicitDeny
    } else {
        DecisionEffect::Allowed
    };
    Decision { effect, matched }
}

/// Evaluates a request to assume a role (`sts:AssumeRole`, `sts:TagSession`) against the
/// caller's identity policies and the role's trust policy, as STS does: the trust policy
/// must allow the caller, either by naming it (then no identity policy is needed) or by
/// naming only its account (then an identity policy must allow the action too). Unlike
/// [`evaluate`], an identity-policy `Allow` alone grants nothing; a matching `Deny`
/// anywhere still wins.
pub fn evaluate_trust(request: &Request, identity: &[&Policy], trust: &Policy) -> Decision {
    let decision = evaluate(request, identity, Some(trust));
    if decision.effect != DecisionEffect::Allowed
        || decision
            .matched
            .iter()
            .any(|m| m.source == PolicySource::Resource)
    {
        return decision;
    }
    // Only identity statements allowed it: the trust policy must still admit the account.
    let ctx = Context::new(&request.context);
    let arn = split_arn(&request.resource);
    let admitted = trust.statements.iter().any(|st| {
        st.effect == Effect::Allow
            && statement_matches(st, request, arn.as_ref(), &ctx, Role::Resource)
                != PrincipalMatch::No
    });
    if admitted {
        decision
    } else {
        Decision {
            effect: DecisionEffect::ImplicitDeny,
            matched: Vec::new(),
        }
    }
}

/// Evaluates a request on a KMS key as KMS does: the key policy is the root of access.
/// It allows a caller either by naming it (then no identity policy is needed) or by naming
/// its account (delegating to IAM: then an identity policy must allow the action too); an
/// identity policy alone grants nothing, and a key without a policy is usable by nobody. A
/// matching `Deny` anywhere wins. The same rule as [`evaluate_trust`] with the key policy
/// in the trust policy's place.
pub fn evaluate_key_policy(
    request: &Request,
    identity: &[&Policy],
    key_policy: Option<&Policy>,
) -> Decision {
    match key_policy {
        Some(policy) => evaluate_trust(request, identity, policy),
        None => {
            let decision = evaluate(request, identity, None);
            if decision.effect == DecisionEffect::ExplicitDeny {
                decision
            } else {
                Decision {
                    effect: DecisionEffect::ImplicitDeny,
                    matched: Vec::new(),
                }
            }
        }
    }
}

/// Whether `resource` is a KMS key (`arn:aws:kms:REGION:ACCOUNT:key/ID`), whose key policy
/// decides access as [`evaluate_key_policy`] does.
pub fn is_kms_key(resource: &str) -> bool {
    split_arn(resource).is_some_and(|p| p[1] == "kms" && p[4].starts_with("key/"))
}

fn statement_matches(
    st: &Statement,
    req: &Request,
    arn: Option<&[&str; 5]>,
    ctx: &Context<'_>,
    role: Role,
) -> PrincipalMatch {
    let action_hit = st.actions.items.iter().any(|p| p.matches(&req.action, ctx));
    if action_hit == st.actions.negated {
        return PrincipalMatch::No;
    }
    if let Some(res) = &st.resources {
        let hit = res.items.iter().any(|r| match r {
            ResourcePattern::Any => true,
            ResourcePattern::Arn(a) => {
                // Resource policies ignore short ARNs written without a wildcard.
                !(role == Role::Resource && a.short_without_wildcard)
                    && arn.is_some_and(|parts| a.matches_parts(parts, ctx))
            }
        });
        if hit == res.negated {
            return PrincipalMatch::No;
        }
    }
    let how = match (role, &st.principals) {
        // Identity policies apply to their holder; a principal element there is refused
        // by `PolicyKind::Identity` and otherwise ignored.
        (Role::Identity, _) => PrincipalMatch::Direct,
        (Role::Resource, None) => PrincipalMatch::No,
        (Role::Resource, Some(m)) => principal_matches(m, req.principal.as_deref()),
    };
    if how == PrincipalMatch::No {
        return how;
    }
    if st.conditions.iter().all(|c| c.eval(ctx)) {
        how
    } else {
        PrincipalMatch::No
    }
}

fn principal_matches(m: &Matcher<PrincipalEntry>, caller: Option<&str>) -> PrincipalMatch {
    let best =
        m.items
            .iter()
            .map(|e| entry_matches(e, caller))
            .fold(PrincipalMatch::No, |acc, x| match (acc, x) {
                (PrincipalMatch::Direct, _) | (_, PrincipalMatch::Direct) => PrincipalMatch::Direct,
                (PrincipalMatch::Account, _) | (_, PrincipalMatch::Account) => {
                    PrincipalMatch::Account
                }
                _ => PrincipalMatch::No,
            });
    if !m.negated {
        return best;
    }
    if best == PrincipalMatch::No {
        PrincipalMatch::Direct
    } else {
        PrincipalMatch::No
    }
}

fn entry_matches(e: &PrincipalEntry, caller: Option<&str>) -> PrincipalMatch {
    let yes = |b: bool| {
        if b {
            PrincipalMatch::Direct
        } else {
            PrincipalMatch::No
        }
    };
    let Some(caller) = caller else {
        return yes(*e == PrincipalEntry::Any);
    };
    match e {
        PrincipalEntry::Any => PrincipalMatch::Direct,
        PrincipalEntry::Service(s)
        | PrincipalEntry::Federated(s)
        | PrincipalEntry::CanonicalUser(s) => yes(**s == *caller),
        PrincipalEntry::Account(acct) => match split_arn(caller) {
            Some(p) if p[3] == &**acct => PrincipalMatch::Account,
            _ => PrincipalMatch::No,
        },
        PrincipalEntry::Arn(a) => yes(**a == *caller || session_of(a, caller)),
    }
}

/// True when `caller` is a session of the role or federated user named by `named`:
/// `arn:P:sts::A:assumed-role/NAME/SESSION` belongs to `arn:P:iam::A:role[/path]/NAME` and
/// `arn:P:sts::A:federated-user/NAME` to `arn:P:iam::A:user/NAME`.
fn session_of(named: &str, caller: &str) -> bool {
    let (Some(n), Some(c)) = (split_arn(named), split_arn(caller)) else {
        return false;
    };
    if n[0] != c[0] || n[1] != "iam" || c[1] != "sts" || n[3] != c[3] {
        return false;
    }
    if let Some(rest) = c[4].strip_prefix("assumed-role/") {
        let Some((role, _session)) = rest.split_once('/') else {
            return false;
        };
        return n[4]
            .strip_prefix("role/")
            .is_some_and(|path| path.rsplit('/').next() == Some(role));
    }
    if let Some(user) = c[4].strip_prefix("federated-user/") {
        return n[4].strip_prefix("user/") == Some(user);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyKind;

    const ROLE: &str = "arn:aws:iam::123456789012:role/r";
    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

    fn trust(principal: &str) -> Policy {
        Policy::parse_as(
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]}}"#
            ),
            PolicyKind::Trust,
        )
        .unwrap()
    }

    fn identity(effect: &str) -> Policy {
        Policy::parse_as(
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Action":"sts:AssumeRole","Resource":"{ROLE}"}}]}}"#
            ),
            PolicyKind::Identity,
        )
        .unwrap()
    }

    fn assume(caller: &str) -> Request {
        Request {
            principal: Some(caller.into()),
            action: "sts:AssumeRole".into(),
            resource: ROLE.into(),
            context: HashMap::new(),
        }
    }

    #[test]
    fn a_trust_policy_naming_the_caller_needs_no_identity_policy() {
        let t = trust(ALICE);
        assert!(evaluate_trust(&assume(ALICE), &[], &t).is_allowed());
        let bob = "arn:aws:iam::123456789012:user/bob";
        assert!(!evaluate_trust(&assume(bob), &[&identity("Allow")], &t).is_allowed());
        assert_eq!(
            evaluate_trust(&assume(ALICE), &[&identity("Deny")], &t).effect,
            DecisionEffect::ExplicitDeny
        );
    }

    #[test]
    fn a_trust_policy_naming_the_account_delegates_to_identity_policies() {
        let t = trust("arn:aws:iam::123456789012:root");
        assert!(!evaluate_trust(&assume(ALICE), &[], &t).is_allowed());
        assert!(evaluate_trust(&assume(ALICE), &[&identity("Allow")], &t).is_allowed());
        let stranger = "arn:aws:iam::999999999999:user/alice";
        assert!(!evaluate_trust(&assume(stranger), &[&identity("Allow")], &t).is_allowed());
    }

    #[test]
    fn an_identity_allow_alone_cannot_assume_a_role_that_trusts_a_service() {
        let t = Policy::parse_as(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            PolicyKind::Trust,
        )
        .unwrap();
        // `evaluate` would allow it (same-account identity allow); STS does not.
        assert!(evaluate(&assume(ALICE), &[&identity("Allow")], Some(&t)).is_allowed());
        assert!(!evaluate_trust(&assume(ALICE), &[&identity("Allow")], &t).is_allowed());
    }
}

//! Authentication and authorization of every API request: SigV4 verification
//! (`warden-auth`), then an IAM decision (`warden-iam`) over the caller's identity policies
//! and, for function resources, the function's resource-based policy; for `AssumeRole`, the
//! role's trust policy instead. A role session created with session policies is also held
//! to them in every decision.
//!
//! These are the pipeline's authentication and authorization stages' workings; which
//! targets a request needs decided is its door's answer (`doors::ServiceDoor::targets`).
//! Every Lambda operation names its real IAM action and resource ARN here, in one table
//! ([`lambda_targets`]), so that what is checked can be read in one place; IAM and STS ask
//! the identity service ([`query_targets`]).
//!
//! A function's policy takes part only in decisions on actions a function policy can grant
//! (`policy::GRANTABLE_ACTIONS`), and an unsigned request gets this far only for invoking
//! (the pipeline refuses every other one first): `Principal: "*"` opens invoking to anyone,
//! and never anything else.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use warden_auth::{Authenticated, PendingVerification};
use warden_iam::{ContextValue, Decision, DecisionEffect, Policy, PolicyKind};
use warden_identity::{Identity, Trust};
use warden_types::identity::{Principal, PrincipalKind};
use warden_types::layer::{LayerName, LayerVersionArn};
use warden_types::{ChangeCache, FunctionName, FunctionRef};

use crate::routes::{Operation, Service};
use crate::{ApiError, ApiRequest, ApiState};

/// What one operation needs permission for.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The IAM action (`lambda:InvokeFunction`).
    pub action: String,
    /// The resource ARN (or `*`).
    pub resource: String,
    /// The function whose resource policy also applies.
    pub function: Option<FunctionName>,
    /// For `sts:AssumeRole` and `sts:TagSession`: the role whose trust policy must admit
    /// the caller (decided with [`warden_iam::evaluate_trust`]).
    pub trust: Option<Trust>,
    /// Condition keys this request adds (such as `sts:ExternalId`), lower-cased.
    pub context: Vec<(String, ContextValue)>,
    /// The layer version whose permission policy also applies (`lambda:GetLayerVersion`).
    pub layer: Option<(LayerName, u64)>,
    /// A KMS key's policy: then the decision is KMS's (`warden_iam::evaluate_key_policy`),
    /// where the key policy must allow the caller or delegate to the account.
    pub key_policy: Option<Arc<Policy>>,
    /// The resource policy of another kind of resource (a secret's), combined with the
    /// identity policies as IAM combines them.
    pub policy: Option<Arc<Policy>>,
}

/// Caches parsed resource policies (a `ChangeCache`: emptied by change events); the store
/// stays the source of truth.
pub struct Access {
    /// Credentials, policies and sessions; the IAM/STS query API.
    pub identity: Identity,
    policies: ChangeCache<FunctionName, Option<Arc<Policy>>>,
}

impl Access {
    /// Authentication and authorization against `identity`, with an empty policy cache.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            policies: ChangeCache::new(),
        }
    }

    /// Forgets a cached resource policy.
    fn forget(&self, function: &FunctionName) {
        self.policies.forget(function);
    }

    pub(crate) async fn resource_policy(
        &self,
        state: &ApiState,
        function: &FunctionName,
    ) -> Result<Option<Arc<Policy>>, ApiError> {
        if let Some(p) = self.policies.get(function) {
            return Ok(p);
        }
        let ticket = self.policies.ticket();
        let document = state.control.policy_document(function).await?;
        let parsed = match document {
            Some(d) => match Policy::parse_as(&d, PolicyKind::Resource) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    // Stored policies were validated when written; an unreadable one grants nothing.
                    tracing::error!(function = %function, error = %e, "stored resource policy does not parse");
                    None
                }
            },
            None => None,
        };
        // A change that committed while the policy was read makes this fill stale; it is
        // then not cached, and the next request reads the new policy.
        self.policies
            .insert(ticket, function.clone(), parsed.clone());
        Ok(parsed)
    }
}

/// A layer version's permission policy, parsed (not cached: layers are read rarely and
/// their policies change without change events).
async fn layer_policy(
    state: &ApiState,
    name: &LayerName,
    version: u64,
) -> Result<Option<Arc<Policy>>, ApiError> {
    let Some(document) = state.control.layer_policy_document(name, version).await? else {
        return Ok(None);
    };
    match Policy::parse_as(&document, PolicyKind::Resource) {
        Ok(p) => Ok(Some(Arc::new(p))),
        Err(e) => {
            tracing::error!(layer = %name, version, error = %e, "stored layer policy does not parse");
            Ok(None)
        }
    }
}

/// The target of `lambda:GetLayerVersion` (and the other layer version actions) on the
/// version `raw_version` of layer `raw_name`, as path segments give them; none if either
/// does not parse (the handler then answers with the validation error).
fn layer_version_target(
    state: &ApiState,
    action: &str,
    raw_name: &str,
    raw_version: &str,
) -> Vec<Target> {
    let (Ok(name), Ok(version)) = (LayerName::new(raw_name), raw_version.parse::<u64>()) else {
        return Vec::new();
    };
    vec![Target {
        action: format!("lambda:{action}"),
        resource: state.control.layer_version_arn(&name, version),
        layer: Some((name, version)),
        ..Target::default()
    }]
}

/// `lambda:GetLayerVersion` on each layer version ARN a function's input names: using a
/// layer needs permission to read it, as on Lambda.
fn layer_use_targets(body: &[u8]) -> Vec<Target> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    v.get("Layers")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .filter_map(|a| LayerVersionArn::parse(a).ok().map(|p| (a.to_owned(), p)))
        .map(|(arn, p)| Target {
            action: "lambda:GetLayerVersion".into(),
            resource: arn,
            layer: Some((p.name, p.version)),
            ..Target::default()
        })
        .collect()
}

/// The service of a query request, as its SigV4 credential scope must name it: STS if its
/// `Action` is one of STS's, else the service its scope names if that is STS (an STS client
/// calling an action STS lacks gets STS's `InvalidAction`), else IAM.
pub(crate) fn query_service(request: &ApiRequest) -> Service {
    if query_action(request).is_some_and(|a| warden_identity::is_sts_action(&a)) {
        return Service::Sts;
    }
    let claimed = warden_auth::claimed_service(&request.parts.headers, request.parts.uri.query());
    match claimed.as_deref() {
        Some("sts") => Service::Sts,
        _ => Service::Iam,
    }
}

pub(crate) fn query_params(request: &ApiRequest) -> Vec<(String, String)> {
    let mut params = warden_identity::parse_form(&request.body);
    params.extend(crate::routes::query_params(request.parts.uri.query()));
    params
}

fn query_action(request: &ApiRequest) -> Option<String> {
    query_params(request)
        .into_iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v)
}

/// Everything authentication can decide from the request's headers, before its body is
/// read: the signature data is well formed, the access key known and active, the date within
/// the clock window, the scope names this region and, when `service` names it (IAM/STS's
/// is in the body), this service. `Ok(None)` when the request carries no signature at all.
///
/// Nothing is proven yet: [`finish_authentication`] checks the signature over the body.
pub fn authenticate_headers(
    state: &ApiState,
    request: &ApiRequest,
    service: Option<&str>,
) -> Result<Option<PendingVerification>, ApiError> {
    let now = std::time::SystemTime::now();
    match warden_auth::verify_headers(
        &request.parts,
        now,
        &state.access.identity,
        state.region.as_str(),
    ) {
        Ok(pending) => {
            if let Some(expected) = service.filter(|s| *s != pending.service()) {
                return Err(wrong_service(expected));
            }
            Ok(Some(pending))
        }
        Err(warden_auth::AuthError::MissingAuthentication) => Ok(None),
        Err(e) => Err(refused(request, &e)),
    }
}

/// Completes [`authenticate_headers`] once the body has been read: `body_sha256` is the
/// SHA-256 of `request.body` as received, `service` the one the scope must name.
pub fn finish_authentication(
    state: &ApiState,
    request: &ApiRequest,
    pending: PendingVerification,
    body_sha256: &[u8; 32],
    service: &str,
) -> Result<Authenticated, ApiError> {
    let now = std::time::SystemTime::now();
    match pending.finish(&request.parts, body_sha256, now, &state.access.identity) {
        Ok(a) => {
            if a.service != service {
                return Err(wrong_service(service));
            }
            state
                .access
                .identity
                .record_key_use(&a.access_key_id, &a.service, &a.region);
            Ok(a)
        }
        Err(e) => Err(refused(request, &e)),
    }
}

fn wrong_service(expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "InvalidSignatureException",
        format!("Credential should be scoped to correct service: '{expected}'."),
    )
}

fn refused(request: &ApiRequest, e: &warden_auth::AuthError) -> ApiError {
    tracing::info!(peer = %request.peer, error = %e, "authentication failed");
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
    ApiError::new(status, e.code(), e.message())
}

fn function_target(state: &ApiState, action: &str, r: &FunctionRef) -> Target {
    let q = r.qualifier.as_ref().map(|q| q.to_string());
    Target {
        action: format!("lambda:{action}"),
        resource: state.function_arn(&r.name, q.as_deref()),
        function: Some(r.name.clone()),
        ..Target::default()
    }
}

fn any_resource(action: &str) -> Target {
    Target {
        action: action.to_owned(),
        resource: "*".to_owned(),
        function: None,
        ..Target::default()
    }
}

/// The IAM action and resource each Lambda operation is authorized against, as Lambda
/// documents them. An unparsable reference yields no target: the handler then answers with
/// its validation error, which reveals nothing about any resource.
pub fn lambda_targets(state: &ApiState, request: &ApiRequest) -> Vec<Target> {
    use Operation as O;
    let qualified = |raw: &str| -> Option<FunctionRef> {
        state
            .function_ref(raw)
            .ok()?
            .with_qualifier(request.query("Qualifier").as_deref())
            .ok()
    };
    let bare = |raw: &str| -> Option<FunctionRef> {
        state.function_ref(raw).ok().map(|r| FunctionRef {
            name: r.name,
            qualifier: None,
        })
    };
    let f = |action: &str, r: Option<FunctionRef>| -> Vec<Target> {
        match r {
            Some(r) => vec![function_target(state, action, &r)],
            None => vec![Target {
                action: format!("lambda:{action}"),
                resource: format!(
                    "arn:aws:lambda:{}:{}:function:*",
                    state.region, state.account
                ),
                function: None,
                ..Target::default()
            }],
        }
    };
    match &request.operation {
        O::CreateFunction => {
            let name = serde_json::from_slice::<serde_json::Value>(&request.body)
                .ok()
                .and_then(|v| {
                    v.get("FunctionName")
                        .and_then(|n| n.as_str())
                        .map(str::to_owned)
                });
            let mut targets = f("CreateFunction", name.as_deref().and_then(bare));
            // Tagging on create needs the tagging permission too, as in Lambda.
            if create_brings_tags(&request.body) {
                targets.extend(f("TagResource", name.as_deref().and_then(bare)));
            }
            targets.extend(layer_use_targets(&request.body));
            targets
        }
        O::ListFunctions => vec![any_resource("lambda:ListFunctions")],
        O::CodeSigning(op) => crate::code_signing::targets(state, op),
        // Authorized by the Signer door.
        O::Signer(_) => Vec::new(),
        O::GetAccountSettings => vec![any_resource("lambda:GetAccountSettings")],
        O::GetFunction(n) => f("GetFunction", qualified(n)),
        O::GetFunctionConfiguration(n) => f("GetFunctionConfiguration", qualified(n)),
        O::DeleteFunction(n) => f("DeleteFunction", qualified(n)),
        O::UpdateFunctionCode(n) => f("UpdateFunctionCode", bare(n)),
        O::UpdateFunctionConfiguration(n) => {
            let mut targets = f("UpdateFunctionConfiguration", bare(n));
            targets.extend(layer_use_targets(&request.body));
            targets
        }
        O::Invoke(n) => f("InvokeFunction", qualified(n)),
        O::InvokeAsync(n) => f("InvokeFunction", bare(n)),
        O::InvokeWithResponseStream(n) => f("InvokeFunction", qualified(n)),
        O::PublishVersion(n) => f("PublishVersion", bare(n)),
        O::ListVersionsByFunction(n) => f("ListVersionsByFunction", bare(n)),
        O::CreateAlias(n) => f("CreateAlias", bare(n)),
        O::ListAliases(n) => f("ListAliases", bare(n)),
        O::GetAlias(n, _) => f("GetAlias", bare(n)),
        O::UpdateAlias(n, _) => f("UpdateAlias", bare(n)),
        O::DeleteAlias(n, _) => f("DeleteAlias", bare(n)),
        O::PutFunctionConcurrency(n) => f("PutFunctionConcurrency", bare(n)),
        O::GetFunctionConcurrency(n) => f("GetFunctionConcurrency", bare(n)),
        O::DeleteFunctionConcurrency(n) => f("DeleteFunctionConcurrency", bare(n)),
        O::AddPermission(n) => f("AddPermission", qualified(n)),
        O::RemovePermission(n, _) => f("RemovePermission", qualified(n)),
        O::GetPolicy(n) => f("GetPolicy", qualified(n)),
        O::TagResource(n) => f("TagResource", qualified(n)),
        O::UntagResource(n) => f("UntagResource", qualified(n)),
        O::ListTags(n) => f("ListTags", qualified(n)),
        O::ReadLogs(n) => match bare(n) {
            Some(r) => vec![Target {
                action: "logs:GetLogEvents".into(),
                resource: format!(
                    "arn:aws:logs:{}:{}:log-group:/aws/lambda/{}",
                    state.region, state.account, r.name
                ),
                function: None,
                ..Target::default()
            }],
            None => vec![any_resource("logs:GetLogEvents")],
        },
        // A function's DNS query log and flow log read as the log groups
        // `/warden/dns/NAME` and `/warden/flows/NAME`.
        O::ReadDnsQueries(n) | O::ReadFlows(n) => match bare(n) {
            Some(r) => vec![Target {
                action: "logs:GetLogEvents".into(),
                resource: format!(
                    "arn:aws:logs:{}:{}:log-group:/warden/{}/{}",
                    state.region,
                    state.account,
                    if matches!(request.operation, O::ReadFlows(_)) {
                        "flows"
                    } else {
                        "dns"
                    },
                    r.name
                ),
                function: None,
                ..Target::default()
            }],
            None => vec![any_resource("logs:GetLogEvents")],
        },
        O::CreateFunctionUrlConfig(n)
        | O::GetFunctionUrlConfig(n)
        | O::UpdateFunctionUrlConfig(n)
        | O::DeleteFunctionUrlConfig(n) => f(request.operation.name(), qualified(n)),
        O::ListFunctionUrlConfigs(n) => f("ListFunctionUrlConfigs", bare(n)),
        // Authorized by the URL listener itself, by the URL's auth type.
        O::InvokeFunctionUrl | O::CloudWatch(_) => Vec::new(),
        O::ListFunctionFindings => vec![Target {
            action: "warden:ListFunctionFindings".into(),
            resource: format!(
                "arn:aws:lambda:{}:{}:function:*",
                state.region, state.account
            ),
            ..Target::default()
        }],
        O::ImportAdvisories
        | O::GetAdvisoryDatabase
        | O::AcceptAdvisory
        | O::ListAcceptedAdvisories
        | O::RevokeAcceptedAdvisory(_) => vec![Target {
            action: format!("warden:{}", request.operation.name()),
            resource: format!(
                "arn:aws:warden:{}:{}:advisories",
                state.region, state.account
            ),
            ..Target::default()
        }],
        O::PutInputContract(n)
        | O::GetInputContract(n)
        | O::DeleteInputContract(n)
        | O::GetFunctionFindings(n)
        | O::GetFunctionSbom(n) => {
            let action = request.operation.name();
            match qualified(n) {
                Some(r) => {
                    let q = r.qualifier.as_ref().map(|q| q.to_string());
                    vec![Target {
                        action: format!("warden:{action}"),
                        resource: state.function_arn(&r.name, q.as_deref()),
                        function: Some(r.name.clone()),
                        ..Target::default()
                    }]
                }
                None => vec![Target {
                    action: format!("warden:{action}"),
                    resource: format!(
                        "arn:aws:lambda:{}:{}:function:*",
                        state.region, state.account
                    ),
                    function: None,
                    ..Target::default()
                }],
            }
        }
        O::PublishLayerVersion(l) => match LayerName::new(l) {
            Ok(name) => vec![Target {
                action: "lambda:PublishLayerVersion".into(),
                resource: state.control.layer_arn(&name),
                ..Target::default()
            }],
            Err(_) => Vec::new(),
        },
        O::ListLayerVersions(_) => vec![any_resource("lambda:ListLayerVersions")],
        O::ListLayers => match (request.query("find").as_deref(), request.query("Arn")) {
            (Some("LayerVersion"), Some(arn)) => match LayerVersionArn::parse(&arn) {
                Ok(p) => vec![Target {
                    action: "lambda:GetLayerVersion".into(),
                    resource: arn,
                    layer: Some((p.name, p.version)),
                    ..Target::default()
                }],
                Err(_) => Vec::new(),
            },
            _ => vec![any_resource("lambda:ListLayers")],
        },
        O::GetLayerVersion(l, v) => layer_version_target(state, "GetLayerVersion", l, v),
        O::DeleteLayerVersion(l, v) => layer_version_target(state, "DeleteLayerVersion", l, v),
        O::AddLayerVersionPermission(l, v) => {
            layer_version_target(state, "AddLayerVersionPermission", l, v)
        }
        O::GetLayerVersionPolicy(l, v) => {
            layer_version_target(state, "GetLayerVersionPolicy", l, v)
        }
        O::RemoveLayerVersionPermission(l, v, _) => {
            layer_version_target(state, "RemoveLayerVersionPermission", l, v)
        }
        // Other doors' operations are not Lambda's: nothing of Lambda's to authorize (and
        // the Lambda door refuses them).
        O::Query | O::JsonTarget(_) => Vec::new(),
    }
}

/// What an IAM or STS request needs permission for (nothing without a principal: the
/// request is then refused as unauthenticated).
pub(crate) fn query_targets(
    state: &ApiState,
    request: &ApiRequest,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let Some(principal) = principal else {
        return Ok(Vec::new());
    };
    let params = query_params(request);
    let identity = &state.access.identity;
    if query_service(request) == Service::Sts {
        return Ok(identity
            .sts_targets(&params)?
            .into_iter()
            .map(|t| Target {
                action: t.action,
                resource: t.resource,
                function: None,
                trust: Some(t.trust),
                context: t.context,
                ..Target::default()
            })
            .collect());
    }
    match identity.authorization_target(&params, principal) {
        // Every caller may ask who it is, as in AWS.
        Ok((action, _)) if action == "sts:GetCallerIdentity" => Ok(Vec::new()),
        Ok((action, resource)) => Ok(vec![Target {
            action,
            resource,
            ..Target::default()
        }]),
        Err(e) => Err(e.into()),
    }
}

/// The context for deciding `target` with these policies (those `decide` may consult):
/// built only when one of them can read it (a condition, or a policy variable in a
/// resource), since it costs a dozen allocations and most policies read none; a policy
/// that reads no context decides the same without it.
fn context_for(
    state: &ApiState,
    request: &ApiRequest,
    principal: Option<&Principal>,
    target: &Target,
    identity: &[&Policy],
    resource: Option<&Policy>,
    session: Option<&[Arc<Policy>]>,
) -> HashMap<String, ContextValue> {
    let trust = match &target.trust {
        Some(Trust::Role(t)) => Some(t.as_ref()),
        _ => None,
    };
    let reads = identity
        .iter()
        .copied()
        .chain(resource)
        .chain(trust)
        .chain(target.key_policy.as_deref())
        .chain(session.into_iter().flatten().map(|p| p.as_ref()))
        .any(Policy::reads_context);
    if reads {
        context(state, request, principal, target)
    } else {
        HashMap::new()
    }
}

/// Condition keys Warden knows for this request.
fn context(
    state: &ApiState,
    request: &ApiRequest,
    principal: Option<&Principal>,
    target: &Target,
) -> HashMap<String, ContextValue> {
    let mut c = HashMap::with_capacity(16);
    let mut put = |k: &str, v: String| {
        c.insert(k.to_owned(), ContextValue::String(v));
    };
    let now = warden_types::now_millis();
    put("aws:sourceip", request.peer.ip().to_string());
    put("aws:currenttime", warden_types::iso_timestamp(now));
    put("aws:epochtime", (now / 1000).to_string());
    put("aws:securetransport", "false".into());
    put("aws:requestedregion", state.region.to_string());
    if let Some(f) = &target.function {
        put("lambda:functionarn", state.function_arn(f, None));
    }
    if let Some(p) = principal {
        put("aws:principalaccount", p.account.clone());
        put("aws:userid", p.id.clone());
        match &p.kind {
            PrincipalKind::User => {
                put("aws:principalarn", p.arn.clone());
                put("aws:principaltype", "User".into());
                put("aws:username", p.name.clone());
            }
            PrincipalKind::AssumedRole { role_arn, .. } => {
                put("aws:principalarn", role_arn.clone());
                put("aws:principaltype", "AssumedRole".into());
            }
        }
        for (k, v) in &p.tags {
            c.insert(
                format!("aws:principaltag/{}", k.to_ascii_lowercase()),
                ContextValue::String(v.clone()),
            );
        }
    }
    for (k, v) in &target.context {
        c.insert(k.clone(), v.clone());
    }
    c
}

/// One decision for `iam_request`: the identity policies with the function's resource
/// policy (or, for a target with a trust policy, as STS decides `AssumeRole`), then the
/// session policies of a role session that has them, which must allow it too. Returns the
/// decision and whether the session policies made it.
fn decide(
    iam_request: &warden_iam::Request,
    identity: &[&Policy],
    resource: Option<&Policy>,
    target: &Target,
    session: Option<&[Arc<Policy>]>,
) -> (Decision, bool) {
    let decision = match (&target.trust, &target.key_policy) {
        (Some(Trust::Role(t)), _) => warden_iam::evaluate_trust(iam_request, identity, t),
        (Some(Trust::NoSuchRole), _) => Decision {
            effect: DecisionEffect::ImplicitDeny,
            matched: Vec::new(),
        },
        (None, Some(key)) => warden_iam::evaluate_key_policy(iam_request, identity, Some(key)),
        (None, None) => warden_iam::evaluate(iam_request, identity, resource),
    };
    let Some(session) = session else {
        return (decision, false);
    };
    if decision.effect == DecisionEffect::ExplicitDeny {
        return (decision, false);
    }
    let refs: Vec<&Policy> = session.iter().map(|p| p.as_ref()).collect();
    let bounded = warden_iam::evaluate(iam_request, &refs, None);
    // Report the session policies only when they are what refused: an explicit deny in
    // them, or an allow everywhere else.
    let by_session = bounded.effect == DecisionEffect::ExplicitDeny
        || (decision.is_allowed() && !bounded.is_allowed());
    if by_session {
        (bounded, true)
    } else {
        (decision, false)
    }
}

/// Decides every target of the request (as its door named them); the first denial ends it.
pub async fn authorize(
    state: &ApiState,
    request: &ApiRequest,
    principal: Option<&Principal>,
    targets: Vec<Target>,
) -> Result<(), ApiError> {
    let session = principal.and_then(|p| state.access.identity.session_policies(p));
    for target in targets {
        // A function policy is consulted only for what a function policy can grant; a
        // layer version's policy only for `lambda:GetLayerVersion`, all it can grant.
        let resource_policy = match (&target.function, &target.layer) {
            (Some(f), _) if crate::policy::grantable(&target.action) => {
                state.access.resource_policy(state, f).await?
            }
            (_, Some((name, version))) if target.action == "lambda:GetLayerVersion" => {
                layer_policy(state, name, *version).await?
            }
            _ => target.policy.clone(),
        };
        let identity_policies = match principal {
            Some(p) => state.access.identity.policies_for(p),
            None => Arc::from(Vec::new()),
        };
        let refs: Vec<&Policy> = identity_policies.iter().map(|p| p.as_ref()).collect();
        let iam_request = warden_iam::Request {
            principal: principal.map(|p| p.arn.clone()),
            action: target.action.clone(),
            resource: target.resource.clone(),
            context: context_for(
                state,
                request,
                principal,
                &target,
                &refs,
                resource_policy.as_deref(),
                session.as_deref(),
            ),
        };
        let (decision, by_session) = decide(
            &iam_request,
            &refs,
            resource_policy.as_deref(),
            &target,
            session.as_deref(),
        );
        if decision.is_allowed() {
            continue;
        }
        let Some(p) = principal else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        };
        let why = match (decision.effect, by_session, &target.trust) {
            (DecisionEffect::ExplicitDeny, true, _) => "with an explicit deny in a session policy",
            (DecisionEffect::ExplicitDeny, false, _) => "with an explicit deny in a policy",
            (_, true, _) => "because no session policy allows the action",
            (_, false, Some(_)) => "because the role's trust policy does not admit the caller",
            _ if target.key_policy.is_some() => {
                "because the key policy does not allow it, directly or through an identity-based policy"
            }
            _ => "because no identity-based policy allows the action",
        };
        tracing::info!(principal = %p.arn, action = %target.action, resource = %target.resource, "access denied");
        // Rendered per protocol (`AccessDenied` in the query protocol).
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            format!(
                "User: {} is not authorized to perform: {} on resource: {} {why}",
                p.arn, target.action, target.resource
            ),
        ));
    }
    Ok(())
}

/// Checks a principal's identity policies alone for one action (used for `iam:PassRole`,
/// where `iam:PassedToService` is `lambda.amazonaws.com`: Warden passes roles to Lambda
/// only), within the session policies of a role session that has them.
pub fn allowed_by_identity(
    state: &ApiState,
    principal: &Principal,
    action: &str,
    resource: &str,
    request: &ApiRequest,
) -> bool {
    let policies = state.access.identity.policies_for(principal);
    let refs: Vec<&Policy> = policies.iter().map(|p| p.as_ref()).collect();
    let mut target = Target {
        action: action.to_owned(),
        resource: resource.to_owned(),
        ..Target::default()
    };
    if action.eq_ignore_ascii_case("iam:PassRole") {
        target.context.push((
            "iam:passedtoservice".into(),
            ContextValue::String("lambda.amazonaws.com".into()),
        ));
    }
    let session = state.access.identity.session_policies(principal);
    let iam_request = warden_iam::Request {
        principal: Some(principal.arn.clone()),
        action: action.to_owned(),
        resource: resource.to_owned(),
        context: context_for(
            state,
            request,
            Some(principal),
            &target,
            &refs,
            None,
            session.as_deref(),
        ),
    };
    decide(&iam_request, &refs, None, &target, session.as_deref())
        .0
        .is_allowed()
}

/// Whether `principal` may do what `target` names, decided as [`authorize`] decides for a
/// target without a function or layer (a KMS key's target: its key policy with the
/// caller's identity policies, within its session policies).
pub fn allowed(
    state: &ApiState,
    request: &ApiRequest,
    principal: &Principal,
    target: &Target,
) -> bool {
    let policies = state.access.identity.policies_for(principal);
    let refs: Vec<&Policy> = policies.iter().map(|p| p.as_ref()).collect();
    let session = state.access.identity.session_policies(principal);
    let iam_request = warden_iam::Request {
        principal: Some(principal.arn.clone()),
        action: target.action.clone(),
        resource: target.resource.clone(),
        context: context_for(
            state,
            request,
            Some(principal),
            target,
            &refs,
            None,
            session.as_deref(),
        ),
    };
    decide(&iam_request, &refs, None, target, session.as_deref())
        .0
        .is_allowed()
}

// ---- control-plane change events and tag helpers ----

impl warden_types::change::ChangeObserver for Access {
    /// A function's cached resource policy goes when the policy changes, and when the
    /// function is created or deleted: a function created later under the same name must
    /// not inherit a cached policy (or its absence).
    fn on_change(&self, event: &warden_types::change::ChangeEvent) {
        use warden_types::change::Change;
        if matches!(
            event.change,
            Change::PolicyChanged | Change::FunctionCreated { .. } | Change::FunctionDeleted
        ) {
            self.forget(&event.function);
        }
    }

    fn on_resync(&self) {
        self.policies.forget_all();
    }
}

/// Whether a `CreateFunction` body carries a non-empty `Tags` map.
fn create_brings_tags(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("Tags")
                .and_then(|t| t.as_object())
                .map(|t| !t.is_empty())
        })
        .unwrap_or(false)
}

/// Whether the request's principal is allowed `action` on `function` (its identity
/// policies and the function's resource policy, within its session policies), decided as
/// [`authorize`] decides; used where Lambda shows part of a response only to callers
/// allowed a second action (the tags in `GetFunction` need `lambda:ListTags`).
pub async fn allows(
    state: &ApiState,
    request: &ApiRequest,
    action: &str,
    function: &FunctionName,
) -> Result<bool, ApiError> {
    let Some(principal) = request.principal.as_ref() else {
        return Ok(false);
    };
    let target = Target {
        action: action.to_owned(),
        resource: state.function_arn(function, None),
        function: Some(function.clone()),
        ..Target::default()
    };
    let resource_policy = if crate::policy::grantable(action) {
        state.access.resource_policy(state, function).await?
    } else {
        None
    };
    let identity_policies = state.access.identity.policies_for(principal);
    let refs: Vec<&Policy> = identity_policies.iter().map(|p| p.as_ref()).collect();
    let iam_request = warden_iam::Request {
        principal: Some(principal.arn.clone()),
        action: target.action.clone(),
        resource: target.resource.clone(),
        context: context(state, request, Some(principal), &target),
    };
    let session = state.access.identity.session_policies(principal);
    let (decision, _) = decide(
        &iam_request,
        &refs,
        resource_policy.as_deref(),
        &target,
        session.as_deref(),
    );
    Ok(decision.is_allowed())
}

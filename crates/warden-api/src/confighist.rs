//! Configuration history (AWS Config, `config`, JSON 1.1 `StarlingDoveService`).
//!
//! **Capture.** After a call that changed something was recorded in the audit trail,
//! [`capture`] reads the current configuration of each resource authorization named for
//! it and hands it to `warden_config::ConfigStore::record`, which keeps an item only when
//! the configuration changed, linked to that call's audit event (`relatedEvents`). A
//! resource that no longer exists gets a `ResourceDeleted` item. Recorded types:
//! - `AWS::Lambda::Function` (id: the name): `FunctionConfiguration` as `GetFunction`
//!   renders it, environment values hidden (names kept), reserved concurrency, tags;
//! - `AWS::Lambda::Alias` (id: `FUNCTION:ALIAS`): version, routing, description;
//! - `AWS::IAM::Role`, `AWS::IAM::User` (id: the name): trust policy, inline and attached
//!   policies, tags; `AWS::IAM::Policy` (id: the name): the default version's document;
//! - `AWS::KMS::Key` (id: the key id): `KeyMetadata`, the key policy, rotation;
//! - `AWS::SecretsManager::Secret` (id: the name): metadata only, never a value;
//! - `AWS::EC2::SecurityGroup` (id: `sg-...`): its rules;
//! - `AWS::Lambda::CodeSigningConfig` (id: `csc-...`): its publishers and policy;
//! - `AWS::Lambda::LayerVersion` (id: `NAME:VERSION`): its description, runtimes, code
//!   digest and permission policy.
//!
//! A resource a call created is found in its answer (an `...Arn` member), since
//! authorization could not name it before it existed.
//!
//! **Reading.** `GetResourceConfigHistory` and `ListDiscoveredResources`, authorized as
//! `config:<Operation>` on `*`, as AWS Config does. Who may call them: principals whose
//! identity policies allow it. Nothing here changes a resource.

use std::sync::Arc;

use serde_json::{json, Value};
use warden_config::{ConfigStore, HistoryQuery, NewItem, Order};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::audit::Note;
use crate::doors::{json_op, JsonOperation, JsonService};
use crate::error::JsonVersion;
use crate::kms::{reply, Input};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// AWS Config (`config`).
pub static CONFIG: JsonService = JsonService {
    signing_name: "config",
    target_prefix: "StarlingDoveService",
    version: JsonVersion::V1_1,
    operations: OPERATIONS,
    max_body: 64 * 1024,
};

const OPERATIONS: &[JsonOperation] = &[
    json_op!(
        "GetResourceConfigHistory",
        any_target,
        get_resource_config_history
    ),
    json_op!(
        "ListDiscoveredResources",
        any_target,
        list_discovered_resources
    ),
];

/// The resource types recorded.
pub const RECORDED_TYPES: &[&str] = &[
    "AWS::Lambda::Function",
    "AWS::Lambda::Alias",
    "AWS::IAM::Role",
    "AWS::IAM::User",
    "AWS::IAM::Policy",
    "AWS::KMS::Key",
    "AWS::SecretsManager::Secret",
    "AWS::EC2::SecurityGroup",
    "AWS::Lambda::CodeSigningConfig",
    "AWS::Lambda::LayerVersion",
];

fn any_target(
    _state: &ApiState,
    operation: &str,
    _body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(vec![Target {
        action: format!("config:{operation}"),
        resource: "*".into(),
        ..Target::default()
    }])
}

/// What one capture found of a resource: its type, id, name, and configuration (`None`
/// when it no longer exists), supplementary configuration and tags.
struct Snapshot {
    resource_type: &'static str,
    id: String,
    name: String,
    configuration: Option<Value>,
    supplementary: Value,
    tags: Value,
}

fn tags_of(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

/// A request with no caller, for rendering through the handlers' own shapes: it may
/// decrypt nothing.
fn no_caller() -> ApiRequest {
    let (parts, ()) = http::Request::new(()).into_parts();
    ApiRequest {
        operation: crate::routes::Operation::GetAccountSettings,
        parts,
        body: bytes::Bytes::new(),
        peer: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        principal: None,
        request_id: String::new(),
    }
}

async fn function_snapshot(state: &ApiState, name: &str, alias: Option<&str>) -> Option<Snapshot> {
    let function = warden_types::FunctionName::new(name).ok()?;
    let r = warden_types::FunctionRef {
        name: function.clone(),
        qualifier: None,
    };
    if let Some(alias) = alias {
        let alias_name = warden_types::AliasName::new(alias).ok()?;
        let configuration = state
            .control
            .get_alias(&function, &alias_name)
            .await
            .ok()
            .map(|a| {
                json!({
                    "Name": alias,
                    "FunctionVersion": a.function_version,
                    "Description": a.description,
                    "RoutingConfig": a.routing,
                })
            });
        return Some(Snapshot {
            resource_type: "AWS::Lambda::Alias",
            id: format!("{name}:{alias}"),
            name: format!("{name}:{alias}"),
            configuration,
            supplementary: json!({}),
            tags: json!({}),
        });
    }
    let (configuration, tags) = match state.control.get_function(&r).await {
        Ok(view) => {
            let mut c = crate::shape::configuration(state, &no_caller(), &view.configuration);
            // The environment's names, never its values.
            if !view.configuration.environment.is_empty() {
                let names: serde_json::Map<String, Value> = view
                    .configuration
                    .environment
                    .keys()
                    .map(|k| (k.clone(), json!(warden_audit::event::HIDDEN)))
                    .collect();
                c["Environment"] = json!({ "Variables": names });
            }
            if let Some(reserved) = view.reserved_concurrency {
                c["ReservedConcurrentExecutions"] = json!(reserved);
            }
            let tags = tags_of(
                view.tags
                    .as_map()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            (Some(c), tags)
        }
        Err(_) => (None, json!({})),
    };
    Some(Snapshot {
        resource_type: "AWS::Lambda::Function",
        id: name.to_owned(),
        name: name.to_owned(),
        configuration,
        supplementary: json!({}),
        tags,
    })
}

fn policy_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn iam_snapshot(state: &ApiState, kind: &str, name: &str) -> Option<Snapshot> {
    use warden_identity::Holder;
    let identity = &state.access.identity;
    let holder_policies = |holder: Holder| {
        let inline: Vec<Value> = identity
            .inline_policies(&holder)
            .unwrap_or_default()
            .into_iter()
            .map(|p| json!({ "policyName": p.name, "policyDocument": policy_json(&p.document) }))
            .collect();
        let attached: Vec<Value> = identity
            .attached_policies(&holder)
            .unwrap_or_default()
            .into_iter()
            .map(|p| json!({ "policyName": p.name, "policyArn": p.arn }))
            .collect();
        (inline, attached)
    };
    match kind {
        "role" => {
            let role = identity.role(name);
            let configuration = role.as_ref().map(|r| {
                let (inline, attached) = holder_policies(Holder::Role(r.name.clone()));
                json!({
                    "roleName": r.name, "roleId": r.id, "arn": r.arn, "path": r.path,
                    "assumeRolePolicyDocument": policy_json(&r.trust_policy),
                    "description": r.description,
                    "maxSessionDuration": r.max_session_duration_s,
                    "rolePolicyList": inline,
                    "attachedManagedPolicies": attached,
                })
            });
            let tags = role.as_ref().map_or(json!({}), |r| {
                tags_of(r.tags.iter().map(|(k, v)| (k.clone(), v.clone())))
            });
            Some(Snapshot {
                resource_type: "AWS::IAM::Role",
                id: name.to_owned(),
                name: name.to_owned(),
                configuration,
                supplementary: json!({}),
                tags,
            })
        }
        "user" => {
            let user = identity.user(name);
            let configuration = user.as_ref().map(|u| {
                let (inline, attached) = holder_policies(Holder::User(u.name.clone()));
                json!({
                    "userName": u.name, "userId": u.id, "arn": u.arn,
                    "userPolicyList": inline,
                    "attachedManagedPolicies": attached,
                })
            });
            Some(Snapshot {
                resource_type: "AWS::IAM::User",
                id: name.to_owned(),
                name: name.to_owned(),
                configuration,
                supplementary: json!({}),
                tags: json!({}),
            })
        }
        _ => None,
    }
}

fn managed_policy_snapshot(state: &ApiState, arn: &str) -> Option<Snapshot> {
    let name = arn.rsplit('/').next()?.to_owned();
    let policy = state.access.identity.policy(arn);
    let configuration = policy.map(|p| {
        json!({
            "policyName": p.name, "policyId": p.id, "arn": p.arn, "path": p.path,
            "description": p.description,
            "document": policy_json(&p.document),
        })
    });
    Some(Snapshot {
        resource_type: "AWS::IAM::Policy",
        id: name.clone(),
        name,
        configuration,
        supplementary: json!({}),
        tags: json!({}),
    })
}

fn key_snapshot(state: &ApiState, arn: &str) -> Option<Snapshot> {
    let id = arn.rsplit('/').next()?.to_owned();
    let key = state.kms.resolve(arn).ok();
    let configuration = key.as_ref().map(|k| {
        json!({
            "KeyMetadata": crate::kms::metadata(state, k),
            "Policy": policy_json(&k.record.policy),
        })
    });
    Some(Snapshot {
        resource_type: "AWS::KMS::Key",
        id: id.clone(),
        name: id,
        configuration,
        supplementary: json!({}),
        tags: json!({}),
    })
}

fn secret_snapshot(state: &ApiState, arn: &str) -> Option<Snapshot> {
    let found = state.secrets.describe(arn).ok();
    let name = found.as_ref().map(|(s, _)| s.name.clone()).or_else(|| {
        // `NAME-XXXXXX`: the name without Secrets Manager's random suffix.
        let last = arn.rsplit(':').next()?;
        Some(last.rsplit_once('-').map_or(last, |(n, _)| n).to_owned())
    })?;
    let configuration = found.as_ref().map(|(s, _)| {
        json!({
            "Name": s.name, "ARN": s.arn, "Description": s.description,
            "KmsKeyId": s.kms_key_id,
            "RotationEnabled": s.rotation.is_some(),
            "DeletedDate": s.deleted_ms,
            "ResourcePolicy": s.policy.as_deref().map(policy_json),
        })
    });
    let tags = found
        .as_ref()
        .map_or(json!({}), |(s, _)| tags_of(s.tags.iter().cloned()));
    Some(Snapshot {
        resource_type: "AWS::SecretsManager::Secret",
        id: name.clone(),
        name,
        configuration,
        supplementary: json!({}),
        tags,
    })
}

/// A layer version (`layer:NAME:VERSION`): its description, runtimes, code digest and
/// permission policy. A layer ARN without a version names no configuration.
async fn layer_snapshot(state: &ApiState, rest: &str) -> Option<Snapshot> {
    let mut parts = rest.split(':').skip(1);
    let name = parts.next()?;
    let version: u64 = parts.next()?.parse().ok()?;
    let layer = warden_types::layer::LayerName::new(name).ok()?;
    let configuration = match state.control.get_layer_version(&layer, version).await {
        Ok(v) => {
            let policy = state
                .control
                .layer_policy_document(&layer, version)
                .await
                .ok()
                .flatten()
                .map(|p| policy_json(&p));
            Some(json!({
                "LayerName": name,
                "Version": version,
                "Description": v.description,
                "CompatibleRuntimes": v.compatible_runtimes,
                "CompatibleArchitectures": v.compatible_architectures,
                "LicenseInfo": v.license_info,
                "CodeSha256": v.code_sha256,
                "CodeSize": v.code_size,
                "Policy": policy,
            }))
        }
        Err(_) => None,
    };
    Some(Snapshot {
        resource_type: "AWS::Lambda::LayerVersion",
        id: format!("{name}:{version}"),
        name: format!("{name}:{version}"),
        configuration,
        supplementary: json!({}),
        tags: json!({}),
    })
}

fn code_signing_snapshot(state: &ApiState, arn: &str) -> Option<Snapshot> {
    let id = arn.rsplit(':').next()?.to_owned();
    let signing = state.control.code_signing().ok()?;
    let configuration = signing.signer.config(arn).ok().map(|c| {
        json!({
            "CodeSigningConfigId": c.id,
            "CodeSigningConfigArn": c.arn,
            "Description": c.description,
            "AllowedPublishers": { "SigningProfileVersionArns": c.allowed },
            "CodeSigningPolicies": { "UntrustedArtifactOnDeployment": c.policy.as_str() },
        })
    });
    Some(Snapshot {
        resource_type: "AWS::Lambda::CodeSigningConfig",
        id: id.clone(),
        name: id,
        configuration,
        supplementary: json!({}),
        tags: json!({}),
    })
}

fn security_group_snapshot(state: &ApiState, arn: &str) -> Option<Snapshot> {
    let id = arn.rsplit('/').next()?.to_owned();
    let group = state.network.security_group(&id);
    let rules = |rules: &[warden_network::SgRule]| -> Vec<Value> {
        rules
            .iter()
            .map(|r| {
                json!({
                    "ruleId": r.id, "ipProtocol": r.protocol.to_string(),
                    "fromPort": r.from_port, "toPort": r.to_port,
                    "peer": r.peer.to_string(), "description": r.description,
                })
            })
            .collect()
    };
    let configuration = group.as_ref().map(|g| {
        json!({
            "groupId": g.id, "groupName": g.name, "vpcId": g.vpc_id,
            "description": g.description,
            "ipPermissions": rules(&g.ingress),
            "ipPermissionsEgress": rules(&g.egress),
        })
    });
    let tags = group
        .as_ref()
        .map_or(json!({}), |g| tags_of(g.tags.iter().cloned()));
    let name = group
        .as_ref()
        .map_or_else(|| id.clone(), |g| g.name.clone());
    Some(Snapshot {
        resource_type: "AWS::EC2::SecurityGroup",
        id,
        name,
        configuration,
        supplementary: json!({}),
        tags,
    })
}

/// The snapshot of the resource `arn` names, if its type is recorded.
async fn snapshot(state: &ApiState, arn: &str) -> Option<Snapshot> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, service, _, _, rest] = parts.as_slice() else {
        return None;
    };
    match *service {
        "lambda" if rest.starts_with("code-signing-config:") => code_signing_snapshot(state, arn),
        "lambda" if rest.starts_with("layer:") => layer_snapshot(state, rest).await,
        "lambda" => {
            let mut segments = rest.split(':');
            if segments.next() != Some("function") {
                return None;
            }
            let name = segments.next()?;
            match segments.next() {
                None => function_snapshot(state, name, None).await,
                // A version is immutable; an alias is not.
                Some(q) if q.bytes().all(|b| b.is_ascii_digit()) || q == "$LATEST" => None,
                Some(alias) => function_snapshot(state, name, Some(alias)).await,
            }
        }
        "iam" => {
            let (kind, path) = rest.split_once('/')?;
            match kind {
                "role" | "user" => iam_snapshot(state, kind, path.rsplit('/').next()?),
                "policy" if !arn.contains(":aws:policy/") => managed_policy_snapshot(state, arn),
                _ => None,
            }
        }
        "kms" if rest.starts_with("key/") => key_snapshot(state, arn),
        "secretsmanager" if rest.starts_with("secret:") => secret_snapshot(state, arn),
        "ec2" if rest.starts_with("security-group/") => security_group_snapshot(state, arn),
        _ => None,
    }
}

/// The ARNs a successful write's JSON answer names (`...Arn` members, at the top level or
/// one level down): what a `Create` call made, which authorization could not name before
/// it existed.
fn created_arns(reply: &crate::Reply) -> Vec<String> {
    let Some(body) = reply.body().whole().filter(|b| b.len() <= 256 * 1024) else {
        return Vec::new();
    };
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut take = |k: &str, v: &Value| {
        if let Some(s) = v.as_str() {
            if (k.ends_with("Arn") || k.eq_ignore_ascii_case("arn")) && s.starts_with("arn:") {
                out.push(s.to_owned());
            }
        }
    };
    for (k, v) in &top {
        take(k, v);
        if let Value::Object(inner) = v {
            for (k, v) in inner {
                take(k, v);
            }
        }
    }
    out.truncate(16);
    out
}

/// The alias an alias operation changed: authorization names the function for them (as
/// Lambda does), so the alias comes from the path, or from `CreateAlias`'s body.
fn alias_arn(state: &ApiState, note: &Note) -> Option<String> {
    use crate::routes::Operation as O;
    let (function, alias) = match note.operation.as_ref()? {
        O::UpdateAlias(f, a) | O::DeleteAlias(f, a) => (f.clone(), a.clone()),
        O::CreateAlias(f) => {
            let body: Value = serde_json::from_slice(&note.body).ok()?;
            (f.clone(), body.get("Name")?.as_str()?.to_owned())
        }
        _ => return None,
    };
    let function = state.function_ref(&function).ok()?.name;
    Some(state.function_arn(&function, Some(&alias)))
}

/// Records a configuration item of each recorded resource the call `note` named, linked to
/// its audit event `event_id`. Failures are logged: the call itself already succeeded and
/// was recorded in the audit trail, which stays the record of what happened.
pub(crate) async fn capture(
    state: &ApiState,
    store: &Arc<ConfigStore>,
    note: &Note,
    event_id: &str,
    reply: &crate::Reply,
) {
    let mut arns: Vec<String> = Vec::new();
    for arn in note
        .targets
        .iter()
        .map(|(_, arn)| arn.clone())
        .chain(alias_arn(state, note))
        .chain(created_arns(reply))
    {
        if arn.starts_with("arn:") && !arns.contains(&arn) {
            arns.push(arn);
        }
    }
    for arn in &arns {
        let Some(snap) = snapshot(state, arn).await else {
            continue;
        };
        let item = NewItem {
            resource_type: snap.resource_type.to_owned(),
            resource_id: snap.id,
            resource_name: snap.name,
            arn: arn.clone(),
            capture_ms: warden_types::now_millis(),
            configuration: snap.configuration,
            supplementary: snap.supplementary,
            tags: snap.tags,
            related_events: vec![event_id.to_owned()],
        };
        let store = Arc::clone(store);
        let result = tokio::task::spawn_blocking(move || store.record(item)).await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(%arn, error = %e, "a configuration item was not recorded")
            }
            Err(e) => tracing::error!(%arn, error = %e, "a configuration item was not recorded"),
        }
    }
}

fn error(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(http::StatusCode::BAD_REQUEST, code, message)
}

fn store_of(state: &ApiState) -> Result<&Arc<ConfigStore>, ApiError> {
    state.audit.config_history().ok_or_else(|| {
        error(
            "NoAvailableConfigurationRecorderException",
            "this server keeps no configuration history",
        )
    })
}

fn map_error(e: warden_config::Error) -> ApiError {
    use warden_config::Error as E;
    match e {
        E::InvalidNextToken => error("InvalidNextTokenException", e.to_string()),
        E::InvalidLimit(_) => error("InvalidLimitException", e.to_string()),
        E::NotDiscovered { .. } => error("ResourceNotDiscoveredException", e.to_string()),
        other => ApiError::internal(other),
    }
}

fn resource_type(input: &Input<'_>) -> Result<String, ApiError> {
    let t = input.required("resourceType")?;
    if !RECORDED_TYPES.contains(&t) {
        let shown: String = t.chars().take(128).collect();
        return Err(error(
            "ValidationException",
            format!(
                "Warden records no configuration of `{shown}`; it records {}",
                RECORDED_TYPES.join(", ")
            ),
        ));
    }
    Ok(t.to_owned())
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn limit(input: &Input<'_>) -> Result<Option<u32>, ApiError> {
    match input.integer("limit")? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n <= warden_config::MAX_LIMIT)
            .map(Some)
            .ok_or_else(|| {
                error(
                    "InvalidLimitException",
                    format!("limit must be between 0 and {}", warden_config::MAX_LIMIT),
                )
            }),
    }
}

async fn get_resource_config_history(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "GetResourceConfigHistory",
        &body,
        &[
            "resourceType",
            "resourceId",
            "laterTime",
            "earlierTime",
            "chronologicalOrder",
            "limit",
            "nextToken",
        ],
    )?;
    let order = match input.string("chronologicalOrder")? {
        None | Some("Reverse") => Order::Reverse,
        Some("Forward") => Order::Forward,
        Some(other) => {
            let shown: String = other.chars().take(64).collect();
            return Err(error(
                "ValidationException",
                format!("chronologicalOrder must be Reverse or Forward, not `{shown}`"),
            ));
        }
    };
    let query = HistoryQuery {
        resource_type: resource_type(&input)?,
        resource_id: input.required("resourceId")?.chars().take(768).collect(),
        earlier_ms: input.epoch_ms("earlierTime")?,
        later_ms: input.epoch_ms("laterTime")?,
        order,
        limit: limit(&input)?,
        next_token: input.string("nextToken")?.map(str::to_owned),
    };
    if let (Some(e), Some(l)) = (query.earlier_ms, query.later_ms) {
        if e > l {
            return Err(error(
                "InvalidTimeRangeException",
                "earlierTime must not be after laterTime",
            ));
        }
    }
    let store = Arc::clone(store_of(state)?);
    let (items, next) = tokio::task::spawn_blocking(move || store.history(&query))
        .await
        .map_err(ApiError::internal)?
        .map_err(map_error)?;
    let account = state.account.to_string();
    let region = state.region.to_string();
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| {
            json!({
                "version": "1.3",
                "accountId": account,
                "configurationItemCaptureTime": seconds(i.capture_ms),
                "configurationItemStatus": i.status.as_str(),
                "configurationStateId": i.state_id.to_string(),
                "arn": i.arn,
                "resourceType": i.resource_type,
                "resourceId": i.resource_id,
                "resourceName": i.resource_name,
                "awsRegion": region,
                "tags": i.tags,
                "relatedEvents": i.related_events,
                "relationships": [],
                "configuration": i.configuration.map(|c| c.to_string()),
                "supplementaryConfiguration": i.supplementary.as_object().map(|m| {
                    m.iter().map(|(k, v)| (k.clone(), Value::String(v.to_string()))).collect::<serde_json::Map<_, _>>()
                }),
                "recordingFrequency": "CONTINUOUS",
            })
        })
        .collect();
    let mut out = json!({ "configurationItems": items });
    if let Some(t) = next {
        out["nextToken"] = json!(t);
    }
    reply(&out)
}

async fn list_discovered_resources(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListDiscoveredResources",
        &body,
        &[
            "resourceType",
            "resourceIds",
            "resourceName",
            "limit",
            "includeDeletedResources",
            "nextToken",
        ],
    )?;
    let resource_type = resource_type(&input)?;
    let ids = input.strings("resourceIds")?;
    if ids.len() > 20 {
        return Err(error(
            "ValidationException",
            "resourceIds takes at most 20 ids",
        ));
    }
    let name = input.string("resourceName")?.map(str::to_owned);
    let include_deleted = input.boolean("includeDeletedResources")?;
    let limit = limit(&input)?;
    let token = input.string("nextToken")?.map(str::to_owned);
    let store = Arc::clone(store_of(state)?);
    let (found, next) = tokio::task::spawn_blocking(move || {
        store.discovered(
            &resource_type,
            &ids,
            name.as_deref(),
            include_deleted,
            limit,
            token.as_deref(),
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(map_error)?;
    let found: Vec<Value> = found
        .into_iter()
        .map(|r| {
            let mut v = json!({
                "resourceType": r.resource_type,
                "resourceId": r.resource_id,
                "resourceName": r.resource_name,
            });
            if let Some(d) = r.deleted_ms {
                v["resourceDeletionTime"] = json!(seconds(d));
            }
            v
        })
        .collect();
    let mut out = json!({ "resourceIdentifiers": found });
    if let Some(t) = next {
        out["nextToken"] = json!(t);
    }
    reply(&out)
}

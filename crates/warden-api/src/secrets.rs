//! Secrets Manager's JSON 1.1 API (`X-Amz-Target: secretsmanager.*`), over
//! `warden_secrets::Secrets`, and the running of rotations.
//!
//! Who may call what: every operation is authorized with its IAM action
//! (`secretsmanager:GetSecretValue`) on the secret's ARN (for a secret that does not exist
//! yet, `...:secret:NAME-*`), decided by the caller's identity policies and the secret's
//! resource policy as IAM combines them; `ListSecrets` and `GetRandomPassword` on `*`.
//! Reading a value also needs `kms:Decrypt`, and writing one `kms:GenerateDataKey`, on the
//! secret's KMS key through Secrets Manager (`kms:ViaService` `secretsmanager.REGION...`),
//! decided by the key policy as KMS decides; `RotateSecret` also needs
//! `lambda:InvokeFunction` on the rotation function, whose policy must let
//! `secretsmanager.amazonaws.com` invoke it.
//!
//! What each can change: secrets (values, stages, settings, policy, tags, rotation);
//! rotation invokes the rotation function, which changes the secret through this API with
//! its own role's credentials.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{json, Map, Value};
use warden_iam::PolicyKind;
use warden_kms::wire::seconds;
use warden_secrets::{NewSecret, Rotation, Secret, SecretValue, SecretsError, Version};
use warden_types::identity::Principal;
use warden_types::FunctionRef;

use crate::access::Target;
use crate::doors::{json_op, JsonOperation, JsonService};
use crate::error::JsonVersion;
use crate::kms::{b64, reply, Input};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// Secrets Manager (`secretsmanager`).
pub static SECRETS_MANAGER: JsonService = JsonService {
    signing_name: "secretsmanager",
    target_prefix: "secretsmanager",
    version: JsonVersion::V1_1,
    operations: OPERATIONS,
    max_body: crate::doors::DEFAULT_BODY_LIMIT,
};

const OPERATIONS: &[JsonOperation] = &[
    json_op!("CreateSecret", create_targets, create_secret),
    json_op!("GetSecretValue", read_targets, get_secret_value),
    json_op!("PutSecretValue", write_targets, put_secret_value),
    json_op!("UpdateSecret", write_targets, update_secret),
    json_op!("DescribeSecret", secret_target, describe_secret),
    json_op!("ListSecrets", any_target, list_secrets),
    json_op!(
        "ListSecretVersionIds",
        secret_target,
        list_secret_version_ids
    ),
    json_op!("DeleteSecret", secret_target, delete_secret),
    json_op!("RestoreSecret", secret_target, restore_secret),
    json_op!(
        "UpdateSecretVersionStage",
        secret_target,
        update_secret_version_stage
    ),
    json_op!("GetResourcePolicy", secret_target, get_resource_policy),
    json_op!("PutResourcePolicy", secret_target, put_resource_policy),
    json_op!(
        "DeleteResourcePolicy",
        secret_target,
        delete_resource_policy
    ),
    json_op!("TagResource", secret_target, tag_resource),
    json_op!("UntagResource", secret_target, untag_resource),
    json_op!("RotateSecret", rotate_targets, rotate_secret),
    json_op!("CancelRotateSecret", secret_target, cancel_rotate_secret),
    json_op!("GetRandomPassword", any_target, get_random_password),
];

/// A Secrets Manager error as the caller sees it.
fn error(e: SecretsError) -> ApiError {
    if e.is_internal() {
        let mut err = ApiError::internal(&e);
        err.code = "InternalServiceError";
        return err;
    }
    ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
        message,
    )
}

// ---- targets ----

fn secret_id(body: &Value) -> Result<&str, ApiError> {
    body.get("SecretId")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("SecretId is required"))
}

fn policy_of(secret: &Secret) -> Option<Arc<warden_iam::Policy>> {
    secret
        .policy
        .as_deref()
        .and_then(|p| warden_iam::Policy::parse_as(p, PolicyKind::Resource).ok())
        .map(Arc::new)
}

/// The target of `operation` on the secret `id` names, and that secret if it exists (read
/// once, for the targets that depend on it too).
fn on_secret(state: &ApiState, operation: &str, id: &str) -> (Target, Option<Secret>) {
    let secret = state.secrets.resolve(id).ok();
    let target = Target {
        action: format!("secretsmanager:{operation}"),
        resource: secret
            .as_ref()
            .map_or_else(|| state.secrets.arn_for_missing(id), |s| s.arn.clone()),
        policy: secret.as_ref().and_then(policy_of),
        ..Target::default()
    };
    (target, secret)
}

/// `kms:ACTION` on the key sealing `secret`'s values, through Secrets Manager.
fn key_target(
    state: &ApiState,
    principal: Option<&Principal>,
    key_ref: &str,
    action: &str,
) -> Result<Target, ApiError> {
    let key = state.kms.resolve(key_ref).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "EncryptionFailure",
            format!("KMS refused: {e}"),
        )
    })?;
    Ok(crate::kms::via_service_target(
        state,
        principal,
        &key,
        action,
        "secretsmanager",
    ))
}

fn secret_target(
    state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(vec![on_secret(state, operation, secret_id(body)?).0])
}

fn any_target(
    _state: &ApiState,
    operation: &str,
    _body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(vec![Target {
        action: format!("secretsmanager:{operation}"),
        resource: "*".into(),
        ..Target::default()
    }])
}

fn has_value(body: &Value) -> bool {
    body.get("SecretString").is_some_and(|v| !v.is_null())
        || body.get("SecretBinary").is_some_and(|v| !v.is_null())
}

fn create_targets(
    state: &ApiState,
    operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let name = body
        .get("Name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("Name is required"))?;
    let mut targets = vec![Target {
        action: format!("secretsmanager:{operation}"),
        resource: state.secrets.arn_for_missing(name),
        ..Target::default()
    }];
    if body
        .get("Tags")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        targets.push(Target {
            action: "secretsmanager:TagResource".into(),
            resource: state.secrets.arn_for_missing(name),
            ..Target::default()
        });
    }
    if has_value(body) {
        let key = body
            .get("KmsKeyId")
            .and_then(Value::as_str)
            .unwrap_or("alias/aws/secretsmanager");
        targets.push(key_target(state, principal, key, "kms:GenerateDataKey")?);
    }
    Ok(targets)
}

pub(crate) fn read_targets(
    state: &ApiState,
    operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let (target, secret) = on_secret(state, operation, secret_id(body)?);
    let mut targets = vec![target];
    if let Some(secret) = secret {
        targets.push(key_target(
            state,
            principal,
            secret.key_ref(),
            "kms:Decrypt",
        )?);
    }
    Ok(targets)
}

fn write_targets(
    state: &ApiState,
    operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let (target, secret) = on_secret(state, operation, secret_id(body)?);
    let mut targets = vec![target];
    if let Some(secret) = secret {
        let new_key = body.get("KmsKeyId").and_then(Value::as_str);
        if has_value(body) || new_key.is_some_and(|k| !k.is_empty()) {
            let key = new_key
                .filter(|k| !k.is_empty())
                .unwrap_or(secret.key_ref());
            targets.push(key_target(state, principal, key, "kms:GenerateDataKey")?);
        }
    }
    Ok(targets)
}

fn rotate_targets(
    state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let (target, secret) = on_secret(state, operation, secret_id(body)?);
    let mut targets = vec![target];
    let lambda = body
        .get("RotationLambdaARN")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| secret.and_then(|s| s.rotation.map(|r| r.lambda_arn)));
    if let Some(arn) = lambda {
        targets.push(Target {
            action: "lambda:InvokeFunction".into(),
            resource: arn,
            ..Target::default()
        });
    }
    Ok(targets)
}

// ---- values ----

fn value_of(input: &Input<'_>) -> Result<Option<SecretValue>, ApiError> {
    match (input.string("SecretString")?, input.blob("SecretBinary")?) {
        (Some(_), Some(_)) => Err(invalid(
            "You can't specify both a binary secret value and a string secret value in the same secret.",
        )),
        (Some(s), None) => Ok(Some(SecretValue::String(s.to_owned()))),
        (None, Some(b)) => Ok(Some(SecretValue::Binary(b))),
        (None, None) => Ok(None),
    }
}

fn put_value(out: &mut Value, value: &SecretValue) {
    match value {
        SecretValue::String(s) => out["SecretString"] = json!(s),
        SecretValue::Binary(b) => out["SecretBinary"] = b64(b),
    }
}

fn tags_of(input: &Input<'_>, name: &str) -> Result<Vec<(String, String)>, ApiError> {
    let Some(v) = input.get(name) else {
        return Ok(Vec::new());
    };
    let items = v
        .as_array()
        .ok_or_else(|| ApiError::serialization(format!("{name} must be a list")))?;
    items
        .iter()
        .map(|t| match (t.get("Key").and_then(Value::as_str), t.get("Value").and_then(Value::as_str)) {
            (Some(k), Some(v)) if !k.is_empty() && k.len() <= 128 && v.len() <= 256 && !k.starts_with("aws:") => {
                Ok((k.to_owned(), v.to_owned()))
            }
            _ => Err(invalid(
                "Each tag needs a Key (1-128 characters, not starting with aws:) and a Value (at most 256)",
            )),
        })
        .collect()
}

fn stages_map(versions: &[Version]) -> Value {
    let mut m = Map::new();
    for v in versions.iter().filter(|v| !v.stages.is_empty()) {
        m.insert(v.id.clone(), json!(v.stages));
    }
    Value::Object(m)
}

fn describe(secret: &Secret, versions: &[Version]) -> Value {
    let mut out = json!({
        "ARN": secret.arn,
        "Name": secret.name,
        "CreatedDate": seconds(secret.created_ms),
        "LastChangedDate": seconds(secret.last_changed_ms),
        "RotationEnabled": secret.rotation.is_some(),
        "Tags": secret.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
        "VersionIdsToStages": stages_map(versions),
    });
    if let Some(d) = &secret.description {
        out["Description"] = json!(d);
    }
    if let Some(k) = &secret.kms_key_id {
        out["KmsKeyId"] = json!(k);
    }
    if let Some(t) = secret.last_accessed_ms {
        out["LastAccessedDate"] = seconds(t);
    }
    if let Some(t) = secret.deleted_ms {
        out["DeletedDate"] = seconds(t);
    }
    if let Some(t) = secret.last_rotated_ms {
        out["LastRotatedDate"] = seconds(t);
    }
    if let Some(r) = &secret.rotation {
        out["RotationLambdaARN"] = json!(r.lambda_arn);
        let mut rules = json!({});
        if let Some(d) = r.after_days {
            rules["AutomaticallyAfterDays"] = json!(d);
        }
        if let Some(s) = &r.schedule {
            rules["ScheduleExpression"] = json!(s);
        }
        out["RotationRules"] = rules;
        if let Some(n) = r.next_ms {
            out["NextRotationDate"] = seconds(n);
        }
    }
    out
}

// ---- handlers ----

async fn create_secret(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "CreateSecret",
        &body,
        &[
            "Name",
            "ClientRequestToken",
            "Description",
            "KmsKeyId",
            "SecretBinary",
            "SecretString",
            "Tags",
            "AddReplicaRegions",
            "ForceOverwriteReplicaSecret",
            "Type",
        ],
    )?;
    if input.get("AddReplicaRegions").is_some() || input.boolean("ForceOverwriteReplicaSecret")? {
        return Err(invalid(
            "AddReplicaRegions: Warden serves one region; secrets are not replicated",
        ));
    }
    if input.get("Type").is_some() {
        return Err(invalid("Type: Warden has no managed external secrets"));
    }
    let (secret, version) = state
        .secrets
        .create(NewSecret {
            name: input.required("Name")?.to_owned(),
            description: input.string("Description")?.map(str::to_owned),
            kms_key_id: input
                .string("KmsKeyId")?
                .filter(|k| !k.is_empty())
                .map(str::to_owned),
            value: value_of(&input)?,
            token: input.string("ClientRequestToken")?.map(str::to_owned),
            tags: tags_of(&input, "Tags")?,
        })
        .map_err(error)?;
    let mut out = json!({ "ARN": secret.arn, "Name": secret.name });
    if let Some(v) = version {
        out["VersionId"] = json!(v.id);
    }
    reply(&out)
}

pub(crate) async fn get_secret_value(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "GetSecretValue",
        &body,
        &["SecretId", "VersionId", "VersionStage"],
    )?;
    let (secret, version, value) = state
        .secrets
        .get_value(
            input.required("SecretId")?,
            input.string("VersionId")?,
            input.string("VersionStage")?,
        )
        .map_err(error)?;
    let mut out = json!({
        "ARN": secret.arn,
        "Name": secret.name,
        "VersionId": version.id,
        "VersionStages": version.stages,
        "CreatedDate": seconds(version.created_ms),
    });
    put_value(&mut out, &value);
    reply(&out)
}

async fn put_secret_value(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "PutSecretValue",
        &body,
        &[
            "SecretId",
            "ClientRequestToken",
            "SecretBinary",
            "SecretString",
            "VersionStages",
            "RotationToken",
        ],
    )?;
    if input.get("RotationToken").is_some() {
        return Err(invalid(
            "RotationToken: Warden's rotation functions sign with their own role",
        ));
    }
    let value = value_of(&input)?
        .ok_or_else(|| invalid("You must provide either SecretString or SecretBinary."))?;
    let stages = input
        .get("VersionStages")
        .map(|_| input.strings("VersionStages"))
        .transpose()?;
    let (secret, version) = state
        .secrets
        .put_value(
            input.required("SecretId")?,
            input.string("ClientRequestToken")?,
            &value,
            stages,
        )
        .map_err(error)?;
    reply(&json!({
        "ARN": secret.arn,
        "Name": secret.name,
        "VersionId": version.id,
        "VersionStages": version.stages,
    }))
}

async fn update_secret(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "UpdateSecret",
        &body,
        &[
            "SecretId",
            "ClientRequestToken",
            "Description",
            "KmsKeyId",
            "SecretBinary",
            "SecretString",
            "Type",
        ],
    )?;
    if input.get("Type").is_some() {
        return Err(invalid("Type: Warden has no managed external secrets"));
    }
    let id = input.required("SecretId")?;
    let description = input.string("Description")?.map(str::to_owned);
    let key = input.string("KmsKeyId")?.map(str::to_owned);
    let mut secret = state.secrets.resolve(id).map_err(error)?;
    if description.is_some() || key.is_some() {
        secret = state
            .secrets
            .update_settings(id, description, key)
            .map_err(error)?;
    }
    let mut out = json!({ "ARN": secret.arn, "Name": secret.name });
    if let Some(value) = value_of(&input)? {
        let (_, version) = state
            .secrets
            .put_value(id, input.string("ClientRequestToken")?, &value, None)
            .map_err(error)?;
        out["VersionId"] = json!(version.id);
    }
    reply(&out)
}

async fn describe_secret(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("DescribeSecret", &body, &["SecretId"])?;
    let (secret, versions) = state
        .secrets
        .describe(input.required("SecretId")?)
        .map_err(error)?;
    reply(&describe(&secret, &versions))
}

/// `NextToken`: the index of the first item of the page, as text.
fn page_start(input: &Input<'_>) -> Result<(usize, usize), ApiError> {
    let max = match input.integer("MaxResults")? {
        None => 100,
        Some(n) if (1..=100).contains(&n) => n as usize,
        Some(_) => return Err(invalid("MaxResults must be from 1 to 100")),
    };
    let start = match input.string("NextToken")? {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidNextTokenException",
                "The NextToken value is invalid.",
            )
        })?,
    };
    Ok((start, max))
}

/// Whether `secret` passes one `Filters` entry.
fn passes(secret: &Secret, key: &str, values: &[String]) -> Result<bool, ApiError> {
    let any = |text: &str| {
        values.iter().any(|v| match v.strip_prefix('!') {
            Some(neg) => !text.starts_with(neg),
            None => text.starts_with(v.as_str()),
        })
    };
    Ok(match key {
        "name" => any(&secret.name),
        "description" => any(secret.description.as_deref().unwrap_or("")),
        "tag-key" => secret.tags.iter().any(|(k, _)| any(k)),
        "tag-value" => secret.tags.iter().any(|(_, v)| any(v)),
        "all" => {
            any(&secret.name)
                || any(secret.description.as_deref().unwrap_or(""))
                || secret.tags.iter().any(|(k, v)| any(k) || any(v))
        }
        "primary-region" | "owning-service" => false,
        other => return Err(invalid(format!("Filters: unknown Key `{other}`"))),
    })
}

async fn list_secrets(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListSecrets",
        &body,
        &[
            "MaxResults",
            "NextToken",
            "Filters",
            "SortOrder",
            "IncludePlannedDeletion",
            "SortBy",
        ],
    )?;
    let (start, max) = page_start(&input)?;
    let filters: Vec<(String, Vec<String>)> = match input.get("Filters") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .ok_or_else(|| ApiError::serialization("Filters must be a list"))?
            .iter()
            .map(|f| {
                let key = f
                    .get("Key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let values = f
                    .get("Values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                (key, values)
            })
            .collect(),
    };
    let mut all = state
        .secrets
        .list(input.boolean("IncludePlannedDeletion")?)
        .map_err(error)?;
    let mut kept = Vec::new();
    for (secret, versions) in all.drain(..) {
        let mut ok = true;
        for (key, values) in &filters {
            ok &= passes(&secret, key, values)?;
        }
        if ok {
            kept.push((secret, versions));
        }
    }
    match input.string("SortOrder")? {
        None | Some("asc") => {}
        Some("desc") => kept.reverse(),
        Some(other) => return Err(invalid(format!("SortOrder `{other}` must be asc or desc"))),
    }
    let page: Vec<Value> = kept
        .iter()
        .skip(start)
        .take(max)
        .map(|(s, v)| {
            let mut d = describe(s, v);
            if let Some(m) = d.as_object_mut() {
                if let Some(stages) = m.remove("VersionIdsToStages") {
                    m.insert("SecretVersionsToStages".into(), stages);
                }
            }
            d
        })
        .collect();
    let mut out = json!({ "SecretList": page });
    if start + max < kept.len() {
        out["NextToken"] = json!((start + max).to_string());
    }
    reply(&out)
}

async fn list_secret_version_ids(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListSecretVersionIds",
        &body,
        &["SecretId", "MaxResults", "NextToken", "IncludeDeprecated"],
    )?;
    let (start, max) = page_start(&input)?;
    let include_deprecated = input.boolean("IncludeDeprecated")?;
    let (secret, versions) = state
        .secrets
        .describe(input.required("SecretId")?)
        .map_err(error)?;
    let shown: Vec<&Version> = versions
        .iter()
        .filter(|v| include_deprecated || !v.stages.is_empty())
        .collect();
    let page: Vec<Value> = shown
        .iter()
        .skip(start)
        .take(max)
        .map(|v| {
            let mut e = json!({
                "VersionId": v.id,
                "VersionStages": v.stages,
                "CreatedDate": seconds(v.created_ms),
            });
            if let Some(t) = v.last_accessed_ms {
                e["LastAccessedDate"] = seconds(t);
            }
            e
        })
        .collect();
    let mut out = json!({ "ARN": secret.arn, "Name": secret.name, "Versions": page });
    if start + max < shown.len() {
        out["NextToken"] = json!((start + max).to_string());
    }
    reply(&out)
}

async fn delete_secret(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "DeleteSecret",
        &body,
        &[
            "SecretId",
            "RecoveryWindowInDays",
            "ForceDeleteWithoutRecovery",
        ],
    )?;
    let secret = state
        .secrets
        .delete(
            input.required("SecretId")?,
            input.integer("RecoveryWindowInDays")?,
            input.boolean("ForceDeleteWithoutRecovery")?,
        )
        .map_err(error)?;
    reply(&json!({
        "ARN": secret.arn,
        "Name": secret.name,
        "DeletionDate": seconds(secret.deleted_ms.unwrap_or_default()),
    }))
}

async fn restore_secret(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("RestoreSecret", &body, &["SecretId"])?;
    let secret = state
        .secrets
        .restore(input.required("SecretId")?)
        .map_err(error)?;
    reply(&json!({ "ARN": secret.arn, "Name": secret.name }))
}

async fn update_secret_version_stage(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "UpdateSecretVersionStage",
        &body,
        &[
            "SecretId",
            "VersionStage",
            "RemoveFromVersionId",
            "MoveToVersionId",
        ],
    )?;
    let secret = state
        .secrets
        .move_version_stage(
            input.required("SecretId")?,
            input.required("VersionStage")?,
            input.string("RemoveFromVersionId")?,
            input.string("MoveToVersionId")?,
        )
        .map_err(error)?;
    reply(&json!({ "ARN": secret.arn, "Name": secret.name }))
}

async fn get_resource_policy(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("GetResourcePolicy", &body, &["SecretId"])?;
    let secret = state
        .secrets
        .resolve(input.required("SecretId")?)
        .map_err(error)?;
    let mut out = json!({ "ARN": secret.arn, "Name": secret.name });
    if let Some(p) = &secret.policy {
        out["ResourcePolicy"] = json!(p);
    }
    reply(&out)
}

/// Whether a policy allows anyone (`*`, or `AWS: *`) without a condition.
fn is_public(policy: &Value) -> bool {
    let statements = match policy.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    };
    statements.iter().any(|s| {
        let allow = s.get("Effect").and_then(Value::as_str) == Some("Allow");
        let star = |v: &Value| match v {
            Value::String(s) => s == "*",
            Value::Array(a) => a.iter().any(|x| x.as_str() == Some("*")),
            _ => false,
        };
        let anyone = match s.get("Principal") {
            Some(Value::String(p)) => p == "*",
            Some(Value::Object(o)) => o.get("AWS").is_some_and(star),
            _ => false,
        };
        allow && anyone && s.get("Condition").is_none()
    })
}

async fn put_resource_policy(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "PutResourcePolicy",
        &body,
        &["SecretId", "ResourcePolicy", "BlockPublicPolicy"],
    )?;
    let text = input.required("ResourcePolicy")?;
    if text.len() > 20_480 {
        return Err(invalid("ResourcePolicy must be at most 20,480 characters"));
    }
    warden_iam::Policy::parse_as(text, PolicyKind::Resource).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MalformedPolicyDocumentException",
            format!("The resource policy is malformed: {e}"),
        )
    })?;
    let block = input.get("BlockPublicPolicy").is_none() || input.boolean("BlockPublicPolicy")?;
    let parsed: Value = serde_json::from_str(text).unwrap_or_default();
    if block && is_public(&parsed) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "PublicPolicyException",
            "The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret.",
        ));
    }
    let secret = state
        .secrets
        .put_policy(input.required("SecretId")?, text)
        .map_err(error)?;
    reply(&json!({ "ARN": secret.arn, "Name": secret.name }))
}

async fn delete_resource_policy(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("DeleteResourcePolicy", &body, &["SecretId"])?;
    let secret = state
        .secrets
        .delete_policy(input.required("SecretId")?)
        .map_err(error)?;
    reply(&json!({ "ARN": secret.arn, "Name": secret.name }))
}

async fn tag_resource(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("TagResource", &body, &["SecretId", "Tags"])?;
    state
        .secrets
        .tag(input.required("SecretId")?, tags_of(&input, "Tags")?)
        .map_err(error)?;
    reply(&json!({}))
}

async fn untag_resource(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("UntagResource", &body, &["SecretId", "TagKeys"])?;
    state
        .secrets
        .untag(input.required("SecretId")?, &input.strings("TagKeys")?)
        .map_err(error)?;
    reply(&json!({}))
}

async fn cancel_rotate_secret(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("CancelRotateSecret", &body, &["SecretId"])?;
    let secret = state
        .secrets
        .cancel_rotation(input.required("SecretId")?)
        .map_err(error)?;
    reply(&json!({ "ARN": secret.arn, "Name": secret.name }))
}

async fn rotate_secret(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "RotateSecret",
        &body,
        &[
            "SecretId",
            "ClientRequestToken",
            "RotationLambdaARN",
            "RotationRules",
            "RotateImmediately",
        ],
    )?;
    let id = input.required("SecretId")?;
    let secret = state.secrets.check_no_pending(id).map_err(error)?;
    let lambda = input
        .string("RotationLambdaARN")?
        .map(str::to_owned)
        .or_else(|| secret.rotation.as_ref().map(|r| r.lambda_arn.clone()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestException",
                "No Lambda rotation function ARN is associated with this secret.",
            )
        })?;
    may_invoke(state, &lambda).await?;
    if let Some(rules) = input.get("RotationRules") {
        let after_days = match rules.get("AutomaticallyAfterDays") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or_else(|| invalid("AutomaticallyAfterDays must be a number of days"))?,
            ),
        };
        if rules.get("Duration").is_some() {
            return Err(invalid(
                "RotationRules.Duration: Warden rotates as soon as a rotation is due",
            ));
        }
        state
            .secrets
            .set_rotation(
                id,
                Rotation {
                    lambda_arn: lambda.clone(),
                    after_days,
                    schedule: rules
                        .get("ScheduleExpression")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    next_ms: None,
                },
            )
            .map_err(error)?;
    } else if secret.rotation.is_none() {
        state
            .secrets
            .set_rotation(
                id,
                Rotation {
                    lambda_arn: lambda.clone(),
                    after_days: Some(30),
                    schedule: None,
                    next_ms: None,
                },
            )
            .map_err(error)?;
    }
    let token = input
        .string("ClientRequestToken")?
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let immediately =
        input.get("RotateImmediately").is_none() || input.boolean("RotateImmediately")?;
    if immediately {
        let engine = state.engine.clone();
        let secrets = state.secrets.clone();
        let (arn, function) = (secret.arn.clone(), function_ref(state, &lambda)?);
        let t = token.clone();
        tokio::spawn(async move { rotate(&engine, &secrets, &arn, function, &t).await });
    }
    reply(&json!({ "ARN": secret.arn, "Name": secret.name, "VersionId": token }))
}

fn function_ref(state: &ApiState, arn: &str) -> Result<FunctionRef, ApiError> {
    FunctionRef::parse(arn, &state.account, &state.region).map_err(|_| {
        invalid(format!(
            "RotationLambdaARN `{arn}` is not a function of this account and region"
        ))
    })
}

/// The rotation function's policy must let Secrets Manager invoke it.
async fn may_invoke(state: &ApiState, lambda: &str) -> Result<(), ApiError> {
    let function = function_ref(state, lambda)?;
    let policy = state.access.resource_policy(state, &function.name).await?;
    let request = warden_iam::Request {
        principal: Some("secretsmanager.amazonaws.com".into()),
        action: "lambda:InvokeFunction".into(),
        resource: state.function_arn(&function.name, None),
        context: Default::default(),
    };
    if warden_iam::evaluate(&request, &[], policy.as_deref()).is_allowed() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.",
        ))
    }
}

/// Runs the four steps of one rotation; `AWSCURRENT` moves only if the function moved it.
async fn rotate(
    engine: &warden_engine::Engine,
    secrets: &warden_secrets::Secrets,
    arn: &str,
    function: FunctionRef,
    token: &str,
) {
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let payload = json!({ "Step": step, "SecretId": arn, "ClientRequestToken": token });
        let outcome = engine
            .invoke(warden_engine::InvokeRequest {
                function: function.clone(),
                payload: bytes::Bytes::from(payload.to_string()),
                tail: false,
                client_context: None,
                request_id: None,
                stream: None,
            })
            .await;
        let failed = match &outcome {
            Ok(r) => r.function_error.is_some(),
            Err(_) => true,
        };
        if failed {
            tracing::warn!(
                secret = arn,
                step,
                "a rotation step failed; AWSCURRENT stays where it was"
            );
            break;
        }
    }
    match secrets.finish_rotation(arn, token) {
        Ok(true) => tracing::info!(secret = arn, "rotated"),
        Ok(false) => tracing::warn!(
            secret = arn,
            "the rotation did not make the new version current"
        ),
        Err(e) => {
            tracing::warn!(secret = arn, error = %e, "could not record the end of a rotation")
        }
    }
}

/// Rotates every secret whose scheduled rotation is due, every `period`.
pub async fn rotation_scheduler(state: Arc<ApiState>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        // Claimed, so that of several nodes sharing the secrets only one rotates each.
        let due = match state.secrets.claim_due_rotations() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the rotation schedule");
                continue;
            }
        };
        for secret in due {
            let Some(rotation) = &secret.rotation else {
                continue;
            };
            let Ok(function) = function_ref(&state, &rotation.lambda_arn) else {
                continue;
            };
            let token = uuid::Uuid::new_v4().to_string();
            rotate(&state.engine, &state.secrets, &secret.arn, function, &token).await;
        }
    }
}

async fn get_random_password(
    _state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "GetRandomPassword",
        &body,
        &[
            "PasswordLength",
            "ExcludeCharacters",
            "ExcludeNumbers",
            "ExcludePunctuation",
            "ExcludeUppercase",
            "ExcludeLowercase",
            "IncludeSpace",
            "RequireEachIncludedType",
        ],
    )?;
    let len = match input.integer("PasswordLength")? {
        None => 32,
        Some(n) if (1..=4096).contains(&n) => n as usize,
        Some(_) => return Err(invalid("PasswordLength must be from 1 to 4096")),
    };
    let exclude = input.string("ExcludeCharacters")?.unwrap_or("");
    let mut classes: Vec<Vec<u8>> = Vec::new();
    let keep = |set: &[u8]| -> Vec<u8> {
        set.iter()
            .copied()
            .filter(|c| !exclude.as_bytes().contains(c))
            .collect()
    };
    if !input.boolean("ExcludeLowercase")? {
        classes.push(keep(b"abcdefghijklmnopqrstuvwxyz"));
    }
    if !input.boolean("ExcludeUppercase")? {
        classes.push(keep(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
    }
    if !input.boolean("ExcludeNumbers")? {
        classes.push(keep(b"0123456789"));
    }
    if !input.boolean("ExcludePunctuation")? {
        classes.push(keep(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"));
    }
    if input.boolean("IncludeSpace")? {
        classes.push(keep(b" "));
    }
    classes.retain(|c| !c.is_empty());
    let require_each = input.get("RequireEachIncludedType").is_none()
        || input.boolean("RequireEachIncludedType")?;
    if classes.is_empty() || (require_each && classes.len() > len) {
        return Err(invalid(
            "No password of that length can be made from the characters left",
        ));
    }
    let all: Vec<u8> = classes.concat();
    // `rand`'s thread generator is a CSPRNG seeded from the operating system; `choose` and
    // `shuffle` draw without modulo bias.
    let mut rng = rand::rng();
    let mut out: Vec<u8> = Vec::with_capacity(len);
    if require_each {
        out.extend(classes.iter().filter_map(|class| class.choose(&mut rng)));
    }
    while out.len() < len {
        out.extend(all.choose(&mut rng));
    }
    // The required characters must not sit at the front.
    out.shuffle(&mut rng);
    let password = String::from_utf8(out).map_err(ApiError::internal)?;
    reply(&json!({ "RandomPassword": password }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_policies_are_recognised() {
        let open = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
        let aws_star = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "*", "Resource": "*"}});
        let conditioned = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": "123456789012"}}}]});
        let named = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/a"}, "Action": "*", "Resource": "*"}]});
        assert!(is_public(&open) && is_public(&aws_star));
        assert!(!is_public(&conditioned) && !is_public(&named));
    }
}

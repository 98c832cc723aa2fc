//! KMS's JSON 1.1 API (`X-Amz-Target: TrentService.*`), over `warden_kms::Kms`.
//!
//! Who may call what: every operation is authorized with its IAM action (`kms:Encrypt`)
//! on the key's ARN, decided by the key policy as KMS decides (`warden_iam::
//! evaluate_key_policy`: the key policy must allow the caller or delegate to the account,
//! and then an identity policy must allow too); operations on no key (`CreateKey`,
//! `ListKeys`, `ListAliases`, `GenerateRandom`) by identity policies on `*`; aliases need
//! the action on the alias (identity policies) and on the key it names (key policy), as
//! KMS documents. The condition keys `kms:CallerAccount`, `kms:EncryptionContext:KEY`,
//! `kms:EncryptionContextKeys` and `kms:RequestAlias` are set from the request;
//! `kms:ViaService` is set only when Warden itself uses a key on a caller's behalf.
//!
//! What each can change: keys (state, policy, rotation, tags), aliases; nothing else.
//! Every member an operation's model defines is read or refused by name; unknown members
//! are a `ValidationException`. Blobs are base64, as the JSON protocol carries them.

use std::sync::Arc;

use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Map, Value};
use warden_iam::{ContextValue, PolicyKind};
use warden_kms::{wire, EncryptionContext, Key, KmsError, NewKey};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{json_op_sync, JsonOperation, JsonService};
use crate::error::JsonVersion;
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// KMS (`TrentService`).
pub static KMS: JsonService = JsonService {
    signing_name: "kms",
    target_prefix: "TrentService",
    version: JsonVersion::V1_1,
    operations: OPERATIONS,
    max_body: crate::doors::DEFAULT_BODY_LIMIT,
};

const OPERATIONS: &[JsonOperation] = &[
    json_op_sync!("CreateKey", create_key_targets, create_key),
    json_op_sync!("DescribeKey", key_target, describe_key),
    json_op_sync!("ListKeys", any_target, list_keys),
    json_op_sync!("EnableKey", key_target, enable_key),
    json_op_sync!("DisableKey", key_target, disable_key),
    json_op_sync!("ScheduleKeyDeletion", key_target, schedule_key_deletion),
    json_op_sync!("CancelKeyDeletion", key_target, cancel_key_deletion),
    json_op_sync!("CreateAlias", create_alias_targets, create_alias),
    json_op_sync!("UpdateAlias", update_alias_targets, update_alias),
    json_op_sync!("DeleteAlias", delete_alias_targets, delete_alias),
    json_op_sync!("ListAliases", any_target, list_aliases),
    json_op_sync!("Encrypt", key_target, encrypt),
    json_op_sync!("Decrypt", decrypt_targets, decrypt),
    json_op_sync!("ReEncrypt", re_encrypt_targets, re_encrypt),
    json_op_sync!("GenerateDataKey", key_target, generate_data_key),
    json_op_sync!(
        "GenerateDataKeyWithoutPlaintext",
        key_target,
        generate_data_key_without_plaintext
    ),
    json_op_sync!("GenerateRandom", any_target, generate_random),
    json_op_sync!("EnableKeyRotation", key_target, enable_key_rotation),
    json_op_sync!("DisableKeyRotation", key_target, disable_key_rotation),
    json_op_sync!("RotateKeyOnDemand", key_target, rotate_key_on_demand),
    json_op_sync!("GetKeyRotationStatus", key_target, get_key_rotation_status),
    json_op_sync!("ListKeyRotations", key_target, list_key_rotations),
    json_op_sync!("GetKeyPolicy", key_target, get_key_policy),
    json_op_sync!("PutKeyPolicy", key_target, put_key_policy),
    json_op_sync!("ListKeyPolicies", key_target, list_key_policies),
    json_op_sync!("TagResource", key_target, tag_resource),
    json_op_sync!("UntagResource", key_target, untag_resource),
    json_op_sync!("ListResourceTags", key_target, list_resource_tags),
];

// ---- errors ----

/// A KMS error as the caller sees it (internal failures logged, reported without detail).
pub(crate) fn kms_error(e: KmsError) -> ApiError {
    if e.is_internal() {
        let mut err = ApiError::internal(&e);
        err.code = "KMSInternalException";
        return err;
    }
    ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
}

fn unsupported(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "UnsupportedOperationException",
        message,
    )
}

// ---- input ----

/// One operation's input members: each is read once by name, and any member the operation
/// does not define is refused.
pub(crate) struct Input<'a> {
    operation: &'static str,
    obj: &'a Map<String, Value>,
}

impl<'a> Input<'a> {
    pub(crate) fn new(
        operation: &'static str,
        body: &'a Value,
        members: &[&str],
    ) -> Result<Self, ApiError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::serialization("the request body must be a JSON object"))?;
        if let Some(unknown) = obj.keys().find(|k| !members.contains(&k.as_str())) {
            let shown: String = unknown.chars().take(64).collect();
            return Err(validation(format!(
                "`{shown}` is not a member of {operation}'s input"
            )));
        }
        Ok(Input { operation, obj })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::serialization(format!(
                "{name} of {} must be a string",
                self.operation
            ))),
        }
    }

    pub(crate) fn required(&self, name: &str) -> Result<&'a str, ApiError> {
        self.string(name)?.ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(name)
            ))
        })
    }

    pub(crate) fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                ApiError::serialization(format!("{name} of {} must be an integer", self.operation))
            }),
        }
    }

    /// A timestamp member (JSON protocols send epoch seconds, possibly fractional), in
    /// epoch milliseconds.
    pub(crate) fn epoch_ms(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && s.abs() < 1e12)
                .map(|s| Some((s * 1000.0) as i64))
                .ok_or_else(|| {
                    ApiError::serialization(format!("{name} must be a timestamp in epoch seconds"))
                }),
        }
    }

    pub(crate) fn boolean(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::serialization(format!(
                "{name} of {} must be a boolean",
                self.operation
            ))),
        }
    }

    pub(crate) fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, ApiError> {
        match self.string(name)? {
            None => Ok(None),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(Some)
                .map_err(|_| ApiError::serialization(format!("{name} is not valid base64"))),
        }
    }

    fn context(&self, name: &str) -> Result<EncryptionContext, ApiError> {
        context_member(self.get(name), name)
    }

    fn tags(&self, name: &str) -> Result<Vec<(String, String)>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(Vec::new());
        };
        let items = v
            .as_array()
            .ok_or_else(|| ApiError::serialization(format!("{name} must be a list")))?;
        items
            .iter()
            .map(|t| {
                let key = t.get("TagKey").and_then(Value::as_str);
                let value = t.get("TagValue").and_then(Value::as_str);
                match (key, value) {
                    (Some(k), Some(v)) => Ok((k.to_owned(), v.to_owned())),
                    _ => Err(validation("each tag needs a TagKey and a TagValue")),
                }
            })
            .collect()
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, ApiError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ApiError::serialization(format!("{name} must hold strings")))
                })
                .collect(),
            Some(_) => Err(ApiError::serialization(format!("{name} must be a list"))),
        }
    }

    /// Grants are not implemented: `GrantTokens` is accepted only when empty.
    fn no_grant_tokens(&self) -> Result<(), ApiError> {
        if !self.strings("GrantTokens")?.is_empty() {
            return Err(unsupported(
                "GrantTokens: Warden's KMS does not implement grants; authorize with the key policy and IAM policies",
            ));
        }
        Ok(())
    }

    /// `DryRun`: authorized, then answered `DryRunOperationException` without effect.
    fn dry_run(&self) -> Result<(), ApiError> {
        if self.boolean("DryRun")? {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "DryRunOperationException",
                "The request would have succeeded, but the DryRun option is set.",
            ));
        }
        Ok(())
    }

    /// The only algorithm Warden's symmetric keys use.
    fn symmetric_default(&self, name: &str) -> Result<(), ApiError> {
        match self.string(name)? {
            None | Some("SYMMETRIC_DEFAULT") => Ok(()),
            Some(other) => Err(unsupported(format!(
                "{name} `{other}`: Warden's KMS keys use SYMMETRIC_DEFAULT only"
            ))),
        }
    }

    /// `Limit` (1-1000, default 100) and `Marker`.
    fn page(&self) -> Result<(usize, Option<&'a str>), ApiError> {
        let limit = match self.integer("Limit")? {
            None => 100,
            Some(n) if (1..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 1000"
                )))
            }
        };
        Ok((limit, self.string("Marker")?))
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

pub(crate) fn reply(value: &Value) -> Result<Reply, ApiError> {
    let mut r = crate::json_response(StatusCode::OK, value);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Ok(r)
}

pub(crate) fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

// ---- targets ----

fn key_context(
    state: &ApiState,
    principal: Option<&Principal>,
    key_ref: &str,
    context: &EncryptionContext,
) -> Vec<(String, ContextValue)> {
    let mut c = vec![(
        "kms:calleraccount".to_owned(),
        ContextValue::String(
            principal
                .map(|p| p.account.clone())
                .unwrap_or_else(|| state.account.to_string()),
        ),
    )];
    if key_ref.starts_with("alias/") || key_ref.contains(":alias/") {
        let alias = key_ref.rsplit_once(':').map_or(key_ref, |(_, a)| a);
        c.push((
            "kms:requestalias".into(),
            ContextValue::String(alias.into()),
        ));
    }
    if !context.is_empty() {
        c.push((
            "kms:encryptioncontextkeys".into(),
            ContextValue::List(context.keys().cloned().collect()),
        ));
        for (k, v) in context {
            c.push((
                format!("kms:encryptioncontext:{}", k.to_ascii_lowercase()),
                ContextValue::String(v.clone()),
            ));
        }
    }
    c
}

/// The target of `action` on a key: its ARN, its key policy, the request's condition keys.
fn on_key(
    state: &ApiState,
    principal: Option<&Principal>,
    action: &str,
    key: &Key,
    key_ref: &str,
    context: &EncryptionContext,
) -> Target {
    Target {
        action: action.to_owned(),
        resource: key.arn.clone(),
        key_policy: Some(Arc::clone(&key.policy)),
        context: key_context(state, principal, key_ref, context),
        ..Target::default()
    }
}

fn resolve(state: &ApiState, key_ref: &str) -> Result<Arc<Key>, ApiError> {
    state.kms.resolve(key_ref).map_err(kms_error)
}

/// An encryption-context member (`EncryptionContext`, `SourceEncryptionContext`, ...): a
/// map of strings, absent or null meaning empty. Authorization and the handler read it
/// the same way, so the condition keys describe exactly the context that is used.
fn context_member(value: Option<&Value>, name: &str) -> Result<EncryptionContext, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(EncryptionContext::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(ApiError::serialization(format!(
                    "{name} values must be strings"
                ))),
            })
            .collect(),
        Some(_) => Err(ApiError::serialization(format!(
            "{name} must be a map of strings"
        ))),
    }
}

fn body_context(body: &Value) -> Result<EncryptionContext, ApiError> {
    context_member(body.get("EncryptionContext"), "EncryptionContext")
}

fn required_str<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    body.get(name).and_then(Value::as_str).ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(name)
        ))
    })
}

/// `operation` on the key `KeyId` names.
fn key_target(
    state: &ApiState,
    operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let key_ref = required_str(body, "KeyId")?;
    let key = resolve(state, key_ref)?;
    let context = body_context(body)?;
    Ok(vec![on_key(
        state,
        principal,
        &format!("kms:{operation}"),
        &key,
        key_ref,
        &context,
    )])
}

/// `operation` on no key: identity policies on `*`.
fn any_target(
    _state: &ApiState,
    operation: &str,
    _body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(vec![Target {
        action: format!("kms:{operation}"),
        resource: "*".into(),
        ..Target::default()
    }])
}

/// `kms:CreateKey`, and `kms:TagResource` when it brings tags, on `*`.
fn create_key_targets(
    state: &ApiState,
    operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let mut t = any_target(state, operation, body, principal)?;
    if body
        .get("Tags")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        t.push(Target {
            action: "kms:TagResource".into(),
            resource: "*".into(),
            ..Target::default()
        });
    }
    Ok(t)
}

fn alias_target(state: &ApiState, action: &str, alias: &str) -> Result<Target, ApiError> {
    warden_kms::check_alias_name(alias).map_err(kms_error)?;
    Ok(Target {
        action: action.to_owned(),
        resource: state.kms.alias_arn(alias),
        ..Target::default()
    })
}

fn create_alias_targets(
    state: &ApiState,
    _operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let alias = required_str(body, "AliasName")?;
    let target = required_str(body, "TargetKeyId")?;
    let key = resolve(state, target)?;
    Ok(vec![
        alias_target(state, "kms:CreateAlias", alias)?,
        on_key(
            state,
            principal,
            "kms:CreateAlias",
            &key,
            target,
            &EncryptionContext::new(),
        ),
    ])
}

fn update_alias_targets(
    state: &ApiState,
    _operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let alias = required_str(body, "AliasName")?;
    let target = required_str(body, "TargetKeyId")?;
    let new_key = resolve(state, target)?;
    let old = state.kms.alias(alias).map_err(kms_error)?;
    let old_key = resolve(state, &old.key.to_string())?;
    let none = EncryptionContext::new();
    Ok(vec![
        alias_target(state, "kms:UpdateAlias", alias)?,
        on_key(state, principal, "kms:UpdateAlias", &old_key, alias, &none),
        on_key(state, principal, "kms:UpdateAlias", &new_key, target, &none),
    ])
}

fn delete_alias_targets(
    state: &ApiState,
    _operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let alias = required_str(body, "AliasName")?;
    let existing = state.kms.alias(alias).map_err(kms_error)?;
    let key = resolve(state, &existing.key.to_string())?;
    Ok(vec![
        alias_target(state, "kms:DeleteAlias", alias)?,
        on_key(
            state,
            principal,
            "kms:DeleteAlias",
            &key,
            alias,
            &EncryptionContext::new(),
        ),
    ])
}

fn ciphertext_key(state: &ApiState, body: &Value) -> Result<(Arc<Key>, String), ApiError> {
    let blob = body
        .get("CiphertextBlob")
        .and_then(Value::as_str)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or_else(|| validation("CiphertextBlob must be a base64 blob"))?;
    let arn = state
        .kms
        .arn_of_ciphertext(&blob)
        .ok_or_else(|| kms_error(KmsError::InvalidCiphertext))?;
    // A ciphertext naming a key that no longer exists cannot be decrypted by anyone.
    let key = state
        .kms
        .resolve(&arn)
        .map_err(|_| kms_error(KmsError::InvalidCiphertext))?;
    Ok((key, arn))
}

fn decrypt_targets(
    state: &ApiState,
    _operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let context = body_context(body)?;
    // A named key must be the ciphertext's (checked by Decrypt); authorization is on the
    // key the ciphertext names.
    let (key, arn) = ciphertext_key(state, body)?;
    let key_ref = body.get("KeyId").and_then(Value::as_str).unwrap_or(&arn);
    Ok(vec![on_key(
        state,
        principal,
        "kms:Decrypt",
        &key,
        key_ref,
        &context,
    )])
}

fn re_encrypt_targets(
    state: &ApiState,
    _operation: &str,
    body: &Value,
    principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let source_context = context_member(
        body.get("SourceEncryptionContext"),
        "SourceEncryptionContext",
    )?;
    let dest_context = context_member(
        body.get("DestinationEncryptionContext"),
        "DestinationEncryptionContext",
    )?;
    let (source, arn) = ciphertext_key(state, body)?;
    let dest_ref = required_str(body, "DestinationKeyId")?;
    let dest = resolve(state, dest_ref)?;
    Ok(vec![
        on_key(
            state,
            principal,
            "kms:ReEncryptFrom",
            &source,
            &arn,
            &source_context,
        ),
        on_key(
            state,
            principal,
            "kms:ReEncryptTo",
            &dest,
            dest_ref,
            &dest_context,
        ),
    ])
}

/// The target of a service using `key` for `action` on a caller's behalf: the key policy
/// decides, with `kms:ViaService` naming the service (`lambda`, `secretsmanager`).
pub(crate) fn via_service_target(
    state: &ApiState,
    principal: Option<&Principal>,
    key: &Key,
    action: &str,
    service: &str,
) -> Target {
    let mut target = on_key(
        state,
        principal,
        action,
        key,
        &key.arn,
        &EncryptionContext::new(),
    );
    target.context.push((
        "kms:viaservice".into(),
        ContextValue::String(format!("{service}.{}.amazonaws.com", state.region)),
    ));
    target
}

/// Whether `principal` may have Lambda use `key` for `action` on its behalf.
pub(crate) fn allowed_via_lambda(
    state: &ApiState,
    request: &ApiRequest,
    principal: &Principal,
    key: &Key,
    action: &str,
) -> bool {
    let target = via_service_target(state, Some(principal), key, action, "lambda");
    crate::access::allowed(state, request, principal, &target)
}

/// Whether the caller of `request` may see the environment of a function sealed under
/// the customer managed key `key_arn` (Lambda shows `Environment.Error` otherwise).
pub(crate) fn may_decrypt_environment(
    state: &ApiState,
    request: &ApiRequest,
    key_arn: &str,
) -> bool {
    let (Some(principal), Ok(key)) = (&request.principal, state.kms.resolve(key_arn)) else {
        return false;
    };
    allowed_via_lambda(state, request, principal, &key, "kms:Decrypt")
}

// ---- handlers ----

pub(crate) fn metadata(state: &ApiState, key: &Key) -> Value {
    wire::key_metadata(key, state.kms.account())
}

fn create_key(state: &ApiState, request: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "CreateKey",
        &body,
        &[
            "Policy",
            "Description",
            "KeyUsage",
            "CustomerMasterKeySpec",
            "KeySpec",
            "Origin",
            "CustomKeyStoreId",
            "BypassPolicyLockoutSafetyCheck",
            "Tags",
            "MultiRegion",
            "XksKeyId",
        ],
    )?;
    match input.string("KeyUsage")? {
        None | Some("ENCRYPT_DECRYPT") => {}
        Some(other) => {
            return Err(unsupported(format!(
                "KeyUsage `{other}`: Warden's KMS makes ENCRYPT_DECRYPT keys only"
            )))
        }
    }
    input.symmetric_default("KeySpec")?;
    input.symmetric_default("CustomerMasterKeySpec")?;
    match input.string("Origin")? {
        None | Some("AWS_KMS") => {}
        Some(other) => {
            return Err(unsupported(format!(
                "Origin `{other}`: Warden's KMS generates key material itself (AWS_KMS)"
            )))
        }
    }
    for name in ["CustomKeyStoreId", "XksKeyId"] {
        if input.get(name).is_some() {
            return Err(unsupported(format!(
                "{name}: Warden's KMS has no custom key stores"
            )));
        }
    }
    if input.boolean("MultiRegion")? {
        return Err(unsupported(
            "MultiRegion: Warden serves one region; multi-Region keys are not supported",
        ));
    }
    let policy = input.string("Policy")?.map(str::to_owned);
    if let Some(p) = &policy {
        if !input.boolean("BypassPolicyLockoutSafetyCheck")? {
            lockout_check(state, request, p, None)?;
        }
    }
    let key = state
        .kms
        .create_key(NewKey {
            description: input.string("Description")?.unwrap_or("").to_owned(),
            policy,
            tags: input.tags("Tags")?,
        })
        .map_err(kms_error)?;
    reply(&json!({ "KeyMetadata": metadata(state, &key) }))
}

/// KMS's lockout safety check: the new policy must let the caller change it again.
fn lockout_check(
    state: &ApiState,
    request: &ApiRequest,
    policy: &str,
    key_arn: Option<&str>,
) -> Result<(), ApiError> {
    let parsed = warden_iam::Policy::parse_as(policy, PolicyKind::Resource).map_err(|e| {
        kms_error(KmsError::MalformedPolicy(format!(
            "The key policy is malformed: {e}"
        )))
    })?;
    let Some(principal) = request.principal.as_ref() else {
        return Err(ApiError::missing_authentication());
    };
    let resource = key_arn.map_or_else(
        || format!("arn:aws:kms:{}:{}:key/*", state.region, state.account),
        str::to_owned,
    );
    let target = Target {
        action: "kms:PutKeyPolicy".into(),
        resource,
        key_policy: Some(Arc::new(parsed)),
        context: key_context(state, Some(principal), "", &EncryptionContext::new()),
        ..Target::default()
    };
    if crate::access::allowed(state, request, principal, &target) {
        Ok(())
    } else {
        Err(kms_error(KmsError::MalformedPolicy(
            "The new key policy will not allow you to update the key policy in the future.".into(),
        )))
    }
}

fn describe_key(state: &ApiState, _request: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("DescribeKey", &body, &["KeyId", "GrantTokens"])?;
    input.no_grant_tokens()?;
    let key = resolve(state, input.required("KeyId")?)?;
    reply(&json!({ "KeyMetadata": metadata(state, &key) }))
}

fn list_keys(state: &ApiState, _request: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("ListKeys", &body, &["Limit", "Marker"])?;
    let (limit, marker) = input.page()?;
    let (keys, next) = state.kms.list_keys(limit, marker).map_err(kms_error)?;
    let mut out = json!({
        "Keys": keys.iter().map(|k| json!({"KeyId": k.id().to_string(), "KeyArn": k.arn})).collect::<Vec<_>>(),
        "Truncated": next.is_some(),
    });
    if let Some(m) = next {
        out["NextMarker"] = json!(m);
    }
    reply(&out)
}

fn simple(
    operation: &'static str,
    body: &Value,
    f: impl FnOnce(&str) -> Result<Arc<Key>, KmsError>,
) -> Result<Arc<Key>, ApiError> {
    let input = Input::new(operation, body, &["KeyId"])?;
    f(input.required("KeyId")?).map_err(kms_error)
}

fn enable_key(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    simple("EnableKey", &body, |k| state.kms.set_enabled(k, true))?;
    reply(&json!({}))
}

fn disable_key(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    simple("DisableKey", &body, |k| state.kms.set_enabled(k, false))?;
    reply(&json!({}))
}

fn schedule_key_deletion(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ScheduleKeyDeletion",
        &body,
        &["KeyId", "PendingWindowInDays"],
    )?;
    let days = input.integer("PendingWindowInDays")?.unwrap_or(30);
    let days = u32::try_from(days).unwrap_or(0);
    let key = state
        .kms
        .schedule_deletion(input.required("KeyId")?, days)
        .map_err(kms_error)?;
    reply(&json!({
        "KeyId": key.arn,
        "DeletionDate": wire::seconds(key.record.deletion_ms.unwrap_or_default()),
        "KeyState": key.record.state.as_str(),
        "PendingWindowInDays": days,
    }))
}

fn cancel_key_deletion(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let key = simple("CancelKeyDeletion", &body, |k| state.kms.cancel_deletion(k))?;
    reply(&json!({ "KeyId": key.arn }))
}

fn create_alias(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("CreateAlias", &body, &["AliasName", "TargetKeyId"])?;
    state
        .kms
        .create_alias(input.required("AliasName")?, input.required("TargetKeyId")?)
        .map_err(kms_error)?;
    reply(&json!({}))
}

fn update_alias(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("UpdateAlias", &body, &["AliasName", "TargetKeyId"])?;
    state
        .kms
        .update_alias(input.required("AliasName")?, input.required("TargetKeyId")?)
        .map_err(kms_error)?;
    reply(&json!({}))
}

fn delete_alias(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("DeleteAlias", &body, &["AliasName"])?;
    state
        .kms
        .delete_alias(input.required("AliasName")?)
        .map_err(kms_error)?;
    reply(&json!({}))
}

fn list_aliases(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("ListAliases", &body, &["KeyId", "Limit", "Marker"])?;
    let (limit, marker) = input.page()?;
    let (aliases, next) = state
        .kms
        .list_aliases(input.string("KeyId")?, limit, marker)
        .map_err(kms_error)?;
    let mut out = json!({
        "Aliases": aliases.iter().map(|a| wire::alias_entry(a, &state.kms.alias_arn(&a.name))).collect::<Vec<_>>(),
        "Truncated": next.is_some(),
    });
    if let Some(m) = next {
        out["NextMarker"] = json!(m);
    }
    reply(&out)
}

fn encrypt(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "Encrypt",
        &body,
        &[
            "KeyId",
            "Plaintext",
            "EncryptionContext",
            "GrantTokens",
            "EncryptionAlgorithm",
            "DryRun",
        ],
    )?;
    input.no_grant_tokens()?;
    input.symmetric_default("EncryptionAlgorithm")?;
    let key_ref = input.required("KeyId")?;
    let plaintext = input.blob("Plaintext")?.unwrap_or_default();
    let context = input.context("EncryptionContext")?;
    input.dry_run()?;
    let (blob, key) = state
        .kms
        .encrypt(key_ref, &plaintext, &context)
        .map_err(kms_error)?;
    reply(&json!({
        "CiphertextBlob": b64(&blob),
        "KeyId": key.arn,
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

fn decrypt(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "Decrypt",
        &body,
        &[
            "CiphertextBlob",
            "EncryptionContext",
            "GrantTokens",
            "KeyId",
            "EncryptionAlgorithm",
            "Recipient",
            "DryRun",
        ],
    )?;
    input.no_grant_tokens()?;
    input.symmetric_default("EncryptionAlgorithm")?;
    if input.get("Recipient").is_some() {
        return Err(unsupported(
            "Recipient: Warden has no Nitro Enclaves attestation",
        ));
    }
    let blob = input.blob("CiphertextBlob")?.unwrap_or_default();
    let context = input.context("EncryptionContext")?;
    input.dry_run()?;
    let (plain, key) = state
        .kms
        .decrypt(&blob, &context, input.string("KeyId")?)
        .map_err(kms_error)?;
    reply(&json!({
        "KeyId": key.arn,
        "Plaintext": b64(&plain),
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

fn re_encrypt(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ReEncrypt",
        &body,
        &[
            "CiphertextBlob",
            "SourceEncryptionContext",
            "SourceKeyId",
            "DestinationKeyId",
            "DestinationEncryptionContext",
            "SourceEncryptionAlgorithm",
            "DestinationEncryptionAlgorithm",
            "GrantTokens",
            "DryRun",
        ],
    )?;
    input.no_grant_tokens()?;
    input.symmetric_default("SourceEncryptionAlgorithm")?;
    input.symmetric_default("DestinationEncryptionAlgorithm")?;
    let blob = input.blob("CiphertextBlob")?.unwrap_or_default();
    let source_context = input.context("SourceEncryptionContext")?;
    let dest_context = input.context("DestinationEncryptionContext")?;
    let dest = input.required("DestinationKeyId")?;
    input.dry_run()?;
    let (plain, source) = state
        .kms
        .decrypt(&blob, &source_context, input.string("SourceKeyId")?)
        .map_err(kms_error)?;
    let (out, dest_key) = state
        .kms
        .encrypt(dest, &plain, &dest_context)
        .map_err(kms_error)?;
    reply(&json!({
        "CiphertextBlob": b64(&out),
        "SourceKeyId": source.arn,
        "KeyId": dest_key.arn,
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

fn data_key(
    state: &ApiState,
    operation: &'static str,
    body: &Value,
) -> Result<warden_kms::DataKey, ApiError> {
    let input = Input::new(
        operation,
        body,
        &[
            "KeyId",
            "EncryptionContext",
            "NumberOfBytes",
            "KeySpec",
            "GrantTokens",
            "Recipient",
            "DryRun",
        ],
    )?;
    input.no_grant_tokens()?;
    if input.get("Recipient").is_some() {
        return Err(unsupported(
            "Recipient: Warden has no Nitro Enclaves attestation",
        ));
    }
    let len = match (input.integer("NumberOfBytes")?, input.string("KeySpec")?) {
        (Some(_), Some(_)) => {
            return Err(validation(
                "Specify either NumberOfBytes or KeySpec, not both",
            ))
        }
        (None, None) => {
            return Err(validation(
                "Specify either NumberOfBytes or KeySpec",
            ))
        }
        (Some(n), None) => usize::try_from(n).unwrap_or(0),
        (None, Some("AES_256")) => 32,
        (None, Some("AES_128")) => 16,
        (None, Some(other)) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
            )))
        }
    };
    let key_ref = input.required("KeyId")?;
    let context = input.context("EncryptionContext")?;
    input.dry_run()?;
    state
        .kms
        .generate_data_key(key_ref, len, &context)
        .map_err(kms_error)
}

fn generate_data_key(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let dk = data_key(state, "GenerateDataKey", &body)?;
    reply(&json!({
        "CiphertextBlob": b64(&dk.ciphertext),
        "Plaintext": b64(&dk.plaintext),
        "KeyId": dk.key.arn,
    }))
}

fn generate_data_key_without_plaintext(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let dk = data_key(state, "GenerateDataKeyWithoutPlaintext", &body)?;
    reply(&json!({
        "CiphertextBlob": b64(&dk.ciphertext),
        "KeyId": dk.key.arn,
    }))
}

fn generate_random(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "GenerateRandom",
        &body,
        &["NumberOfBytes", "CustomKeyStoreId", "Recipient"],
    )?;
    if input.get("CustomKeyStoreId").is_some() {
        return Err(unsupported(
            "CustomKeyStoreId: Warden's KMS has no custom key stores",
        ));
    }
    if input.get("Recipient").is_some() {
        return Err(unsupported(
            "Recipient: Warden has no Nitro Enclaves attestation",
        ));
    }
    let n = input.integer("NumberOfBytes")?.unwrap_or(0);
    let bytes = state
        .kms
        .random(usize::try_from(n).unwrap_or(0))
        .map_err(kms_error)?;
    reply(&json!({ "Plaintext": b64(&bytes) }))
}

fn enable_key_rotation(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "EnableKeyRotation",
        &body,
        &["KeyId", "RotationPeriodInDays"],
    )?;
    let period = input
        .integer("RotationPeriodInDays")?
        .map(|n| u32::try_from(n).unwrap_or(0));
    state
        .kms
        .enable_rotation(input.required("KeyId")?, period)
        .map_err(kms_error)?;
    reply(&json!({}))
}

fn disable_key_rotation(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    simple("DisableKeyRotation", &body, |k| {
        state.kms.disable_rotation(k)
    })?;
    reply(&json!({}))
}

fn rotate_key_on_demand(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let key = simple("RotateKeyOnDemand", &body, |k| {
        state.kms.rotate_on_demand(k)
    })?;
    reply(&json!({ "KeyId": key.id().to_string() }))
}

fn get_key_rotation_status(
    state: &ApiState,
    _r: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let key = simple("GetKeyRotationStatus", &body, |k| state.kms.resolve(k))?;
    let mut out = json!({
        "KeyRotationEnabled": key.record.rotation.is_some(),
        "KeyId": key.id().to_string(),
    });
    if let Some(r) = key.record.rotation {
        out["RotationPeriodInDays"] = json!(r.period_days);
        out["NextRotationDate"] = wire::seconds(r.next_ms);
    }
    if let Some((_, at, _)) = key.rotations().filter(|(_, _, k)| *k == "ON_DEMAND").last() {
        out["OnDemandRotationStartDate"] = wire::seconds(at);
    }
    reply(&out)
}

fn list_key_rotations(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "ListKeyRotations",
        &body,
        &["KeyId", "Limit", "Marker", "IncludeKeyMaterial"],
    )?;
    if input.get("IncludeKeyMaterial").is_some() {
        return Err(unsupported(
            "IncludeKeyMaterial: Warden's KMS has no imported key material",
        ));
    }
    let (limit, marker) = input.page()?;
    let key = resolve(state, input.required("KeyId")?)?;
    let start = match marker {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| kms_error(KmsError::InvalidMarker))?,
    };
    let rotations: Vec<Value> = key
        .rotations()
        .filter(|(_, _, kind)| *kind != "ORIGINAL")
        .map(|(_, at, kind)| {
            json!({ "KeyId": key.id().to_string(), "RotationDate": wire::seconds(at), "RotationType": kind })
        })
        .collect();
    let page: Vec<Value> = rotations.iter().skip(start).take(limit).cloned().collect();
    let next = start + page.len();
    let mut out = json!({ "Rotations": page, "Truncated": next < rotations.len() });
    if next < rotations.len() {
        out["NextMarker"] = json!(next.to_string());
    }
    reply(&out)
}

fn policy_name(input: &Input<'_>) -> Result<(), ApiError> {
    match input.string("PolicyName")? {
        None | Some("default") => Ok(()),
        Some(other) => Err(kms_error(KmsError::NotFound(format!(
            "No such policy: {other}; a key has exactly one policy, named default"
        )))),
    }
}

fn get_key_policy(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("GetKeyPolicy", &body, &["KeyId", "PolicyName"])?;
    policy_name(&input)?;
    let key = resolve(state, input.required("KeyId")?)?;
    reply(&json!({ "Policy": key.record.policy, "PolicyName": "default" }))
}

fn put_key_policy(state: &ApiState, request: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new(
        "PutKeyPolicy",
        &body,
        &[
            "KeyId",
            "PolicyName",
            "Policy",
            "BypassPolicyLockoutSafetyCheck",
        ],
    )?;
    policy_name(&input)?;
    let key_ref = input.required("KeyId")?;
    let policy = input.required("Policy")?;
    let key = resolve(state, key_ref)?;
    if !input.boolean("BypassPolicyLockoutSafetyCheck")? {
        lockout_check(state, request, policy, Some(&key.arn))?;
    }
    state.kms.put_policy(key_ref, policy).map_err(kms_error)?;
    reply(&json!({}))
}

fn list_key_policies(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("ListKeyPolicies", &body, &["KeyId", "Limit", "Marker"])?;
    input.page()?;
    resolve(state, input.required("KeyId")?)?;
    reply(&json!({ "PolicyNames": ["default"], "Truncated": false }))
}

fn tag_resource(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("TagResource", &body, &["KeyId", "Tags"])?;
    state
        .kms
        .tag(input.required("KeyId")?, input.tags("Tags")?)
        .map_err(kms_error)?;
    reply(&json!({}))
}

fn untag_resource(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("UntagResource", &body, &["KeyId", "TagKeys"])?;
    state
        .kms
        .untag(input.required("KeyId")?, &input.strings("TagKeys")?)
        .map_err(kms_error)?;
    reply(&json!({}))
}

fn list_resource_tags(state: &ApiState, _r: &ApiRequest, body: Value) -> Result<Reply, ApiError> {
    let input = Input::new("ListResourceTags", &body, &["KeyId", "Limit", "Marker"])?;
    input.page()?;
    let key = resolve(state, input.required("KeyId")?)?;
    reply(&json!({ "Tags": wire::tags(&key), "Truncated": false }))
}

//! AWS Signer's rest-json API (SigV4 service `signer`) for Lambda's platform
//! `AWSLambda-SHA384-ECDSA`: `PutSigningProfile`, `GetSigningProfile`,
//! `ListSigningProfiles`, `CancelSigningProfile`, `RevokeSigningProfile`, `RevokeSignature`,
//! `SignPayload`, `AddProfilePermission`, `RemoveProfilePermission`,
//! `ListProfilePermissions`. Any other Signer operation is refused as
//! `UnknownOperationException` after authentication.
//!
//! Who may call each: the caller must be allowed the IAM action `signer:OPERATION` on the
//! profile's ARN (`signer:RevokeSignature` on the job's ARN, `signer:ListSigningProfiles`
//! on `*`). What each can change is said on its handler. Profile permissions
//! (`AddProfilePermission`) are kept and listed as Signer's are; Warden serves one
//! account, so they grant nothing its IAM policies do not.
//!
//! `SignPayload` signs only a Lambda package's digest (`payloadFormat`
//! `application/vnd.warden.lambda-zip-digest`, the payload the hex SHA-384 digest of the
//! unsigned archive, see `warden_signer::format`) and answers with the signature comment
//! the package carries; `warden sign` uses it, so the profile's key never leaves the server.

use base64::Engine as _;
use http::request::Parts;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use warden_signer::{
    Permission, Profile, SignerError, Validity, ValidityUnit, DIGEST_PAYLOAD_FORMAT,
    LAMBDA_PLATFORM_NAME,
};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{BoxFuture, Head, ServiceDoor};
use crate::pipeline::Validated;
use crate::routes::{Operation, Service};
use crate::{empty_response, json_response, ApiError, ApiRequest, ApiState, Reply};

/// The signing name of Signer's requests.
pub const SIGNING_NAME: &str = "signer";

/// Most profiles per page.
const MAX_RESULTS: usize = 25;

/// One Signer operation, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerOp {
    /// `PutSigningProfile`.
    PutProfile(String),
    /// `GetSigningProfile`.
    GetProfile(String),
    /// `ListSigningProfiles`.
    ListProfiles,
    /// `CancelSigningProfile`.
    CancelProfile(String),
    /// `RevokeSigningProfile`.
    RevokeProfile(String),
    /// `RevokeSignature` of the job.
    RevokeSignature(String),
    /// `SignPayload`.
    SignPayload,
    /// `AddProfilePermission`.
    AddPermission(String),
    /// `ListProfilePermissions`.
    ListPermissions(String),
    /// `RemoveProfilePermission` of the profile and statement.
    RemovePermission(String, String),
    /// A Signer operation Warden does not serve (refused after authentication).
    Unserved,
}

impl SignerOp {
    /// The operation's name (and IAM action without `signer:`).
    pub fn name(&self) -> &'static str {
        match self {
            SignerOp::PutProfile(_) => "PutSigningProfile",
            SignerOp::GetProfile(_) => "GetSigningProfile",
            SignerOp::ListProfiles => "ListSigningProfiles",
            SignerOp::CancelProfile(_) => "CancelSigningProfile",
            SignerOp::RevokeProfile(_) => "RevokeSigningProfile",
            SignerOp::RevokeSignature(_) => "RevokeSignature",
            SignerOp::SignPayload => "SignPayload",
            SignerOp::AddPermission(_) => "AddProfilePermission",
            SignerOp::ListPermissions(_) => "ListProfilePermissions",
            SignerOp::RemovePermission(..) => "RemoveProfilePermission",
            SignerOp::Unserved => "Unserved",
        }
    }
}

fn decode(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| validation("the request path is not valid UTF-8 after percent-decoding"))
}

fn route(parts: &Parts) -> Result<SignerOp, ApiError> {
    let path = parts.uri.path();
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    Ok(match (parts.method.as_str(), segments.as_slice()) {
        ("PUT", ["signing-profiles", p]) => SignerOp::PutProfile(decode(p)?),
        ("GET", ["signing-profiles", p]) => SignerOp::GetProfile(decode(p)?),
        ("DELETE", ["signing-profiles", p]) => SignerOp::CancelProfile(decode(p)?),
        ("GET", ["signing-profiles"]) => SignerOp::ListProfiles,
        ("PUT", ["signing-profiles", p, "revoke"]) => SignerOp::RevokeProfile(decode(p)?),
        ("PUT", ["signing-jobs", j, "revoke"]) => SignerOp::RevokeSignature(decode(j)?),
        ("POST", ["signing-jobs", "with-payload"]) => SignerOp::SignPayload,
        ("POST", ["signing-profiles", p, "permissions"]) => SignerOp::AddPermission(decode(p)?),
        ("GET", ["signing-profiles", p, "permissions"]) => SignerOp::ListPermissions(decode(p)?),
        ("DELETE", ["signing-profiles", p, "permissions", s]) => {
            SignerOp::RemovePermission(decode(p)?, decode(s)?)
        }
        _ => SignerOp::Unserved,
    })
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
}

/// Each of the signer's errors as Signer reports it.
fn signer_error(e: SignerError) -> ApiError {
    let message = e.to_string();
    match e {
        SignerError::NotFound(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
        }
        SignerError::Conflict(_) => {
            ApiError::new(StatusCode::CONFLICT, "ConflictException", message)
        }
        SignerError::LimitExceeded(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "ServiceLimitExceededException",
            message,
        ),
        SignerError::Validation(_)
        | SignerError::AlreadySigned
        | SignerError::EmptyZip
        | SignerError::MalformedZip(_)
        | SignerError::BadSignature(_) => validation(message),
        SignerError::Key(_) | SignerError::Store { .. } | SignerError::Shared { .. } => {
            tracing::error!(error = %message, "signer failure");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServiceErrorException",
                "an internal error occurred",
            )
        }
    }
}

/// Signer's door: requests signed for `signer`.
pub struct SignerDoor;

impl ServiceDoor for SignerDoor {
    fn signing_names(&self) -> &'static [&'static str] {
        &[SIGNING_NAME]
    }

    fn claims(&self, head: Head<'_>) -> bool {
        head.claimed == Some(SIGNING_NAME)
    }

    fn route(&self, parts: &Parts) -> Result<Operation, ApiError> {
        route(parts).map(Operation::Signer)
    }

    fn service(&self, _head: Head<'_>) -> Service {
        Service::Signer
    }

    fn service_of(&self, _request: &ApiRequest) -> Service {
        Service::Signer
    }

    fn targets(
        &self,
        state: &ApiState,
        request: &ApiRequest,
        _principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        let Operation::Signer(op) = &request.operation else {
            return Ok(Vec::new());
        };
        let cs = state.control.code_signing()?;
        let profile = |name: &str| cs.signer.profile_arn(name);
        let resource = match op {
            SignerOp::Unserved => return Ok(Vec::new()),
            SignerOp::ListProfiles => "*".to_owned(),
            SignerOp::RevokeSignature(job) => cs.signer.job_arn(job),
            SignerOp::SignPayload => {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                match body.get("profileName").and_then(Value::as_str) {
                    Some(name) => profile(name),
                    None => return Err(validation("profileName is required")),
                }
            }
            SignerOp::PutProfile(p)
            | SignerOp::GetProfile(p)
            | SignerOp::CancelProfile(p)
            | SignerOp::RevokeProfile(p)
            | SignerOp::AddPermission(p)
            | SignerOp::ListPermissions(p)
            | SignerOp::RemovePermission(p, _) => profile(p),
        };
        Ok(vec![Target {
            action: format!("signer:{}", op.name()),
            resource,
            ..Target::default()
        }])
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(async move {
            let request = request.into_request();
            let Operation::Signer(op) = request.operation.clone() else {
                return Err(ApiError::unknown_operation());
            };
            dispatch(state, &request, op)
        })
    }
}

fn body<T: serde::de::DeserializeOwned + Default>(request: &ApiRequest) -> Result<T, ApiError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&request.body)
        .map_err(|e| validation(format!("the request body does not parse: {e}")))
}

/// `SignatureValidityPeriod`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidityInput {
    value: Option<i64>,
    #[serde(rename = "type")]
    unit: Option<String>,
}

/// `PutSigningProfileRequest`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutInput {
    signing_material: Option<Value>,
    signature_validity_period: Option<ValidityInput>,
    platform_id: Option<String>,
    overrides: Option<Value>,
    signing_parameters: Option<Value>,
    tags: Option<serde_json::Map<String, Value>>,
}

/// `RevokeSigningProfileRequest`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeProfileInput {
    profile_version: Option<String>,
    reason: Option<String>,
    effective_time: Option<f64>,
}

/// `RevokeSignatureRequest`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeSignatureInput {
    job_owner: Option<String>,
    reason: Option<String>,
}

/// `SignPayloadRequest`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignInput {
    profile_name: Option<String>,
    profile_owner: Option<String>,
    payload: Option<String>,
    payload_format: Option<String>,
}

/// `AddProfilePermissionRequest`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddPermissionInput {
    profile_version: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    revision_id: Option<String>,
    statement_id: Option<String>,
}

fn present(name: &str, v: &Option<Value>) -> Result<(), ApiError> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(m)) if m.is_empty() => Ok(()),
        Some(_) => Err(validation(format!(
            "{name} is not supported: Warden generates each profile version's key in its KMS and signs with the platform's defaults"
        ))),
    }
}

fn owner(state: &ApiState, owner: Option<&str>, name: &str) -> Result<(), ApiError> {
    match owner {
        Some(o) if o != state.account.as_str() => Err(validation(format!(
            "{name} `{}` is not this account: Warden serves one account",
            o.chars().take(32).collect::<String>()
        ))),
        _ => Ok(()),
    }
}

/// `SigningProfile` and `GetSigningProfileResponse`'s common members.
fn profile_shape(p: &Profile) -> Value {
    let version = p.current().map(|v| v.version.clone()).unwrap_or_default();
    json!({
        "profileName": p.name,
        "profileVersion": version,
        "profileVersionArn": p.version_arn(&version),
        "platformId": p.platform_id,
        "platformDisplayName": LAMBDA_PLATFORM_NAME,
        "signatureValidityPeriod": { "value": p.validity.value, "type": p.validity.unit.as_str() },
        "status": p.status.as_str(),
        "arn": p.arn,
        "tags": {},
    })
}

fn dispatch(state: &ApiState, request: &ApiRequest, op: SignerOp) -> Result<Reply, ApiError> {
    let cs = state.control.code_signing()?;
    let signer = &cs.signer;
    match op {
        SignerOp::Unserved => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Warden's Signer serves PutSigningProfile, GetSigningProfile, ListSigningProfiles, CancelSigningProfile, RevokeSigningProfile, RevokeSignature, SignPayload, AddProfilePermission, RemoveProfilePermission and ListProfilePermissions",
        )),
        // Creates a profile (or a new version of an active one: a new key).
        SignerOp::PutProfile(name) => {
            let input: PutInput = body(request)?;
            present("signingMaterial", &input.signing_material)?;
            present("overrides", &input.overrides)?;
            present("signingParameters", &input.signing_parameters)?;
            if input.tags.as_ref().is_some_and(|t| !t.is_empty()) {
                return Err(validation("tags is not supported on signing profiles by Warden"));
            }
            let platform = input
                .platform_id
                .ok_or_else(|| validation("platformId is required"))?;
            let validity = input
                .signature_validity_period
                .map(|v| {
                    let unit = v.unit.as_deref().unwrap_or("MONTHS");
                    let unit = ValidityUnit::parse(unit).ok_or_else(|| {
                        validation(format!(
                            "signatureValidityPeriod.type `{}` must be DAYS, MONTHS or YEARS",
                            unit.chars().take(16).collect::<String>()
                        ))
                    })?;
                    let value = v
                        .value
                        .ok_or_else(|| validation("signatureValidityPeriod.value is required"))?;
                    Validity::new(value, unit).map_err(signer_error)
                })
                .transpose()?;
            let p = signer
                .put_profile(&name, &platform, validity)
                .map_err(signer_error)?;
            let version = p.current().map(|v| v.version.clone()).unwrap_or_default();
            Ok(json_response(
                StatusCode::OK,
                &json!({ "arn": p.arn, "profileVersion": version, "profileVersionArn": p.version_arn(&version) }),
            ))
        }
        SignerOp::GetProfile(name) => {
            owner(state, request.query("profileOwner").as_deref(), "profileOwner")?;
            let p = signer.profile(&name).map_err(signer_error)?;
            let mut out = profile_shape(&p);
            if let Some(r) = &p.revocation {
                out["revocationRecord"] = json!({
                    "revocationEffectiveFrom": r.effective_from,
                    "revokedAt": r.revoked_at,
                    "revokedBy": r.revoked_by,
                });
                out["statusReason"] = json!(r.reason);
            }
            Ok(json_response(StatusCode::OK, &out))
        }
        SignerOp::ListProfiles => {
            let include_canceled = match request.query("includeCanceled").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(validation(format!(
                        "includeCanceled `{}` must be true or false",
                        other.chars().take(16).collect::<String>()
                    )))
                }
            };
            let max = match request.query("maxResults") {
                None => MAX_RESULTS,
                Some(raw) => raw
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_RESULTS).contains(n))
                    .ok_or_else(|| validation(format!("maxResults must be 1 to {MAX_RESULTS}")))?,
            };
            let platform = request.query("platformId");
            let statuses: Vec<String> = crate::routes::query_params(request.parts.uri.query())
                .into_iter()
                .filter(|(k, _)| k == "statuses")
                .map(|(_, v)| v)
                .collect();
            for s in &statuses {
                if !["Active", "Canceled", "Revoked"].contains(&s.as_str()) {
                    return Err(validation(format!(
                        "statuses `{}` must be Active, Canceled or Revoked",
                        s.chars().take(16).collect::<String>()
                    )));
                }
            }
            let all: Vec<Profile> = signer
                .profiles(include_canceled || statuses.iter().any(|s| s == "Canceled"))
                .into_iter()
                .filter(|p| platform.as_deref().is_none_or(|x| x == p.platform_id))
                .filter(|p| statuses.is_empty() || statuses.iter().any(|s| s == p.status.as_str()))
                .collect();
            let start = match request.query("nextToken") {
                None => 0,
                Some(t) => t
                    .parse::<usize>()
                    .ok()
                    .filter(|s| *s <= all.len())
                    .ok_or_else(|| validation("nextToken is not one this API returned"))?,
            };
            let end = (start + max).min(all.len());
            let mut out = json!({ "profiles": all[start..end].iter().map(profile_shape).collect::<Vec<_>>() });
            if end < all.len() {
                out["nextToken"] = json!(end.to_string());
            }
            Ok(json_response(StatusCode::OK, &out))
        }
        // The profile signs no more; its signatures stay valid.
        SignerOp::CancelProfile(name) => {
            signer.cancel_profile(&name).map_err(signer_error)?;
            Ok(empty_response(StatusCode::OK))
        }
        // Signatures made from `effectiveTime` on are refused by every config.
        SignerOp::RevokeProfile(name) => {
            let input: RevokeProfileInput = body(request)?;
            let version = input
                .profile_version
                .ok_or_else(|| validation("profileVersion is required"))?;
            let reason = input.reason.ok_or_else(|| validation("reason is required"))?;
            let effective = input
                .effective_time
                .filter(|t| t.is_finite())
                .ok_or_else(|| validation("effectiveTime is required"))?;
            let by = request
                .principal
                .as_ref()
                .map(|p| p.arn.clone())
                .unwrap_or_default();
            signer
                .revoke_profile(&name, &version, &reason, effective.floor() as i64, &by)
                .map_err(signer_error)?;
            Ok(empty_response(StatusCode::OK))
        }
        // The job's signature is refused by every config from now on.
        SignerOp::RevokeSignature(job) => {
            let input: RevokeSignatureInput = body(request)?;
            owner(state, input.job_owner.as_deref(), "jobOwner")?;
            let reason = input.reason.ok_or_else(|| validation("reason is required"))?;
            signer.revoke_signature(&job, &reason).map_err(signer_error)?;
            Ok(empty_response(StatusCode::OK))
        }
        // Signs a package digest with the profile's current version.
        SignerOp::SignPayload => {
            let input: SignInput = body(request)?;
            owner(state, input.profile_owner.as_deref(), "profileOwner")?;
            let name = input
                .profile_name
                .ok_or_else(|| validation("profileName is required"))?;
            let format = input
                .payload_format
                .ok_or_else(|| validation("payloadFormat is required"))?;
            if format != DIGEST_PAYLOAD_FORMAT {
                return Err(validation(format!(
                    "payloadFormat `{}` is not supported: Warden signs Lambda packages, with `{DIGEST_PAYLOAD_FORMAT}` (use `warden sign`)",
                    format.chars().take(64).collect::<String>()
                )));
            }
            let payload = input
                .payload
                .ok_or_else(|| validation("payload is required"))?;
            let payload = base64::engine::general_purpose::STANDARD
                .decode(payload.as_bytes())
                .map_err(|_| validation("payload is not base64"))?;
            let digest = std::str::from_utf8(&payload)
                .map_err(|_| validation("payload must be a hex SHA-384 digest"))?;
            let (job, manifest) = signer.sign_digest(&name, digest).map_err(signer_error)?;
            let signature =
                base64::engine::general_purpose::STANDARD.encode(manifest.to_comment());
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "jobId": job.job_id,
                    "jobOwner": state.account.as_str(),
                    "metadata": {
                        "profileVersionArn": manifest.profile_version_arn,
                        "signedAt": manifest.signed_at.to_string(),
                        "expiresAt": manifest.expires_at.to_string(),
                        "signatureFormat": "warden-zip-comment-1",
                    },
                    "signature": signature,
                }),
            ))
        }
        // Adds a statement to the profile's resource policy.
        SignerOp::AddPermission(name) => {
            let input: AddPermissionInput = body(request)?;
            let permission = Permission {
                statement_id: input
                    .statement_id
                    .ok_or_else(|| validation("statementId is required"))?,
                action: input.action.ok_or_else(|| validation("action is required"))?,
                principal: input
                    .principal
                    .ok_or_else(|| validation("principal is required"))?,
                profile_version: input.profile_version,
            };
            let revision = signer
                .add_permission(&name, permission, input.revision_id.as_deref())
                .map_err(signer_error)?;
            Ok(json_response(StatusCode::OK, &json!({ "revisionId": revision })))
        }
        SignerOp::ListPermissions(name) => {
            let p = signer.profile(&name).map_err(signer_error)?;
            let permissions: Vec<Value> = p
                .permissions
                .iter()
                .map(|x| {
                    let mut v = json!({ "action": x.action, "principal": x.principal, "statementId": x.statement_id });
                    if let Some(pv) = &x.profile_version {
                        v["profileVersion"] = json!(pv);
                    }
                    v
                })
                .collect();
            let size = serde_json::to_string(&permissions).map(|s| s.len()).unwrap_or(0);
            Ok(json_response(
                StatusCode::OK,
                &json!({ "revisionId": p.revision_id, "policySizeBytes": size, "permissions": permissions }),
            ))
        }
        // Removes a statement; `revisionId` must be the current one.
        SignerOp::RemovePermission(name, statement) => {
            let revision = request
                .query("revisionId")
                .ok_or_else(|| validation("revisionId is required"))?;
            let revision = signer
                .remove_permission(&name, &statement, &revision)
                .map_err(signer_error)?;
            Ok(json_response(StatusCode::OK, &json!({ "revisionId": revision })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, path: &str) -> Parts {
        http::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn routes_signers_paths() {
        assert_eq!(
            route(&parts("PUT", "/signing-profiles/app")).unwrap(),
            SignerOp::PutProfile("app".into())
        );
        assert_eq!(
            route(&parts("POST", "/signing-jobs/with-payload")).unwrap(),
            SignerOp::SignPayload
        );
        assert_eq!(
            route(&parts("DELETE", "/signing-profiles/app/permissions/s1")).unwrap(),
            SignerOp::RemovePermission("app".into(), "s1".into())
        );
        assert_eq!(
            route(&parts("POST", "/signing-jobs")).unwrap(),
            SignerOp::Unserved
        );
    }
}

//! Lambda's code signing configs on the wire: `CreateCodeSigningConfig`,
//! `GetCodeSigningConfig`, `UpdateCodeSigningConfig`, `DeleteCodeSigningConfig`,
//! `ListCodeSigningConfigs`, `ListFunctionsByCodeSigningConfig` under
//! `/2020-04-22/code-signing-configs`, and `PutFunctionCodeSigningConfig`,
//! `GetFunctionCodeSigningConfig`, `DeleteFunctionCodeSigningConfig` under
//! `/2020-06-30/functions/NAME/code-signing-config`.
//!
//! Who may call each is decided before it runs ([`targets`]): the IAM action
//! `lambda:OPERATION` on the config's ARN (on `*` for creating and listing), or on the
//! function for the function's association. Every input member of Lambda's model is read;
//! `Tags` on a config is refused by name (configs have no tags here).

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use warden_signer::{CodeSigningConfig, Policy};

use crate::access::Target;
use crate::routes::{Operation, RouteError};
use crate::{empty_response, json_response, parse_body, ApiError, ApiRequest, ApiState, Reply};

/// Most items per page, and the default.
const MAX_ITEMS: usize = 50;

/// One code signing config operation, with its path parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CscOp {
    /// `CreateCodeSigningConfig`.
    Create,
    /// `ListCodeSigningConfigs`.
    List,
    /// `GetCodeSigningConfig` of the ARN.
    Get(String),
    /// `UpdateCodeSigningConfig` of the ARN.
    Update(String),
    /// `DeleteCodeSigningConfig` of the ARN.
    Delete(String),
    /// `ListFunctionsByCodeSigningConfig` of the ARN.
    ListFunctions(String),
    /// `PutFunctionCodeSigningConfig` of the function.
    PutFunction(String),
    /// `GetFunctionCodeSigningConfig` of the function.
    GetFunction(String),
    /// `DeleteFunctionCodeSigningConfig` of the function.
    DeleteFunction(String),
}

impl CscOp {
    /// The operation's name (and IAM action without `lambda:`).
    pub fn name(&self) -> &'static str {
        match self {
            CscOp::Create => "CreateCodeSigningConfig",
            CscOp::List => "ListCodeSigningConfigs",
            CscOp::Get(_) => "GetCodeSigningConfig",
            CscOp::Update(_) => "UpdateCodeSigningConfig",
            CscOp::Delete(_) => "DeleteCodeSigningConfig",
            CscOp::ListFunctions(_) => "ListFunctionsByCodeSigningConfig",
            CscOp::PutFunction(_) => "PutFunctionCodeSigningConfig",
            CscOp::GetFunction(_) => "GetFunctionCodeSigningConfig",
            CscOp::DeleteFunction(_) => "DeleteFunctionCodeSigningConfig",
        }
    }
}

/// Routes the code signing config paths; `None` for any other path.
pub fn route(
    method: &str,
    segments: &[&str],
    decode: fn(&str) -> Result<String, RouteError>,
) -> Result<Option<Operation>, RouteError> {
    let op = match (method, segments) {
        ("POST", ["2020-04-22", "code-signing-configs"]) => CscOp::Create,
        ("GET", ["2020-04-22", "code-signing-configs"]) => CscOp::List,
        ("GET", ["2020-04-22", "code-signing-configs", a]) => CscOp::Get(decode(a)?),
        ("PUT", ["2020-04-22", "code-signing-configs", a]) => CscOp::Update(decode(a)?),
        ("DELETE", ["2020-04-22", "code-signing-configs", a]) => CscOp::Delete(decode(a)?),
        ("GET", ["2020-04-22", "code-signing-configs", a, "functions"]) => {
            CscOp::ListFunctions(decode(a)?)
        }
        ("PUT", ["2020-06-30", "functions", f, "code-signing-config"]) => {
            CscOp::PutFunction(decode(f)?)
        }
        ("GET", ["2020-06-30", "functions", f, "code-signing-config"]) => {
            CscOp::GetFunction(decode(f)?)
        }
        ("DELETE", ["2020-06-30", "functions", f, "code-signing-config"]) => {
            CscOp::DeleteFunction(decode(f)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(Operation::CodeSigning(op)))
}

/// Checks a code signing config ARN against Lambda's pattern
/// (`arn:aws:lambda:REGION:ACCOUNT:code-signing-config:csc-` and 17 letters and digits).
pub fn config_arn(arn: String) -> Result<String, ApiError> {
    let ok = arn.len() <= 200
        && arn
            .strip_prefix("arn:aws:lambda:")
            .and_then(|rest| rest.split_once(":code-signing-config:csc-"))
            .is_some_and(|(scope, id)| {
                let (region, account) = scope.split_once(':').unwrap_or(("", ""));
                !region.is_empty()
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && id.len() == 17
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
    if ok {
        Ok(arn)
    } else {
        Err(ApiError::invalid(format!(
            "1 validation error detected: Value '{}' at 'codeSigningConfigArn' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}}:\\d{{12}}:code-signing-config:csc-[a-z0-9]{{17}}",
            arn.chars().take(256).collect::<String>()
        )))
    }
}

/// What each operation is authorized against.
pub fn targets(state: &ApiState, op: &CscOp) -> Vec<Target> {
    let action = format!("lambda:{}", op.name());
    let resource = match op {
        CscOp::Create | CscOp::List => "*".to_owned(),
        CscOp::Get(a) | CscOp::Update(a) | CscOp::Delete(a) | CscOp::ListFunctions(a) => a.clone(),
        CscOp::PutFunction(f) | CscOp::GetFunction(f) | CscOp::DeleteFunction(f) => {
            match state.function_ref(f) {
                Ok(r) => {
                    return vec![Target {
                        action,
                        resource: state.function_arn(&r.name, None),
                        function: Some(r.name),
                        ..Target::default()
                    }]
                }
                Err(_) => format!(
                    "arn:aws:lambda:{}:{}:function:*",
                    state.region, state.account
                ),
            }
        }
    };
    vec![Target {
        action,
        resource,
        ..Target::default()
    }]
}

/// `AllowedPublishers`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AllowedPublishers {
    signing_profile_version_arns: Option<Vec<String>>,
}

/// `CodeSigningPolicies`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Policies {
    untrusted_artifact_on_deployment: Option<String>,
}

/// `CreateCodeSigningConfigRequest` and `UpdateCodeSigningConfigRequest`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ConfigInput {
    description: Option<String>,
    allowed_publishers: Option<AllowedPublishers>,
    code_signing_policies: Option<Policies>,
    tags: Option<serde_json::Map<String, Value>>,
}

/// `PutFunctionCodeSigningConfigRequest`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PutFunctionInput {
    code_signing_config_arn: Option<String>,
}

fn allowed(p: AllowedPublishers) -> Result<Vec<String>, ApiError> {
    p.signing_profile_version_arns
        .ok_or_else(|| ApiError::invalid("AllowedPublishers.SigningProfileVersionArns is required"))
}

fn policy(p: Policies) -> Result<Option<Policy>, ApiError> {
    p.untrusted_artifact_on_deployment
        .map(|v| {
            Policy::parse(&v).ok_or_else(|| {
                ApiError::invalid(format!(
                    "1 validation error detected: Value '{}' at 'codeSigningPolicies.untrustedArtifactOnDeployment' failed to satisfy constraint: Member must satisfy enum value set: [Enforce, Warn]",
                    v.chars().take(64).collect::<String>()
                ))
            })
        })
        .transpose()
}

/// `CodeSigningConfig`.
fn shape(c: &CodeSigningConfig) -> Value {
    json!({
        "CodeSigningConfigId": c.id,
        "CodeSigningConfigArn": c.arn,
        "Description": c.description,
        "AllowedPublishers": { "SigningProfileVersionArns": c.allowed },
        "CodeSigningPolicies": { "UntrustedArtifactOnDeployment": c.policy.as_str() },
        "LastModified": c.last_modified,
    })
}

fn signer_error(e: warden_signer::SignerError) -> ApiError {
    ApiError::from(warden_control::signer_error(e))
}

fn not_found(e: warden_signer::SignerError) -> ApiError {
    match e {
        warden_signer::SignerError::NotFound(m) => ApiError::not_found(m),
        other => signer_error(other),
    }
}

fn page<T: Clone>(request: &ApiRequest, items: &[T]) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = match request.query("MaxItems") {
        None => MAX_ITEMS,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "1 validation error detected: Value '{}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 10000",
                    raw.chars().take(32).collect::<String>()
                ))
            })?
            .min(MAX_ITEMS),
    };
    let start = match request.query("Marker") {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|s| *s <= items.len())
            .ok_or_else(|| ApiError::invalid("Marker is not one this API returned"))?,
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((items[start..end].to_vec(), next))
}

/// Runs one operation.
pub async fn dispatch(
    state: &ApiState,
    request: &ApiRequest,
    op: &CscOp,
) -> Result<Reply, ApiError> {
    let cs = state.control.code_signing()?;
    let signer = &cs.signer;
    match op {
        CscOp::Create => {
            let input: ConfigInput = parse_body(&request.body)?;
            if input.tags.as_ref().is_some_and(|t| !t.is_empty()) {
                return Err(ApiError::invalid(
                    "Tags is not supported on code signing configs by Warden",
                ));
            }
            let allowed = allowed(
                input
                    .allowed_publishers
                    .ok_or_else(|| ApiError::invalid("AllowedPublishers is required"))?,
            )?;
            let policy = match input.code_signing_policies {
                Some(p) => policy(p)?.unwrap_or(Policy::Warn),
                None => Policy::Warn,
            };
            let c = signer
                .create_config(input.description.unwrap_or_default(), allowed, policy)
                .map_err(signer_error)?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({ "CodeSigningConfig": shape(&c) }),
            ))
        }
        CscOp::List => {
            let all = signer.configs();
            let (items, next) = page(request, &all)?;
            let mut out =
                json!({ "CodeSigningConfigs": items.iter().map(shape).collect::<Vec<_>>() });
            if let Some(n) = next {
                out["NextMarker"] = json!(n);
            }
            Ok(json_response(StatusCode::OK, &out))
        }
        CscOp::Get(arn) => {
            let arn = config_arn(arn.clone())?;
            let c = signer.config(&arn).map_err(not_found)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "CodeSigningConfig": shape(&c) }),
            ))
        }
        CscOp::Update(arn) => {
            let arn = config_arn(arn.clone())?;
            let input: ConfigInput = parse_body(&request.body)?;
            if input.tags.is_some() {
                return Err(ApiError::bad_content(
                    "Tags is not a member of UpdateCodeSigningConfig",
                ));
            }
            let allowed = input.allowed_publishers.map(allowed).transpose()?;
            let policy = match input.code_signing_policies {
                Some(p) => policy(p)?,
                None => None,
            };
            let c = signer
                .update_config(&arn, input.description, allowed, policy)
                .map_err(not_found)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "CodeSigningConfig": shape(&c) }),
            ))
        }
        CscOp::Delete(arn) => {
            let arn = config_arn(arn.clone())?;
            signer.delete_config(&arn).map_err(not_found)?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        CscOp::ListFunctions(arn) => {
            let arn = config_arn(arn.clone())?;
            let names = signer.functions_of(&arn).map_err(not_found)?;
            let (items, next) = page(request, &names)?;
            let arns: Vec<String> = items
                .iter()
                .filter_map(|n| warden_types::FunctionName::new(n).ok())
                .map(|n| state.function_arn(&n, None))
                .collect();
            let mut out = json!({ "FunctionArns": arns });
            if let Some(n) = next {
                out["NextMarker"] = json!(n);
            }
            Ok(json_response(StatusCode::OK, &out))
        }
        CscOp::PutFunction(f) => {
            let r = state.function_ref(f)?;
            let input: PutFunctionInput = parse_body(&request.body)?;
            let arn = config_arn(
                input
                    .code_signing_config_arn
                    .ok_or_else(|| ApiError::invalid("CodeSigningConfigArn is required"))?,
            )?;
            state
                .control
                .put_function_code_signing_config(&r.name, &arn)
                .await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "CodeSigningConfigArn": arn, "FunctionName": r.name.as_str() }),
            ))
        }
        CscOp::GetFunction(f) => {
            let r = state.function_ref(f)?;
            let arn = state.control.function_code_signing_config(&r.name).await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "CodeSigningConfigArn": arn.unwrap_or_default(), "FunctionName": r.name.as_str() }),
            ))
        }
        CscOp::DeleteFunction(f) => {
            let r = state.function_ref(f)?;
            state
                .control
                .delete_function_code_signing_config(&r.name)
                .await?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_arns_follow_lambdas_pattern() {
        let good =
            "arn:aws:lambda:us-east-1:123456789012:code-signing-config:csc-0123456789abcdefg";
        assert_eq!(config_arn(good.into()).unwrap(), good);
        for bad in [
            "",
            "csc-0123456789abcdefg",
            "arn:aws:lambda:us-east-1:12345:code-signing-config:csc-0123456789abcdefg",
            "arn:aws:lambda:us-east-1:123456789012:code-signing-config:csc-short",
            "arn:aws:lambda:us-east-1:123456789012:code-signing-config:csc-0123456789ABCDEFG",
        ] {
            let e = config_arn(bad.into()).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValueException", "{bad}");
        }
    }

    #[test]
    fn signing_refusals_are_lambdas_exceptions() {
        use warden_control::ControlError as E;
        for (e, status, code) in [
            (
                E::InvalidCodeSignature("m".into()),
                StatusCode::BAD_REQUEST,
                "InvalidCodeSignatureException",
            ),
            (
                E::CodeVerificationFailed("m".into()),
                StatusCode::BAD_REQUEST,
                "CodeVerificationFailedException",
            ),
            (
                E::CodeSigningConfigNotFound("m".into()),
                StatusCode::NOT_FOUND,
                "CodeSigningConfigNotFoundException",
            ),
        ] {
            let api = ApiError::from(e);
            assert_eq!(
                (api.status, api.code, api.message.as_str()),
                (status, code, "m")
            );
        }
    }

    #[test]
    fn routes_the_config_paths() {
        let decode = |s: &str| Ok(s.to_owned());
        assert_eq!(
            route("POST", &["2020-04-22", "code-signing-configs"], decode),
            Ok(Some(Operation::CodeSigning(CscOp::Create)))
        );
        assert_eq!(
            route(
                "PUT",
                &["2020-06-30", "functions", "f", "code-signing-config"],
                decode
            ),
            Ok(Some(Operation::CodeSigning(CscOp::PutFunction("f".into()))))
        );
        assert_eq!(
            route("PATCH", &["2020-04-22", "code-signing-configs"], decode),
            Ok(None)
        );
    }
}

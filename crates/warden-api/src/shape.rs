//! Lambda's JSON shapes: inputs as the AWS CLI and SDKs send them, outputs as they expect
//! them. Unknown input members are ignored, as AWS services do; members naming features
//! Warden lacks are refused explicitly so nothing is silently dropped.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use warden_store::Alias;
use warden_types::{limits, FunctionVersion, Runtime};

use crate::{ApiError, ApiState};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentInput {
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeInput {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub image_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorageInput {
    pub size: Option<u32>,
}

/// The configuration members `CreateFunction` and `UpdateFunctionConfiguration` share.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigInput {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<u32>,
    pub memory_size: Option<u32>,
    pub environment: Option<EnvironmentInput>,
    pub ephemeral_storage: Option<EphemeralStorageInput>,
    pub layers: Option<Vec<String>>,
}

/// `CreateFunction` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionInput {
    pub function_name: Option<String>,
    #[serde(flatten)]
    pub config: ConfigInput,
    pub code: Option<CodeInput>,
    pub publish: Option<bool>,
    pub package_type: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// `UpdateFunctionConfiguration` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfigurationInput {
    #[serde(flatten)]
    pub config: ConfigInput,
    pub revision_id: Option<String>,
}

/// `UpdateFunctionCode` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCodeInput {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub image_uri: Option<String>,
    pub publish: Option<bool>,
    pub dry_run: Option<bool>,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// Environment variable names Lambda reserves for itself.
const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

pub fn validate_runtime(runtime: &str) -> Result<(), ApiError> {
    if Runtime::parse(runtime).is_none() {
        return Err(ApiError::invalid(format!(
            "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            Runtime::SUPPORTED.join(", ")
        )));
    }
    Ok(())
}

pub fn validate_role(role: &str) -> Result<(), ApiError> {
    let ok = role
        .strip_prefix("arn:")
        .and_then(|r| r.split_once(":iam::"))
        .and_then(|(partition, rest)| partition.starts_with("aws").then_some(rest))
        .and_then(|rest| rest.split_once(":role/"))
        .is_some_and(|(account, name)| {
            account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && !name.is_empty()
                && name.len() <= 512
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_/".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "1 validation error detected: Value '{role}' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{{12}}:role/?[a-zA-Z_0-9+=,.@\\-_/]+"
        )))
    }
}

pub fn validate_handler(handler: &str) -> Result<(), ApiError> {
    if handler.is_empty()
        || handler.len() > limits::HANDLER_CHARS
        || handler.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(format!(
            "Value '{handler}' at 'handler' failed to satisfy constraint: Member must have length less than or equal to 128 and contain no whitespace"
        )));
    }
    Ok(())
}

pub fn validate_timeout(t: u32) -> Result<(), ApiError> {
    if !limits::TIMEOUT_SECONDS.contains(&t) {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value '{t}' at 'timeout' failed to satisfy constraint: Member must have value between 1 and 900"
        )));
    }
    Ok(())
}

pub fn validate_memory(m: u32) -> Result<(), ApiError> {
    if !limits::MEMORY_MB.contains(&m) {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value '{m}' at 'memorySize' failed to satisfy constraint: Member must have value between 128 and 10240"
        )));
    }
    Ok(())
}

pub fn validate_ephemeral(s: u32) -> Result<(), ApiError> {
    if !limits::EPHEMERAL_STORAGE_MB.contains(&s) {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value '{s}' at 'ephemeralStorage.size' failed to satisfy constraint: Member must have value between 512 and 10240"
        )));
    }
    Ok(())
}

pub fn validate_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > limits::DESCRIPTION_CHARS {
        return Err(ApiError::invalid("Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256"));
    }
    Ok(())
}

pub fn validate_environment(env: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for key in env.keys() {
        let mut chars = key.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(ApiError::invalid(format!(
                "environment variable name `{key}` must start with a letter and contain only letters, digits and `_`"
            )));
        }
    }
    let reserved: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED_ENV.contains(k))
        .collect();
    if !reserved.is_empty() {
        return Err(ApiError::invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(",")
        )));
    }
    if FunctionVersion::environment_size(env) > limits::ENVIRONMENT_BYTES {
        return Err(ApiError::invalid(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit.",
        ));
    }
    Ok(())
}

pub fn validate_architectures(a: &[String]) -> Result<Vec<String>, ApiError> {
    match a {
        [] => Ok(vec!["x86_64".into()]),
        [one] if one == "x86_64" || one == "arm64" => {
            let host = if cfg!(target_arch = "aarch64") {
                "arm64"
            } else {
                "x86_64"
            };
            if one != host {
                return Err(ApiError::invalid(format!(
                    "this Warden runs on {host} and cannot run {one} functions"
                )));
            }
            Ok(vec![one.clone()])
        }
        _ => Err(ApiError::invalid(
            "Architectures must hold exactly one of x86_64, arm64",
        )),
    }
}

pub fn refuse_layers(layers: &Option<Vec<String>>) -> Result<(), ApiError> {
    match layers {
        Some(l) if !l.is_empty() => Err(ApiError::invalid(
            "layers are not supported by Warden; include the dependencies in the package",
        )),
        _ => Ok(()),
    }
}

/// Lambda's `FunctionConfiguration`.
pub fn configuration(state: &ApiState, f: &FunctionVersion) -> Value {
    let qualifier = (!f.is_latest()).then_some(f.version.as_str());
    let mut v = json!({
        "FunctionName": f.name.as_str(),
        "FunctionArn": state.function_arn(&f.name, qualifier),
        "Runtime": f.runtime,
        "Role": f.role,
        "Handler": f.handler,
        "CodeSize": f.code_size,
        "Description": f.description,
        "Timeout": f.timeout_seconds,
        "MemorySize": f.memory_mb,
        "LastModified": warden_types::lambda_timestamp(f.last_modified_ms),
        "CodeSha256": f.code_sha256,
        "Version": f.version,
        "TracingConfig": { "Mode": "PassThrough" },
        "RevisionId": f.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": if f.architectures.is_empty() { vec!["x86_64".to_owned()] } else { f.architectures.clone() },
        "EphemeralStorage": { "Size": f.ephemeral_storage_mb },
        "SnapStart": { "ApplyOn": "None", "OptimizationStatus": "Off" },
        "LoggingConfig": { "LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", f.name) },
    });
    if !f.environment.is_empty() {
        v["Environment"] = json!({ "Variables": f.environment });
    }
    v
}

/// Lambda's `AliasConfiguration`.
pub fn alias(state: &ApiState, a: &Alias) -> Value {
    let mut v = json!({
        "AliasArn": state.function_arn(&a.function, Some(&a.name)),
        "Name": a.name,
        "FunctionVersion": a.function_version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if let Some((version, weight)) = &a.routing {
        v["RoutingConfig"] = json!({ "AdditionalVersionWeights": { version.clone(): weight } });
    }
    v
}

/// Reads `MaxItems` (1-10000, default 50).
pub fn max_items(raw: Option<String>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(limits::DEFAULT_LIST_ITEMS),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=limits::MAX_LIST_ITEMS).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!("MaxItems `{s}` must be a number from 1 to 10000"))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert!(validate_role("arn:aws:iam::123456789012:role/lambda-exec").is_ok());
        assert!(validate_role("arn:aws:iam::123456789012:role/path/to/r").is_ok());
        for bad in [
            "",
            "role",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert!(validate_role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_rules() {
        let env = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(validate_environment(&env("GREETING", "hi")).is_ok());
        assert!(validate_environment(&env("AWS_REGION", "x"))
            .unwrap_err()
            .message
            .contains("AWS_REGION"));
        assert!(validate_environment(&env("1X", "x")).is_err());
        assert!(validate_environment(&env("BIG", &"x".repeat(5000)))
            .unwrap_err()
            .message
            .contains("4KB"));
    }
}

//! Lambda's JSON shapes: inputs as the AWS CLI and SDKs send them, outputs as they expect
//! them.
//!
//! Every input struct lists every member Lambda's service model defines for it, and
//! refuses anything else (`deny_unknown_fields`): an unknown member is answered 400
//! `InvalidRequestContentException` naming it, as Lambda's own JSON reader does, rather than
//! dropped. A member Lambda defines and Warden does not implement is refused with 400
//! `InvalidParameterValueException` naming it ([`unsupported`]), unless its value asks for
//! exactly what Warden does (`TracingConfig.Mode` `PassThrough`,
//! `SnapStart.ApplyOn` `None`, a `VpcConfig` without subnets), which is honoured as given. An explicit `null` reads as an absent member.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use warden_control::Alias;
use warden_types::page::{Page, PageRequest, LAMBDA_PAGES};
use warden_types::FunctionVersion;

use crate::{ApiError, ApiRequest, ApiState};

/// The refusal of a member Lambda defines and Warden does not implement: 400
/// `InvalidParameterValueException` naming the member and saying why.
pub fn unsupported(member: &str, why: &str) -> ApiError {
    ApiError::invalid(format!(
        "{member} is not supported by Warden: {why}. Remove {member} from the request."
    ))
}

/// Refuses `member` if it is present (and not `null`).
pub fn refuse<T>(member: &str, value: &Option<T>, why: &str) -> Result<(), ApiError> {
    match value {
        Some(_) => Err(unsupported(member, why)),
        None => Ok(()),
    }
}

/// Refuses a string member unless it is absent or empty (which names nothing).
fn refuse_nonempty(member: &str, value: &Option<String>, why: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if !v.is_empty() => Err(unsupported(member, why)),
        _ => Ok(()),
    }
}

/// Refuses a list member unless it is absent or empty.
fn refuse_items<T>(member: &str, value: &Option<Vec<T>>, why: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if !v.is_empty() => Err(unsupported(member, why)),
        _ => Ok(()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EnvironmentInput {
    pub variables: Option<BTreeMap<String, String>>,
}

/// `FunctionCode`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CodeInput {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub s3_object_version: Option<String>,
    pub s3_object_storage_mode: Option<String>,
    pub image_uri: Option<String>,
    #[serde(rename = "SourceKMSKeyArn")]
    pub source_kms_key_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EphemeralStorageInput {
    pub size: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VpcConfigInput {
    pub subnet_ids: Option<Vec<String>>,
    pub security_group_ids: Option<Vec<String>>,
    pub ipv6_allowed_for_dual_stack: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeadLetterConfigInput {
    pub target_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TracingConfigInput {
    pub mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SnapStartInput {
    pub apply_on: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LoggingConfigInput {
    pub log_format: Option<String>,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub log_group: Option<String>,
}

/// `CreateFunctionRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateFunctionInput {
    pub function_name: Option<String>,
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub code: Option<CodeInput>,
    pub description: Option<String>,
    pub timeout: Option<u32>,
    pub memory_size: Option<u32>,
    pub publish: Option<bool>,
    pub publish_to: Option<Value>,
    pub vpc_config: Option<VpcConfigInput>,
    pub package_type: Option<String>,
    pub dead_letter_config: Option<DeadLetterConfigInput>,
    pub environment: Option<EnvironmentInput>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub tracing_config: Option<TracingConfigInput>,
    pub tags: Option<BTreeMap<String, String>>,
    pub layers: Option<Vec<String>>,
    pub file_system_configs: Option<Vec<Value>>,
    pub code_signing_config_arn: Option<String>,
    pub image_config: Option<Value>,
    pub architectures: Option<Vec<String>>,
    pub ephemeral_storage: Option<EphemeralStorageInput>,
    pub snap_start: Option<SnapStartInput>,
    pub logging_config: Option<LoggingConfigInput>,
    pub tenancy_config: Option<Value>,
    pub capacity_provider_config: Option<Value>,
    pub durable_config: Option<Value>,
    pub runtime_config: Option<Value>,
    pub accelerator_config: Option<Value>,
}

/// `UpdateFunctionConfigurationRequest` (its `FunctionName` is in the path).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UpdateConfigurationInput {
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<u32>,
    pub memory_size: Option<u32>,
    pub vpc_config: Option<VpcConfigInput>,
    pub environment: Option<EnvironmentInput>,
    pub runtime: Option<String>,
    pub dead_letter_config: Option<DeadLetterConfigInput>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub tracing_config: Option<TracingConfigInput>,
    pub revision_id: Option<String>,
    pub layers: Option<Vec<String>>,
    pub file_system_configs: Option<Vec<Value>>,
    pub image_config: Option<Value>,
    pub ephemeral_storage: Option<EphemeralStorageInput>,
    pub snap_start: Option<SnapStartInput>,
    pub logging_config: Option<LoggingConfigInput>,
    pub capacity_provider_config: Option<Value>,
    pub durable_config: Option<Value>,
    pub runtime_config: Option<Value>,
    pub accelerator_config: Option<Value>,
}

/// `UpdateFunctionCodeRequest` (its `FunctionName` is in the path).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UpdateCodeInput {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub s3_object_version: Option<String>,
    pub s3_object_storage_mode: Option<String>,
    pub image_uri: Option<String>,
    pub architectures: Option<Vec<String>>,
    pub publish: Option<bool>,
    pub publish_to: Option<Value>,
    pub dry_run: Option<bool>,
    pub revision_id: Option<String>,
    #[serde(rename = "SourceKMSKeyArn")]
    pub source_kms_key_arn: Option<String>,
}

/// `PublishVersionRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PublishInput {
    pub code_sha256: Option<String>,
    pub description: Option<String>,
    pub revision_id: Option<String>,
    pub publish_to: Option<Value>,
}

/// `AliasRoutingConfiguration`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RoutingInput {
    pub additional_version_weights: Option<BTreeMap<String, f64>>,
}

/// `CreateAliasRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateAliasInput {
    pub name: Option<String>,
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing_config: Option<RoutingInput>,
}

/// `UpdateAliasRequest` (its `Name` is in the path).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UpdateAliasInput {
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing_config: Option<RoutingInput>,
    pub revision_id: Option<String>,
}

/// `AddPermissionRequest` (its `Qualifier` is in the query string).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AddPermissionInput {
    pub statement_id: Option<String>,
    pub action: Option<String>,
    pub principal: Option<String>,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    pub principal_org_id: Option<String>,
    pub revision_id: Option<String>,
    pub function_url_auth_type: Option<Value>,
    pub invoked_via_function_url: Option<bool>,
    pub event_source_token: Option<Value>,
}

/// `PutFunctionConcurrencyRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ConcurrencyInput {
    pub reserved_concurrent_executions: Option<i64>,
}

/// `TagResourceRequest` (its `Resource` is in the path).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TagResourceInput {
    pub tags: Option<BTreeMap<String, String>>,
}

/// The configuration members `CreateFunction` and `UpdateFunctionConfiguration` share
/// that Warden does not implement: each is refused, naming it, unless its value asks for
/// what Warden does.
pub struct UnimplementedConfig<'a> {
    pub function: &'a str,
    /// Honoured (by `functions::vpc_config`) except for its IPv6 member.
    pub vpc_config: &'a Option<VpcConfigInput>,
    pub dead_letter_config: &'a Option<DeadLetterConfigInput>,
    pub tracing_config: &'a Option<TracingConfigInput>,
    pub file_system_configs: &'a Option<Vec<Value>>,
    pub image_config: &'a Option<Value>,
    pub snap_start: &'a Option<SnapStartInput>,
    pub logging_config: &'a Option<LoggingConfigInput>,
    pub capacity_provider_config: &'a Option<Value>,
    pub durable_config: &'a Option<Value>,
    pub runtime_config: &'a Option<Value>,
    pub accelerator_config: &'a Option<Value>,
}

impl UnimplementedConfig<'_> {
    pub fn refuse(&self) -> Result<(), ApiError> {
        if let Some(vpc) = self.vpc_config {
            if vpc.ipv6_allowed_for_dual_stack == Some(true) {
                return Err(unsupported(
                    "VpcConfig.Ipv6AllowedForDualStack",
                    "instances have IPv4 only",
                ));
            }
        }
        if let Some(dlq) = self.dead_letter_config {
            refuse_nonempty(
                "DeadLetterConfig",
                &dlq.target_arn,
                "failed asynchronous events are dropped after their last retry",
            )?;
        }
        if let Some(t) = self.tracing_config {
            match t.mode.as_deref() {
                None | Some("PassThrough") => {}
                Some(_) => {
                    return Err(unsupported(
                        "TracingConfig",
                        "there is no X-Ray tracing; only Mode `PassThrough` is honoured",
                    ))
                }
            }
        }
        refuse_items(
            "FileSystemConfigs",
            self.file_system_configs,
            "functions cannot mount file systems",
        )?;
        refuse(
            "ImageConfig",
            self.image_config,
            "container images are not supported",
        )?;
        if let Some(s) = self.snap_start {
            match s.apply_on.as_deref() {
                None | Some("None") => {}
                Some(_) => {
                    return Err(unsupported(
                        "SnapStart",
                        "there are no snapshots; only ApplyOn `None` is honoured",
                    ))
                }
            }
        }
        if let Some(l) = self.logging_config {
            let own_group = format!("/aws/lambda/{}", self.function);
            if l.log_group.as_deref().is_some_and(|g| g != own_group) {
                return Err(unsupported(
                    "LoggingConfig",
                    "logs go to the function's own log group (LoggingConfig.LogGroup)",
                ));
            }
        }
        refuse(
            "CapacityProviderConfig",
            self.capacity_provider_config,
            "functions run on this host only",
        )?;
        refuse(
            "DurableConfig",
            self.durable_config,
            "durable executions do not exist",
        )?;
        refuse(
            "RuntimeConfig",
            self.runtime_config,
            "runtime versions are not managed",
        )?;
        refuse(
            "AcceleratorConfig",
            self.accelerator_config,
            "functions have no accelerators",
        )?;
        Ok(())
    }
}

/// Lambda's `FunctionConfiguration`.
pub fn configuration(state: &ApiState, request: &ApiRequest, f: &FunctionVersion) -> Value {
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
        "LoggingConfig": logging_config(f),
    });
    if let Some(key) = &f.kms_key_arn {
        v["KMSKeyArn"] = json!(key);
    }
    if let Some(vpc) = &f.vpc_config {
        v["VpcConfig"] = json!({
            "SubnetIds": vpc.subnet_ids,
            "SecurityGroupIds": vpc.security_group_ids,
            "VpcId": vpc.vpc_id,
            "Ipv6AllowedForDualStack": false,
        });
    }
    if let Some(e) = &f.environment_error {
        v["Environment"] = json!({ "Error": { "ErrorCode": e.code, "Message": e.message } });
    } else if !f.environment.is_empty() {
        // Sealed under a customer key: shown only to callers who may decrypt with it.
        match &f.kms_key_arn {
            Some(key) if !crate::kms::may_decrypt_environment(state, request, key) => {
                v["Environment"] = json!({ "Error": {
                    "ErrorCode": "AccessDeniedException",
                    "Message": format!("Lambda was unable to decrypt the environment variables because KMS access was denied. Please check the function's KMS key settings. KMS Exception: AccessDeniedException KMS Message: the caller is not authorized to perform: kms:Decrypt on resource: {key}")
                }});
            }
            _ => v["Environment"] = json!({ "Variables": f.environment }),
        }
    }
    if !f.layers.is_empty() {
        v["Layers"] = f
            .layers
            .iter()
            .map(|l| json!({ "Arn": l.arn, "CodeSize": l.code_size }))
            .collect();
    }
    v
}

/// Lambda's `LoggingConfig` of a function.
fn logging_config(f: &FunctionVersion) -> Value {
    let group = format!("/aws/lambda/{}", f.name);
    if f.logging.is_text() {
        return json!({ "LogFormat": "Text", "LogGroup": group });
    }
    json!({
        "LogFormat": "JSON",
        "ApplicationLogLevel": f.logging.application_level(),
        "SystemLogLevel": f.logging.system_level(),
        "LogGroup": group,
    })
}

/// The logging settings a `LoggingConfig` input asks for.
pub fn logging_settings(
    input: &LoggingConfigInput,
) -> Result<warden_types::LoggingSettings, ApiError> {
    Ok(warden_types::LoggingSettings::new(
        input.log_format.as_deref(),
        input.application_log_level.as_deref(),
        input.system_log_level.as_deref(),
    )?)
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

/// The page a Lambda list request asks for (`Marker`, `MaxItems` from 1 to 10000, 50 by
/// default).
pub fn page_request(request: &crate::ApiRequest) -> Result<PageRequest, ApiError> {
    Ok(PageRequest::parse(
        request.query("Marker").as_deref(),
        request.query("MaxItems").as_deref(),
        LAMBDA_PAGES,
    )?)
}

/// A list's output: the items under `key`, and `NextMarker` when there are more.
pub fn page_output(key: &str, page: Page<Value>) -> Value {
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), Value::Array(page.items));
    if let Some(n) = page.next_marker {
        body.insert("NextMarker".to_owned(), n.into());
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
        crate::parse_body(body.as_bytes())
    }

    #[test]
    fn unknown_members_are_refused_by_name_and_modelled_ones_read() {
        let e = parse::<CreateFunctionInput>(r#"{"FunctionName":"f","Colour":"red"}"#).unwrap_err();
        assert_eq!(e.code, "InvalidRequestContentException");
        assert!(e.message.contains("`Colour`"), "{}", e.message);
        // Nested shapes too.
        let e = parse::<CreateFunctionInput>(r#"{"Code":{"ZipFile":"","Url":"x"}}"#).unwrap_err();
        assert!(e.message.contains("`Url`"), "{}", e.message);
        // The model's spellings, including its irregular ones.
        let i: CreateFunctionInput =
            parse(r#"{"KMSKeyArn":"","Tags":{"a":"b"},"SnapStart":{"ApplyOn":"None"}}"#).unwrap();
        assert_eq!(i.kms_key_arn.as_deref(), Some(""));
        let p: AddPermissionInput = parse(r#"{"PrincipalOrgID":"o-1"}"#).unwrap();
        assert_eq!(p.principal_org_id.as_deref(), Some("o-1"));
        // Null reads as absent.
        let i: UpdateConfigurationInput = parse(r#"{"VpcConfig":null,"Layers":null}"#).unwrap();
        assert!(i.vpc_config.is_none() && i.layers.is_none());
    }

    fn unimplemented(body: &str) -> Result<(), ApiError> {
        let i: UpdateConfigurationInput = parse(body).unwrap();
        UnimplementedConfig {
            function: "f",
            vpc_config: &i.vpc_config,
            dead_letter_config: &i.dead_letter_config,
            tracing_config: &i.tracing_config,
            file_system_configs: &i.file_system_configs,
            image_config: &i.image_config,
            snap_start: &i.snap_start,
            logging_config: &i.logging_config,
            capacity_provider_config: &i.capacity_provider_config,
            durable_config: &i.durable_config,
            runtime_config: &i.runtime_config,
            accelerator_config: &i.accelerator_config,
        }
        .refuse()
    }

    #[test]
    fn unimplemented_members_are_refused_naming_them_unless_they_ask_for_what_warden_does() {
        for (body, member) in [
            (
                r#"{"VpcConfig":{"SubnetIds":["subnet-1"],"Ipv6AllowedForDualStack":true}}"#,
                "VpcConfig.Ipv6AllowedForDualStack",
            ),
            (r#"{"TracingConfig":{"Mode":"Active"}}"#, "TracingConfig"),
            (
                r#"{"SnapStart":{"ApplyOn":"PublishedVersions"}}"#,
                "SnapStart",
            ),
            (
                r#"{"DeadLetterConfig":{"TargetArn":"arn:aws:sqs:us-east-1:1:q"}}"#,
                "DeadLetterConfig",
            ),
            (
                r#"{"FileSystemConfigs":[{"Arn":"a","LocalMountPath":"/mnt/x"}]}"#,
                "FileSystemConfigs",
            ),
            (r#"{"ImageConfig":{}}"#, "ImageConfig"),
            (
                r#"{"LoggingConfig":{"LogGroup":"/elsewhere"}}"#,
                "LoggingConfig",
            ),
            (r#"{"DurableConfig":{}}"#, "DurableConfig"),
            (r#"{"CapacityProviderConfig":{}}"#, "CapacityProviderConfig"),
            (r#"{"RuntimeConfig":{}}"#, "RuntimeConfig"),
            (r#"{"AcceleratorConfig":{}}"#, "AcceleratorConfig"),
        ] {
            let e = unimplemented(body).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValueException", "{body}");
            assert!(
                e.message.starts_with(&format!("{member} is not supported")),
                "{body}: {}",
                e.message
            );
        }
        for honoured in [
            r#"{"KMSKeyArn":""}"#,
            r#"{"VpcConfig":{"SubnetIds":[],"SecurityGroupIds":[]}}"#,
            // Honoured by `functions::vpc_config`, which checks its subnets and groups.
            r#"{"VpcConfig":{"SubnetIds":["subnet-1"],"SecurityGroupIds":["sg-1"]}}"#,
            r#"{"TracingConfig":{"Mode":"PassThrough"}}"#,
            r#"{"SnapStart":{"ApplyOn":"None"}}"#,
            r#"{"DeadLetterConfig":{}}"#,
            r#"{"LoggingConfig":{"LogFormat":"Text","LogGroup":"/aws/lambda/f"}}"#,
        ] {
            assert!(unimplemented(honoured).is_ok(), "{honoured}");
        }
    }
}

//! Function, version, concurrency and account operations: each reads its input shape,
//! builds the control plane's typed command (validating every value through the
//! `warden_types` newtypes), calls the core and renders Lambda's output shape. Who may call
//! each operation is decided before it runs (`access::targets` names its IAM action); what
//! it changes is the core's (`warden_control`).

use base64::Engine as _;
use http::StatusCode;
use serde_json::json;
use warden_control::commands::{
    ConfigurationChange, CreateFunction, DeleteFunction, PublishVersion, SetConcurrency,
    UpdateFunctionCode, UpdateFunctionConfiguration, ZipPackage,
};
use warden_types::page::PageError;
use warden_types::{
    limits, Architecture, Description, Environment, EphemeralStorage, FunctionName, Handler,
    MemorySize, Qualifier, RoleArn, Runtime, Tags, Timeout,
};

use crate::caller::RequestCaller;
use crate::shape::{
    self, refuse, unsupported, CodeInput, ConcurrencyInput, CreateFunctionInput,
    EphemeralStorageInput, PublishInput, UnimplementedConfig, UpdateCodeInput,
    UpdateConfigurationInput,
};
use crate::{empty_response, json_response, parse_body, ApiError, ApiRequest, ApiState, Reply};

/// A function name from a path, refusing qualifiers where the operation takes none.
fn unqualified(state: &ApiState, raw: &str) -> Result<FunctionName, ApiError> {
    let r = state.function_ref(raw)?;
    if r.qualifier.is_some() {
        return Err(ApiError::invalid(format!(
            "`{raw}` must not include a qualifier for this operation"
        )));
    }
    Ok(r.name)
}

pub(crate) fn decode_zip(zip_b64: &str) -> Result<ZipPackage, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(zip_b64.trim())
        .map(ZipPackage)
        .map_err(|e| ApiError::invalid(format!("Code.ZipFile is not valid base64: {e}")))
}

/// The package of a `FunctionCode`: only `ZipFile` is implemented.
fn zip_code(code: CodeInput) -> Result<ZipPackage, ApiError> {
    let s3 = "S3 code locations are not supported; send Code.ZipFile";
    refuse("Code.S3Bucket", &code.s3_bucket, s3)?;
    refuse("Code.S3Key", &code.s3_key, s3)?;
    refuse("Code.S3ObjectVersion", &code.s3_object_version, s3)?;
    refuse("Code.S3ObjectStorageMode", &code.s3_object_storage_mode, s3)?;
    refuse(
        "Code.ImageUri",
        &code.image_uri,
        "container images are not supported; send Code.ZipFile",
    )?;
    refuse(
        "Code.SourceKMSKeyArn",
        &code.source_kms_key_arn,
        "code is not encrypted with a customer key",
    )?;
    decode_zip(
        &code
            .zip_file
            .ok_or_else(|| ApiError::invalid("Code.ZipFile is required"))?,
    )
}

fn ephemeral_storage(input: EphemeralStorageInput) -> Result<EphemeralStorage, ApiError> {
    let size = input
        .size
        .ok_or_else(|| ApiError::invalid("EphemeralStorage.Size is required"))?;
    Ok(EphemeralStorage::new(size)?)
}

fn environment(input: Option<shape::EnvironmentInput>) -> Result<Option<Environment>, ApiError> {
    input
        .map(|e| Environment::new(e.variables.unwrap_or_default()))
        .transpose()
        .map_err(ApiError::from)
}

/// `CreateFunction`: callers need `lambda:CreateFunction` on the function (and
/// `lambda:TagResource` with `Tags`), and `iam:PassRole` on its role (decided by the core
/// through [`RequestCaller`]). Creates `$LATEST` (and with `Publish`, version 1).
pub async fn create(state: &ApiState, request: &ApiRequest) -> Result<Reply, ApiError> {
    let input: CreateFunctionInput = parse_body(&request.body)?;
    let raw_name = input
        .function_name
        .as_deref()
        .ok_or_else(|| ApiError::invalid("FunctionName is required"))?;
    let name = unqualified(state, raw_name)?;
    if input.package_type.as_deref().is_some_and(|p| p != "Zip") {
        return Err(unsupported(
            "PackageType",
            "only `Zip` packages are supported",
        ));
    }
    refuse(
        "PublishTo",
        &input.publish_to,
        "versions are published by Warden's own numbering only",
    )?;
    let code_signing_config_arn = input
        .code_signing_config_arn
        .clone()
        .filter(|a| !a.is_empty())
        .map(crate::code_signing::config_arn)
        .transpose()?;
    refuse(
        "TenancyConfig",
        &input.tenancy_config,
        "functions have no tenant isolation mode",
    )?;
    UnimplementedConfig {
        function: name.as_str(),
        vpc_config: &input.vpc_config,
        dead_letter_config: &input.dead_letter_config,
        tracing_config: &input.tracing_config,
        file_system_configs: &input.file_system_configs,
        image_config: &input.image_config,
        snap_start: &input.snap_start,
        logging_config: &input.logging_config,
        capacity_provider_config: &input.capacity_provider_config,
        durable_config: &input.durable_config,
        runtime_config: &input.runtime_config,
        accelerator_config: &input.accelerator_config,
    }
    .refuse()?;
    let runtime = Runtime::new(
        input
            .runtime
            .as_deref()
            .ok_or_else(|| ApiError::invalid("Runtime is required for .zip file packages"))?,
    )?;
    let role = RoleArn::new(
        input
            .role
            .as_deref()
            .ok_or_else(|| ApiError::invalid("Role is required"))?,
    )?;
    let command = CreateFunction {
        name,
        runtime,
        role,
        handler: input.handler.as_deref().map(Handler::new).transpose()?,
        description: Description::new(input.description.as_deref().unwrap_or_default())?,
        timeout: input
            .timeout
            .map(Timeout::new)
            .transpose()?
            .unwrap_or(Timeout::DEFAULT),
        memory: input
            .memory_size
            .map(MemorySize::new)
            .transpose()?
            .unwrap_or(MemorySize::DEFAULT),
        ephemeral_storage: input
            .ephemeral_storage
            .map(ephemeral_storage)
            .transpose()?
            .unwrap_or(EphemeralStorage::DEFAULT),
        environment: environment(input.environment)?.unwrap_or_default(),
        kms_key_arn: kms_key_arn(input.kms_key_arn)?.flatten(),
        architecture: Architecture::from_list(&input.architectures.unwrap_or_default())?,
        code: zip_code(
            input
                .code
                .ok_or_else(|| ApiError::invalid("Code is required"))?,
        )?,
        publish: input.publish.unwrap_or(false),
        tags: Tags::new(input.tags.unwrap_or_default()).map_err(warden_types::ConfigError::from)?,
        layers: input.layers.unwrap_or_default(),
        logging: input
            .logging_config
            .as_ref()
            .map(shape::logging_settings)
            .transpose()?
            .unwrap_or_default(),
        vpc_config: None,
        code_signing_config_arn,
    };
    let mut command = command;
    command.vpc_config = vpc_config(state, &command.role, input.vpc_config.as_ref())?.flatten();
    let findings = hygiene(Some(&command.environment));
    let name = command.name.clone();
    let shown = state
        .control
        .create_function(command, &RequestCaller::new(state, request))
        .await?;
    let response = json_response(
        StatusCode::CREATED,
        &shape::configuration(state, request, &shown),
    );
    warn_of(state, &name, findings, response).await
}

/// Plain environment values that look like secrets: `(variable, why)`; `None` when the
/// request set no environment. Never the values.
fn hygiene(environment: Option<&Environment>) -> Option<Vec<(String, String)>> {
    environment.map(|e| {
        e.variables()
            .iter()
            .filter_map(|(k, v)| {
                warden_types::hygiene::likely_secret(k, v).map(|r| (k.clone(), r.to_string()))
            })
            .collect()
    })
}

/// Records the hygiene findings of a function's new environment (replacing the old ones)
/// and warns the caller of them in a `Warning` header; the values are never shown.
async fn warn_of(
    state: &ApiState,
    name: &warden_types::FunctionName,
    findings: Option<Vec<(String, String)>>,
    mut response: Reply,
) -> Result<Reply, ApiError> {
    let Some(findings) = findings else {
        return Ok(response);
    };
    state
        .control
        .record_environment_findings(name, &findings)
        .await?;
    if findings.is_empty() {
        return Ok(response);
    }
    let listed: Vec<String> = findings
        .iter()
        .map(|(var, why)| format!("{var} ({why})"))
        .collect();
    tracing::warn!(function = %name, variables = %listed.join(", "), "plain environment values look like secrets");
    let text = format!(
        "199 warden \"environment variables that look like secrets: {}; keep secrets in Secrets Manager\"",
        listed.join(", ")
    );
    if let Ok(value) = http::HeaderValue::from_str(&text) {
        response.headers_mut().insert(http::header::WARNING, value);
    }
    Ok(response)
}

/// `GetFunction` (`full`) and `GetFunctionConfiguration`: callers need the operation's
/// action on the function or version; changes nothing. `GetFunction` shows the function's
/// tags only to a caller also allowed `lambda:ListTags` on it, as Lambda does; others get
/// `TagsError` instead.
pub async fn get(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
    full: bool,
) -> Result<Reply, ApiError> {
    let r = state
        .function_ref(raw)?
        .with_qualifier(request.query("Qualifier").as_deref())?;
    if !full {
        let f = state.control.get_configuration(&r).await?;
        return Ok(json_response(
            StatusCode::OK,
            &shape::configuration(state, request, &f),
        ));
    }
    let view = state.control.get_function(&r).await?;
    let mut body = json!({
        "Configuration": shape::configuration(state, request, &view.configuration),
        "Code": { "RepositoryType": "Warden" },
    });
    if let Some(reserved) = view.reserved_concurrency {
        body["Concurrency"] = json!({ "ReservedConcurrentExecutions": reserved });
    }
    if !view.tags.is_empty() {
        if crate::access::allows(state, request, "lambda:ListTags", &r.name).await? {
            body["Tags"] = json!(view.tags.as_map());
        } else {
            body["TagsError"] = json!({
                "ErrorCode": "AccessDeniedException",
                "Message": format!(
                    "The caller is not authorized to perform lambda:ListTags on {}, so the function's tags are not shown.",
                    state.function_arn(&r.name, None)
                ),
            });
        }
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `ListFunctions`: callers need `lambda:ListFunctions`; changes nothing.
pub async fn list(state: &ApiState, request: &ApiRequest) -> Result<Reply, ApiError> {
    refuse(
        "MasterRegion",
        &request.query("MasterRegion"),
        "there are no Lambda@Edge replicas",
    )?;
    let wanted = shape::page_request(request)?;
    let after = match wanted.marker {
        Some(m) => Some(FunctionName::new(&m).map_err(|_| PageError::Marker(m))?),
        None => None,
    };
    let all_versions = match request.query("FunctionVersion").as_deref() {
        None => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "FunctionVersion `{other}` must be `ALL`"
            )))
        }
    };
    let page = state
        .control
        .list_functions(after, wanted.max_items, all_versions)
        .await?;
    let body = shape::page_output(
        "Functions",
        page.map(|f| shape::configuration(state, request, &f)),
    );
    Ok(json_response(StatusCode::OK, &body))
}

/// `DeleteFunction`: callers need `lambda:DeleteFunction` on the function or version.
/// Deletes the function (everything that belongs to it) or one published version.
pub async fn delete(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let r = state
        .function_ref(raw)?
        .with_qualifier(request.query("Qualifier").as_deref())?;
    let version = match &r.qualifier {
        None => None,
        Some(Qualifier::Latest) => {
            return Err(ApiError::invalid(
                "$LATEST version cannot be deleted without deleting the function.",
            ));
        }
        Some(Qualifier::Alias(_)) => {
            return Err(ApiError::invalid(
                "Deletion of aliases is not supported by DeleteFunction; use DeleteAlias",
            ))
        }
        Some(Qualifier::Version(v)) => Some(*v),
    };
    state
        .control
        .delete_function(
            DeleteFunction {
                name: r.name,
                version,
            },
            &RequestCaller::new(state, request),
        )
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `UpdateFunctionCode`: callers need `lambda:UpdateFunctionCode` on the function. Replaces
/// `$LATEST`'s code (and with `Publish`, publishes it). With `DryRun` the zip is checked
/// exactly as for a real update but nothing is stored, not even the blob.
pub async fn update_code(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let input: UpdateCodeInput = parse_body(&request.body)?;
    refuse(
        "PublishTo",
        &input.publish_to,
        "versions are published by Warden's own numbering only",
    )?;
    let code = zip_code(CodeInput {
        zip_file: input.zip_file,
        s3_bucket: input.s3_bucket,
        s3_key: input.s3_key,
        s3_object_version: input.s3_object_version,
        s3_object_storage_mode: input.s3_object_storage_mode,
        image_uri: input.image_uri,
        source_kms_key_arn: input.source_kms_key_arn,
    })?;
    let command = UpdateFunctionCode {
        name,
        code,
        architecture: input
            .architectures
            .map(|a| Architecture::from_list(&a))
            .transpose()?,
        publish: input.publish.unwrap_or(false),
        dry_run: input.dry_run.unwrap_or(false),
        revision_id: input.revision_id,
    };
    let shown = state
        .control
        .update_function_code(command, &RequestCaller::new(state, request))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &shape::configuration(state, request, &shown),
    ))
}

/// `KMSKeyArn`: absent (`None`), empty (`Some(None)`: the AWS managed `aws/lambda`), or
/// the ARN of a KMS key. Whether it exists and the caller may use it is the core's check.
fn kms_key_arn(value: Option<String>) -> Result<Option<Option<String>>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(Some(None)),
        Some(v) => {
            let parts: Vec<&str> = v.splitn(6, ':').collect();
            let is_key =
                matches!(parts.as_slice(), ["arn", "aws", "kms", _, _, r] if r.starts_with("key/"));
            if !is_key {
                return Err(ApiError::invalid(format!(
                    "KMSKeyArn `{}` must be the ARN of a KMS key (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID)",
                    v.chars().take(256).collect::<String>()
                )));
            }
            Ok(Some(Some(v)))
        }
    }
}

/// `UpdateFunctionConfiguration`: callers need `lambda:UpdateFunctionConfiguration` on the
/// function (never grantable by a function policy), and with `Role`, `iam:PassRole` on the
/// role (decided by the core through [`RequestCaller`]). Replaces `$LATEST`'s settings.
pub async fn update_configuration(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let input: UpdateConfigurationInput = parse_body(&request.body)?;
    UnimplementedConfig {
        function: name.as_str(),
        vpc_config: &input.vpc_config,
        dead_letter_config: &input.dead_letter_config,
        tracing_config: &input.tracing_config,
        file_system_configs: &input.file_system_configs,
        image_config: &input.image_config,
        snap_start: &input.snap_start,
        logging_config: &input.logging_config,
        capacity_provider_config: &input.capacity_provider_config,
        durable_config: &input.durable_config,
        runtime_config: &input.runtime_config,
        accelerator_config: &input.accelerator_config,
    }
    .refuse()?;
    let change = ConfigurationChange {
        runtime: input.runtime.as_deref().map(Runtime::new).transpose()?,
        role: input.role.as_deref().map(RoleArn::new).transpose()?,
        handler: input.handler.as_deref().map(Handler::new).transpose()?,
        description: input
            .description
            .as_deref()
            .map(Description::new)
            .transpose()?,
        timeout: input.timeout.map(Timeout::new).transpose()?,
        memory: input.memory_size.map(MemorySize::new).transpose()?,
        ephemeral_storage: input.ephemeral_storage.map(ephemeral_storage).transpose()?,
        environment: environment(input.environment)?,
        kms_key_arn: kms_key_arn(input.kms_key_arn)?,
        layers: input.layers,
        logging: input
            .logging_config
            .as_ref()
            .map(shape::logging_settings)
            .transpose()?,
        vpc_config: None,
    };
    let mut change = change;
    if input.vpc_config.is_some() {
        // The role the attachment is checked against: the new one, or the function's.
        let role = match &change.role {
            Some(r) => r.clone(),
            None => {
                let current = state
                    .control
                    .get_configuration(&warden_types::FunctionRef {
                        name: name.clone(),
                        qualifier: None,
                    })
                    .await?;
                RoleArn::new(&current.role)?
            }
        };
        change.vpc_config = vpc_config(state, &role, input.vpc_config.as_ref())?;
    }
    let findings = hygiene(change.environment.as_ref());
    let shown = state
        .control
        .update_function_configuration(
            UpdateFunctionConfiguration {
                name: name.clone(),
                change,
                revision_id: input.revision_id,
            },
            &RequestCaller::new(state, request),
        )
        .await?;
    let response = json_response(
        StatusCode::OK,
        &shape::configuration(state, request, &shown),
    );
    warn_of(state, &name, findings, response).await
}

/// `PublishVersion`: callers need `lambda:PublishVersion` on the function. Publishes
/// `$LATEST` as the next version (or returns the newest if nothing changed).
pub async fn publish(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let input: PublishInput = parse_body(&request.body)?;
    refuse(
        "PublishTo",
        &input.publish_to,
        "versions are published by Warden's own numbering only",
    )?;
    let command = PublishVersion {
        name,
        code_sha256: input.code_sha256,
        description: input
            .description
            .as_deref()
            .map(Description::new)
            .transpose()?,
        revision_id: input.revision_id,
    };
    let published = state
        .control
        .publish_version(command, &RequestCaller::new(state, request))
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &shape::configuration(state, request, &published),
    ))
}

/// `ListVersionsByFunction`: callers need the action on the function; changes nothing.
pub async fn list_versions(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let wanted = shape::page_request(request)?;
    let page = state
        .control
        .list_versions(&name, wanted.marker, wanted.max_items)
        .await?;
    let body = shape::page_output(
        "Versions",
        page.map(|v| shape::configuration(state, request, &v)),
    );
    Ok(json_response(StatusCode::OK, &body))
}

/// `PutFunctionConcurrency`: callers need the action on the function. Sets its
/// reservation, leaving the account its unreserved minimum.
pub async fn put_concurrency(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let input: ConcurrencyInput = parse_body(&request.body)?;
    let requested = input
        .reserved_concurrent_executions
        .ok_or_else(|| ApiError::invalid("ReservedConcurrentExecutions is required"))?;
    let requested = u32::try_from(requested).map_err(|_| {
        ApiError::invalid(format!(
            "ReservedConcurrentExecutions `{requested}` must be 0 or more"
        ))
    })?;
    state
        .control
        .set_concurrency(
            SetConcurrency {
                function: name,
                reserved: Some(requested),
            },
            &RequestCaller::new(state, request),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "ReservedConcurrentExecutions": requested }),
    ))
}

/// `GetFunctionConcurrency`: callers need the action on the function; changes nothing.
pub async fn get_concurrency(state: &ApiState, raw: &str) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let body = match state.control.get_concurrency(&name).await? {
        Some(r) => json!({ "ReservedConcurrentExecutions": r }),
        None => json!({}),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `DeleteFunctionConcurrency`: callers need the action on the function. Removes its
/// reservation.
pub async fn delete_concurrency(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    state
        .control
        .set_concurrency(
            SetConcurrency {
                function: name,
                reserved: None,
            },
            &RequestCaller::new(state, request),
        )
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `GetAccountSettings`: callers need `lambda:GetAccountSettings`; changes nothing.
pub async fn account_settings(state: &ApiState) -> Result<Reply, ApiError> {
    let s = state.control.account_settings().await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "AccountLimit": {
                "TotalCodeSize": 80_530_636_800u64,
                "CodeSizeUnzipped": limits::UNZIPPED_BYTES,
                "CodeSizeZipped": limits::ZIP_BYTES,
                "ConcurrentExecutions": s.account_limit,
                "UnreservedConcurrentExecutions": s.unreserved_concurrency,
            },
            "AccountUsage": { "TotalCodeSize": s.total_code_size, "FunctionCount": s.function_count },
        }),
    ))
}

/// Warden's log endpoint: a page of one function's log lines after `after` (seq), up to
/// `limit`, waiting up to `wait` seconds for new ones; with `filter`, only lines matching
/// that CloudWatch filter pattern, and with `since` (epoch milliseconds) only lines logged
/// then or later. Callers need `logs:GetLogEvents` on the function's log group; it changes
/// nothing. Each record says whether Warden (`"source": "platform"`) or the function
/// (`"function"`) wrote it, and carries the message exactly as stored: clients must escape
/// it before showing it on a terminal. `nextSeq` is the last line read, matched or not, so
/// a filtered read always moves on; a call reads at most [`LOG_SCAN_PER_CALL`] lines and
/// answers with about 1 MiB of messages at most.
pub async fn read_logs(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let parse = |key: &str, default: i64, max: i64| -> Result<i64, ApiError> {
        match request.query(key) {
            None => Ok(default),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!("`{key}` must be a number from 0 to {max}"))
                }),
        }
    };
    let after = parse("after", 0, i64::MAX)?;
    let limit = parse("limit", 1000, 10_000)? as usize;
    let wait = std::time::Duration::from_secs(parse("wait", 0, 60)? as u64);
    let since = parse("since", 0, i64::MAX)?;
    let filter = match request.query("filter") {
        None => None,
        Some(p) => Some(std::sync::Arc::new(
            warden_logquery::filter::parse(&p).map_err(|e| ApiError::invalid(e.to_string()))?,
        )),
    };
    // A name with neither a function nor lines is unknown.
    state.control.read_logs(&name, 0, 1).await?;
    let deadline = tokio::time::Instant::now() + wait;
    let written = state.engine.logs_written();
    let mut after = after;
    loop {
        // Subscribe before reading so a batch landing in between is not missed.
        let notified = written.notified();
        let store = state.control.log_store();
        let group = warden_control::LogGroup::Function(name.clone());
        let filter = filter.clone();
        let (records, last) = tokio::task::spawn_blocking(move || {
            let range = warden_control::EventRange {
                group: &group,
                stream: None,
                start_ms: (since > 0).then_some(since),
                end_ms: None,
                cursor: warden_control::Cursor::After(after),
            };
            let mut records = Vec::new();
            let mut last = after;
            let mut scanned = 0;
            let mut bytes = 0;
            store.scan_events(&range, &mut |e| {
                scanned += 1;
                last = e.seq;
                if filter.as_ref().is_none_or(|f| f.matches(e.message)) {
                    bytes += e.message.len();
                    records.push(json!({
                        "seq": e.seq,
                        "timestampMs": e.timestamp_ms,
                        "requestId": e.request_id,
                        "stream": e.stream,
                        "source": e.source.as_str(),
                        "message": e.message,
                    }));
                }
                if records.len() >= limit
                    || bytes >= crate::cwlogs::MAX_ANSWER_BYTES
                    || scanned >= LOG_SCAN_PER_CALL
                {
                    warden_control::Scan::Stop
                } else {
                    warden_control::Scan::Continue
                }
            })?;
            Ok::<_, warden_control::StoreError>((records, last))
        })
        .await
        .map_err(|e| ApiError::internal(format!("reading logs: {e}")))?
        .map_err(|e| ApiError::internal(format!("reading logs: {e}")))?;
        let moved = last > after;
        after = last;
        if !records.is_empty() || moved && wait.is_zero() || tokio::time::Instant::now() >= deadline
        {
            return Ok(json_response(
                StatusCode::OK,
                &json!({ "records": records, "nextSeq": after }),
            ));
        }
        if !moved {
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

/// Lines one call of the log endpoint reads, matched or not.
pub const LOG_SCAN_PER_CALL: usize = 100_000;

/// Warden's own `GET /_warden/2026-11-01/functions/NAME/dns-queries?limit=N`: the newest
/// `N` (default 100, at most 10,000) DNS queries of the function's instances, oldest first:
/// name, type, the firewall's action, the response code and the answer's addresses.
pub async fn read_dns_queries(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let limit = record_limit(request)?;
    let engine = state.engine.clone();
    let function = name.to_string();
    let records = tokio::task::spawn_blocking(move || engine.dns_queries(&function, limit))
        .await
        .map_err(|e| ApiError::internal(format!("reading the DNS query log: {e}")))?
        .map_err(|e| ApiError::internal(format!("reading the DNS query log: {e}")))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "Queries": records }),
    ))
}

/// Warden's own `GET /_warden/2026-11-01/functions/NAME/flows?limit=N`: the newest `N`
/// (default 100, at most 10,000) flow log records of the function's instances, oldest
/// first, as fields and as lines of VPC Flow Logs' default format, and how many rejected
/// flows the function has (the metric alarms watch).
pub async fn read_flows(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let limit = record_limit(request)?;
    let Some(log) = state.engine.flow_log().cloned() else {
        return Ok(json_response(
            StatusCode::OK,
            &json!({ "Records": [], "Lines": [], "RejectedFlows": 0 }),
        ));
    };
    let function = name.to_string();
    let (records, rejected) = tokio::task::spawn_blocking(move || {
        Ok::<_, warden_egress::EgressError>((
            log.recent(&function, limit)?,
            log.rejected(&function)?,
        ))
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the flow log: {e}")))?
    .map_err(|e| ApiError::internal(format!("reading the flow log: {e}")))?;
    let lines: Vec<String> = records.iter().map(|r| r.line()).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "Records": records, "Lines": lines, "RejectedFlows": rejected }),
    ))
}

/// The `limit` of Warden's network log endpoints: 1-10,000, default 100.
fn record_limit(request: &ApiRequest) -> Result<usize, ApiError> {
    match request.query("limit") {
        None => Ok(100),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| ApiError::invalid("`limit` must be a number from 1 to 10000")),
    }
}

/// Most subnets and security groups one function names (Lambda's limits).
const MAX_VPC_SUBNETS: usize = 16;
const MAX_VPC_SECURITY_GROUPS: usize = 5;

/// A request's `VpcConfig`, checked: `None` if absent, `Some(None)` to detach (both lists
/// empty, as Lambda reads it), else the subnets and groups, which must exist, all in one
/// VPC, on a server that can enforce them, for an execution role allowed to manage network
/// interfaces (Lambda's requirement: `ec2:CreateNetworkInterface`, as the managed policy
/// `AWSLambdaVPCAccessExecutionRole` grants).
fn vpc_config(
    state: &ApiState,
    role: &RoleArn,
    input: Option<&shape::VpcConfigInput>,
) -> Result<Option<Option<warden_types::VpcConfig>>, ApiError> {
    let Some(input) = input else {
        return Ok(None);
    };
    let dedup = |v: &Option<Vec<String>>| {
        let mut v = v.clone().unwrap_or_default();
        v.sort();
        v.dedup();
        v
    };
    let subnets = dedup(&input.subnet_ids);
    let groups = dedup(&input.security_group_ids);
    if subnets.is_empty() && groups.is_empty() {
        return Ok(Some(None));
    }
    if subnets.is_empty() || groups.is_empty() {
        return Err(ApiError::invalid(
            "VpcConfig needs both SubnetIds and SecurityGroupIds (or neither, to detach the function)",
        ));
    }
    if subnets.len() > MAX_VPC_SUBNETS || groups.len() > MAX_VPC_SECURITY_GROUPS {
        return Err(ApiError::invalid(format!(
            "VpcConfig names at most {MAX_VPC_SUBNETS} subnets and {MAX_VPC_SECURITY_GROUPS} security groups"
        )));
    }
    if let Some(why) = state.engine.egress_unavailable() {
        return Err(ApiError::invalid(format!(
            "VpcConfig cannot be enforced by this Warden server ({why}); see `warden doctor`"
        )));
    }
    let mut vpc_id: Option<String> = None;
    let mut same_vpc = |vpc: &str, what: &str| -> Result<(), ApiError> {
        match &vpc_id {
            Some(v) if v != vpc => Err(ApiError::invalid(format!(
                "VpcConfig: {what} is in {vpc}, not in {v}; all subnets and security groups must be in one VPC"
            ))),
            Some(_) => Ok(()),
            None => {
                vpc_id = Some(vpc.to_owned());
                Ok(())
            }
        }
    };
    for id in &subnets {
        let subnet = state.network.subnet(id).ok_or_else(|| {
            ApiError::invalid(format!(
                "Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. EC2 Error Message: The subnet ID '{id}' does not exist"
            ))
        })?;
        same_vpc(&subnet.vpc_id, &format!("subnet {id}"))?;
    }
    for id in &groups {
        let group = state.network.security_group(id).ok_or_else(|| {
            ApiError::invalid(format!(
                "Error occurred while DescribeSecurityGroups. EC2 Error Code: InvalidGroup.NotFound. EC2 Error Message: The security group '{id}' does not exist"
            ))
        })?;
        same_vpc(&group.vpc_id, &format!("security group {id}"))?;
    }
    if !role_may_manage_interfaces(state, role) {
        return Err(ApiError::invalid(
            "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
        ));
    }
    Ok(Some(Some(warden_types::VpcConfig {
        subnet_ids: subnets,
        security_group_ids: groups,
        vpc_id: vpc_id.unwrap_or_default(),
    })))
}

/// Whether `role`'s policies allow `ec2:CreateNetworkInterface` (on `*`, as Lambda
/// checks it).
fn role_may_manage_interfaces(state: &ApiState, role: &RoleArn) -> bool {
    let Some(policies) = state.access.identity.role_policies(role.as_str()) else {
        return false;
    };
    let refs: Vec<&warden_iam::Policy> = policies.iter().map(|p| p.as_ref()).collect();
    let request = warden_iam::Request {
        principal: Some(role.as_str().to_owned()),
        action: "ec2:CreateNetworkInterface".to_owned(),
        resource: "*".to_owned(),
        context: Default::default(),
    };
    warden_iam::evaluate(&request, &refs, None).is_allowed()
}

/// The name of a function whose configuration (any version) attaches it to the subnet or
/// security group `id`, if one does: such a subnet or group cannot be deleted.
pub(crate) async fn network_in_use(state: &ApiState, id: &str) -> Result<Option<String>, ApiError> {
    Ok(state.control.functions_attached_to(id).await?)
}

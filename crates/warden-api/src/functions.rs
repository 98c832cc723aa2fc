//! Function, version, concurrency and account operations.

use std::sync::Arc;

use base64::Engine as _;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use warden_store::StoreError;
use warden_types::{limits, FunctionName, FunctionRef, FunctionVersion, Qualifier, LATEST};

use crate::shape::{self, CreateFunctionInput, UpdateCodeInput, UpdateConfigurationInput};
use crate::{
    blocking, empty_response, json_response, parse_body, ApiError, ApiRequest, ApiState, Reply,
};

fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

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

fn not_found(state: &ApiState, r: &FunctionRef) -> ApiError {
    ApiError::not_found(format!("Function not found: {}", state.engine.arn(r)))
}

fn decode_zip(zip_b64: &str) -> Result<Vec<u8>, ApiError> {
    let zip = base64::engine::general_purpose::STANDARD
        .decode(zip_b64.trim())
        .map_err(|e| ApiError::invalid(format!("Code.ZipFile is not valid base64: {e}")))?;
    if zip.len() as u64 > limits::ZIP_BYTES {
        return Err(ApiError::too_large(
            limits::ZIP_BYTES as usize,
            "CreateFunction",
        ));
    }
    Ok(zip)
}

/// Extracts `zip` into a fresh staging directory, as every deploy must before its code is
/// accepted; the directory is removed when the returned guard drops.
fn extract_to_staging(
    blobs: &warden_store::BlobStore,
    zip: &[u8],
) -> Result<warden_store::blobs::Staging, ApiError> {
    let staging = blobs.create_staging().map_err(ApiError::internal)?;
    warden_package::extract(zip, staging.path(), &warden_package::Limits::default()).map_err(
        |e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "InvalidZipFileException",
                format!("Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"),
            )
        },
    )?;
    Ok(staging)
}

/// Decodes a base64 zip and installs it in the blob store; returns (sha256, size) and a
/// pin that keeps the blob from garbage collection until the caller has committed the
/// version referencing it (or given up; then the next sweep removes it).
async fn install_code(
    state: &ApiState,
    zip_b64: &str,
) -> Result<(String, u64, warden_store::blobs::BlobPin), ApiError> {
    let zip = decode_zip(zip_b64)?;
    let blobs = Arc::clone(&state.blobs);
    blocking(move || {
        let size = zip.len() as u64;
        let sha = warden_store::blobs::sha256_base64(&zip);
        // Pinned before looking, so a sweep cannot remove the blob after it was found.
        let pin = blobs.pin(&sha);
        if blobs.has_code_dir(&sha) {
            return Ok((sha, size, pin));
        }
        let installed = extract_to_staging(&blobs, &zip).and_then(|staging| {
            blobs.put_zip(&zip).map_err(ApiError::internal)?;
            blobs
                .install_code_dir(&sha, staging.path())
                .map_err(ApiError::internal)
        });
        if installed.is_err() {
            // A zip may have been stored without its tree: collect it.
            blobs.request_sweep();
        }
        installed.map(|_| (sha, size, pin))
    })
    .await
}

/// Checks a base64 zip as [`install_code`] would, writing no blob: it is extracted into a
/// staging directory that is removed before this returns. Returns (sha256, size).
async fn validate_code(state: &ApiState, zip_b64: &str) -> Result<(String, u64), ApiError> {
    let zip = decode_zip(zip_b64)?;
    let blobs = Arc::clone(&state.blobs);
    blocking(move || {
        drop(extract_to_staging(&blobs, &zip)?);
        Ok((warden_store::blobs::sha256_base64(&zip), zip.len() as u64))
    })
    .await
}

/// Lambda's checks on an execution role, made for every change of a function's role
/// (CreateFunction, UpdateFunctionConfiguration with `Role`): the role is resolved first
/// (IAM role names ignore case, so `role/POWER` names `power`), the caller must be signed
/// and allowed `iam:PassRole` on the resolved role's canonical ARN, and the role's trust
/// policy must let `lambda.amazonaws.com` assume it. Returns the canonical ARN: what the
/// function stores and runs as. A role that does not exist is decided on the ARN as given,
/// so a caller learns nothing about roles it may not pass.
fn check_role(state: &ApiState, request: &ApiRequest, role: &str) -> Result<String, ApiError> {
    let Some(p) = &request.principal else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let identity = &state.access.identity;
    let resolved = identity.resolve_role(role);
    let decided_on = resolved.as_ref().map_or(role, |r| r.arn.as_str());
    if !crate::access::allowed_by_identity(state, p, "iam:PassRole", decided_on, request) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            format!(
                "User: {} is not authorized to perform: iam:PassRole on resource: {decided_on}",
                p.arn
            ),
        ));
    }
    let trusted = resolved.filter(|r| {
        identity
            .role_trusts_service(&r.arn, warden_identity::EXECUTION_SERVICE)
            .unwrap_or(false)
    });
    match trusted {
        Some(r) => Ok(r.arn),
        None => Err(ApiError::invalid(
            "The role defined for the function cannot be assumed by Lambda.",
        )),
    }
}

/// Validates and applies the configuration members a caller gave.
fn apply_config(
    state: &ApiState,
    request: &ApiRequest,
    f: &mut FunctionVersion,
    input: shape::ConfigInput,
) -> Result<(), ApiError> {
    shape::refuse_layers(&input.layers)?;
    if let Some(r) = input.runtime {
        shape::validate_runtime(&r)?;
        f.runtime = r;
    }
    if let Some(r) = input.role {
        shape::validate_role(&r)?;
        f.role = check_role(state, request, &r)?;
    }
    if let Some(h) = input.handler {
        shape::validate_handler(&h)?;
        f.handler = h;
    }
    if let Some(d) = input.description {
        shape::validate_description(&d)?;
        f.description = d;
    }
    if let Some(t) = input.timeout {
        shape::validate_timeout(t)?;
        f.timeout_seconds = t;
    }
    if let Some(m) = input.memory_size {
        shape::validate_memory(m)?;
        f.memory_mb = m;
    }
    if let Some(s) = input.ephemeral_storage.and_then(|e| e.size) {
        shape::validate_ephemeral(s)?;
        f.ephemeral_storage_mb = s;
    }
    if let Some(env) = input.environment {
        let vars = env.variables.unwrap_or_default();
        shape::validate_environment(&vars)?;
        f.environment = vars;
    }
    Ok(())
}

fn zip_input(zip: Option<String>, s3: bool, image: bool) -> Result<String, ApiError> {
    if s3 {
        return Err(ApiError::invalid(
            "S3 code locations are not supported by Warden; send Code.ZipFile",
        ));
    }
    if image {
        return Err(ApiError::invalid(
            "container images are not supported by Warden; send Code.ZipFile",
        ));
    }
    zip.ok_or_else(|| ApiError::invalid("Code.ZipFile is required"))
}

pub async fn create(state: &ApiState, request: &ApiRequest) -> Result<Reply, ApiError> {
    let input: CreateFunctionInput = parse_body(&request.body)?;
    let raw_name = input
        .function_name
        .ok_or_else(|| ApiError::invalid("FunctionName is required"))?;
    let name = unqualified(state, &raw_name)?;
    if input.package_type.as_deref().is_some_and(|p| p != "Zip") {
        return Err(ApiError::invalid(
            "only PackageType `Zip` is supported by Warden",
        ));
    }
    let mut config = input.config;
    let runtime = config
        .runtime
        .clone()
        .ok_or_else(|| ApiError::invalid("Runtime is required for .zip file packages"))?;
    if config.role.is_none() {
        return Err(ApiError::invalid("Role is required"));
    }
    if config.handler.is_none() {
        if !runtime.starts_with("provided") {
            return Err(ApiError::invalid(format!(
                "Handler is required for runtime {runtime}"
            )));
        }
        config.handler = Some("bootstrap".to_owned());
    }
    // Lambda's defaults, then the caller's values through the same checks as an update.
    let mut latest = FunctionVersion {
        name: name.clone(),
        version: LATEST.to_owned(),
        runtime,
        handler: String::new(),
        role: String::new(),
        description: String::new(),
        timeout_seconds: limits::DEFAULT_TIMEOUT_SECONDS,
        memory_mb: limits::DEFAULT_MEMORY_MB,
        ephemeral_storage_mb: limits::DEFAULT_EPHEMERAL_STORAGE_MB,
        environment: Default::default(),
        code_sha256: String::new(),
        code_size: 0,
        revision_id: new_revision(),
        last_modified_ms: warden_types::now_millis(),
        architectures: Vec::new(),
    };
    apply_config(state, request, &mut latest, config)?;
    let architectures = shape::validate_architectures(&input.architectures.unwrap_or_default())?;
    let code = input
        .code
        .ok_or_else(|| ApiError::invalid("Code is required"))?;
    let zip = zip_input(
        code.zip_file,
        code.s3_bucket.is_some() || code.s3_key.is_some(),
        code.image_uri.is_some(),
    )?;

    let (code_sha256, code_size, code_pin) = install_code(state, &zip).await?;
    latest.code_sha256 = code_sha256;
    latest.code_size = code_size;
    latest.architectures = architectures;
    let store = Arc::clone(&state.store);
    let record = latest.clone();
    let created = blocking(move || {
        store.create_function(&record).map_err(|e| match e {
            StoreError::AlreadyExists(_) => {
                ApiError::conflict(format!("Function already exist: {}", record.name))
            }
            other => other.into(),
        })
    })
    .await;
    drop(code_pin);
    if created.is_err() {
        // The code may now be referenced by nothing.
        state.blobs.request_sweep();
    }
    created?;
    state.engine.invalidate(&name);
    state.access.invalidate(&name);
    let shown = if input.publish.unwrap_or(false) {
        publish_inner(state, &name, None, None).await?
    } else {
        latest
    };
    Ok(json_response(
        StatusCode::CREATED,
        &shape::configuration(state, &shown),
    ))
}

async fn publish_inner(
    state: &ApiState,
    name: &FunctionName,
    description: Option<String>,
    revision: Option<String>,
) -> Result<FunctionVersion, ApiError> {
    let store = Arc::clone(&state.store);
    let n = name.clone();
    let published = blocking(move || {
        store
            .publish_version(
                &n,
                description.as_deref(),
                revision.as_deref(),
                &new_revision(),
                warden_types::now_millis(),
            )
            .map_err(ApiError::from)
    })
    .await?;
    state.engine.invalidate(name);
    Ok(published)
}

async fn load(
    state: &ApiState,
    name: &FunctionName,
    version: &str,
) -> Result<Option<FunctionVersion>, ApiError> {
    let store = Arc::clone(&state.store);
    let (n, v) = (name.clone(), version.to_owned());
    blocking(move || store.get_version(&n, &v).map_err(ApiError::from)).await
}

/// Resolves a qualified reference to the stored version it names.
async fn load_ref(state: &ApiState, r: &FunctionRef) -> Result<FunctionVersion, ApiError> {
    let version = match &r.qualifier {
        None | Some(Qualifier::Latest) => LATEST.to_owned(),
        Some(Qualifier::Version(v)) => v.to_string(),
        Some(Qualifier::Alias(a)) => {
            let store = Arc::clone(&state.store);
            let (n, a) = (r.name.clone(), a.to_string());
            let alias = blocking(move || store.get_alias(&n, &a).map_err(ApiError::from)).await?;
            alias.ok_or_else(|| not_found(state, r))?.function_version
        }
    };
    load(state, &r.name, &version)
        .await?
        .ok_or_else(|| not_found(state, r))
}

pub async fn get(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
    full: bool,
) -> Result<Reply, ApiError> {
    let r = state
        .function_ref(raw)?
        .with_qualifier(request.query("Qualifier").as_deref())?;
    let f = load_ref(state, &r).await?;
    let configuration = shape::configuration(state, &f);
    if !full {
        return Ok(json_response(StatusCode::OK, &configuration));
    }
    let mut body =
        json!({ "Configuration": configuration, "Code": { "RepositoryType": "Warden" } });
    if let Some(reserved) = state.engine.concurrency().reserved(&f.name) {
        body["Concurrency"] = json!({ "ReservedConcurrentExecutions": reserved });
    }
    Ok(json_response(StatusCode::OK, &body))
}

pub async fn list(state: &ApiState, request: &ApiRequest) -> Result<Reply, ApiError> {
    let max = shape::max_items(request.query("MaxItems"))?;
    let after = match request.query("Marker") {
        Some(m) if !m.is_empty() => Some(
            FunctionName::new(&m)
                .map_err(|_| ApiError::invalid(format!("Marker `{m}` is not valid")))?,
        ),
        _ => None,
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
    let store = Arc::clone(&state.store);
    let (page, versions) = blocking(move || {
        let page = store
            .list_functions(after.as_ref(), max + 1)
            .map_err(ApiError::from)?;
        let mut versions = Vec::new();
        if all_versions {
            for f in page.iter().take(max) {
                versions.extend(
                    store
                        .list_versions(&f.name, Some(LATEST), limits::MAX_LIST_ITEMS)
                        .map_err(ApiError::from)?,
                );
            }
        }
        Ok((page, versions))
    })
    .await?;
    let next = (page.len() > max).then(|| page[max - 1].name.to_string());
    let mut functions: Vec<Value> = Vec::new();
    for f in page.iter().take(max) {
        functions.push(shape::configuration(state, f));
        if all_versions {
            functions.extend(
                versions
                    .iter()
                    .filter(|v| v.name == f.name)
                    .map(|v| shape::configuration(state, v)),
            );
        }
    }
    let mut body = json!({ "Functions": functions });
    if let Some(n) = next {
        body["NextMarker"] = n.into();
    }
    Ok(json_response(StatusCode::OK, &body))
}

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
        Some(Qualifier::Version(v)) => Some(v.to_string()),
    };
    let store = Arc::clone(&state.store);
    let name = r.name.clone();
    let deleted = blocking(move || {
        store
            .delete_function(&name, version.as_deref())
            .map_err(ApiError::from)
    })
    .await?;
    if !deleted {
        return Err(not_found(state, &r));
    }
    state.engine.invalidate(&r.name);
    // Its code may be referenced by nothing now; instances still running it keep it
    // pinned until they are gone.
    state.blobs.request_sweep();
    if r.qualifier.is_none() {
        state.engine.concurrency().set_reserved(&r.name, None);
        // The store deleted the resource policy with the function; a function created
        // later under this name must not inherit the cached one.
        state.access.invalidate(&r.name);
    }
    Ok(empty_response(StatusCode::NO_CONTENT))
}

async fn latest(state: &ApiState, name: &FunctionName) -> Result<FunctionVersion, ApiError> {
    let r = FunctionRef {
        name: name.clone(),
        qualifier: None,
    };
    load(state, name, LATEST)
        .await?
        .ok_or_else(|| not_found(state, &r))
}

async fn save_latest(
    state: &ApiState,
    updated: FunctionVersion,
    revision: Option<String>,
) -> Result<(), ApiError> {
    let store = Arc::clone(&state.store);
    let name = updated.name.clone();
    blocking(move || {
        store
            .update_latest(&updated, revision.as_deref())
            .map_err(ApiError::from)
    })
    .await?;
    state.engine.invalidate(&name);
    Ok(())
}

/// `UpdateFunctionCode`: callers need `lambda:UpdateFunctionCode` on the function. Replaces
/// `$LATEST`'s code (and with `Publish`, publishes it); the previous code is collected
/// once nothing references or runs it. With `DryRun` the zip is validated exactly as for
/// a real update but nothing is stored, not even the blob.
pub async fn update_code(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let input: UpdateCodeInput = parse_body(&request.body)?;
    let zip = zip_input(
        input.zip_file,
        input.s3_bucket.is_some(),
        input.image_uri.is_some(),
    )?;
    let mut f = latest(state, &name).await?;
    if let Some(expected) = &input.revision_id {
        if *expected != f.revision_id {
            return Err(ApiError::precondition());
        }
    }
    if let Some(a) = input.architectures {
        f.architectures = shape::validate_architectures(&a)?;
    }
    if input.dry_run.unwrap_or(false) {
        // Validated like a real update, but nothing is stored.
        let (sha, size) = validate_code(state, &zip).await?;
        f.code_sha256 = sha;
        f.code_size = size;
        return Ok(json_response(
            StatusCode::OK,
            &shape::configuration(state, &f),
        ));
    }
    let (sha, size, code_pin) = install_code(state, &zip).await?;
    let previous_revision = f.revision_id.clone();
    f.code_sha256 = sha;
    f.code_size = size;
    f.revision_id = new_revision();
    f.last_modified_ms = warden_types::now_millis();
    let saved = save_latest(state, f.clone(), Some(previous_revision)).await;
    drop(code_pin);
    // Either the previous code or (if the update failed) the new one may be unreferenced.
    state.blobs.request_sweep();
    saved?;
    let shown = if input.publish.unwrap_or(false) {
        publish_inner(state, &name, None, None).await?
    } else {
        f
    };
    Ok(json_response(
        StatusCode::OK,
        &shape::configuration(state, &shown),
    ))
}

pub async fn update_configuration(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let input: UpdateConfigurationInput = parse_body(&request.body)?;
    let mut f = latest(state, &name).await?;
    if let Some(expected) = &input.revision_id {
        if *expected != f.revision_id {
            return Err(ApiError::precondition());
        }
    }
    apply_config(state, request, &mut f, input.config)?;
    let previous_revision = f.revision_id.clone();
    f.revision_id = new_revision();
    f.last_modified_ms = warden_types::now_millis();
    save_latest(state, f.clone(), Some(previous_revision)).await?;
    Ok(json_response(
        StatusCode::OK,
        &shape::configuration(state, &f),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishInput {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

pub async fn publish(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let input: PublishInput = parse_body(&request.body)?;
    if let Some(d) = &input.description {
        shape::validate_description(d)?;
    }
    let f = latest(state, &name).await?;
    if let Some(sha) = &input.code_sha256 {
        if *sha != f.code_sha256 {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailedException",
                format!("CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.", f.code_sha256),
            ));
        }
    }
    let published = publish_inner(state, &name, input.description, input.revision_id).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &shape::configuration(state, &published),
    ))
}

pub async fn list_versions(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    let max = shape::max_items(request.query("MaxItems"))?;
    let marker = request.query("Marker").filter(|m| !m.is_empty());
    latest(state, &name).await?;
    let store = Arc::clone(&state.store);
    let n = name.clone();
    let page = blocking(move || {
        store
            .list_versions(&n, marker.as_deref(), max + 1)
            .map_err(ApiError::from)
    })
    .await?;
    let next = (page.len() > max).then(|| page[max - 1].version.clone());
    let versions: Vec<Value> = page
        .iter()
        .take(max)
        .map(|v| shape::configuration(state, v))
        .collect();
    let mut body = json!({ "Versions": versions });
    if let Some(n) = next {
        body["NextMarker"] = n.into();
    }
    Ok(json_response(StatusCode::OK, &body))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConcurrencyInput {
    reserved_concurrent_executions: Option<i64>,
}

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
    latest(state, &name).await?;
    let c = state.engine.concurrency();
    let current = c.reserved(&name).unwrap_or(0);
    let unreserved_after = i64::from(c.unreserved()) + i64::from(current) - i64::from(requested);
    let minimum = i64::from(limits::UNRESERVED_CONCURRENCY_MINIMUM.min(c.account_limit() / 10));
    if unreserved_after < minimum {
        return Err(ApiError::invalid(format!(
            "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{minimum}]."
        )));
    }
    let store = Arc::clone(&state.store);
    let n = name.clone();
    blocking(move || {
        store
            .put_reserved_concurrency(&n, Some(requested))
            .map_err(ApiError::from)
    })
    .await?;
    c.set_reserved(&name, Some(requested));
    Ok(json_response(
        StatusCode::OK,
        &json!({ "ReservedConcurrentExecutions": requested }),
    ))
}

pub async fn get_concurrency(state: &ApiState, raw: &str) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    latest(state, &name).await?;
    let body = match state.engine.concurrency().reserved(&name) {
        Some(r) => json!({ "ReservedConcurrentExecutions": r }),
        None => json!({}),
    };
    Ok(json_response(StatusCode::OK, &body))
}

pub async fn delete_concurrency(state: &ApiState, raw: &str) -> Result<Reply, ApiError> {
    let name = unqualified(state, raw)?;
    latest(state, &name).await?;
    let store = Arc::clone(&state.store);
    let n = name.clone();
    blocking(move || {
        store
            .put_reserved_concurrency(&n, None)
            .map_err(ApiError::from)
    })
    .await?;
    state.engine.concurrency().set_reserved(&name, None);
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub async fn account_settings(state: &ApiState) -> Result<Reply, ApiError> {
    let store = Arc::clone(&state.store);
    let functions = blocking(move || {
        store
            .list_functions(None, usize::MAX >> 1)
            .map_err(ApiError::from)
    })
    .await?;
    let total: u64 = functions.iter().map(|f| f.code_size).sum();
    let c = state.engine.concurrency();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "AccountLimit": {
                "TotalCodeSize": 80_530_636_800u64,
                "CodeSizeUnzipped": limits::UNZIPPED_BYTES,
                "CodeSizeZipped": limits::ZIP_BYTES,
                "ConcurrentExecutions": c.account_limit(),
                "UnreservedConcurrentExecutions": c.unreserved(),
            },
            "AccountUsage": { "TotalCodeSize": total, "FunctionCount": functions.len() },
        }),
    ))
}

/// Warden's log endpoint: a page of one function's log lines after `after` (seq), up to
/// `limit`, waiting up to `wait` seconds for new ones. Callers need `logs:GetLogEvents` on
/// the function's log group; it changes nothing. Each record says whether Warden
/// (`"source": "platform"`) or the function (`"function"`) wrote it, and carries the
/// message exactly as stored: clients must escape it before showing it on a terminal.
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
    let deadline = tokio::time::Instant::now() + wait;
    let written = state.engine.logs_written();
    loop {
        // Subscribe before reading so a batch landing in between is not missed.
        let notified = written.notified();
        let store = Arc::clone(&state.store);
        let n = name.clone();
        let records =
            blocking(move || store.read_logs(&n, after, limit).map_err(ApiError::from)).await?;
        if !records.is_empty() || tokio::time::Instant::now() >= deadline {
            let next = records.last().map(|r| r.seq).unwrap_or(after);
            let records: Vec<Value> = records
                .iter()
                .map(|r| json!({ "seq": r.seq, "timestampMs": r.timestamp_ms, "requestId": r.request_id, "source": r.source.as_str(), "message": r.message }))
                .collect();
            return Ok(json_response(
                StatusCode::OK,
                &json!({ "records": records, "nextSeq": next }),
            ));
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

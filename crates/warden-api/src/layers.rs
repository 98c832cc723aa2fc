//! Layer operations: each reads its input shape, builds the control plane's command and
//! renders Lambda's output shape. Who may call each is decided before it runs
//! (`access::lambda_targets`): `lambda:PublishLayerVersion` on the layer,
//! `lambda:GetLayerVersion` (which a version's own permission policy may also grant),
//! `lambda:DeleteLayerVersion`, `lambda:AddLayerVersionPermission`,
//! `lambda:RemoveLayerVersionPermission` and `lambda:GetLayerVersionPolicy` on the version,
//! and `lambda:ListLayers` / `lambda:ListLayerVersions` on `*`.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use warden_control::layers::{AddLayerPermission, PublishLayerVersion};
use warden_types::layer::{LayerName, LayerVersion, LayerVersionArn};
use warden_types::{Description, StatementId};

use crate::functions::decode_zip;
use crate::shape::refuse;
use crate::{empty_response, json_response, parse_body, ApiError, ApiRequest, ApiState, Reply};

/// Most items per page, and the default, as Lambda's.
const MAX_ITEMS: usize = 50;

/// `PublishLayerVersionRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PublishInput {
    description: Option<String>,
    content: Option<ContentInput>,
    compatible_runtimes: Option<Vec<String>>,
    license_info: Option<String>,
    compatible_architectures: Option<Vec<String>>,
}

/// `LayerVersionContentInput`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ContentInput {
    s3_bucket: Option<String>,
    s3_key: Option<String>,
    s3_object_version: Option<String>,
    zip_file: Option<String>,
}

/// `AddLayerVersionPermissionRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AddPermissionInput {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    organization_id: Option<String>,
    revision_id: Option<String>,
}

fn layer_name(raw: &str) -> Result<LayerName, ApiError> {
    LayerName::new(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

fn version_number(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::invalid(format!(
            "1 validation error detected: Value '{raw}' at 'versionNumber' failed to satisfy constraint: Member must be a positive integer"
        ))
    })
}

fn max_items(request: &ApiRequest) -> Result<usize, ApiError> {
    match request.query("MaxItems") {
        None => Ok(MAX_ITEMS),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_ITEMS).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and {MAX_ITEMS}"
                ))
            }),
    }
}

/// Lambda's timestamp of a layer version (`2018-11-27T15:10:45.123+0000`).
fn created_date(ms: i64) -> String {
    warden_types::lambda_timestamp(ms)
}

/// `GetLayerVersionResponse` (and `PublishLayerVersionResponse`).
fn version_shape(state: &ApiState, v: &LayerVersion) -> Value {
    let mut out = json!({
        "Content": { "CodeSha256": v.code_sha256, "CodeSize": v.code_size },
        "LayerArn": state.control.layer_arn(&v.name),
        "LayerVersionArn": state.control.layer_version_arn(&v.name, v.version),
        "Description": v.description,
        "CreatedDate": created_date(v.created_ms),
        "Version": v.version,
        "CompatibleRuntimes": v.compatible_runtimes,
        "CompatibleArchitectures": v.compatible_architectures,
    });
    if let Some(license) = &v.license_info {
        out["LicenseInfo"] = json!(license);
    }
    out
}

/// `LayerVersionsListItem`.
fn list_item(state: &ApiState, v: &LayerVersion) -> Value {
    let mut out = json!({
        "LayerVersionArn": state.control.layer_version_arn(&v.name, v.version),
        "Version": v.version,
        "Description": v.description,
        "CreatedDate": created_date(v.created_ms),
        "CompatibleRuntimes": v.compatible_runtimes,
        "CompatibleArchitectures": v.compatible_architectures,
    });
    if let Some(license) = &v.license_info {
        out["LicenseInfo"] = json!(license);
    }
    out
}

/// `PublishLayerVersion`: stores the zip (same intake as function code) as the layer's
/// next version. 201 with the version.
pub async fn publish(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let name = layer_name(raw)?;
    let input: PublishInput = parse_body(&request.body)?;
    let content = input
        .content
        .ok_or_else(|| ApiError::invalid("Content is required"))?;
    let s3 = "S3 content locations are not supported; send Content.ZipFile";
    refuse("Content.S3Bucket", &content.s3_bucket, s3)?;
    refuse("Content.S3Key", &content.s3_key, s3)?;
    refuse("Content.S3ObjectVersion", &content.s3_object_version, s3)?;
    let zip = decode_zip(
        &content
            .zip_file
            .ok_or_else(|| ApiError::invalid("Content.ZipFile is required"))?,
    )?;
    let published = state
        .control
        .publish_layer_version(PublishLayerVersion {
            name,
            description: Description::new(input.description.as_deref().unwrap_or_default())?,
            compatible_runtimes: input.compatible_runtimes.unwrap_or_default(),
            compatible_architectures: input.compatible_architectures.unwrap_or_default(),
            license_info: input.license_info,
            code: zip,
        })
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &version_shape(state, &published),
    ))
}

/// `GetLayerVersion`.
pub async fn get(state: &ApiState, raw_name: &str, raw_version: &str) -> Result<Reply, ApiError> {
    let name = layer_name(raw_name)?;
    let version = version_number(raw_version)?;
    let v = state.control.get_layer_version(&name, version).await?;
    Ok(json_response(StatusCode::OK, &version_shape(state, &v)))
}

/// `DeleteLayerVersion`: 204, whether or not the version existed, as on Lambda.
pub async fn delete(
    state: &ApiState,
    raw_name: &str,
    raw_version: &str,
) -> Result<Reply, ApiError> {
    let name = layer_name(raw_name)?;
    let version = version_number(raw_version)?;
    state.control.delete_layer_version(&name, version).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `ListLayerVersions`, newest first; `Marker` is the `NextMarker` of the previous page.
pub async fn list_versions(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = layer_name(raw)?;
    let marker = match request.query("Marker") {
        Some(m) => Some(
            m.parse::<u64>()
                .map_err(|_| ApiError::invalid("Marker is not one this API returned"))?,
        ),
        None => None,
    };
    let (versions, next) = state
        .control
        .list_layer_versions(
            &name,
            request.query("CompatibleRuntime"),
            request.query("CompatibleArchitecture"),
            marker,
            max_items(request)?,
        )
        .await?;
    let mut out = json!({
        "LayerVersions": versions.iter().map(|v| list_item(state, v)).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        out["NextMarker"] = json!(next.to_string());
    }
    Ok(json_response(StatusCode::OK, &out))
}

/// `ListLayers` (each layer with its newest matching version), or `GetLayerVersionByArn`
/// (`?find=LayerVersion&Arn=...`), which shares its path.
pub async fn list_or_find(state: &ApiState, request: &ApiRequest) -> Result<Reply, ApiError> {
    if let Some(find) = request.query("find") {
        if find != "LayerVersion" {
            return Err(ApiError::invalid(format!(
                "find=`{find}` is not one Lambda serves"
            )));
        }
        let arn = request
            .query("Arn")
            .ok_or_else(|| ApiError::invalid("Arn is required"))?;
        let parsed = LayerVersionArn::parse(&arn).map_err(|e| ApiError::invalid(e.to_string()))?;
        if parsed.account != state.account.as_str() || parsed.region != state.region.as_str() {
            return Err(ApiError::not_found(format!(
                "Layer version {arn} does not exist."
            )));
        }
        let v = state
            .control
            .get_layer_version(&parsed.name, parsed.version)
            .await?;
        return Ok(json_response(StatusCode::OK, &version_shape(state, &v)));
    }
    let marker = request
        .query("Marker")
        .map(|m| layer_name(&m))
        .transpose()?;
    let (layers, next) = state
        .control
        .list_layers(
            request.query("CompatibleRuntime"),
            request.query("CompatibleArchitecture"),
            marker,
            max_items(request)?,
        )
        .await?;
    let items: Vec<Value> = layers
        .iter()
        .map(|v| {
            json!({
                "LayerName": v.name.as_str(),
                "LayerArn": state.control.layer_arn(&v.name),
                "LatestMatchingVersion": list_item(state, v),
            })
        })
        .collect();
    let mut out = json!({ "Layers": items });
    if let Some(next) = next {
        out["NextMarker"] = json!(next.as_str());
    }
    Ok(json_response(StatusCode::OK, &out))
}

/// `AddLayerVersionPermission`: 201 with the statement (as a JSON string) and the policy's
/// revision.
pub async fn add_permission(
    state: &ApiState,
    request: &ApiRequest,
    raw_name: &str,
    raw_version: &str,
) -> Result<Reply, ApiError> {
    let name = layer_name(raw_name)?;
    let version = version_number(raw_version)?;
    let input: AddPermissionInput = parse_body(&request.body)?;
    refuse(
        "OrganizationId",
        &input.organization_id,
        "there are no AWS Organizations",
    )?;
    let statement_id = StatementId::new(
        &input
            .statement_id
            .ok_or_else(|| ApiError::invalid("StatementId is required"))?,
    )?;
    let (statement, revision) = state
        .control
        .add_layer_permission(AddLayerPermission {
            name,
            version,
            statement_id,
            action: input
                .action
                .ok_or_else(|| ApiError::invalid("Action is required"))?,
            principal: input
                .principal
                .ok_or_else(|| ApiError::invalid("Principal is required"))?,
            revision_id: input.revision_id.or_else(|| request.query("RevisionId")),
        })
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "Statement": statement.to_string(), "RevisionId": revision }),
    ))
}

/// `GetLayerVersionPolicy`.
pub async fn get_policy(
    state: &ApiState,
    raw_name: &str,
    raw_version: &str,
) -> Result<Reply, ApiError> {
    let name = layer_name(raw_name)?;
    let version = version_number(raw_version)?;
    let policy = state.control.get_layer_policy(&name, version).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "Policy": policy.document, "RevisionId": policy.revision_id }),
    ))
}

/// `RemoveLayerVersionPermission`: 204.
pub async fn remove_permission(
    state: &ApiState,
    request: &ApiRequest,
    raw_name: &str,
    raw_version: &str,
    statement_id: &str,
) -> Result<Reply, ApiError> {
    let name = layer_name(raw_name)?;
    let version = version_number(raw_version)?;
    state
        .control
        .remove_layer_permission(&name, version, statement_id, request.query("RevisionId"))
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

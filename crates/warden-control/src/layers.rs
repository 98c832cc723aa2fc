//! Layers: publish, read, list and delete layer versions, their permissions, and the
//! layers a function uses. Each doc comment says who may call it (the IAM action the API
//! authorizes first) and what it changes.
//!
//! A function records each layer version it uses with the version's code digest, and the
//! key of the merged tree shown at `/opt`, so nothing derived from layers is cached and a
//! deleted layer version keeps working for the functions that use it.

use warden_store::blobs::{BlobPin, BlobStore};
use warden_types::layer::{
    layer_arn, FunctionLayer, LayerName, LayerVersion, LayerVersionArn, MAX_COMPATIBLE_RUNTIMES,
    MAX_LAYERS_PER_FUNCTION, MAX_LICENSE_INFO, MAX_UNZIPPED_WITH_LAYERS,
};
use warden_types::{Description, Runtime};

use crate::commands::ZipPackage;
use crate::{Control, ControlError};

/// Largest permission policy of a layer version, as Lambda limits resource policies.
pub const MAX_LAYER_POLICY_BYTES: usize = 20 * 1024;

/// `PublishLayerVersion`.
#[derive(Debug, Clone)]
pub struct PublishLayerVersion {
    /// The layer.
    pub name: LayerName,
    /// The version's description.
    pub description: Description,
    /// Runtimes it declares itself compatible with.
    pub compatible_runtimes: Vec<String>,
    /// Architectures it declares itself compatible with.
    pub compatible_architectures: Vec<String>,
    /// Its license.
    pub license_info: Option<String>,
    /// Its code.
    pub code: ZipPackage,
}

/// `AddLayerVersionPermission`.
#[derive(Debug, Clone)]
pub struct AddLayerPermission {
    /// The layer.
    pub name: LayerName,
    /// The version.
    pub version: u64,
    /// The statement's id.
    pub statement_id: warden_types::StatementId,
    /// The action: only `lambda:GetLayerVersion` may be granted.
    pub action: String,
    /// An account id or `*`.
    pub principal: String,
    /// The policy's revision the caller expects, if any.
    pub revision_id: Option<String>,
}

/// A layer version's policy as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPolicy {
    /// The policy document (JSON).
    pub document: String,
    /// Its revision: changes with every change of the document.
    pub revision_id: String,
}

/// The layers of a function, resolved and merged, with the pins that keep their blobs
/// until the function's record that references them is committed.
pub(crate) struct ResolvedLayers {
    pub layers: Vec<FunctionLayer>,
    pub opt_sha256: Option<String>,
    pub _pins: Vec<BlobPin>,
}

fn runtime_names() -> impl Iterator<Item = &'static str> {
    Runtime::SUPPORTED
        .iter()
        .chain(Runtime::DEPRECATED)
        .chain(Runtime::NOT_SERVED)
        .copied()
}

impl Control {
    /// The ARN of one version of a layer.
    pub fn layer_version_arn(&self, name: &LayerName, version: u64) -> String {
        format!("{}:{version}", self.layer_arn(name))
    }

    /// The ARN of a layer.
    pub fn layer_arn(&self, name: &LayerName) -> String {
        layer_arn(
            self.inner.config.region.as_str(),
            self.inner.config.account.as_str(),
            name,
        )
    }

    fn layer_not_found(&self, name: &LayerName, version: u64) -> ControlError {
        ControlError::NotFound(format!(
            "Layer version {} does not exist.",
            self.layer_version_arn(name, version)
        ))
    }

    /// `PublishLayerVersion`. Callers: the API, once the caller is allowed
    /// `lambda:PublishLayerVersion` on the layer. The zip passes the same intake as
    /// function code (limits, checks); the new version gets the next number.
    pub async fn publish_layer_version(
        &self,
        command: PublishLayerVersion,
    ) -> Result<LayerVersion, ControlError> {
        if command.compatible_runtimes.len() > MAX_COMPATIBLE_RUNTIMES {
            return Err(ControlError::Invalid(format!(
                "CompatibleRuntimes may list at most {MAX_COMPATIBLE_RUNTIMES} runtimes"
            )));
        }
        for r in &command.compatible_runtimes {
            if !runtime_names().any(|n| n == r) {
                return Err(ControlError::Invalid(format!(
                    "Value {r} at 'compatibleRuntimes' failed to satisfy constraint: Member must satisfy enum value set"
                )));
            }
        }
        if command.compatible_architectures.len() > 2
            || command
                .compatible_architectures
                .iter()
                .any(|a| a != "x86_64" && a != "arm64")
        {
            return Err(ControlError::Invalid(
                "CompatibleArchitectures may list x86_64 and arm64, each at most once".into(),
            ));
        }
        if command
            .license_info
            .as_ref()
            .is_some_and(|l| l.chars().count() > MAX_LICENSE_INFO)
        {
            return Err(ControlError::Invalid(format!(
                "LicenseInfo must be at most {MAX_LICENSE_INFO} characters"
            )));
        }
        let installed = self
            .intake("PublishLayerVersion", command.code, None, false)
            .await?;
        let draft = LayerVersion {
            name: command.name,
            version: 0,
            description: command.description.into_string(),
            compatible_runtimes: command.compatible_runtimes,
            compatible_architectures: command.compatible_architectures,
            license_info: command.license_info,
            code_sha256: installed.sha256.clone(),
            code_size: installed.size,
            created_ms: warden_types::now_millis(),
        };
        let published = self
            .blocking(move |inner| Ok(inner.store.publish_layer_version(&draft)?))
            .await;
        drop(installed.pin);
        if published.is_err() {
            self.inner.blobs.request_sweep();
        }
        published
    }

    /// `GetLayerVersion` and `GetLayerVersionByArn`. Callers: the API, once the caller is
    /// allowed `lambda:GetLayerVersion` on the version (by its policies, or the version's
    /// own permission policy).
    pub async fn get_layer_version(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<LayerVersion, ControlError> {
        let n = name.clone();
        self.blocking(move |inner| Ok(inner.store.get_layer_version(&n, version)?))
            .await?
            .ok_or_else(|| self.layer_not_found(name, version))
    }

    /// `ListLayerVersions`: newest first, `max` per page, from the `marker` a previous page
    /// returned. With `runtime` or `architecture`, only versions declaring them. Callers:
    /// the API, once the caller is allowed `lambda:ListLayerVersions`.
    pub async fn list_layer_versions(
        &self,
        name: &LayerName,
        runtime: Option<String>,
        architecture: Option<String>,
        marker: Option<u64>,
        max: usize,
    ) -> Result<(Vec<LayerVersion>, Option<u64>), ControlError> {
        let n = name.clone();
        self.blocking(move |inner| {
            // One more than a page: whether there is a next page.
            let mut page = matching_versions(
                inner.store.as_ref(),
                &n,
                marker,
                max + 1,
                runtime.as_deref(),
                architecture.as_deref(),
            )?;
            let next = (page.len() > max).then(|| {
                page.truncate(max);
                page.last().map(|v| v.version)
            });
            Ok((page, next.flatten()))
        })
        .await
    }

    /// `ListLayers`: each layer with its newest version (the newest declaring `runtime`
    /// and `architecture`, when given), by name, `max` per page after `marker`. Callers:
    /// the API, once the caller is allowed `lambda:ListLayers`.
    pub async fn list_layers(
        &self,
        runtime: Option<String>,
        architecture: Option<String>,
        marker: Option<LayerName>,
        max: usize,
    ) -> Result<(Vec<LayerVersion>, Option<LayerName>), ControlError> {
        self.blocking(move |inner| {
            let mut out = Vec::new();
            let mut after = marker;
            loop {
                let newest = inner.store.list_layers(after.as_ref(), 100)?;
                let Some(last) = newest.last() else {
                    return Ok((out, None));
                };
                after = Some(last.name.clone());
                for latest in newest {
                    let chosen =
                        if matches_filters(&latest, runtime.as_deref(), architecture.as_deref()) {
                            Some(latest)
                        } else {
                            matching_versions(
                                inner.store.as_ref(),
                                &latest.name,
                                Some(latest.version),
                                1,
                                runtime.as_deref(),
                                architecture.as_deref(),
                            )?
                            .pop()
                        };
                    if let Some(v) = chosen {
                        if out.len() == max {
                            let marker = out.last().map(|v: &LayerVersion| v.name.clone());
                            return Ok((out, marker));
                        }
                        out.push(v);
                    }
                }
            }
        })
        .await
    }

    /// `DeleteLayerVersion`: the version leaves listings and cannot be added to functions;
    /// functions that use it keep it. Deleting a version that does not exist succeeds, as
    /// on Lambda. Callers: the API, once the caller is allowed `lambda:DeleteLayerVersion`.
    pub async fn delete_layer_version(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<(), ControlError> {
        let n = name.clone();
        let deleted = self
            .blocking(move |inner| Ok(inner.store.delete_layer_version(&n, version)?))
            .await?;
        if deleted {
            self.inner.blobs.request_sweep();
        }
        Ok(())
    }

    /// `GetLayerVersionPolicy`. Callers: the API, once the caller is allowed
    /// `lambda:GetLayerVersionPolicy`.
    pub async fn get_layer_policy(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<LayerPolicy, ControlError> {
        self.get_layer_version(name, version).await?;
        let n = name.clone();
        let document = self
            .blocking(move |inner| Ok(inner.store.get_layer_policy(&n, version)?))
            .await?
            .ok_or_else(|| {
                ControlError::NotFound("No policy is associated with the given resource.".into())
            })?;
        Ok(LayerPolicy {
            revision_id: policy_revision(&document),
            document,
        })
    }

    /// A layer version's parsed policy, for authorization (`None` without one).
    pub async fn layer_policy_document(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<Option<String>, ControlError> {
        let n = name.clone();
        self.blocking(move |inner| Ok(inner.store.get_layer_policy(&n, version)?))
            .await
    }

    /// `AddLayerVersionPermission`: grants `lambda:GetLayerVersion` on the version to an
    /// account or to everyone. Returns the statement and the policy's new revision.
    /// Callers: the API, once the caller is allowed `lambda:AddLayerVersionPermission`.
    pub async fn add_layer_permission(
        &self,
        command: AddLayerPermission,
    ) -> Result<(serde_json::Value, String), ControlError> {
        if command.action != "lambda:GetLayerVersion" {
            return Err(ControlError::Invalid(format!(
                "Action `{}` cannot be granted on a layer version: only lambda:GetLayerVersion can",
                command.action
            )));
        }
        let principal = match command.principal.as_str() {
            "*" => serde_json::json!("*"),
            p if p.len() == 12 && p.chars().all(|c| c.is_ascii_digit()) => {
                serde_json::json!({ "AWS": format!("arn:aws:iam::{p}:root") })
            }
            p => {
                return Err(ControlError::Invalid(format!(
                    "Principal `{p}` must be a 12-digit account id or *"
                )))
            }
        };
        let layer = self
            .get_layer_version(&command.name, command.version)
            .await?;
        let arn = self.layer_version_arn(&layer.name, layer.version);
        let statement = serde_json::json!({
            "Sid": command.statement_id.as_str(),
            "Effect": "Allow",
            "Principal": principal,
            "Action": command.action,
            "Resource": arn,
        });
        let name = command.name.clone();
        let version = command.version;
        let sid = command.statement_id.as_str().to_owned();
        let expected = command.revision_id.clone();
        let added = statement.clone();
        let document = self
            .blocking(move |inner| {
                let current = inner.store.get_layer_policy(&name, version)?;
                check_policy_revision(expected.as_deref(), current.as_deref())?;
                let mut policy: serde_json::Value = match &current {
                    Some(doc) => serde_json::from_str(doc)
                        .map_err(|e| ControlError::Internal(format!("a stored layer policy is not JSON: {e}")))?,
                    None => serde_json::json!({"Version": "2012-10-17", "Id": "default", "Statement": []}),
                };
                let statements = policy["Statement"]
                    .as_array_mut()
                    .ok_or_else(|| ControlError::Internal("a stored layer policy has no statements".into()))?;
                if statements.iter().any(|s| s["Sid"] == sid.as_str()) {
                    return Err(ControlError::Conflict(format!(
                        "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
                    )));
                }
                statements.push(added);
                let document = policy.to_string();
                if document.len() > MAX_LAYER_POLICY_BYTES {
                    return Err(ControlError::Invalid(format!(
                        "The final policy size ({} bytes) is bigger than the limit ({MAX_LAYER_POLICY_BYTES} bytes).",
                        document.len()
                    )));
                }
                inner.store.put_layer_policy(&name, version, Some(&document))?;
                Ok(document)
            })
            .await?;
        Ok((statement, policy_revision(&document)))
    }

    /// `RemoveLayerVersionPermission`. Callers: the API, once the caller is allowed
    /// `lambda:RemoveLayerVersionPermission`.
    pub async fn remove_layer_permission(
        &self,
        name: &LayerName,
        version: u64,
        statement_id: &str,
        revision_id: Option<String>,
    ) -> Result<(), ControlError> {
        self.get_layer_version(name, version).await?;
        let n = name.clone();
        let sid = statement_id.to_owned();
        self.blocking(move |inner| {
            let current = inner.store.get_layer_policy(&n, version)?;
            check_policy_revision(revision_id.as_deref(), current.as_deref())?;
            let not_found = || {
                ControlError::NotFound(format!("Statement {sid} is not found in resource policy."))
            };
            let mut policy: serde_json::Value = match &current {
                Some(doc) => serde_json::from_str(doc).map_err(|e| {
                    ControlError::Internal(format!("a stored layer policy is not JSON: {e}"))
                })?,
                None => return Err(not_found()),
            };
            let statements = policy["Statement"].as_array_mut().ok_or_else(not_found)?;
            let before = statements.len();
            statements.retain(|s| s["Sid"] != sid.as_str());
            if statements.len() == before {
                return Err(not_found());
            }
            let document = (!statements.is_empty()).then(|| policy.to_string());
            inner
                .store
                .put_layer_policy(&n, version, document.as_deref())?;
            Ok(())
        })
        .await
    }

    /// Resolves the layer version ARNs a function names, checks Lambda's rules (at most
    /// five, one version per layer, this account and region, versions that exist, code and
    /// layers together within the unzipped limit) and merges their trees for `/opt`.
    /// `code_sha256` is the function's own code. No layers: nothing to merge.
    pub(crate) async fn resolve_layers(
        &self,
        arns: Vec<String>,
        code_sha256: String,
    ) -> Result<ResolvedLayers, ControlError> {
        if arns.len() > MAX_LAYERS_PER_FUNCTION {
            return Err(ControlError::Invalid(format!(
                "Cannot reference more than {MAX_LAYERS_PER_FUNCTION} layers."
            )));
        }
        let mut parsed = Vec::new();
        for arn in &arns {
            let a = LayerVersionArn::parse(arn)?;
            if a.account != self.inner.config.account.as_str()
                || a.region != self.inner.config.region.as_str()
            {
                return Err(ControlError::Invalid(format!(
                    "Layer version {arn} belongs to another account or region; Warden serves only its own layers"
                )));
            }
            if parsed.iter().any(|p: &LayerVersionArn| p.name == a.name) {
                return Err(ControlError::Invalid(
                    "Two different versions of the same layer are not allowed to be referenced in the same function.".into(),
                ));
            }
            parsed.push(a);
        }
        if parsed.is_empty() {
            return Ok(ResolvedLayers {
                layers: Vec::new(),
                opt_sha256: None,
                _pins: Vec::new(),
            });
        }
        let mut layers = Vec::new();
        for a in &parsed {
            // A version that does not exist is the caller's mistake; any other failure is
            // reported as it is.
            let v = match self.get_layer_version(&a.name, a.version).await {
                Err(ControlError::NotFound(message)) => return Err(ControlError::Invalid(message)),
                other => other?,
            };
            layers.push(FunctionLayer {
                arn: self.layer_version_arn(&v.name, v.version),
                code_sha256: v.code_sha256,
                code_size: v.code_size,
            });
        }
        let shas: Vec<String> = layers.iter().map(|l| l.code_sha256.clone()).collect();
        let (key, pins) = self
            .blocking(move |inner| {
                let blobs: &BlobStore = &inner.blobs;
                let mut pins: Vec<BlobPin> = shas.iter().map(|s| blobs.pin(s)).collect();
                pins.push(blobs.pin(&BlobStore::layers_key(&shas)));
                let (key, layers_size) = blobs
                    .merge_layers(&shas)
                    .map_err(|e| ControlError::Internal(e.to_string()))?;
                let code_size = blobs
                    .code_dir_size(&code_sha256)
                    .map_err(|e| ControlError::Internal(e.to_string()))?;
                let total = code_size + layers_size;
                if total > MAX_UNZIPPED_WITH_LAYERS {
                    return Err(ControlError::Invalid(format!(
                        "Function code combined with layers exceeds the maximum allowed size of {MAX_UNZIPPED_WITH_LAYERS} bytes. The actual size is {total} bytes."
                    )));
                }
                Ok((key, pins))
            })
            .await?;
        Ok(ResolvedLayers {
            layers,
            opt_sha256: Some(key),
            _pins: pins,
        })
    }
}

/// Up to `want` versions of `name` older than `before`, newest first, that declare
/// `runtime` and `architecture` when given; read from the store a page at a time, so a
/// layer with many versions is never held in memory whole.
fn matching_versions(
    store: &dyn warden_store::Store,
    name: &LayerName,
    mut before: Option<u64>,
    want: usize,
    runtime: Option<&str>,
    architecture: Option<&str>,
) -> Result<Vec<LayerVersion>, ControlError> {
    const PAGE: usize = 100;
    let mut out = Vec::new();
    loop {
        let page = store.list_layer_versions(name, before, PAGE)?;
        let full = page.len() == PAGE;
        before = page.last().map(|v| v.version);
        for v in page {
            if matches_filters(&v, runtime, architecture) {
                out.push(v);
                if out.len() == want {
                    return Ok(out);
                }
            }
        }
        if !full {
            return Ok(out);
        }
    }
}

fn matches_filters(v: &LayerVersion, runtime: Option<&str>, architecture: Option<&str>) -> bool {
    runtime.is_none_or(|r| v.compatible_runtimes.iter().any(|c| c == r))
        && architecture.is_none_or(|a| v.compatible_architectures.iter().any(|c| c == a))
}

/// A policy's revision: a digest of its document, so it changes with every change.
fn policy_revision(document: &str) -> String {
    let digest = warden_store::blobs::sha256_base64(document.as_bytes());
    digest
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect()
}

fn check_policy_revision(
    expected: Option<&str>,
    current: Option<&str>,
) -> Result<(), ControlError> {
    match (expected, current) {
        (Some(e), Some(doc)) if e != policy_revision(doc) => Err(ControlError::RevisionMismatch),
        (Some(_), None) => Err(ControlError::RevisionMismatch),
        _ => Ok(()),
    }
}

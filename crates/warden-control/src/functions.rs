//! Commands on functions and versions: create, update code, update configuration, publish,
//! delete. Each doc comment says who may call it (the IAM action the API authorizes
//! first) and what it changes.

use warden_store::blobs::BlobPin;
use warden_store::StoreError;
use warden_types::change::Change;
use warden_types::{Architecture, FunctionName, FunctionRef, FunctionVersion, Runtime, LATEST};

use crate::code::{self, Intake};
use crate::commands::{
    CreateFunction, DeleteFunction, PublishVersion, UpdateFunctionCode,
    UpdateFunctionConfiguration, ZipPackage,
};
use crate::error::check_revision;
use crate::roles::{check_role, Caller};
use crate::{new_revision, Control, ControlError, KeyringError};

/// An installed package: its sha, size, and the pin that keeps its blob from garbage
/// collection until the version referencing it is committed (or the deploy gave up; then
/// the next sweep removes it).
pub(crate) struct Installed {
    pub(crate) sha256: String,
    pub(crate) size: u64,
    pub(crate) pin: Option<BlobPin>,
}

impl Control {
    /// Runs the intake chain over `zip` and, unless `dry_run`, installs it in the blob
    /// store. A dry run writes no blob: the package is unpacked into a staging directory
    /// removed before this returns.
    pub(crate) async fn intake(
        &self,
        operation: &'static str,
        zip: ZipPackage,
        function: Option<code::Subject>,
        dry_run: bool,
    ) -> Result<Installed, ControlError> {
        self.blocking(move |inner| {
            let zip = zip.0;
            let size = zip.len() as u64;
            let sha = warden_store::blobs::sha256_base64(&zip);
            let blobs = &inner.blobs;
            // Pinned before looking, so a sweep cannot remove the blob after it was found.
            let pin = blobs.pin(&sha);
            if blobs.has_code_dir(&sha) {
                let tree = blobs.code_dir(&sha);
                let mut intake =
                    Intake::installed(operation, &zip, &sha, &tree).for_function(function.as_ref());
                code::run(&inner.seams.code_checks, &mut intake)?;
                if !dry_run {
                    // Other nodes fetch the code from the shared store, if there is one.
                    blobs
                        .share(&sha)
                        .map_err(|e| ControlError::Internal(e.to_string()))?;
                }
                return Ok(Installed {
                    pin: (!dry_run).then_some(pin),
                    sha256: sha,
                    size,
                });
            }
            let staging = blobs
                .create_staging()
                .map_err(|e| ControlError::Internal(e.to_string()))?;
            let mut intake =
                Intake::new(operation, &zip, &sha, staging.path()).for_function(function.as_ref());
            code::run(&inner.seams.code_checks, &mut intake)?;
            if dry_run {
                return Ok(Installed {
                    sha256: sha,
                    size,
                    pin: None,
                });
            }
            let installed = blobs
                .put_zip(&zip)
                .and_then(|_| blobs.install_code_dir(&sha, staging.path()));
            if let Err(e) = installed {
                // A zip may have been stored without its tree: collect it.
                blobs.request_sweep();
                return Err(ControlError::Internal(e.to_string()));
            }
            Ok(Installed {
                sha256: sha,
                size,
                pin: Some(pin),
            })
        })
        .await
    }

    /// The architecture a function may have on this host.
    fn runnable(architecture: Architecture) -> Result<Architecture, ControlError> {
        let host = Architecture::host();
        if architecture != host {
            return Err(ControlError::Invalid(format!(
                "this Warden runs on {} and cannot run {} functions",
                host.as_str(),
                architecture.as_str()
            )));
        }
        Ok(architecture)
    }

    /// `$LATEST` of a function as stored (environment sealed).
    async fn stored_latest(&self, name: &FunctionName) -> Result<FunctionVersion, ControlError> {
        let n = name.clone();
        self.blocking(move |inner| Ok(inner.store.get_version(&n, LATEST)?))
            .await?
            .ok_or_else(|| self.function_not_found(name))
    }

    /// Refuses a runtime this host has no interpreter for, saying what to install: a
    /// function that could never start is not created.
    fn servable(&self, runtime: &Runtime) -> Result<(), ControlError> {
        self.inner
            .seams
            .runtimes
            .check(runtime)
            .map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// Refuses new code whose tree and the function's merged layers (`opt_sha256`) would
    /// together pass Lambda's unzipped limit.
    async fn check_combined_size(
        &self,
        code_sha256: &str,
        opt_sha256: &str,
    ) -> Result<(), ControlError> {
        let (code, opt) = (code_sha256.to_owned(), opt_sha256.to_owned());
        self.blocking(move |inner| {
            let size = |sha: &str| {
                inner
                    .blobs
                    .code_dir_size(sha)
                    .map_err(|e| ControlError::Internal(e.to_string()))
            };
            let total = size(&code)? + size(&opt)?;
            let max = warden_types::layer::MAX_UNZIPPED_WITH_LAYERS;
            if total > max {
                return Err(ControlError::Invalid(format!(
                    "Function code combined with layers exceeds the maximum allowed size of {max} bytes. The actual size is {total} bytes."
                )));
            }
            Ok(())
        })
        .await
    }

    /// A stored version as callers see it: its environment opened by the keyring, or,
    /// when its key is disabled, pending deletion or gone, the reason in
    /// `environment_error` (Lambda's `Environment.Error`).
    pub(crate) fn opened(&self, mut f: FunctionVersion) -> Result<FunctionVersion, ControlError> {
        if let Some(sealed) = &f.sealed_environment {
            match self.inner.seams.keyring.open(f.name.as_str(), sealed) {
                Ok(vars) => f.environment = vars,
                Err(e @ (KeyringError::Unreadable(_) | KeyringError::Internal(_))) => {
                    return Err(e.into())
                }
                Err(e) => {
                    f.environment_error = Some(warden_types::function::EnvironmentError {
                        code: e.code().to_owned(),
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(f)
    }

    /// The stored form of `variables` (none when there are none), sealed under `key` or
    /// `aws/lambda`.
    fn seal_environment(
        &self,
        name: &FunctionName,
        key: Option<&str>,
        variables: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<warden_types::function::SealedEnvironment>, ControlError> {
        if variables.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.inner.seams.keyring.seal(
            name.as_str(),
            key,
            variables,
        )?))
    }

    /// `CreateFunction`. Callers: the API, once the caller is allowed
    /// `lambda:CreateFunction` on the function (and `lambda:TagResource` when it brings
    /// tags). Runs the role step (`iam:PassRole` through `caller`), the code intake, seals
    /// the environment, and creates `$LATEST` with its tags in one write; with `publish`,
    /// version 1 too. Emits `FunctionCreated`.
    pub async fn create_function(
        &self,
        command: CreateFunction,
        caller: &dyn Caller,
    ) -> Result<FunctionVersion, ControlError> {
        let CreateFunction {
            name,
            runtime,
            role,
            handler,
            description,
            timeout,
            memory,
            ephemeral_storage,
            environment,
            architecture,
            code,
            publish,
            tags,
            layers,
            logging,
            kms_key_arn,
            vpc_config,
            code_signing_config_arn,
        } = command;
        let handler = match (handler, &runtime) {
            (Some(h), _) => h,
            (None, Runtime::Provided(_)) => warden_types::Handler::bootstrap(),
            (None, Runtime::Python(r) | Runtime::Node(r)) => {
                return Err(ControlError::Invalid(format!(
                    "Handler is required for runtime {r}"
                )))
            }
        };
        self.servable(&runtime)?;
        let role = check_role(self.inner.seams.roles.as_ref(), caller, &role)?;
        let architecture = Self::runnable(architecture)?;
        if let Some(key) = &kms_key_arn {
            caller.may_use_key(key)?;
        }
        let sealed_environment =
            self.seal_environment(&name, kms_key_arn.as_deref(), environment.variables())?;
        let signing = self.signing_config(&name, code_signing_config_arn.as_deref())?;
        let code = match &signing {
            Some((cs, config)) => {
                self.check_code_signature("CreateFunction", &name, code, cs, config)
                    .await?
            }
            None => code,
        };
        crate::scan::check_policy_tag(tags.as_map())?;
        let subject = code::Subject {
            name: name.to_string(),
            tags: tags.as_map().clone(),
        };
        let installed = self
            .intake("CreateFunction", code, Some(subject.clone()), false)
            .await?;
        let resolved = self
            .resolve_layers(layers, installed.sha256.clone())
            .await?;
        self.check_layers_against_tag("CreateFunction", &subject, &resolved.layers)
            .await?;
        if let Some((cs, config)) = &signing {
            self.check_layer_signatures("CreateFunction", &name, &resolved.layers, cs, config)
                .await?;
        }
        let latest = FunctionVersion {
            name: name.clone(),
            version: LATEST.to_owned(),
            runtime: runtime.as_str().to_owned(),
            handler: handler.as_str().to_owned(),
            role,
            description: description.into_string(),
            timeout_seconds: timeout.get(),
            memory_mb: memory.get(),
            ephemeral_storage_mb: ephemeral_storage.get(),
            environment: Default::default(),
            sealed_environment,
            kms_key_arn,
            environment_error: None,
            code_sha256: installed.sha256.clone(),
            code_size: installed.size,
            revision_id: new_revision(),
            last_modified_ms: warden_types::now_millis(),
            architectures: vec![architecture.as_str().to_owned()],
            layers: resolved.layers.clone(),
            opt_sha256: resolved.opt_sha256.clone(),
            logging,
            vpc_config,
        };
        let record = latest.clone();
        let tags = tags.into_map();
        let created = self
            .blocking(
                move |inner| match inner.store.create_tagged_function(&record, &tags) {
                    Ok(()) => Ok(()),
                    Err(StoreError::AlreadyExists(_)) => Err(ControlError::Conflict(format!(
                        "Function already exist: {}",
                        record.name
                    ))),
                    Err(e) => Err(e.into()),
                },
            )
            .await;
        drop(installed.pin);
        if created.is_err() {
            // The code may now be referenced by nothing.
            self.inner.blobs.request_sweep();
        }
        created?;
        if let Some((cs, config)) = &signing {
            if let Err(e) = cs.signer.set_function_config(name.as_str(), &config.arn) {
                tracing::error!(function = %name, error = %e, "recording the function's code signing config failed");
                return Err(ControlError::Internal(e.to_string()));
            }
        }
        if !publish {
            self.emit(&name, Change::FunctionCreated { published: None }, caller);
            return self.opened(latest);
        }
        let published = self.publish_stored(&name, None, None).await;
        let change = Change::FunctionCreated {
            published: published.as_ref().ok().map(|v| v.version.clone()),
        };
        self.emit(&name, change, caller);
        self.opened(published?)
    }

    /// Copies `$LATEST` into a new version (or returns the newest one if nothing changed).
    async fn publish_stored(
        &self,
        name: &FunctionName,
        description: Option<String>,
        revision: Option<String>,
    ) -> Result<FunctionVersion, ControlError> {
        let n = name.clone();
        self.blocking(move |inner| {
            Ok(inner.store.publish_version(
                &n,
                description.as_deref(),
                revision.as_deref(),
                &new_revision(),
                warden_types::now_millis(),
            )?)
        })
        .await
    }

    /// `UpdateFunctionCode`. Callers: the API, once the caller is allowed
    /// `lambda:UpdateFunctionCode` on the function. Replaces `$LATEST`'s code (and with
    /// `publish`, publishes it); the previous code is collected once nothing references or
    /// runs it. With `dry_run` the package runs the same checks but nothing is stored, not
    /// even the blob, and no change is emitted. Emits `CodeUpdated`.
    pub async fn update_function_code(
        &self,
        command: UpdateFunctionCode,
        caller: &dyn Caller,
    ) -> Result<FunctionVersion, ControlError> {
        let UpdateFunctionCode {
            name,
            code,
            architecture,
            publish,
            dry_run,
            revision_id,
        } = command;
        let mut f = self.stored_latest(&name).await?;
        check_revision(revision_id.as_deref(), &f.revision_id)?;
        if let Some(a) = architecture {
            f.architectures = vec![Self::runnable(a)?.as_str().to_owned()];
        }
        let code = match self.signing_config(&name, None)? {
            Some((cs, config)) => {
                self.check_code_signature("UpdateFunctionCode", &name, code, &cs, &config)
                    .await?
            }
            None => code,
        };
        let subject = code::Subject {
            name: name.to_string(),
            tags: self.list_tags(&name).await?.into_map(),
        };
        self.check_layers_against_tag("UpdateFunctionCode", &subject, &f.layers)
            .await?;
        let installed = self
            .intake("UpdateFunctionCode", code, Some(subject), dry_run)
            .await?;
        if let Some(opt) = &f.opt_sha256 {
            self.check_combined_size(&installed.sha256, opt).await?;
        }
        f.code_sha256 = installed.sha256;
        f.code_size = installed.size;
        if dry_run {
            return self.opened(f);
        }
        let previous_revision = f.revision_id.clone();
        f.revision_id = new_revision();
        f.last_modified_ms = warden_types::now_millis();
        let record = f.clone();
        let saved = self
            .blocking(move |inner| {
                Ok(inner
                    .store
                    .update_latest(&record, Some(&previous_revision))?)
            })
            .await;
        drop(installed.pin);
        // Either the previous code or (if the update failed) the new one may be unreferenced.
        self.inner.blobs.request_sweep();
        saved?;
        if !publish {
            self.emit(&name, Change::CodeUpdated { published: None }, caller);
            return self.opened(f);
        }
        let published = self.publish_stored(&name, None, None).await;
        let change = Change::CodeUpdated {
            published: published.as_ref().ok().map(|v| v.version.clone()),
        };
        self.emit(&name, change, caller);
        self.opened(published?)
    }

    /// Seals the environments an older Warden stored in plain text, under each function's
    /// key (`KMSKeyArn`, or `aws/lambda`); versions with the same variables get the same
    /// sealed value, so that publishing still recognises an unchanged `$LATEST`. Callers:
    /// the server, once at start, before it serves. Returns how many versions it sealed.
    pub async fn seal_plaintext_environments(&self) -> Result<usize, ControlError> {
        self.blocking(|inner| {
            let keyring = &inner.seams.keyring;
            let mut made: std::collections::HashMap<
                String,
                warden_types::function::SealedEnvironment,
            > = std::collections::HashMap::new();
            let mut failure = None;
            let count = inner.store.seal_plaintext_environments(&mut |v| {
                let key = format!(
                    "{}\n{}\n{}",
                    v.name,
                    v.kms_key_arn.as_deref().unwrap_or(""),
                    serde_json::to_string(&v.environment).unwrap_or_default()
                );
                if let Some(s) = made.get(&key) {
                    return Ok(s.clone());
                }
                match keyring.seal(v.name.as_str(), v.kms_key_arn.as_deref(), &v.environment) {
                    Ok(s) => {
                        made.insert(key, s.clone());
                        Ok(s)
                    }
                    Err(e) => {
                        let message = e.to_string();
                        failure = Some(e);
                        Err(warden_store::StoreError::InvalidRecord(message))
                    }
                }
            });
            match (count, failure) {
                (Ok(n), _) => Ok(n),
                (Err(_), Some(e)) => Err(e.into()),
                (Err(e), None) => Err(e.into()),
            }
        })
        .await
    }

    /// Records the secret-hygiene findings of a function's environment (variable names and
    /// reasons, never values), replacing earlier ones, for posture checks to read
    /// (`finding/environment/NAME` in the store's settings). Callers: the API, after a
    /// command that set the environment succeeded.
    pub async fn record_environment_findings(
        &self,
        name: &FunctionName,
        findings: &[(String, String)],
    ) -> Result<(), ControlError> {
        let key = format!("finding/environment/{name}");
        let value = serde_json::json!(findings
            .iter()
            .map(|(variable, reason)| serde_json::json!({ "variable": variable, "reason": reason }))
            .collect::<Vec<_>>())
        .to_string();
        self.blocking(move |inner| Ok(inner.store.put_setting(&key, &value)?))
            .await
    }

    /// The recorded secret-hygiene findings of a function's environment.
    pub async fn environment_findings(
        &self,
        name: &FunctionName,
    ) -> Result<Option<String>, ControlError> {
        let key = format!("finding/environment/{name}");
        self.blocking(move |inner| Ok(inner.store.get_setting(&key)?))
            .await
    }

    /// `UpdateFunctionConfiguration`. Callers: the API, once the caller is allowed
    /// `lambda:UpdateFunctionConfiguration` on the function (a function policy can never
    /// grant it). A new role passes the role step (`iam:PassRole` through `caller`, trust
    /// in Lambda); a new environment is sealed. Replaces `$LATEST`, guarded by its
    /// revision. Emits `ConfigurationUpdated`.
    pub async fn update_function_configuration(
        &self,
        command: UpdateFunctionConfiguration,
        caller: &dyn Caller,
    ) -> Result<FunctionVersion, ControlError> {
        let UpdateFunctionConfiguration {
            name,
            change,
            revision_id,
        } = command;
        let mut f = self.stored_latest(&name).await?;
        check_revision(revision_id.as_deref(), &f.revision_id)?;
        if let Some(r) = change.runtime {
            self.servable(&r)?;
            f.runtime = r.as_str().to_owned();
        }
        if let Some(logging) = change.logging {
            f.logging = logging;
        }
        // Held until the record that references the merged layers is written.
        let mut _layer_pins = None;
        if let Some(arns) = change.layers {
            let resolved = self.resolve_layers(arns, f.code_sha256.clone()).await?;
            let subject = code::Subject {
                name: f.name.to_string(),
                tags: self.list_tags(&f.name).await?.into_map(),
            };
            self.check_layers_against_tag(
                "UpdateFunctionConfiguration",
                &subject,
                &resolved.layers,
            )
            .await?;
            if let Some((cs, config)) = self.signing_config(&f.name, None)? {
                self.check_layer_signatures(
                    "UpdateFunctionConfiguration",
                    &f.name,
                    &resolved.layers,
                    &cs,
                    &config,
                )
                .await?;
            }
            f.layers = resolved.layers.clone();
            f.opt_sha256 = resolved.opt_sha256.clone();
            _layer_pins = Some(resolved);
        }
        if let Some(role) = &change.role {
            f.role = check_role(self.inner.seams.roles.as_ref(), caller, role)?;
        }
        if let Some(h) = change.handler {
            f.handler = h.as_str().to_owned();
        }
        if let Some(d) = change.description {
            f.description = d.into_string();
        }
        if let Some(t) = change.timeout {
            f.timeout_seconds = t.get();
        }
        if let Some(m) = change.memory {
            f.memory_mb = m.get();
        }
        if let Some(s) = change.ephemeral_storage {
            f.ephemeral_storage_mb = s.get();
        }
        if let Some(key) = change.kms_key_arn.clone().flatten() {
            caller.may_use_key(&key)?;
        }
        if let Some(vpc) = change.vpc_config {
            f.vpc_config = vpc;
        }
        if change.environment.is_some() || change.kms_key_arn.is_some() {
            if let Some(key) = change.kms_key_arn {
                f.kms_key_arn = key;
            }
            // The variables to seal: the new ones, or the current ones under a new key.
            let variables = match change.environment {
                Some(env) => env.into_variables(),
                None => match &f.sealed_environment {
                    Some(sealed) => self.inner.seams.keyring.open(name.as_str(), sealed)?,
                    None => std::mem::take(&mut f.environment),
                },
            };
            f.environment.clear();
            f.sealed_environment =
                self.seal_environment(&name, f.kms_key_arn.as_deref(), &variables)?;
        }
        let previous_revision = f.revision_id.clone();
        f.revision_id = new_revision();
        f.last_modified_ms = warden_types::now_millis();
        let record = f.clone();
        self.blocking(move |inner| {
            Ok(inner
                .store
                .update_latest(&record, Some(&previous_revision))?)
        })
        .await?;
        self.emit(&name, Change::ConfigurationUpdated, caller);
        self.opened(f)
    }

    /// `PublishVersion`. Callers: the API, once the caller is allowed
    /// `lambda:PublishVersion` on the function. Copies `$LATEST` into the next version
    /// number, or returns the newest version if nothing changed since it. Emits
    /// `VersionPublished`.
    pub async fn publish_version(
        &self,
        command: PublishVersion,
        caller: &dyn Caller,
    ) -> Result<FunctionVersion, ControlError> {
        let latest = self.stored_latest(&command.name).await?;
        if let Some(sha) = command.code_sha256 {
            if sha != latest.code_sha256 {
                return Err(ControlError::CodeShaMismatch {
                    given: sha,
                    latest: latest.code_sha256,
                });
            }
        }
        let published = self
            .publish_stored(
                &command.name,
                command.description.map(|d| d.into_string()),
                command.revision_id,
            )
            .await?;
        self.emit(
            &command.name,
            Change::VersionPublished {
                version: published.version.clone(),
            },
            caller,
        );
        self.opened(published)
    }

    /// `DeleteFunction`. Callers: the API, once the caller is allowed
    /// `lambda:DeleteFunction` on the function (or version). Deletes the whole function
    /// (versions, aliases, policy, concurrency, tags, queued events; its log lines stay)
    /// or one published version (refused while an alias points at it). Code no version
    /// references any more is collected once no instance runs it. Emits `FunctionDeleted`
    /// or `VersionDeleted`.
    pub async fn delete_function(
        &self,
        command: DeleteFunction,
        caller: &dyn Caller,
    ) -> Result<(), ControlError> {
        let DeleteFunction { name, version } = command;
        let n = name.clone();
        let v = version.map(|v| v.to_string());
        let deleted = self
            .blocking(move |inner| Ok(inner.store.delete_function(&n, v.as_deref())?))
            .await?;
        if !deleted {
            return Err(self.not_found(&FunctionRef {
                name,
                qualifier: version.map(warden_types::Qualifier::Version),
            }));
        }
        // Its code may be referenced by nothing now; instances still running it keep it
        // pinned until they are gone.
        self.inner.blobs.request_sweep();
        if version.is_none() {
            if let Some(cs) = &self.inner.seams.code_signing {
                // A function of the same name created later starts without a config.
                if let Err(e) = cs.signer.clear_function_config(name.as_str()) {
                    tracing::error!(function = %name, error = %e, "forgetting the deleted function's code signing config failed");
                }
            }
        }
        let change = match version {
            None => Change::FunctionDeleted,
            Some(v) => Change::VersionDeleted {
                version: v.to_string(),
            },
        };
        self.emit(&name, change, caller);
        Ok(())
    }
}

impl Control {
    /// The code signing in force for a deploy of `name` and the config it checks against
    /// (`named` at creation, the function's own after), if any.
    pub(crate) fn signing_config(
        &self,
        name: &FunctionName,
        named: Option<&str>,
    ) -> Result<Option<SigningContext>, ControlError> {
        let Some(cs) = &self.inner.seams.code_signing else {
            if named.is_some() {
                return Err(ControlError::Invalid(
                    "CodeSigningConfigArn is not supported: this Warden serves no code signing"
                        .into(),
                ));
            }
            return Ok(None);
        };
        Ok(cs
            .config_for(name.as_str(), named)?
            .map(|config| (std::sync::Arc::clone(cs), config)))
    }

    /// Verifies each layer version's package under the function's config.
    pub(crate) async fn check_layer_signatures(
        &self,
        operation: &'static str,
        name: &FunctionName,
        layers: &[warden_types::layer::FunctionLayer],
        cs: &std::sync::Arc<crate::signing::CodeSigning>,
        config: &warden_signer::CodeSigningConfig,
    ) -> Result<(), ControlError> {
        for layer in layers {
            let sha = layer.code_sha256.clone();
            let (cs, config) = (std::sync::Arc::clone(cs), config.clone());
            let (name, what) = (name.clone(), format!("layer version `{}`", layer.arn));
            // Reading and digesting a package is blocking work.
            self.blocking(move |inner| {
                let zip = inner
                    .blobs
                    .read_zip(&sha)
                    .map_err(|e| ControlError::Internal(e.to_string()))?;
                cs.check(operation, name.as_str(), &what, &zip, &config)
            })
            .await?;
        }
        Ok(())
    }

    /// Verifies a deploy's package under `config` off the async threads (digesting it is
    /// blocking work), handing the package back.
    async fn check_code_signature(
        &self,
        operation: &'static str,
        name: &FunctionName,
        code: ZipPackage,
        cs: &std::sync::Arc<crate::signing::CodeSigning>,
        config: &warden_signer::CodeSigningConfig,
    ) -> Result<ZipPackage, ControlError> {
        let (cs, config, name) = (std::sync::Arc::clone(cs), config.clone(), name.clone());
        self.blocking(move |_| {
            cs.check(
                operation,
                name.as_str(),
                "the function code",
                &code.0,
                &config,
            )?;
            Ok(code)
        })
        .await
    }
}

/// Code signing and the config one deploy is checked against.
pub(crate) type SigningContext = (
    std::sync::Arc<crate::signing::CodeSigning>,
    warden_signer::CodeSigningConfig,
);

impl Control {
    /// `PutFunctionCodeSigningConfig`. Callers: the API, once the caller is allowed
    /// `lambda:PutFunctionCodeSigningConfig` on the function. The function's later deploys
    /// are checked against `config_arn`; its deployed code keeps running.
    pub async fn put_function_code_signing_config(
        &self,
        name: &FunctionName,
        config_arn: &str,
    ) -> Result<(), ControlError> {
        let cs = self.code_signing()?;
        self.stored_latest(name).await?;
        cs.signer
            .set_function_config(name.as_str(), config_arn)
            .map_err(signer_error)
    }

    /// `GetFunctionCodeSigningConfig`: the ARN of the function's config, if it has one.
    /// Callers: the API, once the caller is allowed `lambda:GetFunctionCodeSigningConfig`.
    pub async fn function_code_signing_config(
        &self,
        name: &FunctionName,
    ) -> Result<Option<String>, ControlError> {
        self.stored_latest(name).await?;
        Ok(self
            .inner
            .seams
            .code_signing
            .as_ref()
            .and_then(|cs| cs.signer.config_of(name.as_str()))
            .map(|c| c.arn))
    }

    /// `DeleteFunctionCodeSigningConfig`. Callers: the API, once the caller is allowed
    /// `lambda:DeleteFunctionCodeSigningConfig`. Refused when every function must have a
    /// config (`--require-code-signing`).
    pub async fn delete_function_code_signing_config(
        &self,
        name: &FunctionName,
    ) -> Result<(), ControlError> {
        let cs = self.code_signing()?;
        self.stored_latest(name).await?;
        if cs.require {
            return Err(ControlError::Conflict(
                "this Warden requires a code signing config for every function (--require-code-signing); it cannot be removed".into(),
            ));
        }
        if !cs
            .signer
            .clear_function_config(name.as_str())
            .map_err(signer_error)?
        {
            return Err(ControlError::CodeSigningConfigNotFound(format!(
                "The function {name} has no code signing config"
            )));
        }
        Ok(())
    }

    /// Code signing, or the refusal when this Warden serves none.
    pub fn code_signing(
        &self,
    ) -> Result<&std::sync::Arc<crate::signing::CodeSigning>, ControlError> {
        self.inner
            .seams
            .code_signing
            .as_ref()
            .ok_or_else(|| ControlError::Invalid("this Warden serves no code signing".into()))
    }
}

/// A signer error as the control plane reports it.
pub fn signer_error(e: warden_signer::SignerError) -> ControlError {
    use warden_signer::SignerError as E;
    match e {
        E::NotFound(m) => ControlError::CodeSigningConfigNotFound(m),
        E::Conflict(m) => ControlError::Conflict(m),
        E::Validation(m) | E::LimitExceeded(m) => ControlError::Invalid(m),
        other => ControlError::Internal(other.to_string()),
    }
}

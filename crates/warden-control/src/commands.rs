//! The typed commands of the control plane. Every field holds a validated value
//! (`warden_types` newtypes), so a command that exists is well formed; what depends on
//! stored state (does the function exist, is the revision current, may the caller pass
//! the role) is decided when it runs.

use warden_types::{
    AliasName, Architecture, Description, Environment, EphemeralStorage, FunctionName, Handler,
    MemorySize, RoleArn, Runtime, StatementId, Tags, Timeout,
};

use crate::ControlError;

/// A zip package as uploaded (base64 already decoded). Its checks run at intake.
#[derive(Clone)]
pub struct ZipPackage(pub Vec<u8>);

impl std::fmt::Debug for ZipPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZipPackage({} bytes)", self.0.len())
    }
}

/// `CreateFunction`.
#[derive(Debug, Clone)]
pub struct CreateFunction {
    /// The function's name.
    pub name: FunctionName,
    /// Its runtime.
    pub runtime: Runtime,
    /// Its execution role.
    pub role: RoleArn,
    /// `None`: `bootstrap` for `provided.*` runtimes; required for the others.
    pub handler: Option<Handler>,
    /// Its description.
    pub description: Description,
    /// Its timeout.
    pub timeout: Timeout,
    /// Its memory size.
    pub memory: MemorySize,
    /// Its `/tmp` size.
    pub ephemeral_storage: EphemeralStorage,
    /// Its environment variables.
    pub environment: Environment,
    /// The customer managed KMS key that seals them (`KMSKeyArn`); `aws/lambda` if `None`.
    pub kms_key_arn: Option<String>,
    /// Its architecture.
    pub architecture: Architecture,
    /// Its code.
    pub code: ZipPackage,
    /// Publish version 1 with the function.
    pub publish: bool,
    /// Its tags.
    pub tags: Tags,
    /// The layer version ARNs it uses, in order.
    pub layers: Vec<String>,
    /// How its logs are written.
    pub logging: warden_types::LoggingSettings,
    /// The network attachment, checked by the caller against the network service (its
    /// groups and subnets exist, in one VPC, and the execution role may attach to them).
    pub vpc_config: Option<warden_types::VpcConfig>,
    /// The code signing config that checks this and every later deploy
    /// (`CodeSigningConfigArn`).
    pub code_signing_config_arn: Option<String>,
}

/// `UpdateFunctionCode`.
#[derive(Debug, Clone)]
pub struct UpdateFunctionCode {
    /// The function.
    pub name: FunctionName,
    /// The new code.
    pub code: ZipPackage,
    /// The architecture, if it changes.
    pub architecture: Option<Architecture>,
    /// Publish a version with the new code.
    pub publish: bool,
    /// Check the package as a real update would, store nothing.
    pub dry_run: bool,
    /// The revision the caller read (`RevisionId`), if given.
    pub revision_id: Option<String>,
}

/// The members of `UpdateFunctionConfiguration` that change something; `None` keeps the
/// current value.
#[derive(Debug, Clone, Default)]
pub struct ConfigurationChange {
    /// A new runtime.
    pub runtime: Option<Runtime>,
    /// A new execution role.
    pub role: Option<RoleArn>,
    /// A new handler.
    pub handler: Option<Handler>,
    /// A new description.
    pub description: Option<Description>,
    /// A new timeout.
    pub timeout: Option<Timeout>,
    /// A new memory size.
    pub memory: Option<MemorySize>,
    /// A new `/tmp` size.
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// The whole new environment (an empty one removes every variable).
    pub environment: Option<Environment>,
    /// A new `KMSKeyArn`: `Some(None)` goes back to `aws/lambda`.
    pub kms_key_arn: Option<Option<String>>,
    /// New layers (layer version ARNs, in order; empty removes them all).
    pub layers: Option<Vec<String>>,
    /// A new logging configuration.
    pub logging: Option<warden_types::LoggingSettings>,
    /// A new network attachment (`Some(None)`: detach), checked by the caller as for
    /// [`CreateFunction::vpc_config`].
    pub vpc_config: Option<Option<warden_types::VpcConfig>>,
}

/// `UpdateFunctionConfiguration`.
#[derive(Debug, Clone)]
pub struct UpdateFunctionConfiguration {
    /// The function.
    pub name: FunctionName,
    /// What changes.
    pub change: ConfigurationChange,
    /// The revision the caller read, if given.
    pub revision_id: Option<String>,
}

/// `PublishVersion`.
#[derive(Debug, Clone)]
pub struct PublishVersion {
    /// The function.
    pub name: FunctionName,
    /// Publish only if `$LATEST`'s code has this sha.
    pub code_sha256: Option<String>,
    /// The version's description.
    pub description: Option<Description>,
    /// The revision of `$LATEST` the caller read, if given.
    pub revision_id: Option<String>,
}

/// `DeleteFunction`: the whole function, or one published version.
#[derive(Debug, Clone)]
pub struct DeleteFunction {
    /// The function.
    pub name: FunctionName,
    /// The version to delete; `None` deletes the whole function.
    pub version: Option<u64>,
}

/// An alias's second version and the share of traffic (0.0-1.0) it receives.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    version: u64,
    weight: f64,
}

impl Routing {
    /// Lambda's `AdditionalVersionWeights` with one entry: a published version number and
    /// a weight between 0.0 and 1.0.
    pub fn new(version: &str, weight: f64) -> Result<Self, ControlError> {
        if !(0.0..=1.0).contains(&weight) {
            return Err(ControlError::Invalid(format!(
                "routing weight `{weight}` must be between 0.0 and 1.0"
            )));
        }
        let version = version.parse::<u64>().map_err(|_| {
            ControlError::Invalid(format!(
                "routing version `{version}` must be a published version number"
            ))
        })?;
        Ok(Self { version, weight })
    }

    /// The additional version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Its share of invocations, 0.0-1.0.
    pub fn weight(&self) -> f64 {
        self.weight
    }
}

/// `CreateAlias`.
#[derive(Debug, Clone)]
pub struct CreateAlias {
    /// The function.
    pub function: FunctionName,
    /// The alias.
    pub name: AliasName,
    /// `$LATEST` or a version number; it must exist.
    pub function_version: String,
    /// Its description.
    pub description: Description,
    /// Its weighted routing to a second version, if any.
    pub routing: Option<Routing>,
}

/// `UpdateAlias`.
#[derive(Debug, Clone)]
pub struct UpdateAlias {
    /// The function.
    pub function: FunctionName,
    /// The alias.
    pub name: AliasName,
    /// The version it points to from now on, if it changes.
    pub function_version: Option<String>,
    /// A new description.
    pub description: Option<Description>,
    /// `Some(None)` removes the routing; `None` keeps it.
    pub routing: Option<Option<Routing>>,
    /// The alias revision the caller read, if given.
    pub revision_id: Option<String>,
}

/// `DeleteAlias`.
#[derive(Debug, Clone)]
pub struct DeleteAlias {
    /// The function.
    pub function: FunctionName,
    /// The alias.
    pub name: AliasName,
}

/// `AddPermission`: one statement of the function's resource policy.
#[derive(Debug, Clone)]
pub struct AddPermission {
    /// The function.
    pub function: FunctionName,
    /// The statement's id.
    pub statement_id: StatementId,
    /// `*`, `lambda:*` or one action a function policy can grant.
    pub action: String,
    /// `*`, an account id, an IAM ARN or a service principal.
    pub principal: String,
    /// `AWS:SourceArn` the grant is conditioned on, if any.
    pub source_arn: Option<String>,
    /// `AWS:SourceAccount` the grant is conditioned on, if any.
    pub source_account: Option<String>,
    /// `aws:PrincipalOrgID` the grant is conditioned on, if any.
    pub principal_org_id: Option<String>,
    /// `lambda:FunctionUrlAuthType` (`NONE` or `AWS_IAM`) the grant is conditioned on:
    /// only with the action `lambda:InvokeFunctionUrl`, as in Lambda.
    pub function_url_auth_type: Option<String>,
    /// The policy revision the caller read, if given.
    pub revision_id: Option<String>,
}

/// `RemovePermission`.
#[derive(Debug, Clone)]
pub struct RemovePermission {
    /// The function.
    pub function: FunctionName,
    /// The statement to remove.
    pub statement_id: String,
    /// The policy revision the caller read, if given.
    pub revision_id: Option<String>,
}

/// `PutFunctionConcurrency` (`Some`) or `DeleteFunctionConcurrency` (`None`).
#[derive(Debug, Clone)]
pub struct SetConcurrency {
    /// The function.
    pub function: FunctionName,
    /// The reservation; `None` removes it.
    pub reserved: Option<u32>,
}

/// `TagResource`: adds tags, replacing the values of keys the function has.
#[derive(Debug, Clone)]
pub struct TagFunction {
    /// The function.
    pub function: FunctionName,
    /// The tags to add or replace.
    pub tags: Tags,
}

/// `UntagResource`: removes tags by key (absent keys are ignored).
#[derive(Debug, Clone)]
pub struct UntagFunction {
    /// The function.
    pub function: FunctionName,
    /// The keys of the tags to remove.
    pub keys: Vec<String>,
}

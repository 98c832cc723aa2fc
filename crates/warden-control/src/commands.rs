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
    pub name: FunctionName,
    pub runtime: Runtime,
    pub role: RoleArn,
    /// `None`: `bootstrap` for `provided.*` runtimes; required for the others.
    pub handler: Option<Handler>,
    pub description: Description,
    pub timeout: Timeout,
    pub memory: MemorySize,
    pub ephemeral_storage: EphemeralStorage,
    pub environment: Environment,
    pub architecture: Architecture,
    pub code: ZipPackage,
    /// Publish version 1 with the function.
    pub publish: bool,
    pub tags: Tags,
}

/// `UpdateFunctionCode`.
#[derive(Debug, Clone)]
pub struct UpdateFunctionCode {
    pub name: FunctionName,
    pub code: ZipPackage,
    pub architecture: Option<Architecture>,
    /// Publish a version with the new code.
    pub publish: bool,
    /// Check the package as a real update would, store nothing.
    pub dry_run: bool,
    pub revision_id: Option<String>,
}

/// The members of `UpdateFunctionConfiguration` that change something; `None` keeps the
/// current value.
#[derive(Debug, Clone, Default)]
pub struct ConfigurationChange {
    pub runtime: Option<Runtime>,
    pub role: Option<RoleArn>,
    pub handler: Option<Handler>,
    pub description: Option<Description>,
    pub timeout: Option<Timeout>,
    pub memory: Option<MemorySize>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// The whole new environment (an empty one removes every variable).
    pub environment: Option<Environment>,
}

/// `UpdateFunctionConfiguration`.
#[derive(Debug, Clone)]
pub struct UpdateFunctionConfiguration {
    pub name: FunctionName,
    pub change: ConfigurationChange,
    pub revision_id: Option<String>,
}

/// `PublishVersion`.
#[derive(Debug, Clone)]
pub struct PublishVersion {
    pub name: FunctionName,
    /// Publish only if `$LATEST`'s code has this sha.
    pub code_sha256: Option<String>,
    pub description: Option<Description>,
    pub revision_id: Option<String>,
}

/// `DeleteFunction`: the whole function, or one published version.
#[derive(Debug, Clone)]
pub struct DeleteFunction {
    pub name: FunctionName,
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

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn weight(&self) -> f64 {
        self.weight
    }
}

/// `CreateAlias`.
#[derive(Debug, Clone)]
pub struct CreateAlias {
    pub function: FunctionName,
    pub name: AliasName,
    /// `$LATEST` or a version number; it must exist.
    pub function_version: String,
    pub description: Description,
    pub routing: Option<Routing>,
}

/// `UpdateAlias`.
#[derive(Debug, Clone)]
pub struct UpdateAlias {
    pub function: FunctionName,
    pub name: AliasName,
    pub function_version: Option<String>,
    pub description: Option<Description>,
    /// `Some(None)` removes the routing; `None` keeps it.
    pub routing: Option<Option<Routing>>,
    pub revision_id: Option<String>,
}

/// `DeleteAlias`.
#[derive(Debug, Clone)]
pub struct DeleteAlias {
    pub function: FunctionName,
    pub name: AliasName,
}

/// `AddPermission`: one statement of the function's resource policy.
#[derive(Debug, Clone)]
pub struct AddPermission {
    pub function: FunctionName,
    pub statement_id: StatementId,
    /// `*`, `lambda:*` or one action a function policy can grant.
    pub action: String,
    /// `*`, an account id, an IAM ARN or a service principal.
    pub principal: String,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub principal_org_id: Option<String>,
    pub revision_id: Option<String>,
}

/// `RemovePermission`.
#[derive(Debug, Clone)]
pub struct RemovePermission {
    pub function: FunctionName,
    pub statement_id: String,
    pub revision_id: Option<String>,
}

/// `PutFunctionConcurrency` (`Some`) or `DeleteFunctionConcurrency` (`None`).
#[derive(Debug, Clone)]
pub struct SetConcurrency {
    pub function: FunctionName,
    pub reserved: Option<u32>,
}

/// `TagResource`: adds tags, replacing the values of keys the function has.
#[derive(Debug, Clone)]
pub struct TagFunction {
    pub function: FunctionName,
    pub tags: Tags,
}

/// `UntagResource`: removes tags by key (absent keys are ignored).
#[derive(Debug, Clone)]
pub struct UntagFunction {
    pub function: FunctionName,
    pub keys: Vec<String>,
}

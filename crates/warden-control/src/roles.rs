//! Lambda's checks on an execution role, a step of every command that sets one
//! (CreateFunction, UpdateFunctionConfiguration with `Role`): the role is resolved to the
//! entity it names (IAM role names ignore case, so `role/POWER` names `power`); the caller
//! must be allowed `iam:PassRole` on that role's canonical ARN; and the role's trust
//! policy must let Lambda assume it. The function stores the canonical ARN.
//!
//! Two seams keep the core free of HTTP and of the identity service's internals: the
//! [`RoleDirectory`] resolves roles and reads their trust (the identity service implements
//! it), and the [`Caller`] decides `iam:PassRole` (the API implements it, since the decision
//! needs the request's condition keys: source address, time, the session's policies).
//! Every command takes a `&dyn Caller`, so no command can change a role without the
//! decision.

use crate::ControlError;
use warden_types::RoleArn;

/// The outcome of the caller's `iam:PassRole` decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassRole {
    /// The caller's policies (and session policies) allow passing the role to Lambda.
    Allowed,
    /// They do not.
    Denied,
    /// The request is unsigned: nobody to decide for.
    Unsigned,
}

/// Who is asking for a command, as the control plane needs to know it.
pub trait Caller: Send + Sync {
    /// The signed principal's ARN (recorded in change events); `None` when unsigned.
    fn principal(&self) -> Option<&str>;
    /// Decides `iam:PassRole` on `role_arn` (a canonical ARN when the role exists) with
    /// `iam:PassedToService` = `lambda.amazonaws.com`.
    fn may_pass_role(&self, role_arn: &str) -> PassRole;
    /// Decides whether the caller may have Lambda use the KMS key `key_arn` for it: the
    /// caller must be allowed `kms:Encrypt` on the key through Lambda (the condition key
    /// `kms:ViaService` is `lambda.REGION.amazonaws.com`), as Lambda requires of whoever
    /// sets `KMSKeyArn`: `Err` is the refusal (no such key, or denied).
    fn may_use_key(&self, key_arn: &str) -> Result<(), ControlError>;
}

/// The roles Lambda may run functions as.
pub trait RoleDirectory: Send + Sync {
    /// The canonical ARN of the role `arn` names (resolving names as IAM does, ignoring
    /// case), or `None` if no such role exists.
    fn canonical_role(&self, arn: &str) -> Option<String>;
    /// Whether the trust policy of the role with this canonical ARN lets
    /// `lambda.amazonaws.com` assume it now.
    fn trusts_lambda(&self, canonical_arn: &str) -> bool;
}

impl RoleDirectory for warden_identity::Identity {
    fn canonical_role(&self, arn: &str) -> Option<String> {
        self.resolve_role(arn).map(|r| r.arn)
    }

    fn trusts_lambda(&self, canonical_arn: &str) -> bool {
        self.role_trusts_service(canonical_arn, warden_identity::EXECUTION_SERVICE)
            .unwrap_or(false)
    }
}

/// The role step: returns the canonical ARN the function will store and run as.
///
/// A role that does not exist is decided on the ARN as given, and then refused as one
/// Lambda cannot assume, so a caller learns nothing about roles it may not pass.
pub(crate) fn check_role(
    roles: &dyn RoleDirectory,
    caller: &dyn Caller,
    role: &RoleArn,
) -> Result<String, ControlError> {
    let resolved = roles.canonical_role(role.as_str());
    let decided_on = resolved.as_deref().unwrap_or(role.as_str());
    match caller.may_pass_role(decided_on) {
        PassRole::Allowed => {}
        PassRole::Unsigned => return Err(ControlError::Unauthenticated),
        PassRole::Denied => {
            return Err(ControlError::PassRoleDenied {
                principal: caller.principal().unwrap_or("anonymous").to_owned(),
                role: decided_on.to_owned(),
            })
        }
    }
    match resolved.filter(|r| roles.trusts_lambda(r)) {
        Some(canonical) => Ok(canonical),
        None => Err(ControlError::RoleNotAssumable),
    }
}

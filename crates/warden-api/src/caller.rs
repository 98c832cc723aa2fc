//! The API's side of the control plane's [`Caller`] seam: who signed the request, and the
//! `iam:PassRole` decision for it, made with the request's condition keys (source
//! address, time, the principal's tags) and, for a role session, its session policies.

use warden_control::{Caller, ControlError, KeyringError, PassRole};

use crate::{ApiRequest, ApiState};

/// One request as the control plane's caller.
pub(crate) struct RequestCaller<'a> {
    state: &'a ApiState,
    request: &'a ApiRequest,
}

impl<'a> RequestCaller<'a> {
    pub(crate) fn new(state: &'a ApiState, request: &'a ApiRequest) -> Self {
        Self { state, request }
    }
}

impl Caller for RequestCaller<'_> {
    fn principal(&self) -> Option<&str> {
        self.request.principal.as_ref().map(|p| p.arn.as_str())
    }

    fn may_use_key(&self, key_arn: &str) -> Result<(), ControlError> {
        let Some(principal) = &self.request.principal else {
            return Err(ControlError::Unauthenticated);
        };
        let key = self
            .state
            .kms
            .resolve(key_arn)
            .map_err(|e| ControlError::Keyring(KeyringError::NotFound(e.to_string())))?;
        if crate::kms::allowed_via_lambda(self.state, self.request, principal, &key, "kms:Encrypt")
        {
            Ok(())
        } else {
            Err(ControlError::KmsAccessDenied(format!(
                "User: {} is not authorized to perform: kms:Encrypt on resource: {} through Lambda",
                principal.arn, key.arn
            )))
        }
    }

    fn may_pass_role(&self, role_arn: &str) -> PassRole {
        match &self.request.principal {
            None => PassRole::Unsigned,
            Some(p) => {
                if crate::access::allowed_by_identity(
                    self.state,
                    p,
                    "iam:PassRole",
                    role_arn,
                    self.request,
                ) {
                    PassRole::Allowed
                } else {
                    PassRole::Denied
                }
            }
        }
    }
}

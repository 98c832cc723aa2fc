//! The endpoint of Lambda's Parameters and Secrets extension, which code written for it
//! calls inside the instance: `GET http://localhost:2773/secretsmanager/get?secretId=ID`
//! (with `versionId` or `versionStage`) and the header `X-Aws-Parameters-Secrets-Token`
//! set to the instance's `AWS_SESSION_TOKEN`. The sandbox listens at 127.0.0.1:2773 in each
//! instance and the engine relays the connections here.
//!
//! Who may call it: only the holder of a live function-instance session token (the token
//! names the session; sessions made by `AssumeRole` are refused), as that session, which
//! must be allowed `secretsmanager:GetSecretValue` on the secret and `kms:Decrypt` on its
//! key exactly as through the SDK. It changes nothing. Parameter Store is not served: its
//! path is refused by name.

use http::request::Parts;
use http::StatusCode;
use serde_json::json;
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{BoxFuture, Head, ServiceDoor};
use crate::error::JsonVersion;
use crate::pipeline::Validated;
use crate::routes::{Operation, Service};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// The header carrying the session token.
pub const TOKEN_HEADER: &str = "x-aws-parameters-secrets-token";
const SECRETS_PATH: &str = "/secretsmanager/get";
const PARAMETERS_PATH: &str = "/systemsmanager/parameters/get";

/// The extension's door.
pub struct ExtensionDoor;

fn body_of(request: &ApiRequest) -> Result<serde_json::Value, ApiError> {
    if request.parts.uri.path() == PARAMETERS_PATH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestException",
            "Warden does not serve Parameter Store: only /secretsmanager/get is answered",
        ));
    }
    let id = request.query("secretId").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            "secretId is required",
        )
    })?;
    let mut body = json!({ "SecretId": id });
    if let Some(v) = request.query("versionId") {
        body["VersionId"] = json!(v);
    }
    if let Some(s) = request.query("versionStage") {
        body["VersionStage"] = json!(s);
    }
    Ok(body)
}

impl ServiceDoor for ExtensionDoor {
    fn signing_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// An unsigned `GET` of the extension's paths carrying its token header.
    fn claims(&self, head: Head<'_>) -> bool {
        head.claimed.is_none()
            && head.parts.method == http::Method::GET
            && matches!(head.parts.uri.path(), SECRETS_PATH | PARAMETERS_PATH)
            && head.header(TOKEN_HEADER).is_some()
    }

    fn route(&self, _parts: &Parts) -> Result<Operation, ApiError> {
        Ok(Operation::JsonTarget(
            "ParametersAndSecretsExtension.GetSecretValue".into(),
        ))
    }

    fn service(&self, _head: Head<'_>) -> Service {
        Service::AwsJson {
            name: "secretsmanager",
            version: JsonVersion::V1_1,
        }
    }

    fn service_of(&self, _request: &ApiRequest) -> Service {
        Service::AwsJson {
            name: "secretsmanager",
            version: JsonVersion::V1_1,
        }
    }

    fn body_limit(&self, _operation: &Operation) -> usize {
        0
    }

    fn bearer(
        &self,
        state: &ApiState,
        request: &ApiRequest,
    ) -> Option<Result<Principal, ApiError>> {
        let token = request.header(TOKEN_HEADER).unwrap_or("");
        Some(
            state
                .access
                .identity
                .instance_session_by_token(token)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "AccessDeniedException",
                        "X-Aws-Parameters-Secrets-Token is not the session token of a running function instance",
                    )
                }),
        )
    }

    fn targets(
        &self,
        state: &ApiState,
        request: &ApiRequest,
        principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        let body = body_of(request)?;
        crate::secrets::read_targets(state, "GetSecretValue", &body, principal)
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(async move {
            let request = request.into_request();
            let body = body_of(&request)?;
            crate::secrets::get_secret_value(state, &request, body).await
        })
    }
}

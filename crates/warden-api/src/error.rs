//! The one place where failures become AWS-shaped HTTP responses: one renderer per wire
//! protocol ([`Protocol`]), chosen by the service the request is for (its door, see
//! `doors`), never by the code that raised the error:
//!
//! - rest-json (Lambda), and JSON-protocol services Warden does not serve that do not say
//!   which JSON they speak: status, the `x-amzn-ErrorType` header botocore reads first, and
//!   a JSON body with `Type`, `Message` and `__type`.
//! - JSON 1.0/1.1 (`X-Amz-Target` services: KMS, Secrets Manager, CloudWatch Logs, ...):
//!   `x-amzn-ErrorType` and `{"__type": CODE, "message": ...}` as
//!   `application/x-amz-json-1.x`.
//! - IAM and STS (query protocol): an `<ErrorResponse>` document in the service's XML
//!   namespace, with the query protocol's names for the common errors (`AccessDenied`,
//!   `SignatureDoesNotMatch`, `InvalidClientTokenId`, ...), which botocore and the AWS CLI
//!   parse into the error code.
//! - S3-style rest-xml services Warden does not serve: an `<Error>` document.
//!
//! Both XML documents are written by `warden_identity::QueryError`'s one XML writer.
//! Internal details are logged, never sent.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

/// An error as the caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error code, by its JSON name (the query protocol's renderer maps the common
    /// ones to its own).
    pub code: &'static str,
    /// The message for the caller.
    pub message: String,
    /// `Reason` of a throttle.
    pub reason: Option<&'static str>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }
    /// 404 `ResourceNotFoundException`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }
    /// 400 `InvalidParameterValueException`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }
    /// 400 `InvalidRequestContentException` (a body that does not parse).
    pub fn bad_content(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            message,
        )
    }
    /// 409 `ResourceConflictException`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ResourceConflictException", message)
    }
    /// 412 `PreconditionFailedException` (a `RevisionId` that is not the latest).
    pub fn precondition() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        )
    }
    /// 413 `RequestTooLargeException` for a body beyond `operation`'s `limit`.
    pub fn too_large(limit: usize, operation: &str) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!("Request must be smaller than {limit} bytes for the {operation} operation"),
        )
    }
    /// 404 `UnknownOperationException`: no such path (rest-json).
    pub fn unknown_operation() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        )
    }
    /// A JSON-protocol request whose `X-Amz-Target` names no operation the service serves
    /// (400, as the JSON protocol answers it).
    pub fn unknown_json_operation(operation: &str) -> Self {
        let shown: String = operation.chars().take(64).collect();
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("Warden does not serve the operation `{shown}` of this service"),
        )
    }
    /// A JSON-protocol body that is not what the protocol requires.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }
    /// A request without a signature where one is required.
    pub fn missing_authentication() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )
    }
    /// A request signed for a service Warden does not serve, such as `s3`.
    pub fn unknown_service(service: &str) -> Self {
        let shown: String = service.chars().take(64).collect();
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnknownService",
            format!("Warden does not serve the `{shown}` service; it serves lambda, iam, sts, kms, secretsmanager, ec2, route53resolver, monitoring, logs, sns, cloudtrail, config, securityhub, inspector2 and signer"),
        )
    }
    /// An internal failure: logged with its detail, reported without it.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            format!("internal error (id {id})"),
        )
    }

    /// The response for this error in `protocol`; `request_id` is the one the response's
    /// `x-amzn-RequestId` header carries.
    pub fn render(self, protocol: Protocol, request_id: &str) -> Response<crate::ReplyBody> {
        match protocol {
            Protocol::Json => self.into_rest_json_response(),
            Protocol::AwsJson(version) => self.into_aws_json_response(version),
            Protocol::Query(namespace) => self.into_query_response(namespace, request_id),
            Protocol::RestXml => self.into_rest_xml_response(request_id),
            Protocol::Ec2 => self.into_ec2_response(request_id),
            Protocol::RpcV2Cbor => self.into_cbor_response(),
            Protocol::QueryCompatibleJson => {
                let header = self.query_compatible_header();
                let mut r = self.into_aws_json_response(JsonVersion::V1_0);
                if let Some(v) = header {
                    r.headers_mut().insert("x-amzn-query-error", v);
                }
                r
            }
        }
    }

    /// Smithy RPC v2 CBOR (CloudWatch): a CBOR map with `__type` and `message`.
    fn into_cbor_response(self) -> Response<crate::ReplyBody> {
        let body = ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("__type".into()),
                ciborium::Value::Text(self.code.into()),
            ),
            (
                ciborium::Value::Text("message".into()),
                ciborium::Value::Text(self.message.clone()),
            ),
        ]);
        let header = self.query_compatible_header();
        let mut r = crate::cloudwatch::cbor_response(self.status, &body);
        let h = r.headers_mut();
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        if let Some(v) = header {
            h.insert("x-amzn-query-error", v);
        }
        r
    }

    /// `x-amzn-query-error`: CloudWatch is query-compatible, so clients take the error code
    /// its query protocol used (`InvalidParameterValue`) from this header.
    fn query_compatible_header(&self) -> Option<HeaderValue> {
        let query = query_compatible_code(self.code);
        let fault = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        HeaderValue::from_str(&format!("{query};{fault}")).ok()
    }

    /// rest-json (Lambda).
    fn into_rest_json_response(self) -> Response<crate::ReplyBody> {
        let mut body =
            serde_json::json!({ "Type": "User", "Message": self.message, "__type": self.code });
        if let Some(reason) = self.reason {
            body["Reason"] = reason.into();
        }
        self.json_response(body, "application/json")
    }

    /// JSON 1.0 / 1.1: `__type` and a lower-case `message`, as KMS and its kin answer.
    fn into_aws_json_response(self, version: JsonVersion) -> Response<crate::ReplyBody> {
        let body = serde_json::json!({ "__type": self.code, "message": self.message });
        self.json_response(body, version.content_type())
    }

    fn json_response(
        &self,
        body: serde_json::Value,
        content_type: &'static str,
    ) -> Response<crate::ReplyBody> {
        let mut r = Response::new(crate::ReplyBody::from(Bytes::from(body.to_string())));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            h.insert("retry-after", HeaderValue::from_static("1"));
        }
        r
    }

    /// The query protocol's (IAM, STS) XML error document.
    fn into_query_response(
        self,
        namespace: Option<&'static str>,
        request_id: &str,
    ) -> Response<crate::ReplyBody> {
        let status = self.status;
        // CloudWatch's query codes are its JSON codes without `Exception`.
        let cloudwatch = namespace == Some(crate::cloudwatch_query::NAMESPACE);
        let code = self.code;
        let mut error = self.into_query_error();
        if cloudwatch {
            error.code = query_compatible_code(code);
        }
        // SNS names an access denial its own way.
        if namespace == Some(crate::sns::SNS_NAMESPACE) && error.code == "AccessDenied" {
            error.code = "AuthorizationError";
        }
        let body = error.to_xml(namespace, request_id);
        xml_response(status, body, warden_identity::CONTENT_TYPE)
    }

    /// rest-xml's error document, as S3 writes it.
    fn into_rest_xml_response(self, request_id: &str) -> Response<crate::ReplyBody> {
        let status = self.status;
        let error = warden_identity::QueryError {
            status: status.as_u16(),
            code: self.code,
            message: self.message,
        };
        xml_response(status, error.to_rest_xml(request_id), "application/xml")
    }

    /// EC2's `<Response><Errors><Error>` document, with EC2's names for the common errors
    /// (`UnauthorizedOperation`, `AuthFailure`, `InvalidAction`, ...); an internal failure
    /// is `InternalError`, 503.
    fn into_ec2_response(self, request_id: &str) -> Response<crate::ReplyBody> {
        let status = if self.status.is_server_error() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            self.status
        };
        let body = crate::ec2::error_document(ec2_code(self.code), &self.message, request_id);
        xml_response(status, body, crate::ec2::CONTENT_TYPE)
    }

    fn into_query_error(self) -> warden_identity::QueryError {
        warden_identity::QueryError {
            status: self.status.as_u16(),
            code: query_code(self.code),
            message: self.message,
        }
    }
}

/// The wire protocol of a service's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Lambda's rest-json: JSON body (`Type`, `Message`, `__type`) and `x-amzn-ErrorType`.
    Json,
    /// The JSON protocol of `X-Amz-Target` services: `{"__type", "message"}` and
    /// `x-amzn-ErrorType`, as `application/x-amz-json-1.0` or `-1.1`.
    AwsJson(JsonVersion),
    /// The query protocol's `<ErrorResponse>`, in this XML namespace (none for a service
    /// Warden does not serve).
    Query(Option<&'static str>),
    /// rest-xml's `<Error>` (S3 and services shaped like it).
    RestXml,
    /// EC2's `<Response><Errors><Error>` document.
    Ec2,
    /// Smithy RPC v2 CBOR's `{"__type", "message"}` map (CloudWatch).
    RpcV2Cbor,
    /// JSON 1.0 of a service that was a query service (CloudWatch): the JSON error, and
    /// the query protocol's code in `x-amzn-query-error`.
    QueryCompatibleJson,
}

/// The version of the JSON protocol a service speaks (its `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonVersion {
    /// `application/x-amz-json-1.0` (DynamoDB, SQS, ...).
    V1_0,
    /// `application/x-amz-json-1.1` (KMS, Secrets Manager, CloudWatch Logs, ...).
    V1_1,
}

impl JsonVersion {
    /// The content type of this version's requests and responses.
    pub fn content_type(self) -> &'static str {
        match self {
            JsonVersion::V1_0 => "application/x-amz-json-1.0",
            JsonVersion::V1_1 => "application/x-amz-json-1.1",
        }
    }

    /// The version a `Content-Type` names, if it names one.
    pub fn from_content_type(value: &str) -> Option<JsonVersion> {
        let media = value.split(';').next().unwrap_or("").trim();
        [JsonVersion::V1_0, JsonVersion::V1_1]
            .into_iter()
            .find(|v| media.eq_ignore_ascii_case(v.content_type()))
    }
}

/// CloudWatch's query protocol name for an error its JSON protocols name `code`.
fn query_compatible_code(code: &'static str) -> &'static str {
    match code {
        "MissingRequiredParameterException" => "MissingParameter",
        "AccessDeniedException" => "AccessDenied",
        "ServiceException" => "InternalServiceError",
        code => code.strip_suffix("Exception").unwrap_or(code),
    }
}

/// The query protocol's name for an error the API raises with its JSON name (IAM's and
/// STS's common errors); codes without a counterpart are kept.
fn query_code(code: &'static str) -> &'static str {
    match code {
        "AccessDeniedException" => "AccessDenied",
        "UnrecognizedClientException" => "InvalidClientTokenId",
        "InvalidSignatureException" => "SignatureDoesNotMatch",
        "IncompleteSignatureException" => "IncompleteSignature",
        "ExpiredTokenException" => "ExpiredToken",
        "MissingAuthenticationTokenException" => "MissingAuthenticationToken",
        "UnknownOperationException" => "InvalidAction",
        "InvalidParameterValueException" | "InvalidRequestContentException" => "ValidationError",
        "RequestTooLargeException" => "RequestEntityTooLarge",
        "ServiceException" => "ServiceFailure",
        other => other,
    }
}

/// EC2's name for an error the API raises with its JSON name; EC2's own codes are kept.
fn ec2_code(code: &'static str) -> &'static str {
    match code {
        "AccessDeniedException" => "UnauthorizedOperation",
        "UnrecognizedClientException" => "AuthFailure",
        "InvalidSignatureException" => "SignatureDoesNotMatch",
        "IncompleteSignatureException" => "IncompleteSignature",
        "ExpiredTokenException" => "ExpiredToken",
        "MissingAuthenticationTokenException" => "MissingAuthenticationToken",
        "UnknownOperationException" => "InvalidAction",
        "InvalidParameterValueException"
        | "InvalidRequestContentException"
        | "SerializationException" => "InvalidParameterValue",
        "RequestTooLargeException" => "RequestEntityTooLarge",
        "TooManyRequestsException" => "RequestLimitExceeded",
        "ServiceException" | "InternalFailure" => "InternalError",
        other => other,
    }
}

fn xml_response(
    status: StatusCode,
    body: String,
    content_type: &'static str,
) -> Response<crate::ReplyBody> {
    let mut r = Response::new(crate::ReplyBody::from(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

impl From<warden_identity::QueryError> for ApiError {
    fn from(e: warden_identity::QueryError) -> Self {
        Self::new(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.code,
            e.message,
        )
    }
}

impl From<warden_engine::InvokeError> for ApiError {
    fn from(e: warden_engine::InvokeError) -> Self {
        use warden_engine::InvokeError as E;
        match e {
            E::NotFound(arn) => Self::not_found(format!("Function not found: {arn}")),
            E::Throttled(reason) => Self {
                reason: Some(reason.as_str()),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    "Rate Exceeded.",
                )
            },
            E::Store(e) => warden_control::ControlError::from(e).into(),
            E::Kms(k) => warden_control::ControlError::Keyring(k).into(),
            E::Aborted => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceException",
                "the invocation was stopped by the server's shutdown",
            ),
        }
    }
}

impl From<warden_types::page::PageError> for ApiError {
    fn from(e: warden_types::page::PageError) -> Self {
        Self::invalid(e.to_string())
    }
}

impl From<warden_types::NameError> for ApiError {
    fn from(e: warden_types::NameError) -> Self {
        Self::invalid(e.to_string())
    }
}

// ---- the control plane's errors ----

impl From<warden_types::ConfigError> for ApiError {
    fn from(e: warden_types::ConfigError) -> Self {
        Self::invalid(e.to_string())
    }
}

impl From<warden_control::ControlError> for ApiError {
    /// Each of the core's errors as Lambda reports it; internal ones are logged with their
    /// detail and reported without it.
    fn from(e: warden_control::ControlError) -> Self {
        use warden_control::ControlError as E;
        let message = e.to_string();
        match e {
            E::NotFound(_) => Self::not_found(message),
            E::Conflict(_) => Self::conflict(message),
            E::RevisionMismatch | E::CodeShaMismatch { .. } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailedException",
                message,
            ),
            E::Invalid(_)
            | E::Config(_)
            | E::Name(_)
            | E::Layer(_)
            | E::CodeRefused { .. }
            | E::RoleNotAssumable => Self::invalid(message),
            E::CodeTooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                message,
            ),
            E::InvalidZip(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "InvalidZipFileException", message)
            }
            E::PassRoleDenied { .. } => {
                Self::new(StatusCode::FORBIDDEN, "AccessDeniedException", message)
            }
            E::Unauthenticated => Self::missing_authentication(),
            E::KmsAccessDenied(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "KMSAccessDeniedException", message)
            }
            E::Keyring(k) => match k.code() {
                code @ ("KMSDisabledException"
                | "KMSInvalidStateException"
                | "KMSNotFoundException") => Self::new(StatusCode::BAD_GATEWAY, code, message),
                _ => Self::internal(message),
            },
            E::InvalidCodeSignature(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "InvalidCodeSignatureException",
                message,
            ),
            E::CodeVerificationFailed(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "CodeVerificationFailedException",
                message,
            ),
            E::CodeSigningConfigNotFound(_) => Self::new(
                StatusCode::NOT_FOUND,
                "CodeSigningConfigNotFoundException",
                message,
            ),
            E::Store(_) | E::Internal(_) => Self::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: Response<crate::ReplyBody>) -> (StatusCode, http::HeaderMap, String) {
        let (parts, body) = r.into_parts();
        let bytes = collect_text(body);
        (parts.status, parts.headers, bytes)
    }

    fn collect_text(body: crate::ReplyBody) -> String {
        String::from_utf8(body.whole().expect("a whole body").to_vec()).unwrap()
    }

    #[test]
    fn query_services_get_xml_with_their_codes_and_namespace() {
        let denied = ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "User: a is not authorized <&>",
        );
        let (status, headers, text) = body(denied.render(
            Protocol::Query(Some(warden_identity::STS_NAMESPACE)),
            "req-1",
        ));
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(headers[http::header::CONTENT_TYPE], "text/xml");
        assert!(headers.get("x-amzn-errortype").is_none());
        assert_eq!(
            text,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: a is not authorized &lt;&amp;&gt;</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"
        );
        for (json, query) in [
            ("UnrecognizedClientException", "InvalidClientTokenId"),
            ("InvalidSignatureException", "SignatureDoesNotMatch"),
            (
                "MissingAuthenticationTokenException",
                "MissingAuthenticationToken",
            ),
            ("IncompleteSignatureException", "IncompleteSignature"),
            ("ExpiredTokenException", "ExpiredToken"),
            ("NoSuchEntity", "NoSuchEntity"),
        ] {
            let (_, _, text) = body(
                ApiError::new(StatusCode::FORBIDDEN, json, "m")
                    .render(Protocol::Query(Some(warden_identity::IAM_NAMESPACE)), "r"),
            );
            assert!(text.contains(&format!("<Code>{query}</Code>")), "{text}");
        }
        let (status, _, text) = body(ApiError::internal("boom").render(Protocol::Query(None), "r"));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(text
            .starts_with("<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceFailure</Code>"));
        assert!(!text.contains("boom"), "internal details stay in the log");
    }

    #[test]
    fn json_and_rest_xml_shapes() {
        let (status, headers, text) =
            body(ApiError::unknown_service("dynamodb").render(Protocol::Json, "r"));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers["x-amzn-errortype"], "UnknownService");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["__type"], "UnknownService");
        assert_eq!(
            v["Message"],
            "Warden does not serve the `dynamodb` service; it serves lambda, iam, sts, kms, secretsmanager, ec2, route53resolver, monitoring, logs, sns, cloudtrail, config, securityhub, inspector2 and signer"
        );
        let (_, headers, text) =
            body(ApiError::unknown_service("s3").render(Protocol::RestXml, "r-9"));
        assert_eq!(headers[http::header::CONTENT_TYPE], "application/xml");
        assert!(
            text.ends_with("<Error><Code>UnknownService</Code><Message>Warden does not serve the `s3` service; it serves lambda, iam, sts, kms, secretsmanager, ec2, route53resolver, monitoring, logs, sns, cloudtrail, config, securityhub, inspector2 and signer</Message><RequestId>r-9</RequestId></Error>"),
            "{text}"
        );
        // A hostile service name is cut and escaped.
        let long = format!("<{}", "x".repeat(500));
        let (_, _, text) = body(ApiError::unknown_service(&long).render(Protocol::RestXml, "r"));
        assert!(text.contains("&lt;xxx") && text.len() < 400, "{text}");
    }

    #[test]
    fn identity_errors_keep_their_code_and_status() {
        let e: ApiError = warden_identity::QueryError {
            status: 409,
            code: "DeleteConflict",
            message: "m".into(),
        }
        .into();
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "DeleteConflict"));
    }
}

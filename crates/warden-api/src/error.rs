//! The one place where failures become AWS-shaped HTTP responses, in the wire protocol of
//! the service the request is for ([`Protocol`], chosen once per request by the API):
//!
//! - Lambda (rest-json), and JSON-protocol services Warden does not serve: status, the
//!   `x-amzn-ErrorType` header botocore reads first, and a JSON body with `Type`, `Message`
//!   and `__type`.
//! - IAM and STS (query protocol): an `<ErrorResponse>` document in the service's XML
//!   namespace, with the query protocol's names for the common errors (`AccessDenied`,
//!   `SignatureDoesNotMatch`, `InvalidClientTokenId`, ...), which botocore and the AWS CLI
//!   parse into the error code.
//! - S3-style rest-xml services Warden does not serve: an `<Error>` document.
//!
//! Internal details are logged, never sent.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// An error as the caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Reason` of a throttle.
    pub reason: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }
    pub fn bad_content(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            message,
        )
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ResourceConflictException", message)
    }
    pub fn precondition() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        )
    }
    pub fn too_large(limit: usize, operation: &str) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!("Request must be smaller than {limit} bytes for the {operation} operation"),
        )
    }
    pub fn unknown_operation() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        )
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
            format!("Warden does not serve the `{shown}` service; it serves lambda, iam and sts"),
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
    pub fn render(self, protocol: Protocol, request_id: &str) -> Response<Full<Bytes>> {
        match protocol {
            Protocol::Json => self.into_json_response(),
            Protocol::Query(namespace) => self.into_query_response(namespace, request_id),
            Protocol::RestXml => self.into_rest_xml_response(request_id),
        }
    }

    fn into_json_response(self) -> Response<Full<Bytes>> {
        let mut body =
            serde_json::json!({ "Type": "User", "Message": self.message, "__type": self.code });
        if let Some(reason) = self.reason {
            body["Reason"] = reason.into();
        }
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            h.insert("retry-after", HeaderValue::from_static("1"));
        }
        r
    }
}

/// The wire protocol of a service's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// JSON body and `x-amzn-ErrorType` (Lambda's rest-json, and the json protocol).
    Json,
    /// The query protocol's `<ErrorResponse>`, in this XML namespace (none for a service
    /// Warden does not serve).
    Query(Option<&'static str>),
    /// rest-xml's `<Error>` (S3 and services shaped like it).
    RestXml,
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

impl ApiError {
    /// The query protocol's (IAM, STS) XML error document.
    fn into_query_response(
        self,
        namespace: Option<&'static str>,
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        let error = warden_identity::QueryError {
            status: self.status.as_u16(),
            code: query_code(self.code),
            message: self.message,
        };
        xml_response(self.status, error.to_xml(namespace, request_id))
    }

    /// rest-xml's error document, as S3 writes it.
    fn into_rest_xml_response(self, request_id: &str) -> Response<Full<Bytes>> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
            escape(self.code),
            escape(&self.message),
            escape(request_id)
        );
        let mut r = xml_response(self.status, body);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        r
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn xml_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(warden_identity::CONTENT_TYPE),
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
        }
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
            E::Keyring(_) | E::Store(_) | E::Internal(_) => Self::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(r: Response<Full<Bytes>>) -> (StatusCode, http::HeaderMap, String) {
        let (parts, body) = r.into_parts();
        let bytes = collect_text(body);
        (parts.status, parts.headers, bytes)
    }

    fn collect_text(body: Full<Bytes>) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let collected = rt.block_on(body.collect()).unwrap().to_bytes();
        String::from_utf8(collected.to_vec()).unwrap()
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
            "Warden does not serve the `dynamodb` service; it serves lambda, iam and sts"
        );
        let (_, headers, text) =
            body(ApiError::unknown_service("s3").render(Protocol::RestXml, "r-9"));
        assert_eq!(headers[http::header::CONTENT_TYPE], "application/xml");
        assert!(
            text.ends_with("<Error><Code>UnknownService</Code><Message>Warden does not serve the `s3` service; it serves lambda, iam and sts</Message><RequestId>r-9</RequestId></Error>"),
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

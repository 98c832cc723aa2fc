//! The services the API serves, each behind a [`ServiceDoor`]: which requests are its
//! (request shape and credential scope), its wire protocol (hence the renderer of its
//! errors), its operations, the IAM action and resource each operation is authorized
//! against, its input validation, and its handlers. The [`Pipeline`](crate::Pipeline) runs
//! the same stages for every door; adding a service is registering a door.
//!
//! Doors today: [`LambdaDoor`] (rest-json under Lambda's dated paths), [`QueryDoor`] (IAM and
//! STS, the query protocol at `/`), and [`JsonDoor`], the JSON 1.1 protocol of `X-Amz-Target`
//! services, registered for KMS (`kms::KMS`); an operation a JSON service does not serve
//! is authenticated and then refused as `UnknownOperationException`, in the service's own
//! error shape.

use std::future::Future;
use std::pin::Pin;

use http::request::Parts;
use warden_types::identity::Principal;

use crate::access::{self, Target};
use crate::error::JsonVersion;
#[cfg(test)]
use crate::error::Protocol;
use crate::pipeline::Validated;
use crate::routes::{self, Operation, Service};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// A boxed future, as doors return their handlers' work.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One request's head as door selection sees it: the parts and the service its credential
/// scope names, if it is signed.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    /// Method, URI and headers.
    pub parts: &'a Parts,
    /// The service the SigV4 credential scope names (header or presigned form).
    pub claimed: Option<&'a str>,
}

impl Head<'_> {
    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A service (or family of services sharing one endpoint shape) the pipeline serves.
///
/// The pipeline asks, in this order: [`claims`](ServiceDoor::claims) (before anything else),
/// [`route`](ServiceDoor::route) and [`service`](ServiceDoor::service) (before the body is
/// read, so that even the first refusal is in the service's protocol), then, after
/// authentication, [`targets`](ServiceDoor::targets) (authorization),
/// [`validate`](ServiceDoor::validate), and [`dispatch`](ServiceDoor::dispatch).
pub trait ServiceDoor: Send + Sync + 'static {
    /// The names credential scopes of this door's services carry.
    fn signing_names(&self) -> &'static [&'static str];

    /// Whether a request with this head is for this door. Doors are asked in order; the
    /// last one takes every request the others leave.
    fn claims(&self, head: Head<'_>) -> bool;

    /// The operation the head names. A refusal here comes before authentication, so it is
    /// kept for requests no service of this door could ever serve (a path Lambda does not
    /// have); an operation a door does not serve yet is refused at dispatch.
    fn route(&self, parts: &Parts) -> Result<Operation, ApiError>;

    /// The service the request is for, as far as its head tells (it chooses the error
    /// protocol, and the credential scope a signature must name).
    fn service(&self, head: Head<'_>) -> Service;

    /// The service once the body is read (a query request's `Action` names it).
    fn service_of(&self, request: &ApiRequest) -> Service;

    /// Whether the signature's scope is checked against [`ServiceDoor::service`] from the
    /// headers alone (false where only the body tells the service).
    fn scope_known_from_head(&self) -> bool {
        true
    }

    /// The largest body the operation accepts.
    fn body_limit(&self, _operation: &Operation) -> usize {
        DEFAULT_BODY_LIMIT
    }

    /// Whether an unsigned request may reach authorization for this operation (which then
    /// needs a resource policy naming `*`).
    fn anonymous_may_call(&self, _operation: &Operation) -> bool {
        false
    }

    /// For a door whose callers prove who they are with a bearer token instead of a
    /// signature (the Parameters and Secrets extension's endpoint): the principal the
    /// request's token names, or the refusal. `None` for SigV4 doors.
    fn bearer(
        &self,
        _state: &ApiState,
        _request: &ApiRequest,
    ) -> Option<Result<Principal, ApiError>> {
        None
    }

    /// What the request needs permission for: each IAM action and resource, decided in
    /// the authorization stage. Empty when nothing beyond authentication is needed (or the
    /// operation is unknown: dispatch refuses it).
    fn targets(
        &self,
        state: &ApiState,
        request: &ApiRequest,
        principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError>;

    /// The door's input validation (size and shape its protocol requires); operation input
    /// schemas plug in here.
    fn validate(&self, _request: &ApiRequest) -> Result<(), ApiError> {
        Ok(())
    }

    /// Runs the operation's handler.
    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>>;
}

/// The body limit of operations that name none.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

// ---- Lambda ----

/// Lambda's rest-json API under its dated paths (and Warden's own `/_warden` paths).
pub struct LambdaDoor;

impl ServiceDoor for LambdaDoor {
    fn signing_names(&self) -> &'static [&'static str] {
        &["lambda"]
    }

    fn claims(&self, _head: Head<'_>) -> bool {
        true
    }

    fn route(&self, parts: &Parts) -> Result<Operation, ApiError> {
        routes::route(&parts.method, parts.uri.path()).map_err(|e| match e {
            routes::RouteError::Unknown => ApiError::unknown_operation(),
            routes::RouteError::BadEncoding => {
                ApiError::invalid("the request path is not valid UTF-8 after percent-decoding")
            }
        })
    }

    fn service(&self, _head: Head<'_>) -> Service {
        Service::Lambda
    }

    fn service_of(&self, _request: &ApiRequest) -> Service {
        Service::Lambda
    }

    fn body_limit(&self, operation: &Operation) -> usize {
        match operation {
            Operation::Invoke(_) | Operation::InvokeWithResponseStream(_) => {
                warden_types::limits::SYNC_PAYLOAD_BYTES
            }
            Operation::InvokeAsync(_) => warden_types::limits::ASYNC_PAYLOAD_BYTES,
            Operation::CreateFunction
            | Operation::UpdateFunctionCode(_)
            | Operation::PublishLayerVersion(_)
            | Operation::ImportAdvisories => warden_types::limits::API_BODY_BYTES,
            _ => DEFAULT_BODY_LIMIT,
        }
    }

    /// Invoking, synchronously or not: then allowed only by a function policy naming `*`
    /// for `lambda:InvokeFunction`.
    fn anonymous_may_call(&self, operation: &Operation) -> bool {
        matches!(
            operation,
            Operation::Invoke(_)
                | Operation::InvokeAsync(_)
                | Operation::InvokeWithResponseStream(_)
        )
    }

    fn targets(
        &self,
        state: &ApiState,
        request: &ApiRequest,
        _principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        Ok(access::lambda_targets(state, request))
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(crate::dispatch_lambda(state, request.into_request()))
    }
}

// ---- IAM and STS ----

/// IAM's and STS's query protocol at `/`: the form's `Action` says which service a request
/// is for, so the service is known only once the body is read.
pub struct QueryDoor;

impl ServiceDoor for QueryDoor {
    fn signing_names(&self) -> &'static [&'static str] {
        &["iam", "sts"]
    }

    fn claims(&self, head: Head<'_>) -> bool {
        head.parts.uri.path() == "/"
            && matches!(head.parts.method, http::Method::GET | http::Method::POST)
    }

    fn route(&self, _parts: &Parts) -> Result<Operation, ApiError> {
        Ok(Operation::Query)
    }

    /// Until the body names the action, the scope says which of the two it is.
    fn service(&self, head: Head<'_>) -> Service {
        match head.claimed {
            Some("sts") => Service::Sts,
            _ => Service::Iam,
        }
    }

    fn service_of(&self, request: &ApiRequest) -> Service {
        access::query_service(request)
    }

    fn scope_known_from_head(&self) -> bool {
        false
    }

    fn targets(
        &self,
        state: &ApiState,
        request: &ApiRequest,
        principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        access::query_targets(state, request, principal)
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(async move { crate::query(state, request.request()) })
    }
}

// ---- the JSON 1.1 protocol ----

/// A handler of one JSON-protocol operation: the request and its parsed body (a JSON
/// object).
pub type JsonHandler = for<'a> fn(
    &'a ApiState,
    &'a ApiRequest,
    serde_json::Value,
) -> BoxFuture<'a, Result<Reply, ApiError>>;

/// What a JSON-protocol operation needs permission for, from the operation's name, the
/// request's body (a JSON object) and the caller: each IAM action, its resource, and the
/// resource's policy where the service has one (a KMS key's). An error refuses the request
/// (a key that does not exist, a body without a required member).
pub type JsonTargets = fn(
    &ApiState,
    &'static str,
    &serde_json::Value,
    Option<&Principal>,
) -> Result<Vec<Target>, ApiError>;

/// A [`JsonOperation`] named `$name`, authorized by `$targets`, handled by the `async fn`
/// `$handler(state, request, body)`.
macro_rules! json_op {
    ($name:literal, $targets:expr, $handler:ident) => {
        $crate::doors::JsonOperation {
            name: $name,
            targets: $targets,
            handler: |state, request, body| Box::pin($handler(state, request, body)),
        }
    };
}
pub(crate) use json_op;

/// [`json_op!`] for a handler that is a plain `fn` (it runs on the async thread, so it must
/// be quick).
macro_rules! json_op_sync {
    ($name:literal, $targets:expr, $handler:ident) => {
        $crate::doors::JsonOperation {
            name: $name,
            targets: $targets,
            handler: |state, request, body| Box::pin(async move { $handler(state, request, body) }),
        }
    };
}
pub(crate) use json_op_sync;

/// One operation of a JSON-protocol service.
pub struct JsonOperation {
    /// The operation's name, as `X-Amz-Target` carries it after the prefix (`Encrypt`).
    pub name: &'static str,
    /// What it is authorized against.
    pub targets: JsonTargets,
    /// The handler.
    pub handler: JsonHandler,
}

/// A service speaking the JSON protocol: `POST /` with `X-Amz-Target: PREFIX.Operation`.
pub struct JsonService {
    /// The name credential scopes carry (`kms`).
    pub signing_name: &'static str,
    /// The `X-Amz-Target` prefix (`TrentService`).
    pub target_prefix: &'static str,
    /// The protocol version (its `Content-Type`).
    pub version: JsonVersion,
    /// The operations served; any other is `UnknownOperationException`.
    pub operations: &'static [JsonOperation],
    /// The largest request body any of its operations takes.
    pub max_body: usize,
}

/// The door of one [`JsonService`].
pub struct JsonDoor {
    service: &'static JsonService,
    signing_names: &'static [&'static str],
}

impl JsonDoor {
    /// The door of `service`.
    pub const fn new(service: &'static JsonService) -> JsonDoor {
        JsonDoor {
            service,
            signing_names: std::slice::from_ref(&service.signing_name),
        }
    }

    /// The operation a request names, if this service serves it.
    fn operation(&self, request: &ApiRequest) -> Option<&'static JsonOperation> {
        let Operation::JsonTarget(target) = &request.operation else {
            return None;
        };
        let (prefix, name) = parse_target(target)?;
        if prefix != self.service.target_prefix {
            return None;
        }
        self.service.operations.iter().find(|op| op.name == name)
    }
}

/// Splits `X-Amz-Target` into its service prefix and operation (`TrentService.Encrypt`).
pub fn parse_target(target: &str) -> Option<(&str, &str)> {
    let (prefix, operation) = target.rsplit_once('.')?;
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    (word(prefix) && word(operation)).then_some((prefix, operation))
}

impl ServiceDoor for JsonDoor {
    fn signing_names(&self) -> &'static [&'static str] {
        self.signing_names
    }

    /// `/`, signed for this service or (unsigned) naming its target prefix.
    fn claims(&self, head: Head<'_>) -> bool {
        if head.parts.uri.path() != "/" {
            return false;
        }
        match head.claimed {
            Some(name) => name == self.service.signing_name,
            None => head
                .header("x-amz-target")
                .and_then(parse_target)
                .is_some_and(|(prefix, _)| prefix == self.service.target_prefix),
        }
    }

    /// Every request is routed (the target is checked after authentication).
    fn route(&self, parts: &Parts) -> Result<Operation, ApiError> {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(Operation::JsonTarget(target.chars().take(128).collect()))
    }

    fn service(&self, _head: Head<'_>) -> Service {
        Service::AwsJson {
            name: self.service.signing_name,
            version: self.service.version,
        }
    }

    fn service_of(&self, _request: &ApiRequest) -> Service {
        Service::AwsJson {
            name: self.service.signing_name,
            version: self.service.version,
        }
    }

    fn body_limit(&self, _operation: &Operation) -> usize {
        self.service.max_body
    }

    fn targets(
        &self,
        state: &ApiState,
        request: &ApiRequest,
        principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        let Some(op) = self.operation(request) else {
            return Ok(Vec::new());
        };
        let body = json_object(&request.body)?;
        (op.targets)(state, op.name, &body, principal)
    }

    /// A JSON-protocol request is a `POST` of a JSON object in the service's content type.
    fn validate(&self, request: &ApiRequest) -> Result<(), ApiError> {
        if request.parts.method != http::Method::POST {
            return Err(ApiError::unknown_json_operation(request.operation.name()));
        }
        let content_type = request.header("content-type").unwrap_or("");
        if JsonVersion::from_content_type(content_type) != Some(self.service.version) {
            return Err(ApiError::serialization(format!(
                "Content-Type must be `{}`",
                self.service.version.content_type()
            )));
        }
        json_object(&request.body).map(|_| ())
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(async move {
            let request = request.into_request();
            let Some(op) = self.operation(&request) else {
                return Err(ApiError::unknown_json_operation(request.operation.name()));
            };
            let body = json_object(&request.body)?;
            (op.handler)(state, &request, body).await
        })
    }
}

/// A JSON-protocol body: a JSON object (an empty body counts as `{}`).
fn json_object(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::serialization(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::serialization(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn targets_are_prefix_dot_operation() {
        assert_eq!(
            parse_target("TrentService.Encrypt"),
            Some(("TrentService", "Encrypt"))
        );
        assert_eq!(
            parse_target("DynamoDB_20120810.ListTables"),
            Some(("DynamoDB_20120810", "ListTables"))
        );
        for bad in [
            "",
            "Encrypt",
            ".Encrypt",
            "TrentService.",
            "Trent Service.X",
            "a.b<",
        ] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_json_door_claims_its_scope_or_its_target() {
        let door = JsonDoor::new(&crate::kms::KMS);
        let kms = [("x-amz-target", "TrentService.Encrypt")];
        let p = parts("POST", "/", &kms);
        assert!(door.claims(Head {
            parts: &p,
            claimed: None
        }));
        assert!(door.claims(Head {
            parts: &p,
            claimed: Some("kms")
        }));
        // Signed for another service, or not at `/`: not KMS's.
        assert!(!door.claims(Head {
            parts: &p,
            claimed: Some("iam")
        }));
        let lambda = parts("POST", "/2015-03-31/functions", &kms);
        assert!(!door.claims(Head {
            parts: &lambda,
            claimed: None
        }));
        let other = parts(
            "POST",
            "/",
            &[("x-amz-target", "secretsmanager.ListSecrets")],
        );
        assert!(!door.claims(Head {
            parts: &other,
            claimed: None
        }));
        assert_eq!(
            door.service(Head {
                parts: &p,
                claimed: None
            })
            .protocol(),
            Protocol::AwsJson(JsonVersion::V1_1)
        );
        assert_eq!(door.signing_names(), ["kms"]);
    }

    #[test]
    fn json_bodies_must_be_objects() {
        assert!(json_object(b"").is_ok());
        assert!(json_object(b" {\"KeyId\": \"k\"} ").is_ok());
        for bad in [&b"[]"[..], b"\"x\"", b"{", b"\xff"] {
            let e = json_object(bad).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (http::StatusCode::BAD_REQUEST, "SerializationException")
            );
        }
    }
}

//! The request pipeline: the same typed stages for every request of every service.
//!
//! 1. **Door.** The request's [`ServiceDoor`] is chosen from its head (credential scope,
//!    path, `X-Amz-Target`); a request signed for a service no door serves is answered
//!    `UnknownService` at once. The door names the operation and the service, whose
//!    protocol every later refusal is rendered in.
//! 2. **Authenticate** ([`Pipeline::authenticate`] → [`Authenticated`]): what the headers can
//!    prove, before any of the body is read (a request without a signature must instead be
//!    allowed anonymously, for the few operations that may be); then the body, read within
//!    the operation's limit, the body-memory budget and deadlines, and hashed as it
//!    arrives; then the signature over that hash, the session token and the scope's
//!    service.
//! 3. **Authorize** ([`Pipeline::authorize`] → [`Authorized`]): the IAM decision for each
//!    target the door names (identity policies, the function's resource policy, session
//!    policies, a role's trust policy).
//! 4. **Validate** ([`Pipeline::validate`] → [`Validated`]): the door's protocol checks, then
//!    every registered [`Validate`] stage (input schemas plug in here).
//! 5. **Dispatch**: the door's handler, which only accepts a [`Validated`] request.
//!
//! Each stage's output can only be made by that stage, so a handler cannot be reached
//! without the stages before it.
//!
//! The web console's calls enter at [`Pipeline::run_as`]: its session (opened by proving
//! an access key's secret) stands in for the signature, and every stage after
//! authentication is the same as for a signed request.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use sha2::Digest;

use crate::doors::{Head, JsonDoor, LambdaDoor, QueryDoor, ServiceDoor};
use crate::routes::Service;
use crate::{access, audit, body, ApiError, ApiRequest, ApiState, Reply};

/// An input check run in the validation stage, after the door's own, for every request.
/// Checks run in order; the first error ends the request.
pub trait Validate: Send + Sync + 'static {
    /// Refuses a request whose input is not acceptable.
    fn validate(&self, request: &ApiRequest) -> Result<(), ApiError>;
}

/// A request whose caller is proven (or, for the operations that allow it, anonymous).
pub struct Authenticated(ApiRequest);

/// A request the IAM decision allowed.
pub struct Authorized(ApiRequest);

/// A request that passed every stage; the only thing a door's handler accepts.
pub struct Validated(ApiRequest);

impl Validated {
    /// The request.
    pub fn request(&self) -> &ApiRequest {
        &self.0
    }

    /// The request, by value.
    pub fn into_request(self) -> ApiRequest {
        self.0
    }
}

/// The doors every request goes through, and the validation stages after theirs.
#[derive(Clone)]
pub struct Pipeline {
    doors: Vec<Arc<dyn ServiceDoor>>,
    validators: Vec<Arc<dyn Validate>>,
}

impl Default for Pipeline {
    /// Warden's services: the JSON 1.1 doors of KMS, Secrets Manager, Route 53
    /// Resolver, CloudWatch Logs, CloudTrail and Config, Security Hub and Inspector, EC2's query dialect, IAM and STS, and Lambda (which takes every request
    /// the others leave).
    fn default() -> Self {
        Pipeline {
            doors: vec![
                Arc::new(JsonDoor::new(&crate::kms::KMS)),
                Arc::new(JsonDoor::new(&crate::secrets::SECRETS_MANAGER)),
                Arc::new(JsonDoor::new(&crate::resolver::ROUTE53_RESOLVER)),
                Arc::new(JsonDoor::new(&crate::cwlogs::LOGS)),
                Arc::new(JsonDoor::new(&crate::cloudtrail::CLOUDTRAIL)),
                Arc::new(JsonDoor::new(&crate::confighist::CONFIG)),
                Arc::new(crate::extension::ExtensionDoor),
                Arc::new(crate::ec2::Ec2Door),
                Arc::new(crate::cloudwatch::CloudWatchDoor),
                Arc::new(crate::sns::SnsDoor),
                Arc::new(crate::signer::SignerDoor),
                Arc::new(crate::posture::SecurityHubDoor),
                Arc::new(crate::inspector::InspectorDoor),
                Arc::new(QueryDoor),
                Arc::new(LambdaDoor),
            ],
            validators: Vec::new(),
        }
    }
}

impl Pipeline {
    /// Registers `door` ahead of the existing ones (the Lambda door stays the last).
    pub fn with_door(mut self, door: Arc<dyn ServiceDoor>) -> Self {
        self.doors.insert(0, door);
        self
    }

    /// Adds a validation stage after the existing ones.
    pub fn with_validator(mut self, validator: Arc<dyn Validate>) -> Self {
        self.validators.push(validator);
        self
    }

    /// Whether some door serves the service a credential scope names.
    pub fn serves(&self, signing_name: &str) -> bool {
        self.doors
            .iter()
            .any(|d| d.signing_names().contains(&signing_name))
    }

    fn door(&self, head: Head<'_>) -> Option<&dyn ServiceDoor> {
        self.doors
            .iter()
            .find(|d| d.claims(head))
            .map(|d| d.as_ref())
    }

    /// Serves one request through every stage. `service` is set to the service the request
    /// is for as soon as that is known (from its head, then from its body), so that an
    /// error is rendered in that service's protocol.
    pub(crate) async fn run(
        &self,
        state: &ApiState,
        budget: &body::BodyBudget,
        peer: SocketAddr,
        req: http::Request<Incoming>,
        service: &mut Service,
        note: &mut audit::Note,
    ) -> Result<Reply, ApiError> {
        let (parts, body) = req.into_parts();
        let claimed = warden_auth::claimed_service(&parts.headers, parts.uri.query());
        // A request signed for a service Warden does not serve is answered at once, naming
        // the service, before its body is read or its signature checked.
        if let Some(name) = claimed.as_deref() {
            if !self.serves(name) {
                *service = Service::unserved(name, &parts.headers);
                return Err(ApiError::unknown_service(name));
            }
        }
        let head = Head {
            parts: &parts,
            claimed: claimed.as_deref(),
        };
        let Some(door) = self.door(head) else {
            return Err(ApiError::unknown_operation());
        };
        *service = door.service(head);
        let operation = door.route(&parts)?;
        note.operation = Some(operation.clone());
        let request = ApiRequest {
            operation,
            parts,
            body: Bytes::new(),
            peer,
            principal: None,
            request_id: note.request_id.clone(),
        };
        let (authenticated, _reservation) = self
            .authenticate(state, budget, door, request, body, service)
            .await?;
        note.principal.clone_from(&authenticated.0.principal);
        note.body = authenticated.0.body.clone();
        let authorized = self.authorize(state, door, authenticated, note).await?;
        let validated = self.validate(door, authorized)?;
        note.service = Some(service.clone());
        state.audit.admit(note)?;
        door.dispatch(state, validated).await
    }

    /// Serves one call the web console makes for a signed-in principal: the door that
    /// serves `signing_name` routes it, then it is authorized, validated, admitted to the
    /// audit trail and dispatched exactly as a signed request from that principal would be.
    /// The console builds the request itself, so its body is already whole.
    #[allow(
        clippy::too_many_arguments,
        reason = "the same context `run` takes, plus who the session proved"
    )]
    pub(crate) async fn run_as(
        &self,
        state: &ApiState,
        principal: warden_types::identity::Principal,
        peer: SocketAddr,
        parts: http::request::Parts,
        body: Bytes,
        signing_name: &str,
        service: &mut Service,
        note: &mut audit::Note,
    ) -> Result<Reply, ApiError> {
        let head = Head {
            parts: &parts,
            claimed: Some(signing_name),
        };
        let Some(door) = self.door(head) else {
            return Err(ApiError::unknown_operation());
        };
        *service = door.service(head);
        let operation = door.route(&parts)?;
        note.operation = Some(operation.clone());
        let request = ApiRequest {
            operation,
            parts,
            body,
            peer,
            principal: Some(principal),
            request_id: note.request_id.clone(),
        };
        *service = door.service_of(&request);
        note.principal.clone_from(&request.principal);
        note.body = request.body.clone();
        let authorized = self
            .authorize(state, door, Authenticated(request), note)
            .await?;
        let validated = self.validate(door, authorized)?;
        note.service = Some(service.clone());
        state.audit.admit(note)?;
        door.dispatch(state, validated).await
    }

    /// The authentication stage; returns the request with its body, and the body's share
    /// of the memory budget (held until the request is answered).
    async fn authenticate(
        &self,
        state: &ApiState,
        budget: &body::BodyBudget,
        door: &dyn ServiceDoor,
        mut request: ApiRequest,
        body: Incoming,
        service: &mut Service,
    ) -> Result<(Authenticated, body::Reservation), ApiError> {
        let limit = door.body_limit(&request.operation);
        let name = request.operation.name().to_owned();
        let too_large = || ApiError::too_large(limit, &name);
        let declared = request
            .parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // Far beyond any limit: answer at once rather than read it.
        if declared.is_some_and(|n| n > warden_types::limits::API_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let expects_continue = request
            .parts
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        // A bearer-token door: the token alone says who is asking, before any body.
        if let Some(bearer) = door.bearer(state, &request) {
            let principal = match bearer {
                Ok(p) => p,
                Err(e) => {
                    body::discard(expects_continue, body);
                    return Err(e);
                }
            };
            let plan = body::Plan {
                limit,
                declared,
                signed: false,
            };
            let received = body::read(body, plan, budget, too_large).await?;
            request.body = received.bytes;
            request.principal = Some(principal);
            return Ok((Authenticated(request), received.reservation));
        }
        // Nothing is read (or buffered) before the headers say who is asking: an unknown
        // key, a stale or malformed signature is refused now; a request without a signature
        // must be allowed anonymously (a public resource policy) before its body is read.
        let scope = door
            .scope_known_from_head()
            .then(|| service.signing_name().to_owned());
        let pending = match access::authenticate_headers(state, &request, scope.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                body::discard(expects_continue, body);
                return Err(e);
            }
        };
        // An unsigned request may only reach the operations its door opens to anonymous
        // callers, and only if authorized now: anything else is refused before its body is
        // read. (A query request's action, and so whether IAM or STS answers, is in its
        // body: it is read within the unsigned bounds first.)
        if pending.is_none() && door.scope_known_from_head() {
            let refused = if door.anonymous_may_call(&request.operation) {
                match door.targets(state, &request, None) {
                    Ok(targets) => access::authorize(state, &request, None, targets)
                        .await
                        .err(),
                    Err(e) => Some(e),
                }
            } else {
                Some(ApiError::missing_authentication())
            };
            if let Some(e) = refused {
                body::discard(expects_continue, body);
                return Err(e);
            }
        }
        let plan = body::Plan {
            limit,
            declared,
            signed: pending.is_some(),
        };
        let received = body::read(body, plan, budget, too_large).await?;
        request.body = received.bytes;
        *service = door.service_of(&request);
        if let Some(pending) = pending {
            // Signed bodies are hashed as they arrive (`Plan::signed`).
            let sha256 = received
                .sha256
                .unwrap_or_else(|| sha2::Sha256::digest(&request.body).into());
            let proven = access::finish_authentication(
                state,
                &request,
                pending,
                &sha256,
                service.signing_name(),
            )?;
            request.principal = Some(proven.principal);
        } else if !door.anonymous_may_call(&request.operation) {
            return Err(ApiError::missing_authentication());
        }
        Ok((Authenticated(request), received.reservation))
    }

    /// The authorization stage: every target the door names for the request is decided.
    async fn authorize(
        &self,
        state: &ApiState,
        door: &dyn ServiceDoor,
        Authenticated(request): Authenticated,
        note: &mut audit::Note,
    ) -> Result<Authorized, ApiError> {
        let principal = request.principal.as_ref();
        let targets = door.targets(state, &request, principal)?;
        note.targets = targets
            .iter()
            .map(|t| (t.action.clone(), t.resource.clone()))
            .collect();
        access::authorize(state, &request, principal, targets).await?;
        Ok(Authorized(request))
    }

    /// The validation stage: the door's checks, then the registered ones.
    fn validate(
        &self,
        door: &dyn ServiceDoor,
        Authorized(request): Authorized,
    ) -> Result<Validated, ApiError> {
        door.validate(&request)?;
        for v in &self.validators {
            v.validate(&request)?;
        }
        Ok(Validated(request))
    }
}

//! The audit trail's front: every API call, of every service, allowed or refused (failed
//! authentication included), becomes a CloudTrail event in `warden-audit`'s log.
//!
//! **Who is recorded, and when.** The pipeline fills a [`Note`] as its stages pass (the
//! service and operation from the door, the caller from authentication, the resources from
//! authorization); `handle` turns the note and the outcome into a [`CloudTrailEvent`] and
//! gives it to the [`Recorder`] before the response leaves:
//! - a call that may change something (not read-only) is answered only once its event is
//!   on disk: if the event cannot be committed, the caller gets a `ServiceException`
//!   instead of the success, so no acknowledged write is missing from the trail after a
//!   crash (the change itself may have happened: a retry is safe for every idempotent
//!   write and shows as a second event);
//! - a read-only call, and any refused call, is queued before the response leaves and
//!   committed in the next batch without the caller waiting for the disk;
//! - data events (invocations, log and metric ingestion, SNS publishing, the extension
//!   relay's reads) are recorded only under `--audit-data-events`, as CloudTrail records
//!   them only for a trail configured to.
//!
//! The queue is bounded: when the disk falls behind, callers wait rather than memory
//! growing. An event's request parameters are the request's own (its JSON body, or its
//! form without `Action` and `Version`), redacted by [`warden_audit::event::redact`]; its
//! response elements are those of a successful write answered in JSON. Either, encoded,
//! larger than [`MAX_ELEMENT_BYTES`] is replaced by a note saying so.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use warden_audit::event::{
    event_time, redact, IdentityType, Resource, SessionAttributes, SessionContext, SessionIssuer,
    UserIdentity, DEFAULT_REDACTIONS, EVENT_VERSION,
};
use warden_audit::{CloudTrailEvent, EncodedEvent, Recorder};
use warden_types::identity::{Principal, PrincipalKind};

use crate::routes::{Operation, Service};
use crate::{ApiError, Reply};

/// The error codes of a call refused by authentication or authorization.
const REFUSALS: &[&str] = &[
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
];

/// The largest `requestParameters` or `responseElements`, encoded, kept in an event.
pub const MAX_ELEMENT_BYTES: usize = 100 * 1024;

/// The audit trail as the API records into it.
pub struct AuditTrail {
    recorder: Arc<Recorder>,
    store: warden_audit::Store,
    data_events: bool,
    space: Arc<Space>,
    config: Option<Arc<warden_config::ConfigStore>>,
    posture: Option<Arc<crate::posture::Posture>>,
    verifier: Option<Arc<dyn warden_audit::Verifier + Send + Sync>>,
    /// The latest verification the console ran, and the lock that runs one at a time.
    verified: Arc<tokio::sync::Mutex<Option<Verification>>>,
}

/// The shortest time between two verifications the server runs.
pub const VERIFY_INTERVAL_MS: i64 = 30_000;

/// The result of one verification of the trail, run on the server.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// When it ran (epoch ms).
    pub at_ms: i64,
    /// What it saw.
    pub report: warden_audit::Report,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail")
            .field("store", &self.store.describe())
            .field("data_events", &self.data_events)
            .finish_non_exhaustive()
    }
}

impl AuditTrail {
    /// Records through `recorder`, whose log is in `store` (read by LookupEvents);
    /// invocations and other data events only if `data_events`.
    pub fn new(recorder: Arc<Recorder>, store: warden_audit::Store, data_events: bool) -> Self {
        AuditTrail {
            recorder,
            store,
            data_events,
            space: Arc::new(Space::new(u64::MAX)),
            config: None,
            posture: None,
            verifier: None,
            verified: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Lets the server verify the trail (the console's "verify now") against the digests
    /// signed by the keys `verifier` trusts.
    pub fn with_verifier(
        mut self,
        verifier: Arc<dyn warden_audit::Verifier + Send + Sync>,
    ) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The latest verification, if one ran since the server started.
    pub async fn last_verification(&self) -> Option<Verification> {
        self.verified.lock().await.clone()
    }

    /// Verifies the whole trail now (every event, the hash chain, the Merkle tree and the
    /// signed digests in the data directory), as `warden audit verify` does without an
    /// export, and keeps the result. One verification runs at a time: a second caller
    /// waits for the first and then runs its own.
    pub async fn verify_now(&self) -> Result<Verification, ApiError> {
        let Some(verifier) = self.verifier.clone() else {
            return Err(ApiError::new(
                http::StatusCode::NOT_IMPLEMENTED,
                "UnsupportedOperationException",
                "this server was started without the audit trail's public key",
            ));
        };
        let mut last = self.verified.lock().await;
        // Verification reads the whole trail: at most one per interval, so that a caller
        // allowed to ask cannot keep a core busy with it.
        let now = warden_audit::recorder::now_ms();
        if let Some(previous) = last.as_ref() {
            let age_ms = now - previous.at_ms;
            if age_ms < VERIFY_INTERVAL_MS {
                return Err(ApiError::new(
                    http::StatusCode::TOO_MANY_REQUESTS,
                    "ThrottlingException",
                    format!(
                        "the trail was verified {} s ago; it can be verified again in {} s",
                        age_ms / 1000,
                        (VERIFY_INTERVAL_MS - age_ms + 999) / 1000
                    ),
                ));
            }
        }
        let store = self.store.clone();
        let report = tokio::task::spawn_blocking(move || {
            let reader = store.reader()?;
            reader.verify(&warden_audit::VerifyOptions {
                verifier: verifier.as_ref(),
                exported: &[],
                from_ms: None,
                to_ms: None,
            })
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        let v = Verification {
            at_ms: warden_audit::recorder::now_ms(),
            report,
        };
        *last = Some(v.clone());
        Ok(v)
    }

    /// Bounds the trail's storage to about `max_bytes` (see [`Space`]). On PostgreSQL a
    /// thread measures the tables each second, so that no request waits for the database.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.space = Arc::new(Space::new(max_bytes));
        if let warden_audit::Store::Postgres(_) = &self.store {
            self.space
                .measured_elsewhere
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let space = Arc::downgrade(&self.space);
            let store = self.store.clone();
            let spawned = std::thread::Builder::new()
                .name("audit-space".into())
                .spawn(move || {
                    while let Some(space) = space.upgrade() {
                        match store.bytes() {
                            Ok(n) => space.size.store(n, std::sync::atomic::Ordering::Relaxed),
                            Err(e) => tracing::warn!(error = %e, "cannot measure the audit trail"),
                        }
                        drop(space);
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    }
                });
            if let Err(e) = spawned {
                // Without the thread the bound is measured on the request path instead.
                tracing::warn!(error = %e, "cannot start the audit trail's measuring thread");
                self.space
                    .measured_elsewhere
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self
    }

    /// Refuses a call that may change something when the trail is full: it could not be
    /// recorded, so it must not happen. Called before the handler runs.
    pub(crate) fn admit(&self, note: &Note) -> Result<(), ApiError> {
        let class = classify(&note.event_name(), note.service.as_ref());
        if class == Class::Write && self.space.state(&self.store) == Fullness::Full {
            return Err(ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "the audit trail is full (--audit-max-mib): no change can be recorded, so none is made",
            ));
        }
        Ok(())
    }

    /// Events not recorded because the trail was over its soft bound.
    pub fn dropped(&self) -> u64 {
        self.space
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Evaluates posture controls after each change (see [`crate::posture`]).
    pub fn with_posture(mut self, posture: Arc<crate::posture::Posture>) -> Self {
        self.posture = Some(posture);
        self
    }

    /// The posture checks, if evaluated.
    pub fn posture(&self) -> Option<&Arc<crate::posture::Posture>> {
        self.posture.as_ref()
    }

    /// Keeps a configuration item of each resource a successful write changes in `store`.
    pub fn with_config_history(mut self, store: Arc<warden_config::ConfigStore>) -> Self {
        self.config = Some(store);
        self
    }

    /// The configuration history, if kept.
    pub fn config_history(&self) -> Option<&Arc<warden_config::ConfigStore>> {
        self.config.as_ref()
    }

    /// Where the trail is kept (LookupEvents reads it).
    pub fn store(&self) -> &warden_audit::Store {
        &self.store
    }

    /// Whether data events are recorded.
    pub fn data_events(&self) -> bool {
        self.data_events
    }

    /// The recorder (digests on demand).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Records the call `note` describes, answered by `outcome`. Returns the event's id
    /// when the call may have changed something and succeeded (it is durable then), and an
    /// error only when such a call's event could not be made durable: the caller must then
    /// not be told it succeeded.
    pub async fn record(
        &self,
        note: &Note,
        outcome: Outcome<'_>,
        request_id: &str,
        account: &str,
        region: &str,
    ) -> Result<Option<String>, ApiError> {
        let Some((event, wait)) =
            note.to_event(outcome, request_id, account, region, self.data_events)
        else {
            return Ok(None);
        };
        // Over the soft bound, only calls that changed something are still recorded.
        if !wait && self.space.state(&self.store) != Fullness::Room {
            self.space.drop_one();
            return Ok(None);
        }
        let encoded = match EncodedEvent::new(&event) {
            Ok(e) => e,
            Err(e) => return self.failed(wait, &event, e),
        };
        let pending = match self.recorder.submit(encoded).await {
            Ok(p) => p,
            Err(e) => return self.failed(wait, &event, e),
        };
        // Only a call that may have changed something, and did not fail, waits for the disk.
        if wait {
            if let Err(e) = pending.durable().await {
                return self.failed(wait, &event, e);
            }
            return Ok(Some(event.event_id));
        }
        Ok(None)
    }

    fn failed(
        &self,
        wait: bool,
        event: &CloudTrailEvent,
        error: warden_audit::Error,
    ) -> Result<Option<String>, ApiError> {
        tracing::error!(
            event_name = %event.event_name,
            request_id = %event.request_id,
            %error,
            "an API call could not be recorded in the audit trail"
        );
        if wait {
            return Err(ApiError::internal(format!(
                "the audit trail could not record {}: {error}",
                event.event_name
            )));
        }
        Ok(None)
    }
}

/// How full the trail's files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fullness {
    /// Under the bound: everything is recorded.
    Room,
    /// Over the bound: reads and refused calls are no longer recorded (counted instead).
    Soft,
    /// A tenth over it: calls that would change something are refused before they run.
    Full,
}

/// The storage bound of the trail: its database and write-ahead log together (on
/// PostgreSQL: its tables and indexes), measured at most once a second.
#[derive(Debug)]
struct Space {
    max_bytes: u64,
    /// Whether a thread keeps `size` up to date (rather than the callers of `state`).
    measured_elsewhere: std::sync::atomic::AtomicBool,
    size: std::sync::atomic::AtomicU64,
    checked_ms: std::sync::atomic::AtomicI64,
    dropped: std::sync::atomic::AtomicU64,
    warned_ms: std::sync::atomic::AtomicI64,
}

impl Space {
    fn new(max_bytes: u64) -> Self {
        Space {
            max_bytes,
            measured_elsewhere: std::sync::atomic::AtomicBool::new(false),
            size: std::sync::atomic::AtomicU64::new(0),
            checked_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            dropped: std::sync::atomic::AtomicU64::new(0),
            warned_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }

    fn state(&self, store: &warden_audit::Store) -> Fullness {
        use std::sync::atomic::Ordering::Relaxed;
        if self.max_bytes == u64::MAX {
            return Fullness::Room;
        }
        let now = warden_audit::recorder::now_ms();
        let last = self.checked_ms.load(Relaxed);
        if !self.measured_elsewhere.load(Relaxed)
            && now.saturating_sub(last) >= 1000
            && self
                .checked_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.size.store(store.bytes().unwrap_or(0), Relaxed);
        }
        let size = self.size.load(Relaxed);
        if size >= self.max_bytes.saturating_add(self.max_bytes / 10) {
            Fullness::Full
        } else if size >= self.max_bytes {
            Fullness::Soft
        } else {
            Fullness::Room
        }
    }

    fn drop_one(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let dropped = self.dropped.fetch_add(1, Relaxed) + 1;
        let now = warden_audit::recorder::now_ms();
        let last = self.warned_ms.load(Relaxed);
        if now.saturating_sub(last) >= 60_000
            && self
                .warned_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped,
                max_bytes = self.max_bytes,
                "the audit trail is over --audit-max-mib: reads and refused calls are no longer recorded; changes are refused at 110%"
            );
        }
    }
}

/// How a call answered.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// A response (possibly an error status a handler rendered itself).
    Replied(&'a Reply),
    /// An error, rendered after recording.
    Failed(&'a ApiError),
}

/// What the pipeline learned of a request, for its audit event.
#[derive(Debug, Default)]
pub struct Note {
    /// When the request arrived (epoch ms).
    pub time_ms: i64,
    /// The service, once its door is known.
    pub service: Option<Service>,
    /// The operation, once routed.
    pub operation: Option<Operation>,
    /// The `X-Amz-Target` or RPC v2 path's operation name, for the doors that carry it
    /// there.
    pub target: Option<String>,
    /// The path, for the rest-json services' path parameters.
    pub path: String,
    /// The query string.
    pub query: Option<String>,
    /// The caller's address.
    pub source_ip: String,
    /// The caller's `User-Agent`.
    pub user_agent: String,
    /// The access key the request was signed with, if it named one.
    pub access_key: Option<String>,
    /// Who was proven to call.
    pub principal: Option<Principal>,
    /// Whether the body is a form (the query protocol).
    pub form: bool,
    /// The body, once read.
    pub body: Bytes,
    /// The IAM actions authorization decided, each with its resource.
    pub targets: Vec<(String, String)>,
    /// The request's id (`x-amzn-RequestId`), which an invocation takes as its own.
    pub request_id: String,
}

impl Note {
    /// A note of the request whose head is `parts`, from `peer`.
    pub fn new(parts: &http::request::Parts, peer: std::net::SocketAddr) -> Note {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let target = header("x-amz-target")
            .and_then(|t| t.rsplit_once('.').map(|(_, op)| op))
            .or_else(|| {
                // Smithy RPC v2: `/service/NAME/operation/OPERATION`.
                let path = parts.uri.path();
                path.starts_with("/service/")
                    .then(|| path.rsplit_once("/operation/").map(|(_, op)| op))
                    .flatten()
            })
            .map(|t| prefix_chars(t, 128));
        let access_key = header("authorization")
            .and_then(credential_key)
            .map(str::to_owned)
            .or_else(|| {
                crate::routes::query_params(parts.uri.query())
                    .into_iter()
                    .find(|(k, _)| k == "X-Amz-Credential")
                    .and_then(|(_, v)| v.split('/').next().map(str::to_owned))
            })
            .filter(|k| k.len() <= 128 && k.bytes().all(|b| b.is_ascii_alphanumeric()));
        let form = header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        Note {
            time_ms: warden_audit::recorder::now_ms(),
            target,
            path: prefix_chars(parts.uri.path(), 1024),
            query: parts.uri.query().map(|q| prefix_chars(q, 4096)),
            source_ip: peer.ip().to_string(),
            user_agent: header("user-agent")
                .map(|ua| prefix_chars(ua, 512))
                .unwrap_or_default(),
            access_key,
            form,
            ..Note::default()
        }
    }

    /// The event's name: the API operation (a query request's `Action`).
    fn event_name(&self) -> String {
        match &self.operation {
            Some(Operation::Query) => self
                .form_params()
                .into_iter()
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v.chars().take(128).collect())
                .unwrap_or_else(|| "Unknown".to_owned()),
            Some(Operation::CloudWatch(_)) => {
                self.target.clone().unwrap_or_else(|| "Unknown".to_owned())
            }
            Some(op) => op.name().to_owned(),
            None => self.target.clone().unwrap_or_else(|| "Unknown".to_owned()),
        }
    }

    fn form_params(&self) -> Vec<(String, String)> {
        let mut params = if self.form {
            warden_identity::parse_form(&self.body)
        } else {
            Vec::new()
        };
        params.extend(crate::routes::query_params(self.query.as_deref()));
        params
    }

    fn event_source(&self) -> String {
        let name = self.service.as_ref().map_or("lambda", |s| s.signing_name());
        format!("{name}.amazonaws.com")
    }

    /// The request's parameters: its form (without `Action` and `Version`) or its JSON body,
    /// with the rest-json path's function or layer name and the query string's members.
    fn request_parameters(&self) -> Option<Value> {
        let mut map = Map::new();
        if self.form {
            for (k, v) in self.form_params() {
                if k != "Action" && k != "Version" {
                    map.insert(lower_first(&k), Value::String(v));
                }
            }
        } else {
            // An invocation's body is its payload, which is never recorded.
            let payload = matches!(
                self.operation,
                Some(
                    Operation::Invoke(_)
                        | Operation::InvokeAsync(_)
                        | Operation::InvokeWithResponseStream(_)
                )
            );
            if !self.body.is_empty() && !payload {
                match serde_json::from_slice::<Value>(&self.body) {
                    Ok(Value::Object(body)) => {
                        for (k, v) in body {
                            map.insert(lower_first(&k), v);
                        }
                    }
                    Ok(_) | Err(_) => {
                        map.insert(
                            "body".into(),
                            json!(format!("{} bytes, not a JSON object", self.body.len())),
                        );
                    }
                }
            }
            for (k, v) in crate::routes::query_params(self.query.as_deref()) {
                if !k.starts_with("X-Amz-") {
                    map.insert(lower_first(&k), Value::String(v));
                }
            }
            let segments: Vec<&str> = self.path.split('/').collect();
            for (key, name) in [("functions", "functionName"), ("layers", "layerName")] {
                if let Some(i) = segments.iter().position(|s| *s == key) {
                    if let Some(value) = segments.get(i + 1).filter(|s| !s.is_empty()) {
                        let value = percent_encoding::percent_decode_str(value)
                            .decode_utf8_lossy()
                            .into_owned();
                        map.entry(name).or_insert(Value::String(value));
                    }
                }
            }
        }
        // What a data event carries (a message, log events) is the caller's data, as an
        // invocation's payload is; an SNS confirmation token is a capability.
        map.retain(|k, _| {
            !(k == "message"
                || k == "logEvents"
                || k == "token"
                || k.starts_with("messageAttributes"))
        });
        if map.is_empty() {
            return None;
        }
        let mut value = Value::Object(map);
        redact(&mut value, DEFAULT_REDACTIONS);
        Some(bounded(value, "requestParameters"))
    }

    fn user_identity(&self, account: &str) -> UserIdentity {
        let Some(p) = &self.principal else {
            return UserIdentity {
                kind: IdentityType::Unknown,
                principal_id: None,
                arn: None,
                account_id: None,
                access_key_id: self.access_key.clone(),
                user_name: None,
                session_context: None,
                invoked_by: None,
            };
        };
        match &p.kind {
            PrincipalKind::User => UserIdentity {
                kind: IdentityType::IamUser,
                principal_id: Some(p.id.clone()),
                arn: Some(p.arn.clone()),
                account_id: Some(p.account.clone()),
                access_key_id: self.access_key.clone(),
                user_name: Some(p.name.clone()),
                session_context: None,
                invoked_by: None,
            },
            PrincipalKind::AssumedRole { role_arn, .. } => UserIdentity {
                kind: IdentityType::AssumedRole,
                principal_id: Some(p.id.clone()),
                arn: Some(p.arn.clone()),
                account_id: Some(p.account.clone()),
                access_key_id: self.access_key.clone(),
                user_name: None,
                session_context: Some(SessionContext {
                    session_issuer: Some(SessionIssuer {
                        kind: "Role".into(),
                        principal_id: p.id.split(':').next().unwrap_or_default().to_owned(),
                        arn: role_arn.clone(),
                        account_id: account.to_owned(),
                        user_name: p.name.clone(),
                    }),
                    attributes: SessionAttributes {
                        creation_date: event_time(self.time_ms),
                        mfa_authenticated: "false".into(),
                    },
                }),
                invoked_by: None,
            },
        }
    }

    /// The CloudTrail event of this call answered by `outcome`, and whether its answer
    /// must wait until it is durable; `None` for a data event when they are not recorded.
    pub fn to_event(
        &self,
        outcome: Outcome<'_>,
        request_id: &str,
        account: &str,
        region: &str,
        data_events: bool,
    ) -> Option<(CloudTrailEvent, bool)> {
        let name = self.event_name();
        let class = classify(&name, self.service.as_ref());
        if class == Class::Data && !data_events {
            return None;
        }
        let event = self.event(&name, class, outcome, request_id, account, region);
        let wait = class == Class::Write && event.error_code.is_none();
        Some((event, wait))
    }

    fn event(
        &self,
        name: &str,
        class: Class,
        outcome: Outcome<'_>,
        request_id: &str,
        account: &str,
        region: &str,
    ) -> CloudTrailEvent {
        let (error_code, error_message, response) = match outcome {
            Outcome::Failed(e) => (Some(e.code.to_owned()), Some(e.message.clone()), None),
            Outcome::Replied(r) if r.status().as_u16() >= 400 => {
                let code = r
                    .headers()
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(|t| t.split(':').next().unwrap_or(t).to_owned())
                    .unwrap_or_else(|| format!("Http{}", r.status().as_u16()));
                (Some(code), None, None)
            }
            Outcome::Replied(r) => (None, None, response_elements(class, r)),
        };
        let mut resources: Vec<Resource> = Vec::new();
        for (_, arn) in &self.targets {
            if arn.starts_with("arn:") && !resources.iter().any(|r| &r.arn == arn) {
                resources.push(Resource {
                    arn: arn.clone(),
                    account_id: arn.split(':').nth(4).unwrap_or(account).to_owned(),
                    kind: resource_type(arn),
                });
            }
        }
        // What the call was allowed: a call refused before or by authorization has none.
        let refused = matches!(outcome, Outcome::Failed(e) if REFUSALS.contains(&e.code));
        let additional_event_data = (!refused && !self.targets.is_empty()).then(|| {
            json!({
                "authorizedActions": self.targets.iter().map(|(action, resource)| {
                    json!({ "action": action, "resource": resource })
                }).collect::<Vec<_>>()
            })
        });
        let data = class == Class::Data;
        CloudTrailEvent {
            event_version: EVENT_VERSION.into(),
            user_identity: self.user_identity(account),
            event_time: event_time(self.time_ms),
            event_source: self.event_source(),
            event_name: name.to_owned(),
            aws_region: region.to_owned(),
            source_ip_address: self.source_ip.clone(),
            user_agent: self.user_agent.clone(),
            error_code,
            error_message,
            request_parameters: self.request_parameters(),
            response_elements: response,
            additional_event_data,
            request_id: request_id.to_owned(),
            event_id: uuid::Uuid::new_v4().to_string(),
            read_only: class == Class::Read,
            resources,
            event_type: "AwsApiCall".into(),
            management_event: !data,
            recipient_account_id: account.to_owned(),
            event_category: if data { "Data" } else { "Management" }.into(),
        }
    }
}

/// The kind of call, for what is recorded and what waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Reads nothing but state (CloudTrail's `readOnly: true`).
    Read,
    /// May change something.
    Write,
    /// A data event: recorded only under `--audit-data-events`.
    Data,
}

/// Classifies an operation by its name (and, for the few names two services share, the
/// service).
fn classify(name: &str, service: Option<&Service>) -> Class {
    const DATA: &[&str] = &[
        "Invoke",
        "InvokeAsync",
        "InvokeWithResponseStream",
        "PutLogEvents",
        "PutMetricData",
    ];
    if DATA.contains(&name) {
        return Class::Data;
    }
    // SNS's Publish is a data event; Lambda's PublishVersion and PublishLayerVersion are not.
    if name == "Publish" && service.map_or("lambda", Service::signing_name) == "sns" {
        return Class::Data;
    }
    const READ_PREFIXES: &[&str] = &[
        "Get", "List", "Describe", "Lookup", "Filter", "Read", "Search", "Simulate",
    ];
    const READ_NAMES: &[&str] = &[
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateRandom",
        "Verify",
        "StartQuery",
        "StopQuery",
        "BatchGetSecretValue",
    ];
    if READ_NAMES.contains(&name)
        || READ_PREFIXES.iter().any(|p| {
            name.strip_prefix(p).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
            })
        })
    {
        Class::Read
    } else {
        Class::Write
    }
}

/// A successful write's response, as CloudTrail's `responseElements`: its JSON body,
/// redacted. Reads, streams and non-JSON answers give `null`.
fn response_elements(class: Class, reply: &Reply) -> Option<Value> {
    if class != Class::Write {
        return None;
    }
    let body = reply.body().whole()?;
    if body.is_empty() || body.len() > 4 * MAX_ELEMENT_BYTES {
        return None;
    }
    let mut value: Value = serde_json::from_slice(body).ok()?;
    if !value.is_object() {
        return None;
    }
    redact(&mut value, DEFAULT_REDACTIONS);
    Some(bounded(value, "responseElements"))
}

/// `value`, or a note in its place when it encodes larger than [`MAX_ELEMENT_BYTES`].
fn bounded(value: Value, what: &str) -> Value {
    let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
    if size <= MAX_ELEMENT_BYTES {
        value
    } else {
        json!({ "omitted": format!("{what} of {size} bytes exceeded {MAX_ELEMENT_BYTES}") })
    }
}

/// `FunctionName` → `functionName`, as CloudTrail spells request members.
fn lower_first(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The access key in a SigV4 `Authorization` header (`Credential=AKID/...`).
fn credential_key(authorization: &str) -> Option<&str> {
    let (_, rest) = authorization.split_once("Credential=")?;
    rest.split('/').next()
}

/// The first `n` characters of `s` (all of it if shorter), copied once.
fn prefix_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((end, _)) => s[..end].to_owned(),
        None => s.to_owned(),
    }
}

/// A resource's CloudFormation-style type, from its ARN.
fn resource_type(arn: &str) -> String {
    let mut parts = arn.splitn(6, ':');
    let service = parts.nth(2).unwrap_or_default();
    let rest = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let kind = rest.split([':', '/']).next().unwrap_or_default();
    let service_name = match service {
        "lambda" => "Lambda",
        "iam" => "IAM",
        "sts" => "STS",
        "kms" => "KMS",
        "secretsmanager" => "SecretsManager",
        "logs" => "Logs",
        "cloudwatch" => "CloudWatch",
        "sns" => "SNS",
        "ec2" => "EC2",
        "route53resolver" => "Route53Resolver",
        "cloudtrail" => "CloudTrail",
        other => other,
    };
    let mut kind_name: String = kind.to_owned();
    if let Some(first) = kind_name.get(..1) {
        kind_name = first.to_ascii_uppercase() + kind_name.get(1..).unwrap_or_default();
    }
    if service == "sns" {
        kind_name = "Topic".into();
    }
    format!("AWS::{service_name}::{kind_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified_as_cloudtrail_does() {
        assert_eq!(classify("GetFunction", None), Class::Read);
        assert_eq!(classify("ListFunctions", None), Class::Read);
        assert_eq!(classify("Decrypt", None), Class::Read);
        assert_eq!(classify("CreateFunction", None), Class::Write);
        // A prefix only counts at a word boundary.
        assert_eq!(classify("Getaway", None), Class::Write);
        assert_eq!(classify("Invoke", None), Class::Data);
        assert_eq!(classify("Publish", Some(&Service::Sns)), Class::Data);
        assert_eq!(classify("PublishVersion", None), Class::Write);
    }

    #[test]
    fn resource_types_come_from_arns() {
        assert_eq!(
            resource_type("arn:aws:lambda:us-east-1:123456789012:function:f"),
            "AWS::Lambda::Function"
        );
        assert_eq!(
            resource_type("arn:aws:iam::123456789012:role/r"),
            "AWS::IAM::Role"
        );
        assert_eq!(
            resource_type("arn:aws:sns:us-east-1:123456789012:alerts"),
            "AWS::SNS::Topic"
        );
    }

    #[test]
    fn the_access_key_comes_from_the_credential() {
        assert_eq!(
            credential_key("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=00"),
            Some("AKIDEXAMPLE")
        );
        assert_eq!(credential_key("Bearer x"), None);
    }

    #[test]
    fn recorded_texts_are_cut_at_a_number_of_characters() {
        assert_eq!(prefix_chars("abc", 2), "ab");
        assert_eq!(prefix_chars("abc", 3), "abc");
        assert_eq!(prefix_chars("abc", 10), "abc");
        assert_eq!(prefix_chars("", 0), "");
        // Characters, not bytes: never inside a character.
        assert_eq!(prefix_chars("é€x", 2), "é€");
        assert_eq!(prefix_chars("é€x", 1), "é");
    }

    #[test]
    fn secrets_in_a_request_are_not_recorded() {
        let note = Note {
            body: Bytes::from_static(
                br#"{"FunctionName":"f","Environment":{"Variables":{"DB_PASSWORD":"hunter2"}},"Code":{"ZipFile":"UEsDBA=="}}"#,
            ),
            path: "/2015-03-31/functions".into(),
            ..Note::default()
        };
        let params = note.request_parameters().expect("parameters");
        let text = params.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("UEsDBA"), "{text}");
        assert_eq!(params["functionName"], "f");
    }

    #[test]
    fn payloads_and_messages_are_not_recorded() {
        let invoke = Note {
            operation: Some(Operation::Invoke("f".into())),
            body: Bytes::from_static(br#"{"card":"4111111111111111"}"#),
            path: "/2015-03-31/functions/f/invocations".into(),
            ..Note::default()
        };
        let params = invoke.request_parameters().expect("the function's name");
        assert_eq!(params, json!({ "functionName": "f" }));
        let publish = Note {
            operation: Some(Operation::Query),
            form: true,
            body: Bytes::from_static(
                b"Action=Publish&TopicArn=arn%3At&Message=secret&MessageAttributes.entry.1.Value.StringValue=x",
            ),
            ..Note::default()
        };
        let params = publish.request_parameters().expect("the topic");
        assert_eq!(params, json!({ "topicArn": "arn:t" }));
    }

    #[test]
    fn oversized_parameters_are_replaced_by_a_note() {
        let big = "x".repeat(MAX_ELEMENT_BYTES + 1);
        let note = Note {
            body: Bytes::from(format!(r#"{{"Description":"{big}"}}"#)),
            ..Note::default()
        };
        let params = note.request_parameters().expect("parameters");
        assert!(params["omitted"]
            .as_str()
            .is_some_and(|s| s.contains("exceeded")));
    }
}

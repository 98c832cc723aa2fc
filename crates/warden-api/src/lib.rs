//! Warden's control-plane HTTP API: Lambda's rest-json operations under their dated
//! paths, IAM and STS in the query protocol, and the JSON 1.1 protocol of `X-Amz-Target`
//! services, served on one listener, behind one request pipeline.
//!
//! Every request of every service goes through the same typed stages ([`Pipeline`]): its
//! service's door ([`doors::ServiceDoor`]) is chosen and names the operation; then
//! authentication (what the headers prove, before any of the body is read; the body read
//! within the operation's limit, a shared memory budget and deadlines (`body`); the
//! signature over its hash), authorization (the IAM decision over the targets the door
//! names), input validation, and the door's handler. Errors become AWS-shaped responses in
//! exactly one place, [`error::ApiError::render`], in the protocol of the service the
//! request is for ([`routes::Service`], decided by the pipeline as soon as it is known).
//! The listener (`server`) bounds connections and gives every connection state a deadline.
//!
//! Architecture Invariant: handlers never see hyper types other than the request parts
//! and body bytes; the engine never sees HTTP at all.
#![forbid(unsafe_code)]

pub mod access;
pub mod alarms;
mod aliases;
pub mod audit;
mod body;
mod caller;
pub mod cloudtrail;
pub mod cloudwatch;
mod cloudwatch_query;
pub mod code_signing;
pub mod confighist;
pub mod console;
mod contracts;
pub mod cwlogs;
pub mod doors;
pub mod ec2;
pub mod error;
mod extension;
mod functions;
pub mod inspector;
mod invoke;
pub mod kms;
mod layers;
pub mod pipeline;
mod policy;
pub mod posture;
mod reply;
pub mod resolver;
pub mod routes;
mod scanning;
mod scrape;
pub mod secrets;
mod server;
mod shape;
pub mod signer;
mod sns;
mod streaming;
mod tags;
pub mod url_limits;
pub use reply::{ReplyBody, StreamBroken};
mod urls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use warden_control::Control;
use warden_engine::Engine;
use warden_types::{AccountId, FunctionName, FunctionRef, Region};

pub use error::ApiError;
pub use pipeline::{Pipeline, Validate};
pub use routes::Operation;
pub use server::{
    serve, serve_metrics, serve_urls, ServeOptions, DEFAULT_BODY_MEMORY_BYTES,
    DEFAULT_HEADER_TIMEOUT, MAX_DEFAULT_CONNECTIONS, MIN_BODY_MEMORY_BYTES,
};

/// A request as the pipeline and handlers see it.
pub struct ApiRequest {
    /// The operation its door named.
    pub operation: Operation,
    /// Method, URI and headers.
    pub parts: http::request::Parts,
    /// The whole body (empty until the authentication stage has read it).
    pub body: Bytes,
    /// The client's address.
    pub peer: SocketAddr,
    /// Who signed the request; `None` only for an invocation a function policy opened to `*`.
    pub principal: Option<warden_types::identity::Principal>,
    /// The request's id (`x-amzn-RequestId`); an invocation's request id in Lambda's sense
    /// (the function's `aws_request_id`, the log frame's `RequestId`) is the same.
    pub request_id: String,
}

impl ApiRequest {
    /// The last value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        routes::query_params(self.parts.uri.query())
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Everything the handlers need.
pub struct ApiState {
    /// Invocations.
    pub engine: Engine,
    /// Every change to a function, and the reads the handlers render.
    pub control: Control,
    /// The account Warden serves.
    pub account: AccountId,
    /// The region Warden serves.
    pub region: Region,
    /// The stages every request goes through, and the services behind them.
    pub pipeline: Pipeline,
    /// Authentication and authorization of every request.
    pub access: Arc<access::Access>,
    /// Keys, and everything sealed under them.
    pub kms: warden_kms::Kms,
    /// Secrets Manager.
    pub secrets: warden_secrets::Secrets,
    /// VPCs, subnets and security groups (the EC2 API's network subset).
    pub network: warden_network::Network,
    /// Route 53 Resolver DNS Firewall: which names the functions attached to a VPC may
    /// resolve.
    pub dns_firewall: warden_dnsfw::DnsFirewall,
    /// Which VPCs and subnets have a flow log (EC2's `CreateFlowLogs`).
    pub flow_logs: warden_network::FlowLogs,
    /// Each function's and alias's input contract, checked before any event is admitted.
    pub contracts: warden_contract::store::ContractStore,
    /// Function URL configurations.
    pub urls: warden_urls::store::UrlStore,
    /// Where the URL listener serves function URLs (their host names and port).
    pub url_base: warden_urls::model::UrlBase,
    /// The rate and in-flight limits of function URLs.
    pub url_limits: url_limits::UrlLimits,
    /// The live metrics: the API counts refusals (authentication, authorization, input
    /// contracts) and asynchronous events received; the engine's observer counts the rest.
    pub metrics: Arc<warden_metrics::Metrics>,
    /// The metrics' datapoints, which CloudWatch's operations read and write.
    pub metric_store: Arc<warden_metrics::store::MetricStore>,
    /// Logs Insights results, until `GetQueryResults` reads them.
    pub log_queries: cwlogs::Queries,
    /// SNS topics and subscriptions (the deliverer is the server's).
    pub sns: warden_sns::Sns,
    /// The audit trail every call is recorded in.
    pub audit: audit::AuditTrail,
    /// Where a change of an alarm's state goes for its actions to run on some node of a
    /// cluster ([`alarms::AlarmSink`]); unset, the node that noticed the change runs them.
    pub alarm_sink: std::sync::OnceLock<Arc<dyn alarms::AlarmSink>>,
}

impl ApiState {
    /// The API over `engine` and `control`, with every cache derived from the store
    /// subscribed to the control plane's change events: the engine's registry and warm
    /// instances, its concurrency table, and the access cache of resource policies. No
    /// handler invalidates anything by hand. Called once, by the server at boot.
    #[allow(
        clippy::too_many_arguments,
        reason = "one argument per service the API serves, each named at its one call site"
    )]
    pub fn new(
        engine: Engine,
        control: Control,
        pipeline: Pipeline,
        access: access::Access,
        kms: warden_kms::Kms,
        secrets: warden_secrets::Secrets,
        network: warden_network::Network,
        dns_firewall: warden_dnsfw::DnsFirewall,
        flow_logs: warden_network::FlowLogs,
        contracts: warden_contract::store::ContractStore,
        urls: warden_urls::store::UrlStore,
        url_base: warden_urls::model::UrlBase,
        url_limits: url_limits::UrlLimitSettings,
        metrics: Arc<warden_metrics::Metrics>,
        metric_store: Arc<warden_metrics::store::MetricStore>,
        sns: warden_sns::Sns,
        audit: audit::AuditTrail,
    ) -> Self {
        let access = Arc::new(access);
        control.subscribe(Arc::new(engine.clone()));
        control.subscribe(
            Arc::clone(engine.concurrency()) as Arc<dyn warden_types::change::ChangeObserver>
        );
        control.subscribe(Arc::clone(&access) as Arc<dyn warden_types::change::ChangeObserver>);
        control.subscribe(Arc::new(ForgetDeleted {
            contracts: contracts.clone(),
            urls: urls.clone(),
        }));
        Self {
            account: control.config().account.clone(),
            region: control.config().region.clone(),
            engine,
            control,
            pipeline,
            access,
            kms,
            secrets,
            network,
            dns_firewall,
            flow_logs,
            contracts,
            urls,
            url_base,
            url_limits: url_limits::UrlLimits::new(url_limits),
            metrics,
            metric_store,
            log_queries: cwlogs::Queries::default(),
            sns,
            audit,
            alarm_sink: std::sync::OnceLock::new(),
        }
    }

    /// Counts a refused request in the security metrics and writes it to the security log:
    /// an authentication failure, or an access denial (of the function `function`, when
    /// one was named), with the code and message the caller was given and where it came
    /// from. Other refusals are neither.
    pub(crate) fn count_refusal(
        &self,
        error: &ApiError,
        function: Option<&str>,
        peer: std::net::IpAddr,
    ) {
        use warden_metrics::Counter;
        let (counter, event) = match error.code {
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "ExpiredTokenException"
            | "MissingAuthenticationTokenException" => {
                (Counter::AuthenticationFailures, "AuthenticationFailure")
            }
            "AccessDeniedException" => (Counter::AccessDenied, "AccessDenied"),
            _ => return,
        };
        self.metrics.count(counter, function, None);
        self.engine.security_log().record(serde_json::json!({
            "event": event,
            "errorCode": error.code,
            "errorMessage": error.message,
            "function": function,
            "sourceIPAddress": peer.to_string(),
        }));
    }

    /// A refusal of a function URL caller before any credential was checked (unsigned, or
    /// not allowed by the URL's policy), counted and logged as [`ApiState::count_refusal`]
    /// does.
    pub(crate) fn count_url_refusal(
        &self,
        counter: warden_metrics::Counter,
        function: &str,
        peer: std::net::IpAddr,
    ) {
        self.metrics.count(counter, Some(function), None);
        let event = match counter {
            warden_metrics::Counter::AuthenticationFailures => "AuthenticationFailure",
            _ => "AccessDenied",
        };
        self.engine.security_log().record(serde_json::json!({
            "event": event,
            "errorMessage": "a function URL refused the caller",
            "function": function,
            "sourceIPAddress": peer.to_string(),
        }));
    }

    pub(crate) fn count_contract_refusal(&self, function: &str) {
        self.contracts.record_refusal(function);
        // What the event held is not logged: it is the caller's payload.
        self.engine.security_log().record(serde_json::json!({
            "event": "InputValidationReject",
            "function": function,
        }));
        self.metrics.count(
            warden_metrics::Counter::InputValidationRejects,
            Some(function),
            None,
        );
    }

    /// Parses a function reference from a path or body, checking account and region.
    pub fn function_ref(&self, s: &str) -> Result<FunctionRef, ApiError> {
        FunctionRef::parse(s, &self.account, &self.region).map_err(ApiError::from)
    }

    /// Refuses a function, or an alias of it, that does not exist, with Lambda's 404.
    pub(crate) async fn must_exist(
        &self,
        name: &FunctionName,
        alias: Option<&str>,
    ) -> Result<(), ApiError> {
        self.control
            .get_configuration(&FunctionRef {
                name: name.clone(),
                qualifier: None,
            })
            .await?;
        if let Some(a) = alias {
            let alias =
                warden_types::AliasName::new(a).map_err(|e| ApiError::invalid(e.to_string()))?;
            self.control.get_alias(name, &alias).await?;
        }
        Ok(())
    }

    /// The ARN of a function (or of one of its versions or aliases).
    pub fn function_arn(&self, name: &FunctionName, qualifier: Option<&str>) -> String {
        warden_types::names::function_arn(&self.region, &self.account, name, qualifier)
    }
}

/// Forgets the input contracts and URLs of a deleted function or alias, so that one made
/// later under the same name inherits neither.
struct ForgetDeleted {
    contracts: warden_contract::store::ContractStore,
    urls: warden_urls::store::UrlStore,
}

impl warden_types::change::ChangeObserver for ForgetDeleted {
    fn on_change(&self, event: &warden_types::change::ChangeEvent) {
        use warden_types::change::Change;
        let function = event.function.as_str();
        let (contracts, urls) = match &event.change {
            Change::FunctionDeleted => (
                self.contracts
                    .delete_function(function)
                    .err()
                    .map(|e| e.to_string()),
                self.urls
                    .delete_function(function)
                    .err()
                    .map(|e| e.to_string()),
            ),
            Change::AliasDeleted { alias } => (
                self.contracts
                    .delete(function, alias)
                    .err()
                    .map(|e| e.to_string()),
                self.urls
                    .delete(function, Some(alias))
                    .err()
                    .map(|e| e.to_string()),
            ),
            _ => (None, None),
        };
        for error in contracts.iter().chain(&urls) {
            tracing::error!(function, %error, "could not forget a deleted function's contract or URL");
        }
    }
}

/// A response as handlers return it.
pub type Reply = Response<ReplyBody>;

async fn handle(
    shared: &Arc<server::Shared>,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Result<Reply, Infallible> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut service = routes::Service::Lambda;
    let state = &shared.state;
    // SNS's public URLs (its certificate, SubscribeURL, UnsubscribeURL) take no signature.
    let (parts, body) = req.into_parts();
    if console::claims(parts.uri.path()) {
        return Ok(console::serve(shared, peer, parts, body).await);
    }
    if let Some(reply) = sns::serve_public(state, &parts).await {
        return Ok(reply);
    }
    let mut note = audit::Note::new(&parts, peer);
    note.request_id.clone_from(&request_id);
    let req = http::Request::from_parts(parts, body);
    let result = state
        .pipeline
        .run(state, &shared.budget, peer, req, &mut service, &mut note)
        .await;
    Ok(finish(state, &mut note, result, service, &request_id, peer).await)
}

/// Records a served request in the audit trail (and, for a change, the configuration
/// history and the posture check), then renders its reply or error.
pub(crate) async fn finish(
    state: &ApiState,
    note: &mut audit::Note,
    result: Result<Reply, ApiError>,
    service: routes::Service,
    request_id: &str,
    peer: SocketAddr,
) -> Reply {
    note.service = Some(service.clone());
    let outcome = match &result {
        Ok(r) => audit::Outcome::Replied(r),
        Err(e) => audit::Outcome::Failed(e),
    };
    let recorded = state
        .audit
        .record(
            note,
            outcome,
            request_id,
            state.account.as_str(),
            state.region.as_str(),
        )
        .await;
    if let (Ok(Some(event_id)), Ok(reply)) = (&recorded, &result) {
        if let Some(store) = state.audit.config_history() {
            confighist::capture(state, store, note, event_id, reply).await;
        }
        if let Some(posture) = state.audit.posture() {
            posture.changed();
        }
    }
    let mut response = match (result, recorded) {
        (Ok(r), Ok(_)) => r,
        (Ok(_), Err(e)) => e.render(service.protocol(), request_id),
        (Err(e), _) => {
            state.count_refusal(&e, None, peer.ip());
            e.render(service.protocol(), request_id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response
            .headers_mut()
            .entry("x-amzn-requestid")
            .or_insert(v);
    }
    response
}

/// Runs a Lambda operation's handler (the Lambda door's dispatch).
pub(crate) async fn dispatch_lambda(
    state: &ApiState,
    request: ApiRequest,
) -> Result<Reply, ApiError> {
    use Operation as O;
    match request.operation.clone() {
        O::Invoke(f) => invoke::invoke(state, &request, &f).await,
        O::InvokeAsync(f) => invoke::invoke_async(state, &request, &f).await,
        O::InvokeWithResponseStream(f) => streaming::invoke(state, &request, &f).await,
        O::CreateFunction => functions::create(state, &request).await,
        O::CodeSigning(op) => code_signing::dispatch(state, &request, &op).await,
        // Served by the Signer door only.
        O::Signer(_) => Err(ApiError::unknown_operation()),
        O::ListFunctions => functions::list(state, &request).await,
        O::GetFunction(f) => functions::get(state, &request, &f, true).await,
        O::GetFunctionConfiguration(f) => functions::get(state, &request, &f, false).await,
        O::DeleteFunction(f) => functions::delete(state, &request, &f).await,
        O::UpdateFunctionCode(f) => functions::update_code(state, &request, &f).await,
        O::UpdateFunctionConfiguration(f) => {
            functions::update_configuration(state, &request, &f).await
        }
        O::PublishVersion(f) => functions::publish(state, &request, &f).await,
        O::ListVersionsByFunction(f) => functions::list_versions(state, &request, &f).await,
        O::PutFunctionConcurrency(f) => functions::put_concurrency(state, &request, &f).await,
        O::GetFunctionConcurrency(f) => functions::get_concurrency(state, &f).await,
        O::DeleteFunctionConcurrency(f) => functions::delete_concurrency(state, &request, &f).await,
        O::GetAccountSettings => functions::account_settings(state).await,
        O::CreateAlias(f) => aliases::create(state, &request, &f).await,
        O::ListAliases(f) => aliases::list(state, &request, &f).await,
        O::GetAlias(f, a) => aliases::get(state, &f, &a).await,
        O::UpdateAlias(f, a) => aliases::update(state, &request, &f, &a).await,
        O::DeleteAlias(f, a) => aliases::delete(state, &request, &f, &a).await,
        O::ReadLogs(f) => functions::read_logs(state, &request, &f).await,
        O::ReadDnsQueries(f) => functions::read_dns_queries(state, &request, &f).await,
        O::ReadFlows(f) => functions::read_flows(state, &request, &f).await,
        O::CreateFunctionUrlConfig(f) => urls::create(state, &request, &f).await,
        O::GetFunctionUrlConfig(f) => urls::get(state, &request, &f).await,
        O::UpdateFunctionUrlConfig(f) => urls::update(state, &request, &f).await,
        O::DeleteFunctionUrlConfig(f) => urls::delete(state, &request, &f).await,
        O::ListFunctionUrlConfigs(f) => urls::list(state, &request, &f).await,
        O::PutInputContract(f) => contracts::put(state, &request, &f).await,
        O::GetInputContract(f) => contracts::get(state, &request, &f).await,
        O::DeleteInputContract(f) => contracts::delete(state, &request, &f).await,
        O::ImportAdvisories => scanning::import(state, &request).await,
        O::GetAdvisoryDatabase => scanning::database(state).await,
        O::GetFunctionFindings(f) => scanning::findings(state, &request, &f).await,
        O::GetFunctionSbom(f) => scanning::sbom(state, &request, &f).await,
        O::ListFunctionFindings => scanning::list_findings(state).await,
        O::AcceptAdvisory => scanning::accept_advisory(state, &request).await,
        O::ListAcceptedAdvisories => scanning::list_accepted(state).await,
        O::RevokeAcceptedAdvisory(id) => scanning::revoke_accepted(state, &request, &id).await,
        O::AddPermission(f) => policy::add_permission(state, &request, &f).await,
        O::RemovePermission(f, sid) => policy::remove_permission(state, &request, &f, &sid).await,
        O::GetPolicy(f) => policy::get_policy(state, &request, &f).await,
        O::TagResource(arn) => tags::tag(state, &request, &arn).await,
        O::UntagResource(arn) => tags::untag(state, &request, &arn).await,
        O::ListTags(arn) => tags::list(state, &arn).await,
        O::PublishLayerVersion(l) => layers::publish(state, &request, &l).await,
        O::ListLayerVersions(l) => layers::list_versions(state, &request, &l).await,
        O::GetLayerVersion(l, v) => layers::get(state, &l, &v).await,
        O::DeleteLayerVersion(l, v) => layers::delete(state, &l, &v).await,
        O::ListLayers => layers::list_or_find(state, &request).await,
        O::AddLayerVersionPermission(l, v) => layers::add_permission(state, &request, &l, &v).await,
        O::GetLayerVersionPolicy(l, v) => layers::get_policy(state, &l, &v).await,
        O::RemoveLayerVersionPermission(l, v, sid) => {
            layers::remove_permission(state, &request, &l, &v, &sid).await
        }
        // Other doors' operations never reach Lambda's.
        O::Query | O::JsonTarget(_) | O::InvokeFunctionUrl | O::CloudWatch(_) => {
            Err(ApiError::unknown_operation())
        }
    }
}

/// IAM and STS: the identity service answers in XML; its errors are rendered by `handle`
/// like every other error.
pub(crate) fn query(state: &ApiState, request: &ApiRequest) -> Result<Reply, ApiError> {
    let principal = request
        .principal
        .as_ref()
        .ok_or_else(ApiError::missing_authentication)?;
    let params = access::query_params(request);
    let body = state.access.identity.handle_query(&params, principal)?;
    let mut r = Response::new(crate::ReplyBody::from(Bytes::from(body)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(warden_identity::CONTENT_TYPE),
    );
    Ok(r)
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut r = Response::new(crate::ReplyBody::from(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An empty response.
pub(crate) fn empty_response(status: StatusCode) -> Reply {
    let mut r = Response::new(crate::ReplyBody::empty());
    *r.status_mut() = status;
    r
}

/// Parses a JSON body into `T`, mapping failures to `InvalidRequestContentException`.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_content(format!("Could not parse request body into json: {e}")))
}

//! Amazon SNS's query API (`POST /`, signed for `sns`) over `warden_sns::Sns`, and its
//! public URLs (the signing certificate, SubscribeURL and UnsubscribeURL under
//! `/_warden/sns/`).
//!
//! Who may call what: every action is authorized with its IAM action (`sns:Publish`) on
//! the topic it names (or `*` for `ListTopics` and `ListSubscriptions`), by the caller's
//! identity policies combined with the topic's `Policy` as IAM combines a resource policy.
//! A `lambda` subscription also needs `lambda:InvokeFunction` on the function it
//! subscribes, since whoever may publish to the topic will then invoke it. The public URLs
//! are unauthenticated by design, as on AWS: the certificate is public, and a SubscribeURL's
//! token (or an UnsubscribeURL's subscription ARN, for subscriptions that allow it) is the
//! credential.
//!
//! What each can change: topics, subscriptions and queued deliveries of this account;
//! delivery itself (HTTP POSTs to subscribed endpoints, asynchronous invocations of
//! subscribed functions) is the deliverer's, which the server starts.

use http::request::Parts;
use http::{HeaderValue, StatusCode};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{BoxFuture, Head, ServiceDoor};
use crate::pipeline::Validated;
use crate::routes::{Operation, Service};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// The XML namespace of SNS's responses and errors.
pub const SNS_NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// The door of SNS's query API.
pub struct SnsDoor;

fn sns_error(e: warden_sns::SnsError) -> ApiError {
    if e.is_internal() {
        return ApiError::internal(e);
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, e.code(), e.to_string())
}

fn context(state: &ApiState, request_id: &str) -> warden_sns::query::CallContext {
    warden_sns::query::CallContext {
        account: state.account.to_string(),
        region: state.region.to_string(),
        request_id: request_id.to_owned(),
    }
}

fn action(params: &[(String, String)]) -> &str {
    params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

impl ServiceDoor for SnsDoor {
    fn signing_names(&self) -> &'static [&'static str] {
        &["sns"]
    }

    /// `/`, `GET` or `POST`, signed for `sns` (an unsigned request at `/` is IAM's door's,
    /// which refuses it as unauthenticated).
    fn claims(&self, head: Head<'_>) -> bool {
        head.claimed == Some("sns")
            && head.parts.uri.path() == "/"
            && matches!(head.parts.method, http::Method::GET | http::Method::POST)
    }

    fn route(&self, _parts: &Parts) -> Result<Operation, ApiError> {
        Ok(Operation::Query)
    }

    fn service(&self, _head: Head<'_>) -> Service {
        Service::Sns
    }

    fn service_of(&self, _request: &ApiRequest) -> Service {
        Service::Sns
    }

    fn targets(
        &self,
        state: &ApiState,
        request: &ApiRequest,
        _principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        let params = crate::access::query_params(request);
        let name = action(&params);
        let ctx = context(state, "");
        let granted = warden_sns::query::authorization(name, &params, &ctx).map_err(sns_error)?;
        let policy = if granted.resource == "*" {
            None
        } else {
            state
                .sns
                .topic_policy(&granted.resource)
                .map_err(sns_error)?
                .and_then(|text| {
                    warden_iam::Policy::parse_as(&text, warden_iam::PolicyKind::Resource).ok()
                })
                .map(std::sync::Arc::new)
        };
        let mut targets = vec![Target {
            action: granted.iam_action.to_owned(),
            resource: granted.resource,
            policy,
            ..Target::default()
        }];
        // Subscribing a function lets every publisher invoke it.
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if name == "Subscribe" && param("Protocol") == Some("lambda") {
            let endpoint = param("Endpoint").unwrap_or("");
            let function = state.function_ref(endpoint)?;
            targets.push(Target {
                action: "lambda:InvokeFunction".into(),
                resource: endpoint.to_owned(),
                function: Some(function.name),
                ..Target::default()
            });
        }
        Ok(targets)
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(async move {
            let request = request.into_request();
            let params = crate::access::query_params(&request);
            let request_id = uuid::Uuid::new_v4().to_string();
            let ctx = context(state, &request_id);
            let sns = state.sns.clone();
            let xml = tokio::task::spawn_blocking(move || {
                let name = action(&params).to_owned();
                sns.handle(&ctx, &name, &params)
            })
            .await
            .map_err(|e| ApiError::internal(format!("an SNS task failed: {e}")))?
            .map_err(sns_error)?;
            Ok(xml_reply(StatusCode::OK, "text/xml", xml))
        })
    }
}

fn xml_reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut r = http::Response::new(crate::ReplyBody::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// Answers an unauthenticated `GET` under SNS's public path: the signing certificate, a
/// SubscribeURL or an UnsubscribeURL. `None` for any other path.
pub(crate) async fn serve_public(state: &ApiState, parts: &Parts) -> Option<Reply> {
    let rest = parts
        .uri
        .path()
        .strip_prefix(state.sns.base_path())?
        .to_owned();
    if parts.method != http::Method::GET {
        return Some(xml_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "SNS's public URLs answer GET only".into(),
        ));
    }
    let query = crate::routes::query_params(parts.uri.query());
    let request_id = uuid::Uuid::new_v4().to_string();
    let sns = state.sns.clone();
    let answer =
        tokio::task::spawn_blocking(move || sns.serve_public(&rest, &query, &request_id)).await;
    Some(match answer {
        Ok(Ok(r)) => xml_reply(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK),
            r.content_type,
            r.body,
        ),
        Ok(Err(e)) => {
            let request_id = uuid::Uuid::new_v4().to_string();
            xml_reply(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                "text/xml",
                e.to_xml(&request_id),
            )
        }
        Err(e) => crate::ApiError::internal(format!("an SNS task failed: {e}"))
            .render(Service::Sns.protocol(), "-"),
    })
}

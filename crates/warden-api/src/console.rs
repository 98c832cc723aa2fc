//! The web console's HTTP side, under `/console/` on the API listener.
//!
//! **Who may call what.** Anyone may load the sign-in page and the console's own style
//! sheet and script. Signing in proves an IAM user's long-term access key and secret
//! (temporary credentials are refused: a console session outliving them would extend
//! them); it opens a session whose token travels only in an `HttpOnly`,
//! `SameSite=Strict` cookie. Every other page needs that session, and the principal is
//! looked up from the key on every request, so deactivating or deleting the key ends the
//! session at once. Each call a page makes goes through [`Pipeline::run_as`]: the same
//! door, authorization, validation, audit record and handler as the same call from the
//! AWS CLI, for the session's principal; a call it may not make shows its refusal on
//! the page. Every change (a `POST`) must carry the session's CSRF token, and a
//! cross-origin `Origin` is refused, sign-in included.
//!
//! **Live updates** are server-sent events, authorized again on every tick (the same
//! IAM decision as `ListFunctions`, `GetFunction` and `GetMetricData`) but not recorded
//! as API calls, since they read the live counters, not the API. At most
//! [`MAX_LIVE_STREAMS`] streams are open at once and each ends after
//! [`LIVE_STREAM_LIFETIME`] (the browser reconnects); a stream produces its next event
//! only once the previous one was taken, so a slow reader holds one event, not a queue.
//!
//! [`Pipeline::run_as`]: crate::Pipeline

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::{json, Value};
use warden_console::session::{self, Session, Sessions};
use warden_console::view::{self, FunctionPage, FunctionRow, Outcome, RoleRow, Who};
use warden_console::{metrics, CallError, Fetched};
use warden_types::identity::{CredentialSource as _, Principal};

use crate::access::Target;
use crate::server::Shared;
use crate::{audit, body, routes, ApiError, ApiRequest, Operation, Reply, ReplyBody};

/// How long a console session lasts unless `warden serve --console-session-ttl` says.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(3_600);
/// The largest form a page posts (an invocation's payload is the large one).
pub const FORM_LIMIT: usize = 1024 * 1024;
/// The most live-update streams open at once, across all sessions.
pub const MAX_LIVE_STREAMS: usize = 32;
/// The most live-update streams one session may hold (a few tabs' worth), so that one
/// user cannot take every stream.
pub const MAX_LIVE_PER_SESSION: usize = 8;
/// How long one live-update stream lasts before the browser must reconnect.
pub const LIVE_STREAM_LIFETIME: Duration = Duration::from_secs(600);
/// How long a one-time sign-in link (`warden console`) stays usable.
pub const LINK_TTL: Duration = Duration::from_secs(60);
/// The most unused sign-in links kept at once.
const MAX_LINKS: usize = 64;
/// How often the functions page's live numbers are sent.
const ROWS_TICK: Duration = Duration::from_secs(2);
/// How often a function page's charts are redrawn (they change once a minute).
const CHARTS_TICK: Duration = Duration::from_secs(10);
/// The window of the live numbers.
const LIVE_WINDOW: Duration = Duration::from_secs(60);
/// The charts' range.
const CHART_RANGE_S: i64 = 3_600;
/// At most this many functions are listed (`ListFunctions` pages of 50).
const MAX_LISTED: usize = 10_000;

/// The console's state: its sessions and open streams.
#[derive(Debug)]
pub struct Console {
    enabled: bool,
    sessions: Sessions,
    /// One-time sign-in links (`warden console`): the token's SHA-256 → the access key
    /// that asked for it and when it expires.
    links: std::sync::Mutex<HashMap<[u8; 32], (String, Instant)>>,
    live: Arc<LiveStreams>,
}

impl Console {
    /// A console whose sessions last `ttl`; `enabled: false` answers every console path
    /// with 404.
    pub fn new(ttl: Duration, enabled: bool) -> Self {
        Self {
            enabled,
            links: std::sync::Mutex::new(HashMap::new()),
            sessions: Sessions::new(ttl),
            live: Arc::new(LiveStreams::default()),
        }
    }
}

/// Whether `path` is the console's.
pub(crate) fn claims(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// A signed-in request's session and principal.
struct Signed {
    token: String,
    session: Session,
    principal: Principal,
}

/// Serves one console request.
pub(crate) async fn serve(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    parts: http::request::Parts,
    body: Incoming,
) -> Reply {
    let mut reply = if shared.console.enabled {
        route(shared, peer, &parts, body).await
    } else {
        body::discard(false, body);
        refusal(
            StatusCode::NOT_FOUND,
            None,
            "No console",
            "This server does not serve the console (`warden serve --console off`).",
        )
    };
    for (name, value) in warden_console::SECURITY_HEADERS {
        reply
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    reply
}

fn html(status: StatusCode, page: String) -> Reply {
    let mut r = Reply::new(ReplyBody::from(page));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn redirect(to: &str) -> Reply {
    let mut r = Reply::new(ReplyBody::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn refusal(status: StatusCode, who: Option<&Who<'_>>, title: &str, text: &str) -> Reply {
    html(status, view::message(who, title, text))
}

fn signed_in(shared: &Shared, parts: &http::request::Parts) -> Option<Signed> {
    let token = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::token_from_cookie_header)?
        .to_owned();
    let session = shared.console.sessions.find(&token, Instant::now())?;
    // The key is looked up each time: a key deactivated or deleted since sign-in ends
    // the session now.
    let Some(credential) = shared.state.access.identity.lookup(&session.access_key_id) else {
        shared.console.sessions.close(&token);
        return None;
    };
    Some(Signed {
        token,
        session,
        principal: credential.principal,
    })
}

async fn route(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: Incoming,
) -> Reply {
    let path = parts.uri.path();
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    let post = parts.method == Method::POST;
    if get {
        if let Some(name) = path.strip_prefix("/console/assets/") {
            return asset(name);
        }
        if path == "/console/sign-in" {
            return html(StatusCode::OK, view::sign_in(None));
        }
    }
    if post && path == "/console/sign-in" {
        return sign_in(shared, peer, parts, body).await;
    }
    if post && path == "/console/link" {
        return mint_link(shared, peer, parts, body).await;
    }
    if path == "/console/sign-in/link" {
        if get {
            return link_page(shared, parts);
        }
        if post {
            return link_sign_in(shared, peer, parts, body).await;
        }
    }
    let Some(signed) = signed_in(shared, parts) else {
        body::discard(false, body);
        return if get && !path.starts_with("/console/live/") {
            redirect("/console/sign-in")
        } else {
            refusal(
                StatusCode::UNAUTHORIZED,
                None,
                "Signed out",
                "Sign in first: the session is missing, expired or was ended.",
            )
        };
    };
    let who = Who {
        arn: &signed.principal.arn,
        csrf: &signed.session.csrf,
    };
    let caller = Caller {
        shared,
        signed: &signed,
        peer,
    };
    let segments: Vec<String> = path
        .trim_start_matches("/console")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query = routes::query_params(parts.uri.query());
    let param = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if get {
        return match segments.as_slice() {
            [] => redirect("/console/functions"),
            ["functions"] => functions_page(&caller, &who).await,
            ["functions", name] => {
                let page = function_page(&caller, name, &param("filter"), None).await;
                html(StatusCode::OK, view::function(&who, &page))
            }
            ["alarms"] => alarms_page(&caller, &who).await,
            ["findings"] => findings_page(&caller, &who).await,
            ["audit"] => audit_page(&caller, &who, &param("key"), &param("value")).await,
            ["iam"] => iam_page(&caller, &who).await,
            ["live", "functions"] => live_rows(shared, &signed, peer),
            ["live", "functions", name] => live_charts(shared, &signed, peer, name),
            ["live", "logs", name] => {
                let since = param("since").parse().unwrap_or(0);
                live_logs(shared, &signed, peer, name, param("filter"), since)
            }
            _ => refusal(
                StatusCode::NOT_FOUND,
                Some(&who),
                "Not found",
                "No such page.",
            ),
        };
    }
    if !post {
        body::discard(false, body);
        return refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            Some(&who),
            "Not allowed",
            "The console takes GET and POST only.",
        );
    }
    let (form, _reservation) = match change_form(shared, parts, body, Some(&signed.session)).await {
        Ok(f) => f,
        Err((status, text)) => return refusal(status, Some(&who), "Refused", &text),
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    match segments.as_slice() {
        ["sign-out"] => {
            shared.console.sessions.close(&signed.token);
            let mut r = redirect("/console/sign-in");
            if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        ["functions", name, action] => {
            let outcome = function_action(&caller, name, action, &field).await;
            let Some(outcome) = outcome else {
                return refusal(
                    StatusCode::NOT_FOUND,
                    Some(&who),
                    "Not found",
                    "No such action.",
                );
            };
            let (outcome, status) = outcome;
            let page = function_page(&caller, name, "", Some(outcome)).await;
            html(status, view::function(&who, &page))
        }
        ["alarms", "actions"] => {
            let target = if field("enable") == "true" {
                "EnableAlarmActions"
            } else {
                "DisableAlarmActions"
            };
            let body = json!({ "AlarmNames": [field("alarm")] });
            match caller.cloudwatch(target, &body).await {
                Ok(_) => redirect("/console/alarms"),
                Err(e) => refusal(status_of(&e), Some(&who), target, &e.to_string()),
            }
        }
        ["audit", "verify"] => {
            // Verification reads the whole trail: allowed to whoever may read the trail's
            // status, decided as `GetTrailStatus` is.
            let trail = format!(
                "arn:aws:cloudtrail:{}:{}:trail/warden",
                shared.state.region.as_str(),
                shared.state.account.as_str()
            );
            let target = Target {
                action: "cloudtrail:GetTrailStatus".into(),
                resource: trail,
                ..Target::default()
            };
            if let Err(e) = authorize_as(shared, &signed.principal, peer, vec![target]).await {
                return refusal(
                    e.status,
                    Some(&who),
                    "Verify the trail",
                    &format!("{}: {}", e.code, e.message),
                );
            }
            match shared.state.audit.verify_now().await {
                Ok(_) => redirect("/console/audit"),
                Err(e) => refusal(e.status, Some(&who), "Verify the trail", &e.message),
            }
        }
        ["findings", "suppress"] => {
            let body = json!({
                "FindingIdentifiers": [{ "Id": field("id"), "ProductArn": field("product") }],
                "Workflow": { "Status": "SUPPRESSED" },
                "Note": { "Text": field("reason"), "UpdatedBy": signed.principal.arn },
            });
            let done = caller
                .call_json(
                    "securityhub",
                    Method::PATCH,
                    "/findings/batchupdate",
                    None,
                    &body,
                )
                .await;
            match done {
                Ok(v)
                    if v["UnprocessedFindings"]
                        .as_array()
                        .is_none_or(Vec::is_empty) =>
                {
                    redirect("/console/findings")
                }
                Ok(v) => refusal(
                    StatusCode::BAD_REQUEST,
                    Some(&who),
                    "BatchUpdateFindings",
                    &v["UnprocessedFindings"].to_string(),
                ),
                Err(e) => refusal(
                    status_of(&e),
                    Some(&who),
                    "BatchUpdateFindings",
                    &e.to_string(),
                ),
            }
        }
        _ => refusal(
            StatusCode::NOT_FOUND,
            Some(&who),
            "Not found",
            "No such action.",
        ),
    }
}

fn status_of(e: &CallError) -> StatusCode {
    StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST)
}

fn asset(name: &str) -> Reply {
    let Some((text, content_type)) = warden_console::assets::asset(name) else {
        return refusal(StatusCode::NOT_FOUND, None, "Not found", "No such asset.");
    };
    let mut r = Reply::new(ReplyBody::from(Bytes::from_static(text.as_bytes())));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Reads a posted form after the checks every change passes: a same-origin `Origin`
/// (when the browser sends one), a form body within [`FORM_LIMIT`], and, for a
/// signed-in session, its CSRF token. The form comes with its share of the body-memory
/// budget, to hold until the change is answered.
async fn change_form(
    shared: &Shared,
    parts: &http::request::Parts,
    body: Incoming,
    session: Option<&Session>,
) -> Result<(Vec<(String, String)>, body::Reservation), (StatusCode, String)> {
    let header = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let (Some(origin), Some(host)) = (header(header::ORIGIN), header(header::HOST)) {
        let same = origin
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host);
        if !same {
            body::discard(false, body);
            return Err((
                StatusCode::FORBIDDEN,
                "Refused a change sent from another origin.".into(),
            ));
        }
    }
    let form_type = header(header::CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        body::discard(false, body);
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "A change is posted as application/x-www-form-urlencoded.".into(),
        ));
    }
    let declared = header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let plan = body::Plan {
        limit: FORM_LIMIT,
        declared,
        signed: false,
    };
    let received = body::read(body, plan, &shared.budget, || {
        ApiError::too_large(FORM_LIMIT, "console form")
    })
    .await
    .map_err(|e| (e.status, e.message))?;
    let text = std::str::from_utf8(&received.bytes)
        .map_err(|_| (StatusCode::BAD_REQUEST, "The form is not UTF-8.".to_owned()))?;
    let form = routes::query_params(Some(text));
    if let Some(session) = session {
        let given = form
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !session::csrf_matches(session, given) {
            return Err((
                StatusCode::FORBIDDEN,
                "The form's CSRF token is missing or is not this session's: reload the page and try again.".into(),
            ));
        }
    }
    Ok((form, received.reservation))
}

async fn sign_in(
    shared: &Shared,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: Incoming,
) -> Reply {
    let (form, _reservation) = match change_form(shared, parts, body, None).await {
        Ok(f) => f,
        Err((status, text)) => return html(status, view::sign_in(Some(&text))),
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let key = field("access_key_id").trim();
    let secret = field("secret_access_key");
    let credential = shared.state.access.identity.lookup(key);
    let proven = credential.as_ref().is_some_and(|c| {
        let a: [u8; 32] =
            <sha2::Sha256 as sha2::Digest>::digest(c.secret_access_key.as_bytes()).into();
        let b: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()).into();
        a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    let Some(credential) = credential.filter(|_| proven) else {
        let error = ApiError::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "console sign-in: the access key or secret is wrong",
        );
        shared.state.count_refusal(&error, None, peer.ip());
        record_sign_in(shared, peer, parts, key, None, Err(&error)).await;
        return html(
            StatusCode::FORBIDDEN,
            view::sign_in(Some("The access key ID or secret access key is wrong.")),
        );
    };
    if credential.session_token.is_some() {
        let error = ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "console sign-in: temporary credentials cannot open a console session",
        );
        record_sign_in(
            shared,
            peer,
            parts,
            key,
            Some(&credential.principal),
            Err(&error),
        )
        .await;
        return html(
            StatusCode::FORBIDDEN,
            view::sign_in(Some(
                "Temporary credentials cannot open a console session: sign in with an IAM user's access key.",
            )),
        );
    }
    open_session(shared, peer, parts, key, &credential.principal).await
}

fn token_key(token: &str) -> [u8; 32] {
    <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into()
}

fn lock_links(
    console: &Console,
) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (String, Instant)>> {
    console
        .links
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `POST /console/link` (what `warden console` calls): a SigV4-signed request, verified
/// as the API verifies any, gets a one-time sign-in link for the key that signed it,
/// usable for [`LINK_TTL`]. It grants nothing the key does not have: the session it opens
/// is that key's. Temporary credentials get none.
async fn mint_link(
    shared: &Shared,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: Incoming,
) -> Reply {
    let request_id = uuid::Uuid::new_v4().to_string();
    let protocol = routes::Service::Lambda.protocol();
    let refuse = |e: ApiError| {
        shared.state.count_refusal(&e, None, peer.ip());
        e.render(protocol, &request_id)
    };
    let request = ApiRequest {
        operation: Operation::ListFunctions,
        parts: parts.clone(),
        body: Bytes::new(),
        peer,
        principal: None,
        request_id: request_id.clone(),
    };
    let pending = match crate::access::authenticate_headers(&shared.state, &request, Some("lambda"))
    {
        Ok(Some(p)) => p,
        Ok(None) => {
            body::discard(false, body);
            return refuse(ApiError::missing_authentication());
        }
        Err(e) => {
            body::discard(false, body);
            return refuse(e);
        }
    };
    let plan = body::Plan {
        limit: 1024,
        declared: parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
        signed: true,
    };
    let received = match body::read(body, plan, &shared.budget, || {
        ApiError::too_large(1024, "console link")
    })
    .await
    {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    let sha256 = received
        .sha256
        .unwrap_or_else(|| <sha2::Sha256 as sha2::Digest>::digest(&received.bytes).into());
    let proven = match crate::access::finish_authentication(
        &shared.state,
        &request,
        pending,
        &sha256,
        "lambda",
    ) {
        Ok(p) => p,
        Err(e) => return refuse(e),
    };
    let temporary = shared
        .state
        .access
        .identity
        .lookup(&proven.access_key_id)
        .is_none_or(|c| c.session_token.is_some());
    if temporary {
        return refuse(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "temporary credentials cannot open a console session: sign with an IAM user's access key",
        ));
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let now = Instant::now();
    {
        let mut links = lock_links(&shared.console);
        links.retain(|_, (_, expires)| *expires > now);
        if links.len() >= MAX_LINKS {
            return refuse(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                format!("{MAX_LINKS} sign-in links are waiting to be used; try again in a minute"),
            ));
        }
        links.insert(
            token_key(&token),
            (proven.access_key_id.clone(), now + LINK_TTL),
        );
    }
    tracing::info!(principal = %proven.principal.arn, %peer, "console sign-in link issued");
    let out = json!({
        "SignInPath": format!("/console/sign-in/link?token={token}"),
        "ExpiresInSeconds": LINK_TTL.as_secs(),
        "Principal": proven.principal.arn,
    });
    let mut r = Reply::new(ReplyBody::from(out.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The page a sign-in link opens: it signs in only when its button is pressed (a form
/// post, same-origin), so a link loaded by another site's page signs no one in.
fn link_page(shared: &Shared, parts: &http::request::Parts) -> Reply {
    let token = routes::query_params(parts.uri.query())
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let now = Instant::now();
    let key = lock_links(&shared.console)
        .get(&token_key(&token))
        .filter(|(_, expires)| *expires > now)
        .map(|(key, _)| key.clone());
    let who = key
        .and_then(|key| shared.state.access.identity.lookup(&key))
        .map(|c| c.principal.arn);
    match who {
        Some(arn) => html(StatusCode::OK, view::link(&token, &arn)),
        None => html(
            StatusCode::FORBIDDEN,
            view::sign_in(Some(
                "This sign-in link is unknown, used or expired: run `warden console` again.",
            )),
        ),
    }
}

/// Uses a sign-in link: once, within its lifetime, for the key that asked for it.
async fn link_sign_in(
    shared: &Shared,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: Incoming,
) -> Reply {
    let (form, _reservation) = match change_form(shared, parts, body, None).await {
        Ok(f) => f,
        Err((status, text)) => return html(status, view::sign_in(Some(&text))),
    };
    let token = form
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let now = Instant::now();
    let key = lock_links(&shared.console)
        .remove(&token_key(token))
        .filter(|(_, expires)| *expires > now)
        .map(|(key, _)| key);
    let credential = key
        .as_deref()
        .and_then(|k| shared.state.access.identity.lookup(k));
    let (Some(key), Some(credential)) = (key, credential) else {
        let error = ApiError::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "console sign-in: the sign-in link is unknown, used or expired",
        );
        shared.state.count_refusal(&error, None, peer.ip());
        record_sign_in(shared, peer, parts, "", None, Err(&error)).await;
        return html(
            StatusCode::FORBIDDEN,
            view::sign_in(Some(
                "This sign-in link is unknown, used or expired: run `warden console` again.",
            )),
        );
    };
    open_session(shared, peer, parts, &key, &credential.principal).await
}

/// Opens a session for `key` (whose proof the caller checked): the cookie, and the way to
/// the functions page; recorded as a `ConsoleLogin`.
async fn open_session(
    shared: &Shared,
    peer: SocketAddr,
    parts: &http::request::Parts,
    key: &str,
    principal: &Principal,
) -> Reply {
    let opened = shared.console.sessions.open(key, Instant::now());
    tracing::info!(principal = %principal.arn, %peer, "console sign-in");
    let mut r = redirect("/console/functions");
    record_sign_in(shared, peer, parts, key, Some(principal), Ok(&r)).await;
    let cookie = session::set_cookie(&opened.token, shared.console.sessions.ttl(), false);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Records a sign-in, successful or not, in the audit trail as CloudTrail records one:
/// `ConsoleLogin` from `signin.amazonaws.com`, with the key and (when it was proven) the
/// principal; never the secret.
async fn record_sign_in(
    shared: &Shared,
    peer: SocketAddr,
    parts: &http::request::Parts,
    key: &str,
    principal: Option<&Principal>,
    outcome: Result<&Reply, &ApiError>,
) {
    let state = &shared.state;
    let mut note = audit::Note::new(parts, peer);
    note.target = Some("ConsoleLogin".to_owned());
    note.service = Some(routes::Service::unserved("signin", &parts.headers));
    note.form = false;
    note.access_key = (key.len() <= 128 && key.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| key.to_owned());
    note.principal = principal.cloned();
    let outcome = match outcome {
        Ok(reply) => audit::Outcome::Replied(reply),
        Err(error) => audit::Outcome::Failed(error),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    if let Err(e) = state
        .audit
        .record(
            &note,
            outcome,
            &request_id,
            state.account.as_str(),
            state.region.as_str(),
        )
        .await
    {
        tracing::warn!(error = %e.message, "a console sign-in could not be recorded");
    }
}

/// The content types of the JSON protocols with `X-Amz-Target`.
const JSON_1_0: &str = "application/x-amz-json-1.0";
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// The headers of a JSON-protocol call: its content type and target.
fn json_headers<'a>(content_type: &'a str, target: &'a str) -> [(&'a str, &'a str); 2] {
    [("content-type", content_type), ("x-amz-target", target)]
}

/// CloudWatch's `X-Amz-Target` for `operation`.
fn cloudwatch_target(operation: &str) -> String {
    format!("GraniteServiceVersion20100801.{operation}")
}

/// Makes API calls for the signed-in principal.
struct Caller<'a> {
    shared: &'a Arc<Shared>,
    signed: &'a Signed,
    peer: SocketAddr,
}

fn call_error(status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> CallError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = headers
        .get("x-amzn-errortype")
        .and_then(|h| h.to_str().ok())
        .map(|c| c.split(':').next().unwrap_or(c).to_owned())
        .or_else(|| {
            v["__type"]
                .as_str()
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        })
        .or_else(|| v["Type"].as_str().map(str::to_owned))
        .or_else(|| xml_text(body, "Code"))
        .unwrap_or_else(|| status.as_str().to_owned());
    let message = v["message"]
        .as_str()
        .or_else(|| v["Message"].as_str())
        .map(str::to_owned)
        .or_else(|| xml_text(body, "Message"))
        .unwrap_or_default();
    CallError {
        status: status.as_u16(),
        code,
        message,
    }
}

/// The text of the first `<tag>` element of an XML response (the query protocol's
/// errors), if any, found in its [`xml_json`] reading.
fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    fn find(v: &Value, tag: &str) -> Option<String> {
        match v {
            Value::Object(map) => map.iter().find_map(|(k, child)| match child {
                Value::String(text) if k == tag => Some(text.clone()),
                other => find(other, tag),
            }),
            Value::Array(items) => items.iter().find_map(|item| find(item, tag)),
            _ => None,
        }
    }
    find(&xml_json(body), tag)
}

/// An XML document (the query protocols' responses: IAM's and EC2's) as JSON: an element
/// with only text is a string, one whose children are all `item` or `member` is an
/// array, any other an object by child name. Entity references are resolved; a
/// malformed document gives what was read before the error.
fn xml_json(body: &[u8]) -> Value {
    use quick_xml::events::Event;
    struct Open {
        name: String,
        children: Vec<(String, Value)>,
        text: String,
    }
    fn close(open: Open) -> (String, Value) {
        let value = if open.children.is_empty() {
            Value::String(open.text.trim().to_owned())
        } else if open
            .children
            .iter()
            .all(|(n, _)| n == "item" || n == "member")
        {
            Value::Array(open.children.into_iter().map(|(_, v)| v).collect())
        } else {
            Value::Object(open.children.into_iter().collect())
        };
        (open.name, value)
    }
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack = vec![Open {
        name: String::new(),
        children: Vec::new(),
        text: String::new(),
    }];
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => stack.push(Open {
                name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                children: Vec::new(),
                text: String::new(),
            }),
            Ok(Event::Empty(e)) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    top.children.push((name, Value::String(String::new())));
                }
            }
            Ok(Event::Text(t)) => {
                if let (Some(top), Ok(text)) = (stack.last_mut(), t.decode()) {
                    top.text.push_str(&text);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(ch)) => Some(ch),
                    _ => match &r[..] {
                        b"amp" => Some('&'),
                        b"lt" => Some('<'),
                        b"gt" => Some('>'),
                        b"quot" => Some('"'),
                        b"apos" => Some('\''),
                        _ => None,
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.extend(resolved);
                }
            }
            Ok(Event::End(_)) if stack.len() > 1 => {
                if let Some(open) = stack.pop() {
                    let closed = close(open);
                    if let Some(top) = stack.last_mut() {
                        top.children.push(closed);
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    while stack.len() > 1 {
        if let Some(open) = stack.pop() {
            let closed = close(open);
            if let Some(top) = stack.last_mut() {
                top.children.push(closed);
            }
        }
    }
    stack.pop().map(|root| close(root).1).unwrap_or(Value::Null)
}

/// Whether a call the console makes is recorded in the audit trail: a page's calls are,
/// a live view's repeated reads are not (they would fill the trail with a tick's worth of
/// reads every few seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Yes,
    No,
}

/// One call through the pipeline as `principal` (signed in with `access_key_id`): the
/// response's head and body on success.
#[allow(
    clippy::too_many_arguments,
    reason = "a request's parts, who makes it and whether it is recorded"
)]
async fn pipeline_call(
    shared: &Shared,
    principal: &Principal,
    access_key_id: &str,
    peer: SocketAddr,
    request: (&str, Method, &str, &[(&str, &str)]),
    body: Bytes,
    record: Record,
) -> Result<(http::response::Parts, Bytes), CallError> {
    let (signing_name, method, uri, headers) = request;
    let internal = |message: String| CallError {
        status: 500,
        code: "ServiceException".into(),
        message,
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "console.warden")
        .header(header::USER_AGENT, "warden-console");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let (parts, ()) = builder
        .body(())
        .map_err(|e| internal(e.to_string()))?
        .into_parts();
    let state = &shared.state;
    let mut note = audit::Note::new(&parts, peer);
    note.request_id = uuid::Uuid::new_v4().to_string();
    note.access_key = Some(access_key_id.to_owned());
    let mut service = routes::Service::Lambda;
    let result = state
        .pipeline
        .run_as(
            state,
            principal.clone(),
            peer,
            parts,
            body,
            signing_name,
            &mut service,
            &mut note,
        )
        .await;
    let reply = match record {
        Record::Yes => {
            let request_id = note.request_id.clone();
            crate::finish(state, &mut note, result, service, &request_id, peer).await
        }
        Record::No => result.map_err(|e| CallError {
            status: e.status.as_u16(),
            code: e.code.to_owned(),
            message: e.message,
        })?,
    };
    let (parts, body) = reply.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|_| internal("the response broke off".into()))?
        .to_bytes();
    if parts.status.is_success() {
        Ok((parts, bytes))
    } else {
        Err(call_error(parts.status, &parts.headers, &bytes))
    }
}

impl Caller<'_> {
    /// One call through the pipeline, as the session's principal, recorded in the audit
    /// trail; the response's body on success.
    async fn call(
        &self,
        signing_name: &str,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(http::response::Parts, Bytes), CallError> {
        pipeline_call(
            self.shared,
            &self.signed.principal,
            &self.signed.session.access_key_id,
            self.peer,
            (signing_name, method, uri, headers),
            body,
            Record::Yes,
        )
        .await
    }

    /// A rest-json call (Lambda, Security Hub, Inspector): the response's JSON (`Null`
    /// for an empty body).
    async fn call_json(
        &self,
        signing_name: &str,
        method: Method,
        uri: &str,
        target: Option<&str>,
        body: &Value,
    ) -> Fetched {
        let bytes = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        let mut headers = vec![("content-type", "application/json")];
        if let Some(t) = target {
            headers.push(("x-amz-target", t));
        }
        let (_, out) = self
            .call(signing_name, method, uri, &headers, bytes)
            .await?;
        Ok(if out.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out).unwrap_or(Value::Null)
        })
    }

    async fn lambda(&self, method: Method, uri: &str, body: &Value) -> Fetched {
        self.call_json("lambda", method, uri, None, body).await
    }

    /// A JSON 1.1 call (`X-Amz-Target`) to one of the JSON doors.
    async fn target(&self, signing_name: &str, target: &str, body: &Value) -> Fetched {
        let (_, out) = self
            .call(
                signing_name,
                Method::POST,
                "/",
                &json_headers(JSON_1_1, target),
                Bytes::from(body.to_string()),
            )
            .await?;
        Ok(serde_json::from_slice(&out).unwrap_or(Value::Null))
    }

    /// A CloudWatch call in its JSON 1.0 protocol.
    async fn cloudwatch(&self, operation: &str, body: &Value) -> Fetched {
        let target = cloudwatch_target(operation);
        let (_, out) = self
            .call(
                "monitoring",
                Method::POST,
                "/",
                &json_headers(JSON_1_0, &target),
                Bytes::from(body.to_string()),
            )
            .await?;
        Ok(serde_json::from_slice(&out).unwrap_or(Value::Null))
    }

    /// An IAM query-protocol call; the response's XML.
    async fn iam(&self, action: &str) -> Result<Bytes, CallError> {
        let body = format!("Action={action}&Version=2010-05-08&MaxItems=1000");
        let (_, out) = self
            .call(
                "iam",
                Method::POST,
                "/",
                &[("content-type", "application/x-www-form-urlencoded")],
                Bytes::from(body),
            )
            .await?;
        Ok(out)
    }

    /// EC2's `DescribeSecurityGroups` of `ids`, its response as JSON (see [`xml_json`]).
    async fn security_groups(&self, ids: &[String]) -> Fetched {
        let mut body = "Action=DescribeSecurityGroups&Version=2016-11-15".to_owned();
        for (i, id) in ids.iter().enumerate() {
            body.push_str(&format!("&GroupId.{}={}", i + 1, view::encode(id)));
        }
        let (_, out) = self
            .call(
                "ec2",
                Method::POST,
                "/",
                &[("content-type", "application/x-www-form-urlencoded")],
                Bytes::from(body),
            )
            .await?;
        Ok(xml_json(&out))
    }

    /// Every function the principal may list (up to [`MAX_LISTED`]).
    async fn all_functions(&self) -> Result<Vec<Value>, CallError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let uri = match &marker {
                Some(m) => format!(
                    "/2015-03-31/functions?MaxItems=50&Marker={}",
                    view::encode(m)
                ),
                None => "/2015-03-31/functions?MaxItems=50".to_owned(),
            };
            let page = self.lambda(Method::GET, &uri, &Value::Null).await?;
            out.extend(page["Functions"].as_array().cloned().unwrap_or_default());
            marker = page["NextMarker"].as_str().map(str::to_owned);
            if marker.is_none() || out.len() >= MAX_LISTED {
                return Ok(out);
            }
        }
    }
}

fn now_s() -> i64 {
    warden_metrics::aggregate::now_s()
}

/// The most metrics `ListMetrics` returns in its one page.
const LIST_METRICS_PAGE: usize = 500;

/// The functions among `names` with any `Invocations` datapoint recently, if
/// `ListMetrics` can tell (it answers one page: a full page, or a refusal, says nothing).
async fn recently_active(
    caller: &Caller<'_>,
    names: &[String],
) -> Option<std::collections::HashSet<String>> {
    let listed = caller
        .cloudwatch(
            "ListMetrics",
            &json!({ "Namespace": "AWS/Lambda", "MetricName": "Invocations" }),
        )
        .await
        .ok()?;
    let metrics = listed["Metrics"].as_array()?;
    if metrics.len() >= LIST_METRICS_PAGE {
        return None;
    }
    let active: std::collections::HashSet<String> = metrics
        .iter()
        .filter_map(|m| match m["Dimensions"].as_array().map(Vec::as_slice) {
            Some([d]) if d["Name"] == "FunctionName" => d["Value"].as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    Some(
        names
            .iter()
            .filter(|n| active.contains(*n))
            .cloned()
            .collect(),
    )
}

/// The metrics of `names` over the last hour: `GetMetricData` calls of at most 500
/// queries each, for the functions that have any (a function without `Invocations`
/// datapoints has nothing to chart, so when `ListMetrics` tells which have, only those are
/// queried).
async fn summaries(
    caller: &Caller<'_>,
    names: &[String],
    end: i64,
) -> Result<Vec<metrics::Summary>, CallError> {
    let start = end - CHART_RANGE_S;
    let per_function = [
        ("inv", "Invocations", "Sum", 300),
        ("err", "Errors", "Sum", 60),
        ("p50", "Duration", "p50", 3_600),
        ("p99", "Duration", "p99", 3_600),
        ("p99s", "Duration", "p99", 300),
    ];
    let active = recently_active(caller, names).await;
    let queried: Vec<&String> = names
        .iter()
        .filter(|n| active.as_ref().is_none_or(|a| a.contains(*n)))
        .collect();
    let per_call = 500 / per_function.len();
    let mut found: HashMap<&str, metrics::Summary> = HashMap::new();
    for chunk in queried.chunks(per_call) {
        let queries = chunk
            .iter()
            .enumerate()
            .flat_map(|(i, name)| {
                per_function.iter().map(move |(id, metric, stat, period)| {
                    metrics::query(i, id, name, metric, stat, *period)
                })
            })
            .collect();
        let response = caller
            .cloudwatch("GetMetricData", &metrics::request(queries, start, end))
            .await?;
        let results = metrics::results(&response);
        for (i, name) in chunk.iter().enumerate() {
            found.insert(name.as_str(), metrics::summary(&results, i, end));
        }
    }
    Ok(names
        .iter()
        .map(|n| found.remove(n.as_str()).unwrap_or_default())
        .collect())
}

async fn functions_page(caller: &Caller<'_>, who: &Who<'_>) -> Reply {
    let end = now_s();
    let listed = match caller.all_functions().await {
        Ok(l) => l,
        Err(e) => {
            return html(
                status_of(&e),
                view::functions(who, Err(&e), None, end - CHART_RANGE_S, end),
            )
        }
    };
    let names: Vec<String> = listed
        .iter()
        .map(|f| f["FunctionName"].as_str().unwrap_or_default().to_owned())
        .collect();
    let (stats, refused) = match summaries(caller, &names, end).await {
        Ok(s) => (s, None),
        Err(e) => (vec![metrics::Summary::default(); names.len()], Some(e)),
    };
    let rows: Vec<FunctionRow> = listed
        .into_iter()
        .zip(stats)
        .map(|(config, summary)| FunctionRow { config, summary })
        .collect();
    html(
        StatusCode::OK,
        view::functions(who, Ok(&rows), refused.as_ref(), end - CHART_RANGE_S, end),
    )
}

/// The `GetMetricData` request of a function page's charts, for the hour to `end`.
fn chart_request(name: &str, end: i64) -> Value {
    metrics::request(
        metrics::FUNCTION_SERIES
            .iter()
            .map(|(id, metric, stat)| metrics::query(0, id, name, metric, stat, 60))
            .collect(),
        end - CHART_RANGE_S,
        end,
    )
}

/// A function page's chart fragment from the answer to [`chart_request`].
fn chart_fragment(answer: &Fetched, end: i64) -> String {
    match answer {
        Ok(v) => {
            let lines = metrics::function_lines(&metrics::results(v));
            view::charts(Ok(&lines), end - CHART_RANGE_S, end)
        }
        Err(e) => view::charts(Err(e), end - CHART_RANGE_S, end),
    }
}

async fn function_page(
    caller: &Caller<'_>,
    name: &str,
    filter: &str,
    outcome: Option<Outcome>,
) -> FunctionPage {
    let f = view::encode(name);
    let base = format!("/2015-03-31/functions/{f}");
    let none_if_missing = |r: Fetched| match r {
        Err(e) if e.code == "ResourceNotFoundException" => Ok(Value::Null),
        other => other,
    };
    let function = caller.lambda(Method::GET, &base, &Value::Null).await;
    let groups: Vec<String> = function
        .as_ref()
        .ok()
        .and_then(|f| f["Configuration"]["VpcConfig"]["SecurityGroupIds"].as_array())
        .map(|ids| {
            ids.iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let network = if groups.is_empty() {
        Ok(Value::Null)
    } else {
        caller.security_groups(&groups).await
    };
    let end = now_s();
    let charts = chart_fragment(
        &caller
            .cloudwatch("GetMetricData", &chart_request(name, end))
            .await,
        end,
    );
    let group = format!("/aws/lambda/{name}");
    let logs_query = |pattern: &str, limit: u32| {
        let mut b =
            json!({ "logGroupName": group, "limit": limit, "startTime": (end - 86_400) * 1000 });
        if !pattern.is_empty() {
            b["filterPattern"] = json!(pattern);
        }
        b
    };
    let logs_missing = |r: Fetched| match r {
        Err(e) if e.code == "ResourceNotFoundException" => Ok(json!({ "events": [] })),
        other => other,
    };
    FunctionPage {
        name: name.to_owned(),
        versions: caller
            .lambda(Method::GET, &format!("{base}/versions"), &Value::Null)
            .await,
        aliases: caller
            .lambda(Method::GET, &format!("{base}/aliases"), &Value::Null)
            .await,
        policy: none_if_missing(
            caller
                .lambda(Method::GET, &format!("{base}/policy"), &Value::Null)
                .await,
        ),
        contract: none_if_missing(
            caller
                .lambda(
                    Method::GET,
                    &format!("/_warden/2026-11-01/functions/{f}/input-contract"),
                    &Value::Null,
                )
                .await,
        ),
        signing: caller
            .lambda(
                Method::GET,
                &format!("/2020-06-30/functions/{f}/code-signing-config"),
                &Value::Null,
            )
            .await,
        findings: caller
            .call_json(
                "inspector2",
                Method::POST,
                "/findings/list",
                None,
                &json!({ "filterCriteria": { "lambdaFunctionName": [{ "comparison": "EQUALS", "value": name }] }, "maxResults": 100 }),
            )
            .await,
        reports: logs_missing(
            caller
                .target("logs", "Logs_20140328.FilterLogEvents", &logs_query("REPORT", 200))
                .await,
        ),
        logs: logs_missing(
            caller
                .target("logs", "Logs_20140328.FilterLogEvents", &logs_query(filter, 200))
                .await,
        ),
        filter: filter.to_owned(),
        since_ms: end * 1000,
        history: caller
            .target(
                "config",
                "StarlingDoveService.GetResourceConfigHistory",
                &json!({ "resourceType": "AWS::Lambda::Function", "resourceId": name, "limit": 20 }),
            )
            .await,
        function,
        network,
        charts,
        outcome,
    }
}

/// Runs a function page's action: what it did, and the page's status (the refused
/// call's, or 200); `None` for an unknown action.
async fn function_action(
    caller: &Caller<'_>,
    name: &str,
    action: &str,
    field: &(dyn Fn(&str) -> String + Sync),
) -> Option<(Outcome, StatusCode)> {
    let f = view::encode(name);
    let outcome = |title: &str, r: Result<String, CallError>| {
        let status = r.as_ref().err().map_or(StatusCode::OK, status_of);
        let outcome = Outcome {
            title: title.to_owned(),
            ok: r.is_ok(),
            text: r.unwrap_or_else(|e| e.to_string()),
        };
        (outcome, status)
    };
    Some(match action {
        "invoke" => {
            let payload = field("payload");
            let r = caller
                .call(
                    "lambda",
                    Method::POST,
                    &format!("/2015-03-31/functions/{f}/invocations"),
                    &[("x-amz-log-type", "Tail")],
                    Bytes::from(payload),
                )
                .await
                .map(|(parts, body)| {
                    let header = |n: &str| {
                        parts
                            .headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let tail = header("x-amz-log-result")
                        .and_then(|b| {
                            use base64::Engine as _;
                            base64::engine::general_purpose::STANDARD.decode(b).ok()
                        })
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let error = header("x-amz-function-error")
                        .map(|e| format!("Function error: {e}\n"))
                        .unwrap_or_default();
                    format!(
                        "{error}Response:\n{}\n\nLog tail:\n{tail}",
                        String::from_utf8_lossy(&body)
                    )
                });
            let failed = matches!(&r, Ok(text) if text.starts_with("Function error"));
            let (mut o, status) = outcome("Invoke", r);
            // A function error is the function's answer, not a refusal of the call.
            o.ok &= !failed;
            (o, status)
        }
        "publish" => outcome(
            "Publish version",
            caller
                .lambda(
                    Method::POST,
                    &format!("/2015-03-31/functions/{f}/versions"),
                    &json!({}),
                )
                .await
                .map(|v| format!("Published version {}", v["Version"].as_str().unwrap_or("?"))),
        ),
        "alias" => {
            let alias = field("alias");
            let version = field("version");
            outcome(
                "Move alias",
                caller
                    .lambda(
                        Method::PUT,
                        &format!("/2015-03-31/functions/{f}/aliases/{}", view::encode(&alias)),
                        &json!({ "FunctionVersion": version }),
                    )
                    .await
                    .map(|_| format!("Alias {alias} now points at version {version}")),
            )
        }
        _ => return None,
    })
}

async fn alarms_page(caller: &Caller<'_>, who: &Who<'_>) -> Reply {
    let alarms = caller.cloudwatch("DescribeAlarms", &json!({})).await;
    let history = caller.cloudwatch("DescribeAlarmHistory", &json!({})).await;
    html(StatusCode::OK, view::alarms(who, &alarms, &history))
}

async fn findings_page(caller: &Caller<'_>, who: &Who<'_>) -> Reply {
    let findings = caller
        .call_json(
            "securityhub",
            Method::POST,
            "/findings",
            None,
            &json!({
                "Filters": {
                    "RecordState": [{ "Value": "ACTIVE", "Comparison": "EQUALS" }],
                    "WorkflowStatus": [{ "Value": "SUPPRESSED", "Comparison": "NOT_EQUALS" }],
                },
                "MaxResults": 100,
            }),
        )
        .await;
    html(StatusCode::OK, view::findings(who, &findings))
}

async fn audit_page(caller: &Caller<'_>, who: &Who<'_>, key: &str, value: &str) -> Reply {
    let mut body = json!({ "MaxResults": 50 });
    if !key.is_empty() && !value.is_empty() {
        body["LookupAttributes"] = json!([{ "AttributeKey": key, "AttributeValue": value }]);
    }
    const TRAIL: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101";
    let events = caller
        .target("cloudtrail", &format!("{TRAIL}.LookupEvents"), &body)
        .await;
    let status = caller
        .target(
            "cloudtrail",
            &format!("{TRAIL}.GetTrailStatus"),
            &json!({ "Name": "warden" }),
        )
        .await;
    let verification = caller
        .shared
        .state
        .audit
        .last_verification()
        .await
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(Value::Null);
    html(
        StatusCode::OK,
        view::audit(who, key, value, &events, &status, &verification),
    )
}

async fn iam_page(caller: &Caller<'_>, who: &Who<'_>) -> Reply {
    let list = |v: &Value, response: &str, result: &str, member: &str| -> Vec<Value> {
        v[response][result][member]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let users = caller.iam("ListUsers").await.map(|xml| {
        list(
            &xml_json(&xml),
            "ListUsersResponse",
            "ListUsersResult",
            "Users",
        )
        .iter()
        .filter_map(|u| u["UserName"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
    });
    let functions = caller.all_functions().await.unwrap_or_default();
    let roles = caller.iam("ListRoles").await.map(|xml| {
        list(
            &xml_json(&xml),
            "ListRolesResponse",
            "ListRolesResult",
            "Roles",
        )
        .iter()
        .map(|r| {
            let arn = r["Arn"].as_str().unwrap_or_default().to_owned();
            RoleRow {
                name: r["RoleName"].as_str().unwrap_or_default().to_owned(),
                functions: functions
                    .iter()
                    .filter(|f| f["Role"].as_str() == Some(arn.as_str()))
                    .filter_map(|f| f["FunctionName"].as_str().map(str::to_owned))
                    .collect(),
                arn,
            }
        })
        .collect::<Vec<_>>()
    });
    html(
        StatusCode::OK,
        view::iam(who, users.as_deref(), roles.as_deref()),
    )
}

/// An event of a live stream, in the `text/event-stream` format.
fn event(name: &str, data: &str) -> Bytes {
    let mut out = format!("event: {name}\n");
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Holds one of the [`MAX_LIVE_STREAMS`] until dropped.
struct LiveSlot {
    live: Arc<LiveStreams>,
    token: String,
}

/// The open live streams: in all, and per session.
#[derive(Debug, Default)]
pub(crate) struct LiveStreams {
    open: std::sync::Mutex<(usize, HashMap<String, usize>)>,
}

impl LiveStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, HashMap<String, usize>)> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LiveSlot {
    /// One more stream for the session `token`, unless [`MAX_LIVE_STREAMS`] are open or
    /// the session has [`MAX_LIVE_PER_SESSION`].
    fn take(live: &Arc<LiveStreams>, token: &str) -> Option<Self> {
        let mut open = live.lock();
        let mine = open.1.get(token).copied().unwrap_or(0);
        if open.0 >= MAX_LIVE_STREAMS || mine >= MAX_LIVE_PER_SESSION {
            return None;
        }
        open.0 += 1;
        open.1.insert(token.to_owned(), mine + 1);
        Some(Self {
            live: Arc::clone(live),
            token: token.to_owned(),
        })
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut open = self.live.lock();
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.token) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.token);
            }
        }
    }
}

/// The IAM decision on `targets` for `principal`, as the pipeline's authorization stage
/// makes it, for what the console does that is not an API call.
async fn authorize_as(
    shared: &Shared,
    principal: &Principal,
    peer: SocketAddr,
    targets: Vec<Target>,
) -> Result<(), ApiError> {
    let parts = http::Request::get("/console")
        .body(())
        .map_err(ApiError::internal)?
        .into_parts()
        .0;
    let request = ApiRequest {
        operation: Operation::ListFunctions,
        parts,
        body: Bytes::new(),
        peer,
        principal: Some(principal.clone()),
        request_id: String::new(),
    };
    crate::access::authorize(&shared.state, &request, Some(principal), targets).await
}

/// The access key and principal of the session `token`, looked up again (a live stream
/// does so on every tick): `None` once the session ended or its key is gone.
fn session_principal(shared: &Shared, token: &str) -> Option<(String, Principal)> {
    let session = shared.console.sessions.find(token, Instant::now())?;
    let credential = shared
        .state
        .access
        .identity
        .lookup(&session.access_key_id)?;
    Some((session.access_key_id, credential.principal))
}

/// Whether the session's principal is still allowed `targets` (and still signed in).
async fn still_allowed(
    shared: &Shared,
    token: &str,
    peer: SocketAddr,
    targets: Vec<Target>,
) -> bool {
    let Some((_, principal)) = session_principal(shared, token) else {
        return false;
    };
    authorize_as(shared, &principal, peer, targets)
        .await
        .is_ok()
}

/// One JSON 1.x call a live stream makes on a tick, through the pipeline as the session's
/// principal, not recorded; `Err` with the reason the stream must end, or the refusal.
async fn live_call(
    shared: &Shared,
    token: &str,
    peer: SocketAddr,
    (signing_name, content_type, target): (&str, &str, &str),
    body: &Value,
) -> Result<Fetched, String> {
    let (key, principal) =
        session_principal(shared, token).ok_or_else(|| "signed out".to_owned())?;
    let answer = pipeline_call(
        shared,
        &principal,
        &key,
        peer,
        (
            signing_name,
            Method::POST,
            "/",
            &json_headers(content_type, target),
        ),
        Bytes::from(body.to_string()),
        Record::No,
    )
    .await;
    Ok(answer.map(|(_, bytes)| serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

fn stream_reply() -> (
    tokio::sync::mpsc::Sender<Result<Bytes, crate::reply::StreamBroken>>,
    Reply,
) {
    let (tx, body) = ReplyBody::channel();
    let mut r = Reply::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    (tx, r)
}

fn too_many_streams() -> Reply {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "Busy",
        "Too many live views are open; this page still works, without live updates.",
    )
}

fn any(action: &str) -> Target {
    Target {
        action: action.to_owned(),
        resource: "*".to_owned(),
        ..Target::default()
    }
}

/// Each function's running totals of invocations and errors.
type Totals = HashMap<String, (u64, u64)>;

/// The last minute's invocations and errors per function, from successive snapshots of
/// the running totals. It keeps the previous snapshot and, per tick, only the functions
/// that moved, so its memory follows activity rather than the number of functions.
#[derive(Debug, Default)]
struct LiveWindow {
    previous: Option<Totals>,
    ticks: std::collections::VecDeque<(Instant, Totals)>,
    /// The functions the last rows named, so that one gone quiet is sent as 0 once.
    shown: std::collections::HashSet<String>,
}

impl LiveWindow {
    /// Takes the totals at `now`; the rows to send: each function active within
    /// [`LIVE_WINDOW`], and each that was and is no longer, as 0.
    fn push(&mut self, now: Instant, totals: Totals) -> serde_json::Map<String, Value> {
        if let Some(previous) = &self.previous {
            let moved: Totals = totals
                .iter()
                .filter_map(|(name, (inv, err))| {
                    // A function absent before was created since: all its counts are new.
                    let (inv0, err0) = previous.get(name).copied().unwrap_or((0, 0));
                    let delta = (inv.saturating_sub(inv0), err.saturating_sub(err0));
                    (delta != (0, 0)).then(|| (name.clone(), delta))
                })
                .collect();
            if !moved.is_empty() {
                self.ticks.push_back((now, moved));
            }
        }
        self.previous = Some(totals);
        while self
            .ticks
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > LIVE_WINDOW)
        {
            self.ticks.pop_front();
        }
        let mut sums: Totals = HashMap::new();
        for (_, moved) in &self.ticks {
            for (name, (inv, err)) in moved {
                let sum = sums.entry(name.clone()).or_default();
                sum.0 += inv;
                sum.1 += err;
            }
        }
        let mut rows = serde_json::Map::new();
        for name in self.shown.drain() {
            if !sums.contains_key(&name) {
                rows.insert(name, json!({ "invocations": 0, "errors": 0 }));
            }
        }
        for (name, (inv, err)) in &sums {
            rows.insert(name.clone(), json!({ "invocations": inv, "errors": err }));
        }
        self.shown = sums.into_keys().collect();
        rows
    }
}

/// The functions page's live numbers: each function's invocations and errors over the
/// last minute, from the live counters.
fn live_rows(shared: &Arc<Shared>, signed: &Signed, peer: SocketAddr) -> Reply {
    let Some(slot) = LiveSlot::take(&shared.console.live, &signed.token) else {
        return too_many_streams();
    };
    let (tx, reply) = stream_reply();
    let state = Arc::clone(&shared.state);
    let token = signed.token.clone();
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let _slot = slot;
        let began = Instant::now();
        let mut window = LiveWindow::default();
        while began.elapsed() < LIVE_STREAM_LIFETIME {
            let allowed = still_allowed(
                &shared,
                &token,
                peer,
                vec![any("lambda:ListFunctions"), any("cloudwatch:GetMetricData")],
            )
            .await;
            if !allowed {
                let _ = tx
                    .send(Ok(event("end", "signed out or no longer allowed")))
                    .await;
                return;
            }
            let totals: Totals = state
                .metrics
                .snapshot(false)
                .into_iter()
                .filter(|s| s.dims.version.is_none() && s.dims.resource.is_none())
                .filter_map(|s| {
                    let name = s.dims.function.clone()?;
                    Some((
                        name,
                        (
                            s.counter(warden_metrics::Counter::Invocations),
                            s.counter(warden_metrics::Counter::Errors),
                        ),
                    ))
                })
                .collect();
            let rows = window.push(Instant::now(), totals);
            if tx
                .send(Ok(event("rows", &Value::Object(rows).to_string())))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(ROWS_TICK).await;
        }
    });
    reply
}

/// A function page's live charts: on each tick the page's own `GetMetricData` through
/// the pipeline as the session's principal (authorized as the page's call, not
/// recorded), sent when the charts changed.
fn live_charts(shared: &Arc<Shared>, signed: &Signed, peer: SocketAddr, name: &str) -> Reply {
    let Some(slot) = LiveSlot::take(&shared.console.live, &signed.token) else {
        return too_many_streams();
    };
    let (tx, reply) = stream_reply();
    let token = signed.token.clone();
    let name = name.to_owned();
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let _slot = slot;
        let began = Instant::now();
        let target = cloudwatch_target("GetMetricData");
        let mut last = String::new();
        while began.elapsed() < LIVE_STREAM_LIFETIME {
            let end = now_s();
            let answer = match live_call(
                &shared,
                &token,
                peer,
                ("monitoring", JSON_1_0, &target),
                &chart_request(&name, end),
            )
            .await
            {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => {
                    let _ = tx.send(Ok(event("end", &e.to_string()))).await;
                    return;
                }
                Err(why) => {
                    let _ = tx.send(Ok(event("end", &why))).await;
                    return;
                }
            };
            let fragment = chart_fragment(&answer, end);
            let sent = if fragment == last {
                tx.send(Ok(Bytes::from_static(b": idle\n\n"))).await
            } else {
                let sent = tx.send(Ok(event("charts", &fragment))).await;
                last = fragment;
                sent
            };
            if sent.is_err() {
                return;
            }
            tokio::time::sleep(CHARTS_TICK).await;
        }
    });
    reply
}

/// New log events of `name` matching `filter`, from `since_ms` on: each tick one
/// `FilterLogEvents` through the pipeline as the session's principal (authorized and
/// validated as the CLI's call, not recorded).
fn live_logs(
    shared: &Arc<Shared>,
    signed: &Signed,
    peer: SocketAddr,
    name: &str,
    filter: String,
    since_ms: i64,
) -> Reply {
    let Some(slot) = LiveSlot::take(&shared.console.live, &signed.token) else {
        return too_many_streams();
    };
    let (tx, reply) = stream_reply();
    let token = signed.token.clone();
    let group = format!("/aws/lambda/{name}");
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let _slot = slot;
        let began = Instant::now();
        let mut since = since_ms;
        // Ids of the events already sent at `since`, the newest timestamp sent.
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        while began.elapsed() < LIVE_STREAM_LIFETIME {
            let mut body = json!({ "logGroupName": group, "startTime": since, "limit": 500 });
            if !filter.is_empty() {
                body["filterPattern"] = json!(filter);
            }
            let answer = live_call(
                &shared,
                &token,
                peer,
                ("logs", JSON_1_1, "Logs_20140328.FilterLogEvents"),
                &body,
            )
            .await;
            let events: Vec<Value> = match answer {
                Ok(Ok(v)) => v["events"].as_array().cloned().unwrap_or_default(),
                // No log group until the function first logs.
                Ok(Err(e)) if e.code == "ResourceNotFoundException" => Vec::new(),
                Ok(Err(e)) => {
                    let _ = tx.send(Ok(event("end", &e.to_string()))).await;
                    return;
                }
                Err(why) => {
                    let _ = tx.send(Ok(event("end", &why))).await;
                    return;
                }
            };
            let mut lines = Vec::new();
            for e in &events {
                let ts = e["timestamp"].as_i64().unwrap_or(0);
                let id = e["eventId"].as_str().unwrap_or_default().to_owned();
                if ts < since || (ts == since && seen.contains(&id)) {
                    continue;
                }
                if ts > since {
                    since = ts;
                    seen.clear();
                }
                seen.insert(id);
                lines.push(
                    e["message"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_end()
                        .to_owned(),
                );
            }
            let sent = if lines.is_empty() {
                tx.send(Ok(Bytes::from_static(b": idle\n\n"))).await
            } else {
                tx.send(Ok(event("logs", &Value::from(lines).to_string())))
                    .await
            };
            if sent.is_err() {
                return;
            }
            tokio::time::sleep(ROWS_TICK).await;
        }
    });
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_documents_become_json_with_item_lists_as_arrays() {
        let xml = b"<R xmlns=\"x\"><requestId>1</requestId><securityGroupInfo><item><groupId>sg-1</groupId>\
<ipPermissionsEgress><item><ipProtocol>tcp</ipProtocol><ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item></ipRanges>\
<groups/></item></ipPermissionsEgress><groupName>a&amp;b</groupName></item></securityGroupInfo></R>";
        let v = xml_json(xml);
        let g = &v["R"]["securityGroupInfo"][0];
        assert_eq!(g["groupId"], "sg-1");
        assert_eq!(g["groupName"], "a&b");
        assert_eq!(
            g["ipPermissionsEgress"][0]["ipRanges"][0]["cidrIp"],
            "10.0.0.0/8"
        );
        assert_eq!(g["ipPermissionsEgress"][0]["groups"], "");
        // Whatever bytes come, a value comes back.
        let _ = xml_json(b"<a><b>unclosed");
        let _ = xml_json(b"\xff\xfe<");
    }

    #[test]
    fn the_live_window_counts_the_last_minute_and_zeroes_what_went_quiet() {
        let totals = |pairs: &[(&str, u64, u64)]| -> Totals {
            pairs
                .iter()
                .map(|(n, i, e)| ((*n).to_owned(), (*i, *e)))
                .collect()
        };
        let t0 = Instant::now();
        let mut w = LiveWindow::default();
        // The first snapshot is the baseline: what ran before the stream is not counted.
        assert!(w.push(t0, totals(&[("a", 10, 1)])).is_empty());
        let rows = w.push(
            t0 + Duration::from_secs(2),
            totals(&[("a", 12, 2), ("b", 1, 1)]),
        );
        assert_eq!(rows["a"], json!({"invocations": 2, "errors": 1}));
        assert_eq!(rows["b"], json!({"invocations": 1, "errors": 1}));
        let rows = w.push(
            t0 + Duration::from_secs(30),
            totals(&[("a", 13, 2), ("b", 1, 1)]),
        );
        assert_eq!(rows["a"], json!({"invocations": 3, "errors": 1}));
        assert_eq!(rows["b"], json!({"invocations": 1, "errors": 1}));
        // Past the minute, the first change leaves the window; b went quiet: one 0, then
        // nothing more about it.
        let rows = w.push(
            t0 + Duration::from_secs(63),
            totals(&[("a", 13, 2), ("b", 1, 1)]),
        );
        assert_eq!(rows["a"], json!({"invocations": 1, "errors": 0}));
        assert_eq!(rows["b"], json!({"invocations": 0, "errors": 0}));
        let rows = w.push(
            t0 + Duration::from_secs(65),
            totals(&[("a", 13, 2), ("b", 1, 1)]),
        );
        assert!(!rows.contains_key("b"));
        // Memory follows activity: only ticks where something moved are kept.
        assert_eq!(w.ticks.len(), 1);
    }

    #[test]
    fn live_streams_are_bounded_in_all_and_per_session() {
        let live = Arc::new(LiveStreams::default());
        let mine: Vec<LiveSlot> = (0..MAX_LIVE_PER_SESSION)
            .map(|_| LiveSlot::take(&live, "a").expect("within the session's share"))
            .collect();
        assert!(LiveSlot::take(&live, "a").is_none());
        let others: Vec<LiveSlot> = (0..MAX_LIVE_STREAMS - MAX_LIVE_PER_SESSION)
            .map(|i| LiveSlot::take(&live, &format!("s{}", i % 7)).expect("within the total"))
            .collect();
        assert!(LiveSlot::take(&live, "z").is_none());
        drop(mine);
        assert!(LiveSlot::take(&live, "a").is_some());
        drop(others);
        assert_eq!(live.lock().0, 0);
        assert!(live.lock().1.is_empty());
    }

    #[test]
    fn an_event_prefixes_every_line_with_data() {
        assert_eq!(
            &event("charts", "<a>\n<b>")[..],
            b"event: charts\ndata: <a>\ndata: <b>\n\n"
        );
    }

    #[test]
    fn xml_lists_are_read_in_order_and_unescaped() {
        let xml = b"<ListUsersResponse><ListUsersResult><Users><member><UserName>a&amp;b</UserName><Arn>x</Arn></member><member><UserName>c</UserName></member></Users></ListUsersResult></ListUsersResponse>";
        let users = &xml_json(xml)["ListUsersResponse"]["ListUsersResult"]["Users"];
        let names: Vec<&str> = users
            .as_array()
            .map(|u| u.iter().filter_map(|m| m["UserName"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["a&b", "c"]);
        assert_eq!(xml_text(xml, "Arn").as_deref(), Some("x"));
        assert!(xml_text(b"<unclosed", "A").is_none());
        // Text around an entity keeps its spaces.
        assert_eq!(
            xml_text(b"<a><b> x &amp; y </b></a>", "b").as_deref(),
            Some("x & y")
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_as_xml_or_refused_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = xml_json(&bytes);
            let _ = xml_text(&bytes, "Code");
        }

        #[test]
        fn any_text_survives_the_xml_round_trip(text in "[a-zA-Z0-9&<>\"' ]{0,40}") {
            let escaped = quick_xml::escape::escape(text.as_str());
            let doc = format!("<r><t>{escaped}</t></r>");
            proptest::prop_assert_eq!(xml_text(doc.as_bytes(), "t"), Some(text.trim().to_owned()));
        }
    }

    #[test]
    fn errors_are_read_from_each_protocol() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("AccessDeniedException:http://x"),
        );
        let e = call_error(StatusCode::FORBIDDEN, &h, br#"{"message":"no"}"#);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("AccessDeniedException", "no")
        );
        let e = call_error(
            StatusCode::BAD_REQUEST,
            &http::HeaderMap::new(),
            br#"{"__type":"com.amazon#ValidationException","Message":"bad"}"#,
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("ValidationException", "bad")
        );
        let e = call_error(
            StatusCode::FORBIDDEN,
            &http::HeaderMap::new(),
            b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>m</Message></Error></ErrorResponse>",
        );
        assert_eq!((e.code.as_str(), e.message.as_str()), ("AccessDenied", "m"));
    }

    #[test]
    fn the_console_claims_its_paths_only() {
        assert!(claims("/console"));
        assert!(claims("/console/functions"));
        assert!(!claims("/consoles"));
        assert!(!claims("/2015-03-31/functions"));
    }
}

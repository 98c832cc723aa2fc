//! The IAM and STS query-protocol front-end: form parameters in, XML out.
//!
//! Requests are form-encoded (`Action=CreateRole&Version=2010-05-08&...`); responses follow
//! the shapes botocore's IAM and STS models expect (`<CreateRoleResponse xmlns=...>
//! <CreateRoleResult>...`). Failures are [`QueryError`]s carrying the service's error code
//! and status; this is the one place that maps [`IdentityError`] to them (internal failures
//! are logged here and reach the client only as a generic `ServiceFailure`), and
//! [`QueryError::to_xml`] writes the `<ErrorResponse>` document the API sends (and
//! [`QueryError::to_rest_xml`] rest-xml's `<Error>`: every XML error is written here).
//! Authentication and authorization happen before [`Identity::handle_query`]: the API asks
//! [`Identity::authorization_target`] (IAM) or [`Identity::sts_targets`] (STS) what to
//! authorize.

use std::sync::Arc;

use quick_xml::escape::escape;
use warden_iam::{ContextValue, Policy};
use warden_types::identity::{Principal, PrincipalKind};
use warden_types::page::{Page, PageError, PageRequest, IAM_PAGES};

use crate::error::IdentityError;
use crate::service::{AssumeRoleRequest, Identity};
use crate::store::{Holder, KeyStatus, ManagedPolicy, PolicyVersion, Role, StoredKey, Tags, User};

/// XML namespace of IAM responses.
pub const IAM_NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
/// XML namespace of STS responses.
pub const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Content type of every query-protocol response.
pub const CONTENT_TYPE: &str = "text/xml";
/// The API version STS actions belong to (named in STS's `InvalidAction` messages).
pub const STS_VERSION: &str = "2011-06-15";
/// The API version IAM actions belong to.
pub const IAM_VERSION: &str = "2010-05-08";

/// Every action of STS's API (from its service model), implemented here or not: a request
/// for one of these is an STS request, answered in STS's namespace.
pub const STS_ACTIONS: &[&str] = &[
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "AssumeRoot",
    "DecodeAuthorizationMessage",
    "GetAccessKeyInfo",
    "GetCallerIdentity",
    "GetDelegatedAccessToken",
    "GetFederationToken",
    "GetScopedCredentials",
    "GetSessionToken",
    "GetWebIdentityToken",
];

/// True if `action` is one of STS's actions (see [`STS_ACTIONS`]).
pub fn is_sts_action(action: &str) -> bool {
    STS_ACTIONS.contains(&action)
}

/// The role whose trust policy must admit the caller of an STS target.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The role exists; its parsed trust policy.
    Role(Arc<Policy>),
    /// No such role (or its trust policy no longer parses): nobody is admitted, and the
    /// caller is told "not authorized", as STS does, rather than that it does not exist.
    NoSuchRole,
}

/// One permission an STS request needs: `action` on `resource`, decided with the role's
/// trust policy ([`warden_iam::evaluate_trust`]) and the extra condition keys in `context`.
#[derive(Clone, Debug)]
pub struct StsTarget {
    /// `sts:AssumeRole` or `sts:TagSession`.
    pub action: String,
    /// The role's canonical ARN (as typed when there is no such role).
    pub resource: String,
    /// The trust policy that must admit the caller.
    pub trust: Trust,
    /// Condition keys of the request (`sts:RoleSessionName`, `sts:ExternalId`,
    /// `aws:RequestTag/KEY`, `aws:TagKeys`), lower-cased.
    pub context: Vec<(String, ContextValue)>,
}

/// A query-protocol error: IAM code, HTTP status and client-facing message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct QueryError {
    /// HTTP status.
    pub status: u16,
    /// IAM error code, such as `NoSuchEntity`.
    pub code: &'static str,
    /// Message for the client.
    pub message: String,
}

impl QueryError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> QueryError {
        QueryError {
            status,
            code,
            message: message.into(),
        }
    }

    /// `ValidationError`, 400.
    pub fn validation(message: impl Into<String>) -> QueryError {
        QueryError::new(400, "ValidationError", message)
    }

    /// `AccessDenied`, 403, for the API's authorization step.
    pub fn access_denied(message: impl Into<String>) -> QueryError {
        QueryError::new(403, "AccessDenied", message)
    }

    /// The query protocol's `<ErrorResponse>` document for this error, in `namespace`
    /// (`IAM_NAMESPACE`, `STS_NAMESPACE`, or none for another query service). The API
    /// chooses the namespace by the service the request is for; this only writes it.
    pub fn to_xml(&self, namespace: Option<&str>, request_id: &str) -> String {
        let kind = if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        };
        let mut x = Xml::default();
        match namespace {
            Some(ns) => x.raw(&format!("<ErrorResponse xmlns=\"{}\">", escape(ns))),
            None => x.raw("<ErrorResponse>"),
        }
        x.open("Error");
        x.leaf("Type", kind);
        x.leaf("Code", self.code);
        x.leaf("Message", &self.message);
        x.close("Error");
        x.leaf("RequestId", request_id);
        x.close("ErrorResponse");
        x.0
    }

    /// The rest-xml protocol's `<Error>` document for this error, as S3 writes it (for
    /// requests to such services, which Warden refuses). Written by the same writer as
    /// [`QueryError::to_xml`], so that every XML error escapes its text one way.
    pub fn to_rest_xml(&self, request_id: &str) -> String {
        let mut x = Xml::default();
        x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.open("Error");
        x.leaf("Code", self.code);
        x.leaf("Message", &self.message);
        x.leaf("RequestId", request_id);
        x.close("Error");
        x.0
    }
}

impl From<IdentityError> for QueryError {
    fn from(e: IdentityError) -> QueryError {
        let status = match &e {
            IdentityError::NoSuchEntity(_) => 404,
            IdentityError::EntityAlreadyExists(_)
            | IdentityError::DeleteConflict(_)
            | IdentityError::LimitExceeded(_) => 409,
            IdentityError::Validation(_)
            | IdentityError::MalformedPolicy(_)
            | IdentityError::PackedPolicyTooLarge(_) => 400,
            IdentityError::AwsManaged(_) | IdentityError::NotTrusted(_) => 403,
            _ => 500,
        };
        if status == 500 {
            tracing::error!(error = %e, "identity operation failed");
            return QueryError::new(500, "ServiceFailure", "an internal error occurred");
        }
        QueryError::new(status, e.code(), e.to_string())
    }
}

/// Decodes an `application/x-www-form-urlencoded` body into ordered pairs. Never fails:
/// invalid percent-escapes and UTF-8 are decoded leniently, as `form_urlencoded` does.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as IAM encodes policy
/// documents in its XML (botocore decodes them with `urllib.parse.unquote`, which does
/// not turn `+` into a space, so form encoding would corrupt spaces).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// ISO 8601 in UTC with seconds, as IAM writes dates.
fn iso8601(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// A minimal XML writer: element text is always escaped.
#[derive(Default)]
struct Xml(String);

impl Xml {
    fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }
    fn open(&mut self, tag: &str) {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
    }
    fn close(&mut self, tag: &str) {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
    }
    fn leaf(&mut self, tag: &str, text: &str) {
        self.open(tag);
        self.0.push_str(&escape(text));
        self.close(tag);
    }
    fn opt(&mut self, tag: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(tag, t);
        }
    }
    fn tags(&mut self, tags: &Tags) {
        if tags.is_empty() {
            return;
        }
        self.open("Tags");
        for (k, v) in tags {
            self.open("member");
            self.leaf("Key", k);
            self.leaf("Value", v);
            self.close("member");
        }
        self.close("Tags");
    }
    fn user(&mut self, tag: &str, u: &User) {
        self.open(tag);
        self.leaf("Path", &u.path);
        self.leaf("UserName", &u.name);
        self.leaf("UserId", &u.id);
        self.leaf("Arn", &u.arn);
        self.leaf("CreateDate", &iso8601(u.created_ms));
        self.tags(&u.tags);
        self.close(tag);
    }
    fn role(&mut self, tag: &str, r: &Role) {
        self.open(tag);
        self.leaf("Path", &r.path);
        self.leaf("RoleName", &r.name);
        self.leaf("RoleId", &r.id);
        self.leaf("Arn", &r.arn);
        self.leaf("CreateDate", &iso8601(r.created_ms));
        self.leaf("AssumeRolePolicyDocument", &percent_encode(&r.trust_policy));
        self.opt("Description", r.description.as_deref());
        self.leaf("MaxSessionDuration", &r.max_session_duration_s.to_string());
        self.tags(&r.tags);
        self.close(tag);
    }
    fn policy(&mut self, tag: &str, p: &ManagedPolicy, attachments: usize) {
        self.open(tag);
        self.leaf("PolicyName", &p.name);
        self.leaf("PolicyId", &p.id);
        self.leaf("Arn", &p.arn);
        self.leaf("Path", &p.path);
        self.leaf("DefaultVersionId", &p.default_version);
        self.leaf("AttachmentCount", &attachments.to_string());
        self.leaf("PermissionsBoundaryUsageCount", "0");
        self.leaf("IsAttachable", "true");
        self.opt("Description", p.description.as_deref());
        self.leaf("CreateDate", &iso8601(p.created_ms));
        self.leaf("UpdateDate", &iso8601(p.updated_ms));
        self.close(tag);
    }
    /// A `PolicyVersion` element; the document only where IAM returns it (GetPolicyVersion).
    fn policy_version(&mut self, tag: &str, v: &PolicyVersion, default: &str, document: bool) {
        self.open(tag);
        if document {
            self.leaf("Document", &percent_encode(&v.document));
        }
        self.leaf("VersionId", &v.version_id);
        self.leaf(
            "IsDefaultVersion",
            if v.version_id == default {
                "true"
            } else {
                "false"
            },
        );
        self.leaf("CreateDate", &iso8601(v.created_ms));
        self.close(tag);
    }
    fn tag_list(&mut self, tags: &[(String, String)]) {
        self.open("Tags");
        for (k, v) in tags {
            self.open("member");
            self.leaf("Key", k);
            self.leaf("Value", v);
            self.close("member");
        }
        self.close("Tags");
    }
    fn key_metadata(&mut self, tag: &str, k: &StoredKey) {
        self.open(tag);
        self.leaf("UserName", &k.user_name);
        self.leaf("AccessKeyId", &k.id);
        self.leaf("Status", k.status.as_str());
        self.leaf("CreateDate", &iso8601(k.created_ms));
        self.close(tag);
    }
    fn names(&mut self, tag: &str, names: &[String]) {
        self.open(tag);
        for n in names {
            self.leaf("member", n);
        }
        self.close(tag);
    }
    fn attached(&mut self, list: &[ManagedPolicy]) {
        self.open("AttachedPolicies");
        for p in list {
            self.open("member");
            self.leaf("PolicyName", &p.name);
            self.leaf("PolicyArn", &p.arn);
            self.close("member");
        }
        self.close("AttachedPolicies");
    }
    fn page_end(&mut self, marker: Option<String>) {
        self.leaf(
            "IsTruncated",
            if marker.is_some() { "true" } else { "false" },
        );
        self.opt("Marker", marker.as_deref());
    }
}

/// Typed access to the form parameters.
struct Params<'a>(&'a [(String, String)]);

impl<'a> Params<'a> {
    /// The first value of `name`; an empty value counts as absent (as the CLI omits it).
    fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name`, even an empty one (for parameters where empty means
    /// "clear", such as a role's `Description`).
    fn raw(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`/`false`), absent as `false`.
    fn flag(&self, name: &str) -> Result<bool, QueryError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(QueryError::validation(format!(
                "parameter `{name}` must be `true` or `false`, not `{v}`"
            ))),
        }
    }

    /// The values of a list parameter `NAME.member.N` (or `NAME.member.N.FIELD`), from
    /// `N = 1` up to the first gap, in one pass over the parameters (a body may hold many).
    fn list(&self, name: &str, field: Option<&str>) -> Vec<&'a str> {
        let mut found = std::collections::BTreeMap::new();
        let prefix = format!("{name}.member.");
        for (k, v) in self.0 {
            let Some(rest) = k.strip_prefix(&prefix) else {
                continue;
            };
            let index = match field {
                Some(f) => rest.strip_suffix(f).and_then(|r| r.strip_suffix('.')),
                None => Some(rest),
            };
            if let Some(n) = index.and_then(|i| i.parse::<usize>().ok()) {
                found.entry(n).or_insert(v.as_str());
            }
        }
        (1..).map_while(|n| found.get(&n).copied()).collect()
    }

    /// True if any parameter is `name` or starts with `name.`.
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| {
            k == name || (k.starts_with(name) && k.as_bytes().get(name.len()) == Some(&b'.'))
        })
    }

    fn req(&self, name: &str) -> Result<&'a str, QueryError> {
        self.get(name).ok_or_else(|| {
            QueryError::validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(name)
            ))
        })
    }

    fn int(&self, name: &str) -> Result<Option<i64>, QueryError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    QueryError::validation(format!(
                        "parameter `{name}` must be an integer, not `{v}`"
                    ))
                })
            })
            .transpose()
    }

    fn tags(&self) -> Result<Tags, QueryError> {
        let keys = self.list("Tags", Some("Key"));
        let mut values = std::collections::HashMap::new();
        for (k, v) in self.0 {
            if let Some(n) = k
                .strip_prefix("Tags.member.")
                .and_then(|r| r.strip_suffix(".Value"))
                .and_then(|n| n.parse::<usize>().ok())
            {
                values.entry(n).or_insert(v.as_str());
            }
        }
        Ok(keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                let v = values.get(&(i + 1)).copied().unwrap_or_default();
                (k.to_owned(), v.to_owned())
            })
            .collect())
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Applies `Marker` (an offset, as returned by us) and `MaxItems` (1 to 1000, default 100),
/// as every list of the API pages ([`warden_types::page`]).
fn paginate<T>(items: Vec<T>, p: &Params<'_>) -> Result<(Vec<T>, Option<String>), QueryError> {
    let bad = |e: PageError| QueryError::validation(e.to_string());
    let request = PageRequest::parse(p.get("Marker"), p.get("MaxItems"), IAM_PAGES).map_err(bad)?;
    let page = Page::from_offset(items, &request).map_err(bad)?;
    Ok((page.items, page.next_marker))
}

fn path_prefix<'a>(p: &Params<'a>) -> &'a str {
    p.get("PathPrefix").unwrap_or("/")
}

/// The user a request is about: `UserName`, or else the calling user.
fn user_or_caller<'a>(p: &Params<'a>, caller: &'a Principal) -> Result<&'a str, QueryError> {
    if let Some(n) = p.get("UserName") {
        return Ok(n);
    }
    match caller.kind {
        PrincipalKind::User => Ok(&caller.name),
        PrincipalKind::AssumedRole { .. } => Err(QueryError::validation(
            "Must specify userName when calling with non-User credentials",
        )),
    }
}

impl Identity {
    /// The IAM action and resource ARN a query request must be authorized for, e.g.
    /// `("iam:CreateRole", "arn:aws:iam::ACCOUNT:role/NAME")`. List actions and
    /// `sts:GetCallerIdentity` use `*`; AWS lets every caller call GetCallerIdentity,
    /// so the API should not require a permission for it. STS requests are authorized
    /// with [`Identity::sts_targets`], which also carries the role's trust policy.
    pub fn authorization_target(
        &self,
        params: &[(String, String)],
        caller: &Principal,
    ) -> Result<(String, String), QueryError> {
        let p = Params(params);
        let action = p.get("Action").ok_or_else(|| {
            QueryError::new(
                400,
                "MissingAction",
                "the request has no `Action` parameter",
            )
        })?;
        match action {
            "GetCallerIdentity" => return Ok(("sts:GetCallerIdentity".into(), "*".into())),
            "AssumeRole" => {
                let arn = p.req("RoleArn")?;
                let resource = self
                    .trust_policy(arn)
                    .map_or_else(|| arn.to_owned(), |(canonical, _)| canonical);
                return Ok(("sts:AssumeRole".into(), resource));
            }
            other if is_sts_action(other) => return Err(invalid_action(other)),
            _ => {}
        }
        let acct = self.account();
        let user_arn = |name: &str, path: Option<&str>| {
            self.user(name).map(|u| u.arn).unwrap_or_else(|| {
                let path = path.unwrap_or("/");
                format!(
                    "arn:aws:iam::{acct}:user{}/{name}",
                    path.strip_suffix('/').unwrap_or(path)
                )
            })
        };
        let role_arn = |name: &str, path: Option<&str>| {
            self.role(name).map(|r| r.arn).unwrap_or_else(|| {
                let path = path.unwrap_or("/");
                format!(
                    "arn:aws:iam::{acct}:role{}/{name}",
                    path.strip_suffix('/').unwrap_or(path)
                )
            })
        };
        let resource = match action {
            "ListUsers" | "ListRoles" | "ListPolicies" => "*".to_owned(),
            "CreateUser" => user_arn(p.req("UserName")?, p.get("Path")),
            "GetUser" | "CreateAccessKey" | "ListAccessKeys" | "UpdateAccessKey"
            | "DeleteAccessKey" => match p.get("UserName") {
                Some(n) => user_arn(n, None),
                // Fails for role sessions; a user caller acts on itself.
                None => user_or_caller(&p, caller).map(|_| caller.arn.clone())?,
            },
            "DeleteUser"
            | "TagUser"
            | "PutUserPolicy"
            | "GetUserPolicy"
            | "DeleteUserPolicy"
            | "ListUserPolicies"
            | "AttachUserPolicy"
            | "DetachUserPolicy"
            | "ListAttachedUserPolicies"
            | "UntagUser"
            | "ListUserTags" => user_arn(p.req("UserName")?, None),
            "GetAccessKeyLastUsed" => match self.key_last_used(p.req("AccessKeyId")?) {
                Some((owner, _)) => user_arn(&owner, None),
                // Only a caller allowed on every user learns that the key does not exist.
                None => format!("arn:aws:iam::{acct}:user/*"),
            },
            "CreateRole" => role_arn(p.req("RoleName")?, p.get("Path")),
            "GetRole"
            | "DeleteRole"
            | "UpdateAssumeRolePolicy"
            | "PutRolePolicy"
            | "GetRolePolicy"
            | "DeleteRolePolicy"
            | "ListRolePolicies"
            | "AttachRolePolicy"
            | "DetachRolePolicy"
            | "ListAttachedRolePolicies"
            | "TagRole"
            | "UntagRole"
            | "ListRoleTags"
            | "UpdateRole"
            | "UpdateRoleDescription" => role_arn(p.req("RoleName")?, None),
            "CreatePolicy" => {
                let path = p.get("Path").unwrap_or("/");
                format!(
                    "arn:aws:iam::{acct}:policy{}/{}",
                    path.strip_suffix('/').unwrap_or(path),
                    p.req("PolicyName")?
                )
            }
            "GetPolicy"
            | "GetPolicyVersion"
            | "DeletePolicy"
            | "CreatePolicyVersion"
            | "ListPolicyVersions"
            | "SetDefaultPolicyVersion"
            | "DeletePolicyVersion" => p.req("PolicyArn")?.to_owned(),
            other => return Err(invalid_action(other)),
        };
        Ok((format!("iam:{action}"), resource))
    }

    /// What an STS request must be authorized for. `GetCallerIdentity` needs nothing (AWS
    /// lets every caller ask who it is). `AssumeRole` needs `sts:AssumeRole` on the role,
    /// and `sts:TagSession` too when it passes tags, each decided with the role's trust
    /// policy. Validates the request first (an unsupported parameter is refused, naming
    /// it), so nothing is authorized that would then be rejected. Any other action, STS's
    /// or not, is `InvalidAction` for STS's version.
    pub fn sts_targets(&self, params: &[(String, String)]) -> Result<Vec<StsTarget>, QueryError> {
        let p = Params(params);
        let action = p.get("Action").ok_or_else(missing_action)?;
        match action {
            "GetCallerIdentity" => Ok(Vec::new()),
            "AssumeRole" => {
                let request = assume_role_request(&p)?;
                let (resource, trust) = match self.trust_policy(&request.role_arn) {
                    Some((arn, policy)) => (arn, Trust::Role(policy)),
                    None => (request.role_arn.clone(), Trust::NoSuchRole),
                };
                let mut context = vec![(
                    "sts:rolesessionname".to_owned(),
                    ContextValue::String(request.session_name.clone()),
                )];
                if let Some(id) = p.get("ExternalId") {
                    context.push(("sts:externalid".into(), ContextValue::String(id.into())));
                }
                if !request.tags.is_empty() {
                    for (k, v) in &request.tags {
                        context.push((
                            format!("aws:requesttag/{}", k.to_ascii_lowercase()),
                            ContextValue::String(v.clone()),
                        ));
                    }
                    context.push((
                        "aws:tagkeys".into(),
                        ContextValue::List(request.tags.iter().map(|(k, _)| k.clone()).collect()),
                    ));
                }
                let target = |action: &str| StsTarget {
                    action: action.to_owned(),
                    resource: resource.clone(),
                    trust: trust.clone(),
                    context: context.clone(),
                };
                let mut targets = vec![target("sts:AssumeRole")];
                if !request.tags.is_empty() {
                    targets.push(target("sts:TagSession"));
                }
                Ok(targets)
            }
            other => Err(sts_invalid_action(other)),
        }
    }

    /// Runs one IAM or STS query request for an already authorized `caller`; the XML
    /// response body, or the error to answer with (the API renders it).
    pub fn handle_query(
        &self,
        params: &[(String, String)],
        caller: &Principal,
    ) -> Result<String, QueryError> {
        self.dispatch(&Params(params), caller)
    }

    fn dispatch(&self, p: &Params<'_>, caller: &Principal) -> Result<String, QueryError> {
        let action = p.get("Action").ok_or_else(|| {
            QueryError::new(
                400,
                "MissingAction",
                "the request has no `Action` parameter",
            )
        })?;
        let mut x = Xml::default();
        let ns = if is_sts_action(action) {
            STS_NAMESPACE
        } else {
            IAM_NAMESPACE
        };
        x.raw(&format!("<{action}Response xmlns=\"{ns}\">"));
        let result = format!("{action}Result");
        match action {
            "GetCallerIdentity" => {
                x.open(&result);
                x.leaf("UserId", &caller.id);
                x.leaf("Account", &caller.account);
                x.leaf("Arn", &caller.arn);
                x.close(&result);
            }
            "CreateUser" => {
                let u = self.create_user(p.req("UserName")?, p.get("Path"), p.tags()?)?;
                x.open(&result);
                x.user("User", &u);
                x.close(&result);
            }
            "GetUser" => {
                let name = user_or_caller(p, caller)?;
                let u = self.user(name).ok_or_else(|| no_user(name))?;
                x.open(&result);
                x.user("User", &u);
                x.close(&result);
            }
            "ListUsers" => {
                let prefix = path_prefix(p);
                let users: Vec<User> = self
                    .users()
                    .into_iter()
                    .filter(|u| u.path.starts_with(prefix))
                    .collect();
                let (page, marker) = paginate(users, p)?;
                x.open(&result);
                x.open("Users");
                for u in &page {
                    x.user("member", u);
                }
                x.close("Users");
                x.page_end(marker);
                x.close(&result);
            }
            "DeleteUser" => self.delete_user(p.req("UserName")?)?,
            "TagUser" => self.tag_user(p.req("UserName")?, &required_tags(p)?)?,
            "CreateAccessKey" => {
                let (k, secret) = self.create_access_key(user_or_caller(p, caller)?)?;
                x.open(&result);
                x.open("AccessKey");
                x.leaf("UserName", &k.user_name);
                x.leaf("AccessKeyId", &k.id);
                x.leaf("Status", k.status.as_str());
                x.leaf("SecretAccessKey", &secret);
                x.leaf("CreateDate", &iso8601(k.created_ms));
                x.close("AccessKey");
                x.close(&result);
            }
            "ListAccessKeys" => {
                let keys = self.access_keys(user_or_caller(p, caller)?)?;
                let (page, marker) = paginate(keys, p)?;
                x.open(&result);
                x.open("AccessKeyMetadata");
                for k in &page {
                    x.key_metadata("member", k);
                }
                x.close("AccessKeyMetadata");
                x.page_end(marker);
                x.close(&result);
            }
            "UpdateAccessKey" => {
                let status = p.req("Status")?;
                let status = KeyStatus::parse(status).ok_or_else(|| {
                    QueryError::validation(format!(
                        "status `{status}` must be `Active` or `Inactive`"
                    ))
                })?;
                let user = user_or_caller(p, caller)?.to_owned();
                self.set_access_key_status(&user, p.req("AccessKeyId")?, status)?;
            }
            "DeleteAccessKey" => {
                let user = user_or_caller(p, caller)?.to_owned();
                self.delete_access_key(&user, p.req("AccessKeyId")?)?;
            }
            "CreateRole" => {
                let max = p
                    .int("MaxSessionDuration")?
                    .map(|m| u32::try_from(m).unwrap_or(0));
                let r = self.create_role(
                    p.req("RoleName")?,
                    p.get("Path"),
                    p.req("AssumeRolePolicyDocument")?,
                    p.get("Description"),
                    max,
                    p.tags()?,
                )?;
                x.open(&result);
                x.role("Role", &r);
                x.close(&result);
            }
            "GetRole" => {
                let name = p.req("RoleName")?;
                let r = self.role(name).ok_or_else(|| no_role(name))?;
                x.open(&result);
                x.role("Role", &r);
                x.close(&result);
            }
            "ListRoles" => {
                let prefix = path_prefix(p);
                let roles: Vec<Role> = self
                    .roles()
                    .into_iter()
                    .filter(|r| r.path.starts_with(prefix))
                    .collect();
                let (page, marker) = paginate(roles, p)?;
                x.open(&result);
                x.open("Roles");
                for r in &page {
                    x.role("member", r);
                }
                x.close("Roles");
                x.page_end(marker);
                x.close(&result);
            }
            "DeleteRole" => self.delete_role(p.req("RoleName")?)?,
            "TagRole" => self.tag_role(p.req("RoleName")?, &required_tags(p)?)?,
            "UpdateAssumeRolePolicy" => {
                self.update_trust_policy(p.req("RoleName")?, p.req("PolicyDocument")?)?
            }
            "PutRolePolicy" | "PutUserPolicy" => self.put_inline_policy(
                &holder(action, p)?,
                p.req("PolicyName")?,
                p.req("PolicyDocument")?,
            )?,
            "GetRolePolicy" | "GetUserPolicy" => {
                let h = holder(action, p)?;
                let name = p.req("PolicyName")?;
                let found = self
                    .inline_policies(&h)?
                    .into_iter()
                    .find(|ip| ip.name.eq_ignore_ascii_case(name))
                    .ok_or_else(|| no_inline(&h, name))?;
                x.open(&result);
                match &found.holder {
                    Holder::User(n) => x.leaf("UserName", n),
                    Holder::Role(n) => x.leaf("RoleName", n),
                }
                x.leaf("PolicyName", &found.name);
                x.leaf("PolicyDocument", &percent_encode(&found.document));
                x.close(&result);
            }
            "DeleteRolePolicy" | "DeleteUserPolicy" => {
                self.delete_inline_policy(&holder(action, p)?, p.req("PolicyName")?)?
            }
            "ListRolePolicies" | "ListUserPolicies" => {
                let names: Vec<String> = self
                    .inline_policies(&holder(action, p)?)?
                    .into_iter()
                    .map(|ip| ip.name)
                    .collect();
                let (page, marker) = paginate(names, p)?;
                x.open(&result);
                x.names("PolicyNames", &page);
                x.page_end(marker);
                x.close(&result);
            }
            "CreatePolicy" => {
                let pol = self.create_policy(
                    p.req("PolicyName")?,
                    p.get("Path"),
                    p.req("PolicyDocument")?,
                    p.get("Description"),
                )?;
                x.open(&result);
                x.policy("Policy", &pol, 0);
                x.close(&result);
            }
            "GetPolicy" => {
                let arn = p.req("PolicyArn")?;
                let pol = self.policy(arn).ok_or_else(|| no_managed(arn))?;
                x.open(&result);
                x.policy("Policy", &pol, self.attachment_count(arn));
                x.close(&result);
            }
            "GetPolicyVersion" => {
                let arn = p.req("PolicyArn")?;
                let (pol, version) = self.policy_version(arn, p.req("VersionId")?)?;
                x.open(&result);
                x.policy_version("PolicyVersion", &version, &pol.default_version, true);
                x.close(&result);
            }
            "ListPolicyVersions" => {
                let arn = p.req("PolicyArn")?;
                let default = self
                    .policy(arn)
                    .map(|pol| pol.default_version)
                    .ok_or_else(|| no_managed(arn))?;
                let (page, marker) = paginate(self.policy_versions(arn)?, p)?;
                x.open(&result);
                x.open("Versions");
                for v in &page {
                    x.policy_version("member", v, &default, false);
                }
                x.close("Versions");
                x.page_end(marker);
                x.close(&result);
            }
            "CreatePolicyVersion" => {
                let v = self.create_policy_version(
                    p.req("PolicyArn")?,
                    p.req("PolicyDocument")?,
                    p.flag("SetAsDefault")?,
                )?;
                let default = if p.flag("SetAsDefault")? {
                    v.version_id.clone()
                } else {
                    String::new()
                };
                x.open(&result);
                x.policy_version("PolicyVersion", &v, &default, false);
                x.close(&result);
            }
            "SetDefaultPolicyVersion" => {
                self.set_default_policy_version(p.req("PolicyArn")?, p.req("VersionId")?)?
            }
            "DeletePolicyVersion" => {
                self.delete_policy_version(p.req("PolicyArn")?, p.req("VersionId")?)?
            }
            "DeletePolicy" => self.delete_policy(p.req("PolicyArn")?)?,
            "ListPolicies" => {
                let prefix = path_prefix(p);
                let scope = p.get("Scope").unwrap_or("All");
                if !matches!(scope, "All" | "AWS" | "Local") {
                    return Err(QueryError::validation(format!(
                        "scope `{scope}` must be `All`, `AWS` or `Local`"
                    )));
                }
                // Warden has no permissions boundaries: every policy is a permissions policy.
                let boundaries = match p.get("PolicyUsageFilter") {
                    None | Some("PermissionsPolicy") => false,
                    Some("PermissionsBoundary") => true,
                    Some(other) => {
                        return Err(QueryError::validation(format!(
                            "policy usage filter `{other}` must be `PermissionsPolicy` or `PermissionsBoundary`"
                        )))
                    }
                };
                let only_attached = p.flag("OnlyAttached")?;
                let list: Vec<(ManagedPolicy, usize)> = self
                    .managed_policies()
                    .into_iter()
                    .filter(|pol| {
                        let aws = crate::aws_policies::is_aws_managed(&pol.arn);
                        let in_scope = match scope {
                            "AWS" => aws,
                            "Local" => !aws,
                            _ => true,
                        };
                        in_scope && !boundaries && pol.path.starts_with(prefix)
                    })
                    .map(|pol| {
                        let n = self.attachment_count(&pol.arn);
                        (pol, n)
                    })
                    .filter(|(_, n)| !only_attached || *n > 0)
                    .collect();
                let (page, marker) = paginate(list, p)?;
                x.open(&result);
                x.open("Policies");
                for (pol, n) in &page {
                    x.policy("member", pol, *n);
                }
                x.close("Policies");
                x.page_end(marker);
                x.close(&result);
            }
            "UpdateRole" => {
                for unsupported in ["MaxSigninSessionDuration", "ResetMaxSigninSessionDuration"] {
                    if p.has(unsupported) {
                        return Err(unsupported_parameter("UpdateRole", unsupported));
                    }
                }
                let max = p
                    .int("MaxSessionDuration")?
                    .map(|m| u32::try_from(m).unwrap_or(0));
                let description = p.raw("Description").map(|d| (!d.is_empty()).then_some(d));
                self.update_role(p.req("RoleName")?, description, max)?;
                // The model declares an (empty) result element, which botocore requires.
                x.open(&result);
                x.close(&result);
            }
            "UpdateRoleDescription" => {
                let description = p.raw("Description").ok_or_else(|| {
                    p.req("Description")
                        .err()
                        .unwrap_or_else(|| QueryError::validation("Description is required"))
                })?;
                let r = self.update_role(
                    p.req("RoleName")?,
                    Some((!description.is_empty()).then_some(description)),
                    None,
                )?;
                x.open(&result);
                x.role("Role", &r);
                x.close(&result);
            }
            "UntagRole" => self.untag_role(p.req("RoleName")?, &tag_keys(p)?)?,
            "UntagUser" => self.untag_user(p.req("UserName")?, &tag_keys(p)?)?,
            "ListRoleTags" | "ListUserTags" => {
                let tags = match holder(action, p)? {
                    Holder::Role(n) => self.role(&n).ok_or_else(|| no_role(&n))?.tags,
                    Holder::User(n) => self.user(&n).ok_or_else(|| no_user(&n))?.tags,
                };
                let (page, marker) = paginate(tags, p)?;
                x.open(&result);
                x.tag_list(&page);
                x.page_end(marker);
                x.close(&result);
            }
            "GetAccessKeyLastUsed" => {
                let key_id = p.req("AccessKeyId")?;
                let (owner, used) = self.key_last_used(key_id).ok_or_else(|| {
                    QueryError::new(
                        404,
                        "NoSuchEntity",
                        format!("The Access Key with id `{key_id}` cannot be found."),
                    )
                })?;
                x.open(&result);
                x.leaf("UserName", &owner);
                x.open("AccessKeyLastUsed");
                match &used {
                    Some(u) => {
                        x.leaf("LastUsedDate", &iso8601(u.at_ms));
                        x.leaf("ServiceName", &u.service);
                        x.leaf("Region", &u.region);
                    }
                    None => {
                        x.leaf("ServiceName", "N/A");
                        x.leaf("Region", "N/A");
                    }
                }
                x.close("AccessKeyLastUsed");
                x.close(&result);
            }
            "AssumeRole" => {
                let request = assume_role_request(p)?;
                let assumed = self.assume_role(caller, &request)?;
                let c = &assumed.credential;
                x.open(&result);
                x.open("Credentials");
                x.leaf("AccessKeyId", &c.access_key_id);
                x.leaf("SecretAccessKey", &c.secret_access_key);
                x.opt("SessionToken", c.session_token.as_deref());
                x.leaf("Expiration", &iso8601(c.expires_at_ms.unwrap_or(0)));
                x.close("Credentials");
                x.open("AssumedRoleUser");
                x.leaf("AssumedRoleId", &c.principal.id);
                x.leaf("Arn", &c.principal.arn);
                x.close("AssumedRoleUser");
                if let Some(size) = assumed.packed_policy_size {
                    x.leaf("PackedPolicySize", &size.to_string());
                }
                x.close(&result);
            }
            "AttachRolePolicy" | "AttachUserPolicy" => {
                self.attach_policy(&holder(action, p)?, p.req("PolicyArn")?)?
            }
            "DetachRolePolicy" | "DetachUserPolicy" => {
                self.detach_policy(&holder(action, p)?, p.req("PolicyArn")?)?
            }
            "ListAttachedRolePolicies" | "ListAttachedUserPolicies" => {
                let prefix = path_prefix(p);
                let list: Vec<ManagedPolicy> = self
                    .attached_policies(&holder(action, p)?)?
                    .into_iter()
                    .filter(|pol| pol.path.starts_with(prefix))
                    .collect();
                let (page, marker) = paginate(list, p)?;
                x.open(&result);
                x.attached(&page);
                x.page_end(marker);
                x.close(&result);
            }
            other => return Err(invalid_action(other)),
        }
        x.open("ResponseMetadata");
        x.leaf("RequestId", &request_id());
        x.close("ResponseMetadata");
        x.raw(&format!("</{action}Response>"));
        Ok(x.0)
    }
}

fn required_tags(p: &Params<'_>) -> Result<Tags, QueryError> {
    let tags = p.tags()?;
    if tags.is_empty() {
        return Err(p
            .req("Tags")
            .err()
            .unwrap_or_else(|| QueryError::validation("tags are required")));
    }
    Ok(tags)
}

fn holder(action: &str, p: &Params<'_>) -> Result<Holder, QueryError> {
    if action.contains("Role") {
        Ok(Holder::Role(p.req("RoleName")?.to_owned()))
    } else {
        Ok(Holder::User(p.req("UserName")?.to_owned()))
    }
}

/// An action Warden does not serve, in the words of the service it belongs to.
fn invalid_action(action: &str) -> QueryError {
    if is_sts_action(action) {
        return sts_invalid_action(action);
    }
    QueryError::new(
        400,
        "InvalidAction",
        format!("Could not find operation `{action}` for version {IAM_VERSION}: Warden does not implement it"),
    )
}

fn sts_invalid_action(action: &str) -> QueryError {
    QueryError::new(
        400,
        "InvalidAction",
        format!("Could not find operation `{action}` for version {STS_VERSION}: Warden does not implement it"),
    )
}

fn missing_action() -> QueryError {
    QueryError::new(
        400,
        "MissingAction",
        "the request has no `Action` parameter",
    )
}

/// A parameter Warden does not honour: refused, never silently ignored.
fn unsupported_parameter(action: &str, name: &str) -> QueryError {
    QueryError::validation(format!(
        "Warden does not support the `{name}` parameter of {action}"
    ))
}

fn tag_keys(p: &Params<'_>) -> Result<Vec<String>, QueryError> {
    let keys = p.list("TagKeys", None);
    if keys.is_empty() {
        return Err(p
            .req("TagKeys")
            .err()
            .unwrap_or_else(|| QueryError::validation("tag keys are required")));
    }
    Ok(keys.into_iter().map(str::to_owned).collect())
}

/// The parameters of `AssumeRole`, validated as far as they can be without the role.
fn assume_role_request(p: &Params<'_>) -> Result<AssumeRoleRequest, QueryError> {
    for unsupported in [
        "TransitiveTagKeys",
        "SerialNumber",
        "TokenCode",
        "SourceIdentity",
        "ProvidedContexts",
        "MinimumSessionTokenSize",
    ] {
        if p.has(unsupported) {
            return Err(unsupported_parameter("AssumeRole", unsupported));
        }
    }
    if let Some(id) = p.get("ExternalId") {
        let ok = (2..=1224).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/_-".contains(&b));
        if !ok {
            return Err(QueryError::validation(
                "1 validation error detected: Value at 'externalId' failed to satisfy constraint: Member must be 2 to 1224 characters of letters, digits and +=,.@:/_-",
            ));
        }
    }
    let duration = match p.int("DurationSeconds")? {
        Some(d) if !(0..=i64::from(u32::MAX)).contains(&d) => {
            return Err(QueryError::validation(format!(
                "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200"
            )))
        }
        Some(d) => Some(u32::try_from(d).unwrap_or(u32::MAX)),
        None => None,
    };
    Ok(AssumeRoleRequest {
        role_arn: p.req("RoleArn")?.to_owned(),
        session_name: p.req("RoleSessionName")?.to_owned(),
        duration_s: duration,
        policy: p.get("Policy").map(str::to_owned),
        policy_arns: p
            .list("PolicyArns", Some("arn"))
            .into_iter()
            .map(str::to_owned)
            .collect(),
        tags: p.tags()?,
    })
}

fn no_user(name: &str) -> QueryError {
    QueryError::new(
        404,
        "NoSuchEntity",
        format!("The user with name `{name}` cannot be found."),
    )
}

fn no_role(name: &str) -> QueryError {
    QueryError::new(
        404,
        "NoSuchEntity",
        format!("The role with name `{name}` cannot be found."),
    )
}

fn no_managed(arn: &str) -> QueryError {
    QueryError::new(
        404,
        "NoSuchEntity",
        format!("Policy `{arn}` was not found."),
    )
}

fn no_inline(h: &Holder, name: &str) -> QueryError {
    let (kind, holder) = match h {
        Holder::User(n) => ("user", n),
        Holder::Role(n) => ("role", n),
    };
    QueryError::new(
        404,
        "NoSuchEntity",
        format!("The {kind} policy with name `{name}` cannot be found in {kind} `{holder}`."),
    )
}

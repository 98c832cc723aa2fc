//! The function URL configuration as Lambda's API models it (`FunctionUrlConfig`, `Cors`,
//! `FunctionUrlAuthType`, `InvokeMode`), its JSON in the model's member names, the
//! parsing of `CreateFunctionUrlConfig` and `UpdateFunctionUrlConfig` bodies, and the
//! URLs a configuration is reached at.
//!
//! # The URLs
//!
//! Lambda serves a function URL at `https://<url-id>.lambda-url.<region>.on.aws/`. Warden
//! serves it at `<scheme>://<url-id>.lambda-url.<region>.<domain>[:<port>]/`
//! ([`UrlConfig::function_url`]), with `localhost` as the default domain: most resolvers
//! answer every name under `localhost` with the loopback address. Where names do not
//! resolve, the same function is reached through the path form
//! `<scheme>://127.0.0.1[:<port>]/_url/<url-id>/...` ([`UrlConfig::path_url`]); the
//! function sees the path after `/_url/<url-id>`, exactly as it would through the host
//! form. [`route`] reads both.

use base64::Engine as _;
use rand::Rng as _;
use serde_json::{Map, Value};

use crate::error::{shown, UrlError};

/// The length of a URL id, as Lambda's: 32 lowercase letters and digits.
pub const URL_ID_LEN: usize = 32;

/// The path prefix of the path form of a function URL.
pub const PATH_PREFIX: &str = "/_url/";

/// The label between the URL id and the region in a function URL's host name.
const HOST_LABEL: &str = "lambda-url";

/// Most items in `Cors.AllowHeaders`, `Cors.AllowOrigins` and `Cors.ExposeHeaders`.
pub const MAX_CORS_LIST: usize = 100;
/// Most items in `Cors.AllowMethods`.
pub const MAX_CORS_METHODS: usize = 6;
/// The longest header name in `Cors.AllowHeaders` and `Cors.ExposeHeaders`.
pub const MAX_CORS_HEADER_LEN: usize = 1024;
/// The longest origin in `Cors.AllowOrigins`.
pub const MAX_CORS_ORIGIN_LEN: usize = 253;
/// The longest method in `Cors.AllowMethods`.
pub const MAX_CORS_METHOD_LEN: usize = 6;
/// The largest `Cors.MaxAge`, in seconds.
pub const MAX_CORS_MAX_AGE: u32 = 86_400;
/// The methods `Cors.AllowMethods` may hold.
pub const CORS_METHODS: [&str; 7] = ["GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "*"];
/// The pattern of `Qualifier` in the URL operations: an alias name, never `$LATEST` nor a
/// version number.
pub const QUALIFIER_PATTERN: &str = "((?!^\\d+$)^[0-9a-zA-Z-_]+$)";
/// The longest `Qualifier`.
pub const MAX_QUALIFIER_LEN: usize = 128;
/// The longest function name.
pub const MAX_FUNCTION_NAME_LEN: usize = 64;

/// Who may call a function URL (`FunctionUrlAuthType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// Only SigV4-signed requests of principals allowed `lambda:InvokeFunctionUrl`
    /// (`AWS_IAM`).
    AwsIam,
    /// Anyone the function's resource policy allows, unsigned (`NONE`).
    None,
}

impl AuthType {
    /// The model's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::AwsIam => "AWS_IAM",
            AuthType::None => "NONE",
        }
    }

    /// Reads the model's spelling; anything else is a `ValidationException`.
    pub fn parse(s: &str) -> Result<AuthType, UrlError> {
        match s {
            "AWS_IAM" => Ok(AuthType::AwsIam),
            "NONE" => Ok(AuthType::None),
            other => Err(UrlError::constraint(
                &shown(other),
                "authType",
                "Member must satisfy enum value set: [AWS_IAM, NONE]",
            )),
        }
    }
}

/// How the function's response is sent (`InvokeMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum InvokeMode {
    /// The whole response at once, after the function returns (`BUFFERED`, the default).
    #[default]
    Buffered,
    /// The response as the function writes it (`RESPONSE_STREAM`).
    ResponseStream,
}

impl InvokeMode {
    /// The model's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InvokeMode::Buffered => "BUFFERED",
            InvokeMode::ResponseStream => "RESPONSE_STREAM",
        }
    }

    /// Reads the model's spelling; anything else is a `ValidationException`.
    pub fn parse(s: &str) -> Result<InvokeMode, UrlError> {
        match s {
            "BUFFERED" => Ok(InvokeMode::Buffered),
            "RESPONSE_STREAM" => Ok(InvokeMode::ResponseStream),
            other => Err(UrlError::constraint(
                &shown(other),
                "invokeMode",
                "Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]",
            )),
        }
    }
}

/// A function URL's cross-origin resource sharing settings (`Cors`). A value is checked by
/// [`Cors::validate`] before it is stored; the store refuses one that fails.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Cors {
    /// Whether credentials (cookies, authorization headers) may be sent
    /// (`AllowCredentials`, false when absent).
    pub allow_credentials: Option<bool>,
    /// The request headers an origin may send (`AllowHeaders`); `*` allows any.
    pub allow_headers: Vec<String>,
    /// The methods an origin may use (`AllowMethods`); `*` allows any.
    pub allow_methods: Vec<String>,
    /// The origins allowed (`AllowOrigins`); `*` allows any.
    pub allow_origins: Vec<String>,
    /// The response headers an origin's script may read (`ExposeHeaders`).
    pub expose_headers: Vec<String>,
    /// How long, in seconds, a browser may cache a preflight answer (`MaxAge`).
    pub max_age: Option<u32>,
}

/// Whether `b` may appear in an HTTP token (a header name, a method).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is an HTTP token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// `[a, b, ...]`, quoted and cut, as a validation message shows a list.
fn shown_list(items: &[String]) -> String {
    shown(&format!("[{}]", items.join(", ")))
}

impl Cors {
    /// Checks every member against Lambda's model (list sizes, item lengths, `MaxAge`'s
    /// range: `ValidationException`) and against what can safely be sent back as a header
    /// (methods from [`CORS_METHODS`], header names that are HTTP tokens, origins of
    /// visible characters without commas: `InvalidParameterValueException`). Nothing that
    /// passes can break a response header it is copied into.
    pub fn validate(&self) -> Result<(), UrlError> {
        let lists: [(&str, &[String], usize, usize, usize); 4] = [
            (
                "cors.allowHeaders",
                &self.allow_headers,
                MAX_CORS_LIST,
                0,
                MAX_CORS_HEADER_LEN,
            ),
            (
                "cors.allowMethods",
                &self.allow_methods,
                MAX_CORS_METHODS,
                0,
                MAX_CORS_METHOD_LEN,
            ),
            (
                "cors.allowOrigins",
                &self.allow_origins,
                MAX_CORS_LIST,
                1,
                MAX_CORS_ORIGIN_LEN,
            ),
            (
                "cors.exposeHeaders",
                &self.expose_headers,
                MAX_CORS_LIST,
                0,
                MAX_CORS_HEADER_LEN,
            ),
        ];
        for (member, items, max_items, min_len, max_len) in lists {
            if items.len() > max_items {
                return Err(UrlError::constraint(
                    &shown_list(items),
                    member,
                    &format!("Member must have length less than or equal to {max_items}"),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let at = format!("{member}.{}.member", i + 1);
                let len = item.chars().count();
                if len > max_len {
                    return Err(UrlError::constraint(
                        &shown(item),
                        &at,
                        &format!("Member must have length less than or equal to {max_len}"),
                    ));
                }
                if len < min_len {
                    return Err(UrlError::constraint(
                        &shown(item),
                        &at,
                        &format!("Member must have length greater than or equal to {min_len}"),
                    ));
                }
            }
        }
        if let Some(age) = self.max_age {
            if age > MAX_CORS_MAX_AGE {
                return Err(UrlError::constraint(
                    &shown(&age.to_string()),
                    "cors.maxAge",
                    &format!("Member must have value less than or equal to {MAX_CORS_MAX_AGE}"),
                ));
            }
        }
        for m in &self.allow_methods {
            if !CORS_METHODS.iter().any(|a| a.eq_ignore_ascii_case(m)) {
                return Err(UrlError::InvalidParameter(format!(
                    "Cors.AllowMethods {} is not a method a function URL allows: use GET, PUT, HEAD, POST, PATCH, DELETE, or the wildcard character (*)",
                    shown(m)
                )));
            }
        }
        for (member, items) in [
            ("Cors.AllowHeaders", &self.allow_headers),
            ("Cors.ExposeHeaders", &self.expose_headers),
        ] {
            if let Some(bad) = items.iter().find(|h| !is_token(h)) {
                return Err(UrlError::InvalidParameter(format!(
                    "{member} {} is not an HTTP header name: use letters, digits and !#$%&'*+-.^_`|~, or the wildcard character (*)",
                    shown(bad)
                )));
            }
        }
        if let Some(bad) = self
            .allow_origins
            .iter()
            .find(|o| !o.bytes().all(|b| b.is_ascii_graphic() && b != b','))
        {
            return Err(UrlError::InvalidParameter(format!(
                "Cors.AllowOrigins {} is not an origin: an origin is a scheme, a host and an optional port (https://www.example.com, http://localhost:60905), or the wildcard character (*)",
                shown(bad)
            )));
        }
        Ok(())
    }

    /// Whether nothing is set: such a `Cors` means no CORS at all, and is stored as none.
    pub fn is_empty(&self) -> bool {
        *self == Cors::default()
    }

    /// `Some(self)` unless it is empty.
    pub fn normalized(self) -> Option<Cors> {
        (!self.is_empty()).then_some(self)
    }

    /// Whether credentials are allowed.
    pub fn credentials(&self) -> bool {
        self.allow_credentials == Some(true)
    }

    /// The model's JSON: only the members that are set.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(c) = self.allow_credentials {
            m.insert("AllowCredentials".into(), Value::Bool(c));
        }
        for (name, items) in [
            ("AllowHeaders", &self.allow_headers),
            ("AllowMethods", &self.allow_methods),
            ("AllowOrigins", &self.allow_origins),
            ("ExposeHeaders", &self.expose_headers),
        ] {
            if !items.is_empty() {
                m.insert(
                    name.into(),
                    Value::Array(items.iter().cloned().map(Value::String).collect()),
                );
            }
        }
        if let Some(age) = self.max_age {
            m.insert("MaxAge".into(), Value::from(age));
        }
        Value::Object(m)
    }

    /// Reads the model's JSON (`Cors` of a request body, or a stored copy): unknown
    /// members and members of the wrong type are refused by name, `null` reads as absent,
    /// and the result is [validated](Cors::validate).
    pub fn from_json(v: &Value) -> Result<Cors, UrlError> {
        let obj = v
            .as_object()
            .ok_or_else(|| wrong_type("Cors", "an object"))?;
        let mut cors = Cors::default();
        for (key, value) in obj {
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "AllowCredentials" => {
                    cors.allow_credentials = Some(
                        value
                            .as_bool()
                            .ok_or_else(|| wrong_type("Cors.AllowCredentials", "a boolean"))?,
                    );
                }
                "AllowHeaders" => cors.allow_headers = strings(value, "Cors.AllowHeaders")?,
                "AllowMethods" => cors.allow_methods = strings(value, "Cors.AllowMethods")?,
                "AllowOrigins" => cors.allow_origins = strings(value, "Cors.AllowOrigins")?,
                "ExposeHeaders" => cors.expose_headers = strings(value, "Cors.ExposeHeaders")?,
                "MaxAge" => cors.max_age = Some(max_age(value)?),
                other => return Err(unknown_member(&format!("Cors.{other}"), "Cors")),
            }
        }
        cors.validate()?;
        Ok(cors)
    }
}

/// `MaxAge`: an integer from 0 to [`MAX_CORS_MAX_AGE`].
fn max_age(value: &Value) -> Result<u32, UrlError> {
    let Value::Number(n) = value else {
        return Err(wrong_type("Cors.MaxAge", "an integer"));
    };
    let out_of_range =
        |bound: &str| UrlError::constraint(&shown(&n.to_string()), "cors.maxAge", bound);
    if let Some(i) = n.as_i64() {
        if i < 0 {
            return Err(out_of_range(
                "Member must have value greater than or equal to 0",
            ));
        }
        return u32::try_from(i)
            .ok()
            .filter(|a| *a <= MAX_CORS_MAX_AGE)
            .ok_or_else(|| {
                out_of_range(&format!(
                    "Member must have value less than or equal to {MAX_CORS_MAX_AGE}"
                ))
            });
    }
    if n.as_u64().is_some() {
        return Err(out_of_range(&format!(
            "Member must have value less than or equal to {MAX_CORS_MAX_AGE}"
        )));
    }
    Err(wrong_type("Cors.MaxAge", "an integer"))
}

/// A list of strings (`null` items are refused: the model's lists hold strings only).
fn strings(value: &Value, member: &str) -> Result<Vec<String>, UrlError> {
    let items = value
        .as_array()
        .ok_or_else(|| wrong_type(member, "a list of strings"))?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_owned)
                .ok_or_else(|| wrong_type(member, "a list of strings"))
        })
        .collect()
}

/// The refusal of a member of the wrong JSON type.
fn wrong_type(member: &str, expected: &str) -> UrlError {
    UrlError::InvalidContent(format!(
        "Could not parse request body into json: `{member}` must be {expected}"
    ))
}

/// The refusal of a member the model does not define for `shape`.
fn unknown_member(member: &str, shape: &str) -> UrlError {
    let shown: String = member.chars().take(64).collect();
    UrlError::InvalidContent(format!(
        "Could not parse request body into json: `{shown}` is not a member of {shape}"
    ))
}

/// Checks a function name: 1 to 64 letters, digits, `-` and `_` (the API resolves ARNs
/// and partial ARNs to the name before it calls the store).
pub fn check_function_name(name: &str) -> Result<(), UrlError> {
    if name.is_empty()
        || name.len() > MAX_FUNCTION_NAME_LEN
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(UrlError::constraint(
            &shown(name),
            "functionName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+ and have length between 1 and 64",
        ));
    }
    Ok(())
}

/// Checks a `Qualifier` of the URL operations against the model's pattern
/// ([`QUALIFIER_PATTERN`]): an alias name of 1 to 128 letters, digits, `-` and `_`, not
/// all digits. A function URL points at an alias or, without a qualifier, at `$LATEST`;
/// `$LATEST` and version numbers are refused as qualifiers, as Lambda refuses them.
pub fn check_qualifier(qualifier: &str) -> Result<(), UrlError> {
    if qualifier.is_empty() || qualifier.chars().count() > MAX_QUALIFIER_LEN {
        return Err(UrlError::constraint(
            &shown(qualifier),
            "qualifier",
            &format!("Member must have length between 1 and {MAX_QUALIFIER_LEN}"),
        ));
    }
    let charset = qualifier
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !charset || qualifier.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::constraint(
            &shown(qualifier),
            "qualifier",
            &format!("Member must satisfy regular expression pattern: {QUALIFIER_PATTERN}"),
        ));
    }
    Ok(())
}

/// Whether `s` is a URL id: [`URL_ID_LEN`] lowercase ASCII letters and digits.
pub fn is_url_id(s: &str) -> bool {
    s.len() == URL_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A new random URL id, of the shape of Lambda's: 32 characters of the lowercase base32
/// alphabet (`a-z`, `2-7`) with a `0` at index 26, as Lambda's ids have, 155 random bits
/// in all. Random rather than derived from the account, so that an id tells nothing
/// about who owns it and cannot be guessed.
pub fn new_url_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes: [u8; URL_ID_LEN] = rand::rng().random();
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if i == 26 {
                '0'
            } else {
                // 256 is a multiple of 32: every letter is equally likely.
                char::from(ALPHABET[usize::from(b % 32)])
            }
        })
        .collect()
}

/// Where function URLs are served: the parts of [`UrlConfig::function_url`] and
/// [`UrlConfig::path_url`] that are the server's, not the configuration's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlBase {
    /// `http` or `https`.
    pub scheme: String,
    /// The region in the host name (`us-east-1`).
    pub region: String,
    /// The domain under the region (`localhost` by default).
    pub domain: String,
    /// The port the URL listener serves; left out of URLs when it is the scheme's default.
    pub port: u16,
    /// The host of the path form (`127.0.0.1` by default).
    pub loopback: String,
}

impl UrlBase {
    /// Plain HTTP on `port` under `localhost`, the path form on `127.0.0.1`.
    pub fn new(region: impl Into<String>, port: u16) -> UrlBase {
        UrlBase {
            scheme: "http".to_owned(),
            region: region.into(),
            domain: "localhost".to_owned(),
            port,
            loopback: "127.0.0.1".to_owned(),
        }
    }

    /// The host name of the URL with `url_id`: `<url-id>.lambda-url.<region>.<domain>`.
    pub fn host(&self, url_id: &str) -> String {
        format!("{url_id}.{HOST_LABEL}.{}.{}", self.region, self.domain)
    }

    /// `:<port>`, or nothing for the scheme's default port.
    fn port_suffix(&self) -> String {
        let default = match self.scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        };
        if default == Some(self.port) {
            String::new()
        } else {
            format!(":{}", self.port)
        }
    }
}

/// One function URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlConfig {
    /// The URL's id ([`URL_ID_LEN`] lowercase letters and digits), fixed for its life.
    pub url_id: String,
    /// The function's name.
    pub function_name: String,
    /// The alias the URL invokes; `None` for the function's `$LATEST`.
    pub qualifier: Option<String>,
    /// Who may call it.
    pub auth_type: AuthType,
    /// Its CORS settings; `None` for no CORS.
    pub cors: Option<Cors>,
    /// How responses are sent.
    pub invoke_mode: InvokeMode,
    /// When it was made, in microseconds since the Unix epoch.
    pub creation_time_us: i64,
    /// When it was last changed, in microseconds since the Unix epoch.
    pub last_modified_time_us: i64,
}

impl UrlConfig {
    /// `<scheme>://<url-id>.lambda-url.<region>.<domain>[:<port>]/`, the `FunctionUrl`.
    pub fn function_url(&self, base: &UrlBase) -> String {
        format!(
            "{}://{}{}/",
            base.scheme,
            base.host(&self.url_id),
            base.port_suffix()
        )
    }

    /// `<scheme>://<loopback>[:<port>]/_url/<url-id>/`, the path form of the URL, for hosts
    /// where the names of the host form do not resolve.
    pub fn path_url(&self, base: &UrlBase) -> String {
        format!(
            "{}://{}{}{PATH_PREFIX}{}/",
            base.scheme,
            base.loopback,
            base.port_suffix(),
            self.url_id
        )
    }

    /// The function's ARN, with the alias when the URL has one (`FunctionArn`).
    pub fn function_arn(&self, region: &str, account_id: &str) -> String {
        let mut arn = format!(
            "arn:aws:lambda:{region}:{account_id}:function:{}",
            self.function_name
        );
        if let Some(q) = &self.qualifier {
            arn.push(':');
            arn.push_str(q);
        }
        arn
    }

    /// `CreationTime`, as Lambda writes it (`2023-06-08T13:20:18.244654Z`).
    pub fn creation_time(&self) -> String {
        iso_micros(self.creation_time_us)
    }

    /// `LastModifiedTime`, as Lambda writes it.
    pub fn last_modified_time(&self) -> String {
        iso_micros(self.last_modified_time_us)
    }

    /// The model's `FunctionUrlConfig` (the output of `GetFunctionUrlConfig` and
    /// `UpdateFunctionUrlConfig`, and an item of `ListFunctionUrlConfigs`).
    pub fn to_json(&self, base: &UrlBase, account_id: &str) -> Value {
        let mut m = self.common_json(base, account_id);
        m.insert(
            "LastModifiedTime".into(),
            Value::String(self.last_modified_time()),
        );
        Value::Object(m)
    }

    /// The output of `CreateFunctionUrlConfig`, which the model gives no
    /// `LastModifiedTime`.
    pub fn to_create_json(&self, base: &UrlBase, account_id: &str) -> Value {
        Value::Object(self.common_json(base, account_id))
    }

    fn common_json(&self, base: &UrlBase, account_id: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("FunctionUrl".into(), Value::String(self.function_url(base)));
        m.insert(
            "FunctionArn".into(),
            Value::String(self.function_arn(&base.region, account_id)),
        );
        m.insert(
            "AuthType".into(),
            Value::String(self.auth_type.as_str().to_owned()),
        );
        if let Some(c) = &self.cors {
            m.insert("Cors".into(), c.to_json());
        }
        m.insert("CreationTime".into(), Value::String(self.creation_time()));
        m.insert(
            "InvokeMode".into(),
            Value::String(self.invoke_mode.as_str().to_owned()),
        );
        m
    }
}

/// A page of `ListFunctionUrlConfigs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlPage {
    /// The configurations, oldest first.
    pub configs: Vec<UrlConfig>,
    /// The marker of the next page, when there is one.
    pub next_marker: Option<String>,
}

impl UrlPage {
    /// The model's `ListFunctionUrlConfigsResponse`.
    pub fn to_json(&self, base: &UrlBase, account_id: &str) -> Value {
        let mut m = Map::new();
        m.insert(
            "FunctionUrlConfigs".into(),
            Value::Array(
                self.configs
                    .iter()
                    .map(|c| c.to_json(base, account_id))
                    .collect(),
            ),
        );
        if let Some(n) = &self.next_marker {
            m.insert("NextMarker".into(), Value::String(n.clone()));
        }
        Value::Object(m)
    }
}

/// ISO-8601 UTC with microseconds and `Z`, the form of a function URL's timestamps.
pub fn iso_micros(us: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The body of `CreateFunctionUrlConfig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateUrlRequest {
    /// `AuthType` (required).
    pub auth_type: AuthType,
    /// `Cors`; `None` when absent or empty.
    pub cors: Option<Cors>,
    /// `InvokeMode`; `BUFFERED` when absent.
    pub invoke_mode: InvokeMode,
}

/// The body of `UpdateFunctionUrlConfig`: each member `None` when absent, which leaves the
/// setting as it is.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UpdateUrlRequest {
    /// A new `AuthType`.
    pub auth_type: Option<AuthType>,
    /// A new `Cors`: `Some(None)` (an empty `Cors`) removes the CORS settings.
    pub cors: Option<Option<Cors>>,
    /// A new `InvokeMode`.
    pub invoke_mode: Option<InvokeMode>,
}

/// The members of both bodies, read and checked.
struct Members {
    auth_type: Option<AuthType>,
    cors: Option<Cors>,
    invoke_mode: Option<InvokeMode>,
}

/// Reads a body's `AuthType`, `Cors` and `InvokeMode`, refusing anything else.
fn members(body: &[u8], shape: &str) -> Result<Members, UrlError> {
    let obj = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(UrlError::InvalidContent(
                    "Could not parse request body into json: the body must be a JSON object"
                        .to_owned(),
                ))
            }
            Err(e) => {
                return Err(UrlError::InvalidContent(format!(
                    "Could not parse request body into json: {e}"
                )))
            }
        }
    };
    let mut out = Members {
        auth_type: None,
        cors: None,
        invoke_mode: None,
    };
    for (key, value) in &obj {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "AuthType" => {
                let s = value
                    .as_str()
                    .ok_or_else(|| wrong_type("AuthType", "a string"))?;
                out.auth_type = Some(AuthType::parse(s)?);
            }
            "InvokeMode" => {
                let s = value
                    .as_str()
                    .ok_or_else(|| wrong_type("InvokeMode", "a string"))?;
                out.invoke_mode = Some(InvokeMode::parse(s)?);
            }
            "Cors" => out.cors = Some(Cors::from_json(value)?),
            other => return Err(unknown_member(other, shape)),
        }
    }
    Ok(out)
}

/// Reads a `CreateFunctionUrlConfig` body. `AuthType` is required; an unknown member, a
/// member of the wrong type, or a value outside the model is refused (see the crate's
/// error rules).
pub fn parse_create_request(body: &[u8]) -> Result<CreateUrlRequest, UrlError> {
    let m = members(body, "CreateFunctionUrlConfigRequest")?;
    Ok(CreateUrlRequest {
        auth_type: m.auth_type.ok_or_else(|| UrlError::missing("authType"))?,
        cors: m.cors.and_then(Cors::normalized),
        invoke_mode: m.invoke_mode.unwrap_or_default(),
    })
}

/// Reads an `UpdateFunctionUrlConfig` body (an empty body changes nothing).
pub fn parse_update_request(body: &[u8]) -> Result<UpdateUrlRequest, UrlError> {
    let m = members(body, "UpdateFunctionUrlConfigRequest")?;
    Ok(UpdateUrlRequest {
        auth_type: m.auth_type,
        cors: m.cors.map(Cors::normalized),
        invoke_mode: m.invoke_mode,
    })
}

/// Finds which function URL a request is for, and the path the function sees.
///
/// - Host form: `host` (the `Host` header or the URI's authority; compared without
///   regard to case, a `:port` suffix and a trailing dot ignored) is
///   `<url-id>.lambda-url.<region>.<domain>` of `base`; the path is the function's, and
///   must start with `/` (empty reads as `/`).
/// - Path form (any other host): `path` is `/_url/<url-id>` followed by nothing or by
///   `/...`; the function sees what follows the id, or `/`.
///
/// `None` when neither matches or the id is not well formed ([`is_url_id`]); the id
/// returned is always well formed and lowercase, and the path always starts with `/`.
pub fn route(host: Option<&str>, path: &str, base: &UrlBase) -> Option<(String, String)> {
    if let Some(id) = host.and_then(|h| host_url_id(h, base)) {
        return match path {
            "" => Some((id, "/".to_owned())),
            p if p.starts_with('/') => Some((id, p.to_owned())),
            _ => None,
        };
    }
    let rest = path.strip_prefix(PATH_PREFIX)?;
    let (id, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let id = id.to_ascii_lowercase();
    if !is_url_id(&id) {
        return None;
    }
    let tail = if tail.is_empty() { "/" } else { tail };
    Some((id, tail.to_owned()))
}

/// The URL id of a host-form host name of `base`.
fn host_url_id(host: &str, base: &UrlBase) -> Option<String> {
    let host = host.trim();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let suffix = format!(
        ".{HOST_LABEL}.{}.{}",
        base.region.to_ascii_lowercase(),
        base.domain.trim_end_matches('.').to_ascii_lowercase()
    );
    let id = name.strip_suffix(&suffix)?;
    is_url_id(id).then(|| id.to_owned())
}

/// An opaque list marker for the item with store sequence `seq`.
pub(crate) fn encode_marker(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("url:{seq}"))
}

/// The sequence a marker from [`encode_marker`] names.
pub(crate) fn decode_marker(marker: &str) -> Option<i64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix("url:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> UrlConfig {
        UrlConfig {
            url_id: "abcdefghijklmnopqrstuvwxyz012345".into(),
            function_name: "f".into(),
            qualifier: None,
            auth_type: AuthType::AwsIam,
            cors: None,
            invoke_mode: InvokeMode::Buffered,
            creation_time_us: 1_686_230_418_244_654,
            last_modified_time_us: 1_686_230_418_244_654,
        }
    }

    #[test]
    fn enums_read_and_write_the_models_spelling() {
        for a in [AuthType::AwsIam, AuthType::None] {
            assert_eq!(AuthType::parse(a.as_str()).unwrap(), a);
        }
        for m in [InvokeMode::Buffered, InvokeMode::ResponseStream] {
            assert_eq!(InvokeMode::parse(m.as_str()).unwrap(), m);
        }
        let e = AuthType::parse("aws_iam").unwrap_err();
        assert_eq!(e.code(), "ValidationException");
        assert!(e.to_string().contains("'authType'"), "{e}");
        let e = InvokeMode::parse("STREAM").unwrap_err();
        assert!(e.to_string().contains("'invokeMode'"), "{e}");
    }

    #[test]
    fn urls_arns_and_timestamps_have_lambdas_shape() {
        let base = UrlBase::new("us-east-1", 9000);
        let mut c = config();
        assert_eq!(
            c.function_url(&base),
            "http://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.localhost:9000/"
        );
        assert_eq!(
            c.path_url(&base),
            "http://127.0.0.1:9000/_url/abcdefghijklmnopqrstuvwxyz012345/"
        );
        let https = UrlBase {
            scheme: "https".into(),
            port: 443,
            domain: "on.aws".into(),
            ..base.clone()
        };
        assert_eq!(
            c.function_url(&https),
            "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/"
        );
        assert_eq!(
            c.function_arn("us-east-1", "123456789012"),
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        );
        c.qualifier = Some("prod".into());
        assert_eq!(
            c.function_arn("us-east-1", "123456789012"),
            "arn:aws:lambda:us-east-1:123456789012:function:f:prod"
        );
        assert_eq!(c.creation_time(), "2023-06-08T13:20:18.244654Z");
    }

    #[test]
    fn config_json_uses_the_models_names() {
        let base = UrlBase::new("us-east-1", 9000);
        let mut c = config();
        c.cors = Some(Cors {
            allow_credentials: Some(true),
            allow_origins: vec!["https://example.com".into()],
            max_age: Some(300),
            ..Cors::default()
        });
        let full = c.to_json(&base, "123456789012");
        let keys: Vec<&str> = full
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "FunctionUrl",
            "FunctionArn",
            "AuthType",
            "Cors",
            "CreationTime",
            "LastModifiedTime",
            "InvokeMode",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert_eq!(full["AuthType"], "AWS_IAM");
        assert_eq!(full["InvokeMode"], "BUFFERED");
        assert_eq!(full["Cors"]["AllowCredentials"], true);
        assert_eq!(full["Cors"]["AllowOrigins"][0], "https://example.com");
        assert_eq!(full["Cors"]["MaxAge"], 300);
        assert!(full["Cors"].get("AllowHeaders").is_none());
        let created = c.to_create_json(&base, "123456789012");
        assert!(created.get("LastModifiedTime").is_none());
        // What is written reads back.
        assert_eq!(
            Cors::from_json(&full["Cors"]).unwrap(),
            c.cors.clone().unwrap()
        );
        let page = UrlPage {
            configs: vec![c],
            next_marker: Some("m".into()),
        };
        let j = page.to_json(&base, "123456789012");
        assert_eq!(j["FunctionUrlConfigs"].as_array().unwrap().len(), 1);
        assert_eq!(j["NextMarker"], "m");
    }

    #[test]
    fn cors_is_validated_as_the_model_says() {
        let ok = Cors {
            allow_credentials: Some(false),
            allow_headers: vec!["X-Custom-Header".into(), "*".into()],
            allow_methods: vec!["GET".into(), "post".into(), "*".into()],
            allow_origins: vec!["https://example.com".into(), "*".into()],
            expose_headers: vec!["Date".into()],
            max_age: Some(86_400),
        };
        ok.validate().unwrap();
        let code = |c: Cors| c.validate().unwrap_err();
        let e = code(Cors {
            allow_headers: vec!["a".into(); 101],
            ..Cors::default()
        });
        assert_eq!(e.code(), "ValidationException");
        assert!(e.to_string().contains("'cors.allowHeaders'"), "{e}");
        let e = code(Cors {
            allow_methods: vec!["GET".into(); 7],
            ..Cors::default()
        });
        assert!(e.to_string().contains("'cors.allowMethods'"), "{e}");
        let e = code(Cors {
            allow_origins: vec![String::new()],
            ..Cors::default()
        });
        assert!(
            e.to_string().contains("'cors.allowOrigins.1.member'"),
            "{e}"
        );
        let e = code(Cors {
            allow_origins: vec!["h".repeat(254)],
            ..Cors::default()
        });
        assert_eq!(e.code(), "ValidationException");
        let e = code(Cors {
            expose_headers: vec!["h".repeat(1025)],
            ..Cors::default()
        });
        assert!(e.to_string().contains("cors.exposeHeaders.1.member"), "{e}");
        let e = code(Cors {
            max_age: Some(86_401),
            ..Cors::default()
        });
        assert!(e.to_string().contains("'cors.maxAge'"), "{e}");
        // OPTIONS is longer than the model's methods.
        let e = code(Cors {
            allow_methods: vec!["OPTIONS".into()],
            ..Cors::default()
        });
        assert!(
            e.to_string().contains("'cors.allowMethods.1.member'"),
            "{e}"
        );
        // What the model allows and Lambda (or a safe header) does not.
        let e = code(Cors {
            allow_methods: vec!["TRACE".into()],
            ..Cors::default()
        });
        assert_eq!(e.code(), "InvalidParameterValueException");
        assert!(e.to_string().contains("Cors.AllowMethods"), "{e}");
        for bad in ["x\r\nset-cookie: a=b", "", "two words"] {
            let e = code(Cors {
                allow_headers: vec![bad.into()],
                ..Cors::default()
            });
            assert_eq!(e.code(), "InvalidParameterValueException", "{bad:?}");
            let e = code(Cors {
                expose_headers: vec![bad.into()],
                ..Cors::default()
            });
            assert!(e.to_string().contains("Cors.ExposeHeaders"), "{e}");
        }
        for bad in ["https://a.com,https://b.com", "https://a.com\r\n", "a b"] {
            let e = code(Cors {
                allow_origins: vec![bad.into()],
                ..Cors::default()
            });
            assert!(e.to_string().contains("Cors.AllowOrigins"), "{e}");
        }
    }

    #[test]
    fn create_bodies_are_read_strictly() {
        let r = parse_create_request(
            br#"{"AuthType":"NONE","Cors":{"AllowOrigins":["*"],"MaxAge":5},"InvokeMode":"RESPONSE_STREAM"}"#,
        )
        .unwrap();
        assert_eq!(r.auth_type, AuthType::None);
        assert_eq!(r.invoke_mode, InvokeMode::ResponseStream);
        assert_eq!(r.cors.unwrap().max_age, Some(5));
        let r =
            parse_create_request(br#"{"AuthType":"AWS_IAM","Cors":{},"InvokeMode":null}"#).unwrap();
        assert_eq!(r.cors, None);
        assert_eq!(r.invoke_mode, InvokeMode::Buffered);
        // AuthType is required.
        for body in [&b"{}"[..], b"", br#"{"AuthType":null}"#] {
            let e = parse_create_request(body).unwrap_err();
            assert_eq!(e.code(), "ValidationException");
            assert!(e.to_string().contains("'authType'"), "{e}");
        }
        // Unknown members, at the top and inside Cors, are refused by name.
        let e = parse_create_request(br#"{"AuthType":"NONE","Qualifier":"x"}"#).unwrap_err();
        assert_eq!(e.code(), "InvalidRequestContentException");
        assert!(e.to_string().contains("`Qualifier`"), "{e}");
        let e = parse_create_request(br#"{"AuthType":"NONE","Cors":{"AllowOrigin":["*"]}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("`Cors.AllowOrigin`"), "{e}");
        // Wrong types and broken JSON.
        for body in [
            &br#"{"AuthType":1}"#[..],
            br#"{"AuthType":"NONE","Cors":[]}"#,
            br#"{"AuthType":"NONE","Cors":{"MaxAge":1.5}}"#,
            br#"{"AuthType":"NONE","Cors":{"AllowHeaders":"x"}}"#,
            br#"{"AuthType":"NONE","Cors":{"AllowHeaders":[1]}}"#,
            br#"{"AuthType":"NONE","Cors":{"AllowCredentials":"true"}}"#,
            br#"["AuthType"]"#,
            b"{",
        ] {
            let e = parse_create_request(body).unwrap_err();
            assert_eq!(
                e.code(),
                "InvalidRequestContentException",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [
            &br#"{"AuthType":"NONE","Cors":{"MaxAge":-1}}"#[..],
            br#"{"AuthType":"NONE","Cors":{"MaxAge":86401}}"#,
            br#"{"AuthType":"NONE","Cors":{"MaxAge":18446744073709551615}}"#,
            br#"{"AuthType":"NONE","InvokeMode":"buffered"}"#,
        ] {
            let e = parse_create_request(body).unwrap_err();
            assert_eq!(e.code(), "ValidationException", "{e}");
        }
    }

    #[test]
    fn update_bodies_change_only_what_they_name() {
        assert_eq!(
            parse_update_request(b"").unwrap(),
            UpdateUrlRequest::default()
        );
        assert_eq!(
            parse_update_request(b"{}").unwrap(),
            UpdateUrlRequest::default()
        );
        let r = parse_update_request(br#"{"Cors":{}}"#).unwrap();
        assert_eq!(r.cors, Some(None));
        let r = parse_update_request(br#"{"AuthType":"NONE"}"#).unwrap();
        assert_eq!(r.auth_type, Some(AuthType::None));
        assert_eq!(r.cors, None);
        let e = parse_update_request(br#"{"FunctionName":"f"}"#).unwrap_err();
        assert!(e.to_string().contains("`FunctionName`"), "{e}");
    }

    #[test]
    fn names_and_qualifiers_follow_the_model() {
        check_function_name("my-function_1").unwrap();
        for bad in ["", "a:b", &"f".repeat(65)] {
            assert_eq!(
                check_function_name(bad).unwrap_err().code(),
                "ValidationException"
            );
        }
        check_qualifier("prod").unwrap();
        check_qualifier("v2").unwrap();
        for bad in ["$LATEST", "1", "42", "", "a b", &"q".repeat(129)] {
            let e = check_qualifier(bad).unwrap_err();
            assert_eq!(e.code(), "ValidationException", "{bad}");
            assert!(e.to_string().contains("'qualifier'"), "{e}");
        }
    }

    #[test]
    fn new_ids_are_well_formed_and_differ() {
        let a = new_url_id();
        let b = new_url_id();
        assert!(is_url_id(&a) && is_url_id(&b), "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a.as_bytes()[26], b'0');
        assert!(!is_url_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"));
        assert!(!is_url_id("abc"));
    }

    #[test]
    fn routes_read_both_forms() {
        let base = UrlBase::new("us-east-1", 9000);
        let id = "abcdefghijklmnopqrstuvwxyz012345";
        let host = base.host(id);
        assert_eq!(
            route(Some(&host), "/a/b", &base),
            Some((id.to_owned(), "/a/b".to_owned()))
        );
        let loud = format!("{}:9000", host.to_ascii_uppercase());
        assert_eq!(
            route(Some(&loud), "", &base),
            Some((id.to_owned(), "/".to_owned()))
        );
        assert_eq!(
            route(Some(&format!("{host}.")), "/", &base).map(|r| r.0),
            Some(id.to_owned())
        );
        // The host form's path is the function's, even one that looks like the path form.
        assert_eq!(
            route(Some(&host), "/_url/x", &base),
            Some((id.to_owned(), "/_url/x".to_owned()))
        );
        assert_eq!(route(Some(&host), "*", &base), None);
        // Another region or domain is not ours; the path form still applies on any host.
        let other = format!("{id}.lambda-url.eu-west-1.localhost");
        assert_eq!(route(Some(&other), "/", &base), None);
        for (path, rest) in [
            (format!("/_url/{id}"), "/"),
            (format!("/_url/{id}/"), "/"),
            (format!("/_url/{id}/x/y"), "/x/y"),
            (format!("/_url/{}/x", id.to_ascii_uppercase()), "/x"),
        ] {
            assert_eq!(
                route(Some("127.0.0.1:9000"), &path, &base),
                Some((id.to_owned(), rest.to_owned())),
                "{path}"
            );
            assert_eq!(route(None, &path, &base).map(|r| r.1), Some(rest.into()));
        }
        for path in [
            format!("/_url/{id}x"),
            format!("/_url/{}", &id[1..]),
            "/_url/".to_owned(),
            "/_url//x".to_owned(),
            format!("/_urls/{id}"),
            format!("_url/{id}"),
        ] {
            assert_eq!(route(Some("localhost"), &path, &base), None, "{path}");
        }
    }

    #[test]
    fn markers_round_trip_and_refuse_strangers() {
        assert_eq!(decode_marker(&encode_marker(42)), Some(42));
        assert_eq!(decode_marker("42"), None);
        assert_eq!(decode_marker("!!"), None);
    }

    proptest! {
        #[test]
        fn route_never_panics_and_returns_only_good_ids(
            host in proptest::option::of(".{0,80}"),
            path in ".{0,120}",
        ) {
            let base = UrlBase::new("us-east-1", 9000);
            if let Some((id, rest)) = route(host.as_deref(), &path, &base) {
                prop_assert!(is_url_id(&id));
                prop_assert!(rest.starts_with('/'));
            }
        }

        #[test]
        fn route_finds_every_well_formed_url(
            id in "[a-z0-9]{32}",
            tail in "(/[a-zA-Z0-9._~%-]{0,12}){0,4}",
            port in proptest::option::of(1u16..),
        ) {
            let base = UrlBase::new("us-east-1", 9000);
            let host = match port {
                Some(p) => format!("{}:{p}", base.host(&id)),
                None => base.host(&id),
            };
            let want = if tail.is_empty() { "/".to_owned() } else { tail.clone() };
            prop_assert_eq!(
                route(Some(&host), &tail, &base),
                Some((id.clone(), want.clone()))
            );
            prop_assert_eq!(
                route(Some("localhost"), &format!("/_url/{id}{tail}"), &base),
                Some((id, want))
            );
        }

        #[test]
        fn route_refuses_malformed_ids(id in "[a-z0-9]{0,31}|[a-z0-9]{33,40}|[a-z0-9]{0,31}[^a-zA-Z0-9/][a-z0-9]{0,31}") {
            let base = UrlBase::new("us-east-1", 9000);
            prop_assert_eq!(route(Some(&base.host(&id)), "/", &base), None);
            prop_assert_eq!(route(None, &format!("/_url/{id}/x"), &base), None);
        }

        #[test]
        fn create_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_create_request(&body);
            let _ = parse_update_request(&body);
        }

        #[test]
        fn cors_json_never_panics(
            key in "AllowHeaders|AllowMethods|AllowOrigins|ExposeHeaders|MaxAge|AllowCredentials|X",
            value in ".{0,40}",
        ) {
            let body = format!(r#"{{"AuthType":"NONE","Cors":{{"{key}":{value}}}}}"#);
            let _ = parse_create_request(body.as_bytes());
            let body = format!(r#"{{"AuthType":"NONE","Cors":{{"{key}":["{}"]}}}}"#, value.escape_default());
            if let Ok(r) = parse_create_request(body.as_bytes()) {
                // Whatever is accepted is valid.
                if let Some(c) = r.cors {
                    prop_assert!(c.validate().is_ok());
                }
            }
        }
    }
}

//! The audit event: CloudTrail's record of one API call (eventVersion 1.11), the redaction
//! that keeps secrets out of it, and its encoding for the log.
//!
//! **Canonical form.** An event is serialised once, by [`EncodedEvent::new`], and those
//! exact bytes are stored, hashed into the log and returned by lookups; nothing re-serialises
//! a stored event. So verification needs no canonical JSON: it hashes the bytes it reads.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::Error;

/// The CloudTrail record format version Warden writes.
pub const EVENT_VERSION: &str = "1.11";

/// What CloudTrail writes in place of a value it omits.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// The request and response values Warden never records, as [`redact`] takes them. A bare
/// name matches that key at any depth; a dotted path matches that chain of keys starting at
/// any depth; keys compare ignoring ASCII case, since Lambda's API spells them
/// `Environment`, CloudTrail `environment`.
///
/// - `Environment.Variables`: a function's environment (Lambda's `CreateFunction`,
///   `UpdateFunctionConfiguration`, `GetFunction`);
/// - `ZipFile`: deployment package bytes;
/// - `Payload`: an invocation's event and its response;
/// - `SecretString`, `SecretBinary`: Secrets Manager values;
/// - `Plaintext`: KMS data keys and decrypted data;
/// - `PrivateKey`, `SecretAccessKey`, `SessionToken`, `Password`: credentials.
pub const DEFAULT_REDACTIONS: &[&str] = &[
    "Environment.Variables",
    "ZipFile",
    "Payload",
    "SecretString",
    "SecretBinary",
    "Plaintext",
    "PrivateKey",
    "SecretAccessKey",
    "SessionToken",
    "Password",
];

/// One API call as CloudTrail records it. Field names and order are CloudTrail's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudTrailEvent {
    /// The record format version, [`EVENT_VERSION`].
    pub event_version: String,
    /// Who made the call.
    pub user_identity: UserIdentity,
    /// When the call was made: ISO 8601 in UTC, `2024-05-01T12:00:00Z` (see [`event_time`]).
    pub event_time: String,
    /// The service called, `lambda.amazonaws.com`.
    pub event_source: String,
    /// The API action, `CreateFunction20150331`.
    pub event_name: String,
    /// The region the call went to.
    pub aws_region: String,
    /// The caller's address.
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    /// The caller's `User-Agent`.
    pub user_agent: String,
    /// The error the call returned, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The error's message, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The request's parameters, redacted; `null` when it had none.
    pub request_parameters: Option<Value>,
    /// The response's elements, redacted; `null` for reads and failures, as CloudTrail.
    pub response_elements: Option<Value>,
    /// What CloudTrail adds beyond the request and response. Warden writes
    /// `authorizedActions` here: each IAM action the call was allowed, with its resource
    /// (what policy generation reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<Value>,
    /// The request id the caller was given.
    #[serde(rename = "requestID")]
    pub request_id: String,
    /// This record's unique id.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// Whether the call only reads.
    pub read_only: bool,
    /// The resources the call named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// `AwsApiCall`.
    pub event_type: String,
    /// Whether this is a management (control-plane) event.
    pub management_event: bool,
    /// The account the call was made in.
    pub recipient_account_id: String,
    /// `Management` or `Data`.
    pub event_category: String,
}

/// The caller, as CloudTrail's `userIdentity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// The kind of principal.
    #[serde(rename = "type")]
    pub kind: IdentityType,
    /// The principal's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// The principal's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The principal's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The access key the request was signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// An IAM user's or the root's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Temporary credentials' session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_context: Option<SessionContext>,
    /// The service that called on the principal's behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
}

/// The kinds of principal CloudTrail names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityType {
    /// An IAM user's long-term key.
    #[serde(rename = "IAMUser")]
    IamUser,
    /// A role's temporary credentials.
    AssumedRole,
    /// The account's root.
    Root,
    /// A service acting itself.
    #[serde(rename = "AWSService")]
    AwsService,
    /// A caller that could not be identified (an unauthenticated request).
    Unknown,
}

/// The session of temporary credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext {
    /// Who issued the session (the role), when a role did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_issuer: Option<SessionIssuer>,
    /// When and how the session began.
    pub attributes: SessionAttributes,
}

/// The role (or user) that issued a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer {
    /// `Role`, `IAMUser` or `Root`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The issuer's unique id.
    pub principal_id: String,
    /// The issuer's ARN.
    pub arn: String,
    /// The issuer's account.
    pub account_id: String,
    /// The issuer's friendly name.
    pub user_name: String,
}

/// A session's attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAttributes {
    /// When the credentials were issued (ISO 8601).
    pub creation_date: String,
    /// `"true"` or `"false"`: CloudTrail writes a string.
    pub mfa_authenticated: String,
}

/// A resource the call named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// The resource's ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// Its account.
    #[serde(rename = "accountId")]
    pub account_id: String,
    /// Its type, `AWS::Lambda::Function`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl UserIdentity {
    /// The name LookupEvents' `Username` attribute matches: the user's name, the session
    /// name of an assumed role (the ARN's last segment), or `root`.
    pub fn lookup_name(&self) -> Option<String> {
        if let Some(name) = &self.user_name {
            return Some(name.clone());
        }
        match self.kind {
            IdentityType::AssumedRole => self
                .arn
                .as_deref()
                .and_then(|arn| arn.rsplit('/').next())
                .map(str::to_owned),
            IdentityType::Root => Some("root".to_owned()),
            _ => None,
        }
    }
}

/// CloudTrail's `eventTime` for `epoch_millis`: ISO 8601 UTC to the second.
pub fn event_time(epoch_millis: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an `eventTime` (any RFC 3339 time) to epoch milliseconds.
pub fn parse_event_time(value: &str) -> Result<i64, Error> {
    let t = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| Error::EventTime {
        value: value.to_owned(),
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| Error::EventTime {
        value: value.to_owned(),
    })
}

/// Replaces, in `value`, every value a rule names with [`HIDDEN`] (rules as in
/// [`DEFAULT_REDACTIONS`]). A `null` is left alone: there is nothing to hide.
pub fn redact(value: &mut Value, rules: &[&str]) {
    let rules: Vec<Vec<&str>> = rules.iter().map(|r| r.split('.').collect()).collect();
    redact_in(value, &rules);
}

fn redact_in(value: &mut Value, rules: &[Vec<&str>]) {
    match value {
        Value::Object(map) => {
            for rule in rules {
                hide_path(map, rule);
            }
            for v in map.values_mut() {
                redact_in(v, rules);
            }
        }
        Value::Array(items) => {
            for v in items {
                redact_in(v, rules);
            }
        }
        _ => {}
    }
}

/// Hides the value at `path` below `map`, if every key on the way is there.
fn hide_path(map: &mut serde_json::Map<String, Value>, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    for (key, v) in map.iter_mut() {
        if !key.eq_ignore_ascii_case(first) {
            continue;
        }
        if rest.is_empty() {
            if !v.is_null() {
                *v = Value::String(HIDDEN.to_owned());
            }
        } else if let Value::Object(inner) = v {
            hide_path(inner, rest);
        }
    }
}

/// The values of an event the log indexes for LookupEvents, taken from the event itself so
/// that verification can check the stored columns against the stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIndex {
    /// `eventTime` in epoch milliseconds.
    pub time_ms: i64,
    /// `eventID`.
    pub event_id: String,
    /// `eventName`.
    pub event_name: String,
    /// `eventSource`.
    pub event_source: String,
    /// [`UserIdentity::lookup_name`].
    pub username: Option<String>,
    /// `userIdentity.arn`.
    pub principal_arn: Option<String>,
    /// `userIdentity.accessKeyId`.
    pub access_key_id: Option<String>,
    /// `readOnly`.
    pub read_only: bool,
    /// The ARNs of `resources`.
    pub resources: Vec<String>,
}

impl EventIndex {
    /// The index values of `event`.
    pub fn of(event: &CloudTrailEvent) -> Result<Self, Error> {
        Ok(EventIndex {
            time_ms: parse_event_time(&event.event_time)?,
            event_id: event.event_id.clone(),
            event_name: event.event_name.clone(),
            event_source: event.event_source.clone(),
            username: event.user_identity.lookup_name(),
            principal_arn: event.user_identity.arn.clone(),
            access_key_id: event.user_identity.access_key_id.clone(),
            read_only: event.read_only,
            resources: event.resources.iter().map(|r| r.arn.clone()).collect(),
        })
    }
}

/// An event serialised for the log: the bytes that will be stored and hashed, and the
/// values indexed beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    bytes: Vec<u8>,
    index: EventIndex,
}

impl EncodedEvent {
    /// Serialises `event` (the one serialisation it ever gets).
    pub fn new(event: &CloudTrailEvent) -> Result<Self, Error> {
        let index = EventIndex::of(event)?;
        let bytes = serde_json::to_vec(event).map_err(Error::EncodeEvent)?;
        Ok(EncodedEvent { bytes, index })
    }

    /// Takes already serialised event bytes, kept exactly as given.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        let event = decode(&bytes)?;
        Ok(EncodedEvent {
            index: EventIndex::of(&event)?,
            bytes,
        })
    }

    /// The bytes the log stores and hashes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The indexed values.
    pub fn index(&self) -> &EventIndex {
        &self.index
    }
}

/// Parses stored event bytes.
pub fn decode(bytes: &[u8]) -> Result<CloudTrailEvent, Error> {
    serde_json::from_slice(bytes).map_err(Error::DecodeEvent)
}

#[cfg(test)]
mod tests;

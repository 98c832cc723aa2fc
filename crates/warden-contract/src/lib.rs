//! Input contracts: what an event must look like before any function code runs.
//!
//! A function (or one of its aliases) may carry an *input contract*, a small JSON document that
//! the API layer stores, compiles once per version with [`Compiled::compile`], and applies to
//! every event: Lambda Invoke payloads through [`Compiled::check_event`], and requests arriving
//! at the function's URL through [`Compiled::check_request`] (the HTTP part, before the event is
//! built) and then [`Compiled::check_event`] (the event built from it). A violation is meant to
//! become HTTP 400 `InvalidRequestContentException` ([`Violations::code`]), whose message names
//! each failing location.
//!
//! # The document
//!
//! ```json
//! {
//!   "EventSchema": { "type": "object", "required": ["order"] },
//!   "Json": { "MaxDepth": 64, "MaxStringLength": 262144, "AllowDuplicateKeys": false },
//!   "Url": {
//!     "AllowedMethods": ["GET", "POST"],
//!     "AllowedPaths": ["/orders", "/orders/*"],
//!     "AllowedContentTypes": ["application/json"],
//!     "MaxBodyBytes": 65536,
//!     "MaxHeaderBytes": 16384,
//!     "RequiredHeaders": ["x-api-key"]
//!   }
//! }
//! ```
//!
//! Every member is optional; unknown keys are refused by name, as are repeated keys anywhere
//! in the document, and documents over [`MAX_CONTRACT_BYTES`].
//!
//! - `EventSchema`: a JSON Schema, draft 2020-12 unless its `$schema` names draft-07; any other
//!   `$schema` is refused. Only references within the document itself (`$ref` values starting
//!   with `#`) are accepted: any other `$ref`, `$dynamicRef` or `$recursiveRef` (remote,
//!   `file:`, relative, URN) is refused at compile time, wherever it is written, and the schema
//!   is compiled with a retriever that refuses every URI, so nothing is ever fetched. `format`
//!   keeps each draft's default in the `jsonschema` crate: an annotation only in 2020-12,
//!   asserted for the formats the crate knows in draft-07 (unknown formats, `idn-email` and
//!   `idn-hostname` included, are ignored). A `pattern` with look-around or back-references
//!   gives up after a bounded number of backtracking steps, which counts as a violation.
//! - `Json`: limits on the payload's JSON text, checked before the schema.
//!   - `MaxDepth` (1 to 127, default 64): how many arrays/objects may nest; `{"a":[1]}` has
//!     depth 2. 127 is the deepest serde_json builds.
//!   - `MaxStringLength` (1 to 6 MiB, default 262144): the longest string or object key, in
//!     UTF-8 bytes after escapes are decoded.
//!   - `AllowDuplicateKeys`: whether an object may repeat a key (compared after decoding).
//!   - Numbers: a number beyond the IEEE-754 double range (`1e400`) is always refused, as no
//!     consumer can hold it. When the contract has a `Json` section, integer literals (no
//!     fraction, no exponent) beyond ±(2^53−1) are refused as well, since readers that hold
//!     numbers as doubles would silently change them.
//!
//!   **Defaults.** Without a `Json` section the limits are MaxDepth 64 and MaxStringLength
//!   262144 (the checks are bounded whatever the contract says), duplicate keys are *allowed*
//!   and large integers accepted, as Lambda itself accepts them: a contract that only declares a
//!   schema does not start refusing payloads the function already receives. Declaring a `Json`
//!   section, even `{}`, opts into the strict reading: duplicate keys refused unless
//!   `AllowDuplicateKeys` is `true`, and the ±(2^53−1) integer rule.
//! - `Url`: rules for function URL requests; see [`Compiled::check_request`] and the path
//!   pattern rule there. Bounds: `MaxBodyBytes` 1 to 6 MiB, `MaxHeaderBytes` 1 to 1 MiB, at most
//!   32 entries in each list; methods are uppercase tokens, content types `type/subtype`
//!   without parameters, header names tokens (stored in lowercase, matched case-insensitively).
//!
//! # The event check, in order
//!
//! 1. Size: a payload over [`MAX_EVENT_BYTES`] (6 MiB, Lambda's synchronous limit) is refused.
//!    An empty payload is checked as `{}`, which is how Lambda hands it to the function.
//! 2. UTF-8.
//! 3. A bounded JSON scan, iterative, so no nesting depth can exhaust the stack: grammar, depth,
//!    string length, duplicate keys, number range, each refusal naming its JSON Pointer.
//! 4. The schema, on the value serde_json builds from the text. At most [`MAX_VIOLATIONS`]
//!    violations are kept (the rest only counted), and for payloads of more than 10,000 values
//!    only the first schema violation is reported, so a payload with a million errors stays
//!    cheap.
//!
//! Messages never carry more of the payload than an excerpt: at most 32 characters, control and
//! non-ASCII characters escaped as `\u{..}`, `…` appended when cut.
//!
//! # What it never does
//!
//! No network, no environment: checking does no I/O. Only [`store`] touches the disk, to
//! keep each function's contract document in `DATA_DIR/contracts.db`. The `jsonschema`
//! crate is built without its HTTP and file resolvers (`default-features = false`), and no
//! `unsafe` is used.

#![forbid(unsafe_code)]

mod document;
mod excerpt;
mod scan;
mod schema;
pub mod store;
mod url;

use std::fmt;

use serde_json::Value;

pub use document::{
    InputContract, DEFAULT_MAX_DEPTH, DEFAULT_MAX_STRING_LENGTH, MAX_CONTRACT_BYTES, MAX_MAX_DEPTH,
};
pub use excerpt::EXCERPT_CHARS;

use excerpt::clip;
use scan::{scan, ScanError, ScanLimits};
use schema::EventSchema;
use url::UrlRules;

/// The largest event payload checked, in bytes (6 MiB); a larger one is a violation.
pub const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;

/// How many violations are kept; further ones are only counted.
pub const MAX_VIOLATIONS: usize = 10;

/// Why a contract document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// The document is over [`MAX_CONTRACT_BYTES`].
    #[error("the contract document is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The document's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The document is not JSON, repeats a key, has an unknown key (named) or a value of the
    /// wrong type.
    #[error("the contract document is not valid: {0}")]
    Malformed(String),
    /// A limit is outside its bounds.
    #[error("{field} is {value}; it must be from {min} to {max}")]
    OutOfRange {
        /// The member, e.g. `Json.MaxDepth`.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },
    /// A member's value is not acceptable: a malformed method, path, content type or header
    /// name, a list that is empty, too long or repeats an entry, a schema that is neither an
    /// object nor a boolean.
    #[error("{field}: {reason}")]
    InvalidValue {
        /// The member, e.g. `Url.AllowedPaths`.
        field: String,
        /// Why, quoting at most an excerpt of the value.
        reason: String,
    },
    /// The schema's `$schema` names a dialect other than draft 2020-12 or draft-07.
    #[error(
        "EventSchema: $schema \"{0}\" is not supported; use \
         https://json-schema.org/draft/2020-12/schema (the default) or \
         http://json-schema.org/draft-07/schema#"
    )]
    UnsupportedDialect(String),
    /// The schema refers to something outside the document.
    #[error(
        "EventSchema{location}: reference \"{reference}\" leaves the contract; only references \
         within the document (starting with #) are allowed"
    )]
    ExternalRef {
        /// Where in the schema, as a JSON Pointer.
        location: String,
        /// The reference, as written.
        reference: String,
    },
    /// The schema is not a valid schema of its dialect.
    #[error("EventSchema{location}: {message}")]
    InvalidSchema {
        /// Where in the schema, as a JSON Pointer.
        location: String,
        /// What is wrong.
        message: String,
    },
}

impl ContractError {
    /// The API error code this refusal maps to.
    pub fn code(&self) -> &'static str {
        match self {
            ContractError::TooLarge { .. }
            | ContractError::Malformed(_)
            | ContractError::OutOfRange { .. }
            | ContractError::InvalidValue { .. }
            | ContractError::UnsupportedDialect(_)
            | ContractError::ExternalRef { .. }
            | ContractError::InvalidSchema { .. } => "InvalidParameterValueException",
        }
    }
}

/// One way an event or request breaks its contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where: a JSON Pointer into the payload such as `/order/id` (empty for the payload as a
    /// whole; segments are excerpts), or for a request `method`, `path`, `headers`,
    /// `header NAME` or `body`.
    pub location: String,
    /// What, e.g. `7 is not of type "string"`; quotes at most an excerpt of any value.
    pub message: String,
}

impl Violation {
    pub(crate) fn new(location: impl Into<String>, message: String) -> Violation {
        Violation {
            location: location.into(),
            message,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.location, self.message)
        }
    }
}

/// The violations of one event or request: at most [`MAX_VIOLATIONS`] of them, and how many
/// more were found. Displays as `a; b; …; and N more`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations {
    list: Vec<Violation>,
    omitted: usize,
}

impl Violations {
    /// The violations kept, in the order they were found.
    pub fn as_slice(&self) -> &[Violation] {
        &self.list
    }

    /// How many further violations were found but not kept.
    pub fn omitted(&self) -> usize {
        self.omitted
    }

    /// How many violations were found, kept or not.
    pub fn len(&self) -> usize {
        self.list.len() + self.omitted
    }

    /// Whether no violation was found (never the case for one a check returned).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The API error code a violation maps to (with HTTP status 400).
    pub fn code(&self) -> &'static str {
        "InvalidRequestContentException"
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        if self.omitted > 0 {
            write!(f, "; and {} more", self.omitted)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// Collects violations, keeping the first [`MAX_VIOLATIONS`].
#[derive(Debug, Default)]
pub(crate) struct ViolationList {
    list: Vec<Violation>,
    omitted: usize,
}

impl ViolationList {
    pub(crate) fn push(&mut self, violation: Violation) {
        if self.list.len() < MAX_VIOLATIONS {
            self.list.push(violation);
        } else {
            self.omitted += 1;
        }
    }

    pub(crate) fn into_violations(self) -> Option<Violations> {
        (!self.list.is_empty()).then_some(Violations {
            list: self.list,
            omitted: self.omitted,
        })
    }

    fn into_result(self) -> Result<(), Violations> {
        self.into_violations().map_or(Ok(()), Err)
    }
}

/// The HTTP part of a function URL request, as [`Compiled::check_request`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The method, as sent (methods are case-sensitive).
    pub method: &'a str,
    /// The path, as sent, not decoded; a query string after `?` is ignored.
    pub path: &'a str,
    /// Every header, names in any case, values as raw bytes.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body's length in bytes.
    pub body_len: usize,
}

/// A contract ready to check events and requests; `Send + Sync`, cheap to share in an `Arc`.
pub struct Compiled {
    schema: Option<EventSchema>,
    limits: ScanLimits,
    url: Option<UrlRules>,
}

// The API layer shares one compiled contract between request handlers.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Compiled>();
};

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("has_schema", &self.schema.is_some())
            .field("limits", &self.limits)
            .field("url", &self.url)
            .finish()
    }
}

impl Compiled {
    /// Compiles a contract: checks its bounds again, then compiles the `EventSchema`, refusing
    /// unsupported dialects and any reference that leaves the document.
    pub fn compile(contract: &InputContract) -> Result<Compiled, ContractError> {
        let mut contract = contract.clone();
        contract.check_and_normalize()?;
        let schema = contract
            .event_schema
            .as_ref()
            .map(EventSchema::compile)
            .transpose()?;
        let limits = match &contract.json {
            None => ScanLimits {
                max_depth: DEFAULT_MAX_DEPTH as usize,
                max_string_bytes: DEFAULT_MAX_STRING_LENGTH as usize,
                allow_duplicate_keys: true,
                safe_integers: false,
            },
            Some(json) => ScanLimits {
                max_depth: json.max_depth.unwrap_or(DEFAULT_MAX_DEPTH) as usize,
                max_string_bytes: json
                    .max_string_length
                    .unwrap_or(DEFAULT_MAX_STRING_LENGTH)
                    .try_into()
                    .unwrap_or(usize::MAX),
                allow_duplicate_keys: json.allow_duplicate_keys.unwrap_or(false),
                safe_integers: true,
            },
        };
        Ok(Compiled {
            schema,
            limits,
            url: contract.url.as_ref().map(UrlRules::new),
        })
    }

    /// Checks an event payload, bytes as received. Order: size, UTF-8, the bounded JSON scan
    /// (grammar, depth, string length, duplicate keys, numbers), then the schema; the first
    /// three stop at their first violation. An empty payload is checked as `{}`.
    pub fn check_event(&self, payload: &[u8]) -> Result<(), Violations> {
        let mut out = ViolationList::default();
        if payload.len() > MAX_EVENT_BYTES {
            out.push(Violation::new(
                "",
                format!(
                    "payload is {} bytes; the limit is {MAX_EVENT_BYTES}",
                    payload.len()
                ),
            ));
            return out.into_result();
        }
        let (value, values) = if payload.is_empty() {
            (Value::Object(serde_json::Map::new()), 1)
        } else {
            let text = match std::str::from_utf8(payload) {
                Ok(text) => text,
                Err(e) => {
                    out.push(Violation::new(
                        "",
                        format!(
                            "payload is not valid UTF-8 (invalid byte at offset {})",
                            e.valid_up_to()
                        ),
                    ));
                    return out.into_result();
                }
            };
            let values = match scan(text, self.limits) {
                Ok(scanned) => scanned.values,
                Err(ScanError::Syntax { reason, offset }) => {
                    out.push(Violation::new(
                        "",
                        format!(
                            "payload is not valid JSON: {}",
                            ScanError::syntax_message(reason, payload, offset)
                        ),
                    ));
                    return out.into_result();
                }
                Err(ScanError::Limit { location, message }) => {
                    out.push(Violation::new(location, message));
                    return out.into_result();
                }
            };
            if self.schema.is_none() {
                return Ok(());
            }
            match serde_json::from_str::<Value>(text) {
                Ok(value) => (value, values),
                Err(e) => {
                    out.push(Violation::new(
                        "",
                        format!("payload is not valid JSON: {}", clip(&e.to_string(), 200)),
                    ));
                    return out.into_result();
                }
            }
        };
        if let Some(schema) = &self.schema {
            schema.check(&value, values, &mut out);
        }
        out.into_result()
    }

    /// The contract's `Url.MaxBodyBytes`, if it sets one: a URL listener reads no more of
    /// a body than this.
    pub fn max_body_bytes(&self) -> Option<usize> {
        self.url
            .as_ref()
            .and_then(UrlRules::max_body_bytes)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Checks the HTTP part of a function URL request, before its event is built, against the
    /// `Url` rules (none: always passes). Every failing check is reported, in this order:
    ///
    /// - `method`: must be one of `AllowedMethods` (case-sensitive).
    /// - `path`: without its query string, must match one of `AllowedPaths`. A pattern is
    ///   exact (`/orders`) or ends in a whole `*` segment (`/orders/*`) matching one or more
    ///   further segments (`/orders/7`, `/orders/7/items`; not `/orders` nor `/orders/`), each
    ///   non-empty and no `.` or `..` (even as `%2e`). Byte-for-byte, case-sensitive, no
    ///   decoding.
    /// - `headers`: the names and values of all headers together, in bytes, at most
    ///   `MaxHeaderBytes`.
    /// - `header NAME`: each of `RequiredHeaders` present with a non-empty value.
    /// - `header content-type`: with `AllowedContentTypes`, a request that has a body or a
    ///   `content-type` must send exactly one whose media type (parameters ignored,
    ///   case-insensitive) is listed.
    /// - `body`: at most `MaxBodyBytes`.
    pub fn check_request(&self, req: &RequestParts<'_>) -> Result<(), Violations> {
        let mut out = ViolationList::default();
        if let Some(url) = &self.url {
            url.check(req, &mut out);
        }
        out.into_result()
    }
}

#[cfg(test)]
mod tests;

//! The fields of one log event, found on demand.
//!
//! - System fields: `@timestamp`, `@ingestionTime`, `@message`, `@logStream`, `@log`
//!   (`account-id:log-group`).
//! - Lambda's fields, from the platform's own lines only (a function printing
//!   `REPORT RequestId: ...` cannot forge them): `@type` and `@requestId` from `START`,
//!   `END` and `REPORT` lines; `@duration`, `@billedDuration`, `@initDuration` (ms) and
//!   `@memorySize`, `@maxMemoryUsed` (bytes, as Insights reports them) from `REPORT`.
//! - Fields of a JSON message, flattened with dots (`user.id`, `items.0.name`), at most
//!   [`MAX_JSON_FIELDS`] of them (the first in key order). In a Lambda log group the
//!   first JSON object embedded in the line counts too (`2024-...\tid\tINFO\t{"a": 1}`).
//!   A JSON field whose name starts with `@` is read as `@@name`.
//! - Fields computed by `fields expr as name`, which shadow the others.
//!
//! The JSON and Lambda parts are parsed at most once per event, and only when a query asks
//! for a field they could hold.

use std::borrow::Cow;
use std::cell::OnceCell;

use serde_json::Value as Json;

use super::eval::{Fields, Val};
use super::Event;

/// Most fields taken from one JSON message (CloudWatch's limit).
pub const MAX_JSON_FIELDS: usize = 100;

/// A leaf of a flattened JSON message.
#[derive(Debug)]
enum Leaf {
    Str(String),
    Num(f64),
    Bool(bool),
}

/// What a platform line says about an invocation.
#[derive(Debug, Default)]
struct Lambda<'e> {
    kind: &'e str,
    request_id: &'e str,
    duration: Option<f64>,
    billed_duration: Option<f64>,
    init_duration: Option<f64>,
    memory_size: Option<f64>,
    max_memory_used: Option<f64>,
}

/// One event with its fields.
pub(super) struct Record<'e> {
    event: Event<'e>,
    json: OnceCell<Vec<(String, Leaf)>>,
    lambda: OnceCell<Option<Lambda<'e>>>,
    /// Fields from `fields ... as`, newest last; `None` shadows a field with nothing.
    computed: Vec<(String, Option<Val<'static>>)>,
}

impl<'e> Record<'e> {
    pub(super) fn new(event: Event<'e>) -> Self {
        Record {
            event,
            json: OnceCell::new(),
            lambda: OnceCell::new(),
            computed: Vec::new(),
        }
    }

    pub(super) fn set(&mut self, name: &str, value: Option<Val<'static>>) {
        self.computed.push((name.to_owned(), value));
    }

    fn lambda(&self) -> Option<&Lambda<'e>> {
        self.lambda
            .get_or_init(|| {
                if self.event.platform {
                    parse_lambda(self.event.message)
                } else {
                    None
                }
            })
            .as_ref()
    }

    fn json(&self) -> &[(String, Leaf)] {
        self.json.get_or_init(|| {
            let lambda_group = self.event.log_group.starts_with("/aws/lambda/");
            json_object(self.event.message, lambda_group)
                .map(|root| flatten(&root))
                .unwrap_or_default()
        })
    }
}

impl Fields for Record<'_> {
    fn get(&self, name: &str) -> Option<Val<'_>> {
        if let Some((_, value)) = self.computed.iter().rev().find(|(n, _)| n == name) {
            return value.as_ref().map(Val::borrowed);
        }
        let event = &self.event;
        let text = |s: &'_ str| Some(Val::Str(Cow::Owned(s.to_owned())));
        let lambda_number =
            |f: fn(&Lambda<'_>) -> Option<f64>| self.lambda().and_then(f).map(Val::Num);
        match name {
            "@timestamp" => Some(Val::Time(event.timestamp_ms)),
            "@ingestionTime" => Some(Val::Time(event.ingestion_ms)),
            "@message" => Some(Val::Str(Cow::Borrowed(event.message))),
            "@logStream" => Some(Val::Str(Cow::Borrowed(event.log_stream))),
            "@log" => {
                if event.account_id.is_empty() {
                    Some(Val::Str(Cow::Borrowed(event.log_group)))
                } else {
                    text(&format!("{}:{}", event.account_id, event.log_group))
                }
            }
            "@type" => self.lambda().map(|l| Val::Str(Cow::Borrowed(l.kind))),
            "@requestId" => self.lambda().map(|l| Val::Str(Cow::Borrowed(l.request_id))),
            "@duration" => lambda_number(|l| l.duration),
            "@billedDuration" => lambda_number(|l| l.billed_duration),
            "@initDuration" => lambda_number(|l| l.init_duration),
            "@memorySize" => lambda_number(|l| l.memory_size),
            "@maxMemoryUsed" => lambda_number(|l| l.max_memory_used),
            _ => {
                let key = match name.strip_prefix('@') {
                    // `@@x` is the JSON field `@x`; other `@` names are system fields.
                    Some(rest) if rest.starts_with('@') => rest,
                    Some(_) => return None,
                    None => name,
                };
                self.json()
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, leaf)| match leaf {
                        Leaf::Str(s) => Val::Str(Cow::Borrowed(s)),
                        Leaf::Num(n) => Val::Num(*n),
                        Leaf::Bool(b) => Val::Bool(*b),
                    })
            }
        }
    }
}

/// The message as a JSON object: the whole of it, or in a Lambda log group the first
/// object embedded in it.
fn json_object(message: &str, embedded: bool) -> Option<Json> {
    let trimmed = message.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(root @ Json::Object(_)) = serde_json::from_str::<Json>(trimmed) {
            return Some(root);
        }
    }
    if !embedded {
        return None;
    }
    let start = message.find('{')?;
    let mut stream = serde_json::Deserializer::from_str(message.get(start..)?).into_iter::<Json>();
    match stream.next() {
        Some(Ok(root @ Json::Object(_))) => Some(root),
        _ => None,
    }
}

/// Flattens leaves into dotted names, stopping at [`MAX_JSON_FIELDS`]. Nulls, empty
/// objects and empty arrays have no field.
fn flatten(root: &Json) -> Vec<(String, Leaf)> {
    fn walk(prefix: &str, node: &Json, out: &mut Vec<(String, Leaf)>) {
        let name = |key: &str| {
            if prefix.is_empty() {
                key.to_owned()
            } else {
                format!("{prefix}.{key}")
            }
        };
        match node {
            Json::Object(map) => {
                for (k, v) in map {
                    if out.len() >= MAX_JSON_FIELDS {
                        return;
                    }
                    walk(&name(k), v, out);
                }
            }
            Json::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    if out.len() >= MAX_JSON_FIELDS {
                        return;
                    }
                    walk(&name(&i.to_string()), v, out);
                }
            }
            Json::String(s) => out.push((prefix.to_owned(), Leaf::Str(s.clone()))),
            Json::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out.push((prefix.to_owned(), Leaf::Num(f)));
                }
            }
            Json::Bool(b) => out.push((prefix.to_owned(), Leaf::Bool(*b))),
            Json::Null => {}
        }
    }
    let mut out = Vec::new();
    // Parsed by serde_json, whose recursion limit bounds the depth walked here.
    walk("", root, &mut out);
    out
}

/// Reads a `START`, `END` or `REPORT` line.
fn parse_lambda(message: &str) -> Option<Lambda<'_>> {
    let (kind, rest) = ["START", "END", "REPORT"].iter().find_map(|kind| {
        message
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix(" RequestId: "))
            .map(|r| (*kind, r))
    })?;
    let id_end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let mut lambda = Lambda {
        kind,
        request_id: &rest[..id_end],
        ..Lambda::default()
    };
    if kind != "REPORT" {
        return Some(lambda);
    }
    for part in rest[id_end..].split(['\t', '\n']) {
        let Some((key, value)) = part.split_once(':') else {
            continue;
        };
        let number = value
            .split_whitespace()
            .next()
            .and_then(crate::number::parse_number);
        let megabytes = number.map(|n| n * 1_000_000.0);
        match key.trim() {
            "Duration" => lambda.duration = number,
            "Billed Duration" => lambda.billed_duration = number,
            "Init Duration" => lambda.init_duration = number,
            "Memory Size" => lambda.memory_size = megabytes,
            "Max Memory Used" => lambda.max_memory_used = megabytes,
            _ => {}
        }
    }
    Some(lambda)
}

//! LookupEvents: the recorded events filtered by one attribute and a time range, newest
//! first, a page at a time.
//!
//! The page token is opaque to callers: the position to continue below, with a check value
//! binding it to the query that produced it, so a garbled token, or one reused with other
//! filters, is refused ([`Error::InvalidNextToken`]) rather than silently paging wrong. It
//! is not a secret: a token only says where to resume a query the caller may run anyway.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::event::{decode, CloudTrailEvent};
use crate::log::{to_sql, AuditReader};
use crate::source::{Filter, PAGE};

/// The most events one page holds, as CloudTrail.
pub const MAX_RESULTS: u32 = 50;

/// The attribute a lookup filters on (CloudTrail's `LookupAttributes`, of which it takes
/// one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupAttribute {
    /// `EventId`.
    EventId(String),
    /// `EventName`.
    EventName(String),
    /// `EventSource`.
    EventSource(String),
    /// `Username`: the user's or session's name (see
    /// [`crate::event::UserIdentity::lookup_name`]).
    Username(String),
    /// The caller's full ARN (Warden's addition).
    PrincipalArn(String),
    /// `ResourceName`: a resource ARN the event names.
    ResourceName(String),
    /// `ReadOnly`.
    ReadOnly(bool),
    /// `AccessKeyId`.
    AccessKeyId(String),
}

/// A LookupEvents request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupQuery {
    /// The filter, if any.
    pub attribute: Option<LookupAttribute>,
    /// Only events at or after this time (epoch ms).
    pub start_ms: Option<i64>,
    /// Only events at or before this time (epoch ms).
    pub end_ms: Option<i64>,
    /// The page size, 1 to [`MAX_RESULTS`]; [`MAX_RESULTS`] when absent.
    pub max_results: Option<u32>,
    /// The token of the previous page.
    pub next_token: Option<String>,
}

/// One event found.
#[derive(Debug, Clone, PartialEq)]
pub struct LookedUpEvent {
    /// Its position in the log.
    pub seq: u64,
    /// The event.
    pub event: CloudTrailEvent,
    /// The recorded JSON, byte for byte (CloudTrail's `CloudTrailEvent` string).
    pub raw: String,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupPage {
    /// Newest first.
    pub events: Vec<LookedUpEvent>,
    /// Where the next page starts; `None` on the last page.
    pub next_token: Option<String>,
}

const TOKEN_VERSION: u8 = 1;
const TOKEN_LEN: usize = 1 + 8 + 16;

impl LookupQuery {
    /// What binds a token to this query: the filters, not the page size.
    fn fingerprint(&self, cursor: u64) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(b"warden-audit lookup token\n");
        h.update(format!(
            "{:?}\n{:?}\n{:?}\n",
            self.attribute, self.start_ms, self.end_ms
        ));
        h.update(cursor.to_be_bytes());
        let full: [u8; 32] = h.finalize().into();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    fn token(&self, cursor: u64) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(TOKEN_VERSION);
        bytes.extend_from_slice(&cursor.to_be_bytes());
        bytes.extend_from_slice(&self.fingerprint(cursor));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position to continue below, from the token.
    fn cursor(&self) -> Result<Option<u64>, Error> {
        let Some(token) = &self.next_token else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| Error::InvalidNextToken)?;
        if bytes.len() != TOKEN_LEN || bytes[0] != TOKEN_VERSION {
            return Err(Error::InvalidNextToken);
        }
        let mut cursor = [0u8; 8];
        cursor.copy_from_slice(&bytes[1..9]);
        let cursor = u64::from_be_bytes(cursor);
        if bytes[9..] != self.fingerprint(cursor) {
            return Err(Error::InvalidNextToken);
        }
        Ok(Some(cursor))
    }
}

impl AuditReader {
    /// Hands every event recorded in `[from_ms, to_ms]` to `visit`, oldest first, until
    /// `visit` returns `false`; returns how many it was handed. Reads a page at a time, so
    /// a trail of any size is visited in bounded memory.
    pub fn for_each_event(
        &self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        mut visit: impl FnMut(u64, CloudTrailEvent) -> bool,
    ) -> Result<u64, Error> {
        let (from_ms, to_ms) = (from_ms.unwrap_or(i64::MIN), to_ms.unwrap_or(i64::MAX));
        let mut visited = 0;
        let mut after = -1;
        loop {
            let page = self.source.bodies_in_time(from_ms, to_ms, after, PAGE)?;
            let full = page.len() == PAGE;
            for (seq, body) in page {
                after = seq;
                let seq = u64::try_from(seq).unwrap_or(0);
                let event = decode(&body).map_err(|_| Error::Damaged {
                    what: format!("event {seq} does not parse"),
                })?;
                visited += 1;
                if !visit(seq, event) {
                    return Ok(visited);
                }
            }
            if !full {
                return Ok(visited);
            }
        }
    }

    /// Runs LookupEvents.
    pub fn lookup(&self, query: &LookupQuery) -> Result<LookupPage, Error> {
        let limit = query.max_results.unwrap_or(MAX_RESULTS);
        if !(1..=MAX_RESULTS).contains(&limit) {
            return Err(Error::InvalidLookup(format!(
                "max results must be between 1 and {MAX_RESULTS}, not {limit}"
            )));
        }
        if let (Some(s), Some(e)) = (query.start_ms, query.end_ms) {
            if s > e {
                return Err(Error::InvalidLookup(
                    "the start time must not be after the end time".to_owned(),
                ));
            }
        }
        let filter = Filter {
            attribute: query.attribute.clone(),
            start_ms: query.start_ms,
            end_ms: query.end_ms,
            before: query.cursor()?.map(to_sql),
        };
        // One more than the page, to know whether another page follows.
        let rows = self.source.lookup(&filter, limit as usize + 1)?;
        let mut events = Vec::new();
        let mut more = false;
        for (seq, body) in rows {
            if events.len() == limit as usize {
                more = true;
                break;
            }
            let seq = u64::try_from(seq).unwrap_or(0);
            let event = decode(&body).map_err(|_| Error::Damaged {
                what: format!("event {seq} does not parse"),
            })?;
            let raw = String::from_utf8(body).map_err(|_| Error::Damaged {
                what: format!("event {seq} is not UTF-8"),
            })?;
            events.push(LookedUpEvent { seq, event, raw });
        }
        let next_token = if more {
            events.last().map(|e| query.token(e.seq))
        } else {
            None
        };
        Ok(LookupPage { events, next_token })
    }
}

#[cfg(test)]
mod tests;

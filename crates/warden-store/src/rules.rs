//! What every backend of the function store decides the same way: version numbers and
//! labels in messages, the digest that deduplicates publishes, revision checks, the record
//! a publish or a sealing writes. Backends call these so that SQLite and PostgreSQL agree
//! by construction, not by copy.

use sha2::{Digest, Sha256};
use warden_types::{FunctionName, FunctionVersion, LATEST};

use crate::record::{self, decode, Encoded};
use crate::{Alias, StoreError};

pub(crate) fn version_num(version: &str) -> Option<i64> {
    if version == LATEST {
        return Some(0);
    }
    if version.is_empty() || version.len() > 18 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    version.parse::<i64>().ok().filter(|n| *n > 0)
}

pub(crate) fn function_label(name: &FunctionName) -> String {
    format!("function `{name}`")
}

pub(crate) fn version_label(name: &FunctionName, version: &str) -> String {
    format!("version `{version}` of function `{name}`")
}

pub(crate) fn alias_label(function: &FunctionName, alias: &str) -> String {
    format!("alias `{alias}` of function `{function}`")
}

/// Stored names were validated on the way in; reading one back through serde keeps a
/// damaged row a `Corrupt` error instead of a panic.
pub(crate) fn stored_name(raw: String) -> Result<FunctionName, StoreError> {
    serde_json::from_value(serde_json::Value::String(raw.clone())).map_err(|source| {
        StoreError::Corrupt {
            what: format!("function name `{raw}`"),
            source,
        }
    })
}

pub(crate) fn encode<T: serde::Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::InvalidRecord(format!("{what} cannot be serialised: {e}")))
}

/// Digest of everything in `$LATEST` that makes up a version's code and configuration:
/// two publishes with the same digest would create identical versions. `kept` are the
/// fields of a newer Warden the record carries (see [`record`]); they count too, so that a
/// change only a newer node understands is never deduplicated away. Without them the
/// digest is what it was before records were versioned, so stored digests stay valid.
pub(crate) fn config_digest(
    latest: &FunctionVersion,
    kept: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, StoreError> {
    let mut normalised = latest.clone();
    normalised.version = String::new();
    normalised.revision_id = String::new();
    normalised.last_modified_ms = 0;
    let mut json = encode(&normalised, "the function configuration")?;
    if !kept.is_empty() {
        json.push('\n');
        json.push_str(&encode(kept, "the function configuration")?);
    }
    Ok(hex::encode(Sha256::digest(json.as_bytes())))
}

/// `latest` as a stored record replacing `stored` (if any), with its digest.
pub(crate) fn latest_record(
    latest: &FunctionVersion,
    stored: Option<&str>,
) -> Result<(Encoded, String), StoreError> {
    let mut encoded = record::encode(latest, stored, "the function version")?;
    let needed = record::reader_needed(latest);
    if needed > 1 {
        record::require_reader(&mut encoded, needed)?;
    }
    let digest = config_digest(latest, &encoded.kept)?;
    Ok((encoded, digest))
}

pub(crate) fn check_revision(expected: Option<&str>, actual: &str) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != actual => Err(StoreError::RevisionMismatch {
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn read_alias(
    json: &str,
    function: &FunctionName,
    name: &str,
) -> Result<Alias, StoreError> {
    decode(json, || alias_label(function, name))
}

/// The version `num` that publishing `$LATEST` (`latest`, stored as `latest_json`) makes,
/// and its record: a copy carrying `$LATEST`'s fields of newer nodes too.
pub(crate) fn published_copy(
    latest: FunctionVersion,
    latest_json: &str,
    num: i64,
    new_revision_id: &str,
    now_ms: i64,
    description: Option<&str>,
) -> Result<(FunctionVersion, String), StoreError> {
    let mut published = latest;
    published.version = num.to_string();
    published.revision_id = new_revision_id.to_owned();
    published.last_modified_ms = now_ms;
    if let Some(d) = description {
        published.description = d.to_owned();
    }
    let mut encoded = record::encode(&published, Some(latest_json), "the function version")?;
    let needed = record::reader_needed(&published);
    if needed > 1 {
        record::require_reader(&mut encoded, needed)?;
    }
    Ok((published, encoded.json))
}

/// One stored version rewritten with its environment sealed.
pub(crate) struct SealedRow {
    /// The version, sealed.
    pub version: FunctionVersion,
    /// Its record.
    pub json: String,
    /// The digest to store with it.
    pub digest: String,
    /// For `$LATEST`: its digest before and after, which the published versions copied
    /// from it as it was follow.
    pub follow: Option<(String, String)>,
}

/// Version `num` of `function` (stored as `json`, with `source_digest`) with its plain
/// environment sealed by `seal`, or `None` if it holds nothing to seal.
pub(crate) fn sealed_copy(
    function: &str,
    num: i64,
    json: &str,
    source_digest: String,
    seal: crate::SealPlaintext<'_>,
) -> Result<Option<SealedRow>, StoreError> {
    let old: FunctionVersion = decode(json, || function.to_owned())?;
    if old.environment.is_empty() || old.sealed_environment.is_some() {
        return Ok(None);
    }
    let mut new = old.clone();
    new.sealed_environment = Some(seal(&old)?);
    new.environment.clear();
    let mut encoded = record::encode(&new, Some(json), "the function version")?;
    record::require_reader(&mut encoded, record::reader_needed(&new))?;
    let (digest, follow) = if num == 0 {
        let before = config_digest(&old, &encoded.kept)?;
        let after = config_digest(&new, &encoded.kept)?;
        (after.clone(), Some((before, after)))
    } else {
        (source_digest, None)
    };
    Ok(Some(SealedRow {
        version: new,
        json: encoded.json,
        digest,
        follow,
    }))
}

//! The expected signature of a header-signed request, computed without `aws-sigv4`'s signer.
//!
//! Why this exists beside `aws-sigv4` (which still computes every presigned signature and
//! any request this module declines): the signer builds a header map, an `Authorization`
//! header and several strings per request that a verifier throws away, and derives the
//! signing key (four HMACs) every time. Here the canonical request is written once into one
//! buffer and the signing key of an access key, day, region and service is derived once and
//! kept ([`SigningKeys`]). The rules are the ones `aws-sigv4` applies with the settings the
//! verifier gives it (double-encoded path, sorted re-encoded query, header values trimmed
//! and their inner runs of spaces collapsed, `x-amz-date` written from the parsed time, the
//! request's own session token when it is signed), and the unit tests below compare the two
//! signatures on generated requests, tampered ones included.
//!
//! Declined (the caller falls back to `aws-sigv4`): a request without a `Host` header (its
//! host then comes from the URI's authority, with default-port rules this module does not
//! repeat).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use aws_lc_rs::{digest, hmac};
use http::request::Parts;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::parse::{self, Scope};

/// What the query's names and values are encoded with: everything but letters, digits and
/// `-._~` (RFC 3986's unreserved characters).
const QUERY_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b':')
    .add(b',')
    .add(b'?')
    .add(b'#')
    .add(b'[')
    .add(b']')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'@')
    .add(b'!')
    .add(b'$')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b';')
    .add(b'=')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'"')
    .add(b'^')
    .add(b'`')
    .add(b'\\');

/// What the path is encoded with (a second time, as SigV4 asks of every service but S3):
/// the query's set, keeping `/`.
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

/// The parts of a header-signed request the signature covers, as the verifier read them.
pub(crate) struct HeaderForm<'a> {
    pub parts: &'a Parts,
    pub scope: &'a Scope,
    /// Sorted, unique, lowercase (as `parse` returns them), `host` and `x-amz-date` among them.
    pub signed_headers: &'a [String],
    /// The path and query to canonicalize, the path already in normal form.
    pub path_and_query: &'a str,
    pub signed_at: SystemTime,
    /// The request's session token, when `x-amz-security-token` is signed.
    pub signed_token: Option<&'a str>,
    pub payload_hash: &'a str,
}

/// The signature `form` should carry when signed with `secret`, or `None` when this module
/// declines the request (see the module comment).
pub(crate) fn signature(form: &HeaderForm<'_>, secret: &str, keys: &SigningKeys) -> Option<String> {
    let date_time = parse::format_amz_date(form.signed_at);
    let date = &date_time[..8];
    let creq = canonical_request(form, &date_time)?;
    let creq_hash = digest::digest(&digest::SHA256, creq.as_bytes());

    let mut string_to_sign = String::with_capacity(160);
    string_to_sign.push_str("AWS4-HMAC-SHA256\n");
    string_to_sign.push_str(&date_time);
    string_to_sign.push('\n');
    for part in [
        date,
        &form.scope.region,
        &form.scope.service,
        "aws4_request",
    ] {
        string_to_sign.push_str(part);
        string_to_sign.push('/');
    }
    string_to_sign.pop();
    string_to_sign.push('\n');
    push_hex(&mut string_to_sign, creq_hash.as_ref());

    let key = keys.get(
        &form.scope.access_key_id,
        secret,
        date,
        &form.scope.region,
        &form.scope.service,
    );
    let mut signature = String::with_capacity(64);
    push_hex(
        &mut signature,
        hmac::sign(&key, string_to_sign.as_bytes()).as_ref(),
    );
    Some(signature)
}

/// Appends `bytes` in lowercase hex, as `hex::encode` writes them (its char iterator took
/// about as many instructions as the SHA-256 that computed the bytes; three per request).
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// The canonical request, or `None` when a signed header cannot be rendered here.
fn canonical_request(form: &HeaderForm<'_>, date_time: &str) -> Option<String> {
    let parts = form.parts;
    let (path, query) = form
        .path_and_query
        .split_once('?')
        .unwrap_or((form.path_and_query, ""));
    let mut out = String::with_capacity(512);
    out.push_str(parts.method.as_str());
    out.push('\n');
    let path = if path.is_empty() { "/" } else { path };
    out.extend(utf8_percent_encode(path, PATH_SET));
    out.push('\n');
    write_query(&mut out, query);
    out.push('\n');
    for name in form.signed_headers {
        out.push_str(name);
        out.push(':');
        match name.as_str() {
            "x-amz-date" => out.push_str(date_time),
            "x-amz-security-token" => out.push_str(form.signed_token?),
            _ => {
                let mut values = parts.headers.get_all(name.as_str()).iter();
                let first = values.next()?;
                push_trimmed(&mut out, first.to_str().ok()?);
                for value in values {
                    out.push(',');
                    push_trimmed(&mut out, value.to_str().ok()?);
                }
            }
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in form.signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(form.payload_hash);
    Some(out)
}

/// The query's pairs, form-decoded, each name and value encoded again, sorted by the
/// encoded pair, joined by `&`.
fn write_query(out: &mut String, query: &str) {
    if query.is_empty() {
        return;
    }
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            (
                utf8_percent_encode(&k, QUERY_SET).to_string(),
                utf8_percent_encode(&v, QUERY_SET).to_string(),
            )
        })
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

/// `value` without leading and trailing spaces, each inner run of spaces as one (spaces
/// only: tabs and other whitespace stay).
fn push_trimmed(out: &mut String, value: &str) {
    let mut previous_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' {
            if previous_space {
                continue;
            }
            previous_space = true;
        } else {
            previous_space = false;
        }
        out.push(c);
    }
}

/// Derived signing keys, one per access key, day, region and service: a key is good for
/// every request of that day, so deriving it (four HMACs) once a day is enough. Each entry
/// remembers the secret it came from and is used only with that same secret. Bounded: at
/// [`SigningKeys::CAPACITY`] entries the cache starts again empty, and a scope longer than
/// [`SigningKeys::MAX_SCOPE_BYTES`] (the service name is the caller's to choose, and is
/// checked only after the signature) is derived without being kept, so the cache holds at
/// most a few hundred bytes per entry whatever a caller sends.
#[derive(Default)]
pub(crate) struct SigningKeys {
    keys: Mutex<HashMap<KeyId, Derived>>,
}

#[derive(PartialEq, Eq, Hash)]
struct KeyId {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

struct Derived {
    secret: String,
    key: hmac::Key,
}

impl SigningKeys {
    /// Entries kept at most.
    pub(crate) const CAPACITY: usize = 4096;
    /// The longest access key id, region and service, together, whose key is kept.
    pub(crate) const MAX_SCOPE_BYTES: usize = 128;

    fn get(
        &self,
        access_key_id: &str,
        secret: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> hmac::Key {
        if access_key_id.len() + region.len() + service.len() > Self::MAX_SCOPE_BYTES {
            return derive(secret, date, region, service);
        }
        let id = KeyId {
            access_key_id: access_key_id.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        };
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = keys.get(&id) {
            if constant_time_eq::constant_time_eq(d.secret.as_bytes(), secret.as_bytes()) {
                return d.key.clone();
            }
        }
        let key = derive(secret, date, region, service);
        if keys.len() >= Self::CAPACITY {
            keys.clear();
        }
        keys.insert(
            id,
            Derived {
                secret: secret.to_owned(),
                key: key.clone(),
            },
        );
        key
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or(0)
    }
}

/// SigV4's signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
/// "aws4_request")`.
fn derive(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_lose_outer_spaces_and_inner_runs() {
        let trimmed = |v: &str| {
            let mut out = String::new();
            push_trimmed(&mut out, v);
            out
        };
        assert_eq!(trimmed("  a   b  c "), "a b c");
        assert_eq!(trimmed("a\t\tb"), "a\t\tb");
        assert_eq!(trimmed(""), "");
        assert_eq!(trimmed("   "), "");
    }

    #[test]
    fn hex_is_what_the_hex_crate_writes() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = String::from("x");
        push_hex(&mut out, &bytes);
        assert_eq!(out, format!("x{}", hex::encode(&bytes)));
    }

    #[test]
    fn the_signing_key_matches_the_sigv4_example() {
        // The inputs of the SigV4 documentation's derivation example, against `aws-sigv4`'s
        // derivation of the same key.
        let key = derive(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        let tag = hmac::sign(&key, b"");
        let expected = {
            let k = aws_sigv4::sign::v4::generate_signing_key(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160),
                "us-east-1",
                "iam",
            );
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()), b"")
        };
        assert_eq!(tag.as_ref(), expected.as_ref());
    }

    #[test]
    fn a_cached_key_serves_only_its_own_secret_and_the_cache_is_bounded() {
        let keys = SigningKeys::default();
        let a = keys.get("AKID", "secret-a", "20261206", "us-east-1", "lambda");
        let again = keys.get("AKID", "secret-a", "20261206", "us-east-1", "lambda");
        assert_eq!(
            hmac::sign(&a, b"x").as_ref(),
            hmac::sign(&again, b"x").as_ref()
        );
        // Same id, another secret: derived from that secret, not served from the cache.
        let b = keys.get("AKID", "secret-b", "20261206", "us-east-1", "lambda");
        assert_eq!(
            hmac::sign(&b, b"x").as_ref(),
            hmac::sign(&derive("secret-b", "20261206", "us-east-1", "lambda"), b"x").as_ref()
        );
        assert_ne!(hmac::sign(&a, b"x").as_ref(), hmac::sign(&b, b"x").as_ref());
        for i in 0..SigningKeys::CAPACITY + 10 {
            keys.get(&format!("K{i}"), "s", "20261206", "us-east-1", "lambda");
        }
        assert!(keys.len() <= SigningKeys::CAPACITY);
    }

    #[test]
    fn a_long_scope_is_derived_but_not_kept() {
        let keys = SigningKeys::default();
        let service = "s".repeat(SigningKeys::MAX_SCOPE_BYTES);
        let key = keys.get("AKID", "secret", "20261206", "us-east-1", &service);
        assert_eq!(keys.len(), 0);
        assert_eq!(
            hmac::sign(&key, b"x").as_ref(),
            hmac::sign(&derive("secret", "20261206", "us-east-1", &service), b"x").as_ref()
        );
        keys.get("AKID", "secret", "20261206", "us-east-1", "lambda");
        assert_eq!(keys.len(), 1);
    }
}

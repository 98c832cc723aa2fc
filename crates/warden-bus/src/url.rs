//! The NATS URL: its servers, the credentials it carries, and a form safe to show.
//!
//! The credentials are taken out of the URL before anything else sees it: the client is
//! given the bare server addresses and the credentials separately, so neither its errors
//! nor its logs can repeat them. Every text this crate shows about the URL is the redacted
//! form, `nats://user:***@host:4222` (a token: `nats://***@host:4222`).

use crate::BusError;

/// Credentials carried in the URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// None.
    None,
    /// `user:password@`.
    UserPassword { user: String, password: String },
    /// `token@`.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::UserPassword { user, .. } => write!(f, "UserPassword({user}, ***)"),
            Credentials::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// A parsed NATS URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NatsUrl {
    /// The server addresses without credentials, e.g. `nats://127.0.0.1:4222`.
    pub servers: Vec<String>,
    /// The credentials, the same for every server.
    pub credentials: Credentials,
    /// The URL with its secret replaced by `***`, for messages.
    pub redacted: String,
}

impl NatsUrl {
    /// The secrets (as written and decoded) that must never be shown.
    pub fn secrets(&self) -> Vec<String> {
        match &self.credentials {
            Credentials::None => Vec::new(),
            Credentials::UserPassword { password, .. } => vec![password.clone()],
            Credentials::Token(token) => vec![token.clone()],
        }
    }
}

/// Replaces every occurrence of each secret in `text` by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() {
            for form in [secret.clone(), percent_encode(secret)] {
                out = out.replace(&form, "***");
            }
        }
    }
    out
}

/// The URL as it may be shown: the secret of every server replaced by `***`. Used for
/// URLs that did not parse too, so it relies on nothing but the last `@` of each server.
pub(crate) fn redact(url: &str) -> String {
    url.split(',')
        .map(|server| {
            let (scheme, rest) = match server.find("://") {
                Some(i) => (&server[..i + 3], &server[i + 3..]),
                None => ("", server),
            };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            match authority.rfind('@') {
                Some(at) => {
                    let userinfo = &authority[..at];
                    let host = &authority[at..];
                    let shown = match userinfo.find(':') {
                        Some(colon) => format!("{}:***", &userinfo[..colon]),
                        None => "***".to_owned(),
                    };
                    format!("{scheme}{shown}{host}{tail}")
                }
                None => server.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `url`: one or more comma-separated servers, `scheme://[user:password@|token@]host:port`
/// (the scheme defaults to `nats`).
pub(crate) fn parse(url: &str) -> Result<NatsUrl, BusError> {
    let redacted = redact(url);
    let invalid = |reason: &str| BusError::InvalidUrl {
        url: redacted.clone(),
        reason: reason.to_owned(),
    };
    let mut servers = Vec::new();
    let mut credentials: Option<Credentials> = None;
    for server in url.split(',').map(str::trim) {
        if server.is_empty() {
            return Err(invalid("a server address is empty"));
        }
        let (scheme, rest) = match server.find("://") {
            Some(i) => (&server[..i], &server[i + 3..]),
            None => ("nats", server),
        };
        if !matches!(scheme, "nats" | "tls" | "ws" | "wss") {
            return Err(invalid(
                "the scheme must be nats://, tls://, ws:// or wss://",
            ));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if !rest[authority_end..].trim_start_matches('/').is_empty() {
            return Err(invalid("a NATS URL has no path or query"));
        }
        let (found, host) = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let found = match userinfo.find(':') {
                    Some(colon) => Credentials::UserPassword {
                        user: percent_decode(&userinfo[..colon])
                            .ok_or_else(|| invalid("the user name is badly percent-encoded"))?,
                        password: percent_decode(&userinfo[colon + 1..])
                            .ok_or_else(|| invalid("the password is badly percent-encoded"))?,
                    },
                    None => Credentials::Token(
                        percent_decode(userinfo)
                            .ok_or_else(|| invalid("the token is badly percent-encoded"))?,
                    ),
                };
                (found, &authority[at + 1..])
            }
            None => (Credentials::None, authority),
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid("a server has no host"));
        }
        match (&credentials, found) {
            (_, Credentials::None) => {}
            (None, found) => credentials = Some(found),
            (Some(known), found) if *known == found => {}
            (Some(_), _) => {
                return Err(invalid("every server must carry the same credentials"));
            }
        }
        servers.push(format!("{scheme}://{host}"));
    }
    Ok(NatsUrl {
        servers,
        credentials: credentials.unwrap_or(Credentials::None),
        redacted,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_the_servers() {
        let u = parse("nats://warden:s3cr%40t@10.0.0.1:4222").unwrap();
        assert_eq!(u.servers, vec!["nats://10.0.0.1:4222".to_owned()]);
        assert_eq!(
            u.credentials,
            Credentials::UserPassword {
                user: "warden".into(),
                password: "s3cr@t".into()
            }
        );
        assert_eq!(u.redacted, "nats://warden:***@10.0.0.1:4222");
        assert!(!format!("{u:?}").contains("s3cr"));

        let u = parse("tok3n@nats-1:4222, tls://tok3n@nats-2:4222").unwrap();
        assert_eq!(u.servers, vec!["nats://nats-1:4222", "tls://nats-2:4222"]);
        assert_eq!(u.credentials, Credentials::Token("tok3n".into()));
        assert!(!u.redacted.contains("tok3n"));
        assert!(!format!("{u:?}").contains("tok3n"));

        let u = parse("nats://127.0.0.1:4222/").unwrap();
        assert_eq!(u.credentials, Credentials::None);
        assert_eq!(u.redacted, "nats://127.0.0.1:4222/");
    }

    #[test]
    fn bad_urls_are_refused_without_their_secret() {
        for url in [
            "http://u:hunter2@h:1",
            "nats://u:hunter2@",
            "nats://u:hunter2@h:1/path",
            "nats://u:hunter2@h:1,nats://v:other@h:2",
            "nats://u:hunter2%zz@h:1",
            "nats://u:hunter2@h:1,,",
        ] {
            let e = parse(url).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(matches!(e, BusError::InvalidUrl { .. }), "{url}: {e}");
        }
    }

    #[test]
    fn scrub_removes_plain_and_encoded_secrets() {
        let s = scrub("a p@ss b p%40ss c", &["p@ss".to_owned()]);
        assert_eq!(s, "a *** b *** c");
        assert_eq!(scrub("abc", &[String::new()]), "abc");
    }
}

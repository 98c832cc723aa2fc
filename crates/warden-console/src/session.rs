//! Console sessions: who signed in, until when, and the token every change must carry.
//!
//! A session is opened by a sign-in that proved an access key's secret. Its token goes to
//! the browser only in an `HttpOnly`, `SameSite=Strict` cookie; the server keeps the
//! token's SHA-256, never the token. Each session also has a CSRF token, written into the
//! page's forms, which every change must send back. A session ends when it expires, when
//! it is signed out, or when the key it was opened with is no longer active (the caller
//! checks that on every request, since the key's principal is looked up each time).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore as _;
use sha2::Digest as _;

/// The cookie that carries a session's token.
pub const COOKIE: &str = "warden_console";

/// The most sessions kept at once; opening one more ends the one that expires first.
pub const MAX_SESSIONS: usize = 1_024;

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The access key whose secret was proven at sign-in.
    pub access_key_id: String,
    /// The token every change must carry (a form field).
    pub csrf: String,
    /// When the session ends.
    pub expires: Instant,
}

/// A session just opened: the token for the cookie, and the session.
#[derive(Debug)]
pub struct Opened {
    /// The cookie's value. Shown once; the server keeps only its hash.
    pub token: String,
    /// The session.
    pub session: Session,
}

/// The open sessions.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    open: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // `rand`'s thread generator is a CSPRNG seeded from the operating system.
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Sessions that last `ttl` from sign-in.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session for `access_key_id`. Expired sessions are forgotten first; at
    /// [`MAX_SESSIONS`], the one closest to expiry is ended.
    pub fn open(&self, access_key_id: &str, now: Instant) -> Opened {
        let token = random_token();
        let session = Session {
            access_key_id: access_key_id.to_owned(),
            csrf: random_token(),
            expires: now + self.ttl,
        };
        let mut open = self.lock();
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS {
            if let Some(first) = open.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                open.remove(&first);
            }
        }
        open.insert(key(&token), session.clone());
        Opened { token, session }
    }

    /// The session `token` names, if it is open and not expired (an expired one is
    /// forgotten).
    pub fn find(&self, token: &str, now: Instant) -> Option<Session> {
        let k = key(token);
        let mut open = self.lock();
        match open.get(&k) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                open.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends the session `token` names; whether there was one.
    pub fn close(&self, token: &str) -> bool {
        self.lock().remove(&key(token)).is_some()
    }

    /// Ends every session opened with `access_key_id`; how many.
    pub fn close_key(&self, access_key_id: &str) -> usize {
        let mut open = self.lock();
        let before = open.len();
        open.retain(|_, s| s.access_key_id != access_key_id);
        before - open.len()
    }

    /// How many sessions are open (expired ones included until they are next looked at).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `given` is the session's CSRF token, compared in time independent of where
/// they differ.
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    let a = session.csrf.as_bytes();
    let b = given.as_bytes();
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session token in a `Cookie` header's value, if the header names [`COOKIE`].
///
/// Hand-written because the grammar is one line (`name=value` pairs split by `;`) and
/// only one name matters; property-tested below.
pub fn token_from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then_some(value)
    })
}

/// The `Set-Cookie` value that hands `token` to the browser: `HttpOnly` (no script reads
/// it), `SameSite=Strict` (no other site's page sends it), scoped to the console's path,
/// and expiring with the session. `secure` adds `Secure`, for a listener behind TLS.
pub fn set_cookie(token: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_session_is_found_by_its_token_until_it_expires() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let opened = sessions.open("AKIAEXAMPLE", t0);
        let found = sessions.find(&opened.token, t0).expect("open");
        assert_eq!(found.access_key_id, "AKIAEXAMPLE");
        assert!(sessions.find("not-a-token", t0).is_none());
        assert!(sessions
            .find(&opened.token, t0 + Duration::from_secs(61))
            .is_none());
        // An expired session is forgotten, not kept.
        assert!(sessions.is_empty());
    }

    #[test]
    fn closing_ends_a_session_and_closing_a_key_ends_all_of_its_sessions() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let now = Instant::now();
        let a = sessions.open("AKIA1", now);
        let b = sessions.open("AKIA1", now);
        let c = sessions.open("AKIA2", now);
        assert!(sessions.close(&a.token));
        assert!(!sessions.close(&a.token));
        assert!(sessions.find(&a.token, now).is_none());
        assert_eq!(sessions.close_key("AKIA1"), 1);
        assert!(sessions.find(&b.token, now).is_none());
        assert!(sessions.find(&c.token, now).is_some());
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let now = Instant::now();
        let first = sessions.open("AKIA", now);
        for i in 1..=MAX_SESSIONS {
            sessions.open("AKIA", now + Duration::from_millis(i as u64));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        // The one closest to expiry went.
        assert!(sessions.find(&first.token, now).is_none());
    }

    #[test]
    fn tokens_are_distinct_and_csrf_is_compared_exactly() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let now = Instant::now();
        let a = sessions.open("AKIA", now);
        let b = sessions.open("AKIA", now);
        assert_ne!(a.token, b.token);
        assert_ne!(a.session.csrf, b.session.csrf);
        assert!(csrf_matches(&a.session, &a.session.csrf));
        assert!(!csrf_matches(&a.session, &b.session.csrf));
        assert!(!csrf_matches(&a.session, ""));
        assert!(!csrf_matches(&a.session, &a.session.csrf[1..]));
    }

    #[test]
    fn the_cookie_carries_the_flags_the_console_relies_on() {
        let c = set_cookie("tok", Duration::from_secs(3600), false);
        assert_eq!(
            c,
            "warden_console=tok; Path=/console; HttpOnly; SameSite=Strict; Max-Age=3600"
        );
        assert!(set_cookie("tok", Duration::from_secs(1), true).ends_with("; Secure"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn the_token_is_read_from_among_other_cookies() {
        assert_eq!(
            token_from_cookie_header("a=b; warden_console=xyz; c=d"),
            Some("xyz")
        );
        assert_eq!(token_from_cookie_header("warden_console="), None);
        assert_eq!(token_from_cookie_header("warden_consolex=1"), None);
        assert_eq!(token_from_cookie_header(""), None);
    }

    proptest! {
        #[test]
        fn any_cookie_header_is_read_or_refused_without_panic(header in ".{0,200}") {
            if let Some(t) = token_from_cookie_header(&header) {
                prop_assert!(!t.is_empty());
                prop_assert!(header.contains(t));
            }
        }

        #[test]
        fn the_token_survives_any_neighbours(
            before in "[a-z]{1,8}=[a-z0-9]{0,8}",
            token in "[A-Za-z0-9_-]{1,64}",
        ) {
            let header = format!("{before}; {COOKIE}={token}");
            prop_assert_eq!(token_from_cookie_header(&header), Some(token.as_str()));
        }
    }
}

//! Cross-origin resource sharing for a function URL that has [`Cors`] settings.
//!
//! A URL without settings leaves CORS to the function: preflights are invoked like any
//! request and the function's headers are sent as they are. A URL with settings owns
//! CORS, as Lambda does once CORS is configured:
//!
//! - **Preflights** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) are
//!   answered by the platform with `200`, never by the function ([`preflight`]). When the
//!   origin, the method and every requested header are allowed, the answer carries
//!   `access-control-allow-origin`, `-allow-methods`, `-allow-headers`, `-max-age` and
//!   `-allow-credentials` as configured; otherwise it carries no CORS header, which the
//!   browser reads as a refusal.
//! - **Other responses** get `access-control-allow-origin`, `-allow-credentials` and
//!   `-expose-headers` when the request's origin is allowed ([`response_headers`]), and
//!   the function's own `access-control-*` headers are removed first ([`apply`]): the
//!   configured headers take precedence, and a browser never sees two
//!   `access-control-allow-origin` values.
//!
//! Origins, methods and header names compare without regard to case. `*` in
//! `AllowOrigins`, `AllowMethods` or `AllowHeaders` allows any, and is answered as the
//! literal `*`: the platform echoes an origin only when it is listed by name (with
//! `vary: Origin`), so `*` with `AllowCredentials` never turns into "any site may send
//! credentials" — browsers refuse a credentialed request answered `*`. The methods
//! browsers send without asking (`GET`, `HEAD`, `POST`) pass the method check whatever
//! `AllowMethods` says, as the CORS protocol has it.

use crate::model::Cors;
use crate::response::MappedResponse;

/// The methods a browser may use cross-origin without listing them.
const SAFELISTED_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

/// The value of the only header `name` of the request, when there is exactly one and it
/// is non-empty visible ASCII.
fn single_header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    let mut found = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
    let (_, value) = found.next()?;
    if found.next().is_some() {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?.trim();
    (!value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')).then_some(value)
}

/// How an allowed origin is answered.
enum Allowed<'a> {
    /// `*`.
    Any,
    /// The origin itself, listed by name.
    Echo(&'a str),
}

impl Allowed<'_> {
    fn value(&self) -> &str {
        match self {
            Allowed::Any => "*",
            Allowed::Echo(o) => o,
        }
    }
}

fn has_wildcard(items: &[String]) -> bool {
    items.iter().any(|i| i == "*")
}

fn listed(items: &[String], wanted: &str) -> bool {
    items.iter().any(|i| i.eq_ignore_ascii_case(wanted))
}

/// Whether the request's `Origin` is allowed, and how to answer it.
fn allowed_origin<'a>(cors: &Cors, headers: &'a [(String, Vec<u8>)]) -> Option<Allowed<'a>> {
    let origin = single_header(headers, "origin")?;
    if cors
        .allow_origins
        .iter()
        .any(|o| o != "*" && o.eq_ignore_ascii_case(origin))
    {
        Some(Allowed::Echo(origin))
    } else if has_wildcard(&cors.allow_origins) {
        Some(Allowed::Any)
    } else {
        None
    }
}

/// A configured list as one header value: `*` when it holds the wildcard.
fn list_value(items: &[String], uppercase: bool) -> String {
    if has_wildcard(items) {
        return "*".to_owned();
    }
    let items: Vec<String> = items
        .iter()
        .map(|i| {
            if uppercase {
                i.to_ascii_uppercase()
            } else {
                i.clone()
            }
        })
        .collect();
    items.join(", ")
}

/// The `access-control-allow-origin` line, and `vary: Origin` when the origin is echoed.
fn origin_lines(allowed: &Allowed<'_>, out: &mut Vec<(String, String)>) {
    out.push((
        "access-control-allow-origin".to_owned(),
        allowed.value().to_owned(),
    ));
    if matches!(allowed, Allowed::Echo(_)) {
        out.push(("vary".to_owned(), "Origin".to_owned()));
    }
}

/// The platform's answer to a preflight, for a URL with CORS settings.
///
/// `None` when the request is not a preflight (not `OPTIONS`, or without `Origin` or
/// `Access-Control-Request-Method`): it goes to the function like any other.
/// `Some(headers)` when it is: answer `200` with an empty body and these headers, which
/// are empty when the origin, the method or a requested header is not allowed.
pub fn preflight(
    cors: &Cors,
    method: &str,
    req_headers: &[(String, Vec<u8>)],
) -> Option<Vec<(String, String)>> {
    if !method.eq_ignore_ascii_case("OPTIONS") {
        return None;
    }
    let origin_present = req_headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("origin"));
    let requested = req_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("access-control-request-method"))?;
    if !origin_present {
        return None;
    }
    let Some(allowed) = allowed_origin(cors, req_headers) else {
        return Some(Vec::new());
    };
    let Some(requested_method) = std::str::from_utf8(&requested.1)
        .ok()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    else {
        return Some(Vec::new());
    };
    let method_ok = has_wildcard(&cors.allow_methods)
        || listed(&cors.allow_methods, requested_method)
        || SAFELISTED_METHODS
            .iter()
            .any(|m| m.eq_ignore_ascii_case(requested_method));
    if !method_ok {
        return Some(Vec::new());
    }
    let requested_headers: Vec<String> = req_headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("access-control-request-headers"))
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    if !has_wildcard(&cors.allow_headers)
        && !requested_headers
            .iter()
            .all(|h| listed(&cors.allow_headers, h))
    {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    origin_lines(&allowed, &mut out);
    credentials_line(cors, &mut out);
    if !cors.allow_methods.is_empty() {
        out.push((
            "access-control-allow-methods".to_owned(),
            list_value(&cors.allow_methods, true),
        ));
    }
    if !cors.allow_headers.is_empty() {
        out.push((
            "access-control-allow-headers".to_owned(),
            list_value(&cors.allow_headers, false),
        ));
    }
    if let Some(age) = cors.max_age {
        out.push(("access-control-max-age".to_owned(), age.to_string()));
    }
    Some(out)
}

/// `access-control-allow-credentials` when the URL allows credentials.
fn credentials_line(cors: &Cors, out: &mut Vec<(String, String)>) {
    if cors.credentials() {
        out.push((
            "access-control-allow-credentials".to_owned(),
            "true".to_owned(),
        ));
    }
}

/// The CORS headers of a response that is not a preflight answer: none unless the
/// request's `Origin` is allowed.
pub fn response_headers(cors: &Cors, req_headers: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let Some(allowed) = allowed_origin(cors, req_headers) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    origin_lines(&allowed, &mut out);
    credentials_line(cors, &mut out);
    if !cors.expose_headers.is_empty() {
        out.push((
            "access-control-expose-headers".to_owned(),
            list_value(&cors.expose_headers, false),
        ));
    }
    out
}

/// Puts the URL's CORS headers on a function's response: the function's own
/// `access-control-*` headers are removed, then [`response_headers`] added; `vary: Origin`
/// joins a `vary` the function set rather than replacing it.
pub fn apply(cors: &Cors, req_headers: &[(String, Vec<u8>)], response: &mut MappedResponse) {
    response
        .headers
        .retain(|(n, _)| !n.to_ascii_lowercase().starts_with("access-control-"));
    for (name, value) in response_headers(cors, req_headers) {
        if name == "vary" {
            let merged = match response.header("vary") {
                None => value,
                Some(v)
                    if v.split(',')
                        .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case(&value)) =>
                {
                    v.to_owned()
                }
                Some(v) => format!("{v}, {value}"),
            };
            response.set_header("vary", &merged);
        } else {
            response.set_header(&name, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::map_response;
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn get<'a>(lines: &'a [(String, String)], name: &str) -> Option<&'a str> {
        lines
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn site() -> Cors {
        Cors {
            allow_credentials: Some(true),
            allow_headers: vec!["Content-Type".into(), "X-Custom-Header".into()],
            allow_methods: vec!["put".into(), "DELETE".into()],
            allow_origins: vec![
                "https://www.example.com".into(),
                "http://localhost:60905".into(),
            ],
            expose_headers: vec!["X-Request-Id".into()],
            max_age: Some(300),
        }
    }

    fn preflight_of(cors: &Cors, pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        preflight(cors, "OPTIONS", &headers(pairs))
    }

    #[test]
    fn allowed_preflights_are_answered_with_the_settings() {
        let got = preflight_of(
            &site(),
            &[
                ("Origin", "HTTPS://WWW.EXAMPLE.COM"),
                ("Access-Control-Request-Method", "PUT"),
                (
                    "Access-Control-Request-Headers",
                    "content-type, x-custom-header",
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            get(&got, "access-control-allow-origin"),
            Some("HTTPS://WWW.EXAMPLE.COM")
        );
        assert_eq!(get(&got, "vary"), Some("Origin"));
        assert_eq!(
            get(&got, "access-control-allow-methods"),
            Some("PUT, DELETE")
        );
        assert_eq!(
            get(&got, "access-control-allow-headers"),
            Some("Content-Type, X-Custom-Header")
        );
        assert_eq!(get(&got, "access-control-max-age"), Some("300"));
        assert_eq!(get(&got, "access-control-allow-credentials"), Some("true"));
        // Safelisted methods need no listing.
        let got = preflight_of(
            &site(),
            &[
                ("Origin", "http://localhost:60905"),
                ("Access-Control-Request-Method", "GET"),
            ],
        )
        .unwrap();
        assert!(!got.is_empty());
    }

    #[test]
    fn refused_preflights_carry_no_cors_headers() {
        for pairs in [
            &[
                ("Origin", "https://evil.example"),
                ("Access-Control-Request-Method", "PUT"),
            ][..],
            &[
                ("Origin", "https://www.example.com"),
                ("Access-Control-Request-Method", "PATCH"),
            ],
            &[
                ("Origin", "https://www.example.com"),
                ("Access-Control-Request-Method", "PUT"),
                ("Access-Control-Request-Headers", "x-other"),
            ],
            &[
                ("Origin", "https://www.example.com"),
                ("Origin", "https://www.example.com"),
                ("Access-Control-Request-Method", "PUT"),
            ],
            &[("Origin", ""), ("Access-Control-Request-Method", "PUT")],
        ] {
            assert_eq!(preflight_of(&site(), pairs), Some(Vec::new()), "{pairs:?}");
        }
    }

    #[test]
    fn requests_that_are_not_preflights_go_to_the_function() {
        assert_eq!(
            preflight_of(&site(), &[("Origin", "https://www.example.com")]),
            None
        );
        assert_eq!(
            preflight_of(&site(), &[("Access-Control-Request-Method", "PUT")]),
            None
        );
        let h = headers(&[
            ("Origin", "https://www.example.com"),
            ("Access-Control-Request-Method", "PUT"),
        ]);
        assert_eq!(preflight(&site(), "GET", &h), None);
        assert!(preflight(&site(), "options", &h).is_some());
    }

    #[test]
    fn wildcards_are_answered_literally() {
        let open = Cors {
            allow_origins: vec!["*".into()],
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            expose_headers: vec!["*".into()],
            allow_credentials: Some(true),
            max_age: None,
        };
        let got = preflight_of(
            &open,
            &[
                ("Origin", "https://anyone.example"),
                ("Access-Control-Request-Method", "PATCH"),
                ("Access-Control-Request-Headers", "x-anything"),
            ],
        )
        .unwrap();
        assert_eq!(get(&got, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&got, "vary"), None);
        assert_eq!(get(&got, "access-control-allow-methods"), Some("*"));
        assert_eq!(get(&got, "access-control-allow-headers"), Some("*"));
        assert_eq!(get(&got, "access-control-max-age"), None);
        let got = response_headers(&open, &headers(&[("Origin", "https://anyone.example")]));
        assert_eq!(get(&got, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&got, "access-control-expose-headers"), Some("*"));
        // A listed origin is echoed even when `*` is there too.
        let mixed = Cors {
            allow_origins: vec!["*".into(), "https://a.example".into()],
            ..Cors::default()
        };
        let got = response_headers(&mixed, &headers(&[("origin", "https://a.example")]));
        assert_eq!(
            get(&got, "access-control-allow-origin"),
            Some("https://a.example")
        );
    }

    #[test]
    fn responses_get_cors_headers_only_for_allowed_origins() {
        let got = response_headers(&site(), &headers(&[("Origin", "https://www.example.com")]));
        assert_eq!(
            get(&got, "access-control-allow-origin"),
            Some("https://www.example.com")
        );
        assert_eq!(get(&got, "access-control-allow-credentials"), Some("true"));
        assert_eq!(
            get(&got, "access-control-expose-headers"),
            Some("X-Request-Id")
        );
        assert_eq!(get(&got, "vary"), Some("Origin"));
        assert!(
            response_headers(&site(), &headers(&[("Origin", "https://evil.example")])).is_empty()
        );
        assert!(response_headers(&site(), &[]).is_empty());
        let no_creds = Cors {
            allow_credentials: Some(false),
            ..site()
        };
        let got = response_headers(
            &no_creds,
            &headers(&[("Origin", "https://www.example.com")]),
        );
        assert_eq!(get(&got, "access-control-allow-credentials"), None);
    }

    #[test]
    fn the_platforms_headers_replace_the_functions() {
        let mut r = map_response(
            br#"{"statusCode":200,"headers":{"Access-Control-Allow-Origin":"*","Access-Control-Allow-Credentials":"true","Vary":"Accept","X-Own":"kept"}}"#,
        );
        apply(
            &site(),
            &headers(&[("Origin", "https://www.example.com")]),
            &mut r,
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://www.example.com")
        );
        assert_eq!(
            r.headers
                .iter()
                .filter(|(n, _)| n == "access-control-allow-origin")
                .count(),
            1
        );
        assert_eq!(r.header("vary"), Some("Accept, Origin"));
        assert_eq!(r.header("x-own"), Some("kept"));
        // A refused origin leaves no CORS header at all, the function's included.
        let mut r = map_response(
            br#"{"statusCode":200,"headers":{"Access-Control-Allow-Origin":"*","Vary":"*"}}"#,
        );
        apply(
            &site(),
            &headers(&[("Origin", "https://evil.example")]),
            &mut r,
        );
        assert!(r
            .headers
            .iter()
            .all(|(n, _)| !n.starts_with("access-control-")));
        let mut r = map_response(br#"{"statusCode":200,"headers":{"Vary":"origin"}}"#);
        apply(
            &site(),
            &headers(&[("Origin", "https://www.example.com")]),
            &mut r,
        );
        assert_eq!(r.header("vary"), Some("origin"));
    }

    proptest! {
        #[test]
        fn cors_answers_never_panic_and_stay_safe(
            origin in ".{0,40}",
            method in ".{0,10}",
            requested in ".{0,40}",
        ) {
            let open = Cors { allow_origins: vec!["*".into()], ..site() };
            for cors in [site(), open] {
                let h = headers(&[
                    ("Origin", &origin),
                    ("Access-Control-Request-Method", &method),
                    ("Access-Control-Request-Headers", &requested),
                ]);
                let mut lines = preflight(&cors, "OPTIONS", &h).unwrap_or_default();
                lines.extend(response_headers(&cors, &h));
                for (_, v) in lines {
                    prop_assert!(v.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
                }
            }
        }
    }
}

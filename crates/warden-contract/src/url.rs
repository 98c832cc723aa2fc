//! The `Url` rules: checks on the HTTP part of a function URL request.
//!
//! Path patterns: a pattern starts with `/` and is matched against the request path (without
//! its query string) byte for byte, case-sensitively, with no decoding. A pattern is either
//! exact (`/orders`) or ends in a whole `*` segment (`/orders/*`), which matches one or more
//! further segments: `/orders/7` and `/orders/7/items`, but neither `/orders` nor `/orders/`.
//! Each segment `*` matches must be non-empty and not a dot segment (`.`, `..`, or either
//! written with `%2e`), so `/orders/../admin` never matches `/orders/*`. `/*` matches every
//! path except `/`. In a pattern, `*` may appear nowhere but as that final segment, and
//! segments are non-empty, not dot segments, and printable ASCII without `?` or `#`.

use crate::document::{is_tchar, UrlSection};
use crate::excerpt::excerpt;
use crate::{RequestParts, Violation, ViolationList};

/// The longest path pattern accepted.
const MAX_PATTERN_BYTES: usize = 1024;

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathPattern {
    /// Matches exactly this path.
    Exact(String),
    /// Matches this prefix (ending in `/`) followed by one or more acceptable segments.
    Below(String),
}

impl PathPattern {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => path == p,
            PathPattern::Below(prefix) => path.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                !rest.is_empty() && rest.split('/').all(|s| !s.is_empty() && !is_dot_segment(s))
            }),
        }
    }
}

/// Whether a path segment is `.` or `..`, however percent-encoded.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// Checks a path pattern as the module documentation describes; the error says why not.
pub(crate) fn check_path_pattern(pattern: &str) -> Result<(), &'static str> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err("is longer than 1024 bytes");
    }
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err("must start with /");
    };
    if !pattern
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'?' && b != b'#')
    {
        return Err("may hold only printable ASCII, without spaces, ? or #");
    }
    if rest.is_empty() {
        return Ok(());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return Err("has an empty segment");
        }
        if is_dot_segment(segment) {
            return Err("has a . or .. segment");
        }
        if segment.contains('*') && (*segment != "*" || i != last) {
            return Err("may use * only as its whole last segment");
        }
    }
    Ok(())
}

/// The `Url` section, ready to check requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct UrlRules {
    methods: Option<Vec<String>>,
    paths: Option<Vec<PathPattern>>,
    content_types: Option<Vec<String>>,
    max_body_bytes: Option<u64>,
    max_header_bytes: Option<u64>,
    required_headers: Vec<String>,
}

impl UrlRules {
    /// The section's `MaxBodyBytes`, if it sets one.
    pub(crate) fn max_body_bytes(&self) -> Option<u64> {
        self.max_body_bytes
    }

    /// Compiles a section that [`InputContract::parse`](crate::InputContract::parse) checked.
    pub(crate) fn new(section: &UrlSection) -> UrlRules {
        let paths = section.allowed_paths.as_ref().map(|paths| {
            paths
                .iter()
                .map(|p| match p.strip_suffix('*') {
                    Some(prefix) => PathPattern::Below(prefix.to_owned()),
                    None => PathPattern::Exact(p.clone()),
                })
                .collect()
        });
        UrlRules {
            methods: section.allowed_methods.clone(),
            paths,
            content_types: section.allowed_content_types.clone(),
            max_body_bytes: section.max_body_bytes,
            max_header_bytes: section.max_header_bytes,
            required_headers: section.required_headers.clone().unwrap_or_default(),
        }
    }

    /// Checks a request, in order: method, path, header size, required headers, content
    /// type, body size. Every failing check adds a violation.
    pub(crate) fn check(&self, req: &RequestParts<'_>, out: &mut ViolationList) {
        if let Some(methods) = &self.methods {
            if !methods.iter().any(|m| m == req.method) {
                out.push(Violation::new(
                    "method",
                    format!(
                        "method \"{}\" is not allowed; allowed: {}",
                        excerpt(req.method),
                        methods.join(", ")
                    ),
                ));
            }
        }
        if let Some(paths) = &self.paths {
            let path = req.path.split_once('?').map_or(req.path, |(p, _)| p);
            if !paths.iter().any(|p| p.matches(path)) {
                out.push(Violation::new(
                    "path",
                    format!("path \"{}\" is not allowed", excerpt(path)),
                ));
            }
        }
        if let Some(max) = self.max_header_bytes {
            let total: u64 = req
                .headers
                .iter()
                .map(|(name, value)| (name.len() + value.len()) as u64)
                .sum();
            if total > max {
                out.push(Violation::new(
                    "headers",
                    format!("headers take {total} bytes; the limit is {max}"),
                ));
            }
        }
        for name in &self.required_headers {
            let mut present = false;
            let mut filled = false;
            for (n, v) in req.headers {
                if n.eq_ignore_ascii_case(name) {
                    present = true;
                    filled |= !v.is_empty();
                }
            }
            let message = match (present, filled) {
                (false, _) => "is required",
                (true, false) => "is required and must not be empty",
                (true, true) => continue,
            };
            out.push(Violation::new(format!("header {name}"), message.to_owned()));
        }
        if let Some(allowed) = &self.content_types {
            if let Err(message) = check_content_type(req, allowed) {
                out.push(Violation::new("header content-type", message));
            }
        }
        if let Some(max) = self.max_body_bytes {
            if req.body_len as u64 > max {
                out.push(Violation::new(
                    "body",
                    format!("body is {} bytes; the limit is {max}", req.body_len),
                ));
            }
        }
    }
}

/// A request with a body, or with a `content-type` header, must carry exactly one
/// `content-type` whose media type (parameters ignored, case-insensitive) is allowed.
fn check_content_type(req: &RequestParts<'_>, allowed: &[String]) -> Result<(), String> {
    let mut values = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| *v);
    let Some(value) = values.next() else {
        return if req.body_len == 0 {
            Ok(())
        } else {
            Err(format!(
                "is required with a body; allowed: {}",
                allowed.join(", ")
            ))
        };
    };
    if values.next().is_some() {
        return Err("must be sent once".to_owned());
    }
    let media_type = value.split(|&b| b == b';').next().unwrap_or_default();
    let media_type = media_type.trim_ascii();
    let known = media_type.iter().all(|&b| is_tchar(b) || b == b'/')
        && allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(media_type));
    if known {
        Ok(())
    } else {
        let shown = String::from_utf8_lossy(media_type);
        Err(format!(
            "\"{}\" is not allowed; allowed: {}",
            excerpt(&shown),
            allowed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::InputContract;

    fn rules(url: &str) -> UrlRules {
        let doc = format!(r#"{{"Url": {url}}}"#);
        let contract = InputContract::parse(doc.as_bytes()).unwrap();
        UrlRules::new(contract.url.as_ref().unwrap())
    }

    fn check(rules: &UrlRules, req: &RequestParts<'_>) -> Vec<Violation> {
        let mut out = ViolationList::default();
        rules.check(req, &mut out);
        out.into_violations()
            .map(|v| v.as_slice().to_vec())
            .unwrap_or_default()
    }

    fn get(path: &str) -> RequestParts<'_> {
        RequestParts {
            method: "GET",
            path,
            headers: &[],
            body_len: 0,
        }
    }

    fn matches(pattern: &str, path: &str) -> bool {
        check_path_pattern(pattern).unwrap();
        let p = match pattern.strip_suffix('*') {
            Some(prefix) => PathPattern::Below(prefix.to_owned()),
            None => PathPattern::Exact(pattern.to_owned()),
        };
        p.matches(path)
    }

    #[test]
    fn exact_patterns_match_exactly() {
        assert!(matches("/orders", "/orders"));
        assert!(!matches("/orders", "/orders/"));
        assert!(!matches("/orders", "/Orders"));
        assert!(!matches("/orders", "/orders/1"));
        assert!(matches("/", "/"));
        assert!(!matches("/", "/a"));
    }

    #[test]
    fn star_matches_one_or_more_segments() {
        assert!(matches("/orders/*", "/orders/1"));
        assert!(matches("/orders/*", "/orders/1/items"));
        assert!(!matches("/orders/*", "/orders"));
        assert!(!matches("/orders/*", "/orders/"));
        assert!(!matches("/orders/*", "/orders//x"));
        assert!(!matches("/orders/*", "/ordersx/1"));
        assert!(matches("/*", "/anything/at/all"));
        assert!(!matches("/*", "/"));
    }

    #[test]
    fn star_never_matches_dot_segments() {
        for path in [
            "/orders/..",
            "/orders/../admin",
            "/orders/./x",
            "/orders/%2e%2E/admin",
            "/orders/a/%2E",
        ] {
            assert!(!matches("/orders/*", path), "{path}");
        }
        assert!(matches("/orders/*", "/orders/.well-known"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in [
            "",
            "orders",
            "/a//b",
            "/a/",
            "/a/*/b",
            "/a*",
            "/*x",
            "/a/.",
            "/a/%2e%2e",
            "/a b",
            "/a?x",
            "/a#x",
            "/é",
        ] {
            assert!(check_path_pattern(p).is_err(), "{p}");
        }
        assert!(check_path_pattern(&format!("/{}", "a".repeat(1024))).is_err());
        for p in ["/", "/*", "/a", "/a/b/*", "/a-b_c.d~e%20"] {
            assert!(check_path_pattern(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn methods_are_checked() {
        let r = rules(r#"{"AllowedMethods": ["GET", "POST"]}"#);
        assert!(check(&r, &get("/")).is_empty());
        let v = check(
            &r,
            &RequestParts {
                method: "DELETE",
                ..get("/")
            },
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].location, "method");
        assert!(v[0].message.contains("DELETE"), "{}", v[0].message);
        // Methods are case-sensitive.
        assert_eq!(
            check(
                &r,
                &RequestParts {
                    method: "get",
                    ..get("/")
                }
            )
            .len(),
            1
        );
    }

    #[test]
    fn paths_are_checked_without_the_query() {
        let r = rules(r#"{"AllowedPaths": ["/orders", "/orders/*"]}"#);
        assert!(check(&r, &get("/orders?x=1")).is_empty());
        assert!(check(&r, &get("/orders/9")).is_empty());
        let v = check(&r, &get("/admin"));
        assert_eq!(v[0].location, "path");
        assert!(v[0].message.contains("/admin"));
    }

    #[test]
    fn required_headers_are_checked_case_insensitively() {
        let r = rules(r#"{"RequiredHeaders": ["X-Api-Key", "x-tenant"]}"#);
        let headers: &[(&str, &[u8])] = &[("x-API-key", b"k"), ("X-Tenant", b"")];
        let v = check(
            &r,
            &RequestParts {
                headers,
                ..get("/")
            },
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].location, "header x-tenant");
        let v = check(&r, &get("/"));
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].location, "header x-api-key");
    }

    #[test]
    fn content_types_are_checked() {
        let r = rules(r#"{"AllowedContentTypes": ["application/json"]}"#);
        let ok: &[(&str, &[u8])] = &[("Content-Type", b"Application/JSON; charset=utf-8")];
        assert!(check(
            &r,
            &RequestParts {
                headers: ok,
                body_len: 10,
                ..get("/")
            }
        )
        .is_empty());
        // No body and no content-type: nothing to check.
        assert!(check(&r, &get("/")).is_empty());
        let v = check(
            &r,
            &RequestParts {
                body_len: 10,
                ..get("/")
            },
        );
        assert_eq!(v[0].location, "header content-type");
        let bad: &[(&str, &[u8])] = &[("content-type", b"text/plain")];
        let v = check(
            &r,
            &RequestParts {
                headers: bad,
                ..get("/")
            },
        );
        assert!(v[0].message.contains("text/plain"));
        let twice: &[(&str, &[u8])] = &[
            ("content-type", b"application/json"),
            ("content-type", b"application/json"),
        ];
        assert_eq!(
            check(
                &r,
                &RequestParts {
                    headers: twice,
                    body_len: 1,
                    ..get("/")
                }
            )
            .len(),
            1
        );
        let binary: &[(&str, &[u8])] = &[("content-type", b"\xff\xfe/json")];
        let v = check(
            &r,
            &RequestParts {
                headers: binary,
                body_len: 1,
                ..get("/")
            },
        );
        assert!(v[0].message.is_ascii());
    }

    #[test]
    fn sizes_are_checked() {
        let r = rules(r#"{"MaxBodyBytes": 10, "MaxHeaderBytes": 8}"#);
        let headers: &[(&str, &[u8])] = &[("abcd", b"1234")];
        assert!(check(
            &r,
            &RequestParts {
                headers,
                body_len: 10,
                ..get("/")
            }
        )
        .is_empty());
        let big: &[(&str, &[u8])] = &[("abcd", b"12345")];
        let v = check(
            &r,
            &RequestParts {
                headers: big,
                body_len: 11,
                ..get("/")
            },
        );
        let locations: Vec<&str> = v.iter().map(|v| v.location.as_str()).collect();
        assert_eq!(locations, ["headers", "body"]);
    }

    #[test]
    fn every_failure_is_reported_in_order() {
        let r = rules(
            r#"{"AllowedMethods": ["POST"], "AllowedPaths": ["/a"], "MaxHeaderBytes": 1,
                "RequiredHeaders": ["x-k"], "AllowedContentTypes": ["application/json"], "MaxBodyBytes": 1}"#,
        );
        let headers: &[(&str, &[u8])] = &[("content-type", b"text/html")];
        let v = check(
            &r,
            &RequestParts {
                method: "GET",
                path: "/b",
                headers,
                body_len: 2,
            },
        );
        let locations: Vec<&str> = v.iter().map(|v| v.location.as_str()).collect();
        assert_eq!(
            locations,
            [
                "method",
                "path",
                "headers",
                "header x-k",
                "header content-type",
                "body"
            ]
        );
    }

    proptest! {
        #[test]
        fn star_patterns_never_match_dot_segments(prefix in "(/[a-z]{1,3}){0,3}", tail in "(/(\\.|\\.\\.|%2[eE]|[a-z]{1,3})){1,4}") {
            let pattern = format!("{prefix}/*");
            let path = format!("{prefix}{tail}");
            let has_dot = tail.split('/').skip(1).any(is_dot_segment);
            prop_assert_eq!(matches(&pattern, &path), !has_dot, "{} {}", pattern, path);
        }

        #[test]
        fn request_checks_never_panic(method in ".{0,8}", path in ".{0,40}", name in ".{0,12}", value in prop::collection::vec(any::<u8>(), 0..16), body_len in any::<usize>()) {
            let r = rules(r#"{"AllowedMethods": ["GET"], "AllowedPaths": ["/a/*"], "AllowedContentTypes": ["application/json"],
                             "MaxBodyBytes": 100, "MaxHeaderBytes": 100, "RequiredHeaders": ["x-k"]}"#);
            let headers: &[(&str, &[u8])] = &[(name.as_str(), value.as_slice())];
            for v in check(&r, &RequestParts { method: &method, path: &path, headers, body_len }) {
                prop_assert!(!v.message.chars().any(char::is_control), "{:?}", v.message);
            }
        }
    }
}

//! Route parsing for the Runtime API. Hand-written because the grammar is four fixed
//! paths; a router dependency would cost more than it explains.

use http::Method;

/// A parsed Runtime API request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /2018-06-01/runtime/invocation/next`.
    Next,
    /// `POST .../invocation/{id}/response`, with the id.
    Response(String),
    /// `POST .../invocation/{id}/error`, with the id.
    Error(String),
    /// `POST /2018-06-01/runtime/init/error`.
    InitError,
    /// A known path with the wrong method.
    MethodNotAllowed,
    /// Anything else.
    NotFound,
}

const PREFIX: &str = "/2018-06-01/runtime/";

/// Maps a method and path to a route; request ids are taken verbatim (they are compared,
/// never interpreted).
pub fn parse_route(method: &Method, path: &str) -> Route {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Route::NotFound;
    };
    let (route, expected) = match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["invocation", "next"] => (Route::Next, Method::GET),
        ["invocation", id, "response"] if !id.is_empty() => {
            (Route::Response((*id).to_owned()), Method::POST)
        }
        ["invocation", id, "error"] if !id.is_empty() => {
            (Route::Error((*id).to_owned()), Method::POST)
        }
        ["init", "error"] => (Route::InitError, Method::POST),
        _ => return Route::NotFound,
    };
    if super::is(method, &expected) {
        route
    } else {
        Route::MethodNotAllowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_path_routes_without_panicking(path in "\\PC{0,200}") {
            for m in [Method::GET, Method::POST, Method::PUT] {
                let _ = parse_route(&m, &path);
            }
        }

        #[test]
        fn request_ids_round_trip(id in "[A-Za-z0-9-]{1,64}") {
            let path = format!("/2018-06-01/runtime/invocation/{id}/response");
            prop_assert_eq!(parse_route(&Method::POST, &path), Route::Response(id));
        }
    }

    #[test]
    fn routes() {
        assert_eq!(
            parse_route(&Method::GET, "/2018-06-01/runtime/invocation/next"),
            Route::Next
        );
        assert_eq!(
            parse_route(&Method::POST, "/2018-06-01/runtime/invocation/abc/response"),
            Route::Response("abc".into())
        );
        assert_eq!(
            parse_route(&Method::POST, "/2018-06-01/runtime/invocation/abc/error"),
            Route::Error("abc".into())
        );
        assert_eq!(
            parse_route(&Method::POST, "/2018-06-01/runtime/init/error"),
            Route::InitError
        );
        assert_eq!(
            parse_route(&Method::POST, "/2018-06-01/runtime/invocation/next"),
            Route::MethodNotAllowed
        );
        assert_eq!(
            parse_route(&Method::POST, "/2018-06-01/runtime/invocation//response"),
            Route::NotFound
        );
        assert_eq!(parse_route(&Method::GET, "/other"), Route::NotFound);
    }
}

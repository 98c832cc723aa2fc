//! Lambda function URLs for Warden: what a function URL is, where it is kept, and how a
//! request to one becomes an invocation and the invocation's output becomes a response.
//!
//! - [`model`]: the configuration (`FunctionUrlConfig` with its [`AuthType`],
//!   [`InvokeMode`] and [`Cors`]) checked as Lambda's service model checks it, its JSON in
//!   the model's member names, the parsing of `CreateFunctionUrlConfig` and
//!   `UpdateFunctionUrlConfig` bodies, the URLs a configuration is served at (host form
//!   `http://<url-id>.lambda-url.<region>.localhost:<port>/`, and the path form
//!   `http://127.0.0.1:<port>/_url/<url-id>/` for hosts where those names do not
//!   resolve), and [`route`], which finds the URL id in a request.
//! - [`store`]: the configurations in `DATA_DIR/urls.db`, held in memory for
//!   [`UrlStore::by_url_id`], with at most one URL per function and qualifier and at most
//!   [`MAX_URL_CONFIGS`] in all.
//! - [`event`]: the payload format 2.0 event the function receives ([`build_event`]).
//! - [`response`]: the HTTP response made of the function's output ([`map_response`]),
//!   which never lets a function write a raw header line.
//! - [`cors`]: preflight answers and the CORS headers of responses, for URLs with
//!   [`Cors`] settings.
//! - [`error`]: [`UrlError`], each variant with Lambda's error code and HTTP status.
//!
//! What this crate never does: it opens no socket and runs no listener, authenticates no
//! one (no SigV4), authorizes nothing (no resource policy is read), and invokes no
//! function. The API crate listens, calls [`route`] and [`UrlStore::by_url_id`],
//! authenticates and authorizes by the URL's [`AuthType`], answers preflights with
//! [`cors::preflight`], invokes with [`build_event`]'s bytes, and sends what
//! [`map_response`] and [`cors::apply`] make of the output. Whether a function or alias
//! exists is the caller's check too: the store keeps names it is given.
#![forbid(unsafe_code)]

pub mod cors;
pub mod error;
pub mod event;
pub mod model;
pub mod response;
pub mod store;

pub use error::UrlError;
pub use event::{build_event, EventContext, IamCaller, UrlRequest};
pub use model::{
    check_function_name, check_qualifier, is_url_id, new_url_id, parse_create_request,
    parse_update_request, route, AuthType, Cors, CreateUrlRequest, InvokeMode, UpdateUrlRequest,
    UrlBase, UrlConfig, UrlPage, PATH_PREFIX, URL_ID_LEN,
};
pub use response::{
    function_error, map_response, map_stream_prelude, prelude_end, stream_head, MappedResponse,
    HTTP_INTEGRATION_CONTENT_TYPE, MAX_PRELUDE_BYTES,
};
pub use store::{UrlStore, MAX_LIST_ITEMS, MAX_URL_CONFIGS};

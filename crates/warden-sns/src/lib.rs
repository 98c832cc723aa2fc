//! The core of an Amazon SNS subset for Warden: topics, `http`, `https` and `lambda`
//! subscriptions, and durable at-least-once delivery in SNS's signed message format. The
//! API layer (HTTP, SigV4, IAM) and the Lambda engine are wired in by the binary.
//!
//! - [`query`] — the query-protocol surface: [`Sns::handle`] (form parameters in, XML out),
//!   [`authorization`] (what to authorize first), the XML error document.
//! - [`store`] — `sns.db` (through `warden-sqlite`: 0600, WAL, synchronous FULL): topics,
//!   subscriptions, the outbox of deliveries, dead letters, the signing key; or the same
//!   in PostgreSQL, shared by the nodes of a cluster ([`postgres`], [`Sns::open_shared`]).
//! - [`deliver`] — the [`Deliverer`]: HTTP POSTs (over TLS for `https`, see [`tls`]) and
//!   Lambda invocations, retries by [`RetryPolicy`], dead letters.
//! - [`message`] / [`signing`] — the JSON bodies, headers and Lambda event, signed with
//!   SignatureVersion 2 (SHA256withRSA) by a key generated on first start, with a
//!   self-signed certificate served at `SigningCertURL`.
//! - [`policy`] — `DeliveryPolicy` and the retry schedule. [`model`] — names, ARNs and
//!   input validation.
//! - [`import`] — a node's own `sns.db`, left by an earlier release, moved into the
//!   shared store ([`Sns::import_file`]).
//!
//! # Wiring
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn wire(lambda: Arc<dyn warden_sns::LambdaTarget>) -> Result<(), warden_sns::SnsError> {
//! let sns = warden_sns::Sns::open(
//!     std::path::Path::new("/var/lib/warden/sns.db"),
//!     "http://127.0.0.1:9700/_warden/sns/",
//! )?;
//! let deliverer = warden_sns::Deliverer::start(&sns, lambda, Default::default());
//! // Per API request: authorize `warden_sns::authorization(...)` (and the topic's
//! // `sns.topic_policy(...)`), then `sns.handle(&ctx, action, &params)` in spawn_blocking.
//! // Under the base path: `sns.serve_public(rest_of_path, &query, request_id)`.
//! deliverer.stop().await;
//! # Ok(()) }
//! ```
//!
//! # Several nodes
//!
//! With a PostgreSQL database shared by the nodes of a cluster, each node opens SNS with
//! [`Sns::open_shared`] on a pool opened with [`postgres::TRACK`], its own base URL, and a
//! [`KeySealer`] built on the master key every node shares; and each node starts its own
//! [`Deliverer`]:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn wire(
//! #     pool: warden_postgres::Pool,
//! #     sealer: Arc<dyn warden_sns::KeySealer>,
//! #     lambda: Arc<dyn warden_sns::LambdaTarget>,
//! # ) -> Result<(), warden_sns::SnsError> {
//! let sns = warden_sns::Sns::open_shared(pool, "https://node-1.example:9700/_warden/sns/", sealer)?;
//! let deliverer = warden_sns::Deliverer::start(&sns, lambda, Default::default());
//! # deliverer.stop().await;
//! # Ok(()) }
//! ```
//!
//! Then every node sees the same topics, subscriptions, queued deliveries and dead
//! letters, and a confirmation token sent through one node (in a message carrying the
//! delivering node's `SubscribeURL`) is accepted by every node. The bounds below hold for
//! the cluster together: they are counted in the transaction that adds, under a lock. A
//! queued delivery is made by one node at a time: a node claims it under a lease of
//! [`DeliveryConfig::lease`] (60 s by default; longer than one attempt may take), and
//! recording its outcome ends the claim; a node that dies leaves its claims to expire, and
//! any node makes them then (at least once, never twice at the same time while a lease is
//! live). A node's deliverer is woken by its own node's requests and otherwise looks for
//! due deliveries every [`deliver::SHARED_POLL_INTERVAL`] (500 ms), the bound on how long
//! a delivery queued through another node waits to start. The signing key is the
//! cluster's, stored only sealed by the [`KeySealer`].
//!
//! # Who may call what, and what it changes
//!
//! [`Sns::handle`] trusts its [`CallContext`]: the API layer authenticates the caller and
//! authorizes [`authorization`]'s `(iam_action, resource)` first, against the caller's
//! identity policies and, for a topic of another account, the topic's resource policy
//! ([`Sns::topic_policy`], stored as given and evaluated by the API layer). The resource is
//! always a topic ARN (a subscription's is its topic's), or `*` for the two account-wide
//! list actions.
//!
//! | Operation | Authorized as | What it can change |
//! |---|---|---|
//! | CreateTopic | `sns:CreateTopic` on the new topic's ARN (caller's account and region) | creates a topic owned by the caller's account, with attributes and tags; idempotent |
//! | DeleteTopic | `sns:DeleteTopic` on the topic | deletes the topic, its subscriptions, tags, undelivered messages and dead letters |
//! | ListTopics | `sns:ListTopics` on `*` | nothing; lists the caller's account's topics in the region |
//! | GetTopicAttributes | `sns:GetTopicAttributes` on the topic | nothing; shows attributes including `Policy` |
//! | SetTopicAttributes | `sns:SetTopicAttributes` on the topic | `DisplayName`, `DeliveryPolicy`, and `Policy`, which governs every other call on the topic: grant it as an administrative right |
//! | Subscribe | `sns:Subscribe` on the topic | adds a subscription owned by the caller; for `http` and `https`, the endpoint receives one SubscriptionConfirmation and nothing else until confirmed; `lambda` is confirmed at once (the binary's [`LambdaTarget`] decides whether the topic may invoke the function) |
//! | ConfirmSubscription | `sns:ConfirmSubscription` on the topic; or unauthenticated through the SubscribeURL ([`Sns::confirm_via_url`]), where the token is the credential | confirms the pending subscription the token belongs to (or restores one an UnsubscribeConfirmation was sent for); sets `AuthenticateOnUnsubscribe` |
//! | Unsubscribe | `sns:Unsubscribe` on the subscription's topic (the API layer may also let the subscription's owner, [`Sns::subscription_owner`]); or unauthenticated through the UnsubscribeURL ([`Sns::unsubscribe_via_url`]). A subscription confirmed with `AuthenticateOnUnsubscribe` is removed only by its owner's or its topic owner's authenticated call | deletes the subscription (pending ones too, unlike SNS: the per-topic bound makes them worth removing) and its undelivered messages; when no authentication was required and the caller is not the owner, a confirmed `http` or `https` one is sent an UnsubscribeConfirmation |
//! | ListSubscriptions | `sns:ListSubscriptions` on `*` | nothing; lists subscriptions the caller's account owns |
//! | ListSubscriptionsByTopic | `sns:ListSubscriptionsByTopic` on the topic | nothing; lists every subscription of the topic (endpoints included) |
//! | GetSubscriptionAttributes | `sns:GetSubscriptionAttributes` on the subscription's topic | nothing |
//! | SetSubscriptionAttributes | `sns:SetSubscriptionAttributes` on the subscription's topic | `RawMessageDelivery`, `DeliveryPolicy` |
//! | Publish | `sns:Publish` on the topic | queues one delivery per confirmed subscription |
//! | TagResource / UntagResource / ListTagsForResource | `sns:TagResource` / `sns:UntagResource` / `sns:ListTagsForResource` on the topic | the topic's tags |
//!
//! The signing certificate ([`Sns::signing_cert_pem`], served at [`Sns::cert_path`]) is
//! public. The private signing key is never returned by any operation; with a shared store
//! it is stored only sealed, and the functions of [`postgres`] that read or replace the
//! sealed key ([`postgres::signing_key`], [`postgres::replace_signing_key`],
//! [`postgres::reseal_signing_key`]) are for the binary's master-key rotation, an
//! operator's action that no API request reaches.
//!
//! # Supported and refused
//!
//! Refused by name rather than ignored: FIFO topics (`.fifo` names, `FifoTopic`,
//! `MessageGroupId`, `MessageDeduplicationId`), protocols other than `http`, `https` and
//! `lambda` (`email` and `email-json` among them: no SMTP relay), SMS and platform endpoints
//! (`PhoneNumber`, `TargetArn` other than a topic), topic attributes other than
//! `DisplayName`, `Policy`, `DeliveryPolicy` and `SignatureVersion` 2, subscription
//! attributes other than `RawMessageDelivery` and `DeliveryPolicy` (no filter policies, no
//! redrive to SQS: undeliverable messages go to this crate's dead-letter table), throttle
//! policies, data protection policies, and every parameter an operation does not define.
//! The bounds are the constants below.
#![forbid(unsafe_code)]

pub mod deliver;
mod error;
pub mod import;
pub mod message;
pub mod model;
pub mod policy;
pub mod postgres;
pub mod query;
pub mod signing;
pub mod store;
pub mod tls;
mod xml;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

pub use deliver::{
    Deliverer, DeliveryConfig, EndpointGuard, InvokeError, InvokeFuture, LambdaInvocation,
    LambdaTarget,
};
pub use error::SnsError;
pub use import::{ImportReport, Leftover};
pub use model::{MessageAttribute, Protocol, TopicArn};
pub use policy::{Backoff, RetryPolicy};
pub use query::{authorization, Authorization, CallContext};
pub use signing::{KeySealer, SealError};
pub use store::DeadLetter;
pub use xml::NAMESPACE;

use crate::message::Urls;
use crate::model::{now_ms, subscription_topic};
use crate::signing::Signer;
use crate::store::Store;

/// At most this many topics per account and region (AWS allows 100,000).
pub const MAX_TOPICS_PER_ACCOUNT: usize = 1_000;
/// At most this many subscriptions, pending or confirmed, per topic.
pub const MAX_SUBSCRIPTIONS_PER_TOPIC: usize = 100;
/// A message with its subject and attributes is at most 256 KiB (SNS's limit).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// A `Subject` is at most 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 100;
/// At most this many message attributes per message (SNS's limit).
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// At most this many tags per topic (SNS's limit).
pub const MAX_TAGS: usize = 50;
/// A `DisplayName` is at most 100 characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
/// A `Policy` or `DeliveryPolicy` is at most 30 KiB.
pub const MAX_POLICY_BYTES: usize = 30 * 1024;
/// An endpoint URL is at most this long.
pub const MAX_ENDPOINT_BYTES: usize = 2048;
/// At most this many deliveries wait per topic; a Publish beyond it fails with `Throttled`.
pub const MAX_PENDING_DELIVERIES_PER_TOPIC: usize = 10_000;
/// At most this many bytes of undelivered messages per topic; a Publish beyond it fails with
/// `Throttled`.
pub const MAX_PENDING_BYTES_PER_TOPIC: usize = 64 * 1024 * 1024;
/// The newest this many dead letters of a topic are kept.
pub const MAX_DEAD_LETTERS_PER_TOPIC: usize = 1_000;
/// Items per page of the list actions.
pub const PAGE_SIZE: usize = 100;
/// A confirmation token (of a pending subscription, or of an UnsubscribeConfirmation's
/// restore link) is valid this long; an unconfirmed subscription is deleted after it (SNS
/// deletes unconfirmed subscriptions after 48 hours).
pub const CONFIRMATION_TOKEN_LIFETIME: Duration = Duration::from_secs(48 * 3600);

/// An answer to a request under the public base URL ([`Sns::serve_public`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// The SNS service: the store, the signing key and the URLs delivered messages point to.
/// Cloning is cheap and shares everything.
#[derive(Clone, Debug)]
pub struct Sns {
    pub(crate) store: Arc<Store>,
    pub(crate) signer: Arc<Signer>,
    pub(crate) urls: Urls,
    pub(crate) base_path: String,
    pub(crate) wake: Arc<Notify>,
}

impl Sns {
    /// Opens (creating if needed) `sns.db` at `path` and loads the signing key, generating
    /// it on first start. `base_url` is where the binary serves [`Sns::serve_public`], for
    /// example `http://127.0.0.1:9700/_warden/sns/`: `SigningCertURL`, `SubscribeURL` and
    /// `UnsubscribeURL` are built on it. Blocks on file I/O (and on key generation the
    /// first time).
    pub fn open(path: &Path, base_url: &str) -> Result<Sns, SnsError> {
        let (base, base_path) = check_base_url(base_url)?;
        Sns::assemble(Store::open(path)?, base, base_path)
    }

    /// Opens SNS on the PostgreSQL database the nodes of a cluster share, through `pool`,
    /// which must have been opened with [`postgres::TRACK`] among its tracks. Every node
    /// sees the same topics, subscriptions, queued deliveries, dead letters and signing
    /// key; each delivery is claimed by one node at a time (see [`Deliverer`]).
    ///
    /// `base_url` is this node's own (as for [`Sns::open`]): the `SubscribeURL`s and
    /// `UnsubscribeURL`s it sends point to it, and a token sent through any node is
    /// accepted through every node. The signing key is stored only sealed by `sealer`
    /// (the binary's master key, the same on every node): the first node to start offers
    /// one, and every node signs with the one stored; a node whose sealer cannot open it
    /// fails to open ([`SnsError::Signing`]). Blocks on PostgreSQL (and on key generation
    /// the first time).
    pub fn open_shared(
        pool: warden_postgres::Pool,
        base_url: &str,
        sealer: Arc<dyn KeySealer>,
    ) -> Result<Sns, SnsError> {
        let (base, base_path) = check_base_url(base_url)?;
        let store = Store::Postgres(crate::postgres::PgStore::new(pool, &base, sealer));
        Sns::assemble(store, base, base_path)
    }

    /// Moves the state a node of an earlier release kept in its own `sns.db` at `path`
    /// into the shared store this service is open on ([`Sns::open_shared`]): topics,
    /// subscriptions, restorable unsubscriptions, queued deliveries and dead letters, in
    /// one PostgreSQL transaction. See [`import`] for what is copied, how it meets the
    /// shared store's state (a topic or subscription already there is kept as it is), the
    /// bounds (what does not fit stays in the file, counted in [`ImportReport::left`])
    /// and why a crash at any point neither loses nor duplicates anything. The file's
    /// signing key is not copied: the cluster signs everything it delivers with its own.
    ///
    /// Once everything is copied the file is renamed to `sns.db.imported`
    /// ([`ImportReport::moved_to`]); while something is left it keeps its name, and the
    /// next call copies what fits by then. A missing file is not an error
    /// ([`ImportReport::found`] is false). Refused on a service opened on a file
    /// ([`SnsError::Config`]). Blocks on file I/O and PostgreSQL.
    pub fn import_file(&self, path: &Path) -> Result<ImportReport, SnsError> {
        let Store::Postgres(shared) = &*self.store else {
            return Err(SnsError::Config(
                "a node's SNS file can only be imported into the shared store".to_owned(),
            ));
        };
        let found = path.try_exists().map_err(|e| {
            SnsError::Config(format!(
                "cannot tell whether the SNS file `{}` exists: {e}",
                path.display()
            ))
        })?;
        if !found {
            return Ok(ImportReport::default());
        }
        // The file's connections close at the end of this block, before it is renamed.
        let file = {
            let local = store::SqliteStore::open(path)?;
            local.read(import::read_file)?
        };
        let mut report = shared.import(Arc::new(file), now_ms())?;
        if report.is_complete() {
            report.moved_to = Some(import::move_aside(path)?);
        }
        Ok(report)
    }

    /// Loads (or creates) the signing key from `store` and builds the service on it.
    fn assemble(store: Store, base: String, base_path: String) -> Result<Sns, SnsError> {
        let store = Arc::new(store);
        let signer = Arc::new(Signer::load_or_create(&store)?);
        let urls = Urls {
            cert: format!("{base}{}", signer.cert_file()),
            base,
        };
        Ok(Sns {
            store,
            signer,
            urls,
            base_path,
            wake: Arc::new(Notify::new()),
        })
    }

    /// The signing certificate, PEM-encoded (public).
    pub fn signing_cert_pem(&self) -> &str {
        self.signer.cert_pem()
    }

    /// `SigningCertURL`: where delivered messages say the certificate is.
    pub fn signing_cert_url(&self) -> &str {
        &self.urls.cert
    }

    /// The path of the base URL (ending in `/`), under which [`Sns::serve_public`] answers.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The path the certificate is served at (the base path and the certificate's file
    /// name).
    pub fn cert_path(&self) -> String {
        format!("{}{}", self.base_path, self.signer.cert_file())
    }

    /// The topic's `Policy` as stored (the API layer evaluates it), `None` when the topic
    /// has none or does not exist.
    pub fn topic_policy(&self, topic_arn: &str) -> Result<Option<String>, SnsError> {
        let arn = TopicArn::parse(topic_arn, "TopicArn")?;
        Ok(self.store.topic(&arn.to_string())?.and_then(|t| t.policy))
    }

    /// The account that owns a subscription, `None` when there is no such subscription.
    pub fn subscription_owner(&self, subscription_arn: &str) -> Result<Option<String>, SnsError> {
        subscription_topic(subscription_arn, "SubscriptionArn")?;
        Ok(self.store.subscription(subscription_arn)?.map(|s| s.owner))
    }

    /// What the unauthenticated `SubscribeURL` does: confirms the subscription of
    /// `topic_arn` that `token` was sent for, returning `ConfirmSubscriptionResponse` XML.
    /// Anyone holding the token may call it (that is what the token is for).
    pub fn confirm_via_url(
        &self,
        topic_arn: &str,
        token: &str,
        request_id: &str,
    ) -> Result<String, SnsError> {
        let arn = TopicArn::parse(topic_arn, "TopicArn")?;
        let sub = self
            .store
            .confirm(&arn.to_string(), token, None, false, now_ms())?;
        Ok(query::confirm_response(&sub, request_id))
    }

    /// What the unauthenticated `UnsubscribeURL` does: deletes the subscription, returning
    /// `UnsubscribeResponse` XML. Anyone holding the subscription ARN may call it, unless
    /// the subscription was confirmed with `AuthenticateOnUnsubscribe=true`
    /// (`AuthorizationError`: use the authenticated Unsubscribe).
    pub fn unsubscribe_via_url(
        &self,
        subscription_arn: &str,
        request_id: &str,
    ) -> Result<String, SnsError> {
        subscription_topic(subscription_arn, "SubscriptionArn")?;
        self.store
            .unsubscribe(subscription_arn, None, now_ms())?
            .ok_or_else(store::subscription_not_found)?;
        self.wake.notify_one();
        Ok(query::unsubscribe_response(request_id))
    }

    /// Answers a GET under the base URL: `rest` is the path after [`Sns::base_path`],
    /// `query` the decoded query string. The certificate's file name serves the PEM; the
    /// empty path with `Action=ConfirmSubscription&TopicArn=..&Token=..` or
    /// `Action=Unsubscribe&SubscriptionArn=..` is [`Sns::confirm_via_url`] or
    /// [`Sns::unsubscribe_via_url`]. No authentication is involved.
    pub fn serve_public(
        &self,
        rest: &str,
        query: &[(String, String)],
        request_id: &str,
    ) -> Result<PublicResponse, SnsError> {
        let xml = |body: String| PublicResponse {
            status: 200,
            content_type: "text/xml",
            body,
        };
        if rest == self.signer.cert_file() {
            return Ok(PublicResponse {
                status: 200,
                content_type: "application/x-pem-file",
                body: self.signer.cert_pem().to_owned(),
            });
        }
        if !rest.is_empty() {
            return Err(SnsError::NotFound("No such SNS resource".to_owned()));
        }
        let p = query::Params::new(query)?;
        match p.get("Action") {
            Some("ConfirmSubscription") => {
                let topic = p.req("TopicArn")?;
                let token = p.req("Token")?;
                p.finish()?;
                self.confirm_via_url(topic, token, request_id).map(xml)
            }
            Some("Unsubscribe") => {
                let arn = p.req("SubscriptionArn")?;
                p.finish()?;
                self.unsubscribe_via_url(arn, request_id).map(xml)
            }
            Some(other) => Err(SnsError::InvalidAction(format!(
                "The action `{}` is not available without authentication",
                model::shown(other)
            ))),
            None => Err(SnsError::InvalidParameter(
                "Action: missing required parameter".to_owned(),
            )),
        }
    }

    /// The dead letters of a topic (deliveries given up after their last retry), oldest
    /// first; the newest [`MAX_DEAD_LETTERS_PER_TOPIC`] are kept.
    pub fn dead_letters(&self, topic_arn: &str) -> Result<Vec<DeadLetter>, SnsError> {
        let arn = TopicArn::parse(topic_arn, "TopicArn")?;
        self.store.dead_letters(&arn.to_string())
    }

    /// How many deliveries (notifications and confirmations) wait for a topic.
    pub fn pending_deliveries(&self, topic_arn: &str) -> Result<u64, SnsError> {
        let arn = TopicArn::parse(topic_arn, "TopicArn")?;
        self.store.pending_deliveries(&arn.to_string())
    }
}

/// Checks the base URL (absolute `http` or `https`, no query or fragment) and returns it
/// ending in `/`, with its path.
fn check_base_url(base_url: &str) -> Result<(String, String), SnsError> {
    let bad = |why: &str| SnsError::Config(format!("the SNS base URL `{base_url}` {why}"));
    let uri: http::Uri = base_url.parse().map_err(|_| bad("is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("is not an http or https URL"));
    }
    if uri.authority().is_none() {
        return Err(bad("has no host"));
    }
    if uri.query().is_some() || base_url.contains('#') {
        return Err(bad("has a query or fragment"));
    }
    let mut base = base_url.to_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    let mut path = uri.path().to_owned();
    if !path.ends_with('/') {
        path.push('/');
    }
    Ok((base, path))
}

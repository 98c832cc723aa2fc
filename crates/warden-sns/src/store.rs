//! The store: topics and their tags, subscriptions, the outbox of messages and their
//! per-subscription deliveries, the dead letters, and the signing key. `Store` is either of
//! two backends with the same operations, meanings and bounds:
//!
//! - **SQLite** (`SqliteStore`): one node's `sns.db`, opened through `warden-sqlite`
//!   (0600, WAL, synchronous FULL, append-only migrations). One writer at a time, so every
//!   check (a name taken, a limit, a queue bound) holds when its write commits. The
//!   deliverer of the node is the only one reading the outbox: deliveries are not claimed,
//!   and it skips those it has in flight.
//! - **PostgreSQL** ([`crate::postgres`]): the database the nodes of a cluster share. Each
//!   bound is counted in the transaction that adds, under a lock (a per-account advisory
//!   lock for topics, the topic's row for everything added to one topic), so two nodes
//!   cannot both pass it; each due delivery is claimed under a lease by one node at a
//!   time, and its outcome is recorded only under that claim (`Claim`).
//!
//! The decisions both backends make the same way (an idempotent CreateTopic or Subscribe,
//! the limits and their messages, who may unsubscribe) are written once, below, and called
//! by both.
//!
//! Durability rule: whatever an operation acknowledges is committed first. `publish` writes
//! the message and one delivery row per confirmed subscription in one transaction; the
//! deliverer deletes a row only after the delivery succeeded, so a row in flight when the
//! process (or node) dies is delivered again after a restart, or on PostgreSQL by any node
//! once its claim's lease expires (at least once).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use warden_sqlite::{immediate, lock, Options, Synchronous};

use crate::error::{db, invalid, SnsError};
use crate::model::{MessageAttribute, Protocol, TopicArn};
use crate::postgres::PgStore;
use crate::{
    CONFIRMATION_TOKEN_LIFETIME, MAX_DEAD_LETTERS_PER_TOPIC, MAX_PENDING_BYTES_PER_TOPIC,
    MAX_PENDING_DELIVERIES_PER_TOPIC, MAX_SUBSCRIPTIONS_PER_TOPIC, MAX_TAGS,
    MAX_TOPICS_PER_ACCOUNT,
};

const SCHEMA_V1: &str = "
CREATE TABLE topics (
    arn TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    policy TEXT,
    delivery_policy TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX topics_by_owner ON topics(account, region, arn);
CREATE TABLE topic_tags (
    topic_arn TEXT NOT NULL REFERENCES topics(arn) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (topic_arn, key)
);
CREATE TABLE subscriptions (
    arn TEXT PRIMARY KEY,
    topic_arn TEXT NOT NULL REFERENCES topics(arn) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    raw INTEGER NOT NULL DEFAULT 0,
    delivery_policy TEXT,
    confirmed INTEGER NOT NULL,
    token_hash BLOB,
    token_expires_at INTEGER,
    authenticated INTEGER NOT NULL DEFAULT 0,
    auth_on_unsubscribe INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (topic_arn, protocol, endpoint)
);
CREATE INDEX subscriptions_by_owner ON subscriptions(owner, arn);
CREATE INDEX subscriptions_by_token ON subscriptions(token_hash);
CREATE TABLE unsubscribed (
    arn TEXT PRIMARY KEY,
    topic_arn TEXT NOT NULL REFERENCES topics(arn) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    raw INTEGER NOT NULL,
    delivery_policy TEXT,
    token_hash BLOB NOT NULL,
    token_expires_at INTEGER NOT NULL
);
CREATE INDEX unsubscribed_by_token ON unsubscribed(token_hash);
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    topic_arn TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL,
    structure_json INTEGER NOT NULL DEFAULT 0,
    attributes TEXT NOT NULL DEFAULT '[]',
    token TEXT,
    timestamp_ms INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX messages_by_topic ON messages(topic_arn);
-- AUTOINCREMENT: an id is never reused, so a delivery still in flight when its row was
-- deleted (by Unsubscribe) cannot record its outcome on a newer row.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    topic_arn TEXT NOT NULL,
    subscription_arn TEXT NOT NULL,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX deliveries_due ON deliveries(due_at, id);
CREATE INDEX deliveries_by_topic ON deliveries(topic_arn);
CREATE INDEX deliveries_by_subscription ON deliveries(subscription_arn);
CREATE INDEX deliveries_by_message ON deliveries(message_id);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    topic_arn TEXT NOT NULL,
    subscription_arn TEXT NOT NULL,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX dead_letters_by_topic ON dead_letters(topic_arn, id);
CREATE TABLE signing_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pkcs8 BLOB NOT NULL,
    cert_der BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
";

const MIGRATIONS: &[&str] = &[SCHEMA_V1];

/// Adds a context to a SQLite result.
trait Ctx<T> {
    fn ctx(self, context: &'static str) -> Result<T, SnsError>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, context: &'static str) -> Result<T, SnsError> {
        self.map_err(db(context))
    }
}

/// What kind of SNS message a stored message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// A published message.
    Notification,
    /// The message asking an http endpoint to confirm its subscription.
    SubscriptionConfirmation,
    /// The message telling an http endpoint that it was unsubscribed.
    UnsubscribeConfirmation,
}

impl MessageKind {
    /// SNS's `Type`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Notification => "Notification",
            MessageKind::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageKind::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<MessageKind, SnsError> {
        match s {
            "Notification" => Ok(MessageKind::Notification),
            "SubscriptionConfirmation" => Ok(MessageKind::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Ok(MessageKind::UnsubscribeConfirmation),
            other => Err(SnsError::Damaged(format!("message kind `{other}`"))),
        }
    }
}

/// A confirmation token: a secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    pub(crate) fn generate() -> Result<Token, SnsError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| SnsError::Signing("the random generator failed".to_owned()))?;
        Ok(Token(hex::encode(bytes)))
    }

    pub(crate) fn hash(token: &str) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
            .as_ref()
            .to_vec()
    }
}

/// A stored topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    /// Its ARN.
    pub arn: String,
    /// The owning account.
    pub account: String,
    /// `DisplayName` (empty when unset).
    pub display_name: String,
    /// `Policy`, stored as given.
    pub policy: Option<String>,
    /// `DeliveryPolicy`, stored as given.
    pub delivery_policy: Option<String>,
}

/// The settable attributes of a topic, as given to `CreateTopic`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TopicAttrs {
    pub display_name: Option<String>,
    pub policy: Option<String>,
    pub delivery_policy: Option<String>,
}

/// A topic attribute `SetTopicAttributes` may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TopicField {
    DisplayName,
    Policy,
    DeliveryPolicy,
}

/// A stored subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Its ARN.
    pub arn: String,
    /// Its topic's ARN.
    pub topic_arn: String,
    /// The subscriber's account.
    pub owner: String,
    /// `http`, `https` or `lambda`.
    pub protocol: String,
    /// The URL or function ARN.
    pub endpoint: String,
    /// `RawMessageDelivery`.
    pub raw: bool,
    /// `DeliveryPolicy`, stored as given.
    pub delivery_policy: Option<String>,
    /// Not pending confirmation.
    pub confirmed: bool,
    /// `ConfirmationWasAuthenticated`.
    pub authenticated: bool,
    /// Whether the unauthenticated UnsubscribeURL is refused.
    pub auth_on_unsubscribe: bool,
}

/// A subscription attribute `SetSubscriptionAttributes` may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubscriptionField {
    RawMessageDelivery,
    DeliveryPolicy,
}

/// A `Subscribe` request, checked.
#[derive(Clone, Debug)]
pub(crate) struct SubscribeRequest<'a> {
    pub topic_arn: &'a str,
    pub owner: &'a str,
    pub protocol: Protocol,
    pub endpoint: &'a str,
    pub raw: Option<bool>,
    pub delivery_policy: Option<&'a str>,
}

/// What `Subscribe` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubscribeOutcome {
    pub arn: String,
    pub confirmed: bool,
}

/// A message to publish, checked.
#[derive(Clone, Debug)]
pub(crate) struct NewMessage {
    pub subject: Option<String>,
    pub body: String,
    pub structure_json: bool,
    pub attributes: Vec<MessageAttribute>,
    pub size: usize,
}

/// A delivery the deliverer holds: its row and, on PostgreSQL, the token of the lease that
/// [`Store::due`] granted (`None` on SQLite, where one deliverer owns the file). Recording
/// an outcome presents it: on PostgreSQL an outcome under a lease another claim replaced
/// changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    pub id: i64,
    pub lease: Option<String>,
}

/// One due delivery, with everything needed to send it.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub claim: Claim,
    pub attempts: u32,
    pub kind: MessageKind,
    pub message_id: String,
    pub topic_arn: String,
    pub subscription_arn: String,
    pub protocol: String,
    pub endpoint: String,
    pub subject: Option<String>,
    pub body: String,
    pub structure_json: bool,
    pub attributes: Vec<MessageAttribute>,
    pub token: Option<Token>,
    pub timestamp_ms: i64,
    /// The subscription still exists (a notification for a removed one is dropped).
    pub subscribed: bool,
    pub raw: bool,
    pub subscription_policy: Option<String>,
    pub topic_policy: Option<String>,
}

/// A delivery given up after its last retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Position in the dead-letter table (increasing).
    pub id: i64,
    /// The topic.
    pub topic_arn: String,
    /// The subscription the delivery was for.
    pub subscription_arn: String,
    /// `http`, `https` or `lambda`.
    pub protocol: String,
    /// The URL or function ARN.
    pub endpoint: String,
    /// The SNS message id.
    pub message_id: String,
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    pub message_type: String,
    /// The message's subject.
    pub subject: Option<String>,
    /// The published message (for confirmations, their text; never a token).
    pub message: String,
    /// The message attributes.
    pub attributes: Vec<MessageAttribute>,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub last_error: String,
    /// When it was given up, in milliseconds since the Unix epoch.
    pub failed_at_ms: i64,
}

/// The text of a SubscriptionConfirmation.
pub(crate) fn subscribe_text(topic_arn: &str) -> String {
    format!(
        "You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, \
         visit the SubscribeURL included in this message."
    )
}

/// The text of an UnsubscribeConfirmation.
pub(crate) fn unsubscribe_text(subscription_arn: &str) -> String {
    format!(
        "You have chosen to deactivate subscription {subscription_arn}.\nTo cancel this \
         operation and restore the subscription, visit the SubscribeURL included in this \
         message."
    )
}

pub(crate) fn lifetime_ms() -> i64 {
    i64::try_from(CONFIRMATION_TOKEN_LIFETIME.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const SUBSCRIPTION_COLUMNS: &str = "arn, topic_arn, owner, protocol, endpoint, raw, \
    delivery_policy, confirmed, authenticated, auth_on_unsubscribe";

fn subscription_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
    Ok(Subscription {
        arn: r.get(0)?,
        topic_arn: r.get(1)?,
        owner: r.get(2)?,
        protocol: r.get(3)?,
        endpoint: r.get(4)?,
        raw: r.get(5)?,
        delivery_policy: r.get(6)?,
        confirmed: r.get(7)?,
        authenticated: r.get(8)?,
        auth_on_unsubscribe: r.get(9)?,
    })
}

/// The deliveries [`Store::due`] found (and, on PostgreSQL, claimed).
#[derive(Debug, Default)]
pub(crate) struct Due {
    /// The deliveries to make.
    pub jobs: Vec<Job>,
    /// Rows that do not decode.
    pub damaged: Vec<Claim>,
}

fn decode_job(id: i64, r: &rusqlite::Row<'_>) -> Result<Job, SnsError> {
    const C: &str = "decoding a due delivery";
    let kind: String = r.get(2).ctx(C)?;
    let attributes: String = r.get(11).ctx(C)?;
    let attempts: i64 = r.get(1).ctx(C)?;
    Ok(Job {
        claim: Claim { id, lease: None },
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        kind: MessageKind::parse(&kind)?,
        message_id: r.get(3).ctx(C)?,
        topic_arn: r.get(4).ctx(C)?,
        subscription_arn: r.get(5).ctx(C)?,
        protocol: r.get(6).ctx(C)?,
        endpoint: r.get(7).ctx(C)?,
        subject: r.get(8).ctx(C)?,
        body: r.get(9).ctx(C)?,
        structure_json: r.get(10).ctx(C)?,
        attributes: decode_attributes(&attributes)?,
        token: r.get::<_, Option<String>>(12).ctx(C)?.map(Token),
        timestamp_ms: r.get(13).ctx(C)?,
        subscribed: r.get(14).ctx(C)?,
        raw: r.get(15).ctx(C)?,
        subscription_policy: r.get(16).ctx(C)?,
        topic_policy: r.get(17).ctx(C)?,
    })
}

pub(crate) fn decode_attributes(text: &str) -> Result<Vec<MessageAttribute>, SnsError> {
    serde_json::from_str(text).map_err(|_| SnsError::Damaged("message attributes".to_owned()))
}

/// The signing key (PKCS#8) and its certificate (DER).
pub(crate) type KeyMaterial = (Vec<u8>, Vec<u8>);

/// Where SNS keeps its state: one node's `sns.db`, or the PostgreSQL database the nodes of a
/// cluster share ([`crate::postgres`]). Every operation has the same meaning and the same
/// bounds on both.
#[derive(Debug)]
pub(crate) enum Store {
    /// One node's file.
    Sqlite(SqliteStore),
    /// The cluster's shared database.
    Postgres(PgStore),
}

/// Runs the same call on whichever backend `$store` is.
macro_rules! on_backend {
    ($store:expr, $s:ident => $call:expr) => {
        match $store {
            Store::Sqlite($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Store, SnsError> {
        SqliteStore::open(path).map(Store::Sqlite)
    }

    /// Whether the store is shared with other nodes (its deliveries are claimed under a
    /// lease, and other nodes publish without waking this one).
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// The stored signing key (PKCS#8, unsealed) and certificate (DER), if any.
    pub(crate) fn signing_key(&self) -> Result<Option<KeyMaterial>, SnsError> {
        on_backend!(self, s => s.signing_key())
    }

    /// Stores a signing key unless one is stored already; returns the stored one.
    pub(crate) fn put_signing_key(
        &self,
        pkcs8: &[u8],
        cert_der: &[u8],
        now: i64,
    ) -> Result<KeyMaterial, SnsError> {
        on_backend!(self, s => s.put_signing_key(pkcs8, cert_der, now))
    }

    /// Creates a topic, or returns quietly if it exists with the same attributes and tags
    /// (CreateTopic is idempotent); refuses one that exists with different ones, and a new
    /// one past [`MAX_TOPICS_PER_ACCOUNT`] (counted in the creating transaction).
    pub(crate) fn create_topic(
        &self,
        arn: &TopicArn,
        attrs: &TopicAttrs,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<(), SnsError> {
        on_backend!(self, s => s.create_topic(arn, attrs, tags, now))
    }

    /// Deletes a topic with its subscriptions, tags, undelivered messages and dead
    /// letters. Deleting a topic that does not exist succeeds (DeleteTopic is idempotent).
    pub(crate) fn delete_topic(&self, arn: &str) -> Result<(), SnsError> {
        on_backend!(self, s => s.delete_topic(arn))
    }

    /// The topic, if it exists.
    pub(crate) fn topic(&self, arn: &str) -> Result<Option<Topic>, SnsError> {
        on_backend!(self, s => s.topic(arn))
    }

    /// The numbers of confirmed and pending subscriptions of a topic.
    pub(crate) fn subscription_counts(&self, arn: &str) -> Result<(u64, u64), SnsError> {
        on_backend!(self, s => s.subscription_counts(arn))
    }

    /// Up to `limit` topic ARNs of an account in a region after `after`, in ARN order.
    pub(crate) fn list_topics(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, SnsError> {
        on_backend!(self, s => s.list_topics(account, region, after, limit))
    }

    /// Sets (or with `None` clears) one attribute of an existing topic.
    pub(crate) fn set_topic_attribute(
        &self,
        arn: &str,
        field: TopicField,
        value: Option<&str>,
    ) -> Result<(), SnsError> {
        on_backend!(self, s => s.set_topic_attribute(arn, field, value))
    }

    /// The tags of a topic, by key.
    pub(crate) fn tags(&self, arn: &str) -> Result<Vec<(String, String)>, SnsError> {
        on_backend!(self, s => s.tags(arn))
    }

    /// Adds or replaces tags of a topic, keeping at most [`MAX_TAGS`].
    pub(crate) fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), SnsError> {
        on_backend!(self, s => s.tag(arn, tags))
    }

    /// Removes tags of a topic (absent keys are ignored, as in SNS).
    pub(crate) fn untag(&self, arn: &str, keys: &[String]) -> Result<(), SnsError> {
        on_backend!(self, s => s.untag(arn, keys))
    }

    /// Subscribes an endpoint (see [`SqliteStore::subscribe`]), within
    /// [`MAX_SUBSCRIPTIONS_PER_TOPIC`] and the topic's queue bounds.
    pub(crate) fn subscribe(
        &self,
        req: &SubscribeRequest<'_>,
        now: i64,
    ) -> Result<SubscribeOutcome, SnsError> {
        on_backend!(self, s => s.subscribe(req, now))
    }

    /// Confirms (or restores) the subscription a token belongs to (see
    /// [`SqliteStore::confirm`]).
    pub(crate) fn confirm(
        &self,
        topic_arn: &str,
        token: &str,
        auth_on_unsubscribe: Option<bool>,
        authenticated: bool,
        now: i64,
    ) -> Result<String, SnsError> {
        on_backend!(self, s => s.confirm(topic_arn, token, auth_on_unsubscribe, authenticated, now))
    }

    /// Removes a subscription for `requester` (see [`SqliteStore::unsubscribe`]).
    pub(crate) fn unsubscribe(
        &self,
        arn: &str,
        requester: Option<&str>,
        now: i64,
    ) -> Result<Option<Subscription>, SnsError> {
        on_backend!(self, s => s.unsubscribe(arn, requester, now))
    }

    /// The subscription, if it exists.
    pub(crate) fn subscription(&self, arn: &str) -> Result<Option<Subscription>, SnsError> {
        on_backend!(self, s => s.subscription(arn))
    }

    /// Sets one attribute of an existing subscription.
    pub(crate) fn set_subscription_attribute(
        &self,
        arn: &str,
        field: SubscriptionField,
        raw: bool,
        policy: Option<&str>,
    ) -> Result<(), SnsError> {
        on_backend!(self, s => s.set_subscription_attribute(arn, field, raw, policy))
    }

    /// Up to `limit` subscriptions owned by `owner` on topics of `region`, after `after`.
    pub(crate) fn list_subscriptions(
        &self,
        owner: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Subscription>, SnsError> {
        on_backend!(self, s => s.list_subscriptions(owner, region, after, limit))
    }

    /// Up to `limit` subscriptions of a topic after `after`.
    pub(crate) fn list_subscriptions_by_topic(
        &self,
        topic_arn: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Subscription>, SnsError> {
        on_backend!(self, s => s.list_subscriptions_by_topic(topic_arn, after, limit))
    }

    /// Stores a message and one delivery per confirmed subscription of the topic, in one
    /// transaction, and returns the MessageId (see [`SqliteStore::publish`]).
    pub(crate) fn publish(
        &self,
        topic_arn: &str,
        message: &NewMessage,
        now: i64,
    ) -> Result<String, SnsError> {
        on_backend!(self, s => s.publish(topic_arn, message, now))
    }

    /// Up to `limit` deliveries due at `now` that are not in `skip` (those this deliverer
    /// has in flight). On PostgreSQL each is claimed for `lease`: no other node is given it
    /// until the lease ends or its outcome is recorded. A row that does not decode is
    /// listed in [`Due::damaged`] (claimed too), so that it can be dead-lettered rather
    /// than block the queue.
    pub(crate) fn due(
        &self,
        now: i64,
        limit: usize,
        skip: &HashSet<i64>,
        lease: Duration,
    ) -> Result<Due, SnsError> {
        match self {
            Store::Sqlite(s) => s.due(now, limit, skip),
            Store::Postgres(s) => s.due(now, limit, skip, lease),
        }
    }

    /// When the earliest delivery not in `skip` (and, on PostgreSQL, not under another
    /// live lease) is due, if any is queued.
    pub(crate) fn next_due(&self, skip: &HashSet<i64>) -> Result<Option<i64>, SnsError> {
        on_backend!(self, s => s.next_due(skip))
    }

    /// Removes a delivered (or dropped) delivery, and its message once no delivery needs
    /// it. On PostgreSQL only under the claim's lease.
    pub(crate) fn delivered(&self, claim: &Claim) -> Result<(), SnsError> {
        match self {
            Store::Sqlite(s) => s.delivered(claim.id),
            Store::Postgres(s) => s.delivered(claim),
        }
    }

    /// Records a failed attempt and schedules the next one at `due_at`, ending the claim.
    pub(crate) fn retry_later(
        &self,
        claim: &Claim,
        due_at: i64,
        error: &str,
    ) -> Result<(), SnsError> {
        match self {
            Store::Sqlite(s) => s.retry_later(claim.id, due_at, error),
            Store::Postgres(s) => s.retry_later(claim, due_at, error),
        }
    }

    /// Moves a delivery whose last retry failed to the dead letters (see
    /// [`SqliteStore::dead_letter`]).
    pub(crate) fn dead_letter(&self, claim: &Claim, error: &str, now: i64) -> Result<(), SnsError> {
        match self {
            Store::Sqlite(s) => s.dead_letter(claim.id, error, now),
            Store::Postgres(s) => s.dead_letter(claim, error, now),
        }
    }

    /// Gives back claims without an outcome (a stopping deliverer's aborted deliveries),
    /// so that any node may make them at once rather than after their lease. Nothing to do
    /// on SQLite, whose deliveries are never claimed.
    pub(crate) fn release(&self, claims: &[Claim]) -> Result<(), SnsError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.release(claims),
        }
    }

    /// The dead letters of a topic, oldest first.
    pub(crate) fn dead_letters(&self, topic_arn: &str) -> Result<Vec<DeadLetter>, SnsError> {
        on_backend!(self, s => s.dead_letters(topic_arn))
    }

    /// The deliveries queued for a topic.
    pub(crate) fn pending_deliveries(&self, topic_arn: &str) -> Result<u64, SnsError> {
        on_backend!(self, s => s.pending_deliveries(topic_arn))
    }

    /// Deletes pending subscriptions and restorable unsubscriptions whose token expired,
    /// with their queued confirmations. Returns how many subscriptions were deleted.
    pub(crate) fn purge_expired(&self, now: i64) -> Result<usize, SnsError> {
        on_backend!(self, s => s.purge_expired(now))
    }
}

/// The SNS database in SQLite: one node's file.
#[derive(Debug)]
pub(crate) struct SqliteStore {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<SqliteStore, SnsError> {
        let options = Options {
            synchronous: Synchronous::Full,
            migrations: MIGRATIONS,
            incremental_vacuum: true,
        };
        let conns = warden_sqlite::open(path, &options).map_err(|source| SnsError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(SqliteStore {
            writer: Mutex::new(conns.writer),
            reader: Mutex::new(conns.reader),
        })
    }

    fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, SnsError>,
    ) -> Result<T, SnsError> {
        let mut conn = lock(&self.writer);
        warden_sqlite::rollback_abandoned(&conn).ctx(context)?;
        let tx = immediate(&mut conn).ctx(context)?;
        let out = f(&tx)?;
        tx.commit().ctx(context)?;
        Ok(out)
    }

    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, SnsError>,
    ) -> Result<T, SnsError> {
        let conn = lock(&self.reader);
        f(&conn)
    }

    // ---- signing key ----

    /// The stored signing key (PKCS#8) and certificate (DER), if any.
    pub(crate) fn signing_key(&self) -> Result<Option<KeyMaterial>, SnsError> {
        self.read(|c| {
            c.query_row(
                "SELECT pkcs8, cert_der FROM signing_key WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ctx("reading the signing key")
        })
    }

    /// Stores a signing key unless one is stored already; returns the stored one.
    pub(crate) fn put_signing_key(
        &self,
        pkcs8: &[u8],
        cert_der: &[u8],
        now: i64,
    ) -> Result<KeyMaterial, SnsError> {
        self.write("storing the signing key", |tx| {
            tx.execute(
                "INSERT OR IGNORE INTO signing_key (id, pkcs8, cert_der, created_at) \
                 VALUES (1, ?1, ?2, ?3)",
                params![pkcs8, cert_der, now],
            )
            .ctx("storing the signing key")?;
            tx.query_row(
                "SELECT pkcs8, cert_der FROM signing_key WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ctx("storing the signing key")
        })
    }

    // ---- topics ----

    /// Creates a topic, or returns quietly if it exists with the same attributes and tags
    /// (CreateTopic is idempotent); refuses one that exists with different ones.
    pub(crate) fn create_topic(
        &self,
        arn: &TopicArn,
        attrs: &TopicAttrs,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<(), SnsError> {
        const C: &str = "creating a topic";
        let key = arn.to_string();
        self.write(C, |tx| {
            let existing = topic_in(tx, &key)?;
            if let Some(t) = existing {
                let stored_tags = if tags.is_empty() {
                    Vec::new()
                } else {
                    tags_in(tx, &key)?
                };
                return same_topic(attrs, tags, &t, stored_tags);
            }
            let count: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM topics WHERE account = ?1 AND region = ?2",
                    params![arn.account, arn.region],
                    |r| r.get(0),
                )
                .ctx(C)?;
            check_topic_count(count)?;
            tx.execute(
                "INSERT INTO topics (arn, account, region, name, display_name, policy, \
                 delivery_policy, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key,
                    arn.account,
                    arn.region,
                    arn.name,
                    attrs.display_name.as_deref().unwrap_or(""),
                    attrs.policy,
                    attrs.delivery_policy,
                    now
                ],
            )
            .ctx(C)?;
            for (k, v) in tags {
                tx.execute(
                    "INSERT INTO topic_tags (topic_arn, key, value) VALUES (?1, ?2, ?3)",
                    params![key, k, v],
                )
                .ctx(C)?;
            }
            Ok(())
        })
    }

    /// Deletes a topic with its subscriptions, tags, undelivered messages and dead
    /// letters. Deleting a topic that does not exist succeeds (DeleteTopic is idempotent).
    pub(crate) fn delete_topic(&self, arn: &str) -> Result<(), SnsError> {
        const C: &str = "deleting a topic";
        self.write(C, |tx| {
            tx.execute("DELETE FROM messages WHERE topic_arn = ?1", [arn])
                .ctx(C)?;
            tx.execute("DELETE FROM deliveries WHERE topic_arn = ?1", [arn])
                .ctx(C)?;
            tx.execute("DELETE FROM dead_letters WHERE topic_arn = ?1", [arn])
                .ctx(C)?;
            tx.execute("DELETE FROM topics WHERE arn = ?1", [arn])
                .ctx(C)?;
            Ok(())
        })
    }

    /// The topic, if it exists.
    pub(crate) fn topic(&self, arn: &str) -> Result<Option<Topic>, SnsError> {
        self.read(|c| topic_in(c, arn))
    }

    /// The numbers of confirmed and pending subscriptions of a topic.
    pub(crate) fn subscription_counts(&self, arn: &str) -> Result<(u64, u64), SnsError> {
        self.read(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(confirmed), 0), COALESCE(SUM(1 - confirmed), 0) \
                 FROM subscriptions WHERE topic_arn = ?1",
                [arn],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .ctx("counting subscriptions")
            .map(|(a, b)| (a.unsigned_abs(), b.unsigned_abs()))
        })
    }

    /// Up to `limit` topic ARNs of an account in a region after `after`, in ARN order.
    pub(crate) fn list_topics(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, SnsError> {
        const C: &str = "listing topics";
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT arn FROM topics WHERE account = ?1 AND region = ?2 AND arn > ?3 \
                     ORDER BY arn LIMIT ?4",
                )
                .ctx(C)?;
            let rows = stmt
                .query_map(
                    params![account, region, after.unwrap_or(""), to_i64(limit)],
                    |r| r.get(0),
                )
                .ctx(C)?;
            rows.collect::<rusqlite::Result<Vec<String>>>().ctx(C)
        })
    }

    /// Sets (or with `None` clears) one attribute of an existing topic.
    pub(crate) fn set_topic_attribute(
        &self,
        arn: &str,
        field: TopicField,
        value: Option<&str>,
    ) -> Result<(), SnsError> {
        const C: &str = "setting a topic attribute";
        let sql = match field {
            TopicField::DisplayName => {
                "UPDATE topics SET display_name = COALESCE(?2, '') WHERE arn = ?1"
            }
            TopicField::Policy => "UPDATE topics SET policy = ?2 WHERE arn = ?1",
            TopicField::DeliveryPolicy => "UPDATE topics SET delivery_policy = ?2 WHERE arn = ?1",
        };
        self.write(C, |tx| {
            let n = tx.execute(sql, params![arn, value]).ctx(C)?;
            if n == 0 {
                return Err(topic_not_found());
            }
            Ok(())
        })
    }

    /// The tags of a topic, by key.
    pub(crate) fn tags(&self, arn: &str) -> Result<Vec<(String, String)>, SnsError> {
        self.read(|c| {
            if topic_in(c, arn)?.is_none() {
                return Err(resource_not_found());
            }
            tags_in(c, arn)
        })
    }

    /// Adds or replaces tags of a topic, keeping at most [`MAX_TAGS`].
    pub(crate) fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), SnsError> {
        const C: &str = "tagging a topic";
        self.write(C, |tx| {
            if topic_in(tx, arn)?.is_none() {
                return Err(resource_not_found());
            }
            for (k, v) in tags {
                tx.execute(
                    "INSERT INTO topic_tags (topic_arn, key, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (topic_arn, key) DO UPDATE SET value = excluded.value",
                    params![arn, k, v],
                )
                .ctx(C)?;
            }
            let count: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM topic_tags WHERE topic_arn = ?1",
                    [arn],
                    |r| r.get(0),
                )
                .ctx(C)?;
            check_tag_count(count)
        })
    }

    /// Removes tags of a topic (absent keys are ignored, as in SNS).
    pub(crate) fn untag(&self, arn: &str, keys: &[String]) -> Result<(), SnsError> {
        const C: &str = "untagging a topic";
        self.write(C, |tx| {
            if topic_in(tx, arn)?.is_none() {
                return Err(resource_not_found());
            }
            for k in keys {
                tx.execute(
                    "DELETE FROM topic_tags WHERE topic_arn = ?1 AND key = ?2",
                    params![arn, k],
                )
                .ctx(C)?;
            }
            Ok(())
        })
    }

    // ---- subscriptions ----

    /// Subscribes an endpoint: a lambda subscription is confirmed at once; an http one is
    /// pending, with a new token whose SubscriptionConfirmation is queued in the same
    /// transaction. Subscribing an endpoint again returns its subscription (and, while it
    /// is pending, sends a new confirmation whose token replaces the old one).
    pub(crate) fn subscribe(
        &self,
        req: &SubscribeRequest<'_>,
        now: i64,
    ) -> Result<SubscribeOutcome, SnsError> {
        const C: &str = "subscribing";
        self.write(C, |tx| {
            if topic_in(tx, req.topic_arn)?.is_none() {
                return Err(topic_not_found());
            }
            let existing = tx
                .query_row(
                    &format!(
                        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
                         WHERE topic_arn = ?1 AND protocol = ?2 AND endpoint = ?3"
                    ),
                    params![req.topic_arn, req.protocol.as_str(), req.endpoint],
                    subscription_row,
                )
                .optional()
                .ctx(C)?;
            if let Some(s) = existing {
                same_subscription(req, &s)?;
                if !s.confirmed {
                    check_queue(tx, req.topic_arn, 1, 0)?;
                    drop_confirmations(tx, &s.arn)?;
                    let token = Token::generate()?;
                    tx.execute(
                        "UPDATE subscriptions SET token_hash = ?2, token_expires_at = ?3 \
                         WHERE arn = ?1",
                        params![s.arn, Token::hash(&token.0), now + lifetime_ms()],
                    )
                    .ctx(C)?;
                    enqueue_confirmation(
                        tx,
                        MessageKind::SubscriptionConfirmation,
                        req.topic_arn,
                        &s.arn,
                        req.protocol,
                        req.endpoint,
                        &token,
                        now,
                    )?;
                }
                return Ok(SubscribeOutcome {
                    arn: s.arn,
                    confirmed: s.confirmed,
                });
            }
            check_subscription_limit(tx, req.topic_arn)?;
            let arn = format!("{}:{}", req.topic_arn, uuid::Uuid::new_v4());
            let confirmed = req.protocol == Protocol::Lambda;
            let token = if confirmed {
                None
            } else {
                check_queue(tx, req.topic_arn, 1, 0)?;
                Some(Token::generate()?)
            };
            tx.execute(
                "INSERT INTO subscriptions (arn, topic_arn, owner, protocol, endpoint, raw, \
                 delivery_policy, confirmed, token_hash, token_expires_at, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    arn,
                    req.topic_arn,
                    req.owner,
                    req.protocol.as_str(),
                    req.endpoint,
                    req.raw.unwrap_or(false),
                    req.delivery_policy,
                    confirmed,
                    token.as_ref().map(|t| Token::hash(&t.0)),
                    token.as_ref().map(|_| now + lifetime_ms()),
                    now
                ],
            )
            .ctx(C)?;
            if let Some(token) = token {
                enqueue_confirmation(
                    tx,
                    MessageKind::SubscriptionConfirmation,
                    req.topic_arn,
                    &arn,
                    req.protocol,
                    req.endpoint,
                    &token,
                    now,
                )?;
            }
            Ok(SubscribeOutcome { arn, confirmed })
        })
    }

    /// Confirms the subscription of `topic_arn` whose token this is (or restores the one an
    /// UnsubscribeConfirmation with this token was sent for). Confirming again with the
    /// same token returns the same ARN. `auth_on_unsubscribe`, when given, sets whether the
    /// unauthenticated UnsubscribeURL is refused.
    pub(crate) fn confirm(
        &self,
        topic_arn: &str,
        token: &str,
        auth_on_unsubscribe: Option<bool>,
        authenticated: bool,
        now: i64,
    ) -> Result<String, SnsError> {
        const C: &str = "confirming a subscription";
        let hash = Token::hash(token);
        self.write(C, |tx| {
            if topic_in(tx, topic_arn)?.is_none() {
                return Err(topic_not_found());
            }
            let pending = tx
                .query_row(
                    "SELECT arn, token_expires_at, confirmed FROM subscriptions \
                     WHERE token_hash = ?1 AND topic_arn = ?2",
                    params![hash, topic_arn],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Option<i64>>(1)?,
                            r.get::<_, bool>(2)?,
                        ))
                    },
                )
                .optional()
                .ctx(C)?;
            if let Some((arn, expires, confirmed)) = pending {
                if !confirmed && expires.is_some_and(|e| e < now) {
                    return Err(token_expired());
                }
                tx.execute(
                    "UPDATE subscriptions SET confirmed = 1, \
                     authenticated = CASE WHEN confirmed = 1 THEN authenticated ELSE ?2 END, \
                     auth_on_unsubscribe = COALESCE(?3, auth_on_unsubscribe) WHERE arn = ?1",
                    params![arn, authenticated, auth_on_unsubscribe],
                )
                .ctx(C)?;
                return Ok(arn);
            }
            let gone = tx
                .query_row(
                    "SELECT arn, owner, protocol, endpoint, raw, delivery_policy, \
                     token_expires_at FROM unsubscribed WHERE token_hash = ?1 AND topic_arn = ?2",
                    params![hash, topic_arn],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, bool>(4)?,
                            r.get::<_, Option<String>>(5)?,
                            r.get::<_, i64>(6)?,
                        ))
                    },
                )
                .optional()
                .ctx(C)?;
            let Some((arn, owner, protocol, endpoint, raw, policy, expires)) = gone else {
                return Err(invalid("Token: invalid token"));
            };
            if expires < now {
                return Err(token_expired());
            }
            tx.execute("DELETE FROM unsubscribed WHERE arn = ?1", [&arn])
                .ctx(C)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT arn FROM subscriptions WHERE topic_arn = ?1 AND protocol = ?2 \
                     AND endpoint = ?3",
                    params![topic_arn, protocol, endpoint],
                    |r| r.get(0),
                )
                .optional()
                .ctx(C)?;
            if let Some(current) = current {
                return Ok(current);
            }
            check_subscription_limit(tx, topic_arn)?;
            tx.execute(
                "INSERT INTO subscriptions (arn, topic_arn, owner, protocol, endpoint, raw, \
                 delivery_policy, confirmed, authenticated, auth_on_unsubscribe, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9, ?10)",
                params![
                    arn,
                    topic_arn,
                    owner,
                    protocol,
                    endpoint,
                    raw,
                    policy,
                    authenticated,
                    auth_on_unsubscribe.unwrap_or(false),
                    now
                ],
            )
            .ctx(C)?;
            Ok(arn)
        })
    }

    /// Removes a subscription and its undelivered messages, for `requester` (an account;
    /// `None` for the unauthenticated UnsubscribeURL). A subscription confirmed with
    /// `AuthenticateOnUnsubscribe` may be removed only by its owner or its topic's owner,
    /// never through the URL (`AuthorizationError`). As in SNS, when the unsubscribe needed
    /// no authentication and the requester is not the subscription's owner, a confirmed
    /// http subscription is sent an UnsubscribeConfirmation (queued in the same
    /// transaction) whose SubscribeURL restores it. Returns the removed subscription, `None`
    /// if there was none.
    pub(crate) fn unsubscribe(
        &self,
        arn: &str,
        requester: Option<&str>,
        now: i64,
    ) -> Result<Option<Subscription>, SnsError> {
        const C: &str = "unsubscribing";
        self.write(C, |tx| {
            let Some(s) = subscription_in(tx, arn)? else {
                return Ok(None);
            };
            let topic_owner = if s.auth_on_unsubscribe {
                topic_in(tx, &s.topic_arn)?.map(|t| t.account)
            } else {
                None
            };
            let notify = unsubscribe_allowed(&s, requester, topic_owner.as_deref())?;
            tx.execute("DELETE FROM deliveries WHERE subscription_arn = ?1", [arn])
                .ctx(C)?;
            drop_orphans(tx, &s.topic_arn)?;
            tx.execute("DELETE FROM subscriptions WHERE arn = ?1", [arn])
                .ctx(C)?;
            if notify {
                let token = Token::generate()?;
                tx.execute(
                    "INSERT OR REPLACE INTO unsubscribed (arn, topic_arn, owner, protocol, \
                     endpoint, raw, delivery_policy, token_hash, token_expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        s.arn,
                        s.topic_arn,
                        s.owner,
                        s.protocol,
                        s.endpoint,
                        s.raw,
                        s.delivery_policy,
                        Token::hash(&token.0),
                        now + lifetime_ms()
                    ],
                )
                .ctx(C)?;
                enqueue_confirmation(
                    tx,
                    MessageKind::UnsubscribeConfirmation,
                    &s.topic_arn,
                    &s.arn,
                    Protocol::parse(&s.protocol).unwrap_or(Protocol::Http),
                    &s.endpoint,
                    &token,
                    now,
                )?;
            }
            Ok(Some(s))
        })
    }

    /// The subscription, if it exists.
    pub(crate) fn subscription(&self, arn: &str) -> Result<Option<Subscription>, SnsError> {
        self.read(|c| subscription_in(c, arn))
    }

    /// Sets one attribute of an existing subscription.
    pub(crate) fn set_subscription_attribute(
        &self,
        arn: &str,
        field: SubscriptionField,
        raw: bool,
        policy: Option<&str>,
    ) -> Result<(), SnsError> {
        const C: &str = "setting a subscription attribute";
        self.write(C, |tx| {
            let n = match field {
                SubscriptionField::RawMessageDelivery => tx
                    .execute(
                        "UPDATE subscriptions SET raw = ?2 WHERE arn = ?1",
                        params![arn, raw],
                    )
                    .ctx(C)?,
                SubscriptionField::DeliveryPolicy => tx
                    .execute(
                        "UPDATE subscriptions SET delivery_policy = ?2 WHERE arn = ?1",
                        params![arn, policy],
                    )
                    .ctx(C)?,
            };
            if n == 0 {
                return Err(subscription_not_found());
            }
            Ok(())
        })
    }

    /// Up to `limit` subscriptions owned by `owner` on topics of `region`, after `after`.
    pub(crate) fn list_subscriptions(
        &self,
        owner: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Subscription>, SnsError> {
        const C: &str = "listing subscriptions";
        self.read(|c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {} FROM subscriptions s JOIN topics t ON t.arn = s.topic_arn \
                     WHERE s.owner = ?1 AND t.region = ?2 AND s.arn > ?3 ORDER BY s.arn LIMIT ?4",
                    prefixed("s.")
                ))
                .ctx(C)?;
            let rows = stmt
                .query_map(
                    params![owner, region, after.unwrap_or(""), to_i64(limit)],
                    subscription_row,
                )
                .ctx(C)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx(C)
        })
    }

    /// Up to `limit` subscriptions of a topic after `after`.
    pub(crate) fn list_subscriptions_by_topic(
        &self,
        topic_arn: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Subscription>, SnsError> {
        const C: &str = "listing a topic's subscriptions";
        self.read(|c| {
            if topic_in(c, topic_arn)?.is_none() {
                return Err(topic_not_found());
            }
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE topic_arn = ?1 \
                     AND arn > ?2 ORDER BY arn LIMIT ?3"
                ))
                .ctx(C)?;
            let rows = stmt
                .query_map(
                    params![topic_arn, after.unwrap_or(""), to_i64(limit)],
                    subscription_row,
                )
                .ctx(C)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx(C)
        })
    }

    // ---- publishing and delivering ----

    /// Stores a message and one delivery per confirmed subscription of the topic, in one
    /// transaction, and returns the MessageId. With no confirmed subscription nothing is
    /// stored. A topic whose queue would exceed its bounds refuses with `Throttled`.
    pub(crate) fn publish(
        &self,
        topic_arn: &str,
        message: &NewMessage,
        now: i64,
    ) -> Result<String, SnsError> {
        const C: &str = "publishing";
        let id = uuid::Uuid::new_v4().to_string();
        self.write(C, |tx| {
            if topic_in(tx, topic_arn)?.is_none() {
                return Err(topic_not_found());
            }
            let subs: Vec<(String, String, String)> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT arn, protocol, endpoint FROM subscriptions \
                         WHERE topic_arn = ?1 AND confirmed = 1 ORDER BY arn",
                    )
                    .ctx(C)?;
                let rows = stmt
                    .query_map([topic_arn], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .ctx(C)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().ctx(C)?
            };
            if subs.is_empty() {
                return Ok(id.clone());
            }
            check_queue(tx, topic_arn, subs.len(), message.size)?;
            let attributes = serde_json::to_string(&message.attributes)
                .map_err(|_| SnsError::Damaged("encoding message attributes".to_owned()))?;
            tx.execute(
                "INSERT INTO messages (id, topic_arn, kind, subject, body, structure_json, \
                 attributes, timestamp_ms, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    topic_arn,
                    MessageKind::Notification.as_str(),
                    message.subject,
                    message.body,
                    message.structure_json,
                    attributes,
                    now,
                    to_i64(message.size)
                ],
            )
            .ctx(C)?;
            for (arn, protocol, endpoint) in &subs {
                tx.execute(
                    "INSERT INTO deliveries (message_id, topic_arn, subscription_arn, protocol, \
                     endpoint, due_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, topic_arn, arn, protocol, endpoint, now],
                )
                .ctx(C)?;
            }
            Ok(id.clone())
        })
    }

    /// Up to `limit` deliveries due at `now` that are not in `skip` (those in flight). A
    /// row that does not decode (the file was edited) is listed in [`Due::damaged`] instead,
    /// so that it can be dead-lettered rather than block the queue.
    fn due(&self, now: i64, limit: usize, skip: &HashSet<i64>) -> Result<Due, SnsError> {
        const C: &str = "reading due deliveries";
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT d.id, d.attempts, m.kind, d.message_id, d.topic_arn, \
                     d.subscription_arn, d.protocol, d.endpoint, m.subject, m.body, \
                     m.structure_json, m.attributes, m.token, m.timestamp_ms, \
                     s.arn IS NOT NULL, COALESCE(s.raw, 0), s.delivery_policy, t.delivery_policy \
                     FROM deliveries d JOIN messages m ON m.id = d.message_id \
                     LEFT JOIN subscriptions s ON s.arn = d.subscription_arn \
                     LEFT JOIN topics t ON t.arn = d.topic_arn \
                     WHERE d.due_at <= ?1 ORDER BY d.due_at, d.id LIMIT ?2",
                )
                .ctx(C)?;
            let fetch = limit.saturating_add(skip.len());
            let mut rows = stmt.query(params![now, to_i64(fetch)]).ctx(C)?;
            let mut out = Due::default();
            while let Some(r) = rows.next().ctx(C)? {
                if out.jobs.len() + out.damaged.len() >= limit {
                    break;
                }
                let id: i64 = r.get(0).ctx(C)?;
                if skip.contains(&id) {
                    continue;
                }
                match decode_job(id, r) {
                    Ok(job) => out.jobs.push(job),
                    Err(e) => {
                        tracing::error!(delivery = id, error = %e, "a queued SNS delivery is damaged");
                        out.damaged.push(Claim { id, lease: None });
                    }
                }
            }
            Ok(out)
        })
    }

    /// When the earliest delivery not in `skip` is due, if any is queued.
    pub(crate) fn next_due(&self, skip: &HashSet<i64>) -> Result<Option<i64>, SnsError> {
        const C: &str = "reading the next due delivery";
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT d.id, d.due_at FROM deliveries d JOIN messages m ON m.id = d.message_id \
                     ORDER BY d.due_at, d.id LIMIT ?1",
                )
                .ctx(C)?;
            let rows = stmt
                .query_map([to_i64(skip.len() + 1)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })
                .ctx(C)?;
            for row in rows {
                let (id, due) = row.ctx(C)?;
                if !skip.contains(&id) {
                    return Ok(Some(due));
                }
            }
            Ok(None)
        })
    }

    /// Removes a delivered (or dropped) delivery, and its message once no delivery needs it.
    pub(crate) fn delivered(&self, id: i64) -> Result<(), SnsError> {
        const C: &str = "recording a delivery";
        self.write(C, |tx| {
            let message: Option<String> = tx
                .query_row(
                    "DELETE FROM deliveries WHERE id = ?1 RETURNING message_id",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .ctx(C)?;
            if let Some(m) = message {
                drop_message_if_done(tx, &m)?;
            }
            Ok(())
        })
    }

    /// Records a failed attempt and schedules the next one at `due_at`.
    pub(crate) fn retry_later(&self, id: i64, due_at: i64, error: &str) -> Result<(), SnsError> {
        const C: &str = "rescheduling a delivery";
        self.write(C, |tx| {
            tx.execute(
                "UPDATE deliveries SET attempts = attempts + 1, due_at = ?2, last_error = ?3 \
                 WHERE id = ?1",
                params![id, due_at, error],
            )
            .ctx(C)?;
            Ok(())
        })
    }

    /// Moves a delivery whose last retry failed to the dead-letter table (without any
    /// confirmation token), keeping the newest [`MAX_DEAD_LETTERS_PER_TOPIC`] of its topic.
    pub(crate) fn dead_letter(&self, id: i64, error: &str, now: i64) -> Result<(), SnsError> {
        const C: &str = "dead-lettering a delivery";
        self.write(C, |tx| {
            let moved = tx
                .query_row(
                    "INSERT INTO dead_letters (topic_arn, subscription_arn, protocol, endpoint, \
                     message_id, kind, subject, body, attributes, attempts, last_error, failed_at) \
                     SELECT d.topic_arn, d.subscription_arn, d.protocol, d.endpoint, d.message_id, \
                     m.kind, m.subject, m.body, m.attributes, d.attempts + 1, ?2, ?3 \
                     FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.id = ?1 \
                     RETURNING topic_arn, message_id",
                    params![id, error, now],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()
                .ctx(C)?;
            tx.execute("DELETE FROM deliveries WHERE id = ?1", [id])
                .ctx(C)?;
            if let Some((topic, message)) = moved {
                drop_message_if_done(tx, &message)?;
                tx.execute(
                    "DELETE FROM dead_letters WHERE topic_arn = ?1 AND id <= \
                     (SELECT id FROM dead_letters WHERE topic_arn = ?1 ORDER BY id DESC \
                      LIMIT 1 OFFSET ?2)",
                    params![topic, to_i64(MAX_DEAD_LETTERS_PER_TOPIC)],
                )
                .ctx(C)?;
            }
            Ok(())
        })
    }

    /// The dead letters of a topic, oldest first.
    pub(crate) fn dead_letters(&self, topic_arn: &str) -> Result<Vec<DeadLetter>, SnsError> {
        const C: &str = "reading dead letters";
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, topic_arn, subscription_arn, protocol, endpoint, message_id, kind, \
                     subject, body, attributes, attempts, last_error, failed_at \
                     FROM dead_letters WHERE topic_arn = ?1 ORDER BY id",
                )
                .ctx(C)?;
            let rows = stmt
                .query_map([topic_arn], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, String>(9)?,
                        r.get::<_, i64>(10)?,
                        r.get::<_, String>(11)?,
                        r.get::<_, i64>(12)?,
                    ))
                })
                .ctx(C)?;
            let mut out = Vec::new();
            for row in rows {
                let (
                    id,
                    topic,
                    sub,
                    protocol,
                    endpoint,
                    mid,
                    kind,
                    subject,
                    body,
                    attrs,
                    n,
                    err,
                    at,
                ) = row.ctx(C)?;
                out.push(DeadLetter {
                    id,
                    topic_arn: topic,
                    subscription_arn: sub,
                    protocol,
                    endpoint,
                    message_id: mid,
                    message_type: kind,
                    subject,
                    message: body,
                    attributes: decode_attributes(&attrs).unwrap_or_default(),
                    attempts: u32::try_from(n).unwrap_or(u32::MAX),
                    last_error: err,
                    failed_at_ms: at,
                });
            }
            Ok(out)
        })
    }

    /// The deliveries queued for a topic.
    pub(crate) fn pending_deliveries(&self, topic_arn: &str) -> Result<u64, SnsError> {
        self.read(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM deliveries WHERE topic_arn = ?1",
                [topic_arn],
                |r| r.get::<_, i64>(0),
            )
            .ctx("counting deliveries")
            .map(i64::unsigned_abs)
        })
    }

    /// Deletes pending subscriptions and restorable unsubscriptions whose token expired,
    /// with their queued confirmations. Returns how many subscriptions were deleted.
    pub(crate) fn purge_expired(&self, now: i64) -> Result<usize, SnsError> {
        const C: &str = "purging expired confirmations";
        self.write(C, |tx| {
            let expired: Vec<(String, String)> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT arn, topic_arn FROM subscriptions WHERE confirmed = 0 \
                         AND token_expires_at < ?1",
                    )
                    .ctx(C)?;
                let rows = stmt
                    .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .ctx(C)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().ctx(C)?
            };
            for (arn, topic) in &expired {
                tx.execute("DELETE FROM deliveries WHERE subscription_arn = ?1", [arn])
                    .ctx(C)?;
                tx.execute("DELETE FROM subscriptions WHERE arn = ?1", [arn])
                    .ctx(C)?;
                drop_orphans(tx, topic)?;
            }
            tx.execute(
                "DELETE FROM unsubscribed WHERE token_expires_at < ?1",
                [now],
            )
            .ctx(C)?;
            Ok(expired.len())
        })
    }
}

// ---- rules both backends decide the same way ----

/// CreateTopic on an existing topic: quiet if the given attributes and tags (when any are
/// given) match the stored ones (`stored_tags`, read only when tags were given).
pub(crate) fn same_topic(
    attrs: &TopicAttrs,
    tags: &[(String, String)],
    t: &Topic,
    mut stored_tags: Vec<(String, String)>,
) -> Result<(), SnsError> {
    let differs =
        |given: &Option<String>, stored: &Option<String>| given.is_some() && given != stored;
    let display = attrs
        .display_name
        .as_ref()
        .is_some_and(|d| *d != t.display_name);
    if display
        || differs(&attrs.policy, &t.policy)
        || differs(&attrs.delivery_policy, &t.delivery_policy)
    {
        return Err(invalid(
            "Attributes Reason: Topic already exists with different attributes",
        ));
    }
    if !tags.is_empty() {
        let mut given = tags.to_vec();
        stored_tags.sort();
        given.sort();
        if stored_tags != given {
            return Err(invalid(
                "Tags Reason: Topic already exists with different tags",
            ));
        }
    }
    Ok(())
}

/// Refuses a new topic when the account already has `count` in the region.
pub(crate) fn check_topic_count(count: i64) -> Result<(), SnsError> {
    if count >= to_i64(MAX_TOPICS_PER_ACCOUNT) {
        return Err(SnsError::TopicLimitExceeded(format!(
            "Topic limit exceeded: an account has at most {MAX_TOPICS_PER_ACCOUNT} topics in a \
             region"
        )));
    }
    Ok(())
}

/// Refuses a tagging that leaves `count` tags on a topic, past [`MAX_TAGS`].
pub(crate) fn check_tag_count(count: i64) -> Result<(), SnsError> {
    if count > to_i64(MAX_TAGS) {
        return Err(SnsError::TagLimitExceeded(format!(
            "Could not complete request: tag quota of per resource exceeded (at most \
             {MAX_TAGS} tags)"
        )));
    }
    Ok(())
}

/// Refuses a new subscription when the topic already has `count`.
pub(crate) fn check_subscription_count(count: i64) -> Result<(), SnsError> {
    if count >= to_i64(MAX_SUBSCRIPTIONS_PER_TOPIC) {
        return Err(SnsError::SubscriptionLimitExceeded(format!(
            "Subscription limit exceeded: a topic has at most {MAX_SUBSCRIPTIONS_PER_TOPIC} \
             subscriptions"
        )));
    }
    Ok(())
}

/// Refuses with `Throttled` when `deliveries` more deliveries and `bytes` more message bytes
/// would take a topic with `queued` deliveries and `stored` message bytes past its bounds.
pub(crate) fn check_queue_room(
    queued: i64,
    stored: i64,
    deliveries: usize,
    bytes: usize,
) -> Result<(), SnsError> {
    if queued.saturating_add(to_i64(deliveries)) > to_i64(MAX_PENDING_DELIVERIES_PER_TOPIC) {
        return Err(SnsError::Throttled(format!(
            "Rate exceeded: the topic has {queued} undelivered deliveries queued (at most \
             {MAX_PENDING_DELIVERIES_PER_TOPIC}); retry when its subscribers have caught up"
        )));
    }
    if stored.saturating_add(to_i64(bytes)) > to_i64(MAX_PENDING_BYTES_PER_TOPIC) {
        return Err(SnsError::Throttled(format!(
            "Rate exceeded: the topic's undelivered messages hold {stored} bytes (at most \
             {MAX_PENDING_BYTES_PER_TOPIC}); retry when its subscribers have caught up"
        )));
    }
    Ok(())
}

/// Subscribe for an endpoint already subscribed: refused if it asks for other attributes.
pub(crate) fn same_subscription(
    req: &SubscribeRequest<'_>,
    s: &Subscription,
) -> Result<(), SnsError> {
    let raw_differs = req.raw.is_some_and(|r| r != s.raw);
    let policy_differs = req
        .delivery_policy
        .is_some_and(|p| Some(p) != s.delivery_policy.as_deref());
    if raw_differs || policy_differs {
        return Err(invalid(
            "Attributes Reason: Subscription already exists with different attributes",
        ));
    }
    Ok(())
}

/// Whether `requester` (`None` for the unauthenticated URL) may remove `s`, whose topic is
/// owned by `topic_owner` (read only when `s` asks for authentication); `Ok(true)` when an
/// UnsubscribeConfirmation is to be sent.
pub(crate) fn unsubscribe_allowed(
    s: &Subscription,
    requester: Option<&str>,
    topic_owner: Option<&str>,
) -> Result<bool, SnsError> {
    if s.auth_on_unsubscribe {
        let allowed = requester.is_some_and(|r| r == s.owner || Some(r) == topic_owner);
        if !allowed {
            return Err(SnsError::AuthorizationError(
                "This subscription can be removed only by an authenticated Unsubscribe of its \
                 owner or its topic's owner"
                    .to_owned(),
            ));
        }
    }
    Ok(s.confirmed
        && Protocol::is_web_name(&s.protocol)
        && !s.auth_on_unsubscribe
        && requester != Some(s.owner.as_str()))
}

pub(crate) fn token_expired() -> SnsError {
    invalid("Token: the confirmation token has expired")
}

fn prefixed(prefix: &str) -> String {
    SUBSCRIPTION_COLUMNS
        .split(", ")
        .map(|c| format!("{prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn topic_not_found() -> SnsError {
    SnsError::NotFound("Topic does not exist".to_owned())
}

pub(crate) fn subscription_not_found() -> SnsError {
    SnsError::NotFound("Subscription does not exist".to_owned())
}

pub(crate) fn resource_not_found() -> SnsError {
    SnsError::NotFound("Resource does not exist".to_owned())
}

fn topic_in(c: &Connection, arn: &str) -> Result<Option<Topic>, SnsError> {
    c.query_row(
        "SELECT arn, account, display_name, policy, delivery_policy FROM topics WHERE arn = ?1",
        [arn],
        |r| {
            Ok(Topic {
                arn: r.get(0)?,
                account: r.get(1)?,
                display_name: r.get(2)?,
                policy: r.get(3)?,
                delivery_policy: r.get(4)?,
            })
        },
    )
    .optional()
    .ctx("reading a topic")
}

fn tags_in(c: &Connection, arn: &str) -> Result<Vec<(String, String)>, SnsError> {
    const C: &str = "reading tags";
    let mut stmt = c
        .prepare("SELECT key, value FROM topic_tags WHERE topic_arn = ?1 ORDER BY key")
        .ctx(C)?;
    let rows = stmt
        .query_map([arn], |r| Ok((r.get(0)?, r.get(1)?)))
        .ctx(C)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx(C)
}

fn subscription_in(c: &Connection, arn: &str) -> Result<Option<Subscription>, SnsError> {
    c.query_row(
        &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE arn = ?1"),
        [arn],
        subscription_row,
    )
    .optional()
    .ctx("reading a subscription")
}

fn check_subscription_limit(tx: &Transaction<'_>, topic_arn: &str) -> Result<(), SnsError> {
    let count: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM subscriptions WHERE topic_arn = ?1",
            [topic_arn],
            |r| r.get(0),
        )
        .ctx("counting subscriptions")?;
    check_subscription_count(count)
}

/// Refuses with `Throttled` when `deliveries` more deliveries and `bytes` more message bytes
/// would take the topic's queue past its bounds.
fn check_queue(
    tx: &Transaction<'_>,
    topic_arn: &str,
    deliveries: usize,
    bytes: usize,
) -> Result<(), SnsError> {
    const C: &str = "measuring a topic's queue";
    let queued: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM deliveries WHERE topic_arn = ?1",
            [topic_arn],
            |r| r.get(0),
        )
        .ctx(C)?;
    let stored: i64 = tx
        .query_row(
            "SELECT COALESCE(SUM(size), 0) FROM messages WHERE topic_arn = ?1",
            [topic_arn],
            |r| r.get(0),
        )
        .ctx(C)?;
    check_queue_room(queued, stored, deliveries, bytes)
}

/// Queues a SubscriptionConfirmation or UnsubscribeConfirmation for one endpoint.
#[allow(
    clippy::too_many_arguments,
    reason = "one row's columns, each named at the call site"
)]
fn enqueue_confirmation(
    tx: &Transaction<'_>,
    kind: MessageKind,
    topic_arn: &str,
    subscription_arn: &str,
    protocol: Protocol,
    endpoint: &str,
    token: &Token,
    now: i64,
) -> Result<(), SnsError> {
    const C: &str = "queueing a confirmation";
    let id = uuid::Uuid::new_v4().to_string();
    let text = match kind {
        MessageKind::UnsubscribeConfirmation => unsubscribe_text(subscription_arn),
        _ => subscribe_text(topic_arn),
    };
    tx.execute(
        "INSERT INTO messages (id, topic_arn, kind, body, token, timestamp_ms, size) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id,
            topic_arn,
            kind.as_str(),
            text,
            token.0,
            now,
            to_i64(text.len())
        ],
    )
    .ctx(C)?;
    tx.execute(
        "INSERT INTO deliveries (message_id, topic_arn, subscription_arn, protocol, endpoint, \
         due_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            topic_arn,
            subscription_arn,
            protocol.as_str(),
            endpoint,
            now
        ],
    )
    .ctx(C)?;
    Ok(())
}

/// Drops the queued SubscriptionConfirmations of a subscription (their token is replaced).
fn drop_confirmations(tx: &Transaction<'_>, subscription_arn: &str) -> Result<(), SnsError> {
    const C: &str = "replacing a confirmation";
    tx.execute(
        "DELETE FROM messages WHERE kind = 'SubscriptionConfirmation' AND id IN \
         (SELECT message_id FROM deliveries WHERE subscription_arn = ?1)",
        [subscription_arn],
    )
    .ctx(C)?;
    Ok(())
}

/// Deletes a topic's messages that no delivery needs any more.
fn drop_orphans(tx: &Transaction<'_>, topic_arn: &str) -> Result<(), SnsError> {
    tx.execute(
        "DELETE FROM messages WHERE topic_arn = ?1 AND NOT EXISTS \
         (SELECT 1 FROM deliveries WHERE deliveries.message_id = messages.id)",
        [topic_arn],
    )
    .ctx("dropping delivered messages")?;
    Ok(())
}

fn drop_message_if_done(tx: &Transaction<'_>, message_id: &str) -> Result<(), SnsError> {
    tx.execute(
        "DELETE FROM messages WHERE id = ?1 AND NOT EXISTS \
         (SELECT 1 FROM deliveries WHERE message_id = ?1)",
        [message_id],
    )
    .ctx("dropping a delivered message")?;
    Ok(())
}

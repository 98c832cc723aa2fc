//! SNS in PostgreSQL (the `sns` schema track), shared by the nodes of a cluster: a topic
//! created through one node is listed, subscribed to and published to through any other,
//! a confirmation token sent by one node is accepted by every node, and each queued
//! delivery is made by one node at a time.
//!
//! The tables mirror `sns.db`'s, prefixed `sns_`: `sns_topics`, `sns_topic_tags`,
//! `sns_subscriptions`, `sns_unsubscribed`, `sns_messages`, `sns_deliveries` (the outbox,
//! with its lease columns), `sns_dead_letters` and `sns_signing_key`; `sns_file_imports`
//! records what imports of nodes' own files copied ([`crate::import`]). Every operation has
//! the meaning it has on SQLite ([`crate::store`]); what differs is how it stays exact when
//! several nodes write at once, since PostgreSQL has no single writer:
//!
//! - **Bounds are counted under a lock, in the transaction that adds.** A new topic takes
//!   a transaction-scoped advisory lock on its account and region (a key derived from
//!   both) before it counts that account's topics, so creations of one account queue and
//!   two nodes cannot both pass [`crate::MAX_TOPICS_PER_ACCOUNT`]. Everything that adds to
//!   one topic (Subscribe, ConfirmSubscription, Publish, a dead letter, tagging),
//!   Unsubscribe and the purge of expired confirmations first lock the topic's row (`FOR NO KEY UPDATE`; DeleteTopic takes
//!   `FOR UPDATE`), so the per-topic limits (subscriptions, queued deliveries and bytes,
//!   tags, dead letters) are checked by one transaction at a time, and a Publish racing a
//!   DeleteTopic either is deleted with the topic or finds it gone. Transactions run at
//!   READ COMMITTED: each statement after the lock sees what the previous holder
//!   committed.
//! - **Messages are dropped by whoever removes their last delivery.** Every transaction
//!   that removes deliveries locks their messages' rows first (in id order) and checks for
//!   remaining deliveries after the lock, so of two nodes removing a message's last two
//!   deliveries at once, the later one sees the other's removal and drops the message.
//! - **Deliveries are claimed under a lease.** Claiming picks due rows whose lease
//!   is absent or expired with `SELECT ... FOR UPDATE SKIP LOCKED` and writes the claim
//!   (`leased_by`: the claiming node's base URL; `lease_token`: a random token per claim;
//!   `lease_until`) in the same statement, so no row has two live leases and nodes never
//!   wait for each other's rows. Lease times are read and written on the database's clock
//!   only; a row's `due_at` stays on the publishing node's clock, as on SQLite. Recording
//!   an outcome (delivered, retry, dead letter) is a compare-and-set on the row and the
//!   token, and ends the claim; an outcome under a lease that expired and was claimed
//!   again changes nothing (the other claim's outcome counts). A node that dies leaves
//!   its claims to expire, after which any node makes them: delivery stays at least once,
//!   never twice at the same time while a lease is live. The lease's length is the
//!   deliverer's ([`crate::DeliveryConfig::lease`]).
//! - **The signing key is the cluster's,** stored only sealed by the [`KeySealer`] each
//!   node is opened with (its master key), with its certificate in the clear. The first
//!   node to start offers one (insert if absent) and every node uses the one stored;
//!   [`reseal_signing_key`] moves it to a new sealer with a compare-and-set.
//! - **Retries.** A serialization failure or deadlock (possible when a delivery's outcome
//!   races an Unsubscribe of the same subscription) runs the transaction again
//!   ([`warden_postgres::Conn::transaction`]); every operation is safe to run again.
//!
//! Message bodies are stored as UTF-8 bytes (`BYTEA`): a published message may hold any
//! character, NUL included, which PostgreSQL's `TEXT` cannot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use postgres::types::{FromSql, ToSql};
use postgres::{Row, Statement, Transaction};
use warden_postgres::{Conn, Migration, Pool, Track};

use crate::error::{invalid, pg, SnsError};
use crate::import::{FileDeadLetter, FileState, FileTopic, ImportReport};
use crate::model::{Protocol, TopicArn};
use crate::signing::KeySealer;
use crate::store::{
    check_queue_room, check_subscription_count, check_tag_count, check_topic_count,
    decode_attributes, lifetime_ms, resource_not_found, same_subscription, same_topic,
    subscribe_text, subscription_not_found, to_i64, token_expired, topic_not_found,
    unsubscribe_allowed, unsubscribe_text, Claim, DeadLetter, Due, Job, KeyMaterial, MessageKind,
    NewMessage, SubscribeOutcome, SubscribeRequest, Subscription, SubscriptionField, Token, Topic,
    TopicAttrs, TopicField,
};
use crate::MAX_DEAD_LETTERS_PER_TOPIC;

const MIGRATIONS: &[Migration] = &[
    Migration::additive(
        r#"
CREATE TABLE sns_topics (
    arn TEXT COLLATE "C" PRIMARY KEY,
    account TEXT COLLATE "C" NOT NULL,
    region TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    policy TEXT,
    delivery_policy TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX sns_topics_by_owner ON sns_topics (account, region, arn);
CREATE TABLE sns_topic_tags (
    topic_arn TEXT COLLATE "C" NOT NULL REFERENCES sns_topics (arn) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (topic_arn, key)
);
CREATE TABLE sns_subscriptions (
    arn TEXT COLLATE "C" PRIMARY KEY,
    topic_arn TEXT COLLATE "C" NOT NULL REFERENCES sns_topics (arn) ON DELETE CASCADE,
    owner TEXT COLLATE "C" NOT NULL,
    protocol TEXT COLLATE "C" NOT NULL,
    endpoint TEXT COLLATE "C" NOT NULL,
    raw BOOLEAN NOT NULL DEFAULT FALSE,
    delivery_policy TEXT,
    confirmed BOOLEAN NOT NULL,
    token_hash BYTEA,
    token_expires_at BIGINT,
    authenticated BOOLEAN NOT NULL DEFAULT FALSE,
    auth_on_unsubscribe BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    UNIQUE (topic_arn, protocol, endpoint)
);
CREATE INDEX sns_subscriptions_by_owner ON sns_subscriptions (owner, arn);
CREATE INDEX sns_subscriptions_by_token ON sns_subscriptions (token_hash);
CREATE INDEX sns_subscriptions_pending ON sns_subscriptions (token_expires_at)
    WHERE NOT confirmed;
CREATE TABLE sns_unsubscribed (
    arn TEXT COLLATE "C" PRIMARY KEY,
    topic_arn TEXT COLLATE "C" NOT NULL REFERENCES sns_topics (arn) ON DELETE CASCADE,
    owner TEXT COLLATE "C" NOT NULL,
    protocol TEXT COLLATE "C" NOT NULL,
    endpoint TEXT COLLATE "C" NOT NULL,
    raw BOOLEAN NOT NULL,
    delivery_policy TEXT,
    token_hash BYTEA NOT NULL,
    token_expires_at BIGINT NOT NULL
);
CREATE INDEX sns_unsubscribed_by_token ON sns_unsubscribed (token_hash);
CREATE TABLE sns_messages (
    id TEXT COLLATE "C" PRIMARY KEY,
    topic_arn TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    body BYTEA NOT NULL,
    structure_json BOOLEAN NOT NULL DEFAULT FALSE,
    attributes TEXT NOT NULL DEFAULT '[]',
    token TEXT,
    timestamp_ms BIGINT NOT NULL,
    size BIGINT NOT NULL
);
CREATE INDEX sns_messages_by_topic ON sns_messages (topic_arn);
CREATE TABLE sns_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id TEXT COLLATE "C" NOT NULL REFERENCES sns_messages (id) ON DELETE CASCADE,
    topic_arn TEXT COLLATE "C" NOT NULL,
    subscription_arn TEXT COLLATE "C" NOT NULL,
    protocol TEXT COLLATE "C" NOT NULL,
    endpoint TEXT COLLATE "C" NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    due_at BIGINT NOT NULL,
    last_error TEXT,
    leased_by TEXT,
    lease_token TEXT,
    lease_until BIGINT
);
CREATE INDEX sns_deliveries_due ON sns_deliveries (due_at, id);
CREATE INDEX sns_deliveries_by_topic ON sns_deliveries (topic_arn);
CREATE INDEX sns_deliveries_by_subscription ON sns_deliveries (subscription_arn);
CREATE INDEX sns_deliveries_by_message ON sns_deliveries (message_id);
CREATE TABLE sns_dead_letters (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic_arn TEXT COLLATE "C" NOT NULL,
    subscription_arn TEXT COLLATE "C" NOT NULL,
    protocol TEXT COLLATE "C" NOT NULL,
    endpoint TEXT COLLATE "C" NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    body BYTEA NOT NULL,
    attributes TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    failed_at BIGINT NOT NULL
);
CREATE INDEX sns_dead_letters_by_topic ON sns_dead_letters (topic_arn, id);
CREATE TABLE sns_signing_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed BYTEA NOT NULL,
    cert_der BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
"#,
    ),
    // What imports of nodes' own `sns.db` files copied, by the file's fingerprint: an
    // item (`topic:ARN`, `delivery:ID`, ...) per row copied while something is left in
    // the file, and only `complete` once nothing is.
    Migration::additive(
        r#"
CREATE TABLE sns_file_imports (
    file_id TEXT COLLATE "C" NOT NULL,
    item TEXT COLLATE "C" NOT NULL,
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (file_id, item)
);
"#,
    ),
];

/// The `sns` schema track: a pool given to [`crate::Sns::open_shared`] must have been
/// opened with it.
pub const TRACK: Track = Track {
    name: "sns",
    migrations: MIGRATIONS,
};

/// The database's clock, in milliseconds since the Unix epoch, as SQL.
macro_rules! db_now_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    };
}

/// The columns of a subscription, in the order [`subscription_row`] reads them.
macro_rules! subscription_columns {
    () => {
        "arn, topic_arn, owner, protocol, endpoint, raw, delivery_policy, confirmed, \
         authenticated, auth_on_unsubscribe"
    };
}

const SIGNING_KEY: &str = "SELECT sealed, cert_der FROM sns_signing_key WHERE id = 1";
const OFFER_SIGNING_KEY: &str = "INSERT INTO sns_signing_key (id, sealed, cert_der, created_at) \
     VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING";
const REPLACE_SIGNING_KEY: &str =
    "UPDATE sns_signing_key SET sealed = $2 WHERE id = 1 AND sealed = $1";

const TAKE_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
const TOPIC: &str =
    "SELECT arn, account, display_name, policy, delivery_policy FROM sns_topics WHERE arn = $1";
const LOCK_TOPIC: &str = "SELECT arn, account, display_name, policy, delivery_policy \
     FROM sns_topics WHERE arn = $1 FOR NO KEY UPDATE";
const LOCK_TOPIC_TO_DELETE: &str = "SELECT 1 FROM sns_topics WHERE arn = $1 FOR UPDATE";
const COUNT_TOPICS: &str = "SELECT count(*) FROM sns_topics WHERE account = $1 AND region = $2";
const INSERT_TOPIC: &str = "INSERT INTO sns_topics (arn, account, region, name, display_name, \
     policy, delivery_policy, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const INSERT_TAGS: &str = "INSERT INTO sns_topic_tags (topic_arn, key, value) \
     SELECT $1::TEXT, k, v FROM UNNEST($2::TEXT[], $3::TEXT[]) AS t(k, v)";
const UPSERT_TAGS: &str = "INSERT INTO sns_topic_tags (topic_arn, key, value) \
     SELECT $1::TEXT, k, v FROM UNNEST($2::TEXT[], $3::TEXT[]) AS t(k, v) \
     ON CONFLICT (topic_arn, key) DO UPDATE SET value = EXCLUDED.value";
const TAGS: &str = "SELECT key, value FROM sns_topic_tags WHERE topic_arn = $1 ORDER BY key";
const COUNT_TAGS: &str = "SELECT count(*) FROM sns_topic_tags WHERE topic_arn = $1";
const UNTAG: &str = "DELETE FROM sns_topic_tags WHERE topic_arn = $1 AND key = ANY($2::TEXT[])";
const DELETE_TOPIC_MESSAGES: &str = "DELETE FROM sns_messages WHERE topic_arn = $1";
const DELETE_TOPIC_DELIVERIES: &str = "DELETE FROM sns_deliveries WHERE topic_arn = $1";
const DELETE_TOPIC_DEAD_LETTERS: &str = "DELETE FROM sns_dead_letters WHERE topic_arn = $1";
const DELETE_TOPIC: &str = "DELETE FROM sns_topics WHERE arn = $1";
const SUBSCRIPTION_COUNTS: &str = "SELECT count(*) FILTER (WHERE confirmed), \
     count(*) FILTER (WHERE NOT confirmed) FROM sns_subscriptions WHERE topic_arn = $1";
const LIST_TOPICS: &str = "SELECT arn FROM sns_topics WHERE account = $1 AND region = $2 \
     AND arn > $3 ORDER BY arn LIMIT $4";
const SET_DISPLAY_NAME: &str =
    "UPDATE sns_topics SET display_name = COALESCE($2::TEXT, '') WHERE arn = $1";
const SET_TOPIC_POLICY: &str = "UPDATE sns_topics SET policy = $2 WHERE arn = $1";
const SET_TOPIC_DELIVERY_POLICY: &str = "UPDATE sns_topics SET delivery_policy = $2 WHERE arn = $1";

const SUBSCRIPTION: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM sns_subscriptions WHERE arn = $1"
);
const LOCK_SUBSCRIPTION: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM sns_subscriptions WHERE arn = $1 FOR UPDATE"
);
const SUBSCRIPTION_BY_ENDPOINT: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM sns_subscriptions WHERE topic_arn = $1 AND protocol = $2 AND endpoint = $3"
);
const COUNT_SUBSCRIPTIONS: &str = "SELECT count(*) FROM sns_subscriptions WHERE topic_arn = $1";
const QUEUE_SIZE: &str = "SELECT (SELECT count(*) FROM sns_deliveries WHERE topic_arn = $1), \
     (SELECT COALESCE(sum(size), 0)::BIGINT FROM sns_messages WHERE topic_arn = $1)";
const DROP_CONFIRMATIONS: &str =
    "DELETE FROM sns_messages WHERE kind = 'SubscriptionConfirmation' \
     AND id IN (SELECT message_id FROM sns_deliveries WHERE subscription_arn = $1)";
const RENEW_TOKEN: &str =
    "UPDATE sns_subscriptions SET token_hash = $2, token_expires_at = $3 WHERE arn = $1";
const INSERT_SUBSCRIPTION: &str = "INSERT INTO sns_subscriptions (arn, topic_arn, owner, \
     protocol, endpoint, raw, delivery_policy, confirmed, token_hash, token_expires_at, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const INSERT_MESSAGE: &str = "INSERT INTO sns_messages (id, topic_arn, kind, subject, body, \
     structure_json, attributes, token, timestamp_ms, size) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const INSERT_DELIVERY: &str = "INSERT INTO sns_deliveries (message_id, topic_arn, \
     subscription_arn, protocol, endpoint, due_at) VALUES ($1, $2, $3, $4, $5, $6)";
const PENDING_BY_TOKEN: &str = "SELECT arn, token_expires_at, confirmed FROM sns_subscriptions \
     WHERE token_hash = $1 AND topic_arn = $2";
const CONFIRM: &str = "UPDATE sns_subscriptions SET confirmed = TRUE, \
     authenticated = CASE WHEN confirmed THEN authenticated ELSE $2 END, \
     auth_on_unsubscribe = COALESCE($3, auth_on_unsubscribe) WHERE arn = $1";
const UNSUBSCRIBED_BY_TOKEN: &str = "SELECT arn, owner, protocol, endpoint, raw, \
     delivery_policy, token_expires_at FROM sns_unsubscribed \
     WHERE token_hash = $1 AND topic_arn = $2";
const DELETE_UNSUBSCRIBED: &str = "DELETE FROM sns_unsubscribed WHERE arn = $1";
const SUBSCRIPTION_ARN_BY_ENDPOINT: &str = "SELECT arn FROM sns_subscriptions \
     WHERE topic_arn = $1 AND protocol = $2 AND endpoint = $3";
const RESTORE_SUBSCRIPTION: &str = "INSERT INTO sns_subscriptions (arn, topic_arn, owner, \
     protocol, endpoint, raw, delivery_policy, confirmed, authenticated, auth_on_unsubscribe, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $9, $10)";
const SUBSCRIPTION_MESSAGES: &str =
    "SELECT DISTINCT message_id FROM sns_deliveries WHERE subscription_arn = $1";
const LOCK_MESSAGES: &str =
    "SELECT id FROM sns_messages WHERE id = ANY($1::TEXT[]) ORDER BY id FOR UPDATE";
const DELETE_SUBSCRIPTION_DELIVERIES: &str =
    "DELETE FROM sns_deliveries WHERE subscription_arn = $1";
const DROP_DONE_MESSAGES: &str = "DELETE FROM sns_messages m WHERE m.id = ANY($1::TEXT[]) \
     AND NOT EXISTS (SELECT 1 FROM sns_deliveries d WHERE d.message_id = m.id)";
const DELETE_SUBSCRIPTION: &str = "DELETE FROM sns_subscriptions WHERE arn = $1";
const UPSERT_UNSUBSCRIBED: &str = "INSERT INTO sns_unsubscribed (arn, topic_arn, owner, \
     protocol, endpoint, raw, delivery_policy, token_hash, token_expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (arn) DO UPDATE SET \
     topic_arn = EXCLUDED.topic_arn, owner = EXCLUDED.owner, protocol = EXCLUDED.protocol, \
     endpoint = EXCLUDED.endpoint, raw = EXCLUDED.raw, \
     delivery_policy = EXCLUDED.delivery_policy, token_hash = EXCLUDED.token_hash, \
     token_expires_at = EXCLUDED.token_expires_at";
const SET_RAW: &str = "UPDATE sns_subscriptions SET raw = $2 WHERE arn = $1";
const SET_SUBSCRIPTION_DELIVERY_POLICY: &str =
    "UPDATE sns_subscriptions SET delivery_policy = $2 WHERE arn = $1";
const LIST_SUBSCRIPTIONS: &str = "SELECT s.arn, s.topic_arn, s.owner, s.protocol, s.endpoint, \
     s.raw, s.delivery_policy, s.confirmed, s.authenticated, s.auth_on_unsubscribe \
     FROM sns_subscriptions s JOIN sns_topics t ON t.arn = s.topic_arn \
     WHERE s.owner = $1 AND t.region = $2 AND s.arn > $3 ORDER BY s.arn LIMIT $4";
const LIST_SUBSCRIPTIONS_BY_TOPIC: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM sns_subscriptions WHERE topic_arn = $1 AND arn > $2 ORDER BY arn LIMIT $3"
);

const COUNT_CONFIRMED: &str =
    "SELECT count(*) FROM sns_subscriptions WHERE topic_arn = $1 AND confirmed";
const FAN_OUT: &str = "INSERT INTO sns_deliveries (message_id, topic_arn, subscription_arn, \
     protocol, endpoint, due_at) SELECT $1::TEXT, topic_arn, arn, protocol, endpoint, \
     $3::BIGINT FROM sns_subscriptions WHERE topic_arn = $2 AND confirmed ORDER BY arn";

/// Claims up to `$2` deliveries due at `$1` (the node's clock) whose lease is absent or
/// expired (the database's clock), skipping the ids in `$6` and rows another transaction
/// holds, for `$5` milliseconds under `$3` (the node) and `$4` (the claim's token); returns
/// each with what its delivery needs.
const CLAIM: &str = concat!(
    "WITH picked AS (SELECT id FROM sns_deliveries WHERE due_at <= $1 \
     AND (lease_until IS NULL OR lease_until <= ",
    db_now_ms!(),
    ") AND id <> ALL($6::BIGINT[]) ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
     claimed AS (UPDATE sns_deliveries d SET leased_by = $3, lease_token = $4, \
     lease_until = ",
    db_now_ms!(),
    " + $5::BIGINT FROM picked WHERE d.id = picked.id RETURNING d.id, d.attempts, \
     d.message_id, d.topic_arn, d.subscription_arn, d.protocol, d.endpoint, d.due_at) \
     SELECT c.id, c.attempts, m.kind, c.message_id, c.topic_arn, c.subscription_arn, \
     c.protocol, c.endpoint, m.subject, m.body, m.structure_json, m.attributes, m.token, \
     m.timestamp_ms, s.arn IS NOT NULL, COALESCE(s.raw, FALSE), s.delivery_policy, \
     t.delivery_policy FROM claimed c JOIN sns_messages m ON m.id = c.message_id \
     LEFT JOIN sns_subscriptions s ON s.arn = c.subscription_arn \
     LEFT JOIN sns_topics t ON t.arn = c.topic_arn ORDER BY c.due_at, c.id"
);
const NEXT_DUE: &str = concat!(
    "SELECT min(due_at) FROM sns_deliveries WHERE (lease_until IS NULL OR lease_until <= ",
    db_now_ms!(),
    ") AND id <> ALL($1::BIGINT[])"
);
const CLAIMED: &str = "SELECT message_id, topic_arn FROM sns_deliveries \
     WHERE id = $1 AND lease_token IS NOT DISTINCT FROM $2";
const LOCK_MESSAGE: &str = "SELECT 1 FROM sns_messages WHERE id = $1 FOR UPDATE";
const DELETE_CLAIMED: &str =
    "DELETE FROM sns_deliveries WHERE id = $1 AND lease_token IS NOT DISTINCT FROM $2";
const RETRY: &str = "UPDATE sns_deliveries SET attempts = attempts + 1, due_at = $3, \
     last_error = $4, leased_by = NULL, lease_token = NULL, lease_until = NULL \
     WHERE id = $1 AND lease_token IS NOT DISTINCT FROM $2";
const RELEASE: &str = "UPDATE sns_deliveries d SET lease_until = NULL \
     FROM UNNEST($1::BIGINT[], $2::TEXT[]) AS c(id, token) \
     WHERE d.id = c.id AND d.lease_token = c.token";
const DEAD_LETTER: &str = "INSERT INTO sns_dead_letters (topic_arn, subscription_arn, \
     protocol, endpoint, message_id, kind, subject, body, attributes, attempts, last_error, \
     failed_at) SELECT d.topic_arn, d.subscription_arn, d.protocol, d.endpoint, d.message_id, \
     m.kind, m.subject, m.body, m.attributes, d.attempts + 1, $3::TEXT, $4::BIGINT \
     FROM sns_deliveries d JOIN sns_messages m ON m.id = d.message_id \
     WHERE d.id = $1 AND d.lease_token IS NOT DISTINCT FROM $2";
const TRIM_DEAD_LETTERS: &str = "DELETE FROM sns_dead_letters WHERE topic_arn = $1 AND id <= \
     (SELECT id FROM sns_dead_letters WHERE topic_arn = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)";
const DEAD_LETTERS: &str = "SELECT id, topic_arn, subscription_arn, protocol, endpoint, \
     message_id, kind, subject, body, attributes, attempts, last_error, failed_at \
     FROM sns_dead_letters WHERE topic_arn = $1 ORDER BY id";
const PENDING: &str = "SELECT count(*) FROM sns_deliveries WHERE topic_arn = $1";
const EXPIRED: &str = "SELECT arn, topic_arn FROM sns_subscriptions WHERE NOT confirmed \
     AND token_expires_at < $1 ORDER BY topic_arn, arn";
const LOCK_EXPIRED: &str = "SELECT arn FROM sns_subscriptions WHERE arn = $1 AND NOT confirmed \
     AND token_expires_at < $2 FOR UPDATE";
const PURGE_UNSUBSCRIBED: &str = "DELETE FROM sns_unsubscribed WHERE token_expires_at < $1";

const IMPORTED_ITEMS: &str = "SELECT item FROM sns_file_imports WHERE file_id = $1";
const RECORD_IMPORTED: &str = "INSERT INTO sns_file_imports (file_id, item, imported_at) \
     SELECT $1::TEXT, i, $3::BIGINT FROM UNNEST($2::TEXT[]) AS t(i) ON CONFLICT DO NOTHING";
const FORGET_IMPORTED: &str = "DELETE FROM sns_file_imports WHERE file_id = $1";
const IMPORT_SUBSCRIPTION: &str = "INSERT INTO sns_subscriptions (arn, topic_arn, owner, \
     protocol, endpoint, raw, delivery_policy, confirmed, token_hash, token_expires_at, \
     authenticated, auth_on_unsubscribe, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const IMPORT_UNSUBSCRIBED: &str = "INSERT INTO sns_unsubscribed (arn, topic_arn, owner, \
     protocol, endpoint, raw, delivery_policy, token_hash, token_expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (arn) DO NOTHING";
const MESSAGE_STORED: &str = "SELECT 1 FROM sns_messages WHERE id = $1";
const IMPORT_MESSAGE: &str = "INSERT INTO sns_messages (id, topic_arn, kind, subject, body, \
     structure_json, attributes, token, timestamp_ms, size) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING";
const IMPORT_DELIVERY: &str = "INSERT INTO sns_deliveries (message_id, topic_arn, \
     subscription_arn, protocol, endpoint, attempts, due_at, last_error) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const COUNT_DEAD_LETTERS: &str = "SELECT count(*) FROM sns_dead_letters WHERE topic_arn = $1";
const IMPORT_DEAD_LETTER: &str = "INSERT INTO sns_dead_letters (topic_arn, subscription_arn, \
     protocol, endpoint, message_id, kind, subject, body, attributes, attempts, last_error, \
     failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
/// The item an import records once nothing is left in its file.
const IMPORT_COMPLETE: &str = "complete";

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Statements prepared (and cached) on a connection before a transaction opens on it.
struct Prepared(Vec<(&'static str, Statement)>);

impl Prepared {
    fn new(conn: &mut Conn, statements: &[&'static str]) -> Result<Prepared, postgres::Error> {
        let mut out = Vec::with_capacity(statements.len());
        for sql in statements {
            out.push((*sql, conn.prepare(sql)?));
        }
        Ok(Prepared(out))
    }
}

/// One write transaction: statements from the [`Prepared`] set (prepared on the spot if
/// missing from it), errors reported with the operation's context.
struct Tx<'a, 'b> {
    tx: &'a mut Transaction<'b>,
    prepared: &'a Prepared,
    context: &'static str,
}

impl Tx<'_, '_> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, SnsError> {
        match self.prepared.0.iter().find(|(s, _)| *s == sql) {
            Some((_, st)) => Ok(st.clone()),
            None => self.tx.prepare(sql).map_err(pg(self.context)),
        }
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, SnsError> {
        let st = self.statement(sql)?;
        self.tx.execute(&st, params).map_err(pg(self.context))
    }

    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, SnsError> {
        let st = self.statement(sql)?;
        self.tx.query(&st, params).map_err(pg(self.context))
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, SnsError> {
        let st = self.statement(sql)?;
        self.tx.query_opt(&st, params).map_err(pg(self.context))
    }

    fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row, SnsError> {
        let st = self.statement(sql)?;
        self.tx.query_one(&st, params).map_err(pg(self.context))
    }

    fn decode<T>(&self, r: Result<T, postgres::Error>) -> Result<T, SnsError> {
        r.map_err(pg(self.context))
    }
}

/// Reads outside a transaction, each statement prepared once per connection.
struct Reader<'a> {
    conn: &'a mut Conn,
    context: &'static str,
}

impl Reader<'_> {
    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, SnsError> {
        let st = self.conn.prepare(sql).map_err(pg(self.context))?;
        self.conn
            .client()
            .query(&st, params)
            .map_err(pg(self.context))
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, SnsError> {
        let st = self.conn.prepare(sql).map_err(pg(self.context))?;
        self.conn
            .client()
            .query_opt(&st, params)
            .map_err(pg(self.context))
    }

    fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row, SnsError> {
        let st = self.conn.prepare(sql).map_err(pg(self.context))?;
        self.conn
            .client()
            .query_one(&st, params)
            .map_err(pg(self.context))
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, SnsError> {
        let st = self.conn.prepare(sql).map_err(pg(self.context))?;
        self.conn
            .client()
            .execute(&st, params)
            .map_err(pg(self.context))
    }

    fn decode<T>(&self, r: Result<T, postgres::Error>) -> Result<T, SnsError> {
        r.map_err(pg(self.context))
    }
}

fn topic_row(r: &Row) -> Result<Topic, postgres::Error> {
    Ok(Topic {
        arn: r.try_get(0)?,
        account: r.try_get(1)?,
        display_name: r.try_get(2)?,
        policy: r.try_get(3)?,
        delivery_policy: r.try_get(4)?,
    })
}

fn subscription_row(r: &Row) -> Result<Subscription, postgres::Error> {
    Ok(Subscription {
        arn: r.try_get(0)?,
        topic_arn: r.try_get(1)?,
        owner: r.try_get(2)?,
        protocol: r.try_get(3)?,
        endpoint: r.try_get(4)?,
        raw: r.try_get(5)?,
        delivery_policy: r.try_get(6)?,
        confirmed: r.try_get(7)?,
        authenticated: r.try_get(8)?,
        auth_on_unsubscribe: r.try_get(9)?,
    })
}

/// Two columns of a row.
fn two<A, B>(r: &Row, [a, b]: [usize; 2]) -> Result<(A, B), postgres::Error>
where
    A: for<'x> FromSql<'x>,
    B: for<'x> FromSql<'x>,
{
    Ok((r.try_get(a)?, r.try_get(b)?))
}

/// Three columns of a row.
fn three<A, B, C>(r: &Row, [a, b, c]: [usize; 3]) -> Result<(A, B, C), postgres::Error>
where
    A: for<'x> FromSql<'x>,
    B: for<'x> FromSql<'x>,
    C: for<'x> FromSql<'x>,
{
    Ok((r.try_get(a)?, r.try_get(b)?, r.try_get(c)?))
}

fn pairs(rows: &[Row]) -> Result<Vec<(String, String)>, postgres::Error> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// A stored message body (UTF-8 bytes) as text.
fn body_text(bytes: Vec<u8>) -> Result<String, SnsError> {
    String::from_utf8(bytes).map_err(|_| SnsError::Damaged("a message body".to_owned()))
}

/// Decodes one row of [`CLAIM`] into a job held under `lease`.
fn decode_job(r: &Row, lease: &str) -> Result<Job, SnsError> {
    let pg = |e| pg("decoding a due delivery")(e);
    let id: i64 = r.try_get(0).map_err(pg)?;
    let attempts: i64 = r.try_get(1).map_err(pg)?;
    let kind: String = r.try_get(2).map_err(pg)?;
    let body: Vec<u8> = r.try_get(9).map_err(pg)?;
    let attributes: String = r.try_get(11).map_err(pg)?;
    Ok(Job {
        claim: Claim {
            id,
            lease: Some(lease.to_owned()),
        },
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        kind: MessageKind::parse(&kind)?,
        message_id: r.try_get(3).map_err(pg)?,
        topic_arn: r.try_get(4).map_err(pg)?,
        subscription_arn: r.try_get(5).map_err(pg)?,
        protocol: r.try_get(6).map_err(pg)?,
        endpoint: r.try_get(7).map_err(pg)?,
        subject: r.try_get(8).map_err(pg)?,
        body: body_text(body)?,
        structure_json: r.try_get(10).map_err(pg)?,
        attributes: decode_attributes(&attributes)?,
        token: r.try_get::<_, Option<String>>(12).map_err(pg)?.map(Token),
        timestamp_ms: r.try_get(13).map_err(pg)?,
        subscribed: r.try_get(14).map_err(pg)?,
        raw: r.try_get(15).map_err(pg)?,
        subscription_policy: r.try_get(16).map_err(pg)?,
        topic_policy: r.try_get(17).map_err(pg)?,
    })
}

/// The advisory lock key that creations of topics of one account in one region hold: the
/// first eight bytes of a SHA-256 over both, so that every node derives the same key.
fn topics_lock(account: &str, region: &str) -> i64 {
    advisory_key(&format!("warden-sns topics\0{account}\0{region}"))
}

/// The advisory lock key an import of the file with fingerprint `file_id` holds, so that
/// two nodes importing copies of one file take turns.
fn file_import_lock(file_id: &str) -> i64 {
    advisory_key(&format!("warden-sns file import\0{file_id}"))
}

/// An advisory lock key: the first eight bytes of a SHA-256 over `text`.
fn advisory_key(text: &str) -> i64 {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(digest.as_ref()) {
        *k = *b;
    }
    i64::from_be_bytes(key)
}

/// A lease's length in milliseconds, at least one.
fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The SNS store on a PostgreSQL database the nodes share.
pub(crate) struct PgStore {
    pool: Pool,
    /// What `leased_by` says of this node's claims: its base URL.
    node: String,
    sealer: Arc<dyn KeySealer>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// The store on `pool` (opened with [`TRACK`]) for the node whose base URL is `node`;
    /// the signing key is sealed and opened with `sealer`.
    pub(crate) fn new(pool: Pool, node: &str, sealer: Arc<dyn KeySealer>) -> PgStore {
        PgStore {
            pool,
            node: node.to_owned(),
            sealer,
        }
    }

    /// Runs `f` on a pooled connection, outside a transaction.
    fn read<T: Send + 'static>(
        &self,
        context: &'static str,
        f: impl FnOnce(&mut Reader<'_>) -> Result<T, SnsError> + Send + 'static,
    ) -> Result<T, SnsError> {
        self.pool.run(move |conn| f(&mut Reader { conn, context }))
    }

    /// Runs `f` in a transaction on a pooled connection, with `statements` prepared,
    /// again when PostgreSQL asks for a retry.
    fn write<T: Send + 'static>(
        &self,
        context: &'static str,
        statements: &'static [&'static str],
        mut f: impl FnMut(&mut Tx<'_, '_>) -> Result<T, SnsError> + Send + 'static,
    ) -> Result<T, SnsError> {
        self.pool.run(move |conn| {
            let prepared = Prepared::new(conn, statements).map_err(pg(context))?;
            conn.transaction(|tx| {
                f(&mut Tx {
                    tx,
                    prepared: &prepared,
                    context,
                })
            })
        })
    }

    // ---- signing key ----

    fn unseal(&self, sealed: &[u8]) -> Result<Vec<u8>, SnsError> {
        self.sealer.unseal(sealed).map_err(|e| {
            SnsError::Signing(format!(
                "the shared signing key does not open with this node's sealer (every node \
                 needs the same master key): {e}"
            ))
        })
    }

    /// The stored signing key, unsealed, and its certificate, if a node stored one.
    pub(crate) fn signing_key(&self) -> Result<Option<KeyMaterial>, SnsError> {
        let stored = self.read("reading the signing key", |r| {
            let row = r.query_opt(SIGNING_KEY, &[])?;
            row.map(|row| r.decode(two(&row, [0, 1]))).transpose()
        })?;
        match stored {
            Some((sealed, cert)) => {
                let sealed: Vec<u8> = sealed;
                Ok(Some((self.unseal(&sealed)?, cert)))
            }
            None => Ok(None),
        }
    }

    /// Offers a signing key (stored sealed) unless a node stored one first; returns the
    /// stored one, unsealed.
    pub(crate) fn put_signing_key(
        &self,
        pkcs8: &[u8],
        cert_der: &[u8],
        now: i64,
    ) -> Result<KeyMaterial, SnsError> {
        let sealed = self
            .sealer
            .seal(pkcs8)
            .map_err(|e| SnsError::Signing(format!("sealing the signing key failed: {e}")))?;
        let cert = cert_der.to_vec();
        let (stored, cert): (Vec<u8>, Vec<u8>) =
            self.read("storing the signing key", move |r| {
                r.execute(OFFER_SIGNING_KEY, &[&sealed, &cert, &now])?;
                let row = r.query_one(SIGNING_KEY, &[])?;
                r.decode(two(&row, [0, 1]))
            })?;
        Ok((self.unseal(&stored)?, cert))
    }

    // ---- topics ----

    pub(crate) fn create_topic(
        &self,
        arn: &TopicArn,
        attrs: &TopicAttrs,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<(), SnsError> {
        let arn = arn.clone();
        let attrs = attrs.clone();
        let tags = tags.to_vec();
        self.write(
            "creating a topic",
            &[
                TAKE_LOCK,
                TOPIC,
                TAGS,
                COUNT_TOPICS,
                INSERT_TOPIC,
                INSERT_TAGS,
            ],
            move |t| {
                let key = arn.to_string();
                t.execute(TAKE_LOCK, &[&topics_lock(&arn.account, &arn.region)])?;
                if let Some(row) = t.query_opt(TOPIC, &[&key])? {
                    let topic = t.decode(topic_row(&row))?;
                    let stored = if tags.is_empty() {
                        Vec::new()
                    } else {
                        let rows = t.query(TAGS, &[&key])?;
                        t.decode(pairs(&rows))?
                    };
                    return same_topic(&attrs, &tags, &topic, stored);
                }
                let count: i64 = {
                    let row = t.query_one(COUNT_TOPICS, &[&arn.account, &arn.region])?;
                    t.decode(row.try_get(0))?
                };
                check_topic_count(count)?;
                t.execute(
                    INSERT_TOPIC,
                    &[
                        &key,
                        &arn.account,
                        &arn.region,
                        &arn.name,
                        &attrs.display_name.as_deref().unwrap_or(""),
                        &attrs.policy,
                        &attrs.delivery_policy,
                        &now,
                    ],
                )?;
                if !tags.is_empty() {
                    let (keys, values): (Vec<String>, Vec<String>) = tags.iter().cloned().unzip();
                    t.execute(INSERT_TAGS, &[&key, &keys, &values])?;
                }
                Ok(())
            },
        )
    }

    pub(crate) fn delete_topic(&self, arn: &str) -> Result<(), SnsError> {
        let arn = arn.to_owned();
        self.write(
            "deleting a topic",
            &[
                LOCK_TOPIC_TO_DELETE,
                DELETE_TOPIC_MESSAGES,
                DELETE_TOPIC_DELIVERIES,
                DELETE_TOPIC_DEAD_LETTERS,
                DELETE_TOPIC,
            ],
            move |t| {
                t.query_opt(LOCK_TOPIC_TO_DELETE, &[&arn])?;
                t.execute(DELETE_TOPIC_MESSAGES, &[&arn])?;
                t.execute(DELETE_TOPIC_DELIVERIES, &[&arn])?;
                t.execute(DELETE_TOPIC_DEAD_LETTERS, &[&arn])?;
                t.execute(DELETE_TOPIC, &[&arn])?;
                Ok(())
            },
        )
    }

    pub(crate) fn topic(&self, arn: &str) -> Result<Option<Topic>, SnsError> {
        let arn = arn.to_owned();
        self.read("reading a topic", move |r| {
            let row = r.query_opt(TOPIC, &[&arn])?;
            row.map(|row| r.decode(topic_row(&row))).transpose()
        })
    }

    pub(crate) fn subscription_counts(&self, arn: &str) -> Result<(u64, u64), SnsError> {
        let arn = arn.to_owned();
        self.read("counting subscriptions", move |r| {
            let row = r.query_one(SUBSCRIPTION_COUNTS, &[&arn])?;
            let (confirmed, pending): (i64, i64) = r.decode(two(&row, [0, 1]))?;
            Ok((confirmed.unsigned_abs(), pending.unsigned_abs()))
        })
    }

    pub(crate) fn list_topics(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, SnsError> {
        let (account, region) = (account.to_owned(), region.to_owned());
        let after = after.unwrap_or("").to_owned();
        let limit = to_i64(limit);
        self.read("listing topics", move |r| {
            let rows = r.query(LIST_TOPICS, &[&account, &region, &after, &limit])?;
            rows.iter().map(|row| r.decode(row.try_get(0))).collect()
        })
    }

    pub(crate) fn set_topic_attribute(
        &self,
        arn: &str,
        field: TopicField,
        value: Option<&str>,
    ) -> Result<(), SnsError> {
        let sql = match field {
            TopicField::DisplayName => SET_DISPLAY_NAME,
            TopicField::Policy => SET_TOPIC_POLICY,
            TopicField::DeliveryPolicy => SET_TOPIC_DELIVERY_POLICY,
        };
        let arn = arn.to_owned();
        let value = value.map(str::to_owned);
        let n = self.read("setting a topic attribute", move |r| {
            r.execute(sql, &[&arn, &value])
        })?;
        if n == 0 {
            return Err(topic_not_found());
        }
        Ok(())
    }

    pub(crate) fn tags(&self, arn: &str) -> Result<Vec<(String, String)>, SnsError> {
        let arn = arn.to_owned();
        self.read("reading tags", move |r| {
            if r.query_opt(TOPIC, &[&arn])?.is_none() {
                return Err(resource_not_found());
            }
            let rows = r.query(TAGS, &[&arn])?;
            r.decode(pairs(&rows))
        })
    }

    pub(crate) fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), SnsError> {
        let arn = arn.to_owned();
        // One row per key, the last value given winning, as tagging key by key would.
        let tags: BTreeMap<String, String> = tags.iter().cloned().collect();
        let (keys, values): (Vec<String>, Vec<String>) = tags.into_iter().unzip();
        self.write(
            "tagging a topic",
            &[LOCK_TOPIC, UPSERT_TAGS, COUNT_TAGS],
            move |t| {
                if t.query_opt(LOCK_TOPIC, &[&arn])?.is_none() {
                    return Err(resource_not_found());
                }
                t.execute(UPSERT_TAGS, &[&arn, &keys, &values])?;
                let row = t.query_one(COUNT_TAGS, &[&arn])?;
                check_tag_count(t.decode(row.try_get(0))?)
            },
        )
    }

    pub(crate) fn untag(&self, arn: &str, keys: &[String]) -> Result<(), SnsError> {
        let arn = arn.to_owned();
        let keys = keys.to_vec();
        self.write("untagging a topic", &[TOPIC, UNTAG], move |t| {
            if t.query_opt(TOPIC, &[&arn])?.is_none() {
                return Err(resource_not_found());
            }
            t.execute(UNTAG, &[&arn, &keys])?;
            Ok(())
        })
    }

    // ---- subscriptions ----

    pub(crate) fn subscribe(
        &self,
        req: &SubscribeRequest<'_>,
        now: i64,
    ) -> Result<SubscribeOutcome, SnsError> {
        let topic_arn = req.topic_arn.to_owned();
        let owner = req.owner.to_owned();
        let protocol = req.protocol;
        let endpoint = req.endpoint.to_owned();
        let raw = req.raw;
        let delivery_policy = req.delivery_policy.map(str::to_owned);
        self.write(
            "subscribing",
            &[
                LOCK_TOPIC,
                SUBSCRIPTION_BY_ENDPOINT,
                QUEUE_SIZE,
                DROP_CONFIRMATIONS,
                RENEW_TOKEN,
                INSERT_MESSAGE,
                INSERT_DELIVERY,
                COUNT_SUBSCRIPTIONS,
                INSERT_SUBSCRIPTION,
            ],
            move |t| {
                let req = SubscribeRequest {
                    topic_arn: &topic_arn,
                    owner: &owner,
                    protocol,
                    endpoint: &endpoint,
                    raw,
                    delivery_policy: delivery_policy.as_deref(),
                };
                if t.query_opt(LOCK_TOPIC, &[&topic_arn])?.is_none() {
                    return Err(topic_not_found());
                }
                let existing = t.query_opt(
                    SUBSCRIPTION_BY_ENDPOINT,
                    &[&topic_arn, &protocol.as_str(), &endpoint],
                )?;
                if let Some(row) = existing {
                    let s = t.decode(subscription_row(&row))?;
                    same_subscription(&req, &s)?;
                    if !s.confirmed {
                        check_queue(t, &topic_arn, 1, 0)?;
                        t.execute(DROP_CONFIRMATIONS, &[&s.arn])?;
                        let token = Token::generate()?;
                        t.execute(
                            RENEW_TOKEN,
                            &[&s.arn, &Token::hash(&token.0), &(now + lifetime_ms())],
                        )?;
                        enqueue_confirmation(
                            t,
                            MessageKind::SubscriptionConfirmation,
                            &topic_arn,
                            &s.arn,
                            protocol,
                            &endpoint,
                            &token,
                            now,
                        )?;
                    }
                    return Ok(SubscribeOutcome {
                        arn: s.arn,
                        confirmed: s.confirmed,
                    });
                }
                check_subscription_limit(t, &topic_arn)?;
                let arn = format!("{topic_arn}:{}", uuid::Uuid::new_v4());
                let confirmed = protocol == Protocol::Lambda;
                let token = if confirmed {
                    None
                } else {
                    check_queue(t, &topic_arn, 1, 0)?;
                    Some(Token::generate()?)
                };
                let token_hash = token.as_ref().map(|t| Token::hash(&t.0));
                let expires = token.as_ref().map(|_| now + lifetime_ms());
                t.execute(
                    INSERT_SUBSCRIPTION,
                    &[
                        &arn,
                        &topic_arn,
                        &owner,
                        &protocol.as_str(),
                        &endpoint,
                        &raw.unwrap_or(false),
                        &delivery_policy,
                        &confirmed,
                        &token_hash,
                        &expires,
                        &now,
                    ],
                )?;
                if let Some(token) = token {
                    enqueue_confirmation(
                        t,
                        MessageKind::SubscriptionConfirmation,
                        &topic_arn,
                        &arn,
                        protocol,
                        &endpoint,
                        &token,
                        now,
                    )?;
                }
                Ok(SubscribeOutcome { arn, confirmed })
            },
        )
    }

    pub(crate) fn confirm(
        &self,
        topic_arn: &str,
        token: &str,
        auth_on_unsubscribe: Option<bool>,
        authenticated: bool,
        now: i64,
    ) -> Result<String, SnsError> {
        let topic_arn = topic_arn.to_owned();
        let hash = Token::hash(token);
        self.write(
            "confirming a subscription",
            &[
                LOCK_TOPIC,
                PENDING_BY_TOKEN,
                CONFIRM,
                UNSUBSCRIBED_BY_TOKEN,
                DELETE_UNSUBSCRIBED,
                SUBSCRIPTION_ARN_BY_ENDPOINT,
                COUNT_SUBSCRIPTIONS,
                RESTORE_SUBSCRIPTION,
            ],
            move |t| {
                if t.query_opt(LOCK_TOPIC, &[&topic_arn])?.is_none() {
                    return Err(topic_not_found());
                }
                if let Some(row) = t.query_opt(PENDING_BY_TOKEN, &[&hash, &topic_arn])? {
                    let (arn, expires, confirmed): (String, Option<i64>, bool) =
                        t.decode(three(&row, [0, 1, 2]))?;
                    if !confirmed && expires.is_some_and(|e| e < now) {
                        return Err(token_expired());
                    }
                    t.execute(CONFIRM, &[&arn, &authenticated, &auth_on_unsubscribe])?;
                    return Ok(arn);
                }
                let Some(row) = t.query_opt(UNSUBSCRIBED_BY_TOKEN, &[&hash, &topic_arn])? else {
                    return Err(invalid("Token: invalid token"));
                };
                let gone = t.decode((|| -> Result<_, postgres::Error> {
                    Ok((
                        row.try_get::<_, String>(0)?,
                        row.try_get::<_, String>(1)?,
                        row.try_get::<_, String>(2)?,
                        row.try_get::<_, String>(3)?,
                        row.try_get::<_, bool>(4)?,
                        row.try_get::<_, Option<String>>(5)?,
                        row.try_get::<_, i64>(6)?,
                    ))
                })())?;
                let (arn, owner, protocol, endpoint, raw, policy, expires) = gone;
                if expires < now {
                    return Err(token_expired());
                }
                t.execute(DELETE_UNSUBSCRIBED, &[&arn])?;
                if let Some(row) = t.query_opt(
                    SUBSCRIPTION_ARN_BY_ENDPOINT,
                    &[&topic_arn, &protocol, &endpoint],
                )? {
                    return t.decode(row.try_get(0));
                }
                check_subscription_limit(t, &topic_arn)?;
                t.execute(
                    RESTORE_SUBSCRIPTION,
                    &[
                        &arn,
                        &topic_arn,
                        &owner,
                        &protocol,
                        &endpoint,
                        &raw,
                        &policy,
                        &authenticated,
                        &auth_on_unsubscribe.unwrap_or(false),
                        &now,
                    ],
                )?;
                Ok(arn)
            },
        )
    }

    pub(crate) fn unsubscribe(
        &self,
        arn: &str,
        requester: Option<&str>,
        now: i64,
    ) -> Result<Option<Subscription>, SnsError> {
        let arn = arn.to_owned();
        let requester = requester.map(str::to_owned);
        self.write(
            "unsubscribing",
            &[
                SUBSCRIPTION,
                LOCK_TOPIC,
                LOCK_SUBSCRIPTION,
                SUBSCRIPTION_MESSAGES,
                LOCK_MESSAGES,
                DELETE_SUBSCRIPTION_DELIVERIES,
                DROP_DONE_MESSAGES,
                DELETE_SUBSCRIPTION,
                UPSERT_UNSUBSCRIBED,
                INSERT_MESSAGE,
                INSERT_DELIVERY,
            ],
            move |t| {
                // The topic's row first, then the subscription's: the order every
                // transaction that changes a topic's subscriptions locks them in.
                let Some(row) = t.query_opt(SUBSCRIPTION, &[&arn])? else {
                    return Ok(None);
                };
                let topic_arn: String = t.decode(row.try_get(1))?;
                let topic = t.query_opt(LOCK_TOPIC, &[&topic_arn])?;
                let topic_owner = topic
                    .map(|row| t.decode(topic_row(&row)))
                    .transpose()?
                    .map(|t| t.account);
                let Some(row) = t.query_opt(LOCK_SUBSCRIPTION, &[&arn])? else {
                    return Ok(None);
                };
                let s = t.decode(subscription_row(&row))?;
                let notify = unsubscribe_allowed(&s, requester.as_deref(), topic_owner.as_deref())?;
                remove_deliveries_of(t, &arn)?;
                t.execute(DELETE_SUBSCRIPTION, &[&arn])?;
                if notify {
                    let token = Token::generate()?;
                    t.execute(
                        UPSERT_UNSUBSCRIBED,
                        &[
                            &s.arn,
                            &s.topic_arn,
                            &s.owner,
                            &s.protocol,
                            &s.endpoint,
                            &s.raw,
                            &s.delivery_policy,
                            &Token::hash(&token.0),
                            &(now + lifetime_ms()),
                        ],
                    )?;
                    enqueue_confirmation(
                        t,
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
            },
        )
    }

    pub(crate) fn subscription(&self, arn: &str) -> Result<Option<Subscription>, SnsError> {
        let arn = arn.to_owned();
        self.read("reading a subscription", move |r| {
            let row = r.query_opt(SUBSCRIPTION, &[&arn])?;
            row.map(|row| r.decode(subscription_row(&row))).transpose()
        })
    }

    pub(crate) fn set_subscription_attribute(
        &self,
        arn: &str,
        field: SubscriptionField,
        raw: bool,
        policy: Option<&str>,
    ) -> Result<(), SnsError> {
        let arn = arn.to_owned();
        let policy = policy.map(str::to_owned);
        let n = self.read("setting a subscription attribute", move |r| match field {
            SubscriptionField::RawMessageDelivery => r.execute(SET_RAW, &[&arn, &raw]),
            SubscriptionField::DeliveryPolicy => {
                r.execute(SET_SUBSCRIPTION_DELIVERY_POLICY, &[&arn, &policy])
            }
        })?;
        if n == 0 {
            return Err(subscription_not_found());
        }
        Ok(())
    }

    pub(crate) fn list_subscriptions(
        &self,
        owner: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Subscription>, SnsError> {
        let (owner, region) = (owner.to_owned(), region.to_owned());
        let after = after.unwrap_or("").to_owned();
        let limit = to_i64(limit);
        self.read("listing subscriptions", move |r| {
            let rows = r.query(LIST_SUBSCRIPTIONS, &[&owner, &region, &after, &limit])?;
            rows.iter()
                .map(|row| r.decode(subscription_row(row)))
                .collect()
        })
    }

    pub(crate) fn list_subscriptions_by_topic(
        &self,
        topic_arn: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Subscription>, SnsError> {
        let topic_arn = topic_arn.to_owned();
        let after = after.unwrap_or("").to_owned();
        let limit = to_i64(limit);
        self.read("listing a topic's subscriptions", move |r| {
            if r.query_opt(TOPIC, &[&topic_arn])?.is_none() {
                return Err(topic_not_found());
            }
            let rows = r.query(LIST_SUBSCRIPTIONS_BY_TOPIC, &[&topic_arn, &after, &limit])?;
            rows.iter()
                .map(|row| r.decode(subscription_row(row)))
                .collect()
        })
    }

    // ---- publishing and delivering ----

    pub(crate) fn publish(
        &self,
        topic_arn: &str,
        message: &NewMessage,
        now: i64,
    ) -> Result<String, SnsError> {
        let id = uuid::Uuid::new_v4().to_string();
        let topic_arn = topic_arn.to_owned();
        let message = message.clone();
        let attributes = serde_json::to_string(&message.attributes)
            .map_err(|_| SnsError::Damaged("encoding message attributes".to_owned()))?;
        self.write(
            "publishing",
            &[
                LOCK_TOPIC,
                COUNT_CONFIRMED,
                QUEUE_SIZE,
                INSERT_MESSAGE,
                FAN_OUT,
            ],
            move |t| {
                if t.query_opt(LOCK_TOPIC, &[&topic_arn])?.is_none() {
                    return Err(topic_not_found());
                }
                // The topic's lock keeps its subscriptions as counted until the commit.
                let subscribers: i64 = {
                    let row = t.query_one(COUNT_CONFIRMED, &[&topic_arn])?;
                    t.decode(row.try_get(0))?
                };
                if subscribers == 0 {
                    return Ok(id.clone());
                }
                let fan_out = usize::try_from(subscribers).unwrap_or(usize::MAX);
                check_queue(t, &topic_arn, fan_out, message.size)?;
                t.execute(
                    INSERT_MESSAGE,
                    &[
                        &id,
                        &topic_arn,
                        &MessageKind::Notification.as_str(),
                        &message.subject,
                        &message.body.as_bytes(),
                        &message.structure_json,
                        &attributes,
                        &None::<String>,
                        &now,
                        &to_i64(message.size),
                    ],
                )?;
                t.execute(FAN_OUT, &[&id, &topic_arn, &now])?;
                Ok(id.clone())
            },
        )
    }

    /// Claims up to `limit` due deliveries not in `skip` for `lease` (see [`CLAIM`]).
    pub(crate) fn due(
        &self,
        now: i64,
        limit: usize,
        skip: &HashSet<i64>,
        lease: Duration,
    ) -> Result<Due, SnsError> {
        if limit == 0 {
            return Ok(Due::default());
        }
        let token = uuid::Uuid::new_v4().to_string();
        let node = self.node.clone();
        let skip: Vec<i64> = skip.iter().copied().collect();
        let limit = to_i64(limit);
        let lease = lease_ms(lease);
        let rows = self.read("claiming due deliveries", {
            let token = token.clone();
            move |r| r.query(CLAIM, &[&now, &limit, &node, &token, &lease, &skip])
        })?;
        let mut out = Due::default();
        for row in &rows {
            match decode_job(row, &token) {
                Ok(job) => out.jobs.push(job),
                Err(e) => {
                    let id: Option<i64> = row.try_get(0).ok();
                    tracing::error!(delivery = ?id, error = %e, "a queued SNS delivery is damaged");
                    if let Some(id) = id {
                        out.damaged.push(Claim {
                            id,
                            lease: Some(token.clone()),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn next_due(&self, skip: &HashSet<i64>) -> Result<Option<i64>, SnsError> {
        let skip: Vec<i64> = skip.iter().copied().collect();
        self.read("reading the next due delivery", move |r| {
            let row = r.query_one(NEXT_DUE, &[&skip])?;
            r.decode(row.try_get(0))
        })
    }

    pub(crate) fn delivered(&self, claim: &Claim) -> Result<(), SnsError> {
        let claim = claim.clone();
        self.write(
            "recording a delivery",
            &[CLAIMED, LOCK_MESSAGE, DELETE_CLAIMED, DROP_DONE_MESSAGES],
            move |t| {
                let Some(row) = t.query_opt(CLAIMED, &[&claim.id, &claim.lease])? else {
                    // Gone (unsubscribed, its topic deleted) or claimed again after the
                    // lease expired: the other claim's outcome counts.
                    return Ok(());
                };
                let message: String = t.decode(row.try_get(0))?;
                t.query_opt(LOCK_MESSAGE, &[&message])?;
                if t.execute(DELETE_CLAIMED, &[&claim.id, &claim.lease])? == 0 {
                    return Ok(());
                }
                t.execute(DROP_DONE_MESSAGES, &[&vec![message]])?;
                Ok(())
            },
        )
    }

    pub(crate) fn retry_later(
        &self,
        claim: &Claim,
        due_at: i64,
        error: &str,
    ) -> Result<(), SnsError> {
        let claim = claim.clone();
        let error = error.to_owned();
        self.read("rescheduling a delivery", move |r| {
            r.execute(RETRY, &[&claim.id, &claim.lease, &due_at, &error])
                .map(drop)
        })
    }

    pub(crate) fn dead_letter(&self, claim: &Claim, error: &str, now: i64) -> Result<(), SnsError> {
        let claim = claim.clone();
        let error = error.to_owned();
        let keep = to_i64(MAX_DEAD_LETTERS_PER_TOPIC);
        self.write(
            "dead-lettering a delivery",
            &[
                CLAIMED,
                LOCK_TOPIC,
                LOCK_MESSAGE,
                DEAD_LETTER,
                DELETE_CLAIMED,
                DROP_DONE_MESSAGES,
                TRIM_DEAD_LETTERS,
            ],
            move |t| {
                let Some(row) = t.query_opt(CLAIMED, &[&claim.id, &claim.lease])? else {
                    return Ok(());
                };
                let (message, topic): (String, String) = t.decode(two(&row, [0, 1]))?;
                // The topic's lock keeps its dead letters within their bound.
                t.query_opt(LOCK_TOPIC, &[&topic])?;
                t.query_opt(LOCK_MESSAGE, &[&message])?;
                let moved = t.execute(DEAD_LETTER, &[&claim.id, &claim.lease, &error, &now])?;
                t.execute(DELETE_CLAIMED, &[&claim.id, &claim.lease])?;
                if moved > 0 {
                    t.execute(DROP_DONE_MESSAGES, &[&vec![message]])?;
                    t.execute(TRIM_DEAD_LETTERS, &[&topic, &keep])?;
                }
                Ok(())
            },
        )
    }

    pub(crate) fn release(&self, claims: &[Claim]) -> Result<(), SnsError> {
        let (ids, tokens): (Vec<i64>, Vec<String>) = claims
            .iter()
            .filter_map(|c| c.lease.clone().map(|l| (c.id, l)))
            .unzip();
        if ids.is_empty() {
            return Ok(());
        }
        self.read("releasing claimed deliveries", move |r| {
            r.execute(RELEASE, &[&ids, &tokens]).map(drop)
        })
    }

    pub(crate) fn dead_letters(&self, topic_arn: &str) -> Result<Vec<DeadLetter>, SnsError> {
        let topic_arn = topic_arn.to_owned();
        self.read("reading dead letters", move |r| {
            let rows = r.query(DEAD_LETTERS, &[&topic_arn])?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let (body, attributes, attempts): (Vec<u8>, String, i64) =
                    r.decode(three(row, [8, 9, 10]))?;
                out.push(DeadLetter {
                    id: r.decode(row.try_get(0))?,
                    topic_arn: r.decode(row.try_get(1))?,
                    subscription_arn: r.decode(row.try_get(2))?,
                    protocol: r.decode(row.try_get(3))?,
                    endpoint: r.decode(row.try_get(4))?,
                    message_id: r.decode(row.try_get(5))?,
                    message_type: r.decode(row.try_get(6))?,
                    subject: r.decode(row.try_get(7))?,
                    message: String::from_utf8_lossy(&body).into_owned(),
                    attributes: decode_attributes(&attributes).unwrap_or_default(),
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    last_error: r.decode(row.try_get(11))?,
                    failed_at_ms: r.decode(row.try_get(12))?,
                });
            }
            Ok(out)
        })
    }

    pub(crate) fn pending_deliveries(&self, topic_arn: &str) -> Result<u64, SnsError> {
        let topic_arn = topic_arn.to_owned();
        self.read("counting deliveries", move |r| {
            let row = r.query_one(PENDING, &[&topic_arn])?;
            r.decode(row.try_get::<_, i64>(0)).map(i64::unsigned_abs)
        })
    }

    pub(crate) fn purge_expired(&self, now: i64) -> Result<usize, SnsError> {
        self.write(
            "purging expired confirmations",
            &[
                EXPIRED,
                LOCK_TOPIC,
                LOCK_EXPIRED,
                SUBSCRIPTION_MESSAGES,
                LOCK_MESSAGES,
                DELETE_SUBSCRIPTION_DELIVERIES,
                DROP_DONE_MESSAGES,
                DELETE_SUBSCRIPTION,
                PURGE_UNSUBSCRIBED,
            ],
            move |t| {
                let rows = t.query(EXPIRED, &[&now])?;
                let expired = t.decode(pairs(&rows))?;
                let mut purged = 0;
                // In topic order, each topic's row before its subscription's, as every
                // transaction changing a topic's subscriptions locks them.
                for (arn, topic) in &expired {
                    t.query_opt(LOCK_TOPIC, &[topic])?;
                    if t.query_opt(LOCK_EXPIRED, &[arn, &now])?.is_none() {
                        continue;
                    }
                    remove_deliveries_of(t, arn)?;
                    t.execute(DELETE_SUBSCRIPTION, &[arn])?;
                    purged += 1;
                }
                t.execute(PURGE_UNSUBSCRIBED, &[&now])?;
                Ok(purged)
            },
        )
    }
}

impl PgStore {
    /// Copies a node's `sns.db`, read into `file`, into the shared store in one
    /// transaction, with the rules of [`crate::import`]: what an earlier import of the
    /// same file recorded is not copied again, each bound is counted under the lock the
    /// API's writes take, and what does not fit is counted as left. Records what it
    /// copied (or, when nothing is left, that the file is done) in the same transaction.
    pub(crate) fn import(&self, file: Arc<FileState>, now: i64) -> Result<ImportReport, SnsError> {
        self.write(
            "importing a node's SNS file",
            &[
                TAKE_LOCK,
                IMPORTED_ITEMS,
                LOCK_TOPIC,
                COUNT_TOPICS,
                INSERT_TOPIC,
                INSERT_TAGS,
                SUBSCRIPTION_BY_ENDPOINT,
                COUNT_SUBSCRIPTIONS,
                IMPORT_SUBSCRIPTION,
                IMPORT_UNSUBSCRIBED,
                QUEUE_SIZE,
                MESSAGE_STORED,
                IMPORT_MESSAGE,
                IMPORT_DELIVERY,
                COUNT_DEAD_LETTERS,
                IMPORT_DEAD_LETTER,
                FORGET_IMPORTED,
                RECORD_IMPORTED,
            ],
            move |t| import_file(t, &file, now),
        )
    }
}

/// Where a file's subscription stands in the shared store.
enum Target {
    /// This stored subscription stands for it: the file's own (`own`, the same ARN), or
    /// another node's of the same topic, protocol and endpoint.
    Stored {
        arn: String,
        confirmed: bool,
        own: bool,
    },
    /// Not copied: no room.
    Left,
    /// Copied by an earlier import and removed since.
    Gone,
}

/// One import's transaction (see [`PgStore::import`]); safe to run again.
fn import_file(t: &mut Tx<'_, '_>, file: &FileState, now: i64) -> Result<ImportReport, SnsError> {
    let mut report = ImportReport {
        found: true,
        ..ImportReport::default()
    };
    t.execute(TAKE_LOCK, &[&file_import_lock(&file.id)])?;
    let done: HashSet<String> = {
        let rows = t.query(IMPORTED_ITEMS, &[&file.id])?;
        rows.iter()
            .map(|r| t.decode(r.try_get(0)))
            .collect::<Result<_, _>>()?
    };
    if done.contains(IMPORT_COMPLETE) {
        report.already_imported = true;
        return Ok(report);
    }
    report.skipped += file.orphans;
    // The accounts' topic locks first, in order: creations of their topics wait for this
    // import, and this import counts their topics exactly.
    let owners: std::collections::BTreeSet<(&str, &str)> = file
        .topics
        .iter()
        .map(|t| (t.account.as_str(), t.region.as_str()))
        .collect();
    for (account, region) in owners {
        t.execute(TAKE_LOCK, &[&topics_lock(account, region)])?;
    }
    let mut record: Vec<String> = Vec::new();
    for topic in &file.topics {
        let key = format!("topic:{}", topic.arn);
        let recorded = done.contains(&key);
        // The topic's row, locked as every write adding to a topic locks it.
        let exists = t.query_opt(LOCK_TOPIC, &[&topic.arn])?.is_some();
        let remaining = Remaining::of(topic, &done);
        if !exists && recorded {
            // Deleted since an earlier import copied it: what was queued for it would
            // have gone with it.
            report.skipped += remaining.deliveries + remaining.dead_letters;
            continue;
        }
        if exists && !recorded {
            report.topics_existing += 1;
            record.push(key);
        } else if !exists {
            let count: i64 = {
                let row = t.query_one(COUNT_TOPICS, &[&topic.account, &topic.region])?;
                t.decode(row.try_get(0))?
            };
            if check_topic_count(count).is_err() {
                report.left.topics += 1;
                report.left.subscriptions += remaining.subscriptions;
                report.left.deliveries += remaining.deliveries;
                report.left.dead_letters += remaining.dead_letters;
                report.left_topics.push(topic.arn.clone());
                continue;
            }
            t.execute(
                INSERT_TOPIC,
                &[
                    &topic.arn,
                    &topic.account,
                    &topic.region,
                    &topic.name,
                    &topic.display_name,
                    &topic.policy,
                    &topic.delivery_policy,
                    &topic.created_at,
                ],
            )?;
            if !topic.tags.is_empty() {
                let (keys, values): (Vec<String>, Vec<String>) = topic.tags.iter().cloned().unzip();
                t.execute(INSERT_TAGS, &[&topic.arn, &keys, &values])?;
            }
            report.topics += 1;
            record.push(key);
        }
        let before = report.left;
        import_topic_rows(t, file, topic, &done, &mut record, &mut report)?;
        if report.left != before {
            report.left_topics.push(topic.arn.clone());
        }
    }
    if report.is_complete() {
        t.execute(FORGET_IMPORTED, &[&file.id])?;
        record = vec![IMPORT_COMPLETE.to_owned()];
    }
    t.execute(RECORD_IMPORTED, &[&file.id, &record, &now])?;
    Ok(report)
}

/// What of a topic's rows no earlier import of the file copied.
struct Remaining {
    subscriptions: usize,
    deliveries: usize,
    dead_letters: usize,
}

impl Remaining {
    fn of(topic: &FileTopic, done: &HashSet<String>) -> Remaining {
        let not_done = |key: String| !done.contains(&key);
        Remaining {
            subscriptions: topic
                .subscriptions
                .iter()
                .filter(|s| not_done(format!("subscription:{}", s.arn)))
                .count(),
            deliveries: topic
                .deliveries
                .iter()
                .filter(|d| not_done(format!("delivery:{}", d.id)))
                .count(),
            dead_letters: topic
                .dead_letters
                .iter()
                .filter(|d| not_done(format!("dead-letter:{}", d.id)))
                .count(),
        }
    }
}

/// Copies a topic's subscriptions, restorable unsubscriptions, queued deliveries and dead
/// letters; the caller holds the topic's lock (it exists).
fn import_topic_rows(
    t: &mut Tx<'_, '_>,
    file: &FileState,
    topic: &FileTopic,
    done: &HashSet<String>,
    record: &mut Vec<String>,
    report: &mut ImportReport,
) -> Result<(), SnsError> {
    let mut targets: HashMap<&str, Target> = HashMap::new();
    for s in &topic.subscriptions {
        let key = format!("subscription:{}", s.arn);
        let recorded = done.contains(&key);
        let stored = t.query_opt(
            SUBSCRIPTION_BY_ENDPOINT,
            &[&topic.arn, &s.protocol, &s.endpoint],
        )?;
        let target = if let Some(row) = stored {
            let stored = t.decode(subscription_row(&row))?;
            if !recorded {
                report.subscriptions_existing += 1;
                record.push(key);
            }
            Target::Stored {
                own: stored.arn == s.arn,
                arn: stored.arn,
                confirmed: stored.confirmed,
            }
        } else if recorded {
            Target::Gone
        } else if check_subscription_limit(t, &topic.arn).is_err() {
            report.left.subscriptions += 1;
            Target::Left
        } else {
            t.execute(
                IMPORT_SUBSCRIPTION,
                &[
                    &s.arn,
                    &topic.arn,
                    &s.owner,
                    &s.protocol,
                    &s.endpoint,
                    &s.raw,
                    &s.delivery_policy,
                    &s.confirmed,
                    &s.token_hash,
                    &s.token_expires_at,
                    &s.authenticated,
                    &s.auth_on_unsubscribe,
                    &s.created_at,
                ],
            )?;
            report.subscriptions += 1;
            record.push(key);
            Target::Stored {
                arn: s.arn.clone(),
                confirmed: s.confirmed,
                own: true,
            }
        };
        targets.insert(s.arn.as_str(), target);
    }

    for u in &topic.unsubscribed {
        let key = format!("unsubscribed:{}", u.arn);
        if done.contains(&key) {
            continue;
        }
        let added = t.execute(
            IMPORT_UNSUBSCRIBED,
            &[
                &u.arn,
                &topic.arn,
                &u.owner,
                &u.protocol,
                &u.endpoint,
                &u.raw,
                &u.delivery_policy,
                &u.token_hash,
                &u.token_expires_at,
            ],
        )?;
        report.unsubscriptions += usize::try_from(added).unwrap_or(0);
        record.push(key);
    }

    // The topic's lock keeps its queue as measured: nothing else adds to it until the
    // commit (a delivery made meanwhile only leaves more room).
    let (mut queued, mut stored): (i64, i64) = {
        let row = t.query_one(QUEUE_SIZE, &[&topic.arn])?;
        t.decode(two(&row, [0, 1]))?
    };
    for d in &topic.deliveries {
        let key = format!("delivery:{}", d.id);
        if done.contains(&key) {
            continue;
        }
        let Some(message) = file.messages.get(&d.message_id) else {
            report.skipped += 1;
            continue;
        };
        let notification = message.kind == MessageKind::Notification.as_str();
        let confirmation = message.kind == MessageKind::SubscriptionConfirmation.as_str();
        let subscription = match targets.get(d.subscription_arn.as_str()) {
            Some(Target::Left) => {
                report.left.deliveries += 1;
                continue;
            }
            Some(Target::Gone) => None,
            Some(Target::Stored {
                arn,
                confirmed,
                own,
            }) => {
                if notification {
                    confirmed.then_some(arn.as_str())
                } else if confirmation {
                    (*own && !*confirmed).then_some(arn.as_str())
                } else {
                    Some(d.subscription_arn.as_str())
                }
            }
            // An UnsubscribeConfirmation is sent for a subscription already removed; the
            // deliverer drops anything else whose subscription is gone.
            None => (!notification && !confirmation).then_some(d.subscription_arn.as_str()),
        };
        let Some(subscription) = subscription else {
            report.skipped += 1;
            continue;
        };
        let message_stored = t.query_opt(MESSAGE_STORED, &[&d.message_id])?.is_some();
        let size = message.size.max(0);
        let bytes = if message_stored { 0 } else { size };
        if check_queue_room(
            queued,
            stored,
            1,
            usize::try_from(bytes).unwrap_or(usize::MAX),
        )
        .is_err()
        {
            report.left.deliveries += 1;
            continue;
        }
        if !message_stored {
            t.execute(
                IMPORT_MESSAGE,
                &[
                    &d.message_id,
                    &topic.arn,
                    &message.kind,
                    &message.subject,
                    &message.body.as_bytes(),
                    &message.structure_json,
                    &message.attributes,
                    &message.token.as_ref().map(|t| t.0.as_str()),
                    &message.timestamp_ms,
                    &size,
                ],
            )?;
            stored = stored.saturating_add(size);
        }
        t.execute(
            IMPORT_DELIVERY,
            &[
                &d.message_id,
                &topic.arn,
                &subscription,
                &d.protocol,
                &d.endpoint,
                &d.attempts,
                &d.due_at,
                &d.last_error,
            ],
        )?;
        queued = queued.saturating_add(1);
        report.deliveries += 1;
        record.push(key);
    }

    // The newest of the file's dead letters that fit, oldest first: none of the stored
    // ones is pushed out.
    let waiting: Vec<&FileDeadLetter> = topic
        .dead_letters
        .iter()
        .filter(|d| !done.contains(&format!("dead-letter:{}", d.id)))
        .collect();
    let kept: i64 = {
        let row = t.query_one(COUNT_DEAD_LETTERS, &[&topic.arn])?;
        t.decode(row.try_get(0))?
    };
    let room =
        usize::try_from(to_i64(MAX_DEAD_LETTERS_PER_TOPIC).saturating_sub(kept)).unwrap_or(0);
    let first = waiting.len().saturating_sub(room);
    report.left.dead_letters += first;
    for d in waiting.iter().skip(first) {
        t.execute(
            IMPORT_DEAD_LETTER,
            &[
                &topic.arn,
                &d.subscription_arn,
                &d.protocol,
                &d.endpoint,
                &d.message_id,
                &d.kind,
                &d.subject,
                &d.body.as_bytes(),
                &d.attributes,
                &d.attempts,
                &d.last_error,
                &d.failed_at,
            ],
        )?;
        report.dead_letters += 1;
        record.push(format!("dead-letter:{}", d.id));
    }
    Ok(())
}

/// Refuses a new subscription past the topic's limit; the caller holds the topic's lock.
fn check_subscription_limit(t: &mut Tx<'_, '_>, topic_arn: &str) -> Result<(), SnsError> {
    let row = t.query_one(COUNT_SUBSCRIPTIONS, &[&topic_arn])?;
    check_subscription_count(t.decode(row.try_get(0))?)
}

/// Refuses with `Throttled` when the topic's queue has no room; the caller holds the
/// topic's lock.
fn check_queue(
    t: &mut Tx<'_, '_>,
    topic_arn: &str,
    deliveries: usize,
    bytes: usize,
) -> Result<(), SnsError> {
    let row = t.query_one(QUEUE_SIZE, &[&topic_arn])?;
    let (queued, stored): (i64, i64) = t.decode(two(&row, [0, 1]))?;
    check_queue_room(queued, stored, deliveries, bytes)
}

/// Removes a subscription's queued deliveries and the messages no delivery needs any
/// more: their messages' rows are locked first, so that a node recording the last other
/// delivery of one of them at the same time waits, and whichever removes the last one
/// drops the message.
fn remove_deliveries_of(t: &mut Tx<'_, '_>, subscription_arn: &str) -> Result<(), SnsError> {
    let rows = t.query(SUBSCRIPTION_MESSAGES, &[&subscription_arn])?;
    let messages: Vec<String> = rows
        .iter()
        .map(|r| t.decode(r.try_get(0)))
        .collect::<Result<_, _>>()?;
    if !messages.is_empty() {
        t.query(LOCK_MESSAGES, &[&messages])?;
    }
    t.execute(DELETE_SUBSCRIPTION_DELIVERIES, &[&subscription_arn])?;
    if !messages.is_empty() {
        t.execute(DROP_DONE_MESSAGES, &[&messages])?;
    }
    Ok(())
}

/// Queues a SubscriptionConfirmation or UnsubscribeConfirmation for one endpoint.
#[allow(
    clippy::too_many_arguments,
    reason = "one row's columns, each named at the call site"
)]
fn enqueue_confirmation(
    t: &mut Tx<'_, '_>,
    kind: MessageKind,
    topic_arn: &str,
    subscription_arn: &str,
    protocol: Protocol,
    endpoint: &str,
    token: &Token,
    now: i64,
) -> Result<(), SnsError> {
    let id = uuid::Uuid::new_v4().to_string();
    let text = match kind {
        MessageKind::UnsubscribeConfirmation => unsubscribe_text(subscription_arn),
        _ => subscribe_text(topic_arn),
    };
    t.execute(
        INSERT_MESSAGE,
        &[
            &id,
            &topic_arn,
            &kind.as_str(),
            &None::<String>,
            &text.as_bytes(),
            &false,
            &"[]",
            &token.0,
            &now,
            &to_i64(text.len()),
        ],
    )?;
    t.execute(
        INSERT_DELIVERY,
        &[
            &id,
            &topic_arn,
            &subscription_arn,
            &protocol.as_str(),
            &endpoint,
            &now,
        ],
    )?;
    Ok(())
}

// ---- the signing key, for the binary's master-key rotation ----

/// The cluster's SNS signing key as stored: the PKCS#8 key sealed by the [`KeySealer`]
/// of the node that offered it. `None` before any node opened the shared store.
pub fn signing_key(pool: &Pool) -> Result<Option<Vec<u8>>, SnsError> {
    pool.run(|conn| {
        let context = "reading the signing key";
        let st = conn.prepare(SIGNING_KEY).map_err(pg(context))?;
        let row = conn.client().query_opt(&st, &[]).map_err(pg(context))?;
        row.map(|r| r.try_get(0).map_err(pg(context))).transpose()
    })
}

/// Replaces the stored sealed signing key `old` with `new` (the same key sealed by another
/// sealer); `false`, changing nothing, if the stored one is not `old` (another node
/// resealed or offered it meanwhile).
pub fn replace_signing_key(pool: &Pool, old: &[u8], new: &[u8]) -> Result<bool, SnsError> {
    let (old, new) = (old.to_vec(), new.to_vec());
    pool.run(move |conn| {
        let context = "resealing the signing key";
        let st = conn.prepare(REPLACE_SIGNING_KEY).map_err(pg(context))?;
        let n = conn
            .client()
            .execute(&st, &[&old, &new])
            .map_err(pg(context))?;
        Ok(n == 1)
    })
}

/// Reseals the cluster's signing key from `old` to `new` (a master-key rotation):
/// reads the stored key, opens it with `old`, seals it with `new`, checks that `new` opens
/// it, and replaces the stored one only if it is still the one read (compare-and-set).
/// Returns `true` if it resealed, `false` if there is no key yet or it opens with `new`
/// already (a rotation run again). Fails if the key opens with neither, or if it changed
/// while it was resealed (run the rotation again).
pub fn reseal_signing_key(
    pool: &Pool,
    old: &dyn KeySealer,
    new: &dyn KeySealer,
) -> Result<bool, SnsError> {
    let Some(sealed) = signing_key(pool)? else {
        return Ok(false);
    };
    if new.unseal(&sealed).is_ok() {
        return Ok(false);
    }
    let plain = old.unseal(&sealed).map_err(|e| {
        SnsError::Signing(format!(
            "the shared signing key opens with neither the old nor the new sealer: {e}"
        ))
    })?;
    let resealed = new
        .seal(&plain)
        .map_err(|e| SnsError::Signing(format!("resealing the signing key failed: {e}")))?;
    match new.unseal(&resealed) {
        Ok(opened) if opened == plain => {}
        _ => {
            return Err(SnsError::Signing(
                "the new sealer does not open what it sealed".to_owned(),
            ))
        }
    }
    if !replace_signing_key(pool, &sealed, &resealed)? {
        return Err(SnsError::Signing(
            "the shared signing key changed while it was resealed: run the rotation again"
                .to_owned(),
        ));
    }
    Ok(true)
}

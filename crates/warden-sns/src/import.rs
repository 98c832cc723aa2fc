//! Moving a node's own `sns.db` into the shared store: the state a node of an earlier
//! release kept in its data directory, read from the file and copied into PostgreSQL when
//! the node first starts on the shared store ([`crate::Sns::import_file`]).
//!
//! # What is copied, and how conflicts resolve
//!
//! - **Topics**, with their `DisplayName`, `Policy`, `DeliveryPolicy`, tags and creation
//!   time. A topic of the same ARN (account, region and name) already in the shared store
//!   (made through another node, or imported from another node's file) is kept as it is:
//!   its attributes and tags are not changed, and the file's subscriptions, queued
//!   deliveries and dead letters are added to it.
//! - **Subscriptions**, with their ARN, owner, `RawMessageDelivery`, `DeliveryPolicy`,
//!   confirmation state, `ConfirmationWasAuthenticated`, `AuthenticateOnUnsubscribe` and,
//!   for a pending one, its token's hash and expiry (so a token the old node sent still
//!   confirms it, through any node). A subscription is the same as one already in the
//!   shared store when its topic, protocol and endpoint are: the stored one is kept as it
//!   is (ARN, state, attributes, token) and the file's is not added. Restorable
//!   unsubscriptions (the token of an UnsubscribeConfirmation) are copied if absent.
//! - **Queued deliveries**, with their message (subject, body, attributes, timestamp),
//!   attempts made, the time of the next attempt and the last error. A notification for a
//!   subscription that is the same as a stored one is queued for the stored one if that
//!   one is confirmed; a SubscriptionConfirmation is copied only while its own
//!   subscription, copied from the file, is pending. What the cluster would never deliver
//!   is *skipped* and counted in [`ImportReport::skipped`]: a confirmation of a
//!   subscription confirmed already, or replaced by the stored one (whose own token
//!   confirms it); a notification for an endpoint that has not confirmed its stored
//!   subscription (a Publish would not reach it either); rows of a subscription or topic
//!   removed since an earlier, partial import copied it; and rows of the file that belong
//!   to no topic of the file.
//! - **Dead letters**, as they are (their ids are new: they sort after the topic's
//!   existing dead letters).
//!
//! The file's signing key is not copied: the cluster signs with its own. Nothing queued
//! holds a signature; every attempt signs the message when it is made, with the
//! delivering node's key and `SigningCertURL`, so the copied deliveries are signed by the
//! cluster's key.
//!
//! # Bounds
//!
//! Everything copied is counted against the bounds of the shared store, under the same
//! locks as the API's writes: [`crate::MAX_TOPICS_PER_ACCOUNT`],
//! [`crate::MAX_SUBSCRIPTIONS_PER_TOPIC`], [`crate::MAX_PENDING_DELIVERIES_PER_TOPIC`],
//! [`crate::MAX_PENDING_BYTES_PER_TOPIC`] and [`crate::MAX_DEAD_LETTERS_PER_TOPIC`] (the
//! newest of the file's dead letters are copied first; none of the stored ones is pushed
//! out). What does not fit is left in the file and counted in [`ImportReport::left`]: a
//! topic that does not fit with everything of it, a subscription with its deliveries,
//! deliveries (earliest due first copied) and dead letters. The file is then kept under
//! its name, and the next start copies what fits by then.
//!
//! # Crash safety
//!
//! Everything is copied in one PostgreSQL transaction, which also records, in
//! `sns_file_imports`, what it copied under the file's fingerprint (a SHA-256 over its
//! rows and its signing certificate: the same for a copy of the file, different for any
//! other). A run copies only what no earlier run recorded, and when nothing is left
//! records the file as done; only after that commit is the file renamed to
//! `sns.db.imported`. A process that dies before the commit copied nothing; one that dies
//! after it finds the file done (or partly copied) at the next start and copies nothing
//! twice, even what the cluster delivered in between.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::error::{db, SnsError};
use crate::store::Token;

/// What [`crate::Sns::import_file`] did. Holds counts and topic ARNs only: no message
/// body, endpoint or token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The file existed (nothing else is set when it did not).
    pub found: bool,
    /// An earlier run had copied the file completely (the process stopped before it was
    /// renamed): nothing was copied this time, and the file was renamed.
    pub already_imported: bool,
    /// Topics added to the shared store.
    pub topics: usize,
    /// Topics of the file already in the shared store, kept as they were.
    pub topics_existing: usize,
    /// Subscriptions added.
    pub subscriptions: usize,
    /// Subscriptions of the file whose topic, protocol and endpoint a stored subscription
    /// already has: the stored one was kept.
    pub subscriptions_existing: usize,
    /// Restorable unsubscriptions added.
    pub unsubscriptions: usize,
    /// Queued deliveries added.
    pub deliveries: usize,
    /// Dead letters added.
    pub dead_letters: usize,
    /// Deliveries and dead letters not copied because the cluster would never make or
    /// keep them (see the module's documentation).
    pub skipped: usize,
    /// What did not fit within the shared store's bounds and stays in the file.
    pub left: Leftover,
    /// The topics of which something stays in the file, by ARN.
    pub left_topics: Vec<String>,
    /// Where the file was moved once everything was copied; `None` while something is
    /// left in it.
    pub moved_to: Option<PathBuf>,
}

impl ImportReport {
    /// Whether everything the file held is in the shared store (or was skipped as
    /// described), so that the file was moved aside.
    pub fn is_complete(&self) -> bool {
        self.left == Leftover::default()
    }
}

/// What stays in the file because the shared store's bounds leave no room for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leftover {
    /// Topics past [`crate::MAX_TOPICS_PER_ACCOUNT`] (everything of them stays too).
    pub topics: usize,
    /// Subscriptions past [`crate::MAX_SUBSCRIPTIONS_PER_TOPIC`].
    pub subscriptions: usize,
    /// Deliveries past the topic's queue bounds, or of a subscription or topic left.
    pub deliveries: usize,
    /// Dead letters past [`crate::MAX_DEAD_LETTERS_PER_TOPIC`], or of a topic left.
    pub dead_letters: usize,
}

/// Everything a node's `sns.db` holds that moves, grouped by topic, with the file's
/// fingerprint.
pub(crate) struct FileState {
    /// The fingerprint, hex: what the shared store records the file's import under.
    pub id: String,
    /// The topics, by ARN.
    pub topics: Vec<FileTopic>,
    /// The messages the deliveries need, by id.
    pub messages: BTreeMap<String, FileMessage>,
    /// Deliveries and dead letters whose topic is not in the file.
    pub orphans: usize,
}

pub(crate) struct FileTopic {
    pub arn: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub display_name: String,
    pub policy: Option<String>,
    pub delivery_policy: Option<String>,
    pub created_at: i64,
    pub tags: Vec<(String, String)>,
    pub subscriptions: Vec<FileSubscription>,
    pub unsubscribed: Vec<FileUnsubscribed>,
    /// Earliest due first.
    pub deliveries: Vec<FileDelivery>,
    /// Oldest first.
    pub dead_letters: Vec<FileDeadLetter>,
}

pub(crate) struct FileSubscription {
    pub arn: String,
    pub owner: String,
    pub protocol: String,
    pub endpoint: String,
    pub raw: bool,
    pub delivery_policy: Option<String>,
    pub confirmed: bool,
    pub token_hash: Option<Vec<u8>>,
    pub token_expires_at: Option<i64>,
    pub authenticated: bool,
    pub auth_on_unsubscribe: bool,
    pub created_at: i64,
}

pub(crate) struct FileUnsubscribed {
    pub arn: String,
    pub owner: String,
    pub protocol: String,
    pub endpoint: String,
    pub raw: bool,
    pub delivery_policy: Option<String>,
    pub token_hash: Vec<u8>,
    pub token_expires_at: i64,
}

pub(crate) struct FileMessage {
    pub kind: String,
    pub subject: Option<String>,
    pub body: String,
    pub structure_json: bool,
    pub attributes: String,
    pub token: Option<Token>,
    pub timestamp_ms: i64,
    pub size: i64,
}

pub(crate) struct FileDelivery {
    pub id: i64,
    pub message_id: String,
    pub subscription_arn: String,
    pub protocol: String,
    pub endpoint: String,
    pub attempts: i64,
    pub due_at: i64,
    pub last_error: Option<String>,
}

pub(crate) struct FileDeadLetter {
    pub id: i64,
    pub subscription_arn: String,
    pub protocol: String,
    pub endpoint: String,
    pub message_id: String,
    pub kind: String,
    pub subject: Option<String>,
    pub body: String,
    pub attributes: String,
    pub attempts: i64,
    pub last_error: String,
    pub failed_at: i64,
}

/// A SHA-256 over fields, each length-prefixed so that no two sequences of fields feed
/// the same bytes.
struct Fingerprint(aws_lc_rs::digest::Context);

impl Fingerprint {
    fn new() -> Fingerprint {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(b"warden-sns file v1\0");
        Fingerprint(ctx)
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0
            .update(&u64::try_from(b.len()).unwrap_or(u64::MAX).to_be_bytes());
        self.0.update(b);
    }

    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            None => self.0.update(b"-"),
            Some(s) => {
                self.0.update(b"+");
                self.text(s);
            }
        }
    }

    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.0.update(b"-"),
            Some(b) => {
                self.0.update(b"+");
                self.bytes(b);
            }
        }
    }

    fn int(&mut self, n: i64) {
        self.0.update(&n.to_be_bytes());
    }

    fn opt_int(&mut self, n: Option<i64>) {
        match n {
            None => self.0.update(b"-"),
            Some(n) => {
                self.0.update(b"+");
                self.int(n);
            }
        }
    }

    fn flag(&mut self, b: bool) {
        self.0.update(&[u8::from(b)]);
    }

    /// Starts a table's rows.
    fn table(&mut self, name: &str) {
        self.0.update(b"\0table\0");
        self.text(name);
    }

    fn finish(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

/// Collects one query's rows.
fn rows<T>(
    c: &Connection,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, SnsError> {
    const C: &str = "reading the node's SNS file";
    let mut stmt = c.prepare(sql).map_err(db(C))?;
    let rows = stmt.query_map([], f).map_err(db(C))?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db(C))
}

/// Reads everything that moves from a node's `sns.db` (opened on `c`), in key order, and
/// its fingerprint.
pub(crate) fn read_file(c: &Connection) -> Result<FileState, SnsError> {
    let mut fp = Fingerprint::new();

    let certs: Vec<Vec<u8>> = rows(c, "SELECT cert_der FROM signing_key ORDER BY id", |r| {
        r.get(0)
    })?;
    fp.table("signing_key");
    for cert in &certs {
        fp.bytes(cert);
    }

    let mut topics: Vec<FileTopic> = rows(
        c,
        "SELECT arn, account, region, name, display_name, policy, delivery_policy, created_at \
         FROM topics ORDER BY arn",
        |r| {
            Ok(FileTopic {
                arn: r.get(0)?,
                account: r.get(1)?,
                region: r.get(2)?,
                name: r.get(3)?,
                display_name: r.get(4)?,
                policy: r.get(5)?,
                delivery_policy: r.get(6)?,
                created_at: r.get(7)?,
                tags: Vec::new(),
                subscriptions: Vec::new(),
                unsubscribed: Vec::new(),
                deliveries: Vec::new(),
                dead_letters: Vec::new(),
            })
        },
    )?;
    fp.table("topics");
    for t in &topics {
        fp.text(&t.arn);
        fp.text(&t.account);
        fp.text(&t.region);
        fp.text(&t.name);
        fp.text(&t.display_name);
        fp.opt_text(t.policy.as_deref());
        fp.opt_text(t.delivery_policy.as_deref());
        fp.int(t.created_at);
    }
    let index: BTreeMap<String, usize> = topics
        .iter()
        .enumerate()
        .map(|(i, t)| (t.arn.clone(), i))
        .collect();
    let mut orphans = 0;

    let tags: Vec<(String, String, String)> = rows(
        c,
        "SELECT topic_arn, key, value FROM topic_tags ORDER BY topic_arn, key",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    fp.table("topic_tags");
    for (topic, key, value) in tags {
        fp.text(&topic);
        fp.text(&key);
        fp.text(&value);
        if let Some(t) = index.get(&topic).and_then(|&i| topics.get_mut(i)) {
            t.tags.push((key, value));
        }
    }

    let subscriptions: Vec<(String, FileSubscription)> = rows(
        c,
        "SELECT topic_arn, arn, owner, protocol, endpoint, raw, delivery_policy, confirmed, \
         token_hash, token_expires_at, authenticated, auth_on_unsubscribe, created_at \
         FROM subscriptions ORDER BY arn",
        |r| {
            Ok((
                r.get(0)?,
                FileSubscription {
                    arn: r.get(1)?,
                    owner: r.get(2)?,
                    protocol: r.get(3)?,
                    endpoint: r.get(4)?,
                    raw: r.get(5)?,
                    delivery_policy: r.get(6)?,
                    confirmed: r.get(7)?,
                    token_hash: r.get(8)?,
                    token_expires_at: r.get(9)?,
                    authenticated: r.get(10)?,
                    auth_on_unsubscribe: r.get(11)?,
                    created_at: r.get(12)?,
                },
            ))
        },
    )?;
    fp.table("subscriptions");
    for (topic, s) in subscriptions {
        fp.text(&topic);
        fp.text(&s.arn);
        fp.text(&s.owner);
        fp.text(&s.protocol);
        fp.text(&s.endpoint);
        fp.flag(s.raw);
        fp.opt_text(s.delivery_policy.as_deref());
        fp.flag(s.confirmed);
        fp.opt_bytes(s.token_hash.as_deref());
        fp.opt_int(s.token_expires_at);
        fp.flag(s.authenticated);
        fp.flag(s.auth_on_unsubscribe);
        fp.int(s.created_at);
        // The schema cascades a topic's deletion to its subscriptions: every one has a
        // topic in the file.
        if let Some(t) = index.get(&topic).and_then(|&i| topics.get_mut(i)) {
            t.subscriptions.push(s);
        }
    }

    let unsubscribed: Vec<(String, FileUnsubscribed)> = rows(
        c,
        "SELECT topic_arn, arn, owner, protocol, endpoint, raw, delivery_policy, token_hash, \
         token_expires_at FROM unsubscribed ORDER BY arn",
        |r| {
            Ok((
                r.get(0)?,
                FileUnsubscribed {
                    arn: r.get(1)?,
                    owner: r.get(2)?,
                    protocol: r.get(3)?,
                    endpoint: r.get(4)?,
                    raw: r.get(5)?,
                    delivery_policy: r.get(6)?,
                    token_hash: r.get(7)?,
                    token_expires_at: r.get(8)?,
                },
            ))
        },
    )?;
    fp.table("unsubscribed");
    for (topic, u) in unsubscribed {
        fp.text(&topic);
        fp.text(&u.arn);
        fp.text(&u.owner);
        fp.text(&u.protocol);
        fp.text(&u.endpoint);
        fp.flag(u.raw);
        fp.opt_text(u.delivery_policy.as_deref());
        fp.bytes(&u.token_hash);
        fp.int(u.token_expires_at);
        if let Some(t) = index.get(&topic).and_then(|&i| topics.get_mut(i)) {
            t.unsubscribed.push(u);
        }
    }

    let messages: Vec<(String, FileMessage)> = rows(
        c,
        "SELECT id, kind, subject, body, structure_json, attributes, token, timestamp_ms, size \
         FROM messages WHERE id IN (SELECT message_id FROM deliveries) ORDER BY id",
        |r| {
            Ok((
                r.get(0)?,
                FileMessage {
                    kind: r.get(1)?,
                    subject: r.get(2)?,
                    body: r.get(3)?,
                    structure_json: r.get(4)?,
                    attributes: r.get(5)?,
                    token: r.get::<_, Option<String>>(6)?.map(Token),
                    timestamp_ms: r.get(7)?,
                    size: r.get(8)?,
                },
            ))
        },
    )?;
    fp.table("messages");
    for (id, m) in &messages {
        fp.text(id);
        fp.text(&m.kind);
        fp.opt_text(m.subject.as_deref());
        fp.text(&m.body);
        fp.flag(m.structure_json);
        fp.text(&m.attributes);
        fp.opt_text(m.token.as_ref().map(|t| t.0.as_str()));
        fp.int(m.timestamp_ms);
        fp.int(m.size);
    }
    let messages: BTreeMap<String, FileMessage> = messages.into_iter().collect();

    let deliveries: Vec<(String, FileDelivery)> = rows(
        c,
        "SELECT topic_arn, id, message_id, subscription_arn, protocol, endpoint, attempts, \
         due_at, last_error FROM deliveries ORDER BY due_at, id",
        |r| {
            Ok((
                r.get(0)?,
                FileDelivery {
                    id: r.get(1)?,
                    message_id: r.get(2)?,
                    subscription_arn: r.get(3)?,
                    protocol: r.get(4)?,
                    endpoint: r.get(5)?,
                    attempts: r.get(6)?,
                    due_at: r.get(7)?,
                    last_error: r.get(8)?,
                },
            ))
        },
    )?;
    fp.table("deliveries");
    for (topic, d) in deliveries {
        fp.text(&topic);
        fp.int(d.id);
        fp.text(&d.message_id);
        fp.text(&d.subscription_arn);
        fp.text(&d.protocol);
        fp.text(&d.endpoint);
        fp.int(d.attempts);
        fp.int(d.due_at);
        fp.opt_text(d.last_error.as_deref());
        match index.get(&topic).and_then(|&i| topics.get_mut(i)) {
            // A delivery's message is deleted only with the delivery (the schema cascades).
            Some(t) if messages.contains_key(&d.message_id) => t.deliveries.push(d),
            _ => orphans += 1,
        }
    }

    let dead_letters: Vec<(String, FileDeadLetter)> = rows(
        c,
        "SELECT topic_arn, id, subscription_arn, protocol, endpoint, message_id, kind, subject, \
         body, attributes, attempts, last_error, failed_at FROM dead_letters ORDER BY id",
        |r| {
            Ok((
                r.get(0)?,
                FileDeadLetter {
                    id: r.get(1)?,
                    subscription_arn: r.get(2)?,
                    protocol: r.get(3)?,
                    endpoint: r.get(4)?,
                    message_id: r.get(5)?,
                    kind: r.get(6)?,
                    subject: r.get(7)?,
                    body: r.get(8)?,
                    attributes: r.get(9)?,
                    attempts: r.get(10)?,
                    last_error: r.get(11)?,
                    failed_at: r.get(12)?,
                },
            ))
        },
    )?;
    fp.table("dead_letters");
    for (topic, d) in dead_letters {
        fp.text(&topic);
        fp.int(d.id);
        fp.text(&d.subscription_arn);
        fp.text(&d.protocol);
        fp.text(&d.endpoint);
        fp.text(&d.message_id);
        fp.text(&d.kind);
        fp.opt_text(d.subject.as_deref());
        fp.text(&d.body);
        fp.text(&d.attributes);
        fp.int(d.attempts);
        fp.text(&d.last_error);
        fp.int(d.failed_at);
        match index.get(&topic).and_then(|&i| topics.get_mut(i)) {
            Some(t) => t.dead_letters.push(d),
            None => orphans += 1,
        }
    }

    Ok(FileState {
        id: fp.finish(),
        topics,
        messages,
        orphans,
    })
}

/// Where a fully imported file goes: its name with `.imported` added.
pub(crate) fn imported_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
    name.push(".imported");
    path.with_file_name(name)
}

/// Moves the imported file (and any `-wal` or `-shm` file SQLite left beside it) aside,
/// then syncs the directory. The database file goes first: once it is gone, the next
/// start has nothing to import whatever else is left.
pub(crate) fn move_aside(path: &Path) -> Result<PathBuf, SnsError> {
    let to = imported_path(path);
    let io = |source: std::io::Error, what: &Path| {
        SnsError::Config(format!(
        "the node's SNS file was copied to the shared store, but moving `{}` aside failed: {source}",
        what.display()
    ))
    };
    std::fs::rename(path, &to).map_err(|e| io(e, path))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if side.exists() {
            let mut dest = to.as_os_str().to_owned();
            dest.push(suffix);
            std::fs::rename(&side, PathBuf::from(dest)).map_err(|e| io(e, &side))?;
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    warden_sqlite::sync_dir(&dir).map_err(|e| {
        SnsError::Config(format!(
            "the node's SNS file was moved aside, but syncing its directory failed: {e}"
        ))
    })?;
    Ok(to)
}

//! The JetStream stream every notice is stored in for a while.

use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;

use crate::wire::{CHANGES_SUBJECTS, IDENTITY_SUBJECT, MAX_NOTICE_BYTES};
use crate::{BusError, BusOptions};

/// The stream's name.
pub const STREAM_NAME: &str = "WARDEN_CHANGES";

/// How long the stream keeps a notice. Notices only matter to nodes that are running, so
/// this only needs to outlast a consumer's restart.
pub const STREAM_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// Within this window a publish repeated with the same `Nats-Msg-Id` is stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * 60);

/// The settings Warden needs, on top of `base` (an existing stream's configuration, whose
/// other settings, such as replicas or placement, are kept).
fn wanted(base: Config, options: &BusOptions) -> Config {
    Config {
        name: STREAM_NAME.to_owned(),
        description: Some("Warden change notices: which cached entries nodes must drop".into()),
        subjects: vec![CHANGES_SUBJECTS.to_owned(), IDENTITY_SUBJECT.to_owned()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        max_age: STREAM_MAX_AGE,
        max_bytes: options.max_stream_bytes,
        max_message_size: i32::try_from(MAX_NOTICE_BYTES).unwrap_or(i32::MAX),
        duplicate_window: DUPLICATE_WINDOW,
        discard: DiscardPolicy::Old,
        ..base
    }
}

/// What of `config` Warden cares about, to compare an existing stream with.
fn essentials(config: &Config) -> impl PartialEq + std::fmt::Debug {
    let mut subjects = config.subjects.clone();
    subjects.sort();
    (
        subjects,
        config.max_age,
        config.max_bytes,
        config.max_message_size,
        config.duplicate_window,
        config.discard,
    )
}

/// Why an existing stream cannot be made Warden's by an update.
fn incompatibility(config: &Config) -> Option<String> {
    if config.storage != StorageType::File {
        return Some("it keeps messages in memory, not in files".into());
    }
    if config.retention != RetentionPolicy::Limits {
        return Some(format!(
            "its retention is {:?}, not limits",
            config.retention
        ));
    }
    if config.mirror.is_some() || config.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        return Some("it is a mirror of, or sources from, other streams".into());
    }
    if config.sealed {
        return Some("it is sealed".into());
    }
    None
}

fn stream_error(error: impl std::fmt::Display) -> BusError {
    BusError::Stream(error.to_string())
}

/// The stream `name`, or `None` if there is none.
pub(crate) async fn look_up(
    js: &Context,
    name: &str,
) -> Result<Option<async_nats::jetstream::stream::Stream>, BusError> {
    match js.get_stream(name).await {
        Ok(stream) => Ok(Some(stream)),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(je) if je.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                Ok(None)
            }
            _ => Err(stream_error(format!("looking up {name}: {e}"))),
        },
    }
}

/// Creates a stream of `config`; `None` if another node created one of its name first
/// (look it up again). Another stream that captures its subjects, `captured` in words, is
/// refused.
pub(crate) async fn create(
    js: &Context,
    config: Config,
    captured: &str,
) -> Result<Option<async_nats::jetstream::stream::Stream>, BusError> {
    let name = config.name.clone();
    match js.create_stream(config).await {
        Ok(stream) => {
            tracing::info!(stream = %name, "created the stream");
            Ok(Some(stream))
        }
        Err(e) => match e.kind() {
            CreateStreamErrorKind::JetStream(je)
                if je.error_code() == ErrorCode::STREAM_NAME_EXIST =>
            {
                Ok(None)
            }
            CreateStreamErrorKind::JetStream(je)
                if je.error_code() == ErrorCode::STREAM_SUBJECT_OVERLAP =>
            {
                Err(BusError::IncompatibleStream(format!(
                    "another stream already captures {captured}; Warden needs them in its own stream {name}"
                )))
            }
            _ => Err(stream_error(format!("creating {name}: {e}"))),
        },
    }
}

/// Creates the stream, or brings an existing one to Warden's settings; refuses a stream
/// of that name that cannot be (another storage or retention) and reports another stream
/// that already captures the subjects.
pub(crate) async fn ensure(js: &Context, options: &BusOptions) -> Result<(), BusError> {
    // Two nodes starting together may both try to create it: the loser looks again.
    for _ in 0..3 {
        if let Some(stream) = look_up(js, STREAM_NAME).await? {
            let existing = stream.cached_info().config.clone();
            if let Some(why) = incompatibility(&existing) {
                return Err(BusError::IncompatibleStream(format!(
                    "a stream named {STREAM_NAME} exists but {why}; delete it (it only holds notices) or fix it"
                )));
            }
            let wanted = wanted(existing.clone(), options);
            if essentials(&existing) != essentials(&wanted) {
                tracing::info!(
                    stream = STREAM_NAME,
                    "updating the stream's settings to Warden's"
                );
                js.update_stream(&wanted).await.map_err(|e| {
                    BusError::IncompatibleStream(format!(
                        "the stream {STREAM_NAME} exists with other settings and cannot be updated: {e}"
                    ))
                })?;
            }
            return Ok(());
        }
        let config = wanted(
            Config {
                num_replicas: options.replicas,
                ..Config::default()
            },
            options,
        );
        let captured = format!("{CHANGES_SUBJECTS} or {IDENTITY_SUBJECT}");
        if create(js, config, &captured).await?.is_some() {
            return Ok(());
        }
    }
    Err(stream_error(format!(
        "{STREAM_NAME} kept appearing and disappearing while it was being created"
    )))
}

/// What differs between Warden's work-queue streams; [`ensure_work_queue`] sets the rest
/// (file storage, work-queue retention, discard-new, the duplicate window).
pub(crate) struct WorkQueue {
    pub name: &'static str,
    pub description: &'static str,
    pub subjects: &'static str,
    pub max_bytes: i64,
    pub max_message_size: usize,
    pub replicas: usize,
}

/// Creates the work-queue stream `queue`, or checks that an existing stream of its name
/// is a file-backed work queue that refuses new messages when full (its other settings
/// are the operator's). Another stream that captures its subjects is refused.
pub(crate) async fn ensure_work_queue(
    js: &Context,
    queue: WorkQueue,
) -> Result<async_nats::jetstream::stream::Stream, BusError> {
    let name = queue.name;
    let wanted = Config {
        name: name.to_owned(),
        description: Some(queue.description.to_owned()),
        subjects: vec![queue.subjects.to_owned()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        max_bytes: queue.max_bytes,
        max_message_size: i32::try_from(queue.max_message_size).unwrap_or(i32::MAX),
        duplicate_window: DUPLICATE_WINDOW,
        discard: DiscardPolicy::New,
        num_replicas: queue.replicas,
        ..Config::default()
    };
    // Two nodes starting together may both try to create it: the loser looks again.
    for _ in 0..3 {
        if let Some(stream) = look_up(js, name).await? {
            let existing = &stream.cached_info().config;
            if existing.retention != RetentionPolicy::WorkQueue
                || existing.storage != StorageType::File
                || existing.discard != DiscardPolicy::New
            {
                return Err(BusError::IncompatibleStream(format!(
                    "a stream named {name} exists but is not a file-backed work queue that refuses new messages when full"
                )));
            }
            return Ok(stream);
        }
        if let Some(stream) = create(js, wanted.clone(), queue.subjects).await? {
            return Ok(stream);
        }
    }
    Err(stream_error(format!(
        "{name} kept appearing and disappearing while it was being created"
    )))
}

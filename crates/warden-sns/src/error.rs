//! The crate's one error type: each variant an SNS error code with its HTTP status, plus the
//! internal failures (database, signing key) that reach a client only as `InternalError`.

use std::path::PathBuf;

use crate::xml::{escape, NAMESPACE};

/// Why an SNS operation failed.
///
/// The client-facing variants carry a message that names what was wrong (a parameter, a
/// protocol, a limit) and never a secret: confirmation tokens and the signing key are never
/// put into an error. The internal variants ([`SnsError::Open`], [`SnsError::Store`],
/// [`SnsError::Shared`], [`SnsError::Signing`], [`SnsError::Damaged`], [`SnsError::Config`],
/// [`SnsError::Task`], [`SnsError::Tls`]) are rendered to clients as a generic
/// `InternalError`; their text is for the server log.
#[derive(Debug, thiserror::Error)]
pub enum SnsError {
    /// `InvalidParameter` (400): a parameter is missing, unknown, malformed, or names
    /// something this SNS does not support.
    #[error("Invalid parameter: {0}")]
    InvalidParameter(String),
    /// `ParameterValueInvalid` (400, botocore's `InvalidParameterValueException`): a
    /// parameter's value is out of its range.
    #[error("Invalid parameter value: {0}")]
    InvalidParameterValue(String),
    /// `NotFound` (404): the topic or subscription does not exist.
    #[error("{0}")]
    NotFound(String),
    /// `AuthorizationError` (403): the operation is not allowed this way (for example
    /// unsubscribing through the unauthenticated URL a subscription forbade).
    #[error("{0}")]
    AuthorizationError(String),
    /// `Throttled` (429): a bounded queue is full; the request may be retried later.
    #[error("{0}")]
    Throttled(String),
    /// `TopicLimitExceeded` (403): the account has [`crate::MAX_TOPICS_PER_ACCOUNT`] topics.
    #[error("{0}")]
    TopicLimitExceeded(String),
    /// `SubscriptionLimitExceeded` (403): the topic has
    /// [`crate::MAX_SUBSCRIPTIONS_PER_TOPIC`] subscriptions.
    #[error("{0}")]
    SubscriptionLimitExceeded(String),
    /// `TagLimitExceeded` (400): more than [`crate::MAX_TAGS`] tags on a topic.
    #[error("{0}")]
    TagLimitExceeded(String),
    /// `InvalidAction` (400): the action is unknown or not implemented here.
    #[error("{0}")]
    InvalidAction(String),
    /// Opening or migrating the SNS database failed.
    #[error("opening the SNS database at `{}`: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: warden_sqlite::Error,
    },
    /// A read or write of the SNS database failed.
    #[error("the SNS database failed while {context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// What went wrong.
        #[source]
        source: warden_sqlite::Error,
    },
    /// A read or write of the shared SNS store in PostgreSQL failed. The text never holds
    /// the connection's password.
    #[error("the shared SNS store failed while {context}: {source}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// What went wrong.
        #[source]
        source: warden_postgres::Error,
    },
    /// Generating, loading or using the signing key or certificate failed. The text never
    /// holds key material.
    #[error("the SNS signing key: {0}")]
    Signing(String),
    /// A stored row is malformed (the database was edited or damaged).
    #[error("the SNS database holds a damaged row: {0}")]
    Damaged(String),
    /// The service is misconfigured (for example its base URL).
    #[error("{0}")]
    Config(String),
    /// A background task (a blocking store call of the deliverer) did not complete.
    #[error("an SNS background task failed: {0}")]
    Task(String),
    /// The TLS client of https deliveries could not be built (an unreadable CA file).
    #[error("the TLS client of https deliveries: {0}")]
    Tls(String),
}

impl SnsError {
    /// The SNS error code (`<Code>` of the XML error).
    pub fn code(&self) -> &'static str {
        match self {
            SnsError::InvalidParameter(_) => "InvalidParameter",
            SnsError::InvalidParameterValue(_) => "ParameterValueInvalid",
            SnsError::NotFound(_) => "NotFound",
            SnsError::AuthorizationError(_) => "AuthorizationError",
            SnsError::Throttled(_) => "Throttled",
            SnsError::TopicLimitExceeded(_) => "TopicLimitExceeded",
            SnsError::SubscriptionLimitExceeded(_) => "SubscriptionLimitExceeded",
            SnsError::TagLimitExceeded(_) => "TagLimitExceeded",
            SnsError::InvalidAction(_) => "InvalidAction",
            SnsError::Open { .. }
            | SnsError::Store { .. }
            | SnsError::Shared { .. }
            | SnsError::Signing(_)
            | SnsError::Damaged(_)
            | SnsError::Config(_)
            | SnsError::Task(_)
            | SnsError::Tls(_) => "InternalError",
        }
    }

    /// The HTTP status the API layer answers with.
    pub fn status(&self) -> u16 {
        match self {
            SnsError::InvalidParameter(_)
            | SnsError::InvalidParameterValue(_)
            | SnsError::TagLimitExceeded(_)
            | SnsError::InvalidAction(_) => 400,
            SnsError::NotFound(_) => 404,
            SnsError::AuthorizationError(_)
            | SnsError::TopicLimitExceeded(_)
            | SnsError::SubscriptionLimitExceeded(_) => 403,
            SnsError::Throttled(_) => 429,
            SnsError::Open { .. }
            | SnsError::Store { .. }
            | SnsError::Shared { .. }
            | SnsError::Signing(_)
            | SnsError::Damaged(_)
            | SnsError::Config(_)
            | SnsError::Task(_)
            | SnsError::Tls(_) => 500,
        }
    }

    /// True for failures of this service rather than of the request (HTTP 5xx).
    pub fn is_internal(&self) -> bool {
        self.status() >= 500
    }

    /// The message a client sees: the error's text, or a generic sentence for internal
    /// failures (whose detail belongs in the server log only).
    pub fn client_message(&self) -> String {
        if self.is_internal() {
            "The SNS service failed to process the request".to_owned()
        } else {
            self.to_string()
        }
    }

    /// The query protocol's XML error document for this error:
    /// `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
    pub fn to_xml(&self, request_id: &str) -> String {
        let kind = if self.is_internal() {
            "Receiver"
        } else {
            "Sender"
        };
        format!(
            "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>{kind}</Type><Code>{}</Code>\
             <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            self.code(),
            escape(&self.client_message()),
            escape(request_id)
        )
    }
}

/// Maps a SQLite error to [`SnsError::Store`] with `context`.
pub(crate) fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> SnsError {
    move |e| SnsError::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}

/// An `InvalidParameter` error.
pub(crate) fn invalid(message: impl Into<String>) -> SnsError {
    SnsError::InvalidParameter(message.into())
}

impl From<warden_postgres::Error> for SnsError {
    fn from(source: warden_postgres::Error) -> Self {
        SnsError::Shared {
            context: "talking to PostgreSQL",
            source,
        }
    }
}

impl From<postgres::Error> for SnsError {
    fn from(e: postgres::Error) -> Self {
        let context = "talking to PostgreSQL";
        SnsError::Shared {
            context,
            source: warden_postgres::Error::at(context)(e),
        }
    }
}

impl warden_postgres::AsPostgres for SnsError {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        match self {
            SnsError::Shared { source, .. } => source.as_postgres(),
            _ => None,
        }
    }
}

/// Maps a PostgreSQL error to [`SnsError::Shared`] with `context`.
pub(crate) fn pg(context: &'static str) -> impl FnOnce(postgres::Error) -> SnsError {
    move |e| SnsError::Shared {
        context,
        source: warden_postgres::Error::at(context)(e),
    }
}

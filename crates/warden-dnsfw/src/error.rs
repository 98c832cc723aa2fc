//! DNS Firewall's errors, each one of Route 53 Resolver's documented exceptions.

/// Why a DNS Firewall operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsFirewallError {
    /// No such domain list, rule group, rule or association (`ResourceNotFoundException`).
    #[error("{message}")]
    NotFound {
        /// The kind of resource that does not exist (the exception's `ResourceType`).
        resource_type: &'static str,
        /// What was looked for.
        message: String,
    },
    /// A parameter outside its limits, or a member Warden does not implement
    /// (`ValidationException`).
    #[error("{0}")]
    Validation(String),
    /// The request conflicts with the state of a resource, such as deleting a domain list a
    /// rule still uses (`ConflictException`).
    #[error("{0}")]
    Conflict(String),
    /// Too many domain lists, domains, rule groups, rules or associations
    /// (`LimitExceededException`).
    #[error("{message}")]
    LimitExceeded {
        /// The kind of resource whose limit was reached (the exception's `ResourceType`).
        resource_type: &'static str,
        /// Which limit.
        message: String,
    },
    /// The store failed (`InternalServiceErrorException`); details are logged, not sent.
    #[error("the DNS Firewall store failed while {context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: warden_sqlite::Error,
    },
    /// The store shared with other nodes (PostgreSQL) failed, or holds a record this
    /// build cannot read (`InternalServiceErrorException`); details are logged, not sent.
    #[error("the DNS Firewall store failed while {context}: {message}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// What went wrong (never the connection's password).
        message: String,
    },
}

impl DnsFirewallError {
    /// The service's error code (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            DnsFirewallError::NotFound { .. } => "ResourceNotFoundException",
            DnsFirewallError::Validation(_) => "ValidationException",
            DnsFirewallError::Conflict(_) => "ConflictException",
            DnsFirewallError::LimitExceeded { .. } => "LimitExceededException",
            DnsFirewallError::Store { .. } | DnsFirewallError::Shared { .. } => {
                "InternalServiceErrorException"
            }
        }
    }

    /// Whether the failure is the server's (500), not the request's (400).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            DnsFirewallError::Store { .. } | DnsFirewallError::Shared { .. }
        )
    }

    /// The `ResourceType` member of a `ResourceNotFoundException` or a
    /// `LimitExceededException`.
    pub fn resource_type(&self) -> Option<&'static str> {
        match self {
            DnsFirewallError::NotFound { resource_type, .. }
            | DnsFirewallError::LimitExceeded { resource_type, .. } => Some(resource_type),
            _ => None,
        }
    }
}

/// Maps a SQLite error met while doing `context` to [`DnsFirewallError::Store`].
pub(crate) fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> DnsFirewallError {
    move |e| DnsFirewallError::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}

/// A [`DnsFirewallError::Validation`].
pub(crate) fn invalid(message: impl Into<String>) -> DnsFirewallError {
    DnsFirewallError::Validation(message.into())
}

/// Maps a shared store's error to [`DnsFirewallError::Shared`] with `context`.
pub(crate) fn shared(
    context: &'static str,
) -> impl FnOnce(warden_postgres::Error) -> DnsFirewallError {
    move |e| DnsFirewallError::Shared {
        context,
        message: e.to_string(),
    }
}

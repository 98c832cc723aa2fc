//! The network service's errors, each carrying the error code EC2 answers with
//! (`InvalidVpcID.NotFound`, `InvalidPermission.Duplicate`, ...), so that the API renders
//! them unchanged.

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No such VPC, subnet, group, rule or permission (`InvalidVpcID.NotFound`,
    /// `InvalidSubnetID.NotFound`, `InvalidGroup.NotFound`, `InvalidPermission.NotFound`,
    /// `InvalidSecurityGroupRuleId.NotFound`).
    #[error("{message}")]
    NotFound {
        /// EC2's error code.
        code: &'static str,
        /// The message for the caller.
        message: String,
    },
    /// An id that is not of its kind's form (`InvalidVpcID.Malformed`,
    /// `InvalidSubnetID.Malformed`, `InvalidGroupId.Malformed`,
    /// `InvalidSecurityGroupRuleId.Malformed`, `InvalidID`).
    #[error("{message}")]
    Malformed {
        /// EC2's error code.
        code: &'static str,
        /// The message for the caller.
        message: String,
    },
    /// A value EC2 would refuse (`InvalidParameterValue`, `InvalidVpc.Range`,
    /// `InvalidSubnet.Range`, `InvalidSubnet.Conflict`, `VPCIdNotSpecified`,
    /// `MissingParameter`, ...).
    #[error("{message}")]
    Invalid {
        /// EC2's error code.
        code: &'static str,
        /// The message for the caller.
        message: String,
    },
    /// Something of that name or value exists already (`InvalidGroup.Duplicate`,
    /// `InvalidPermission.Duplicate`).
    #[error("{message}")]
    Duplicate {
        /// EC2's error code.
        code: &'static str,
        /// The message for the caller.
        message: String,
    },
    /// The resource is still used: a VPC with subnets or groups, a group another group's
    /// rule names (`DependencyViolation`).
    #[error("{0}")]
    DependencyViolation(String),
    /// The default security group of a VPC, which goes only with its VPC
    /// (`CannotDelete`).
    #[error("{0}")]
    CannotDelete(String),
    /// A bound on VPCs, subnets, groups, rules or tags (`VpcLimitExceeded`,
    /// `SubnetLimitExceeded`, `SecurityGroupLimitExceeded`,
    /// `RulesPerSecurityGroupLimitExceeded`, `TagLimitExceeded`).
    #[error("{message}")]
    LimitExceeded {
        /// EC2's error code.
        code: &'static str,
        /// The message for the caller.
        message: String,
    },
    /// The store failed (`InternalError`); details are logged, not sent.
    #[error("the network store failed while {context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: warden_sqlite::Error,
    },
    /// The store shared with other nodes (PostgreSQL) failed, or holds a record this
    /// build cannot read (`InternalError`); details are logged, not sent.
    #[error("the network store failed while {context}: {message}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// What went wrong (never the connection's password).
        message: String,
    },
}

impl NetworkError {
    /// EC2's error code.
    pub fn code(&self) -> &'static str {
        match self {
            NetworkError::NotFound { code, .. }
            | NetworkError::Malformed { code, .. }
            | NetworkError::Invalid { code, .. }
            | NetworkError::Duplicate { code, .. }
            | NetworkError::LimitExceeded { code, .. } => code,
            NetworkError::DependencyViolation(_) => "DependencyViolation",
            NetworkError::CannotDelete(_) => "CannotDelete",
            NetworkError::Store { .. } | NetworkError::Shared { .. } => "InternalError",
        }
    }

    /// Whether the failure is the server's, not the request's.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            NetworkError::Store { .. } | NetworkError::Shared { .. }
        )
    }

    /// `InvalidParameterValue` with `message`.
    pub fn invalid_value(message: impl Into<String>) -> NetworkError {
        NetworkError::Invalid {
            code: "InvalidParameterValue",
            message: message.into(),
        }
    }

    /// An error with `code` in the [`NetworkError::Invalid`] family.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> NetworkError {
        NetworkError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// Maps a SQLite error to [`NetworkError::Store`] with `context`.
pub(crate) fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> NetworkError {
    move |e| NetworkError::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}

/// Maps a shared store's error to [`NetworkError::Shared`] with `context`.
pub(crate) fn shared(context: &'static str) -> impl FnOnce(warden_postgres::Error) -> NetworkError {
    move |e| NetworkError::Shared {
        context,
        message: e.to_string(),
    }
}

//! Validated values of a function's configuration. Constructing one checks it against
//! Lambda's constraints, so a value of these types is always valid and code past the API
//! edge never checks it again. The error messages are the ones Lambda sends (or, where
//! Lambda has none, a sentence naming the member), and the API shows them as they are.

use std::collections::BTreeMap;
use std::fmt;

use crate::function::{FunctionVersion, Runtime};
use crate::limits;

/// Why a configuration value was refused; the message is shown to API callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A runtime Warden does not run.
    #[error("Value {0} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{list}]", list = Runtime::SUPPORTED.join(", "))]
    Runtime(String),
    /// A runtime Lambda has deprecated for creating and updating functions.
    #[error("The runtime parameter of {0} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions.")]
    RuntimeDeprecated(String),
    /// A runtime Lambda offers and Warden does not run.
    #[error("The runtime {0} is not one Warden runs; package the code with its own `bootstrap` and use provided.al2023, or use one of: {list}", list = Runtime::SUPPORTED.join(", "))]
    RuntimeNotServed(String),
    /// Not an IAM role ARN.
    #[error("1 validation error detected: Value '{0}' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{{12}}:role/?[a-zA-Z_0-9+=,.@\\-_/]+")]
    RoleArn(String),
    /// A handler that is too long or holds whitespace.
    #[error("Value '{0}' at 'handler' failed to satisfy constraint: Member must have length less than or equal to 128 and contain no whitespace")]
    Handler(String),
    /// A timeout outside 1-900 seconds.
    #[error("1 validation error detected: Value '{0}' at 'timeout' failed to satisfy constraint: Member must have value between 1 and 900")]
    Timeout(u32),
    /// A memory size outside 128-10,240 MB.
    #[error("1 validation error detected: Value '{0}' at 'memorySize' failed to satisfy constraint: Member must have value between 128 and 10240")]
    MemorySize(u32),
    /// An ephemeral storage size outside 512-10,240 MB.
    #[error("1 validation error detected: Value '{0}' at 'ephemeralStorage.size' failed to satisfy constraint: Member must have value between 512 and 10240")]
    EphemeralStorage(u32),
    /// A description longer than 256 characters.
    #[error("Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256")]
    Description,
    /// A variable name that is not a valid identifier.
    #[error("environment variable name `{0}` must start with a letter and contain only letters, digits and `_`")]
    EnvironmentName(String),
    /// Variables that Lambda reserves for itself.
    #[error("Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {0}")]
    EnvironmentReserved(String),
    /// Variables larger than 4 KB together.
    #[error("Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit.")]
    EnvironmentSize,
    /// Not exactly one known architecture.
    #[error("Architectures must hold exactly one of x86_64, arm64")]
    Architectures,
    /// A statement id that is not 1-100 letters, digits, `-` and `_`.
    #[error("StatementId `{0}` must be 1-100 of letters, digits, `-` and `_`")]
    StatementId(String),
    /// Invalid tags.
    #[error(transparent)]
    Tags(#[from] crate::tags::TagError),
    /// An invalid `LoggingConfig` (the message names the member).
    #[error("{0}")]
    Logging(String),
}

/// Environment variable names Lambda reserves for itself.
pub const RESERVED_ENVIRONMENT: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

impl Runtime {
    /// A supported runtime, or Lambda's enum error naming the value.
    pub fn new(s: &str) -> Result<Self, ConfigError> {
        Self::parse(s).ok_or_else(|| {
            if Self::DEPRECATED.contains(&s) {
                ConfigError::RuntimeDeprecated(s.to_owned())
            } else if Self::NOT_SERVED.contains(&s) {
                ConfigError::RuntimeNotServed(s.to_owned())
            } else {
                ConfigError::Runtime(s.to_owned())
            }
        })
    }
}

/// Defines a bounded integer setting: `new` checks the range, `get` reads it.
macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $range:expr, $default:expr, $err:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl $name {
            /// Lambda's default.
            pub const DEFAULT: Self = Self($default);

            /// The value, if Lambda allows it.
            pub fn new(value: u32) -> Result<Self, ConfigError> {
                if $range.contains(&value) {
                    Ok(Self(value))
                } else {
                    Err(ConfigError::$err(value))
                }
            }

            /// The value.
            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

bounded!(
    /// A function's memory in MB (128-10,240).
    MemorySize,
    limits::MEMORY_MB,
    limits::DEFAULT_MEMORY_MB,
    MemorySize
);
bounded!(
    /// A function's timeout in seconds (1-900).
    Timeout,
    limits::TIMEOUT_SECONDS,
    limits::DEFAULT_TIMEOUT_SECONDS,
    Timeout
);
bounded!(
    /// A function's `/tmp` size in MB (512-10,240).
    EphemeralStorage,
    limits::EPHEMERAL_STORAGE_MB,
    limits::DEFAULT_EPHEMERAL_STORAGE_MB,
    EphemeralStorage
);

/// An execution role's ARN as Lambda's pattern allows it:
/// `arn:aws[-partition]:iam::ACCOUNT:role/[PATH/]NAME`. Whether the role exists, trusts
/// Lambda and may be passed is decided elsewhere, on the role this names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleArn(String);

impl RoleArn {
    /// Checks a role ARN.
    pub fn new(s: &str) -> Result<Self, ConfigError> {
        let ok = s
            .strip_prefix("arn:")
            .and_then(|r| r.split_once(":iam::"))
            .and_then(|(partition, rest)| partition.starts_with("aws").then_some(rest))
            .and_then(|rest| rest.split_once(":role/"))
            .is_some_and(|(account, name)| {
                account.len() == 12
                    && account.chars().all(|c| c.is_ascii_digit())
                    && !name.is_empty()
                    && name.len() <= 512
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_/".contains(c))
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ConfigError::RoleArn(s.to_owned()))
        }
    }

    /// The ARN.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A handler: 1-128 characters, no whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handler(String);

impl Handler {
    /// Checks a handler.
    pub fn new(s: &str) -> Result<Self, ConfigError> {
        if s.is_empty()
            || s.len() > limits::HANDLER_CHARS
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::Handler(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// `bootstrap`, what `provided.*` runtimes run when no handler is given.
    pub fn bootstrap() -> Self {
        Self("bootstrap".to_owned())
    }

    /// The handler.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A description of a function, version or alias: at most 256 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Description(String);

impl Description {
    /// Checks a description.
    pub fn new(s: &str) -> Result<Self, ConfigError> {
        if s.chars().count() > limits::DESCRIPTION_CHARS {
            return Err(ConfigError::Description);
        }
        Ok(Self(s.to_owned()))
    }

    /// The description.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The description, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A function's environment variables: names of a letter then letters, digits and `_`,
/// none of Lambda's reserved names, and at most 4 KB as Lambda counts it (the JSON of the
/// map). Values are secrets: `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment(BTreeMap<String, String>);

impl Environment {
    /// Checks environment variables: names, reserved keys and the 4 KB limit.
    pub fn new(vars: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        for key in vars.keys() {
            let mut chars = key.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(ConfigError::EnvironmentName(key.clone()));
            }
        }
        let reserved: Vec<&str> = vars
            .keys()
            .map(String::as_str)
            .filter(|k| RESERVED_ENVIRONMENT.contains(k))
            .collect();
        if !reserved.is_empty() {
            return Err(ConfigError::EnvironmentReserved(reserved.join(",")));
        }
        if FunctionVersion::environment_size(&vars) > limits::ENVIRONMENT_BYTES {
            return Err(ConfigError::EnvironmentSize);
        }
        Ok(Self(vars))
    }

    /// The variables.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The variables, by value.
    pub fn into_variables(self) -> BTreeMap<String, String> {
        self.0
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: never print them.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The instruction set a function's code is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// `x86_64`.
    X86_64,
    /// `arm64`.
    Arm64,
}

impl Architecture {
    /// Lambda's `Architectures` member: exactly one of `x86_64`, `arm64` (an empty list
    /// means the default, `x86_64`).
    pub fn from_list(list: &[String]) -> Result<Self, ConfigError> {
        match list {
            [] => Ok(Self::X86_64),
            [one] if one == "x86_64" => Ok(Self::X86_64),
            [one] if one == "arm64" => Ok(Self::Arm64),
            _ => Err(ConfigError::Architectures),
        }
    }

    /// The architecture this build of Warden runs on.
    pub fn host() -> Self {
        if cfg!(target_arch = "aarch64") {
            Self::Arm64
        } else {
            Self::X86_64
        }
    }

    /// The name Lambda uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }
}

/// The id of one statement of a function policy: 1-100 of letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatementId(String);

impl StatementId {
    /// Checks a statement id.
    pub fn new(s: &str) -> Result<Self, ConfigError> {
        let ok = (1..=100).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ConfigError::StatementId(s.to_owned()))
        }
    }

    /// The statement id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_are_lambdas() {
        assert!(MemorySize::new(127).is_err());
        assert_eq!(MemorySize::new(128).map(MemorySize::get), Ok(128));
        assert!(MemorySize::new(10_241).is_err());
        assert!(Timeout::new(0).is_err());
        assert!(Timeout::new(901).is_err());
        assert_eq!(Timeout::DEFAULT.get(), 3);
        assert!(EphemeralStorage::new(511).is_err());
        assert_eq!(EphemeralStorage::DEFAULT.get(), 512);
        assert!(MemorySize::new(5)
            .unwrap_err()
            .to_string()
            .contains("'memorySize'"));
    }

    #[test]
    fn role_arns() {
        assert!(RoleArn::new("arn:aws:iam::123456789012:role/lambda-exec").is_ok());
        assert!(RoleArn::new("arn:aws:iam::123456789012:role/path/to/r").is_ok());
        for bad in [
            "",
            "role",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(RoleArn::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn handlers_and_descriptions() {
        assert!(Handler::new("index.handler").is_ok());
        for bad in ["", "a b", "a\tb", &"h".repeat(129)] {
            assert!(Handler::new(bad).is_err(), "{bad:?}");
        }
        assert!(Description::new(&"é".repeat(256)).is_ok());
        assert!(Description::new(&"é".repeat(257)).is_err());
    }

    #[test]
    fn environment_rules() {
        let env = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(Environment::new(env("GREETING", "hi")).is_ok());
        assert!(Environment::new(env("AWS_REGION", "x"))
            .unwrap_err()
            .to_string()
            .contains("AWS_REGION"));
        assert!(Environment::new(env("1X", "x")).is_err());
        assert!(Environment::new(env("BIG", &"x".repeat(5000)))
            .unwrap_err()
            .to_string()
            .contains("4KB"));
        let shown = format!("{:?}", Environment::new(env("TOKEN", "secret")).unwrap());
        assert!(
            shown.contains("TOKEN") && !shown.contains("secret"),
            "{shown}"
        );
    }

    #[test]
    fn architectures() {
        assert_eq!(Architecture::from_list(&[]), Ok(Architecture::X86_64));
        assert_eq!(
            Architecture::from_list(&["arm64".into()]),
            Ok(Architecture::Arm64)
        );
        assert!(Architecture::from_list(&["x86_64".into(), "arm64".into()]).is_err());
        assert!(Architecture::from_list(&["mips".into()]).is_err());
    }

    #[test]
    fn statement_ids() {
        assert!(StatementId::new("allow-invoke_1").is_ok());
        for bad in ["", "a b", "a:b", &"s".repeat(101)] {
            assert!(StatementId::new(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn constructors_never_panic(s in "\\PC{0,300}", n in any::<u32>()) {
            let _ = RoleArn::new(&s);
            let _ = Handler::new(&s);
            let _ = Description::new(&s);
            let _ = StatementId::new(&s);
            let _ = Runtime::new(&s);
            let _ = MemorySize::new(n);
            let _ = Environment::new(BTreeMap::from([(s.clone(), s)]));
        }
    }
}

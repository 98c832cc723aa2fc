//! The stored form of one version of a function. The API crate turns it into Lambda's
//! `FunctionConfiguration` JSON; the engine turns it into an instance's environment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::FunctionName;

/// The name of the unpublished, mutable version.
pub const LATEST: &str = "$LATEST";

/// Runtimes Warden can start. `provided.*` run the package's `bootstrap`; `python3.*` and
/// `nodejs*.x` run a host interpreter of that version with Warden's own runtime bootstrap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// `provided`, `provided.al2`, `provided.al2023`: the zip holds an executable `bootstrap`.
    Provided(String),
    /// `python3.N`: the handler is `module.function`.
    Python(String),
    /// `nodejsN.x`: the handler is `module.export`.
    Node(String),
}

impl Runtime {
    /// Runtime identifiers Warden accepts, in the order they are listed in errors.
    pub const SUPPORTED: &'static [&'static str] = &[
        "provided.al2023",
        "provided.al2",
        "provided",
        "python3.9",
        "python3.10",
        "python3.11",
        "python3.12",
        "python3.13",
        "nodejs18.x",
        "nodejs20.x",
        "nodejs22.x",
    ];

    /// Runtimes Lambda no longer lets anyone create or update a function with.
    pub const DEPRECATED: &'static [&'static str] = &[
        "nodejs",
        "nodejs4.3",
        "nodejs4.3-edge",
        "nodejs6.10",
        "nodejs8.10",
        "nodejs10.x",
        "nodejs12.x",
        "nodejs14.x",
        "nodejs16.x",
        "python2.7",
        "python3.6",
        "python3.7",
        "python3.8",
        "dotnetcore1.0",
        "dotnetcore2.0",
        "dotnetcore2.1",
        "dotnetcore3.1",
        "dotnet6",
        "java8",
        "go1.x",
        "ruby2.5",
        "ruby2.7",
    ];

    /// Runtimes Lambda offers that Warden does not run (their languages need an
    /// interpreter Warden does not manage); code for them can run as `provided.al2023`.
    pub const NOT_SERVED: &'static [&'static str] = &[
        "java8.al2",
        "java11",
        "java17",
        "java21",
        "dotnet8",
        "ruby3.2",
        "ruby3.3",
        "ruby3.4",
        "nodejs24.x",
        "python3.14",
    ];

    /// The runtime named `s`, if Warden runs it.
    pub fn parse(s: &str) -> Option<Self> {
        if !Self::SUPPORTED.contains(&s) {
            return None;
        }
        if s.starts_with("python") {
            Some(Self::Python(s.to_owned()))
        } else if s.starts_with("nodejs") {
            Some(Self::Node(s.to_owned()))
        } else {
            Some(Self::Provided(s.to_owned()))
        }
    }

    /// The name Lambda uses (`python3.12`, `provided.al2023`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Provided(s) | Self::Python(s) | Self::Node(s) => s,
        }
    }

    /// The interpreter version this runtime needs (`3.12` for `python3.12`, `20` for
    /// `nodejs20.x`); `None` for `provided.*`, which brings its own.
    pub fn language_version(&self) -> Option<&str> {
        match self {
            Self::Provided(_) => None,
            Self::Python(s) => s.strip_prefix("python"),
            Self::Node(s) => s.strip_prefix("nodejs").and_then(|v| v.strip_suffix(".x")),
        }
    }
}

/// One version of a function: `$LATEST` or a published, immutable number.
///
/// This is a stored record, not an API input: it tolerates fields it does not know (no
/// `deny_unknown_fields`), so that a node of an older Warden can read a record a newer one
/// wrote during a rolling upgrade; the store keeps such fields when it rewrites the record
/// (see `warden_store::record`). API inputs are separate shapes that refuse unknown fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionVersion {
    /// The function.
    pub name: FunctionName,
    /// `$LATEST` or a decimal version number.
    pub version: String,
    /// The runtime (`python3.12`, `provided.al2023`...).
    pub runtime: String,
    /// The handler (`app.handler`, `bootstrap`).
    pub handler: String,
    /// The execution role's ARN.
    pub role: String,
    /// The description.
    #[serde(default)]
    pub description: String,
    /// The timeout, in seconds.
    pub timeout_seconds: u32,
    /// The memory size, in MB.
    pub memory_mb: u32,
    /// The size of `/tmp`, in MB.
    pub ephemeral_storage_mb: u32,
    /// The environment variables in plain text: only ever in memory, after the keyring
    /// opened [`FunctionVersion::sealed_environment`] (a record written before
    /// environments were encrypted may still hold them here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// The environment variables as stored: encrypted under a KMS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_environment: Option<SealedEnvironment>,
    /// The customer managed KMS key of its environment (`KMSKeyArn`); `None` for the
    /// AWS managed `aws/lambda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    /// Why the sealed environment could not be opened when this version was read (never
    /// stored): Lambda then shows `Environment.Error` instead of the variables.
    #[serde(skip)]
    pub environment_error: Option<EnvironmentError>,
    /// Base64 SHA-256 of the zip, Lambda's `CodeSha256`; also the blob's key.
    pub code_sha256: String,
    /// Size of the zip in bytes.
    pub code_size: u64,
    /// Changes on every write; callers pass it back as a precondition.
    pub revision_id: String,
    /// Milliseconds since the epoch.
    pub last_modified_ms: i64,
    /// The instruction set architectures (one).
    #[serde(default)]
    pub architectures: Vec<String>,
    /// The layers it uses, in order (later ones win where files collide at `/opt`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<crate::layer::FunctionLayer>,
    /// The key of the merged tree of its layers in the blob store (shown at `/opt`);
    /// `None` without layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_sha256: Option<String>,
    /// How its logs are written (`LoggingConfig`).
    #[serde(default, skip_serializing_if = "LoggingSettings::is_text")]
    pub logging: LoggingSettings,
    /// The security groups and subnets the function's instances are attached to: their
    /// network egress and ingress rules. `None`: no network but Warden's own services
    /// (or, with `--default-egress internet`, public addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<VpcConfig>,
}

/// A function's network attachment, as Lambda's `VpcConfig` says it (IPv4 only: instances
/// get no IPv6 address, so `Ipv6AllowedForDualStack` is refused where it is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcConfig {
    /// Subnet ids (`subnet-...`), all of one VPC.
    pub subnet_ids: Vec<String>,
    /// Security group ids (`sg-...`), all of the same VPC.
    pub security_group_ids: Vec<String>,
    /// The VPC of the subnets.
    pub vpc_id: String,
}

/// A function's environment variables as stored: a JSON object of the variables, sealed by
/// envelope encryption under a KMS key (the format is `warden_kms::envelope`'s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEnvironment {
    /// The ARN of the KMS key whose data key sealed it.
    pub key_arn: String,
    /// Whether that key is a customer managed key (`KMSKeyArn`) rather than `aws/lambda`.
    #[serde(default)]
    pub customer_key: bool,
    /// The sealed variables, base64.
    pub ciphertext: String,
}

/// Why a function's environment could not be opened (`Environment.Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentError {
    /// Lambda's error code (`KMSDisabledException`, `AccessDeniedException`, ...).
    pub code: String,
    /// The message.
    pub message: String,
}

/// Log levels of application logs, most detailed first.
pub const APPLICATION_LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
/// Log levels of system (platform) logs, most detailed first.
pub const SYSTEM_LOG_LEVELS: &[&str] = &["DEBUG", "INFO", "WARN"];

/// How a function's logs are written (Lambda's `LoggingConfig`, but for its log group).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingSettings {
    /// JSON records instead of Lambda's text lines, for the runtime's and the platform's own
    /// lines alike.
    #[serde(default)]
    pub json: bool,
    /// The application log level (JSON only; `INFO` when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_level: Option<String>,
    /// The system log level (JSON only; `INFO` when not given): at `WARN`, the platform
    /// writes no `platform.start` and `platform.report` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_level: Option<String>,
}

impl LoggingSettings {
    /// Checks a `LoggingConfig`: a format of `Text` or `JSON`, and levels only with JSON.
    pub fn new(
        format: Option<&str>,
        application_level: Option<&str>,
        system_level: Option<&str>,
    ) -> Result<Self, crate::ConfigError> {
        use crate::ConfigError;
        let json = match format {
            None | Some("Text") => false,
            Some("JSON") => true,
            Some(other) => {
                return Err(ConfigError::Logging(format!(
                    "Value {other} at 'loggingConfig.logFormat' failed to satisfy constraint: Member must satisfy enum value set: [JSON, Text]"
                )))
            }
        };
        let check = |value: Option<&str>, allowed: &[&str], member: &str| {
            match value {
            Some(v) if !allowed.contains(&v) => Err(ConfigError::Logging(format!(
                "Value {v} at 'loggingConfig.{member}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ))),
            Some(_) if !json => Err(ConfigError::Logging(format!(
                "LoggingConfig.{member} can be set only with LogFormat JSON"
            ))),
            v => Ok(v.map(str::to_owned)),
        }
        };
        Ok(Self {
            json,
            application_level: check(
                application_level,
                APPLICATION_LOG_LEVELS,
                "applicationLogLevel",
            )?,
            system_level: check(system_level, SYSTEM_LOG_LEVELS, "systemLogLevel")?,
        })
    }

    /// Lambda's default: text lines.
    pub fn is_text(&self) -> bool {
        !self.json
    }

    /// The application level in force (JSON only).
    pub fn application_level(&self) -> &str {
        self.application_level.as_deref().unwrap_or("INFO")
    }

    /// The system level in force (JSON only).
    pub fn system_level(&self) -> &str {
        self.system_level.as_deref().unwrap_or("INFO")
    }
}

impl FunctionVersion {
    /// Whether this is `$LATEST`.
    pub fn is_latest(&self) -> bool {
        self.version == LATEST
    }

    /// The parsed runtime; stored records were validated when written.
    pub fn runtime(&self) -> Option<Runtime> {
        Runtime::parse(&self.runtime)
    }

    /// Size of the environment as Lambda counts it against its 4 KB quota: the JSON
    /// serialisation of the variables map.
    pub fn environment_size(env: &BTreeMap<String, String>) -> usize {
        serde_json::to_string(env)
            .map(|s| s.len())
            .unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_parse() {
        assert_eq!(
            Runtime::parse("python3.12"),
            Some(Runtime::Python("python3.12".into()))
        );
        assert_eq!(
            Runtime::parse("provided.al2023"),
            Some(Runtime::Provided("provided.al2023".into()))
        );
        assert_eq!(
            Runtime::parse("nodejs20.x"),
            Some(Runtime::Node("nodejs20.x".into()))
        );
        assert_eq!(Runtime::parse("java21"), None);
        assert_eq!(
            Runtime::parse("nodejs22.x").unwrap().language_version(),
            Some("22")
        );
        assert_eq!(
            Runtime::parse("python3.9").unwrap().language_version(),
            Some("3.9")
        );
        assert_eq!(Runtime::parse("provided").unwrap().language_version(), None);
    }

    #[test]
    fn logging_settings_take_levels_only_with_json() {
        let json = LoggingSettings::new(Some("JSON"), Some("DEBUG"), None).unwrap();
        assert!(json.json);
        assert_eq!(json.application_level(), "DEBUG");
        assert_eq!(json.system_level(), "INFO");
        assert!(LoggingSettings::new(Some("Text"), None, None)
            .unwrap()
            .is_text());
        for (format, app, sys) in [
            (Some("XML"), None, None),
            (Some("Text"), Some("DEBUG"), None),
            (None, None, Some("WARN")),
            (Some("JSON"), Some("LOUD"), None),
            (Some("JSON"), None, Some("TRACE")),
        ] {
            assert!(
                LoggingSettings::new(format, app, sys).is_err(),
                "{format:?} {app:?} {sys:?}"
            );
        }
    }
}

//! Layers: zips of libraries and runtimes that functions share, merged read-only at `/opt`.
//!
//! A layer version is immutable once published. A function stores, for each layer it uses,
//! the version's ARN and the SHA-256 of its code, so deleting a layer version removes it
//! from listings and new uses while functions that already use it keep working, as on
//! Lambda.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Most layers one function may use.
pub const MAX_LAYERS_PER_FUNCTION: usize = 5;
/// Most bytes a function's code and its layers may take unzipped, together.
pub const MAX_UNZIPPED_WITH_LAYERS: u64 = 262_144_000;
/// Longest `LicenseInfo`.
pub const MAX_LICENSE_INFO: usize = 512;
/// Most runtimes (and, separately, architectures) a layer version may declare.
pub const MAX_COMPATIBLE_RUNTIMES: usize = 15;

/// Why a layer name or layer version ARN was refused; the message is shown to callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// Not a valid layer name.
    #[error("1 validation error detected: Value '{0}' at 'layerName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+ and have length between 1 and 140")]
    Name(String),
    /// Not a layer version ARN.
    #[error("Layer version arn `{0}` is not valid: expected arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION")]
    Arn(String),
}

/// A layer name: `[A-Za-z0-9_-]{1,140}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LayerName(String);

impl LayerName {
    /// Checks a layer name.
    pub fn new(s: &str) -> Result<Self, LayerError> {
        let valid = !s.is_empty()
            && s.len() <= 140
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(LayerError::Name(s.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LayerName {
    type Error = LayerError;
    fn try_from(s: String) -> Result<Self, LayerError> {
        Self::new(&s)
    }
}

impl From<LayerName> for String {
    fn from(n: LayerName) -> String {
        n.0
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed layer version ARN: `arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerVersionArn {
    /// The region it names.
    pub region: String,
    /// The account it names.
    pub account: String,
    /// The layer.
    pub name: LayerName,
    /// The version (1, 2, ...).
    pub version: u64,
}

impl LayerVersionArn {
    /// Parses an ARN.
    pub fn parse(s: &str) -> Result<Self, LayerError> {
        let bad = || LayerError::Arn(s.chars().take(256).collect());
        let parts: Vec<&str> = s.split(':').collect();
        let ["arn", partition, "lambda", region, account, "layer", name, version] =
            parts.as_slice()
        else {
            return Err(bad());
        };
        if !partition.starts_with("aws") || region.is_empty() || account.len() != 12 {
            return Err(bad());
        }
        if !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let version: u64 = version
            .parse()
            .ok()
            .filter(|v| *v >= 1 && !version.starts_with('0'))
            .ok_or_else(bad)?;
        Ok(Self {
            region: (*region).to_owned(),
            account: (*account).to_owned(),
            name: LayerName::new(name).map_err(|_| bad())?,
            version,
        })
    }
}

/// The ARN of layer `name` (without a version) in `region` and `account`.
pub fn layer_arn(region: &str, account: &str, name: &LayerName) -> String {
    format!("arn:aws:lambda:{region}:{account}:layer:{name}")
}

/// One published version of a layer.
///
/// A stored record: it tolerates fields it does not know, as function versions do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerVersion {
    /// The layer.
    pub name: LayerName,
    /// Its number, from 1; numbers are never reused, even after a deletion.
    pub version: u64,
    /// The description.
    #[serde(default)]
    pub description: String,
    /// Runtimes it declares itself compatible with (informational, as on Lambda).
    #[serde(default)]
    pub compatible_runtimes: Vec<String>,
    /// Architectures it declares itself compatible with.
    #[serde(default)]
    pub compatible_architectures: Vec<String>,
    /// Its license, as given.
    #[serde(default)]
    pub license_info: Option<String>,
    /// Base64 SHA-256 of its zip; also the key of its blob.
    pub code_sha256: String,
    /// Size of the zip in bytes.
    pub code_size: u64,
    /// When it was published, in milliseconds since the epoch.
    pub created_ms: i64,
}

/// A layer version as a function uses it: enough to run it after the version is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionLayer {
    /// The layer version's ARN.
    pub arn: String,
    /// Base64 SHA-256 of its zip.
    pub code_sha256: String,
    /// Size of the zip in bytes.
    pub code_size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text is parsed or refused, never a panic; a refusal quotes at most 256
        /// characters of it; what parses, printed back, parses to the same value.
        #[test]
        fn arns_from_anywhere_parse_or_are_refused(text in ".{0,300}") {
            match LayerVersionArn::parse(&text) {
                Ok(a) => {
                    let printed = format!(
                        "arn:aws:lambda:{}:{}:layer:{}:{}", a.region, a.account, a.name, a.version
                    );
                    prop_assert_eq!(LayerVersionArn::parse(&printed).unwrap(), a);
                }
                Err(e) => prop_assert!(e.to_string().chars().count() < 256 + 120),
            }
        }

        #[test]
        fn well_formed_arns_round_trip(
            region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
            account in "[0-9]{12}",
            name in "[A-Za-z0-9_-]{1,140}",
            version in 1u64..1_000_000,
        ) {
            let text = format!("arn:aws:lambda:{region}:{account}:layer:{name}:{version}");
            let a = LayerVersionArn::parse(&text).unwrap();
            prop_assert_eq!((a.region, a.account, a.name.to_string(), a.version), (region, account, name, version));
        }
    }

    #[test]
    fn layer_names_follow_lambdas_pattern() {
        assert!(LayerName::new("my-layer_1").is_ok());
        assert!(LayerName::new(&"a".repeat(140)).is_ok());
        for bad in ["", "a b", "a:b", "ä", &"a".repeat(141)] {
            assert!(LayerName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn layer_version_arns_parse_or_say_why() {
        let arn =
            LayerVersionArn::parse("arn:aws:lambda:us-east-1:123456789012:layer:deps:3").unwrap();
        assert_eq!(arn.name.as_str(), "deps");
        assert_eq!(arn.version, 3);
        assert_eq!(arn.account, "123456789012");
        for bad in [
            "arn:aws:lambda:us-east-1:123456789012:layer:deps",
            "arn:aws:lambda:us-east-1:123456789012:layer:deps:0",
            "arn:aws:lambda:us-east-1:123456789012:layer:deps:01",
            "arn:aws:lambda:us-east-1:123456789012:function:deps:1",
            "arn:aws:lambda:us-east-1:12345:layer:deps:1",
            "arn:aws:lambda:us-east-1:123456789012:layer:de ps:1",
            "deps:1",
        ] {
            assert!(LayerVersionArn::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Validated identifiers. A value of these types cannot hold an invalid name, so code past
//! the API edge never re-checks them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name, qualifier or ARN was refused; the message is shown to API callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a valid function name.
    #[error("function name `{0}` must be 1-64 characters of letters, digits, `-` and `_`")]
    FunctionName(String),
    /// Not a valid qualifier.
    #[error("qualifier `{0}` must be `$LATEST`, a version number or an alias name")]
    Qualifier(String),
    /// Not a valid alias name.
    #[error("alias name `{0}` must be 1-128 characters of letters, digits, `-` and `_`, and not only digits")]
    AliasName(String),
    /// Neither a function name nor an ARN.
    #[error("`{0}` is not a valid function name or ARN")]
    FunctionRef(String),
    /// An ARN of another account.
    #[error("the ARN names account `{found}` but this Warden serves account `{expected}`")]
    WrongAccount {
        /// What the ARN names.
        found: String,
        /// What this Warden serves.
        expected: String,
    },
    /// An ARN of another region.
    #[error("the ARN names region `{found}` but this Warden serves region `{expected}`")]
    WrongRegion {
        /// What the ARN names.
        found: String,
        /// What this Warden serves.
        expected: String,
    },
    /// Two different qualifiers for one reference.
    #[error("the qualifier is given twice and the two differ: `{0}` and `{1}`")]
    ConflictingQualifier(String, String),
    /// Not a 12-digit account id.
    #[error("account id `{0}` must be 12 digits")]
    AccountId(String),
    /// Not a region name.
    #[error("region `{0}` must look like `us-east-1`")]
    Region(String),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A function name: `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FunctionName(String);

impl FunctionName {
    /// Checks a function name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if (1..=64).contains(&s.len()) && s.chars().all(is_name_char) {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::FunctionName(s.to_owned()))
        }
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FunctionName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::new(&s)
    }
}
impl From<FunctionName> for String {
    fn from(n: FunctionName) -> String {
        n.0
    }
}
impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An alias name: like a function name but up to 128 characters and never all digits
/// (those are version numbers).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AliasName(String);

impl AliasName {
    /// Checks an alias name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let ok = (1..=128).contains(&s.len())
            && s.chars().all(is_name_char)
            && !s.chars().all(|c| c.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::AliasName(s.to_owned()))
        }
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for AliasName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::new(&s)
    }
}
impl From<AliasName> for String {
    fn from(n: AliasName) -> String {
        n.0
    }
}
impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What follows a function name after `:`: `$LATEST`, a published version or an alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// `$LATEST`.
    Latest,
    /// A published version.
    Version(u64),
    /// An alias.
    Alias(AliasName),
}

impl Qualifier {
    /// Parses `$LATEST`, a version number or an alias name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s == crate::LATEST {
            return Ok(Self::Latest);
        }
        if !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_digit()) {
            return s
                .parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .map(Self::Version)
                .ok_or_else(|| NameError::Qualifier(s.to_owned()));
        }
        AliasName::new(s)
            .map(Self::Alias)
            .map_err(|_| NameError::Qualifier(s.to_owned()))
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str(crate::LATEST),
            Self::Version(v) => write!(f, "{v}"),
            Self::Alias(a) => f.write_str(a.as_str()),
        }
    }
}

/// A 12-digit AWS-style account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    /// Checks an account id.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if s.len() == 12 && s.chars().all(|c| c.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::AccountId(s.to_owned()))
        }
    }
    /// The account id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for AccountId {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::new(&s)
    }
}
impl From<AccountId> for String {
    fn from(n: AccountId) -> String {
        n.0
    }
}
impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A region name such as `us-east-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// Checks a region name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let ok = (1..=32).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Region(s.to_owned()))
        }
    }
    /// The region name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Region {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::new(&s)
    }
}
impl From<Region> for String {
    fn from(n: Region) -> String {
        n.0
    }
}
impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A function as callers name it: a bare name, `name:qualifier`, `ACCOUNT:function:name`
/// or a full ARN, each optionally qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// The function.
    pub name: FunctionName,
    /// The version or alias, if one was named.
    pub qualifier: Option<Qualifier>,
}

impl FunctionRef {
    /// Parses any of Lambda's accepted spellings, checking that an ARN names this
    /// account and region.
    pub fn parse(s: &str, account: &AccountId, region: &Region) -> Result<Self, NameError> {
        let bad = || NameError::FunctionRef(s.to_owned());
        if s.is_empty() || s.len() > 170 {
            return Err(bad());
        }
        let parts: Vec<&str> = s.split(':').collect();
        let (name, qualifier) = match parts.as_slice() {
            [name] => (*name, None),
            [name, q] => (*name, Some(*q)),
            [acct, "function", name] => {
                check_account(acct, account)?;
                (*name, None)
            }
            [acct, "function", name, q] => {
                check_account(acct, account)?;
                (*name, Some(*q))
            }
            ["arn", partition, "lambda", reg, acct, "function", name, rest @ ..] => {
                if !partition.starts_with("aws") || rest.len() > 1 {
                    return Err(bad());
                }
                if *reg != region.as_str() {
                    return Err(NameError::WrongRegion {
                        found: (*reg).to_owned(),
                        expected: region.to_string(),
                    });
                }
                check_account(acct, account)?;
                (*name, rest.first().copied())
            }
            _ => return Err(bad()),
        };
        Ok(Self {
            name: FunctionName::new(name)?,
            qualifier: qualifier.map(Qualifier::parse).transpose()?,
        })
    }

    /// Combines a qualifier embedded in the name with a separate `Qualifier` parameter,
    /// refusing the pair when they disagree, as Lambda does.
    pub fn with_qualifier(mut self, param: Option<&str>) -> Result<Self, NameError> {
        if let Some(p) = param {
            let q = Qualifier::parse(p)?;
            match &self.qualifier {
                Some(existing) if *existing != q => {
                    return Err(NameError::ConflictingQualifier(
                        existing.to_string(),
                        q.to_string(),
                    ))
                }
                _ => self.qualifier = Some(q),
            }
        }
        Ok(self)
    }
}

fn check_account(found: &str, expected: &AccountId) -> Result<(), NameError> {
    if found == expected.as_str() {
        Ok(())
    } else {
        Err(NameError::WrongAccount {
            found: found.to_owned(),
            expected: expected.to_string(),
        })
    }
}

/// The ARN of a function, optionally qualified.
pub fn function_arn(
    region: &Region,
    account: &AccountId,
    name: &FunctionName,
    qualifier: Option<&str>,
) -> String {
    match qualifier {
        Some(q) => format!("arn:aws:lambda:{region}:{account}:function:{name}:{q}"),
        None => format!("arn:aws:lambda:{region}:{account}:function:{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn acct() -> AccountId {
        AccountId::new("123456789012").unwrap()
    }
    fn reg() -> Region {
        Region::new("us-east-1").unwrap()
    }

    #[test]
    fn parses_every_spelling() {
        let cases = [
            ("f", "f", None),
            ("f:7", "f", Some(Qualifier::Version(7))),
            ("f:$LATEST", "f", Some(Qualifier::Latest)),
            (
                "f:live",
                "f",
                Some(Qualifier::Alias(AliasName::new("live").unwrap())),
            ),
            ("123456789012:function:f", "f", None),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f",
                "f",
                None,
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f:3",
                "f",
                Some(Qualifier::Version(3)),
            ),
        ];
        for (input, name, q) in cases {
            let r = FunctionRef::parse(input, &acct(), &reg()).unwrap();
            assert_eq!(r.name.as_str(), name, "{input}");
            assert_eq!(r.qualifier, q, "{input}");
        }
    }

    #[test]
    fn refuses_bad_references() {
        for input in [
            "",
            "a b",
            "f:",
            "f:0",
            "a:b:c",
            "arn:aws:lambda:us-east-1:123456789012:function:f:1:2",
            &"x".repeat(65),
        ] {
            assert!(
                FunctionRef::parse(input, &acct(), &reg()).is_err(),
                "{input:?}"
            );
        }
        assert_eq!(
            FunctionRef::parse(
                "arn:aws:lambda:us-east-1:999999999999:function:f",
                &acct(),
                &reg()
            ),
            Err(NameError::WrongAccount {
                found: "999999999999".into(),
                expected: "123456789012".into()
            })
        );
    }

    #[test]
    fn conflicting_qualifiers_are_refused() {
        let r = FunctionRef::parse("f:1", &acct(), &reg()).unwrap();
        assert!(r.clone().with_qualifier(Some("1")).is_ok());
        assert!(r.with_qualifier(Some("2")).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = FunctionRef::parse(&s, &acct(), &reg());
        }

        #[test]
        fn valid_names_round_trip(s in "[a-zA-Z0-9_-]{1,64}") {
            let r = FunctionRef::parse(&s, &acct(), &reg()).unwrap();
            prop_assert_eq!(r.name.as_str(), s.as_str());
        }
    }
}

//! Secret hygiene: which plain environment values look like secrets (so that Warden can
//! warn that they belong in Secrets Manager and record a finding), and the redaction of
//! those values from a function's own log lines.
//!
//! The detector is hand-written (a few fixed shapes and an entropy measure, no regular
//! expression engine needed) and property-tested below: it never panics, never reports a
//! value in its reasons, and recognizes each known shape wherever it sits in a value.

/// Why a value looks like a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `AKIA`/`ASIA` and 16 base32 characters.
    AwsAccessKeyId,
    /// 40 characters of base64 with high entropy in a variable named like a secret.
    AwsSecretAccessKey,
    /// A PEM private key.
    PrivateKey,
    /// A token with a well-known prefix (GitHub, GitLab, Slack, Stripe, Google, ...).
    KnownToken(&'static str),
    /// A JSON Web Token.
    Jwt,
    /// A variable named like a secret (`PASSWORD`, `TOKEN`, ...) with a non-trivial value.
    SecretName,
    /// A long random-looking string.
    HighEntropy,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::AwsAccessKeyId => f.write_str("an AWS access key id"),
            Reason::AwsSecretAccessKey => f.write_str("an AWS secret access key"),
            Reason::PrivateKey => f.write_str("a private key"),
            Reason::KnownToken(kind) => write!(f, "a {kind} token"),
            Reason::Jwt => f.write_str("a JSON Web Token"),
            Reason::SecretName => f.write_str("a value in a variable named like a secret"),
            Reason::HighEntropy => f.write_str("a long random-looking string"),
        }
    }
}

const TOKEN_PREFIXES: &[(&str, &str, usize)] = &[
    ("ghp_", "GitHub", 36),
    ("gho_", "GitHub", 36),
    ("ghu_", "GitHub", 36),
    ("ghs_", "GitHub", 36),
    ("ghr_", "GitHub", 36),
    ("github_pat_", "GitHub", 40),
    ("glpat-", "GitLab", 20),
    ("xoxb-", "Slack", 20),
    ("xoxp-", "Slack", 20),
    ("xoxa-", "Slack", 20),
    ("sk_live_", "Stripe", 20),
    ("rk_live_", "Stripe", 20),
    ("sk-ant-", "Anthropic", 30),
    ("AIza", "Google API", 39),
];

const SECRET_NAMES: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
    "AUTH",
];

/// Shannon entropy of `s` in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

fn classes(s: &str) -> usize {
    [
        s.bytes().any(|b| b.is_ascii_lowercase()),
        s.bytes().any(|b| b.is_ascii_uppercase()),
        s.bytes().any(|b| b.is_ascii_digit()),
        s.bytes().any(|b| !b.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|x| **x)
    .count()
}

/// Runs of characters that can make up a token.
fn words(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-.".contains(c)))
        .filter(|w| !w.is_empty())
}

fn is_access_key_id(w: &str) -> bool {
    w.len() >= 20
        && w.char_indices().any(|(i, _)| {
            let rest = &w[i..];
            (rest.starts_with("AKIA") || rest.starts_with("ASIA"))
                && rest.len() >= 20
                && rest[4..20]
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        })
}

/// Why `value` of the variable `name` looks like a secret, if it does.
pub fn likely_secret(name: &str, value: &str) -> Option<Reason> {
    if value.contains("-----BEGIN") && value.contains("PRIVATE KEY") {
        return Some(Reason::PrivateKey);
    }
    let upper = name.to_ascii_uppercase();
    let named = SECRET_NAMES.iter().any(|n| upper.contains(n));
    for w in words(value) {
        if is_access_key_id(w) {
            return Some(Reason::AwsAccessKeyId);
        }
        for (prefix, kind, min) in TOKEN_PREFIXES {
            if let Some(at) = w.find(prefix) {
                if w.len() - at >= *min {
                    return Some(Reason::KnownToken(kind));
                }
            }
        }
        if w.starts_with("eyJ") && w.matches('.').count() == 2 && w.len() >= 30 {
            return Some(Reason::Jwt);
        }
        if w.len() == 40
            && named
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+')
            && entropy(w) >= 4.0
        {
            return Some(Reason::AwsSecretAccessKey);
        }
        if w.len() >= 32 && entropy(w) >= 4.5 && classes(w) >= 3 {
            return Some(Reason::HighEntropy);
        }
    }
    if value.len() >= 32
        && !value.contains(char::is_whitespace)
        && !value.contains("://")
        && entropy(value) >= 4.5
        && classes(value) >= 3
    {
        return Some(Reason::HighEntropy);
    }
    // A reference to where a secret lives is not a secret.
    let reference =
        value.starts_with("arn:") || value.starts_with("{{resolve:") || value.starts_with('/');
    if named && !reference && value.len() >= 8 && classes(value) >= 2 {
        return Some(Reason::SecretName);
    }
    None
}

/// Replaces known secret values in text with `****`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

impl Redactor {
    /// A redactor of the values of `variables` that look like secrets.
    pub fn of<'a>(variables: impl IntoIterator<Item = (&'a String, &'a String)>) -> Redactor {
        let mut needles: Vec<String> = variables
            .into_iter()
            .filter(|(k, v)| v.len() >= 6 && likely_secret(k, v).is_some())
            .map(|(_, v)| v.clone())
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor { needles }
    }

    /// Whether it redacts nothing.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every known secret value replaced.
    pub fn apply(&self, text: String) -> String {
        if self.needles.iter().all(|n| !text.contains(n.as_str())) {
            return text;
        }
        let mut out = text;
        for n in &self.needles {
            out = out.replace(n.as_str(), "****");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_shapes_are_recognised() {
        let cases = [
            (
                "KEY_ID",
                "AKIAIOSFODNN7EXAMPLE",
                Some(Reason::AwsAccessKeyId),
            ),
            (
                "X",
                "id=ASIAQWERTYUIOPASDF23;",
                Some(Reason::AwsAccessKeyId),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                Some(Reason::AwsSecretAccessKey),
            ),
            (
                "K",
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE...",
                Some(Reason::PrivateKey),
            ),
            (
                "GH",
                "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
                Some(Reason::KnownToken("GitHub")),
            ),
            (
                "S",
                "xoxb-1234567890-abcdefghij",
                Some(Reason::KnownToken("Slack")),
            ),
            (
                "J",
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl",
                Some(Reason::Jwt),
            ),
            ("DB_PASSWORD", "hunter2hunter2", Some(Reason::SecretName)),
            (
                "RANDOM",
                "Zx9!kQ2#mP7$vL4&nB8*cW1@rT6^yH3%",
                Some(Reason::HighEntropy),
            ),
        ];
        for (name, value, want) in cases {
            assert_eq!(likely_secret(name, value), want, "{name}={value}");
        }
        for (name, value) in [
            ("TABLE_NAME", "orders"),
            ("LOG_LEVEL", "DEBUG"),
            (
                "DB_PASSWORD_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf",
            ),
            ("REGION", "us-east-1"),
            ("URL", "https://example.com/api/v1/orders"),
            ("TOKEN_TTL", "300"),
        ] {
            assert_eq!(likely_secret(name, value), None, "{name}={value}");
        }
    }

    #[test]
    fn the_redactor_hides_only_secret_values() {
        let vars: std::collections::BTreeMap<String, String> = [
            ("DB_PASSWORD".to_owned(), "hunter2hunter2".to_owned()),
            ("TABLE".to_owned(), "orders".to_owned()),
        ]
        .into();
        let r = Redactor::of(&vars);
        assert_eq!(
            r.apply("connecting to orders with hunter2hunter2".into()),
            "connecting to orders with ****"
        );
        assert!(Redactor::of(&std::collections::BTreeMap::new()).is_empty());
    }

    proptest! {
        #[test]
        fn detection_never_panics(name in ".{0,20}", value in ".{0,200}") {
            let _ = likely_secret(&name, &value);
        }

        #[test]
        fn an_access_key_id_is_found_wherever_it_sits(
            prefix in "[a-z =:]{0,10}", id in "[A-Z2-7]{16}", suffix in "[a-z ;]{0,10}"
        ) {
            let value = format!("{prefix}AKIA{id}{suffix}");
            prop_assert!(likely_secret("X", &value).is_some());
        }

        #[test]
        fn redacted_text_never_holds_the_secret(
            secret in "[A-Za-z0-9]{12,30}", around in "[a-z ]{0,20}"
        ) {
            let vars: std::collections::BTreeMap<String, String> =
                [("API_TOKEN".to_owned(), format!("{secret}!x"))].into();
            let r = Redactor::of(&vars);
            let text = format!("{around}{secret}!x{around}");
            let out = r.apply(text);
            let needle = format!("{secret}!x");
            prop_assert!(!out.contains(needle.as_str()));
        }
    }
}

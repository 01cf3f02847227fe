//! Validated names: apps, domains and environment variables.
//!
//! Each constructor reports the first rule the input breaks, in words a user
//! can act on, and quotes the offending input (escaped, so control bytes in
//! hostile input cannot forge log lines or terminal output).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest app name. Names appear in DNS labels (`NAME.localhost`), Docker
/// object names and database role names, so they stay well under 63 bytes.
pub const APP_NAME_MAX: usize = 40;
/// Longest environment variable name.
pub const ENV_NAME_MAX: usize = 128;
/// Longest domain, as in RFC 1035.
pub const DOMAIN_MAX: usize = 253;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} {input:?} is invalid: {rule}")]
    Invalid {
        kind: &'static str,
        input: String,
        rule: &'static str,
    },
}

impl NameError {
    fn new(kind: &'static str, input: &str, rule: &'static str) -> Self {
        // Quote at most a screenful of the input: enough to recognise it.
        let input: String = input.chars().take(80).collect();
        NameError::Invalid { kind, input, rule }
    }

    /// The rule that was broken, without the input.
    pub fn rule(&self) -> &'static str {
        match self {
            NameError::Invalid { rule, .. } => rule,
        }
    }
}

fn check_label(kind: &'static str, input: &str, max: usize) -> Result<(), NameError> {
    if input.is_empty() {
        return Err(NameError::new(kind, input, "it must not be empty"));
    }
    if input.len() > max {
        return Err(NameError::new(
            kind,
            input,
            if max == APP_NAME_MAX {
                "it must be at most 40 characters long"
            } else {
                "each label must be at most 63 characters long"
            },
        ));
    }
    if !input
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(NameError::new(
            kind,
            input,
            "only lowercase letters a-z, digits 0-9 and hyphens are allowed",
        ));
    }
    if input.starts_with('-') || input.ends_with('-') {
        return Err(NameError::new(
            kind,
            input,
            "it must not start or end with a hyphen",
        ));
    }
    Ok(())
}

/// The name of an app: a DNS label of 1 to 40 characters made of lowercase
/// letters, digits and hyphens, not starting or ending with a hyphen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppName(String);

impl AppName {
    pub fn parse(input: &str) -> Result<Self, NameError> {
        check_label("app name", input, APP_NAME_MAX)?;
        if input.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(NameError::new(
                "app name",
                input,
                "it must start with a letter",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain every app gets unless it names its own.
    pub fn default_domain(&self) -> Domain {
        Domain(format!("{}.localhost", self.0))
    }
}

impl FromStr for AppName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for AppName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AppName> for String {
    fn from(value: AppName) -> Self {
        value.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host name an app is served on: lowercase, dot-separated DNS labels.
/// A leading `*.` label is allowed for wildcard domains.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    pub fn parse(input: &str) -> Result<Self, NameError> {
        const KIND: &str = "domain";
        if input.is_empty() {
            return Err(NameError::new(KIND, input, "it must not be empty"));
        }
        if input.len() > DOMAIN_MAX {
            return Err(NameError::new(
                KIND,
                input,
                "it must be at most 253 characters long",
            ));
        }
        let rest = input.strip_prefix("*.").unwrap_or(input);
        let labels: Vec<&str> = rest.split('.').collect();
        if labels.len() < 2 {
            return Err(NameError::new(
                KIND,
                input,
                "it must have at least two labels, such as shop.example.com or shop.localhost",
            ));
        }
        for label in labels {
            check_label(KIND, label, 63)?;
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Domain {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Domain {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Domain> for String {
    fn from(value: Domain) -> Self {
        value.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of an environment variable: a letter or underscore, then
/// letters, digits and underscores, as POSIX shells accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(input: &str) -> Result<Self, NameError> {
        const KIND: &str = "environment variable name";
        if input.is_empty() {
            return Err(NameError::new(KIND, input, "it must not be empty"));
        }
        if input.len() > ENV_NAME_MAX {
            return Err(NameError::new(
                KIND,
                input,
                "it must be at most 128 characters long",
            ));
        }
        let mut bytes = input.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !first_ok {
            return Err(NameError::new(
                KIND,
                input,
                "it must start with a letter or an underscore",
            ));
        }
        if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(NameError::new(
                KIND,
                input,
                "only letters, digits and underscores are allowed",
            ));
        }
        if input.starts_with("RAMPART_") {
            return Err(NameError::new(
                KIND,
                input,
                "names starting with RAMPART_ are reserved for the platform",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EnvName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for EnvName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EnvName> for String {
    fn from(value: EnvName) -> Self {
        value.0
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_follow_dns_label_rules() {
        for ok in ["a", "shop", "shop-2", "a1", &"x".repeat(40)] {
            assert!(AppName::parse(ok).is_ok(), "{ok} should be valid");
        }
        let cases = [
            ("", "it must not be empty"),
            (
                "Shop",
                "only lowercase letters a-z, digits 0-9 and hyphens are allowed",
            ),
            (
                "shop_1",
                "only lowercase letters a-z, digits 0-9 and hyphens are allowed",
            ),
            (
                "shöp",
                "only lowercase letters a-z, digits 0-9 and hyphens are allowed",
            ),
            ("-shop", "it must not start or end with a hyphen"),
            ("shop-", "it must not start or end with a hyphen"),
            ("1shop", "it must start with a letter"),
        ];
        for (input, rule) in cases {
            let err = AppName::parse(input).expect_err(input);
            assert_eq!(err.rule(), rule, "{input}");
        }
        let long = "x".repeat(41);
        assert_eq!(
            AppName::parse(&long).unwrap_err().rule(),
            "it must be at most 40 characters long"
        );
    }

    #[test]
    fn error_message_names_the_input_and_rule() {
        let err = AppName::parse("Bad\nName").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("app name \"Bad\\nName\" is invalid"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn domains() {
        assert!(Domain::parse("shop.example.com").is_ok());
        assert!(Domain::parse("*.example.com").is_ok());
        assert!(Domain::parse("shop.localhost").is_ok());
        assert!(Domain::parse("localhost").is_err());
        assert!(Domain::parse("shop..example.com").is_err());
        assert!(Domain::parse("Shop.example.com").is_err());
        assert!(Domain::parse("*.*.example.com").is_err());
        assert!(Domain::parse(&format!("{}.com", "a".repeat(64))).is_err());
        let app = AppName::parse("shop").unwrap();
        assert_eq!(app.default_domain().as_str(), "shop.localhost");
    }

    #[test]
    fn env_names() {
        assert!(EnvName::parse("DATABASE_URL").is_ok());
        assert!(EnvName::parse("_x1").is_ok());
        assert!(EnvName::parse("1X").is_err());
        assert!(EnvName::parse("A-B").is_err());
        assert!(EnvName::parse("A=B").is_err());
        assert!(EnvName::parse("RAMPART_X").is_err());
        assert!(EnvName::parse("").is_err());
    }
}

//! Opaque identifiers.
//!
//! Identifiers carry a short type prefix and 20 random base32 characters
//! (100 bits). They say nothing about the thing they name, which is what lets
//! the audit chain refer to users by id and still verify after a user's
//! personal data has been erased.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
const RANDOM_LEN: usize = 20;

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..RANDOM_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn well_formed(prefix: &str, text: &str) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == RANDOM_LEN && rest.bytes().all(|b| ALPHABET.contains(&b)))
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random identifier.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_suffix()))
            }

            /// Accepts only identifiers of this type's exact shape.
            pub fn parse(text: &str) -> Option<Self> {
                well_formed($prefix, text).then(|| Self(text.to_owned()))
            }

            /// Wraps a value read back from the store, which only ever holds
            /// identifiers this type generated.
            pub fn from_stored(text: String) -> Self {
                Self(text)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_id!(
    /// Identifies a user for the lifetime of the installation.
    UserId,
    "usr_"
);
opaque_id!(
    /// Identifies an app; stays the same if the app is renamed later.
    AppId,
    "app_"
);
opaque_id!(
    /// Identifies an API token without revealing it.
    TokenId,
    "tok_"
);
opaque_id!(
    /// Identifies one API request across logs, responses and the audit log.
    RequestId,
    "req_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = UserId::generate();
        let b = UserId::generate();
        assert_ne!(a, b);
        assert_eq!(UserId::parse(a.as_str()), Some(a.clone()));
        assert!(AppId::parse(a.as_str()).is_none(), "prefix is checked");
        assert!(TokenId::parse("tok_short").is_none());
        assert!(TokenId::parse("tok_AAAAAAAAAAAAAAAAAAAA").is_none());
    }
}

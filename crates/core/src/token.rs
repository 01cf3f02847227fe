//! The API token format.
//!
//! A token reads `rmp_` + 32 random base62 characters (about 190 bits) + a
//! 6-character base62 CRC-32 of the random part. The prefix lets secret
//! scanners recognise leaked tokens; the checksum lets the server refuse a
//! mistyped or made-up token without touching the store. Only the SHA-256 of
//! the whole token is ever stored: tokens are long random strings, so a fast
//! hash is enough, and a lookup by hash does not leak timing about the value.

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::Secret;

pub const PREFIX: &str = "rmp_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Total length of a token in characters.
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

/// The stored form of a token: the hex SHA-256 of its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub String);

fn checksum(random: &str) -> String {
    let mut value = crc32fast::hash(random.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

/// Creates a new random token.
pub fn generate() -> Secret<String> {
    let mut rng = rand::rng();
    let random: String = (0..RANDOM_LEN)
        .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
        .collect();
    let sum = checksum(&random);
    Secret::new(format!("{PREFIX}{random}{sum}"))
}

/// Why a presented token was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedToken {
    #[error("the token does not start with {PREFIX}")]
    Prefix,
    #[error("the token has the wrong length")]
    Length,
    #[error("the token contains characters outside base62")]
    Alphabet,
    #[error("the token's checksum does not match; it was probably mistyped or truncated")]
    Checksum,
}

/// Checks the shape and checksum of a presented token.
pub fn check(token: &str) -> Result<(), MalformedToken> {
    let body = token.strip_prefix(PREFIX).ok_or(MalformedToken::Prefix)?;
    if body.len() != RANDOM_LEN + CHECKSUM_LEN {
        return Err(MalformedToken::Length);
    }
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(MalformedToken::Alphabet);
    }
    let (random, sum) = body.split_at(RANDOM_LEN);
    if checksum(random) != sum {
        return Err(MalformedToken::Checksum);
    }
    Ok(())
}

/// The value stored in place of a token.
pub fn hash(token: &str) -> TokenHash {
    TokenHash(hex::encode(Sha256::digest(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_unique() {
        let a = generate();
        let b = generate();
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert!(check(a.expose()).is_ok());
        assert_ne!(a.expose(), b.expose());
        assert_ne!(hash(a.expose()), hash(b.expose()));
    }

    #[test]
    fn damaged_tokens_are_refused() {
        let token = generate().into_inner();
        assert_eq!(check(&token[1..]), Err(MalformedToken::Prefix));
        assert_eq!(
            check(&token[..token.len() - 1]),
            Err(MalformedToken::Length)
        );
        let mut flipped = token.clone().into_bytes();
        let i = PREFIX.len() + 3;
        flipped[i] = if flipped[i] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(check(&flipped), Err(MalformedToken::Checksum));
        let mut bad = token.clone();
        bad.replace_range(5..6, "!");
        assert_eq!(check(&bad), Err(MalformedToken::Alphabet));
    }
}

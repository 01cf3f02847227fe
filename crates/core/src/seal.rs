//! The one way Rampart seals bytes: XChaCha20-Poly1305 with a random
//! 24-byte nonce, laid out as `nonce ‖ ciphertext ‖ tag`. The associated
//! data names the place a value belongs to, so a sealed value moved to
//! another place does not open. Backups, their key slots and secrets at
//! rest all use it.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Length of the nonce that starts every sealed value.
pub const NONCE_LEN: usize = 24;
/// Bytes a sealed value has beyond its plaintext: the nonce and the tag.
pub const OVERHEAD: usize = NONCE_LEN + 16;

/// A 256-bit sealing key. Its `Debug` form hides it.
#[derive(Clone)]
pub struct SealingKey(XChaCha20Poly1305);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(***)")
    }
}

impl SealingKey {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(key.into()))
    }

    /// Seals `plaintext` for the place named by `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        // Encryption fails only past 256 GiB; what Rampart seals (chunks,
        // objects, keys, values bounded by the API's body limit) is far
        // smaller.
        let body = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        out.extend_from_slice(&body);
        out
    }

    /// Opens what [`SealingKey::seal`] made for the same `aad`; `None` for a
    /// wrong key, a wrong place or damaged bytes, which cannot be told apart.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < OVERHEAD {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.0
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_place() {
        let key = SealingKey::new(&[7; 32]);
        let sealed = key.seal(b"place", b"secret");
        assert_eq!(sealed.len(), b"secret".len() + OVERHEAD);
        assert_eq!(key.open(b"place", &sealed).as_deref(), Some(&b"secret"[..]));
        assert_eq!(key.open(b"elsewhere", &sealed), None);
        assert_eq!(SealingKey::new(&[8; 32]).open(b"place", &sealed), None);
        let mut damaged = sealed.clone();
        damaged[30] ^= 1;
        assert_eq!(key.open(b"place", &damaged), None);
        assert_eq!(key.open(b"place", &sealed[..OVERHEAD - 1]), None);
        assert_ne!(key.seal(b"place", b"secret"), sealed, "fresh nonces");
        assert!(!format!("{key:?}").contains('7'));
    }
}

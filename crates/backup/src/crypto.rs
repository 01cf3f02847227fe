//! Keys, sealing and identifiers.
//!
//! A repository has one random master key set: an encryption key for
//! XChaCha20-Poly1305, an id key for keyed BLAKE3 chunk ids, and a MAC key
//! for authenticating key slots. Passwords never encrypt data: each key slot
//! wraps the master keys under a key derived from one password with
//! Argon2id, so passwords can be added, changed and removed without touching
//! data.

use argon2::{Algorithm, Argon2, Params, Version};
use rampart_core::seal::SealingKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use rampart_core::seal::{NONCE_LEN, OVERHEAD};

/// A 32-byte identifier: the keyed BLAKE3 of a blob's plaintext, or the
/// plain BLAKE3 of a stored object's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 32]);

impl Id {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Id(out))
    }

    /// The plain BLAKE3 of stored bytes: the name of packs, indexes,
    /// snapshots and key slots, so any changed byte is noticed without a key.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Id(*blake3::hash(bytes).as_bytes())
    }

    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Id::parse(&text).ok_or_else(|| serde::de::Error::custom("an id is 64 hexadecimal digits"))
    }
}

/// The master keys of a repository.
#[derive(Clone)]
pub struct MasterKeys {
    cipher: SealingKey,
    raw: [u8; 96],
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeys(***)")
    }
}

impl MasterKeys {
    pub fn generate() -> Self {
        let mut raw = [0u8; 96];
        rand::rng().fill_bytes(&mut raw);
        Self::from_raw(raw)
    }

    fn from_raw(raw: [u8; 96]) -> Self {
        let mut enc = [0u8; 32];
        enc.copy_from_slice(&raw[..32]);
        Self {
            cipher: SealingKey::new(&enc),
            raw,
        }
    }

    fn id_key(&self) -> &[u8; 32] {
        self.raw[32..64].try_into().unwrap_or(&[0; 32])
    }

    fn mac_key(&self) -> &[u8; 32] {
        self.raw[64..96].try_into().unwrap_or(&[0; 32])
    }

    /// The id of a blob: keyed BLAKE3 of its plaintext, so ids reveal
    /// nothing about content to anyone without the key.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(self.id_key(), plaintext).as_bytes())
    }

    /// A MAC over `bytes` with the repository's MAC key.
    pub fn mac(&self, bytes: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(self.mac_key(), bytes).as_bytes()
    }

    /// `nonce ‖ ciphertext ‖ tag` (see [`rampart_core::seal`]).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.cipher.seal(aad, plaintext)
    }

    /// Opens what [`MasterKeys::seal`] produced for the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.cipher.open(aad, sealed)
    }
}

/// Argon2id cost parameters, stored in each key slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// OWASP's first recommended Argon2id configuration, with more memory:
    /// 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };

    /// Refuses parameters that are too weak to protect a password or so
    /// large that opening the repository would exhaust memory.
    pub fn check(&self) -> Result<()> {
        if !(8 * 1024..=4 * 1024 * 1024).contains(&self.m_kib)
            || !(1..=64).contains(&self.t)
            || !(1..=16).contains(&self.p)
        {
            return Err(Error::Invalid(format!(
                "Argon2id parameters m={} KiB, t={}, p={} are outside the accepted range",
                self.m_kib, self.t, self.p
            )));
        }
        Ok(())
    }

    /// Derives a 32-byte key from `password` and `salt`.
    pub fn derive(&self, password: &[u8], salt: &[u8]) -> Result<[u8; 32]> {
        self.check()?;
        let params = Params::new(self.m_kib, self.t, self.p, Some(32))
            .map_err(|e| Error::Invalid(format!("Argon2id parameters: {e}")))?;
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password, salt, &mut out)
            .map_err(|e| Error::Invalid(format!("Argon2id: {e}")))?;
        Ok(out)
    }
}

const SLOT_AAD: &[u8] = b"rampart-backup key slot v1";

/// Wraps `keys` under `password`; returns (salt, sealed master keys).
pub fn wrap(keys: &MasterKeys, password: &[u8], kdf: KdfParams) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut salt = vec![0u8; 32];
    rand::rng().fill_bytes(&mut salt);
    let kek = kdf.derive(password, &salt)?;
    let sealed = SealingKey::new(&kek).seal(SLOT_AAD, &keys.raw);
    Ok((salt, sealed))
}

/// Unwraps master keys with `password`; `None` when the password is wrong
/// or the slot is damaged (the two cannot be told apart, by design).
pub fn unwrap(
    password: &[u8],
    kdf: KdfParams,
    salt: &[u8],
    sealed: &[u8],
) -> Result<Option<MasterKeys>> {
    let kek = kdf.derive(password, salt)?;
    let Some(raw) = SealingKey::new(&kek).open(SLOT_AAD, sealed) else {
        return Ok(None);
    };
    let Ok(raw) = <[u8; 96]>::try_from(raw.as_slice()) else {
        return Ok(None);
    };
    Ok(Some(MasterKeys::from_raw(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_kib: 8 * 1024,
        t: 1,
        p: 1,
    };

    #[test]
    fn wrapped_keys_open_only_with_their_password() {
        let keys = MasterKeys::generate();
        let (salt, sealed) = wrap(&keys, b"correct horse", FAST).unwrap();
        let opened = unwrap(b"correct horse", FAST, &salt, &sealed)
            .unwrap()
            .unwrap();
        assert_eq!(opened.blob_id(b"x"), keys.blob_id(b"x"));
        assert!(unwrap(b"wrong", FAST, &salt, &sealed).unwrap().is_none());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(
            unwrap(b"correct horse", FAST, &salt, &flipped)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKeys::generate();
        let b = MasterKeys::generate();
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_eq!(a.blob_id(b"same"), a.blob_id(b"same"));
        assert_ne!(a.blob_id(b"same").0, *blake3::hash(b"same").as_bytes());
    }

    #[test]
    fn sealing_binds_associated_data() {
        let keys = MasterKeys::generate();
        let sealed = keys.seal(b"one", b"payload");
        assert_eq!(keys.open(b"one", &sealed).unwrap(), b"payload");
        assert!(keys.open(b"two", &sealed).is_none());
        assert!(keys.open(b"one", &sealed[..20]).is_none());
    }

    #[test]
    fn weak_or_huge_kdf_parameters_are_refused() {
        assert!(
            KdfParams {
                m_kib: 1024,
                t: 1,
                p: 1
            }
            .check()
            .is_err()
        );
        assert!(
            KdfParams {
                m_kib: 64 * 1024 * 1024,
                t: 1,
                p: 1
            }
            .check()
            .is_err()
        );
        assert!(KdfParams::DEFAULT.check().is_ok());
    }
}

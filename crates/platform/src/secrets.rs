//! The master key and sealed values.
//!
//! Secret values are sealed with XChaCha20-Poly1305 under a 256-bit master
//! key that lives in `DATA/master.key`, never in the database, so a copy of
//! `rampart.db` alone reveals no secret. Each sealed value is
//! `nonce (24 bytes) ‖ ciphertext ‖ tag`, and the associated data binds it to
//! its place (for example app id and variable name), so a value copied into
//! another row fails to open instead of leaking into the wrong app.

use std::fs;
use std::path::{Path, PathBuf};

use rampart_core::seal::SealingKey;

const HEADER: &str = "rampart-master-key v1";
const KEY_CHECK_AAD: &[u8] = b"rampart/key-check/v1";
const KEY_CHECK_PLAINTEXT: &[u8] = b"rampart master key check";

/// Why the master key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{path} is missing but {db} already holds data sealed with it; restore the key file from \
         your backup (Rampart will not create a new key over existing data)"
    )]
    Missing { path: PathBuf, db: PathBuf },
    #[error("{path} is corrupt: {reason}; restore the key file from your backup")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} does not match the data in {db}: it is not the key this data was sealed with; \
         restore the right key file from your backup"
    )]
    Mismatch { path: PathBuf, db: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A sealed value failed to open: wrong key, wrong place or damaged bytes.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("a sealed value could not be opened: it is damaged or does not belong here")]
pub struct OpenError;

/// The key that seals every secret at rest.
pub struct MasterKey {
    cipher: SealingKey,
    /// A one-way derivative of the key, for stable public labels.
    label_seed: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Reads the key file, or creates one when `may_create` (there is no data
    /// that an existing key could have sealed).
    pub fn load_or_create(path: &Path, db: &Path, may_create: bool) -> Result<Self, KeyError> {
        match fs::read(path) {
            Ok(bytes) => Self::parse(path, &bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if !may_create {
                    return Err(KeyError::Missing {
                        path: path.to_owned(),
                        db: db.to_owned(),
                    });
                }
                Self::create(path)
            }
            Err(source) => Err(KeyError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, KeyError> {
        let corrupt = |reason: &str| KeyError::Corrupt {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| corrupt("it is not text"))?;
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(corrupt("its first line is not \"rampart-master-key v1\""));
        }
        let hex_key = lines
            .next()
            .ok_or_else(|| corrupt("the key line is missing"))?;
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(corrupt("it has unexpected lines after the key"));
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut key)
            .map_err(|_| corrupt("the key is not 64 hexadecimal digits"))?;
        if key == [0u8; 32] {
            return Err(corrupt("the key is all zeros"));
        }
        Ok(Self::from_bytes(&key))
    }

    fn create(path: &Path) -> Result<Self, KeyError> {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        let text = format!("{HEADER}\n{}\n", hex::encode(key));
        write_private(path, text.as_bytes(), false).map_err(|source| KeyError::Io {
            action: "create",
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::from_bytes(&key))
    }

    pub fn from_bytes(key: &[u8; 32]) -> Self {
        use sha2::Digest;
        let mut seed = sha2::Sha256::new();
        seed.update(b"rampart/label-seed/v1\0");
        seed.update(key);
        Self {
            cipher: SealingKey::new(key),
            label_seed: seed.finalize().into(),
        }
    }

    /// A 32-byte secret derived from the key for `context` (the key that
    /// makes pseudonyms): stable for an installation, unrelated to any
    /// other derived value.
    pub fn derive_secret(&self, context: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"rampart/secret/v1\0");
        h.update(self.label_seed);
        h.update(context.as_bytes());
        h.finalize().into()
    }

    /// A short public label derived from the key and `context`: stable for
    /// an installation, and reveals nothing about the key.
    pub fn derive_label(&self, context: &str) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.label_seed);
        h.update(context.as_bytes());
        hex::encode(&h.finalize()[..6])
    }

    /// Seals `plaintext` for the place named by `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.cipher.seal(aad, plaintext)
    }

    /// Opens a value sealed for the place named by `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        self.cipher.open(aad, sealed).ok_or(OpenError)
    }

    /// A value stored beside the data that proves later that this key is the
    /// one the data was sealed with.
    pub fn check_value(&self) -> String {
        hex::encode(self.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT))
    }

    /// Whether `value` (from [`MasterKey::check_value`]) was made with this key.
    pub fn matches(&self, value: &str) -> bool {
        hex::decode(value)
            .ok()
            .and_then(|sealed| self.open(KEY_CHECK_AAD, &sealed).ok())
            .is_some_and(|plain| plain == KEY_CHECK_PLAINTEXT)
    }
}

/// Private files (mode 0600) are written the same way everywhere.
pub use rampart_edge::pki::write_private;

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn seal_and_open_round_trip_bound_to_their_place() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let sealed = key.seal(b"app_1/DB_PASSWORD", b"s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(key.open(b"app_1/DB_PASSWORD", &sealed).unwrap(), b"s3cret");
        assert!(key.open(b"app_2/DB_PASSWORD", &sealed).is_err());
        let other = MasterKey::from_bytes(&[8; 32]);
        assert!(other.open(b"app_1/DB_PASSWORD", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(key.open(b"app_1/DB_PASSWORD", &flipped).is_err());
        assert!(key.open(b"app_1/DB_PASSWORD", &sealed[..10]).is_err());
    }

    #[test]
    fn key_check_tells_keys_apart() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let check = key.check_value();
        assert!(key.matches(&check));
        assert!(!MasterKey::from_bytes(&[8; 32]).matches(&check));
        assert!(!key.matches("zz"));
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let db = dir.path().join("rampart.db");
        let key = MasterKey::load_or_create(&path, &db, true).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = MasterKey::load_or_create(&path, &db, false).unwrap();
        assert!(again.matches(&key.check_value()));
    }

    #[test]
    fn missing_or_corrupt_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let db = dir.path().join("rampart.db");
        let err = MasterKey::load_or_create(&path, &db, false).unwrap_err();
        assert!(matches!(err, KeyError::Missing { .. }));
        assert!(!path.exists(), "no key is created over existing data");

        for bad in [
            &b"\xff\xfe"[..],
            b"",
            b"rampart-master-key v1\n",
            b"rampart-master-key v1\nabcd\n",
            b"rampart-master-key v2\n0000000000000000000000000000000000000000000000000000000000000001\n",
            b"rampart-master-key v1\n0000000000000000000000000000000000000000000000000000000000000000\n",
        ] {
            fs::write(&path, bad).unwrap();
            let err = MasterKey::load_or_create(&path, &db, true).unwrap_err();
            assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
            assert_eq!(fs::read(&path).unwrap(), bad, "a corrupt key is never replaced");
        }
    }
}

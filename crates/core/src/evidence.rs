//! The evidence bundle's format: what makes an export provably unedited.
//!
//! A bundle is a folder of files. `manifest.json` lists every other file
//! with its SHA-256, the period it covers and the Ed25519 public key of the
//! installation that exported it; `manifest.sig` holds the signature of
//! the manifest's exact bytes, in hex. Verifying checks the signature, then
//! every file against the manifest, and refuses files the manifest does
//! not list: one byte changed, added or taken away anywhere fails it.
//! The key in the manifest proves only that the bundle is whole; that it
//! came from a given installation is proven by comparing that key (or its
//! fingerprint) with the one the installation printed at export.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FORMAT: &str = "rampart-evidence/1";
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
/// The most files a bundle holds.
const MAX_FILES: usize = 64;

/// What the signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub from: String,
    pub to: String,
    pub exported_at: String,
    pub exported_by: String,
    /// The Ed25519 public key, hex.
    pub public_key: String,
    /// Each file's SHA-256, hex, by name.
    pub files: BTreeMap<String, String>,
}

/// What a verified bundle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub manifest: Manifest,
    /// The key's fingerprint, as [`fingerprint`] gives it.
    pub fingerprint: String,
}

/// A file name a bundle may hold: plain, no folders.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A short, readable form of a public key: the first 16 bytes of its
/// SHA-256, hex, in groups of four.
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    hex::encode(&digest[..16])
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// Signs `files` into a bundle: the files plus the manifest and its
/// signature.
pub fn seal(
    key: &SigningKey,
    from: &str,
    to: &str,
    exported_at: &str,
    exported_by: &str,
    mut files: BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    if let Some(bad) = files
        .keys()
        .find(|n| !valid_name(n) || *n == MANIFEST || *n == SIGNATURE)
    {
        return Err(format!("{bad:?} cannot be a file of a bundle"));
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        from: from.into(),
        to: to.into(),
        exported_at: exported_at.into(),
        exported_by: exported_by.into(),
        public_key: hex::encode(key.verifying_key().as_bytes()),
        files: files
            .iter()
            .map(|(name, bytes)| (name.clone(), hex::encode(Sha256::digest(bytes))))
            .collect(),
    };
    let mut text = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    text.push(b'\n');
    let signature = key.sign(&text);
    files.insert(
        SIGNATURE.into(),
        format!("{}\n", hex::encode(signature.to_bytes())).into_bytes(),
    );
    files.insert(MANIFEST.into(), text);
    Ok(files)
}

/// Checks a bundle read whole: the signature, every file against the
/// manifest, and no file besides. With `pinned` (a public key in hex, or
/// its fingerprint), the bundle must be signed by that key.
pub fn verify(files: &BTreeMap<String, Vec<u8>>, pinned: Option<&str>) -> Result<Verified, String> {
    if files.len() > MAX_FILES {
        return Err(format!("a bundle holds at most {MAX_FILES} files"));
    }
    let text = files
        .get(MANIFEST)
        .ok_or_else(|| format!("{MANIFEST} is missing"))?;
    let signature = files
        .get(SIGNATURE)
        .ok_or_else(|| format!("{SIGNATURE} is missing"))?;
    let manifest: Manifest =
        serde_json::from_slice(text).map_err(|e| format!("{MANIFEST} is not a manifest: {e}"))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "{MANIFEST} is of format {:?}, not {FORMAT}",
            manifest.format
        ));
    }
    let key: [u8; 32] = hex::decode(&manifest.public_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or("the manifest's public key is not 32 bytes of hex")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "the manifest's public key is invalid")?;
    let signature: [u8; 64] = std::str::from_utf8(signature)
        .ok()
        .and_then(|s| hex::decode(s.strip_suffix('\n').unwrap_or(s)).ok())
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("{SIGNATURE} is not 64 bytes of hex"))?;
    key.verify_strict(text, &Signature::from_bytes(&signature))
        .map_err(|_| {
            format!("the signature does not match {MANIFEST}: it was changed after export")
        })?;
    let fingerprint = fingerprint(key.as_bytes());
    if let Some(pinned) = pinned {
        let pinned = pinned.trim().to_ascii_lowercase();
        if pinned != manifest.public_key && pinned != fingerprint {
            return Err(format!(
                "the bundle is signed by key {fingerprint}, not the expected {pinned}"
            ));
        }
    }
    for (name, digest) in &manifest.files {
        let bytes = files
            .get(name)
            .ok_or_else(|| format!("{name} is listed in the manifest but missing"))?;
        if hex::encode(Sha256::digest(bytes)) != *digest {
            return Err(format!("{name} was changed after export"));
        }
    }
    if let Some(extra) = files
        .keys()
        .find(|n| *n != MANIFEST && *n != SIGNATURE && !manifest.files.contains_key(*n))
    {
        return Err(format!("{extra} is not part of the exported bundle"));
    }
    Ok(Verified {
        manifest,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(key: &SigningKey) -> BTreeMap<String, Vec<u8>> {
        let files = BTreeMap::from([
            ("evidence.json".to_owned(), b"{\"a\": 1}".to_vec()),
            ("report.html".to_owned(), b"<html></html>".to_vec()),
        ]);
        seal(key, "2026-01-01", "2026-04-01", "now", "owner", files).unwrap()
    }

    #[test]
    fn a_sealed_bundle_verifies_and_any_change_breaks_it() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let files = bundle(&key);
        let verified = verify(&files, None).unwrap();
        assert_eq!(verified.manifest.files.len(), 2);
        assert!(verify(&files, Some(&verified.fingerprint)).is_ok());
        assert!(verify(&files, Some(&verified.manifest.public_key)).is_ok());

        // Every byte of every file counts.
        for name in files.keys() {
            for at in [0, files[name].len() / 2, files[name].len() - 1] {
                let mut changed = files.clone();
                changed.get_mut(name).unwrap()[at] ^= 1;
                assert!(verify(&changed, None).is_err(), "{name} byte {at}");
            }
        }
        let mut extra = files.clone();
        extra.insert("notes.txt".into(), b"added".to_vec());
        assert!(verify(&extra, None).unwrap_err().contains("not part"));
        let mut missing = files.clone();
        missing.remove("report.html");
        assert!(verify(&missing, None).unwrap_err().contains("missing"));

        // Re-signed with another key: whole, but not from the installation.
        let other = SigningKey::from_bytes(&[9; 32]);
        let forged = bundle(&other);
        assert!(verify(&forged, None).is_ok());
        let error = verify(&forged, Some(&verified.fingerprint)).unwrap_err();
        assert!(error.contains("not the expected"), "{error}");
    }

    #[test]
    fn garbled_manifests_and_names_are_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut files = bundle(&key);
        files.insert(MANIFEST.into(), b"\xff\xfe not json".to_vec());
        assert!(verify(&files, None).is_err());
        let mut files = bundle(&key);
        files.insert(SIGNATURE.into(), b"zz".to_vec());
        assert!(verify(&files, None).unwrap_err().contains("hex"));
        for bad in ["", "../x", "a/b", ".hidden", "x\0y", MANIFEST] {
            let files = BTreeMap::from([(bad.to_owned(), b"x".to_vec())]);
            assert!(seal(&key, "a", "b", "c", "d", files).is_err(), "{bad:?}");
        }
    }
}

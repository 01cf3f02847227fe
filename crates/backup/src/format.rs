//! The on-disk format, version 1. `docs/backup-format.md` is the
//! specification; keep the two in step.
//!
//! Sealed objects (config, index, snapshot, lock) are
//! `"RMPBAK" ‖ version (u16 BE) ‖ kind (u8)` followed by
//! `nonce ‖ XChaCha20-Poly1305(zstd(JSON))`, with the 9-byte header as
//! associated data: a header changed to another kind or version fails to
//! open. Packs and key slots have their own layouts, below.

use serde::{Deserialize, Serialize};

use crate::crypto::{Id, KdfParams, MasterKeys};
use crate::error::{Error, Result};

/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
const MAGIC: &[u8; 6] = b"RMPBAK";
const HEADER_LEN: usize = 9;
const PACK_MAGIC: &[u8; 4] = b"RMPK";
/// Length of a pack's trailer: header length, magic, version.
pub const PACK_TRAILER: usize = 4 + 4 + 2;

/// What a sealed object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    Config = 1,
    Index = 2,
    Snapshot = 3,
    Lock = 4,
}

fn header(kind: SealedKind) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..6].copy_from_slice(MAGIC);
    h[6..8].copy_from_slice(&VERSION.to_be_bytes());
    h[8] = kind as u8;
    h
}

/// Seals `value` as an object of `kind`.
pub fn seal_object<T: Serialize>(keys: &MasterKeys, kind: SealedKind, value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let packed = zstd::bulk::compress(&json, 3).unwrap_or(json);
    let h = header(kind);
    let mut out = h.to_vec();
    out.extend_from_slice(&keys.seal(&h, &packed));
    out
}

/// Checks an object's header; `name` is used in errors.
pub fn check_header(name: &str, bytes: &[u8], kind: SealedKind) -> Result<()> {
    if bytes.len() < HEADER_LEN || &bytes[..6] != MAGIC {
        return Err(Error::damaged(
            name,
            "it does not start with the Rampart object header",
        ));
    }
    let version = u16::from_be_bytes([bytes[6], bytes[7]]);
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            object: name.to_owned(),
            found: version,
            supported: VERSION,
        });
    }
    if bytes[8] != kind as u8 {
        return Err(Error::damaged(name, format!("it is not a {kind:?} object")));
    }
    Ok(())
}

/// Opens an object sealed by [`seal_object`].
pub fn open_object<T: for<'de> Deserialize<'de>>(
    keys: &MasterKeys,
    name: &str,
    bytes: &[u8],
    kind: SealedKind,
) -> Result<T> {
    check_header(name, bytes, kind)?;
    let (h, sealed) = bytes.split_at(HEADER_LEN);
    let packed = keys.open(h, sealed).ok_or_else(|| {
        Error::damaged(name, "authentication failed (changed or truncated bytes)")
    })?;
    let json = zstd::bulk::decompress(&packed, 256 * 1024 * 1024)
        .map_err(|e| Error::damaged(name, format!("cannot decompress: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| Error::damaged(name, format!("cannot decode: {e}")))
}

/// The repository's settings, sealed in the object `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub version: u16,
    /// Random id of the repository.
    pub id: String,
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for blobs.
    pub compression: i32,
    pub created: String,
}

/// Content-defined chunking parameters. The seed perturbs the gear table so
/// chunk boundaries differ between repositories and cannot be used to
/// fingerprint known files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
    pub seed: u64,
}

/// A key slot, stored in plain JSON under `keys/ID`: the master keys wrapped
/// under one password, and a MAC by the master keys over everything else so
/// that `check` notices a changed slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySlot {
    pub format: String,
    pub version: u16,
    pub created: String,
    pub hostname: String,
    pub kdf: KdfParams,
    /// Base64 salt.
    pub salt: String,
    /// Base64 `nonce ‖ sealed master keys`.
    pub wrapped: String,
    /// Hex MAC over the slot with this field empty.
    pub mac: String,
}

pub const KEY_SLOT_FORMAT: &str = "rampart-backup-key";

impl KeySlot {
    /// The bytes the MAC covers.
    pub fn mac_input(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.mac = String::new();
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }
}

/// What kind of blob a chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Data,
    Tree,
}

impl BlobKind {
    pub fn byte(self) -> u8 {
        match self {
            BlobKind::Data => b'd',
            BlobKind::Tree => b't',
        }
    }
}

/// The associated data of a blob: its kind and id, so a blob cannot be
/// passed off as another.
pub fn blob_aad(kind: BlobKind, id: &Id) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = kind.byte();
    aad[1..].copy_from_slice(&id.0);
    aad
}

/// One blob in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackedBlob {
    pub id: Id,
    pub kind: BlobKind,
    pub offset: u32,
    /// Stored (sealed) length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// The header at the end of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackHeader {
    pub blobs: Vec<PackedBlob>,
}

const PACK_HEADER_AAD: &[u8] = b"rampart-backup pack header v1";

/// Appends the sealed header and trailer that end a pack.
pub fn finish_pack(keys: &MasterKeys, mut body: Vec<u8>, header: &PackHeader) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap_or_default();
    let sealed = keys.seal(PACK_HEADER_AAD, &json);
    body.extend_from_slice(&sealed);
    body.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    body.extend_from_slice(PACK_MAGIC);
    body.extend_from_slice(&VERSION.to_be_bytes());
    body
}

/// Reads the header of a whole pack.
pub fn read_pack_header(keys: &MasterKeys, name: &str, pack: &[u8]) -> Result<PackHeader> {
    if pack.len() < PACK_TRAILER {
        return Err(Error::damaged(name, "it is shorter than a pack trailer"));
    }
    let trailer = &pack[pack.len() - PACK_TRAILER..];
    if &trailer[4..8] != PACK_MAGIC {
        return Err(Error::damaged(
            name,
            "it does not end with the pack trailer",
        ));
    }
    let version = u16::from_be_bytes([trailer[8], trailer[9]]);
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            object: name.to_owned(),
            found: version,
            supported: VERSION,
        });
    }
    let len = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as usize;
    let end = pack.len() - PACK_TRAILER;
    let start = end
        .checked_sub(len)
        .ok_or_else(|| Error::damaged(name, "its header length is larger than the pack"))?;
    let json = keys
        .open(PACK_HEADER_AAD, &pack[start..end])
        .ok_or_else(|| Error::damaged(name, "its header fails authentication"))?;
    let header: PackHeader = serde_json::from_slice(&json)
        .map_err(|e| Error::damaged(name, format!("cannot decode its header: {e}")))?;
    for blob in &header.blobs {
        if blob.offset as usize + blob.length as usize > start {
            return Err(Error::damaged(name, "a blob lies outside the pack body"));
        }
    }
    Ok(header)
}

/// Seals a blob's plaintext: one flag byte (0 raw, 1 zstd) and the payload.
pub fn seal_blob(
    keys: &MasterKeys,
    kind: BlobKind,
    id: &Id,
    plaintext: &[u8],
    level: i32,
) -> Vec<u8> {
    let mut payload = Vec::with_capacity(plaintext.len() + 1);
    match zstd::bulk::compress(plaintext, level) {
        // Compressing incompressible data wastes space; keep it raw when
        // zstd saves less than 3%.
        Ok(packed) if packed.len() < plaintext.len() - plaintext.len() / 33 => {
            payload.push(1u8);
            payload.extend_from_slice(&packed);
        }
        _ => {
            payload.push(0u8);
            payload.extend_from_slice(plaintext);
        }
    }
    keys.seal(&blob_aad(kind, id), &payload)
}

/// Opens a blob sealed by [`seal_blob`] and checks its id.
pub fn open_blob(
    keys: &MasterKeys,
    kind: BlobKind,
    id: &Id,
    sealed: &[u8],
    raw_length: u32,
) -> Result<Vec<u8>> {
    let name = format!("{kind:?} blob {id}").to_lowercase();
    let payload = keys
        .open(&blob_aad(kind, id), sealed)
        .ok_or_else(|| Error::damaged(&name, "authentication failed"))?;
    let plaintext = match payload.split_first() {
        Some((0, raw)) => raw.to_vec(),
        Some((1, packed)) => zstd::bulk::decompress(packed, raw_length as usize)
            .map_err(|e| Error::damaged(&name, format!("cannot decompress: {e}")))?,
        _ => return Err(Error::damaged(&name, "unknown compression flag")),
    };
    if plaintext.len() != raw_length as usize || keys.blob_id(&plaintext) != *id {
        return Err(Error::damaged(&name, "its content does not match its id"));
    }
    Ok(plaintext)
}

/// An index file: where blobs live.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexFile {
    pub packs: Vec<IndexedPack>,
    /// Index files this one replaces (written by prune).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<Id>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexedPack {
    pub id: Id,
    pub size: u64,
    pub blobs: Vec<PackedBlob>,
}

/// A snapshot: one backup run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub time: String,
    pub hostname: String,
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub tree: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    pub summary: Summary,
    pub program_version: String,
}

/// What a backup run saw and added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub files_unchanged: u64,
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub bytes_stored: u64,
}

/// A directory listing, stored as a tree blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The name; names that are not UTF-8 are kept in `name_raw`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_raw: Option<String>,
    pub kind: NodeKind,
    pub mode: u32,
    pub mtime: i64,
    pub mtime_ns: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub size: u64,
    /// Data blobs of a file, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// Tree blob of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Target of a symlink (base64 of the raw bytes when not UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_raw: Option<String>,
    /// Inode and change time, to recognise unchanged files next time.
    #[serde(default)]
    pub inode: u64,
    #[serde(default)]
    pub ctime: i64,
}

/// A lock, sealed under `locks/ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub exclusive: bool,
    pub hostname: String,
    pub pid: u32,
    /// Unix seconds when taken.
    pub time: i64,
    /// Unix seconds of the last refresh.
    pub refreshed: i64,
}

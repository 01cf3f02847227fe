//! Opening, creating and reading a repository.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use rand::RngCore;
use rayon::prelude::*;

use crate::backend::{Backend, Kind};
use crate::crypto::{self, Id, KdfParams, MasterKeys};
use crate::error::{Error, Result};
use crate::format::{
    self, BlobKind, ChunkerParams, IndexFile, KEY_SLOT_FORMAT, KeySlot, RepoConfig, SealedKind,
    Snapshot, Tree,
};
use crate::index::Index;

/// Defaults for new repositories.
pub const DEFAULT_CHUNKER: ChunkerParams = ChunkerParams {
    min: 512 * 1024,
    avg: 1024 * 1024,
    max: 8 * 1024 * 1024,
    seed: 0,
};
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;
pub const DEFAULT_COMPRESSION: i32 = 3;

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    keys: MasterKeys,
    config: RepoConfig,
    key_id: String,
}

/// A key slot as `key list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created: String,
    pub hostname: String,
    pub current: bool,
}

/// Now, as fixed-width RFC 3339 text (nanoseconds, UTC), which sorts in
/// time order.
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    now.format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

pub(crate) fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn make_slot(keys: &MasterKeys, password: &[u8], kdf: KdfParams) -> Result<(String, Vec<u8>)> {
    let (salt, wrapped) = crypto::wrap(keys, password, kdf)?;
    let mut slot = KeySlot {
        format: KEY_SLOT_FORMAT.into(),
        version: format::VERSION,
        created: now_rfc3339(),
        hostname: hostname(),
        kdf,
        salt: B64.encode(salt),
        wrapped: B64.encode(wrapped),
        mac: String::new(),
    };
    slot.mac = hex::encode(keys.mac(&slot.mac_input()));
    let bytes = serde_json::to_vec_pretty(&slot).unwrap_or_default();
    Ok((Id::of_bytes(&bytes).hex(), bytes))
}

/// Parses a key slot and checks its name and format.
pub(crate) fn parse_slot(name: &str, bytes: &[u8]) -> Result<KeySlot> {
    let object = Kind::Key.path(name);
    let slot: KeySlot = serde_json::from_slice(bytes)
        .map_err(|e| Error::damaged(&object, format!("cannot decode: {e}")))?;
    if slot.format != KEY_SLOT_FORMAT {
        return Err(Error::damaged(&object, "it is not a Rampart key slot"));
    }
    if slot.version != format::VERSION {
        return Err(Error::UnsupportedVersion {
            object,
            found: slot.version,
            supported: format::VERSION,
        });
    }
    if Id::of_bytes(bytes).hex() != name {
        return Err(Error::damaged(
            &object,
            "its content does not match its name",
        ));
    }
    Ok(slot)
}

impl Repository {
    /// Creates a repository protected by `password`.
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], kdf: KdfParams) -> Result<Self> {
        if !backend.list(Kind::Config)?.is_empty() || !backend.list(Kind::Key)?.is_empty() {
            return Err(Error::AlreadyInitialised {
                location: backend.location().to_owned(),
            });
        }
        if password.is_empty() {
            return Err(Error::Invalid("the password must not be empty".into()));
        }
        let keys = MasterKeys::generate();
        let mut repo_id = [0u8; 16];
        rand::rng().fill_bytes(&mut repo_id);
        let config = RepoConfig {
            version: format::VERSION,
            id: hex::encode(repo_id),
            chunker: ChunkerParams {
                seed: rand::random::<u64>() | 1,
                ..DEFAULT_CHUNKER
            },
            pack_size: DEFAULT_PACK_SIZE,
            compression: DEFAULT_COMPRESSION,
            created: now_rfc3339(),
        };
        let (key_id, slot) = make_slot(&keys, password, kdf)?;
        // The key first, the config last: a repository without a config is
        // not a repository, so an interrupted init leaves nothing usable.
        backend.create(Kind::Key, &key_id, Bytes::from(slot))?;
        let sealed = format::seal_object(&keys, SealedKind::Config, &config);
        backend.create(Kind::Config, "config", Bytes::from(sealed))?;
        Ok(Self {
            backend,
            keys,
            config,
            key_id,
        })
    }

    /// Opens the repository with `password`. Nothing is written.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        let config_bytes = match backend.read(Kind::Config, "config") {
            Ok(bytes) => bytes,
            Err(Error::Missing(_)) => {
                return Err(Error::NotARepository(backend.location().to_owned()));
            }
            Err(e) => return Err(e),
        };
        format::check_header("config", &config_bytes, SealedKind::Config)?;
        let slots = backend.list(Kind::Key)?;
        let mut unusable = None;
        for (name, _) in &slots {
            let bytes = backend.read(Kind::Key, name)?;
            let slot = match parse_slot(name, &bytes) {
                Ok(slot) => slot,
                Err(e) => {
                    unusable.get_or_insert(e);
                    continue;
                }
            };
            let (Ok(salt), Ok(wrapped)) = (B64.decode(&slot.salt), B64.decode(&slot.wrapped))
            else {
                continue;
            };
            let Some(keys) = crypto::unwrap(password, slot.kdf, &salt, &wrapped)? else {
                continue;
            };
            // The wrap proves the password; the MAC proves the rest of the
            // slot (dates, host, parameters) is as written.
            if hex::decode(&slot.mac).ok().as_deref() != Some(&keys.mac(&slot.mac_input())[..]) {
                unusable.get_or_insert(Error::damaged(
                    Kind::Key.path(name),
                    "its MAC does not match",
                ));
                continue;
            }
            let config: RepoConfig =
                format::open_object(&keys, "config", &config_bytes, SealedKind::Config)?;
            if config.version != format::VERSION {
                return Err(Error::UnsupportedVersion {
                    object: "config".into(),
                    found: config.version,
                    supported: format::VERSION,
                });
            }
            return Ok(Self {
                backend,
                keys,
                config,
                key_id: name.clone(),
            });
        }
        // A damaged or newer key slot explains a failure better than a
        // wrong password would.
        Err(unusable.unwrap_or(Error::WrongPassword))
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn keys(&self) -> &MasterKeys {
        &self.keys
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// Adds a key slot for another password.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        if password.is_empty() {
            return Err(Error::Invalid("the password must not be empty".into()));
        }
        let (id, slot) = make_slot(&self.keys, password, kdf)?;
        self.backend.create(Kind::Key, &id, Bytes::from(slot))?;
        Ok(id)
    }

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (name, _) in self.backend.list(Kind::Key)? {
            let bytes = self.backend.read(Kind::Key, &name)?;
            let slot = parse_slot(&name, &bytes)?;
            out.push(KeyInfo {
                current: name == self.key_id,
                id: name,
                created: slot.created,
                hostname: slot.hostname,
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// Removes a key slot; never the one in use, so the last key cannot go.
    pub fn remove_key(&self, id_prefix: &str) -> Result<String> {
        let keys = self.list_keys()?;
        let matches: Vec<&KeyInfo> = keys
            .iter()
            .filter(|k| k.id.starts_with(id_prefix))
            .collect();
        let key = match matches.as_slice() {
            [one] => *one,
            [] => return Err(Error::Invalid(format!("no key matches {id_prefix:?}"))),
            _ => {
                return Err(Error::Invalid(format!(
                    "key id prefix {id_prefix:?} is ambiguous"
                )));
            }
        };
        if key.current {
            return Err(Error::Invalid(
                "refusing to remove the key this command was opened with; open with another password first".into(),
            ));
        }
        self.backend.delete(Kind::Key, &key.id)?;
        Ok(key.id.clone())
    }

    /// Seals and stores an object named by the hash of its bytes.
    pub fn write_sealed<T: serde::Serialize>(
        &self,
        kind: Kind,
        sealed: SealedKind,
        value: &T,
    ) -> Result<Id> {
        let bytes = format::seal_object(&self.keys, sealed, value);
        let id = Id::of_bytes(&bytes);
        self.backend.create(kind, &id.hex(), Bytes::from(bytes))?;
        Ok(id)
    }

    /// Reads, checks and opens a sealed object.
    pub fn read_sealed<T: for<'de> serde::Deserialize<'de>>(
        &self,
        kind: Kind,
        sealed: SealedKind,
        name: &str,
    ) -> Result<T> {
        let bytes = self.backend.read(kind, name)?;
        let object = kind.path(name);
        if kind != Kind::Lock && Id::of_bytes(&bytes).hex() != name {
            return Err(Error::damaged(
                &object,
                "its content does not match its name",
            ));
        }
        format::open_object(&self.keys, &object, &bytes, sealed)
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let names = self.backend.list(Kind::Snapshot)?;
        let mut out: Vec<(Id, Snapshot)> = names
            .par_iter()
            .map(|(name, _)| {
                let id = Id::parse(name).ok_or_else(|| {
                    Error::damaged(Kind::Snapshot.path(name), "its name is not an id")
                })?;
                let snap: Snapshot =
                    self.read_sealed(Kind::Snapshot, SealedKind::Snapshot, name)?;
                Ok((id, snap))
            })
            .collect::<Result<_>>()?;
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// A snapshot by id prefix, or `latest`.
    pub fn find_snapshot(&self, wanted: &str) -> Result<(Id, Snapshot)> {
        let all = self.snapshots()?;
        if wanted == "latest" {
            return all
                .into_iter()
                .last()
                .ok_or_else(|| Error::NoSuchSnapshot(wanted.to_owned()));
        }
        if wanted.is_empty() || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::NoSuchSnapshot(wanted.to_owned()));
        }
        let mut matches = all
            .into_iter()
            .filter(|(id, _)| id.hex().starts_with(wanted));
        match (matches.next(), matches.next()) {
            (Some(one), None) => Ok(one),
            (None, _) => Err(Error::NoSuchSnapshot(wanted.to_owned())),
            (Some(_), Some(_)) => Err(Error::AmbiguousSnapshot(wanted.to_owned())),
        }
    }

    /// Loads every index file not superseded by another.
    pub fn load_index(&self) -> Result<Index> {
        let names = self.backend.list(Kind::Index)?;
        let files: Vec<(Id, IndexFile)> = names
            .par_iter()
            .map(|(name, _)| {
                let id = Id::parse(name).ok_or_else(|| {
                    Error::damaged(Kind::Index.path(name), "its name is not an id")
                })?;
                Ok((id, self.read_sealed(Kind::Index, SealedKind::Index, name)?))
            })
            .collect::<Result<_>>()?;
        let superseded: std::collections::HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut index = Index::default();
        for (id, file) in &files {
            if !superseded.contains(id) {
                index.add_file(*id, file);
            }
        }
        Ok(index)
    }

    /// Reads and opens one blob.
    pub fn read_blob(&self, index: &Index, id: &Id) -> Result<Vec<u8>> {
        let (pack, loc) = index
            .get(id)
            .ok_or_else(|| Error::damaged(format!("blob {id}"), "it is not in any index"))?;
        let sealed = self.backend.read_range(
            Kind::Pack,
            &pack.hex(),
            u64::from(loc.offset)..u64::from(loc.offset) + u64::from(loc.length),
        )?;
        if sealed.len() != loc.length as usize {
            return Err(Error::damaged(
                Kind::Pack.path(&pack.hex()),
                "it is truncated",
            ));
        }
        format::open_blob(&self.keys, loc.kind, id, &sealed, loc.raw_length).map_err(|e| match e {
            Error::Damaged { reason, .. } => Error::damaged(
                Kind::Pack.path(&pack.hex()),
                format!("blob {} at offset {}: {reason}", id.short(), loc.offset),
            ),
            other => other,
        })
    }

    /// Reads a tree blob.
    pub fn read_tree(&self, index: &Index, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(index, id)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::damaged(format!("tree {id}"), format!("cannot decode: {e}")))
    }

    /// Whether a blob id is a tree in the index.
    pub fn is_tree(index: &Index, id: &Id) -> bool {
        index.get(id).is_some_and(|(_, l)| l.kind == BlobKind::Tree)
    }
}

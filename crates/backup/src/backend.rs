//! Where repository objects live: a folder or an S3 bucket, through
//! object_store, behind a small blocking trait.
//!
//! The engine is synchronous (its work is CPU-bound and spread over threads
//! with rayon); the backend owns a small tokio runtime for object_store's
//! async I/O. Call it from ordinary threads, never from inside an async
//! task.
//!
//! Objects are never overwritten: `create` fails when the object exists.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};

/// The kinds of object in a repository and the folder each lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Config,
        Kind::Key,
        Kind::Pack,
        Kind::Index,
        Kind::Snapshot,
        Kind::Lock,
    ];

    fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Key => "keys",
            Kind::Pack => "data",
            Kind::Index => "index",
            Kind::Snapshot => "snapshots",
            Kind::Lock => "locks",
        }
    }

    /// How the kind is named in messages.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Key => "key",
            Kind::Pack => "pack",
            Kind::Index => "index",
            Kind::Snapshot => "snapshot",
            Kind::Lock => "lock",
        }
    }

    /// The object's path relative to the repository root.
    pub fn path(self, name: &str) -> String {
        match self {
            Kind::Config => "config".to_owned(),
            Kind::Pack => format!("data/{}/{name}", name.get(..2).unwrap_or("00")),
            other => format!("{}/{name}", other.dir()),
        }
    }
}

/// Storage for repository objects.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Where the repository is, for messages.
    fn location(&self) -> &str;
    /// Stores a new object; [`Error::AlreadyExists`] if it exists.
    fn create(&self, kind: Kind, name: &str, bytes: Bytes) -> Result<()>;
    fn read(&self, kind: Kind, name: &str) -> Result<Bytes>;
    fn read_range(&self, kind: Kind, name: &str, range: Range<u64>) -> Result<Bytes>;
    /// Names and sizes of every object of a kind.
    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>>;
    fn delete(&self, kind: Kind, name: &str) -> Result<()>;
}

/// A [`Backend`] over any object_store: a local folder, S3 or memory.
pub struct ObjectBackend {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    location: String,
}

impl std::fmt::Debug for ObjectBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBackend")
            .field("location", &self.location)
            .finish()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rampart-backup-io")
        .enable_all()
        .build()
        .map_err(|e| Error::Storage {
            object: "runtime".into(),
            reason: e.to_string(),
        })
}

impl ObjectBackend {
    /// Opens `spec`: `s3://bucket/prefix` (endpoint, region and credentials
    /// from the standard AWS environment variables) or a local folder.
    /// With `create` false, a missing folder is an error and nothing is
    /// created.
    pub fn open(spec: &str, create: bool) -> Result<Self> {
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Invalid(format!("{spec:?} names no bucket")));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| Error::Storage {
                    object: spec.into(),
                    reason: e.to_string(),
                })?;
            let store: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(
                    s3,
                    prefix.trim_matches('/'),
                ))
            };
            return Ok(Self {
                store,
                runtime: runtime()?,
                location: spec.to_owned(),
            });
        }
        let path = std::path::Path::new(spec);
        if create {
            std::fs::create_dir_all(path).map_err(|e| Error::io("create", path, e))?;
        } else if !path.is_dir() {
            return Err(Error::NotARepository(spec.to_owned()));
        }
        let store = object_store::local::LocalFileSystem::new_with_prefix(path).map_err(|e| {
            Error::Storage {
                object: spec.into(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            store: Arc::new(store),
            runtime: runtime()?,
            location: spec.to_owned(),
        })
    }

    /// A repository in memory, for tests.
    pub fn memory() -> Result<Self> {
        Ok(Self {
            store: Arc::new(object_store::memory::InMemory::new()),
            runtime: runtime()?,
            location: "memory".into(),
        })
    }
}

fn storage_error(kind: Kind, name: &str, err: object_store::Error) -> Error {
    let object = kind.path(name);
    match err {
        object_store::Error::NotFound { .. } => Error::Missing(object),
        object_store::Error::AlreadyExists { .. } => Error::AlreadyExists(object),
        other => Error::Storage {
            object,
            reason: other.to_string(),
        },
    }
}

impl Backend for ObjectBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn create(&self, kind: Kind, name: &str, bytes: Bytes) -> Result<()> {
        let path = StorePath::from(kind.path(name));
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.runtime
            .block_on(self.store.put_opts(&path, PutPayload::from(bytes), options))
            .map(drop)
            .map_err(|e| storage_error(kind, name, e))
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Bytes> {
        let path = StorePath::from(kind.path(name));
        self.runtime
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map_err(|e| storage_error(kind, name, e))
    }

    fn read_range(&self, kind: Kind, name: &str, range: Range<u64>) -> Result<Bytes> {
        let path = StorePath::from(kind.path(name));
        self.runtime
            .block_on(self.store.get_range(&path, range))
            .map_err(|e| storage_error(kind, name, e))
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>> {
        if kind == Kind::Config {
            let path = StorePath::from("config");
            return match self.runtime.block_on(self.store.head(&path)) {
                Ok(meta) => Ok(vec![("config".into(), meta.size)]),
                Err(object_store::Error::NotFound { .. }) => Ok(vec![]),
                Err(e) => Err(storage_error(kind, "config", e)),
            };
        }
        let prefix = StorePath::from(kind.dir());
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.store.list(Some(&prefix)).try_collect())
            .map_err(|e| storage_error(kind, "", e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_owned();
                Some((name, m.size))
            })
            .collect())
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let path = StorePath::from(kind.path(name));
        self.runtime
            .block_on(self.store.delete(&path))
            .map_err(|e| storage_error(kind, name, e))
    }
}

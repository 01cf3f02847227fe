//! The backup engine: encrypted, deduplicated, verifiable repositories on a
//! local folder or S3.
//!
//! Data is cut into content-defined chunks (FastCDC, about 1 MiB), each
//! compressed with zstd and sealed with XChaCha20-Poly1305 under a random
//! master key, and stored once, whoever asks for it again. Chunk ids are
//! keyed BLAKE3 hashes, so they reveal nothing about content. Chunks travel
//! in packs of about 16 MiB; indexes map chunks to packs; snapshots describe
//! trees. Passwords unlock key slots, never data. The format is specified in
//! `docs/backup-format.md`.
//!
//! The engine is synchronous and spreads its work over threads; storage goes
//! through the [`backend::Backend`] trait.

pub mod archive;
pub mod backend;
pub mod check;
mod chunker;
pub mod crypto;
mod error;
pub mod forget;
pub mod format;
pub mod index;
mod lock;
pub mod pack;
pub mod prune;
mod repo;
pub mod restore;

pub use archive::{BackupOutcome, BackupRequest, Progress, Silent, Source, backup};
pub use backend::{Backend, Kind, ObjectBackend};
pub use check::{CheckReport, ReadData, check};
pub use crypto::{Id, KdfParams};
pub use error::{Error, Result};
pub use lock::LockGuard;
pub use repo::{KeyInfo, Repository};
pub use restore::{RestoreReport, restore};

//! Managed services for apps: the platform's private PostgreSQL cluster
//! (`cluster`), databases and roles per app and the tools that dump,
//! restore and fingerprint them (`postgres`), media folders (`media`) and
//! media buckets on an S3-protocol server (`s3`).
//!
//! The crate knows nothing of apps beyond their names: the platform decides
//! which database belongs to whom and keeps the passwords sealed.

pub mod cluster;
pub mod media;
pub mod postgres;
pub mod s3;

use std::path::PathBuf;

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{program} failed: {message}")]
    Program { program: String, message: String },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

impl ServiceError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ServiceError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<tokio_postgres::Error> for ServiceError {
    fn from(err: tokio_postgres::Error) -> Self {
        // The database's own message says more than the driver's summary.
        match err.as_db_error() {
            Some(db) => ServiceError::Postgres(db.message().to_owned()),
            None => ServiceError::Postgres(err.to_string()),
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// The effective user id of this process, read without `unsafe`.
pub fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

//! Errors of the backup engine. Each says what went wrong with which object
//! and, where there is one, what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("wrong password or no matching key")]
    WrongPassword,
    #[error(
        "{0} is not a Rampart backup repository (no config object); run `rampart repo init` to create one"
    )]
    NotARepository(String),
    #[error("{location} already holds a repository; refusing to initialise over it")]
    AlreadyInitialised { location: String },
    #[error(
        "object {object} uses repository format version {found}; this build reads version {supported}"
    )]
    UnsupportedVersion {
        object: String,
        found: u16,
        supported: u16,
    },
    #[error("object {object} is damaged: {reason}")]
    Damaged { object: String, reason: String },
    #[error("the repository is locked by {holder}; {hint}")]
    Locked { holder: String, hint: String },
    #[error("no snapshot matches {0:?}")]
    NoSuchSnapshot(String),
    #[error("snapshot id prefix {0:?} is ambiguous; give more characters")]
    AmbiguousSnapshot(String),
    #[error("{path} is not in snapshot {snapshot}")]
    NoSuchPath { snapshot: String, path: String },
    #[error("storage error on {object}: {reason}")]
    Storage { object: String, reason: String },
    #[error("object {0} already exists; objects are never overwritten")]
    AlreadyExists(String),
    #[error("object {0} does not exist")]
    Missing(String),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn damaged(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Damaged {
            object: object.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

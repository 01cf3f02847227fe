//! Errors of the platform's operations and of starting up.

use std::path::PathBuf;

use rampart_core::token::MalformedToken;
use rampart_store::StoreError;

use crate::pki::PkiError;
use crate::secrets::KeyError;

/// Why an operation was refused or failed. The API maps each kind to one
/// status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input breaks a rule; the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this to this target.
    #[error("{0}")]
    Forbidden(String),
    /// A credential (invitation, password) was refused.
    #[error("{0}")]
    Unauthenticated(String),
    /// A sealed value does not open under the master key.
    #[error("{0}")]
    Sealed(String),
    #[error("{0}")]
    Store(StoreError),
    /// A part the operation needs (the container engine, the edge) is not
    /// available; trying again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A deploy ran and failed; the release that was live (if any) keeps
    /// serving.
    #[error("{message}")]
    DeployFailed {
        message: String,
        release: Option<Box<rampart_core::wire::Release>>,
        /// The release still serving the app, if it had one.
        serving: Option<u64>,
    },
}

impl From<rampart_runtime::RuntimeError> for Error {
    fn from(err: rampart_runtime::RuntimeError) -> Self {
        use rampart_runtime::RuntimeError as R;
        match err {
            R::Unreachable(_) => Error::Unavailable(err.to_string()),
            R::NoImage(_) => Error::Invalid(err.to_string()),
            other => Error::Unavailable(other.to_string()),
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(m) => Error::Conflict(m),
            StoreError::NotFound(m) => Error::NotFound(m),
            other => Error::Store(other),
        }
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("the token is malformed: {0}")]
    Malformed(MalformedToken),
    #[error("the token is not known")]
    Unknown,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token has expired")]
    Expired,
    #[error("the account is not active")]
    Inactive,
    #[error("the token could not be checked: {0}")]
    Store(String),
}

/// Why the platform refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("cannot open the database {path}: {source}")]
    Store { path: PathBuf, source: StoreError },
    #[error("database error: {0}")]
    Database(StoreError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// The configuration cannot work with this installation.
    #[error("{0}")]
    Config(String),
}

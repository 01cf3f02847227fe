//! The layout of the data directory.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::StartError;

/// Where an installation keeps its state. Everything in it is private to
/// the platform's user: the directory is created with mode 0700.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database.
    pub fn db(&self) -> PathBuf {
        self.root.join("rampart.db")
    }

    /// The key that seals secrets; never stored in the database.
    pub fn master_key(&self) -> PathBuf {
        self.root.join("master.key")
    }

    /// The internal CA's certificate, for clients to trust.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca-key.pem")
    }

    /// The Ed25519 key evidence bundles are signed with.
    pub fn evidence_key(&self) -> PathBuf {
        self.root.join("evidence.key")
    }

    /// The owner's first API token, written on first start.
    pub fn bootstrap_token(&self) -> PathBuf {
        self.root.join("bootstrap-token")
    }

    /// The last audit entry known to be written: `SEQ HASH`.
    /// The build contexts of an app's releases (`r<N>.tar`), kept so a
    /// release can be rebuilt on a patched base image.
    pub fn contexts(&self, app: &rampart_core::AppId) -> PathBuf {
        self.root.join("contexts").join(app.as_str())
    }

    pub fn audit_head(&self) -> PathBuf {
        self.root.join("audit-head")
    }

    /// Creates the directory (mode 0700) if needed.
    pub fn create(&self) -> Result<(), StartError> {
        let io = |action, source| StartError::Io {
            action,
            path: self.root.clone(),
            source,
        };
        if !self.root.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .map_err(|e| io("create", e))?;
        }
        let meta = fs::metadata(&self.root).map_err(|e| io("inspect", e))?;
        if !meta.is_dir() {
            return Err(StartError::NotADirectory(self.root.clone()));
        }
        if meta.permissions().mode() & 0o066 != 0 {
            tracing::warn!(
                path = %self.root.display(),
                "the data directory is readable by other users; consider chmod 700"
            );
        }
        // Files an older version or another umask left open (the database
        // and its journal above all) become private to the platform.
        for entry in fs::read_dir(&self.root).map_err(|e| io("list", e))? {
            let entry = entry.map_err(|e| io("list", e))?;
            let meta = entry.metadata().map_err(|e| io("inspect", e))?;
            if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))
                    .map_err(|e| io("make private", e))?;
            }
        }
        Ok(())
    }
}

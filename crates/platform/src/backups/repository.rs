//! Opening the platform's backup repository, and the handle that drops it
//! off the async workers.

use super::*;

/// Opens the platform repository. The first backup creates it, with its
/// key file, when neither exists; once a key file exists, a missing
/// repository is an error (it is unreachable, not new).
fn open_repository(config: &BackupConfig) -> Result<Repository, BackupFailure> {
    let location = &config.repository;
    let key = match std::fs::read(&config.key_file) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            if text.is_empty() {
                return Err(format!("key file {} is empty", config.key_file.display()).into());
            }
            Some(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(BackupFailure::context(
                format!("key file {}", config.key_file.display()),
                e,
            ));
        }
    };
    let is_s3 = location.starts_with("s3://");
    let create_folder = key.is_none() && !is_s3;
    let backend = ObjectBackend::open(location, create_folder).map_err(|e| match e {
        rampart_backup::Error::NotARepository(_) => {
            format!("repository {location} is unreachable: the folder does not exist")
        }
        other => format!("repository {location}: {other}"),
    })?;
    let backend: Arc<dyn Backend> = Arc::new(backend);
    let initialised = !backend
        .list(Kind::Config)
        .map_err(|e| BackupFailure::context(format!("repository {location} is unreachable"), e))?
        .is_empty();
    match key {
        Some(key) if initialised => Repository::open(backend, key.as_bytes())
            .map_err(|e| BackupFailure::context(format!("repository {location}"), e)),
        Some(key) => Repository::init(backend, key.as_bytes(), KdfParams::DEFAULT)
            .map_err(|e| BackupFailure::context(format!("repository {location}"), e)),
        None if initialised => Err(format!(
            "repository {location} exists but the key file {} is missing",
            config.key_file.display()
        )
        .into()),
        None => {
            let key = crate::ops::random_token(43);
            crate::secrets::write_private(&config.key_file, format!("{key}\n").as_bytes(), true)
                .map_err(|e| format!("key file {}: {e}", config.key_file.display()))?;
            Repository::init(backend, key.as_bytes(), KdfParams::DEFAULT)
                .map_err(|e| BackupFailure::context(format!("repository {location}"), e))
        }
    }
}

/// A shared handle on an open repository. The repository's storage owns a
/// small runtime of its own, which must not be dropped on an async worker:
/// the last handle is let go on a blocking thread.
pub(super) struct Repo(Option<Arc<Repository>>);

impl std::ops::Deref for Repo {
    type Target = Arc<Repository>;

    fn deref(&self) -> &Arc<Repository> {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        if let Some(repo) = self.0.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            tokio::task::spawn_blocking(move || drop(repo));
        }
    }
}

impl Backups<'_> {
    pub(super) async fn repository(&self) -> Result<Repo, BackupFailure> {
        let config = self.backup_config().map_err(BackupFailure::from)?;
        let _opening = self.p.services().repository_open.lock().await;
        tokio::task::spawn_blocking(move || {
            open_repository(&config).map(|r| Repo(Some(Arc::new(r))))
        })
        .await
        .map_err(BackupFailure::from)?
    }
}

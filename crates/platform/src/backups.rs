//! App backups: each snapshot in the platform's repository holds one app's
//! database dump (`pg_dump` streamed into the engine, never staged on disk),
//! its media folder and a manifest with the row counts and checksums of
//! every table (taken in the dump's own snapshot) and the hash of every
//! media file. Restores and test restores compare what they got with the
//! manifest.
//!
//! Every backup, retention run, test restore and restore is recorded
//! (`backup_results`) with its time, size and outcome; a failure is also an
//! app event, for monitoring.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_backup::backend::Kind;
use rampart_backup::forget::{KeepPolicy, decide};
use rampart_backup::{
    Backend, BackupRequest, KdfParams, ObjectBackend, Repository, Silent, Source,
};
use rampart_core::config::BackupConfig;
use rampart_core::time::Timestamp;
use rampart_core::{Action, AppName, wire};
use rampart_services::media::{self, FileSum};
use rampart_services::postgres::{Admin, TableSum, Tenant};
use rampart_store::{AppEvent, AppRow, BackupResult, ScheduleRow};
use serde::{Deserialize, Serialize};

use crate::{Acting, Error, Platform};

const MANIFEST: &str = "manifest.json";
const DUMP: &str = "database.dump";
const MEDIA: &str = "media";
/// Tag prefixes on app snapshots.
const TAG_APP: &str = "app=";
const TAG_APP_ID: &str = "app_id=";
const TAG_RELEASE: &str = "release=";
const TAG_REASON: &str = "reason=";
/// What the manifest counted, so listings need not open it.
const TAG_TABLES: &str = "tables=";
const TAG_ROWS: &str = "rows=";
const TAG_MEDIA: &str = "media_files=";

/// What a snapshot holds, recorded beside the data it describes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    app: String,
    app_id: String,
    release: Option<u64>,
    reason: String,
    taken_at: String,
    /// The database's name, when the app had one.
    database: Option<String>,
    tables: Vec<TableSum>,
    media: Vec<FileSum>,
}

/// Why a snapshot is taken.
#[derive(Debug, Clone, Copy)]
enum Reason {
    Manual,
    Scheduled,
    Safety,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::Scheduled => "scheduled",
            Reason::Safety => "safety",
        }
    }
}

fn failed(message: impl Into<String>) -> Error {
    Error::Unavailable(message.into())
}

/// Opens the platform repository. The first backup creates it, with its
/// key file, when neither exists; once a key file exists, a missing
/// repository is an error (it is unreachable, not new).
fn open_repository(config: &BackupConfig) -> Result<Repository, String> {
    let location = &config.repository;
    let key = match std::fs::read(&config.key_file) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            if text.is_empty() {
                return Err(format!("key file {} is empty", config.key_file.display()));
            }
            Some(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("key file {}: {e}", config.key_file.display())),
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
        .map_err(|e| format!("repository {location} is unreachable: {e}"))?
        .is_empty();
    match key {
        Some(key) if initialised => Repository::open(backend, key.as_bytes())
            .map_err(|e| format!("repository {location}: {e}")),
        Some(key) => Repository::init(backend, key.as_bytes(), KdfParams::DEFAULT)
            .map_err(|e| format!("repository {location}: {e}")),
        None if initialised => Err(format!(
            "repository {location} exists but the key file {} is missing",
            config.key_file.display()
        )),
        None => {
            let key = crate::ops::random_token(43);
            crate::secrets::write_private(&config.key_file, format!("{key}\n").as_bytes(), true)
                .map_err(|e| format!("key file {}: {e}", config.key_file.display()))?;
            Repository::init(backend, key.as_bytes(), KdfParams::DEFAULT)
                .map_err(|e| format!("repository {location}: {e}"))
        }
    }
}

/// A shared handle on an open repository. The repository's storage owns a
/// small runtime of its own, which must not be dropped on an async worker:
/// the last handle is let go on a blocking thread.
struct Repo(Option<Arc<Repository>>);

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

/// A reader over `pg_dump`'s output that turns its failure into a read
/// error, so a dump that stops early can never become a snapshot.
struct DumpReader {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl DumpReader {
    fn spawn(mut cmd: std::process::Command) -> Result<Self, String> {
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run pg_dump: {e}"))?;
        let stdout = child.stdout.take().ok_or("pg_dump has no output")?;
        let mut err = child.stderr.take().ok_or("pg_dump has no error output")?;
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Ok(Self {
            child,
            stdout,
            stderr: Some(stderr),
        })
    }
}

impl Read for DumpReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            let message = self
                .stderr
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default();
            if !status.success() {
                return Err(std::io::Error::other(format!(
                    "pg_dump failed ({status}): {}",
                    message.trim()
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for DumpReader {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `pg_restore` into `database` as `tenant`, fed from the snapshot's
/// dump.
fn restore_dump(
    repo: &Repository,
    tenant: &Tenant,
    snapshot: &str,
    database: &str,
) -> Result<(), String> {
    let mut child = tenant
        .restore_command(database)
        .map_err(|e| e.to_string())?
        .spawn()
        .map_err(|e| format!("cannot run pg_restore: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("pg_restore has no input")?;
    let mut err = child
        .stderr
        .take()
        .ok_or("pg_restore has no error output")?;
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let fed = repo.dump(snapshot, DUMP, &mut stdin);
    drop(stdin);
    let status = child.wait().map_err(|e| format!("pg_restore: {e}"))?;
    let message = stderr.join().unwrap_or_default();
    fed.map_err(|e| format!("reading the dump from the repository: {e}"))?;
    if !status.success() {
        return Err(format!("pg_restore failed ({status}): {}", message.trim()));
    }
    Ok(())
}

fn read_manifest(repo: &Repository, snapshot: &str) -> Result<Manifest, String> {
    let mut bytes = Vec::new();
    repo.dump(snapshot, MANIFEST, &mut bytes)
        .map_err(|e| format!("snapshot {snapshot}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("snapshot {snapshot}: bad manifest: {e}"))
}

fn tag<'a>(tags: &'a [String], prefix: &str) -> Option<&'a str> {
    tags.iter().find_map(|t| t.strip_prefix(prefix))
}

/// Describes how `got` differs from `want`, or `None` when they agree.
fn compare(
    want_tables: &[TableSum],
    got_tables: &[TableSum],
    want_media: &[FileSum],
    got_media: &[FileSum],
) -> Option<String> {
    let mut problems = Vec::new();
    for w in want_tables {
        match got_tables.iter().find(|g| g.table == w.table) {
            None => problems.push(format!("table {} is missing", w.table)),
            Some(g) if g.rows != w.rows => problems.push(format!(
                "table {} has {} rows, the snapshot recorded {}",
                w.table, g.rows, w.rows
            )),
            Some(g) if g.checksum != w.checksum => {
                problems.push(format!("table {} has a different checksum", w.table))
            }
            Some(_) => {}
        }
    }
    for g in got_tables {
        if !want_tables.iter().any(|w| w.table == g.table) {
            problems.push(format!("table {} was not in the snapshot", g.table));
        }
    }
    for w in want_media {
        match got_media.iter().find(|g| g.path == w.path) {
            None => problems.push(format!("media file {} is missing", w.path)),
            Some(g) if g.blake3 != w.blake3 || g.size != w.size => {
                problems.push(format!("media file {} differs", w.path))
            }
            Some(_) => {}
        }
    }
    for g in got_media {
        if !want_media.iter().any(|w| w.path == g.path) {
            problems.push(format!("media file {} was not in the snapshot", g.path));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// A scratch folder under the data directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(root: &Path, what: &str) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.join(format!("{what}-{}", crate::ops::random_suffix()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

/// Where an app's media are.
enum MediaPlace {
    Folder(PathBuf),
    Bucket(Arc<dyn object_store::ObjectStore>),
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn since(start: &std::time::Instant) -> String {
    format!("{:.1}s", start.elapsed().as_secs_f64())
}

impl Platform {
    fn backup_config(&self) -> Result<BackupConfig, Error> {
        self.backup.clone().ok_or_else(|| {
            Error::Unavailable(
                "no backup repository is configured: set [backup] repository and key_file in rampart.toml".into(),
            )
        })
    }

    async fn repository(&self) -> Result<Repo, String> {
        let config = self.backup_config().map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || {
            open_repository(&config).map(|r| Repo(Some(Arc::new(r))))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Records a result; a failure also becomes an app event.
    async fn record_result(&self, app: &AppRow, result: BackupResult) {
        if !result.ok {
            tracing::warn!(app = %app.name, kind = %result.kind, detail = %result.detail, "backup step failed");
            let event = AppEvent {
                time: result.finished_at.clone(),
                kind: format!("{}_failed", result.kind),
                message: result.detail.clone(),
            };
            if let Err(error) = self.store.add_event(&app.id, &event).await {
                tracing::error!(%error, "cannot record an app event");
            }
        }
        if let Err(error) = self.store.add_backup_result(&result).await {
            tracing::error!(%error, "cannot record a backup result");
        }
    }

    fn result(app: &AppRow, kind: &str, started_at: String) -> BackupResult {
        BackupResult {
            app: app.name.to_string(),
            kind: kind.to_owned(),
            snapshot: None,
            started_at,
            finished_at: Timestamp::now().to_rfc3339(),
            bytes: 0,
            ok: false,
            detail: String::new(),
        }
    }

    async fn media_place(&self, app: &AppRow) -> Result<MediaPlace, String> {
        if let Some(s3) = self.services().s3() {
            let s3 = s3.map_err(|e| e.to_string())?;
            if let Some(row) = self
                .store
                .media_bucket(&app.id)
                .await
                .map_err(|e| e.to_string())?
            {
                return Ok(MediaPlace::Bucket(
                    s3.store(&row.bucket).map_err(|e| e.to_string())?,
                ));
            }
        }
        Ok(MediaPlace::Folder(
            self.services().media.dir(app.name.as_str()),
        ))
    }

    /// Takes one snapshot of the app's database and media.
    async fn snapshot_app(&self, app: &AppRow, reason: Reason) -> Result<(String, u64), String> {
        let repo = self.repository().await?;
        let db = self
            .store
            .database(&app.id)
            .await
            .map_err(|e| e.to_string())?;
        let tenant = match &db {
            Some(db) => Some(self.tenant(app, db).map_err(|e| e.to_string())?),
            None => None,
        };
        // Media in a bucket are copied to a private folder first.
        let (media_dir, staged) = match self.media_place(app).await? {
            MediaPlace::Folder(dir) => (dir, None),
            MediaPlace::Bucket(store) => {
                let scratch = Scratch::new(self.services().media.root(), ".backup")?;
                rampart_services::s3::download(store.as_ref(), &scratch.0)
                    .await
                    .map_err(|e| format!("reading media from the bucket: {e}"))?;
                (scratch.0.clone(), Some(scratch))
            }
        };
        let media_sums = {
            let dir = media_dir.clone();
            tokio::task::spawn_blocking(move || media::fingerprint(&dir))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
        };
        // The dump and the fingerprint see one snapshot of the database,
        // held open until the dump is stored.
        let (holder, dump_cmd, tables) = match (&db, &tenant) {
            (Some(db), Some(tenant)) => {
                let (holder, snapshot, tables) = tenant
                    .exported_snapshot(&db.name)
                    .await
                    .map_err(|e| e.to_string())?;
                (
                    Some(holder),
                    Some(
                        tenant
                            .dump_command(&db.name, &snapshot)
                            .map_err(|e| e.to_string())?,
                    ),
                    tables,
                )
            }
            _ => (None, None, Vec::new()),
        };
        let release = self
            .store
            .app(&app.name)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.live_release);
        let manifest = Manifest {
            app: app.name.to_string(),
            app_id: app.id.to_string(),
            release,
            reason: reason.as_str().to_owned(),
            taken_at: Timestamp::now().to_rfc3339(),
            database: db.as_ref().map(|d| d.name.clone()),
            tables,
            media: media_sums,
        };
        let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        let mut tags = vec![
            format!("{TAG_APP}{}", app.name),
            format!("{TAG_APP_ID}{}", app.id),
            format!("{TAG_REASON}{}", reason.as_str()),
            format!("{TAG_TABLES}{}", manifest.tables.len()),
            format!(
                "{TAG_ROWS}{}",
                manifest.tables.iter().map(|t| t.rows).sum::<u64>()
            ),
            format!("{TAG_MEDIA}{}", manifest.media.len()),
        ];
        if let Some(r) = release {
            tags.push(format!("{TAG_RELEASE}{r}"));
        }
        let outcome = tokio::task::spawn_blocking(move || {
            let mut streams: Vec<(String, Box<dyn Read + Send>)> = vec![(
                MANIFEST.to_owned(),
                Box::new(std::io::Cursor::new(manifest_json)),
            )];
            if let Some(cmd) = dump_cmd {
                streams.push((DUMP.to_owned(), Box::new(DumpReader::spawn(cmd)?)));
            }
            let folders = if media_dir.is_dir() {
                vec![(MEDIA.to_owned(), media_dir)]
            } else {
                Vec::new()
            };
            rampart_backup::backup(
                &repo,
                BackupRequest {
                    source: Source::Parts { streams, folders },
                    tags,
                },
                &Silent,
            )
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?;
        drop(holder);
        drop(staged);
        let outcome = outcome?;
        if !outcome.warnings.is_empty() {
            tracing::warn!(app = %app.name, warnings = ?outcome.warnings, "backup left files out");
        }
        Ok((outcome.id.hex(), outcome.snapshot.summary.bytes))
    }

    /// Takes a snapshot now and records the result; with a schedule, the
    /// schedule's retention follows.
    async fn run_backup(&self, app: &AppRow, reason: Reason) -> wire::BackupRecord {
        let started_at = Timestamp::now().to_rfc3339();
        let clock = std::time::Instant::now();
        let mut result = Self::result(app, "backup", started_at);
        match self.snapshot_app(app, reason).await {
            Ok((id, bytes)) => {
                result.ok = true;
                result.bytes = bytes;
                result.detail = format!("{} snapshot in {}", reason.as_str(), since(&clock));
                result.snapshot = Some(id);
            }
            Err(message) => result.detail = message,
        }
        result.finished_at = Timestamp::now().to_rfc3339();
        self.record_result(app, result.clone()).await;
        if result.ok
            && let Ok(Some(schedule)) = self.store.backup_schedule(&app.id).await
        {
            self.apply_retention(app, &schedule).await;
        }
        record_view(result)
    }

    /// Forgets the app's snapshots the schedule does not keep, then prunes.
    async fn apply_retention(&self, app: &AppRow, schedule: &ScheduleRow) {
        let policy = KeepPolicy {
            last: schedule.keep_last,
            daily: schedule.keep_daily,
            weekly: schedule.keep_weekly,
            monthly: schedule.keep_monthly,
        };
        if policy.is_empty() {
            return;
        }
        let started_at = Timestamp::now().to_rfc3339();
        let mut result = Self::result(app, "retention", started_at);
        let app_id = app.id.to_string();
        let outcome = match self.repository().await {
            Err(e) => Err(e),
            Ok(repo) => tokio::task::spawn_blocking(move || {
                let forgotten = {
                    let _lock = repo.lock(false).map_err(|e| e.to_string())?;
                    let mine: Vec<_> = repo
                        .snapshots()
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .filter(|(_, s)| tag(&s.tags, TAG_APP_ID) == Some(app_id.as_str()))
                        .collect();
                    let decisions = decide(&mine, policy).map_err(|e| e.to_string())?;
                    let mut forgotten = Vec::new();
                    for d in decisions.iter().filter(|d| !d.keep) {
                        repo.backend()
                            .delete(Kind::Snapshot, &d.id.hex())
                            .map_err(|e| e.to_string())?;
                        forgotten.push(d.id.hex());
                    }
                    (forgotten, decisions.len())
                };
                let freed = if forgotten.0.is_empty() {
                    0
                } else {
                    rampart_backup::prune::prune(&repo)
                        .map_err(|e| e.to_string())?
                        .bytes_freed
                };
                Ok::<_, String>((forgotten, freed))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r),
        };
        match outcome {
            Ok(((forgotten, total), freed)) => {
                result.ok = true;
                result.bytes = freed;
                result.detail = format!(
                    "kept {} of {total} snapshots; removed {}",
                    total - forgotten.len(),
                    if forgotten.is_empty() {
                        "none".to_owned()
                    } else {
                        forgotten
                            .iter()
                            .map(|h| &h[..12])
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
            Err(message) => result.detail = message,
        }
        result.finished_at = Timestamp::now().to_rfc3339();
        self.record_result(app, result).await;
    }

    /// `rampart backup run APP`.
    pub async fn backup_now(
        &self,
        acting: Acting<'_>,
        app: &str,
    ) -> Result<wire::BackupRecord, Error> {
        let row = self.app_row(app).await?;
        self.backup_config()?;
        let _turn = self.services().backup_turn(&row.id).await;
        let result = self.run_backup(&row, Reason::Manual).await;
        let outcome = if result.ok {
            rampart_core::audit::Outcome::Ok
        } else {
            rampart_core::audit::Outcome::Failed
        };
        let record = Self::record_by(
            acting.caller.user_id.as_str(),
            Action::BackupRun,
            format!(
                "apps/{}/backups/{}",
                row.name,
                result.snapshot.as_deref().unwrap_or("-")
            ),
            outcome,
            acting.request_id,
        );
        self.append(record).await;
        if result.ok {
            Ok(result)
        } else {
            Err(failed(format!("the backup failed: {}", result.detail)))
        }
    }

    /// The app's snapshots, oldest first.
    pub async fn backups(&self, app: &str) -> Result<Vec<wire::BackupSnapshot>, Error> {
        let row = self.app_row(app).await?;
        let repo = self.repository().await.map_err(failed)?;
        let app_id = row.id.to_string();
        let list = tokio::task::spawn_blocking(move || repo.snapshots())
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))?;
        Ok(list
            .into_iter()
            .filter(|(_, s)| tag(&s.tags, TAG_APP_ID) == Some(app_id.as_str()))
            .map(|(id, s)| wire::BackupSnapshot {
                id: id.hex(),
                time: s.time.clone(),
                app: tag(&s.tags, TAG_APP).unwrap_or("-").to_owned(),
                release: tag(&s.tags, TAG_RELEASE).and_then(|r| r.parse().ok()),
                reason: tag(&s.tags, TAG_REASON).unwrap_or("-").to_owned(),
                bytes: s.summary.bytes,
                tables: tag(&s.tags, TAG_TABLES)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                rows: tag(&s.tags, TAG_ROWS)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                media_files: tag(&s.tags, TAG_MEDIA)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            })
            .collect())
    }

    /// Recorded results of the app's backups, oldest first.
    pub async fn backup_records(&self, app: &str) -> Result<Vec<wire::BackupRecord>, Error> {
        let row = self.app_row(app).await?;
        Ok(self
            .store
            .backup_results(row.name.as_str(), 200)
            .await?
            .into_iter()
            .map(record_view)
            .collect())
    }

    /// Finds a snapshot of `app` by id prefix, refusing one of another app.
    async fn app_snapshot(
        &self,
        repo: &Repo,
        app: &AppRow,
        wanted: &str,
    ) -> Result<(String, Manifest), Error> {
        if wanted.is_empty() || wanted.len() > 64 || !wanted.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(Error::Invalid(format!("{wanted:?} is not a snapshot id")));
        }
        let finder = Arc::clone(repo);
        let wanted = wanted.to_owned();
        let (id, snap) = tokio::task::spawn_blocking(move || finder.find_snapshot(&wanted))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| match e {
                rampart_backup::Error::Invalid(m) => Error::Invalid(m),
                other => Error::NotFound(other.to_string()),
            })?;
        let owner = tag(&snap.tags, TAG_APP_ID).unwrap_or("");
        if owner != app.id.as_str() {
            let name = tag(&snap.tags, TAG_APP).unwrap_or("another app");
            return Err(Error::Forbidden(format!(
                "snapshot {} belongs to {name:?}, not {:?}; restore it as `rampart backup restore {name} {} --into {}`",
                &id.hex()[..12],
                app.name.as_str(),
                &id.hex()[..12],
                app.name
            )));
        }
        let hex = id.hex();
        let manifest = {
            let (repo, hex) = (Arc::clone(repo), hex.clone());
            tokio::task::spawn_blocking(move || read_manifest(&repo, &hex))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(failed)?
        };
        Ok((hex, manifest))
    }

    /// `rampart backup restore APP SNAPSHOT [--into OTHER] [--force]`.
    pub async fn restore_backup(
        &self,
        acting: Acting<'_>,
        app: &str,
        snapshot: &str,
        request: wire::RestoreBackup,
    ) -> Result<wire::RestoredBackup, Error> {
        let source = self.app_row(app).await?;
        let target = match &request.into {
            Some(other) => self.app_row(other).await?,
            None => source.clone(),
        };
        if let Some(scope) = &acting.caller.scope
            && scope != &target.name
        {
            return Err(Error::Forbidden(format!(
                "this token may only act on app {scope}"
            )));
        }
        let _turn = self.services().backup_turn(&target.id).await;
        let repo = self.repository().await.map_err(failed)?;
        let (id, manifest) = self.app_snapshot(&repo, &source, snapshot).await?;
        let target_db = self.store.database(&target.id).await?;
        if manifest.database.is_some() && target_db.is_none() {
            return Err(Error::Invalid(format!(
                "snapshot {} holds a database but app {:?} has none: run `rampart db create {}` first",
                &id[..12],
                target.name.as_str(),
                target.name
            )));
        }
        let database = match &target_db {
            Some(db) => Some((
                db.name.clone(),
                self.services().admin()?.clone(),
                self.tenant(&target, db)?,
            )),
            None => None,
        };
        let place = self.media_place(&target).await.map_err(failed)?;

        // Live data is replaced only when asked, and then kept first.
        let db_live = match &database {
            Some((name, _, tenant)) => !tenant.is_empty(name).await?,
            None => false,
        };
        let media_live = match &place {
            MediaPlace::Folder(dir) => !media::is_empty(dir)?,
            MediaPlace::Bucket(store) => rampart_services::s3::has_media(store.as_ref()).await?,
        };
        let mut safety = None;
        if db_live || media_live {
            if !request.force {
                return Err(Error::Conflict(format!(
                    "app {:?} has live data ({}); pass --force to replace it (a safety snapshot is taken first)",
                    target.name.as_str(),
                    match (db_live, media_live) {
                        (true, true) => "tables and media files",
                        (true, false) => "tables",
                        _ => "media files",
                    }
                )));
            }
            let (safety_id, _) = self
                .snapshot_app(&target, Reason::Safety)
                .await
                .map_err(|e| {
                    failed(format!(
                        "the safety snapshot failed, nothing was restored: {e}"
                    ))
                })?;
            safety = Some(safety_id);
        }

        let started_at = Timestamp::now().to_rfc3339();
        let mut result = Self::result(&target, "restore", started_at);
        result.snapshot = Some(id.clone());
        let outcome = self
            .restore_into(&repo, &id, &manifest, &target, database, place)
            .await;
        result.finished_at = Timestamp::now().to_rfc3339();
        let audit_outcome;
        let answer = match outcome {
            Ok(()) => {
                result.ok = true;
                result.detail = format!(
                    "restored snapshot {} of {:?}{}",
                    &id[..12],
                    manifest.app,
                    safety
                        .as_ref()
                        .map(|s| format!(" after safety snapshot {}", &s[..12]))
                        .unwrap_or_default()
                );
                audit_outcome = rampart_core::audit::Outcome::Ok;
                Ok(wire::RestoredBackup {
                    snapshot: id.clone(),
                    app: target.name.to_string(),
                    safety_snapshot: safety.clone(),
                    tables: manifest.tables.len() as u32,
                    rows: manifest.tables.iter().map(|t| t.rows).sum(),
                    media_files: manifest.media.len() as u32,
                })
            }
            Err(message) => {
                result.detail = message.clone();
                audit_outcome = rampart_core::audit::Outcome::Failed;
                Err(failed(format!("the restore failed: {message}")))
            }
        };
        self.record_result(&target, result).await;
        let record = Self::record_by(
            acting.caller.user_id.as_str(),
            Action::BackupRestore,
            format!(
                "apps/{}/backups/{}/restore-into/{}",
                source.name,
                &id[..12],
                target.name
            ),
            audit_outcome,
            acting.request_id,
        );
        self.append(record).await;
        answer
    }

    /// Restores the snapshot's database into a fresh database and its media
    /// into a private folder, checks both against the manifest, and only
    /// then puts them in place: the database by rename (the live one is
    /// closed to new sessions first), the media entry by entry (or into the
    /// bucket). A failure before that point leaves live data as it was.
    async fn restore_into(
        &self,
        repo: &Repo,
        id: &str,
        manifest: &Manifest,
        target: &AppRow,
        database: Option<(String, Admin, Tenant)>,
        place: MediaPlace,
    ) -> Result<(), String> {
        let mut fresh_db = None;
        if let (Some(_), Some((db, admin, tenant))) = (&manifest.database, &database) {
            let fresh = format!("{db}_restore_{}", crate::ops::random_suffix());
            admin
                .create_empty(&fresh, db)
                .await
                .map_err(|e| e.to_string())?;
            let loaded = {
                let (repo, tenant, id, fresh) = (
                    Arc::clone(repo),
                    tenant.clone(),
                    id.to_owned(),
                    fresh.clone(),
                );
                tokio::task::spawn_blocking(move || restore_dump(&repo, &tenant, &id, &fresh))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r)
            };
            let checked = match loaded {
                Ok(()) => match tenant.fingerprint(&fresh).await {
                    Ok(got) => match compare(&manifest.tables, &got, &[], &[]) {
                        None => Ok(()),
                        Some(problem) => Err(format!("the restored database differs: {problem}")),
                    },
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = checked {
                let _ = admin.drop_database(&fresh).await;
                return Err(e);
            }
            fresh_db = Some(fresh);
        }
        let drop_fresh = || async {
            if let (Some(fresh), Some((_, admin, _))) = (&fresh_db, &database) {
                let _ = admin.drop_database(fresh).await;
            }
        };

        let media_root = self.services().media.root().to_path_buf();
        let has_media = !manifest.media.is_empty();
        let want = manifest.media.clone();
        let (repo, id) = (Arc::clone(repo), id.to_owned());
        let staged = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&media_root).map_err(|e| e.to_string())?;
            let staging = Scratch::new(&media_root, ".restore")?;
            if has_media {
                rampart_backup::restore(&repo, &id, &staging.0, &[MEDIA.to_owned()], &Silent)
                    .map_err(|e| format!("reading media from the repository: {e}"))?;
            }
            let restored = staging.0.join(MEDIA);
            std::fs::create_dir_all(&restored).map_err(|e| e.to_string())?;
            let got = media::fingerprint(&restored).map_err(|e| e.to_string())?;
            if let Some(problem) = compare(&[], &[], &want, &got) {
                return Err(format!("the restored media differ: {problem}"));
            }
            Ok(staging)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let staging = match staged {
            Ok(staging) => staging,
            Err(e) => {
                drop_fresh().await;
                return Err(e);
            }
        };

        // Both parts are loaded and checked: swap the database in.
        if let (Some(fresh), Some((db, admin, _))) = (&fresh_db, &database) {
            let old = format!("{db}_old_{}", crate::ops::random_suffix());
            let swapped = async {
                admin.close_database(db).await?;
                if let Err(e) = admin.rename_database(db, &old).await {
                    let _ = admin.allow_connections(db).await;
                    return Err(e);
                }
                admin.rename_database(fresh, db).await
            }
            .await;
            if let Err(e) = swapped {
                drop_fresh().await;
                return Err(e.to_string());
            }
            if let Err(error) = admin.drop_database(&old).await {
                tracing::warn!(%error, database = %old, "cannot drop the replaced database");
            }
        }

        let restored = staging.0.join(MEDIA);
        match place {
            MediaPlace::Bucket(store) => rampart_services::s3::upload(store.as_ref(), &restored)
                .await
                .map_err(|e| format!("writing media to the bucket: {e}")),
            MediaPlace::Folder(_) => {
                let owner = {
                    use std::os::unix::fs::MetadataExt;
                    let dir = self.services().media.dir(target.name.as_str());
                    std::fs::metadata(&dir).ok().map(|m| (m.uid(), m.gid()))
                };
                let live = self
                    .services()
                    .media
                    .ensure(target.name.as_str(), owner)
                    .map_err(|e| e.to_string())?;
                tokio::task::spawn_blocking(move || {
                    if let Some(owner) = owner {
                        media::chown_tree(&restored, owner).map_err(|e| e.to_string())?;
                    }
                    let moved =
                        media::replace_contents(&live, &restored).map_err(|e| e.to_string());
                    drop(staging);
                    moved
                })
                .await
                .map_err(|e| e.to_string())?
            }
        }
    }

    /// Test-restores a snapshot (the newest when `None`) into a scratch
    /// database and folder and compares it with its manifest. The result is
    /// recorded either way.
    async fn run_verify(&self, app: &AppRow, snapshot: Option<String>) -> wire::BackupRecord {
        let started_at = Timestamp::now().to_rfc3339();
        let clock = std::time::Instant::now();
        let mut result = Self::result(app, "verify", started_at);
        let outcome = self.verify_snapshot(app, snapshot, &mut result).await;
        match outcome {
            Ok(detail) => {
                result.ok = true;
                result.detail = format!("{detail} in {}", since(&clock));
            }
            Err(message) => result.detail = message,
        }
        result.finished_at = Timestamp::now().to_rfc3339();
        self.record_result(app, result.clone()).await;
        record_view(result)
    }

    async fn verify_snapshot(
        &self,
        app: &AppRow,
        snapshot: Option<String>,
        result: &mut BackupResult,
    ) -> Result<String, String> {
        let repo = self.repository().await?;
        let wanted = match snapshot {
            Some(s) => s,
            None => {
                let app_id = app.id.to_string();
                let r = Arc::clone(&repo);
                let list = tokio::task::spawn_blocking(move || r.snapshots())
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                list.into_iter()
                    .filter(|(_, s)| tag(&s.tags, TAG_APP_ID) == Some(app_id.as_str()))
                    .max_by(|a, b| a.1.time.cmp(&b.1.time))
                    .map(|(id, _)| id.hex())
                    .ok_or("the app has no snapshot to test-restore")?
            }
        };
        let (id, manifest) = self
            .app_snapshot(&repo, app, &wanted)
            .await
            .map_err(|e| e.to_string())?;
        result.snapshot = Some(id.clone());
        let mut got_tables = Vec::new();
        if manifest.database.is_some() {
            // The snapshot is loaded by a role of its own that owns only the
            // scratch database: whatever the app planted in its data runs
            // with less than the app's rights, and never the admin's.
            let admin = self.services().admin().map_err(|e| e.to_string())?.clone();
            let scratch = format!("rampart_verify_{}", crate::ops::random_suffix());
            let password = rampart_services::postgres::new_password();
            admin
                .create_database(&scratch, &scratch, &password)
                .await
                .map_err(|e| e.to_string())?;
            let loaded = match admin.tenant(&scratch, &password) {
                Ok(tenant) => {
                    let (repo, loader, id, db) = (
                        Arc::clone(&repo),
                        tenant.clone(),
                        id.clone(),
                        scratch.clone(),
                    );
                    tokio::task::spawn_blocking(move || restore_dump(&repo, &loader, &id, &db))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r)
                        .map(|()| tenant)
                }
                Err(e) => Err(e.to_string()),
            };
            let fingerprint = match loaded {
                Ok(tenant) => tenant
                    .fingerprint(&scratch)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            if let Err(error) = admin.drop_database(&scratch).await {
                tracing::warn!(%error, database = %scratch, "cannot drop a test-restore database");
            }
            if let Err(error) = admin.drop_role(&scratch).await {
                tracing::warn!(%error, role = %scratch, "cannot drop a test-restore role");
            }
            got_tables = fingerprint?;
        }
        let media_root = self.services().media.root().to_path_buf();
        let has_media = !manifest.media.is_empty();
        let got_media = {
            let (repo, id) = (Arc::clone(&repo), id.clone());
            tokio::task::spawn_blocking(move || {
                let scratch = Scratch::new(&media_root, ".verify")?;
                if has_media {
                    rampart_backup::restore(&repo, &id, &scratch.0, &[MEDIA.to_owned()], &Silent)
                        .map_err(|e| format!("reading media from the repository: {e}"))?;
                }
                media::fingerprint(&scratch.0.join(MEDIA)).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??
        };
        result.bytes = got_media.iter().map(|f| f.size).sum();
        if let Some(problem) = compare(&manifest.tables, &got_tables, &manifest.media, &got_media) {
            return Err(format!(
                "snapshot {} does not restore as recorded: {problem}",
                &id[..12]
            ));
        }
        Ok(format!(
            "snapshot {} restored: {} tables, {} rows, {} media files as recorded",
            &id[..12],
            got_tables.len(),
            got_tables.iter().map(|t| t.rows).sum::<u64>(),
            got_media.len()
        ))
    }

    /// `rampart backup verify APP [SNAPSHOT]`.
    pub async fn verify_backup(
        &self,
        acting: Acting<'_>,
        app: &str,
        request: wire::VerifyBackup,
    ) -> Result<wire::BackupRecord, Error> {
        let row = self.app_row(app).await?;
        self.backup_config()?;
        let _turn = self.services().backup_turn(&row.id).await;
        let result = self.run_verify(&row, request.snapshot).await;
        let record = Self::record_by(
            acting.caller.user_id.as_str(),
            Action::BackupRun,
            format!("apps/{}/backups/verify", row.name),
            if result.ok {
                rampart_core::audit::Outcome::Ok
            } else {
                rampart_core::audit::Outcome::Failed
            },
            acting.request_id,
        );
        self.append(record).await;
        Ok(result)
    }

    /// `rampart backup schedule APP …`.
    pub async fn set_backup_schedule(
        &self,
        acting: Acting<'_>,
        app: &str,
        request: Option<wire::SetBackupSchedule>,
    ) -> Result<Option<wire::BackupSchedule>, Error> {
        let row = self.app_row(app).await?;
        let target = format!("apps/{}/backup-schedule", row.name);
        let Some(request) = request else {
            let record = self.record(acting, Action::BackupSchedule, target);
            self.committed(self.store.set_backup_schedule(&row.id, None, record).await)
                .await?;
            return Ok(None);
        };
        self.backup_config()?;
        let every = wire::parse_interval(&request.every).map_err(Error::Invalid)?;
        let verify = request
            .verify
            .as_deref()
            .map(wire::parse_interval)
            .transpose()
            .map_err(Error::Invalid)?;
        let now = time::OffsetDateTime::now_utc();
        let at =
            |secs: u64| Timestamp::from(now + time::Duration::seconds(secs as i64)).to_rfc3339();
        let schedule = ScheduleRow {
            app_id: row.id.clone(),
            every_secs: every,
            keep_last: request.keep_last,
            keep_daily: request.keep_daily,
            keep_weekly: request.keep_weekly,
            keep_monthly: request.keep_monthly,
            verify_every_secs: verify,
            next_backup_at: at(every),
            next_verify_at: verify.map(at),
        };
        if schedule.keep_last + schedule.keep_daily + schedule.keep_weekly + schedule.keep_monthly
            == 0
        {
            return Err(Error::Invalid(
                "keep at least one snapshot: give --keep-last, --keep-daily, --keep-weekly or --keep-monthly".into(),
            ));
        }
        let record = self.record(acting, Action::BackupSchedule, target);
        self.committed(
            self.store
                .set_backup_schedule(&row.id, Some(&schedule), record)
                .await,
        )
        .await?;
        Ok(Some(schedule_view(&row.name, schedule)))
    }

    pub async fn backup_schedule(&self, app: &str) -> Result<wire::BackupSchedule, Error> {
        let row = self.app_row(app).await?;
        let schedule = self.store.backup_schedule(&row.id).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "app {:?} has no backup schedule",
                row.name.as_str()
            ))
        })?;
        Ok(schedule_view(&row.name, schedule))
    }

    /// Starts the backups and test restores that are due, each app's on a
    /// task of its own, so a slow or stuck app never holds up another's; an
    /// app whose last run has not finished is left for the next call. The
    /// platform calls this every few seconds.
    pub async fn run_due_backups(self: &Arc<Self>) {
        let Ok(schedules) = self.store.backup_schedules().await else {
            return;
        };
        let now = Timestamp::now().to_rfc3339();
        for schedule in schedules {
            let backup_due = schedule.next_backup_at <= now;
            let verify_due = schedule.next_verify_at.as_ref().is_some_and(|t| *t <= now);
            if !backup_due && !verify_due {
                continue;
            }
            let Some(turn) = self.services().try_backup_turn(&schedule.app_id) else {
                continue;
            };
            let Some(app) = self
                .store
                .apps()
                .await
                .ok()
                .and_then(|apps| apps.into_iter().find(|a| a.id == schedule.app_id))
            else {
                continue;
            };
            let platform = Arc::clone(self);
            tokio::spawn(async move {
                let _turn = turn;
                platform
                    .run_scheduled(&app, &schedule, backup_due, verify_due)
                    .await;
            });
        }
    }

    async fn run_scheduled(
        &self,
        app: &AppRow,
        schedule: &ScheduleRow,
        backup_due: bool,
        verify_due: bool,
    ) {
        let next = |secs: u64| {
            Timestamp::from(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs as i64))
                .to_rfc3339()
        };
        let next_backup = if backup_due {
            self.run_backup(app, Reason::Scheduled).await;
            next(schedule.every_secs)
        } else {
            schedule.next_backup_at.clone()
        };
        let next_verify = match (verify_due, schedule.verify_every_secs) {
            (true, Some(secs)) => {
                self.run_verify(app, None).await;
                Some(next(secs))
            }
            _ => schedule.next_verify_at.clone(),
        };
        if let Err(error) = self
            .store
            .advance_backup_schedule(&app.id, &next_backup, next_verify.as_deref())
            .await
        {
            tracing::error!(%error, "cannot move a backup schedule on");
        }
    }
}

fn record_view(r: BackupResult) -> wire::BackupRecord {
    wire::BackupRecord {
        app: r.app,
        kind: r.kind,
        snapshot: r.snapshot,
        started_at: r.started_at,
        finished_at: r.finished_at,
        bytes: r.bytes,
        ok: r.ok,
        detail: r.detail,
    }
}

fn schedule_view(app: &AppName, s: ScheduleRow) -> wire::BackupSchedule {
    wire::BackupSchedule {
        app: app.to_string(),
        every_secs: s.every_secs,
        keep_last: s.keep_last,
        keep_daily: s.keep_daily,
        keep_weekly: s.keep_weekly,
        keep_monthly: s.keep_monthly,
        verify_every_secs: s.verify_every_secs,
        next_backup_at: s.next_backup_at,
        next_verify_at: s.next_verify_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, rows: u64, sum: &str) -> TableSum {
        TableSum {
            table: name.into(),
            rows,
            checksum: sum.into(),
        }
    }

    fn file(path: &str, hash: &str) -> FileSum {
        FileSum {
            path: path.into(),
            size: 1,
            blake3: hash.into(),
        }
    }

    #[test]
    fn comparisons_name_every_difference() {
        let want = [table("public.a", 3, "x"), table("public.b", 1, "y")];
        assert_eq!(compare(&want, &want, &[], &[]), None);
        let got = [table("public.a", 2, "x"), table("public.c", 1, "z")];
        let text = compare(
            &want,
            &got,
            &[file("p", "1")],
            &[file("p", "2"), file("q", "3")],
        )
        .unwrap();
        for part in [
            "public.a has 2 rows",
            "public.b is missing",
            "public.c was not in the snapshot",
            "media file p differs",
            "media file q was not in the snapshot",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }
}

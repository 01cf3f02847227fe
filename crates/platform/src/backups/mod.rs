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
use rampart_watch::alert::Severity;
use serde::{Deserialize, Serialize};

use crate::{Acting, Error, Platform};

mod repository;
mod restore;
mod schedule;
mod snapshot;
mod verify;

use repository::Repo;
use restore::restore_dump;

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

/// The backup path: snapshots, restores, test restores, schedules and
/// retention of one app's database and media. A handle on the
/// [`Platform`], from [`Platform::backups`].
#[derive(Debug, Clone, Copy)]
pub struct Backups<'a> {
    pub(crate) p: &'a Platform,
}

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

/// Why a backup, restore or test restore failed. It keeps the error it
/// came from; its message is what the result records and the user reads.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackupFailure {
    #[error(transparent)]
    Repository(#[from] rampart_backup::Error),
    #[error(transparent)]
    Data(#[from] rampart_services::ServiceError),
    #[error(transparent)]
    Platform(#[from] Error),
    #[error(transparent)]
    Store(#[from] rampart_store::StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Encoding(#[from] serde_json::Error),
    #[error("a backup task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A failure this module describes itself (a mismatch, a missing part).
    #[error("{0}")]
    Described(String),
    /// An error with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        context: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BackupFailure {
    fn context(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BackupFailure::Context {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

impl From<String> for BackupFailure {
    fn from(message: String) -> Self {
        BackupFailure::Described(message)
    }
}

impl From<&str> for BackupFailure {
    fn from(message: &str) -> Self {
        BackupFailure::Described(message.to_owned())
    }
}

fn failed(message: impl std::fmt::Display) -> Error {
    Error::Unavailable(message.to_string())
}

fn read_manifest(repo: &Repository, snapshot: &str) -> Result<Manifest, BackupFailure> {
    let mut bytes = Vec::new();
    repo.dump(snapshot, MANIFEST, &mut bytes)
        .map_err(|e| BackupFailure::context(format!("snapshot {snapshot}"), e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| BackupFailure::context(format!("snapshot {snapshot}: bad manifest"), e))
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
    fn new(root: &Path, what: &str) -> Result<Self, BackupFailure> {
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

impl Backups<'_> {
    fn backup_config(&self) -> Result<BackupConfig, Error> {
        self.p.backup.clone().ok_or_else(|| {
            Error::Unavailable(
                "no backup repository is configured: set [backup] repository and key_file in rampart.toml".into(),
            )
        })
    }

    /// Records a result; a failure also becomes an app event.
    async fn record_result(&self, app: &AppRow, result: BackupResult) {
        let rule = match result.kind.as_str() {
            "backup" => Some(("backup_failed", Severity::Critical)),
            "verify" => Some(("verify_failed", Severity::Critical)),
            "retention" => Some(("retention_failed", Severity::Warning)),
            "restore" => Some(("restore_failed", Severity::Warning)),
            _ => None,
        };
        if let Some((rule, severity)) = rule {
            let alerts = self.p.alerts();
            if result.ok {
                alerts.resolve(rule, Some(app.name.as_str()), None).await;
            } else {
                alerts
                    .raise(crate::alerts::Condition::of_app(
                        rule,
                        severity,
                        app.name.as_str(),
                        format!(
                            "{}: {} failed: {}",
                            app.name,
                            result.kind,
                            result.detail.lines().next().unwrap_or("")
                        ),
                    ))
                    .await;
            }
        }
        if !result.ok {
            tracing::warn!(app = %app.name, kind = %result.kind, detail = %result.detail, "backup step failed");
            let event = AppEvent {
                time: result.finished_at.clone(),
                kind: format!("{}_failed", result.kind),
                message: result.detail.clone(),
            };
            if let Err(error) = self.p.store.add_event(&app.id, &event).await {
                tracing::error!(%error, "cannot record an app event");
            }
        }
        if let Err(error) = self.p.store.add_backup_result(&result).await {
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

    async fn media_place(&self, app: &AppRow) -> Result<MediaPlace, BackupFailure> {
        if let Some(s3) = self.p.services().s3() {
            let s3 = s3.map_err(BackupFailure::from)?;
            if let Some(row) = self
                .p
                .store
                .media_bucket(&app.id)
                .await
                .map_err(BackupFailure::from)?
            {
                return Ok(MediaPlace::Bucket(
                    s3.store(&row.bucket).map_err(BackupFailure::from)?,
                ));
            }
        }
        Ok(MediaPlace::Folder(
            self.p.services().media.dir(app.name.as_str()),
        ))
    }

    /// The app's snapshots, oldest first.
    pub async fn snapshots(&self, app: &str) -> Result<Vec<wire::BackupSnapshot>, Error> {
        let row = self.p.app_row(app).await?;
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
        let row = self.p.app_row(app).await?;
        Ok(self
            .p
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

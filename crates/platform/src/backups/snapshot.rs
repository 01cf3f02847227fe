//! Taking an app snapshot: the manifest, the dump streamed from `pg_dump`
//! and the media, in one snapshot of the engine.

use super::*;

/// A reader over `pg_dump`'s output that turns its failure into a read
/// error, so a dump that stops early can never become a snapshot.
struct DumpReader {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl DumpReader {
    fn spawn(mut cmd: std::process::Command) -> Result<Self, BackupFailure> {
        let mut child = cmd
            .spawn()
            .map_err(|e| BackupFailure::context("cannot run pg_dump", e))?;
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

impl Backups<'_> {
    /// Takes one snapshot of the app's database and media.
    pub(super) async fn snapshot_app(
        &self,
        app: &AppRow,
        reason: Reason,
    ) -> Result<(String, u64), BackupFailure> {
        let repo = self.repository().await?;
        let db = self
            .p
            .store
            .database(&app.id)
            .await
            .map_err(BackupFailure::from)?;
        let tenant = match &db {
            Some(db) => Some(self.p.tenant(app, db).map_err(BackupFailure::from)?),
            None => None,
        };
        // Media in a bucket are copied to a private folder first.
        let (media_dir, staged) = match self.media_place(app).await? {
            MediaPlace::Folder(dir) => (dir, None),
            MediaPlace::Bucket(store) => {
                let scratch = Scratch::new(self.p.services().media.root(), ".backup")?;
                rampart_services::s3::download(store.as_ref(), &scratch.0)
                    .await
                    .map_err(|e| BackupFailure::context("reading media from the bucket", e))?;
                (scratch.0.clone(), Some(scratch))
            }
        };
        let media_sums = {
            let dir = media_dir.clone();
            tokio::task::spawn_blocking(move || media::fingerprint(&dir))
                .await
                .map_err(BackupFailure::from)?
                .map_err(BackupFailure::from)?
        };
        // The dump and the fingerprint see one snapshot of the database,
        // held open until the dump is stored.
        let (holder, dump_cmd, tables) = match (&db, &tenant) {
            (Some(db), Some(tenant)) => {
                let (holder, snapshot, tables) = tenant
                    .exported_snapshot(&db.name)
                    .await
                    .map_err(BackupFailure::from)?;
                (
                    Some(holder),
                    Some(
                        tenant
                            .dump_command(&db.name, &snapshot)
                            .map_err(BackupFailure::from)?,
                    ),
                    tables,
                )
            }
            _ => (None, None, Vec::new()),
        };
        let release = self
            .p
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
        let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(BackupFailure::from)?;
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
            .map_err(BackupFailure::from)
        })
        .await
        .map_err(BackupFailure::from)?;
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
    pub(super) async fn run_backup(&self, app: &AppRow, reason: Reason) -> wire::BackupRecord {
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
            Err(message) => result.detail = message.to_string(),
        }
        result.finished_at = Timestamp::now().to_rfc3339();
        self.record_result(app, result.clone()).await;
        if result.ok
            && let Ok(Some(schedule)) = self.p.store.backup_schedule(&app.id).await
        {
            self.apply_retention(app, &schedule).await;
        }
        record_view(result)
    }

    /// `rampart backup run APP`.
    pub async fn backup_now(
        &self,
        acting: Acting<'_>,
        app: &str,
    ) -> Result<wire::BackupRecord, Error> {
        let row = self.p.app_row(app).await?;
        self.backup_config()?;
        let _turn = self.p.services().backup_turn(&row.id).await;
        let result = self.run_backup(&row, Reason::Manual).await;
        let outcome = if result.ok {
            rampart_core::audit::Outcome::Ok
        } else {
            rampart_core::audit::Outcome::Failed
        };
        let record = Platform::record_by(
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
        self.p.append(record).await;
        if result.ok {
            Ok(result)
        } else {
            Err(failed(format!("the backup failed: {}", result.detail)))
        }
    }
}

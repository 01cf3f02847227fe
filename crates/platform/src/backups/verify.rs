//! Test restores: a snapshot loaded into a scratch database and folder and
//! compared with its manifest.

use super::*;

impl Backups<'_> {
    /// Test-restores a snapshot (the newest when `None`) into a scratch
    /// database and folder and compares it with its manifest. The result is
    /// recorded either way.
    pub(super) async fn run_verify(
        &self,
        app: &AppRow,
        snapshot: Option<String>,
    ) -> wire::BackupRecord {
        let started_at = Timestamp::now().to_rfc3339();
        let clock = std::time::Instant::now();
        let mut result = Self::result(app, "verify", started_at);
        let outcome = self.verify_snapshot(app, snapshot, &mut result).await;
        match outcome {
            Ok(detail) => {
                result.ok = true;
                result.detail = format!("{detail} in {}", since(&clock));
            }
            Err(message) => result.detail = message.to_string(),
        }
        result.finished_at = Timestamp::now().to_rfc3339();
        self.record_result(app, result.clone()).await;
        record_view(result)
    }

    pub(super) async fn verify_snapshot(
        &self,
        app: &AppRow,
        snapshot: Option<String>,
        result: &mut BackupResult,
    ) -> Result<String, BackupFailure> {
        let repo = self.repository().await?;
        let wanted = match snapshot {
            Some(s) => s,
            None => {
                let app_id = app.id.to_string();
                let r = Arc::clone(&repo);
                let list = tokio::task::spawn_blocking(move || r.snapshots())
                    .await
                    .map_err(BackupFailure::from)?
                    .map_err(BackupFailure::from)?;
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
            .map_err(BackupFailure::from)?;
        result.snapshot = Some(id.clone());
        let mut got_tables = Vec::new();
        if manifest.database.is_some() {
            // The snapshot is loaded by a role of its own that owns only the
            // scratch database: whatever the app planted in its data runs
            // with less than the app's rights, and never the admin's.
            let admin = self
                .p
                .services()
                .admin()
                .map_err(BackupFailure::from)?
                .clone();
            let scratch = format!("rampart_verify_{}", crate::ops::random_suffix());
            let password = rampart_services::postgres::new_password();
            admin
                .create_database(&scratch, &scratch, &password)
                .await
                .map_err(BackupFailure::from)?;
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
                        .map_err(BackupFailure::from)
                        .and_then(|r| r)
                        .map(|()| tenant)
                }
                Err(e) => Err(BackupFailure::from(e)),
            };
            let fingerprint = match loaded {
                Ok(tenant) => tenant
                    .fingerprint(&scratch)
                    .await
                    .map_err(BackupFailure::from),
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
        let media_root = self.p.services().media.root().to_path_buf();
        let has_media = !manifest.media.is_empty();
        let got_media = {
            let (repo, id) = (Arc::clone(&repo), id.clone());
            tokio::task::spawn_blocking(move || {
                let scratch = Scratch::new(&media_root, ".verify")?;
                if has_media {
                    rampart_backup::restore(&repo, &id, &scratch.0, &[MEDIA.to_owned()], &Silent)
                        .map_err(|e| BackupFailure::context("reading media from the repository", e))?;
                }
                media::fingerprint(&scratch.0.join(MEDIA)).map_err(BackupFailure::from)
            })
            .await
            .map_err(BackupFailure::from)??
        };
        result.bytes = got_media.iter().map(|f| f.size).sum();
        if let Some(problem) = compare(&manifest.tables, &got_tables, &manifest.media, &got_media) {
            return Err(format!(
                "snapshot {} does not restore as recorded: {problem}",
                &id[..12]
            )
            .into());
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
        let row = self.p.app_row(app).await?;
        self.backup_config()?;
        let _turn = self.p.services().backup_turn(&row.id).await;
        let result = self.run_verify(&row, request.snapshot).await;
        let record = Platform::record_by(
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
        self.p.append(record).await;
        Ok(result)
    }
}

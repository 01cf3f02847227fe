//! Restoring a snapshot over an app's live data: loaded and checked aside,
//! then swapped in.

use super::*;

/// Runs `pg_restore` into `database` as `tenant`, fed from the snapshot's
/// dump.
pub(super) fn restore_dump(
    repo: &Repository,
    tenant: &Tenant,
    snapshot: &str,
    database: &str,
) -> Result<(), BackupFailure> {
    let mut child = tenant
        .restore_command(database)
        .map_err(BackupFailure::from)?
        .spawn()
        .map_err(|e| BackupFailure::context("cannot run pg_restore", e))?;
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
    let status = child
        .wait()
        .map_err(|e| BackupFailure::context("pg_restore", e))?;
    let message = stderr.join().unwrap_or_default();
    fed.map_err(|e| BackupFailure::context("reading the dump from the repository", e))?;
    if !status.success() {
        return Err(format!("pg_restore failed ({status}): {}", message.trim()).into());
    }
    Ok(())
}

impl Backups<'_> {
    /// `rampart backup restore APP SNAPSHOT [--into OTHER] [--force]`.
    pub async fn restore_backup(
        &self,
        acting: Acting<'_>,
        app: &str,
        snapshot: &str,
        request: wire::RestoreBackup,
    ) -> Result<wire::RestoredBackup, Error> {
        let source = self.p.app_row(app).await?;
        let target = match &request.into {
            Some(other) => self.p.app_row(other).await?,
            None => source.clone(),
        };
        if let Some(scope) = &acting.caller.scope
            && scope != &target.name
        {
            return Err(Error::Forbidden(format!(
                "this token may only act on app {scope}"
            )));
        }
        let _turn = self.p.services().backup_turn(&target.id).await;
        let repo = self.repository().await.map_err(failed)?;
        let (id, manifest) = self.app_snapshot(&repo, &source, snapshot).await?;
        let target_db = self.p.store.database(&target.id).await?;
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
                self.p.services().admin()?.clone(),
                self.p.tenant(&target, db)?,
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
                result.detail = message.to_string();
                audit_outcome = rampart_core::audit::Outcome::Failed;
                Err(failed(format!("the restore failed: {message}")))
            }
        };
        self.record_result(&target, result).await;
        let record = Platform::record_by(
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
        self.p.append(record).await;
        answer
    }

    /// Restores the snapshot's database into a fresh database and its media
    /// into a private folder, checks both against the manifest, and only
    /// then puts them in place: the database by rename (the live one is
    /// closed to new sessions first), the media entry by entry (or into the
    /// bucket). A failure before that point leaves live data as it was.
    pub(super) async fn restore_into(
        &self,
        repo: &Repo,
        id: &str,
        manifest: &Manifest,
        target: &AppRow,
        database: Option<(String, Admin, Tenant)>,
        place: MediaPlace,
    ) -> Result<(), BackupFailure> {
        let mut fresh_db = None;
        if let (Some(_), Some((db, admin, tenant))) = (&manifest.database, &database) {
            let fresh = format!("{db}_restore_{}", crate::ops::random_suffix());
            admin
                .create_empty(&fresh, db)
                .await
                .map_err(BackupFailure::from)?;
            let loaded = {
                let (repo, tenant, id, fresh) = (
                    Arc::clone(repo),
                    tenant.clone(),
                    id.to_owned(),
                    fresh.clone(),
                );
                tokio::task::spawn_blocking(move || restore_dump(&repo, &tenant, &id, &fresh))
                    .await
                    .map_err(BackupFailure::from)
                    .and_then(|r| r)
            };
            let checked = match loaded {
                Ok(()) => match tenant.fingerprint(&fresh).await {
                    Ok(got) => match compare(&manifest.tables, &got, &[], &[]) {
                        None => Ok(()),
                        Some(problem) => {
                            Err(format!("the restored database differs: {problem}").into())
                        }
                    },
                    Err(e) => Err(BackupFailure::from(e)),
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

        let media_root = self.p.services().media.root().to_path_buf();
        let has_media = !manifest.media.is_empty();
        let want = manifest.media.clone();
        let (repo, id) = (Arc::clone(repo), id.to_owned());
        let staged = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&media_root).map_err(BackupFailure::from)?;
            let staging = Scratch::new(&media_root, ".restore")?;
            if has_media {
                rampart_backup::restore(&repo, &id, &staging.0, &[MEDIA.to_owned()], &Silent)
                    .map_err(|e| BackupFailure::context("reading media from the repository", e))?;
            }
            let restored = staging.0.join(MEDIA);
            std::fs::create_dir_all(&restored).map_err(BackupFailure::from)?;
            let got = media::fingerprint(&restored).map_err(BackupFailure::from)?;
            if let Some(problem) = compare(&[], &[], &want, &got) {
                return Err(format!("the restored media differ: {problem}").into());
            }
            Ok(staging)
        })
        .await
        .map_err(BackupFailure::from)
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
                return Err(e.into());
            }
            if let Err(error) = admin.drop_database(&old).await {
                tracing::warn!(%error, database = %old, "cannot drop the replaced database");
            }
        }

        let restored = staging.0.join(MEDIA);
        match place {
            MediaPlace::Bucket(store) => rampart_services::s3::upload(store.as_ref(), &restored)
                .await
                .map_err(|e| BackupFailure::context("writing media to the bucket", e)),
            MediaPlace::Folder(_) => {
                let owner = {
                    use std::os::unix::fs::MetadataExt;
                    let dir = self.p.services().media.dir(target.name.as_str());
                    std::fs::metadata(&dir).ok().map(|m| (m.uid(), m.gid()))
                };
                let live = self
                    .p
                    .services()
                    .media
                    .ensure(target.name.as_str(), owner)
                    .map_err(BackupFailure::from)?;
                tokio::task::spawn_blocking(move || {
                    if let Some(owner) = owner {
                        media::chown_tree(&restored, owner).map_err(BackupFailure::from)?;
                    }
                    let moved =
                        media::replace_contents(&live, &restored).map_err(BackupFailure::from);
                    drop(staging);
                    moved
                })
                .await
                .map_err(BackupFailure::from)?
            }
        }
    }
}

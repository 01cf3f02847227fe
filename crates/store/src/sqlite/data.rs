//! Databases, media buckets, backup schedules and results in SQLite.

use super::*;

#[async_trait]
impl DataStore for SqliteStore {
    async fn database(&self, app: &AppId) -> Result<Option<DatabaseRow>> {
        let row = sqlx::query(
            "SELECT app_id, name, password, created_at FROM app_databases WHERE app_id = ?",
        )
        .bind(app.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(database_from_row).transpose()
    }

    async fn databases(&self) -> Result<Vec<DatabaseRow>> {
        let rows = sqlx::query(
            "SELECT app_id, name, password, created_at FROM app_databases ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(database_from_row).collect()
    }

    async fn put_database(&self, row: &DatabaseRow, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM apps WHERE id = ?")
                .bind(row.app_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!(
                    "there is no app with id {}",
                    row.app_id
                )));
            }
            sqlx::query(
                "INSERT INTO app_databases (app_id, name, password, created_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (app_id) DO UPDATE SET password = excluded.password",
            )
            .bind(row.app_id.as_str())
            .bind(&row.name)
            .bind(&row.password)
            .bind(&row.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::Conflict(format!("database {} belongs to another app", row.name))
                }
                other => other.into(),
            })?;
            Ok(())
        })
        .await
    }

    async fn media_bucket(&self, app: &AppId) -> Result<Option<MediaBucketRow>> {
        let row = sqlx::query(
            "SELECT app_id, bucket, iam_user, access_key_id, secret, created_at FROM app_media WHERE app_id = ?",
        )
        .bind(app.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(MediaBucketRow {
                app_id: app_id(row.try_get("app_id")?)?,
                bucket: row.try_get("bucket")?,
                iam_user: row.try_get("iam_user")?,
                access_key_id: row.try_get("access_key_id")?,
                secret: row.try_get("secret")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn put_media_bucket(&self, r: &MediaBucketRow) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO app_media (app_id, bucket, iam_user, access_key_id, secret, created_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (app_id) DO UPDATE SET access_key_id = excluded.access_key_id,
                secret = excluded.secret",
        )
        .bind(r.app_id.as_str())
        .bind(&r.bucket)
        .bind(&r.iam_user)
        .bind(&r.access_key_id)
        .bind(&r.secret)
        .bind(&r.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn backup_schedule(&self, app: &AppId) -> Result<Option<ScheduleRow>> {
        let row = sqlx::query(&format!("{SCHEDULE_SELECT} WHERE app_id = ?"))
            .bind(app.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    async fn backup_schedules(&self) -> Result<Vec<ScheduleRow>> {
        let rows = sqlx::query(&format!("{SCHEDULE_SELECT} ORDER BY app_id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn set_backup_schedule(
        &self,
        app: &AppId,
        schedule: Option<&ScheduleRow>,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            match schedule {
                None => {
                    sqlx::query("DELETE FROM backup_schedules WHERE app_id = ?")
                        .bind(app.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                Some(s) => {
                    sqlx::query(
                        "INSERT INTO backup_schedules (app_id, every_secs, keep_last, keep_daily,
                            keep_weekly, keep_monthly, verify_every_secs, next_backup_at, next_verify_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (app_id) DO UPDATE SET every_secs = excluded.every_secs,
                            keep_last = excluded.keep_last, keep_daily = excluded.keep_daily,
                            keep_weekly = excluded.keep_weekly, keep_monthly = excluded.keep_monthly,
                            verify_every_secs = excluded.verify_every_secs,
                            next_backup_at = excluded.next_backup_at,
                            next_verify_at = excluded.next_verify_at",
                    )
                    .bind(app.as_str())
                    .bind(s.every_secs as i64)
                    .bind(i64::from(s.keep_last))
                    .bind(i64::from(s.keep_daily))
                    .bind(i64::from(s.keep_weekly))
                    .bind(i64::from(s.keep_monthly))
                    .bind(s.verify_every_secs.map(|v| v as i64))
                    .bind(&s.next_backup_at)
                    .bind(&s.next_verify_at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn advance_backup_schedule(
        &self,
        app: &AppId,
        next_backup_at: &str,
        next_verify_at: Option<&str>,
    ) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "UPDATE backup_schedules SET next_backup_at = ?, next_verify_at = ? WHERE app_id = ?",
        )
        .bind(next_backup_at)
        .bind(next_verify_at)
        .bind(app.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_backup_result(&self, r: &BackupResult) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO backup_results (app, kind, snapshot, started_at, finished_at, bytes, outcome, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.app)
        .bind(&r.kind)
        .bind(&r.snapshot)
        .bind(&r.started_at)
        .bind(&r.finished_at)
        .bind(r.bytes.min(i64::MAX as u64) as i64)
        .bind(if r.ok { "ok" } else { "failed" })
        .bind(&r.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn backup_results(&self, app: &str, limit: u32) -> Result<Vec<BackupResult>> {
        let rows = sqlx::query(
            "SELECT app, kind, snapshot, started_at, finished_at, bytes, outcome, detail FROM
                (SELECT * FROM backup_results WHERE app = ? ORDER BY id DESC LIMIT ?)
             ORDER BY id",
        )
        .bind(app)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let outcome: String = row.try_get("outcome")?;
                Ok(BackupResult {
                    app: row.try_get("app")?,
                    kind: row.try_get("kind")?,
                    snapshot: row.try_get("snapshot")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    bytes: row.try_get::<i64, _>("bytes")?.max(0) as u64,
                    ok: outcome == "ok",
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }
}

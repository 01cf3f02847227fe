//! Scheduled jobs and their runs in SQLite.

use super::*;

fn job_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<CronJobRow> {
    let command: String = row.try_get("command")?;
    Ok(CronJobRow {
        id: row.try_get("id")?,
        app_id: app_id(row.try_get("app_id")?)?,
        schedule: row.try_get("schedule")?,
        command: serde_json::from_str(&command)
            .map_err(|e| StoreError::Corrupt(format!("a cron job's command: {e}")))?,
        timeout_secs: row.try_get::<i64, _>("timeout_secs")?.max(1) as u64,
        next_run_at: row.try_get("next_run_at")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        from_manifest: row.try_get::<String, _>("source")? == "manifest",
    })
}

async fn insert_job(tx: &mut sqlx::SqliteConnection, job: &CronJobRow) -> Result<()> {
    let command = serde_json::to_string(&job.command)
        .map_err(|e| StoreError::Corrupt(format!("a cron job's command: {e}")))?;
    sqlx::query(
        "INSERT INTO cron_jobs (id, app_id, schedule, command, timeout_secs, next_run_at, created_by, created_at, source)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&job.id)
    .bind(job.app_id.as_str())
    .bind(&job.schedule)
    .bind(&command)
    .bind(job.timeout_secs.min(i64::MAX as u64) as i64)
    .bind(&job.next_run_at)
    .bind(&job.created_by)
    .bind(&job.created_at)
    .bind(if job.from_manifest { "manifest" } else { "added" })
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl CronStore for SqliteStore {
    async fn cron_jobs(&self, app: Option<&AppId>) -> Result<Vec<CronJobRow>> {
        let rows = sqlx::query(
            "SELECT id, app_id, schedule, command, timeout_secs, next_run_at, created_by, created_at, source
             FROM cron_jobs WHERE ?1 IS NULL OR app_id = ?1 ORDER BY created_at, id",
        )
        .bind(app.map(AppId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn add_cron_job(&self, job: &CronJobRow, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| insert_job(tx, job).await)
            .await
    }

    async fn set_declared_cron_jobs(
        &self,
        app: &AppId,
        jobs: &[CronJobRow],
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        if let Some(stray) = jobs.iter().find(|j| &j.app_id != app || !j.from_manifest) {
            return Err(StoreError::Conflict(format!(
                "job {} is not a declared job of this app",
                stray.id
            )));
        }
        self.audited(audit, async |tx| {
            let existing: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM cron_jobs WHERE app_id = ? AND source = 'manifest'",
            )
            .bind(app.as_str())
            .fetch_all(&mut *tx)
            .await?;
            for id in &existing {
                if !jobs.iter().any(|j| &j.id == id) {
                    sqlx::query("DELETE FROM cron_jobs WHERE id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for job in jobs {
                if !existing.contains(&job.id) {
                    insert_job(tx, job).await?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn remove_cron_job(
        &self,
        app: &AppId,
        id: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            found(
                sqlx::query("DELETE FROM cron_jobs WHERE app_id = ? AND id = ?")
                    .bind(app.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?,
                || format!("the app has no scheduled job {id}"),
            )?;
            Ok(())
        })
        .await
    }

    async fn advance_cron_job(&self, id: &str, next_run_at: &str) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query("UPDATE cron_jobs SET next_run_at = ? WHERE id = ?")
            .bind(next_run_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn add_cron_run(&self, r: &CronRunRow) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO cron_runs (job_id, app_id, started_at, finished_at, outcome, status, duration_ms, detail)
             SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM apps WHERE id = ?)",
        )
        .bind(&r.job_id)
        .bind(r.app_id.as_str())
        .bind(&r.started_at)
        .bind(&r.finished_at)
        .bind(&r.outcome)
        .bind(r.status)
        .bind(r.duration_ms.min(i64::MAX as u64) as i64)
        .bind(&r.detail)
        .bind(r.app_id.as_str())
        .execute(&self.pool)
        .await?;
        trim_per_app(&self.pool, "cron_runs", &r.app_id).await
    }

    async fn cron_runs(&self, app: &AppId, limit: u32) -> Result<Vec<CronRunRow>> {
        let rows = sqlx::query(
            "SELECT job_id, app_id, started_at, finished_at, outcome, status, duration_ms, detail FROM
                (SELECT * FROM cron_runs WHERE app_id = ? ORDER BY id DESC LIMIT ?)
             ORDER BY id",
        )
        .bind(app.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CronRunRow {
                    job_id: row.try_get("job_id")?,
                    app_id: app_id(row.try_get("app_id")?)?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    outcome: row.try_get("outcome")?,
                    status: row.try_get("status")?,
                    duration_ms: row.try_get::<i64, _>("duration_ms")?.max(0) as u64,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }
}

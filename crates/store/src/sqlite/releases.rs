//! Releases in SQLite.

use super::*;

#[async_trait]
impl ReleaseStore for SqliteStore {
    async fn create_release(
        &self,
        app: &AppId,
        release: &NewRelease,
        audit: AuditRecord,
    ) -> Result<(u64, AuditEntry)> {
        let config = serde_json::to_string(&release.config)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (number, entry) = self
            .audited_with(audit, async |tx| {
                let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM apps WHERE id = ?")
                    .bind(app.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound(format!(
                        "there is no app with id {app}"
                    )));
                }
                let number: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE app_id = ?",
                )
                .bind(app.as_str())
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO releases (app_id, number, image, image_id, config, created_by, created_at, status)
                     VALUES (?, ?, ?, ?, ?, ?, ?, 'deploying')",
                )
                .bind(app.as_str())
                .bind(number)
                .bind(&release.image)
                .bind(&release.image_id)
                .bind(config)
                .bind(&release.created_by)
                .bind(&release.created_at)
                .execute(&mut *tx)
                .await?;
                Ok(number)
            })
            .await?;
        Ok((number as u64, entry))
    }

    async fn finish_release(
        &self,
        app: &AppId,
        number: u64,
        status: ReleaseStatus,
        reason: Option<&str>,
        at: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            let done = sqlx::query(
                "UPDATE releases SET status = ?, reason = ?, finished_at = ?
                 WHERE app_id = ? AND number = ? AND status = 'deploying'",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(at)
            .bind(app.as_str())
            .bind(number as i64)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!(
                    "release {number} of app {app} is not deploying"
                )));
            }
            if status == ReleaseStatus::Live {
                sqlx::query(
                    "UPDATE releases SET status = 'retired'
                     WHERE app_id = ? AND status = 'live' AND number != ?",
                )
                .bind(app.as_str())
                .bind(number as i64)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE apps SET live_release = ? WHERE id = ?")
                    .bind(number as i64)
                    .bind(app.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    async fn releases(&self, app: &AppId) -> Result<Vec<ReleaseRow>> {
        let sql =
            format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE app_id = ? ORDER BY number DESC");
        let rows = sqlx::query(&sql)
            .bind(app.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(release_from_row).collect()
    }

    async fn release(&self, app: &AppId, number: u64) -> Result<Option<ReleaseRow>> {
        let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE app_id = ? AND number = ?");
        let row = sqlx::query(&sql)
            .bind(app.as_str())
            .bind(i64::try_from(number).unwrap_or(i64::MAX))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(release_from_row).transpose()
    }

    async fn unfinished_releases(&self) -> Result<Vec<ReleaseRow>> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE status = 'deploying' ORDER BY app_id, number"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(release_from_row).collect()
    }
}

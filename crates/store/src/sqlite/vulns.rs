//! Inventories, advisories and accepted risks, in SQLite.

use super::*;
use crate::{AcceptedRiskRow, AdvisoryImportRow};

#[async_trait]
impl VulnStore for SqliteStore {
    async fn put_inventory(
        &self,
        app: &AppId,
        number: u64,
        scanned_at: &str,
        packages: &str,
    ) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO release_inventories (app_id, number, scanned_at, packages)
             VALUES (?, ?, ?, ?)
             ON CONFLICT (app_id, number) DO UPDATE SET scanned_at = excluded.scanned_at,
                 packages = excluded.packages",
        )
        .bind(app.as_str())
        .bind(number as i64)
        .bind(scanned_at)
        .bind(packages)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn inventory(&self, app: &AppId, number: u64) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT scanned_at, packages FROM release_inventories WHERE app_id = ? AND number = ?",
        )
        .bind(app.as_str())
        .bind(number as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((row.try_get("scanned_at")?, row.try_get("packages")?)))
            .transpose()
    }

    async fn advisory_records(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT record FROM advisories ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn import_advisories(
        &self,
        records: &[(String, String, String)],
        import: &AdvisoryImportRow,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            for (id, modified, record) in records {
                sqlx::query(
                    "INSERT INTO advisories (id, modified, record) VALUES (?, ?, ?)
                     ON CONFLICT (id) DO UPDATE SET modified = excluded.modified,
                         record = excluded.record",
                )
                .bind(id)
                .bind(modified)
                .bind(record)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO advisory_imports (imported_at, imported_by, new, updated, unchanged,
                     refused, newest_record)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&import.imported_at)
            .bind(&import.imported_by)
            .bind(import.new as i64)
            .bind(import.updated as i64)
            .bind(import.unchanged as i64)
            .bind(import.refused as i64)
            .bind(&import.newest_record)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn advisory_imports(&self, limit: u32) -> Result<Vec<AdvisoryImportRow>> {
        let rows = sqlx::query(
            "SELECT imported_at, imported_by, new, updated, unchanged, refused, newest_record
             FROM advisory_imports ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let count = |name: &str| -> Result<u64> { Ok(row.try_get::<i64, _>(name)? as u64) };
                Ok(AdvisoryImportRow {
                    imported_at: row.try_get("imported_at")?,
                    imported_by: row.try_get("imported_by")?,
                    new: count("new")?,
                    updated: count("updated")?,
                    unchanged: count("unchanged")?,
                    refused: count("refused")?,
                    newest_record: row.try_get("newest_record")?,
                })
            })
            .collect()
    }

    async fn accept_risk(&self, row: &AcceptedRiskRow, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            sqlx::query(
                "INSERT INTO accepted_risks (app_id, advisory, reason, expires_at, created_by,
                     created_at)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (app_id, advisory) DO UPDATE SET reason = excluded.reason,
                     expires_at = excluded.expires_at, created_by = excluded.created_by,
                     created_at = excluded.created_at",
            )
            .bind(row.app_id.as_str())
            .bind(&row.advisory)
            .bind(&row.reason)
            .bind(&row.expires_at)
            .bind(&row.created_by)
            .bind(&row.created_at)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn remove_accepted_risk(
        &self,
        app: &AppId,
        advisory: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            found(
                sqlx::query("DELETE FROM accepted_risks WHERE app_id = ? AND advisory = ?")
                    .bind(app.as_str())
                    .bind(advisory)
                    .execute(&mut *tx)
                    .await?,
                || format!("{advisory} is not accepted for this app"),
            )?;
            Ok(())
        })
        .await
    }

    async fn accepted_risks(&self) -> Result<Vec<AcceptedRiskRow>> {
        let rows = sqlx::query(
            "SELECT app_id, advisory, reason, expires_at, created_by, created_at
             FROM accepted_risks ORDER BY app_id, advisory",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AcceptedRiskRow {
                    app_id: AppId::from_stored(row.try_get("app_id")?),
                    advisory: row.try_get("advisory")?,
                    reason: row.try_get("reason")?,
                    expires_at: row.try_get("expires_at")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

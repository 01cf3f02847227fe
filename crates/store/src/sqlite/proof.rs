//! Self-audit runs and access reviews, in SQLite.

use super::*;
use crate::{AccessReviewRow, DoctorRunRow, ProofStore};

fn count(row: &sqlx::sqlite::SqliteRow, name: &str) -> Result<u32> {
    Ok(u32::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
}

#[async_trait]
impl ProofStore for SqliteStore {
    async fn add_doctor_run(&self, run: &DoctorRunRow) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO doctor_runs (at, actor, passed, warned, failed, checks)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&run.at)
        .bind(&run.actor)
        .bind(i64::from(run.passed))
        .bind(i64::from(run.warned))
        .bind(i64::from(run.failed))
        .bind(&run.checks)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn doctor_runs(&self, from: &str, to: &str) -> Result<Vec<DoctorRunRow>> {
        let rows = sqlx::query(
            "SELECT at, actor, passed, warned, failed, checks FROM doctor_runs
             WHERE at >= ? AND at < ? ORDER BY id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DoctorRunRow {
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    passed: count(row, "passed")?,
                    warned: count(row, "warned")?,
                    failed: count(row, "failed")?,
                    checks: row.try_get("checks")?,
                })
            })
            .collect()
    }

    async fn add_access_review(
        &self,
        review: &AccessReviewRow,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            sqlx::query(
                "INSERT INTO access_reviews (id, at, reviewer, note, snapshot)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&review.id)
            .bind(&review.at)
            .bind(&review.reviewer)
            .bind(&review.note)
            .bind(&review.snapshot)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn access_reviews(&self, from: &str, to: &str) -> Result<Vec<AccessReviewRow>> {
        let rows = sqlx::query(
            "SELECT id, at, reviewer, note, snapshot FROM access_reviews
             WHERE at >= ? AND at < ? ORDER BY at, id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AccessReviewRow {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    reviewer: row.try_get("reviewer")?,
                    note: row.try_get("note")?,
                    snapshot: row.try_get("snapshot")?,
                })
            })
            .collect()
    }
}

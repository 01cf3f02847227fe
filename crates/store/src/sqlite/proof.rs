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

const REPORT_COLUMNS: &str = "id, received_at, host, client, content_type, body, title, contact, \
     state, severity, incident_id, triaged_by, triaged_at, closed_by, closed_at, resolution";

fn report_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<crate::ReportRow> {
    Ok(crate::ReportRow {
        id: row.try_get("id")?,
        received_at: row.try_get("received_at")?,
        host: row.try_get("host")?,
        client: row.try_get("client")?,
        content_type: row.try_get("content_type")?,
        body: row.try_get("body")?,
        title: row.try_get("title")?,
        contact: row.try_get("contact")?,
        state: row.try_get("state")?,
        severity: row.try_get("severity")?,
        incident_id: row.try_get("incident_id")?,
        triaged_by: row.try_get("triaged_by")?,
        triaged_at: row.try_get("triaged_at")?,
        closed_by: row.try_get("closed_by")?,
        closed_at: row.try_get("closed_at")?,
        resolution: row.try_get("resolution")?,
    })
}

#[async_trait]
impl crate::ReportStore for SqliteStore {
    async fn add_report(&self, r: &crate::ReportRow) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(&format!(
            "INSERT INTO security_reports ({REPORT_COLUMNS})
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&r.id)
        .bind(&r.received_at)
        .bind(&r.host)
        .bind(&r.client)
        .bind(&r.content_type)
        .bind(&r.body)
        .bind(&r.title)
        .bind(&r.contact)
        .bind(&r.state)
        .bind(&r.severity)
        .bind(&r.incident_id)
        .bind(&r.triaged_by)
        .bind(&r.triaged_at)
        .bind(&r.closed_by)
        .bind(&r.closed_at)
        .bind(&r.resolution)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reports(&self, all: bool, limit: u32) -> Result<Vec<crate::ReportRow>> {
        let filter = if all { "" } else { "WHERE state != 'closed'" };
        let rows = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM security_reports {filter}
             ORDER BY received_at DESC, id LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(report_from_row).collect()
    }

    async fn report(&self, id: &str) -> Result<Option<crate::ReportRow>> {
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM security_reports WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(report_from_row).transpose()
    }

    async fn set_report_client(&self, id: &str, client: &str) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query("UPDATE security_reports SET client = ? WHERE id = ?")
            .bind(client)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn update_report(&self, r: &crate::ReportRow, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            found(
                sqlx::query(
                    "UPDATE security_reports SET state = ?, severity = ?, incident_id = ?,
                         triaged_by = ?, triaged_at = ?, closed_by = ?, closed_at = ?,
                         resolution = ?
                     WHERE id = ?",
                )
                .bind(&r.state)
                .bind(&r.severity)
                .bind(&r.incident_id)
                .bind(&r.triaged_by)
                .bind(&r.triaged_at)
                .bind(&r.closed_by)
                .bind(&r.closed_at)
                .bind(&r.resolution)
                .bind(&r.id)
                .execute(&mut *tx)
                .await?,
                || format!("there is no report {}", r.id),
            )
        })
        .await
    }
}

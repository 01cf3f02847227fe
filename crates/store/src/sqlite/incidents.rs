//! Incidents, their timelines and follow-up actions, in SQLite.

use super::*;
use crate::{FollowUpRow, IncidentChange, IncidentEventRow, IncidentRow};

const INCIDENT_COLUMNS: &str = "id, title, severity, state, app, owner, opened_by, opened_at, \
     acked_at, mitigated_at, resolved_at, reviewed_at, escalation, notified_at, cause, impact";

fn incident_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<IncidentRow> {
    Ok(IncidentRow {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        severity: row.try_get("severity")?,
        state: row.try_get("state")?,
        app: row.try_get("app")?,
        owner: row.try_get("owner")?,
        opened_by: row.try_get("opened_by")?,
        opened_at: row.try_get("opened_at")?,
        acked_at: row.try_get("acked_at")?,
        mitigated_at: row.try_get("mitigated_at")?,
        resolved_at: row.try_get("resolved_at")?,
        reviewed_at: row.try_get("reviewed_at")?,
        escalation: u32::try_from(row.try_get::<i64, _>("escalation")?).unwrap_or(0),
        notified_at: row.try_get("notified_at")?,
        cause: row.try_get("cause")?,
        impact: row.try_get("impact")?,
    })
}

fn follow_up_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<FollowUpRow> {
    Ok(FollowUpRow {
        incident_id: row.try_get("incident_id")?,
        number: u32::try_from(row.try_get::<i64, _>("number")?).unwrap_or(0),
        text: row.try_get("text")?,
        owner: row.try_get("owner")?,
        due: row.try_get("due")?,
        done_at: row.try_get("done_at")?,
        done_by: row.try_get("done_by")?,
    })
}

async fn write_incident(
    conn: &mut SqliteConnection,
    i: &IncidentRow,
    change: &IncidentChange<'_>,
) -> Result<()> {
    sqlx::query(&format!(
        // An upsert, not a REPLACE: a replaced row would take its
        // timeline with it through the cascade.
        "INSERT INTO incidents ({INCIDENT_COLUMNS})
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, severity = excluded.severity,
             state = excluded.state, owner = excluded.owner, acked_at = excluded.acked_at,
             mitigated_at = excluded.mitigated_at, resolved_at = excluded.resolved_at,
             reviewed_at = excluded.reviewed_at, escalation = excluded.escalation,
             notified_at = excluded.notified_at, cause = excluded.cause,
             impact = excluded.impact"
    ))
    .bind(&i.id)
    .bind(&i.title)
    .bind(&i.severity)
    .bind(&i.state)
    .bind(&i.app)
    .bind(&i.owner)
    .bind(&i.opened_by)
    .bind(&i.opened_at)
    .bind(&i.acked_at)
    .bind(&i.mitigated_at)
    .bind(&i.resolved_at)
    .bind(&i.reviewed_at)
    .bind(i64::from(i.escalation))
    .bind(&i.notified_at)
    .bind(&i.cause)
    .bind(&i.impact)
    .execute(&mut *conn)
    .await?;
    for e in change.events {
        sqlx::query(
            "INSERT INTO incident_events (incident_id, at, kind, actor, text, link)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&i.id)
        .bind(&e.at)
        .bind(&e.kind)
        .bind(&e.actor)
        .bind(&e.text)
        .bind(&e.link)
        .execute(&mut *conn)
        .await?;
    }
    for a in change.actions {
        sqlx::query(
            "INSERT INTO incident_actions
                 (incident_id, number, text, owner, due, done_at, done_by)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (incident_id, number) DO UPDATE SET text = excluded.text,
                 owner = excluded.owner, due = excluded.due, done_at = excluded.done_at,
                 done_by = excluded.done_by",
        )
        .bind(&a.incident_id)
        .bind(i64::from(a.number))
        .bind(&a.text)
        .bind(&a.owner)
        .bind(&a.due)
        .bind(&a.done_at)
        .bind(&a.done_by)
        .execute(&mut *conn)
        .await?;
    }
    super::alerts::insert_deliveries(conn, change.deliveries).await
}

#[async_trait]
impl IncidentStore for SqliteStore {
    async fn incidents(&self, all: bool, limit: u32) -> Result<Vec<IncidentRow>> {
        let filter = if all {
            ""
        } else {
            "WHERE state NOT IN ('resolved', 'reviewed')"
        };
        let rows = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents {filter}
             ORDER BY opened_at DESC, id LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(incident_from_row).collect()
    }

    async fn incident(&self, id: &str) -> Result<Option<IncidentRow>> {
        let row = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(incident_from_row).transpose()
    }

    async fn incident_events(&self, id: &str) -> Result<Vec<IncidentEventRow>> {
        let rows = sqlx::query(
            "SELECT at, kind, actor, text, link FROM incident_events
             WHERE incident_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(IncidentEventRow {
                    at: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    actor: row.try_get("actor")?,
                    text: row.try_get("text")?,
                    link: row.try_get("link")?,
                })
            })
            .collect()
    }

    async fn follow_ups(&self, id: Option<&str>) -> Result<Vec<FollowUpRow>> {
        let rows = sqlx::query(
            "SELECT incident_id, number, text, owner, due, done_at, done_by
             FROM incident_actions WHERE ? IS NULL OR incident_id = ?
             ORDER BY due, incident_id, number",
        )
        .bind(id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(follow_up_from_row).collect()
    }

    async fn save_incident(
        &self,
        incident: &IncidentRow,
        change: IncidentChange<'_>,
        audit: Option<AuditRecord>,
    ) -> Result<Option<AuditEntry>> {
        match audit {
            Some(audit) => self
                .audited(audit, async |tx| {
                    write_incident(tx, incident, &change).await
                })
                .await
                .map(Some),
            None => {
                let _write = self.write.lock().await;
                let mut tx = self.pool.begin().await?;
                write_incident(&mut tx, incident, &change).await?;
                tx.commit().await?;
                Ok(None)
            }
        }
    }
}

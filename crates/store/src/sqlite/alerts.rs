//! Alerts, notification channels and the delivery outbox in SQLite.

use super::*;
use crate::{AlertRow, ChannelRow, DeliveryRow};

fn alert_from(row: &sqlx::sqlite::SqliteRow) -> Result<AlertRow> {
    Ok(AlertRow {
        id: row.try_get("id")?,
        key: row.try_get("key")?,
        rule: row.try_get("rule")?,
        severity: row.try_get("severity")?,
        app: row.try_get("app")?,
        summary: row.try_get("summary")?,
        count: row.try_get::<i64, _>("count")?.max(1) as u64,
        first_at: row.try_get("first_at")?,
        last_at: row.try_get("last_at")?,
        notified_at: row.try_get("notified_at")?,
        state: row.try_get("state")?,
        resolved_at: row.try_get("resolved_at")?,
        acked_by: row.try_get("acked_by")?,
        acked_at: row.try_get("acked_at")?,
    })
}

fn delivery_from(row: &sqlx::sqlite::SqliteRow) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: row.try_get("id")?,
        channel_id: row.try_get("channel_id")?,
        alert_id: row.try_get("alert_id")?,
        body: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
        attempts: row
            .try_get::<i64, _>("attempts")?
            .clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        state: row.try_get("state")?,
        done_at: row.try_get("done_at")?,
    })
}

const ALERT_COLUMNS: &str = "id, key, rule, severity, app, summary, count, first_at, last_at, \
     notified_at, state, resolved_at, acked_by, acked_at";
const DELIVERY_COLUMNS: &str = "id, channel_id, alert_id, body, created_at, attempts, \
     next_attempt_at, last_error, state, done_at";

#[async_trait]
impl AlertStore for SqliteStore {
    async fn firing_alert(&self, key: &str) -> Result<Option<AlertRow>> {
        let row = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE key = ? AND state = 'firing'"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(alert_from).transpose()
    }

    async fn alert(&self, id: &str) -> Result<Option<AlertRow>> {
        let row = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(alert_from).transpose()
    }

    async fn alerts(&self, resolved: bool, limit: u32) -> Result<Vec<AlertRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE ?1 OR state = 'firing'
             ORDER BY first_at DESC, id LIMIT ?2"
        ))
        .bind(resolved)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_from).collect()
    }

    async fn save_alert(&self, a: &AlertRow, deliveries: &[DeliveryRow]) -> Result<()> {
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET summary = excluded.summary, count = excluded.count,
                 last_at = excluded.last_at, notified_at = excluded.notified_at,
                 state = excluded.state, resolved_at = excluded.resolved_at"
        ))
        .bind(&a.id)
        .bind(&a.key)
        .bind(&a.rule)
        .bind(&a.severity)
        .bind(&a.app)
        .bind(&a.summary)
        .bind(a.count.min(i64::MAX as u64) as i64)
        .bind(&a.first_at)
        .bind(&a.last_at)
        .bind(&a.notified_at)
        .bind(&a.state)
        .bind(&a.resolved_at)
        .bind(&a.acked_by)
        .bind(&a.acked_at)
        .execute(&mut *tx)
        .await?;
        insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ack_alert(
        &self,
        id: &str,
        by: &str,
        at: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            found(
                sqlx::query("UPDATE alerts SET acked_by = ?, acked_at = ? WHERE id = ?")
                    .bind(by)
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?,
                || format!("there is no alert {id}"),
            )?;
            Ok(())
        })
        .await
    }

    async fn channels(&self) -> Result<Vec<ChannelRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, target, secret, created_by, created_at FROM notify_channels
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ChannelRow {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    target: row.try_get("target")?,
                    secret: row.try_get("secret")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn add_channel(&self, c: &ChannelRow, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            sqlx::query(
                "INSERT INTO notify_channels (id, kind, target, secret, created_by, created_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&c.id)
            .bind(&c.kind)
            .bind(&c.target)
            .bind(&c.secret)
            .bind(&c.created_by)
            .bind(&c.created_at)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn remove_channel(&self, id: &str, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            sqlx::query("DELETE FROM deliveries WHERE channel_id = ? AND state = 'pending'")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            found(
                sqlx::query("DELETE FROM notify_channels WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?,
                || format!("there is no channel {id}"),
            )?;
            Ok(())
        })
        .await
    }

    async fn due_deliveries(&self, now: &str, limit: u32) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries
             WHERE state = 'pending' AND next_attempt_at <= ?
             ORDER BY next_attempt_at, id LIMIT ?"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from).collect()
    }

    async fn update_delivery(&self, d: &DeliveryRow) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_error = ?, state = ?,
                 done_at = ? WHERE id = ?",
        )
        .bind(i64::from(d.attempts))
        .bind(&d.next_attempt_at)
        .bind(&d.last_error)
        .bind(&d.state)
        .bind(&d.done_at)
        .bind(&d.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn prune_deliveries(&self, before: &str) -> Result<u64> {
        let _write = self.write.lock().await;
        let done =
            sqlx::query("DELETE FROM deliveries WHERE state != 'pending' AND created_at < ?")
                .bind(before)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    async fn deliveries(&self, alert: &str) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE alert_id = ? ORDER BY created_at, id"
        ))
        .bind(alert)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from).collect()
    }
}

/// Queues `deliveries` in the outbox, within the caller's transaction.
pub(super) async fn insert_deliveries(
    conn: &mut SqliteConnection,
    deliveries: &[DeliveryRow],
) -> Result<()> {
    for d in deliveries {
        sqlx::query(&format!(
            "INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&d.id)
        .bind(&d.channel_id)
        .bind(&d.alert_id)
        .bind(&d.body)
        .bind(&d.created_at)
        .bind(i64::from(d.attempts))
        .bind(&d.next_attempt_at)
        .bind(&d.last_error)
        .bind(&d.state)
        .bind(&d.done_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

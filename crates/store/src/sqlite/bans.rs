//! Clients banned at the edge, in SQLite.

use super::*;
use crate::BanRow;

#[async_trait]
impl BanStore for SqliteStore {
    async fn bans(&self, now: &str) -> Result<Vec<BanRow>> {
        {
            let _write = self.write.lock().await;
            sqlx::query("DELETE FROM bans WHERE expires_at <= ?")
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        let rows = sqlx::query(
            "SELECT net, host, scenario, reason, created_by, created_at, expires_at
             FROM bans ORDER BY created_at DESC, net, host",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let host: String = row.try_get("host")?;
                Ok(BanRow {
                    net: row.try_get("net")?,
                    host: (!host.is_empty()).then_some(host),
                    scenario: row.try_get("scenario")?,
                    reason: row.try_get("reason")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    async fn add_ban(&self, ban: &BanRow, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            sqlx::query(
                "INSERT INTO bans (net, host, scenario, reason, created_by, created_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (net, host) DO UPDATE SET scenario = excluded.scenario,
                     reason = excluded.reason, created_by = excluded.created_by,
                     created_at = excluded.created_at, expires_at = excluded.expires_at",
            )
            .bind(&ban.net)
            .bind(ban.host.as_deref().unwrap_or(""))
            .bind(&ban.scenario)
            .bind(&ban.reason)
            .bind(&ban.created_by)
            .bind(&ban.created_at)
            .bind(&ban.expires_at)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn remove_ban(
        &self,
        net: &str,
        host: Option<&str>,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            found(
                sqlx::query("DELETE FROM bans WHERE net = ? AND host = ?")
                    .bind(net)
                    .bind(host.unwrap_or(""))
                    .execute(&mut *tx)
                    .await?,
                || match host {
                    Some(host) => format!("{net} is not banned on {host}"),
                    None => format!("{net} is not banned everywhere"),
                },
            )?;
            Ok(())
        })
        .await
    }
}

//! Apps, their variables, settings and events in SQLite.

use super::*;

#[async_trait]
impl AppStore for SqliteStore {
    async fn apps(&self) -> Result<Vec<AppRow>> {
        self.app_rows(None).await
    }

    async fn app(&self, name: &AppName) -> Result<Option<AppRow>> {
        Ok(self.app_rows(Some(name)).await?.into_iter().next())
    }

    async fn create_app(&self, app: &NewApp, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            sqlx::query("INSERT INTO apps (id, name, created_at) VALUES (?, ?, ?)")
                .bind(app.id.as_str())
                .bind(app.name.as_str())
                .bind(&app.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    conflict_or(e, || {
                        format!("an app named {:?} already exists", app.name.as_str())
                    })
                })?;
            for (pos, domain) in app.domains.iter().enumerate() {
                sqlx::query("INSERT INTO app_domains (domain, app_id, pos) VALUES (?, ?, ?)")
                    .bind(domain.as_str())
                    .bind(app.id.as_str())
                    .bind(pos as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        conflict_or(e, || {
                            format!(
                                "the domain {:?} already belongs to another app",
                                domain.as_str()
                            )
                        })
                    })?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_app(&self, id: &AppId, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            found(
                sqlx::query("DELETE FROM apps WHERE id = ?")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?,
                || format!("there is no app with id {id}"),
            )?;
            Ok(())
        })
        .await
    }

    async fn env(&self, app: &AppId) -> Result<Vec<SealedVar>> {
        let rows = sqlx::query(
            "SELECT name, sealed, updated_at FROM env_vars WHERE app_id = ? ORDER BY name",
        )
        .bind(app.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                Ok(SealedVar {
                    name: EnvName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    sealed: row.try_get("sealed")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn set_env(
        &self,
        app: &AppId,
        vars: &[SealedVar],
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            for var in vars {
                sqlx::query(
                    "INSERT INTO env_vars (app_id, name, sealed, updated_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT (app_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                )
                .bind(app.as_str())
                .bind(var.name.as_str())
                .bind(&var.sealed)
                .bind(&var.updated_at)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
        .await
    }

    async fn unset_env(
        &self,
        app: &AppId,
        names: &[EnvName],
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            for name in names {
                let done = sqlx::query("DELETE FROM env_vars WHERE app_id = ? AND name = ?")
                    .bind(app.as_str())
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    // Dropping the transaction rolls back the names removed so far.
                    return Err(StoreError::NotFound(format!(
                        "environment variable {name} is not set"
                    )));
                }
            }
            Ok(())
        })
        .await
    }

    async fn set_settings(
        &self,
        app: &AppId,
        settings: &AppSettings,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        let text =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.audited(audit, async |tx| {
            found(
                sqlx::query("UPDATE apps SET settings = ? WHERE id = ?")
                    .bind(text)
                    .bind(app.as_str())
                    .execute(&mut *tx)
                    .await?,
                || format!("there is no app with id {app}"),
            )?;
            Ok(())
        })
        .await
    }

    async fn add_event(&self, app: &AppId, event: &AppEvent) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query("INSERT INTO app_events (app_id, time, kind, message) VALUES (?, ?, ?, ?)")
            .bind(app.as_str())
            .bind(&event.time)
            .bind(&event.kind)
            .bind(&event.message)
            .execute(&self.pool)
            .await?;
        trim_per_app(&self.pool, "app_events", app).await
    }

    async fn prune_events(&self, before: &str) -> Result<u64> {
        let _write = self.write.lock().await;
        let done = sqlx::query("DELETE FROM app_events WHERE time < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn events(&self, app: &AppId, limit: u32) -> Result<Vec<AppEvent>> {
        let rows = sqlx::query(
            "SELECT time, kind, message FROM
                (SELECT id, time, kind, message FROM app_events WHERE app_id = ? ORDER BY id DESC LIMIT ?)
             ORDER BY id",
        )
        .bind(app.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AppEvent {
                    time: row.try_get("time")?,
                    kind: row.try_get("kind")?,
                    message: row.try_get("message")?,
                })
            })
            .collect()
    }
}

impl SqliteStore {
    async fn app_rows(&self, filter: Option<&AppName>) -> Result<Vec<AppRow>> {
        let sql = "SELECT a.id, a.name, a.created_at, a.settings, a.live_release,
                      (SELECT COUNT(*) FROM env_vars e WHERE e.app_id = a.id) AS env_count,
                      (SELECT group_concat(domain, ' ') FROM
                          (SELECT domain FROM app_domains d WHERE d.app_id = a.id ORDER BY pos)) AS domains
                   FROM apps a WHERE (?1 IS NULL OR a.name = ?1) ORDER BY a.name";
        let rows = sqlx::query(sql)
            .bind(filter.map(AppName::as_str))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                let domains: Option<String> = row.try_get("domains")?;
                let env_count: i64 = row.try_get("env_count")?;
                let settings: String = row.try_get("settings")?;
                let live: Option<i64> = row.try_get("live_release")?;
                Ok(AppRow {
                    id: AppId::from_stored(row.try_get("id")?),
                    name: AppName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    domains: domains
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(|d| Domain::parse(d).map_err(|e| StoreError::Corrupt(e.to_string())))
                        .collect::<Result<_>>()?,
                    created_at: row.try_get("created_at")?,
                    env_count: u64::try_from(env_count).unwrap_or(0),
                    settings: parse_settings(&settings)?,
                    live_release: live.and_then(|n| u64::try_from(n).ok()),
                })
            })
            .collect()
    }
}

//! Users, invitations, MFA, grants and tokens in SQLite.

use super::*;

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn user_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn bootstrap(
        &self,
        owner: &NewUser,
        token: &NewToken,
        settings: &[(&str, &str)],
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(&mut *tx)
                .await?;
            if users > 0 {
                return Err(StoreError::Conflict(
                    "the installation is already set up".into(),
                ));
            }
            sqlx::query("INSERT INTO users (id, email, role, created_at) VALUES (?, ?, ?, ?)")
                .bind(owner.id.as_str())
                .bind(owner.email.as_deref())
                .bind(owner.role.as_str())
                .bind(&owner.created_at)
                .execute(&mut *tx)
                .await?;
            insert_token(&mut *tx, token).await?;
            for (key, value) in settings {
                sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?)")
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>> {
        Ok(self.credentials(id).await?.map(|c| c.user))
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn credentials_by_email(&self, email: &str) -> Result<Option<Credentials>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = ? COLLATE NOCASE"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(credentials_from_row).transpose()
    }

    async fn credentials(&self, id: &UserId) -> Result<Option<Credentials>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(credentials_from_row).transpose()
    }

    async fn invite(
        &self,
        user: &NewUser,
        invitation: &NewInvitation,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            let taken: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM users WHERE email = ? COLLATE NOCASE")
                    .bind(&user.email)
                    .fetch_optional(&mut *tx)
                    .await?;
            if taken.is_some() {
                return Err(StoreError::Conflict("a user with this email exists".into()));
            }
            sqlx::query(
                "INSERT INTO users (id, email, role, created_at, status) VALUES (?, ?, ?, ?, 'invited')",
            )
            .bind(user.id.as_str())
            .bind(&user.email)
            .bind(user.role.as_str())
            .bind(&user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, || "a user with this email exists".into()))?;
            sqlx::query(
                "INSERT INTO invitations (id, user_id, hash, created_at, expires_at)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&invitation.id)
            .bind(user.id.as_str())
            .bind(&invitation.hash.0)
            .bind(&invitation.created_at)
            .bind(&invitation.expires_at)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn invitation_by_hash(&self, hash: &TokenHash) -> Result<Option<InvitationRow>> {
        let row = sqlx::query(
            "SELECT id, user_id, created_at, expires_at, used_at FROM invitations WHERE hash = ?",
        )
        .bind(&hash.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn invitations(&self, user: &UserId) -> Result<Vec<InvitationRow>> {
        let rows = sqlx::query(
            "SELECT id, user_id, created_at, expires_at, used_at FROM invitations
             WHERE user_id = ? ORDER BY created_at",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    async fn accept_invitation(
        &self,
        invitation: &str,
        password_hash: &str,
        at: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            let user: Option<String> = sqlx::query_scalar(
                "UPDATE invitations SET used_at = ? WHERE id = ? AND used_at IS NULL RETURNING user_id",
            )
            .bind(at)
            .bind(invitation)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(user) = user else {
                return Err(StoreError::Conflict(
                    "the invitation was used already".into(),
                ));
            };
            let done = sqlx::query(
                "UPDATE users SET password_hash = ?, status = 'active'
                 WHERE id = ? AND status = 'invited'",
            )
            .bind(password_hash)
            .bind(&user)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(
                    "the account is not awaiting its invitation".into(),
                ));
            }
            Ok(())
        })
        .await
    }

    async fn set_role(&self, user: &UserId, role: Role, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            user_exists(&mut *tx, user).await?;
            if role != Role::Owner {
                keep_an_owner(&mut *tx, user, "change role").await?;
            }
            sqlx::query("UPDATE users SET role = ? WHERE id = ?")
                .bind(role.as_str())
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
        .await
    }

    async fn remove_user(&self, user: &UserId, at: &str, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            user_exists(&mut *tx, user).await?;
            keep_an_owner(&mut *tx, user, "be removed").await?;
            end_account(&mut *tx, user, at).await?;
            Ok(())
        })
        .await
    }

    async fn erase_user(&self, user: &UserId, at: &str, audit: AuditRecord) -> Result<AuditEntry> {
        let entry = self
            .audited(audit, async |tx| {
                user_exists(&mut *tx, user).await?;
                keep_an_owner(&mut *tx, user, "be erased").await?;
                end_account(&mut *tx, user, at).await?;
                let email: Option<String> =
                    sqlx::query_scalar("SELECT email FROM users WHERE id = ?")
                        .bind(user.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                // Records that quote the email as text (access reviews'
                // snapshots, self-audit details, incident timelines) keep
                // their shape without it.
                if let Some(email) = email.filter(|e| !e.is_empty()) {
                    for (table, column) in [
                        ("access_reviews", "snapshot"),
                        ("doctor_runs", "checks"),
                        ("incident_events", "text"),
                    ] {
                        sqlx::query(&format!(
                            "UPDATE {table} SET {column} = replace({column}, ?1, '(erased)')
                             WHERE instr({column}, ?1) > 0"
                        ))
                        .bind(&email)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                sqlx::query(
                    "UPDATE users SET email = NULL, password_hash = NULL, mfa_seed = NULL,
                            mfa_enabled = 0, erased_at = ? WHERE id = ?",
                )
                .bind(at)
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
                for table in ["recovery_codes", "invitations", "app_grants"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE user_id = ?"))
                        .bind(user.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                // Token names are free text the user chose; they go too.
                sqlx::query("UPDATE api_tokens SET name = '(erased)' WHERE user_id = ?")
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            })
            .await?;
        // Old page images in the write-ahead log still hold the data; move
        // everything into the (securely deleting) database file and empty
        // the log.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(entry)
    }

    async fn set_mfa_seed(
        &self,
        user: &UserId,
        sealed: &[u8],
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            let done =
                sqlx::query("UPDATE users SET mfa_seed = ? WHERE id = ? AND mfa_enabled = 0")
                    .bind(sealed)
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("MFA is already enrolled".into()));
            }
            Ok(())
        })
        .await
    }

    async fn enable_mfa(
        &self,
        user: &UserId,
        step: u64,
        recovery: &[String],
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            let done = sqlx::query(
                "UPDATE users SET mfa_enabled = 1, mfa_last_step = ?
                 WHERE id = ? AND mfa_enabled = 0 AND mfa_seed IS NOT NULL",
            )
            .bind(step as i64)
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(
                    "there is no MFA enrollment to confirm".into(),
                ));
            }
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
            for hash in recovery {
                sqlx::query("INSERT INTO recovery_codes (user_id, hash) VALUES (?, ?)")
                    .bind(user.as_str())
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    async fn use_totp_step(&self, user: &UserId, step: u64) -> Result<bool> {
        let _write = self.write.lock().await;
        let done =
            sqlx::query("UPDATE users SET mfa_last_step = ? WHERE id = ? AND mfa_last_step < ?")
                .bind(step as i64)
                .bind(user.as_str())
                .bind(step as i64)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_recovery_code(&self, user: &UserId, hash: &str, at: &str) -> Result<bool> {
        let _write = self.write.lock().await;
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = ?
             WHERE user_id = ? AND hash = ? AND used_at IS NULL",
        )
        .bind(at)
        .bind(user.as_str())
        .bind(hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unused_recovery_codes(&self, user: &UserId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        )
        .bind(user.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn set_grant(
        &self,
        user: &UserId,
        app: &AppId,
        granted: bool,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            user_exists(&mut *tx, user).await?;
            let sql = if granted {
                "INSERT OR IGNORE INTO app_grants (user_id, app_id) VALUES (?, ?)"
            } else {
                "DELETE FROM app_grants WHERE user_id = ? AND app_id = ?"
            };
            sqlx::query(sql)
                .bind(user.as_str())
                .bind(app.as_str())
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
        .await
    }

    async fn grants(&self, user: &UserId) -> Result<Vec<AppName>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT a.name FROM app_grants g JOIN apps a ON a.id = g.app_id
             WHERE g.user_id = ? ORDER BY a.name",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        names
            .iter()
            .map(|n| AppName::parse(n).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRow>> {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.hash = ?"))
            .bind(&hash.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn token(&self, id: &TokenId) -> Result<Option<TokenRow>> {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(&format!(
            "{TOKEN_SELECT} WHERE t.kind = 'api' ORDER BY t.created_at, t.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn user_tokens(&self, user: &UserId) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(&format!(
            "{TOKEN_SELECT} WHERE t.user_id = ? ORDER BY t.created_at, t.id"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn create_token(&self, token: &NewToken, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            insert_token(&mut *tx, token).await?;
            Ok(())
        })
        .await
    }

    async fn touch_token(&self, id: &TokenId, at: &str) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(at)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_token(&self, id: &TokenId, at: &str, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "there is no active token {id}"
                )));
            }
            Ok(())
        })
        .await
    }
}

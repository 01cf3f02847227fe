//! The SQLite implementation of [`Store`], used on a single machine.
//!
//! Writes are serialised by an in-process lock: SQLite allows one writer at
//! a time anyway, and taking the lock before `BEGIN` means the read of the
//! last audit hash and the append that follows can never interleave with
//! another writer's.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rampart_core::audit::{self, AuditEntry, AuditRecord, ChainHash, Outcome};
use rampart_core::deploy::{AppSettings, ReleaseConfig, ReleaseStatus};
use rampart_core::token::TokenHash;
use rampart_core::{AppId, AppName, Domain, EnvName, Role, TokenId, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::Mutex;

use crate::{
    AppEvent, AppRow, BackupResult, Credentials, DatabaseRow, InvitationRow, MediaBucketRow,
    NewApp, NewInvitation, NewRelease, NewToken, NewUser, ReleaseRow, Result, ScheduleRow,
    SealedVar, Store, StoreError, TokenKind, TokenRow, User, UserStatus,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    write: Mutex<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending
    /// migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The audit log is the record of who did what; keep every
            // committed transaction across a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted and overwritten content is zeroed, so erased personal
            // data does not linger in free pages.
            .pragma("secure_delete", "on")
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            write: Mutex::new(()),
        })
    }
}

fn conflict_or(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(err),
    }
}

fn decode_hash(text: &str) -> ChainHash {
    // An undecodable hash cannot match any recomputed one; verification then
    // reports the entry instead of failing to read it.
    let mut out = [0xff; 32];
    if hex::decode_to_slice(text, &mut out).is_err() {
        return [0xff; 32];
    }
    out
}

fn audit_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AuditEntry> {
    let seq: i64 = row.try_get("seq")?;
    let seq = u64::try_from(seq).map_err(|_| StoreError::CorruptAuditEntry {
        seq: 0,
        reason: format!("negative sequence number {seq}"),
    })?;
    let outcome: String = row.try_get("outcome")?;
    let outcome = Outcome::parse(&outcome).ok_or_else(|| StoreError::CorruptAuditEntry {
        seq,
        reason: format!("outcome {outcome:?} is not ok, denied or failed"),
    })?;
    let prev: String = row.try_get("prev_hash")?;
    let hash: String = row.try_get("hash")?;
    Ok(AuditEntry {
        seq,
        record: AuditRecord {
            time: row.try_get("time")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            target: row.try_get("target")?,
            outcome,
            request_id: row.try_get("request_id")?,
        },
        prev_hash: decode_hash(&prev),
        hash: decode_hash(&hash),
    })
}

/// Appends `record` after the current last entry, inside the caller's
/// transaction.
async fn append(conn: &mut SqliteConnection, record: AuditRecord) -> Result<AuditEntry> {
    let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let prev = match last {
        Some(row) => {
            let seq: i64 = row.try_get("seq")?;
            let hash: String = row.try_get("hash")?;
            Some((u64::try_from(seq).unwrap_or(0), decode_hash(&hash)))
        }
        None => None,
    };
    let entry = audit::append(prev, record);
    sqlx::query(
        "INSERT INTO audit_log (seq, time, actor, action, target, outcome, request_id, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.seq as i64)
    .bind(&entry.record.time)
    .bind(&entry.record.actor)
    .bind(&entry.record.action)
    .bind(&entry.record.target)
    .bind(entry.record.outcome.as_str())
    .bind(&entry.record.request_id)
    .bind(hex::encode(entry.prev_hash))
    .bind(hex::encode(entry.hash))
    .execute(&mut *conn)
    .await?;
    Ok(entry)
}

fn parse_role(text: &str) -> Result<Role> {
    Role::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn token_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<TokenRow> {
    let user_role = parse_role(row.try_get("user_role")?)?;
    let token_role: Option<String> = row.try_get("token_role")?;
    let role = match token_role {
        Some(r) => user_role.at_most(parse_role(&r)?),
        None => user_role,
    };
    let kind: String = row.try_get("kind")?;
    let app_id: Option<String> = row.try_get("app_id")?;
    let app_name: Option<String> = row.try_get("app_name")?;
    let app = match (app_id, app_name) {
        (Some(id), Some(name)) => Some((
            AppId::from_stored(id),
            AppName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )),
        _ => None,
    };
    let status: String = row.try_get("user_status")?;
    let mfa: i64 = row.try_get("user_mfa")?;
    Ok(TokenRow {
        id: TokenId::from_stored(row.try_get("id")?),
        user_id: UserId::from_stored(row.try_get("user_id")?),
        role,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        kind: match kind.as_str() {
            "session" => TokenKind::Session,
            _ => TokenKind::Api,
        },
        app,
        expires_at: row.try_get("expires_at")?,
        user_status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("user status {status:?}")))?,
        user_mfa: mfa != 0,
    })
}

const TOKEN_SELECT: &str = "SELECT t.id, t.user_id, u.role AS user_role, t.role AS token_role,
        t.name, t.created_at, t.revoked_at, t.kind, t.app_id, a.name AS app_name, t.expires_at,
        u.status AS user_status, u.mfa_enabled AS user_mfa
     FROM api_tokens t JOIN users u ON u.id = t.user_id LEFT JOIN apps a ON a.id = t.app_id";

async fn insert_token(conn: &mut SqliteConnection, token: &NewToken) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, name, hash, created_at, kind, role, app_id, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(token.id.as_str())
    .bind(token.user_id.as_str())
    .bind(&token.name)
    .bind(&token.hash.0)
    .bind(&token.created_at)
    .bind(token.kind.as_str())
    .bind(token.role.map(Role::as_str))
    .bind(token.app.as_ref().map(AppId::as_str))
    .bind(&token.expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| conflict_or(e, || "a token with this value already exists".into()))?;
    Ok(())
}

const USER_COLUMNS: &str = "id, email, role, created_at, status, mfa_enabled, erased_at, \
     password_hash, mfa_seed, mfa_last_step";

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User> {
    let status: String = row.try_get("status")?;
    let mfa: i64 = row.try_get("mfa_enabled")?;
    Ok(User {
        id: UserId::from_stored(row.try_get("id")?),
        email: row.try_get("email")?,
        role: parse_role(row.try_get("role")?)?,
        created_at: row.try_get("created_at")?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("user status {status:?}")))?,
        mfa_enabled: mfa != 0,
        erased_at: row.try_get("erased_at")?,
    })
}

fn credentials_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Credentials> {
    let step: i64 = row.try_get("mfa_last_step")?;
    Ok(Credentials {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
        mfa_seed: row.try_get("mfa_seed")?,
        mfa_last_step: u64::try_from(step).unwrap_or(0),
    })
}

fn invitation_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<InvitationRow> {
    Ok(InvitationRow {
        id: row.try_get("id")?,
        user_id: UserId::from_stored(row.try_get("user_id")?),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
    })
}

/// Refuses a change that would leave no active owner.
async fn keep_an_owner(conn: &mut SqliteConnection, user: &UserId, what: &str) -> Result<()> {
    let owners: Vec<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE role = 'owner' AND status = 'active'")
            .fetch_all(&mut *conn)
            .await?;
    if owners.len() == 1 && owners[0] == user.as_str() {
        return Err(StoreError::Conflict(format!(
            "the last owner cannot {what}; make another user owner first"
        )));
    }
    Ok(())
}

async fn user_exists(conn: &mut SqliteConnection, user: &UserId) -> Result<()> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = ?")
        .bind(user.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    found
        .map(drop)
        .ok_or_else(|| StoreError::NotFound(format!("there is no user {user}")))
}

/// Marks an account removed and revokes every token it has.
async fn end_account(conn: &mut SqliteConnection, user: &UserId, at: &str) -> Result<()> {
    sqlx::query("UPDATE users SET status = 'removed' WHERE id = ?")
        .bind(user.as_str())
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
        .bind(at)
        .bind(user.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn parse_settings(text: &str) -> Result<AppSettings> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("app settings: {e}")))
}

fn release_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ReleaseRow> {
    let number: i64 = row.try_get("number")?;
    let config: String = row.try_get("config")?;
    let status: String = row.try_get("status")?;
    Ok(ReleaseRow {
        app_id: AppId::from_stored(row.try_get("app_id")?),
        number: u64::try_from(number).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        image: row.try_get("image")?,
        image_id: row.try_get("image_id")?,
        config: serde_json::from_str::<ReleaseConfig>(&config)
            .map_err(|e| StoreError::Corrupt(format!("release config: {e}")))?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        status: ReleaseStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("release status {status:?}")))?,
        reason: row.try_get("reason")?,
        finished_at: row.try_get("finished_at")?,
    })
}

const RELEASE_COLUMNS: &str =
    "app_id, number, image, image_id, config, created_by, created_at, status, reason, finished_at";

impl SqliteStore {
    /// Runs `change` and appends `audit` in one transaction, under the
    /// write lock: the store's one invariant, no change without its record.
    async fn audited(
        &self,
        audit: AuditRecord,
        change: impl AsyncFnOnce(&mut SqliteConnection) -> Result<()>,
    ) -> Result<AuditEntry> {
        Ok(self.audited_with(audit, change).await?.1)
    }

    /// [`SqliteStore::audited`] for a change that yields a value.
    async fn audited_with<T>(
        &self,
        audit: AuditRecord,
        change: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T>,
    ) -> Result<(T, AuditEntry)> {
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let value = change(&mut tx).await?;
        let entry = append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok((value, entry))
    }

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

#[async_trait]
impl Store for SqliteStore {
    async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

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
            let done = sqlx::query("DELETE FROM apps WHERE id = ?")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "there is no app with id {id}"
                )));
            }
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
            let done = sqlx::query("UPDATE apps SET settings = ? WHERE id = ?")
                .bind(text)
                .bind(app.as_str())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "there is no app with id {app}"
                )));
            }
            Ok(())
        })
        .await
    }

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

    async fn add_event(&self, app: &AppId, event: &AppEvent) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query("INSERT INTO app_events (app_id, time, kind, message) VALUES (?, ?, ?, ?)")
            .bind(app.as_str())
            .bind(&event.time)
            .bind(&event.kind)
            .bind(&event.message)
            .execute(&self.pool)
            .await?;
        Ok(())
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

    async fn append_audit(&self, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |_| Ok(())).await
    }

    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_tail(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_entry(&self, seq: u64) -> Result<Option<AuditEntry>> {
        let row = sqlx::query("SELECT * FROM audit_log WHERE seq = ?")
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(audit_from_row).transpose()
    }

    async fn database(&self, app: &AppId) -> Result<Option<DatabaseRow>> {
        let row = sqlx::query(
            "SELECT app_id, name, password, created_at FROM app_databases WHERE app_id = ?",
        )
        .bind(app.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(database_from_row).transpose()
    }

    async fn databases(&self) -> Result<Vec<DatabaseRow>> {
        let rows = sqlx::query(
            "SELECT app_id, name, password, created_at FROM app_databases ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(database_from_row).collect()
    }

    async fn put_database(&self, row: &DatabaseRow, audit: AuditRecord) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM apps WHERE id = ?")
                .bind(row.app_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!(
                    "there is no app with id {}",
                    row.app_id
                )));
            }
            sqlx::query(
                "INSERT INTO app_databases (app_id, name, password, created_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (app_id) DO UPDATE SET password = excluded.password",
            )
            .bind(row.app_id.as_str())
            .bind(&row.name)
            .bind(&row.password)
            .bind(&row.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::Conflict(format!("database {} belongs to another app", row.name))
                }
                other => other.into(),
            })?;
            Ok(())
        })
        .await
    }

    async fn media_bucket(&self, app: &AppId) -> Result<Option<MediaBucketRow>> {
        let row = sqlx::query(
            "SELECT app_id, bucket, iam_user, access_key_id, secret, created_at FROM app_media WHERE app_id = ?",
        )
        .bind(app.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(MediaBucketRow {
                app_id: app_id(row.try_get("app_id")?)?,
                bucket: row.try_get("bucket")?,
                iam_user: row.try_get("iam_user")?,
                access_key_id: row.try_get("access_key_id")?,
                secret: row.try_get("secret")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn put_media_bucket(&self, r: &MediaBucketRow) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO app_media (app_id, bucket, iam_user, access_key_id, secret, created_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (app_id) DO UPDATE SET access_key_id = excluded.access_key_id,
                secret = excluded.secret",
        )
        .bind(r.app_id.as_str())
        .bind(&r.bucket)
        .bind(&r.iam_user)
        .bind(&r.access_key_id)
        .bind(&r.secret)
        .bind(&r.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn backup_schedule(&self, app: &AppId) -> Result<Option<ScheduleRow>> {
        let row = sqlx::query(&format!("{SCHEDULE_SELECT} WHERE app_id = ?"))
            .bind(app.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    async fn backup_schedules(&self) -> Result<Vec<ScheduleRow>> {
        let rows = sqlx::query(&format!("{SCHEDULE_SELECT} ORDER BY app_id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn set_backup_schedule(
        &self,
        app: &AppId,
        schedule: Option<&ScheduleRow>,
        audit: AuditRecord,
    ) -> Result<AuditEntry> {
        self.audited(audit, async |tx| {
            match schedule {
                None => {
                    sqlx::query("DELETE FROM backup_schedules WHERE app_id = ?")
                        .bind(app.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                Some(s) => {
                    sqlx::query(
                        "INSERT INTO backup_schedules (app_id, every_secs, keep_last, keep_daily,
                            keep_weekly, keep_monthly, verify_every_secs, next_backup_at, next_verify_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (app_id) DO UPDATE SET every_secs = excluded.every_secs,
                            keep_last = excluded.keep_last, keep_daily = excluded.keep_daily,
                            keep_weekly = excluded.keep_weekly, keep_monthly = excluded.keep_monthly,
                            verify_every_secs = excluded.verify_every_secs,
                            next_backup_at = excluded.next_backup_at,
                            next_verify_at = excluded.next_verify_at",
                    )
                    .bind(app.as_str())
                    .bind(s.every_secs as i64)
                    .bind(i64::from(s.keep_last))
                    .bind(i64::from(s.keep_daily))
                    .bind(i64::from(s.keep_weekly))
                    .bind(i64::from(s.keep_monthly))
                    .bind(s.verify_every_secs.map(|v| v as i64))
                    .bind(&s.next_backup_at)
                    .bind(&s.next_verify_at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn advance_backup_schedule(
        &self,
        app: &AppId,
        next_backup_at: &str,
        next_verify_at: Option<&str>,
    ) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "UPDATE backup_schedules SET next_backup_at = ?, next_verify_at = ? WHERE app_id = ?",
        )
        .bind(next_backup_at)
        .bind(next_verify_at)
        .bind(app.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_backup_result(&self, r: &BackupResult) -> Result<()> {
        let _write = self.write.lock().await;
        sqlx::query(
            "INSERT INTO backup_results (app, kind, snapshot, started_at, finished_at, bytes, outcome, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.app)
        .bind(&r.kind)
        .bind(&r.snapshot)
        .bind(&r.started_at)
        .bind(&r.finished_at)
        .bind(r.bytes.min(i64::MAX as u64) as i64)
        .bind(if r.ok { "ok" } else { "failed" })
        .bind(&r.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn backup_results(&self, app: &str, limit: u32) -> Result<Vec<BackupResult>> {
        let rows = sqlx::query(
            "SELECT app, kind, snapshot, started_at, finished_at, bytes, outcome, detail FROM
                (SELECT * FROM backup_results WHERE app = ? ORDER BY id DESC LIMIT ?)
             ORDER BY id",
        )
        .bind(app)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let outcome: String = row.try_get("outcome")?;
                Ok(BackupResult {
                    app: row.try_get("app")?,
                    kind: row.try_get("kind")?,
                    snapshot: row.try_get("snapshot")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    bytes: row.try_get::<i64, _>("bytes")?.max(0) as u64,
                    ok: outcome == "ok",
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn close(&self) {
        // Waits for open connections; the last one to close checkpoints the
        // write-ahead log into the database file.
        self.pool.close().await;
    }
}

const SCHEDULE_SELECT: &str = "SELECT app_id, every_secs, keep_last, keep_daily, keep_weekly,
    keep_monthly, verify_every_secs, next_backup_at, next_verify_at FROM backup_schedules";

fn app_id(text: String) -> Result<AppId> {
    Ok(AppId::from_stored(text))
}

fn database_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<DatabaseRow> {
    Ok(DatabaseRow {
        app_id: app_id(row.try_get("app_id")?)?,
        name: row.try_get("name")?,
        password: row.try_get("password")?,
        created_at: row.try_get("created_at")?,
    })
}

fn schedule_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ScheduleRow> {
    let count = |name: &str| -> Result<u32> {
        Ok(u32::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
    };
    Ok(ScheduleRow {
        app_id: app_id(row.try_get("app_id")?)?,
        every_secs: row.try_get::<i64, _>("every_secs")?.max(1) as u64,
        keep_last: count("keep_last")?,
        keep_daily: count("keep_daily")?,
        keep_weekly: count("keep_weekly")?,
        keep_monthly: count("keep_monthly")?,
        verify_every_secs: row
            .try_get::<Option<i64>, _>("verify_every_secs")?
            .map(|v| v.max(1) as u64),
        next_backup_at: row.try_get("next_backup_at")?,
        next_verify_at: row.try_get("next_verify_at")?,
    })
}

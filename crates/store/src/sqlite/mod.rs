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
    AlertStore, AppStore, AuditStore, BanStore, CronStore, DataStore, IdentityStore, IncidentStore,
    ReleaseStore, VulnStore,
};
use crate::{
    AppEvent, AppRow, BackupResult, Credentials, CronJobRow, CronRunRow, DatabaseRow,
    InvitationRow, MediaBucketRow, NewApp, NewInvitation, NewRelease, NewToken, NewUser,
    ReleaseRow, Result, ScheduleRow, SealedVar, Store, StoreError, TokenKind, TokenRow, User,
    UserStatus,
};

mod alerts;
mod apps;
mod audit_chain;
mod bans;
mod cron;
mod data;
mod identity;
mod incidents;
mod proof;
mod releases;
mod vulns;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a connection waits for another's write before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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
            .busy_timeout(BUSY_TIMEOUT);
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
        last_used_at: row.try_get("last_used_at")?,
    })
}

const TOKEN_SELECT: &str = "SELECT t.id, t.user_id, u.role AS user_role, t.role AS token_role,
        t.name, t.created_at, t.revoked_at, t.kind, t.app_id, a.name AS app_name, t.expires_at,
        t.last_used_at, u.status AS user_status, u.mfa_enabled AS user_mfa
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

    async fn close(&self) {
        // Waits for open connections; the last one to close checkpoints the
        // write-ahead log into the database file.
        self.pool.close().await;
    }
}

const SCHEDULE_SELECT: &str = "SELECT app_id, every_secs, keep_last, keep_daily, keep_weekly,
    keep_monthly, verify_every_secs, next_backup_at, next_verify_at FROM backup_schedules";

/// The newest app events and cron runs kept per app; older ones go as new
/// ones come, so a chatty app cannot grow the database without bound.
const KEPT_PER_APP: i64 = 1_000;

/// Deletes `app`'s rows of `table` beyond the newest [`KEPT_PER_APP`]
/// (`table` is one of this module's names, never input).
async fn trim_per_app(pool: &SqlitePool, table: &'static str, app: &AppId) -> Result<()> {
    sqlx::query(&format!(
        "DELETE FROM {table} WHERE app_id = ?1 AND id <= (
             SELECT id FROM {table} WHERE app_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)"
    ))
    .bind(app.as_str())
    .bind(KEPT_PER_APP)
    .execute(pool)
    .await?;
    Ok(())
}

/// Fails with [`StoreError::NotFound`] when a statement changed no row.
fn found(done: sqlx::sqlite::SqliteQueryResult, missing: impl FnOnce() -> String) -> Result<()> {
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(missing()));
    }
    Ok(())
}

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

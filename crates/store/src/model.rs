//! The rows a [`crate::Store`] reads and writes.

use rampart_core::deploy::{AppSettings, ReleaseConfig, ReleaseStatus};
use rampart_core::token::TokenHash;
use rampart_core::{AppId, AppName, Domain, EnvName, Role, TokenId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: UserId,
    pub email: Option<String>,
    pub role: Role,
    pub created_at: String,
}

/// Where a user account is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// Created; the user has not set a password from the invitation yet.
    Invited,
    Active,
    /// May no longer sign in; tokens are revoked.
    Removed,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Invited => "invited",
            UserStatus::Active => "active",
            UserStatus::Removed => "removed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "invited" => UserStatus::Invited,
            "active" => UserStatus::Active,
            "removed" => UserStatus::Removed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// `None` once the user's personal data has been erased.
    pub email: Option<String>,
    pub role: Role,
    pub created_at: String,
    pub status: UserStatus,
    pub mfa_enabled: bool,
    pub erased_at: Option<String>,
}

/// What signing in checks: never listed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: User,
    /// Argon2id PHC string.
    pub password_hash: Option<String>,
    /// Sealed TOTP seed (enrolled or pending).
    pub mfa_seed: Option<Vec<u8>>,
    pub mfa_last_step: u64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// How a token came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Made with `tokens create`, for scripts and CI.
    Api,
    /// Made by a login; expires.
    Session,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub name: String,
    pub hash: TokenHash,
    pub created_at: String,
    pub kind: TokenKind,
    /// A role below the user's; `None` acts with the user's role.
    pub role: Option<Role>,
    /// The only app the token may act on.
    pub app: Option<AppId>,
    pub expires_at: Option<String>,
}

impl NewToken {
    /// An API token acting with its user's role on everything, never expiring.
    pub fn unlimited(
        id: TokenId,
        user_id: UserId,
        name: String,
        hash: TokenHash,
        at: String,
    ) -> Self {
        Self {
            id,
            user_id,
            name,
            hash,
            created_at: at,
            kind: TokenKind::Api,
            role: None,
            app: None,
            expires_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: TokenId,
    pub user_id: UserId,
    /// The role the token acts with: its user's, or lower if the token is
    /// limited.
    pub role: Role,
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub kind: TokenKind,
    /// The app the token is limited to.
    pub app: Option<(AppId, AppName)>,
    pub expires_at: Option<String>,
    pub user_status: UserStatus,
    pub user_mfa: bool,
    /// When the token last authenticated a request, to the hour.
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation {
    pub id: String,
    pub hash: TokenHash,
    pub created_at: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRow {
    pub id: String,
    pub user_id: UserId,
    pub created_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApp {
    pub id: AppId,
    pub name: AppName,
    pub domains: Vec<Domain>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    pub id: AppId,
    pub name: AppName,
    pub domains: Vec<Domain>,
    pub created_at: String,
    pub env_count: u64,
    pub settings: AppSettings,
    /// The release that should serve the app.
    pub live_release: Option<u64>,
}

/// An environment variable whose value is sealed by the platform.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedVar {
    pub name: EnvName,
    /// Nonce followed by ciphertext and tag; opaque to the store.
    pub sealed: Vec<u8>,
    pub updated_at: String,
}

impl std::fmt::Debug for SealedVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedVar")
            .field("name", &self.name)
            .field("sealed", &format_args!("{} bytes", self.sealed.len()))
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A release to record; the store gives it the next number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelease {
    pub image: String,
    pub image_id: String,
    pub config: ReleaseConfig,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRow {
    pub app_id: AppId,
    pub number: u64,
    pub image: String,
    pub image_id: String,
    pub config: ReleaseConfig,
    pub created_by: String,
    pub created_at: String,
    pub status: ReleaseStatus,
    pub reason: Option<String>,
    pub finished_at: Option<String>,
}

/// Something that happened to an app's replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEvent {
    pub time: String,
    pub kind: String,
    pub message: String,
}

/// An app's database: the database and its role share `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRow {
    pub app_id: AppId,
    pub name: String,
    /// Sealed with the master key.
    pub password: Vec<u8>,
    pub created_at: String,
}

/// When an app is backed up and test-restored, and what is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    pub app_id: AppId,
    pub every_secs: u64,
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub verify_every_secs: Option<u64>,
    pub next_backup_at: String,
    pub next_verify_at: Option<String>,
}

/// A command an app runs on a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronJobRow {
    /// `cron_…`.
    pub id: String,
    pub app_id: AppId,
    /// As the user wrote it (see `rampart_core::schedule`).
    pub schedule: String,
    pub command: Vec<String>,
    pub timeout_secs: u64,
    pub next_run_at: String,
    pub created_by: String,
    pub created_at: String,
    /// Declared in the manifest of the live release (rather than added by
    /// hand).
    pub from_manifest: bool,
}

/// An alert: one per condition while it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// `alert_…`.
    pub id: String,
    /// The condition: the rule and what it is about (`crash_loop:shop`).
    pub key: String,
    pub rule: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub app: Option<String>,
    pub summary: String,
    pub count: u64,
    pub first_at: String,
    pub last_at: String,
    pub notified_at: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub resolved_at: Option<String>,
    pub acked_by: Option<String>,
    pub acked_at: Option<String>,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    /// `ch_…`.
    pub id: String,
    /// `webhook`.
    pub kind: String,
    /// The webhook's URL.
    pub target: String,
    /// Sealed under the master key.
    pub secret: Vec<u8>,
    pub created_by: String,
    pub created_at: String,
}

/// One message to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// `dlv_…`: what a receiver sees in `Rampart-Delivery`.
    pub id: String,
    pub channel_id: String,
    pub alert_id: String,
    pub body: String,
    pub created_at: String,
    pub attempts: u32,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub done_at: Option<String>,
}

/// A client banned at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRow {
    /// An address or network in CIDR form (`203.0.113.9/32`).
    pub net: String,
    /// The one host it applies to; every host and the API when `None`.
    pub host: Option<String>,
    /// The detector's scenario, or `manual`.
    pub scenario: String,
    pub reason: String,
    /// A user id, or `watch` for the detectors.
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
}

/// What one run of a scheduled job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronRunRow {
    pub job_id: String,
    pub app_id: AppId,
    pub started_at: String,
    pub finished_at: String,
    /// `ok`, `failed`, `timed_out` or `skipped`.
    pub outcome: String,
    pub status: Option<i64>,
    pub duration_ms: u64,
    /// Why it was skipped or failed, and its last lines.
    pub detail: String,
}

/// What one backup, retention run, test restore or restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupResult {
    pub app: String,
    /// `backup`, `retention`, `verify` or `restore`.
    pub kind: String,
    pub snapshot: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub bytes: u64,
    pub ok: bool,
    pub detail: String,
}

/// An app's media bucket and its own key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaBucketRow {
    pub app_id: AppId,
    pub bucket: String,
    pub iam_user: String,
    pub access_key_id: String,
    /// Sealed with the master key.
    pub secret: Vec<u8>,
    pub created_at: String,
}

/// One import of advisories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryImportRow {
    pub imported_at: String,
    pub imported_by: String,
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub refused: u64,
    /// The latest `modified` time among the records it held.
    pub newest_record: Option<String>,
}

/// A finding accepted for an app until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedRiskRow {
    pub app_id: AppId,
    /// The advisory's id or one of its aliases, as the admin named it.
    pub advisory: String,
    pub reason: String,
    pub expires_at: String,
    pub created_by: String,
    pub created_at: String,
}

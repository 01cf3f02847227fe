//! Persistence for the control plane.
//!
//! [`Store`] is the whole contract between the platform and its database,
//! made of one trait per domain ([`IdentityStore`], [`AppStore`],
//! [`ReleaseStore`], [`DataStore`], [`CronStore`], [`BanStore`], [`AlertStore`], [`VulnStore`], [`IncidentStore`], [`ProofStore`], [`AuditStore`]) that a backend
//! implements one file each (see `sqlite/`). It is deliberately narrow and
//! speaks in domain types, so that the SQLite implementation here and a
//! PostgreSQL one for clusters can share every test. Two rules every
//! implementation keeps:
//!
//! - A mutation and the audit entry that records it commit in one
//!   transaction: either both are stored or neither is.
//! - Audit entries are appended one at a time, each linked to the last
//!   (see [`rampart_core::audit`]); nothing updates or deletes them.

mod incidents;
mod model;
mod proof;
mod sqlite;

use async_trait::async_trait;
use rampart_core::audit::{AuditEntry, AuditRecord};
use rampart_core::deploy::{AppSettings, ReleaseStatus};
use rampart_core::token::TokenHash;
use rampart_core::{AppId, AppName, EnvName, Role, TokenId, UserId};

pub use incidents::{FollowUpRow, IncidentChange, IncidentEventRow, IncidentRow, IncidentStore};
pub use model::{
    AcceptedRiskRow, AdvisoryImportRow, AlertRow, AppEvent, AppRow, BackupResult, BanRow,
    ChannelRow, Credentials, CronJobRow, CronRunRow, DatabaseRow, DeliveryRow, InvitationRow,
    MediaBucketRow, NewApp, NewInvitation, NewRelease, NewToken, NewUser, ReleaseRow, ScheduleRow,
    SealedVar, TokenKind, TokenRow, User, UserStatus,
};
pub use proof::{AccessReviewRow, DoctorRunRow, ProofStore, ReportRow, ReportStore};
pub use sqlite::SqliteStore;

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name or domain is taken.
    #[error("{0}")]
    Conflict(String),
    /// The thing to change does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database holds a value this version cannot read.
    #[error("the database holds an unreadable value: {0}")]
    Corrupt(String),
    /// An audit row cannot even be decoded; verification reports it as the
    /// first bad entry.
    #[error("audit entry {seq} is unreadable: {reason}")]
    CorruptAuditEntry { seq: u64, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything the control plane keeps.
#[async_trait]
pub trait Store:
    IdentityStore
    + AppStore
    + ReleaseStore
    + DataStore
    + CronStore
    + BanStore
    + AlertStore
    + VulnStore
    + IncidentStore
    + ProofStore
    + ReportStore
    + AuditStore
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// Reads an installation-wide setting.
    async fn setting(&self, key: &str) -> Result<Option<String>>;

    async fn close(&self);
}

/// Users, invitations, MFA, grants and API tokens.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Number of users; zero before the first start completed.
    async fn user_count(&self) -> Result<u64>;

    /// Creates the first owner, their token and the installation settings in
    /// one transaction. Fails with [`StoreError::Conflict`] if any user exists.
    async fn bootstrap(
        &self,
        owner: &NewUser,
        token: &NewToken,
        settings: &[(&str, &str)],
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    async fn user(&self, id: &UserId) -> Result<Option<User>>;

    /// Every user, erased ones too, oldest first.
    async fn users(&self) -> Result<Vec<User>>;

    /// A user's sign-in material, by email (compared without case).
    async fn credentials_by_email(&self, email: &str) -> Result<Option<Credentials>>;

    async fn credentials(&self, id: &UserId) -> Result<Option<Credentials>>;

    /// Creates an invited user and their invitation; [`StoreError::Conflict`]
    /// when the email is taken.
    async fn invite(
        &self,
        user: &NewUser,
        invitation: &NewInvitation,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    async fn invitation_by_hash(&self, hash: &TokenHash) -> Result<Option<InvitationRow>>;

    async fn invitations(&self, user: &UserId) -> Result<Vec<InvitationRow>>;

    /// Uses an invitation: sets the password and activates the user.
    /// [`StoreError::Conflict`] if it was used already (nothing changes).
    async fn accept_invitation(
        &self,
        invitation: &str,
        password_hash: &str,
        at: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Changes a role; [`StoreError::Conflict`] if no active owner would
    /// remain.
    async fn set_role(&self, user: &UserId, role: Role, audit: AuditRecord) -> Result<AuditEntry>;

    /// Ends an account: no more sign-in, every token revoked.
    /// [`StoreError::Conflict`] for the last active owner.
    async fn remove_user(&self, user: &UserId, at: &str, audit: AuditRecord) -> Result<AuditEntry>;

    /// Removes the account and its personal data (email, password, MFA
    /// seed and codes, invitations); the id stays, so the audit chain and
    /// records that name it keep verifying.
    async fn erase_user(&self, user: &UserId, at: &str, audit: AuditRecord) -> Result<AuditEntry>;

    /// Stores a sealed TOTP seed awaiting confirmation;
    /// [`StoreError::Conflict`] if MFA is already enabled.
    async fn set_mfa_seed(
        &self,
        user: &UserId,
        sealed: &[u8],
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Turns MFA on with the step of the confirming code and the hashes of
    /// fresh recovery codes (replacing any old ones).
    async fn enable_mfa(
        &self,
        user: &UserId,
        step: u64,
        recovery: &[String],
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Records a TOTP step as used; false if it is not newer than the last
    /// one (a replay).
    async fn use_totp_step(&self, user: &UserId, step: u64) -> Result<bool>;

    /// Uses a recovery code once; false if unknown or used.
    async fn use_recovery_code(&self, user: &UserId, hash: &str, at: &str) -> Result<bool>;

    async fn unused_recovery_codes(&self, user: &UserId) -> Result<u64>;

    /// Grants or withdraws a developer's access to an app.
    async fn set_grant(
        &self,
        user: &UserId,
        app: &AppId,
        granted: bool,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    async fn grants(&self, user: &UserId) -> Result<Vec<AppName>>;

    /// A token by the hash of its value, with its owner's role; revoked
    /// tokens are returned too, so the caller can say why it was refused.
    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRow>>;

    /// A token of any kind by its id.
    async fn token(&self, id: &TokenId) -> Result<Option<TokenRow>>;

    /// Every API token (sessions are not listed).
    async fn tokens(&self) -> Result<Vec<TokenRow>>;

    /// Every token of one user, sessions included.
    async fn user_tokens(&self, user: &UserId) -> Result<Vec<TokenRow>>;

    async fn create_token(&self, token: &NewToken, audit: AuditRecord) -> Result<AuditEntry>;

    /// Marks a token revoked; [`StoreError::NotFound`] when there is no such
    /// unrevoked token.
    async fn revoke_token(&self, id: &TokenId, at: &str, audit: AuditRecord) -> Result<AuditEntry>;

    /// Records that the token authenticated a request at `at`.
    async fn touch_token(&self, id: &TokenId, at: &str) -> Result<()>;
}

/// Apps, their variables, settings and events.
#[async_trait]
pub trait AppStore: Send + Sync {
    async fn apps(&self) -> Result<Vec<AppRow>>;

    async fn app(&self, name: &AppName) -> Result<Option<AppRow>>;

    /// [`StoreError::Conflict`] when the name or a domain is taken.
    async fn create_app(&self, app: &NewApp, audit: AuditRecord) -> Result<AuditEntry>;

    /// Deletes the app with its domains and variables.
    async fn delete_app(&self, id: &AppId, audit: AuditRecord) -> Result<AuditEntry>;

    /// Sealed variables of an app, by name.
    async fn env(&self, app: &AppId) -> Result<Vec<SealedVar>>;

    /// Adds or replaces variables.
    async fn set_env(
        &self,
        app: &AppId,
        vars: &[SealedVar],
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Removes variables; [`StoreError::NotFound`] (and nothing removed) when
    /// any of them is not set.
    async fn unset_env(
        &self,
        app: &AppId,
        names: &[EnvName],
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Replaces an app's settings.
    async fn set_settings(
        &self,
        app: &AppId,
        settings: &AppSettings,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    async fn add_event(&self, app: &AppId, event: &AppEvent) -> Result<()>;

    /// The newest events of an app, oldest first.
    async fn events(&self, app: &AppId, limit: u32) -> Result<Vec<AppEvent>>;

    /// Deletes every app's events from before `before`; how many.
    async fn prune_events(&self, before: &str) -> Result<u64>;
}

/// Releases of apps.
#[async_trait]
pub trait ReleaseStore: Send + Sync {
    /// Records a release in state `deploying`, numbered one past the app's
    /// highest, and returns its number.
    async fn create_release(
        &self,
        app: &AppId,
        release: &NewRelease,
        audit: AuditRecord,
    ) -> Result<(u64, AuditEntry)>;

    /// Ends a deploying release. `Live` makes it the app's live release and
    /// retires the one before; `Failed` keeps `reason`. Fails with
    /// [`StoreError::Conflict`] if the release is no longer deploying.
    async fn finish_release(
        &self,
        app: &AppId,
        number: u64,
        status: ReleaseStatus,
        reason: Option<&str>,
        at: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// An app's releases, newest first.
    async fn releases(&self, app: &AppId) -> Result<Vec<ReleaseRow>>;

    async fn release(&self, app: &AppId, number: u64) -> Result<Option<ReleaseRow>>;

    /// Releases of every app still `deploying`.
    async fn unfinished_releases(&self) -> Result<Vec<ReleaseRow>>;
}

/// Apps' databases, media buckets, backup schedules and results.
#[async_trait]
pub trait DataStore: Send + Sync {
    /// Finishes pending work and closes connections.
    /// The database of an app, if it has one.
    async fn database(&self, app: &AppId) -> Result<Option<DatabaseRow>>;

    /// Every app's database.
    async fn databases(&self) -> Result<Vec<DatabaseRow>>;

    /// Records an app's new database (or its new password).
    async fn put_database(&self, row: &DatabaseRow, audit: AuditRecord) -> Result<AuditEntry>;

    /// The media bucket of an app, if it has one.
    async fn media_bucket(&self, app: &AppId) -> Result<Option<MediaBucketRow>>;

    /// Records an app's media bucket (created with its first deploy, which
    /// carries the audit entry).
    async fn put_media_bucket(&self, row: &MediaBucketRow) -> Result<()>;

    async fn backup_schedule(&self, app: &AppId) -> Result<Option<ScheduleRow>>;

    async fn backup_schedules(&self) -> Result<Vec<ScheduleRow>>;

    /// Sets an app's schedule, or removes it with `None`.
    async fn set_backup_schedule(
        &self,
        app: &AppId,
        schedule: Option<&ScheduleRow>,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Moves a schedule's next times on (no audit entry: the scheduler
    /// records results instead).
    async fn advance_backup_schedule(
        &self,
        app: &AppId,
        next_backup_at: &str,
        next_verify_at: Option<&str>,
    ) -> Result<()>;

    async fn add_backup_result(&self, result: &BackupResult) -> Result<()>;

    /// The newest results of an app, oldest first.
    async fn backup_results(&self, app: &str, limit: u32) -> Result<Vec<BackupResult>>;
}

/// Scheduled jobs and the record of their runs.
#[async_trait]
pub trait CronStore: Send + Sync {
    /// One app's jobs, or every app's, oldest first.
    async fn cron_jobs(&self, app: Option<&AppId>) -> Result<Vec<CronJobRow>>;

    async fn add_cron_job(&self, job: &CronJobRow, audit: AuditRecord) -> Result<AuditEntry>;

    /// Removes one of an app's jobs (its runs stay on record).
    async fn remove_cron_job(
        &self,
        app: &AppId,
        id: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Makes `jobs` the app's jobs declared in a manifest: those of its
    /// declared jobs whose id is not among them go, the others are added
    /// (a job already there is kept as it is). Jobs added by hand stay.
    async fn set_declared_cron_jobs(
        &self,
        app: &AppId,
        jobs: &[CronJobRow],
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Moves a job's next run on (no audit entry: its runs are recorded).
    async fn advance_cron_job(&self, id: &str, next_run_at: &str) -> Result<()>;

    async fn add_cron_run(&self, run: &CronRunRow) -> Result<()>;

    /// The newest runs of an app's jobs, oldest first.
    async fn cron_runs(&self, app: &AppId, limit: u32) -> Result<Vec<CronRunRow>>;
}

/// Clients banned at the edge.
#[async_trait]
pub trait BanStore: Send + Sync {
    /// Bans that have not expired by `now` (RFC 3339), newest first;
    /// expired ones are purged.
    async fn bans(&self, now: &str) -> Result<Vec<BanRow>>;

    /// Records a ban, replacing one of the same network and host.
    async fn add_ban(&self, ban: &BanRow, audit: AuditRecord) -> Result<AuditEntry>;

    /// Lifts a ban of a network on one host (or on every host with
    /// `None`); [`StoreError::NotFound`] if there is none.
    async fn remove_ban(
        &self,
        net: &str,
        host: Option<&str>,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;
}

/// Alerts, their channels and the outbox of deliveries.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// The firing alert of a condition, if any.
    async fn firing_alert(&self, key: &str) -> Result<Option<AlertRow>>;

    async fn alert(&self, id: &str) -> Result<Option<AlertRow>>;

    /// The newest alerts first; resolved ones only when `resolved`.
    async fn alerts(&self, resolved: bool, limit: u32) -> Result<Vec<AlertRow>>;

    /// Stores an alert as it now is and, in the same transaction, the
    /// deliveries that tell people about it.
    async fn save_alert(&self, alert: &AlertRow, deliveries: &[DeliveryRow]) -> Result<()>;

    /// Marks an alert acknowledged.
    async fn ack_alert(
        &self,
        id: &str,
        by: &str,
        at: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    async fn channels(&self) -> Result<Vec<ChannelRow>>;

    async fn add_channel(&self, channel: &ChannelRow, audit: AuditRecord) -> Result<AuditEntry>;

    /// Removes a channel and its pending deliveries.
    async fn remove_channel(&self, id: &str, audit: AuditRecord) -> Result<AuditEntry>;

    /// Pending deliveries due by `now`, oldest first.
    async fn due_deliveries(&self, now: &str, limit: u32) -> Result<Vec<DeliveryRow>>;

    /// Records an attempt's outcome.
    async fn update_delivery(&self, delivery: &DeliveryRow) -> Result<()>;

    /// An alert's deliveries.
    async fn deliveries(&self, alert: &str) -> Result<Vec<DeliveryRow>>;

    /// Deletes deliveries made before `before` that are no longer pending;
    /// how many.
    async fn prune_deliveries(&self, before: &str) -> Result<u64>;
}

/// What releases contain and the advisories they are matched against.
#[async_trait]
pub trait VulnStore: Send + Sync {
    /// Records a release's packages (JSON), replacing an earlier scan.
    async fn put_inventory(
        &self,
        app: &AppId,
        number: u64,
        scanned_at: &str,
        packages: &str,
    ) -> Result<()>;

    /// A release's packages (JSON) and when they were read, if scanned.
    async fn inventory(&self, app: &AppId, number: u64) -> Result<Option<(String, String)>>;

    /// Every advisory record (OSV JSON) stored.
    async fn advisory_records(&self) -> Result<Vec<String>>;

    /// Stores new and newer records (id, modified, OSV JSON) and the
    /// import's account of itself, all or none.
    async fn import_advisories(
        &self,
        records: &[(String, String, String)],
        import: &AdvisoryImportRow,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// The newest imports first.
    async fn advisory_imports(&self, limit: u32) -> Result<Vec<AdvisoryImportRow>>;

    /// Accepts a finding for an app, replacing an earlier acceptance.
    async fn accept_risk(&self, row: &AcceptedRiskRow, audit: AuditRecord) -> Result<AuditEntry>;

    /// Withdraws an acceptance; [`StoreError::NotFound`] if there is none.
    async fn remove_accepted_risk(
        &self,
        app: &AppId,
        advisory: &str,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Acceptances, expired ones included (the caller compares times).
    async fn accepted_risks(&self) -> Result<Vec<AcceptedRiskRow>>;
}

/// The audit chain.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry that records no other change (a refused request, a read
    /// of secrets).
    async fn append_audit(&self, audit: AuditRecord) -> Result<AuditEntry>;

    /// Entries with `seq > after`, oldest first, at most `limit`.
    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>>;

    /// The newest entries, newest first, at most `limit`.
    async fn audit_tail(&self, limit: u32) -> Result<Vec<AuditEntry>>;

    async fn audit_entry(&self, seq: u64) -> Result<Option<AuditEntry>>;

    /// Entries recorded from `from` up to (not including) `to`, both
    /// RFC 3339 in the store's one form, oldest first, at most `limit`.
    async fn audit_between(&self, from: &str, to: &str, limit: u32) -> Result<Vec<AuditEntry>>;
}

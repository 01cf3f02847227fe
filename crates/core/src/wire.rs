//! The JSON bodies of the control-plane API, shared by the server, the
//! client and the OpenAPI document.
//!
//! Requests carry plain strings; the server validates them into domain types
//! so that a bad name gets an error naming the rule it broke rather than a
//! generic deserialisation failure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Role;
use crate::audit::Outcome;

mod incidents;
mod nodes;
mod proof;
pub use incidents::*;
pub use nodes::*;
pub use proof::*;

/// Body of `POST /api/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// A DNS label: lowercase letters, digits and hyphens, 1 to 40 characters.
    pub name: String,
    /// Host names the app is served on; `NAME.localhost` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    /// Create the app's database with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_db: bool,
}

/// An app as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct App {
    pub id: String,
    pub name: String,
    pub domains: Vec<String>,
    pub created_at: String,
    /// Number of environment variables set on the app.
    pub env_count: u64,
}

/// Body of `PUT /api/apps/{app}/env`: variables to set (added or replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEnv {
    pub vars: BTreeMap<String, String>,
}

/// Body of `POST /api/apps/{app}/env/reveal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealEnv {
    /// Names to reveal; all variables when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
}

/// An environment variable without its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvVar {
    pub name: String,
    pub updated_at: String,
}

/// Revealed values, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevealedEnv {
    pub vars: BTreeMap<String, String>,
}

/// Body of `POST /api/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, e.g. `ci-deploy`: 1 to 64 printable characters.
    pub name: String,
    /// Act with this role instead of the caller's (never above it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Act on this app only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Expire after this many days (1 to 3650); never when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// A newly created token. The `token` value is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    pub token: String,
    pub created_at: String,
}

/// A token as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub user_id: String,
    /// The role the token acts with.
    pub role: Role,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// The only app the token may act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// When it last authenticated a request, to the hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

/// Who the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub user_id: String,
    pub email: Option<String>,
    pub role: Role,
    pub token_id: String,
    /// Whether this is a login session (else an API token).
    pub session: bool,
    pub mfa_enrolled: bool,
    /// True when the caller must enroll MFA before anything else.
    pub mfa_required: bool,
    /// The only app the token may act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Apps a developer may act on.
    pub grants: Vec<String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub request_id: String,
    /// Hex SHA-256 of the previous entry.
    pub prev_hash: String,
    /// Hex SHA-256 of this entry.
    pub hash: String,
}

/// The result of checking the audit chain end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    /// True when every entry links to the one before it and the chain
    /// reaches the recorded head.
    pub ok: bool,
    /// Entries checked before the first problem (all of them when ok).
    pub verified: u64,
    /// Sequence number of the first bad entry.
    pub first_bad: Option<u64>,
    /// What is wrong with it.
    pub problem: Option<String>,
}

/// Liveness of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// Every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `not_found`.
    pub code: String,
    /// One sentence for a person.
    pub message: String,
    /// The request's id, also in the `x-request-id` header and the audit log.
    pub request_id: String,
}

/// A release as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Release {
    pub number: u64,
    /// The image reference deployed (`rampart/APP:rN` for a build).
    pub image: String,
    /// The image id the replicas run; empty when the image never existed.
    pub image_id: String,
    pub status: crate::deploy::ReleaseStatus,
    /// Why it failed, with the replica's last log lines when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The user id that deployed it.
    pub created_by: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Names of the variables set when it was created.
    pub env_names: Vec<String>,
    pub settings: crate::deploy::AppSettings,
    /// The release command run before its replicas started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command: Option<crate::manifest::ReleaseCommand>,
    /// The commands of its processes, by name, from its manifest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub processes: BTreeMap<String, Vec<String>>,
}

/// Body of `POST /api/apps/{app}/deploys/image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployImage {
    /// An image reference or id the engine already has; nothing is pulled.
    pub image: String,
}

/// Body of `POST /api/apps/{app}/rollback`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The release to deploy again; the one live before the current one
    /// when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
}

/// Body of `POST /api/apps/{app}/scale`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Replicas of the web process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Replicas of the release's other processes, by name (0 stops one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub processes: BTreeMap<String, u32>,
}

/// An alert: one per condition while it fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// `alert_…`.
    pub id: String,
    /// What fires: `crash_loop`, `app_down`, `deploy_failed`,
    /// `cron_failed`, `backup_failed`, `verify_failed`, `retention_failed`,
    /// `restore_failed`, `test`.
    pub rule: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    pub summary: String,
    /// Sightings while it fired.
    pub count: u64,
    pub first_at: String,
    pub last_at: String,
    /// `firing` or `resolved`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<String>,
}

/// One message about an alert to one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// `dlv_…`, sent as `Rampart-Delivery`.
    pub id: String,
    pub channel: String,
    /// `alert.firing`, `alert.repeat`, `alert.resolved` or `alert.test`.
    pub event: String,
    pub attempts: u32,
    /// `pending`, `delivered` or `failed` (given up on after 3 days).
    pub state: String,
    pub next_attempt_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
}

/// An alert with its deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertDetail {
    pub alert: Alert,
    pub deliveries: Vec<Delivery>,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Channel {
    /// `ch_…`.
    pub id: String,
    /// `webhook` or `email`.
    pub kind: String,
    /// The webhook's URL or the email address.
    pub target: String,
    pub created_by: String,
    pub created_at: String,
}

/// Body of `POST /api/notify`: a channel to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddChannel {
    /// `webhook` or `email`.
    pub kind: String,
    /// A webhook's `https://` URL (`http://` only to this machine's
    /// loopback), or an email address.
    pub target: String,
    /// A webhook's key deliveries are signed with (16 to 1024 bytes);
    /// stored sealed, never shown again. Empty for email.
    #[serde(default)]
    pub secret: String,
}

/// A client banned at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ban {
    /// An address or network in CIDR form.
    pub net: String,
    /// The one host it applies to (where the client misbehaved); every
    /// host and the platform's API when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The detector's scenario (`http-probing` …), or `manual`.
    pub scenario: String,
    pub reason: String,
    /// A user id, or `watch` for the detectors.
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
}

/// Body of `POST /api/bans`: a ban by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBan {
    /// An address or network (`203.0.113.9`, `198.51.100.0/24`).
    pub net: String,
    /// Only on this host; on every host and the API when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// How long it lasts (4 hours when absent; at most 365 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of `POST /api/apps/{app}/cron`: a command to run on a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCronJob {
    /// Five cron fields in UTC (`30 3 * * *`), `@daily` and the like, or
    /// `every 15m`.
    pub schedule: String,
    /// The arguments, the program first (after the image's entrypoint).
    pub argv: Vec<String>,
    /// How long one run may take (default an hour, at most 6 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// A scheduled job of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CronJob {
    /// `cron_…`.
    pub id: String,
    pub app: String,
    pub schedule: String,
    pub argv: Vec<String>,
    pub timeout_secs: u64,
    /// When it runs next (RFC 3339, UTC).
    pub next_run_at: String,
    pub created_by: String,
    pub created_at: String,
    /// Where it comes from.
    pub source: JobSource,
}

/// Where a scheduled job comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobSource {
    /// `rampart cron add`; it stays until `rampart cron remove`.
    Added,
    /// The `rampart.app.toml` of the live release; it follows the live
    /// release and is changed there.
    Manifest,
}

/// What one run of a scheduled job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CronRun {
    pub job_id: String,
    pub started_at: String,
    pub finished_at: String,
    /// `ok`, `failed`, `timed_out` or `skipped` (due while the last run still
    /// went on, or with no live release).
    pub outcome: String,
    /// Its exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    pub duration_ms: u64,
    /// Why it was skipped or failed, and its last lines.
    pub detail: String,
}

/// Body of `POST /api/apps/{app}/runs`: a one-off command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunCommand {
    /// The arguments, the program first (after the image's entrypoint).
    pub argv: Vec<String>,
    /// The release whose image runs it; the live one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u64>,
    /// How long it may run (default 15 minutes, at most 6 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Variables for this run only, over the app's; never recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Run with a terminal of this size. Only with an upgrade to
    /// [`crate::terminal::UPGRADE`]: the connection then carries
    /// [`crate::terminal::Frame`]s both ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<TerminalSize>,
}

/// The size of a terminal, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalSize {
    pub cols: u16,
    pub rows: u16,
}

impl TerminalSize {
    /// The largest side the platform accepts.
    pub const MAX: u16 = 1000;

    /// Whether both sides are between 1 and [`Self::MAX`].
    pub fn is_valid(self) -> bool {
        (1..=Self::MAX).contains(&self.cols) && (1..=Self::MAX).contains(&self.rows)
    }
}

/// One line of a one-off command's run (`application/x-ndjson`). The last
/// line is `exit`, `timed_out` or `failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunLine {
    /// The command runs in a container of this release.
    Started { release: u64 },
    /// A line the command printed.
    Output { line: String },
    /// It exited with this status.
    Exit { status: i64 },
    /// It ran past its deadline and was stopped.
    TimedOut { secs: u64 },
    /// It could not run.
    Failed { message: String },
}

/// One line of a deploy's progress (`application/x-ndjson`). The last line
/// is `done` or `failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeployLine {
    /// A line printed by the image build.
    Build { line: String },
    /// A line printed by the release command.
    Release { line: String },
    /// A step of the rollout.
    Step { message: String },
    /// The release serves the app.
    Done { release: Release },
    /// The deploy failed; the release that was live, if any, keeps serving.
    Failed {
        message: String,
        /// The failed release, when one was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release: Option<Release>,
        /// The release that keeps serving; absent when none served.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serving: Option<u64>,
    },
}

/// One replica of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplicaStatus {
    /// Container name.
    pub name: String,
    /// Short container id.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u64>,
    /// The engine's state: `running`, `restarting`, `exited` …
    pub state: String,
    /// Whether the edge sends it traffic.
    pub serving: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<u64>,
    pub restarts: u64,
    /// The process it runs: `web` (served by the edge) or another.
    #[serde(default = "web_process")]
    pub process: String,
}

fn web_process() -> String {
    crate::deploy::WEB.to_owned()
}

/// Something that happened to an app's replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppEvent {
    pub time: String,
    /// `restart`, `crash_loop`, `repair` …
    pub kind: String,
    pub message: String,
}

/// An app's replicas, as `rampart ps` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppStatus {
    pub app: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_release: Option<u64>,
    pub desired_replicas: u32,
    /// Replicas wanted of the live release's other processes, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub desired_processes: BTreeMap<String, u32>,
    pub replicas: Vec<ReplicaStatus>,
    /// The newest events, oldest first.
    pub events: Vec<AppEvent>,
}

/// One line of an app's logs (`application/x-ndjson`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    pub replica: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
}

/// A user as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    pub id: String,
    /// `None` once erased.
    pub email: Option<String>,
    pub role: Role,
    /// `invited`, `active` or `removed`.
    pub status: String,
    pub mfa_enabled: bool,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<String>,
    /// Apps the user may act on as a developer.
    pub grants: Vec<String>,
}

/// Body of `POST /api/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUser {
    pub email: String,
    pub role: Role,
}

/// A new user and their invitation token, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Invited {
    pub user: UserInfo,
    /// Single use; the user sets their password with it.
    pub invitation: String,
    pub expires_at: String,
}

/// Body of `POST /api/invitations/accept`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub invitation: String,
    /// 12 to 1024 characters.
    pub password: String,
}

/// Body of `PATCH /api/users/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

/// Body of `POST /api/sessions`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// A TOTP code or a recovery code; required once MFA is enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A login session; the token is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub token: String,
    pub user_id: String,
    pub role: Role,
    pub expires_at: String,
}

/// A TOTP enrollment awaiting its first code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MfaEnrollment {
    /// Base32 seed, for entering by hand.
    pub secret: String,
    /// `otpauth://totp/…` for authenticator apps (also as a QR code).
    pub otpauth_uri: String,
}

/// Body of `POST /api/mfa/confirm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmMfa {
    pub code: String,
}

/// Single-use recovery codes, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    pub codes: Vec<String>,
}

/// An invitation as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvitationInfo {
    pub created_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
}

/// Everything held about a user (`rampart users export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserExport {
    pub user: UserInfo,
    pub tokens: Vec<TokenInfo>,
    pub invitations: Vec<InvitationInfo>,
    /// Audit entries the user is the actor of.
    pub audit: Vec<AuditEntry>,
}

/// An app's database. The password and URL appear only in the answer to
/// `POST /api/apps/{app}/database/reveal`, which is audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseInfo {
    pub app: String,
    /// The address replicas connect to.
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    /// TLS is required; replicas find the CA to verify the server with here.
    pub ca_path: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `DATABASE_URL` as the replicas get it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A snapshot of an app in the platform's backup repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupSnapshot {
    /// The snapshot id (hex); any unique prefix names it.
    pub id: String,
    pub time: String,
    pub app: String,
    /// The release that was live when it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u64>,
    /// `manual`, `scheduled` or `safety` (taken before a forced restore).
    pub reason: String,
    /// Bytes of database dump and media.
    pub bytes: u64,
    /// Tables, rows and media files as the snapshot's manifest counted them.
    pub tables: u32,
    pub rows: u64,
    pub media_files: u32,
}

/// What a backup, retention run, test restore or restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupRecord {
    pub app: String,
    /// `backup`, `retention`, `verify` or `restore`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub bytes: u64,
    pub ok: bool,
    pub detail: String,
}

/// Body of `POST /api/apps/{app}/backups/{snapshot}/restore`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBackup {
    /// Restore into this app instead of the snapshot's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Replace live data (after a safety snapshot of it).
    #[serde(default)]
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestoredBackup {
    pub snapshot: String,
    pub app: String,
    /// The snapshot of the replaced data, taken first when `force` was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_snapshot: Option<String>,
    pub tables: u32,
    pub rows: u64,
    pub media_files: u32,
}

/// Body of `PUT /api/apps/{app}/backup-schedule`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBackupSchedule {
    /// How often: `30s`, `15m`, `24h`, `7d`, `daily`, `weekly`.
    pub every: String,
    #[serde(default)]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
    #[serde(default)]
    pub keep_monthly: u32,
    /// How often to test-restore the newest snapshot, in the same form as
    /// `every`; never when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<String>,
}

/// An app's backup schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupSchedule {
    pub app: String,
    pub every_secs: u64,
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_every_secs: Option<u64>,
    pub next_backup_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_verify_at: Option<String>,
}

/// Body of `POST /api/apps/{app}/backups/verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBackup {
    /// The snapshot to test-restore; the newest when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// Parses a duration: `N` followed by `s`, `m`, `h` or `d`, or plain
/// seconds; the message says what was expected.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let wrong = || format!("{text:?} is not a duration such as 30s, 15m, 24h or 7d");
    let n: u64 = number.parse().map_err(|_| wrong())?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(wrong()),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Parses an interval: a [`parse_duration`] with its unit, or `hourly`,
/// `daily`, `weekly`. At least one second, at most a year.
pub fn parse_interval(text: &str) -> Result<u64, String> {
    let secs = match text.trim() {
        "hourly" => 3600,
        "daily" => 86_400,
        "weekly" => 7 * 86_400,
        t if t.ends_with(|c: char| c.is_ascii_digit()) => {
            return Err(format!(
                "{text:?} is not an interval such as 30s, 15m, 24h or 7d"
            ));
        }
        t => parse_duration(t)?,
    };
    if secs == 0 || secs > 366 * 86_400 {
        return Err(format!("{text:?} is out of range: use 1s to 366d"));
    }
    Ok(secs)
}

/// What `rampart top` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Top {
    pub at: String,
    /// The length of one sample's window.
    pub window_secs: u32,
    pub apps: Vec<AppTop>,
    /// Clients banned at the edge now.
    pub bans: u64,
    pub alerts_firing: u64,
}

/// One app in `rampart top`: the last minute's rates and the samples
/// asked for, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppTop {
    pub app: String,
    pub requests_per_sec: f64,
    /// The share of answers with a 5xx status, 0 to 1.
    pub errors_ratio: f64,
    pub p95_ms: f64,
    pub replicas_healthy: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_at: Option<String>,
    pub samples: Vec<TopSample>,
}

/// One window of an app's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopSample {
    /// When the window closed, in Unix seconds.
    pub at: i64,
    pub requests: u32,
    pub errors: u32,
    pub p95_ms: f32,
    pub healthy: u16,
}

/// One known vulnerability in a package of an app's live release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    pub app: String,
    pub release: u64,
    /// `Debian`, `Alpine`, `PyPI`, `npm`, `crates.io`, `Go`.
    pub ecosystem: String,
    pub package: String,
    pub version: String,
    /// Where in the image the package is recorded.
    pub location: String,
    /// The advisory's id (`PYSEC-…`, `GHSA-…`, `DSA-…`).
    pub advisory: String,
    pub aliases: Vec<String>,
    /// The lowest version that fixes it, when one is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// `critical`, `high`, `medium`, `low` or `unknown`.
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Set while an admin's acceptance of it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<AcceptedRisk>,
}

/// A finding an admin accepted for an app until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AcceptedRisk {
    pub app: String,
    /// The advisory id or alias accepted.
    pub advisory: String,
    pub reason: String,
    pub expires_at: String,
    pub created_by: String,
    pub created_at: String,
}

/// Accepts a finding for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRisk {
    /// The advisory id or one of its aliases.
    pub advisory: String,
    /// Why it is acceptable (required; shown with the finding).
    pub reason: String,
    /// How long it holds: 1 to 365 days.
    pub days: u32,
}

/// The advisory data the platform matches against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VulnDbStatus {
    pub advisories: u64,
    /// The latest `modified` time of any record: how fresh the data is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_record: Option<String>,
    /// Days since `newest_record`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_days: Option<u64>,
    /// Empty, or older than the staleness limit: findings may be missing.
    pub stale: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_import: Option<String>,
}

/// What an import of advisories did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VulnImport {
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Records of ecosystems the platform does not match (Maven …).
    pub skipped: u64,
    /// Files that were not OSV records, each with why.
    pub refused: Vec<String>,
    pub status: VulnDbStatus,
    /// Findings on live releases after the import.
    pub findings: u64,
}

/// Findings of live releases, and what could not be judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VulnReport {
    pub db: VulnDbStatus,
    pub findings: Vec<Finding>,
    /// Apps whose live release has not been scanned, with why.
    pub unscanned: Vec<String>,
    /// Package and advisory pairs whose versions could not be ordered.
    pub unjudged: Vec<String>,
}

#[cfg(test)]
mod interval_tests {
    use super::parse_interval;

    #[test]
    fn intervals_parse_and_bad_ones_are_named() {
        assert_eq!(parse_interval("30s"), Ok(30));
        assert_eq!(parse_interval("24h"), Ok(86_400));
        assert_eq!(parse_interval("weekly"), Ok(604_800));
        for bad in [
            "",
            "0s",
            "5",
            "h",
            "1y",
            "-1h",
            "99999999999999999999d",
            "400d",
            "1 h",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
    }
}

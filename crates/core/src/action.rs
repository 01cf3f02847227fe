//! Everything a caller can ask the control plane to do.
//!
//! The API's policy decides each request by its action and the caller's
//! role; the audit log records the action's name.

use std::fmt;

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read apps, their domains and variable names.
    AppRead,
    AppCreate,
    AppDelete,
    EnvSet,
    EnvUnset,
    /// Read secret values in clear text.
    EnvReveal,
    TokenRead,
    TokenCreate,
    TokenRevoke,
    AuditRead,
    /// Deploy a new release, or roll back to an earlier one.
    Deploy,
    /// Change how an app runs: replicas, limits, health check, network.
    AppConfigure,
    /// Run a one-off command in a container of one of the app's releases.
    AppRun,
    /// Add or remove an app's scheduled jobs.
    CronSet,
    /// List the clients banned at the edge.
    BanRead,
    /// Ban a client at the edge, or lift a ban.
    BanSet,
    /// List the machines of a Swarm.
    NodeRead,
    /// Label, drain (evacuate) or activate a machine of a Swarm, or issue
    /// the credential of an edge on one.
    NodeManage,
    /// An ingress node's edge fetched its sites' certificates (recorded by
    /// the node listener; no route of the API).
    IngressSync,
    /// List alerts and their deliveries.
    AlertRead,
    /// Acknowledge an alert.
    AlertAck,
    /// Add, remove or test notification channels.
    NotifySet,
    /// An alert fired (recorded by the platform itself, never asked for).
    AlertRaise,
    /// Read an app's releases, replicas and events.
    RuntimeRead,
    /// Read an app's logs.
    LogsRead,
    /// List users.
    UserRead,
    /// Create a user with an invitation.
    UserInvite,
    UserSetRole,
    UserRemove,
    /// Grant or withdraw a developer's access to an app.
    UserGrant,
    /// Export everything held about a user.
    UserExport,
    /// Erase a user's personal data.
    UserErase,
    /// Enroll or confirm one's own MFA.
    MfaEnroll,
    /// Sign in with email, password and code.
    SessionCreate,
    /// Sign out: revoke one's own session.
    SessionEnd,
    /// Set one's password from an invitation.
    InvitationAccept,
    /// Create an app's database.
    DatabaseCreate,
    /// Read where an app's database is (not its password).
    DatabaseRead,
    /// Read an app's database password in clear text.
    DatabaseReveal,
    /// Take a backup of an app, or test-restore one.
    BackupRun,
    /// List an app's snapshots, schedule and backup results.
    BackupRead,
    /// Restore a snapshot over an app's data.
    BackupRestore,
    /// Set or remove an app's backup schedule.
    BackupSchedule,
    /// List every app's vulnerability findings and the advisory data.
    VulnRead,
    /// Import advisory data.
    VulnImport,
    /// Accept a finding for a while, or withdraw an acceptance.
    VulnAccept,
    /// List incidents, their timelines and follow-up actions.
    IncidentRead,
    /// Open, acknowledge, note, assign, mitigate, resolve or review an
    /// incident, or close a follow-up action.
    IncidentManage,
    /// Run the self-audit.
    DoctorRun,
    /// Record an access review, or list them.
    AccessReview,
    /// Export signed evidence of the controls.
    EvidenceExport,
    /// List security reports.
    ReportRead,
    /// Triage or close a security report.
    ReportTriage,
    /// A security report arrived (recorded by the platform, never asked
    /// for through the API).
    ReportSubmit,
    /// Delete and pseudonymise personal data past its time now (it also
    /// runs daily by itself).
    PrivacySweep,
    /// First start: the owner and their token are created.
    Bootstrap,
}

impl Action {
    pub const ALL: [Action; 56] = [
        Action::AppRead,
        Action::AppCreate,
        Action::AppDelete,
        Action::EnvSet,
        Action::EnvUnset,
        Action::EnvReveal,
        Action::TokenRead,
        Action::TokenCreate,
        Action::TokenRevoke,
        Action::AuditRead,
        Action::Deploy,
        Action::AppConfigure,
        Action::AppRun,
        Action::CronSet,
        Action::BanRead,
        Action::BanSet,
        Action::NodeRead,
        Action::NodeManage,
        Action::IngressSync,
        Action::AlertRead,
        Action::AlertAck,
        Action::NotifySet,
        Action::AlertRaise,
        Action::RuntimeRead,
        Action::LogsRead,
        Action::UserRead,
        Action::UserInvite,
        Action::UserSetRole,
        Action::UserRemove,
        Action::UserGrant,
        Action::UserExport,
        Action::UserErase,
        Action::MfaEnroll,
        Action::SessionCreate,
        Action::SessionEnd,
        Action::InvitationAccept,
        Action::DatabaseCreate,
        Action::DatabaseRead,
        Action::DatabaseReveal,
        Action::BackupRun,
        Action::BackupRead,
        Action::BackupRestore,
        Action::BackupSchedule,
        Action::VulnRead,
        Action::VulnImport,
        Action::VulnAccept,
        Action::IncidentRead,
        Action::IncidentManage,
        Action::DoctorRun,
        Action::AccessReview,
        Action::EvidenceExport,
        Action::ReportRead,
        Action::ReportTriage,
        Action::ReportSubmit,
        Action::PrivacySweep,
        Action::Bootstrap,
    ];

    /// The name recorded in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::AppRead => "app.read",
            Action::AppCreate => "app.create",
            Action::AppDelete => "app.delete",
            Action::EnvSet => "env.set",
            Action::EnvUnset => "env.unset",
            Action::EnvReveal => "env.reveal",
            Action::TokenRead => "token.read",
            Action::TokenCreate => "token.create",
            Action::TokenRevoke => "token.revoke",
            Action::AuditRead => "audit.read",
            Action::Deploy => "app.deploy",
            Action::AppConfigure => "app.configure",
            Action::AppRun => "app.run",
            Action::CronSet => "app.cron.set",
            Action::BanRead => "ban.read",
            Action::BanSet => "ban.set",
            Action::NodeRead => "node.read",
            Action::NodeManage => "node.manage",
            Action::IngressSync => "ingress.sync",
            Action::AlertRead => "alert.read",
            Action::AlertAck => "alert.ack",
            Action::NotifySet => "notify.set",
            Action::AlertRaise => "alert.raise",
            Action::RuntimeRead => "app.runtime.read",
            Action::LogsRead => "app.logs.read",
            Action::UserRead => "user.read",
            Action::UserInvite => "user.invite",
            Action::UserSetRole => "user.set_role",
            Action::UserRemove => "user.remove",
            Action::UserGrant => "user.grant",
            Action::UserExport => "user.export",
            Action::UserErase => "user.erase",
            Action::MfaEnroll => "mfa.enroll",
            Action::SessionCreate => "session.create",
            Action::SessionEnd => "session.end",
            Action::InvitationAccept => "invitation.accept",
            Action::DatabaseCreate => "app.database.create",
            Action::DatabaseRead => "app.database.read",
            Action::DatabaseReveal => "app.database.reveal",
            Action::BackupRun => "app.backup.run",
            Action::BackupRead => "app.backup.read",
            Action::BackupRestore => "app.backup.restore",
            Action::BackupSchedule => "app.backup.schedule",
            Action::VulnRead => "vulns.read",
            Action::VulnImport => "vulns.import",
            Action::VulnAccept => "vulns.accept",
            Action::IncidentRead => "incident.read",
            Action::IncidentManage => "incident.manage",
            Action::DoctorRun => "doctor.run",
            Action::AccessReview => "access.review",
            Action::EvidenceExport => "evidence.export",
            Action::ReportRead => "report.read",
            Action::ReportTriage => "report.triage",
            Action::ReportSubmit => "report.submit",
            Action::PrivacySweep => "privacy.sweep",
            Action::Bootstrap => "system.bootstrap",
        }
    }

    /// Whether the action changes state or exposes secrets, and is
    /// therefore recorded in the audit log whatever its outcome.
    pub fn is_audited(self) -> bool {
        !matches!(
            self,
            Action::AppRead
                | Action::TokenRead
                | Action::AuditRead
                | Action::RuntimeRead
                | Action::LogsRead
                | Action::UserRead
                | Action::DatabaseRead
                | Action::BackupRead
                | Action::VulnRead
                | Action::IncidentRead
                | Action::ReportRead
                | Action::NodeRead
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

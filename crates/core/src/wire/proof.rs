//! The self-audit and access reviews on the wire.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One control of the self-audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DoctorCheck {
    /// `mfa`, `tokens.expiry`, `tokens.unused`, `apps.egress`,
    /// `apps.allow_root`, `backups.repository`, `backups.schedule`,
    /// `backups.overdue`, `backups.test_restore`, `certificates`,
    /// `vulns.data`, `vulns.critical`, `files`, `audit.chain`,
    /// `incidents.follow_ups`, `security_txt`.
    pub control: String,
    /// `pass`, `warn` or `fail`.
    pub status: String,
    /// What was found, naming what to fix.
    pub detail: String,
}

/// What one self-audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DoctorReport {
    pub at: String,
    pub passed: u32,
    pub warned: u32,
    pub failed: u32,
    pub checks: Vec<DoctorCheck>,
}

/// Records an access review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordAccessReview {
    /// What the reviewer concluded (and changed).
    pub note: String,
}

/// A recorded access review and what it looked at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessReview {
    /// `rev_…`.
    pub id: String,
    pub at: String,
    /// The reviewer's email.
    pub reviewer: String,
    pub note: String,
    /// The users, roles, MFA state, grants and tokens as they stood.
    #[schema(value_type = Object)]
    pub snapshot: serde_json::Value,
}

/// A signed evidence bundle: its files by name (`evidence.json`,
/// `report.html`, `manifest.json`, `manifest.sig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EvidenceBundle {
    pub files: std::collections::BTreeMap<String, String>,
    /// The installation's Ed25519 public key, hex.
    pub public_key: String,
    /// Its fingerprint, to compare with the one `verify` prints.
    pub fingerprint: String,
}

/// A security report received by the intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecurityReport {
    /// `rpt_…`: the tracking id the sender got.
    pub id: String,
    pub received_at: String,
    /// The host it was sent to, and the app serving it.
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The sender's address (pseudonymised after the privacy retention).
    pub client: String,
    /// What the sender wrote as a summary, as plain text.
    pub title: String,
    /// How to reach the sender, as they gave it.
    pub contact: String,
    /// Bytes as received.
    pub size: u64,
    /// `new`, `triaged` or `closed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triaged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triaged_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// A report with what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecurityReportDetail {
    pub report: SecurityReport,
    pub content_type: String,
    /// The body as text (bytes that are not UTF-8 shown as U+FFFD);
    /// never interpreted.
    pub body: String,
    /// The body exactly as received, base64.
    pub body_base64: String,
}

/// Triages a report: how severe, and the incident it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageReport {
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// An incident to link it to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Open a new incident for it (instead of linking one).
    #[serde(default)]
    pub open_incident: bool,
}

/// Closes a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseReport {
    /// What came of it: fixed, not a vulnerability, duplicate of …
    pub resolution: String,
}

/// What one privacy sweep did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrivacySweep {
    pub at: String,
    /// Access-log days deleted, past the retention.
    pub logs_removed: u32,
    /// Access-log days whose client addresses became pseudonyms.
    pub logs_pseudonymised: u32,
    /// App events and sent notifications deleted, past the retention.
    pub events_removed: u64,
    pub deliveries_removed: u64,
    /// Security reports whose sender address became a pseudonym.
    pub reports_pseudonymised: u32,
}

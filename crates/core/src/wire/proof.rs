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

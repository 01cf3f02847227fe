//! What the platform keeps to prove its controls ran: self-audit results
//! and access reviews.

use async_trait::async_trait;
use rampart_core::audit::{AuditEntry, AuditRecord};

use crate::Result;

/// One run of the self-audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorRunRow {
    pub at: String,
    /// A user id, or `system` for the daily run.
    pub actor: String,
    pub passed: u32,
    pub warned: u32,
    pub failed: u32,
    /// The checks, as JSON.
    pub checks: String,
}

/// A recorded access review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReviewRow {
    /// `rev_…`.
    pub id: String,
    pub at: String,
    /// A user id.
    pub reviewer: String,
    pub note: String,
    /// What was reviewed, as JSON.
    pub snapshot: String,
}

#[async_trait]
pub trait ProofStore: Send + Sync {
    async fn add_doctor_run(&self, run: &DoctorRunRow) -> Result<()>;

    /// Runs from `from` up to `to`, oldest first.
    async fn doctor_runs(&self, from: &str, to: &str) -> Result<Vec<DoctorRunRow>>;

    async fn add_access_review(
        &self,
        review: &AccessReviewRow,
        audit: AuditRecord,
    ) -> Result<AuditEntry>;

    /// Reviews from `from` up to `to`, oldest first.
    async fn access_reviews(&self, from: &str, to: &str) -> Result<Vec<AccessReviewRow>>;
}

/// A security report as the intake received it, and its triage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// `rpt_…`: the tracking id the sender got.
    pub id: String,
    pub received_at: String,
    pub host: String,
    pub client: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub title: String,
    pub contact: String,
    /// `new`, `triaged` or `closed`.
    pub state: String,
    pub severity: Option<String>,
    pub incident_id: Option<String>,
    pub triaged_by: Option<String>,
    pub triaged_at: Option<String>,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    pub resolution: Option<String>,
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores a report that just arrived.
    async fn add_report(&self, report: &ReportRow) -> Result<()>;

    /// Reports, newest first; closed ones too with `all`.
    async fn reports(&self, all: bool, limit: u32) -> Result<Vec<ReportRow>>;

    async fn report(&self, id: &str) -> Result<Option<ReportRow>>;

    /// Replaces the sender's address of a report.
    async fn set_report_client(&self, id: &str, client: &str) -> Result<()>;

    /// Writes a report's triage or closing, with its audit entry.
    async fn update_report(&self, report: &ReportRow, audit: AuditRecord) -> Result<AuditEntry>;
}

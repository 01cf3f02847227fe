//! Incidents in the store: the incident, its timeline and its post-mortem's
//! follow-up actions.

use async_trait::async_trait;
use rampart_core::audit::{AuditEntry, AuditRecord};

use crate::{DeliveryRow, Result};

/// An incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    /// `inc_…`.
    pub id: String,
    pub title: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// `open`, `acknowledged`, `mitigated`, `resolved` or `reviewed`.
    pub state: String,
    pub app: Option<String>,
    /// A user id.
    pub owner: Option<String>,
    /// A user id, or `watch` when an alert opened it.
    pub opened_by: String,
    pub opened_at: String,
    pub acked_at: Option<String>,
    pub mitigated_at: Option<String>,
    pub resolved_at: Option<String>,
    pub reviewed_at: Option<String>,
    /// Escalation steps taken along the notification channels.
    pub escalation: u32,
    /// When the last step was told.
    pub notified_at: String,
    /// The post-mortem's findings.
    pub cause: Option<String>,
    pub impact: Option<String>,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentEventRow {
    pub at: String,
    /// `opened`, `alert`, `note`, `state`, `owner`, `escalated`, `review`,
    /// `action`.
    pub kind: String,
    /// A user id, or `watch`.
    pub actor: String,
    pub text: String,
    /// What it links to: an alert id (`alert_…`), a channel (`ch_…`).
    pub link: Option<String>,
}

/// A follow-up action of a post-mortem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpRow {
    pub incident_id: String,
    /// 1, 2, … within the incident.
    pub number: u32,
    pub text: String,
    /// A user id.
    pub owner: String,
    /// RFC 3339; overdue after it while not done.
    pub due: String,
    pub done_at: Option<String>,
    pub done_by: Option<String>,
}

/// What one change to an incident writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct IncidentChange<'a> {
    pub events: &'a [IncidentEventRow],
    /// Follow-ups added or changed.
    pub actions: &'a [FollowUpRow],
    /// Messages to channels about it.
    pub deliveries: &'a [DeliveryRow],
}

#[async_trait]
pub trait IncidentStore: Send + Sync {
    /// Incidents, newest first; closed ones (resolved or reviewed) too
    /// with `all`.
    async fn incidents(&self, all: bool, limit: u32) -> Result<Vec<IncidentRow>>;

    async fn incident(&self, id: &str) -> Result<Option<IncidentRow>>;

    /// An incident's timeline, oldest first.
    async fn incident_events(&self, id: &str) -> Result<Vec<IncidentEventRow>>;

    /// The follow-up actions of one incident, or of all with `None`.
    async fn follow_ups(&self, id: Option<&str>) -> Result<Vec<FollowUpRow>>;

    /// Writes the incident (inserted or replaced) with its change, and
    /// `audit` when a person made it.
    async fn save_incident(
        &self,
        incident: &IncidentRow,
        change: IncidentChange<'_>,
        audit: Option<AuditRecord>,
    ) -> Result<Option<AuditEntry>>;
}

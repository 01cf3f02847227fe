//! Incidents on the wire: what went wrong, who is on it, the timeline and
//! the post-mortem.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    /// `inc_…`.
    pub id: String,
    pub title: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// `open`, `acknowledged`, `mitigated`, `resolved` or `reviewed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The owner's email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// An email, or `watch` when an alert opened it.
    pub opened_by: String,
    pub opened_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<String>,
    /// Escalation steps taken along the notification channels.
    pub escalation: u32,
    /// Seconds from opening to acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_ack_secs: Option<i64>,
    /// Seconds from opening to resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_resolve_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    /// Follow-up actions not yet done, and how many of them are overdue.
    pub open_actions: u32,
    pub overdue_actions: u32,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub at: String,
    /// `opened`, `alert`, `note`, `state`, `owner`, `escalated`, `review`,
    /// `action`, or `audit` (an audit entry about the incident's app made
    /// while it was open: a deploy, a ban, a change of settings).
    pub kind: String,
    /// An email, a user id, `watch` or `system`.
    pub actor: String,
    pub text: String,
    /// What it links to: an alert id, a channel id, an audit sequence
    /// number (`audit/42`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A follow-up action of a post-mortem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FollowUp {
    pub incident: String,
    pub number: u32,
    pub text: String,
    /// The owner's email.
    pub owner: String,
    pub due: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_by: Option<String>,
    /// Past its due time and not done.
    pub overdue: bool,
}

/// An incident with its timeline, follow-ups and messages to channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentDetail {
    pub incident: Incident,
    pub timeline: Vec<TimelineEntry>,
    pub actions: Vec<FollowUp>,
    pub deliveries: Vec<super::Delivery>,
}

/// Opens an incident by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenIncident {
    pub title: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Moves an incident on: to `acknowledged`, `mitigated` or `resolved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentStep {
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A note on an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentNote {
    pub text: String,
}

/// Gives an incident an owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignIncident {
    /// A user's email or id.
    pub owner: String,
}

/// A follow-up action to take after an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFollowUp {
    pub text: String,
    /// A user's email or id.
    pub owner: String,
    /// A date (`2026-12-15`) or an RFC 3339 time.
    pub due: String,
}

/// The post-mortem of a resolved incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentReview {
    pub cause: String,
    pub impact: String,
    #[serde(default)]
    pub actions: Vec<NewFollowUp>,
}

/// How quickly incidents were acknowledged and resolved, over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentStats {
    pub from: String,
    pub to: String,
    /// Incidents opened in the period.
    pub opened: u32,
    pub acknowledged: u32,
    pub resolved: u32,
    pub reviewed: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_ack_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_ack_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_resolve_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_resolve_secs: Option<i64>,
    /// Follow-up actions of the period's incidents: open, and overdue.
    pub open_actions: u32,
    pub overdue_actions: u32,
}

//! Incidents: what went wrong, who is on it, what was done about it, and
//! what the team will change afterwards.
//!
//! An incident moves open → acknowledged → mitigated → resolved →
//! reviewed; steps may be skipped forward, never taken back. Alerts at or
//! above `[incidents] open_at` open one by themselves (or join the one
//! already open for their app). The first notification channel is told
//! when it opens; each time its severity's `ack_within` passes without an
//! acknowledgement, the next channel is told, and past the last one every
//! channel is told again. The timeline holds each step, note, linked
//! alert and escalation, and, when shown, the audit entries about the
//! incident's app made while it was open (deploys, settings, bans).
//! The post-mortem (`review`) records cause, impact and follow-up actions
//! with owners and due dates, tracked until done.

use std::collections::HashMap;

use rampart_core::audit::Outcome;
use rampart_core::time::Timestamp;
use rampart_core::{Action, RequestId, wire};
use rampart_store::{
    AlertRow, ChannelRow, DeliveryRow, FollowUpRow, IncidentChange, IncidentEventRow, IncidentRow,
};

use crate::{Acting, Error, Platform};

/// The actor of what the platform does by itself.
const WATCH: &str = "watch";
const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
const MAX_TITLE: usize = 200;
const MAX_TEXT: usize = 4000;
const MAX_ACTIONS: usize = 50;
/// Audit entries of the app shown on one timeline.
const TIMELINE_AUDIT: u32 = 500;

/// Incidents. A handle on the [`Platform`], from [`Platform::incidents`].
#[derive(Debug, Clone, Copy)]
pub struct Incidents<'a> {
    pub(crate) p: &'a Platform,
}

impl Platform {
    pub fn incidents(&self) -> Incidents<'_> {
        Incidents { p: self }
    }
}

fn now() -> String {
    Timestamp::now().to_rfc3339()
}

fn secs(text: &str) -> i64 {
    Timestamp::parse(text).map_or(0, Timestamp::unix_seconds)
}

fn between(from: &str, to: Option<&String>) -> Option<i64> {
    to.map(|to| (secs(to) - secs(from)).max(0))
}

/// Checks free text a person typed: not empty, at most `max` characters,
/// no control characters but line breaks and tabs where `lines`.
fn text(field: &str, value: &str, max: usize, lines: bool) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::Invalid(format!("the {field} is empty")));
    }
    if value.chars().count() > max {
        return Err(Error::Invalid(format!(
            "the {field} is longer than {max} characters"
        )));
    }
    let allowed = |c: char| lines && (c == '\n' || c == '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(Error::Invalid(format!(
            "the {field} holds control characters"
        )));
    }
    Ok(value.to_owned())
}

/// The id of the user among `users` that `who` names, by email or id.
fn user_id(users: &[rampart_store::User], who: &str) -> Result<String, Error> {
    let who = who.trim();
    users
        .iter()
        .find(|u| {
            u.erased_at.is_none()
                && (u.id.as_str() == who
                    || u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(who)))
        })
        .map(|u| u.id.to_string())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "there is no user {:?}",
                who.chars().take(64).collect::<String>()
            ))
        })
}

fn severity(value: &str) -> Result<String, Error> {
    SEVERITIES
        .iter()
        .find(|s| **s == value)
        .map(|s| (*s).to_owned())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{:?} is not a severity: low, medium, high or critical",
                value.chars().take(32).collect::<String>()
            ))
        })
}

/// The incident severity an alert of `severity` opens.
fn from_alert(severity: &str) -> &'static str {
    match severity {
        "critical" => "critical",
        "warning" => "medium",
        _ => "low",
    }
}

fn rank(state: &str) -> u8 {
    match state {
        "open" => 0,
        "acknowledged" => 1,
        "mitigated" => 2,
        "resolved" => 3,
        _ => 4,
    }
}

fn event(kind: &str, actor: &str, text: String, link: Option<String>) -> IncidentEventRow {
    IncidentEventRow {
        at: now(),
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        text,
        link,
    }
}

/// Who people are, by id, for views.
struct Names(HashMap<String, String>);

impl Names {
    fn of(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
}

fn follow_up_view(row: FollowUpRow, names: &Names, now: &str) -> wire::FollowUp {
    wire::FollowUp {
        overdue: row.done_at.is_none() && row.due.as_str() < now,
        incident: row.incident_id,
        number: row.number,
        text: row.text,
        owner: names.of(&row.owner),
        due: row.due,
        done_at: row.done_at,
        done_by: row.done_by.map(|id| names.of(&id)),
    }
}

fn incident_view(row: IncidentRow, actions: &[FollowUpRow], names: &Names) -> wire::Incident {
    let now = now();
    let mine = actions.iter().filter(|a| a.incident_id == row.id);
    let open: Vec<&FollowUpRow> = mine.filter(|a| a.done_at.is_none()).collect();
    wire::Incident {
        time_to_ack_secs: between(&row.opened_at, row.acked_at.as_ref()),
        time_to_resolve_secs: between(&row.opened_at, row.resolved_at.as_ref()),
        open_actions: open.len() as u32,
        overdue_actions: open.iter().filter(|a| a.due < now).count() as u32,
        id: row.id,
        title: row.title,
        severity: row.severity,
        state: row.state,
        app: row.app,
        owner: row.owner.map(|id| names.of(&id)),
        opened_by: names.of(&row.opened_by),
        opened_at: row.opened_at,
        acked_at: row.acked_at,
        mitigated_at: row.mitigated_at,
        resolved_at: row.resolved_at,
        reviewed_at: row.reviewed_at,
        escalation: row.escalation,
        cause: row.cause,
        impact: row.impact,
    }
}

fn median(mut values: Vec<i64>) -> Option<i64> {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2),
    }
}

fn mean(values: &[i64]) -> Option<i64> {
    (!values.is_empty()).then(|| values.iter().sum::<i64>() / values.len() as i64)
}

impl Incidents<'_> {
    async fn names(&self) -> Result<Names, Error> {
        Ok(Names(self.p.user_names().await?))
    }

    async fn row(&self, id: &str) -> Result<IncidentRow, Error> {
        self.p
            .store
            .incident(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("there is no incident {id}")))
    }

    async fn view(&self, row: IncidentRow) -> Result<wire::Incident, Error> {
        let actions = self.p.store.follow_ups(Some(&row.id)).await?;
        Ok(incident_view(row, &actions, &self.names().await?))
    }

    /// Messages about `incident` to `channels`, due now.
    async fn deliveries(
        &self,
        incident: &IncidentRow,
        channels: &[ChannelRow],
        event: &str,
    ) -> Result<Vec<DeliveryRow>, Error> {
        let view = self.view(incident.clone()).await?;
        Ok(crate::alerts::deliveries(
            channels,
            &incident.id,
            event,
            "incident",
            &view,
        ))
    }

    fn new_row(title: String, severity: String, app: Option<String>, by: &str) -> IncidentRow {
        let at = now();
        IncidentRow {
            id: format!("inc_{}", crate::ops::random_token(12)),
            title,
            severity,
            state: "open".into(),
            app,
            owner: None,
            opened_by: by.to_owned(),
            opened_at: at.clone(),
            acked_at: None,
            mitigated_at: None,
            resolved_at: None,
            reviewed_at: None,
            escalation: 0,
            notified_at: at,
            cause: None,
            impact: None,
        }
    }

    /// Opens an incident by hand; the first channel is told.
    pub async fn open(
        &self,
        acting: Acting<'_>,
        request: wire::OpenIncident,
    ) -> Result<wire::Incident, Error> {
        let title = text("title", &request.title, MAX_TITLE, false)?;
        let severity = severity(&request.severity)?;
        let app = match request.app.as_deref() {
            Some(app) => Some(self.p.app_row(app).await?.name.to_string()),
            None => None,
        };
        let note = request
            .note
            .as_deref()
            .map(|n| text("note", n, MAX_TEXT, true))
            .transpose()?;
        let by = acting.caller.user_id.to_string();
        let row = Self::new_row(title, severity, app, &by);
        let mut events = vec![event("opened", &by, row.title.clone(), None)];
        if let Some(note) = note {
            events.push(event("note", &by, note, None));
        }
        let channels = self.p.store.channels().await?;
        let deliveries = self
            .deliveries(&row, &channels[..channels.len().min(1)], "incident.opened")
            .await?;
        let record = self.p.record(
            acting,
            Action::IncidentManage,
            format!(
                "incidents/{} opened: {} {}",
                row.id, row.severity, row.title
            ),
        );
        let change = IncidentChange {
            events: &events,
            deliveries: &deliveries,
            ..Default::default()
        };
        if let Some(entry) = self
            .p
            .store
            .save_incident(&row, change, Some(record))
            .await?
        {
            self.p.checkpoint(entry.seq, entry.hash).await;
        }
        self.view(row).await
    }

    /// A new alert: it opens an incident when severe enough, or joins the
    /// one open for its app. Failures are logged: noticing never fails the
    /// work that noticed.
    pub(crate) async fn on_alert(&self, alert: &AlertRow) {
        if let Err(error) = self.try_on_alert(alert).await {
            tracing::error!(%error, alert = %alert.id, "cannot open an incident for an alert");
        }
    }

    async fn try_on_alert(&self, alert: &AlertRow) -> Result<(), Error> {
        let link = event(
            "alert",
            WATCH,
            format!("{} {}: {}", alert.severity, alert.rule, alert.summary),
            Some(alert.id.clone()),
        );
        let open = self.p.store.incidents(false, 500).await?;
        let joined = open
            .into_iter()
            .find(|i| alert.app.is_some() && i.app == alert.app);
        if let Some(row) = joined {
            let change = IncidentChange {
                events: std::slice::from_ref(&link),
                ..Default::default()
            };
            self.p.store.save_incident(&row, change, None).await?;
            return Ok(());
        }
        let opens = match self.p.incidents_config.open_at.as_deref() {
            Some("warning") => matches!(alert.severity.as_str(), "warning" | "critical"),
            Some(_) => alert.severity == "critical",
            None => false,
        };
        if !opens {
            return Ok(());
        }
        let title: String = format!(
            "{}{}",
            alert.rule,
            alert
                .app
                .as_deref()
                .map(|a| format!(" of {a}"))
                .unwrap_or_default()
        );
        let row = Self::new_row(
            title,
            from_alert(&alert.severity).to_owned(),
            alert.app.clone(),
            WATCH,
        );
        let events = [
            event(
                "opened",
                WATCH,
                format!("opened by alert {}", alert.id),
                None,
            ),
            link,
        ];
        let channels = self.p.store.channels().await?;
        let deliveries = self
            .deliveries(&row, &channels[..channels.len().min(1)], "incident.opened")
            .await?;
        let change = IncidentChange {
            events: &events,
            deliveries: &deliveries,
            ..Default::default()
        };
        self.p.store.save_incident(&row, change, None).await?;
        tracing::warn!(incident = %row.id, alert = %alert.id, "incident opened");
        self.p
            .append(Platform::record_by(
                WATCH,
                Action::IncidentManage,
                format!(
                    "incidents/{} opened: {} {} (alert {})",
                    row.id, row.severity, row.title, alert.id
                ),
                Outcome::Ok,
                &RequestId::generate(),
            ))
            .await;
        Ok(())
    }

    /// Tells the next channel about each open incident nobody acknowledged
    /// within its severity's window.
    pub async fn escalate_due(&self) {
        if let Err(error) = self.try_escalate_due().await {
            tracing::error!(%error, "cannot escalate incidents");
        }
    }

    async fn try_escalate_due(&self) -> Result<(), Error> {
        let now = Timestamp::now().unix_seconds();
        let waiting: Vec<IncidentRow> = self
            .p
            .store
            .incidents(false, 500)
            .await?
            .into_iter()
            .filter(|i| i.state == "open")
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let channels = self.p.store.channels().await?;
        if channels.is_empty() {
            return Ok(());
        }
        for mut row in waiting {
            let window = self.p.incidents_config.ack_within(&row.severity);
            if now - secs(&row.notified_at) < window as i64 {
                continue;
            }
            row.escalation = row.escalation.saturating_add(1);
            row.notified_at = Timestamp::from_unix_seconds(now)
                .unwrap_or_else(Timestamp::now)
                .to_rfc3339();
            let step = row.escalation as usize;
            let (targets, told) = match channels.get(step) {
                Some(channel) => (
                    std::slice::from_ref(channel),
                    format!("the next channel, {} {}", channel.kind, channel.target),
                ),
                None => (&channels[..], "every channel again".to_owned()),
            };
            let link = targets.first().filter(|_| targets.len() == 1);
            let events = [event(
                "escalated",
                WATCH,
                format!("not acknowledged within {window} s: told {told}"),
                link.map(|c| c.id.clone()),
            )];
            let deliveries = self.deliveries(&row, targets, "incident.escalated").await?;
            let change = IncidentChange {
                events: &events,
                deliveries: &deliveries,
                ..Default::default()
            };
            self.p.store.save_incident(&row, change, None).await?;
            tracing::warn!(incident = %row.id, step, "incident escalated");
            self.p
                .append(Platform::record_by(
                    WATCH,
                    Action::IncidentManage,
                    format!("incidents/{} escalated: step {step}", row.id),
                    Outcome::Ok,
                    &RequestId::generate(),
                ))
                .await;
        }
        Ok(())
    }

    /// Incidents, newest first; closed ones too with `all`.
    pub async fn list(&self, all: bool) -> Result<Vec<wire::Incident>, Error> {
        let rows = self.p.store.incidents(all, 500).await?;
        let actions = self.p.store.follow_ups(None).await?;
        let names = self.names().await?;
        Ok(rows
            .into_iter()
            .map(|row| incident_view(row, &actions, &names))
            .collect())
    }

    /// One incident with its timeline, follow-ups and deliveries.
    pub async fn show(&self, id: &str) -> Result<wire::IncidentDetail, Error> {
        let row = self.row(id).await?;
        let names = self.names().await?;
        let mut timeline: Vec<wire::TimelineEntry> = self
            .p
            .store
            .incident_events(id)
            .await?
            .into_iter()
            .map(|e| wire::TimelineEntry {
                at: e.at,
                kind: e.kind,
                actor: names.of(&e.actor),
                text: e.text,
                link: e.link,
            })
            .collect();
        if let Some(app) = &row.app {
            let until = row
                .resolved_at
                .clone()
                .unwrap_or_else(|| "9999-12-31T23:59:59.999Z".into());
            let prefix = format!("apps/{app}");
            let entries = self
                .p
                .store
                .audit_between(&row.opened_at, &until, TIMELINE_AUDIT * 20)
                .await?;
            timeline.extend(
                entries
                    .into_iter()
                    .filter(|e| {
                        let t = &e.record.target;
                        (t == &prefix || t.starts_with(&format!("{prefix}/")))
                            || e.record.action == Action::BanSet.as_str()
                    })
                    .take(TIMELINE_AUDIT as usize)
                    .map(|e| wire::TimelineEntry {
                        at: e.record.time,
                        kind: "audit".into(),
                        actor: names.of(&e.record.actor),
                        text: format!(
                            "{} {} ({})",
                            e.record.action,
                            e.record.target,
                            e.record.outcome.as_str()
                        ),
                        link: Some(format!("audit/{}", e.seq)),
                    }),
            );
            timeline.sort_by(|a, b| a.at.cmp(&b.at));
        }
        let now = now();
        let rows = self.p.store.follow_ups(Some(id)).await?;
        let actions = rows
            .iter()
            .cloned()
            .map(|a| follow_up_view(a, &names, &now))
            .collect();
        let deliveries = self
            .p
            .store
            .deliveries(id)
            .await?
            .into_iter()
            .map(crate::alerts::delivery_view)
            .collect();
        Ok(wire::IncidentDetail {
            incident: incident_view(row, &rows, &names),
            timeline,
            actions,
            deliveries,
        })
    }

    /// Moves an incident on to `acknowledged`, `mitigated` or `resolved`
    /// (steps may be skipped, never taken back), with an optional note.
    pub async fn step(
        &self,
        acting: Acting<'_>,
        id: &str,
        request: wire::IncidentStep,
    ) -> Result<wire::Incident, Error> {
        let mut row = self.row(id).await?;
        let to = request.state.as_str();
        if !matches!(to, "acknowledged" | "mitigated" | "resolved") {
            return Err(Error::Invalid(format!(
                "{:?} is not a step: acknowledged, mitigated or resolved (reviewed comes with `review`)",
                to.chars().take(32).collect::<String>()
            )));
        }
        if rank(to) <= rank(&row.state) {
            return Err(Error::Conflict(format!(
                "incident {id} is already {}",
                row.state
            )));
        }
        let note = request
            .note
            .as_deref()
            .map(|n| text("note", n, MAX_TEXT, true))
            .transpose()?;
        let at = now();
        let by = acting.caller.user_id.to_string();
        // Reaching a later step settles the earlier ones.
        if row.acked_at.is_none() {
            row.acked_at = Some(at.clone());
        }
        if rank(to) >= rank("mitigated") && row.mitigated_at.is_none() {
            row.mitigated_at = Some(at.clone());
        }
        if to == "resolved" {
            row.resolved_at = Some(at.clone());
        }
        if row.owner.is_none() {
            row.owner = Some(by.clone());
        }
        let from = std::mem::replace(&mut row.state, to.to_owned());
        let mut events = vec![event("state", &by, format!("{from} → {to}"), None)];
        if let Some(note) = note {
            events.push(event("note", &by, note, None));
        }
        let record = self.p.record(
            acting,
            Action::IncidentManage,
            format!("incidents/{id} {to}"),
        );
        self.save(&row, &events, &[], record).await?;
        self.view(row).await
    }

    async fn save(
        &self,
        row: &IncidentRow,
        events: &[IncidentEventRow],
        actions: &[FollowUpRow],
        record: rampart_core::audit::AuditRecord,
    ) -> Result<(), Error> {
        let change = IncidentChange {
            events,
            actions,
            deliveries: &[],
        };
        if let Some(entry) = self
            .p
            .store
            .save_incident(row, change, Some(record))
            .await?
        {
            self.p.checkpoint(entry.seq, entry.hash).await;
        }
        Ok(())
    }

    /// Adds a note to the timeline.
    pub async fn note(
        &self,
        acting: Acting<'_>,
        id: &str,
        request: wire::IncidentNote,
    ) -> Result<wire::Incident, Error> {
        let row = self.row(id).await?;
        let note = text("note", &request.text, MAX_TEXT, true)?;
        let by = acting.caller.user_id.to_string();
        let record = self.p.record(
            acting,
            Action::IncidentManage,
            format!("incidents/{id}/notes"),
        );
        self.save(&row, &[event("note", &by, note, None)], &[], record)
            .await?;
        self.view(row).await
    }

    /// Gives the incident an owner.
    pub async fn assign(
        &self,
        acting: Acting<'_>,
        id: &str,
        request: wire::AssignIncident,
    ) -> Result<wire::Incident, Error> {
        let mut row = self.row(id).await?;
        let owner = user_id(&self.p.store.users().await?, &request.owner)?;
        let names = self.names().await?;
        let by = acting.caller.user_id.to_string();
        let text = format!("owner: {}", names.of(&owner));
        row.owner = Some(owner.clone());
        let record = self.p.record(
            acting,
            Action::IncidentManage,
            format!("incidents/{id}/owner {owner}"),
        );
        self.save(&row, &[event("owner", &by, text, None)], &[], record)
            .await?;
        self.view(row).await
    }

    /// Records the post-mortem of a resolved incident: it becomes
    /// reviewed, and its follow-up actions are tracked until done.
    pub async fn review(
        &self,
        acting: Acting<'_>,
        id: &str,
        request: wire::IncidentReview,
    ) -> Result<wire::Incident, Error> {
        let mut row = self.row(id).await?;
        if row.state != "resolved" {
            return Err(Error::Conflict(format!(
                "incident {id} is {}: only a resolved incident is reviewed",
                row.state
            )));
        }
        let cause = text("cause", &request.cause, MAX_TEXT, true)?;
        let impact = text("impact", &request.impact, MAX_TEXT, true)?;
        if request.actions.len() > MAX_ACTIONS {
            return Err(Error::Invalid(format!(
                "at most {MAX_ACTIONS} follow-up actions"
            )));
        }
        let users = self.p.store.users().await?;
        let mut actions = Vec::new();
        for (n, action) in request.actions.iter().enumerate() {
            let due = Timestamp::parse_user(&action.due)
                .map_err(|e| Error::Invalid(format!("action {}: due: {e}", n + 1)))?;
            actions.push(FollowUpRow {
                incident_id: row.id.clone(),
                number: n as u32 + 1,
                text: text("action", &action.text, MAX_TITLE * 2, false)?,
                owner: user_id(&users, &action.owner)?,
                due: due.to_rfc3339(),
                done_at: None,
                done_by: None,
            });
        }
        let by = acting.caller.user_id.to_string();
        row.state = "reviewed".into();
        row.reviewed_at = Some(now());
        row.cause = Some(cause);
        row.impact = Some(impact);
        let events = [event(
            "review",
            &by,
            format!(
                "post-mortem recorded with {} follow-up action(s)",
                actions.len()
            ),
            None,
        )];
        let record = self.p.record(
            acting,
            Action::IncidentManage,
            format!("incidents/{id} reviewed"),
        );
        self.save(&row, &events, &actions, record).await?;
        self.view(row).await
    }

    /// Follow-up actions of every incident; only those not done with
    /// `open`.
    pub async fn follow_ups(&self, open: bool) -> Result<Vec<wire::FollowUp>, Error> {
        let names = self.names().await?;
        let now = now();
        Ok(self
            .p
            .store
            .follow_ups(None)
            .await?
            .into_iter()
            .filter(|a| !open || a.done_at.is_none())
            .map(|a| follow_up_view(a, &names, &now))
            .collect())
    }

    /// Marks a follow-up action done.
    pub async fn done(
        &self,
        acting: Acting<'_>,
        id: &str,
        number: u32,
    ) -> Result<wire::FollowUp, Error> {
        let row = self.row(id).await?;
        let mut action = self
            .p
            .store
            .follow_ups(Some(id))
            .await?
            .into_iter()
            .find(|a| a.number == number)
            .ok_or_else(|| Error::NotFound(format!("incident {id} has no action {number}")))?;
        if action.done_at.is_some() {
            return Err(Error::Conflict(format!(
                "action {number} of incident {id} is already done"
            )));
        }
        let by = acting.caller.user_id.to_string();
        action.done_at = Some(now());
        action.done_by = Some(by.clone());
        let events = [event(
            "action",
            &by,
            format!("action {number} done: {}", action.text),
            None,
        )];
        let record = self.p.record(
            acting,
            Action::IncidentManage,
            format!("incidents/{id}/actions/{number} done"),
        );
        self.save(&row, &events, std::slice::from_ref(&action), record)
            .await?;
        Ok(follow_up_view(action, &self.names().await?, &now()))
    }

    /// Times to acknowledge and resolve, over incidents opened from `from`
    /// up to `to`.
    pub async fn stats(&self, from: &str, to: &str) -> Result<wire::IncidentStats, Error> {
        let (from, to) = range(from, to)?;
        let rows: Vec<IncidentRow> = self
            .p
            .store
            .incidents(true, 100_000)
            .await?
            .into_iter()
            .filter(|i| i.opened_at >= from && i.opened_at < to)
            .collect();
        let ids: std::collections::HashSet<&str> = rows.iter().map(|i| i.id.as_str()).collect();
        let actions: Vec<FollowUpRow> = self
            .p
            .store
            .follow_ups(None)
            .await?
            .into_iter()
            .filter(|a| ids.contains(a.incident_id.as_str()) && a.done_at.is_none())
            .collect();
        let now = now();
        let ack: Vec<i64> = rows
            .iter()
            .filter_map(|i| between(&i.opened_at, i.acked_at.as_ref()))
            .collect();
        let resolve: Vec<i64> = rows
            .iter()
            .filter_map(|i| between(&i.opened_at, i.resolved_at.as_ref()))
            .collect();
        Ok(wire::IncidentStats {
            opened: rows.len() as u32,
            acknowledged: ack.len() as u32,
            resolved: resolve.len() as u32,
            reviewed: rows.iter().filter(|i| i.reviewed_at.is_some()).count() as u32,
            mean_ack_secs: mean(&ack),
            median_ack_secs: median(ack),
            mean_resolve_secs: mean(&resolve),
            median_resolve_secs: median(resolve),
            open_actions: actions.len() as u32,
            overdue_actions: actions.iter().filter(|a| a.due < now).count() as u32,
            from,
            to,
        })
    }
}

/// A period a person typed, as stored times: `from` before `to`.
pub(crate) fn range(from: &str, to: &str) -> Result<(String, String), Error> {
    let from = Timestamp::parse_user(from).map_err(|e| Error::Invalid(format!("from: {e}")))?;
    let to = Timestamp::parse_user(to).map_err(|e| Error::Invalid(format!("to: {e}")))?;
    if from >= to {
        return Err(Error::Invalid(format!(
            "the period is empty: from {} is not before to {}",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    Ok((from.to_rfc3339(), to.to_rfc3339()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_means_of_waits() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![30, 10, 20]), Some(20));
        assert_eq!(median(vec![40, 10, 20, 30]), Some(25));
        assert_eq!(mean(&[10, 20, 60]), Some(30));
        assert_eq!(mean(&[]), None);
    }

    #[test]
    fn steps_only_move_forward() {
        let order = ["open", "acknowledged", "mitigated", "resolved", "reviewed"];
        for pair in order.windows(2) {
            assert!(rank(pair[0]) < rank(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn typed_text_is_checked() {
        assert!(text("title", "  ", 10, false).is_err());
        assert!(text("title", "a\u{1b}[31m", 10, false).is_err());
        assert!(text("title", "a\nb", 10, false).is_err());
        assert_eq!(text("note", " a\nb ", 10, true).unwrap(), "a\nb");
        assert!(text("note", &"x".repeat(11), 10, true).is_err());
    }

    #[test]
    fn periods_must_be_dates_in_order() {
        assert!(range("2026-12-01", "2026-12-02").is_ok());
        for (from, to) in [
            ("2026-12-02", "2026-12-01"),
            ("2026-12-01", "2026-12-01"),
            ("2026-13-01", "2026-12-01"),
            ("last week", "2026-12-01"),
        ] {
            assert!(range(from, to).is_err(), "{from} {to}");
        }
    }
}

//! Alerts: conditions the platform notices (an app crash-looping or down,
//! a failed deploy, scheduled job, backup or test restore) counted and
//! grouped by condition (`rampart_watch::alert`), recorded, and told to
//! people on every notification channel.
//!
//! Deliveries go through an outbox in the store: each message to each
//! channel is written in the same transaction as the alert it is about,
//! then sent, retried with backoff while the receiver fails or is away
//! (across restarts, for up to three days), and marked delivered once the
//! receiver answers 2xx. A receiver sees the same `Rampart-Delivery` id on
//! every retry of a message, so it can drop repeats. Each new alert is also
//! an audit entry (`alert.raise`).

use std::time::Duration;

use rampart_core::audit::Outcome;
use rampart_core::time::Timestamp;
use rampart_core::{Action, RequestId, wire};
use rampart_store::{AlertRow, ChannelRow, DeliveryRow};
use rampart_watch::alert::{Notice, Severity, sighting};

use crate::{Acting, Error, Platform};

/// How often a firing alert is told again.
const REPEAT_SECS: i64 = 3600;
/// How long a message is retried before it is given up.
const DELIVERY_DEADLINE_SECS: i64 = 3 * 86_400;
/// The waits between attempts.
const FIRST_RETRY_SECS: i64 = 5;
const MAX_RETRY_SECS: i64 = 900;
/// Attempts made in one pass over the outbox.
const ATTEMPTS_PER_PASS: u32 = 32;
/// The actor of what the platform notices by itself.
const WATCH: &str = "watch";

/// A condition the platform noticed.
#[derive(Debug, Clone)]
pub(crate) struct Condition<'a> {
    /// The rule (`crash_loop` …).
    pub rule: &'static str,
    pub severity: Severity,
    /// The app it is about, if any; also what tells conditions of one rule
    /// apart, with `detail`.
    pub app: Option<&'a str>,
    /// More to tell conditions apart (a scheduled job's id).
    pub detail: Option<&'a str>,
    pub summary: String,
}

impl<'a> Condition<'a> {
    /// A condition of one app as a whole.
    pub(crate) fn of_app(
        rule: &'static str,
        severity: Severity,
        app: &'a str,
        summary: String,
    ) -> Self {
        Self {
            rule,
            severity,
            app: Some(app),
            detail: None,
            summary,
        }
    }

    fn key(&self) -> String {
        let mut key = self.rule.to_owned();
        for part in [self.app, self.detail].into_iter().flatten() {
            key.push(':');
            key.push_str(part);
        }
        key
    }
}

/// Alerts and the channels they are told on (`notify`). A handle on the [`Platform`], from
/// [`Platform::alerts`].
#[derive(Debug, Clone, Copy)]
pub struct Alerts<'a> {
    pub(crate) p: &'a Platform,
}

pub(crate) fn alert_view(row: AlertRow) -> wire::Alert {
    wire::Alert {
        id: row.id,
        rule: row.rule,
        severity: row.severity,
        app: row.app,
        summary: row.summary,
        count: row.count,
        first_at: row.first_at,
        last_at: row.last_at,
        state: row.state,
        resolved_at: row.resolved_at,
        acked_by: row.acked_by,
        acked_at: row.acked_at,
    }
}

/// One message per channel of `channels` about `about` (an alert's or an
/// incident's id), due now: `{"delivery", "event", KIND: view}`, with the
/// delivery's own id, which receivers see on every retry.
pub(crate) fn deliveries(
    channels: &[ChannelRow],
    about: &str,
    event: &str,
    kind: &str,
    view: &impl serde::Serialize,
) -> Vec<DeliveryRow> {
    let now = Timestamp::now().to_rfc3339();
    channels
        .iter()
        .map(|channel| {
            let id = format!("dlv_{}", crate::ops::random_token(16));
            let mut body = serde_json::json!({ "delivery": id, "event": event });
            body[kind] = serde_json::to_value(view).unwrap_or_default();
            DeliveryRow {
                id,
                channel_id: channel.id.clone(),
                alert_id: about.to_owned(),
                body: body.to_string(),
                created_at: now.clone(),
                attempts: 0,
                next_attempt_at: now.clone(),
                last_error: None,
                state: "pending".into(),
                done_at: None,
            }
        })
        .collect()
}

pub(crate) fn delivery_view(d: DeliveryRow) -> wire::Delivery {
    wire::Delivery {
        event: event_of(&d.body),
        id: d.id,
        channel: d.channel_id,
        attempts: d.attempts,
        state: d.state,
        next_attempt_at: d.next_attempt_at,
        last_error: d.last_error,
        done_at: d.done_at,
    }
}

fn event_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["event"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn at(secs: i64) -> String {
    Timestamp::from_unix_seconds(secs)
        .unwrap_or_else(Timestamp::now)
        .to_rfc3339()
}

fn secs(text: &str) -> i64 {
    Timestamp::parse(text).map_or(0, Timestamp::unix_seconds)
}

impl Platform {
    pub fn alerts(&self) -> Alerts<'_> {
        Alerts { p: self }
    }

    /// Sends due deliveries every `every` until `stopped`.
    pub async fn deliver_forever(
        self: std::sync::Arc<Self>,
        every: Duration,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            self.incidents().escalate_due().await;
            self.alerts().deliver_due().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
        }
    }
}

impl Alerts<'_> {
    /// A sighting of `condition`: a new alert (told on every channel and
    /// audited), or one more of a firing one (told again after the repeat
    /// interval). Failures are logged: noticing never fails the work that
    /// noticed.
    pub(crate) async fn raise(&self, condition: Condition<'_>) {
        if let Err(error) = self.try_raise(&condition).await {
            tracing::error!(%error, rule = condition.rule, "cannot record an alert");
        }
    }

    async fn try_raise(&self, c: &Condition<'_>) -> Result<(), Error> {
        let key = c.key();
        let now = Timestamp::now().unix_seconds();
        let firing = self.p.store.firing_alert(&key).await?;
        let state = firing.as_ref().map(|row| rampart_watch::alert::Firing {
            count: row.count,
            first_at: secs(&row.first_at),
            last_at: secs(&row.last_at),
            notified_at: secs(&row.notified_at),
        });
        let (next, notice) = sighting(state, now, REPEAT_SECS);
        let row = AlertRow {
            id: firing.as_ref().map_or_else(
                || format!("alert_{}", crate::ops::random_token(12)),
                |r| r.id.clone(),
            ),
            key,
            rule: c.rule.to_owned(),
            severity: c.severity.as_str().to_owned(),
            app: c.app.map(str::to_owned),
            summary: c
                .summary
                .chars()
                .filter(|ch| !ch.is_control())
                .take(500)
                .collect(),
            count: next.count,
            first_at: at(next.first_at),
            last_at: at(next.last_at),
            notified_at: at(next.notified_at),
            state: "firing".into(),
            resolved_at: None,
            acked_by: firing.as_ref().and_then(|r| r.acked_by.clone()),
            acked_at: firing.as_ref().and_then(|r| r.acked_at.clone()),
        };
        let event = match notice {
            Notice::Firing => Some("alert.firing"),
            Notice::Repeat => Some("alert.repeat"),
            Notice::Quiet => None,
        };
        let deliveries = match event {
            Some(event) => self.deliveries_for(&row, event).await?,
            None => Vec::new(),
        };
        self.p.store.save_alert(&row, &deliveries).await?;
        if notice == Notice::Firing {
            tracing::warn!(rule = c.rule, app = ?c.app, summary = %row.summary, "alert");
            self.p
                .append(Platform::record_by(
                    WATCH,
                    Action::AlertRaise,
                    format!(
                        "alerts/{}: {} {}{}",
                        row.id,
                        row.severity,
                        row.rule,
                        c.app.map(|a| format!(" of {a}")).unwrap_or_default()
                    ),
                    Outcome::Ok,
                    &RequestId::generate(),
                ))
                .await;
            self.p.incidents().on_alert(&row).await;
        }
        Ok(())
    }

    /// The condition cleared: its alert, if one fires, is resolved and
    /// people are told.
    pub(crate) async fn resolve(
        &self,
        rule: &'static str,
        app: Option<&str>,
        detail: Option<&str>,
    ) {
        let key = Condition {
            rule,
            severity: Severity::Info,
            app,
            detail,
            summary: String::new(),
        }
        .key();
        let outcome = async {
            let Some(mut row) = self.p.store.firing_alert(&key).await? else {
                return Ok::<_, Error>(());
            };
            row.state = "resolved".into();
            row.resolved_at = Some(Timestamp::now().to_rfc3339());
            let deliveries = self.deliveries_for(&row, "alert.resolved").await?;
            self.p.store.save_alert(&row, &deliveries).await?;
            tracing::info!(rule, key, "alert resolved");
            Ok(())
        };
        if let Err(error) = outcome.await {
            tracing::error!(%error, rule, "cannot resolve an alert");
        }
    }

    /// One delivery per channel of `event` about `alert`, due now.
    pub(crate) async fn deliveries_for(
        &self,
        alert: &AlertRow,
        event: &str,
    ) -> Result<Vec<DeliveryRow>, Error> {
        let view = alert_view(alert.clone());
        let channels = self.p.store.channels().await?;
        Ok(deliveries(&channels, &alert.id, event, "alert", &view))
    }

    /// Alerts, newest first; resolved ones too with `all`.
    pub async fn list(&self, all: bool) -> Result<Vec<wire::Alert>, Error> {
        let rows = self.p.store.alerts(all, 500).await?;
        Ok(rows.into_iter().map(alert_view).collect())
    }

    /// One alert and its deliveries.
    pub async fn show(&self, id: &str) -> Result<wire::AlertDetail, Error> {
        let row = self
            .p
            .store
            .alert(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("there is no alert {id}")))?;
        let deliveries = self
            .p
            .store
            .deliveries(id)
            .await?
            .into_iter()
            .map(delivery_view)
            .collect();
        Ok(wire::AlertDetail {
            alert: alert_view(row),
            deliveries,
        })
    }

    /// Acknowledges an alert: someone is on it. Reminders go on while it
    /// fires.
    pub async fn ack(&self, acting: Acting<'_>, id: &str) -> Result<wire::Alert, Error> {
        let now = Timestamp::now().to_rfc3339();
        let record = self
            .p
            .record(acting, Action::AlertAck, format!("alerts/{id}/acked"));
        let by = acting.caller.user_id.to_string();
        self.p
            .committed(self.p.store.ack_alert(id, &by, &now, record).await)
            .await?;
        Ok(self.show(id).await?.alert)
    }
    /// Attempts the deliveries that are due, each once.
    pub async fn deliver_due(&self) {
        let now = Timestamp::now();
        let due = match self
            .p
            .store
            .due_deliveries(&now.to_rfc3339(), ATTEMPTS_PER_PASS)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot read the delivery outbox");
                return;
            }
        };
        if due.is_empty() {
            return;
        }
        let channels = self.p.store.channels().await.unwrap_or_default();
        let attempts = due.into_iter().map(|delivery| {
            let channel = channels.iter().find(|c| c.id == delivery.channel_id);
            self.attempt(delivery, channel)
        });
        futures::future::join_all(attempts).await;
    }

    async fn attempt(&self, mut delivery: DeliveryRow, channel: Option<&ChannelRow>) {
        let now = Timestamp::now().unix_seconds();
        let sent = match channel {
            None => Err("the channel is gone".to_owned()),
            Some(channel) => self.send(channel, &delivery, now).await,
        };
        delivery.attempts = delivery.attempts.saturating_add(1);
        match sent {
            Ok(()) => {
                delivery.state = "delivered".into();
                delivery.done_at = Some(at(now));
                delivery.last_error = None;
            }
            Err(error) => {
                tracing::warn!(delivery = %delivery.id, %error, "an alert delivery failed; it will be retried");
                delivery.last_error = Some(error.chars().take(300).collect());
                if now - secs(&delivery.created_at) > DELIVERY_DEADLINE_SECS {
                    delivery.state = "failed".into();
                    delivery.done_at = Some(at(now));
                } else {
                    let shift = delivery.attempts.saturating_sub(1).min(20);
                    let wait = (FIRST_RETRY_SECS << shift).min(MAX_RETRY_SECS);
                    delivery.next_attempt_at = at(now + wait);
                }
            }
        }
        if let Err(error) = self.p.store.update_delivery(&delivery).await {
            tracing::error!(%error, delivery = %delivery.id, "cannot record a delivery attempt");
        }
    }
}

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

use std::sync::OnceLock;
use std::time::Duration;

use rampart_core::audit::Outcome;
use rampart_core::time::Timestamp;
use rampart_core::{Action, RequestId, wire};
use rampart_store::{AlertRow, ChannelRow, DeliveryRow};
use rampart_watch::alert::{Notice, Severity, sighting};
use rampart_watch::notify::{DELIVERY_HEADER, SIGNATURE_HEADER, sign};

use crate::{Acting, Error, Platform};

/// How often a firing alert is told again.
const REPEAT_SECS: i64 = 3600;
/// How long a message is retried before it is given up.
const DELIVERY_DEADLINE_SECS: i64 = 3 * 86_400;
/// One attempt's limit, and the waits between attempts.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_RETRY_SECS: i64 = 5;
const MAX_RETRY_SECS: i64 = 900;
/// Attempts made in one pass over the outbox.
const ATTEMPTS_PER_PASS: u32 = 32;
/// Bounds on what a channel is given.
const MAX_URL: usize = 2048;
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 16..=1024;
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

/// Alerts and their channels. A handle on the [`Platform`], from
/// [`Platform::alerts`].
#[derive(Debug, Clone, Copy)]
pub struct Alerts<'a> {
    p: &'a Platform,
}

fn alert_view(row: AlertRow) -> wire::Alert {
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

fn channel_view(row: ChannelRow) -> wire::Channel {
    wire::Channel {
        id: row.id,
        kind: row.kind,
        target: row.target,
        created_by: row.created_by,
        created_at: row.created_at,
    }
}

fn event_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["event"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn channel_aad(id: &str) -> Vec<u8> {
    format!("rampart notify channel {id}").into_bytes()
}

fn at(secs: i64) -> String {
    Timestamp::from_unix_seconds(secs)
        .unwrap_or_else(Timestamp::now)
        .to_rfc3339()
}

fn secs(text: &str) -> i64 {
    Timestamp::parse(text).map_or(0, Timestamp::unix_seconds)
}

/// Checks a webhook URL: `https://`, or `http://` to this machine's
/// loopback only; no credentials in it (they would be shown and logged).
fn check_url(text: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::Invalid(format!("the webhook URL {text:?} {why}"));
    if text.len() > MAX_URL || text.chars().any(char::is_control) {
        return Err(bad(&format!(
            "is longer than {MAX_URL} bytes or holds control characters"
        )));
    }
    let url = reqwest::Url::parse(text).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "holds credentials; put the secret in --secret-file instead",
        ));
    }
    let host = url.host_str().ok_or_else(|| bad("names no host"))?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(bad("must use https (http only to this machine's loopback)")),
        _ => Err(bad("must be https://")),
    }
}

/// The client deliveries are sent with: the system's trusted roots, no
/// redirects, a limit per attempt.
fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("rampart-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
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
    async fn deliveries_for(
        &self,
        alert: &AlertRow,
        event: &str,
    ) -> Result<Vec<DeliveryRow>, Error> {
        let now = Timestamp::now().to_rfc3339();
        let view = alert_view(alert.clone());
        Ok(self
            .p
            .store
            .channels()
            .await?
            .into_iter()
            .map(|channel| {
                let id = format!("dlv_{}", crate::ops::random_token(16));
                let body = serde_json::json!({
                    "delivery": id,
                    "event": event,
                    "alert": view,
                });
                DeliveryRow {
                    id,
                    channel_id: channel.id,
                    alert_id: alert.id.clone(),
                    body: body.to_string(),
                    created_at: now.clone(),
                    attempts: 0,
                    next_attempt_at: now.clone(),
                    last_error: None,
                    state: "pending".into(),
                    done_at: None,
                }
            })
            .collect())
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
            .map(|d| wire::Delivery {
                event: event_of(&d.body),
                id: d.id,
                channel: d.channel_id,
                attempts: d.attempts,
                state: d.state,
                next_attempt_at: d.next_attempt_at,
                last_error: d.last_error,
                done_at: d.done_at,
            })
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

    pub async fn channels(&self) -> Result<Vec<wire::Channel>, Error> {
        Ok(self
            .p
            .store
            .channels()
            .await?
            .into_iter()
            .map(channel_view)
            .collect())
    }

    /// Adds a channel; its secret is sealed and never shown again.
    pub async fn add_channel(
        &self,
        acting: Acting<'_>,
        request: wire::AddChannel,
    ) -> Result<wire::Channel, Error> {
        if request.kind != "webhook" {
            return Err(Error::Invalid(format!(
                "unknown channel kind {:?}; webhook is the one there is",
                request.kind
            )));
        }
        check_url(&request.target)?;
        let secret = request.secret.trim_end_matches(['\r', '\n']);
        if !SECRET_BYTES.contains(&secret.len()) {
            return Err(Error::Invalid(format!(
                "a webhook secret is {} to {} bytes",
                SECRET_BYTES.start(),
                SECRET_BYTES.end()
            )));
        }
        let id = format!("ch_{}", crate::ops::random_token(10));
        let row = ChannelRow {
            secret: self.p.key.seal(&channel_aad(&id), secret.as_bytes()),
            id,
            kind: request.kind,
            target: request.target,
            created_by: acting.caller.user_id.to_string(),
            created_at: Timestamp::now().to_rfc3339(),
        };
        let record = self.p.record(
            acting,
            Action::NotifySet,
            format!("notify/{}: webhook {}", row.id, row.target),
        );
        self.p
            .committed(self.p.store.add_channel(&row, record).await)
            .await?;
        Ok(channel_view(row))
    }

    /// Removes a channel and what it still had to deliver.
    pub async fn remove_channel(&self, acting: Acting<'_>, id: &str) -> Result<(), Error> {
        let record = self
            .p
            .record(acting, Action::NotifySet, format!("notify/{id}/removed"));
        self.p
            .committed(self.p.store.remove_channel(id, record).await)
            .await
    }

    /// Sends a test alert to every channel, through the outbox like any
    /// other; it is resolved at once.
    pub async fn test(&self, acting: Acting<'_>) -> Result<wire::Alert, Error> {
        let now = Timestamp::now().to_rfc3339();
        let row = AlertRow {
            id: format!("alert_{}", crate::ops::random_token(12)),
            key: format!("test:{}", crate::ops::random_token(8)),
            rule: "test".into(),
            severity: Severity::Info.as_str().into(),
            app: None,
            summary: format!("a test alert sent by {}", acting.caller.user_id),
            count: 1,
            first_at: now.clone(),
            last_at: now.clone(),
            notified_at: now.clone(),
            state: "resolved".into(),
            resolved_at: Some(now),
            acked_by: None,
            acked_at: None,
        };
        let deliveries = self.deliveries_for(&row, "alert.test").await?;
        if deliveries.is_empty() {
            return Err(Error::Invalid(
                "there is no channel to test; add one with `rampart notify add`".into(),
            ));
        }
        self.p
            .append(
                self.p
                    .record(acting, Action::NotifySet, format!("notify/test/{}", row.id)),
            )
            .await;
        self.p.store.save_alert(&row, &deliveries).await?;
        Ok(alert_view(row))
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

    async fn send(
        &self,
        channel: &ChannelRow,
        delivery: &DeliveryRow,
        now: i64,
    ) -> Result<(), String> {
        let secret = self
            .p
            .key
            .open(&channel_aad(&channel.id), &channel.secret)
            .map_err(|_| "the channel's secret cannot be opened".to_owned())?;
        let response = http()
            .post(&channel.target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                sign(&secret, now, delivery.body.as_bytes()),
            )
            .header(DELIVERY_HEADER, &delivery.id)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                text
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

/// A filesystem this full raises `disk_full`; the alert resolves once it
/// is back under [`DISK_CLEAR`] (the gap keeps a filesystem hovering at the
/// line from flapping).
const DISK_FULL: f64 = 0.90;
const DISK_CLEAR: f64 = 0.85;
/// How often the audit chain is verified end to end.
const AUDIT_VERIFY_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Whether a filesystem `used` full (0 to 1) is, or stays, too full for
/// an alert that is `firing` or not.
fn too_full(used: f64, firing: bool) -> bool {
    if firing {
        used >= DISK_CLEAR
    } else {
        used >= DISK_FULL
    }
}

/// The fraction of the filesystem holding `path` that is in use, as an
/// unprivileged user sees it.
fn used_fraction(path: &std::path::Path) -> Option<f64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    if stat.f_blocks == 0 {
        return None;
    }
    Some(1.0 - stat.f_bavail as f64 / stat.f_blocks as f64)
}

impl Platform {
    /// Checks, every `every` until `stopped`, what no request would notice:
    /// how full the data directory's and a local backup repository's
    /// filesystems are, and (daily) the audit chain end to end.
    pub async fn check_forever(
        self: std::sync::Arc<Self>,
        every: Duration,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut verified: Option<std::time::Instant> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
            self.check_disks().await;
            if verified.is_none_or(|at| at.elapsed() >= AUDIT_VERIFY_EVERY) {
                verified = Some(std::time::Instant::now());
                self.check_audit_chain().await;
            }
        }
    }

    async fn check_disks(&self) {
        let mut places = vec![("data directory", self.dir.root().to_owned())];
        if let Some(backup) = &self.backup
            && !backup.repository.starts_with("s3://")
        {
            places.push(("backup repository", backup.repository.clone().into()));
        }
        for (what, path) in places {
            let Some(used) = used_fraction(&path) else {
                continue;
            };
            let key_detail = Some(what);
            let firing = self
                .store
                .firing_alert(&format!("disk_full:{what}"))
                .await
                .ok()
                .flatten()
                .is_some();
            if too_full(used, firing) {
                self.alerts()
                    .raise(Condition {
                        rule: "disk_full",
                        severity: Severity::Critical,
                        app: None,
                        detail: key_detail,
                        summary: format!(
                            "the filesystem of the {what} ({}) is {:.0}% full",
                            path.display(),
                            used * 100.0
                        ),
                    })
                    .await;
            } else if firing {
                self.alerts().resolve("disk_full", None, key_detail).await;
            }
        }
    }

    async fn check_audit_chain(&self) {
        match self.verify_audit().await {
            Ok(report) if report.ok => self.alerts().resolve("audit_broken", None, None).await,
            Ok(report) => {
                self.alerts()
                    .raise(Condition {
                        rule: "audit_broken",
                        severity: Severity::Critical,
                        app: None,
                        detail: None,
                        summary: format!(
                            "the audit chain is broken at entry {}: {}",
                            report.first_bad.unwrap_or(0),
                            report.problem.unwrap_or_default()
                        ),
                    })
                    .await;
            }
            Err(error) => tracing::error!(%error, "cannot verify the audit chain"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_near_the_line_does_not_flap() {
        assert!(!too_full(0.89, false));
        assert!(too_full(0.90, false));
        // Firing: it stays so until well under the line.
        assert!(too_full(0.87, true));
        assert!(!too_full(0.84, true));
        assert!(used_fraction(std::path::Path::new("/")).is_some_and(|u| (0.0..=1.0).contains(&u)));
        assert_eq!(used_fraction(std::path::Path::new("/no/such/place")), None);
    }

    #[test]
    fn webhook_urls_are_https_or_loopback_http_without_credentials() {
        for ok in [
            "https://hooks.example.com/rampart",
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/hook",
            "http://localhost/hook",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/hook",
            "http://10.0.0.1/hook",
            "ftp://example.com/x",
            "https://user:pw@example.com/",
            "https://:pw@example.com/",
            "not a url",
            "https://example.com/\n",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://example.com/{}", "a".repeat(MAX_URL))).is_err());
    }
}

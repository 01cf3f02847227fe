//! Security reports: every served host's security.txt (made from
//! `[security_txt]` and each app's own contact and policy, handed to the
//! edge whenever routes change and on every check, so `Expires` is
//! renewed daily), the public intake its `Contact` points at (the edge
//! takes the request; reports are stored here as received, audited, and
//! raise the `security_report` alert), and their triage.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use rampart_core::audit::Outcome;
use rampart_core::security_txt;
use rampart_core::time::Timestamp;
use rampart_core::{Action, RequestId, wire};
use rampart_store::{AppRow, ReportRow};
use rampart_watch::alert::Severity;

use crate::alerts::Condition;
use crate::{Acting, Error, Platform};

/// Reports one client may send at once, and how soon one more.
const PER_CLIENT: (u32, Duration) = (3, Duration::from_secs(600));
/// Reports all clients together may send at once, and how soon one more.
const OVERALL: (u32, Duration) = (30, Duration::from_secs(30));
const MAX_TITLE: usize = 200;
const MAX_CONTACT: usize = 300;

/// Printable text: control characters dropped, at most `max` characters.
fn plain(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect()
}

/// The summary and contact a report gives: form fields, JSON fields, or
/// the first line of plain text.
fn summary(content_type: &str, body: &[u8]) -> (String, String) {
    let kind = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let pick = |fields: &HashMap<String, String>, names: &[&str]| {
        names
            .iter()
            .find_map(|n| fields.get(*n).filter(|v| !v.trim().is_empty()).cloned())
            .unwrap_or_default()
    };
    let fields: Option<HashMap<String, String>> = match kind.as_str() {
        "application/x-www-form-urlencoded" => Some(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ),
        "application/json" => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.as_object().map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                        .collect()
                })
            }),
        _ => None,
    };
    let (title, contact) = match fields {
        Some(fields) => (
            pick(&fields, &["title", "summary", "subject"]),
            pick(&fields, &["contact", "email"]),
        ),
        None => (String::new(), String::new()),
    };
    let title = if title.trim().is_empty() {
        let text = String::from_utf8_lossy(body);
        text.lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_owned()
    } else {
        title
    };
    let title = plain(&title, MAX_TITLE);
    (
        if title.is_empty() {
            "(no summary)".into()
        } else {
            title
        },
        plain(&contact, MAX_CONTACT),
    )
}

/// The app serving `host`, if any.
fn app_of<'a>(apps: &'a [AppRow], host: &str) -> Option<&'a AppRow> {
    apps.iter().find(|a| {
        a.name.default_domain().as_str() == host || a.domains.iter().any(|d| d.as_str() == host)
    })
}

fn report_view(
    row: &ReportRow,
    apps: &[AppRow],
    names: &HashMap<String, String>,
) -> wire::SecurityReport {
    wire::SecurityReport {
        id: row.id.clone(),
        received_at: row.received_at.clone(),
        app: app_of(apps, &row.host).map(|a| a.name.to_string()),
        host: row.host.clone(),
        client: row.client.clone(),
        title: row.title.clone(),
        contact: row.contact.clone(),
        size: row.body.len() as u64,
        state: row.state.clone(),
        severity: row.severity.clone(),
        incident: row.incident_id.clone(),
        triaged_by: row
            .triaged_by
            .as_ref()
            .map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone())),
        triaged_at: row.triaged_at.clone(),
        closed_at: row.closed_at.clone(),
        resolution: row.resolution.clone(),
    }
}

impl Platform {
    /// Every served host's security.txt, made now.
    pub(crate) async fn security_texts(&self) -> Result<HashMap<String, String>, Error> {
        let config = &self.security_txt;
        if !config.enabled {
            return Ok(HashMap::new());
        }
        let now = Timestamp::now();
        let mut texts = HashMap::new();
        for app in self.store.apps().await? {
            let contact = Some(app.settings.security_contact.as_str()).filter(|c| !c.is_empty());
            let policy = Some(app.settings.security_policy.as_str()).filter(|p| !p.is_empty());
            let default = app.name.default_domain();
            for host in std::iter::once(&default).chain(&app.domains) {
                let host = host.as_str().to_ascii_lowercase();
                if texts.contains_key(&host) {
                    continue;
                }
                let text = security_txt::render(config, &host, contact, policy, now)
                    .map_err(Error::Invalid)?;
                texts.insert(host, text);
            }
        }
        Ok(texts)
    }

    /// Hands the edge every host's security.txt, made now.
    pub(crate) async fn publish_security_txt(&self) {
        let Ok(engine) = self.engine() else { return };
        match self.security_texts().await {
            Ok(texts) => engine.edge.set_security_txt(texts),
            Err(error) => tracing::error!(%error, "cannot make the security.txt files"),
        }
    }

    /// The security.txt of the API's own address.
    pub fn api_security_txt(&self, host: &str) -> Option<String> {
        let config = &self.security_txt;
        if !config.enabled {
            return None;
        }
        // The API has no intake of its own: its reports go to the contacts.
        let config = rampart_core::security_txt::SecurityTxtConfig {
            intake: false,
            ..config.clone()
        };
        if config.contact.is_empty() {
            return None;
        }
        security_txt::render(&config, host, None, None, Timestamp::now()).ok()
    }

    /// Lets the edge take security reports, stored through this platform.
    pub fn attach_report_intake(self: &Arc<Self>) {
        let Ok(engine) = self.engine() else { return };
        if !self.security_txt.enabled || !self.security_txt.intake {
            return;
        }
        let platform: Weak<Platform> = Arc::downgrade(self);
        let sink: rampart_edge::proxy::ReportSink = Arc::new(move |report| {
            let platform = platform.clone();
            Box::pin(async move {
                let platform = platform.upgrade().ok_or("the platform is stopping")?;
                platform
                    .receive_report(report)
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        engine.edge.set_report_intake(sink, PER_CLIENT, OVERALL);
    }

    /// Stores a report from the intake; its tracking id.
    async fn receive_report(
        &self,
        report: rampart_edge::proxy::SubmittedReport,
    ) -> Result<String, Error> {
        let (title, contact) = summary(&report.content_type, &report.body);
        let row = ReportRow {
            id: format!("rpt_{}", crate::ops::random_token(16)),
            received_at: Timestamp::now().to_rfc3339(),
            host: report.host.clone(),
            client: report.client.to_string(),
            content_type: plain(&report.content_type, 200),
            body: report.body.to_vec(),
            title,
            contact,
            state: "new".into(),
            severity: None,
            incident_id: None,
            triaged_by: None,
            triaged_at: None,
            closed_by: None,
            closed_at: None,
            resolution: None,
        };
        self.store.add_report(&row).await?;
        self.append(Platform::record_by(
            "public",
            Action::ReportSubmit,
            format!(
                "reports/{} to {} ({} bytes)",
                row.id,
                row.host,
                row.body.len()
            ),
            Outcome::Ok,
            &RequestId::generate(),
        ))
        .await;
        let apps = self.store.apps().await.unwrap_or_default();
        let app = app_of(&apps, &row.host).map(|a| a.name.to_string());
        // One alert per host while it has reports nobody triaged: a crowd
        // of senders is one notification (and hourly reminders), not one
        // per report.
        self.alerts()
            .raise(Condition {
                rule: "security_report",
                severity: Severity::Warning,
                app: app.as_deref(),
                detail: Some(&row.host),
                summary: format!(
                    "security reports arrived at {}; the latest: {} (rampart reports show {})",
                    row.host, row.title, row.id
                ),
            })
            .await;
        Ok(row.id)
    }

    /// Resolves `host`'s report alert once none of its reports waits for
    /// triage.
    async fn settle_report_alert(&self, host: &str) -> Result<(), Error> {
        let waiting = self
            .store
            .reports(false, 100_000)
            .await?
            .iter()
            .any(|r| r.host == host && r.state == "new");
        if !waiting {
            let apps = self.store.apps().await?;
            let app = app_of(&apps, host).map(|a| a.name.to_string());
            self.alerts()
                .resolve("security_report", app.as_deref(), Some(host))
                .await;
        }
        Ok(())
    }

    async fn report_row(&self, id: &str) -> Result<ReportRow, Error> {
        self.store
            .report(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("there is no report {id}")))
    }

    /// Reports, newest first; closed ones too with `all`.
    pub async fn reports(&self, all: bool) -> Result<Vec<wire::SecurityReport>, Error> {
        let apps = self.store.apps().await?;
        let names = self.user_names().await?;
        Ok(self
            .store
            .reports(all, 1000)
            .await?
            .iter()
            .map(|r| report_view(r, &apps, &names))
            .collect())
    }

    /// One report with what it said.
    pub async fn report(&self, id: &str) -> Result<wire::SecurityReportDetail, Error> {
        let row = self.report_row(id).await?;
        let apps = self.store.apps().await?;
        let names = self.user_names().await?;
        Ok(wire::SecurityReportDetail {
            report: report_view(&row, &apps, &names),
            content_type: row.content_type.clone(),
            body: String::from_utf8_lossy(&row.body).into_owned(),
            body_base64: base64::engine::general_purpose::STANDARD.encode(&row.body),
        })
    }

    /// Triages a report: its severity, and the incident it belongs to (an
    /// existing one, or one opened for it).
    pub async fn triage_report(
        &self,
        acting: Acting<'_>,
        id: &str,
        request: wire::TriageReport,
    ) -> Result<wire::SecurityReport, Error> {
        let mut row = self.report_row(id).await?;
        if row.state == "closed" {
            return Err(Error::Conflict(format!("report {id} is closed")));
        }
        if !["low", "medium", "high", "critical"].contains(&request.severity.as_str()) {
            return Err(Error::Invalid(format!(
                "{:?} is not a severity: low, medium, high or critical",
                request.severity.chars().take(32).collect::<String>()
            )));
        }
        let incident = match (&request.incident, request.open_incident) {
            (Some(_), true) => {
                return Err(Error::Invalid(
                    "link an incident or open one, not both".into(),
                ));
            }
            (Some(incident), false) => {
                self.store
                    .incident(incident)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("there is no incident {incident}")))?;
                Some(incident.clone())
            }
            (None, true) => {
                let apps = self.store.apps().await?;
                let opened = self
                    .incidents()
                    .open(
                        acting,
                        wire::OpenIncident {
                            title: format!("security report {}: {}", row.id, row.title)
                                .chars()
                                .take(200)
                                .collect(),
                            severity: request.severity.clone(),
                            app: app_of(&apps, &row.host).map(|a| a.name.to_string()),
                            note: Some(format!("opened from security report {}", row.id)),
                        },
                    )
                    .await?;
                Some(opened.id)
            }
            (None, false) => row.incident_id.clone(),
        };
        row.state = "triaged".into();
        row.severity = Some(request.severity);
        row.incident_id = incident;
        row.triaged_by = Some(acting.caller.user_id.to_string());
        row.triaged_at = Some(Timestamp::now().to_rfc3339());
        let record = self.record(
            acting,
            Action::ReportTriage,
            format!(
                "reports/{id} triaged {}{}",
                row.severity.as_deref().unwrap_or(""),
                row.incident_id
                    .as_deref()
                    .map(|i| format!(" incident {i}"))
                    .unwrap_or_default()
            ),
        );
        self.committed(self.store.update_report(&row, record).await)
            .await?;
        self.settle_report_alert(&row.host).await?;
        let apps = self.store.apps().await?;
        Ok(report_view(&row, &apps, &self.user_names().await?))
    }

    /// Closes a report with what came of it.
    pub async fn close_report(
        &self,
        acting: Acting<'_>,
        id: &str,
        request: wire::CloseReport,
    ) -> Result<wire::SecurityReport, Error> {
        let mut row = self.report_row(id).await?;
        if row.state == "closed" {
            return Err(Error::Conflict(format!("report {id} is already closed")));
        }
        let resolution = request.resolution.trim();
        if resolution.is_empty()
            || resolution.chars().count() > 2000
            || resolution.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(Error::Invalid(
                "the resolution must say what came of the report, in at most 2000 characters without control characters".into(),
            ));
        }
        row.state = "closed".into();
        row.closed_by = Some(acting.caller.user_id.to_string());
        row.closed_at = Some(Timestamp::now().to_rfc3339());
        row.resolution = Some(resolution.to_owned());
        let record = self.record(acting, Action::ReportTriage, format!("reports/{id} closed"));
        self.committed(self.store.update_report(&row, record).await)
            .await?;
        self.settle_report_alert(&row.host).await?;
        let apps = self.store.apps().await?;
        Ok(report_view(&row, &apps, &self.user_names().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_come_from_forms_json_or_the_first_line() {
        let (title, contact) = summary(
            "application/x-www-form-urlencoded; charset=utf-8",
            b"contact=me%40example.com&title=XSS+in+search&details=...",
        );
        assert_eq!(
            (title.as_str(), contact.as_str()),
            ("XSS in search", "me@example.com")
        );
        let (title, _) = summary(
            "application/json",
            br#"{"summary": "open redirect", "contact": "x"}"#,
        );
        assert_eq!(title, "open redirect");
        let (title, contact) = summary("text/plain", b"\n\n  SQL injection\x1b[2J here\nmore");
        assert_eq!(
            (title.as_str(), contact.as_str()),
            ("SQL injection [2J here", "")
        );
        let (title, _) = summary("application/octet-stream", &[0xff, 0xfe, 0x00]);
        assert!(!title.contains('\0'));
        let (title, _) = summary("text/plain", &"x".repeat(10_000).into_bytes());
        assert_eq!(title.chars().count(), MAX_TITLE);
        assert_eq!(summary("text/plain", b"   ").0, "(no summary)");
    }
}

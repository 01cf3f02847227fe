//! Notification channels: where alerts are told, and how.
//!
//! A webhook gets the delivery's JSON, signed (`rampart_watch::notify`).
//! An email goes through the operator's mail server (`[notify.smtp]`) over
//! STARTTLS, which is required: a server that does not offer it, or whose
//! certificate does not verify, gets nothing, and the delivery is retried
//! like any other failure. Each message's `Message-ID` is its delivery's id,
//! so a mailbox can tell a retry from a new alert.

use std::sync::OnceLock;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rampart_core::config::SmtpConfig;
use rampart_core::time::Timestamp;
use rampart_core::{Action, wire};
use rampart_store::{AlertRow, ChannelRow, DeliveryRow};
use rampart_watch::alert::Severity;
use rampart_watch::notify::{DELIVERY_HEADER, SIGNATURE_HEADER, sign};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::alerts::{Alerts, alert_view};
use crate::{Acting, Error, StartError};

const WEBHOOK: &str = "webhook";
const EMAIL: &str = "email";
/// One attempt's limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds on what a channel is given.
const MAX_URL: usize = 2048;
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 16..=1024;
/// The most of the mail server's password file read.
const MAX_PASSWORD_FILE: u64 = 4096;

/// An error and its causes on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(crate) fn channel_view(row: ChannelRow) -> wire::Channel {
    wire::Channel {
        id: row.id,
        kind: row.kind,
        target: row.target,
        created_by: row.created_by,
        created_at: row.created_at,
    }
}

pub(crate) fn channel_aad(id: &str) -> Vec<u8> {
    format!("rampart notify channel {id}").into_bytes()
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

/// Checks an email channel's address: one mailbox, no display name.
fn check_address(text: &str) -> Result<(), Error> {
    if text.len() > 254 || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::Invalid(format!(
            "{text:?} is not an email address such as ops@example.com"
        )));
    }
    text.parse::<lettre::Address>().map(drop).map_err(|e| {
        Error::Invalid(format!(
            "{text:?} is not an email address such as ops@example.com ({e})"
        ))
    })
}

/// The mail server alert emails go through.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// Reads `[notify.smtp]`'s files; a sender that is not an address, a
    /// missing password file or a CA file that is no certificate stops the
    /// start with the reason.
    pub(crate) fn new(config: &SmtpConfig) -> Result<Self, StartError> {
        let bad =
            |what: &str, why: String| StartError::Config(format!("notify.smtp.{what}: {why}"));
        let from: Mailbox = config.from.parse().map_err(|e| {
            bad(
                "from",
                format!("{:?} is not a sender address ({e})", config.from),
            )
        })?;
        let mut tls = TlsParameters::builder(config.host.clone());
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| bad("ca_file", format!("cannot read {}: {e}", path.display())))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .ok()
                .filter(|certs| !certs.is_empty())
                .ok_or_else(|| {
                    bad(
                        "ca_file",
                        format!("{} holds no PEM certificate", path.display()),
                    )
                })?;
            for der in certs {
                let ca = Certificate::from_der(der.to_vec())
                    .map_err(|e| bad("ca_file", format!("{}: {e}", path.display())))?;
                tls = tls.add_root_certificate(ca);
            }
        }
        let tls = tls.build_rustls().map_err(|e| {
            bad(
                "host",
                format!("cannot set up TLS for {}: {e}", config.host),
            )
        })?;
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(Tls::Required(tls))
            .timeout(Some(ATTEMPT_TIMEOUT));
        if let (Some(user), Some(path)) = (&config.username, &config.password_file) {
            transport = transport.credentials(Credentials::new(
                user.clone(),
                read_password(path).map_err(|why| bad("password_file", why))?,
            ));
        }
        Ok(Self {
            transport: transport.build(),
            from,
        })
    }

    /// Sends `delivery` to `to`.
    async fn send(&self, to: &str, delivery: &DeliveryRow) -> Result<(), String> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("{to:?} is not an address: {e}"))?;
        let body: serde_json::Value = serde_json::from_str(&delivery.body)
            .map_err(|e| format!("unreadable delivery: {e}"))?;
        let (subject, text) = email_text(&body);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{}@rampart>", delivery.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| chain(&e))
    }
}

/// The password in `path`, without a trailing newline.
fn read_password(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_PASSWORD_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {} as text: {e}", path.display()))?;
    if text.len() as u64 > MAX_PASSWORD_FILE {
        return Err(format!(
            "{} is larger than {MAX_PASSWORD_FILE} bytes",
            path.display()
        ));
    }
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Keeps what the platform did not write (an app's name is checked, a
/// summary may quote an error) from breaking a mail header or a line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// The subject and plain-text body of an incident email.
fn incident_email_text(body: &serde_json::Value) -> (String, String) {
    let incident = &body["incident"];
    let field = |name: &str| incident[name].as_str().unwrap_or("").to_owned();
    let what = match body["event"].as_str() {
        Some("incident.escalated") => "not acknowledged, escalated",
        _ => "opened",
    };
    let subject = one_line(&format!(
        "[rampart] {} incident {}: {what}",
        field("severity").to_uppercase(),
        field("title"),
    ));
    let mut text = String::new();
    for (label, value) in [
        ("incident", field("id")),
        ("title", field("title")),
        ("severity", field("severity")),
        ("app", field("app")),
        ("state", field("state")),
        ("opened", field("opened_at")),
        ("step", incident["escalation"].to_string()),
        (
            "delivery",
            body["delivery"].as_str().unwrap_or("").to_owned(),
        ),
    ] {
        if !value.is_empty() {
            text.push_str(&format!("{label:>9}: {}\n", one_line(&value)));
        }
    }
    text.push_str(
        "\nrampart incidents show ID tells more; rampart incidents ack ID acknowledges it.\n",
    );
    (subject, text)
}

/// The subject and plain-text body of an alert email.
fn email_text(body: &serde_json::Value) -> (String, String) {
    if body["incident"].is_object() {
        return incident_email_text(body);
    }
    let alert = &body["alert"];
    let field = |name: &str| alert[name].as_str().unwrap_or("").to_owned();
    let event = body["event"].as_str().unwrap_or("alert");
    let state = match event {
        "alert.resolved" => "resolved",
        "alert.repeat" => "still firing",
        "alert.test" => "test",
        _ => "firing",
    };
    let app = field("app");
    let subject = one_line(&format!(
        "[rampart] {} {}{}: {state}",
        field("severity").to_uppercase(),
        field("rule"),
        if app.is_empty() {
            String::new()
        } else {
            format!(" of {app}")
        },
    ));
    let mut text = String::new();
    text.push_str(&one_line(&field("summary")));
    text.push_str("\n\n");
    for (label, value) in [
        ("alert", field("id")),
        ("rule", field("rule")),
        ("severity", field("severity")),
        ("app", app),
        ("state", state.to_owned()),
        ("seen", alert["count"].to_string()),
        ("first", field("first_at")),
        ("last", field("last_at")),
        (
            "delivery",
            body["delivery"].as_str().unwrap_or("").to_owned(),
        ),
    ] {
        if !value.is_empty() {
            text.push_str(&format!("{label:>9}: {}\n", one_line(&value)));
        }
    }
    text.push_str("\nrampart alerts show ID tells more; rampart alerts ack ID acknowledges it.\n");
    (subject, text)
}

impl Alerts<'_> {
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

    /// Adds a channel. A webhook's secret is sealed and never shown
    /// again; an email channel needs `[notify.smtp]`.
    pub async fn add_channel(
        &self,
        acting: Acting<'_>,
        request: wire::AddChannel,
    ) -> Result<wire::Channel, Error> {
        let secret = match request.kind.as_str() {
            WEBHOOK => {
                check_url(&request.target)?;
                let secret = request.secret.trim_end_matches(['\r', '\n']);
                if !SECRET_BYTES.contains(&secret.len()) {
                    return Err(Error::Invalid(format!(
                        "a webhook secret is {} to {} bytes",
                        SECRET_BYTES.start(),
                        SECRET_BYTES.end()
                    )));
                }
                Some(secret.to_owned())
            }
            EMAIL => {
                if self.p.mailer.is_none() {
                    return Err(Error::Invalid(
                        "email channels need a mail server: set [notify.smtp] in rampart.toml"
                            .into(),
                    ));
                }
                check_address(&request.target)?;
                if !request.secret.is_empty() {
                    return Err(Error::Invalid("an email channel takes no secret".into()));
                }
                None
            }
            other => {
                return Err(Error::Invalid(format!(
                    "unknown channel kind {other:?}; use webhook or email"
                )));
            }
        };
        let id = format!("ch_{}", crate::ops::random_token(10));
        let row = ChannelRow {
            secret: self
                .p
                .key
                .seal(&channel_aad(&id), secret.unwrap_or_default().as_bytes()),
            id,
            kind: request.kind,
            target: request.target,
            created_by: acting.caller.user_id.to_string(),
            created_at: Timestamp::now().to_rfc3339(),
        };
        let record = self.p.record(
            acting,
            Action::NotifySet,
            format!("notify/{}: {} {}", row.id, row.kind, row.target),
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
    /// Sends one delivery to its channel; the error says why it failed.
    pub(crate) async fn send(
        &self,
        channel: &ChannelRow,
        delivery: &DeliveryRow,
        now: i64,
    ) -> Result<(), String> {
        match channel.kind.as_str() {
            WEBHOOK => self.post(channel, delivery, now).await,
            EMAIL => match &self.p.mailer {
                Some(mailer) => mailer.send(&channel.target, delivery).await,
                None => Err("no mail server is configured ([notify.smtp])".into()),
            },
            other => Err(format!("unknown channel kind {other:?}")),
        }
    }

    async fn post(
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
            .map_err(|e| chain(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn email_addresses_are_one_plain_mailbox() {
        for ok in ["ops@example.com", "a.b+alerts@mail.example.org"] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ops",
            "ops@",
            "Ops <ops@example.com>",
            "ops@example.com\r\nBcc: x@evil.example",
            "ops@example.com, x@evil.example",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_alert_email_keeps_hostile_text_out_of_its_headers() {
        let body = serde_json::json!({
            "delivery": "dlv_1",
            "event": "alert.firing",
            "alert": {
                "id": "alert_1",
                "rule": "backup_failed",
                "severity": "critical",
                "app": "blog",
                "summary": "blog: backup failed: boom\r\nBcc: x@evil.example",
                "count": 2,
                "first_at": "2026-01-01T00:00:00Z",
                "last_at": "2026-01-01T00:01:00Z",
            },
        });
        let (subject, text) = email_text(&body);
        assert_eq!(subject, "[rampart] CRITICAL backup_failed of blog: firing");
        assert!(
            text.starts_with("blog: backup failed: boom  Bcc: x@evil.example\n"),
            "{text}"
        );
        assert!(text.contains("delivery: dlv_1"), "{text}");
        assert!(text.contains("    seen: 2"), "{text}");
    }

    #[test]
    fn a_bad_smtp_table_stops_the_start_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let base = SmtpConfig {
            host: "127.0.0.1".into(),
            port: 587,
            from: "alerts@example.com".into(),
            username: None,
            password_file: None,
            ca_file: None,
        };
        assert!(Mailer::new(&base).is_ok());
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let huge = dir.path().join("huge");
        std::fs::write(&huge, vec![b'a'; 5000]).unwrap();
        for (config, key) in [
            (
                SmtpConfig {
                    from: "Alerts <nobody>".into(),
                    ..base.clone()
                },
                "notify.smtp.from",
            ),
            (
                SmtpConfig {
                    ca_file: Some(junk),
                    ..base.clone()
                },
                "notify.smtp.ca_file",
            ),
            (
                SmtpConfig {
                    ca_file: Some(dir.path().join("missing")),
                    ..base.clone()
                },
                "notify.smtp.ca_file",
            ),
            (
                SmtpConfig {
                    username: Some("u".into()),
                    password_file: Some(dir.path().join("missing")),
                    ..base.clone()
                },
                "notify.smtp.password_file",
            ),
            (
                SmtpConfig {
                    username: Some("u".into()),
                    password_file: Some(huge),
                    ..base.clone()
                },
                "notify.smtp.password_file",
            ),
        ] {
            let error = Mailer::new(&config).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
    }
}

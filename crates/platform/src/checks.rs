//! Checks of what no request would notice: how full the data directory's
//! and the backup repository's filesystems are, whether certificates are
//! being renewed, and (daily) the audit chain end to end and every live
//! release against the advisories. Each raises an
//! alert while its condition holds and resolves it when it clears.

use std::time::Duration;

use rampart_watch::alert::Severity;

use crate::Platform;
use crate::alerts::Condition;

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
            self.check_certificates().await;
            // Renews every host's Expires and takes in changed contacts.
            self.publish_security_txt().await;
            self.refresh_figures().await;
            if verified.is_none_or(|at| at.elapsed() >= AUDIT_VERIFY_EVERY) {
                verified = Some(std::time::Instant::now());
                self.check_audit_chain().await;
                self.check_vulnerabilities().await;
                self.privacy_daily().await;
            }
        }
    }

    /// A certificate that cannot be had or renewed: an ACME site still on
    /// its stand-in, or one past its renewal point, while the CA refuses
    /// or cannot be reached; and any certificate with under a week left.
    async fn check_certificates(&self) {
        let Ok(engine) = self.engine() else { return };
        let Ok(apps) = self.store.apps().await else {
            return;
        };
        let now = time::OffsetDateTime::now_utc();
        let certs = engine.edge.certificates();
        // An alert about a site that is no longer served is over.
        for alert in self.store.alerts(false, 1000).await.unwrap_or_default() {
            let site = alert.key.rsplit(':').next().unwrap_or("");
            if alert.rule == "certificate" && !certs.iter().any(|c| c.site == site) {
                let app = alert.app.as_deref();
                self.alerts().resolve("certificate", app, Some(site)).await;
            }
        }
        for cert in certs {
            let Some(app) = apps.iter().find(|a| {
                a.name.default_domain().as_str() == cert.site
                    || a.domains.iter().any(|d| d.as_str() == cert.site)
            }) else {
                continue;
            };
            let app = app.name.as_str();
            let site = Some(cert.site.as_str());
            match certificate_trouble(&cert, now) {
                Some((severity, summary)) => {
                    self.alerts()
                        .raise(Condition {
                            rule: "certificate",
                            severity,
                            app: Some(app),
                            detail: site,
                            summary: format!("{app}: {summary}"),
                        })
                        .await;
                }
                None => self.alerts().resolve("certificate", Some(app), site).await,
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

    /// Every live release matched against the advisories (new advisories
    /// and expired acceptances show here), and the data's age: imported
    /// data gone stale raises `advisories_stale`. (Before any import,
    /// `rampart vulns` says there is none; the data is the operator's to
    /// bring.)
    async fn check_vulnerabilities(&self) {
        if let Err(error) = self.vulns().rematch().await {
            tracing::error!(%error, "cannot match releases against the advisories");
        }
        match self.vulns().status().await {
            Ok(status) if status.stale && status.advisories > 0 => {
                let summary = format!(
                    "the vulnerability data is {} days old (newest record {}): advisories published since are missing; import fresh data",
                    status.age_days.unwrap_or_default(),
                    status.newest_record.as_deref().unwrap_or("?")
                );
                self.alerts()
                    .raise(Condition {
                        rule: "advisories_stale",
                        severity: Severity::Warning,
                        app: None,
                        detail: None,
                        summary,
                    })
                    .await;
            }
            Ok(_) => self.alerts().resolve("advisories_stale", None, None).await,
            Err(error) => tracing::error!(%error, "cannot read the vulnerability data's age"),
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

/// Certificates with less than this left raise a critical alert, however
/// they are obtained.
const CERT_CRITICAL_DAYS: i64 = 7;

/// What is wrong with a site's certificate, if anything.
pub(crate) fn certificate_trouble(
    cert: &rampart_edge::CertificateStatus,
    now: time::OffsetDateTime,
) -> Option<(Severity, String)> {
    let days = (cert.not_after - now).whole_days();
    let site = &cert.site;
    let reason = cert.failing.as_deref().unwrap_or("");
    if days < CERT_CRITICAL_DAYS {
        let why = if reason.is_empty() {
            String::new()
        } else {
            format!("; renewing it fails: {reason}")
        };
        return Some((
            Severity::Critical,
            format!("the certificate for {site} expires in {days} days{why}"),
        ));
    }
    let failing = cert.failing.is_some();
    if failing && cert.wanted == "acme" && cert.served != "acme" {
        return Some((
            Severity::Warning,
            format!("{site} has no ACME certificate yet and is served a stand-in: {reason}"),
        ));
    }
    if failing && cert.renewal_due {
        return Some((
            Severity::Warning,
            format!(
                "the certificate for {site} is due for renewal and expires in {days} days; renewing it fails: {reason}"
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_alert_when_renewal_fails_or_time_runs_out() {
        let now = time::OffsetDateTime::now_utc();
        let cert = |wanted, served, days: i64, due, failing: Option<&str>| {
            rampart_edge::CertificateStatus {
                site: "shop.example.com".into(),
                wanted,
                served,
                not_after: now + time::Duration::days(days) + time::Duration::hours(1),
                renewal_due: due,
                failing: failing.map(str::to_owned),
            }
        };
        let trouble = |c| certificate_trouble(&c, now);
        // Healthy, or renewing without a failure yet.
        assert_eq!(trouble(cert("acme", "acme", 80, false, None)), None);
        assert_eq!(trouble(cert("acme", "acme", 29, true, None)), None);
        assert_eq!(trouble(cert("acme", "internal", 89, false, None)), None);
        assert_eq!(
            trouble(cert("internal", "internal", 89, false, Some("x"))),
            None
        );
        // Renewal failing inside the window.
        let (severity, text) =
            trouble(cert("acme", "acme", 29, true, Some("connection refused"))).unwrap();
        assert_eq!(severity, Severity::Warning);
        assert!(
            text.contains("expires in 29 days") && text.contains("connection refused"),
            "{text}"
        );
        // No certificate at all from the CA.
        let (severity, text) =
            trouble(cert("acme", "internal", 89, false, Some("refused"))).unwrap();
        assert_eq!(severity, Severity::Warning);
        assert!(text.contains("stand-in"), "{text}");
        // Under a week: critical, whatever the source.
        let (severity, _) = trouble(cert("files", "files", 6, false, None)).unwrap();
        assert_eq!(severity, Severity::Critical);
    }

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
}

//! `rampart doctor`: the platform audits its own configuration, one line
//! per control, pass / warn / fail. It runs daily by itself; a failed
//! control raises the `doctor` alert, which resolves once every control
//! passes or only warns. Each run is kept, as evidence that the control ran.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rampart_core::time::Timestamp;
use rampart_core::wire::{self, DoctorCheck};
use rampart_core::{Role, TokenId};
use rampart_store::{DoctorRunRow, TokenKind, UserStatus};
use rampart_watch::alert::Severity;

use crate::alerts::Condition;
use crate::{Error, Platform};

/// A token not used for this long is one nobody needs.
const UNUSED_TOKEN_DAYS: i64 = 90;
/// A scheduled backup this late (in schedule periods) is overdue.
const OVERDUE_PERIODS: i64 = 2;
/// Names listed in one line before "and N more".
const NAMES_SHOWN: usize = 8;

fn check(control: &str, status: &str, detail: impl Into<String>) -> DoctorCheck {
    DoctorCheck {
        control: control.to_owned(),
        status: status.to_owned(),
        detail: detail.into(),
    }
}

/// `pass` with `ok` when `offenders` is empty, else `status` with `what`
/// and the offenders named.
fn verdict(control: &str, offenders: &[String], status: &str, what: &str, ok: &str) -> DoctorCheck {
    if offenders.is_empty() {
        return check(control, "pass", ok);
    }
    let mut names = offenders
        .iter()
        .take(NAMES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if offenders.len() > NAMES_SHOWN {
        names.push_str(&format!(" and {} more", offenders.len() - NAMES_SHOWN));
    }
    check(control, status, format!("{what}: {names}"))
}

/// Whether `mode` lets anyone but the owner in.
fn shared(mode: u32) -> bool {
    mode & 0o077 != 0
}

fn secs(text: &str) -> i64 {
    Timestamp::parse(text).map_or(0, Timestamp::unix_seconds)
}

impl Platform {
    /// Audits the platform's configuration; `actor` ran it (a user id, or
    /// `system`). The run is kept.
    pub async fn doctor(&self, actor: &str) -> Result<wire::DoctorReport, Error> {
        let now = Timestamp::now();
        let mut checks = Vec::new();
        checks.push(self.check_mfa().await?);
        checks.extend(self.check_tokens(now).await?);
        checks.extend(self.check_apps().await?);
        checks.extend(self.check_backups(now).await?);
        checks.push(self.check_certificates_expiry());
        checks.extend(self.check_advisories().await?);
        checks.push(self.check_files());
        let chain = self.verify_audit().await?;
        checks.push(if chain.ok {
            check(
                "audit.chain",
                "pass",
                format!("{} entries verified", chain.verified),
            )
        } else {
            check(
                "audit.chain",
                "fail",
                format!(
                    "broken at entry {}: {}",
                    chain.first_bad.unwrap_or(0),
                    chain.problem.as_deref().unwrap_or("unknown problem")
                ),
            )
        });
        checks.push(self.check_security_txt().await);
        let overdue: Vec<String> = self
            .incidents()
            .follow_ups(true)
            .await?
            .into_iter()
            .filter(|a| a.overdue)
            .map(|a| format!("{} #{} ({}, due {})", a.incident, a.number, a.owner, a.due))
            .collect();
        checks.push(verdict(
            "incidents.follow_ups",
            &overdue,
            "warn",
            "post-mortem actions past their due date",
            "no post-mortem action is overdue",
        ));
        let count = |status: &str| checks.iter().filter(|c| c.status == status).count() as u32;
        let report = wire::DoctorReport {
            at: now.to_rfc3339(),
            passed: count("pass"),
            warned: count("warn"),
            failed: count("fail"),
            checks,
        };
        let row = DoctorRunRow {
            at: report.at.clone(),
            actor: actor.to_owned(),
            passed: report.passed,
            warned: report.warned,
            failed: report.failed,
            checks: serde_json::to_string(&report.checks).unwrap_or_default(),
        };
        self.store.add_doctor_run(&row).await?;
        Ok(report)
    }

    /// Runs the self-audit by itself, as `[doctor]` says, until `stopped`.
    pub async fn doctor_forever(
        self: std::sync::Arc<Self>,
        config: rampart_core::config::DoctorConfig,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut wait = std::time::Duration::from_secs(config.first_run_secs);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => return,
            }
            self.doctor_daily().await;
            wait = std::time::Duration::from_secs(config.every_secs);
        }
    }

    /// The scheduled run: a failed control raises the `doctor` alert.
    async fn doctor_daily(&self) {
        match self.doctor("system").await {
            Ok(report) if report.failed > 0 => {
                let failed: Vec<&str> = report
                    .checks
                    .iter()
                    .filter(|c| c.status == "fail")
                    .map(|c| c.control.as_str())
                    .collect();
                self.alerts()
                    .raise(Condition {
                        rule: "doctor",
                        severity: Severity::Warning,
                        app: None,
                        detail: None,
                        summary: format!(
                            "the self-audit fails {}: run rampart doctor",
                            failed.join(", ")
                        ),
                    })
                    .await;
            }
            Ok(_) => self.alerts().resolve("doctor", None, None).await,
            Err(error) => tracing::error!(%error, "cannot run the self-audit"),
        }
    }

    async fn check_mfa(&self) -> Result<DoctorCheck, Error> {
        let without: Vec<String> = self
            .store
            .users()
            .await?
            .into_iter()
            .filter(|u| {
                u.status == UserStatus::Active
                    && matches!(u.role, Role::Owner | Role::Admin)
                    && !u.mfa_enabled
            })
            .map(|u| {
                format!(
                    "{} ({})",
                    u.email.unwrap_or_else(|| u.id.to_string()),
                    u.role
                )
            })
            .collect();
        Ok(verdict(
            "mfa",
            &without,
            "fail",
            "owners and admins without MFA",
            "every owner and admin has MFA",
        ))
    }

    async fn check_tokens(&self, now: Timestamp) -> Result<Vec<DoctorCheck>, Error> {
        let live: Vec<_> = self
            .store
            .tokens()
            .await?
            .into_iter()
            .filter(|t| {
                t.kind == TokenKind::Api
                    && t.revoked_at.is_none()
                    && t.user_status == UserStatus::Active
                    && t.expires_at.as_deref().is_none_or(|e| {
                        time::OffsetDateTime::parse(
                            e,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .is_ok_and(|t| t > now.inner())
                    })
            })
            .collect();
        let name = |id: &TokenId, name: &str| format!("{id} ({name})");
        let forever: Vec<String> = live
            .iter()
            .filter(|t| t.expires_at.is_none())
            .map(|t| name(&t.id, &t.name))
            .collect();
        let unused: Vec<String> = live
            .iter()
            .filter(|t| {
                let last = t.last_used_at.as_deref().unwrap_or(&t.created_at);
                now.unix_seconds() - secs(last) > UNUSED_TOKEN_DAYS * 86_400
            })
            .map(|t| name(&t.id, &t.name))
            .collect();
        Ok(vec![
            verdict(
                "tokens.expiry",
                &forever,
                "warn",
                "API tokens that never expire (revoke them and create ones with --expires)",
                "every API token expires",
            ),
            verdict(
                "tokens.unused",
                &unused,
                "warn",
                &format!("API tokens unused for {UNUSED_TOKEN_DAYS} days (revoke them)"),
                &format!("every API token was used in the last {UNUSED_TOKEN_DAYS} days"),
            ),
        ])
    }

    async fn check_apps(&self) -> Result<Vec<DoctorCheck>, Error> {
        let apps = self.store.apps().await?;
        let with = |flag: fn(&rampart_store::AppRow) -> bool| -> Vec<String> {
            apps.iter()
                .filter(|a| flag(a))
                .map(|a| a.name.to_string())
                .collect()
        };
        Ok(vec![
            verdict(
                "apps.egress",
                &with(|a| a.settings.egress),
                "warn",
                "apps that may open connections to the internet",
                "no app reaches the internet",
            ),
            verdict(
                "apps.allow_root",
                &with(|a| a.settings.allow_root),
                "warn",
                "apps whose containers may run as root",
                "no app runs as root",
            ),
        ])
    }

    async fn check_backups(&self, now: Timestamp) -> Result<Vec<DoctorCheck>, Error> {
        let apps = self.store.apps().await?;
        let Some(backup) = &self.backup else {
            let status = if apps.is_empty() { "warn" } else { "fail" };
            return Ok(vec![check(
                "backups.repository",
                status,
                "no [backup] repository is configured: nothing is backed up",
            )]);
        };
        let mut checks = vec![self.check_repository_place(&backup.repository)];
        let schedules = self.store.backup_schedules().await?;
        let now = now.unix_seconds();
        let mut unscheduled = Vec::new();
        let mut overdue = Vec::new();
        let mut untested = Vec::new();
        let mut restore_failed = Vec::new();
        for app in &apps {
            let name = app.name.to_string();
            let Some(schedule) = schedules.iter().find(|s| s.app_id == app.id) else {
                unscheduled.push(name);
                continue;
            };
            let results = self.store.backup_results(&name, 200).await?;
            let every = schedule.every_secs as i64;
            let last_ok = results
                .iter()
                .filter(|r| r.kind == "backup" && r.ok)
                .map(|r| secs(&r.finished_at))
                .max();
            let late = now - secs(&schedule.next_backup_at) > every * OVERDUE_PERIODS;
            let never_since = last_ok.is_none_or(|at| now - at > every * (OVERDUE_PERIODS + 1));
            if late || (never_since && now - secs(&schedule.next_backup_at) > 0) {
                overdue.push(name.clone());
            }
            let Some(verify_every) = schedule.verify_every_secs else {
                untested.push(format!("{name} (no test restore scheduled)"));
                continue;
            };
            let last_verify = results.iter().find(|r| r.kind == "verify");
            match last_verify {
                Some(r) if !r.ok => restore_failed.push(format!("{name} ({})", r.detail)),
                Some(r) if now - secs(&r.finished_at) > verify_every as i64 * OVERDUE_PERIODS => {
                    untested.push(format!("{name} (last test restore {})", r.finished_at))
                }
                None if schedule
                    .next_verify_at
                    .as_deref()
                    .is_some_and(|at| now - secs(at) > verify_every as i64) =>
                {
                    untested.push(format!("{name} (never test-restored)"))
                }
                _ => {}
            }
        }
        checks.push(verdict(
            "backups.schedule",
            &unscheduled,
            "warn",
            "apps without a backup schedule",
            "every app has a backup schedule",
        ));
        checks.push(verdict(
            "backups.overdue",
            &overdue,
            "fail",
            "apps whose scheduled backups are overdue",
            "no scheduled backup is overdue",
        ));
        let mut restore = verdict(
            "backups.test_restore",
            &restore_failed,
            "fail",
            "apps whose last test restore failed",
            "every app's last test restore passed and none is overdue",
        );
        if restore_failed.is_empty() && !untested.is_empty() {
            restore = verdict(
                "backups.test_restore",
                &untested,
                "warn",
                "apps without a recent test restore",
                "",
            );
        }
        checks.push(restore);
        Ok(checks)
    }

    /// A local repository must not live inside the data directory, even
    /// through a link made after the start.
    fn check_repository_place(&self, repository: &str) -> DoctorCheck {
        if repository.starts_with("s3://") {
            return check(
                "backups.repository",
                "pass",
                "the repository is an S3 bucket, apart from the data",
            );
        }
        let root =
            std::fs::canonicalize(self.dir.root()).unwrap_or_else(|_| self.dir.root().into());
        let repo = Path::new(repository);
        let resolved = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_owned());
        if resolved.starts_with(&root) || repo.starts_with(self.dir.root()) {
            return check(
                "backups.repository",
                "fail",
                format!(
                    "the repository {} is inside the data directory {}: one disk loses both",
                    resolved.display(),
                    root.display()
                ),
            );
        }
        check(
            "backups.repository",
            "pass",
            format!(
                "the repository {} is outside the data directory",
                resolved.display()
            ),
        )
    }

    fn check_certificates_expiry(&self) -> DoctorCheck {
        let Ok(engine) = self.engine() else {
            return check("certificates", "pass", "the edge serves no sites");
        };
        let now = time::OffsetDateTime::now_utc();
        let mut failing = Vec::new();
        let mut renewing = Vec::new();
        for cert in engine.edge.certificates() {
            match crate::checks::certificate_trouble(&cert, now) {
                Some((Severity::Critical, summary)) => failing.push(summary),
                Some((_, summary)) => renewing.push(summary),
                None if cert.renewal_due => renewing.push(format!(
                    "{} is inside its renewal window (expires {})",
                    cert.site,
                    cert.not_after.date()
                )),
                None => {}
            }
        }
        if !failing.is_empty() {
            return verdict(
                "certificates",
                &failing,
                "fail",
                "certificates about to expire",
                "",
            );
        }
        verdict(
            "certificates",
            &renewing,
            "warn",
            "certificates inside their renewal window",
            "no certificate is due for renewal",
        )
    }

    async fn check_advisories(&self) -> Result<Vec<DoctorCheck>, Error> {
        let report = self.vulns().report(None, Some("critical")).await?;
        let db = &report.db;
        let data = if db.advisories == 0 {
            check(
                "vulns.data",
                "warn",
                "no advisory data: import it with rampart vulns db import, or set [vulns] urls",
            )
        } else if db.stale {
            check(
                "vulns.data",
                "warn",
                format!(
                    "the advisory data is {} days old: import newer data",
                    db.age_days.unwrap_or(0)
                ),
            )
        } else {
            check(
                "vulns.data",
                "pass",
                format!(
                    "{} advisories, newest {} days old",
                    db.advisories,
                    db.age_days.unwrap_or(0)
                ),
            )
        };
        let open: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.accepted.is_none())
            .map(|f| format!("{} {} in {}", f.app, f.advisory, f.package))
            .collect();
        Ok(vec![
            data,
            verdict(
                "vulns.critical",
                &open,
                "fail",
                "critical findings nobody accepted (patch them: rampart patch APP)",
                "no open critical finding",
            ),
        ])
    }

    /// Every served host has a valid security.txt whose Expires is ahead.
    async fn check_security_txt(&self) -> DoctorCheck {
        if !self.security_txt.enabled {
            return check(
                "security_txt",
                "warn",
                "security.txt is turned off ([security_txt] enabled = false): finders of a hole have nobody to tell",
            );
        }
        match self.security_texts().await {
            Err(error) => check("security_txt", "fail", error.to_string()),
            Ok(texts) => check(
                "security_txt",
                "pass",
                format!(
                    "served on {} host(s); Expires is {} days ahead and renewed daily",
                    texts.len(),
                    self.security_txt.expires_days
                ),
            ),
        }
    }

    /// The data directory and the keys in it are the platform user's alone.
    fn check_files(&self) -> DoctorCheck {
        let mut wrong = Vec::new();
        let places = [
            (self.dir.root().to_owned(), "data directory"),
            (self.dir.master_key(), "master key"),
            (self.dir.ca_key(), "internal CA key"),
            (self.dir.db(), "database"),
            (self.dir.evidence_key(), "evidence signing key"),
        ];
        for (path, what) in places {
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    wrong.push(format!("{what} {} is a symbolic link", path.display()))
                }
                Ok(meta) if shared(meta.permissions().mode()) => wrong.push(format!(
                    "{what} {} is mode {:o} (want 0{})",
                    path.display(),
                    meta.permissions().mode() & 0o777,
                    if meta.is_dir() { "700" } else { "600" }
                )),
                Ok(_) => {}
                // A key not made yet (the evidence key before the first
                // export) is not a fault.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => wrong.push(format!("{what} {}: {error}", path.display())),
            }
        }
        verdict(
            "files",
            &wrong,
            "fail",
            "key and data files others can read",
            "the data directory and keys are readable by the platform's user only",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_name_offenders_and_cap_the_list() {
        let pass = verdict("x", &[], "fail", "bad", "fine");
        assert_eq!(
            (pass.status.as_str(), pass.detail.as_str()),
            ("pass", "fine")
        );
        let many: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        let fail = verdict("x", &many, "fail", "bad ones", "fine");
        assert_eq!(fail.status, "fail");
        assert!(
            fail.detail.starts_with("bad ones: t0, t1"),
            "{}",
            fail.detail
        );
        assert!(fail.detail.ends_with("and 4 more"), "{}", fail.detail);
    }

    #[test]
    fn only_owner_only_modes_pass() {
        assert!(!shared(0o600));
        assert!(!shared(0o700));
        assert!(!shared(0o100600));
        assert!(shared(0o640));
        assert!(shared(0o604));
        assert!(shared(0o755));
    }
}

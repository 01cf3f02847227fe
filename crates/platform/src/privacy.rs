//! Personal data past its time (GDPR storage limitation): daily, and on
//! demand with `rampart privacy sweep`, access-log days, app events and
//! sent notifications older than `[privacy] retention` are deleted, and
//! client addresses in access-log days and security reports older than
//! `pseudonymize_after` are replaced by pseudonyms: `anon-` and a keyed
//! hash of the address, the same for one address everywhere (so repeat
//! visits still show as one client) and not reversible without the
//! installation's master key. docs/privacy.md lists what is kept where.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rampart_core::audit::Outcome;
use rampart_core::time::Timestamp;
use rampart_core::{Action, RequestId, wire};
use sha2::Digest;

use crate::{Error, Platform};

/// What pseudonymised access-log days end in.
const ANON: &str = ".anon";

/// The pseudonym of `ip` under `secret`.
pub(crate) fn pseudonym(secret: &[u8; 32], ip: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(secret);
    h.update(ip.as_bytes());
    format!("anon-{}", hex::encode(&h.finalize()[..8]))
}

/// An access-log day beside `log`: its date and whether it is
/// pseudonymised already.
fn log_day(log: &Path, candidate: &Path) -> Option<(time::Date, bool)> {
    let base = log.file_name()?.to_str()?;
    let name = candidate.file_name()?.to_str()?;
    let rest = name.strip_prefix(base)?.strip_prefix('.')?;
    let (date, anon) = match rest.strip_suffix(ANON) {
        Some(date) => (date, true),
        None => (rest, false),
    };
    let date = time::Date::parse(
        date,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    Some((date, anon))
}

/// Rewrites an access-log day with pseudonyms for client addresses, as
/// `PATH.anon`, then removes the original. Lines that cannot be read are
/// dropped rather than kept with an address in them.
fn pseudonymise_log(path: &Path, secret: &[u8; 32]) -> std::io::Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut target = path.as_os_str().to_owned();
    target.push(ANON);
    let target = PathBuf::from(target);
    let mut partial = target.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let input = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut out = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?,
    );
    let mut lines = 0;
    for line in input.split(b'\n') {
        let line = line?;
        let Ok(mut event) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(ip) = event["client_ip"].as_str()
            && ip.parse::<IpAddr>().is_ok()
        {
            event["client_ip"] = pseudonym(secret, ip).into();
        } else if event.get("client_ip").is_some() && !event["client_ip"].is_string() {
            continue;
        }
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
        lines += 1;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    drop(out);
    std::fs::rename(&partial, &target)?;
    std::fs::remove_file(path)?;
    Ok(lines)
}

impl Platform {
    fn pseudonym_secret(&self) -> [u8; 32] {
        self.key.derive_secret("client address pseudonyms")
    }

    /// Deletes and pseudonymises personal data past its time; `actor`
    /// asked (a user id, or `system` for the daily run). Audited.
    pub async fn privacy_sweep(
        &self,
        actor: &str,
        request_id: &RequestId,
    ) -> Result<wire::PrivacySweep, Error> {
        let now = Timestamp::now();
        let config = &self.privacy;
        let before = |secs: u64| {
            Timestamp::from_unix_seconds(now.unix_seconds() - secs as i64).unwrap_or(now)
        };
        let keep_from = before(config.retention_secs);
        let named_from = before(config.pseudonymize_after_secs);
        let secret = self.pseudonym_secret();
        let mut sweep = wire::PrivacySweep {
            at: now.to_rfc3339(),
            logs_removed: 0,
            logs_pseudonymised: 0,
            events_removed: 0,
            deliveries_removed: 0,
            reports_pseudonymised: 0,
        };

        if let Some(log) = self.engine().ok().and_then(|e| e.edge.access_log_path()) {
            let dir = log
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_owned);
            let days: Vec<(PathBuf, time::Date, bool)> = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|e| {
                            let path = e.path();
                            log_day(&log, &path).map(|(day, anon)| (path, day, anon))
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (path, day, anon) in days {
                // A day's lines are all older than its end.
                let ended = day
                    .next_day()
                    .map_or(i64::MAX, |d| d.midnight().assume_utc().unix_timestamp());
                if ended <= keep_from.unix_seconds() {
                    match std::fs::remove_file(&path) {
                        Ok(()) => sweep.logs_removed += 1,
                        Err(error) => {
                            tracing::error!(%error, path = %path.display(), "cannot delete an old access log")
                        }
                    }
                } else if !anon && ended <= named_from.unix_seconds() {
                    let path = path.clone();
                    let done =
                        tokio::task::spawn_blocking(move || pseudonymise_log(&path, &secret)).await;
                    match done {
                        Ok(Ok(_)) => sweep.logs_pseudonymised += 1,
                        Ok(Err(error)) => {
                            tracing::error!(%error, "cannot pseudonymise an access log")
                        }
                        Err(error) => tracing::error!(%error, "the pseudonymiser failed"),
                    }
                }
            }
        }

        let keep_from_text = keep_from.to_rfc3339();
        sweep.events_removed = self.store.prune_events(&keep_from_text).await?;
        sweep.deliveries_removed = self.store.prune_deliveries(&keep_from_text).await?;
        let named_from_text = named_from.to_rfc3339();
        for report in self.store.reports(true, 100_000).await? {
            if report.received_at < named_from_text && report.client.parse::<IpAddr>().is_ok() {
                self.store
                    .set_report_client(&report.id, &pseudonym(&secret, &report.client))
                    .await?;
                sweep.reports_pseudonymised += 1;
            }
        }
        self.append(Platform::record_by(
            actor,
            Action::PrivacySweep,
            format!(
                "privacy/sweep: {} access-log days deleted, {} pseudonymised; {} events and {} notifications deleted; {} report senders pseudonymised",
                sweep.logs_removed,
                sweep.logs_pseudonymised,
                sweep.events_removed,
                sweep.deliveries_removed,
                sweep.reports_pseudonymised
            ),
            Outcome::Ok,
            request_id,
        ))
        .await;
        Ok(sweep)
    }

    /// The daily sweep; a failure is logged and tried again the next day.
    pub(crate) async fn privacy_daily(&self) {
        if let Err(error) = self.privacy_sweep("system", &RequestId::generate()).await {
            tracing::error!(%error, "the privacy sweep failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_not_the_address() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let p = pseudonym(&a, "203.0.113.9");
        assert_eq!(p, pseudonym(&a, "203.0.113.9"));
        assert_ne!(p, pseudonym(&b, "203.0.113.9"));
        assert_ne!(p, pseudonym(&a, "203.0.113.10"));
        assert!(p.starts_with("anon-") && !p.contains("203"));
    }

    #[test]
    fn only_days_of_this_log_are_recognised() {
        let log = Path::new("/var/log/rampart/access.log");
        let day = |name: &str| log_day(log, &log.with_file_name(name));
        let d = time::macros::date!(2026 - 11 - 30);
        assert_eq!(day("access.log.2026-11-30"), Some((d, false)));
        assert_eq!(day("access.log.2026-11-30.anon"), Some((d, true)));
        for other in [
            "access.log",
            "access.log.2026-13-01",
            "access.log.old",
            "other.log.2026-11-30",
            "access.log.2026-11-30.anon.partial",
        ] {
            assert_eq!(day(other), None, "{other}");
        }
    }

    #[test]
    fn a_logged_day_keeps_its_lines_without_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log.2026-11-30");
        std::fs::write(
            &path,
            "{\"client_ip\":\"198.51.100.7\",\"path\":\"/a\"}\n\
             not json 198.51.100.7\n\
             {\"client_ip\":\"2001:db8::1\",\"path\":\"/b\"}\n",
        )
        .unwrap();
        let lines = pseudonymise_log(&path, &[9; 32]).unwrap();
        assert_eq!(lines, 2);
        assert!(!path.exists());
        let text = std::fs::read_to_string(dir.path().join("access.log.2026-11-30.anon")).unwrap();
        assert!(
            !text.contains("198.51.100.7") && !text.contains("2001:db8"),
            "{text}"
        );
        assert_eq!(text.matches("anon-").count(), 2);
        assert!(text.contains("\"/a\"") && text.contains("\"/b\""));
    }
}

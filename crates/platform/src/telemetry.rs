//! The platform's figures: each app's traffic (from the watch's ten-second
//! windows), replicas serving, backups and test restores, bans and alerts,
//! served as Prometheus text on the edge's admin listener and kept for a
//! day in memory for `rampart top`.
//!
//! Traffic figures come from the watch, so they stop with it
//! (`[watch] enabled = false`). The rest is refreshed by the platform's
//! checks every ten seconds.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rampart_core::time::Timestamp;
use rampart_core::wire;
use rampart_watch::baseline::Latencies;
use rampart_watch::metrics::{AppCounters, Exposition, History, Sample};

use crate::{Error, Platform};

/// A day of ten-second windows.
const HISTORY: usize = 8640;
/// The most of the history one `top` answer carries: an hour.
const MAX_TOP_MINUTES: u32 = 24 * 60;

#[derive(Debug)]
struct AppFigures {
    counters: AppCounters,
    history: History,
    healthy: u32,
    /// When the last backup that worked finished (Unix seconds).
    last_backup: Option<i64>,
    /// When the last test restore finished, and whether it passed.
    last_restore: Option<(i64, bool)>,
}

impl Default for AppFigures {
    fn default() -> Self {
        Self {
            counters: AppCounters::default(),
            history: History::new(HISTORY),
            healthy: 0,
            last_backup: None,
            last_restore: None,
        }
    }
}

#[derive(Debug, Default)]
struct Figures {
    apps: BTreeMap<String, AppFigures>,
    bans: u64,
    /// Firing alerts by severity.
    firing: BTreeMap<String, u64>,
    /// Access events the watch skipped because it fell behind.
    skipped: u64,
}

/// The figures, behind a lock held only to copy in or out.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    figures: Mutex<Figures>,
}

/// One window of one app, as the watch closes it.
pub(crate) struct WindowFigures<'a> {
    pub requests: u64,
    pub errors: u64,
    pub latencies: &'a Latencies,
    pub p95_ms: f64,
    pub healthy: u32,
}

impl Telemetry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.figures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a closed window of `app`'s traffic.
    pub(crate) fn window(&self, app: &str, at: i64, w: WindowFigures<'_>) {
        let mut figures = self.lock();
        let entry = figures.apps.entry(app.to_owned()).or_default();
        entry.counters.add(w.requests, w.errors, w.latencies);
        entry.healthy = w.healthy;
        entry.history.push(Sample {
            at,
            requests: u32::try_from(w.requests).unwrap_or(u32::MAX),
            errors: u32::try_from(w.errors).unwrap_or(u32::MAX),
            p95_ms: w.p95_ms as f32,
            healthy: u16::try_from(w.healthy).unwrap_or(u16::MAX),
        });
    }

    /// Counts access events the watch skipped: traffic it did not count
    /// or judge.
    pub(crate) fn skipped(&self, n: u64) {
        self.lock().skipped += n;
    }

    /// Forgets apps that are gone.
    pub(crate) fn keep_only(&self, apps: &[&str]) {
        self.lock()
            .apps
            .retain(|name, _| apps.contains(&name.as_str()));
    }
}

fn unix(text: &str) -> Option<i64> {
    Timestamp::parse(text).map(Timestamp::unix_seconds)
}

impl Platform {
    /// Refreshes what the store knows: backups and test restores per app,
    /// bans, firing alerts.
    pub(crate) async fn refresh_figures(&self) {
        let Ok(apps) = self.store.apps().await else {
            return;
        };
        let mut backups = Vec::with_capacity(apps.len());
        for app in &apps {
            let results = self
                .store
                .backup_results(app.name.as_str(), 50)
                .await
                .unwrap_or_default();
            let last_backup = results
                .iter()
                .rev()
                .find(|r| r.kind == "backup" && r.ok)
                .and_then(|r| unix(&r.finished_at));
            let last_restore = results
                .iter()
                .rev()
                .find(|r| r.kind == "verify")
                .and_then(|r| Some((unix(&r.finished_at)?, r.ok)));
            backups.push((app.name.to_string(), last_backup, last_restore));
        }
        let bans = self
            .store
            .bans(&Timestamp::now().to_rfc3339())
            .await
            .map_or(0, |b| b.len() as u64);
        let mut firing = BTreeMap::new();
        for alert in self.store.alerts(false, 10_000).await.unwrap_or_default() {
            *firing.entry(alert.severity).or_insert(0) += 1;
        }
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        self.telemetry.keep_only(&names);
        let mut figures = self.telemetry.lock();
        for (app, last_backup, last_restore) in backups {
            let entry = figures.apps.entry(app).or_default();
            entry.last_backup = last_backup;
            entry.last_restore = last_restore;
        }
        figures.bans = bans;
        figures.firing = firing;
    }

    /// The platform's metrics in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        let now = Timestamp::now().unix_seconds();
        let figures = self.telemetry.lock();
        let mut text = Exposition::default();
        let apps = &figures.apps;
        // One family with a sample per app; `None` leaves an app out.
        let mut per_app =
            |name: &str, help: &str, kind: &str, value: &dyn Fn(&AppFigures) -> Option<f64>| {
                let base = name.trim_end_matches("_total");
                text.family(base, help, kind);
                for (app, f) in apps {
                    if let Some(v) = value(f) {
                        text.sample(name, &[("app", app)], v);
                    }
                }
            };
        per_app(
            "rampart_app_requests_total",
            "Requests to each app that reached the watch",
            "counter",
            &|f| Some(f.counters.requests as f64),
        );
        per_app(
            "rampart_app_errors_total",
            "Answers with a 5xx status from each app (or for it, when no replica could take the request)",
            "counter",
            &|f| Some(f.counters.errors as f64),
        );
        per_app(
            "rampart_app_replicas_healthy",
            "Replicas of each app serving traffic",
            "gauge",
            &|f| Some(f64::from(f.healthy)),
        );
        per_app(
            "rampart_app_backup_age_seconds",
            "Time since each app's last backup that worked (+Inf: none)",
            "gauge",
            &|f| Some(f.last_backup.map_or(f64::INFINITY, |at| (now - at) as f64)),
        );
        per_app(
            "rampart_app_test_restore_age_seconds",
            "Time since each app's last test restore (+Inf: none)",
            "gauge",
            &|f| {
                Some(
                    f.last_restore
                        .map_or(f64::INFINITY, |(at, _)| (now - at) as f64),
                )
            },
        );
        per_app(
            "rampart_app_test_restore_ok",
            "1 when each app's last test restore passed",
            "gauge",
            &|f| f.last_restore.map(|(_, ok)| f64::from(u8::from(ok))),
        );
        text.family(
            "rampart_app_request_duration_seconds",
            "How long each app's requests took, through the edge",
            "histogram",
        );
        for (app, f) in apps {
            text.histogram("rampart_app_request_duration_seconds", app, &f.counters);
        }
        text.family(
            "rampart_watch_events_skipped",
            "Access events the watch skipped because it fell behind (not counted above)",
            "counter",
        );
        text.sample(
            "rampart_watch_events_skipped_total",
            &[],
            figures.skipped as f64,
        );
        text.family("rampart_bans", "Clients banned at the edge now", "gauge");
        text.sample("rampart_bans", &[], figures.bans as f64);
        text.family(
            "rampart_alerts_firing",
            "Alerts firing now, by severity",
            "gauge",
        );
        for severity in ["info", "warning", "critical"] {
            let n = figures.firing.get(severity).copied().unwrap_or(0);
            text.sample("rampart_alerts_firing", &[("severity", severity)], n as f64);
        }
        text.finish()
    }

    /// What `rampart top` shows: each app's (or one app's) traffic over
    /// the last `minutes`, replicas, backups; bans and firing alerts.
    pub async fn top(&self, app: Option<&str>, minutes: u32) -> Result<wire::Top, Error> {
        if !(1..=MAX_TOP_MINUTES).contains(&minutes) {
            return Err(Error::Invalid(format!("minutes is 1 to {MAX_TOP_MINUTES}")));
        }
        let names: Vec<String> = match app {
            Some(name) => {
                let row = self.app_row(name).await?;
                vec![row.name.to_string()]
            }
            None => self
                .store
                .apps()
                .await?
                .into_iter()
                .map(|a| a.name.to_string())
                .collect(),
        };
        let now = Timestamp::now();
        let since = now.unix_seconds() - i64::from(minutes) * 60;
        let figures = self.telemetry.lock();
        let apps = names
            .into_iter()
            .map(|name| {
                let f = figures.apps.get(&name);
                let samples: Vec<wire::TopSample> = f
                    .map(|f| {
                        f.history
                            .since(since)
                            .map(|s| wire::TopSample {
                                at: s.at,
                                requests: s.requests,
                                errors: s.errors,
                                p95_ms: s.p95_ms,
                                healthy: s.healthy,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                // The last minute's rates.
                let recent: Vec<&wire::TopSample> = samples
                    .iter()
                    .filter(|s| s.at >= now.unix_seconds() - 60)
                    .collect();
                let requests: u64 = recent.iter().map(|s| u64::from(s.requests)).sum();
                let errors: u64 = recent.iter().map(|s| u64::from(s.errors)).sum();
                let secs = (recent.len() as f64 * 10.0).max(10.0);
                wire::AppTop {
                    requests_per_sec: requests as f64 / secs,
                    errors_ratio: if requests == 0 {
                        0.0
                    } else {
                        errors as f64 / requests as f64
                    },
                    p95_ms: recent.last().map_or(0.0, |s| f64::from(s.p95_ms)),
                    replicas_healthy: f.map_or(0, |f| f.healthy),
                    last_backup_at: f
                        .and_then(|f| f.last_backup)
                        .and_then(Timestamp::from_unix_seconds)
                        .map(|t| t.to_rfc3339()),
                    app: name,
                    samples,
                }
            })
            .collect();
        Ok(wire::Top {
            at: now.to_rfc3339(),
            window_secs: 10,
            apps,
            bans: figures.bans,
            alerts_firing: figures.firing.values().sum(),
        })
    }
}

//! What the platform does about the traffic it carries: the edge's access
//! events feed the watch's per-client detectors (`rampart_watch`), and each
//! decision becomes a ban at the edge at once, a row in the store (so it
//! survives a restart) and an audit entry. Operators list, add and lift
//! bans through [`Bans`].
//!
//! The detectors read a broadcast channel the edge never waits on: when
//! they fall behind, events are skipped (and logged), and traffic goes on.
//! Failed logins to the platform's own API count like 401s on an app's
//! login path.
//!
//! A ban the detectors make about an app's traffic applies to that app's
//! host only: an app's answers are its tenant's to shape (a page that makes
//! every visitor fetch `/.env` from it), so what a client did on one app
//! must never lock it out of another, or out of the platform's API. Bans
//! for failed logins to the API, and bans by hand without a host, apply
//! everywhere, the API included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rampart_core::audit::Outcome;
use rampart_core::config::WatchConfig;
use rampart_core::time::Timestamp;
use rampart_core::{Action, RequestId, wire};
use rampart_store::BanRow;
use rampart_watch::alert::Severity;
use rampart_watch::baseline::{Assessment, Baseline, BaselineConfig, Latencies, Window};
use rampart_watch::{Decision, Detector, DetectorConfig, Request};

use crate::alerts::Condition;
use crate::telemetry::WindowFigures;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::{Acting, Error, Platform};

/// How long a ban by hand lasts unless it says, and at most.
const DEFAULT_BAN_SECS: u64 = 4 * 3600;
const MAX_BAN_SECS: u64 = 365 * 86_400;
/// The length of one window of an app's traffic.
const WINDOW: Duration = Duration::from_secs(10);
/// The most access events taken in one go.
const DRAIN_BATCH: u32 = 256;
/// How often quiet clients are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The host the platform's own API is judged under.
const API_HOST: &str = "rampart-api";
/// The actor of the detectors' bans.
const WATCH: &str = "watch";

/// Bans at the edge. A handle on the [`Platform`], from [`Platform::bans`].
#[derive(Debug, Clone, Copy)]
pub struct Bans<'a> {
    p: &'a Platform,
}

fn ban_view(row: BanRow) -> wire::Ban {
    wire::Ban {
        net: row.net,
        host: row.host,
        scenario: row.scenario,
        reason: row.reason,
        created_by: row.created_by,
        created_at: row.created_at,
        expires_at: row.expires_at,
    }
}

/// An address or network as given: a bare address is its own /32 or /128.
fn parse_net(text: &str) -> Result<IpNet, Error> {
    let text = text.trim();
    let net = match text.parse::<std::net::IpAddr>() {
        Ok(ip) => IpNet::from(ip),
        Err(_) => text.parse::<IpNet>().map_err(|_| {
            Error::Invalid(format!(
                "{text:?} is not an address or a network such as 198.51.100.0/24"
            ))
        })?,
    };
    Ok(net.trunc())
}

/// A host a ban is limited to: a DNS name, lowercase.
fn parse_host(text: &str) -> Result<String, Error> {
    let host = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(host)
    } else {
        Err(Error::Invalid(format!(
            "{text:?} is not a host name such as shop.example.com"
        )))
    }
}

/// How a ban's scope reads in the audit log.
fn scope(host: Option<&str>) -> String {
    host.map(|h| format!(" on {h}")).unwrap_or_default()
}

fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

impl Platform {
    pub fn bans(&self) -> Bans<'_> {
        Bans { p: self }
    }

    /// Feeds the edge's traffic to the detectors until `stopped`, banning
    /// the clients they catch. Returns at once when `[watch] enabled =
    /// false` (stored bans still apply: [`Bans::restore`] put them back
    /// into the edge at start).
    pub async fn watch_forever(
        self: Arc<Self>,
        config: WatchConfig,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        // The stored bans are back in the edge already (`rampart up` puts
        // them there before the first route).
        if !config.enabled {
            return;
        }
        let Ok(engine) = self.engine() else {
            return;
        };
        let mut events = engine.edge.subscribe();
        let mut failed_logins = self.failed_logins.subscribe();
        let never_ban = config
            .never_ban
            .iter()
            .filter_map(|net| parse_net(net).ok())
            .collect();
        let mut detector = Detector::new(DetectorConfig {
            ban_for: Duration::from_secs(config.ban_for_secs),
            never_ban,
            ..Default::default()
        });
        if let Ok(rows) = self.store.bans(&Timestamp::now().to_rfc3339()).await {
            for row in rows.iter().filter(|row| row.created_by == WATCH) {
                if let Ok(net) = row.net.parse() {
                    detector.remember_ban(net, Instant::now());
                }
            }
        }
        let mut swept = Instant::now();
        let mut traffic = Traffic::new(BaselineConfig {
            warmup: (config.baseline_warmup_secs / WINDOW.as_secs()).max(1) as u32,
            margin: config.baseline_margin,
        });
        let mut windows = tokio::time::interval(WINDOW);
        windows.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        windows.tick().await;
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = windows.tick() => {
                    traffic.close_window(&self).await;
                    continue;
                }
                client = failed_logins.recv() => {
                    // A failed login to the platform's own API counts as a
                    // 401 on its login path.
                    if let Ok(client) = client {
                        let request = Request {
                            client,
                            host: API_HOST,
                            method: "POST",
                            path: "/api/sessions",
                            status: 401,
                        };
                        if let Some(decision) = detector.observe(&request, Instant::now()) {
                            self.bans().enforce(&decision).await;
                        }
                    }
                    continue;
                }
                _ = stopped.changed() => return,
            };
            // Under load, events already waiting are taken before going
            // back to the select (a bounded batch, so windows still close
            // on time): one wake-up for many events.
            let mut next = Some(event);
            let mut batch = 0;
            while let Some(received) = next.take() {
                batch += 1;
                if batch < DRAIN_BATCH {
                    next = match events.try_recv() {
                        Ok(event) => Some(Ok(event)),
                        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                        Err(TryRecvError::Empty) => None,
                        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                    };
                }
                let event = match received {
                    Ok(event) => event,
                    Err(RecvError::Lagged(n)) => {
                        self.telemetry.skipped(n);
                        tracing::warn!(skipped = n, "the watch fell behind the edge's traffic");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                // Requests the shields refused (bans included) are already
                // dealt with.
                if event.shield.is_some() {
                    continue;
                }
                traffic.add(&event);
                let request = Request {
                    client: event.client_ip,
                    host: without_port(&event.host),
                    method: &event.method,
                    path: &event.path,
                    status: event.status,
                };
                if let Some(decision) = detector.observe(&request, Instant::now()) {
                    self.bans().enforce(&decision).await;
                }
            }
            let now = Instant::now();
            if now.duration_since(swept) > SWEEP_EVERY {
                detector.sweep(now);
                swept = now;
            }
        }
    }
}

impl Bans<'_> {
    /// Whether `ip` is banned now (its requests to the apps and to the API
    /// are refused).
    pub fn is_banned(&self, ip: std::net::IpAddr) -> bool {
        self.p
            .engine()
            .is_ok_and(|engine| engine.edge.is_banned(ip))
    }

    /// Bans in force, newest first.
    pub async fn list(&self) -> Result<Vec<wire::Ban>, Error> {
        let rows = self.p.store.bans(&Timestamp::now().to_rfc3339()).await?;
        Ok(rows.into_iter().map(ban_view).collect())
    }

    /// Bans a client or network by hand, on one host or on every host and
    /// the API, at the edge at once and across restarts.
    pub async fn add(&self, acting: Acting<'_>, request: wire::AddBan) -> Result<wire::Ban, Error> {
        let net = parse_net(&request.net)?;
        let host = request.host.as_deref().map(parse_host).transpose()?;
        let secs = request.duration_secs.unwrap_or(DEFAULT_BAN_SECS);
        if !(1..=MAX_BAN_SECS).contains(&secs) {
            return Err(Error::Invalid(format!(
                "duration_secs must be between 1 and {MAX_BAN_SECS}"
            )));
        }
        let reason = clean(request.reason.as_deref().unwrap_or("banned by hand"));
        let row = self.row(
            net,
            host.clone(),
            "manual",
            &reason,
            acting.caller.user_id.as_str(),
            secs,
        );
        let record = self.p.record(
            acting,
            Action::BanSet,
            format!("bans/{net}{}: {reason}", scope(host.as_deref())),
        );
        self.p
            .committed(self.p.store.add_ban(&row, record).await)
            .await?;
        if let Ok(engine) = self.p.engine() {
            engine
                .edge
                .ban_on(net, host.as_deref(), Duration::from_secs(secs), &reason);
        }
        Ok(ban_view(row))
    }

    /// Lifts a ban of one scope, at the edge at once.
    pub async fn remove(
        &self,
        acting: Acting<'_>,
        net: &str,
        host: Option<&str>,
    ) -> Result<(), Error> {
        let net = parse_net(net)?;
        let host = host.map(parse_host).transpose()?;
        let record = self.p.record(
            acting,
            Action::BanSet,
            format!("bans/{net}{}/lifted", scope(host.as_deref())),
        );
        self.p
            .committed(
                self.p
                    .store
                    .remove_ban(&net.to_string(), host.as_deref(), record)
                    .await,
            )
            .await?;
        if let Ok(engine) = self.p.engine() {
            engine.edge.unban_on(net, host.as_deref());
        }
        Ok(())
    }

    /// Puts the stored bans into the edge, each for what is left of it.
    pub async fn restore(&self) -> Result<usize, Error> {
        let engine = self.p.engine()?;
        let now = Timestamp::now();
        let rows = self.p.store.bans(&now.to_rfc3339()).await?;
        let mut restored = 0;
        for row in rows {
            let (Ok(net), Some(until)) =
                (row.net.parse::<IpNet>(), Timestamp::parse(&row.expires_at))
            else {
                tracing::warn!(net = %row.net, "a stored ban cannot be read; skipped");
                continue;
            };
            let left = until.unix_seconds() - now.unix_seconds();
            if left > 0 {
                engine.edge.ban_on(
                    net,
                    row.host.as_deref(),
                    Duration::from_secs(left as u64),
                    &row.reason,
                );
                restored += 1;
            }
        }
        Ok(restored)
    }

    /// Carries out a detector's decision: the edge first (at once), then
    /// the store and the audit log. A decision about an app's host bans the
    /// client there only; one about the platform's own API, everywhere.
    async fn enforce(&self, decision: &Decision) {
        let Ok(engine) = self.p.engine() else {
            return;
        };
        let host = (decision.host != API_HOST).then(|| decision.host.clone());
        let reason = clean(&decision.reason);
        engine
            .edge
            .ban_on(decision.net, host.as_deref(), decision.duration, &reason);
        let row = self.row(
            decision.net,
            host.clone(),
            decision.scenario.as_str(),
            &reason,
            WATCH,
            decision.duration.as_secs(),
        );
        let record = Platform::record_by(
            WATCH,
            Action::BanSet,
            format!(
                "bans/{}{}: {reason} for {} s{}",
                decision.net,
                scope(host.as_deref()),
                decision.duration.as_secs(),
                if decision.repeat > 0 {
                    format!(" (ban {} in a day)", decision.repeat + 1)
                } else {
                    String::new()
                }
            ),
            Outcome::Ok,
            &RequestId::generate(),
        );
        match self.p.store.add_ban(&row, record).await {
            Ok(entry) => self.p.checkpoint(entry.seq, entry.hash).await,
            Err(error) => tracing::error!(%error, net = %decision.net, "cannot record a ban"),
        }
    }

    fn row(
        &self,
        net: IpNet,
        host: Option<String>,
        scenario: &str,
        reason: &str,
        by: &str,
        secs: u64,
    ) -> BanRow {
        let now = Timestamp::now();
        BanRow {
            net: net.to_string(),
            host,
            scenario: scenario.to_owned(),
            reason: reason.to_owned(),
            created_by: by.to_owned(),
            created_at: now.to_rfc3339(),
            expires_at: Timestamp::from_unix_seconds(
                now.unix_seconds()
                    .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
            )
            .unwrap_or(now)
            .to_rfc3339(),
        }
    }
}

/// One window of one host's traffic.
#[derive(Debug, Default)]
struct HostWindow {
    requests: u64,
    errors: u64,
    unserved: u64,
    latencies: Latencies,
}

/// Every app's traffic: the window being counted, per host, and each app's
/// baseline. Hosts are the apps' own (requests for unknown hosts are
/// refused by the shields and never counted), so this stays as small as
/// the list of apps.
#[derive(Debug)]
struct Traffic {
    config: BaselineConfig,
    hosts: std::collections::HashMap<String, HostWindow>,
    baselines: std::collections::HashMap<String, Baseline>,
    opened: Instant,
}

/// How each traffic rule departs.
const RULES: [(&str, Severity); 4] = [
    ("traffic_spike", Severity::Warning),
    ("errors_high", Severity::Critical),
    ("latency_high", Severity::Warning),
    ("app_unreachable", Severity::Critical),
];

impl Traffic {
    fn new(config: BaselineConfig) -> Self {
        Self {
            config,
            hosts: Default::default(),
            baselines: Default::default(),
            opened: Instant::now(),
        }
    }

    fn add(&mut self, event: &rampart_edge::access::AccessEvent) {
        // Hosts arrive in lower case almost always: look them up as they
        // are, and allocate only for a new one.
        let host = without_port(&event.host);
        let window = if self.hosts.contains_key(host) {
            self.hosts.get_mut(host).expect("just seen")
        } else {
            self.hosts.entry(host.to_ascii_lowercase()).or_default()
        };
        window.requests += 1;
        if event.status >= 500 {
            window.errors += 1;
            if event.upstream.is_none() {
                window.unserved += 1;
            }
        }
        window.latencies.add(event.duration_ms);
    }

    /// Ends the window: judges every app's against its baseline, raising
    /// or resolving the traffic alerts.
    async fn close_window(&mut self, p: &Platform) {
        let secs = self.opened.elapsed().as_secs_f64();
        self.opened = Instant::now();
        let hosts = std::mem::take(&mut self.hosts);
        let Ok(apps) = p.store.apps().await else {
            return;
        };
        let now = Timestamp::now().unix_seconds();
        let hour = (now.rem_euclid(86_400) / 3600) as usize;
        self.baselines
            .retain(|name, _| apps.iter().any(|a| a.name.as_str() == name));
        for app in &apps {
            let mut names: Vec<String> = app.domains.iter().map(|d| d.to_string()).collect();
            names.push(app.name.default_domain().to_string());
            // An app's own name may be among its domains too: count it once.
            names.sort();
            names.dedup();
            let mut window = Window {
                secs,
                ..Default::default()
            };
            let mut latencies = Latencies::default();
            for name in &names {
                if let Some(host) = hosts.get(name) {
                    window.requests += host.requests;
                    window.errors += host.errors;
                    window.unserved += host.unserved;
                    latencies.merge(&host.latencies);
                }
            }
            window.p95_ms = latencies.p95();
            let healthy = p.engine().map_or(0, |e| e.serving_of(&app.id).len() as u32);
            p.telemetry.window(
                app.name.as_str(),
                now,
                WindowFigures {
                    requests: window.requests,
                    errors: window.errors,
                    latencies: &latencies,
                    p95_ms: window.p95_ms,
                    healthy,
                },
            );
            let baseline = self.baselines.entry(app.name.to_string()).or_default();
            let assessment = baseline.assess(window, hour, self.config);
            report(p, app.name.as_str(), &assessment, &window).await;
        }
    }
}

/// A `Host` header's name without its port (`shop.example.com:8443`).
fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !name.contains(':') =>
        {
            name
        }
        Some((name, port))
            if name.starts_with('[')
                && name.ends_with(']')
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    }
}

/// Raises the traffic alerts a window's assessment calls for, and resolves
/// the others.
async fn report(p: &Platform, app: &str, a: &Assessment, window: &Window) {
    let per_sec = |n: u64| n as f64 / window.secs.max(1.0);
    let summaries = [
        a.rate
            .map(|d| format!("{app}: {:.1} requests/s, usually {:.1}", d.value, d.usual)),
        a.errors.map(|d| {
            format!(
                "{app}: {:.0}% of answers are 5xx, usually {:.1}%",
                d.value * 100.0,
                d.usual * 100.0
            )
        }),
        a.latency.map(|d| {
            format!(
                "{app}: 95% of requests answered within {:.0} ms, usually {:.0} ms",
                d.value, d.usual
            )
        }),
        a.unserved.then(|| {
            format!(
                "{app}: {:.1} requests/s and no healthy replica to take them",
                per_sec(window.requests)
            )
        }),
    ];
    let alerts = p.alerts();
    for ((rule, severity), summary) in RULES.into_iter().zip(summaries) {
        match summary {
            Some(summary) => {
                alerts
                    .raise(Condition::of_app(rule, severity, app, summary))
                    .await;
            }
            None => alerts.resolve(rule, Some(app), None).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_and_nothing_else() {
        for (given, name) in [
            ("shop.example.com", "shop.example.com"),
            ("shop.example.com:8443", "shop.example.com"),
            ("shop.localhost:", "shop.localhost:"),
            ("[::1]:8443", "[::1]"),
            ("[::1]", "[::1]"),
            ("a:b", "a:b"),
        ] {
            assert_eq!(without_port(given), name, "{given}");
        }
    }

    #[test]
    fn addresses_and_networks_parse_and_nothing_else_does() {
        assert_eq!(
            parse_net("203.0.113.9").unwrap().to_string(),
            "203.0.113.9/32"
        );
        assert_eq!(
            parse_net(" 198.51.100.7/24 ").unwrap().to_string(),
            "198.51.100.0/24"
        );
        assert_eq!(
            parse_net("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        for bad in [
            "",
            "nonsense",
            "10.0.0.0/33",
            "300.1.1.1",
            "10.0.0.1/",
            "::/129",
        ] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
    }
}

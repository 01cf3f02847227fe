//! Per-client detectors: leaky buckets keyed by client and host, one per
//! behaviour, with CrowdSec's scenarios and defaults as the starting point.
//!
//! | scenario | what pours | capacity | leak |
//! | --- | --- | --- | --- |
//! | probing | a distinct non-static path answered 400, 403 or 404 | 10 | 10 s |
//! | crawling | a distinct non-static path | 40 | 0.5 s |
//! | brute force | a 401, or a login form posted and not accepted (no redirect) | 5 | 10 s |
//! | known-bad path | a path only scanners ask for (`/.env`, `/.git/` …) that the app does not serve | immediate | |
//!
//! An overflow is a [`Decision`]: ban the client (its address; for IPv6
//! its /64, which one host usually holds whole) for 4 h, doubled for each
//! earlier ban in the last 24 h (fail2ban's recidive), at most a week.
//! Operator networks are never tracked or banned. Memory is bounded: at
//! most `max_clients` clients are tracked, the longest quiet ones giving
//! way to new ones.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::bucket::{Bucket, Shape};

/// What a detector recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    Probing,
    Crawling,
    BruteForce,
    KnownBadPath,
}

impl Scenario {
    /// The scenario's name, as bans and alerts show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Probing => "http-probing",
            Scenario::Crawling => "http-crawl-non-statics",
            Scenario::BruteForce => "http-bruteforce",
            Scenario::KnownBadPath => "http-known-bad-path",
        }
    }
}

/// One request the edge answered.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub client: IpAddr,
    pub host: &'a str,
    pub method: &'a str,
    /// The path, with or without its query.
    pub path: &'a str,
    pub status: u16,
}

/// A ban to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The client's address (`/32`), or its `/64` for IPv6.
    pub net: IpNet,
    /// The host it misbehaved on (lowercase), where its ban belongs: an
    /// app's answers are its tenant's to shape, so what a client did on one
    /// app never bans it from another.
    pub host: String,
    pub scenario: Scenario,
    pub duration: Duration,
    /// Earlier bans of this client in the last 24 h.
    pub repeat: u32,
    /// What it did, for people: the scenario, the host and the last path.
    pub reason: String,
}

/// How the detectors judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorConfig {
    pub probing: Shape,
    pub crawling: Shape,
    pub brute_force: Shape,
    /// Path prefixes (lowercase) only scanners ask for.
    pub known_bad_paths: Vec<String>,
    /// The first ban's length.
    pub ban_for: Duration,
    /// The longest ban escalation reaches.
    pub max_ban: Duration,
    /// Networks never tracked or banned (the operator's own).
    pub never_ban: Vec<IpNet>,
    /// The most clients (address and host) tracked at once.
    pub max_clients: usize,
}

/// Paths scanners ask for and web apps on this platform do not serve.
pub const KNOWN_BAD_PATHS: &[&str] = &[
    "/.env",
    "/.git/",
    "/.git/config",
    "/.svn/",
    "/.hg/",
    "/.aws/",
    "/.ssh/",
    "/.ds_store",
    "/.htpasswd",
    "/wp-login.php",
    "/wp-admin",
    "/wp-config.php",
    "/xmlrpc.php",
    "/phpmyadmin",
    "/pma/",
    "/myadmin",
    "/phpinfo.php",
    "/server-status",
    "/cgi-bin/",
    "/vendor/phpunit",
    "/etc/passwd",
    "/actuator/",
    "/boaform/",
    "/hnap1",
];

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            probing: Shape {
                capacity: 10,
                leak: Duration::from_secs(10),
            },
            crawling: Shape {
                capacity: 40,
                leak: Duration::from_millis(500),
            },
            brute_force: Shape {
                capacity: 5,
                leak: Duration::from_secs(10),
            },
            known_bad_paths: KNOWN_BAD_PATHS.iter().map(|p| (*p).to_owned()).collect(),
            ban_for: Duration::from_secs(4 * 3600),
            max_ban: Duration::from_secs(7 * 24 * 3600),
            never_ban: Vec::new(),
            max_clients: 50_000,
        }
    }
}

/// A bucket that counts each distinct path once while it is not empty.
#[derive(Debug, Clone)]
struct Distinct {
    bucket: Bucket,
    seen: HashSet<u64>,
}

impl Distinct {
    fn new(at: Instant) -> Self {
        Self {
            bucket: Bucket::new(at),
            seen: HashSet::new(),
        }
    }

    fn pour(&mut self, shape: Shape, path: u64, now: Instant) -> bool {
        if self.bucket.is_empty(shape, now) {
            self.seen.clear();
        }
        if !self.seen.insert(path) {
            return false;
        }
        self.bucket.pour(shape, now)
    }
}

/// What is known of one client on one host.
#[derive(Debug, Clone)]
struct Track {
    probing: Distinct,
    crawling: Distinct,
    brute_force: Bucket,
    last_seen: Instant,
}

impl Track {
    fn new(at: Instant) -> Self {
        Self {
            probing: Distinct::new(at),
            crawling: Distinct::new(at),
            brute_force: Bucket::new(at),
            last_seen: at,
        }
    }

    fn is_quiet(&self, config: &DetectorConfig, now: Instant) -> bool {
        self.probing.bucket.is_empty(config.probing, now)
            && self.crawling.bucket.is_empty(config.crawling, now)
            && self.brute_force.is_empty(config.brute_force, now)
    }
}

/// The per-client detectors.
#[derive(Debug)]
pub struct Detector {
    config: DetectorConfig,
    hasher: RandomState,
    tracks: HashMap<(IpNet, u64), Track>,
    /// When each client was banned in the last 24 h.
    offences: HashMap<IpNet, Vec<Instant>>,
}

/// The address a client is tracked and banned by.
fn client_net(ip: IpAddr) -> IpNet {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let prefix = if ip.is_ipv4() { 32 } else { 64 };
    IpNet::new(ip, prefix)
        .map(|net| net.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

fn is_static(path: &str) -> bool {
    const STATIC: &[&str] = &[
        ".css", ".js", ".mjs", ".map", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp",
        ".avif", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".mp4", ".webm",
    ];
    path.starts_with("/static/")
        || path.starts_with("/media/")
        || STATIC.iter().any(|ext| path.ends_with(ext))
}

fn is_login(path: &str) -> bool {
    ["login", "signin", "sign_in", "sign-in", "logon", "auth"]
        .iter()
        .any(|word| path.contains(word))
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        Self {
            config,
            hasher: RandomState::new(),
            tracks: HashMap::new(),
            offences: HashMap::new(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// How many clients are tracked now.
    pub fn tracked(&self) -> usize {
        self.tracks.len()
    }

    /// Notes that `net` was banned at `at` from elsewhere (by hand, or
    /// before a restart), so a next ban escalates.
    pub fn remember_ban(&mut self, net: IpNet, at: Instant) {
        self.offences.entry(net).or_default().push(at);
    }

    /// Judges one request answered at `now`; a decision when a bucket
    /// overflowed.
    pub fn observe(&mut self, request: &Request<'_>, now: Instant) -> Option<Decision> {
        let net = client_net(request.client);
        if self
            .config
            .never_ban
            .iter()
            .any(|n| n.contains(&net.addr()))
        {
            return None;
        }
        let path = request.path.split(['?', '#']).next().unwrap_or("");
        let path = path.to_ascii_lowercase();
        let refused = matches!(request.status, 400 | 403 | 404);
        if (400..500).contains(&request.status)
            && request.status != 429
            && self
                .config
                .known_bad_paths
                .iter()
                .any(|bad| path.starts_with(bad.as_str()))
        {
            return Some(self.decide(net, Scenario::KnownBadPath, request, &path, now));
        }
        let host = self.hasher.hash_one(request.host.to_ascii_lowercase());
        let key = (net, host);
        if !self.tracks.contains_key(&key) {
            self.make_room(now);
        }
        let path_hash = self.hasher.hash_one(&path);
        let config = &self.config;
        let track = self.tracks.entry(key).or_insert_with(|| Track::new(now));
        track.last_seen = now;
        let statik = is_static(&path);
        let mut overflow = None;
        if !statik && refused && track.probing.pour(config.probing, path_hash, now) {
            overflow = Some(Scenario::Probing);
        }
        if !statik && track.crawling.pour(config.crawling, path_hash, now) {
            overflow = overflow.or(Some(Scenario::Crawling));
        }
        let failed_login = request.method.eq_ignore_ascii_case("POST")
            && is_login(&path)
            && !(300..400).contains(&request.status)
            && request.status != 429;
        if (request.status == 401 || failed_login)
            && track.brute_force.pour(config.brute_force, now)
        {
            overflow = Some(Scenario::BruteForce);
        }
        overflow.map(|scenario| self.decide(net, scenario, request, &path, now))
    }

    fn decide(
        &mut self,
        net: IpNet,
        scenario: Scenario,
        request: &Request<'_>,
        path: &str,
        now: Instant,
    ) -> Decision {
        let host = request.host.to_ascii_lowercase();
        let host_key = self.hasher.hash_one(&host);
        self.tracks
            .retain(|(client, on), _| *client != net || *on != host_key);
        let times = self.offences.entry(net).or_default();
        times.retain(|t| now.saturating_duration_since(*t) < DAY);
        let repeat = times.len() as u32;
        times.push(now);
        let duration = self
            .config
            .ban_for
            .saturating_mul(1u32 << repeat.min(16))
            .min(self.config.max_ban);
        let shown: String = path.chars().filter(|c| !c.is_control()).take(120).collect();
        let on: String = request
            .host
            .chars()
            .filter(|c| !c.is_control())
            .take(120)
            .collect();
        Decision {
            net,
            host,
            scenario,
            duration,
            repeat,
            reason: format!(
                "{} on {on} (last: {} {shown})",
                scenario.as_str(),
                request.status
            ),
        }
    }

    /// Forgets clients whose buckets have all leaked empty, and offences
    /// older than a day. Called now and then.
    pub fn sweep(&mut self, now: Instant) {
        let config = &self.config;
        self.tracks.retain(|_, track| !track.is_quiet(config, now));
        self.offences.retain(|_, times| {
            times.retain(|t| now.saturating_duration_since(*t) < DAY);
            !times.is_empty()
        });
        while self.offences.len() > self.config.max_clients {
            let Some(oldest) = self
                .offences
                .iter()
                .min_by_key(|(_, times)| times.last().copied())
                .map(|(net, _)| *net)
            else {
                break;
            };
            self.offences.remove(&oldest);
        }
    }

    /// Makes room for one more client: first the quiet ones go, then the
    /// tenth longest unseen.
    fn make_room(&mut self, now: Instant) {
        if self.tracks.len() < self.config.max_clients {
            return;
        }
        self.sweep(now);
        if self.tracks.len() < self.config.max_clients {
            return;
        }
        let mut seen: Vec<Instant> = self.tracks.values().map(|t| t.last_seen).collect();
        let cut = (seen.len() / 10).max(1);
        let (_, nth, _) = seen.select_nth_unstable(cut - 1);
        let oldest = *nth;
        self.tracks.retain(|_, t| t.last_seen > oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(client: &str, path: &'a str, status: u16) -> Request<'a> {
        Request {
            client: client.parse().unwrap(),
            host: "shop.example.com",
            method: "GET",
            path,
            status,
        }
    }

    fn detector() -> Detector {
        Detector::new(DetectorConfig {
            never_ban: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        })
    }

    #[test]
    fn a_scanner_walking_random_paths_is_banned_for_probing() {
        let mut d = detector();
        let t0 = Instant::now();
        let mut decisions = Vec::new();
        for i in 0..11 {
            let path = format!("/admin{i}.bak");
            let at = t0 + Duration::from_millis(100 * i);
            decisions.extend(d.observe(&req("203.0.113.9", &path, 404), at));
        }
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        let decision = &decisions[0];
        assert_eq!(decision.scenario, Scenario::Probing);
        assert_eq!(decision.net, "203.0.113.9/32".parse::<IpNet>().unwrap());
        assert_eq!(decision.host, "shop.example.com");
        assert_eq!(decision.duration, Duration::from_secs(4 * 3600));
        assert!(
            decision.reason.contains("/admin10.bak"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn the_same_missing_path_again_and_again_is_not_probing() {
        let mut d = detector();
        let t0 = Instant::now();
        for i in 0..100 {
            let at = t0 + Duration::from_millis(10 * i);
            assert_eq!(
                d.observe(&req("203.0.113.9", "/favicon.png", 404), at),
                None
            );
            assert_eq!(d.observe(&req("203.0.113.9", "/missing", 404), at), None);
        }
    }

    #[test]
    fn known_bad_paths_ban_at_once_unless_the_app_serves_them() {
        let mut d = detector();
        let t0 = Instant::now();
        let decision = d.observe(&req("198.51.100.7", "/.env", 404), t0).unwrap();
        assert_eq!(decision.scenario, Scenario::KnownBadPath);
        let decision = d
            .observe(&req("198.51.100.8", "/.GIT/config?x=1", 403), t0)
            .unwrap();
        assert_eq!(decision.scenario, Scenario::KnownBadPath);
        // A WordPress site answers its own login page.
        assert_eq!(
            d.observe(&req("198.51.100.9", "/wp-login.php", 200), t0),
            None
        );
        assert_eq!(d.observe(&req("198.51.100.9", "/wp-admin/", 302), t0), None);
    }

    #[test]
    fn repeat_offenders_are_banned_longer_up_to_a_week() {
        let mut d = detector();
        let t0 = Instant::now();
        let durations: Vec<u64> = (0..8)
            .map(|i| {
                let at = t0 + Duration::from_secs(60 * i);
                d.observe(&req("198.51.100.7", "/.env", 404), at)
                    .unwrap()
                    .duration
                    .as_secs()
                    / 3600
            })
            .collect();
        assert_eq!(durations, [4, 8, 16, 32, 64, 128, 168, 168]);
        // A day later the slate is clean.
        let later = t0 + Duration::from_secs(25 * 3600 + 600);
        let decision = d
            .observe(&req("198.51.100.7", "/.env", 404), later)
            .unwrap();
        assert_eq!(
            (decision.repeat, decision.duration.as_secs()),
            (0, 4 * 3600)
        );
    }

    #[test]
    fn login_failures_overflow_the_brute_force_bucket() {
        let mut d = detector();
        let t0 = Instant::now();
        let post = |status| Request {
            method: "POST",
            ..req("192.0.2.1", "/admin/login/", status)
        };
        // Django's admin answers a wrong password with its form again (200).
        let decisions: Vec<Option<Decision>> = (0..6)
            .map(|i| d.observe(&post(200), t0 + Duration::from_millis(500 * i)))
            .collect();
        assert!(decisions[..5].iter().all(Option::is_none), "{decisions:?}");
        assert_eq!(
            decisions[5].as_ref().unwrap().scenario,
            Scenario::BruteForce
        );
        // Logins that succeed (a redirect) never count.
        let mut d = detector();
        for i in 0..50 {
            assert_eq!(
                d.observe(&post(302), t0 + Duration::from_millis(100 * i)),
                None
            );
        }
        // Nor do failures spread out enough to leak away.
        for i in 0..50 {
            assert_eq!(
                d.observe(&post(200), t0 + Duration::from_secs(11 * i)),
                None
            );
        }
        // 401s anywhere do.
        let mut d = detector();
        let api = (0..6)
            .filter_map(|_| d.observe(&req("192.0.2.2", "/api/orders", 401), t0))
            .count();
        assert_eq!(api, 1);
    }

    #[test]
    fn crawling_counts_non_static_pages_only() {
        let mut d = detector();
        let t0 = Instant::now();
        // A page with 200 assets is no crawl.
        for i in 0..200 {
            let path = format!("/static/app.{i}.js");
            assert_eq!(d.observe(&req("192.0.2.3", &path, 200), t0), None);
        }
        let decisions: Vec<Decision> = (0..41)
            .filter_map(|i| {
                let path = format!("/products/{i}");
                d.observe(
                    &req("192.0.2.3", &path, 200),
                    t0 + Duration::from_millis(10 * i),
                )
            })
            .collect();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].scenario, Scenario::Crawling);
    }

    #[test]
    fn operator_networks_are_never_banned_and_hosts_are_judged_apart() {
        let mut d = detector();
        let t0 = Instant::now();
        assert_eq!(d.observe(&req("10.1.2.3", "/.env", 404), t0), None);
        assert_eq!(d.tracked(), 0);
        // Nine misses on each of two hosts: neither bucket overflows.
        for host in ["a.example.com", "b.example.com"] {
            for i in 0..9 {
                let path = format!("/x{i}");
                let r = Request {
                    host,
                    ..req("192.0.2.4", &path, 404)
                };
                assert_eq!(d.observe(&r, t0), None);
            }
        }
    }

    #[test]
    fn ipv6_clients_are_banned_by_their_64_and_mapped_v4_as_v4() {
        let mut d = detector();
        let t0 = Instant::now();
        let decision = d
            .observe(&req("2001:db8:1:2:aaaa::1", "/.env", 404), t0)
            .unwrap();
        assert_eq!(decision.net, "2001:db8:1:2::/64".parse::<IpNet>().unwrap());
        let decision = d
            .observe(&req("::ffff:192.0.2.5", "/.env", 404), t0)
            .unwrap();
        assert_eq!(decision.net, "192.0.2.5/32".parse::<IpNet>().unwrap());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let mut d = Detector::new(DetectorConfig {
            max_clients: 1_000,
            ..Default::default()
        });
        let t0 = Instant::now();
        for i in 0..20_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000u32 + i));
            let r = Request {
                client: ip,
                ..req("192.0.2.1", "/p", 404)
            };
            d.observe(&r, t0 + Duration::from_micros(u64::from(i)));
            assert!(d.tracked() <= 1_000);
        }
        // A scanner arriving in the flood is still caught.
        let caught = (0..11)
            .filter_map(|i| {
                let path = format!("/x{i}");
                d.observe(
                    &req("198.51.100.99", &path, 404),
                    t0 + Duration::from_millis(30),
                )
            })
            .count();
        assert_eq!(caught, 1);
        // Once quiet, everything is forgotten.
        d.sweep(t0 + Duration::from_secs(3600));
        assert_eq!(d.tracked(), 0);
    }
}

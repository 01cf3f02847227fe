//! Shields: per-client request rates (GCRA), per-client and global
//! connection caps, and bans with expiry. Every refusal is counted by kind.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::routes::canonical;

/// Which shield acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShieldAction {
    RateLimited,
    ConnectionsPerIp,
    MaxConnections,
    Banned,
    Denied,
    HeaderTooLarge,
    BodyTooLarge,
    BodyTimeout,
    UnknownHost,
}

impl ShieldAction {
    pub const ALL: [ShieldAction; 9] = [
        ShieldAction::RateLimited,
        ShieldAction::ConnectionsPerIp,
        ShieldAction::MaxConnections,
        ShieldAction::Banned,
        ShieldAction::Denied,
        ShieldAction::HeaderTooLarge,
        ShieldAction::BodyTooLarge,
        ShieldAction::BodyTimeout,
        ShieldAction::UnknownHost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShieldAction::RateLimited => "rate_limited",
            ShieldAction::ConnectionsPerIp => "connections_per_ip",
            ShieldAction::MaxConnections => "max_connections",
            ShieldAction::Banned => "banned",
            ShieldAction::Denied => "denied",
            ShieldAction::HeaderTooLarge => "header_too_large",
            ShieldAction::BodyTooLarge => "body_too_large",
            ShieldAction::BodyTimeout => "body_timeout",
            ShieldAction::UnknownHost => "unknown_host",
        }
    }
}

/// A ban on an address or network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ban {
    pub net: String,
    /// The one host it applies to; every host (and the platform's API)
    /// when `None`.
    pub host: Option<String>,
    pub reason: String,
    /// Seconds left.
    pub remaining_secs: u64,
}

struct BanEntry {
    net: IpNet,
    /// Lowercase, without a port; `None`: every host.
    host: Option<String>,
    until: Instant,
    reason: String,
}

type Limiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// The shields of one edge.
pub struct Shields {
    limiter: RwLock<Arc<Limiter>>,
    clock: DefaultClock,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    per_ip_cap: RwLock<u32>,
    global: Arc<Semaphore>,
    bans: RwLock<Vec<BanEntry>>,
}

impl std::fmt::Debug for Shields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shields").finish_non_exhaustive()
    }
}

fn limiter(limits: &Limits) -> Limiter {
    let rate = NonZeroU32::new(limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limits.burst).unwrap_or(rate);
    RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
}

/// A connection slot; frees itself when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    shields: Arc<Shields>,
    ip: IpAddr,
    _global: OwnedSemaphorePermit,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = self
            .shields
            .per_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Shields {
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            limiter: RwLock::new(Arc::new(limiter(limits))),
            clock: DefaultClock::default(),
            per_ip: Mutex::new(HashMap::new()),
            per_ip_cap: RwLock::new(limits.connections_per_ip),
            global: Arc::new(Semaphore::new(limits.max_connections as usize)),
            bans: RwLock::new(Vec::new()),
        })
    }

    /// Takes a connection slot for `ip`, or says which cap refused it.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, ShieldAction> {
        let ip = canonical(ip);
        let global = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| ShieldAction::MaxConnections)?;
        let cap = *self.per_ip_cap.read().unwrap_or_else(|e| e.into_inner());
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= cap {
            return Err(ShieldAction::ConnectionsPerIp);
        }
        *n += 1;
        Ok(ConnectionSlot {
            shields: self.clone(),
            ip,
            _global: global,
        })
    }

    /// Open connections.
    pub fn open_connections(&self) -> usize {
        self.per_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|n| *n as usize)
            .sum()
    }

    /// Charges one request to `ip`; on refusal, how long to wait.
    pub fn check_rate(&self, ip: IpAddr) -> Result<(), Duration> {
        let limiter = self
            .limiter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        limiter
            .check_key(&canonical(ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Applies new limits; rate state starts afresh.
    pub fn update(&self, limits: &Limits) {
        *self.limiter.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(limiter(limits));
        *self.per_ip_cap.write().unwrap_or_else(|e| e.into_inner()) = limits.connections_per_ip;
    }

    /// Forgets rate state of clients that have been quiet; call now and then
    /// so memory does not grow with every address ever seen.
    pub fn forget_quiet_clients(&self) {
        let limiter = self
            .limiter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        let now = Instant::now();
        self.bans
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|b| b.until > now);
    }

    /// Bans an address or network for `duration`, on every host.
    pub fn ban(&self, net: IpNet, duration: Duration, reason: &str) {
        self.ban_on(net, None, duration, reason);
    }

    /// Bans an address or network for `duration` on one host (`Some`) or
    /// on every host (`None`). A ban of the same network and scope is
    /// replaced.
    pub fn ban_on(&self, net: IpNet, host: Option<&str>, duration: Duration, reason: &str) {
        let until = Instant::now() + duration;
        let host = host.map(str::to_ascii_lowercase);
        let mut bans = self.bans.write().unwrap_or_else(|e| e.into_inner());
        bans.retain(|b| b.net != net || b.host != host);
        tracing::warn!(%net, host = host.as_deref().unwrap_or("*"), ?duration, reason, "ban");
        bans.push(BanEntry {
            net,
            host,
            until,
            reason: reason
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect(),
        });
    }

    /// Lifts the ban of a network on every host; whether there was one.
    pub fn unban(&self, net: IpNet) -> bool {
        self.unban_on(net, None)
    }

    /// Lifts a ban of one scope; whether there was one.
    pub fn unban_on(&self, net: IpNet, host: Option<&str>) -> bool {
        let host = host.map(str::to_ascii_lowercase);
        let mut bans = self.bans.write().unwrap_or_else(|e| e.into_inner());
        let before = bans.len();
        bans.retain(|b| b.net != net || b.host != host);
        before != bans.len()
    }

    /// Whether `ip` is banned on every host.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.banned(ip, None)
    }

    /// Whether `ip` is banned on `host` (a `Host` header's value, with or
    /// without its port): on every host, or on this one.
    pub fn is_banned_on(&self, ip: IpAddr, host: &str) -> bool {
        self.banned(ip, Some(host))
    }

    fn banned(&self, ip: IpAddr, host: Option<&str>) -> bool {
        let ip = canonical(ip);
        let now = Instant::now();
        let bans = self.bans.read().unwrap_or_else(|e| e.into_inner());
        if bans.is_empty() {
            return false;
        }
        let host = host.map(|h| {
            let name = match h.rsplit_once(':') {
                Some((name, port))
                    if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    name
                }
                _ => h,
            };
            name.trim_end_matches('.')
        });
        bans.iter().any(|b| {
            b.until > now
                && b.net.contains(&ip)
                && match (&b.host, host) {
                    (None, _) => true,
                    (Some(scope), Some(host)) => scope.eq_ignore_ascii_case(host),
                    (Some(_), None) => false,
                }
        })
    }

    /// Current bans.
    pub fn bans(&self) -> Vec<Ban> {
        let now = Instant::now();
        self.bans
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|b| b.until > now)
            .map(|b| Ban {
                net: b.net.to_string(),
                host: b.host.clone(),
                reason: b.reason.clone(),
                remaining_secs: (b.until - now).as_secs(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rps: u32, burst: u32, per_ip: u32, global: u32) -> Limits {
        Limits {
            requests_per_second: rps,
            burst,
            connections_per_ip: per_ip,
            max_connections: global,
            ..Limits::default()
        }
    }

    #[test]
    fn rate_limits_are_per_client_with_a_burst() {
        let shields = Shields::new(&limits(1, 3, 10, 10));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        for _ in 0..3 {
            assert!(shields.check_rate(a).is_ok());
        }
        let wait = shields.check_rate(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(
            shields.check_rate(b).is_ok(),
            "another client is not affected"
        );
    }

    #[test]
    fn connection_caps() {
        let shields = Shields::new(&limits(10, 10, 2, 3));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = shields.connect(a).unwrap();
        let _s2 = shields.connect(a).unwrap();
        assert_eq!(
            shields.connect(a).unwrap_err(),
            ShieldAction::ConnectionsPerIp
        );
        let _s3 = shields.connect("127.0.0.3".parse().unwrap()).unwrap();
        assert_eq!(
            shields.connect("127.0.0.4".parse().unwrap()).unwrap_err(),
            ShieldAction::MaxConnections
        );
        drop(s1);
        let _again = shields.connect(a).unwrap();
        assert_eq!(shields.open_connections(), 3);
    }

    #[test]
    fn bans_cover_networks_and_expire() {
        let shields = Shields::new(&Limits::default());
        shields.ban(
            "10.0.0.0/8".parse().unwrap(),
            Duration::from_secs(60),
            "scan",
        );
        assert!(shields.is_banned("10.9.9.9".parse().unwrap()));
        assert!(shields.is_banned("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!shields.is_banned("11.0.0.1".parse().unwrap()));
        assert!(shields.unban("10.0.0.0/8".parse().unwrap()));
        assert!(!shields.is_banned("10.9.9.9".parse().unwrap()));
        shields.ban(
            "127.0.0.9/32".parse().unwrap(),
            Duration::from_millis(1),
            "short",
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(!shields.is_banned("127.0.0.9".parse().unwrap()));
    }

    #[test]
    fn a_ban_on_one_host_leaves_the_others_alone() {
        let shields = Shields::new(&Limits::default());
        let net: IpNet = "192.0.2.7/32".parse().unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        shields.ban_on(
            net,
            Some("Shop.Example.com"),
            Duration::from_secs(60),
            "probing",
        );
        assert!(shields.is_banned_on(ip, "shop.example.com"));
        assert!(shields.is_banned_on(ip, "shop.example.com:8443"));
        assert!(shields.is_banned_on(ip, "SHOP.example.com."));
        assert!(!shields.is_banned_on(ip, "blog.example.com"));
        assert!(!shields.is_banned(ip), "not banned everywhere");
        // A ban everywhere covers every host; each scope is lifted apart.
        shields.ban(net, Duration::from_secs(60), "by hand");
        assert!(shields.is_banned_on(ip, "blog.example.com"));
        assert!(shields.unban(net));
        assert!(shields.is_banned_on(ip, "shop.example.com"));
        assert!(shields.unban_on(net, Some("shop.example.com")));
        assert!(!shields.is_banned_on(ip, "shop.example.com"));
        assert_eq!(shields.bans(), []);
    }
}

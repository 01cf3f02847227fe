//! Which site a request is for: host matching, exact names first, then
//! `*.example.com` wildcards (one label deep). Pure and I/O-free, so the
//! matching rules are tested (and fuzzed) on their own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// A host a site answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as `example.com`.
    Wildcard(String),
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

impl HostPattern {
    /// Parses `name.example.com` or `*.example.com` (lowercase DNS labels).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (wild, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if rest.is_empty() || rest.len() > 253 || !rest.split('.').all(valid_label) {
            return Err(format!(
                "{text:?} is not a lowercase host name or *.wildcard"
            ));
        }
        if wild && !rest.contains('.') {
            return Err(format!(
                "{text:?}: a wildcard needs at least two labels after *."
            ));
        }
        Ok(if wild {
            HostPattern::Wildcard(rest.to_owned())
        } else {
            HostPattern::Exact(rest.to_owned())
        })
    }

    pub fn is_wildcard(&self) -> bool {
        matches!(self, HostPattern::Wildcard(_))
    }

    /// The pattern as written.
    pub fn text(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Wildcard(h) => format!("*.{h}"),
        }
    }
}

/// Where a site's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    Internal,
    Acme,
    Files { cert: PathBuf, key: PathBuf },
}

/// One site: the hosts it answers for and where its traffic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSpec {
    pub hosts: Vec<HostPattern>,
    pub tls: TlsMode,
    pub upstreams: Vec<SocketAddr>,
    pub health_path: String,
    pub health_interval: Duration,
    /// Failed checks in a row that take an upstream out.
    pub health_fails: u32,
    /// Passed checks in a row that bring it back.
    pub health_passes: u32,
    /// When not empty, only these clients may use the site.
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
}

impl SiteSpec {
    /// The site's name in metrics and logs: its first host.
    pub fn name(&self) -> String {
        self.hosts
            .first()
            .map(HostPattern::text)
            .unwrap_or_default()
    }

    /// Whether a client may use the site.
    pub fn admits(&self, ip: std::net::IpAddr) -> bool {
        let ip = canonical(ip);
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// The `Strict-Transport-Security` value.
    pub fn hsts(&self) -> &'static str {
        HSTS[usize::from(self.hsts_include_subdomains) + 2 * usize::from(self.hsts_preload)]
    }

    /// The `Strict-Transport-Security` header, without an allocation.
    pub fn hsts_header(&self) -> hyper::header::HeaderValue {
        hyper::header::HeaderValue::from_static(self.hsts())
    }
}

/// `Strict-Transport-Security` values by (includeSubDomains + 2 × preload).
pub const HSTS: [&str; 4] = [
    "max-age=63072000",
    "max-age=63072000; includeSubDomains",
    "max-age=63072000; preload",
    "max-age=63072000; includeSubDomains; preload",
];

/// IPv4-mapped IPv6 addresses are treated as the IPv4 address they carry.
pub fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// All sites, indexed for lookup by host. Swapped whole on reload.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    sites: Vec<Arc<SiteSpec>>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
}

impl RouteTable {
    /// Builds a table; a host claimed by two sites is an error
    /// `(key, message)`.
    pub fn new(sites: Vec<SiteSpec>) -> Result<Self, (String, String)> {
        let mut table = RouteTable::default();
        for (i, site) in sites.into_iter().enumerate() {
            for host in &site.hosts {
                let (map, name) = match host {
                    HostPattern::Exact(h) => (&mut table.exact, h),
                    HostPattern::Wildcard(h) => (&mut table.wildcard, h),
                };
                if map.insert(name.clone(), i).is_some() {
                    return Err((
                        format!("site[{i}].hosts"),
                        format!("{} is already served by another site", host.text()),
                    ));
                }
            }
            table.sites.push(Arc::new(site));
        }
        Ok(table)
    }

    pub fn sites(&self) -> &[Arc<SiteSpec>] {
        &self.sites
    }

    /// The site for a `Host` header or SNI name: case-insensitive, port and
    /// trailing dot ignored.
    pub fn lookup(&self, host: &str) -> Option<&Arc<SiteSpec>> {
        self.find(host).map(|(_, site)| site)
    }

    /// Like [`RouteTable::lookup`], with the site's position in the table.
    pub fn find(&self, host: &str) -> Option<(usize, &Arc<SiteSpec>)> {
        let host = normalize_host(host)?;
        let i = match self.exact.get(&*host) {
            Some(&i) => i,
            None => {
                let (_, parent) = host.split_once('.')?;
                *self.wildcard.get(parent)?
            }
        };
        self.sites.get(i).map(|s| (i, s))
    }
}

/// Lowercases a host and strips a port and a trailing dot; `None` for
/// anything that cannot be a host name.
pub fn normalize_host(host: &str) -> Option<std::borrow::Cow<'_, str>> {
    let host = if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal never names a site.
        let _ = rest;
        return None;
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    // One pass checks the labels and whether any letter is upper case;
    // most clients send the name in lower case, so no copy is made then.
    let mut upper = false;
    let (mut label, mut last) = (0usize, b'.');
    for b in host.bytes() {
        if b == b'.' {
            if label == 0 || last == b'-' {
                return None;
            }
            label = 0;
        } else {
            upper |= b.is_ascii_uppercase();
            let b = b.to_ascii_lowercase();
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                || (b == b'-' && label == 0)
            {
                return None;
            }
            label += 1;
            if label > 63 {
                return None;
            }
        }
        last = b;
    }
    if label == 0 || last == b'-' {
        return None;
    }
    Some(if upper {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(hosts: &[&str]) -> SiteSpec {
        SiteSpec {
            hosts: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            tls: TlsMode::Internal,
            upstreams: vec!["127.0.0.1:1".parse().unwrap()],
            health_path: "/".into(),
            health_interval: Duration::from_secs(1),
            health_fails: 3,
            health_passes: 2,
            allow: vec![],
            deny: vec![],
            hsts_include_subdomains: false,
            hsts_preload: false,
        }
    }

    /// The plain statement of what `normalize_host` accepts, kept to check
    /// the one-pass version against.
    fn normalize_reference(host: &str) -> Option<String> {
        if host.starts_with('[') {
            return None;
        }
        let host = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h);
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || host.len() > 253 {
            return None;
        }
        let lower = host.to_ascii_lowercase();
        lower.split('.').all(valid_label).then_some(lower)
    }

    #[test]
    fn host_normalization_matches_its_plain_statement() {
        let long_label = "a".repeat(63);
        let too_long_label = "a".repeat(64);
        let mut cases: Vec<String> = [
            "app.localhost",
            "APP.LocalHost",
            "app.localhost:8443",
            "app.localhost.",
            "app.localhost.:443",
            "app..localhost",
            ".app",
            "app.",
            "-app.x",
            "app-.x",
            "a-b.x",
            "a_b.x",
            "app.localhost:",
            "app.localhost:44a",
            "[::1]:443",
            "",
            ":",
            ".",
            "..",
            "-",
            "a",
            "A",
            "1.2.3.4",
            "xn--bcher-kva.example",
            "app.local host",
            "app.localhöst",
            "app.localhost::1",
            "é.x",
            "a.-",
            "a.b-",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cases.push(format!("{long_label}.x"));
        cases.push(format!("{too_long_label}.x"));
        cases.push(format!("{}.x", "b.".repeat(125)));
        cases.push(format!("{}.x", "b.".repeat(126)));
        // Every string over a small alphabet up to four characters long.
        let alphabet = ['a', 'Z', '0', '-', '.', ':', '['];
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            frontier = frontier
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            cases.extend(frontier.iter().cloned());
        }
        for case in &cases {
            assert_eq!(
                normalize_host(case).map(|h| h.into_owned()),
                normalize_reference(case),
                "{case:?}"
            );
        }
    }

    #[test]
    fn exact_names_win_over_wildcards() {
        let table =
            RouteTable::new(vec![site(&["*.example.com"]), site(&["api.example.com"])]).unwrap();
        assert_eq!(
            table.lookup("api.example.com").unwrap().name(),
            "api.example.com"
        );
        assert_eq!(
            table.lookup("www.example.com").unwrap().name(),
            "*.example.com"
        );
        assert_eq!(
            table.lookup("WWW.Example.COM:8443").unwrap().name(),
            "*.example.com"
        );
        assert_eq!(
            table.lookup("www.example.com.").unwrap().name(),
            "*.example.com"
        );
        assert!(
            table.lookup("example.com").is_none(),
            "a wildcard does not match its parent"
        );
        assert!(
            table.lookup("a.b.example.com").is_none(),
            "a wildcard covers one label"
        );
        assert!(table.lookup("evil.com").is_none());
        assert!(table.lookup("").is_none());
        assert!(table.lookup("[::1]:8443").is_none());
        assert!(table.lookup("a b.example.com").is_none());
    }

    #[test]
    fn a_host_belongs_to_one_site() {
        let err =
            RouteTable::new(vec![site(&["a.localhost"]), site(&["a.localhost"])]).unwrap_err();
        assert_eq!(err.0, "site[1].hosts");
    }

    #[test]
    fn allow_and_deny_lists() {
        let mut s = site(&["a.localhost"]);
        s.deny = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(!s.admits("10.1.2.3".parse().unwrap()));
        assert!(
            !s.admits("::ffff:10.1.2.3".parse().unwrap()),
            "mapped addresses do not slip through"
        );
        assert!(s.admits("127.0.0.1".parse().unwrap()));
        s.allow = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(!s.admits("192.0.2.1".parse().unwrap()));
        assert!(s.admits("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn hsts_values() {
        let mut s = site(&["a.localhost"]);
        assert_eq!(s.hsts(), "max-age=63072000");
        s.hsts_include_subdomains = true;
        assert_eq!(s.hsts(), "max-age=63072000; includeSubDomains");
        s.hsts_preload = true;
        assert_eq!(s.hsts(), "max-age=63072000; includeSubDomains; preload");
        s.hsts_include_subdomains = false;
        assert_eq!(s.hsts(), "max-age=63072000; preload");
    }
}

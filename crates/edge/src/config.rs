//! `edge.toml`: parsed into raw serde structs that refuse unknown keys, then
//! validated once into [`EdgeConfig`]. Errors name the key (`site[2].upstreams`)
//! and, for syntax errors, the line. Every key and its default is in
//! `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::routes::{HostPattern, RouteTable, SiteSpec, TlsMode};

/// Why an `edge.toml` was refused: the same error as `rampart.toml`'s.
pub use rampart_core::config::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    site: Vec<RawSite>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    http: Option<String>,
    https: Option<String>,
    admin: Option<String>,
    workers: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    state_dir: Option<PathBuf>,
    acme_directory: Option<String>,
    acme_email: Option<String>,
    acme_trust: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    requests_per_second: Option<u32>,
    burst: Option<u32>,
    connections_per_ip: Option<u32>,
    max_connections: Option<u32>,
    header_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    max_header_bytes: Option<u32>,
    max_body_bytes: Option<u64>,
    h2_max_concurrent_streams: Option<u32>,
    h2_max_pending_reset_streams: Option<u32>,
    drain_timeout_ms: Option<u64>,
    upstream_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    access: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    hosts: Option<Vec<String>>,
    tls: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    upstreams: Option<Vec<String>>,
    health_path: Option<String>,
    health_interval_ms: Option<u64>,
    health_fails: Option<u32>,
    health_passes: Option<u32>,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    hsts_include_subdomains: Option<bool>,
    hsts_preload: Option<bool>,
}

/// Listener addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// HTTPS worker threads, each with its own single-threaded runtime
    /// accepting on the same socket. `None` serves HTTPS on the runtime
    /// that started the edge.
    pub workers: Option<usize>,
}

/// Most HTTPS worker threads an edge may run.
pub const MAX_WORKERS: u32 = 256;

/// TLS and ACME settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub state_dir: PathBuf,
    pub acme_directory: Option<String>,
    pub acme_email: Option<String>,
    pub acme_trust: Option<PathBuf>,
}

/// The shields' limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_second: u32,
    pub burst: u32,
    pub connections_per_ip: u32,
    pub max_connections: u32,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    pub h2_max_concurrent_streams: u32,
    pub h2_max_pending_reset_streams: usize,
    pub drain_timeout: Duration,
    /// A replica connection with no byte either way for this long fails.
    pub upstream_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests_per_second: 100,
            burst: 200,
            connections_per_ip: 256,
            max_connections: 10_000,
            header_timeout: Duration::from_millis(10_000),
            idle_timeout: Duration::from_millis(60_000),
            body_timeout: Duration::from_millis(30_000),
            max_header_bytes: 16_384,
            max_body_bytes: 10_485_760,
            h2_max_concurrent_streams: 100,
            h2_max_pending_reset_streams: 20,
            drain_timeout: Duration::from_millis(10_000),
            upstream_timeout: Duration::from_millis(60_000),
        }
    }
}

/// The validated edge configuration.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub listen: Listen,
    pub tls: TlsSettings,
    pub limits: Limits,
    pub access_log: Option<PathBuf>,
    pub routes: RouteTable,
}

fn addr(key: &str, value: Option<&str>, default: &str) -> Result<SocketAddr, ConfigError> {
    let text = value.unwrap_or(default);
    text.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("{text:?} is not an address and port such as 127.0.0.1:8443"),
        )
    })
}

fn positive<T: PartialOrd + Default + Copy + std::fmt::Display>(
    key: &str,
    value: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if v <= T::default() {
        return Err(ConfigError::invalid(
            key,
            format!("{v} must be greater than zero"),
        ));
    }
    Ok(v)
}

impl EdgeConfig {
    /// Parses and validates the text of an `edge.toml`.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = rampart_core::config::parse_toml(text)?;
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen = Listen {
            http: addr("listen.http", raw.listen.http.as_deref(), "127.0.0.1:8080")?,
            https: addr(
                "listen.https",
                raw.listen.https.as_deref(),
                "127.0.0.1:8443",
            )?,
            admin: match raw.listen.admin.as_deref() {
                Some("") => None,
                other => Some(addr("listen.admin", other, "127.0.0.1:9180")?),
            },
            workers: match raw.listen.workers {
                None => None,
                Some(n) if (1..=MAX_WORKERS).contains(&n) => Some(n as usize),
                Some(n) => {
                    return Err(ConfigError::invalid(
                        "listen.workers",
                        format!("{n} must be between 1 and {MAX_WORKERS}"),
                    ));
                }
            },
        };
        let tls = TlsSettings {
            state_dir: raw
                .tls
                .state_dir
                .unwrap_or_else(|| PathBuf::from("edge-state")),
            acme_directory: raw.tls.acme_directory,
            acme_email: raw.tls.acme_email,
            acme_trust: raw.tls.acme_trust,
        };
        if let Some(dir) = &tls.acme_directory {
            if !dir.starts_with("https://") {
                return Err(ConfigError::invalid(
                    "tls.acme_directory",
                    format!("{dir:?} must be an https:// URL"),
                ));
            }
        }
        if let Some(email) = &tls.acme_email {
            if !email.contains('@') || email.chars().any(char::is_whitespace) {
                return Err(ConfigError::invalid(
                    "tls.acme_email",
                    format!("{email:?} is not an email address"),
                ));
            }
        }

        let d = Limits::default();
        let l = raw.limits;
        let ms = |v: Option<u64>, def: Duration| v.map_or(def, Duration::from_millis);
        let limits = Limits {
            requests_per_second: positive(
                "limits.requests_per_second",
                l.requests_per_second,
                d.requests_per_second,
            )?,
            burst: positive("limits.burst", l.burst, d.burst)?,
            connections_per_ip: positive(
                "limits.connections_per_ip",
                l.connections_per_ip,
                d.connections_per_ip,
            )?,
            max_connections: positive(
                "limits.max_connections",
                l.max_connections,
                d.max_connections,
            )?,
            header_timeout: ms(
                Some(positive(
                    "limits.header_timeout_ms",
                    l.header_timeout_ms,
                    10_000,
                )?),
                d.header_timeout,
            ),
            idle_timeout: ms(
                Some(positive(
                    "limits.idle_timeout_ms",
                    l.idle_timeout_ms,
                    60_000,
                )?),
                d.idle_timeout,
            ),
            body_timeout: ms(
                Some(positive(
                    "limits.body_timeout_ms",
                    l.body_timeout_ms,
                    30_000,
                )?),
                d.body_timeout,
            ),
            max_header_bytes: positive("limits.max_header_bytes", l.max_header_bytes, 16_384)?
                as usize,
            max_body_bytes: positive("limits.max_body_bytes", l.max_body_bytes, d.max_body_bytes)?,
            h2_max_concurrent_streams: positive(
                "limits.h2_max_concurrent_streams",
                l.h2_max_concurrent_streams,
                100,
            )?,
            h2_max_pending_reset_streams: positive(
                "limits.h2_max_pending_reset_streams",
                l.h2_max_pending_reset_streams,
                20,
            )? as usize,
            drain_timeout: ms(
                Some(positive(
                    "limits.drain_timeout_ms",
                    l.drain_timeout_ms,
                    10_000,
                )?),
                d.drain_timeout,
            ),
            upstream_timeout: ms(
                Some(positive(
                    "limits.upstream_timeout_ms",
                    l.upstream_timeout_ms,
                    60_000,
                )?),
                d.upstream_timeout,
            ),
        };
        if limits.max_header_bytes < 1024 {
            return Err(ConfigError::invalid(
                "limits.max_header_bytes",
                "must be at least 1024",
            ));
        }

        let mut sites = Vec::new();
        for (i, site) in raw.site.into_iter().enumerate() {
            sites.push(validate_site(i, site, &tls)?);
        }
        let routes =
            RouteTable::new(sites).map_err(|(key, message)| ConfigError::invalid(key, message))?;
        Ok(Self {
            listen,
            tls,
            limits,
            access_log: raw.log.access.filter(|p| !p.as_os_str().is_empty()),
            routes,
        })
    }
}

fn validate_site(i: usize, raw: RawSite, tls: &TlsSettings) -> Result<SiteSpec, ConfigError> {
    let key = |k: &str| format!("site[{i}].{k}");
    let hosts = raw.hosts.unwrap_or_default();
    if hosts.is_empty() {
        return Err(ConfigError::invalid(
            key("hosts"),
            "a site needs at least one host",
        ));
    }
    let hosts = hosts
        .iter()
        .map(|h| HostPattern::parse(h).map_err(|m| ConfigError::invalid(key("hosts"), m)))
        .collect::<Result<Vec<_>, _>>()?;
    let tls_mode = match raw.tls.as_deref().unwrap_or("internal") {
        "internal" => TlsMode::Internal,
        "acme" => {
            if tls.acme_directory.is_none() {
                return Err(ConfigError::invalid(
                    key("tls"),
                    "\"acme\" needs tls.acme_directory",
                ));
            }
            if hosts.iter().any(HostPattern::is_wildcard) {
                return Err(ConfigError::invalid(
                    key("tls"),
                    "HTTP-01 cannot issue wildcard certificates; use files or internal",
                ));
            }
            TlsMode::Acme
        }
        "files" => {
            let (Some(cert), Some(k)) = (raw.cert.clone(), raw.key.clone()) else {
                return Err(ConfigError::invalid(
                    key("tls"),
                    "\"files\" needs cert and key paths",
                ));
            };
            TlsMode::Files { cert, key: k }
        }
        other => {
            return Err(ConfigError::invalid(
                key("tls"),
                format!("{other:?} is not internal, acme or files"),
            ));
        }
    };
    if !matches!(tls_mode, TlsMode::Files { .. }) && (raw.cert.is_some() || raw.key.is_some()) {
        return Err(ConfigError::invalid(
            key("cert"),
            "cert and key are only used with tls = \"files\"",
        ));
    }
    let upstreams = raw.upstreams.unwrap_or_default();
    if upstreams.is_empty() {
        return Err(ConfigError::invalid(
            key("upstreams"),
            "a site needs at least one upstream",
        ));
    }
    let upstreams = upstreams
        .iter()
        .map(|u| {
            u.parse::<SocketAddr>().map_err(|_| {
                ConfigError::invalid(
                    key("upstreams"),
                    format!("{u:?} is not an address and port"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cidrs = |name: &str, list: Option<Vec<String>>| -> Result<Vec<IpNet>, ConfigError> {
        list.unwrap_or_default()
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::invalid(
                            key(name),
                            format!("{c:?} is not an IP address or CIDR block"),
                        )
                    })
            })
            .collect()
    };
    let health_path = raw.health_path.unwrap_or_else(|| "/".into());
    if !health_path.starts_with('/')
        || health_path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::invalid(
            key("health_path"),
            format!("{health_path:?} must be a path starting with /"),
        ));
    }
    Ok(SiteSpec {
        hosts,
        tls: tls_mode,
        upstreams,
        health_path,
        health_interval: Duration::from_millis(positive(
            &key("health_interval_ms"),
            raw.health_interval_ms,
            2000,
        )?),
        health_fails: positive(&key("health_fails"), raw.health_fails, 3)?,
        health_passes: positive(&key("health_passes"), raw.health_passes, 2)?,
        allow: cidrs("allow", raw.allow)?,
        deny: cidrs("deny", raw.deny)?,
        hsts_include_subdomains: raw.hsts_include_subdomains.unwrap_or(false),
        hsts_preload: raw.hsts_preload.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[listen]
http = "127.0.0.1:8080"
https = "127.0.0.1:8443"
admin = "127.0.0.1:9180"

[tls]
state_dir = "edge-state"
acme_directory = "https://127.0.0.1:14000/dir"
acme_email = "ops@example.com"
acme_trust = "pebble-ca.pem"

[limits]
requests_per_second = 100
burst = 200
connections_per_ip = 256
max_connections = 10000
header_timeout_ms = 10000
idle_timeout_ms = 60000
body_timeout_ms = 30000
max_header_bytes = 16384
max_body_bytes = 10485760

[log]
access = "edge-access.jsonl"

[[site]]
hosts = ["app.localhost"]
tls = "internal"
upstreams = ["127.0.0.1:9001", "127.0.0.1:9002"]
health_path = "/healthz"
health_interval_ms = 1000
deny = ["10.0.0.0/8"]
"#;

    #[test]
    fn the_documented_example_parses() {
        let config = EdgeConfig::from_toml(FULL).unwrap();
        assert_eq!(config.listen.https.port(), 8443);
        assert_eq!(config.routes.sites().len(), 1);
        assert_eq!(config.limits.burst, 200);
        assert!(config.routes.lookup("app.localhost").is_some());
        assert_eq!(config.listen.workers, None);
        let two = EdgeConfig::from_toml("[listen]\nworkers = 2").unwrap();
        assert_eq!(two.listen.workers, Some(2));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[listen]\nhttps = \"nope\"", "listen.https"),
            ("[limits]\nburst = 0", "limits.burst"),
            ("[listen]\nworkers = 0", "listen.workers"),
            (
                "[limits]\nupstream_timeout_ms = 0",
                "limits.upstream_timeout_ms",
            ),
            ("[listen]\nworkers = 100000", "listen.workers"),
            ("[listen]\nworkers = -1", "listen.workers"),
            ("[limits]\nburst = \"many\"", "limits.burst"),
            ("[[site]]\nupstreams = [\"127.0.0.1:1\"]", "site[0].hosts"),
            ("[[site]]\nhosts = [\"a.localhost\"]", "site[0].upstreams"),
            (
                "[[site]]\nhosts = [\"a.localhost\"]\nupstreams = [\"x\"]",
                "site[0].upstreams",
            ),
            (
                "[[site]]\nhosts = [\"Bad Host\"]\nupstreams = [\"127.0.0.1:1\"]",
                "site[0].hosts",
            ),
            (
                "[[site]]\nhosts = [\"a.localhost\"]\nupstreams = [\"127.0.0.1:1\"]\ntls = \"acme\"",
                "site[0].tls",
            ),
            (
                "[[site]]\nhosts = [\"a.localhost\"]\nupstreams = [\"127.0.0.1:1\"]\ndeny = [\"10.0.0.0/33\"]",
                "site[0].deny",
            ),
            (
                "[[site]]\nhosts = [\"a.localhost\"]\nupstreams = [\"127.0.0.1:1\"]\n[[site]]\nhosts = [\"a.localhost\"]\nupstreams = [\"127.0.0.1:2\"]",
                "site[1].hosts",
            ),
        ];
        for (text, key) in cases {
            let err = EdgeConfig::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?}: {err}");
        }
        let err = EdgeConfig::from_toml("[limits]\nrate = 1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `rate`") && err.starts_with("line 2"),
            "{err}"
        );
    }
}

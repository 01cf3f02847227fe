//! `[vulns]`: where the platform fetches advisory data by itself, for an
//! operator whose machine may reach the internet.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVulns {
    urls: Option<Vec<String>>,
    fetch_every: Option<String>,
    first_fetch: Option<String>,
    patch_check_every: Option<String>,
}

/// The `[vulns]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VulnsConfig {
    /// OSV archives (`…/PyPI/all.zip`) fetched and imported on a
    /// schedule; empty: advisories come only from `rampart vulns db
    /// import`.
    pub urls: Vec<String>,
    /// How often they are fetched.
    pub fetch_every_secs: u64,
    /// How long after start the first fetch waits (`first_fetch`, a
    /// minute by default, so a start is not slowed by it).
    pub first_fetch_secs: u64,
    /// How often apps with `auto_patch` are looked at (`patch_check_every`,
    /// 10 minutes by default).
    pub patch_check_every_secs: u64,
}

pub(super) fn validate_vulns(raw: RawVulns) -> Result<VulnsConfig, ConfigError> {
    let urls = raw.urls.unwrap_or_default();
    if urls.len() > 32 {
        return Err(ConfigError::invalid("vulns.urls", "at most 32 archives"));
    }
    for url in &urls {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let host = rest
            .and_then(|r| r.split(['/', '?']).next())
            .unwrap_or_default();
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let loopback = name == "localhost"
            || name
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let fine = rest.is_some()
            && !name.is_empty()
            && url.len() <= 2048
            && !url.chars().any(|c| c.is_control() || c == ' ')
            && (url.starts_with("https://") || loopback);
        if !fine {
            return Err(ConfigError::invalid(
                "vulns.urls",
                format!("{url:?} is not an https:// URL (http:// only to this machine)"),
            ));
        }
    }
    let fetch_every_secs = match raw.fetch_every {
        None => 86_400,
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| (3600..=7 * 86_400).contains(secs))
            .ok_or_else(|| {
                ConfigError::invalid("vulns.fetch_every", "must be a duration from 1h to 7d")
            })?,
    };
    let first_fetch_secs = match raw.first_fetch {
        None => 60,
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| *secs <= 86_400)
            .ok_or_else(|| {
                ConfigError::invalid("vulns.first_fetch", "must be a duration up to 1d")
            })?,
    };
    let patch_check_every_secs = match raw.patch_check_every {
        None => 600,
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| (5..=86_400).contains(secs))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "vulns.patch_check_every",
                    "must be a duration from 5s to 1d",
                )
            })?,
    };
    Ok(VulnsConfig {
        urls,
        fetch_every_secs,
        first_fetch_secs,
        patch_check_every_secs,
    })
}

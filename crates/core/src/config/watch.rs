//! `[watch]` and `[notify]`: what the platform does about the traffic it
//! sees, and how it tells people.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatch {
    enabled: Option<bool>,
    ban_for: Option<String>,
    never_ban: Option<Vec<String>>,
    baseline_warmup: Option<String>,
    baseline_margin: Option<f64>,
}

/// The `[watch]` table: what the platform does about the traffic it sees.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Ban clients the detectors catch (on by default).
    pub enabled: bool,
    /// The first ban's length; repeat offenders get longer ones.
    pub ban_for_secs: u64,
    /// Networks never banned, in CIDR form (the operator's own).
    pub never_ban: Vec<String>,
    /// How long an app's traffic is learned before departures from it
    /// raise alerts.
    pub baseline_warmup_secs: u64,
    /// Standard deviations above the usual that count as a departure.
    pub baseline_margin: f64,
}

pub(super) fn validate_watch(raw: RawWatch) -> Result<WatchConfig, ConfigError> {
    let ban_for_secs = match raw.ban_for {
        None => 4 * 3600,
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| (60..=30 * 86_400).contains(secs))
            .ok_or_else(|| {
                ConfigError::invalid("watch.ban_for", "must be a duration from 1m to 30d")
            })?,
    };
    let never_ban = raw.never_ban.unwrap_or_default();
    for net in &never_ban {
        let valid = net.parse::<std::net::IpAddr>().is_ok() || {
            let (addr, len) = net.split_once('/').unwrap_or(("", ""));
            let max = match addr.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(_)) => 32,
                Ok(std::net::IpAddr::V6(_)) => 128,
                Err(_) => -1,
            };
            len.parse::<i32>().is_ok_and(|len| (0..=max).contains(&len))
        };
        if !valid {
            return Err(ConfigError::invalid(
                "watch.never_ban",
                format!("{net:?} is not an address or a network such as 10.0.0.0/8"),
            ));
        }
    }
    let baseline_warmup_secs = match raw.baseline_warmup {
        None => 3600,
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| (30..=30 * 86_400).contains(secs))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "watch.baseline_warmup",
                    "must be a duration from 30s to 30d",
                )
            })?,
    };
    let baseline_margin = raw.baseline_margin.unwrap_or(4.0);
    if !(1.0..=20.0).contains(&baseline_margin) {
        return Err(ConfigError::invalid(
            "watch.baseline_margin",
            "must be between 1 and 20 standard deviations",
        ));
    }
    Ok(WatchConfig {
        enabled: raw.enabled.unwrap_or(true),
        ban_for_secs,
        never_ban,
        baseline_warmup_secs,
        baseline_margin,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    smtp: Option<RawSmtp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    from: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

/// The `[notify]` table: how alert channels reach people.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// The mail server email channels send through; `None`: no email
    /// channel can be added.
    pub smtp: Option<SmtpConfig>,
}

/// A mail server reached on its submission port with STARTTLS, which is
/// required: a server that does not offer it gets no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    /// 587 unless set.
    pub port: u16,
    /// The sender, `alerts@example.com` or `Rampart <alerts@example.com>`.
    pub from: String,
    /// Login, with the password read from `password_file` at startup.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// A certificate authority trusted besides the system's, for a mail
    /// relay with a private certificate.
    pub ca_file: Option<PathBuf>,
}

pub(super) fn validate_notify(raw: RawNotify) -> Result<NotifyConfig, ConfigError> {
    let Some(raw) = raw.smtp else {
        return Ok(NotifyConfig::default());
    };
    let host = raw
        .host
        .filter(|h| !h.is_empty() && h.len() <= 253)
        .ok_or_else(|| ConfigError::invalid("notify.smtp.host", "names the mail server"))?;
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@')
    {
        return Err(ConfigError::invalid(
            "notify.smtp.host",
            format!("{host:?} is not a host name or address"),
        ));
    }
    let port = raw.port.unwrap_or(587);
    if port == 0 {
        return Err(ConfigError::invalid("notify.smtp.port", "must not be 0"));
    }
    let from = raw.from.ok_or_else(|| {
        ConfigError::invalid(
            "notify.smtp.from",
            "names the sender, such as alerts@example.com",
        )
    })?;
    if !from.contains('@') || from.len() > 320 || from.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            "notify.smtp.from",
            format!("{from:?} is not an email address"),
        ));
    }
    if raw.username.is_some() != raw.password_file.is_some() {
        return Err(ConfigError::invalid(
            "notify.smtp.password_file",
            "goes with notify.smtp.username: set both or neither",
        ));
    }
    Ok(NotifyConfig {
        smtp: Some(SmtpConfig {
            host,
            port,
            from,
            username: raw.username,
            password_file: raw.password_file,
            ca_file: raw.ca_file,
        }),
    })
}

//! `[incidents]`: which alerts open incidents by themselves, and how long
//! an incident of each severity may wait for someone to acknowledge it
//! before the next notification channel is told. `[doctor]`: when the
//! self-audit runs by itself.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIncidents {
    open_at: Option<String>,
    #[serde(default)]
    ack_within: RawAckWithin,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAckWithin {
    low: Option<String>,
    medium: Option<String>,
    high: Option<String>,
    critical: Option<String>,
}

/// The `[incidents]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentsConfig {
    /// The least alert severity that opens an incident (`warning` or
    /// `critical`); `None` (`open_at = "never"`): incidents are opened by
    /// hand only.
    pub open_at: Option<String>,
    /// Seconds an incident may stay unacknowledged before it escalates,
    /// for `low`, `medium`, `high` and `critical`.
    pub ack_within_secs: [u64; 4],
}

impl IncidentsConfig {
    /// The escalation window of an incident of `severity`.
    pub fn ack_within(&self, severity: &str) -> u64 {
        let index = match severity {
            "low" => 0,
            "medium" => 1,
            "high" => 2,
            _ => 3,
        };
        self.ack_within_secs[index]
    }
}

pub(super) fn validate_incidents(raw: RawIncidents) -> Result<IncidentsConfig, ConfigError> {
    let open_at = match raw.open_at.as_deref() {
        None | Some("critical") => Some("critical".to_owned()),
        Some("warning") => Some("warning".to_owned()),
        Some("never") => None,
        Some(other) => {
            return Err(ConfigError::invalid(
                "incidents.open_at",
                format!("{other:?} is not warning, critical or never"),
            ));
        }
    };
    let window = |name: &str, text: Option<String>, default: u64| match text {
        None => Ok(default),
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| (1..=7 * 86_400).contains(secs))
            .ok_or_else(|| {
                ConfigError::invalid(
                    format!("incidents.ack_within.{name}"),
                    "must be a duration from 1s to 7d",
                )
            }),
    };
    let a = raw.ack_within;
    Ok(IncidentsConfig {
        open_at,
        ack_within_secs: [
            window("low", a.low, 8 * 3600)?,
            window("medium", a.medium, 2 * 3600)?,
            window("high", a.high, 30 * 60)?,
            window("critical", a.critical, 15 * 60)?,
        ],
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDoctor {
    every: Option<String>,
    first_run: Option<String>,
}

/// The `[doctor]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorConfig {
    /// How often the self-audit runs by itself (`every`, daily).
    pub every_secs: u64,
    /// How long after start the first run waits (`first_run`, 10 minutes,
    /// so that a restart in the middle of fixing something is not met by
    /// an alert about it).
    pub first_run_secs: u64,
}

pub(super) fn validate_doctor(raw: RawDoctor) -> Result<DoctorConfig, ConfigError> {
    let every_secs = match raw.every {
        None => 86_400,
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| (3600..=7 * 86_400).contains(secs))
            .ok_or_else(|| {
                ConfigError::invalid("doctor.every", "must be a duration from 1h to 7d")
            })?,
    };
    let first_run_secs = match raw.first_run {
        None => 600,
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| (1..=86_400).contains(secs))
            .ok_or_else(|| {
                ConfigError::invalid("doctor.first_run", "must be a duration from 1s to 1d")
            })?,
    };
    Ok(DoctorConfig {
        every_secs,
        first_run_secs,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecurityTxt {
    enabled: Option<bool>,
    contact: Option<Vec<String>>,
    intake: Option<bool>,
    policy: Option<String>,
    encryption: Option<String>,
    acknowledgments: Option<String>,
    preferred_languages: Option<Vec<String>>,
    expires_days: Option<u32>,
}

pub(super) fn validate_security_txt(
    raw: RawSecurityTxt,
) -> Result<crate::security_txt::SecurityTxtConfig, ConfigError> {
    use crate::security_txt::{SecurityTxtConfig, check_language, check_uri};
    let defaults = SecurityTxtConfig::default();
    let contact = raw.contact.unwrap_or_default();
    if contact.len() > 8 {
        return Err(ConfigError::invalid(
            "security_txt.contact",
            "at most 8 contacts",
        ));
    }
    for uri in &contact {
        check_uri(uri, true).map_err(|e| ConfigError::invalid("security_txt.contact", e))?;
    }
    let intake = raw.intake.unwrap_or(defaults.intake);
    let enabled = raw.enabled.unwrap_or(defaults.enabled);
    if enabled && contact.is_empty() && !intake {
        return Err(ConfigError::invalid(
            "security_txt.contact",
            "a security.txt needs a contact: name one, keep the intake, or set enabled = false",
        ));
    }
    for (key, value) in [
        ("security_txt.policy", &raw.policy),
        ("security_txt.encryption", &raw.encryption),
        ("security_txt.acknowledgments", &raw.acknowledgments),
    ] {
        if let Some(uri) = value {
            check_uri(uri, false).map_err(|e| ConfigError::invalid(key, e))?;
        }
    }
    let preferred_languages = raw
        .preferred_languages
        .unwrap_or(defaults.preferred_languages);
    for tag in &preferred_languages {
        check_language(tag)
            .map_err(|e| ConfigError::invalid("security_txt.preferred_languages", e))?;
    }
    let expires_days = raw.expires_days.unwrap_or(defaults.expires_days);
    if !(1..=364).contains(&expires_days) {
        return Err(ConfigError::invalid(
            "security_txt.expires_days",
            "must be from 1 to 364: Expires stays under a year away",
        ));
    }
    Ok(SecurityTxtConfig {
        enabled,
        contact,
        intake,
        policy: raw.policy,
        encryption: raw.encryption,
        acknowledgments: raw.acknowledgments,
        preferred_languages,
        expires_days,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrivacy {
    retention: Option<String>,
    pseudonymize_after: Option<String>,
}

/// The `[privacy]` table: how long personal data in logs is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyConfig {
    /// Access-log files, app events and sent notifications older than this
    /// are deleted (`retention`, 90 days).
    pub retention_secs: u64,
    /// Client addresses in access-log files and security reports older
    /// than this are replaced by pseudonyms (`pseudonymize_after`, 7 days).
    pub pseudonymize_after_secs: u64,
}

pub(super) fn validate_privacy(raw: RawPrivacy) -> Result<PrivacyConfig, ConfigError> {
    let retention_secs = match raw.retention {
        None => 90 * 86_400,
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| (86_400..=3650 * 86_400).contains(secs))
            .ok_or_else(|| {
                ConfigError::invalid("privacy.retention", "must be a duration from 1d to 3650d")
            })?,
    };
    let pseudonymize_after_secs = match raw.pseudonymize_after {
        None => (7 * 86_400).min(retention_secs),
        Some(text) => crate::wire::parse_duration(&text)
            .ok()
            .filter(|secs| (1..=retention_secs).contains(secs))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "privacy.pseudonymize_after",
                    "must be a duration from 1s up to privacy.retention",
                )
            })?,
    };
    Ok(PrivacyConfig {
        retention_secs,
        pseudonymize_after_secs,
    })
}

//! `rampart.toml`: parsed once into a raw serde struct that refuses unknown
//! keys, then validated into [`Config`]. Every error names the key it is
//! about, so an operator can fix the file without reading source code.
//!
//! Every key and its default is documented in `docs/configuration.md`; keep
//! the two in step.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

mod apps;
mod data;
mod file;
mod respond;
mod runtime;
mod vulns;
mod watch;
pub use apps::AppLimits;
use apps::{RawApps, validate_apps};
pub use data::{BackupConfig, DEFAULT_POSTGRES_PORT, MediaS3Config, PostgresConfig};
use data::{RawBackup, RawMedia, RawPostgres, validate_postgres};
pub use file::{TomlSyntax, parse_toml};
pub use respond::{DoctorConfig, IncidentsConfig, PrivacyConfig};
pub use runtime::{Backend, RuntimeConfig};
pub use vulns::VulnsConfig;
pub use watch::{NotifyConfig, SmtpConfig, WatchConfig};

/// Default address of the control-plane API.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:7443";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./rampart-data";
/// Default limit on API request bodies.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default limit on uploaded build contexts.
pub const DEFAULT_MAX_CONTEXT_BYTES: u64 = 256 * 1024 * 1024;
const MAX_CONTEXT_BYTES: u64 = 4 * 1024 * 1024 * 1024;
const MIN_BODY_BYTES: u64 = 1024;
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("line {line}: {}{message}", key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Syntax {
        key: Option<String>,
        line: usize,
        message: String,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    /// The value at `key` breaks a rule that `message` names.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    bootstrap: RawBootstrap,
    #[serde(default)]
    auth: RawAuth,
    /// Checked by the edge's own parser, which the platform hands it to.
    #[serde(default)]
    edge: toml::Table,
    #[serde(default)]
    postgres: RawPostgres,
    #[serde(default)]
    backup: RawBackup,
    #[serde(default)]
    media: RawMedia,
    #[serde(default)]
    apps: RawApps,
    #[serde(default)]
    watch: watch::RawWatch,
    #[serde(default)]
    notify: watch::RawNotify,
    #[serde(default)]
    vulns: vulns::RawVulns,
    #[serde(default)]
    incidents: respond::RawIncidents,
    #[serde(default)]
    doctor: respond::RawDoctor,
    #[serde(default)]
    security_txt: respond::RawSecurityTxt,
    #[serde(default)]
    privacy: respond::RawPrivacy,
    #[serde(default)]
    runtime: runtime::RawRuntime,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    require_mfa: Option<bool>,
    session_hours: Option<u32>,
    invitation_hours: Option<u32>,
    max_backoff_secs: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    listen: Option<String>,
    max_body_bytes: Option<u64>,
    max_context_bytes: Option<u64>,
    tls_names: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBootstrap {
    owner_email: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated platform configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Set only when the file names it; the command line wins over it.
    pub data_dir: Option<PathBuf>,
    pub api: ApiConfig,
    pub log: LogConfig,
    pub bootstrap: BootstrapConfig,
    pub auth: AuthConfig,
    /// The `[edge]` table: the edge's listeners, TLS/ACME settings and
    /// limits, under the same names as in `edge.toml`. The edge validates it.
    pub edge: toml::Table,
    pub postgres: PostgresConfig,
    /// `None` until `[backup]` names a repository.
    pub backup: Option<BackupConfig>,
    /// `None`: media live in folders under the data directory.
    pub media_s3: Option<MediaS3Config>,
    pub apps: AppLimits,
    pub watch: WatchConfig,
    pub notify: NotifyConfig,
    pub vulns: VulnsConfig,
    pub incidents: IncidentsConfig,
    pub doctor: DoctorConfig,
    pub security_txt: crate::security_txt::SecurityTxtConfig,
    pub privacy: PrivacyConfig,
    pub runtime: RuntimeConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_context_bytes: u64,
    /// Extra names (DNS names or IP addresses) the API certificate covers
    /// besides `localhost`, `127.0.0.1` and `::1`.
    pub tls_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

/// Sign-in rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Owners and admins may do nothing but enroll until they have MFA.
    pub require_mfa: bool,
    pub session_hours: u32,
    pub invitation_hours: u32,
    /// Longest wait imposed after failed logins.
    pub max_backoff_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapConfig {
    pub owner_email: String,
}

impl Default for Config {
    fn default() -> Self {
        Self::validate(RawConfig::default()).unwrap_or_else(|_| unreachable!("defaults are valid"))
    }
}

impl Config {
    /// Parses and validates the text of a `rampart.toml`.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_toml(text)?;
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen = raw.api.listen.as_deref().unwrap_or(DEFAULT_API_LISTEN);
        let listen: SocketAddr = listen.parse().map_err(|_| {
            ConfigError::invalid(
                "api.listen",
                format!("{listen:?} is not an address and port such as 127.0.0.1:7443"),
            )
        })?;

        let max_body_bytes = raw.api.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&max_body_bytes) {
            return Err(ConfigError::invalid(
                "api.max_body_bytes",
                format!(
                    "{max_body_bytes} is out of range; use {MIN_BODY_BYTES} to {MAX_BODY_BYTES}"
                ),
            ));
        }

        let max_context_bytes = raw
            .api
            .max_context_bytes
            .unwrap_or(DEFAULT_MAX_CONTEXT_BYTES);
        if !(MIN_BODY_BYTES..=MAX_CONTEXT_BYTES).contains(&max_context_bytes) {
            return Err(ConfigError::invalid(
                "api.max_context_bytes",
                format!(
                    "{max_context_bytes} is out of range; use {MIN_BODY_BYTES} to {MAX_CONTEXT_BYTES}"
                ),
            ));
        }

        let tls_names = raw.api.tls_names.unwrap_or_default();
        for name in &tls_names {
            let ok = name.parse::<std::net::IpAddr>().is_ok()
                || (!name.is_empty()
                    && name.len() <= 253
                    && name.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }));
            if !ok {
                return Err(ConfigError::invalid(
                    "api.tls_names",
                    format!("{name:?} is neither a DNS name nor an IP address"),
                ));
            }
        }

        let level = raw.log.level.unwrap_or_else(|| "info".into());
        if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
            return Err(ConfigError::invalid(
                "log.level",
                format!("{level:?} is not one of error, warn, info, debug, trace"),
            ));
        }
        let format = match raw.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::invalid(
                    "log.format",
                    format!("{other:?} is not one of text, json"),
                ));
            }
        };

        let owner_email = raw
            .bootstrap
            .owner_email
            .unwrap_or_else(|| "owner@localhost".into());
        let email_ok = owner_email.len() <= 254
            && owner_email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
            && !owner_email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control());
        if !email_ok {
            return Err(ConfigError::invalid(
                "bootstrap.owner_email",
                format!("{owner_email:?} is not an email address"),
            ));
        }

        let hours = |key: &'static str, value: Option<u32>, default: u32, max: u32| {
            let v = value.unwrap_or(default);
            if v == 0 || v > max {
                return Err(ConfigError::invalid(
                    key,
                    format!("{v} is out of range; use 1 to {max}"),
                ));
            }
            Ok(v)
        };
        let auth = AuthConfig {
            require_mfa: raw.auth.require_mfa.unwrap_or(true),
            session_hours: hours("auth.session_hours", raw.auth.session_hours, 12, 24 * 30)?,
            invitation_hours: hours(
                "auth.invitation_hours",
                raw.auth.invitation_hours,
                72,
                24 * 30,
            )?,
            max_backoff_secs: hours(
                "auth.max_backoff_secs",
                raw.auth.max_backoff_secs,
                900,
                86_400,
            )?,
        };

        let apps = validate_apps(&raw.apps)?;
        let watch = watch::validate_watch(raw.watch)?;
        let notify = watch::validate_notify(raw.notify)?;
        let vulns = vulns::validate_vulns(raw.vulns)?;
        let incidents = respond::validate_incidents(raw.incidents)?;
        let doctor = respond::validate_doctor(raw.doctor)?;
        let security_txt = respond::validate_security_txt(raw.security_txt)?;
        let privacy = respond::validate_privacy(raw.privacy)?;

        if let Some(dir) = &raw.data_dir {
            if dir.as_os_str().is_empty() {
                return Err(ConfigError::invalid("data_dir", "must not be empty"));
            }
        }

        let postgres = validate_postgres(raw.postgres)?;
        let backup = match (raw.backup.repository, raw.backup.key_file) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "backup.key_file",
                    "is required with backup.repository",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "backup.repository",
                    "is required with backup.key_file",
                ));
            }
            (Some(repository), Some(key_file)) => {
                if repository.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        "backup.repository",
                        "must not be empty",
                    ));
                }
                if repository.starts_with("s3://")
                    && repository["s3://".len()..]
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .is_empty()
                {
                    return Err(ConfigError::invalid(
                        "backup.repository",
                        format!("{repository:?} names no bucket; use s3://BUCKET/PREFIX"),
                    ));
                }
                if !repository.starts_with("s3://")
                    && !std::path::Path::new(&repository).is_absolute()
                {
                    return Err(ConfigError::invalid(
                        "backup.repository",
                        format!(
                            "{repository:?} is neither an absolute folder nor s3://BUCKET/PREFIX"
                        ),
                    ));
                }
                if key_file.as_os_str().is_empty() {
                    return Err(ConfigError::invalid("backup.key_file", "must not be empty"));
                }
                Some(BackupConfig {
                    repository,
                    key_file,
                })
            }
        };

        let media_s3 = match raw.media {
            RawMedia {
                s3_endpoint: None,
                s3_region: None,
                s3_access_key_id: None,
                s3_secret_key_file: None,
            } => None,
            RawMedia {
                s3_endpoint,
                s3_region,
                s3_access_key_id,
                s3_secret_key_file,
            } => {
                let endpoint = s3_endpoint.ok_or_else(|| {
                    ConfigError::invalid(
                        "media.s3_endpoint",
                        "is required with the other media.s3_* keys",
                    )
                })?;
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                    || endpoint.len() < "http://x".len()
                {
                    return Err(ConfigError::invalid(
                        "media.s3_endpoint",
                        format!("{endpoint:?} is not an http(s) URL"),
                    ));
                }
                let access_key_id = s3_access_key_id
                    .filter(|k| !k.trim().is_empty())
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "media.s3_access_key_id",
                            "is required with media.s3_endpoint",
                        )
                    })?;
                let secret_key_file = s3_secret_key_file.ok_or_else(|| {
                    ConfigError::invalid(
                        "media.s3_secret_key_file",
                        "is required with media.s3_endpoint",
                    )
                })?;
                Some(MediaS3Config {
                    endpoint,
                    region: s3_region.unwrap_or_else(|| "us-east-1".into()),
                    access_key_id,
                    secret_key_file,
                })
            }
        };

        let runtime = runtime::validate(raw.runtime, media_s3.is_some())?;
        Ok(Config {
            runtime,
            postgres,
            backup,
            media_s3,
            apps,
            data_dir: raw.data_dir,
            api: ApiConfig {
                listen,
                // The range check above keeps this far below usize::MAX.
                max_body_bytes: max_body_bytes as usize,
                max_context_bytes,
                tls_names,
            },
            log: LogConfig { level, format },
            bootstrap: BootstrapConfig { owner_email },
            auth,
            watch,
            notify,
            vulns,
            incidents,
            doctor,
            security_txt,
            privacy,
            edge: raw.edge,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.api.listen.to_string(), DEFAULT_API_LISTEN);
        assert_eq!(config.api.max_body_bytes, 1024 * 1024);
        assert_eq!(config.log.format, LogFormat::Text);
    }

    #[test]
    fn full_file_parses() {
        let config = Config::from_toml(
            r#"
            data_dir = "/var/lib/rampart"
            [api]
            listen = "0.0.0.0:9443"
            max_body_bytes = 2048
            tls_names = ["rampart.example.com", "10.1.2.3"]
            [log]
            level = "debug"
            format = "json"
            [bootstrap]
            owner_email = "ops@example.com"
            "#,
        )
        .unwrap();
        assert_eq!(config.api.listen.port(), 9443);
        assert_eq!(config.api.tls_names.len(), 2);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.bootstrap.owner_email, "ops@example.com");
    }

    #[test]
    fn postgres_and_backup_sections_parse() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(
            config.postgres,
            PostgresConfig::Managed {
                port: DEFAULT_POSTGRES_PORT,
                bin_dir: None
            }
        );
        assert_eq!(config.backup, None);
        let config = Config::from_toml(
            r#"
            [postgres]
            mode = "external"
            admin_url = "postgresql://admin:pw@db.internal:5433/postgres"
            ca_file = "/etc/db-ca.pem"
            [backup]
            repository = "s3://backups/rampart"
            key_file = "/etc/rampart/backup.key"
            "#,
        )
        .unwrap();
        match config.postgres {
            PostgresConfig::External { app_host, port, .. } => {
                assert_eq!(app_host, "db.internal");
                assert_eq!(port, 5433);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config.backup.unwrap().repository, "s3://backups/rampart");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[api]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lisen"), "{text}");
        assert!(text.starts_with("line 3:"), "{text}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = Config::from_toml("[api]\nmax_body_bytes = \"big\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("api.max_body_bytes"), "{text}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            ("[api]\nlisten = \"nowhere\"", "api.listen"),
            ("[api]\nmax_body_bytes = 1", "api.max_body_bytes"),
            ("[api]\ntls_names = [\"bad name\"]", "api.tls_names"),
            ("[log]\nlevel = \"loud\"", "log.level"),
            ("[watch]\nban_for = \"1s\"", "watch.ban_for"),
            ("[notify.smtp]\nfrom = \"a@b.c\"", "notify.smtp.host"),
            (
                "[notify.smtp]\nhost = \"mail example\"\nfrom = \"a@b.c\"",
                "notify.smtp.host",
            ),
            ("[notify.smtp]\nhost = \"mx\"", "notify.smtp.from"),
            (
                "[notify.smtp]\nhost = \"mx\"\nfrom = \"nobody\"",
                "notify.smtp.from",
            ),
            (
                "[notify.smtp]\nhost = \"mx\"\nfrom = \"a@b.c\"\nport = 0",
                "notify.smtp.port",
            ),
            (
                "[notify.smtp]\nhost = \"mx\"\nfrom = \"a@b.c\"\nusername = \"u\"",
                "notify.smtp.password_file",
            ),
            (
                "[notify.smtp]\nhost = \"mx\"\nfrom = \"a@b.c\"\ntls = false",
                "line 4: notify.smtp.tls",
            ),
            ("[watch]\nbaseline_warmup = \"5s\"", "watch.baseline_warmup"),
            (
                "[vulns]\nurls = [\"http://example.org/all.zip\"]",
                "vulns.urls",
            ),
            ("[vulns]\nurls = [\"ftp://x/all.zip\"]", "vulns.urls"),
            ("[vulns]\nurls = [\"https://a b/all.zip\"]", "vulns.urls"),
            ("[vulns]\nfetch_every = \"5m\"", "vulns.fetch_every"),
            ("[incidents]\nopen_at = \"info\"", "incidents.open_at"),
            ("[doctor]\nevery = \"5m\"", "doctor.every"),
            (
                "[security_txt]\ncontact = [\"http://example.com\"]",
                "security_txt.contact",
            ),
            ("[security_txt]\nintake = false", "security_txt.contact"),
            ("[privacy]\nretention = \"1h\"", "privacy.retention"),
            (
                "[privacy]\nretention = \"2d\"\npseudonymize_after = \"3d\"",
                "privacy.pseudonymize_after",
            ),
            (
                "[security_txt]\nexpires_days = 365",
                "security_txt.expires_days",
            ),
            (
                "[security_txt]\npolicy = \"mailto:a@b.c\"",
                "security_txt.policy",
            ),
            (
                "[security_txt]\npreferred_languages = [\"en_US\"]",
                "security_txt.preferred_languages",
            ),
            ("[doctor]\nfirst_run = \"0s\"", "doctor.first_run"),
            (
                "[incidents]\nack_within.high = \"0s\"",
                "incidents.ack_within.high",
            ),
            (
                "[incidents]\nack_within.urgent = \"1m\"",
                "line 2: incidents.ack_within.urgent",
            ),
            ("[vulns]\nurl = \"https://x\"", "line 2: vulns.url"),
            ("[watch]\nbaseline_margin = 0.5", "watch.baseline_margin"),
            ("[watch]\nnever_ban = [\"10.0.0.0/33\"]", "watch.never_ban"),
            ("[watch]\nnever_ban = [\"office\"]", "watch.never_ban"),
            ("[watch]\nban = true", "line 2: watch.ban"),
            ("[log]\nformat = \"xml\"", "log.format"),
            (
                "[bootstrap]\nowner_email = \"nobody\"",
                "bootstrap.owner_email",
            ),
            ("data_dir = \"\"", "data_dir"),
            ("[postgres]\nmode = \"cloud\"", "postgres.mode"),
            ("[postgres]\nport = 0", "postgres.port"),
            (
                "[postgres]\nadmin_url = \"postgresql://a@b/c\"",
                "postgres.admin_url",
            ),
            ("[postgres]\nmode = \"external\"", "postgres.admin_url"),
            (
                "[postgres]\nmode = \"external\"\nadmin_url = \"mysql://x\"",
                "postgres.admin_url",
            ),
            (
                "[postgres]\nmode = \"external\"\nadmin_url = \"postgresql://a@db/x\"",
                "postgres.ca_file",
            ),
            ("[backup]\nrepository = \"/srv/b\"", "backup.key_file"),
            ("[media]\ns3_region = \"eu\"", "media.s3_endpoint"),
            ("[media]\ns3_endpoint = \"ftp://x\"", "media.s3_endpoint"),
            (
                "[media]\ns3_endpoint = \"http://s3\"",
                "media.s3_access_key_id",
            ),
            (
                "[media]\ns3_endpoint = \"http://s3\"\ns3_access_key_id = \"AK\"",
                "media.s3_secret_key_file",
            ),
            ("[backup]\nkey_file = \"/k\"", "backup.repository"),
            (
                "[backup]\nrepository = \"relative\"\nkey_file = \"/k\"",
                "backup.repository",
            ),
            (
                "[backup]\nrepository = \"s3:///x\"\nkey_file = \"/k\"",
                "backup.repository",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.to_string().starts_with(key), "{text}: {err}");
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        for text in ["[api", "\u{0}\u{1}", "= 3", "api = 3"] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(!err.to_string().is_empty());
        }
    }
}

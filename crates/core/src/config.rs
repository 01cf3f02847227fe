//! `rampart.toml`: parsed once into a raw serde struct that refuses unknown
//! keys, then validated into [`Config`]. Every error names the key it is
//! about, so an operator can fix the file without reading source code.
//!
//! Every key and its default is documented in `docs/configuration.md`; keep
//! the two in step.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

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
    Invalid { key: &'static str, message: String },
}

impl ConfigError {
    fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApps {
    max_replicas: Option<u32>,
    max_memory_mb: Option<u32>,
    max_cpu_millis: Option<u32>,
    max_pids: Option<u32>,
    build_memory_mb: Option<u32>,
    build_cpu_millis: Option<u32>,
    images: Option<Vec<String>>,
}

/// The operator's ceilings on what one app may take from the host, which
/// no developer's settings can exceed, and the limits of image builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLimits {
    /// Replicas per app.
    pub max_replicas: u32,
    /// Memory per replica.
    pub max_memory_mb: u32,
    /// CPU per replica, in thousandths.
    pub max_cpu_millis: u32,
    /// Processes per replica.
    pub max_pids: u32,
    /// Memory of an image build (no swap beyond it).
    pub build_memory_mb: u32,
    /// CPU of an image build, in thousandths.
    pub build_cpu_millis: u32,
    /// Images on the engine that apps may run and build from, besides their
    /// own: exact references, or prefixes ending in `*`. Another app's
    /// images (`rampart/OTHER:…`) are never among them.
    pub images: Vec<String>,
}

impl Default for AppLimits {
    fn default() -> Self {
        Self {
            max_replicas: 8,
            max_memory_mb: 2048,
            max_cpu_millis: 2000,
            max_pids: 1024,
            build_memory_mb: 1024,
            build_cpu_millis: 1000,
            images: vec!["*".to_owned()],
        }
    }
}

impl AppLimits {
    /// Whether the operator lets apps use `reference` (not one of their own).
    pub fn allows_image(&self, reference: &str) -> bool {
        self.images
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => reference.starts_with(prefix),
                None => reference == pattern,
            })
    }

    /// Checks an app's settings against the ceilings; the message names
    /// the setting and the key that bounds it.
    pub fn admit(&self, settings: &crate::deploy::AppSettings) -> Result<(), String> {
        let checks = [
            (
                "replicas",
                settings.replicas,
                "apps.max_replicas",
                self.max_replicas,
            ),
            (
                "memory_mb",
                settings.memory_mb,
                "apps.max_memory_mb",
                self.max_memory_mb,
            ),
            (
                "cpu_millis",
                settings.cpu_millis,
                "apps.max_cpu_millis",
                self.max_cpu_millis,
            ),
            ("pids", settings.pids, "apps.max_pids", self.max_pids),
        ];
        for (setting, value, key, ceiling) in checks {
            if value > ceiling {
                return Err(format!(
                    "{setting} {value} is above the operator's ceiling ({key} = {ceiling})"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_key_file: Option<PathBuf>,
}

/// Apps' media on an S3-protocol server: a bucket and an IAM user per app,
/// created with this administrator's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaS3Config {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    /// A file holding the secret key, one line.
    pub secret_key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    mode: Option<String>,
    port: Option<u16>,
    bin_dir: Option<PathBuf>,
    admin_url: Option<String>,
    ca_file: Option<PathBuf>,
    app_host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    repository: Option<String>,
    key_file: Option<PathBuf>,
}

/// Default port of the managed PostgreSQL cluster on app networks.
pub const DEFAULT_POSTGRES_PORT: u16 = 6543;

/// Where apps' databases live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresConfig {
    /// A private cluster under `DATA/postgres`, run from the host's
    /// PostgreSQL (`bin_dir`, or found under /usr/lib/postgresql).
    Managed { port: u16, bin_dir: Option<PathBuf> },
    /// A server run by someone else, administered through `admin_url`
    /// over TLS verified against `ca_file`; apps reach it at `app_host`.
    External {
        admin_url: String,
        ca_file: PathBuf,
        app_host: String,
        port: u16,
        bin_dir: Option<PathBuf>,
    },
}

/// The platform's backup repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// A folder outside the data directory, or `s3://bucket/prefix`.
    pub repository: String,
    /// The repository's password, one line; created with the repository
    /// when both are missing.
    pub key_file: PathBuf,
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

fn validate_apps(raw: &RawApps) -> Result<AppLimits, ConfigError> {
    let d = AppLimits::default();
    let pick = |key: &'static str, value: Option<u32>, default: u32, min: u32, max: u32| {
        let v = value.unwrap_or(default);
        if v < min || v > max {
            return Err(ConfigError::invalid(
                key,
                format!("{v} is out of range; use {min} to {max}"),
            ));
        }
        Ok(v)
    };
    Ok(AppLimits {
        max_replicas: pick(
            "apps.max_replicas",
            raw.max_replicas,
            d.max_replicas,
            1,
            crate::deploy::MAX_REPLICAS,
        )?,
        max_memory_mb: pick(
            "apps.max_memory_mb",
            raw.max_memory_mb,
            d.max_memory_mb,
            16,
            1024 * 1024,
        )?,
        max_cpu_millis: pick(
            "apps.max_cpu_millis",
            raw.max_cpu_millis,
            d.max_cpu_millis,
            10,
            256_000,
        )?,
        max_pids: pick("apps.max_pids", raw.max_pids, d.max_pids, 8, 1_000_000)?,
        build_memory_mb: pick(
            "apps.build_memory_mb",
            raw.build_memory_mb,
            d.build_memory_mb,
            64,
            1024 * 1024,
        )?,
        build_cpu_millis: pick(
            "apps.build_cpu_millis",
            raw.build_cpu_millis,
            d.build_cpu_millis,
            100,
            256_000,
        )?,
        images: match &raw.images {
            None => d.images,
            Some(images) => {
                for image in images {
                    if image.is_empty()
                        || image.len() > 512
                        || image.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        return Err(ConfigError::invalid(
                            "apps.images",
                            format!("{image:?} is not an image reference or prefix"),
                        ));
                    }
                }
                images.clone()
            }
        },
    })
}

/// Where and why a TOML file could not be read into its raw struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlSyntax {
    /// The dotted key it is about, when there is one.
    pub key: Option<String>,
    pub line: usize,
    pub message: String,
}

/// Reads `text` into a raw configuration struct (which refuses unknown
/// keys), naming the key and line of the first problem. Both `rampart.toml`
/// and `edge.toml` are read this way.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlSyntax> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        TomlSyntax {
            key: (path != ".").then_some(path),
            line: inner.span().map_or(1, |s| {
                text.get(..s.start).map_or(0, |t| t.matches('\n').count()) + 1
            }),
            message: inner.message().trim().to_owned(),
        }
    })
}

impl From<TomlSyntax> for ConfigError {
    fn from(e: TomlSyntax) -> Self {
        ConfigError::Syntax {
            key: e.key,
            line: e.line,
            message: e.message,
        }
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

        Ok(Config {
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
            edge: raw.edge,
        })
    }
}

fn validate_postgres(raw: RawPostgres) -> Result<PostgresConfig, ConfigError> {
    let mode = raw.mode.as_deref().unwrap_or("managed");
    if raw.port == Some(0) {
        return Err(ConfigError::invalid("postgres.port", "0 is not a port"));
    }
    match mode {
        "managed" => {
            for (key, set) in [
                ("postgres.admin_url", raw.admin_url.is_some()),
                ("postgres.ca_file", raw.ca_file.is_some()),
                ("postgres.app_host", raw.app_host.is_some()),
            ] {
                if set {
                    return Err(ConfigError::invalid(
                        key,
                        "applies only with mode = \"external\"",
                    ));
                }
            }
            Ok(PostgresConfig::Managed {
                port: raw.port.unwrap_or(DEFAULT_POSTGRES_PORT),
                bin_dir: raw.bin_dir,
            })
        }
        "external" => {
            let admin_url = raw.admin_url.ok_or_else(|| {
                ConfigError::invalid("postgres.admin_url", "is required with mode = \"external\"")
            })?;
            let rest = admin_url
                .strip_prefix("postgresql://")
                .or_else(|| admin_url.strip_prefix("postgres://"))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "postgres.admin_url",
                        "must be a URL such as postgresql://admin:secret@db.example.com:5432/postgres",
                    )
                })?;
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let (url_host, url_port) = match host_port.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                    (h.to_owned(), p.parse::<u16>().ok())
                }
                _ => (host_port.to_owned(), None),
            };
            if url_host.is_empty() {
                return Err(ConfigError::invalid("postgres.admin_url", "names no host"));
            }
            let ca_file = raw.ca_file.ok_or_else(|| {
                ConfigError::invalid(
                    "postgres.ca_file",
                    "is required with mode = \"external\": the CA that signed the server's certificate",
                )
            })?;
            Ok(PostgresConfig::External {
                app_host: raw.app_host.unwrap_or(url_host),
                port: raw.port.or(url_port).unwrap_or(5432),
                admin_url,
                ca_file,
                bin_dir: raw.bin_dir,
            })
        }
        other => Err(ConfigError::invalid(
            "postgres.mode",
            format!("{other:?} is not one of managed, external"),
        )),
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

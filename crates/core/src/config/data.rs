//! `[postgres]`, `[media]` and `[backup]`: where apps' data lives and where
//! its backups go.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMedia {
    pub(super) s3_endpoint: Option<String>,
    pub(super) s3_region: Option<String>,
    pub(super) s3_access_key_id: Option<String>,
    pub(super) s3_secret_key_file: Option<PathBuf>,
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
pub(super) struct RawPostgres {
    mode: Option<String>,
    port: Option<u16>,
    bin_dir: Option<PathBuf>,
    admin_url: Option<String>,
    ca_file: Option<PathBuf>,
    app_host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    pub(super) repository: Option<String>,
    pub(super) key_file: Option<PathBuf>,
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

pub(super) fn validate_postgres(raw: RawPostgres) -> Result<PostgresConfig, ConfigError> {
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

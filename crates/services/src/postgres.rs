//! Databases and roles per app on a PostgreSQL server (the managed cluster
//! or an external one), and the tools that dump, restore and fingerprint
//! them.
//!
//! Each app gets one role that owns one database and nothing else: no
//! superuser, no role or database creation, CONNECT revoked from PUBLIC.
//! Passwords reach the server only as SCRAM verifiers.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Config, NoTls};

use crate::cluster::ADMIN_ROLE;
use crate::{Result, ServiceError};

/// Where the administered server is and how to reach it as an admin.
#[derive(Debug, Clone)]
pub enum Server {
    /// The managed cluster, over its unix socket, as `rampart`.
    Socket { dir: PathBuf, port: u16 },
    /// An external server, by an admin URL (TLS required, trusting the CA
    /// in `ca_file`, whose text is `ca_pem`).
    External {
        url: String,
        ca_file: PathBuf,
        ca_pem: String,
    },
}

/// The row count and checksum of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSum {
    /// `schema.table`.
    pub table: String,
    pub rows: u64,
    /// MD5 over the sorted MD5s of the rows' text forms.
    pub checksum: String,
}

/// The names Rampart gives an app's database and role.
pub fn database_name(app: &str) -> String {
    format!("app_{}", app.replace('-', "_"))
}

/// A fresh random password: 32 alphanumeric characters.
pub fn new_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn ident(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(ServiceError::Invalid(format!(
            "{name:?} is not a database or role name Rampart uses"
        )));
    }
    Ok(format!("\"{name}\""))
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A TLS client configuration trusting `ca_pem` alone.
pub fn tls_config(ca_pem: &str) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| ServiceError::Invalid(format!("CA certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ServiceError::Invalid(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ServiceError::Invalid(
            "the CA file holds no certificate".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServiceError::Invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Connects with `config` over TLS trusting `ca_pem`, driving the
/// connection on a task of its own.
pub async fn connect_tls(config: &Config, ca_pem: &str) -> Result<Client> {
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(ca_pem)?);
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Every session the platform opens resolves names in the system catalog
/// first and nowhere a tenant can write: an operator, function or type an
/// app defines in its own schemas is never picked over the built-in one
/// (the CVE-2018-1058 class).
const PINNED_OPTIONS: &str = "-c search_path=pg_catalog,pg_temp";

/// An app can hold locks on its own tables for as long as it likes; the
/// platform's sessions in its database give up waiting for one after a
/// minute instead of stalling a backup for ever.
const TENANT_LOCK_TIMEOUT: &str = "-c lock_timeout=60s";

/// How long a connection to the server may take to open.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The platform's administrative handle on a server.
///
/// The admin is a superuser (on the managed cluster) or a role that can
/// create roles and databases (on an external server). It only ever works
/// in the `postgres` maintenance database, which no app may enter: it never
/// opens a session in an app's database, because whatever an app defines
/// there (operators, functions, triggers, casts) would run with the admin's
/// rights. Reading and loading an app's data goes through [`Tenant`].
#[derive(Debug, Clone)]
pub struct Admin {
    server: Server,
    /// Where `pg_dump` and `pg_restore` live.
    bin_dir: PathBuf,
}

/// The maintenance database the admin works in.
const MAINTENANCE_DB: &str = "postgres";

impl Admin {
    pub fn new(server: Server, bin_dir: PathBuf) -> Self {
        Self { server, bin_dir }
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The connection settings of `role` (the admin when `None`) on
    /// `database`, with the search path pinned.
    fn config(&self, login: Option<(&str, &str)>, database: &str) -> Result<Config> {
        let mut config = match &self.server {
            Server::Socket { dir, port } => {
                let mut config = Config::new();
                config.host_path(dir).port(*port).user(ADMIN_ROLE);
                config
            }
            Server::External { url, .. } => {
                let mut config: Config = url
                    .parse()
                    .map_err(|e| ServiceError::Invalid(format!("postgres.admin_url: {e}")))?;
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                config
            }
        };
        if let Some((role, password)) = login {
            config.user(role).password(password);
        }
        config
            .dbname(database)
            .options(PINNED_OPTIONS)
            .application_name("rampart")
            .connect_timeout(CONNECT_TIMEOUT);
        Ok(config)
    }

    async fn open(&self, config: &Config) -> Result<Client> {
        match &self.server {
            Server::Socket { .. } => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(client)
            }
            Server::External { ca_pem, .. } => connect_tls(config, ca_pem).await,
        }
    }

    /// Connects as the admin to the maintenance database.
    pub async fn connect(&self) -> Result<Client> {
        self.open(&self.config(None, MAINTENANCE_DB)?).await
    }

    /// A handle that acts as `role`, authenticated with `password`: for
    /// everything that reads or loads that role's data.
    pub fn tenant(&self, role: &str, password: &str) -> Result<Tenant> {
        ident(role)?;
        Ok(Tenant {
            admin: self.clone(),
            role: role.to_owned(),
            password: Password(password.to_owned()),
        })
    }

    /// Whether the server answers.
    pub async fn ping(&self) -> Result<()> {
        self.connect().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Creates `role` (with `password`) owning a new `database` that no one
    /// else may connect to.
    pub async fn create_database(&self, database: &str, role: &str, password: &str) -> Result<()> {
        ident(database)?;
        let role_q = ident(role)?;
        let client = self.connect().await?;
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1",
                &[&role],
            )
            .await?
            .is_some();
        let attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 64";
        let statement = if exists {
            format!(
                "ALTER ROLE {role_q} {attributes} PASSWORD {}",
                literal(&verifier)
            )
        } else {
            format!(
                "CREATE ROLE {role_q} {attributes} PASSWORD {}",
                literal(&verifier)
            )
        };
        client.batch_execute(&statement).await?;
        if !self.database_exists(database).await? {
            self.create_empty(database, role).await?;
        }
        Ok(())
    }

    /// Sets a new password for `role`.
    pub async fn set_password(&self, role: &str, password: &str) -> Result<()> {
        let role_q = ident(role)?;
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        self.connect()
            .await?
            .batch_execute(&format!(
                "ALTER ROLE {role_q} PASSWORD {}",
                literal(&verifier)
            ))
            .await?;
        Ok(())
    }

    /// Ends every session on `database` and keeps new ones out until
    /// [`Admin::allow_connections`].
    pub async fn close_database(&self, database: &str) -> Result<()> {
        let db = ident(database)?;
        let client = self.connect().await?;
        client
            .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
            .await?;
        client
            .execute(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
                 WHERE datname OPERATOR(pg_catalog.=) $1
                   AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
                &[&database],
            )
            .await?;
        Ok(())
    }

    pub async fn allow_connections(&self, database: &str) -> Result<()> {
        let db = ident(database)?;
        self.connect()
            .await?
            .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
            .await?;
        Ok(())
    }

    /// Drops `database` if it exists (its sessions are ended first).
    pub async fn drop_database(&self, database: &str) -> Result<()> {
        let db = ident(database)?;
        let client = self.connect().await?;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await?;
        Ok(())
    }

    /// Drops `role` if it exists.
    pub async fn drop_role(&self, role: &str) -> Result<()> {
        let role_q = ident(role)?;
        self.connect()
            .await?
            .batch_execute(&format!("DROP ROLE IF EXISTS {role_q}"))
            .await?;
        Ok(())
    }

    /// Renames `from` to `to` (no session may be open on `from`).
    pub async fn rename_database(&self, from: &str, to: &str) -> Result<()> {
        let (f, t) = (ident(from)?, ident(to)?);
        self.connect()
            .await?
            .batch_execute(&format!("ALTER DATABASE {f} RENAME TO {t}"))
            .await?;
        Ok(())
    }

    /// Creates an empty `database` owned by `role`, closed to PUBLIC.
    pub async fn create_empty(&self, database: &str, role: &str) -> Result<()> {
        let (db, role_q) = (ident(database)?, ident(role)?);
        let client = self.connect().await?;
        client
            .batch_execute(&format!("CREATE DATABASE {db} OWNER {role_q}"))
            .await?;
        client
            .batch_execute(&format!(
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role_q}"
            ))
            .await?;
        Ok(())
    }

    pub async fn database_exists(&self, database: &str) -> Result<bool> {
        Ok(self
            .connect()
            .await?
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) $1",
                &[&database],
            )
            .await?
            .is_some())
    }
}

/// A password whose `Debug` form hides it.
#[derive(Clone)]
struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Sessions and tools that act as one app's own role.
///
/// Everything that reads or loads an app's data (fingerprints, `pg_dump`,
/// `pg_restore`) authenticates as that role, so whatever the app planted in
/// its database runs with the app's rights and no more. The role is never a
/// superuser and is not a member of any other role, so `RESET ROLE` or `SET
/// ROLE` inside planted code leads nowhere.
#[derive(Debug, Clone)]
pub struct Tenant {
    admin: Admin,
    role: String,
    password: Password,
}

impl Tenant {
    pub fn role(&self) -> &str {
        &self.role
    }

    fn config(&self, database: &str) -> Result<Config> {
        let mut config = self
            .admin
            .config(Some((&self.role, &self.password.0)), database)?;
        config.options(format!("{PINNED_OPTIONS} {TENANT_LOCK_TIMEOUT}"));
        Ok(config)
    }

    /// Connects to `database` as the role.
    pub async fn connect(&self, database: &str) -> Result<Client> {
        ident(database)?;
        self.admin.open(&self.config(database)?).await
    }

    /// Whether `database` holds no table of its own.
    pub async fn is_empty(&self, database: &str) -> Result<bool> {
        let client = self.connect(database).await?;
        let row = client
            .query_one(
                "SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                 WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'S']::pg_catalog.\"char\"[])
                   AND NOT (n.nspname OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]))
                   AND NOT pg_catalog.starts_with(n.nspname::pg_catalog.text, 'pg_toast')",
                &[],
            )
            .await?;
        Ok(row.get::<_, i64>(0) == 0)
    }

    /// Row counts and checksums of every table of `database`, in name order.
    pub async fn fingerprint(&self, database: &str) -> Result<Vec<TableSum>> {
        let client = self.connect(database).await?;
        fingerprint(&client).await
    }

    /// Opens a repeatable-read transaction on `database`, exports its
    /// snapshot and fingerprints the tables as that snapshot sees them. The
    /// returned client holds the snapshot until it is dropped, so `pg_dump
    /// --snapshot` sees exactly the fingerprinted data.
    pub async fn exported_snapshot(
        &self,
        database: &str,
    ) -> Result<(Client, String, Vec<TableSum>)> {
        let client = self.connect(database).await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let row = client
            .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
            .await?;
        let snapshot: String = row.get(0);
        let sums = fingerprint(&client).await?;
        Ok((client, snapshot, sums))
    }

    /// `pg_dump` or `pg_restore` on `database` as the role. Every connection
    /// setting, the password above all, travels in the environment, which
    /// only the platform's own user can read: nothing secret is on the
    /// command line.
    fn tool(&self, name: &str, database: &str) -> Result<std::process::Command> {
        ident(database)?;
        let config = self.config(database)?;
        let mut cmd = std::process::Command::new(self.admin.bin_dir.join(name));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.env("LC_ALL", "C")
            .env("PGUSER", &self.role)
            .env("PGPASSWORD", &self.password.0)
            .env("PGDATABASE", database)
            .env("PGAPPNAME", "rampart")
            .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT.as_secs().to_string())
            .env("PGOPTIONS", TENANT_LOCK_TIMEOUT)
            .env("PGPASSFILE", "/dev/null");
        match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => cmd.env("PGHOST", host),
            Some(tokio_postgres::config::Host::Unix(dir)) => cmd.env("PGHOST", dir),
            None => cmd.env("PGHOST", "localhost"),
        };
        if let Some(port) = config.get_ports().first() {
            cmd.env("PGPORT", port.to_string());
        }
        if let Server::External { ca_file, .. } = &self.admin.server {
            cmd.env("PGSSLMODE", "verify-full")
                .env("PGSSLROOTCERT", ca_file);
        }
        Ok(cmd)
    }

    /// `pg_dump` of `database` in the custom format (uncompressed, so the
    /// backup engine can deduplicate it), as of `snapshot`, to stdout.
    pub fn dump_command(&self, database: &str, snapshot: &str) -> Result<std::process::Command> {
        let mut cmd = self.tool("pg_dump", database)?;
        cmd.args([
            "--format=custom",
            "--compress=0",
            "--no-owner",
            "--no-privileges",
            "--no-password",
        ])
        .arg(format!("--snapshot={snapshot}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        Ok(cmd)
    }

    /// `pg_restore` from stdin into `database`, in one transaction, every
    /// object owned by the role that loads it.
    pub fn restore_command(&self, database: &str) -> Result<std::process::Command> {
        let mut cmd = self.tool("pg_restore", database)?;
        cmd.args([
            "--no-owner",
            "--no-privileges",
            "--no-password",
            "--single-transaction",
            "--exit-on-error",
            "--dbname",
            database,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        Ok(cmd)
    }
}

/// Row counts and checksums of every table `client`'s database holds, in
/// name order. Every name is schema-qualified: the session's own search path
/// decides nothing.
pub async fn fingerprint(client: &Client) -> Result<Vec<TableSum>> {
    let tables = client
        .query(
            "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
             WHERE c.relkind OPERATOR(pg_catalog.=) 'r'
               AND NOT (n.nspname OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]))
               AND NOT pg_catalog.starts_with(n.nspname::pg_catalog.text, 'pg_toast')
             ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\"",
            &[],
        )
        .await?;
    let mut sums = Vec::new();
    for row in tables {
        let schema: String = row.get(0);
        let table: String = row.get(1);
        let qualified = format!(
            "\"{}\".\"{}\"",
            schema.replace('"', "\"\""),
            table.replace('"', "\"\"")
        );
        let row = client
            .query_one(
                &format!(
                    "SELECT pg_catalog.count(*),
                            COALESCE(pg_catalog.md5(pg_catalog.string_agg(h, ',' ORDER BY h COLLATE \"C\")), '')
                     FROM (SELECT pg_catalog.md5(t::pg_catalog.text) AS h FROM {qualified} t) rows"
                ),
                &[],
            )
            .await?;
        sums.push(TableSum {
            table: format!("{schema}.{table}"),
            rows: row.get::<_, i64>(0).max(0) as u64,
            checksum: row.get(1),
        });
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_they_reach_sql() {
        assert_eq!(database_name("my-app"), "app_my_app");
        assert!(ident("app_a").is_ok());
        for bad in ["", "App", "a\"b", "a;b", "a b", &"x".repeat(64)] {
            assert!(ident(bad).is_err(), "{bad:?}");
        }
        assert_eq!(literal("it's"), "'it''s'");
    }

    /// Finding: `pg_dump --dbname postgresql://admin:secret@…` showed the
    /// external server's admin password to every local user in `ps`.
    #[test]
    fn no_password_is_on_a_tool_command_line() {
        let admin = Admin::new(
            Server::External {
                url: "postgresql://rampart:admin-secret@db.example:5432/postgres".into(),
                ca_file: PathBuf::from("/etc/ca.pem"),
                ca_pem: String::new(),
            },
            PathBuf::from("/usr/lib/postgresql/15/bin"),
        );
        let tenant = admin.tenant("app_x", "tenant-secret").unwrap();
        for cmd in [
            tenant.dump_command("app_x", "00000003-1").unwrap(),
            tenant.restore_command("app_x_restore").unwrap(),
        ] {
            let args: Vec<String> = cmd
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert!(
                args.iter().all(|a| !a.contains("secret")),
                "a password on the command line: {args:?}"
            );
            let env: std::collections::HashMap<String, String> = cmd
                .get_envs()
                .filter_map(|(k, v)| {
                    Some((
                        k.to_string_lossy().into_owned(),
                        v?.to_string_lossy().into_owned(),
                    ))
                })
                .collect();
            assert_eq!(env["PGPASSWORD"], "tenant-secret");
            assert_eq!(env["PGUSER"], "app_x");
            assert_eq!(env["PGHOST"], "db.example");
            assert_eq!(env["PGSSLMODE"], "verify-full");
            assert!(
                env.values().all(|v| !v.contains("admin-secret")),
                "the tools act as the tenant, never the admin"
            );
        }
        assert!(!format!("{tenant:?}").contains("tenant-secret"));
    }

    #[test]
    fn passwords_are_long_and_fresh() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}

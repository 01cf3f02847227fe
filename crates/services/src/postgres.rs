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

/// The platform's administrative handle on a server.
#[derive(Debug, Clone)]
pub struct Admin {
    server: Server,
    /// Where `pg_dump` and `pg_restore` live.
    bin_dir: PathBuf,
}

impl Admin {
    pub fn new(server: Server, bin_dir: PathBuf) -> Self {
        Self { server, bin_dir }
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Connects to `database` as the admin.
    pub async fn connect(&self, database: &str) -> Result<Client> {
        match &self.server {
            Server::Socket { dir, port } => {
                let mut config = Config::new();
                config
                    .host_path(dir)
                    .port(*port)
                    .user(ADMIN_ROLE)
                    .dbname(database)
                    .application_name("rampart")
                    .connect_timeout(std::time::Duration::from_secs(10));
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(client)
            }
            Server::External { url, ca_pem, .. } => {
                let mut config: Config = url
                    .parse()
                    .map_err(|e| ServiceError::Invalid(format!("postgres.admin_url: {e}")))?;
                config
                    .dbname(database)
                    .ssl_mode(tokio_postgres::config::SslMode::Require)
                    .application_name("rampart")
                    .connect_timeout(std::time::Duration::from_secs(10));
                connect_tls(&config, ca_pem).await
            }
        }
    }

    /// Whether the server answers.
    pub async fn ping(&self) -> Result<()> {
        self.connect("postgres")
            .await?
            .simple_query("SELECT 1")
            .await?;
        Ok(())
    }

    /// Creates `role` (with `password`) owning a new `database` that no one
    /// else may connect to.
    pub async fn create_database(&self, database: &str, role: &str, password: &str) -> Result<()> {
        ident(database)?;
        let role_q = ident(role)?;
        let client = self.connect("postgres").await?;
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
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
        self.connect("postgres")
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
        let client = self.connect("postgres").await?;
        client
            .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
            .await?;
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await?;
        Ok(())
    }

    pub async fn allow_connections(&self, database: &str) -> Result<()> {
        let db = ident(database)?;
        self.connect("postgres")
            .await?
            .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
            .await?;
        Ok(())
    }

    /// Drops `database` if it exists (its sessions are ended first).
    pub async fn drop_database(&self, database: &str) -> Result<()> {
        let db = ident(database)?;
        let client = self.connect("postgres").await?;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await?;
        Ok(())
    }

    /// Drops `role` if it exists.
    pub async fn drop_role(&self, role: &str) -> Result<()> {
        let role_q = ident(role)?;
        self.connect("postgres")
            .await?
            .batch_execute(&format!("DROP ROLE IF EXISTS {role_q}"))
            .await?;
        Ok(())
    }

    /// Renames `from` to `to` (no session may be open on `from`).
    pub async fn rename_database(&self, from: &str, to: &str) -> Result<()> {
        let (f, t) = (ident(from)?, ident(to)?);
        self.connect("postgres")
            .await?
            .batch_execute(&format!("ALTER DATABASE {f} RENAME TO {t}"))
            .await?;
        Ok(())
    }

    /// Creates an empty `database` owned by `role`, closed to PUBLIC.
    pub async fn create_empty(&self, database: &str, role: &str) -> Result<()> {
        let (db, role_q) = (ident(database)?, ident(role)?);
        let client = self.connect("postgres").await?;
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
            .connect("postgres")
            .await?
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
            .await?
            .is_some())
    }

    /// Whether `database` holds no table of its own.
    pub async fn is_empty(&self, database: &str) -> Result<bool> {
        let client = self.connect(database).await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                   AND n.nspname NOT LIKE 'pg_toast%'",
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
        let row = client.query_one("SELECT pg_export_snapshot()", &[]).await?;
        let snapshot: String = row.get(0);
        let sums = fingerprint(&client).await?;
        Ok((client, snapshot, sums))
    }

    fn tool(&self, name: &str, database: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bin_dir.join(name));
        cmd.env("LC_ALL", "C").env_remove("PGPASSWORD");
        match &self.server {
            Server::Socket { dir, port } => {
                cmd.arg("--host")
                    .arg(dir)
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--username")
                    .arg(ADMIN_ROLE)
                    .arg("--dbname")
                    .arg(database);
            }
            Server::External { url, ca_file, .. } => {
                cmd.arg("--dbname")
                    .arg(with_database(url, database))
                    .env("PGSSLMODE", "verify-full")
                    .env("PGSSLROOTCERT", ca_file);
            }
        }
        cmd
    }

    /// `pg_dump` of `database` in the custom format (uncompressed, so the
    /// backup engine can deduplicate it), as of `snapshot`, to stdout.
    pub fn dump_command(&self, database: &str, snapshot: &str) -> std::process::Command {
        let mut cmd = self.tool("pg_dump", database);
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
        cmd
    }

    /// `pg_restore` from stdin into `database`, in one transaction, with
    /// every object owned by `role` when given (else by the admin).
    pub fn restore_command(&self, database: &str, role: Option<&str>) -> std::process::Command {
        let mut cmd = self.tool("pg_restore", database);
        cmd.args([
            "--no-owner",
            "--no-privileges",
            "--no-password",
            "--single-transaction",
            "--exit-on-error",
        ])
        .args(role.map(|r| format!("--role={r}")))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        cmd
    }
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn fingerprint(client: &Client) -> Result<Vec<TableSum>> {
    let tables = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r'
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg_toast%'
             ORDER BY 1, 2",
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
                    "SELECT count(*), coalesce(md5(string_agg(h, ',' ORDER BY h)), '')
                     FROM (SELECT md5(t::text) AS h FROM {qualified} t) rows"
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
        assert_eq!(
            with_database("postgresql://a:b@db:5432/postgres?sslmode=require", "app_x"),
            "postgresql://a:b@db:5432/app_x?sslmode=require"
        );
        assert_eq!(
            with_database("postgres://db", "app_x"),
            "postgres://db/app_x"
        );
    }

    #[test]
    fn passwords_are_long_and_fresh() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}

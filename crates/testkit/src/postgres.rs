//! A PostgreSQL server run the way an operator runs one for others: TLS
//! with a certificate from its own CA, an administrator with a password,
//! reachable on a loopback port. It stands in for an external server.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// The server; stopped when dropped.
#[derive(Debug)]
pub struct ExternalPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    pub port: u16,
    /// `postgresql://admin:PASSWORD@IP:PORT/postgres`.
    pub admin_url: String,
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
}

fn newest_bin() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (scripts/test installs it)")?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .context("no PostgreSQL version under /usr/lib/postgresql")
}

fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres"))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

impl ExternalPostgres {
    /// A server on 127.0.0.1.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// A server listening on `ip` only, with a certificate for it; other
    /// than on loopback it admits clients from any address (over TLS,
    /// with a password), as a server for containers on other networks.
    pub fn start_on(ip: std::net::IpAddr) -> anyhow::Result<Self> {
        let bin = newest_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("rampart-extpg-")
            .tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
        let is_root = std::fs::metadata("/proc/self")?.uid() == 0;
        let run_as = if is_root {
            Some(postgres_user().context("no postgres user")?)
        } else {
            None
        };
        let data = dir.path().join("data");
        let password = "operator-secret";
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, password)?;
        let own = |p: &Path, mode: u32| -> anyhow::Result<()> {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
            if let Some((uid, gid)) = run_as {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
            }
            Ok(())
        };
        own(&pwfile, 0o600)?;
        std::fs::create_dir_all(&data)?;
        own(&data, 0o700)?;

        // A CA and a server certificate for `ip`, with names of their own.
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "operator CA");
        let ca_cert = ca.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(vec![ip.to_string()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "external database");
        let leaf = leaf.signed_by(&key, &ca_cert, &ca_key)?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem())?;
        for (name, text) in [
            ("server.crt", leaf.pem()),
            ("server.key", key.serialize_pem()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text)?;
            own(&path, 0o600)?;
        }

        let command = |tool: &str| {
            let mut cmd = Command::new(bin.join(tool));
            if let Some((uid, gid)) = run_as {
                cmd.uid(uid).gid(gid);
            }
            cmd.env("LC_ALL", "C");
            cmd
        };
        let out = command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "admin",
                "--auth=scram-sha-256",
                "--no-locale",
                "--encoding=UTF8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()?;
        if !out.status.success() {
            bail!("initdb: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = std::net::TcpListener::bind((ip, 0))?.local_addr()?.port();
        let socket = dir.path().join("run");
        std::fs::create_dir_all(&socket)?;
        own(&socket, 0o700)?;
        let clients = if ip.is_loopback() {
            format!("{ip}/32")
        } else {
            "0.0.0.0/0".to_owned()
        };
        std::fs::write(
            data.join("pg_hba.conf"),
            format!("hostssl all all {clients} scram-sha-256\n"),
        )?;
        std::fs::write(
            data.join("postgresql.conf"),
            format!(
                "listen_addresses = '{ip}'\nport = {port}\nunix_socket_directories = '{}'\n\
                 ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n\
                 password_encryption = 'scram-sha-256'\nmax_connections = 50\n",
                socket.display(),
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            ),
        )?;
        own(&data.join("pg_hba.conf"), 0o600)?;
        own(&data.join("postgresql.conf"), 0o600)?;
        let log = dir.path().join("log");
        std::fs::write(&log, "")?;
        own(&log, 0o600)?;
        let out = command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .output()?;
        if !out.status.success() {
            let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
            bail!(
                "pg_ctl start: {}\n{log}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self {
            admin_url: format!("postgresql://admin:{password}@{ip}:{port}/postgres"),
            dir,
            bin,
            run_as,
            port,
            ca_file,
        })
    }
}

impl Drop for ExternalPostgres {
    fn drop(&mut self) {
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let _ = cmd
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .output();
    }
}

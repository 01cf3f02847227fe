//! Pebble, a real ACME server, with its mock DNS answering every name with
//! loopback: HTTP-01 challenges go to `http_port` on 127.0.0.1, where the
//! edge under test listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::free_port;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running Pebble and pebble-challtestsrv; both stop when it is dropped.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// A PEM root to trust for Pebble's own HTTPS (the ACME API).
    pub trust: PathBuf,
    /// Where Pebble sends HTTP-01 validation requests on 127.0.0.1.
    pub http_port: u16,
    mgmt_port: u16,
    _procs: Vec<Killed>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Pebble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pebble")
            .field("directory", &self.directory)
            .field("http_port", &self.http_port)
            .finish_non_exhaustive()
    }
}

/// A CA and a certificate for `localhost` and 127.0.0.1, for the test
/// servers' own TLS (Pebble's API, the SMTP server's STARTTLS):
/// `pebble-cert.pem` and `pebble-key.pem` in `dir`; the CA's file is returned.
pub(crate) fn loopback_tls(dir: &Path) -> anyhow::Result<PathBuf> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names, so that tools which compare issuer and subject do not
    // take the leaf for a self-signed certificate.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Rampart test CA for Pebble");
    let ca = ca_params.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    std::fs::write(dir.join("pebble-cert.pem"), cert.pem())?;
    std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem())?;
    let trust = dir.join("pebble-ca.pem");
    std::fs::write(&trust, ca.pem())?;
    Ok(trust)
}

fn wait_for_port(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("{addr} did not open");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

impl Pebble {
    /// Starts Pebble (Debian package `pebble`) on free loopback ports.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let trust = loopback_tls(dir.path())?;
        let (acme_port, mgmt_port, dns_port, dns_mgmt, http_port, tls_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("pebble-challtestsrv (Debian package pebble) must be installed")?;
        let dns = Killed(dns);
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{acme_port}",
              "managementListenAddress": "127.0.0.1:{mgmt_port}",
              "certificate": "{}", "privateKey": "{}",
              "httpPort": {http_port}, "tlsPort": {tls_port},
              "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
            dir.path().join("pebble-cert.pem").display(),
            dir.path().join("pebble-key.pem").display(),
        );
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config)?;
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("pebble (Debian package pebble) must be installed")?;
        let pebble = Killed(pebble);
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], acme_port)))?;
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], mgmt_port)))?;
        Ok(Self {
            directory: format!("https://127.0.0.1:{acme_port}/dir"),
            trust,
            http_port,
            mgmt_port,
            _procs: vec![pebble, dns],
            _dir: dir,
        })
    }

    /// The root Pebble signs certificates with (PEM), fetched from its
    /// management API.
    pub fn issuing_root(&self) -> anyhow::Result<String> {
        let output = Command::new("curl")
            .arg("-sf")
            .arg("--cacert")
            .arg(&self.trust)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.mgmt_port))
            .output()
            .context("curl must be installed")?;
        if !output.status.success() {
            bail!("cannot fetch Pebble's root");
        }
        Ok(String::from_utf8(output.stdout)?)
    }
}

/// A self-signed certificate for `hosts` valid from `from` to `until`
/// seconds away from now (negative: in the past), and its key, in PEM.
pub fn certificate(hosts: &[&str], from: i64, until: i64) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::seconds(from);
    params.not_after = now + time::Duration::seconds(until);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

//! A real SMTP server for the alert email tests: aiosmtpd (PyPI), offering
//! and requiring STARTTLS with a certificate from a CA the test trusts, or
//! plain SMTP only, which a client that requires TLS must refuse. Each
//! message received is a file in `inbox`, headed by what the test wants to
//! know about its session (`X-Test-TLS: yes|no`, `X-Test-Rcpt`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

const SERVER: &str = r#"
import os, signal, sys, time
from aiosmtpd.controller import Controller

port, inbox, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

class Inbox:
    async def handle_DATA(self, server, session, envelope):
        tls = "yes" if session.ssl is not None else "no"
        name = os.path.join(inbox, "%d.eml" % time.time_ns())
        with open(name + ".part", "wb") as f:
            f.write(("X-Test-TLS: %s\r\nX-Test-Rcpt: %s\r\n" % (tls, ",".join(envelope.rcpt_tos))).encode())
            f.write(envelope.original_content)
        os.rename(name + ".part", name)
        return "250 OK"

context = None
if cert:
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
controller = Controller(Inbox(), hostname="127.0.0.1", port=port, tls_context=context,
                        require_starttls=context is not None)
controller.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
"#;

/// A running SMTP server; it stops when dropped.
pub struct Smtp {
    pub port: u16,
    /// Where each message received is written.
    pub inbox: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// Writes a CA and a certificate for 127.0.0.1 into `dir`, for
    /// servers started with `Some(dir)`; returns the CA's file.
    pub fn tls_material(dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        crate::pebble::loopback_tls(dir)
    }

    /// Starts a server on `port` that requires STARTTLS with the material
    /// in `tls` (from [`Smtp::tls_material`]), or speaks plain SMTP only.
    pub fn start(port: u16, tls: Option<&Path>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox)?;
        let (cert, key) = match tls {
            Some(tls) => (tls.join("pebble-cert.pem"), tls.join("pebble-key.pem")),
            None => (PathBuf::new(), PathBuf::new()),
        };
        let mut child = Command::new("python3")
            .args(["-c", SERVER, &port.to_string()])
            .arg(&inbox)
            .arg(&cert)
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("python3 with aiosmtpd (pip install aiosmtpd) must be installed")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("the server's output")?;
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the SMTP server on port {port} did not start");
        }
        Ok(Self {
            port,
            inbox,
            child,
            _dir: dir,
        })
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.inbox)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        let _ = self.child.wait();
    }
}

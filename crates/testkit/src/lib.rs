//! Test helpers: the real `rampart` binary started on a temporary data
//! directory, with its output captured, driven over HTTPS and through the
//! CLI, and stopped by a `Drop` guard.
//!
//! Ports come from the OS (`api.listen = "127.0.0.1:0"`; the address is read
//! from the process's ready line), and every wait polls against a deadline.

mod pebble;
mod postgres;
mod smtp;
pub use pebble::{Pebble, certificate};
pub use postgres::ExternalPostgres;
pub use smtp::Smtp;

/// A loopback port no one listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a start may take before the test fails.
const START_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// A scratch area for one test: a data directory, a config file and a home
/// directory for the CLI's stored login.
#[derive(Debug)]
pub struct Sandbox {
    root: tempfile::TempDir,
    binary: PathBuf,
}

impl Sandbox {
    /// A sandbox for the binary at `binary` (pass `env!("CARGO_BIN_EXE_rampart")`).
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        let root = tempfile::Builder::new()
            .prefix("rampart-test-")
            .tempdir()
            .expect("cannot create a temporary directory");
        std::fs::create_dir_all(root.path().join("home")).expect("cannot create home");
        // Traversable (not listable) by other users: the managed PostgreSQL
        // cluster runs as the postgres user when the tests run as root.
        std::fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("cannot open the sandbox for traversal");
        Self {
            root,
            binary: binary.into(),
        }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// Writes `rampart.toml` with `extra` appended to loopback listeners
    /// (API and edge) on ports the OS picks. MFA is not required here, so
    /// that tests can act as the bootstrap owner at once; the identity tests
    /// write their own configuration and keep the default.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let path = self.root.path().join("rampart.toml");
        let text = format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\
             [auth]\nrequire_mfa = false\n\
             [edge.listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nadmin = \"\"\n{extra}"
        );
        std::fs::write(&path, text).expect("cannot write rampart.toml");
        path
    }

    /// `rampart ARGS` with a private HOME and no inherited RAMPART_*
    /// variables.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.env("HOME", self.home())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("RAMPART_SERVER")
            .env_remove("RAMPART_TOKEN")
            .env_remove("RAMPART_CA")
            .env_remove("RAMPART_DATA_DIR")
            .env_remove("RAMPART_CONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// Writes `rampart.toml` holding exactly `text`.
    pub fn write_raw_config(&self, text: &str) -> PathBuf {
        let path = self.root.path().join("rampart.toml");
        std::fs::write(&path, text).expect("cannot write rampart.toml");
        path
    }

    /// Runs `rampart up` with `config` and waits until it listens.
    pub fn start(&self, config: &Path) -> anyhow::Result<Server> {
        self.start_with(config, &[])
    }

    /// Runs `rampart up` with `config` and `extra` arguments, and waits
    /// until it listens.
    pub fn start_with(&self, config: &Path, extra: &[&str]) -> anyhow::Result<Server> {
        let mut cmd = self.command();
        cmd.arg("up")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Server::spawn(cmd, self.data_dir())
    }

    /// Runs `rampart up` expecting it to fail; returns its output.
    pub fn start_expecting_failure(&self, config: &Path) -> anyhow::Result<Output> {
        let mut cmd = self.command();
        cmd.arg("up")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(config);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start rampart")?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(child.wait_with_output()?);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("rampart up kept running although it was expected to fail");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Collected output of a running process.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn push(&self, line: &str) {
        let mut text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        text.push_str(line);
        text.push('\n');
    }

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn pump(stream: impl Read + Send + 'static, captured: Captured) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(line) => captured.push(&line),
                Err(_) => break,
            }
        }
    })
}

/// A running `rampart up`; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    data_dir: PathBuf,
    addr: SocketAddr,
    edge: SocketAddr,
    output: Captured,
    pumps: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    /// The process id of `rampart up`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts a prepared `rampart up` command (stdout and stderr piped) and
    /// waits until it listens.
    pub fn spawn_command(cmd: Command, data_dir: PathBuf) -> anyhow::Result<Self> {
        Self::spawn(cmd, data_dir)
    }

    fn spawn(mut cmd: Command, data_dir: PathBuf) -> anyhow::Result<Self> {
        let mut child = cmd.spawn().context("cannot start rampart up")?;
        let output = Captured::default();
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let pumps = vec![pump(stdout, output.clone()), pump(stderr, output.clone())];
        let deadline = Instant::now() + START_DEADLINE;
        let addr = loop {
            let text = output.text();
            if let Some(rest) = text.split("API listening on https://").nth(1) {
                let addr = rest.lines().next().unwrap_or_default();
                break addr
                    .parse()
                    .with_context(|| format!("bad address {addr:?}"))?;
            }
            if let Some(status) = child.try_wait()? {
                bail!("rampart up exited with {status} before listening:\n{text}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("rampart up did not listen within {START_DEADLINE:?}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = output.text();
        let edge = text
            .split("apps are served at https://")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .and_then(|a| a.parse().ok())
            .context("rampart up did not say where apps are served")?;
        Ok(Self {
            child: Some(child),
            data_dir,
            addr,
            edge,
            output,
            pumps,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The edge's HTTPS address, where apps are served.
    pub fn edge_addr(&self) -> SocketAddr {
        self.edge
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.data_dir.join("ca.pem")
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.ca_path()).expect("ca.pem exists once the server listens")
    }

    pub fn token_file(&self) -> PathBuf {
        self.data_dir.join("bootstrap-token")
    }

    /// The owner's bootstrap token.
    pub fn bootstrap_token(&self) -> String {
        std::fs::read_to_string(self.token_file())
            .expect("bootstrap-token exists after the first start")
            .trim()
            .to_owned()
    }

    /// A client with `token`.
    pub fn client(&self, token: Option<&str>) -> rampart_client::Client {
        rampart_client::Client::new(&self.url(), &self.ca_pem(), token.map(str::to_owned))
            .expect("a client for the test server")
    }

    /// Everything the process printed so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// Sends SIGTERM, waits for the process to exit and returns its status
    /// and everything it printed.
    pub fn stop(mut self) -> anyhow::Result<(ExitStatus, String)> {
        let mut child = self.child.take().context("already stopped")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(status) = child.try_wait()? {
                for pump in self.pumps.drain(..) {
                    let _ = pump.join();
                }
                return Ok((status, self.output.text()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("rampart up did not stop within {STOP_DEADLINE:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a CLI command that must succeed; returns its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(
        code, 0,
        "command failed: {cmd:?}\nstdout: {out}\nstderr: {err}"
    );
    out
}

/// Runs one SQL statement on a database file behind the platform's back,
/// as an attacker with disk access would.
pub async fn sql(db: &Path, statement: &str) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("the database opens");
    sqlx::query(statement)
        .execute(&pool)
        .await
        .expect("the statement runs");
    pool.close().await;
}

/// Runs a CLI command and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let output = cmd.output().expect("cannot run rampart");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every file under `dir`, recursively, with its bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// An S3-protocol server (moto's server mode) on a loopback port the OS
/// picks; killed when dropped. `scripts/test` installs it.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    endpoint: String,
}

/// An administrator's key on an [`S3Server`] that checks keys and policies.
#[derive(Debug, Clone)]
pub struct S3AdminKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Server {
    pub fn start() -> anyhow::Result<Self> {
        Self::spawn(None)
    }

    /// A server that checks signatures and IAM policies, with one
    /// administrator allowed everything; its key is returned.
    pub fn start_with_iam() -> anyhow::Result<(Self, S3AdminKey)> {
        // The first three calls (the administrator's user, policy and key)
        // go unchecked; every later one is authenticated and authorised.
        let server = Self::spawn(Some(3))?;
        let script = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="platform-admin")
iam.put_user_policy(UserName="platform-admin", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="platform-admin")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;
        let out = Command::new("python3")
            .args(["-c", script, &server.endpoint])
            .output()
            .context("cannot run python3 to create the S3 administrator")?;
        if !out.status.success() {
            bail!(
                "creating the S3 administrator failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        let key = S3AdminKey {
            access_key_id: parts.next().context("no key id")?.to_owned(),
            secret_access_key: parts.next().context("no secret")?.to_owned(),
        };
        Ok((server, key))
    }

    fn spawn(unchecked_calls: Option<u32>) -> anyhow::Result<Self> {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"]);
        if let Some(n) = unchecked_calls {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start python3 -m moto.server (pip install 'moto[server]')")?;
        let output = Captured::default();
        let out = child.stdout.take().context("no stdout")?;
        let err = child.stderr.take().context("no stderr")?;
        pump(out, output.clone());
        pump(err, output.clone());
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let text = output.text();
            if let Some(rest) = text.split("Running on ").nth(1) {
                let endpoint = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                return Ok(Self { child, endpoint });
            }
            if let Some(status) = child.try_wait()? {
                bail!("the S3 server exited with {status}:\n{text}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the S3 server did not start within {START_DEADLINE:?}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates a bucket with a plain PUT, which the test server accepts
    /// unsigned.
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        if !answer.starts_with("HTTP/1.1 200") {
            bail!(
                "creating bucket {name} failed: {}",
                answer.lines().next().unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The AWS_* variables that point an S3 client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A build context of 3 KiB on the wire: a Dockerfile and a GNU sparse
/// entry that unpacks to 2^60 zero bytes.
pub fn sparse_tar_bomb() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "Dockerfile", &b"FROM"[..])
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNUSparse);
    header.set_size(1);
    header.set_mode(0o644);
    header.set_path("zeros").unwrap();
    let huge = |field: &mut [u8; 12], value: u64| {
        // Base-256: a leading 0x80, then the value big-endian.
        field.fill(0);
        field[0] = 0x80;
        field[4..].copy_from_slice(&value.to_be_bytes());
    };
    let gnu = header.as_gnu_mut().unwrap();
    huge(&mut gnu.realsize, 1 << 60);
    huge(&mut gnu.sparse[0].offset, (1 << 60) - 1);
    huge(&mut gnu.sparse[0].numbytes, 1);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    builder.into_inner().unwrap()
}

/// Makes a FIFO at `path` (nothing ever writes to it, so a reader that
/// opens it blocking waits for ever) and returns the path.
pub fn fifo(path: &Path) -> PathBuf {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o600),
        0,
    )
    .expect("a FIFO");
    path.to_owned()
}

/// A hostile writer of a folder: `files` plain files `f0`, `f1`, … that a
/// thread keeps swapping, atomically, for links to each of `targets` in
/// turn and back, until the flipper is dropped.
#[derive(Debug)]
pub struct LinkFlipper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LinkFlipper {
    pub fn start(dir: &Path, files: usize, targets: &[&Path]) -> Self {
        std::fs::create_dir_all(dir).expect("the folder");
        for i in 0..files {
            std::fs::write(dir.join(format!("f{i}")), b"plain").expect("a file");
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let targets: Vec<PathBuf> = targets.iter().map(|t| t.to_path_buf()).collect();
        let thread = {
            let (stop, dir) = (stop.clone(), dir.to_owned());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let i = n % files;
                    let path = dir.join(format!("f{i}"));
                    let link = dir.join(format!(".link{i}"));
                    let plain = dir.join(format!(".plain{i}"));
                    let _ = std::os::unix::fs::symlink(&targets[n % targets.len()], &link);
                    let _ = std::fs::rename(&link, &path);
                    let _ = std::fs::write(&plain, b"plain");
                    let _ = std::fs::rename(&plain, &path);
                    n += 1;
                }
            })
        };
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LinkFlipper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

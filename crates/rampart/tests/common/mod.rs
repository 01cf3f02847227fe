//! Helpers shared by the tests that run apps on the real Docker engine.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rampart_testkit::{Sandbox, Server, ok, run};
use serde_json::Value;

/// The statically linked sample app.
pub const HELLO: &str = concat!(env!("OUT_DIR"), "/hello");

/// Edge limits high enough that a load test from one address is not shed.
pub const CONFIG: &str = "[edge.limits]\nrequests_per_second = 100000\nburst = 100000\n";

pub fn sandbox() -> Sandbox {
    Sandbox::new(env!("CARGO_BIN_EXE_rampart"))
}

pub fn cli(sb: &Sandbox, server: &Server) -> Command {
    let mut cmd = sb.command();
    cmd.env("RAMPART_SERVER", server.url())
        .env("RAMPART_CA", server.ca_path())
        .env("RAMPART_TOKEN", server.bootstrap_token());
    cmd
}

pub fn json(cmd: &mut Command) -> Value {
    serde_json::from_str(&ok(cmd.arg("--json"))).expect("JSON output")
}

/// A build context: the hello binary, and a Dockerfile (`extra` lines added).
pub fn context(dir: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(HELLO, dir.join("hello")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM scratch\nCOPY hello /hello\n{extra}ENTRYPOINT [\"/hello\"]\n"),
    )
    .unwrap();
    dir.to_owned()
}

pub fn docker(args: &[&str]) -> (i32, String, String) {
    run(Command::new("docker").args(args))
}

/// Containers of `app` on this engine, any state, by label.
pub fn containers(app_label: &str) -> Vec<String> {
    let (_, out, _) = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=rampart.app={app_label}"),
    ]);
    out.lines().map(str::to_owned).collect()
}

pub fn inspect(id: &str) -> Value {
    let (code, out, err) = docker(&["inspect", id]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

/// Removes what a test's apps left, whatever happened.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut installations = std::collections::BTreeSet::new();
        for app in &self.0 {
            for id in containers(app) {
                if let Some(i) = inspect_label(&id, "rampart.installation") {
                    installations.insert(i);
                }
                let _ = docker(&["rm", "-f", &id]);
            }
            let (_, volumes, _) = docker(&[
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=rampart.app={app}"),
            ]);
            for volume in volumes.lines() {
                let _ = docker(&["volume", "rm", "-f", volume]);
            }
            let (_, nets, _) = docker(&[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("label=rampart.app={app}"),
            ]);
            for net in nets.lines() {
                let _ = docker(&["network", "rm", net]);
            }
        }
        // The installation's CA volume (shared by its apps).
        for installation in installations {
            let _ = docker(&["volume", "rm", "-f", &format!("rampart-{installation}-ca")]);
        }
    }
}

/// One label of a container, if it has it.
pub fn inspect_label(id: &str, label: &str) -> Option<String> {
    let (code, out, _) = docker(&[
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels \"{label}\"}}}}"),
        id,
    ]);
    (code == 0 && !out.trim().is_empty()).then(|| out.trim().to_owned())
}

/// A client for apps behind the edge, trusting the platform's CA.
pub fn edge_client(server: &Server, host: &str) -> reqwest::blocking::Client {
    client_for(&server.ca_pem(), host, server.edge_addr())
}

pub fn client_for(ca: &[u8], host: &str, edge: SocketAddr) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(ca).unwrap();
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve(host, edge)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn app_url(server: &Server, host: &str) -> String {
    format!("https://{host}:{}/", server.edge_addr().port())
}

pub fn get(client: &reqwest::blocking::Client, url: &str) -> (u16, String) {
    match client.get(url).send() {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `check` until it holds or `limit` passes.
pub fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub type Counters = (
    Arc<AtomicU64>,
    Arc<AtomicU64>,
    Arc<std::sync::Mutex<Vec<String>>>,
);

/// Sends requests through the edge on `threads` threads until `stop`,
/// counting successes and failures. Odd threads open a new connection for
/// every request; even ones keep theirs alive.
pub fn load(
    server: &Server,
    host: &str,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<std::thread::JoinHandle<()>>, Counters) {
    load_at(&server.ca_pem(), server.edge_addr(), host, threads, stop)
}

/// Like [`load`], through the edge listening at `edge`.
pub fn load_at(
    ca: &[u8],
    edge: SocketAddr,
    host: &str,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<std::thread::JoinHandle<()>>, Counters) {
    let good = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = format!("https://{host}:{}/", edge.port());
    let ca = ca.to_vec();
    let host = host.to_owned();
    let handles = (0..threads)
        .map(|i| {
            let (stop, good, bad, errors, url) = (
                stop.clone(),
                good.clone(),
                bad.clone(),
                errors.clone(),
                url.clone(),
            );
            let (ca, host) = (ca.clone(), host.clone());
            std::thread::spawn(move || {
                let make = || client_for(&ca, &host, edge);
                let keep = make();
                while !stop.load(Ordering::Relaxed) {
                    let fresh;
                    let client = if i % 2 == 0 {
                        &keep
                    } else {
                        fresh = make();
                        &fresh
                    };
                    let (status, body) = get(client, &url);
                    if status == 200 && body.starts_with("hello from release") {
                        good.fetch_add(1, Ordering::Relaxed);
                    } else {
                        bad.fetch_add(1, Ordering::Relaxed);
                        errors.lock().unwrap().push(format!("{status}: {body}"));
                    }
                }
            })
        })
        .collect();
    (handles, (good, bad, errors))
}

/// Stops a [`load`] and returns how many requests succeeded and failed,
/// with the first few failures.
pub fn stop_load(
    stop: &AtomicBool,
    handles: Vec<std::thread::JoinHandle<()>>,
    (good, bad, errors): Counters,
) -> (u64, u64, Vec<String>) {
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let errors = errors.lock().unwrap();
    (
        good.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        errors[..errors.len().min(5)].to_vec(),
    )
}

/// What a webhook receiver accepted: delivery id, body, and whether the
/// signature checked out.
pub type Accepted = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value, bool)>>>;

/// A webhook receiver on `listener`: checks each delivery's signature with
/// `secret`, answers 500 to the first `failing` ones, 200 after.
pub fn receiver(
    listener: std::net::TcpListener,
    secret: &'static [u8],
    failing: usize,
) -> Accepted {
    use std::io::{BufRead, BufReader, Read, Write};
    let accepted: Accepted = Default::default();
    let record = accepted.clone();
    std::thread::spawn(move || {
        let mut failing = failing;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = std::collections::HashMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap_or(0);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let status = if failing > 0 {
                failing -= 1;
                "500 Internal Server Error"
            } else {
                let now = rampart_core::time::Timestamp::now().unix_seconds();
                let signed = rampart_watch::notify::verify(
                    secret,
                    headers.get("rampart-signature").map_or("", String::as_str),
                    &body,
                    now,
                    300,
                );
                record.lock().unwrap().push((
                    headers.get("rampart-delivery").cloned().unwrap_or_default(),
                    serde_json::from_slice(&body).unwrap_or_default(),
                    signed,
                ));
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    accepted
}

/// A client of the edge for `host`, connecting from `from`.
pub fn client_from(server: &Server, host: &str, from: &str) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&server.ca_pem()).unwrap();
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve(host, loopback(server.edge_addr()))
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn loopback(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

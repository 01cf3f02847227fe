//! `rampart edge` as a process: start, SIGHUP reload (a broken file is
//! refused and the running table stays), SIGTERM drain and exit 0.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tiny upstream answering every request with `name`.
fn upstream(name: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    // Read one request head; answer; keep the connection.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let body = name;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
        }
    });
    addr
}

fn config(dir: &std::path::Path, upstream: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\nadmin = \"\"\n[tls]\nstate_dir = \"{}\"\n\
         [[site]]\nhosts = [\"app.localhost\"]\nupstreams = [\"{upstream}\"]\nhealth_interval_ms = 200\n{extra}",
        dir.join("state").display()
    )
}

fn get(client: &reqwest::blocking::Client, url: &str) -> Option<String> {
    client.get(url).send().ok()?.text().ok()
}

#[test]
fn the_edge_reloads_on_sighup_refuses_a_bad_file_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let a = upstream("a");
    let b = upstream("b");
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, config(dir.path(), a, "")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["edge", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut https = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while https.is_none() && Instant::now() < deadline {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(addr) = line
            .trim()
            .strip_prefix("rampart edge: https listening on ")
        {
            https = Some(addr.parse::<std::net::SocketAddr>().unwrap());
        }
    }
    let https = https.expect("the edge printed its address");
    let ca = std::fs::read(dir.path().join("state/ca.pem")).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("app.localhost", https)
        .build()
        .unwrap();
    let url = format!("https://app.localhost:{}/", https.port());
    assert_eq!(get(&client, &url).as_deref(), Some("a"));

    let hup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    // A broken file is refused; the running table stays.
    std::fs::write(
        &path,
        "[[site]]\nhosts = [\"app.localhost\"]\nupstreams = [\"nowhere\"]\n",
    )
    .unwrap();
    hup(child.id());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&client, &url).as_deref(), Some("a"));

    // A good file takes effect without a restart.
    std::fs::write(&path, config(dir.path(), b, "")).unwrap();
    hup(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&client, &url).as_deref() != Some("b") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&client, &url).as_deref(), Some("b"));

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the edge did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("reload refused") && err.contains("site[0].upstreams"),
        "{err}"
    );
}

#[test]
fn a_bad_edge_config_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, "[limits]\nburst = -1\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["edge", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("limits.burst"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
}

#[test]
fn a_bad_worker_count_is_refused_before_anything_starts() {
    for value in ["abc", "0", "-1", "100000"] {
        let output = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["edge", "--config", "/nonexistent/edge.toml"])
            .env("TOKIO_WORKER_THREADS", value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{value}");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            err.contains("TOKIO_WORKER_THREADS") && !err.contains("panicked"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

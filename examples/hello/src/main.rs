//! `hello`: the sample app of Rampart's demo and tests.
//!
//! A small HTTP/1.1 server on the standard library alone, so that it links
//! statically and runs in an image built `FROM scratch`. It answers:
//!
//! - `GET /health` with `ok` (or 500 when `HELLO_HEALTH=fail`);
//! - anything else with a line naming its release and replica, taken from
//!   `RAMPART_RELEASE` and `RAMPART_REPLICA`.
//!
//! It listens on `PORT` (default 8080). Two switches exist for the
//! platform's tests: `HELLO_EXIT=N` exits with status N at once, and
//! `hello probe HOST:PORT` tries one TCP connection and exits 0 if it was
//! accepted, 1 if not, which checks network isolation from inside a
//! replica.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body read (and discarded).
const MAX_BODY: u64 = 1024 * 1024;

struct Identity {
    release: String,
    replica: String,
    healthy: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("probe") {
        std::process::exit(probe(args.get(2).map(String::as_str).unwrap_or("")));
    }
    if let Some(code) = std::env::var("HELLO_EXIT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        eprintln!("hello: exiting with status {code} as HELLO_EXIT asks");
        std::process::exit(code);
    }
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let identity = Identity {
        release: std::env::var("RAMPART_RELEASE").unwrap_or_else(|_| "-".into()),
        replica: std::env::var("RAMPART_REPLICA").unwrap_or_else(|_| "-".into()),
        healthy: std::env::var("HELLO_HEALTH").as_deref() != Ok("fail"),
    };
    let identity: &'static Identity = Box::leak(Box::new(identity));
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hello: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "hello: release {} replica {} listening on port {port}",
        identity.release, identity.replica
    );
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let _ = serve(stream, identity);
        });
    }
}

fn probe(target: &str) -> i32 {
    let Ok(addr) = target.parse::<SocketAddr>() else {
        eprintln!("hello probe: {target:?} is not an address such as 10.0.0.2:8080");
        return 2;
    };
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => {
            println!("connected to {addr}");
            0
        }
        Err(e) => {
            println!("cannot connect to {addr}: {e}");
            1
        }
    }
}

/// Serves requests on one keep-alive connection.
fn serve(stream: TcpStream, identity: &Identity) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let before = head.len();
            let n = reader
                .by_ref()
                .take((MAX_HEAD - before) as u64)
                .read_until(b'\n', &mut head)?;
            if n == 0 {
                return Ok(());
            }
            if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
                break;
            }
            if head.len() >= MAX_HEAD {
                return respond(&mut writer, 431, "request head too large\n", false);
            }
        }
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.lines();
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut length = 0u64;
        let mut close = request_line.ends_with("HTTP/1.0");
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(u64::MAX);
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return respond(&mut writer, 411, "send a content-length\n", false);
            }
        }
        if length > MAX_BODY {
            return respond(&mut writer, 413, "body too large\n", false);
        }
        std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink())?;
        let keep = !close;
        match (method, path) {
            (_, "/health") if identity.healthy => respond(&mut writer, 200, "ok\n", keep)?,
            (_, "/health") => respond(&mut writer, 500, "unhealthy\n", keep)?,
            ("GET" | "HEAD", _) => {
                let body = format!(
                    "hello from release {} replica {}\n",
                    identity.release, identity.replica
                );
                respond(&mut writer, 200, &body, keep)?;
            }
            _ => respond(&mut writer, 405, "method not allowed\n", keep)?,
        }
        if close {
            return Ok(());
        }
    }
}

fn respond(out: &mut TcpStream, status: u16, body: &str, keep: bool) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let connection = if keep { "keep-alive" } else { "close" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n{body}",
        body.len()
    );
    out.write_all(response.as_bytes())?;
    out.flush()
}

//! `hello`: the sample app of Rampart's demo and tests.
//!
//! A small HTTP/1.1 server, linked statically so that it runs in an image
//! built `FROM scratch`. It answers:
//!
//! - `GET /health` with `ok` (500 when `HELLO_HEALTH=fail`, a 301 to
//!   `/health/` when `HELLO_HEALTH=redirect`);
//! - `POST /notes` stores the body as a row of the table `notes` in the
//!   app's database (`DATABASE_URL`, over TLS verified against the CA its
//!   `sslrootcert` names); `GET /notes` counts the rows;
//! - `PUT /media/NAME` stores the body as a file in `MEDIA_ROOT`;
//!   `GET /media/NAME` returns it;
//! - anything else with a line naming its release and replica, taken from
//!   `RAMPART_RELEASE` and `RAMPART_REPLICA`.
//!
//! It listens on `PORT` (default 8080). `HELLO_HOSTS=a,b` answers 400 to a
//! request whose `Host` is not one of them, as Django's `ALLOWED_HOSTS`
//! does. Three switches exist for the
//! platform's tests: `HELLO_EXIT=N` exits with status N at once,
//! `HELLO_SAY=TEXT` writes TEXT, as it is, to its log at start, and
//! `hello probe HOST:PORT` tries one TCP connection and exits 0 if it was
//! accepted, 1 if not, which checks network isolation from inside a
//! replica. As one-off commands (a release phase, `rampart run`):
//! `hello note TEXT` adds a note and prints how many there are, `hello
//! exit N TEXT` prints TEXT and exits with status N, `hello env NAME`
//! prints a variable, `hello sleep SECS` waits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body read.
const MAX_BODY: u64 = 1024 * 1024;

/// Answers lines typed on its input until `exit N`; says first whether
/// that input is a terminal.
fn repl() -> ! {
    use std::io::{BufRead, IsTerminal};
    let tty = if std::io::stdin().is_terminal() {
        "yes"
    } else {
        "no"
    };
    println!(
        "hello: tty {tty}, TERM={}",
        std::env::var("TERM").unwrap_or_default()
    );
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap_or_default();
        if let Some(code) = line.strip_prefix("exit ") {
            std::process::exit(code.trim().parse().unwrap_or(1));
        }
        if line == "raw" {
            // Bytes a multiplexed stream would read as a frame header, on a
            // read of their own (after the echo of the line).
            use std::io::Write;
            std::thread::sleep(Duration::from_millis(300));
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"\x01\x00\x00\x00\xff\xff\xff\xffafter raw\n");
            let _ = out.flush();
            continue;
        }
        println!("hello: you said {line:?}");
    }
    println!("hello: end of input");
    std::process::exit(0)
}

struct Identity {
    release: String,
    replica: String,
    healthy: bool,
    /// Health answers with a redirect.
    redirect: bool,
    /// The hosts served; empty: any.
    hosts: Vec<String>,
    /// Only `/` (and the routes above) exist; other paths are 404.
    strict: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "probe" => std::process::exit(probe(arg(2))),
        "note" => match database::add_note(arg(2)) {
            Ok(n) => {
                println!("hello: noted {:?}; {n} notes", arg(2));
                return;
            }
            Err(e) => {
                eprintln!("hello: cannot note: {e}");
                std::process::exit(3);
            }
        },
        "exit" => {
            eprintln!("hello: {}", arg(3));
            std::process::exit(arg(2).parse().unwrap_or(1));
        }
        "env" => {
            println!("{}", std::env::var(arg(2)).unwrap_or_default());
            return;
        }
        "sleep" => {
            std::thread::sleep(Duration::from_secs(arg(2).parse().unwrap_or(60)));
            return;
        }
        "repl" => repl(),
        _ => {}
    }
    if let Some(code) = std::env::var("HELLO_EXIT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        eprintln!("hello: exiting with status {code} as HELLO_EXIT asks");
        std::process::exit(code);
    }
    if let Ok(text) = std::env::var("HELLO_SAY") {
        eprintln!("{text}");
    }
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let identity = Identity {
        release: std::env::var("RAMPART_RELEASE").unwrap_or_else(|_| "-".into()),
        replica: std::env::var("RAMPART_REPLICA").unwrap_or_else(|_| "-".into()),
        healthy: std::env::var("HELLO_HEALTH").as_deref() != Ok("fail"),
        redirect: std::env::var("HELLO_HEALTH").as_deref() == Ok("redirect"),
        strict: std::env::var("HELLO_STRICT").is_ok_and(|v| v == "1"),
        hosts: std::env::var("HELLO_HOSTS")
            .unwrap_or_default()
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
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
        let mut host = "";
        let mut close = request_line.ends_with("HTTP/1.0");
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(u64::MAX);
            } else if name.eq_ignore_ascii_case("host") {
                host = value;
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return respond(&mut writer, 411, "send a content-length\n", false);
            }
        }
        if length > MAX_BODY {
            return respond(&mut writer, 413, "body too large\n", false);
        }
        let mut body = Vec::new();
        reader.by_ref().take(length).read_to_end(&mut body)?;
        let keep = !close;
        let host_name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        if !identity.hosts.is_empty() && !identity.hosts.iter().any(|h| h == host_name) {
            respond(&mut writer, 400, "host not allowed\n", keep)?;
            if close {
                return Ok(());
            }
            continue;
        }
        match (method, path) {
            (_, "/health") if identity.redirect => respond(&mut writer, 301, "", keep)?,
            (_, "/health") if identity.healthy => respond(&mut writer, 200, "ok\n", keep)?,
            (_, "/health") => respond(&mut writer, 500, "unhealthy\n", keep)?,
            ("POST", "/notes") => {
                let text = String::from_utf8_lossy(&body).into_owned();
                match database::add_note(&text) {
                    Ok(n) => respond(&mut writer, 200, &format!("{n} notes\n"), keep)?,
                    Err(e) => respond(&mut writer, 503, &format!("database: {e}\n"), keep)?,
                }
            }
            ("GET", "/notes") => match database::count_notes() {
                Ok(n) => respond(&mut writer, 200, &format!("{n} notes\n"), keep)?,
                Err(e) => respond(&mut writer, 503, &format!("database: {e}\n"), keep)?,
            },
            ("PUT", p) if p.starts_with("/media/") => match media_path(p) {
                Some(path) => match std::fs::write(&path, &body) {
                    Ok(()) => respond(
                        &mut writer,
                        200,
                        &format!("stored {} bytes\n", body.len()),
                        keep,
                    )?,
                    Err(e) => respond(&mut writer, 503, &format!("media: {e}\n"), keep)?,
                },
                None => respond(&mut writer, 404, "no such media name\n", keep)?,
            },
            ("GET", p) if p.starts_with("/media/") => match media_path(p).map(std::fs::read) {
                Some(Ok(bytes)) => {
                    respond(&mut writer, 200, &String::from_utf8_lossy(&bytes), keep)?
                }
                _ => respond(&mut writer, 404, "no such media file\n", keep)?,
            },
            ("POST", "/login") => {
                // A login form: one right password, a redirect when it is
                // given, the form again (200) when it is not.
                if body == b"password=right" {
                    respond(&mut writer, 303, "", keep)?;
                } else {
                    respond(&mut writer, 200, "wrong password\n", keep)?;
                }
            }
            ("GET" | "HEAD", p) if identity.strict && p != "/" => {
                respond(&mut writer, 404, "not found\n", keep)?;
            }
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

/// The file a `/media/NAME` path names: plain names only, inside
/// `MEDIA_ROOT`.
fn media_path(path: &str) -> Option<std::path::PathBuf> {
    let name = path.strip_prefix("/media/")?;
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    let root = std::env::var_os("MEDIA_ROOT")?;
    ok.then(|| std::path::Path::new(&root).join(name))
}

mod database {
    //! The app's side of `DATABASE_URL`: a libpq-style URL whose
    //! `sslmode=verify-full` and `sslrootcert` are honoured here, since the
    //! driver takes TLS settings as code rather than URL options.

    use std::sync::Arc;

    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    fn connect() -> Result<postgres::Client, String> {
        let url =
            std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set".to_owned())?;
        let (base, query) = url.split_once('?').unwrap_or((&url, ""));
        let mut ca_file = None;
        let mut kept = vec!["sslmode=require".to_owned()];
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslrootcert", v)) => ca_file = Some(v.to_owned()),
                Some(("sslmode", _)) => {}
                _ => kept.push(pair.to_owned()),
            }
        }
        let ca_file = ca_file.ok_or("DATABASE_URL names no sslrootcert")?;
        let pem = std::fs::read(&ca_file).map_err(|e| format!("{ca_file}: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{ca_file}: {e}"))?;
            roots.add(cert).map_err(|e| format!("{ca_file}: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let url = format!("{base}?{}", kept.join("&"));
        postgres::Client::connect(&url, tokio_postgres_rustls::MakeRustlsConnect::new(tls)).map_err(
            |e| match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            },
        )
    }

    fn message(e: postgres::Error) -> String {
        match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => e.to_string(),
        }
    }

    /// Stores a note; returns how many there are.
    pub fn add_note(text: &str) -> Result<i64, String> {
        let mut client = connect()?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS notes (id bigserial PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL DEFAULT now())",
            )
            .map_err(message)?;
        client
            .execute("INSERT INTO notes (body) VALUES ($1)", &[&text])
            .map_err(message)?;
        count(&mut client)
    }

    pub fn count_notes() -> Result<i64, String> {
        count(&mut connect()?)
    }

    fn count(client: &mut postgres::Client) -> Result<i64, String> {
        let row = client
            .query_one("SELECT count(*) FROM notes", &[])
            .map_err(message)?;
        Ok(row.get(0))
    }
}

fn respond(out: &mut TcpStream, status: u16, body: &str, keep: bool) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        301 => "Moved Permanently",
        303 => "See Other",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let connection = if keep { "keep-alive" } else { "close" };
    let location = match status {
        301 => "location: /health/\r\n",
        303 => "location: /\r\n",
        _ => "",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{location}connection: {connection}\r\n\r\n{body}",
        body.len()
    );
    out.write_all(response.as_bytes())?;
    out.flush()
}

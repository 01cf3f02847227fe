//! Helpers for edge tests: upstream servers that count what reaches them,
//! an edge started on OS-chosen loopback ports, and clients that trust it.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use rampart_edge::{Edge, EdgeConfig};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A test upstream: answers with its name, counts requests (health checks
/// aside) and remembers the last request's headers.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub last_headers: Arc<Mutex<HeaderMap>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

async fn serve(
    listener: TcpListener,
    name: String,
    hits: Arc<AtomicUsize>,
    last: Arc<Mutex<HeaderMap>>,
) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        let hits = hits.clone();
        let last = last.clone();
        connections.spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let name = name.clone();
                let hits = hits.clone();
                let last = last.clone();
                async move {
                    let path = req.uri().path().to_owned();
                    if path != "/healthz" {
                        hits.fetch_add(1, Ordering::SeqCst);
                        *last.lock().unwrap() = req.headers().clone();
                    }
                    if path == "/slow" {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                    }
                    if path == "/silent" {
                        std::future::pending::<()>().await;
                    }
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes().len())
                        .unwrap_or(0);
                    let text = if path == "/echo" {
                        format!("{body}")
                    } else {
                        name.clone()
                    };
                    let mut response = Response::new(Full::new(Bytes::from(text)));
                    response
                        .headers_mut()
                        .insert("server", "upstream/1.0".parse().unwrap());
                    if path == "/framed" {
                        response
                            .headers_mut()
                            .insert("x-frame-options", "DENY".parse().unwrap());
                    }
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Upstream {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut up = Self {
            name: name.into(),
            addr,
            hits: Arc::new(AtomicUsize::new(0)),
            last_headers: Arc::new(Mutex::new(HeaderMap::new())),
            server: None,
        };
        up.server = Some(tokio::spawn(serve(
            listener,
            up.name.clone(),
            up.hits.clone(),
            up.last_headers.clone(),
        )));
        up
    }

    /// Kills the server and every connection it has.
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Starts again on the same address.
    pub async fn revive(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.server = Some(tokio::spawn(serve(
            listener,
            self.name.clone(),
            self.hits.clone(),
            self.last_headers.clone(),
        )));
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running edge with its state directory.
pub struct TestEdge {
    pub edge: Arc<Edge>,
    pub dir: tempfile::TempDir,
    pub ca: Vec<u8>,
}

pub fn config_text(dir: &std::path::Path, limits: &str, sites: &str) -> String {
    config_with_listen(dir, "", limits, sites)
}

/// A config with `listen` (more `[listen]` keys) added.
pub fn config_with_listen(
    dir: &std::path::Path,
    listen: &str,
    limits: &str,
    sites: &str,
) -> String {
    format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{listen}\n\
         [tls]\nstate_dir = \"{}\"\n[log]\naccess = \"{}\"\n[limits]\n{limits}\n{sites}",
        dir.join("state").display(),
        dir.join("access.jsonl").display()
    )
}

pub fn site(hosts: &[&str], upstreams: &[SocketAddr], extra: &str) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let ups: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[[site]]\nhosts = [{}]\nupstreams = [{}]\nhealth_path = \"/healthz\"\nhealth_interval_ms = 200\nhealth_fails = 2\nhealth_passes = 1\n{extra}\n",
        hosts.join(", "),
        ups.join(", ")
    )
}

impl TestEdge {
    pub async fn start(limits: &str, sites: &str) -> Self {
        Self::start_with_listen("", limits, sites).await
    }

    /// An edge with more `[listen]` keys, such as `workers = 2`.
    pub async fn start_with_listen(listen: &str, limits: &str, sites: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = config_with_listen(dir.path(), listen, limits, sites);
        let config = EdgeConfig::from_toml(&text).unwrap();
        let edge = Edge::start(config).await.unwrap();
        let ca = edge.ca_pem().as_bytes().to_vec();
        Self { edge, dir, ca }
    }

    pub fn https(&self) -> SocketAddr {
        self.edge.addrs().https
    }

    /// A client that trusts the edge's CA and resolves `hosts` to it.
    pub fn client(&self, hosts: &[&str], local: Option<IpAddr>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca).unwrap())
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        for host in hosts {
            builder = builder.resolve(host, self.https());
        }
        if let Some(ip) = local {
            builder = builder.local_address(ip);
        }
        builder.build().unwrap()
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.https().port())
    }

    /// The status of a GET through `client`.
    pub async fn status(&self, client: &reqwest::Client, host: &str, path: &str) -> u16 {
        client
            .get(self.url(host, path))
            .send()
            .await
            .expect("the request reaches the edge")
            .status()
            .as_u16()
    }
}

/// Polls `check` until it holds or `deadline` passes.
pub async fn eventually(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < end {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

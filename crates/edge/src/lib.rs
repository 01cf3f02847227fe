//! The edge: Rampart's hardened HTTPS load balancer.
//!
//! All outside traffic enters here. The request path is: TLS handshake
//! (SNI picks the certificate) → shields (connection caps, bans, rate
//! limits, timeouts, size limits) → route by host → a healthy replica,
//! round robin → proxy with `X-Forwarded-*` and `X-Request-Id` → security
//! headers on the way back → one access event.
//!
//! [`Edge::apply`] swaps the whole route table atomically: requests in
//! flight finish on the table they started with. Certificates for new sites
//! come from the internal CA, PEM files, or ACME without a restart.
//! `rampart edge --config FILE` runs this same code standalone; the platform
//! runs it in process.

pub mod access;
pub mod acme;
pub mod body;
pub mod config;
mod idle;
pub mod listen;
pub mod metrics;
pub mod pki;
pub mod proxy;
pub mod relay;
pub mod routes;
mod server;
pub mod shield;
pub mod tls;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use access::AccessEvent;
pub use config::{ConfigError, EdgeConfig, Limits};
pub use routes::RouteTable;
pub use shield::{Ban, ShieldAction};

use crate::acme::Challenges;
use crate::acme::{Acme, backoff, renewal_due};
use crate::metrics::{CertLabels, Metrics, UpstreamLabels};
use crate::pki::InternalCa;
use crate::proxy::{Shared, Table};
use crate::routes::{SiteSpec, TlsMode};
use crate::shield::Shields;
use crate::tls::{CertError, CertStore, Served};

/// How long shutdown waits for the access log to reach the disk.
const ACCESS_FLUSH: Duration = Duration::from_secs(2);
/// How often quiet clients are forgotten and due certificates renewed.
const MAINTAIN_EVERY: Duration = Duration::from_secs(30);

/// Why the edge could not start or apply a table.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("state directory {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("site {site}: {source}")]
    Certificate { site: String, source: CertError },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    #[error("cannot start the HTTPS workers: {0}")]
    Workers(std::io::Error),
}

/// The addresses the edge listens on.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: Option<SocketAddr>,
}

/// A running edge.
pub struct Edge {
    shared: Arc<Shared>,
    certs: Arc<CertStore>,
    registry: upstream::Registry,
    ca: InternalCa,
    acme: Option<Arc<Acme>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    acme_orders: Mutex<HashMap<Vec<String>, JoinHandle<()>>>,
    /// Why the last ACME order for a site failed, by its first host;
    /// cleared when one succeeds.
    acme_failures: Arc<Mutex<HashMap<String, String>>>,
    /// More metrics served after the edge's own (the platform's).
    more_metrics: std::sync::OnceLock<MetricsSource>,
    addrs: Addrs,
}

/// Renders metrics in Prometheus' text format.
type MetricsSource = Box<dyn Fn() -> String + Send + Sync>;

/// Where a site's certificate stands, for the platform's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateStatus {
    /// The site's first host, which names it.
    pub site: String,
    /// Where its certificate should come from: `acme`, `internal` or
    /// `files`.
    pub wanted: &'static str,
    /// Where the one served now came from; an ACME site is served an
    /// internal stand-in until its first certificate arrives.
    pub served: &'static str,
    pub not_after: OffsetDateTime,
    /// Past two thirds of its lifetime: a renewal is under way.
    pub renewal_due: bool,
    /// Why the last ACME order failed, while no later one succeeded.
    pub failing: Option<String>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, EdgeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| EdgeError::Bind { what, addr, source })
}

fn host_names(site: &SiteSpec) -> Vec<String> {
    site.hosts.iter().map(routes::HostPattern::text).collect()
}

impl Edge {
    /// Binds the listeners, applies the routes and starts serving.
    pub async fn start(config: EdgeConfig) -> Result<Arc<Self>, EdgeError> {
        let state = &config.tls.state_dir;
        std::fs::create_dir_all(state).map_err(|source| EdgeError::State {
            path: state.clone(),
            source,
        })?;
        let ca = InternalCa::load_or_create(&state.join("ca.pem"), &state.join("ca-key.pem"))?;
        let https = bind("listen.https", config.listen.https).await?;
        let http = bind("listen.http", config.listen.http).await?;
        let admin = match config.listen.admin {
            Some(addr) => Some(bind("listen.admin", addr).await?),
            None => None,
        };
        let local = |l: &TcpListener, fallback: SocketAddr| l.local_addr().unwrap_or(fallback);
        let addrs = Addrs {
            http: local(&http, config.listen.http),
            https: local(&https, config.listen.https),
            admin: admin
                .as_ref()
                .zip(config.listen.admin)
                .map(|(l, a)| local(l, a)),
        };

        let challenges = Arc::new(Challenges::default());
        let access =
            access::AccessLog::start(config.access_log.clone()).map_err(EdgeError::AccessLog)?;
        let shared = Arc::new(Shared {
            table: ArcSwap::from_pointee(Table::default()),
            limits: ArcSwap::from_pointee(config.limits.clone()),
            shields: Shields::new(&config.limits),
            dialer: ArcSwap::from_pointee(relay::Dialer::direct()),
            metrics: Arc::new(Metrics::default()),
            access,
            challenges: challenges.clone(),
            https_port: addrs.https.port(),
            well_known: Arc::default(),
        });
        let acme = config.tls.acme_directory.clone().map(|dir| {
            Arc::new(Acme::new(
                dir,
                config.tls.acme_email.clone(),
                config.tls.acme_trust.clone(),
                state,
                challenges,
            ))
        });
        let certs = Arc::new(CertStore::default());
        let tls = tls::server_config(certs.clone())?;
        let (stop, stop_rx) = watch::channel(false);
        let edge = Arc::new(Self {
            shared: shared.clone(),
            certs,
            registry: upstream::Registry::default(),
            ca,
            acme,
            stop,
            tasks: Mutex::new(Vec::new()),
            acme_orders: Mutex::new(HashMap::new()),
            acme_failures: Arc::default(),
            more_metrics: std::sync::OnceLock::new(),
            addrs,
        });
        let fallback = edge
            .issue_internal(&["unknown-site.invalid".to_owned()])
            .map_err(|source| EdgeError::Certificate {
                site: "(fallback)".into(),
                source,
            })?;
        edge.certs.set_fallback(fallback);
        edge.apply(config.routes)?;

        let mut tasks = match config.listen.workers {
            None => vec![tokio::spawn(server::serve_https(
                https,
                tls,
                shared.clone(),
                stop_rx.clone(),
            ))],
            Some(n) => {
                https_workers(n, https, &tls, &shared, &stop_rx).map_err(EdgeError::Workers)?
            }
        };
        tasks.push(tokio::spawn(server::serve_http(
            http,
            shared.clone(),
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(maintain(
            Arc::downgrade(&edge),
            stop_rx.clone(),
        )));
        if let Some(admin) = admin {
            let weak = Arc::downgrade(&edge);
            let render = move || {
                let weak = weak.clone();
                async move {
                    weak.upgrade()
                        .map(|e| e.render_metrics())
                        .unwrap_or_default()
                }
            };
            tasks.push(tokio::spawn(server::serve_admin(admin, render, stop_rx)));
        }
        edge.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(tasks);
        Ok(edge)
    }

    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    /// The internal CA's certificate, for clients to trust.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Swaps in a new route table. Certificates for new sites are obtained
    /// first; if one cannot be loaded, nothing changes and the reason is
    /// returned.
    pub fn apply(self: &Arc<Self>, routes: RouteTable) -> Result<(), EdgeError> {
        let current = self.certs.snapshot();
        let mut certs: HashMap<String, Served> = HashMap::new();
        let mut orders = Vec::new();
        for site in routes.sites() {
            let hosts = host_names(site);
            let reuse = hosts
                .iter()
                .map(|h| current.get(h))
                .collect::<Option<Vec<_>>>()
                .and_then(|found| found.first().cloned().cloned())
                .filter(|s| !renewal_due(s.not_before, s.not_after, OffsetDateTime::now_utc()));
            let served = match &site.tls {
                TlsMode::Internal => match reuse.filter(|s| s.source == "internal") {
                    Some(s) => s,
                    None => {
                        self.issue_internal(&hosts)
                            .map_err(|source| EdgeError::Certificate {
                                site: site.name(),
                                source,
                            })?
                    }
                },
                TlsMode::Files { cert, key } => {
                    tls::load_files(cert, key, "files").map_err(|source| {
                        EdgeError::Certificate {
                            site: site.name(),
                            source,
                        }
                    })?
                }
                TlsMode::Acme => {
                    // A stored certificate that is due is still served
                    // while its renewal is ordered: it is trusted, the
                    // stand-in is not.
                    let now = OffsetDateTime::now_utc();
                    let stored = hosts
                        .iter()
                        .map(|h| current.get(h))
                        .collect::<Option<Vec<_>>>()
                        .and_then(|found| found.first().cloned().cloned())
                        .filter(|s| s.source == "acme")
                        .or_else(|| self.acme.as_ref().and_then(|a| a.stored(&hosts)))
                        .filter(|s| s.not_after > now + time::Duration::hours(1));
                    if stored
                        .as_ref()
                        .is_none_or(|s| renewal_due(s.not_before, s.not_after, now))
                    {
                        orders.push(hosts.clone());
                    }
                    match stored {
                        Some(s) => s,
                        None => {
                            // Until the ACME certificate arrives, handshakes
                            // get an internal one rather than none.
                            self.issue_internal(&hosts).map_err(|source| {
                                EdgeError::Certificate {
                                    site: site.name(),
                                    source,
                                }
                            })?
                        }
                    }
                }
            };
            for host in hosts {
                certs.insert(host, served.clone());
            }
        }
        let pools = self
            .registry
            .pools(routes.sites(), &self.shared.dialer.load());
        let counters = routes
            .sites()
            .iter()
            .map(|s| Arc::new(self.shared.metrics.site_counters(&s.name())))
            .collect();
        self.certs.replace(certs);
        self.shared.table.store(Arc::new(Table {
            routes,
            pools,
            counters,
        }));
        for hosts in orders {
            self.order(hosts);
        }
        Ok(())
    }

    fn issue_internal(&self, hosts: &[String]) -> Result<Served, CertError> {
        let issued = self
            .ca
            .issue(hosts)
            .map_err(|e| CertError::Issue(e.to_string()))?;
        tls::served(issued.chain, &issued.key, "internal")
    }

    /// Starts (once) an ACME order for `hosts`, retrying with backoff.
    fn order(self: &Arc<Self>, hosts: Vec<String>) {
        let Some(acme) = self.acme.clone() else {
            tracing::error!(hosts = ?hosts, "a site wants ACME but tls.acme_directory is not set");
            return;
        };
        let mut orders = self.acme_orders.lock().unwrap_or_else(|e| e.into_inner());
        if orders.get(&hosts).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let certs = self.certs.clone();
        let failures = self.acme_failures.clone();
        let key = hosts.clone();
        let task = tokio::spawn(async move {
            let mut attempt = 0;
            let site = hosts.first().cloned().unwrap_or_default();
            loop {
                match acme.issue(&hosts).await {
                    Ok(served) => {
                        for host in &hosts {
                            certs.set(host, served.clone());
                        }
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&site);
                        return;
                    }
                    Err(error) => {
                        let wait = backoff(attempt);
                        tracing::warn!(hosts = ?hosts, %error, retry_in = ?wait, "ACME order failed");
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(site.clone(), error.to_string());
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                }
            }
        });
        orders.insert(key, task);
    }

    /// Where each site's certificate stands.
    /// The access log file, when one is written.
    pub fn access_log_path(&self) -> Option<std::path::PathBuf> {
        self.shared.access.path().map(std::path::Path::to_owned)
    }

    /// Serves `texts` (host → security.txt) from now on.
    pub fn set_security_txt(&self, texts: std::collections::HashMap<String, String>) {
        self.shared.well_known.set_texts(texts);
    }

    /// Takes security reports at `/.well-known/security-report` on every
    /// host with a security.txt, handing each to `sink`: `per_client`
    /// and `overall` are (burst, one more every) limits.
    pub fn set_report_intake(
        &self,
        sink: proxy::ReportSink,
        per_client: (u32, std::time::Duration),
        overall: (u32, std::time::Duration),
    ) {
        self.shared.well_known.set_intake(sink, per_client, overall);
    }

    /// The ACME certificate stored for `hosts` (chain, key) as PEM text,
    /// for an ingress node that serves the same site.
    pub fn acme_pem(&self, hosts: &[String]) -> Option<(String, String)> {
        self.acme.as_ref()?.stored_pem(hosts)
    }

    /// The ACME HTTP-01 challenges this edge answers (token, key
    /// authorization).
    pub fn challenges(&self) -> Vec<(String, String)> {
        self.shared.challenges.all()
    }

    /// Answers exactly these challenges: an ingress node answers those of
    /// the platform's edge, since a CA may validate through any node.
    pub fn set_challenges(&self, all: Vec<(String, String)>) {
        self.shared.challenges.replace(all);
    }

    pub fn certificates(&self) -> Vec<CertificateStatus> {
        let table = self.shared.table.load_full();
        let certs = self.certs.snapshot();
        let failures = self
            .acme_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = OffsetDateTime::now_utc();
        table
            .routes
            .sites()
            .iter()
            .filter_map(|site| {
                let name = site.name();
                let served = certs.get(&name)?;
                let wanted = match site.tls {
                    TlsMode::Acme => "acme",
                    TlsMode::Internal => "internal",
                    TlsMode::Files { .. } => "files",
                };
                Some(CertificateStatus {
                    failing: failures.get(&name).cloned(),
                    site: name,
                    wanted,
                    served: served.source,
                    not_after: served.not_after,
                    renewal_due: renewal_due(served.not_before, served.not_after, now),
                })
            })
            .collect()
    }

    /// Whether requests are still in flight to any of `addrs`, which have
    /// left the route table: a deploy waits for this to turn false before
    /// it stops old replicas.
    /// From now on, connections to replicas go through `dialer`; set once
    /// at start, before the first route table.
    pub fn set_dialer(&self, dialer: relay::Dialer) {
        self.shared.dialer.store(Arc::new(dialer));
    }

    /// How this edge opens connections to replicas (for the platform's own
    /// health probes).
    pub fn dialer(&self) -> relay::Dialer {
        relay::Dialer::clone(&self.shared.dialer.load())
    }

    pub fn busy(&self, addrs: &[SocketAddr]) -> bool {
        self.registry.busy(addrs)
    }

    /// New limits for the shields and new connections.
    pub fn update_limits(&self, limits: Limits) {
        self.shared.shields.update(&limits);
        self.shared.limits.store(Arc::new(limits));
    }

    /// Bans an address or network: its requests get 403 before any
    /// upstream work.
    pub fn ban(&self, net: IpNet, duration: Duration, reason: &str) {
        self.shared.shields.ban(net, duration, reason);
    }

    /// Bans an address or network on one host only (`Some`), or on every
    /// host (`None`).
    pub fn ban_on(&self, net: IpNet, host: Option<&str>, duration: Duration, reason: &str) {
        self.shared.shields.ban_on(net, host, duration, reason);
    }

    pub fn unban(&self, net: IpNet) -> bool {
        self.shared.shields.unban(net)
    }

    /// Lifts a ban of one scope (one host, or every host with `None`).
    pub fn unban_on(&self, net: IpNet, host: Option<&str>) -> bool {
        self.shared.shields.unban_on(net, host)
    }

    pub fn bans(&self) -> Vec<Ban> {
        self.shared.shields.bans()
    }

    /// Whether `ip` is banned now.
    pub fn is_banned(&self, ip: std::net::IpAddr) -> bool {
        self.shared.shields.is_banned(ip)
    }

    /// Access events as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AccessEvent>> {
        self.shared.access.subscribe()
    }

    fn render_metrics(&self) -> String {
        let m = &self.shared.metrics;
        m.open_connections
            .set(self.shared.shields.open_connections() as i64);
        let table = self.shared.table.load_full();
        for (site, pool) in table.routes.sites().iter().zip(&table.pools) {
            for u in &pool.upstreams {
                m.upstream_healthy
                    .get_or_create(&UpstreamLabels {
                        site: site.name(),
                        upstream: u.addr.to_string(),
                    })
                    .set(i64::from(u.is_healthy()));
            }
        }
        let now = OffsetDateTime::now_utc();
        for (host, served) in self.certs.snapshot().iter() {
            m.cert_expiry
                .get_or_create(&CertLabels { host: host.clone() })
                .set((served.not_after - now).as_seconds_f64());
        }
        let mut text = m.encode();
        if let Some(more) = self.more_metrics.get() {
            // The edge's registry ends with `# EOF`; the rest goes before it.
            let end = text.rfind("# EOF").unwrap_or(text.len());
            text.insert_str(end, &more());
        }
        text
    }

    /// Serves `source`'s metrics after the edge's own on the admin
    /// listener; the first source set stays.
    pub fn add_metrics(&self, source: impl Fn() -> String + Send + Sync + 'static) {
        let _ = self.more_metrics.set(Box::new(source));
    }

    /// Stops accepting, lets requests in flight finish (up to the drain
    /// deadline), writes their access events, and stops every background
    /// task.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        // The drained requests' events reach the file before the edge goes.
        self.shared.access.flush(ACCESS_FLUSH).await;
        self.registry.stop();
        for (_, order) in self
            .acme_orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            order.abort();
        }
    }
}

/// Serves HTTPS from `n` threads, each running a single-threaded runtime
/// that accepts on its own handle of the listening socket. A connection
/// then lives on one thread from handshake to close, as in an event-loop
/// proxy: no work-stealing queues, no cross-thread wake-ups on the request
/// path. What the threads share (route table, shields, pools, metrics) is
/// already safe to share. Each returned task ends when its thread has
/// drained.
fn https_workers(
    n: usize,
    listener: TcpListener,
    tls: &Arc<rustls::ServerConfig>,
    shared: &Arc<Shared>,
    stop: &watch::Receiver<bool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let listener = listener.into_std()?;
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let socket = listener.try_clone()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tls, shared, stop) = (tls.clone(), shared.clone(), stop.clone());
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("edge-https-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(socket) {
                        Ok(listener) => server::serve_https(listener, tls, shared, stop).await,
                        Err(error) => tracing::error!(%error, "HTTPS worker cannot listen"),
                    }
                });
                drop(done);
            })?;
        tasks.push(tokio::spawn(async move {
            let _ = finished.await;
        }));
    }
    Ok(tasks)
}

/// Housekeeping every few seconds: forget quiet clients, renew
/// certificates that are due.
async fn maintain(edge: std::sync::Weak<Edge>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(MAINTAIN_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(edge) = edge.upgrade() else { return };
        edge.shared.shields.forget_quiet_clients();
        let now = OffsetDateTime::now_utc();
        let table = edge.shared.table.load_full();
        for site in table.routes.sites() {
            let hosts = host_names(site);
            let Some(current) = hosts
                .first()
                .and_then(|h| edge.certs.snapshot().get(h).cloned())
            else {
                continue;
            };
            if !renewal_due(current.not_before, current.not_after, now) {
                continue;
            }
            match &site.tls {
                TlsMode::Internal => match edge.issue_internal(&hosts) {
                    Ok(fresh) => hosts.iter().for_each(|h| edge.certs.set(h, fresh.clone())),
                    Err(error) => {
                        tracing::error!(site = %site.name(), %error, "cannot renew the certificate")
                    }
                },
                TlsMode::Acme => edge.order(hosts),
                TlsMode::Files { .. } => {
                    tracing::warn!(site = %site.name(), not_after = %current.not_after, "the certificate file is close to expiry");
                }
            }
        }
    }
}

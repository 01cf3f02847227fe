//! Upstreams and their health: round robin over healthy replicas, active
//! HTTP health checks (N failures eject, M successes restore) and passive
//! ejection when a connection fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::Request;
use tokio::task::JoinHandle;

use crate::routes::{HostPattern, SiteSpec};

/// A keep-alive HTTP/1.1 connection to a replica.
pub type Sender = hyper::client::conn::http1::SendRequest<crate::body::BoxBody>;

/// Most idle connections kept per replica.
const MAX_IDLE: usize = 512;
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest a health check may take, however far apart checks are.
const HEALTH_TIMEOUT_CAP: Duration = Duration::from_secs(5);

/// Why a request did not get a response from a replica.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: the request never left the edge.
    Connect(std::io::Error),
    /// No byte moved on the replica's connection for the upstream timeout.
    Timeout,
    /// The request failed on a connection; `reused` when the connection came
    /// from the idle pool (and may have been closed by the replica).
    Request { error: hyper::Error, reused: bool },
}

/// One replica, with its health and its idle connections.
pub struct Upstream {
    pub addr: SocketAddr,
    dialer: crate::relay::Dialer,
    healthy: AtomicBool,
    fails: AtomicU32,
    passes: AtomicU32,
    idle: Mutex<Vec<Sender>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    fn new(addr: SocketAddr, dialer: crate::relay::Dialer) -> Self {
        Self {
            addr,
            dialer,
            // Optimistic at first, so a fresh edge serves at once; the first
            // check corrects it.
            healthy: AtomicBool::new(true),
            fails: AtomicU32::new(0),
            passes: AtomicU32::new(0),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Returns a connection whose exchange has finished to the idle pool.
    pub fn checkin(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// An idle connection that is ready, or a new one.
    ///
    /// A connection on which no byte moves for `idle` fails: a request
    /// waiting on a silent replica ends (504) and an idle pooled connection
    /// is closed. One timer per connection, not one per request.
    async fn connection(&self, idle: Duration) -> Result<(Sender, bool), std::io::Error> {
        loop {
            let candidate = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut sender) = candidate else { break };
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
        Ok((self.connect(idle).await?, false))
    }

    /// A new connection, outside the idle pool.
    async fn connect(&self, idle: Duration) -> Result<Sender, std::io::Error> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, self.dialer.connect(self.addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        let io = crate::idle::IdleIo::new(stream, idle);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(std::io::Error::other)?;
        // With upgrades, a 101 answer hands the connection to a tunnel
        // (WebSockets) instead of closing it.
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        Ok(sender)
    }

    /// One health check on a connection of its own: whether `request` got
    /// a 2xx or 3xx answer, body and all, within `timeout`.
    async fn check(&self, request: Request<crate::body::BoxBody>, timeout: Duration) -> bool {
        let exchange = async {
            let mut sender = self.connect(timeout).await.ok()?;
            let response = sender.send_request(request).await.ok()?;
            let status = response.status();
            http_body_util::BodyExt::collect(response.into_body())
                .await
                .ok()?;
            Some(status.is_success() || status.is_redirection())
        };
        matches!(
            tokio::time::timeout(timeout, exchange).await,
            Ok(Some(true))
        )
    }

    /// Sends a request; on success, the connection comes back with the
    /// response, to be checked in once its body is done.
    pub async fn send(
        &self,
        request: Request<crate::body::BoxBody>,
        idle: Duration,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, Sender), SendError> {
        let (mut sender, reused) = self.connection(idle).await.map_err(SendError::Connect)?;
        match sender.send_request(request).await {
            Ok(response) => Ok((response, sender)),
            Err(error) if timed_out(&error) => Err(SendError::Timeout),
            Err(error) => Err(SendError::Request { error, reused }),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records an active check.
    pub fn record(&self, ok: bool, fails_to_eject: u32, passes_to_restore: u32) {
        if ok {
            self.fails.store(0, Ordering::Relaxed);
            let passes = self.passes.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.is_healthy() && passes >= passes_to_restore {
                self.healthy.store(true, Ordering::Relaxed);
                tracing::info!(upstream = %self.addr, "upstream healthy again");
            }
        } else {
            self.passes.store(0, Ordering::Relaxed);
            let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if self.is_healthy() && fails >= fails_to_eject {
                self.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(upstream = %self.addr, "upstream failed its health checks; ejected");
            }
        }
    }

    /// A connection to it failed: out at once; health checks bring it back.
    pub fn passive_failure(&self) {
        self.passes.store(0, Ordering::Relaxed);
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(upstream = %self.addr, "connection to upstream failed; ejected");
        }
    }
}

/// Whether a request failed because the replica's connection went idle
/// (not because the client's body stalled: that is the client's doing).
fn timed_out(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<crate::body::BodyError>() {
            return false;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = e.source();
    }
    false
}

/// The replicas of one site.
#[derive(Debug)]
pub struct Pool {
    pub upstreams: Vec<Arc<Upstream>>,
    next: AtomicUsize,
}

impl Pool {
    /// The next healthy replica in round-robin order, skipping `tried`.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<Arc<Upstream>> {
        let n = self.upstreams.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.upstreams[(start + i) % n])
            .find(|u| u.is_healthy() && !tried.contains(&u.addr))
            .cloned()
    }
}

/// An upstream is keyed by address, health path and the host it is checked as.
type Key = (SocketAddr, String, String);
/// An upstream and its health checker.
type Entry = (Arc<Upstream>, JoinHandle<()>);

/// Every upstream the edge knows, shared across route tables so health
/// survives a reload, with one checker task each.
#[derive(Debug, Default)]
pub struct Registry {
    entries: Mutex<HashMap<Key, Entry>>,
    /// Upstreams no table uses any more. A request in flight keeps its
    /// upstream alive, so one of these that can still be upgraded is still
    /// serving: that is how a deploy knows an old replica has drained.
    retired: Mutex<Vec<std::sync::Weak<Upstream>>>,
}

fn check_host(site: &SiteSpec, addr: SocketAddr) -> String {
    site.hosts
        .iter()
        .find_map(|h| match h {
            HostPattern::Exact(h) => Some(h.clone()),
            HostPattern::Wildcard(_) => None,
        })
        .unwrap_or_else(|| addr.to_string())
}

impl Registry {
    /// Pools for every site of a table, starting checkers for new upstreams
    /// and stopping those no site uses any more.
    pub fn pools(&self, sites: &[Arc<SiteSpec>], dialer: &crate::relay::Dialer) -> Vec<Arc<Pool>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut used = std::collections::HashSet::new();
        let pools = sites
            .iter()
            .map(|site| {
                let upstreams = site
                    .upstreams
                    .iter()
                    .map(|addr| {
                        let host = check_host(site, *addr);
                        let key = (*addr, site.health_path.clone(), host.clone());
                        used.insert(key.clone());
                        let (upstream, _) = entries.entry(key).or_insert_with(|| {
                            let upstream = Arc::new(Upstream::new(*addr, dialer.clone()));
                            let task =
                                tokio::spawn(check_loop(upstream.clone(), site.clone(), host));
                            (upstream, task)
                        });
                        upstream.clone()
                    })
                    .collect();
                Arc::new(Pool {
                    upstreams,
                    next: AtomicUsize::new(0),
                })
            })
            .collect();
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|key, (upstream, task)| {
            let keep = used.contains(key);
            if !keep {
                task.abort();
                retired.push(Arc::downgrade(upstream));
            }
            keep
        });
        pools
    }

    /// Whether a request is still in flight to any of `addrs` after the
    /// upstream left the route table.
    pub fn busy(&self, addrs: &[SocketAddr]) -> bool {
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        retired.retain(|weak| weak.strong_count() > 0);
        retired
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .any(|u| addrs.contains(&u.addr))
    }

    /// Stops every checker.
    pub fn stop(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (_, (_, task)) in entries.drain() {
            task.abort();
        }
    }
}

/// Checks a replica every interval, on a connection of each check's own
/// (through the same dialer as requests).
async fn check_loop(upstream: Arc<Upstream>, site: Arc<SiteSpec>, host: String) {
    let timeout = site.health_interval.min(HEALTH_TIMEOUT_CAP);
    let mut tick = tokio::time::interval(site.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let request = Request::get(site.health_path.as_str())
            .header(hyper::header::HOST, host.as_str())
            .header(hyper::header::USER_AGENT, "rampart-edge-health")
            .body(crate::body::empty_body());
        let ok = match request {
            Ok(request) => upstream.check(request, timeout).await,
            Err(_) => false,
        };
        upstream.record(ok, site.health_fails, site.health_passes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_n_failures_to_eject_and_m_passes_to_restore() {
        let u = Upstream::new("127.0.0.1:1".parse().unwrap(), Default::default());
        u.record(false, 3, 2);
        u.record(false, 3, 2);
        assert!(u.is_healthy());
        u.record(false, 3, 2);
        assert!(!u.is_healthy());
        u.record(true, 3, 2);
        assert!(!u.is_healthy());
        u.record(true, 3, 2);
        assert!(u.is_healthy());
        u.passive_failure();
        assert!(!u.is_healthy());
    }

    #[test]
    fn round_robin_skips_unhealthy_and_tried() {
        let a = Arc::new(Upstream::new(
            "127.0.0.1:1".parse().unwrap(),
            Default::default(),
        ));
        let b = Arc::new(Upstream::new(
            "127.0.0.1:2".parse().unwrap(),
            Default::default(),
        ));
        let pool = Pool {
            upstreams: vec![a.clone(), b.clone()],
            next: AtomicUsize::new(0),
        };
        let first = pool.pick(&[]).unwrap().addr;
        let second = pool.pick(&[]).unwrap().addr;
        assert_ne!(first, second);
        b.passive_failure();
        for _ in 0..4 {
            assert_eq!(pool.pick(&[]).unwrap().addr, a.addr);
        }
        assert!(pool.pick(&[a.addr]).is_none());
    }
}

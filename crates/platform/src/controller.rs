//! The runtime side of the platform: what runs where, and the edge's view of
//! it.
//!
//! Desired state lives in the store (each app's settings and live release);
//! the engine holds what runs, found by label; the edge routes to the
//! replicas in [`Engine::serving`]. Deploys, scaling and reconciliation all
//! change the serving set through [`Platform::publish`], which rebuilds the
//! edge's whole route table and swaps it atomically.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::deploy::AppSettings;
use rampart_core::{AppId, AppName};
use rampart_edge::Edge;
use rampart_edge::routes::{HostPattern, RouteTable, SiteSpec, TlsMode};
use rampart_runtime::{
    ContainerRuntime, LABEL_APP, LABEL_INSTALLATION, LABEL_RELEASE, LABEL_TASK, NetworkSpec,
    Replica,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::{Error, Platform};

/// How often an unhealthy new replica is checked again.
pub(crate) const HEALTH_POLL: Duration = Duration::from_millis(200);
/// How long one health request may take.
const HEALTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the edge's active checks probe a serving replica.
const EDGE_HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// How often a drain looks whether old replicas still have requests.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// A replica the edge sends traffic to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Served {
    pub container: String,
    pub addr: SocketAddr,
    pub release: u64,
}

/// The container engine and the edge, attached to a running platform.
#[derive(Debug)]
pub struct Engine {
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) edge: Arc<Edge>,
    /// Label value that marks this installation's containers and networks.
    pub(crate) installation: String,
    /// Whether custom domains get ACME certificates.
    pub(crate) acme: bool,
    pub(crate) serving: std::sync::Mutex<HashMap<AppId, Vec<Served>>>,
    /// One lock per app: deploys, scaling and repairs of an app take turns.
    locks: std::sync::Mutex<HashMap<AppId, Arc<Mutex<()>>>>,
    /// Restart counts last seen, to notice crashes.
    pub(crate) restarts: std::sync::Mutex<HashMap<String, u64>>,
    /// One-off commands and scheduled runs going on, per app.
    pub(crate) task_slots: TaskSlots,
    /// The sites last given to the edge, for ingress nodes.
    pub(crate) published: std::sync::Mutex<Arc<Vec<SiteSpec>>>,
    /// Edges on other nodes of a Swarm, when the platform serves them.
    pub(crate) ingress: Option<crate::ingress::SwarmIngress>,
}

/// One-off commands and scheduled runs one app may have going at once, so
/// that a developer's token cannot fill the machine with long runs.
pub(crate) const MAX_TASKS_PER_APP: u32 = 4;

/// Counts of the one-off containers running per app.
#[derive(Debug, Default)]
pub(crate) struct TaskSlots(Arc<std::sync::Mutex<HashMap<AppId, u32>>>);

/// A place for one more task of an app; freed when dropped.
#[derive(Debug)]
pub(crate) struct TaskSlot {
    slots: Arc<std::sync::Mutex<HashMap<AppId, u32>>>,
    app: AppId,
}

impl TaskSlots {
    /// A slot for one more task of `app`, unless it has
    /// [`MAX_TASKS_PER_APP`] going.
    pub(crate) fn take(&self, app: &AppId) -> Option<TaskSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(app.clone()).or_default();
        if *count >= MAX_TASKS_PER_APP {
            return None;
        }
        *count += 1;
        Some(TaskSlot {
            slots: Arc::clone(&self.0),
            app: app.clone(),
        })
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.app) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.app);
            }
        }
    }
}

impl Engine {
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        edge: Arc<Edge>,
        installation: String,
        acme: bool,
    ) -> Self {
        Self {
            runtime,
            edge,
            installation,
            acme,
            serving: Default::default(),
            locks: Default::default(),
            restarts: Default::default(),
            task_slots: Default::default(),
            published: Default::default(),
            ingress: None,
        }
    }

    /// Serves edges on other nodes of the Swarm (`rampart ingress`).
    pub fn with_ingress(mut self, ingress: crate::ingress::SwarmIngress) -> Self {
        self.ingress = Some(ingress);
        self
    }

    pub(crate) fn lock_for(&self, app: &AppId) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(app.clone())
            .or_default()
            .clone()
    }

    pub(crate) fn serving_of(&self, app: &AppId) -> Vec<Served> {
        self.serving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(app)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn set_serving(&self, app: &AppId, served: Vec<Served>) {
        let mut map = self.serving.lock().unwrap_or_else(|e| e.into_inner());
        if served.is_empty() {
            map.remove(app);
        } else {
            map.insert(app.clone(), served);
        }
    }

    /// The app's network name; egress gets a network of its own, so that
    /// switching it never changes a network under running replicas.
    pub(crate) fn network(&self, app: &AppName, egress: bool) -> NetworkSpec {
        let suffix = if egress { "-egress" } else { "" };
        NetworkSpec {
            name: format!("rampart-{}-{}{suffix}", self.installation, app),
            egress,
            labels: BTreeMap::from([
                (LABEL_INSTALLATION.to_owned(), self.installation.clone()),
                (LABEL_APP.to_owned(), app.to_string()),
            ]),
        }
    }

    /// This installation's replicas, of one app or of all.
    pub(crate) async fn replicas(&self, app: Option<&AppName>) -> Result<Vec<Replica>, Error> {
        let name = app.map(AppName::to_string);
        let mut labels = vec![(LABEL_INSTALLATION, self.installation.as_str())];
        if let Some(name) = &name {
            labels.push((LABEL_APP, name.as_str()));
        }
        let mut all = self.runtime.replicas(&labels).await?;
        // One-off containers are never replicas.
        all.retain(|r| r.label(LABEL_TASK).is_none());
        Ok(all)
    }

    /// Waits until the edge has no request in flight to `addrs`, at most
    /// `deadline`.
    pub(crate) async fn drain(&self, addrs: &[SocketAddr], deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        while self.edge.busy(addrs) && tokio::time::Instant::now() < until {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}

/// The release number a replica runs, from its label.
pub(crate) fn release_of(replica: &Replica) -> Option<u64> {
    replica.label(LABEL_RELEASE).and_then(|r| r.parse().ok())
}

/// One HTTP/1.1 GET of `path` on `addr`; true for a 2xx answer.
/// The `Host` a health probe names: a custom domain when the app has one
/// (an app that allows only its own domains refuses any other name), else
/// its `NAME.localhost`.
pub(crate) fn health_host(app: &rampart_store::AppRow) -> String {
    app.domains
        .first()
        .map_or_else(|| app.name.default_domain().to_string(), |d| d.to_string())
}

pub(crate) async fn probe(
    dialer: &rampart_edge::relay::Dialer,
    addr: SocketAddr,
    path: &str,
    host: &str,
) -> bool {
    let attempt = async {
        let mut stream = dialer.connect(addr).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: rampart-health\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(HEALTH_REQUEST_TIMEOUT, attempt).await {
        // 2xx or 3xx, as the edge's own checks count: `/admin` of a
        // framework answers with a redirect to its login.
        Ok(Ok(head)) => head.starts_with(b"HTTP/1.") && matches!(head[9], b'2' | b'3'),
        _ => false,
    }
}

impl Platform {
    pub(crate) fn engine(&self) -> Result<&Engine, Error> {
        self.engine.get().map(|e| e.as_ref()).ok_or_else(|| {
            Error::Unavailable("this platform runs without a container engine".into())
        })
    }

    /// Attaches the container engine and the edge; done once, at start.
    pub fn attach(&self, engine: Engine) {
        let _ = self.engine.set(Arc::new(engine));
    }

    /// The label value that marks this installation's containers: derived
    /// from the master key, so it is stable and needs no storage.
    pub fn installation_id(&self) -> String {
        self.key.derive_label("rampart installation id")
    }

    /// The key the image registry's pull credentials derive from: from
    /// the master key, so it is stable and needs no storage.
    pub fn registry_key(&self) -> [u8; 32] {
        self.key.derive_secret("rampart registry pull credentials")
    }

    /// Rebuilds the edge's route table from the store and the serving set.
    pub(crate) async fn publish(&self) -> Result<(), Error> {
        let engine = self.engine()?;
        let apps = self.store.apps().await?;
        let serving = engine
            .serving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut claimed = std::collections::HashSet::new();
        let mut sites = Vec::new();
        for app in &apps {
            let served = serving.get(&app.id);
            let default = app.name.default_domain();
            let (local, public): (Vec<&str>, Vec<&str>) = std::iter::once(default.as_str())
                .chain(app.domains.iter().map(|d| d.as_str()))
                // A host already served by an earlier app (a default name
                // that is another app's custom domain) stays with it.
                .filter(|d| claimed.insert(d.to_string()))
                .partition(|d| *d == "localhost" || d.ends_with(".localhost"));
            for (hosts, acme) in [(local, false), (public, engine.acme)] {
                if !hosts.is_empty() {
                    sites.push(site_for(hosts.into_iter(), &app.settings, acme, served)?);
                }
            }
        }
        let table =
            RouteTable::new(sites.clone()).map_err(|(_, message)| Error::Conflict(message))?;
        engine
            .edge
            .apply(table)
            .map_err(|e| Error::Unavailable(format!("the edge refused the routes: {e}")))?;
        *engine.published.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(sites);
        self.publish_security_txt().await;
        Ok(())
    }
}

fn site_for<'a>(
    domains: impl Iterator<Item = &'a str>,
    settings: &AppSettings,
    acme: bool,
    served: Option<&Vec<Served>>,
) -> Result<SiteSpec, Error> {
    let hosts = domains
        .map(|d| HostPattern::parse(d).map_err(Error::Invalid))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SiteSpec {
        hosts,
        tls: if acme {
            TlsMode::Acme
        } else {
            TlsMode::Internal
        },
        upstreams: served
            .map(|s| s.iter().map(|r| r.addr).collect())
            .unwrap_or_default(),
        health_path: settings.health_path.clone(),
        health_interval: EDGE_HEALTH_INTERVAL,
        health_fails: 2,
        health_passes: 1,
        allow: Vec::new(),
        deny: Vec::new(),
        hsts_include_subdomains: false,
        hsts_preload: false,
    })
}

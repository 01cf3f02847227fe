//! Where replicas run: the [`ContainerRuntime`] trait and its two backends.
//!
//! The platform speaks to containers only through this trait, in its own
//! terms: an app's network, a replica built from a [`ReplicaSpec`], the
//! replicas carrying a set of labels. [`docker::Docker`] implements it over
//! one engine's API (bollard); [`swarm::Swarm`] over a Docker Swarm, where a
//! replica is a one-task service the cluster places, restarts and moves
//! between nodes, and builds, images and one-off tasks stay on the local
//! engine.
//!
//! Hardening is not optional here: [`ReplicaSpec`] has no field that could
//! publish a port, mount a host path, add a capability or allow privilege
//! escalation, so no caller can ask for one.

pub mod context;
pub mod docker;
pub mod swarm;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

/// Every object Rampart creates carries this label, set to the
/// installation's id, so that several installations can share an engine
/// and reconciliation only ever touches its own.
pub const LABEL_INSTALLATION: &str = "rampart.installation";
/// The app a replica or network belongs to (its name).
pub const LABEL_APP: &str = "rampart.app";
/// The release number a replica runs.
pub const LABEL_RELEASE: &str = "rampart.release";
/// The process a replica runs (`web`, `worker` …); a replica without it
/// runs `web`.
pub const LABEL_PROCESS: &str = "rampart.process";
/// Set on a one-off container (a release phase, a command run by hand, a
/// scheduled job) to its kind; such a container is never a replica.
pub const LABEL_TASK: &str = "rampart.task";

/// Why the runtime could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine did not answer at all.
    #[error(
        "the Docker engine is unreachable ({0}); is it running, and may this user use its socket?"
    )]
    Unreachable(String),
    /// The image build failed; the message is the builder's.
    #[error("the image build failed: {0}")]
    Build(String),
    #[error(
        "there is no image {0:?} in the engine (images are not pulled; build or load it first)"
    )]
    NoImage(String),
    #[error("no such container {0}")]
    NoContainer(String),
    /// The engine refused a request.
    #[error("the Docker engine refused: {0}")]
    Engine(String),
    /// Nodes exist only on a cluster.
    #[error(
        "this platform runs on one Docker engine (runtime.backend = \"docker\"); nodes are a Swarm's"
    )]
    NotClustered,
    /// A replica asked for what cannot follow it across machines.
    #[error("{0}")]
    NotPortable(String),
    /// The image registry the Swarm's nodes pull from could not publish
    /// or read an image.
    #[error("the image registry: {0}")]
    Registry(String),
}

/// Resource limits of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    /// CPUs in thousandths (1000 = one CPU).
    pub cpu_millis: u32,
    pub pids: u32,
}

/// An app's private network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    /// Whether replicas may open connections beyond the network.
    pub egress: bool,
    pub labels: BTreeMap<String, String>,
}

/// One replica to start. The runtime always adds the hardening described in
/// the crate documentation; nothing here can weaken it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    pub name: String,
    /// Image id (`sha256:…`) or a local reference.
    pub image: String,
    pub network: String,
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub limits: Limits,
    /// Run as the image's root user; otherwise a root image runs as
    /// nobody (65534).
    pub allow_root: bool,
    /// A named volume mounted read-write at `/data/media` (the app's media
    /// storage).
    pub media_volume: Option<String>,
    /// A named volume mounted read-only at `/etc/rampart` (the internal
    /// CA certificate, for TLS to the app's database).
    pub ca_volume: Option<String>,
    /// Arguments in place of the image's `CMD` (after its entrypoint, when
    /// it has one); `None` runs the image's own.
    pub command: Option<Vec<String>>,
    /// Give it a terminal and keep its input open (one-off commands run
    /// from a terminal); see [`ContainerRuntime::start_attached`].
    pub terminal: bool,
    /// Placement constraints of its app (Swarm only; a single engine has
    /// one place).
    pub placement: Vec<String>,
}

/// The terminal of a container started by
/// [`ContainerRuntime::start_attached`].
pub struct Attached {
    /// What the container prints, as it prints it.
    pub output: BoxStream<'static, Result<Bytes, RuntimeError>>,
    /// What it reads; shutting this down ends its input.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attached")
    }
}

/// Where replicas find their media volume and the platform's CA.
pub const MEDIA_MOUNT: &str = "/data/media";
pub const CA_MOUNT: &str = "/etc/rampart";

/// A named volume whose data lives in a folder the platform manages (the
/// local driver, bound to `folder`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub name: String,
    pub folder: std::path::PathBuf,
    pub labels: BTreeMap<String, String>,
}

/// An app network's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAddresses {
    /// CIDR, such as `172.18.0.0/16`.
    pub subnet: String,
    /// The host's address on the network.
    pub gateway: std::net::IpAddr,
}

/// The user and group a replica of an image with configured user
/// `image_user` runs as, when numeric: nobody for a root image unless root
/// is allowed. `None` when the image names its user (a name only the image
/// can resolve).
pub fn run_as(image_user: &str, allow_root: bool) -> Option<(u32, u32)> {
    let (user, group) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    if user.is_empty() || user == "0" || user == "root" {
        return Some(if allow_root { (0, 0) } else { (65534, 65534) });
    }
    let uid: u32 = user.parse().ok()?;
    let gid = match group {
        Some(g) => g.parse().ok()?,
        None => uid,
    };
    Some((uid, gid))
}

/// What the engine says about a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `running`, `restarting`, `exited`, `created` …
    pub state: String,
    pub exit_code: Option<i64>,
    /// Its address on its app's network.
    pub ip: Option<IpAddr>,
    /// RFC 3339, as the engine reports it.
    pub started_at: Option<String>,
    /// Times the engine restarted it after it exited.
    pub restarts: u64,
    /// The cluster node it runs on (Swarm); `None` on a single engine.
    pub node: Option<String>,
}

/// One machine of a cluster, as the cluster's managers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    pub addr: String,
    pub labels: BTreeMap<String, String>,
    pub engine_version: String,
}

impl Node {
    /// Whether an admin marked it suspect: no new replica lands on it.
    pub fn is_suspect(&self) -> bool {
        self.labels.get(LABEL_SUSPECT).map(String::as_str) == Some("true")
    }
}

/// The node label that keeps replicas off a node an admin suspects.
pub const LABEL_SUSPECT: &str = "rampart.suspect";

/// What may be changed on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeChange {
    /// Sets (`Some`) or removes (`None`) a label.
    Label(String, Option<String>),
    /// `active`, `pause` or `drain`.
    Availability(String),
}

impl Replica {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The process it runs: `web` unless its label names another.
    pub fn process(&self) -> &str {
        self.label(LABEL_PROCESS)
            .unwrap_or(rampart_core::deploy::WEB)
    }
}

/// A built or found image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    /// The user the image's config runs as (empty for root).
    pub user: String,
}

/// One line of a replica's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub replica: String,
    pub stream: &'static str,
    pub text: String,
    /// When the engine received it (RFC 3339).
    pub time: Option<String>,
}

pub use rampart_core::deploy::LogQuery;

/// The engine that runs replicas.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + std::fmt::Debug + 'static {
    /// Checks that the engine answers.
    async fn ping(&self) -> Result<(), RuntimeError>;

    /// Builds an image from a tar build context holding a `Dockerfile`,
    /// tagging it `tag`; each line the builder prints goes to `output`.
    /// Builds run without network access; with `pull`, the engine first
    /// pulls the images the Dockerfile names from their registry.
    async fn build(
        &self,
        tag: &str,
        context: Bytes,
        pull: bool,
        output: mpsc::UnboundedSender<String>,
    ) -> Result<Image, RuntimeError>;

    /// An image the engine already has; [`RuntimeError::NoImage`] if not.
    async fn image(&self, reference: &str) -> Result<Image, RuntimeError>;

    /// Creates the network unless it exists.
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<(), RuntimeError>;

    /// The subnet and gateway of a network, if it exists.
    async fn network_addresses(&self, name: &str)
    -> Result<Option<NetworkAddresses>, RuntimeError>;

    /// Creates a volume bound to a folder, unless it exists.
    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<(), RuntimeError>;

    /// Removes a volume if it exists (its folder stays).
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError>;

    /// Removes a network; a missing one is not an error.
    async fn remove_network(&self, name: &str) -> Result<(), RuntimeError>;

    /// Forgets the images of a deleted app: the tags its builds got
    /// (`rampart/APP:…`) and the copies pulled from the image registry
    /// (`REGISTRY/rampart/APP@…`) leave the engine, and on a Swarm the
    /// app's repository leaves the registry. An image that a container
    /// still uses, or that another name still holds, stays in the engine.
    /// Returns how many names were removed.
    async fn remove_app_images(&self, app: &str) -> Result<usize, RuntimeError>;

    /// Networks carrying every label in `labels`, by name.
    async fn networks(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, RuntimeError>;

    /// Creates and starts a hardened replica. It is not restarted if it
    /// exits until [`ContainerRuntime::keep_running`] says so.
    async fn start(&self, spec: &ReplicaSpec) -> Result<Replica, RuntimeError>;

    /// From now on the engine restarts the replica when it exits (with
    /// backoff); called once it has passed its first health check.
    async fn keep_running(&self, id: &str) -> Result<(), RuntimeError>;

    /// Stops a replica (SIGTERM, then SIGKILL after `grace`) and removes it;
    /// a missing one is not an error.
    async fn remove(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Replicas carrying every label in `labels`, running or not.
    async fn replicas(&self, labels: &[(&str, &str)]) -> Result<Vec<Replica>, RuntimeError>;

    /// One replica, or `None` if it is gone.
    async fn replica(&self, id: &str) -> Result<Option<Replica>, RuntimeError>;

    /// A replica's output.
    fn logs(&self, id: &str, query: LogQuery) -> BoxStream<'static, Result<LogLine, RuntimeError>>;

    /// Waits until a container has exited and returns its exit status.
    async fn wait(&self, id: &str) -> Result<i64, RuntimeError>;

    /// Creates a container of a `terminal` spec, attaches to its terminal
    /// and only then starts it, so nothing it prints is missed. It is
    /// hardened like any replica.
    async fn start_attached(
        &self,
        spec: &ReplicaSpec,
    ) -> Result<(Replica, Attached), RuntimeError> {
        let _ = spec;
        Err(RuntimeError::Engine(
            "this engine cannot run commands on a terminal".into(),
        ))
    }

    /// Streams the file tree of `image` as a tar archive into `into`,
    /// without running anything: a container is created from it (never
    /// started, no network), exported and removed. Stops early, without
    /// error, when the receiver is dropped.
    async fn export_image(
        &self,
        image: &str,
        labels: BTreeMap<String, String>,
        into: mpsc::Sender<Bytes>,
    ) -> Result<(), RuntimeError> {
        let _ = (image, labels, into);
        Err(RuntimeError::Engine(
            "this engine cannot export an image's files".into(),
        ))
    }

    /// Tells a container's terminal its new size.
    async fn resize(&self, id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        let _ = (id, cols, rows);
        Ok(())
    }

    /// Stops what the runtime itself runs beside replicas (the Swarm's
    /// relay), as the platform stops; replicas keep running.
    async fn close(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// `docker` or `swarm`.
    fn backend(&self) -> &'static str {
        "docker"
    }

    /// The machines replicas may run on.
    async fn nodes(&self) -> Result<Vec<Node>, RuntimeError> {
        Err(RuntimeError::NotClustered)
    }

    /// Changes a node's labels or availability.
    async fn update_node(&self, id: &str, change: &NodeChange) -> Result<(), RuntimeError> {
        let _ = (id, change);
        Err(RuntimeError::NotClustered)
    }
}

impl Limits {
    /// Docker's NanoCpus.
    pub fn nano_cpus(&self) -> i64 {
        i64::from(self.cpu_millis) * 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_of_root_images_run_as_nobody_unless_root_is_allowed() {
        for user in ["", "0", "root", "0:0", "root:root"] {
            assert_eq!(run_as(user, false), Some((65534, 65534)), "{user:?}");
            assert_eq!(run_as(user, true), Some((0, 0)), "{user:?}");
        }
        assert_eq!(run_as("1000", false), Some((1000, 1000)));
        assert_eq!(run_as("1000:50", false), Some((1000, 50)));
        assert_eq!(run_as("app", false), None);
        assert_eq!(run_as("1000:staff", false), None);
    }
}

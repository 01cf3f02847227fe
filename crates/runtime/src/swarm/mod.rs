//! The Docker Swarm backend.
//!
//! A replica is a service of one task. The platform's rollout already
//! starts a new replica, waits for its health check, puts it in the edge and
//! drains the old one before it stops it; a service per replica keeps that
//! one rollout for both backends, while the cluster places each task on a
//! node, restarts it when it exits (a new task, perhaps on another address,
//! which the reconciler puts in the edge) and moves it when its node is
//! drained or lost. Each service carries the update and rollback settings a
//! Swarm rolling update uses (start-first, rollback on failure), for an
//! operator who updates it by hand.
//!
//! Every replica gets the hardening of the Docker backend: all capabilities
//! dropped, no-new-privileges, a read-only root with a small `/tmp`, memory,
//! CPU and pid limits, a numeric non-root user, no published port (the
//! endpoint mode is DNS round robin, so not even a virtual IP), and a
//! network of its app's only: an overlay that is `internal` (unless the app
//! has egress), `attachable` (for one-off tasks on the manager) and
//! `encrypted` (IPsec between nodes). Media in a local folder cannot follow
//! a replica to another node, so a replica asking for one is refused: media
//! on Swarm live in S3. The internal CA certificate reaches replicas as a
//! Swarm config, which every node receives.
//!
//! Builds, volumes and one-off tasks (a release phase, `rampart run`,
//! scheduled jobs) stay on the local engine, a manager: a task is a plain
//! container attached to its app's overlay. Release images reach the other
//! nodes through the platform's [`registry`], when one is configured.

mod api;
mod ingress;
pub mod registry;
mod relay_container;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, Limit, Mount, MountTmpfsOptions, MountType,
    NetworkAttachmentConfig, NetworkCreateRequest, NodeSpecAvailabilityEnum, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile1, TaskSpecContainerSpecPrivileges,
    TaskSpecLogDriver, TaskSpecPlacement, TaskSpecPlacementPreferences, TaskSpecPlacementSpread,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListServicesOptionsBuilder, UpdateNodeOptionsBuilder,
};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::docker::{Docker, engine_error, is_not_found, label_filter};
use crate::{
    Attached, ContainerRuntime, Image, LABEL_APP, LABEL_INSTALLATION, LABEL_PROCESS, LABEL_TASK,
    LogLine, LogQuery, NetworkSpec, Node, NodeChange, Replica, ReplicaSpec, RuntimeError,
};

pub use ingress::{IngressRelay, local_node};
pub use registry::Registry;
pub use relay_container::relay_invocation;

/// How long a replica's processes get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a new replica may wait for a node, its image and its start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long removing a replica waits for its task to stop.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);
/// How long a new replica's placement waits for its task to get a node,
/// and how often it looks.
const PLACE_TIMEOUT: Duration = Duration::from_secs(5);
const PLACE_POLL: Duration = Duration::from_millis(20);
/// Size of the writable `/tmp` of a replica.
const TMP_BYTES: i64 = 64 * 1024 * 1024;
/// The label the engine puts on a task's container.
const LABEL_SWARM_SERVICE: &str = "com.docker.swarm.service.id";

/// How this installation uses the Swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmOptions {
    /// The installation's id (the value of [`LABEL_INSTALLATION`]).
    pub installation: String,
    /// Where the relay's socket lives (a folder of the data directory).
    pub relay_dir: PathBuf,
    /// Placement constraints every replica gets, in Swarm's syntax
    /// (`node.labels.pool == apps`).
    pub constraints: Vec<String>,
    /// The node label whose values are zones: an app's replicas go to the
    /// zone with the fewest of them.
    pub spread_label: String,
    /// Whether overlays carry IPsec between nodes.
    pub encrypt_overlays: bool,
}

impl SwarmOptions {
    /// The driver options of an overlay.
    fn overlay_options(&self) -> HashMap<String, String> {
        if self.encrypt_overlays {
            HashMap::from([("encrypted".to_owned(), String::new())])
        } else {
            HashMap::new()
        }
    }
}

/// A Docker Swarm, through the engine of one of its managers.
#[derive(Debug, Clone)]
pub struct Swarm {
    local: Docker,
    options: Arc<SwarmOptions>,
    relay: Arc<relay_container::Relay>,
    /// Where other nodes pull release images from; without one, services
    /// name images by id and only nodes holding them can run them.
    registry: Option<Arc<Registry>>,
    /// One placement at a time: a replica's zone is chosen from where its
    /// siblings' tasks are, so the next one waits until this one's task
    /// has a node.
    placing: Arc<tokio::sync::Mutex<()>>,
}

impl Swarm {
    /// The Swarm whose manager is the local engine `local`. Nothing is
    /// sent until the first call.
    pub fn new(local: Docker, options: SwarmOptions) -> Self {
        let relay = relay_container::Relay::new(&options);
        Self {
            local,
            options: Arc::new(options),
            relay: Arc::new(relay),
            registry: None,
            placing: Arc::default(),
        }
    }

    /// Publishes release images in `registry` and names them there, so
    /// that every node can pull them.
    pub fn with_registry(mut self, registry: Arc<Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The image reference a service names, and the credential its nodes
    /// pull it with: the image published in the app's repository (and
    /// pulled by this manager, which checks that the registry serves it),
    /// or the local image id when there is no registry.
    async fn distributed(
        &self,
        spec: &ReplicaSpec,
        image_id: &str,
    ) -> Result<(String, Option<DockerCredentials>), RuntimeError> {
        let Some(registry) = &self.registry else {
            return Ok((image_id.to_owned(), None));
        };
        let app = spec.labels.get(LABEL_APP).ok_or_else(|| {
            RuntimeError::Registry(format!("replica {} has no app label", spec.name))
        })?;
        let repository = registry::repository(app);
        let reference = registry.publish(&self.local, image_id, &repository).await?;
        let credential = registry.credential(&repository);
        let credentials = DockerCredentials {
            username: Some(credential.user),
            password: Some(credential.password),
            serveraddress: Some(registry.address().to_owned()),
            ..Default::default()
        };
        if self.local.image(&reference).await.is_err() {
            let options = CreateImageOptionsBuilder::new()
                .from_image(&reference)
                .build();
            let client = self.local.client().await?;
            let mut pull = client.create_image(Some(options), None, Some(credentials.clone()));
            while let Some(progress) = pull.next().await {
                progress.map_err(|e| {
                    RuntimeError::Registry(format!(
                        "this manager could not pull {reference} from the platform's registry: {}; every node's engine trusts the platform's CA for it as /etc/docker/certs.d/{}/ca.crt (docs/swarm.md)",
                        engine_error(e),
                        registry.address()
                    ))
                })?;
            }
        }
        Ok((reference, Some(credentials)))
    }

    /// The relay's socket: the edge and the health checks reach replicas
    /// through it (see `rampart_edge::relay`).
    pub fn relay_socket(&self) -> PathBuf {
        self.relay.socket()
    }

    /// The address pools the Swarm takes overlay subnets from: every
    /// replica address is in one of them.
    pub async fn address_pools(&self) -> Result<Vec<String>, RuntimeError> {
        let swarm = self
            .local
            .client()
            .await?
            .inspect_swarm()
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 503, ..
                } => RuntimeError::Engine(
                    "this engine is not a Swarm manager (docker swarm init, or run the platform on a manager)".into(),
                ),
                other => engine_error(other),
            })?;
        let pools = swarm.default_addr_pool.unwrap_or_default();
        Ok(if pools.is_empty() {
            // The engine's default when the Swarm was initialised without one.
            vec!["10.0.0.0/8".into()]
        } else {
            pools
        })
    }

    /// Starts (again) the relay, attached to every overlay of this
    /// installation; done once when the platform starts.
    pub async fn start_relay(&self) -> Result<(), RuntimeError> {
        let overlays = self.overlays().await?;
        self.relay.restart(&self.local, &overlays).await
    }

    async fn overlays(&self) -> Result<Vec<String>, RuntimeError> {
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::new()
            .filters(&label_filter(&[(
                LABEL_INSTALLATION,
                self.options.installation.as_str(),
            )]))
            .build();
        let list = self
            .local
            .client()
            .await?
            .list_networks(Some(options))
            .await
            .map_err(engine_error)?;
        Ok(list
            .into_iter()
            .filter(|n| n.driver.as_deref() == Some("overlay"))
            .filter_map(|n| n.name)
            .collect())
    }

    async fn tasks(&self) -> Result<Vec<api::Task>, RuntimeError> {
        api::get("/tasks").await
    }

    async fn service_replicas(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<Replica>, RuntimeError> {
        let options = ListServicesOptionsBuilder::new()
            .filters(&label_filter(labels))
            .build();
        let services = self
            .local
            .client()
            .await?
            .list_services(Some(options))
            .await
            .map_err(engine_error)?;
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = self.tasks().await?;
        let mut by_service: HashMap<&str, Vec<&api::Task>> = HashMap::new();
        for task in &tasks {
            by_service
                .entry(task.service_id.as_str())
                .or_default()
                .push(task);
        }
        Ok(services
            .iter()
            .filter_map(|service| {
                let id = service.id.as_deref()?;
                let spec = service.spec.as_ref()?;
                Some(api::replica_of(
                    id,
                    spec.name.as_deref().unwrap_or(id),
                    &spec.labels.clone().unwrap_or_default(),
                    by_service.get(id).map(Vec::as_slice).unwrap_or(&[]),
                ))
            })
            .collect())
    }

    /// The service `id` as a replica, or `None` when no service has it.
    async fn service_replica(&self, id: &str) -> Result<Option<Replica>, RuntimeError> {
        let service = match self
            .local
            .client()
            .await?
            .inspect_service(id, None::<bollard::query_parameters::InspectServiceOptions>)
            .await
        {
            Ok(service) => service,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(engine_error(e)),
        };
        let service_id = service.id.clone().unwrap_or_else(|| id.to_owned());
        let tasks = self.service_tasks(&service_id).await?;
        let refs: Vec<&api::Task> = tasks.iter().collect();
        let spec = service.spec.unwrap_or_default();
        Ok(Some(api::replica_of(
            &service_id,
            spec.name.as_deref().unwrap_or(id),
            &spec.labels.unwrap_or_default(),
            &refs,
        )))
    }

    async fn service_tasks(&self, service: &str) -> Result<Vec<api::Task>, RuntimeError> {
        let filter = serde_json::json!({ "service": [service] }).to_string();
        api::get(&format!("/tasks?filters={}", percent(&filter))).await
    }

    /// Whether `id` names one of the Swarm's services rather than a local
    /// container: service ids are 25 characters, container ids 64.
    fn is_service_id(id: &str) -> bool {
        id.len() == 25 && id.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    /// The placement of an app's next replica: the operator's
    /// constraints, never a suspect node, and the zone with the fewest of
    /// the app's replicas when nodes carry the spread label.
    async fn placement(&self, spec: &ReplicaSpec) -> Result<TaskSpecPlacement, RuntimeError> {
        let mut constraints = vec![format!("node.labels.{} != true", crate::LABEL_SUSPECT)];
        constraints.extend(self.options.constraints.iter().cloned());
        constraints.extend(spec.placement.iter().cloned());
        let nodes = self.nodes().await?;
        if let Some(app) = spec.labels.get(LABEL_APP) {
            let process = spec
                .labels
                .get(LABEL_PROCESS)
                .map_or(rampart_core::deploy::WEB, String::as_str);
            let siblings = self
                .service_replicas(&[
                    (LABEL_INSTALLATION, self.options.installation.as_str()),
                    (LABEL_APP, app.as_str()),
                ])
                .await?;
            let on: Vec<String> = siblings
                .iter()
                .filter(|r| r.process() == process)
                .filter_map(|r| r.node.clone())
                .collect();
            if let Some(zone) = api::zone_for(&nodes, &self.options.spread_label, &on) {
                constraints.push(format!(
                    "node.labels.{} == {zone}",
                    self.options.spread_label
                ));
            }
        }
        Ok(TaskSpecPlacement {
            constraints: Some(constraints),
            preferences: Some(vec![TaskSpecPlacementPreferences {
                spread: Some(TaskSpecPlacementSpread {
                    spread_descriptor: Some(format!("node.labels.{}", self.options.spread_label)),
                }),
            }]),
            max_replicas: None,
            platforms: None,
        })
    }

    /// The internal CA files of `volume` as Swarm configs, mounted where
    /// a local volume would be.
    async fn ca_configs(
        &self,
        volume: &str,
    ) -> Result<Vec<TaskSpecContainerSpecConfigs>, RuntimeError> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let client = self.local.client().await?;
        let inspect = client.inspect_volume(volume).await.map_err(engine_error)?;
        let folder = inspect
            .options
            .get("device")
            .cloned()
            .ok_or_else(|| RuntimeError::Engine(format!("volume {volume} has no folder")))?;
        let mut configs = Vec::new();
        let entries = std::fs::read_dir(&folder)
            .map_err(|e| RuntimeError::Engine(format!("reading {folder}: {e}")))?;
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let file = entry.file_name().to_string_lossy().into_owned();
            if !kind.is_file() || file.starts_with('.') {
                continue;
            }
            let data = std::fs::read(entry.path())
                .map_err(|e| RuntimeError::Engine(format!("reading {file}: {e}")))?;
            let digest = hex_prefix(&sha2::Sha256::digest(&data));
            let name = format!("rampart-{}-{digest}", self.options.installation);
            let spec = bollard::models::ConfigSpec {
                name: Some(name.clone()),
                labels: Some(HashMap::from([(
                    LABEL_INSTALLATION.to_owned(),
                    self.options.installation.clone(),
                )])),
                data: Some(base64::engine::general_purpose::STANDARD.encode(&data)),
                templating: None,
            };
            let id = match client.create_config(spec).await {
                Ok(created) => created.id,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => client
                    .inspect_config(&name)
                    .await
                    .map_err(engine_error)?
                    .id
                    .unwrap_or_default(),
                Err(e) => return Err(engine_error(e)),
            };
            configs.push(TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 {
                    name: Some(format!("{}/{file}", crate::CA_MOUNT)),
                    uid: Some("0".into()),
                    gid: Some("0".into()),
                    mode: Some(0o444),
                }),
                runtime: None,
                config_id: Some(id),
                config_name: Some(name),
            });
        }
        Ok(configs)
    }

    async fn service_spec(
        &self,
        spec: &ReplicaSpec,
    ) -> Result<(ServiceSpec, Option<DockerCredentials>), RuntimeError> {
        let image = self.local.image(&spec.image).await?;
        let (reference, credentials) = self.distributed(spec, &image.id).await?;
        let user = if spec.allow_root {
            None
        } else {
            Some(self.local.unprivileged_user(&image).await?)
        };
        let configs = match &spec.ca_volume {
            Some(volume) => Some(self.ca_configs(volume).await?),
            None => None,
        };
        let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        // A local volume would hold a rolling update to one node: stop the
        // old task first there. Replicas here have none (refused above), so
        // updates start the new task first and roll back if it fails.
        let order = if spec.media_volume.is_some() {
            ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
        } else {
            ServiceSpecUpdateConfigOrderEnum::START_FIRST
        };
        let service = ServiceSpec {
            name: Some(spec.name.clone()),
            labels: Some(labels.clone()),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(reference),
                    labels: Some(labels),
                    args: spec.command.clone(),
                    env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                    user,
                    read_only: Some(true),
                    capability_drop: Some(vec!["ALL".into()]),
                    privileges: Some(TaskSpecContainerSpecPrivileges {
                        no_new_privileges: Some(true),
                        ..Default::default()
                    }),
                    // A small init reaps zombies and passes SIGTERM on.
                    init: Some(true),
                    mounts: Some(vec![Mount {
                        target: Some("/tmp".into()),
                        typ: Some(MountType::TMPFS),
                        tmpfs_options: Some(MountTmpfsOptions {
                            size_bytes: Some(TMP_BYTES),
                            mode: Some(0o1777),
                            options: None,
                        }),
                        ..Default::default()
                    }]),
                    stop_grace_period: Some(STOP_GRACE.as_nanos() as i64),
                    configs,
                    ..Default::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        nano_cpus: Some(spec.limits.nano_cpus()),
                        memory_bytes: Some(spec.limits.memory_bytes as i64),
                        pids: Some(i64::from(spec.limits.pids)),
                    }),
                    reservations: None,
                    // No swap beyond the memory limit.
                    swap_bytes: Some(0),
                    memory_swappiness: None,
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(Duration::from_secs(2).as_nanos() as i64),
                    max_attempts: Some(0),
                    window: None,
                }),
                placement: Some(self.placement(spec).await?),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(spec.network.clone()),
                    aliases: None,
                    driver_opts: None,
                }]),
                log_driver: Some(TaskSpecLogDriver {
                    name: Some("json-file".into()),
                    options: Some(HashMap::from([
                        ("max-size".to_owned(), "10m".to_owned()),
                        ("max-file".to_owned(), "3".to_owned()),
                    ])),
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(1),
                delay: None,
                failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
                monitor: Some(Duration::from_secs(10).as_nanos() as i64),
                max_failure_ratio: Some(0.0),
                order: Some(order),
            }),
            rollback_config: Some(ServiceSpecRollbackConfig {
                parallelism: Some(1),
                failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
                order: Some(if spec.media_volume.is_some() {
                    ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
                } else {
                    ServiceSpecRollbackConfigOrderEnum::START_FIRST
                }),
                ..Default::default()
            }),
            networks: None,
            // No virtual IP and no published port: the edge reaches each
            // task at its own address.
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ports: None,
            }),
        };
        Ok((service, credentials))
    }

    /// Waits (briefly) until the service's task has a node, so that the
    /// next replica's placement counts it; a task the Swarm cannot place
    /// is left to [`Swarm::started`], which says why.
    async fn placed(&self, id: &str) {
        let deadline = tokio::time::Instant::now() + PLACE_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            match self.service_tasks(id).await {
                Ok(tasks) => {
                    let refs: Vec<&api::Task> = tasks.iter().collect();
                    let on_node = tasks
                        .iter()
                        .any(|t| t.node_id.as_deref().is_some_and(|n| !n.is_empty()));
                    if on_node || api::task_error(&refs).is_some() {
                        return;
                    }
                }
                Err(_) => return,
            }
            tokio::time::sleep(PLACE_POLL).await;
        }
    }

    /// Waits until the service's task runs, has ended, or the cluster
    /// gave up placing it.
    async fn started(&self, id: &str) -> Result<Replica, RuntimeError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let tasks = self.service_tasks(id).await?;
            let refs: Vec<&api::Task> = tasks.iter().collect();
            let replica = self
                .service_replica(id)
                .await?
                .ok_or_else(|| RuntimeError::NoContainer(id.to_owned()))?;
            if replica.state != "created" {
                return Ok(replica);
            }
            // Waiting with a reason ("no suitable node …"), or too long.
            let reason = api::task_error(&refs);
            if reason.is_some() || tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::Engine(format!(
                    "the Swarm could not start {}: {}",
                    replica.name,
                    reason.unwrap_or_else(|| "its task is still waiting for a node".into())
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn refuse_local_media(spec: &ReplicaSpec) -> Result<(), RuntimeError> {
        if spec.media_volume.is_some() {
            return Err(RuntimeError::NotPortable(
                "media in a local folder cannot follow a replica to another node; with runtime.backend = \"swarm\" media live in S3 (the [media] s3_* keys)".into(),
            ));
        }
        Ok(())
    }

    fn is_task(spec: &ReplicaSpec) -> bool {
        spec.labels.contains_key(LABEL_TASK)
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes a query value.
fn percent(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[async_trait]
impl ContainerRuntime for Swarm {
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.local.ping().await?;
        self.address_pools().await.map(|_| ())
    }

    async fn build(
        &self,
        tag: &str,
        context: Bytes,
        pull: bool,
        output: mpsc::UnboundedSender<String>,
    ) -> Result<Image, RuntimeError> {
        self.local.build(tag, context, pull, output).await
    }

    async fn image(&self, reference: &str) -> Result<Image, RuntimeError> {
        self.local.image(reference).await
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<(), RuntimeError> {
        let client = self.local.client().await?;
        match client
            .inspect_network(
                &spec.name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(existing) if existing.driver.as_deref() == Some("overlay") => {}
            Ok(existing) => {
                return Err(RuntimeError::Engine(format!(
                    "network {} exists with the {} driver (left by runtime.backend = \"docker\"?); remove it once nothing uses it",
                    spec.name,
                    existing.driver.unwrap_or_default()
                )));
            }
            Err(e) if is_not_found(&e) => {
                let request = NetworkCreateRequest {
                    name: spec.name.clone(),
                    driver: Some("overlay".into()),
                    internal: Some(!spec.egress),
                    attachable: Some(true),
                    labels: Some(spec.labels.clone().into_iter().collect()),
                    // IPsec between nodes for everything on the network.
                    options: Some(self.options.overlay_options()),
                    ..Default::default()
                };
                match client.create_network(request).await {
                    Ok(_) => {}
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 409,
                        ..
                    }) => {}
                    Err(e) => return Err(engine_error(e)),
                }
            }
            Err(e) => return Err(engine_error(e)),
        }
        self.relay.attach(&self.local, &spec.name).await
    }

    async fn network_addresses(
        &self,
        name: &str,
    ) -> Result<Option<crate::NetworkAddresses>, RuntimeError> {
        self.local.network_addresses(name).await
    }

    async fn ensure_volume(&self, spec: &crate::VolumeSpec) -> Result<(), RuntimeError> {
        self.local.ensure_volume(spec).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.local.remove_volume(name).await
    }

    async fn remove_network(&self, name: &str) -> Result<(), RuntimeError> {
        self.relay.detach(&self.local, name).await?;
        self.local.remove_network(name).await
    }

    async fn remove_app_images(&self, app: &str) -> Result<usize, RuntimeError> {
        if let Some(registry) = &self.registry {
            registry.forget(&registry::repository(app)).await?;
        }
        self.local.remove_app_images(app).await
    }

    async fn networks(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, RuntimeError> {
        self.local.networks(labels).await
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<Replica, RuntimeError> {
        Self::refuse_local_media(spec)?;
        if Self::is_task(spec) {
            return self.local.start(spec).await;
        }
        let id = {
            let _turn = self.placing.lock().await;
            let (service, credentials) = self.service_spec(spec).await?;
            let created = self
                .local
                .client()
                .await?
                .create_service(service, credentials)
                .await
                .map_err(engine_error)?;
            let id = created
                .id
                .ok_or_else(|| RuntimeError::Engine("the Swarm returned no service id".into()))?;
            self.placed(&id).await;
            id
        };
        match self.started(&id).await {
            Ok(replica) => Ok(replica),
            Err(error) => {
                let _ = self.remove(&id, Duration::ZERO).await;
                Err(error)
            }
        }
    }

    async fn start_attached(
        &self,
        spec: &ReplicaSpec,
    ) -> Result<(Replica, Attached), RuntimeError> {
        Self::refuse_local_media(spec)?;
        self.local.start_attached(spec).await
    }

    async fn resize(&self, id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        self.local.resize(id, cols, rows).await
    }

    /// The cluster restarts a replica's task from the start (with a
    /// delay); a replica that fails its first checks is removed by the
    /// rollout before that matters.
    async fn keep_running(&self, id: &str) -> Result<(), RuntimeError> {
        if Self::is_service_id(id) {
            Ok(())
        } else {
            self.local.keep_running(id).await
        }
    }

    async fn remove(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        if !Self::is_service_id(id) {
            return self.local.remove(id, grace).await;
        }
        match self.local.client().await?.delete_service(id).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(engine_error(e)),
        }
        // The task's container stops with the service's grace period; wait
        // for it, so its network can go and its name be reused.
        let deadline = tokio::time::Instant::now() + REMOVE_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&HashMap::from([(
                    "label".to_owned(),
                    vec![format!("{LABEL_SWARM_SERVICE}={id}")],
                )]))
                .build();
            let left = self
                .local
                .client()
                .await?
                .list_containers(Some(options))
                .await
                .map_err(engine_error)?;
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    async fn export_image(
        &self,
        image: &str,
        labels: BTreeMap<String, String>,
        into: mpsc::Sender<Bytes>,
    ) -> Result<(), RuntimeError> {
        self.local.export_image(image, labels, into).await
    }

    async fn replicas(&self, labels: &[(&str, &str)]) -> Result<Vec<Replica>, RuntimeError> {
        let mut out = self.service_replicas(labels).await?;
        // One-off tasks are local containers; a service's task container
        // carries the same labels and is not a replica of its own.
        out.extend(
            self.local
                .replicas(labels)
                .await?
                .into_iter()
                .filter(|r| !r.labels.contains_key(LABEL_SWARM_SERVICE)),
        );
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn replica(&self, id: &str) -> Result<Option<Replica>, RuntimeError> {
        if Self::is_service_id(id) {
            self.service_replica(id).await
        } else {
            self.local.replica(id).await
        }
    }

    async fn wait(&self, id: &str) -> Result<i64, RuntimeError> {
        if !Self::is_service_id(id) {
            return self.local.wait(id).await;
        }
        loop {
            let replica = self
                .service_replica(id)
                .await?
                .ok_or_else(|| RuntimeError::NoContainer(id.to_owned()))?;
            if replica.state == "exited" {
                return Ok(replica.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn logs(&self, id: &str, query: LogQuery) -> BoxStream<'static, Result<LogLine, RuntimeError>> {
        if !Self::is_service_id(id) {
            return self.local.logs(id, query);
        }
        let options = crate::docker::log_options(&query);
        let service = id.to_owned();
        crate::docker::log_lines(&self.local, id, move |client| {
            client.service_logs(&service, Some(options.clone())).boxed()
        })
    }

    fn backend(&self) -> &'static str {
        "swarm"
    }

    async fn close(&self) -> Result<(), RuntimeError> {
        self.relay.remove(&self.local).await
    }

    async fn nodes(&self) -> Result<Vec<Node>, RuntimeError> {
        let raw: Vec<api::RawNode> = api::get("/nodes").await?;
        let mut nodes: Vec<Node> = raw.into_iter().map(Node::from).collect();
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
        Ok(nodes)
    }

    async fn update_node(&self, id: &str, change: &NodeChange) -> Result<(), RuntimeError> {
        let client = self.local.client().await?;
        // Another change between the read and the write makes the version
        // stale; read again and retry.
        for _ in 0..5 {
            let node = match client.inspect_node(id).await {
                Ok(node) => node,
                Err(e) if is_not_found(&e) => {
                    return Err(RuntimeError::NoContainer(format!("node {id}")));
                }
                Err(e) => return Err(engine_error(e)),
            };
            let version = node.version.and_then(|v| v.index).unwrap_or(0);
            let mut spec = node.spec.unwrap_or_default();
            match change {
                NodeChange::Label(key, value) => {
                    let labels = spec.labels.get_or_insert_with(HashMap::new);
                    match value {
                        Some(value) => labels.insert(key.clone(), value.clone()),
                        None => labels.remove(key),
                    };
                }
                NodeChange::Availability(availability) => {
                    spec.availability = Some(match availability.as_str() {
                        "active" => NodeSpecAvailabilityEnum::ACTIVE,
                        "pause" => NodeSpecAvailabilityEnum::PAUSE,
                        "drain" => NodeSpecAvailabilityEnum::DRAIN,
                        other => {
                            return Err(RuntimeError::Engine(format!(
                                "{other:?} is not a node availability (active, pause, drain)"
                            )));
                        }
                    });
                }
            }
            let options = UpdateNodeOptionsBuilder::new()
                .version(i64::try_from(version).unwrap_or(i64::MAX))
                .build();
            match client.update_node(id, spec, options).await {
                Ok(()) => return Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                    if message.contains("update out of sequence") => {}
                Err(e) => return Err(engine_error(e)),
            }
        }
        Err(RuntimeError::Engine(format!(
            "node {id} kept changing while it was being updated"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_and_container_ids_are_told_apart() {
        assert!(Swarm::is_service_id("6ou3vl5zumem4yvdjrnmfq23u"));
        assert!(!Swarm::is_service_id(
            "2be53bcf62ff0a544634364ea428246419f8df2f17d3c2c59b73587f5711f57e"
        ));
        assert!(!Swarm::is_service_id("6ou3vl5zumem4yvdjrnmfq2/u"));
    }

    #[test]
    fn filters_are_percent_encoded() {
        assert_eq!(
            percent(r#"{"service":["a b"]}"#),
            "%7B%22service%22%3A%5B%22a%20b%22%5D%7D"
        );
    }
}

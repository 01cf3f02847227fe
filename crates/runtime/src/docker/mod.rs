//! The Docker engine backend, over bollard and the engine's Unix socket.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerUpdateBody, EndpointSettings,
    HostConfig, HostConfigLogConfig, Mount, MountType, NetworkCreateRequest, NetworkingConfig,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    ResizeContainerTTYOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::{body_full, container::LogOutput};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::{
    Attached, ContainerRuntime, Image, LogLine, LogQuery, NetworkSpec, Replica, ReplicaSpec,
    RuntimeError,
};

mod attach;
mod user;

pub(crate) use attach::engine_connection;

/// The user a replica runs as when its image would run as root and the app
/// did not ask for root: nobody.
const NOBODY: &str = "65534:65534";
/// Size of the writable `/tmp` of a replica.
const TMP_SIZE: &str = "size=64m";
/// How long one call to the engine may take (a build is one call).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(300);

/// The local Docker engine. The API version is agreed on first use, and
/// again after a failure, so a platform started before its engine (or
/// outliving an engine restart) recovers by itself.
#[derive(Debug, Clone, Default)]
pub struct Docker {
    client: std::sync::Arc<tokio::sync::OnceCell<bollard::Docker>>,
    build: BuildLimits,
}

/// What an image build may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildLimits {
    pub memory_mb: u32,
    /// CPUs in thousandths (1000 = one CPU).
    pub cpu_millis: u32,
}

impl Default for BuildLimits {
    fn default() -> Self {
        Self {
            memory_mb: 1024,
            cpu_millis: 1000,
        }
    }
}

/// Whether the image name `name` (`repository:tag` or
/// `repository@digest`) is one of `app`'s: its repository is `rampart/APP`,
/// here or in a registry.
fn is_app_image(name: &str, app: &str) -> bool {
    let repository = match name.split_once('@') {
        Some((repository, _)) => repository,
        // A tag follows the last colon after the last slash (a registry's
        // port comes before it).
        None => match name.rfind(':') {
            Some(i) if !name[i..].contains('/') => &name[..i],
            _ => name,
        },
    };
    let own = format!("rampart/{app}");
    // A registry is the first part of a name when it looks like a host
    // (`evil/rampart/APP` is a repository on the default registry).
    let in_registry = |prefix: &str| {
        prefix.strip_suffix('/').is_some_and(|host| {
            !host.contains('/') && (host.contains('.') || host.contains(':') || host == "localhost")
        })
    };
    repository == own
        || repository
            .strip_suffix(own.as_str())
            .is_some_and(in_registry)
}

pub(crate) fn engine_error(error: bollard::errors::Error) -> RuntimeError {
    use bollard::errors::Error as E;
    match error {
        E::DockerResponseServerError { message, .. } => RuntimeError::Engine(message),
        E::IOError { .. } | E::HyperResponseError { .. } | E::SocketNotFoundError(_) => {
            RuntimeError::Unreachable(error.to_string())
        }
        other => RuntimeError::Engine(other.to_string()),
    }
}

pub(crate) fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub(crate) fn label_filter(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let values = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    HashMap::from([("label".to_owned(), values)])
}

impl Docker {
    /// Creates a hardened container of `spec`; it does not start it.
    async fn create(&self, spec: &ReplicaSpec) -> Result<String, RuntimeError> {
        let image = self.image(&spec.image).await?;
        let user = if spec.allow_root {
            None
        } else {
            Some(self.unprivileged_user(&image).await?)
        };
        let mut mounts = Vec::new();
        if let Some(volume) = &spec.media_volume {
            mounts.push(Mount {
                target: Some(crate::MEDIA_MOUNT.into()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            });
        }
        if let Some(volume) = &spec.ca_volume {
            mounts.push(Mount {
                target: Some(crate::CA_MOUNT.into()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(true),
                ..Default::default()
            });
        }
        let mounts = (!mounts.is_empty()).then_some(mounts);
        let host_config = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                format!("rw,noexec,nosuid,nodev,{TMP_SIZE}"),
            )])),
            memory: Some(spec.limits.memory_bytes as i64),
            // No swap beyond the memory limit.
            memory_swap: Some(spec.limits.memory_bytes as i64),
            nano_cpus: Some(spec.limits.nano_cpus()),
            pids_limit: Some(i64::from(spec.limits.pids)),
            // A small init reaps zombies and passes SIGTERM on to the app.
            init: Some(true),
            privileged: Some(false),
            publish_all_ports: Some(false),
            network_mode: Some(spec.network.clone()),
            // Not restarted until it has proved healthy (see keep_running),
            // so a replica that fails at once stays down with its status.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), "10m".to_owned()),
                    ("max-file".to_owned(), "3".to_owned()),
                ])),
            }),
            mounts,
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.id.clone()),
            user,
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: spec.command.clone(),
            tty: Some(spec.terminal),
            open_stdin: Some(spec.terminal),
            stdin_once: Some(spec.terminal),
            attach_stdin: Some(spec.terminal),
            attach_stdout: Some(spec.terminal),
            attach_stderr: Some(spec.terminal),
            labels: Some(spec.labels.clone().into_iter().collect()),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = self
            .client()
            .await?
            .create_container(Some(options), body)
            .await
            .map_err(engine_error)?;
        Ok(created.id)
    }

    /// Starts a created container, removing it if it cannot start.
    async fn start_created(&self, id: &str) -> Result<Replica, RuntimeError> {
        if let Err(error) = self
            .client()
            .await?
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            let _ = self.remove(id, Duration::ZERO).await;
            return Err(engine_error(error));
        }
        self.replica(id)
            .await?
            .ok_or_else(|| RuntimeError::NoContainer(id.to_owned()))
    }

    /// The engine at `DOCKER_HOST` or the default socket. Nothing is sent
    /// until the first call.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds every build to `limits`.
    pub fn with_build_limits(mut self, limits: BuildLimits) -> Self {
        self.build = limits;
        self
    }

    fn build_memory(&self) -> i32 {
        i32::try_from(u64::from(self.build.memory_mb) * 1024 * 1024).unwrap_or(i32::MAX)
    }

    pub(crate) async fn client(&self) -> Result<&bollard::Docker, RuntimeError> {
        self.client
            .get_or_try_init(|| async {
                bollard::Docker::connect_with_local_defaults()
                    .map_err(|e| RuntimeError::Unreachable(e.to_string()))?
                    .with_timeout(ENGINE_TIMEOUT)
                    .negotiate_version()
                    .await
                    .map_err(|e| RuntimeError::Unreachable(e.to_string()))
            })
            .await
    }

    fn replica_from(inspect: ContainerInspectResponse) -> Replica {
        let state = inspect.state.unwrap_or_default();
        let ip = inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|nets| {
                nets.into_values()
                    .find_map(|e| e.ip_address.filter(|ip| !ip.is_empty()))
            })
            .and_then(|ip| ip.parse().ok());
        Replica {
            id: inspect.id.unwrap_or_default(),
            name: inspect
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            labels: inspect
                .config
                .and_then(|c| c.labels)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            state: state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
            exit_code: state.exit_code,
            ip,
            started_at: state.started_at,
            restarts: inspect.restart_count.unwrap_or(0).max(0) as u64,
            node: None,
        }
    }
}

#[async_trait]
impl ContainerRuntime for Docker {
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.client()
            .await?
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::Unreachable(e.to_string()))
    }

    async fn build(
        &self,
        tag: &str,
        context: Bytes,
        pull: bool,
        output: mpsc::UnboundedSender<String>,
    ) -> Result<Image, RuntimeError> {
        let options = BuildImageOptionsBuilder::new()
            .t(tag)
            .pull(if pull { "true" } else { "" })
            .dockerfile("Dockerfile")
            .rm(true)
            .forcerm(true)
            .networkmode("none")
            // No swap beyond the memory limit; CPU by quota per 100 ms.
            .memory(self.build_memory())
            .memswap(self.build_memory())
            .cpuperiod(100_000)
            .cpuquota(i32::try_from(u64::from(self.build.cpu_millis) * 100).unwrap_or(i32::MAX))
            .build();
        let mut stream = self
            .client()
            .await?
            .build_image(options, None, Some(body_full(context)));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| match e {
                bollard::errors::Error::DockerStreamError { error } => RuntimeError::Build(error),
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    RuntimeError::Build(message)
                }
                other => engine_error(other),
            })?;
            if let Some(detail) = info.error_detail {
                return Err(RuntimeError::Build(
                    detail.message.unwrap_or_else(|| "unknown error".into()),
                ));
            }
            for line in info.stream.iter().chain(info.status.iter()) {
                for part in line.lines().filter(|l| !l.trim().is_empty()) {
                    let _ = output.send(part.to_owned());
                }
            }
        }
        self.image(tag).await
    }

    async fn image(&self, reference: &str) -> Result<Image, RuntimeError> {
        match self.client().await?.inspect_image(reference).await {
            Ok(image) => Ok(Image {
                id: image.id.unwrap_or_default(),
                user: image.config.and_then(|c| c.user).unwrap_or_default(),
            }),
            Err(e) if is_not_found(&e) => Err(RuntimeError::NoImage(reference.to_owned())),
            Err(e) => Err(engine_error(e)),
        }
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<(), RuntimeError> {
        match self
            .client()
            .await?
            .inspect_network(
                &spec.name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(e)),
        }
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some("bridge".into()),
            internal: Some(!spec.egress),
            attachable: Some(false),
            labels: Some(spec.labels.clone().into_iter().collect()),
            options: Some(HashMap::from([(
                // Replicas of one app may talk to each other; the edge
                // reaches them through the bridge's address on the host.
                "com.docker.network.bridge.enable_icc".to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        };
        match self.client().await?.create_network(request).await {
            Ok(_) => Ok(()),
            // Created concurrently by another deploy of the same app.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(engine_error(e)),
        }
    }

    async fn network_addresses(
        &self,
        name: &str,
    ) -> Result<Option<crate::NetworkAddresses>, RuntimeError> {
        let network = match self
            .client()
            .await?
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(n) => n,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(engine_error(e)),
        };
        let config = network
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| {
                let subnet = c.subnet?;
                let gateway = c.gateway?.parse().ok()?;
                subnet.contains('.').then_some((subnet, gateway))
            });
        match config {
            Some((subnet, gateway)) => Ok(Some(crate::NetworkAddresses { subnet, gateway })),
            None => Err(RuntimeError::Engine(format!(
                "network {name} has no IPv4 subnet and gateway"
            ))),
        }
    }

    async fn ensure_volume(&self, spec: &crate::VolumeSpec) -> Result<(), RuntimeError> {
        let client = self.client().await?;
        if client.inspect_volume(&spec.name).await.is_ok() {
            return Ok(());
        }
        let request = bollard::models::VolumeCreateRequest {
            name: Some(spec.name.clone()),
            driver: Some("local".into()),
            driver_opts: Some(HashMap::from([
                ("type".to_owned(), "none".to_owned()),
                ("o".to_owned(), "bind".to_owned()),
                (
                    "device".to_owned(),
                    spec.folder.to_string_lossy().into_owned(),
                ),
            ])),
            labels: Some(spec.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        client
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(engine_error)
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        match self
            .client()
            .await?
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error(e)),
        }
    }

    async fn remove_network(&self, name: &str) -> Result<(), RuntimeError> {
        match self.client().await?.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error(e)),
        }
    }

    async fn remove_app_images(&self, app: &str) -> Result<usize, RuntimeError> {
        let client = self.client().await?;
        let images = client
            .list_images(Some(
                bollard::query_parameters::ListImagesOptionsBuilder::new().build(),
            ))
            .await
            .map_err(engine_error)?;
        let names: Vec<String> = images
            .into_iter()
            .flat_map(|image| image.repo_tags.into_iter().chain(image.repo_digests))
            .filter(|name| is_app_image(name, app))
            .collect();
        let mut removed = 0;
        for name in &names {
            let options = bollard::query_parameters::RemoveImageOptionsBuilder::new()
                .force(false)
                .noprune(false)
                .build();
            match client.remove_image(name, Some(options), None).await {
                Ok(_) => removed += 1,
                // In use by a container, or already gone with another name.
                Err(error) => tracing::debug!(%name, %error, "an image of a deleted app stays"),
            }
        }
        Ok(removed)
    }

    async fn networks(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, RuntimeError> {
        let options = ListNetworksOptionsBuilder::new()
            .filters(&label_filter(labels))
            .build();
        let list = self
            .client()
            .await?
            .list_networks(Some(options))
            .await
            .map_err(engine_error)?;
        Ok(list.into_iter().filter_map(|n| n.name).collect())
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<Replica, RuntimeError> {
        let id = self.create(spec).await?;
        self.start_created(&id).await
    }

    async fn start_attached(
        &self,
        spec: &ReplicaSpec,
    ) -> Result<(Replica, Attached), RuntimeError> {
        if !spec.terminal {
            return Err(RuntimeError::Engine(
                "only a container with a terminal can be attached".into(),
            ));
        }
        let id = self.create(spec).await?;
        let attached = match attach::attach(&id).await {
            Ok(attached) => attached,
            Err(error) => {
                let _ = self.remove(&id, Duration::ZERO).await;
                return Err(error);
            }
        };
        let replica = self.start_created(&id).await?;
        Ok((replica, attached))
    }

    async fn resize(&self, id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        let options = ResizeContainerTTYOptionsBuilder::new()
            .w(i32::from(cols))
            .h(i32::from(rows))
            .build();
        self.client()
            .await?
            .resize_container_tty(id, options)
            .await
            .map_err(engine_error)
    }

    async fn keep_running(&self, id: &str) -> Result<(), RuntimeError> {
        let update = ContainerUpdateBody {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        self.client()
            .await?
            .update_container(id, update)
            .await
            .map_err(engine_error)
    }

    async fn remove(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let stop = StopContainerOptionsBuilder::new()
            .t(grace.as_secs().min(i32::MAX as u64) as i32)
            .build();
        match self.client().await?.stop_container(id, Some(stop)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => tracing::warn!(container = id, error = %e, "stop failed; removing by force"),
        }
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self
            .client()
            .await?
            .remove_container(id, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 409: removal already in progress.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(engine_error(e)),
        }
    }

    async fn export_image(
        &self,
        image: &str,
        labels: std::collections::BTreeMap<String, String>,
        into: mpsc::Sender<Bytes>,
    ) -> Result<(), RuntimeError> {
        let image = self.image(image).await?;
        let body = ContainerCreateBody {
            image: Some(image.id.clone()),
            // Never started; a command is only needed because an image
            // without one cannot be made into a container.
            cmd: Some(vec!["/rampart-inventory-never-runs".into()]),
            entrypoint: Some(vec![]),
            network_disabled: Some(true),
            labels: Some(labels.into_iter().collect()),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .client()
            .await?
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .map_err(engine_error)?
            .id;
        let mut stream = self.client().await?.export_container(&id);
        let mut outcome = Ok(());
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if into.send(bytes).await.is_err() {
                        break;
                    }
                }
                Err(error) => {
                    outcome = Err(engine_error(error));
                    break;
                }
            }
        }
        drop(stream);
        self.remove(&id, Duration::ZERO).await?;
        outcome
    }

    async fn replicas(&self, labels: &[(&str, &str)]) -> Result<Vec<Replica>, RuntimeError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&label_filter(labels))
            .build();
        let list = self
            .client()
            .await?
            .list_containers(Some(options))
            .await
            .map_err(engine_error)?;
        let mut out = Vec::with_capacity(list.len());
        for summary in list {
            let Some(id) = summary.id else { continue };
            if let Some(replica) = self.replica(&id).await? {
                out.push(replica);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn replica(&self, id: &str) -> Result<Option<Replica>, RuntimeError> {
        match self
            .client()
            .await?
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(inspect) => Ok(Some(Self::replica_from(inspect))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_error(e)),
        }
    }

    async fn wait(&self, id: &str) -> Result<i64, RuntimeError> {
        let client = self.client().await?;
        let mut waits =
            client.wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
        match waits.next().await {
            Some(Ok(done)) => Ok(done.status_code),
            // bollard reports a non-zero status as an error.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) if is_not_found(&e) => Err(RuntimeError::NoContainer(id.to_owned())),
            Some(Err(e)) => Err(engine_error(e)),
            None => Err(RuntimeError::Engine(format!(
                "the engine ended the wait for {id} without a status"
            ))),
        }
    }

    fn logs(&self, id: &str, query: LogQuery) -> BoxStream<'static, Result<LogLine, RuntimeError>> {
        let options = log_options(&query);
        let container = id.to_owned();
        log_lines(self, id, move |client| {
            client.logs(&container, Some(options.clone())).boxed()
        })
    }
}

/// The output stream `open` asks the engine for (a container's or a
/// service's), as lines of `replica`.
pub(crate) fn log_lines(
    docker: &Docker,
    replica: &str,
    open: impl Fn(&bollard::Docker) -> BoxStream<'static, Result<LogOutput, bollard::errors::Error>>
    + Send
    + 'static,
) -> BoxStream<'static, Result<LogLine, RuntimeError>> {
    let this = docker.clone();
    let replica = replica.to_owned();
    futures::stream::once(async move { this.client().await.cloned() })
        .flat_map(move |client| match client {
            Ok(client) => open(&client),
            Err(error) => futures::stream::once(async move {
                Err(bollard::errors::Error::IOError {
                    err: std::io::Error::other(error.to_string()),
                })
            })
            .boxed(),
        })
        .map(move |item| log_line(item, &replica))
        .boxed()
}

/// The engine's log options for a query: both streams, with timestamps.
pub(crate) fn log_options(query: &LogQuery) -> bollard::query_parameters::LogsOptions {
    let mut options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .follow(query.follow);
    if let Some(since) = query.since {
        options = options.since(since.clamp(0, i64::from(i32::MAX)) as i32);
    }
    let tail = query
        .tail
        .map_or_else(|| "all".to_owned(), |n| n.to_string());
    options.tail(&tail).build()
}

/// One line of a container's or a service's output.
fn log_line(
    item: Result<LogOutput, bollard::errors::Error>,
    replica: &str,
) -> Result<LogLine, RuntimeError> {
    let output = item.map_err(engine_error)?;
    let (stream, bytes) = match output {
        LogOutput::StdErr { message } => ("stderr", message),
        LogOutput::StdOut { message } | LogOutput::Console { message } => ("stdout", message),
        LogOutput::StdIn { message } => ("stdin", message),
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_end();
    // With timestamps on, every line starts with its time.
    let (time, text) = match text.split_once(' ') {
        Some((time, rest)) if time.ends_with('Z') && time.len() >= 20 => {
            (Some(time.to_owned()), rest)
        }
        _ => (None, text),
    };
    Ok(LogLine {
        replica: replica.to_owned(),
        stream,
        text: text.to_owned(),
        time,
    })
}

#[cfg(test)]
mod tests {
    use super::is_app_image;

    #[test]
    fn an_apps_images_are_its_own_repository_here_or_in_a_registry() {
        for own in [
            "rampart/shop:r1",
            "rampart/shop:patch-probe",
            "rampart/shop@sha256:00",
            "10.0.0.1:7444/rampart/shop@sha256:00",
            "registry.local/rampart/shop:r2",
        ] {
            assert!(is_app_image(own, "shop"), "{own}");
        }
        for other in [
            "rampart/shop-2:r1",
            "rampart/sho:r1",
            "rampart/shop/x:r1",
            "evil/rampart/shop:r1",
            "a/b/rampart/shop:r1",
            "local/python-django:bookworm",
            "rampart/relay:empty",
            "shop:r1",
            "10.0.0.1:7444/rampart/blog@sha256:00",
        ] {
            assert!(!is_app_image(other, "shop"), "{other}");
        }
    }
}

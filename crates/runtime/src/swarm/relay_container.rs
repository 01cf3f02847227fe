//! The relay's container on the manager the platform runs on (see
//! `rampart_edge::relay` for what it does).
//!
//! It runs the platform's own binary, whatever the machine: the binary,
//! its dynamic loader and the libraries the running platform has loaded are
//! mounted read-only at their own paths into an image with no files, and
//! the loader starts the binary. So the relay is always the platform's
//! version, and no image has to be fetched or kept for it.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};

use super::SwarmOptions;
use crate::docker::{Docker, engine_error, is_not_found};
use crate::{ContainerRuntime, RuntimeError};

/// Where the relay's socket folder is mounted in its container.
const SOCKET_DIR: &str = "/run/rampart";
const SOCKET_NAME: &str = "relay.sock";
/// The label that marks the relay's container and network (set to the
/// installation's id) and its image.
const LABEL_RELAY: &str = "rampart.relay";
const IMAGE: &str = "rampart/relay:empty";
/// The user the relay runs as when the platform runs as root.
const NOBODY: u32 = 65534;

#[derive(Debug)]
pub(super) struct Relay {
    name: String,
    dir: PathBuf,
    installation: String,
    overlay_options: HashMap<String, String>,
    /// One (re)start or attach at a time.
    turn: tokio::sync::Mutex<()>,
}

/// How to start the running binary in an empty container: the dynamic
/// loader, its arguments up to the binary's own, and every file to mount.
pub fn relay_invocation() -> Result<(String, Vec<String>, Vec<PathBuf>), RuntimeError> {
    let exe = std::env::current_exe()
        .map_err(|e| RuntimeError::Engine(format!("cannot find the platform's binary: {e}")))?;
    let exe_text = exe.to_string_lossy().into_owned();
    if exe_text.ends_with(" (deleted)") {
        return Err(RuntimeError::Engine(
            "the platform's binary was replaced while it runs; restart the platform".into(),
        ));
    }
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| RuntimeError::Engine(format!("reading /proc/self/maps: {e}")))?;
    let mut libraries: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        let path = PathBuf::from(path);
        let is_library = path
            .file_name()
            .map(|n| n.to_string_lossy().contains(".so"))
            .unwrap_or(false);
        if path.is_absolute() && is_library && !libraries.contains(&path) {
            libraries.push(path);
        }
    }
    let loader = libraries
        .iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ld-linux"))
        })
        .cloned();
    let mut files = libraries.clone();
    files.push(exe.clone());
    match loader {
        Some(loader) => {
            let mut dirs: Vec<String> = Vec::new();
            for dir in libraries.iter().filter_map(|p| p.parent()) {
                let dir = dir.to_string_lossy().into_owned();
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            Ok((
                loader.to_string_lossy().into_owned(),
                vec!["--library-path".into(), dirs.join(":"), exe_text],
                files,
            ))
        }
        // A static binary runs by itself.
        None => Ok((exe_text, Vec::new(), files)),
    }
}

impl Relay {
    pub(super) fn new(options: &SwarmOptions) -> Self {
        Self {
            name: format!("rampart-relay-{}", options.installation),
            dir: options.relay_dir.clone(),
            installation: options.installation.clone(),
            overlay_options: options.overlay_options(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn socket(&self) -> PathBuf {
        self.dir.join(SOCKET_NAME)
    }

    /// The relay's own network, so that it has one before any app does.
    pub(super) fn home_network(&self) -> String {
        self.name.clone()
    }

    /// Replaces the relay's container with a fresh one of the running
    /// binary, attached to `overlays`, and waits for its socket.
    pub(super) async fn restart(
        &self,
        local: &Docker,
        overlays: &[String],
    ) -> Result<(), RuntimeError> {
        let _turn = self.turn.lock().await;
        self.recreate(local, overlays).await
    }

    async fn recreate(&self, local: &Docker, overlays: &[String]) -> Result<(), RuntimeError> {
        let client = local.client().await?;
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        match client.remove_container(&self.name, Some(remove)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(e)),
        }
        self.ensure_home(local).await?;
        self.ensure_image(local).await?;
        let user = self.prepare_dir()?;
        let (entrypoint, mut args, files) = relay_invocation()?;
        args.extend([
            "relay".to_owned(),
            "--socket".to_owned(),
            format!("{SOCKET_DIR}/{SOCKET_NAME}"),
        ]);
        let mut mounts: Vec<Mount> = files
            .iter()
            .map(|file| Mount {
                target: Some(file.to_string_lossy().into_owned()),
                source: Some(file.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            })
            .collect();
        mounts.push(Mount {
            target: Some(SOCKET_DIR.into()),
            source: Some(self.dir.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        });
        // Not the installation's label: the relay is no replica, and the
        // reconciler must never count or remove it as one.
        let labels = HashMap::from([(LABEL_RELAY.to_owned(), self.installation.clone())]);
        let body = ContainerCreateBody {
            image: Some(IMAGE.into()),
            entrypoint: Some(vec![entrypoint]),
            cmd: Some(args),
            user: Some(user),
            env: Some(vec!["RUST_LOG=warn".into()]),
            labels: Some(labels),
            host_config: Some(HostConfig {
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                readonly_rootfs: Some(true),
                memory: Some(256 * 1024 * 1024),
                memory_swap: Some(256 * 1024 * 1024),
                pids_limit: Some(256),
                network_mode: Some(self.home_network()),
                // It carries connections between the edge and replicas;
                // it must never route packets between the overlays.
                sysctls: Some(HashMap::from([(
                    "net.ipv4.ip_forward".to_owned(),
                    "0".to_owned(),
                )])),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                mounts: Some(mounts),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.home_network(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new()
            .name(&self.name)
            .build();
        client
            .create_container(Some(options), body)
            .await
            .map_err(engine_error)?;
        let _ = std::fs::remove_file(self.socket());
        client
            .start_container(
                &self.name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(engine_error)?;
        for overlay in overlays {
            self.connect(local, overlay).await?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.socket().exists() {
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::Engine(format!(
                    "the relay did not open {} (docker logs {})",
                    self.socket().display(),
                    self.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Creates the socket's folder and returns the user the relay runs as:
    /// the folder's owner, or nobody (then owning the folder) when that is
    /// root.
    fn prepare_dir(&self) -> Result<String, RuntimeError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |e: std::io::Error| {
            RuntimeError::Engine(format!("the relay's folder {}: {e}", self.dir.display()))
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        let meta = std::fs::metadata(&self.dir).map_err(io)?;
        if meta.uid() == 0 {
            std::os::unix::fs::chown(&self.dir, Some(NOBODY), Some(NOBODY)).map_err(io)?;
            return Ok(format!("{NOBODY}:{NOBODY}"));
        }
        Ok(format!("{}:{}", meta.uid(), meta.gid()))
    }

    async fn ensure_home(&self, local: &Docker) -> Result<(), RuntimeError> {
        let client = local.client().await?;
        match client
            .inspect_network(
                &self.home_network(),
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(e)),
        }
        let request = NetworkCreateRequest {
            name: self.home_network(),
            driver: Some("overlay".into()),
            internal: Some(true),
            attachable: Some(true),
            labels: Some(HashMap::from([(
                LABEL_RELAY.to_owned(),
                self.installation.clone(),
            )])),
            options: Some(self.overlay_options.clone()),
            ..Default::default()
        };
        match client.create_network(request).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            // A worker cannot create an overlay, nor list one it runs
            // nothing on; the platform's manager made it, and the
            // container attaches to it by name.
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("worker") =>
            {
                Ok(())
            }
            Err(e) => Err(engine_error(e)),
        }
    }

    /// An image with no files, built once: the relay's files are mounted.
    async fn ensure_image(&self, local: &Docker) -> Result<(), RuntimeError> {
        if local.image(IMAGE).await.is_ok() {
            return Ok(());
        }
        let dockerfile = format!("FROM scratch\nLABEL {LABEL_RELAY}=true\n");
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let context = archive
            .into_inner()
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        local
            .build(IMAGE, context.into(), false, tx)
            .await
            .map(|_| ())
    }

    async fn connect(&self, local: &Docker, network: &str) -> Result<(), RuntimeError> {
        let request = NetworkConnectRequest {
            container: self.name.clone(),
            endpoint_config: None,
        };
        match local
            .client()
            .await?
            .connect_network(network, request)
            .await
        {
            Ok(()) => Ok(()),
            // Attached already ("already exists" or "already attached",
            // by engine version).
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("already") =>
            {
                Ok(())
            }
            Err(e) => Err(engine_error(e)),
        }
    }

    /// Attaches the relay to an app's overlay, starting it first if it is
    /// not there.
    pub(super) async fn attach(&self, local: &Docker, network: &str) -> Result<(), RuntimeError> {
        let _turn = self.turn.lock().await;
        let running = match local
            .client()
            .await?
            .inspect_container(
                &self.name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(inspect) => inspect.state.and_then(|s| s.running).unwrap_or(false),
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(engine_error(e)),
        };
        if running && self.socket().exists() {
            self.connect(local, network).await
        } else {
            self.recreate(local, &[network.to_owned()]).await
        }
    }

    /// Removes the relay's container only (an ingress node's: the
    /// network is the Swarm's, which the platform's manager keeps).
    pub(super) async fn remove_container(&self, local: &Docker) -> Result<(), RuntimeError> {
        let _turn = self.turn.lock().await;
        self.remove_own_container(local).await
    }

    async fn remove_own_container(&self, local: &Docker) -> Result<(), RuntimeError> {
        let client = local.client().await?;
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match client.remove_container(&self.name, Some(options)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(e)),
        }
        let _ = std::fs::remove_file(self.socket());
        Ok(())
    }

    /// Removes the relay's container and its own network; the platform
    /// starts a fresh one when it starts again.
    pub(super) async fn remove(&self, local: &Docker) -> Result<(), RuntimeError> {
        let _turn = self.turn.lock().await;
        self.remove_own_container(local).await?;
        let client = local.client().await?;
        match client.remove_network(&self.home_network()).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error(e)),
        }
    }

    pub(super) async fn detach(&self, local: &Docker, network: &str) -> Result<(), RuntimeError> {
        let _turn = self.turn.lock().await;
        let request = NetworkDisconnectRequest {
            container: self.name.clone(),
            force: Some(true),
        };
        match local
            .client()
            .await?
            .disconnect_network(network, request)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("is not connected") =>
            {
                Ok(())
            }
            Err(e) => Err(engine_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invocation_names_the_loader_the_libraries_and_the_binary() {
        let (entry, args, files) = relay_invocation().unwrap();
        let exe = std::env::current_exe().unwrap();
        assert!(files.contains(&exe));
        assert!(
            files.iter().all(|f| f.is_absolute() && f.exists()),
            "{files:?}"
        );
        if args.is_empty() {
            assert_eq!(entry, exe.to_string_lossy());
        } else {
            assert!(entry.contains("ld-linux"), "{entry}");
            assert_eq!(args[0], "--library-path");
            assert_eq!(args[2], exe.to_string_lossy());
            assert!(files.iter().any(|f| f.to_string_lossy() == entry));
        }
    }
}

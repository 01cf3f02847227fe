//! The relay of an edge on another node of the Swarm (`rampart ingress`):
//! the same relay container as on the platform's manager, started on that
//! node's own engine and attached, by name, to the overlays the platform
//! names in its routes (attachable overlays can take a container on any
//! node, a worker's too).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::SwarmOptions;
use super::relay_container::Relay;
use crate::RuntimeError;
use crate::docker::{Docker, engine_error};

/// The relay on this node and the overlays it is attached to.
#[derive(Debug)]
pub struct IngressRelay {
    local: Docker,
    relay: Relay,
    attached: tokio::sync::Mutex<Option<BTreeSet<String>>>,
}

impl IngressRelay {
    /// The relay of `installation` on the engine `local`, its socket in
    /// `relay_dir`.
    pub fn new(local: Docker, installation: &str, relay_dir: PathBuf, encrypted: bool) -> Self {
        let options = SwarmOptions {
            installation: installation.to_owned(),
            relay_dir,
            constraints: Vec::new(),
            spread_label: String::new(),
            encrypt_overlays: encrypted,
        };
        Self {
            local,
            relay: Relay::new(&options),
            attached: Default::default(),
        }
    }

    /// Where the edge reaches the relay.
    pub fn socket(&self) -> PathBuf {
        self.relay.socket()
    }

    /// Attaches the relay to exactly `overlays` (its own network first,
    /// which it is started on); starts it the first time.
    pub async fn sync(&self, overlays: &[String]) -> Result<(), RuntimeError> {
        let mut attached = self.attached.lock().await;
        let want: BTreeSet<String> = overlays.iter().skip(1).cloned().collect();
        match attached.as_mut() {
            None => {
                let list: Vec<String> = want.iter().cloned().collect();
                self.relay.restart(&self.local, &list).await?;
                *attached = Some(want);
            }
            Some(now) => {
                for gone in now.difference(&want).cloned().collect::<Vec<_>>() {
                    self.relay.detach(&self.local, &gone).await?;
                }
                // Every overlay again, not only new ones: attaching is
                // idempotent, and a relay that went away comes back.
                for overlay in &want {
                    self.relay.attach(&self.local, overlay).await?;
                }
                *now = want;
            }
        }
        Ok(())
    }

    /// Removes the relay's container.
    pub async fn remove(&self) -> Result<(), RuntimeError> {
        self.relay.remove_container(&self.local).await
    }
}

/// The Swarm node id of the engine `local`, when it is in a Swarm.
pub async fn local_node(local: &Docker) -> Result<String, RuntimeError> {
    let info = local.client().await?.info().await.map_err(engine_error)?;
    info.swarm
        .and_then(|s| s.node_id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            RuntimeError::Engine("this engine is not a node of a Swarm (docker swarm join)".into())
        })
}

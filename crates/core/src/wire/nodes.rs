//! The machines of a Swarm on the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One machine of the Swarm the platform runs apps on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active` (takes replicas), `pause` (keeps its replicas, takes no new
    /// ones) or `drain` (runs none).
    pub availability: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    pub addr: String,
    pub labels: BTreeMap<String, String>,
    /// An admin suspects it: no replica is placed on it until it is
    /// activated again.
    pub suspect: bool,
    pub engine_version: String,
    /// This installation's replicas on it.
    pub replicas: u32,
}

/// Body of `PUT /api/nodes/{node}/labels/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeLabel {
    pub value: String,
}

/// Body of `POST /api/nodes/{node}/drain`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainNode {
    /// Also keep every new replica off the node until an admin activates
    /// it again (a machine suspected of compromise).
    #[serde(default)]
    pub suspect: bool,
}

/// What a drain did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeDrained {
    pub node: Node,
    /// Replicas moved to other nodes, healthy and in the edge before the
    /// old ones stopped.
    pub moved: u32,
}

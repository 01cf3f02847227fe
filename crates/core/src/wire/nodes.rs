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

/// What `POST /api/nodes/{node}/ingress` gives an operator: the credential
/// an edge on that node (`rampart ingress`) syncs with, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IngressCredential {
    pub node: String,
    /// `HOST:PORT` of the platform's node listener (`runtime.registry`).
    pub server: String,
    /// `ingress/NODE:SECRET`, for `rampart ingress --credential-file`.
    pub credential: String,
}

/// What an ingress node's edge serves: the platform's sites with the task
/// addresses of their healthy replicas, the overlays to reach them on and
/// the ACME challenges being answered. Sent by the node listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRoutes {
    /// Changes whenever anything below changes.
    pub version: String,
    /// The installation's id (names the relay's container and network).
    pub installation: String,
    /// The address pools of the Swarm's overlays, as CIDR text.
    pub pools: Vec<String>,
    /// Whether the overlays are encrypted.
    pub encrypted: bool,
    /// The overlays the node's relay attaches to: its own, then the apps'.
    pub networks: Vec<String>,
    pub sites: Vec<IngressSite>,
    /// The version of the certificate set: when it differs from the one
    /// the node holds, it fetches the certificates again.
    pub certificates: String,
    /// ACME HTTP-01 challenges: token and key authorization.
    pub challenges: Vec<(String, String)>,
    /// The bans in force, which every edge enforces.
    pub bans: Vec<super::Ban>,
}

/// One site an ingress node serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressSite {
    pub hosts: Vec<String>,
    /// Task addresses, `IP:PORT`.
    pub upstreams: Vec<String>,
    pub health_path: String,
    pub health_interval_ms: u64,
    pub health_fails: u32,
    pub health_passes: u32,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
}

/// The certificates of an ingress node's sites, by the sites' first host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressCertificates {
    pub version: String,
    pub certificates: Vec<IngressCertificate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressCertificate {
    pub hosts: Vec<String>,
    /// The leaf, then its issuers.
    pub chain_pem: String,
    pub key_pem: String,
}

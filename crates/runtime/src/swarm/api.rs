//! What the Swarm's managers say about tasks and nodes, read as JSON over
//! the engine's socket, and how it becomes [`Replica`]s and [`Node`]s.
//!
//! The engine's task list carries each task's addresses on its networks
//! (`NetworksAttachments`), which bollard's task model leaves out; these
//! reads decode only the fields the platform uses, so the mapping can be
//! tested against responses recorded from a real Swarm.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::HOST;
use serde::Deserialize;

use crate::{Node, Replica, RuntimeError};

/// The largest answer read from the engine.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// GETs `path` from the engine and decodes its JSON answer.
pub(super) async fn get<T: serde::de::DeserializeOwned>(path: &str) -> Result<T, RuntimeError> {
    let unreachable = |e: &dyn std::fmt::Display| RuntimeError::Unreachable(e.to_string());
    let (mut sender, connection) = crate::docker::engine_connection().await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get(path)
        .header(HOST, "docker")
        .body(Empty::<Bytes>::new())
        .map_err(|e| RuntimeError::Engine(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| RuntimeError::Engine(format!("reading {path}: {e}")))?
        .to_bytes();
    if !status.is_success() {
        #[derive(Deserialize)]
        struct Message {
            message: String,
        }
        let message = serde_json::from_slice::<Message>(&body)
            .map(|m| m.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        return Err(RuntimeError::Engine(message));
    }
    serde_json::from_slice(&body)
        .map_err(|e| RuntimeError::Engine(format!("the engine's answer to {path}: {e}")))
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    #[serde(rename = "NodeID", default)]
    pub node_id: Option<String>,
    #[serde(rename = "Status")]
    pub status: TaskStatus,
    #[serde(rename = "DesiredState")]
    pub desired_state: String,
    #[serde(rename = "NetworksAttachments", default)]
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub(super) struct Version {
    #[serde(rename = "Index")]
    pub index: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct TaskStatus {
    #[serde(rename = "Timestamp", default)]
    pub timestamp: Option<String>,
    #[serde(rename = "State")]
    pub state: String,
    #[serde(rename = "Err", default)]
    pub err: Option<String>,
    #[serde(rename = "ContainerStatus", default)]
    pub container: Option<ContainerStatus>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ContainerStatus {
    #[serde(rename = "ExitCode", default)]
    pub exit_code: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Attachment {
    #[serde(rename = "Network")]
    pub network: AttachedNetwork,
    #[serde(rename = "Addresses", default)]
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct AttachedNetwork {
    #[serde(rename = "Spec")]
    pub spec: NetworkSpecName,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct NetworkSpecName {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Ingress", default)]
    pub ingress: bool,
}

impl Task {
    fn is_finished(&self) -> bool {
        matches!(
            self.status.state.as_str(),
            "complete" | "shutdown" | "failed" | "rejected" | "orphaned" | "remove"
        )
    }

    fn failed(&self) -> bool {
        matches!(self.status.state.as_str(), "failed" | "rejected")
            || self
                .status
                .container
                .as_ref()
                .and_then(|c| c.exit_code)
                .is_some_and(|code| code != 0)
    }

    /// Its address on its app's network (not the routing mesh).
    fn ip(&self) -> Option<std::net::IpAddr> {
        self.attachments
            .iter()
            .filter(|a| !a.network.spec.ingress && a.network.spec.name != "ingress")
            .flat_map(|a| a.addresses.iter())
            .find_map(|cidr| cidr.split('/').next()?.parse().ok())
    }
}

/// A one-task service's replica, from its tasks (oldest first or in any
/// order): the newest task the cluster wants running is the replica now;
/// each task before it that ended is a restart.
pub(super) fn replica_of(
    id: &str,
    name: &str,
    labels: &HashMap<String, String>,
    tasks: &[&Task],
) -> Replica {
    let mut tasks: Vec<&Task> = tasks.to_vec();
    tasks.sort_by_key(|t| t.version.index);
    let current = tasks
        .iter()
        .rev()
        .find(|t| t.desired_state == "running")
        .or_else(|| tasks.last())
        .copied();
    let restarts = tasks
        .iter()
        .filter(|t| current.is_none_or(|c| c.id != t.id) && t.is_finished() && t.failed())
        .count() as u64;
    let state = match current {
        None => "created",
        Some(t) if t.status.state == "running" => "running",
        Some(t) if t.is_finished() => "exited",
        // Waiting for its node, its image or its start.
        Some(_) if restarts > 0 => "restarting",
        Some(_) => "created",
    };
    let exit_code = current
        .filter(|t| t.is_finished())
        .or_else(|| tasks.iter().rev().find(|t| t.is_finished()).copied())
        .and_then(|t| t.status.container.as_ref()?.exit_code);
    Replica {
        id: id.to_owned(),
        name: name.to_owned(),
        labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        state: state.to_owned(),
        exit_code,
        ip: current.and_then(Task::ip),
        started_at: current
            .filter(|t| t.status.state == "running")
            .and_then(|t| t.status.timestamp.clone()),
        restarts,
        node: current.and_then(|t| t.node_id.clone()),
    }
}

/// Why a service's newest task is not running, when the cluster said.
pub(super) fn task_error(tasks: &[&Task]) -> Option<String> {
    tasks
        .iter()
        .max_by_key(|t| t.version.index)
        .and_then(|t| t.status.err.clone())
        .filter(|e| !e.is_empty())
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct RawNode {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Spec")]
    spec: RawNodeSpec,
    #[serde(rename = "Description", default)]
    description: Option<RawNodeDescription>,
    #[serde(rename = "Status", default)]
    status: Option<RawNodeStatus>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawNodeSpec {
    #[serde(rename = "Labels", default)]
    labels: BTreeMap<String, String>,
    #[serde(rename = "Role", default)]
    role: String,
    #[serde(rename = "Availability", default)]
    availability: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RawNodeDescription {
    #[serde(rename = "Hostname", default)]
    hostname: String,
    #[serde(rename = "Engine", default)]
    engine: Option<RawEngine>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawEngine {
    #[serde(rename = "EngineVersion", default)]
    version: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RawNodeStatus {
    #[serde(rename = "State", default)]
    state: String,
    #[serde(rename = "Addr", default)]
    addr: String,
}

impl From<RawNode> for Node {
    fn from(raw: RawNode) -> Self {
        let description = raw.description.unwrap_or(RawNodeDescription {
            hostname: String::new(),
            engine: None,
        });
        let status = raw.status.unwrap_or(RawNodeStatus {
            state: "unknown".into(),
            addr: String::new(),
        });
        Node {
            id: raw.id,
            hostname: description.hostname,
            role: raw.spec.role,
            availability: raw.spec.availability,
            state: status.state,
            addr: status.addr,
            labels: raw.spec.labels,
            engine_version: description.engine.map(|e| e.version).unwrap_or_default(),
        }
    }
}

/// Where the next replica of an app goes: the zone (value of the spread
/// label) among the nodes that may take replicas with the fewest of the
/// app's replicas on it, ties to the name; `None` when no node carries the
/// label, and the cluster's own scheduler picks a node.
pub(super) fn zone_for(
    nodes: &[Node],
    spread_label: &str,
    replica_nodes: &[String],
) -> Option<String> {
    let placeable = |n: &&Node| n.availability == "active" && n.state == "ready" && !n.is_suspect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for node in nodes.iter().filter(placeable) {
        if let Some(zone) = node.labels.get(spread_label) {
            counts.entry(zone.as_str()).or_default();
        }
    }
    for id in replica_nodes {
        if let Some(zone) = nodes
            .iter()
            .find(|n| &n.id == id)
            .and_then(|n| n.labels.get(spread_label))
            && let Some(count) = counts.get_mut(zone.as_str())
        {
            *count += 1;
        }
    }
    counts
        .into_iter()
        .min_by_key(|(zone, count)| (*count, *zone))
        .map(|(zone, _)| zone.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(json: &str) -> Vec<Task> {
        serde_json::from_str(json).unwrap()
    }

    fn nodes(json: &str) -> Vec<Node> {
        let raw: Vec<RawNode> = serde_json::from_str(json).unwrap();
        raw.into_iter().map(Node::from).collect()
    }

    #[test]
    fn a_running_task_is_a_running_replica_on_its_overlay_address() {
        let all = tasks(include_str!("recorded/tasks-running.json"));
        let refs: Vec<&Task> = all.iter().collect();
        let labels = HashMap::from([("rampart.app".to_owned(), "shop".to_owned())]);
        let r = replica_of("svc", "rampart-x-shop-r1-web-1", &labels, &refs);
        assert_eq!(r.state, "running");
        assert!(r.is_running());
        assert_eq!(r.ip, Some("10.0.1.7".parse().unwrap()));
        assert_eq!(r.restarts, 0);
        assert_eq!(r.node.as_deref(), Some("zfyxj7vwlfgu0p2ere8v99cg9"));
        assert_eq!(r.label("rampart.app"), Some("shop"));
    }

    #[test]
    fn failed_tasks_before_the_current_one_count_as_restarts() {
        let all = tasks(include_str!("recorded/tasks-crashing.json"));
        let refs: Vec<&Task> = all.iter().collect();
        let r = replica_of("svc", "crashy", &HashMap::new(), &refs);
        // Four tasks exited with status 3; the fifth runs.
        assert_eq!(r.restarts, 4, "{r:?}");
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.state, "running");
        assert_eq!(task_error(&refs), None, "the newest task has not failed");
        // Without the running task, the newest failure is the state.
        let ended: Vec<&Task> = refs
            .iter()
            .copied()
            .filter(|t| t.status.state != "running")
            .collect();
        let r = replica_of("svc", "crashy", &HashMap::new(), &ended);
        assert_eq!(r.state, "exited");
        assert_eq!(r.restarts, 3);
        assert_eq!(
            task_error(&ended).as_deref(),
            Some("task: non-zero exit (3)")
        );
    }

    /// One node recorded from a real single-node Swarm, and two workers
    /// made from it by hand (another zone, a suspect, a drained node).
    #[test]
    fn nodes_decode_with_their_labels_and_availability() {
        let list = nodes(include_str!("recorded/nodes-three.json"));
        assert_eq!(list.len(), 3);
        let drained = list.iter().find(|n| n.hostname == "node-c").unwrap();
        assert_eq!(drained.availability, "drain");
        assert_eq!(list[0].role, "manager");
        assert_eq!(list[0].engine_version, "20.10.24+dfsg1");
        assert!(list.iter().any(Node::is_suspect));
    }

    #[test]
    fn replicas_go_to_the_emptiest_zone_of_placeable_nodes() {
        let list = nodes(include_str!("recorded/nodes-three.json"));
        // node-a: zone a, active; node-b: zone b, active but suspect;
        // node-c: zone c, drained. Only zone a may take replicas.
        assert_eq!(zone_for(&list, "zone", &[]), Some("a".into()));
        let mut open = list.clone();
        for n in &mut open {
            n.availability = "active".into();
            n.labels.remove(crate::LABEL_SUSPECT);
        }
        let a = open[0].id.clone();
        let b = open[1].id.clone();
        assert_eq!(zone_for(&open, "zone", &[]), Some("a".into()));
        assert_eq!(
            zone_for(&open, "zone", std::slice::from_ref(&a)),
            Some("b".into())
        );
        assert_eq!(
            zone_for(&open, "zone", &[a.clone(), b.clone()]),
            Some("c".into())
        );
        assert_eq!(zone_for(&open, "rack", &[a]), None, "no node has the label");
    }
}

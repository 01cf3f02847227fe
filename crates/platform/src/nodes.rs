//! The machines of a Swarm: listing, labels, and evacuation.
//!
//! A drain never leaves an app short: the node first stops taking new
//! tasks (`pause`), then each app's replicas on it are replaced by fresh
//! ones of the live release on other nodes, which pass their health checks
//! and enter the edge before the old ones leave the route table, finish
//! their requests and stop. Only then is the node set to `drain`, which
//! moves whatever else runs there. When a replacement cannot start (no
//! other node may take it), the node returns to what it was and the drain
//! fails, with every replica still serving. `--suspect` also labels the
//! node, once it is empty, so that nothing is placed on it again until an
//! admin activates it.
//!
//! Labels change only on nodes without replicas: the Swarm stops at once
//! every task whose placement constraints a label change breaks.

use std::collections::BTreeMap;

use rampart_core::audit::Outcome;
use rampart_core::deploy::WEB;
use rampart_core::{Action, wire};
use rampart_runtime::{LABEL_SUSPECT, Node, NodeChange, Replica};
use rampart_store::AppRow;

use crate::controller::{Engine, Served};
use crate::deploy::{Run, STOP_GRACE};
use crate::{Acting, Error, Platform};

/// Node labels an admin may set by hand: a name of letters, digits, dots,
/// dashes and underscores; the platform's own (`rampart.`) are not.
fn check_label(key: &str, value: Option<&str>) -> Result<(), Error> {
    let plain = |text: &str| {
        !text.is_empty()
            && text.len() <= 128
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if !plain(key) {
        return Err(Error::Invalid(format!(
            "{key:?} is not a label name (letters, digits, '.', '-', '_')"
        )));
    }
    if key.starts_with("rampart.") {
        return Err(Error::Invalid(format!(
            "{key:?} is the platform's own label; `rampart nodes drain --suspect` and `activate` set it"
        )));
    }
    if let Some(value) = value
        && !plain(value)
    {
        return Err(Error::Invalid(format!(
            "{value:?} is not a label value (letters, digits, '.', '-', '_')"
        )));
    }
    Ok(())
}

/// The node an admin named: by id, a unique id prefix of at least four
/// characters, or its hostname.
pub(crate) fn find<'a>(nodes: &'a [Node], name: &str) -> Result<&'a Node, Error> {
    if let Some(node) = nodes.iter().find(|n| n.id == name) {
        return Ok(node);
    }
    let matches: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.hostname == name || (name.len() >= 4 && n.id.starts_with(name)))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::NotFound(format!("there is no node {name:?}"))),
        _ => Err(Error::Invalid(format!(
            "{name:?} names {} nodes; use the node's id",
            matches.len()
        ))),
    }
}

fn node_view(node: &Node, replicas: &[Replica]) -> wire::Node {
    wire::Node {
        id: node.id.clone(),
        hostname: node.hostname.clone(),
        role: node.role.clone(),
        availability: node.availability.clone(),
        state: node.state.clone(),
        addr: node.addr.clone(),
        labels: node.labels.clone(),
        suspect: node.is_suspect(),
        engine_version: node.engine_version.clone(),
        replicas: replicas
            .iter()
            .filter(|r| r.node.as_deref() == Some(node.id.as_str()))
            .count() as u32,
    }
}

/// The replicas of `replicas` on `node`, by process.
fn on_node<'a>(replicas: &'a [Replica], node: &str) -> (Vec<&'a Replica>, BTreeMap<String, u32>) {
    let mut web = Vec::new();
    let mut others: BTreeMap<String, u32> = BTreeMap::new();
    for r in replicas.iter().filter(|r| r.node.as_deref() == Some(node)) {
        if r.process() == WEB {
            web.push(r);
        } else {
            *others.entry(r.process().to_owned()).or_default() += 1;
        }
    }
    (web, others)
}

impl Platform {
    fn swarm_engine(&self) -> Result<&Engine, Error> {
        let engine = self.engine()?;
        if engine.runtime.backend() != "swarm" {
            return Err(Error::Invalid(
                rampart_runtime::RuntimeError::NotClustered.to_string(),
            ));
        }
        Ok(engine)
    }

    pub async fn nodes(&self) -> Result<Vec<wire::Node>, Error> {
        let engine = self.swarm_engine()?;
        let nodes = engine.runtime.nodes().await?;
        let replicas = engine.replicas(None).await?;
        Ok(nodes.iter().map(|n| node_view(n, &replicas)).collect())
    }

    async fn node_now(&self, engine: &Engine, id: &str) -> Result<wire::Node, Error> {
        let nodes = engine.runtime.nodes().await?;
        let replicas = engine.replicas(None).await?;
        let node = find(&nodes, id)?;
        Ok(node_view(node, &replicas))
    }

    /// Sets (`Some`) or removes a label of a node: zones and pools that
    /// placement reads.
    pub async fn label_node(
        &self,
        acting: Acting<'_>,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<wire::Node, Error> {
        check_label(key, value)?;
        let engine = self.swarm_engine()?;
        let nodes = engine.runtime.nodes().await?;
        let target = find(&nodes, node)?.clone();
        // The Swarm stops at once every task whose placement a label change
        // breaks (a zone that moves): never under replicas that serve.
        let running = node_view(&target, &engine.replicas(None).await?).replicas;
        if running > 0 {
            return Err(Error::Conflict(format!(
                "{} runs {running} replica(s), which the Swarm would stop at once if their placement no longer matched; drain it first (`rampart nodes drain`), label it, then activate it",
                target.hostname
            )));
        }
        engine
            .runtime
            .update_node(
                &target.id,
                &NodeChange::Label(key.to_owned(), value.map(str::to_owned)),
            )
            .await?;
        let what = match value {
            Some(value) => format!("label {key}={value}"),
            None => format!("label {key} removed"),
        };
        self.append(self.record(
            acting,
            Action::NodeManage,
            format!("nodes/{}: {what}", target.hostname),
        ))
        .await;
        self.node_now(engine, &target.id).await
    }

    /// Moves every replica off a node, with no request failing, and sets
    /// it to `drain`; with `suspect`, nothing is placed on it again until
    /// it is activated.
    pub async fn drain_node(
        &self,
        acting: Acting<'_>,
        node: &str,
        suspect: bool,
    ) -> Result<wire::NodeDrained, Error> {
        let engine = self.swarm_engine()?;
        let nodes = engine.runtime.nodes().await?;
        let target = find(&nodes, node)?.clone();
        let target_name = format!("nodes/{}", target.hostname);
        engine
            .runtime
            .update_node(&target.id, &NodeChange::Availability("pause".into()))
            .await?;
        let mut moved = 0;
        let mut failure = None;
        for app in self.store.apps().await? {
            match self.evacuate(engine, &app, &target.id).await {
                Ok(n) => moved += n,
                Err(error) => {
                    failure = Some((app.name.to_string(), error));
                    break;
                }
            }
        }
        if let Some((app, error)) = failure {
            let restore = if target.availability == "drain" {
                "drain"
            } else {
                "active"
            };
            if let Err(e) = engine
                .runtime
                .update_node(&target.id, &NodeChange::Availability(restore.into()))
                .await
            {
                tracing::error!(node = %target.hostname, error = %e, "cannot restore a node after a failed drain");
            }
            let reason = format!(
                "cannot move {app}'s replicas off {}: {error}; the node is {restore} again and every replica still serves",
                target.hostname
            );
            self.append(Self::record_by(
                acting.caller.user_id.as_str(),
                Action::NodeManage,
                format!("{target_name}: drain failed after moving {moved} replica(s)"),
                Outcome::Failed,
                acting.request_id,
            ))
            .await;
            return Err(Error::Unavailable(reason));
        }
        // Only now: the Swarm stops at once every task whose constraints a
        // label change breaks, and each replica's constraints keep it off
        // suspect nodes.
        if suspect {
            engine
                .runtime
                .update_node(
                    &target.id,
                    &NodeChange::Label(LABEL_SUSPECT.to_owned(), Some("true".to_owned())),
                )
                .await?;
        }
        engine
            .runtime
            .update_node(&target.id, &NodeChange::Availability("drain".into()))
            .await?;
        let suspect_note = if suspect { ", marked suspect" } else { "" };
        self.append(self.record(
            acting,
            Action::NodeManage,
            format!("{target_name}: drained, {moved} replica(s) moved{suspect_note}"),
        ))
        .await;
        Ok(wire::NodeDrained {
            node: self.node_now(engine, &target.id).await?,
            moved,
        })
    }

    /// Lets a node take replicas again and clears a suspicion.
    pub async fn activate_node(&self, acting: Acting<'_>, node: &str) -> Result<wire::Node, Error> {
        let engine = self.swarm_engine()?;
        let nodes = engine.runtime.nodes().await?;
        let target = find(&nodes, node)?.clone();
        if target.is_suspect() {
            engine
                .runtime
                .update_node(
                    &target.id,
                    &NodeChange::Label(LABEL_SUSPECT.to_owned(), None),
                )
                .await?;
        }
        engine
            .runtime
            .update_node(&target.id, &NodeChange::Availability("active".into()))
            .await?;
        let cleared = if target.is_suspect() {
            ", suspicion cleared"
        } else {
            ""
        };
        self.append(self.record(
            acting,
            Action::NodeManage,
            format!("nodes/{}: activated{cleared}", target.hostname),
        ))
        .await;
        self.node_now(engine, &target.id).await
    }

    /// Replaces an app's replicas on `node` by healthy ones elsewhere;
    /// returns how many moved.
    async fn evacuate(&self, engine: &Engine, app: &AppRow, node: &str) -> Result<u32, Error> {
        let lock = engine.lock_for(&app.id);
        let _turn = lock.lock().await;
        let replicas = engine.replicas(Some(&app.name)).await?;
        let (web, others) = on_node(&replicas, node);
        if web.is_empty() && others.is_empty() {
            return Ok(0);
        }
        let Some(number) = app.live_release else {
            return Ok(0);
        };
        let release = self
            .store
            .release(&app.id, number)
            .await?
            .ok_or_else(|| Error::NotFound(format!("release {number} of {}", app.name)))?;
        let env = self.deploys().replica_env(app).await?;
        let run = Run {
            release: number,
            image_id: &release.image_id,
            env: &env,
            processes: &release.config.processes,
        };
        let unavailable = |f: crate::deploy::RolloutFailure| Error::Unavailable(f.to_string());
        let (progress, _lines) = tokio::sync::mpsc::unbounded_channel();
        let deploys = self.deploys();
        let data = deploys
            .ready_for(engine, app, &release.image_id)
            .await
            .map_err(unavailable)?;
        let fresh = deploys
            .start_healthy(engine, app, run, web.len() as u32, &data, &progress)
            .await
            .map_err(unavailable)?;
        let workers = match deploys
            .start_processes(engine, app, run, &others, &data, &progress)
            .await
        {
            Ok(workers) => workers,
            Err(failure) => {
                for r in &fresh {
                    let _ = engine.runtime.remove(&r.container, STOP_GRACE).await;
                }
                return Err(unavailable(failure));
            }
        };
        let before = engine.serving_of(&app.id);
        let (leaving, staying): (Vec<Served>, Vec<Served>) = before
            .iter()
            .cloned()
            .partition(|s| web.iter().any(|r| r.id == s.container));
        engine.set_serving(&app.id, staying.into_iter().chain(fresh.clone()).collect());
        if let Err(error) = self.publish().await {
            engine.set_serving(&app.id, before);
            for r in &fresh {
                let _ = engine.runtime.remove(&r.container, STOP_GRACE).await;
            }
            for r in &workers {
                let _ = engine.runtime.remove(&r.id, STOP_GRACE).await;
            }
            return Err(error);
        }
        deploys.retire(engine, app, &leaving).await;
        // Web replicas that were not serving, and the other processes.
        for r in replicas
            .iter()
            .filter(|r| r.node.as_deref() == Some(node))
            .filter(|r| !leaving.iter().any(|s| s.container == r.id))
        {
            let _ = engine.runtime.remove(&r.id, STOP_GRACE).await;
        }
        let moved = (web.len() + workers.len()) as u32;
        self.event(
            app,
            "evacuate",
            format!("moved {moved} replica(s) of release {number} off node {node}"),
        )
        .await;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, hostname: &str) -> Node {
        Node {
            id: id.into(),
            hostname: hostname.into(),
            role: "worker".into(),
            availability: "active".into(),
            state: "ready".into(),
            addr: String::new(),
            labels: BTreeMap::new(),
            engine_version: String::new(),
        }
    }

    fn replica(id: &str, node: &str, process: &str) -> Replica {
        Replica {
            id: id.into(),
            name: id.into(),
            labels: BTreeMap::from([("rampart.process".to_owned(), process.to_owned())]),
            state: "running".into(),
            exit_code: None,
            ip: None,
            started_at: None,
            restarts: 0,
            node: Some(node.into()),
        }
    }

    #[test]
    fn nodes_are_named_by_id_prefix_or_hostname_and_never_ambiguously() {
        let nodes = [
            node("abcd1111", "web-1"),
            node("abcd2222", "web-2"),
            node("ffff0000", "abcd"),
        ];
        assert_eq!(find(&nodes, "web-2").unwrap().id, "abcd2222");
        assert_eq!(find(&nodes, "abcd1").unwrap().id, "abcd1111");
        assert_eq!(find(&nodes, "ffff0000").unwrap().hostname, "abcd");
        assert!(matches!(find(&nodes, "abcd"), Err(Error::Invalid(_))));
        assert!(matches!(find(&nodes, "ab"), Err(Error::NotFound(_))));
        assert!(matches!(find(&nodes, "nope"), Err(Error::NotFound(_))));
    }

    #[test]
    fn only_the_replicas_on_the_drained_node_move() {
        let replicas = [
            replica("a", "n1", "web"),
            replica("b", "n2", "web"),
            replica("c", "n1", "worker"),
            replica("d", "n1", "worker"),
            replica("e", "n2", "worker"),
        ];
        let (web, others) = on_node(&replicas, "n1");
        assert_eq!(web.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(others, BTreeMap::from([("worker".to_owned(), 2)]));
        let (web, others) = on_node(&replicas, "n3");
        assert!(web.is_empty() && others.is_empty());
    }

    #[test]
    fn labels_are_plain_and_the_platforms_own_are_refused() {
        assert!(check_label("zone", Some("eu-1a")).is_ok());
        assert!(check_label("zone", None).is_ok());
        for (key, value) in [
            ("rampart.suspect", Some("false")),
            ("", Some("x")),
            ("zone", Some("a b")),
            ("zo=ne", Some("a")),
            ("zone", Some("")),
            ("zone", Some("\u{1b}[2J")),
        ] {
            assert!(check_label(key, value).is_err(), "{key:?}={value:?}");
        }
    }
}

//! Reconciliation: make what runs match what the store says should run.
//!
//! At start and then periodically, every app is compared with the engine's
//! containers carrying this installation's label: replicas of the live
//! release that answer their health check serve, missing ones are started,
//! extra ones and replicas of any other release are removed, and containers
//! or networks of apps that no longer exist go too. A deploy interrupted by
//! a crash is marked failed at the next start, so the previous release —
//! still the live one in the store — is what converges.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rampart_core::audit::Outcome;
use rampart_core::deploy::ReleaseStatus;
use rampart_core::deploy::WEB;
use rampart_core::time::Timestamp;
use rampart_core::{Action, RequestId};
use rampart_runtime::{LABEL_APP, LABEL_INSTALLATION, LABEL_TASK, Replica};
use rampart_store::{AppEvent, AppRow, ReleaseRow};
use tokio::sync::watch;

use crate::alerts::Condition;
use crate::controller::{Engine, Served, probe, release_of};
use crate::{Error, Platform};
use rampart_watch::alert::Severity;

/// Restarts of one replica after which it is said to be crash-looping.
const CRASH_LOOP_RESTARTS: u64 = 3;

impl Platform {
    /// Marks deploys left unfinished by a crash as failed; run once at start,
    /// before the first reconciliation.
    pub async fn fail_interrupted_deploys(&self) -> Result<(), Error> {
        for release in self.store.unfinished_releases().await? {
            let record = Self::record_by(
                "system",
                Action::Deploy,
                format!("apps/{}/releases/{}/failed", release.app_id, release.number),
                Outcome::Failed,
                &RequestId::generate(),
            );
            let at = Timestamp::now().to_rfc3339();
            let reason = Some("interrupted: the platform stopped during the deploy");
            self.committed(
                self.store
                    .finish_release(
                        &release.app_id,
                        release.number,
                        ReleaseStatus::Failed,
                        reason,
                        &at,
                        record,
                    )
                    .await,
            )
            .await?;
            tracing::warn!(app = %release.app_id, release = release.number, "marked an interrupted deploy failed");
        }
        Ok(())
    }

    pub(crate) async fn event(&self, app: &AppRow, kind: &str, message: String) {
        tracing::info!(app = %app.name, kind, %message, "app event");
        let event = AppEvent {
            time: Timestamp::now().to_rfc3339(),
            kind: kind.to_owned(),
            message,
        };
        if let Err(error) = self.store.add_event(&app.id, &event).await {
            tracing::error!(%error, "cannot record an app event");
        }
    }

    /// Brings one app to its desired state. Waits for the app's turn, so it
    /// never races a deploy.
    pub(crate) async fn converge(&self, app: &AppRow) -> Result<(), Error> {
        let engine = self.engine()?;
        let lock = engine.lock_for(&app.id);
        let _turn = lock.lock().await;
        // Settings may have changed while we waited.
        let Some(app) = self.store.app(&app.name).await? else {
            return Ok(());
        };
        self.converge_locked(&app).await
    }

    async fn converge_locked(&self, app: &AppRow) -> Result<(), Error> {
        let engine = self.engine()?;
        // A release phase runs under this lock; one found now was left by a
        // platform that stopped during its deploy.
        // So is a container an image's files were being read through.
        for kind in ["release", "inventory"] {
            let leftover = [
                (LABEL_INSTALLATION, engine.installation.as_str()),
                (LABEL_APP, app.name.as_str()),
                (LABEL_TASK, kind),
            ];
            for task in engine.runtime.replicas(&leftover).await? {
                tracing::info!(app = %app.name, task = %task.name, "removing an interrupted {kind} task");
                let _ = engine.runtime.remove(&task.id, Duration::ZERO).await;
            }
        }
        let replicas = engine.replicas(Some(&app.name)).await?;
        let live = app.live_release;
        let port = app.settings.port;
        let host = crate::controller::health_host(app);
        let before = engine.serving_of(&app.id);

        // Watch for crashes.
        for r in &replicas {
            let seen = engine
                .restarts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(r.id.clone(), r.restarts)
                .unwrap_or(0);
            if r.restarts > seen {
                let code = r
                    .exit_code
                    .map_or_else(String::new, |c| format!(", last exit status {c}"));
                let (kind, what) = if r.restarts >= CRASH_LOOP_RESTARTS {
                    ("crash_loop", "is crash-looping")
                } else {
                    ("restart", "crashed and was restarted")
                };
                let message = format!("replica {} {what} ({} restarts{code})", r.name, r.restarts);
                if kind == "crash_loop" {
                    let summary = format!("{}: {message}", app.name);
                    self.alerts()
                        .raise(Condition::of_app(
                            "crash_loop",
                            Severity::Critical,
                            app.name.as_str(),
                            summary,
                        ))
                        .await;
                }
                self.event(app, kind, message).await;
            }
        }

        let live_release = match live {
            Some(number) => self.store.release(&app.id, number).await?,
            None => None,
        };
        let (web, others): (Vec<Replica>, Vec<Replica>) =
            replicas.into_iter().partition(|r| r.process() == WEB);
        let mut keep: Vec<Served> = Vec::new();
        let mut waiting = 0u32;
        let mut remove = Vec::new();
        for r in &web {
            let current = live.is_some() && release_of(r) == live;
            if !current {
                remove.push(r.clone());
                continue;
            }
            match r.state.as_str() {
                "running" | "restarting" => {}
                _ => {
                    remove.push(r.clone());
                    continue;
                }
            }
            let addr = r.ip.map(|ip| std::net::SocketAddr::new(ip, port));
            let serving_now = before.iter().any(|s| s.container == r.id);
            let healthy = match addr {
                Some(addr) if r.is_running() => {
                    serving_now
                        || probe(
                            &engine.edge.dialer(),
                            addr,
                            &app.settings.health_path,
                            &host,
                        )
                        .await
                }
                _ => false,
            };
            match (healthy, addr) {
                (true, Some(addr)) => keep.push(Served {
                    container: r.id.clone(),
                    addr,
                    release: live.unwrap_or(0),
                }),
                // Restarting or not answering yet: the engine restarts it
                // with backoff, and the next pass looks again.
                _ => waiting += 1,
            }
        }
        let desired = if live.is_some() {
            app.settings.replicas
        } else {
            0
        };
        let have = keep.len() as u32 + waiting;

        if have < desired
            && let Some(number) = live
            && let Some(release) = &live_release
        {
            let missing = desired - have;
            let env = self.deploys().replica_env(app).await?;
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let started = match self
                .deploys()
                .ready_for(engine, app, &release.image_id)
                .await
            {
                Ok(data) => {
                    self.deploys()
                        .start_healthy(
                            engine,
                            app,
                            crate::deploy::Run {
                                release: number,
                                image_id: &release.image_id,
                                env: &env,
                                processes: &release.config.processes,
                            },
                            missing,
                            &data,
                            &tx,
                        )
                        .await
                }
                Err(failure) => Err(failure),
            };
            match started {
                Ok(fresh) => {
                    self.alerts()
                        .resolve("app_down", Some(app.name.as_str()), None)
                        .await;
                    self.event(
                        app,
                        "repair",
                        format!("started {missing} replica(s) of release {number}"),
                    )
                    .await;
                    keep.extend(fresh);
                }
                Err(reason) => {
                    let message = format!("cannot start replicas of release {number}: {reason}");
                    let summary = format!("{}: {message}", app.name);
                    self.alerts()
                        .raise(Condition::of_app(
                            "app_down",
                            Severity::Critical,
                            app.name.as_str(),
                            summary,
                        ))
                        .await;
                    self.event(app, "repair_failed", message).await;
                }
            }
        }
        let mut extra = Vec::new();
        while keep.len() as u32 > desired {
            if let Some(s) = keep.pop() {
                extra.push(s);
            }
        }

        // A restarted replica may come back on another address.
        let changed = {
            let a: HashSet<_> = before.iter().map(|s| (&s.container, s.addr)).collect();
            let b: HashSet<_> = keep.iter().map(|s| (&s.container, s.addr)).collect();
            a != b
        };
        if changed {
            engine.set_serving(&app.id, keep);
            self.publish().await?;
        }
        self.deploys().retire(engine, app, &extra).await;
        self.converge_processes(engine, app, live_release.as_ref(), others)
            .await?;
        for r in remove {
            tracing::info!(app = %app.name, replica = %r.name, "removing a replica that should not run");
            let _ = engine
                .runtime
                .remove(&r.id, crate::deploy::STOP_GRACE)
                .await;
        }
        Ok(())
    }

    /// The live release's processes other than `web`: as many replicas of
    /// each as the app wants, none of any other release or process.
    async fn converge_processes(
        &self,
        engine: &Engine,
        app: &AppRow,
        live: Option<&ReleaseRow>,
        replicas: Vec<Replica>,
    ) -> Result<(), Error> {
        let wanted = live.map_or_else(BTreeMap::new, |r| {
            crate::deploy::wanted_processes(&app.settings, &r.config.processes)
        });
        let mut running: BTreeMap<String, u32> = BTreeMap::new();
        let mut remove = Vec::new();
        for r in replicas {
            let current = live.is_some_and(|l| release_of(&r) == Some(l.number));
            let alive = matches!(r.state.as_str(), "running" | "restarting");
            let room = wanted.get(r.process()).copied().unwrap_or(0);
            let have = running.entry(r.process().to_owned()).or_default();
            if current && alive && *have < room {
                *have += 1;
            } else {
                remove.push(r);
            }
        }
        for r in remove {
            tracing::info!(app = %app.name, replica = %r.name, "stopping a process replica that should not run");
            let _ = engine
                .runtime
                .remove(&r.id, crate::deploy::STOP_GRACE)
                .await;
        }
        let missing: BTreeMap<String, u32> = wanted
            .iter()
            .map(|(name, n)| {
                (
                    name.clone(),
                    n.saturating_sub(running.get(name).copied().unwrap_or(0)),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        if let (Some(release), false) = (live, missing.is_empty()) {
            let env = self.deploys().replica_env(app).await?;
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let run = crate::deploy::Run {
                release: release.number,
                image_id: &release.image_id,
                env: &env,
                processes: &release.config.processes,
            };
            let what: Vec<String> = missing.iter().map(|(p, n)| format!("{n} {p}")).collect();
            let started = match self
                .deploys()
                .ready_for(engine, app, &release.image_id)
                .await
            {
                Ok(data) => {
                    self.deploys()
                        .start_processes(engine, app, run, &missing, &data, &tx)
                        .await
                }
                Err(failure) => Err(failure),
            };
            let (kind, message) = match started {
                Ok(_) => (
                    "repair",
                    format!("started {} of release {}", what.join(", "), release.number),
                ),
                Err(reason) => (
                    "repair_failed",
                    format!(
                        "cannot start {} of release {}: {reason}",
                        what.join(", "),
                        release.number
                    ),
                ),
            };
            self.event(app, kind, message).await;
        }
        Ok(())
    }

    /// One pass over every app, and removal of what belongs to no app.
    pub async fn reconcile(&self) -> Result<(), Error> {
        let engine = self.engine()?;
        let apps = self.store.apps().await?;
        let names: HashSet<String> = apps.iter().map(|a| a.name.to_string()).collect();
        for app in &apps {
            if let Err(error) = self.converge(app).await {
                tracing::warn!(app = %app.name, %error, "cannot reconcile the app");
            }
        }
        let labels = [(LABEL_INSTALLATION, engine.installation.as_str())];
        let all = engine.runtime.replicas(&labels).await?;
        for r in &all {
            if !r.label(LABEL_APP).is_some_and(|a| names.contains(a)) {
                tracing::info!(replica = %r.name, "removing a replica of an app that no longer exists");
                let _ = engine
                    .runtime
                    .remove(&r.id, crate::deploy::STOP_GRACE)
                    .await;
            }
        }
        // Forget the restart counts of replicas that are gone.
        let alive: HashSet<&str> = all.iter().map(|r| r.id.as_str()).collect();
        engine
            .restarts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| alive.contains(id.as_str()));
        for network in engine.runtime.networks(&labels).await? {
            let app = network
                .strip_prefix(&format!("rampart-{}-", engine.installation))
                .map(|rest| rest.trim_end_matches("-egress"));
            if !app.is_some_and(|a| names.contains(a)) {
                let _ = engine.runtime.remove_network(&network).await;
            }
        }
        Ok(())
    }

    /// Reconciles every `every` until `stop` turns true.
    pub async fn reconcile_forever(
        self: Arc<Self>,
        every: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if let Err(error) = self.reconcile().await {
                tracing::warn!(%error, "reconciliation failed; will retry");
            }
        }
    }
}

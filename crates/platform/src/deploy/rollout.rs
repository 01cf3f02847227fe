//! Rollouts: new replicas of every process started beside the old ones,
//! web replicas health-checked, the edge's table swapped, the old replicas
//! drained and stopped. Any failure before the swap removes what was
//! started and leaves the previous release serving.

use super::*;

impl Deploys<'_> {
    /// Starts `count` replicas of a release and waits for each to pass its
    /// health check. On failure every replica started is removed and the
    /// reason returned.
    pub(crate) async fn start_healthy(
        &self,
        engine: &Engine,
        app: &AppRow,
        run: Run<'_>,
        count: u32,
        data: &crate::data::DataMounts,
        progress: &UnboundedSender<DeployLine>,
    ) -> Result<Vec<Served>, RolloutFailure> {
        let release = run.release;
        let mut started = Vec::new();
        let mut failure = None;
        // All at once: each waits on its engine (a Swarm's scheduling
        // above all), not on the others.
        let specs: Vec<_> = (0..count)
            .map(|_| self.replica_spec(engine, app, run, WEB, data))
            .collect();
        let starts = specs.iter().map(|spec| engine.runtime.start(spec));
        for outcome in futures::future::join_all(starts).await {
            match outcome {
                Ok(replica) => {
                    step(progress, format!("started replica {}", replica.name));
                    started.push(replica);
                }
                Err(e) => {
                    if failure.is_none() {
                        failure = Some(RolloutFailure::Start(e));
                    }
                }
            }
        }
        if failure.is_none() {
            let checks = started
                .iter()
                .map(|r| self.wait_healthy(engine, app, r, progress));
            let results = futures::future::join_all(checks).await;
            failure = results.into_iter().find_map(Result::err);
        }
        if let Some(reason) = failure {
            for replica in &started {
                let _ = engine.runtime.remove(&replica.id, Duration::ZERO).await;
            }
            return Err(reason);
        }
        Ok(started
            .iter()
            .filter_map(|r| {
                Some(Served {
                    container: r.id.clone(),
                    addr: address(r, app.settings.port)?,
                    release,
                })
            })
            .collect())
    }

    /// Starts `count` replicas of each named process of a release (never
    /// `web`) and waits until each has kept running for [`WORKER_SETTLE`];
    /// they get no traffic and have no health check. On failure every one
    /// started is removed and the reason returned.
    pub(crate) async fn start_processes(
        &self,
        engine: &Engine,
        app: &AppRow,
        run: Run<'_>,
        counts: &BTreeMap<String, u32>,
        data: &crate::data::DataMounts,
        progress: &UnboundedSender<DeployLine>,
    ) -> Result<Vec<Replica>, RolloutFailure> {
        let mut started = Vec::new();
        if counts.values().all(|n| *n == 0) {
            return Ok(started);
        }
        let outcome = async {
            for (process, count) in counts {
                for _ in 0..*count {
                    let spec = self.replica_spec(engine, app, run, process, data);
                    let replica = engine
                        .runtime
                        .start(&spec)
                        .await
                        .map_err(RolloutFailure::Start)?;
                    step(
                        progress,
                        format!("started {process} replica {}", replica.name),
                    );
                    started.push(replica);
                }
            }
            tokio::time::sleep(WORKER_SETTLE).await;
            for replica in &started {
                self.still_running(engine, replica).await?;
                engine.runtime.keep_running(&replica.id).await?;
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => Ok(started),
            Err(failure) => {
                for replica in &started {
                    let _ = engine.runtime.remove(&replica.id, Duration::ZERO).await;
                }
                Err(failure)
            }
        }
    }

    pub(super) async fn wait_healthy(
        &self,
        engine: &Engine,
        app: &AppRow,
        replica: &Replica,
        progress: &UnboundedSender<DeployLine>,
    ) -> Result<(), RolloutFailure> {
        let settings = &app.settings;
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(settings.health_timeout_secs));
        let host = crate::controller::health_host(app);
        loop {
            let current = self.still_running(engine, replica).await?;
            if let Some(addr) = address(&current, settings.port)
                && probe(&engine.edge.dialer(), addr, &settings.health_path, &host).await
            {
                step(progress, format!("replica {} is healthy", replica.name));
                engine.runtime.keep_running(&replica.id).await?;
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RolloutFailure::Unhealthy {
                    name: replica.name.clone(),
                    path: settings.health_path.clone(),
                    port: settings.port,
                    secs: settings.health_timeout_secs,
                    log: self.last_lines(engine, &replica.id).await,
                });
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    /// The app's network and data, ready for containers of a release of
    /// `image_id`.
    pub(crate) async fn ready_for(
        &self,
        engine: &Engine,
        app: &AppRow,
        image_id: &str,
    ) -> Result<crate::data::DataMounts, RolloutFailure> {
        engine
            .runtime
            .ensure_network(&engine.network(&app.name, app.settings.egress))
            .await?;
        self.p
            .prepare_data(engine, app, image_id)
            .await
            .map_err(RolloutFailure::Data)
    }

    /// A new replica as the engine sees it now, or why it is not running
    /// (it exited, or was restarted, with its last lines).
    pub(super) async fn still_running(
        &self,
        engine: &Engine,
        replica: &Replica,
    ) -> Result<Replica, RolloutFailure> {
        let current = engine
            .runtime
            .replica(&replica.id)
            .await?
            .ok_or_else(|| RolloutFailure::Vanished(replica.name.clone()))?;
        if !current.is_running() || current.restarts > 0 {
            return Err(RolloutFailure::Exited {
                name: replica.name.clone(),
                status: current.exit_code,
                log: self.last_lines(engine, &replica.id).await,
            });
        }
        Ok(current)
    }

    /// The last lines a replica printed, formatted for a failure reason.
    pub(super) async fn last_lines(&self, engine: &Engine, id: &str) -> String {
        let query = LogQuery {
            tail: Some(FAILED_LOG_LINES),
            ..Default::default()
        };
        let lines: Vec<String> = engine
            .runtime
            .logs(id, query)
            .filter_map(|l| async move { l.ok().map(|l| l.text) })
            .collect()
            .await;
        if lines.is_empty() {
            String::new()
        } else {
            format!("{}{}", rampart_core::deploy::LOG_LINES, lines.join("\n"))
        }
    }

    /// Replaces the serving replicas of `app` with healthy ones of
    /// `release`.
    pub(super) async fn rollout(
        &self,
        engine: &Engine,
        app: &AppRow,
        run: Run<'_>,
        progress: &UnboundedSender<DeployLine>,
    ) -> Result<(), RolloutFailure> {
        let release = run.release;
        // Web replicas pass their health checks while the other processes
        // settle; either failing removes what the other started.
        let counts = wanted_processes(&app.settings, run.processes);
        let data = self.ready_for(engine, app, run.image_id).await?;
        let (fresh, workers) = tokio::join!(
            self.start_healthy(engine, app, run, app.settings.replicas, &data, progress),
            self.start_processes(engine, app, run, &counts, &data, progress),
        );
        let (fresh, workers) = match (fresh, workers) {
            (Ok(fresh), Ok(workers)) => (fresh, workers),
            (Err(failure), workers) => {
                for r in workers.iter().flatten() {
                    let _ = engine.runtime.remove(&r.id, Duration::ZERO).await;
                }
                return Err(failure);
            }
            (Ok(fresh), Err(failure)) => {
                for r in &fresh {
                    let _ = engine.runtime.remove(&r.container, Duration::ZERO).await;
                }
                return Err(failure);
            }
        };
        let old = engine.serving_of(&app.id);
        engine.set_serving(&app.id, fresh.clone());
        if let Err(error) = self.p.publish().await {
            engine.set_serving(&app.id, old);
            for r in &fresh {
                let _ = engine.runtime.remove(&r.container, Duration::ZERO).await;
            }
            for r in &workers {
                let _ = engine.runtime.remove(&r.id, Duration::ZERO).await;
            }
            return Err(RolloutFailure::Publish(error));
        }
        step(progress, format!("release {release} receives traffic"));
        self.retire(engine, app, &old).await;
        // The old release's other processes stop (SIGTERM, then the grace),
        // and replicas of other releases that were not serving (left by a
        // crash or a failed repair) go too.
        if let Ok(all) = engine.replicas(Some(&app.name)).await {
            for r in all.iter().filter(|r| release_of(r) != Some(release)) {
                let grace = if r.process() == WEB {
                    Duration::ZERO
                } else {
                    STOP_GRACE
                };
                let _ = engine.runtime.remove(&r.id, grace).await;
            }
        }
        self.remove_unused_network(engine, app).await;
        Ok(())
    }

    /// Lets replicas that left the route table finish their requests, then
    /// stops them.
    pub(crate) async fn retire(&self, engine: &Engine, app: &AppRow, old: &[Served]) {
        if old.is_empty() {
            return;
        }
        let addrs: Vec<SocketAddr> = old.iter().map(|s| s.addr).collect();
        engine
            .drain(
                &addrs,
                Duration::from_secs(u64::from(app.settings.drain_secs)),
            )
            .await;
        for r in old {
            if let Err(error) = engine.runtime.remove(&r.container, STOP_GRACE).await {
                tracing::warn!(app = %app.name, container = %r.container, %error, "cannot remove an old replica");
            }
        }
    }

    /// Removes the app's network of the egress mode it no longer uses.
    pub(super) async fn remove_unused_network(&self, engine: &Engine, app: &AppRow) {
        let other = engine.network(&app.name, !app.settings.egress);
        let _ = engine.runtime.remove_network(&other.name).await;
    }
}

//! How an app stands: its releases, settings, replicas and events, and its
//! logs (followed across replicas as they come and go).

use super::*;

/// How often a followed log looks for replicas that came or went.
const FOLLOW_REPLICAS_EVERY: Duration = Duration::from_millis(500);

pub(super) fn line_view(replica: &str, line: rampart_runtime::LogLine) -> wire::LogLine {
    wire::LogLine {
        replica: replica.to_owned(),
        stream: line.stream.to_owned(),
        line: line.text,
    }
}

/// Follows an app's logs across replica restarts and new replicas: a
/// replica's stream ends when it exits; when it runs again its stream is
/// reopened from the last line's time, and lines already sent are skipped.
pub(super) struct Follower {
    runtime: std::sync::Arc<dyn rampart_runtime::ContainerRuntime>,
    installation: String,
    app: String,
    query: LogQuery,
    tx: tokio::sync::mpsc::Sender<wire::LogLine>,
}

impl Follower {
    async fn run(self, first: Vec<Replica>) {
        use std::collections::HashMap;
        type Time = time::OffsetDateTime;
        let mut active: HashMap<String, tokio::task::JoinHandle<Option<Time>>> = HashMap::new();
        let mut last: HashMap<String, Time> = HashMap::new();
        let mut replicas = first;
        let mut initial = true;
        loop {
            let finished: Vec<String> = active
                .iter()
                .filter(|(_, task)| task.is_finished())
                .map(|(id, _)| id.clone())
                .collect();
            for id in finished {
                if let Some(task) = active.remove(&id)
                    && let Ok(Some(time)) = task.await
                {
                    last.insert(id, time);
                }
            }
            for replica in &replicas {
                if active.contains_key(&replica.id) || (!initial && !replica.is_running()) {
                    continue;
                }
                let after = last.get(&replica.id).copied();
                let query = match (after, initial) {
                    (Some(time), _) => LogQuery {
                        since: Some(time.unix_timestamp()),
                        tail: None,
                        follow: true,
                    },
                    (None, true) => self.query,
                    (None, false) => LogQuery {
                        since: None,
                        tail: None,
                        follow: true,
                    },
                };
                let stream = self.runtime.logs(&replica.id, query);
                let tx = self.tx.clone();
                let name = replica.name.clone();
                let task = tokio::spawn(async move {
                    let mut stream = stream;
                    // A first stream: lines from before it opened were sent by
                    // its tail or are not wanted. A reopened stream carries on
                    // from the last line delivered, not from when it opened:
                    // a replica restarting as the stream opens may end it
                    // before its first lines are sent, and those lines must
                    // come with the next stream.
                    let mut newest = after.or(Some(Time::now_utc()));
                    while let Some(Ok(line)) = stream.next().await {
                        let time = line
                            .time
                            .as_deref()
                            .and_then(|t| Time::parse(t, &Rfc3339).ok());
                        // Reopened streams start at a whole second: skip
                        // what was sent before.
                        if let (Some(time), Some(after)) = (time, after)
                            && time <= after
                        {
                            continue;
                        }
                        newest = newest.max(time);
                        if tx.send(line_view(&name, line)).await.is_err() {
                            break;
                        }
                    }
                    newest
                });
                active.insert(replica.id.clone(), task);
            }
            initial = false;
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_REPLICAS_EVERY) => {}
                () = self.tx.closed() => break,
            }
            let labels = [
                (LABEL_INSTALLATION, self.installation.as_str()),
                (LABEL_APP, self.app.as_str()),
            ];
            if let Ok(mut now) = self.runtime.replicas(&labels).await {
                now.retain(|r| r.label(rampart_runtime::LABEL_TASK).is_none());
                replicas = now;
            }
        }
        for (_, task) in active {
            task.abort();
        }
    }
}

pub(super) fn release_view(row: ReleaseRow) -> wire::Release {
    wire::Release {
        number: row.number,
        image: row.image,
        image_id: row.image_id,
        status: row.status,
        reason: row.reason,
        created_by: row.created_by,
        created_at: row.created_at,
        finished_at: row.finished_at,
        env_names: row.config.env_names,
        settings: row.config.settings,
        release_command: row.config.release_command,
        processes: row.config.processes,
    }
}

impl Deploys<'_> {
    pub async fn releases(&self, app: &str) -> Result<Vec<wire::Release>, Error> {
        let row = self.p.app_row(app).await?;
        Ok(self
            .p
            .store
            .releases(&row.id)
            .await?
            .into_iter()
            .map(release_view)
            .collect())
    }

    pub async fn settings(&self, app: &str) -> Result<AppSettings, Error> {
        Ok(self.p.app_row(app).await?.settings)
    }

    /// Changes how an app runs. Replica counts take effect at once; the
    /// other settings with the next deploy.
    pub async fn configure(
        &self,
        acting: Acting<'_>,
        app: &str,
        patch: SettingsPatch,
    ) -> Result<AppSettings, Error> {
        let row = self.p.app_row(app).await?;
        let mut next = row.settings.patched(&patch).map_err(Error::Invalid)?;
        // What is set here wins over an app manifest from now on.
        next.configured
            .extend(patch.names().into_iter().map(str::to_owned));
        // Switching hardening off is not a developer's call.
        let hardening_changed = next.egress != row.settings.egress
            || next.allow_root != row.settings.allow_root
            || next.refuse_critical != row.settings.refuse_critical
            || next.placement != row.settings.placement;
        if hardening_changed && !matches!(acting.caller.role, Role::Owner | Role::Admin) {
            return Err(Error::Forbidden(
                "only owners and admins decide egress, allow_root, refuse_critical and placement"
                    .into(),
            ));
        }
        if !next.placement.is_empty()
            && self
                .p
                .engine
                .get()
                .is_none_or(|e| e.runtime.backend() != "swarm")
        {
            return Err(Error::Invalid(
                "placement places replicas on Swarm nodes; it needs runtime.backend = \"swarm\""
                    .into(),
            ));
        }
        self.p.app_limits.admit(&next).map_err(Error::Invalid)?;
        let record = self.p.record(
            acting,
            Action::AppConfigure,
            format!("apps/{}/settings", row.name),
        );
        self.p
            .committed(self.p.store.set_settings(&row.id, &next, record).await)
            .await?;
        if (patch.replicas.is_some() || patch.processes.is_some()) && self.p.engine.get().is_some()
        {
            let row = self.p.app_row(app).await?;
            self.p.converge(&row).await?;
        }
        Ok(next)
    }

    /// Replicas, health and events of an app.
    pub async fn status(&self, app: &str) -> Result<wire::AppStatus, Error> {
        let engine = self.p.engine()?;
        let row = self.p.app_row(app).await?;
        let serving = engine.serving_of(&row.id);
        let now = time::OffsetDateTime::now_utc();
        let replicas = engine
            .replicas(Some(&row.name))
            .await?
            .into_iter()
            .map(|r| {
                let started = r.started_at.as_deref().and_then(|s| {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .ok()
                });
                wire::ReplicaStatus {
                    id: r.id.chars().take(12).collect(),
                    release: release_of(&r),
                    serving: serving.iter().any(|s| s.container == r.id),
                    address: address(&r, row.settings.port).map(|a| a.to_string()),
                    uptime_secs: started
                        .filter(|_| r.is_running())
                        .map(|s| (now - s).whole_seconds().max(0) as u64),
                    started_at: r.started_at.clone(),
                    restarts: r.restarts,
                    process: r.process().to_owned(),
                    state: r.state,
                    name: r.name,
                }
            })
            .collect();
        let events = self
            .p
            .store
            .events(&row.id, 20)
            .await?
            .into_iter()
            .map(|e| wire::AppEvent {
                time: e.time,
                kind: e.kind,
                message: e.message,
            })
            .collect();
        let desired_processes = match row.live_release {
            Some(number) => match self.p.store.release(&row.id, number).await? {
                Some(live) => super::wanted_processes(&row.settings, &live.config.processes),
                None => BTreeMap::new(),
            },
            None => BTreeMap::new(),
        };
        Ok(wire::AppStatus {
            app: row.name.to_string(),
            live_release: row.live_release,
            desired_replicas: row.settings.replicas,
            desired_processes,
            replicas,
            events,
        })
    }

    /// The app's log lines: the last `tail` of each replica since `since`
    /// (unix seconds), then, with `follow`, new lines as they come, also
    /// from replicas that restart or start later.
    pub async fn logs(
        &self,
        app: &str,
        query: LogQuery,
    ) -> Result<BoxStream<'static, wire::LogLine>, Error> {
        let engine = self.p.engine()?;
        let row = self.p.app_row(app).await?;
        let replicas = engine.replicas(Some(&row.name)).await?;
        if !query.follow {
            let streams = replicas.iter().map(|r| {
                let name = r.name.clone();
                engine
                    .runtime
                    .logs(&r.id, query)
                    .filter_map(move |line| {
                        let view = line.ok().map(|l| line_view(&name, l));
                        async move { view }
                    })
                    .boxed()
            });
            return Ok(futures::stream::select_all(streams).boxed());
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let follower = Follower {
            runtime: engine.runtime.clone(),
            installation: engine.installation.clone(),
            app: row.name.to_string(),
            query,
            tx,
        };
        tokio::spawn(follower.run(replicas));
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|line| (line, rx))
        })
        .boxed())
    }
}

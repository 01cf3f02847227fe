//! Deploys, rollbacks, scaling and the views of what runs.
//!
//! A rollout keeps promise 8: new replicas start beside the old ones and
//! get traffic only once each has answered its health check; the old ones
//! leave the route table in the same swap, finish the requests they hold
//! (up to the drain deadline) and only then stop. Any failure before the
//! swap removes the new replicas and leaves the previous release serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use rampart_core::audit::Outcome;
use rampart_core::deploy::{AppSettings, ReleaseConfig, ReleaseStatus, SettingsPatch, WEB};
use rampart_core::manifest::{AppManifest, MANIFEST_FILE};
use rampart_core::schedule::MAX_JOBS_PER_APP;
use rampart_core::time::Timestamp;
use rampart_core::wire::{self, DeployLine};
use rampart_core::{Action, AppId, AppName, Role};
use rampart_runtime::{
    LABEL_APP, LABEL_INSTALLATION, LABEL_PROCESS, LABEL_RELEASE, Limits, LogQuery, Replica,
    ReplicaSpec, RuntimeError,
};
use rampart_store::{AppRow, NewRelease, ReleaseRow};
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc::UnboundedSender;

use crate::controller::{Engine, HEALTH_POLL, Served, probe, release_of};
use crate::{Acting, Error, Platform};

mod images;
mod rollout;
mod status;
mod task;
pub use images::check_image_reference;
use status::release_view;
pub use task::{PreparedRun, RunIo};
pub(crate) use task::{Task, TaskOutcome};

/// Lines of a failed replica's log kept in the release's reason.
const FAILED_LOG_LINES: usize = 20;
/// How long a stopping replica has to exit after SIGTERM.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// What replicas of one release run: its number, image, variables and the
/// commands of its processes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run<'a> {
    pub release: u64,
    pub image_id: &'a str,
    pub env: &'a [(String, String)],
    pub processes: &'a BTreeMap<String, Vec<String>>,
}

/// How long a new replica of a process without a health check (a worker)
/// must keep running before it counts as started.
const WORKER_SETTLE: Duration = Duration::from_secs(3);

/// The replicas wanted of each of a release's processes other than `web`:
/// the app's count for it, one when it has none.
pub(crate) fn wanted_processes(
    settings: &AppSettings,
    declared: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, u32> {
    declared
        .keys()
        .filter(|name| name.as_str() != WEB)
        .map(|name| {
            (
                name.clone(),
                settings.processes.get(name).copied().unwrap_or(1),
            )
        })
        .collect()
}

/// Where a deploy's image comes from.
#[derive(Debug)]
pub enum Source {
    /// A tar build context with a Dockerfile.
    Build(Bytes),
    /// An image the engine has.
    Image(String),
    /// An earlier release, deployed again.
    Release(u64),
}

/// A deploy whose input [`Deploys::prepare_deploy`] checked.
#[derive(Debug)]
pub struct PreparedDeploy {
    app: AppName,
    source: Source,
    /// Pull the images a build's Dockerfile names before building.
    pull: bool,
    /// The build context's `rampart.app.toml`, when it has one.
    manifest: AppManifest,
}

impl PreparedDeploy {
    /// Has the engine pull the images a build's Dockerfile names from
    /// their registry first (`rampart patch --pull`).
    pub fn pulling(mut self) -> Self {
        self.pull = true;
        self
    }
}

/// The deploy path: checking a deploy's input, building or resolving its
/// image, rolling out, rolling back, and the views of releases, settings,
/// status and logs. A handle on the [`Platform`], from
/// [`Platform::deploys`].
#[derive(Debug, Clone, Copy)]
pub struct Deploys<'a> {
    pub(crate) p: &'a Platform,
}

/// Why a rollout (a deploy's, or a repair's) did not bring healthy
/// replicas into the route table. Its text becomes the failed release's
/// reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RolloutFailure {
    /// The engine failed a request (the image, the network, an inspect).
    #[error("{0}")]
    Engine(#[from] RuntimeError),
    #[error("cannot prepare the app's data: {0}")]
    Data(Error),
    #[error("cannot start a replica: {0}")]
    Start(RuntimeError),
    /// The app's policy refuses the image.
    #[error("{0}")]
    Refused(String),
    #[error("replica {0} disappeared")]
    Vanished(String),
    #[error("replica {name} exited{} before it became healthy{log}", .status.map_or_else(String::new, |c| format!(" with status {c}")))]
    Exited {
        name: String,
        status: Option<i64>,
        log: String,
    },
    #[error(
        "replica {name} did not pass its health check (GET {path} on port {port}) within {secs} s{log}"
    )]
    Unhealthy {
        name: String,
        path: String,
        port: u16,
        secs: u32,
        log: String,
    },
    /// The edge could not take the new route table.
    #[error("{0}")]
    Publish(Error),
    #[error("the release command exited with status {status}{log}")]
    ReleaseCommand { status: i64, log: String },
    #[error("the release command did not finish within {secs} s and was stopped{log}")]
    ReleaseTimeout { secs: u64, log: String },
}

fn step(progress: &UnboundedSender<DeployLine>, message: impl Into<String>) {
    let _ = progress.send(DeployLine::Step {
        message: message.into(),
    });
}

/// A replica's limits: the app's settings, never above the operator's
/// ceilings (which may have been lowered since the settings were made).
fn limits(settings: &AppSettings, ceilings: &rampart_core::config::AppLimits) -> Limits {
    Limits {
        memory_bytes: u64::from(settings.memory_mb.min(ceilings.max_memory_mb)) * 1024 * 1024,
        cpu_millis: settings.cpu_millis.min(ceilings.max_cpu_millis),
        pids: settings.pids.min(ceilings.max_pids),
    }
}

/// A replica's address on its network, at the app's port.
fn address(replica: &Replica, port: u16) -> Option<SocketAddr> {
    replica.ip.map(|ip| SocketAddr::new(ip, port))
}

impl Deploys<'_> {
    /// The app's variables in clear text, for its replicas.
    pub(crate) async fn replica_env(&self, app: &AppRow) -> Result<Vec<(String, String)>, Error> {
        let mut env = Vec::new();
        for var in self.p.store.env(&app.id).await? {
            let aad = crate::ops::env_aad(&app.id, &var.name);
            let value = self.p.key.open(&aad, &var.sealed).map_err(|_| {
                Error::Sealed(format!(
                    "the stored value of {} on app {:?} cannot be opened with this master key",
                    var.name,
                    app.name.as_str()
                ))
            })?;
            env.push((
                var.name.to_string(),
                String::from_utf8_lossy(&value).into_owned(),
            ));
        }
        Ok(env)
    }

    /// Deploys a new release of `app` and returns it once it serves. Progress
    /// goes to `progress`; the outcome is recorded on the release whatever
    /// happens.
    /// Checks a deploy's input before anything runs: the app exists, a
    /// build context is a context whose Dockerfile builds only from images
    /// the app may use, an image reference is one it may run. The API calls
    /// this before it starts streaming, so bad input is a clear 4xx and
    /// changes nothing.
    pub async fn prepare_deploy(&self, app: &str, source: Source) -> Result<PreparedDeploy, Error> {
        let row = self.p.app_row(app).await?;
        let engine = self.p.engine()?;
        let mut manifest = AppManifest::default();
        match &source {
            Source::Build(context) => {
                let checked = rampart_runtime::context::check_off_thread(context.clone())
                    .await
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                if let Some(text) = &checked.manifest {
                    manifest = AppManifest::from_toml(text)
                        .map_err(|e| Error::Invalid(format!("{MANIFEST_FILE}: {e}")))?;
                    let (settings, _) = row
                        .settings
                        .with_manifest(&manifest.settings)
                        .map_err(|e| Error::Invalid(format!("{MANIFEST_FILE}: {e}")))?;
                    let limits = &self.p.app_limits;
                    limits
                        .admit(&settings)
                        .and_then(|()| {
                            let others = wanted_processes(&settings, &manifest.processes);
                            limits.admit_replicas(settings.replicas, others.into_values())
                        })
                        .map_err(|e| Error::Invalid(format!("{MANIFEST_FILE}: {e}")))?;
                    let added = self
                        .p
                        .store
                        .cron_jobs(Some(&row.id))
                        .await?
                        .into_iter()
                        .filter(|job| !job.from_manifest)
                        .count();
                    if added + manifest.crons.len() > MAX_JOBS_PER_APP {
                        return Err(Error::Invalid(format!(
                            "{MANIFEST_FILE}: the app has {added} scheduled jobs added by hand, \
                             and with the {} declared it would have more than {MAX_JOBS_PER_APP}",
                            manifest.crons.len()
                        )));
                    }
                }
                let bases = rampart_runtime::context::dockerfile_images(&checked.dockerfile)
                    .map_err(|e| Error::Invalid(format!("the Dockerfile: {e}")))?;
                for base in &bases {
                    self.check_image_use(engine, &row, base).await?;
                }
            }
            Source::Image(reference) => {
                check_image_reference(reference)?;
                self.check_image_use(engine, &row, reference).await?;
            }
            Source::Release(_) => {}
        }
        Ok(PreparedDeploy {
            app: row.name,
            source,
            pull: false,
            manifest,
        })
    }

    /// Builds or resolves the image of a prepared deploy, records the
    /// release and rolls it out.
    pub async fn deploy(
        &self,
        acting: Acting<'_>,
        prepared: PreparedDeploy,
        progress: UnboundedSender<DeployLine>,
    ) -> Result<wire::Release, Error> {
        let PreparedDeploy {
            app,
            source,
            pull,
            manifest,
        } = prepared;
        let app = app.as_str();
        let engine = self.p.engine()?;
        let mut row = self.p.app_row(app).await?;
        let lock = engine.lock_for(&row.id);
        let _turn = lock.lock().await;
        if manifest.settings != SettingsPatch::default() {
            row = self
                .manifest_settings(acting, row, &manifest.settings, &progress)
                .await?;
        }
        engine.runtime.ping().await?;
        let actor = acting.caller.user_id.to_string();
        let next = self
            .p
            .store
            .releases(&row.id)
            .await?
            .first()
            .map_or(1, |r| r.number + 1);

        // A build brings its manifest's processes; an image or an earlier
        // release runs the processes of the release it follows (the live
        // one, or the earlier one itself).
        let mut processes = manifest.processes;
        let mut crons = manifest.crons;
        let mut built_from = None;
        let (image_ref, image) = match source {
            Source::Build(context) => {
                built_from = Some(context.clone());
                let tag = format!("rampart/{}:r{next}", row.name);
                step(&progress, format!("building {tag}"));
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let forward = {
                    let progress = progress.clone();
                    tokio::spawn(async move {
                        while let Some(line) = rx.recv().await {
                            let _ = progress.send(DeployLine::Build { line });
                        }
                    })
                };
                let built = engine.runtime.build(&tag, context, pull, tx).await;
                let _ = forward.await;
                (tag, built)
            }
            Source::Image(reference) => {
                if let Some(live) = row.live_release
                    && let Some(live) = self.p.store.release(&row.id, live).await?
                {
                    processes = live.config.processes;
                    crons = live.config.crons;
                }
                let found = engine.runtime.image(&reference).await;
                (reference, found)
            }
            Source::Release(number) => {
                let earlier = self
                    .p
                    .store
                    .release(&row.id, number)
                    .await?
                    .ok_or_else(|| {
                        Error::NotFound(format!("app {:?} has no release {number}", app))
                    })?;
                if earlier.image_id.is_empty() {
                    return Err(Error::Invalid(format!(
                        "release {number} never had an image; it cannot be deployed again"
                    )));
                }
                step(
                    &progress,
                    format!("deploying the image of release {number} again"),
                );
                processes = earlier.config.processes;
                crons = earlier.config.crons;
                // A release deployed again keeps what it was built from,
                // so it can still be patched.
                built_from =
                    std::fs::read(self.p.dir.contexts(&row.id).join(format!("r{number}.tar")))
                        .ok()
                        .map(Bytes::from);
                let found = engine.runtime.image(&earlier.image_id).await;
                (earlier.image, found)
            }
        };

        let env = self.replica_env(&row).await?;
        let config = ReleaseConfig {
            env_names: env.iter().map(|(k, _)| k.clone()).collect(),
            settings: row.settings.clone(),
            release_command: manifest.release,
            processes,
            crons,
        };
        let (image_id, image_error) = match image {
            Ok(image) => (image.id, None),
            Err(error) => (String::new(), Some(error)),
        };
        let new = NewRelease {
            image: image_ref.clone(),
            image_id: image_id.clone(),
            config,
            created_by: actor.clone(),
            created_at: Timestamp::now().to_rfc3339(),
        };
        let target = format!("apps/{}/releases/{next}", row.name);
        let record = self.p.record(acting, Action::Deploy, target.clone());
        let (number, entry) = self.p.store.create_release(&row.id, &new, record).await?;
        self.p.checkpoint(entry.seq, entry.hash).await;
        if let Some(context) = built_from
            && let Err(error) = self.keep_context(&row, number, &context)
        {
            tracing::warn!(app = %row.name, release = number, %error, "cannot keep the build context");
            step(
                &progress,
                format!(
                    "warning: the build context was not kept, so `rampart patch` cannot rebuild release {number}: {error}"
                ),
            );
        }
        let previous = row.live_release;

        let outcome = match image_error {
            Some(error) => Err(RolloutFailure::Engine(error)),
            None => {
                step(&progress, format!("release {number}: image {image_id}"));
                let checked = self
                    .check_image(engine, &row, number, &image_id, &progress)
                    .await;
                let run = Run {
                    release: number,
                    image_id: &image_id,
                    env: &env,
                    processes: &new.config.processes,
                };
                let phase = match (checked, &new.config.release_command) {
                    (Err(refused), _) => Err(refused),
                    (Ok(()), Some(command)) => {
                        self.release_phase(engine, &row, run, command, &progress)
                            .await
                    }
                    (Ok(()), None) => Ok(()),
                };
                match phase {
                    Ok(()) => self.rollout(engine, &row, run, &progress).await,
                    Err(failure) => Err(failure),
                }
            }
        };
        let outcome = outcome.map_err(|failure| failure.to_string());
        let (status, reason) = match &outcome {
            Ok(()) => (ReleaseStatus::Live, None),
            Err(reason) => (ReleaseStatus::Failed, Some(reason.as_str())),
        };
        let outcome_of = if outcome.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        let record = Platform::record_by(
            &actor,
            Action::Deploy,
            format!("{target}/{status}"),
            outcome_of,
            acting.request_id,
        );
        let at = Timestamp::now().to_rfc3339();
        self.p
            .committed(
                self.p
                    .store
                    .finish_release(&row.id, number, status, reason, &at, record)
                    .await,
            )
            .await?;
        let release = self
            .p
            .store
            .release(&row.id, number)
            .await?
            .map(release_view)
            .ok_or_else(|| Error::NotFound(format!("release {number} vanished")))?;
        match outcome {
            Ok(()) => {
                tracing::info!(app = %row.name, release = number, "release is live");
                if let Some(previous) = previous {
                    self.report_closed(&row, previous, number, &progress).await;
                }
                // Fresh replicas of a release that serves: what a failed
                // deploy, a crash loop or a failed repair said is over.
                for rule in ["deploy_failed", "crash_loop", "app_down"] {
                    self.p
                        .alerts()
                        .resolve(rule, Some(row.name.as_str()), None)
                        .await;
                }
                match self
                    .p
                    .crons()
                    .follow_release(acting, &row, &new.config.crons)
                    .await
                {
                    Ok(Some(summary)) => step(&progress, summary),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::error!(app = %row.name, %error, "cannot update the declared scheduled jobs");
                        step(
                            &progress,
                            format!(
                                "warning: the declared scheduled jobs were not updated: {error}"
                            ),
                        );
                    }
                }
                Ok(release)
            }
            Err(message) => {
                tracing::warn!(app = %row.name, release = number, reason = %message, "deploy failed");
                let first = message.lines().next().unwrap_or("");
                self.p
                    .alerts()
                    .raise(crate::alerts::Condition::of_app(
                        "deploy_failed",
                        rampart_watch::alert::Severity::Warning,
                        row.name.as_str(),
                        format!("{}: release {number} failed to deploy: {first}", row.name),
                    ))
                    .await;
                Err(Error::DeployFailed {
                    message,
                    release: Some(Box::new(release)),
                    serving: row.live_release,
                })
            }
        }
    }

    /// How many releases' build contexts are kept per app.
    const CONTEXTS_KEPT: u64 = 10;

    /// Keeps the build context of release `number` (mode 0600 under the
    /// data directory) and drops those more than [`Self::CONTEXTS_KEPT`]
    /// releases older.
    fn keep_context(&self, row: &AppRow, number: u64, context: &[u8]) -> std::io::Result<()> {
        let dir = self.p.dir.contexts(&row.id);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        crate::secrets::write_private(&dir.join(format!("r{number}.tar")), context, true)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let name = entry.file_name();
            let old = name.to_str().and_then(|n| {
                n.strip_prefix('r')?
                    .strip_suffix(".tar")?
                    .parse::<u64>()
                    .ok()
            });
            if old.is_some_and(|n| n + Self::CONTEXTS_KEPT <= number) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// The build context of the app's live release, to rebuild it on the
    /// current base image (`rampart patch`).
    pub async fn live_context(&self, app: &str) -> Result<Bytes, Error> {
        let row = self.p.app_row(app).await?;
        let live = row
            .live_release
            .ok_or_else(|| Error::Invalid(format!("app {app:?} has no live release to patch")))?;
        let path = self.p.dir.contexts(&row.id).join(format!("r{live}.tar"));
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Invalid(format!(
                "release {live} of {app} was not built here from a context (an image, or a rollback to one), so there is nothing to rebuild; deploy a context or a patched image"
            ))),
            Err(e) => Err(Error::Unavailable(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Says which findings of the release that served before the new one
    /// closed, and which it brought, and records it as an app event.
    async fn report_closed(
        &self,
        row: &AppRow,
        previous: u64,
        number: u64,
        progress: &UnboundedSender<DeployLine>,
    ) {
        let Ok(Some((closed, opened))) = self.p.vulns().compare(row, previous, number).await else {
            return;
        };
        if closed.is_empty() && opened.is_empty() {
            return;
        }
        let message = format!(
            "release {number} closes {} finding(s) of release {previous}{}{}",
            closed.len(),
            if closed.is_empty() {
                String::new()
            } else {
                format!(": {}", closed.join(", "))
            },
            if opened.is_empty() {
                String::new()
            } else {
                format!("; new: {}", opened.join(", "))
            }
        );
        step(progress, message.clone());
        let event = rampart_store::AppEvent {
            time: Timestamp::now().to_rfc3339(),
            kind: "vulnerabilities".into(),
            message,
        };
        if let Err(error) = self.p.store.add_event(&row.id, &event).await {
            tracing::warn!(app = %row.name, %error, "cannot record the findings a release closed");
        }
    }

    /// Records what the new image contains and, when the app's policy
    /// asks for it, refuses an image with critical findings nobody
    /// accepted (naming them), or one that cannot be read.
    async fn check_image(
        &self,
        engine: &Engine,
        row: &AppRow,
        number: u64,
        image_id: &str,
        progress: &UnboundedSender<DeployLine>,
    ) -> Result<(), RolloutFailure> {
        let packages = match self.p.vulns().scan(engine, row, number, image_id).await {
            Ok(packages) => packages,
            Err(error) if row.settings.refuse_critical => {
                return Err(RolloutFailure::Refused(format!(
                    "refuse_critical is set and the image's packages cannot be read: {error}"
                )));
            }
            Err(error) => {
                tracing::warn!(app = %row.name, release = number, %error, "cannot scan the image");
                step(
                    progress,
                    format!("warning: the image's packages cannot be read: {error}"),
                );
                return Ok(());
            }
        };
        step(
            progress,
            format!("release {number}: {} packages recorded", packages.len()),
        );
        if !row.settings.refuse_critical {
            return Ok(());
        }
        let blocking = self
            .p
            .vulns()
            .blocking(row, number, &packages)
            .await
            .map_err(|e| RolloutFailure::Refused(format!("cannot judge the image: {e}")))?;
        if blocking.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = blocking
            .iter()
            .map(|f| {
                let fixed = f.fixed.as_deref().map_or_else(
                    || "no fix published".to_owned(),
                    |v| format!("fixed in {v}"),
                );
                format!("{} in {} {} ({fixed})", f.advisory, f.package, f.version)
            })
            .collect();
        Err(RolloutFailure::Refused(format!(
            "refuse_critical: the image has {} critical finding(s) nobody accepted: {}",
            named.len(),
            named.join("; ")
        )))
    }

    /// A replica of `process` (`web` or another the release declares).
    fn replica_spec(
        &self,
        engine: &Engine,
        app: &AppRow,
        run: Run<'_>,
        process: &str,
        data: &crate::data::DataMounts,
    ) -> ReplicaSpec {
        let Run {
            release,
            image_id,
            env,
            processes,
        } = run;
        let suffix = crate::ops::random_suffix();
        let name = if process == WEB {
            format!(
                "rampart-{}-{}-r{release}-{suffix}",
                engine.installation, app.name
            )
        } else {
            format!(
                "rampart-{}-{}-r{release}-{process}-{suffix}",
                engine.installation, app.name
            )
        };
        let mut env: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("RAMPART_") && k != "PORT" && !data.env.iter().any(|(d, _)| d == k)
            })
            .cloned()
            .collect();
        env.extend(data.env.iter().cloned());
        env.push(("PORT".into(), app.settings.port.to_string()));
        env.push(("RAMPART_APP".into(), app.name.to_string()));
        env.push(("RAMPART_RELEASE".into(), release.to_string()));
        env.push(("RAMPART_REPLICA".into(), suffix));
        env.push(("RAMPART_PROCESS".into(), process.to_owned()));
        ReplicaSpec {
            name,
            image: image_id.to_owned(),
            network: engine.network(&app.name, app.settings.egress).name,
            env,
            labels: BTreeMap::from([
                (LABEL_INSTALLATION.to_owned(), engine.installation.clone()),
                (LABEL_APP.to_owned(), app.name.to_string()),
                (LABEL_RELEASE.to_owned(), release.to_string()),
                (LABEL_PROCESS.to_owned(), process.to_owned()),
            ]),
            limits: limits(&app.settings, &self.p.app_limits),
            allow_root: app.settings.allow_root,
            media_volume: data.media_volume.clone(),
            ca_volume: data.ca_volume.clone(),
            command: processes.get(process).cloned(),
            terminal: false,
            placement: app.settings.placement.clone(),
        }
    }

    /// Applies a build context's manifest settings to the app, except those
    /// `apps configure` set, saying which it kept; the change is recorded
    /// like a configure.
    async fn manifest_settings(
        &self,
        acting: Acting<'_>,
        row: AppRow,
        wanted: &SettingsPatch,
        progress: &UnboundedSender<DeployLine>,
    ) -> Result<AppRow, Error> {
        let (next, kept) = row
            .settings
            .with_manifest(wanted)
            .map_err(|e| Error::Invalid(format!("{MANIFEST_FILE}: {e}")))?;
        for note in kept {
            step(progress, note);
        }
        if next == row.settings {
            return Ok(row);
        }
        self.p
            .app_limits
            .admit(&next)
            .map_err(|e| Error::Invalid(format!("{MANIFEST_FILE}: {e}")))?;
        step(
            progress,
            format!(
                "settings from {MANIFEST_FILE}: {}",
                wanted.names().join(", ")
            ),
        );
        let record = self.p.record(
            acting,
            Action::AppConfigure,
            format!("apps/{}/settings/{MANIFEST_FILE}", row.name),
        );
        self.p
            .committed(self.p.store.set_settings(&row.id, &next, record).await)
            .await?;
        self.p.app_row(row.name.as_str()).await
    }

    /// The release a rollback deploys: `to`, or the one live before the
    /// current one.
    pub async fn rollback_target(&self, app: &str, to: Option<u64>) -> Result<u64, Error> {
        let row = self.p.app_row(app).await?;
        let releases = self.p.store.releases(&row.id).await?;
        if let Some(n) = to {
            let found = releases
                .iter()
                .find(|r| r.number == n)
                .ok_or_else(|| Error::NotFound(format!("app {app:?} has no release {n}")))?;
            if found.image_id.is_empty() {
                return Err(Error::Invalid(format!(
                    "release {n} never had an image; it cannot be deployed again"
                )));
            }
            return Ok(n);
        }
        let live = row.live_release.ok_or_else(|| {
            Error::Invalid(format!("app {app:?} has no live release to roll back from"))
        })?;
        releases
            .iter()
            .find(|r| r.number < live && r.status == ReleaseStatus::Retired)
            .map(|r| r.number)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "app {app:?} has no earlier release that served; name one with --to"
                ))
            })
    }

    /// Fails unless a container engine is attached.
    pub fn runtime_ready(&self) -> Result<(), Error> {
        self.p.engine().map(|_| ())
    }

    /// Removes an app's replicas and networks after the app was deleted.
    pub(crate) async fn remove_app_runtime(&self, app: &AppName, id: &AppId) {
        let _ = std::fs::remove_dir_all(self.p.dir.contexts(id));
        let Ok(engine) = self.p.engine() else { return };
        engine.set_serving(id, Vec::new());
        let _ = self.p.publish().await;
        if let Ok(replicas) = engine.replicas(Some(app)).await {
            for r in replicas {
                let _ = engine.runtime.remove(&r.id, STOP_GRACE).await;
            }
        }
        for egress in [false, true] {
            let _ = engine
                .runtime
                .remove_network(&engine.network(app, egress).name)
                .await;
        }
        if let Err(error) = engine.runtime.remove_app_images(app.as_str()).await {
            tracing::warn!(%app, %error, "cannot remove the images of a deleted app");
        }
    }
}

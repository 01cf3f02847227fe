//! Scheduled jobs: commands an app runs on a schedule, each run in a
//! one-off container of its live release (`deploy::task`, hardened like a
//! replica), never two runs of one job at once. Every run is recorded with
//! its outcome, duration and last lines; a failed run is also an app event.
//! Runs missed while the platform was down are not made up: a job's next
//! run is always the next one after now.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_core::manifest::DeclaredJob;
use rampart_core::schedule::{
    DEFAULT_JOB_TIMEOUT_SECS, MAX_JOB_TIMEOUT_SECS, MAX_JOBS_PER_APP, Schedule,
};
use rampart_core::time::Timestamp;
use rampart_core::wire;
use rampart_core::{Action, manifest::RawCommand};
use rampart_store::{AppRow, CronJobRow, CronRunRow};

use crate::deploy::{Run, RunIo, Task};
use crate::{Acting, Error, Platform};

/// Runs `rampart cron runs` shows.
const RUNS_SHOWN: u32 = 200;

/// The jobs running now, so that a job due while its last run goes on is
/// skipped rather than run twice.
#[derive(Debug, Default)]
pub(crate) struct Running(std::sync::Mutex<HashSet<String>>);

impl Running {
    /// Marks `job` running; false if it already was.
    fn start(&self, job: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.to_owned())
    }

    fn finish(&self, job: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(job);
    }
}

/// An app's scheduled jobs. A handle on the [`Platform`], from
/// [`Platform::crons`].
#[derive(Debug, Clone, Copy)]
pub struct Crons<'a> {
    pub(crate) p: &'a Platform,
}

fn job_view(app: &AppRow, job: CronJobRow) -> wire::CronJob {
    wire::CronJob {
        id: job.id,
        app: app.name.to_string(),
        schedule: job.schedule,
        argv: job.command,
        timeout_secs: job.timeout_secs,
        next_run_at: job.next_run_at,
        created_by: job.created_by,
        created_at: job.created_at,
        source: if job.from_manifest {
            wire::JobSource::Manifest
        } else {
            wire::JobSource::Added
        },
    }
}

impl Crons<'_> {
    pub async fn list(&self, app: &str) -> Result<Vec<wire::CronJob>, Error> {
        let row = self.p.app_row(app).await?;
        Ok(self
            .p
            .store
            .cron_jobs(Some(&row.id))
            .await?
            .into_iter()
            .map(|job| job_view(&row, job))
            .collect())
    }

    /// Adds a job; it first runs at the schedule's next time.
    pub async fn add(
        &self,
        acting: Acting<'_>,
        app: &str,
        request: wire::AddCronJob,
    ) -> Result<wire::CronJob, Error> {
        let row = self.p.app_row(app).await?;
        let schedule = Schedule::parse(&request.schedule).map_err(Error::Invalid)?;
        let argv = rampart_core::manifest::command("argv", RawCommand::Args(request.argv))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let timeout_secs = request.timeout_secs.unwrap_or(DEFAULT_JOB_TIMEOUT_SECS);
        if !(1..=MAX_JOB_TIMEOUT_SECS).contains(&timeout_secs) {
            return Err(Error::Invalid(format!(
                "timeout_secs must be between 1 and {MAX_JOB_TIMEOUT_SECS}"
            )));
        }
        if self.p.store.cron_jobs(Some(&row.id)).await?.len() >= MAX_JOBS_PER_APP {
            return Err(Error::Conflict(format!(
                "app {app:?} already has {MAX_JOBS_PER_APP} scheduled jobs"
            )));
        }
        let now = Timestamp::now();
        let next = schedule
            .next_after(now)
            .ok_or_else(|| Error::Invalid(format!("{:?} never comes round", request.schedule)))?;
        let job = CronJobRow {
            id: format!("cron_{}", crate::ops::random_token(12)),
            app_id: row.id.clone(),
            schedule: request.schedule.trim().to_owned(),
            command: argv,
            timeout_secs,
            next_run_at: next.to_rfc3339(),
            created_by: acting.caller.user_id.to_string(),
            created_at: now.to_rfc3339(),
            from_manifest: false,
        };
        let record = self.p.record(
            acting,
            Action::CronSet,
            format!("apps/{}/cron/{}", row.name, job.id),
        );
        self.p
            .committed(self.p.store.add_cron_job(&job, record).await)
            .await?;
        Ok(job_view(&row, job))
    }

    /// Removes a job added by hand; one the manifest declares is changed
    /// there.
    pub async fn remove(&self, acting: Acting<'_>, app: &str, id: &str) -> Result<(), Error> {
        let row = self.p.app_row(app).await?;
        let jobs = self.p.store.cron_jobs(Some(&row.id)).await?;
        if jobs.iter().any(|job| job.id == id && job.from_manifest) {
            return Err(Error::Conflict(format!(
                "job {id} is declared in the {} of the live release; remove it there and deploy",
                rampart_core::manifest::MANIFEST_FILE
            )));
        }
        let record = self.p.record(
            acting,
            Action::CronSet,
            format!("apps/{}/cron/{id}/removed", row.name),
        );
        self.p
            .committed(self.p.store.remove_cron_job(&row.id, id, record).await)
            .await
    }

    /// Makes the app's declared jobs those of the release that just went
    /// live: a job it declares as the app already has it keeps its id and
    /// next run; the others are added, and declared jobs it no longer
    /// declares go. Jobs added by hand are untouched. Returns what changed,
    /// or `None` when nothing did.
    pub(crate) async fn follow_release(
        &self,
        acting: Acting<'_>,
        row: &AppRow,
        declared: &[DeclaredJob],
    ) -> Result<Option<String>, Error> {
        let mut had: Vec<CronJobRow> = self
            .p
            .store
            .cron_jobs(Some(&row.id))
            .await?
            .into_iter()
            .filter(|job| job.from_manifest)
            .collect();
        let before = had.len();
        let now = Timestamp::now();
        let mut wanted = Vec::with_capacity(declared.len());
        let mut added = 0;
        for job in declared {
            let same = had.iter().position(|old| {
                old.schedule == job.schedule
                    && old.command == job.argv
                    && old.timeout_secs == job.timeout_secs
            });
            if let Some(i) = same {
                wanted.push(had.swap_remove(i));
                continue;
            }
            let next = Schedule::parse(&job.schedule)
                .ok()
                .and_then(|schedule| schedule.next_after(now))
                .ok_or_else(|| Error::Invalid(format!("{:?} never comes round", job.schedule)))?;
            added += 1;
            wanted.push(CronJobRow {
                id: format!("cron_{}", crate::ops::random_token(12)),
                app_id: row.id.clone(),
                schedule: job.schedule.clone(),
                command: job.argv.clone(),
                timeout_secs: job.timeout_secs,
                next_run_at: next.to_rfc3339(),
                created_by: acting.caller.user_id.to_string(),
                created_at: now.to_rfc3339(),
                from_manifest: true,
            });
        }
        let removed = had.len();
        if added == 0 && removed == 0 {
            return Ok(None);
        }
        let summary = format!(
            "scheduled jobs declared: {} (were {before}; {added} added, {removed} removed)",
            wanted.len()
        );
        let record = self.p.record(
            acting,
            Action::CronSet,
            format!(
                "apps/{}/cron/declared: {added} added, {removed} removed",
                row.name
            ),
        );
        self.p
            .committed(
                self.p
                    .store
                    .set_declared_cron_jobs(&row.id, &wanted, record)
                    .await,
            )
            .await?;
        Ok(Some(summary))
    }

    /// The newest runs of the app's jobs, oldest first.
    pub async fn runs(&self, app: &str) -> Result<Vec<wire::CronRun>, Error> {
        let row = self.p.app_row(app).await?;
        Ok(self
            .p
            .store
            .cron_runs(&row.id, RUNS_SHOWN)
            .await?
            .into_iter()
            .map(|r| wire::CronRun {
                job_id: r.job_id,
                started_at: r.started_at,
                finished_at: r.finished_at,
                outcome: r.outcome,
                status: r.status,
                duration_ms: r.duration_ms,
                detail: r.detail,
            })
            .collect())
    }

    /// One run of `job`, recorded; a failure is also an app event.
    async fn run_job(&self, job: &CronJobRow) {
        let started = Instant::now();
        let started_at = Timestamp::now().to_rfc3339();
        let (outcome, status, detail) = match self.execute(job).await {
            Ok(crate::deploy::TaskOutcome {
                status: Some(0),
                tail,
            }) => ("ok", Some(0), tail),
            Ok(crate::deploy::TaskOutcome {
                status: Some(code),
                tail,
            }) => (
                "failed",
                Some(code),
                format!("exited with status {code}{tail}"),
            ),
            Ok(crate::deploy::TaskOutcome { status: None, tail }) => (
                "timed_out",
                None,
                format!("stopped after {} s{tail}", job.timeout_secs),
            ),
            Err(Skip(reason)) => ("skipped", None, reason),
            Err(Fail(reason)) => ("failed", None, reason),
        };
        let run = CronRunRow {
            job_id: job.id.clone(),
            app_id: job.app_id.clone(),
            started_at,
            finished_at: Timestamp::now().to_rfc3339(),
            outcome: outcome.to_owned(),
            status,
            duration_ms: started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64,
            detail: detail.clone(),
        };
        if let Err(error) = self.p.store.add_cron_run(&run).await {
            tracing::error!(%error, job = %job.id, "cannot record a cron run");
        }
        let app = self.app_of(job).await;
        let app_name = app.as_ref().map(|a| a.name.to_string());
        if outcome == "ok" {
            self.p
                .alerts()
                .resolve("cron_failed", app_name.as_deref(), Some(job.id.as_str()))
                .await;
        } else if outcome != "skipped" {
            self.p
                .alerts()
                .raise(crate::alerts::Condition {
                    rule: "cron_failed",
                    severity: rampart_watch::alert::Severity::Warning,
                    app: app_name.as_deref(),
                    detail: Some(job.id.as_str()),
                    summary: format!(
                        "{}: scheduled job {} {outcome}: {}",
                        app_name.as_deref().unwrap_or("?"),
                        job.id,
                        detail.lines().next().unwrap_or("")
                    ),
                })
                .await;
        }
        if outcome != "ok"
            && let Some(app) = app
        {
            let first = detail.lines().next().unwrap_or("").to_owned();
            self.p
                .event(
                    &app,
                    "cron_failed",
                    format!("scheduled job {} {outcome}: {first}", job.id),
                )
                .await;
        }
    }

    async fn app_of(&self, job: &CronJobRow) -> Option<AppRow> {
        self.p
            .store
            .apps()
            .await
            .ok()?
            .into_iter()
            .find(|a| a.id == job.app_id)
    }

    async fn execute(&self, job: &CronJobRow) -> Result<crate::deploy::TaskOutcome, Outcome> {
        let engine = self.p.engine().map_err(|e| Fail(e.to_string()))?;
        let app = self
            .app_of(job)
            .await
            .ok_or_else(|| Skip("the app is gone".into()))?;
        let _slot = engine.task_slots.take(&app.id).ok_or_else(|| {
            Skip(format!(
                "the app already runs {} one-off commands or scheduled jobs",
                crate::controller::MAX_TASKS_PER_APP
            ))
        })?;
        let live = app
            .live_release
            .ok_or_else(|| Skip("the app has no live release".into()))?;
        let release = self
            .p
            .store
            .release(&app.id, live)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| Fail(format!("release {live} cannot be read")))?;
        let env = self
            .p
            .deploys()
            .replica_env(&app)
            .await
            .map_err(|e| Fail(e.to_string()))?;
        let run = Run {
            release: live,
            image_id: &release.image_id,
            env: &env,
            processes: &release.config.processes,
        };
        let task = Task {
            kind: "cron",
            argv: &job.command,
            timeout: Duration::from_secs(job.timeout_secs),
            tty: None,
        };
        let (output, _dropped) = tokio::sync::mpsc::unbounded_channel();
        self.p
            .deploys()
            .run_task(engine, &app, run, task, RunIo::Lines(output))
            .await
            .map_err(|e| Fail(e.to_string()))
    }
}

/// Why a run did not happen or failed before its command ran.
enum Outcome {
    Skip(String),
    Fail(String),
}
use Outcome::{Fail, Skip};

impl Platform {
    /// Scheduled jobs and their runs.
    pub fn crons(&self) -> Crons<'_> {
        Crons { p: self }
    }

    /// Starts the scheduled jobs that are due, each on a task of its own;
    /// a job whose last run still goes on is recorded as skipped. The
    /// platform calls this every few seconds.
    pub async fn run_due_crons(self: &Arc<Self>) {
        let Ok(jobs) = self.store.cron_jobs(None).await else {
            return;
        };
        let now = Timestamp::now();
        let now_text = now.to_rfc3339();
        for job in jobs.into_iter().filter(|j| j.next_run_at <= now_text) {
            let next = Schedule::parse(&job.schedule)
                .ok()
                .and_then(|s| s.next_after(now))
                .or_else(|| Timestamp::from_unix_seconds(now.unix_seconds() + 86_400));
            let Some(next) = next else { continue };
            if let Err(error) = self
                .store
                .advance_cron_job(&job.id, &next.to_rfc3339())
                .await
            {
                tracing::error!(%error, job = %job.id, "cannot move a scheduled job on");
                continue;
            }
            if !self.cron_running.start(&job.id) {
                let run = CronRunRow {
                    job_id: job.id.clone(),
                    app_id: job.app_id.clone(),
                    started_at: now_text.clone(),
                    finished_at: now_text.clone(),
                    outcome: "skipped".into(),
                    status: None,
                    duration_ms: 0,
                    detail: "the previous run was still going".into(),
                };
                let _ = self.store.add_cron_run(&run).await;
                continue;
            }
            let platform = Arc::clone(self);
            tokio::spawn(async move {
                platform.crons().run_job(&job).await;
                platform.cron_running.finish(&job.id);
            });
        }
    }
}

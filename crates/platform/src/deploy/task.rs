//! One-off containers of a release: the release phase of a deploy.
//!
//! A task runs the release's image with the app's network, variables, data
//! and limits, hardened exactly like a replica (it is started by the same
//! `ContainerRuntime::start`), with its command in place of the image's.
//! It carries the `rampart.task` label, so it is never counted, routed to
//! or repaired as a replica; it is removed once it has exited or been
//! stopped at its deadline.

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;
use rampart_core::manifest::ReleaseCommand;
use rampart_core::wire::DeployLine;
use rampart_runtime::{LABEL_TASK, LogQuery};
use rampart_store::AppRow;
use tokio::sync::mpsc::UnboundedSender;

use super::{Deploys, FAILED_LOG_LINES, RolloutFailure, Run, step};
use crate::controller::Engine;

/// What a task runs, and for how long at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Task<'a> {
    /// `release` (more kinds come with one-off commands and schedules).
    pub kind: &'static str,
    pub argv: &'a [String],
    pub timeout: Duration,
}

/// How a task ended.
#[derive(Debug)]
pub(crate) struct TaskOutcome {
    /// Its exit status; `None` when it was stopped at its deadline.
    pub status: Option<i64>,
    /// Its last lines, formatted for a reason.
    pub tail: String,
}

impl Deploys<'_> {
    /// Runs the release command of a release about to roll out; it must
    /// exit 0 for the rollout to go on. Its output streams to the deploy.
    pub(crate) async fn release_phase(
        &self,
        engine: &Engine,
        app: &AppRow,
        run: Run<'_>,
        command: &ReleaseCommand,
        progress: &UnboundedSender<DeployLine>,
    ) -> Result<(), RolloutFailure> {
        step(
            progress,
            format!("release phase: running {}", command.argv.join(" ")),
        );
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let forward = {
            let progress = progress.clone();
            tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    let _ = progress.send(DeployLine::Release { line });
                }
            })
        };
        let task = Task {
            kind: "release",
            argv: &command.argv,
            timeout: Duration::from_secs(command.timeout_secs),
        };
        let outcome = self.run_task(engine, app, run, task, tx).await;
        let _ = forward.await;
        let outcome = outcome?;
        match outcome.status {
            Some(0) => {
                step(progress, "release phase: done");
                Ok(())
            }
            Some(status) => Err(RolloutFailure::ReleaseCommand {
                status,
                log: outcome.tail,
            }),
            None => Err(RolloutFailure::ReleaseTimeout {
                secs: command.timeout_secs,
                log: outcome.tail,
            }),
        }
    }

    /// Runs `task` in a container of `run`'s image until it exits or its
    /// deadline passes; each line it prints goes to `output`. The container
    /// is removed either way.
    pub(crate) async fn run_task(
        &self,
        engine: &Engine,
        app: &AppRow,
        run: Run<'_>,
        task: Task<'_>,
        output: UnboundedSender<String>,
    ) -> Result<TaskOutcome, RolloutFailure> {
        engine
            .runtime
            .ensure_network(&engine.network(&app.name, app.settings.egress))
            .await?;
        let data = self
            .p
            .prepare_data(engine, app, run.image_id)
            .await
            .map_err(RolloutFailure::Data)?;
        let mut spec = self.replica_spec(engine, app, run, &data);
        spec.name = format!(
            "rampart-{}-{}-r{}-{}-{}",
            engine.installation,
            app.name,
            run.release,
            task.kind,
            crate::ops::random_suffix()
        );
        spec.labels
            .insert(LABEL_TASK.to_owned(), task.kind.to_owned());
        spec.command = Some(task.argv.to_vec());
        let container = engine
            .runtime
            .start(&spec)
            .await
            .map_err(RolloutFailure::Start)?;

        let mut tail = VecDeque::with_capacity(FAILED_LOG_LINES);
        let query = LogQuery {
            follow: true,
            ..Default::default()
        };
        let mut lines = engine.runtime.logs(&container.id, query);
        let read = async {
            while let Some(Ok(line)) = lines.next().await {
                if tail.len() == FAILED_LOG_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.text.clone());
                let _ = output.send(line.text);
            }
        };
        let waited = tokio::time::timeout(task.timeout, async {
            let (status, ()) = tokio::join!(engine.runtime.wait(&container.id), read);
            status
        })
        .await;
        let _ = engine.runtime.remove(&container.id, Duration::ZERO).await;
        let tail = if tail.is_empty() {
            String::new()
        } else {
            let lines: Vec<String> = tail.into();
            format!("{}{}", rampart_core::deploy::LOG_LINES, lines.join("\n"))
        };
        match waited {
            Ok(status) => Ok(TaskOutcome {
                status: Some(status?),
                tail,
            }),
            Err(_) => Ok(TaskOutcome { status: None, tail }),
        }
    }
}

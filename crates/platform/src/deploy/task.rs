//! One-off containers of a release: the release phase of a deploy, and
//! commands run by hand (`rampart run`).
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
use rampart_core::audit::Outcome;
use rampart_core::manifest::{RawCommand, ReleaseCommand};
use rampart_core::terminal::Frame;
use rampart_core::wire::TerminalSize;
use rampart_core::wire::{self, DeployLine};
use rampart_core::{Action, AppName, EnvName};
use rampart_runtime::{Attached, LABEL_TASK, LogQuery};
use rampart_store::AppRow;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::sync::mpsc::UnboundedSender;

use super::{Deploys, FAILED_LOG_LINES, RolloutFailure, Run, step};
use crate::controller::Engine;
use crate::{Acting, Error, Platform};

/// How long a one-off command may run unless it asks otherwise, and at
/// most.
const RUN_TIMEOUT_SECS: u64 = 15 * 60;
const MAX_RUN_TIMEOUT_SECS: u64 = 6 * 3600;
/// The longest value of a variable given for one run.
const MAX_RUN_ENV_VALUE: usize = 64 * 1024;
/// The most of a command line the audit log keeps.
const MAX_AUDITED_COMMAND: usize = 1024;

/// A one-off command whose input [`Deploys::prepare_run`] checked.
#[derive(Debug)]
pub struct PreparedRun {
    /// Held until the run ends.
    _slot: crate::controller::TaskSlot,
    app: AppName,
    release: u64,
    argv: Vec<String>,
    timeout_secs: u64,
    /// Variables for this run only.
    env: Vec<(String, String)>,
    /// The size of the caller's terminal, when it runs on one.
    tty: Option<TerminalSize>,
}

impl PreparedRun {
    /// The release whose image runs the command.
    pub fn release(&self) -> u64 {
        self.release
    }

    /// How long the command may run.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs
    }

    /// Whether it runs on the caller's terminal.
    pub fn is_terminal(&self) -> bool {
        self.tty.is_some()
    }
}

/// Where a one-off command's output goes and its input comes from.
#[derive(Debug)]
pub enum RunIo {
    /// Each line it prints; it reads nothing.
    Lines(UnboundedSender<String>),
    /// A terminal: `input` carries what the user types
    /// ([`Frame::Input`]), the terminal's new sizes ([`Frame::Resize`]) and
    /// the end of the input ([`Frame::InputClosed`], or the channel
    /// closing); `output` gets what the command prints.
    Terminal {
        input: mpsc::Receiver<Frame>,
        output: mpsc::Sender<Vec<u8>>,
    },
}

/// The character a terminal reads as the end of input (Ctrl-D).
const VEOF: u8 = 0x04;

/// What a task runs, and for how long at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Task<'a> {
    /// `release` or `run`.
    pub kind: &'static str,
    pub argv: &'a [String],
    pub timeout: Duration,
    /// The size of the terminal it runs on, when its io is a terminal.
    pub tty: Option<TerminalSize>,
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
    /// Checks a one-off command before anything runs: the app, the release
    /// (the live one unless named) and its image, the arguments and the
    /// deadline. The API calls this before it starts streaming.
    pub async fn prepare_run(
        &self,
        app: &str,
        request: wire::RunCommand,
    ) -> Result<PreparedRun, Error> {
        let row = self.p.app_row(app).await?;
        let engine = self.p.engine()?;
        let argv = rampart_core::manifest::command("argv", RawCommand::Args(request.argv))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut env = Vec::with_capacity(request.env.len());
        for (name, value) in request.env {
            let name = EnvName::parse(&name).map_err(|e| Error::Invalid(e.to_string()))?;
            if value.contains('\0') || value.len() > MAX_RUN_ENV_VALUE {
                return Err(Error::Invalid(format!(
                    "the value of {name} holds a NUL byte or is longer than {MAX_RUN_ENV_VALUE} bytes"
                )));
            }
            env.push((name.to_string(), value));
        }
        if let Some(size) = request.tty
            && !size.is_valid()
        {
            return Err(Error::Invalid(format!(
                "a terminal of {} by {} is not between 1 and {} on each side",
                size.cols,
                size.rows,
                TerminalSize::MAX
            )));
        }
        let timeout_secs = request.timeout_secs.unwrap_or(RUN_TIMEOUT_SECS);
        if !(1..=MAX_RUN_TIMEOUT_SECS).contains(&timeout_secs) {
            return Err(Error::Invalid(format!(
                "timeout_secs must be between 1 and {MAX_RUN_TIMEOUT_SECS}"
            )));
        }
        let release = match request.release {
            Some(number) => number,
            None => row.live_release.ok_or_else(|| {
                Error::Invalid(format!(
                    "app {app:?} has no live release; name one with --release"
                ))
            })?,
        };
        let found = self
            .p
            .store
            .release(&row.id, release)
            .await?
            .ok_or_else(|| Error::NotFound(format!("app {app:?} has no release {release}")))?;
        if found.image_id.is_empty() {
            return Err(Error::Invalid(format!(
                "release {release} never had an image; it cannot run a command"
            )));
        }
        let slot = engine.task_slots.take(&row.id).ok_or_else(|| {
            Error::Conflict(format!(
                "app {app:?} already runs {} one-off commands or scheduled jobs; wait for one to end",
                crate::controller::MAX_TASKS_PER_APP
            ))
        })?;
        Ok(PreparedRun {
            _slot: slot,
            app: row.name,
            release,
            argv,
            timeout_secs,
            env,
            tty: request.tty,
        })
    }

    /// Runs a prepared one-off command in a container of its release, with
    /// the app's variables and data, hardened like a replica, its output
    /// going to `io` (a terminal when it was prepared with one). The
    /// command line (never the environment) is recorded in the audit log
    /// before it starts, and its outcome after. Returns its exit status, or
    /// `None` when it was stopped at its deadline.
    pub async fn run(
        &self,
        acting: Acting<'_>,
        prepared: PreparedRun,
        io: RunIo,
    ) -> Result<Option<i64>, Error> {
        if prepared.is_terminal() != matches!(io, RunIo::Terminal { .. }) {
            return Err(Error::Invalid(
                "a command runs on a terminal exactly when it was prepared with one".into(),
            ));
        }
        let engine = self.p.engine()?;
        let row = self.p.app_row(prepared.app.as_str()).await?;
        let release = self
            .p
            .store
            .release(&row.id, prepared.release)
            .await?
            .ok_or_else(|| Error::NotFound(format!("release {} vanished", prepared.release)))?;
        let place = format!(
            "apps/{}/releases/{}/run{}",
            row.name,
            release.number,
            if prepared.is_terminal() { " (tty)" } else { "" }
        );
        let mut line = shlex::try_join(prepared.argv.iter().map(String::as_str))
            .unwrap_or_else(|_| format!("{:?}", prepared.argv));
        if line.len() > MAX_AUDITED_COMMAND {
            let cut = (0..=MAX_AUDITED_COMMAND)
                .rev()
                .find(|&i| line.is_char_boundary(i))
                .unwrap_or(0);
            line.truncate(cut);
            line.push('…');
        }
        let record = self
            .p
            .record(acting, Action::AppRun, format!("{place}: {line}"));
        self.p
            .committed(self.p.store.append_audit(record).await)
            .await?;

        let mut env = self.replica_env(&row).await?;
        env.retain(|(name, _)| !prepared.env.iter().any(|(own, _)| own == name));
        env.extend(prepared.env.iter().cloned());
        let run = Run {
            release: release.number,
            image_id: &release.image_id,
            env: &env,
            processes: &release.config.processes,
        };
        let task = Task {
            kind: "run",
            argv: &prepared.argv,
            timeout: Duration::from_secs(prepared.timeout_secs),
            tty: prepared.tty,
        };
        let outcome = self.run_task(engine, &row, run, task, io).await;
        let (end, outcome_of) = match &outcome {
            Ok(TaskOutcome {
                status: Some(0), ..
            }) => ("exit/0".to_owned(), Outcome::Ok),
            Ok(TaskOutcome {
                status: Some(status),
                ..
            }) => (format!("exit/{status}"), Outcome::Failed),
            Ok(TaskOutcome { status: None, .. }) => ("timed-out".to_owned(), Outcome::Failed),
            Err(_) => ("failed".to_owned(), Outcome::Failed),
        };
        self.p
            .append(Platform::record_by(
                acting.caller.user_id.as_str(),
                Action::AppRun,
                format!("{place}/{end}"),
                outcome_of,
                acting.request_id,
            ))
            .await;
        match outcome {
            Ok(done) => Ok(done.status),
            Err(failure) => Err(Error::Unavailable(format!(
                "the command could not run: {failure}"
            ))),
        }
    }

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
            tty: None,
        };
        let outcome = self
            .run_task(engine, app, run, task, RunIo::Lines(tx))
            .await;
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
    /// deadline passes, its output going to `io`. The container is removed
    /// either way.
    pub(crate) async fn run_task(
        &self,
        engine: &Engine,
        app: &AppRow,
        run: Run<'_>,
        task: Task<'_>,
        io: RunIo,
    ) -> Result<TaskOutcome, RolloutFailure> {
        let data = self.ready_for(engine, app, run.image_id).await?;
        let mut spec = self.replica_spec(engine, app, run, task.kind, &data);
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
        spec.terminal = matches!(io, RunIo::Terminal { .. });
        match io {
            RunIo::Lines(output) => lines_task(engine, &spec, task.timeout, output).await,
            RunIo::Terminal { input, output } => {
                let size = task.tty.unwrap_or(TerminalSize { cols: 80, rows: 24 });
                terminal_task(engine, &spec, task.timeout, size, input, output).await
            }
        }
    }
}

/// Runs a task whose output is read line by line from its log.
async fn lines_task(
    engine: &Engine,
    spec: &rampart_runtime::ReplicaSpec,
    deadline: Duration,
    output: UnboundedSender<String>,
) -> Result<TaskOutcome, RolloutFailure> {
    let container = engine
        .runtime
        .start(spec)
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
    let waited = tokio::time::timeout(deadline, async {
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

/// Runs a task on a terminal: what arrives on `input` is typed into it,
/// what it prints goes to `output`. When the input ends (the caller
/// closed it or went away) the command reads end-of-file (Ctrl-D); it then
/// runs on to its end or deadline, like any task.
async fn terminal_task(
    engine: &Engine,
    spec: &rampart_runtime::ReplicaSpec,
    deadline: Duration,
    size: TerminalSize,
    mut input: mpsc::Receiver<Frame>,
    output: mpsc::Sender<Vec<u8>>,
) -> Result<TaskOutcome, RolloutFailure> {
    let (container, attached) = engine
        .runtime
        .start_attached(spec)
        .await
        .map_err(RolloutFailure::Start)?;
    let Attached {
        output: mut printed,
        input: mut typed,
    } = attached;
    let id = container.id.as_str();
    let _ = engine.runtime.resize(id, size.cols, size.rows).await;
    let print = async {
        while let Some(Ok(chunk)) = printed.next().await {
            if output.send(chunk.to_vec()).await.is_err() {
                break;
            }
        }
    };
    // Never ends by itself: the command's exit decides when the task ends.
    let type_in = async {
        let mut current = size;
        while let Some(frame) = input.recv().await {
            let typing = match frame {
                Frame::Input(bytes) => {
                    typed.write_all(&bytes).await.is_ok() && typed.flush().await.is_ok()
                }
                Frame::Resize { cols, rows } => {
                    // Only real changes reach the engine.
                    let asked = TerminalSize { cols, rows };
                    if asked.is_valid() && asked != current {
                        current = asked;
                        let _ = engine.runtime.resize(id, cols, rows).await;
                    }
                    true
                }
                Frame::InputClosed => false,
                _ => true,
            };
            if !typing {
                break;
            }
        }
        // A terminal has no end of input of its own: it reads the end-of-file
        // character, as if the user pressed Ctrl-D. The attachment stays
        // open (the engine would stop passing output on once it closed).
        let _ = typed.write_all(&[VEOF]).await;
        let _ = typed.flush().await;
        std::future::pending::<()>().await;
    };
    let waited = tokio::time::timeout(deadline, async {
        let work = async {
            let (status, ()) = tokio::join!(engine.runtime.wait(id), print);
            status
        };
        tokio::select! {
            status = work => status,
            () = type_in => unreachable!("typing in never ends by itself"),
        }
    })
    .await;
    let _ = engine.runtime.remove(id, Duration::ZERO).await;
    match waited {
        Ok(status) => Ok(TaskOutcome {
            status: Some(status?),
            tail: String::new(),
        }),
        Err(_) => Ok(TaskOutcome {
            status: None,
            tail: String::new(),
        }),
    }
}

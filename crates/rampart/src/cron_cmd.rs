//! `rampart cron …`: commands an app runs on a schedule.

use clap::Subcommand;
use rampart_core::wire;

use crate::deploy_cmd::parse_duration;
use crate::output::printable;
use crate::{Connection, credentials, output};

#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// List an app's scheduled jobs.
    List {
        app: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Run a command on a schedule, in a one-off container of the live
    /// release: `rampart cron add APP "30 3 * * *" -- python3 manage.py
    /// clearsessions`.
    Add {
        app: String,
        /// Five cron fields in UTC ("30 3 * * *"), @hourly, @daily, @weekly,
        /// @monthly, or "every 15m".
        schedule: String,
        /// How long one run may take: 30s, 15m, 2h [default: 1h].
        #[arg(long)]
        timeout: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a scheduled job (its runs stay on record).
    Remove {
        app: String,
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// What the app's scheduled jobs did: outcome, duration, last lines.
    Runs {
        app: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

pub async fn run(command: CronCommand) -> anyhow::Result<()> {
    match command {
        CronCommand::List { app, json, conn } => {
            let jobs = credentials::client(&conn)?.cron_jobs(&app).await?;
            if json {
                return output::json(&jobs);
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.clone(),
                        printable(&j.schedule).into_owned(),
                        j.next_run_at.clone(),
                        match j.source {
                            wire::JobSource::Added => "added",
                            wire::JobSource::Manifest => "manifest",
                        }
                        .to_owned(),
                        printable(&j.argv.join(" ")).into_owned(),
                    ]
                })
                .collect();
            output::table(&["ID", "SCHEDULE", "NEXT RUN", "SOURCE", "COMMAND"], &rows);
        }
        CronCommand::Add {
            app,
            schedule,
            timeout,
            command,
            json,
            conn,
        } => {
            let request = wire::AddCronJob {
                schedule,
                argv: command,
                timeout_secs: timeout.as_deref().map(parse_duration).transpose()?,
            };
            let job = credentials::client(&conn)?
                .add_cron_job(&app, &request)
                .await?;
            if json {
                return output::json(&job);
            }
            println!(
                "Added {} to {app}: {} runs next at {}",
                job.id,
                printable(&job.argv.join(" ")),
                job.next_run_at
            );
        }
        CronCommand::Remove { app, id, conn } => {
            credentials::client(&conn)?
                .remove_cron_job(&app, &id)
                .await?;
            println!("Removed {id} from {app}");
        }
        CronCommand::Runs { app, json, conn } => {
            let runs = credentials::client(&conn)?.cron_runs(&app).await?;
            if json {
                return output::json(&runs);
            }
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.job_id.clone(),
                        r.started_at.clone(),
                        r.outcome.clone(),
                        r.status.map_or_else(|| "-".into(), |s| s.to_string()),
                        format!("{} ms", r.duration_ms),
                        printable(r.detail.lines().next().unwrap_or("")).into_owned(),
                    ]
                })
                .collect();
            output::table(
                &["JOB", "STARTED", "OUTCOME", "STATUS", "TOOK", "DETAIL"],
                &rows,
            );
        }
    }
    Ok(())
}

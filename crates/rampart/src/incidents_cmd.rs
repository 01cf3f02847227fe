//! `rampart incidents …`: incidents, their timelines, post-mortems and
//! follow-up actions.

use anyhow::bail;
use clap::Subcommand;
use rampart_core::wire;

use crate::output::printable;
use crate::{Connection, credentials, output};

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Open an incident by hand; the first notification channel is told.
    Open {
        /// What is wrong, in a line.
        title: String,
        /// low, medium, high or critical.
        #[arg(long, default_value = "high")]
        severity: String,
        /// The app it is about.
        #[arg(long)]
        app: Option<String>,
        /// A first note for the timeline.
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List incidents, newest first: those still open, or all with --all.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// One incident: its timeline, follow-up actions and notifications.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Acknowledge an incident: someone is on it, escalation stops.
    Ack(Step),
    /// Mark an incident mitigated: the harm has stopped.
    Mitigate(Step),
    /// Mark an incident resolved: the cause is dealt with.
    Resolve(Step),
    /// Add a note to an incident's timeline.
    Note {
        id: String,
        text: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Give an incident an owner (a user's email or id).
    Assign {
        id: String,
        owner: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Record the post-mortem of a resolved incident.
    Review {
        id: String,
        #[arg(long)]
        cause: String,
        #[arg(long)]
        impact: String,
        /// A follow-up action: its owner (email), due date and what to do,
        /// e.g. `--action ops@example.com 2026-12-15 "Rotate the keys"`.
        /// Repeatable.
        #[arg(long, num_args = 3, value_names = ["OWNER", "DUE", "TEXT"])]
        action: Vec<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Every post-mortem's follow-up actions by due date; overdue ones are
    /// marked.
    Actions {
        /// Only actions not yet done.
        #[arg(long)]
        open: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Mark a follow-up action done.
    Done {
        id: String,
        number: u32,
        #[command(flatten)]
        conn: Connection,
    },
    /// Times to acknowledge and resolve the incidents opened in a period.
    Stats {
        /// The period's start: a date (2026-10-01) or RFC 3339 time.
        #[arg(long)]
        from: String,
        /// Its end, not included.
        #[arg(long)]
        to: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, clap::Args)]
pub struct Step {
    id: String,
    /// A note for the timeline.
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

const HEADERS: [&str; 8] = [
    "ID", "SEVERITY", "STATE", "APP", "OWNER", "OPENED", "ACTIONS", "TITLE",
];

fn row(i: &wire::Incident) -> Vec<String> {
    let actions = match (i.open_actions, i.overdue_actions) {
        (0, _) => "-".to_owned(),
        (open, 0) => format!("{open} open"),
        (open, overdue) => format!("{open} open, {overdue} overdue"),
    };
    vec![
        i.id.clone(),
        i.severity.clone(),
        i.state.clone(),
        i.app.clone().unwrap_or_else(|| "-".into()),
        i.owner.clone().unwrap_or_else(|| "-".into()),
        i.opened_at.clone(),
        actions,
        i.title.clone(),
    ]
}

fn follow_up_row(a: &wire::FollowUp) -> Vec<String> {
    let state = match (&a.done_at, a.overdue) {
        (Some(_), _) => "done",
        (None, true) => "OVERDUE",
        (None, false) => "open",
    };
    vec![
        a.incident.clone(),
        a.number.to_string(),
        state.to_owned(),
        a.due.clone(),
        a.owner.clone(),
        a.text.clone(),
    ]
}

const FOLLOW_UP_HEADERS: [&str; 6] = ["INCIDENT", "N", "STATE", "DUE", "OWNER", "ACTION"];

fn duration(secs: Option<i64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s} s"),
        Some(s) if s < 7200 => format!("{} min", s / 60),
        Some(s) => format!("{:.1} h", s as f64 / 3600.0),
    }
}

async fn step(step: Step, state: &str) -> anyhow::Result<()> {
    let request = wire::IncidentStep {
        state: state.into(),
        note: step.note,
    };
    let incident = credentials::client(&step.conn)?
        .step_incident(&step.id, &request)
        .await?;
    println!("incident {} is {}", incident.id, incident.state);
    Ok(())
}

pub async fn run(command: IncidentsCommand) -> anyhow::Result<()> {
    match command {
        IncidentsCommand::Open {
            title,
            severity,
            app,
            note,
            json,
            conn,
        } => {
            let request = wire::OpenIncident {
                title,
                severity,
                app,
                note,
            };
            let incident = credentials::client(&conn)?.open_incident(&request).await?;
            if json {
                return output::json(&incident);
            }
            println!("opened incident {}", incident.id);
        }
        IncidentsCommand::List { all, json, conn } => {
            let incidents = credentials::client(&conn)?.incidents(all).await?;
            output::list(json, &incidents, &HEADERS, row)?;
        }
        IncidentsCommand::Show { id, json, conn } => {
            let detail = credentials::client(&conn)?.incident(&id).await?;
            if json {
                return output::json(&detail);
            }
            let i = &detail.incident;
            output::table(&HEADERS, &[row(i)]);
            println!(
                "\nacknowledged after {}, resolved after {}; escalation step {}",
                duration(i.time_to_ack_secs),
                duration(i.time_to_resolve_secs),
                i.escalation
            );
            for (label, text) in [("cause", &i.cause), ("impact", &i.impact)] {
                if let Some(text) = text {
                    println!("{label}: {}", printable(text));
                }
            }
            println!();
            let timeline: Vec<Vec<String>> = detail
                .timeline
                .iter()
                .map(|e| {
                    vec![
                        e.at.clone(),
                        e.kind.clone(),
                        e.actor.clone(),
                        e.text.clone(),
                    ]
                })
                .collect();
            output::table(&["AT", "KIND", "BY", "WHAT"], &timeline);
            if !detail.actions.is_empty() {
                println!();
                let rows: Vec<Vec<String>> = detail.actions.iter().map(follow_up_row).collect();
                output::table(&FOLLOW_UP_HEADERS, &rows);
            }
        }
        IncidentsCommand::Ack(s) => step(s, "acknowledged").await?,
        IncidentsCommand::Mitigate(s) => step(s, "mitigated").await?,
        IncidentsCommand::Resolve(s) => step(s, "resolved").await?,
        IncidentsCommand::Note { id, text, conn } => {
            let request = wire::IncidentNote { text };
            credentials::client(&conn)?
                .note_incident(&id, &request)
                .await?;
            println!("noted on incident {id}");
        }
        IncidentsCommand::Assign { id, owner, conn } => {
            let request = wire::AssignIncident { owner };
            let incident = credentials::client(&conn)?
                .assign_incident(&id, &request)
                .await?;
            println!(
                "incident {} is owned by {}",
                incident.id,
                incident.owner.unwrap_or_default()
            );
        }
        IncidentsCommand::Review {
            id,
            cause,
            impact,
            action,
            conn,
        } => {
            if action.len() % 3 != 0 {
                bail!("each --action takes three values: OWNER DUE TEXT");
            }
            let actions = action
                .chunks(3)
                .map(|c| wire::NewFollowUp {
                    owner: c[0].clone(),
                    due: c[1].clone(),
                    text: c[2].clone(),
                })
                .collect();
            let request = wire::IncidentReview {
                cause,
                impact,
                actions,
            };
            let incident = credentials::client(&conn)?
                .review_incident(&id, &request)
                .await?;
            println!(
                "incident {} is reviewed; {} follow-up action(s) to track",
                incident.id, incident.open_actions
            );
        }
        IncidentsCommand::Actions { open, json, conn } => {
            let actions = credentials::client(&conn)?.follow_ups(open).await?;
            output::list(json, &actions, &FOLLOW_UP_HEADERS, follow_up_row)?;
        }
        IncidentsCommand::Done { id, number, conn } => {
            credentials::client(&conn)?
                .finish_follow_up(&id, number)
                .await?;
            println!("action {number} of incident {id} is done");
        }
        IncidentsCommand::Stats {
            from,
            to,
            json,
            conn,
        } => {
            let stats = credentials::client(&conn)?
                .incident_stats(&from, &to)
                .await?;
            if json {
                return output::json(&stats);
            }
            println!("from {} to {}", stats.from, stats.to);
            println!(
                "{} opened, {} acknowledged, {} resolved, {} reviewed",
                stats.opened, stats.acknowledged, stats.resolved, stats.reviewed
            );
            println!(
                "time to acknowledge: median {}, mean {}",
                duration(stats.median_ack_secs),
                duration(stats.mean_ack_secs)
            );
            println!(
                "time to resolve: median {}, mean {}",
                duration(stats.median_resolve_secs),
                duration(stats.mean_resolve_secs)
            );
            println!(
                "follow-up actions: {} open, {} overdue",
                stats.open_actions, stats.overdue_actions
            );
        }
    }
    Ok(())
}

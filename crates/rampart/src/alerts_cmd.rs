//! `rampart alerts …`, `rampart notify …` and `rampart top`: what the
//! platform noticed, where it tells people, and how the apps are doing.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rampart_core::wire;

use crate::output::printable;
use crate::{Connection, credentials, output};

/// The most of a secret file read.
const MAX_SECRET_FILE: u64 = 4096;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first: firing ones, or all with --all.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// One alert and its deliveries to each channel.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Acknowledge an alert: someone is on it.
    Ack {
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Add a channel: `rampart notify add webhook URL --secret-file F`, or
    /// `rampart notify add email ADDRESS` (through `[notify.smtp]`).
    Add {
        /// `webhook` or `email`.
        kind: String,
        /// The webhook's https:// URL (http:// only to this machine), or
        /// the email address.
        target: String,
        /// A webhook's secret file: the key deliveries are signed with (16
        /// to 1024 bytes); it is stored sealed and never shown again.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the channels.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a channel and what it still had to deliver.
    Remove {
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Send a test alert to every channel.
    Test {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

fn alert_rows(alerts: &[wire::Alert]) -> Vec<Vec<String>> {
    alerts
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.severity.clone(),
                a.state.clone(),
                a.count.to_string(),
                a.last_at.clone(),
                a.acked_by.clone().unwrap_or_else(|| "-".into()),
                printable(&a.summary).into_owned(),
            ]
        })
        .collect()
}

const ALERT_HEADERS: [&str; 7] = [
    "ID", "SEVERITY", "STATE", "COUNT", "LAST", "ACKED", "SUMMARY",
];

pub async fn alerts(command: AlertsCommand) -> anyhow::Result<()> {
    match command {
        AlertsCommand::List { all, json, conn } => {
            let alerts = credentials::client(&conn)?.alerts(all).await?;
            if json {
                return output::json(&alerts);
            }
            output::table(&ALERT_HEADERS, &alert_rows(&alerts));
        }
        AlertsCommand::Show { id, json, conn } => {
            let detail = credentials::client(&conn)?.alert(&id).await?;
            if json {
                return output::json(&detail);
            }
            output::table(
                &ALERT_HEADERS,
                &alert_rows(std::slice::from_ref(&detail.alert)),
            );
            println!();
            let rows: Vec<Vec<String>> = detail
                .deliveries
                .iter()
                .map(|d| {
                    vec![
                        d.id.clone(),
                        d.channel.clone(),
                        d.event.clone(),
                        d.state.clone(),
                        d.attempts.to_string(),
                        printable(d.last_error.as_deref().unwrap_or("-")).into_owned(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "DELIVERY",
                    "CHANNEL",
                    "EVENT",
                    "STATE",
                    "ATTEMPTS",
                    "LAST ERROR",
                ],
                &rows,
            );
        }
        AlertsCommand::Ack { id, conn } => {
            let alert = credentials::client(&conn)?.ack_alert(&id).await?;
            println!("Acknowledged {} ({})", alert.id, printable(&alert.summary));
        }
    }
    Ok(())
}

/// The secret in `path`, without a trailing newline.
fn read_secret(path: &PathBuf) -> anyhow::Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the secret file {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the secret file {}", path.display()))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        bail!(
            "the secret file {} is larger than {MAX_SECRET_FILE} bytes",
            path.display()
        );
    }
    let text = String::from_utf8(bytes)
        .with_context(|| format!("the secret file {} is not UTF-8 text", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn notify(command: NotifyCommand) -> anyhow::Result<()> {
    match command {
        NotifyCommand::Add {
            kind,
            target,
            secret_file,
            json,
            conn,
        } => {
            let kind_needs_secret = kind == "webhook";
            let request = wire::AddChannel {
                kind,
                target,
                secret: match (kind_needs_secret, secret_file) {
                    (true, Some(file)) => read_secret(&file)?,
                    (true, None) => anyhow::bail!("a webhook needs --secret-file"),
                    (false, Some(_)) => anyhow::bail!("--secret-file is for webhooks"),
                    (false, None) => String::new(),
                },
            };
            let channel = credentials::client(&conn)?.add_channel(&request).await?;
            if json {
                return output::json(&channel);
            }
            println!("Added {} ({} {})", channel.id, channel.kind, channel.target);
        }
        NotifyCommand::List { json, conn } => {
            let channels = credentials::client(&conn)?.channels().await?;
            if json {
                return output::json(&channels);
            }
            let rows: Vec<Vec<String>> = channels
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.kind.clone(),
                        printable(&c.target).into_owned(),
                        c.created_at.clone(),
                    ]
                })
                .collect();
            output::table(&["ID", "KIND", "TARGET", "CREATED"], &rows);
        }
        NotifyCommand::Remove { id, conn } => {
            credentials::client(&conn)?.remove_channel(&id).await?;
            println!("Removed {}", printable(&id));
        }
        NotifyCommand::Test { json, conn } => {
            let alert = credentials::client(&conn)?.test_channels().await?;
            if json {
                return output::json(&alert);
            }
            println!(
                "Sent test alert {} to every channel (`rampart alerts show {}` follows it)",
                alert.id, alert.id
            );
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// One app only.
    app: Option<String>,
    /// How much history the trend covers, in minutes (1 to 1440).
    #[arg(long, default_value_t = 60)]
    minutes: u32,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

/// The requests of each window as a bar of eighths, at most `width` bars
/// (windows are summed into bars when there are more).
fn trend(samples: &[wire::TopSample], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if samples.is_empty() {
        return "-".into();
    }
    let per_bar = samples.len().div_ceil(width);
    let sums: Vec<u64> = samples
        .chunks(per_bar)
        .map(|c| c.iter().map(|s| u64::from(s.requests)).sum())
        .collect();
    let max = sums.iter().copied().max().unwrap_or(0).max(1);
    sums.iter()
        .map(|&n| BARS[((n * 7).div_ceil(max)) as usize])
        .collect()
}

pub async fn top(args: TopArgs) -> anyhow::Result<()> {
    let top = credentials::client(&args.conn)?
        .top(args.app.as_deref(), args.minutes)
        .await?;
    if args.json {
        return output::json(&top);
    }
    let rows: Vec<Vec<String>> = top
        .apps
        .iter()
        .map(|a| {
            vec![
                printable(&a.app).into_owned(),
                format!("{:.1}", a.requests_per_sec),
                format!("{:.1}%", a.errors_ratio * 100.0),
                format!("{:.0}", a.p95_ms),
                a.replicas_healthy.to_string(),
                a.last_backup_at.clone().unwrap_or_else(|| "-".into()),
                trend(&a.samples, 30),
            ]
        })
        .collect();
    output::table(
        &[
            "APP",
            "REQ/S",
            "5XX",
            "P95 MS",
            "HEALTHY",
            "LAST BACKUP",
            "REQUESTS",
        ],
        &rows,
    );
    println!(
        "\n{} client(s) banned, {} alert(s) firing; rates over the last minute, the trend over {} min",
        top.bans, top.alerts_firing, args.minutes
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trend_scales_to_the_busiest_bar() {
        let sample = |requests| wire::TopSample {
            at: 0,
            requests,
            errors: 0,
            p95_ms: 0.0,
            healthy: 1,
        };
        assert_eq!(trend(&[], 30), "-");
        let samples: Vec<_> = [0, 7, 14, 70].into_iter().map(sample).collect();
        assert_eq!(trend(&samples, 30), "▁▂▃█");
        // Eight windows in four bars: pairs are summed.
        let samples: Vec<_> = [1, 1, 0, 0, 2, 2, 1, 0].into_iter().map(sample).collect();
        assert_eq!(trend(&samples, 4), "▅▁█▃");
    }
}

//! `rampart bans …`: clients banned at the edge.

use clap::Subcommand;
use rampart_core::wire;

use crate::deploy_cmd::parse_duration;
use crate::output::printable;
use crate::{Connection, credentials, output};

#[derive(Debug, Subcommand)]
pub enum BansCommand {
    /// List the bans in force: scenario, reason, who and until when.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Ban an address or network: its requests get 403 at the edge.
    Add {
        /// An address (203.0.113.9) or network (198.51.100.0/24).
        net: String,
        /// Only on this host [default: every host and the API].
        #[arg(long)]
        host: Option<String>,
        /// How long: 30m, 4h, 7d [default: 4h].
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Lift a ban.
    Remove {
        net: String,
        /// The host the ban is limited to [default: the ban everywhere].
        #[arg(long)]
        host: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

pub async fn run(command: BansCommand) -> anyhow::Result<()> {
    match command {
        BansCommand::List { json, conn } => {
            let bans = credentials::client(&conn)?.bans().await?;
            if json {
                return output::json(&bans);
            }
            let rows: Vec<Vec<String>> = bans
                .iter()
                .map(|b| {
                    vec![
                        b.net.clone(),
                        printable(b.host.as_deref().unwrap_or("*")).into_owned(),
                        b.scenario.clone(),
                        b.expires_at.clone(),
                        printable(&b.created_by).into_owned(),
                        printable(&b.reason).into_owned(),
                    ]
                })
                .collect();
            output::table(&["NET", "HOST", "SCENARIO", "UNTIL", "BY", "REASON"], &rows);
        }
        BansCommand::Add {
            net,
            host,
            duration,
            reason,
            json,
            conn,
        } => {
            let request = wire::AddBan {
                net,
                host,
                duration_secs: duration.as_deref().map(parse_duration).transpose()?,
                reason,
            };
            let ban = credentials::client(&conn)?.add_ban(&request).await?;
            if json {
                return output::json(&ban);
            }
            println!("Banned {} until {}", ban.net, ban.expires_at);
        }
        BansCommand::Remove { net, host, conn } => {
            credentials::client(&conn)?
                .remove_ban(&net, host.as_deref())
                .await?;
            println!("Lifted the ban on {}", printable(&net));
        }
    }
    Ok(())
}

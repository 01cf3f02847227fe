//! `rampart db …` and `rampart backup …`: an app's database and backups.

use clap::{Args, Subcommand};
use rampart_core::wire;

use crate::{Connection, Exit, credentials, output};

/// A retention policy's flags: how many of the newest snapshots, and of
/// the newest per day, week and month, to keep (0: none by that rule).
#[derive(Debug, Clone, Copy, Args)]
pub struct Keep {
    #[arg(long, default_value_t = 0)]
    pub keep_last: u32,
    #[arg(long, default_value_t = 0)]
    pub keep_daily: u32,
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: u32,
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: u32,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the app's database and role; replicas get DATABASE_URL at
    /// their next deploy.
    Create {
        app: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show where the app's database is; the password only with --reveal
    /// (owners and admins; audited).
    Info {
        app: String,
        #[arg(long)]
        reveal: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a snapshot of the app's database and media now.
    Run {
        app: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the app's snapshots.
    List {
        app: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Restore a snapshot of APP into a fresh database and media folder.
    /// Live data is replaced only with --force, after a safety snapshot.
    Restore {
        app: String,
        snapshot: String,
        /// Restore into this app instead.
        #[arg(long)]
        into: Option<String>,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Set when the app is backed up and test-restored and what is kept.
    Schedule {
        app: String,
        /// How often: 30s, 15m, 24h, 7d, daily, weekly.
        #[arg(long)]
        every: Option<String>,
        #[command(flatten)]
        keep: Keep,
        /// How often to test-restore the newest snapshot (same forms).
        #[arg(long)]
        verify: Option<String>,
        /// Remove the schedule (snapshots stay).
        #[arg(long, conflicts_with_all = ["every", "verify"])]
        remove: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Test-restore a snapshot (the newest by default) into a scratch
    /// database and folder and compare it with what was recorded.
    Verify {
        app: String,
        snapshot: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// What the app's backups, retention runs, test restores and restores did.
    Results {
        app: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

fn print_db(info: &wire::DatabaseInfo) {
    println!("app       {}", info.app);
    println!("host      {}", info.host);
    println!("port      {}", info.port);
    println!("database  {}", info.database);
    println!("user      {}", info.user);
    println!("tls       required (CA in replicas: {})", info.ca_path);
    if let Some(password) = &info.password {
        println!("password  {password}");
    }
    if let Some(url) = &info.url {
        println!("url       {url}");
    }
}

pub async fn db(cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Create { app, json, conn } => {
            let info = credentials::client(&conn)?.create_database(&app).await?;
            if json {
                return output::json(&info);
            }
            println!(
                "Created database {} for app {}; replicas get DATABASE_URL at their next deploy",
                info.database, info.app
            );
        }
        DbCommand::Info {
            app,
            reveal,
            json,
            conn,
        } => {
            let client = credentials::client(&conn)?;
            let info = if reveal {
                client.reveal_database(&app).await?
            } else {
                client.database(&app).await?
            };
            if json {
                return output::json(&info);
            }
            print_db(&info);
        }
    }
    Ok(())
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

fn print_record(r: &wire::BackupRecord) {
    let outcome = if r.ok { "ok" } else { "FAILED" };
    let snapshot = r
        .snapshot
        .as_deref()
        .map(short)
        .unwrap_or_else(|| "-".into());
    println!(
        "{} {} {outcome} snapshot {snapshot}: {}",
        r.kind, r.app, r.detail
    );
}

pub async fn backup(cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Run { app, json, conn } => {
            let record = credentials::client(&conn)?.run_backup(&app).await?;
            if json {
                return output::json(&record);
            }
            print_record(&record);
        }
        BackupCommand::List { app, json, conn } => {
            let list = credentials::client(&conn)?.backups(&app).await?;
            output::list(
                json,
                &list,
                &["ID", "TIME", "RELEASE", "REASON", "BYTES"],
                |s| {
                    vec![
                        short(&s.id),
                        s.time.clone(),
                        s.release.map_or_else(|| "-".into(), |r| r.to_string()),
                        s.reason.clone(),
                        s.bytes.to_string(),
                    ]
                },
            )?;
        }
        BackupCommand::Restore {
            app,
            snapshot,
            into,
            force,
            json,
            conn,
        } => {
            let request = wire::RestoreBackup { into, force };
            let done = credentials::client(&conn)?
                .restore_backup(&app, &snapshot, &request)
                .await?;
            if json {
                return output::json(&done);
            }
            if let Some(safety) = &done.safety_snapshot {
                println!("Safety snapshot of the replaced data: {}", short(safety));
            }
            println!(
                "Restored snapshot {} into {}: {} tables, {} rows, {} media files, as recorded",
                short(&done.snapshot),
                done.app,
                done.tables,
                done.rows,
                done.media_files
            );
            println!(
                "Connections the app held to the replaced database were closed; an app that keeps \
                 connections open (Django's CONN_MAX_AGE) may fail a request or two as it \
                 reconnects. `rampart restart {}` rolls its replicas if you would rather start clean.",
                done.app
            );
        }
        BackupCommand::Schedule {
            app,
            every,
            keep,
            verify,
            remove,
            json,
            conn,
        } => {
            let client = credentials::client(&conn)?;
            if remove {
                client.remove_backup_schedule(&app).await?;
                println!("Removed the backup schedule of {app}; its snapshots stay");
                return Ok(());
            }
            let schedule = match every {
                None => client.backup_schedule(&app).await?,
                Some(every) => {
                    let request = wire::SetBackupSchedule {
                        every,
                        keep_last: keep.keep_last,
                        keep_daily: keep.keep_daily,
                        keep_weekly: keep.keep_weekly,
                        keep_monthly: keep.keep_monthly,
                        verify,
                    };
                    client.set_backup_schedule(&app, &request).await?
                }
            };
            if json {
                return output::json(&schedule);
            }
            println!(
                "{}: a backup every {}s (next {}), keeping last {} daily {} weekly {} monthly {}",
                schedule.app,
                schedule.every_secs,
                schedule.next_backup_at,
                schedule.keep_last,
                schedule.keep_daily,
                schedule.keep_weekly,
                schedule.keep_monthly
            );
            match (schedule.verify_every_secs, &schedule.next_verify_at) {
                (Some(secs), Some(next)) => {
                    println!("a test restore every {secs}s (next {next})")
                }
                _ => println!("no scheduled test restore"),
            }
        }
        BackupCommand::Verify {
            app,
            snapshot,
            json,
            conn,
        } => {
            let record = credentials::client(&conn)?
                .verify_backup(&app, snapshot)
                .await?;
            if json {
                output::json(&record)?;
            } else {
                print_record(&record);
            }
            if !record.ok {
                return Err(Exit(1).into());
            }
        }
        BackupCommand::Results { app, json, conn } => {
            let list = credentials::client(&conn)?.backup_results(&app).await?;
            output::list(
                json,
                &list,
                &["FINISHED", "KIND", "OUTCOME", "SNAPSHOT", "BYTES", "DETAIL"],
                |r| {
                    vec![
                        r.finished_at.clone(),
                        r.kind.clone(),
                        if r.ok { "ok" } else { "failed" }.into(),
                        r.snapshot
                            .as_deref()
                            .map(short)
                            .unwrap_or_else(|| "-".into()),
                        r.bytes.to_string(),
                        r.detail.clone(),
                    ]
                },
            )?;
        }
    }
    Ok(())
}

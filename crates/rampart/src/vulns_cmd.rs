//! `rampart vulns …` and `rampart sbom`: what releases contain, the known
//! vulnerabilities in it, the advisory data and accepted risks.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rampart_core::wire;

use crate::output::printable;
use crate::{Connection, credentials, output};

/// The most an advisory archive may weigh (the server's limit).
const MAX_ARCHIVE: u64 = 1 << 30;

/// `rampart vulns [APP]`: findings on live releases; the subcommands
/// manage the advisory data and accepted risks.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct VulnsArgs {
    #[command(subcommand)]
    command: Option<VulnsCommand>,
    /// Only this app's findings.
    #[arg(conflicts_with = "own")]
    app: Option<String>,
    /// The platform's own findings: the Rust crates built into it,
    /// matched against crates.io advisories (RustSec).
    #[arg(long = "self")]
    own: bool,
    /// Only findings at this severity or above: critical, high, medium, low.
    #[arg(long)]
    severity: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Subcommand)]
pub enum VulnsCommand {
    /// The advisory data: import OSV records, see how fresh they are.
    #[command(subcommand)]
    Db(DbCommand),
    /// Accept a finding of an app for a while (it stays listed, marked).
    Accept {
        app: String,
        /// The advisory id or one of its aliases (a CVE).
        advisory: String,
        /// Why it is acceptable.
        #[arg(long)]
        reason: String,
        /// How long the acceptance holds (1 to 365 days).
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Withdraw an acceptance.
    Unaccept {
        app: String,
        advisory: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// List acceptances, expired ones included.
    Accepted {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Import OSV records: an `all.zip` file or a folder of `*.json`
    /// records (per ecosystem folders are fine). Re-imports change only
    /// what is newer.
    Import {
        path: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// How many advisories there are and how old the newest is.
    Status {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `rampart sbom APP`: a release's bill of materials, CycloneDX JSON.
#[derive(Debug, Args)]
pub struct SbomArgs {
    app: String,
    /// The release (the live one by default).
    #[arg(long)]
    release: Option<u64>,
    #[command(flatten)]
    conn: Connection,
}

/// The `*.json` files under `dir` as a tar archive; links are not
/// followed.
fn pack_records(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut total = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let full = dir.join(&relative);
        let mut entries: Vec<_> = std::fs::read_dir(&full)
            .with_context(|| format!("cannot read {}", full.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read {}", full.display()))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = relative.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(name);
            } else if kind.is_file() && name.extension().is_some_and(|e| e == "json") {
                total += entry.metadata()?.len();
                if total > MAX_ARCHIVE {
                    bail!(
                        "{} holds more than {MAX_ARCHIVE} bytes of records",
                        dir.display()
                    );
                }
                builder
                    .append_path_with_name(entry.path(), &name)
                    .with_context(|| format!("cannot read {}", entry.path().display()))?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

fn status_line(status: &wire::VulnDbStatus) -> String {
    match (&status.newest_record, status.age_days) {
        (Some(newest), Some(days)) => format!(
            "{} advisories, newest record {newest} ({days} days old){}",
            status.advisories,
            if status.stale {
                "; STALE: import fresh data"
            } else {
                ""
            }
        ),
        _ => "no advisory data: import some with `rampart vulns db import PATH`".to_owned(),
    }
}

pub async fn vulns(args: VulnsArgs) -> anyhow::Result<()> {
    let Some(command) = args.command else {
        let client = credentials::client(&args.conn)?;
        let mut report = if args.own {
            client.own_vulns().await?
        } else {
            client
                .vulns(args.app.as_deref(), args.severity.as_deref())
                .await?
        };
        if args.own
            && let Some(min) = args.severity.as_deref()
        {
            let rank = |s: &str| {
                ["unknown", "low", "medium", "high", "critical"]
                    .iter()
                    .position(|r| r.eq_ignore_ascii_case(s))
            };
            let Some(min) = rank(min) else {
                bail!("severity must be critical, high, medium, low or unknown, not {min:?}");
            };
            report
                .findings
                .retain(|f| rank(&f.severity).is_some_and(|r| r >= min));
        }
        if args.json {
            return output::json(&report);
        }
        let rows: Vec<Vec<String>> = report
            .findings
            .iter()
            .map(|f| {
                vec![
                    f.app.clone(),
                    f.severity.clone(),
                    format!("{} {}", f.package, f.version),
                    f.fixed.clone().unwrap_or_else(|| "-".into()),
                    f.advisory.clone(),
                    f.aliases.join(","),
                    match &f.accepted {
                        Some(a) => format!("accepted until {}", a.expires_at),
                        None => printable(f.summary.as_deref().unwrap_or("")).into_owned(),
                    },
                ]
            })
            .collect();
        output::table(
            &[
                "APP", "SEVERITY", "PACKAGE", "FIXED", "ADVISORY", "ALIASES", "NOTE",
            ],
            &rows,
        );
        eprintln!("{}", status_line(&report.db));
        for line in report.unscanned.iter().chain(&report.unjudged) {
            eprintln!("note: {}", printable(line));
        }
        return Ok(());
    };
    match command {
        VulnsCommand::Db(DbCommand::Import { path, json, conn }) => {
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let (archive, zip) = if meta.is_dir() {
                (pack_records(&path)?, false)
            } else {
                if meta.len() > MAX_ARCHIVE {
                    bail!("{} is larger than {MAX_ARCHIVE} bytes", path.display());
                }
                let mut bytes = Vec::new();
                std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?
                    .take(MAX_ARCHIVE + 1)
                    .read_to_end(&mut bytes)?;
                if !bytes.starts_with(b"PK") {
                    bail!(
                        "{} is not a zip file; give an OSV all.zip or a folder of records",
                        path.display()
                    );
                }
                (bytes, true)
            };
            let client = credentials::client(&conn)?;
            let report = client.import_advisories(archive, zip).await?;
            if json {
                return output::json(&report);
            }
            println!(
                "Imported {} new and {} updated advisories ({} unchanged, {} of other ecosystems skipped, {} refused)",
                report.new,
                report.updated,
                report.unchanged,
                report.skipped,
                report.refused.len()
            );
            for refused in &report.refused {
                eprintln!("refused: {}", printable(refused));
            }
            println!("{}", status_line(&report.status));
            println!("{} findings on live releases", report.findings);
        }
        VulnsCommand::Db(DbCommand::Status { json, conn }) => {
            let status = credentials::client(&conn)?.vulns_db().await?;
            if json {
                return output::json(&status);
            }
            println!("{}", status_line(&status));
            if let Some(at) = &status.last_import {
                println!("last import {at}");
            }
        }
        VulnsCommand::Accept {
            app,
            advisory,
            reason,
            days,
            json,
            conn,
        } => {
            let request = wire::AcceptRisk {
                advisory,
                reason,
                days,
            };
            let accepted = credentials::client(&conn)?
                .accept_risk(&app, &request)
                .await?;
            if json {
                return output::json(&accepted);
            }
            println!(
                "Accepted {} for {} until {}",
                accepted.advisory, accepted.app, accepted.expires_at
            );
        }
        VulnsCommand::Unaccept {
            app,
            advisory,
            conn,
        } => {
            credentials::client(&conn)?
                .unaccept_risk(&app, &advisory)
                .await?;
            println!("Withdrew the acceptance of {advisory} for {app}");
        }
        VulnsCommand::Accepted { json, conn } => {
            let accepted = credentials::client(&conn)?.accepted_risks().await?;
            output::list(
                json,
                &accepted,
                &["APP", "ADVISORY", "EXPIRES", "BY", "REASON"],
                |a| {
                    vec![
                        a.app.clone(),
                        a.advisory.clone(),
                        a.expires_at.clone(),
                        a.created_by.clone(),
                        printable(&a.reason).into_owned(),
                    ]
                },
            )?;
        }
    }
    Ok(())
}

pub async fn sbom(args: SbomArgs) -> anyhow::Result<()> {
    let bom = credentials::client(&args.conn)?
        .sbom(&args.app, args.release)
        .await?;
    output::json(&bom)
}

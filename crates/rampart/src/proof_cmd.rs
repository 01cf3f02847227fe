//! `rampart doctor`, `rampart access-review …` and `rampart evidence …`:
//! the platform audits itself and proves to auditors that its controls
//! ran.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rampart_core::{evidence, wire};

use crate::output::printable;
use crate::{Connection, Exit, credentials, output};

/// The most one bundle file may hold when read back.
const MAX_BUNDLE_FILE: u64 = 256 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Subcommand)]
pub enum AccessReviewCommand {
    /// Record a review of who may do what: the users, roles, MFA, grants
    /// and tokens as they stand now are kept with your conclusion.
    Record {
        /// What the review concluded (and what was changed).
        #[arg(long)]
        note: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the recorded reviews.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Export the evidence of a period as JSON and HTML, signed.
    Export {
        /// The period's start: a date (2026-10-01) or RFC 3339 time.
        #[arg(long)]
        from: String,
        /// Its end, not included.
        #[arg(long)]
        to: String,
        /// A new folder for the bundle.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// Check that a bundle is whole and unedited (offline).
    Verify {
        dir: PathBuf,
        /// The installation's public key (hex) or its fingerprint: the
        /// bundle must be signed by it.
        #[arg(long)]
        key: Option<String>,
    },
}

pub async fn doctor(args: DoctorArgs) -> anyhow::Result<()> {
    let report = credentials::client(&args.conn)?.doctor().await?;
    if args.json {
        output::json(&report)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .checks
            .iter()
            .map(|c| {
                vec![
                    c.status.to_uppercase(),
                    c.control.clone(),
                    printable(&c.detail).into_owned(),
                ]
            })
            .collect();
        output::table(&["STATUS", "CONTROL", "DETAIL"], &rows);
        println!(
            "\n{} passed, {} warned, {} failed",
            report.passed, report.warned, report.failed
        );
    }
    if report.failed > 0 {
        return Err(Exit(1).into());
    }
    Ok(())
}

pub async fn access_review(command: AccessReviewCommand) -> anyhow::Result<()> {
    match command {
        AccessReviewCommand::Record { note, json, conn } => {
            let review = credentials::client(&conn)?
                .record_access_review(&wire::RecordAccessReview { note })
                .await?;
            if json {
                return output::json(&review);
            }
            let users = review.snapshot["users"].as_array().map_or(0, Vec::len);
            let tokens = review.snapshot["tokens"].as_array().map_or(0, Vec::len);
            println!(
                "recorded access review {} of {users} users and {tokens} API tokens",
                review.id
            );
        }
        AccessReviewCommand::List { json, conn } => {
            let reviews = credentials::client(&conn)?.access_reviews().await?;
            output::list(
                json,
                &reviews,
                &["ID", "AT", "REVIEWER", "NOTE"],
                |r: &wire::AccessReview| {
                    vec![
                        r.id.clone(),
                        r.at.clone(),
                        r.reviewer.clone(),
                        r.note.clone(),
                    ]
                },
            )?;
        }
    }
    Ok(())
}

/// Creates `dir` (0700), refusing one that holds anything.
fn new_folder(dir: &Path) -> anyhow::Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            bail!("{} is not empty; export into a new folder", dir.display());
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Reads every file of a bundle folder; folders and links in it are refused.
fn read_bundle(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if !kind.is_file() {
            bail!("{name} in {} is not a plain file", dir.display());
        }
        if files.len() >= 64 {
            bail!("{} holds too many files for a bundle", dir.display());
        }
        let mut bytes = Vec::new();
        std::fs::File::open(entry.path())?
            .take(MAX_BUNDLE_FILE + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_BUNDLE_FILE {
            bail!("{name} is larger than any bundle file");
        }
        files.insert(name, bytes);
    }
    Ok(files)
}

pub async fn evidence(command: EvidenceCommand) -> anyhow::Result<()> {
    match command {
        EvidenceCommand::Export {
            from,
            to,
            out,
            conn,
        } => {
            let client = credentials::client(&conn)?;
            // Refused before the export, so a bad folder costs nothing.
            new_folder(&out)?;
            let bundle = client.export_evidence(&from, &to).await?;
            let mut files = BTreeMap::new();
            for (name, text) in &bundle.files {
                if !evidence::valid_name(name) {
                    bail!("the server sent a file named {name:?}; nothing was written");
                }
                files.insert(name.clone(), text.as_bytes().to_vec());
            }
            // What is written is what verifies: checked before it is kept.
            evidence::verify(&files, Some(&bundle.public_key)).map_err(|e| {
                anyhow::anyhow!("the server sent a bundle that does not verify: {e}")
            })?;
            for (name, bytes) in &files {
                use std::io::Write;
                let path = out.join(name);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                file.write_all(bytes)?;
                file.sync_all()?;
            }
            println!("wrote the evidence to {}", out.display());
            println!("public key:  {}", bundle.public_key);
            println!("fingerprint: {}", bundle.fingerprint);
            println!(
                "check it with: rampart evidence verify {} --key {}",
                out.display(),
                bundle.fingerprint
            );
        }
        EvidenceCommand::Verify { dir, key } => {
            let files = read_bundle(&dir)?;
            match evidence::verify(&files, key.as_deref()) {
                Ok(verified) => {
                    let m = &verified.manifest;
                    println!(
                        "the bundle is whole: {} files signed by key {}",
                        m.files.len(),
                        verified.fingerprint
                    );
                    println!(
                        "period {} to {}, exported {} by {}",
                        printable(&m.from),
                        printable(&m.to),
                        printable(&m.exported_at),
                        printable(&m.exported_by)
                    );
                    if key.is_none() {
                        println!(
                            "compare the fingerprint with the one printed at export, or pass --key"
                        );
                    }
                }
                Err(problem) => {
                    eprintln!("rampart: the bundle does not verify: {problem}");
                    return Err(Exit(1).into());
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ReportsCommand {
    /// List security reports, newest first: open ones, or all with --all.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// One report and what it said (shown as inert text).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Triage a report: its severity, and the incident it belongs to.
    Triage {
        id: String,
        /// low, medium, high or critical.
        #[arg(long)]
        severity: String,
        /// Link it to this incident.
        #[arg(long, conflicts_with = "open_incident")]
        incident: Option<String>,
        /// Open a new incident for it.
        #[arg(long)]
        open_incident: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Close a report with what came of it.
    Close {
        id: String,
        #[arg(long)]
        resolution: String,
        #[command(flatten)]
        conn: Connection,
    },
}

const REPORT_HEADERS: [&str; 7] = [
    "ID", "RECEIVED", "HOST", "STATE", "SEVERITY", "INCIDENT", "SUMMARY",
];

fn report_row(r: &wire::SecurityReport) -> Vec<String> {
    vec![
        r.id.clone(),
        r.received_at.clone(),
        r.host.clone(),
        r.state.clone(),
        r.severity.clone().unwrap_or_else(|| "-".into()),
        r.incident.clone().unwrap_or_else(|| "-".into()),
        r.title.clone(),
    ]
}

pub async fn reports(command: ReportsCommand) -> anyhow::Result<()> {
    match command {
        ReportsCommand::List { all, json, conn } => {
            let reports = credentials::client(&conn)?.reports(all).await?;
            output::list(json, &reports, &REPORT_HEADERS, report_row)?;
        }
        ReportsCommand::Show { id, json, conn } => {
            let detail = credentials::client(&conn)?.report(&id).await?;
            if json {
                return output::json(&detail);
            }
            output::table(&REPORT_HEADERS, &[report_row(&detail.report)]);
            let r = &detail.report;
            println!(
                "\nfrom {} ({} bytes, {}); contact: {}",
                r.client,
                r.size,
                printable(&detail.content_type),
                printable(if r.contact.is_empty() {
                    "-"
                } else {
                    &r.contact
                })
            );
            if let Some(resolution) = &r.resolution {
                println!("resolution: {}", printable(resolution));
            }
            println!("\n{}", printable(&detail.body));
        }
        ReportsCommand::Triage {
            id,
            severity,
            incident,
            open_incident,
            conn,
        } => {
            let report = credentials::client(&conn)?
                .triage_report(
                    &id,
                    &wire::TriageReport {
                        severity,
                        incident,
                        open_incident,
                    },
                )
                .await?;
            println!(
                "report {} is triaged {}{}",
                report.id,
                report.severity.unwrap_or_default(),
                report
                    .incident
                    .map(|i| format!(", incident {i}"))
                    .unwrap_or_default()
            );
        }
        ReportsCommand::Close {
            id,
            resolution,
            conn,
        } => {
            credentials::client(&conn)?
                .close_report(&id, &wire::CloseReport { resolution })
                .await?;
            println!("report {id} is closed");
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Delete and pseudonymise personal data past its time now, as the
    /// daily run does ([privacy] retention and pseudonymize_after).
    Sweep {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

pub async fn privacy(command: PrivacyCommand) -> anyhow::Result<()> {
    match command {
        PrivacyCommand::Sweep { json, conn } => {
            let sweep = credentials::client(&conn)?.privacy_sweep().await?;
            if json {
                return output::json(&sweep);
            }
            println!(
                "access-log days: {} deleted, {} pseudonymised",
                sweep.logs_removed, sweep.logs_pseudonymised
            );
            println!(
                "app events deleted: {}; sent notifications deleted: {}",
                sweep.events_removed, sweep.deliveries_removed
            );
            println!(
                "security report senders pseudonymised: {}",
                sweep.reports_pseudonymised
            );
        }
    }
    Ok(())
}

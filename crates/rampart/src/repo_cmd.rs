//! `rampart repo …`: the backup engine as a restic-style command.
//!
//! These commands run without the async runtime: the engine is synchronous
//! and its storage backend owns its own.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rampart_backup::check::ReadData;
use rampart_backup::forget::{KeepPolicy, decide};
use rampart_backup::{BackupRequest, KdfParams, Kind, ObjectBackend, Progress, Repository, Source};

use crate::data_cmd::Keep;
use crate::{Exit, output};

#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The repository: a folder, or s3://bucket/prefix (credentials, region
    /// and endpoint from the AWS_* environment variables).
    #[arg(long, global = true, env = "RAMPART_REPO", hide_env_values = true)]
    repo: Option<String>,
    /// A file whose first line is the password (else RAMPART_REPO_PASSWORD).
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, global = true)]
    quiet: bool,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Debug, Subcommand)]
enum RepoCommand {
    /// Create a new repository.
    Init,
    /// Back up files and directories, or a stream with --stdin.
    Backup {
        paths: Vec<PathBuf>,
        /// Read the data to back up from standard input.
        #[arg(long)]
        stdin: bool,
        /// The file name to store standard input under.
        #[arg(long, default_value = "stdin")]
        stdin_filename: String,
        /// A tag for the snapshot (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List snapshots.
    Snapshots,
    /// List the files of a snapshot.
    Ls { snapshot: String },
    /// Restore a snapshot into a folder.
    Restore {
        snapshot: String,
        #[arg(long)]
        target: PathBuf,
        /// Restore only paths matching this glob (repeatable), e.g. "/data/*.sql".
        #[arg(long = "include")]
        include: Vec<String>,
    },
    /// Write one file of a snapshot to standard output.
    Dump { snapshot: String, file: String },
    /// Verify the repository; with --read-data, every byte.
    Check {
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Read a random share of the data, e.g. 10%.
        #[arg(long, value_name = "N%")]
        read_data_subset: Option<String>,
    },
    /// Remove snapshots by a retention policy.
    Forget {
        #[command(flatten)]
        keep: Keep,
        /// Prune afterwards.
        #[arg(long)]
        prune: bool,
    },
    /// Remove data no snapshot needs.
    Prune,
    /// Manage the passwords that open the repository.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Add a password (from --new-password-file or RAMPART_REPO_NEW_PASSWORD).
    Add {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// List key slots.
    List,
    /// Remove a key slot by id (not the one in use).
    Remove { id: String },
}

fn read_secret(file: Option<&PathBuf>, var: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
        let line = text.lines().next().unwrap_or_default();
        if line.is_empty() {
            bail!("the {what} file {} is empty", path.display());
        }
        return Ok(line.as_bytes().to_vec());
    }
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(value.into_bytes()),
        _ => bail!(
            "no {what}: set {var} or pass --{}-file",
            what.replace(' ', "-")
        ),
    }
}

/// KDF cost for new key slots. `RAMPART_REPO_KDF_MEMORY_KIB` lowers it for
/// tests; the engine refuses anything below its floor.
fn kdf() -> anyhow::Result<KdfParams> {
    let mut params = KdfParams::DEFAULT;
    if let Ok(text) = std::env::var("RAMPART_REPO_KDF_MEMORY_KIB") {
        params.m_kib = text
            .parse()
            .context("RAMPART_REPO_KDF_MEMORY_KIB is not a number")?;
        params.t = 1;
    }
    params.check()?;
    Ok(params)
}

/// A progress bar on a terminal, nothing elsewhere.
struct Bar(Option<ProgressBar>, AtomicU64);

impl Bar {
    fn new(show: bool, total: Option<u64>) -> Self {
        if !show || !std::io::stderr().is_terminal() {
            return Self(None, AtomicU64::new(0));
        }
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::new_spinner(),
        };
        let template = if total.is_some() {
            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}"
        } else {
            "{spinner} {bytes} {binary_bytes_per_sec} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(Some(bar), AtomicU64::new(0))
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn bytes(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    fn file(&self) {
        let files = self.1.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.0 {
            bar.set_message(format!("{files} files"));
        }
    }
}

pub fn run(args: RepoArgs) -> anyhow::Result<()> {
    let location = args
        .repo
        .clone()
        .context("no repository: pass --repo or set RAMPART_REPO")?;
    let password = read_secret(
        args.password_file.as_ref(),
        "RAMPART_REPO_PASSWORD",
        "password",
    )?;
    let talk = !args.quiet && !args.json;

    if let RepoCommand::Init = args.command {
        let backend = Arc::new(ObjectBackend::open(&location, true)?);
        let repo = Repository::init(backend, &password, kdf()?)?;
        if args.json {
            return output::json(
                &serde_json::json!({"id": repo.config().id, "location": location}),
            );
        }
        if talk {
            println!("Created repository {} at {location}", repo.config().id);
        }
        return Ok(());
    }

    let backend = Arc::new(ObjectBackend::open(&location, false)?);
    let repo = Repository::open(backend, &password)?;
    match args.command {
        RepoCommand::Init => unreachable!("handled above"),
        RepoCommand::Backup {
            paths,
            stdin,
            stdin_filename,
            tags,
        } => {
            let source = if stdin {
                if !paths.is_empty() {
                    bail!("give either paths or --stdin, not both");
                }
                Source::Stdin {
                    name: stdin_filename,
                    reader: Box::new(std::io::stdin()),
                }
            } else {
                Source::Paths(paths)
            };
            let bar = Bar::new(talk, None);
            let outcome = rampart_backup::backup(&repo, BackupRequest { source, tags }, &bar)?;
            bar.finish();
            for warning in &outcome.warnings {
                eprintln!("rampart: warning: {warning}");
            }
            let s = &outcome.snapshot.summary;
            if args.json {
                output::json(&serde_json::json!({
                    "id": outcome.id.hex(),
                    "summary": s,
                    "warnings": outcome.warnings,
                }))?;
            } else if talk {
                println!(
                    "{} files ({} unchanged), {} dirs, {} bytes; added {} bytes in {} new chunks, {} bytes stored",
                    s.files,
                    s.files_unchanged,
                    s.dirs,
                    s.bytes,
                    s.bytes_added,
                    s.blobs_added,
                    s.bytes_stored
                );
                println!("snapshot {} saved", outcome.id.hex());
            } else if !args.quiet {
                println!("{}", outcome.id.hex());
            }
            if !outcome.warnings.is_empty() {
                return Err(Exit(3).into());
            }
        }
        RepoCommand::Snapshots => {
            let snaps = repo.snapshots()?;
            if args.json {
                let list: Vec<_> = snaps
                    .iter()
                    .map(|(id, s)| serde_json::json!({"id": id.hex(), "snapshot": s}))
                    .collect();
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = snaps
                .iter()
                .map(|(id, s)| {
                    vec![
                        id.hex()[..12].to_owned(),
                        s.time[..19].replace('T', " "),
                        s.hostname.clone(),
                        s.tags.join(","),
                        s.paths.join(" "),
                    ]
                })
                .collect();
            if !args.quiet {
                output::table(&["ID", "TIME", "HOST", "TAGS", "PATHS"], &rows);
            }
        }
        RepoCommand::Ls { snapshot } => {
            let (_, snap) = repo.find_snapshot(&snapshot)?;
            let index = repo.load_index()?;
            let entries = repo.walk(&index, &snap.tree)?;
            if args.json {
                return output::json(&entries);
            }
            for e in entries {
                let kind = match e.node.kind {
                    rampart_backup::format::NodeKind::Dir => 'd',
                    rampart_backup::format::NodeKind::File => '-',
                    rampart_backup::format::NodeKind::Symlink => 'l',
                };
                println!("{kind}{:04o} {:>12} {}", e.node.mode, e.node.size, e.path);
            }
        }
        RepoCommand::Restore {
            snapshot,
            target,
            include,
        } => {
            let bar = Bar::new(talk, None);
            let report = rampart_backup::restore(&repo, &snapshot, &target, &include, &bar)?;
            bar.finish();
            for (path, reason) in &report.failed {
                eprintln!("rampart: cannot restore {path}: {reason}");
            }
            if args.json {
                output::json(&report)?;
            } else if talk {
                println!(
                    "restored {} files, {} dirs, {} bytes to {}",
                    report.files,
                    report.dirs,
                    report.bytes,
                    target.display()
                );
            }
            if !report.failed.is_empty() {
                return Err(Exit(1).into());
            }
        }
        RepoCommand::Dump { snapshot, file } => {
            let mut out = std::io::stdout().lock();
            repo.dump(&snapshot, &file, &mut out)?;
        }
        RepoCommand::Check {
            read_data,
            read_data_subset,
        } => {
            let read = match (read_data, read_data_subset) {
                (true, _) => ReadData::All,
                (false, Some(text)) => {
                    let n: f64 = text
                        .trim_end_matches('%')
                        .parse()
                        .ok()
                        .filter(|n: &f64| *n > 0.0 && *n <= 100.0)
                        .with_context(|| {
                            format!(
                                "--read-data-subset {text:?} is not a percentage between 0 and 100"
                            )
                        })?;
                    ReadData::Subset(n)
                }
                (false, None) => ReadData::None,
            };
            let report = rampart_backup::check(&repo, read)?;
            if args.json {
                output::json(&report)?;
            } else {
                for w in &report.warnings {
                    if !args.quiet {
                        eprintln!("rampart: warning: {w}");
                    }
                }
                for e in &report.errors {
                    eprintln!("rampart: {e}");
                }
                if talk && report.ok() {
                    println!(
                        "no errors: {} snapshots, {} packs ({} read), {} blobs",
                        report.snapshots, report.packs, report.packs_read, report.blobs
                    );
                }
            }
            if !report.ok() {
                return Err(Exit(1).into());
            }
        }
        RepoCommand::Forget { keep, prune } => {
            let policy = KeepPolicy {
                last: keep.keep_last,
                daily: keep.keep_daily,
                weekly: keep.keep_weekly,
                monthly: keep.keep_monthly,
            };
            let decisions = {
                let _lock = repo.lock(false)?;
                let decisions = decide(&repo.snapshots()?, policy)?;
                for d in decisions.iter().filter(|d| !d.keep) {
                    repo.backend().delete(Kind::Snapshot, &d.id.hex())?;
                }
                decisions
            };
            if args.json {
                output::json(&decisions)?;
            } else if talk {
                for d in &decisions {
                    let what = if d.keep {
                        format!("keep ({})", d.reasons.join(", "))
                    } else {
                        "remove".to_owned()
                    };
                    println!("{} {} {what}", &d.id.hex()[..12], &d.time[..19]);
                }
            }
            if prune {
                let report = rampart_backup::prune::prune(&repo)?;
                if talk {
                    println!(
                        "pruned: {} packs deleted, {} rewritten, {} bytes freed",
                        report.packs_deleted, report.packs_rewritten, report.bytes_freed
                    );
                }
            }
        }
        RepoCommand::Prune => {
            let report = rampart_backup::prune::prune(&repo)?;
            if args.json {
                output::json(&report)?;
            } else if talk {
                println!(
                    "pruned: {} packs deleted, {} rewritten, {} written, {} blobs removed, {} bytes freed",
                    report.packs_deleted,
                    report.packs_rewritten,
                    report.packs_written,
                    report.blobs_removed,
                    report.bytes_freed
                );
            }
        }
        RepoCommand::Key(KeyCommand::Add { new_password_file }) => {
            let new = read_secret(
                new_password_file.as_ref(),
                "RAMPART_REPO_NEW_PASSWORD",
                "new password",
            )?;
            let id = repo.add_key(&new, kdf()?)?;
            if args.json {
                return output::json(&serde_json::json!({"id": id}));
            }
            if talk {
                println!("added key {id}");
            }
        }
        RepoCommand::Key(KeyCommand::List) => {
            let keys = repo.list_keys()?;
            if args.json {
                return output::json(&keys);
            }
            let rows: Vec<Vec<String>> = keys
                .into_iter()
                .map(|k| {
                    vec![
                        if k.current { "*".into() } else { " ".into() },
                        k.id[..12].to_owned(),
                        k.created[..19].replace('T', " "),
                        k.hostname,
                    ]
                })
                .collect();
            output::table(&[" ", "ID", "CREATED", "HOST"], &rows);
        }
        RepoCommand::Key(KeyCommand::Remove { id }) => {
            let removed = repo.remove_key(&id)?;
            if talk {
                println!("removed key {removed}");
            }
        }
    }
    Ok(())
}

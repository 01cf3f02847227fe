//! The `rampart` command: parses arguments and wires components together.
//! Logic lives in the library crates, where tests can reach it.

mod alerts_cmd;
mod bans_cmd;
mod commands;
mod credentials;
mod cron_cmd;
mod data_cmd;
mod demo;
mod deploy_cmd;
mod edge_cmd;
mod identity_cmd;
mod incidents_cmd;
mod ingress_cmd;
mod nodes_cmd;
mod output;
mod proof_cmd;
mod repo_cmd;
mod terminal;
mod up;
mod vulns_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// mimalloc: the edge allocates and frees many small buffers per request,
/// and the system allocator's consolidation showed up in its profile. It is
/// built without transparent huge pages (`no_thp`): with them, 10,000 idle
/// HTTPS connections peaked at 442 MiB instead of 309 MiB, for no measured
/// gain in throughput.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rampart: a security-first, self-hosted application platform.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the platform: the control-plane API, the edge and the apps.
    Up(up::UpArgs),
    /// Run the edge load balancer alone.
    Edge(edge_cmd::EdgeArgs),
    /// Run an edge on another node of the platform's Swarm, serving its
    /// apps there (credential from `rampart nodes ingress`).
    Ingress(ingress_cmd::IngressArgs),
    /// Sign in (email, password, code; or an API token file) and store the
    /// session the other commands use.
    Login(commands::LoginArgs),
    /// Sign out: revoke the stored session and forget it.
    Logout {
        #[command(flatten)]
        conn: Connection,
    },
    /// Add, list, remove users; roles, grants, invitations, personal data.
    #[command(subcommand)]
    Users(identity_cmd::UsersCommand),
    /// Multi-factor authentication.
    #[command(subcommand)]
    Mfa(identity_cmd::MfaCommand),
    /// Create, list, show, configure and delete apps.
    #[command(subcommand)]
    Apps(commands::AppsCommand),
    /// Set, unset and list an app's environment variables and secrets.
    #[command(subcommand)]
    Env(commands::EnvCommand),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Tokens(commands::TokensCommand),
    /// Read and verify the tamper-evident audit log.
    #[command(subcommand)]
    Audit(commands::AuditCommand),
    /// Deploy a new release from a build context or an image.
    Deploy(deploy_cmd::DeployArgs),
    /// List an app's releases.
    Releases(deploy_cmd::AppArgs),
    /// Deploy an earlier release again.
    Rollback(deploy_cmd::RollbackArgs),
    /// Rebuild the live release from its build context on the base images
    /// the engine has now (a patched base), deploy it with no downtime and
    /// say which findings it closed.
    Patch(deploy_cmd::PatchArgs),
    /// Run a one-off command in a container of the app's live release:
    /// `rampart run APP -- python3 manage.py createsuperuser --noinput`.
    Run(deploy_cmd::RunArgs),
    /// Replace every replica with a fresh one of the live release, with no
    /// downtime.
    Restart(deploy_cmd::RestartArgs),
    /// Set how many replicas serve an app.
    Scale(deploy_cmd::ScaleArgs),
    /// Show an app's replicas, their health and recent events.
    Ps(deploy_cmd::AppArgs),
    /// Print an app's logs.
    Logs(deploy_cmd::LogsArgs),
    /// An app's PostgreSQL database.
    #[command(subcommand)]
    Db(data_cmd::DbCommand),
    /// Back up, list, restore and test-restore apps; schedules and retention.
    #[command(subcommand)]
    Backup(data_cmd::BackupCommand),
    /// Commands an app runs on a schedule, and what their runs did.
    #[command(subcommand)]
    Cron(cron_cmd::CronCommand),
    /// Clients banned at the edge: by the watch's detectors or by hand.
    #[command(subcommand)]
    Bans(bans_cmd::BansCommand),
    /// What the platform noticed: crash loops, apps down, failed deploys,
    /// jobs and backups.
    #[command(subcommand)]
    Alerts(alerts_cmd::AlertsCommand),
    /// Incidents: timelines, escalation, post-mortems and follow-ups.
    #[command(subcommand)]
    Incidents(incidents_cmd::IncidentsCommand),
    /// Audit the platform's own configuration: one line per control,
    /// pass, warn or fail; exits 1 on a fail.
    Doctor(proof_cmd::DoctorArgs),
    /// Record and list reviews of who may do what.
    #[command(subcommand, name = "access-review")]
    AccessReview(proof_cmd::AccessReviewCommand),
    /// Security reports from the public intake: list, read, triage, close.
    #[command(subcommand)]
    Reports(proof_cmd::ReportsCommand),
    /// Personal data past its time: deleted or pseudonymised (daily, or now).
    #[command(subcommand)]
    Privacy(proof_cmd::PrivacyCommand),
    /// Export signed evidence that the controls ran, and verify it.
    #[command(subcommand)]
    Evidence(proof_cmd::EvidenceCommand),
    /// Where alerts go: signed webhooks and email.
    #[command(subcommand)]
    Notify(alerts_cmd::NotifyCommand),
    /// Each app's traffic now and over the last hour, replicas, backups,
    /// bans and firing alerts.
    Top(alerts_cmd::TopArgs),
    /// Known vulnerabilities in what live releases contain; the advisory
    /// data (OSV) and accepted risks.
    Vulns(vulns_cmd::VulnsArgs),
    /// A release's bill of materials: every package in its image, as
    /// CycloneDX JSON.
    Sbom(vulns_cmd::SbomArgs),
    /// The backup engine: encrypted, deduplicated repositories.
    Repo(repo_cmd::RepoArgs),
    /// The machines of a Swarm: list, label, drain (evacuate), activate.
    #[command(subcommand)]
    Nodes(nodes_cmd::NodesCommand),
    /// The relay between the edge and a Swarm's overlay networks; the
    /// platform starts it in a container of its own.
    #[command(hide = true)]
    Relay {
        /// The Unix socket to listen on.
        #[arg(long)]
        socket: std::path::PathBuf,
    },
}

/// How client commands reach the server; each falls back to the stored
/// login.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Server URL, e.g. https://127.0.0.1:7443.
    #[arg(long, global = true, env = "RAMPART_SERVER", hide_env_values = true)]
    server: Option<String>,
    /// CA certificate file to trust for the server.
    #[arg(long, global = true, env = "RAMPART_CA", hide_env_values = true)]
    ca: Option<PathBuf>,
}

/// An error that has already been reported, carrying the exit code.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    // Everything Rampart writes is private to its user whatever umask it was
    // started with; what others must read (the CA certificate for replicas,
    // media folders) is opened explicitly where it is made.
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    if let Command::Repo(args) = cli.command {
        // The backup engine is synchronous and brings its own I/O runtime.
        return finish(repo_cmd::run(args));
    }
    let workers = match worker_threads() {
        Ok(workers) => workers,
        Err(message) => {
            eprintln!("rampart: error: {message}");
            return ExitCode::from(2);
        }
    };
    // The standalone edge serves HTTPS from worker threads of its own; its
    // main runtime only keeps signals, health checks and certificates.
    let mut builder = if matches!(cli.command, Command::Edge(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = workers {
            builder.worker_threads(n);
        }
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("rampart: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Edge(args) => edge_cmd::run(args).await,
            Command::Ingress(args) => ingress_cmd::run(args).await,
            Command::Relay { socket } => rampart_edge::relay::serve(&socket)
                .await
                .with_context(|| format!("relay on {}", socket.display())),
            Command::Login(args) => commands::login(args).await,
            Command::Logout { conn } => identity_cmd::logout(conn).await,
            Command::Users(cmd) => identity_cmd::users(cmd).await,
            Command::Mfa(cmd) => identity_cmd::mfa(cmd).await,
            Command::Apps(cmd) => commands::apps(cmd).await,
            Command::Env(cmd) => commands::env(cmd).await,
            Command::Tokens(cmd) => commands::tokens(cmd).await,
            Command::Audit(cmd) => commands::audit(cmd).await,
            Command::Deploy(args) => deploy_cmd::deploy(args).await,
            Command::Releases(args) => deploy_cmd::releases(args).await,
            Command::Rollback(args) => deploy_cmd::rollback(args).await,
            Command::Patch(args) => deploy_cmd::patch(args).await,
            Command::Run(args) => deploy_cmd::run(args).await,
            Command::Restart(args) => {
                let client = credentials::client(&args.conn)?;
                deploy_cmd::restart(&client, &args.app).await
            }
            Command::Scale(args) => deploy_cmd::scale(args).await,
            Command::Ps(args) => deploy_cmd::ps(args).await,
            Command::Logs(args) => deploy_cmd::logs(args).await,
            Command::Db(cmd) => data_cmd::db(cmd).await,
            Command::Backup(cmd) => data_cmd::backup(cmd).await,
            Command::Cron(cmd) => cron_cmd::run(cmd).await,
            Command::Bans(cmd) => bans_cmd::run(cmd).await,
            Command::Nodes(cmd) => nodes_cmd::run(cmd).await,
            Command::Alerts(cmd) => alerts_cmd::alerts(cmd).await,
            Command::Notify(cmd) => alerts_cmd::notify(cmd).await,
            Command::Incidents(cmd) => incidents_cmd::run(cmd).await,
            Command::Doctor(args) => proof_cmd::doctor(args).await,
            Command::AccessReview(cmd) => proof_cmd::access_review(cmd).await,
            Command::Evidence(cmd) => proof_cmd::evidence(cmd).await,
            Command::Reports(cmd) => proof_cmd::reports(cmd).await,
            Command::Privacy(cmd) => proof_cmd::privacy(cmd).await,
            Command::Top(args) => alerts_cmd::top(args).await,
            Command::Vulns(args) => vulns_cmd::vulns(args).await,
            Command::Sbom(args) => vulns_cmd::sbom(args).await,
            Command::Repo(_) => unreachable!("handled before the runtime starts"),
        }
    });
    finish(result)
}

/// `TOKIO_WORKER_THREADS`, when set: a whole number from 1 to 256. (Left to
/// tokio, a bad value is a panic.)
pub fn worker_threads() -> Result<Option<usize>, String> {
    const MAX_WORKER_THREADS: usize = rampart_edge::config::MAX_WORKERS as usize;
    let Some(value) = std::env::var_os("TOKIO_WORKER_THREADS") else {
        return Ok(None);
    };
    value
        .to_str()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (1..=MAX_WORKER_THREADS).contains(n))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "TOKIO_WORKER_THREADS={} is not a number of threads from 1 to {MAX_WORKER_THREADS}",
                value.to_string_lossy()
            )
        })
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<Exit>() {
            Some(Exit(code)) => ExitCode::from(*code),
            None => {
                let line = format!("{err:#}").replace('\n', " ");
                eprintln!("rampart: error: {}", output::printable(&line));
                ExitCode::FAILURE
            }
        },
    }
}

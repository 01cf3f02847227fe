//! Runtime commands: deploy, releases, rollback, scale, ps, logs and app
//! settings.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use rampart_client::{Client, Deploy};
use rampart_core::deploy::SettingsPatch;
use rampart_core::wire::{self, DeployLine};

use crate::output::printable;
use crate::{Connection, Exit, credentials, output};

/// Largest build context the CLI sends.
const MAX_CONTEXT: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct DeployArgs {
    app: String,
    /// A directory with a Dockerfile: it is sent as the build context,
    /// honouring .dockerignore, and built into rampart/APP:rN.
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    path: Option<PathBuf>,
    /// An image the Docker engine already has (nothing is pulled).
    #[arg(long)]
    image: Option<String>,
    /// Print the release as JSON at the end instead of progress.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    app: String,
    /// The release to deploy again; the previous live one by default.
    #[arg(long)]
    to: Option<u64>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct PatchArgs {
    app: String,
    /// Pull the base images from their registry first (where one is
    /// reachable); otherwise the engine's own images under those names.
    #[arg(long)]
    pull: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct AppArgs {
    app: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    pub app: String,
    /// The release whose image runs it [default: the live one].
    #[arg(long)]
    pub release: Option<u64>,
    /// How long it may run before it is stopped: 30s, 15m, 2h [default: 15m].
    #[arg(long)]
    pub timeout: Option<String>,
    /// A variable for this run only, over the app's (repeatable); never
    /// recorded.
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Never give it a terminal, even when run from one: its output comes
    /// as lines (control characters escaped) and it reads no input.
    #[arg(long, short = 'T')]
    pub no_tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// Runs a one-off command and makes its exit status this process's. From
/// a terminal it runs on one (keys go to it, its output comes as printed);
/// otherwise its output goes to stdout line by line, control characters
/// escaped.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = credentials::client(&args.conn)?;
    let mut env = crate::commands::parse_pairs(args.env)?;
    let tty = (!args.no_tty && crate::terminal::is_interactive()).then(crate::terminal::size);
    if tty.is_some()
        && !env.contains_key("TERM")
        && let Ok(term) = std::env::var("TERM")
        && !term.is_empty()
        && term.len() <= 64
        && term
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-+._".contains(&b))
    {
        env.insert("TERM".into(), term);
    }
    let request = wire::RunCommand {
        argv: args.command,
        release: args.release,
        timeout_secs: args.timeout.as_deref().map(parse_duration).transpose()?,
        env,
        tty,
    };
    let last = if tty.is_some() {
        let connection = client.run_terminal(&args.app, &request).await?;
        crate::terminal::session(connection).await?
    } else {
        let mut out = std::io::stdout();
        client
            .run(&args.app, &request, |line| {
                if let wire::RunLine::Output { line } = line {
                    let _ = writeln!(out, "{}", printable(line));
                }
            })
            .await?
    };
    match last {
        wire::RunLine::Exit { status: 0 } => Ok(()),
        wire::RunLine::Exit { status } => {
            Err(Exit(u8::try_from(status.clamp(1, 255)).unwrap_or(1)).into())
        }
        wire::RunLine::TimedOut { secs } => {
            eprintln!("error: the command ran past its {secs} s deadline and was stopped");
            Err(Exit(124).into())
        }
        wire::RunLine::Failed { message } => bail!("{}", printable(&message)),
        other => bail!("unexpected last line of the run: {other:?}"),
    }
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    pub app: String,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    app: String,
    /// How many replicas run each process: `web=3 worker=2` (0 stops one).
    #[arg(value_name = "PROCESS=COUNT")]
    counts: Vec<String>,
    /// How many replicas serve the app (its web process; 0 stops it).
    #[arg(long)]
    replicas: Option<u32>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    app: String,
    /// Keep printing new lines.
    #[arg(long, short)]
    follow: bool,
    /// Only lines newer than this: 30s, 10m, 2h, 1d.
    #[arg(long)]
    since: Option<String>,
    /// At most this many of the newest lines per replica.
    #[arg(long, default_value_t = 200)]
    tail: u32,
    #[command(flatten)]
    conn: Connection,
}

/// Settings of an app; unnamed ones keep their value.
#[derive(Debug, Args)]
pub struct ConfigureArgs {
    pub app: String,
    /// Port the app listens on inside its container.
    #[arg(long)]
    pub port: Option<u16>,
    /// Path of the HTTP health check.
    #[arg(long)]
    pub health_path: Option<String>,
    /// Seconds a new replica has to become healthy.
    #[arg(long)]
    pub health_timeout: Option<u32>,
    /// Seconds an old replica may finish its requests before it stops.
    #[arg(long)]
    pub drain: Option<u32>,
    #[arg(long)]
    pub memory_mb: Option<u32>,
    /// CPUs in thousandths (1000 = one CPU).
    #[arg(long)]
    pub cpu_millis: Option<u32>,
    #[arg(long)]
    pub pids: Option<u32>,
    /// Allow connections beyond the app's own network.
    #[arg(long)]
    pub egress: Option<bool>,
    /// Let an image that runs as root keep doing so.
    #[arg(long)]
    pub allow_root: Option<bool>,
    /// Refuse deploys whose image has critical findings nobody accepted.
    #[arg(long)]
    pub refuse_critical: Option<bool>,
    /// Rebuild and redeploy the live release by itself when a patched base
    /// image fixes findings (like `rampart patch`).
    #[arg(long)]
    pub auto_patch: Option<bool>,
    /// When unattended patches may run: HH:MM-HH:MM in UTC ("" for any time).
    #[arg(long)]
    pub patch_window: Option<String>,
    /// The app's own security.txt Contact, listed before the platform's: a
    /// mailto:, https:// or tel: URI ("" to clear).
    #[arg(long)]
    pub security_contact: Option<String>,
    /// The app's own security.txt Policy: an https:// URI ("" to clear).
    #[arg(long)]
    pub security_policy: Option<String>,
    /// On a Swarm: a placement constraint of the app's replicas, such as
    /// "node.labels.pool == gpu"; repeat for more, "" to clear.
    #[arg(long)]
    pub placement: Option<Vec<String>>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// Parses `30s`, `10m`, `2h`, `1d` (or plain seconds).
pub fn parse_duration(text: &str) -> anyhow::Result<u64> {
    rampart_core::wire::parse_duration(text).map_err(anyhow::Error::msg)
}

/// Runs a deploy, printing its progress; fails (exit 1) when it fails.
async fn follow_deploy(client: &Client, app: &str, what: Deploy, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stderr();
    let last = client
        .deploy(app, what, |line| {
            if json {
                return;
            }
            let _ = match line {
                DeployLine::Build { line } => writeln!(out, "  | {}", printable(line)),
                DeployLine::Release { line } => writeln!(out, "  > {}", printable(line)),
                DeployLine::Step { message } => writeln!(out, "-> {}", printable(message)),
                _ => Ok(()),
            };
        })
        .await?;
    match last {
        DeployLine::Done { release } => {
            if json {
                return output::json(&release);
            }
            println!(
                "Release {} of {app} is live ({})",
                release.number, release.image
            );
            Ok(())
        }
        DeployLine::Failed {
            message,
            release,
            serving,
        } => {
            if json && let Some(release) = &release {
                output::json(release)?;
            }
            match (release, serving) {
                (Some(r), Some(live)) => eprintln!(
                    "error: release {} of {app} failed; release {live} keeps serving: {}",
                    r.number,
                    printable(&message)
                ),
                (Some(r), None) => eprintln!(
                    "error: release {} of {app} failed; {app} has no release serving: {}",
                    r.number,
                    printable(&message)
                ),
                (None, _) => {
                    eprintln!("error: the deploy of {app} failed: {}", printable(&message))
                }
            }
            Err(Exit(1).into())
        }
        other => bail!("unexpected last line of the deploy: {other:?}"),
    }
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let client = credentials::client(&args.conn)?;
    let what = match (&args.path, args.image) {
        (Some(path), _) => {
            let context = rampart_client::context::pack(path, MAX_CONTEXT)?;
            eprintln!(
                "-> sending a build context of {} bytes from {}",
                context.len(),
                path.display()
            );
            Deploy::Build(context)
        }
        (None, Some(image)) => Deploy::Image(image),
        (None, None) => bail!("give --path DIR or --image REF"),
    };
    follow_deploy(&client, &args.app, what, args.json).await
}

/// Deploys the live release's image again, so its replicas pick up changed
/// variables, with the same zero-downtime rollout as any deploy.
pub async fn restart(client: &Client, app: &str) -> anyhow::Result<()> {
    let live = client
        .releases(app)
        .await?
        .into_iter()
        .find(|r| r.status == rampart_core::deploy::ReleaseStatus::Live);
    match live {
        // The live release deployed again: same image, its tag on record.
        Some(release) => {
            follow_deploy(client, app, Deploy::Rollback(Some(release.number)), false).await
        }
        None => {
            println!("{app} has no live release; the change applies with its first deploy");
            Ok(())
        }
    }
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let client = credentials::client(&args.conn)?;
    follow_deploy(&client, &args.app, Deploy::Rollback(args.to), args.json).await
}

/// Rebuilds the live release on the current base image and deploys it.
pub async fn patch(args: PatchArgs) -> anyhow::Result<()> {
    let client = credentials::client(&args.conn)?;
    follow_deploy(&client, &args.app, Deploy::Patch(args.pull), args.json).await
}

pub async fn releases(args: AppArgs) -> anyhow::Result<()> {
    let releases = credentials::client(&args.conn)?.releases(&args.app).await?;
    if args.json {
        return output::json(&releases);
    }
    let rows: Vec<Vec<String>> = releases
        .into_iter()
        .map(|r| {
            vec![
                format!("r{}", r.number),
                r.status.to_string(),
                r.image,
                r.created_at,
                r.created_by,
                r.reason
                    .map(|m| m.lines().next().unwrap_or_default().to_owned())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &["RELEASE", "STATUS", "IMAGE", "CREATED", "BY", "REASON"],
        &rows,
    );
    Ok(())
}

fn print_status(status: &wire::AppStatus) {
    let others: String = status
        .desired_processes
        .iter()
        .map(|(name, n)| format!(", {n} {}", printable(name)))
        .collect();
    println!(
        "{}: live release {}, {} web replica(s) wanted{others}",
        status.app,
        status
            .live_release
            .map_or_else(|| "none".into(), |n| format!("r{n}")),
        status.desired_replicas
    );
    let rows: Vec<Vec<String>> = status
        .replicas
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                printable(&r.process).into_owned(),
                r.release.map_or_else(|| "-".into(), |n| format!("r{n}")),
                r.state.clone(),
                if r.serving { "serving" } else { "-" }.into(),
                r.address.clone().unwrap_or_default(),
                r.uptime_secs
                    .map_or_else(|| "-".into(), |s| format!("{s}s")),
                r.restarts.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "REPLICA", "PROCESS", "RELEASE", "STATE", "TRAFFIC", "ADDRESS", "UPTIME", "RESTARTS",
        ],
        &rows,
    );
    if !status.events.is_empty() {
        println!("events:");
        for e in &status.events {
            println!("  {} {} {}", e.time, e.kind, printable(&e.message));
        }
    }
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let mut request = wire::Scale {
        replicas: args.replicas,
        processes: Default::default(),
    };
    for pair in &args.counts {
        let Some((name, count)) = pair.split_once('=') else {
            bail!("{pair:?} is not PROCESS=COUNT, such as web=3 or worker=2");
        };
        let count: u32 = count
            .parse()
            .map_err(|_| anyhow::anyhow!("{pair:?}: the count is not a number"))?;
        if name == rampart_core::deploy::WEB {
            request.replicas = Some(count);
        } else {
            request.processes.insert(name.to_owned(), count);
        }
    }
    if request.replicas.is_none() && request.processes.is_empty() {
        bail!("name a count: rampart scale APP web=3 worker=2 (or --replicas N)");
    }
    let status = credentials::client(&args.conn)?
        .scale(&args.app, &request)
        .await?;
    if args.json {
        return output::json(&status);
    }
    print_status(&status);
    Ok(())
}

pub async fn ps(args: AppArgs) -> anyhow::Result<()> {
    let status = credentials::client(&args.conn)?.ps(&args.app).await?;
    if args.json {
        return output::json(&status);
    }
    print_status(&status);
    Ok(())
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let since = args.since.as_deref().map(parse_duration).transpose()?;
    let client = credentials::client(&args.conn)?;
    let mut out = std::io::stdout();
    client
        .logs(&args.app, since, Some(args.tail), args.follow, |line| {
            let _ = writeln!(out, "{} | {}", line.replica, printable(&line.line));
        })
        .await?;
    Ok(())
}

pub async fn configure(args: ConfigureArgs) -> anyhow::Result<()> {
    let patch = SettingsPatch {
        replicas: None,
        processes: None,
        port: args.port,
        health_path: args.health_path,
        health_timeout_secs: args.health_timeout,
        drain_secs: args.drain,
        memory_mb: args.memory_mb,
        cpu_millis: args.cpu_millis,
        pids: args.pids,
        egress: args.egress,
        allow_root: args.allow_root,
        refuse_critical: args.refuse_critical,
        auto_patch: args.auto_patch,
        patch_window: args.patch_window,
        security_contact: args.security_contact,
        security_policy: args.security_policy,
        placement: args
            .placement
            .map(|all| all.into_iter().filter(|c| !c.is_empty()).collect()),
    };
    let client = credentials::client(&args.conn)?;
    let settings = if patch == SettingsPatch::default() {
        client.settings(&args.app).await?
    } else {
        client.configure(&args.app, &patch).await?
    };
    if args.json {
        return output::json(&settings);
    }
    println!("{}", toml::to_string(&settings)?.trim_end());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), 30);
        assert_eq!(parse_duration("10m").unwrap(), 600);
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert_eq!(parse_duration("45").unwrap(), 45);
        for bad in ["", "m", "10x", "-5s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}

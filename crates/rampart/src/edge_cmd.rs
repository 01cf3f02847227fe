//! `rampart edge --config FILE`: the edge alone, the same code the platform
//! runs in process. SIGHUP re-reads the file (an invalid file is refused and
//! the running table stays); SIGTERM drains and exits 0.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use rampart_edge::{Edge, EdgeConfig};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// The edge configuration (see docs/configuration.md).
    #[arg(long)]
    config: PathBuf,
}

fn load(path: &Path) -> anyhow::Result<EdgeConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let mut config =
        EdgeConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    config.listen.workers = Some(config.listen.workers.unwrap_or_else(default_workers));
    Ok(config)
}

/// One HTTPS worker per core, or `TOKIO_WORKER_THREADS` when it is set
/// (checked before the runtime starts).
fn default_workers() -> usize {
    crate::worker_threads()
        .ok()
        .flatten()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

pub async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    let config = load(&args.config)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let listen = config.listen.clone();
    let state_dir = config.tls.state_dir.clone();
    let edge = Edge::start(config).await?;
    std::fs::write(state_dir.join("ca.pem"), edge.ca_pem())
        .with_context(|| format!("cannot write {}", state_dir.join("ca.pem").display()))?;
    let addrs = edge.addrs();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "rampart edge: clients trust the CA certificate {}",
        state_dir.join("ca.pem").display()
    )?;
    writeln!(out, "rampart edge: http listening on {}", addrs.http)?;
    if let Some(admin) = addrs.admin {
        writeln!(
            out,
            "rampart edge: admin listening on http://{admin}/metrics"
        )?;
    }
    writeln!(out, "rampart edge: https listening on {}", addrs.https)?;
    out.flush()?;
    drop(out);

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match load(&args.config) {
                Ok(next) => {
                    if next.listen != listen {
                        tracing::warn!("listener addresses changed; they take effect on restart");
                    }
                    let limits = next.limits.clone();
                    match edge.apply(next.routes) {
                        Ok(()) => {
                            edge.update_limits(limits);
                            tracing::info!("configuration reloaded");
                        }
                        Err(error) => tracing::error!(%error, "reload refused; the running configuration stays"),
                    }
                }
                Err(error) => tracing::error!(%error, "reload refused; the running configuration stays"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down: draining connections");
    edge.shutdown().await;
    println!("rampart edge: stopped");
    Ok(())
}

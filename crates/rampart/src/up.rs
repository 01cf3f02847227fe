//! `rampart up`: the platform in one process.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rampart_api::tls::{ApiCertificate, server_config};
use rampart_core::config::{Config, DEFAULT_DATA_DIR, LogConfig, LogFormat};
use rampart_platform::{DataDir, Platform};
use tokio::net::TcpListener;

/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the platform keeps its state [default: ./rampart-data].
    #[arg(long, env = "RAMPART_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A rampart.toml; every key is optional (see docs/configuration.md).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn init_logging(config: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},sqlx=warn", config.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received; shutting down"),
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_ref())?;
    init_logging(&config.log);
    let root = args
        .data_dir
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let dir = DataDir::new(root);

    let (platform, bootstrapped) = Platform::open(dir.clone(), &config).await?;
    let platform = Arc::new(platform);
    let certificate = ApiCertificate::issue(&platform, &config.api.tls_names)?;
    let tls = server_config(certificate.clone())?;
    let listener = TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {} (api.listen)", config.api.listen))?;
    let addr = listener.local_addr()?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "rampart: data directory {}", dir.root().display())?;
    writeln!(
        out,
        "rampart: clients trust the CA certificate {}",
        dir.ca_cert().display()
    )?;
    if let Some(first) = &bootstrapped {
        writeln!(
            out,
            "rampart: first start: the owner's API token was written to {} (mode 0600)",
            first.token_file.display()
        )?;
    }
    writeln!(out, "rampart: API listening on https://{addr}")?;
    out.flush()?;
    drop(out);

    tokio::spawn(certificate.renew_forever(platform.clone()));
    let router = rampart_api::router(platform.clone(), config.api.max_body_bytes);
    rampart_api::serve(listener, tls, router, shutdown_signal(), DRAIN).await;
    platform.close().await;
    println!("rampart: stopped");
    Ok(())
}

//! `rampart up`: the platform in one process.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rampart_api::tls::{ApiCertificate, server_config};
use rampart_core::config::{Config, DEFAULT_DATA_DIR, LogConfig, LogFormat};
use rampart_edge::{Edge, EdgeConfig};
use rampart_platform::ingress::SwarmIngress;
use rampart_platform::{DataDir, Engine, Platform};
use rampart_runtime::ContainerRuntime;
use rampart_runtime::swarm::Registry;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);
/// The same for the node listener (image pulls, ingress syncs).
const NODE_LISTENER_DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the platform keeps its state [default: ./rampart-data].
    #[arg(long, env = "RAMPART_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A rampart.toml; every key is optional (see docs/configuration.md)
    /// [default: ./rampart.toml when there is one].
    #[arg(long, env = "RAMPART_CONFIG")]
    config: Option<PathBuf>,
    /// Also deploy the demo app `hello` (two replicas) and print how to reach it.
    #[arg(long)]
    demo: bool,
}

/// The configuration file read from the working directory when none is
/// named.
const CONFIG_FILE: &str = "rampart.toml";
/// How often the platform compares what runs with what should.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// How often due backups and test restores are looked for.
const BACKUP_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How often disk use and certificates are checked (and the audit chain,
/// daily).
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// How often the alert outbox is looked at.
const DELIVER_EVERY: Duration = Duration::from_secs(2);

/// The edge's configuration from the `[edge]` table of rampart.toml: the
/// same keys as edge.toml, with TLS state kept in the data directory and
/// sites coming from apps.
pub(crate) fn edge_config(
    config: &Config,
    dir: &DataDir,
    file: Option<&PathBuf>,
) -> anyhow::Result<EdgeConfig> {
    let origin = file.map_or_else(|| "rampart.toml".to_owned(), |p| p.display().to_string());
    let mut table = config.edge.clone();
    if table.contains_key("site") {
        anyhow::bail!("{origin}: [edge] site: sites come from apps; remove [[edge.site]]");
    }
    let tls = table
        .entry("tls")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(tls) = tls
        && !tls.contains_key("state_dir")
    {
        tls.insert(
            "state_dir".into(),
            toml::Value::String(dir.root().display().to_string()),
        );
    }
    let text = toml::to_string(&table).context("cannot read the [edge] table")?;
    EdgeConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{origin}: [edge] {e}"))
}

/// The host address a client on this machine uses to reach `addr`.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}

/// The configuration file `up` reads: the one named, else `rampart.toml`
/// in the working directory when there is one.
pub(crate) fn config_file(named: Option<PathBuf>) -> Option<PathBuf> {
    named.or_else(|| {
        let here = PathBuf::from(CONFIG_FILE);
        here.is_file().then_some(here)
    })
}

pub(crate) fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub(crate) fn init_logging(config: &LogConfig) {
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

pub(crate) async fn shutdown_signal() {
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

/// Serves release images to the Swarm's nodes at `addr` (TLS from the
/// internal CA, for that address) until `stopped` turns true.
async fn serve_registry(
    platform: &Arc<Platform>,
    registry: Arc<Registry>,
    addr: SocketAddr,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let certificate = ApiCertificate::issue(platform, &[addr.ip().to_string()])?;
    let tls = server_config(certificate.clone())?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (runtime.registry)"))?;
    tokio::spawn(certificate.renew_forever(platform.clone()));
    let router = rampart_api::registry::router(registry.clone())
        .merge(rampart_api::ingress::router(registry, platform.clone()));
    Ok(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        // Long-polls and pulls in flight get a short grace: the API has
        // had its drain already, and a node retries.
        rampart_api::serve(listener, tls, router, shutdown, NODE_LISTENER_DRAIN).await;
    }))
}

/// The engine replicas run on: the local Docker engine, or the Swarm it
/// manages, whose overlays the edge reaches through the relay.
async fn container_runtime(
    config: &rampart_core::config::Config,
    dir: &DataDir,
    platform: &Platform,
    edge: &Edge,
    docker: rampart_runtime::docker::Docker,
    registry: Option<Arc<Registry>>,
) -> anyhow::Result<(Arc<dyn ContainerRuntime>, Vec<String>)> {
    use rampart_core::config::Backend;
    use rampart_runtime::swarm::{Swarm, SwarmOptions};
    match config.runtime.backend {
        Backend::Docker => Ok((Arc::new(docker), Vec::new())),
        Backend::Swarm => {
            let mut swarm = Swarm::new(
                docker,
                SwarmOptions {
                    installation: platform.installation_id(),
                    relay_dir: dir.root().join("relay"),
                    constraints: config.runtime.constraints.clone(),
                    spread_label: config.runtime.spread_label.clone(),
                    encrypt_overlays: config.runtime.encrypt_overlays,
                },
            );
            let distributing = registry.is_some();
            if let Some(registry) = registry {
                swarm = swarm.with_registry(registry);
            }
            let nodes = swarm.nodes().await.map(|n| n.len()).unwrap_or(0);
            if nodes > 1 && !distributing {
                eprintln!(
                    "rampart: the Swarm has {nodes} nodes and runtime.registry is not set: a replica placed on a node that lacks its image cannot start (docs/swarm.md)"
                );
            }
            let pool_texts = swarm
                .address_pools()
                .await
                .context("runtime.backend = \"swarm\"")?;
            let pools = pool_texts
                .iter()
                .map(|pool| pool.parse())
                .collect::<Result<Vec<ipnet::IpNet>, _>>()
                .context("the Swarm's address pools")?;
            swarm
                .start_relay()
                .await
                .context("starting the relay to the Swarm's overlay networks")?;
            edge.set_dialer(rampart_edge::relay::Dialer::through_relay(
                swarm.relay_socket(),
                pools,
            ));
            Ok((Arc::new(swarm), pool_texts))
        }
    }
}

pub async fn run(mut args: UpArgs) -> anyhow::Result<()> {
    args.config = config_file(args.config.take());
    let config = load_config(args.config.as_ref())?;
    init_logging(&config.log);
    let root = args
        .data_dir
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let dir = DataDir::new(root);
    let edge_config = edge_config(&config, &dir, args.config.as_ref())?;
    let acme = edge_config.tls.acme_directory.is_some();
    let docker = rampart_runtime::docker::Docker::new().with_build_limits(
        rampart_runtime::docker::BuildLimits {
            memory_mb: config.apps.build_memory_mb,
            cpu_millis: config.apps.build_cpu_millis,
        },
    );

    let (platform, bootstrapped) = Platform::open(dir.clone(), &config).await?;
    let platform = Arc::new(platform);
    let edge = Edge::start(edge_config).await?;
    let edge_addr = reachable(edge.addrs().https);
    let registry = config.runtime.registry.map(|addr| {
        Arc::new(Registry::new(
            addr.to_string(),
            dir.root().join("registry"),
            platform.registry_key(),
        ))
    });
    let (registry_stop, registry_stopped) = tokio::sync::watch::channel(false);
    let registry_server = match (&registry, config.runtime.registry) {
        (Some(registry), Some(addr)) => {
            Some(serve_registry(&platform, registry.clone(), addr, registry_stopped).await?)
        }
        _ => None,
    };
    let (runtime, pools) =
        container_runtime(&config, &dir, &platform, &edge, docker, registry.clone()).await?;
    let mut engine = Engine::new(
        runtime.clone(),
        edge.clone(),
        platform.installation_id(),
        acme,
    );
    if let Some(registry) = &registry {
        engine = engine.with_ingress(SwarmIngress::new(
            registry.clone(),
            pools,
            config.runtime.encrypt_overlays,
        ));
    }
    platform.attach(engine);
    // Bans go into the edge before it has a route: a client banned before
    // a restart is refused from the first request after it.
    if let Err(error) = platform.bans().restore().await {
        eprintln!("rampart: cannot put the stored bans back into the edge: {error}");
    }
    platform.attach_report_intake();
    {
        let platform = Arc::downgrade(&platform);
        edge.add_metrics(move || {
            platform
                .upgrade()
                .map(|p| p.render_metrics())
                .unwrap_or_default()
        });
    }
    let certificate = ApiCertificate::issue(&platform, &config.api.tls_names)?;
    let tls = server_config(certificate.clone())?;
    let listener = TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {} (api.listen)", config.api.listen))?;
    let addr = listener.local_addr()?;

    let mut out = std::io::stdout().lock();
    match &args.config {
        Some(file) => writeln!(out, "rampart: configuration read from {}", file.display())?,
        None => writeln!(
            out,
            "rampart: no {CONFIG_FILE} here and no --config: built-in defaults"
        )?,
    }
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
    writeln!(out, "rampart: apps are served at https://{edge_addr}")?;
    writeln!(out, "rampart: API listening on https://{addr}")?;
    if let Some(registry) = &registry {
        writeln!(
            out,
            "rampart: release images served to the Swarm's nodes at https://{} (each node's engine trusts the CA certificate as /etc/docker/certs.d/{}/ca.crt)",
            registry.address(),
            registry.address()
        )?;
    }
    if let Some(admin) = edge.addrs().admin {
        writeln!(
            out,
            "rampart: metrics at http://{}/metrics",
            reachable(admin)
        )?;
    }
    out.flush()?;
    drop(out);

    platform.fail_interrupted_deploys().await?;
    match runtime.ping().await {
        Ok(()) => {
            if let Err(error) = platform.start_services().await {
                eprintln!("rampart: the managed PostgreSQL cluster did not start: {error}");
            }
            if let Err(error) = platform.reconcile().await {
                tracing::warn!(%error, "the first reconciliation failed; will retry");
            }
        }
        Err(error) => {
            eprintln!(
                "rampart: {error}; deploys fail until it answers, and the platform keeps trying"
            );
        }
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reconciler = tokio::spawn(
        platform
            .clone()
            .reconcile_forever(RECONCILE_EVERY, stopped.clone()),
    );
    let deliveries = tokio::spawn(
        platform
            .clone()
            .deliver_forever(DELIVER_EVERY, stopped.clone()),
    );
    let checks = tokio::spawn(platform.clone().check_forever(CHECK_EVERY, stopped.clone()));
    let fetcher = tokio::spawn(platform.clone().fetch_advisories_forever(stopped.clone()));
    let doctor = tokio::spawn(
        platform
            .clone()
            .doctor_forever(config.doctor.clone(), stopped.clone()),
    );
    let watcher = tokio::spawn(
        platform
            .clone()
            .watch_forever(config.watch.clone(), stopped.clone()),
    );
    let scheduler = {
        let platform = platform.clone();
        let mut stopped = stopped;
        tokio::spawn(async move {
            loop {
                platform.run_due_backups().await;
                platform.run_due_crons().await;
                tokio::select! {
                    _ = tokio::time::sleep(BACKUP_CHECK_EVERY) => {}
                    _ = stopped.changed() => break,
                }
            }
        })
    };
    if args.demo {
        let platform = platform.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::demo::run(&platform, edge_addr).await {
                eprintln!("rampart: the demo could not start: {error:#}");
            }
        });
    }

    tokio::spawn(certificate.renew_forever(platform.clone()));
    let router = rampart_api::router(
        platform.clone(),
        config.api.max_body_bytes,
        config.api.max_context_bytes,
    );
    rampart_api::serve(listener, tls, router, shutdown_signal(), DRAIN).await;
    let _ = stop.send(true);
    let _ = registry_stop.send(true);
    if let Some(server) = registry_server {
        let _ = server.await;
    }
    let _ = reconciler.await;
    let _ = scheduler.await;
    let _ = watcher.await;
    let _ = deliveries.await;
    let _ = checks.await;
    let _ = fetcher.await;
    let _ = doctor.await;
    platform.stop_services().await;
    edge.shutdown().await;
    if let Err(error) = runtime.close().await {
        tracing::warn!(%error, "cannot stop the runtime's own containers");
    }
    platform.close().await;
    println!("rampart: stopped");
    Ok(())
}

//! `rampart ingress`: an edge on another node of the Swarm, serving the
//! platform's sites there.
//!
//! It runs on a node of the Swarm with that node's Docker engine, and
//! syncs with the platform's node listener (`runtime.registry`) using the
//! credential `rampart nodes ingress NODE` issued: the routes (long-polled,
//! so a swap or a drain arrives within moments), the ACME challenges, the
//! bans in force, and the certificates when they change. It reaches task addresses through a
//! relay of its own on this node's engine, attached to the overlays the
//! platform names. When the platform cannot be reached it keeps serving
//! the last routes it had and tries again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rampart_core::time::Timestamp;
use rampart_core::wire::{Ban, IngressCertificates, IngressRoutes, IngressSite};
use rampart_edge::Edge;
use rampart_edge::routes::{HostPattern, RouteTable, SiteSpec, TlsMode};
use rampart_platform::DataDir;
use rampart_platform::secrets::write_private;
use rampart_runtime::swarm::{IngressRelay, local_node};

/// How long a routes request may take: the platform answers within 25 s.
const ROUTES_TIMEOUT: Duration = Duration::from_secs(40);
/// Waits between failed syncs: the first, then doubled up to the last.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(15);

#[derive(Debug, Args)]
pub struct IngressArgs {
    /// `HOST:PORT` of the platform's node listener (its runtime.registry).
    #[arg(long, env = "RAMPART_INGRESS_SERVER")]
    server: String,
    /// The platform's CA certificate (`ca.pem` in its data directory).
    #[arg(long, env = "RAMPART_INGRESS_CA")]
    ca: PathBuf,
    /// The file `rampart nodes ingress NODE --out FILE` wrote.
    #[arg(long, env = "RAMPART_INGRESS_CREDENTIAL_FILE")]
    credential_file: PathBuf,
    /// Where this edge keeps its state [default: ./rampart-ingress].
    #[arg(long, env = "RAMPART_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A rampart.toml whose `[edge]` table sets the listeners and limits
    /// [default: ./rampart.toml when there is one].
    #[arg(long, env = "RAMPART_CONFIG")]
    config: Option<PathBuf>,
}

/// The node's credential: `ingress/NODE:SECRET`.
fn read_credential(path: &Path) -> anyhow::Result<(String, String, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the credential file {}", path.display()))?;
    let text = text.trim();
    let bad = || {
        anyhow::anyhow!(
            "{} does not hold an ingress credential (ingress/NODE:SECRET, from `rampart nodes ingress NODE --out FILE`)",
            path.display()
        )
    };
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    let node = user.strip_prefix("ingress/").ok_or_else(bad)?;
    let plain = |s: &str, hex: bool| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| {
                b.is_ascii_digit() || b.is_ascii_lowercase() && (!hex || b.is_ascii_hexdigit())
            })
    };
    if !plain(node, false) || !plain(password, true) {
        return Err(bad());
    }
    Ok((node.to_owned(), user.to_owned(), password.to_owned()))
}

/// Talks to the platform's node listener.
struct Sync {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl Sync {
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .timeout(timeout)
            .send()
            .await
            .with_context(|| format!("cannot reach the platform at {}", self.base))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("the platform answered {status}: {}", body.trim());
        }
        response
            .json()
            .await
            .context("the platform's answer is not what an ingress expects")
    }

    async fn routes(&self, known: Option<&str>) -> anyhow::Result<IngressRoutes> {
        let path = match known {
            Some(version) => format!("/ingress/v1/routes?version={version}"),
            None => "/ingress/v1/routes".to_owned(),
        };
        self.get(&path, ROUTES_TIMEOUT).await
    }

    async fn certificates(&self) -> anyhow::Result<IngressCertificates> {
        self.get("/ingress/v1/certificates", Duration::from_secs(30))
            .await
    }
}

/// Writes each site's certificate and key (0600) under `dir`, named by
/// its first host; returns the files by host list.
fn store_certificates(
    dir: &Path,
    set: &IngressCertificates,
) -> anyhow::Result<BTreeMap<Vec<String>, (PathBuf, PathBuf)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = BTreeMap::new();
    for (i, certificate) in set.certificates.iter().enumerate() {
        let cert = dir.join(format!("{i}.pem"));
        let key = dir.join(format!("{i}.key.pem"));
        write_private(&cert, certificate.chain_pem.as_bytes(), true)
            .with_context(|| format!("cannot write {}", cert.display()))?;
        write_private(&key, certificate.key_pem.as_bytes(), true)
            .with_context(|| format!("cannot write {}", key.display()))?;
        files.insert(certificate.hosts.clone(), (cert, key));
    }
    Ok(files)
}

/// The route table of `routes`, each site with its certificate's files.
fn table(
    routes: &IngressRoutes,
    certificates: &BTreeMap<Vec<String>, (PathBuf, PathBuf)>,
) -> anyhow::Result<RouteTable> {
    let site = |site: &IngressSite| -> anyhow::Result<SiteSpec> {
        let (cert, key) = certificates
            .get(&site.hosts)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no certificate for {:?}", site.hosts))?;
        let nets = |list: &[String]| -> anyhow::Result<Vec<ipnet::IpNet>> {
            list.iter()
                .map(|n| n.parse().with_context(|| format!("{n:?} is not a network")))
                .collect()
        };
        Ok(SiteSpec {
            hosts: site
                .hosts
                .iter()
                .map(|h| HostPattern::parse(h).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()?,
            tls: TlsMode::Files { cert, key },
            upstreams: site
                .upstreams
                .iter()
                .map(|u| {
                    u.parse()
                        .with_context(|| format!("{u:?} is not an address"))
                })
                .collect::<anyhow::Result<_>>()?,
            health_path: site.health_path.clone(),
            health_interval: Duration::from_millis(site.health_interval_ms.max(100)),
            health_fails: site.health_fails,
            health_passes: site.health_passes,
            allow: nets(&site.allow)?,
            deny: nets(&site.deny)?,
            hsts_include_subdomains: site.hsts_include_subdomains,
            hsts_preload: site.hsts_preload,
        })
    };
    let sites = routes
        .sites
        .iter()
        .map(site)
        .collect::<anyhow::Result<Vec<_>>>()?;
    RouteTable::new(sites).map_err(|(_, message)| anyhow::anyhow!(message))
}

/// What this node serves now.
struct Serving {
    routes: Option<IngressRoutes>,
    /// The bans put into the edge: network, host, expiry.
    bans: BTreeSet<(String, Option<String>, String)>,
    certificates_version: Option<String>,
    certificates: BTreeMap<Vec<String>, (PathBuf, PathBuf)>,
    relay: Option<Arc<IngressRelay>>,
}

impl Serving {
    /// Brings the relay, the certificates and the edge to `routes`.
    async fn apply(
        &mut self,
        routes: IngressRoutes,
        sync: &Sync,
        edge: &Arc<Edge>,
        docker: &rampart_runtime::docker::Docker,
        dir: &DataDir,
    ) -> anyhow::Result<()> {
        let relay = match &self.relay {
            Some(relay) => relay.clone(),
            None => {
                let pools = routes
                    .pools
                    .iter()
                    .map(|p| p.parse())
                    .collect::<Result<Vec<ipnet::IpNet>, _>>()
                    .context("the Swarm's address pools")?;
                let relay = Arc::new(IngressRelay::new(
                    docker.clone(),
                    &routes.installation,
                    dir.root().join("relay"),
                    routes.encrypted,
                ));
                edge.set_dialer(rampart_edge::relay::Dialer::through_relay(
                    relay.socket(),
                    pools,
                ));
                self.relay = Some(relay.clone());
                relay
            }
        };
        relay
            .sync(&routes.networks)
            .await
            .context("attaching the relay to the app overlays")?;
        if self.certificates_version.as_deref() != Some(routes.certificates.as_str()) {
            let set = sync.certificates().await?;
            self.certificates = store_certificates(&dir.root().join("certificates"), &set)?;
            self.certificates_version = Some(set.version);
        }
        let table = table(&routes, &self.certificates)?;
        edge.apply(table).context("the edge refused the routes")?;
        edge.set_challenges(routes.challenges.clone());
        self.enforce(&routes.bans, edge);
        self.routes = Some(routes);
        Ok(())
    }

    /// Puts new bans into the edge and lifts those the platform lifted
    /// (expired ones lapse in the edge by themselves).
    fn enforce(&mut self, bans: &[Ban], edge: &Edge) {
        let now = Timestamp::now();
        let mut wanted = BTreeSet::new();
        for ban in bans {
            let (Ok(net), Some(until)) = (
                ban.net.parse::<ipnet::IpNet>(),
                Timestamp::parse(&ban.expires_at),
            ) else {
                tracing::warn!(net = %ban.net, "a ban from the platform cannot be read; skipped");
                continue;
            };
            let key = (ban.net.clone(), ban.host.clone(), ban.expires_at.clone());
            let left = until.unix_seconds() - now.unix_seconds();
            if left > 0 && !self.bans.contains(&key) {
                edge.ban_on(
                    net,
                    ban.host.as_deref(),
                    Duration::from_secs(left as u64),
                    &ban.reason,
                );
            }
            wanted.insert(key);
        }
        for (net, host, _) in self.bans.difference(&wanted) {
            let still = wanted.iter().any(|(n, h, _)| n == net && h == host);
            if let (false, Ok(parsed)) = (still, net.parse::<ipnet::IpNet>()) {
                edge.unban_on(parsed, host.as_deref());
            }
        }
        self.bans = wanted;
    }
}

pub async fn run(args: IngressArgs) -> anyhow::Result<()> {
    let config_file = crate::up::config_file(args.config);
    let config = crate::up::load_config(config_file.as_ref())?;
    crate::up::init_logging(&config.log);
    let (node, user, password) = read_credential(&args.credential_file)?;
    let ca = std::fs::read(&args.ca)
        .with_context(|| format!("cannot read the CA certificate {}", args.ca.display()))?;
    let root = reqwest::Certificate::from_pem(&ca)
        .with_context(|| format!("{} is not a PEM certificate", args.ca.display()))?;
    let server: std::net::SocketAddr = args.server.parse().with_context(|| {
        format!(
            "--server {:?} is not the platform's node listener, IP:PORT",
            args.server
        )
    })?;
    let docker = rampart_runtime::docker::Docker::new();
    let here = local_node(&docker).await?;
    if here != node {
        anyhow::bail!(
            "{} is the credential of node {node}, and this engine is node {here}",
            args.credential_file.display()
        );
    }
    let http = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .https_only(true)
        .build()?;
    let sync = Sync {
        http,
        base: format!("https://{server}"),
        user,
        password,
    };
    let dir = DataDir::new(
        args.data_dir
            .unwrap_or_else(|| PathBuf::from("rampart-ingress")),
    );
    // Certificates and keys live here: for this user only.
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.root())
            .with_context(|| format!("cannot create {}", dir.root().display()))?;
        std::fs::set_permissions(
            dir.root(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .with_context(|| format!("cannot restrict {}", dir.root().display()))?;
    }
    let edge_config = crate::up::edge_config(&config, &dir, config_file.as_ref())?;
    let routes = sync
        .routes(None)
        .await
        .context("the first sync with the platform")?;

    let edge = Edge::start(edge_config).await?;
    let mut serving = Serving {
        routes: None,
        bans: BTreeSet::new(),
        certificates_version: None,
        certificates: BTreeMap::new(),
        relay: None,
    };
    serving.apply(routes, &sync, &edge, &docker, &dir).await?;
    let addrs = edge.addrs();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "rampart ingress: node {node}, synced with https://{server}"
    )?;
    writeln!(
        out,
        "rampart ingress: apps are served at https://{}",
        addrs.https
    )?;
    writeln!(out, "rampart ingress: http listening on {}", addrs.http)?;
    out.flush()?;
    drop(out);

    let mut retry = RETRY_FIRST;
    let shutdown = crate::up::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let known = serving.routes.as_ref().map(|r| r.version.clone());
        let next = tokio::select! {
            next = sync.routes(known.as_deref()) => next,
            () = &mut shutdown => break,
        };
        let outcome = match next {
            Ok(routes) if Some(&routes.version) == known.as_ref() => Ok(()),
            Ok(routes) => serving.apply(routes, &sync, &edge, &docker, &dir).await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => retry = RETRY_FIRST,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), retry_in = ?retry, "ingress sync failed; serving the last routes");
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = &mut shutdown => break,
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
    edge.shutdown().await;
    if let Some(relay) = serving.relay {
        if let Err(error) = relay.remove().await {
            tracing::warn!(%error, "cannot remove the relay's container");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_file_holds_one_plain_credential() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credential");
        std::fs::write(&file, "ingress/abc123:00ff\n").unwrap();
        let (node, user, password) = read_credential(&file).unwrap();
        assert_eq!(
            (node.as_str(), user.as_str(), password.as_str()),
            ("abc123", "ingress/abc123", "00ff")
        );
        for bad in [
            "",
            "abc123:00ff",
            "ingress/abc123",
            "ingress/:00ff",
            "ingress/abc123:",
            "ingress/ABC:00ff",
            "ingress/abc123:00fg",
            "ingress/a b:00ff",
            "rampart/shop:00ff",
        ] {
            std::fs::write(&file, bad).unwrap();
            let error = read_credential(&file).unwrap_err().to_string();
            assert!(error.contains("ingress credential"), "{bad:?}: {error}");
        }
        let error = read_credential(&dir.path().join("missing")).unwrap_err();
        assert!(error.to_string().contains("cannot read"), "{error}");
    }
}

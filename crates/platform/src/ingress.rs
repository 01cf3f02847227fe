//! Edges on the other nodes of a Swarm (`rampart ingress`).
//!
//! Traffic may enter at any ingress node. An edge there serves the same
//! sites as the platform's own: it syncs, over the node listener
//! (`runtime.registry`) with a credential bound to its node, the route
//! table the platform last gave its edge (each site's hosts and the task
//! addresses of its healthy replicas), the overlays its own relay attaches
//! to, the ACME challenges being answered, the bans in force and, when
//! they change, the sites' certificates. The routes are long-polled, so a deploy's swap or a
//! drain reaches every ingress node within moments; certificates carry
//! private keys, so each fetch is in the audit log.
//!
//! A node that is suspect, or no longer in the Swarm, gets nothing: its
//! credential stops working with the suspicion, and works again when an
//! admin activates the node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::audit::Outcome;
use rampart_core::{Action, RequestId, wire};
use rampart_edge::routes::{SiteSpec, TlsMode};
use rampart_runtime::LABEL_INSTALLATION;
use rampart_runtime::swarm::Registry;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::controller::Engine;
use crate::{Acting, Error, Platform};

/// How long a routes request waits for a change before it answers anyway.
const LONG_POLL: Duration = Duration::from_secs(25);
/// How often a waiting routes request looks again.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// An internal certificate given to ingress nodes is replaced this long
/// before it expires.
const RENEW_BEFORE: time::Duration = time::Duration::days(30);

/// What the platform knows to serve edges on other nodes.
#[derive(Debug)]
pub struct SwarmIngress {
    /// The node listener's store and credentials.
    pub registry: Arc<Registry>,
    /// The Swarm's overlay address pools (CIDR text).
    pub pools: Vec<String>,
    /// Whether the overlays are encrypted.
    pub encrypted: bool,
    /// Internal certificates issued for ingress nodes, by host list.
    issued: std::sync::Mutex<HashMap<Vec<String>, (String, String, OffsetDateTime)>>,
}

impl SwarmIngress {
    pub fn new(registry: Arc<Registry>, pools: Vec<String>, encrypted: bool) -> Self {
        Self {
            registry,
            pools,
            encrypted,
            issued: Default::default(),
        }
    }
}

fn hosts_of(site: &SiteSpec) -> Vec<String> {
    site.hosts.iter().map(|h| h.text()).collect()
}

fn site_view(site: &SiteSpec) -> wire::IngressSite {
    wire::IngressSite {
        hosts: hosts_of(site),
        upstreams: site.upstreams.iter().map(ToString::to_string).collect(),
        health_path: site.health_path.clone(),
        health_interval_ms: site.health_interval.as_millis() as u64,
        health_fails: site.health_fails,
        health_passes: site.health_passes,
        allow: site.allow.iter().map(ToString::to_string).collect(),
        deny: site.deny.iter().map(ToString::to_string).collect(),
        hsts_include_subdomains: site.hsts_include_subdomains,
        hsts_preload: site.hsts_preload,
    }
}

fn digest(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(&Sha256::digest(bytes)[..16])
}

impl Platform {
    fn ingress(&self) -> Result<(&Engine, &SwarmIngress), Error> {
        let engine = self.engine()?;
        let ingress = engine.ingress.as_ref().ok_or_else(|| {
            Error::Invalid(
                "edges on other nodes need runtime.backend = \"swarm\" and runtime.registry (their node listener)".into(),
            )
        })?;
        Ok((engine, ingress))
    }

    /// Issues the credential an edge on `node` syncs with, and says where.
    pub async fn ingress_credential(
        &self,
        acting: Acting<'_>,
        node: &str,
    ) -> Result<wire::IngressCredential, Error> {
        let (engine, ingress) = self.ingress()?;
        let nodes = engine.runtime.nodes().await?;
        let target = crate::nodes::find(&nodes, node)?.clone();
        if target.is_suspect() {
            self.append(Self::record_by(
                acting.caller.user_id.as_str(),
                Action::NodeManage,
                format!(
                    "nodes/{}: ingress credential refused, suspect",
                    target.hostname
                ),
                Outcome::Denied,
                acting.request_id,
            ))
            .await;
            return Err(Error::Conflict(format!(
                "node {} is suspect; `rampart nodes activate` it before it serves traffic",
                target.hostname
            )));
        }
        let credential = ingress.registry.ingress_credential(&target.id);
        self.append(self.record(
            acting,
            Action::NodeManage,
            format!("nodes/{}: ingress credential issued", target.hostname),
        ))
        .await;
        Ok(wire::IngressCredential {
            node: target.id,
            server: ingress.registry.address().to_owned(),
            credential: format!("{}:{}", credential.user, credential.password),
        })
    }

    /// The Swarm node `node` when it may sync: in the Swarm, not suspect.
    async fn admitted(&self, engine: &Engine, node: &str) -> Result<(), Error> {
        let nodes = engine.runtime.nodes().await?;
        match nodes.iter().find(|n| n.id == node) {
            Some(found) if !found.is_suspect() => Ok(()),
            Some(_) => Err(Error::Forbidden(format!("node {node} is suspect"))),
            None => Err(Error::Forbidden(format!("node {node} is not in the Swarm"))),
        }
    }

    /// The routes for an edge on `node`; when it already holds `known`,
    /// waits (up to 25 s) for them to change.
    pub async fn ingress_routes(
        &self,
        node: &str,
        known: Option<&str>,
    ) -> Result<wire::IngressRoutes, Error> {
        let (engine, ingress) = self.ingress()?;
        self.admitted(engine, node).await?;
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            let routes = self.ingress_routes_now(engine, ingress).await?;
            if known != Some(routes.version.as_str()) || tokio::time::Instant::now() >= deadline {
                return Ok(routes);
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    async fn ingress_routes_now(
        &self,
        engine: &Engine,
        ingress: &SwarmIngress,
    ) -> Result<wire::IngressRoutes, Error> {
        let sites = engine
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut networks = engine
            .runtime
            .networks(&[(LABEL_INSTALLATION, engine.installation.as_str())])
            .await?;
        networks.sort();
        networks.insert(0, format!("rampart-relay-{}", engine.installation));
        let certificates = self.ingress_certificate_set(engine, ingress, &sites)?;
        let mut routes = wire::IngressRoutes {
            version: String::new(),
            installation: engine.installation.clone(),
            pools: ingress.pools.clone(),
            encrypted: ingress.encrypted,
            networks,
            sites: sites.iter().map(site_view).collect(),
            certificates: certificates.version,
            challenges: engine.edge.challenges(),
            bans: self.bans().list().await?,
        };
        routes.version = digest(&routes);
        Ok(routes)
    }

    /// The certificates of the sites: the platform edge's ACME certificate
    /// where it has one, otherwise one from the internal CA (kept until
    /// close to its expiry).
    fn ingress_certificate_set(
        &self,
        engine: &Engine,
        ingress: &SwarmIngress,
        sites: &[SiteSpec],
    ) -> Result<wire::IngressCertificates, Error> {
        let now = OffsetDateTime::now_utc();
        let mut issued = ingress.issued.lock().unwrap_or_else(|e| e.into_inner());
        let mut certificates = Vec::new();
        for site in sites {
            let hosts = hosts_of(site);
            let acme = match site.tls {
                TlsMode::Acme => engine.edge.acme_pem(&hosts),
                _ => None,
            };
            let (chain_pem, key_pem) = match acme {
                Some(pem) => pem,
                None => {
                    let fresh = issued
                        .get(&hosts)
                        .filter(|(_, _, not_after)| *not_after - now > RENEW_BEFORE)
                        .cloned();
                    let (chain, key, not_after) = match fresh {
                        Some(kept) => kept,
                        None => self
                            .ca()
                            .issue_pem(&hosts)
                            .map_err(|e| Error::Unavailable(e.to_string()))?,
                    };
                    issued.insert(hosts.clone(), (chain.clone(), key.clone(), not_after));
                    (chain, key)
                }
            };
            certificates.push(wire::IngressCertificate {
                hosts,
                chain_pem,
                key_pem,
            });
        }
        // Hosts no longer served leave the cache.
        issued.retain(|hosts, _| sites.iter().any(|s| hosts_of(s) == *hosts));
        let mut set = wire::IngressCertificates {
            version: String::new(),
            certificates,
        };
        set.version = digest(&set);
        Ok(set)
    }

    /// The certificates for an edge on `node`, with their keys; every
    /// fetch is recorded.
    pub async fn ingress_certificates(
        &self,
        node: &str,
    ) -> Result<wire::IngressCertificates, Error> {
        let (engine, ingress) = self.ingress()?;
        let request = RequestId::generate();
        if let Err(error) = self.admitted(engine, node).await {
            self.append(Self::record_by(
                &format!("ingress:{node}"),
                Action::IngressSync,
                "certificates".into(),
                Outcome::Denied,
                &request,
            ))
            .await;
            return Err(error);
        }
        let sites = engine
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let set = self.ingress_certificate_set(engine, ingress, &sites)?;
        self.append(Self::record_by(
            &format!("ingress:{node}"),
            Action::IngressSync,
            format!("certificates of {} site(s)", set.certificates.len()),
            Outcome::Ok,
            &request,
        ))
        .await;
        Ok(set)
    }
}

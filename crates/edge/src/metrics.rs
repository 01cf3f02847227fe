//! Prometheus metrics, served on the admin listener at `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub site: String,
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShieldLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub site: String,
    pub upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabels {
    pub host: String,
}

/// Request counters of one site, for status classes 1xx to 5xx.
#[derive(Debug, Clone)]
pub struct SiteCounters([Counter; 5]);

impl SiteCounters {
    pub fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].inc();
    }
}

/// Every metric of the edge.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub shield_actions: Family<ShieldLabels, Counter>,
    pub open_connections: Gauge,
    pub upstream_healthy: Family<UpstreamLabels, Gauge>,
    pub cert_expiry: Family<CertLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rampart_edge");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by site and status class",
            requests.clone(),
        );
        let shield_actions = Family::<ShieldLabels, Counter>::default();
        registry.register(
            "shield_actions",
            "Requests or connections refused by a shield",
            shield_actions.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        let upstream_healthy = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "upstream_healthy",
            "1 when the upstream passes its health checks",
            upstream_healthy.clone(),
        );
        let cert_expiry = Family::<CertLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until each certificate expires",
            cert_expiry.clone(),
        );
        Self {
            registry,
            requests,
            shield_actions,
            open_connections,
            upstream_healthy,
            cert_expiry,
        }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn request(&self, site: &str, status: u16) {
        self.site_counters(site).count(status);
    }

    /// The request counters of one site by status class, to be kept with
    /// the route table so the request path only increments.
    pub fn site_counters(&self, site: &str) -> SiteCounters {
        SiteCounters(std::array::from_fn(|class| {
            self.requests
                .get_or_create(&RequestLabels {
                    site: site.to_owned(),
                    class: format!("{}xx", class + 1),
                })
                .clone()
        }))
    }

    pub fn shield(&self, kind: crate::shield::ShieldAction) {
        self.shield_actions
            .get_or_create(&ShieldLabels {
                kind: kind.as_str().to_owned(),
            })
            .inc();
    }
}

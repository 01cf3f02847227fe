//! The `[runtime]` table: which engine runs replicas.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuntime {
    backend: Option<String>,
    constraints: Option<Vec<String>>,
    spread_label: Option<String>,
    encrypt_overlays: Option<bool>,
    registry: Option<String>,
}

/// Where replicas run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The local Docker engine.
    Docker,
    /// A Docker Swarm, through the local engine, one of its managers.
    Swarm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub backend: Backend,
    /// Placement constraints every replica gets (Swarm).
    pub constraints: Vec<String>,
    /// The node label whose values are zones (Swarm).
    pub spread_label: String,
    /// Whether app overlays carry IPsec between nodes (Swarm); off only
    /// where the nodes' kernels have no ESP, on links that are private.
    pub encrypt_overlays: bool,
    /// Where the platform serves release images to the Swarm's nodes
    /// (Swarm): an address of this machine that every node reaches.
    pub registry: Option<SocketAddr>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Docker,
            constraints: Vec::new(),
            spread_label: "zone".into(),
            encrypt_overlays: true,
            registry: None,
        }
    }
}

fn is_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn is_constraint(text: &str) -> bool {
    crate::deploy::is_placement_constraint(text)
}

pub(super) fn validate(raw: RawRuntime, media_s3: bool) -> Result<RuntimeConfig, ConfigError> {
    let d = RuntimeConfig::default();
    let backend = match raw.backend.as_deref() {
        None | Some("docker") => Backend::Docker,
        Some("swarm") => Backend::Swarm,
        Some(other) => {
            return Err(ConfigError::invalid(
                "runtime.backend",
                format!("{other:?} is neither \"docker\" nor \"swarm\""),
            ));
        }
    };
    let constraints = raw.constraints.unwrap_or_default();
    if let Some(bad) = constraints.iter().find(|c| !is_constraint(c)) {
        return Err(ConfigError::invalid(
            "runtime.constraints",
            format!(
                "{bad:?} is not NODE_ATTRIBUTE == VALUE or != VALUE (node.labels.NAME, node.hostname, node.role, node.id, node.platform.os, node.platform.arch)"
            ),
        ));
    }
    let spread_label = raw.spread_label.unwrap_or(d.spread_label);
    if !is_label(&spread_label) {
        return Err(ConfigError::invalid(
            "runtime.spread_label",
            format!("{spread_label:?} is not a node label name"),
        ));
    }
    if backend == Backend::Docker && !constraints.is_empty() {
        return Err(ConfigError::invalid(
            "runtime.constraints",
            "places replicas on Swarm nodes; it needs runtime.backend = \"swarm\"",
        ));
    }
    if backend == Backend::Swarm && !media_s3 {
        return Err(ConfigError::invalid(
            "runtime.backend",
            "\"swarm\" needs media in S3 (the [media] s3_* keys): a local folder does not follow a replica to another node",
        ));
    }
    let encrypt_overlays = raw.encrypt_overlays.unwrap_or(true);
    if backend == Backend::Docker && !encrypt_overlays {
        return Err(ConfigError::invalid(
            "runtime.encrypt_overlays",
            "is about Swarm overlays; it needs runtime.backend = \"swarm\"",
        ));
    }
    let registry = match raw.registry.as_deref() {
        None => None,
        Some(text) => Some(registry_address(text)?),
    };
    if backend == Backend::Docker && registry.is_some() {
        return Err(ConfigError::invalid(
            "runtime.registry",
            "serves images to a Swarm's nodes; it needs runtime.backend = \"swarm\"",
        ));
    }
    Ok(RuntimeConfig {
        backend,
        constraints,
        spread_label,
        encrypt_overlays,
        registry,
    })
}

/// The registry's address: an IP address every node can dial (not the
/// unspecified or a loopback address, which would name each node itself)
/// and a port.
fn registry_address(text: &str) -> Result<SocketAddr, ConfigError> {
    let invalid = |why: &str| ConfigError::invalid("runtime.registry", format!("{text:?} {why}"));
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| invalid("is not an IP address and port such as 10.0.0.1:7444"))?;
    if addr.port() == 0 {
        return Err(invalid("has no port"));
    }
    if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        return Err(invalid(
            "is not an address other nodes reach: name this machine's address on the network the nodes share",
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(backend: &str, constraints: &[&str]) -> RawRuntime {
        RawRuntime {
            backend: Some(backend.into()),
            constraints: Some(constraints.iter().map(|c| c.to_string()).collect()),
            spread_label: None,
            encrypt_overlays: None,
            registry: None,
        }
    }

    #[test]
    fn constraints_are_node_attributes_compared_to_plain_values() {
        for good in [
            "node.labels.pool == apps",
            "node.role!=manager",
            "node.platform.arch == x86_64",
        ] {
            assert!(is_constraint(good), "{good}");
        }
        for bad in [
            "",
            "node.labels.pool",
            "engine.labels.x == y",
            "node.labels. == y",
            "node.labels.pool == a b",
            "node.labels.pool == $(id)",
            "node.labels.pool == \"x\"",
            "node.hostname == ",
        ] {
            assert!(!is_constraint(bad), "{bad}");
        }
    }

    #[test]
    fn swarm_needs_s3_media_and_constraints_need_swarm() {
        let config = validate(raw("swarm", &["node.labels.pool == apps"]), true).unwrap();
        assert_eq!(config.backend, Backend::Swarm);
        assert_eq!(config.spread_label, "zone");
        let error = validate(raw("swarm", &[]), false).unwrap_err();
        assert!(error.to_string().contains("S3"), "{error}");
        let error = validate(raw("docker", &["node.role == worker"]), true).unwrap_err();
        assert!(error.to_string().contains("runtime.constraints"), "{error}");
        let error = validate(raw("kubernetes", &[]), true).unwrap_err();
        assert!(error.to_string().contains("runtime.backend"), "{error}");
        let error = validate(raw("swarm", &["node.labels.x == `y`"]), true).unwrap_err();
        assert!(error.to_string().contains("runtime.constraints"), "{error}");
        assert_eq!(
            validate(RawRuntime::default(), false).unwrap(),
            RuntimeConfig::default()
        );
    }

    #[test]
    fn the_registry_is_an_address_other_nodes_reach_on_a_swarm() {
        let with = |backend: &str, registry: &str| RawRuntime {
            registry: Some(registry.into()),
            ..raw(backend, &[])
        };
        let config = validate(with("swarm", "10.0.0.1:7444"), true).unwrap();
        assert_eq!(config.registry, Some("10.0.0.1:7444".parse().unwrap()));
        for bad in [
            "10.0.0.1",
            "registry.example:7444",
            "0.0.0.0:7444",
            "127.0.0.1:7444",
            "[::1]:7444",
            "10.0.0.1:0",
            "10.0.0.1:7444/x",
        ] {
            let error = validate(with("swarm", bad), true).unwrap_err();
            assert!(
                error.to_string().contains("runtime.registry"),
                "{bad}: {error}"
            );
        }
        let error = validate(with("docker", "10.0.0.1:7444"), true).unwrap_err();
        assert!(
            error.to_string().contains("needs runtime.backend"),
            "{error}"
        );
    }
}

//! `[apps]`: the operator's ceilings on what one app may take.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApps {
    max_replicas: Option<u32>,
    max_memory_mb: Option<u32>,
    max_cpu_millis: Option<u32>,
    max_pids: Option<u32>,
    build_memory_mb: Option<u32>,
    build_cpu_millis: Option<u32>,
    images: Option<Vec<String>>,
}

/// The operator's ceilings on what one app may take from the host, which
/// no developer's settings can exceed, and the limits of image builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLimits {
    /// Replicas per app.
    pub max_replicas: u32,
    /// Memory per replica.
    pub max_memory_mb: u32,
    /// CPU per replica, in thousandths.
    pub max_cpu_millis: u32,
    /// Processes per replica.
    pub max_pids: u32,
    /// Memory of an image build (no swap beyond it).
    pub build_memory_mb: u32,
    /// CPU of an image build, in thousandths.
    pub build_cpu_millis: u32,
    /// Images on the engine that apps may run and build from, besides their
    /// own: exact references, or prefixes ending in `*`. Another app's
    /// images (`rampart/OTHER:…`) are never among them.
    pub images: Vec<String>,
}

impl Default for AppLimits {
    fn default() -> Self {
        Self {
            max_replicas: 8,
            max_memory_mb: 2048,
            max_cpu_millis: 2000,
            max_pids: 1024,
            build_memory_mb: 1024,
            build_cpu_millis: 1000,
            images: vec!["*".to_owned()],
        }
    }
}

impl AppLimits {
    /// Whether the operator lets apps use `reference` (not one of their own).
    pub fn allows_image(&self, reference: &str) -> bool {
        self.images
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => reference.starts_with(prefix),
                None => reference == pattern,
            })
    }

    /// Checks an app's settings against the ceilings; the message names
    /// the setting and the key that bounds it.
    pub fn admit(&self, settings: &crate::deploy::AppSettings) -> Result<(), String> {
        let checks = [
            (
                "replicas",
                settings.replicas,
                "apps.max_replicas",
                self.max_replicas,
            ),
            (
                "memory_mb",
                settings.memory_mb,
                "apps.max_memory_mb",
                self.max_memory_mb,
            ),
            (
                "cpu_millis",
                settings.cpu_millis,
                "apps.max_cpu_millis",
                self.max_cpu_millis,
            ),
            ("pids", settings.pids, "apps.max_pids", self.max_pids),
        ];
        for (setting, value, key, ceiling) in checks {
            if value > ceiling {
                return Err(format!(
                    "{setting} {value} is above the operator's ceiling ({key} = {ceiling})"
                ));
            }
        }
        self.admit_replicas(settings.replicas, settings.processes.values().copied())
    }

    /// Checks that an app's web replicas and the replicas of its other
    /// processes stay, together, under `apps.max_replicas`.
    pub fn admit_replicas(
        &self,
        web: u32,
        others: impl IntoIterator<Item = u32>,
    ) -> Result<(), String> {
        let total = others
            .into_iter()
            .fold(u64::from(web), |sum, n| sum + u64::from(n));
        if total > u64::from(self.max_replicas) {
            return Err(format!(
                "{total} replicas of web and the other processes together are above the operator's ceiling (apps.max_replicas = {})",
                self.max_replicas
            ));
        }
        Ok(())
    }
}

pub(super) fn validate_apps(raw: &RawApps) -> Result<AppLimits, ConfigError> {
    let d = AppLimits::default();
    let pick = |key: &'static str, value: Option<u32>, default: u32, min: u32, max: u32| {
        let v = value.unwrap_or(default);
        if v < min || v > max {
            return Err(ConfigError::invalid(
                key,
                format!("{v} is out of range; use {min} to {max}"),
            ));
        }
        Ok(v)
    };
    Ok(AppLimits {
        max_replicas: pick(
            "apps.max_replicas",
            raw.max_replicas,
            d.max_replicas,
            1,
            crate::deploy::MAX_REPLICAS,
        )?,
        max_memory_mb: pick(
            "apps.max_memory_mb",
            raw.max_memory_mb,
            d.max_memory_mb,
            16,
            1024 * 1024,
        )?,
        max_cpu_millis: pick(
            "apps.max_cpu_millis",
            raw.max_cpu_millis,
            d.max_cpu_millis,
            10,
            256_000,
        )?,
        max_pids: pick("apps.max_pids", raw.max_pids, d.max_pids, 8, 1_000_000)?,
        build_memory_mb: pick(
            "apps.build_memory_mb",
            raw.build_memory_mb,
            d.build_memory_mb,
            64,
            1024 * 1024,
        )?,
        build_cpu_millis: pick(
            "apps.build_cpu_millis",
            raw.build_cpu_millis,
            d.build_cpu_millis,
            100,
            256_000,
        )?,
        images: match &raw.images {
            None => d.images,
            Some(images) => {
                for image in images {
                    if image.is_empty()
                        || image.len() > 512
                        || image.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        return Err(ConfigError::invalid(
                            "apps.images",
                            format!("{image:?} is not an image reference or prefix"),
                        ));
                    }
                }
                images.clone()
            }
        },
    })
}

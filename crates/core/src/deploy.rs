//! How an app runs: its settings (replicas, health check, limits, network)
//! and the states of a release.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most replicas one app may run on a single machine.
pub const MAX_REPLICAS: u32 = 32;
/// The process that serves HTTP and gets the edge's traffic; its count is
/// `replicas`.
pub const WEB: &str = "web";
/// Most processes one release may declare.
pub const MAX_PROCESSES: usize = 16;

/// Checks a process name: a lowercase letter, then up to 29 lowercase
/// letters, digits, `-` or `_`.
pub fn check_process_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && name.len() <= 30
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a process name (a lowercase letter, then up to 29 lowercase letters, digits, - or _)"
        ))
    }
}

/// Where a failed release's reason begins quoting the replica's log.
pub const LOG_LINES: &str = "; its last log lines:\n";

/// A failure reason without the log lines it quotes, for callers who may
/// not read the app's logs.
pub fn reason_without_log_lines(reason: &str) -> String {
    match reason.split_once(LOG_LINES) {
        Some((reason, _)) => format!("{reason} (its log lines are shown to roles that read logs)"),
        None => reason.to_owned(),
    }
}

/// How an app's replicas run. Every field has a safe default; the API
/// changes them one at a time through [`SettingsPatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AppSettings {
    /// How many replicas serve the app (its `web` process).
    pub replicas: u32,
    /// How many replicas run each of its other processes (workers), by the
    /// name its manifest gives them; a process not named here runs one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub processes: BTreeMap<String, u32>,
    /// The port the app listens on inside its container (`PORT` is set to it).
    pub port: u16,
    /// Path of the HTTP health check; it must answer 2xx.
    pub health_path: String,
    /// How long a new replica has to pass its health check.
    pub health_timeout_secs: u32,
    /// How long an old replica may finish its requests before it is stopped.
    pub drain_secs: u32,
    pub memory_mb: u32,
    /// CPUs in thousandths (1000 = one CPU).
    pub cpu_millis: u32,
    pub pids: u32,
    /// Whether replicas may open connections outside their app's network.
    pub egress: bool,
    /// Whether an image that runs as root may keep doing so.
    pub allow_root: bool,
    /// Whether a deploy whose image has critical findings that nobody
    /// accepted is refused.
    pub refuse_critical: bool,
    /// The settings `apps configure` has set: an app manifest's values for
    /// them are ignored.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub configured: BTreeSet<String>,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            replicas: 2,
            processes: BTreeMap::new(),
            port: 8080,
            health_path: "/health".into(),
            health_timeout_secs: 60,
            drain_secs: 10,
            memory_mb: 256,
            cpu_millis: 1000,
            pids: 256,
            egress: false,
            allow_root: false,
            refuse_critical: false,
            configured: BTreeSet::new(),
        }
    }
}

/// Changes to an app's settings; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub replicas: Option<u32>,
    /// New counts of other processes; 0 stops one.
    pub processes: Option<BTreeMap<String, u32>>,
    pub port: Option<u16>,
    pub health_path: Option<String>,
    pub health_timeout_secs: Option<u32>,
    pub drain_secs: Option<u32>,
    pub memory_mb: Option<u32>,
    pub cpu_millis: Option<u32>,
    pub pids: Option<u32>,
    pub egress: Option<bool>,
    pub allow_root: Option<bool>,
    pub refuse_critical: Option<bool>,
}

fn within<T: PartialOrd + fmt::Display + Copy>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "{key} must be between {min} and {max}, not {value}"
        ));
    }
    Ok(())
}

impl SettingsPatch {
    /// The names of the settings it changes.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        macro_rules! named {
            ($($field:ident),*) => {$(
                if self.$field.is_some() { names.push(stringify!($field)); }
            )*};
        }
        named!(
            replicas,
            processes,
            port,
            health_path,
            health_timeout_secs,
            drain_secs,
            memory_mb,
            cpu_millis,
            pids,
            egress,
            allow_root,
            refuse_critical
        );
        names
    }
}

impl AppSettings {
    /// These settings with an app manifest's `wanted` ones applied, except
    /// where `apps configure` set them; returns the settings and, for each
    /// manifest value left out, why.
    pub fn with_manifest(&self, wanted: &SettingsPatch) -> Result<(Self, Vec<String>), String> {
        let mut applied = SettingsPatch::default();
        let mut kept = Vec::new();
        macro_rules! merge {
            ($($field:ident),*) => {$(
                if let Some(value) = &wanted.$field {
                    if !self.configured.contains(stringify!($field)) {
                        applied.$field = Some(value.clone());
                    } else if *value != self.$field {
                        kept.push(format!(
                            "{}: apps configure set {:?}, so rampart.app.toml's {:?} is not used",
                            stringify!($field),
                            self.$field,
                            value
                        ));
                    }
                }
            )*};
        }
        merge!(
            port,
            health_path,
            health_timeout_secs,
            drain_secs,
            memory_mb,
            cpu_millis,
            pids
        );
        Ok((self.patched(&applied)?, kept))
    }

    /// Checks every field; the message names the first one out of range.
    pub fn validate(&self) -> Result<(), String> {
        within("replicas", self.replicas, 0, MAX_REPLICAS)?;
        if self.processes.len() > MAX_PROCESSES {
            return Err(format!("at most {MAX_PROCESSES} processes"));
        }
        for (name, count) in &self.processes {
            check_process_name(name)?;
            if name == WEB {
                return Err("the web process's count is replicas".into());
            }
            within(&format!("processes.{name}"), *count, 0, MAX_REPLICAS)?;
        }
        within("port", self.port, 1, u16::MAX)?;
        within("health_timeout_secs", self.health_timeout_secs, 1, 3600)?;
        within("drain_secs", self.drain_secs, 0, 3600)?;
        within("memory_mb", self.memory_mb, 16, 1024 * 1024)?;
        within("cpu_millis", self.cpu_millis, 10, 256_000)?;
        within("pids", self.pids, 8, 1_000_000)?;
        let path = &self.health_path;
        if !path.starts_with('/')
            || path.len() > 256
            || path
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b >= 0x7f)
        {
            return Err(format!(
                "health_path must be an absolute path of at most 256 printable ASCII characters, not {path:?}"
            ));
        }
        Ok(())
    }

    /// These settings with `patch` applied, validated.
    pub fn patched(&self, patch: &SettingsPatch) -> Result<Self, String> {
        let mut next = self.clone();
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(v) = &patch.$field { next.$field = v.clone(); }
            )*};
        }
        take!(
            replicas,
            port,
            health_path,
            health_timeout_secs,
            drain_secs,
            memory_mb,
            cpu_millis,
            pids,
            egress,
            allow_root,
            refuse_critical
        );
        if let Some(counts) = &patch.processes {
            for (name, count) in counts {
                next.processes.insert(name.clone(), *count);
            }
        }
        next.validate()?;
        Ok(next)
    }
}

/// Where a release is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    /// Its replicas are starting or being checked.
    Deploying,
    /// It serves the app.
    Live,
    /// It never served: the reason says why.
    Failed,
    /// It served and was replaced by a later release.
    Retired,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Deploying => "deploying",
            ReleaseStatus::Live => "live",
            ReleaseStatus::Failed => "failed",
            ReleaseStatus::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "deploying" => ReleaseStatus::Deploying,
            "live" => ReleaseStatus::Live,
            "failed" => ReleaseStatus::Failed,
            "retired" => ReleaseStatus::Retired,
            _ => return None,
        })
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a release was deployed with, kept with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseConfig {
    /// Names of the variables set when it was created; values are not kept.
    pub env_names: Vec<String>,
    pub settings: AppSettings,
    /// The release command its manifest named, run once before its
    /// replicas started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command: Option<crate::manifest::ReleaseCommand>,
    /// The commands of its processes, by name, as its manifest gave them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub processes: BTreeMap<String, Vec<String>>,
    /// The scheduled jobs its manifest declared; they run while it is live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crons: Vec<crate::manifest::DeclaredJob>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_patches_are_checked() {
        let base = AppSettings::default();
        base.validate().unwrap();
        let patch = SettingsPatch {
            replicas: Some(3),
            ..Default::default()
        };
        assert_eq!(base.patched(&patch).unwrap().replicas, 3);
        for bad in [
            SettingsPatch {
                replicas: Some(MAX_REPLICAS + 1),
                ..Default::default()
            },
            SettingsPatch {
                port: Some(0),
                ..Default::default()
            },
            SettingsPatch {
                health_path: Some("health".into()),
                ..Default::default()
            },
            SettingsPatch {
                health_path: Some("/a b".into()),
                ..Default::default()
            },
            SettingsPatch {
                memory_mb: Some(1),
                ..Default::default()
            },
        ] {
            assert!(base.patched(&bad).is_err(), "{bad:?}");
        }
    }
}

/// Which of a replica's log lines to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Unix seconds; lines before are skipped.
    pub since: Option<i64>,
    /// At most this many of the newest lines (before following).
    pub tail: Option<usize>,
    pub follow: bool,
}

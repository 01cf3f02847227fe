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
    /// Whether the platform rebuilds the live release by itself when a
    /// rebuild on the current base images changes it and the release has
    /// findings with a published fix (`rampart patch`, unattended).
    pub auto_patch: bool,
    /// When unattended patches may run, `HH:MM-HH:MM` in UTC (it may wrap
    /// past midnight); empty: any time.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub patch_window: String,
    /// The app's own security.txt `Contact` (listed before the
    /// platform's); empty: the platform's only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub security_contact: String,
    /// The app's own security.txt `Policy` (instead of the platform's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub security_policy: String,
    /// Swarm placement constraints of the app's replicas, after the
    /// platform's own (`node.labels.pool == gpu`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement: Vec<String>,
    /// The settings `apps configure` has set: an app manifest's values for
    /// them are ignored.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub configured: BTreeSet<String>,
}

/// Most placement constraints of one app.
pub const MAX_PLACEMENT: usize = 8;

/// Whether `text` is a Swarm placement constraint on a node attribute,
/// compared with `==` or `!=` to a plain value (letters, digits, `.`, `-`,
/// `_`): nothing the Swarm could read as more.
pub fn is_placement_constraint(text: &str) -> bool {
    let plain = |t: &str| {
        !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    let Some((attribute, value)) = text.split_once("==").or_else(|| text.split_once("!=")) else {
        return false;
    };
    let attribute = attribute.trim();
    let known = matches!(
        attribute,
        "node.id" | "node.hostname" | "node.role" | "node.platform.os" | "node.platform.arch"
    ) || attribute.strip_prefix("node.labels.").is_some_and(plain);
    known && plain(value.trim())
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
            auto_patch: false,
            patch_window: String::new(),
            security_contact: String::new(),
            security_policy: String::new(),
            placement: Vec::new(),
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
    pub auto_patch: Option<bool>,
    pub patch_window: Option<String>,
    /// A `mailto:`, `https:` or `tel:` URI; empty to clear.
    pub security_contact: Option<String>,
    /// An `https:` URI; empty to clear.
    pub security_policy: Option<String>,
    /// Swarm placement constraints; empty to clear.
    pub placement: Option<Vec<String>>,
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
            refuse_critical,
            auto_patch,
            patch_window,
            security_contact,
            security_policy,
            placement
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
        if !self.patch_window.is_empty() && patch_window(&self.patch_window).is_none() {
            return Err(format!(
                "patch_window must be HH:MM-HH:MM in UTC (such as 02:00-04:00), not {:?}",
                self.patch_window
            ));
        }
        if !self.security_contact.is_empty() {
            crate::security_txt::check_uri(&self.security_contact, true)
                .map_err(|e| format!("security_contact: {e}"))?;
        }
        if self.placement.len() > MAX_PLACEMENT {
            return Err(format!("placement: at most {MAX_PLACEMENT} constraints"));
        }
        if let Some(bad) = self.placement.iter().find(|c| !is_placement_constraint(c)) {
            return Err(format!(
                "placement: {bad:?} is not NODE_ATTRIBUTE == VALUE or != VALUE (node.labels.NAME, node.hostname, node.role, node.id, node.platform.os, node.platform.arch)"
            ));
        }
        if !self.security_policy.is_empty() {
            crate::security_txt::check_uri(&self.security_policy, false)
                .map_err(|e| format!("security_policy: {e}"))?;
        }
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
            refuse_critical,
            auto_patch,
            patch_window,
            security_contact,
            security_policy,
            placement
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

/// A patch window's bounds in minutes after midnight UTC.
pub fn patch_window(text: &str) -> Option<(u32, u32)> {
    let minutes = |t: &str| -> Option<u32> {
        let (h, m) = t.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (from, to) = text.split_once('-')?;
    let (from, to) = (minutes(from)?, minutes(to)?);
    (from != to).then_some((from, to))
}

/// Whether `minute` (after midnight UTC) falls in the window `text`; an
/// empty window is always open.
pub fn in_patch_window(text: &str, minute: u32) -> bool {
    if text.is_empty() {
        return true;
    }
    match patch_window(text) {
        Some((from, to)) if from < to => (from..to).contains(&minute),
        Some((from, to)) => minute >= from || minute < to,
        None => false,
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
            SettingsPatch {
                placement: Some(vec!["node.labels.pool == $(id)".into()]),
                ..Default::default()
            },
            SettingsPatch {
                placement: Some(vec!["engine.labels.x == y".into()]),
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

#[cfg(test)]
mod patch_window_tests {
    use super::*;

    #[test]
    fn patch_windows_parse_and_wrap_past_midnight() {
        assert_eq!(patch_window("02:00-04:30"), Some((120, 270)));
        for bad in [
            "2:00-04:00",
            "02:00",
            "24:00-01:00",
            "02:60-03:00",
            "02:00-02:00",
            "x",
        ] {
            assert_eq!(patch_window(bad), None, "{bad}");
        }
        assert!(in_patch_window("", 0));
        assert!(in_patch_window("02:00-04:00", 120));
        assert!(!in_patch_window("02:00-04:00", 240));
        assert!(in_patch_window("23:00-01:00", 23 * 60 + 30));
        assert!(in_patch_window("23:00-01:00", 30));
        assert!(!in_patch_window("23:00-01:00", 120));
        let settings = AppSettings {
            patch_window: "25:00-01:00".into(),
            ..AppSettings::default()
        };
        assert!(settings.validate().unwrap_err().contains("patch_window"));
    }
}

//! The app manifest: `rampart.app.toml` at the root of a build context,
//! where an app tells the platform what its releases need. Every key is
//! optional; an unknown key or a bad value refuses the deploy before
//! anything is built.
//!
//! ```toml
//! # Runs once per deploy, before any replica of the new release starts.
//! release = "python3 manage.py migrate --noinput"
//! release_timeout = "10m"
//!
//! # How the app runs; `apps configure` wins over each of these.
//! port = 8000
//! health_path = "/health"
//! health_timeout = "90s"
//! memory_mb = 512
//!
//! # What each process runs; `web` (the image's own command when absent)
//! # gets the edge's traffic, the others none.
//! [processes]
//! web = "gunicorn notes.wsgi"
//! worker = "python3 manage.py runworker"
//!
//! # Scheduled jobs, each in a one-off container of the live release.
//! [[cron]]
//! schedule = "30 3 * * *"
//! command = "python3 manage.py clearsessions"
//! timeout = "10m"
//! ```
//!
//! A command is a line split the way a POSIX shell splits words (quotes
//! and backslashes, no expansion) or a list of arguments; either way it
//! runs without a shell, so it works in images that have none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{ConfigError, parse_toml};
use crate::wire::parse_duration;

/// The manifest's file name in a build context.
pub const MANIFEST_FILE: &str = "rampart.app.toml";
/// How long a release command may run unless the manifest says otherwise.
pub const DEFAULT_RELEASE_TIMEOUT_SECS: u64 = 600;
/// The longest a release command may be given.
const MAX_RELEASE_TIMEOUT_SECS: u64 = 6 * 3600;
/// Bounds on a command's arguments.
const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 4096;

/// A command run once in a container of a release's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseCommand {
    /// The arguments, the program first (after the image's entrypoint, when
    /// it has one).
    pub argv: Vec<String>,
    /// How long it may run before it is stopped and the deploy fails.
    pub timeout_secs: u64,
}

/// A scheduled job a manifest declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclaredJob {
    /// As written (see [`crate::schedule`]).
    pub schedule: String,
    pub argv: Vec<String>,
    pub timeout_secs: u64,
}

/// What a build context's manifest asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppManifest {
    /// The release phase: run once per deploy, before the new replicas.
    pub release: Option<ReleaseCommand>,
    /// The command of each process, by name.
    pub processes: BTreeMap<String, Vec<String>>,
    /// Its scheduled jobs, in the order written.
    pub crons: Vec<DeclaredJob>,
    /// How the app runs, where `apps configure` has not said otherwise.
    pub settings: crate::deploy::SettingsPatch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    release: Option<RawCommand>,
    release_timeout: Option<String>,
    #[serde(default)]
    processes: BTreeMap<String, RawCommand>,
    #[serde(default)]
    cron: Vec<RawJob>,
    port: Option<u16>,
    health_path: Option<String>,
    health_timeout: Option<String>,
    drain: Option<String>,
    memory_mb: Option<u32>,
    cpu_millis: Option<u32>,
    pids: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    schedule: String,
    command: RawCommand,
    timeout: Option<String>,
}

/// A command as written: one line, or a list of arguments.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawCommand {
    Line(String),
    Args(Vec<String>),
}

impl AppManifest {
    /// Parses and checks the text of a `rampart.app.toml`.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawManifest = parse_toml(text)?;
        let timeout_secs = match &raw.release_timeout {
            None => DEFAULT_RELEASE_TIMEOUT_SECS,
            Some(text) => {
                let secs = parse_duration(text)
                    .map_err(|message| ConfigError::invalid("release_timeout", message))?;
                if !(1..=MAX_RELEASE_TIMEOUT_SECS).contains(&secs) {
                    return Err(ConfigError::invalid(
                        "release_timeout",
                        format!(
                            "must be between 1s and {}h",
                            MAX_RELEASE_TIMEOUT_SECS / 3600
                        ),
                    ));
                }
                secs
            }
        };
        if raw.release.is_none() && raw.release_timeout.is_some() {
            return Err(ConfigError::invalid(
                "release_timeout",
                "there is no release command to time",
            ));
        }
        let release = raw
            .release
            .map(|c| {
                Ok::<_, ConfigError>(ReleaseCommand {
                    argv: command("release", c)?,
                    timeout_secs,
                })
            })
            .transpose()?;
        if raw.processes.len() > crate::deploy::MAX_PROCESSES {
            return Err(ConfigError::invalid(
                "processes",
                format!("at most {} processes", crate::deploy::MAX_PROCESSES),
            ));
        }
        let mut processes = BTreeMap::new();
        for (name, raw) in raw.processes {
            let key = format!("processes.{name}");
            crate::deploy::check_process_name(&name)
                .map_err(|message| ConfigError::invalid(key.clone(), message))?;
            processes.insert(name, command(&key, raw)?);
        }
        if raw.cron.len() > crate::schedule::MAX_JOBS_PER_APP {
            return Err(ConfigError::invalid(
                "cron",
                format!("at most {} jobs", crate::schedule::MAX_JOBS_PER_APP),
            ));
        }
        let mut crons = Vec::with_capacity(raw.cron.len());
        for (i, job) in raw.cron.into_iter().enumerate() {
            let key = |field: &str| format!("cron[{i}].{field}");
            crate::schedule::Schedule::parse(&job.schedule)
                .map_err(|message| ConfigError::invalid(key("schedule"), message))?;
            let timeout_secs = match &job.timeout {
                None => crate::schedule::DEFAULT_JOB_TIMEOUT_SECS,
                Some(text) => parse_duration(text)
                    .ok()
                    .filter(|secs| (1..=crate::schedule::MAX_JOB_TIMEOUT_SECS).contains(secs))
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            key("timeout"),
                            format!(
                                "must be a duration between 1s and {}h",
                                crate::schedule::MAX_JOB_TIMEOUT_SECS / 3600
                            ),
                        )
                    })?,
            };
            crons.push(DeclaredJob {
                schedule: job.schedule.trim().to_owned(),
                argv: command(&key("command"), job.command)?,
                timeout_secs,
            });
        }
        let seconds = |key: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| {
                    let secs = parse_duration(t).map_err(|m| ConfigError::invalid(key, m))?;
                    u32::try_from(secs).map_err(|_| ConfigError::invalid(key, "too long"))
                })
                .transpose()
        };
        let settings = crate::deploy::SettingsPatch {
            port: raw.port,
            health_path: raw.health_path,
            health_timeout_secs: seconds("health_timeout", &raw.health_timeout)?,
            drain_secs: seconds("drain", &raw.drain)?,
            memory_mb: raw.memory_mb,
            cpu_millis: raw.cpu_millis,
            pids: raw.pids,
            ..Default::default()
        };
        // The settings must be valid; the message begins with the setting's
        // name, which becomes the manifest's key.
        crate::deploy::AppSettings::default()
            .patched(&settings)
            .map_err(|message| {
                let key = match message.split_whitespace().next().unwrap_or("") {
                    "health_timeout_secs" => "health_timeout",
                    "drain_secs" => "drain",
                    other => other,
                }
                .to_owned();
                ConfigError::invalid(key, message)
            })?;
        Ok(Self {
            release,
            processes,
            crons,
            settings,
        })
    }
}

/// The arguments of a command as written at `key`: a line is split into
/// words as a shell would (without expanding anything); the result must be
/// a non-empty list of bounded arguments without NUL bytes.
pub fn command(key: &str, raw: RawCommand) -> Result<Vec<String>, ConfigError> {
    let argv = match raw {
        RawCommand::Args(args) => args,
        RawCommand::Line(line) => shlex::split(&line).ok_or_else(|| {
            ConfigError::invalid(key, "its quotes are unbalanced or it ends in a backslash")
        })?,
    };
    if argv.is_empty() || argv[0].is_empty() {
        return Err(ConfigError::invalid(key, "the command is empty"));
    }
    if argv.len() > MAX_ARGS {
        return Err(ConfigError::invalid(
            key,
            format!("at most {MAX_ARGS} arguments"),
        ));
    }
    if let Some(bad) = argv
        .iter()
        .find(|a| a.len() > MAX_ARG_BYTES || a.contains('\0'))
    {
        return Err(ConfigError::invalid(
            key,
            format!(
                "an argument is longer than {MAX_ARG_BYTES} bytes or holds a NUL byte ({:?}…)",
                bad.chars().take(20).collect::<String>()
            ),
        ));
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_lines_split_like_a_shell_or_lists() {
        let m =
            AppManifest::from_toml("release = \"python3 manage.py migrate --noinput\"\n").unwrap();
        let release = m.release.unwrap();
        assert_eq!(
            release.argv,
            ["python3", "manage.py", "migrate", "--noinput"]
        );
        assert_eq!(release.timeout_secs, DEFAULT_RELEASE_TIMEOUT_SECS);
        let m = AppManifest::from_toml(
            "release = ['sh', '-c', 'echo \"a b\"']\nrelease_timeout = \"2m\"\n",
        )
        .unwrap();
        let release = m.release.unwrap();
        assert_eq!(release.argv, ["sh", "-c", "echo \"a b\""]);
        assert_eq!(release.timeout_secs, 120);
        let m = AppManifest::from_toml("release = \"say 'two words' three\\\\ four\"\n").unwrap();
        assert_eq!(m.release.unwrap().argv, ["say", "two words", "three four"]);
        assert_eq!(AppManifest::from_toml("").unwrap(), AppManifest::default());
        let m = AppManifest::from_toml(
            "[processes]\nweb = \"gunicorn app\"\nworker = [\"python3\", \"worker.py\"]\n",
        )
        .unwrap();
        assert_eq!(m.processes["web"], ["gunicorn", "app"]);
        assert_eq!(m.processes["worker"], ["python3", "worker.py"]);
        let m = AppManifest::from_toml(
            "port = 8000\nhealth_path = \"/up\"\nhealth_timeout = \"2m\"\nmemory_mb = 512\n",
        )
        .unwrap();
        assert_eq!(m.settings.port, Some(8000));
        assert_eq!(m.settings.health_path.as_deref(), Some("/up"));
        assert_eq!(m.settings.health_timeout_secs, Some(120));
        assert_eq!(m.settings.memory_mb, Some(512));
        let m = AppManifest::from_toml(
            "[[cron]]\nschedule = \"@daily\"\ncommand = \"python3 manage.py clearsessions\"\n\
             [[cron]]\nschedule = \" every 15m \"\ncommand = [\"report\", \"--all\"]\ntimeout = \"10m\"\n",
        )
        .unwrap();
        assert_eq!(
            m.crons,
            [
                DeclaredJob {
                    schedule: "@daily".into(),
                    argv: vec!["python3".into(), "manage.py".into(), "clearsessions".into()],
                    timeout_secs: crate::schedule::DEFAULT_JOB_TIMEOUT_SECS,
                },
                DeclaredJob {
                    schedule: "every 15m".into(),
                    argv: vec!["report".into(), "--all".into()],
                    timeout_secs: 600,
                },
            ]
        );
    }

    #[test]
    fn bad_manifests_name_the_key() {
        for (text, expected) in [
            ("release = \"\"\n", "release: the command is empty"),
            ("release = []\n", "release: the command is empty"),
            (
                "release = \"echo 'open\"\n",
                "release: its quotes are unbalanced",
            ),
            ("release = 3\n", "release"),
            (
                "release = \"x\"\nrelease_timeout = \"0s\"\n",
                "release_timeout",
            ),
            (
                "release = \"x\"\nrelease_timeout = \"soon\"\n",
                "release_timeout",
            ),
            ("release_timeout = \"1m\"\n", "no release command"),
            ("relase = \"x\"\n", "unknown field `relase`"),
            ("[processes]\nWorker = \"x\"\n", "processes.Worker"),
            ("port = 0\n", "port: port must be between"),
            ("health_path = \"up\"\n", "health_path: health_path must be"),
            ("memory_mb = 1\n", "memory_mb"),
            ("health_timeout = \"later\"\n", "health_timeout"),
            ("replicas = 3\n", "unknown field `replicas`"),
            ("egress = true\n", "unknown field `egress`"),
            ("allow_root = true\n", "unknown field `allow_root`"),
            (
                "[processes]\nworker = \"\"\n",
                "processes.worker: the command is empty",
            ),
            ("release = [\"a\\u0000b\"]\n", "NUL"),
            (
                "[[cron]]\nschedule = \"every 1s\"\ncommand = \"x\"\n",
                "cron[0].schedule",
            ),
            (
                "[[cron]]\nschedule = \"61 * * * *\"\ncommand = \"x\"\n",
                "cron[0].schedule",
            ),
            (
                "[[cron]]\nschedule = \"@daily\"\ncommand = \"\"\n",
                "cron[0].command: the command is empty",
            ),
            (
                "[[cron]]\nschedule = \"@daily\"\ncommand = \"x\"\ntimeout = \"7h\"\n",
                "cron[0].timeout",
            ),
            ("[[cron]]\nschedule = \"@daily\"\n", "command"),
            (
                "[[cron]]\nschedule = \"@daily\"\ncommand = \"x\"\nevery = 1\n",
                "unknown field `every`",
            ),
            ("cron = \"@daily x\"\n", "cron"),
            ("\u{0}", "line 1"),
        ] {
            let err = AppManifest::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let many = format!("release = [{}]\n", vec!["\"a\""; MAX_ARGS + 1].join(","));
        assert!(AppManifest::from_toml(&many).is_err());
        let jobs = "[[cron]]\nschedule = \"@daily\"\ncommand = \"x\"\n"
            .repeat(crate::schedule::MAX_JOBS_PER_APP + 1);
        let err = AppManifest::from_toml(&jobs).unwrap_err().to_string();
        assert!(err.contains("cron: at most 32 jobs"), "{err}");
    }
}

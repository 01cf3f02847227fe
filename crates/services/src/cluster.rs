//! The platform's private PostgreSQL cluster, run from the host's
//! installation (`initdb`, `pg_ctl`, `postgres`) under `DATA/postgres`.
//!
//! It listens on the unix socket (for the platform, as the superuser
//! `rampart`, in a directory only its owner can enter) and on the gateway
//! addresses of the app networks that have a database: never on a public
//! address. TCP connections must use TLS (server certificate from the
//! internal CA) and scram-sha-256; `pg_hba.conf` admits each app's role to
//! its own database from its own network only, and nothing else.
//!
//! PostgreSQL refuses to run as root: when the platform is root, the cluster
//! runs as the host's `postgres` user (the Debian package creates it).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::{Result, ServiceError, effective_uid};

/// The superuser the platform administers the cluster as.
pub const ADMIN_ROLE: &str = "rampart";

/// A reload is asynchronous: the pause that lets the server read it.
const RELOAD_SETTLE: Duration = Duration::from_millis(200);

/// One `pg_hba.conf` rule: `role` may reach `database` from `network`, over
/// TLS, with its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub database: String,
    pub role: String,
    /// The app network's subnet in CIDR form.
    pub network: String,
}

/// What the running cluster should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Addresses to listen on (the app networks' gateways).
    pub listen: Vec<IpAddr>,
    pub access: Vec<Access>,
    /// Server certificate chain and key (PEM).
    pub cert_pem: String,
    pub key_pem: String,
}

/// A PostgreSQL cluster under a directory of the platform's.
#[derive(Debug, Clone)]
pub struct ManagedCluster {
    dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    /// The user and group the server runs as, when it cannot be us.
    run_as: Option<(u32, u32)>,
}

/// Finds the newest installed PostgreSQL (`/usr/lib/postgresql/N/bin`, as
/// Debian lays it out), or the directory holding `initdb` on the `PATH`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((n, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    })
}

/// Looks `name` up in `/etc/passwd`: its user and group ids.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

fn quote_conf(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn quote_hba(value: &str) -> String {
    format!("\"{}\"", value.replace('"', ""))
}

impl ManagedCluster {
    /// Describes the cluster under `dir`; nothing is created yet.
    pub fn new(dir: PathBuf, bin_dir: PathBuf, port: u16) -> Result<Self> {
        for tool in ["initdb", "pg_ctl", "postgres"] {
            if !bin_dir.join(tool).is_file() {
                return Err(ServiceError::Unavailable(format!(
                    "{} has no {tool}: install PostgreSQL or set postgres.bin_dir",
                    bin_dir.display()
                )));
            }
        }
        let run_as = if effective_uid() == 0 {
            Some(system_user("postgres").ok_or_else(|| {
                ServiceError::Unavailable(
                    "PostgreSQL will not run as root and this host has no postgres user to run it as"
                        .into(),
                )
            })?)
        } else {
            None
        };
        // PostgreSQL reads every path in its configuration from its own
        // data directory, and the walk up the ancestors below needs them
        // whole: a relative data directory (the default `./rampart-data`)
        // becomes absolute here.
        let dir = std::path::absolute(&dir).map_err(|e| ServiceError::io("resolve", &dir, e))?;
        Ok(Self {
            dir,
            bin_dir,
            port,
            run_as,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory of the unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Whether `initdb` has run.
    pub fn exists(&self) -> bool {
        self.data().join("PG_VERSION").is_file()
    }

    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(tool));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.env_remove("PGDATA")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .kill_on_drop(false);
        cmd
    }

    async fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let output = self
            .command(tool)
            .args(args)
            .output()
            .await
            .map_err(|e| ServiceError::io("run", self.bin_dir.join(tool), e))?;
        if output.status.success() {
            return Ok(());
        }
        let mut message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if message.is_empty() {
            message = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        }
        if tool == "pg_ctl" {
            if let Ok(log) = std::fs::read_to_string(self.log_file()) {
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                for line in tail.into_iter().rev() {
                    let _ = write!(message, "\n  {line}");
                }
            }
        }
        Err(ServiceError::Program {
            program: tool.to_owned(),
            message,
        })
    }

    /// Gives a path to the server's user, or keeps it ours.
    fn own(&self, path: &Path, mode: u32) -> Result<()> {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| ServiceError::io("set permissions of", path, e))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| ServiceError::io("change the owner of", path, e))?;
        }
        Ok(())
    }

    /// Lets the server's user reach its directory, and no one else more.
    fn open_way_in(&self) -> Result<()> {
        if let Some((_, gid)) = self.run_as {
            // The server's user must be able to walk down to its directory:
            // the platform's own directory is given to the server's group
            // for traversal alone (mode 0710), so no other local user can
            // reach any file in it; any other ancestor that is closed is
            // reported.
            if let Some(own) = self.dir.parent() {
                use std::os::unix::fs::MetadataExt;
                let meta = std::fs::metadata(own).map_err(|e| ServiceError::io("read", own, e))?;
                let mode = meta.permissions().mode() & 0o7777;
                if meta.gid() != gid {
                    std::os::unix::fs::chown(own, None, Some(gid))
                        .map_err(|e| ServiceError::io("let the postgres user through", own, e))?;
                }
                let wanted = (mode & !0o077) | 0o010;
                if mode != wanted {
                    std::fs::set_permissions(own, std::fs::Permissions::from_mode(wanted))
                        .map_err(|e| ServiceError::io("let the postgres user through", own, e))?;
                }
                let mut parent = own.parent();
                while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                    let mode = std::fs::metadata(dir)
                        .map_err(|e| ServiceError::io("read", dir, e))?
                        .permissions()
                        .mode();
                    if mode & 0o001 == 0 {
                        return Err(ServiceError::Unavailable(format!(
                            "the postgres user cannot reach {}: {} is closed to other users (mode {:o}); choose a data directory under a traversable path",
                            self.dir.display(),
                            dir.display(),
                            mode & 0o777
                        )));
                    }
                    parent = dir.parent();
                }
            }
        }
        Ok(())
    }

    /// Creates the cluster if it does not exist.
    pub async fn init(&self) -> Result<()> {
        if self.exists() {
            return Ok(());
        }
        for dir in [self.dir.clone(), self.socket_dir()] {
            std::fs::create_dir_all(&dir).map_err(|e| ServiceError::io("create", &dir, e))?;
            self.own(&dir, 0o700)?;
        }
        self.open_way_in()?;
        let data = self.data();
        let pwfile = self.dir.join("initdb-password");
        let password: String = {
            use rand::Rng;
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(40)
                .map(char::from)
                .collect()
        };
        std::fs::write(&pwfile, &password).map_err(|e| ServiceError::io("write", &pwfile, e))?;
        self.own(&pwfile, 0o600)?;
        let result = self
            .run(
                "initdb",
                &[
                    "--pgdata".as_ref(),
                    data.as_os_str(),
                    "--username".as_ref(),
                    ADMIN_ROLE.as_ref(),
                    "--pwfile".as_ref(),
                    pwfile.as_os_str(),
                    "--auth-local=peer".as_ref(),
                    "--auth-host=reject".as_ref(),
                    "--encoding=UTF8".as_ref(),
                    "--no-locale".as_ref(),
                    "--no-instructions".as_ref(),
                ],
            )
            .await;
        let _ = std::fs::remove_file(&pwfile);
        if let Err(err) = result {
            let _ = std::fs::remove_dir_all(&data);
            return Err(err);
        }
        Ok(())
    }

    fn config_text(&self, layout: &Layout) -> String {
        let listen: Vec<String> = layout.listen.iter().map(|a| a.to_string()).collect();
        let path = |p: PathBuf| quote_conf(&p.to_string_lossy());
        format!(
            "# Written by Rampart at every start; changes here are lost.\n\
             listen_addresses = {listen}\n\
             port = {port}\n\
             unix_socket_directories = {socket}\n\
             unix_socket_permissions = 0700\n\
             hba_file = {hba}\n\
             ident_file = {ident}\n\
             ssl = on\n\
             ssl_cert_file = {cert}\n\
             ssl_key_file = {key}\n\
             ssl_min_protocol_version = 'TLSv1.2'\n\
             password_encryption = 'scram-sha-256'\n\
             max_connections = 200\n\
             shared_buffers = 128MB\n\
             dynamic_shared_memory_type = posix\n\
             timezone = 'UTC'\n\
             log_timezone = 'UTC'\n\
             log_connections = on\n\
             log_disconnections = off\n\
             log_line_prefix = '%m [%p] %q%u@%d '\n",
            listen = quote_conf(&listen.join(",")),
            port = self.port,
            socket = path(self.socket_dir()),
            hba = path(self.dir.join("pg_hba.conf")),
            ident = path(self.dir.join("pg_ident.conf")),
            cert = path(self.dir.join("server.crt")),
            key = path(self.dir.join("server.key")),
        )
    }

    fn hba_text(layout: &Layout) -> String {
        let mut text = String::from(
            "# Written by Rampart; changes here are lost.\n\
             # The platform administers the cluster over its socket, as its owner.\n\
             local all rampart peer map=rampart\n\
             # It reads and loads an app's data as the app's own role, with\n\
             # its password; only the platform can reach the socket.\n\
             local all all scram-sha-256\n",
        );
        for a in &layout.access {
            let _ = writeln!(
                text,
                "hostssl {} {} {} scram-sha-256",
                quote_hba(&a.database),
                quote_hba(&a.role),
                a.network
            );
        }
        text.push_str("# Anything else finds no rule and is refused.\n");
        text
    }

    /// Maps the system user the platform runs as to the admin role, for
    /// peer authentication on the socket.
    fn ident_text() -> String {
        let me = effective_uid();
        let mut names = vec![me.to_string()];
        if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
            names.extend(passwd.lines().filter_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                let uid: u32 = f.nth(1)?.parse().ok()?;
                (uid == me).then(|| name.to_owned())
            }));
        }
        let mut text = String::from("# Written by Rampart; changes here are lost.\n");
        for name in names {
            let _ = writeln!(text, "rampart {name} {ADMIN_ROLE}");
        }
        text
    }

    fn write_file(&self, name: &str, text: &str, mode: u32) -> Result<bool> {
        let path = self.dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(false);
        }
        let tmp = self.dir.join(format!(".{name}.new"));
        std::fs::write(&tmp, text).map_err(|e| ServiceError::io("write", &tmp, e))?;
        self.own(&tmp, mode)?;
        std::fs::rename(&tmp, &path).map_err(|e| ServiceError::io("replace", &path, e))?;
        Ok(true)
    }

    /// Whether the server is running.
    pub async fn is_running(&self) -> bool {
        self.exists()
            && self
                .run(
                    "pg_ctl",
                    &["status".as_ref(), "-D".as_ref(), self.data().as_os_str()],
                )
                .await
                .is_ok()
    }

    /// Writes the configuration for `layout` and brings the server to it:
    /// started if it is down, reloaded when only rules or certificates
    /// changed, restarted when its addresses changed.
    pub async fn apply(&self, layout: &Layout) -> Result<()> {
        self.init().await?;
        // Also for a cluster an earlier version made, which opened the
        // platform's directory to every local user.
        self.open_way_in()?;
        let config = self.config_text(layout);
        let config_changed = self.write_file("postgresql.conf", &config, 0o600)?;
        // The data directory's own file points at ours.
        let include = format!(
            "include {}\n",
            quote_conf(&self.dir.join("postgresql.conf").to_string_lossy())
        );
        let main = self.data().join("postgresql.conf");
        if std::fs::read_to_string(&main).ok().as_deref() != Some(include.as_str()) {
            std::fs::write(&main, &include).map_err(|e| ServiceError::io("write", &main, e))?;
            self.own(&main, 0o600)?;
        }
        self.write_file("pg_ident.conf", &Self::ident_text(), 0o600)?;
        self.write_file("pg_hba.conf", &Self::hba_text(layout), 0o600)?;
        self.write_file("server.crt", &layout.cert_pem, 0o600)?;
        self.write_file("server.key", &layout.key_pem, 0o600)?;

        let data = self.data();
        let log = self.log_file();
        if !log.exists() {
            std::fs::write(&log, "").map_err(|e| ServiceError::io("create", &log, e))?;
            self.own(&log, 0o600)?;
        }
        if !self.is_running().await {
            return self.start().await;
        }
        if config_changed {
            self.pg_ctl("restart", &["-m", "fast"]).await
        } else {
            self.run(
                "pg_ctl",
                &["reload".as_ref(), "-D".as_ref(), data.as_os_str()],
            )
            .await?;
            // A reload is asynchronous; give the server a moment to read it.
            tokio::time::sleep(RELOAD_SETTLE).await;
            Ok(())
        }
    }

    async fn start(&self) -> Result<()> {
        self.pg_ctl("start", &[]).await
    }

    /// `pg_ctl ACTION -D DATA -w -t 60 -l LOG EXTRA…`.
    async fn pg_ctl(&self, action: &str, extra: &[&str]) -> Result<()> {
        let data = self.data();
        let log = self.log_file();
        let mut args: Vec<&std::ffi::OsStr> = vec![
            action.as_ref(),
            "-D".as_ref(),
            data.as_os_str(),
            "-w".as_ref(),
            "-t".as_ref(),
            "60".as_ref(),
            "-l".as_ref(),
            log.as_os_str(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        self.run("pg_ctl", &args).await
    }

    /// Stops the server (fast: open sessions are ended).
    pub async fn stop(&self) -> Result<()> {
        if !self.is_running().await {
            return Ok(());
        }
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
            ],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_admit_each_role_to_its_own_database_only() {
        let layout = Layout {
            listen: vec!["172.18.0.1".parse().unwrap()],
            access: vec![
                Access {
                    database: "app_a".into(),
                    role: "app_a".into(),
                    network: "172.18.0.0/16".into(),
                },
                Access {
                    database: "app_b\"; all".into(),
                    role: "app_b".into(),
                    network: "172.19.0.0/16".into(),
                },
            ],
            cert_pem: String::new(),
            key_pem: String::new(),
        };
        let text = ManagedCluster::hba_text(&layout);
        let rules: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        assert_eq!(
            rules,
            [
                "local all rampart peer map=rampart",
                "local all all scram-sha-256",
                "hostssl \"app_a\" \"app_a\" 172.18.0.0/16 scram-sha-256",
                "hostssl \"app_b; all\" \"app_b\" 172.19.0.0/16 scram-sha-256",
            ]
        );
        assert!(!text.contains("trust"));
        assert!(!text.contains("\nhost "), "no rule may admit plain TCP");
    }

    #[test]
    fn config_values_are_quoted() {
        let cluster = ManagedCluster {
            dir: PathBuf::from("/srv/it's"),
            bin_dir: PathBuf::new(),
            port: 6543,
            run_as: None,
        };
        let layout = Layout {
            listen: vec![],
            access: vec![],
            cert_pem: String::new(),
            key_pem: String::new(),
        };
        let text = cluster.config_text(&layout);
        assert!(text.contains("listen_addresses = ''\n"), "{text}");
        assert!(text.contains("'/srv/it''s/run'"), "{text}");
        assert!(text.contains("ssl = on"));
    }
}

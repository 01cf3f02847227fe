//! The stored login: `~/.config/rampart/credentials.toml` (mode 0600) and a
//! copy of the server's CA certificate beside it. `RAMPART_SERVER`,
//! `RAMPART_CA` and `RAMPART_TOKEN` override what is stored.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rampart_client::Client;
use serde::{Deserialize, Serialize};

use crate::Connection;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    server: String,
    token: String,
}

/// `$XDG_CONFIG_HOME/rampart`, else `$HOME/.config/rampart`.
pub fn dir() -> anyhow::Result<PathBuf> {
    if let Some(base) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(base).join("rampart"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither XDG_CONFIG_HOME nor HOME is set; cannot find the stored login")?;
    Ok(PathBuf::from(home).join(".config").join("rampart"))
}

/// Replaces `path` with `contents`, private to the user, in one rename.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    rampart_edge::pki::write_private(&tmp, contents, true)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Stores a login that has been checked against the server.
pub fn save(server: &str, ca_pem: &[u8], token: &str) -> anyhow::Result<PathBuf> {
    let dir = dir()?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    write_private(&dir.join("ca.pem"), ca_pem)?;
    let stored = Stored {
        server: server.to_owned(),
        token: token.to_owned(),
    };
    let path = dir.join("credentials.toml");
    write_private(&path, toml::to_string(&stored)?.as_bytes())?;
    Ok(path)
}

/// A client from the environment and the stored login.
pub fn client(conn: &Connection) -> anyhow::Result<Client> {
    let dir = dir()?;
    let stored_path = dir.join("credentials.toml");
    let stored: Option<Stored> = match fs::read_to_string(&stored_path) {
        Ok(text) => Some(toml::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; run rampart login again",
                stored_path.display()
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", stored_path.display())),
    };
    let server = match (&conn.server, &stored) {
        (Some(server), _) => server.clone(),
        (None, Some(stored)) => stored.server.clone(),
        (None, None) => bail!(
            "not logged in: run rampart login --server URL --ca FILE --token-file FILE, or set RAMPART_SERVER"
        ),
    };
    let token = match (
        std::env::var("RAMPART_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        &stored,
    ) {
        (Some(token), _) => token,
        (None, Some(stored)) => stored.token.clone(),
        (None, None) => bail!("no token: run rampart login, or set RAMPART_TOKEN"),
    };
    let ca_path = conn.ca.clone().unwrap_or_else(|| dir.join("ca.pem"));
    let ca = fs::read(&ca_path).with_context(|| {
        format!(
            "cannot read the CA certificate {}; pass --ca FILE or set RAMPART_CA",
            ca_path.display()
        )
    })?;
    Ok(Client::new(&server, &ca, Some(token))?)
}

//! Identity commands: users, invitations, grants, personal data, MFA and
//! logout.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_client::Client;
use rampart_core::Role;
use rampart_core::wire::{AcceptInvitation, InviteUser};

use crate::commands::ask;
use crate::{Connection, credentials, output};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; prints their single-use invitation.
    Add {
        email: String,
        #[arg(long)]
        role: Role,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a user: no more sign-in, every token revoked.
    Remove {
        email: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a user's role.
    SetRole {
        email: String,
        role: Role,
        #[command(flatten)]
        conn: Connection,
    },
    /// Let a developer act on an app.
    Grant {
        email: String,
        app: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Withdraw a developer's access to an app.
    Revoke {
        email: String,
        app: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Write everything held about a user as JSON.
    Export {
        email: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Erase a user's personal data (the audit log keeps verifying).
    Erase {
        email: String,
        /// Confirm without asking.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Set your password from an invitation (asks for both).
    Accept {
        /// Server URL, e.g. https://127.0.0.1:7443.
        #[arg(long)]
        server: String,
        /// The server's CA certificate.
        #[arg(long)]
        ca: PathBuf,
    },
}

/// A user's id by email.
async fn user_id(client: &Client, email: &str) -> anyhow::Result<String> {
    client
        .users()
        .await?
        .into_iter()
        .find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .map(|u| u.id)
        .with_context(|| format!("there is no user with the email {email:?}"))
}

pub async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Add {
            email,
            role,
            json,
            conn,
        } => {
            let invited = credentials::client(&conn)?
                .invite_user(&InviteUser { email, role })
                .await?;
            if json {
                return output::json(&invited);
            }
            eprintln!(
                "Created {} ({}). Give them this invitation (single use, until {}); they run `rampart users accept`:",
                invited.user.email.as_deref().unwrap_or_default(),
                invited.user.role,
                invited.expires_at
            );
            println!("{}", invited.invitation);
        }
        UsersCommand::List { json, conn } => {
            let users = credentials::client(&conn)?.users().await?;
            let header = ["ID", "EMAIL", "ROLE", "STATUS", "MFA", "GRANTS"];
            output::list(json, &users, &header, |u| {
                vec![
                    u.id.clone(),
                    u.email.clone().unwrap_or_else(|| "(erased)".into()),
                    u.role.to_string(),
                    u.status.clone(),
                    if u.mfa_enabled { "yes" } else { "no" }.into(),
                    u.grants.join(","),
                ]
            })?;
        }
        UsersCommand::Remove { email, conn } => {
            let client = credentials::client(&conn)?;
            client.remove_user(&user_id(&client, &email).await?).await?;
            println!("Removed {email}; their tokens are revoked");
        }
        UsersCommand::SetRole { email, role, conn } => {
            let client = credentials::client(&conn)?;
            let user = client
                .set_role(&user_id(&client, &email).await?, role)
                .await?;
            println!("{email} is now {}", user.role);
        }
        UsersCommand::Grant { email, app, conn } => {
            let client = credentials::client(&conn)?;
            let id = user_id(&client, &email).await?;
            let user = client.grant(&id, &app, true).await?;
            println!("{email} may act on: {}", user.grants.join(", "));
        }
        UsersCommand::Revoke { email, app, conn } => {
            let granted = false;
            let client = credentials::client(&conn)?;
            let id = user_id(&client, &email).await?;
            let user = client.grant(&id, &app, granted).await?;
            println!("{email} may act on: {}", user.grants.join(", "));
        }
        UsersCommand::Export {
            email,
            output: file,
            conn,
        } => {
            let client = credentials::client(&conn)?;
            let export = client.export_user(&user_id(&client, &email).await?).await?;
            let text = serde_json::to_string_pretty(&export)?;
            match file {
                Some(path) => {
                    std::fs::write(&path, format!("{text}\n"))
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("Wrote everything held about {email} to {}", path.display());
                }
                None => println!("{text}"),
            }
        }
        UsersCommand::Erase { email, yes, conn } => {
            if !yes {
                bail!("erasing {email:?} cannot be undone; run again with --yes");
            }
            let client = credentials::client(&conn)?;
            client.erase_user(&user_id(&client, &email).await?).await?;
            println!("Erased the personal data of {email}");
        }
        UsersCommand::Accept { server, ca } => {
            let ca = std::fs::read(&ca)
                .with_context(|| format!("cannot read the CA certificate {}", ca.display()))?;
            let invitation = ask("Invitation: ", true)?;
            let password = ask("New password (at least 12 characters): ", true)?;
            let client = Client::new(&server, &ca, None)?;
            client
                .accept_invitation(&AcceptInvitation {
                    invitation: invitation.trim().to_owned(),
                    password,
                })
                .await?;
            println!("Password set; sign in with `rampart login --server {server} --ca FILE`");
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Enroll an authenticator app (TOTP): shows a QR code, then asks for a
    /// first code and prints ten recovery codes.
    Enroll {
        #[command(flatten)]
        conn: Connection,
    },
}

/// A QR code for the terminal, two rows of modules per line.
fn qr(text: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::new(text.as_bytes())?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build())
}

pub async fn mfa(cmd: MfaCommand) -> anyhow::Result<()> {
    match cmd {
        MfaCommand::Enroll { conn } => {
            let client = credentials::client(&conn)?;
            let enrollment = client.enroll_mfa().await?;
            eprintln!("{}", qr(&enrollment.otpauth_uri)?);
            eprintln!("Scan the code with an authenticator app, or enter the key by hand:");
            eprintln!("  {}", enrollment.secret);
            eprintln!("  {}", enrollment.otpauth_uri);
            let code = ask("First code from the app: ", false)?;
            let recovery = client.confirm_mfa(code.trim()).await?;
            eprintln!("MFA is on. Keep these recovery codes somewhere safe; each works once:");
            for code in recovery.codes {
                println!("{code}");
            }
        }
    }
    Ok(())
}

/// Signs out: a login session is revoked; an API token (such as the
/// bootstrap token, which may be the owner's only way in) is only forgotten
/// here and stays valid until `tokens revoke`.
pub async fn logout(conn: Connection) -> anyhow::Result<()> {
    let client = credentials::client(&conn)?;
    let session = client.whoami().await?.session;
    if session {
        client.logout().await?;
    }
    if let Ok(dir) = credentials::dir() {
        let _ = std::fs::remove_file(dir.join("credentials.toml"));
    }
    if session {
        println!("Logged out; the session is revoked");
    } else {
        println!(
            "Logged out; the API token was forgotten here and stays valid (rampart tokens revoke ID ends it)"
        );
    }
    Ok(())
}

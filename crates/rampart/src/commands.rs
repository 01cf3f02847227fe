//! Client commands: each parses its arguments, calls the API through the
//! typed client and prints the result.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rampart_client::Client;
use rampart_core::token;
use rampart_core::wire::CreateApp;

use crate::{Connection, Exit, credentials, output};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Server URL, e.g. https://127.0.0.1:7443.
    #[arg(long)]
    server: String,
    /// The server's CA certificate (DATA/ca.pem on the server); the copy
    /// stored by an earlier login when omitted.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Sign in with an API token from this file (such as
    /// DATA/bootstrap-token) instead of email, password and code.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The email to sign in as; asked for when omitted.
    #[arg(long)]
    email: Option<String>,
}

/// Reads one line: from the terminal with `prompt` (hidden when `secret`),
/// or the next line of standard input when it is not a terminal.
pub fn ask(prompt: &str, secret: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        if secret {
            return Ok(rpassword::prompt_password(prompt)?);
        }
        eprint!("{prompt}");
    }
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let ca_path = match &args.ca {
        Some(path) => path.clone(),
        None => credentials::dir()?.join("ca.pem"),
    };
    let ca = std::fs::read(&ca_path).with_context(|| {
        format!(
            "cannot read the CA certificate {}; pass --ca FILE (DATA/ca.pem on the server)",
            ca_path.display()
        )
    })?;
    let token = match &args.token_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the token file {}", file.display()))?;
            let token = text.trim().to_owned();
            token::check(&token)
                .with_context(|| format!("{} does not hold a Rampart token", file.display()))?;
            token
        }
        None => {
            let email = match args.email.clone() {
                Some(email) => email,
                None => ask("Email: ", false)?,
            };
            let password = ask("Password: ", true)?;
            let code = ask(
                "Code (authenticator or recovery code; empty if none): ",
                false,
            )?;
            let request = rampart_core::wire::Login {
                email,
                password,
                code: (!code.trim().is_empty()).then_some(code),
            };
            let session = Client::new(&args.server, &ca, None)?
                .login(&request)
                .await?;
            eprintln!("Session valid until {}", session.expires_at);
            session.token
        }
    };
    let client = Client::new(&args.server, &ca, Some(token.clone()))?;
    let me = client.whoami().await?;
    let path = credentials::save(client.server(), &ca, &token)?;
    println!(
        "Logged in to {} as {} ({}); credentials in {}",
        client.server(),
        me.email.as_deref().unwrap_or(&me.user_id),
        me.role,
        path.display()
    );
    if me.mfa_required {
        eprintln!("MFA is required for your role: run `rampart mfa enroll` before anything else");
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Create an app.
    Create {
        /// A DNS label: lowercase letters, digits and hyphens, 1 to 40 characters.
        name: String,
        /// A domain to serve the app on (repeatable); NAME.localhost by default.
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Create the app's PostgreSQL database with it.
        #[arg(long)]
        with_db: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List apps.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one app.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show or change how an app runs (port, health check, limits, egress).
    Configure(crate::deploy_cmd::ConfigureArgs),
    /// Delete an app with its environment, database and media.
    Delete {
        name: String,
        /// Confirm without asking.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

fn confirm(what: &str, name: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to {what} {name:?} without --yes");
    }
    eprint!("Type the name to {what} {name:?}: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if line.trim() != name {
        bail!("the name did not match; nothing was deleted");
    }
    Ok(())
}

pub async fn apps(cmd: AppsCommand) -> anyhow::Result<()> {
    match cmd {
        AppsCommand::Configure(args) => return crate::deploy_cmd::configure(args).await,
        AppsCommand::Create {
            name,
            domains,
            with_db,
            json,
            conn,
        } => {
            let client = credentials::client(&conn)?;
            let request = CreateApp {
                name,
                domains: (!domains.is_empty()).then_some(domains),
                with_db,
            };
            let app = client.create_app(&request).await?;
            if json {
                return output::json(&app);
            }
            println!("Created app {} at {}", app.name, app.domains.join(", "));
            if with_db {
                println!(
                    "Its database is ready; replicas get DATABASE_URL at their next deploy (`rampart db info {}`)",
                    app.name
                );
            }
        }
        AppsCommand::List { json, conn } => {
            let apps = credentials::client(&conn)?.apps().await?;
            output::list(json, &apps, &["NAME", "DOMAINS", "ENV", "CREATED"], |a| {
                vec![
                    a.name.clone(),
                    a.domains.join(","),
                    a.env_count.to_string(),
                    a.created_at.clone(),
                ]
            })?;
        }
        AppsCommand::Show { name, json, conn } => {
            let app = credentials::client(&conn)?.app(&name).await?;
            if json {
                return output::json(&app);
            }
            println!("name:      {}", app.name);
            println!("id:        {}", app.id);
            println!("domains:   {}", app.domains.join(", "));
            println!("env vars:  {}", app.env_count);
            println!("created:   {}", app.created_at);
        }
        AppsCommand::Delete { name, yes, conn } => {
            let client = credentials::client(&conn)?;
            if !yes {
                confirm("delete app", &name)?;
            }
            client.delete_app(&name).await?;
            println!("Deleted app {name}");
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Set variables: NAME=VALUE, or NAME alone to read its value from stdin
    /// (keeps secrets out of shell history and process lists).
    Set {
        app: String,
        #[arg(required = true, value_name = "NAME=VALUE")]
        pairs: Vec<String>,
        /// Roll the replicas now (zero downtime) so they see the change;
        /// otherwise it applies with the next deploy.
        #[arg(long)]
        restart: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove variables, all or none.
    Unset {
        app: String,
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Roll the replicas now (zero downtime) so they see the change.
        #[arg(long)]
        restart: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List variable names; values only with --reveal (owners and admins,
    /// recorded in the audit log).
    List {
        app: String,
        #[arg(long)]
        reveal: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

pub(crate) fn parse_pairs(pairs: Vec<String>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    let mut from_stdin = None;
    for pair in pairs {
        match pair.split_once('=') {
            Some((name, value)) => {
                vars.insert(name.to_owned(), value.to_owned());
            }
            None => {
                if from_stdin.replace(pair.clone()).is_some() {
                    bail!("only one variable can take its value from stdin");
                }
            }
        }
    }
    if let Some(name) = from_stdin {
        if std::io::stdin().is_terminal() {
            eprint!("Value for {name}: ");
        }
        let mut value = String::new();
        std::io::stdin()
            .read_to_string(&mut value)
            .context("cannot read the value from stdin")?;
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        vars.insert(name, value.to_owned());
    }
    Ok(vars)
}

pub async fn env(cmd: EnvCommand) -> anyhow::Result<()> {
    match cmd {
        EnvCommand::Set {
            app,
            pairs,
            restart,
            conn,
        } => {
            let client = credentials::client(&conn)?;
            let vars = parse_pairs(pairs)?;
            let names: Vec<String> = vars.keys().cloned().collect();
            client.set_env(&app, vars).await?;
            println!("Set {} on {app}", names.join(", "));
            if restart {
                crate::deploy_cmd::restart(&client, &app).await?;
            }
        }
        EnvCommand::Unset {
            app,
            names,
            restart,
            conn,
        } => {
            let client = credentials::client(&conn)?;
            client.unset_env(&app, &names).await?;
            println!("Removed {} from {app}", names.join(", "));
            if restart {
                crate::deploy_cmd::restart(&client, &app).await?;
            }
        }
        EnvCommand::List {
            app,
            reveal,
            json,
            conn,
        } => {
            let client = credentials::client(&conn)?;
            if reveal {
                let revealed = client.reveal_env(&app, None).await?;
                if json {
                    return output::json(&revealed.vars);
                }
                for (name, value) in revealed.vars {
                    println!("{name}={value}");
                }
                return Ok(());
            }
            let vars = client.env(&app).await?;
            if json {
                return output::json(&vars);
            }
            let rows: Vec<Vec<String>> = vars
                .into_iter()
                .map(|v| vec![v.name, v.updated_at])
                .collect();
            output::table(&["NAME", "UPDATED"], &rows);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token acting as you; it is shown once.
    Create {
        /// What the token is for, e.g. ci-deploy.
        name: String,
        /// Act with this role instead of yours (never above it).
        #[arg(long)]
        role: Option<rampart_core::Role>,
        /// Act on this app only.
        #[arg(long)]
        app: Option<String>,
        /// Expire after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List tokens (never their values).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a token by id.
    Revoke {
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

pub async fn tokens(cmd: TokensCommand) -> anyhow::Result<()> {
    match cmd {
        TokensCommand::Create {
            name,
            role,
            app,
            expires_in_days,
            json,
            conn,
        } => {
            let request = rampart_core::wire::CreateToken {
                name,
                role,
                app,
                expires_in_days,
            };
            let created = credentials::client(&conn)?.create_token(&request).await?;
            if json {
                return output::json(&created);
            }
            eprintln!(
                "Created token {} ({}); it is shown only this once:",
                created.id, created.name
            );
            println!("{}", created.token);
        }
        TokensCommand::List { json, conn } => {
            let tokens = credentials::client(&conn)?.tokens().await?;
            let header = ["ID", "NAME", "ROLE", "APP", "CREATED", "EXPIRES", "STATUS"];
            output::list(json, &tokens, &header, |t| {
                vec![
                    t.id.clone(),
                    t.name.clone(),
                    t.role.to_string(),
                    t.app.clone().unwrap_or_else(|| "-".into()),
                    t.created_at.clone(),
                    t.expires_at.clone().unwrap_or_else(|| "never".into()),
                    t.revoked_at
                        .as_ref()
                        .map_or_else(|| "active".into(), |at| format!("revoked {at}")),
                ]
            })?;
        }
        TokensCommand::Revoke { id, conn } => {
            credentials::client(&conn)?.revoke_token(&id).await?;
            println!("Revoked token {id}");
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the newest entries, oldest first.
    List {
        /// How many entries (1 to 10000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Check the hash chain end to end; exit 1 when it is broken.
    Verify {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

pub async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::List { limit, json, conn } => {
            let entries = credentials::client(&conn)?.audit(limit).await?;
            if json {
                return output::json(&entries);
            }
            let rows: Vec<Vec<String>> = entries
                .into_iter()
                .map(|e| {
                    vec![
                        e.seq.to_string(),
                        e.time,
                        e.actor,
                        e.action,
                        e.outcome.to_string(),
                        e.target,
                    ]
                })
                .collect();
            output::table(
                &["SEQ", "TIME", "ACTOR", "ACTION", "OUTCOME", "TARGET"],
                &rows,
            );
        }
        AuditCommand::Verify { json, conn } => {
            let report = credentials::client(&conn)?.verify_audit().await?;
            if json {
                output::json(&report)?;
            } else if report.ok {
                println!("Audit chain intact: {} entries verified", report.verified);
            } else {
                eprintln!(
                    "rampart: audit chain broken at entry {}: {}",
                    report.first_bad.unwrap_or(0),
                    report.problem.as_deref().unwrap_or("unknown problem")
                );
            }
            if !report.ok {
                return Err(Exit(1).into());
            }
        }
    }
    Ok(())
}

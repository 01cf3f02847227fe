//! `rampart nodes …`: the machines of a Swarm.

use clap::Subcommand;

use crate::output::printable;
use crate::{Connection, credentials, output};

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// List the Swarm's machines: role, availability, state, labels and
    /// this installation's replicas on each.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Set a node label (`zone=eu-1a`), or remove one with `--remove`.
    Label {
        /// Node id, id prefix or hostname.
        node: String,
        /// KEY=VALUE, or KEY with --remove.
        label: String,
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Move every replica off a node with no request failing, then drain
    /// it; recorded in the audit log.
    Drain {
        /// Node id, id prefix or hostname.
        node: String,
        /// Also keep new replicas off it until `rampart nodes activate`
        /// (a machine suspected of compromise).
        #[arg(long)]
        suspect: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Issue the credential an edge on a node syncs with (`rampart
    /// ingress` there); refused for a suspect node.
    Ingress {
        /// Node id, id prefix or hostname.
        node: String,
        /// Write the credential to this new file (mode 0600) rather than
        /// printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Let a node take replicas again, clearing a suspicion.
    Activate {
        /// Node id, id prefix or hostname.
        node: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

fn labels(node: &rampart_core::wire::Node) -> String {
    node.labels
        .iter()
        .map(|(k, v)| printable(&format!("{k}={v}")).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

fn show(node: &rampart_core::wire::Node) {
    let suspect = if node.suspect { " (suspect)" } else { "" };
    println!(
        "{} {}: {} {}{suspect}, {} replica(s); labels: {}",
        node.id,
        printable(&node.hostname),
        node.state,
        node.availability,
        node.replicas,
        labels(node)
    );
}

pub async fn run(command: NodesCommand) -> anyhow::Result<()> {
    match command {
        NodesCommand::List { json, conn } => {
            let nodes = credentials::client(&conn)?.nodes().await?;
            if json {
                return output::json(&nodes);
            }
            let rows: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| {
                    vec![
                        n.id.clone(),
                        printable(&n.hostname).into_owned(),
                        n.role.clone(),
                        n.state.clone(),
                        if n.suspect {
                            format!("{} (suspect)", n.availability)
                        } else {
                            n.availability.clone()
                        },
                        n.replicas.to_string(),
                        labels(n),
                    ]
                })
                .collect();
            output::table(
                &[
                    "ID",
                    "HOSTNAME",
                    "ROLE",
                    "STATE",
                    "AVAILABILITY",
                    "REPLICAS",
                    "LABELS",
                ],
                &rows,
            );
        }
        NodesCommand::Label {
            node,
            label,
            remove,
            json,
            conn,
        } => {
            let (key, value) = match (label.split_once('='), remove) {
                (Some((k, v)), false) => (k.to_owned(), Some(v.to_owned())),
                (None, true) => (label.clone(), None),
                (Some(_), true) => anyhow::bail!("--remove takes a label name, not KEY=VALUE"),
                (None, false) => anyhow::bail!("{label:?} is not KEY=VALUE (or use --remove KEY)"),
            };
            let node = credentials::client(&conn)?
                .label_node(&node, &key, value.as_deref())
                .await?;
            if json {
                return output::json(&node);
            }
            show(&node);
        }
        NodesCommand::Drain {
            node,
            suspect,
            json,
            conn,
        } => {
            let drained = credentials::client(&conn)?
                .drain_node(&node, suspect)
                .await?;
            if json {
                return output::json(&drained);
            }
            println!(
                "{} drained: {} replica(s) moved, healthy and serving elsewhere",
                printable(&drained.node.hostname),
                drained.moved
            );
            show(&drained.node);
        }
        NodesCommand::Ingress {
            node,
            out,
            json,
            conn,
        } => {
            let issued = credentials::client(&conn)?
                .ingress_credential(&node)
                .await?;
            if let Some(path) = &out {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
                writeln!(file, "{}", issued.credential)?;
            }
            if json {
                let mut shown = issued.clone();
                if out.is_some() {
                    shown.credential.clear();
                }
                return output::json(&shown);
            }
            if out.is_none() {
                println!("{}", issued.credential);
            }
            eprintln!(
                "on node {}: rampart ingress --server {} --ca CA.pem --credential-file FILE (docs/swarm.md)",
                issued.node, issued.server
            );
        }
        NodesCommand::Activate { node, json, conn } => {
            let node = credentials::client(&conn)?.activate_node(&node).await?;
            if json {
                return output::json(&node);
            }
            show(&node);
        }
    }
    Ok(())
}

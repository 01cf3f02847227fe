//! Access events: one per request, written as JSON lines to the access log
//! and published on an in-process channel for monitoring.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc};

use crate::shield::ShieldAction;

/// What happened to one request.
#[derive(Debug, Clone, Serialize)]
pub struct AccessEvent {
    /// RFC 3339, UTC.
    pub time: String,
    pub client_ip: String,
    pub host: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: f64,
    pub upstream: Option<String>,
    pub request_id: String,
    pub tls_version: Option<&'static str>,
    pub shield: Option<ShieldAction>,
}

/// Where access events go.
#[derive(Debug, Clone)]
pub struct AccessLog {
    bus: broadcast::Sender<Arc<AccessEvent>>,
    file: Option<mpsc::Sender<Arc<AccessEvent>>>,
}

impl AccessLog {
    /// Starts the writer for `path`, if any. Events are dropped, not
    /// waited for, when the writer falls behind: logging never slows
    /// traffic.
    pub async fn start(path: Option<PathBuf>) -> std::io::Result<Self> {
        let (bus, _) = broadcast::channel(4096);
        let file = match path {
            None => None,
            Some(path) => {
                let f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .await?;
                let (tx, rx) = mpsc::channel(8192);
                tokio::spawn(write_loop(f, rx));
                Some(tx)
            }
        };
        Ok(Self { bus, file })
    }

    /// Whether anyone takes events: a log file or a subscriber. When not,
    /// requests skip building them.
    pub fn is_active(&self) -> bool {
        self.file.is_some() || self.bus.receiver_count() > 0
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AccessEvent>> {
        self.bus.subscribe()
    }

    pub fn emit(&self, event: AccessEvent) {
        let event = Arc::new(event);
        if let Some(file) = &self.file {
            let _ = file.try_send(event.clone());
        }
        let _ = self.bus.send(event);
    }
}

async fn write_loop(file: tokio::fs::File, mut rx: mpsc::Receiver<Arc<AccessEvent>>) {
    let mut out = tokio::io::BufWriter::new(file);
    while let Some(event) = rx.recv().await {
        let mut line = serde_json::to_vec(&*event).unwrap_or_default();
        line.push(b'\n');
        if out.write_all(&line).await.is_err() {
            break;
        }
        // Flush when the queue is momentarily empty, so lines appear
        // promptly without a write per request under load.
        if rx.is_empty() && out.flush().await.is_err() {
            break;
        }
    }
    let _ = out.flush().await;
}

//! Access events: one per request, written as JSON lines to the access log
//! and published on an in-process channel for monitoring.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::shield::ShieldAction;

/// What happened to one request. Kept as the request path has it (no
/// text is formatted there): the log writer's thread formats it.
#[derive(Debug, Clone, Serialize)]
pub struct AccessEvent {
    /// Written as RFC 3339, UTC.
    #[serde(serialize_with = "rfc3339")]
    pub time: time::OffsetDateTime,
    pub client_ip: std::net::IpAddr,
    pub host: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: f64,
    pub upstream: Option<std::net::SocketAddr>,
    pub request_id: String,
    pub tls_version: Option<&'static str>,
    pub shield: Option<ShieldAction>,
}

fn rfc3339<S: serde::Serializer>(at: &time::OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let text = at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

/// Where access events go.
#[derive(Debug, Clone)]
pub struct AccessLog {
    bus: broadcast::Sender<Arc<AccessEvent>>,
    file: Option<SyncSender<ToWriter>>,
}

/// What the log writer's thread receives.
enum ToWriter {
    Event(Arc<AccessEvent>),
    /// Write everything sent before this, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl AccessLog {
    /// Starts the writer for `path`, if any. Events are dropped, not
    /// waited for, when the writer falls behind: logging never slows
    /// traffic.
    pub fn start(path: Option<PathBuf>) -> std::io::Result<Self> {
        let (bus, _) = broadcast::channel(4096);
        let file = match path {
            None => None,
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                let (tx, rx) = std::sync::mpsc::sync_channel(8192);
                std::thread::Builder::new()
                    .name("edge-access-log".into())
                    .spawn(move || write_loop(f, rx))?;
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
            let _ = file.try_send(ToWriter::Event(event.clone()));
        }
        let _ = self.bus.send(event);
    }

    /// Waits (up to `deadline`) until every event emitted so far is in the
    /// file: the last requests of a drain are logged before the edge exits.
    pub async fn flush(&self, deadline: Duration) {
        let Some(file) = &self.file else { return };
        let (done, written) = tokio::sync::oneshot::channel();
        let file = file.clone();
        // The queue may be full; waiting for room is the point here.
        let sent = tokio::task::spawn_blocking(move || file.send(ToWriter::Flush(done)).is_ok());
        if matches!(sent.await, Ok(true)) {
            let _ = tokio::time::timeout(deadline, written).await;
        }
    }
}

/// How long the writer lets events gather after writing a batch: lines
/// reach the file within this, and under load the request path hands events
/// over without waking the writer for each.
const GATHER: Duration = Duration::from_millis(5);

/// The log writer's thread: serialises and appends events in batches, one
/// write per batch, off the request path. Ends when the edge drops its
/// sender.
fn write_loop(mut file: std::fs::File, rx: Receiver<ToWriter>) {
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut flushed = Vec::new();
    while let Ok(first) = rx.recv() {
        for message in std::iter::once(first).chain(rx.try_iter()) {
            match message {
                ToWriter::Event(event) => {
                    if serde_json::to_writer(&mut batch, &*event).is_ok() {
                        batch.push(b'\n');
                    }
                }
                ToWriter::Flush(done) => flushed.push(done),
            }
        }
        if let Err(error) = file.write_all(&batch) {
            tracing::error!(%error, "cannot write the access log; it stops");
            return;
        }
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
        std::thread::sleep(GATHER);
    }
}

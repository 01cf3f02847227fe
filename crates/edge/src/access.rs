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
    path: Option<PathBuf>,
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
        let file = match &path {
            None => None,
            Some(path) => {
                let (f, day) = open_log(path)?;
                let (tx, rx) = std::sync::mpsc::sync_channel(8192);
                let path = path.clone();
                std::thread::Builder::new()
                    .name("edge-access-log".into())
                    .spawn(move || write_loop(f, day, &path, rx))?;
                Some(tx)
            }
        };
        Ok(Self { bus, file, path })
    }

    /// The log file, when there is one. Earlier days' lines are in
    /// `PATH.YYYY-MM-DD` beside it.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
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

/// Opens the log for appending (0600: it holds client addresses), with
/// the UTC day its lines are from (its last change, for a file kept from
/// before a restart).
fn open_log(path: &std::path::Path) -> std::io::Result<(std::fs::File, time::Date)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let day = file
        .metadata()
        .and_then(|m| m.modified())
        .map(|t| time::OffsetDateTime::from(t).date())
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc().date());
    Ok((file, day))
}

/// The name an earlier day's lines are moved to: `PATH.YYYY-MM-DD`.
pub fn rotated_name(path: &std::path::Path, day: time::Date) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    ));
    PathBuf::from(name)
}

/// The log writer's thread: serialises and appends events in batches, one
/// write per batch, off the request path; on the first batch of a new UTC
/// day, the file is moved aside under the day it holds and a new one
/// begun, so retention can drop whole days. Ends when the edge drops its
/// sender.
fn write_loop(
    mut file: std::fs::File,
    mut day: time::Date,
    path: &std::path::Path,
    rx: Receiver<ToWriter>,
) {
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
        let today = time::OffsetDateTime::now_utc().date();
        if today != day {
            let aside = rotated_name(path, day);
            let moved = if aside.exists() {
                Ok(())
            } else {
                std::fs::rename(path, &aside)
            };
            match moved.and_then(|()| open_log(path)) {
                Ok((next, _)) => {
                    file = next;
                    day = today;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot start a new access log for the day; appending");
                    day = today;
                }
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

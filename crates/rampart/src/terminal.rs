//! `rampart run` on a terminal: the local terminal in raw mode, its size,
//! and the frames between it and the command's terminal on the server.

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, bail};
use rampart_core::terminal::{Decoder, Frame};
use rampart_core::wire::{RunLine, TerminalSize};
use rustix::termios::{self, OptionalActions, Termios};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};

/// The size a terminal is taken to have when it cannot say.
const FALLBACK: TerminalSize = TerminalSize { cols: 80, rows: 24 };

/// Whether this process talks to a person: both its input and its output
/// are terminals.
pub fn is_interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The size of the terminal on stdout.
pub fn size() -> TerminalSize {
    termios::tcgetwinsize(std::io::stdout())
        .ok()
        .map(|w| TerminalSize {
            cols: w.ws_col,
            rows: w.ws_row,
        })
        .filter(|size| size.is_valid())
        .unwrap_or(FALLBACK)
}

/// The local terminal in raw mode (keys go through as typed, nothing is
/// echoed locally: the remote terminal does that) until dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> anyhow::Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).context("cannot read the terminal's mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw)
            .context("cannot put the terminal in raw mode")?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Runs the terminal side of a run until the server says how the command
/// ended: what the user types and the terminal's new sizes go out, what
/// the command prints comes in. Returns the outcome as a [`RunLine`].
pub async fn session(
    connection: impl tokio::io::AsyncRead + tokio::io::AsyncWrite,
) -> anyhow::Result<RunLine> {
    let _raw = RawMode::enter()?;
    let (mut reader, mut writer) = tokio::io::split(connection);
    // Read on a thread of its own: a read of the terminal cannot be
    // cancelled, and this thread must not keep the process alive once the
    // command ended.
    let (keys, mut typed) = tokio::sync::mpsc::channel::<Option<Vec<u8>>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            let read = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buf[..n].to_vec()),
            };
            let end = read.is_none();
            if keys.blocking_send(read).is_err() || end {
                return;
            }
        }
    });
    let mut resized =
        signal(SignalKind::window_change()).context("cannot watch the terminal's size")?;
    let mut stdout = std::io::stdout().lock();
    let mut decoder = Decoder::default();
    let mut net = vec![0u8; 16 * 1024];
    let mut input_open = true;
    let mut frame_bytes = Vec::new();
    loop {
        frame_bytes.clear();
        tokio::select! {
            key = typed.recv(), if input_open => {
                match key.flatten() {
                    Some(bytes) => Frame::Input(bytes).encode(&mut frame_bytes),
                    None => {
                        input_open = false;
                        Frame::InputClosed.encode(&mut frame_bytes);
                    }
                }
            }
            _ = resized.recv() => {
                let TerminalSize { cols, rows } = size();
                Frame::Resize { cols, rows }.encode(&mut frame_bytes);
            }
            read = reader.read(&mut net) => {
                let n = read.context("the connection to the server failed")?;
                if n == 0 {
                    bail!("the server closed the connection before the command ended");
                }
                decoder.extend(&net[..n]);
                while let Some(frame) = decoder.next_frame()? {
                    match frame {
                        Frame::Output(bytes) => {
                            stdout.write_all(&bytes)?;
                            stdout.flush()?;
                        }
                        Frame::Exited(status) => return Ok(RunLine::Exit { status }),
                        Frame::TimedOut(secs) => return Ok(RunLine::TimedOut { secs }),
                        Frame::Failed(message) => return Ok(RunLine::Failed { message }),
                        other => bail!("the server sent a frame of a client: {other:?}"),
                    }
                }
            }
        }
        if !frame_bytes.is_empty() {
            writer
                .write_all(&frame_bytes)
                .await
                .context("the connection to the server failed")?;
        }
    }
}

//! The frames an interactive one-off command (`rampart run` on a terminal)
//! exchanges once its HTTP request has been upgraded.
//!
//! `POST /api/apps/{app}/runs` with `Connection: upgrade`,
//! `Upgrade: rampart-terminal` and a [`crate::wire::RunCommand`] whose `tty`
//! is set answers `101 Switching Protocols`; from then on the TLS connection
//! carries frames both ways: one byte of kind, four bytes of payload length
//! (big-endian), the payload. The client sends what the user types, the
//! terminal's size when it changes and the end of its input; the server
//! sends what the command prints and, last, how it ended. A frame of an
//! unknown kind, one longer than [`MAX_PAYLOAD`] or one whose payload does
//! not fit its kind ends the connection.

/// The protocol named in the `Upgrade` header.
pub const UPGRADE: &str = "rampart-terminal";

/// The longest payload of one frame.
pub const MAX_PAYLOAD: usize = 64 * 1024;

const HEADER: usize = 5;

const INPUT: u8 = 1;
const RESIZE: u8 = 2;
const INPUT_CLOSED: u8 = 3;
const OUTPUT: u8 = 4;
const EXITED: u8 = 5;
const TIMED_OUT: u8 = 6;
const FAILED: u8 = 7;

/// One frame of a terminal connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes the user typed (client to server).
    Input(Vec<u8>),
    /// The terminal's new size (client to server).
    Resize { cols: u16, rows: u16 },
    /// The user's input ended (client to server).
    InputClosed,
    /// Bytes the command printed (server to client).
    Output(Vec<u8>),
    /// The command exited with this status (server to client, last).
    Exited(i64),
    /// The command ran past its deadline of this many seconds and was
    /// stopped (server to client, last).
    TimedOut(u64),
    /// The command could not run (server to client, last).
    Failed(String),
}

/// Why bytes on a terminal connection are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown terminal frame kind {0}")]
    UnknownKind(u8),
    #[error("a terminal frame of {0} bytes is longer than {MAX_PAYLOAD}")]
    TooLong(usize),
    #[error("the payload of a terminal frame of kind {0} does not fit its kind")]
    BadPayload(u8),
}

impl Frame {
    /// Whether this frame ends the connection.
    pub fn is_last(&self) -> bool {
        matches!(
            self,
            Frame::Exited(_) | Frame::TimedOut(_) | Frame::Failed(_)
        )
    }

    /// Appends the frame's bytes to `out`. A payload longer than
    /// [`MAX_PAYLOAD`] is split into several frames of the same kind
    /// (input and output only; the others are short by construction).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut put = |kind: u8, payload: &[u8]| {
            out.push(kind);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            out.extend_from_slice(payload);
        };
        match self {
            Frame::Input(bytes) | Frame::Output(bytes) => {
                let kind = if matches!(self, Frame::Input(_)) {
                    INPUT
                } else {
                    OUTPUT
                };
                for chunk in bytes.chunks(MAX_PAYLOAD) {
                    put(kind, chunk);
                }
            }
            Frame::Resize { cols, rows } => {
                let mut payload = [0u8; 4];
                payload[..2].copy_from_slice(&cols.to_be_bytes());
                payload[2..].copy_from_slice(&rows.to_be_bytes());
                put(RESIZE, &payload);
            }
            Frame::InputClosed => put(INPUT_CLOSED, &[]),
            Frame::Exited(status) => put(EXITED, &status.to_be_bytes()),
            Frame::TimedOut(secs) => put(TIMED_OUT, &secs.to_be_bytes()),
            Frame::Failed(message) => {
                let mut end = message.len().min(MAX_PAYLOAD);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                put(FAILED, &message.as_bytes()[..end]);
            }
        }
    }

    /// The frame at the start of `buf` and how many bytes it took, or
    /// `None` when `buf` does not hold a whole frame yet.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let Some(header) = buf.get(..HEADER) else {
            return Ok(None);
        };
        let kind = header[0];
        if !(INPUT..=FAILED).contains(&kind) {
            return Err(FrameError::UnknownKind(kind));
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLong(len));
        }
        let Some(payload) = buf.get(HEADER..HEADER + len) else {
            return Ok(None);
        };
        let bad = || FrameError::BadPayload(kind);
        let frame = match kind {
            INPUT => Frame::Input(payload.to_vec()),
            OUTPUT => Frame::Output(payload.to_vec()),
            RESIZE => {
                let fixed: [u8; 4] = payload.try_into().map_err(|_| bad())?;
                Frame::Resize {
                    cols: u16::from_be_bytes([fixed[0], fixed[1]]),
                    rows: u16::from_be_bytes([fixed[2], fixed[3]]),
                }
            }
            INPUT_CLOSED if payload.is_empty() => Frame::InputClosed,
            EXITED => Frame::Exited(i64::from_be_bytes(payload.try_into().map_err(|_| bad())?)),
            TIMED_OUT => {
                Frame::TimedOut(u64::from_be_bytes(payload.try_into().map_err(|_| bad())?))
            }
            FAILED => Frame::Failed(String::from_utf8(payload.to_vec()).map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        Ok(Some((frame, HEADER + len)))
    }
}

/// Frames read from a stream of bytes as they arrive.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match Frame::decode(&self.buf)? {
            Some((frame, used)) => {
                self.buf.drain(..used);
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// Whether part of a frame is waiting for the rest.
    pub fn is_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Frame> {
        vec![
            Frame::Input(b"ls -l\r".to_vec()),
            Frame::Resize {
                cols: 132,
                rows: 43,
            },
            Frame::InputClosed,
            Frame::Output(b"\x1b[1mbold\x1b[0m\r\n".to_vec()),
            Frame::Exited(-1),
            Frame::Exited(130),
            Frame::TimedOut(900),
            Frame::Failed("no image — gone".into()),
        ]
    }

    #[test]
    fn frames_survive_a_round_trip_cut_anywhere() {
        let frames = all();
        let mut bytes = Vec::new();
        for frame in &frames {
            frame.encode(&mut bytes);
        }
        for cut in 0..bytes.len() {
            let mut decoder = Decoder::default();
            let mut got = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                decoder.extend(part);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, frames, "cut at {cut}");
            assert!(!decoder.is_partial());
        }
    }

    #[test]
    fn empty_input_sends_nothing() {
        let mut bytes = Vec::new();
        Frame::Input(Vec::new()).encode(&mut bytes);
        assert!(bytes.is_empty());
    }

    #[test]
    fn long_input_is_split_into_frames_of_at_most_the_limit() {
        let big = vec![7u8; MAX_PAYLOAD * 2 + 3];
        let mut bytes = Vec::new();
        Frame::Output(big.clone()).encode(&mut bytes);
        let mut decoder = Decoder::default();
        decoder.extend(&bytes);
        let mut joined = Vec::new();
        let mut count = 0;
        while let Some(Frame::Output(part)) = decoder.next_frame().unwrap() {
            assert!(part.len() <= MAX_PAYLOAD);
            joined.extend(part);
            count += 1;
        }
        assert_eq!((count, joined), (3, big));
    }

    #[test]
    fn bad_bytes_are_refused_not_guessed() {
        let cases: &[(&[u8], FrameError)] = &[
            (&[0, 0, 0, 0, 0], FrameError::UnknownKind(0)),
            (&[8, 0, 0, 0, 0], FrameError::UnknownKind(8)),
            (&[0xff, 1, 2, 3, 4, 5], FrameError::UnknownKind(0xff)),
            (&[INPUT, 0, 1, 0, 1], FrameError::TooLong(MAX_PAYLOAD + 1)),
            (
                &[OUTPUT, 0xff, 0xff, 0xff, 0xff],
                FrameError::TooLong(u32::MAX as usize),
            ),
            (
                &[RESIZE, 0, 0, 0, 3, 0, 80, 0],
                FrameError::BadPayload(RESIZE),
            ),
            (
                &[INPUT_CLOSED, 0, 0, 0, 1, 9],
                FrameError::BadPayload(INPUT_CLOSED),
            ),
            (
                &[EXITED, 0, 0, 0, 4, 0, 0, 0, 1],
                FrameError::BadPayload(EXITED),
            ),
            (&[TIMED_OUT, 0, 0, 0, 0], FrameError::BadPayload(TIMED_OUT)),
            (
                &[FAILED, 0, 0, 0, 2, 0xc3, 0x28],
                FrameError::BadPayload(FAILED),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(Frame::decode(bytes).unwrap_err(), *expected, "{bytes:?}");
        }
        // A header that promises more than has arrived is not an error yet.
        assert_eq!(Frame::decode(&[INPUT, 0, 0, 0, 9, b'a']).unwrap(), None);
        assert_eq!(Frame::decode(&[INPUT, 0]).unwrap(), None);
    }

    #[test]
    fn only_the_outcomes_end_the_connection() {
        let last: Vec<bool> = all().iter().map(Frame::is_last).collect();
        assert_eq!(last, [false, false, false, false, true, true, true, true]);
    }

    #[test]
    fn a_long_failure_message_is_cut_on_a_character_boundary() {
        let message = "é".repeat(MAX_PAYLOAD);
        let mut bytes = Vec::new();
        Frame::Failed(message).encode(&mut bytes);
        let (frame, used) = Frame::decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        let Frame::Failed(cut) = frame else {
            panic!("{frame:?}")
        };
        assert_eq!(cut.len(), MAX_PAYLOAD);
    }
}

//! The tamper-evident audit chain.
//!
//! Every entry's hash is `SHA-256(previous hash ‖ canonical entry)`, where the
//! first entry's previous hash is 32 zero bytes. The canonical form is the
//! entry's sequence number as 8 big-endian bytes followed by each text field
//! (time, actor, action, target, outcome, request id) as a 4-byte big-endian
//! length and its UTF-8 bytes. Length prefixes make the encoding injective:
//! no two different entries hash the same bytes.
//!
//! Because each hash covers the one before it, editing, deleting or reordering
//! any entry breaks every later link; [`verify`] names the first entry whose
//! link no longer holds. Actors are opaque ids (see [`crate::id`]), so erasing
//! a person's data never requires rewriting the chain.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// A SHA-256 digest in the chain.
pub type ChainHash = [u8; 32];

/// The previous hash of the first entry.
pub const GENESIS: ChainHash = [0; 32];

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The action was carried out.
    Ok,
    /// The caller was not authenticated or not allowed.
    Denied,
    /// The action was refused for its input or failed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ok" => Some(Outcome::Ok),
            "denied" => Some(Outcome::Denied),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The content of an entry before it is placed in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Canonical timestamp text (see [`crate::time`]).
    pub time: String,
    /// Opaque id of who acted: a user id, `anonymous` or `system`.
    pub actor: String,
    /// What was attempted, e.g. `app.create`.
    pub action: String,
    /// What it was attempted on, e.g. `app:shop`.
    pub target: String,
    pub outcome: Outcome,
    pub request_id: String,
}

/// An entry as stored: the record, its place and its links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: u64,
    pub record: AuditRecord,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

fn push_field(buf: &mut Vec<u8>, field: &str) {
    // Fields are bounded far below 4 GiB by the API's body limit.
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(field.as_bytes());
}

/// The canonical bytes of an entry, as hashed.
pub fn canonical(seq: u64, record: &AuditRecord) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(&seq.to_be_bytes());
    push_field(&mut buf, &record.time);
    push_field(&mut buf, &record.actor);
    push_field(&mut buf, &record.action);
    push_field(&mut buf, &record.target);
    push_field(&mut buf, record.outcome.as_str());
    push_field(&mut buf, &record.request_id);
    buf
}

/// The hash of the entry at `seq` whose predecessor hashed to `prev`.
pub fn link(prev: &ChainHash, seq: u64, record: &AuditRecord) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical(seq, record));
    hasher.finalize().into()
}

/// Places a record after `prev` (the last entry, if any).
pub fn append(prev: Option<(u64, ChainHash)>, record: AuditRecord) -> AuditEntry {
    let (seq, prev_hash) = match prev {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS),
    };
    let hash = link(&prev_hash, seq, &record);
    AuditEntry {
        seq,
        record,
        prev_hash,
        hash,
    }
}

/// Where and why the chain stopped holding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq}: expected sequence number {expected}; an entry was removed or reordered")]
    Sequence { seq: u64, expected: u64 },
    #[error(
        "entry {seq}: its link to the previous entry is wrong; an earlier entry was removed, reordered or edited"
    )]
    PreviousHash { seq: u64 },
    #[error("entry {seq}: its content does not match its hash; the entry was edited")]
    Content { seq: u64 },
    #[error(
        "entry {seq}: the chain ends here but the recorded head is entry {head_seq}; entries were removed from the end"
    )]
    Truncated { seq: u64, head_seq: u64 },
    #[error(
        "the recorded head is entry {head_seq} but its hash differs from the stored entry; the chain was rewritten"
    )]
    HeadMismatch { head_seq: u64 },
}

impl ChainBreak {
    /// The sequence number of the first entry found bad.
    pub fn seq(&self) -> u64 {
        match self {
            ChainBreak::Sequence { seq, .. }
            | ChainBreak::PreviousHash { seq }
            | ChainBreak::Content { seq }
            | ChainBreak::Truncated { seq, .. } => *seq,
            ChainBreak::HeadMismatch { head_seq } => *head_seq,
        }
    }
}

/// Checks a chain incrementally, one entry at a time in stored order, so a
/// long log can be verified without holding it in memory.
#[derive(Debug, Clone)]
pub struct Verifier {
    expected_seq: u64,
    prev_hash: ChainHash,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS,
        }
    }

    /// Checks the next entry.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        if entry.seq != self.expected_seq {
            return Err(ChainBreak::Sequence {
                seq: entry.seq,
                expected: self.expected_seq,
            });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(ChainBreak::PreviousHash { seq: entry.seq });
        }
        if link(&entry.prev_hash, entry.seq, &entry.record) != entry.hash {
            return Err(ChainBreak::Content { seq: entry.seq });
        }
        self.expected_seq += 1;
        self.prev_hash = entry.hash;
        Ok(())
    }

    /// Number of entries verified so far.
    pub fn verified(&self) -> u64 {
        self.expected_seq - 1
    }

    /// Ends verification against the head recorded outside the store, if
    /// any. A head that the chain does not reach means entries were cut off
    /// the end; a head whose hash differs means the chain was rebuilt.
    ///
    /// The head may trail the chain by entries appended after it was last
    /// written (a crash between commit and checkpoint), never lead it.
    pub fn finish(
        self,
        head: Option<(u64, ChainHash)>,
        hash_at: impl Fn(u64) -> Option<ChainHash>,
    ) -> Result<u64, ChainBreak> {
        let verified = self.verified();
        if let Some((head_seq, head_hash)) = head {
            if head_seq > verified {
                return Err(ChainBreak::Truncated {
                    seq: verified,
                    head_seq,
                });
            }
            if head_seq > 0 && hash_at(head_seq) != Some(head_hash) {
                return Err(ChainBreak::HeadMismatch { head_seq });
            }
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u32) -> AuditRecord {
        AuditRecord {
            time: format!("2026-11-29T10:00:{:02}.000Z", n % 60),
            actor: "usr_abc".into(),
            action: "app.create".into(),
            target: format!("app:a{n}"),
            outcome: Outcome::Ok,
            request_id: format!("req_{n}"),
        }
    }

    fn chain(n: u32) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.hash));
            out.push(append(prev, record(i)));
        }
        out
    }

    fn verify_all(entries: &[AuditEntry]) -> Result<u64, ChainBreak> {
        let mut v = Verifier::new();
        for e in entries {
            v.push(e)?;
        }
        Ok(v.verified())
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify_all(&chain(5)), Ok(5));
        assert_eq!(verify_all(&[]), Ok(0));
    }

    #[test]
    fn edits_are_found_at_the_edited_entry() {
        let mut entries = chain(5);
        entries[2].record.outcome = Outcome::Denied;
        assert_eq!(verify_all(&entries), Err(ChainBreak::Content { seq: 3 }));
    }

    #[test]
    fn deletion_and_reordering_are_found() {
        let mut entries = chain(5);
        entries.remove(1);
        assert_eq!(
            verify_all(&entries),
            Err(ChainBreak::Sequence {
                seq: 3,
                expected: 2
            })
        );

        let mut entries = chain(5);
        entries.swap(1, 2);
        assert_eq!(verify_all(&entries).unwrap_err().seq(), 3);

        // Renumbering after a deletion still breaks the link.
        let mut entries = chain(5);
        entries.remove(1);
        for (i, e) in entries.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        assert_eq!(
            verify_all(&entries),
            Err(ChainBreak::PreviousHash { seq: 2 })
        );
    }

    #[test]
    fn truncation_is_found_against_the_head() {
        let entries = chain(5);
        let head = Some((5, entries[4].hash));
        let lookup = |s: u64| entries.get(s as usize - 1).map(|e| e.hash);

        let mut v = Verifier::new();
        entries.iter().for_each(|e| v.push(e).unwrap());
        assert_eq!(v.finish(head, lookup), Ok(5));

        let mut v = Verifier::new();
        entries[..3].iter().for_each(|e| v.push(e).unwrap());
        assert_eq!(
            v.finish(head, lookup),
            Err(ChainBreak::Truncated {
                seq: 3,
                head_seq: 5
            })
        );

        // A head that trails the chain (a crash before the checkpoint) is fine.
        let mut v = Verifier::new();
        entries.iter().for_each(|e| v.push(e).unwrap());
        assert_eq!(v.finish(Some((4, entries[3].hash)), lookup), Ok(5));

        // A rebuilt chain does not match the recorded head.
        let mut v = Verifier::new();
        entries.iter().for_each(|e| v.push(e).unwrap());
        assert_eq!(
            v.finish(Some((4, [7; 32])), lookup),
            Err(ChainBreak::HeadMismatch { head_seq: 4 })
        );
    }

    #[test]
    fn canonical_form_is_injective_across_field_boundaries() {
        let mut a = record(1);
        let mut b = record(1);
        a.actor = "ab".into();
        a.action = "c".into();
        b.actor = "a".into();
        b.action = "bc".into();
        assert_ne!(canonical(1, &a), canonical(1, &b));
    }
}

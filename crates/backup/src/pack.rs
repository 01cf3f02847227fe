//! Assembling packs: sealed blobs appended one after another, then the
//! sealed header and the trailer.

use crate::crypto::{Id, MasterKeys};
use crate::format::{self, BlobKind, IndexedPack, PackHeader, PackedBlob};

/// A pack being filled.
#[derive(Debug, Default)]
pub struct PackWriter {
    body: Vec<u8>,
    blobs: Vec<PackedBlob>,
}

impl PackWriter {
    pub fn new(capacity: usize) -> Self {
        Self {
            body: Vec::with_capacity(capacity),
            blobs: Vec::new(),
        }
    }

    pub fn add(&mut self, kind: BlobKind, id: Id, sealed: &[u8], raw_length: u32) {
        self.blobs.push(PackedBlob {
            id,
            kind,
            offset: self.body.len() as u32,
            length: sealed.len() as u32,
            raw_length,
        });
        self.body.extend_from_slice(sealed);
    }

    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Ends the pack: its bytes and its index entry.
    pub fn finish(self, keys: &MasterKeys) -> (Vec<u8>, IndexedPack) {
        let header = PackHeader {
            blobs: self.blobs.clone(),
        };
        let bytes = format::finish_pack(keys, self.body, &header);
        let id = Id::of_bytes(&bytes);
        let entry = IndexedPack {
            id,
            size: bytes.len() as u64,
            blobs: self.blobs,
        };
        (bytes, entry)
    }
}

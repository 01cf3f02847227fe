//! The in-memory index: which pack holds each blob.

use std::collections::HashMap;

use crate::crypto::Id;
use crate::format::{BlobKind, IndexFile, IndexedPack, PackedBlob};

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: u32,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

/// All blobs of the repository, by id. Memory grows with the number of
/// distinct chunks (about 80 bytes each), not with the data size.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(Id, u64)>,
    blobs: HashMap<Id, Location>,
    /// The index files this was loaded from.
    pub files: Vec<Id>,
}

impl Index {
    pub fn add_pack(&mut self, pack: &IndexedPack) {
        let number = self.packs.len() as u32;
        self.packs.push((pack.id, pack.size));
        for blob in &pack.blobs {
            self.blobs.entry(blob.id).or_insert(Location {
                pack: number,
                kind: blob.kind,
                offset: blob.offset,
                length: blob.length,
                raw_length: blob.raw_length,
            });
        }
    }

    pub fn add_file(&mut self, id: Id, file: &IndexFile) {
        self.files.push(id);
        for pack in &file.packs {
            self.add_pack(pack);
        }
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// The pack id and location of a blob.
    pub fn get(&self, id: &Id) -> Option<(Id, Location)> {
        let loc = *self.blobs.get(id)?;
        Some((self.packs[loc.pack as usize].0, loc))
    }

    /// Every pack with its size.
    pub fn packs(&self) -> &[(Id, u64)] {
        &self.packs
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Every blob with its pack.
    pub fn blobs(&self) -> impl Iterator<Item = (&Id, Id, &Location)> {
        self.blobs
            .iter()
            .map(|(id, loc)| (id, self.packs[loc.pack as usize].0, loc))
    }

    /// The blobs each pack holds, as an index file would list them.
    pub fn to_packs(&self) -> Vec<IndexedPack> {
        let mut packs: Vec<IndexedPack> = self
            .packs
            .iter()
            .map(|(id, size)| IndexedPack {
                id: *id,
                size: *size,
                blobs: Vec::new(),
            })
            .collect();
        for (id, loc) in &self.blobs {
            packs[loc.pack as usize].blobs.push(PackedBlob {
                id: *id,
                kind: loc.kind,
                offset: loc.offset,
                length: loc.length,
                raw_length: loc.raw_length,
            });
        }
        for pack in &mut packs {
            pack.blobs.sort_by_key(|b| b.offset);
        }
        packs
    }
}

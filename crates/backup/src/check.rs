//! `check`: proves the repository is whole.
//!
//! Without reading data, it opens every key slot, index and snapshot, walks
//! every snapshot's trees, and checks that every blob they name is indexed
//! in a pack that exists with the indexed size. With `--read-data` (or a
//! subset), it also reads packs, checks each against its name (the hash of
//! its bytes) and its header against the index, and opens every blob, which
//! verifies its content against its id.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rayon::prelude::*;

use crate::backend::Kind;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::format::{self, NodeKind, SealedKind, Snapshot};
use crate::repo::{Repository, parse_slot};

/// How much data to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// A percentage of the packs, chosen at random.
    Subset(f64),
}

/// What `check` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub blobs: usize,
    /// Damage: each names the object and what is wrong.
    pub errors: Vec<String>,
    /// Harmless leftovers, such as packs of an interrupted backup.
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Checks the repository.
pub fn check(repo: &Repository, read: ReadData) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let backend = repo.backend();

    for (name, _) in backend.list(Kind::Key)? {
        let result = backend.read(Kind::Key, &name).and_then(|bytes| {
            let slot = parse_slot(&name, &bytes)?;
            let mac = hex::decode(&slot.mac).unwrap_or_default();
            if mac != repo.keys().mac(&slot.mac_input()) || B64.decode(&slot.wrapped).is_err() {
                return Err(Error::damaged(
                    Kind::Key.path(&name),
                    "its MAC does not match",
                ));
            }
            Ok(())
        });
        if let Err(e) = result {
            report.errors.push(e.to_string());
        }
    }

    // Indexes: read each one on its own so one damaged file is named and
    // the rest still count.
    let index_names = backend.list(Kind::Index)?;
    let mut indexed: HashMap<Id, u64> = HashMap::new();
    let mut index_files = Vec::new();
    for (name, _) in &index_names {
        match repo.read_sealed::<format::IndexFile>(Kind::Index, SealedKind::Index, name) {
            Ok(file) => index_files.push((name.clone(), file)),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    let superseded: HashSet<Id> = index_files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let mut index = crate::index::Index::default();
    for (name, file) in &index_files {
        let Some(id) = Id::parse(name) else { continue };
        if superseded.contains(&id) {
            continue;
        }
        for pack in &file.packs {
            indexed.insert(pack.id, pack.size);
        }
        index.add_file(id, file);
    }
    report.blobs = index.blob_count();

    let stored: HashMap<String, u64> = backend.list(Kind::Pack)?.into_iter().collect();
    for (id, size) in &indexed {
        match stored.get(&id.hex()) {
            None => report.errors.push(format!(
                "pack {} is indexed but missing",
                Kind::Pack.path(&id.hex())
            )),
            Some(actual) if actual != size => report.errors.push(format!(
                "object {} is damaged: it is {actual} bytes, the index says {size}",
                Kind::Pack.path(&id.hex())
            )),
            Some(_) => {}
        }
    }
    for name in stored.keys() {
        if Id::parse(name).is_none_or(|id| !indexed.contains_key(&id)) {
            report.warnings.push(format!(
                "pack {} is in no index (left by an interrupted backup; prune removes it)",
                Kind::Pack.path(name)
            ));
        }
    }
    report.packs = stored.len();

    // Snapshots and their trees.
    let mut seen_trees: HashSet<Id> = HashSet::new();
    for (name, _) in backend.list(Kind::Snapshot)? {
        let snap: Snapshot = match repo.read_sealed(Kind::Snapshot, SealedKind::Snapshot, &name) {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(e.to_string());
                continue;
            }
        };
        report.snapshots += 1;
        let mut stack = vec![snap.tree];
        while let Some(tree_id) = stack.pop() {
            if !seen_trees.insert(tree_id) {
                continue;
            }
            let tree = match repo.read_tree(&index, &tree_id) {
                Ok(t) => t,
                Err(e) => {
                    report.errors.push(format!(
                        "snapshot {}: tree {}: {e}",
                        &name[..8.min(name.len())],
                        tree_id.short()
                    ));
                    continue;
                }
            };
            for node in &tree.nodes {
                if let Some(sub) = node.subtree {
                    stack.push(sub);
                }
                if node.kind == NodeKind::File {
                    for blob in &node.content {
                        if !index.contains(blob) {
                            report.errors.push(format!(
                                "snapshot {}: file {:?} needs blob {} which no index holds",
                                &name[..8.min(name.len())],
                                node.name,
                                blob.short()
                            ));
                        }
                    }
                }
            }
        }
    }

    // Data.
    let mut to_read: Vec<(Id, u64)> = indexed.iter().map(|(id, size)| (*id, *size)).collect();
    to_read.sort();
    match read {
        ReadData::None => to_read.clear(),
        ReadData::All => {}
        ReadData::Subset(percent) => {
            use rand::seq::SliceRandom;
            to_read.shuffle(&mut rand::rng());
            let n = ((to_read.len() as f64) * percent / 100.0).ceil() as usize;
            to_read.truncate(n.min(to_read.len()));
        }
    }
    let by_pack: HashMap<Id, Vec<(Id, crate::index::Location)>> = {
        let mut map: HashMap<Id, Vec<_>> = HashMap::new();
        for (blob, pack, loc) in index.blobs() {
            map.entry(pack).or_default().push((*blob, *loc));
        }
        map
    };
    let problems: Vec<String> = to_read
        .par_iter()
        .filter(|(id, _)| stored.contains_key(&id.hex()))
        .flat_map_iter(|(id, _)| {
            let name = id.hex();
            let object = Kind::Pack.path(&name);
            let mut problems = Vec::new();
            let bytes = match backend.read(Kind::Pack, &name) {
                Ok(b) => b,
                Err(e) => return vec![e.to_string()],
            };
            if Id::of_bytes(&bytes) != *id {
                problems.push(format!(
                    "object {object} is damaged: its content does not match its name"
                ));
            }
            match format::read_pack_header(repo.keys(), &object, &bytes) {
                Err(e) => problems.push(e.to_string()),
                Ok(header) => {
                    let listed: HashSet<(Id, u32)> =
                        header.blobs.iter().map(|b| (b.id, b.offset)).collect();
                    for (blob, loc) in by_pack.get(id).map(Vec::as_slice).unwrap_or_default() {
                        if !listed.contains(&(*blob, loc.offset)) {
                            problems.push(format!(
                                "object {object} is damaged: its header does not list blob {}",
                                blob.short()
                            ));
                        }
                    }
                }
            }
            for (blob, loc) in by_pack.get(id).map(Vec::as_slice).unwrap_or_default() {
                let start = loc.offset as usize;
                let end = start + loc.length as usize;
                let Some(sealed) = bytes.get(start..end) else {
                    problems.push(format!(
                        "object {object} is damaged: blob {} lies past its end",
                        blob.short()
                    ));
                    continue;
                };
                if let Err(e) =
                    format::open_blob(repo.keys(), loc.kind, blob, sealed, loc.raw_length)
                {
                    problems.push(format!(
                        "object {object} is damaged: blob {} at offset {}: {e}",
                        blob.short(),
                        loc.offset
                    ));
                }
            }
            problems
        })
        .collect();
    report.packs_read = to_read.len();
    report.errors.extend(problems);
    report.errors.sort();
    report.errors.dedup();
    report.warnings.sort();
    Ok(report)
}

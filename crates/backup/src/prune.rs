//! `prune`: removes data no snapshot needs.
//!
//! Under an exclusive lock it marks every blob reachable from a snapshot,
//! deletes packs holding nothing marked, rewrites packs holding some unmarked
//! blobs (copying the sealed bytes of the marked ones, unopened), and writes
//! one new index that supersedes all old ones. Order: new packs → new index
//! → delete old indexes → delete old packs. A crash at any point leaves a
//! repository whose snapshots are all whole; leftovers go on the next run.

use std::collections::HashSet;

use bytes::Bytes;

use crate::backend::Kind;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::format::{IndexFile, IndexedPack, SealedKind};
use crate::pack::PackWriter;
use crate::repo::Repository;

/// What prune did.
#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub packs_deleted: usize,
    pub packs_rewritten: usize,
    pub packs_written: usize,
    pub blobs_removed: usize,
    pub bytes_freed: u64,
}

/// Every blob reachable from a snapshot: trees and file contents.
pub fn used_blobs(repo: &Repository, index: &crate::index::Index) -> Result<HashSet<Id>> {
    let mut used = HashSet::new();
    for (_, snap) in repo.snapshots()? {
        let mut stack = vec![snap.tree];
        while let Some(tree_id) = stack.pop() {
            if !used.insert(tree_id) {
                continue;
            }
            // Any tree that cannot be read stops prune: deleting on partial
            // knowledge could delete data a snapshot needs.
            let tree = repo.read_tree(index, &tree_id)?;
            for node in tree.nodes {
                used.extend(node.content);
                if let Some(sub) = node.subtree {
                    stack.push(sub);
                }
            }
        }
    }
    Ok(used)
}

pub fn prune(repo: &Repository) -> Result<PruneReport> {
    let _lock = repo.lock(true)?;
    let index = repo.load_index()?;
    let used = used_blobs(repo, &index)?;
    let mut report = PruneReport::default();

    let pack_size = repo.config().pack_size as usize;
    let mut kept: Vec<IndexedPack> = Vec::new();
    let mut doomed: Vec<(Id, u64)> = Vec::new();
    let mut writer = PackWriter::new(pack_size);
    let mut written: Vec<IndexedPack> = Vec::new();
    let flush = |writer: PackWriter, written: &mut Vec<IndexedPack>| -> Result<()> {
        if writer.is_empty() {
            return Ok(());
        }
        let (bytes, entry) = writer.finish(repo.keys());
        match repo
            .backend()
            .create(Kind::Pack, &entry.id.hex(), Bytes::from(bytes))
        {
            Ok(()) | Err(Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        written.push(entry);
        Ok(())
    };
    for pack in index.to_packs() {
        let live: Vec<_> = pack
            .blobs
            .iter()
            .filter(|b| used.contains(&b.id))
            .copied()
            .collect();
        report.blobs_removed += pack.blobs.len() - live.len();
        if live.len() == pack.blobs.len() && !live.is_empty() {
            kept.push(pack);
            continue;
        }
        doomed.push((pack.id, pack.size));
        if live.is_empty() {
            report.packs_deleted += 1;
            continue;
        }
        report.packs_rewritten += 1;
        let bytes = repo.backend().read(Kind::Pack, &pack.id.hex())?;
        if Id::of_bytes(&bytes) != pack.id {
            return Err(Error::damaged(
                Kind::Pack.path(&pack.id.hex()),
                "its content does not match its name; run check --read-data",
            ));
        }
        for blob in live {
            let range = blob.offset as usize..blob.offset as usize + blob.length as usize;
            let sealed = bytes.get(range).ok_or_else(|| {
                Error::damaged(Kind::Pack.path(&pack.id.hex()), "a blob lies past its end")
            })?;
            writer.add(blob.kind, blob.id, sealed, blob.raw_length);
            if writer.len() >= pack_size {
                flush(
                    std::mem::replace(&mut writer, PackWriter::new(pack_size)),
                    &mut written,
                )?;
            }
        }
    }
    flush(writer, &mut written)?;
    report.packs_written = written.len();

    let all_indexes: Vec<Id> = repo
        .backend()
        .list(Kind::Index)?
        .into_iter()
        .filter_map(|(name, _)| Id::parse(&name))
        .collect();
    // Packs no index knows are leftovers of interrupted backups; the packs
    // just written hold the rewritten live blobs and are not among them.
    let indexed: HashSet<Id> = index
        .packs()
        .iter()
        .map(|(id, _)| *id)
        .chain(written.iter().map(|p| p.id))
        .collect();
    let orphans: Vec<(Id, u64)> = repo
        .backend()
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|(name, size)| Id::parse(&name).map(|id| (id, size)))
        .filter(|(id, _)| !indexed.contains(id))
        .collect();
    if doomed.is_empty() && written.is_empty() && orphans.is_empty() && all_indexes.len() <= 1 {
        return Ok(report);
    }

    let mut packs = kept;
    packs.extend(written);
    let new_index = repo.write_sealed(
        Kind::Index,
        SealedKind::Index,
        &IndexFile {
            packs,
            supersedes: all_indexes.clone(),
        },
    )?;
    for old in all_indexes {
        if old != new_index {
            repo.backend().delete(Kind::Index, &old.hex())?;
        }
    }
    for (id, size) in doomed.into_iter().chain(orphans) {
        match repo.backend().delete(Kind::Pack, &id.hex()) {
            Ok(()) | Err(Error::Missing(_)) => report.bytes_freed += size,
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

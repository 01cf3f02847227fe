//! Backing up: walk the sources, chunk files, store new chunks, record the
//! tree, then the index, then the snapshot.
//!
//! Work is spread over threads in a pipeline with bounded queues, so memory
//! stays bounded whatever the data size:
//!
//! ```text
//! walker (read, chunk, hash, dedup) ─▶ sealers × cores (zstd, XChaCha20-Poly1305)
//!     ─▶ packer (fills 16 MiB packs) ─▶ uploader (create-only writes)
//! ```
//!
//! Write order is packs → index → snapshot: a crash at any point leaves at
//! worst packs that no index names, never a snapshot pointing at missing
//! data.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, bounded};
use rustix::fs::{Mode, OFlags};

use crate::backend::Kind;
use crate::chunker::Chunker;
use crate::crypto::{Id, MasterKeys};
use crate::error::{Error, Result};
use crate::format::{
    self, BlobKind, IndexFile, IndexedPack, Node, NodeKind, SealedKind, Snapshot, Summary, Tree,
};
use crate::index::Index;
use crate::pack::PackWriter;
use crate::repo::{Repository, hostname, now_rfc3339};

/// Receives progress as a backup or restore runs.
pub trait Progress: Sync {
    /// `n` more bytes were processed.
    fn bytes(&self, _n: u64) {}
    /// One more file was finished.
    fn file(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}

/// What to back up.
pub enum Source {
    /// Files and directories, each stored under its own name.
    Paths(Vec<PathBuf>),
    /// A stream (such as `pg_dump`) stored as one file named `name`.
    Stdin {
        name: String,
        reader: Box<dyn Read + Send>,
    },
    /// Streams and folders in one snapshot, each stored under the name
    /// given (an app's database dump beside its media, say).
    Parts {
        streams: Vec<(String, Box<dyn Read + Send>)>,
        folders: Vec<(String, PathBuf)>,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Paths(p) => f.debug_tuple("Paths").field(p).finish(),
            Source::Stdin { name, .. } => f.debug_struct("Stdin").field("name", name).finish(),
            Source::Parts { streams, folders } => f
                .debug_struct("Parts")
                .field(
                    "streams",
                    &streams.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                )
                .field("folders", folders)
                .finish(),
        }
    }
}

/// A backup request.
#[derive(Debug)]
pub struct BackupRequest {
    pub source: Source,
    pub tags: Vec<String>,
}

/// The result of a backup.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub id: Id,
    pub snapshot: Snapshot,
    /// Files that could not be read and were left out.
    pub warnings: Vec<String>,
}

struct SealJob {
    kind: BlobKind,
    id: Id,
    data: Vec<u8>,
}

struct Sealed {
    kind: BlobKind,
    id: Id,
    sealed: Vec<u8>,
    raw_length: u32,
}

/// The threads behind the walker.
struct Pipeline {
    to_sealers: Option<Sender<SealJob>>,
    sealers: Vec<JoinHandle<()>>,
    packer: Option<JoinHandle<Result<Vec<IndexedPack>>>>,
}

impl Pipeline {
    fn start(repo: &Repository) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (to_sealers, jobs) = bounded::<SealJob>(threads * 2);
        let (to_packer, sealed) = bounded::<Sealed>(threads * 2);
        let level = repo.config().compression;
        let sealers = (0..threads)
            .map(|_| {
                let jobs = jobs.clone();
                let to_packer = to_packer.clone();
                let keys = repo.keys().clone();
                std::thread::spawn(move || seal_loop(&keys, level, jobs, to_packer))
            })
            .collect();
        drop(to_packer);
        let packer = {
            let repo = repo.clone();
            std::thread::spawn(move || pack_loop(&repo, sealed))
        };
        Self {
            to_sealers: Some(to_sealers),
            sealers,
            packer: Some(packer),
        }
    }

    fn send(&self, job: SealJob) -> Result<()> {
        let sender = self
            .to_sealers
            .as_ref()
            .ok_or_else(|| Error::Invalid("pipeline closed".into()))?;
        sender.send(job).map_err(|_| Error::Storage {
            object: "pack".into(),
            reason: "the pack writer stopped early".into(),
        })
    }

    /// Waits for every queued blob to be stored; returns the packs written.
    fn finish(mut self) -> Result<Vec<IndexedPack>> {
        drop(self.to_sealers.take());
        for sealer in self.sealers.drain(..) {
            let _ = sealer.join();
        }
        match self.packer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(Error::Invalid("the pack writer panicked".into())),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        drop(self.to_sealers.take());
        for sealer in self.sealers.drain(..) {
            let _ = sealer.join();
        }
        if let Some(packer) = self.packer.take() {
            let _ = packer.join();
        }
    }
}

fn seal_loop(keys: &MasterKeys, level: i32, jobs: Receiver<SealJob>, out: Sender<Sealed>) {
    for job in jobs {
        let sealed = format::seal_blob(keys, job.kind, &job.id, &job.data, level);
        let done = Sealed {
            kind: job.kind,
            id: job.id,
            sealed,
            raw_length: job.data.len() as u32,
        };
        if out.send(done).is_err() {
            return;
        }
    }
}

fn pack_loop(repo: &Repository, sealed: Receiver<Sealed>) -> Result<Vec<IndexedPack>> {
    let pack_size = repo.config().pack_size as usize;
    let (to_uploader, uploads) = bounded::<(Vec<u8>, IndexedPack)>(2);
    let uploader = {
        let repo = repo.clone();
        std::thread::spawn(move || -> Result<Vec<IndexedPack>> {
            let mut done = Vec::new();
            let mut failure = None;
            for (bytes, entry) in uploads {
                // Keep draining after a failure so the packer never blocks.
                if failure.is_some() {
                    continue;
                }
                match repo
                    .backend()
                    .create(Kind::Pack, &entry.id.hex(), Bytes::from(bytes))
                {
                    Ok(()) | Err(Error::AlreadyExists(_)) => done.push(entry),
                    Err(e) => failure = Some(e),
                }
            }
            failure.map_or(Ok(done), Err)
        })
    };
    let mut data = PackWriter::new(pack_size + pack_size / 8);
    let mut trees = PackWriter::new(1024 * 1024);
    let mut upload_failed = false;
    for blob in sealed {
        let writer = match blob.kind {
            BlobKind::Data => &mut data,
            BlobKind::Tree => &mut trees,
        };
        writer.add(blob.kind, blob.id, &blob.sealed, blob.raw_length);
        if writer.len() >= pack_size && !upload_failed {
            let full = std::mem::replace(writer, PackWriter::new(pack_size + pack_size / 8));
            upload_failed = to_uploader.send(full.finish(repo.keys())).is_err();
        }
    }
    for writer in [data, trees] {
        if !writer.is_empty() && !upload_failed {
            upload_failed = to_uploader.send(writer.finish(repo.keys())).is_err();
        }
    }
    drop(to_uploader);
    match uploader.join() {
        Ok(result) => result,
        Err(_) => Err(Error::Invalid("the uploader panicked".into())),
    }
}

fn name_of(name: &OsStr) -> (String, Option<String>) {
    match name.to_str() {
        Some(s) => (s.to_owned(), None),
        None => (
            name.to_string_lossy().into_owned(),
            Some(B64.encode(name.as_bytes())),
        ),
    }
}

fn node_from_meta(name: &OsStr, meta: &std::fs::Metadata, kind: NodeKind) -> Node {
    let (name, name_raw) = name_of(name);
    Node {
        name,
        name_raw,
        kind,
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime(),
        mtime_ns: meta.mtime_nsec() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        size: if kind == NodeKind::File {
            meta.size()
        } else {
            0
        },
        content: Vec::new(),
        subtree: None,
        target: None,
        target_raw: None,
        inode: meta.ino(),
        ctime: meta.ctime(),
    }
}

struct Walker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    pipeline: Pipeline,
    queued: HashSet<Id>,
    summary: Summary,
    warnings: Vec<String>,
    progress: &'a dyn Progress,
}

impl Walker<'_> {
    /// Stores a blob unless the repository or this run already has it.
    fn store(&mut self, kind: BlobKind, data: Vec<u8>) -> Result<Id> {
        let id = self.repo.keys().blob_id(&data);
        if self.index.contains(&id) || !self.queued.insert(id) {
            return Ok(id);
        }
        self.summary.blobs_added += 1;
        self.summary.bytes_added += data.len() as u64;
        self.pipeline.send(SealJob { kind, id, data })?;
        Ok(id)
    }

    fn store_tree(&mut self, mut tree: Tree) -> Result<Id> {
        tree.nodes
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.name_raw.cmp(&b.name_raw)));
        let json = serde_json::to_vec(&tree).unwrap_or_default();
        self.store(BlobKind::Tree, json)
    }

    /// Stores a stream as a file node named `name`.
    fn stream_node(&mut self, name: String, reader: impl Read) -> Result<Node> {
        let now = time::OffsetDateTime::now_utc();
        let (content, size) = self.store_stream(reader)?;
        self.summary.files += 1;
        self.summary.bytes += size;
        Ok(Node {
            name,
            name_raw: None,
            kind: NodeKind::File,
            mode: 0o600,
            mtime: now.unix_timestamp(),
            mtime_ns: now.nanosecond(),
            uid: 0,
            gid: 0,
            size,
            content,
            subtree: None,
            target: None,
            target_raw: None,
            inode: 0,
            ctime: 0,
        })
    }

    fn store_stream(&mut self, reader: impl Read) -> Result<(Vec<Id>, u64)> {
        let mut chunker = Chunker::new(reader, &self.repo.config().chunker);
        let mut content = Vec::new();
        let mut size = 0u64;
        while let Some(chunk) = chunker
            .next_chunk()
            .map_err(|e| Error::io("read", "the input", e))?
        {
            size += chunk.len() as u64;
            self.progress.bytes(chunk.len() as u64);
            content.push(self.store(BlobKind::Data, chunk)?);
        }
        Ok((content, size))
    }

    fn save_file(
        &mut self,
        file: std::fs::File,
        path: &Path,
        mut node: Node,
        previous: Option<&Node>,
    ) -> Result<Node> {
        self.summary.files += 1;
        self.summary.bytes += node.size;
        if let Some(prev) = previous {
            let unchanged = prev.kind == NodeKind::File
                && prev.size == node.size
                && prev.mtime == node.mtime
                && prev.mtime_ns == node.mtime_ns
                && prev.inode == node.inode
                && prev.ctime == node.ctime
                && prev.content.iter().all(|id| self.index.contains(id));
            if unchanged {
                node.content = prev.content.clone();
                self.summary.files_unchanged += 1;
                self.progress.bytes(node.size);
                self.progress.file();
                return Ok(node);
            }
        }
        let (content, size) = self.store_stream(file).map_err(|e| match e {
            Error::Io { action, source, .. } => Error::io(action, path, source),
            other => other,
        })?;
        node.content = content;
        // The file may have changed while it was read; record what was stored.
        self.summary.bytes = self.summary.bytes - node.size + size;
        node.size = size;
        self.progress.file();
        Ok(node)
    }

    fn save_dir(&mut self, dir: &OwnedFd, path: &Path, previous: Option<&Tree>) -> Result<Id> {
        self.summary.dirs += 1;
        let list = |e: rustix::io::Errno| Error::io("list", path, e.into());
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(dir).map_err(list)? {
            let name = entry.map_err(list)?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsString::from_vec(name));
            }
        }
        names.sort();
        let mut tree = Tree::default();
        for name in names {
            let child = path.join(&name);
            let prev = previous.and_then(|t| {
                let (n, raw) = name_of(&name);
                t.nodes.iter().find(|x| x.name == n && x.name_raw == raw)
            });
            match self.save_path(Some(dir), &child, &name, prev) {
                Ok(Some(node)) => tree.nodes.push(node),
                Ok(None) => {}
                Err(e @ Error::Io { .. }) => {
                    self.warnings.push(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        self.store_tree(tree)
    }

    /// Saves `name` in `dir` (a source path itself when `dir` is `None`).
    ///
    /// Everything is opened relative to its directory's handle, never by
    /// path, and a link is never followed: a file swapped for a link to a
    /// host file between listing and reading is refused by the kernel, and
    /// what is read is what `fstat` says was opened. FIFOs are opened
    /// without blocking and, like devices, left out.
    fn save_path(
        &mut self,
        dir: Option<&OwnedFd>,
        path: &Path,
        name: &OsStr,
        previous: Option<&Node>,
    ) -> Result<Option<Node>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        let opened = match dir {
            Some(dir) => rustix::fs::openat(dir, name, flags | OFlags::CLOEXEC, Mode::empty()),
            None => rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()),
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) => return self.save_symlink(dir, path, name).map(Some),
            Err(e) => return Err(Error::io("open", path, e.into())),
        };
        let file = std::fs::File::from(fd);
        let meta = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
        let ft = meta.file_type();
        if ft.is_file() {
            let node = node_from_meta(name, &meta, NodeKind::File);
            return self.save_file(file, path, node, previous).map(Some);
        }
        if ft.is_dir() {
            let mut node = node_from_meta(name, &meta, NodeKind::Dir);
            let prev_tree = previous
                .filter(|p| p.kind == NodeKind::Dir)
                .and_then(|p| p.subtree)
                .and_then(|id| self.repo.read_tree(self.index, &id).ok());
            node.subtree = Some(self.save_dir(&OwnedFd::from(file), path, prev_tree.as_ref())?);
            return Ok(Some(node));
        }
        self.warnings.push(format!(
            "{} is not a file, directory or symlink; left out",
            path.display()
        ));
        Ok(None)
    }
}

impl Walker<'_> {
    /// A link, recorded as a link: its own metadata and target, read
    /// relative to its directory.
    fn save_symlink(&mut self, dir: Option<&OwnedFd>, path: &Path, name: &OsStr) -> Result<Node> {
        let inspect = |e: rustix::io::Errno| Error::io("inspect", path, e.into());
        let (stat, target) = match dir {
            Some(dir) => (
                rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(inspect)?,
                rustix::fs::readlinkat(dir, name, Vec::new()).map_err(inspect)?,
            ),
            None => (
                rustix::fs::lstat(path).map_err(inspect)?,
                rustix::fs::readlink(path, Vec::new()).map_err(inspect)?,
            ),
        };
        let (name, name_raw) = name_of(name);
        let target = std::ffi::OsString::from_vec(target.into_bytes());
        let (text, raw) = name_of(&target);
        Ok(Node {
            name,
            name_raw,
            kind: NodeKind::Symlink,
            mode: stat.st_mode & 0o7777,
            mtime: stat.st_mtime,
            mtime_ns: stat.st_mtime_nsec as u32,
            uid: stat.st_uid,
            gid: stat.st_gid,
            size: 0,
            content: Vec::new(),
            subtree: None,
            target: Some(text),
            target_raw: raw,
            inode: stat.st_ino,
            ctime: stat.st_ctime,
        })
    }
}

fn check_part_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Invalid(format!(
            "{name:?} is not a usable file name in a snapshot"
        )));
    }
    Ok(())
}

/// Runs a backup and writes its snapshot.
pub fn backup(
    repo: &Repository,
    request: BackupRequest,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    let _lock = repo.lock(false)?;
    let index = repo.load_index()?;
    let host = hostname();

    let (paths, label): (Vec<PathBuf>, Vec<String>) = match &request.source {
        Source::Paths(paths) => {
            if paths.is_empty() {
                return Err(Error::Invalid(
                    "nothing to back up: give at least one path".into(),
                ));
            }
            let mut abs = Vec::new();
            for p in paths {
                let a = std::fs::canonicalize(p).map_err(|e| Error::io("find", p, e))?;
                abs.push(a);
            }
            let labels = abs.iter().map(|p| p.display().to_string()).collect();
            (abs, labels)
        }
        Source::Stdin { name, .. } => {
            check_part_name(name)?;
            (Vec::new(), vec![format!("-/{name}")])
        }
        Source::Parts { streams, folders } => {
            let mut names = HashSet::new();
            let mut labels = Vec::new();
            let mut abs = Vec::new();
            for (name, _) in streams {
                check_part_name(name)?;
                if !names.insert(name.clone()) {
                    return Err(Error::Invalid(format!("two parts are named {name:?}")));
                }
                labels.push(format!("-/{name}"));
            }
            for (name, path) in folders {
                check_part_name(name)?;
                if !names.insert(name.clone()) {
                    return Err(Error::Invalid(format!("two parts are named {name:?}")));
                }
                let a = std::fs::canonicalize(path).map_err(|e| Error::io("find", path, e))?;
                labels.push(format!("{name}={}", a.display()));
                abs.push(a);
            }
            (abs, labels)
        }
    };

    // The newest snapshot of the same sources on this host lets unchanged
    // files be recognised without reading them.
    let parent = repo
        .snapshots()?
        .into_iter()
        .rev()
        .find(|(_, s)| s.hostname == host && s.paths == label);
    let parent_tree = match &parent {
        Some((_, snap)) => repo.read_tree(&index, &snap.tree).ok(),
        None => None,
    };

    let mut walker = Walker {
        repo,
        index: &index,
        pipeline: Pipeline::start(repo),
        queued: HashSet::new(),
        summary: Summary::default(),
        warnings: Vec::new(),
        progress,
    };
    let mut root = Tree::default();
    match request.source {
        Source::Paths(_) => {
            let mut names = HashSet::new();
            for path in &paths {
                let name = path.file_name().unwrap_or(OsStr::new("root")).to_owned();
                if !names.insert(name.clone()) {
                    return Err(Error::Invalid(format!(
                        "two sources are named {:?}; back them up separately",
                        name
                    )));
                }
                let prev = parent_tree.as_ref().and_then(|t| {
                    let (n, raw) = name_of(&name);
                    t.nodes.iter().find(|x| x.name == n && x.name_raw == raw)
                });
                if let Some(node) = walker.save_path(None, path, &name, prev)? {
                    root.nodes.push(node);
                }
            }
        }
        Source::Stdin { name, reader } => {
            let node = walker.stream_node(name, reader)?;
            root.nodes.push(node);
        }
        Source::Parts { streams, folders } => {
            for (name, reader) in streams {
                let node = walker.stream_node(name, reader)?;
                root.nodes.push(node);
            }
            for ((name, _), path) in folders.iter().zip(&paths) {
                let os_name = std::ffi::OsString::from(name);
                let prev = parent_tree.as_ref().and_then(|t| {
                    t.nodes
                        .iter()
                        .find(|x| x.name == *name && x.name_raw.is_none())
                });
                if let Some(node) = walker.save_path(None, path, &os_name, prev)? {
                    root.nodes.push(node);
                }
            }
        }
    }
    let tree = walker.store_tree(root)?;
    let Walker {
        pipeline,
        mut summary,
        warnings,
        ..
    } = walker;
    let packs = pipeline.finish()?;
    summary.bytes_stored = packs.iter().map(|p| p.size).sum();
    if !packs.is_empty() {
        repo.write_sealed(
            Kind::Index,
            SealedKind::Index,
            &IndexFile {
                packs,
                supersedes: Vec::new(),
            },
        )?;
    }
    let snapshot = Snapshot {
        time: now_rfc3339(),
        hostname: host,
        paths: label,
        tags: request.tags,
        tree,
        parent: parent.map(|(id, _)| id),
        summary,
        program_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let id = repo.write_sealed(Kind::Snapshot, SealedKind::Snapshot, &snapshot)?;
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings,
    })
}

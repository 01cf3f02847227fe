//! Reading snapshots back: `ls`, `dump` and `restore`.
//!
//! Restore creates the tree first, then fills file contents in parallel:
//! every data blob is read from its pack, opened (which checks its id), and
//! written at its offset. Blobs of zeros are not written, which keeps
//! sparse files sparse. Metadata (modes, owners when running as root,
//! modification times) is applied last, deepest first. A file whose data
//! cannot be read is reported by name; the others are still restored.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, FileTimes};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use rustix::fs::{Mode, OFlags};

use crate::archive::Progress;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::format::{Node, NodeKind};
use crate::index::Index;
use crate::repo::Repository;

/// A node with its path inside the snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// For display and matching; lossy for names that are not UTF-8.
    pub path: String,
    /// The exact relative path, for writing files.
    #[serde(skip)]
    pub rel: PathBuf,
    #[serde(flatten)]
    pub node: Node,
}

fn os_name(node: &Node) -> std::ffi::OsString {
    match node
        .name_raw
        .as_deref()
        .and_then(|raw| B64.decode(raw).ok())
    {
        Some(bytes) => std::ffi::OsString::from_vec(bytes),
        None => std::ffi::OsString::from(&node.name),
    }
}

/// A node's name is one path component; anything else in a tree (from a
/// damaged or hostile repository) must never reach outside the target.
fn safe_name(node: &Node) -> Result<std::ffi::OsString> {
    let name = os_name(node);
    let bytes = name.as_encoded_bytes();
    if bytes.is_empty()
        || bytes == b"."
        || bytes == b".."
        || bytes.contains(&b'/')
        || bytes.contains(&0)
    {
        return Err(Error::damaged(
            format!("tree entry {:?}", node.name),
            "its name is not a single path component",
        ));
    }
    Ok(name)
}

impl Repository {
    /// Every entry of a snapshot, depth first, with `/`-separated paths.
    pub fn walk(&self, index: &Index, tree: &Id) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.walk_into(index, tree, "", Path::new(""), &mut out)?;
        Ok(out)
    }

    fn walk_into(
        &self,
        index: &Index,
        tree: &Id,
        prefix: &str,
        rel_prefix: &Path,
        out: &mut Vec<Entry>,
    ) -> Result<()> {
        let tree = self.read_tree(index, tree)?;
        for node in tree.nodes {
            let name = safe_name(&node)?;
            let path = format!("{prefix}/{}", name.to_string_lossy());
            let rel = rel_prefix.join(&name);
            let subtree = node.subtree;
            out.push(Entry {
                path: path.clone(),
                rel: rel.clone(),
                node,
            });
            if let Some(sub) = subtree {
                self.walk_into(index, &sub, &path, &rel, out)?;
            }
        }
        Ok(())
    }

    /// Writes one file of a snapshot to `out`.
    pub fn dump(&self, snapshot: &str, file: &str, out: &mut dyn Write) -> Result<()> {
        let (_, snap) = self.find_snapshot(snapshot)?;
        let index = self.load_index()?;
        let wanted = format!("/{}", file.trim_start_matches('/'));
        let entry = self
            .walk(&index, &snap.tree)?
            .into_iter()
            .find(|e| e.path == wanted && e.node.kind == NodeKind::File)
            .ok_or_else(|| Error::NoSuchPath {
                snapshot: snapshot.to_owned(),
                path: file.to_owned(),
            })?;
        for id in &entry.node.content {
            let data = self.read_blob(&index, id)?;
            out.write_all(&data)
                .map_err(|e| Error::io("write", "standard output", e))?;
        }
        out.flush()
            .map_err(|e| Error::io("write", "standard output", e))
    }
}

/// What a restore did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Files that could not be restored, with the reason.
    pub failed: Vec<(String, String)>,
}

fn matcher(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let anchored = format!("/{}", p.trim_start_matches('/'));
        builder
            .add(Glob::new(&anchored).map_err(|e| Error::Invalid(format!("pattern {p:?}: {e}")))?);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| Error::Invalid(format!("patterns: {e}")))
}

/// Whether `path` is selected: it, or one of its parent directories,
/// matches a pattern.
fn selected(set: &Option<GlobSet>, path: &str) -> bool {
    let Some(set) = set else { return true };
    let mut current = path;
    loop {
        if set.is_match(current) {
            return true;
        }
        match current.rfind('/') {
            Some(0) | None => return false,
            Some(i) => current = &current[..i],
        }
    }
}

struct FileJob {
    file: usize,
    offset: u64,
    id: Id,
}

/// Applies a node's mode, owner (when running as root) and times to what
/// `file` has open: never through a path.
fn set_metadata(file: &File, node: &Node, is_root: bool) {
    let _ = file.set_permissions(std::fs::Permissions::from_mode(node.mode));
    if is_root {
        let _ = rustix::fs::fchown(
            file,
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
        );
    }
    let mtime = if node.mtime >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(node.mtime as u64, node.mtime_ns)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(node.mtime.unsigned_abs())
    };
    let _ = file.set_times(FileTimes::new().set_modified(mtime).set_accessed(mtime));
}

/// The directory that holds `rel` under `root`, opened one component at a
/// time without following a link, and the last component's name. Whatever
/// the target already holds, or the snapshot made earlier, a link on the
/// way is refused rather than followed out of the target.
fn parent_of<'a>(root: &OwnedFd, rel: &'a Path) -> std::io::Result<(OwnedFd, &'a OsStr)> {
    let mut components: Vec<&OsStr> = rel.iter().collect();
    let name = components
        .pop()
        .ok_or_else(|| std::io::Error::other("an empty path"))?;
    let mut dir = rustix::fs::openat(root, ".", DIR_FLAGS, Mode::empty())?;
    for component in components {
        dir = rustix::fs::openat(&dir, component, DIR_FLAGS, Mode::empty())?;
    }
    Ok((dir, name))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the directory at `rel` under `root` without following links.
fn open_dir(root: &OwnedFd, rel: &Path) -> std::io::Result<File> {
    let (parent, name) = parent_of(root, rel)?;
    Ok(File::from(rustix::fs::openat(
        &parent,
        name,
        DIR_FLAGS,
        Mode::empty(),
    )?))
}

/// Creates one entry of the tree under `root`. A directory the target
/// already has is reused only if it is a real directory.
fn create_entry(root: &OwnedFd, entry: &Entry) -> std::io::Result<Option<File>> {
    let (parent, name) = parent_of(root, &entry.rel)?;
    match entry.node.kind {
        NodeKind::Dir => {
            match rustix::fs::mkdirat(&parent, name, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            // Refuses a link or a file standing where the directory goes.
            rustix::fs::openat(&parent, name, DIR_FLAGS, Mode::empty())?;
            Ok(None)
        }
        NodeKind::Symlink => {
            let target = entry
                .node
                .target_raw
                .as_deref()
                .and_then(|r| B64.decode(r).ok())
                .unwrap_or_else(|| entry.node.target.clone().unwrap_or_default().into_bytes());
            match rustix::fs::unlinkat(&parent, name, rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
            rustix::fs::symlinkat(std::ffi::OsString::from_vec(target), &parent, name)?;
            Ok(None)
        }
        NodeKind::File => {
            let fd = rustix::fs::openat(
                &parent,
                name,
                OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::TRUNC
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?;
            let file = File::from(fd);
            if !file.metadata()?.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            file.set_len(entry.node.size)?;
            Ok(Some(file))
        }
    }
}

/// Restores a snapshot (or the parts matching `include`) into `target`.
pub fn restore(
    repo: &Repository,
    snapshot: &str,
    target: &Path,
    include: &[String],
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let (_, snap) = repo.find_snapshot(snapshot)?;
    let index = repo.load_index()?;
    let set = matcher(include)?;
    let entries = repo.walk(&index, &snap.tree)?;
    // Two entries at one path (a link, then a directory of the same name
    // holding files) would have the second written through the first.
    let mut seen = HashSet::new();
    if let Some(twice) = entries.iter().find(|e| !seen.insert(e.rel.as_path())) {
        return Err(Error::Invalid(format!(
            "snapshot {snapshot} holds two entries at {:?}; nothing was restored",
            twice.path
        )));
    }
    std::fs::create_dir_all(target).map_err(|e| Error::io("create", target, e))?;
    let root = rustix::fs::open(
        target,
        DIR_FLAGS.difference(OFlags::NOFOLLOW),
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", target, e.into()))?;
    let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });

    let mut report = RestoreReport::default();
    let mut files: Vec<(PathBuf, File, &Entry)> = Vec::new();
    let mut dirs: Vec<&Entry> = Vec::new();
    // A selected entry brings the directories on its way.
    let mut wanted: HashSet<&str> = HashSet::new();
    for entry in &entries {
        if selected(&set, &entry.path) {
            let mut path = entry.path.as_str();
            while wanted.insert(path) {
                match path.rfind('/') {
                    Some(0) | None => break,
                    Some(i) => path = &path[..i],
                }
            }
        }
    }
    for entry in &entries {
        if !wanted.contains(entry.path.as_str()) {
            continue;
        }
        // Names came through `safe_name`, so every path stays under
        // `target`, and every entry is made through its directory's handle.
        match create_entry(&root, entry) {
            Ok(Some(file)) => files.push((target.join(&entry.rel), file, entry)),
            Ok(None) if entry.node.kind == NodeKind::Dir => dirs.push(entry),
            Ok(None) => {}
            Err(e) => report.failed.push((entry.path.clone(), e.to_string())),
        }
    }

    let index_ref = &index;
    let jobs: Vec<FileJob> = files
        .iter()
        .enumerate()
        .flat_map(|(n, (_, _, entry))| {
            let mut offset = 0u64;
            entry.node.content.iter().map(move |id| {
                let job = FileJob {
                    file: n,
                    offset,
                    id: *id,
                };
                offset += index_ref
                    .get(id)
                    .map_or(0, |(_, l)| u64::from(l.raw_length));
                job
            })
        })
        .collect();
    let failures: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
    jobs.par_iter().for_each(|job| {
        let result = repo.read_blob(&index, &job.id).and_then(|data| {
            progress.bytes(data.len() as u64);
            if data.iter().all(|&b| b == 0) {
                return Ok(());
            }
            files[job.file]
                .1
                .write_all_at(&data, job.offset)
                .map_err(|e| Error::io("write", &files[job.file].0, e))
        });
        if let Err(e) = result {
            let mut failures = failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.entry(job.file).or_insert_with(|| e.to_string());
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());

    for (n, (_, file, entry)) in files.iter().enumerate() {
        if let Some(reason) = failures.get(&n) {
            report.failed.push((entry.path.clone(), reason.clone()));
            continue;
        }
        set_metadata(file, &entry.node, is_root);
        report.files += 1;
        report.bytes += entry.node.size;
        progress.file();
    }
    // Deepest first, so setting a parent's time comes after its children
    // were written.
    dirs.sort_by_key(|e| std::cmp::Reverse(e.rel.components().count()));
    for entry in dirs {
        match open_dir(&root, &entry.rel) {
            Ok(dir) => set_metadata(&dir, &entry.node, is_root),
            Err(e) => report.failed.push((entry.path.clone(), e.to_string())),
        }
        report.dirs += 1;
    }
    report.failed.sort();
    Ok(report)
}

//! Media storage per app: a folder under `DATA/media/APP`, which the runtime
//! mounts into the app's replicas (through a named volume) at `/data/media`,
//! the only writable path they have besides `/tmp`.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Result, ServiceError};

/// Where replicas see their media.
pub const MOUNT_PATH: &str = "/data/media";

/// One media file's size and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Path relative to the media folder, with `/` separators.
    pub path: String,
    pub size: u64,
    /// BLAKE3 of the content, hex.
    pub blake3: String,
}

/// The media folders of all apps.
#[derive(Debug, Clone)]
pub struct MediaStore {
    root: PathBuf,
}

impl MediaStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of `app`.
    pub fn dir(&self, app: &str) -> PathBuf {
        self.root.join(app)
    }

    /// Creates the folder of `app` if needed and gives it to `owner` (the
    /// user the replicas run as), readable by no one else.
    pub fn ensure(&self, app: &str, owner: Option<(u32, u32)>) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| ServiceError::io("create", &self.root, e))?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| ServiceError::io("set permissions of", &self.root, e))?;
        let dir = self.dir(app);
        std::fs::create_dir_all(&dir).map_err(|e| ServiceError::io("create", &dir, e))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| ServiceError::io("change the owner of", &dir, e))?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ServiceError::io("set permissions of", &dir, e))?;
        Ok(dir)
    }

    /// Removes the folder of `app` and everything in it.
    pub fn remove(&self, app: &str) -> Result<()> {
        let dir = self.dir(app);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ServiceError::io("remove", &dir, e))
            }
            _ => Ok(()),
        }
    }
}

/// Whether `dir` is missing or holds nothing.
pub fn is_empty(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(ServiceError::io("read", dir, e)),
    }
}

/// Sizes and hashes of every regular file under `dir`, in path order.
///
/// The folder is an app's, which its replicas write while this reads: every
/// entry is opened relative to its directory's handle without following a
/// link or blocking on a FIFO, and only what `fstat` says is a regular file
/// or a directory is read. A link or a special file counts for nothing.
pub fn fingerprint(dir: &Path) -> Result<Vec<FileSum>> {
    let mut sums = Vec::new();
    match open_entry(None, dir) {
        Ok(Some((fd, Kind::Dir))) => walk(&fd, dir, "", &mut sums)?,
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ServiceError::io("open", dir, e)),
    }
    sums.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(sums)
}

enum Kind {
    File,
    Dir,
}

/// Opens `name` in `dir` (or the path itself) for reading, never through a
/// link; `None` for anything but a regular file or a directory.
fn open_entry(dir: Option<&OwnedFd>, name: &Path) -> std::io::Result<Option<(OwnedFd, Kind)>> {
    use rustix::fs::{FileType, Mode, OFlags};
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let opened = match dir {
        Some(dir) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        None => rustix::fs::open(name, flags, Mode::empty()),
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let kind = match FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        _ => return Ok(None),
    };
    Ok(Some((fd, kind)))
}

fn walk(dir: &OwnedFd, path: &Path, prefix: &str, out: &mut Vec<FileSum>) -> Result<()> {
    let read = |e: rustix::io::Errno| ServiceError::io("read", path, e.into());
    for entry in rustix::fs::Dir::read_from(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let name = std::ffi::OsStr::from_bytes(raw);
        let child = path.join(name);
        let rel = if prefix.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{prefix}/{}", name.to_string_lossy())
        };
        // An entry removed since the listing is simply not there.
        let opened = match open_entry(Some(dir), Path::new(name)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            other => other.map_err(|e| ServiceError::io("open", &child, e))?,
        };
        match opened {
            Some((fd, Kind::Dir)) => walk(&fd, &child, &rel, out)?,
            Some((fd, Kind::File)) => {
                let mut file = std::fs::File::from(fd);
                let mut hasher = blake3::Hasher::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut size = 0u64;
                loop {
                    let n = file
                        .read(&mut buf)
                        .map_err(|e| ServiceError::io("read", &child, e))?;
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    hasher.update(&buf[..n]);
                }
                out.push(FileSum {
                    path: rel,
                    size,
                    blake3: hasher.finalize().to_hex().to_string(),
                });
            }
            None => {}
        }
    }
    Ok(())
}

/// Replaces what `live` holds by what `staged` holds, entry by entry, so
/// the folder itself (which running replicas have mounted) stays the same.
/// `staged` must be on the same file system; it is left empty.
pub fn replace_contents(live: &Path, staged: &Path) -> Result<()> {
    let entries = std::fs::read_dir(live).map_err(|e| ServiceError::io("read", live, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ServiceError::io("read", live, e))?;
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| ServiceError::io("remove", &path, e))?;
    }
    let entries = std::fs::read_dir(staged).map_err(|e| ServiceError::io("read", staged, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ServiceError::io("read", staged, e))?;
        let to = live.join(entry.file_name());
        std::fs::rename(entry.path(), &to).map_err(|e| ServiceError::io("move into", &to, e))?;
    }
    Ok(())
}

/// Gives everything under `dir` to `owner`.
pub fn chown_tree(dir: &Path, owner: (u32, u32)) -> Result<()> {
    std::os::unix::fs::lchown(dir, Some(owner.0), Some(owner.1))
        .map_err(|e| ServiceError::io("change the owner of", dir, e))?;
    if dir.is_dir() && !dir.is_symlink() {
        for entry in std::fs::read_dir(dir).map_err(|e| ServiceError::io("read", dir, e))? {
            let entry = entry.map_err(|e| ServiceError::io("read", dir, e))?;
            chown_tree(&entry.path(), owner)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding: the fingerprint checked an entry's type, then opened it by
    /// path: a replica swapping a file for a link read a host file into
    /// the manifest's hashes, or hung the backup on a FIFO.
    #[test]
    fn a_folder_swapped_under_the_fingerprint_never_reaches_a_link_target_or_hangs() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("master.key");
        std::fs::write(&secret, b"HOST-SECRET").unwrap();
        let fifo = rampart_testkit::fifo(&tmp.path().join("pipe"));
        let media = tmp.path().join("media");
        let secret_hash = blake3::hash(b"HOST-SECRET").to_hex().to_string();
        let flipper = rampart_testkit::LinkFlipper::start(&media, 64, &[&secret, &fifo]);
        for round in 0..200 {
            let (tx, rx) = std::sync::mpsc::channel();
            let dir = media.clone();
            std::thread::spawn(move || {
                let _ = tx.send(fingerprint(&dir));
            });
            let sums = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("fingerprint {round} hung on a swapped entry"))
                .unwrap();
            assert!(
                sums.iter().all(|s| s.blake3 != secret_hash),
                "round {round} hashed the host file"
            );
        }
        drop(flipper);
    }

    #[test]
    fn fingerprints_follow_content_and_replacement_keeps_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let store = MediaStore::new(tmp.path().join("media"));
        let live = store.ensure("blog", None).unwrap();
        assert!(is_empty(&live).unwrap());
        std::fs::create_dir_all(live.join("a/b")).unwrap();
        std::fs::write(live.join("a/b/c.txt"), b"hello").unwrap();
        std::fs::write(live.join("top"), b"x").unwrap();
        let sums = fingerprint(&live).unwrap();
        assert_eq!(
            sums.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
            ["a/b/c.txt", "top"]
        );
        assert_eq!(sums[0].size, 5);
        assert_eq!(sums[0].blake3, blake3::hash(b"hello").to_hex().to_string());

        let staged = tmp.path().join("staged");
        std::fs::create_dir_all(staged.join("new")).unwrap();
        std::fs::write(staged.join("new/file"), b"restored").unwrap();
        let ino = std::fs::metadata(&live).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        });
        replace_contents(&live, &staged).unwrap();
        let after = fingerprint(&live).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].path, "new/file");
        assert!(is_empty(&staged).unwrap());
        let ino_after = std::fs::metadata(&live).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        });
        assert_eq!(ino.unwrap(), ino_after.unwrap());
    }
}

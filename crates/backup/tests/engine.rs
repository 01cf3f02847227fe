//! The engine against a real repository folder: round trips over random
//! trees, damage in every object type, bad passwords and paths, and a
//! backup racing a prune.
//!
//! Long by choice: every file under `tests/` is a test binary of its own,
//! linked on its own, so an area's tests share one file and one link
//! rather than paying for a binary each.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rampart_backup::check::ReadData;
use rampart_backup::forget::KeepPolicy;
use rampart_backup::{
    Backend, BackupRequest, Error, KdfParams, Kind, ObjectBackend, Repository, Silent, Source,
    backup, check, restore,
};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const FAST_KDF: KdfParams = KdfParams {
    m_kib: 8 * 1024,
    t: 1,
    p: 1,
};

fn init(dir: &Path) -> Repository {
    let backend = Arc::new(ObjectBackend::open(dir.to_str().unwrap(), true).unwrap());
    Repository::init(backend, b"secret", FAST_KDF).unwrap()
}

fn open(dir: &Path, password: &[u8]) -> Result<Repository, Error> {
    let backend = Arc::new(ObjectBackend::open(dir.to_str().unwrap(), false)?);
    Repository::open(backend, password)
}

fn backup_paths(repo: &Repository, paths: &[&Path]) -> rampart_backup::BackupOutcome {
    let request = BackupRequest {
        source: Source::Paths(paths.iter().map(|p| p.to_path_buf()).collect()),
        tags: vec![],
    };
    backup(repo, request, &Silent).unwrap()
}

/// Everything about a tree that a restore must reproduce.
fn describe(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let meta = fs::symlink_metadata(&path).unwrap();
            let desc = if meta.file_type().is_symlink() {
                format!("link -> {:?}", fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!(
                    "dir {:o} {}.{}",
                    meta.mode() & 0o7777,
                    meta.mtime(),
                    meta.mtime_nsec()
                )
            } else {
                let data = fs::read(&path).unwrap();
                format!(
                    "file {:o} {} {}.{} {}",
                    meta.mode() & 0o7777,
                    meta.size(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    blake3::hash(&data).to_hex()
                )
            };
            out.insert(rel, desc);
        }
    }
    out
}

fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let t = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    let f = fs::File::open(path).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(t)).unwrap();
}

const NAMES: &[&str] = &[
    "a",
    "data.bin",
    "ünïcødé",
    "日本語.txt",
    "emoji-🦀",
    "space name",
    ".hidden",
    "x-y_z",
];

/// A random tree: empty, small, large, compressible, incompressible and
/// sparse files, symlinks, unicode and non-UTF-8 names, odd modes and mtimes.
fn random_tree(rng: &mut StdRng, dir: &Path, depth: u32) {
    fs::create_dir_all(dir).unwrap();
    let entries = rng.random_range(2..7);
    for i in 0..entries {
        let name = format!("{}-{i}", NAMES[rng.random_range(0..NAMES.len())]);
        let path = dir.join(&name);
        match rng.random_range(0..10) {
            0 if depth < 3 => random_tree(rng, &path, depth + 1),
            1 => fs::write(&path, b"").unwrap(),
            2 => {
                let mut data = vec![0u8; rng.random_range(1..3_000_000)];
                rng.fill_bytes(&mut data);
                fs::write(&path, data).unwrap();
            }
            3 => {
                let line = format!("row {} of a table dump, value {}\n", i, rng.random::<u32>());
                fs::write(&path, line.repeat(rng.random_range(1..60_000))).unwrap();
            }
            4 => {
                // Sparse: a hole, a little data, a hole.
                let f = fs::File::create(&path).unwrap();
                f.set_len(12 * 1024 * 1024).unwrap();
                use std::os::unix::fs::FileExt;
                f.write_all_at(b"island in the middle", 6 * 1024 * 1024)
                    .unwrap();
            }
            5 => std::os::unix::fs::symlink(format!("../target-{i}"), &path).unwrap(),
            6 => {
                let raw = std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9");
                let p = dir.join(raw);
                if !p.exists() {
                    fs::write(&p, b"not utf-8 name").unwrap();
                }
                continue;
            }
            _ => {
                let mut data = vec![0u8; rng.random_range(0..200_000)];
                rng.fill_bytes(&mut data);
                fs::write(&path, data).unwrap();
            }
        }
        if !fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
        {
            let mode = if path.is_dir() {
                0o750
            } else {
                [0o600, 0o644, 0o755, 0o640][rng.random_range(0..4)]
            };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            set_mtime(
                &path,
                rng.random_range(1_000_000_000..1_800_000_000),
                rng.random_range(0..1_000_000_000),
            );
        }
    }
    set_mtime(dir, 1_600_000_000, 123_456_789);
}

#[test]
fn random_trees_round_trip_exactly() {
    let work = tempfile::tempdir().unwrap();
    let repo = init(&work.path().join("repo"));
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let src = work.path().join(format!("src{seed}"));
        random_tree(&mut rng, &src, 0);
        let before = describe(&src);
        let first = backup_paths(&repo, &[&src]);

        // Change the tree; the first snapshot must still restore as it was.
        random_tree(&mut rng, &src.join("added"), 1);
        let second = backup_paths(&repo, &[&src]);
        assert_eq!(second.snapshot.parent, Some(first.id));

        let out = work.path().join(format!("out{seed}"));
        let report = restore(&repo, &first.id.hex(), &out, &[], &Silent).unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let name = src.file_name().unwrap();
        assert_eq!(describe(&out.join(name)), before, "seed {seed}");

        let out2 = work.path().join(format!("out{seed}-2"));
        restore(&repo, &second.id.hex(), &out2, &[], &Silent).unwrap();
        assert_eq!(
            describe(&out2.join(name)),
            describe(&src),
            "seed {seed}, second snapshot"
        );
    }
    let report = check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
}

#[test]
fn unchanged_data_is_stored_once_and_sparse_files_stay_sparse() {
    let work = tempfile::tempdir().unwrap();
    let repo = init(&work.path().join("repo"));
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; 6_000_000];
    StdRng::seed_from_u64(9).fill_bytes(&mut data);
    fs::write(src.join("a.bin"), &data).unwrap();
    fs::write(src.join("copy.bin"), &data).unwrap();
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(64 * 1024 * 1024).unwrap();

    let first = backup_paths(&repo, &[&src]);
    let stored = first.snapshot.summary.bytes_stored;
    assert!(
        stored < 6_500_000,
        "two copies stored once, zeros once: {stored}"
    );
    let again = backup_paths(&repo, &[&src]);
    assert_eq!(again.snapshot.summary.bytes_added, 0);
    assert_eq!(again.snapshot.summary.files_unchanged, 3);

    let out = work.path().join("out");
    restore(&repo, "latest", &out, &[], &Silent).unwrap();
    let meta = fs::metadata(out.join("src/sparse")).unwrap();
    assert_eq!(meta.len(), 64 * 1024 * 1024);
    assert!(
        meta.blocks() * 512 < 1024 * 1024,
        "restored sparse file allocates {} blocks",
        meta.blocks()
    );
}

#[test]
fn include_patterns_restore_only_what_matches() {
    let work = tempfile::tempdir().unwrap();
    let repo = init(&work.path().join("repo"));
    let src = work.path().join("src");
    fs::create_dir_all(src.join("db")).unwrap();
    fs::create_dir_all(src.join("media")).unwrap();
    fs::write(src.join("db/dump.sql"), b"select 1;").unwrap();
    fs::write(src.join("media/cat.jpg"), b"jpeg").unwrap();
    backup_paths(&repo, &[&src]);
    let out = work.path().join("out");
    restore(&repo, "latest", &out, &["/src/db/*.sql".into()], &Silent).unwrap();
    assert_eq!(fs::read(out.join("src/db/dump.sql")).unwrap(), b"select 1;");
    assert!(!out.join("src/media").exists());
}

fn all_objects(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_wrong_password_is_refused_and_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("repo");
    init(&dir);
    let before = all_objects(&dir);
    let err = open(&dir, b"not the password").unwrap_err();
    assert_eq!(err.to_string(), "wrong password or no matching key");
    assert_eq!(all_objects(&dir), before);
}

#[test]
fn a_path_that_is_no_repository_is_refused_and_left_alone() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("missing");
    let err = open(&missing, b"x").unwrap_err();
    assert!(
        err.to_string()
            .contains("is not a Rampart backup repository"),
        "{err}"
    );
    assert!(!missing.exists());

    let empty = work.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    fs::write(empty.join("notes.txt"), b"hello").unwrap();
    let err = open(&empty, b"x").unwrap_err();
    assert!(matches!(err, Error::NotARepository(_)), "{err}");
    assert_eq!(all_objects(&empty).len(), 1);

    let dir = work.path().join("repo");
    init(&dir);
    let backend = Arc::new(ObjectBackend::open(dir.to_str().unwrap(), true).unwrap());
    let err = Repository::init(backend, b"again", FAST_KDF).unwrap_err();
    assert!(matches!(err, Error::AlreadyInitialised { .. }), "{err}");
}

#[test]
fn an_unsupported_format_version_is_named() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("repo");
    init(&dir);
    let config = dir.join("config");
    let mut bytes = fs::read(&config).unwrap();
    bytes[7] = 9;
    fs::write(&config, &bytes).unwrap();
    let err = open(&dir, b"secret").unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { found: 9, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("version 9"), "{err}");
}

/// A repository with two snapshots and a second key slot.
fn populated(work: &Path) -> (PathBuf, PathBuf, Repository) {
    let dir = work.join("repo");
    let repo = init(&dir);
    repo.add_key(b"second", FAST_KDF).unwrap();
    let src = work.join("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; 3_000_000];
    StdRng::seed_from_u64(5).fill_bytes(&mut data);
    fs::write(src.join("one.bin"), &data).unwrap();
    fs::write(src.join("two.txt"), "text ".repeat(100_000)).unwrap();
    backup_paths(&repo, &[&src]);
    fs::write(src.join("three.txt"), "more").unwrap();
    backup_paths(&repo, &[&src]);
    (dir, src, repo)
}

fn objects_of(dir: &Path, sub: &str) -> Vec<PathBuf> {
    all_objects(&dir.join(sub))
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Flip,
    Truncate,
    /// One byte removed from the middle.
    DeleteByte,
}

fn damage(path: &Path, how: Damage, rng: &mut StdRng) {
    let mut bytes = fs::read(path).unwrap();
    match how {
        Damage::Flip => {
            let i = rng.random_range(0..bytes.len());
            bytes[i] ^= 1 << rng.random_range(0..8);
            fs::write(path, bytes).unwrap();
        }
        Damage::Truncate => {
            bytes.truncate(rng.random_range(0..bytes.len()));
            fs::write(path, bytes).unwrap();
        }
        Damage::DeleteByte => {
            bytes.remove(rng.random_range(0..bytes.len()));
            fs::write(path, bytes).unwrap();
        }
    }
}

#[test]
fn damage_to_any_object_is_found_and_named() {
    let mut rng = StdRng::seed_from_u64(77);
    for sub in ["keys", "data", "index", "snapshots"] {
        for how in [Damage::Flip, Damage::Truncate, Damage::DeleteByte] {
            let work = tempfile::tempdir().unwrap();
            let (dir, _, _) = populated(work.path());
            let victims = objects_of(&dir, sub);
            let victim = &victims[rng.random_range(0..victims.len())];
            let name = victim.file_name().unwrap().to_string_lossy().into_owned();
            damage(victim, how, &mut rng);

            // The second password opens the repository even when the first
            // key slot is the damaged one.
            let repo = match open(&dir, b"secret") {
                Ok(r) => r,
                Err(_) => open(&dir, b"second").unwrap(),
            };
            let report = check(&repo, ReadData::All);
            let errors = match report {
                Ok(r) => r.errors,
                Err(e) => vec![e.to_string()],
            };
            assert!(
                errors.iter().any(|e| e.contains(&name[..12])),
                "{how:?} {sub}/{name}: {errors:?}"
            );
        }
    }
}

#[test]
fn a_missing_pack_or_index_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let (dir, _, repo) = populated(work.path());
    let pack = &objects_of(&dir, "data")[0];
    let name = pack.file_name().unwrap().to_string_lossy().into_owned();
    fs::remove_file(pack).unwrap();
    let report = check(&repo, ReadData::None).unwrap();
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains(&name) && e.contains("missing")),
        "{:?}",
        report.errors
    );

    let work = tempfile::tempdir().unwrap();
    let (dir, _, repo) = populated(work.path());
    fs::remove_file(&objects_of(&dir, "index")[0]).unwrap();
    let report = check(&repo, ReadData::None).unwrap();
    // Whether the lost index held data or tree blobs, check names what is
    // now unreachable.
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("no index holds") || e.contains("not in any index")),
        "{:?}",
        report.errors
    );
}

#[test]
fn damage_to_the_config_is_named_when_opening() {
    let mut rng = StdRng::seed_from_u64(78);
    for how in [Damage::Flip, Damage::Truncate, Damage::DeleteByte] {
        let work = tempfile::tempdir().unwrap();
        let (dir, _, _) = populated(work.path());
        damage(&dir.join("config"), how, &mut rng);
        let err = open(&dir, b"secret").unwrap_err().to_string();
        assert!(
            err.contains("config") || err.contains("not a Rampart backup repository"),
            "{how:?}: {err}"
        );
    }
}

#[test]
fn restore_names_each_file_it_cannot_restore() {
    let work = tempfile::tempdir().unwrap();
    let (dir, _, repo) = populated(work.path());
    let index = repo.load_index().unwrap();
    let (_, snap) = repo.find_snapshot("latest").unwrap();
    let entries = repo.walk(&index, &snap.tree).unwrap();
    let one = entries
        .iter()
        .find(|e| e.path.ends_with("one.bin"))
        .unwrap();
    let (pack, loc) = index.get(&one.node.content[0]).unwrap();
    let pack_path = dir.join("data").join(&pack.hex()[..2]).join(pack.hex());
    let mut bytes = fs::read(&pack_path).unwrap();
    bytes[loc.offset as usize + 40] ^= 0xff;
    fs::write(&pack_path, bytes).unwrap();

    let out = work.path().join("out");
    let report = restore(&repo, "latest", &out, &[], &Silent).unwrap();
    let failed: Vec<&str> = report.failed.iter().map(|(p, _)| p.as_str()).collect();
    assert!(failed.contains(&"/src/one.bin"), "{failed:?}");
    assert!(
        report
            .failed
            .iter()
            .all(|(_, reason)| reason.contains("damaged"))
    );
    assert_eq!(
        fs::read_to_string(out.join("src/three.txt")).unwrap(),
        "more"
    );
}

#[test]
fn keys_can_be_added_and_removed_without_touching_data() {
    let work = tempfile::tempdir().unwrap();
    let (dir, _, _) = populated(work.path());
    let data_before = objects_of(&dir, "data");
    let repo = open(&dir, b"second").unwrap();
    let keys = repo.list_keys().unwrap();
    assert_eq!(keys.len(), 2);
    let other = keys.iter().find(|k| !k.current).unwrap();
    assert!(
        repo.remove_key(&keys.iter().find(|k| k.current).unwrap().id)
            .is_err()
    );
    repo.remove_key(&other.id).unwrap();
    assert!(matches!(open(&dir, b"secret"), Err(Error::WrongPassword)));
    assert_eq!(open(&dir, b"second").unwrap().snapshots().unwrap().len(), 2);
    assert_eq!(objects_of(&dir, "data"), data_before);
}

#[test]
fn forget_and_prune_free_space_and_keep_the_rest_whole() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("repo");
    let repo = init(&dir);
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for round in 0..4u64 {
        let mut data = vec![0u8; 2_000_000];
        StdRng::seed_from_u64(round).fill_bytes(&mut data);
        fs::write(src.join("changing.bin"), &data).unwrap();
        backup_paths(&repo, &[&src]);
    }
    let decisions = rampart_backup::forget::decide(
        &repo.snapshots().unwrap(),
        KeepPolicy {
            last: 1,
            ..Default::default()
        },
    )
    .unwrap();
    for d in decisions.iter().filter(|d| !d.keep) {
        repo.backend().delete(Kind::Snapshot, &d.id.hex()).unwrap();
    }
    let before: u64 = repo
        .backend()
        .list(Kind::Pack)
        .unwrap()
        .iter()
        .map(|(_, s)| s)
        .sum();
    let report = rampart_backup::prune::prune(&repo).unwrap();
    let after: u64 = repo
        .backend()
        .list(Kind::Pack)
        .unwrap()
        .iter()
        .map(|(_, s)| s)
        .sum();
    assert!(
        report.bytes_freed > 0 && after < before / 2,
        "{before} -> {after}: {report:?}"
    );
    let checked = check(&repo, ReadData::All).unwrap();
    assert!(checked.ok() && checked.warnings.is_empty(), "{checked:?}");
    let out = work.path().join("out");
    restore(&repo, "latest", &out, &[], &Silent).unwrap();
    assert_eq!(describe(&out.join("src")), describe(&src));
    assert_eq!(repo.backend().list(Kind::Index).unwrap().len(), 1);
}

#[test]
fn a_backup_racing_a_prune_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("repo");
    let repo = init(&dir);
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("base.txt"), "base ".repeat(100_000)).unwrap();
    backup_paths(&repo, &[&src]);

    let backups = {
        let repo = repo.clone();
        let src = src.clone();
        std::thread::spawn(move || {
            let mut done = Vec::new();
            for round in 0..6u64 {
                let mut data = vec![0u8; 1_500_000];
                StdRng::seed_from_u64(100 + round).fill_bytes(&mut data);
                fs::write(src.join(format!("f{round}.bin")), &data).unwrap();
                // Like a scheduler, retry while prune holds the lock.
                for _ in 0..200 {
                    let request = BackupRequest {
                        source: Source::Paths(vec![src.clone()]),
                        tags: vec![],
                    };
                    match backup(&repo, request, &Silent) {
                        Ok(outcome) => {
                            done.push((outcome.id, round));
                            break;
                        }
                        Err(Error::Locked { .. }) => std::thread::sleep(Duration::from_millis(10)),
                        Err(e) => panic!("backup failed: {e}"),
                    }
                }
            }
            done
        })
    };
    let mut prunes = 0;
    for _ in 0..12 {
        match rampart_backup::prune::prune(&repo) {
            Ok(_) => prunes += 1,
            Err(Error::Locked { .. }) => {}
            Err(e) => panic!("prune failed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = backups.join().unwrap();
    rampart_backup::prune::prune(&repo).unwrap();
    assert!(
        done.len() == 6 && prunes > 0,
        "both sides ran: {} backups, {prunes} prunes",
        done.len()
    );
    let report = check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    for (id, round) in done {
        let out = work.path().join(format!("out-{round}"));
        let restored = restore(&repo, &id.hex(), &out, &[], &Silent).unwrap();
        assert!(restored.failed.is_empty(), "{:?}", restored.failed);
        assert!(out.join(format!("src/f{round}.bin")).exists());
    }
}

#[test]
fn the_in_memory_backend_behaves_like_the_folder() {
    let backend: Arc<dyn Backend> = Arc::new(ObjectBackend::memory().unwrap());
    let repo = Repository::init(backend.clone(), b"pw", FAST_KDF).unwrap();
    let err = backend
        .create(Kind::Config, "config", bytes::Bytes::from_static(b"x"))
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists(_)),
        "objects are never overwritten: {err}"
    );
    let outcome = backup(
        &repo,
        BackupRequest {
            source: Source::Stdin {
                name: "dump.sql".into(),
                reader: Box::new(&b"create table t();"[..]),
            },
            tags: vec!["db".into()],
        },
        &Silent,
    )
    .unwrap();
    let mut out = Vec::new();
    repo.dump(&outcome.id.hex()[..8], "dump.sql", &mut out)
        .unwrap();
    assert_eq!(out, b"create table t();");
    assert_eq!(repo.snapshots().unwrap()[0].1.tags, ["db"]);
}

fn backup_parts(
    repo: &Repository,
    manifest: &str,
    dump: &[u8],
    media: &Path,
) -> rampart_backup::BackupOutcome {
    let request = BackupRequest {
        source: Source::Parts {
            streams: vec![
                (
                    "manifest.json".into(),
                    Box::new(std::io::Cursor::new(manifest.as_bytes().to_vec())),
                ),
                (
                    "database.dump".into(),
                    Box::new(std::io::Cursor::new(dump.to_vec())),
                ),
            ],
            folders: vec![("media".into(), media.to_path_buf())],
        },
        tags: vec!["app=blog".into()],
    };
    backup(repo, request, &Silent).unwrap()
}

#[test]
fn snapshots_survive_a_prune_that_rewrites_the_packs_they_share() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let media = work.path().join("media-of-blog");
    fs::create_dir_all(media.join("img")).unwrap();
    fs::write(media.join("img/a.bin"), vec![7u8; 100_000]).unwrap();
    let repo = init(&repo_dir);
    let mut dump = vec![0u8; 300_000];
    StdRng::seed_from_u64(9).fill_bytes(&mut dump);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(backup_parts(&repo, &format!("{{\"n\": {i}}}"), &dump, &media).id);
    }
    let report = check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "before prune: {report:?}");
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 3);
    assert_eq!(snaps[0].1.paths.len(), 3, "{:?}", snaps[0].1.paths);
    repo.backend()
        .delete(Kind::Snapshot, &ids[0].hex())
        .unwrap();
    let report = rampart_backup::prune::prune(&repo).unwrap();
    assert!(report.packs_rewritten > 0, "{report:?}");

    let repo = open(&repo_dir, b"secret").unwrap();
    for (i, id) in ids.iter().enumerate().skip(1) {
        let mut out = Vec::new();
        repo.dump(&id.hex(), "manifest.json", &mut out).unwrap();
        assert_eq!(out, format!("{{\"n\": {i}}}").as_bytes());
        let mut out = Vec::new();
        repo.dump(&id.hex(), "database.dump", &mut out).unwrap();
        assert_eq!(out, dump);
        let target = work.path().join(format!("restored-{i}"));
        restore(&repo, &id.hex(), &target, &["media".into()], &Silent).unwrap();
        assert_eq!(
            fs::read(target.join("media/img/a.bin")).unwrap(),
            vec![7u8; 100_000]
        );
    }
    let report = check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "{report:?}");
}

/// A stream that fails after some bytes, as a dump program that dies does.
struct Failing(usize);

impl std::io::Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("pg_dump failed (exit status: 1)"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(1);
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn a_stream_that_fails_leaves_no_snapshot() {
    let work = tempfile::tempdir().unwrap();
    let repo = init(&work.path().join("repo"));
    let request = BackupRequest {
        source: Source::Parts {
            streams: vec![
                (
                    "manifest.json".into(),
                    Box::new(std::io::Cursor::new(b"{}".to_vec())),
                ),
                ("database.dump".into(), Box::new(Failing(5_000_000))),
            ],
            folders: vec![],
        },
        tags: vec![],
    };
    let err = backup(&repo, request, &Silent).unwrap_err();
    assert!(err.to_string().contains("pg_dump failed"), "{err}");
    assert!(repo.snapshots().unwrap().is_empty());
    for bad in ["", "a/b", "..", "."] {
        let request = BackupRequest {
            source: Source::Parts {
                streams: vec![(bad.into(), Box::new(std::io::Cursor::new(Vec::new())))],
                folders: vec![],
            },
            tags: vec![],
        };
        assert!(backup(&repo, request, &Silent).is_err(), "{bad:?}");
    }
    assert!(repo.snapshots().unwrap().is_empty());
}

/// Finding: the engine checked an entry with `lstat` and then opened it by
/// path, so whoever writes the folder being backed up (a replica, for its
/// media) could swap a file for a link in between: a host file (the master
/// key) went into the snapshot, or a FIFO hung the backup, and with it
/// every other app's. Entries are now opened relative to their directory
/// without following links or blocking.
#[test]
fn a_folder_swapped_under_the_backup_leaks_no_link_target_and_never_hangs() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("master.key");
    std::fs::write(&secret, b"HOST-SECRET-never-in-a-snapshot").unwrap();
    let fifo = rampart_testkit::fifo(&tmp.path().join("pipe"));
    let media = tmp.path().join("media");
    const FILES: usize = 64;
    let repo = init(&tmp.path().join("repo"));

    // The hostile writer: each file becomes a link to the secret or to the
    // FIFO and back, atomically, for as long as the backups run.
    let flipper = rampart_testkit::LinkFlipper::start(&media, FILES, &[&secret, &fifo]);
    let repo = Arc::new(repo);
    let mut ids = Vec::new();
    for round in 0..25 {
        let (tx, rx) = std::sync::mpsc::channel();
        let (repo, media) = (repo.clone(), media.clone());
        std::thread::spawn(move || {
            let _ = tx.send(backup_paths(&repo, &[&media]).id);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(id) => ids.push(id),
            Err(_) => panic!("backup {round} hung on a swapped entry"),
        }
    }
    drop(flipper);

    for id in ids {
        let out = tmp.path().join(format!("out-{}", id.hex()));
        restore(&repo, &id.hex(), &out, &[], &Silent).unwrap();
        let mut stack = vec![out];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    let bytes = std::fs::read(entry.path()).unwrap();
                    assert!(
                        !bytes.windows(11).any(|w| w == b"HOST-SECRET"),
                        "{} holds the host file",
                        entry.path().display()
                    );
                }
            }
        }
    }
}

/// Replaces the tree of folder `name` in `snapshot` by `edit` of it and
/// writes the result as a new snapshot, sealed with the repository's keys
/// as a hostile writer of the repository (who has them) could.
fn tampered_snapshot(
    repo: &Repository,
    snapshot: &rampart_backup::Id,
    name: &str,
    edit: impl FnOnce(&mut rampart_backup::format::Tree),
) -> String {
    use rampart_backup::format::{self, BlobKind, IndexFile, SealedKind, Snapshot};
    let index = repo.load_index().unwrap();
    let snap: Snapshot = repo
        .read_sealed(Kind::Snapshot, SealedKind::Snapshot, &snapshot.hex())
        .unwrap();
    let mut root = repo.read_tree(&index, &snap.tree).unwrap();
    let folder = root.nodes.iter_mut().find(|n| n.name == name).unwrap();
    let mut tree = repo.read_tree(&index, &folder.subtree.unwrap()).unwrap();
    edit(&mut tree);
    let mut pack = rampart_backup::pack::PackWriter::new(1 << 16);
    let mut store = |tree: &format::Tree| {
        let json = serde_json::to_vec(tree).unwrap();
        let id = repo.keys().blob_id(&json);
        let sealed = format::seal_blob(repo.keys(), BlobKind::Tree, &id, &json, 0);
        pack.add(BlobKind::Tree, id, &sealed, json.len() as u32);
        id
    };
    folder.subtree = Some(store(&tree));
    let root_id = store(&root);
    let (bytes, indexed) = pack.finish(repo.keys());
    repo.backend()
        .create(Kind::Pack, &indexed.id.hex(), bytes::Bytes::from(bytes))
        .unwrap();
    repo.write_sealed(
        Kind::Index,
        SealedKind::Index,
        &IndexFile {
            packs: vec![indexed],
            supersedes: Vec::new(),
        },
    )
    .unwrap();
    let snap = Snapshot {
        tree: root_id,
        ..snap
    };
    repo.write_sealed(Kind::Snapshot, SealedKind::Snapshot, &snap)
        .unwrap()
        .hex()
}

/// Finding: a snapshot holding a link `x → /etc` and then a directory `x`
/// with a `passwd` in it made the restore write `/etc/passwd`; and a link
/// already in the target was followed the same way. Duplicate names are
/// refused, and the restore opens every directory through its parent's
/// handle without following a link.
#[test]
fn a_hostile_snapshot_or_target_never_gets_a_restore_to_write_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("y")).unwrap();
    fs::write(src.join("y/passwd"), b"root::0:0::/:/bin/sh\n").unwrap();
    std::os::unix::fs::symlink(&outside, src.join("x")).unwrap();
    let repo = init(&tmp.path().join("repo"));
    let outcome = backup_paths(&repo, &[&src]);

    // The directory `y` renamed `x`, after the link `x`.
    let hostile = tampered_snapshot(&repo, &outcome.id, "src", |tree| {
        for node in &mut tree.nodes {
            if node.name == "y" {
                node.name = "x".into();
            }
        }
        tree.nodes
            .sort_by_key(|n| n.kind != rampart_backup::format::NodeKind::Symlink);
    });
    let err = restore(&repo, &hostile, &tmp.path().join("t1"), &[], &Silent).unwrap_err();
    assert!(err.to_string().contains("two entries"), "{err}");
    assert!(
        !outside.join("passwd").exists(),
        "the restore wrote outside"
    );
    assert!(!tmp.path().join("t1/src").exists(), "nothing is written");

    // A link the target already holds where the snapshot has a directory.
    let target = tmp.path().join("t2");
    fs::create_dir_all(target.join("src")).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("src/y")).unwrap();
    let report = restore(&repo, &outcome.id.hex(), &target, &[], &Silent).unwrap();
    assert!(
        !outside.join("passwd").exists(),
        "the restore followed a link"
    );
    assert!(
        report.failed.iter().any(|(path, _)| path.contains("y")),
        "{:?}",
        report.failed
    );
}

//! `rampart repo` through the real binary: passwords, bad paths, damage,
//! SIGKILL at random points, and the S3 backend against a real S3 server.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_testkit::{S3Server, ok, run};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

struct Env {
    work: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// `rampart repo ARGS` against `repo` with the test password and a
    /// cheap KDF.
    fn repo(&self, repo: &str, password: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
        cmd.arg("repo")
            .env("RAMPART_REPO", repo)
            .env("RAMPART_REPO_PASSWORD", password)
            .env("RAMPART_REPO_KDF_MEMORY_KIB", "8192")
            .env("HOME", self.work.path())
            .stdin(Stdio::null());
        cmd
    }
}

fn tree_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn make_source(dir: &Path, seed: u64, files: usize, size: usize) {
    fs::create_dir_all(dir).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..files {
        let mut data = vec![0u8; size];
        rng.fill_bytes(&mut data);
        fs::write(dir.join(format!("file-{i}.bin")), data).unwrap();
    }
}

#[test]
fn init_backup_restore_through_the_cli() {
    let env = Env::new();
    let repo = env.path("repo");
    let repo = repo.to_str().unwrap();
    let src = env.path("src");
    make_source(&src, 1, 3, 1_500_000);
    fs::write(
        src.join("table.sql"),
        "insert into t values (1);\n".repeat(50_000),
    )
    .unwrap();
    ok(env.repo(repo, "pw").arg("init"));
    let id = ok(env
        .repo(repo, "pw")
        .args(["backup", "--quiet", "--tag", "media"])
        .arg(&src));
    assert!(id.is_empty(), "--quiet prints nothing: {id}");
    let json: serde_json::Value = serde_json::from_str(&ok(env
        .repo(repo, "pw")
        .args(["backup", "--json"])
        .arg(&src)))
    .unwrap();
    assert_eq!(json["summary"]["files_unchanged"], 4);
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(env.repo(repo, "pw").args(["snapshots", "--json"]))).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    assert_eq!(snaps[0]["snapshot"]["tags"], serde_json::json!(["media"]));

    let mut stream = env.repo(repo, "pw");
    stream
        .args(["backup", "--stdin", "--stdin-filename", "db.sql"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = stream.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"-- pg_dump output\nCOPY t FROM stdin;\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let dumped = ok(env.repo(repo, "pw").args(["dump", "latest", "db.sql"]));
    assert_eq!(dumped, "-- pg_dump output\nCOPY t FROM stdin;\n");

    let ls = ok(env
        .repo(repo, "pw")
        .args(["ls", &snaps[0]["id"].as_str().unwrap()[..10]]));
    assert!(ls.contains("/src/table.sql"), "{ls}");
    let out = env.path("out");
    ok(env
        .repo(repo, "pw")
        .args([
            "restore",
            &snaps[1]["id"].as_str().unwrap()[..10],
            "--target",
        ])
        .arg(&out));
    assert_eq!(tree_files(&out.join("src")), tree_files(&src));
    let checked = ok(env.repo(repo, "pw").args(["check", "--read-data"]));
    assert!(checked.contains("no errors"), "{checked}");
    ok(env
        .repo(repo, "pw")
        .args(["check", "--read-data-subset", "50%"]));

    // Keys: add a second password, remove the first while opened with the second.
    let mut add = env.repo(repo, "pw");
    add.args(["key", "add"])
        .env("RAMPART_REPO_NEW_PASSWORD", "pw2");
    ok(&mut add);
    let keys: serde_json::Value =
        serde_json::from_str(&ok(env.repo(repo, "pw2").args(["key", "list", "--json"]))).unwrap();
    let old = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(env.repo(repo, "pw2").args(["key", "remove", &old]));
    let (code, _, err) = run(env.repo(repo, "pw").arg("snapshots"));
    assert_eq!(code, 1);
    assert!(err.contains("wrong password or no matching key"), "{err}");

    // Forget with prune keeps the newest of each group (same host and
    // paths): one of the two backups of src, and the stream.
    ok(env
        .repo(repo, "pw2")
        .args(["forget", "--keep-last", "1", "--prune"]));
    let left: serde_json::Value =
        serde_json::from_str(&ok(env.repo(repo, "pw2").args(["snapshots", "--json"]))).unwrap();
    let ids: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.contains(&snaps[1]["id"].as_str().unwrap()),
        "the newer backup of src stays"
    );
    ok(env.repo(repo, "pw2").args(["check", "--read-data"]));
}

fn snapshot_of_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    if !dir.exists() {
        return Vec::new();
    }
    tree_files(dir)
}

#[test]
fn a_wrong_password_or_a_non_repository_changes_nothing() {
    let env = Env::new();
    let repo = env.path("repo");
    let repo_s = repo.to_str().unwrap();
    ok(env.repo(repo_s, "right").arg("init"));
    let before = snapshot_of_files(&repo);
    let src = env.path("src");
    make_source(&src, 2, 1, 1000);
    for args in [
        vec!["snapshots"],
        vec!["backup", src.to_str().unwrap()],
        vec!["check"],
        vec!["prune"],
    ] {
        let (code, out, err) = run(env.repo(repo_s, "wrong").args(&args));
        assert_eq!(code, 1, "{args:?}: {out}");
        assert_eq!(
            err.trim(),
            "rampart: error: wrong password or no matching key",
            "{args:?}"
        );
        assert_eq!(snapshot_of_files(&repo), before, "{args:?} wrote something");
    }

    let nowhere = env.path("nowhere");
    let (code, _, err) = run(env.repo(nowhere.to_str().unwrap(), "x").arg("snapshots"));
    assert_eq!(code, 1);
    assert!(err.contains("is not a Rampart backup repository"), "{err}");
    assert!(!nowhere.exists(), "nothing is created");

    // Init over an existing repository is refused.
    let (code, _, err) = run(env.repo(repo_s, "other").arg("init"));
    assert_eq!(code, 1);
    assert!(err.contains("already holds a repository"), "{err}");
    assert_eq!(snapshot_of_files(&repo), before);
}

#[test]
fn check_and_restore_name_damage() {
    let env = Env::new();
    let repo = env.path("repo");
    let repo_s = repo.to_str().unwrap();
    let src = env.path("src");
    make_source(&src, 3, 4, 800_000);
    ok(env.repo(repo_s, "pw").arg("init"));
    ok(env.repo(repo_s, "pw").arg("backup").arg(&src));
    let pack = tree_files(&repo.join("data"))
        .into_iter()
        .max_by_key(|(_, b)| b.len())
        .unwrap()
        .0;
    let pack_path = repo.join("data").join(&pack);
    let mut bytes = fs::read(&pack_path).unwrap();
    bytes[1000] ^= 0x40;
    fs::write(&pack_path, bytes).unwrap();

    let (code, _, err) = run(env.repo(repo_s, "pw").args(["check", "--read-data"]));
    assert_eq!(code, 1);
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "{err}");
    let (code, _, err) = run(env
        .repo(repo_s, "pw")
        .args(["restore", "latest", "--target"])
        .arg(env.path("out")));
    assert_ne!(code, 0);
    assert!(err.contains("cannot restore /src/file-"), "{err}");
}

#[test]
fn a_backup_killed_at_random_points_leaves_a_repository_that_checks_and_continues() {
    let env = Env::new();
    let repo = env.path("repo");
    let repo_s = repo.to_str().unwrap();
    let src = env.path("src");
    make_source(&src, 4, 12, 4_000_000);
    ok(env.repo(repo_s, "pw").arg("init"));
    let mut rng = StdRng::seed_from_u64(4);
    for round in 0..6 {
        // Each round changes a file so there is always new data to write.
        let mut data = vec![0u8; 4_000_000];
        rng.fill_bytes(&mut data);
        fs::write(src.join(format!("file-{}.bin", round % 12)), data).unwrap();
        let mut child = env
            .repo(repo_s, "pw")
            .args(["backup", "--quiet"])
            .arg(&src)
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(rng.random_range(20..700));
        let started = Instant::now();
        while started.elapsed() < delay && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let (code, out, err) = run(env.repo(repo_s, "pw").arg("check"));
        assert_eq!(
            code, 0,
            "round {round}: check after SIGKILL failed\n{out}\n{err}"
        );
    }
    // The next backup succeeds, despite the dead process's lock.
    ok(env.repo(repo_s, "pw").arg("backup").arg(&src));
    ok(env.repo(repo_s, "pw").args(["check", "--read-data"]));
    let out = env.path("out");
    ok(env
        .repo(repo_s, "pw")
        .args(["restore", "latest", "--target"])
        .arg(&out));
    assert_eq!(tree_files(&out.join("src")), tree_files(&src));
    // Prune clears what the killed runs left behind.
    ok(env.repo(repo_s, "pw").arg("prune"));
    let (_, _, warnings) = run(env.repo(repo_s, "pw").arg("check"));
    assert!(!warnings.contains("in no index"), "{warnings}");
}

#[test]
fn the_s3_backend_works_against_a_real_s3_server() {
    let s3 = S3Server::start().unwrap();
    s3.create_bucket("backups").unwrap();
    let env = Env::new();
    let spec = "s3://backups/team/app";
    let with_s3 = |cmd: &mut Command| {
        for (k, v) in s3.env() {
            cmd.env(k, v);
        }
    };
    let src = env.path("src");
    make_source(&src, 5, 3, 2_000_000);
    let mut init = env.repo(spec, "pw");
    with_s3(&mut init);
    ok(init.arg("init"));
    let mut backup = env.repo(spec, "pw");
    with_s3(&mut backup);
    ok(backup.arg("backup").arg(&src));
    let mut again = env.repo(spec, "pw");
    with_s3(&mut again);
    let (code, _, err) = run(again.arg("init"));
    assert_eq!(code, 1, "{err}");
    let mut check = env.repo(spec, "pw");
    with_s3(&mut check);
    ok(check.args(["check", "--read-data"]));
    let out = env.path("out");
    let mut restore = env.repo(spec, "pw");
    with_s3(&mut restore);
    ok(restore.args(["restore", "latest", "--target"]).arg(&out));
    assert_eq!(tree_files(&out.join("src")), tree_files(&src));
    let mut wrong = env.repo(spec, "nope");
    with_s3(&mut wrong);
    let (code, _, err) = run(wrong.arg("snapshots"));
    assert_eq!(code, 1);
    assert!(err.contains("wrong password"), "{err}");
}

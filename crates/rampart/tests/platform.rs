//! The real binary on a temporary data directory, driven through the CLI
//! and over HTTPS.

use std::process::Command;

use rampart_testkit::{Sandbox, Server, contains, files_under, ok, run, sql};
use serde_json::Value;

fn sandbox() -> Sandbox {
    Sandbox::new(env!("CARGO_BIN_EXE_rampart"))
}

/// A CLI command that reaches `server` through the environment.
fn cli(sandbox: &Sandbox, server: &Server, token: &str) -> Command {
    let mut cmd = sandbox.command();
    cmd.env("RAMPART_SERVER", server.url())
        .env("RAMPART_CA", server.ca_path())
        .env("RAMPART_TOKEN", token);
    cmd
}

fn fails(cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_ne!(code, 0, "command should fail: {cmd:?}\nstdout: {out}");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    err
}

#[test]
fn apps_lifecycle_through_login_and_the_cli() {
    let sb = sandbox();
    let config = sb.write_config("");
    let server = sb.start(&config).unwrap();
    let out = server.output();
    assert!(out.contains("bootstrap-token"), "{out}");
    assert!(
        !out.contains(&server.bootstrap_token()),
        "the token is never printed"
    );

    let login = ok(sb
        .command()
        .args(["login", "--server", &server.url(), "--ca"])
        .arg(server.ca_path())
        .arg("--token-file")
        .arg(server.token_file()));
    assert!(login.contains("owner@localhost"), "{login}");
    let stored = sb.home().join(".config/rampart/credentials.toml");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&stored).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // From here on the stored login is used.
    let rampart = || sb.command();
    ok(rampart().args(["apps", "create", "shop"]));
    ok(rampart().args([
        "apps",
        "create",
        "blog",
        "--domain",
        "blog.example.com",
        "--domain",
        "www.blog.example.com",
    ]));
    let listed: Value =
        serde_json::from_str(&ok(rampart().args(["apps", "list", "--json"]))).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blog", "shop"]);
    let shown: Value =
        serde_json::from_str(&ok(rampart().args(["apps", "show", "blog", "--json"]))).unwrap();
    assert_eq!(
        shown["domains"],
        serde_json::json!(["blog.example.com", "www.blog.example.com"])
    );
    let table = ok(rampart().args(["apps", "list"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("shop.localhost"), "{table}");

    let err = fails(rampart().args(["apps", "create", "shop"]));
    assert!(err.contains("already exists"), "{err}");
    let err = fails(rampart().args(["apps", "create", "Shop_1"]));
    assert!(err.contains("only lowercase letters"), "{err}");
    let err = fails(rampart().args(["apps", "show", "nope"]));
    assert!(err.contains("no app named \"nope\""), "{err}");
    let err = fails(rampart().args(["apps", "delete", "shop"]));
    assert!(err.contains("--yes"), "{err}");

    ok(rampart().args(["apps", "delete", "shop", "--yes"]));
    let listed: Value =
        serde_json::from_str(&ok(rampart().args(["apps", "list", "--json"]))).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Logging out of an API-token login forgets it here but does not
    // revoke it: the bootstrap token may be the owner's only way in.
    let out = ok(rampart().arg("logout"));
    assert!(out.contains("stays valid"), "{out}");
    assert!(!stored.exists());
    let err = fails(rampart().args(["apps", "list"]));
    assert!(err.contains("not logged in"), "{err}");
    ok(cli(&sb, &server, &server.bootstrap_token()).args(["apps", "list"]));

    let (status, _) = server.stop().unwrap();
    assert!(status.success(), "SIGTERM ends with exit 0: {status}");
}

#[test]
fn secrets_stay_out_of_the_database_and_logs_and_survive_a_restart() {
    let sb = sandbox();
    let config = sb.write_config("[log]\nlevel = \"debug\"\n");
    let server = sb.start(&config).unwrap();
    let token = server.bootstrap_token();
    let secret_arg = "arg-secret-3f9c1d2e7b";
    let secret_stdin = "stdin-secret-8a7b6c5d4e";

    ok(cli(&sb, &server, &token).args(["apps", "create", "shop"]));
    let out = ok(cli(&sb, &server, &token).args([
        "env",
        "set",
        "shop",
        &format!("API_KEY={secret_arg}"),
        "DEBUG=1",
    ]));
    assert!(!out.contains(secret_arg));
    let mut stdin_cmd = cli(&sb, &server, &token);
    stdin_cmd.args(["env", "set", "shop", "DB_PASSWORD"]);
    stdin_cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = stdin_cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{secret_stdin}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());

    let names = ok(cli(&sb, &server, &token).args(["env", "list", "shop"]));
    assert!(
        names.contains("API_KEY") && names.contains("DB_PASSWORD"),
        "{names}"
    );
    assert!(!names.contains(secret_arg) && !names.contains(secret_stdin));

    let (status, log) = server.stop().unwrap();
    assert!(status.success());
    assert!(log.contains("DEBUG"), "debug logging was on: {log}");
    for secret in [secret_arg, secret_stdin] {
        assert!(!log.contains(secret), "a secret reached the log");
        for (path, bytes) in files_under(&sb.data_dir()) {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{secret} found in {}",
                path.display()
            );
        }
    }

    // A restart keeps apps, names and values, and the chain still holds.
    let server = sb.start(&config).unwrap();
    assert!(!server.output().contains("first start"));
    let revealed: Value = serde_json::from_str(&ok(
        cli(&sb, &server, &token).args(["env", "list", "shop", "--reveal", "--json"])
    ))
    .unwrap();
    assert_eq!(revealed["API_KEY"], secret_arg);
    assert_eq!(revealed["DB_PASSWORD"], secret_stdin);
    assert_eq!(revealed["DEBUG"], "1");
    let verify = ok(cli(&sb, &server, &token).args(["audit", "verify"]));
    assert!(verify.contains("intact"), "{verify}");
    let audit: Value = serde_json::from_str(&ok(
        cli(&sb, &server, &token).args(["audit", "list", "--json"])
    ))
    .unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "system.bootstrap",
            "app.create",
            "env.set",
            "env.set",
            "env.reveal"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_names_the_first_edited_removed_or_reordered_entry() {
    let sb = sandbox();
    let config = sb.write_config("");
    let server = sb.start(&config).unwrap();
    let token = server.bootstrap_token();
    for name in ["a", "b", "c", "d"] {
        ok(cli(&sb, &server, &token).args(["apps", "create", name]));
    }
    ok(cli(&sb, &server, &token).args(["audit", "verify"]));
    let db = sb.data_dir().join("rampart.db");
    let verify = |sb: &Sandbox, server: &Server| {
        let (code, out, err) = run(cli(sb, server, &token).args(["audit", "verify"]));
        (code, format!("{out}{err}"))
    };

    // An edit made behind the platform's back, with the server running.
    sql(&db, "UPDATE audit_log SET outcome = 'denied' WHERE seq = 3").await;
    let (code, text) = verify(&sb, &server);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("entry 3") && text.contains("edited"),
        "{text}"
    );
    sql(&db, "UPDATE audit_log SET outcome = 'ok' WHERE seq = 3").await;
    assert_eq!(verify(&sb, &server).0, 0);

    // A removed entry in the middle.
    sql(&db, "CREATE TABLE saved AS SELECT * FROM audit_log WHERE seq = 2; DELETE FROM audit_log WHERE seq = 2").await;
    let (code, text) = verify(&sb, &server);
    assert_eq!(code, 1);
    assert!(
        text.contains("entry 3") && text.contains("removed"),
        "{text}"
    );
    sql(
        &db,
        "INSERT INTO audit_log SELECT * FROM saved; DROP TABLE saved",
    )
    .await;
    assert_eq!(verify(&sb, &server).0, 0);

    // Two entries swapped.
    sql(&db, "UPDATE audit_log SET seq = -1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = -1").await;
    let (code, text) = verify(&sb, &server);
    assert_eq!(code, 1);
    assert!(text.contains("entry 2"), "{text}");
    sql(&db, "UPDATE audit_log SET seq = -1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = -1").await;
    assert_eq!(verify(&sb, &server).0, 0);

    // Entries cut off the end are caught by the head checkpoint.
    let entries: i64 = {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let n = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    };
    sql(&db, &format!("DELETE FROM audit_log WHERE seq = {entries}")).await;
    let (code, text) = verify(&sb, &server);
    assert_eq!(code, 1);
    assert!(text.contains("removed from the end"), "{text}");
}

#[test]
fn a_missing_or_corrupt_master_key_stops_the_start_and_is_not_replaced() {
    let sb = sandbox();
    let config = sb.write_config("");
    let server = sb.start(&config).unwrap();
    let token = server.bootstrap_token();
    ok(cli(&sb, &server, &token).args(["apps", "create", "shop"]));
    ok(cli(&sb, &server, &token).args(["env", "set", "shop", "K=v"]));
    server.stop().unwrap();
    let key = sb.data_dir().join("master.key");
    let original = std::fs::read(&key).unwrap();

    std::fs::write(&key, b"rampart-master-key v1\nnot hex at all\n").unwrap();
    let out = sb.start_expecting_failure(&config).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("master.key is corrupt"), "{err}");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        b"rampart-master-key v1\nnot hex at all\n"
    );

    // A well-formed key that is not the one the data was sealed with.
    std::fs::write(
        &key,
        format!("rampart-master-key v1\n{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let out = sb.start_expecting_failure(&config).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match"), "{err}");

    std::fs::remove_file(&key).unwrap();
    let out = sb.start_expecting_failure(&config).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master.key is missing"), "{err}");
    assert!(!key.exists(), "no new key over existing data");

    std::fs::write(&key, &original).unwrap();
    let server = sb.start(&config).unwrap();
    let revealed = ok(cli(&sb, &server, &token).args(["env", "list", "shop", "--reveal"]));
    assert_eq!(revealed.trim(), "K=v");
}

/// Without `--config`, `rampart up` reads the `rampart.toml` of its working
/// directory and says which file it read; a broken one there is refused
/// like a named one, before anything is created.
#[test]
fn up_reads_the_rampart_toml_of_its_working_directory() {
    let sb = sandbox();
    let project = sb.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let up = || {
        let mut cmd = sb.command();
        cmd.current_dir(&project)
            .arg("up")
            .arg("--data-dir")
            .arg(sb.data_dir());
        cmd
    };

    std::fs::write(project.join("rampart.toml"), "[log]\nlevel = \"loud\"\n").unwrap();
    let out = up().output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("rampart.toml: log.level"), "{err}");
    assert!(
        !sb.data_dir().exists(),
        "nothing is created for a bad config"
    );

    std::fs::copy(sb.write_config(""), project.join("rampart.toml")).unwrap();
    let mut cmd = up();
    cmd.env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = rampart_testkit::Server::spawn_command(cmd, sb.data_dir()).unwrap();
    assert!(
        server
            .output()
            .contains("rampart: configuration read from rampart.toml"),
        "{}",
        server.output()
    );
    server.stop().unwrap();
}

#[test]
fn a_bad_config_names_the_key_and_creates_nothing() {
    let sb = sandbox();
    for (text, expected) in [
        (
            "[api]\nlisten = \"127.0.0.1:0\"\nmax_body = 3\n",
            "unknown field `max_body`",
        ),
        ("[api]\nlisten = \"localhost\"\n", "api.listen"),
        ("[log]\nlevel = \"loud\"\n", "log.level"),
        ("[bootstrap]\nowner_email = 3\n", "bootstrap.owner_email"),
        ("[api]\n\n\u{0}garbage", "line 3"),
        ("[auth]\nsession_hours = 0\n", "auth.session_hours"),
        ("[auth]\nrequire_mfa = \"yes\"\n", "auth.require_mfa"),
        ("[auth]\nmfa = true\n", "unknown field `mfa`"),
        ("[api]\nmax_context_bytes = 1\n", "api.max_context_bytes"),
        ("[edge.limits]\nburst = 0\n", "[edge] limits.burst"),
        (
            "[edge.listen]\nhttps = \"nowhere\"\n",
            "[edge] listen.https",
        ),
        ("[edge]\nflood = 1\n", "[edge]"),
        (
            "[[edge.site]]\nhosts = [\"a.test\"]\nupstreams = [\"127.0.0.1:1\"]\n",
            "sites come from apps",
        ),
    ] {
        let path = sb.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = sb.start_expecting_failure(&path).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(expected), "{text:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            !sb.data_dir().exists(),
            "nothing is created for a bad config"
        );
    }
}

#[test]
fn tokens_are_shown_once_and_revocation_takes_effect() {
    let sb = sandbox();
    let config = sb.write_config("");
    let server = sb.start(&config).unwrap();
    let owner = server.bootstrap_token();
    let created: Value = serde_json::from_str(&ok(
        cli(&sb, &server, &owner).args(["tokens", "create", "ci", "--json"])
    ))
    .unwrap();
    let ci = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    ok(cli(&sb, &server, &ci).args(["apps", "list"]));
    let listed = ok(cli(&sb, &server, &owner).args(["tokens", "list", "--json"]));
    assert!(!listed.contains(&ci), "listing never shows a token's value");
    for (_, bytes) in files_under(&sb.data_dir()) {
        assert!(
            !contains(&bytes, ci.as_bytes()),
            "only a hash of the token is stored"
        );
    }
    ok(cli(&sb, &server, &owner).args(["tokens", "revoke", &id]));
    let err = fails(cli(&sb, &server, &ci).args(["apps", "list"]));
    assert!(err.contains("revoked") && err.contains("401"), "{err}");
    let err = fails(cli(&sb, &server, &owner).args(["tokens", "revoke", &id]));
    assert!(err.contains("no active token"), "{err}");
}

#[test]
fn a_client_refuses_a_server_it_does_not_trust() {
    let sb = sandbox();
    let config = sb.write_config("");
    let server = sb.start(&config).unwrap();
    let other = sandbox();
    let other_server = other.start(&other.write_config("")).unwrap();
    let token = server.bootstrap_token();
    let mut cmd = cli(&sb, &server, &token);
    cmd.env("RAMPART_CA", other_server.ca_path());
    let err = fails(cmd.args(["apps", "list"]));
    assert!(err.contains("cannot reach"), "{err}");
    let mut cmd = cli(&sb, &server, &token);
    cmd.env("RAMPART_SERVER", server.url().replace("https", "http"));
    let err = fails(cmd.args(["apps", "list"]));
    assert!(err.contains("https://"), "{err}");
}

#[test]
fn the_api_speaks_only_tls() {
    use std::io::{Read, Write};
    let sb = sandbox();
    let server = sb.start(&sb.write_config("")).unwrap();
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        !contains(&answer, b"HTTP/1."),
        "plain HTTP got an HTTP answer: {answer:?}"
    );
    // The same request over TLS works, and needs no token.
    let health = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(server.client(None).health())
        .unwrap();
    assert_eq!(health.status, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_bad_tokens_is_throttled_and_does_not_grow_the_audit_log() {
    let sb = sandbox();
    let server = sb.start(&sb.write_config("")).unwrap();
    let owner = server.client(Some(&server.bootstrap_token()));
    let before = owner.audit(10_000).await.unwrap().len();
    let garbage = server.client(Some("rmp_not-a-real-token"));
    let mut statuses = Vec::new();
    for _ in 0..45 {
        let (status, _) = garbage
            .raw(
                rampart_client::HttpMethod::POST,
                "/api/apps",
                Some("application/json"),
                br#"{"name": "flood"}"#.to_vec(),
            )
            .await
            .unwrap();
        statuses.push(status.as_u16());
    }
    let refused = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(refused + throttled, 45, "{statuses:?}");
    assert!((25..=31).contains(&refused), "{statuses:?}");
    assert!(statuses.ends_with(&[429, 429, 429]), "{statuses:?}");
    // Each refusal before the quota is audited; the flood beyond it is not.
    let after = owner.audit(10_000).await.unwrap();
    let denied = after[before..]
        .iter()
        .filter(|e| e.action == "app.create" && e.outcome.as_str() == "denied")
        .count();
    assert_eq!(denied, refused);
    // A valid token from the same address is not affected.
    assert!(owner.apps().await.unwrap().is_empty());
}

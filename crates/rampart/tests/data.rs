//! Managed data through the real binary, the real Docker engine and the
//! host's real PostgreSQL: each app's database and media are its own, TLS
//! is required, and backups restore exactly; schedules, retention and test
//! restores run by themselves and report damage.
//!
//! Long by choice: every file under `tests/` is a test binary of its own,
//! linked on its own, so an area's tests share one file and one link
//! rather than paying for a binary each.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use rampart_services::cluster::find_bin_dir;
use rampart_services::postgres::{Admin, Server as PgServer, TableSum, connect_tls};
use rampart_testkit::{Sandbox, Server, free_port, ok, run};
use serde_json::Value;

/// A platform with a managed cluster on a free port and a backup
/// repository beside (not inside) its data directory.
fn start(sb: &Sandbox) -> (Server, u16) {
    let port = free_port();
    let config = sb.write_config(&format!(
        "{CONFIG}[postgres]\nport = {port}\n[backup]\nrepository = \"{}\"\nkey_file = \"{}\"\n",
        sb.path().join("backups").display(),
        sb.path().join("backup.key").display(),
    ));
    (sb.start(&config).unwrap(), port)
}

fn admin(sb: &Sandbox, port: u16) -> Admin {
    Admin::new(
        PgServer::Socket {
            dir: sb.data_dir().join("postgres/run"),
            port,
        },
        find_bin_dir().unwrap(),
    )
}

/// One runtime for the test binary: database connections run on it
/// between calls.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Connects as `role` with `password` to `database` at `host:port`, over
/// TLS trusting the platform's CA (or without TLS).
fn connect(
    server: &Server,
    host: &str,
    port: u16,
    role: &str,
    password: &str,
    database: &str,
    tls: bool,
) -> Result<tokio_postgres::Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(role)
        .password(password)
        .dbname(database)
        .connect_timeout(Duration::from_secs(5));
    let ca = String::from_utf8(server.ca_pem()).unwrap();
    runtime().block_on(async move {
        if tls {
            connect_tls(&config, &ca).await.map_err(|e| e.to_string())
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            match config.connect(tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    Ok(client)
                }
                Err(e) => Err(rampart_services::ServiceError::from(e).to_string()),
            }
        }
    })
}

/// A session of the test's own on `db` as the managed cluster's superuser,
/// over its socket.
fn superuser(sb: &Sandbox, port: u16, db: &str) -> tokio_postgres::Client {
    runtime().block_on(async {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(sb.data_dir().join("postgres/run"))
            .port(port)
            .user("rampart")
            .dbname(db);
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    })
}

/// The test's own view of a database's tables, read as the cluster's
/// superuser (the test trusts what it planted; the platform never does).
fn fingerprint(sb: &Sandbox, port: u16, db: &str) -> Vec<TableSum> {
    let client = superuser(sb, port, db);
    runtime()
        .block_on(rampart_services::postgres::fingerprint(&client))
        .unwrap()
}

/// Creates `app` with its database and connects to it as the app's own
/// role over TLS, as the app's code (or an SQL injection in it) would.
fn create_and_connect_as_app(
    sb: &Sandbox,
    server: &Server,
    port: u16,
    app: &str,
) -> (tokio_postgres::Client, String) {
    ok(cli(sb, server).args(["apps", "create", app, "--with-db"]));
    let db = json(cli(sb, server).args(["db", "info", app, "--reveal"]));
    let (host, password) = (
        db["host"].as_str().unwrap().to_owned(),
        db["password"].as_str().unwrap().to_owned(),
    );
    let role = format!("app_{app}");
    let client = connect(server, &host, port, &role, &password, &role, true).unwrap();
    (client, password)
}

fn post(client: &reqwest::blocking::Client, url: &str, body: &str) -> (u16, String) {
    let r = client.post(url).body(body.to_owned()).send().unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn put(client: &reqwest::blocking::Client, url: &str, body: &[u8]) -> (u16, String) {
    let r = client.put(url).body(body.to_vec()).send().unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// `rampart ARGS` expected to fail: its stderr.
fn fails(cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_ne!(code, 0, "expected a failure, got: {out}");
    err
}

fn snapshots(sb: &Sandbox, server: &Server, app: &str) -> Vec<Value> {
    json(cli(sb, server).args(["backup", "list", app]))
        .as_array()
        .unwrap()
        .clone()
}

fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn databases_and_media_are_each_apps_own_and_backups_restore_exactly() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["blog".into(), "shop".into()]);
    let (server, port) = start(&sb);
    for app in ["blog", "shop"] {
        let out = ok(cli(&sb, &server).args(["apps", "create", app, "--with-db"]));
        assert!(out.contains("database is ready"), "{out}");
        let dir = context(&sb.path().join(format!("ctx-{app}")), "");
        ok(cli(&sb, &server).args(["deploy", app, "--path"]).arg(&dir));
    }

    // The app reads and writes its table and its media through the edge.
    let blog = edge_client(&server, "blog.localhost");
    let blog_url = app_url(&server, "blog.localhost");
    for i in 1..=5 {
        let (status, body) = post(&blog, &format!("{blog_url}notes"), &format!("post {i}"));
        assert_eq!(
            (status, body.as_str()),
            (200, format!("{i} notes\n").as_str())
        );
    }
    let logo = b"an image, byte for byte \x00\x01\x02";
    let (status, body) = put(&blog, &format!("{blog_url}media/logo.png"), logo);
    assert_eq!(status, 200, "{body}");
    let shop = edge_client(&server, "shop.localhost");
    let shop_url = app_url(&server, "shop.localhost");
    for i in 1..=2 {
        assert_eq!(
            post(&shop, &format!("{shop_url}notes"), "order").0,
            200,
            "{i}"
        );
    }
    // Media live in the app's own folder, owned by the replicas' user.
    let media = sb.data_dir().join("media/blog");
    assert_eq!(std::fs::read(media.join("logo.png")).unwrap(), logo);
    assert!(files(&sb.data_dir().join("media/shop")).is_empty());

    // Replicas got their URL with TLS required; the root file system stays
    // read-only and only /data/media is mounted writable.
    for id in containers("blog") {
        let c = inspect(&id);
        let env = c["Config"]["Env"].as_array().unwrap();
        let url = env
            .iter()
            .filter_map(Value::as_str)
            .find_map(|e| e.strip_prefix("DATABASE_URL="))
            .expect("DATABASE_URL is injected");
        assert!(url.contains("sslmode=verify-full"), "{url}");
        assert!(env.iter().any(|e| e == "MEDIA_ROOT=/data/media"));
        assert_eq!(c["HostConfig"]["ReadonlyRootfs"], true);
        let mounts = c["Mounts"].as_array().unwrap();
        let writable: Vec<&str> = mounts
            .iter()
            .filter(|m| m["RW"] == true)
            .map(|m| m["Destination"].as_str().unwrap())
            .collect();
        assert_eq!(writable, ["/data/media"], "{mounts:?}");
    }

    // Database info: no password unless revealed, and the reveal is audited.
    let info = json(cli(&sb, &server).args(["db", "info", "blog"]));
    assert!(info.get("password").is_none(), "{info}");
    let blog_db = json(cli(&sb, &server).args(["db", "info", "blog", "--reveal"]));
    let shop_db = json(cli(&sb, &server).args(["db", "info", "shop", "--reveal"]));
    let audit = ok(cli(&sb, &server).args(["audit", "list"]));
    assert!(audit.contains("app.database.reveal"), "{audit}");
    let s = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let (blog_host, blog_pw) = (s(&blog_db, "host"), s(&blog_db, "password"));
    let (shop_host, shop_pw) = (s(&shop_db, "host"), s(&shop_db, "password"));
    assert_ne!(blog_host, shop_host, "each app has its own network");

    // Each role reaches its own database over TLS from its own network (the
    // host's address on that network is inside it) …
    let c = connect(
        &server, &blog_host, port, "app_blog", &blog_pw, "app_blog", true,
    )
    .unwrap();
    let rows = runtime()
        .block_on(c.query_one("SELECT count(*) FROM notes", &[]))
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), 5);
    // … and nothing else: not the other app's database, not from the other
    // app's network, not the admin, not without TLS.
    let refused = [
        connect(
            &server, &blog_host, port, "app_blog", &blog_pw, "app_shop", true,
        ),
        connect(
            &server, &shop_host, port, "app_blog", &blog_pw, "app_shop", true,
        ),
        connect(
            &server, &blog_host, port, "app_shop", &shop_pw, "app_shop", true,
        ),
        connect(
            &server, &blog_host, port, "app_shop", &blog_pw, "app_blog", true,
        ),
        connect(&server, &blog_host, port, "rampart", "x", "postgres", true),
        connect(
            &server, &blog_host, port, "app_blog", &blog_pw, "app_blog", false,
        ),
    ];
    for (i, attempt) in refused.into_iter().enumerate() {
        let err = attempt
            .err()
            .unwrap_or_else(|| panic!("attempt {i} was let in"));
        assert!(
            err.contains("pg_hba.conf") || err.contains("no encryption"),
            "attempt {i}: {err}"
        );
    }
    // The cluster listens on app networks and its socket, never on a public
    // address or loopback.
    assert!(
        connect(
            &server,
            "127.0.0.1",
            port,
            "app_blog",
            &blog_pw,
            "app_blog",
            true
        )
        .is_err()
    );

    // Backup, then a restore over live data is refused without --force.
    let before = fingerprint(&sb, port, "app_blog");
    assert_eq!(before[0].rows, 5);
    let record = json(cli(&sb, &server).args(["backup", "run", "blog"]));
    assert_eq!(record["ok"], true, "{record}");
    let snap = s(&record, "snapshot");
    let listed = snapshots(&sb, &server, "blog");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], snap.as_str());
    assert_eq!(listed[0]["release"], 1);
    assert_eq!(
        (
            &listed[0]["tables"],
            &listed[0]["rows"],
            &listed[0]["media_files"]
        ),
        (&Value::from(1), &Value::from(5), &Value::from(1)),
        "{listed:?}"
    );
    let err = fails(cli(&sb, &server).args(["backup", "restore", "blog", &snap[..12]]));
    assert!(
        err.contains("live data") && err.contains("--force"),
        "{err}\n{}",
        server.output()
    );
    assert_eq!(
        fingerprint(&sb, port, "app_blog"),
        before,
        "nothing changed"
    );

    // A snapshot of another app is refused without --into.
    let err = fails(cli(&sb, &server).args(["backup", "restore", "shop", &snap[..12]]));
    assert!(err.contains("belongs to"), "{err}");
    let shop_before = fingerprint(&sb, port, "app_shop");
    assert_eq!(shop_before[0].rows, 2);

    // Destroy the data, restore, get identical tables and media.
    runtime()
        .block_on(c.batch_execute("DROP TABLE notes"))
        .unwrap();
    drop(c);
    std::fs::remove_file(media.join("logo.png")).unwrap();
    assert_eq!(get(&blog, &format!("{blog_url}notes")).0, 503);
    let restored = json(cli(&sb, &server).args(["backup", "restore", "blog", &snap[..12]]));
    assert_eq!(restored["rows"], 5, "{restored}");
    assert!(restored.get("safety_snapshot").is_none());
    assert_eq!(fingerprint(&sb, port, "app_blog"), before);
    assert_eq!(std::fs::read(media.join("logo.png")).unwrap(), logo);
    let (status, body) = get(&blog, &format!("{blog_url}notes"));
    assert_eq!((status, body.as_str()), (200, "5 notes\n"));
    let served = blog
        .get(format!("{blog_url}media/logo.png"))
        .send()
        .unwrap();
    assert_eq!(served.bytes().unwrap().as_ref(), logo);
    // The restored tables belong to the app's role, which keeps writing.
    assert_eq!(
        post(&blog, &format!("{blog_url}notes"), "after").1,
        "6 notes\n"
    );

    // --force over live data takes a safety snapshot first.
    let forced =
        json(cli(&sb, &server).args(["backup", "restore", "blog", &snap[..12], "--force"]));
    let safety = s(&forced, "safety_snapshot");
    assert_eq!(fingerprint(&sb, port, "app_blog"), before);
    let listed = snapshots(&sb, &server, "blog");
    assert!(
        listed
            .iter()
            .any(|x| x["id"] == safety.as_str() && x["reason"] == "safety")
    );

    // Into another app: its live data needs --force too.
    let err =
        fails(cli(&sb, &server).args(["backup", "restore", "blog", &snap[..12], "--into", "shop"]));
    assert!(err.contains("live data"), "{err}");
    assert_eq!(fingerprint(&sb, port, "app_shop"), shop_before);
    json(cli(&sb, &server).args([
        "backup",
        "restore",
        "blog",
        &snap[..12],
        "--into",
        "shop",
        "--force",
    ]));
    assert_eq!(fingerprint(&sb, port, "app_shop"), before);
    let (status, body) = get(&shop, &format!("{shop_url}notes"));
    assert_eq!((status, body.as_str()), (200, "5 notes\n"));
    assert_eq!(
        std::fs::read(sb.data_dir().join("media/shop/logo.png")).unwrap(),
        logo
    );

    let results = json(cli(&sb, &server).args(["backup", "results", "blog"]));
    let kinds: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"backup") && kinds.contains(&"restore"),
        "{kinds:?}"
    );
    let audit = ok(cli(&sb, &server).args(["audit", "verify"]));
    assert!(
        audit.contains("ok") || audit.contains("verified"),
        "{audit}"
    );

    // Deleting an app drops its database and role and removes its media.
    ok(cli(&sb, &server).args(["apps", "delete", "shop", "--yes"]));
    assert!(
        !runtime()
            .block_on(admin(&sb, port).database_exists("app_shop"))
            .unwrap()
    );
    assert!(!sb.data_dir().join("media/shop").exists());
    server.stop().unwrap();
}

#[test]
fn schedules_keep_what_retention_says_and_test_restores_catch_damage() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["wiki".into()]);
    let (server, port) = start(&sb);
    let (c, _) = create_and_connect_as_app(&sb, &server, port, "wiki");
    runtime()
        .block_on(c.batch_execute(
            "CREATE TABLE pages (id serial PRIMARY KEY, title text, body text);
             INSERT INTO pages (title, body) SELECT 'page ' || g, repeat('words ', g) FROM generate_series(1, 300) g;",
        ))
        .unwrap();
    let media = sb.data_dir().join("media/wiki");
    std::fs::create_dir_all(media.join("img")).unwrap();
    std::fs::write(media.join("img/a.bin"), vec![7u8; 100_000]).unwrap();

    // Bad schedules change nothing.
    for bad in [
        vec!["--every", "0s", "--keep-last", "2"],
        vec!["--every", "soon", "--keep-last", "2"],
        vec!["--every", "3s"],
        vec!["--every", "3s", "--keep-last", "2", "--verify", "1y"],
    ] {
        fails(
            cli(&sb, &server)
                .args(["backup", "schedule", "wiki"])
                .args(&bad),
        );
    }
    fails(cli(&sb, &server).args(["backup", "schedule", "wiki"]));

    ok(cli(&sb, &server).args([
        "backup",
        "schedule",
        "wiki",
        "--every",
        "3s",
        "--keep-last",
        "2",
        "--verify",
        "5s",
    ]));
    let results = || -> Vec<Value> {
        json(cli(&sb, &server).args(["backup", "results", "wiki"]))
            .as_array()
            .unwrap()
            .clone()
    };
    let count = |rs: &[Value], kind: &str| {
        rs.iter()
            .filter(|r| r["kind"] == kind && r["ok"] == true)
            .count()
    };
    eventually(
        Duration::from_secs(90),
        "four scheduled backups and a test restore",
        || {
            let rs = results();
            count(&rs, "backup") >= 4 && count(&rs, "verify") >= 1 && count(&rs, "retention") >= 2
        },
    );
    ok(cli(&sb, &server).args(["backup", "schedule", "wiki", "--remove"]));
    // Let a run that was under way finish.
    std::thread::sleep(Duration::from_secs(3));
    let rs = results();
    assert!(rs.iter().all(|r| r["ok"] == true), "{rs:?}");
    let backups: Vec<String> = rs
        .iter()
        .filter(|r| r["kind"] == "backup")
        .map(|r| r["snapshot"].as_str().unwrap().to_owned())
        .collect();
    let kept: Vec<String> = snapshots(&sb, &server, "wiki")
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kept,
        backups[backups.len() - 2..],
        "retention keeps the last two"
    );
    let verify = rs.iter().find(|r| r["kind"] == "verify").unwrap();
    assert!(
        verify["detail"].as_str().unwrap().contains("300 rows"),
        "{verify}"
    );

    // A manual test restore passes, then fails once the repository's data
    // is damaged, and the failure is recorded and raised as an app event.
    let record = json(cli(&sb, &server).args(["backup", "verify", "wiki"]));
    assert_eq!(record["ok"], true, "{record}");
    let data = sb.path().join("backups/data");
    let mut damaged = 0;
    for entry in walk(&data) {
        let mut bytes = std::fs::read(&entry).unwrap();
        if bytes.len() > 200 {
            let at = bytes.len() / 2;
            bytes[at] ^= 0xff;
            std::fs::write(&entry, bytes).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    let (code, out, _) = run(cli(&sb, &server).args(["backup", "verify", "wiki", "--json"]));
    assert_ne!(code, 0, "{out}");
    let record: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["ok"], false, "{record}");
    let rs = results();
    let last = rs.last().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["ok"].as_bool()),
        (Some("verify"), Some(false))
    );
    let ps = ok(cli(&sb, &server).args(["ps", "wiki"]));
    assert!(ps.contains("verify_failed"), "{ps}");
    let firing = |rule: &str| {
        json(cli(&sb, &server).args(["alerts", "list"]))
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == rule && a["app"] == "wiki")
    };
    assert!(
        firing("verify_failed"),
        "a failed test restore raises an alert"
    );
    // A restore from the damaged repository fails before it touches the
    // live database or media.
    let live_tables = fingerprint(&sb, port, "app_wiki");
    let live_media = std::fs::read(media.join("img/a.bin")).unwrap();
    let newest = kept.last().unwrap();
    let err =
        fails(cli(&sb, &server).args(["backup", "restore", "wiki", &newest[..12], "--force"]));
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(fingerprint(&sb, port, "app_wiki"), live_tables);
    assert_eq!(std::fs::read(media.join("img/a.bin")).unwrap(), live_media);

    // An unreachable repository or a wrong key: recorded as failed with the
    // reason, and no snapshot appears.
    let before = rs.len();
    let moved = sb.path().join("backups-away");
    std::fs::rename(sb.path().join("backups"), &moved).unwrap();
    let err = fails(cli(&sb, &server).args(["backup", "run", "wiki"]));
    assert!(err.contains("unreachable"), "{err}");
    assert!(firing("backup_failed"), "a failed backup raises an alert");
    assert!(
        !sb.path().join("backups").exists(),
        "nothing was created in its place"
    );
    std::fs::rename(&moved, sb.path().join("backups")).unwrap();
    let key = sb.path().join("backup.key");
    let real_key = std::fs::read(&key).unwrap();
    std::fs::write(&key, "not the key\n").unwrap();
    let err = fails(cli(&sb, &server).args(["backup", "run", "wiki"]));
    assert!(err.contains("password") || err.contains("key"), "{err}");
    std::fs::write(&key, real_key).unwrap();
    let rs = results();
    assert_eq!(rs.len(), before + 2);
    for r in &rs[before..] {
        assert_eq!(
            (r["kind"].as_str(), r["ok"].as_bool()),
            (Some("backup"), Some(false))
        );
        assert!(r["snapshot"].is_null(), "{r}");
    }
    assert_eq!(snapshots(&sb, &server, "wiki").len(), 2);
    server.stop().unwrap();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_backup_repository_inside_the_data_directory_is_refused() {
    let sb = sandbox();
    let config = sb.write_config(&format!(
        "[backup]\nrepository = \"{}\"\nkey_file = \"{}\"\n",
        sb.data_dir().join("backups").display(),
        sb.path().join("backup.key").display(),
    ));
    let out = sb.start_expecting_failure(&config).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("inside the data directory"), "{err}");
    assert!(!sb.data_dir().exists(), "nothing was created");
}

/// The value of `name` in a container's environment.
fn container_env(id: &str, name: &str) -> Option<String> {
    let c = inspect(id);
    c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find_map(|e| e.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

#[test]
fn media_on_s3_get_a_bucket_and_key_per_app_and_restore_exactly() {
    use object_store::ObjectStore;
    use object_store::path::Path as Key;
    use rampart_services::s3::S3Admin;

    let sb = sandbox();
    let _cleanup = Cleanup(vec!["photos".into(), "notes".into()]);
    let (s3, admin) = rampart_testkit::S3Server::start_with_iam().unwrap();
    let secret_file = sb.path().join("s3-secret");
    std::fs::write(&secret_file, format!("{}\n", admin.secret_access_key)).unwrap();
    let config = sb.write_config(&format!(
        "{CONFIG}[media]\ns3_endpoint = \"{}\"\ns3_access_key_id = \"{}\"\ns3_secret_key_file = \"{}\"\n\
         [backup]\nrepository = \"{}\"\nkey_file = \"{}\"\n",
        s3.endpoint(),
        admin.access_key_id,
        secret_file.display(),
        sb.path().join("backups").display(),
        sb.path().join("backup.key").display(),
    ));
    let server = sb.start(&config).unwrap();
    for app in ["photos", "notes"] {
        ok(cli(&sb, &server).args(["apps", "create", app]));
        let dir = context(&sb.path().join(format!("ctx-{app}")), "");
        ok(cli(&sb, &server).args(["deploy", app, "--path"]).arg(&dir));
    }

    // Each replica has its bucket and key, and no writable mount at all.
    let keys: Vec<(String, String, String)> = ["photos", "notes"]
        .iter()
        .map(|app| {
            let id = &containers(app)[0];
            assert_eq!(container_env(id, "MEDIA_STORAGE").as_deref(), Some("s3"));
            assert!(inspect(id)["Mounts"].as_array().unwrap().is_empty());
            (
                container_env(id, "MEDIA_S3_BUCKET").unwrap(),
                container_env(id, "AWS_ACCESS_KEY_ID").unwrap(),
                container_env(id, "AWS_SECRET_ACCESS_KEY").unwrap(),
            )
        })
        .collect();
    let (photos_bucket, notes_bucket) = (&keys[0].0, &keys[1].0);
    assert!(photos_bucket.ends_with("-photos"), "{photos_bucket}");
    let as_app = |i: usize, bucket: &str| {
        S3Admin::new(s3.endpoint(), "us-east-1", &keys[i].1, &keys[i].2)
            .unwrap()
            .store(bucket)
            .unwrap()
    };
    let rt = runtime();
    let picture = vec![42u8; 70_000];
    let key = Key::from("media/2026/cat.jpg");
    rt.block_on(as_app(0, photos_bucket).put(&key, picture.clone().into()))
        .unwrap();
    rt.block_on(as_app(1, notes_bucket).put(&Key::from("media/n.txt"), b"note".to_vec().into()))
        .unwrap();
    // One app's key opens nothing of the other's.
    assert!(rt.block_on(as_app(1, photos_bucket).get(&key)).is_err());
    assert!(
        rt.block_on(as_app(1, photos_bucket).put(&Key::from("media/x"), b"x".to_vec().into()))
            .is_err()
    );
    assert!(
        rt.block_on(as_app(0, notes_bucket).get(&Key::from("media/n.txt")))
            .is_err()
    );

    // Back up, lose the object, restore it byte for byte.
    let record = json(cli(&sb, &server).args(["backup", "run", "photos"]));
    assert_eq!(record["ok"], true, "{record}");
    let snap = record["snapshot"].as_str().unwrap().to_owned();
    rt.block_on(as_app(0, photos_bucket).delete(&key)).unwrap();
    rt.block_on(as_app(0, photos_bucket).put(&Key::from("media/junk"), b"junk".to_vec().into()))
        .unwrap();
    let err = fails(cli(&sb, &server).args(["backup", "restore", "photos", &snap[..12]]));
    assert!(err.contains("live data"), "{err}");
    let restored =
        json(cli(&sb, &server).args(["backup", "restore", "photos", &snap[..12], "--force"]));
    assert_eq!(restored["media_files"], 1, "{restored}");
    let back = rt
        .block_on(async { as_app(0, photos_bucket).get(&key).await?.bytes().await })
        .unwrap();
    assert_eq!(back.as_ref(), picture.as_slice());
    assert!(
        rt.block_on(as_app(0, photos_bucket).get(&Key::from("media/junk")))
            .is_err(),
        "what the snapshot did not hold is gone"
    );
    let verify = json(cli(&sb, &server).args(["backup", "verify", "photos"]));
    assert_eq!(verify["ok"], true, "{verify}");

    // Deleting the app removes its bucket and its key.
    ok(cli(&sb, &server).args(["apps", "delete", "photos", "--yes"]));
    let admin_store = S3Admin::new(
        s3.endpoint(),
        "us-east-1",
        &admin.access_key_id,
        &admin.secret_access_key,
    )
    .unwrap();
    assert!(
        rt.block_on(admin_store.store(photos_bucket).unwrap().get(&key))
            .is_err()
    );
    server.stop().unwrap();
}

#[test]
fn an_external_server_gets_the_same_provisioning_and_backups() {
    let sb = sandbox();
    let external = rampart_testkit::ExternalPostgres::start().unwrap();
    // The database tools run through wrappers that write down the command
    // line every local user could read in `ps` (finding: the admin URL,
    // password included, was on it).
    let tools = sb.path().join("tools");
    let seen = sb.path().join("command-lines");
    std::fs::create_dir_all(&tools).unwrap();
    for tool in ["pg_dump", "pg_restore"] {
        let wrapper = tools.join(tool);
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$0 $*\" >> '{}'\nexec '{}' \"$@\"\n",
                seen.display(),
                find_bin_dir().unwrap().join(tool).display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let config = sb.write_config(&format!(
        "[postgres]\nmode = \"external\"\nadmin_url = \"{}\"\nca_file = \"{}\"\nbin_dir = \"{}\"\n\
         [backup]\nrepository = \"{}\"\nkey_file = \"{}\"\n",
        external.admin_url,
        external.ca_file.display(),
        tools.display(),
        sb.path().join("backups").display(),
        sb.path().join("backup.key").display(),
    ));
    let server = sb.start(&config).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "ledger", "--with-db"]));
    assert!(
        !sb.data_dir().join("postgres").exists(),
        "no managed cluster"
    );
    let db = json(cli(&sb, &server).args(["db", "info", "ledger", "--reveal"]));
    assert_eq!(db["host"], "127.0.0.1", "{db}");
    assert_eq!(db["port"], external.port, "{db}");
    let url = db["url"].as_str().unwrap();
    assert!(url.contains("sslmode=verify-full"), "{url}");
    let password = db["password"].as_str().unwrap().to_owned();

    // The app's role reaches its database over TLS, verified against the
    // operator's CA.
    let ca = std::fs::read_to_string(&external.ca_file).unwrap();
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(external.port)
        .user("app_ledger")
        .password(password.as_str())
        .dbname("app_ledger");
    let tenant = Admin::new(
        PgServer::External {
            url: external.admin_url.clone(),
            ca_file: external.ca_file.clone(),
            ca_pem: ca.clone(),
        },
        find_bin_dir().unwrap(),
    )
    .tenant("app_ledger", &password)
    .unwrap();
    let rt = runtime();
    let client = rt.block_on(connect_tls(&config, &ca)).unwrap();
    rt.block_on(client.batch_execute(
        "CREATE TABLE entries (id serial PRIMARY KEY, amount numeric);
         INSERT INTO entries (amount) SELECT g * 1.5 FROM generate_series(1, 120) g;",
    ))
    .unwrap();
    let before = rt.block_on(tenant.fingerprint("app_ledger")).unwrap();
    assert_eq!(before[0].rows, 120);

    // Backup by URL, lose the table, restore it exactly.
    let record = json(cli(&sb, &server).args(["backup", "run", "ledger"]));
    assert_eq!(record["ok"], true, "{record}");
    let snap = record["snapshot"].as_str().unwrap().to_owned();
    rt.block_on(client.batch_execute("DROP TABLE entries"))
        .unwrap();
    drop(client);
    json(cli(&sb, &server).args(["backup", "restore", "ledger", &snap[..12]]));
    assert_eq!(
        rt.block_on(tenant.fingerprint("app_ledger")).unwrap(),
        before
    );
    let verify = json(cli(&sb, &server).args(["backup", "verify", "ledger"]));
    assert_eq!(verify["ok"], true, "{verify}");
    // Dumps and restores ran, and no password was on their command lines.
    let lines = std::fs::read_to_string(&seen).unwrap();
    assert!(
        lines.contains("pg_dump") && lines.contains("pg_restore"),
        "{lines}"
    );
    let admin_password = external
        .admin_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .and_then(|auth| auth.split(':').nth(1))
        .unwrap();
    for secret in [admin_password, password.as_str()] {
        assert!(
            !lines.contains(secret),
            "a password on a command line: {lines}"
        );
    }
    server.stop().unwrap();
}

/// As the README runs it: `rampart up` with the data directory given
/// relative to the working directory. Docker volumes and PostgreSQL need
/// whole paths; the app still gets its media and its database.
#[test]
fn a_relative_data_directory_works_for_media_and_databases() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["rel".into()]);
    let port = free_port();
    let config = sb.write_config(&format!("{CONFIG}[postgres]\nport = {port}\n"));
    let mut cmd = sb.command();
    cmd.current_dir(sb.path())
        .args(["up", "--data-dir", "data", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::spawn_command(cmd, sb.data_dir()).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "rel", "--with-db"]));
    let dir = context(&sb.path().join("ctx"), "");
    ok(cli(&sb, &server)
        .args(["deploy", "rel", "--path"])
        .arg(&dir));
    let client = edge_client(&server, "rel.localhost");
    let url = app_url(&server, "rel.localhost");
    let (status, body) = post(&client, &format!("{url}notes"), "relative");
    assert_eq!((status, body.as_str()), (200, "1 notes\n"));
    assert_eq!(put(&client, &format!("{url}media/a.txt"), b"x").0, 200);
    assert_eq!(
        std::fs::read(sb.data_dir().join("media/rel/a.txt")).unwrap(),
        b"x"
    );
    server.stop().unwrap();
}

/// Finding: the platform read and loaded an app's data as the cluster's
/// superuser, so code the app planted in its own database (an operator that
/// shadows a built-in one, a function behind an index) ran with the
/// superuser's rights during backups and restores: `COPY … TO PROGRAM` is a
/// shell on the host. The attack needs nothing but the app's own
/// credentials, as app code or an SQL injection has them. Backups, test
/// restores and restores must still work, and no planted code may run with
/// more than the app's rights.
#[test]
fn code_an_app_plants_in_its_database_never_runs_with_the_platforms_rights() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["evil".into()]);
    let (server, port) = start(&sb);
    let (app, _) = create_and_connect_as_app(&sb, &server, port, "evil");

    // What the planted code does with whatever rights it runs with: leave a
    // file on the host through the server, and make its role a superuser.
    let marker = std::env::temp_dir().join(format!(
        "rampart-pwned-{}",
        sb.path().file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&marker);
    let payload = format!(
        "BEGIN EXECUTE 'RESET ROLE'; EXCEPTION WHEN others THEN NULL; END;
         BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {marker}'''; EXCEPTION WHEN others THEN NULL; END;
         BEGIN EXECUTE 'ALTER ROLE app_evil SUPERUSER'; EXCEPTION WHEN others THEN NULL; END;",
        marker = marker.display()
    );
    let plant = format!(
        "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);
         INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 20) g;
         -- An operator that shadows pg_catalog's !~~(name, text) for a
         -- (name, unknown) comparison (the CVE-2018-1058 class).
         CREATE FUNCTION public.shadow(name, name) RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN {payload} RETURN NOT ($1::text LIKE $2::text); END $f$;
         CREATE OPERATOR public.!~~ (LEFTARG = name, RIGHTARG = name, FUNCTION = public.shadow);
         CREATE FUNCTION public.md5(name) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN {payload} RETURN pg_catalog.md5($1::text); END $f$;
         -- A function that every load of the data runs: an index expression.
         CREATE FUNCTION public.keyed(text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$
         BEGIN {payload} RETURN $1; END $f$;
         CREATE INDEX notes_keyed ON notes (public.keyed(body));
         -- A check constraint and a domain that loading the rows evaluates.
         CREATE FUNCTION public.fine(text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
         BEGIN {payload} RETURN true; END $f$;
         CREATE DOMAIN public.checked AS text CHECK (public.fine(VALUE));
         CREATE TABLE tags (name public.checked, CHECK (public.fine(name)));
         INSERT INTO tags VALUES ('a'), ('b');
         -- A cast, a trigger and a view named like a catalog view.
         CREATE TYPE public.mood AS ENUM ('ok');
         CREATE FUNCTION public.mood_text(public.mood) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN {payload} RETURN 'ok'; END $f$;
         CREATE CAST (public.mood AS text) WITH FUNCTION public.mood_text(public.mood);
         CREATE TABLE moods (m public.mood);
         INSERT INTO moods VALUES ('ok');
         CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN {payload} RETURN NEW; END $f$;
         CREATE TRIGGER tags_stamp BEFORE INSERT ON tags FOR EACH ROW EXECUTE FUNCTION public.stamp();
         CREATE VIEW public.pg_stat_activity AS SELECT 1 AS pid, 'x'::name AS datname;
         -- The app's database and role settings, for any session there.
         ALTER DATABASE app_evil SET search_path = public, pg_catalog;
         ALTER ROLE app_evil SET search_path = public, pg_catalog;"
    );
    runtime().block_on(app.batch_execute(&plant)).unwrap();
    drop(app);
    assert!(!marker.exists(), "the app's own rights cannot run programs");
    let is_superuser = || {
        let row = runtime()
            .block_on(superuser(&sb, port, "postgres").query_one(
                "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = 'app_evil'",
                &[],
            ))
            .unwrap();
        row.get::<_, bool>(0)
    };
    assert!(!is_superuser());

    // Backup, test restore, and a restore over the live data: each works,
    // and the planted code gained nothing.
    let record = json(cli(&sb, &server).args(["backup", "run", "evil"]));
    assert_eq!(record["ok"], true, "{record}");
    assert!(
        !marker.exists(),
        "a backup ran planted code as the platform"
    );
    let snap = record["snapshot"].as_str().unwrap().to_owned();
    let verify = json(cli(&sb, &server).args(["backup", "verify", "evil"]));
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(
        !marker.exists(),
        "a test restore ran planted code as the platform"
    );
    let before = fingerprint(&sb, port, "app_evil");
    json(cli(&sb, &server).args(["backup", "restore", "evil", &snap[..12], "--force"]));
    assert!(
        !marker.exists(),
        "a restore ran planted code as the platform"
    );
    assert_eq!(fingerprint(&sb, port, "app_evil"), before);
    assert!(
        !is_superuser(),
        "planted code made the app's role a superuser"
    );
    let _ = std::fs::remove_file(&marker);
    server.stop().unwrap();
}

/// Finding: with the managed cluster and a root platform, the data
/// directory became 0711 so the postgres user could reach its cluster, and
/// `rampart.db` (0644 under the usual umask) was readable by every local
/// user: password hashes, recovery-code hashes, the audit log. Now every
/// file the platform writes is private, whatever the umask, and only the
/// postgres user's group may pass through the data directory.
/// `apps create --with-db` whose database cannot be made (here: the data
/// directory sits under a folder the postgres user cannot traverse) leaves
/// no app behind, so the retry meets the same clear error, not "already
/// exists".
#[test]
fn a_create_whose_database_fails_leaves_no_app() {
    use std::os::unix::fs::PermissionsExt;
    if rampart_services::effective_uid() != 0 {
        eprintln!("skipped: needs root to start the cluster as postgres");
        return;
    }
    let sb = sandbox();
    let closed = sb.path().join("closed");
    std::fs::create_dir_all(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = closed.join("data");
    let config = sb.write_config(&format!("{CONFIG}[postgres]\nport = {}\n", free_port()));
    let mut cmd = sb.command();
    cmd.args(["up", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::spawn_command(cmd, data).unwrap();
    for _ in 0..2 {
        let (code, _, err) = run(cli(&sb, &server).args(["apps", "create", "stray", "--with-db"]));
        assert_ne!(code, 0);
        assert!(err.contains("the postgres user cannot reach"), "{err}");
    }
    let apps = json(cli(&sb, &server).args(["apps", "list"]));
    assert_eq!(apps, serde_json::json!([]), "no app is left behind");
}

#[test]
fn no_other_local_user_reads_the_data_directory() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    if rampart_services::effective_uid() != 0 {
        eprintln!("skipped: needs root to start the cluster as postgres and to act as nobody");
        return;
    }
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["private".into()]);
    let port = free_port();
    let config = sb.write_config(&format!("{CONFIG}[postgres]\nport = {port}\n"));
    // The operator's shell has the usual, permissive umask.
    let mut cmd = sb.command();
    cmd.args(["up", "--data-dir"])
        .arg(sb.data_dir())
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::spawn_command(cmd, sb.data_dir()).unwrap();
    ok(cli(&sb, &server).args(["apps", "create", "private", "--with-db"]));
    ok(cli(&sb, &server).args(["env", "set", "private", "SECRET=1"]));

    // A local user who knows the paths reads nothing.
    let nobody = |path: &Path| {
        Command::new("cat")
            .arg(path)
            .uid(65534)
            .gid(65534)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let data = sb.data_dir();
    for name in [
        "rampart.db",
        "rampart.db-wal",
        "master.key",
        "ca-key.pem",
        "audit-head",
    ] {
        let path = data.join(name);
        if path.exists() {
            assert!(!nobody(&path), "nobody read {}", path.display());
        }
    }
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o007,
        0,
        "the data directory is open to others: {mode:o}"
    );

    // Every file the platform itself wrote is private to it, but for the
    // CA certificate replicas read.
    let mut open = Vec::new();
    let mut stack = vec![data.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.uid() != 0 || path.starts_with(data.join("ca-public")) {
                continue; // the cluster's and the replicas' own files
            }
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                open.push(format!(
                    "{} {:o}",
                    path.display(),
                    meta.permissions().mode()
                ));
            }
        }
    }
    assert!(open.is_empty(), "files others may read: {open:?}");
    server.stop().unwrap();
}

/// Finding: every backup, restore and test restore of every app took one
/// global lock, so an app that stalls its own backup (here by holding a lock
/// on its table, which it may always do) held up every other app's. Each
/// app now waits only for its own.
#[test]
fn one_apps_stalled_backup_does_not_hold_up_another() {
    let sb = sandbox();
    let _cleanup = Cleanup(vec!["stall".into(), "calm".into()]);
    let (server, port) = start(&sb);
    ok(cli(&sb, &server).args(["apps", "create", "calm", "--with-db"]));
    let (app, _) = create_and_connect_as_app(&sb, &server, port, "stall");
    for statement in [
        "CREATE TABLE t (v int)",
        "BEGIN",
        "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
    ] {
        runtime().block_on(app.batch_execute(statement)).unwrap();
    }
    // The stalled app's backup waits on its own lock …
    let mut stalled = cli(&sb, &server);
    stalled
        .args(["backup", "run", "stall"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut stalled = stalled.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    if stalled.try_wait().unwrap().is_some() {
        let mut err = String::new();
        std::io::Read::read_to_string(&mut stalled.stderr.take().unwrap(), &mut err).unwrap();
        panic!("the lock did not stall the backup: {err}");
    }
    // … and the other app's backup goes ahead meanwhile.
    let started = std::time::Instant::now();
    let mut calm = cli(&sb, &server);
    calm.args(["backup", "run", "calm", "--json"])
        .stdout(std::process::Stdio::piped());
    let mut calm = calm.spawn().unwrap();
    let deadline = started + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = calm.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "another app's stalled backup held this one up"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    let _ = stalled.kill();
    let _ = stalled.wait();
    drop(app);
    server.stop().unwrap();
}

/// With a lock per app, two apps' first backups run at once; the first
/// backup creates the repository and its key file, and only one of them
/// may do that.
#[test]
fn two_apps_first_backups_at_once_share_one_new_repository() {
    let sb = sandbox();
    let (server, _) = start(&sb);
    for app in ["first", "second"] {
        ok(cli(&sb, &server).args(["apps", "create", app]));
    }
    let runs: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|app| {
            let mut cmd = cli(&sb, &server);
            cmd.args(["backup", "run", app])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for app in ["first", "second"] {
        assert_eq!(snapshots(&sb, &server, app).len(), 1, "{app}");
    }
    server.stop().unwrap();
}

//! The managed cluster against the host's real PostgreSQL: roles reach only
//! their own database, only over TLS; dumps restore to the same fingerprint.

use rampart_testkit::free_port;
use std::io::Write;

use rampart_services::cluster::{Access, Layout, ManagedCluster, find_bin_dir};
use rampart_services::postgres::{Admin, Server, TableSum, Tenant, connect_tls};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // libpq (OpenSSL) takes a leaf whose issuer equals its subject for
    // self-signed, so the two get names of their own.
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test database CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "test database server");
    let leaf = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn url(role: &str, password: &str, port: u16, db: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(role)
        .password(password)
        .dbname(db);
    config
}

/// Restores `dump` as `tenant` into a fresh `database` owned by its role and
/// returns its fingerprint.
async fn restore_copy(
    admin: &Admin,
    tenant: &Tenant,
    dump: &[u8],
    database: &str,
) -> Vec<TableSum> {
    admin.create_empty(database, tenant.role()).await.unwrap();
    let mut restore = tenant.restore_command(database).unwrap().spawn().unwrap();
    restore.stdin.take().unwrap().write_all(dump).unwrap();
    let out = restore.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tenant.fingerprint(database).await.unwrap()
}

/// A temporary folder the postgres user can traverse, and a data directory
/// in it.
fn traversable_tempdir() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    (tmp, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_reach_only_their_database_over_tls_and_dumps_restore_exactly() {
    let bin = find_bin_dir().expect("PostgreSQL is installed (scripts/test installs it)");
    let (_tmp, tmp_data) = traversable_tempdir();
    let port = free_port();
    let cluster = ManagedCluster::new(tmp_data.join("postgres"), bin.clone(), port).unwrap();
    let pki = pki();
    let loopback = "127.0.0.1/32".to_owned();
    let mut layout = Layout {
        listen: vec!["127.0.0.1".parse().unwrap()],
        access: vec![Access {
            database: "app_a".into(),
            role: "app_a".into(),
            network: loopback.clone(),
        }],
        cert_pem: pki.cert_pem.clone(),
        key_pem: pki.key_pem.clone(),
    };
    cluster.apply(&layout).await.unwrap();
    let admin = Admin::new(
        Server::Socket {
            dir: cluster.socket_dir(),
            port,
        },
        bin,
    );
    admin
        .create_database("app_a", "app_a", "password-of-a")
        .await
        .unwrap();
    admin
        .create_database("app_b", "app_b", "password-of-b")
        .await
        .unwrap();
    layout.access.push(Access {
        database: "app_b".into(),
        role: "app_b".into(),
        network: loopback,
    });
    cluster.apply(&layout).await.unwrap();

    // Each role reaches its own database over TLS.
    let a = connect_tls(&url("app_a", "password-of-a", port, "app_a"), &pki.ca_pem)
        .await
        .unwrap();
    a.batch_execute(
        "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);
         INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 500) g;",
    )
    .await
    .unwrap();

    // A's credentials against B's database, and B's role with A's password.
    let err = connect_tls(&url("app_a", "password-of-a", port, "app_b"), &pki.ca_pem)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pg_hba.conf"), "{err}");
    let err = connect_tls(&url("app_b", "password-of-a", port, "app_b"), &pki.ca_pem)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    // The admin role cannot come in over TCP at all.
    let err = connect_tls(&url("rampart", "anything", port, "postgres"), &pki.ca_pem)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pg_hba.conf"), "{err}");
    // Without TLS nothing gets in, not even the right role to its database.
    let mut plain = url("app_a", "password-of-a", port, "app_a");
    plain.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let Err(err) = plain.connect(tokio_postgres::NoTls).await else {
        panic!("a connection without TLS was let in");
    };
    let err = rampart_services::ServiceError::from(err).to_string();
    assert!(err.contains("no encryption"), "{err}");
    // A role cannot create databases or roles.
    let err = a.batch_execute("CREATE DATABASE sneaky").await.unwrap_err();
    let err = rampart_services::ServiceError::from(err).to_string();
    assert!(err.contains("permission denied"), "{err}");

    // Dump as of an exported snapshot, restore into a fresh database owned by
    // the app's role, compare fingerprints.
    let tenant_a = admin.tenant("app_a", "password-of-a").unwrap();
    let (holder, snapshot, sums) = tenant_a.exported_snapshot("app_a").await.unwrap();
    assert_eq!(sums.len(), 1);
    assert_eq!(sums[0].table, "public.notes");
    assert_eq!(sums[0].rows, 500);
    // A write after the snapshot is not in the dump.
    a.batch_execute("INSERT INTO notes (body) VALUES ('late')")
        .await
        .unwrap();
    let dump = tenant_a
        .dump_command("app_a", &snapshot)
        .unwrap()
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    drop(holder);
    assert_eq!(
        restore_copy(&admin, &tenant_a, &dump.stdout, "app_a_restore").await,
        sums
    );
    assert_ne!(tenant_a.fingerprint("app_a").await.unwrap(), sums);
    let owner = a
        .query_one(
            "SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'notes'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(owner.get::<_, String>(0), "app_a");
    assert!(!tenant_a.is_empty("app_a_restore").await.unwrap());
    let tenant_b = admin.tenant("app_b", "password-of-b").unwrap();
    assert!(tenant_b.is_empty("app_b").await.unwrap());
    // A tenant is kept out of another tenant's database on the socket too.
    assert!(tenant_b.fingerprint("app_a").await.is_err());

    cluster.stop().await.unwrap();
    assert!(!cluster.is_running().await);
}

/// An "external" server: a cluster whose rules the test writes itself, with
/// the admin reachable over TLS with a password, as a hosted PostgreSQL
/// would be. The platform administers it by URL alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_server_is_administered_by_url_over_verified_tls() {
    use std::os::unix::process::CommandExt;

    let bin = find_bin_dir().expect("PostgreSQL is installed (scripts/test installs it)");
    let (tmp, root) = traversable_tempdir();
    let port = free_port();
    let dir = root.join("postgres");
    let cluster = ManagedCluster::new(dir.clone(), bin.clone(), port).unwrap();
    let pki = pki();
    let layout = Layout {
        listen: vec!["127.0.0.1".parse().unwrap()],
        access: vec![],
        cert_pem: pki.cert_pem.clone(),
        key_pem: pki.key_pem.clone(),
    };
    cluster.apply(&layout).await.unwrap();
    let socket = Admin::new(
        Server::Socket {
            dir: cluster.socket_dir(),
            port,
        },
        bin.clone(),
    );
    socket
        .connect()
        .await
        .unwrap()
        .batch_execute("ALTER ROLE rampart PASSWORD 'admin-secret'")
        .await
        .unwrap();
    // The operator's rules: the admin and the app's role over TLS only.
    let hba = dir.join("pg_hba.conf");
    let mut rules = std::fs::read_to_string(&hba).unwrap();
    rules.push_str("hostssl all rampart 127.0.0.1/32 scram-sha-256\n");
    rules.push_str("hostssl all app_ext 127.0.0.1/32 scram-sha-256\n");
    std::fs::write(&hba, rules).unwrap();
    let mut reload = std::process::Command::new(bin.join("pg_ctl"));
    reload.args(["reload", "-D"]).arg(dir.join("data"));
    if rampart_services::effective_uid() == 0 {
        let meta = std::fs::metadata(dir.join("data")).unwrap();
        use std::os::unix::fs::MetadataExt;
        reload.uid(meta.uid()).gid(meta.gid());
    }
    assert!(reload.status().unwrap().success());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let ca_file = tmp.path().join("server-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let external = Admin::new(
        Server::External {
            url: format!("postgresql://rampart:admin-secret@127.0.0.1:{port}/postgres"),
            ca_file: ca_file.clone(),
            ca_pem: pki.ca_pem.clone(),
        },
        bin.clone(),
    );
    external.ping().await.unwrap();
    external
        .create_database("app_ext", "app_ext", "password-of-ext")
        .await
        .unwrap();
    let app = connect_tls(
        &url("app_ext", "password-of-ext", port, "app_ext"),
        &pki.ca_pem,
    )
    .await
    .unwrap();
    app.batch_execute("CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 42);")
        .await
        .unwrap();

    // A different CA is refused: the admin verifies the server.
    let stranger = self::pki();
    let wrong = Admin::new(
        Server::External {
            url: format!("postgresql://rampart:admin-secret@127.0.0.1:{port}/postgres"),
            ca_file: ca_file.clone(),
            ca_pem: stranger.ca_pem,
        },
        bin.clone(),
    );
    assert!(wrong.ping().await.is_err());

    // pg_dump and pg_restore reach it by URL with verify-full.
    let tenant = external.tenant("app_ext", "password-of-ext").unwrap();
    let (holder, snapshot, sums) = tenant.exported_snapshot("app_ext").await.unwrap();
    assert_eq!(sums[0].rows, 42);
    let dump = tenant
        .dump_command("app_ext", &snapshot)
        .unwrap()
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    drop(holder);
    assert_eq!(
        restore_copy(&external, &tenant, &dump.stdout, "app_ext_copy").await,
        sums
    );
    cluster.stop().await.unwrap();
}

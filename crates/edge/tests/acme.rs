//! ACME end to end against Pebble (a real ACME server, started here with
//! its mock DNS pointing every name at loopback): HTTP-01 through the edge's
//! HTTP listener, the certificate served by SNI, and reused after a restart.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Upstream;
use rampart_edge::{Edge, EdgeConfig};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

const HOST: &str = "app.rampart.test";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA and a localhost certificate for Pebble's own HTTPS listener.
fn pebble_tls(dir: &std::path::Path) -> std::path::PathBuf {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).unwrap();
    let trust = dir.join("pebble-ca.pem");
    std::fs::write(&trust, ca.pem()).unwrap();
    trust
}

fn wait_for_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} did not open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_come_from_pebble_over_http01_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let trust = pebble_tls(dir.path());
    let (acme_port, mgmt_port, dns_port, dns_mgmt, http_port, tls_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let dns = Killed(
        Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble) must be installed"),
    );
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
        "certificate": dir.path().join("pebble-cert.pem"),
        "privateKey": dir.path().join("pebble-key.pem"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    }});
    let config_path = dir.path().join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let pebble = Killed(
        Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian package pebble) must be installed"),
    );
    wait_for_port(format!("127.0.0.1:{acme_port}").parse().unwrap());

    let up = Upstream::start("acme-site").await;
    let edge_toml = format!(
        "[listen]\nhttp = \"127.0.0.1:{http_port}\"\nhttps = \"127.0.0.1:0\"\nadmin = \"\"\n\
         [tls]\nstate_dir = \"{}\"\nacme_directory = \"https://127.0.0.1:{acme_port}/dir\"\n\
         acme_email = \"ops@example.com\"\nacme_trust = \"{}\"\n\
         [[site]]\nhosts = [\"{HOST}\"]\ntls = \"acme\"\nupstreams = [\"{}\"]\n",
        dir.path().join("state").display(),
        trust.display(),
        up.addr
    );
    let edge = Edge::start(EdgeConfig::from_toml(&edge_toml).unwrap())
        .await
        .unwrap();

    // Pebble's roots sign what it issues.
    let mgmt = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&trust).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let root = mgmt
        .get(format!("https://127.0.0.1:{mgmt_port}/roots/0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let client = |https: SocketAddr| {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
            .resolve(HOST, https)
            .build()
            .unwrap()
    };
    let https = edge.addrs().https;
    let url = format!("https://{HOST}:{}/", https.port());
    let deadline = Instant::now() + Duration::from_secs(60);
    let served = loop {
        if let Ok(response) = client(https).get(&url).send().await {
            break response.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "no ACME certificate within 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(served, "acme-site");
    let cert_file = dir.path().join("state/acme").join(format!("{HOST}.pem"));
    let issued = std::fs::read(&cert_file).unwrap();
    assert!(dir.path().join("state/acme/account.json").exists());
    edge.shutdown().await;
    drop(edge);

    // A restart serves the stored certificate at once, without a new order.
    let edge = Edge::start(EdgeConfig::from_toml(&edge_toml).unwrap())
        .await
        .unwrap();
    let https = edge.addrs().https;
    let url = format!("https://{HOST}:{}/", https.port());
    assert_eq!(
        client(https)
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "acme-site"
    );
    assert_eq!(
        std::fs::read(&cert_file).unwrap(),
        issued,
        "the stored certificate was reused"
    );
    edge.shutdown().await;
    drop((pebble, dns));
}

//! ACME end to end against Pebble (a real ACME server, started here with
//! its mock DNS pointing every name at loopback): HTTP-01 through the edge's
//! HTTP listener, the certificate served by SNI, and reused after a restart.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::Upstream;
use rampart_edge::{Edge, EdgeConfig};

const HOST: &str = "app.rampart.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_come_from_pebble_over_http01_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pebble = rampart_testkit::Pebble::start().unwrap();
    let (http_port, trust) = (pebble.http_port, pebble.trust.clone());
    let acme_directory = pebble.directory.clone();

    let up = Upstream::start("acme-site").await;
    let edge_toml = format!(
        "[listen]\nhttp = \"127.0.0.1:{http_port}\"\nhttps = \"127.0.0.1:0\"\nadmin = \"\"\n\
         [tls]\nstate_dir = \"{}\"\nacme_directory = \"{acme_directory}\"\n\
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
    let root = pebble.issuing_root().unwrap();
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
    drop(pebble);
}

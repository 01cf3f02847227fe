//! The edge on real loopback sockets: proxying, headers, redirects,
//! routing, health, reloads, bans, metrics and the access log.
//!
//! Long by choice: every file under `tests/` is a test binary of its own,
//! linked on its own, so an area's tests share one file and one link
//! rather than paying for a binary each.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestEdge, Upstream, eventually, site};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_over_http1_and_http2_with_security_headers() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start("", &site(&["app.localhost"], &[up.addr], "")).await;
    let client = edge.client(&["app.localhost"], None);
    for version_h2 in [false, true] {
        let mut request = client.get(edge.url("app.localhost", "/hello?x=1"));
        request = request
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-host", "evil.example")
            .header("x-request-id", "client-chosen");
        if !version_h2 {
            request = request.version(reqwest::Version::HTTP_11);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let h = response.headers();
        assert_eq!(h["strict-transport-security"], "max-age=63072000");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        assert!(h.get("server").is_none(), "no server banner");
        let id = h["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(id, "client-chosen");
        assert_eq!(response.text().await.unwrap(), "one");
        let seen = up.last_headers.lock().unwrap().clone();
        assert_eq!(
            seen["x-forwarded-for"], "127.0.0.1",
            "client copies are replaced"
        );
        assert_eq!(seen["x-forwarded-proto"], "https");
        assert!(
            seen["x-forwarded-host"]
                .to_str()
                .unwrap()
                .starts_with("app.localhost")
        );
        assert_eq!(seen["x-request-id"].to_str().unwrap(), id);
        assert_eq!(seen["host"], seen["x-forwarded-host"]);
        assert_eq!(seen.get_all("x-forwarded-for").iter().count(), 1);
    }
    // An app's own framing policy wins.
    let response = client
        .get(edge.url("app.localhost", "/framed"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-frame-options"], "DENY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_workers_serve_many_connections_over_http1_and_http2() {
    let up = Upstream::start("one").await;
    let edge =
        TestEdge::start_with_listen("workers = 2", "", &site(&["app.localhost"], &[up.addr], ""))
            .await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..64 {
        // A client each: a connection each, spread over both workers.
        let client = edge.client(&["app.localhost"], None);
        let url = edge.url("app.localhost", &format!("/n/{i}"));
        requests.spawn(async move {
            let mut request = client.get(url);
            if i % 2 == 0 {
                request = request.version(reqwest::Version::HTTP_11);
            }
            let response = request.send().await.unwrap();
            let secure = response.headers().contains_key("strict-transport-security");
            (
                response.status().as_u16(),
                secure,
                response.text().await.unwrap(),
            )
        });
    }
    let mut served = 0;
    while let Some(done) = requests.join_next().await {
        assert_eq!(done.unwrap(), (200, true, "one".to_owned()));
        served += 1;
    }
    assert_eq!(served, 64);
    assert_eq!(up.hits(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_redirects_and_unknown_hosts_get_421_without_upstream_work() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "",
        &site(
            &["app.localhost", "*.apps.localhost"],
            &[up.addr],
            "hsts_include_subdomains = true\nhsts_preload = true",
        ),
    )
    .await;
    let http = edge.edge.addrs().http;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = plain
        .post(format!("http://{http}/a/b?c=d"))
        .header("host", "shop.apps.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!(
            "https://shop.apps.localhost:{}/a/b?c=d",
            edge.https().port()
        )
        .as_str()
    );
    let response = plain
        .get(format!("http://{http}/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
    let response = plain
        .get(format!("http://{http}/.well-known/acme-challenge/unknown"))
        .header("host", "app.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let client = edge.client(
        &["app.localhost", "x.apps.localhost", "nobody.localhost"],
        None,
    );
    let wild = client
        .get(edge.url("x.apps.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(wild.status(), 200);
    assert_eq!(
        wild.headers()["strict-transport-security"],
        "max-age=63072000; includeSubDomains; preload"
    );

    let before = up.hits();
    // A Host the certificate covers but no site serves, and an unknown SNI.
    let h1 = reqwest::Client::builder()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(&edge.ca).unwrap())
        .resolve("app.localhost", edge.https())
        .build()
        .unwrap();
    let response = h1
        .get(edge.url("app.localhost", "/"))
        .header("host", "nobody.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("app.localhost"),
        "the 421 page names no site: {text}"
    );
    let insecure = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("nobody.localhost", edge.https())
        .build()
        .unwrap();
    let response = insecure
        .get(edge.url("nobody.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
    assert_eq!(up.hits(), before, "no upstream work for unknown hosts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_and_deny_lists_answer_403_before_any_upstream_work() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "",
        &(site(&["app.localhost"], &[up.addr], "")
            + &site(
                &["closed.localhost"],
                &[up.addr],
                "deny = [\"127.0.0.0/8\"]",
            )),
    )
    .await;
    let client = edge.client(&["app.localhost", "closed.localhost"], None);
    assert_eq!(edge.status(&client, "closed.localhost", "/").await, 403);
    edge.edge.ban(
        "127.0.0.1/32".parse().unwrap(),
        Duration::from_secs(60),
        "test",
    );
    let before = up.hits();
    assert_eq!(edge.status(&client, "app.localhost", "/").await, 403);
    assert_eq!(up.hits(), before);
    assert_eq!(edge.edge.bans().len(), 1);
    assert!(edge.edge.unban("127.0.0.1/32".parse().unwrap()));
    assert_eq!(edge.status(&client, "app.localhost", "/").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_limited_while_another_is_served() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "requests_per_second = 20\nburst = 20",
        &site(&["app.localhost"], &[up.addr], ""),
    )
    .await;
    let flooder = edge.client(&["app.localhost"], Some("127.0.0.2".parse().unwrap()));
    let neighbour = edge.client(&["app.localhost"], Some("127.0.0.3".parse().unwrap()));
    let mut limited = 0;
    let mut retry_after = None;
    for _ in 0..200 {
        let response = flooder
            .get(edge.url("app.localhost", "/"))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited += 1;
            retry_after = response.headers().get("retry-after").cloned();
        }
    }
    assert!(limited >= 150, "{limited} of 200 limited");
    assert!(retry_after.is_some(), "429 carries Retry-After");
    for _ in 0..10 {
        assert_eq!(edge.status(&neighbour, "app.localhost", "/").await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_answer_413_and_431_without_upstream_work() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "max_body_bytes = 1000\nmax_header_bytes = 2048",
        &site(&["app.localhost"], &[up.addr], ""),
    )
    .await;
    let client = edge.client(&["app.localhost"], None);
    let before = up.hits();
    let big = client
        .post(edge.url("app.localhost", "/echo"))
        .body(vec![b'x'; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let header = client
        .get(edge.url("app.localhost", "/"))
        .header("x-big", "y".repeat(3000))
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), 431);
    assert_eq!(up.hits(), before);
    // A streamed body with no length is cut off at the limit.
    let stream = futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 300])));
    let streamed = client
        .post(edge.url("app.localhost", "/echo"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    let ok = client
        .post(edge.url("app.localhost", "/echo"))
        .body(vec![b'x'; 900])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.text().await.unwrap(), "900");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upstream_costs_under_one_percent_and_recovers() {
    let mut a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let edge = TestEdge::start(
        "requests_per_second = 100000\nburst = 100000",
        &site(&["app.localhost"], &[a.addr, b.addr], ""),
    )
    .await;
    let client = edge.client(&["app.localhost"], None);
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let run = |n: usize| {
        let client = client.clone();
        let url = edge.url("app.localhost", "/");
        let failures = failures.clone();
        let total = total.clone();
        tokio::spawn(async move {
            for _ in 0..n {
                total.fetch_add(1, Ordering::SeqCst);
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {}
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    };
    let load: Vec<_> = (0..4).map(|_| run(300)).collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.kill();
    for l in load {
        l.await.unwrap();
    }
    let failed = failures.load(Ordering::SeqCst);
    assert!(
        failed * 100 < total.load(Ordering::SeqCst),
        "{failed} of {} failed",
        total.load(Ordering::SeqCst)
    );
    a.revive().await;
    let hits = a.hits();
    assert!(
        eventually(Duration::from_secs(5), || {
            let c = client.clone();
            let url = edge.url("app.localhost", "/");
            std::thread::spawn(move || {
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(async { c.get(url).send().await.is_ok() })
            })
            .join()
            .unwrap();
            a.hits() > hits
        })
        .await,
        "the revived upstream gets traffic again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_during_load_fail_no_request() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let edge = TestEdge::start(
        "requests_per_second = 100000\nburst = 100000",
        &site(&["app.localhost"], &[a.addr], ""),
    )
    .await;
    let client = edge.client(&["app.localhost"], None);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, url, stop, failures, total) = (
            client.clone(),
            edge.url("app.localhost", "/"),
            stop.clone(),
            failures.clone(),
            total.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                total.fetch_add(1, Ordering::SeqCst);
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {}
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for i in 0..20 {
        let upstreams = if i % 2 == 0 {
            vec![a.addr, b.addr]
        } else {
            vec![b.addr]
        };
        let text = common::config_text(
            edge.dir.path(),
            "requests_per_second = 100000\nburst = 100000",
            &site(&["app.localhost"], &upstreams, ""),
        );
        let config = rampart_edge::EdgeConfig::from_toml(&text).unwrap();
        edge.edge.apply(config.routes).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    assert!(total.load(Ordering::SeqCst) > 100);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "of {}",
        total.load(Ordering::SeqCst)
    );
    assert!(b.hits() > 0, "the new table took effect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_access_events() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start("", &site(&["app.localhost"], &[up.addr], "")).await;
    let mut events = edge.edge.subscribe();
    let client = edge.client(&["app.localhost"], None);
    client
        .get(edge.url("app.localhost", "/x"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.status, 200);
    assert_eq!(event.path, "/x");
    assert_eq!(event.upstream, Some(up.addr));
    assert_eq!(event.tls_version, Some("TLSv1.3"));
    assert_eq!(event.bytes_out, 3);
    let admin = edge.edge.addrs().admin.unwrap();
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "rampart_edge_requests_total{site=\"app.localhost\",class=\"2xx\"} 1",
        "rampart_edge_upstream_healthy{",
        "rampart_edge_open_connections",
        "rampart_edge_certificate_expiry_seconds{host=\"app.localhost\"}",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    let log = edge.dir.path().join("access.jsonl");
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("\"path\":\"/x\"")))
        .await,
        "the access log has the request"
    );
    let line = std::fs::read_to_string(&log).unwrap();
    let first: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    for key in [
        "time",
        "client_ip",
        "host",
        "method",
        "path",
        "status",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "upstream",
        "request_id",
        "tls_version",
        "shield",
    ] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_files_are_served_and_bad_files_are_refused_without_change() {
    let up = Upstream::start("files").await;
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["files.localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let files = format!(
        "tls = \"files\"\ncert = \"{}\"\nkey = \"{}\"",
        cert_path.display(),
        key_path.display()
    );
    let edge = TestEdge::start("", &site(&["files.localhost"], &[up.addr], &files)).await;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .resolve("files.localhost", edge.https())
        .build()
        .unwrap();
    let url = edge.url("files.localhost", "/");
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "files"
    );

    // A table whose key file is garbage is refused, and the old one stays.
    let bad_key = dir.path().join("bad.pem");
    std::fs::write(&bad_key, "not a key").unwrap();
    let bad = format!(
        "tls = \"files\"\ncert = \"{}\"\nkey = \"{}\"",
        cert_path.display(),
        bad_key.display()
    );
    let text = common::config_text(
        edge.dir.path(),
        "",
        &site(&["files.localhost"], &[up.addr], &bad),
    );
    let err = edge
        .edge
        .apply(rampart_edge::EdgeConfig::from_toml(&text).unwrap().routes)
        .unwrap_err();
    assert!(err.to_string().contains("files.localhost"), "{err}");
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "files"
    );
}

/// A replica on raw sockets that answers every request with `ok`, counts
/// the connections it accepts, and closes each connection `close_after`
/// its last answer (as a replica's own keep-alive timeout does).
async fn counting_replica(close_after: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let read = tokio::time::timeout(close_after, stream.read(&mut chunk)).await;
                    let Ok(Ok(n)) = read else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let body_len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + body_len {
                            break;
                        }
                        buf.drain(..end + 4 + body_len);
                        if stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_connections_are_reused_and_closed_ones_are_not() {
    let (addr, accepted) = counting_replica(Duration::from_millis(1000)).await;
    // Health checks every 5 s: none during the requests below but the first.
    let sites = format!(
        "[[site]]\nhosts = [\"app.localhost\"]\nupstreams = [\"{addr}\"]\nhealth_path = \"/\"\nhealth_interval_ms = 5000\n"
    );
    let edge = TestEdge::start("", &sites).await;
    let client = edge.client(&["app.localhost"], None);
    let before = accepted.load(Ordering::SeqCst);
    for _ in 0..50 {
        assert_eq!(edge.status(&client, "app.localhost", "/").await, 200);
    }
    // The edge's connection, and at most one more: the first health check
    // may land after `before`, and a slow test machine may let one
    // connection idle out.
    let used = accepted.load(Ordering::SeqCst) - before;
    assert!(used <= 3, "50 sequential requests took {used} connections");

    // The replica closes its idle connections; a POST, which is never
    // retried, must not be sent on one of them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..3 {
        let response = client
            .post(edge.url("app.localhost", "/form"))
            .body("a=1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// Whether OpenSSL's client completes a handshake with `addr` offering only
/// what `args` allow.
fn openssl_handshake(addr: std::net::SocketAddr, args: &[&str]) -> bool {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "app.localhost",
        ])
        .args(["-brief"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success() && said.contains("CONNECTION ESTABLISHED")
}

/// Promise 4: the edge speaks TLS 1.2 and 1.3 with AEAD suites only. An
/// OpenSSL client offering TLS 1.1, or TLS 1.2 with CBC suites alone, is
/// refused; the same client completes TLS 1.2 with an AEAD suite, and 1.3.
/// A control server of OpenSSL's own shows those old offers do connect
/// where a server allows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_with_aead_suites_are_spoken() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start("", &site(&["app.localhost"], &[up.addr], "")).await;
    let old = ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"];
    let cbc = [
        "-tls1_2",
        "-cipher",
        "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA",
    ];
    let aead = [
        "-tls1_2",
        "-cipher",
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
    ];
    let https = edge.https();
    let (refused_old, refused_cbc, tls12, tls13) = tokio::task::spawn_blocking(move || {
        (
            !openssl_handshake(https, &old),
            !openssl_handshake(https, &cbc),
            openssl_handshake(https, &aead),
            openssl_handshake(https, &["-tls1_3"]),
        )
    })
    .await
    .unwrap();
    assert!(tls12 && tls13, "TLS 1.2 with AEAD and TLS 1.3 are served");
    assert!(refused_old, "TLS 1.1 was accepted");
    assert!(refused_cbc, "a CBC suite was accepted");

    // The control: OpenSSL's own server allowing TLS 1.1 and CBC suites.
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-subj",
            "/CN=app.localhost",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-accept", &port.to_string(), "-www"])
        .args(["-cipher", "DEFAULT:@SECLEVEL=0", "-min_protocol", "TLSv1.1"])
        .arg("-key")
        .arg(&key)
        .arg("-cert")
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let control: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (old_ok, cbc_ok) = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(control).is_err() && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        (
            openssl_handshake(control, &old),
            openssl_handshake(control, &cbc),
        )
    })
    .await
    .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        old_ok && cbc_ok,
        "the control server must accept the old offers"
    );
}

//! Attacks on real loopback sockets, bounded in count and time: slowloris,
//! malformed requests, stalled bodies, HTTP/2 rapid reset; and a graceful
//! shutdown with a request in flight.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestEdge, Upstream, site};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

fn connector(ca: &[u8], alpn: &[&[u8]]) -> TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn tls(
    edge: SocketAddr,
    local: &str,
    ca: &[u8],
    alpn: &[&[u8]],
) -> TlsStream<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let tcp = socket.connect(edge).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("app.localhost").unwrap();
    connector(ca, alpn).connect(name, tcp).await.unwrap()
}

/// An HTTP/1.1 connection from 127.0.0.1 that has sent one GET for
/// `app.localhost`, its answer not yet read.
async fn one_http1_request(ca: &[u8], edge: SocketAddr) -> TlsStream<tokio::net::TcpStream> {
    let mut stream = tls(edge, "127.0.0.1", ca, &[b"http/1.1"]).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// Reads until the peer closes or `limit` passes; the bytes read and
/// whether it closed.
async fn read_until_closed(
    stream: &mut TlsStream<tokio::net::TcpStream>,
    limit: Duration,
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + limit;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_while_normal_clients_are_served() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "header_timeout_ms = 1000",
        &site(&["app.localhost"], &[up.addr], ""),
    )
    .await;
    let addr = edge.https();
    let ca = edge.ca.clone();
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let ca = ca.clone();
        slow.push(tokio::spawn(async move {
            let mut stream = tls(addr, "127.0.0.5", &ca, &[b"http/1.1"]).await;
            let _ = stream
                .write_all(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Slow: ")
                .await;
            // One header byte every 300 ms, for at most 8 s.
            for _ in 0..26 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if stream.write_all(b"a").await.is_err() || stream.flush().await.is_err() {
                    return true;
                }
            }
            let (_, closed) = read_until_closed(&mut stream, Duration::from_millis(100)).await;
            closed
        }));
    }
    let client = edge.client(&["app.localhost"], Some("127.0.0.6".parse().unwrap()));
    for _ in 0..20 {
        let response = client
            .get(edge.url("app.localhost", "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "a normal client is served during the attack"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut closed = 0;
    for s in slow {
        if s.await.unwrap() {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 200,
        "every slow connection was closed by the header timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_an_error_or_a_closed_connection_and_no_upstream_call() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "max_header_bytes = 2048",
        &site(&["app.localhost"], &[up.addr], ""),
    )
    .await;
    let cases: [&[u8]; 5] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: app.localhost\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nBad Header Line\r\n\r\n",
    ];
    for case in cases {
        let mut stream = tls(edge.https(), "127.0.0.1", &edge.ca, &[b"http/1.1"]).await;
        stream.write_all(case).await.unwrap();
        let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(closed || text.starts_with("HTTP/1.1 4"), "{case:?}: {text}");
        assert!(!text.starts_with("HTTP/1.1 2"), "{case:?}: {text}");
    }
    // Over-long header block, beyond what the parser buffers.
    let mut stream = tls(edge.https(), "127.0.0.1", &edge.ca, &[b"http/1.1"]).await;
    let long = format!(
        "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = stream.write_all(long.as_bytes()).await;
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(closed || text.starts_with("HTTP/1.1 431"), "{text}");
    assert_eq!(up.hits(), 0, "nothing reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "body_timeout_ms = 500",
        &site(&["app.localhost"], &[up.addr], ""),
    )
    .await;
    let mut stream = tls(edge.https(), "127.0.0.1", &edge.ca, &[b"http/1.1"]).await;
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_is_cut_off() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "h2_max_pending_reset_streams = 20",
        &site(&["app.localhost"], &[up.addr], ""),
    )
    .await;
    let stream = tls(edge.https(), "127.0.0.1", &edge.ca, &[b"h2"]).await;
    let (send, connection) = h2::client::handshake(stream).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut refused = false;
    for _ in 0..2000 {
        let request = http::Request::get(format!("https://app.localhost:{}/", edge.https().port()))
            .body(())
            .unwrap();
        match send.clone().ready().await {
            Ok(mut ready) => match ready.send_request(request, false) {
                Ok((_, mut body)) => body.send_reset(h2::Reason::CANCEL),
                Err(_) => {
                    refused = true;
                    break;
                }
            },
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(refused || up.hits() < 2000, "the flood was not cut off");
    assert!(
        up.hits() < 200,
        "{} requests reached the upstream",
        up.hits()
    );
    let client = edge.client(&["app.localhost"], None);
    assert_eq!(edge.status(&client, "app.localhost", "/").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_replica_gets_504_after_the_upstream_timeout() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "upstream_timeout_ms = 500",
        &site(&["app.localhost"], &[up.addr], ""),
    )
    .await;
    let client = edge.client(&["app.localhost"], None);
    let started = Instant::now();
    assert_eq!(edge.status(&client, "app.localhost", "/silent").await, 504);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // A silent request is not retried elsewhere or again: one hit.
    assert_eq!(up.hits(), 1);
    // The replica itself is still served.
    assert_eq!(edge.status(&client, "app.localhost", "/").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    for listen in ["", "workers = 2"] {
        shutdown_drains(listen).await;
    }
}

/// On the caller's runtime (`""`) and on the edge's own HTTPS workers.
async fn shutdown_drains(listen: &str) {
    let up = Upstream::start("one").await;
    let edge =
        TestEdge::start_with_listen(listen, "", &site(&["app.localhost"], &[up.addr], "")).await;
    let client = edge.client(&["app.localhost"], None);
    let url = edge.url("app.localhost", "/slow");
    let in_flight =
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = edge.https();
    edge.edge.shutdown().await;
    // The drained request's access event is in the file when shutdown ends
    // (it is emitted last, so without the final flush it is often missing).
    let log = std::fs::read_to_string(edge.dir.path().join("access.jsonl")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("\"path\":\"/slow\"")),
        "{log}"
    );
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_connection_caps_hold() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "idle_timeout_ms = 500\nconnections_per_ip = 5",
        &site(&["app.localhost"], &[up.addr], ""),
    )
    .await;
    // A keep-alive connection that goes quiet after one request is closed.
    let mut stream = one_http1_request(&edge.ca, edge.https()).await;
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(closed, "the idle connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Five connections from one address are allowed; the sixth is closed.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tls(edge.https(), "127.0.0.7", &edge.ca, &[b"http/1.1"]).await);
    }
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.7:0".parse().unwrap()).unwrap();
    let tcp = socket.connect(edge.https()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("app.localhost").unwrap();
    let sixth = connector(&edge.ca, &[b"http/1.1"]).connect(name, tcp).await;
    assert!(sixth.is_err(), "the sixth connection got through");
    // Another address is not affected.
    let client = edge.client(&["app.localhost"], Some("127.0.0.8".parse().unwrap()));
    assert_eq!(edge.status(&client, "app.localhost", "/").await, 200);
    drop(held);
}

/// A replica that answers a WebSocket upgrade with 101 and then echoes
/// bytes, `/request-line` with the request line it got, and anything else
/// with whether it saw an Upgrade header.
async fn upgrade_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if head.contains("upgrade: websocket") {
                    let _ = stream
                        .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
                        .await;
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                } else {
                    let first = head.lines().next().unwrap_or("").to_owned();
                    let body = if first.contains("/request-line") {
                        first.as_str()
                    } else if head.contains("\r\nupgrade:") {
                        "upgrade-seen"
                    } else {
                        "no-upgrade"
                    };
                    let _ = stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .await;
                }
            });
        }
    });
    addr
}

async fn read_head(stream: &mut TlsStream<tokio::net::TcpStream>) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_tunnelled_and_h2c_upgrades_are_not() {
    let upstream = upgrade_upstream().await;
    let edge = TestEdge::start("", &site(&["app.localhost"], &[upstream], "")).await;

    let mut ws = tls(edge.https(), "127.0.0.1", &edge.ca, &[b"http/1.1"]).await;
    ws.write_all(
        b"GET /socket HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut ws).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    for message in [&b"ping"[..], b"a longer frame of bytes \x00\x01\x02"] {
        ws.write_all(message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), ws.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, message);
    }

    // An h2c upgrade is a plain request to the replica, without Upgrade.
    let mut h2c = tls(edge.https(), "127.0.0.1", &edge.ca, &[b"http/1.1"]).await;
    h2c.write_all(
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut h2c).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = [0u8; 10];
    h2c.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"no-upgrade");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_get_requests_in_origin_form() {
    let upstream = upgrade_upstream().await;
    let edge = TestEdge::start("", &site(&["app.localhost"], &[upstream], "")).await;
    let body = edge
        .client(&["app.localhost"], None)
        .post(edge.url("app.localhost", "/request-line?a=1&b=%20"))
        .body("x")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Lowercased by the replica above; not `post http://10.…/request-line`.
    assert_eq!(body, "post /request-line?a=1&b=%20 http/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_stay_at_the_edge() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start("", &site(&["app.localhost"], &[up.addr], "")).await;
    let mut stream = tls(edge.https(), "127.0.0.1", &edge.ca, &[b"http/1.1"]).await;
    stream
        .write_all(
            b"GET /hop HTTP/1.1\r\nHost: app.localhost\r\n\
              Connection: keep-alive, X-Session-Secret\r\nX-Session-Secret: 1\r\n\
              Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
              X-Kept: 2\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = up.last_headers.lock().unwrap().clone();
    assert_eq!(seen["x-kept"], "2");
    assert_eq!(seen["host"], "app.localhost");
    for name in [
        "connection",
        "x-session-secret",
        "keep-alive",
        "proxy-connection",
        "te",
    ] {
        assert!(seen.get(name).is_none(), "{name} reached the replica");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_two_host_headers_is_refused() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start("", &site(&["app.localhost"], &[up.addr], "")).await;
    let mut stream = tls(edge.https(), "127.0.0.1", &edge.ca, &[b"http/1.1"]).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: other.localhost\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.contains("strict-transport-security"), "{head}");
    // Plain HTTP does not redirect it either.
    let mut plain = tokio::net::TcpStream::connect(edge.edge.addrs().http)
        .await
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: evil.example\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 12];
    plain.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 400");
    assert_eq!(up.hits(), 0, "nothing reached the replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_keep_alive_connection_is_closed_after_the_header_timeout() {
    let up = Upstream::start("one").await;
    let edge = TestEdge::start(
        "header_timeout_ms = 1000\nidle_timeout_ms = 30000",
        &site(&["app.localhost"], &[up.addr], ""),
    )
    .await;
    let mut stream = one_http1_request(&edge.ca, edge.https()).await;
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The waiting for the next request head is timed like the first one,
    // well before the idle timeout.
    let waited = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "the keep-alive connection stayed open");
    let after = waited.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
}

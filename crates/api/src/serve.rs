//! The HTTPS accept loop: TLS handshake with a deadline, HTTP/1.1 and
//! HTTP/2 with armed timeouts, a connection cap, graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rampart_platform::listen;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle HTTP/2 connection is pinged to see that it lives.
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 1024;

/// Serves `router` over TLS on `listener` until `shutdown` completes, then
/// waits up to `drain` for in-flight requests to finish.
/// The client address of a request.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper only enforces the header timeout when it has a timer.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(H2_PING_EVERY);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));

    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listen::accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing a new connection");
            continue;
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        // Handlers that throttle by client (logins) read its address.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(Peer(peer.ip()));
                request
            },
        ));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let Some(stream) = listen::handshake(&acceptor, stream, peer, HANDSHAKE_TIMEOUT).await
            else {
                return;
            };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all API connections closed"),
        () = tokio::time::sleep(drain) => tracing::warn!("API connections still open after the drain deadline"),
    }
}

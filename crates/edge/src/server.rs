//! Listeners: HTTPS (TLS handshake with a deadline, HTTP/1.1 and HTTP/2 with
//! armed timeouts and limits), plain HTTP (challenges and redirects), and
//! the admin listener (`/metrics`). Each stops accepting on shutdown and
//! lets in-flight requests finish until the drain deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::body::BoxBody;
use crate::config::Limits;
use crate::idle::IdleIo;
use crate::listen;
use crate::proxy::{Conn, Shared, handle_http, handle_https};

/// How often an idle HTTP/2 client connection is pinged, and how long the
/// answer may take before the connection is closed.
const H2_PING_EVERY: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a plain-HTTP client has to send its request head (the listener
/// only answers challenges and redirects).
const PLAIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP server builder with every timeout armed and every limit set.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper silently disables its header timeout without a timer.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_pending_accept_reset_streams(limits.h2_max_pending_reset_streams)
        .max_local_error_reset_streams(Some(1024))
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

fn tls_version(conn: &rustls::ServerConnection) -> Option<&'static str> {
    match conn.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => Some("other"),
    }
}

/// Serves HTTPS until `stop` turns true, then drains.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listen::accept(&listener) => accepted,
            _ = stop.changed() => break,
        };
        let slot = match shared.shields.connect(peer.ip()) {
            Ok(slot) => slot,
            Err(kind) => {
                shared.metrics.shield(kind);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let limits = shared.limits.load_full();
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let Some(stream) =
                listen::handshake(&acceptor, stream, peer, limits.header_timeout).await
            else {
                return;
            };
            let conn = Conn::new(peer, tls_version(stream.get_ref().1));
            let io = TokioIo::new(IdleIo::new(stream, limits.idle_timeout));
            let service = service_fn(move |req: Request<Incoming>| {
                let (shared, conn) = (shared.clone(), conn.clone());
                async move { Ok::<_, std::convert::Infallible>(handle_https(shared, conn, req).await) }
            });
            let builder = builder(&limits);
            let connection = builder.serve_connection_with_upgrades(io, service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, %error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    drain(graceful, &shared).await;
}

/// Serves plain HTTP (challenges and redirects) until `stop`.
pub async fn serve_http(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listen::accept(&listener) => accepted,
            _ = stop.changed() => break,
        };
        let slot = match shared.shields.connect(peer.ip()) {
            Ok(slot) => slot,
            Err(kind) => {
                shared.metrics.shield(kind);
                continue;
            }
        };
        let limits = shared.limits.load_full();
        let shared = shared.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let conn = Conn::new(peer, None);
            let io = TokioIo::new(IdleIo::new(stream, limits.idle_timeout));
            let service = service_fn(move |req: Request<Incoming>| {
                let (shared, conn) = (shared.clone(), conn.clone());
                async move { Ok::<_, std::convert::Infallible>(handle_http(shared, conn, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192));
            let connection = builder.serve_connection(io, service);
            let _ = watcher.watch(connection).await;
        });
    }
    drop(listener);
    drain(graceful, &shared).await;
}

async fn drain(graceful: GracefulShutdown, shared: &Shared) {
    let deadline = shared.limits.load().drain_timeout;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(deadline) => tracing::warn!("connections still open at the drain deadline"),
    }
}

/// The admin listener: `/metrics` and `/healthz`.
pub async fn serve_admin<F, Fut>(listener: TcpListener, render: F, mut stop: watch::Receiver<bool>)
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = String> + Send,
{
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = stop.changed() => break,
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let render = render.clone();
                async move {
                    let (status, body, ct) = match req.uri().path() {
                        "/metrics" => (
                            StatusCode::OK,
                            render().await,
                            "text/plain; version=0.0.4; charset=utf-8",
                        ),
                        "/healthz" => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
                        _ => (
                            StatusCode::NOT_FOUND,
                            "not found\n".to_owned(),
                            "text/plain",
                        ),
                    };
                    let mut response: Response<BoxBody> = Response::new(
                        Full::new(Bytes::from(body))
                            .map_err(|never| match never {})
                            .boxed(),
                    );
                    *response.status_mut() = status;
                    if let Ok(v) = hyper::header::HeaderValue::from_str(ct) {
                        response
                            .headers_mut()
                            .insert(hyper::header::CONTENT_TYPE, v);
                    }
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(PLAIN_HEADER_TIMEOUT);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

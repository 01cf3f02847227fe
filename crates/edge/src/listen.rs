//! Taking connections in: the accept that survives running out of
//! descriptors and the TLS handshake with a deadline. The edge's listeners
//! and the platform's API listener share them.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The pause after a failed accept (out of descriptors, say) before the
/// next, so a listener backs off instead of spinning.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(20);

/// The next connection on `listener`. Accept errors (usually a full
/// descriptor table) are logged and retried after [`ACCEPT_RETRY`];
/// cancelling the future loses no connection.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// The TLS handshake of a new connection, abandoned after `deadline`; a
/// failed or slow handshake is logged at debug and gives `None`.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    deadline: Duration,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

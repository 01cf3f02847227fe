//! The relay: how the edge on a Swarm manager reaches replicas on the apps'
//! overlay networks, and the [`Dialer`] that opens every connection to a
//! replica, straight or through it.
//!
//! An overlay network lives in network namespaces the engine makes for the
//! containers attached to it; the host itself has no address on it, so the
//! edge and the health checks cannot open a connection to a task's address
//! directly. The relay is a container of the platform's own binary
//! (`rampart relay`), attached to every app's overlay and to nothing else,
//! listening only on a Unix socket in the data directory. A client writes
//! one line, `ADDRESS:PORT\n`, and reads one byte: `1` when the relay has
//! connected, after which the connection carries the bytes both ways, or
//! `0` when it could not (the request never reached a replica).
//!
//! It opens no port on any network: a replica that can reach the relay's
//! address on its overlay finds nothing listening, and the relay's network
//! namespace forwards no packets between the overlays it sits on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

/// The longest request line: an IPv6 address with brackets, a port and the
/// newline fit well within it.
pub const MAX_REQUEST: usize = 64;
/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the relay tries to reach a replica.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Accepts clients on `socket` (replacing a stale one) until an error ends
/// the listener; each client gets its own task.
pub async fn serve(socket: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(error) = relay(client).await {
                tracing::debug!(%error, "a relayed connection ended with an error");
            }
        });
    }
}

/// Reads the request line: an address and port, nothing else.
pub async fn read_request(client: &mut UnixStream) -> std::io::Result<SocketAddr> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = Vec::with_capacity(MAX_REQUEST);
    let read = async {
        let mut byte = [0u8; 1];
        loop {
            if client.read(&mut byte).await? == 0 {
                return Err(invalid("the client closed before its request"));
            }
            if byte[0] == b'\n' {
                return Ok(());
            }
            if line.len() == MAX_REQUEST {
                return Err(invalid("the request line is too long"));
            }
            line.push(byte[0]);
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .map_err(|_| invalid("no request line in time"))??;
    std::str::from_utf8(&line)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| invalid("the request is not ADDRESS:PORT"))
}

async fn relay(mut client: UnixStream) -> std::io::Result<()> {
    let addr = match read_request(&mut client).await {
        Ok(addr) => addr,
        Err(error) => {
            let _ = client.write_all(b"0").await;
            return Err(error);
        }
    };
    let upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
    let mut upstream = match upstream {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(error)) => {
            client.write_all(b"0").await?;
            return Err(error);
        }
        Err(_) => {
            client.write_all(b"0").await?;
            return Ok(());
        }
    };
    upstream.set_nodelay(true)?;
    client.write_all(b"1").await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Opens a connection to `addr` through the relay listening on `socket`.
pub async fn connect(socket: &Path, addr: SocketAddr) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket).await?;
    stream.write_all(format!("{addr}\n").as_bytes()).await?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await?;
    if answer[0] == b'1' {
        Ok(stream)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("the relay could not reach {addr}"),
        ))
    }
}

/// Opens connections to replicas: straight to their address, or through
/// the relay for an address in one of the networks it serves.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    relay: Option<Arc<Route>>,
}

#[derive(Debug)]
struct Route {
    socket: PathBuf,
    networks: Vec<IpNet>,
}

impl Dialer {
    /// Every connection goes straight to its address.
    pub fn direct() -> Self {
        Self::default()
    }

    /// Connections to addresses in `networks` go through the relay on
    /// `socket`; others straight.
    pub fn through_relay(socket: PathBuf, networks: Vec<IpNet>) -> Self {
        Self {
            relay: Some(Arc::new(Route { socket, networks })),
        }
    }

    /// A connection to `addr`, with Nagle's delay off.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<Conn> {
        match &self.relay {
            Some(route) if route.networks.iter().any(|n| n.contains(&addr.ip())) => {
                connect(&route.socket, addr).await.map(Conn::Relayed)
            }
            _ => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Ok(Conn::Tcp(stream))
            }
        }
    }
}

/// A connection to a replica.
#[derive(Debug)]
pub enum Conn {
    Tcp(TcpStream),
    Relayed(UnixStream),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Relayed(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Relayed(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Relayed(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Relayed(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Relayed(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Relayed(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn relay_in(dir: &Path) -> std::path::PathBuf {
        let socket = dir.join("relay.sock");
        let path = socket.clone();
        tokio::spawn(async move { serve(&path).await });
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        socket
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_and_unreachable_or_bad_requests_get_a_zero() {
        let dir = tempfile::tempdir().unwrap();
        let socket = relay_in(dir.path()).await;
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&socket).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let mut stream = connect(&socket, addr).await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");

        // Nothing listens there: refused, as a connect error.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let error = connect(&socket, closed).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);

        // The dialer sends addresses in the relay's networks through it,
        // others straight.
        let echo = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let direct = echo.local_addr().unwrap();
        let dialer = Dialer::through_relay(socket.clone(), vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(matches!(
            dialer.connect(direct).await.unwrap(),
            Conn::Tcp(_)
        ));
        let error = dialer.connect(closed).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(error.to_string().contains("relay"), "{error}");

        // Garbage, an overlong line and a name instead of an address: a
        // zero, and nothing is dialled.
        for bad in [
            &b"\x00\xff\n"[..],
            &[b'1'; MAX_REQUEST + 10][..],
            b"example.com:80\n",
            b"127.0.0.1\n",
        ] {
            let mut s = UnixStream::connect(&socket).await.unwrap();
            s.write_all(bad).await.unwrap();
            let mut answer = [0u8; 1];
            s.read_exact(&mut answer).await.unwrap();
            assert_eq!(answer[0], b'0', "{bad:?}");
        }
    }
}

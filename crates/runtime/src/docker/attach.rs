//! Attaching to a container's terminal over the engine's socket.
//!
//! bollard's attach decodes what it reads as the engine's multiplexed
//! stream whenever a read starts with a byte below 3, and then waits for as
//! many bytes as the next four announce. A terminal's output is not
//! multiplexed, so a command printing `\x01` and four bytes of length could
//! make the platform buffer gigabytes. This attach reads the upgraded
//! connection as the raw bytes it is.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http_body_util::Empty;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

use crate::{Attached, RuntimeError};

/// The engine's socket, as bollard finds it: `DOCKER_HOST` when it names a
/// Unix socket, the default one otherwise.
pub(crate) fn socket_path() -> String {
    let named = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(str::to_owned));
    named.unwrap_or_else(|| "/var/run/docker.sock".to_owned())
}

/// An HTTP/1.1 connection to the engine's socket; the caller drives the
/// connection half.
pub(crate) async fn engine_connection() -> Result<
    (
        hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        hyper::client::conn::http1::Connection<TokioIo<tokio::net::UnixStream>, Empty<Bytes>>,
    ),
    RuntimeError,
> {
    let unreachable = |e: &dyn std::fmt::Display| RuntimeError::Unreachable(e.to_string());
    let stream = tokio::net::UnixStream::connect(socket_path())
        .await
        .map_err(|e| unreachable(&e))?;
    hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))
}

/// Attaches to the input and output of container `id`, which has a
/// terminal.
pub(super) async fn attach(id: &str) -> Result<Attached, RuntimeError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(RuntimeError::NoContainer(id.to_owned()));
    }
    let unreachable = |e: &dyn std::fmt::Display| RuntimeError::Unreachable(e.to_string());
    let (mut sender, connection) = engine_connection().await?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "the engine's attach connection ended with an error");
        }
    });
    let request = Request::post(format!(
        "/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1"
    ))
    .header(HOST, "docker")
    .header(CONNECTION, "Upgrade")
    .header(UPGRADE, "tcp")
    .body(Empty::<Bytes>::new())
    .map_err(|e| RuntimeError::Engine(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(&e))?;
    match response.status() {
        StatusCode::SWITCHING_PROTOCOLS => {}
        StatusCode::NOT_FOUND => return Err(RuntimeError::NoContainer(id.to_owned())),
        status => {
            return Err(RuntimeError::Engine(format!(
                "attaching to {id} answered {status}"
            )));
        }
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| RuntimeError::Engine(e.to_string()))?;
    let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
    Ok(Attached {
        output: raw_chunks(reader),
        input: Box::pin(writer),
    })
}

/// What `reader` yields, in chunks of at most 16 KiB, until it ends.
fn raw_chunks(
    reader: impl tokio::io::AsyncRead + Send + Unpin + 'static,
) -> BoxStream<'static, Result<Bytes, RuntimeError>> {
    futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; 16 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(reader)))
            }
            Err(e) => Some((Err(RuntimeError::Engine(e.to_string())), None)),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_terminals_output_is_passed_on_as_the_bytes_it_is() {
        // What bollard's decoder would take for a header announcing 4 GiB.
        let sneaky: &[u8] = b"\x01\x00\x00\x00\xff\xff\xff\xffafter";
        let (mut near, far) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            near.write_all(sneaky).await.unwrap();
        });
        let got: Vec<u8> = raw_chunks(far)
            .map(|chunk| chunk.unwrap().to_vec())
            .concat()
            .await;
        assert_eq!(got, sneaky);
    }

    #[tokio::test]
    async fn only_container_ids_reach_the_request_line() {
        for id in ["a b", "x/../../images", "id?stdin=0", ""] {
            let error = attach(id).await.unwrap_err();
            assert!(
                matches!(error, RuntimeError::NoContainer(_)),
                "{id}: {error}"
            );
        }
    }
}

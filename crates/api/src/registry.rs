//! The image registry a Swarm's nodes pull release images from: the read
//! side of the Docker Registry HTTP API v2, for manifests by digest and
//! the blobs they name, nothing else (no tags, no catalog, no uploads).
//!
//! It listens apart from the control-plane API (`runtime.registry`), since
//! every node must reach it and nothing else needs to. Each request carries
//! a per-repository credential (HTTP Basic, over TLS from the internal CA);
//! a credential reads its own repository only. What is stored, and how the
//! credentials are derived, is `rampart_runtime::swarm::registry`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use rampart_runtime::swarm::registry::{BlobDigest, MANIFEST_TYPE, Registry};
use tokio::io::AsyncReadExt;

const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");
const CHUNK: usize = 64 * 1024;

/// The registry's routes: every path goes through one handler, which
/// answers only what it recognises.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new().fallback(handle).with_state(registry)
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    /// `/v2/`: the version check, which also tells a client how to log in.
    Base,
    Manifest(&'a str, BlobDigest),
    Blob(&'a str, BlobDigest),
}

/// Parses `/v2/<namespace>/<app>/(manifests|blobs)/<digest>`; references
/// other than digests (tags) are not served.
fn target(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2/")?;
    if rest.is_empty() {
        return Some(Target::Base);
    }
    let (repository, rest) = match rest.rfind("/manifests/") {
        Some(i) => (&rest[..i], ("manifests", &rest[i + "/manifests/".len()..])),
        None => {
            let i = rest.rfind("/blobs/")?;
            (&rest[..i], ("blobs", &rest[i + "/blobs/".len()..]))
        }
    };
    rampart_runtime::swarm::registry::app_of(repository)?;
    let digest = BlobDigest::parse(rest.1)?;
    Some(match rest.0 {
        "manifests" => Target::Manifest(repository, digest),
        _ => Target::Blob(repository, digest),
    })
}

/// The user and password of an HTTP Basic `Authorization` header.
pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The repository the request's credential may read.
fn authenticated(registry: &Registry, headers: &HeaderMap) -> Option<String> {
    let (user, password) = basic(headers)?;
    registry.authenticate(&user, &password)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] });
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"rampart\""),
        );
    }
    response
}

async fn handle(
    State(registry): State<Arc<Registry>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "this registry is read-only",
        );
    }
    let Some(target) = target(uri.path()) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "no such repository or reference",
        );
    };
    let Some(allowed) = authenticated(&registry, &headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a pull credential is required",
        );
    };
    let (path, content_type, digest) = match target {
        Target::Base => {
            let mut response = axum::Json(serde_json::json!({})).into_response();
            response
                .headers_mut()
                .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
            return response;
        }
        Target::Manifest(repository, _) | Target::Blob(repository, _) if repository != allowed => {
            // The same answer as for a repository that does not exist.
            return error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "this credential reads another repository",
            );
        }
        Target::Manifest(repository, digest) => match registry.manifest(repository, &digest) {
            Some(path) => (path, MANIFEST_TYPE, digest),
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "no such manifest",
                );
            }
        },
        Target::Blob(repository, digest) => match registry.blob(repository, &digest) {
            Some(path) => (path, "application/octet-stream", digest),
            None => return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "no such blob"),
        },
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "registry: cannot open a blob");
            return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "no such blob");
        }
    };
    let length = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(_) => return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "no such blob"),
    };
    tracing::debug!(%digest, %allowed, "registry: serving");
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(chunks(file))
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) = HeaderValue::from_str(&digest.to_string()) {
        headers.insert("docker-content-digest", value);
    }
    response
}

/// The file's bytes in chunks; a read error ends the stream with it.
fn chunks(file: tokio::fs::File) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0u8; CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    async fn call(
        registry: &Arc<Registry>,
        method: Method,
        path: &str,
        credential: Option<(&str, &str)>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        use tower::ServiceExt;
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some((user, password)) = credential {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header(header::AUTHORIZATION, format!("Basic {token}"));
        }
        let response = router(registry.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn a_pull_needs_the_credential_of_its_own_repository() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::new("10.0.0.1:7444", dir.path(), [3; 32]));
        let shop = registry.credential("rampart/shop");
        let blog = registry.credential("rampart/blog");
        let shop_auth = Some((shop.user.as_str(), shop.password.as_str()));
        let manifest = format!("/v2/rampart/shop/manifests/{DIGEST}");

        let (status, headers, _) = call(&registry, Method::GET, "/v2/", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Basic realm=\"rampart\"");
        assert_eq!(headers[API_VERSION.0], API_VERSION.1);
        let (status, _, _) = call(&registry, Method::GET, "/v2/", shop_auth).await;
        assert_eq!(status, StatusCode::OK);

        // Another app's credential, a forged one, and none: refused alike.
        for credential in [
            Some((blog.user.as_str(), blog.password.as_str())),
            Some(("rampart/shop", blog.password.as_str())),
            Some(("rampart/shop", "")),
            None,
        ] {
            let (status, _, body) = call(&registry, Method::GET, &manifest, credential).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{credential:?}");
            assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
        }
        let (status, _, body) = call(&registry, Method::GET, &manifest, shop_auth).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing is published");
        assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");
        let blob = format!("/v2/rampart/shop/blobs/{DIGEST}");
        let (status, _, _) = call(&registry, Method::HEAD, &blob, shop_auth).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Read-only, and nothing beyond digests in our namespace.
        for method in [Method::PUT, Method::POST, Method::DELETE, Method::PATCH] {
            let (status, _, _) = call(&registry, method, &manifest, shop_auth).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        }
        for path in [
            "/v2/_catalog",
            "/v2/rampart/shop/tags/list",
            "/",
            "/api/apps",
        ] {
            let (status, _, _) = call(&registry, Method::GET, path, shop_auth).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        // A malformed Authorization header is no credential.
        let (status, _, _) = call(&registry, Method::GET, "/v2/", Some(("\u{0}", "x"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing written"
        );
    }

    #[test]
    fn only_digest_references_in_our_namespace_are_targets() {
        assert_eq!(target("/v2/"), Some(Target::Base));
        let digest = BlobDigest::parse(DIGEST).unwrap();
        assert_eq!(
            target(&format!("/v2/rampart/shop/manifests/{DIGEST}")),
            Some(Target::Manifest("rampart/shop", digest))
        );
        assert_eq!(
            target(&format!("/v2/rampart/shop/blobs/{DIGEST}")),
            Some(Target::Blob("rampart/shop", digest))
        );
        for bad in [
            "/v2",
            "/v2/rampart/shop/manifests/latest",
            &format!("/v2/rampart/../x/blobs/{DIGEST}"),
            &format!("/v2/other/shop/blobs/{DIGEST}"),
            &format!("/v2/rampart/shop/x/blobs/{DIGEST}"),
            &format!("/v2/rampart/Shop/blobs/{DIGEST}"),
            &format!("/v2/rampart/shop/blobs/{}", DIGEST.to_uppercase()),
            &format!("/v2/rampart/shop/blobs/{DIGEST}/"),
            "/v2/_catalog",
            "/v2/rampart/shop/tags/list",
            "/v2/rampart/shop/blobs/uploads/",
        ] {
            assert_eq!(target(bad), None, "{bad}");
        }
    }
}

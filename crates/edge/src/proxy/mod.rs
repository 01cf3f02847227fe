//! The request path: shields, routing, proxying to a healthy replica,
//! security headers, and one access event per request. Nothing here panics
//! on client input; every refusal is a status, a metric and an event.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};

use crate::access::{AccessEvent, AccessLog};
use crate::acme::Challenges;
use crate::body::{BodyError, BoxBody, GuardedBody, Tracked, empty_body, text_body};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::routes::{RouteTable, SiteSpec};
use crate::shield::{ShieldAction, Shields};
use crate::upstream::{Pool, SendError};

mod headers;
mod wellknown;
use headers::*;
pub use wellknown::{ReportSink, SubmittedReport, WellKnown};

/// A routing table with the replica pools of its sites, swapped whole.
#[derive(Debug, Default)]
pub struct Table {
    pub routes: RouteTable,
    /// One pool per site, in the table's order.
    pub pools: Vec<Arc<Pool>>,
    /// Request counters per site, in the table's order (one reference to
    /// clone per request, not one per status class).
    pub counters: Vec<Arc<crate::metrics::SiteCounters>>,
}

/// What every request handler shares.
#[derive(Debug)]
pub struct Shared {
    pub table: ArcSwap<Table>,
    pub limits: ArcSwap<Limits>,
    pub shields: Arc<Shields>,
    /// How connections to replicas are opened (straight, or through a
    /// Swarm's relay).
    pub dialer: ArcSwap<crate::relay::Dialer>,
    pub metrics: Arc<Metrics>,
    pub access: AccessLog,
    pub challenges: Arc<Challenges>,
    /// The HTTPS port clients use, for redirects.
    pub https_port: u16,
    /// Each host's security.txt and the report intake.
    pub well_known: Arc<WellKnown>,
}

/// The connection a request came on.
#[derive(Debug, Clone)]
pub struct Conn {
    pub peer: SocketAddr,
    pub tls_version: Option<&'static str>,
    /// The client's address as `X-Forwarded-For` gives it, made once per
    /// connection.
    pub forwarded_for: HeaderValue,
}

impl Conn {
    pub fn new(peer: SocketAddr, tls_version: Option<&'static str>) -> Self {
        let client = crate::routes::canonical(peer.ip()).to_string();
        Self {
            peer,
            tls_version,
            forwarded_for: HeaderValue::from_str(&client)
                .expect("an IP address is a valid header value"),
        }
    }
}

/// What the access event needs to know about a request.
struct Meta {
    /// Read only when the access log is on, so taken only then.
    started: Option<Instant>,
    client: IpAddr,
    host: String,
    method: String,
    path: String,
    request_id: HeaderValue,
    tls_version: Option<&'static str>,
    site: String,
    counters: Option<Arc<crate::metrics::SiteCounters>>,
    bytes_in: Arc<AtomicU64>,
}

fn finish(
    shared: &Shared,
    meta: Meta,
    status: StatusCode,
    upstream: Option<SocketAddr>,
    shield: Option<ShieldAction>,
    bytes_out: u64,
) {
    match &meta.counters {
        Some(counters) => counters.count(status.as_u16()),
        None => {
            let site = if meta.site.is_empty() {
                "-"
            } else {
                &meta.site
            };
            shared.metrics.request(site, status.as_u16())
        }
    }
    if let Some(kind) = shield {
        shared.metrics.shield(kind);
    }
    if !shared.access.is_active() {
        return;
    }
    shared.access.emit(AccessEvent {
        time: time::OffsetDateTime::now_utc(),
        client_ip: meta.client,
        host: meta.host,
        method: meta.method,
        path: meta.path,
        status: status.as_u16(),
        bytes_in: meta.bytes_in.load(Ordering::Relaxed),
        bytes_out,
        duration_ms: meta
            .started
            .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0),
        upstream,
        request_id: meta.request_id.to_str().unwrap_or_default().to_owned(),
        tls_version: meta.tls_version,
        shield,
    });
}

/// A response made by the edge itself.
fn local(
    shared: &Shared,
    meta: Meta,
    site: Option<&SiteSpec>,
    status: StatusCode,
    text: &'static str,
    shield: Option<ShieldAction>,
    extra: Option<(HeaderName, HeaderValue)>,
) -> Response<BoxBody> {
    let mut response = Response::new(text_body(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(X_REQUEST_ID, meta.request_id.clone());
    if let Some((name, value)) = extra {
        headers.insert(name, value);
    }
    if meta.tls_version.is_some() {
        secure_headers(headers, site);
    }
    finish(shared, meta, status, None, shield, text.len() as u64);
    response
}

/// 400 for a request the edge will not pass on as it stands.
/// Why the edge answers a request itself, before any upstream work.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Banned,
    DoubledHost,
    UnknownHost,
    Denied,
    RateLimited(Duration),
    HeaderTooLarge,
    BodyTooLarge,
}

impl Refusal {
    /// The table of refusals: the status, the body and the shield action
    /// each is counted as.
    fn answer(self) -> (StatusCode, &'static str, Option<ShieldAction>) {
        use ShieldAction as A;
        match self {
            Refusal::Banned => (StatusCode::FORBIDDEN, "Forbidden\n", Some(A::Banned)),
            Refusal::DoubledHost => (StatusCode::BAD_REQUEST, "Bad Request\n", None),
            Refusal::UnknownHost => (
                StatusCode::MISDIRECTED_REQUEST,
                "Misdirected Request: no site is served at this host name.\n",
                Some(A::UnknownHost),
            ),
            Refusal::Denied => (StatusCode::FORBIDDEN, "Forbidden\n", Some(A::Denied)),
            Refusal::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests\n",
                Some(A::RateLimited),
            ),
            Refusal::HeaderTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request Header Fields Too Large\n",
                Some(A::HeaderTooLarge),
            ),
            Refusal::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload Too Large\n",
                Some(A::BodyTooLarge),
            ),
        }
    }
}

/// The edge's own answer to a refused request.
fn refuse(
    shared: &Shared,
    meta: Meta,
    site: Option<&SiteSpec>,
    refusal: Refusal,
) -> Response<BoxBody> {
    let (status, body, action) = refusal.answer();
    let retry = match refusal {
        Refusal::RateLimited(wait) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Some((header::RETRY_AFTER, HeaderValue::from(secs.max(1))))
        }
        _ => None,
    };
    local(shared, meta, site, status, body, action, retry)
}

fn bad_request(shared: &Shared, meta: Meta) -> Response<BoxBody> {
    local(
        shared,
        meta,
        None,
        StatusCode::BAD_REQUEST,
        "Bad Request\n",
        None,
        None,
    )
}

/// A response made by the edge for a site, with no shield involved.
fn plain(
    shared: &Shared,
    meta: Meta,
    site: &SiteSpec,
    status: StatusCode,
    text: &'static str,
) -> Response<BoxBody> {
    local(shared, meta, Some(site), status, text, None, None)
}

/// At most `max` characters of `text`.
fn prefix(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn body_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(body) = e.downcast_ref::<BodyError>() {
            return Some(body);
        }
        source = e.source();
    }
    None
}

/// Serves one HTTPS request.
pub async fn handle_https(
    shared: Arc<Shared>,
    conn: Conn,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    let limits = shared.limits.load_full();
    let client = crate::routes::canonical(conn.peer.ip());
    let host = host_value(&req);
    let doubled = host.is_err();
    let host = host.unwrap_or_default();
    let host_name = host
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Host, method and path are kept only for the access event.
    let logging = shared.access.is_active();
    let mut meta = Meta {
        started: logging.then(Instant::now),
        client,
        host: if logging {
            prefix(host_name, 256)
        } else {
            String::new()
        },
        method: if logging {
            req.method().to_string()
        } else {
            String::new()
        },
        path: if logging {
            req.uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .chars()
                .take(2048)
                .collect()
        } else {
            String::new()
        },
        request_id: request_id(),
        tls_version: conn.tls_version,
        site: String::new(),
        counters: None,
        bytes_in: Arc::new(AtomicU64::new(0)),
    };
    // Admission, in order: nothing below reaches an upstream.
    if shared.shields.is_banned_on(client, host_name) {
        return refuse(&shared, meta, None, Refusal::Banned);
    }
    if doubled {
        return refuse(&shared, meta, None, Refusal::DoubledHost);
    }
    let table = shared.table.load_full();
    let (Some((index, site)), Some(host)) = (table.routes.find(host_name), host) else {
        return refuse(&shared, meta, None, Refusal::UnknownHost);
    };
    meta.counters = table.counters.get(index).cloned();
    if meta.counters.is_none() {
        // Only the fallback metric lookup needs the name.
        meta.site = site.name();
    }
    if !site.admits(client) {
        return refuse(&shared, meta, Some(site), Refusal::Denied);
    }
    if let Err(wait) = shared.shields.check_rate(client) {
        return refuse(&shared, meta, Some(site), Refusal::RateLimited(wait));
    }
    if header_bytes(req.headers()) > limits.max_header_bytes {
        return refuse(&shared, meta, Some(site), Refusal::HeaderTooLarge);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return refuse(&shared, meta, Some(site), Refusal::BodyTooLarge);
    }
    let pool = table.pools.get(index).cloned();
    let site = site.clone();
    drop(table);
    // Only requests under /.well-known/security* pay for the look.
    let (meta, req) = if req.uri().path().starts_with(wellknown::PREFIX) {
        let asked = host.to_str().unwrap_or_default().to_owned();
        match wellknown::answer(&shared, meta, &site, &asked, client, req).await {
            Ok(response) => return response,
            Err(unanswered) => unanswered,
        }
    } else {
        (meta, req)
    };
    let forward = Forward {
        client: conn.forwarded_for,
        host,
    };
    proxy(shared, limits, meta, forward, site, pool, req).await
}

/// What the edge tells a replica about the request it passes on.
struct Forward {
    /// `X-Forwarded-For`.
    client: HeaderValue,
    /// `X-Forwarded-Host`, and `Host`.
    host: HeaderValue,
}

/// Joins the client's upgraded connection to the replica's.
fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (Ok(client), Ok(upstream)) = (client.await, upstream.await) else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
}

async fn proxy(
    shared: Arc<Shared>,
    limits: Arc<Limits>,
    meta: Meta,
    forward: Forward,
    site: Arc<SiteSpec>,
    pool: Option<Arc<Pool>>,
    mut req: Request<Incoming>,
) -> Response<BoxBody> {
    let mut client_upgrade = wants_websocket(&req).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let retryable = idempotent(&parts.method) && body.is_end_stream();
    // A request that ends with its head (most GETs) has no body to limit
    // or time.
    let mut body = Some(if body.is_end_stream() {
        empty_body()
    } else {
        GuardedBody {
            inner: body,
            limit: limits.max_body_bytes,
            seen: meta.bytes_in.clone(),
            timeout: limits.body_timeout,
            last: tokio::time::Instant::now(),
            sleep: None,
        }
        .boxed()
    });

    strip_hop_by_hop(&mut parts.headers);
    if client_upgrade.is_some() {
        mark_websocket(&mut parts.headers);
    }
    if parts.headers.keys().any(|name| EDGE_SET.contains(name)) {
        for name in EDGE_SET {
            parts.headers.remove(name);
        }
    }
    parts.headers.reserve(4);
    parts.headers.insert(X_FORWARDED_FOR, forward.client);
    parts
        .headers
        .insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    parts.headers.insert(X_FORWARDED_HOST, forward.host.clone());
    // Always set, so a request with two Host headers reaches the replica
    // with the one the edge routed on.
    parts.headers.insert(header::HOST, forward.host);
    parts.headers.insert(X_REQUEST_ID, meta.request_id.clone());
    parts.version = Version::HTTP_11;
    // Replicas get the origin form (`/path?query`) with the Host header, as
    // from any client; the absolute form is for proxies and many apps
    // do not route it.
    let origin = match parts.uri.path_and_query() {
        Some(p) => Uri::from(p.clone()),
        None => Uri::from_static("/"),
    };

    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut retried_stale = false;
    loop {
        let Some(upstream) = pool.as_ref().and_then(|p| p.pick(&tried)) else {
            let text = "Service Unavailable: no healthy replica.\n";
            return plain(&shared, meta, &site, StatusCode::SERVICE_UNAVAILABLE, text);
        };
        tried.push(upstream.addr);
        let uri = origin.clone();
        let mut request =
            Request::from_parts(parts.clone(), body.take().unwrap_or_else(empty_body));
        *request.uri_mut() = uri;
        let (mut response, sender) = match upstream.send(request, limits.upstream_timeout).await {
            Ok(done) => done,
            Err(SendError::Connect(error)) => {
                upstream.passive_failure();
                if retryable {
                    // The request never reached the replica; another may serve it.
                    tracing::debug!(upstream = %upstream.addr, %error, "connect failed; retrying on another replica");
                    continue;
                }
                tracing::warn!(upstream = %upstream.addr, %error, "cannot connect to the upstream");
                return plain(
                    &shared,
                    meta,
                    &site,
                    StatusCode::BAD_GATEWAY,
                    "Bad Gateway\n",
                );
            }
            Err(SendError::Request { error, reused }) => {
                if let Some(body_err) = body_error(&error) {
                    let (status, text, kind) = match body_err {
                        BodyError::TooLarge => (
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "Payload Too Large\n",
                            Some(ShieldAction::BodyTooLarge),
                        ),
                        BodyError::Timeout => (
                            StatusCode::REQUEST_TIMEOUT,
                            "Request Timeout\n",
                            Some(ShieldAction::BodyTimeout),
                        ),
                        BodyError::Hyper(_) => (StatusCode::BAD_REQUEST, "Bad Request\n", None),
                    };
                    return local(&shared, meta, Some(&site), status, text, kind, None);
                }
                if reused && retryable && !retried_stale {
                    // The replica closed an idle connection as we used it;
                    // try once more on a fresh one.
                    retried_stale = true;
                    tried.pop();
                    continue;
                }
                tracing::warn!(upstream = %upstream.addr, %error, "upstream request failed");
                return plain(
                    &shared,
                    meta,
                    &site,
                    StatusCode::BAD_GATEWAY,
                    "Bad Gateway\n",
                );
            }
            Err(SendError::Timeout) => {
                return plain(
                    &shared,
                    meta,
                    &site,
                    StatusCode::GATEWAY_TIMEOUT,
                    "Gateway Timeout\n",
                );
            }
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client) = client_upgrade.take()
        {
            // The replica's connection now belongs to the tunnel; it is not
            // returned to the pool.
            drop(sender);
            tunnel(client, hyper::upgrade::on(&mut response));
            let (mut resp_parts, _) = response.into_parts();
            strip_hop_by_hop(&mut resp_parts.headers);
            mark_websocket(&mut resp_parts.headers);
            secure_headers(&mut resp_parts.headers, Some(&site));
            let status = resp_parts.status;
            finish(&shared, meta, status, Some(upstream.addr), None, 0);
            return Response::from_parts(resp_parts, empty_body());
        }
        let (mut resp_parts, resp_body) = response.into_parts();
        strip_hop_by_hop(&mut resp_parts.headers);
        // Room for the security headers and the request id at once.
        resp_parts.headers.reserve(5);
        secure_headers(&mut resp_parts.headers, Some(&site));
        resp_parts
            .headers
            .insert(X_REQUEST_ID, meta.request_id.clone());
        let status = resp_parts.status;
        let shared2 = shared.clone();
        let addr = upstream.addr;
        let tracked = Tracked {
            inner: resp_body.map_err(BodyError::Hyper).boxed(),
            sent: 0,
            on_done: Some(Box::new(move |sent| {
                upstream.checkin(sender);
                finish(&shared2, meta, status, Some(addr), None, sent)
            })),
        };
        return Response::from_parts(resp_parts, tracked.boxed());
    }
}

/// Serves one plain-HTTP request: ACME challenges, else a 308 to HTTPS.
pub async fn handle_http(
    shared: Arc<Shared>,
    conn: Conn,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    let host = host_value(&req);
    let doubled = host.is_err();
    let host = host
        .ok()
        .flatten()
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .unwrap_or_default();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let meta = Meta {
        started: Some(Instant::now()),
        client: crate::routes::canonical(conn.peer.ip()),
        host: host.chars().take(256).collect(),
        method: req.method().to_string(),
        path: path.chars().take(2048).collect(),
        request_id: request_id(),
        tls_version: None,
        site: "-".into(),
        counters: None,
        bytes_in: Arc::new(AtomicU64::new(0)),
    };
    if doubled {
        return bad_request(&shared, meta);
    }
    if let Some(token) = req
        .uri()
        .path()
        .strip_prefix("/.well-known/acme-challenge/")
    {
        if let Some(answer) = shared.challenges.get(token) {
            let mut response = Response::new(
                Full::new(Bytes::from(answer))
                    .map_err(|never| match never {})
                    .boxed(),
            );
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            finish(&shared, meta, StatusCode::OK, None, None, 0);
            return response;
        }
        return local(
            &shared,
            meta,
            None,
            StatusCode::NOT_FOUND,
            "Not Found\n",
            None,
            None,
        );
    }
    let table = shared.table.load_full();
    let Some(normal) =
        crate::routes::normalize_host(&host).filter(|h| table.routes.lookup(h).is_some())
    else {
        return local(
            &shared,
            meta,
            None,
            StatusCode::MISDIRECTED_REQUEST,
            "Misdirected Request: no site is served at this host name.\n",
            Some(ShieldAction::UnknownHost),
            None,
        );
    };
    let port = if shared.https_port == 443 {
        String::new()
    } else {
        format!(":{}", shared.https_port)
    };
    let location = format!("https://{normal}{port}{path}");
    match HeaderValue::from_str(&location) {
        Ok(v) => local(
            &shared,
            meta,
            None,
            StatusCode::PERMANENT_REDIRECT,
            "Permanent Redirect\n",
            None,
            Some((header::LOCATION, v)),
        ),
        Err(_) => bad_request(&shared, meta),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut map = headers(&[
            ("content-type", "text/plain"),
            ("connection", "keep-alive, X-Session-Secret"),
            ("connection", "close ,te"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("x-session-secret", "1"),
            ("x-kept", "2"),
        ]);
        strip_hop_by_hop(&mut map);
        assert_eq!(names(&map), ["content-type", "x-kept"]);
    }

    #[test]
    fn messages_without_hop_by_hop_headers_are_untouched() {
        let pairs = [
            ("content-type", "text/plain"),
            ("x-kept", "2"),
            ("x-kept", "3"),
        ];
        let mut map = headers(&pairs);
        strip_hop_by_hop(&mut map);
        assert_eq!(map, headers(&pairs));
        // Connection options that name no header present change nothing else.
        let mut map = headers(&[("connection", "keep-alive"), ("x-kept", "2")]);
        strip_hop_by_hop(&mut map);
        assert_eq!(names(&map), ["x-kept"]);
        // An option that is not a valid header name is skipped, not an error.
        let mut map = headers(&[("connection", "bad name, x-gone"), ("x-gone", "1")]);
        strip_hop_by_hop(&mut map);
        assert!(map.is_empty());
    }
}

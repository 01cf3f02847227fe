//! Headers on the request path: what never passes the edge (hop-by-hop
//! headers, client copies of the edge's own), what the edge sets on requests
//! and responses, and the checks on `Host`.

use super::*;

/// Headers that describe one connection, never passed on. `Connection`
/// comes first: [`strip_hop_by_hop`] relies on it.
pub(super) const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers: the standard ones and any the
/// `Connection` header names. One pass over the names finds which standard
/// ones are present, so the common message (none, or only
/// `Connection: keep-alive`) costs no lookups beyond the removals it needs.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // Options that name a standard hop-by-hop header are handled below.
    let listed: Vec<HeaderName> = if present & 1 != 0 {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                !HOP_BY_HOP
                    .iter()
                    .any(|h| t.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect()
    } else {
        Vec::new()
    };
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    for name in &listed {
        headers.remove(name);
    }
}

pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

pub(super) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

pub(super) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(super) const FORWARDED: HeaderName = header::FORWARDED;

/// Headers only the edge may set on a request to a replica.
pub(super) const EDGE_SET: [HeaderName; 5] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_REQUEST_ID,
    FORWARDED,
];

/// 96 random bits in hex, as a header value that request and response
/// share without copying.
pub(super) fn request_id() -> HeaderValue {
    let bytes: [u8; 12] = rand::random();
    let mut text = [0u8; 24];
    hex::encode_to_slice(bytes, &mut text).expect("24 bytes hold 12 in hex");
    HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

/// Headers every HTTPS response gets.
pub(super) fn secure_headers(headers: &mut HeaderMap, site: Option<&SiteSpec>) {
    // One pass without hashing finds which of these the app set itself.
    let (mut server, mut nosniff, mut referrer, mut frame) = (false, false, false, false);
    for name in headers.keys() {
        server |= name == header::SERVER;
        nosniff |= name == header::X_CONTENT_TYPE_OPTIONS;
        referrer |= name == header::REFERRER_POLICY;
        frame |= name == header::X_FRAME_OPTIONS;
    }
    if server {
        headers.remove(header::SERVER);
    }
    let hsts = site.map_or(
        HeaderValue::from_static(crate::routes::HSTS[0]),
        SiteSpec::hsts_header,
    );
    headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    // Absent, so `insert` adds them; it costs less than `append`.
    if !nosniff {
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    if !referrer {
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
    }
    if !frame {
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
    }
}

/// A request with more than one `Host` header, which RFC 9112 (3.2) has a
/// server refuse with 400: a replica might route on the other one.
pub(super) struct DoubledHost;

/// The `Host` header, if there is exactly one.
pub(super) fn host_header(req: &Request<Incoming>) -> Result<Option<&HeaderValue>, DoubledHost> {
    let mut all = req.headers().get_all(header::HOST).iter();
    match (all.next(), all.next()) {
        (_, Some(_)) => Err(DoubledHost),
        (first, None) => Ok(first),
    }
}

/// The host a request names, as a header value: the URI's authority
/// (HTTP/2, absolute form), else the `Host` header, shared, not copied.
pub(super) fn host_value(req: &Request<Incoming>) -> Result<Option<HeaderValue>, DoubledHost> {
    let header = host_header(req)?;
    Ok(match req.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => header.cloned(),
    })
}

pub(super) fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

/// Whether a request asks to become a WebSocket. Only HTTP/1.1 WebSocket
/// upgrades are passed on; other protocols (h2c above all, a request
/// smuggling vector) are not.
pub(super) fn wants_websocket(req: &Request<Incoming>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    req.version() == Version::HTTP_11
        && req.method() == Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

/// Puts back the hop-by-hop headers a WebSocket upgrade needs.
pub(super) fn mark_websocket(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

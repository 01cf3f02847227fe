//! What the edge answers itself under `/.well-known/` on the sites it
//! serves: each host's `security.txt` (RFC 9116), and the report intake
//! its `Contact` may point at: a form (GET) and a submission (POST) that
//! anyone may use without an account, limited per client and overall,
//! and bounded in size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::future::BoxFuture;
use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::{BoxBody, Meta, Shared, finish, headers::X_REQUEST_ID, headers::secure_headers};
use crate::routes::SiteSpec;

/// What every path this module answers starts with.
pub const PREFIX: &str = "/.well-known/security";
pub const SECURITY_TXT: &str = "/.well-known/security.txt";
pub const REPORT_PATH: &str = "/.well-known/security-report";
/// The largest report taken.
pub const MAX_REPORT_BYTES: usize = 64 * 1024;
/// How long a client may take to send its report.
const REPORT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A report as the intake received it, handed to the platform as is.
#[derive(Debug, Clone)]
pub struct SubmittedReport {
    /// The host it was sent to.
    pub host: String,
    pub client: IpAddr,
    pub content_type: String,
    pub body: Bytes,
}

/// Stores a report; answers its tracking id, or why it could not.
pub type ReportSink =
    Arc<dyn Fn(SubmittedReport) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

type KeyedLimiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;
type GlobalLimiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

struct Intake {
    sink: ReportSink,
    per_client: KeyedLimiter,
    overall: GlobalLimiter,
    seen: AtomicU64,
}

/// Each host's security.txt, and the intake once the platform attached it.
#[derive(Default)]
pub struct WellKnown {
    texts: ArcSwap<HashMap<String, Bytes>>,
    intake: OnceLock<Intake>,
}

impl std::fmt::Debug for WellKnown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WellKnown")
            .field("hosts", &self.texts.load().len())
            .field("intake", &self.intake.get().is_some())
            .finish()
    }
}

fn quota(every: Duration, burst: u32) -> Quota {
    Quota::with_period(every)
        .unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

impl WellKnown {
    /// Replaces every host's security.txt (hosts in lower case).
    pub fn set_texts(&self, texts: HashMap<String, String>) {
        self.texts.store(Arc::new(
            texts
                .into_iter()
                .map(|(host, text)| (host, Bytes::from(text)))
                .collect(),
        ));
    }

    /// Attaches the intake: `per_client` reports per client at once, one
    /// more every `client_every`; `overall` at once, one more every
    /// `overall_every`. Only the first call counts.
    pub fn set_intake(
        &self,
        sink: ReportSink,
        (per_client, client_every): (u32, Duration),
        (overall, overall_every): (u32, Duration),
    ) {
        let _ = self.intake.set(Intake {
            sink,
            per_client: RateLimiter::keyed(quota(client_every, per_client)),
            overall: RateLimiter::direct(quota(overall_every, overall)),
            seen: AtomicU64::new(0),
        });
    }

    fn text(&self, host: &str) -> Option<Bytes> {
        self.texts.load().get(host).cloned()
    }
}

fn respond(
    shared: &Shared,
    meta: Meta,
    site: &SiteSpec,
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    extra: &[(header::HeaderName, &'static str)],
) -> Response<BoxBody> {
    let len = body.len() as u64;
    let mut response = Response::new(
        http_body_util::Full::new(body)
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_REQUEST_ID, meta.request_id.clone());
    for (name, value) in extra {
        headers.insert(name.clone(), HeaderValue::from_static(value));
    }
    secure_headers(headers, Some(site));
    finish(shared, meta, status, None, None, len);
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The form, for people with a browser and no tools.
const FORM: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Report a security problem</title><style>body{font:15px/1.5 system-ui,sans-serif;\
max-width:40em;margin:2em auto;padding:0 1em}textarea,input{width:100%;font:inherit}\
textarea{height:14em}</style></head><body><h1>Report a security problem</h1>\
<p>Describe what you found and how to reproduce it. No account is needed. You will get a \
tracking id; keep it to refer to your report.</p><form method=\"post\">\
<p><label>How to reach you (optional)<br><input name=\"contact\" maxlength=\"300\"></label></p>\
<p><label>Summary<br><input name=\"title\" maxlength=\"300\" required></label></p>\
<p><label>Details<br><textarea name=\"details\" maxlength=\"60000\" required></textarea></label></p>\
<p><button type=\"submit\">Send the report</button></p></form></body></html>\n";

const FORM_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// Answers `req` when it is for a well-known resource this edge serves
/// for `host`; gives the request back otherwise.
pub(super) async fn answer(
    shared: &Arc<Shared>,
    meta: Meta,
    site: &SiteSpec,
    host: &str,
    client: IpAddr,
    req: Request<Incoming>,
) -> Result<Response<BoxBody>, (Meta, Request<Incoming>)> {
    let path = req.uri().path();
    if path != SECURITY_TXT && path != REPORT_PATH {
        return Err((meta, req));
    }
    let Some(host) = crate::routes::normalize_host(host) else {
        return Err((meta, req));
    };
    let Some(text) = shared.well_known.text(&host) else {
        return Err((meta, req));
    };
    let allow = [(header::ALLOW, "GET, HEAD")];
    if path == SECURITY_TXT {
        return Ok(match *req.method() {
            Method::GET | Method::HEAD => {
                respond(shared, meta, site, StatusCode::OK, TEXT, text, &[])
            }
            _ => respond(
                shared,
                meta,
                site,
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                Bytes::from_static(b"Method Not Allowed\n"),
                &allow,
            ),
        });
    }
    let Some(intake) = shared.well_known.intake.get() else {
        return Err((meta, req));
    };
    match *req.method() {
        Method::GET | Method::HEAD => Ok(respond(
            shared,
            meta,
            site,
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(FORM.as_bytes()),
            &[(header::CONTENT_SECURITY_POLICY, FORM_CSP)],
        )),
        Method::POST => Ok(submit(shared, meta, site, &host, client, intake, req).await),
        _ => Ok(respond(
            shared,
            meta,
            site,
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            Bytes::from_static(b"Method Not Allowed\n"),
            &[(header::ALLOW, "GET, HEAD, POST")],
        )),
    }
}

async fn submit(
    shared: &Arc<Shared>,
    meta: Meta,
    site: &SiteSpec,
    host: &str,
    client: IpAddr,
    intake: &Intake,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    let plain = |meta, status, text: &'static str| {
        respond(
            shared,
            meta,
            site,
            status,
            TEXT,
            Bytes::from_static(text.as_bytes()),
            &[],
        )
    };
    if intake
        .seen
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        % 1024
        == 1023
    {
        intake.per_client.retain_recent();
    }
    if intake.per_client.check_key(&client).is_err() || intake.overall.check().is_err() {
        return respond(
            shared,
            meta,
            site,
            StatusCode::TOO_MANY_REQUESTS,
            TEXT,
            Bytes::from_static(b"Too many reports for now; try again later.\n"),
            &[(header::RETRY_AFTER, "600")],
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REPORT_BYTES as u64) {
        return plain(
            meta,
            StatusCode::PAYLOAD_TOO_LARGE,
            "The report is too large (64 KiB at most).\n",
        );
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(200)
                .collect()
        })
        .unwrap_or_default();
    let limited = http_body_util::Limited::new(req.into_body(), MAX_REPORT_BYTES);
    let body = match tokio::time::timeout(REPORT_READ_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return plain(
                meta,
                StatusCode::PAYLOAD_TOO_LARGE,
                "The report is too large (64 KiB at most).\n",
            );
        }
        Ok(Err(_)) | Err(_) => {
            return plain(
                meta,
                StatusCode::BAD_REQUEST,
                "The report could not be read.\n",
            );
        }
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return plain(meta, StatusCode::BAD_REQUEST, "The report is empty.\n");
    }
    let report = SubmittedReport {
        host: host.to_owned(),
        client,
        content_type,
        body,
    };
    match (intake.sink)(report).await {
        Ok(id) => {
            let text = format!(
                "Thank you. Your report is recorded as {id}; quote it when you write to us.\n"
            );
            let mut response = respond(
                shared,
                meta,
                site,
                StatusCode::CREATED,
                TEXT,
                Bytes::from(text),
                &[],
            );
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert("report-id", value);
            }
            response
        }
        Err(error) => {
            tracing::error!(%error, "cannot store a security report");
            plain(
                meta,
                StatusCode::SERVICE_UNAVAILABLE,
                "The report could not be stored; please try again later.\n",
            )
        }
    }
}

//! The gate every API request passes: it gives the request an id,
//! authenticates the caller, applies the role policy, records refused
//! audited requests, renders error bodies and writes the request's log line.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rampart_core::RequestId;
use rampart_core::audit::Outcome;
use rampart_core::wire::{ErrorBody, ErrorDetail};

use crate::error::ApiError;
use crate::policy;
use crate::routes::{Access, AppState, access};
use crate::serve::Peer;

/// The bearer token of a request, if it sent one.
fn bearer(request: &Request) -> Option<&str> {
    let value = request.headers().get(axum::http::header::AUTHORIZATION)?;
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The audit target of a refused request: its path without the `/api/`
/// prefix, bounded in length. Paths arrive percent-encoded, so they hold
/// no control characters.
fn target_of(path: &str) -> String {
    let path = path.strip_prefix("/api/").unwrap_or(path);
    path.chars().take(256).collect()
}

/// The `{app}` segment of a path, by the position it has in the route's
/// template.
fn app_of(template: &str, path: &str) -> Option<String> {
    let index = template.split('/').position(|seg| seg == "{app}")?;
    path.split('/').nth(index).map(str::to_owned)
}

/// Failed authentications per client address. A client that keeps sending
/// missing or bad tokens is answered 429 without an audit entry, so a flood
/// cannot grow the audit log without bound.
#[derive(Clone)]
pub struct AuthFailures(Arc<Limiter>);

type Limiter = governor::RateLimiter<
    IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
    governor::clock::DefaultClock,
>;

/// Failed authentications a client may make per minute (and at once).
const AUTH_FAILURES_PER_MINUTE: u32 = 30;

impl AuthFailures {
    pub fn new() -> Self {
        let n = std::num::NonZeroU32::new(AUTH_FAILURES_PER_MINUTE)
            .unwrap_or(std::num::NonZeroU32::MIN);
        Self(Arc::new(governor::RateLimiter::keyed(
            governor::Quota::per_minute(n),
        )))
    }

    /// Counts a failure; false once the client is over its quota.
    fn admit(&self, client: IpAddr) -> bool {
        if self.0.len() > 100_000 {
            self.0.retain_recent();
        }
        self.0.check_key(&client).is_ok()
    }
}

impl Default for AuthFailures {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AuthFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFailures").finish_non_exhaustive()
    }
}

pub async fn gate(State(platform): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = RequestId::generate();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    // A route without an access rule is refused to everyone: a forgotten
    // rule is a 403, not a hole. A path that matches no route needs a
    // valid token before it learns there is nothing there.
    let rule = match template.as_deref() {
        Some(t) => access(&method, t),
        None => Some(Access::Authenticated),
    };
    let app = template.as_deref().and_then(|t| app_of(t, &path));
    let action = match rule {
        Some(Access::Action(action)) => Some(action),
        _ => None,
    };
    request.extensions_mut().insert(request_id.clone());

    let client = request.extensions().get::<Peer>().map(|p| p.0);
    let failures = request.extensions().get::<AuthFailures>().cloned();
    let mut flooding = false;
    let mut actor = String::from("anonymous");
    let response = 'handled: {
        // A banned client gets nothing, not even an audit entry per request
        // (its ban was audited).
        if let Some(ip) = client
            && platform.bans().is_banned(ip)
        {
            flooding = true;
            break 'handled ApiError::new(
                StatusCode::FORBIDDEN,
                "banned",
                "this address is banned; an owner or admin elsewhere can lift it with `rampart bans remove`",
            )
            .into_response();
        }
        if rule.is_none() {
            let template = template.as_deref().unwrap_or_default();
            // Another method of the path has a rule: this one is simply not
            // served. Otherwise a handler was added without its rule.
            let served = [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ]
            .iter()
            .any(|m| access(m, template).is_some());
            if served {
                break 'handled ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{method} is not served on this path"),
                )
                .into_response();
            }
            tracing::error!(%method, path = %path, "a route has no access rule; refused");
            break 'handled ApiError::forbidden(
                "this route has no access rule, so no one may use it".to_owned(),
            )
            .into_response();
        }
        if rule != Some(Access::Public) {
            let caller = match bearer(&request) {
                None => Err(ApiError::unauthenticated(
                    "missing bearer token: send Authorization: Bearer rmp_…",
                )),
                Some(token) => platform.authenticate(token).await.map_err(ApiError::from),
            };
            let caller = match caller {
                Ok(caller) => caller,
                Err(error) => {
                    if let (Some(client), Some(failures)) = (client, &failures)
                        && !failures.admit(client)
                    {
                        flooding = true;
                        break 'handled ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "throttled",
                            "too many requests without a valid token; wait a minute",
                        )
                        .into_response();
                    }
                    break 'handled error.into_response();
                }
            };
            actor = caller.user_id.to_string();
            if let Some(action) = action
                && let Err(reason) = policy::decide(&caller, action, app.as_deref())
            {
                break 'handled ApiError::forbidden(reason).into_response();
            }
            request.extensions_mut().insert(caller);
        }
        next.run(request).await
    };

    let status = response.status();
    // Successful audited actions were recorded by the platform in the same
    // transaction as their change; refusals are recorded here.
    if let Some(action) = action
        && action.is_audited()
        && !status.is_success()
        && !flooding
    {
        let outcome = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Outcome::Denied,
            _ => Outcome::Failed,
        };
        if let Err(error) = platform
            .record_refusal(
                &actor,
                action.as_str(),
                &target_of(&path),
                outcome,
                &request_id,
            )
            .await
        {
            tracing::error!(%error, %request_id, "cannot record a refused request in the audit log");
        }
    }

    let mut response = render_error(response, &request_id).await;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert("x-request-id", value);
    }
    // Responses may hold secrets (a new token, revealed values).
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    tracing::info!(
        %request_id,
        %method,
        path = %path,
        status = status.as_u16(),
        actor = %actor,
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// Gives every error response the same JSON body, with the request id.
async fn render_error(response: Response, request_id: &RequestId) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let error = match parts.extensions.remove::<ApiError>() {
        Some(error) => error,
        None => {
            let is_json = parts
                .headers
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if is_json {
                return Response::from_parts(parts, body);
            }
            let detail = axum::body::to_bytes(body, 4096)
                .await
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            ApiError::from_status(status, detail)
        }
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: error.code.to_owned(),
            message: error.message,
            request_id: request_id.to_string(),
        },
    };
    let mut rendered = (status, Json(body)).into_response();
    for (name, value) in parts.headers.iter() {
        if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

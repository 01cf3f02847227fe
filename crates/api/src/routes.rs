//! Handlers, their OpenAPI descriptions and the table that tells the gate
//! which action each route performs.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use rampart_core::wire::{self, ErrorBody};
use rampart_core::{Action, RequestId};
use rampart_platform::{Acting, Caller, Platform};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::error::ApiError;

pub type AppState = Arc<Platform>;

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Public,
    /// Any valid token.
    Authenticated,
    /// A valid token whose role allows the action.
    Action(Action),
}

/// The access rule of a route, by method and matched path template; `None`
/// for anything else, which the gate treats as needing a valid token. The
/// tests check that every documented route has a rule.
pub fn access(method: &Method, path: &str) -> Option<Access> {
    use Action::*;
    let action = match (method.as_str(), path) {
        ("GET", "/api/health")
        | ("GET", "/api/openapi.json")
        | ("POST", "/api/sessions")
        | ("POST", "/api/invitations/accept")
        | ("GET", "/.well-known/security.txt") => return Some(Access::Public),
        ("GET", "/api/whoami") => return Some(Access::Authenticated),
        ("GET", "/api/apps") | ("GET", "/api/apps/{app}") | ("GET", "/api/apps/{app}/env") => {
            AppRead
        }
        ("POST", "/api/apps") => AppCreate,
        ("DELETE", "/api/apps/{app}") => AppDelete,
        ("PUT", "/api/apps/{app}/env") => EnvSet,
        ("DELETE", "/api/apps/{app}/env") => EnvUnset,
        ("POST", "/api/apps/{app}/env/reveal") => EnvReveal,
        ("GET", "/api/tokens") => TokenRead,
        ("POST", "/api/tokens") => TokenCreate,
        ("DELETE", "/api/tokens/{id}") => TokenRevoke,
        ("GET", "/api/audit") | ("GET", "/api/audit/verify") => AuditRead,
        ("POST", "/api/apps/{app}/deploys/build")
        | ("POST", "/api/apps/{app}/deploys/image")
        | ("POST", "/api/apps/{app}/rollback")
        | ("POST", "/api/apps/{app}/patch") => Deploy,
        ("POST", "/api/apps/{app}/runs") => AppRun,
        ("POST", "/api/apps/{app}/cron") | ("DELETE", "/api/apps/{app}/cron/{id}") => CronSet,
        ("GET", "/api/apps/{app}/cron") | ("GET", "/api/apps/{app}/cron/runs") => RuntimeRead,
        ("GET", "/api/bans") => BanRead,
        ("POST", "/api/bans") | ("DELETE", "/api/bans/{net}") => BanSet,
        ("GET", "/api/nodes") => NodeRead,
        ("PUT", "/api/nodes/{node}/labels/{key}")
        | ("DELETE", "/api/nodes/{node}/labels/{key}")
        | ("POST", "/api/nodes/{node}/drain")
        | ("POST", "/api/nodes/{node}/activate")
        | ("POST", "/api/nodes/{node}/ingress") => NodeManage,
        ("GET", "/api/alerts")
        | ("GET", "/api/alerts/{id}")
        | ("GET", "/api/notify")
        | ("GET", "/api/top") => AlertRead,
        ("POST", "/api/alerts/{id}/ack") => AlertAck,
        ("GET", "/api/vulns")
        | ("GET", "/api/vulns/self")
        | ("GET", "/api/vulns/db")
        | ("GET", "/api/vulns/accepted") => VulnRead,
        ("POST", "/api/vulns/db/import") => VulnImport,
        ("GET", "/api/incidents")
        | ("GET", "/api/incidents/{id}")
        | ("GET", "/api/incidents/actions")
        | ("GET", "/api/incidents/stats") => IncidentRead,
        ("POST", "/api/incidents")
        | ("POST", "/api/incidents/{id}/state")
        | ("POST", "/api/incidents/{id}/notes")
        | ("PUT", "/api/incidents/{id}/owner")
        | ("POST", "/api/incidents/{id}/review")
        | ("POST", "/api/incidents/{id}/actions/{number}/done") => IncidentManage,
        ("POST", "/api/doctor") => DoctorRun,
        ("GET", "/api/access-reviews") | ("POST", "/api/access-reviews") => AccessReview,
        ("POST", "/api/evidence") => EvidenceExport,
        ("POST", "/api/privacy/sweep") => PrivacySweep,
        ("GET", "/api/reports") | ("GET", "/api/reports/{id}") => ReportRead,
        ("POST", "/api/reports/{id}/triage") | ("POST", "/api/reports/{id}/close") => ReportTriage,
        ("POST", "/api/apps/{app}/vulns/accepted")
        | ("DELETE", "/api/apps/{app}/vulns/accepted/{advisory}") => VulnAccept,
        ("GET", "/api/apps/{app}/vulns") | ("GET", "/api/apps/{app}/sbom") => RuntimeRead,
        ("POST", "/api/notify") | ("DELETE", "/api/notify/{id}") | ("POST", "/api/notify/test") => {
            NotifySet
        }
        ("PATCH", "/api/apps/{app}/settings") | ("POST", "/api/apps/{app}/scale") => AppConfigure,
        ("GET", "/api/apps/{app}/releases")
        | ("GET", "/api/apps/{app}/settings")
        | ("GET", "/api/apps/{app}/ps")
        | ("GET", "/api/apps/{app}/top") => RuntimeRead,
        ("GET", "/api/apps/{app}/logs") => LogsRead,
        ("DELETE", "/api/sessions/current") => SessionEnd,
        ("GET", "/api/users") => UserRead,
        ("POST", "/api/users") => UserInvite,
        ("PATCH", "/api/users/{id}") => UserSetRole,
        ("DELETE", "/api/users/{id}") => UserRemove,
        ("GET", "/api/users/{id}/export") => UserExport,
        ("POST", "/api/users/{id}/erase") => UserErase,
        ("PUT", "/api/users/{id}/grants/{app}") | ("DELETE", "/api/users/{id}/grants/{app}") => {
            UserGrant
        }
        ("POST", "/api/mfa/enroll") | ("POST", "/api/mfa/confirm") => MfaEnroll,
        ("POST", "/api/apps/{app}/database") => DatabaseCreate,
        ("GET", "/api/apps/{app}/database") => DatabaseRead,
        ("POST", "/api/apps/{app}/database/reveal") => DatabaseReveal,
        ("POST", "/api/apps/{app}/backups") | ("POST", "/api/apps/{app}/backups/verify") => {
            BackupRun
        }
        ("GET", "/api/apps/{app}/backups")
        | ("GET", "/api/apps/{app}/backups/results")
        | ("GET", "/api/apps/{app}/backup-schedule") => BackupRead,
        ("POST", "/api/apps/{app}/backups/{snapshot}/restore") => BackupRestore,
        ("PUT", "/api/apps/{app}/backup-schedule")
        | ("DELETE", "/api/apps/{app}/backup-schedule") => BackupSchedule,
        _ => return None,
    };
    Some(Access::Action(action))
}

/// The caller and request id of an authenticated request, put in place by
/// the gate.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub caller: Caller,
    pub request_id: RequestId,
}

impl Ctx {
    pub fn acting(&self) -> Acting<'_> {
        Acting {
            caller: &self.caller,
            request_id: &self.request_id,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>().cloned();
        let request_id = parts.extensions.get::<RequestId>().cloned();
        match (caller, request_id) {
            (Some(caller), Some(request_id)) => Ok(Ctx { caller, request_id }),
            _ => Err(ApiError::unauthenticated("authentication required")),
        }
    }
}

/// A JSON body whose every rejection becomes one of our errors: 400 naming
/// the problem for malformed or mistyped JSON, 413 over the size limit, 415
/// without a JSON content type.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", text)
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON with content-type: application/json",
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "body_too_large",
            "the request body is larger than the API accepts",
        ),
        _ => ApiError::new(status, "invalid_body", text),
    }
}

/// Liveness of the API; the only route that needs no token.
#[utoipa::path(get, path = "/api/health", tag = "system",
    responses((status = 200, body = wire::Health)))]
pub async fn health() -> Json<wire::Health> {
    Json(wire::Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Who the presented token belongs to.
#[utoipa::path(get, path = "/api/whoami", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = wire::WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(State(p): State<AppState>, ctx: Ctx) -> Result<Json<wire::WhoAmI>, ApiError> {
    Ok(Json(p.whoami(&ctx.caller).await?))
}

/// All apps.
#[utoipa::path(get, path = "/api/apps", tag = "apps", security(("bearer" = [])),
    responses((status = 200, body = [wire::App]), (status = 401, body = ErrorBody)))]
pub async fn list_apps(
    State(p): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Vec<wire::App>>, ApiError> {
    // Each caller sees the apps it may read: a developer those granted, a
    // token limited to one app that app.
    let mut apps = p.apps().await?;
    apps.retain(|app| crate::policy::decide(&ctx.caller, Action::AppRead, Some(&app.name)).is_ok());
    Ok(Json(apps))
}

/// Creates an app.
#[utoipa::path(post, path = "/api/apps", tag = "apps", security(("bearer" = [])),
    request_body = wire::CreateApp,
    responses((status = 201, body = wire::App), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn create_app(
    State(p): State<AppState>,
    ctx: Ctx,
    Body(request): Body<wire::CreateApp>,
) -> Result<(StatusCode, Json<wire::App>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.create_app(ctx.acting(), request).await?),
    ))
}

/// One app.
#[utoipa::path(get, path = "/api/apps/{app}", tag = "apps", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = wire::App), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn show_app(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<wire::App>, ApiError> {
    Ok(Json(p.app(&app).await?))
}

/// Deletes an app with its variables, database and media.
#[utoipa::path(delete, path = "/api/apps/{app}", tag = "apps", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_app(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.delete_app(ctx.acting(), &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Variable names of an app; values are never listed.
#[utoipa::path(get, path = "/api/apps/{app}/env", tag = "env", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = [wire::EnvVar]), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list_env(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<wire::EnvVar>>, ApiError> {
    Ok(Json(p.env(&app).await?))
}

/// Sets (adds or replaces) variables; values are sealed before they are stored.
#[utoipa::path(put, path = "/api/apps/{app}/env", tag = "env", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::SetEnv,
    responses((status = 200, body = [wire::EnvVar]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn set_env(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(request): Body<wire::SetEnv>,
) -> Result<Json<Vec<wire::EnvVar>>, ApiError> {
    Ok(Json(p.set_env(ctx.acting(), &app, request).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnsetQuery {
    /// Comma-separated variable names; all must be set, or none is removed.
    pub names: String,
}

/// Removes variables, all or none.
#[utoipa::path(delete, path = "/api/apps/{app}/env", tag = "env", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name"), UnsetQuery),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unset_env(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    query: Result<Query<UnsetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let names: Vec<String> = query.names.split(',').map(str::to_owned).collect();
    p.unset_env(ctx.acting(), &app, &names).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reveals variable values in clear text. Owners and admins only; audited.
#[utoipa::path(post, path = "/api/apps/{app}/env/reveal", tag = "env", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::RevealEnv,
    responses((status = 200, body = wire::RevealedEnv), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reveal_env(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(request): Body<wire::RevealEnv>,
) -> Result<Json<wire::RevealedEnv>, ApiError> {
    Ok(Json(p.reveal_env(ctx.acting(), &app, request).await?))
}

/// All API tokens, never their values.
#[utoipa::path(get, path = "/api/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = [wire::TokenInfo]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(p): State<AppState>,
) -> Result<Json<Vec<wire::TokenInfo>>, ApiError> {
    Ok(Json(p.tokens().await?))
}

/// Creates a token for the caller; its value is in this response only.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = wire::CreateToken,
    responses((status = 201, body = wire::CreatedToken), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_token(
    State(p): State<AppState>,
    ctx: Ctx,
    Body(request): Body<wire::CreateToken>,
) -> Result<(StatusCode, Json<wire::CreatedToken>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.create_token(ctx.acting(), request).await?),
    ))
}

/// Revokes a token.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id (tok_…)")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.revoke_token(ctx.acting(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many of the newest entries to return (1 to 10000, default 100).
    pub limit: Option<u32>,
}

/// The newest audit entries, oldest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = [wire::AuditEntry]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_audit(
    State(p): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<wire::AuditEntry>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    Ok(Json(p.audit(limit).await?))
}

/// Checks the audit chain end to end.
#[utoipa::path(get, path = "/api/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = wire::AuditVerification), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn verify_audit(
    State(p): State<AppState>,
) -> Result<Json<wire::AuditVerification>, ApiError> {
    Ok(Json(p.verify_audit().await?))
}

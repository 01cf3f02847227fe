//! Routes of identity: sessions (login, logout), invitations, users, grants,
//! MFA and personal data.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use rampart_core::RequestId;
use rampart_core::wire::{self, ErrorBody};

use crate::error::ApiError;
use crate::routes::{AppState, Body, Ctx};
use crate::serve::Peer;

/// Signs in with email, password and (once enrolled) a TOTP or recovery
/// code. Every failure gets the same answer; repeated failures back off.
#[utoipa::path(post, path = "/api/sessions", tag = "identity",
    request_body = wire::Login,
    responses((status = 201, body = wire::Session), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(p): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    peer: Option<Extension<Peer>>,
    Body(request): Body<wire::Login>,
) -> Result<Response, ApiError> {
    let client = peer.map_or(
        std::net::IpAddr::from([0, 0, 0, 0]),
        |Extension(Peer(ip))| ip,
    );
    match p.identity().login(&request_id, client, request).await? {
        Ok(session) => Ok((StatusCode::CREATED, Json(session)).into_response()),
        Err(refused) => {
            let status = if refused.retry_after.is_some() {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            let code = if refused.retry_after.is_some() {
                "throttled"
            } else {
                "login_failed"
            };
            let mut response = ApiError::new(status, code, refused.message).into_response();
            if let Some(wait) = refused.retry_after {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                if let Ok(value) = secs.to_string().parse() {
                    response.headers_mut().insert(RETRY_AFTER, value);
                }
            }
            Ok(response)
        }
    }
}

/// Signs out: revokes the token that makes this request.
#[utoipa::path(delete, path = "/api/sessions/current", tag = "identity", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(p): State<AppState>, ctx: Ctx) -> Result<StatusCode, ApiError> {
    p.identity().logout(ctx.acting()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a new user's password from their single-use invitation.
#[utoipa::path(post, path = "/api/invitations/accept", tag = "identity",
    request_body = wire::AcceptInvitation,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn accept_invitation(
    State(p): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    Body(request): Body<wire::AcceptInvitation>,
) -> Result<StatusCode, ApiError> {
    p.identity().accept_invitation(&request_id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every user.
#[utoipa::path(get, path = "/api/users", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = [wire::UserInfo]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_users(State(p): State<AppState>) -> Result<Json<Vec<wire::UserInfo>>, ApiError> {
    Ok(Json(p.identity().users().await?))
}

/// Creates a user and a single-use invitation that expires.
#[utoipa::path(post, path = "/api/users", tag = "identity", security(("bearer" = [])),
    request_body = wire::InviteUser,
    responses((status = 201, body = wire::Invited), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn invite_user(
    State(p): State<AppState>,
    ctx: Ctx,
    Body(request): Body<wire::InviteUser>,
) -> Result<(StatusCode, Json<wire::Invited>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.identity().invite_user(ctx.acting(), request).await?),
    ))
}

/// Changes a user's role. Only owners manage owners; the last owner stays.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "identity", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (usr_…)")),
    request_body = wire::SetRole,
    responses((status = 200, body = wire::UserInfo), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_role(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Body(request): Body<wire::SetRole>,
) -> Result<Json<wire::UserInfo>, ApiError> {
    Ok(Json(
        p.identity()
            .set_role(ctx.acting(), &id, request.role)
            .await?,
    ))
}

/// Removes a user: no more sign-in, every token revoked.
#[utoipa::path(delete, path = "/api/users/{id}", tag = "identity", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (usr_…)")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_user(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.identity().remove_user(ctx.acting(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything held about a user. Audited.
#[utoipa::path(get, path = "/api/users/{id}/export", tag = "identity", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (usr_…)")),
    responses((status = 200, body = wire::UserExport), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export_user(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<wire::UserExport>, ApiError> {
    Ok(Json(p.identity().export_user(ctx.acting(), &id).await?))
}

/// Erases a user's personal data; the audit chain keeps verifying.
#[utoipa::path(post, path = "/api/users/{id}/erase", tag = "identity", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (usr_…)")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn erase_user(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.identity().erase_user(ctx.acting(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Grants a developer an app.
#[utoipa::path(put, path = "/api/users/{id}/grants/{app}", tag = "identity", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (usr_…)"),
        ("app" = String, Path, description = "App name")),
    responses((status = 200, body = wire::UserInfo), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn grant(
    State(p): State<AppState>,
    ctx: Ctx,
    Path((id, app)): Path<(String, String)>,
) -> Result<Json<wire::UserInfo>, ApiError> {
    Ok(Json(
        p.identity()
            .set_grant(ctx.acting(), &id, &app, true)
            .await?,
    ))
}

/// Withdraws a developer's access to an app.
#[utoipa::path(delete, path = "/api/users/{id}/grants/{app}", tag = "identity", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (usr_…)"),
        ("app" = String, Path, description = "App name")),
    responses((status = 200, body = wire::UserInfo), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_grant(
    State(p): State<AppState>,
    ctx: Ctx,
    Path((id, app)): Path<(String, String)>,
) -> Result<Json<wire::UserInfo>, ApiError> {
    Ok(Json(
        p.identity()
            .set_grant(ctx.acting(), &id, &app, false)
            .await?,
    ))
}

/// Starts a TOTP enrollment for the caller.
#[utoipa::path(post, path = "/api/mfa/enroll", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = wire::MfaEnrollment), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn enroll_mfa(
    State(p): State<AppState>,
    ctx: Ctx,
) -> Result<Json<wire::MfaEnrollment>, ApiError> {
    Ok(Json(p.identity().enroll_mfa(ctx.acting()).await?))
}

/// Confirms the enrollment with a first code; returns ten recovery codes.
#[utoipa::path(post, path = "/api/mfa/confirm", tag = "identity", security(("bearer" = [])),
    request_body = wire::ConfirmMfa,
    responses((status = 200, body = wire::RecoveryCodes), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn confirm_mfa(
    State(p): State<AppState>,
    ctx: Ctx,
    Body(request): Body<wire::ConfirmMfa>,
) -> Result<Json<wire::RecoveryCodes>, ApiError> {
    Ok(Json(
        p.identity()
            .confirm_mfa(ctx.acting(), &request.code)
            .await?,
    ))
}

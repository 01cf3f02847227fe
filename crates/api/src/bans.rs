//! Handlers for the clients banned at the edge.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rampart_core::wire::{self, ErrorBody};

use crate::error::ApiError;
use crate::routes::{AppState, Body, Ctx};

/// Bans in force, newest first: by the watch's detectors and by hand.
#[utoipa::path(get, path = "/api/bans", tag = "watch", security(("bearer" = [])),
    responses((status = 200, body = Vec<wire::Ban>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_bans(State(p): State<AppState>) -> Result<Json<Vec<wire::Ban>>, ApiError> {
    Ok(Json(p.bans().list().await?))
}

/// Bans an address or network at the edge: its requests get 403 before
/// reaching any app, across restarts, until the ban expires or is lifted.
#[utoipa::path(post, path = "/api/bans", tag = "watch", security(("bearer" = [])),
    request_body = wire::AddBan,
    responses((status = 201, body = wire::Ban), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn add_ban(
    State(p): State<AppState>,
    ctx: Ctx,
    Body(request): Body<wire::AddBan>,
) -> Result<(StatusCode, Json<wire::Ban>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.bans().add(ctx.acting(), request).await?),
    ))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BanScope {
    /// The host the ban is limited to; the ban on every host when absent.
    host: Option<String>,
}

/// Lifts a ban of one scope.
#[utoipa::path(delete, path = "/api/bans/{net}", tag = "watch", security(("bearer" = [])),
    params(("net" = String, Path, description = "The banned network, percent-encoded (203.0.113.9%2F32)"),
        BanScope),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_ban(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(net): Path<String>,
    Query(scope): Query<BanScope>,
) -> Result<StatusCode, ApiError> {
    p.bans()
        .remove(ctx.acting(), &net, scope.host.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

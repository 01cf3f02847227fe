//! Handlers for alerts and the channels that carry them.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rampart_core::wire::{self, ErrorBody};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::routes::{AppState, Body, Ctx};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// Resolved alerts too.
    #[serde(default)]
    all: bool,
}

/// Alerts, newest first: firing ones, or all with `all=true`.
#[utoipa::path(get, path = "/api/alerts", tag = "watch", security(("bearer" = [])),
    params(AlertsQuery),
    responses((status = 200, body = Vec<wire::Alert>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_alerts(
    State(p): State<AppState>,
    Query(query): Query<AlertsQuery>,
) -> Result<Json<Vec<wire::Alert>>, ApiError> {
    Ok(Json(p.alerts().list(query.all).await?))
}

/// One alert and its deliveries to each channel.
#[utoipa::path(get, path = "/api/alerts/{id}", tag = "watch", security(("bearer" = [])),
    params(("id" = String, Path, description = "Alert id (alert_…)")),
    responses((status = 200, body = wire::AlertDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_alert(
    State(p): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<wire::AlertDetail>, ApiError> {
    Ok(Json(p.alerts().show(&id).await?))
}

/// Acknowledges an alert: someone is on it.
#[utoipa::path(post, path = "/api/alerts/{id}/ack", tag = "watch", security(("bearer" = [])),
    params(("id" = String, Path, description = "Alert id (alert_…)")),
    responses((status = 200, body = wire::Alert), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn ack_alert(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<wire::Alert>, ApiError> {
    Ok(Json(p.alerts().ack(ctx.acting(), &id).await?))
}

/// The notification channels (secrets never shown).
#[utoipa::path(get, path = "/api/notify", tag = "watch", security(("bearer" = [])),
    responses((status = 200, body = Vec<wire::Channel>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_channels(
    State(p): State<AppState>,
) -> Result<Json<Vec<wire::Channel>>, ApiError> {
    Ok(Json(p.alerts().channels().await?))
}

/// Adds a channel: a webhook whose deliveries are signed with its secret.
#[utoipa::path(post, path = "/api/notify", tag = "watch", security(("bearer" = [])),
    request_body = wire::AddChannel,
    responses((status = 201, body = wire::Channel), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn add_channel(
    State(p): State<AppState>,
    ctx: Ctx,
    Body(request): Body<wire::AddChannel>,
) -> Result<(StatusCode, Json<wire::Channel>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.alerts().add_channel(ctx.acting(), request).await?),
    ))
}

/// Removes a channel and what it still had to deliver.
#[utoipa::path(delete, path = "/api/notify/{id}", tag = "watch", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id (ch_…)")),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_channel(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.alerts().remove_channel(ctx.acting(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test alert to every channel, through the outbox.
#[utoipa::path(post, path = "/api/notify/test", tag = "watch", security(("bearer" = [])),
    responses((status = 202, body = wire::Alert), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn test_channels(
    State(p): State<AppState>,
    ctx: Ctx,
) -> Result<(StatusCode, Json<wire::Alert>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(p.alerts().test(ctx.acting()).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TopQuery {
    /// How much history, in minutes (1 to 1440; 60 unless set).
    minutes: Option<u32>,
}

/// Every app's traffic, replicas and backups, with bans and firing alerts.
#[utoipa::path(get, path = "/api/top", tag = "watch", security(("bearer" = [])),
    params(TopQuery),
    responses((status = 200, body = wire::Top), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn top(
    State(p): State<AppState>,
    Query(query): Query<TopQuery>,
) -> Result<Json<wire::Top>, ApiError> {
    Ok(Json(p.top(None, query.minutes.unwrap_or(60)).await?))
}

/// One app's traffic, replicas and backups.
#[utoipa::path(get, path = "/api/apps/{app}/top", tag = "watch", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name"), TopQuery),
    responses((status = 200, body = wire::Top), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn app_top(
    State(p): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<TopQuery>,
) -> Result<Json<wire::Top>, ApiError> {
    Ok(Json(p.top(Some(&app), query.minutes.unwrap_or(60)).await?))
}

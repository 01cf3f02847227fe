//! Handlers for incidents, their timelines and post-mortems.

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
pub struct IncidentsQuery {
    /// Resolved and reviewed incidents too.
    #[serde(default)]
    all: bool,
}

/// Incidents, newest first: those still open, or all with `all=true`.
#[utoipa::path(get, path = "/api/incidents", tag = "incidents", security(("bearer" = [])),
    params(IncidentsQuery),
    responses((status = 200, body = Vec<wire::Incident>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_incidents(
    State(p): State<AppState>,
    Query(query): Query<IncidentsQuery>,
) -> Result<Json<Vec<wire::Incident>>, ApiError> {
    Ok(Json(p.incidents().list(query.all).await?))
}

/// Opens an incident; the first notification channel is told.
#[utoipa::path(post, path = "/api/incidents", tag = "incidents", security(("bearer" = [])),
    request_body = wire::OpenIncident,
    responses((status = 201, body = wire::Incident), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn open_incident(
    State(p): State<AppState>,
    ctx: Ctx,
    Body(request): Body<wire::OpenIncident>,
) -> Result<(StatusCode, Json<wire::Incident>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.incidents().open(ctx.acting(), request).await?),
    ))
}

/// One incident: its timeline, follow-up actions and notifications.
#[utoipa::path(get, path = "/api/incidents/{id}", tag = "incidents", security(("bearer" = [])),
    params(("id" = String, Path, description = "Incident id (inc_…)")),
    responses((status = 200, body = wire::IncidentDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_incident(
    State(p): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<wire::IncidentDetail>, ApiError> {
    Ok(Json(p.incidents().show(&id).await?))
}

/// Moves an incident on: acknowledged, mitigated or resolved.
#[utoipa::path(post, path = "/api/incidents/{id}/state", tag = "incidents",
    security(("bearer" = [])), request_body = wire::IncidentStep,
    params(("id" = String, Path, description = "Incident id (inc_…)")),
    responses((status = 200, body = wire::Incident), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn step_incident(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Body(request): Body<wire::IncidentStep>,
) -> Result<Json<wire::Incident>, ApiError> {
    Ok(Json(p.incidents().step(ctx.acting(), &id, request).await?))
}

/// Adds a note to an incident's timeline.
#[utoipa::path(post, path = "/api/incidents/{id}/notes", tag = "incidents",
    security(("bearer" = [])), request_body = wire::IncidentNote,
    params(("id" = String, Path, description = "Incident id (inc_…)")),
    responses((status = 200, body = wire::Incident), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn note_incident(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Body(request): Body<wire::IncidentNote>,
) -> Result<Json<wire::Incident>, ApiError> {
    Ok(Json(p.incidents().note(ctx.acting(), &id, request).await?))
}

/// Gives an incident an owner.
#[utoipa::path(put, path = "/api/incidents/{id}/owner", tag = "incidents",
    security(("bearer" = [])), request_body = wire::AssignIncident,
    params(("id" = String, Path, description = "Incident id (inc_…)")),
    responses((status = 200, body = wire::Incident), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn assign_incident(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Body(request): Body<wire::AssignIncident>,
) -> Result<Json<wire::Incident>, ApiError> {
    Ok(Json(
        p.incidents().assign(ctx.acting(), &id, request).await?,
    ))
}

/// Records the post-mortem of a resolved incident.
#[utoipa::path(post, path = "/api/incidents/{id}/review", tag = "incidents",
    security(("bearer" = [])), request_body = wire::IncidentReview,
    params(("id" = String, Path, description = "Incident id (inc_…)")),
    responses((status = 200, body = wire::Incident), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn review_incident(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Body(request): Body<wire::IncidentReview>,
) -> Result<Json<wire::Incident>, ApiError> {
    Ok(Json(
        p.incidents().review(ctx.acting(), &id, request).await?,
    ))
}

/// Marks a follow-up action done.
#[utoipa::path(post, path = "/api/incidents/{id}/actions/{number}/done", tag = "incidents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Incident id (inc_…)"),
        ("number" = u32, Path, description = "The action's number")),
    responses((status = 200, body = wire::FollowUp), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn finish_follow_up(
    State(p): State<AppState>,
    ctx: Ctx,
    Path((id, number)): Path<(String, u32)>,
) -> Result<Json<wire::FollowUp>, ApiError> {
    Ok(Json(p.incidents().done(ctx.acting(), &id, number).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FollowUpsQuery {
    /// Only actions not yet done.
    #[serde(default)]
    open: bool,
}

/// Every post-mortem's follow-up actions, by due date.
#[utoipa::path(get, path = "/api/incidents/actions", tag = "incidents",
    security(("bearer" = [])), params(FollowUpsQuery),
    responses((status = 200, body = Vec<wire::FollowUp>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_follow_ups(
    State(p): State<AppState>,
    Query(query): Query<FollowUpsQuery>,
) -> Result<Json<Vec<wire::FollowUp>>, ApiError> {
    Ok(Json(p.incidents().follow_ups(query.open).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// A date (`2026-10-01`) or RFC 3339 time: the period's start.
    pub from: String,
    /// Its end, not included.
    pub to: String,
}

/// Times to acknowledge and resolve the incidents opened in a period.
#[utoipa::path(get, path = "/api/incidents/stats", tag = "incidents",
    security(("bearer" = [])), params(PeriodQuery),
    responses((status = 200, body = wire::IncidentStats), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn incident_stats(
    State(p): State<AppState>,
    Query(query): Query<PeriodQuery>,
) -> Result<Json<wire::IncidentStats>, ApiError> {
    Ok(Json(p.incidents().stats(&query.from, &query.to).await?))
}

//! Handlers for an app's scheduled jobs and the record of their runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rampart_core::wire::{self, ErrorBody};

use crate::error::ApiError;
use crate::routes::{AppState, Body, Ctx};

/// The app's scheduled jobs.
#[utoipa::path(get, path = "/api/apps/{app}/cron", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = Vec<wire::CronJob>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_cron(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<wire::CronJob>>, ApiError> {
    Ok(Json(p.crons().list(&app).await?))
}

/// Adds a command to run on a schedule, in a one-off container of the live
/// release; a run never starts while the job's last one goes on.
#[utoipa::path(post, path = "/api/apps/{app}/cron", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::AddCronJob,
    responses((status = 201, body = wire::CronJob), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_cron(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(request): Body<wire::AddCronJob>,
) -> Result<(StatusCode, Json<wire::CronJob>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.crons().add(ctx.acting(), &app, request).await?),
    ))
}

/// Removes a scheduled job; its runs stay on record.
#[utoipa::path(delete, path = "/api/apps/{app}/cron/{id}", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name"),
        ("id" = String, Path, description = "Job id (cron_…)")),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_cron(
    State(p): State<AppState>,
    ctx: Ctx,
    Path((app, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    p.crons().remove(ctx.acting(), &app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The newest runs of the app's scheduled jobs, oldest first.
#[utoipa::path(get, path = "/api/apps/{app}/cron/runs", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = Vec<wire::CronRun>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cron_runs(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<wire::CronRun>>, ApiError> {
    Ok(Json(p.crons().runs(&app).await?))
}

//! Handlers for managed data: an app's database and its backups.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rampart_core::wire::{self, ErrorBody};

use crate::error::ApiError;
use crate::routes::{AppState, Body, Ctx};

/// Creates the app's database and role (the password is never shown here).
#[utoipa::path(post, path = "/api/apps/{app}/database", tag = "data", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 201, body = wire::DatabaseInfo), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_database(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<(StatusCode, Json<wire::DatabaseInfo>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.create_database(ctx.acting(), &app).await?),
    ))
}

/// Where the app's database is: host, port, database and user.
#[utoipa::path(get, path = "/api/apps/{app}/database", tag = "data", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = wire::DatabaseInfo), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn database_info(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<wire::DatabaseInfo>, ApiError> {
    Ok(Json(p.database_info(&app).await?))
}

/// The database with its password and URL. Owners and admins only; audited.
#[utoipa::path(post, path = "/api/apps/{app}/database/reveal", tag = "data", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = wire::DatabaseInfo), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reveal_database(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<Json<wire::DatabaseInfo>, ApiError> {
    Ok(Json(p.reveal_database(ctx.acting(), &app).await?))
}

/// Takes a snapshot of the app's database and media now.
#[utoipa::path(post, path = "/api/apps/{app}/backups", tag = "data", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 201, body = wire::BackupRecord), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn run_backup(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<(StatusCode, Json<wire::BackupRecord>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.backups().backup_now(ctx.acting(), &app).await?),
    ))
}

/// The app's snapshots in the platform repository, oldest first.
#[utoipa::path(get, path = "/api/apps/{app}/backups", tag = "data", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = [wire::BackupSnapshot]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn list_backups(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<wire::BackupSnapshot>>, ApiError> {
    Ok(Json(p.backups().snapshots(&app).await?))
}

/// What the app's backups, retention runs, test restores and restores did.
#[utoipa::path(get, path = "/api/apps/{app}/backups/results", tag = "data", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = [wire::BackupRecord]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn backup_results(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<wire::BackupRecord>>, ApiError> {
    Ok(Json(p.backups().backup_records(&app).await?))
}

/// Test-restores a snapshot (the newest by default) into a scratch database
/// and folder and compares it with what was recorded; the result is
/// recorded whether it passes or not.
#[utoipa::path(post, path = "/api/apps/{app}/backups/verify", tag = "data", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::VerifyBackup,
    responses((status = 200, body = wire::BackupRecord), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn verify_backup(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(request): Body<wire::VerifyBackup>,
) -> Result<Json<wire::BackupRecord>, ApiError> {
    Ok(Json(
        p.backups()
            .verify_backup(ctx.acting(), &app, request)
            .await?,
    ))
}

/// Restores a snapshot of `app` into a fresh database and media folder of
/// `app` (or of `into`). Live data is replaced only with `force`, after a
/// safety snapshot of it.
#[utoipa::path(post, path = "/api/apps/{app}/backups/{snapshot}/restore", tag = "data",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app the snapshot belongs to"),
        ("snapshot" = String, Path, description = "Snapshot id or unique prefix")),
    request_body = wire::RestoreBackup,
    responses((status = 200, body = wire::RestoredBackup), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn restore_backup(
    State(p): State<AppState>,
    ctx: Ctx,
    Path((app, snapshot)): Path<(String, String)>,
    Body(request): Body<wire::RestoreBackup>,
) -> Result<Json<wire::RestoredBackup>, ApiError> {
    Ok(Json(
        p.backups()
            .restore_backup(ctx.acting(), &app, &snapshot, request)
            .await?,
    ))
}

/// The app's backup schedule.
#[utoipa::path(get, path = "/api/apps/{app}/backup-schedule", tag = "data", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = wire::BackupSchedule), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn backup_schedule(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<wire::BackupSchedule>, ApiError> {
    Ok(Json(p.backups().backup_schedule(&app).await?))
}

/// Sets when the app is backed up and test-restored and which snapshots
/// retention keeps.
#[utoipa::path(put, path = "/api/apps/{app}/backup-schedule", tag = "data", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::SetBackupSchedule,
    responses((status = 200, body = wire::BackupSchedule), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn set_backup_schedule(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(request): Body<wire::SetBackupSchedule>,
) -> Result<Json<wire::BackupSchedule>, ApiError> {
    let schedule = p
        .backups()
        .set_backup_schedule(ctx.acting(), &app, Some(request))
        .await?;
    schedule
        .map(Json)
        .ok_or_else(|| ApiError::bad_request("no schedule was set"))
}

/// Removes the app's backup schedule; its snapshots stay.
#[utoipa::path(delete, path = "/api/apps/{app}/backup-schedule", tag = "data",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn remove_backup_schedule(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.backups()
        .set_backup_schedule(ctx.acting(), &app, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

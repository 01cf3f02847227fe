//! Handlers for the self-audit, access reviews and evidence export.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use rampart_core::wire::{self, ErrorBody};

use crate::error::ApiError;
use crate::incidents::PeriodQuery;
use crate::routes::{AppState, Body, Ctx};

/// Runs the self-audit: one line per control, pass, warn or fail.
#[utoipa::path(post, path = "/api/doctor", tag = "proof", security(("bearer" = [])),
    responses((status = 200, body = wire::DoctorReport), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn doctor(
    State(p): State<AppState>,
    ctx: Ctx,
) -> Result<Json<wire::DoctorReport>, ApiError> {
    Ok(Json(p.doctor(ctx.caller.user_id.as_str()).await?))
}

/// The recorded access reviews, oldest first.
#[utoipa::path(get, path = "/api/access-reviews", tag = "proof", security(("bearer" = [])),
    responses((status = 200, body = Vec<wire::AccessReview>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_access_reviews(
    State(p): State<AppState>,
) -> Result<Json<Vec<wire::AccessReview>>, ApiError> {
    Ok(Json(p.access_reviews().await?))
}

/// Records an access review of the users, roles, MFA, grants and tokens
/// as they stand now.
#[utoipa::path(post, path = "/api/access-reviews", tag = "proof", security(("bearer" = [])),
    request_body = wire::RecordAccessReview,
    responses((status = 201, body = wire::AccessReview), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn record_access_review(
    State(p): State<AppState>,
    ctx: Ctx,
    Body(request): Body<wire::RecordAccessReview>,
) -> Result<(StatusCode, Json<wire::AccessReview>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.record_access_review(ctx.acting(), request).await?),
    ))
}

/// Exports the evidence of a period, signed with the installation's key.
#[utoipa::path(post, path = "/api/evidence", tag = "proof", security(("bearer" = [])),
    params(PeriodQuery),
    responses((status = 200, body = wire::EvidenceBundle), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export_evidence(
    State(p): State<AppState>,
    ctx: Ctx,
    Query(query): Query<PeriodQuery>,
) -> Result<Json<wire::EvidenceBundle>, ApiError> {
    Ok(Json(
        p.export_evidence(ctx.acting(), &query.from, &query.to)
            .await?,
    ))
}

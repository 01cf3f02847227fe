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

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportsQuery {
    /// Closed reports too.
    #[serde(default)]
    all: bool,
}

/// Security reports from the public intake, newest first.
#[utoipa::path(get, path = "/api/reports", tag = "proof", security(("bearer" = [])),
    params(ReportsQuery),
    responses((status = 200, body = Vec<wire::SecurityReport>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_reports(
    State(p): State<AppState>,
    Query(query): Query<ReportsQuery>,
) -> Result<Json<Vec<wire::SecurityReport>>, ApiError> {
    Ok(Json(p.reports(query.all).await?))
}

/// One security report with what it said (as text, and exactly, base64).
#[utoipa::path(get, path = "/api/reports/{id}", tag = "proof", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id (rpt_…)")),
    responses((status = 200, body = wire::SecurityReportDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_report(
    State(p): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<wire::SecurityReportDetail>, ApiError> {
    Ok(Json(p.report(&id).await?))
}

/// Triages a report: its severity and its incident.
#[utoipa::path(post, path = "/api/reports/{id}/triage", tag = "proof", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id (rpt_…)")),
    request_body = wire::TriageReport,
    responses((status = 200, body = wire::SecurityReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn triage_report(
    State(p): State<AppState>,
    ctx: Ctx,
    axum::extract::Path(id): axum::extract::Path<String>,
    Body(request): Body<wire::TriageReport>,
) -> Result<Json<wire::SecurityReport>, ApiError> {
    Ok(Json(p.triage_report(ctx.acting(), &id, request).await?))
}

/// Closes a report with what came of it.
#[utoipa::path(post, path = "/api/reports/{id}/close", tag = "proof", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id (rpt_…)")),
    request_body = wire::CloseReport,
    responses((status = 200, body = wire::SecurityReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn close_report(
    State(p): State<AppState>,
    ctx: Ctx,
    axum::extract::Path(id): axum::extract::Path<String>,
    Body(request): Body<wire::CloseReport>,
) -> Result<Json<wire::SecurityReport>, ApiError> {
    Ok(Json(p.close_report(ctx.acting(), &id, request).await?))
}

/// The API's own security.txt (RFC 9116): the platform's contacts.
#[utoipa::path(get, path = "/.well-known/security.txt", tag = "proof",
    responses((status = 200, body = String, content_type = "text/plain"),
        (status = 404, body = ErrorBody)))]
pub async fn api_security_txt(
    State(p): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<([(axum::http::header::HeaderName, &'static str); 1], String), ApiError> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost")
        .to_ascii_lowercase();
    let text = p.api_security_txt(&host).ok_or_else(|| {
        ApiError::from(rampart_platform::Error::NotFound(
            "no security.txt: [security_txt] names no contact".into(),
        ))
    })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    ))
}

/// Deletes and pseudonymises personal data past its time now (it also
/// runs daily).
#[utoipa::path(post, path = "/api/privacy/sweep", tag = "proof", security(("bearer" = [])),
    responses((status = 200, body = wire::PrivacySweep), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn privacy_sweep(
    State(p): State<AppState>,
    ctx: Ctx,
) -> Result<Json<wire::PrivacySweep>, ApiError> {
    Ok(Json(
        p.privacy_sweep(ctx.caller.user_id.as_str(), &ctx.request_id)
            .await?,
    ))
}

//! Handlers for vulnerability findings, advisory data, accepted risks and
//! bills of materials.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use http_body_util::BodyExt;
use rampart_core::wire::{self, ErrorBody};
use rampart_platform::vulns::MAX_ARCHIVE;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::routes::{AppState, Body, Ctx};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    /// Only findings at this severity or above (`critical`, `high`,
    /// `medium`, `low`).
    severity: Option<String>,
}

/// Every app's findings on its live release.
#[utoipa::path(get, path = "/api/vulns", tag = "vulns", security(("bearer" = [])),
    params(FindingsQuery),
    responses((status = 200, body = wire::VulnReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn findings(
    State(p): State<AppState>,
    Query(query): Query<FindingsQuery>,
) -> Result<Json<wire::VulnReport>, ApiError> {
    Ok(Json(
        p.vulns().report(None, query.severity.as_deref()).await?,
    ))
}

/// The platform's own findings: the crates built into it.
#[utoipa::path(get, path = "/api/vulns/self", tag = "vulns", security(("bearer" = [])),
    responses((status = 200, body = wire::VulnReport), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn own_findings(State(p): State<AppState>) -> Result<Json<wire::VulnReport>, ApiError> {
    Ok(Json(p.vulns().report_self().await?))
}

/// One app's findings on its live release.
#[utoipa::path(get, path = "/api/apps/{app}/vulns", tag = "vulns", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name"), FindingsQuery),
    responses((status = 200, body = wire::VulnReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn app_findings(
    State(p): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<FindingsQuery>,
) -> Result<Json<wire::VulnReport>, ApiError> {
    Ok(Json(
        p.vulns()
            .report(Some(&app), query.severity.as_deref())
            .await?,
    ))
}

/// The advisory data's size and age.
#[utoipa::path(get, path = "/api/vulns/db", tag = "vulns", security(("bearer" = [])),
    responses((status = 200, body = wire::VulnDbStatus), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn db_status(State(p): State<AppState>) -> Result<Json<wire::VulnDbStatus>, ApiError> {
    Ok(Json(p.vulns().status().await?))
}

/// Imports OSV records: a zip file (OSV's `all.zip`) or a tar archive of
/// a folder of records. All of it or none is stored.
#[utoipa::path(post, path = "/api/vulns/db/import", tag = "vulns", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/zip",
        description = "A zip file or (as application/x-tar) a tar archive of OSV JSON records"),
    responses((status = 200, body = wire::VulnImport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn import(
    State(p): State<AppState>,
    ctx: Ctx,
    request: axum::extract::Request,
) -> Result<Json<wire::VulnImport>, ApiError> {
    let kind = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if kind != "application/zip" && kind != "application/x-tar" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send advisories as content-type: application/zip or application/x-tar",
        ));
    }
    let limited = http_body_util::Limited::new(request.into_body(), MAX_ARCHIVE);
    let archive = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("an advisory archive may be at most {MAX_ARCHIVE} bytes"),
            ));
        }
        Err(error) => {
            return Err(ApiError::bad_request(format!(
                "cannot read the body: {error}"
            )));
        }
    };
    let zip = archive.starts_with(b"PK");
    if zip != (kind == "application/zip") {
        return Err(ApiError::bad_request(format!(
            "the body is {} but was sent as {kind}",
            if zip { "a zip file" } else { "not a zip file" }
        )));
    }
    Ok(Json(p.vulns().import(ctx.acting(), archive).await?))
}

/// Acceptances of findings, expired ones included.
#[utoipa::path(get, path = "/api/vulns/accepted", tag = "vulns", security(("bearer" = [])),
    responses((status = 200, body = Vec<wire::AcceptedRisk>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn accepted(
    State(p): State<AppState>,
) -> Result<Json<Vec<wire::AcceptedRisk>>, ApiError> {
    Ok(Json(p.vulns().accepted().await?))
}

/// Accepts a finding of an app for a number of days.
#[utoipa::path(post, path = "/api/apps/{app}/vulns/accepted", tag = "vulns", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::AcceptRisk,
    responses((status = 201, body = wire::AcceptedRisk), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn accept(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(request): Body<wire::AcceptRisk>,
) -> Result<(StatusCode, Json<wire::AcceptedRisk>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(p.vulns().accept(ctx.acting(), &app, request).await?),
    ))
}

/// Withdraws an acceptance.
#[utoipa::path(delete, path = "/api/apps/{app}/vulns/accepted/{advisory}", tag = "vulns",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "App name"),
        ("advisory" = String, Path, description = "The advisory id accepted")),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unaccept(
    State(p): State<AppState>,
    ctx: Ctx,
    Path((app, advisory)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    p.vulns().unaccept(ctx.acting(), &app, &advisory).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SbomQuery {
    /// The release (the live one by default).
    release: Option<u64>,
}

/// A release's bill of materials, CycloneDX 1.5 JSON.
#[utoipa::path(get, path = "/api/apps/{app}/sbom", tag = "vulns", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name"), SbomQuery),
    responses((status = 200, body = Object, description = "CycloneDX 1.5 JSON"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn sbom(
    State(p): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<SbomQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(p.vulns().sbom(&app, query.release).await?))
}

//! The control-plane API: JSON over HTTPS.
//!
//! Every request passes the [`gate`](gate::gate): it gets an id, is
//! authenticated by bearer token (all routes but `/api/health` and the
//! OpenAPI document), is decided by the one [`policy`] function, and, when it
//! changes state or reveals secrets, is recorded in the audit chain whatever
//! its outcome. The OpenAPI document is generated from the handlers, so the
//! tests that walk every route stay complete as routes are added.

pub mod alerts;
pub mod bans;
pub mod crons;
pub mod data;
pub mod deploys;
pub mod error;
mod gate;
pub mod incidents;
pub mod ingress;
pub mod nodes;
pub mod policy;
pub mod proof;
pub mod registry;
pub mod routes;
mod serve;
pub mod tls;
mod users;
pub mod vulns;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use rampart_platform::Platform;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use serve::serve;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rampart control-plane API",
        description = "Manage apps, their environment and secrets, API tokens and the audit log."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health and identity"),
        (name = "apps", description = "Apps and their domains"),
        (name = "env", description = "Environment variables and secrets"),
        (name = "tokens", description = "API tokens"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "identity", description = "Sessions, invitations, users, grants and MFA"),
        (name = "deploys", description = "Releases, deploys, rollbacks, scaling, replicas and logs"),
        (name = "watch", description = "Bans at the edge, alerts and notification channels"),
        (name = "nodes", description = "The machines of a Swarm: labels, drains and suspects"),
        (name = "incidents", description = "Incidents, their timelines, post-mortems and follow-up actions"),
        (name = "proof", description = "Self-audit, access reviews and signed evidence for auditors"),
        (name = "vulns", description = "What releases contain, known vulnerabilities in it and accepted risks"),
        (name = "data", description = "Each app's database, media and backups"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rmp_ token")
                    .build(),
            ),
        );
    }
}

fn documented_routes() -> (Router<routes::AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health))
        .routes(routes!(routes::whoami))
        .routes(routes!(routes::list_apps, routes::create_app))
        .routes(routes!(routes::show_app, routes::delete_app))
        .routes(routes!(
            routes::list_env,
            routes::set_env,
            routes::unset_env
        ))
        .routes(routes!(routes::reveal_env))
        .routes(routes!(routes::list_tokens, routes::create_token))
        .routes(routes!(routes::revoke_token))
        .routes(routes!(routes::list_audit))
        .routes(routes!(routes::verify_audit))
        .routes(routes!(deploys::deploy_build))
        .routes(routes!(deploys::deploy_image))
        .routes(routes!(deploys::run_command))
        .routes(routes!(crons::list_cron, crons::add_cron))
        .routes(routes!(crons::remove_cron))
        .routes(routes!(crons::cron_runs))
        .routes(routes!(bans::list_bans, bans::add_ban))
        .routes(routes!(bans::remove_ban))
        .routes(routes!(nodes::list_nodes))
        .routes(routes!(nodes::set_node_label, nodes::remove_node_label))
        .routes(routes!(nodes::drain_node))
        .routes(routes!(nodes::activate_node))
        .routes(routes!(nodes::ingress_credential))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::show_alert))
        .routes(routes!(alerts::ack_alert))
        .routes(routes!(alerts::list_channels, alerts::add_channel))
        .routes(routes!(alerts::remove_channel))
        .routes(routes!(alerts::test_channels))
        .routes(routes!(alerts::top))
        .routes(routes!(alerts::app_top))
        .routes(routes!(incidents::list_incidents, incidents::open_incident))
        .routes(routes!(incidents::list_follow_ups))
        .routes(routes!(incidents::incident_stats))
        .routes(routes!(incidents::show_incident))
        .routes(routes!(incidents::step_incident))
        .routes(routes!(incidents::note_incident))
        .routes(routes!(incidents::assign_incident))
        .routes(routes!(incidents::review_incident))
        .routes(routes!(incidents::finish_follow_up))
        .routes(routes!(proof::doctor))
        .routes(routes!(
            proof::list_access_reviews,
            proof::record_access_review
        ))
        .routes(routes!(proof::export_evidence))
        .routes(routes!(proof::list_reports))
        .routes(routes!(proof::show_report))
        .routes(routes!(proof::triage_report))
        .routes(routes!(proof::close_report))
        .routes(routes!(proof::api_security_txt))
        .routes(routes!(proof::privacy_sweep))
        .routes(routes!(vulns::findings))
        .routes(routes!(vulns::own_findings))
        .routes(routes!(vulns::app_findings))
        .routes(routes!(vulns::db_status))
        .routes(routes!(vulns::import))
        .routes(routes!(vulns::accepted))
        .routes(routes!(vulns::accept))
        .routes(routes!(vulns::unaccept))
        .routes(routes!(vulns::sbom))
        .routes(routes!(deploys::rollback))
        .routes(routes!(deploys::patch))
        .routes(routes!(deploys::releases))
        .routes(routes!(deploys::settings, deploys::configure))
        .routes(routes!(deploys::scale))
        .routes(routes!(deploys::ps))
        .routes(routes!(deploys::logs))
        .routes(routes!(users::login))
        .routes(routes!(users::logout))
        .routes(routes!(users::accept_invitation))
        .routes(routes!(users::list_users, users::invite_user))
        .routes(routes!(users::set_role, users::remove_user))
        .routes(routes!(users::export_user))
        .routes(routes!(users::erase_user))
        .routes(routes!(users::grant, users::revoke_grant))
        .routes(routes!(users::enroll_mfa))
        .routes(routes!(users::confirm_mfa))
        .routes(routes!(data::create_database, data::database_info))
        .routes(routes!(data::reveal_database))
        .routes(routes!(data::run_backup, data::list_backups))
        .routes(routes!(data::backup_results))
        .routes(routes!(data::verify_backup))
        .routes(routes!(data::restore_backup))
        .routes(routes!(
            data::backup_schedule,
            data::set_backup_schedule,
            data::remove_backup_schedule
        ))
        .split_for_parts()
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().1
}

/// The API's router. `max_body_bytes` bounds every request body but build
/// contexts, which `max_context_bytes` bounds.
pub fn router(platform: Arc<Platform>, max_body_bytes: usize, max_context_bytes: u64) -> Router {
    let (router, doc) = documented_routes();
    let doc = doc.to_pretty_json().unwrap_or_else(|_| "{}".into());
    behind_gate(router, doc, platform, max_body_bytes, max_context_bytes)
}

/// `routes` with the OpenAPI document, the fallback and the gate in front.
fn behind_gate(
    routes: Router<routes::AppState>,
    doc: String,
    platform: Arc<Platform>,
    max_body_bytes: usize,
    max_context_bytes: u64,
) -> Router {
    routes
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { ([(CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "there is no such API route",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            platform.clone(),
            gate::gate,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(deploys::ContextLimit(max_context_bytes)))
        .layer(axum::Extension(gate::AuthFailures::new()))
        .with_state(platform)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    /// Finding: the gate let a route with no access rule through to any
    /// valid token. A route added without a rule is now refused to all.
    #[tokio::test]
    async fn a_route_without_an_access_rule_is_refused_even_to_an_owner() {
        let dir = tempfile::tempdir().unwrap();
        let data = rampart_platform::DataDir::new(dir.path().join("data"));
        let config =
            rampart_core::config::Config::from_toml("[auth]\nrequire_mfa = false\n").unwrap();
        let (platform, boot) = Platform::open(data, &config).await.unwrap();
        let token = std::fs::read_to_string(boot.unwrap().token_file).unwrap();
        let (routes, doc) = documented_routes();
        let routes = routes.route("/api/forgotten", get(|| async { "reached" }));
        let router = behind_gate(
            routes,
            doc.to_json().unwrap(),
            Arc::new(platform),
            4096,
            4096,
        );
        let send = |token: Option<String>| {
            let mut request = Request::builder().uri("/api/forgotten");
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {}", token.trim()));
            }
            router.clone().oneshot(request.body(Body::empty()).unwrap())
        };
        let owner = send(Some(token)).await.unwrap();
        assert_eq!(owner.status(), StatusCode::FORBIDDEN);
        let anonymous = send(None).await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    }
}

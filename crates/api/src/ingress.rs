//! What edges on other nodes of a Swarm sync with, on the node listener
//! beside the image registry: `GET /ingress/v1/routes` (long-polled with
//! `?version=`) and `GET /ingress/v1/certificates`. Each request carries
//! its node's ingress credential (HTTP Basic, `ingress/NODE:SECRET`, from
//! `rampart nodes ingress`); what it may have is decided by
//! `rampart_platform::ingress`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rampart_platform::Platform;
use rampart_runtime::swarm::Registry;
use serde::Deserialize;

use crate::error::ApiError;

#[derive(Clone)]
struct Listener {
    registry: Arc<Registry>,
    platform: Arc<Platform>,
}

/// The ingress routes of the node listener.
pub fn router(registry: Arc<Registry>, platform: Arc<Platform>) -> Router {
    Router::new()
        .route("/ingress/v1/routes", get(routes))
        .route("/ingress/v1/certificates", get(certificates))
        .with_state(Listener { registry, platform })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Known {
    /// The version of the routes the node holds.
    version: Option<String>,
}

fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({ "error": "an ingress credential is required" })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"rampart ingress\""),
    );
    response
}

/// The node the request's credential belongs to.
fn node_of(listener: &Listener, headers: &HeaderMap) -> Option<String> {
    let (user, password) = crate::registry::basic(headers)?;
    listener.registry.authenticate_ingress(&user, &password)
}

async fn routes(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(known): Query<Known>,
) -> Response {
    let Some(node) = node_of(&listener, &headers) else {
        return unauthorized();
    };
    match listener
        .platform
        .ingress_routes(&node, known.version.as_deref())
        .await
    {
        Ok(routes) => axum::Json(routes).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

async fn certificates(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let Some(node) = node_of(&listener, &headers) else {
        return unauthorized();
    };
    match listener.platform.ingress_certificates(&node).await {
        Ok(set) => {
            let mut response = axum::Json(set).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

//! Handlers for the machines of a Swarm.

use axum::Json;
use axum::extract::{Path, State};
use rampart_core::wire::{self, ErrorBody};

use crate::error::ApiError;
use crate::routes::{AppState, Body, Ctx};

/// The Swarm's machines, with this installation's replicas on each.
#[utoipa::path(get, path = "/api/nodes", tag = "nodes", security(("bearer" = [])),
    responses((status = 200, body = Vec<wire::Node>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_nodes(State(p): State<AppState>) -> Result<Json<Vec<wire::Node>>, ApiError> {
    Ok(Json(p.nodes().await?))
}

/// Sets a label of a node (a zone, a pool) that placement reads.
#[utoipa::path(put, path = "/api/nodes/{node}/labels/{key}", tag = "nodes",
    security(("bearer" = [])), request_body = wire::NodeLabel,
    params(("node" = String, Path, description = "Node id, id prefix or hostname"),
        ("key" = String, Path, description = "Label name")),
    responses((status = 200, body = wire::Node), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn set_node_label(
    State(p): State<AppState>,
    ctx: Ctx,
    Path((node, key)): Path<(String, String)>,
    Body(label): Body<wire::NodeLabel>,
) -> Result<Json<wire::Node>, ApiError> {
    Ok(Json(
        p.label_node(ctx.acting(), &node, &key, Some(&label.value))
            .await?,
    ))
}

/// Removes a label of a node.
#[utoipa::path(delete, path = "/api/nodes/{node}/labels/{key}", tag = "nodes",
    security(("bearer" = [])),
    params(("node" = String, Path, description = "Node id, id prefix or hostname"),
        ("key" = String, Path, description = "Label name")),
    responses((status = 200, body = wire::Node), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn remove_node_label(
    State(p): State<AppState>,
    ctx: Ctx,
    Path((node, key)): Path<(String, String)>,
) -> Result<Json<wire::Node>, ApiError> {
    Ok(Json(p.label_node(ctx.acting(), &node, &key, None).await?))
}

/// Moves every replica off a node (replacements healthy and in the edge
/// before the old ones stop), then drains it; `suspect` keeps new
/// replicas off it until it is activated.
#[utoipa::path(post, path = "/api/nodes/{node}/drain", tag = "nodes",
    security(("bearer" = [])), request_body = wire::DrainNode,
    params(("node" = String, Path, description = "Node id, id prefix or hostname")),
    responses((status = 200, body = wire::NodeDrained), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn drain_node(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(node): Path<String>,
    Body(request): Body<wire::DrainNode>,
) -> Result<Json<wire::NodeDrained>, ApiError> {
    Ok(Json(
        p.drain_node(ctx.acting(), &node, request.suspect).await?,
    ))
}

/// Lets a node take replicas again and clears a suspicion.
#[utoipa::path(post, path = "/api/nodes/{node}/activate", tag = "nodes",
    security(("bearer" = [])),
    params(("node" = String, Path, description = "Node id, id prefix or hostname")),
    responses((status = 200, body = wire::Node), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn activate_node(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(node): Path<String>,
) -> Result<Json<wire::Node>, ApiError> {
    Ok(Json(p.activate_node(ctx.acting(), &node).await?))
}

/// Issues the credential an edge on the node (`rampart ingress`) syncs
/// its routes and certificates with; refused for a suspect node.
#[utoipa::path(post, path = "/api/nodes/{node}/ingress", tag = "nodes",
    security(("bearer" = [])),
    params(("node" = String, Path, description = "Node id, id prefix or hostname")),
    responses((status = 200, body = wire::IngressCredential), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn ingress_credential(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(node): Path<String>,
) -> Result<Json<wire::IngressCredential>, ApiError> {
    Ok(Json(p.ingress_credential(ctx.acting(), &node).await?))
}

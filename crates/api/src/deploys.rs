//! Routes of the runtime: deploys, rollbacks, releases, settings, scaling,
//! replicas and logs.
//!
//! Deploys answer with `application/x-ndjson`: one [`wire::DeployLine`] per
//! line as the build and rollout progress, the last one `done` or `failed`.
//! Everything that can be refused up front (unknown app, no engine, a body
//! that is not a build context) is refused with an error status before the
//! stream starts, and changes nothing.

use std::time::Duration;

use axum::body::Body as RawBody;
use axum::extract::FromRequestParts;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CONNECTION, CONTENT_TYPE, UPGRADE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use rampart_core::deploy::LogQuery;
use rampart_core::deploy::{AppSettings, SettingsPatch};
use rampart_core::terminal::{self, Frame};
use rampart_core::wire::{self, DeployLine, ErrorBody, RunLine};
use rampart_platform::deploy::{PreparedDeploy, PreparedRun, RunIo, Source};
use rampart_platform::{Acting, Error};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::routes::{AppState, Body, Ctx};

/// The largest build context accepted, set from `api.max_context_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct ContextLimit(pub u64);

const NDJSON: &str = "application/x-ndjson";

fn ndjson<S, T>(lines: S) -> Response
where
    S: Stream<Item = T> + Send + 'static,
    T: serde::Serialize,
{
    let body = lines.map(|line| {
        let mut text = serde_json::to_vec(&line).unwrap_or_default();
        text.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(text))
    });
    ([(CONTENT_TYPE, NDJSON)], RawBody::from_stream(body)).into_response()
}

/// Runs a deploy in its own task, so that it finishes and records its
/// outcome even when the client goes away, and streams its progress.
async fn run_deploy(
    p: AppState,
    ctx: Ctx,
    app: String,
    source: Source,
) -> Result<Response, ApiError> {
    let prepared = p.deploys().prepare_deploy(&app, source).await?;
    stream_deploy(p, ctx, prepared)
}

/// Runs a prepared deploy, streaming its progress as NDJSON.
fn stream_deploy(p: AppState, ctx: Ctx, prepared: PreparedDeploy) -> Result<Response, ApiError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let acting = Acting {
            caller: &ctx.caller,
            request_id: &ctx.request_id,
        };
        let last = match p.deploys().deploy(acting, prepared, tx.clone()).await {
            Ok(release) => DeployLine::Done { release },
            Err(Error::DeployFailed {
                message,
                release,
                serving,
            }) => DeployLine::Failed {
                message,
                release: release.map(|r| *r),
                serving,
            },
            Err(other) => DeployLine::Failed {
                message: other.to_string(),
                release: None,
                serving: None,
            },
        };
        let _ = tx.send(last);
    });
    drop(task);
    let lines = tokio_stream_from(rx);
    Ok(ndjson(lines))
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The connection's upgrade to a terminal (`Upgrade: rampart-terminal`),
/// when the request asks for one.
#[derive(Debug)]
pub struct TerminalUpgrade(Option<OnUpgrade>);

impl<S: Send + Sync> FromRequestParts<S> for TerminalUpgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let named = |name, wanted: &str| {
            parts.headers.get_all(name).iter().any(|value| {
                value.to_str().is_ok_and(|value| {
                    value
                        .split(',')
                        .any(|token| token.trim().eq_ignore_ascii_case(wanted))
                })
            })
        };
        if !named(UPGRADE, terminal::UPGRADE) {
            return Ok(TerminalUpgrade(None));
        }
        if !named(CONNECTION, "upgrade") {
            return Err(ApiError::bad_request(
                "Upgrade: rampart-terminal needs Connection: upgrade",
            ));
        }
        match parts.extensions.remove::<OnUpgrade>() {
            Some(upgrade) => Ok(TerminalUpgrade(Some(upgrade))),
            None => Err(ApiError::bad_request(
                "this connection cannot be upgraded; a terminal needs HTTP/1.1",
            )),
        }
    }
}

/// Runs a one-off command in a container of a release (the live one unless
/// named), with the app's variables, network and data, hardened like a
/// replica. The command line is recorded in the audit log. The run goes on
/// to its end or deadline if the client goes away.
///
/// With `tty` set and `Connection: upgrade`, `Upgrade: rampart-terminal`,
/// the answer is `101 Switching Protocols` and the command runs on a
/// terminal: the connection then carries the frames of
/// `rampart_core::terminal` both ways (the user's input and terminal size
/// in, the command's output and outcome out). Without, the answer streams
/// its output lines.
#[utoipa::path(post, path = "/api/apps/{app}/runs", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::RunCommand,
    responses((status = 200, body = wire::RunLine, content_type = "application/x-ndjson",
            description = "Output lines; the last is exit, timed_out or failed"),
        (status = 101, description = "Upgraded to rampart-terminal (with tty)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn run_command(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    TerminalUpgrade(upgrade): TerminalUpgrade,
    Body(request): Body<wire::RunCommand>,
) -> Result<Response, ApiError> {
    match (&upgrade, request.tty.is_some()) {
        (None, true) => {
            return Err(ApiError::bad_request(
                "a run on a terminal needs Connection: upgrade and Upgrade: rampart-terminal",
            ));
        }
        (Some(_), false) => {
            return Err(ApiError::bad_request(
                "Upgrade: rampart-terminal needs the terminal's size in tty",
            ));
        }
        _ => {}
    }
    let prepared = p.deploys().prepare_run(&app, request).await?;
    if let Some(upgrade) = upgrade {
        tokio::spawn(terminal_run(p, ctx, prepared, upgrade));
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, terminal::UPGRADE)
            .body(RawBody::empty())
            .unwrap_or_default());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = tx.send(RunLine::Started {
        release: prepared.release(),
    });
    let deadline = prepared.timeout_secs();
    tokio::spawn(async move {
        let (out, mut printed) = tokio::sync::mpsc::unbounded_channel();
        let forward = {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(line) = printed.recv().await {
                    let _ = tx.send(RunLine::Output { line });
                }
            })
        };
        let result = p
            .deploys()
            .run(ctx.acting(), prepared, RunIo::Lines(out))
            .await;
        let _ = forward.await;
        let last = match result {
            Ok(Some(status)) => RunLine::Exit { status },
            Ok(None) => RunLine::TimedOut { secs: deadline },
            Err(error) => RunLine::Failed {
                message: error.to_string(),
            },
        };
        let _ = tx.send(last);
    });
    Ok(ndjson(tokio_stream_from(rx)))
}

/// Frames in flight between a terminal connection and its command.
const TERMINAL_QUEUE: usize = 64;

/// Carries a prepared run's terminal over an upgraded connection. A frame
/// the client may not send, or bytes that are not frames, end the
/// command's input (it reads end of file), as does the client going away;
/// the command then runs to its end or deadline. If the connection never
/// switches, nothing runs.
async fn terminal_run(p: AppState, ctx: Ctx, prepared: PreparedRun, upgrade: OnUpgrade) {
    let Ok(upgraded) = upgrade.await else {
        tracing::debug!(request = %ctx.request_id, "the terminal connection closed before it switched");
        return;
    };
    let deadline = prepared.timeout_secs();
    let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
    let (typed, input) = tokio::sync::mpsc::channel(TERMINAL_QUEUE);
    let (output, mut printed) = tokio::sync::mpsc::channel::<Vec<u8>>(TERMINAL_QUEUE);
    let read = tokio::spawn(async move {
        let mut decoder = terminal::Decoder::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            decoder.extend(&buf[..n]);
            loop {
                match decoder.next_frame() {
                    Ok(None) => break,
                    Ok(Some(
                        frame @ (Frame::Input(_) | Frame::Resize { .. } | Frame::InputClosed),
                    )) => {
                        if typed.send(frame).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(frame)) => {
                        tracing::debug!(
                            ?frame,
                            "a terminal client sent a frame of the server's; its input ends"
                        );
                        return;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "a terminal client sent bytes that are not frames; its input ends");
                        return;
                    }
                }
            }
        }
    });
    let deploys = p.deploys();
    let run = deploys.run(ctx.acting(), prepared, RunIo::Terminal { input, output });
    // Keeps draining after the client went away, so the command never
    // blocks on a full terminal.
    let write = async {
        let mut open = true;
        let mut bytes = Vec::new();
        while let Some(chunk) = printed.recv().await {
            if open {
                bytes.clear();
                Frame::Output(chunk).encode(&mut bytes);
                open = writer.write_all(&bytes).await.is_ok();
            }
        }
        open
    };
    let (result, open) = tokio::join!(run, write);
    read.abort();
    if !open {
        return;
    }
    let last = match result {
        Ok(Some(status)) => Frame::Exited(status),
        Ok(None) => Frame::TimedOut(deadline),
        Err(error) => Frame::Failed(error.to_string()),
    };
    let mut bytes = Vec::new();
    last.encode(&mut bytes);
    let _ = writer.write_all(&bytes).await;
    let _ = writer.shutdown().await;
}

/// Builds an image from a tar build context and deploys it.
#[utoipa::path(post, path = "/api/apps/{app}/deploys/build", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body(content = Vec<u8>, content_type = "application/x-tar",
        description = "A tar archive with a Dockerfile at its root"),
    responses((status = 200, body = DeployLine, content_type = "application/x-ndjson",
            description = "Progress lines; the last is done or failed"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn deploy_build(
    State(p): State<AppState>,
    Extension(ContextLimit(limit)): Extension<ContextLimit>,
    ctx: Ctx,
    Path(app): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let is_tar = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("application/x-tar"));
    if !is_tar {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the build context as content-type: application/x-tar",
        ));
    }
    let limited = http_body_util::Limited::new(request.into_body(), limit as usize);
    let context = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the build context is larger than {limit} bytes (api.max_context_bytes)"),
            ));
        }
        Err(error) => {
            return Err(ApiError::bad_request(format!(
                "cannot read the body: {error}"
            )));
        }
    };
    run_deploy(p, ctx, app, Source::Build(context)).await
}

/// Deploys an image the engine already has.
#[utoipa::path(post, path = "/api/apps/{app}/deploys/image", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::DeployImage,
    responses((status = 200, body = DeployLine, content_type = "application/x-ndjson",
            description = "Progress lines; the last is done or failed"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn deploy_image(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(request): Body<wire::DeployImage>,
) -> Result<Response, ApiError> {
    run_deploy(p, ctx, app, Source::Image(request.image)).await
}

/// Deploys an earlier release again.
#[utoipa::path(post, path = "/api/apps/{app}/rollback", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::Rollback,
    responses((status = 200, body = DeployLine, content_type = "application/x-ndjson",
            description = "Progress lines; the last is done or failed"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn rollback(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(request): Body<wire::Rollback>,
) -> Result<Response, ApiError> {
    let target = p.deploys().rollback_target(&app, request.to).await?;
    run_deploy(p, ctx, app, Source::Release(target)).await
}

/// Rebuilds the live release from its kept build context against the
/// images its Dockerfile names as the engine has them now (a patched
/// base), and deploys the result like any build.
#[utoipa::path(post, path = "/api/apps/{app}/patch", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name"), PatchQuery),
    responses((status = 200, body = DeployLine, content_type = "application/x-ndjson",
            description = "Progress lines; the last is done or failed"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn patch(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Query(query): Query<PatchQuery>,
) -> Result<Response, ApiError> {
    let context = p.deploys().live_context(&app).await?;
    let mut prepared = p
        .deploys()
        .prepare_deploy(&app, Source::Build(context))
        .await?;
    if query.pull {
        prepared = prepared.pulling();
    }
    stream_deploy(p, ctx, prepared)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PatchQuery {
    /// Pull the base images from their registry before rebuilding.
    #[serde(default)]
    pull: bool,
}

/// An app's releases, newest first.
#[utoipa::path(get, path = "/api/apps/{app}/releases", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = [wire::Release]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn releases(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<Json<Vec<wire::Release>>, ApiError> {
    let mut releases = p.deploys().releases(&app).await?;
    // Failure reasons quote the replica's log: only for those who may
    // read it.
    if crate::policy::decide(&ctx.caller, rampart_core::Action::LogsRead, Some(&app)).is_err() {
        for release in &mut releases {
            if let Some(reason) = &mut release.reason {
                *reason = rampart_core::deploy::reason_without_log_lines(reason);
            }
        }
    }
    Ok(Json(releases))
}

/// How an app runs.
#[utoipa::path(get, path = "/api/apps/{app}/settings", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = AppSettings), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn settings(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<AppSettings>, ApiError> {
    Ok(Json(p.deploys().settings(&app).await?))
}

/// Changes how an app runs; replica counts apply at once, the rest with
/// the next deploy.
#[utoipa::path(patch, path = "/api/apps/{app}/settings", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = SettingsPatch,
    responses((status = 200, body = AppSettings), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn configure(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(patch): Body<SettingsPatch>,
) -> Result<Json<AppSettings>, ApiError> {
    Ok(Json(
        p.deploys().configure(ctx.acting(), &app, patch).await?,
    ))
}

/// Sets how many replicas run the web process and the others, and waits
/// until they run.
#[utoipa::path(post, path = "/api/apps/{app}/scale", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    request_body = wire::Scale,
    responses((status = 200, body = wire::AppStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn scale(
    State(p): State<AppState>,
    ctx: Ctx,
    Path(app): Path<String>,
    Body(request): Body<wire::Scale>,
) -> Result<Json<wire::AppStatus>, ApiError> {
    p.deploys().runtime_ready()?;
    if request.replicas.is_none() && request.processes.is_empty() {
        return Err(Error::Invalid("name a count: replicas, or processes by name".into()).into());
    }
    let patch = SettingsPatch {
        replicas: request.replicas,
        processes: (!request.processes.is_empty()).then_some(request.processes),
        ..Default::default()
    };
    p.deploys().configure(ctx.acting(), &app, patch).await?;
    Ok(Json(p.deploys().status(&app).await?))
}

/// An app's replicas, their health and recent events.
#[utoipa::path(get, path = "/api/apps/{app}/ps", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name")),
    responses((status = 200, body = wire::AppStatus), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn ps(
    State(p): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<wire::AppStatus>, ApiError> {
    Ok(Json(p.deploys().status(&app).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Only lines from the last this many seconds.
    pub since_secs: Option<u64>,
    /// At most this many of the newest lines per replica (default 200).
    pub tail: Option<u32>,
    /// Keep the response open and send new lines as they come.
    pub follow: Option<bool>,
}

/// An app's logs, one JSON line per log line.
#[utoipa::path(get, path = "/api/apps/{app}/logs", tag = "deploys", security(("bearer" = [])),
    params(("app" = String, Path, description = "App name"), LogsQuery),
    responses((status = 200, body = wire::LogLine, content_type = "application/x-ndjson"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn logs(
    State(p): State<AppState>,
    Path(app): Path<String>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let tail = query.tail.unwrap_or(200);
    if tail > 100_000 {
        return Err(ApiError::bad_request("tail must be at most 100000"));
    }
    let since = match query.since_secs {
        Some(secs) if secs > 10 * 365 * 86_400 => {
            return Err(ApiError::bad_request("since_secs is too large"));
        }
        Some(secs) => Some(
            time::OffsetDateTime::now_utc().unix_timestamp()
                - Duration::from_secs(secs).as_secs() as i64,
        ),
        None => None,
    };
    let lines = p
        .deploys()
        .logs(
            &app,
            LogQuery {
                since,
                tail: Some(tail as usize),
                follow: query.follow.unwrap_or(false),
            },
        )
        .await?;
    Ok(ndjson(lines))
}

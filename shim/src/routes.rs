//! HTTP: the routes. Static files, WebSocket upgrades, `/healthz`, `/metrics`.

use crate::connection;
use crate::server::Shared;
use crate::space::Space;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tower::ServiceExt;
use tracing::debug;

/// Frames up to this many times `--max-frame-bytes` are read whole and then
/// refused with a close frame; larger ones are cut off while being read.
const HARD_LIMIT_FACTOR: usize = 4;

/// Bytes the WebSocket reads from the socket at a time. tungstenite's default,
/// 128 KiB, is zero-filled before every read and kept for the connection's
/// life: under load most of the shim's time went to that memset, and most of
/// an idle connection's memory to that buffer. Browsers' frames are small;
/// a larger one is read 1 KiB at a time into a buffer grown to fit it.
const READ_BUFFER_BYTES: usize = 1024;

/// Bytes the WebSocket buffers before writing to the socket (tungstenite's
/// default). Each reply is flushed before the next frame, and pushes are
/// flushed in batches of at most 16 KiB plus one frame, so the buffer
/// never fills to this.
const WRITE_BUFFER_BYTES: usize = 128 * 1024;

/// The shim's routes: WebSockets at `/ws/{namespace}`, and at `/` and `/ws`
/// for the first namespace; the page at `/`, health and metrics.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/ws", get(websocket))
        .route("/ws/{namespace}", get(namespace_websocket))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(static_file)
        .with_state(shared)
}

/// `/`: a WebSocket upgrade if the request asks for one, else the page.
async fn root(
    State(shared): State<Arc<Shared>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
) -> Response {
    match upgrade {
        Ok(upgrade) => {
            let space = shared.spaces[0].clone();
            accept(shared, space, upgrade, request.headers())
        }
        Err(_) => serve_static(&shared, request).await,
    }
}

/// `/ws`: WebSocket upgrades to the first namespace only.
async fn websocket(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let space = shared.spaces[0].clone();
    accept(shared, space, upgrade, &headers)
}

/// `/ws/{namespace}`: WebSocket upgrades to one of the namespaces served;
/// any other is 404, before the upgrade.
async fn namespace_websocket(
    State(shared): State<Arc<Shared>>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    match shared.spaces.iter().find(|space| space.name() == namespace) {
        Some(space) => {
            let space = space.clone();
            accept(shared, space, upgrade, &headers)
        }
        None => {
            debug!(namespace, "refused a WebSocket to a namespace not served");
            shared.metrics.connection_refused();
            (
                StatusCode::NOT_FOUND,
                format!("namespace {namespace:?} is not served here\n"),
            )
                .into_response()
        }
    }
}

async fn static_file(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    serve_static(&shared, request).await
}

async fn serve_static(shared: &Shared, request: Request) -> Response {
    match shared.static_files.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// Checks the origin and the connection limit, then upgrades into `space`.
fn accept(
    shared: Arc<Shared>,
    space: Arc<Space>,
    upgrade: WebSocketUpgrade,
    headers: &HeaderMap,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = &shared.config.allowed_origins;
        let origin = origin.to_str().unwrap_or_default();
        if !allowed.is_empty() && !allowed.iter().any(|a| a == origin) {
            debug!(origin, "refused a WebSocket from a disallowed origin");
            shared.metrics.connection_refused();
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
    }
    if shared.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let Ok(permit) = shared.limit.clone().try_acquire_owned() else {
        shared.metrics.connection_refused();
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
    };
    let hard_limit = shared
        .config
        .max_frame_bytes
        .saturating_mul(HARD_LIMIT_FACTOR)
        .max(shared.config.max_frame_bytes.saturating_add(16 * 1024));
    // The largest frame the shim writes: a reply or a `top` push (at most
    // --max-reply-bytes), or a queued push (at most --max-queue-bytes).
    let largest_out = shared
        .config
        .max_reply_bytes
        .max(shared.config.max_queue_bytes);
    upgrade
        .max_frame_size(hard_limit)
        .max_message_size(hard_limit)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(
            WRITE_BUFFER_BYTES
                .saturating_add(largest_out)
                .saturating_add(16 * 1024),
        )
        .on_upgrade(move |socket| connection::serve(socket, shared, space, permit))
}

/// `GET /healthz`: 200 when Redis answers and has the module for every
/// namespace (on a cluster, each namespace's node), else 503.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    for space in &shared.spaces {
        if let Err(error) = space.violet.ready().await {
            let namespace = space.name();
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("namespace {namespace}: {error}\n"),
            )
                .into_response();
        }
    }
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

//! The admin HTTP API: health and readiness (open), metrics, and the `/api/v1` management
//! endpoints (bearer tokens with `read` / `admin` scopes, see [`tokens`]). It acts on the proxy
//! only through [`Runtime`]: the live policy, the ban list, the session registry and reload.

mod auth;
mod bans;
mod clients;
mod error;
mod system;
pub mod tls;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::runtime::Runtime;
use crate::transport::upstream;

pub use error::ApiError;

/// How long `/readyz` waits for the broker before calling the proxy not ready.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The OpenAPI description of every endpoint, checked against the real responses in tests.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(rt: Arc<Runtime>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/status", get(system::status))
        .route("/api/v1/config", get(system::config))
        .route("/api/v1/reload", post(system::reload))
        .route("/api/v1/bans", get(bans::list).post(bans::add).delete(bans::clear))
        .route("/api/v1/bans/{kind}/{who}", delete(bans::remove))
        .route("/api/v1/clients", get(clients::list))
        .route("/api/v1/clients/{clientid}", delete(clients::kick))
        .route_layer(axum::middleware::from_fn_with_state(rt.clone(), auth::require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(rt)
}

/// Serves until `shutdown` is cancelled, over HTTPS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    rt: Arc<Runtime>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    match tls {
        Some(config) => {
            tls::serve(listener, router(rt), config, shutdown).await;
            Ok(())
        }
        None => {
            axum::serve(listener, router(rt))
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        }
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the config is loaded (it is, or this server would not run) and the broker accepts
/// a TCP connection.
///
/// With `state.backend: redis` and Redis unreachable the proxy is degraded: still ready with
/// `fail_mode: open` (it admits clients on local checks), not ready with `fail_mode: closed` (it
/// refuses new clients, so a load balancer should prefer other replicas).
async fn readyz(State(rt): State<Arc<Runtime>>) -> Response {
    if let Some(state) = rt.redis.as_ref().filter(|s| !s.is_up()) {
        let body = json!({ "status": "degraded", "reason": "state backend (redis) unreachable" });
        return match state.fail_mode() {
            crate::config::FailMode::Open => (StatusCode::OK, Json(body)).into_response(),
            crate::config::FailMode::Closed => (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response(),
        };
    }
    if rt.must_staple.iter().any(|s| !s.has_valid_staple()) {
        let body = json!({ "status": "not_ready", "reason": "no valid OCSP staple (must_staple)" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    match upstream::dial(&rt.ctx.upstream.address, READY_PROBE_TIMEOUT).await {
        Ok(_) => (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": "upstream broker unreachable" })),
        )
            .into_response(),
    }
}

async fn metrics(State(rt): State<Arc<Runtime>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        rt.ctx.metrics.encode(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> Response {
    ApiError::not_found("no such endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "method not allowed on this endpoint")
        .into_response()
}

//! Bearer-token check in front of every endpoint but `/healthz` and `/readyz`. The scope needed
//! follows the method: reading (GET, HEAD) needs `read`, anything that changes state needs
//! `admin`. Tokens are read from the configuration in force, so a reload rotates them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::info;

use super::error::ApiError;
use super::tokens::{verify, Scope};
use crate::runtime::Runtime;

pub async fn require_token(State(rt): State<Arc<Runtime>>, req: Request, next: Next) -> Response {
    let config = rt.config.load();
    let tokens = &config.admin.tokens;
    let is_metrics = req.uri().path() == "/metrics";
    if tokens.is_empty() {
        // Without tokens the metrics stay scrapeable on the loopback admin port; the API is off.
        if is_metrics {
            drop(config);
            return next.run(req).await;
        }
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "the admin API is disabled: no tokens are configured (admin.tokens_file)",
        )
        .into_response();
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(presented) = presented else {
        return unauthorized("missing bearer token");
    };
    let Some(token) = verify(tokens, presented.as_bytes()) else {
        info!(target: "moat::audit", path = %req.uri().path(), "admin API: invalid token");
        return unauthorized("invalid token");
    };
    let needed = if matches!(*req.method(), Method::GET | Method::HEAD) { Scope::Read } else { Scope::Admin };
    if token.scope < needed {
        info!(target: "moat::audit", token = %token.name, method = %req.method(), path = %req.uri().path(), "admin API: scope refused");
        return ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "this token's scope does not allow this")
            .into_response();
    }
    if needed == Scope::Admin {
        info!(target: "moat::audit", token = %token.name, method = %req.method(), path = %req.uri().path(), "admin API call");
    }
    drop(config);
    next.run(req).await
}

fn unauthorized(message: &'static str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    r
}

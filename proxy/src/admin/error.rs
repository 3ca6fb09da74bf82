//! Every admin API error is JSON: `{"code": "BAD_REQUEST", "message": "..."}` with a matching
//! HTTP status (codes after EMQX's management API), never a bare text body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "code": self.code, "message": self.message }))).into_response()
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        // The body text of serde errors names fields and positions, never secrets: pass it on.
        Self::new(e.status(), "BAD_REQUEST", e.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Paging after EMQX: `page` from 1, `limit` up to [`MAX_LIMIT`].
pub struct Paging;

impl Paging {
    pub fn resolve(page: Option<usize>, limit: Option<usize>) -> Result<(usize, usize), ApiError> {
        let page = page.unwrap_or(1);
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if page == 0 {
            return Err(ApiError::bad_request("page starts at 1"));
        }
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        Ok((page, limit))
    }
}

/// One page of `items` with EMQX's `meta` block.
pub fn page<T: serde::Serialize>(items: Vec<T>, page: usize, limit: usize) -> serde_json::Value {
    let count = items.len();
    let start = page.saturating_sub(1).saturating_mul(limit);
    let data: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let hasnext = start.saturating_add(limit) < count;
    json!({ "data": data, "meta": { "page": page, "limit": limit, "count": count, "hasnext": hasnext } })
}

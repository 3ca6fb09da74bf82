//! `/api/v1/bans`: list (filter, paging), add, remove one, clear the runtime bans. Shaped after
//! EMQX's `/api/v5/banned` (`as` is accepted as a synonym of `kind`), with moat's kind names.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{page, ApiError, Paging};
use crate::config::parse_duration;
use crate::policy::bans::{Ban, BanKind, BanSource, LiveBanError, LiveBans};
use crate::runtime::{unix_now, Runtime};

#[derive(Serialize)]
struct BanView {
    kind: BanKind,
    who: String,
    reason: String,
    by: String,
    created_at: u64,
    expires_at: Option<u64>,
    source: &'static str,
}

impl BanView {
    fn new(b: Ban, source: BanSource) -> Self {
        Self {
            kind: b.kind,
            who: b.who,
            reason: b.reason,
            by: b.by,
            created_at: b.created_at,
            expires_at: b.expires_at,
            source: source.as_str(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    kind: Option<String>,
    who: Option<String>,
    source: Option<String>,
    page: Option<usize>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBan {
    #[serde(alias = "as")]
    kind: BanKind,
    who: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    by: Option<String>,
    /// Unix seconds; or give `duration`.
    #[serde(default)]
    expires_at: Option<u64>,
    /// `30s`, `10m`, `2h`, `7d`.
    #[serde(default)]
    duration: Option<String>,
}

fn live(rt: &Runtime) -> Result<&Arc<LiveBans>, ApiError> {
    rt.bans.as_ref().ok_or_else(|| ApiError::conflict("bans are not configured (set bans.store)"))
}

fn kind_of(s: &str) -> Result<BanKind, ApiError> {
    BanKind::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown ban kind `{s}` (one of {})",
            BanKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })
}

fn store_error(e: LiveBanError) -> ApiError {
    match e {
        LiveBanError::NoStore => ApiError::conflict(e.to_string()),
        LiveBanError::Store(crate::policy::bans::BanStoreError::InvalidBan(m)) => ApiError::bad_request(m),
        LiveBanError::Build(m) => ApiError::bad_request(m),
        LiveBanError::Shared(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

pub async fn list(
    State(rt): State<Arc<Runtime>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q?;
    let (p, limit) = Paging::resolve(q.page, q.limit)?;
    let kind = q.kind.as_deref().map(kind_of).transpose()?;
    if let Some(s) = q.source.as_deref() {
        if s != "file" && s != "runtime" {
            return Err(ApiError::bad_request("source is file or runtime"));
        }
    }
    let bans = live(&rt)?;
    let now = unix_now();
    let items: Vec<BanView> = bans
        .list()
        .into_iter()
        .filter(|(b, src)| {
            b.is_active(now)
                && kind.is_none_or(|k| b.kind == k)
                && q.who.as_ref().is_none_or(|w| *w == b.who)
                && q.source.as_deref().is_none_or(|s| s == src.as_str())
        })
        .map(|(b, src)| BanView::new(b, src))
        .collect();
    Ok(Json(page(items, p, limit)))
}

pub async fn add(
    State(rt): State<Arc<Runtime>>,
    body: Result<Json<NewBan>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(n) = body?;
    let now = unix_now();
    let expires_at = match (n.expires_at, n.duration.as_deref()) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give expires_at or duration, not both")),
        (Some(e), None) => Some(e),
        (None, Some(d)) => {
            let d = parse_duration(d).map_err(|e| ApiError::bad_request(format!("duration: {e}")))?;
            Some(now.saturating_add(d.as_secs().max(1)))
        }
        (None, None) => None,
    };
    if expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::bad_request("expires_at is in the past"));
    }
    let ban = Ban {
        kind: n.kind,
        who: n.who,
        reason: n.reason.unwrap_or_default(),
        by: n.by.unwrap_or_else(|| "admin-api".to_string()),
        created_at: now,
        expires_at,
    };
    let added = live(&rt)?.add_any(ban).await.map_err(store_error)?;
    rt.refresh_ban_gauges();
    Ok((StatusCode::CREATED, Json(BanView::new(added, BanSource::Runtime))).into_response())
}

pub async fn remove(
    State(rt): State<Arc<Runtime>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((kind, who)) = path?;
    let kind = kind_of(&kind)?;
    let bans = live(&rt)?;
    if bans.remove_any(kind, &who).await.map_err(store_error)? {
        rt.refresh_ban_gauges();
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let in_file = bans.list().iter().any(|(b, s)| *s == BanSource::File && b.kind == kind && b.who == who);
    if in_file {
        return Err(ApiError::conflict("this ban comes from the ban file: edit the file and reload"));
    }
    Err(ApiError::not_found(format!("no runtime {kind} ban on {who:?}")))
}

pub async fn clear(State(rt): State<Arc<Runtime>>) -> Result<Json<serde_json::Value>, ApiError> {
    let n = live(&rt)?.clear_any().await.map_err(store_error)?;
    rt.refresh_ban_gauges();
    Ok(Json(json!({ "removed": n })))
}

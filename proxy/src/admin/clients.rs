//! `/api/v1/clients`: the sessions moat relays (paged, filtered by client id, username or IP),
//! and `DELETE /api/v1/clients/{clientid}` to close them (v5 clients get DISCONNECT 0x98).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{page, ApiError, Paging};
use crate::codec::ReasonCode;
use crate::runtime::Runtime;
use crate::session::{ClientFilter, ClientInfo};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    clientid: Option<String>,
    username: Option<String>,
    ip_address: Option<String>,
    page: Option<usize>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct ClientView<'a> {
    clientid: &'a str,
    username: Option<&'a str>,
    ip_address: String,
    port: u16,
    listener: &'a str,
    proto_ver: u8,
    cert_cn: Option<&'a str>,
    authenticator: &'a str,
    connected_at: u64,
    connection_id: u64,
}

impl<'a> ClientView<'a> {
    fn new(c: &'a ClientInfo) -> Self {
        Self {
            clientid: &c.client_id,
            username: c.username.as_deref(),
            ip_address: c.peer.ip().to_canonical().to_string(),
            port: c.peer.port(),
            listener: &c.listener,
            proto_ver: c.version.level(),
            cert_cn: c.cert_cn.as_deref(),
            authenticator: c.authenticator,
            connected_at: c.connected_at,
            connection_id: c.id,
        }
    }
}

pub async fn list(
    State(rt): State<Arc<Runtime>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q?;
    let (p, limit) = Paging::resolve(q.page, q.limit)?;
    let ip = match q.ip_address.as_deref() {
        Some(s) => {
            Some(s.parse::<IpAddr>().map_err(|_| ApiError::bad_request("ip_address is not an IP address"))?)
        }
        None => None,
    };
    let filter = ClientFilter { client_id: q.clientid, username: q.username, ip };
    let sessions = rt.ctx.registry.list(&filter);
    let views: Vec<ClientView<'_>> = sessions.iter().map(|c| ClientView::new(c)).collect();
    Ok(Json(page(views, p, limit)))
}

pub async fn kick(
    State(rt): State<Arc<Runtime>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(client_id) = path?;
    let filter = ClientFilter { client_id: Some(client_id.clone()), ..ClientFilter::default() };
    let n = rt.ctx.registry.kick(&filter, ReasonCode::AdministrativeAction);
    if n == 0 {
        return Err(ApiError::not_found(format!("no session with client id {client_id:?}")));
    }
    rt.ctx.metrics.ops.kicks.inc_by(n as u64);
    tracing::info!(target: "moat::audit", client_id = %crate::util::escape(&client_id), sessions = n, "sessions kicked by an operator");
    Ok(StatusCode::NO_CONTENT.into_response())
}

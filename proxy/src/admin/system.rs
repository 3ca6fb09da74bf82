//! `/api/v1/status`, `/api/v1/config` and `/api/v1/reload`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::config::{ClientAuth, Config};
use crate::runtime::{unix_now, ReloadError, Runtime};

pub async fn status(State(rt): State<Arc<Runtime>>) -> Json<Value> {
    let now = unix_now();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": rt.started_at,
        "uptime_seconds": now.saturating_sub(rt.started_at),
        "policy_generation": rt.ctx.policy.generation().current(),
        "sessions": rt.ctx.registry.len(),
        "last_reload": rt.last_reload(),
        "state_backend": match &rt.redis {
            None => json!({ "backend": "embedded", "up": true }),
            Some(r) => json!({ "backend": "redis", "up": r.is_up() }),
        },
    }))
}

pub async fn reload(State(rt): State<Arc<Runtime>>) -> Response {
    match rt.reload().await {
        Ok(report) => (StatusCode::OK, Json(json!(report))).into_response(),
        Err(e) => {
            let errors = match &e {
                ReloadError::Invalid(list) => list.clone(),
                other => vec![other.to_string()],
            };
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "code": "RELOAD_FAILED", "message": e.to_string(), "errors": errors })),
            )
                .into_response()
        }
    }
}

/// The configuration in force, with defaults filled in. Nothing secret is in it: key material,
/// token digests and password hashes are never part of the view, only the paths they came from.
pub async fn config(State(rt): State<Arc<Runtime>>) -> Json<Value> {
    Json(view(&rt.config.load()))
}

fn view(c: &Config) -> Value {
    let listeners: Vec<Value> = c
        .listeners
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "bind": l.bind.to_string(),
                "tls": l.tls.as_ref().map(|t| json!({
                    "cert": t.cert_path.display().to_string(),
                    "key": t.key_path.display().to_string(),
                    "client_auth": match t.client_auth {
                        ClientAuth::None => "none",
                        ClientAuth::Optional => "optional",
                        ClientAuth::Required => "required",
                    },
                    "client_ca_certificates": t.client_ca.len(),
                    "crls": t.crls.len(),
                    "allow_expired_crl": t.allow_expired_crl,
                    "versions": tls_versions(t.versions),
                })),
                "authentication": l.authentication.iter()
                    .filter_map(|&i| c.authenticators.get(i).map(|(n, _)| n.clone()))
                    .collect::<Vec<_>>(),
                "websocket_path": l.websocket_path,
                "proxy_protocol": l.proxy_protocol,
                "max_connections": l.max_connections,
            })
        })
        .collect();
    let authentication: Vec<Value> =
        c.authenticators.iter().map(|(name, a)| json!({ "name": name, "type": a.kind() })).collect();
    json!({
        "source": c.source.display().to_string(),
        "listeners": listeners,
        "upstream": { "address": c.upstream.address, "connect_timeout_seconds": c.upstream.connect_timeout.as_secs_f64() },
        "timeouts": {
            "tls_handshake_seconds": c.timeouts.tls_handshake.as_secs_f64(),
            "connect_seconds": c.timeouts.connect.as_secs_f64(),
            "shutdown_grace_seconds": c.timeouts.shutdown_grace.as_secs_f64(),
        },
        "limits": {
            "max_packet_size": c.limits.max_packet_size,
            "max_subscribe_filters": c.limits.max_subscribe_filters,
            "max_connections": c.limits.max_connections,
            "max_connections_per_ip": c.limits.max_connections_per_ip,
            "publish_rate": c.limits.publish_rate.map(|r| format!("{r:?}")),
        },
        "admin": {
            "bind": c.admin.bind.to_string(),
            "tokens_file": c.admin.tokens_file.as_ref().map(|p| p.display().to_string()),
            "tokens": c.admin.tokens.iter().map(|t| json!({ "name": t.name, "scope": t.scope })).collect::<Vec<_>>(),
        },
        "authentication": authentication,
        "authorization": c.acl.as_ref().map(|rules| json!({
            "rules": rules.len(),
            "check_delivery": c.acl_check_delivery,
        })),
        "broker_identity": {
            "username": if c.broker_identity.verified_username { "verified" } else { "client" },
            "password": if c.broker_identity.keep_password { "keep" } else { "drop" },
        },
        "bans": c.bans.as_ref().map(|b| json!({
            "file": b.file.as_ref().map(|p| p.display().to_string()),
            "file_bans": b.file_bans.len(),
            "store": b.store.as_ref().map(|p| p.display().to_string()),
        })),
        "flapping": c.flapping.map(|f| json!({
            "max_count": f.max_count,
            "window_seconds": f.window.as_secs_f64(),
            "ban_time_seconds": f.ban_time.as_secs_f64(),
            "ip_max_count": f.ip_max_count,
        })),
        // Credentials are never shown, only whether they are set.
        "state": match &c.state {
            crate::config::StateBackend::Embedded => json!({ "backend": "embedded" }),
            crate::config::StateBackend::Redis(r) => json!({
                "backend": "redis",
                "topology": r.topology.as_str(),
                // URLs and addresses never hold credentials (refused at validation).
                "url": match &r.topology {
                    crate::config::RedisTopology::Standalone { url } => Some(url),
                    _ => None,
                },
                "sentinel": match &r.topology {
                    crate::config::RedisTopology::Sentinel { master_name, addresses, username, password } => json!({
                        "master_name": master_name,
                        "addresses": addresses,
                        "username_set": username.is_some(),
                        "password_set": password.is_some(),
                    }),
                    _ => serde_json::Value::Null,
                },
                "cluster_nodes": match &r.topology {
                    crate::config::RedisTopology::Cluster { nodes } => Some(nodes),
                    _ => None,
                },
                "fleet_messages_per_user": r.messages_per_user.map(|m| json!({
                    "rate_per_second": m.rate,
                    "burst": m.burst,
                    "flush_interval_seconds": m.flush_interval.as_secs_f64(),
                })),
                "key_prefix": r.key_prefix,
                "timeout_seconds": r.timeout.as_secs_f64(),
                "username_set": r.username.is_some(),
                "password_set": r.password.is_some(),
                "fail_mode": match r.fail_mode {
                    crate::config::FailMode::Open => "open",
                    crate::config::FailMode::Closed => "closed",
                },
                "max_connections_per_client_id": r.max_connections_per_client_id,
                "max_connections_per_username": r.max_connections_per_username,
            }),
        },
    })
}

fn tls_versions(v: crate::config::TlsVersions) -> Vec<&'static str> {
    [v.tls12.then_some("1.2"), v.tls13.then_some("1.3")].into_iter().flatten().collect()
}

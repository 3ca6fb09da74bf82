//! The config file as written, with source positions. Unknown keys are errors (`deny_unknown_fields`)
//! so a misspelt security setting never silently falls back to a default.

use serde::Deserialize;
use serde_saphyr::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub listeners: S<Vec<RawListener>>,
    #[serde(default)]
    pub upstream: Option<RawUpstream>,
    #[serde(default)]
    pub timeouts: Option<RawTimeouts>,
    #[serde(default)]
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub log_format: Option<S<String>>,
    #[serde(default)]
    pub authentication: Option<S<Vec<RawAuthenticator>>>,
    #[serde(default)]
    pub authorization: Option<RawAuthorization>,
    #[serde(default)]
    pub broker_identity: Option<RawBrokerIdentity>,
    #[serde(default)]
    pub bans: Option<RawBans>,
    #[serde(default)]
    pub flapping: Option<RawFlapping>,
    #[serde(default)]
    pub state: Option<super::state::RawState>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlapping {
    pub max_count: S<u32>,
    pub window: S<String>,
    pub ban_time: S<String>,
    #[serde(default)]
    pub ip_max_count: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBans {
    #[serde(default)]
    pub file: Option<S<String>>,
    #[serde(default)]
    pub store: Option<S<String>>,
}

/// One authenticator; which keys apply depends on `type` (checked in validation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthenticator {
    pub name: S<String>,
    pub r#type: S<String>,
    #[serde(default)]
    pub path: Option<S<String>>,
    #[serde(default)]
    pub username_from: Option<S<String>>,
    #[serde(default)]
    pub clientid_from: Option<S<String>>,
    #[serde(default)]
    pub require_clientid_match: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthorization {
    pub acl: S<String>,
    #[serde(default)]
    pub check_delivery: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBrokerIdentity {
    #[serde(default)]
    pub username: Option<S<String>>,
    #[serde(default)]
    pub password: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub name: S<String>,
    pub bind: S<String>,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub plaintext: Option<S<bool>>,
    #[serde(default)]
    pub allow_insecure: Option<S<bool>>,
    #[serde(default)]
    pub authentication: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub websocket: Option<RawWebSocket>,
    #[serde(default)]
    pub proxy_protocol: Option<S<bool>>,
    #[serde(default)]
    pub max_connections: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebSocket {
    #[serde(default)]
    pub path: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: S<String>,
    pub key: S<String>,
    #[serde(default)]
    pub client_ca: Option<S<String>>,
    #[serde(default)]
    pub client_auth: Option<S<String>>,
    #[serde(default)]
    pub crls: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub allow_expired_crl: Option<S<bool>>,
    #[serde(default)]
    pub versions: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    #[serde(default)]
    pub address: Option<S<String>>,
    #[serde(default)]
    pub connect_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    #[serde(default)]
    pub tls_handshake: Option<S<String>>,
    #[serde(default)]
    pub connect: Option<S<String>>,
    #[serde(default)]
    pub shutdown_grace: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(default)]
    pub max_packet_size: Option<S<u64>>,
    #[serde(default)]
    pub max_subscribe_filters: Option<S<u64>>,
    #[serde(default)]
    pub max_connections: Option<S<u64>>,
    #[serde(default)]
    pub max_connections_per_ip: Option<S<u64>>,
    #[serde(default)]
    pub publish_rate: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    #[serde(default)]
    pub bind: Option<S<String>>,
    #[serde(default)]
    pub tokens_file: Option<S<String>>,
}

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
    pub audit: Option<RawAudit>,
    #[serde(default)]
    pub state: Option<super::state::RawState>,
    #[serde(default)]
    pub overload: Option<RawOverload>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOverload {
    #[serde(default)]
    pub max_connections: Option<S<u64>>,
    #[serde(default)]
    pub max_memory: Option<S<String>>,
    #[serde(default)]
    pub upstream_unhealthy: Option<S<bool>>,
    #[serde(default)]
    pub check_interval: Option<S<String>>,
}

/// Where the `moat::audit` events go (their own JSON stream, apart from the main log).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub output: S<String>,
    #[serde(default)]
    pub path: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlapping {
    pub max_count: S<u32>,
    pub window: S<String>,
    pub ban_time: S<String>,
    #[serde(default)]
    pub ip_max_count: Option<S<u32>>,
    #[serde(default)]
    pub auth_failure_max_count: Option<S<u32>>,
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
    // `type: jwt` (checked in config/authn.rs)
    #[serde(default)]
    pub token_from: Option<S<String>>,
    #[serde(default)]
    pub algorithms: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub secret_file: Option<S<String>>,
    #[serde(default)]
    pub secret_base64: Option<S<bool>>,
    #[serde(default)]
    pub public_key: Option<S<String>>,
    #[serde(default)]
    pub jwks_file: Option<S<String>>,
    #[serde(default)]
    pub jwks_url: Option<S<String>>,
    #[serde(default)]
    pub jwks_refresh: Option<S<String>>,
    #[serde(default)]
    pub jwks_timeout: Option<S<String>>,
    #[serde(default)]
    pub leeway: Option<S<String>>,
    #[serde(default)]
    pub required_claims: Option<S<std::collections::BTreeMap<String, S<String>>>>,
    #[serde(default)]
    pub username_claim: Option<S<String>>,
    #[serde(default)]
    pub clientid_claim: Option<S<String>>,
    #[serde(default)]
    pub acl_claim: Option<S<String>>,
    #[serde(default)]
    pub disconnect_on_expiry: Option<S<bool>>,
    // `type: http` (checked in config/authn.rs)
    #[serde(default)]
    pub url: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub on_failure: Option<S<String>>,
    #[serde(default)]
    pub cache_ttl: Option<S<String>>,
    #[serde(default)]
    pub cache_size: Option<S<u64>>,
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
    /// TLS with pre-shared keys instead of certificates (see `config/psk.rs`).
    #[serde(default)]
    pub tls_psk: Option<super::psk::RawTlsPsk>,
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
    /// Per-listener overrides of the global `limits:` quotas and rates.
    #[serde(default)]
    pub limits: Option<RawListenerLimits>,
}

/// The keys a listener's `limits:` block may override (the global `limits:` gives the defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenerLimits {
    #[serde(default)]
    pub max_topic_levels: Option<S<u64>>,
    #[serde(default)]
    pub max_topic_length: Option<S<u64>>,
    #[serde(default)]
    pub max_clientid_length: Option<S<u64>>,
    #[serde(default)]
    pub max_subscriptions: Option<S<u64>>,
    #[serde(default)]
    pub max_inflight: Option<S<u64>>,
    #[serde(default)]
    pub keepalive_min: Option<S<String>>,
    #[serde(default)]
    pub keepalive_max: Option<S<String>>,
    #[serde(default)]
    pub shared_subscriptions: Option<S<bool>>,
    // Rates (see `config/rates.rs`).
    #[serde(default)]
    pub publish_rate: Option<S<String>>,
    #[serde(default)]
    pub publish_bytes_rate: Option<S<String>>,
    #[serde(default)]
    pub listener_publish_rate: Option<S<String>>,
    #[serde(default)]
    pub listener_publish_bytes_rate: Option<S<String>>,
    #[serde(default)]
    pub connection_rate: Option<S<String>>,
    #[serde(default)]
    pub connection_rate_per_ip: Option<S<String>>,
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
    #[serde(default)]
    pub max_chain_depth: Option<S<u64>>,
    #[serde(default)]
    pub cipher_suites: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub session_resumption: Option<S<bool>>,
    #[serde(default)]
    pub session_tickets: Option<S<bool>>,
    #[serde(default)]
    pub watch: Option<S<bool>>,
    #[serde(default)]
    pub crl_fetch: Option<RawCrlFetch>,
    #[serde(default)]
    pub revoked_sessions: Option<S<String>>,
    #[serde(default)]
    pub ocsp_stapling: Option<S<RawOcspStapling>>,
    #[serde(default)]
    pub client_ocsp: Option<S<RawClientOcsp>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOcspStapling {
    #[serde(default)]
    pub enabled: Option<S<bool>>,
    #[serde(default)]
    pub responder_url: Option<S<String>>,
    #[serde(default)]
    pub refresh: Option<S<String>>,
    #[serde(default)]
    pub min_interval: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub must_staple: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientOcsp {
    #[serde(default)]
    pub mode: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub cache_ttl: Option<S<String>>,
    #[serde(default)]
    pub cache_size: Option<S<u64>>,
    #[serde(default)]
    pub responder_url: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCrlFetch {
    #[serde(default)]
    pub interval: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub urls: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    #[serde(default)]
    pub address: Option<S<String>>,
    #[serde(default)]
    pub connect_timeout: Option<S<String>>,
    #[serde(default)]
    pub allow_insecure: Option<S<bool>>,
    #[serde(default)]
    pub proxy_protocol: Option<S<String>>,
    #[serde(default)]
    pub tls: Option<S<RawUpstreamTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    #[serde(default)]
    pub ca: Option<S<String>>,
    #[serde(default)]
    pub server_name: Option<S<String>>,
    #[serde(default)]
    pub cert: Option<S<String>>,
    #[serde(default)]
    pub key: Option<S<String>>,
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
    // Quotas: global defaults, each overridable in a listener's `limits:` block.
    #[serde(default)]
    pub max_topic_levels: Option<S<u64>>,
    #[serde(default)]
    pub max_topic_length: Option<S<u64>>,
    #[serde(default)]
    pub max_clientid_length: Option<S<u64>>,
    #[serde(default)]
    pub max_subscriptions: Option<S<u64>>,
    #[serde(default)]
    pub max_inflight: Option<S<u64>>,
    #[serde(default)]
    pub keepalive_min: Option<S<String>>,
    #[serde(default)]
    pub keepalive_max: Option<S<String>>,
    #[serde(default)]
    pub shared_subscriptions: Option<S<bool>>,
    // Rates: per connection (`publish_rate` above), per listener (a default each listener's own
    // bucket starts from) and for the whole node.
    #[serde(default)]
    pub publish_bytes_rate: Option<S<String>>,
    #[serde(default)]
    pub listener_publish_rate: Option<S<String>>,
    #[serde(default)]
    pub listener_publish_bytes_rate: Option<S<String>>,
    #[serde(default)]
    pub node_publish_rate: Option<S<String>>,
    #[serde(default)]
    pub node_publish_bytes_rate: Option<S<String>>,
    #[serde(default)]
    pub connection_rate: Option<S<String>>,
    #[serde(default)]
    pub connection_rate_per_ip: Option<S<String>>,
    #[serde(default)]
    pub slow_consumer_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    #[serde(default)]
    pub bind: Option<S<String>>,
    #[serde(default)]
    pub tokens_file: Option<S<String>>,
    #[serde(default)]
    pub tls: Option<RawAdminTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdminTls {
    pub cert: S<String>,
    pub key: S<String>,
}

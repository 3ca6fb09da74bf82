//! The validated, immutable configuration the proxy runs with.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::policy::acl::RuleSet;
use crate::policy::authn::Authenticator;
use crate::policy::bans::Ban;
use crate::policy::flapping_filter::FlappingSettings;
use crate::policy::limits::RateSpec;

#[derive(Debug)]
pub struct Config {
    /// The file this was loaded from (for messages and reload).
    pub source: PathBuf,
    pub listeners: Vec<ListenerConfig>,
    pub upstream: UpstreamConfig,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub admin: AdminConfig,
    pub log_format: LogFormat,
    /// Every configured authenticator, by name, in file order.
    pub authenticators: Vec<(String, Arc<Authenticator>)>,
    /// The topic ACL, when `authorization.acl` is set.
    pub acl: Option<Arc<RuleSet>>,
    /// Check each broker → client PUBLISH against the client's subscribe permissions.
    pub acl_check_delivery: bool,
    pub broker_identity: BrokerIdentity,
    /// The ban file's bans and where runtime bans are kept; `None` when neither is set.
    pub bans: Option<BansConfig>,
    pub flapping: Option<FlappingSettings>,
    /// Where state shared between replicas lives (`state:`).
    pub state: super::state::StateBackend,
}

/// Bans: the file's entries (validated, loaded) and the runtime store's path. Validation also
/// opened the store and indexed everything, so `moat check` proves the whole list is usable.
#[derive(Debug, Clone)]
pub struct BansConfig {
    pub file: Option<PathBuf>,
    pub file_bans: Vec<Ban>,
    /// Where runtime bans are kept (survive restarts).
    pub store: Option<PathBuf>,
}

/// What the broker is told about the client in the forwarded CONNECT (trap 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerIdentity {
    /// `true`: the username the authenticator verified (none for anonymous clients);
    /// `false`: the username the client sent.
    pub verified_username: bool,
    /// Forward the client's password to the broker (default: dropped).
    pub keep_password: bool,
}

impl Default for BrokerIdentity {
    fn default() -> Self {
        Self { verified_username: true, keep_password: false }
    }
}

#[derive(Debug)]
pub struct ListenerConfig {
    pub name: String,
    pub bind: SocketAddr,
    /// `None` means plaintext, which the config had to ask for explicitly.
    pub tls: Option<TlsConfig>,
    /// Indexes into [`Config::authenticators`], in chain order.
    pub authentication: Vec<usize>,
    /// MQTT over WebSocket on this HTTP path (ws, or wss with `tls`).
    pub websocket_path: Option<String>,
    /// Expect a PROXY protocol (v1 or v2) header before anything else.
    pub proxy_protocol: bool,
    /// Most open connections on this listener.
    pub max_connections: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Optional,
    Required,
}

/// TLS material, loaded and parsed at validation time so `moat check` proves the files are usable.
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub client_auth: ClientAuth,
    pub client_ca: Vec<CertificateDer<'static>>,
    /// CRLs client certificate chains are checked against (every issuer of the chain needs one).
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// Accept a CRL past its nextUpdate (default: refuse clients, fail closed).
    pub allow_expired_crl: bool,
    /// TLS versions offered: some of 1.2 and 1.3 (never anything older).
    pub versions: TlsVersions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsVersions {
    pub tls12: bool,
    pub tls13: bool,
}

/// Hand-written so that no key material can ever reach a log line through `{:?}`.
impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("certs", &self.cert_chain.len())
            .field("key", &"<redacted>")
            .field("client_auth", &self.client_auth)
            .field("client_ca", &self.client_ca.len())
            .field("crls", &self.crls.len())
            .field("allow_expired_crl", &self.allow_expired_crl)
            .field("versions", &self.versions)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Host and port as written (resolved at dial time so a DNS name can move).
    pub address: String,
    pub connect_timeout: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub tls_handshake: Duration,
    pub connect: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest whole MQTT packet accepted in either direction, in bytes.
    pub max_packet_size: usize,
    /// Most topic filters one SUBSCRIBE may carry (each is an ACL check and a broker entry).
    pub max_subscribe_filters: usize,
    /// Most open connections in total and per source address.
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    /// PUBLISH packets per second per connection, enforced by not reading (nothing is dropped).
    pub publish_rate: Option<RateSpec>,
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub bind: SocketAddr,
    /// Where the bearer tokens were read from, and the tokens (digests only). Without tokens the
    /// `/api/v1` endpoints are refused; `/metrics` then stays open on the (loopback) admin port.
    pub tokens_file: Option<PathBuf>,
    pub tokens: Arc<Vec<crate::admin::tokens::AdminToken>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub const DEFAULT_UPSTREAM: &str = "127.0.0.1:1883";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9090";
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1024 * 1024;
pub const DEFAULT_MAX_SUBSCRIBE_FILTERS: usize = 100;
/// MQTT's own ceiling: a 4-byte remaining length plus a 5-byte fixed header.
pub const MQTT_MAX_PACKET_SIZE: u64 = 268_435_455 + 5;

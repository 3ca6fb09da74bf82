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
    /// Overload protection; `None` when the `overload:` block is absent.
    pub overload: Option<OverloadConfig>,
    /// The config file and every policy file it made moat read (watched for live reload).
    pub files: Vec<PathBuf>,
    /// A separate JSON stream for the `moat::audit` events; `None`: they stay in the main log.
    pub audit: Option<AuditOutput>,
    /// Where state shared between replicas lives (`state:`).
    pub state: super::state::StateBackend,
}

/// Thresholds past which new connections are refused while existing sessions keep flowing;
/// everything returns to normal by itself once the condition clears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverloadConfig {
    /// Open connections (all listeners) at or above which new ones are closed before TLS.
    pub max_connections: Option<usize>,
    /// Resident memory of the moat process, in bytes, above which new connections are closed
    /// before TLS (sampled every `check_interval`).
    pub max_memory: Option<u64>,
    /// Refuse new clients (CONNACK 0x89 / 3.1.1 3) without dialing while the upstream is down.
    pub upstream_unhealthy: bool,
    /// How often memory is sampled and a down upstream is probed.
    pub check_interval: Duration,
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

/// Where the audit stream is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditOutput {
    /// Standard output (the main log is on standard error, so a log shipper can tell them apart).
    Stdout,
    /// Appended to this file (created with mode 0600: it names users and topics).
    File(PathBuf),
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
    /// TLS-PSK (OpenSSL) instead of certificate TLS; `tls` is then `None`.
    pub psk: Option<super::PskConfig>,
    /// Indexes into [`Config::authenticators`], in chain order.
    pub authentication: Vec<usize>,
    /// MQTT over WebSocket on this HTTP path (ws, or wss with `tls`).
    pub websocket_path: Option<String>,
    /// Expect a PROXY protocol (v1 or v2) header before anything else.
    pub proxy_protocol: bool,
    /// Most open connections on this listener.
    pub max_connections: Option<usize>,
    /// The global `limits:` quotas with this listener's `limits:` overrides applied.
    pub quotas: Quotas,
    /// The global rates with this listener's overrides applied.
    pub rates: Rates,
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
    /// Where the CA bundle and the CRLs were read from: watched and re-read on reload.
    pub client_ca_path: Option<PathBuf>,
    pub crl_paths: Vec<PathBuf>,
    /// Chain depth, cipher suites, resumption and reload settings.
    pub options: TlsOptions,
}

/// Per-listener TLS policy beyond versions (see `config/tls.rs` for the checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// Most certificates a client may present (leaf plus intermediates); longer chains fail the
    /// handshake.
    pub max_chain_depth: usize,
    /// The suites offered, in preference order; `None` = every suite of the provider (all AEAD).
    pub cipher_suites: Option<Vec<rustls::CipherSuite>>,
    /// Stateful session resumption (a per-config cache, so a reload starts a fresh one).
    pub session_resumption: bool,
    /// Stateless session tickets (a per-config ticket key, so a reload invalidates old tickets).
    pub session_tickets: bool,
    /// Watch the certificate, key, CA and CRL files and reload them when they change.
    pub watch: bool,
    /// Fetch CRLs over HTTP from distribution points.
    pub crl_fetch: Option<CrlFetch>,
    /// Close live sessions whose client certificate the CRLs in force now revoke (default), or
    /// keep them until they reconnect.
    pub disconnect_revoked: bool,
    /// OCSP stapling of the server certificate (`None`: no staple).
    pub ocsp_stapling: Option<OcspStapling>,
    /// OCSP check of client certificates after the handshake (`None`: off).
    pub client_ocsp: Option<ClientOcsp>,
}

/// `tls.ocsp_stapling` (see `transport/tls/ocsp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcspStapling {
    /// `http://` responder; `None`: the server certificate's AIA OCSP URL.
    pub responder_url: Option<String>,
    /// Longest time between fetches (a staple is also refreshed at half its validity).
    pub refresh: Duration,
    /// Shortest time between fetches (retry delay after a failure).
    pub min_interval: Duration,
    pub timeout: Duration,
    /// No valid staple: refuse handshakes instead of serving without one.
    pub must_staple: bool,
}

/// `tls.client_ocsp` (see `transport/tls/ocsp/client.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOcsp {
    /// Responder unreachable or answer unusable: refuse (`hard_fail`) or allow (`soft_fail`).
    pub hard_fail: bool,
    pub timeout: Duration,
    /// Longest a good/revoked answer is cached (never past the response's nextUpdate).
    pub cache_ttl: Duration,
    pub cache_size: usize,
    /// `http://` responder used instead of the client certificate's AIA OCSP URL.
    pub responder_url: Option<String>,
}

/// CRLs fetched from the CA certificates' CRL distribution points and from `urls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlFetch {
    pub interval: Duration,
    pub timeout: Duration,
    /// Extra `http://` URLs (operator-chosen; client-supplied URLs are never fetched).
    pub urls: Vec<String>,
}

pub const DEFAULT_MAX_CHAIN_DEPTH: usize = 4;

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            max_chain_depth: DEFAULT_MAX_CHAIN_DEPTH,
            cipher_suites: None,
            session_resumption: true,
            session_tickets: false,
            watch: true,
            crl_fetch: None,
            disconnect_revoked: true,
            ocsp_stapling: None,
            client_ocsp: None,
        }
    }
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
            .field("options", &self.options)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Host and port as written (resolved at dial time so a DNS name can move).
    pub address: String,
    pub connect_timeout: Duration,
    /// Send a PROXY protocol v2 header first, so the broker sees the client's address (and the
    /// certificate CN in a TLV).
    pub proxy_protocol: bool,
    /// TLS toward the broker (`upstream.tls`), for brokers that are not on this host.
    pub tls: Option<UpstreamTls>,
}

/// A verified TLS connection to the broker: the client config is built once, at config time.
#[derive(Clone)]
pub struct UpstreamTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    /// The name the broker's certificate must carry (a DNS name or an IP address).
    pub server_name: rustls_pki_types::ServerName<'static>,
    /// SHA-256 of the CA, certificate and key files as loaded: a reload that finds other files
    /// reports `upstream` as needing a restart. Never the contents.
    pub fingerprint: [u8; 32],
}

impl std::fmt::Debug for UpstreamTls {
    /// Name and fingerprint only: key material stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
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
    /// Global quota defaults (each listener carries its effective copy in [`ListenerConfig`]).
    pub quotas: Quotas,
    /// Global rate defaults (each listener carries its effective copy in [`ListenerConfig`]).
    pub rates: Rates,
    /// Whole-node PUBLISH rates, shared by every connection of every listener.
    pub node_publish_rate: Option<RateSpec>,
    pub node_publish_bytes_rate: Option<RateSpec>,
    /// A client whose outbound queue stays full this long is disconnected (v5 DISCONNECT 0x97).
    pub slow_consumer_timeout: Option<Duration>,
}

/// Rate limits, EMQX-style hierarchical: a PUBLISH needs tokens from its connection's bucket, its
/// listener's bucket and the node's bucket; missing tokens stop moat reading from the client
/// (backpressure), nothing is dropped. `None` = no limit at that level.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// PUBLISH packets / bytes per second, per connection.
    pub publish_rate: Option<RateSpec>,
    pub publish_bytes_rate: Option<RateSpec>,
    /// PUBLISH packets / bytes per second, all connections of one listener together.
    pub listener_publish_rate: Option<RateSpec>,
    pub listener_publish_bytes_rate: Option<RateSpec>,
    /// Connection attempts per second on one listener, and per source IP on it; checked on
    /// accept, before TLS.
    pub connection_rate: Option<RateSpec>,
    pub connection_rate_per_ip: Option<RateSpec>,
}

/// Per-client quotas. Exceeding one is answered with the v5 reason code (0x97, 0x9E, 0x85, 0x93)
/// or a close in 3.1.1, counted in `moat_quota_exceeded_total` and logged to `moat::audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Most `/`-separated levels in a topic name or filter (Will topic included).
    pub max_topic_levels: usize,
    /// Longest topic name or filter, in bytes.
    pub max_topic_length: usize,
    /// Longest client id, in bytes.
    pub max_clientid_length: usize,
    /// Most distinct active subscription filters per connection; `None` = unlimited.
    pub max_subscriptions: Option<usize>,
    /// Most client → broker QoS 1/2 PUBLISHes awaiting the broker's ack; `None` = unlimited.
    pub max_inflight: Option<u16>,
    /// Keep-alive bounds in seconds (0 = "no keep-alive" counts as above any maximum).
    pub keepalive_min: Option<u16>,
    pub keepalive_max: Option<u16>,
    /// `false`: `$share/` filters are refused (SUBACK 0x9E).
    pub shared_subscriptions: bool,
}

/// EMQX's default; deep enough for any real hierarchy, shallow enough to bound matching work.
pub const DEFAULT_MAX_TOPIC_LEVELS: usize = 128;
/// Far above real topic names (AWS IoT caps them at 256 bytes) while keeping every ACL match and
/// broker-side subscription entry small; MQTT's own ceiling is 65535.
pub const DEFAULT_MAX_TOPIC_LENGTH: usize = 4096;
/// Room for UUIDs, device serials and certificate-derived ids (AWS IoT allows 128); client ids
/// end up in logs, ACL placeholders and broker memory, so 64 KiB ones buy nothing but cost.
pub const DEFAULT_MAX_CLIENTID_LENGTH: usize = 256;

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_topic_levels: DEFAULT_MAX_TOPIC_LEVELS,
            max_topic_length: DEFAULT_MAX_TOPIC_LENGTH,
            max_clientid_length: DEFAULT_MAX_CLIENTID_LENGTH,
            max_subscriptions: None,
            max_inflight: None,
            keepalive_min: None,
            keepalive_max: None,
            shared_subscriptions: true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub bind: SocketAddr,
    /// Where the bearer tokens were read from, and the tokens (digests only). Without tokens the
    /// `/api/v1` endpoints are refused; `/metrics` then stays open on the (loopback) admin port.
    pub tokens_file: Option<PathBuf>,
    pub tokens: Arc<Vec<crate::admin::tokens::AdminToken>>,
    /// Serve the admin API over HTTPS with this certificate chain and key (paths).
    pub tls: Option<(PathBuf, PathBuf)>,
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

//! The policy seam. Every policy (bans, limits, authn, ACL…) is a [`Filter`]: global hooks run
//! before the client is known (`on_accept`, `on_connect`), and [`Filter::start_session`] may hand the
//! session a [`SessionFilter`] holding per-client state compiled once at CONNECT (e.g. an ACL with
//! the client's placeholders expanded), whose hooks run per packet. Hooks return a [`Verdict`]; the
//! session turns a denial into the right MQTT answer for the client's protocol version. Filters
//! never touch sockets or bytes.

pub mod acl;
pub mod acl_filter;
pub mod authn;
pub mod ban_filter;
pub mod bans;
mod chain;
pub mod flapping_filter;
pub mod fleet;
pub mod limits;
pub mod live;
mod yaml_node;

pub use chain::{AllowAll, Chain, SessionChain};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::codec::{Connect, ProtocolVersion, Publish, ReasonCode, SubscriptionOptions};

/// Why something was denied: the MQTT answer and the metric label travel together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deny {
    /// v5 reason code; its 3.1.1 equivalent comes from [`ReasonCode::connack_v3`] (CONNACK) or
    /// the packet's own failure form (SUBACK 0x80, a plain PUBACK).
    pub reason: ReasonCode,
    /// Low-cardinality label for metrics and logs (`"acl"`, `"banned"`, …).
    pub label: &'static str,
    /// Close the connection instead of answering the one packet (ACL `deny_action: disconnect`).
    pub disconnect: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny(Deny),
}

impl Verdict {
    pub fn deny(reason: ReasonCode, label: &'static str) -> Self {
        Verdict::Deny(Deny { reason, label, disconnect: false })
    }
}

/// What is known about a connection before any MQTT byte is read.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub peer: SocketAddr,
    pub listener: Arc<str>,
    /// The address the client connected to (moat's side of the socket): the destination in a
    /// PROXY header sent to the broker.
    pub local: SocketAddr,
    /// The connection is TLS (or WSS).
    pub tls: bool,
    /// The client certificate chain the TLS layer verified (leaf first), if any.
    pub client_certs: Option<Arc<[rustls_pki_types::CertificateDer<'static>]>>,
    /// The identity a TLS-PSK handshake proved (the client holds its key), if the listener is PSK.
    pub psk_identity: Option<Arc<str>>,
}

/// Who the client is once authentication has decided. Filled from the credential, not from what
/// the client claims (trap 5), except where no authenticator says otherwise.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub username: Option<String>,
    pub client_id: String,
    pub cert_cn: Option<String>,
    pub groups: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub superuser: bool,
    /// Which authenticator admitted the client (for logs).
    pub authenticator: &'static str,
    /// ACL rules carried by the credential (JWT `acl` claim, HTTP backend); checked before the
    /// ACL file's rules.
    pub acl_rules: Arc<[acl::Rule]>,
    /// When the credential stops being valid (JWT `exp` with `disconnect_on_expiry`): the relay
    /// closes the session then.
    pub expires_at: Option<std::time::SystemTime>,
}

/// What is known once CONNECT has been accepted; handed to every later hook.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub peer: PeerInfo,
    pub version: ProtocolVersion,
    pub identity: Identity,
}

/// A policy with global hooks. Every hook defaults to allow, so a filter implements only the
/// points it cares about. Hooks are synchronous and must not block: a policy that needs I/O keeps
/// its own cache and refreshes it in the background (authentication, which may call out, is not a
/// filter but its own async step between `on_connect` and `start_session`).
pub trait Filter: Send + Sync + 'static {
    /// Name for logs.
    fn name(&self) -> &'static str;

    /// Before the TLS handshake: the cheapest rejections (IP bans, per-IP limits).
    fn on_accept(&self, _peer: &PeerInfo) -> Verdict {
        Verdict::Allow
    }

    /// After CONNECT is parsed, before authentication and before anything reaches the broker.
    fn on_connect(&self, _peer: &PeerInfo, _connect: &Connect<'_>) -> Verdict {
        Verdict::Allow
    }

    /// Authentication refused this CONNECT (flapping counts these per address and username).
    fn on_auth_failure(&self, _peer: &PeerInfo, _connect: &Connect<'_>) {}

    /// A live session re-checked after the policy or the ban list changed: would this filter
    /// refuse it now? Must not count anything (it is not a new connection).
    fn on_recheck(&self, _session: &SessionInfo, _connect: &Connect<'_>) -> Verdict {
        Verdict::Allow
    }

    /// Whether this filter inspects broker → client PUBLISHes (`on_deliver`). Then moat tells the
    /// broker it accepts no topic aliases, so a dropped delivery cannot leave the client's alias
    /// map out of step with the broker's.
    fn checks_delivery(&self) -> bool {
        false
    }

    /// After authentication: compile per-client state, check the Will (`connect` still carries it),
    /// or refuse the session.
    fn start_session(
        &self,
        _session: &SessionInfo,
        _connect: &Connect<'_>,
    ) -> Result<Option<Box<dyn SessionFilter>>, Deny> {
        Ok(None)
    }
}

/// Per-session hooks of a filter, holding state compiled for one client.
pub trait SessionFilter: Send + 'static {
    /// A client PUBLISH, with its topic already resolved from any topic alias.
    fn on_publish(&mut self, _session: &SessionInfo, _topic: &str, _publish: &Publish<'_>) -> Verdict {
        Verdict::Allow
    }

    /// One filter of a client SUBSCRIBE (possibly `$share/…`).
    fn on_subscribe(
        &mut self,
        _session: &SessionInfo,
        _filter: &str,
        _options: SubscriptionOptions,
    ) -> Verdict {
        Verdict::Allow
    }

    /// A PUBLISH from the broker about to be delivered to the client.
    fn on_deliver(&mut self, _session: &SessionInfo, _topic: &str, _publish: &Publish<'_>) -> Verdict {
        Verdict::Allow
    }
}

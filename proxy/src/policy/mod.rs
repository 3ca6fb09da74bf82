//! The policy seam: every policy (authn, acl, bans, limits…) is a [`Filter`] whose hooks return a
//! [`Verdict`]. The session runs the [`Chain`] at each enforcement point and turns a denial into the
//! right MQTT answer for the client's protocol version; filters never touch sockets or bytes.

mod chain;

pub use chain::{AllowAll, Chain};

use std::net::SocketAddr;
use std::sync::Arc;

use crate::codec::{Connect, ProtocolVersion, Publish, ReasonCode, SubscriptionOptions};

/// Why something was denied: the MQTT answer and the metric label travel together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deny {
    /// v5 reason code; its 3.1.1 equivalent comes from [`ReasonCode::connack_v3`].
    pub reason: ReasonCode,
    /// Low-cardinality label for metrics and logs (`"acl"`, `"banned"`, …).
    pub label: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny(Deny),
}

impl Verdict {
    pub fn deny(reason: ReasonCode, label: &'static str) -> Self {
        Verdict::Deny(Deny { reason, label })
    }
}

/// What is known about a connection before any MQTT byte is read.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub peer: SocketAddr,
    pub listener: Arc<str>,
    /// Whether the client presented a certificate that the TLS layer verified.
    pub client_cert_verified: bool,
}

/// What is known once CONNECT has been accepted; handed to every later hook.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub peer: PeerInfo,
    pub version: ProtocolVersion,
    pub client_id: String,
    pub username: Option<String>,
}

/// A policy with hooks at each enforcement point. Every hook defaults to allow, so a filter
/// implements only the points it cares about. Hooks are synchronous and must not block: a policy
/// that needs I/O keeps its own cache and is refreshed in the background.
pub trait Filter: Send + Sync + 'static {
    /// Name for logs.
    fn name(&self) -> &'static str;

    /// Before the TLS handshake: the cheapest rejections (IP bans, per-IP limits).
    fn on_accept(&self, _peer: &PeerInfo) -> Verdict {
        Verdict::Allow
    }

    /// After CONNECT is parsed and before anything reaches the broker.
    fn on_connect(&self, _peer: &PeerInfo, _connect: &Connect<'_>) -> Verdict {
        Verdict::Allow
    }

    /// A client PUBLISH, with its topic already resolved from any topic alias.
    fn on_publish(&self, _session: &SessionInfo, _topic: &str, _publish: &Publish<'_>) -> Verdict {
        Verdict::Allow
    }

    /// One filter of a client SUBSCRIBE.
    fn on_subscribe(&self, _session: &SessionInfo, _filter: &str, _options: SubscriptionOptions) -> Verdict {
        Verdict::Allow
    }

    /// A PUBLISH from the broker about to be delivered to the client.
    fn on_deliver(&self, _session: &SessionInfo, _topic: &str, _publish: &Publish<'_>) -> Verdict {
        Verdict::Allow
    }
}

//! Every metric moat exports, defined in one place. Handles that the hot path touches are resolved
//! once (at start-up or per connection), never looked up per packet.
//!
//! Labels are low-cardinality by construction: listener names come from the config, the rest are
//! `&'static str` from fixed sets. A client id or topic never becomes a label.

pub mod ops;
pub mod process;
pub mod state;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::codec::PacketType;

pub mod tls;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub listener: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PacketLabels {
    pub direction: &'static str,
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenyLabels {
    /// Enforcement point: `connect`, `publish`, `subscribe`, `deliver`.
    pub point: &'static str,
    /// The filter's deny label (`acl`, `banned`, …).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    pub authenticator: &'static str,
    /// `allow` or the deny label.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AclLabels {
    /// `publish`, `subscribe` or `will`.
    pub action: &'static str,
    /// `allow`, `deny`, `would_deny` (shadow mode) or `no_match_allow` / `no_match_deny`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    /// The quota's config key (`max_topic_levels`, `max_inflight`, …).
    pub quota: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Which way a packet travels through moat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to broker.
    Inbound = 0,
    /// Broker to client.
    Outbound = 1,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// How a connection ended (or got through the connect phase): the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnResult {
    /// CONNECT was forwarded to the broker.
    Accepted,
    TlsError,
    Timeout,
    ProtocolError,
    UpstreamUnavailable,
    Denied,
    /// The peer went away before sending a CONNECT.
    Closed,
}

impl ConnResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnResult::Accepted => "accepted",
            ConnResult::TlsError => "tls_error",
            ConnResult::Timeout => "timeout",
            ConnResult::ProtocolError => "protocol_error",
            ConnResult::UpstreamUnavailable => "upstream_unavailable",
            ConnResult::Denied => "denied",
            ConnResult::Closed => "closed",
        }
    }
}

const PACKET_TYPES: [PacketType; 15] = [
    PacketType::Connect,
    PacketType::Connack,
    PacketType::Publish,
    PacketType::Puback,
    PacketType::Pubrec,
    PacketType::Pubrel,
    PacketType::Pubcomp,
    PacketType::Subscribe,
    PacketType::Suback,
    PacketType::Unsubscribe,
    PacketType::Unsuback,
    PacketType::Pingreq,
    PacketType::Pingresp,
    PacketType::Disconnect,
    PacketType::Auth,
];

/// Per-direction packet and byte counters, pre-resolved so counting costs one atomic add.
#[derive(Clone)]
pub struct TrafficCounters {
    /// Indexed by `[direction][packet type value - 1]`.
    packets: [[Counter; 15]; 2],
    bytes: [Counter; 2],
}

impl TrafficCounters {
    #[inline]
    pub fn packet(&self, dir: Direction, t: PacketType, len: usize) {
        let i = (t as usize).saturating_sub(1);
        if let Some(c) = self.packets[dir as usize].get(i) {
            c.inc();
        }
        self.bytes[dir as usize].inc_by(len as u64);
    }
}

pub struct Metrics {
    registry: Registry,
    connections: Family<ConnectionLabels, Counter>,
    active: Family<ListenerLabels, Gauge>,
    pub traffic: TrafficCounters,
    pub upstream_connect_failures: Counter,
    pub upstream_connect_seconds: Histogram,
    protocol_errors: Family<KindLabels, Counter>,
    denials: Family<DenyLabels, Counter>,
    authentications: Family<AuthLabels, Counter>,
    pub authentication_seconds: Histogram,
    acl_decisions: Family<AclLabels, Counter>,
    acl_rule_matches: Family<RuleLabels, Counter>,
    quota_exceeded: Family<QuotaLabels, Counter>,
    overload_refusals: Family<KindLabels, Counter>,
    resident_memory: Gauge,
    pub ops: ops::OpsMetrics,
    pub tls: tls::TlsMetrics,
    pub state: state::StateMetrics,
    pub process: process::ProcessMetrics,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("moat");
        registry.register(
            "jwks_refresh_failures",
            "JWKS fetches that failed (the last good keys stay in use)",
            crate::policy::authn::jwt::jwks::REFRESH_FAILURES.clone(),
        );
        let connections = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "connections",
            "Connections by listener and connect-phase result",
            connections.clone(),
        );
        let active = Family::<ListenerLabels, Gauge>::default();
        registry.register("connections_active", "Connections open now", active.clone());
        let packets = Family::<PacketLabels, Counter>::default();
        registry.register(
            "packets",
            "MQTT packets relayed or answered, by direction and type",
            packets.clone(),
        );
        let bytes = Family::<DirectionLabels, Counter>::default();
        registry.register("bytes", "MQTT bytes relayed, by direction", bytes.clone());
        let upstream_connect_failures = Counter::default();
        registry.register(
            "upstream_connect_failures",
            "Failed or timed-out dials to the upstream broker",
            upstream_connect_failures.clone(),
        );
        let upstream_connect_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "upstream_connect_duration_seconds",
            "Time to establish the TCP connection to the upstream broker",
            upstream_connect_seconds.clone(),
        );
        let protocol_errors = Family::<KindLabels, Counter>::default();
        registry.register("protocol_errors", "Protocol violations by kind", protocol_errors.clone());
        let denials = Family::<DenyLabels, Counter>::default();
        registry.register("denials", "Packets or connections refused by a policy filter", denials.clone());
        let authentications = Family::<AuthLabels, Counter>::default();
        registry.register(
            "authentications",
            "Authentication decisions by authenticator and result",
            authentications.clone(),
        );
        let authentication_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "authentication_duration_seconds",
            "Time the authentication chain took to decide",
            authentication_seconds.clone(),
        );
        let acl_decisions = Family::<AclLabels, Counter>::default();
        registry.register("acl_decisions", "ACL decisions by action and result", acl_decisions.clone());
        let acl_rule_matches = Family::<RuleLabels, Counter>::default();
        registry.register(
            "acl_rule_matches",
            "ACL decisions by the rule that made them",
            acl_rule_matches.clone(),
        );
        let tls = tls::TlsMetrics::register(&mut registry);

        let quota_exceeded = Family::<QuotaLabels, Counter>::default();
        registry.register(
            "quota_exceeded",
            "Packets or connections refused because a quota was exceeded, by quota",
            quota_exceeded.clone(),
        );

        let overload_refusals = Family::<KindLabels, Counter>::default();
        registry.register(
            "overload_refusals",
            "New connections refused by overload protection, by kind (connections, memory, upstream)",
            overload_refusals.clone(),
        );
        let resident_memory = Gauge::default();
        registry.register(
            "resident_memory_bytes",
            "Resident memory of the moat process, as last sampled by overload protection",
            resident_memory.clone(),
        );
        let ops = ops::OpsMetrics::register(&mut registry);
        let state = state::StateMetrics::register(&mut registry);
        let process = process::ProcessMetrics::register(&mut registry);

        let dir_counters = |d: Direction| {
            PACKET_TYPES.map(|t| {
                packets.get_or_create_owned(&PacketLabels { direction: d.as_str(), r#type: t.as_str() })
            })
        };
        let traffic = TrafficCounters {
            packets: [dir_counters(Direction::Inbound), dir_counters(Direction::Outbound)],
            bytes: [Direction::Inbound, Direction::Outbound]
                .map(|d| bytes.get_or_create_owned(&DirectionLabels { direction: d.as_str() })),
        };
        Arc::new(Self {
            registry,
            connections,
            active,
            traffic,
            upstream_connect_failures,
            upstream_connect_seconds,
            protocol_errors,
            denials,
            authentications,
            authentication_seconds,
            acl_decisions,
            acl_rule_matches,
            quota_exceeded,
            overload_refusals,
            resident_memory,
            ops,
            tls,
            state,
            process,
        })
    }

    pub fn connection(&self, listener: &str, result: ConnResult) {
        self.connections
            .get_or_create(&ConnectionLabels { listener: listener.to_string(), result: result.as_str() })
            .inc();
    }

    /// The active-connection gauge of one listener (resolve once per listener).
    pub fn active_gauge(&self, listener: &str) -> Gauge {
        self.active.get_or_create_owned(&ListenerLabels { listener: listener.to_string() })
    }

    pub fn protocol_error(&self, kind: &'static str) {
        self.protocol_errors.get_or_create(&KindLabels { kind }).inc();
    }

    pub fn denied(&self, point: &'static str, reason: &'static str) {
        self.denials.get_or_create(&DenyLabels { point, reason }).inc();
    }

    pub fn authentication(&self, authenticator: &'static str, result: &'static str) {
        self.authentications.get_or_create(&AuthLabels { authenticator, result }).inc();
    }

    /// One ACL decision counter; resolve once and keep it (the ACL runs per packet).
    pub fn acl_counter(&self, action: &'static str, result: &'static str) -> Counter {
        self.acl_decisions.get_or_create_owned(&AclLabels { action, result })
    }

    /// The match counter of one ACL rule (rule ids are a bounded, user-chosen set).
    pub fn acl_rule_counter(&self, rule: &str) -> Counter {
        self.acl_rule_matches.get_or_create_owned(&RuleLabels { rule: rule.to_string() })
    }

    /// One quota violation (only on the refusal path, so the lookup is not per forwarded packet).
    pub fn quota_exceeded(&self, quota: &'static str) {
        self.quota_exceeded.get_or_create(&QuotaLabels { quota }).inc();
    }

    /// One connection refused by overload protection.
    pub fn overload_refusal(&self, kind: &'static str) {
        self.overload_refusals.get_or_create(&KindLabels { kind }).inc();
    }

    pub fn set_resident_memory(&self, bytes: u64) {
        self.resident_memory.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.process.refresh();
        if let Some(rss) = crate::transport::overload::resident_bytes() {
            self.set_resident_memory(rss);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

//! The PUBLISH rate limits one session runs with: its own connection buckets plus the shared
//! listener and node buckets (`policy::limits::TrafficLimiter`), built once per listener at start.
//!
//! Byte buckets always hold at least one packet of `max_packet_size`: a smaller burst would make
//! such a packet wait forever, which is a stuck session rather than a limit.

use crate::config::{Limits, Rates};
use crate::policy::limits::{ConnBuckets, Limiter, RateSpec, SharedBucket, TokenBucket, TrafficLimiter};

/// The node's shared buckets (one set per process).
#[derive(Clone, Debug, Default)]
pub struct NodeBuckets {
    messages: Option<SharedBucket>,
    bytes: Option<SharedBucket>,
}

impl NodeBuckets {
    pub fn new(limits: &Limits) -> Self {
        let floor = limits.max_packet_size as f64;
        NodeBuckets {
            messages: limits.node_publish_rate.map(|s| shared(s, 1.0)),
            bytes: limits.node_publish_bytes_rate.map(|s| shared(s, floor)),
        }
    }
}

/// One listener's PUBLISH limits: what each of its sessions needs to build its own buckets.
#[derive(Clone, Debug)]
pub struct TrafficPlan {
    limiter: TrafficLimiter,
    conn_messages: Option<RateSpec>,
    conn_bytes: Option<RateSpec>,
    byte_floor: f64,
}

impl TrafficPlan {
    /// `None` when no level limits anything (the relay then skips the check entirely).
    pub fn new(rates: &Rates, node: &NodeBuckets, max_packet_size: usize) -> Option<Self> {
        let floor = max_packet_size as f64;
        let listener_messages = rates.listener_publish_rate.map(|s| shared(s, 1.0));
        let listener_bytes = rates.listener_publish_bytes_rate.map(|s| shared(s, floor));
        let any = rates.publish_rate.is_some()
            || rates.publish_bytes_rate.is_some()
            || listener_messages.is_some()
            || listener_bytes.is_some()
            || node.messages.is_some()
            || node.bytes.is_some();
        any.then(|| TrafficPlan {
            limiter: TrafficLimiter {
                messages: Limiter::new(listener_messages, node.messages.clone()),
                bytes: Limiter::new(listener_bytes, node.bytes.clone()),
            },
            conn_messages: rates.publish_rate,
            conn_bytes: rates.publish_bytes_rate,
            byte_floor: floor,
        })
    }

    /// A new session's limiter and its own (full) connection buckets.
    pub fn session(&self) -> (TrafficLimiter, ConnBuckets) {
        let conn = ConnBuckets {
            messages: self.conn_messages.map_or_else(TokenBucket::unlimited, |s| bucket(s, 1.0)),
            bytes: self.conn_bytes.map_or_else(TokenBucket::unlimited, |s| bucket(s, self.byte_floor)),
        };
        (self.limiter.clone(), conn)
    }
}

fn bucket(spec: RateSpec, floor: f64) -> TokenBucket {
    TokenBucket::new(spec.rate, spec.burst_or_default().max(floor))
}

fn shared(spec: RateSpec, floor: f64) -> SharedBucket {
    SharedBucket::new(spec.rate, spec.burst_or_default().max(floor))
}

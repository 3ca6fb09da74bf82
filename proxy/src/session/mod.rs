//! One client connection from its first MQTT byte to its close: the connect phase (first packet
//! must be a valid CONNECT, the policy chain decides, only then is the broker dialed) and the relay
//! loop that passes every frame in both directions through the filters.

mod alias;
mod broker;
mod client;
mod connect;
mod io;
mod pending;
mod quota;
mod recheck;
pub mod registry;
mod relay;
mod rewrite;
mod scram;
mod traffic;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{Limits, Quotas, Timeouts, UpstreamConfig};
use crate::metrics::Metrics;
use crate::policy::live::LivePolicy;

pub use connect::run;
pub use registry::{ClientFilter, ClientInfo, Registry};
pub use traffic::{NodeBuckets, TrafficPlan};

/// Everything a session needs, shared by all sessions of the process.
pub struct Context {
    pub upstream: UpstreamConfig,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// Filters, authentication chains and broker identity in force (swapped by reloads).
    pub policy: LivePolicy,
    /// Live sessions (admin API listing and kicks).
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the process starts its graceful shutdown.
    pub shutdown: CancellationToken,
    /// Each listener's effective quotas (global `limits:` with its overrides), by listener name.
    pub listener_quotas: Vec<(Arc<str>, Quotas)>,
    /// Each listener's PUBLISH rate limits (`None`: none at any level), by listener name.
    pub listener_traffic: Vec<(Arc<str>, Option<TrafficPlan>)>,
    /// Overload protection, when configured.
    pub overload: Option<Arc<crate::transport::overload::Overload>>,
    /// Checks against state shared by replicas (`state.backend: redis`); `None` when embedded.
    pub fleet: Option<Arc<dyn crate::policy::fleet::FleetChecks>>,
    /// Fleet-wide PUBLISH rate per username (`state.fleet_limits`); `None` when not set.
    pub fleet_rates: Option<Arc<crate::state::FleetRates>>,
}

impl Context {
    /// The PUBLISH rate limits of `listener` (looked up once per connection).
    pub fn traffic_for(&self, listener: &str) -> Option<&TrafficPlan> {
        self.listener_traffic.iter().find(|(name, _)| &**name == listener).and_then(|(_, t)| t.as_ref())
    }

    /// The quotas of `listener` (looked up once per connection; few listeners, so a scan).
    pub fn quotas_for(&self, listener: &str) -> Quotas {
        self.listener_quotas
            .iter()
            .find(|(name, _)| &**name == listener)
            .map_or(self.limits.quotas, |(_, q)| *q)
    }
}

/// Smallest read buffer (and top-up) per direction. Every idle connection holds two, and a
/// device's packets are mostly tens of bytes (PINGREQ, small PUBLISHes); a busy connection's
/// buffer doubles on each top-up (`io::reserve_read`), so large frames cost a few more reads once.
const READ_CHUNK: usize = 256;
/// Largest single top-up of a read buffer.
const READ_CHUNK_MAX: usize = 16 * 1024;
/// Bytes queued toward one peer before moat stops reading from the other (backpressure).
/// A single frame can exceed it; the queue is then bounded by this plus `max_packet_size`.
const QUEUE_CAP: usize = 64 * 1024;

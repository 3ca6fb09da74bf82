//! Shared state through Redis (`state.backend: redis`): runtime bans every replica applies within a
//! second, flapping counted across the fleet, fleet-wide connection caps.
//!
//! Failure behaviour: every Redis call is bounded by `state.redis.timeout`. While Redis cannot be
//! reached the last known ban list stays in force (it lives in memory, see
//! [`crate::policy::bans::LiveBans`]), local limits and flapping keep working, new connections are
//! admitted or refused per `fail_mode`, `moat_state_backend_up` is 0 and `/readyz` says degraded.
//! The connection manager and the ban sync task reconnect by themselves.
//!
//! Deployments (`conn.rs`): one server, a master found through Sentinel, or a Cluster. Every
//! script and command touches exactly one key, so each runs on one slot of a cluster; the ban
//! list is one hash, so a full resync is one `HGETALL` on one node (no `KEYS`/`SCAN`).
//!
//! Key layout (all under `key_prefix`):
//! - `bans` (hash): `kind|who` → the ban as JSON; `bans:changed` (channel): a change was made.
//! - `flap:cid:<sha256>` / `flap:ip:<addr>` (counters with the window as TTL).
//! - `conn:cid:<sha256>` / `conn:user:<sha256>` (sorted sets): one member per live session,
//!   scored by the time its lease ends, so a crashed replica's sessions stop counting by
//!   themselves.
//! - `rate:user:<sha256>` (hash): the fleet-wide PUBLISH token bucket of one username
//!   (`state.fleet_limits`, see `rates.rs`).

mod bans;
mod conn;
mod fleet;
mod rates;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::config::{FailMode, RedisConfig};
use crate::metrics::Metrics;

pub use bans::{initial_sync, run_ban_sync, RedisBans};
pub(crate) use conn::Conn;
pub use fleet::RedisFleet;
pub use rates::{FleetRates, UserRate};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The message comes from the client library and never contains the password.
    #[error("redis: {0}")]
    Redis(String),
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// One Redis deployment, shared by the ban store, the sync task and the fleet checks.
pub struct RedisState {
    pub(crate) conn: Conn,
    pub(crate) cfg: RedisConfig,
    /// [`UNKNOWN`], [`UP`] or [`DOWN`]: logs happen on transitions only.
    health: AtomicU8,
    pub(crate) metrics: Arc<Metrics>,
    /// Random per process: names this replica's members in the connection sets.
    pub(crate) replica: String,
}

impl RedisState {
    /// Prepares the client; does not wait for Redis (moat starts degraded if it is down and
    /// catches up when it comes back).
    pub fn new(cfg: RedisConfig, metrics: Arc<Metrics>) -> Result<Arc<Self>, StateError> {
        let conn = Conn::new(&cfg).map_err(|e| StateError::Redis(e.kind_text()))?;
        let mut bytes = [0u8; 8];
        let _ = getrandom::getrandom(&mut bytes);
        let replica = hex::encode(bytes);
        metrics.state.up.set(0);
        Ok(Arc::new(Self { conn, cfg, health: AtomicU8::new(UNKNOWN), metrics, replica }))
    }

    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.cfg.key_prefix)
    }

    /// True for a Redis Cluster: commands on several keys must then be split by key.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.cfg.topology, crate::config::RedisTopology::Cluster { .. })
    }

    pub fn fail_mode(&self) -> FailMode {
        self.cfg.fail_mode
    }

    pub fn is_up(&self) -> bool {
        self.health.load(Ordering::Relaxed) == UP
    }

    /// Records the outcome of a call; logs only transitions, so an outage is one line, not one
    /// per connection.
    pub(crate) fn outcome<T>(&self, op: &'static str, r: &redis::RedisResult<T>) {
        match r {
            Ok(_) => self.mark_up(),
            Err(e) => self.mark_down(op, &e.kind_text()),
        }
    }

    pub(crate) fn mark_up(&self) {
        if self.health.swap(UP, Ordering::Relaxed) != UP {
            info!("state backend (redis) reachable");
        }
        self.metrics.state.up.set(1);
    }

    pub(crate) fn mark_down(&self, op: &'static str, error: &str) {
        self.metrics.state.error(op);
        if self.health.swap(DOWN, Ordering::Relaxed) != DOWN {
            warn!(op, error, "state backend (redis) unreachable: enforcing last known bans and local limits");
        }
        self.metrics.state.up.set(0);
    }
}

/// A fixed-size key part for untrusted strings (client ids and usernames may be 64 KiB).
pub(crate) fn digest(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Error text without anything a server may have echoed from a command (keys, values).
trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for redis::RedisError {
    fn kind_text(&self) -> String {
        if self.is_timeout() {
            return "timed out".to_string();
        }
        if self.is_connection_refusal() {
            return "connection refused".to_string();
        }
        if self.is_io_error() || self.is_connection_dropped() {
            return "connection lost".to_string();
        }
        format!("{:?}", self.kind())
    }
}

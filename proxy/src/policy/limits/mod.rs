//! Rate limits, flapping detection and connection caps: the pure, clock-free primitives behind
//! moat's overload protection. Nothing here does I/O or reads the clock; callers pass `Instant`s,
//! which keeps the logic deterministic under test and lets the proxy use one timestamp per event.
//!
//! Semantics follow EMQX: a hierarchical limiter (connection → listener → node) and
//! `flapping_detect` (`max_count` events in `window_time` → ban for `ban_time`), extended to key
//! flapping by source IP and auth failures, since client-id-only detection is evaded by rotating
//! client ids.

mod bucket;
mod conn_rate;
mod connections;
mod flapping;
mod hierarchy;
mod rate;

#[cfg(test)]
mod tests;

pub use bucket::TokenBucket;
pub use conn_rate::{ConnRateHit, ConnectionRate};
pub use connections::{ConnectionGuard, ConnectionLimits, LimitHit};
pub use flapping::{FlapKey, FlapKind, FlappingConfig, FlappingDetector};
pub use hierarchy::{ConnBuckets, Limiter, SharedBucket, TrafficLimiter};
pub use rate::{parse_rate, parse_rate_spec, Rate, RateError, RateSpec};

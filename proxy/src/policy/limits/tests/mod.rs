//! Deterministic tests: time is an `Instant` base plus offsets, never a sleep.

mod bucket;
mod connections;
mod flapping;
mod hierarchy;
mod props;
mod rate;

use std::time::{Duration, Instant};

/// `base + ms` milliseconds.
fn at(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}

//! A token bucket driven by caller-supplied time.
//!
//! Time is an argument rather than read from a clock so the proxy can pass one `Instant` per event
//! and tests are deterministic. Refusals carry the exact wait so the proxy applies backpressure
//! (stops reading from the socket for that long) instead of dropping MQTT packets, which would
//! break QoS guarantees.

use std::time::{Duration, Instant};

use super::rate::Rate;

/// Relative slack when comparing tokens with a request. Refill is computed in `f64`, so after
/// sleeping exactly the advertised wait the bucket may be short by an ulp; without this slack the
/// retry would be refused again for one nanosecond. The over-grant this allows is ~1e-9 of a take.
const TOLERANCE: f64 = 1e-9;

/// Token bucket: holds at most `burst` tokens, refills at `rate` tokens per second, starts full.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Tokens per second; `None` means unlimited.
    rate: Option<f64>,
    capacity: f64,
    tokens: f64,
    /// Time of the last refill; `None` until the first take, since `new` has no clock.
    last: Option<Instant>,
}

impl TokenBucket {
    /// Creates a full bucket. Inputs are sanitised rather than rejected (this constructor cannot
    /// fail): a NaN or negative rate never refills, a NaN or negative burst admits nothing but
    /// zero-sized takes. Validated configuration comes from [`super::parse_rate_spec`].
    pub fn new(rate: Rate, burst: f64) -> Self {
        let rate = match rate {
            Rate::Infinity => None,
            Rate::PerSecond(per_second) => Some(sanitise(per_second)),
        };
        let capacity = sanitise(burst);
        TokenBucket { rate, capacity, tokens: capacity, last: None }
    }

    /// An unlimited bucket, for levels that have no limit configured.
    pub fn unlimited() -> Self {
        TokenBucket::new(Rate::Infinity, f64::INFINITY)
    }

    /// Takes `n` tokens, or returns how long until `n` tokens will be available (nothing is
    /// consumed on refusal). `Duration::MAX` means never: `n` exceeds the burst, or the rate is
    /// zero. Takes of zero, negative or NaN tokens succeed and change nothing.
    pub fn try_take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let wait = self.wait_for(n);
        if wait.is_zero() {
            self.commit(n);
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// The configured capacity (burst). Callers with requests that may exceed it (large
    /// publishes against a byte limit) can compare against this rather than wait forever.
    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    /// Whether this bucket never refuses.
    pub fn is_unlimited(&self) -> bool {
        self.rate.is_none()
    }

    /// Tokens available at `now` (refilling first).
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        if self.is_unlimited() {
            f64::INFINITY
        } else {
            self.tokens
        }
    }

    /// Adds the tokens accrued since the last refill. A `now` earlier than the last refill (the
    /// caller's clock readings are not ordered across threads) is treated as no time passing.
    pub(super) fn refill(&mut self, now: Instant) {
        let Some(rate) = self.rate else { return };
        if let Some(last) = self.last {
            if now <= last {
                return;
            }
            let accrued = now.duration_since(last).as_secs_f64() * rate;
            self.tokens = (self.tokens + accrued).min(self.capacity);
        }
        self.last = Some(now);
    }

    /// Wait until `n` tokens are present, given the current (already refilled) level.
    pub(super) fn wait_for(&self, n: f64) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        if n.is_nan() || n <= 0.0 {
            return Duration::ZERO;
        }
        if n.is_infinite() {
            return Duration::MAX;
        }
        let slack = TOLERANCE * n.max(1.0);
        let deficit = n - self.tokens;
        if deficit <= slack {
            return Duration::ZERO;
        }
        if n - self.capacity > slack || rate <= 0.0 {
            return Duration::MAX;
        }
        // Round up to the nanosecond so that sleeping for the returned wait is always enough.
        let nanos = (deficit / rate * 1e9).ceil();
        if nanos >= u64::MAX as f64 {
            Duration::MAX
        } else {
            // `as` saturates; nanos is finite and in 1..u64::MAX here.
            Duration::from_nanos(nanos as u64)
        }
    }

    /// Removes `n` tokens after `wait_for(n)` returned zero.
    pub(super) fn commit(&mut self, n: f64) {
        if self.rate.is_some() && n > 0.0 {
            self.tokens = (self.tokens - n).max(0.0);
        }
    }

    /// Returns tokens taken by a hierarchy take that a later level refused.
    pub(super) fn refund(&mut self, n: f64) {
        if self.rate.is_some() && n > 0.0 {
            self.tokens = (self.tokens + n).min(self.capacity);
        }
    }
}

fn sanitise(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.max(0.0)
    }
}

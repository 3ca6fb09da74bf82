//! EMQX-style hierarchical limits: a take must pass the connection, then the listener, then the
//! node bucket.
//!
//! Shared levels are `Arc<Mutex<TokenBucket>>`, not atomics: a bucket's state is two values (token
//! level and last refill time) that must change together, and the critical section is a handful of
//! float operations with no I/O or `.await`, so an uncontended `std::sync::Mutex` costs tens of
//! nanoseconds. A lock-free version would need a packed fixed-point CAS loop and still could not
//! make the three levels all-or-nothing.
//!
//! All-or-nothing is done by take-then-refund: each level's lock is held on its own, never nested,
//! so there is no lock order to get wrong and no deadlock even if one bucket is configured at two
//! levels. If a later level refuses, the tokens already taken are put back. Between the take and
//! the refund another connection may see fewer tokens and be asked to wait: conservative, never an
//! over-grant.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::bucket::TokenBucket;
use super::rate::Rate;

/// A bucket shared by all connections of a listener, or by the whole node.
#[derive(Clone, Debug)]
pub struct SharedBucket(Arc<Mutex<TokenBucket>>);

impl SharedBucket {
    pub fn new(rate: Rate, burst: f64) -> Self {
        SharedBucket(Arc::new(Mutex::new(TokenBucket::new(rate, burst))))
    }

    /// A poisoned lock is recovered: every bucket update is a couple of plain field writes with no
    /// panicking code in between, so the state is consistent even if a holder panicked.
    fn lock(&self) -> MutexGuard<'_, TokenBucket> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tokens available at `now` (for metrics and tests).
    pub fn available(&self, now: Instant) -> f64 {
        self.lock().available(now)
    }
}

/// One limited resource (messages/s or bytes/s) with its optional listener and node levels; the
/// connection level is the caller's `TokenBucket`, owned by the connection task so it needs no lock.
///
/// As in EMQX, a level left as `None` is unlimited.
#[derive(Clone, Debug, Default)]
pub struct Limiter {
    listener: Option<SharedBucket>,
    node: Option<SharedBucket>,
}

impl Limiter {
    pub fn new(listener: Option<SharedBucket>, node: Option<SharedBucket>) -> Self {
        Limiter { listener, node }
    }

    /// Takes `n` from the connection, listener and node buckets (in that order), all or nothing.
    /// On refusal nothing is consumed and the wait is the longest any refusing level needs, so a
    /// caller that sleeps for it does not immediately hit the next level.
    pub fn take(&self, conn: &mut TokenBucket, n: f64, now: Instant) -> Result<(), Duration> {
        conn.refill(now);
        let conn_wait = conn.wait_for(n);
        if !conn_wait.is_zero() {
            // Report the shared levels' waits too, without taking from them.
            return Err(self.shared_levels().map(|level| peek(level, n, now)).fold(conn_wait, Duration::max));
        }
        conn.commit(n);

        for (index, level) in self.shared_levels().enumerate() {
            let wait = {
                let mut bucket = level.lock();
                bucket.refill(now);
                let wait = bucket.wait_for(n);
                if wait.is_zero() {
                    bucket.commit(n);
                }
                wait
            };
            if wait.is_zero() {
                continue;
            }
            let later = self.shared_levels().skip(index.saturating_add(1)).map(|later| peek(later, n, now));
            let wait = later.fold(wait, Duration::max);
            for earlier in self.shared_levels().take(index) {
                earlier.lock().refund(n);
            }
            conn.refund(n);
            return Err(wait);
        }
        Ok(())
    }

    fn shared_levels(&self) -> impl Iterator<Item = &SharedBucket> {
        self.listener.iter().chain(self.node.iter())
    }
}

/// The wait a shared level would impose, without taking.
fn peek(level: &SharedBucket, n: f64, now: Instant) -> Duration {
    let mut bucket = level.lock();
    bucket.refill(now);
    bucket.wait_for(n)
}

/// The per-connection state for [`TrafficLimiter`]: one bucket per resource.
#[derive(Clone, Debug)]
pub struct ConnBuckets {
    pub messages: TokenBucket,
    pub bytes: TokenBucket,
}

/// Messages/s and bytes/s limiters for one listener (sharing the node's buckets).
#[derive(Clone, Debug, Default)]
pub struct TrafficLimiter {
    pub messages: Limiter,
    pub bytes: Limiter,
}

impl TrafficLimiter {
    /// Charges one message of `bytes` bytes against both resources, all or nothing: if the byte
    /// limit refuses, the message token is refunded so a retry does not pay twice.
    pub fn take_message(&self, conn: &mut ConnBuckets, bytes: f64, now: Instant) -> Result<(), Duration> {
        self.messages.take(&mut conn.messages, 1.0, now)?;
        match self.bytes.take(&mut conn.bytes, bytes, now) {
            Ok(()) => Ok(()),
            Err(wait) => {
                conn.messages.refund(1.0);
                for level in self.messages.shared_levels() {
                    level.lock().refund(1.0);
                }
                Err(wait)
            }
        }
    }
}

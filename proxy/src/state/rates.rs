//! Fleet-wide PUBLISH rate per username (`state.fleet_limits.messages_per_user`).
//!
//! The hot path never waits on Redis: each session of a user holds that user's [`UserRate`] on
//! this replica, and a PUBLISH only decrements an atomic allowance. Every `flush_interval` the
//! flusher sends each user's count since the last flush to a token bucket in Redis (one hash per
//! user, refilled by Redis server time in a Lua script) and stores the tokens the fleet has left
//! as the new allowance. A user whose allowance is spent is throttled like the local
//! `limits.publish_rate` (moat stops reading from the client until the next flush may grant
//! tokens: backpressure, not loss).
//!
//! Accuracy: within one flush interval every replica may spend the tokens the fleet had at its
//! last flush, so the fleet can admit up to `(replicas − 1) × tokens` more than the bucket held
//! (≤ `(replicas − 1) × burst` in a spike; about `(replicas − 1) × rate × flush_interval` once the
//! bucket is drained, since then each flush grants only the refill). The excess is taken from the
//! bucket as debt (tokens go negative), so over a longer period the fleet stays at `rate`. A user
//! new on a replica waits for the first flush (≤ `flush_interval`) before its first message is
//! relayed, so reconnecting resets nothing. While Redis is down each
//! replica enforces the same rate and burst alone (fleet total ≤ replicas × rate).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use super::{digest, RedisState};
use crate::config::FleetMessageRate;

/// KEYS[1] bucket; ARGV[1] messages spent since the last flush, ARGV[2] rate (per second),
/// ARGV[3] burst. Returns the whole tokens left (negative: debt).
const BUCKET_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[2]) / 1000
local burst = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then tokens = burst ts = now end
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end
tokens = tokens - tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
return math.floor(tokens)
";

/// Most users flushed concurrently (each is one script call on its own key).
const CONCURRENCY: usize = 32;

/// One user's fleet rate on this replica, shared by its sessions here.
#[derive(Debug)]
pub struct UserRate {
    /// Messages this replica may still admit before the next flush says otherwise.
    allowance: AtomicI64,
    /// Messages admitted since the last flush.
    pending: AtomicU64,
    retry: Duration,
}

impl UserRate {
    /// Takes one message; `Err(wait)` when the fleet's bucket is empty (the caller throttles).
    pub fn take(&self) -> Result<(), Duration> {
        if self.allowance.fetch_sub(1, Ordering::Relaxed) <= 0 {
            self.allowance.fetch_add(1, Ordering::Relaxed);
            return Err(self.retry);
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back a message taken for a PUBLISH another limit then held back.
    pub fn refund(&self) {
        self.allowance.fetch_add(1, Ordering::Relaxed);
        let _ = self.pending.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

struct Entry {
    user: Weak<UserRate>,
    key: String,
    /// Fraction of a token carried between local refills while Redis is down.
    local_carry: f64,
}

/// The per-user handles of this replica and the task that flushes them.
pub struct FleetRates {
    state: Arc<RedisState>,
    spec: FleetMessageRate,
    users: Mutex<HashMap<String, Entry>>,
    script: redis::Script,
}

impl FleetRates {
    pub fn new(state: Arc<RedisState>, spec: FleetMessageRate) -> Arc<Self> {
        Arc::new(Self {
            state,
            spec,
            users: Mutex::new(HashMap::new()),
            script: redis::Script::new(BUCKET_SCRIPT),
        })
    }

    /// The handle of `username` (made on first use); held by the session for its lifetime.
    pub fn user(&self, username: &str) -> Arc<UserRate> {
        let id = digest(username);
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = users.get(&id).and_then(|e| e.user.upgrade()) {
            return u;
        }
        let u = Arc::new(UserRate {
            // Nothing until the first flush says what the fleet has left: a fresh handle with a
            // full burst would let a user reset its allowance by reconnecting.
            allowance: AtomicI64::new(0),
            pending: AtomicU64::new(0),
            retry: self.spec.flush_interval,
        });
        let key = self.state.key(&format!("rate:user:{id}"));
        users.insert(id, Entry { user: Arc::downgrade(&u), key, local_carry: 0.0 });
        u
    }

    /// Flushes every `flush_interval`; runs until aborted.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.spec.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        loop {
            tick.tick().await;
            let elapsed = last.elapsed();
            last = Instant::now();
            self.flush(elapsed).await;
        }
    }

    async fn flush(&self, elapsed: Duration) {
        let burst = whole(self.spec.burst);
        // Users with something to report or a bucket still refilling; idle full ones cost nothing.
        let work: Vec<(String, String, Arc<UserRate>)> = {
            let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
            users.retain(|_, e| e.user.strong_count() > 0);
            users
                .iter()
                .filter_map(|(id, e)| e.user.upgrade().map(|u| (id.clone(), e.key.clone(), u)))
                .filter(|(_, _, u)| {
                    u.pending.load(Ordering::Relaxed) > 0 || u.allowance.load(Ordering::Relaxed) < burst
                })
                .collect()
        };
        let results: Vec<(String, Arc<UserRate>, u64, redis::RedisResult<i64>)> =
            futures_util::stream::iter(work)
                .map(|(id, key, u)| async move {
                    let spent = u.pending.swap(0, Ordering::Relaxed);
                    let mut conn = self.state.conn.clone();
                    let r: redis::RedisResult<i64> = self
                        .script
                        .key(key)
                        .arg(spent)
                        .arg(self.spec.rate.to_string())
                        .arg(self.spec.burst.to_string())
                        .invoke_async(&mut conn)
                        .await;
                    (id, u, spent, r)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        let mut failed = false;
        let any = !results.is_empty();
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        for (id, u, _spent, r) in results {
            match r {
                Ok(tokens) => {
                    // What this replica admitted while the call was out is in `pending` (next
                    // flush) and comes off the new allowance now.
                    let since = i64::try_from(u.pending.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
                    u.allowance.store(tokens.saturating_sub(since), Ordering::Relaxed);
                    if let Some(e) = users.get_mut(&id) {
                        e.local_carry = 0.0;
                    }
                }
                Err(_) => {
                    failed = true;
                    // Alone: refill locally at the same rate, up to the same burst.
                    if let Some(e) = users.get_mut(&id) {
                        let now = u.allowance.load(Ordering::Relaxed).max(0) as f64;
                        let tokens = (now + e.local_carry + self.spec.rate * elapsed.as_secs_f64())
                            .min(self.spec.burst);
                        let granted = tokens.floor();
                        e.local_carry = tokens - granted;
                        u.allowance.store(granted as i64, Ordering::Relaxed);
                    }
                }
            }
        }
        drop(users);
        if failed {
            self.state.mark_down("fleet_rate", "flush failed");
        } else if any {
            self.state.mark_up();
        }
    }
}

fn whole(x: f64) -> i64 {
    if x >= i64::MAX as f64 {
        i64::MAX
    } else {
        x.floor() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(allowance: i64) -> UserRate {
        UserRate {
            allowance: AtomicI64::new(allowance),
            pending: AtomicU64::new(0),
            retry: Duration::from_millis(100),
        }
    }

    #[test]
    fn take_spends_the_allowance_then_asks_to_wait_until_the_next_flush() {
        let u = user(2);
        assert_eq!(u.take(), Ok(()));
        assert_eq!(u.take(), Ok(()));
        assert_eq!(u.take(), Err(Duration::from_millis(100)));
        assert_eq!(u.take(), Err(Duration::from_millis(100)), "a refused take leaves nothing behind");
        assert_eq!(u.pending.load(Ordering::Relaxed), 2, "only admitted messages are reported");
        assert_eq!(u.allowance.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_debt_blocks_and_a_refund_gives_the_token_back() {
        let u = user(-3);
        assert!(u.take().is_err(), "a fleet in debt admits nothing");
        assert_eq!(u.allowance.load(Ordering::Relaxed), -3);
        let u = user(1);
        assert_eq!(u.take(), Ok(()));
        u.refund();
        assert_eq!((u.allowance.load(Ordering::Relaxed), u.pending.load(Ordering::Relaxed)), (1, 0));
        u.refund();
        assert_eq!(u.pending.load(Ordering::Relaxed), 0, "pending never wraps below zero");
    }

    #[test]
    fn whole_tokens_round_down_and_saturate() {
        assert_eq!(whole(5.9), 5);
        assert_eq!(whole(1e300), i64::MAX);
    }
}

//! Runtime bans in Redis: a hash `bans` (`kind|who` → ban JSON) plus a `bans:changed` channel.
//! Writers update the hash, then publish; every replica's sync task re-reads the whole hash on a
//! message and every [`RESYNC_EVERY`] anyway, so a message lost while a replica was disconnected
//! heals at the next resync. Expiry: each ban carries `expires_at` and stops applying at that
//! instant on every replica (the ban set checks it on lookup); the sync task deletes expired
//! entries from the hash so it does not grow.
//!
//! Writes are Lua scripts on the one hash key (update, then publish), atomic on a single server
//! and on a cluster alike (a `MULTI` pipeline would not be routed as one unit by a cluster
//! client). A PUBLISH on any cluster node reaches the subscribers on every node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};
use redis::AsyncCommands as _;
use tracing::{debug, warn};

use super::{KindText as _, RedisState};
use crate::policy::bans::{Ban, BanKind, BoxFuture, LiveBans, SharedBanError, SharedBanStore};
use crate::runtime::unix_now;

/// Full resync period: the bound on how long a missed change message can go unnoticed.
pub const RESYNC_EVERY: Duration = Duration::from_secs(3);
/// Pause before re-subscribing after the subscription failed.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Most bans read back from Redis; a larger hash is refused (and the last known list kept).
const MAX_SHARED_BANS: usize = 1_000_000;

fn field(kind: BanKind, who: &str) -> String {
    format!("{}|{who}", kind.as_str())
}

/// KEYS[1] hash; ARGV[1] field, ARGV[2] ban JSON, ARGV[3] channel.
const PUT_SCRIPT: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], 'put')
return 1
";

/// KEYS[1] hash; ARGV[1] field, ARGV[2] channel. Returns how many entries went.
const DELETE_SCRIPT: &str = r"
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'delete')
return n
";

/// KEYS[1] hash; ARGV[1] channel. Returns how many entries went.
const CLEAR_SCRIPT: &str = r"
local n = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], 'clear')
return n
";

/// [`SharedBanStore`] on Redis.
pub struct RedisBans {
    state: Arc<RedisState>,
    scripts: Arc<[redis::Script; 3]>,
}

impl RedisBans {
    pub fn new(state: Arc<RedisState>) -> Self {
        let scripts = Arc::new([
            redis::Script::new(PUT_SCRIPT),
            redis::Script::new(DELETE_SCRIPT),
            redis::Script::new(CLEAR_SCRIPT),
        ]);
        Self { state, scripts }
    }
}

fn unavailable(e: &redis::RedisError) -> SharedBanError {
    SharedBanError(format!("redis unavailable ({})", e.kind_text()))
}

impl SharedBanStore for RedisBans {
    fn put(&self, ban: Ban) -> BoxFuture<Result<(), SharedBanError>> {
        let state = self.state.clone();
        let scripts = self.scripts.clone();
        Box::pin(async move {
            let json = serde_json::to_string(&ban).map_err(|e| SharedBanError(e.to_string()))?;
            let mut conn = state.conn.clone();
            let r: redis::RedisResult<()> = scripts[0]
                .key(state.key("bans"))
                .arg(field(ban.kind, &ban.who))
                .arg(json)
                .arg(state.key("bans:changed"))
                .invoke_async(&mut conn)
                .await;
            state.outcome("bans_write", &r);
            r.map_err(|e| unavailable(&e))
        })
    }

    fn delete(&self, kind: BanKind, who: String) -> BoxFuture<Result<bool, SharedBanError>> {
        let state = self.state.clone();
        let scripts = self.scripts.clone();
        Box::pin(async move {
            let mut conn = state.conn.clone();
            let r: redis::RedisResult<u64> = scripts[1]
                .key(state.key("bans"))
                .arg(field(kind, &who))
                .arg(state.key("bans:changed"))
                .invoke_async(&mut conn)
                .await;
            state.outcome("bans_write", &r);
            r.map(|n| n > 0).map_err(|e| unavailable(&e))
        })
    }

    fn clear(&self) -> BoxFuture<Result<usize, SharedBanError>> {
        let state = self.state.clone();
        let scripts = self.scripts.clone();
        Box::pin(async move {
            let mut conn = state.conn.clone();
            let r: redis::RedisResult<usize> = scripts[2]
                .key(state.key("bans"))
                .arg(state.key("bans:changed"))
                .invoke_async(&mut conn)
                .await;
            state.outcome("bans_write", &r);
            r.map_err(|e| unavailable(&e))
        })
    }
}

/// Reads the whole hash and hands it to `live`. Entries that do not parse or validate are skipped
/// (and counted): one bad entry written by another tool must not lift every other ban.
async fn resync(state: &RedisState, live: &LiveBans) -> bool {
    let mut conn = state.conn.clone();
    let r: redis::RedisResult<HashMap<String, String>> = conn.hgetall(state.key("bans")).await;
    state.outcome("bans_sync", &r);
    let Ok(entries) = r else {
        return false;
    };
    if entries.len() > MAX_SHARED_BANS {
        warn!(entries = entries.len(), "shared ban hash too large; keeping the last known list");
        state.metrics.state.error("bans_sync");
        return false;
    }
    let now = unix_now();
    let mut bans = Vec::with_capacity(entries.len());
    let mut expired = Vec::new();
    for (key, json) in entries {
        match serde_json::from_str::<Ban>(&json).map_err(|e| e.to_string()).and_then(Ban::normalized) {
            Ok(ban) if !ban.is_active(now) => expired.push(key),
            Ok(ban) if field(ban.kind, &ban.who) == key => bans.push(ban),
            Ok(_) | Err(_) => {
                state.metrics.state.error("bans_invalid_entry");
                debug!("skipping an invalid entry in the shared ban hash");
            }
        }
    }
    if !expired.is_empty() {
        // Best effort; any replica may do it, and doing it twice is harmless.
        let _: redis::RedisResult<u64> = conn.hdel(state.key("bans"), expired).await;
    }
    let n = bans.len();
    match live.replace_shared(bans) {
        Ok(changed) => {
            debug!(bans = n, changed, "shared bans resynced");
            changed
        }
        Err(e) => {
            warn!(error = %e, "cannot apply the shared ban list; keeping the last known list");
            false
        }
    }
}

/// Loads the shared bans once before the listeners serve, so the first clients are checked
/// against them (bounded by the configured timeout; on failure moat starts degraded).
pub async fn initial_sync(state: &RedisState, live: &LiveBans) -> bool {
    let bound = state.cfg.timeout.saturating_mul(3);
    match tokio::time::timeout(bound, resync(state, live)).await {
        Ok(ok) => ok,
        Err(_) => {
            state.mark_down("bans_sync", "timed out");
            false
        }
    }
}

/// Keeps `live`'s mirror of the shared bans current: subscribe, resync, then resync on every
/// change message and every [`RESYNC_EVERY`]; on any failure wait a moment and start over.
pub async fn run_ban_sync(
    state: Arc<RedisState>,
    live: Arc<LiveBans>,
    on_change: impl Fn() + Send + 'static,
) {
    let channel = state.key("bans:changed");
    loop {
        let pubsub = tokio::time::timeout(state.cfg.timeout, async {
            let mut p = state.conn.pubsub_client().await?.get_async_pubsub().await?;
            p.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(p)
        })
        .await;
        let mut pubsub = match pubsub {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                state.mark_down("subscribe", &e.kind_text());
                // Still resync through the manager if it works: a half-up Redis is better than none.
                if resync(&state, &live).await {
                    on_change();
                }
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
            Err(_) => {
                state.mark_down("subscribe", "timed out");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        // Subscribed first, then read: a change made in between is seen by one or the other.
        if resync(&state, &live).await {
            on_change();
        }
        let mut messages = pubsub.on_message();
        let mut tick = tokio::time::interval(RESYNC_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                m = messages.next() => {
                    if m.is_none() {
                        state.mark_down("subscribe", "connection lost");
                        break;
                    }
                    // Coalesce a burst of messages into one resync (bounded drain).
                    for _ in 0..1024 {
                        match messages.next().now_or_never() {
                            Some(Some(_)) => continue,
                            _ => break,
                        }
                    }
                }
                _ = tick.tick() => {
                    // Sentinel: a failover moves the master; subscribe again on the new one.
                    if let Ok(true) = state.conn.refresh().await {
                        if resync(&state, &live).await {
                            on_change();
                        }
                        break;
                    }
                }
            }
            if resync(&state, &live).await {
                on_change();
            }
        }
        drop(messages);
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

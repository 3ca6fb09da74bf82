//! [`FleetChecks`] on Redis: flapping counted across replicas and fleet-wide connection caps.
//!
//! Flapping: one counter per client id and per source address, incremented by a Lua script that
//! sets the window as the key's TTL on the first event (EMQX's fixed window). The event that
//! brings a counter to the threshold resets it and bans the key for `ban_time` through the shared
//! ban list, so every replica refuses it (and kicks its live sessions) within a second.
//!
//! Connection caps: a sorted set per client id / username with one member per live session,
//! scored by the end of its lease (Redis server time). Admission removes lapsed members, counts,
//! and adds the new one in one script, so two replicas cannot both take the last slot. Each
//! replica renews its members' leases every [`LEASE`]/3 and removes them when the session ends;
//! a crashed replica's members lapse after [`LEASE`].

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use super::{digest, RedisState};
use crate::codec::ReasonCode;
use crate::config::FailMode;
use crate::policy::bans::{Ban, BanKind, BoxFuture, LiveBans};
use crate::policy::flapping_filter::FlappingSettings;
use crate::policy::fleet::{FleetChecks, SlotGuard};
use crate::policy::Deny;
use crate::runtime::unix_now;
use crate::util::escape;

/// How long a session's slot counts without renewal.
pub const LEASE: Duration = Duration::from_secs(30);

/// KEYS[1] counter; ARGV[1] window (ms), ARGV[2] threshold. Returns 1 when this event crosses it.
const FLAP_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) return 1 end
return 0
";

/// KEYS[1] set; ARGV[1] member, ARGV[2] cap, ARGV[3] lease (ms). Returns 1 if admitted.
const CLAIM_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
";

/// KEYS: sets; ARGV[1] lease (ms), then one member per key. Renews (or re-adds, after a Redis
/// restart lost them) the members of this replica's live sessions.
const RENEW_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', k, lease * 2)
end
return #KEYS
";

static NEXT_SLOT: AtomicU64 = AtomicU64::new(1);

type Held = Arc<Mutex<HashSet<(String, String)>>>;

/// Cheap to clone: the futures handed to the connect phase own a handle.
#[derive(Clone)]
pub struct RedisFleet(Arc<Inner>);

struct Inner {
    state: Arc<RedisState>,
    bans: Arc<LiveBans>,
    flapping: Option<FlappingSettings>,
    flap: redis::Script,
    claim: redis::Script,
    renew: redis::Script,
    /// This replica's live slots: (set key, member).
    held: Held,
}

impl RedisFleet {
    pub fn new(state: Arc<RedisState>, bans: Arc<LiveBans>, flapping: Option<FlappingSettings>) -> Self {
        Self(Arc::new(Inner {
            state,
            bans,
            flapping,
            flap: redis::Script::new(FLAP_SCRIPT),
            claim: redis::Script::new(CLAIM_SCRIPT),
            renew: redis::Script::new(RENEW_SCRIPT),
            held: Arc::new(Mutex::new(HashSet::new())),
        }))
    }

    /// Renews the leases of this replica's live slots; runs until aborted.
    pub async fn renew_leases(self) {
        self.0.renew_leases().await
    }
}

impl Inner {
    /// What a connection gets when Redis could not answer.
    fn degraded(&self) -> Result<(), Deny> {
        match self.state.fail_mode() {
            FailMode::Open => {
                self.state.metrics.state.degraded(true);
                Ok(())
            }
            FailMode::Closed => {
                self.state.metrics.state.degraded(false);
                Err(Deny { reason: ReasonCode::ServerUnavailable, label: "state_backend", disconnect: false })
            }
        }
    }

    async fn count(&self, key: String, window: Duration, threshold: u32) -> redis::RedisResult<bool> {
        let mut conn = self.state.conn.clone();
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let r: redis::RedisResult<i64> =
            self.flap.key(key).arg(window_ms).arg(threshold.max(1)).invoke_async(&mut conn).await;
        self.state.outcome("flapping", &r);
        r.map(|n| n == 1)
    }

    async fn flapping(&self, ip: IpAddr, client_id: String) -> Result<(), Deny> {
        let Some(f) = self.flapping else {
            // Nothing to count: still apply fail_mode while Redis is known to be down, since the
            // ban list this replica enforces may be stale.
            return if self.state.is_up() { Ok(()) } else { self.degraded() };
        };
        let mut crossed = Vec::new();
        if !client_id.is_empty() {
            let key = self.state.key(&format!("flap:cid:{}", digest(&client_id)));
            match self.count(key, f.window, f.max_count).await {
                Ok(true) => crossed.push((BanKind::ClientId, client_id.clone())),
                Ok(false) => {}
                Err(_) => return self.degraded(),
            }
        }
        if let Some(max) = f.ip_max_count {
            let key = self.state.key(&format!("flap:ip:{ip}"));
            match self.count(key, f.window, max).await {
                Ok(true) => crossed.push((BanKind::IpAddress, ip.to_string())),
                Ok(false) => {}
                Err(_) => return self.degraded(),
            }
        }
        if crossed.is_empty() {
            return Ok(());
        }
        self.share_bans(crossed, f.ban_time, "flapping").await;
        Err(Deny { reason: ReasonCode::Banned, label: "flapping", disconnect: false })
    }

    /// Failed authentications (bad credentials) counted per address and per username across the
    /// fleet; past `flapping.auth_failure_max_count` both become fleet bans for `ban_time`. Redis
    /// being down leaves only the local counters (nothing to refuse here: the CONNECT already is).
    async fn auth_failure(&self, ip: IpAddr, username: Option<String>) {
        let Some(f) = self.flapping else {
            return;
        };
        let Some(max) = f.auth_failure_max_count else {
            return;
        };
        let mut crossed = Vec::new();
        let key = self.state.key(&format!("flap:authip:{ip}"));
        if let Ok(true) = self.count(key, f.window, max).await {
            crossed.push((BanKind::IpAddress, ip.to_string()));
        }
        if let Some(user) = username {
            let key = self.state.key(&format!("flap:authuser:{}", digest(&user)));
            if let Ok(true) = self.count(key, f.window, max).await {
                crossed.push((BanKind::Username, user));
            }
        }
        self.share_bans(crossed, f.ban_time, "authentication failures").await;
    }

    /// Adds fleet bans (they reach every replica through the shared ban list).
    async fn share_bans(&self, crossed: Vec<(BanKind, String)>, ban_time: Duration, reason: &str) {
        let now = unix_now();
        for (kind, who) in crossed {
            info!(target: "moat::audit", kind = kind.as_str(), who = %escape(&who), reason, "banned across the fleet");
            let ban = Ban {
                kind,
                who,
                reason: reason.to_string(),
                by: "flapping".to_string(),
                created_at: now,
                expires_at: Some(now.saturating_add(ban_time.as_secs().max(1))),
            };
            if let Err(e) = self.bans.add_any(ban).await {
                warn!(error = %e, "could not share a flapping ban");
            }
        }
    }

    async fn take(&self, key: String, cap: u32) -> redis::RedisResult<Option<(String, String)>> {
        let member = format!("{}:{}", self.state.replica, NEXT_SLOT.fetch_add(1, Ordering::Relaxed));
        let mut conn = self.state.conn.clone();
        let lease_ms = LEASE.as_millis() as u64;
        let r: redis::RedisResult<i64> =
            self.claim.key(&key).arg(&member).arg(cap).arg(lease_ms).invoke_async(&mut conn).await;
        self.state.outcome("connections", &r);
        Ok((r? == 1).then_some((key, member)))
    }

    async fn claim_slots(
        &self,
        client_id: String,
        username: Option<String>,
    ) -> Result<Option<Box<dyn SlotGuard>>, Deny> {
        let cfg = &self.state.cfg;
        let mut wanted = Vec::new();
        if let Some(cap) = cfg.max_connections_per_client_id {
            wanted.push((self.state.key(&format!("conn:cid:{}", digest(&client_id))), cap));
        }
        if let (Some(cap), Some(u)) = (cfg.max_connections_per_username, username.as_deref()) {
            wanted.push((self.state.key(&format!("conn:user:{}", digest(u))), cap));
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let mut guard = Slots { state: self.state.clone(), held: self.held.clone(), slots: Vec::new() };
        for (key, cap) in wanted {
            match self.take(key, cap).await {
                Ok(Some(slot)) => {
                    self.held.lock().unwrap_or_else(|e| e.into_inner()).insert(slot.clone());
                    guard.slots.push(slot);
                }
                // Dropping the guard gives back the slots already taken.
                Ok(None) => {
                    return Err(Deny {
                        reason: ReasonCode::QuotaExceeded,
                        label: "fleet_connections",
                        disconnect: false,
                    })
                }
                Err(_) => return self.degraded().map(|()| None),
            }
        }
        Ok(Some(Box::new(guard)))
    }

    async fn renew_leases(&self) {
        let mut tick = tokio::time::interval(LEASE / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let held: Vec<(String, String)> =
                self.held.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
            // Bounded batches keep each script call short; on a cluster one key per call, since
            // the keys of one script must share a slot.
            let batches: Vec<Vec<(String, String)>> = if self.state.is_cluster() {
                let mut by_key: std::collections::BTreeMap<String, Vec<(String, String)>> =
                    std::collections::BTreeMap::new();
                for s in held {
                    by_key.entry(s.0.clone()).or_default().push(s);
                }
                by_key
                    .into_values()
                    .flat_map(|v| v.chunks(500).map(<[_]>::to_vec).collect::<Vec<_>>())
                    .collect()
            } else {
                held.chunks(500).map(<[_]>::to_vec).collect()
            };
            for chunk in batches {
                let mut inv = self.renew.prepare_invoke();
                inv.arg(LEASE.as_millis() as u64);
                for (key, member) in &chunk {
                    inv.key(key).arg(member);
                }
                let mut conn = self.state.conn.clone();
                let r: redis::RedisResult<i64> = inv.invoke_async(&mut conn).await;
                self.state.outcome("connections", &r);
            }
        }
    }
}

/// A session's fleet-wide slots; given back (in the background) when dropped.
struct Slots {
    state: Arc<RedisState>,
    held: Held,
    slots: Vec<(String, String)>,
}

impl SlotGuard for Slots {}

impl Drop for Slots {
    fn drop(&mut self) {
        if self.slots.is_empty() {
            return;
        }
        let slots = std::mem::take(&mut self.slots);
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            for s in &slots {
                held.remove(s);
            }
        }
        let state = self.state.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            // One command per key: on a cluster the keys live on different nodes.
            for (key, member) in &slots {
                let mut conn = state.conn.clone();
                // If this fails the lease lapses on its own.
                let r: redis::RedisResult<()> = tokio::time::timeout(
                    state.cfg.timeout,
                    redis::cmd("ZREM").arg(key).arg(member).query_async(&mut conn),
                )
                .await
                .unwrap_or(Ok(()));
                state.outcome("connections", &r);
            }
        });
    }
}

impl FleetChecks for RedisFleet {
    fn on_connect(&self, ip: IpAddr, client_id: &str) -> BoxFuture<Result<(), Deny>> {
        let this = self.0.clone();
        let client_id = client_id.to_string();
        Box::pin(async move { this.flapping(ip, client_id).await })
    }

    fn on_auth_failure(&self, ip: IpAddr, username: Option<&str>) -> BoxFuture<()> {
        let this = self.0.clone();
        let username = username.map(str::to_string);
        Box::pin(async move { this.auth_failure(ip, username).await })
    }

    fn claim(
        &self,
        client_id: &str,
        username: Option<&str>,
    ) -> BoxFuture<Result<Option<Box<dyn SlotGuard>>, Deny>> {
        let this = self.0.clone();
        let client_id = client_id.to_string();
        let username = username.map(str::to_string);
        Box::pin(async move { this.claim_slots(client_id, username).await })
    }
}

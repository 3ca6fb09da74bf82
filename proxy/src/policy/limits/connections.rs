//! Live connection counting with caps: total, per listener, per source IP.
//!
//! `try_acquire` hands out a guard that gives the slot back on drop, so every exit path of a
//! connection task (error, cancellation, panic unwind) releases it; there is no separate release
//! call to forget.
//!
//! Concurrency: the total is an `AtomicUsize` bumped with a compare-and-swap only while below the
//! cap, so concurrent accepts can never overshoot it. Listener and per-IP counts live in maps
//! behind mutexes, the per-IP map split into shards by IP so accepts from different clients rarely
//! contend. Levels are acquired one at a time (never two locks held) and rolled back if a later
//! level refuses, so there is no lock order to get wrong. The price: an attempt being rolled back
//! holds its total/listener slot for a moment, so right at a cap a concurrent accept may be refused
//! that a serial order would admit; never the reverse. Per-IP entries are removed when their count
//! drops to zero: the map holds only IPs with live connections, bounded by the total.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use thiserror::Error;

/// Number of per-IP shards; a power of two well above the core count keeps contention low.
const IP_SHARDS: usize = 16;

/// Which cap refused a connection (for the log line and the refusal metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum LimitHit {
    #[error("total connection limit reached")]
    Total,
    #[error("listener connection limit reached")]
    Listener,
    #[error("per-IP connection limit reached")]
    PerIp,
}

/// Connection counters and caps shared by all listeners.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: Option<usize>,
    max_per_ip: Option<usize>,
    total: AtomicUsize,
    listeners: Mutex<HashMap<Arc<str>, usize>>,
    ip_shards: [Mutex<HashMap<IpAddr, usize>>; IP_SHARDS],
    shard_hasher: RandomState,
}

/// A live connection's slot; dropping it frees the slot at every level.
#[derive(Debug)]
pub struct ConnectionGuard {
    limits: Arc<ConnectionLimits>,
    listener: Arc<str>,
    ip: IpAddr,
}

impl ConnectionGuard {
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The IP the connection is counted under (IPv4-mapped IPv6 shown as IPv4).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.limits.release_ip(self.ip);
        self.limits.release_listener(&self.listener);
        self.limits.release_total();
    }
}

/// A poisoned lock is recovered: the maps are only changed by single insert/update/remove calls
/// with no panicking code around them, so they are consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ConnectionLimits {
    /// `None` means no cap at that level (the count is still kept for metrics).
    pub fn new(max_total: Option<usize>, max_per_ip: Option<usize>) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            total: AtomicUsize::new(0),
            listeners: Mutex::new(HashMap::new()),
            ip_shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            shard_hasher: RandomState::new(),
        })
    }

    /// Claims a slot at every level, checked total → listener → IP (cheapest and widest first),
    /// or reports the first cap that refused, having claimed nothing.
    pub fn try_acquire(
        self: &Arc<Self>,
        listener: &str,
        listener_max: Option<usize>,
        ip: IpAddr,
    ) -> Result<ConnectionGuard, LimitHit> {
        let ip = ip.to_canonical();
        let cap = self.max_total.unwrap_or(usize::MAX);
        self.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| if n < cap { Some(n + 1) } else { None })
            .map_err(|_| LimitHit::Total)?;

        let listener = match self.acquire_listener(listener, listener_max) {
            Some(listener) => listener,
            None => {
                self.release_total();
                return Err(LimitHit::Listener);
            }
        };

        if !self.acquire_ip(ip) {
            self.release_listener(&listener);
            self.release_total();
            return Err(LimitHit::PerIp);
        }
        Ok(ConnectionGuard { limits: Arc::clone(self), listener, ip })
    }

    /// Live connections, all listeners.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Live connections on one listener.
    pub fn listener_count(&self, listener: &str) -> usize {
        lock(&self.listeners).get(listener).copied().unwrap_or(0)
    }

    /// Live connections from one IP.
    pub fn ip_count(&self, ip: IpAddr) -> usize {
        let ip = ip.to_canonical();
        lock(self.shard(ip)).get(&ip).copied().unwrap_or(0)
    }

    /// Increments the listener's count if below its cap; returns the interned name for the guard.
    fn acquire_listener(&self, listener: &str, listener_max: Option<usize>) -> Option<Arc<str>> {
        let cap = listener_max.unwrap_or(usize::MAX);
        let mut listeners = lock(&self.listeners);
        if let Some((name, count)) = listeners.get_key_value(listener) {
            if *count >= cap {
                return None;
            }
            let (name, next) = (Arc::clone(name), count.saturating_add(1));
            listeners.insert(Arc::clone(&name), next);
            return Some(name);
        }
        if cap == 0 {
            return None;
        }
        // Listener names come from configuration, so this map stays as small as the listener list.
        let name: Arc<str> = Arc::from(listener);
        listeners.insert(Arc::clone(&name), 1);
        Some(name)
    }

    fn acquire_ip(&self, ip: IpAddr) -> bool {
        let cap = self.max_per_ip.unwrap_or(usize::MAX);
        let mut shard = lock(self.shard(ip));
        let count = shard.entry(ip).or_insert(0);
        if *count >= cap {
            if *count == 0 {
                shard.remove(&ip);
            }
            return false;
        }
        *count = count.saturating_add(1);
        true
    }

    fn release_total(&self) {
        // Never below zero, even if a bug released twice: a wrapped counter would lock everyone out.
        let _ = self.total.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    fn release_listener(&self, listener: &str) {
        if let Some(count) = lock(&self.listeners).get_mut(listener) {
            *count = count.saturating_sub(1);
        }
    }

    fn release_ip(&self, ip: IpAddr) {
        let mut shard = lock(self.shard(ip));
        if let Some(count) = shard.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.remove(&ip);
            }
        }
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        // Truncating the hash is fine: it only picks a shard. `% IP_SHARDS` keeps `get` in range.
        let index = (self.shard_hasher.hash_one(ip) as usize) % IP_SHARDS;
        let [first, ..] = &self.ip_shards;
        self.ip_shards.get(index).unwrap_or(first)
    }
}

//! Flapping detection: too many events (connects, disconnects, auth failures) for one key within a
//! window → the caller bans that key for `ban_time`.
//!
//! Semantics follow EMQX `flapping_detect`: a key's window opens at its first event and is fixed
//! (not sliding); the event that brings the count to `max_count` inside the window crosses the
//! threshold, after which the key's record is dropped (the ban takes over; counting restarts if
//! events keep arriving). A fixed window needs two numbers per key instead of `max_count`
//! timestamps, which is what lets the memory bound below be a plain entry count.
//!
//! Beyond EMQX, which only keys by client id (so rotating client ids evades it), keys are also the
//! source IP and auth failures per IP and per username, each kind in its own table.
//!
//! Memory is bounded against an attacker inventing keys: at most `max_keys` entries per kind;
//! entries whose window has passed are dropped; when a table is full, the entry with the oldest
//! window is evicted. String keys (client ids and usernames may be 64 KiB in MQTT) are stored as a
//! 128-bit keyed SipHash fingerprint with per-detector random keys, so an entry has a fixed size
//! and an attacker cannot aim a collision at a victim's key.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Detection parameters (EMQX `max_count`, `window_time`, `ban_time`, plus a memory bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlappingConfig {
    /// Events within `window` that trigger a ban. 0 is treated as 1 (every event bans) so a lower
    /// value is never laxer than a higher one.
    pub max_count: u32,
    pub window: Duration,
    pub ban_time: Duration,
    /// Entries tracked per key kind; 0 is treated as 1.
    pub max_keys: usize,
}

/// What an event is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlapKey<'a> {
    /// Connect/disconnect churn of one client id (the EMQX key).
    ClientId(&'a str),
    /// Connect/disconnect churn from one source IP (catches rotating client ids).
    Ip(IpAddr),
    /// Authentication failures from one source IP (password guessing across usernames).
    AuthFailIp(IpAddr),
    /// Authentication failures for one username (guessing from many IPs).
    AuthFailUser(&'a str),
}

/// The table a key lives in; `len_of` reports per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlapKind {
    ClientId,
    Ip,
    AuthFailIp,
    AuthFailUser,
}

impl FlapKey<'_> {
    pub fn kind(&self) -> FlapKind {
        match self {
            FlapKey::ClientId(_) => FlapKind::ClientId,
            FlapKey::Ip(_) => FlapKind::Ip,
            FlapKey::AuthFailIp(_) => FlapKind::AuthFailIp,
            FlapKey::AuthFailUser(_) => FlapKind::AuthFailUser,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    started_at: Instant,
    count: u32,
    /// Tie-breaker making `(started_at, seq)` unique in the age index.
    seq: u64,
}

/// One kind's entries plus an age index, so expiry and eviction are O(log n) rather than a scan
/// (a scan per event would itself be a CPU amplification under a key-flooding attack).
#[derive(Debug, Default)]
struct Table {
    entries: HashMap<u128, Entry>,
    by_age: BTreeMap<(Instant, u64), u128>,
}

impl Table {
    fn remove(&mut self, fingerprint: u128) {
        if let Some(entry) = self.entries.remove(&fingerprint) {
            self.by_age.remove(&(entry.started_at, entry.seq));
        }
    }

    /// Drops entries whose window has passed; they would be reset by their next event anyway.
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((&(started_at, _), _)) = self.by_age.first_key_value() {
            if now.saturating_duration_since(started_at) < window {
                break;
            }
            if let Some((_, fingerprint)) = self.by_age.pop_first() {
                self.entries.remove(&fingerprint);
            }
        }
    }

    /// Evicts the entry with the oldest window; false when there is nothing to evict.
    fn evict_oldest(&mut self) -> bool {
        match self.by_age.pop_first() {
            Some((_, fingerprint)) => {
                self.entries.remove(&fingerprint);
                true
            }
            None => false,
        }
    }
}

/// Tracks event counts per key. Not internally synchronised: `record` needs `&mut self`, so the
/// proxy wraps it in a `Mutex` (one short, allocation-free critical section per event).
#[derive(Debug)]
pub struct FlappingDetector {
    cfg: FlappingConfig,
    tables: [Table; 4],
    hashers: (RandomState, RandomState),
    next_seq: u64,
}

impl FlappingDetector {
    pub fn new(cfg: FlappingConfig) -> Self {
        let cfg = FlappingConfig { max_count: cfg.max_count.max(1), max_keys: cfg.max_keys.max(1), ..cfg };
        FlappingDetector {
            cfg,
            tables: Default::default(),
            hashers: (RandomState::new(), RandomState::new()),
            next_seq: 0,
        }
    }

    /// Records an event; returns `Some(until)` when this event crosses the threshold (the caller
    /// bans the key until then), else `None`.
    pub fn record(&mut self, key: FlapKey<'_>, now: Instant) -> Option<Instant> {
        let fingerprint = self.fingerprint(key);
        let FlappingConfig { max_count, window, ban_time, max_keys } = self.cfg;
        let seq = self.next_seq;
        let table = self.table_mut(key.kind());
        table.expire(now, window);

        let current = table
            .entries
            .get_mut(&fingerprint)
            .filter(|entry| now.saturating_duration_since(entry.started_at) < window);
        let count = if let Some(entry) = current {
            entry.count = entry.count.saturating_add(1);
            entry.count
        } else {
            // First event, or window over (only reachable with out-of-order `now`): start anew.
            table.remove(fingerprint);
            while table.entries.len() >= max_keys && table.evict_oldest() {}
            table.entries.insert(fingerprint, Entry { started_at: now, count: 1, seq });
            table.by_age.insert((now, seq), fingerprint);
            self.next_seq = seq.wrapping_add(1);
            1
        };

        if count >= max_count {
            self.table_mut(key.kind()).remove(fingerprint);
            Some(saturating_add(now, ban_time))
        } else {
            None
        }
    }

    /// Drops every entry whose window has passed, in all tables. `record` already expires the
    /// table it touches; call this periodically so idle tables shrink too.
    pub fn purge(&mut self, now: Instant) {
        let window = self.cfg.window;
        for table in &mut self.tables {
            table.expire(now, window);
        }
    }

    /// Entries tracked, all kinds together.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|table| table.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries tracked for one kind (each kind is bounded by `max_keys` on its own).
    pub fn len_of(&self, kind: FlapKind) -> usize {
        self.table(kind).entries.len()
    }

    fn table(&self, kind: FlapKind) -> &Table {
        let [client_id, ip, auth_ip, auth_user] = &self.tables;
        match kind {
            FlapKind::ClientId => client_id,
            FlapKind::Ip => ip,
            FlapKind::AuthFailIp => auth_ip,
            FlapKind::AuthFailUser => auth_user,
        }
    }

    fn table_mut(&mut self, kind: FlapKind) -> &mut Table {
        let [client_id, ip, auth_ip, auth_user] = &mut self.tables;
        match kind {
            FlapKind::ClientId => client_id,
            FlapKind::Ip => ip,
            FlapKind::AuthFailIp => auth_ip,
            FlapKind::AuthFailUser => auth_user,
        }
    }

    /// IPs map losslessly (IPv4 and IPv4-mapped IPv6 unified, so one client is one key); strings
    /// are fingerprinted as described in the module docs.
    fn fingerprint(&self, key: FlapKey<'_>) -> u128 {
        match key {
            FlapKey::Ip(ip) | FlapKey::AuthFailIp(ip) => ip_bits(ip),
            FlapKey::ClientId(text) | FlapKey::AuthFailUser(text) => {
                let high = u128::from(self.hashers.0.hash_one(text));
                let low = u128::from(self.hashers.1.hash_one(text));
                (high << 64) | low
            }
        }
    }
}

fn ip_bits(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `now + by`, clamped instead of panicking when the platform's `Instant` cannot represent it
/// (a configured ban of `u64::MAX` seconds): halves until it fits, ending at `now`.
fn saturating_add(now: Instant, by: Duration) -> Instant {
    let mut by = by;
    loop {
        if let Some(until) = now.checked_add(by) {
            return until;
        }
        by /= 2;
    }
}

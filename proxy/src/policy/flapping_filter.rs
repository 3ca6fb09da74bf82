//! Flapping detection as a filter (EMQX semantics): a client id that connects `max_count` times
//! within `window` is banned for `ban_time`; so is a source address past `ip_max_count`, which
//! catches a client that rotates its id to escape the per-id counter (trap 17). Bans made here are
//! temporary and in memory; the cheap checks run before TLS (address) and before authentication
//! (client id). With `auth_failure_max_count`, failed authentications are counted per source
//! address and per claimed username too, so password guessing is cut off whatever client id or
//! address rotation the guesser uses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::info;

use super::limits::{FlapKey, FlappingConfig, FlappingDetector};
use super::{Filter, PeerInfo, Verdict};
use crate::codec::{Connect, ReasonCode};
use crate::metrics::Metrics;
use crate::util::escape;

/// Settings from the main config.
#[derive(Clone, Copy, Debug)]
pub struct FlappingSettings {
    pub max_count: u32,
    pub window: Duration,
    pub ban_time: Duration,
    /// Connects per source address within `window`; `None` leaves addresses uncounted.
    pub ip_max_count: Option<u32>,
    /// Failed authentications per source address and per username within `window`.
    pub auth_failure_max_count: Option<u32>,
}

/// Most keys tracked (and temporary bans held) per kind: memory stays bounded under a flood.
const MAX_KEYS: usize = 100_000;

#[derive(Hash, PartialEq, Eq)]
enum Banned {
    ClientId(Box<str>),
    Ip(IpAddr),
    Username(Box<str>),
}

struct State {
    by_id: FlappingDetector,
    by_ip: Option<FlappingDetector>,
    by_auth_failure: Option<FlappingDetector>,
    banned: HashMap<Banned, Instant>,
}

pub struct FlappingFilter {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
}

impl FlappingFilter {
    pub fn new(s: FlappingSettings, metrics: Arc<Metrics>) -> Self {
        let cfg = |max_count| FlappingConfig {
            max_count,
            window: s.window,
            ban_time: s.ban_time,
            max_keys: MAX_KEYS,
        };
        let state = State {
            by_id: FlappingDetector::new(cfg(s.max_count)),
            by_ip: s.ip_max_count.map(|n| FlappingDetector::new(cfg(n))),
            by_auth_failure: s.auth_failure_max_count.map(|n| FlappingDetector::new(cfg(n))),
            banned: HashMap::new(),
        };
        Self { state: Mutex::new(state), metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that matters
        // more than refusing service: keep going with what is there.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counted here for `accept` only: the connect phase counts its own denials.
    fn banned_verdict(&self, point: &'static str) -> Verdict {
        if point == "accept" {
            self.metrics.denied(point, "flapping");
        }
        Verdict::deny(ReasonCode::Banned, "flapping")
    }
}

impl State {
    fn is_banned(&mut self, key: &Banned, now: Instant) -> bool {
        match self.banned.get(key) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.banned.remove(key);
                false
            }
            None => false,
        }
    }

    fn ban(&mut self, key: Banned, until: Instant, now: Instant) {
        if self.banned.len() >= MAX_KEYS {
            self.banned.retain(|_, u| *u > now);
        }
        if self.banned.len() < MAX_KEYS {
            self.banned.insert(key, until);
        }
    }
}

impl Filter for FlappingFilter {
    fn name(&self) -> &'static str {
        "flapping"
    }

    fn on_accept(&self, peer: &PeerInfo) -> Verdict {
        let ip = peer.peer.ip().to_canonical();
        if self.lock().is_banned(&Banned::Ip(ip), Instant::now()) {
            return self.banned_verdict("accept");
        }
        Verdict::Allow
    }

    fn on_connect(&self, peer: &PeerInfo, connect: &Connect<'_>) -> Verdict {
        let now = Instant::now();
        let ip = peer.peer.ip().to_canonical();
        let mut state = self.lock();
        let id_key = Banned::ClientId(connect.client_id.into());
        let user_banned = connect.username.is_some_and(|u| state.is_banned(&Banned::Username(u.into()), now));
        if user_banned || state.is_banned(&id_key, now) || state.is_banned(&Banned::Ip(ip), now) {
            drop(state);
            return self.banned_verdict("connect");
        }
        let mut verdict = Verdict::Allow;
        // An empty client id is assigned later; only the address counts for it.
        if !connect.client_id.is_empty() {
            if let Some(until) = state.by_id.record(FlapKey::ClientId(connect.client_id), now) {
                info!(target: "moat::audit", client_id = %escape(connect.client_id), "flapping client id banned");
                state.ban(id_key, until, now);
                verdict = Verdict::deny(ReasonCode::Banned, "flapping");
            }
        }
        if let Some(by_ip) = state.by_ip.as_mut() {
            if let Some(until) = by_ip.record(FlapKey::Ip(ip), now) {
                info!(target: "moat::audit", peer = %ip, "flapping address banned");
                state.ban(Banned::Ip(ip), until, now);
                verdict = Verdict::deny(ReasonCode::Banned, "flapping");
            }
        }
        verdict
    }

    fn on_auth_failure(&self, peer: &PeerInfo, connect: &Connect<'_>) {
        let now = Instant::now();
        let ip = peer.peer.ip().to_canonical();
        let mut state = self.lock();
        let Some(detector) = state.by_auth_failure.as_mut() else {
            return;
        };
        let by_ip = detector.record(FlapKey::AuthFailIp(ip), now);
        let by_user =
            connect.username.and_then(|u| detector.record(FlapKey::AuthFailUser(u), now).map(|t| (u, t)));
        if let Some(until) = by_ip {
            info!(target: "moat::audit", peer = %ip, "address banned after repeated authentication failures");
            state.ban(Banned::Ip(ip), until, now);
        }
        if let Some((user, until)) = by_user {
            info!(target: "moat::audit", username = %escape(user), "username banned after repeated authentication failures");
            state.ban(Banned::Username(user.into()), until, now);
        }
    }
}

//! A bounded answer cache. Keys are HMAC-SHA256 over every request field under a random
//! per-process key: equal inputs (password included) hit, and the cache holds no password nor a
//! plain hash an attacker could brute-force offline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::wire::{Answer, Request};

pub type CacheKey = [u8; 32];

pub struct Cache {
    ttl: Duration,
    max: usize,
    secret: [u8; 32],
    entries: Mutex<HashMap<CacheKey, (Instant, Answer)>>,
}

impl Cache {
    pub fn new(ttl: Duration, max: usize) -> Self {
        let mut secret = [0u8; 32];
        if getrandom::getrandom(&mut secret).is_err() {
            // Without randomness the keys are still unique per input; only the HMAC key is fixed.
            secret = [0x5a; 32];
        }
        Self { ttl, max: max.max(1), secret, entries: Mutex::new(HashMap::new()) }
    }

    pub fn key(&self, r: &Request<'_>) -> CacheKey {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return [0u8; 32];
        };
        let mut field = |tag: u8, v: Option<&[u8]>| {
            // Tag, presence and length prefix: no two different inputs share an encoding.
            mac.update(&[tag, u8::from(v.is_some())]);
            let v = v.unwrap_or_default();
            mac.update(&(v.len() as u64).to_be_bytes());
            mac.update(v);
        };
        field(1, Some(r.clientid.as_bytes()));
        field(2, r.username.map(str::as_bytes));
        field(3, r.password.map(str::as_bytes));
        field(4, r.peerhost.as_deref().map(str::as_bytes));
        field(5, r.listener.map(str::as_bytes));
        field(6, r.cert_common_name.map(str::as_bytes));
        field(7, r.cert_fingerprint.as_deref().map(str::as_bytes));
        mac.finalize().into_bytes().into()
    }

    pub fn get(&self, key: &CacheKey) -> Option<Answer> {
        let map = self.entries.lock().ok()?;
        map.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, a)| a.clone())
    }

    pub fn put(&self, key: CacheKey, answer: Answer) {
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if map.len() >= self.max {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.max {
                // Still full of live entries: start over rather than grow (bounded memory).
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), answer));
    }
}

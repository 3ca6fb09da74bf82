//! A JWKS fetched over HTTP(S): refreshed in the background every `refresh`, the last good key
//! set kept when the endpoint fails, an early refresh when a token names an unknown `kid` (at most
//! one fetch per [`MIN_GAP`], so random kids cannot hammer the endpoint). A CONNECT never waits
//! for the network longer than `wait`; with no keys at all it is refused (fail closed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use reqwest::Url;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{info, warn};

use super::keys::{parse_jwks, KeySet, MAX_JWKS_BYTES};
use crate::policy::authn::http_client;

/// Shortest time between two fetches.
pub const MIN_GAP: Duration = Duration::from_secs(2);
/// Retry interval after a failed fetch (when shorter than `refresh`).
const RETRY: Duration = Duration::from_secs(10);

/// `moat_jwks_refresh_failures_total`. Process-wide because authenticators are built from the
/// config before the metrics registry exists; [`crate::metrics::Metrics`] registers it.
pub static REFRESH_FAILURES: LazyLock<Counter> = LazyLock::new(Counter::default);

/// What the refresher has: the last good keys and how many attempts it has made.
#[derive(Clone, Default)]
struct Snapshot {
    keys: Option<Arc<KeySet>>,
    attempts: u64,
}

pub struct RemoteJwks {
    url: Url,
    client: reqwest::Client,
    refresh: Duration,
    wait: Duration,
    state: watch::Sender<Snapshot>,
    wake: Arc<Notify>,
    started: AtomicBool,
}

impl RemoteJwks {
    pub fn new(url: Url, refresh: Duration, wait: Duration) -> Result<Arc<RemoteJwks>, String> {
        let client = http_client::client(wait)?;
        let (state, _) = watch::channel(Snapshot::default());
        Ok(Arc::new(RemoteJwks {
            url,
            client,
            refresh,
            wait,
            state,
            wake: Arc::new(Notify::new()),
            started: AtomicBool::new(false),
        }))
    }

    /// Starts the background refresher once (needs a Tokio runtime; a no-op outside one, as in
    /// `moat check`). The task ends when the authenticator is dropped.
    pub fn start(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err() || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(refresher(Arc::downgrade(self), self.wake.clone()));
    }

    /// When a CONNECT that starts now must stop waiting for the network.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.wait
    }

    /// The current keys, waiting until `deadline` for the first successful fetch.
    pub async fn keys(self: &Arc<Self>, deadline: Instant) -> Option<Arc<KeySet>> {
        self.start();
        let mut rx = self.state.subscribe();
        let has_keys = |s: &Snapshot| s.keys.is_some();
        if let Some(k) = rx.borrow().keys.clone() {
            return Some(k);
        }
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(has_keys)).await;
        let keys = rx.borrow().keys.clone();
        keys
    }

    /// Asks for an early refresh (a token named an unknown kid) and waits until `deadline` for
    /// the next attempt to finish; returns the keys then.
    pub async fn refreshed(self: &Arc<Self>, deadline: Instant) -> Option<Arc<KeySet>> {
        let mut rx = self.state.subscribe();
        let seen = rx.borrow().attempts;
        self.wake.notify_one();
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|s| s.attempts > seen)).await;
        let keys = rx.borrow().keys.clone();
        keys
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let resp = self.client.get(self.url.clone()).send().await.map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP status {}", resp.status().as_u16()));
        }
        let body = http_client::read_body(resp, MAX_JWKS_BYTES).await?;
        parse_jwks(&body)
    }
}

async fn refresher(me: Weak<RemoteJwks>, wake: Arc<Notify>) {
    let mut last_attempt: Option<Instant> = None;
    loop {
        if let Some(t) = last_attempt {
            tokio::time::sleep_until(t + MIN_GAP).await;
        }
        let Some(jwks) = me.upgrade() else {
            return;
        };
        last_attempt = Some(Instant::now());
        let outcome = jwks.fetch().await;
        let ok = outcome.is_ok();
        match outcome {
            Ok(keys) => {
                info!(url = %jwks.url, keys = keys.keys.len(), "JWKS refreshed");
                jwks.state.send_modify(|s| {
                    s.keys = Some(Arc::new(keys));
                    s.attempts = s.attempts.wrapping_add(1);
                });
            }
            Err(error) => {
                REFRESH_FAILURES.inc();
                let have = jwks.state.borrow().keys.is_some();
                warn!(url = %jwks.url, %error, keeping_last_good = have, "JWKS refresh failed");
                jwks.state.send_modify(|s| s.attempts = s.attempts.wrapping_add(1));
            }
        }
        let next = if ok { jwks.refresh } else { jwks.refresh.min(RETRY) };
        drop(jwks);
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = wake.notified() => {}
        }
    }
}

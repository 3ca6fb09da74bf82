//! OCSP stapling of a listener's server certificate.
//!
//! A [`Stapler`] per listener holds the last good response for the certificate in force and a
//! fetch loop ([`run`]) keeps it fresh: it refetches at half the response's validity (bounded by
//! `min_interval` and `refresh`), retries every `min_interval` on failure while the last good
//! staple stays in use, and refetches at once when a reload brings a new certificate. Only a
//! response that verifies and says `good` is ever stapled; a verified `revoked` answer drops the
//! staple at once. The [`StaplingResolver`] puts the staple into each handshake and leaves out
//! one whose nextUpdate has passed or that is for another certificate.
//!
//! `must_staple: true`: with no valid staple the resolver returns no certificate, so handshakes
//! are refused (fail closed) until a good response is fetched, and `/readyz` says not ready.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::request::CertId;
use super::verify::{verify, CertStatus};
use super::{aia_ocsp_url, post, OcspError};
use crate::config::OcspStapling;
use crate::metrics::Metrics;
use crate::transport::tls::material::{unix_now, Material};

/// How often the age gauge is refreshed (and an expired staple dropped) between fetches.
const GAUGE_TICK: Duration = Duration::from_secs(5);

/// A verified `good` response for one certificate.
struct Staple {
    leaf: CertificateDer<'static>,
    response: Vec<u8>,
    this_update: i64,
    /// nextUpdate, or (no nextUpdate given) fetch time + `refresh`.
    expires: i64,
}

pub struct Stapler {
    listener: Arc<str>,
    cfg: OcspStapling,
    current: ArcSwapOption<Staple>,
    /// Leaf and issuer of the certificate in force (set by every config build).
    target: Mutex<Option<(CertificateDer<'static>, CertificateDer<'static>)>>,
    cert_changed: Notify,
    metrics: Arc<Metrics>,
}

impl Stapler {
    pub fn new(listener: &str, cfg: OcspStapling, metrics: Arc<Metrics>) -> Arc<Stapler> {
        Arc::new(Stapler {
            listener: listener.into(),
            cfg,
            current: ArcSwapOption::empty(),
            target: Mutex::new(None),
            cert_changed: Notify::new(),
            metrics,
        })
    }

    pub fn must_staple(&self) -> bool {
        self.cfg.must_staple
    }

    /// The valid staple for `leaf` now, if any.
    fn staple_for(&self, leaf: &CertificateDer<'_>) -> Option<Vec<u8>> {
        let s = self.current.load();
        let s = s.as_ref()?;
        (s.leaf == *leaf && unix_now() < s.expires).then(|| s.response.clone())
    }

    /// Whether a valid staple for the certificate in force is held (readiness).
    pub fn has_valid_staple(&self) -> bool {
        let leaf = self.target.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|t| t.0.clone());
        leaf.is_some_and(|l| self.staple_for(&l).is_some())
    }

    /// Replaces `config`'s certificate resolver by one that staples, for the material it was
    /// built from, and tells the fetch loop when the certificate changed.
    pub fn install(
        self: &Arc<Self>,
        config: &mut Arc<ServerConfig>,
        m: &Material,
    ) -> Result<(), rustls::Error> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let plain = Arc::new(CertifiedKey::from_der(m.cert_chain.clone(), m.key.clone_key(), &provider)?);
        let (Some(leaf), Some(issuer)) = (m.cert_chain.first(), m.cert_chain.get(1)) else {
            return Err(rustls::Error::General(
                "ocsp_stapling needs the issuer certificate after the leaf".into(),
            ));
        };
        let changed = {
            let mut t = self.target.lock().unwrap_or_else(|p| p.into_inner());
            let changed = t.as_ref().is_none_or(|(l, _)| l != leaf);
            *t = Some((leaf.clone(), issuer.clone()));
            changed
        };
        if changed {
            self.cert_changed.notify_one();
        }
        Arc::make_mut(config).cert_resolver = Arc::new(StaplingResolver { plain, stapler: self.clone() });
        Ok(())
    }

    fn target(&self) -> Option<(CertificateDer<'static>, CertificateDer<'static>)> {
        self.target.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One fetch for the certificate in force; returns how long to wait before the next one.
    async fn refresh(&self) -> Duration {
        let Some((leaf, issuer)) = self.target() else { return self.cfg.min_interval };
        match self.fetch(&leaf, &issuer).await {
            Ok(staple) => {
                let now = unix_now();
                let half_life = u64::try_from((staple.expires - now) / 2).unwrap_or(0);
                let wait = Duration::from_secs(half_life).clamp(self.cfg.min_interval, self.cfg.refresh);
                info!(listener = %self.listener, this_update = staple.this_update, next_update = staple.expires, "OCSP staple refreshed");
                self.metrics.tls.ocsp_staple_next_update(&self.listener, Some(staple.expires));
                self.current.store(Some(Arc::new(staple)));
                wait
            }
            Err(e) => {
                self.metrics.tls.ocsp_fetch_failed(&self.listener, e.reason());
                if matches!(e, OcspError::Revoked) {
                    // The responder says so, signed: the old staple must not be served any more.
                    self.current.store(None);
                }
                let kept = self.staple_for(&leaf).is_some();
                warn!(target: "moat::audit", listener = %self.listener, error = %e, kept_last_good = kept, "OCSP staple fetch failed");
                self.cfg.min_interval
            }
        }
    }

    async fn fetch(
        &self,
        leaf: &CertificateDer<'static>,
        issuer: &CertificateDer<'_>,
    ) -> Result<Staple, OcspError> {
        let url = self.cfg.responder_url.clone().or_else(|| aia_ocsp_url(leaf)).ok_or(OcspError::Url)?;
        let id = CertId::new(leaf, issuer)?;
        let body = post(&url, id.request(), self.cfg.timeout).await?;
        let now = unix_now();
        let v = verify(&body, &id, issuer, now)?;
        match v.status {
            CertStatus::Good => {}
            CertStatus::Revoked => return Err(OcspError::Revoked),
            CertStatus::Unknown => return Err(OcspError::Unknown),
        }
        let fallback = now.saturating_add(i64::try_from(self.cfg.refresh.as_secs()).unwrap_or(i64::MAX));
        Ok(Staple {
            leaf: leaf.clone(),
            response: body,
            this_update: v.this_update,
            expires: v.next_update.unwrap_or(fallback),
        })
    }

    /// Publishes the staple's age; drops (and un-publishes) one that expired.
    fn update_gauges(&self) {
        let s = self.current.load();
        match s.as_ref() {
            Some(s) if unix_now() >= s.expires => {
                warn!(target: "moat::audit", listener = %self.listener, "OCSP staple expired (nextUpdate passed), no longer stapled");
                self.current.store(None);
                self.metrics.tls.ocsp_staple_age(&self.listener, None);
                self.metrics.tls.ocsp_staple_next_update(&self.listener, None);
            }
            Some(s) => self.metrics.tls.ocsp_staple_age(&self.listener, Some(unix_now() - s.this_update)),
            None => {
                self.metrics.tls.ocsp_staple_age(&self.listener, None);
                self.metrics.tls.ocsp_staple_next_update(&self.listener, None);
            }
        }
    }
}

/// Fetches now, then as [`Stapler::refresh`] says, and at once after a certificate change.
pub async fn run(stapler: Arc<Stapler>, stop: CancellationToken) {
    loop {
        let wait = stapler.refresh().await;
        stapler.update_gauges();
        let until = tokio::time::Instant::now() + wait;
        loop {
            let tick = until.saturating_duration_since(tokio::time::Instant::now()).min(GAUGE_TICK);
            if tick.is_zero() {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = stapler.cert_changed.notified() => {
                    debug!(listener = %stapler.listener, "certificate changed, fetching its OCSP staple");
                    break;
                }
                _ = tokio::time::sleep(tick) => stapler.update_gauges(),
            }
        }
    }
}

/// The listener's certificate with the current staple (if valid) attached.
pub struct StaplingResolver {
    plain: Arc<CertifiedKey>,
    stapler: Arc<Stapler>,
}

impl std::fmt::Debug for StaplingResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaplingResolver").field("listener", &self.stapler.listener).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for StaplingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let leaf = self.plain.cert.first()?;
        match self.stapler.staple_for(leaf) {
            Some(ocsp) => Some(Arc::new(CertifiedKey {
                cert: self.plain.cert.clone(),
                key: self.plain.key.clone(),
                ocsp: Some(ocsp),
            })),
            None if self.stapler.cfg.must_staple => {
                debug!(listener = %self.stapler.listener, "no valid OCSP staple and must_staple: handshake refused");
                None
            }
            None => Some(self.plain.clone()),
        }
    }
}

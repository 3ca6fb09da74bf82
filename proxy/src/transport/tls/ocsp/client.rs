//! OCSP check of a client certificate after the TLS handshake, before any MQTT byte is read
//! (so nothing reaches the broker first).
//!
//! The responder is the leaf's AIA OCSP URL (or the configured `responder_url`). Unlike CRL
//! distribution points, a URL from a client certificate is acceptable here: the chain has just
//! been verified, so the URL was put there by a CA we trust. Answers (good or revoked) are cached
//! by CertID (issuer hashes + serial) for `cache_ttl`, never past the response's nextUpdate; a
//! full cache evicts its oldest entry. Failures are not cached.
//!
//! Revoked: the TLS connection is closed before MQTT starts (no CONNACK: the client learns
//! nothing it could not learn from its CA). Responder unreachable, timed out, or its answer
//! unusable (bad signature, stale, `unknown`): `soft_fail` admits the client (logged, counted),
//! `hard_fail` closes the connection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use tracing::{info, warn};

use super::request::CertId;
use super::verify::{verify, CertStatus};
use super::{aia_ocsp_url, post, OcspError};
use crate::config::ClientOcsp;
use crate::metrics::Metrics;
use crate::transport::tls::material::unix_now;

pub struct ClientChecker {
    listener: Arc<str>,
    cfg: ClientOcsp,
    cache: Mutex<Cache>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Cache {
    map: HashMap<CertId, (bool, Instant)>,
    /// Insertion order, for eviction when full.
    order: VecDeque<CertId>,
}

impl Cache {
    /// `Some(revoked)` for a live entry.
    fn get(&mut self, id: &CertId) -> Option<bool> {
        match self.map.get(id) {
            Some(&(revoked, until)) if Instant::now() < until => Some(revoked),
            Some(_) => {
                self.map.remove(id);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, id: CertId, revoked: bool, ttl: Duration, cap: usize) {
        let until = Instant::now() + ttl;
        if let Some(e) = self.map.get_mut(&id) {
            *e = (revoked, until);
            return;
        }
        while self.map.len() >= cap {
            let Some(old) = self.order.pop_front() else { break };
            self.map.remove(&old);
        }
        // Ids removed on expiry may still sit in `order`: bound it too.
        while self.order.len() >= cap.saturating_mul(2) {
            self.order.pop_front();
        }
        self.order.push_back(id.clone());
        self.map.insert(id, (revoked, until));
    }
}

/// What the check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Good,
    Revoked,
    /// No usable answer; admitted or refused by the mode.
    Failed,
}

impl ClientChecker {
    pub fn new(listener: &str, cfg: ClientOcsp, metrics: Arc<Metrics>) -> Arc<ClientChecker> {
        Arc::new(ClientChecker {
            listener: listener.into(),
            cfg,
            cache: Mutex::new(Cache::default()),
            metrics,
        })
    }

    /// Checks the verified client `chain` (leaf first); `cas` is the listener's CA bundle (the
    /// issuer is searched in the chain, then there). `true`: admit.
    pub async fn admit(&self, chain: &[CertificateDer<'static>], cas: &[CertificateDer<'static>]) -> bool {
        let Some(leaf) = chain.first() else { return true };
        let (outcome, cached) = self.check(leaf, chain, cas).await;
        let result = match outcome {
            Ok(Outcome::Good) => "good",
            Ok(Outcome::Revoked) => "revoked",
            Ok(Outcome::Failed) | Err(_) => "error",
        };
        self.metrics.tls.client_ocsp_check(&self.listener, result, cached);
        match outcome {
            Ok(Outcome::Good) => true,
            Ok(Outcome::Revoked) => {
                info!(target: "moat::audit", listener = %self.listener, "client certificate revoked (OCSP): connection closed");
                false
            }
            Ok(Outcome::Failed) | Err(_) => {
                let admit = !self.cfg.hard_fail;
                let error = outcome.err().map_or_else(String::new, |e| e.to_string());
                warn!(target: "moat::audit", listener = %self.listener, %error, admitted = admit, mode = if admit { "soft_fail" } else { "hard_fail" }, "client certificate OCSP check failed");
                admit
            }
        }
    }

    async fn check(
        &self,
        leaf: &CertificateDer<'static>,
        chain: &[CertificateDer<'static>],
        cas: &[CertificateDer<'static>],
    ) -> (Result<Outcome, OcspError>, bool) {
        let Some(issuer) = find_issuer(leaf, chain.iter().skip(1).chain(cas)) else {
            return (Err(OcspError::Certificate), false);
        };
        let id = match CertId::new(leaf, issuer) {
            Ok(id) => id,
            Err(e) => return (Err(e), false),
        };
        if let Some(revoked) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return (Ok(if revoked { Outcome::Revoked } else { Outcome::Good }), true);
        }
        let url = match self.cfg.responder_url.clone().or_else(|| aia_ocsp_url(leaf)) {
            Some(u) => u,
            None => return (Err(OcspError::Url), false),
        };
        let result = async {
            let body = post(&url, id.request(), self.cfg.timeout).await?;
            verify(&body, &id, issuer, unix_now())
        }
        .await;
        let v = match result {
            Ok(v) => v,
            Err(e) => return (Err(e), false),
        };
        let revoked = match v.status {
            CertStatus::Good => false,
            CertStatus::Revoked => true,
            CertStatus::Unknown => return (Err(OcspError::Unknown), false),
        };
        let ttl = match v.next_update {
            Some(n) => {
                self.cfg.cache_ttl.min(Duration::from_secs(u64::try_from(n - unix_now()).unwrap_or(0)))
            }
            None => self.cfg.cache_ttl,
        };
        if !ttl.is_zero() {
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).put(id, revoked, ttl, self.cfg.cache_size);
        }
        (Ok(if revoked { Outcome::Revoked } else { Outcome::Good }), false)
    }
}

/// The certificate among `candidates` that issued `leaf` (by name and signature).
fn find_issuer<'a>(
    leaf: &CertificateDer<'_>,
    candidates: impl Iterator<Item = &'a CertificateDer<'static>>,
) -> Option<&'a CertificateDer<'static>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    for c in candidates {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(c.as_ref()) else { continue };
        if ca.subject().as_raw() == parsed.issuer().as_raw()
            && parsed.verify_signature(Some(ca.public_key())).is_ok()
        {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> CertId {
        CertId { issuer_name_hash: [0; 20], issuer_key_hash: [0; 20], serial: vec![n] }
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let mut c = Cache::default();
        for n in 0..10 {
            c.put(id(n), false, Duration::from_secs(60), 4);
        }
        assert_eq!(c.map.len(), 4);
        assert_eq!(c.get(&id(9)), Some(false));
        assert_eq!(c.get(&id(0)), None, "oldest evicted");
        c.put(id(20), true, Duration::ZERO, 4);
        assert_eq!(c.get(&id(20)), None, "expired entry served");
        assert!(c.order.len() <= 8);
    }
}

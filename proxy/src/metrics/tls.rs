//! TLS metrics: reload results, certificate expiry, CRL freshness. Labels are the listener name
//! (from the config) and fixed strings.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::ListenerLabels;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub listener: String,
    /// `success`, `failure` (old material kept) or `unchanged`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertKindLabels {
    pub listener: String,
    /// `server` (the leaf served) or `ca` (earliest-expiring certificate of the client CA bundle).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    pub listener: String,
    /// A fixed set, see `transport::tls::failure_reason`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientOcspLabels {
    pub listener: String,
    /// `good`, `revoked` or `error` (no usable answer; the mode decided).
    pub result: &'static str,
    /// `hit` (answered from the cache) or `miss` (asked the responder).
    pub cache: &'static str,
}

pub struct TlsMetrics {
    reloads: Family<ReloadLabels, Counter>,
    handshake_failures: Family<HandshakeLabels, Counter>,
    cert_expiry: Family<CertKindLabels, Gauge>,
    crl_next_update: Family<ListenerLabels, Gauge>,
    crl_this_update: Family<ListenerLabels, Gauge>,
    resumed_rejected: Family<ListenerLabels, Counter>,
    crl_fetches: Family<ReloadLabels, Counter>,
    ocsp_staple_age: Family<ListenerLabels, Gauge>,
    ocsp_staple_next_update: Family<ListenerLabels, Gauge>,
    ocsp_fetch_failures: Family<HandshakeLabels, Counter>,
    client_ocsp_checks: Family<ClientOcspLabels, Counter>,
}

/// What one listener's current material says, for the gauges.
#[derive(Clone, Copy, Debug, Default)]
pub struct MaterialFacts {
    pub server_not_after: Option<i64>,
    pub ca_not_after: Option<i64>,
    /// Oldest thisUpdate and soonest nextUpdate over the listener's CRLs.
    pub crl_this_update: Option<i64>,
    pub crl_next_update: Option<i64>,
}

impl TlsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register("tls_reloads", "TLS material reloads by listener and result", reloads.clone());
        let cert_expiry = Family::<CertKindLabels, Gauge>::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "notAfter of the served certificate (kind=server) and of the earliest-expiring client CA (kind=ca)",
            cert_expiry.clone(),
        );
        let crl_next_update = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "tls_crl_next_update_timestamp_seconds",
            "Soonest nextUpdate over the listener's CRLs",
            crl_next_update.clone(),
        );
        let crl_this_update = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "tls_crl_this_update_timestamp_seconds",
            "Oldest thisUpdate over the listener's CRLs (CRL age = time() - this)",
            crl_this_update.clone(),
        );
        let resumed_rejected = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "tls_resumed_sessions_rejected",
            "Resumed TLS sessions closed because the restored client chain no longer verifies",
            resumed_rejected.clone(),
        );
        let crl_fetches = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "tls_crl_fetches",
            "CRL downloads from distribution points by result (`failure`: last good copy kept)",
            crl_fetches.clone(),
        );
        let handshake_failures = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed, by listener and reason",
            handshake_failures.clone(),
        );
        let ocsp_staple_age = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "tls_ocsp_staple_age_seconds",
            "Age (now - thisUpdate) of the OCSP response stapled to the server certificate",
            ocsp_staple_age.clone(),
        );
        let ocsp_staple_next_update = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "tls_ocsp_staple_next_update_timestamp_seconds",
            "nextUpdate of the stapled OCSP response (absent: nothing stapled)",
            ocsp_staple_next_update.clone(),
        );
        let ocsp_fetch_failures = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_ocsp_fetch_failures",
            "Failed OCSP staple fetches by reason (the last good staple is kept until its nextUpdate)",
            ocsp_fetch_failures.clone(),
        );
        let client_ocsp_checks = Family::<ClientOcspLabels, Counter>::default();
        registry.register(
            "tls_client_ocsp_checks",
            "Client certificate OCSP checks by result and cache use",
            client_ocsp_checks.clone(),
        );
        Self {
            ocsp_staple_age,
            ocsp_staple_next_update,
            ocsp_fetch_failures,
            client_ocsp_checks,
            reloads,
            handshake_failures,
            cert_expiry,
            crl_next_update,
            crl_this_update,
            resumed_rejected,
            crl_fetches,
        }
    }

    pub fn handshake_failed(&self, listener: &str, reason: &'static str) {
        self.handshake_failures
            .get_or_create(&HandshakeLabels { listener: listener.to_string(), reason })
            .inc();
    }

    pub fn reload(&self, listener: &str, result: &'static str) {
        self.reloads.get_or_create(&ReloadLabels { listener: listener.to_string(), result }).inc();
    }

    pub fn crl_fetch(&self, listener: &str, result: &'static str) {
        self.crl_fetches.get_or_create(&ReloadLabels { listener: listener.to_string(), result }).inc();
    }

    /// `None` removes the gauge (nothing stapled).
    pub fn ocsp_staple_age(&self, listener: &str, age: Option<i64>) {
        set_or_remove(&self.ocsp_staple_age, listener, age);
    }

    pub fn ocsp_staple_next_update(&self, listener: &str, at: Option<i64>) {
        set_or_remove(&self.ocsp_staple_next_update, listener, at);
    }

    pub fn ocsp_fetch_failed(&self, listener: &str, reason: &'static str) {
        self.ocsp_fetch_failures
            .get_or_create(&HandshakeLabels { listener: listener.to_string(), reason })
            .inc();
    }

    pub fn client_ocsp_check(&self, listener: &str, result: &'static str, cached: bool) {
        let cache = if cached { "hit" } else { "miss" };
        self.client_ocsp_checks
            .get_or_create(&ClientOcspLabels { listener: listener.to_string(), result, cache })
            .inc();
    }

    pub fn resumed_rejected(&self, listener: &str) {
        self.resumed_rejected.get_or_create(&ListenerLabels { listener: listener.to_string() }).inc();
    }

    /// Publishes the facts of the material now in force.
    pub fn set_material(&self, listener: &str, facts: MaterialFacts) {
        let l = || ListenerLabels { listener: listener.to_string() };
        for (kind, value) in [("server", facts.server_not_after), ("ca", facts.ca_not_after)] {
            let labels = CertKindLabels { listener: listener.to_string(), kind };
            match value {
                Some(v) => {
                    self.cert_expiry.get_or_create(&labels).set(v);
                }
                None => {
                    self.cert_expiry.remove(&labels);
                }
            }
        }
        for (family, value) in
            [(&self.crl_next_update, facts.crl_next_update), (&self.crl_this_update, facts.crl_this_update)]
        {
            match value {
                Some(v) => {
                    family.get_or_create(&l()).set(v);
                }
                None => {
                    family.remove(&l());
                }
            }
        }
    }
}

fn set_or_remove(family: &Family<ListenerLabels, Gauge>, listener: &str, value: Option<i64>) {
    let labels = ListenerLabels { listener: listener.to_string() };
    match value {
        Some(v) => {
            family.get_or_create(&labels).set(v);
        }
        None => {
            family.remove(&labels);
        }
    }
}

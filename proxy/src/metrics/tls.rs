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

pub struct TlsMetrics {
    reloads: Family<ReloadLabels, Counter>,
    handshake_failures: Family<HandshakeLabels, Counter>,
    cert_expiry: Family<CertKindLabels, Gauge>,
    crl_next_update: Family<ListenerLabels, Gauge>,
    crl_this_update: Family<ListenerLabels, Gauge>,
    resumed_rejected: Family<ListenerLabels, Counter>,
    crl_fetches: Family<ReloadLabels, Counter>,
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
        Self {
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

//! Operational metrics: reloads, bans in force, live sessions kicked by operators.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BanKindLabels {
    pub kind: &'static str,
}

pub struct OpsMetrics {
    reloads: Family<ResultLabels, Counter>,
    /// Unix seconds of the last reload that put a new policy in force.
    pub last_reload_success: Gauge,
    /// Bans in force, by kind (file and runtime together; expired ones excluded).
    pub bans_active: Family<BanKindLabels, Gauge>,
    /// Sessions closed through the admin API.
    pub kicks: Counter,
    ban_hits: Family<BanKindLabels, Counter>,
}

impl OpsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register("config_reloads", "Configuration reloads by result", reloads.clone());
        let last_reload_success = Gauge::default();
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (startup or reload), unix seconds",
            last_reload_success.clone(),
        );
        let bans_active = Family::<BanKindLabels, Gauge>::default();
        registry.register("bans_active", "Bans in force by kind", bans_active.clone());
        let kicks = Counter::default();
        registry.register(
            "sessions_kicked",
            "Sessions closed by an operator through the admin API",
            kicks.clone(),
        );
        let ban_hits = Family::<BanKindLabels, Counter>::default();
        registry.register(
            "ban_hits",
            "Connections refused or sessions closed by a ban, by ban kind",
            ban_hits.clone(),
        );
        Self { reloads, last_reload_success, bans_active, kicks, ban_hits }
    }

    pub fn ban_hit(&self, kind: &'static str) {
        self.ban_hits.get_or_create(&BanKindLabels { kind }).inc();
    }

    pub fn reload(&self, success: bool) {
        self.reloads
            .get_or_create(&ResultLabels { result: if success { "success" } else { "failure" } })
            .inc();
    }
}

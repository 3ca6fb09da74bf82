//! Metrics of the shared-state backend (`state.backend: redis`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// What failed: `bans_sync`, `bans_write`, `flapping`, `connections`, `subscribe`.
    pub op: &'static str,
}

pub struct StateMetrics {
    /// 1 while the backend answers (always 1 for `embedded`), 0 while it is unreachable.
    pub up: Gauge,
    errors: Family<OpLabels, Counter>,
    /// New connections admitted without the shared checks (`fail_mode: open`) or refused
    /// (`fail_mode: closed`) while the backend was down, by result.
    pub degraded_decisions: Family<OpLabels, Counter>,
}

impl StateMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let up = Gauge::default();
        up.set(1);
        registry.register(
            "state_backend_up",
            "Whether the shared-state backend (Redis) is reachable (1) or not (0)",
            up.clone(),
        );
        let errors = Family::<OpLabels, Counter>::default();
        registry.register("state_backend_errors", "Failed shared-state backend operations", errors.clone());
        let degraded_decisions = Family::<OpLabels, Counter>::default();
        registry.register(
            "state_backend_degraded_connections",
            "New connections decided without the shared state (op: admitted or refused)",
            degraded_decisions.clone(),
        );
        Self { up, errors, degraded_decisions }
    }

    pub fn error(&self, op: &'static str) {
        self.errors.get_or_create(&OpLabels { op }).inc();
    }

    pub fn degraded(&self, admitted: bool) {
        let op = if admitted { "admitted" } else { "refused" };
        self.degraded_decisions.get_or_create(&OpLabels { op }).inc();
    }
}

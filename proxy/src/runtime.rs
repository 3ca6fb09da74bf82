//! The running proxy's shared state and its reload: what the admin API and SIGHUP act on.
//!
//! A reload re-reads the main config and every file it references through the same validation
//! as `moat check`. Only a fully valid set is applied; then the ban file's bans and the policy set
//! (filters, authentication chains, broker identity) are swapped in, and every live session
//! re-checks itself. Settings that live in sockets or per-connection state (listeners, upstream,
//! limits, timeouts, admin, flapping, the ban store path) are not changed by a reload: they are
//! reported as needing a restart, and the rest is applied.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tracing::{info, warn};

use crate::config::{self, Config};
use crate::policy::acl_filter::AclFilter;
use crate::policy::authn::AuthChain;
use crate::policy::ban_filter::BanFilter;
use crate::policy::bans::{BanKind, LiveBans};
use crate::policy::flapping_filter::FlappingFilter;
use crate::policy::live::PolicySet;
use crate::policy::{Chain, Filter};
use crate::session::Context;
use crate::transport::tls::revocation::RevocationFilter;
use crate::transport::tls::TlsState;

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The outcome of the last reload, shown by `/api/v1/status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReloadReport {
    /// Unix seconds.
    pub at: u64,
    pub result: &'static str,
    /// Generation in force after the reload.
    pub generation: u64,
    /// Problems that made the reload fail (file, line, key and message, as `moat check` prints).
    pub errors: Vec<String>,
    /// Settings that changed in the files but need a restart to take effect.
    pub restart_required: Vec<String>,
}

/// Filters whose state must survive reloads (flapping counters) or that read live data (bans).
struct Stateful {
    bans: Option<Arc<BanFilter>>,
    /// Closes live sessions whose client certificate is revoked after a TLS reload.
    revocation: Option<Arc<RevocationFilter>>,
    /// Each TLS listener's live material, reloaded with the rest.
    tls: Vec<Arc<TlsState>>,
    flapping: Option<Arc<FlappingFilter>>,
    /// The password-verification pool: one for the process, so a reload cannot double it.
    pool: Arc<tokio::sync::Semaphore>,
}

pub struct Runtime {
    pub ctx: Arc<Context>,
    pub bans: Option<Arc<LiveBans>>,
    /// The configuration in force (what `/api/v1/config` shows).
    pub config: ArcSwap<Config>,
    pub started_at: u64,
    /// The shared-state backend, when `state.backend: redis` (readiness reports its health).
    pub redis: Option<Arc<crate::state::RedisState>>,
    /// Listeners with `ocsp_stapling.must_staple`: not ready while one has no valid staple.
    pub must_staple: Vec<Arc<crate::transport::tls::ocsp::staple::Stapler>>,
    stateful: Stateful,
    last_reload: Mutex<Option<ReloadReport>>,
    /// Serializes reloads (SIGHUP and the API may race).
    reloading: tokio::sync::Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{} problem(s) in the configuration; nothing was changed", .0.len())]
    Invalid(Vec<String>),
    #[error("cannot apply the ban file: {0}; nothing was changed")]
    Bans(String),
}

impl Runtime {
    /// Builds the initial policy from `config`; `ctx` is completed by the caller.
    pub fn policy_parts(
        config: &Config,
        bans: Option<Arc<LiveBans>>,
        revocation: Option<Arc<RevocationFilter>>,
        tls: Vec<Arc<TlsState>>,
        metrics: &Arc<crate::metrics::Metrics>,
    ) -> (PolicySet, StatefulFilters) {
        let stateful = Stateful {
            bans: bans.map(|b| Arc::new(BanFilter::new(b, metrics.clone()))),
            revocation,
            tls,
            flapping: config.flapping.map(|f| Arc::new(FlappingFilter::new(f, metrics.clone()))),
            pool: AuthChain::verification_pool(),
        };
        let set = policy_set(config, &stateful, metrics);
        (set, StatefulFilters(stateful))
    }

    pub fn new(
        ctx: Arc<Context>,
        config: Config,
        bans: Option<Arc<LiveBans>>,
        stateful: StatefulFilters,
    ) -> Self {
        let rt = Self {
            ctx,
            bans,
            config: ArcSwap::from_pointee(config),
            started_at: unix_now(),
            redis: None,
            must_staple: Vec::new(),
            stateful: stateful.0,
            last_reload: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
        };
        rt.ctx.metrics.ops.last_reload_success.set(rt.started_at as i64);
        rt.refresh_ban_gauges();
        rt
    }

    fn report_slot(&self) -> MutexGuard<'_, Option<ReloadReport>> {
        self.last_reload.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn last_reload(&self) -> Option<ReloadReport> {
        self.report_slot().clone()
    }

    /// Re-reads and applies the configuration. On any error the old policy stays in force.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let source: PathBuf = self.config.load().source.clone();
        // Parsing reads files and may hash large policy sets: keep it off the async workers.
        let loaded = tokio::task::spawn_blocking(move || config::load(&source)).await;
        self.reload_tls().await;
        let result = match loaded {
            Ok(Ok(new)) => self.apply(new),
            Ok(Err(e)) => Err(ReloadError::Invalid(e.issues.iter().map(|i| i.to_string()).collect())),
            Err(e) => Err(ReloadError::Invalid(vec![format!("reload task failed: {e}")])),
        };
        let report = match &result {
            Ok(r) => r.clone(),
            Err(e) => {
                let errors = match e {
                    ReloadError::Invalid(list) => list.clone(),
                    other => vec![other.to_string()],
                };
                ReloadReport {
                    at: unix_now(),
                    result: "failure",
                    generation: self.ctx.policy.generation().current(),
                    errors,
                    restart_required: Vec::new(),
                }
            }
        };
        self.ctx.metrics.ops.reload(result.is_ok());
        match &result {
            Ok(r) => {
                info!(generation = r.generation, restart_required = ?r.restart_required, "configuration reloaded")
            }
            Err(e) => {
                warn!(error = %e, errors = ?report.errors, "reload failed, keeping the policy in force")
            }
        }
        *self.report_slot() = Some(report);
        result
    }

    /// Reloads every listener's TLS material (each keeps its own on error, and says why in its
    /// log line and `moat_tls_reloads_total`). A swap makes live sessions re-check their chains.
    async fn reload_tls(&self) {
        for state in &self.stateful.tls {
            let s = state.clone();
            let _ = tokio::task::spawn_blocking(move || s.reload()).await;
        }
    }

    fn apply(&self, new: Config) -> Result<ReloadReport, ReloadError> {
        let old = self.config.load_full();
        let restart_required = restart_required(&old, &new);
        // The ban file first: the only step that can still fail, so a failure changes nothing.
        if let (Some(live), Some(b)) = (&self.bans, &new.bans) {
            live.replace_file_bans(b.file_bans.clone()).map_err(|e| ReloadError::Bans(e.to_string()))?;
        }
        let set = policy_set(&new, &self.stateful, &self.ctx.metrics);
        let generation = self.ctx.policy.replace(set);
        self.config.store(Arc::new(new));
        let at = unix_now();
        self.ctx.metrics.ops.last_reload_success.set(at as i64);
        self.refresh_ban_gauges();
        Ok(ReloadReport { at, result: "success", generation, errors: Vec::new(), restart_required })
    }

    /// Sets `moat_bans_active` from the ban list in force.
    pub fn refresh_ban_gauges(&self) {
        let Some(bans) = &self.bans else {
            return;
        };
        let now = unix_now();
        let mut counts = [0i64; BanKind::ALL.len()];
        // Counted over the indexed set in force (no copy of the list, which can hold a million
        // bans; a ban in both the file and the store counts once, as it applies once).
        let set = bans.current();
        for ban in set.iter().filter(|b| b.is_active(now)) {
            if let Some(c) = BanKind::ALL.iter().position(|k| *k == ban.kind).and_then(|i| counts.get_mut(i))
            {
                *c += 1;
            }
        }
        for (kind, n) in BanKind::ALL.iter().zip(counts) {
            self.ctx
                .metrics
                .ops
                .bans_active
                .get_or_create(&crate::metrics::ops::BanKindLabels { kind: kind.as_str() })
                .set(n);
        }
    }
}

/// Opaque carrier of the stateful filters from [`Runtime::policy_parts`] to [`Runtime::new`].
pub struct StatefulFilters(Stateful);

/// The policy set a config describes, reusing the filters whose state must persist.
fn policy_set(config: &Config, stateful: &Stateful, metrics: &Arc<crate::metrics::Metrics>) -> PolicySet {
    let mut filters: Vec<Arc<dyn Filter>> = Vec::new();
    // Cheap and decisive first: bans, flapping, then the ACL.
    if let Some(b) = &stateful.bans {
        filters.push(b.clone());
    }
    if let Some(f) = &stateful.flapping {
        filters.push(f.clone());
    }
    if let Some(r) = &stateful.revocation {
        filters.push(r.clone());
    }
    if let Some(rules) = &config.acl {
        filters.push(Arc::new(AclFilter::new(rules.clone(), metrics.clone(), config.acl_check_delivery)));
    } else if config.authenticators.iter().any(|(_, a)| a.may_carry_rules()) {
        // Rules from a credential (JWT `acl` claim, HTTP backend) apply even without an ACL file.
        filters.push(Arc::new(AclFilter::credential_rules_only(metrics.clone())));
    }
    // Background work (JWKS refresh) starts with the set that uses it; the refresher of a
    // replaced authenticator ends once nothing holds it.
    for (_, a) in &config.authenticators {
        a.start();
    }
    let chain = if filters.is_empty() { Chain::allow_all() } else { Chain::new(filters) };
    let pool = &stateful.pool;
    let auth = config
        .listeners
        .iter()
        .map(|l| {
            let list = l
                .authentication
                .iter()
                .filter_map(|&i| config.authenticators.get(i))
                .map(|(_, a)| a.clone())
                .collect();
            (Arc::<str>::from(l.name.as_str()), Arc::new(AuthChain::new(list, pool.clone())))
        })
        .collect();
    PolicySet { chain, auth, broker_identity: config.broker_identity }
}

/// Settings a reload cannot apply, by config key.
fn restart_required(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |key: &str, changed: bool| {
        if changed {
            out.push(key.to_string());
        }
    };
    let listener_shape = |c: &Config| {
        c.listeners
            .iter()
            .map(|l| {
                format!(
                    "{} {} {:?} {:?} {} {:?} {:?} {:?}",
                    l.name,
                    l.bind,
                    l.tls.as_ref().map(|t| (&t.cert_path, &t.key_path, t.client_auth, t.versions)),
                    l.websocket_path,
                    l.proxy_protocol,
                    l.max_connections,
                    // Per-listener quotas and rates live in sessions and shared buckets.
                    l.quotas,
                    l.rates
                )
            })
            .collect::<Vec<_>>()
    };
    check("listeners", listener_shape(old) != listener_shape(new));
    // PSK identities are read at start only: a changed file needs a restart, and says so.
    let psk_changed = old.listeners.iter().zip(&new.listeners).any(|(o, n)| match (&o.psk, &n.psk) {
        (Some(o), Some(n)) => {
            o.identities_file != n.identities_file || !o.identities.same_contents(&n.identities)
        }
        (None, None) => false,
        _ => true,
    });
    check("listeners[].tls_psk", psk_changed);
    check("upstream", format!("{:?}", old.upstream) != format!("{:?}", new.upstream));
    check("timeouts", format!("{:?}", old.timeouts) != format!("{:?}", new.timeouts));
    check("limits", format!("{:?}", old.limits) != format!("{:?}", new.limits));
    check("admin.bind", old.admin.bind != new.admin.bind);
    check("admin.tls", old.admin.tls != new.admin.tls);
    check("log_format", old.log_format != new.log_format);
    check("flapping", format!("{:?}", old.flapping) != format!("{:?}", new.flapping));
    check("overload", old.overload != new.overload);
    check("state", old.state != new.state);
    let store = |c: &Config| c.bans.as_ref().map(|b| b.store.clone());
    check("bans.store", store(old) != store(new));
    let has_file = |c: &Config| c.bans.is_some();
    check("bans", has_file(old) != has_file(new));
    out
}

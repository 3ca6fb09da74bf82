//! Wires a validated [`Config`] into running listeners, the admin API and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::bans::{BanStore, LiveBans};
use crate::policy::limits::ConnectionLimits;
use crate::policy::live::{Generation, LivePolicy};
use crate::runtime::Runtime;
use crate::session::{Context, NodeBuckets, Registry, TrafficPlan};
use crate::transport::overload::Overload;
use crate::transport::tls::revocation::RevocationFilter;
use crate::transport::{self, Listener};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Listen(#[from] transport::ListenError),
    #[error("bans: {0}")]
    Bans(String),
    #[error("admin API TLS: {0}")]
    AdminTls(String),
    #[error("admin API: cannot bind {addr}: {source}")]
    Admin { addr: SocketAddr, source: std::io::Error },
}

/// A proxy whose sockets are bound (so callers know the ports) but which is not serving yet.
pub struct Server {
    runtime: Arc<Runtime>,
    listeners: Vec<Listener>,
    admin: TcpListener,
    admin_tls: Option<Arc<rustls::ServerConfig>>,
    fleet: Option<crate::state::RedisFleet>,
    fleet_rates: Option<Arc<crate::state::FleetRates>>,
}

impl Server {
    /// Binds every listener and the admin API; fails before serving anything if one cannot bind.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let metrics = Metrics::new();
        let generation = Generation::default();
        let redis = match &config.state {
            crate::config::StateBackend::Redis(r) => Some(
                crate::state::RedisState::new(r.clone(), metrics.clone())
                    .map_err(|e| ServerError::Bans(e.to_string()))?,
            ),
            crate::config::StateBackend::Embedded => None,
        };
        let bans = match (&config.bans, &redis) {
            // Runtime bans live in Redis, shared by every replica; the ban file still applies.
            (b, Some(state)) => {
                let file = b.as_ref().map(|b| b.file_bans.clone()).unwrap_or_default();
                let backend = Arc::new(crate::state::RedisBans::new(state.clone()));
                let live = LiveBans::new_shared(file, backend, generation.clone())
                    .map_err(|e| ServerError::Bans(e.to_string()))?;
                Some(Arc::new(live))
            }
            (Some(b), None) => {
                let store = match &b.store {
                    Some(path) => Some(BanStore::open(path).map_err(|e| ServerError::Bans(e.to_string()))?),
                    None => None,
                };
                let live = LiveBans::new(b.file_bans.clone(), store, generation.clone())
                    .map_err(|e| ServerError::Bans(e.to_string()))?;
                Some(Arc::new(live))
            }
            (None, None) => None,
        };
        if let (Some(state), Some(live)) = (&redis, &bans) {
            crate::state::initial_sync(state, live).await;
        }
        let fleet = match (&redis, &bans) {
            (Some(state), Some(live)) => {
                Some(crate::state::RedisFleet::new(state.clone(), live.clone(), config.flapping))
            }
            _ => None,
        };
        let fleet_rates = redis.as_ref().and_then(|state| {
            state.cfg.messages_per_user.map(|spec| crate::state::FleetRates::new(state.clone(), spec))
        });
        let conn_limits =
            ConnectionLimits::new(config.limits.max_connections, config.limits.max_connections_per_ip);
        let mut listeners = Vec::new();
        for l in &config.listeners {
            listeners.push(transport::bind(l, conn_limits.clone(), metrics.clone()).await?);
        }
        let tls_states: Vec<_> = listeners.iter().filter_map(Listener::tls_state).collect();
        for s in &tls_states {
            s.notify_sessions(generation.clone());
        }
        let revocation = RevocationFilter::new(&tls_states, metrics.clone()).map(Arc::new);
        let (set, stateful) = Runtime::policy_parts(&config, bans.clone(), revocation, tls_states, &metrics);
        let overload = config.overload.map(|o| Overload::new(o, conn_limits.clone(), metrics.clone()));
        let ctx = Arc::new(Context {
            upstream: config.upstream.clone(),
            timeouts: config.timeouts,
            limits: config.limits,
            policy: LivePolicy::new(set, generation),
            registry: Arc::new(Registry::default()),
            metrics: metrics.clone(),
            shutdown: CancellationToken::new(),
            listener_quotas: config
                .listeners
                .iter()
                .map(|l| (Arc::from(l.name.as_str()), l.quotas))
                .collect(),
            listener_traffic: {
                let node = NodeBuckets::new(&config.limits);
                let max = config.limits.max_packet_size;
                config
                    .listeners
                    .iter()
                    .map(|l| (Arc::from(l.name.as_str()), TrafficPlan::new(&l.rates, &node, max)))
                    .collect()
            },
            overload,
            fleet: fleet.clone().map(|f| Arc::new(f) as Arc<dyn crate::policy::fleet::FleetChecks>),
            fleet_rates: fleet_rates.clone(),
        });
        let admin_tls = match &config.admin.tls {
            Some((cert, key)) => Some(admin::tls::server_config(cert, key).map_err(ServerError::AdminTls)?),
            None => None,
        };
        let admin = TcpListener::bind(config.admin.bind)
            .await
            .map_err(|source| ServerError::Admin { addr: config.admin.bind, source })?;
        let mut runtime = Runtime::new(ctx, config, bans, stateful);
        runtime.redis = redis.clone();
        runtime.must_staple =
            listeners.iter().filter_map(|l| l.tls_state()?.stapler()).filter(|s| s.must_staple()).collect();
        let runtime = Arc::new(runtime);
        Ok(Self { runtime, listeners, admin, admin_tls, fleet, fleet_rates })
    }

    /// The shared state the admin API and signal handlers act on.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.clone()
    }

    /// The bound addresses of the MQTT listeners, in config order.
    pub fn listener_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// The TLS state of every TLS listener, for reloading from SIGHUP or the admin API
    /// (see `transport::tls::state`).
    pub fn tls_states(&self) -> Vec<Arc<transport::tls::TlsState>> {
        self.listeners.iter().filter_map(Listener::tls_state).collect()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
    }

    /// Serves until `stop` resolves, then shuts down gracefully: stop accepting, tell v5 clients
    /// (DISCONNECT 0x8B), wait up to the grace period for sessions to end.
    pub async fn serve(self, stop: impl Future<Output = ()>) {
        let ctx = self.runtime.ctx.clone();
        let tracker = TaskTracker::new();
        for l in self.listeners {
            tokio::spawn(l.serve(ctx.clone(), tracker.clone()));
        }
        if let Some(overload) = &ctx.overload {
            tokio::spawn(overload.clone().monitor(
                ctx.upstream.address.clone(),
                ctx.upstream.connect_timeout,
                ctx.shutdown.clone(),
            ));
        }
        let mut admin = tokio::spawn(admin::serve(
            self.admin,
            self.runtime.clone(),
            self.admin_tls,
            ctx.shutdown.clone(),
        ));
        let housekeeping = tokio::spawn(housekeeping(self.runtime.clone()));
        let hangups = tokio::spawn(reload_on_sighup(self.runtime.clone()));
        let watcher = crate::watch::spawn(self.runtime.clone());
        let mut shared_tasks = Vec::new();
        if let (Some(state), Some(live)) = (&self.runtime.redis, &self.runtime.bans) {
            let rt = self.runtime.clone();
            shared_tasks.push(tokio::spawn(crate::state::run_ban_sync(
                state.clone(),
                live.clone(),
                move || rt.refresh_ban_gauges(),
            )));
        }
        if let Some(fleet) = self.fleet {
            shared_tasks.push(tokio::spawn(fleet.renew_leases()));
        }
        if let Some(rates) = self.fleet_rates {
            shared_tasks.push(tokio::spawn(rates.run()));
        }
        info!("moat ready");
        stop.await;
        info!("shutting down");
        housekeeping.abort();
        hangups.abort();
        if let Some(w) = watcher {
            w.abort();
        }
        for t in &shared_tasks {
            t.abort();
        }
        ctx.shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(ctx.timeouts.shutdown_grace, tracker.wait()).await.is_err() {
            warn!(remaining = tracker.len(), "grace period over, closing remaining connections");
        }
        // The admin server drains its own connections; a client holding one open must not keep
        // the process alive past the grace period.
        if tokio::time::timeout(ctx.timeouts.shutdown_grace, &mut admin).await.is_err() {
            admin.abort();
        }
    }
}

/// How often expired runtime bans are purged from the store and the ban gauges refreshed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

async fn housekeeping(rt: Arc<Runtime>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(bans) = &rt.bans {
            if let Err(e) = bans.purge_expired(crate::runtime::unix_now()) {
                warn!(error = %e, "could not purge expired bans");
            }
        }
        rt.refresh_ban_gauges();
    }
}

/// SIGHUP reloads the configuration (as `POST /api/v1/reload` does).
async fn reload_on_sighup(rt: Arc<Runtime>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            warn!("cannot listen for SIGHUP; reload through the admin API only");
            return;
        };
        while hup.recv().await.is_some() {
            info!("SIGHUP: reloading");
            let _ = rt.reload().await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = rt;
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

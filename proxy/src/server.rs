//! Wires a validated [`Config`] into running listeners, the admin API and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::acl_filter::AclFilter;
use crate::policy::authn::AuthChain;
use crate::policy::ban_filter::BanFilter;
use crate::policy::flapping_filter::FlappingFilter;
use crate::policy::limits::ConnectionLimits;
use crate::policy::{Chain, Filter};
use crate::session::{Context, NodeBuckets, TrafficPlan};
use crate::transport::overload::Overload;
use crate::transport::{self, Listener};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Listen(#[from] transport::ListenError),
    #[error("admin API: cannot bind {addr}: {source}")]
    Admin { addr: SocketAddr, source: std::io::Error },
}

/// A proxy whose sockets are bound (so callers know the ports) but which is not serving yet.
pub struct Server {
    ctx: Arc<Context>,
    listeners: Vec<Listener>,
    admin: TcpListener,
    admin_state: AdminState,
}

impl Server {
    /// Binds every listener and the admin API; fails before serving anything if one cannot bind.
    pub async fn bind(config: &Config) -> Result<Self, ServerError> {
        let metrics = Metrics::new();
        let mut filters: Vec<Arc<dyn Filter>> = Vec::new();
        // Cheap and decisive first: bans, then the ACL.
        if let Some(bans) = &config.bans {
            filters.push(Arc::new(BanFilter::new(bans.clone(), metrics.clone())));
        }
        if let Some(flapping) = config.flapping {
            filters.push(Arc::new(FlappingFilter::new(flapping, metrics.clone())));
        }
        if let Some(rules) = &config.acl {
            filters.push(Arc::new(AclFilter::new(rules.clone(), metrics.clone(), config.acl_check_delivery)));
        }
        let chain = if filters.is_empty() { Chain::allow_all() } else { Chain::new(filters) };
        let conn_limits =
            ConnectionLimits::new(config.limits.max_connections, config.limits.max_connections_per_ip);
        let overload = config.overload.map(|o| Overload::new(o, conn_limits.clone(), metrics.clone()));
        let ctx = Arc::new(Context {
            upstream: config.upstream.clone(),
            timeouts: config.timeouts,
            limits: config.limits,
            chain,
            broker_identity: config.broker_identity,
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
        });
        let mut listeners = Vec::new();
        let pool = AuthChain::verification_pool();
        for l in &config.listeners {
            let authenticators = l
                .authentication
                .iter()
                .filter_map(|&i| config.authenticators.get(i))
                .map(|(_, a)| a.clone())
                .collect();
            listeners.push(
                transport::bind(l, AuthChain::new(authenticators, pool.clone()), conn_limits.clone()).await?,
            );
        }
        let admin = TcpListener::bind(config.admin.bind)
            .await
            .map_err(|source| ServerError::Admin { addr: config.admin.bind, source })?;
        let admin_state = AdminState { metrics, upstream: config.upstream.clone() };
        Ok(Self { ctx, listeners, admin, admin_state })
    }

    /// The bound addresses of the MQTT listeners, in config order.
    pub fn listener_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
    }

    /// Serves until `stop` resolves, then shuts down gracefully: stop accepting, tell v5 clients
    /// (DISCONNECT 0x8B), wait up to the grace period for sessions to end.
    pub async fn serve(self, stop: impl Future<Output = ()>) {
        let tracker = TaskTracker::new();
        for l in self.listeners {
            tokio::spawn(l.serve(self.ctx.clone(), tracker.clone()));
        }
        if let Some(overload) = &self.ctx.overload {
            tokio::spawn(overload.clone().monitor(
                self.ctx.upstream.address.clone(),
                self.ctx.upstream.connect_timeout,
                self.ctx.shutdown.clone(),
            ));
        }
        let mut admin = tokio::spawn(admin::serve(self.admin, self.admin_state, self.ctx.shutdown.clone()));
        info!("moat ready");
        stop.await;
        info!("shutting down");
        self.ctx.shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(self.ctx.timeouts.shutdown_grace, tracker.wait()).await.is_err() {
            warn!(remaining = tracker.len(), "grace period over, closing remaining connections");
        }
        // The admin server drains its own connections; a client holding one open must not keep
        // the process alive past the grace period.
        if tokio::time::timeout(self.ctx.timeouts.shutdown_grace, &mut admin).await.is_err() {
            admin.abort();
        }
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

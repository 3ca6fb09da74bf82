//! One connection handle over the three Redis deployments, so the ban store, the sync task and
//! the fleet checks are written once:
//! - standalone: a [`ConnectionManager`] (reconnects by itself);
//! - Sentinel: the master the Sentinels name, verified with `ROLE`; the handle forgets it when a
//!   command fails in a way a failover causes (connection lost, `READONLY` from a demoted master)
//!   and the sync task asks the Sentinels again every few seconds, so writes and the ban
//!   subscription follow the new master;
//! - Cluster: a redis-rs `ClusterConnection` (routes each command by its key's slot, follows
//!   `MOVED`, reconnects to nodes). Every script touches one key, so no script spans slots.
//!
//! Every call is bounded by `state.redis.timeout` (twice it for the Sentinel lookup, which takes
//! two round trips).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, Cmd, IntoConnectionInfo as _, RedisError, RedisFuture, RedisResult, Value};
use tracing::info;

use crate::config::{RedisConfig, RedisTopology};

/// After a failed Sentinel lookup, commands fail at once for this long instead of asking again.
const LOOKUP_BACKOFF: Duration = Duration::from_millis(250);

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
}

/// Cheap to clone; every clone shares the same connections.
#[derive(Clone)]
pub(crate) struct Conn(Arc<Backend>);

enum Backend {
    Single { client: Client, manager: ConnectionManager },
    Sentinel(SentinelRouter),
    Cluster(ClusterRouter),
}

/// The data-node connection settings from the config (credentials, TLS roots).
fn node_client(url: &str, cfg: &RedisConfig) -> RedisResult<Client> {
    let mut info = url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(u) = &cfg.username {
        settings = settings.set_username(&u.0);
    }
    if let Some(p) = &cfg.password {
        settings = settings.set_password(&p.0);
    }
    info = info.set_redis_settings(settings);
    match &cfg.ca_pem {
        Some(pem) => Client::build_with_tls(
            info,
            redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
        ),
        None => Client::open(info),
    }
}

fn manager_config(cfg: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(cfg.timeout))
        .set_response_timeout(Some(cfg.timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1))
}

impl Conn {
    /// Prepares the connections; does not wait for Redis.
    pub(crate) fn new(cfg: &RedisConfig) -> RedisResult<Self> {
        let backend = match &cfg.topology {
            RedisTopology::Standalone { url } => {
                let client = node_client(url, cfg)?;
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config(cfg))?;
                Backend::Single { client, manager }
            }
            RedisTopology::Sentinel { master_name, addresses, username, password } => {
                let mut addrs = Vec::new();
                for a in addresses {
                    addrs.push(a.as_str().into_connection_info()?.addr().clone());
                }
                let mut b = SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)?;
                if let Some(u) = &cfg.username {
                    b = b.set_client_to_redis_username(&u.0);
                }
                if let Some(p) = &cfg.password {
                    b = b.set_client_to_redis_password(&p.0);
                }
                if let Some(u) = username {
                    b = b.set_client_to_sentinel_username(&u.0);
                }
                if let Some(p) = password {
                    b = b.set_client_to_sentinel_password(&p.0);
                }
                if cfg.topology.tls() {
                    b = b
                        .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
                    if let Some(pem) = &cfg.ca_pem {
                        let certs =
                            || redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) };
                        b = b
                            .set_client_to_redis_certificates(certs())
                            .set_client_to_sentinel_certificates(certs());
                    }
                }
                Backend::Sentinel(SentinelRouter {
                    sentinel: tokio::sync::Mutex::new((b.build()?, None)),
                    master: Mutex::new(None),
                    cfg: cfg.clone(),
                })
            }
            RedisTopology::Cluster { nodes } => {
                let mut b = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(cfg.timeout)
                    .response_timeout(cfg.timeout)
                    .retries(2);
                if let Some(u) = &cfg.username {
                    b = b.username(&u.0);
                }
                if let Some(p) = &cfg.password {
                    b = b.password(&p.0);
                }
                if cfg.topology.tls() {
                    b = b.tls(redis::TlsMode::Secure);
                    if let Some(pem) = &cfg.ca_pem {
                        b = b
                            .certs(redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) });
                    }
                }
                let mut seeds = Vec::new();
                for n in nodes {
                    seeds.push(node_client(n, cfg)?);
                }
                Backend::Cluster(ClusterRouter {
                    client: b.build()?,
                    conn: tokio::sync::Mutex::new(None),
                    seeds,
                    next_seed: AtomicUsize::new(0),
                    timeout: cfg.timeout,
                })
            }
        };
        Ok(Conn(Arc::new(backend)))
    }

    /// A client for a pub/sub connection: the server, the current master, or one cluster node in
    /// turn (a PUBLISH reaches every node of a cluster).
    pub(crate) async fn pubsub_client(&self) -> RedisResult<Client> {
        match &*self.0 {
            Backend::Single { client, .. } => Ok(client.clone()),
            Backend::Sentinel(s) => Ok(s.master().await?.client.clone()),
            Backend::Cluster(c) => c.next_seed(),
        }
    }

    /// Asks the Sentinels which server is the master now; true if it changed (the caller then
    /// subscribes again). Standalone and cluster: nothing to do.
    pub(crate) async fn refresh(&self) -> RedisResult<bool> {
        match &*self.0 {
            Backend::Sentinel(s) => s.resolve().await.map(|(_, changed)| changed),
            Backend::Single { .. } | Backend::Cluster(_) => Ok(false),
        }
    }
}

/// The master the Sentinels name, with its connection manager.
struct Master {
    addr: String,
    client: Client,
    manager: ConnectionManager,
}

struct SentinelRouter {
    /// The Sentinel client needs `&mut` and keeps connections to the Sentinels; with it, when
    /// the last lookup failed.
    sentinel: tokio::sync::Mutex<(SentinelClient, Option<Instant>)>,
    master: Mutex<Option<Arc<Master>>>,
    cfg: RedisConfig,
}

impl SentinelRouter {
    fn current(&self) -> Option<Arc<Master>> {
        self.master.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The known master, else one lookup. Callers that queued behind a lookup take its result,
    /// and within [`LOOKUP_BACKOFF`] of a failed one fail at once: a connection storm during a
    /// failover must not line up behind one slow lookup after another.
    async fn master(&self) -> RedisResult<Arc<Master>> {
        if let Some(m) = self.current() {
            return Ok(m);
        }
        let guard = self.sentinel.lock().await;
        if let Some(m) = self.current() {
            return Ok(m);
        }
        if guard.1.is_some_and(|t| t.elapsed() < LOOKUP_BACKOFF) {
            return Err(RedisError::from((redis::ErrorKind::Io, "no master known (sentinel lookup failed)")));
        }
        self.lookup(guard).await.map(|(m, _)| m)
    }

    /// Asks the Sentinels and switches to the master they name; true if it changed.
    async fn resolve(&self) -> RedisResult<(Arc<Master>, bool)> {
        let guard = self.sentinel.lock().await;
        self.lookup(guard).await
    }

    async fn lookup(
        &self,
        mut guard: tokio::sync::MutexGuard<'_, (SentinelClient, Option<Instant>)>,
    ) -> RedisResult<(Arc<Master>, bool)> {
        let found = tokio::time::timeout(self.cfg.timeout.saturating_mul(2), guard.0.async_get_client())
            .await
            .map_err(|_| timed_out())
            .and_then(|r| r);
        guard.1 = found.is_err().then(Instant::now);
        let client = found?;
        let addr = client.get_connection_info().addr().to_string();
        if let Some(m) = self.current() {
            if m.addr == addr {
                return Ok((m, false));
            }
        }
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config(&self.cfg))?;
        let m = Arc::new(Master { addr, client, manager });
        let old = self.master.lock().unwrap_or_else(|e| e.into_inner()).replace(m.clone());
        // Addresses are operator configuration (host:port), not secrets.
        info!(master = %m.addr, changed = old.is_some(), "redis sentinel: using master");
        Ok((m, old.is_some()))
    }

    /// After a failed command: forget a master that may no longer be one, so the next call asks
    /// the Sentinels again.
    fn check<T>(&self, used: &Arc<Master>, r: &RedisResult<T>) {
        let Err(e) = r else {
            return;
        };
        let failover = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || matches!(e.kind(), redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly));
        if failover {
            let mut m = self.master.lock().unwrap_or_else(|e| e.into_inner());
            if m.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, used)) {
                *m = None;
            }
        }
    }
}

struct ClusterRouter {
    client: ClusterClient,
    /// Made on first use, so moat starts while the cluster is down.
    conn: tokio::sync::Mutex<Option<ClusterConnection>>,
    /// Clients for the configured nodes, used in turn for the ban subscription.
    seeds: Vec<Client>,
    next_seed: AtomicUsize,
    timeout: Duration,
}

impl ClusterRouter {
    async fn connection(&self) -> RedisResult<ClusterConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.timeout.saturating_mul(2), self.client.get_async_connection())
            .await
            .map_err(|_| timed_out())??;
        *slot = Some(c.clone());
        Ok(c)
    }

    fn next_seed(&self) -> RedisResult<Client> {
        let n = self.seeds.len().max(1);
        let i = self.next_seed.fetch_add(1, Ordering::Relaxed) % n;
        self.seeds
            .get(i)
            .cloned()
            .ok_or_else(|| RedisError::from((redis::ErrorKind::InvalidClientConfig, "no cluster nodes")))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match &*self.0 {
                Backend::Single { manager, .. } => manager.clone().req_packed_command(cmd).await,
                Backend::Sentinel(s) => {
                    let m = s.master().await?;
                    let mut c = m.manager.clone();
                    let r = c.req_packed_command(cmd).await;
                    s.check(&m, &r);
                    r
                }
                Backend::Cluster(cl) => {
                    let mut c = cl.connection().await?;
                    tokio::time::timeout(cl.timeout.saturating_mul(2), c.req_packed_command(cmd))
                        .await
                        .map_err(|_| timed_out())?
                }
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match &*self.0 {
                Backend::Single { manager, .. } => {
                    manager.clone().req_packed_commands(pipeline, offset, count).await
                }
                Backend::Sentinel(s) => {
                    let m = s.master().await?;
                    let mut c = m.manager.clone();
                    let r = c.req_packed_commands(pipeline, offset, count).await;
                    s.check(&m, &r);
                    r
                }
                Backend::Cluster(cl) => {
                    let mut c = cl.connection().await?;
                    tokio::time::timeout(
                        cl.timeout.saturating_mul(2),
                        c.req_packed_commands(pipeline, offset, count),
                    )
                    .await
                    .map_err(|_| timed_out())?
                }
            }
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

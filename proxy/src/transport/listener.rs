//! Accept loops. Cheap rejections (the `on_accept` hook) run before the TLS handshake; the
//! handshake itself has a deadline so a silent peer cannot hold a slot.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::ListenerConfig;
use crate::metrics::{ConnResult, Metrics};
use crate::policy::limits::{ConnectionGuard, ConnectionLimits, ConnectionRate, LimitHit};
use crate::policy::{PeerInfo, Verdict};
use crate::session::{self, Context};

use super::proxy_protocol;
use super::tls::{ChainStatus, TlsSetupError, TlsState};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("listener `{name}`: cannot bind {addr}: {source}")]
    Bind { name: String, addr: SocketAddr, source: std::io::Error },
    #[error("listener `{name}`: {source}")]
    Tls { name: String, source: TlsSetupError },
    #[error("listener `{name}`: {source}")]
    Psk { name: String, source: super::psk::PskSetupError },
}

/// A bound listener, ready to serve.
pub struct Listener {
    name: Arc<str>,
    socket: TcpListener,
    tls: Option<Arc<TlsState>>,
    /// File watches of the TLS material, armed at bind time.
    watch: Option<super::tls::watch::Watch>,
    framing: Framing,
}

/// Binds a listener and builds its TLS config (failing before any traffic is accepted).
pub async fn bind(
    cfg: &ListenerConfig,
    limits: Arc<ConnectionLimits>,
    metrics: Arc<Metrics>,
) -> Result<Listener, ListenError> {
    let tls = match &cfg.tls {
        Some(t) => Some(
            TlsState::new(&cfg.name, t, metrics)
                .map_err(|source| ListenError::Tls { name: cfg.name.clone(), source })?,
        ),
        None => None,
    };
    let psk = super::psk::server(cfg.psk.as_ref())
        .map_err(|source| ListenError::Psk { name: cfg.name.clone(), source })?;
    let watch = tls.as_ref().filter(|s| s.watch_enabled()).and_then(|s| super::tls::watch::start(s.clone()));
    let socket = TcpListener::bind(cfg.bind).await.map_err(|source| ListenError::Bind {
        name: cfg.name.clone(),
        addr: cfg.bind,
        source,
    })?;
    Ok(Listener {
        name: cfg.name.as_str().into(),
        socket,
        tls,
        watch,
        framing: Framing {
            websocket: cfg.websocket_path.as_deref().map(Arc::from),
            proxy_protocol: cfg.proxy_protocol,
            psk,
            limits,
            max_connections: cfg.max_connections,
            conn_rate: {
                let rate = ConnectionRate::new(cfg.rates.connection_rate, cfg.rates.connection_rate_per_ip);
                rate.is_active().then(|| Arc::new(Mutex::new(rate)))
            },
        },
    })
}

impl Listener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The listener's live TLS state (reload entry point for SIGHUP / admin API), if it is TLS.
    pub fn tls_state(&self) -> Option<Arc<TlsState>> {
        self.tls.clone()
    }

    /// Accepts until shutdown; every connection runs on `tracker` so shutdown can wait for them.
    pub async fn serve(self, ctx: Arc<Context>, tracker: TaskTracker) {
        let gauge = ctx.metrics.active_gauge(&self.name);
        info!(listener = %self.name, addr = ?self.socket.local_addr().ok(), tls = self.tls.is_some(), psk = self.framing.psk.is_some(), "listening");
        // The watch task ends with shutdown.
        if let Some(watch) = self.watch {
            tokio::spawn(watch.run(ctx.shutdown.clone()));
        }
        if let Some((state, fetch)) = self.tls.as_ref().and_then(|s| Some((s.clone(), s.crl_fetch()?))) {
            tokio::spawn(super::tls::crl_fetch::run(state, fetch, ctx.shutdown.clone()));
        }
        if let Some(stapler) = self.tls.as_ref().and_then(|s| s.stapler()) {
            tokio::spawn(super::tls::ocsp::staple::run(stapler, ctx.shutdown.clone()));
        }
        let bind_addr = match self.socket.local_addr() {
            Ok(a) => a,
            Err(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        loop {
            let accepted = tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                r = self.socket.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Usually fd exhaustion: back off instead of spinning.
                    warn!(listener = %self.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let local = tcp.local_addr().unwrap_or(bind_addr);
            let info = PeerInfo {
                peer,
                listener: self.name.clone(),
                local,
                tls: self.tls.is_some() || self.framing.psk.is_some(),
                client_certs: None,
                psk_identity: None,
            };
            // Behind a PROXY-protocol balancer the socket's peer is the balancer: check later.
            if !self.framing.proxy_protocol {
                if let Verdict::Deny(d) = ctx.policy.load().chain.on_accept(&info) {
                    debug!(%peer, reason = d.label, "refused before TLS");
                    ctx.metrics.connection(&self.name, ConnResult::Denied);
                    continue;
                }
                if !connection_rate_allows(&self.framing, &info, &ctx) {
                    continue;
                }
            }
            // Overload: refuse before any TLS work; sessions already open are untouched.
            if let Some(reason) = ctx.overload.as_ref().and_then(|o| o.admit().err()) {
                debug!(%peer, reason = reason.label(), "overloaded, connection refused");
                ctx.metrics.connection(&self.name, ConnResult::Denied);
                continue;
            }
            tracker.spawn(handle(
                tcp,
                info,
                self.tls.clone(),
                self.framing.clone(),
                ctx.clone(),
                gauge.clone(),
            ));
        }
    }
}

/// Decrements the active gauge however the connection task ends.
struct ActiveGuard(Gauge);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// How a connection's bytes reach the session, after TLS.
#[derive(Clone)]
struct Framing {
    /// MQTT over WebSocket on this path.
    websocket: Option<Arc<str>>,
    /// A PROXY protocol header precedes everything (the listener sits behind a balancer).
    proxy_protocol: bool,
    /// TLS-PSK (OpenSSL) instead of certificate TLS (`tls_psk`).
    psk: Option<Arc<super::psk::PskServer>>,
    /// Connection caps (total and per address shared by all listeners; this listener's own).
    limits: Arc<ConnectionLimits>,
    max_connections: Option<usize>,
    /// `connection_rate` / `connection_rate_per_ip` of this listener; `None` when neither is set.
    conn_rate: Option<Arc<Mutex<ConnectionRate>>>,
}

/// Counts a connection attempt against the listener's connection rates (before TLS); `false`
/// when refused (already counted and logged).
fn connection_rate_allows(framing: &Framing, info: &PeerInfo, ctx: &Context) -> bool {
    let Some(rate) = framing.conn_rate.as_ref() else {
        return true;
    };
    // The critical section is a map lookup and a bucket update: no I/O, no await.
    let verdict =
        rate.lock().unwrap_or_else(PoisonError::into_inner).try_accept(info.peer.ip(), Instant::now());
    match verdict {
        Ok(()) => true,
        Err(hit) => {
            debug!(peer = %info.peer, reason = hit.label(), "connection attempt over the rate");
            ctx.metrics.denied("accept", hit.label());
            ctx.metrics.connection(&info.listener, ConnResult::Denied);
            false
        }
    }
}

/// The connection task. It lives as long as the device stays connected, so its size is memory
/// per idle connection: it holds the active-gauge guard and one boxed phase at a time, first the
/// admission and handshake (large and short-lived, freed when done), then the session. A plain
/// function returning an `async move` block: an `async fn` would keep its arguments twice, for
/// the connection's whole life.
fn handle(
    tcp: TcpStream,
    info: PeerInfo,
    tls: Option<Arc<TlsState>>,
    framing: Framing,
    ctx: Arc<Context>,
    gauge: Gauge,
) -> impl std::future::Future<Output = ()> + Send {
    let admission = Box::pin(admit(tcp, info, tls, framing, ctx));
    async move {
        gauge.inc();
        let _active = ActiveGuard(gauge);
        // The connection-cap slot is held for the session's life.
        if let Some((session, _slot)) = admission.await {
            session.await;
        }
    }
}

/// A connection's session once admitted, with everything it holds for its life.
type Session = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Everything before the session: PROXY header, the accept hook, connection caps and rates, the
/// TLS (or PSK) handshake and the client-certificate checks. `None`: refused, already counted.
/// The session comes with the connection-cap slot it holds.
async fn admit(
    tcp: TcpStream,
    mut info: PeerInfo,
    tls: Option<Arc<TlsState>>,
    framing: Framing,
    ctx: Arc<Context>,
) -> Option<(Session, ConnectionGuard)> {
    let mut tcp = tcp;
    if framing.proxy_protocol {
        // The balancer's header names the client; the cheap pre-TLS checks run on that address.
        let header = tokio::time::timeout(ctx.timeouts.tls_handshake, proxy_protocol::read_header(&mut tcp));
        match header.await {
            Ok(Ok(Some(addr))) => info.peer = addr,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                debug!(peer = %info.peer, error = %e, "PROXY header refused");
                ctx.metrics.protocol_error("proxy_protocol");
                ctx.metrics.connection(&info.listener, ConnResult::ProtocolError);
                return None;
            }
            Err(_) => {
                ctx.metrics.connection(&info.listener, ConnResult::Timeout);
                return None;
            }
        }
        if let Verdict::Deny(d) = ctx.policy.load().chain.on_accept(&info) {
            debug!(peer = %info.peer, reason = d.label, "refused before TLS");
            ctx.metrics.connection(&info.listener, ConnResult::Denied);
            return None;
        }
        if !connection_rate_allows(&framing, &info, &ctx) {
            return None;
        }
    }
    // Held for the life of the connection; refused before any TLS work when a cap is reached.
    let slot = match framing.limits.try_acquire(&info.listener, framing.max_connections, info.peer.ip()) {
        Ok(slot) => slot,
        Err(hit) => {
            let label = match hit {
                LimitHit::Total => "connection_limit_total",
                LimitHit::Listener => "connection_limit_listener",
                LimitHit::PerIp => "connection_limit_per_ip",
            };
            debug!(peer = %info.peer, reason = label, "connection refused");
            ctx.metrics.denied("accept", label);
            ctx.metrics.connection(&info.listener, ConnResult::Denied);
            return None;
        }
    };
    if let Some(psk) = framing.psk.clone() {
        return serve_psk(&psk, tcp, info, framing, ctx, slot).await;
    }
    match tls {
        None => Some((serve_stream(tcp, info, framing, ctx), slot)),
        Some(state) => {
            // The config in force now; a reload during this handshake does not affect it.
            // Boxed: the handshake's state is large and short-lived, and the TLS stream it
            // yields moves into the heap once instead of being carried by value through every
            // layer of futures above the relay (see `session::run`).
            let accept = tokio::time::timeout(ctx.timeouts.tls_handshake, state.acceptor().accept(tcp));
            let handshake = Box::pin(async move { accept.await.map(|r| r.map(Box::new)) });
            let stream = tokio::select! {
                r = handshake => r,
                _ = ctx.shutdown.cancelled() => return None,
            };
            match stream {
                Ok(Ok(stream)) => {
                    let conn = stream.get_ref().1;
                    info.client_certs = conn.peer_certificates().map(|c| c.to_vec().into());
                    if !resumption_allowed(&state, conn, &info) {
                        ctx.metrics.tls.resumed_rejected(&info.listener);
                        ctx.metrics.tls.handshake_failed(&info.listener, "resumed_chain_rejected");
                        ctx.metrics.connection(&info.listener, ConnResult::TlsError);
                        return None;
                    }
                    // Boxed like the handshake: an HTTP exchange's state, short-lived.
                    if !Box::pin(client_ocsp_admits(&state, &info)).await {
                        ctx.metrics.tls.handshake_failed(&info.listener, "client_ocsp_refused");
                        ctx.metrics.connection(&info.listener, ConnResult::TlsError);
                        return None;
                    }
                    Some((serve_stream(stream, info, framing, ctx), slot))
                }
                Ok(Err(e)) => {
                    debug!(peer = %info.peer, error = %e, "TLS handshake failed");
                    ctx.metrics.tls.handshake_failed(&info.listener, super::tls::failure_reason(&e));
                    ctx.metrics.connection(&info.listener, ConnResult::TlsError);
                    None
                }
                Err(_) => {
                    debug!(peer = %info.peer, "TLS handshake timed out");
                    ctx.metrics.tls.handshake_failed(&info.listener, "timeout");
                    ctx.metrics.connection(&info.listener, ConnResult::Timeout);
                    None
                }
            }
        }
    }
}

/// The PSK handshake under the same deadline, metrics and shutdown as certificate TLS; the PSK
/// identity becomes `PeerInfo::psk_identity` for the `psk` authenticator.
async fn serve_psk(
    psk: &super::psk::PskServer,
    tcp: TcpStream,
    mut info: PeerInfo,
    framing: Framing,
    ctx: Arc<Context>,
    slot: ConnectionGuard,
) -> Option<(Session, ConnectionGuard)> {
    // Boxed, as the certificate handshake is (see `session::run`).
    let handshake = Box::pin(tokio::time::timeout(ctx.timeouts.tls_handshake, psk.accept(tcp)));
    let result = tokio::select! {
        r = handshake => r,
        _ = ctx.shutdown.cancelled() => return None,
    };
    match result {
        Ok(Ok((stream, identity))) => {
            info.psk_identity = Some(identity);
            Some((serve_stream(stream, info, framing, ctx), slot))
        }
        Ok(Err(f)) => {
            debug!(peer = %info.peer, reason = f.label, error = %f.detail, "TLS-PSK handshake failed");
            ctx.metrics.tls.handshake_failed(&info.listener, f.label);
            ctx.metrics.connection(&info.listener, ConnResult::TlsError);
            None
        }
        Err(_) => {
            debug!(peer = %info.peer, "TLS-PSK handshake timed out");
            ctx.metrics.tls.handshake_failed(&info.listener, "timeout");
            ctx.metrics.connection(&info.listener, ConnResult::Timeout);
            None
        }
    }
}

/// A resumed session restores the client chain from the session cache without verifying it
/// again (trap 21). Every reload builds a new config with a new cache, so a session never resumes
/// across a CRL change; this re-check also covers a CRL that went stale or a certificate that
/// expired since the session was first established. Full handshakes were just verified.
fn resumption_allowed(state: &TlsState, conn: &rustls::ServerConnection, info: &PeerInfo) -> bool {
    if conn.handshake_kind() != Some(rustls::HandshakeKind::Resumed) {
        return true;
    }
    let Some(chain) = info.client_certs.as_deref() else {
        return true;
    };
    match state.check_client_chain(chain) {
        ChainStatus::Good | ChainStatus::NotChecked => true,
        status => {
            info!(target: "moat::audit", peer = %info.peer, listener = %info.listener, ?status, "resumed TLS session refused: client chain no longer verifies");
            false
        }
    }
}

/// `tls.client_ocsp`: the client certificate's OCSP status, checked after the handshake and
/// before any MQTT byte is read; a refused client's connection is closed (see `tls/ocsp/client.rs`).
async fn client_ocsp_admits(state: &TlsState, info: &PeerInfo) -> bool {
    let (Some(checker), Some(chain)) = (state.client_ocsp(), info.client_certs.as_deref()) else {
        return true;
    };
    checker.admit(chain, &state.client_ca()).await
}

/// The session on the stream, after the WebSocket upgrade when the listener asks for one.
fn serve_stream<S>(stream: S, info: PeerInfo, framing: Framing, ctx: Arc<Context>) -> Session
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match framing.websocket {
        None => Box::pin(session::run(stream, info, ctx)),
        Some(path) => Box::pin(serve_websocket(stream, path, info, ctx)),
    }
}

async fn serve_websocket<S>(stream: S, path: Arc<str>, info: PeerInfo, ctx: Arc<Context>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // The upgrade shares the handshake deadline: a peer that never finishes its HTTP request
    // cannot hold the slot.
    let upgrade = Box::pin(tokio::time::timeout(
        ctx.timeouts.tls_handshake,
        super::ws::accept(stream, &path, ctx.limits.max_packet_size),
    ));
    match upgrade.await {
        // Boxed: a WebSocket stream is larger than a TLS one; plain MQTT connections should
        // not carry its size.
        Ok(Ok(ws)) => Box::pin(session::run(ws, info, ctx)).await,
        Ok(Err(e)) => {
            debug!(peer = %info.peer, error = %e, "WebSocket upgrade failed");
            ctx.metrics.connection(&info.listener, ConnResult::ProtocolError);
        }
        Err(_) => ctx.metrics.connection(&info.listener, ConnResult::Timeout),
    }
}

//! The relay loop: one task per connection, `select!` over both sockets, both write queues, the
//! keep-alive timer and shutdown. Every frame is validated and passed through the session's
//! filters (see `client.rs` and `broker.rs`) before its original bytes are queued for the other
//! side; moat re-encodes only what a policy must change.
//!
//! Backpressure: moat reads from a peer only while the queue toward the other peer is below
//! [`QUEUE_CAP`], so a client that stops reading stops the broker's traffic to it (and the broker
//! applies its own flow control) instead of growing memory.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, info};

use super::alias::AliasMap;
use super::connect::LAST_WORDS;
use super::io::{reserve_read, write_within};
use super::pending::{DeniedQos2, PendingSubacks};
use super::quota::{Inflight, Subscriptions};
use super::registry::Registration;
use super::rewrite::ConnackQuotas;
use super::{Context, QUEUE_CAP};
use crate::codec::Frame;
use crate::codec::{
    encode_connack, encode_disconnect, split_frame, PacketType, ProtocolVersion, ReasonCode, Split,
};
use crate::config::Quotas;
use crate::metrics::Direction;
use crate::policy::limits::{ConnBuckets, TrafficLimiter};
use crate::policy::{SessionChain, SessionInfo};

/// What to do with a frame after the filters have seen it.
pub(super) enum Step {
    /// Forward the original bytes.
    Continue,
    /// Moat queued its own answer (or a rewrite) instead; the original is not forwarded.
    Replaced,
    /// Forward the original bytes, then flush and close (client DISCONNECT, broker refusal).
    Finish,
    /// Close now; v5 clients first get DISCONNECT with this reason.
    Close(Option<ReasonCode>),
}

/// The bytes waiting to be written to each peer.
#[derive(Default)]
pub(super) struct Queues {
    pub(super) to_upstream: BytesMut,
    pub(super) to_client: BytesMut,
}

/// Writes some of `queue`, or flushes once it is empty. A TLS or WebSocket writer may accept bytes
/// it could not put on the socket yet; the flush makes sure they leave even if nothing follows.
/// Returns whether everything has been flushed.
async fn write_or_flush<W: AsyncWrite + Unpin>(w: &mut W, queue: &mut BytesMut) -> std::io::Result<bool> {
    if queue.is_empty() {
        w.flush().await?;
        Ok(true)
    } else {
        w.write_buf(queue).await?;
        Ok(false)
    }
}

/// Frees the capacity of empty buffers. Runs on the keep-alive timer, not per packet: an active
/// connection keeps its buffers (no allocation per packet), a connection that has been quiet for a
/// keep-alive period gives its ~8 KiB back, which is what a fleet of mostly idle devices needs.
fn release_idle_buffers<const N: usize>(buffers: [&mut BytesMut; N]) {
    for b in buffers {
        if b.is_empty() && b.capacity() > 0 {
            *b = BytesMut::new();
        }
    }
}

/// A timer the relay makes only when it needs one (see `Relay::run`).
type Timer = Pin<Box<tokio::time::Sleep>>;

/// Sets `timer` to fire at `at`, making it on first use; an unchanged deadline is left alone.
fn arm(timer: &mut Option<Timer>, at: tokio::time::Instant) {
    match timer {
        Some(t) if t.deadline() == at => {}
        Some(t) => t.as_mut().reset(at),
        None => *timer = Some(Box::pin(tokio::time::sleep_until(at))),
    }
}

/// Completes when `timer` fires; never, when there is none.
async fn fired(timer: &mut Option<Timer>) {
    match timer {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Reads and discards until the peer closes, for at most [`LAST_WORDS`].
async fn drain_to_eof<R: AsyncRead + Unpin>(r: &mut R) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(LAST_WORDS, async {
        while let Ok(n) = r.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// How often an idle connection without keep-alive re-checks whether one was negotiated.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

pub(crate) struct Relay {
    pub(super) ctx: Arc<Context>,
    pub(super) session: SessionInfo,
    pub(super) filters: SessionChain,
    /// Client keep-alive from CONNECT, replaced by a v5 Server Keep Alive from the broker.
    pub(super) keep_alive: u16,
    /// Aliases the client uses toward the broker (limit announced by the broker's CONNACK).
    pub(super) inbound_aliases: AliasMap,
    /// Aliases the broker uses toward the client (limit announced by the client's CONNECT).
    pub(super) outbound_aliases: AliasMap,
    /// Client QoS 2 PUBLISHes moat refused in 3.1.1 (their PUBREL is answered by moat).
    pub(super) denied_inbound_qos2: DeniedQos2,
    /// Broker QoS 2 deliveries moat dropped (the broker's PUBREL is answered by moat).
    pub(super) denied_outbound_qos2: DeniedQos2,
    pub(super) pending_subacks: PendingSubacks,
    /// The client id moat assigned to a v5 client that sent none (told to it in CONNACK).
    pub(super) assigned_client_id: Option<String>,
    /// The broker's CONNACK has been relayed to the client.
    pub(super) connack_seen: bool,
    /// PUBLISH rate limits (connection, listener, node levels) for this connection.
    /// Boxed, like the other parts only some sessions use: every byte here is held by every
    /// idle connection.
    traffic: Option<Box<(TrafficLimiter, ConnBuckets)>>,
    /// This user's fleet-wide PUBLISH rate (`state.fleet_limits`), when configured.
    fleet_rate: Option<Arc<crate::state::UserRate>>,
    /// A PUBLISH that waits for a token, processed before anything else is read.
    held: Option<Frame>,
    /// Until when moat stops reading from the client (rate limit backpressure).
    throttled_until: Option<Instant>,
    /// This listener's quotas and the state they need (see `quota.rs`).
    pub(super) quotas: Quotas,
    pub(super) inflight: Option<Inflight>,
    pub(super) subscriptions: Option<Box<Subscriptions>>,
    /// What the v5 CONNACK must tell the client about its quotas.
    pub(super) connack_quotas: ConnackQuotas,
    /// The client's CONNECT as received, to re-check the session against a new policy.
    pub(super) connect: Bytes,
    /// Wakes when the policy or the ban list changes.
    policy_changes: watch::Receiver<u64>,
    /// A session that logged in with SCRAM: re-authentication state (trap 13).
    /// Boxed: only SCRAM sessions pay for the re-authentication state.
    pub(super) scram: Option<Box<super::scram::ScramSession>>,
    /// Authentication Method and server-final to add to the broker's CONNACK (SCRAM login).
    pub(super) connack_auth: Option<Box<(&'static str, String)>>,
}

impl Relay {
    /// `client_alias_max` is the Topic Alias Maximum the broker was told for this client.
    pub(crate) fn new(
        ctx: Arc<Context>,
        session: SessionInfo,
        filters: SessionChain,
        keep_alive: u16,
        client_alias_max: u16,
        policy_changes: watch::Receiver<u64>,
    ) -> Self {
        let traffic = ctx.traffic_for(&session.peer.listener).map(|plan| Box::new(plan.session()));
        let fleet_rate =
            ctx.fleet_rates.as_ref().and_then(|f| session.identity.username.as_deref().map(|u| f.user(u)));
        let mut outbound_aliases = AliasMap::default();
        outbound_aliases.set_max(client_alias_max);
        Self {
            ctx,
            session,
            filters,
            keep_alive,
            inbound_aliases: AliasMap::default(),
            outbound_aliases,
            denied_inbound_qos2: DeniedQos2::default(),
            denied_outbound_qos2: DeniedQos2::default(),
            traffic,
            fleet_rate,
            pending_subacks: PendingSubacks::default(),
            assigned_client_id: None,
            connack_seen: false,
            held: None,
            throttled_until: None,
            quotas: Quotas::default(),
            inflight: None,
            subscriptions: None,
            connack_quotas: ConnackQuotas::default(),
            connect: Bytes::new(),
            policy_changes,
            scram: None,
            connack_auth: None,
        }
    }

    /// Installs the listener's quotas; `clamped_keep_alive` is set when the keep-alive bounds
    /// changed the client's value (a v5 client is told in CONNACK).
    pub(super) fn set_quotas(&mut self, quotas: Quotas, clamped_keep_alive: Option<u16>) {
        self.inflight = quotas.max_inflight.map(Inflight::new);
        self.subscriptions = quotas.max_subscriptions.map(|max| Box::new(Subscriptions::new(max)));
        self.connack_quotas = ConnackQuotas {
            server_keep_alive: clamped_keep_alive,
            receive_maximum: quotas.max_inflight,
            no_shared_subscriptions: !quotas.shared_subscriptions,
        };
        self.quotas = quotas;
    }

    pub(super) fn version(&self) -> ProtocolVersion {
        self.session.version
    }

    /// Keep-alive is enforced at 1.5 times the negotiated interval (MQTT 3.1.2.10).
    fn keep_alive_limit(&self) -> Option<Duration> {
        (self.keep_alive > 0).then(|| Duration::from_millis(u64::from(self.keep_alive) * 1500))
    }

    /// The session's relay loop, until either side closes.
    ///
    /// A plain function returning an `async move` block rather than an `async fn`: an `async fn`
    /// keeps its arguments in the future and then moves them into locals of its own, so the
    /// ~1 KB `Relay` would be stored twice for the life of every connection. The block uses the
    /// captured values in place.
    // Deliberately not an `async fn` (see above): clippy's rewrite would store `Relay` twice.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run<S>(
        mut self,
        client: S,
        upstream: crate::transport::upstream::Upstream,
        connect: Bytes,
        mut cbuf: BytesMut,
        registration: Registration,
    ) -> impl std::future::Future<Output = ()> + Send
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        async move {
            let (mut client_r, mut client_w) = tokio::io::split(client);
            let (mut up_r, mut up_w) = upstream.into_split();
            let max = self.ctx.limits.max_packet_size;

            let mut q = Queues::default();
            q.to_upstream.extend_from_slice(&connect);
            drop(connect);
            let mut ubuf = BytesMut::new();
            let mut client_eof = false;
            let mut client_unflushed = false;
            let mut finishing = false;
            let mut last_seen = Instant::now();
            // Re-armed on every expiry, so a Server Keep Alive learnt from CONNACK takes effect.
            let keep_alive = tokio::time::sleep(self.keep_alive_limit().unwrap_or(IDLE_RECHECK));
            tokio::pin!(keep_alive);
            let shutdown = self.ctx.shutdown.clone();
            // The timers other than keep-alive are boxed and made when first needed (a `Sleep` is
            // 112 bytes, for the life of every connection): most sessions are never throttled, never
            // backlogged, hold no expiring credential, and need the CONNACK deadline only briefly.
            // A broker that never answers CONNECT must not hold the client: it gets "server
            // unavailable" after the same deadline the client had for its CONNECT.
            let mut connack_deadline = Some(Box::pin(tokio::time::sleep(self.ctx.timeouts.connect)));
            let mut throttle: Option<Timer> = None;
            // The credential's end of validity (JWT `disconnect_on_expiry`): the session ends with it.
            let expires_at = self.session.identity.expires_at;
            let mut expiry: Option<Timer> = expires_at.map(|t| {
                let left = t.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO);
                Box::pin(tokio::time::sleep(left.min(Duration::from_secs(u32::MAX.into()))))
            });
            let slow_consumer_timeout = self.ctx.limits.slow_consumer_timeout;
            let mut backlogged_since: Option<tokio::time::Instant> = None;
            let mut slow_consumer: Option<Timer> = None;

            // Frames the client pipelined behind CONNECT stay in `cbuf` until the broker's CONNACK has
            // been relayed: nothing moat answers may reach the client before its CONNACK.
            let mut close = None;
            let mut awaiting_connack = true;
            let mut policy_watch = true;

            while close.is_none() {
                if awaiting_connack && self.connack_seen {
                    awaiting_connack = false;
                    connack_deadline = None;
                    close = self.drain_client(&mut cbuf, &mut q, max);
                    if close.is_some() {
                        break;
                    }
                }
                if finishing && q.to_upstream.is_empty() && q.to_client.is_empty() {
                    close = Some(None);
                    break;
                }
                // Arm the throttle for the wait the limiter asked for (an elapsed sleep left as it was
                // would fire at once on every turn: a busy loop for as long as the client is throttled).
                if let Some(until) = self.throttled_until {
                    arm(&mut throttle, tokio::time::Instant::from_std(until));
                }
                let read_client =
                    !client_eof && !finishing && !awaiting_connack && q.to_upstream.len() < QUEUE_CAP;
                let read_upstream = !finishing && q.to_client.len() < QUEUE_CAP;
                // Slow consumer: the queue toward the client has stayed full (moat stopped reading
                // from the broker for it) since `backlogged_since`.
                match (read_upstream || finishing, backlogged_since) {
                    (true, _) => backlogged_since = None,
                    (false, None) => {
                        let now = tokio::time::Instant::now();
                        backlogged_since = Some(now);
                        if let Some(limit) = slow_consumer_timeout {
                            arm(&mut slow_consumer, now + limit);
                        }
                    }
                    (false, Some(_)) => {}
                }
                if read_client {
                    reserve_read(&mut cbuf);
                }
                if read_upstream {
                    reserve_read(&mut ubuf);
                }
                tokio::select! {
                    r = client_r.read_buf(&mut cbuf), if read_client => match r {
                        Ok(0) | Err(_) => {
                            // The client went away (no DISCONNECT: the broker will publish its Will).
                            client_eof = true;
                            close = Some(None);
                        }
                        Ok(_) => {
                            last_seen = Instant::now();
                            close = self.drain_client(&mut cbuf, &mut q, max);
                        }
                    },
                    r = up_r.read_buf(&mut ubuf), if read_upstream => match r {
                        Ok(0) | Err(_) => {
                            debug!("upstream closed");
                            finishing = true;
                        }
                        Ok(_) => match self.drain_upstream(&mut ubuf, &mut q, max) {
                            Step::Continue | Step::Replaced => {}
                            Step::Finish => finishing = true,
                            Step::Close(reason) => close = Some(reason),
                        },
                    },
                    r = up_w.write_buf(&mut q.to_upstream), if !q.to_upstream.is_empty() => {
                        if r.is_err() {
                            finishing = true;
                            q.to_upstream.clear();
                        }
                    }
                    r = write_or_flush(&mut client_w, &mut q.to_client), if !q.to_client.is_empty() || client_unflushed => {
                        match r {
                            Ok(flushed) => client_unflushed = !flushed,
                            Err(_) => close = Some(None),
                        }
                    }
                    _ = &mut keep_alive => match self.keep_alive_limit() {
                        Some(limit) if last_seen.elapsed() >= limit => {
                            info!("keep-alive timeout");
                            close = Some(Some(ReasonCode::KeepAliveTimeout));
                        }
                        limit => {
                            let next = limit.map_or(Instant::now() + IDLE_RECHECK, |l| last_seen + l);
                            keep_alive.as_mut().reset(next.into());
                            release_idle_buffers([&mut cbuf, &mut ubuf, &mut q.to_upstream, &mut q.to_client]);
                        }
                    },
                    _ = fired(&mut throttle), if self.throttled_until.is_some() => {
                        self.throttled_until = None;
                        // The client was sending; moat chose not to read. That is not idleness.
                        last_seen = Instant::now();
                        close = self.drain_client(&mut cbuf, &mut q, max);
                    }
                    _ = fired(&mut slow_consumer), if backlogged_since.is_some() && slow_consumer_timeout.is_some() => {
                        // The `force_shutdown` of EMQX: the client does not read what it subscribed to.
                        // 0x97 (quota exceeded): an administrative limit on what moat buffers for this
                        // client was exceeded by the client; 0x89 "server busy" would blame the server
                        // and invite an immediate reconnect into the same state.
                        super::quota::record(&self.ctx.metrics, "slow_consumer_timeout", "outbound queue full");
                        close = Some(Some(ReasonCode::QuotaExceeded));
                    }
                    _ = fired(&mut connack_deadline), if awaiting_connack => {
                        info!("no CONNACK from the broker in time");
                        self.ctx.metrics.upstream_connect_failures.inc();
                        let before = q.to_client.len();
                        encode_connack(&mut q.to_client, self.version(), false, ReasonCode::ServerUnavailable, &[]);
                        self.count_answer(PacketType::Connack, q.to_client.len() - before);
                        close = Some(None);
                    }
                    changed = self.policy_changes.changed(), if policy_watch => {
                        match changed {
                            Ok(()) => {
                                if let Some(reason) = self.recheck() {
                                    close = Some((!awaiting_connack).then_some(reason));
                                }
                            }
                            // The sender lives as long as the process's policy; if it were ever gone,
                            // a closed channel must not make this branch fire forever.
                            Err(_) => policy_watch = false,
                        }
                    }
                    reason = registration.kick.kicked() => {
                        info!(reason = ?reason, "session closed by an operator");
                        close = Some((!awaiting_connack).then_some(reason));
                    }
                    _ = fired(&mut expiry), if expires_at.is_some() => {
                        info!(target: "moat::audit", "credential expired, closing the session");
                        self.ctx.metrics.denied("session", "credential_expired");
                        // Before its CONNACK a client may not be sent a DISCONNECT: just close.
                        close = Some((!awaiting_connack).then_some(ReasonCode::NotAuthorized));
                    }
                    _ = shutdown.cancelled() => {
                        // Before its CONNACK a client may not be sent a DISCONNECT: just close.
                        close = Some((!awaiting_connack).then_some(ReasonCode::ServerShuttingDown));
                    }
                }
            }

            // The session is over for the admin API, even while its last words drain.
            drop(registration);
            // Last words: whatever was already queued, then a DISCONNECT for v5 clients.
            if let Some(Some(reason)) = close {
                if self.version() == ProtocolVersion::V5 {
                    let before = q.to_client.len();
                    encode_disconnect(&mut q.to_client, ProtocolVersion::V5, reason, &[]);
                    let len = q.to_client.len() - before;
                    self.ctx.metrics.traffic.packet(Direction::Outbound, PacketType::Disconnect, len);
                }
            }
            if !client_eof {
                write_within(&mut client_w, &q.to_client, LAST_WORDS).await;
            }
            // Only validated frames are queued: deliver them (a client DISCONNECT must reach the
            // broker, or the Will fires).
            write_within(&mut up_w, &q.to_upstream, LAST_WORDS).await;
            let _ = up_w.shutdown().await;
            let _ = client_w.shutdown().await;
            // Closing a socket with unread data resets it, and a reset makes the peer discard what it
            // has received but not yet read (a burst of QoS 1 PUBLISHes before DISCONNECT, whose
            // PUBACKs are still arriving). Read both sides to their end, briefly, before closing.
            // Boxed: the two 1 KiB sinks exist only while closing, not for the session's life.
            Box::pin(async { tokio::join!(drain_to_eof(&mut up_r), drain_to_eof(&mut client_r)) }).await;
        }
    }

    /// Handles every complete frame in the client buffer. Returns `Some` to close the connection.
    fn drain_client(
        &mut self,
        cbuf: &mut BytesMut,
        q: &mut Queues,
        max: usize,
    ) -> Option<Option<ReasonCode>> {
        loop {
            // A policy change that arrived together with this data applies to it: the select
            // loop may pick the read before the change notification.
            if self.policy_changes.has_changed().unwrap_or(false) {
                self.policy_changes.borrow_and_update();
                if let Some(reason) = self.recheck() {
                    return Some(Some(reason));
                }
            }
            let frame = match self.held.take() {
                Some(f) => f,
                None => match split_frame(cbuf, max) {
                    Ok(Split::Incomplete) => return None,
                    Ok(Split::Frame(f)) => f,
                    Err(e) => return Some(self.protocol_error(e.kind(), e.reason_code())),
                },
            };
            if frame.packet_type() == PacketType::Publish {
                // The fleet-wide rate first: an atomic, never a Redis round trip (state/rates.rs).
                if let Some(fleet) = &self.fleet_rate {
                    if let Err(wait) = fleet.take() {
                        self.held = Some(frame);
                        self.throttled_until = Some(Instant::now() + wait);
                        return None;
                    }
                }
                if let Some((limiter, conn)) = self.traffic.as_deref_mut() {
                    let now = Instant::now();
                    if let Err(wait) = limiter.take_message(conn, frame.len() as f64, now) {
                        if let Some(fleet) = &self.fleet_rate {
                            fleet.refund();
                        }
                        // Backpressure, not loss: keep the PUBLISH and stop reading until tokens
                        // are due at every level. A wait of Duration::MAX cannot happen: message
                        // bursts are ≥ 1 and byte bursts ≥ max_packet_size (`traffic.rs`).
                        self.held = Some(frame);
                        self.throttled_until = Some(now + wait.min(Duration::from_secs(3600)));
                        return None;
                    }
                }
            }
            self.ctx.metrics.traffic.packet(Direction::Inbound, frame.packet_type(), frame.len());
            match self.on_client_frame(&frame, q) {
                Step::Continue => q.to_upstream.extend_from_slice(frame.bytes()),
                Step::Replaced => {}
                Step::Finish => {
                    q.to_upstream.extend_from_slice(frame.bytes());
                    return Some(None);
                }
                Step::Close(reason) => return Some(reason),
            }
        }
    }

    /// Handles every complete frame from the broker.
    fn drain_upstream(&mut self, ubuf: &mut BytesMut, q: &mut Queues, max: usize) -> Step {
        loop {
            let frame = match split_frame(ubuf, max) {
                Ok(Split::Incomplete) => return Step::Continue,
                Ok(Split::Frame(f)) => f,
                Err(e) => {
                    info!(error = %e, "invalid frame from the broker, closing");
                    return self.broker_error();
                }
            };
            self.ctx.metrics.traffic.packet(Direction::Outbound, frame.packet_type(), frame.len());
            match self.on_upstream_frame(&frame, q) {
                Step::Continue => q.to_client.extend_from_slice(frame.bytes()),
                Step::Replaced => {}
                Step::Finish => {
                    q.to_client.extend_from_slice(frame.bytes());
                    return Step::Finish;
                }
                step @ Step::Close(_) => return step,
            }
        }
    }

    /// Counts a protocol violation and picks the answer: v5 clients get a DISCONNECT reason.
    pub(super) fn protocol_error(&self, kind: &'static str, reason: ReasonCode) -> Option<ReasonCode> {
        self.ctx.metrics.protocol_error(kind);
        info!(kind, "protocol violation, closing");
        Some(reason)
    }

    /// The broker sent something moat cannot relay safely: close both sides.
    pub(super) fn broker_error(&self) -> Step {
        self.ctx.metrics.protocol_error("upstream_invalid");
        info!("invalid packet from the broker, closing");
        Step::Close(Some(ReasonCode::ImplementationSpecificError))
    }
}

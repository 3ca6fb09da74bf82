//! The connect phase: nothing reaches the broker until a valid CONNECT has been read and every
//! filter has allowed it (traps 1 and 2). Pipelined packets stay in the read buffer and go through
//! the relay's checks like any other.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info, warn, Instrument};

use super::io::{read_connect_frame, write_within, ReadError};
use super::quota;
use super::registry::ClientInfo;
use super::relay::Relay;
use super::rewrite;
use super::scram;
use super::{Context, READ_CHUNK};
use crate::codec::{encode_connack, CodecError, Packet, PacketType, ProtocolVersion, ReasonCode};
use crate::metrics::{ConnResult, Direction};
use crate::policy::authn::{AuthDecision, CertIdentity, Credentials};
use crate::policy::{Identity, PeerInfo, SessionInfo, Verdict};
use crate::transport::upstream;
use crate::util::escape;

/// How long moat tries to deliver its own last words (CONNACK refusal, DISCONNECT).
pub(crate) const LAST_WORDS: Duration = Duration::from_secs(1);

/// Connection ids for log correlation, unique within the process.
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Runs one client connection to completion, under the policy in force when it connects.
///
/// Every connection's future lives as long as the device stays connected, so its size is memory
/// per idle connection. An `async fn` future is as large as its largest state, keeps its
/// arguments twice (as captured and as locals), and stores a future it awaits by value inside
/// itself. So the short-lived, large parts (connect phase, authentication, dial) and the
/// long-lived relay each get their own heap allocation, sized for what they hold; the futures
/// above them are plain functions returning `async move` blocks, a few pointers wide.
pub fn run<S>(client: S, peer: PeerInfo, ctx: Arc<Context>) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "conn",
        id,
        peer = %peer.peer,
        listener = %peer.listener,
        client_id = tracing::field::Empty
    );
    session(client, peer, ctx, id).instrument(span)
}

fn session<S>(client: S, peer: PeerInfo, ctx: Arc<Context>, id: u64) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let listener = peer.listener.clone();
    let phase_ctx = ctx.clone();
    // Boxed now and freed when done: the connect phase's state, and the `PeerInfo` it reads, are
    // not carried for the session's life (the relay keeps its own copy in `SessionInfo`).
    let phase = Box::pin(async move { connect_phase(client, &peer, &phase_ctx, id).await });
    async move {
        let accepted = match phase.await {
            Ok(accepted) => accepted,
            Err(result) => return ctx.metrics.connection(&listener, result),
        };
        ctx.metrics.connection(&listener, ConnResult::Accepted);
        // Held for the session's life: gives the fleet-wide connection slot back after.
        let (relay, _slot) = start_relay(accepted, &ctx);
        relay.await;
    }
}

/// Registers the session and boxes its relay (see [`run`] for why a box of its own).
fn start_relay<S>(
    accepted: Accepted<S>,
    ctx: &Context,
) -> (Pin<Box<impl Future<Output = ()>>>, Option<Box<dyn crate::policy::fleet::SlotGuard>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted { client, upstream, connect, buf, relay, info, slot } = accepted;
    let registration = ctx.registry.register(info);
    (Box::pin(relay.run(client, upstream, connect, buf, registration)), slot)
}

/// A connection whose CONNECT was allowed and whose broker connection is open.
struct Accepted<S> {
    client: S,
    upstream: upstream::Upstream,
    /// The CONNECT to send to the broker: the client's bytes, or a rewrite when policy needs one.
    connect: bytes::Bytes,
    /// Bytes the client pipelined after CONNECT; not yet inspected.
    buf: BytesMut,
    relay: Relay,
    /// What the admin API lists about the session.
    info: ClientInfo,
    slot: Option<Box<dyn crate::policy::fleet::SlotGuard>>,
}

async fn connect_phase<S>(
    mut client: S,
    peer: &PeerInfo,
    ctx: &Arc<Context>,
    id: u64,
) -> Result<Accepted<S>, ConnResult>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max = ctx.limits.max_packet_size;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let frame = match tokio::time::timeout(
        ctx.timeouts.connect,
        read_connect_frame(&mut client, &mut buf, max),
    )
    .await
    {
        Err(_) => {
            debug!("no CONNECT within {:?}", ctx.timeouts.connect);
            return Err(ConnResult::Timeout);
        }
        Ok(Err(ReadError::Closed)) | Ok(Err(ReadError::Io(_))) => return Err(ConnResult::Closed),
        Ok(Err(ReadError::NotConnect)) => {
            ctx.metrics.protocol_error("first_packet_not_connect");
            debug!("first packet is not CONNECT");
            return Err(ConnResult::ProtocolError);
        }
        Ok(Err(ReadError::Codec(e))) => {
            ctx.metrics.protocol_error(e.kind());
            debug!(error = %e, "invalid first frame");
            // The version is unknown until CONNECT parses: 3.1.1 semantics, close without answer.
            return Err(ConnResult::ProtocolError);
        }
        Ok(Ok(f)) => f,
    };
    if frame.packet_type() != PacketType::Connect {
        ctx.metrics.protocol_error("first_packet_not_connect");
        debug!(packet = frame.packet_type().as_str(), "first packet is not CONNECT");
        return Err(ConnResult::ProtocolError);
    }
    ctx.metrics.traffic.packet(Direction::Inbound, PacketType::Connect, frame.len());

    let connect = match frame.decode(ProtocolVersion::V311) {
        Ok(Packet::Connect(c)) => c,
        Ok(_) => return Err(ConnResult::ProtocolError),
        Err(e) => {
            ctx.metrics.protocol_error(e.kind());
            debug!(error = %e, "invalid CONNECT");
            refuse_invalid_connect(&mut client, frame.body(), &e).await;
            return Err(ConnResult::ProtocolError);
        }
    };
    let version = connect.version;
    tracing::Span::current().record("client_id", tracing::field::display(escape(connect.client_id)));

    // One policy decides the whole connect phase, even if a reload lands meanwhile (the session
    // re-checks itself against the new one as soon as it runs).
    let policy_changes = ctx.policy.generation().subscribe();
    let policy = ctx.policy.snapshot();
    if let Verdict::Deny(deny) = policy.chain.on_connect(peer, &connect) {
        info!(reason = deny.label, "CONNECT denied");
        ctx.metrics.denied("connect", deny.label);
        refuse(&mut client, version, deny.reason).await;
        return Err(ConnResult::Denied);
    }

    // Flapping counted across replicas (state.backend: redis); one round trip per CONNECT.
    if let Some(fleet) = &ctx.fleet {
        if let Err(deny) = fleet.on_connect(peer.peer.ip().to_canonical(), connect.client_id).await {
            info!(reason = deny.label, "CONNECT denied");
            ctx.metrics.denied("connect", deny.label);
            refuse(&mut client, version, deny.reason).await;
            return Err(ConnResult::Denied);
        }
    }

    // Quotas are cheap: checked before any authentication work.
    let quotas = ctx.quotas_for(&peer.listener);
    let keep_alive = match check_connect_quotas(&connect, &quotas, ctx) {
        Ok(keep_alive) => keep_alive,
        Err(reason) => {
            refuse(&mut client, version, reason).await;
            return Err(ConnResult::Denied);
        }
    };

    // Authentication decides before anything reaches the broker; pipelined packets wait in `buf`.
    let cert =
        peer.client_certs.as_ref().and_then(|c| c.first()).and_then(|leaf| CertIdentity::from_der(leaf));
    let peer_cert_cn = cert.as_ref().and_then(|c| c.cn.clone());
    let credentials = Arc::new(Credentials {
        client_id: connect.client_id.to_string(),
        username: connect.username.map(str::to_string),
        password: connect.password.map(<[u8]>::to_vec),
        cert,
        peer: Some(peer.clone()),
    });
    let started = std::time::Instant::now();
    // Trap 13: MQTT 5 enhanced authentication runs between the client and moat (SCRAM, see
    // `scram.rs`); any other method is refused with 0x8C. The broker never sees it.
    let mut scram_login = None;
    let decision = match connect.properties.authentication_method() {
        Some(method) => {
            let chain = policy.auth_for(&peer.listener);
            let data = scram::authentication_data(&connect.properties);
            match scram::connect_exchange(
                &mut client,
                &mut buf,
                ctx,
                &chain,
                method,
                data,
                ctx.timeouts.connect,
            )
            .await
            {
                // The CONNECT's own username, if any, must name the same user (trap 5).
                Ok((login, _))
                    if connect.username.is_some_and(|u| Some(u) != login.identity.username.as_deref()) =>
                {
                    AuthDecision::Deny {
                        reason: ReasonCode::NotAuthorized,
                        label: "scram_username_mismatch",
                        authenticator: scram::AUTHENTICATOR,
                    }
                }
                Ok((login, _)) => {
                    let identity = Identity {
                        client_id: connect.client_id.to_string(),
                        cert_cn: peer_cert_cn.clone(),
                        ..login.identity.clone()
                    };
                    scram_login = Some(login);
                    AuthDecision::Allow(identity)
                }
                Err(deny) => deny,
            }
        }
        None => policy.auth_for(&peer.listener).authenticate(credentials).await,
    };
    ctx.metrics.authentication_seconds.observe(started.elapsed().as_secs_f64());
    let mut identity = match decision {
        AuthDecision::Allow(identity) => identity,
        AuthDecision::Deny { reason, label, authenticator } => {
            info!(
                target: "moat::audit",
                authenticator,
                reason = label,
                username = %escape(connect.username.unwrap_or("")),
                cert_cn = %escape(peer_cert_cn.as_deref().unwrap_or("")),
                "authentication failed"
            );
            ctx.metrics.authentication(authenticator, label);
            // Wrong credentials count toward flapping; an authenticator that could not decide
            // (backend down) must not get its users banned.
            if matches!(reason, ReasonCode::BadUserNameOrPassword | ReasonCode::NotAuthorized) {
                policy.chain.on_auth_failure(peer, &connect);
                if let Some(fleet) = &ctx.fleet {
                    fleet.on_auth_failure(peer.peer.ip().to_canonical(), connect.username).await;
                }
            }
            refuse(&mut client, version, reason).await;
            return Err(ConnResult::Denied);
        }
    };
    ctx.metrics.authentication(identity.authenticator, "allow");

    // Trap 4: an empty client id gets a real one here, so `${clientid}` rules see it.
    let mut assigned_client_id = None;
    // (3.1.x without clean session was already refused by the codec with return code 2.)
    if identity.client_id.is_empty() {
        identity.client_id = assign_client_id();
        assigned_client_id = Some(identity.client_id.clone());
    }
    if identity.client_id != connect.client_id {
        tracing::Span::current().record("client_id", tracing::field::display(escape(&identity.client_id)));
    }
    info!(
        target: "moat::audit",
        authenticator = identity.authenticator,
        username = %escape(identity.username.as_deref().unwrap_or("")),
        cert_cn = %escape(identity.cert_cn.as_deref().unwrap_or("")),
        superuser = identity.superuser,
        "authenticated"
    );

    let session = SessionInfo { peer: peer.clone(), version, identity };
    let filters = match policy.chain.start_session(&session, &connect) {
        Ok(f) => f,
        Err(deny) => {
            info!(reason = deny.label, "session refused");
            ctx.metrics.denied("connect", deny.label);
            refuse(&mut client, version, deny.reason).await;
            return Err(ConnResult::Denied);
        }
    };

    // Fleet-wide connection caps per client id / username (state.backend: redis).
    let slot = match &ctx.fleet {
        Some(fleet) => {
            match fleet.claim(&session.identity.client_id, session.identity.username.as_deref()).await {
                Ok(slot) => slot,
                Err(deny) => {
                    info!(reason = deny.label, "session refused");
                    ctx.metrics.denied("connect", deny.label);
                    refuse(&mut client, version, deny.reason).await;
                    return Err(ConnResult::Denied);
                }
            }
        }
        None => None,
    };

    if let Some(reason) = ctx.overload.as_ref().and_then(|o| o.admit_session().err()) {
        info!(reason = reason.label(), "upstream marked down, refused without dialing");
        refuse(&mut client, version, ReasonCode::ServerBusy).await;
        return Err(ConnResult::UpstreamUnavailable);
    }
    let proxied = upstream::ProxiedClient {
        source: peer.peer,
        destination: peer.local,
        tls: peer.tls,
        cert_cn: session.identity.cert_cn.as_deref(),
    };
    let dialed = upstream::connect(&ctx.upstream, &proxied).await;
    if let Some(overload) = &ctx.overload {
        overload.upstream_result(dialed.is_ok());
    }
    let upstream = match dialed {
        Ok((stream, took)) => {
            ctx.metrics.upstream_connect_seconds.observe(took.as_secs_f64());
            stream
        }
        Err(e) => {
            ctx.metrics.upstream_connect_failures.inc();
            warn!(error = %e, "upstream unavailable");
            refuse(&mut client, version, ReasonCode::ServerUnavailable).await;
            return Err(ConnResult::UpstreamUnavailable);
        }
    };

    let shown = rewrite::BrokerView::new(&connect, &session.identity, policy.broker_identity);
    // The broker may use at most this many aliases toward the client (CONNECT is clamped to it);
    // none when deliveries are checked, so a dropped delivery cannot desync the client's aliases.
    let alias_cap = if policy.chain.checks_delivery() { 0 } else { super::alias::MAX_ALIASES };
    // A v5 client's clamped keep-alive is what the broker must enforce too; a 3.1.1 client's
    // raised one is moat's alone (the client keeps pinging on its shorter schedule).
    let broker_keep_alive = if version == ProtocolVersion::V5 { keep_alive } else { connect.keep_alive };
    let rewritten = rewrite::connect_for_broker(
        &connect,
        &shown,
        ctx.limits.max_packet_size,
        alias_cap,
        broker_keep_alive,
    );
    // Fail closed: a CONNECT with enhanced-auth properties is never forwarded as it came.
    if rewritten.is_none() && connect.properties.authentication_method().is_some() {
        warn!("CONNECT could not be rewritten without its authentication properties");
        refuse(&mut client, version, ReasonCode::ImplementationSpecificError).await;
        return Err(ConnResult::Denied);
    }
    let connect_bytes = rewritten.unwrap_or_else(|| frame.bytes().clone());
    debug!(version = version.level(), "CONNECT accepted, relaying");
    let client_alias_max = connect.properties.topic_alias_maximum().unwrap_or(0).min(alias_cap);
    let info = ClientInfo {
        id,
        client_id: session.identity.client_id.clone(),
        username: session.identity.username.clone(),
        peer: peer.peer,
        listener: peer.listener.clone(),
        version,
        cert_cn: session.identity.cert_cn.clone(),
        authenticator: session.identity.authenticator,
        connected_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let mut relay = Relay::new(ctx.clone(), session, filters, keep_alive, client_alias_max, policy_changes);
    relay.assigned_client_id = assigned_client_id;
    relay.set_quotas(quotas, (keep_alive != connect.keep_alive).then_some(keep_alive));
    // Kept (a copy of a few dozen bytes, not the read buffer) so the session can re-check itself
    // against a new policy: bans on its client id, the ACL on its Will.
    relay.connect = bytes::Bytes::copy_from_slice(frame.bytes());
    if let Some(login) = scram_login {
        relay.scram = Some(Box::new(scram::ScramSession::new(&login)));
        relay.connack_auth = Some(Box::new((login.mechanism.name(), login.server_final)));
    }
    Ok(Accepted { client, upstream, connect: connect_bytes, buf, relay, info, slot })
}

/// The CONNECT-time quotas: client id length (v5 0x85, 3.1.1 return code 2), the Will topic
/// (it is a publish: v5 0x97, 3.1.1 return code 3) and keep-alive bounds. Returns the keep-alive
/// the session runs with, or the refusal reason.
fn check_connect_quotas(
    connect: &crate::codec::Connect<'_>,
    quotas: &crate::config::Quotas,
    ctx: &Context,
) -> Result<u16, ReasonCode> {
    if connect.client_id.len() > quotas.max_clientid_length {
        quota::record(&ctx.metrics, "max_clientid_length", "client id too long");
        return Err(ReasonCode::ClientIdentifierNotValid);
    }
    if let Some(will) = &connect.will {
        if let Some(exceeded) = quota::topic_quota(quotas, will.topic) {
            quota::record(&ctx.metrics, exceeded, will.topic);
            return Err(ReasonCode::QuotaExceeded);
        }
    }
    match quota::keep_alive(quotas, connect.keep_alive, connect.version == ProtocolVersion::V5) {
        quota::KeepAlive::Keep => Ok(connect.keep_alive),
        quota::KeepAlive::Clamp(k) => Ok(k),
        quota::KeepAlive::Refuse => {
            quota::record(&ctx.metrics, "keepalive_max", "3.1.1 keep-alive above the maximum");
            Err(ReasonCode::ClientIdentifierNotValid)
        }
    }
}

/// Answers a refused CONNECT with a CONNACK carrying `reason` (its 3.1.1 return code for 3.1.x).
async fn refuse<S: AsyncWrite + Unpin>(client: &mut S, version: ProtocolVersion, reason: ReasonCode) {
    let mut out = BytesMut::with_capacity(16);
    encode_connack(&mut out, version, false, reason, &[]);
    write_within(client, &out, LAST_WORDS).await;
    let _ = client.shutdown().await;
}

/// A CONNECT that does not parse. The spec asks for CONNACK 0x01 on an unsupported level and
/// allows a v5 CONNACK with a reason code when the level is 5; anything else is closed silently.
async fn refuse_invalid_connect<S: AsyncWrite + Unpin>(client: &mut S, body: &[u8], e: &CodecError) {
    match (e, connect_level(body)) {
        (CodecError::UnsupportedVersion(_), _) => {
            refuse(client, ProtocolVersion::V311, ReasonCode::UnsupportedProtocolVersion).await
        }
        (_, Some(5)) => refuse(client, ProtocolVersion::V5, e.reason_code()).await,
        // 3.1.x: a rejected client identifier must be answered with return code 2.
        (_, Some(3 | 4)) if e.reason_code() == ReasonCode::ClientIdentifierNotValid => {
            refuse(client, ProtocolVersion::V311, ReasonCode::ClientIdentifierNotValid).await
        }
        _ => {}
    }
}

/// The protocol level byte of a CONNECT body, if the protocol name can be skipped.
fn connect_level(body: &[u8]) -> Option<u8> {
    let len = u16::from_be_bytes([*body.first()?, *body.get(1)?]) as usize;
    body.get(2 + len).copied()
}

/// A client id for a client that sent none: `moat-` and 16 random hex digits.
fn assign_client_id() -> String {
    let mut bytes = [0u8; 8];
    // aws-lc's CSPRNG; if it ever failed, a time-derived id is still unique enough for a broker.
    if rustls::crypto::aws_lc_rs::default_provider().secure_random.fill(&mut bytes).is_err() {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_be_bytes();
    }
    let mut id = String::with_capacity(21);
    id.push_str("moat-");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

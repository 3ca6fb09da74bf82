//! The connect phase: nothing reaches the broker until a valid CONNECT has been read and every
//! filter has allowed it (traps 1 and 2). Pipelined packets stay in the read buffer and go through
//! the relay's checks like any other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info, warn, Instrument};

use super::io::{read_connect_frame, write_within, ReadError};
use super::relay::Relay;
use super::rewrite;
use super::{Context, READ_CHUNK};
use crate::codec::{encode_connack, CodecError, Packet, PacketType, ProtocolVersion, ReasonCode};
use crate::metrics::{ConnResult, Direction};
use crate::policy::{Identity, PeerInfo, SessionInfo, Verdict};
use crate::transport::upstream;
use crate::util::escape;

/// How long moat tries to deliver its own last words (CONNACK refusal, DISCONNECT).
pub(crate) const LAST_WORDS: Duration = Duration::from_secs(1);

/// Connection ids for log correlation, unique within the process.
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Runs one client connection to completion.
pub async fn run<S>(client: S, peer: PeerInfo, ctx: Arc<Context>)
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
    async move {
        match connect_phase(client, &peer, &ctx).await {
            Ok(accepted) => {
                ctx.metrics.connection(&peer.listener, ConnResult::Accepted);
                accepted
                    .relay
                    .run(accepted.client, accepted.upstream, accepted.connect, accepted.buf)
                    .await;
            }
            Err(result) => ctx.metrics.connection(&peer.listener, result),
        }
    }
    .instrument(span)
    .await
}

/// A connection whose CONNECT was allowed and whose broker connection is open.
struct Accepted<S> {
    client: S,
    upstream: tokio::net::TcpStream,
    /// The CONNECT to send to the broker: the client's bytes, or a rewrite when policy needs one.
    connect: bytes::Bytes,
    /// Bytes the client pipelined after CONNECT; not yet inspected.
    buf: BytesMut,
    relay: Relay,
}

async fn connect_phase<S>(
    mut client: S,
    peer: &PeerInfo,
    ctx: &Arc<Context>,
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
        debug!(
            packet = frame.packet_type().as_str(),
            "first packet is not CONNECT"
        );
        return Err(ConnResult::ProtocolError);
    }
    ctx.metrics
        .traffic
        .packet(Direction::Inbound, PacketType::Connect, frame.len());

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

    if let Verdict::Deny(deny) = ctx.chain.on_connect(peer, &connect) {
        info!(reason = deny.label, "CONNECT denied");
        refuse(&mut client, version, deny.reason).await;
        return Err(ConnResult::Denied);
    }

    let upstream = match upstream::dial(&ctx.upstream.address, ctx.upstream.connect_timeout).await {
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

    let session = SessionInfo {
        peer: peer.clone(),
        version,
        identity: Identity {
            username: connect.username.map(str::to_string),
            client_id: connect.client_id.to_string(),
            authenticator: "none",
            ..Identity::default()
        },
    };
    let filters = match ctx.chain.start_session(&session, &connect) {
        Ok(f) => f,
        Err(deny) => {
            info!(reason = deny.label, "session refused");
            refuse(&mut client, version, deny.reason).await;
            return Err(ConnResult::Denied);
        }
    };
    let keep_alive = connect.keep_alive;
    let connect_bytes = rewrite::connect_for_broker(&connect, ctx.limits.max_packet_size)
        .unwrap_or_else(|| frame.bytes().clone());
    debug!(version = version.level(), "CONNECT accepted, relaying");
    // The broker may use at most this many aliases toward the client (CONNECT is clamped to it).
    let client_alias_max = connect
        .properties
        .topic_alias_maximum()
        .unwrap_or(0)
        .min(super::alias::MAX_ALIASES);
    let relay = Relay::new(ctx.clone(), session, filters, keep_alive, client_alias_max);
    Ok(Accepted {
        client,
        upstream,
        connect: connect_bytes,
        buf,
        relay,
    })
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
            refuse(
                client,
                ProtocolVersion::V311,
                ReasonCode::UnsupportedProtocolVersion,
            )
            .await
        }
        (_, Some(5)) => refuse(client, ProtocolVersion::V5, e.reason_code()).await,
        _ => {}
    }
}

/// The protocol level byte of a CONNECT body, if the protocol name can be skipped.
fn connect_level(body: &[u8]) -> Option<u8> {
    let len = u16::from_be_bytes([*body.first()?, *body.get(1)?]) as usize;
    body.get(2 + len).copied()
}

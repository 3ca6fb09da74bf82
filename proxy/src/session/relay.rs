//! The relay loop: one task per connection, `select!` over both sockets, both write queues, the
//! keep-alive timer and shutdown. Every client frame is validated and passed through the filter
//! chain before its original bytes are queued for the broker; moat re-encodes nothing it forwards.
//!
//! Backpressure: moat reads from a peer only while the queue toward the other peer is below
//! [`QUEUE_CAP`], so a client that stops reading stops the broker's traffic to it (and the broker
//! applies its own flow control) instead of growing memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::connect::LAST_WORDS;
use super::io::{reserve_read, write_within};
use super::{rewrite, Context, QUEUE_CAP};
use crate::codec::{encode_disconnect, split_frame, Frame, Packet, ProtocolVersion, ReasonCode, Split};
use crate::metrics::Direction;
use crate::policy::{SessionInfo, Verdict};

/// What to do after handling a frame.
enum Step {
    Continue,
    /// Close the connection; for v5 clients first send DISCONNECT with this reason.
    Close(Option<ReasonCode>),
    /// Forwarded the last packet of the session (client DISCONNECT, broker refusal): flush, close.
    Finish,
    /// A rewritten packet was queued in place of the original.
    Replaced,
}

/// How often an idle connection without keep-alive re-checks whether one was negotiated.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

pub(crate) struct Relay {
    ctx: Arc<Context>,
    session: SessionInfo,
    /// Client keep-alive from CONNECT, replaced by a v5 Server Keep Alive from the broker.
    keep_alive: u16,
}

impl Relay {
    pub(crate) fn new(ctx: Arc<Context>, session: SessionInfo, keep_alive: u16) -> Self {
        Self {
            ctx,
            session,
            keep_alive,
        }
    }

    fn version(&self) -> ProtocolVersion {
        self.session.version
    }

    /// Keep-alive is enforced at 1.5 times the negotiated interval (MQTT 3.1.2.10).
    fn keep_alive_limit(&self) -> Option<Duration> {
        (self.keep_alive > 0).then(|| Duration::from_millis(u64::from(self.keep_alive) * 1500))
    }

    pub(crate) async fn run<S>(mut self, client: S, upstream: TcpStream, connect: Bytes, mut cbuf: BytesMut)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut client_r, mut client_w) = tokio::io::split(client);
        let (mut up_r, mut up_w) = upstream.into_split();
        let max = self.ctx.limits.max_packet_size;

        let mut to_upstream = BytesMut::with_capacity(connect.len());
        to_upstream.extend_from_slice(&connect);
        drop(connect);
        let mut to_client = BytesMut::new();
        let mut ubuf = BytesMut::new();
        let mut client_eof = false;
        let mut finishing = false;
        let mut last_seen = Instant::now();
        // Re-armed on every expiry, so a Server Keep Alive learnt from CONNACK takes effect.
        let keep_alive = tokio::time::sleep(self.keep_alive_limit().unwrap_or(IDLE_RECHECK));
        tokio::pin!(keep_alive);
        let shutdown = self.ctx.shutdown.clone();

        // Frames the client pipelined behind CONNECT are checked before anything else is read.
        let mut close = self.drain_client(&mut cbuf, &mut to_upstream, max);

        while close.is_none() {
            if finishing && to_upstream.is_empty() && to_client.is_empty() {
                close = Some(None);
                break;
            }
            let read_client = !client_eof && !finishing && to_upstream.len() < QUEUE_CAP;
            let read_upstream = !finishing && to_client.len() < QUEUE_CAP;
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
                        close = self.drain_client(&mut cbuf, &mut to_upstream, max);
                    }
                },
                r = up_r.read_buf(&mut ubuf), if read_upstream => match r {
                    Ok(0) | Err(_) => {
                        debug!("upstream closed");
                        finishing = true;
                    }
                    Ok(_) => match self.drain_upstream(&mut ubuf, &mut to_client, max) {
                        Step::Continue | Step::Replaced => {}
                        Step::Finish => finishing = true,
                        Step::Close(reason) => close = Some(reason),
                    },
                },
                r = up_w.write_buf(&mut to_upstream), if !to_upstream.is_empty() => {
                    if r.is_err() {
                        finishing = true;
                        to_upstream.clear();
                    }
                }
                r = client_w.write_buf(&mut to_client), if !to_client.is_empty() => {
                    if r.is_err() {
                        close = Some(None);
                    }
                }
                _ = &mut keep_alive => match self.keep_alive_limit() {
                    Some(limit) if last_seen.elapsed() >= limit => {
                        info!("keep-alive timeout");
                        close = Some(Some(ReasonCode::KeepAliveTimeout));
                    }
                    Some(limit) => keep_alive.as_mut().reset((last_seen + limit).into()),
                    None => keep_alive.as_mut().reset((Instant::now() + IDLE_RECHECK).into()),
                },
                _ = shutdown.cancelled() => {
                    close = Some(Some(ReasonCode::ServerShuttingDown));
                }
            }
        }

        // Last words: whatever was already queued, then a DISCONNECT for v5 clients.
        if let Some(Some(reason)) = close {
            if self.version() == ProtocolVersion::V5 {
                encode_disconnect(&mut to_client, ProtocolVersion::V5, reason, &[]);
                self.ctx
                    .metrics
                    .traffic
                    .packet(Direction::Outbound, crate::codec::PacketType::Disconnect, 4);
            }
        }
        if !client_eof {
            write_within(&mut client_w, &to_client, LAST_WORDS).await;
        }
        // Only validated frames are queued: deliver them (a client DISCONNECT must reach the
        // broker, or the Will fires).
        write_within(&mut up_w, &to_upstream, LAST_WORDS).await;
        let _ = up_w.shutdown().await;
        let _ = client_w.shutdown().await;
    }

    /// Handles every complete frame in the client buffer. Returns `Some` to close the connection.
    fn drain_client(
        &mut self,
        cbuf: &mut BytesMut,
        to_upstream: &mut BytesMut,
        max: usize,
    ) -> Option<Option<ReasonCode>> {
        loop {
            let frame = match split_frame(cbuf, max) {
                Ok(Split::Incomplete) => return None,
                Ok(Split::Frame(f)) => f,
                Err(e) => return Some(self.protocol_error(e.kind(), e.reason_code())),
            };
            self.ctx
                .metrics
                .traffic
                .packet(Direction::Inbound, frame.packet_type(), frame.len());
            match self.on_client_frame(&frame) {
                Step::Continue => to_upstream.extend_from_slice(frame.bytes()),
                Step::Replaced => {}
                Step::Finish => {
                    to_upstream.extend_from_slice(frame.bytes());
                    return Some(None);
                }
                Step::Close(reason) => return Some(reason),
            }
        }
    }

    /// Decides one client frame. `Continue` forwards its bytes unchanged.
    fn on_client_frame(&mut self, frame: &Frame) -> Step {
        let packet = match frame.decode(self.version()) {
            Ok(p) => p,
            Err(e) => return Step::Close(self.protocol_error(e.kind(), e.reason_code())),
        };
        let chain = &self.ctx.chain;
        match packet {
            Packet::Publish(p) => match chain.on_publish(&self.session, p.topic, &p) {
                Verdict::Allow => Step::Continue,
                Verdict::Deny(d) => {
                    info!(reason = d.label, "PUBLISH denied");
                    Step::Close(Some(d.reason))
                }
            },
            Packet::Subscribe(s) => {
                for (filter, options) in s.filters() {
                    if let Verdict::Deny(d) = chain.on_subscribe(&self.session, filter, options) {
                        info!(reason = d.label, "SUBSCRIBE denied");
                        return Step::Close(Some(d.reason));
                    }
                }
                Step::Continue
            }
            Packet::Disconnect(_) => Step::Finish,
            Packet::Connect(_) => {
                Step::Close(self.protocol_error("second_connect", ReasonCode::ProtocolError))
            }
            Packet::Connack(_) | Packet::Suback(_) | Packet::Unsuback(_) | Packet::Pingresp => {
                Step::Close(self.protocol_error("server_packet_from_client", ReasonCode::ProtocolError))
            }
            Packet::Puback(_)
            | Packet::Pubrec(_)
            | Packet::Pubrel(_)
            | Packet::Pubcomp(_)
            | Packet::Unsubscribe(_)
            | Packet::Pingreq
            | Packet::Auth(_) => Step::Continue,
        }
    }

    /// Counts a protocol violation and picks the answer: v5 clients get a DISCONNECT reason.
    fn protocol_error(&self, kind: &'static str, reason: ReasonCode) -> Option<ReasonCode> {
        self.ctx.metrics.protocol_error(kind);
        info!(kind, "protocol violation, closing");
        Some(reason)
    }

    /// Handles every complete frame from the broker: forwards it, learning what the session needs
    /// (Server Keep Alive, refusals, broker DISCONNECT) and running the delivery hook.
    fn drain_upstream(&mut self, ubuf: &mut BytesMut, to_client: &mut BytesMut, max: usize) -> Step {
        loop {
            let frame = match split_frame(ubuf, max) {
                Ok(Split::Incomplete) => return Step::Continue,
                Ok(Split::Frame(f)) => f,
                Err(e) => {
                    info!(error = %e, "invalid frame from the broker, closing");
                    self.ctx.metrics.protocol_error("upstream_invalid");
                    return Step::Close(Some(ReasonCode::ImplementationSpecificError));
                }
            };
            self.ctx
                .metrics
                .traffic
                .packet(Direction::Outbound, frame.packet_type(), frame.len());
            let step = self.on_upstream_frame(&frame, to_client);
            match step {
                Step::Continue => to_client.extend_from_slice(frame.bytes()),
                Step::Replaced => {}
                Step::Finish => {
                    to_client.extend_from_slice(frame.bytes());
                    return Step::Finish;
                }
                Step::Close(_) => return step,
            }
        }
    }

    fn on_upstream_frame(&mut self, frame: &Frame, to_client: &mut BytesMut) -> Step {
        use crate::codec::PacketType as T;
        match frame.packet_type() {
            T::Connack => match frame.decode(self.version()) {
                Ok(Packet::Connack(c)) => {
                    if let Some(ka) = c.properties.server_keep_alive() {
                        self.keep_alive = ka;
                    }
                    if c.code != 0 {
                        return Step::Finish;
                    }
                    if self.version() != ProtocolVersion::V5 {
                        return Step::Continue;
                    }
                    match rewrite::connack_for_client(&c, self.ctx.limits.max_packet_size) {
                        Some(rewritten) => {
                            to_client.extend_from_slice(&rewritten);
                            Step::Replaced
                        }
                        None => Step::Continue,
                    }
                }
                _ => self.broker_error(),
            },
            T::Publish => match frame.decode(self.version()) {
                Ok(Packet::Publish(p)) => match self.ctx.chain.on_deliver(&self.session, p.topic, &p) {
                    Verdict::Allow => Step::Continue,
                    Verdict::Deny(d) => {
                        // Dropping a QoS 1/2 delivery needs moat to ack the broker: the ACL issue
                        // adds that; until then a denied delivery closes the connection.
                        info!(reason = d.label, "delivery denied");
                        Step::Close(Some(d.reason))
                    }
                },
                _ => self.broker_error(),
            },
            T::Disconnect => Step::Finish,
            _ => Step::Continue,
        }
    }

    fn broker_error(&self) -> Step {
        self.ctx.metrics.protocol_error("upstream_invalid");
        info!("invalid packet from the broker, closing");
        Step::Close(Some(ReasonCode::ImplementationSpecificError))
    }
}

//! Broker → client: learn what the session needs from CONNACK (Server Keep Alive, alias limit),
//! merge partly denied SUBACKs, run the delivery hook, and finish QoS exchanges moat cut short.

use tracing::info;

use super::relay::{Queues, Relay, Step};
use super::rewrite;
use crate::codec::{
    encode_ack, encode_suback, Connack, Frame, Packet, PacketType, ProtocolVersion, Publish, QoS, ReasonCode,
};
use crate::metrics::Direction;
use crate::policy::Verdict;
use crate::util::escape;

impl Relay {
    pub(super) fn on_upstream_frame(&mut self, frame: &Frame, q: &mut Queues) -> Step {
        // Every broker packet is validated too: a client must never receive what it could read
        // differently from moat, nor a packet only clients may send.
        match frame.decode(self.version()) {
            Ok(Packet::Connack(c)) => self.broker_connack(&c, q),
            Ok(Packet::Publish(p)) => self.broker_publish(&p, q),
            Ok(Packet::Suback(s)) => match self.pending_subacks.merge(s.packet_id, s.codes) {
                None => Step::Continue,
                Some(Err(())) => self.broker_error(),
                Some(Ok(codes)) => {
                    let before = q.to_client.len();
                    encode_suback(
                        &mut q.to_client,
                        self.version(),
                        PacketType::Suback,
                        s.packet_id,
                        &codes,
                        s.properties.raw(),
                    );
                    self.count_answer(PacketType::Suback, q.to_client.len() - before);
                    Step::Replaced
                }
            },
            Ok(Packet::Pubrel(a)) if self.denied_outbound_qos2.take(a.packet_id) => {
                self.answer_broker(q, PacketType::Pubcomp, a.packet_id);
                Step::Replaced
            }
            Ok(Packet::Puback(a) | Packet::Pubcomp(a)) => {
                if let Some(inflight) = self.inflight.as_mut() {
                    inflight.complete(a.packet_id);
                }
                Step::Continue
            }
            // PUBREC with an error ends a QoS 2 exchange (MQTT 5 4.9); a successful one keeps it
            // in flight until PUBCOMP.
            Ok(Packet::Pubrec(a)) => {
                if a.reason >= 0x80 {
                    if let Some(inflight) = self.inflight.as_mut() {
                        inflight.complete(a.packet_id);
                    }
                }
                Step::Continue
            }
            Ok(Packet::Unsuback(u)) => {
                if let Some(subscriptions) = self.subscriptions.as_deref_mut() {
                    subscriptions.unsubscribed(u.packet_id, u.codes);
                }
                Step::Continue
            }
            Ok(Packet::Disconnect(_)) => Step::Finish,
            // The broker was never offered enhanced authentication (trap 13).
            Ok(Packet::Auth(_)) => {
                info!("AUTH from the broker");
                self.broker_error()
            }
            Ok(Packet::Connect(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) | Packet::Pingreq) => {
                info!(packet = frame.packet_type().as_str(), "client-only packet from the broker");
                self.broker_error()
            }
            Ok(_) => Step::Continue,
            Err(e) => {
                info!(error = %e, "broker packet does not decode");
                self.broker_error()
            }
        }
    }

    fn broker_connack(&mut self, c: &Connack<'_>, q: &mut Queues) -> Step {
        if self.connack_seen {
            return self.broker_error();
        }
        self.connack_seen = true;
        if let Some(ka) = c.properties.server_keep_alive() {
            self.keep_alive = ka;
        }
        if c.code != 0 {
            return Step::Finish;
        }
        if self.version() != ProtocolVersion::V5 {
            return Step::Continue;
        }
        self.inbound_aliases.set_max(c.properties.topic_alias_maximum().unwrap_or(0));
        if let Some((method, server_final)) = self.connack_auth.take().map(|b| *b) {
            return match rewrite::connack_with_auth(
                c,
                self.ctx.limits.max_packet_size,
                self.assigned_client_id.as_deref(),
                &self.connack_quotas,
                method,
                server_final.as_bytes(),
            ) {
                Some(rewritten) => {
                    q.to_client.extend_from_slice(&rewritten);
                    Step::Replaced
                }
                // A reason code moat cannot re-encode: the client cannot verify the server.
                None => self.broker_error(),
            };
        }
        match rewrite::connack_for_client(
            c,
            self.ctx.limits.max_packet_size,
            self.assigned_client_id.as_deref(),
            &self.connack_quotas,
        ) {
            Some(rewritten) => {
                q.to_client.extend_from_slice(&rewritten);
                Step::Replaced
            }
            None => Step::Continue,
        }
    }

    fn broker_publish(&mut self, p: &Publish<'_>, q: &mut Queues) -> Step {
        let alias = if self.version() == ProtocolVersion::V5 { p.properties.topic_alias() } else { None };
        let topic = match self.outbound_aliases.resolve(p.topic, alias) {
            Ok(t) => t,
            Err(_) => return self.broker_error(),
        };
        let deny = match self.filters.on_deliver(&self.session, topic, p) {
            Verdict::Allow => return Step::Continue,
            Verdict::Deny(d) => d,
        };
        info!(topic = %escape(topic), reason = deny.label, "delivery denied");
        self.ctx.metrics.denied("deliver", deny.label);
        if deny.disconnect {
            return Step::Close(Some(deny.reason));
        }
        // Dropped: acknowledge to the broker as the client would have, so no state leaks.
        let Some(id) = p.packet_id else {
            return Step::Replaced;
        };
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.answer_broker(q, PacketType::Puback, id),
            QoS::ExactlyOnce => {
                if let Err(reason) = self.denied_outbound_qos2.insert(id) {
                    return Step::Close(Some(reason));
                }
                self.answer_broker(q, PacketType::Pubrec, id);
            }
        }
        Step::Replaced
    }

    /// Queues an ack from moat to the broker, on the client's behalf.
    fn answer_broker(&self, q: &mut Queues, kind: PacketType, packet_id: u16) {
        let before = q.to_upstream.len();
        encode_ack(&mut q.to_upstream, self.version(), kind, packet_id, ReasonCode::Success, &[]);
        let len = q.to_upstream.len() - before;
        self.ctx.metrics.traffic.packet(Direction::Inbound, kind, len);
    }
}

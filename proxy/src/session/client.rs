//! Client → broker: each frame is decoded (validated) and passed through the session's filters.
//! Denials are answered the way each protocol version allows (traps 11 and 12): the denied bytes
//! never reach the broker.

use tracing::info;

use super::quota;
use super::relay::{Queues, Relay, Step};
use crate::codec::{
    encode_ack, encode_suback, encode_subscribe, Frame, Packet, PacketType, ProtocolVersion, Publish, QoS,
    ReasonCode, Subscribe, SubscriptionOptions,
};
use crate::metrics::Direction;
use crate::policy::Verdict;
use crate::util::escape;

/// SUBACK failure code of 3.1.1 (v5 uses the deny reason).
const SUBACK_FAILURE_V3: u8 = 0x80;

impl Relay {
    /// Decides one client frame.
    pub(super) fn on_client_frame(&mut self, frame: &Frame, q: &mut Queues) -> Step {
        let packet = match frame.decode(self.version()) {
            Ok(p) => p,
            Err(e) => return Step::Close(self.protocol_error(e.kind(), e.reason_code())),
        };
        match packet {
            Packet::Publish(p) => self.client_publish(&p, q),
            Packet::Subscribe(s) => self.client_subscribe(&s, q),
            Packet::Pubrel(a) if self.denied_inbound_qos2.take(a.packet_id) => {
                // The PUBLISH was refused by moat: finish the exchange here (trap 11).
                self.answer_client(q, PacketType::Pubcomp, a.packet_id, ReasonCode::Success);
                Step::Replaced
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
            | Packet::Pingreq => Step::Continue,
            Packet::Unsubscribe(u) => match self.subscriptions.as_deref_mut() {
                None => Step::Continue,
                Some(subscriptions) => match subscriptions.unsubscribing(u.packet_id, u.filters()) {
                    Ok(()) => Step::Continue,
                    Err(reason) => Step::Close(self.protocol_error("tracked_ids", reason)),
                },
            },
            // Trap 13: AUTH is for moat (SCRAM re-authentication, `scram.rs`; a protocol error
            // for any other session) and never reaches the broker.
            Packet::Auth(a) => self.client_auth(&a, q),
        }
    }

    fn client_publish(&mut self, p: &Publish<'_>, q: &mut Queues) -> Step {
        let alias = if self.version() == ProtocolVersion::V5 { p.properties.topic_alias() } else { None };
        let topic = match self.inbound_aliases.resolve(p.topic, alias) {
            Ok(t) => t,
            Err(reason) => return Step::Close(self.protocol_error("topic_alias", reason)),
        };
        if let Some(quota) = quota::topic_quota(&self.quotas, topic) {
            quota::record(&self.ctx.metrics, quota, topic);
            return self.publish_over_quota(p, q);
        }
        let deny = match self.filters.on_publish(&self.session, topic, p) {
            Verdict::Allow => return self.publish_allowed(p),
            Verdict::Deny(d) => d,
        };
        info!(topic = %escape(topic), reason = deny.label, "PUBLISH denied");
        self.ctx.metrics.denied("publish", deny.label);
        if deny.disconnect {
            return Step::Close(Some(deny.reason));
        }
        let Some(id) = p.packet_id else {
            return Step::Replaced; // QoS 0: dropped, nothing to answer.
        };
        match p.qos {
            QoS::AtMostOnce => Step::Replaced,
            QoS::AtLeastOnce => {
                self.answer_client(q, PacketType::Puback, id, deny.reason);
                Step::Replaced
            }
            QoS::ExactlyOnce => {
                // v5: PUBREC with an error code ends the exchange. 3.1.1 has no error code, so the
                // client will send PUBREL, which moat must answer itself.
                if self.version() != ProtocolVersion::V5 {
                    if let Err(reason) = self.denied_inbound_qos2.insert(id) {
                        return Step::Close(self.protocol_error("tracked_ids", reason));
                    }
                }
                self.answer_client(q, PacketType::Pubrec, id, deny.reason);
                Step::Replaced
            }
        }
    }

    /// A PUBLISH over a topic quota: v5 QoS 1/2 get PUBACK/PUBREC 0x97 and the session goes on;
    /// v5 QoS 0 has no ack to carry a code, and 3.1.1 has no negative ack at all, so those close
    /// (v5 with DISCONNECT 0x97).
    fn publish_over_quota(&mut self, p: &Publish<'_>, q: &mut Queues) -> Step {
        match (self.version(), p.qos, p.packet_id) {
            (ProtocolVersion::V5, QoS::AtLeastOnce, Some(id)) => {
                self.answer_client(q, PacketType::Puback, id, ReasonCode::QuotaExceeded);
                Step::Replaced
            }
            (ProtocolVersion::V5, QoS::ExactlyOnce, Some(id)) => {
                self.answer_client(q, PacketType::Pubrec, id, ReasonCode::QuotaExceeded);
                Step::Replaced
            }
            _ => Step::Close(Some(ReasonCode::QuotaExceeded)),
        }
    }

    /// A PUBLISH every filter allowed: QoS 1/2 count against `max_inflight` until the broker acks.
    /// Over it: v5 clients were told the limit as Receive Maximum in CONNACK, so exceeding it is
    /// their protocol error, answered with DISCONNECT 0x93 as MQTT 5 3.3.4 prescribes; 3.1.1
    /// clients are closed.
    fn publish_allowed(&mut self, p: &Publish<'_>) -> Step {
        let (Some(inflight), Some(id)) = (self.inflight.as_mut(), p.packet_id) else {
            return Step::Continue;
        };
        if inflight.insert(id).is_ok() {
            return Step::Continue;
        }
        quota::record(&self.ctx.metrics, "max_inflight", "too many unacknowledged QoS 1/2 PUBLISHes");
        Step::Close(Some(ReasonCode::ReceiveMaximumExceeded))
    }

    /// The quota a permitted SUBSCRIBE filter exceeds, as the v5 SUBACK code: 0x9E for a shared
    /// subscription when they are off, 0x97 for topic depth/length and the subscription count.
    fn subscribe_quota(&mut self, filter: &str) -> Option<ReasonCode> {
        if !self.quotas.shared_subscriptions && filter.starts_with("$share/") {
            quota::record(&self.ctx.metrics, "shared_subscriptions", filter);
            return Some(ReasonCode::SharedSubscriptionsNotSupported);
        }
        if let Some(quota) = quota::topic_quota(&self.quotas, filter) {
            quota::record(&self.ctx.metrics, quota, filter);
            return Some(ReasonCode::QuotaExceeded);
        }
        if let Some(subscriptions) = self.subscriptions.as_deref_mut() {
            if !subscriptions.admit(filter) {
                quota::record(&self.ctx.metrics, "max_subscriptions", filter);
                return Some(ReasonCode::QuotaExceeded);
            }
        }
        None
    }

    /// Checks each filter; forwards only the permitted ones under the same packet id and
    /// remembers where the denied ones were, to merge the broker's SUBACK (trap 12).
    fn client_subscribe(&mut self, s: &Subscribe<'_>, q: &mut Queues) -> Step {
        if s.len() > self.ctx.limits.max_subscribe_filters {
            self.ctx.metrics.denied("subscribe", "too_many_filters");
            info!(filters = s.len(), "SUBSCRIBE with too many filters");
            return Step::Close(Some(ReasonCode::QuotaExceeded));
        }
        let v5 = self.version() == ProtocolVersion::V5;
        let mut slots: Option<Vec<Option<u8>>> = None;
        for (i, (filter, options)) in s.filters().enumerate() {
            let reason = match self.filters.on_subscribe(&self.session, filter, options) {
                Verdict::Allow => match self.subscribe_quota(filter) {
                    None => {
                        if let Some(slots) = slots.as_mut() {
                            slots.push(None);
                        }
                        continue;
                    }
                    Some(reason) => reason,
                },
                Verdict::Deny(deny) => {
                    info!(filter = %escape(filter), reason = deny.label, "SUBSCRIBE filter denied");
                    self.ctx.metrics.denied("subscribe", deny.label);
                    if deny.disconnect {
                        return Step::Close(Some(deny.reason));
                    }
                    deny.reason
                }
            };
            let code = if v5 { reason.as_u8() } else { SUBACK_FAILURE_V3 };
            // Allocated only when something is denied: the all-allowed path stays allocation-free.
            let slots = slots.get_or_insert_with(|| vec![None; i]);
            slots.push(Some(code));
        }
        let Some(slots) = slots else {
            return Step::Continue;
        };
        if slots.iter().all(Option::is_some) {
            let codes: Vec<u8> = slots.iter().flatten().copied().collect();
            let before = q.to_client.len();
            encode_suback(&mut q.to_client, self.version(), PacketType::Suback, s.packet_id, &codes, &[]);
            self.count_answer(PacketType::Suback, q.to_client.len() - before);
            return Step::Replaced;
        }
        let permitted: Vec<(&str, SubscriptionOptions)> =
            s.filters().zip(&slots).filter(|(_, slot)| slot.is_none()).map(|(f, _)| f).collect();
        encode_subscribe(&mut q.to_upstream, self.version(), s.packet_id, s.properties.raw(), &permitted);
        if let Err(reason) = self.pending_subacks.insert(s.packet_id, slots) {
            return Step::Close(self.protocol_error("tracked_ids", reason));
        }
        Step::Replaced
    }

    /// Queues an ack from moat to the client (v5 carries `reason`; 3.1.1 acks carry none).
    fn answer_client(&self, q: &mut Queues, kind: PacketType, packet_id: u16, reason: ReasonCode) {
        let before = q.to_client.len();
        encode_ack(&mut q.to_client, self.version(), kind, packet_id, reason, &[]);
        self.count_answer(kind, q.to_client.len() - before);
    }

    pub(super) fn count_answer(&self, kind: PacketType, len: usize) {
        self.ctx.metrics.traffic.packet(Direction::Outbound, kind, len);
    }
}

//! The decoded-packet enum and the per-type dispatch of `Frame::decode`.

use super::ack::{decode_ack, Ack};
use super::auth_disconnect::{decode_auth, decode_disconnect, Auth, Disconnect};
use super::connack::{decode_connack, Connack};
use super::connect::{decode_connect, Connect};
use super::error::{malformed, CodecError};
use super::frame::Frame;
use super::publish::{decode_publish, Publish};
use super::subscribe::{
    decode_suback, decode_subscribe, decode_unsuback, decode_unsubscribe, Suback, Subscribe, Unsubscribe,
};
use super::types::{PacketType, ProtocolVersion};

/// A decoded, fully validated packet borrowing from its [`Frame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    Connack(Connack<'a>),
    Publish(Publish<'a>),
    Puback(Ack<'a>),
    Pubrec(Ack<'a>),
    Pubrel(Ack<'a>),
    Pubcomp(Ack<'a>),
    Subscribe(Subscribe<'a>),
    Suback(Suback<'a>),
    Unsubscribe(Unsubscribe<'a>),
    Unsuback(Suback<'a>),
    Pingreq,
    Pingresp,
    Disconnect(Disconnect<'a>),
    Auth(Auth<'a>),
}

impl Packet<'_> {
    /// The type of this packet.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::Connack(_) => PacketType::Connack,
            Packet::Publish(_) => PacketType::Publish,
            Packet::Puback(_) => PacketType::Puback,
            Packet::Pubrec(_) => PacketType::Pubrec,
            Packet::Pubrel(_) => PacketType::Pubrel,
            Packet::Pubcomp(_) => PacketType::Pubcomp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::Suback(_) => PacketType::Suback,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::Unsuback(_) => PacketType::Unsuback,
            Packet::Pingreq => PacketType::Pingreq,
            Packet::Pingresp => PacketType::Pingresp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}

impl Frame {
    /// Decode and fully validate as a packet of the given protocol version (CONNECT ignores
    /// `version`, it carries its own). Errors if flags/fields/properties are invalid for that
    /// version.
    pub fn decode(&self, version: ProtocolVersion) -> Result<Packet<'_>, CodecError> {
        let ty = self.packet_type();
        // Fixed-header flags: reserved values must match exactly (MQTT-2.2.2-1/2).
        if let Some(required) = ty.required_flags() {
            if self.flags() != required {
                return malformed("invalid fixed header flags");
            }
        }
        let body = self.body();
        Ok(match ty {
            PacketType::Connect => Packet::Connect(decode_connect(body)?),
            PacketType::Connack => Packet::Connack(decode_connack(body, version)?),
            PacketType::Publish => Packet::Publish(decode_publish(self, version)?),
            PacketType::Puback => Packet::Puback(decode_ack(body, version, ty)?),
            PacketType::Pubrec => Packet::Pubrec(decode_ack(body, version, ty)?),
            PacketType::Pubrel => Packet::Pubrel(decode_ack(body, version, ty)?),
            PacketType::Pubcomp => Packet::Pubcomp(decode_ack(body, version, ty)?),
            PacketType::Subscribe => Packet::Subscribe(decode_subscribe(body, version)?),
            PacketType::Suback => Packet::Suback(decode_suback(body, version)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(decode_unsubscribe(body, version)?),
            PacketType::Unsuback => Packet::Unsuback(decode_unsuback(body, version)?),
            PacketType::Pingreq | PacketType::Pingresp => {
                if !body.is_empty() {
                    return malformed("PINGREQ/PINGRESP must have no body");
                }
                if ty == PacketType::Pingreq {
                    Packet::Pingreq
                } else {
                    Packet::Pingresp
                }
            }
            PacketType::Disconnect => Packet::Disconnect(decode_disconnect(body, version)?),
            PacketType::Auth => Packet::Auth(decode_auth(body, version)?),
        })
    }
}

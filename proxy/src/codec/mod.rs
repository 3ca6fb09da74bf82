//! MQTT 3.1, 3.1.1 and 5 codec: framing, strict validation, zero-copy views, encoders.
//!
//! This module is moat's security boundary. Policy is applied to what this codec says a
//! packet contains; if it read bytes differently from the broker, policy could be bypassed.
//! So it accepts exactly one spelling of each packet: minimal lengths, no trailing bytes,
//! reserved bits zero, every property checked against the spec's table. It never panics on
//! input and decodes PUBLISH without allocating.
//!
//! Layout: `frame` (splitting), `reader` (wire primitives), `properties` (v5 property table),
//! `topic` (name/filter grammar), one file per packet family for decoding, `encode` for every
//! packet moat sends, `reason` for the reason-code table, `error` for the error type.
//!
//! Decisions where the spec or the contract left room (strict side chosen unless noted):
//! - Packet type 0 is refused by `split_frame` (a frame must have a type); AUTH (15) splits in
//!   every version and is refused by `decode` before MQTT 5.
//! - A partial remaining length already refused as too large when its lower bound exceeds
//!   the limit; four continuation bytes are malformed without waiting for a fifth.
//! - Client-identifier refusals (v3.1 length 1..23, v3.1.1 empty id without clean session) are
//!   `Protocol(CLIENT_ID_REJECTED)`, whose reason code is `ClientIdentifierNotValid` so 3.1.x
//!   CONNACK gets return code 2 as the spec requires.
//! - Protocol name and level must match ("MQIsdp"+3, "MQTT"+4/5), else `BadProtocolName`;
//!   a known name with another level is `UnsupportedVersion(level)`.
//! - v5 CONNACK must carry a property length; v5 AUTH is either empty or reason + property
//!   length (a lone reason byte is malformed) and must name an Authentication Method.
//! - Authentication Data without Authentication Method, and a Response Topic that is not a
//!   valid topic name, are refused wherever they appear.
//! - 3.1 SUBACK accepts 0x80 like 3.1.1 (brokers send it to 3.1 clients in practice).
//! - Direction-dependent rules (e.g. a client must not send Subscription Identifier in
//!   PUBLISH, Topic Alias within the negotiated maximum) are session state: the caller's.
//! - Payload Format Indicator = 1 does not trigger UTF-8 validation of the payload (the spec
//!   makes that optional, and it would cost a pass over every payload).
//! - v5 encoders replace a reason code the spec does not allow in that packet by the nearest
//!   allowed one (see `encode::v5_code`), so moat never emits a packet its peer must reject.
//!
//! The lints below make "no panic reachable from input" mechanical outside tests: no
//! `unwrap`/`expect`/`panic!`, no slice indexing (every access goes through `get` or the
//! bounds-checked `Reader`), no unchecked arithmetic that could wrap on hostile lengths.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::arithmetic_side_effects
    )
)]

mod ack;
mod auth_disconnect;
mod connack;
mod connect;
mod encode;
mod error;
mod frame;
mod packet;
mod properties;
mod publish;
mod reader;
mod reason;
mod subscribe;
mod topic;
mod types;

#[cfg(test)]
mod tests;

pub use ack::Ack;
pub use auth_disconnect::{Auth, Disconnect};
pub use connack::Connack;
pub use connect::{Connect, Will};
pub use encode::{
    encode_ack, encode_auth, encode_connack, encode_connect, encode_disconnect, encode_packet,
    encode_pingreq, encode_pingresp, encode_publish, encode_suback, encode_subscribe, encode_unsubscribe,
};
pub use error::{CodecError, CLIENT_ID_REJECTED};
pub use frame::{split_frame, Frame, Split};
pub use packet::Packet;
pub use properties::{Properties, PropertiesBuilder, Property, PropertyIter};
pub use publish::Publish;
pub use reader::VARINT_MAX;
pub use reason::ReasonCode;
pub use subscribe::{
    Suback, Subscribe, SubscribeFilters, SubscriptionOptions, Unsubscribe, UnsubscribeFilters,
};
pub use topic::{split_shared, validate_topic_filter, validate_topic_name};
pub use types::{PacketType, ProtocolVersion, QoS};

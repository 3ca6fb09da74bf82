//! MQTT 3.1, 3.1.1 and 5 codec: framing, strict validation, zero-copy views, encoders.
//!
//! This module is moat's security boundary. Policy is applied to what this codec says a
//! packet contains; if it read bytes differently from the broker, policy could be bypassed.
//! So it accepts exactly one spelling of each packet: minimal lengths, no trailing bytes,
//! reserved bits zero, every property checked against the spec's table. It never panics on
//! input and decodes PUBLISH without allocating.
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
    encode_ack, encode_auth, encode_connack, encode_connect, encode_disconnect, encode_pingreq,
    encode_pingresp, encode_publish, encode_suback, encode_subscribe, encode_unsubscribe,
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

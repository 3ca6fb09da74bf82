//! PUBLISH: the hot path. Decoding borrows everything and slices the payload out of the
//! frame's `Bytes` (a reference-count bump), so it never copies or allocates.

use bytes::Bytes;

use super::error::{malformed, protocol, CodecError};
use super::frame::Frame;
use super::properties::{read_properties, PropCtx, Properties};
use super::reader::Reader;
use super::topic::topic_name_from_wire;
use super::types::{ProtocolVersion, QoS};

/// A decoded PUBLISH. Fields are public so the proxy can copy-and-modify before
/// `encode_publish`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be "" in v5 when a Topic Alias property is present.
    pub topic: &'a str,
    /// Present iff QoS > 0 (and then non-zero).
    pub packet_id: Option<u16>,
    pub properties: Properties<'a>,
    /// `frame.bytes().slice(..)`: shares the frame's buffer.
    pub payload: Bytes,
}

#[inline]
pub(crate) fn decode_publish(frame: &Frame, version: ProtocolVersion) -> Result<Publish<'_>, CodecError> {
    let flags = frame.flags();
    let dup = flags & 0x08 != 0;
    let retain = flags & 0x01 != 0;
    let Some(qos) = QoS::from_u8((flags >> 1) & 0x03) else {
        return malformed("PUBLISH QoS 3");
    };
    if dup && qos == QoS::AtMostOnce {
        // MQTT-3.3.1-2: DUP must be 0 for QoS 0.
        return protocol("PUBLISH DUP set with QoS 0");
    }
    let mut r = Reader::new(frame.body());
    let raw_topic = r.binary()?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        let id = r.u16()?;
        if id == 0 {
            return protocol("packet identifier 0");
        }
        Some(id)
    };
    let properties =
        if version.is_v5() { read_properties(&mut r, PropCtx::Publish)? } else { Properties::default() };
    // An empty topic is only meaningful in v5 with a Topic Alias; whether the alias is known
    // is session state and is the caller's check.
    let topic = if raw_topic.is_empty() && version.is_v5() && properties.topic_alias().is_some() {
        ""
    } else {
        topic_name_from_wire(raw_topic)?
    };
    let start = frame.header_len().saturating_add(r.pos());
    let payload = if start < frame.len() { frame.bytes().slice(start..) } else { Bytes::new() };
    Ok(Publish { dup, qos, retain, topic, packet_id, properties, payload })
}

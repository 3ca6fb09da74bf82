//! PUBACK, PUBREC, PUBREL, PUBCOMP (same layout, different allowed reason codes).

use super::error::{malformed, protocol, CodecError};
use super::properties::{read_properties, PropCtx, Properties};
use super::reader::Reader;
use super::reason::valid_v5;
use super::types::{PacketType, ProtocolVersion};

/// A decoded PUBACK/PUBREC/PUBREL/PUBCOMP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    pub packet_id: u16,
    /// Reason code; 0 when absent (always 0 in 3.1.x).
    pub reason: u8,
    pub properties: Properties<'a>,
}

/// Read a non-zero packet identifier (MQTT-2.2.1-3).
pub(crate) fn packet_id(r: &mut Reader<'_>) -> Result<u16, CodecError> {
    let id = r.u16()?;
    if id == 0 {
        return protocol("packet identifier 0");
    }
    Ok(id)
}

pub(crate) fn decode_ack(
    body: &[u8],
    version: ProtocolVersion,
    kind: PacketType,
) -> Result<Ack<'_>, CodecError> {
    let mut r = Reader::new(body);
    let packet_id = packet_id(&mut r)?;
    if !version.is_v5() {
        // 3.1.x acks are exactly the 2-byte packet id: anything more would be a v5 reason
        // code the broker does not expect.
        if !r.is_empty() {
            return malformed("3.1.x ack longer than 2 bytes");
        }
        return Ok(Ack { packet_id, reason: 0, properties: Properties::default() });
    }
    // v5: reason code and property length may each be omitted (remaining length 2 / 3).
    let reason = if r.is_empty() { 0 } else { r.u8()? };
    if !valid_v5(kind, reason) {
        return protocol("reason code not allowed in this ack");
    }
    let properties =
        if r.is_empty() { Properties::default() } else { read_properties(&mut r, PropCtx::PubAck)? };
    r.finish()?;
    Ok(Ack { packet_id, reason, properties })
}

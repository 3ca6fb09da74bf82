//! CONNACK.

use super::error::{malformed, protocol, CodecError};
use super::properties::{read_properties, PropCtx, Properties};
use super::reader::Reader;
use super::reason::valid_v5;
use super::types::{PacketType, ProtocolVersion};

/// A decoded CONNACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connack<'a> {
    pub session_present: bool,
    /// Raw code: the 3.1.x return code (0..=5) or the v5 reason code.
    pub code: u8,
    pub properties: Properties<'a>,
}

pub(crate) fn decode_connack(body: &[u8], version: ProtocolVersion) -> Result<Connack<'_>, CodecError> {
    let mut r = Reader::new(body);
    let ack_flags = r.u8()?;
    if ack_flags & 0xFE != 0 {
        return malformed("CONNACK reserved acknowledge flags set");
    }
    let session_present = ack_flags & 0x01 != 0;
    let code = r.u8()?;
    let properties = if version.is_v5() {
        if !valid_v5(PacketType::Connack, code) {
            return protocol("invalid CONNACK reason code");
        }
        read_properties(&mut r, PropCtx::Connack)?
    } else {
        if code > 5 {
            return protocol("invalid CONNACK return code");
        }
        Properties::default()
    };
    r.finish()?;
    // MQTT-3.2.2-4 (3.1.1) / MQTT-3.2.2-6 (5): a refusal never has a session.
    if session_present && code != 0 {
        return protocol("session present with non-zero CONNACK code");
    }
    Ok(Connack { session_present, code, properties })
}

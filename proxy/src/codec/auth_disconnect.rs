//! DISCONNECT and AUTH: reason code + properties, both omittable.

use super::error::{malformed, protocol, CodecError};
use super::properties::{read_properties, PropCtx, Properties};
use super::reader::Reader;
use super::reason::valid_v5;
use super::types::{PacketType, ProtocolVersion};

/// A decoded DISCONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect<'a> {
    /// 0 (normal disconnection) when absent, always 0 in 3.1.x.
    pub reason: u8,
    pub properties: Properties<'a>,
}

/// A decoded AUTH (v5 only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth<'a> {
    /// 0 (success) when absent.
    pub reason: u8,
    pub properties: Properties<'a>,
}

pub(crate) fn decode_disconnect(body: &[u8], version: ProtocolVersion) -> Result<Disconnect<'_>, CodecError> {
    if !version.is_v5() {
        if !body.is_empty() {
            return malformed("3.1.x DISCONNECT must have no body");
        }
        return Ok(Disconnect { reason: 0, properties: Properties::default() });
    }
    let mut r = Reader::new(body);
    let reason = if r.is_empty() { 0 } else { r.u8()? };
    if !valid_v5(PacketType::Disconnect, reason) {
        return protocol("reason code not allowed in DISCONNECT");
    }
    let properties =
        if r.is_empty() { Properties::default() } else { read_properties(&mut r, PropCtx::Disconnect)? };
    r.finish()?;
    Ok(Disconnect { reason, properties })
}

pub(crate) fn decode_auth(body: &[u8], version: ProtocolVersion) -> Result<Auth<'_>, CodecError> {
    if !version.is_v5() {
        // Packet type 15 is reserved in 3.1.x.
        return malformed("AUTH is reserved before MQTT 5");
    }
    if body.is_empty() {
        return Ok(Auth { reason: 0, properties: Properties::default() });
    }
    let mut r = Reader::new(body);
    let reason = r.u8()?;
    if !valid_v5(PacketType::Auth, reason) {
        return protocol("reason code not allowed in AUTH");
    }
    // Unlike DISCONNECT, the spec only allows omitting both fields together (remaining
    // length 0), so a reason code must be followed by a property length.
    let properties = read_properties(&mut r, PropCtx::Auth)?;
    r.finish()?;
    if properties.authentication_method().is_none() {
        // MQTT 3.15.2.2.2: omitting the Authentication Method is a Protocol Error.
        return protocol("AUTH without authentication method");
    }
    Ok(Auth { reason, properties })
}

//! CONNECT: the only packet that carries its own protocol version.

use super::error::{malformed, protocol, CodecError, CLIENT_ID_REJECTED};
use super::properties::{read_properties, PropCtx, Properties};
use super::reader::Reader;
use super::topic::validate_topic_name;
use super::types::{ProtocolVersion, QoS};

/// A decoded CONNECT. Fields are public so the proxy can copy-and-modify (e.g. rewrite the
/// client id or strip credentials) before `encode_connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: ProtocolVersion,
    /// Clean Session (3.1.x) / Clean Start (5).
    pub clean_start: bool,
    pub keep_alive: u16,
    pub properties: Properties<'a>,
    pub client_id: &'a str,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

/// The Will message of a CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will<'a> {
    pub properties: Properties<'a>,
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
}

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

/// Longest client id a v3.1 server accepts (MQTT 3.1 section 3.1).
const V31_MAX_CLIENT_ID: usize = 23;

/// Map the protocol name/level pair to a version. The name must match the level exactly:
/// "MQIsdp" only with 3, "MQTT" only with 4 and 5.
fn version_of(name: &[u8], level: u8) -> Result<ProtocolVersion, CodecError> {
    let Some(version) = ProtocolVersion::from_level(level) else {
        return if name == b"MQTT" || name == b"MQIsdp" {
            Err(CodecError::UnsupportedVersion(level))
        } else {
            Err(CodecError::BadProtocolName)
        };
    };
    if name != version.protocol_name().as_bytes() {
        return Err(CodecError::BadProtocolName);
    }
    Ok(version)
}

pub(crate) fn decode_connect(body: &[u8]) -> Result<Connect<'_>, CodecError> {
    let mut r = Reader::new(body);
    let name = r.binary()?;
    let level = r.u8()?;
    let version = version_of(name, level)?;
    let flags = r.u8()?;
    if flags & FLAG_RESERVED != 0 {
        return malformed("CONNECT reserved flag set");
    }
    let will_flag = flags & FLAG_WILL != 0;
    let will_qos_bits = (flags >> 3) & 0x03;
    let will_retain = flags & FLAG_WILL_RETAIN != 0;
    let Some(will_qos) = QoS::from_u8(will_qos_bits) else {
        return malformed("will QoS 3");
    };
    if !will_flag && (will_qos_bits != 0 || will_retain) {
        return malformed("will QoS/retain set without will flag");
    }
    let has_user = flags & FLAG_USERNAME != 0;
    let has_pass = flags & FLAG_PASSWORD != 0;
    if has_pass && !has_user && !version.is_v5() {
        return protocol("password flag without username flag");
    }
    let clean_start = flags & FLAG_CLEAN != 0;
    let keep_alive = r.u16()?;
    let properties =
        if version.is_v5() { read_properties(&mut r, PropCtx::Connect)? } else { Properties::default() };
    let client_id = r.utf8()?;
    match version {
        ProtocolVersion::V31 => {
            if client_id.is_empty() || client_id.len() > V31_MAX_CLIENT_ID {
                return protocol(CLIENT_ID_REJECTED);
            }
        }
        ProtocolVersion::V311 => {
            // MQTT-3.1.3-8: zero-byte client id requires clean session.
            if client_id.is_empty() && !clean_start {
                return protocol(CLIENT_ID_REJECTED);
            }
        }
        ProtocolVersion::V5 => {}
    }
    let will = if will_flag {
        let properties =
            if version.is_v5() { read_properties(&mut r, PropCtx::Will)? } else { Properties::default() };
        let topic = r.utf8()?;
        validate_topic_name(topic)?;
        let payload = r.binary()?;
        Some(Will { properties, topic, payload, qos: will_qos, retain: will_retain })
    } else {
        None
    };
    let username = if has_user { Some(r.utf8()?) } else { None };
    let password = if has_pass { Some(r.binary()?) } else { None };
    r.finish()?;
    Ok(Connect { version, clean_start, keep_alive, properties, client_id, will, username, password })
}

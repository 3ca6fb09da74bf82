//! Codec errors.
//!
//! Every error maps to exactly one MQTT 5 reason code so the session layer can answer a
//! bad packet with the right CONNACK/DISCONNECT without re-classifying it.

use super::reason::ReasonCode;

/// Message of the [`CodecError::Protocol`] raised for a client identifier the spec says must
/// be answered with "identifier rejected" (v3.1 length 1..23, v3.1.1 empty id without clean
/// session). [`CodecError::reason_code`] maps it to `ClientIdentifierNotValid` so that a 3.1.x
/// CONNACK carries return code 2, as the spec demands, instead of a generic code.
pub const CLIENT_ID_REJECTED: &str = "client identifier rejected";

/// Why a byte sequence was refused. Carries only static text: building an error must not
/// allocate, since errors are on the hot path of a hostile client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes do not follow the wire grammar (MQTT 5 "Malformed Packet").
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// Well-formed bytes that break a protocol rule (MQTT 5 "Protocol Error").
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The declared packet size exceeds the configured maximum.
    #[error("packet too large: {size} bytes exceeds {max}")]
    TooLarge { size: usize, max: usize },
    /// CONNECT carried a protocol level this proxy does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// CONNECT carried a protocol name other than "MQTT"/"MQIsdp" (or one not matching the level).
    #[error("unsupported protocol name")]
    BadProtocolName,
}

impl CodecError {
    /// The MQTT 5 reason code to report this error with (CONNACK or DISCONNECT).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            CodecError::Malformed(_) => ReasonCode::MalformedPacket,
            CodecError::Protocol(msg) if *msg == CLIENT_ID_REJECTED => ReasonCode::ClientIdentifierNotValid,
            CodecError::Protocol(_) => ReasonCode::ProtocolError,
            CodecError::TooLarge { .. } => ReasonCode::PacketTooLarge,
            CodecError::UnsupportedVersion(_) | CodecError::BadProtocolName => {
                ReasonCode::UnsupportedProtocolVersion
            }
        }
    }

    /// Stable, low-cardinality label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CodecError::Malformed(_) => "malformed",
            CodecError::Protocol(_) => "protocol",
            CodecError::TooLarge { .. } => "too_large",
            CodecError::UnsupportedVersion(_) => "version",
            CodecError::BadProtocolName => "protocol_name",
        }
    }
}

/// Shorthand used by the decoders.
pub(crate) const fn malformed<T>(msg: &'static str) -> Result<T, CodecError> {
    Err(CodecError::Malformed(msg))
}

/// Shorthand used by the decoders.
pub(crate) const fn protocol<T>(msg: &'static str) -> Result<T, CodecError> {
    Err(CodecError::Protocol(msg))
}

//! MQTT 5 reason codes (spec table 2-6), their 3.1.1 CONNACK equivalents, and the set of codes
//! each packet type may carry. Kept in one table so that an audit of "which code can moat
//! send/accept where" reads one file.

use super::types::PacketType;

/// An MQTT 5 reason code. Values shared by several names in the spec (0x00 is Success,
/// Normal disconnection and Granted QoS 0) appear once; see the associated constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReasonCode {
    /// Success / Normal disconnection / Granted QoS 0.
    Success = 0x00,
    GrantedQos1 = 0x01,
    GrantedQos2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QosNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

/// One row per code: (code, 3.1.1 CONNACK return code, packets it is valid in as a bit set of
/// `1 << PacketType as u8`). The 3.1.1 column gives the nearest 3.1.1 return code (0..=5);
/// codes with no meaningful equivalent map to 3 "server unavailable", the only generic refusal
/// 3.1.1 has (for malformed packets 3.1.1 expects the connection to be closed without CONNACK:
/// that is the caller's choice).
const TABLE: &[(ReasonCode, u8, u16)] = {
    use ReasonCode::*;
    const CONNACK: u16 = 1 << 2;
    const PUBACK: u16 = 1 << 4;
    const PUBREC: u16 = 1 << 5;
    const PUBREL: u16 = 1 << 6;
    const PUBCOMP: u16 = 1 << 7;
    const SUBACK: u16 = 1 << 9;
    const UNSUBACK: u16 = 1 << 11;
    const DISCONNECT: u16 = 1 << 14;
    const AUTH: u16 = 1 << 15;
    &[
        (Success, 0, CONNACK | PUBACK | PUBREC | PUBREL | PUBCOMP | SUBACK | UNSUBACK | DISCONNECT | AUTH),
        (GrantedQos1, 3, SUBACK),
        (GrantedQos2, 3, SUBACK),
        (DisconnectWithWillMessage, 3, DISCONNECT),
        (NoMatchingSubscribers, 3, PUBACK | PUBREC),
        (NoSubscriptionExisted, 3, UNSUBACK),
        (ContinueAuthentication, 3, AUTH),
        (ReAuthenticate, 3, AUTH),
        (UnspecifiedError, 3, CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT),
        (MalformedPacket, 3, CONNACK | DISCONNECT),
        (ProtocolError, 3, CONNACK | DISCONNECT),
        (ImplementationSpecificError, 3, CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT),
        (UnsupportedProtocolVersion, 1, CONNACK),
        (ClientIdentifierNotValid, 2, CONNACK),
        (BadUserNameOrPassword, 4, CONNACK),
        (NotAuthorized, 5, CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT),
        (ServerUnavailable, 3, CONNACK),
        (ServerBusy, 3, CONNACK | DISCONNECT),
        (Banned, 5, CONNACK),
        (ServerShuttingDown, 3, DISCONNECT),
        (BadAuthenticationMethod, 4, CONNACK),
        (KeepAliveTimeout, 3, DISCONNECT),
        (SessionTakenOver, 3, DISCONNECT),
        (TopicFilterInvalid, 3, SUBACK | UNSUBACK | DISCONNECT),
        (TopicNameInvalid, 3, CONNACK | PUBACK | PUBREC | DISCONNECT),
        (PacketIdentifierInUse, 3, PUBACK | PUBREC | SUBACK | UNSUBACK),
        (PacketIdentifierNotFound, 3, PUBREL | PUBCOMP),
        (ReceiveMaximumExceeded, 3, DISCONNECT),
        (TopicAliasInvalid, 3, DISCONNECT),
        (PacketTooLarge, 3, CONNACK | DISCONNECT),
        (MessageRateTooHigh, 3, DISCONNECT),
        (QuotaExceeded, 3, CONNACK | PUBACK | PUBREC | SUBACK | DISCONNECT),
        (AdministrativeAction, 3, DISCONNECT),
        (PayloadFormatInvalid, 3, CONNACK | PUBACK | PUBREC | DISCONNECT),
        (RetainNotSupported, 3, CONNACK | DISCONNECT),
        (QosNotSupported, 3, CONNACK | DISCONNECT),
        (UseAnotherServer, 3, CONNACK | DISCONNECT),
        (ServerMoved, 3, CONNACK | DISCONNECT),
        (SharedSubscriptionsNotSupported, 3, SUBACK | DISCONNECT),
        (ConnectionRateExceeded, 3, CONNACK | DISCONNECT),
        (MaximumConnectTime, 3, DISCONNECT),
        (SubscriptionIdentifiersNotSupported, 3, SUBACK | DISCONNECT),
        (WildcardSubscriptionsNotSupported, 3, SUBACK | DISCONNECT),
    ]
};

impl ReasonCode {
    /// "Normal disconnection" shares 0x00 with Success.
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode::Success;
    /// "Granted QoS 0" shares 0x00 with Success.
    pub const GRANTED_QOS0: ReasonCode = ReasonCode::Success;

    fn row(self) -> Option<&'static (ReasonCode, u8, u16)> {
        TABLE.iter().find(|r| r.0 == self)
    }

    /// The code for a raw byte, if it is one the spec defines.
    pub fn from_u8(b: u8) -> Option<Self> {
        TABLE.iter().find(|r| r.0 as u8 == b).map(|r| r.0)
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// 3.1.1 CONNACK return code: 0 accepted, 1 bad version, 2 id rejected, 3 server
    /// unavailable, 4 bad user/password, 5 not authorized; everything else maps to the nearest
    /// (see the table above).
    pub fn connack_v3(self) -> u8 {
        self.row().map_or(3, |r| r.1)
    }

    /// The v5 reason code that best represents a 3.1.1 CONNACK return code (used when a
    /// 3.1.1 broker's answer has to be reported or translated).
    pub fn from_connack_v3(code: u8) -> Option<Self> {
        Some(match code {
            0 => ReasonCode::Success,
            1 => ReasonCode::UnsupportedProtocolVersion,
            2 => ReasonCode::ClientIdentifierNotValid,
            3 => ReasonCode::ServerUnavailable,
            4 => ReasonCode::BadUserNameOrPassword,
            5 => ReasonCode::NotAuthorized,
            _ => return None,
        })
    }

    /// Codes >= 0x80 signal failure.
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// Whether the spec allows this code in a packet of type `kind` (MQTT 5). Used both to
    /// validate incoming acks and to keep moat from emitting a code the peer must reject.
    pub fn allowed_in(self, kind: PacketType) -> bool {
        self.row().is_some_and(|r| r.2 & (1u16 << (kind as u8)) != 0)
    }
}

/// Validate a raw v5 reason byte for packet `kind`.
pub(crate) fn valid_v5(kind: PacketType, code: u8) -> bool {
    ReasonCode::from_u8(code).is_some_and(|c| c.allowed_in(kind))
}

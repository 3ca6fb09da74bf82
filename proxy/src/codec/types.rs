//! Small enums shared by every packet: protocol version, packet type, QoS.

/// MQTT protocol level as negotiated by CONNECT. Every decode after CONNECT is done against
/// the session's version, because the same bytes mean different things in 3.1.x and 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// Protocol level 3, protocol name "MQIsdp".
    V31,
    /// Protocol level 4, protocol name "MQTT".
    V311,
    /// Protocol level 5, protocol name "MQTT".
    V5,
}

impl ProtocolVersion {
    /// Map a CONNECT protocol level byte.
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            3 => Some(Self::V31),
            4 => Some(Self::V311),
            5 => Some(Self::V5),
            _ => None,
        }
    }

    /// The CONNECT protocol level byte.
    pub fn level(self) -> u8 {
        match self {
            Self::V31 => 3,
            Self::V311 => 4,
            Self::V5 => 5,
        }
    }

    /// True for MQTT 5 (properties and reason codes exist).
    pub fn is_v5(self) -> bool {
        self == Self::V5
    }

    /// The protocol name CONNECT must carry for this level.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Self::V31 => "MQIsdp",
            Self::V311 | Self::V5 => "MQTT",
        }
    }
}

/// Control packet type (high nibble of the first byte). 0 is reserved and never represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect = 1,
    Connack,
    Publish,
    Puback,
    Pubrec,
    Pubrel,
    Pubcomp,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Pingreq,
    Pingresp,
    Disconnect,
    Auth,
}

impl PacketType {
    /// From the high nibble of byte 0; `None` for the reserved value 0 (and anything > 15).
    pub fn from_nibble(n: u8) -> Option<Self> {
        use PacketType::*;
        Some(match n {
            1 => Connect,
            2 => Connack,
            3 => Publish,
            4 => Puback,
            5 => Pubrec,
            6 => Pubrel,
            7 => Pubcomp,
            8 => Subscribe,
            9 => Suback,
            10 => Unsubscribe,
            11 => Unsuback,
            12 => Pingreq,
            13 => Pingresp,
            14 => Disconnect,
            15 => Auth,
            _ => return None,
        })
    }

    /// Lower-case name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        use PacketType::*;
        match self {
            Connect => "connect",
            Connack => "connack",
            Publish => "publish",
            Puback => "puback",
            Pubrec => "pubrec",
            Pubrel => "pubrel",
            Pubcomp => "pubcomp",
            Subscribe => "subscribe",
            Suback => "suback",
            Unsubscribe => "unsubscribe",
            Unsuback => "unsuback",
            Pingreq => "pingreq",
            Pingresp => "pingresp",
            Disconnect => "disconnect",
            Auth => "auth",
        }
    }

    /// The only fixed-header flag nibble the spec allows for this type (PUBLISH excepted,
    /// whose flags carry DUP/QoS/RETAIN and are checked by the PUBLISH decoder).
    pub fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::Pubrel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

/// Quality of service level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// `None` for the invalid value 3 (and anything larger).
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// Wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

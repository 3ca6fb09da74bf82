//! MQTT 5 properties: one-pass validation at decode, lazy iteration afterwards.
//!
//! A property block is validated once, without allocating, against the spec's property table
//! (which packet may carry which property, which may repeat, value ranges). The view then keeps
//! only the raw slice; iteration re-parses it and cannot fail. This keeps PUBLISH decoding
//! allocation-free while still refusing anything the broker might read differently.

use super::error::{malformed, protocol, CodecError};
use super::reader::{varint_bytes, Reader, VARINT_MAX};
use super::topic::validate_topic_name;

/// Where a property block sits; decides which properties are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PropCtx {
    Connect = 0,
    Will,
    Connack,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    PubAck,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Disconnect,
    Auth,
    /// No packet context: every property allowed, single-use ones at most once (except
    /// Subscription Identifier, which PUBLISH may repeat).
    Any,
}

const fn bit(c: PropCtx) -> u16 {
    1 << (c as u8)
}

/// Value encoding of a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A byte that must be 0 or 1.
    Bool,
    U16,
    U32,
    Varint,
    Utf8,
    Binary,
    Pair,
}

/// Static description of a property identifier.
struct Spec {
    kind: Kind,
    /// Contexts it may appear in.
    allowed: u16,
    /// Contexts it may appear in more than once.
    repeat: u16,
    /// Zero is not a valid value (Receive Maximum, Maximum Packet Size, Topic Alias,
    /// Subscription Identifier).
    nonzero: bool,
}

/// The spec's property table (MQTT 5 section 2.2.2.2).
fn spec(id: u8) -> Option<Spec> {
    use PropCtx::*;
    let s = |kind, allowed, nonzero| Spec { kind, allowed, repeat: 0, nonzero };
    let msg = bit(Publish) | bit(Will);
    let reason_str = bit(Connack) | bit(PubAck) | bit(Suback) | bit(Unsuback) | bit(Disconnect) | bit(Auth);
    Some(match id {
        0x01 => s(Kind::Bool, msg, false),
        0x02 => s(Kind::U32, msg, false),
        0x03 => s(Kind::Utf8, msg, false),
        0x08 => s(Kind::Utf8, msg, false),
        0x09 => s(Kind::Binary, msg, false),
        0x0B => Spec {
            kind: Kind::Varint,
            allowed: bit(Publish) | bit(Subscribe),
            repeat: bit(Publish),
            nonzero: true,
        },
        0x11 => s(Kind::U32, bit(Connect) | bit(Connack) | bit(Disconnect), false),
        0x12 => s(Kind::Utf8, bit(Connack), false),
        0x13 => s(Kind::U16, bit(Connack), false),
        0x15 => s(Kind::Utf8, bit(Connect) | bit(Connack) | bit(Auth), false),
        0x16 => s(Kind::Binary, bit(Connect) | bit(Connack) | bit(Auth), false),
        0x17 => s(Kind::Bool, bit(Connect), false),
        0x18 => s(Kind::U32, bit(Will), false),
        0x19 => s(Kind::Bool, bit(Connect), false),
        0x1A => s(Kind::Utf8, bit(Connack), false),
        0x1C => s(Kind::Utf8, bit(Connack) | bit(Disconnect), false),
        0x1F => s(Kind::Utf8, reason_str, false),
        0x21 => s(Kind::U16, bit(Connect) | bit(Connack), true),
        0x22 => s(Kind::U16, bit(Connect) | bit(Connack), false),
        0x23 => s(Kind::U16, bit(Publish), true),
        0x24 => s(Kind::Bool, bit(Connack), false),
        0x25 => s(Kind::Bool, bit(Connack), false),
        0x26 => Spec {
            kind: Kind::Pair,
            allowed: 0x7FF, // every context
            repeat: 0x7FF,
            nonzero: false,
        },
        0x27 => s(Kind::U32, bit(Connect) | bit(Connack), true),
        0x28 => s(Kind::Bool, bit(Connack), false),
        0x29 => s(Kind::Bool, bit(Connack), false),
        0x2A => s(Kind::Bool, bit(Connack), false),
        _ => return None,
    })
}

const RESPONSE_TOPIC: u32 = 0x08;
const AUTH_METHOD: u32 = 0x15;
const AUTH_DATA: u32 = 0x16;

/// Read the property-length varint and the block it announces, validating every property.
/// The declared length must be consumed exactly by whole properties.
#[inline]
pub(crate) fn read_properties<'a>(r: &mut Reader<'a>, ctx: PropCtx) -> Result<Properties<'a>, CodecError> {
    let len = r.varint()?;
    let raw = r.take(len as usize)?;
    validate(raw, ctx)?;
    Ok(Properties { raw })
}

/// One pass over a property block: identifiers known and allowed here, single-use ones not
/// repeated, values in range. Uses a 64-bit set (identifiers are < 64) instead of a collection.
fn validate(raw: &[u8], ctx: PropCtx) -> Result<(), CodecError> {
    let mut r = Reader::new(raw);
    let mut seen: u64 = 0;
    let here = bit(ctx);
    let any = ctx == PropCtx::Any;
    while !r.is_empty() {
        // Identifiers are Variable Byte Integers; all defined ones fit in one byte, so a
        // multi-byte identifier is unknown and refused.
        let id = r.varint()?;
        let Some(spec) = u8::try_from(id).ok().and_then(spec) else {
            return malformed("unknown property identifier");
        };
        if spec.allowed & here == 0 && !any {
            return protocol("property not allowed in this packet");
        }
        let mask = 1u64 << (id & 63);
        let may_repeat = if any { spec.repeat != 0 } else { spec.repeat & here != 0 };
        if seen & mask != 0 && !may_repeat {
            return protocol("property appears more than once");
        }
        seen |= mask;
        let numeric: u32 = match spec.kind {
            Kind::Bool => {
                let v = r.u8()?;
                if v > 1 {
                    return protocol("property value must be 0 or 1");
                }
                1
            }
            Kind::U16 => u32::from(r.u16()?),
            Kind::U32 => r.u32()?,
            Kind::Varint => r.varint()?,
            Kind::Utf8 => {
                let text = r.utf8()?;
                if id == RESPONSE_TOPIC {
                    // MQTT-3.3.2-14: a Response Topic is a topic name (no wildcards), and the
                    // ACL may be asked to authorise it.
                    validate_topic_name(text)?;
                }
                1
            }
            Kind::Binary => {
                r.binary()?;
                1
            }
            Kind::Pair => {
                r.utf8()?;
                r.utf8()?;
                1
            }
        };
        if spec.nonzero && numeric == 0 {
            return protocol("property value must not be zero");
        }
    }
    if seen & (1 << AUTH_DATA) != 0 && seen & (1 << AUTH_METHOD) == 0 {
        // MQTT 3.1.2.11.10 / 3.2.2.3.18 / 3.15.2.2.3: data without a method is a Protocol Error.
        return protocol("authentication data without authentication method");
    }
    Ok(())
}

/// Validated v5 property block (empty for 3.1.x). Iteration never fails (validated at decode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Properties<'a> {
    raw: &'a [u8],
}

impl<'a> Properties<'a> {
    /// No properties.
    pub const EMPTY: Properties<'static> = Properties { raw: &[] };

    /// Wrap an already-encoded property block (e.g. from `PropertiesBuilder`) so it can be put
    /// in a view such as `Connect` for re-encoding. Checks the grammar and value ranges; which
    /// properties suit which packet is not known here and stays the caller's responsibility.
    pub fn from_raw(raw: &'a [u8]) -> Result<Properties<'a>, CodecError> {
        validate(raw, PropCtx::Any)?;
        Ok(Properties { raw })
    }

    /// Bytes after the property-length varint (pass to an encoder to forward unchanged).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// True if the block is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Iterate over the properties in wire order.
    pub fn iter(&self) -> PropertyIter<'a> {
        PropertyIter { r: Reader::new(self.raw) }
    }

    fn find<T>(&self, f: impl Fn(Property<'a>) -> Option<T>) -> Option<T> {
        self.iter().find_map(f)
    }

    pub fn topic_alias(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::TopicAlias(v) => Some(v),
            _ => None,
        })
    }
    pub fn topic_alias_maximum(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::TopicAliasMaximum(v) => Some(v),
            _ => None,
        })
    }
    pub fn maximum_packet_size(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::MaximumPacketSize(v) => Some(v),
            _ => None,
        })
    }
    pub fn receive_maximum(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::ReceiveMaximum(v) => Some(v),
            _ => None,
        })
    }
    pub fn assigned_client_identifier(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::AssignedClientIdentifier(v) => Some(v),
            _ => None,
        })
    }
    pub fn server_keep_alive(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::ServerKeepAlive(v) => Some(v),
            _ => None,
        })
    }
    pub fn authentication_method(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::AuthenticationMethod(v) => Some(v),
            _ => None,
        })
    }
    pub fn session_expiry_interval(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::SessionExpiryInterval(v) => Some(v),
            _ => None,
        })
    }
    pub fn reason_string(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::ReasonString(v) => Some(v),
            _ => None,
        })
    }
    pub fn maximum_qos(&self) -> Option<u8> {
        self.find(|p| match p {
            Property::MaximumQos(v) => Some(v),
            _ => None,
        })
    }
    pub fn retain_available(&self) -> Option<u8> {
        self.find(|p| match p {
            Property::RetainAvailable(v) => Some(v),
            _ => None,
        })
    }
    pub fn payload_format_indicator(&self) -> Option<u8> {
        self.find(|p| match p {
            Property::PayloadFormatIndicator(v) => Some(v),
            _ => None,
        })
    }
    pub fn response_topic(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::ResponseTopic(v) => Some(v),
            _ => None,
        })
    }
    /// Subscription identifiers (several may appear in a PUBLISH).
    pub fn subscription_identifiers(&self) -> impl Iterator<Item = u32> + 'a {
        self.iter().filter_map(|p| match p {
            Property::SubscriptionIdentifier(v) => Some(v),
            _ => None,
        })
    }
    /// User properties in wire order.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.iter().filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k, v)),
            _ => None,
        })
    }
}

impl<'a> IntoIterator for Properties<'a> {
    type Item = Property<'a>;
    type IntoIter = PropertyIter<'a>;
    fn into_iter(self) -> PropertyIter<'a> {
        self.iter()
    }
}

/// One MQTT 5 property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Property<'a> {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(&'a str),
    ResponseTopic(&'a str),
    CorrelationData(&'a [u8]),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(&'a str),
    ServerKeepAlive(u16),
    AuthenticationMethod(&'a str),
    AuthenticationData(&'a [u8]),
    RequestProblemInformation(u8),
    WillDelayInterval(u32),
    RequestResponseInformation(u8),
    ResponseInformation(&'a str),
    ServerReference(&'a str),
    ReasonString(&'a str),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQos(u8),
    RetainAvailable(u8),
    UserProperty(&'a str, &'a str),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(u8),
    SubscriptionIdentifierAvailable(u8),
    SharedSubscriptionAvailable(u8),
}

impl Property<'_> {
    /// The property identifier byte.
    pub fn id(&self) -> u8 {
        use Property::*;
        match self {
            PayloadFormatIndicator(_) => 0x01,
            MessageExpiryInterval(_) => 0x02,
            ContentType(_) => 0x03,
            ResponseTopic(_) => 0x08,
            CorrelationData(_) => 0x09,
            SubscriptionIdentifier(_) => 0x0B,
            SessionExpiryInterval(_) => 0x11,
            AssignedClientIdentifier(_) => 0x12,
            ServerKeepAlive(_) => 0x13,
            AuthenticationMethod(_) => 0x15,
            AuthenticationData(_) => 0x16,
            RequestProblemInformation(_) => 0x17,
            WillDelayInterval(_) => 0x18,
            RequestResponseInformation(_) => 0x19,
            ResponseInformation(_) => 0x1A,
            ServerReference(_) => 0x1C,
            ReasonString(_) => 0x1F,
            ReceiveMaximum(_) => 0x21,
            TopicAliasMaximum(_) => 0x22,
            TopicAlias(_) => 0x23,
            MaximumQos(_) => 0x24,
            RetainAvailable(_) => 0x25,
            UserProperty(_, _) => 0x26,
            MaximumPacketSize(_) => 0x27,
            WildcardSubscriptionAvailable(_) => 0x28,
            SubscriptionIdentifierAvailable(_) => 0x29,
            SharedSubscriptionAvailable(_) => 0x2A,
        }
    }
}

/// Lazy iterator over a validated property block.
#[derive(Clone, Debug)]
pub struct PropertyIter<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for PropertyIter<'a> {
    type Item = Property<'a>;

    fn next(&mut self) -> Option<Property<'a>> {
        if self.r.is_empty() {
            return None;
        }
        match parse_one(&mut self.r) {
            Ok(p) => Some(p),
            Err(_) => {
                // Unreachable for blocks validated at decode; stop rather than loop or panic.
                self.r = Reader::new(&[]);
                None
            }
        }
    }
}

fn parse_one<'a>(r: &mut Reader<'a>) -> Result<Property<'a>, CodecError> {
    use Property::*;
    let id = r.varint()?;
    Ok(match id {
        0x01 => PayloadFormatIndicator(r.u8()?),
        0x02 => MessageExpiryInterval(r.u32()?),
        0x03 => ContentType(r.utf8()?),
        0x08 => ResponseTopic(r.utf8()?),
        0x09 => CorrelationData(r.binary()?),
        0x0B => SubscriptionIdentifier(r.varint()?),
        0x11 => SessionExpiryInterval(r.u32()?),
        0x12 => AssignedClientIdentifier(r.utf8()?),
        0x13 => ServerKeepAlive(r.u16()?),
        0x15 => AuthenticationMethod(r.utf8()?),
        0x16 => AuthenticationData(r.binary()?),
        0x17 => RequestProblemInformation(r.u8()?),
        0x18 => WillDelayInterval(r.u32()?),
        0x19 => RequestResponseInformation(r.u8()?),
        0x1A => ResponseInformation(r.utf8()?),
        0x1C => ServerReference(r.utf8()?),
        0x1F => ReasonString(r.utf8()?),
        0x21 => ReceiveMaximum(r.u16()?),
        0x22 => TopicAliasMaximum(r.u16()?),
        0x23 => TopicAlias(r.u16()?),
        0x24 => MaximumQos(r.u8()?),
        0x25 => RetainAvailable(r.u8()?),
        0x26 => UserProperty(r.utf8()?, r.utf8()?),
        0x27 => MaximumPacketSize(r.u32()?),
        0x28 => WildcardSubscriptionAvailable(r.u8()?),
        0x29 => SubscriptionIdentifierAvailable(r.u8()?),
        0x2A => SharedSubscriptionAvailable(r.u8()?),
        _ => return malformed("unknown property identifier"),
    })
}

/// Builds an encoded property block (without the length prefix) for the encoders.
///
/// Values that cannot be encoded (strings/binary longer than 65535 bytes, subscription
/// identifiers above the varint range) are skipped rather than written corrupt; `is_valid`
/// reports whether that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertiesBuilder {
    buf: Vec<u8>,
    valid: bool,
}

impl Default for PropertiesBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PropertiesBuilder {
    pub fn new() -> Self {
        PropertiesBuilder { buf: Vec::new(), valid: true }
    }

    /// Append one property.
    pub fn push(&mut self, p: Property<'_>) -> &mut Self {
        use Property::*;
        let start = self.buf.len();
        self.buf.push(p.id());
        let ok = match p {
            PayloadFormatIndicator(v)
            | RequestProblemInformation(v)
            | RequestResponseInformation(v)
            | MaximumQos(v)
            | RetainAvailable(v)
            | WildcardSubscriptionAvailable(v)
            | SubscriptionIdentifierAvailable(v)
            | SharedSubscriptionAvailable(v) => {
                self.buf.push(v);
                true
            }
            ServerKeepAlive(v) | ReceiveMaximum(v) | TopicAliasMaximum(v) | TopicAlias(v) => {
                self.buf.extend_from_slice(&v.to_be_bytes());
                true
            }
            MessageExpiryInterval(v)
            | SessionExpiryInterval(v)
            | WillDelayInterval(v)
            | MaximumPacketSize(v) => {
                self.buf.extend_from_slice(&v.to_be_bytes());
                true
            }
            SubscriptionIdentifier(v) => {
                let (b, n) = varint_bytes(v);
                self.buf.extend_from_slice(b.get(..n).unwrap_or(&[]));
                v <= VARINT_MAX
            }
            ContentType(s)
            | ResponseTopic(s)
            | AssignedClientIdentifier(s)
            | AuthenticationMethod(s)
            | ResponseInformation(s)
            | ServerReference(s)
            | ReasonString(s) => self.put_bin(s.as_bytes()),
            CorrelationData(b) | AuthenticationData(b) => self.put_bin(b),
            UserProperty(k, v) => self.put_bin(k.as_bytes()) && self.put_bin(v.as_bytes()),
        };
        if !ok {
            self.buf.truncate(start);
            self.valid = false;
        }
        self
    }

    fn put_bin(&mut self, b: &[u8]) -> bool {
        let Ok(n) = u16::try_from(b.len()) else {
            return false;
        };
        self.buf.extend_from_slice(&n.to_be_bytes());
        self.buf.extend_from_slice(b);
        true
    }

    /// Encoded block, ready to pass as `props` to an encoder.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// False if a pushed property could not be encoded and was skipped.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.valid = true;
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

//! Encoders for every packet moat sends.
//!
//! Each appends exactly one complete packet to `out`. Property blocks come in already encoded
//! (from `PropertiesBuilder` or a decoded view's `Properties::raw`) so forwarding never
//! re-serialises what it does not need to change. 3.1.x encodings never carry properties or
//! v5 reason codes: a 3.1.x peer would treat them as malformed.
//!
//! A packet that cannot be represented (a string over 65535 bytes, a remaining length over
//! 268435455, QoS > 0 without packet id) is not written at all: `out` is left unchanged rather
//! than receiving bytes the peer would parse differently. Packets built from decoded views are
//! always representable.

use bytes::{BufMut, BytesMut};

use super::connect::Connect;
use super::packet::Packet;
use super::publish::Publish;
use super::reader::{varint_bytes, varint_len, VARINT_MAX};
use super::reason::ReasonCode;
use super::subscribe::SubscriptionOptions;
use super::types::{PacketType, ProtocolVersion, QoS};

/// Checked size accumulator: `None` once anything is unrepresentable.
#[derive(Clone, Copy)]
struct Size(Option<usize>);

impl Size {
    fn new() -> Self {
        Size(Some(0))
    }
    fn add(self, n: usize) -> Self {
        Size(self.0.and_then(|s| s.checked_add(n)))
    }
    /// A length-prefixed string or binary field.
    fn string(self, b: &[u8]) -> Self {
        if b.len() > usize::from(u16::MAX) {
            return Size(None);
        }
        self.add(2).add(b.len())
    }
    /// A property block with its varint length.
    fn props(self, p: &[u8]) -> Self {
        if p.len() > VARINT_MAX as usize {
            return Size(None);
        }
        self.add(varint_len(p.len())).add(p.len())
    }
}

/// The v5 reason byte to put in a `kind` packet. A code the spec does not allow there would
/// make the peer drop the connection as malformed, so it is replaced by the nearest allowed
/// one: errors become Unspecified error (0x80), or Packet Identifier not found for
/// PUBREL/PUBCOMP, which have no generic error; non-errors become Success. AUTH has no error
/// code at all (refuse authentication with DISCONNECT), so an error there is sent unchanged.
fn v5_code(kind: PacketType, code: ReasonCode) -> u8 {
    if code.allowed_in(kind) {
        return code.as_u8();
    }
    let fallback = if !code.is_error() {
        ReasonCode::Success
    } else if ReasonCode::UnspecifiedError.allowed_in(kind) {
        ReasonCode::UnspecifiedError
    } else if matches!(kind, PacketType::Pubrel | PacketType::Pubcomp) {
        ReasonCode::PacketIdentifierNotFound
    } else {
        code
    };
    fallback.as_u8()
}

/// Write the fixed header for a body of `size` bytes; false (nothing written) if invalid.
fn header(out: &mut BytesMut, byte0: u8, size: Size) -> bool {
    let Some(len) = size.0 else {
        return false;
    };
    let Ok(len32) = u32::try_from(len) else {
        return false;
    };
    if len32 > VARINT_MAX {
        return false;
    }
    let (b, n) = varint_bytes(len32);
    out.reserve(len.saturating_add(n).saturating_add(1));
    out.put_u8(byte0);
    out.put_slice(b.get(..n).unwrap_or(&[]));
    true
}

fn put_string(out: &mut BytesMut, b: &[u8]) {
    // Length checked by `Size::string` before the header was written.
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn put_props(out: &mut BytesMut, p: &[u8]) {
    let (b, n) = varint_bytes(p.len() as u32);
    out.put_slice(b.get(..n).unwrap_or(&[]));
    out.put_slice(p);
}

/// CONNACK. In 3.1.x the code is translated with `connack_v3()` and `props` is ignored.
/// Session present is forced to 0 for a refusal (MQTT-3.2.2-4/-6).
pub fn encode_connack(
    out: &mut BytesMut,
    v: ProtocolVersion,
    session_present: bool,
    code: ReasonCode,
    props: &[u8],
) {
    if v.is_v5() {
        let code = v5_code(PacketType::Connack, code);
        let sp = session_present && code == 0;
        if header(out, 0x20, Size::new().add(2).props(props)) {
            out.put_u8(u8::from(sp));
            out.put_u8(code);
            put_props(out, props);
        }
    } else {
        let rc = code.connack_v3();
        let sp = session_present && rc == 0;
        out.put_slice(&[0x20, 0x02, u8::from(sp), rc]);
    }
}

/// PUBACK/PUBREC/PUBREL/PUBCOMP. v5 uses the shortest form the spec allows (2 bytes for
/// success without properties). `kind` other than the four acks writes nothing.
pub fn encode_ack(
    out: &mut BytesMut,
    v: ProtocolVersion,
    kind: PacketType,
    packet_id: u16,
    reason: ReasonCode,
    props: &[u8],
) {
    let byte0 = match kind {
        PacketType::Puback => 0x40,
        PacketType::Pubrec => 0x50,
        PacketType::Pubrel => 0x62,
        PacketType::Pubcomp => 0x70,
        _ => return,
    };
    let reason = v5_code(kind, reason);
    if !v.is_v5() || (reason == 0 && props.is_empty()) {
        out.put_slice(&[byte0, 0x02]);
        out.put_u16(packet_id);
    } else if props.is_empty() {
        out.put_slice(&[byte0, 0x03]);
        out.put_u16(packet_id);
        out.put_u8(reason);
    } else if header(out, byte0, Size::new().add(3).props(props)) {
        out.put_u16(packet_id);
        out.put_u8(reason);
        put_props(out, props);
    }
}

/// 3.1.x SUBACK return codes are 0, 1, 2 or 0x80: every v5 failure becomes 0x80.
fn v3_suback_code(c: u8) -> u8 {
    if c <= 2 {
        c
    } else {
        0x80
    }
}

/// SUBACK or UNSUBACK. 3.1.x: SUBACK codes are mapped to 0/1/2/0x80, UNSUBACK has no payload,
/// and `props` is ignored.
pub fn encode_suback(
    out: &mut BytesMut,
    v: ProtocolVersion,
    kind: PacketType,
    packet_id: u16,
    codes: &[u8],
    props: &[u8],
) {
    let byte0 = match kind {
        PacketType::Suback => 0x90,
        PacketType::Unsuback => 0xB0,
        _ => return,
    };
    if v.is_v5() {
        if header(out, byte0, Size::new().add(2).props(props).add(codes.len())) {
            out.put_u16(packet_id);
            put_props(out, props);
            out.put_slice(codes);
        }
    } else if kind == PacketType::Unsuback {
        out.put_slice(&[byte0, 0x02]);
        out.put_u16(packet_id);
    } else if header(out, byte0, Size::new().add(2).add(codes.len())) {
        out.put_u16(packet_id);
        for &c in codes {
            out.put_u8(v3_suback_code(c));
        }
    }
}

pub fn encode_pingresp(out: &mut BytesMut) {
    out.put_slice(&[0xD0, 0x00]);
}

pub fn encode_pingreq(out: &mut BytesMut) {
    out.put_slice(&[0xC0, 0x00]);
}

/// DISCONNECT. 3.1.x: always `E0 00`. v5: shortest form for the reason and properties.
pub fn encode_disconnect(out: &mut BytesMut, v: ProtocolVersion, reason: ReasonCode, props: &[u8]) {
    let reason = v5_code(PacketType::Disconnect, reason);
    if !v.is_v5() || (reason == 0 && props.is_empty()) {
        out.put_slice(&[0xE0, 0x00]);
    } else if props.is_empty() {
        out.put_slice(&[0xE0, 0x01, reason]);
    } else if header(out, 0xE0, Size::new().add(1).props(props)) {
        out.put_u8(reason);
        put_props(out, props);
    }
}

/// AUTH (v5 only). Success without properties uses the 2-byte form.
pub fn encode_auth(out: &mut BytesMut, reason: ReasonCode, props: &[u8]) {
    let reason = v5_code(PacketType::Auth, reason);
    if reason == 0 && props.is_empty() {
        out.put_slice(&[0xF0, 0x00]);
    } else if header(out, 0xF0, Size::new().add(1).props(props)) {
        out.put_u8(reason);
        put_props(out, props);
    }
}

/// CONNECT from a (possibly modified copy of a) decoded view. Protocol name and level come
/// from `c.version`; 3.1.x never carries properties.
pub fn encode_connect(out: &mut BytesMut, c: &Connect<'_>) {
    let v5 = c.version.is_v5();
    let name = c.version.protocol_name().as_bytes();
    let mut size = Size::new().string(name).add(4);
    if v5 {
        size = size.props(c.properties.raw());
    }
    size = size.string(c.client_id.as_bytes());
    let mut flags = 0u8;
    if c.clean_start {
        flags |= 0x02;
    }
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos.as_u8() << 3);
        if w.retain {
            flags |= 0x20;
        }
        if v5 {
            size = size.props(w.properties.raw());
        }
        size = size.string(w.topic.as_bytes()).string(w.payload);
    }
    if let Some(u) = c.username {
        flags |= 0x80;
        size = size.string(u.as_bytes());
    }
    if let Some(p) = c.password {
        flags |= 0x40;
        size = size.string(p);
    }
    if !header(out, 0x10, size) {
        return;
    }
    put_string(out, name);
    out.put_u8(c.version.level());
    out.put_u8(flags);
    out.put_u16(c.keep_alive);
    if v5 {
        put_props(out, c.properties.raw());
    }
    put_string(out, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if v5 {
            put_props(out, w.properties.raw());
        }
        put_string(out, w.topic.as_bytes());
        put_string(out, w.payload);
    }
    if let Some(u) = c.username {
        put_string(out, u.as_bytes());
    }
    if let Some(p) = c.password {
        put_string(out, p);
    }
}

/// PUBLISH with the given property block (`p.properties` is ignored so the caller can strip
/// or rewrite properties; pass `p.properties.raw()` to forward them). DUP is only written for
/// QoS > 0 (MQTT-3.3.1-2). QoS > 0 without a packet id writes nothing.
pub fn encode_publish(out: &mut BytesMut, v: ProtocolVersion, p: &Publish<'_>, props: &[u8]) {
    let mut byte0 = 0x30 | (p.qos.as_u8() << 1) | u8::from(p.retain);
    let pid = match (p.qos, p.packet_id) {
        (QoS::AtMostOnce, _) => None,
        (_, Some(id)) if id != 0 => {
            if p.dup {
                byte0 |= 0x08;
            }
            Some(id)
        }
        _ => return,
    };
    let mut size = Size::new().string(p.topic.as_bytes());
    if pid.is_some() {
        size = size.add(2);
    }
    if v.is_v5() {
        size = size.props(props);
    }
    size = size.add(p.payload.len());
    if !header(out, byte0, size) {
        return;
    }
    put_string(out, p.topic.as_bytes());
    if let Some(id) = pid {
        out.put_u16(id);
    }
    if v.is_v5() {
        put_props(out, props);
    }
    out.put_slice(&p.payload);
}

/// SUBSCRIBE. 3.1.x keeps only the QoS bits of each options byte and ignores `props`.
pub fn encode_subscribe(
    out: &mut BytesMut,
    v: ProtocolVersion,
    packet_id: u16,
    props: &[u8],
    filters: &[(&str, SubscriptionOptions)],
) {
    subscribe_from(out, v, packet_id, props, filters.iter().copied());
}

/// SUBSCRIBE from any re-iterable source of filters (a slice or a decoded view's iterator), so
/// forwarding a decoded SUBSCRIBE does not collect into a Vec.
fn subscribe_from<'f>(
    out: &mut BytesMut,
    v: ProtocolVersion,
    packet_id: u16,
    props: &[u8],
    filters: impl Iterator<Item = (&'f str, SubscriptionOptions)> + Clone,
) {
    let mut size = Size::new().add(2);
    if v.is_v5() {
        size = size.props(props);
    }
    for (f, _) in filters.clone() {
        size = size.string(f.as_bytes()).add(1);
    }
    if !header(out, 0x82, size) {
        return;
    }
    out.put_u16(packet_id);
    if v.is_v5() {
        put_props(out, props);
    }
    for (f, o) in filters {
        put_string(out, f.as_bytes());
        let b = o.to_byte();
        out.put_u8(if v.is_v5() { b } else { b & 0x03 });
    }
}

/// UNSUBSCRIBE. 3.1.x ignores `props`.
pub fn encode_unsubscribe(
    out: &mut BytesMut,
    v: ProtocolVersion,
    packet_id: u16,
    props: &[u8],
    filters: &[&str],
) {
    unsubscribe_from(out, v, packet_id, props, filters.iter().copied());
}

fn unsubscribe_from<'f>(
    out: &mut BytesMut,
    v: ProtocolVersion,
    packet_id: u16,
    props: &[u8],
    filters: impl Iterator<Item = &'f str> + Clone,
) {
    let mut size = Size::new().add(2);
    if v.is_v5() {
        size = size.props(props);
    }
    for f in filters.clone() {
        size = size.string(f.as_bytes());
    }
    if !header(out, 0xA2, size) {
        return;
    }
    out.put_u16(packet_id);
    if v.is_v5() {
        put_props(out, props);
    }
    for f in filters {
        put_string(out, f.as_bytes());
    }
}

/// Re-encode a decoded packet (possibly a modified copy) for protocol version `v`, with its own
/// property blocks. Encoding a packet decoded under `v` yields an equivalent packet (the same
/// fields after decoding; byte-identical whenever the input used the shortest forms).
/// CONNECT is encoded for its own `version`.
pub fn encode_packet(out: &mut BytesMut, v: ProtocolVersion, p: &Packet<'_>) {
    let code = |c: u8| ReasonCode::from_u8(c).unwrap_or(ReasonCode::UnspecifiedError);
    match p {
        Packet::Connect(c) => encode_connect(out, c),
        Packet::Connack(c) => {
            let rc = if v.is_v5() {
                code(c.code)
            } else {
                ReasonCode::from_connack_v3(c.code).unwrap_or(ReasonCode::ServerUnavailable)
            };
            encode_connack(out, v, c.session_present, rc, c.properties.raw());
        }
        Packet::Publish(pb) => encode_publish(out, v, pb, pb.properties.raw()),
        Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a) => {
            encode_ack(out, v, p.packet_type(), a.packet_id, code(a.reason), a.properties.raw());
        }
        Packet::Subscribe(s) => {
            subscribe_from(out, v, s.packet_id, s.properties.raw(), s.filters());
        }
        Packet::Suback(s) | Packet::Unsuback(s) => {
            encode_suback(out, v, p.packet_type(), s.packet_id, s.codes, s.properties.raw())
        }
        Packet::Unsubscribe(u) => {
            unsubscribe_from(out, v, u.packet_id, u.properties.raw(), u.filters());
        }
        Packet::Pingreq => encode_pingreq(out),
        Packet::Pingresp => encode_pingresp(out),
        Packet::Disconnect(d) => encode_disconnect(out, v, code(d.reason), d.properties.raw()),
        Packet::Auth(a) => encode_auth(out, code(a.reason), a.properties.raw()),
    }
}

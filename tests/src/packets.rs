//! Hand-made MQTT packets (valid and deliberately broken) and a minimal frame parser.
//!
//! Deliberately independent of any MQTT library so the bytes are exactly what the test says.

use anyhow::{bail, Result};

pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBSCRIBE: u8 = 8;
pub const SUBACK: u8 = 9;
pub const UNSUBSCRIBE: u8 = 10;
pub const UNSUBACK: u8 = 11;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;
pub const AUTH: u8 = 15;

pub fn type_name(t: u8) -> &'static str {
    match t {
        CONNECT => "CONNECT",
        CONNACK => "CONNACK",
        PUBLISH => "PUBLISH",
        PUBACK => "PUBACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        SUBSCRIBE => "SUBSCRIBE",
        SUBACK => "SUBACK",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBACK => "UNSUBACK",
        PINGREQ => "PINGREQ",
        PINGRESP => "PINGRESP",
        DISCONNECT => "DISCONNECT",
        AUTH => "AUTH",
        _ => "RESERVED",
    }
}

/// MQTT protocol version of a hand-made connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

impl Version {
    pub fn level(self) -> u8 {
        match self {
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }
}

/// One MQTT control packet as received: fixed-header byte 1 and the body after the
/// remaining-length field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawPacket {
    pub header: u8,
    pub body: Vec<u8>,
}

impl RawPacket {
    pub fn packet_type(&self) -> u8 {
        self.header >> 4
    }

    pub fn flags(&self) -> u8 {
        self.header & 0x0f
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        packet(self.header, &self.body)
    }

    /// CONNACK return code (3.1.1) / reason code (v5).
    pub fn connack_code(&self) -> Option<u8> {
        (self.packet_type() == CONNACK).then(|| self.body.get(1).copied()).flatten()
    }

    /// DISCONNECT reason code (v5); an empty body means 0x00 (normal disconnection).
    pub fn disconnect_reason(&self) -> Option<u8> {
        (self.packet_type() == DISCONNECT).then(|| self.body.first().copied().unwrap_or(0))
    }

    /// Topic of a PUBLISH (bytes, may be invalid UTF-8).
    pub fn publish_topic(&self) -> Option<&[u8]> {
        if self.packet_type() != PUBLISH || self.body.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([self.body[0], self.body[1]]) as usize;
        self.body.get(2..2 + len)
    }

    /// The properties of a v5 CONNACK.
    pub fn v5_connack_properties(&self) -> Option<Vec<(u8, Vec<u8>)>> {
        if self.packet_type() != CONNACK {
            return None;
        }
        let (len, used) = read_varint(self.body.get(2..)?)?;
        parse_v5_properties(self.body.get(2 + used..2 + used + len)?)
    }

    pub fn describe(&self) -> String {
        let t = self.packet_type();
        match t {
            CONNACK => format!("CONNACK(code=0x{:02x})", self.connack_code().unwrap_or(0xff)),
            DISCONNECT => {
                format!("DISCONNECT(reason=0x{:02x})", self.disconnect_reason().unwrap_or(0))
            }
            PUBLISH => format!(
                "PUBLISH(topic={:?}, {} body bytes)",
                String::from_utf8_lossy(self.publish_topic().unwrap_or(b"?")),
                self.body.len()
            ),
            _ => format!("{}(flags=0x{:x}, {} body bytes)", type_name(t), self.flags(), self.body.len()),
        }
    }
}

/// Decodes a variable byte integer at the start of `b`: (value, bytes used).
pub fn read_varint(b: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0usize;
    for (i, byte) in b.iter().take(4).enumerate() {
        v |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Parses a v5 property block (without its length prefix) into (id, raw value bytes).
pub fn parse_v5_properties(mut b: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let id = b[0];
        b = &b[1..];
        let len = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => 1,
            0x13 | 0x21 | 0x22 | 0x23 => 2,
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x0b => read_varint(b)?.1,
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1a | 0x1c | 0x1f => {
                2 + u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize
            }
            0x26 => {
                let k = 2 + u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
                k + 2 + u16::from_be_bytes([*b.get(k)?, *b.get(k + 1)?]) as usize
            }
            _ => return None,
        };
        out.push((id, b.get(..len)?.to_vec()));
        b = &b[len..];
    }
    Some(out)
}

/// Minimal variable byte integer encoding.
pub fn varint(mut n: usize) -> Vec<u8> {
    assert!(n <= 268_435_455, "remaining length too large");
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A complete packet: header byte, minimal remaining length, body.
pub fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// A length-prefixed MQTT string / binary field (bytes used as-is, so invalid UTF-8 is possible).
pub fn mqtt_str(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A v5 property block: varint length + the given encoded properties.
pub fn props(encoded: &[u8]) -> Vec<u8> {
    let mut out = varint(encoded.len());
    out.extend_from_slice(encoded);
    out
}

/// Will message of a hand-made CONNECT.
#[derive(Clone, Debug)]
pub struct Will {
    pub topic: Vec<u8>,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

/// Builder for a CONNECT packet.
#[derive(Clone, Debug)]
pub struct Connect {
    pub version: Version,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

impl Connect {
    pub fn new(version: Version, client_id: &str) -> Connect {
        Connect {
            version,
            client_id: client_id.to_string(),
            clean: true,
            keep_alive: 60,
            will: None,
            username: None,
            password: None,
        }
    }

    pub fn will(mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Connect {
        self.will = Some(Will { topic: topic.as_bytes().to_vec(), payload: payload.to_vec(), qos, retain });
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0u8;
        if self.clean {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        let mut body = mqtt_str(b"MQTT");
        body.push(self.version.level());
        body.push(flags);
        body.extend(self.keep_alive.to_be_bytes());
        if self.version == Version::V5 {
            body.extend(props(&[]));
        }
        body.extend(mqtt_str(self.client_id.as_bytes()));
        if let Some(w) = &self.will {
            if self.version == Version::V5 {
                body.extend(props(&[]));
            }
            body.extend(mqtt_str(&w.topic));
            body.extend(mqtt_str(&w.payload));
        }
        if let Some(u) = &self.username {
            body.extend(mqtt_str(u.as_bytes()));
        }
        if let Some(p) = &self.password {
            body.extend(mqtt_str(p));
        }
        packet(0x10, &body)
    }
}

pub fn connect(version: Version, client_id: &str) -> Vec<u8> {
    Connect::new(version, client_id).encode()
}

/// PUBLISH body pieces, for building broken variants.
pub fn publish_body(
    version: Version,
    topic: &[u8],
    pid: Option<u16>,
    properties: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = mqtt_str(topic);
    if let Some(pid) = pid {
        body.extend(pid.to_be_bytes());
    }
    if version == Version::V5 {
        body.extend(props(properties));
    }
    body.extend_from_slice(payload);
    body
}

/// A PUBLISH; `pid` is written when qos > 0 (use [`publish_body`] for anything odder).
pub fn publish(version: Version, topic: &[u8], qos: u8, retain: bool, pid: u16, payload: &[u8]) -> Vec<u8> {
    let header = 0x30 | (qos << 1) | retain as u8;
    let pid = (qos > 0).then_some(pid);
    packet(header, &publish_body(version, topic, pid, &[], payload))
}

/// A SUBSCRIBE for one filter.
pub fn subscribe(version: Version, pid: u16, filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if version == Version::V5 {
        body.extend(props(&[]));
    }
    body.extend(mqtt_str(filter));
    body.push(options);
    packet(0x82, &body)
}

pub fn pingreq() -> Vec<u8> {
    vec![0xc0, 0x00]
}

/// DISCONNECT; v5 with reason 0x00 and no properties.
pub fn disconnect(version: Version) -> Vec<u8> {
    match version {
        Version::V311 => vec![0xe0, 0x00],
        Version::V5 => vec![0xe0, 0x02, 0x00, 0x00],
    }
}

/// Parses one packet from the front of `buf`: `Ok(None)` if incomplete.
pub fn parse_one(buf: &[u8]) -> Result<Option<(RawPacket, usize)>> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut len = 0usize;
    let mut shift = 0;
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else { return Ok(None) };
        len |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if i > 4 {
            bail!("peer sent a remaining length longer than 4 bytes: {:02x?}", &buf[..5]);
        }
    }
    if buf.len() < i + len {
        return Ok(None);
    }
    Ok(Some((RawPacket { header: buf[0], body: buf[i..i + len].to_vec() }, i + len)))
}

/// Splits a byte stream into packets; returns the packets and any unparsable remainder.
pub fn parse_all(mut buf: &[u8]) -> (Vec<RawPacket>, Vec<u8>) {
    let mut out = Vec::new();
    while let Ok(Some((p, used))) = parse_one(buf) {
        out.push(p);
        buf = &buf[used..];
    }
    (out, buf.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_is_minimal() {
        assert_eq!(varint(0), vec![0]);
        assert_eq!(varint(127), vec![0x7f]);
        assert_eq!(varint(128), vec![0x80, 0x01]);
        assert_eq!(varint(16_383), vec![0xff, 0x7f]);
        assert_eq!(varint(2_097_152), vec![0x80, 0x80, 0x80, 0x01]);
    }

    #[test]
    fn parse_roundtrip() {
        let bytes = [publish(Version::V311, b"a/b", 1, false, 7, b"hi"), pingreq()].concat();
        let (pkts, rest) = parse_all(&bytes);
        assert!(rest.is_empty());
        assert_eq!(pkts.len(), 2);
        assert_eq!(pkts[0].packet_type(), PUBLISH);
        assert_eq!(pkts[0].publish_topic(), Some(&b"a/b"[..]));
        assert_eq!(pkts[1].packet_type(), PINGREQ);
        assert!(parse_one(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert_eq!(parse_one(&[0x30, 0x05, 0x00]).unwrap(), None);
    }

    #[test]
    fn connect_v5_layout() {
        let c = Connect::new(Version::V5, "id").will("w", b"x", 1, true).encode();
        // header, len, "MQTT", level 5, flags clean|will|qos1|retain
        assert_eq!(&c[..10], &[0x10, c[1], 0, 4, b'M', b'Q', b'T', b'T', 5, 0x2e]);
    }
}

//! Just enough MQTT 3.1.1 for a load generator: encode CONNECT / SUBSCRIBE / PUBLISH /
//! PUBACK / DISCONNECT, and split an incoming byte stream into frames without copying.

use anyhow::{bail, Result};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

pub const CONNACK: u8 = 0x20;
pub const PUBLISH: u8 = 0x30;
pub const PUBACK: u8 = 0x40;
pub const SUBACK: u8 = 0x90;
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// Largest frame the reader accepts (the proxies default to 1 MiB too).
const MAX_REMAINING: usize = 2 * 1024 * 1024;

fn put_remaining_len(buf: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        buf.push(b);
        if len == 0 {
            break;
        }
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// CONNECT, protocol level 4 (3.1.1), clean session, no will, no credentials.
pub fn connect(buf: &mut Vec<u8>, client_id: &str, keep_alive: u16) {
    let rem = 10 + 2 + client_id.len();
    buf.push(0x10);
    put_remaining_len(buf, rem);
    put_str(buf, "MQTT");
    buf.push(4); // protocol level 3.1.1
    buf.push(0x02); // clean session
    buf.extend_from_slice(&keep_alive.to_be_bytes());
    put_str(buf, client_id);
}

pub fn subscribe(buf: &mut Vec<u8>, packet_id: u16, filter: &str, qos: u8) {
    buf.push(0x82);
    put_remaining_len(buf, 2 + 2 + filter.len() + 1);
    buf.extend_from_slice(&packet_id.to_be_bytes());
    put_str(buf, filter);
    buf.push(qos);
}

/// PUBLISH whose payload is `payload_len` bytes: `head` first, then filler.
pub fn publish(buf: &mut Vec<u8>, topic: &str, qos: u8, packet_id: u16, head: &[u8], payload_len: usize) {
    debug_assert!(head.len() <= payload_len);
    buf.push(PUBLISH | (qos << 1));
    let rem = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + payload_len;
    put_remaining_len(buf, rem);
    put_str(buf, topic);
    if qos > 0 {
        buf.extend_from_slice(&packet_id.to_be_bytes());
    }
    buf.extend_from_slice(head);
    buf.resize(buf.len() + (payload_len - head.len()), b'x');
}

pub fn puback(buf: &mut Vec<u8>, packet_id: u16) {
    buf.extend_from_slice(&[PUBACK, 0x02]);
    buf.extend_from_slice(&packet_id.to_be_bytes());
}

/// A decoded PUBLISH body (QoS 0/1).
pub struct Publish<'a> {
    pub qos: u8,
    pub packet_id: u16,
    pub payload: &'a [u8],
}

pub fn parse_publish(header: u8, body: &[u8]) -> Result<Publish<'_>> {
    let qos = (header >> 1) & 0x03;
    if body.len() < 2 {
        bail!("short PUBLISH");
    }
    let tlen = u16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2 + tlen;
    let mut packet_id = 0;
    if qos > 0 {
        if body.len() < at + 2 {
            bail!("short PUBLISH");
        }
        packet_id = u16::from_be_bytes([body[at], body[at + 1]]);
        at += 2;
    }
    if body.len() < at {
        bail!("short PUBLISH");
    }
    Ok(Publish { qos, packet_id, payload: &body[at..] })
}

/// Buffers an incoming byte stream and yields whole frames.
pub struct Reader {
    buf: BytesMut,
}

impl Default for Reader {
    fn default() -> Self {
        Self { buf: BytesMut::with_capacity(64 * 1024) }
    }
}

impl Reader {
    /// Reads more bytes; `Ok(0)` is end of stream.
    pub async fn fill<R: AsyncRead + Unpin + ?Sized>(&mut self, r: &mut R) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        r.read_buf(&mut self.buf).await
    }

    /// The next complete frame: (first header byte, body).
    pub fn next_frame(&mut self) -> Result<Option<(u8, BytesMut)>> {
        let b = &self.buf[..];
        if b.len() < 2 {
            return Ok(None);
        }
        let mut len = 0usize;
        let mut mult = 1usize;
        let mut i = 1;
        loop {
            if i >= b.len() {
                return Ok(None);
            }
            if i > 4 {
                bail!("malformed remaining length");
            }
            let byte = b[i];
            len += (byte & 0x7f) as usize * mult;
            mult *= 128;
            i += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if len > MAX_REMAINING {
            bail!("frame of {len} bytes exceeds the reader's limit");
        }
        if b.len() < i + len {
            return Ok(None);
        }
        let header = b[0];
        self.buf.advance(i);
        let body = self.buf.split_to(len);
        Ok(Some((header, body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8], chunk: usize) -> Vec<(u8, Vec<u8>)> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut rd = Reader::default();
            let mut out = Vec::new();
            for c in bytes.chunks(chunk) {
                let mut src = c;
                rd.fill(&mut src).await.unwrap();
                while let Some((h, b)) = rd.next_frame().unwrap() {
                    out.push((h, b.to_vec()));
                }
            }
            out
        })
    }

    #[test]
    fn publish_round_trips_across_remaining_length_boundaries() {
        for len in [0usize, 1, 100, 115, 116, 16_000, 16_370, 16_371, 70_000] {
            for qos in [0u8, 1] {
                let mut buf = Vec::new();
                mqtt_publish_then_disconnect(&mut buf, qos, len);
                let f = frames(&buf, 7);
                assert_eq!(f.len(), 2, "len {len} qos {qos}");
                let p = parse_publish(f[0].0, &f[0].1).unwrap();
                assert_eq!((p.qos, p.packet_id, p.payload.len()), (qos, if qos > 0 { 42 } else { 0 }, len));
                assert_eq!(&p.payload[..len.min(3)], &b"abc"[..len.min(3)]);
                assert_eq!(f[1], (0xE0, vec![]));
            }
        }
    }

    fn mqtt_publish_then_disconnect(buf: &mut Vec<u8>, qos: u8, len: usize) {
        publish(buf, "a/b", qos, 42, &b"abc"[..len.min(3)], len);
        buf.extend_from_slice(&DISCONNECT);
    }

    #[test]
    fn connect_and_subscribe_have_the_3_1_1_layout() {
        let mut buf = Vec::new();
        connect(&mut buf, "id", 60);
        assert_eq!(buf, b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02id");
        buf.clear();
        subscribe(&mut buf, 1, "t", 1);
        assert_eq!(buf, b"\x82\x06\x00\x01\x00\x01t\x01");
    }

    #[test]
    fn oversized_or_malformed_lengths_are_errors() {
        let mut rd = Reader::default();
        rd.buf.extend_from_slice(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(rd.next_frame().is_err());
        let mut rd = Reader::default();
        rd.buf.extend_from_slice(&[0x30, 0x81, 0x80, 0x80, 0x01]); // 2 MiB + 1 > limit
        assert!(rd.next_frame().is_err());
    }
}

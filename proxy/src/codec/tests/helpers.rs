//! Shared test helpers.
#![allow(dead_code)] // not every helper is used by every test file

use bytes::BytesMut;

use crate::codec::*;

pub const MAX: usize = 1 << 20;

/// Split exactly one frame out of `bytes` (panics in tests otherwise).
pub fn frame(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    match split_frame(&mut buf, MAX) {
        Ok(Split::Frame(f)) => {
            assert!(buf.is_empty(), "bytes left after frame");
            f
        }
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Decode `bytes` as one packet of version `v`, returning the error if any.
pub fn decode_err(bytes: &[u8], v: ProtocolVersion) -> CodecError {
    let f = frame(bytes);
    match f.decode(v) {
        Ok(p) => panic!("expected error, decoded {p:?}"),
        Err(e) => e,
    }
}

/// Assert that `bytes` decodes under `v`.
pub fn decodes(bytes: &[u8], v: ProtocolVersion) {
    let f = frame(bytes);
    if let Err(e) = f.decode(v) {
        panic!("expected {bytes:02x?} to decode under {v:?}: {e}");
    }
}

pub fn is_malformed(e: &CodecError) -> bool {
    matches!(e, CodecError::Malformed(_))
}

pub fn is_protocol(e: &CodecError) -> bool {
    matches!(e, CodecError::Protocol(_))
}

/// Prefix `body` with a fixed header (byte0 + minimal remaining length).
pub fn pkt(byte0: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![byte0];
    let mut n = body.len();
    loop {
        let mut b = (n & 0x7F) as u8;
        n >>= 7;
        if n > 0 {
            b |= 0x80;
        }
        v.push(b);
        if n == 0 {
            break;
        }
    }
    v.extend_from_slice(body);
    v
}

/// Length-prefixed string.
pub fn s(x: &str) -> Vec<u8> {
    let mut v = (x.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(x.as_bytes());
    v
}

pub const V31: ProtocolVersion = ProtocolVersion::V31;
pub const V311: ProtocolVersion = ProtocolVersion::V311;
pub const V5: ProtocolVersion = ProtocolVersion::V5;
pub const ALL: [ProtocolVersion; 3] = [V31, V311, V5];

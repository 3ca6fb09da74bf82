//! Framing: cut one complete MQTT packet off the read buffer.
//!
//! This is the first line of defence: it decides how many bytes belong to a packet, so it must
//! agree byte-for-byte with the broker. It accepts only minimal 1..4 byte remaining lengths and
//! refuses an oversized packet as soon as its length is known, before any of the body is
//! buffered, so a client cannot make moat hold more than `max_packet_size` bytes.

use bytes::{Bytes, BytesMut};

use super::error::{malformed, CodecError};
use super::types::PacketType;

/// One complete packet, fixed header included, split off the read buffer without copying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
    header_len: usize,
    packet_type: PacketType,
    flags: u8,
}

/// Result of [`split_frame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Split {
    /// More bytes are needed; nothing was removed from the buffer.
    Incomplete,
    /// A complete frame, removed from the buffer.
    Frame(Frame),
}

/// Parsed fixed header: packet type nibble, flags, header length, remaining length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FixedHeader {
    pub(crate) packet_type: PacketType,
    pub(crate) flags: u8,
    pub(crate) header_len: usize,
    pub(crate) remaining: usize,
}

/// Parse a fixed header from the start of `buf`. `Ok(None)` means incomplete. `max` is the
/// maximum total packet size, enforced as early as possible (even on a partial length).
pub(crate) fn parse_fixed_header(buf: &[u8], max: usize) -> Result<Option<FixedHeader>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some(packet_type) = PacketType::from_nibble(first >> 4) else {
        return malformed("reserved packet type 0");
    };
    // Saturating/checked arithmetic throughout: the values are tiny (<= 2^28), but the codec
    // denies unchecked arithmetic so a future change cannot introduce a wrap.
    let mut value: usize = 0;
    let mut shift: u32 = 0;
    for idx in 1..=4usize {
        let Some(&b) = buf.get(idx) else {
            // Even before the length is complete, a continuation bit already implies a lower
            // bound (minimal encoding => a later byte is non-zero): refuse early.
            if idx > 1 {
                let lower = value.saturating_add(1usize.checked_shl(shift).unwrap_or(usize::MAX));
                let total = lower.saturating_add(idx).saturating_add(1);
                if total > max {
                    return Err(CodecError::TooLarge { size: total, max });
                }
            }
            return Ok(None);
        };
        value |= usize::from(b & 0x7F).checked_shl(shift).unwrap_or(0);
        shift = shift.saturating_add(7);
        if b & 0x80 == 0 {
            if idx > 1 && b == 0 {
                return malformed("non-minimal remaining length");
            }
            let header_len = idx.saturating_add(1);
            let total = header_len.saturating_add(value);
            if total > max {
                return Err(CodecError::TooLarge { size: total, max });
            }
            return Ok(Some(FixedHeader { packet_type, flags: first & 0x0F, header_len, remaining: value }));
        }
    }
    malformed("remaining length longer than 4 bytes")
}

/// Checks the type nibble (0 is refused here because a frame must have a type; 15 = AUTH is
/// accepted and refused at decode in 3.1.x), the remaining-length varint (max 4 bytes, minimal
/// encoding), and total packet size <= `max_packet_size` BEFORE waiting for the body. Never
/// reserves capacity: buffering policy belongs to the caller. On `Split::Frame` the bytes are
/// removed from `buf` with `split_to(..).freeze()`, which shares the buffer instead of copying.
pub fn split_frame(buf: &mut BytesMut, max_packet_size: usize) -> Result<Split, CodecError> {
    let Some(h) = parse_fixed_header(buf, max_packet_size)? else {
        return Ok(Split::Incomplete);
    };
    let total = h.header_len.saturating_add(h.remaining);
    if buf.len() < total {
        return Ok(Split::Incomplete);
    }
    let bytes = buf.split_to(total).freeze();
    Ok(Split::Frame(Frame { bytes, header_len: h.header_len, packet_type: h.packet_type, flags: h.flags }))
}

impl Frame {
    /// Build a frame from a buffer holding exactly one complete packet (e.g. one produced by
    /// an encoder). Errors if the bytes are not exactly one packet.
    pub fn from_bytes(bytes: Bytes) -> Result<Frame, CodecError> {
        let Some(h) = parse_fixed_header(&bytes, usize::MAX)? else {
            return malformed("incomplete packet");
        };
        if h.header_len.saturating_add(h.remaining) != bytes.len() {
            return malformed("buffer is not exactly one packet");
        }
        Ok(Frame { bytes, header_len: h.header_len, packet_type: h.packet_type, flags: h.flags })
    }

    /// The packet type from the high nibble of byte 0.
    pub fn packet_type(&self) -> PacketType {
        self.packet_type
    }

    /// Low nibble of byte 0.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The whole packet, fixed header included: this is what gets forwarded unchanged.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Take the whole packet.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Length of the fixed header (2..=5).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The bytes after the fixed header.
    pub fn body(&self) -> &[u8] {
        self.bytes.get(self.header_len..).unwrap_or(&[])
    }

    /// Total packet length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true for a split frame (the fixed header is at least 2 bytes); provided for
    /// API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

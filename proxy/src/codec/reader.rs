//! Wire primitives: a bounds-checked cursor over a borrowed byte slice.
//!
//! Every read is checked, so no input can make the decoders index out of bounds; every
//! string is validated as the spec's "UTF-8 Encoded String" at the point it is read, so a view
//! never hands out an unvalidated `&str`.

use super::error::{malformed, CodecError};

/// Largest value a Variable Byte Integer can hold (4 bytes, 7 bits each).
pub const VARINT_MAX: u32 = 268_435_455;

/// Cursor over a packet body. Cheap to copy; copies are used to re-parse validated sections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far (offset into the slice given to `new`).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread rest, without consuming it.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Error unless everything was consumed: trailing bytes are how parser differentials
    /// are smuggled, so they are always refused.
    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        if self.is_empty() {
            Ok(())
        } else {
            malformed("trailing bytes")
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Malformed("length overflow"))?;
        match self.buf.get(self.pos..end) {
            Some(s) => {
                self.pos = end;
                Ok(s)
            }
            None => malformed("field runs past end of packet"),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos = self.pos.saturating_add(1);
                Ok(b)
            }
            None => malformed("field runs past end of packet"),
        }
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        let s = self.take(2)?;
        match s {
            [a, b] => Ok(u16::from_be_bytes([*a, *b])),
            _ => malformed("field runs past end of packet"),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        let s = self.take(4)?;
        match s {
            [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => malformed("field runs past end of packet"),
        }
    }

    /// Variable Byte Integer: at most 4 bytes and minimally encoded (a non-minimal encoding
    /// is a second spelling of the same value, which a strict peer may read differently).
    pub(crate) fn varint(&mut self) -> Result<u32, CodecError> {
        let mut value: u32 = 0;
        let mut shift: u32 = 0;
        for i in 0..4u32 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7F).checked_shl(shift).unwrap_or(0);
            shift = shift.saturating_add(7);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return malformed("non-minimal variable byte integer");
                }
                return Ok(value);
            }
        }
        malformed("variable byte integer longer than 4 bytes")
    }

    /// Binary Data: 2-byte length prefix + bytes.
    pub(crate) fn binary(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// UTF-8 Encoded String: valid UTF-8 (which excludes surrogates and overlong forms) and
    /// no U+0000. Other control characters and non-characters are allowed, as in the spec.
    pub(crate) fn utf8(&mut self) -> Result<&'a str, CodecError> {
        let raw = self.binary()?;
        check_utf8(raw)
    }
}

/// Validate an MQTT UTF-8 string.
pub(crate) fn check_utf8(raw: &[u8]) -> Result<&str, CodecError> {
    if raw.contains(&0) {
        return malformed("U+0000 in UTF-8 string");
    }
    std::str::from_utf8(raw).map_err(|_| CodecError::Malformed("invalid UTF-8 string"))
}

/// Encode a Variable Byte Integer into a fixed buffer; returns the buffer and the number of
/// bytes used. Values above VARINT_MAX are truncated to 4 bytes, so callers check first.
pub(crate) fn varint_bytes(mut v: u32) -> ([u8; 4], usize) {
    let mut out = [0u8; 4];
    let mut n: usize = 0;
    for slot in out.iter_mut() {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v != 0 {
            b |= 0x80;
        }
        *slot = b;
        n = n.saturating_add(1);
        if v == 0 {
            break;
        }
    }
    (out, n)
}

/// Number of bytes `v` takes as a Variable Byte Integer.
pub(crate) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

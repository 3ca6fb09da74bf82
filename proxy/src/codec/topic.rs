//! Topic name and topic filter grammar (MQTT 4.7), shared by the decoders and the ACL.
//!
//! Works on `&str` without allocating. Byte-wise checks are sound on UTF-8 because the ASCII
//! bytes '/', '+', '#' and NUL never occur inside a multi-byte sequence.

use super::error::{malformed, protocol, CodecError};

const SHARE_PREFIX: &str = "$share/";

/// Topic name: non-empty (the caller handles the v5 topic-alias case), at most 65535 bytes, no
/// wildcard characters (a wildcard in a PUBLISH topic would match differently in the ACL and
/// the broker), no NUL.
pub fn validate_topic_name(topic: &str) -> Result<(), CodecError> {
    if topic.len() > usize::from(u16::MAX) {
        return malformed("topic name too long");
    }
    check_topic_name_bytes(topic.as_bytes())
}

/// Decode a topic name straight from the wire: grammar checks and UTF-8 validation in two
/// tight passes (this is the PUBLISH hot path, so it avoids the separate NUL scan of the
/// generic string reader).
pub(crate) fn topic_name_from_wire(raw: &[u8]) -> Result<&str, CodecError> {
    check_topic_name_bytes(raw)?;
    std::str::from_utf8(raw).map_err(|_| CodecError::Malformed("invalid UTF-8 string"))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const PLUSES: u64 = 0x2B2B_2B2B_2B2B_2B2B;
const HASHES: u64 = 0x2323_2323_2323_2323;

/// Non-zero iff some byte of `v` is NUL, '+' or '#' (classic exact SWAR zero-byte test,
/// applied to `v`, `v ^ '+'*8` and `v ^ '#'*8`, combined without branches).
#[inline]
fn special_mask(v: u64) -> u64 {
    let p = v ^ PLUSES;
    let h = v ^ HASHES;
    ((v.wrapping_sub(ONES) & !v) | (p.wrapping_sub(ONES) & !p) | (h.wrapping_sub(ONES) & !h)) & HIGHS
}

/// Whether `raw` contains NUL, '+' or '#'. Eight bytes at a time (SWAR): this runs on every
/// PUBLISH topic, and a byte loop with three comparisons was the largest cost of the decode.
/// The tail is padded with a harmless byte so it takes the same path.
#[inline]
fn has_topic_special(raw: &[u8]) -> bool {
    let mut chunks = raw.chunks_exact(8);
    let mut acc = 0u64;
    for c in &mut chunks {
        acc |= special_mask(<[u8; 8]>::try_from(c).map_or(0, u64::from_le_bytes));
    }
    let mut tail = [b'a'; 8];
    for (dst, src) in tail.iter_mut().zip(chunks.remainder()) {
        *dst = *src;
    }
    acc |= special_mask(u64::from_le_bytes(tail));
    acc != 0
}

fn check_topic_name_bytes(raw: &[u8]) -> Result<(), CodecError> {
    if raw.is_empty() {
        return protocol("empty topic name");
    }
    if has_topic_special(raw) {
        if raw.contains(&0) {
            return malformed("U+0000 in topic name");
        }
        return protocol("wildcard in topic name");
    }
    Ok(())
}

/// Topic filter: non-empty; `#` only as a whole, last level; `+` only as a whole level; no NUL;
/// `$share/{group}/{filter}` with a non-empty group free of `+`, `#` and `/`, and a non-empty
/// valid filter.
pub fn validate_topic_filter(filter: &str) -> Result<(), CodecError> {
    if filter.len() > usize::from(u16::MAX) {
        return malformed("topic filter too long");
    }
    if filter.as_bytes().contains(&0) {
        return malformed("U+0000 in topic filter");
    }
    if let Some(rest) = filter.strip_prefix(SHARE_PREFIX) {
        let Some((group, inner)) = rest.split_once('/') else {
            return protocol("shared subscription without filter");
        };
        if group.is_empty() {
            return protocol("empty shared subscription group");
        }
        if group.bytes().any(|b| b == b'+' || b == b'#') {
            return protocol("wildcard in shared subscription group");
        }
        return validate_plain_filter(inner);
    }
    validate_plain_filter(filter)
}

fn validate_plain_filter(filter: &str) -> Result<(), CodecError> {
    if filter.is_empty() {
        return protocol("empty topic filter");
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !last) {
            return protocol("'#' must be the whole last level");
        }
        if level.contains('+') && level != "+" {
            return protocol("'+' must be a whole level");
        }
    }
    Ok(())
}

/// Split a shared subscription `$share/{group}/{filter}` into `(group, filter)`. `None` for
/// a non-shared filter (or a malformed one: use `validate_topic_filter` first).
pub fn split_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    rest.split_once('/')
}

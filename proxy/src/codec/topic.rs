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
    if topic.is_empty() {
        return protocol("empty topic name");
    }
    if topic.len() > usize::from(u16::MAX) {
        return malformed("topic name too long");
    }
    for &b in topic.as_bytes() {
        match b {
            b'+' | b'#' => return protocol("wildcard in topic name"),
            0 => return malformed("U+0000 in topic name"),
            _ => {}
        }
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

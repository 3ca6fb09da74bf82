//! Topic alias maps (MQTT 5), one per direction. A PUBLISH may carry only an alias and an empty
//! topic; the ACL must see the real topic (trap 8), so moat keeps the same map the receiver keeps.
//!
//! The map is bounded twice: moat announces at most [`MAX_ALIASES`] to each peer (rewriting the
//! Topic Alias Maximum in CONNECT/CONNACK), and the topics held are capped at [`MAX_ALIAS_BYTES`].

use crate::codec::ReasonCode;

/// Most aliases moat lets either peer use on one connection.
pub(crate) const MAX_ALIASES: u16 = 64;
/// Most topic bytes held by one direction's alias map.
pub(crate) const MAX_ALIAS_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(crate) struct AliasMap {
    /// The maximum the receiver announced (0: aliases not allowed).
    max: u16,
    topics: Vec<Option<Box<str>>>,
    bytes: usize,
}

impl AliasMap {
    /// The maximum in force (0: aliases not allowed).
    pub(crate) fn max(&self) -> u16 {
        self.max
    }

    /// Sets the maximum the receiving side announced (already clamped to [`MAX_ALIASES`]).
    pub(crate) fn set_max(&mut self, max: u16) {
        self.max = max.min(MAX_ALIASES);
    }

    /// Resolves the topic of a PUBLISH: records `alias → topic` when both are present, looks the
    /// alias up when the topic is empty. Errors carry the v5 reason to disconnect with.
    pub(crate) fn resolve<'a>(
        &'a mut self,
        topic: &'a str,
        alias: Option<u16>,
    ) -> Result<&'a str, ReasonCode> {
        let Some(alias) = alias else {
            return if topic.is_empty() { Err(ReasonCode::ProtocolError) } else { Ok(topic) };
        };
        if alias == 0 || alias > self.max {
            return Err(ReasonCode::TopicAliasInvalid);
        }
        let index = usize::from(alias - 1);
        if topic.is_empty() {
            return match self.topics.get(index) {
                Some(Some(t)) => Ok(t),
                _ => Err(ReasonCode::ProtocolError),
            };
        }
        if self.topics.len() <= index {
            self.topics.resize(index + 1, None);
        }
        let slot = self.topics.get_mut(index).ok_or(ReasonCode::TopicAliasInvalid)?;
        let old = slot.as_ref().map_or(0, |t| t.len());
        if slot.as_deref() != Some(topic) {
            let bytes = self.bytes - old + topic.len();
            if bytes > MAX_ALIAS_BYTES {
                return Err(ReasonCode::QuotaExceeded);
            }
            self.bytes = bytes;
            *slot = Some(topic.into());
        }
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_is_recorded_then_resolved() {
        let mut m = AliasMap::default();
        m.set_max(10);
        assert_eq!(m.resolve("a/b", Some(3)), Ok("a/b"));
        assert_eq!(m.resolve("", Some(3)), Ok("a/b"));
        assert_eq!(m.resolve("c", Some(3)), Ok("c"));
        assert_eq!(m.resolve("", Some(3)), Ok("c"));
    }

    #[test]
    fn unknown_alias_is_a_protocol_error() {
        let mut m = AliasMap::default();
        m.set_max(10);
        assert_eq!(m.resolve("", Some(2)), Err(ReasonCode::ProtocolError));
    }

    #[test]
    fn alias_above_announced_maximum_is_invalid() {
        let mut m = AliasMap::default();
        assert_eq!(m.resolve("a", Some(1)), Err(ReasonCode::TopicAliasInvalid));
        m.set_max(u16::MAX);
        assert_eq!(m.resolve("a", Some(MAX_ALIASES + 1)), Err(ReasonCode::TopicAliasInvalid));
        assert_eq!(m.resolve("a", Some(0)), Err(ReasonCode::TopicAliasInvalid));
    }

    #[test]
    fn alias_bytes_are_capped() {
        let mut m = AliasMap::default();
        m.set_max(MAX_ALIASES);
        let long = "x".repeat(MAX_ALIAS_BYTES / 2);
        assert!(m.resolve(&long, Some(1)).is_ok());
        assert!(m.resolve(&long, Some(2)).is_ok());
        assert_eq!(m.resolve("y", Some(3)), Err(ReasonCode::QuotaExceeded));
        // Replacing an alias frees its old bytes.
        assert!(m.resolve("short", Some(1)).is_ok());
        assert!(m.resolve("y", Some(3)).is_ok());
    }

    #[test]
    fn empty_topic_without_alias_is_a_protocol_error() {
        let mut m = AliasMap::default();
        assert_eq!(m.resolve("", None), Err(ReasonCode::ProtocolError));
    }
}

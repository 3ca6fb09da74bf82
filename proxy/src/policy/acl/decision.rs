//! Per-packet checks against a compiled [`ClientAcl`].
//!
//! Invalid input (a PUBLISH topic with wildcards or NUL, an unresolved empty alias topic, a
//! malformed filter, QoS 3) is denied outright, before the superuser shortcut: the codec
//! already rejects it, so reaching here with it means a caller bug, and failing closed keeps
//! such a bug from becoming a bypass (traps 8 and 10).

use super::compile::{ClientAcl, Entry};
use super::placeholder::Expanded;
use super::topic_match::{contains, intersects, matches, parse_filter, Level};
use super::{Decision, Permission};
use crate::codec::{split_shared, validate_topic_filter, validate_topic_name};

const QUEUE_PREFIX: &str = "$queue/";

fn invalid() -> Decision {
    Decision { permission: Permission::Deny, rule: None, superuser: false }
}

/// The filter a subscription really asks for: `$share/{group}/F` and `$queue/F` are F.
pub(crate) fn strip_shared(filter: &str) -> &str {
    if let Some((_, inner)) = split_shared(filter) {
        inner
    } else if let Some(inner) = filter.strip_prefix(QUEUE_PREFIX) {
        inner
    } else {
        filter
    }
}

impl ClientAcl {
    fn superuser_decision() -> Decision {
        Decision { permission: Permission::Allow, rule: None, superuser: true }
    }

    fn no_match_decision(&self) -> Decision {
        Decision { permission: self.no_match, rule: None, superuser: false }
    }

    fn decide(&self, entry: &Entry) -> Option<Decision> {
        let rule = self.rules.get(entry.rule)?;
        Some(Decision { permission: rule.permission, rule: Some(rule.id.clone()), superuser: false })
    }

    /// Checks a PUBLISH (or a Will, trap 3) to `topic` with this QoS and retain flag.
    pub fn check_publish(&self, topic: &str, qos: u8, retain: bool) -> Decision {
        if qos > 2 || validate_topic_name(topic).is_err() {
            return invalid();
        }
        if self.superuser {
            return Self::superuser_decision();
        }
        let first = topic.split('/').next().unwrap_or_default();
        let qos_bit = 1u8 << qos;
        for pos in self.publish.candidates(first) {
            let Some(entry) = self.entries.get(pos) else {
                continue;
            };
            let Some(rule) = self.rules.get(entry.rule) else {
                continue;
            };
            if rule.qos_mask & qos_bit == 0 || rule.retain.is_some_and(|r| r != retain) {
                continue;
            }
            let hit = match &entry.filter {
                Expanded::Eq(s) => **s == *topic,
                Expanded::Filter(levels) => matches(levels, topic),
            };
            if hit {
                if let Some(d) = self.decide(entry) {
                    return d;
                }
            }
        }
        self.no_match_decision()
    }

    /// Checks one SUBSCRIBE filter (possibly `$share/...` or `$queue/...`) at the requested
    /// QoS. An allow rule must contain the filter; a deny rule matches when it intersects.
    pub fn check_subscribe(&self, filter: &str, qos: u8) -> Decision {
        if qos > 2 || validate_topic_filter(filter).is_err() {
            return invalid();
        }
        let inner = strip_shared(filter);
        if validate_topic_filter(inner).is_err() {
            return invalid();
        }
        if self.superuser {
            return Self::superuser_decision();
        }
        let levels = parse_filter(inner);
        let qos_bit = 1u8 << qos;
        let candidates: Box<dyn Iterator<Item = usize> + '_> = match levels.first() {
            Some(Level::Lit(first)) => Box::new(self.subscribe.candidates(first)),
            _ => Box::new(self.subscribe.all.iter().copied()),
        };
        for pos in candidates {
            let Some(entry) = self.entries.get(pos) else {
                continue;
            };
            let Some(rule) = self.rules.get(entry.rule) else {
                continue;
            };
            if rule.qos_mask & qos_bit == 0 {
                continue;
            }
            let hit = match (&entry.filter, rule.permission) {
                (Expanded::Eq(s), _) => **s == *inner,
                (Expanded::Filter(r), Permission::Allow) => contains(r, &levels),
                (Expanded::Filter(r), Permission::Deny) => intersects(r, &levels),
            };
            if hit {
                if let Some(d) = self.decide(entry) {
                    return d;
                }
            }
        }
        self.no_match_decision()
    }
}

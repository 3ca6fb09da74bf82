//! Per-client quotas (`limits:` and a listener's `limits:` overrides): topic depth and length,
//! client id length, keep-alive bounds, active subscriptions, in-flight QoS 1/2 publishes and
//! shared subscriptions. The checks are pure functions and small bounded tables; the session
//! decides how each violation is answered (see `client.rs` and `connect.rs`).
//!
//! Nothing here allocates per forwarded PUBLISH: the in-flight table is allocated once per
//! connection (only when `max_inflight` is set) and the subscription table grows only on
//! SUBSCRIBE with a new filter.

use std::collections::HashSet;

use tracing::info;

use crate::codec::ReasonCode;
use crate::config::Quotas;
use crate::metrics::Metrics;
use crate::util::escape;

/// The quota a topic name or filter exceeds, if any (its config key, for metric and log).
pub(crate) fn topic_quota(q: &Quotas, topic: &str) -> Option<&'static str> {
    if topic.len() > q.max_topic_length {
        return Some("max_topic_length");
    }
    // Levels = separators + 1; counting bytes is exact since `/` is ASCII. The length check above
    // bounds this scan.
    let levels = topic.bytes().filter(|&b| b == b'/').count().saturating_add(1);
    (levels > q.max_topic_levels).then_some("max_topic_levels")
}

/// Counts and logs one violation: metric `moat_quota_exceeded_total{quota}` and an audit line.
/// `detail` is escaped (it may be a client-supplied topic).
pub(crate) fn record(metrics: &Metrics, quota: &'static str, detail: &str) {
    metrics.quota_exceeded(quota);
    info!(target: "moat::audit", quota, detail = %escape(detail), "quota exceeded");
}

/// What the keep-alive bounds make of a client's keep-alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeepAlive {
    /// Within bounds: unchanged.
    Keep,
    /// The session runs with this value instead (v5: told to the client as Server Keep Alive,
    /// and to the broker in the forwarded CONNECT).
    Clamp(u16),
    /// Refused (3.1.1 above the maximum: see [`keep_alive`]).
    Refuse,
}

/// Applies `keepalive_min`/`keepalive_max` to a client's keep-alive. 0 ("no keep-alive") is
/// treated as infinitely long.
///
/// MQTT 5 lets the server impose its value (Server Keep Alive, MQTT-3.2.2-21), so v5 clients are
/// clamped both ways. MQTT 3.1.1 has no such field: raising a too-short keep-alive silently is
/// harmless (the client pings more often than moat needs), but lowering a too-long one would
/// make moat cut off a client that keeps its own, longer schedule, so that is refused with
/// CONNACK 0x02 (the only 3.1.1 code that makes clients stop retrying a setting that will never
/// be accepted, rather than 0x03 which invites a reconnect loop).
pub(crate) fn keep_alive(q: &Quotas, requested: u16, v5: bool) -> KeepAlive {
    let too_long = q.keepalive_max.filter(|&max| requested == 0 || requested > max);
    let too_short = q.keepalive_min.filter(|&min| requested != 0 && requested < min);
    match (too_long, too_short) {
        (Some(_), _) if !v5 => KeepAlive::Refuse,
        (Some(max), _) => KeepAlive::Clamp(max),
        (None, Some(min)) => KeepAlive::Clamp(min),
        (None, None) => KeepAlive::Keep,
    }
}

/// Client → broker QoS 1/2 PUBLISHes the broker has not finished acknowledging, by packet id.
/// An id stays in flight until PUBACK, PUBCOMP, or a PUBREC with an error code (MQTT 5 4.9).
#[derive(Debug)]
pub(crate) struct Inflight {
    max: usize,
    ids: Vec<u16>,
}

impl Inflight {
    pub(crate) fn new(max: u16) -> Self {
        let max = usize::from(max);
        Inflight { max, ids: Vec::with_capacity(max) }
    }

    /// Records a forwarded PUBLISH; a retransmission (same id) is not a new one. `Err` when the
    /// quota is full (nothing recorded).
    pub(crate) fn insert(&mut self, id: u16) -> Result<(), ()> {
        if self.ids.contains(&id) {
            return Ok(());
        }
        if self.ids.len() >= self.max {
            return Err(());
        }
        self.ids.push(id);
        Ok(())
    }

    /// The broker finished (or failed) the exchange for `id`.
    pub(crate) fn complete(&mut self, id: u16) {
        if let Some(i) = self.ids.iter().position(|&x| x == id) {
            self.ids.swap_remove(i);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// A counted filter of a pending UNSUBSCRIBE, with its position in that packet (to find its
/// UNSUBACK code).
type CountedFilter = (usize, Box<str>);

/// UNSUBSCRIBEs waiting for their UNSUBACK, kept per connection; beyond this many the client is
/// disconnected (quota exceeded), as for the other tracked-id tables.
const MAX_PENDING_UNSUBSCRIBES: usize = 64;

/// The distinct filters a client holds, to enforce `max_subscriptions`. A filter counts from the
/// SUBSCRIBE that moat forwards (re-subscribing to the same filter replaces, it does not add) and
/// stops counting when the broker confirms its UNSUBSCRIBE. A filter the broker refuses in its
/// SUBACK keeps counting until unsubscribed: conservative, never an over-grant.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    max: usize,
    active: HashSet<Box<str>>,
    pending_unsubscribes: Vec<(u16, Vec<CountedFilter>)>,
}

impl Subscriptions {
    pub(crate) fn new(max: usize) -> Self {
        Subscriptions { max, active: HashSet::new(), pending_unsubscribes: Vec::new() }
    }

    /// Admits `filter` (already held, or room for one more). `false` when the quota is full.
    pub(crate) fn admit(&mut self, filter: &str) -> bool {
        if self.active.contains(filter) {
            return true;
        }
        if self.active.len() >= self.max {
            return false;
        }
        self.active.insert(filter.into());
        true
    }

    /// Remembers the counted filters of a forwarded UNSUBSCRIBE (with their positions, to read
    /// the v5 UNSUBACK codes) until the broker answers.
    pub(crate) fn unsubscribing<'a>(
        &mut self,
        packet_id: u16,
        filters: impl Iterator<Item = &'a str>,
    ) -> Result<(), ReasonCode> {
        if self.pending_unsubscribes.iter().any(|(id, _)| *id == packet_id) {
            return Err(ReasonCode::PacketIdentifierInUse);
        }
        if self.pending_unsubscribes.len() >= MAX_PENDING_UNSUBSCRIBES {
            return Err(ReasonCode::QuotaExceeded);
        }
        // Only counted filters are kept, so the list is bounded by the active set.
        let held: Vec<CountedFilter> = filters
            .enumerate()
            .filter(|(_, f)| self.active.contains(*f))
            .map(|(i, f)| (i, Box::from(f)))
            .take(self.max)
            .collect();
        self.pending_unsubscribes.push((packet_id, held));
        Ok(())
    }

    /// The broker's UNSUBACK: `codes` are the v5 reason codes, one per filter (empty in 3.1.1,
    /// where an UNSUBACK means every filter was removed). A filter stops counting unless its
    /// code is an error (0x11 "no subscription existed" also means it is gone).
    pub(crate) fn unsubscribed(&mut self, packet_id: u16, codes: &[u8]) {
        let Some(i) = self.pending_unsubscribes.iter().position(|(id, _)| *id == packet_id) else {
            return;
        };
        let (_, filters) = self.pending_unsubscribes.swap_remove(i);
        for (index, f) in filters {
            if codes.get(index).is_none_or(|&c| c < 0x80) {
                self.active.remove(&f);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.active.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas() -> Quotas {
        Quotas { max_topic_levels: 3, max_topic_length: 10, ..Quotas::default() }
    }

    #[test]
    fn topic_levels_and_length() {
        let q = quotas();
        assert_eq!(topic_quota(&q, "a/b/c"), None);
        assert_eq!(topic_quota(&q, "a/b/c/d"), Some("max_topic_levels"));
        assert_eq!(topic_quota(&q, "/a/b"), None);
        assert_eq!(topic_quota(&q, "//a/b"), Some("max_topic_levels"));
        assert_eq!(topic_quota(&q, "0123456789"), None);
        assert_eq!(topic_quota(&q, "0123456789a"), Some("max_topic_length"));
    }

    #[test]
    fn keep_alive_bounds() {
        let q = Quotas { keepalive_min: Some(10), keepalive_max: Some(100), ..Quotas::default() };
        assert_eq!(keep_alive(&q, 50, true), KeepAlive::Keep);
        assert_eq!(keep_alive(&q, 5, true), KeepAlive::Clamp(10));
        assert_eq!(keep_alive(&q, 5, false), KeepAlive::Clamp(10));
        assert_eq!(keep_alive(&q, 500, true), KeepAlive::Clamp(100));
        assert_eq!(keep_alive(&q, 0, true), KeepAlive::Clamp(100));
        assert_eq!(keep_alive(&q, 500, false), KeepAlive::Refuse);
        assert_eq!(keep_alive(&q, 0, false), KeepAlive::Refuse);
        assert_eq!(keep_alive(&Quotas::default(), 0, false), KeepAlive::Keep);
    }

    #[test]
    fn inflight_counts_distinct_ids_until_completed() {
        let mut f = Inflight::new(2);
        assert!(f.insert(1).is_ok());
        assert!(f.insert(1).is_ok(), "a retransmission is not a new message");
        assert!(f.insert(2).is_ok());
        assert!(f.insert(3).is_err());
        f.complete(1);
        assert!(f.insert(3).is_ok());
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn subscriptions_count_distinct_filters_and_free_on_unsuback() {
        let mut s = Subscriptions::new(2);
        assert!(s.admit("a"));
        assert!(s.admit("a"));
        assert!(s.admit("b"));
        assert!(!s.admit("c"));
        s.unsubscribing(7, ["a", "zzz"].into_iter()).expect("tracked");
        assert!(!s.admit("c"), "not freed before the UNSUBACK");
        s.unsubscribed(7, &[0x00, 0x11]);
        assert!(s.admit("c"));
        assert_eq!(s.len(), 2);
        s.unsubscribing(8, ["b", "c"].into_iter()).expect("tracked");
        s.unsubscribed(8, &[0x87, 0x00]);
        assert_eq!(s.len(), 1, "a refused filter keeps counting, the other is freed");
        assert!(s.admit("d"));
    }
}

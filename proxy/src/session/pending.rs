//! Small bounded per-connection tables the relay keeps to answer denials correctly:
//! QoS 2 packet ids whose PUBLISH moat refused (their PUBREL must be answered by moat and never
//! reach the other side, trap 11) and SUBSCRIBEs forwarded in part, whose SUBACK must be merged
//! back into the client's original order (trap 12).

use crate::codec::ReasonCode;

/// Most packet ids tracked per table; a peer that needs more is disconnected (quota exceeded).
pub(crate) const MAX_TRACKED: usize = 1024;

/// Packet ids of QoS 2 exchanges that moat terminates itself.
#[derive(Debug, Default)]
pub(crate) struct DeniedQos2 {
    ids: Vec<u16>,
}

impl DeniedQos2 {
    pub(crate) fn insert(&mut self, id: u16) -> Result<(), ReasonCode> {
        if self.ids.contains(&id) {
            return Ok(());
        }
        if self.ids.len() >= MAX_TRACKED {
            return Err(ReasonCode::QuotaExceeded);
        }
        self.ids.push(id);
        Ok(())
    }

    /// True (and forgets the id) when the PUBREL for `id` belongs to moat.
    pub(crate) fn take(&mut self, id: u16) -> bool {
        match self.ids.iter().position(|&x| x == id) {
            Some(i) => {
                self.ids.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

/// A SUBSCRIBE forwarded with only its permitted filters.
#[derive(Debug)]
struct PartialSubscribe {
    packet_id: u16,
    /// Per original filter: `None` = forwarded (take the broker's code), `Some(code)` = denied.
    slots: Vec<Option<u8>>,
}

#[derive(Debug, Default)]
pub(crate) struct PendingSubacks {
    pending: Vec<PartialSubscribe>,
}

impl PendingSubacks {
    pub(crate) fn insert(&mut self, packet_id: u16, slots: Vec<Option<u8>>) -> Result<(), ReasonCode> {
        if self.pending.iter().any(|p| p.packet_id == packet_id) {
            return Err(ReasonCode::PacketIdentifierInUse);
        }
        if self.pending.len() >= MAX_TRACKED {
            return Err(ReasonCode::QuotaExceeded);
        }
        self.pending.push(PartialSubscribe { packet_id, slots });
        Ok(())
    }

    /// Merges the broker's SUBACK codes for `packet_id` into the client's original order.
    /// `None` when no merge is pending for that id; `Some(Err)` when the broker answered a
    /// different number of filters than it was sent.
    pub(crate) fn merge(&mut self, packet_id: u16, broker_codes: &[u8]) -> Option<Result<Vec<u8>, ()>> {
        let i = self.pending.iter().position(|p| p.packet_id == packet_id)?;
        let partial = self.pending.swap_remove(i);
        let forwarded = partial.slots.iter().filter(|s| s.is_none()).count();
        if forwarded != broker_codes.len() {
            return Some(Err(()));
        }
        let mut codes = broker_codes.iter();
        let merged =
            partial.slots.iter().map(|slot| slot.or_else(|| codes.next().copied()).unwrap_or(0x80)).collect();
        Some(Ok(merged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_restores_original_order() {
        let mut p = PendingSubacks::default();
        p.insert(7, vec![Some(0x87), None, Some(0x87), None]).expect("insert");
        assert_eq!(p.merge(7, &[1, 2]), Some(Ok(vec![0x87, 1, 0x87, 2])));
        assert_eq!(p.merge(7, &[1, 2]), None, "consumed");
    }

    #[test]
    fn merge_rejects_a_broker_answer_of_the_wrong_length() {
        let mut p = PendingSubacks::default();
        p.insert(1, vec![Some(0x80), None]).expect("insert");
        assert_eq!(p.merge(1, &[0, 0]), Some(Err(())));
    }

    #[test]
    fn tables_are_bounded() {
        let mut d = DeniedQos2::default();
        for id in 1..=MAX_TRACKED as u16 {
            d.insert(id).expect("room");
        }
        assert_eq!(d.insert(u16::MAX), Err(ReasonCode::QuotaExceeded));
        assert!(d.take(1));
        assert!(!d.take(1));
        assert!(d.insert(u16::MAX).is_ok());
    }

    #[test]
    fn duplicate_partial_subscribe_id_is_refused() {
        let mut p = PendingSubacks::default();
        p.insert(3, vec![None]).expect("insert");
        assert_eq!(p.insert(3, vec![None]), Err(ReasonCode::PacketIdentifierInUse));
    }
}

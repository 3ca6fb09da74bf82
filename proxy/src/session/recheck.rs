//! Re-checking a live session against a changed policy (a reload, a new ban). The session is
//! judged as if it connected now — address and identity bans, CONNECT-time filters, its Will
//! against the ACL — without authenticating again (moat never keeps the password). If the new
//! policy would have refused it, it is closed; otherwise it continues under the new compiled
//! filters, so a tightened ACL applies from the next packet on.

use tracing::info;

use super::relay::Relay;
use crate::codec::{Frame, Packet, ReasonCode};
use crate::policy::Verdict;

impl Relay {
    /// `Some(reason)`: the session must close (v5 clients are told `reason`).
    pub(super) fn recheck(&mut self) -> Option<ReasonCode> {
        let policy = self.ctx.policy.snapshot();
        // The CONNECT was validated when it arrived; if it no longer decodes (it cannot), refuse
        // rather than keep a session nothing can be checked against.
        let frame = Frame::from_bytes(self.connect.clone()).ok();
        let connect = frame.as_ref().and_then(|f| match f.decode(self.version()) {
            Ok(Packet::Connect(c)) => Some(c),
            _ => None,
        });
        let Some(connect) = connect else {
            return Some(self.refused("policy", "recheck_failed", ReasonCode::AdministrativeAction));
        };
        if let Verdict::Deny(d) = policy.chain.on_recheck(&self.session, &connect) {
            // Filters answer with DISCONNECT-valid codes (0x98 bans, 0x87 revoked certificate).
            return Some(self.refused("policy", d.label, d.reason));
        }
        // Deliveries the new policy wants to check could be dropped; a client that accepted
        // topic aliases from the broker would then be left with an alias it never learnt.
        if policy.chain.checks_delivery() && self.outbound_aliases.max() > 0 {
            return Some(self.refused("policy", "delivery_check_enabled", ReasonCode::AdministrativeAction));
        }
        match policy.chain.start_session(&self.session, &connect) {
            Ok(filters) => {
                self.filters = filters;
                None
            }
            Err(d) => Some(self.refused("policy", d.label, ReasonCode::NotAuthorized)),
        }
    }

    fn refused(&self, point: &'static str, label: &'static str, reason: ReasonCode) -> ReasonCode {
        info!(target: "moat::audit", reason = label, "live session refused by the current policy");
        self.ctx.metrics.denied(point, label);
        reason
    }
}

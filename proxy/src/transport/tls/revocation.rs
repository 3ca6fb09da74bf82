//! Live sessions whose client certificate is revoked after they connected. When a listener's
//! TLS material is swapped (a CRL file changed, a CRL was fetched), every live session re-checks
//! itself; this filter answers for the TLS part: the session's verified chain against the CAs
//! and CRLs in force now. A chain that no longer verifies closes the session (v5: DISCONNECT
//! 0x87), unless the listener says `revoked_sessions: keep`.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::info;

use super::{ChainStatus, TlsState};
use crate::codec::{Connect, ReasonCode};
use crate::metrics::Metrics;
use crate::policy::{Filter, SessionInfo, Verdict};

pub struct RevocationFilter {
    states: HashMap<Arc<str>, Arc<TlsState>>,
    metrics: Arc<Metrics>,
}

impl RevocationFilter {
    /// `None` when no listener checks client certificates with live disconnects.
    pub fn new(states: &[Arc<TlsState>], metrics: Arc<Metrics>) -> Option<Self> {
        let states: HashMap<Arc<str>, Arc<TlsState>> = states
            .iter()
            .filter(|s| s.disconnects_revoked())
            .map(|s| (Arc::<str>::from(s.listener()), s.clone()))
            .collect();
        (!states.is_empty()).then_some(Self { states, metrics })
    }
}

impl Filter for RevocationFilter {
    fn name(&self) -> &'static str {
        "revocation"
    }

    fn on_recheck(&self, session: &SessionInfo, _connect: &Connect<'_>) -> Verdict {
        let (Some(state), Some(chain)) =
            (self.states.get(&session.peer.listener), &session.peer.client_certs)
        else {
            return Verdict::Allow;
        };
        match state.check_client_chain(chain) {
            ChainStatus::Good | ChainStatus::NotChecked => Verdict::Allow,
            status => {
                let why = match &status {
                    ChainStatus::Revoked => "revoked".to_string(),
                    ChainStatus::Rejected(r) => r.clone(),
                    _ => String::new(),
                };
                info!(
                    target: "moat::audit",
                    client_id = %crate::util::escape(&session.identity.client_id),
                    reason = %why,
                    "client certificate no longer valid, closing the live session"
                );
                self.metrics.denied("session", "certificate_revoked");
                Verdict::deny(ReasonCode::NotAuthorized, "certificate_revoked")
            }
        }
    }
}

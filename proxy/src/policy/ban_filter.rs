//! Bans as a filter: address bans (exact IP, CIDR) before the TLS handshake, identity bans (client
//! id, username, exact or regex) right after CONNECT is parsed and before authentication — the
//! cheapest rejections first (trap 16). Banned clients get CONNACK 0x05 (3.1.1) / 0x8A (v5).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::info;

use super::bans::BanSet;
use super::{Filter, PeerInfo, Verdict};
use crate::codec::{Connect, ReasonCode};
use crate::metrics::Metrics;
use crate::util::escape;

pub struct BanFilter {
    bans: Arc<BanSet>,
    metrics: Arc<Metrics>,
}

impl BanFilter {
    pub fn new(bans: Arc<BanSet>, metrics: Arc<Metrics>) -> Self {
        Self { bans, metrics }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Filter for BanFilter {
    fn name(&self) -> &'static str {
        "bans"
    }

    fn on_accept(&self, peer: &PeerInfo) -> Verdict {
        match self.bans.check_ip(peer.peer.ip(), now()) {
            Some(ban) => {
                info!(target: "moat::audit", peer = %peer.peer, kind = ?ban.kind, reason = %escape(&ban.reason), "banned address refused");
                self.metrics.denied("accept", "banned");
                Verdict::deny(ReasonCode::Banned, "banned")
            }
            None => Verdict::Allow,
        }
    }

    fn on_connect(&self, _peer: &PeerInfo, connect: &Connect<'_>) -> Verdict {
        match self.bans.check_client(connect.client_id, connect.username, now()) {
            Some(ban) => {
                info!(
                    target: "moat::audit",
                    client_id = %escape(connect.client_id),
                    kind = ?ban.kind,
                    reason = %escape(&ban.reason),
                    "banned client refused"
                );
                Verdict::deny(ReasonCode::Banned, "banned")
            }
            None => Verdict::Allow,
        }
    }
}

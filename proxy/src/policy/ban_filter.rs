//! Bans as a filter: address bans (exact IP, CIDR) before the TLS handshake, identity bans (client
//! id, username, exact or regex) right after CONNECT is parsed and before authentication — the
//! cheapest rejections first (trap 16). Banned clients get CONNACK 0x05 (3.1.1) / 0x8A (v5).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::info;

use super::bans::LiveBans;
use super::{Filter, PeerInfo, SessionInfo, Verdict};
use crate::codec::{Connect, ReasonCode};
use crate::metrics::Metrics;
use crate::util::escape;

pub struct BanFilter {
    bans: Arc<LiveBans>,
    metrics: Arc<Metrics>,
}

impl BanFilter {
    pub fn new(bans: Arc<LiveBans>, metrics: Arc<Metrics>) -> Self {
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
        match self.bans.current().check_ip(peer.peer.ip(), now()) {
            Some(ban) => {
                self.metrics.ops.ban_hit(ban.kind.as_str());
                info!(target: "moat::audit", peer = %peer.peer, kind = ban.kind.as_str(), reason = %escape(&ban.reason), "banned address refused");
                self.metrics.denied("accept", "banned");
                Verdict::deny(ReasonCode::Banned, "banned")
            }
            None => Verdict::Allow,
        }
    }

    fn on_connect(&self, _peer: &PeerInfo, connect: &Connect<'_>) -> Verdict {
        match self.bans.current().check_client(connect.client_id, connect.username, now()) {
            Some(ban) => {
                self.metrics.ops.ban_hit(ban.kind.as_str());
                info!(
                    target: "moat::audit",
                    client_id = %escape(connect.client_id),
                    kind = ban.kind.as_str(),
                    reason = %escape(&ban.reason),
                    "banned client refused"
                );
                Verdict::deny(ReasonCode::Banned, "banned")
            }
            None => Verdict::Allow,
        }
    }

    /// After authentication: the verified identity may differ from the claimed one (a username
    /// from a certificate or a token), and a ban on it must hold too.
    fn start_session(
        &self,
        session: &SessionInfo,
        _connect: &Connect<'_>,
    ) -> Result<Option<Box<dyn super::SessionFilter>>, super::Deny> {
        let id = &session.identity;
        match self.bans.current().check_client(&id.client_id, id.username.as_deref(), now()) {
            Some(ban) => {
                self.metrics.ops.ban_hit(ban.kind.as_str());
                info!(
                    target: "moat::audit",
                    client_id = %escape(&id.client_id),
                    kind = ban.kind.as_str(),
                    reason = %escape(&ban.reason),
                    "banned identity refused"
                );
                Err(super::Deny { reason: ReasonCode::Banned, label: "banned", disconnect: false })
            }
            None => Ok(None),
        }
    }

    /// A live session after a ban change: its address, the identity it claimed and the one it
    /// was verified as (a ban on a username must also catch a certificate-derived username).
    fn on_recheck(&self, session: &SessionInfo, connect: &Connect<'_>) -> Verdict {
        let bans = self.bans.current();
        let now = now();
        let id = &session.identity;
        let hit = bans
            .check_ip(session.peer.peer.ip(), now)
            .or_else(|| bans.check_client(connect.client_id, connect.username, now))
            .or_else(|| bans.check_client(&id.client_id, id.username.as_deref(), now));
        match hit {
            Some(ban) => {
                self.metrics.ops.ban_hit(ban.kind.as_str());
                info!(
                    target: "moat::audit",
                    client_id = %escape(&id.client_id),
                    kind = ban.kind.as_str(),
                    reason = %escape(&ban.reason),
                    "live session banned, disconnecting"
                );
                Verdict::deny(ReasonCode::AdministrativeAction, "banned")
            }
            None => Verdict::Allow,
        }
    }
}

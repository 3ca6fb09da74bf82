//! Live sessions, for the admin API (list, kick) and for policy changes that must reach
//! connections already open. One entry per relayed connection, added once CONNECT is accepted
//! and removed when the connection ends (the [`Registration`] guard), so the list never holds a
//! closed session. A lock is taken only at session start/end and by admin calls, never per
//! packet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::Notify;

use crate::codec::{ProtocolVersion, ReasonCode};

/// What the admin API shows about a session. Built once at CONNECT.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    /// Connection id (the `id` of the connection's log span).
    pub id: u64,
    pub client_id: String,
    pub username: Option<String>,
    pub peer: SocketAddr,
    pub listener: Arc<str>,
    pub version: ProtocolVersion,
    pub cert_cn: Option<String>,
    pub authenticator: &'static str,
    /// Unix seconds.
    pub connected_at: u64,
}

/// A request to close one session, with the reason v5 clients are told.
#[derive(Default)]
pub struct Kick {
    reason: OnceLock<ReasonCode>,
    notify: Notify,
}

impl Kick {
    /// Asks the session to close. The first reason wins; the session acts on it even if it was
    /// not waiting at that instant (the notification is stored).
    pub fn kick(&self, reason: ReasonCode) {
        let _ = self.reason.set(reason);
        self.notify.notify_one();
    }

    /// Resolves once the session has been kicked, with the reason.
    pub async fn kicked(&self) -> ReasonCode {
        loop {
            if let Some(r) = self.reason.get() {
                return *r;
            }
            self.notify.notified().await;
        }
    }
}

struct Entry {
    info: Arc<ClientInfo>,
    kick: Arc<Kick>,
}

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<u64, Entry>>,
}

/// Removes the session from the registry when dropped.
pub struct Registration {
    registry: Arc<Registry>,
    id: u64,
    pub kick: Arc<Kick>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// Which sessions a listing or a kick applies to; `None` fields match everything.
#[derive(Clone, Debug, Default)]
pub struct ClientFilter {
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

impl ClientFilter {
    fn matches(&self, c: &ClientInfo) -> bool {
        self.client_id.as_ref().is_none_or(|id| *id == c.client_id)
            && self.username.as_ref().is_none_or(|u| Some(u) == c.username.as_ref())
            && self.ip.is_none_or(|ip| {
                crate::policy::bans::canonical_ip(ip) == crate::policy::bans::canonical_ip(c.peer.ip())
            })
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // Entries are inserted and removed whole: a poisoned map is still consistent.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(self: &Arc<Self>, info: ClientInfo) -> Registration {
        let id = info.id;
        let kick = Arc::new(Kick::default());
        self.lock().insert(id, Entry { info: Arc::new(info), kick: kick.clone() });
        Registration { registry: self.clone(), id, kick }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Matching sessions, oldest connection first (ids grow with time).
    pub fn list(&self, filter: &ClientFilter) -> Vec<Arc<ClientInfo>> {
        let mut out: Vec<Arc<ClientInfo>> =
            self.lock().values().filter(|e| filter.matches(&e.info)).map(|e| e.info.clone()).collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Closes every matching session; returns how many were asked to close.
    pub fn kick(&self, filter: &ClientFilter, reason: ReasonCode) -> usize {
        let map = self.lock();
        let mut n = 0;
        for e in map.values().filter(|e| filter.matches(&e.info)) {
            e.kick.kick(reason);
            n += 1;
        }
        n
    }
}

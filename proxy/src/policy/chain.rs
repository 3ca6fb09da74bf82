//! Ordered lists of filters: the first denial wins, so cheap and decisive filters go first.

use std::sync::Arc;

use super::{Deny, Filter, PeerInfo, SessionFilter, SessionInfo, Verdict};
use crate::codec::{Connect, Publish, SubscriptionOptions};

/// The process-wide filters, in order.
#[derive(Clone, Default)]
pub struct Chain {
    filters: Vec<Arc<dyn Filter>>,
}

/// The filter every chain holds when no policy is configured: moat then behaves as a strict,
/// transparent TLS front end.
pub struct AllowAll;

impl Filter for AllowAll {
    fn name(&self) -> &'static str {
        "allow_all"
    }
}

/// Returns the first denial of `hooks`, in order.
fn first_deny(hooks: impl Iterator<Item = Verdict>) -> Verdict {
    for v in hooks {
        if let Verdict::Deny(_) = v {
            return v;
        }
    }
    Verdict::Allow
}

impl Chain {
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> Self {
        Self { filters }
    }

    pub fn allow_all() -> Self {
        Self::new(vec![Arc::new(AllowAll)])
    }

    pub fn on_accept(&self, peer: &PeerInfo) -> Verdict {
        first_deny(self.filters.iter().map(|f| f.on_accept(peer)))
    }

    pub fn on_connect(&self, peer: &PeerInfo, connect: &Connect<'_>) -> Verdict {
        first_deny(self.filters.iter().map(|f| f.on_connect(peer, connect)))
    }

    pub fn on_auth_failure(&self, peer: &PeerInfo, connect: &Connect<'_>) {
        self.filters.iter().for_each(|f| f.on_auth_failure(peer, connect));
    }

    pub fn on_recheck(&self, session: &SessionInfo, connect: &Connect<'_>) -> Verdict {
        first_deny(self.filters.iter().map(|f| f.on_recheck(session, connect)))
    }

    pub fn checks_delivery(&self) -> bool {
        self.filters.iter().any(|f| f.checks_delivery())
    }

    /// Starts every filter's per-session part; the first refusal wins.
    pub fn start_session(&self, session: &SessionInfo, connect: &Connect<'_>) -> Result<SessionChain, Deny> {
        let mut filters = Vec::new();
        for f in &self.filters {
            if let Some(s) = f.start_session(session, connect)? {
                filters.push(s);
            }
        }
        Ok(SessionChain { filters })
    }
}

/// The per-session filters of one connection, in chain order.
#[derive(Default)]
pub struct SessionChain {
    filters: Vec<Box<dyn SessionFilter>>,
}

impl SessionChain {
    pub fn on_publish(&mut self, s: &SessionInfo, topic: &str, p: &Publish<'_>) -> Verdict {
        first_deny(self.filters.iter_mut().map(|f| f.on_publish(s, topic, p)))
    }

    pub fn on_subscribe(&mut self, s: &SessionInfo, filter: &str, o: SubscriptionOptions) -> Verdict {
        first_deny(self.filters.iter_mut().map(|f| f.on_subscribe(s, filter, o)))
    }

    pub fn on_deliver(&mut self, s: &SessionInfo, topic: &str, p: &Publish<'_>) -> Verdict {
        first_deny(self.filters.iter_mut().map(|f| f.on_deliver(s, topic, p)))
    }
}

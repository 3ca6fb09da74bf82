//! An ordered list of filters: the first denial wins, so cheap and decisive filters go first.

use std::sync::Arc;

use super::{Filter, PeerInfo, SessionInfo, Verdict};
use crate::codec::{Connect, Publish, SubscriptionOptions};

#[derive(Clone, Default)]
pub struct Chain {
    filters: Vec<Arc<dyn Filter>>,
}

/// The filter every chain starts from until policies are configured: moat then behaves as a
/// strict, transparent TLS front end.
pub struct AllowAll;

impl Filter for AllowAll {
    fn name(&self) -> &'static str {
        "allow_all"
    }
}

macro_rules! run_hooks {
    ($self:ident, $hook:ident ( $($arg:expr),* )) => {{
        for f in &$self.filters {
            if let v @ Verdict::Deny(_) = f.$hook($($arg),*) {
                return v;
            }
        }
        Verdict::Allow
    }};
}

impl Chain {
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> Self {
        Self { filters }
    }

    pub fn allow_all() -> Self {
        Self::new(vec![Arc::new(AllowAll)])
    }

    pub fn on_accept(&self, peer: &PeerInfo) -> Verdict {
        run_hooks!(self, on_accept(peer))
    }

    pub fn on_connect(&self, peer: &PeerInfo, connect: &Connect<'_>) -> Verdict {
        run_hooks!(self, on_connect(peer, connect))
    }

    pub fn on_publish(&self, s: &SessionInfo, topic: &str, p: &Publish<'_>) -> Verdict {
        run_hooks!(self, on_publish(s, topic, p))
    }

    pub fn on_subscribe(&self, s: &SessionInfo, filter: &str, o: SubscriptionOptions) -> Verdict {
        run_hooks!(self, on_subscribe(s, filter, o))
    }

    pub fn on_deliver(&self, s: &SessionInfo, topic: &str, p: &Publish<'_>) -> Verdict {
        run_hooks!(self, on_deliver(s, topic, p))
    }
}

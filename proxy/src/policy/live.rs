//! The policy in force, swappable at runtime. A reload builds a complete new [`PolicySet`] from
//! validated files and swaps it in one step, so no connection ever sees half of an old policy and
//! half of a new one. New connections read the current set at CONNECT; live sessions are told
//! through a generation counter and re-check themselves (bans, CONNECT-time denials, their
//! compiled ACL) at once, not at their next packet, so a new ban cannot wait on an idle client.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

use super::authn::AuthChain;
use super::Chain;
use crate::config::BrokerIdentity;

/// Everything that decides about a connection, as one immutable value.
pub struct PolicySet {
    /// Global filters (bans, flapping, ACL), in order.
    pub chain: Chain,
    /// Each listener's authentication chain, by listener name.
    pub auth: HashMap<Arc<str>, Arc<AuthChain>>,
    /// What the broker is told about the client in the forwarded CONNECT.
    pub broker_identity: BrokerIdentity,
}

impl PolicySet {
    /// The listener's chain; a listener without one (cannot happen with a validated config)
    /// gets an empty chain, which denies everyone.
    pub fn auth_for(&self, listener: &str) -> Arc<AuthChain> {
        match self.auth.get(listener) {
            Some(a) => a.clone(),
            None => Arc::new(AuthChain::new(Vec::new(), AuthChain::verification_pool())),
        }
    }
}

/// A counter that changes whenever something live sessions must re-check has changed: a new
/// policy set, or the ban list. Shared by [`LivePolicy`] and the live ban list.
#[derive(Clone)]
pub struct Generation(Arc<watch::Sender<u64>>);

impl Default for Generation {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(1)))
    }
}

impl Generation {
    /// Tells every live session to re-check itself; returns the new generation.
    pub fn bump(&self) -> u64 {
        let mut next = 0;
        self.0.send_modify(|g| {
            *g = g.wrapping_add(1);
            next = *g;
        });
        next
    }

    pub fn current(&self) -> u64 {
        *self.0.borrow()
    }

    /// A receiver that wakes when the generation changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// The current [`PolicySet`], swapped whole by a reload.
pub struct LivePolicy {
    current: ArcSwap<PolicySet>,
    generation: Generation,
}

impl LivePolicy {
    pub fn new(set: PolicySet, generation: Generation) -> Self {
        Self { current: ArcSwap::from_pointee(set), generation }
    }

    /// The set in force now. Cheap (no lock, no allocation); hold it only briefly.
    pub fn load(&self) -> Guard<Arc<PolicySet>> {
        self.current.load()
    }

    /// The set in force now, to keep across awaits (one connect phase decides under one set).
    pub fn snapshot(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Puts `set` in force and tells every live session to re-check itself.
    pub fn replace(&self, set: PolicySet) -> u64 {
        self.current.store(Arc::new(set));
        self.generation.bump()
    }

    pub fn generation(&self) -> &Generation {
        &self.generation
    }
}

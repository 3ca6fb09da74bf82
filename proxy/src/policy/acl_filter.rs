//! The ACL as a filter: compiled per client at session start (placeholders expanded once, trap
//! 7), the Will checked as a publish (trap 3), then every PUBLISH and SUBSCRIBE filter checked.
//! Shadow mode (`enforce: false`) counts and logs "would deny" and lets traffic through.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use tracing::info;

use super::acl::{self, ClientAcl, Decision, DenyAction, Permission, RuleSet};
use super::{Deny, Filter, SessionFilter, SessionInfo, Verdict};
use crate::codec::{Connect, Publish, ReasonCode, SubscriptionOptions};
use crate::metrics::Metrics;
use crate::util::escape;

/// Counters per action, indexed by [`Outcome`].
#[derive(Clone)]
struct Counters {
    publish: [Counter; 3],
    subscribe: [Counter; 3],
    will: [Counter; 3],
}

#[derive(Clone, Copy)]
enum Outcome {
    Allow = 0,
    Deny = 1,
    WouldDeny = 2,
}

pub struct AclFilter {
    rules: Arc<RuleSet>,
    counters: Counters,
}

impl AclFilter {
    pub fn new(rules: Arc<RuleSet>, metrics: Arc<Metrics>) -> Self {
        let per = |action| ["allow", "deny", "would_deny"].map(|r| metrics.acl_counter(action, r));
        let counters = Counters {
            publish: per("publish"),
            subscribe: per("subscribe"),
            will: per("will"),
        };
        Self { rules, counters }
    }
}

/// A client id or username that would widen a `${…}` rule (trap 7).
fn unsafe_for_placeholders(s: &str) -> bool {
    s.is_empty() || s.chars().any(|c| matches!(c, '+' | '#' | '/') || c.is_control())
}

impl Filter for AclFilter {
    fn name(&self) -> &'static str {
        "acl"
    }

    fn start_session(
        &self,
        session: &SessionInfo,
        connect: &Connect<'_>,
    ) -> Result<Option<Box<dyn SessionFilter>>, Deny> {
        let id = &session.identity;
        let refuse = Deny {
            reason: ReasonCode::ClientIdentifierNotValid,
            label: "unsafe_identity",
            disconnect: true,
        };
        if self.rules.uses_placeholder("clientid") && unsafe_for_placeholders(&id.client_id) {
            return Err(refuse);
        }
        if self.rules.uses_placeholder("username")
            && id.username.as_deref().is_some_and(unsafe_for_placeholders)
        {
            return Err(refuse);
        }
        let who = acl::Identity {
            username: id.username.clone(),
            client_id: id.client_id.clone(),
            peer: Some(session.peer.peer.ip()),
            cert_cn: id.cert_cn.clone(),
            groups: id.groups.clone(),
            attributes: id.attributes.clone(),
            superuser: id.superuser,
        };
        let s = AclSession {
            acl: self.rules.compile_for(&who, &[]),
            enforce: self.rules.enforce(),
            disconnect: self.rules.deny_action() == DenyAction::Disconnect,
            counters: self.counters.clone(),
        };
        if let Some(will) = &connect.will {
            let decision = s.acl.check_publish(will.topic, will.qos as u8, will.retain);
            if let Verdict::Deny(mut d) = s.verdict(&decision, "will", will.topic) {
                d.disconnect = true;
                return Err(d);
            }
        }
        Ok(Some(Box::new(s)))
    }
}

struct AclSession {
    acl: ClientAcl,
    enforce: bool,
    disconnect: bool,
    counters: Counters,
}

impl AclSession {
    fn verdict(&self, d: &Decision, action: &'static str, topic: &str) -> Verdict {
        let counters = match action {
            "publish" => &self.counters.publish,
            "subscribe" => &self.counters.subscribe,
            _ => &self.counters.will,
        };
        let count = |o: Outcome| {
            if let Some(c) = counters.get(o as usize) {
                c.inc();
            }
        };
        if d.permission == Permission::Allow {
            count(Outcome::Allow);
            return Verdict::Allow;
        }
        let rule = d.rule.as_deref().unwrap_or("no_match");
        if !self.enforce {
            count(Outcome::WouldDeny);
            info!(target: "moat::audit", action, topic = %escape(topic), rule, "ACL would deny (shadow mode)");
            return Verdict::Allow;
        }
        count(Outcome::Deny);
        info!(target: "moat::audit", action, topic = %escape(topic), rule, "ACL denied");
        Verdict::Deny(Deny {
            reason: ReasonCode::NotAuthorized,
            label: "acl",
            disconnect: self.disconnect,
        })
    }
}

impl SessionFilter for AclSession {
    fn on_publish(&mut self, _s: &SessionInfo, topic: &str, p: &Publish<'_>) -> Verdict {
        let d = self.acl.check_publish(topic, p.qos as u8, p.retain);
        self.verdict(&d, "publish", topic)
    }

    fn on_subscribe(&mut self, _s: &SessionInfo, filter: &str, o: SubscriptionOptions) -> Verdict {
        let d = self.acl.check_subscribe(filter, o.qos as u8);
        self.verdict(&d, "subscribe", filter)
    }
}

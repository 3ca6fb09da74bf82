//! The ACL as a filter: compiled per client at session start (placeholders expanded once, trap
//! 7), the Will checked as a publish (trap 3), then every PUBLISH and SUBSCRIBE filter checked,
//! and optionally every delivery.
//! Shadow mode (`enforce: false`) counts and logs "would deny" and lets traffic through.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use tracing::info;

use super::acl::{self, ClientAcl, Decision, DenyAction, Permission, RuleSet};
use super::{Deny, Filter, SessionFilter, SessionInfo, Verdict};
use crate::codec::{Connect, Publish, ReasonCode, SubscriptionOptions};
use crate::metrics::Metrics;
use crate::util::escape;

/// Counters per action, indexed by [`Outcome`], and per rule id; resolved once and shared by all
/// sessions, so counting a decision neither allocates nor takes a lock.
struct Counters {
    /// Indexed by `[Point][Outcome]`.
    by_point: [[Counter; 4]; 4],
    /// Rule ids are few and chosen by the user: a bounded label set.
    rules: HashMap<Arc<str>, Counter>,
}

/// Where a decision is made; also the `action` metric label.
#[derive(Clone, Copy)]
enum Point {
    Publish = 0,
    Subscribe = 1,
    Deliver = 2,
    Will = 3,
}

impl Point {
    const ALL: [Point; 4] = [Point::Publish, Point::Subscribe, Point::Deliver, Point::Will];

    fn label(self) -> &'static str {
        match self {
            Point::Publish => "publish",
            Point::Subscribe => "subscribe",
            Point::Deliver => "deliver",
            Point::Will => "will",
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Allow = 0,
    Deny = 1,
    WouldDeny = 2,
    /// No rule matched; `no_match` decided.
    NoMatch = 3,
}

pub struct AclFilter {
    rules: Arc<RuleSet>,
    counters: Arc<Counters>,
    check_delivery: bool,
    /// No ACL file: only clients whose credential carries rules get an ACL (their rules, then
    /// `no_match: deny`); everyone else is unrestricted, as without an ACL.
    credential_only: bool,
}

impl AclFilter {
    /// `check_delivery`: also check each broker → client PUBLISH against the client's subscribe
    /// permissions (closes the gap left by rule order, or by rules changed after subscribing).
    pub fn new(rules: Arc<RuleSet>, metrics: Arc<Metrics>, check_delivery: bool) -> Self {
        let per =
            |action| ["allow", "deny", "would_deny", "no_match"].map(|r| metrics.acl_counter(action, r));
        let rule_counters = rules
            .rules()
            .iter()
            .map(|r| (Arc::<str>::from(r.id()), metrics.acl_rule_counter(r.id())))
            .collect();
        let counters = Counters { by_point: Point::ALL.map(|p| per(p.label())), rules: rule_counters };
        Self { rules, counters: Arc::new(counters), check_delivery, credential_only: false }
    }

    /// For a config without an ACL file whose authenticators may hand out rules (JWT `acl`
    /// claim, HTTP backend): those rules are enforced, followed by deny.
    pub fn credential_rules_only(metrics: Arc<Metrics>) -> Self {
        let mut f = Self::new(Arc::new(RuleSet::default()), metrics, false);
        f.credential_only = true;
        f
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

    fn checks_delivery(&self) -> bool {
        self.check_delivery
    }

    fn start_session(
        &self,
        session: &SessionInfo,
        connect: &Connect<'_>,
    ) -> Result<Option<Box<dyn SessionFilter>>, Deny> {
        let id = &session.identity;
        if self.credential_only && id.acl_rules.is_empty() {
            return Ok(None);
        }
        let refuse =
            Deny { reason: ReasonCode::ClientIdentifierNotValid, label: "unsafe_identity", disconnect: true };
        let uses = |name: &str| {
            self.rules.uses_placeholder(name) || RuleSet::rules_use_placeholder(&id.acl_rules, name)
        };
        if uses("clientid") && unsafe_for_placeholders(&id.client_id) {
            return Err(refuse);
        }
        if uses("username") && id.username.as_deref().is_some_and(unsafe_for_placeholders) {
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
            acl: self.rules.compile_for(&who, &id.acl_rules),
            enforce: self.rules.enforce(),
            disconnect: self.rules.deny_action() == DenyAction::Disconnect,
            counters: self.counters.clone(),
            check_delivery: self.check_delivery,
        };
        if let Some(will) = &connect.will {
            let decision = s.acl.check_publish(will.topic, will.qos as u8, will.retain);
            if let Verdict::Deny(mut d) = s.verdict(&decision, Point::Will, will.topic) {
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
    counters: Arc<Counters>,
    check_delivery: bool,
}

impl AclSession {
    fn verdict(&self, d: &Decision, point: Point, topic: &str) -> Verdict {
        let action = point.label();
        let count = |o: Outcome| {
            if let Some(c) = self.counters.by_point.get(point as usize).and_then(|c| c.get(o as usize)) {
                c.inc();
            }
        };
        match d.rule.as_ref() {
            Some(rule) => {
                if let Some(c) = self.counters.rules.get(rule) {
                    c.inc();
                }
            }
            None if !d.superuser => count(Outcome::NoMatch),
            None => {}
        }
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
        Verdict::Deny(Deny { reason: ReasonCode::NotAuthorized, label: "acl", disconnect: self.disconnect })
    }
}

impl SessionFilter for AclSession {
    fn on_publish(&mut self, _s: &SessionInfo, topic: &str, p: &Publish<'_>) -> Verdict {
        let d = self.acl.check_publish(topic, p.qos as u8, p.retain);
        self.verdict(&d, Point::Publish, topic)
    }

    fn on_subscribe(&mut self, _s: &SessionInfo, filter: &str, o: SubscriptionOptions) -> Verdict {
        let d = self.acl.check_subscribe(filter, o.qos as u8);
        self.verdict(&d, Point::Subscribe, filter)
    }

    /// A delivered topic is checked as a subscription to exactly that topic.
    fn on_deliver(&mut self, _s: &SessionInfo, topic: &str, p: &Publish<'_>) -> Verdict {
        if !self.check_delivery {
            return Verdict::Allow;
        }
        let d = self.acl.check_subscribe(topic, p.qos as u8);
        self.verdict(&d, Point::Deliver, topic)
    }
}

//! `moat policy explain`: what the ACL decides for one client and one topic, and which rule
//! (`file:line` or its id) decided. The same compiled ACL the proxy uses answers the question.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::policy::acl::{Identity, Permission, RuleSet};

/// The client to explain a decision for.
#[derive(Debug, Default)]
pub struct Who {
    pub username: Option<String>,
    pub client_id: String,
    pub cert_cn: Option<String>,
    pub peer: Option<IpAddr>,
    pub groups: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub superuser: bool,
}

pub enum Question<'a> {
    Publish { topic: &'a str, qos: u8, retain: bool },
    Subscribe { filter: &'a str, qos: u8 },
}

/// One line per fact: the decision, the rule, and whether shadow mode would let it pass.
pub fn explain(rules: &RuleSet, who: Who, question: Question<'_>) -> String {
    let identity = Identity {
        username: who.username,
        client_id: who.client_id,
        peer: who.peer,
        cert_cn: who.cert_cn,
        groups: who.groups,
        attributes: who.attributes,
        superuser: who.superuser,
    };
    let acl = rules.compile_for(&identity, &[]);
    let (action, subject, d) = match question {
        Question::Publish { topic, qos, retain } => ("publish", topic, acl.check_publish(topic, qos, retain)),
        Question::Subscribe { filter, qos } => ("subscribe", filter, acl.check_subscribe(filter, qos)),
    };
    let verdict = match d.permission {
        Permission::Allow => "allow",
        Permission::Deny => "deny",
    };
    let why = match (&d.rule, d.superuser) {
        (_, true) => "superuser (rules not consulted)".to_string(),
        (Some(rule), _) => format!("rule {rule}"),
        (None, _) => format!("no rule matched; no_match is {:?}", rules.no_match()).to_lowercase(),
    };
    let mut out = format!("{action} {subject}: {verdict}\n  decided by: {why}\n");
    if d.permission == Permission::Deny && !rules.enforce() {
        out.push_str("  shadow mode (enforce: false): would be denied, traffic passes\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::acl::parse_rule_file;

    #[test]
    fn names_the_deciding_rule() {
        let rules = parse_rule_file(
            "rules:\n  - id: own\n    permission: allow\n    who: all\n    action: publish\n    topics: [\"d/${clientid}/#\"]\n",
            "acl.yaml",
        )
        .expect("rules");
        let who = || Who { client_id: "c1".into(), ..Who::default() };
        let ok = explain(&rules, who(), Question::Publish { topic: "d/c1/t", qos: 0, retain: false });
        assert_eq!(ok, "publish d/c1/t: allow\n  decided by: rule own\n");
        let no = explain(&rules, who(), Question::Subscribe { filter: "d/#", qos: 0 });
        assert!(no.starts_with("subscribe d/#: deny\n  decided by: no rule matched"), "{no}");
    }
}

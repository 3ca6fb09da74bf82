use crate::policy::acl::*;

pub fn set(yaml: &str) -> RuleSet {
    match parse_rule_file(yaml, "t.yaml") {
        Ok(s) => s,
        Err(e) => panic!("rule file rejected: {e:?}"),
    }
}

pub fn issues(yaml: &str) -> Vec<LoadIssue> {
    match parse_rule_file(yaml, "t.yaml") {
        Ok(_) => panic!("rule file accepted"),
        Err(e) => e,
    }
}

pub fn client(id: &str) -> Identity {
    Identity { client_id: id.into(), username: Some(format!("user-{id}")), ..Identity::default() }
}

pub fn acl(yaml: &str, who: &Identity) -> ClientAcl {
    set(yaml).compile_for(who, &[])
}

pub fn pub_ok(a: &ClientAcl, topic: &str) -> bool {
    a.check_publish(topic, 0, false).allowed()
}

pub fn sub_ok(a: &ClientAcl, filter: &str) -> bool {
    a.check_subscribe(filter, 0).allowed()
}

use std::net::IpAddr;

use super::helpers::*;
use crate::policy::acl::*;

fn rule(perm: &str, who: &str, action: &str, topics: &str) -> String {
    format!("  - {{permission: {perm}, who: {who}, action: {action}, topics: {topics}}}\n")
}

#[test]
fn first_match_wins() {
    let y = format!(
        "rules:\n{}{}",
        rule("deny", "all", "publish", "[\"a/secret\"]"),
        rule("allow", "all", "publish", "[\"a/#\"]")
    );
    let a = acl(&y, &client("c"));
    assert!(!pub_ok(&a, "a/secret"));
    assert!(pub_ok(&a, "a/open"));
    let y = format!(
        "rules:\n{}{}",
        rule("allow", "all", "publish", "[\"a/#\"]"),
        rule("deny", "all", "publish", "[\"a/secret\"]")
    );
    assert!(pub_ok(&acl(&y, &client("c")), "a/secret"));
}

#[test]
fn decision_names_matching_rule() {
    let a = acl("rules:\n  - {id: r1, permission: deny, who: all, action: all, topics: [x]}\n", &client("c"));
    let d = a.check_publish("x", 0, false);
    assert_eq!(d.rule.as_deref(), Some("r1"));
    assert!(!d.superuser);
}

#[test]
fn no_match_applies_when_nothing_matches() {
    let a = acl("rules: []", &client("c"));
    assert_eq!(
        a.check_publish("x", 0, false),
        Decision { permission: Permission::Deny, rule: None, superuser: false }
    );
    let a = acl("no_match: allow\nrules: []", &client("c"));
    assert!(pub_ok(&a, "x"));
    assert!(sub_ok(&a, "#"));
}

#[test]
fn superuser_allowed_without_rules() {
    let mut who = client("root");
    who.superuser = true;
    let a = acl(&format!("rules:\n{}", rule("deny", "all", "all", "[\"#\"]")), &who);
    let d = a.check_publish("x", 1, true);
    assert_eq!(d, Decision { permission: Permission::Allow, rule: None, superuser: true });
    assert!(a.check_subscribe("#", 2).superuser);
}

#[test]
fn eq_matches_only_literal() {
    let a = acl(
        &format!("rules:\n{}", rule("allow", "all", "all", "[{eq: \"admin/#\"}, {eq: \"x/y\"}]")),
        &client("c"),
    );
    assert!(sub_ok(&a, "admin/#"));
    assert!(!sub_ok(&a, "admin/+"));
    assert!(!sub_ok(&a, "admin/x"));
    assert!(!pub_ok(&a, "admin/x"));
    assert!(pub_ok(&a, "x/y"));
    assert!(sub_ok(&a, "x/y"));
    assert!(sub_ok(&a, "$share/g/x/y"));
}

#[test]
fn eq_deny_blocks_only_identical_filter() {
    let y = format!(
        "rules:\n{}{}",
        rule("deny", "all", "subscribe", "[{eq: \"#\"}]"),
        rule("allow", "all", "subscribe", "[\"#\"]")
    );
    let a = acl(&y, &client("c"));
    assert!(!sub_ok(&a, "#"));
    assert!(sub_ok(&a, "a/#"));
}

#[test]
fn allow_rule_must_contain_subscription_filter() {
    let a = acl(&format!("rules:\n{}", rule("allow", "all", "subscribe", "[\"a/+\"]")), &client("c"));
    assert!(sub_ok(&a, "a/b"));
    assert!(sub_ok(&a, "a/+"));
    assert!(!sub_ok(&a, "a/#"));
    assert!(!sub_ok(&a, "#"));
    assert!(!sub_ok(&a, "+/b"));
}

#[test]
fn allow_that_only_intersects_falls_through() {
    let y = format!(
        "rules:\n{}{}",
        rule("allow", "all", "subscribe", "[\"a/b\"]"),
        rule("deny", "all", "subscribe", "[\"a/secret\"]")
    );
    let a = acl(&format!("no_match: allow\n{y}"), &client("c"));
    // `a/+` intersects the allow but is not inside it: evaluation continues to the deny.
    let d = a.check_subscribe("a/+", 0);
    assert_eq!(d.permission, Permission::Deny);
}

#[test]
fn deny_rule_blocks_intersecting_filter() {
    let y = format!(
        "rules:\n{}{}",
        rule("deny", "all", "subscribe", "[\"a/secret\"]"),
        rule("allow", "all", "subscribe", "[\"#\"]")
    );
    let a = acl(&y, &client("c"));
    for f in ["#", "a/#", "+/secret", "a/+", "$share/g/#", "$queue/a/+"] {
        assert!(!sub_ok(&a, f), "{f} must be denied");
    }
    assert!(sub_ok(&a, "a/public"));
    assert!(sub_ok(&a, "b/#"));
}

#[test]
fn share_prefix_is_stripped() {
    let a = acl(&format!("rules:\n{}", rule("allow", "all", "subscribe", "[\"jobs/#\"]")), &client("c"));
    assert!(sub_ok(&a, "$share/workers/jobs/new"));
    assert!(sub_ok(&a, "$queue/jobs/new"));
    assert!(!sub_ok(&a, "$share/jobs/x"));
    assert!(!sub_ok(&a, "$share/workers/other"));
}

#[test]
fn share_prefix_cannot_smuggle_dollar_topics() {
    let a = acl(&format!("rules:\n{}", rule("allow", "all", "subscribe", "[\"#\"]")), &client("c"));
    assert!(!sub_ok(&a, "$share/g/$SYS/#"));
    assert!(!sub_ok(&a, "$SYS/#"));
    assert!(sub_ok(&a, "$share/g/#"));
}

#[test]
fn dollar_rules_apply_to_stripped_filter() {
    let a = acl(&format!("rules:\n{}", rule("allow", "all", "subscribe", "[\"$SYS/#\"]")), &client("c"));
    assert!(sub_ok(&a, "$share/g/$SYS/broker/+"));
    assert!(sub_ok(&a, "$SYS/broker/load"));
}

#[test]
fn wildcard_first_level_rule_does_not_grant_dollar_topics() {
    let a = acl(&format!("rules:\n{}", rule("allow", "all", "all", "[\"#\", \"+/+\"]")), &client("c"));
    assert!(!pub_ok(&a, "$SYS/x"));
    assert!(!sub_ok(&a, "$SYS/x"));
    assert!(!sub_ok(&a, "$SYS/#"));
}

#[test]
fn qos_qualifier_limits_matches() {
    let y = "rules:\n  - {permission: allow, who: all, action: all, qos: [0], topics: [\"t/#\"]}\n";
    let a = acl(y, &client("c"));
    assert!(a.check_publish("t/a", 0, false).allowed());
    assert!(!a.check_publish("t/a", 1, false).allowed());
    assert!(a.check_subscribe("t/#", 0).allowed());
    assert!(!a.check_subscribe("t/#", 2).allowed());
}

#[test]
fn retain_qualifier_limits_publish() {
    let y = "rules:\n  - {permission: deny, who: all, action: publish, retain: true, topics: [\"t/#\"]}\n  - {permission: allow, who: all, action: all, topics: [\"t/#\"]}\n";
    let a = acl(y, &client("c"));
    assert!(!a.check_publish("t/a", 0, true).allowed());
    assert!(a.check_publish("t/a", 0, false).allowed());
    assert!(a.check_subscribe("t/#", 0).allowed());
}

#[test]
fn action_restricts_rule() {
    let a = acl(&format!("rules:\n{}", rule("allow", "all", "publish", "[\"t\"]")), &client("c"));
    assert!(pub_ok(&a, "t"));
    assert!(!sub_ok(&a, "t"));
    let a = acl(&format!("rules:\n{}", rule("allow", "all", "subscribe", "[\"t\"]")), &client("c"));
    assert!(!pub_ok(&a, "t"));
    assert!(sub_ok(&a, "t"));
}

#[test]
fn who_username_and_regex() {
    let y = format!(
        "rules:\n{}{}",
        rule("allow", "{username: alice}", "publish", "[a]"),
        rule("allow", "{clientid_re: \"dev-[0-9]+\"}", "publish", "[b]")
    );
    let s = set(&y);
    let mut alice = client("dev-12");
    alice.username = Some("alice".into());
    let a = s.compile_for(&alice, &[]);
    assert!(pub_ok(&a, "a") && pub_ok(&a, "b"));
    let a = s.compile_for(&client("evil-dev-12"), &[]);
    assert!(!pub_ok(&a, "b"), "regex must match the whole client id");
    assert!(!pub_ok(&a, "a"));
}

#[test]
fn who_absent_field_does_not_match() {
    let y = format!("rules:\n{}", rule("allow", "{username: \"\"}", "publish", "[a]"));
    assert!(issues(&y).iter().any(|i| i.key.ends_with("username")));
    let y = format!("rules:\n{}", rule("allow", "{username_re: \".*\"}", "publish", "[a]"));
    let mut anon = client("c");
    anon.username = None;
    assert!(!pub_ok(&acl(&y, &anon), "a"));
    let y = format!("rules:\n{}", rule("allow", "{cert_cn: x}", "publish", "[a]"));
    assert!(!pub_ok(&acl(&y, &anon), "a"));
    let y = format!("rules:\n{}", rule("allow", "{ipaddr: \"10.0.0.0/8\"}", "publish", "[a]"));
    assert!(!pub_ok(&acl(&y, &anon), "a"));
}

#[test]
fn who_ipaddr_cidr_and_exact() {
    let y = format!(
        "rules:\n{}{}",
        rule("allow", "{ipaddr: \"10.0.0.0/8\"}", "publish", "[a]"),
        rule("allow", "{ipaddr: \"192.168.1.5\"}", "publish", "[b]")
    );
    let s = set(&y);
    let mut c = client("c");
    c.peer = Some("10.1.2.3".parse::<IpAddr>().unwrap());
    let a = s.compile_for(&c, &[]);
    assert!(pub_ok(&a, "a") && !pub_ok(&a, "b"));
    c.peer = Some("::ffff:192.168.1.5".parse::<IpAddr>().unwrap());
    let a = s.compile_for(&c, &[]);
    assert!(!pub_ok(&a, "a") && pub_ok(&a, "b"), "IPv4-mapped peers match IPv4 rules");
}

#[test]
fn who_group_attr_and_or() {
    let y = format!(
        "rules:\n{}",
        rule(
            "allow",
            "{and: [{group: ops}, {or: [{attr: {site: ber}}, {cert_cn: admin}]}]}",
            "publish",
            "[a]"
        )
    );
    let s = set(&y);
    let mut c = client("c");
    c.groups = vec!["ops".into()];
    assert!(!pub_ok(&s.compile_for(&c, &[]), "a"));
    c.attributes.insert("site".into(), "ber".into());
    assert!(pub_ok(&s.compile_for(&c, &[]), "a"));
    c.groups.clear();
    assert!(!pub_ok(&s.compile_for(&c, &[]), "a"));
}

#[test]
fn extra_rules_go_first() {
    let s = set(&format!("rules:\n{}", rule("allow", "all", "publish", "[\"t/#\"]")));
    let extra = parse_rules_json(&serde_json::json!([
        {"id": "jwt-deny", "permission": "deny", "who": "all", "action": "publish", "topics": ["t/x"]}
    ]))
    .unwrap();
    let a = s.compile_for(&client("c"), &extra);
    let d = a.check_publish("t/x", 0, false);
    assert_eq!((d.permission, d.rule.as_deref()), (Permission::Deny, Some("jwt-deny")));
    assert!(pub_ok(&a, "t/y"));
}

#[test]
fn will_is_checked_as_publish() {
    // Trap 3: the session checks the Will with check_publish, including its retain flag.
    let y = "rules:\n  - {permission: deny, who: all, action: publish, retain: true, topics: [\"status/#\"]}\n  - {permission: allow, who: all, action: publish, topics: [\"status/#\"]}\n";
    let a = acl(y, &client("c"));
    assert!(!a.check_publish("status/c", 1, true).allowed());
    assert!(a.check_publish("status/c", 1, false).allowed());
}

#[test]
fn empty_topic_from_unresolved_alias_is_denied() {
    // Trap 8: an alias-only PUBLISH must be resolved before the check; if not, fail closed.
    let a = acl("no_match: allow\nrules: []", &client("c"));
    assert!(!pub_ok(&a, ""));
    let mut su = client("c");
    su.superuser = true;
    assert!(!pub_ok(&acl("rules: []", &su), ""));
}

#[test]
fn wildcard_or_nul_in_publish_topic_is_denied() {
    // Trap 10.
    let a = acl("no_match: allow\nrules: []", &client("c"));
    for t in ["a/+", "#", "a/#", "a\0b"] {
        assert!(!pub_ok(&a, t), "{t:?}");
    }
    assert!(!a.check_publish("a", 3, false).allowed());
}

#[test]
fn invalid_subscription_filter_is_denied() {
    let a = acl("no_match: allow\nrules: []", &client("c"));
    for f in ["a/#/b", "a+", "", "$share//a", "$share/g", "$queue/", "a\0"] {
        assert!(!sub_ok(&a, f), "{f:?}");
    }
}

#[test]
fn matching_is_byte_exact_no_case_folding() {
    let a = acl(
        &(format!("rules:\n{}", rule("deny", "all", "all", "[\"admin/#\"]")) + "no_match: allow\n"),
        &client("c"),
    );
    assert!(!pub_ok(&a, "admin/x"));
    assert!(pub_ok(&a, "Admin/x"));
    assert!(pub_ok(&a, "admin\u{200b}/x"));
}

#[test]
fn index_preserves_rule_order_across_buckets() {
    let y = format!(
        "rules:\n{}{}{}",
        rule("deny", "all", "publish", "[\"+/secret\"]"),
        rule("allow", "all", "publish", "[\"a/#\"]"),
        rule("deny", "all", "publish", "[\"#\"]")
    );
    let a = acl(&y, &client("c"));
    assert!(!pub_ok(&a, "a/secret"));
    assert!(pub_ok(&a, "a/b"));
    assert!(!pub_ok(&a, "b/c"));
}

#[test]
fn rules_for_other_clients_are_dropped_at_compile() {
    let y = format!(
        "rules:\n{}{}",
        rule("allow", "{clientid: other}", "publish", "[a]"),
        rule("allow", "{clientid: me}", "publish", "[b]")
    );
    let a = acl(&y, &client("me"));
    assert_eq!(a.rule_count(), 1);
}

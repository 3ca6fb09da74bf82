use super::helpers::*;
use crate::policy::acl::*;

const OK: &str = r##"
enforce: false
no_match: allow
deny_action: disconnect
rules:
  - id: own-devices
    permission: allow
    who: {username: alice}
    action: publish
    qos: [0, 1]
    retain: false
    topics: ["devices/${clientid}/#", {eq: "admin/#"}]
  - permission: deny
    who: all
    action: all
    topics: ["#"]
"##;

#[test]
fn full_example_parses() {
    let s = set(OK);
    assert_eq!(s.len(), 2);
    assert_eq!(s.no_match(), Permission::Allow);
    assert_eq!(s.deny_action(), DenyAction::Disconnect);
    assert_eq!(s.rules()[0].id(), "own-devices");
}

#[test]
fn shadow_mode_flag_parsed() {
    assert!(!set(OK).enforce());
    assert!(set("rules: []").enforce());
}

#[test]
fn defaults_are_deny_ignore_enforce() {
    let s = set("rules: []");
    assert_eq!(s.no_match(), Permission::Deny);
    assert_eq!(s.deny_action(), DenyAction::Ignore);
    assert!(s.is_empty());
}

#[test]
fn default_rule_id_is_file_and_line() {
    let s = set(OK);
    assert_eq!(s.rules()[1].id(), "t.yaml:13");
}

#[test]
fn unknown_key_reported_with_line() {
    let e = issues("rules:\n  - permission: allow\n    who: all\n    action: publish\n    topic: [a]\n");
    let i = e.iter().find(|i| i.key == "rules[0].topic").expect("issue for topic");
    assert_eq!(i.line, 5);
    assert!(e.iter().any(|i| i.key == "rules[0].topics" && i.message.contains("missing")));
}

#[test]
fn unknown_top_level_key_reported() {
    let e = issues("rulez: []\nrules: []\n");
    assert_eq!((e[0].line, e[0].key.as_str()), (1, "rulez"));
}

#[test]
fn all_errors_collected() {
    let e = issues(
        "no_match: maybe\nrules:\n  - permission: perhaps\n    who: {username_re: \"(\"}\n    action: publish\n    topics: [\"a/#/b\"]\n  - permission: allow\n    who: {ipaddr: \"10.0.0.300\"}\n    action: jump\n    qos: [3]\n    topics: [\"${nope}\"]\n",
    );
    let keys: Vec<&str> = e.iter().map(|i| i.key.as_str()).collect();
    for k in [
        "no_match",
        "rules[0].permission",
        "rules[0].who.username_re",
        "rules[0].topics[0]",
        "rules[1].who.ipaddr",
        "rules[1].action",
        "rules[1].qos",
        "rules[1].topics[0]",
    ] {
        assert!(keys.contains(&k), "missing {k} in {e:?}");
    }
    assert!(e.iter().all(|i| i.line > 0));
}

#[test]
fn yaml_syntax_error_has_line() {
    let e = issues("rules:\n  - permission: allow\n   who: [\n");
    assert!(e[0].line > 0, "{e:?}");
}

#[test]
fn duplicate_rule_id_rejected() {
    let e = issues(
        "rules:\n  - {id: a, permission: allow, who: all, action: all, topics: [x]}\n  - {id: a, permission: deny, who: all, action: all, topics: [y]}\n",
    );
    assert!(e.iter().any(|i| i.message.contains("duplicate rule id")));
}

#[test]
fn invalid_rule_id_rejected() {
    let e = issues("rules:\n  - {id: \"a b\", permission: allow, who: all, action: all, topics: [x]}\n");
    assert_eq!(e[0].key, "rules[0].id");
}

#[test]
fn empty_topics_rejected() {
    let e = issues("rules:\n  - {permission: allow, who: all, action: all, topics: []}\n");
    assert_eq!(e[0].key, "rules[0].topics");
}

#[test]
fn invalid_filter_rejected() {
    for bad in ["a/#/b", "a+/b", "", "a/b#"] {
        let e = issues(&format!(
            "rules:\n  - {{permission: allow, who: all, action: all, topics: [\"{bad}\"]}}\n"
        ));
        assert_eq!(e[0].key, "rules[0].topics[0]", "{bad}");
    }
}

#[test]
fn shared_prefix_in_rule_topic_rejected() {
    for bad in ["$share/g/a", "$queue/a"] {
        let e = issues(&format!(
            "rules:\n  - {{permission: deny, who: all, action: all, topics: [\"{bad}\"]}}\n"
        ));
        assert!(e[0].message.contains("$share"), "{bad}");
    }
}

#[test]
fn retain_only_with_publish_action() {
    let e = issues("rules:\n  - {permission: deny, who: all, action: all, retain: true, topics: [x]}\n");
    assert_eq!(e[0].key, "rules[0].retain");
}

#[test]
fn numeric_topic_must_be_quoted() {
    let e = issues("rules:\n  - {permission: deny, who: all, action: all, topics: [42]}\n");
    assert_eq!(e[0].key, "rules[0].topics[0]");
}

#[test]
fn who_nesting_depth_bounded() {
    let mut who = String::from("{username: a}");
    for _ in 0..10 {
        who = format!("{{and: [{who}]}}");
    }
    let e = issues(&format!("rules:\n  - {{permission: allow, who: {who}, action: all, topics: [x]}}\n"));
    assert!(e.iter().any(|i| i.message.contains("nested deeper")), "{e:?}");
}

#[test]
fn who_map_needs_exactly_one_key() {
    let e = issues(
        "rules:\n  - {permission: allow, who: {username: a, clientid: b}, action: all, topics: [x]}\n",
    );
    assert_eq!(e[0].key, "rules[0].who");
}

#[test]
fn regex_size_limited() {
    let e = issues("rules:\n  - {permission: allow, who: {clientid_re: \"\\\\w{1000}{1000}\"}, action: all, topics: [x]}\n");
    assert_eq!(e[0].key, "rules[0].who.clientid_re");
}

#[test]
fn uses_placeholder_reports_names() {
    let s = set(
        "rules:\n  - {permission: allow, who: all, action: all, topics: [\"d/${clientid}/${attr.site}\"]}\n",
    );
    assert!(s.uses_placeholder("clientid"));
    assert!(s.uses_placeholder("attr.site"));
    assert!(s.uses_placeholder("attr"));
    assert!(!s.uses_placeholder("username"));
}

#[test]
fn eq_with_placeholder_rejected() {
    let e =
        issues("rules:\n  - {permission: allow, who: all, action: all, topics: [{eq: \"d/${clientid}\"}]}\n");
    assert_eq!(e[0].key, "rules[0].topics[0]");
}

#[test]
fn unterminated_placeholder_rejected() {
    let e = issues("rules:\n  - {permission: allow, who: all, action: all, topics: [\"d/${clientid\"]}\n");
    assert!(e[0].message.contains("unterminated"));
}

#[test]
fn missing_rules_key_rejected() {
    let e = issues("enforce: true\n");
    assert_eq!(e[0].key, "rules");
}

#[test]
fn json_rules_parse_with_same_schema() {
    let v = serde_json::json!([
        {"permission": "allow", "who": "all", "action": "publish", "topics": ["t/${username}"]},
        {"id": "no-admin", "permission": "deny", "who": "all", "action": "all", "topics": [{"eq": "admin"}]}
    ]);
    let rules = parse_rules_json(&v).expect("valid");
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].id(), "credential:1");
    assert_eq!(rules[1].id(), "no-admin");
    assert!(parse_rules_json(&serde_json::json!({"a": 1})).is_err());
    let err = parse_rules_json(&serde_json::json!([{"permission": "allow", "who": "all", "action": "x", "topics": ["a"], "bogus": 1}]))
        .expect_err("invalid");
    assert!(err.contains("bogus") && err.contains("action"), "{err}");
}

#[test]
fn load_rule_file_reads_and_bounds() {
    let dir = std::env::temp_dir().join(format!("moat-acl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let p = dir.join("acl.yaml");
    std::fs::write(&p, OK).expect("write");
    assert_eq!(load_rule_file(&p).expect("loads").len(), 2);
    let e = load_rule_file(&dir.join("missing.yaml")).expect_err("missing");
    assert_eq!(e[0].key, "(file)");
    let _ = std::fs::remove_dir_all(&dir);
}

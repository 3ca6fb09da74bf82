use super::helpers::*;

const OWN: &str =
    "rules:\n  - {permission: allow, who: all, action: all, topics: [\"devices/${clientid}/#\"]}\n";

#[test]
fn placeholder_expands_per_client() {
    let a = acl(OWN, &client("dev1"));
    assert!(pub_ok(&a, "devices/dev1/temp"));
    assert!(!pub_ok(&a, "devices/dev2/temp"));
    assert!(sub_ok(&a, "devices/dev1/#"));
    assert!(!sub_ok(&a, "devices/+/#"));
}

#[test]
fn placeholder_with_plus_never_grants() {
    for id in ["+", "#", "a/b", "a+b", "x#", ""] {
        let a = acl(OWN, &client(id));
        assert_eq!(a.rule_count(), 0, "{id:?}");
        for t in ["devices/x/1", "devices/a/b/1"] {
            assert!(!pub_ok(&a, t), "{id:?} {t}");
        }
        assert!(!sub_ok(&a, "devices/#"), "{id:?}");
        assert!(!sub_ok(&a, "devices/+/#"), "{id:?}");
    }
}

#[test]
fn placeholder_with_nul_or_control_never_grants() {
    for id in ["a\0b", "a\nb", "\u{7f}", "a\u{85}"] {
        assert_eq!(acl(OWN, &client(id)).rule_count(), 0, "{id:?}");
    }
}

#[test]
fn placeholder_missing_never_grants() {
    let y = "rules:\n  - {permission: allow, who: all, action: all, topics: [\"u/${username}/#\", \"c/${cert_cn}\", \"a/${attr.site}\", \"ok\"]}\n";
    let mut anon = client("c");
    anon.username = None;
    let a = acl(y, &anon);
    assert!(!sub_ok(&a, "u/#") && !sub_ok(&a, "c/+") && !sub_ok(&a, "a/+"));
    assert!(pub_ok(&a, "ok"), "other topics of the rule still apply");
}

#[test]
fn deny_placeholder_missing_widens_to_plus() {
    let y = "no_match: allow\nrules:\n  - {permission: deny, who: all, action: all, topics: [\"secret/${username}-x/#\"]}\n";
    let mut anon = client("c");
    anon.username = None;
    let a = acl(y, &anon);
    assert!(!pub_ok(&a, "secret/anything/x"));
    assert!(!sub_ok(&a, "secret/+/#"));
    assert!(pub_ok(&a, "other"));
    let a = acl(y, &client("c"));
    assert!(!pub_ok(&a, "secret/user-c-x/1"));
    assert!(pub_ok(&a, "secret/bob-x/1"));
}

#[test]
fn deny_placeholder_with_wildcard_widens_to_plus() {
    let y = "no_match: allow\nrules:\n  - {permission: deny, who: all, action: all, topics: [\"d/${clientid}/cmd\"]}\n";
    let a = acl(y, &client("a/b"));
    assert!(!pub_ok(&a, "d/zzz/cmd"));
    assert!(pub_ok(&a, "d/a/b/cmd"), "only the level became +, the shape is unchanged");
}

#[test]
fn dollar_value_at_filter_start_never_grants() {
    let y = "rules:\n  - {permission: allow, who: all, action: all, topics: [\"${clientid}/#\"]}\n";
    let a = acl(y, &client("$SYS"));
    assert!(!sub_ok(&a, "$SYS/#"));
    assert!(!pub_ok(&a, "$SYS/x"));
    let a = acl(y, &client("dev"));
    assert!(pub_ok(&a, "dev/x"));
}

#[test]
fn dollar_value_inside_filter_is_fine() {
    let a = acl(OWN, &client("$weird"));
    assert!(pub_ok(&a, "devices/$weird/1"));
}

#[test]
fn peerhost_placeholder_allows_ipv6_colons() {
    let y = "rules:\n  - {permission: allow, who: all, action: publish, topics: [\"ip/${peerhost}\"]}\n";
    let mut c = client("c");
    c.peer = Some("2001:db8::1".parse().unwrap());
    assert!(pub_ok(&acl(y, &c), "ip/2001:db8::1"));
    c.peer = Some("10.0.0.1".parse().unwrap());
    assert!(pub_ok(&acl(y, &c), "ip/10.0.0.1"));
}

#[test]
fn attr_and_username_placeholders_in_one_level() {
    let y = "rules:\n  - {permission: allow, who: all, action: publish, topics: [\"s/${attr.site}-${username}\"]}\n";
    let mut c = client("c");
    c.attributes.insert("site".into(), "ber".into());
    assert!(pub_ok(&acl(y, &c), "s/ber-user-c"));
}

#[test]
fn dollar_without_brace_is_literal() {
    let y = "rules:\n  - {permission: allow, who: all, action: all, topics: [\"$SYS/$x/#\"]}\n";
    assert!(pub_ok(&acl(y, &client("c")), "$SYS/$x/1"));
}

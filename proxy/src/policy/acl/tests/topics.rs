use crate::policy::acl::{filter_contains as contains, filters_intersect as intersects, topic_matches as m};

#[test]
fn plus_matches_exactly_one_level() {
    assert!(m("a/+/c", "a/b/c"));
    assert!(m("a/+/c", "a//c"));
    assert!(!m("a/+/c", "a/b/x/c"));
    assert!(!m("a/+", "a"));
}

#[test]
fn hash_matches_rest_including_parent() {
    assert!(m("a/#", "a"));
    assert!(m("a/#", "a/b/c"));
    assert!(m("#", "x/y"));
    assert!(!m("a/#", "ab"));
}

#[test]
fn hash_does_not_match_dollar_topics() {
    assert!(!m("#", "$SYS/broker/load"));
    assert!(!m("+/broker/#", "$SYS/broker/load"));
    assert!(m("$SYS/#", "$SYS/broker/load"));
    assert!(m("a/+", "a/$x"));
}

#[test]
fn matching_is_byte_exact() {
    assert!(!m("Devices/#", "devices/1"));
    assert!(!m("café", "cafe\u{301}"));
    assert!(!m("a", "a/"));
    assert!(!m("a", " a"));
}

#[test]
fn contains_examples_from_contract() {
    assert!(contains("a/#", "a/+/c"));
    assert!(contains("a/#", "a/#"));
    assert!(contains("a/#", "a"));
    assert!(!contains("a/+", "a/#"));
    assert!(!contains("a/+", "a"));
    assert!(contains("+/#", "#"));
    assert!(!contains("+", "#"));
    assert!(!contains("a/+/#", "a/#"));
    assert!(contains("#", "+/+"));
    assert!(!contains("#", "$SYS/x"));
    assert!(!contains("+/x", "$SYS/x"));
    assert!(contains("$SYS/#", "$SYS/x"));
}

#[test]
fn intersects_examples_from_contract() {
    assert!(intersects("#", "a/secret"));
    assert!(intersects("+/secret", "a/#"));
    assert!(intersects("a/#", "a"));
    assert!(intersects("a/+", "+/b"));
    assert!(!intersects("a/+", "a"));
    assert!(!intersects("a/b", "a/c"));
    assert!(!intersects("#", "$SYS/x"));
    assert!(!intersects("+/x", "$SYS/#"));
    assert!(intersects("$SYS/#", "$SYS/+"));
}

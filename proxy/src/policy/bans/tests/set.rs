use std::net::IpAddr;

use super::super::{Ban, BanKind, BanSet};
use super::{ban, ban_until};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn set(bans: Vec<Ban>) -> BanSet {
    BanSet::build(bans).expect("build")
}

#[test]
fn clientid_hit_and_miss() {
    let s = set(vec![ban(BanKind::ClientId, "sensor-17")]);
    assert_eq!(s.check_client("sensor-17", None, 0).map(|b| b.kind), Some(BanKind::ClientId));
    assert!(s.check_client("sensor-18", None, 0).is_none());
    assert!(s.check_client("other", Some("sensor-17"), 0).is_none(), "kinds do not mix");
}

#[test]
fn username_hit_and_miss() {
    let s = set(vec![ban(BanKind::Username, "mallory")]);
    assert!(s.check_client("c", Some("mallory"), 0).is_some());
    assert!(s.check_client("c", Some("alice"), 0).is_none());
    assert!(s.check_client("mallory", None, 0).is_none());
}

#[test]
fn ipaddr_hit_and_miss() {
    let s = set(vec![ban(BanKind::IpAddress, "192.0.2.7"), ban(BanKind::IpAddress, "2001:db8::1")]);
    assert!(s.check_ip(ip("192.0.2.7"), 0).is_some());
    assert!(s.check_ip(ip("192.0.2.8"), 0).is_none());
    assert!(s.check_ip(ip("2001:db8::1"), 0).is_some());
    assert!(s.check_ip(ip("2001:db8::2"), 0).is_none());
}

#[test]
fn ipv4_mapped_ipv6_is_treated_as_ipv4() {
    let s = set(vec![ban(BanKind::IpAddress, "192.0.2.7"), ban(BanKind::Cidr, "198.51.100.0/24")]);
    assert!(s.check_ip(ip("::ffff:192.0.2.7"), 0).is_some());
    assert!(s.check_ip(ip("::ffff:198.51.100.9"), 0).is_some());
    assert!(s.check_ip(ip("::ffff:203.0.113.1"), 0).is_none());
    // And bans written in mapped form catch plain IPv4 peers.
    let m = set(vec![ban(BanKind::IpAddress, "::ffff:192.0.2.9"), ban(BanKind::Cidr, "::ffff:10.0.0.0/104")]);
    assert!(m.check_ip(ip("192.0.2.9"), 0).is_some());
    assert!(m.check_ip(ip("10.200.0.1"), 0).is_some());
}

#[test]
fn clientid_regex_hit_and_miss_is_anchored() {
    let s = set(vec![ban(BanKind::ClientIdRe, "dev")]);
    assert!(s.check_client("dev", None, 0).is_some());
    assert!(s.check_client("evil-dev-1", None, 0).is_none(), "dev must not ban evil-dev-1");
    assert!(s.check_client("dev-1", None, 0).is_none());
    let open = set(vec![ban(BanKind::ClientIdRe, ".*dev.*")]);
    assert!(open.check_client("evil-dev-1", None, 0).is_some(), "unless the regex says so");
    let alt = set(vec![ban(BanKind::ClientIdRe, "a|b")]);
    assert!(alt.check_client("ab", None, 0).is_none(), "alternation is grouped before anchoring");
}

#[test]
fn username_regex_hit_and_miss() {
    let s = set(vec![ban(BanKind::UsernameRe, "bot-[0-9]+")]);
    assert!(s.check_client("c", Some("bot-42"), 0).is_some());
    assert!(s.check_client("c", Some("robot-42"), 0).is_none());
    assert!(s.check_client("bot-42", None, 0).is_none());
}

#[test]
fn cidr_hit_and_miss_v4_and_v6() {
    let s = set(vec![ban(BanKind::Cidr, "10.0.0.0/8"), ban(BanKind::Cidr, "2001:db8::/32")]);
    assert!(s.check_ip(ip("10.255.1.2"), 0).is_some());
    assert!(s.check_ip(ip("11.0.0.1"), 0).is_none());
    assert!(s.check_ip(ip("2001:db8:ffff::1"), 0).is_some());
    assert!(s.check_ip(ip("2001:db9::1"), 0).is_none());
}

#[test]
fn cidr_longest_prefix_is_reported() {
    let s = set(vec![ban(BanKind::Cidr, "10.0.0.0/8"), ban(BanKind::Cidr, "10.1.0.0/16")]);
    assert_eq!(s.check_ip(ip("10.1.2.3"), 0).map(|b| b.who.as_str()), Some("10.1.0.0/16"));
    assert_eq!(s.check_ip(ip("10.2.2.3"), 0).map(|b| b.who.as_str()), Some("10.0.0.0/8"));
}

#[test]
fn cidr_shortest_prefix_still_applies_when_longer_expired() {
    let s = set(vec![ban(BanKind::Cidr, "10.0.0.0/8"), ban_until(BanKind::Cidr, "10.1.0.0/16", 50)]);
    assert_eq!(s.check_ip(ip("10.1.2.3"), 10).map(|b| b.who.as_str()), Some("10.1.0.0/16"));
    assert_eq!(s.check_ip(ip("10.1.2.3"), 50).map(|b| b.who.as_str()), Some("10.0.0.0/8"));
    let zero = set(vec![ban(BanKind::Cidr, "0.0.0.0/0"), ban(BanKind::Cidr, "::/0")]);
    assert!(zero.check_ip(ip("1.2.3.4"), 0).is_some());
    assert!(zero.check_ip(ip("fe80::1"), 0).is_some());
}

#[test]
fn overlapping_cidrs_with_different_expiries() {
    let s = set(vec![
        ban_until(BanKind::Cidr, "10.0.0.0/8", 30),
        ban_until(BanKind::Cidr, "10.1.0.0/16", 20),
        ban_until(BanKind::Cidr, "10.1.2.0/24", 10),
        ban(BanKind::Cidr, "10.1.3.0/24"),
    ]);
    let who = |addr: &str, now| s.check_ip(ip(addr), now).map(|b| b.who.clone());
    assert_eq!(who("10.1.2.3", 5).as_deref(), Some("10.1.2.0/24"));
    assert_eq!(who("10.1.2.3", 15).as_deref(), Some("10.1.0.0/16"));
    assert_eq!(who("10.1.2.3", 25).as_deref(), Some("10.0.0.0/8"));
    assert_eq!(who("10.1.2.3", 35), None);
    assert_eq!(who("10.1.3.3", 35).as_deref(), Some("10.1.3.0/24"));
}

#[test]
fn exact_ip_wins_over_cidr() {
    let s = set(vec![ban(BanKind::Cidr, "10.0.0.0/8"), ban(BanKind::IpAddress, "10.0.0.1")]);
    assert_eq!(s.check_ip(ip("10.0.0.1"), 0).map(|b| b.kind), Some(BanKind::IpAddress));
}

#[test]
fn expiry_is_exclusive_and_per_kind() {
    let s = set(vec![
        ban_until(BanKind::ClientId, "c", 100),
        ban_until(BanKind::Username, "u", 100),
        ban_until(BanKind::IpAddress, "10.0.0.1", 100),
        ban_until(BanKind::ClientIdRe, "re-.*", 100),
        ban_until(BanKind::UsernameRe, "ure-.*", 100),
        ban_until(BanKind::Cidr, "10.9.0.0/16", 100),
    ]);
    for now in [99, 100] {
        let hit = now < 100;
        assert_eq!(s.check_client("c", None, now).is_some(), hit);
        assert_eq!(s.check_client("x", Some("u"), now).is_some(), hit);
        assert_eq!(s.check_ip(ip("10.0.0.1"), now).is_some(), hit);
        assert_eq!(s.check_client("re-1", None, now).is_some(), hit);
        assert_eq!(s.check_client("x", Some("ure-1"), now).is_some(), hit);
        assert_eq!(s.check_ip(ip("10.9.1.1"), now).is_some(), hit);
    }
}

#[test]
fn expired_regex_does_not_hide_an_active_one() {
    let s = set(vec![ban_until(BanKind::ClientIdRe, "dev-.*", 10), ban(BanKind::ClientIdRe, "dev-[0-9]+")]);
    assert_eq!(s.check_client("dev-1", None, 20).map(|b| b.who.as_str()), Some("dev-[0-9]+"));
}

#[test]
fn without_expired_compacts() {
    let s = set(vec![
        ban_until(BanKind::ClientId, "old", 10),
        ban(BanKind::ClientId, "new"),
        ban_until(BanKind::Cidr, "10.0.0.0/8", 10),
        ban_until(BanKind::UsernameRe, "x.*", 10),
    ]);
    assert_eq!(s.len(), 4);
    let c = s.without_expired(10);
    assert_eq!(c.len(), 1);
    assert!(c.check_client("new", None, 0).is_some());
    assert!(c.check_client("old", None, 0).is_none());
    assert!(c.check_ip(ip("10.0.0.1"), 0).is_none());
}

#[test]
fn duplicates_merge_keeping_the_longer_ban() {
    let s = set(vec![
        ban_until(BanKind::ClientId, "c", 10),
        ban(BanKind::ClientId, "c"),
        ban_until(BanKind::ClientId, "c", 20),
        ban(BanKind::IpAddress, "10.0.0.1"),
        ban_until(BanKind::IpAddress, "::ffff:10.0.0.1", 5),
        ban_until(BanKind::Cidr, "10.0.0.0/8", 5),
        ban_until(BanKind::Cidr, "10.0.0.0/8", 50),
        ban_until(BanKind::UsernameRe, "a.*", 5),
        ban(BanKind::UsernameRe, "a.*"),
    ]);
    assert_eq!(s.len(), 4);
    assert_eq!(s.check_client("c", None, 0).and_then(|b| b.expires_at), None);
    assert!(s.check_ip(ip("10.0.0.1"), 1000).is_some());
    assert_eq!(s.check_ip(ip("10.0.0.2"), 0).and_then(|b| b.expires_at), Some(50));
    assert!(s.check_client("x", Some("ab"), 1000).is_some());
}

#[test]
fn build_rejects_invalid_bans() {
    assert!(BanSet::build(vec![ban(BanKind::IpAddress, "nope")]).is_err());
    assert!(BanSet::build(vec![ban(BanKind::Cidr, "10.0.0.1/8")]).is_err());
    assert!(BanSet::build(vec![ban(BanKind::ClientIdRe, "(")]).is_err());
    assert!(BanSet::build(vec![ban(BanKind::ClientId, "")]).is_err());
    assert!(BanSet::build(Vec::new()).expect("empty").is_empty());
}

#[test]
fn many_exact_bans_all_hit() {
    let s = set((0..5000).map(|i| ban(BanKind::ClientId, &format!("client-{i}"))).collect());
    assert!((0..5000).all(|i| s.check_client(&format!("client-{i}"), None, 0).is_some()));
    assert!(s.check_client("client-5000", None, 0).is_none());
}

#[test]
fn ban_set_can_be_shared_across_threads() {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<BanSet>();
}

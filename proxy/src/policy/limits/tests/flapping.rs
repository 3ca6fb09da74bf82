use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::super::{FlapKey, FlapKind, FlappingConfig, FlappingDetector};
use super::at;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

fn config(max_count: u32, max_keys: usize) -> FlappingConfig {
    FlappingConfig {
        max_count,
        window: Duration::from_secs(60),
        ban_time: Duration::from_secs(300),
        max_keys,
    }
}

#[test]
fn crossing_threshold_inside_window_returns_ban_until() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(3, 100));
    assert_eq!(detector.record(FlapKey::ClientId("c1"), t0), None);
    assert_eq!(detector.record(FlapKey::ClientId("c1"), at(t0, 10_000)), None);
    let crossing = at(t0, 59_999);
    assert_eq!(detector.record(FlapKey::ClientId("c1"), crossing), Some(crossing + Duration::from_secs(300)));
    // The record is dropped once the ban is handed out.
    assert_eq!(detector.len(), 0);
}

#[test]
fn events_outside_the_window_do_not_count() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(3, 100));
    assert_eq!(detector.record(FlapKey::ClientId("c1"), t0), None);
    assert_eq!(detector.record(FlapKey::ClientId("c1"), at(t0, 30_000)), None);
    // Window (fixed from the first event) is over: this opens a new window with count 1.
    assert_eq!(detector.record(FlapKey::ClientId("c1"), at(t0, 60_000)), None);
    assert_eq!(detector.record(FlapKey::ClientId("c1"), at(t0, 70_000)), None);
    assert!(detector.record(FlapKey::ClientId("c1"), at(t0, 80_000)).is_some());
}

#[test]
fn keys_are_counted_separately() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(2, 100));
    assert_eq!(detector.record(FlapKey::ClientId("a"), t0), None);
    assert_eq!(detector.record(FlapKey::ClientId("b"), t0), None);
    // The same text as a username is a different kind.
    assert_eq!(detector.record(FlapKey::AuthFailUser("a"), t0), None);
    assert_eq!(detector.len(), 3);
    assert!(detector.record(FlapKey::ClientId("a"), t0).is_some());
}

#[test]
fn rotating_client_ids_from_one_ip_are_caught_by_ip_key() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(15, 1000));
    let mut banned_at = None;
    for attempt in 0..15u64 {
        let now = at(t0, attempt * 1000);
        let client_id = format!("rotating-{attempt}");
        assert_eq!(detector.record(FlapKey::ClientId(&client_id), now), None);
        if let Some(until) = detector.record(FlapKey::Ip(IP), now) {
            banned_at = Some((attempt, until));
        }
    }
    assert_eq!(banned_at, Some((14, at(t0, 14_000) + Duration::from_secs(300))));
}

#[test]
fn ipv4_mapped_ipv6_is_the_same_ip() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(2, 100));
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    assert_eq!(detector.record(FlapKey::Ip(IP), t0), None);
    assert!(detector.record(FlapKey::Ip(mapped), t0).is_some());
}

#[test]
fn auth_failures_per_ip_and_per_username() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(5, 100));
    // Password spraying: one IP, many usernames → AuthFailIp crosses.
    let mut ip_ban = None;
    for n in 0..5u64 {
        let user = format!("user{n}");
        assert_eq!(detector.record(FlapKey::AuthFailUser(&user), at(t0, n)), None);
        ip_ban = detector.record(FlapKey::AuthFailIp(IP), at(t0, n));
    }
    assert_eq!(ip_ban, Some(at(t0, 4) + Duration::from_secs(300)));

    // Distributed guessing: many IPs, one username → AuthFailUser crosses.
    let mut user_ban = None;
    for n in 0..5u16 {
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n));
        assert_eq!(detector.record(FlapKey::AuthFailIp(ip), at(t0, 10)), None);
        user_ban = detector.record(FlapKey::AuthFailUser("admin"), at(t0, 10));
    }
    assert_eq!(user_ban, Some(at(t0, 10) + Duration::from_secs(300)));
}

#[test]
fn memory_is_bounded_per_kind_and_oldest_is_evicted() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(2, 3));
    for (n, id) in ["oldest", "b", "c"].iter().enumerate() {
        assert_eq!(detector.record(FlapKey::ClientId(id), at(t0, n as u64)), None);
    }
    // A fourth key evicts "oldest", keeping the table at max_keys.
    assert_eq!(detector.record(FlapKey::ClientId("d"), at(t0, 10)), None);
    assert_eq!(detector.len_of(FlapKind::ClientId), 3);
    // "oldest" lost its count: a second event starts over instead of banning...
    assert_eq!(detector.record(FlapKey::ClientId("oldest"), at(t0, 11)), None);
    // ...and evicted "b"; "b" coming back evicts "c"; "d" (still tracked) crosses on its second event.
    assert_eq!(detector.record(FlapKey::ClientId("b"), at(t0, 12)), None);
    assert!(detector.record(FlapKey::ClientId("d"), at(t0, 13)).is_some());

    // Other kinds have their own bound.
    for n in 0..3u8 {
        detector.record(FlapKey::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))), at(t0, 20));
    }
    assert_eq!(detector.len_of(FlapKind::Ip), 3);
    assert!(detector.len() <= 6);
}

#[test]
fn key_flood_stays_bounded() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(15, 1000));
    for n in 0..20_000u64 {
        let id = format!("flood-{n}");
        detector.record(FlapKey::ClientId(&id), at(t0, n / 100));
        detector.record(FlapKey::AuthFailUser(&id), at(t0, n / 100));
    }
    assert_eq!(detector.len_of(FlapKind::ClientId), 1000);
    assert_eq!(detector.len_of(FlapKind::AuthFailUser), 1000);
}

#[test]
fn idle_entries_expire() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(5, 100));
    detector.record(FlapKey::ClientId("idle"), t0);
    detector.record(FlapKey::Ip(IP), t0);
    assert_eq!(detector.len(), 2);
    // Recording in one table expires that table's idle entries.
    detector.record(FlapKey::ClientId("fresh"), at(t0, 60_000));
    assert_eq!(detector.len_of(FlapKind::ClientId), 1);
    assert_eq!(detector.len_of(FlapKind::Ip), 1);
    // purge sweeps every table.
    detector.purge(at(t0, 60_000));
    assert_eq!(detector.len_of(FlapKind::Ip), 0);
    detector.purge(at(t0, 120_000));
    assert!(detector.is_empty());
}

#[test]
fn counting_restarts_after_a_ban() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(config(2, 100));
    detector.record(FlapKey::ClientId("c"), t0);
    assert!(detector.record(FlapKey::ClientId("c"), t0).is_some());
    assert_eq!(detector.record(FlapKey::ClientId("c"), at(t0, 1)), None);
    assert!(detector.record(FlapKey::ClientId("c"), at(t0, 2)).is_some());
}

#[test]
fn degenerate_config_is_sanitised() {
    let t0 = Instant::now();
    let mut detector = FlappingDetector::new(FlappingConfig {
        max_count: 0,
        window: Duration::ZERO,
        ban_time: Duration::MAX,
        max_keys: 0,
    });
    // max_count 0 acts as 1; a ban of Duration::MAX is clamped rather than panicking.
    let until = detector.record(FlapKey::ClientId("x"), t0);
    assert!(until.is_some_and(|until| until > t0));
    assert!(detector.len() <= 1);
}

#[test]
fn out_of_order_time_does_not_panic() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(1000);
    let mut detector = FlappingDetector::new(config(3, 2));
    detector.record(FlapKey::ClientId("a"), later);
    detector.record(FlapKey::ClientId("b"), t0);
    detector.record(FlapKey::ClientId("c"), later);
    detector.record(FlapKey::ClientId("a"), t0);
    assert!(detector.len() <= 2);
}

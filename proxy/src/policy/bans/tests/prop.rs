//! `check_ip` against a naive linear scan: exact bans first, then the longest active prefix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;

use super::super::{canonical_ip, Ban, BanKind, BanSet};

fn naive(bans: &[Ban], ip: IpAddr, now: u64) -> Option<Ban> {
    let ip = canonical_ip(ip);
    let active = || bans.iter().filter(|b| b.is_active(now));
    if let Some(b) =
        active().find(|b| b.kind == BanKind::IpAddress && b.who.parse::<IpAddr>().ok() == Some(ip))
    {
        return Some(b.clone());
    }
    active()
        .filter(|b| b.kind == BanKind::Cidr)
        .filter_map(|b| b.who.parse::<IpNet>().ok().map(|n| (n, b)))
        .filter(|(n, _)| n.contains(&ip))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, b)| b.clone())
}

/// Addresses from a small pool so bans and probes actually collide.
fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..4, any::<u8>()).prop_map(|(b, c, d)| IpAddr::V4(Ipv4Addr::new(10, b, c, d))),
        (0u16..4, 0u16..4, any::<u16>())
            .prop_map(|(a, b, c)| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, a, b, 0, 0, 0, c))),
        (0u8..4, any::<u8>()).prop_map(|(c, d)| IpAddr::V6(Ipv4Addr::new(10, 0, c, d).to_ipv6_mapped())),
    ]
}

fn ban_strategy() -> impl Strategy<Value = Ban> {
    (addr(), any::<bool>(), 0u8..=128, proptest::option::of(1u64..20)).prop_map(|(ip, exact, len, exp)| {
        let (kind, who) = if exact {
            (BanKind::IpAddress, ip.to_string())
        } else {
            let ip = canonical_ip(ip);
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let net = IpNet::new(ip, len % (max + 1)).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip));
            (BanKind::Cidr, net.to_string())
        };
        Ban { kind, who, reason: String::new(), by: String::new(), created_at: 0, expires_at: exp }
    })
}

/// Merges duplicates the way `BanSet::build` does, so the oracle sees the same ban list.
fn dedupe(bans: Vec<Ban>) -> Vec<Ban> {
    let mut out: Vec<Ban> = Vec::new();
    for b in bans {
        let b = b.normalized().expect("generated bans are valid");
        match out.iter_mut().find(|o| o.kind == b.kind && o.who == b.who) {
            Some(o) => {
                let longer = match (o.expires_at, b.expires_at) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(x), Some(y)) => y > x,
                };
                if longer {
                    *o = b;
                }
            }
            None => out.push(b),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn check_ip_agrees_with_linear_scan(
        bans in proptest::collection::vec(ban_strategy(), 0..60),
        probes in proptest::collection::vec(addr(), 1..40),
        now in 0u64..25,
    ) {
        let set = BanSet::build(bans.clone()).expect("build");
        let oracle = dedupe(bans);
        prop_assert_eq!(set.len(), oracle.len());
        for ip in probes {
            prop_assert_eq!(set.check_ip(ip, now).cloned(), naive(&oracle, ip, now), "ip {}", ip);
        }
    }
}

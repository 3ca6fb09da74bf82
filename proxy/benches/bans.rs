//! BanSet at scale: 1,000,000 exact client-id bans + 1,000,000 IP bans + 100,000 CIDR ranges
//! (v4 inside 10.0.0.0/8 with prefix 8..=32, v6 inside 2001:db8::/32 with prefix 32..=128) + 100
//! regexes. Measures check_ip / check_client hit and miss, and build time; prints the heap the
//! built set holds (counted by a wrapping global allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use moat::policy::bans::{Ban, BanKind, BanSet};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: as for `alloc`/`dealloc`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const EXACT: u32 = 1_000_000;
const CIDRS: u32 = 100_000;
const REGEXES: u32 = 100;
const NOW: u64 = 1_000;

/// Deterministic pseudo-random numbers (splitmix64), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn ban(kind: BanKind, who: String) -> Ban {
    Ban { kind, who, reason: String::new(), by: String::new(), created_at: 0, expires_at: None }
}

/// The i-th exact IP ban: three in four IPv4 (in 100.64.0.0/10 and up, outside every CIDR), the
/// rest IPv6 in 2001:db9::/32.
fn exact_ip(i: u32) -> IpAddr {
    if i % 4 == 3 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb9, 0, 0, 0, 0, (i >> 16) as u16, i as u16))
    } else {
        IpAddr::V4(Ipv4Addr::from(0x6440_0000u32.wrapping_add(i)))
    }
}

fn bans() -> Vec<Ban> {
    let mut rng = Rng(42);
    let mut out = Vec::with_capacity((2 * EXACT + CIDRS + REGEXES) as usize);
    out.extend((0..EXACT).map(|i| ban(BanKind::ClientId, format!("client-{i:08}"))));
    out.extend((0..EXACT).map(|i| ban(BanKind::IpAddress, exact_ip(i).to_string())));
    for i in 0..CIDRS {
        let r = rng.next();
        let net = if i % 2 == 0 {
            let len = 8 + (r % 25) as u8;
            let addr = Ipv4Addr::from(0x0A00_0000 | ((r >> 8) as u32 & 0x00FF_FFFF));
            ipnet::IpNet::new(IpAddr::V4(addr), len)
        } else {
            let len = 32 + (r % 97) as u8;
            let low = (u128::from(r) << 64 | u128::from(rng.next())) & ((1u128 << 96) - 1);
            let addr = Ipv6Addr::from((0x2001_0db8u128 << 96) | low);
            ipnet::IpNet::new(IpAddr::V6(addr), len)
        };
        if let Ok(n) = net {
            out.push(ban(BanKind::Cidr, n.trunc().to_string()));
        }
    }
    for i in 0..REGEXES {
        let kind = if i % 2 == 0 { BanKind::ClientIdRe } else { BanKind::UsernameRe };
        out.push(ban(kind, format!("bot-{i}-[0-9]+(-[a-z]+)?")));
    }
    out
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn bench(c: &mut Criterion) {
    let base = LIVE.load(Ordering::Relaxed);
    let input = bans();
    let input_bytes = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    let n = input.len();
    let t = Instant::now();
    let set = BanSet::build(input).expect("bench bans are valid");
    let took = t.elapsed();
    let held = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    println!(
        "BanSet: {n} bans in, {} distinct; built in {:.2} s; heap held {:.1} MiB ({:.0} B/ban; the input Vec<Ban> alone was {:.1} MiB)",
        set.len(),
        took.as_secs_f64(),
        mib(held),
        held as f64 / set.len().max(1) as f64,
        mib(input_bytes),
    );

    let v4_hit = exact_ip(12_345);
    let v6_hit = exact_ip(12_347);
    let v4_cidr = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let v6_cidr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6));
    let v4_miss = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let v6_miss = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb7, 0, 0, 0, 0, 0, 1));
    let mapped_hit = IpAddr::V6(Ipv4Addr::new(10, 9, 9, 9).to_ipv6_mapped());
    assert!(set.check_ip(v4_hit, NOW).is_some() && set.check_ip(v6_hit, NOW).is_some());
    assert!(set.check_ip(v4_cidr, NOW).is_some() && set.check_ip(v6_cidr, NOW).is_some());
    assert!(set.check_ip(v4_miss, NOW).is_none() && set.check_ip(v6_miss, NOW).is_none());

    let mut g = c.benchmark_group("check_ip");
    for (name, ip) in [
        ("hit_exact_v4", v4_hit),
        ("hit_exact_v6", v6_hit),
        ("hit_cidr_v4", v4_cidr),
        ("hit_cidr_v6", v6_cidr),
        ("hit_cidr_v4_mapped", mapped_hit),
        ("miss_v4", v4_miss),
        ("miss_v6", v6_miss),
    ] {
        g.bench_function(name, |b| b.iter(|| set.check_ip(black_box(ip), NOW).is_some()));
    }
    g.finish();

    assert!(set.check_client("client-00777777", None, NOW).is_some());
    assert!(set.check_client("bot-42-17", None, NOW).is_some());
    assert!(set.check_client("sensor-1", Some("alice"), NOW).is_none());
    let mut g = c.benchmark_group("check_client");
    for (name, cid, user) in [
        ("hit_exact_clientid", "client-00777777", Some("alice")),
        ("hit_regex_clientid", "bot-42-17", Some("alice")),
        ("hit_regex_username", "sensor-1", Some("bot-43-99-x")),
        ("miss", "sensor-1", Some("alice")),
        ("miss_long_id", "a-rather-long-client-identifier-0123456789abcdef", Some("alice@example.com")),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| set.check_client(black_box(cid), black_box(user), NOW).is_some())
        });
    }
    g.finish();
    drop(set);

    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    let input = bans();
    g.bench_function("2.1M_bans", |b| {
        b.iter_batched(|| input.clone(), |v| BanSet::build(v).map(|s| s.len()), BatchSize::PerIteration)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

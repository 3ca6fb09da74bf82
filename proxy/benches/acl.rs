//! ACL check cost with a large rule file: 10,000 rules, most of them for other clients.
//!
//! The target is <= 1 µs per check for a typical client; `compile_for` runs once per CONNECT
//! and is measured separately.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use moat::policy::acl::{parse_rule_file, Identity, RuleSet};

const PER_CLIENT: usize = 4_900;
const SHARED: usize = 200;

fn rule_file() -> String {
    let mut y = String::from("no_match: deny\nrules:\n");
    // Shared rules first, as operators usually write them: protect system trees, then areas.
    y.push_str("  - {id: no-sys, permission: deny, who: all, action: all, topics: [\"$SYS/#\"]}\n");
    y.push_str("  - {id: no-secret, permission: deny, who: all, action: all, topics: [\"+/secret/#\"]}\n");
    for i in 0..SHARED - 2 {
        let perm = if i % 3 == 0 { "deny" } else { "allow" };
        let action = ["publish", "subscribe", "all"][i % 3];
        let _ = writeln!(
            y,
            "  - {{id: area-{i}, permission: {perm}, who: all, action: {action}, topics: [\"area{}/zone{i}/+/data\", \"area{}/zone{i}/cfg/#\"]}}",
            i % 40,
            i % 40
        );
    }
    for i in 0..PER_CLIENT {
        let _ = writeln!(
            y,
            "  - {{permission: allow, who: {{clientid: dev-{i}}}, action: all, topics: [\"devices/dev-{i}/#\", \"cmd/dev-{i}/+\"]}}"
        );
        let _ = writeln!(
            y,
            "  - {{permission: allow, who: {{username: user-{i}}}, action: publish, topics: [\"users/${{username}}/#\"]}}"
        );
    }
    y
}

fn load() -> RuleSet {
    match parse_rule_file(&rule_file(), "bench.yaml") {
        Ok(s) => s,
        Err(e) => panic!("bench rule file rejected: {e:?}"),
    }
}

fn client() -> Identity {
    Identity {
        username: Some("user-4242".into()),
        client_id: "dev-4242".into(),
        peer: "10.1.2.3".parse().ok(),
        ..Identity::default()
    }
}

fn bench(c: &mut Criterion) {
    let set = load();
    assert_eq!(set.len(), SHARED + 2 * PER_CLIENT);
    let who = client();
    c.bench_function("compile_for 10k rules", |b| b.iter(|| set.compile_for(black_box(&who), &[])));
    let acl = set.compile_for(&who, &[]);
    assert!(acl.check_publish("devices/dev-4242/telemetry/temp", 1, false).allowed());
    assert!(!acl.check_publish("devices/dev-17/telemetry", 1, false).allowed());
    c.bench_function("check_publish matching", |b| {
        b.iter(|| acl.check_publish(black_box("devices/dev-4242/telemetry/temp"), 1, false))
    });
    c.bench_function("check_publish non-matching", |b| {
        b.iter(|| acl.check_publish(black_box("devices/dev-17/telemetry"), 1, false))
    });
    c.bench_function("check_publish shared-area", |b| {
        b.iter(|| acl.check_publish(black_box("area5/zone125/x/data"), 0, false))
    });
    c.bench_function("check_subscribe wildcard-first", |b| {
        b.iter(|| acl.check_subscribe(black_box("+/secret/#"), 0))
    });
    c.bench_function("check_subscribe shared", |b| {
        b.iter(|| acl.check_subscribe(black_box("$share/g/devices/dev-4242/#"), 1))
    });
    c.bench_function("parse_rule_file 10k rules", |b| {
        let text = rule_file();
        b.iter(|| parse_rule_file(black_box(&text), "bench.yaml").map(|s| s.len()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);

//! The metric catalogue in README.md ("Metrics") is what a running moat exposes: every family
//! moat serves on /metrics is documented with its type and labels, and every documented metric is
//! served (families without samples yet by their HELP/TYPE lines).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use moat_e2e::catalogue::{self, MetricDoc};
use moat_e2e::packets;
use moat_e2e::policy::PolicyDir;
use moat_e2e::{http, unique, v311, Env, MoatOptions, QoS, ANONYMOUS_AUTH};

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "catalogue-token-0123456789";

/// One family of the exposition: its type, whether it has a HELP line, and the label names
/// its samples carry (`le` of histogram buckets left out).
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: usize,
    labels: BTreeSet<String>,
}

/// Families of an OpenMetrics text, keyed by the name the README uses (counters with `_total`).
fn families(text: &str) -> BTreeMap<String, Family> {
    let mut by_family: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line has a type");
            by_family.entry(name.to_string()).or_default().kind = kind.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            by_family.entry(name.to_string()).or_default().help = true;
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let sample = &line[..name_end];
        // The longest family name that the sample name starts with (`moat_connections` must not
        // claim `moat_connections_active_…`).
        let family = by_family
            .keys()
            .filter(|f| {
                sample == f.as_str()
                    || ["_total", "_bucket", "_sum", "_count", "_created"]
                        .iter()
                        .any(|s| sample.strip_prefix(f.as_str()) == Some(*s))
            })
            .max_by_key(|f| f.len())
            .cloned()
            .unwrap_or_else(|| panic!("sample {line:?} belongs to no TYPE'd family"));
        let fam = by_family.get_mut(&family).expect("family exists");
        fam.samples += 1;
        if let Some(labels) =
            line[name_end..].strip_prefix('{').and_then(|r| r.split_once('}')).map(|(l, _)| l)
        {
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let key = pair.split_once('=').map_or(pair, |(k, _)| k).trim();
                if key != "le" {
                    fam.labels.insert(key.to_string());
                }
            }
        }
    }
    by_family
        .into_iter()
        .map(|(name, f)| {
            let documented = if f.kind == "counter" { format!("{name}_total") } else { name };
            (documented, f)
        })
        .collect()
}

#[tokio::test]
async fn every_exposed_metric_is_documented_and_every_documented_one_is_exposed() {
    // prometheus-client leaves a family out of the exposition until it has a sample, so the
    // traffic below touches every documented family: an ACL (decisions, rule matches, denials),
    // a message through moat (packets, bytes, upstream dials, authentications), a client that
    // sends something else than CONNECT first (protocol errors), a connection that leaves early.
    let dir = PolicyDir::new();
    let acl = dir.write(
        "acl.yaml",
        "no_match: deny\nrules:\n  - id: catalogue\n    permission: allow\n    who: all\n    action: all\n    topics: [\"catalogue/#\"]\n",
    );
    // A ban list (bans in force) and admin tokens (a reload through the API is counted).
    let bans = dir.write("bans.yaml", "bans:\n  - kind: clientid\n    who: catalogue-banned\n");
    let tokens = dir
        .write("tokens.yaml", &format!("tokens:\n  - name: t\n    scope: admin\n    token: \"{TOKEN}\"\n"));
    let policy_yaml = format!(
        "{ANONYMOUS_AUTH}authorization:\n  acl: \"{}\"\nbans:\n  file: \"{}\"\n",
        acl.display(),
        bans.display()
    );
    let env = Env::start_with(MoatOptions {
        policy_yaml: Some(policy_yaml),
        admin_extra: Some(format!("  tokens_file: \"{}\"\n", tokens.display())),
        ..Default::default()
    })
    .await;
    let topic = unique("catalogue/t");
    let sub = v311::Client::connect(env.v311_options(&unique("sub"), env.tls())).await.unwrap();
    sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let publ = v311::Client::connect(env.v311_options(&unique("pub"), env.tls())).await.unwrap();
    publ.publish(&topic, QoS::AtLeastOnce, false, b"hello".to_vec()).await.unwrap();
    sub.recv_publish(WAIT, |p| p.topic == topic).await.unwrap();
    drop(env.raw().await);
    // Denied by the ACL (no_match): counted, answered with PUBACK by moat, never forwarded.
    publ.publish(&unique("elsewhere/t"), QoS::AtLeastOnce, false, b"no".to_vec()).await.unwrap();
    let mut bad = env.raw().await;
    bad.send(&packets::pingreq()).await.unwrap();
    let _ = bad.read_until_closed(WAIT).await;
    // A banned client id (ban hits by kind).
    let mut banned = env.raw().await;
    banned.send(&packets::connect(packets::Version::V5, "catalogue-banned")).await.unwrap();
    let _ = banned.read_until_closed(WAIT).await;

    let reload =
        http::request(env.moat.admin_port, "POST", "/api/v1/reload", Some(TOKEN), None).await.unwrap();
    assert_eq!(reload.status, 200, "{}", reload.body);

    let scrape = http::request(env.moat.admin_port, "GET", "/metrics", Some(TOKEN), None).await.unwrap();
    assert_eq!(scrape.status, 200, "{scrape:?}");
    let exposed = families(&scrape.body);
    let documented = catalogue::metrics();

    let exposed_names: BTreeSet<&String> = exposed.keys().collect();
    let documented_names: BTreeSet<&String> = documented.keys().collect();
    let undocumented: Vec<_> = exposed_names.difference(&documented_names).collect();
    let missing: Vec<_> = documented_names
        .difference(&exposed_names)
        .filter(|n| !catalogue::FEATURE_METRICS.iter().any(|(f, _)| *f == n.as_str()))
        .collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "README metrics catalogue and /metrics differ:\n  exposed but not documented: {undocumented:?}\n  \
         documented but not exposed: {missing:?}\n(prometheus-client leaves out families without \
         samples: drive traffic above that touches a new family)\n/metrics:\n{}",
        scrape.body
    );

    for (name, fam) in &exposed {
        let doc: &MetricDoc = &documented[name];
        assert_eq!(fam.kind, doc.kind, "{name}: exposed as {}, documented as {}", fam.kind, doc.kind);
        assert!(fam.help, "{name} has no HELP line");
        if fam.samples > 0 {
            assert_eq!(
                fam.labels, doc.labels,
                "{name}: labels on /metrics {:?}, documented {:?}",
                fam.labels, doc.labels
            );
        } else {
            // No sample to read labels from: the documented ones can only be checked later.
            eprintln!("{name}: no samples yet (HELP/TYPE only)");
        }
    }
    // The traffic above really was counted (the scrape is of this moat, not an empty registry).
    assert!(
        http::metric_sum(&scrape.body, "moat_connections_total").unwrap_or(0.0) >= 2.0,
        "connections not counted:\n{}",
        scrape.body
    );
    sub.disconnect().await;
    publ.disconnect().await;
}

#[test]
fn promql_metric_names_are_extracted() {
    let names = catalogue::promql_metrics(
        "sum(rate(moat_connections_total{x=\"moat_no\"}[5m])) / histogram_quantile(0.9, moat_a_bucket)",
    );
    let got: Vec<&str> = names.iter().map(String::as_str).collect();
    // `moat_no` inside a label value starts after a `"`, so it is (harmlessly) picked up too.
    assert_eq!(got, ["moat_a_bucket", "moat_connections_total", "moat_no"]);
}

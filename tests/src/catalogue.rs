//! The documented metric catalogue and audit events (README.md "Metrics" and "Logs"), parsed so
//! tests can hold the binary, the manifests and the dashboard to what the README promises.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

pub fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("read README.md")
}

/// One row of the README metrics table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDoc {
    /// The sample name (`moat_connections_total`; histograms: the base name).
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    /// Label names (values in parentheses are not names).
    pub labels: BTreeSet<String>,
}

/// The text of the README section `heading` (up to the next heading of the same or higher level).
pub fn section(readme: &str, heading: &str) -> String {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut out = String::new();
    let mut inside = false;
    for line in readme.lines() {
        if line.starts_with('#') {
            let l = line.chars().take_while(|c| *c == '#').count();
            if inside && l <= level && !line.starts_with("#!") {
                break;
            }
            if line.trim() == heading {
                inside = true;
                continue;
            }
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(inside, "README has no section `{heading}`");
    out
}

/// Cells of a Markdown table row (`|`-separated, trimmed); `None` for other lines and separators.
pub fn table_cells(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    if !t.starts_with('|') || t.starts_with("|---") || t.starts_with("| ---") {
        return None;
    }
    Some(t.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
}

/// Backticked words of `text` outside parentheses.
fn names_outside_parens(text: &str) -> BTreeSet<String> {
    let mut depth = 0u32;
    let mut plain = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    plain.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// The metrics table of README "## Metrics", by name.
pub fn metrics() -> BTreeMap<String, MetricDoc> {
    let text = section(&readme(), "## Metrics");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(cells) = table_cells(line) else { continue };
        if cells.len() != 4 || cells[0] == "metric" {
            continue;
        }
        let name = cells[0].trim_matches('`').to_string();
        assert!(name.starts_with("moat_"), "README metrics table: bad name cell {:?}", cells[0]);
        let doc =
            MetricDoc { name: name.clone(), kind: cells[1].clone(), labels: names_outside_parens(&cells[2]) };
        assert!(out.insert(name.clone(), doc).is_none(), "README documents {name} twice");
    }
    assert!(!out.is_empty(), "README metrics table not found");
    out
}

/// The audit events of README "### Audit stream": message → documented fields.
pub fn audit_events() -> BTreeMap<String, BTreeSet<String>> {
    let text = section(&readme(), "### Audit stream");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(cells) = table_cells(line) else { continue };
        if cells.len() != 3 || cells[0] == "message" {
            continue;
        }
        out.insert(cells[0].trim_matches('`').to_string(), names_outside_parens(&cells[1]));
    }
    assert!(!out.is_empty(), "README audit event table not found");
    out
}

/// Metric names that alerts and the dashboard may use before the metric exists: other work in
/// flight adds them (config reload, certificate expiry). Each must land in the README table.
pub const PENDING_METRICS: &[&str] = &[];

/// Families that only appear once a feature is configured and used (CRLs, CRL fetching, a TLS
/// reload, a refused resumption), each asserted by that feature's own e2e test. The catalogue test
/// checks their type and labels when they are exposed, but does not require them.
pub const FEATURE_METRICS: &[(&str, &str)] = &[
    ("moat_tls_reloads_total", "tests/tls_reload.rs, tests/crl_fetch.rs"),
    ("moat_tls_crl_fetches_total", "tests/crl_fetch.rs"),
    ("moat_tls_crl_next_update_timestamp_seconds", "tests/crl.rs (CRLs configured)"),
    ("moat_tls_crl_this_update_timestamp_seconds", "tests/crl.rs (CRLs configured)"),
    ("moat_tls_resumed_sessions_rejected_total", "tests/tls_reload.rs"),
    ("moat_tls_ocsp_staple_age_seconds", "tests/ocsp.rs (ocsp_stapling)"),
    ("moat_tls_ocsp_staple_next_update_timestamp_seconds", "tests/ocsp.rs (ocsp_stapling)"),
    ("moat_tls_ocsp_fetch_failures_total", "tests/ocsp.rs (responder down, revoked)"),
    ("moat_tls_client_ocsp_checks_total", "tests/ocsp.rs (client_ocsp)"),
    ("moat_quota_exceeded_total", "tests/quotas.rs, tests/overload.rs (slow consumer)"),
    ("moat_overload_refusals_total", "tests/overload.rs"),
    ("moat_state_backend_errors_total", "tests/redis.rs (Redis stopped)"),
    ("moat_state_backend_degraded_connections_total", "tests/redis.rs (Redis stopped)"),
];

/// Every `moat_…` metric name in a PromQL expression, with a histogram's `_bucket`/`_sum`/`_count`
/// suffix removed.
pub fn promql_metrics(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("moat_") {
        let start = i + pos;
        let before_ok = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if before_ok {
            out.insert(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

/// `name` resolved against the catalogue: itself, or a histogram series' base name.
pub fn documented<'a>(catalogue: &'a BTreeMap<String, MetricDoc>, name: &str) -> Option<&'a MetricDoc> {
    if let Some(d) = catalogue.get(name) {
        return Some(d);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(d) = catalogue.get(base).filter(|d| d.kind == "histogram") {
                return Some(d);
            }
        }
    }
    None
}

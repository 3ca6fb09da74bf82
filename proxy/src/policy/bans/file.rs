//! Loading the static ban file (YAML).
//!
//! The YAML is first read into a generic tree that keeps each node's line, then validated by
//! hand rather than with `deny_unknown_fields`: serde stops at the first error, and an operator
//! fixing a ban list wants every problem (unknown key, bad IP, bad regex) at once, with lines.
//!
//! ```yaml
//! bans:
//!   - kind: clientid          # clientid, username, ipaddr, clientid_re, username_re, cidr
//!     who: "sensor-17"
//!     reason: "flooding"      # optional
//!     by: "ops@example.com"   # optional, default "file"
//!     created_at: 1767225600  # optional unix seconds, default: load time
//!     expires_at: 1767312000  # optional unix seconds or null (never)
//! ```

use std::collections::HashMap;
use std::path::Path;

use crate::policy::yaml_node::{N, V};

use super::{Ban, BanKind, LoadIssue};

/// Largest ban file accepted. The YAML parser's own node budget (250,000 nodes, roughly 30,000
/// bans) is reached first; large or dynamic lists belong in the [`super::BanStore`]. The byte
/// cap makes a wrong path (a log file, a device) fail fast instead of being read into memory.
pub const MAX_BAN_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// `by` of bans that do not name their issuer.
pub const DEFAULT_BY: &str = "file";

/// Collects every problem found while loading.
#[derive(Default)]
struct Issues(Vec<LoadIssue>);

impl Issues {
    fn push(&mut self, line: u64, key: &str, message: impl Into<String>) {
        self.0.push(LoadIssue { line, key: key.to_string(), message: message.into() });
    }
}

/// Parses a ban file. `now` (unix seconds) is the `created_at` of bans that do not say. Bans
/// already expired are kept (the checks ignore them): a file must not stop loading just
/// because time passed.
pub fn parse_ban_file(text: &str, now: u64) -> Result<Vec<Ban>, Vec<LoadIssue>> {
    let mut issues = Issues::default();
    let root: N = match serde_saphyr::from_str(text) {
        Ok(n) => n,
        Err(e) => {
            let line = e.location().map_or(0, |l| l.line());
            let msg = e.to_string();
            let mut first = msg.lines().next().unwrap_or("invalid YAML").to_string();
            if first.contains("budget") {
                first
                    .push_str(" (too many bans for one file: keep large or changing lists in the ban store)");
            }
            issues.push(line, "(document)", first);
            return Err(issues.0);
        }
    };
    let bans = parse_root(&root, now, &mut issues);
    if issues.0.is_empty() {
        Ok(bans)
    } else {
        Err(issues.0)
    }
}

/// Reads (at most [`MAX_BAN_FILE_BYTES`]) and parses a ban file.
pub fn load_ban_file(path: &Path, now: u64) -> Result<Vec<Ban>, Vec<LoadIssue>> {
    let buf = crate::util::read_bounded(path, MAX_BAN_FILE_BYTES).map_err(|e| {
        vec![LoadIssue { line: 0, key: "(file)".into(), message: format!("{}: {e}", path.display()) }]
    })?;
    parse_ban_file(&buf, now)
}

fn parse_root(root: &N, now: u64, issues: &mut Issues) -> Vec<Ban> {
    let mut bans = Vec::new();
    let V::Map(entries) = &root.v else {
        issues.push(root.line, "(document)", "expected a map with the key `bans`");
        return bans;
    };
    let mut have_bans = false;
    for (k, v) in entries {
        match k.as_str() {
            Some("bans") if !have_bans => {
                have_bans = true;
                match &v.v {
                    V::Seq(items) => {
                        // (kind, canonical who) → line of first occurrence.
                        let mut seen: HashMap<(BanKind, String), u64> = HashMap::new();
                        for (i, item) in items.iter().enumerate() {
                            let key = format!("bans[{i}]");
                            let Some(ban) = parse_ban(item, &key, now, issues) else {
                                continue;
                            };
                            match seen.get(&(ban.kind, ban.who.clone())) {
                                Some(first) => issues.push(
                                    item.line,
                                    &key,
                                    format!(
                                        "duplicate {} ban on {:?} (first on line {first})",
                                        ban.kind, ban.who
                                    ),
                                ),
                                None => {
                                    seen.insert((ban.kind, ban.who.clone()), item.line);
                                    bans.push(ban);
                                }
                            }
                        }
                    }
                    V::Null => {}
                    _ => issues.push(v.line, "bans", "expected a list of bans"),
                }
            }
            Some("bans") => issues.push(k.line, "bans", "duplicate key"),
            Some(other) => issues.push(k.line, other, "unknown key (expected bans)"),
            None => issues.push(k.line, "(document)", "keys must be strings"),
        }
    }
    if !have_bans {
        issues.push(root.line, "bans", "missing key `bans` (use `bans: []` for none)");
    }
    bans
}

fn timestamp(v: &N, key: &str, issues: &mut Issues) -> Option<u64> {
    match v.v {
        V::Int(n) => match u64::try_from(n) {
            Ok(t) => Some(t),
            Err(_) => {
                issues.push(v.line, key, "expected unix seconds (a non-negative integer)");
                None
            }
        },
        _ => {
            issues.push(v.line, key, "expected unix seconds (a non-negative integer)");
            None
        }
    }
}

fn text(v: &N, key: &str, issues: &mut Issues) -> Option<String> {
    match v.as_str() {
        Some(s) => Some(s.to_string()),
        None => {
            issues.push(v.line, key, "expected a string (quote numbers)");
            None
        }
    }
}

/// Parses one ban; every problem goes to `issues`. `None` when the ban is invalid.
fn parse_ban(node: &N, key: &str, now: u64, issues: &mut Issues) -> Option<Ban> {
    let V::Map(entries) = &node.v else {
        issues.push(node.line, key, "expected a ban map (kind, who, reason, by, created_at, expires_at)");
        return None;
    };
    let before = issues.0.len();
    let (mut kind, mut who, mut reason, mut by) = (None, None, None, None);
    let (mut created_at, mut expires_at) = (None, None);
    // Line of each key's value, so a cross-field error points at the offending value.
    let mut seen: Vec<(&str, u64)> = Vec::new();
    for (k, v) in entries {
        let Some(name) = k.as_str() else {
            issues.push(k.line, key, "keys must be strings");
            continue;
        };
        let sub = format!("{key}.{name}");
        if seen.iter().any(|(n, _)| *n == name) {
            issues.push(k.line, &sub, "duplicate key");
            continue;
        }
        seen.push((name, v.line));
        match name {
            "kind" => match v.as_str().and_then(BanKind::parse) {
                Some(kd) => kind = Some(kd),
                None => issues.push(
                    v.line,
                    &sub,
                    "expected clientid, username, ipaddr, clientid_re, username_re or cidr",
                ),
            },
            "who" => who = text(v, &sub, issues),
            "reason" => reason = text(v, &sub, issues),
            "by" => by = text(v, &sub, issues),
            "created_at" => created_at = timestamp(v, &sub, issues),
            "expires_at" => match v.v {
                V::Null => expires_at = Some(None),
                _ => expires_at = timestamp(v, &sub, issues).map(Some),
            },
            other => issues.push(
                k.line,
                &sub,
                format!("unknown key `{other}` (expected kind, who, reason, by, created_at, expires_at)"),
            ),
        }
    }
    for name in ["kind", "who"] {
        if !seen.iter().any(|(n, _)| *n == name) {
            issues.push(node.line, &format!("{key}.{name}"), "missing required key");
        }
    }
    if issues.0.len() != before {
        return None;
    }
    let ban = Ban {
        kind: kind?,
        who: who?,
        reason: reason.unwrap_or_default(),
        by: by.unwrap_or_else(|| DEFAULT_BY.to_string()),
        created_at: created_at.unwrap_or(now),
        expires_at: expires_at.flatten(),
    };
    // A defaulted created_at is "now": comparing a past expiry against it would reject a file
    // that was valid yesterday, so only an explicit created_at is checked against expires_at.
    let check = if created_at.is_some() { ban.clone() } else { Ban { created_at: 0, ..ban.clone() } };
    match check.normalized() {
        Ok(n) => Some(Ban { who: n.who, ..ban }),
        Err(m) => {
            let field = if m.starts_with("expires_at") {
                "expires_at"
            } else if m.starts_with("reason") {
                "reason"
            } else if m.starts_with("by") {
                "by"
            } else {
                "who"
            };
            let line = seen.iter().find(|(n, _)| *n == field).map_or(node.line, |(_, l)| *l);
            issues.push(line, &format!("{key}.{field}"), m);
            None
        }
    }
}

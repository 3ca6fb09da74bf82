//! Loading rule files (YAML) and credential-carried rules (JSON) into a [`RuleSet`].
//!
//! The YAML is first read into a generic tree that keeps each node's line, then validated by
//! hand rather than by `deny_unknown_fields`: serde stops at the first error, and an operator
//! fixing a 500-rule file wants every problem (unknown key, bad regex, bad filter) at once.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::policy::yaml_node::{N, V};

use super::placeholder::TopicTemplate;
use super::who::parse_who;
use super::{DenyAction, LoadIssue, Permission, Rule, RuleSet};

/// Largest rule file accepted: big enough for ~100k rules, small enough that a wrong path
/// (a log file, a device) is refused instead of read into memory.
pub const MAX_RULE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// JSON carries no positions: every node gets line 0.
fn from_json(value: &serde_json::Value, depth: usize) -> Result<N, String> {
    if depth > 32 {
        return Err("rules nested too deeply".into());
    }
    let d = depth.saturating_add(1);
    let v = match value {
        serde_json::Value::Null => V::Null,
        serde_json::Value::Bool(b) => V::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => V::Int(i.into()),
            (None, Some(u), _) => V::Int(u.into()),
            (None, None, Some(_)) => V::Float,
            _ => V::Null,
        },
        serde_json::Value::String(s) => V::Str(s.clone()),
        serde_json::Value::Array(a) => V::Seq(a.iter().map(|x| from_json(x, d)).collect::<Result<_, _>>()?),
        serde_json::Value::Object(o) => V::Map(
            o.iter()
                .map(|(k, x)| Ok((N { line: 0, v: V::Str(k.clone()) }, from_json(x, d)?)))
                .collect::<Result<_, String>>()?,
        ),
    };
    Ok(N { line: 0, v })
}

/// Collects every problem found while loading.
#[derive(Default)]
pub(crate) struct Issues {
    pub(crate) list: Vec<LoadIssue>,
}

impl Issues {
    pub(crate) fn push(&mut self, line: u64, key: &str, message: impl Into<String>) {
        self.list.push(LoadIssue { line, key: key.to_string(), message: message.into() });
    }
}

/// Parses a rule file. `file_label` names the file in default rule ids (`<label>:<line>`).
pub fn parse_rule_file(text: &str, file_label: &str) -> Result<RuleSet, Vec<LoadIssue>> {
    let mut issues = Issues::default();
    let root: N = match serde_saphyr::from_str(text) {
        Ok(n) => n,
        Err(e) => {
            let line = e.location().map_or(0, |l| l.line());
            let msg = e.to_string();
            issues.push(line, "(document)", msg.lines().next().unwrap_or("invalid YAML"));
            return Err(issues.list);
        }
    };
    let set = parse_root(&root, file_label, &mut issues);
    match set {
        Some(s) if issues.list.is_empty() => Ok(s),
        _ => {
            if issues.list.is_empty() {
                issues.push(0, "(document)", "invalid rule file");
            }
            Err(issues.list)
        }
    }
}

/// Reads (at most [`MAX_RULE_FILE_BYTES`]) and parses a rule file.
pub fn load_rule_file(path: &Path) -> Result<RuleSet, Vec<LoadIssue>> {
    let buf = crate::util::read_bounded(path, MAX_RULE_FILE_BYTES).map_err(|e| {
        vec![LoadIssue { line: 0, key: "(file)".into(), message: format!("{}: {e}", path.display()) }]
    })?;
    parse_rule_file(&buf, &path.display().to_string())
}

/// Parses rules carried by a credential (JWT claim, HTTP backend): a JSON array of rule
/// objects with the same schema as the `rules:` items. Ids default to `credential:<n>`.
pub fn parse_rules_json(value: &serde_json::Value) -> Result<Vec<Rule>, String> {
    let node = from_json(value, 0)?;
    let V::Seq(items) = &node.v else {
        return Err("rules must be a JSON array".into());
    };
    let mut issues = Issues::default();
    let mut rules = Vec::with_capacity(items.len());
    let mut ids = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let default_id = format!("credential:{}", i.saturating_add(1));
        if let Some(r) = parse_rule(item, &format!("rules[{i}]"), &default_id, &mut ids, &mut issues) {
            rules.push(r);
        }
    }
    if issues.list.is_empty() {
        Ok(rules)
    } else {
        Err(issues.list.iter().map(|i| format!("{}: {}", i.key, i.message)).collect::<Vec<_>>().join("; "))
    }
}

fn parse_root(root: &N, label: &str, issues: &mut Issues) -> Option<RuleSet> {
    let V::Map(entries) = &root.v else {
        issues.push(
            root.line,
            "(document)",
            "expected a map with keys enforce, no_match, deny_action, rules",
        );
        return None;
    };
    let mut set = RuleSet::default();
    let mut seen = HashSet::new();
    let mut have_rules = false;
    for (k, v) in entries {
        let Some(key) = k.as_str() else {
            issues.push(k.line, "(document)", "keys must be strings");
            continue;
        };
        if !seen.insert(key) {
            issues.push(k.line, key, "duplicate key");
            continue;
        }
        match key {
            "enforce" => match v.v {
                V::Bool(b) => set.enforce = b,
                _ => issues.push(v.line, key, "expected true or false"),
            },
            "no_match" => {
                if let Some(p) = permission(v, key, issues) {
                    set.no_match = p;
                }
            }
            "deny_action" => match v.as_str() {
                Some("ignore") => set.deny_action = DenyAction::Ignore,
                Some("disconnect") => set.deny_action = DenyAction::Disconnect,
                _ => issues.push(v.line, key, "expected ignore or disconnect"),
            },
            "rules" => {
                have_rules = true;
                match &v.v {
                    V::Seq(items) => {
                        let mut ids = HashSet::new();
                        for (i, item) in items.iter().enumerate() {
                            let default_id = format!("{label}:{}", item.line);
                            let key = format!("rules[{i}]");
                            if let Some(r) = parse_rule(item, &key, &default_id, &mut ids, issues) {
                                set.rules.push(r);
                            }
                        }
                    }
                    V::Null => {}
                    _ => issues.push(v.line, key, "expected a list of rules"),
                }
            }
            other => {
                issues.push(k.line, other, "unknown key (expected enforce, no_match, deny_action, rules)")
            }
        }
    }
    if !have_rules {
        issues.push(root.line, "rules", "missing key `rules` (use `rules: []` for none)");
    }
    let placeholders: BTreeSet<String> =
        set.rules.iter().flat_map(|r| r.topics.iter().flat_map(|t| t.vars().map(|v| v.name()))).collect();
    set.placeholders = placeholders;
    Some(set)
}

fn permission(v: &N, key: &str, issues: &mut Issues) -> Option<Permission> {
    match v.as_str() {
        Some("allow") => Some(Permission::Allow),
        Some("deny") => Some(Permission::Deny),
        _ => {
            issues.push(v.line, key, "expected allow or deny");
            None
        }
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Parses one rule; every problem goes to `issues`. `None` when the rule is invalid.
fn parse_rule(
    node: &N,
    key: &str,
    default_id: &str,
    ids: &mut HashSet<String>,
    issues: &mut Issues,
) -> Option<Rule> {
    let V::Map(entries) = &node.v else {
        issues.push(node.line, key, "expected a rule map (permission, who, action, topics)");
        return None;
    };
    let before = issues.list.len();
    let mut id = None;
    let mut perm = None;
    let mut who = None;
    let mut action = None;
    let mut qos_mask = 0b111u8;
    let mut retain = None;
    let mut topics = None;
    let mut seen = HashSet::new();
    for (k, v) in entries {
        let Some(name) = k.as_str() else {
            issues.push(k.line, key, "keys must be strings");
            continue;
        };
        let sub = format!("{key}.{name}");
        if !seen.insert(name) {
            issues.push(k.line, &sub, "duplicate key");
            continue;
        }
        match name {
            "id" => match v.as_str() {
                Some(s) if valid_id(s) => {
                    if ids.insert(s.to_string()) {
                        id = Some(s.to_string());
                    } else {
                        issues.push(v.line, &sub, format!("duplicate rule id {s:?}"));
                    }
                }
                _ => issues.push(v.line, &sub, "expected 1 to 64 characters from [A-Za-z0-9_.-]"),
            },
            "permission" => perm = permission(v, &sub, issues),
            "who" => who = parse_who(v, &sub, 0, issues),
            "action" => match v.as_str() {
                Some("publish") => action = Some((true, false)),
                Some("subscribe") => action = Some((false, true)),
                Some("all") => action = Some((true, true)),
                _ => issues.push(v.line, &sub, "expected publish, subscribe or all"),
            },
            "qos" => match &v.v {
                V::Seq(items) if !items.is_empty() => {
                    qos_mask = 0;
                    for q in items {
                        match q.v {
                            V::Int(n @ 0..=2) => qos_mask |= 1u8 << n,
                            _ => issues.push(q.line, &sub, "QoS must be 0, 1 or 2"),
                        }
                    }
                }
                _ => issues.push(v.line, &sub, "expected a non-empty list of QoS levels, e.g. [0, 1]"),
            },
            "retain" => match v.v {
                V::Bool(b) => retain = Some((b, v.line)),
                _ => issues.push(v.line, &sub, "expected true or false"),
            },
            "topics" => topics = parse_topics(v, &sub, issues),
            other => issues.push(
                k.line,
                &sub,
                format!("unknown key `{other}` (expected id, permission, who, action, qos, retain, topics)"),
            ),
        }
    }
    for (present, name) in [
        (perm.is_some() || seen.contains("permission"), "permission"),
        (who.is_some() || seen.contains("who"), "who"),
        (action.is_some() || seen.contains("action"), "action"),
        (topics.is_some() || seen.contains("topics"), "topics"),
    ] {
        if !present {
            issues.push(node.line, &format!("{key}.{name}"), "missing required key");
        }
    }
    if let (Some((_, line)), Some((publish, subscribe))) = (retain, action) {
        if !publish || subscribe {
            issues.push(
                line,
                &format!("{key}.retain"),
                "retain qualifies publishes only: use it with `action: publish`",
            );
        }
    }
    if issues.list.len() != before {
        return None;
    }
    let ((publish, subscribe), permission, who, topics) = (action?, perm?, who?, topics?);
    Some(Rule {
        id: Arc::from(id.unwrap_or_else(|| default_id.to_string())),
        permission,
        who,
        publish,
        subscribe,
        qos_mask,
        retain: retain.map(|(b, _)| b),
        topics,
    })
}

fn parse_topics(v: &N, key: &str, issues: &mut Issues) -> Option<Vec<TopicTemplate>> {
    let V::Seq(items) = &v.v else {
        issues.push(v.line, key, "expected a non-empty list of topic filters");
        return None;
    };
    if items.is_empty() {
        issues.push(v.line, key, "expected a non-empty list of topic filters");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let sub = format!("{key}[{i}]");
        let parsed = match &item.v {
            V::Str(s) => TopicTemplate::parse_filter(s),
            V::Map(e) => match e.as_slice() {
                [(k, x)] if k.as_str() == Some("eq") => match x.as_str() {
                    Some(s) => TopicTemplate::parse_eq(s),
                    None => Err("eq expects a string".into()),
                },
                _ => Err("expected a filter string or {eq: \"literal\"}".into()),
            },
            _ => Err("expected a filter string (quote numbers) or {eq: \"literal\"}".into()),
        };
        match parsed {
            Ok(t) => out.push(t),
            Err(m) => {
                issues.push(item.line, &sub, m);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

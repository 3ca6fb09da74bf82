//! Per-client compilation: keep the rules whose `who` matches, expand placeholders, index.
//!
//! Done once at CONNECT so that a per-packet check never evaluates `who`, never expands a
//! placeholder and only looks at rules that can match the first topic level. Order is
//! preserved everywhere: candidate lists hold positions in one rule-ordered entry table and
//! are merged by position, so "first match wins" survives the indexing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::placeholder::Expanded;
use super::{Identity, Permission, Rule, RuleSet};

/// A rule as one client sees it: only what a check needs.
#[derive(Debug)]
pub(crate) struct CRule {
    pub(crate) id: Arc<str>,
    pub(crate) permission: Permission,
    pub(crate) qos_mask: u8,
    pub(crate) retain: Option<bool>,
}

/// One expanded topic of one rule.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) rule: usize,
    pub(crate) filter: Expanded,
}

/// FNV-1a: first levels are short, and SipHash's flooding resistance buys nothing here because
/// the keys come from the rule file, not from clients (a lookup never inserts).
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Entry positions by first topic level, each list ascending (= rule order).
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Literal first level → entries.
    pub(crate) buckets: HashMap<Box<str>, Vec<usize>, BuildHasherDefault<Fnv>>,
    /// Entries whose first level is `+` or `#`: candidates for every topic.
    pub(crate) wildcard: Vec<usize>,
    /// Every entry: a subscription filter with a wildcard first level can meet any rule.
    pub(crate) all: Vec<usize>,
}

impl Index {
    fn add(&mut self, pos: usize, filter: &Expanded) {
        self.all.push(pos);
        match filter.first_literal() {
            Some(first) => self.buckets.entry(first.into()).or_default().push(pos),
            None => self.wildcard.push(pos),
        }
    }

    /// Candidates for a literal first level, in rule order.
    pub(crate) fn candidates(&self, first: &str) -> Merge<'_> {
        Merge { a: self.buckets.get(first).map_or(&[], Vec::as_slice), b: &self.wildcard }
    }
}

/// Merges two ascending position lists.
pub(crate) struct Merge<'a> {
    a: &'a [usize],
    b: &'a [usize],
}

impl Iterator for Merge<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match (self.a.split_first(), self.b.split_first()) {
            (Some((&x, ra)), Some((&y, _))) if x <= y => {
                self.a = ra;
                Some(x)
            }
            (_, Some((&y, rb))) => {
                self.b = rb;
                Some(y)
            }
            (Some((&x, ra)), None) => {
                self.a = ra;
                Some(x)
            }
            (None, None) => None,
        }
    }
}

/// The rules of one client: expanded, filtered by `who`, indexed. Immutable; cheap to share.
#[derive(Debug)]
pub struct ClientAcl {
    pub(crate) rules: Vec<CRule>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) publish: Index,
    pub(crate) subscribe: Index,
    pub(crate) no_match: Permission,
    pub(crate) superuser: bool,
}

impl ClientAcl {
    /// Number of rules that apply to this client (after `who` and placeholder expansion).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// True when the client bypasses the rules.
    pub fn is_superuser(&self) -> bool {
        self.superuser
    }
}

impl RuleSet {
    /// Rules are compiled per client once, at CONNECT; `extra` are rules carried by the
    /// client's credential (JWT claim, HTTP backend) and go first.
    pub fn compile_for(&self, who: &Identity, extra: &[Rule]) -> ClientAcl {
        let mut acl = ClientAcl {
            rules: Vec::new(),
            entries: Vec::new(),
            publish: Index::default(),
            subscribe: Index::default(),
            no_match: self.no_match,
            superuser: who.superuser,
        };
        if who.superuser {
            return acl;
        }
        for rule in extra.iter().chain(&self.rules) {
            if !(rule.who.matches(who)) {
                continue;
            }
            let filters: Vec<Expanded> =
                rule.topics.iter().filter_map(|t| t.expand(who, rule.permission)).collect();
            if filters.is_empty() {
                continue;
            }
            let rule_pos = acl.rules.len();
            acl.rules.push(CRule {
                id: rule.id.clone(),
                permission: rule.permission,
                qos_mask: rule.qos_mask,
                retain: rule.retain,
            });
            for filter in filters {
                let pos = acl.entries.len();
                if rule.publish {
                    acl.publish.add(pos, &filter);
                }
                if rule.subscribe {
                    acl.subscribe.add(pos, &filter);
                }
                acl.entries.push(Entry { rule: rule_pos, filter });
            }
        }
        acl
    }
}

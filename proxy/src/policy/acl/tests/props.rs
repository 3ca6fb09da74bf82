//! Property tests for the filter relations, over a tiny alphabet so collisions are common.

use proptest::prelude::*;

use crate::policy::acl::{filter_contains, filters_intersect, topic_matches};

fn level() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("".to_string()), Just("$s".to_string())]
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..5).prop_map(|l| l.join("/"))
}

fn filter() -> impl Strategy<Value = String> {
    (prop::collection::vec(prop_oneof![3 => level(), 2 => Just("+".to_string())], 1..4), any::<bool>())
        .prop_map(|(mut l, hash)| {
            if hash {
                l.push("#".into());
            }
            l.join("/")
        })
}

/// Concrete topics some filter could match: every instantiation of its levels over the
/// alphabet, with up to two extra levels for `#`.
fn instances(filter: &str) -> Vec<String> {
    let alpha = ["a", "b", "", "$s", "c"];
    let mut out = vec![String::new()];
    let mut first = true;
    for lvl in filter.split('/') {
        let choices: Vec<Vec<&str>> = match lvl {
            "+" => alpha.iter().map(|a| vec![*a]).collect(),
            "#" => {
                let mut c = vec![vec![]];
                for a in alpha {
                    c.push(vec![a]);
                    for b in alpha {
                        c.push(vec![a, b]);
                    }
                }
                c
            }
            l => vec![vec![l]],
        };
        let mut next = Vec::new();
        for prefix in &out {
            for ch in &choices {
                let mut t = prefix.clone();
                for (i, part) in ch.iter().enumerate() {
                    if !(first && i == 0) {
                        t.push('/');
                    }
                    t.push_str(part);
                }
                if ch.is_empty() && first {
                    continue; // `#` alone at the top needs at least one level
                }
                next.push(t);
            }
        }
        out = next;
        first = false;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn contains_implies_subset(r in filter(), f in filter()) {
        if filter_contains(&r, &f) {
            for t in instances(&f) {
                if topic_matches(&f, &t) {
                    prop_assert!(topic_matches(&r, &t), "{r} contains {f} but misses {t}");
                }
            }
        }
    }

    #[test]
    fn not_intersects_implies_disjoint(d in filter(), f in filter(), extra in topic()) {
        if !filters_intersect(&d, &f) {
            for t in instances(&f).into_iter().chain([extra]) {
                prop_assert!(!(topic_matches(&d, &t) && topic_matches(&f, &t)), "{d} and {f} share {t}");
            }
        }
    }

    #[test]
    fn intersects_is_symmetric(a in filter(), b in filter()) {
        prop_assert_eq!(filters_intersect(&a, &b), filters_intersect(&b, &a));
    }

    #[test]
    fn contains_is_reflexive(f in filter()) {
        prop_assert!(filter_contains(&f, &f));
    }

    #[test]
    fn literal_topic_contained_iff_matched(r in filter(), t in topic()) {
        prop_assert_eq!(filter_contains(&r, &t), topic_matches(&r, &t));
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = crate::policy::acl::parse_rule_file(&s, "fuzz");
    }
}

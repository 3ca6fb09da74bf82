//! MQTT topic matching, filter containment and filter intersection over pre-split levels.
//!
//! Three relations because publish and subscribe differ (trap 9): a PUBLISH names one topic
//! (`matches`); a SUBSCRIBE names a *set* of topics, which an allow rule must cover entirely
//! (`contains`) and a deny rule must not touch at all (`intersects`). All comparisons are
//! byte-exact (trap 10): no case folding, no normalisation.
//!
//! The `$` rule of the spec (MQTT 4.7.2) applies to all three: a filter whose first level is
//! `+` or `#` matches no topic that starts with `$`, so such a rule can neither grant nor be
//! needed to deny `$SYS/...`.

/// One level of a compiled filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Lit(Box<str>),
    Plus,
    Hash,
}

/// Splits a (valid) filter into levels. Callers validate first; on an invalid filter the
/// result is still well-defined (a `#`/`+` inside a level is just a literal).
pub(crate) fn parse_filter(filter: &str) -> Vec<Level> {
    filter
        .split('/')
        .map(|l| match l {
            "+" => Level::Plus,
            "#" => Level::Hash,
            other => Level::Lit(other.into()),
        })
        .collect()
}

fn is_wild(l: Option<&Level>) -> bool {
    matches!(l, Some(Level::Plus | Level::Hash))
}

fn lit_dollar(l: Option<&Level>) -> bool {
    matches!(l, Some(Level::Lit(s)) if s.starts_with('$'))
}

/// Does `topic` (a topic name) match `filter`? `a/#` matches `a` (the parent), `+` matches an
/// empty level, and a wildcard first level never matches a `$` topic.
pub(crate) fn matches(filter: &[Level], topic: &str) -> bool {
    if is_wild(filter.first()) && topic.starts_with('$') {
        return false;
    }
    let mut levels = topic.split('/');
    for l in filter {
        match l {
            Level::Hash => return true,
            Level::Plus => {
                if levels.next().is_none() {
                    return false;
                }
            }
            Level::Lit(s) => match levels.next() {
                Some(t) if t == &**s => {}
                _ => return false,
            },
        }
    }
    levels.next().is_none()
}

/// Is every topic matched by `inner` also matched by `outer`? Sound (never says yes wrongly)
/// and exact for valid filters.
pub(crate) fn contains(outer: &[Level], inner: &[Level]) -> bool {
    // `outer` starting with a wildcard cannot match `$` topics, which a `$`-literal inner has.
    if is_wild(outer.first()) && lit_dollar(inner.first()) {
        return false;
    }
    let mut o = outer.iter();
    let mut i = inner.iter();
    let mut first = true;
    loop {
        match (o.next(), i.next()) {
            // `#` covers the rest, including the parent (inner ending here has >= 1 level).
            (Some(Level::Hash), _) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(Level::Plus), Some(Level::Hash)) => {
                // inner `#` at level n also matches the n-level parent, which outer's `+`
                // (needing n+1 levels) misses, except at the top: there `#` means "one level
                // or more", exactly `+/#`.
                return first && matches!(o.next(), Some(Level::Hash));
            }
            (Some(Level::Plus), Some(_)) => {}
            (Some(Level::Lit(_)), Some(Level::Plus | Level::Hash)) => return false,
            (Some(Level::Lit(a)), Some(Level::Lit(b))) => {
                if a != b {
                    return false;
                }
            }
        }
        first = false;
    }
}

/// Is there a topic matched by both filters?
pub(crate) fn intersects(a: &[Level], b: &[Level]) -> bool {
    if (is_wild(a.first()) && lit_dollar(b.first())) || (lit_dollar(a.first()) && is_wild(b.first())) {
        return false;
    }
    let mut x = a.iter();
    let mut y = b.iter();
    loop {
        match (x.next(), y.next()) {
            // `#` takes whatever the other side still needs, or the parent if it ended.
            (Some(Level::Hash), _) | (_, Some(Level::Hash)) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(Level::Lit(p)), Some(Level::Lit(q))) => {
                if p != q {
                    return false;
                }
            }
            (Some(_), Some(_)) => {}
        }
    }
}

/// String form of the topic match, for callers outside the engine and for tests.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    matches(&parse_filter(filter), topic)
}

/// String form of containment: every topic `inner` matches, `outer` matches too.
pub fn filter_contains(outer: &str, inner: &str) -> bool {
    contains(&parse_filter(outer), &parse_filter(inner))
}

/// String form of intersection: some topic matches both filters.
pub fn filters_intersect(a: &str, b: &str) -> bool {
    intersects(&parse_filter(a), &parse_filter(b))
}

//! Rule topic templates with `${...}` placeholders, and their per-client expansion.
//!
//! Trap 7: a client id `+`, `#`, `a/b` or `` substituted into `devices/${clientid}/#` would
//! widen the rule. Expansion therefore fails closed: an unsafe value drops the topic from an
//! allow rule (it can never grant) and turns the whole level into `+` in a deny rule (the deny
//! gets broader, never narrower). A value starting with `$` at the very start of a filter is
//! unsafe too: it would let a client named `$SYS` own `$SYS/#`.

use std::fmt::Write as _;

use super::topic_match::{parse_filter, Level};
use super::{Identity, Permission};
use crate::codec::{validate_topic_filter, validate_topic_name};

/// A placeholder that a rule topic may reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Var {
    Username,
    ClientId,
    CertCn,
    PeerHost,
    Attr(Box<str>),
}

impl Var {
    /// The name used by [`super::RuleSet::uses_placeholder`].
    pub(crate) fn name(&self) -> String {
        match self {
            Var::Username => "username".into(),
            Var::ClientId => "clientid".into(),
            Var::CertCn => "cert_cn".into(),
            Var::PeerHost => "peerhost".into(),
            Var::Attr(a) => format!("attr.{a}"),
        }
    }

    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "username" => Var::Username,
            "clientid" => Var::ClientId,
            "cert_cn" => Var::CertCn,
            "peerhost" => Var::PeerHost,
            _ => {
                let attr = name.strip_prefix("attr.")?;
                if attr.is_empty() || !attr.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                {
                    return None;
                }
                Var::Attr(attr.into())
            }
        })
    }

    fn value(&self, who: &Identity) -> Option<String> {
        match self {
            Var::Username => who.username.clone(),
            Var::ClientId => Some(who.client_id.clone()),
            Var::CertCn => who.cert_cn.clone(),
            Var::PeerHost => who.peer.map(|ip| super::who::canonical_ip(ip).to_string()),
            Var::Attr(a) => who.attributes.get(&**a).cloned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(Box<str>),
    Var(Var),
}

/// One rule topic as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TopicTemplate {
    /// `{eq: X}`: matches only the identical topic or filter string X.
    Eq(Box<str>),
    /// A filter; each level is a sequence of literal text and placeholders.
    Filter(Vec<Vec<Part>>),
}

/// A filter after expansion for one client, ready to match.
#[derive(Clone, Debug)]
pub(crate) enum Expanded {
    Eq(Box<str>),
    Filter(Vec<Level>),
}

impl Expanded {
    /// The literal first level, used as the index key; `None` for a wildcard first level.
    pub(crate) fn first_literal(&self) -> Option<&str> {
        match self {
            Expanded::Eq(s) => Some(s.split('/').next().unwrap_or_default()),
            Expanded::Filter(levels) => match levels.first() {
                Some(Level::Lit(s)) => Some(s),
                _ => None,
            },
        }
    }
}

impl TopicTemplate {
    /// Parses and validates one rule topic. Rule topics are plain filters: `$share/` and
    /// `$queue/` are refused because subscriptions are matched after stripping them.
    pub(crate) fn parse_filter(text: &str) -> Result<TopicTemplate, String> {
        let mut levels = Vec::new();
        for level in text.split('/') {
            levels.push(parse_level(level)?);
        }
        let t = TopicTemplate::Filter(levels);
        // Check the grammar with every placeholder replaced by a safe stand-in.
        let probe = t.render(&mut |_| Some("x".to_string()));
        validate_topic_filter(&probe).map_err(|e| format!("invalid topic filter {text:?}: {e}"))?;
        check_not_shared(text)?;
        Ok(t)
    }

    /// `{eq: X}`: X is compared as a string, so placeholders (whose fail-closed widening needs
    /// wildcards) are refused rather than silently taken literally.
    pub(crate) fn parse_eq(text: &str) -> Result<TopicTemplate, String> {
        if text.contains("${") {
            return Err(format!("placeholders are not allowed in {{eq: ...}}: {text:?}"));
        }
        if validate_topic_filter(text).is_err() && validate_topic_name(text).is_err() {
            return Err(format!("invalid topic {text:?} in {{eq: ...}}"));
        }
        check_not_shared(text)?;
        Ok(TopicTemplate::Eq(text.into()))
    }

    /// Placeholders referenced by this topic.
    pub(crate) fn vars(&self) -> impl Iterator<Item = &Var> {
        let levels: &[Vec<Part>] = match self {
            TopicTemplate::Filter(l) => l,
            TopicTemplate::Eq(_) => &[],
        };
        levels.iter().flatten().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Lit(_) => None,
        })
    }

    fn render(&self, value: &mut dyn FnMut(&Var) -> Option<String>) -> String {
        let mut out = String::new();
        if let TopicTemplate::Filter(levels) = self {
            for (i, level) in levels.iter().enumerate() {
                if i > 0 {
                    out.push('/');
                }
                for part in level {
                    match part {
                        Part::Lit(s) => out.push_str(s),
                        Part::Var(v) => out.push_str(&value(v).unwrap_or_default()),
                    }
                }
            }
        }
        out
    }

    /// Expands this topic for one client. `None` = the topic is dropped (allow rule with an
    /// unsafe or missing value).
    pub(crate) fn expand(&self, who: &Identity, permission: Permission) -> Option<Expanded> {
        let levels = match self {
            TopicTemplate::Eq(s) => return Some(Expanded::Eq(s.clone())),
            TopicTemplate::Filter(levels) => levels,
        };
        let mut out = Vec::with_capacity(levels.len());
        let mut text_len: usize = 0;
        for (li, level) in levels.iter().enumerate() {
            let mut text = String::new();
            let mut unsafe_value = false;
            let mut has_var = false;
            for part in level {
                match part {
                    Part::Lit(s) => text.push_str(s),
                    Part::Var(v) => {
                        has_var = true;
                        let at_start = li == 0 && text.is_empty();
                        match v.value(who) {
                            Some(val) if safe_value(&val, at_start) => text.push_str(&val),
                            _ => unsafe_value = true,
                        }
                    }
                }
            }
            if unsafe_value {
                match permission {
                    Permission::Allow => return None,
                    Permission::Deny => {
                        out.push(Level::Plus);
                        text_len = text_len.saturating_add(2);
                        continue;
                    }
                }
            }
            text_len = text_len.saturating_add(text.len()).saturating_add(1);
            out.push(if has_var {
                Level::Lit(text.into())
            } else {
                parse_filter(&text).pop().unwrap_or(Level::Lit(text.into()))
            });
        }
        if text_len > usize::from(u16::MAX).saturating_add(1) {
            // Too long to ever match a valid topic. An allow can't grant; a deny falls back to
            // `+` for every level that held a placeholder, which only broadens it.
            return match permission {
                Permission::Allow => None,
                Permission::Deny => Some(Expanded::Filter(
                    levels
                        .iter()
                        .zip(out)
                        .map(
                            |(tpl, l)| {
                                if tpl.iter().any(|p| matches!(p, Part::Var(_))) {
                                    Level::Plus
                                } else {
                                    l
                                }
                            },
                        )
                        .collect(),
                )),
            };
        }
        Some(Expanded::Filter(out))
    }
}

fn check_not_shared(text: &str) -> Result<(), String> {
    if text.starts_with("$share/") || text.starts_with("$queue/") {
        return Err(format!(
            "rule topic {text:?} must not use $share/ or $queue/: subscriptions are matched after stripping them"
        ));
    }
    Ok(())
}

fn parse_level(level: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = level;
    while let Some(start) = rest.find("${") {
        let (lit, after) = rest.split_at(start);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.into()));
        }
        let body = after.get(2..).unwrap_or_default();
        let Some(end) = body.find('}') else {
            return Err(format!("unterminated placeholder in {level:?}"));
        };
        let name = body.get(..end).unwrap_or_default();
        let var = Var::parse(name).ok_or_else(|| {
            let mut m = format!("unknown placeholder ${{{name}}}");
            let _ = write!(m, " (known: username, clientid, cert_cn, peerhost, attr.NAME)");
            m
        })?;
        parts.push(Part::Var(var));
        rest = body.get(end.saturating_add(1)..).unwrap_or_default();
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(Part::Lit(rest.into()));
    }
    Ok(parts)
}

/// A value may be substituted only if it cannot change the shape of the filter.
fn safe_value(v: &str, at_start: bool) -> bool {
    if v.is_empty() || (at_start && v.starts_with('$')) {
        return false;
    }
    !v.chars().any(|c| matches!(c, '+' | '#' | '/' | '\0') || c.is_control())
}

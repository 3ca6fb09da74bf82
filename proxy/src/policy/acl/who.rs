//! The `who` part of a rule: which clients it applies to.
//!
//! Evaluated once per client in `compile_for`, never per packet. There is no negation, so
//! "a field the client lacks does not match" is always the conservative reading: an absent
//! username can neither select an allow rule nor escape a deny rule written for `all`.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};

use super::file::Issues;
use super::Identity;
use crate::policy::yaml_node::{N, V};

/// Deepest `and`/`or` nesting accepted; keeps recursion bounded on hostile input.
pub(crate) const MAX_WHO_DEPTH: usize = 8;

/// Compiled regex programs are capped so a rule file cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Clone, Debug)]
pub(crate) enum Who {
    All,
    Username(String),
    UsernameRe(Regex),
    ClientId(String),
    ClientIdRe(Regex),
    Ip(IpNet),
    CertCn(String),
    Group(String),
    /// Every listed attribute must be present with exactly this value.
    Attr(Vec<(String, String)>),
    And(Vec<Who>),
    Or(Vec<Who>),
}

/// IPv4-mapped IPv6 addresses (dual-stack listeners) are treated as the IPv4 address, so an
/// IPv4 rule cannot be sidestepped by the listener's socket family.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

impl Who {
    pub(crate) fn matches(&self, who: &Identity) -> bool {
        match self {
            Who::All => true,
            Who::Username(u) => who.username.as_deref() == Some(u.as_str()),
            Who::UsernameRe(re) => who.username.as_deref().is_some_and(|u| re.is_match(u)),
            Who::ClientId(c) => who.client_id == *c,
            Who::ClientIdRe(re) => re.is_match(&who.client_id),
            Who::Ip(net) => who.peer.is_some_and(|ip| net.contains(&canonical_ip(ip))),
            Who::CertCn(cn) => who.cert_cn.as_deref() == Some(cn.as_str()),
            Who::Group(g) => who.groups.iter().any(|x| x == g),
            Who::Attr(pairs) => pairs.iter().all(|(k, v)| who.attributes.get(k) == Some(v)),
            Who::And(list) => list.iter().all(|w| w.matches(who)),
            Who::Or(list) => list.iter().any(|w| w.matches(who)),
        }
    }
}

/// Regexes must match the whole value: an unanchored `dev` would select `evil-dev-1` too,
/// which in an allow rule grants more than the author meant.
pub(crate) fn compile_regex(re: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex: {}", e.to_string().lines().last().unwrap_or("")))
}

fn parse_ip(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(match net {
            IpNet::V6(v6) if v6.addr().to_ipv4_mapped().is_some() && v6.prefix_len() >= 96 => {
                let v4 = v6.addr().to_ipv4_mapped().map_or(net.addr(), IpAddr::V4);
                IpNet::new(v4, v6.prefix_len().saturating_sub(96)).unwrap_or(net)
            }
            _ => net.trunc(),
        });
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(canonical_ip(ip))),
        Err(_) => Err(format!("{s:?} is not an IP address or CIDR network")),
    }
}

/// Parses a `who` node, reporting every problem into `issues`. `None` when invalid.
pub(crate) fn parse_who(node: &N, key: &str, depth: usize, issues: &mut Issues) -> Option<Who> {
    if depth > MAX_WHO_DEPTH {
        issues.push(node.line, key, format!("and/or nested deeper than {MAX_WHO_DEPTH}"));
        return None;
    }
    let entries = match &node.v {
        V::Str(s) if s == "all" => return Some(Who::All),
        V::Map(entries) => entries,
        _ => {
            issues.push(
                node.line,
                key,
                "expected `all` or a map with one of: username, username_re, clientid, clientid_re, \
                 ipaddr, cert_cn, group, attr, and, or",
            );
            return None;
        }
    };
    let [(k, v)] = entries.as_slice() else {
        issues.push(node.line, key, "a who map must have exactly one key (combine with and/or)");
        return None;
    };
    let Some(name) = k.as_str() else {
        issues.push(k.line, key, "who key must be a string");
        return None;
    };
    let sub = format!("{key}.{name}");
    let string = |issues: &mut Issues| -> Option<String> {
        match &v.v {
            V::Str(s) if !s.is_empty() => Some(s.clone()),
            _ => {
                issues.push(v.line, &sub, "expected a non-empty string");
                None
            }
        }
    };
    match name {
        "username" => string(issues).map(Who::Username),
        "clientid" => string(issues).map(Who::ClientId),
        "cert_cn" => string(issues).map(Who::CertCn),
        "group" => string(issues).map(Who::Group),
        "username_re" | "clientid_re" => {
            let re = string(issues)?;
            match compile_regex(&re) {
                Ok(r) if name == "username_re" => Some(Who::UsernameRe(r)),
                Ok(r) => Some(Who::ClientIdRe(r)),
                Err(m) => {
                    issues.push(v.line, &sub, m);
                    None
                }
            }
        }
        "ipaddr" => {
            let s = string(issues)?;
            parse_ip(&s).map(Who::Ip).map_err(|m| issues.push(v.line, &sub, m)).ok()
        }
        "attr" => {
            let V::Map(pairs) = &v.v else {
                issues.push(v.line, &sub, "expected a map of attribute name to value");
                return None;
            };
            if pairs.is_empty() {
                issues.push(v.line, &sub, "expected at least one attribute");
                return None;
            }
            let mut out = Vec::new();
            let mut ok = true;
            for (ak, av) in pairs {
                match (ak.as_str(), av.as_str()) {
                    (Some(a), Some(b)) => out.push((a.to_string(), b.to_string())),
                    _ => {
                        issues.push(ak.line, &sub, "attribute names and values must be strings");
                        ok = false;
                    }
                }
            }
            ok.then_some(Who::Attr(out))
        }
        "and" | "or" => {
            let V::Seq(items) = &v.v else {
                issues.push(v.line, &sub, "expected a list of who");
                return None;
            };
            if items.is_empty() {
                issues.push(v.line, &sub, "expected a non-empty list");
                return None;
            }
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match parse_who(item, &format!("{sub}[{i}]"), depth.saturating_add(1), issues) {
                    Some(w) => out.push(w),
                    None => ok = false,
                }
            }
            ok.then(|| if name == "and" { Who::And(out) } else { Who::Or(out) })
        }
        other => {
            issues.push(k.line, &sub, format!("unknown who key `{other}`"));
            None
        }
    }
}

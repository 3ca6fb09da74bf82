//! Validation and canonical forms of a ban's target (`who`), shared by the file loader, the
//! store and the set builder.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};

use super::BanKind;

/// MQTT strings (client ids, usernames) are at most 65,535 bytes; nothing longer can match.
pub const MAX_WHO_BYTES: usize = 65_535;

/// `reason` and `by` are free text for humans; bounded so a ban list cannot balloon memory.
pub const MAX_TEXT_BYTES: usize = 4_096;

/// Compiled size cap of one regex, so one pattern cannot exhaust memory.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// IPv4-mapped IPv6 addresses (dual-stack listeners) are treated as the IPv4 address, so an
/// IPv4 ban cannot be sidestepped by the listener's socket family.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Regexes must match the whole value: an unanchored `dev` would ban `evil-dev-1` too. (EMQX
/// matches unanchored; moat is deliberately stricter, write `.*dev.*` to get that.)
pub fn anchored(re: &str) -> String {
    format!("^(?:{re})$")
}

/// Compiles one pattern the way the set will, to report errors per line at load time.
pub fn compile_regex(re: &str) -> Result<Regex, String> {
    RegexBuilder::new(&anchored(re))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex: {}", e.to_string().lines().last().unwrap_or("")))
}

/// Parses an exact IP ban target into its canonical address.
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim().parse::<IpAddr>().map(canonical_ip).map_err(|_| format!("invalid IP address {s:?}"))
}

/// Parses a CIDR ban target. The prefix length is required (a bare address belongs in
/// `ipaddr`), host bits must be zero (`10.0.0.1/8` is more likely a typo than a wish to ban
/// 10/8), and IPv4-mapped IPv6 ranges of /96 or longer become their IPv4 range.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if !t.contains('/') {
        return Err(format!("invalid CIDR {s:?}: missing /prefix (use kind ipaddr for one address)"));
    }
    let net: IpNet = t.parse().map_err(|_| format!("invalid CIDR {s:?}"))?;
    if net.addr() != net.network() {
        return Err(format!("invalid CIDR {s:?}: host bits set (did you mean {}?)", net.trunc()));
    }
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len().saturating_sub(96)).unwrap_or(net),
            None => net,
        },
        other => other,
    })
}

/// Validates `who` for `kind` and returns its canonical spelling.
pub fn normalize_who(kind: BanKind, who: &str) -> Result<String, String> {
    if who.is_empty() {
        return Err("who must not be empty".into());
    }
    if who.len() > MAX_WHO_BYTES {
        return Err(format!("who is longer than {MAX_WHO_BYTES} bytes"));
    }
    match kind {
        BanKind::ClientId | BanKind::Username => Ok(who.to_string()),
        BanKind::ClientIdRe | BanKind::UsernameRe => compile_regex(who).map(|_| who.to_string()),
        BanKind::IpAddress => parse_ip(who).map(|ip| ip.to_string()),
        BanKind::Cidr => parse_cidr(who).map(|n| n.to_string()),
    }
}

/// Bounds a free-text field.
pub fn check_text(field: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(format!("{field} is longer than {MAX_TEXT_BYTES} bytes"));
    }
    Ok(())
}

//! Per-listener TLS options beyond certificates and versions: client chain depth, cipher suites,
//! session resumption and tickets, file watching. Weak suites are refused here, at config check,
//! rather than silently dropped (trap 22).

use rustls::{CipherSuite, SupportedCipherSuite};

use std::time::Duration;

use super::duration::parse_duration;
use super::error::Issues;
use super::model::{ClientAuth, CrlFetch, TlsOptions, TlsVersions, DEFAULT_MAX_CHAIN_DEPTH};
use super::raw::{RawCrlFetch, RawTls, S};

/// Longest client chain that can be configured: webpki follows at most 6 intermediates, so a
/// larger depth would promise something the verifier never accepts.
pub const MAX_CHAIN_DEPTH_LIMIT: u64 = 7;

/// Every suite moat can offer: the aws-lc-rs provider's, all AEAD (GCM or ChaCha20-Poly1305) with
/// ECDHE key exchange in TLS 1.2.
fn available() -> &'static [SupportedCipherSuite] {
    rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
}

/// The name a suite is written as in the config (rustls' name, e.g. `TLS13_AES_128_GCM_SHA256`,
/// `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`).
pub fn suite_name(s: CipherSuite) -> String {
    format!("{s:?}")
}

/// Finds a suite by name; IANA TLS 1.3 names (`TLS_AES_128_GCM_SHA256`) are accepted too.
fn lookup(name: &str) -> Option<SupportedCipherSuite> {
    let upper = name.trim().to_ascii_uppercase();
    let iana13 = upper.strip_prefix("TLS_").map(|rest| format!("TLS13_{rest}"));
    available().iter().copied().find(|s| {
        let n = suite_name(s.suite());
        n == upper || iana13.as_deref() == Some(n.as_str())
    })
}

/// Names that are recognisably weak (not AEAD, or broken ciphers/hashes).
fn is_weak(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["CBC", "RC4", "3DES", "DES", "NULL", "EXPORT", "MD5", "ANON", "IDEA", "SEED"]
        .iter()
        .any(|w| upper.contains(w))
        || (upper.contains("_WITH_") && upper.ends_with("_SHA"))
}

pub(crate) fn options(
    t: &RawTls,
    key: &str,
    versions: TlsVersions,
    client_auth: ClientAuth,
    issues: &mut Issues,
) -> TlsOptions {
    let mut o = TlsOptions::default();
    if let Some(d) = &t.max_chain_depth {
        let k = format!("{key}.max_chain_depth");
        if d.value == 0 || d.value > MAX_CHAIN_DEPTH_LIMIT {
            issues.push(d.referenced.line(), k, format!("must be between 1 and {MAX_CHAIN_DEPTH_LIMIT}"));
        } else if client_auth == ClientAuth::None {
            issues.push(d.referenced.line(), k, "max_chain_depth needs client_auth optional or required");
        } else {
            o.max_chain_depth = usize::try_from(d.value).unwrap_or(DEFAULT_MAX_CHAIN_DEPTH);
        }
    }
    if let Some(list) = &t.cipher_suites {
        o.cipher_suites = cipher_suites(list, &format!("{key}.cipher_suites"), versions, issues);
    }
    o.session_resumption = t.session_resumption.as_ref().is_none_or(|r| r.value);
    o.session_tickets = t.session_tickets.as_ref().is_some_and(|r| r.value);
    if o.session_tickets && !o.session_resumption {
        issues.push(
            t.session_tickets.as_ref().map_or(0, |s| s.referenced.line()),
            format!("{key}.session_tickets"),
            "session tickets are a form of resumption: they need `session_resumption: true`",
        );
    }
    o.watch = t.watch.as_ref().is_none_or(|w| w.value);
    if let Some(r) = &t.revoked_sessions {
        match r.value.as_str() {
            "disconnect" => o.disconnect_revoked = true,
            "keep" => o.disconnect_revoked = false,
            other => issues.push(
                r.referenced.line(),
                format!("{key}.revoked_sessions"),
                format!("`{other}` is not disconnect or keep"),
            ),
        }
    }
    if let Some(f) = &t.crl_fetch {
        if client_auth == ClientAuth::None {
            issues.push(0, format!("{key}.crl_fetch"), "crl_fetch needs client_auth optional or required");
        }
        o.crl_fetch = Some(crl_fetch(f, &format!("{key}.crl_fetch"), issues));
    }
    o.ocsp_stapling = t.ocsp_stapling.as_ref().and_then(|s| super::ocsp::stapling(s, key, issues));
    o.client_ocsp = t.client_ocsp.as_ref().and_then(|c| super::ocsp::client(c, key, client_auth, issues));
    o
}

fn crl_fetch(f: &RawCrlFetch, key: &str, issues: &mut Issues) -> CrlFetch {
    let dur = |v: &Option<S<String>>, name: &str, default: u64, issues: &mut Issues| match v {
        None => Duration::from_secs(default),
        Some(d) => match parse_duration(&d.value) {
            Ok(x) if x >= Duration::from_millis(100) => x,
            Ok(_) => {
                issues.push(d.referenced.line(), format!("{key}.{name}"), "must be at least 100ms");
                Duration::from_secs(default)
            }
            Err(msg) => {
                issues.push(d.referenced.line(), format!("{key}.{name}"), msg);
                Duration::from_secs(default)
            }
        },
    };
    let interval = dur(&f.interval, "interval", 3600, issues);
    let timeout = dur(&f.timeout, "timeout", 10, issues);
    let mut urls = Vec::new();
    for u in f.urls.as_ref().map(|l| l.value.as_slice()).unwrap_or_default() {
        match u.value.parse::<hyper::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => urls.push(u.value.clone()),
            _ => issues.push(
                u.referenced.line(),
                format!("{key}.urls"),
                format!(
                    "`{}` is not an http:// URL (CRLs are signed; they are fetched over plain HTTP)",
                    u.value
                ),
            ),
        }
    }
    if urls.len() > MAX_CRL_URLS {
        issues.push(0, format!("{key}.urls"), format!("at most {MAX_CRL_URLS} URLs"));
        urls.truncate(MAX_CRL_URLS);
    }
    CrlFetch { interval, timeout, urls }
}

/// Most CRL URLs one listener fetches (configured plus found in the CA bundle).
pub const MAX_CRL_URLS: usize = 32;

fn cipher_suites(
    list: &S<Vec<S<String>>>,
    key: &str,
    versions: TlsVersions,
    issues: &mut Issues,
) -> Option<Vec<CipherSuite>> {
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    let mut ok = true;
    for entry in &list.value {
        let line = entry.referenced.line();
        match lookup(&entry.value) {
            Some(s) if !out.iter().any(|o| o.suite() == s.suite()) => out.push(s),
            Some(_) => {
                issues.push(line, key, format!("`{}` is listed twice", entry.value));
                ok = false;
            }
            None if is_weak(&entry.value) => {
                issues.push(
                    line,
                    key,
                    format!(
                        "`{}` is not an AEAD suite and is never offered: use GCM or CHACHA20_POLY1305 suites",
                        entry.value
                    ),
                );
                ok = false;
            }
            None => {
                let known: Vec<String> = available().iter().map(|s| suite_name(s.suite())).collect();
                issues.push(
                    line,
                    key,
                    format!("unknown cipher suite `{}` (known: {})", entry.value, known.join(", ")),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    if out.is_empty() {
        issues.push(list.referenced.line(), key, "at least one cipher suite is required");
        return None;
    }
    let has13 = out.iter().any(|s| matches!(s, SupportedCipherSuite::Tls13(_)));
    let has12 = out.iter().any(|s| matches!(s, SupportedCipherSuite::Tls12(_)));
    if versions.tls13 && !has13 {
        issues.push(list.referenced.line(), key, "TLS 1.3 is enabled but no TLS13_ suite is listed");
    }
    if versions.tls12 && !has12 {
        issues.push(
            list.referenced.line(),
            key,
            "TLS 1.2 is enabled but no TLS 1.2 (TLS_ECDHE_…) suite is listed",
        );
    }
    Some(out.iter().map(|s| s.suite()).collect())
}

/// The provider's suites restricted to `wanted`, in `wanted`'s order (the server's preference).
pub fn select_suites(wanted: &[CipherSuite]) -> Vec<SupportedCipherSuite> {
    wanted.iter().filter_map(|w| available().iter().copied().find(|s| s.suite() == *w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_both_spellings() {
        assert!(lookup("TLS13_AES_128_GCM_SHA256").is_some());
        assert!(lookup("TLS_AES_128_GCM_SHA256").is_some());
        assert!(lookup("tls_ecdhe_rsa_with_aes_256_gcm_sha384").is_some());
        assert!(lookup("TLS_RSA_WITH_AES_128_CBC_SHA").is_none());
    }

    #[test]
    fn weak_names_are_recognised() {
        for w in [
            "TLS_RSA_WITH_AES_128_CBC_SHA",
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
            "RC4-SHA",
            "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
            "TLS_ECDHE_RSA_WITH_NULL_SHA",
        ] {
            assert!(is_weak(w), "{w}");
        }
        assert!(!is_weak("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
    }
}

//! `upstream:` — where the broker is and how moat talks to it. Plaintext is meant for a broker on
//! the same host (the sidecar case); anything else must use `tls` or say `allow_insecure: true`,
//! the same rule the listeners follow, so a credential never crosses a network in clear by
//! accident.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};

use super::error::Issues;
use super::model::{UpstreamConfig, UpstreamTls, DEFAULT_UPSTREAM};
use super::raw::{RawUpstream, RawUpstreamTls, S};
use super::validate::{duration, load_certs, pem_error};

pub(crate) fn upstream(raw: Option<RawUpstream>, base: &Path, issues: &mut Issues) -> UpstreamConfig {
    let raw = raw.unwrap_or(RawUpstream {
        address: None,
        connect_timeout: None,
        allow_insecure: None,
        proxy_protocol: None,
        tls: None,
    });
    let address_line = raw.address.as_ref().map_or(0, |a| a.referenced.line());
    let address = match raw.address {
        Some(a) => {
            if host_of(&a.value).is_none() {
                issues.push(a.referenced.line(), "upstream.address", "expected HOST:PORT");
            }
            a.value
        }
        None => DEFAULT_UPSTREAM.to_string(),
    };
    let proxy_protocol = match &raw.proxy_protocol {
        None => false,
        Some(p) => match p.value.as_str() {
            "off" => false,
            "v2" => true,
            other => {
                issues.push(
                    p.referenced.line(),
                    "upstream.proxy_protocol",
                    format!("`{other}` is not `off` or `v2` (moat sends only the binary v2 form)"),
                );
                false
            }
        },
    };
    let host = host_of(&address).unwrap_or_default();
    // A `tls` block with errors has been reported already: no second complaint about clear text.
    let tls_asked = raw.tls.is_some();
    let tls = raw.tls.and_then(|t| tls(t, host, base, issues));
    let allow_insecure = raw.allow_insecure.as_ref().is_some_and(|a| a.value);
    // (An address without a usable host was reported above.)
    if !tls_asked && !allow_insecure && !host.is_empty() && !is_local(host) {
        issues.push(
            address_line,
            "upstream.address",
            "a broker that is not on this host needs `upstream.tls` (or `allow_insecure: true`): \
             passwords and messages would cross the network in clear",
        );
    }
    UpstreamConfig {
        address,
        connect_timeout: duration(raw.connect_timeout, "upstream.connect_timeout", 5, issues),
        proxy_protocol,
        tls,
    }
}

/// The host part of `HOST:PORT` / `[V6]:PORT`, if the port is a number.
fn host_of(address: &str) -> Option<&str> {
    let (host, port) = address.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// Loopback addresses and `localhost`: the only places plaintext is accepted without asking.
fn is_local(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn tls(t: S<RawUpstreamTls>, host: &str, base: &Path, issues: &mut Issues) -> Option<UpstreamTls> {
    let line = t.referenced.line();
    let t = t.value;
    let mut roots = rustls::RootCertStore::empty();
    match &t.ca {
        None => {
            issues.push(
                line,
                "upstream.tls.ca",
                "required: the CA bundle that issued the broker's certificate",
            );
            return None;
        }
        Some(ca) => {
            let certs = load_certs(&base.join(&ca.value), ca.referenced.line(), "upstream.tls.ca", issues)?;
            for cert in certs {
                if let Err(e) = roots.add(cert) {
                    issues.push(
                        ca.referenced.line(),
                        "upstream.tls.ca",
                        format!("unusable CA certificate: {e}"),
                    );
                    return None;
                }
            }
        }
    }
    let name_line = t.server_name.as_ref().map_or(line, |n| n.referenced.line());
    let name = t.server_name.as_ref().map_or(host, |n| n.value.as_str());
    let Ok(server_name) = ServerName::try_from(name.to_string()) else {
        issues.push(
            name_line,
            "upstream.tls.server_name",
            format!("`{name}` is not a DNS name or IP address"),
        );
        return None;
    };
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .ok()?
            .with_root_certificates(roots);
    let config = match (&t.cert, &t.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain =
                load_certs(&base.join(&cert.value), cert.referenced.line(), "upstream.tls.cert", issues)?;
            let key_path = base.join(&key.value);
            let private_key = match PrivateKeyDer::from_pem_file(&key_path) {
                Ok(k) => k,
                Err(e) => {
                    issues.push(
                        key.referenced.line(),
                        "upstream.tls.key",
                        format!("cannot load a private key from {}: {}", key_path.display(), pem_error(&e)),
                    );
                    return None;
                }
            };
            match builder.with_client_auth_cert(chain, private_key) {
                Ok(c) => c,
                Err(e) => {
                    issues.push(
                        key.referenced.line(),
                        "upstream.tls.key",
                        format!("the key does not fit the certificate: {e}"),
                    );
                    return None;
                }
            }
        }
        (Some(c), None) => {
            issues.push(c.referenced.line(), "upstream.tls.key", "`cert` needs `key`");
            return None;
        }
        (None, Some(k)) => {
            issues.push(k.referenced.line(), "upstream.tls.cert", "`key` needs `cert`");
            return None;
        }
    };
    let mut digest = Sha256::new();
    for path in [&t.ca, &t.cert, &t.key].into_iter().flatten() {
        digest.update(std::fs::read(base.join(&path.value)).unwrap_or_default());
    }
    let fingerprint = digest.finalize().into();
    Some(UpstreamTls { config: Arc::new(config), server_name, fingerprint })
}

#[cfg(test)]
mod tests {
    use super::{host_of, is_local};

    #[test]
    fn hosts_are_split_off_their_port() {
        assert_eq!(host_of("127.0.0.1:1883"), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:1883"), Some("::1"));
        assert_eq!(host_of("broker.internal:8883"), Some("broker.internal"));
        assert_eq!(host_of("broker"), None);
        assert_eq!(host_of(":1883"), None);
        assert_eq!(host_of("broker:http"), None);
    }

    #[test]
    fn only_loopback_is_local() {
        assert!(is_local("127.0.0.1") && is_local("127.9.0.1") && is_local("::1") && is_local("LOCALHOST"));
        assert!(!is_local("10.0.0.1") && !is_local("broker") && !is_local("localhost.example.com"));
    }
}

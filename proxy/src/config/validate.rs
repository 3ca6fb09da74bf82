//! Turns the raw file into a [`Config`], collecting every problem (with line and key) before failing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::duration::parse_duration;
use super::error::Issues;
use super::model::*;
use super::raw::*;
use crate::policy::flapping_filter::FlappingSettings;

pub(crate) fn compile(raw: RawConfig, source: &Path, issues: &mut Issues) -> Option<Config> {
    let base = source.parent().map(Path::to_path_buf).unwrap_or_default();
    let authenticators = match raw.authentication {
        Some(list) => super::policies::authenticators(list.value, &base, issues),
        None => Vec::new(),
    };
    let acl_check_delivery =
        raw.authorization.as_ref().and_then(|a| a.check_delivery.as_ref()).is_some_and(|c| c.value);
    let acl = raw.authorization.and_then(|a| super::policies::acl(&a.acl, &base, issues));
    let broker_identity = super::policies::broker_identity(raw.broker_identity, issues);
    let flapping = raw.flapping.map(|f| {
        if f.max_count.value == 0 {
            issues.push(f.max_count.referenced.line(), "flapping.max_count", "must be at least 1");
        }
        if f.ip_max_count.as_ref().is_some_and(|n| n.value == 0) {
            issues.push(0, "flapping.ip_max_count", "must be at least 1");
        }
        if let Some(n) = f.auth_failure_max_count.as_ref().filter(|n| n.value == 0) {
            issues.push(n.referenced.line(), "flapping.auth_failure_max_count", "must be at least 1");
        }
        FlappingSettings {
            max_count: f.max_count.value,
            window: duration(Some(f.window), "flapping.window", 60, issues),
            ban_time: duration(Some(f.ban_time), "flapping.ban_time", 300, issues),
            ip_max_count: f.ip_max_count.map(|n| n.value),
            auth_failure_max_count: f.auth_failure_max_count.map(|n| n.value),
        }
    });
    let quotas = match raw.limits.as_ref() {
        Some(l) => super::quotas::quotas(l.into(), Quotas::default(), "limits", issues),
        None => Quotas::default(),
    };
    let rates = match raw.limits.as_ref() {
        Some(l) => super::rates::rates(l.into(), Rates::default(), "limits", issues),
        None => Rates::default(),
    };
    let node_publish_rate = super::rates::rate(
        raw.limits.as_ref().and_then(|l| l.node_publish_rate.as_ref()),
        "limits.node_publish_rate",
        issues,
    );
    let node_publish_bytes_rate = super::rates::rate(
        raw.limits.as_ref().and_then(|l| l.node_publish_bytes_rate.as_ref()),
        "limits.node_publish_bytes_rate",
        issues,
    );
    let slow_consumer_timeout = raw
        .limits
        .as_ref()
        .and_then(|l| l.slow_consumer_timeout.clone())
        .map(|d| duration(Some(d), "limits.slow_consumer_timeout", 30, issues));
    let overload = raw.overload.map(|o| super::overload::overload(o, issues));
    let audit = raw.audit.and_then(|a| super::audit::compile(a, &base, issues));
    let bans = raw.bans.and_then(|b| super::policies::bans(b, &base, issues));
    let state = super::state::state(raw.state, &base, issues);
    let mut listeners = Vec::new();
    if raw.listeners.value.is_empty() {
        issues.push(raw.listeners.referenced.line(), "listeners", "at least one listener is required");
    }
    let mut names = std::collections::HashSet::new();
    for (i, l) in raw.listeners.value.into_iter().enumerate() {
        let key = format!("listeners[{i}]");
        if let Some(compiled) = listener(l, &key, &base, &authenticators, (quotas, rates), issues) {
            if !names.insert(compiled.name.clone()) {
                issues.push(0, format!("{key}.name"), format!("duplicate listener name `{}`", compiled.name));
            }
            listeners.push(compiled);
        }
    }

    let upstream = super::upstream::upstream(raw.upstream, &base, issues);

    let t = raw.timeouts.unwrap_or(RawTimeouts { tls_handshake: None, connect: None, shutdown_grace: None });
    let timeouts = Timeouts {
        tls_handshake: duration(t.tls_handshake, "timeouts.tls_handshake", 10, issues),
        connect: duration(t.connect, "timeouts.connect", 10, issues),
        shutdown_grace: duration(t.shutdown_grace, "timeouts.shutdown_grace", 5, issues),
    };

    let max_subscribe_filters = match raw.limits.as_ref().and_then(|l| l.max_subscribe_filters.as_ref()) {
        Some(m) if m.value == 0 || m.value > 65_535 => {
            issues.push(m.referenced.line(), "limits.max_subscribe_filters", "must be between 1 and 65535");
            DEFAULT_MAX_SUBSCRIBE_FILTERS
        }
        Some(m) => usize::try_from(m.value).unwrap_or(DEFAULT_MAX_SUBSCRIBE_FILTERS),
        None => DEFAULT_MAX_SUBSCRIBE_FILTERS,
    };
    let max_connections =
        count(raw.limits.as_ref().and_then(|l| l.max_connections.as_ref()), "limits.max_connections", issues);
    let max_connections_per_ip = count(
        raw.limits.as_ref().and_then(|l| l.max_connections_per_ip.as_ref()),
        "limits.max_connections_per_ip",
        issues,
    );
    // Parsed (and reported) with the other rates.
    let publish_rate = rates.publish_rate;
    let max_packet_size = match raw.limits.and_then(|l| l.max_packet_size) {
        Some(m) if m.value < 64 || m.value > MQTT_MAX_PACKET_SIZE => {
            issues.push(
                m.referenced.line(),
                "limits.max_packet_size",
                format!("must be between 64 and {MQTT_MAX_PACKET_SIZE} bytes"),
            );
            DEFAULT_MAX_PACKET_SIZE
        }
        Some(m) => usize::try_from(m.value).unwrap_or(DEFAULT_MAX_PACKET_SIZE),
        None => DEFAULT_MAX_PACKET_SIZE,
    };

    let (admin_bind, tokens_file, admin_tls) = match raw.admin {
        Some(a) => (a.bind, a.tokens_file, a.tls),
        None => (None, None, None),
    };
    let admin_tls = admin_tls.and_then(|t| {
        let (cert, key) = (base.join(&t.cert.value), base.join(&t.key.value));
        issues.depends_on(&cert);
        issues.depends_on(&key);
        match crate::admin::tls::server_config(&cert, &key) {
            Ok(_) => Some((cert, key)),
            Err(e) => {
                issues.push(t.cert.referenced.line(), "admin.tls", e);
                None
            }
        }
    });
    let admin_bind = match admin_bind {
        Some(b) => socket_addr(&b, "admin.bind", issues),
        None => DEFAULT_ADMIN.parse().ok(),
    };
    let (tokens_file, admin_tokens) = match tokens_file {
        Some(f) => super::policies::admin_tokens(&f, &base, issues),
        None => (None, Vec::new()),
    };

    let log_format = match raw.log_format {
        Some(f) => match f.value.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                issues.push(f.referenced.line(), "log_format", format!("`{other}` is not text or json"));
                LogFormat::Text
            }
        },
        None => LogFormat::Text,
    };

    Some(Config {
        source: source.to_path_buf(),
        listeners,
        upstream,
        timeouts,
        limits: Limits {
            max_packet_size,
            max_subscribe_filters,
            max_connections,
            max_connections_per_ip,
            publish_rate,
            quotas,
            rates,
            node_publish_rate,
            node_publish_bytes_rate,
            slow_consumer_timeout,
        },
        admin: AdminConfig {
            bind: admin_bind?,
            tokens_file,
            tokens: std::sync::Arc::new(admin_tokens),
            tls: admin_tls,
        },
        log_format,
        authenticators,
        acl,
        acl_check_delivery,
        broker_identity,
        bans,
        flapping,
        overload,
        files: Vec::new(),
        audit,
        state,
    })
}

fn listener(
    l: RawListener,
    key: &str,
    base: &Path,
    authenticators: &[(String, std::sync::Arc<crate::policy::authn::Authenticator>)],
    (global_quotas, global_rates): (Quotas, Rates),
    issues: &mut Issues,
) -> Option<ListenerConfig> {
    let auth_line = l.authentication.as_ref().map_or(l.bind.referenced.line(), |a| a.referenced.line());
    let authentication = super::policies::listener_chain(l.authentication, key, authenticators, issues);
    if authentication.is_empty() {
        issues.push(
            auth_line,
            format!("{key}.authentication"),
            "no authenticator applies to this listener, so every client would be refused; \
             configure `authentication` (add `type: anonymous` to allow anonymous clients explicitly)",
        );
    }
    if l.name.value.is_empty()
        || !l.name.value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        issues.push(
            l.name.referenced.line(),
            format!("{key}.name"),
            "must be non-empty and use only letters, digits, `-` and `_` (it is a metric label)",
        );
    }
    let bind = socket_addr(&l.bind, &format!("{key}.bind"), issues);
    let plaintext = l.plaintext.as_ref().is_some_and(|p| p.value);
    let allow_insecure = l.allow_insecure.as_ref().is_some_and(|p| p.value);
    let psk = l.tls_psk.as_ref().and_then(|p| {
        let k = format!("{key}.tls_psk");
        if l.tls.is_some() || plaintext {
            let msg = "a listener is one of `tls`, `tls_psk` or `plaintext: true`";
            issues.push(p.identities_file.referenced.line(), k, msg);
            return None;
        }
        super::psk::psk(p, &k, base, issues)
    });
    let tls = match (l.tls, plaintext) {
        (None, false) if l.tls_psk.is_some() => None,
        (Some(_), true) => {
            issues.push(
                l.plaintext.as_ref().map_or(0, |p| p.referenced.line()),
                format!("{key}.plaintext"),
                "a listener is either `tls` or `plaintext: true`, not both",
            );
            None
        }
        (None, false) => {
            issues.push(
                l.bind.referenced.line(),
                format!("{key}.tls"),
                "missing `tls` (plaintext must be asked for with `plaintext: true`)",
            );
            None
        }
        (None, true) => {
            if let Some(addr) = bind {
                if !addr.ip().is_loopback() && !allow_insecure {
                    issues.push(
                        l.bind.referenced.line(),
                        format!("{key}.bind"),
                        "plaintext on a non-loopback address needs `allow_insecure: true`",
                    );
                }
            }
            None
        }
        (Some(t), false) => tls(t, &format!("{key}.tls"), base, issues),
    };
    let websocket_path = l.websocket.map(|w| match w.path {
        Some(p) if p.value.starts_with('/') => p.value,
        Some(p) => {
            issues.push(p.referenced.line(), format!("{key}.websocket.path"), "must start with `/`");
            p.value
        }
        None => "/mqtt".to_string(),
    });
    let proxy_protocol = l.proxy_protocol.as_ref().is_some_and(|p| p.value);
    let max_connections = count(l.max_connections.as_ref(), &format!("{key}.max_connections"), issues);
    let quotas = match l.limits.as_ref() {
        Some(ll) => super::quotas::quotas(ll.into(), global_quotas, &format!("{key}.limits"), issues),
        None => global_quotas,
    };
    let rates = match l.limits.as_ref() {
        Some(ll) => super::rates::rates(ll.into(), global_rates, &format!("{key}.limits"), issues),
        None => global_rates,
    };
    Some(ListenerConfig {
        name: l.name.value,
        bind: bind?,
        tls,
        psk,
        authentication,
        websocket_path,
        proxy_protocol,
        max_connections,
        quotas,
        rates,
    })
}

fn tls(t: RawTls, key: &str, base: &Path, issues: &mut Issues) -> Option<TlsConfig> {
    let client_auth = match t.client_auth.as_ref().map(|c| c.value.as_str()) {
        None | Some("none") => ClientAuth::None,
        Some("optional") => ClientAuth::Optional,
        Some("required") => ClientAuth::Required,
        Some(other) => {
            issues.push(
                t.client_auth.as_ref().map_or(0, |c| c.referenced.line()),
                format!("{key}.client_auth"),
                format!("`{other}` is not none, optional or required"),
            );
            ClientAuth::None
        }
    };
    let cert_path = base.join(&t.cert.value);
    let key_path = base.join(&t.key.value);
    let cert_chain = load_certs(&cert_path, t.cert.referenced.line(), &format!("{key}.cert"), issues);
    let private_key = match PrivateKeyDer::from_pem_file(&key_path) {
        Ok(k) => Some(k),
        Err(e) => {
            issues.push(
                t.key.referenced.line(),
                format!("{key}.key"),
                format!("cannot load a private key from {}: {}", key_path.display(), pem_error(&e)),
            );
            None
        }
    };
    let client_ca = match &t.client_ca {
        Some(ca) => {
            load_certs(&base.join(&ca.value), ca.referenced.line(), &format!("{key}.client_ca"), issues)
        }
        None => {
            if client_auth != ClientAuth::None {
                issues.push(
                    t.client_auth.as_ref().map_or(0, |c| c.referenced.line()),
                    format!("{key}.client_ca"),
                    "client_auth optional/required needs a `client_ca` bundle",
                );
            }
            Some(Vec::new())
        }
    };
    let crls = crls(t.crls.as_ref(), base, &format!("{key}.crls"), issues);
    if !crls.is_empty() && client_auth == ClientAuth::None {
        issues.push(
            t.crls.as_ref().map_or(0, |c| c.referenced.line()),
            format!("{key}.crls"),
            "CRLs need client_auth optional or required",
        );
    }
    let versions = tls_versions(t.versions.as_ref(), &format!("{key}.versions"), issues);
    let options = super::tls::options(&t, key, versions, client_auth, issues);
    if let (Some(chain), Some(s)) = (&cert_chain, &options.ocsp_stapling) {
        super::ocsp::stapling_chain(chain, s, t.cert.referenced.line(), key, issues);
    }
    let client_ca_path = t.client_ca.as_ref().map(|ca| base.join(&ca.value));
    let crl_paths =
        t.crls.as_ref().map(|l| l.value.iter().map(|e| base.join(&e.value)).collect()).unwrap_or_default();
    Some(TlsConfig {
        options,
        client_ca_path,
        crl_paths,
        versions,
        allow_expired_crl: t.allow_expired_crl.as_ref().is_some_and(|a| a.value),
        crls,
        cert_path,
        key_path,
        cert_chain: cert_chain?,
        key: private_key?,
        client_auth,
        client_ca: client_ca?,
    })
}

/// TLS versions: "1.2" and/or "1.3". Anything older is a config error, never a silent downgrade
/// (trap 22).
fn tls_versions(list: Option<&S<Vec<S<String>>>>, key: &str, issues: &mut Issues) -> TlsVersions {
    let Some(list) = list else {
        return TlsVersions { tls12: true, tls13: true };
    };
    let mut v = TlsVersions { tls12: false, tls13: false };
    for entry in &list.value {
        match entry.value.as_str() {
            "1.2" => v.tls12 = true,
            "1.3" => v.tls13 = true,
            "1.0" | "1.1" | "ssl3" | "sslv3" => issues.push(
                entry.referenced.line(),
                key,
                format!("TLS `{}` is never offered: use 1.2 and/or 1.3", entry.value),
            ),
            other => issues.push(entry.referenced.line(), key, format!("`{other}` is not 1.2 or 1.3")),
        }
    }
    if !v.tls12 && !v.tls13 {
        issues.push(list.referenced.line(), key, "at least one of 1.2 and 1.3 is required");
        v = TlsVersions { tls12: true, tls13: true };
    }
    v
}

/// Loads CRL files: PEM (one or more `X509 CRL` blocks) or a single DER CRL.
fn crls(
    list: Option<&S<Vec<S<String>>>>,
    base: &Path,
    key: &str,
    issues: &mut Issues,
) -> Vec<CertificateRevocationListDer<'static>> {
    let mut out = Vec::new();
    for (i, entry) in list.map(|l| l.value.as_slice()).unwrap_or_default().iter().enumerate() {
        let path = base.join(&entry.value);
        let line = entry.referenced.line();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                issues.push(line, format!("{key}[{i}]"), format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        let pem: Result<Vec<_>, _> = CertificateRevocationListDer::pem_slice_iter(&bytes).collect();
        match pem {
            Ok(list) if !list.is_empty() => out.extend(list),
            // Not PEM: take it as one DER CRL if it is a DER SEQUENCE.
            _ if bytes.first() == Some(&0x30) => out.push(CertificateRevocationListDer::from(bytes)),
            _ => issues.push(line, format!("{key}[{i}]"), format!("no CRL found in {}", path.display())),
        }
    }
    out
}

/// Describes a PEM loading failure without echoing file contents (a key file's bytes are secret).
pub(super) fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::Io(io) => io.to_string(),
        E::NoItemsFound => "no PEM item of the expected kind found".to_string(),
        _ => "invalid PEM".to_string(),
    }
}

pub(super) fn load_certs(
    path: &PathBuf,
    line: u64,
    key: &str,
    issues: &mut Issues,
) -> Option<Vec<CertificateDer<'static>>> {
    let certs: Result<Vec<_>, _> = match CertificateDer::pem_file_iter(path) {
        Ok(iter) => iter.collect(),
        Err(e) => Err(e),
    };
    match certs {
        Ok(c) if c.is_empty() => {
            issues.push(line, key, format!("no certificate found in {}", path.display()));
            None
        }
        Ok(c) => Some(c),
        Err(e) => {
            issues.push(
                line,
                key,
                format!("cannot load certificates from {}: {}", path.display(), pem_error(&e)),
            );
            None
        }
    }
}

/// An optional positive count (a limit of 0 would refuse everything: a typo, not a policy).
fn count(v: Option<&S<u64>>, key: &str, issues: &mut Issues) -> Option<usize> {
    let v = v?;
    match usize::try_from(v.value) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            issues.push(v.referenced.line(), key, "must be a positive number");
            None
        }
    }
}

fn socket_addr(s: &S<String>, key: &str, issues: &mut Issues) -> Option<SocketAddr> {
    match s.value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            issues.push(s.referenced.line(), key, format!("`{}` is not IP:PORT", s.value));
            None
        }
    }
}

pub(super) fn duration(v: Option<S<String>>, key: &str, default_secs: u64, issues: &mut Issues) -> Duration {
    match v {
        Some(d) => match parse_duration(&d.value) {
            Ok(x) if x.is_zero() => {
                issues.push(d.referenced.line(), key, "must be greater than zero");
                Duration::from_secs(default_secs)
            }
            Ok(x) => x,
            Err(msg) => {
                issues.push(d.referenced.line(), key, msg);
                Duration::from_secs(default_secs)
            }
        },
        None => Duration::from_secs(default_secs),
    }
}

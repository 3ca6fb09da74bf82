//! `tls.ocsp_stapling` and `tls.client_ocsp`: durations, responder URLs and modes. Checks that
//! need the certificate (issuer in the chain, an AIA OCSP URL) are in [`stapling_chain`], run
//! once the chain is loaded.

use std::time::Duration;

use rustls_pki_types::CertificateDer;

use super::duration::parse_duration;
use super::error::Issues;
use super::model::{ClientAuth, ClientOcsp, OcspStapling};
use super::raw::{RawClientOcsp, RawOcspStapling, S};

/// Most entries a client OCSP cache may be configured to hold.
pub const MAX_CLIENT_OCSP_CACHE: u64 = 1_000_000;

fn duration(
    v: &Option<S<String>>,
    key: &str,
    default: Duration,
    min: Duration,
    issues: &mut Issues,
) -> Duration {
    let Some(d) = v else { return default };
    match parse_duration(&d.value) {
        Ok(x) if x >= min => x,
        Ok(_) => {
            issues.push(d.referenced.line(), key, format!("must be at least {}ms", min.as_millis()));
            default
        }
        Err(msg) => {
            issues.push(d.referenced.line(), key, msg);
            default
        }
    }
}

fn url(v: &Option<S<String>>, key: &str, issues: &mut Issues) -> Option<String> {
    let u = v.as_ref()?;
    match u.value.parse::<hyper::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => Some(u.value.clone()),
        _ => {
            issues.push(
                u.referenced.line(),
                key,
                format!("`{}` is not an http:// URL (OCSP responses are signed; they are fetched over plain HTTP)", u.value),
            );
            None
        }
    }
}

pub(crate) fn stapling(s: &S<RawOcspStapling>, key: &str, issues: &mut Issues) -> Option<OcspStapling> {
    let key = format!("{key}.ocsp_stapling");
    let r = &s.value;
    let ms = Duration::from_millis(100);
    let out = OcspStapling {
        responder_url: url(&r.responder_url, &format!("{key}.responder_url"), issues),
        refresh: duration(&r.refresh, &format!("{key}.refresh"), Duration::from_secs(3600), ms, issues),
        min_interval: duration(
            &r.min_interval,
            &format!("{key}.min_interval"),
            Duration::from_secs(30),
            ms,
            issues,
        ),
        timeout: duration(&r.timeout, &format!("{key}.timeout"), Duration::from_secs(5), ms, issues),
        must_staple: r.must_staple.as_ref().is_some_and(|m| m.value),
    };
    if out.min_interval > out.refresh {
        issues.push(
            r.min_interval.as_ref().map_or(s.referenced.line(), |m| m.referenced.line()),
            format!("{key}.min_interval"),
            "must not be longer than `refresh`",
        );
    }
    r.enabled.as_ref().is_none_or(|e| e.value).then_some(out)
}

pub(crate) fn client(
    c: &S<RawClientOcsp>,
    key: &str,
    client_auth: ClientAuth,
    issues: &mut Issues,
) -> Option<ClientOcsp> {
    let key = format!("{key}.client_ocsp");
    let r = &c.value;
    let hard_fail = match r.mode.as_ref().map(|m| m.value.as_str()) {
        Some("off") => return None,
        None | Some("soft_fail") => false,
        Some("hard_fail") => true,
        Some(other) => {
            issues.push(
                r.mode.as_ref().map_or(0, |m| m.referenced.line()),
                format!("{key}.mode"),
                format!("`{other}` is not off, soft_fail or hard_fail"),
            );
            true
        }
    };
    if client_auth == ClientAuth::None {
        issues.push(c.referenced.line(), key.clone(), "client_ocsp needs client_auth optional or required");
    }
    let ms = Duration::from_millis(100);
    let cache_size = match &r.cache_size {
        None => 10_000,
        Some(n) if (1..=MAX_CLIENT_OCSP_CACHE).contains(&n.value) => {
            usize::try_from(n.value).unwrap_or(10_000)
        }
        Some(n) => {
            issues.push(
                n.referenced.line(),
                format!("{key}.cache_size"),
                format!("must be between 1 and {MAX_CLIENT_OCSP_CACHE}"),
            );
            10_000
        }
    };
    Some(ClientOcsp {
        hard_fail,
        timeout: duration(&r.timeout, &format!("{key}.timeout"), Duration::from_secs(2), ms, issues),
        cache_ttl: duration(
            &r.cache_ttl,
            &format!("{key}.cache_ttl"),
            Duration::from_secs(300),
            Duration::ZERO,
            issues,
        ),
        cache_size,
        responder_url: url(&r.responder_url, &format!("{key}.responder_url"), issues),
    })
}

/// Stapling needs the issuer (the second certificate of `cert`) to build the request and check
/// the response, and a responder URL (configured, or the certificate's AIA OCSP URL).
pub(crate) fn stapling_chain(
    chain: &[CertificateDer<'static>],
    s: &OcspStapling,
    line: u64,
    key: &str,
    issues: &mut Issues,
) {
    if chain.len() < 2 {
        issues.push(
            line,
            format!("{key}.cert"),
            "ocsp_stapling needs the issuer certificate after the server certificate in this file",
        );
    }
    let aia = chain.first().map(|c| crate::transport::tls::ocsp::aia_ocsp_url(c)).unwrap_or_default();
    if s.responder_url.is_none() && aia.is_none() {
        issues.push(
            line,
            format!("{key}.ocsp_stapling.responder_url"),
            "the server certificate has no http:// OCSP URL (AIA): set `responder_url`",
        );
    }
}

//! CRLs fetched over HTTP from distribution points: the CRL distribution point URLs in the client
//! CA bundle's certificates plus the operator's `crl_fetch.urls`. URLs from client certificates
//! are never fetched (a client could point moat at any address).
//!
//! Each refresh GETs every URL with a timeout and a size cap, and accepts a response only if it
//! parses as a CRL, is signed by a CA of the bundle, is not past its nextUpdate (unless
//! `allow_expired_crl`) and is not older than the copy in use (no replay of an old CRL). A URL
//! that fails keeps its last good copy; the listener's config is rebuilt only when the set of
//! good copies changed. HTTP is fine here: CRLs are signed, and the signature is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;
use x509_parser::revocation_list::CertificateRevocationList;

use super::http1::Http1Error;
use super::material::{parse_crls, unix_now};
use super::state::TlsState;
use crate::config::tls::MAX_CRL_URLS;
use crate::config::CrlFetch;

/// Largest CRL body accepted.
const MAX_CRL_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("bad URL")]
    Url,
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("body too large or unreadable")]
    Body,
    #[error("timed out")]
    Timeout,
    #[error("not a CRL")]
    NotCrl,
    #[error("CRL not signed by a CA of the client_ca bundle")]
    Signature,
    #[error("CRL past its nextUpdate")]
    Expired,
    #[error("CRL older than the copy in use")]
    Older,
}

/// `http://` CRL distribution points of the given certificates.
pub fn distribution_points(certs: &[CertificateDer<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    for cert in certs {
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else { continue };
        for ext in parsed.extensions() {
            let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else { continue };
            for p in points.iter() {
                let Some(DistributionPointName::FullName(names)) = &p.distribution_point else { continue };
                for name in names {
                    if let GeneralName::URI(uri) = name {
                        if uri.starts_with("http://") {
                            out.push(uri.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// One HTTP/1.1 GET, bounded in time and size.
async fn get(url: &str, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    super::http1::fetch(url, None, MAX_CRL_BYTES, timeout).await.map_err(FetchError::from)
}

impl From<Http1Error> for FetchError {
    fn from(e: Http1Error) -> Self {
        match e {
            Http1Error::Url => FetchError::Url,
            Http1Error::Connect(e) => FetchError::Connect(e),
            Http1Error::Http(e) => FetchError::Http(e),
            Http1Error::Status(s) => FetchError::Status(s),
            Http1Error::Body => FetchError::Body,
            Http1Error::Timeout => FetchError::Timeout,
        }
    }
}

/// Checks a fetched CRL against the CA bundle and the copy in use; returns its thisUpdate.
fn check(
    crl: &CertificateRevocationListDer<'_>,
    cas: &[CertificateDer<'_>],
    allow_expired: bool,
    previous: Option<i64>,
) -> Result<i64, FetchError> {
    let (_, parsed) = CertificateRevocationList::from_der(crl.as_ref()).map_err(|_| FetchError::NotCrl)?;
    let signed = cas.iter().any(|ca| {
        x509_parser::parse_x509_certificate(ca.as_ref()).is_ok_and(|(_, ca)| {
            ca.subject().as_raw() == parsed.issuer().as_raw()
                && parsed.verify_signature(ca.public_key()).is_ok()
        })
    });
    if !signed {
        return Err(FetchError::Signature);
    }
    let this_update = parsed.last_update().timestamp();
    if !allow_expired && parsed.next_update().is_some_and(|n| n.timestamp() < unix_now()) {
        return Err(FetchError::Expired);
    }
    if previous.is_some_and(|p| this_update < p) {
        return Err(FetchError::Older);
    }
    Ok(this_update)
}

/// Last good copy per URL.
#[derive(Default)]
struct Cache {
    good: BTreeMap<String, (i64, Vec<CertificateRevocationListDer<'static>>)>,
}

async fn refresh(state: &Arc<TlsState>, cfg: &CrlFetch, cache: &mut Cache) -> bool {
    let cas = state.client_ca();
    let mut urls: BTreeSet<String> = cfg.urls.iter().cloned().collect();
    urls.extend(distribution_points(&cas));
    let mut changed = false;
    for url in urls.into_iter().take(MAX_CRL_URLS) {
        let previous = cache.good.get(&url).map(|(t, _)| *t);
        let result = async {
            let body = get(&url, cfg.timeout).await?;
            let crls = parse_crls(&body).ok_or(FetchError::NotCrl)?;
            let mut newest = i64::MIN;
            for crl in &crls {
                newest = newest.max(check(crl, &cas, state.allow_expired_crl(), previous)?);
            }
            Ok::<_, FetchError>((newest, crls))
        }
        .await;
        match result {
            Ok((this_update, crls)) => {
                state.metrics().tls.crl_fetch(state.listener(), "success");
                let same = cache.good.get(&url).is_some_and(|(_, old)| *old == crls);
                if !same {
                    debug!(listener = state.listener(), %url, "new CRL fetched");
                    cache.good.insert(url, (this_update, crls));
                    changed = true;
                }
            }
            Err(e) => {
                state.metrics().tls.crl_fetch(state.listener(), "failure");
                warn!(target: "moat::audit", listener = state.listener(), %url, error = %e, kept_last_good = previous.is_some(), "CRL fetch failed");
            }
        }
    }
    changed
}

/// Fetches now, then every `interval`, until `stop`.
pub async fn run(state: Arc<TlsState>, cfg: CrlFetch, stop: CancellationToken) {
    let mut cache = Cache::default();
    loop {
        if refresh(&state, &cfg, &mut cache).await {
            let crls: Vec<_> = cache.good.values().flat_map(|(_, c)| c.iter().cloned()).collect();
            let s = state.clone();
            // Failures are logged and counted by reload().
            if let Ok(Ok(outcome)) = tokio::task::spawn_blocking(move || s.set_fetched_crls(crls)).await {
                info!(listener = state.listener(), ?outcome, "fetched CRLs applied");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(cfg.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
    };

    use super::*;

    fn ca(cn: &str, cdp: Option<&str>) -> (Issuer<'static, KeyPair>, CertificateDer<'static>) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        if let Some(url) = cdp {
            params.crl_distribution_points =
                vec![rcgen::CrlDistributionPoint { uris: vec![url.to_string(), "ldap://x/y".to_string()] }];
        }
        let der = params.self_signed(&key).expect("self-signed").der().clone();
        (Issuer::new(params, key), der)
    }

    fn crl(
        issuer: &Issuer<'static, KeyPair>,
        this: (i32, u8),
        next: (i32, u8),
    ) -> CertificateRevocationListDer<'static> {
        let der = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(this.0, this.1, 1),
            next_update: rcgen::date_time_ymd(next.0, next.1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(issuer)
        .expect("crl")
        .der()
        .clone();
        CertificateRevocationListDer::from(der.as_ref().to_vec())
    }

    #[test]
    fn fetched_crls_must_be_signed_current_and_not_older() {
        let (ours, ours_der) = ca("ours", None);
        let (theirs, _) = ca("ours", None); // same name, other key: a forgery
        let cas = [ours_der];
        let good = crl(&ours, (2024, 1), (2099, 1));
        let this = check(&good, &cas, false, None).expect("good CRL");
        assert!(matches!(
            check(&crl(&theirs, (2024, 1), (2099, 1)), &cas, false, None),
            Err(FetchError::Signature)
        ));
        let stale = crl(&ours, (2020, 1), (2021, 1));
        assert!(matches!(check(&stale, &cas, false, None), Err(FetchError::Expired)));
        assert!(check(&stale, &cas, true, None).is_ok(), "allow_expired_crl");
        let older = crl(&ours, (2023, 1), (2099, 1));
        assert!(matches!(check(&older, &cas, false, Some(this)), Err(FetchError::Older)));
        assert!(matches!(
            check(&CertificateRevocationListDer::from(vec![0x30, 0]), &cas, false, None),
            Err(FetchError::NotCrl)
        ));
    }

    #[test]
    fn only_http_distribution_points_of_the_bundle_are_used() {
        let (_, with) = ca("with-cdp", Some("http://crl.example/ca.crl"));
        let (_, without) = ca("without", None);
        assert_eq!(distribution_points(&[with, without]), vec!["http://crl.example/ca.crl".to_string()]);
    }
}

//! rustls server configuration: aws-lc-rs provider, TLS 1.2 and 1.3 only, AEAD suites only.
//! rustls implements no CBC suite and no TLS < 1.2, so a weaker setting cannot exist (trap 22).
//!
//! Submodules: `material` reads the files, `state` holds the live config and reloads it,
//! `watch` reloads on file changes, `verifier` adds the chain-depth limit.

pub mod crl_fetch;
mod http1;
pub mod material;
pub mod ocsp;
pub mod revocation;
pub mod state;
pub mod verifier;
pub mod watch;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use crate::config::{ClientAuth, TlsConfig, TlsOptions, TlsVersions};

pub use material::{Material, MaterialError, Paths};
pub use state::{ChainStatus, ReloadOutcome, TlsState};

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("server certificate or key rejected: {0}")]
    Server(rustls::Error),
    #[error("client CA bundle or CRL rejected: {0}")]
    ClientCa(String),
    #[error("session ticket key: {0}")]
    Ticketer(rustls::Error),
    #[error(transparent)]
    Material(#[from] MaterialError),
}

/// Entries in the stateful session cache of one config (each a few hundred bytes).
const SESSION_CACHE_ENTRIES: usize = 1024;

/// What a listener's TLS depends on besides the files: fixed for the listener's life.
#[derive(Clone, Debug)]
pub struct Settings {
    pub client_auth: ClientAuth,
    pub allow_expired_crl: bool,
    pub versions: TlsVersions,
    pub options: TlsOptions,
}

impl Settings {
    pub fn of(cfg: &TlsConfig) -> Self {
        Self {
            client_auth: cfg.client_auth,
            allow_expired_crl: cfg.allow_expired_crl,
            versions: cfg.versions,
            options: cfg.options.clone(),
        }
    }
}

/// A server config and the client verifier inside it (kept to re-check live sessions' chains).
pub struct Built {
    pub config: Arc<ServerConfig>,
    pub verifier: Option<Arc<dyn ClientCertVerifier>>,
}

fn versions(v: TlsVersions) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut out = Vec::with_capacity(2);
    if v.tls13 {
        out.push(&rustls::version::TLS13);
    }
    if v.tls12 {
        out.push(&rustls::version::TLS12);
    }
    out
}

fn provider(options: &TlsOptions) -> Arc<CryptoProvider> {
    let mut provider = aws_lc_rs::default_provider();
    if let Some(wanted) = &options.cipher_suites {
        provider.cipher_suites = crate::config::tls::select_suites(wanted);
    }
    Arc::new(provider)
}

/// Builds the server config for one listener from its settings and material.
///
/// Every call makes a *new* session cache and ticket key: a session established under one build
/// can never be resumed under another, so a reload (new CRLs) forces a full handshake with a
/// fresh chain check (trap 21).
pub fn build(settings: &Settings, m: &Material) -> Result<Built, TlsSetupError> {
    let provider = provider(&settings.options);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(settings.versions))
        .map_err(TlsSetupError::Server)?;
    let (builder, verifier) = match settings.client_auth {
        ClientAuth::None => (builder.with_no_client_auth(), None),
        ClientAuth::Optional | ClientAuth::Required => {
            let mut roots = RootCertStore::empty();
            for ca in &m.client_ca {
                roots.add(ca.clone()).map_err(|e| TlsSetupError::ClientCa(e.to_string()))?;
            }
            // CRLs are checked for the whole chain, and a CRL past its nextUpdate refuses clients
            // unless configured otherwise: stale revocation data fails closed.
            let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(m.crls.iter().cloned());
            if !settings.allow_expired_crl {
                verifier = verifier.enforce_revocation_expiration();
            }
            if settings.client_auth == ClientAuth::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let inner = verifier.build().map_err(|e| TlsSetupError::ClientCa(e.to_string()))?;
            let limited: Arc<dyn ClientCertVerifier> = Arc::new(verifier::DepthLimited {
                inner,
                max_depth: settings.options.max_chain_depth,
                no_crl_yet: settings.options.crl_fetch.is_some() && m.crls.is_empty(),
            });
            (builder.with_client_cert_verifier(limited.clone()), Some(limited))
        }
    };
    let mut config =
        builder.with_single_cert(m.cert_chain.clone(), m.key.clone_key()).map_err(TlsSetupError::Server)?;
    // MQTT over TLS uses ALPN "mqtt" (IANA) when clients send it; clients that send none still connect.
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    if settings.options.session_resumption {
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    } else {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    if settings.options.session_tickets {
        config.ticketer = aws_lc_rs::Ticketer::new().map_err(TlsSetupError::Ticketer)?;
    }
    Ok(Built { config: Arc::new(config), verifier })
}

/// Builds the server config `moat check` validates: the material the config loader parsed.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsSetupError> {
    Ok(build(&Settings::of(cfg), &Material::from_config(cfg))?.config)
}

/// Why a handshake failed, as a fixed low-cardinality label (`moat_tls_handshake_failures_total`).
pub fn failure_reason(e: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
        return if e.kind() == std::io::ErrorKind::UnexpectedEof { "eof" } else { "io" };
    };
    match tls {
        Error::NoCertificatesPresented => "no_client_certificate",
        Error::InvalidCertificate(CertificateError::Revoked) => "certificate_revoked",
        Error::InvalidCertificate(CertificateError::Expired | CertificateError::NotValidYet) => {
            "certificate_expired"
        }
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown_ca",
        Error::InvalidCertificate(_) => "bad_certificate",
        Error::PeerIncompatible(_) => "incompatible",
        Error::AlertReceived(_) => "alert_received",
        Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::InvalidMessage(_) => "protocol",
        _ => "other",
    }
}

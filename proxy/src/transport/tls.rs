//! rustls server configuration: aws-lc-rs provider, TLS 1.2 and 1.3 only, AEAD suites only.
//! rustls implements no CBC suite and no TLS < 1.2, so a weaker setting cannot exist (trap 22).

use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::{ClientAuth, TlsConfig, TlsVersions};

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("server certificate or key rejected: {0}")]
    Server(rustls::Error),
    #[error("client CA bundle rejected: {0}")]
    ClientCa(String),
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

/// Builds the server config for one listener.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(cfg.versions))
        .map_err(TlsSetupError::Server)?;
    let builder = match cfg.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let mut roots = RootCertStore::empty();
            for ca in &cfg.client_ca {
                roots.add(ca.clone()).map_err(|e| TlsSetupError::ClientCa(e.to_string()))?;
            }
            // CRLs are checked for the whole chain, and a CRL past its nextUpdate refuses clients
            // unless configured otherwise: stale revocation data fails closed.
            let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(cfg.crls.iter().cloned());
            if !cfg.allow_expired_crl {
                verifier = verifier.enforce_revocation_expiration();
            }
            let verifier = if cfg.client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|e| TlsSetupError::ClientCa(e.to_string()))?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(cfg.cert_chain.clone(), cfg.key.clone_key())
        .map_err(TlsSetupError::Server)?;
    // MQTT over TLS uses ALPN "mqtt" (IANA) when clients send it; clients that send none still connect.
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    Ok(Arc::new(config))
}

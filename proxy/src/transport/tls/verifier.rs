//! Client certificate verification with a chain-depth limit. webpki has no depth setting, so the
//! webpki verifier is wrapped: a client presenting more certificates than `max_chain_depth`
//! (leaf plus intermediates) is refused before any path building.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};

#[derive(Debug, thiserror::Error)]
#[error("client certificate chain has {presented} certificates, more than max_chain_depth {max}")]
pub struct ChainTooLong {
    pub presented: usize,
    pub max: usize,
}

#[derive(Debug)]
pub struct DepthLimited {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub max_depth: usize,
    /// Revocation data is expected (CRLs are fetched) but none is loaded yet: refuse client
    /// certificates rather than admit them unchecked (fail closed).
    pub no_crl_yet: bool,
}

impl ClientCertVerifier for DepthLimited {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let presented = intermediates.len().saturating_add(1);
        if presented > self.max_depth {
            return Err(Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                ChainTooLong { presented, max: self.max_depth },
            )))));
        }
        if self.no_crl_yet {
            return Err(Error::InvalidCertificate(CertificateError::UnknownRevocationStatus));
        }
        self.inner.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

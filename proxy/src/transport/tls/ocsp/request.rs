//! OCSP request (RFC 6960 §4.1) for one certificate: a CertID with SHA-1 hashes (what every
//! responder supports, RFC 5019 §2.1.1), no nonce (so responses can be cached and pre-signed).

use rustls_pki_types::CertificateDer;
use sha1::{Digest, Sha1};

use super::der::{tlv, OCTET_STRING, SEQUENCE};
use super::OcspError;

/// AlgorithmIdentifier { id-sha1, NULL }.
const SHA1_ALG: [u8; 11] = [0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00];
/// DER contents of the OID id-sha1 (1.3.14.3.2.26).
pub const SHA1_OID: [u8; 5] = [0x2b, 0x0e, 0x03, 0x02, 0x1a];

/// What identifies a certificate to its responder; also the client cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertId {
    pub issuer_name_hash: [u8; 20],
    pub issuer_key_hash: [u8; 20],
    /// Contents of the serial's INTEGER (as encoded in the certificate).
    pub serial: Vec<u8>,
}

impl CertId {
    /// The CertID of `leaf` issued by `issuer`. Fails if either does not parse or `issuer`
    /// is not the leaf's issuer by name.
    pub fn new(leaf: &CertificateDer<'_>, issuer: &CertificateDer<'_>) -> Result<CertId, OcspError> {
        let (_, leaf) =
            x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|_| OcspError::Certificate)?;
        let (_, issuer) =
            x509_parser::parse_x509_certificate(issuer.as_ref()).map_err(|_| OcspError::Certificate)?;
        if leaf.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(OcspError::Certificate);
        }
        Ok(CertId {
            issuer_name_hash: Sha1::digest(issuer.subject().as_raw()).into(),
            issuer_key_hash: Sha1::digest(&issuer.public_key().subject_public_key.data).into(),
            serial: leaf.raw_serial().to_vec(),
        })
    }

    /// DER CertID.
    pub fn der(&self) -> Vec<u8> {
        let mut body = SHA1_ALG.to_vec();
        body.extend(tlv(OCTET_STRING, &self.issuer_name_hash));
        body.extend(tlv(OCTET_STRING, &self.issuer_key_hash));
        body.extend(tlv(super::der::INTEGER, &self.serial));
        tlv(SEQUENCE, &body)
    }

    /// DER OCSPRequest asking for this one certificate.
    pub fn request(&self) -> Vec<u8> {
        let request = tlv(SEQUENCE, &self.der());
        let request_list = tlv(SEQUENCE, &request);
        let tbs = tlv(SEQUENCE, &request_list);
        tlv(SEQUENCE, &tbs)
    }
}

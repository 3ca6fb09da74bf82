//! OCSP (RFC 6960): stapling of the server certificate's status ([`staple`]) and checking of
//! client certificates after the handshake ([`client`]).
//!
//! Requests and responses are DER, read and written by hand ([`der`]): the response is a fixed
//! shape and the handful of fields we need are read with bounds-checked slices, while signature
//! checks reuse x509-parser (aws-lc-rs). Pulling in x509-ocsp would add a second X.509 stack (the
//! RustCrypto `der`/`x509-cert` family) beside x509-parser for the same few fields.
//!
//! HTTP is fine here, as for CRLs: responses are signed and the signature is checked.

pub mod client;
pub mod der;
pub mod request;
pub mod staple;
pub mod verify;

#[cfg(test)]
mod tests;

use std::time::Duration;

use super::http1::Http1Error;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::{GeneralName, ParsedExtension};

/// Largest OCSP response accepted (real ones are 1–4 KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    #[error("certificate or issuer cannot be parsed, or the issuer does not match")]
    Certificate,
    #[error("no usable responder URL")]
    Url,
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    #[error("body too large or unreadable")]
    Body,
    #[error("timed out")]
    Timeout,
    #[error("malformed OCSP response")]
    Malformed,
    #[error("responder answered with status {0} (not successful)")]
    ResponderStatus(u8),
    #[error("response not signed by the issuer or a delegated responder")]
    Signature,
    #[error("response is not about our certificate")]
    CertId,
    #[error("response thisUpdate is in the future")]
    NotYetValid,
    #[error("response past its nextUpdate")]
    Expired,
    #[error("certificate revoked")]
    Revoked,
    #[error("certificate status unknown to the responder")]
    Unknown,
}

impl OcspError {
    /// Fixed, low-cardinality label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            OcspError::Certificate => "certificate",
            OcspError::Url => "url",
            OcspError::Connect(_) => "connect",
            OcspError::Http(_) | OcspError::HttpStatus(_) | OcspError::Body => "http",
            OcspError::Timeout => "timeout",
            OcspError::Malformed | OcspError::ResponderStatus(_) => "bad_response",
            OcspError::Signature => "signature",
            OcspError::CertId => "cert_id",
            OcspError::NotYetValid | OcspError::Expired => "stale",
            OcspError::Revoked => "revoked",
            OcspError::Unknown => "unknown",
        }
    }
}

/// The first `http://` OCSP URL of the certificate's Authority Information Access.
pub fn aia_ocsp_url(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    parsed.extensions().iter().find_map(|ext| {
        let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() else { return None };
        aia.iter().find_map(|d| match &d.access_location {
            GeneralName::URI(u)
                if d.access_method == x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP
                    && u.starts_with("http://") =>
            {
                Some(u.to_string())
            }
            _ => None,
        })
    })
}

/// POSTs an OCSP request (HTTP/1.1), bounded in time and response size.
pub async fn post(url: &str, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, OcspError> {
    super::http1::fetch(url, Some(("application/ocsp-request", request)), MAX_RESPONSE_BYTES, timeout)
        .await
        .map_err(|e| match e {
            Http1Error::Url => OcspError::Url,
            Http1Error::Connect(e) => OcspError::Connect(e),
            Http1Error::Http(e) => OcspError::Http(e),
            Http1Error::Status(s) => OcspError::HttpStatus(s),
            Http1Error::Body => OcspError::Body,
            Http1Error::Timeout => OcspError::Timeout,
        })
}

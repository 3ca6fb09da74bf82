//! Checks an OCSP response (RFC 6960 §3.2, §4.2): successful basic response, signed by the issuer
//! or by a responder certificate the issuer gave id-kp-OCSPSigning (§4.2.2.2), a SingleResponse
//! for exactly our CertID, thisUpdate not in the future (beyond a small clock-skew leeway) and
//! nextUpdate not passed. Every read is bounds-checked: the input comes from the network.

use std::borrow::Cow;

use rustls_pki_types::CertificateDer;
use x509_parser::asn1_rs::BitString;
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use super::der::{self, expect, optional, read, Tlv};
use super::request::{CertId, SHA1_OID};
use super::OcspError;

/// Clock skew tolerated on thisUpdate (a responder slightly ahead of us).
pub const LEEWAY_SECS: i64 = 300;
/// Most certificates looked at in a response (delegated responder candidates).
const MAX_RESPONSE_CERTS: usize = 4;
/// id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1).
const OCSP_BASIC: [u8; 9] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked,
    Unknown,
}

/// A response that passed every check; `status` is what it says about our certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub status: CertStatus,
    pub this_update: i64,
    /// `None`: the responder gave no nextUpdate (newer information is always available).
    pub next_update: Option<i64>,
}

const M: OcspError = OcspError::Malformed;

/// Verifies `response` for `id` (whose issuer is `issuer`) at Unix time `now`.
pub fn verify(
    response: &[u8],
    id: &CertId,
    issuer: &CertificateDer<'_>,
    now: i64,
) -> Result<Verified, OcspError> {
    let (outer, _) = expect(response, der::SEQUENCE).ok_or(M)?;
    let (status, rest) = expect(outer.body, der::ENUMERATED).ok_or(M)?;
    match status.body {
        [0] => {}
        [s] => return Err(OcspError::ResponderStatus(*s)),
        _ => return Err(M),
    }
    let (bytes, _) = expect(rest, 0xa0).ok_or(M)?;
    let (bytes, _) = expect(bytes.body, der::SEQUENCE).ok_or(M)?;
    let (kind, rest) = expect(bytes.body, der::OID).ok_or(M)?;
    if kind.body != OCSP_BASIC {
        return Err(M);
    }
    let (basic, _) = expect(rest, der::OCTET_STRING).ok_or(M)?;
    let (basic, _) = expect(basic.body, der::SEQUENCE).ok_or(M)?;
    let (tbs, rest) = expect(basic.body, der::SEQUENCE).ok_or(M)?;
    let (alg, rest) = expect(rest, der::SEQUENCE).ok_or(M)?;
    let (sig, rest) = expect(rest, der::BIT_STRING).ok_or(M)?;
    let sig = match sig.body.split_first() {
        Some((0, bits)) => bits,
        _ => return Err(M),
    };
    let (certs, _) = optional(rest, 0xa0);
    check_signature(tbs.raw, alg.raw, sig, certs, issuer, now)?;
    single_response(tbs, id, now)
}

/// The issuer, or a delegated responder certificate in the response, signed `tbs`.
fn check_signature(
    tbs: &[u8],
    alg: &[u8],
    sig: &[u8],
    certs: Option<Tlv<'_>>,
    issuer: &CertificateDer<'_>,
    now: i64,
) -> Result<(), OcspError> {
    let (_, issuer) =
        x509_parser::parse_x509_certificate(issuer.as_ref()).map_err(|_| OcspError::Certificate)?;
    if signed(issuer.public_key(), alg, sig, tbs) {
        return Ok(());
    }
    let Some(certs) = certs else { return Err(OcspError::Signature) };
    let (list, _) = expect(certs.body, der::SEQUENCE).ok_or(M)?;
    let mut rest = list.body;
    for _ in 0..MAX_RESPONSE_CERTS {
        let Some((cert, after)) = expect(rest, der::SEQUENCE) else { break };
        rest = after;
        let Ok((_, responder)) = x509_parser::parse_x509_certificate(cert.raw) else { continue };
        let delegated = responder.issuer().as_raw() == issuer.subject().as_raw()
            && responder.verify_signature(Some(issuer.public_key())).is_ok()
            && responder.extended_key_usage().ok().flatten().is_some_and(|e| e.value.ocsp_signing)
            && (responder.validity().not_before.timestamp()..=responder.validity().not_after.timestamp())
                .contains(&now);
        if delegated && signed(responder.public_key(), alg, sig, tbs) {
            return Ok(());
        }
    }
    Err(OcspError::Signature)
}

fn signed(key: &SubjectPublicKeyInfo<'_>, alg: &[u8], sig: &[u8], data: &[u8]) -> bool {
    let Ok((_, alg)) = AlgorithmIdentifier::from_der(alg) else { return false };
    let bits = BitString { unused_bits: 0, data: Cow::Borrowed(sig) };
    x509_parser::verify::verify_signature(key, &alg, &bits, data).is_ok()
}

/// ResponseData → the SingleResponse for `id`, with its times checked.
fn single_response(tbs: Tlv<'_>, id: &CertId, now: i64) -> Result<Verified, OcspError> {
    let (_, rest) = optional(tbs.body, 0xa0); // version
    let (responder_id, rest) = read(rest).ok_or(M)?;
    if responder_id.tag != 0xa1 && responder_id.tag != 0xa2 {
        return Err(M);
    }
    let (_, rest) = expect(rest, der::GENERALIZED_TIME).ok_or(M)?; // producedAt
    let (responses, _) = expect(rest, der::SEQUENCE).ok_or(M)?;
    let mut rest = responses.body;
    while let Some((single, after)) = expect(rest, der::SEQUENCE) {
        rest = after;
        let (cert_id, fields) = expect(single.body, der::SEQUENCE).ok_or(M)?;
        if !same_cert(cert_id, id) {
            continue;
        }
        let (status, fields) = read(fields).ok_or(M)?;
        let status = match status.tag {
            0x80 => CertStatus::Good,
            0xa1 => CertStatus::Revoked,
            0x82 => CertStatus::Unknown,
            _ => return Err(M),
        };
        let (this, fields) = expect(fields, der::GENERALIZED_TIME).ok_or(M)?;
        let this_update = der::generalized_time(this.body).ok_or(M)?;
        let next_update = match optional(fields, 0xa0).0 {
            Some(n) => {
                let (t, _) = expect(n.body, der::GENERALIZED_TIME).ok_or(M)?;
                Some(der::generalized_time(t.body).ok_or(M)?)
            }
            None => None,
        };
        if this_update > now + LEEWAY_SECS {
            return Err(OcspError::NotYetValid);
        }
        if next_update.is_some_and(|n| n <= now) {
            return Err(OcspError::Expired);
        }
        return Ok(Verified { status, this_update, next_update });
    }
    Err(OcspError::CertId)
}

fn same_cert(cert_id: Tlv<'_>, id: &CertId) -> bool {
    let parts = || -> Option<bool> {
        let (alg, rest) = expect(cert_id.body, der::SEQUENCE)?;
        let (oid, _) = expect(alg.body, der::OID)?;
        let (name, rest) = expect(rest, der::OCTET_STRING)?;
        let (key, rest) = expect(rest, der::OCTET_STRING)?;
        let (serial, _) = expect(rest, der::INTEGER)?;
        Some(
            oid.body == SHA1_OID
                && name.body == id.issuer_name_hash
                && key.body == id.issuer_key_hash
                && serial.body == id.serial.as_slice(),
        )
    };
    parts().unwrap_or(false)
}

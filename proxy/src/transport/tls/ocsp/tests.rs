//! Response verification against responses built here (DER by hand, signed with rcgen keys):
//! the right signer, the right certificate, the right time, or an error; never a panic.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, SigningKey as _,
};
use rustls_pki_types::CertificateDer;

use super::der::{tlv, GENERALIZED_TIME, OCTET_STRING, SEQUENCE};
use super::request::CertId;
use super::verify::{verify, CertStatus, LEEWAY_SECS};
use super::OcspError;

/// ecdsa-with-SHA256.
const ECDSA_SHA256: [u8; 12] = [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const NOW: i64 = 1_800_000_000;

fn ca(cn: &str) -> (Issuer<'static, KeyPair>, CertificateDer<'static>) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let der = p.self_signed(&key).expect("ca").der().clone();
    (Issuer::new(p, key), der)
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    serial: u64,
    eku: Option<ExtendedKeyUsagePurpose>,
) -> (KeyPair, CertificateDer<'static>) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(vec!["leaf.test".to_string()]).expect("params");
    p.distinguished_name.push(DnType::CommonName, format!("leaf {serial}"));
    p.serial_number = Some(SerialNumber::from(serial));
    p.extended_key_usages = eku.into_iter().collect();
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2090, 1, 1);
    let der = p.signed_by(&key, issuer).expect("leaf").der().clone();
    (key, der)
}

fn gt(unix: i64) -> Vec<u8> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let text = format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60);
    tlv(GENERALIZED_TIME, text.as_bytes())
}

struct Resp<'a> {
    signer: &'a KeyPair,
    certs: Vec<CertificateDer<'static>>,
    id: CertId,
    status: Vec<u8>,
    this: i64,
    next: Option<i64>,
}

impl Resp<'_> {
    fn der(&self) -> Vec<u8> {
        let mut single = self.id.der();
        single.extend(&self.status);
        single.extend(gt(self.this));
        if let Some(n) = self.next {
            single.extend(tlv(0xa0, &gt(n)));
        }
        let responses = tlv(SEQUENCE, &tlv(SEQUENCE, &single));
        let mut data = tlv(0xa2, &tlv(OCTET_STRING, &[1; 20]));
        data.extend(gt(self.this));
        data.extend(responses);
        let tbs = tlv(SEQUENCE, &data);
        let sig = self.signer.sign(&tbs).expect("sign");
        let mut basic = tbs;
        basic.extend(ECDSA_SHA256);
        let mut bits = vec![0];
        bits.extend(sig);
        basic.extend(tlv(0x03, &bits));
        if !self.certs.is_empty() {
            let list: Vec<u8> = self.certs.iter().flat_map(|c| c.as_ref().to_vec()).collect();
            basic.extend(tlv(0xa0, &tlv(SEQUENCE, &list)));
        }
        let basic = tlv(SEQUENCE, &basic);
        let mut rb = tlv(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01]);
        rb.extend(tlv(OCTET_STRING, &basic));
        let mut outer = vec![0x0a, 0x01, 0x00];
        outer.extend(tlv(0xa0, &tlv(SEQUENCE, &rb)));
        tlv(SEQUENCE, &outer)
    }
}

const GOOD: [u8; 2] = [0x80, 0x00];

#[test]
fn good_response_signed_by_the_issuer_verifies() {
    let (issuer, issuer_der) = ca("ca");
    let (_, cert) = leaf(&issuer, 7, None);
    let id = CertId::new(&cert, &issuer_der).expect("cert id");
    let r = Resp {
        signer: issuer.key(),
        certs: vec![],
        id: id.clone(),
        status: GOOD.to_vec(),
        this: NOW - 60,
        next: Some(NOW + 3600),
    };
    let v = verify(&r.der(), &id, &issuer_der, NOW).expect("verifies");
    assert_eq!((v.status, v.this_update, v.next_update), (CertStatus::Good, NOW - 60, Some(NOW + 3600)));
    let revoked = Resp { status: tlv(0xa1, &gt(NOW - 10)), ..r };
    assert_eq!(verify(&revoked.der(), &id, &issuer_der, NOW).expect("verifies").status, CertStatus::Revoked);
}

#[test]
fn wrong_signer_is_rejected() {
    let (issuer, issuer_der) = ca("ca");
    let (forger, _) = ca("ca"); // same name, other key
    let (_, cert) = leaf(&issuer, 7, None);
    let id = CertId::new(&cert, &issuer_der).expect("cert id");
    let r = Resp {
        signer: forger.key(),
        certs: vec![],
        id: id.clone(),
        status: GOOD.to_vec(),
        this: NOW,
        next: Some(NOW + 3600),
    };
    assert!(matches!(verify(&r.der(), &id, &issuer_der, NOW), Err(OcspError::Signature)));
    // A tampered response from the real issuer.
    let mut der = Resp { signer: issuer.key(), ..r }.der();
    let at = der.len() - 80;
    der[at] ^= 1;
    assert!(verify(&der, &id, &issuer_der, NOW).is_err());
}

#[test]
fn delegated_responder_needs_the_issuers_signature_and_ocsp_signing() {
    let (issuer, issuer_der) = ca("ca");
    let (other, _) = ca("ca");
    let (_, cert) = leaf(&issuer, 7, None);
    let id = CertId::new(&cert, &issuer_der).expect("cert id");
    let (rkey, rcert) = leaf(&issuer, 8, Some(ExtendedKeyUsagePurpose::OcspSigning));
    let r = Resp {
        signer: &rkey,
        certs: vec![rcert],
        id: id.clone(),
        status: GOOD.to_vec(),
        this: NOW,
        next: Some(NOW + 60),
    };
    assert!(verify(&r.der(), &id, &issuer_der, NOW).is_ok(), "delegated responder refused");
    let (nkey, ncert) = leaf(&issuer, 9, Some(ExtendedKeyUsagePurpose::ServerAuth));
    let r = Resp { signer: &nkey, certs: vec![ncert], ..r };
    assert!(
        matches!(verify(&r.der(), &id, &issuer_der, NOW), Err(OcspError::Signature)),
        "no id-kp-OCSPSigning"
    );
    let (fkey, fcert) = leaf(&other, 10, Some(ExtendedKeyUsagePurpose::OcspSigning));
    let r = Resp { signer: &fkey, certs: vec![fcert], ..r };
    assert!(
        matches!(verify(&r.der(), &id, &issuer_der, NOW), Err(OcspError::Signature)),
        "responder of another CA"
    );
}

#[test]
fn wrong_cert_id_and_bad_times_are_rejected() {
    let (issuer, issuer_der) = ca("ca");
    let (_, cert) = leaf(&issuer, 7, None);
    let (_, other) = leaf(&issuer, 70, None);
    let id = CertId::new(&cert, &issuer_der).expect("cert id");
    let other_id = CertId::new(&other, &issuer_der).expect("cert id");
    let r = Resp {
        signer: issuer.key(),
        certs: vec![],
        id: other_id,
        status: GOOD.to_vec(),
        this: NOW,
        next: Some(NOW + 60),
    };
    assert!(matches!(verify(&r.der(), &id, &issuer_der, NOW), Err(OcspError::CertId)));
    let r = Resp { id: id.clone(), this: NOW - 7200, next: Some(NOW - 1), ..r };
    assert!(matches!(verify(&r.der(), &id, &issuer_der, NOW), Err(OcspError::Expired)));
    let r = Resp { this: NOW + LEEWAY_SECS + 60, next: Some(NOW + 7200), ..r };
    assert!(matches!(verify(&r.der(), &id, &issuer_der, NOW), Err(OcspError::NotYetValid)));
    let r = Resp { this: NOW + LEEWAY_SECS - 60, ..r };
    assert!(verify(&r.der(), &id, &issuer_der, NOW).is_ok(), "within the clock-skew leeway");
}

#[test]
fn responder_errors_and_garbage_never_panic() {
    let (issuer, issuer_der) = ca("ca");
    let (_, cert) = leaf(&issuer, 7, None);
    let id = CertId::new(&cert, &issuer_der).expect("cert id");
    // tryLater
    assert!(matches!(
        verify(&[0x30, 0x03, 0x0a, 0x01, 0x03], &id, &issuer_der, NOW),
        Err(OcspError::ResponderStatus(3))
    ));
    let good = Resp {
        signer: issuer.key(),
        certs: vec![],
        id: id.clone(),
        status: GOOD.to_vec(),
        this: NOW,
        next: None,
    }
    .der();
    for cut in 0..good.len() {
        assert!(verify(&good[..cut], &id, &issuer_der, NOW).is_err());
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] = bad[i].wrapping_add(0x41);
        let _ = verify(&bad, &id, &issuer_der, NOW);
    }
}

#[test]
fn request_is_a_well_formed_sequence() {
    let (issuer, issuer_der) = ca("ca");
    let (_, cert) = leaf(&issuer, 0x1234, None);
    let id = CertId::new(&cert, &issuer_der).expect("cert id");
    assert_eq!(id.serial, vec![0x12, 0x34]);
    let req = id.request();
    let (outer, rest) = super::der::read(&req).expect("request");
    assert!(rest.is_empty() && outer.tag == SEQUENCE);
    assert!(CertId::new(&cert, &cert).is_err(), "issuer name mismatch");
}

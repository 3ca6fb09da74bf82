//! CRLs on a listener (`tls.crls`): a revoked client certificate fails the handshake, others pass;
//! a CRL past its nextUpdate refuses every client unless `allow_expired_crl: true` (fail closed).

use moat_e2e::{tls, unique, v311, ClientAuth, Moat, MoatOptions, Mosquitto, Pki};

fn options(crl: &std::path::Path, allow_expired: bool) -> MoatOptions {
    MoatOptions {
        client_auth: ClientAuth::Required,
        tls_extra: Some(format!(
            "      crls: [\"{}\"]\n      allow_expired_crl: {allow_expired}\n",
            crl.display()
        )),
        ..Default::default()
    }
}

async fn connects(pki: &Pki, moat: &Moat, client: &moat_e2e::pki::CertFiles) -> bool {
    let config = tls::client_config(&[pki.ca_cert()], Some(client));
    v311::Client::connect(v311::options(&unique("crl"), moat.port, Some(config))).await.is_ok()
}

#[tokio::test]
async fn revoked_client_certificate_is_refused() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let revoked = pki.client_cert("revoked-device");
    let good = pki.client_cert("good-device");
    let crl = pki.write_crl("current", &[revoked.serial], false);
    let moat = Moat::start(&pki, &MoatOptions { upstream: broker.addr(), ..options(&crl, false) }).await;
    assert!(connects(&pki, &moat, &good).await, "a certificate not on the CRL was refused");
    assert!(!connects(&pki, &moat, &revoked).await, "a revoked certificate got in");
}

#[tokio::test]
async fn expired_crl_fails_closed_unless_allowed() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let good = pki.client_cert("good-device");
    let crl = pki.write_crl("stale", &[], true);
    let strict = Moat::start(&pki, &MoatOptions { upstream: broker.addr(), ..options(&crl, false) }).await;
    assert!(!connects(&pki, &strict, &good).await, "an expired CRL still admitted clients");
    let lenient = Moat::start(&pki, &MoatOptions { upstream: broker.addr(), ..options(&crl, true) }).await;
    assert!(connects(&pki, &lenient, &good).await, "allow_expired_crl: true still refused");
}

//! `tls.versions`: a listener limited to TLS 1.3 refuses a TLS 1.2-only client and accepts a
//! client offering 1.3 (older versions cannot be configured at all: see the config tests).

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use moat_e2e::{unique, v311, ClientAuth, Env, MoatOptions};

fn client(env: &Env, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(env.pki.ca_cert()).expect("CA") {
        roots.add(cert.expect("CA cert")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn tls13_only_listener_refuses_tls12_clients() {
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        tls_extra: Some("      versions: [\"1.3\"]\n".to_string()),
        ..Default::default()
    })
    .await;
    let old =
        v311::Client::connect(env.v311_options(&unique("tls12"), client(&env, &[&rustls::version::TLS12])))
            .await;
    assert!(old.is_err(), "a TLS 1.2-only client connected to a 1.3-only listener");
    let new =
        v311::Client::connect(env.v311_options(&unique("tls13"), client(&env, &[&rustls::version::TLS13])))
            .await;
    assert!(new.is_ok(), "a TLS 1.3 client was refused: {:?}", new.err());
}

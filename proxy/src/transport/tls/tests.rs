//! In-memory handshakes against a listener's [`TlsState`]: reload swaps the config, a bad file
//! keeps the old one, and a session is never resumed across a reload (trap 21).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, Connection, HandshakeKind, RootCertStore, ServerConfig};

use super::state::{ChainStatus, ReloadOutcome, TlsState};
use crate::config::{ClientAuth, TlsConfig, TlsOptions, TlsVersions};
use crate::metrics::Metrics;

struct TestPki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
}

const CLIENT_SERIAL: u64 = 77;

impl TestPki {
    fn new() -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, "unit CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = params.self_signed(&key).expect("ca").pem();
        let ca = Issuer::new(params, key);
        std::fs::write(dir.path().join("ca.crt"), &ca_pem).expect("write ca");
        let (client_pem, client_key_pem) =
            leaf(&ca, "client", ExtendedKeyUsagePurpose::ClientAuth, CLIENT_SERIAL);
        let pki = TestPki {
            client_chain: vec![CertificateDer::from_pem_slice(client_pem.as_bytes()).expect("client der")],
            client_key: PrivateKeyDer::from_pem_slice(client_key_pem.as_bytes()).expect("client key"),
            dir,
            ca,
            ca_pem,
        };
        pki.write_server("server", 1);
        pki.write_crl(&[]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_server(&self, stem: &str, serial: u64) {
        let (cert, key) = leaf(&self.ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth, serial);
        write_atomic(&self.path("server.crt"), cert.as_bytes());
        write_atomic(&self.path("server.key"), key.as_bytes());
        let _ = stem;
    }

    fn write_crl(&self, revoked: &[u64]) {
        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2020, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(revoked.len() as u64 + 1),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&s| RevokedCertParams {
                    serial_number: SerialNumber::from(s),
                    revocation_time: rcgen::date_time_ymd(2021, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca)
        .expect("crl");
        write_atomic(&self.path("ca.crl"), crl.pem().expect("crl pem").as_bytes());
    }

    fn config(&self, options: TlsOptions) -> TlsConfig {
        let certs = |p: &Path| {
            CertificateDer::pem_file_iter(p).expect("pem").collect::<Result<Vec<_>, _>>().expect("certs")
        };
        TlsConfig {
            cert_path: self.path("server.crt"),
            key_path: self.path("server.key"),
            cert_chain: certs(&self.path("server.crt")),
            key: PrivateKeyDer::from_pem_file(self.path("server.key")).expect("key"),
            client_auth: ClientAuth::Required,
            client_ca: certs(&self.path("ca.crt")),
            crls: Vec::new(),
            allow_expired_crl: false,
            versions: TlsVersions { tls12: true, tls13: true },
            client_ca_path: Some(self.path("ca.crt")),
            crl_paths: vec![self.path("ca.crl")],
            options,
        }
    }

    fn client(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("ca der")).expect("root");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(versions)
                .expect("versions")
                .with_root_certificates(roots)
                .with_client_auth_cert(self.client_chain.clone(), self.client_key.clone_key())
                .expect("client auth"),
        )
    }
}

fn leaf(
    ca: &Issuer<'static, KeyPair>,
    cn: &str,
    eku: ExtendedKeyUsagePurpose,
    serial: u64,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![eku];
    params.serial_number = Some(SerialNumber::from(serial));
    (params.signed_by(&key, ca).expect("sign").pem(), key.serialize_pem())
}

fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(tmp, path).expect("rename");
}

fn pump(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).map_err(|e| rustls::Error::General(e.to_string()))?;
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).map_err(|e| rustls::Error::General(e.to_string()))?;
        to.process_new_packets()?;
    }
    Ok(())
}

/// A full in-memory handshake (plus the server's post-handshake tickets); the server's view of
/// how it went, or the first error either side raised.
fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Result<HandshakeKind, rustls::Error> {
    let mut c =
        Connection::Client(rustls::ClientConnection::new(client, "localhost".try_into().expect("name"))?);
    let mut s = Connection::Server(rustls::ServerConnection::new(server)?);
    for _ in 0..10 {
        pump(&mut c, &mut s)?;
        pump(&mut s, &mut c)?;
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
    }
    pump(&mut s, &mut c)?;
    if s.is_handshaking() {
        return Err(rustls::Error::General("handshake did not finish".into()));
    }
    s.handshake_kind().ok_or_else(|| rustls::Error::General("no handshake kind".into()))
}

fn state(pki: &TestPki, options: TlsOptions) -> Arc<TlsState> {
    TlsState::new("unit", &pki.config(options), Metrics::new()).expect("state")
}

fn server_config(state: &TlsState) -> Arc<ServerConfig> {
    // The acceptor wraps the config in force; take it back out for in-memory connections.
    state.acceptor().config().clone()
}

#[test]
fn sessions_never_resume_across_a_reload() {
    for tickets in [false, true] {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let pki = TestPki::new();
            let st = state(&pki, TlsOptions { session_tickets: tickets, ..TlsOptions::default() });
            let client = pki.client(&[version]);
            assert_eq!(handshake(server_config(&st), client.clone()), Ok(HandshakeKind::Full));
            assert_eq!(
                handshake(server_config(&st), client.clone()),
                Ok(HandshakeKind::Resumed),
                "precondition: resumption works (tickets {tickets}, {version:?})"
            );
            // A CRL change that does not concern this client: still no resumption across it.
            pki.write_crl(&[9999]);
            assert!(matches!(st.reload(), Ok(ReloadOutcome::Reloaded { .. })));
            assert_eq!(
                handshake(server_config(&st), client.clone()),
                Ok(HandshakeKind::Full),
                "a session was resumed across a reload (tickets {tickets}, {version:?})"
            );
            // Revoked: the resumption attempt becomes a full handshake, which fails.
            pki.write_crl(&[CLIENT_SERIAL]);
            assert!(matches!(st.reload(), Ok(ReloadOutcome::Reloaded { .. })));
            assert!(handshake(server_config(&st), client).is_err(), "revoked client resumed");
        }
    }
}

#[test]
fn check_client_chain_follows_the_crl_in_force() {
    let pki = TestPki::new();
    let st = state(&pki, TlsOptions::default());
    assert_eq!(st.check_client_chain(&pki.client_chain), ChainStatus::Good);
    pki.write_crl(&[CLIENT_SERIAL]);
    assert_eq!(st.reload().expect("reload"), ReloadOutcome::Reloaded { generation: 1 });
    assert_eq!(st.check_client_chain(&pki.client_chain), ChainStatus::Revoked);
    assert!(matches!(st.check_client_chain(&[]), ChainStatus::Rejected(_)));
}

#[test]
fn unchanged_files_do_not_swap_the_config() {
    let pki = TestPki::new();
    let st = state(&pki, TlsOptions::default());
    let before = server_config(&st);
    assert_eq!(st.reload().expect("reload"), ReloadOutcome::Unchanged);
    assert!(Arc::ptr_eq(&before, &server_config(&st)));
    assert_eq!(st.generation(), 0);
}

#[test]
fn bad_material_keeps_the_config_in_force() {
    let pki = TestPki::new();
    let st = state(&pki, TlsOptions::default());
    let before = server_config(&st);
    // A certificate whose key is elsewhere: the pair does not match.
    let (cert, _key) = leaf(&pki.ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth, 5);
    write_atomic(&pki.path("server.crt"), cert.as_bytes());
    let err = st.reload().expect_err("mismatched pair accepted");
    assert!(err.to_string().contains("server certificate or key rejected"), "{err}");
    assert!(Arc::ptr_eq(&before, &server_config(&st)));
    // An unparsable CRL.
    pki.write_server("server", 6);
    write_atomic(&pki.path("ca.crl"), b"garbage");
    assert!(st.reload().is_err());
    assert!(Arc::ptr_eq(&before, &server_config(&st)));
    // Repaired: the next reload goes through.
    pki.write_crl(&[]);
    assert!(matches!(st.reload(), Ok(ReloadOutcome::Reloaded { generation: 1 })));
}

#[test]
fn resumption_can_be_switched_off() {
    let pki = TestPki::new();
    let st = state(&pki, TlsOptions { session_resumption: false, ..TlsOptions::default() });
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = pki.client(&[version]);
        assert_eq!(handshake(server_config(&st), client.clone()), Ok(HandshakeKind::Full));
        assert_eq!(handshake(server_config(&st), client), Ok(HandshakeKind::Full), "{version:?}");
    }
}

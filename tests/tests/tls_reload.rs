//! Live reload of TLS material: the server certificate rotated by a Kubernetes-style `..data`
//! symlink swap is served to new handshakes while an established MQTT session keeps flowing; a
//! broken file keeps the old certificate; a CRL update refuses the revoked client on a new
//! handshake *and* on a session-resumption attempt (trap 21).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moat_e2e::pki::CertFiles;
use moat_e2e::{
    http, packets, tls, unique, v311, ClientAuth, Moat, MoatOptions, Mosquitto, Pki, QoS, RawClient, Tap,
};
use rustls_pki_types::CertificateDer;

/// A directory laid out like a mounted Kubernetes Secret:
/// `tls.crt -> ..data/tls.crt`, `..data -> ..<version>/`.
struct SecretDir {
    root: PathBuf,
    version: u32,
}

impl SecretDir {
    fn new(pki: &Pki, files: &CertFiles) -> SecretDir {
        let root = pki.dir().join(unique("secret"));
        std::fs::create_dir(&root).unwrap();
        let mut dir = SecretDir { root, version: 0 };
        dir.publish(&std::fs::read(&files.cert).unwrap(), &std::fs::read(&files.key).unwrap());
        std::os::unix::fs::symlink("..data/tls.crt", dir.root.join("tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", dir.root.join("tls.key")).unwrap();
        dir
    }

    /// Writes a new version directory and atomically renames `..data` onto it, as the kubelet does.
    fn publish(&mut self, cert: &[u8], key: &[u8]) {
        self.version += 1;
        let name = format!("..2026_v{}", self.version);
        let dir = self.root.join(&name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
    }

    fn files(&self) -> CertFiles {
        CertFiles { cert: self.root.join("tls.crt"), key: self.root.join("tls.key"), serial: 0 }
    }
}

fn leaf_der(files: &CertFiles) -> CertificateDer<'static> {
    files.chain().remove(0)
}

/// The leaf certificate moat serves to a new handshake now.
async fn served_leaf(port: u16, config: Arc<rustls::ClientConfig>) -> CertificateDer<'static> {
    let c = RawClient::connect(port, config).await.expect("TLS handshake");
    let stream = c.into_inner();
    stream.get_ref().1.peer_certificates().expect("server chain")[0].clone()
}

async fn metrics(moat: &Moat) -> String {
    http::get(moat.admin_port, "/metrics").await.expect("metrics").body
}

fn reloads(text: &str, result: &str) -> f64 {
    http::metric_lines(text, "moat_tls_reloads_total")
        .iter()
        .filter(|l| l.contains(&format!("result=\"{result}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the reload counter for `result` exceeds `above`.
async fn wait_reload(moat: &Moat, result: &str, above: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if reloads(&metrics(moat).await, result) > above {
            return;
        }
        assert!(Instant::now() < deadline, "no TLS reload with result {result}\n{}", moat.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn symlink_swap_rotates_server_cert_without_dropping_sessions() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let mut secret = SecretDir::new(&pki, &pki.server);
    let moat = Moat::start(
        &pki,
        &MoatOptions { upstream: broker.addr(), server_files: Some(secret.files()), ..Default::default() },
    )
    .await;
    let client_tls = pki.client_config();
    assert_eq!(served_leaf(moat.port, client_tls.clone()).await, leaf_der(&pki.server));

    // A live session across the rotation.
    let topic = unique("rotate");
    let live = v311::Client::connect(v311::options(&unique("live"), moat.port, Some(client_tls.clone())))
        .await
        .expect("live client");
    live.subscribe(&topic, QoS::AtLeastOnce).await.expect("subscribe");

    let next = pki.server_cert("server-next");
    let swapped = Instant::now();
    secret.publish(&std::fs::read(&next.cert).unwrap(), &std::fs::read(&next.key).unwrap());
    let want = leaf_der(&next);
    let latency = loop {
        if served_leaf(moat.port, client_tls.clone()).await == want {
            break swapped.elapsed();
        }
        assert!(swapped.elapsed() < Duration::from_secs(10), "new certificate not served\n{}", moat.logs());
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    eprintln!("reload latency (symlink swap -> new cert served): {latency:?}");

    // The session established under the old certificate still flows both ways.
    let sender = v311::Client::connect(v311::options(&unique("sender"), moat.port, Some(client_tls.clone())))
        .await
        .expect("sender after rotation");
    sender.publish(&topic, QoS::AtLeastOnce, false, b"after-rotation".to_vec()).await.expect("publish");
    live.recv_publish(Duration::from_secs(10), |p| {
        p.topic == topic && p.payload.as_ref() == b"after-rotation"
    })
    .await
    .expect("live session got the message");
    assert!(live.wait_closed(Duration::from_millis(100)).await.is_none(), "live session dropped");
    assert!(reloads(&metrics(&moat).await, "success") >= 1.0);
    let m = metrics(&moat).await;
    assert!(
        http::metric_lines(&m, "moat_tls_certificate_expiry_timestamp_seconds")
            .iter()
            .any(|l| l.contains("kind=\"server\"")),
        "{m}"
    );
}

#[tokio::test]
async fn broken_material_keeps_the_old_certificate() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let mut secret = SecretDir::new(&pki, &pki.server);
    let moat = Moat::start(
        &pki,
        &MoatOptions { upstream: broker.addr(), server_files: Some(secret.files()), ..Default::default() },
    )
    .await;
    let client_tls = pki.client_config();
    let old = leaf_der(&pki.server);
    let next = pki.server_cert("server-next");
    let next_cert = std::fs::read(&next.cert).unwrap();

    // A new certificate with the old key: rustls refuses the pair, the old one stays.
    secret.publish(&next_cert, &std::fs::read(&pki.server.key).unwrap());
    wait_reload(&moat, "failure", 0.0).await;
    assert_eq!(served_leaf(moat.port, client_tls.clone()).await, old, "mismatched key pair was served");
    // Garbage instead of PEM.
    secret.publish(b"-----BEGIN CERTIFICATE-----\nnot base64\n", b"nonsense");
    wait_reload(&moat, "failure", 1.0).await;
    assert_eq!(served_leaf(moat.port, client_tls.clone()).await, old, "unparsable file replaced the cert");
    assert!(moat.logs().contains("TLS reload refused"), "{}", moat.logs());
    // The reason is logged, the key bytes are not.
    assert!(!moat.logs().contains("nonsense"));

    // Fixing the files is picked up (the watch survived the failures).
    secret.publish(&next_cert, &std::fs::read(&next.key).unwrap());
    wait_reload(&moat, "success", 0.0).await;
    assert_eq!(served_leaf(moat.port, client_tls).await, leaf_der(&next));
}

/// Connects, sends CONNECT, requires CONNACK 0; returns how the TLS handshake went.
async fn admitted(port: u16, config: Arc<rustls::ClientConfig>) -> Result<rustls::HandshakeKind, String> {
    let mut c = RawClient::connect(port, config).await.map_err(|e| format!("handshake: {e:#}"))?;
    c.send(&packets::connect(moat_e2e::Version::V311, &unique("crl")))
        .await
        .map_err(|e| format!("send: {e:#}"))?;
    let ack =
        c.expect_packet(packets::CONNACK, Duration::from_secs(5)).await.map_err(|e| format!("{e:#}"))?;
    if ack.connack_code() != Some(0) {
        return Err(format!("CONNACK {:?}", ack.connack_code()));
    }
    let kind = c.into_inner().get_ref().1.handshake_kind().ok_or("no handshake kind")?;
    Ok(kind)
}

#[tokio::test]
async fn crl_reload_refuses_new_and_resumed_handshakes() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let tap = Tap::start(broker.port).await;
    let device = pki.client_cert("soon-revoked");
    let other = pki.client_cert("stays-good");
    let crl: PathBuf = pki.write_crl("live", &[], false);
    let moat = Moat::start(
        &pki,
        &MoatOptions {
            upstream: tap.addr(),
            client_auth: ClientAuth::Required,
            tls_extra: Some(format!("      crls: [\"{}\"]\n", crl.display())),
            ..Default::default()
        },
    )
    .await;
    // One client config = one client session cache: the second connection offers resumption.
    let device_tls = tls::client_config(&[pki.ca_cert()], Some(&device));
    assert_eq!(admitted(moat.port, device_tls.clone()).await, Ok(rustls::HandshakeKind::Full));
    assert_eq!(
        admitted(moat.port, device_tls.clone()).await,
        Ok(rustls::HandshakeKind::Resumed),
        "precondition: the server resumes sessions, so the refusal below is about the CRL"
    );
    let upstream_before = tap.connections().len();

    revoke(&pki, &moat, &crl, device.serial).await;
    let resumed = admitted(moat.port, device_tls.clone()).await;
    assert!(resumed.is_err(), "a cached session of a revoked certificate got in: {resumed:?}");
    let fresh = admitted(moat.port, tls::client_config(&[pki.ca_cert()], Some(&device))).await;
    assert!(fresh.is_err(), "a revoked certificate got in on a full handshake: {fresh:?}");
    // Nothing of the refused connections reached the broker.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tap.connections().len(), upstream_before, "{:?}", tap.summary());
    // Others are unaffected.
    let other_tls = tls::client_config(&[pki.ca_cert()], Some(&other));
    assert!(admitted(moat.port, other_tls).await.is_ok(), "a good certificate was refused after reload");
}

async fn revoke(pki: &Pki, moat: &Moat, crl: &Path, serial: u64) {
    let before = reloads(&metrics(moat).await, "success");
    pki.replace_crl(crl, &[serial]);
    wait_reload(moat, "success", before).await;
}

#[tokio::test]
async fn expired_crl_on_reload_is_refused_and_the_old_one_kept() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let device = pki.client_cert("device");
    let crl: PathBuf = pki.write_crl("live", &[], false);
    let moat = Moat::start(
        &pki,
        &MoatOptions {
            upstream: broker.addr(),
            client_auth: ClientAuth::Required,
            tls_extra: Some(format!("      crls: [\"{}\"]\n", crl.display())),
            ..Default::default()
        },
    )
    .await;
    let stale = pki.write_crl("stale", &[device.serial], true);
    std::fs::rename(stale, &crl).unwrap();
    wait_reload(&moat, "failure", 0.0).await;
    assert!(moat.logs().contains("CRL expired"), "{}", moat.logs());
    let device_tls = tls::client_config(&[pki.ca_cert()], Some(&device));
    assert!(admitted(moat.port, device_tls).await.is_ok(), "the stale CRL was put in force");
}

#[tokio::test]
async fn client_chain_longer_than_max_chain_depth_is_refused() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let one = pki.chained_client_cert("one-intermediate", 1);
    let two = pki.chained_client_cert("two-intermediates", 2);
    let moat = Moat::start(
        &pki,
        &MoatOptions {
            upstream: broker.addr(),
            client_auth: ClientAuth::Required,
            tls_extra: Some("      max_chain_depth: 2\n".into()),
            ..Default::default()
        },
    )
    .await;
    let ok = admitted(moat.port, tls::client_config(&[pki.ca_cert()], Some(&one))).await;
    assert!(ok.is_ok(), "leaf + 1 intermediate refused at depth 2: {ok:?}\n{}", moat.logs());
    let long = admitted(moat.port, tls::client_config(&[pki.ca_cert()], Some(&two))).await;
    assert!(long.is_err(), "leaf + 2 intermediates admitted at depth 2");
    assert!(
        moat.logged("ChainTooLong { presented: 3, max: 2 }", Duration::from_secs(3)).await,
        "{}",
        moat.logs()
    );
}

#[tokio::test]
async fn cipher_suites_limit_what_is_negotiated() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let moat = Moat::start(
        &pki,
        &MoatOptions {
            upstream: broker.addr(),
            tls_extra: Some(
                "      versions: [\"1.3\"]\n      cipher_suites: [\"TLS13_CHACHA20_POLY1305_SHA256\"]\n"
                    .into(),
            ),
            ..Default::default()
        },
    )
    .await;
    let c = RawClient::connect(moat.port, pki.client_config()).await.expect("handshake");
    let suite = c.into_inner().get_ref().1.negotiated_cipher_suite().expect("suite").suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
}

#[tokio::test]
async fn weak_cipher_suite_is_refused_by_moat_check() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moat.yaml");
    let opts = MoatOptions {
        tls_extra: Some("      cipher_suites:\n        - TLS13_AES_128_GCM_SHA256\n        - TLS_RSA_WITH_AES_128_CBC_SHA\n".into()),
        ..Default::default()
    };
    std::fs::write(&config, opts.render(&pki, 18830, 19090, None)).unwrap();
    let out = moat_e2e::moat_command().arg("check").arg("-c").arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "moat check accepted a CBC suite: {err}");
    assert!(
        err.contains(&format!("{}:", config.display()))
            && err.contains("listeners[0].tls.cipher_suites")
            && err.contains("TLS_RSA_WITH_AES_128_CBC_SHA"),
        "{err}"
    );
}

/// A CRL reload that revokes a connected client closes its live session (v5: DISCONNECT 0x87);
/// a session with a good certificate keeps flowing. With `revoked_sessions: keep` the revoked
/// session stays until it reconnects.
#[tokio::test]
async fn revoking_a_connected_client_closes_its_live_session() {
    use moat_e2e::packets::{self, Version};
    for keep in [false, true] {
        let pki = Pki::new();
        let broker = Mosquitto::start().await;
        let tap = Tap::start(broker.port).await;
        let device = pki.client_cert("revoked-live");
        let other = pki.client_cert("good-live");
        let crl: PathBuf = pki.write_crl("live", &[], false);
        let extra = if keep { "      revoked_sessions: keep\n" } else { "" };
        let moat = Moat::start(
            &pki,
            &MoatOptions {
                upstream: tap.addr(),
                client_auth: ClientAuth::Required,
                tls_extra: Some(format!("      crls: [\"{}\"]\n{extra}", crl.display())),
                ..Default::default()
            },
        )
        .await;
        let connect = |files| {
            let cfg = tls::client_config(&[pki.ca_cert()], Some(files));
            let port = moat.port;
            async move {
                let mut c = RawClient::connect(port, cfg).await.expect("TLS");
                c.send(&packets::connect(Version::V5, &moat_e2e::unique("live"))).await.expect("CONNECT");
                let ack = c.expect_packet(packets::CONNACK, Duration::from_secs(10)).await.expect("CONNACK");
                assert_eq!(ack.connack_code(), Some(0));
                c
            }
        };
        let mut revoked = connect(&device).await;
        let mut good = connect(&other).await;

        revoke(&pki, &moat, &crl, device.serial).await;
        if keep {
            revoked.send(&packets::pingreq()).await.expect("ping");
            revoked.expect_packet(packets::PINGRESP, Duration::from_secs(5)).await.expect("kept");
        } else {
            let closed = revoked.read_until_closed(Duration::from_secs(5)).await.expect("closed");
            let reason = closed.disconnect_reason();
            assert_eq!(
                reason,
                Some(0x87),
                "{:?}",
                closed.packets.iter().map(|p| p.describe()).collect::<Vec<_>>()
            );
        }
        good.send(&packets::pingreq()).await.expect("ping");
        good.expect_packet(packets::PINGRESP, Duration::from_secs(5)).await.expect("the good session flows");
    }
}

//! TLS-PSK listener (`listeners[].tls_psk`, OpenSSL): a client holding an identity's key
//! completes a TLS 1.2 AEAD PSK handshake, its PSK identity is the username the broker sees
//! (`type: psk`), and a wrong key, an unknown identity, a CBC-only client or a TLS 1.1 client are
//! refused in the handshake with nothing reaching the broker and the reason counted.

use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use moat_e2e::http;
use moat_e2e::packets::{self, Connect, RawPacket, Version};
use moat_e2e::policy::parse_connect;
use moat_e2e::procs::run_with_timeout;
use moat_e2e::{net, unique, Env, MoatOptions};

const WAIT: Duration = Duration::from_secs(10);
const ID: &str = "sensor-7";
const KEY: &str = "1f2e3d4c5b6a798807162534435261708f9eadbccbdae9f8";
const WRONG_KEY: &str = "1f2e3d4c5b6a798807162534435261708f9eadbccbdae9f9";
const AEAD_SUITES: [&str; 4] = [
    "ECDHE-PSK-CHACHA20-POLY1305",
    "PSK-AES256-GCM-SHA384",
    "PSK-CHACHA20-POLY1305",
    "PSK-AES128-GCM-SHA256",
];

struct PskEnv {
    env: Env,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The standard environment plus a `psk` listener; only the `psk` authenticator is configured,
/// so the certificate listener admits nobody (a PSK identity cannot be claimed elsewhere).
async fn start() -> PskEnv {
    start_with("").await
}

/// `listener_extra`: YAML lines added to the PSK listener (indented by 4 spaces).
async fn start_with(listener_extra: &str) -> PskEnv {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("psk.txt");
    std::fs::write(&file, format!("# test identities\n{ID}:{KEY}\nother:00112233445566778899aabbccddeeff\n"))
        .expect("write identities");
    let port = net::free_port();
    let env = Env::start_with(MoatOptions {
        extra_listeners: Some(format!(
            "  - name: psk\n    bind: \"127.0.0.1:{port}\"\n    tls_psk:\n      identities_file: \"{}\"\n{listener_extra}",
            file.display()
        )),
        tls_handshake_timeout: Some("1s".into()),
        policy_yaml: Some("authentication:\n  - name: keys\n    type: psk\n".into()),
        ..Default::default()
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !net::can_connect(port).await {
        assert!(tokio::time::Instant::now() < deadline, "PSK listener not up\n{}", env.moat.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    PskEnv { env, port, _dir: dir }
}

/// A TLS-PSK client (OpenSSL) offering `ciphers` at exactly `version`.
async fn psk_client(
    port: u16,
    identity: &str,
    key_hex: &str,
    ciphers: &str,
    version: SslVersion,
) -> Result<SslStream<TcpStream>, String> {
    psk_connect(port, &psk_connector(identity, key_hex, ciphers, version)?).await
}

/// The client side's context (built once per configuration, as real clients do).
fn psk_connector(
    identity: &str,
    key_hex: &str,
    ciphers: &str,
    version: SslVersion,
) -> Result<SslConnector, String> {
    let key = hex_decode(key_hex);
    let identity = identity.as_bytes().to_vec();
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_min_proto_version(Some(version)).map_err(|e| e.to_string())?;
    b.set_max_proto_version(Some(version)).map_err(|e| e.to_string())?;
    b.set_cipher_list(ciphers).map_err(|e| e.to_string())?;
    b.set_verify(SslVerifyMode::NONE);
    b.set_psk_client_callback(move |_ssl, _hint, id_out, key_out| {
        // The identity is a C string: NUL-terminated in OpenSSL's buffer.
        id_out[..identity.len()].copy_from_slice(&identity);
        id_out[identity.len()] = 0;
        key_out[..key.len()].copy_from_slice(&key);
        Ok(key.len())
    });
    Ok(b.build())
}

async fn psk_connect(port: u16, connector: &SslConnector) -> Result<SslStream<TcpStream>, String> {
    psk_connect_after(port, connector, b"").await
}

/// Sends `preamble` (a PROXY header) on the TCP connection before the handshake.
async fn psk_connect_after(
    port: u16,
    connector: &SslConnector,
    preamble: &[u8],
) -> Result<SslStream<TcpStream>, String> {
    let ssl = connector
        .configure()
        .map_err(|e| e.to_string())?
        .verify_hostname(false)
        .into_ssl("localhost")
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut tcp = tcp;
    tcp.write_all(preamble).await.map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    tokio::time::timeout(WAIT, Pin::new(&mut stream).connect())
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Reads one MQTT packet (bounded by [`WAIT`]).
async fn read_packet(s: &mut SslStream<TcpStream>) -> RawPacket {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((p, _)) = packets::parse_one(&buf).expect("framing") {
            return p;
        }
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk)).await.expect("read timed out").expect("read");
        assert!(n > 0, "connection closed before a full packet");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `openssl s_client -psk`: the handshake's outcome as (exit success, combined output).
async fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.arg("s_client").arg("-connect").arg(format!("127.0.0.1:{port}")).arg("-brief").args(args);
    cmd.stdin(Stdio::null());
    let out = run_with_timeout(cmd, WAIT).await.expect("openssl s_client");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && text.contains("CONNECTION ESTABLISHED"), text)
}

async fn handshake_failures(env: &Env, reason: &str) -> usize {
    let text = http::get(env.moat.admin_port, "/metrics").await.expect("metrics").body;
    let wanted = format!("listener=\"psk\",reason=\"{reason}\"");
    http::metric_lines(&text, "moat_tls_handshake_failures_total")
        .iter()
        .filter(|l| l.contains(&wanted))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

/// Waits until the failure count for `reason` reaches `expected` (the client may see the socket
/// close before moat has counted); returns the last count seen.
async fn wait_failures(env: &Env, reason: &str, expected: usize) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = handshake_failures(env, reason).await;
        if n >= expected || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn openssl_s_client_completes_a_tls12_psk_handshake_with_an_aead_suite() {
    let p = start().await;
    let (ok, out) = s_client(p.port, &["-tls1_2", "-psk_identity", ID, "-psk", KEY]).await;
    assert!(ok, "s_client -psk failed:\n{out}\n{}", p.env.moat.logs());
    assert!(out.contains("Protocol version: TLSv1.2"), "{out}");
    let suite = out.lines().find_map(|l| l.strip_prefix("Ciphersuite: ")).expect("suite line").trim();
    assert!(AEAD_SUITES.contains(&suite), "suite {suite} is not one of the AEAD PSK suites:\n{out}");
}

#[tokio::test]
async fn psk_identity_is_the_username_the_broker_sees_and_publishes_arrive() {
    let p = start().await;
    let mut s = psk_client(p.port, ID, KEY, "PSK-AES128-GCM-SHA256", SslVersion::TLS1_2)
        .await
        .unwrap_or_else(|e| panic!("PSK handshake failed: {e}\n{}", p.env.moat.logs()));
    // The username the client claims grants nothing: the handshake's identity wins (trap 5).
    let mut connect = Connect::new(Version::V311, &unique("psk"));
    connect.username = Some("admin".into());
    s.write_all(&connect.encode()).await.expect("CONNECT");
    let ack = read_packet(&mut s).await;
    assert_eq!(ack.connack_code(), Some(0), "{}\n{}", ack.describe(), p.env.moat.logs());
    let topic = unique("psk/t");
    s.write_all(&packets::publish(Version::V311, topic.as_bytes(), 1, false, 1, b"over-psk"))
        .await
        .expect("PUBLISH");
    assert_eq!(read_packet(&mut s).await.packet_type(), packets::PUBACK);
    p.env.sub.wait_for(&topic, b"over-psk", WAIT).await.expect("the broker got the PUBLISH");
    let connects: Vec<_> =
        p.env.tap.connections().iter().filter_map(|c| c.packets().first().and_then(parse_connect)).collect();
    assert_eq!(connects.len(), 1, "{:?}", p.env.tap.summary());
    assert_eq!(connects[0].username.as_deref(), Some(ID), "broker saw another username");
    assert_eq!(connects[0].password, None);
}

#[tokio::test]
async fn wrong_key_unknown_identity_cbc_and_tls11_are_refused_in_the_handshake() {
    let p = start().await;
    let cases: [(&str, Vec<&str>, &str); 4] = [
        ("wrong key", vec!["-tls1_2", "-psk_identity", ID, "-psk", WRONG_KEY], "psk_mismatch"),
        ("unknown identity", vec!["-tls1_2", "-psk_identity", "nobody", "-psk", KEY], "unknown_psk_identity"),
        (
            "CBC suite only",
            vec![
                "-tls1_2",
                "-cipher",
                "PSK-AES128-CBC-SHA:PSK-AES256-CBC-SHA384",
                "-psk_identity",
                ID,
                "-psk",
                KEY,
            ],
            "incompatible",
        ),
        // OpenSSL 3 clients need security level 0 to speak TLS 1.1 at all.
        (
            "TLS 1.1",
            vec!["-tls1_1", "-cipher", "PSK-AES128-CBC-SHA:@SECLEVEL=0", "-psk_identity", ID, "-psk", KEY],
            "incompatible",
        ),
    ];
    for (what, args, reason) in cases {
        let before = handshake_failures(&p.env, reason).await;
        let (ok, out) = s_client(p.port, &args).await;
        assert!(!ok, "{what}: handshake completed:\n{out}");
        assert!(!out.contains("Ciphersuite:"), "{what}: {out}");
        assert_eq!(
            wait_failures(&p.env, reason, before + 1).await,
            before + 1,
            "{what}: not counted as {reason}"
        );
    }
    // The Rust client agrees for the wrong key (an MQTT client never gets a session).
    assert!(psk_client(p.port, ID, WRONG_KEY, "PSK-AES128-GCM-SHA256", SslVersion::TLS1_2).await.is_err());
    assert!(
        p.env.tap.connections().is_empty(),
        "a refused handshake reached the broker: {:?}",
        p.env.tap.summary()
    );
    p.env.sub.assert_nothing("refused PSK handshakes").await;
}

#[tokio::test]
async fn tls13_is_not_offered_and_a_silent_peer_times_out() {
    let p = start().await;
    let (ok, out) = s_client(p.port, &["-tls1_3", "-psk_identity", ID, "-psk", KEY]).await;
    assert!(!ok, "TLS 1.3 PSK handshake completed:\n{out}");
    // The listener's handshake deadline (1s here) applies to PSK handshakes too.
    let before = handshake_failures(&p.env, "timeout").await;
    let mut tcp = TcpStream::connect(("127.0.0.1", p.port)).await.expect("tcp");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("not closed");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(wait_failures(&p.env, "timeout", before + 1).await, before + 1);
}

#[tokio::test]
async fn proxy_protocol_applies_to_psk_listeners() {
    let p = start_with("    proxy_protocol: true\n").await;
    let connector = psk_connector(ID, KEY, "PSK-AES128-GCM-SHA256", SslVersion::TLS1_2).expect("ctx");
    assert!(psk_connect(p.port, &connector).await.is_err(), "PSK handshake without a PROXY header accepted");
    let header = format!("PROXY TCP4 203.0.113.7 127.0.0.1 40000 {}\r\n", p.port);
    let mut s = psk_connect_after(p.port, &connector, header.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("PSK after PROXY header failed: {e}\n{}", p.env.moat.logs()));
    s.write_all(&packets::connect(Version::V311, &unique("pp"))).await.expect("CONNECT");
    let ack = read_packet(&mut s).await;
    assert_eq!(ack.connack_code(), Some(0), "{}", ack.describe());
    // The log is written by a background writer: wait for the session's line.
    let deadline = tokio::time::Instant::now() + WAIT;
    let seen = || {
        let text = format!("{}{}", p.env.moat.proc.stdout(), p.env.moat.proc.stderr());
        text.contains("203.0.113.7:40000")
    };
    while !seen() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session did not see the PROXY address:\n{}",
            p.env.moat.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.env.tap.connections().len(), 1, "{:?}", p.env.tap.summary());
}

#[tokio::test]
async fn the_psk_authenticator_admits_nobody_on_a_certificate_listener() {
    let p = start().await;
    let mut c = p.env.raw().await;
    let mut connect = Connect::new(Version::V311, &unique("cert"));
    connect.username = Some(ID.into());
    c.send(&connect.encode()).await.expect("CONNECT");
    let ack = c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK");
    assert_eq!(ack.connack_code(), Some(0x05), "{}", ack.describe());
    assert!(p.env.tap.connections().is_empty(), "{:?}", p.env.tap.summary());
}

/// Full handshakes per second, PSK (OpenSSL) against certificate TLS (rustls, ECDSA P-256 test
/// certificate, resumption off on the client) on the same moat process, 4 concurrent clients for
/// 3 s each; every client context is built once. For figures, use a release moat:
/// `cargo build --release -p moat --bin moat && MOAT_BIN=$PWD/target/release/moat cargo test
/// -p moat-e2e --test tls_psk bench -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, not a check"]
async fn bench_psk_vs_certificate_handshakes() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    let p = Arc::new(start().await);
    let cert_client = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(p.env.pki.ca_cert()).expect("CA") {
            roots.add(cert.expect("CA cert")).expect("root");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.resumption = rustls::client::Resumption::disabled();
        Arc::new(c)
    };
    let cert13 = cert_client(&[&rustls::version::TLS13]);
    let cert12 = cert_client(&[&rustls::version::TLS12]);

    let psk_aes = Arc::new(psk_connector(ID, KEY, "PSK-AES128-GCM-SHA256", SslVersion::TLS1_2).expect("ctx"));
    let psk_ecdhe =
        Arc::new(psk_connector(ID, KEY, "ECDHE-PSK-CHACHA20-POLY1305", SslVersion::TLS1_2).expect("ctx"));
    #[derive(Clone, Copy)]
    enum Kind {
        Psk(bool),
        Cert13,
        Cert12,
    }
    let kinds = [
        ("PSK TLS1.2 PSK-AES128-GCM-SHA256", Kind::Psk(false)),
        ("PSK TLS1.2 ECDHE-PSK-CHACHA20-POLY1305", Kind::Psk(true)),
        ("rustls cert TLS1.3 (ECDSA P-256)", Kind::Cert13),
        ("rustls cert TLS1.2 (ECDSA P-256)", Kind::Cert12),
    ];
    for (name, kind) in kinds {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (p, done, stop, c13, c12) =
                (p.clone(), done.clone(), stop.clone(), cert13.clone(), cert12.clone());
            let (pa, pe) = (psk_aes.clone(), psk_ecdhe.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let ok = match kind {
                        Kind::Psk(ecdhe) => psk_connect(p.port, if ecdhe { &pe } else { &pa }).await.is_ok(),
                        Kind::Cert13 => {
                            moat_e2e::RawClient::connect(p.env.moat.port, c13.clone()).await.is_ok()
                        }
                        Kind::Cert12 => {
                            moat_e2e::RawClient::connect(p.env.moat.port, c12.clone()).await.is_ok()
                        }
                    };
                    assert!(ok, "{name}: handshake failed");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let started = std::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("task");
        }
        let n = done.load(Ordering::Relaxed);
        println!(
            "{name}: {n} handshakes in {:.2}s = {:.0}/s",
            started.elapsed().as_secs_f64(),
            n as f64 / started.elapsed().as_secs_f64()
        );
    }
}
